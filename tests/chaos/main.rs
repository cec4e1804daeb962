//! The chaos run: the promise "every charge reaches the PMS exactly once" checked
//! end to end against real processes.
//!
//! Two (or more) `chargebridge serve` processes share one real `redis-server`
//! (AOF on) and post through the generic `http` adapter to a PMS simulator that
//! books every charge and fails one POST in ten (refuse, unavailable, slow,
//! apply-then-time-out). The driver sends every charge, re-sends ~30 % of them
//! (half at the same moment to the other process, half later), and retries each
//! delivery without a final answer until it gets one. Midway it kills one
//! chargebridge process with SIGKILL while postings are in flight (and starts it
//! again), and later crashes Redis with SIGKILL (and starts it again).
//!
//! Then it settles accounts: each key answered 200 has exactly one booking with
//! the right amount and the PMS reference the 200 named; no booking was applied
//! twice; no key without a 200 was charged; nothing lost. Any violation exits 1.
//!
//! `cargo test --test chaos` runs the short mode (CI); `tests/chaos/run.sh` the
//! long one (10 000 deliveries, release build). Flags: `--deliveries N`,
//! `--processes N`, `--concurrency N`, `--seed N`, `--keep-logs`, and
//! `--sabotage memory-store|no-aof` (a broken set-up: the run then succeeds only
//! if the checks catch the double postings it causes).

#[allow(dead_code)]
#[path = "../api/redis_server.rs"]
mod redis_server;

mod driver;
mod pms_sim;
mod rng;

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitCode, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use driver::{Counters, Final, Plan};
use pms_sim::{Fault, PmsSimulator, Timing};
use redis_server::{RedisServer, free_port, wait_for_port};
use rng::Rng;

const BIN: &str = env!("CARGO_BIN_EXE_chargebridge");

struct Args {
    deliveries: usize,
    processes: usize,
    concurrency: usize,
    seed: u64,
    keep_logs: bool,
    sabotage: Option<Sabotage>,
}

/// Deliberately broken set-ups that must make the run fail: proof that the
/// checks can see a double posting or a lost record.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Sabotage {
    /// Each process keeps its own memory store: no shared deduplication.
    MemoryStore,
    /// Redis without persistence: the crash loses every record.
    NoAof,
}

fn parse_args() -> Result<Option<Args>, String> {
    let mut args = Args {
        deliveries: 1_200,
        processes: 2,
        concurrency: 32,
        seed: 0x00c4_a05e,
        keep_logs: false,
        sabotage: None,
    };
    let mut it = std::env::args().skip(1);
    while let Some(arg) = it.next() {
        let mut number = |name: &str| -> Result<u64, String> {
            it.next()
                .and_then(|v| v.parse().ok())
                .ok_or(format!("{name} needs a number"))
        };
        match arg.as_str() {
            "--long" => {
                args.deliveries = 10_000;
                args.concurrency = 64;
            }
            "--deliveries" => args.deliveries = number("--deliveries")? as usize,
            "--processes" => args.processes = number("--processes")?.max(2) as usize,
            "--concurrency" => args.concurrency = number("--concurrency")?.max(1) as usize,
            "--seed" => args.seed = number("--seed")?,
            "--keep-logs" => args.keep_logs = true,
            "--sabotage" => {
                args.sabotage = match it.next().as_deref() {
                    Some("memory-store") => Some(Sabotage::MemoryStore),
                    Some("no-aof") => Some(Sabotage::NoAof),
                    _ => return Err("--sabotage needs memory-store or no-aof".into()),
                }
            }
            // Flags cargo's test runner passes to every test binary.
            flag if flag.starts_with('-') => {}
            // A name filter (`cargo test foo`) that does not select this run.
            filter if !"chaos".contains(filter) => return Ok(None),
            _ => {}
        }
    }
    Ok(Some(args))
}

fn main() -> ExitCode {
    let args = match parse_args() {
        Ok(Some(args)) => args,
        Ok(None) => return ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("chaos: {e}");
            return ExitCode::from(2);
        }
    };
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("tokio runtime");
    let passed = runtime.block_on(chaos(args));
    if passed {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    }
}

/// One `chargebridge serve` process and how to bring it back after a kill.
struct Bridge {
    port: u16,
    config: PathBuf,
    log: PathBuf,
    child: Option<Child>,
}

impl Bridge {
    fn new(dir: &Path, n: usize, redis_url: &str, pms_url: &str, store: &str) -> Bridge {
        let port = free_port();
        let config = dir.join(format!("bridge-{n}.toml"));
        std::fs::write(
            &config,
            format!(
                "[server]\nlisten = \"127.0.0.1:{port}\"\nrequest_deadline = \"2s\"\npms_safety_margin = \"200ms\"\n\
                 [idempotency]\nstore = \"{store}\"\nredis_url = \"{redis_url}\"\nlease = \"3s\"\n\
                 in_flight_wait = \"1s\"\ncommand_timeout = \"500ms\"\n\
                 [log]\nlevel = \"warn\"\nformat = \"json\"\n\
                 [[tenants]]\nid = \"{}\"\napi_key = \"{}\"\ncurrency = \"EUR\"\npms = \"hotel\"\n\
                 [pms.hotel]\nadapter = \"http\"\nurl = \"{pms_url}\"\ntimeout = \"1500ms\"\nmax_retries = 1\n",
                driver::TENANT,
                driver::API_KEY,
            ),
        )
        .expect("write config");
        let mut bridge = Bridge {
            port,
            config,
            log: dir.join(format!("bridge-{n}.log")),
            child: None,
        };
        bridge.start();
        bridge
    }

    fn start(&mut self) {
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.log)
            .expect("log file");
        let child = Command::new(BIN)
            .arg("serve")
            .arg("--config")
            .arg(&self.config)
            .stdout(log.try_clone().expect("log file"))
            .stderr(log)
            .stdin(Stdio::null())
            .spawn()
            .expect("start chargebridge");
        self.child = Some(child);
        wait_for_port(self.port, true);
    }

    fn kill9(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    fn url(&self) -> String {
        format!("http://127.0.0.1:{}/lightspeed/charge", self.port)
    }
}

impl Drop for Bridge {
    fn drop(&mut self) {
        self.kill9();
    }
}

/// What the chaos events did, for the report.
#[derive(Default)]
struct Events {
    process_kills: usize,
    postings_in_flight_at_kill: usize,
    redis_crashes: usize,
    redis_outage: Duration,
}

async fn chaos(args: Args) -> bool {
    let started = Instant::now();
    let dir = tempfile::Builder::new()
        .prefix("chargebridge-chaos-")
        .tempdir()
        .expect("temp dir");
    let run_id = format!(
        "{:x}",
        args.seed ^ started.elapsed().as_nanos() as u64 ^ std::process::id() as u64
    );
    let mut rng = Rng::new(args.seed);

    let aof = args.sabotage != Some(Sabotage::NoAof);
    let store = if args.sabotage == Some(Sabotage::MemoryStore) {
        "memory"
    } else {
        "redis"
    };
    let redis = Arc::new(std::sync::Mutex::new(RedisServer::start(aof)));
    let redis_url = redis.lock().expect("redis").url();
    let timing = Timing {
        slow: Duration::from_millis(300),
        hold: Duration::from_millis(2_500),
    };
    let pms = Arc::new(PmsSimulator::start(args.seed, 0.10, timing).await);
    let bridges: Vec<Bridge> = (0..args.processes)
        .map(|n| Bridge::new(dir.path(), n, &redis_url, &pms.url, store))
        .collect();
    let targets = Arc::new(bridges.iter().map(Bridge::url).collect::<Vec<_>>());
    let bridges = Arc::new(std::sync::Mutex::new(bridges));

    let plan = Arc::new(driver::plan(args.deliveries, 0.30, &mut rng, &run_id));
    let counters = Arc::new(Counters::default());
    let progress = Arc::new(AtomicUsize::new(0));
    println!(
        "chaos: {} deliveries of {} charges over {} processes, {} at a time, seed {}{}",
        plan.deliveries(),
        plan.charges.len(),
        args.processes,
        args.concurrency,
        args.seed,
        match args.sabotage {
            None => "",
            Some(Sabotage::MemoryStore) => " (SABOTAGED: a memory store per process)",
            Some(Sabotage::NoAof) => " (SABOTAGED: Redis without AOF)",
        }
    );

    let events = tokio::spawn(chaos_events(
        plan.launches.len(),
        progress.clone(),
        pms.clone(),
        bridges.clone(),
        redis.clone(),
    ));
    let outcomes = driver::run(
        plan.clone(),
        targets,
        args.concurrency,
        counters.clone(),
        progress,
        Duration::from_secs(120),
    )
    .await;
    let events = events.await.expect("chaos events");
    // Answers held back by the simulator land before the books are closed.
    tokio::time::sleep(timing.hold).await;

    let accounts = settle(&plan, &outcomes, &pms);
    report(
        &args,
        &plan,
        &counters,
        &pms,
        &events,
        &accounts,
        started.elapsed(),
    );
    let passed = match args.sabotage {
        None => accounts.violations() == 0,
        // A sabotaged run passes only if the checks caught the double postings.
        Some(_) => {
            let caught = !accounts.double_applied.is_empty();
            println!(
                "SABOTAGE {}: {} double postings found",
                if caught { "DETECTED" } else { "MISSED" },
                accounts.double_applied.len()
            );
            caught
        }
    };
    if !passed || args.keep_logs {
        let kept = dir.keep();
        println!("logs and configs kept in {}", kept.display());
    }
    pms.stop().await;
    drop(bridges);
    passed
}

/// Kills a bridge mid-posting at 35 % of the launches and crashes Redis at 65 %.
async fn chaos_events(
    launches: usize,
    progress: Arc<AtomicUsize>,
    pms: Arc<PmsSimulator>,
    bridges: Arc<std::sync::Mutex<Vec<Bridge>>>,
    redis: Arc<std::sync::Mutex<RedisServer>>,
) -> Events {
    let mut events = Events::default();
    let reached = |share: f64| {
        let progress = progress.clone();
        async move {
            while (progress.load(Ordering::Relaxed) as f64) < launches as f64 * share {
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
        }
    };

    reached(0.35).await;
    // "In the middle of postings": wait (briefly) until the PMS is busy.
    let deadline = Instant::now() + Duration::from_secs(2);
    while pms.in_flight() == 0 && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
    events.postings_in_flight_at_kill = pms.in_flight();
    bridges.lock().expect("bridges")[1].kill9();
    events.process_kills += 1;
    tokio::time::sleep(Duration::from_secs(1)).await;
    tokio::task::block_in_place(|| bridges.lock().expect("bridges")[1].start());

    reached(0.65).await;
    let down = Instant::now();
    tokio::task::block_in_place(|| {
        let mut redis = redis.lock().expect("redis");
        redis.crash();
        std::thread::sleep(Duration::from_secs(1));
        redis.start_again();
    });
    events.redis_crashes += 1;
    events.redis_outage = down.elapsed();
    events
}

/// The books closed: what each key was answered and what the PMS holds.
#[derive(Default)]
struct Accounts {
    keys: usize,
    posted: usize,
    refused: usize,
    exactly_once: usize,
    double_applied: Vec<String>,
    posted_without_booking: Vec<String>,
    wrong_amount: Vec<String>,
    wrong_reference: Vec<String>,
    booked_without_200: Vec<String>,
    lost: Vec<String>,
    inconsistent: Vec<String>,
    unexpected: Vec<String>,
    protocol: Vec<String>,
    faults_hit: HashMap<Fault, (usize, usize)>,
}

impl Accounts {
    fn violations(&self) -> usize {
        self.double_applied.len()
            + self.posted_without_booking.len()
            + self.wrong_amount.len()
            + self.wrong_reference.len()
            + self.booked_without_200.len()
            + self.lost.len()
            + self.inconsistent.len()
            + self.unexpected.len()
            + self.protocol.len()
    }
}

fn settle(plan: &Plan, outcomes: &[driver::Outcome], pms: &PmsSimulator) -> Accounts {
    let mut answers: HashMap<usize, Vec<Option<Final>>> = HashMap::new();
    for outcome in outcomes {
        answers
            .entry(outcome.charge)
            .or_default()
            .push(outcome.answer.clone());
    }
    let bookings = pms.bookings_by_key();
    let faults = pms.faults_by_key();
    let mut accounts = Accounts {
        keys: plan.charges.len(),
        protocol: pms.violations(),
        ..Accounts::default()
    };
    for (i, charge) in plan.charges.iter().enumerate() {
        let key = &charge.key;
        let given = answers.get(&i).map(Vec::as_slice).unwrap_or_default();
        let booked = bookings.get(key).map(Vec::as_slice).unwrap_or_default();
        let before = accounts.violations();
        if given.iter().any(Option::is_none) {
            accounts.lost.push(key.clone());
        }
        let finals: Vec<&Final> = given.iter().flatten().collect();
        if finals.windows(2).any(|w| w[0] != w[1]) {
            accounts.inconsistent.push(format!("{key}: {finals:?}"));
        }
        if booked.iter().any(|b| b.applications > 1) || booked.len() > 1 {
            accounts.double_applied.push(key.clone());
        }
        match finals.first() {
            Some(Final::Posted { pms_reference }) => {
                accounts.posted += 1;
                match booked {
                    [] => accounts.posted_without_booking.push(key.clone()),
                    [one, ..] => {
                        if one.amount != charge.amount {
                            accounts.wrong_amount.push(format!(
                                "{key}: booked {} expected {}",
                                one.amount, charge.amount
                            ));
                        }
                        if &one.pms_reference != pms_reference {
                            accounts.wrong_reference.push(format!(
                                "{key}: answered {pms_reference}, booked {}",
                                one.pms_reference
                            ));
                        }
                    }
                }
            }
            Some(Final::Refused) => {
                accounts.refused += 1;
                if !booked.is_empty() {
                    accounts.booked_without_200.push(key.clone());
                }
            }
            Some(Final::Unexpected { status, code }) => {
                accounts.unexpected.push(format!("{key}: {status} {code}"));
            }
            None => {
                if !booked.is_empty() {
                    accounts.booked_without_200.push(key.clone());
                }
            }
        }
        let clean = accounts.violations() == before;
        if clean && matches!(finals.first(), Some(Final::Posted { .. })) {
            accounts.exactly_once += 1;
        }
        let mut hit: Vec<Fault> = faults.get(key).cloned().unwrap_or_default();
        hit.sort();
        hit.dedup();
        for fault in hit {
            let entry = accounts.faults_hit.entry(fault).or_default();
            entry.0 += 1;
            entry.1 += usize::from(clean);
        }
    }
    accounts
}

fn report(
    args: &Args,
    plan: &Plan,
    counters: &Counters,
    pms: &PmsSimulator,
    events: &Events,
    accounts: &Accounts,
    took: Duration,
) {
    let attempts = counters.attempts.load(Ordering::Relaxed);
    let row = |name: &str, value: String| println!("  {name:<44} {value}");
    println!();
    println!(
        "chaos run (seed {}, {:.1} s)",
        args.seed,
        took.as_secs_f64()
    );
    row("chargebridge processes", args.processes.to_string());
    row(
        "deliveries",
        format!(
            "{} ({} charges; duplicates: {} concurrent, {} later)",
            plan.deliveries(),
            plan.charges.len(),
            plan.concurrent_duplicates,
            plan.later_duplicates
        ),
    );
    row(
        "HTTP attempts",
        format!(
            "{attempts} (retries after: 500 ×{}, 409 ×{}, connection error ×{}, other ×{})",
            counters.answered_500.load(Ordering::Relaxed),
            counters.answered_409.load(Ordering::Relaxed),
            counters.connection_errors.load(Ordering::Relaxed),
            counters.other_transient.load(Ordering::Relaxed),
        ),
    );
    row(
        "final answers by key",
        format!(
            "200 posted {}, 422 refused by the PMS {}",
            accounts.posted, accounts.refused
        ),
    );
    row(
        "PMS requests",
        format!(
            "{} POST /charges, {} GET /charges/{{ref}}",
            pms.posts(),
            pms.lookups()
        ),
    );
    for fault in Fault::ALL {
        let (hit, survived) = accounts.faults_hit.get(&fault).copied().unwrap_or_default();
        row(
            &format!("fault: {}", fault.name()),
            format!(
                "{} injected, {hit} keys hit, {survived} settled correctly",
                pms.injected(fault)
            ),
        );
    }
    row(
        "kill -9 of a chargebridge process",
        format!(
            "{} ({} postings in flight at the PMS), restarted",
            events.process_kills, events.postings_in_flight_at_kill
        ),
    );
    row(
        "redis crash (SIGKILL, AOF on) and restart",
        format!(
            "{} ({:.1} s down)",
            events.redis_crashes,
            events.redis_outage.as_secs_f64()
        ),
    );
    println!();
    let check = |name: &str, bad: &[String]| {
        println!(
            "  {name:<44} {:>6}  {}",
            bad.len(),
            if bad.is_empty() { "ok" } else { "VIOLATION" }
        );
        for example in bad.iter().take(5) {
            println!("      {example}");
        }
    };
    println!(
        "  {:<44} {:>6}  of {} keys answered 200",
        "200 with exactly one booking, right amount", accounts.exactly_once, accounts.posted
    );
    check(
        "double postings (a charge applied twice)",
        &accounts.double_applied,
    );
    check(
        "200 without a charge at the PMS",
        &accounts.posted_without_booking,
    );
    check("wrong amount booked", &accounts.wrong_amount);
    check(
        "200 naming another PMS reference",
        &accounts.wrong_reference,
    );
    check("charged without a 200", &accounts.booked_without_200);
    check("lost (no final answer)", &accounts.lost);
    check(
        "different final answers for one key",
        &accounts.inconsistent,
    );
    check("unexpected final answers", &accounts.unexpected);
    check("protocol violations seen by the PMS", &accounts.protocol);
    println!();
    println!(
        "RESULT: {} ({} violations over {} keys)",
        if accounts.violations() == 0 {
            "PASS"
        } else {
            "FAIL"
        },
        accounts.violations(),
        accounts.keys
    );
}
