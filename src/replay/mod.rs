//! `chargebridge replay`: sends fixture deliveries to a running chargebridge and
//! compares each answer with its expectation.
//!
//! * [`fixture`]: the fixture format, loading, sequences and key templates;
//! * [`runner`]: sending (concurrency, duplicate storms, timeouts) and comparing;
//! * [`report`]: the table, JSON and JUnit reports, the progress line.
//!
//! The format is documented in `fixtures/README.md`; the contract tests replay the
//! whole `fixtures/deliveries` corpus through [`runner::run`].

pub mod fixture;
pub mod report;
pub mod runner;

use std::io::IsTerminal;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

pub use fixture::{Delivery, Fixture, Unit, load};
pub use report::Report;
pub use runner::{HttpInspector, Options, PmsInspector, Posting, run};

/// Arguments of `chargebridge replay`.
#[derive(clap::Args, Debug, Clone)]
pub struct ReplayArgs {
    /// Fixture files and directories. In a directory, `seq-*` subdirectories are
    /// sequences (run in name order); every other `*.json` is independent.
    #[arg(required = true)]
    pub paths: Vec<PathBuf>,
    /// The base URL Lightspeed would be configured with; fixture paths (`/charge`)
    /// are appended to it.
    #[arg(
        long,
        env = "CHARGEBRIDGE_REPLAY_TARGET",
        default_value = "http://127.0.0.1:8080/lightspeed"
    )]
    pub target: String,
    /// Independent deliveries and sequences sent at the same time.
    #[arg(long, default_value_t = 4, value_parser = clap::value_parser!(u16).range(1..=256))]
    pub concurrency: u16,
    /// Send each delivery this many times at once (a duplicate storm): all answers
    /// must agree, and at most one stored answer may be fresh.
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u16).range(1..=1000))]
    pub repeat: u16,
    /// Fresh idempotency keys for this run, consistent within each sequence, so
    /// the same fixtures pass again against the same server.
    #[arg(long)]
    pub rewrite_keys: bool,
    /// Each directory argument is one sequence of all its files in name order
    /// (a capture directory, for instance).
    #[arg(long)]
    pub sequence: bool,
    /// Per-request timeout.
    #[arg(long, default_value = "20s", value_parser = humantime::parse_duration)]
    pub timeout: Duration,
    /// Write the full report as JSON to this file.
    #[arg(long)]
    pub report: Option<PathBuf>,
    /// Write a JUnit XML report to this file.
    #[arg(long)]
    pub junit: Option<PathBuf>,
    /// Check `posted` expectations against a PMS speaking chargebridge's generic
    /// HTTP protocol (`GET {URL}/charges/{reference}`); skipped otherwise.
    #[arg(long, value_name = "URL")]
    pub pms_inspect: Option<String>,
    /// Id of the tenant the deliveries reach (`[[tenants]] id`): `posted` checks
    /// look postings up by the reference derived from it.
    #[arg(long, default_value = "demo")]
    pub tenant: String,
    /// API key put in place of `"apiKey": "<redacted>"` (captured fixtures).
    #[arg(long, env = "CHARGEBRIDGE_REPLAY_API_KEY", hide_env_values = true)]
    pub api_key: Option<String>,
    /// Print only the failures and the summary line.
    #[arg(long, short)]
    pub quiet: bool,
}

/// Runs the subcommand: 0 when every delivery matched, 1 on any mismatch, 2 when
/// the fixtures or the options are unusable.
pub fn run_cli(args: ReplayArgs) -> ExitCode {
    let units = match load(&args.paths, args.sequence) {
        Ok(u) if u.is_empty() => {
            eprintln!("chargebridge replay: no fixtures found");
            return ExitCode::from(2);
        }
        Ok(u) => u,
        Err(errors) => {
            for e in errors {
                eprintln!("chargebridge replay: {e}");
            }
            return ExitCode::from(2);
        }
    };
    if let Err(e) = reqwest::Url::parse(&args.target) {
        eprintln!("chargebridge replay: --target {}: {e}", args.target);
        return ExitCode::from(2);
    }
    let inspector: Option<Arc<dyn PmsInspector>> = match &args.pms_inspect {
        None => None,
        Some(url) => match HttpInspector::new(url, args.timeout) {
            Ok(i) => Some(Arc::new(i)),
            Err(e) => {
                eprintln!("chargebridge replay: --pms-inspect {url}: {e}");
                return ExitCode::from(2);
            }
        },
    };
    let options = Options {
        target: args.target.clone(),
        concurrency: usize::from(args.concurrency),
        repeat: usize::from(args.repeat),
        rewrite_keys: args.rewrite_keys,
        timeout: args.timeout,
        api_key: args.api_key.clone(),
        progress: std::io::stderr().is_terminal(),
        tenant: args.tenant.clone(),
    };
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
    {
        Ok(r) => r,
        Err(e) => {
            eprintln!("chargebridge replay: {e}");
            return ExitCode::from(2);
        }
    };
    let report = match runtime.block_on(run(units, options, inspector)) {
        Ok(r) => r,
        Err(e) => {
            eprintln!("chargebridge replay: {e}");
            return ExitCode::from(2);
        }
    };
    if args.quiet {
        for r in report.results.iter().filter(|r| !r.passed()) {
            println!("{}", r.diff());
        }
        println!("{}", report.summary());
    } else {
        print!("{}", report.table());
    }
    let mut code = if report.ok() {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    };
    for (path, text) in [
        (&args.report, report.to_json()),
        (&args.junit, report.to_junit()),
    ] {
        if let Some(path) = path
            && let Err(e) = std::fs::write(path, text)
        {
            eprintln!("chargebridge replay: {}: {e}", path.display());
            code = ExitCode::from(2);
        }
    }
    code
}
