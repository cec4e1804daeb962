//! The `chargebridge` command line.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use clap::{Parser, Subcommand};

use crate::config::Settings;

#[derive(Parser, Debug)]
#[command(
    name = "chargebridge",
    version,
    about = "Lightspeed K-Series room charges to hotel PMSs, exactly once"
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Option<Command>,
}

#[derive(Subcommand, Debug)]
pub enum Command {
    /// Serve the Lightspeed webhook (the default).
    Serve {
        /// TOML configuration; without it the embedded demo defaults run.
        #[arg(long, short, env = "CHARGEBRIDGE_CONFIG")]
        config: Option<PathBuf>,
    },
    /// Check payload or fixture files offline against the model and the rules.
    Validate {
        /// Files or directories (searched for *.json).
        #[arg(required = true)]
        paths: Vec<PathBuf>,
        /// Tenants' rules (room-charge codes) from this configuration.
        #[arg(long, short)]
        config: Option<PathBuf>,
    },
    /// Validate a configuration file, resolve its secrets and try each dependency.
    CheckConfig {
        #[arg(long, short, env = "CHARGEBRIDGE_CONFIG")]
        config: Option<PathBuf>,
    },
    /// Send fixture deliveries to a running chargebridge and compare the answers
    /// with their expectations; non-zero exit on any mismatch.
    Replay(crate::replay::ReplayArgs),
    /// Register and inspect this service at Lightspeed (PMS provider API).
    Lightspeed(crate::lightspeed_cli::LightspeedArgs),
    /// Operator: journal entries (list, show, retry, resolve) over the admin API.
    Postings(crate::admin_cli::PostingsArgs),
    /// Operator: the daily report (night audit) over the admin API.
    Report(crate::admin_cli::ReportArgs),
}

pub fn run(cli: Cli) -> ExitCode {
    match cli.command.unwrap_or(Command::Serve { config: None }) {
        Command::Serve { config } => serve(config.as_deref()),
        Command::Validate { paths, config } => crate::validate::run(&paths, config.as_deref()),
        Command::CheckConfig { config } => crate::check_config::run(config.as_deref()),
        Command::Replay(args) => crate::replay::run_cli(args),
        Command::Lightspeed(args) => crate::lightspeed_cli::run(args),
        Command::Postings(args) => crate::admin_cli::run_postings(args),
        Command::Report(args) => crate::admin_cli::run_report(args),
    }
}

fn load(config: Option<&Path>) -> Result<Settings, ExitCode> {
    Settings::load(config).map_err(|e| {
        eprintln!("chargebridge: {e}");
        ExitCode::from(2)
    })
}

fn serve(config: Option<&Path>) -> ExitCode {
    let settings = match load(config) {
        Ok(s) => s,
        Err(code) => return code,
    };
    crate::telemetry::init(&settings.log);
    let system = actix_web::rt::System::new();
    let result = system.block_on(async move {
        let listen = settings.server.listen.clone();
        let store = settings.idempotency.store;
        let tenants = settings.tenants.len();
        let app = crate::startup::Application::build(settings)?;
        tracing::info!(%listen, port = app.port(), ?store, tenants, "chargebridge serving");
        app.run_until_stopped()
            .await
            .map_err(|e| crate::startup::StartupError::Other(e.to_string()))
    });
    match result {
        Ok(()) => {
            tracing::info!("stopped");
            ExitCode::SUCCESS
        }
        Err(e) => {
            tracing::error!(error = %e, "cannot start");
            eprintln!("chargebridge: {e}");
            ExitCode::from(1)
        }
    }
}

/// `localhost` or a loopback address (`127.0.0.1`, `[::1]`): where plain http
/// carries a token no further than this machine.
pub fn is_loopback_host(host: &str) -> bool {
    host == "localhost"
        || host
            .trim_start_matches('[')
            .trim_end_matches(']')
            .parse::<std::net::IpAddr>()
            .is_ok_and(|ip| ip.is_loopback())
}
