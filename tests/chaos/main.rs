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
//! again), then takes the whole PMS down for 2 s (503 to every POST and
//! lookup), and later crashes Redis with SIGKILL (and starts it again).
//!
//! Two tenants share the PMS: one in `when_pms_unavailable = "fail"`, one in
//! `"queue"`. For 40 % of the charges the POS behaves like real Lightspeed and
//! closes the order at the first answer that is not final: no retry, no re-send.
//! Nothing may depend on a re-send: the journal's worker (in every process)
//! reconciles unknown outcomes and posts queued charges by itself.
//!
//! Then it waits (at most 30 s) until no journal entry is `queued` or `unknown`
//! and settles accounts: each key answered 200 has exactly one booking with
//! the right amount and the PMS reference the 200 named; no booking was applied
//! twice; no key refused was charged; nothing lost; and the journal agrees with
//! the PMS for every key: an entry for every charge that reached it, none left
//! open, `posted` exactly when booked (with that reference), a queued charge
//! posted (or `needs_attention` after a refusal), and in fail mode no POST after
//! the POS heard its last answer (the worker only reconciles). Any violation
//! exits 1.
//!
//! `cargo test --test chaos` runs the short mode (CI); `tests/chaos/run.sh` the
//! long one (10 000 deliveries, release build). Flags: `--deliveries N`,
//! `--processes N`, `--concurrency N`, `--seed N`, `--keep-logs`,
//! `--no-pms-outage` (skip the 2 s PMS outage), `--redis cluster` (a Redis
//! Cluster of 3 masters with a replica each; the Redis fault kills a master so
//! its replica takes over, and the killed node rejoins as a replica;
//! `--cluster-fault failover` runs `CLUSTER FAILOVER` on a replica instead), and
//! `--sabotage memory-store|no-aof` (a broken set-up: the run then succeeds only
//! if the checks catch the double postings it causes), and `--lose-writes
//! restart|flushall` (below), with `--reconcile-new-keys on|off`.
//!
//! Lost writes. `--lose-writes restart` runs one Redis without persistence (no
//! AOF, no RDB) and, at 65 %, kills it and starts it empty: every idempotency
//! record and journal entry is gone while charges are in flight.
//! `--lose-writes flushall` runs the Cluster and sends `FLUSHALL` to one master
//! (its replica follows), wiping a third of the slots. The processes run with
//! `reconcile_new_keys = true`: every key is looked up at the PMS by its
//! reference before its first POST, because after the loss nothing in Redis
//! says a re-delivery is one. The accounts are then, per key:
//!
//! * double posting: more than one booking (or one applied twice) at the PMS;
//! * lost charge: the POS's last final answer was 200 (posted, or queued and
//!   not refused by the PMS) and the charge is not on the folio, or the
//!   delivery never got a final answer; a charge the POS was told failed
//!   (non-200, or closed at a non-final answer) that is not on the folio is
//!   *not* lost, even when its journal entry was wiped before the PMS answered:
//!   POS and folio agree that it was not charged;
//! * charged without a 200: on the folio while the POS's last final answer was
//!   a refusal (or it had none and did not close the order);
//! * a missing journal entry is counted (wiped), not a violation, and a key
//!   whose final answers differ (its first answer's record was wiped, so a
//!   re-send was decided again) is settled on the last one;
//! * a 200 queued whose queue entry was wiped before the worker posted it is
//!   shown as "LOST with the wiped queue": the charge really is lost (queue
//!   mode keeps its queue in that Redis and nothing else knows of it), but it
//!   is a limit of queue mode on a Redis that loses writes, not a fault the
//!   product can mend, so it is printed and not counted as a violation.

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

use chargebridge::config::WhenPmsUnavailable;
use chargebridge::journal::{Actor, Journal, JournalEntry, JournalState};
use driver::{Counters, Delivered, Final, Plan};
use futures_util::StreamExt;
use pms_sim::{Fault, PmsSimulator, Timing};
use redis_server::{RedisCluster, RedisServer, free_port, wait_for_port};
use rng::Rng;

const BIN: &str = env!("CARGO_BIN_EXE_chargebridge");

/// `[journal] poll_interval` of every process.
const POLL_INTERVAL: Duration = Duration::from_millis(200);
/// How long the workers get, after the driver is done, to close every entry.
const JOURNAL_SETTLE_LIMIT: Duration = Duration::from_secs(30);
/// A fail-mode POST this long after the POS's last answer for its key cannot
/// be the delivery's own (the worker must never post in fail mode).
const LATE_POST_TOLERANCE: Duration = Duration::from_millis(500);

fn mode_name(mode: WhenPmsUnavailable) -> &'static str {
    match mode {
        WhenPmsUnavailable::Fail => "fail",
        WhenPmsUnavailable::Queue => "queue",
    }
}

struct Args {
    deliveries: usize,
    processes: usize,
    concurrency: usize,
    seed: u64,
    keep_logs: bool,
    sabotage: Option<Sabotage>,
    /// Take the PMS down for `PMS_OUTAGE` midway (on unless `--no-pms-outage`).
    pms_outage: bool,
    /// `--redis cluster`: a Redis Cluster (3 masters, 1 replica each) instead
    /// of one server; the Redis fault kills a master (kill -9) so its replica
    /// takes over, instead of crashing the one server.
    cluster: bool,
    /// `--cluster-fault failover`: `CLUSTER FAILOVER` on a replica instead of
    /// kill -9 of a master.
    manual_failover: bool,
    /// `--lose-writes restart|flushall`: the Redis fault loses every record
    /// instead of keeping them.
    lose_writes: Option<LoseWrites>,
    /// `[idempotency] reconcile_new_keys` of every process: on with
    /// `--lose-writes` (the set-up such a Redis needs), off otherwise;
    /// `--reconcile-new-keys on|off` overrides.
    reconcile_new_keys: bool,
    /// `[journal] spool_dir` for every process (a directory each): on unless
    /// `--no-spool`.
    spool: bool,
}

/// How Redis loses its recent writes while charges are in flight (the Redis
/// fault of the run, in place of the crash or the cluster kill).
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum LoseWrites {
    /// One Redis without persistence (no AOF, no RDB) killed with SIGKILL and
    /// started again empty: every idempotency record and journal entry is gone.
    Restart,
    /// `FLUSHALL` on one master of the Redis Cluster (its replica follows):
    /// the records and entries of a third of the slots are gone.
    Flushall,
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
        pms_outage: true,
        cluster: false,
        manual_failover: false,
        lose_writes: None,
        reconcile_new_keys: false,
        spool: true,
    };
    let mut reconcile_new_keys = None;
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
            "--no-pms-outage" => args.pms_outage = false,
            "--no-spool" => args.spool = false,
            "--cluster-fault" => {
                args.manual_failover = match it.next().as_deref() {
                    Some("failover") => true,
                    Some("kill") => false,
                    _ => return Err("--cluster-fault needs kill or failover".into()),
                }
            }
            "--redis" => {
                args.cluster = match it.next().as_deref() {
                    Some("cluster") => true,
                    Some("single") => false,
                    _ => return Err("--redis needs single or cluster".into()),
                }
            }
            "--lose-writes" => {
                args.lose_writes = match it.next().as_deref() {
                    Some("restart") => Some(LoseWrites::Restart),
                    Some("flushall") => Some(LoseWrites::Flushall),
                    _ => return Err("--lose-writes needs restart or flushall".into()),
                }
            }
            "--reconcile-new-keys" => {
                reconcile_new_keys = match it.next().as_deref() {
                    Some("on") => Some(true),
                    Some("off") => Some(false),
                    _ => return Err("--reconcile-new-keys needs on or off".into()),
                }
            }
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
    match args.lose_writes {
        // FLUSHALL of a shard only means something on a Cluster.
        Some(LoseWrites::Flushall) => args.cluster = true,
        Some(LoseWrites::Restart) if args.cluster => {
            return Err("--lose-writes restart is for one Redis (--redis single); \
                        on a cluster use --lose-writes flushall"
                .into());
        }
        _ => {}
    }
    args.reconcile_new_keys = reconcile_new_keys.unwrap_or(args.lose_writes.is_some());
    if args.lose_writes.is_some() && args.sabotage.is_some() {
        return Err("--lose-writes and --sabotage do not go together".into());
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
    fn new(
        dir: &Path,
        n: usize,
        redis_url: &str,
        pms_url: &str,
        store: &str,
        reconcile_new_keys: bool,
        spool: Option<&Path>,
    ) -> Bridge {
        let port = free_port();
        let spool = spool
            .map(|d| format!("spool_dir = \"{}\"\n", d.display()))
            .unwrap_or_default();
        let config = dir.join(format!("bridge-{n}.toml"));
        let tenants: String = driver::TENANTS
            .iter()
            .map(|t| {
                format!(
                    "[[tenants]]\nid = \"{}\"\napi_key = \"{}\"\ncurrency = \"EUR\"\npms = \"hotel\"\n\
                     when_pms_unavailable = \"{}\"\n",
                    t.id,
                    t.api_key,
                    mode_name(t.mode),
                )
            })
            .collect();
        std::fs::write(
            &config,
            format!(
                "[server]\nlisten = \"127.0.0.1:{port}\"\nrequest_deadline = \"2s\"\npms_safety_margin = \"200ms\"\n\
                 [idempotency]\nstore = \"{store}\"\nredis_url = \"{redis_url}\"\nlease = \"3s\"\n\
                 in_flight_wait = \"1s\"\ncommand_timeout = \"500ms\"\n\
                 reconcile_new_keys = {reconcile_new_keys}\n\
                 [journal]\npoll_interval = \"{}ms\"\n{spool}\
                 [log]\nlevel = \"warn\"\nformat = \"json\"\n\
                 {tenants}\
                 [pms.hotel]\nadapter = \"http\"\nurl = \"{pms_url}\"\ntimeout = \"1500ms\"\nmax_retries = 1\n",
                POLL_INTERVAL.as_millis(),
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
    /// Keys Redis held just before it lost its writes (`DBSIZE` of the
    /// restarted server or of the flushed master).
    records_wiped: usize,
    pms_outages: usize,
    pms_outage: Duration,
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

    let aof = args.sabotage != Some(Sabotage::NoAof) && args.lose_writes.is_none();
    let store = if args.sabotage == Some(Sabotage::MemoryStore) {
        "memory"
    } else {
        "redis"
    };
    let redis = Arc::new(std::sync::Mutex::new(if args.cluster {
        Redis::Cluster(RedisCluster::start_with(3, 1))
    } else {
        Redis::Single(RedisServer::start(aof))
    }));
    let redis_url = redis.lock().expect("redis").url();
    let timing = Timing {
        slow: Duration::from_millis(300),
        hold: Duration::from_millis(2_500),
    };
    let pms = Arc::new(PmsSimulator::start(args.seed, 0.10, timing).await);
    let spools: Vec<PathBuf> = (0..args.processes)
        .filter(|_| args.spool && store == "redis")
        .map(|n| dir.path().join(format!("spool-{n}")))
        .collect();
    let bridges: Vec<Bridge> = (0..args.processes)
        .map(|n| {
            Bridge::new(
                dir.path(),
                n,
                &redis_url,
                &pms.url,
                store,
                args.reconcile_new_keys,
                spools.get(n).map(PathBuf::as_path),
            )
        })
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
    if args.cluster {
        println!("chaos: on a Redis Cluster of 3 masters with a replica each");
    }
    match args.lose_writes {
        Some(LoseWrites::Restart) => {
            println!("chaos: Redis without persistence, restarted empty at 65 % (writes lost)")
        }
        Some(LoseWrites::Flushall) => println!("chaos: FLUSHALL of one cluster master at 65 %"),
        None => {}
    }

    let events = tokio::spawn(chaos_events(
        plan.launches.len(),
        args.pms_outage,
        progress.clone(),
        pms.clone(),
        bridges.clone(),
        redis.clone(),
        args.manual_failover,
        args.lose_writes,
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
    // Answers held back by the simulator land before the books are closed, and
    // the workers finish what the deliveries left open. With a memory store
    // per process the journal is in each process's memory: nothing to read.
    let journal = if store == "redis" {
        Some(
            read_journal(
                &redis_url,
                &plan,
                &spools,
                timing.hold,
                JOURNAL_SETTLE_LIMIT,
            )
            .await,
        )
    } else {
        tokio::time::sleep(timing.hold).await;
        None
    };

    let accounts = settle(
        &plan,
        &outcomes,
        &pms,
        journal.as_ref(),
        args.lose_writes.is_some(),
        !spools.is_empty(),
    );
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

/// How long the PMS is down (503 to everything) in the middle of the run.
const PMS_OUTAGE: Duration = Duration::from_secs(2);

/// Kills a bridge mid-posting at 35 % of the launches, takes the PMS down at
/// 50 % and crashes Redis at 65 % (or makes it lose its writes).
#[allow(clippy::too_many_arguments)]
async fn chaos_events(
    launches: usize,
    pms_outage: bool,
    progress: Arc<AtomicUsize>,
    pms: Arc<PmsSimulator>,
    bridges: Arc<std::sync::Mutex<Vec<Bridge>>>,
    redis: Arc<std::sync::Mutex<Redis>>,
    manual_failover: bool,
    lose_writes: Option<LoseWrites>,
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

    if pms_outage {
        reached(0.50).await;
        let down = Instant::now();
        pms.set_down(true);
        tokio::time::sleep(PMS_OUTAGE).await;
        pms.set_down(false);
        events.pms_outages += 1;
        events.pms_outage = down.elapsed();
    }

    reached(0.65).await;
    let down = Instant::now();
    let dbsize = |server: &RedisServer| server.cli(&["dbsize"]).parse::<usize>().unwrap_or(0);
    events.redis_outage =
        tokio::task::block_in_place(|| match &mut *redis.lock().expect("redis") {
            // No persistence: the server comes back empty.
            Redis::Single(redis) if lose_writes == Some(LoseWrites::Restart) => {
                events.records_wiped = dbsize(redis);
                redis.crash();
                std::thread::sleep(Duration::from_secs(1));
                redis.start_again();
                down.elapsed()
            }
            Redis::Cluster(cluster) if lose_writes == Some(LoseWrites::Flushall) => {
                let master = cluster
                    .nodes
                    .iter()
                    .find(|n| n.cli(&["role"]).starts_with("master"))
                    .expect("a master");
                events.records_wiped = dbsize(master);
                let reply = master.cli(&["flushall"]);
                assert_eq!(reply, "OK", "FLUSHALL: {reply}");
                down.elapsed()
            }
            Redis::Single(redis) => {
                redis.crash();
                std::thread::sleep(Duration::from_secs(1));
                redis.start_again();
                down.elapsed()
            }
            Redis::Cluster(cluster) if manual_failover => cluster.fail_over_a_master(),
            Redis::Cluster(cluster) => cluster.kill_a_master(),
        });
    events.redis_crashes += 1;
    events
}

/// The run's Redis: one server, or a Cluster with a replica per master.
enum Redis {
    Single(RedisServer),
    Cluster(RedisCluster),
}

impl Redis {
    fn url(&self) -> String {
        match self {
            Redis::Single(r) => r.url(),
            Redis::Cluster(c) => c.url(),
        }
    }
}

/// The journal as the workers left it.
struct JournalView {
    /// By idempotency key (keys are unique across the run's tenants).
    entries: HashMap<String, JournalEntry>,
    /// From the end of the driver until no entry was `queued` or `unknown`.
    settled_after: Duration,
    /// Entries still `queued` or `unknown` by the census when the wait ended.
    open_at_end: u64,
    /// Keys whose entry could not be read.
    unreadable: Vec<String>,
}

/// Entries `queued` or `unknown`, over every tenant (`None`: Redis not reachable).
async fn open_entries(journal: &Journal) -> Option<u64> {
    let mut open = 0;
    for tenant in &driver::TENANTS {
        let census = journal.census(tenant.id).await.ok()?;
        open += census
            .iter()
            .filter(|(state, _, _)| state.is_open())
            .map(|(_, count, _)| count)
            .sum::<u64>();
    }
    Some(open)
}

/// Queued entries a process still keeps in its spool (not settled yet).
fn spooled_files(dir: &Path) -> usize {
    std::fs::read_dir(dir).map_or(0, |d| {
        d.filter_map(Result::ok)
            .filter(|e| e.path().extension().is_some_and(|x| x == "json"))
            .count()
    })
}

/// Waits (at least `at_least`, at most `at_most`) until no entry is open (and
/// no process's spool holds an unsettled entry), then
/// reads every key's entry.
async fn read_journal(
    redis_url: &str,
    plan: &Plan,
    spools: &[PathBuf],
    at_least: Duration,
    at_most: Duration,
) -> JournalView {
    let journal = Journal::Redis(Box::new(
        chargebridge::journal::redis::RedisJournal::new(
            &secrecy::SecretString::from(redis_url.to_string()),
            Duration::from_secs(2),
            Duration::from_secs(90 * 86_400),
        )
        .expect("journal client"),
    ));
    let started = Instant::now();
    let open_at_end = loop {
        let open = open_entries(&journal).await;
        let waited = started.elapsed();
        // A spooled charge Redis lost is not open until a sweep restores it.
        let spooled = spools.iter().any(|d| spooled_files(d) > 0);
        if (open == Some(0) && !spooled && waited >= at_least) || waited >= at_most {
            break open.unwrap_or(u64::MAX);
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    let settled_after = started.elapsed();
    let journal = &journal;
    let read: Vec<(String, Result<Option<JournalEntry>, String>)> =
        futures_util::stream::iter(plan.charges.iter())
            .map(|charge| async move {
                let mut result = journal.get(charge.tenant().id, &charge.key).await;
                if result.is_err() {
                    tokio::time::sleep(Duration::from_millis(200)).await;
                    result = journal.get(charge.tenant().id, &charge.key).await;
                }
                (charge.key.clone(), result.map_err(|e| e.0))
            })
            .buffer_unordered(32)
            .collect()
            .await;
    let mut view = JournalView {
        entries: HashMap::new(),
        settled_after,
        open_at_end,
        unreadable: Vec::new(),
    };
    for (key, result) in read {
        match result {
            Ok(Some(entry)) => {
                view.entries.insert(key, entry);
            }
            Ok(None) => {}
            Err(e) => view.unreadable.push(format!("{key}: {e}")),
        }
    }
    view
}

/// The books closed: what each key was answered and what the PMS holds.
#[derive(Default)]
struct Accounts {
    keys: usize,
    posted: usize,
    queued: usize,
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
    /// Fail mode: a POST that came after the POS heard its last answer.
    fail_mode_late_post: Vec<String>,
    /// Answered 200 queued, not refused by the PMS, and not on the folio: the
    /// POS was told the charge will be posted, and it never was.
    queued_never_booked: Vec<String>,
    /// `--lose-writes`: answered 200 queued, never posted, and the journal
    /// entry (the queue itself) is gone: the charge was lost with Redis's
    /// writes. Queue mode keeps its queue in Redis, so nothing can post it; a
    /// documented limit of queue mode on a Redis that can lose writes, shown
    /// in the table but not counted as a violation of the product.
    queued_lost_with_queue: Vec<String>,
    /// `--lose-writes`: keys whose final answer changed between deliveries
    /// (the first one's record was wiped); settled on the last answer.
    answer_changed_after_loss: usize,
    /// The run's Redis lost its writes (`--lose-writes`): journal entries may
    /// be gone, so a missing entry is counted, not a violation.
    lost_writes: bool,
    /// The processes kept queued charges in a local spool: a queued charge
    /// lost with Redis's writes is then a violation.
    spool: bool,
    journal: Option<JournalAccounts>,
}

/// The journal's side of the books (only when it is in the shared Redis).
#[derive(Default)]
struct JournalAccounts {
    settled_after: Duration,
    /// Final state by tenant mode.
    states: HashMap<(&'static str, JournalState), usize>,
    /// The POS closed the order without any final answer.
    never_resent: HashMap<&'static str, usize>,
    /// … of which the worker settled (reconciled or posted).
    never_resent_by_worker: HashMap<&'static str, usize>,
    /// … of which ended on the folio.
    never_resent_posted: HashMap<&'static str, usize>,
    /// Keys answered 200 queued, and the ones the worker then posted.
    queued_keys: usize,
    queued_posted_by_worker: usize,
    queued_needs_attention: usize,
    /// No entry, and nothing that could have reached the PMS (the delivery
    /// never got past the store: a kill or Redis outage before the entry).
    no_entry_nothing_sent: usize,
    /// Answered 422 refused, entry `failed` (not `rejected`): the delivery's
    /// write was lost and the worker only found the charge absent.
    refused_but_failed: usize,
    /// `--lose-writes`: keys that reached the journal (or the PMS) and have
    /// no entry at the end: wiped with Redis's writes, never written again.
    entries_wiped: usize,
    entry_missing: Vec<String>,
    entry_open: Vec<String>,
    posted_entry_without_booking: Vec<String>,
    booking_without_posted_entry: Vec<String>,
    failed_entry_posted_later: Vec<String>,
    queued_not_posted: Vec<String>,
    disagrees_with_answer: Vec<String>,
    needs_attention_without_refusal: Vec<String>,
    unexpected_state: Vec<String>,
    unreadable: Vec<String>,
}

impl JournalAccounts {
    fn violations(&self) -> usize {
        self.entry_missing.len()
            + self.entry_open.len()
            + self.posted_entry_without_booking.len()
            + self.booking_without_posted_entry.len()
            + self.failed_entry_posted_later.len()
            + self.queued_not_posted.len()
            + self.disagrees_with_answer.len()
            + self.needs_attention_without_refusal.len()
            + self.unexpected_state.len()
            + self.unreadable.len()
    }
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
            + self.fail_mode_late_post.len()
            + self.queued_never_booked.len()
            + if self.spool {
                self.queued_lost_with_queue.len()
            } else {
                0
            }
            + self.journal.as_ref().map_or(0, JournalAccounts::violations)
    }
}

/// Answers after which the delivery had written its journal entry (the PMS
/// was called, or about to be).
fn implies_entry(transient: &str) -> bool {
    [
        "pms_unavailable",
        "pms_outcome_unknown",
        "deadline_exceeded",
    ]
    .iter()
    .any(|code| transient.ends_with(code))
}

fn settle(
    plan: &Plan,
    outcomes: &[driver::Outcome],
    pms: &PmsSimulator,
    journal: Option<&JournalView>,
    lost_writes: bool,
    spool: bool,
) -> Accounts {
    let mut by_charge: HashMap<usize, Vec<&driver::Outcome>> = HashMap::new();
    for outcome in outcomes {
        by_charge.entry(outcome.charge).or_default().push(outcome);
    }
    let bookings = pms.bookings_by_key();
    let faults = pms.faults_by_key();
    let posts = pms.posts_by_key();
    let mut accounts = Accounts {
        keys: plan.charges.len(),
        lost_writes,
        spool,
        protocol: pms.violations(),
        journal: journal.map(|j| JournalAccounts {
            settled_after: j.settled_after,
            unreadable: j.unreadable.clone(),
            entry_open: if j.open_at_end > 0 {
                vec![format!(
                    "census: {} entries still queued or unknown after {:.1} s",
                    if j.open_at_end == u64::MAX {
                        "?".to_string()
                    } else {
                        j.open_at_end.to_string()
                    },
                    j.settled_after.as_secs_f64()
                )]
            } else {
                Vec::new()
            },
            ..JournalAccounts::default()
        }),
        ..Accounts::default()
    };
    for (i, charge) in plan.charges.iter().enumerate() {
        let key = &charge.key;
        let mode = charge.tenant().mode;
        let delivered = by_charge.get(&i).map(Vec::as_slice).unwrap_or_default();
        let booked = bookings.get(key).map(Vec::as_slice).unwrap_or_default();
        let hit: Vec<Fault> = faults.get(key).cloned().unwrap_or_default();
        let before = accounts.violations();
        if delivered.iter().any(|d| d.answer == Delivered::GaveUp) {
            accounts.lost.push(key.clone());
        }
        let closed = delivered
            .iter()
            .any(|d| matches!(d.answer, Delivered::Closed(_)));
        let finals: Vec<&Final> = delivered
            .iter()
            .filter_map(|d| match &d.answer {
                Delivered::Final(f) => Some(f),
                _ => None,
            })
            .collect();
        let was_queued = finals.contains(&&Final::Queued);
        // `queued` is what the POS hears before the worker posts; a re-send
        // afterwards replays the outcome. Every other final answer must agree.
        let settled: Vec<&Final> = finals
            .iter()
            .copied()
            .filter(|f| **f != Final::Queued)
            .collect();
        let changed = settled.windows(2).any(|w| w[0] != w[1]);
        // Lost writes: the record that replayed the first answer may be gone,
        // so a re-send is decided again (a refusal the PMS no longer makes is
        // posted). The books are then settled on the POS's last answer.
        let answer = if changed && lost_writes {
            accounts.answer_changed_after_loss += 1;
            settled.last().copied()
        } else {
            if changed {
                accounts.inconsistent.push(format!("{key}: {finals:?}"));
            }
            settled.first().or(finals.first()).copied()
        };
        if booked.iter().any(|b| b.applications > 1) || booked.len() > 1 {
            accounts.double_applied.push(key.clone());
        }
        match answer {
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
            Some(Final::Queued) => {
                accounts.queued += 1;
                if booked.is_empty() && !hit.contains(&Fault::Refuse) {
                    let wiped = journal.is_some_and(|j| !j.entries.contains_key(key));
                    if lost_writes && wiped {
                        accounts.queued_lost_with_queue.push(key.clone());
                    } else {
                        accounts.queued_never_booked.push(key.clone());
                    }
                }
                if let Some(one) = booked.first()
                    && one.amount != charge.amount
                {
                    accounts.wrong_amount.push(format!(
                        "{key}: booked {} expected {}",
                        one.amount, charge.amount
                    ));
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
            // Closed by the POS: only the journal can say what is right.
            None if closed => {}
            None => {
                if !booked.is_empty() {
                    accounts.booked_without_200.push(key.clone());
                }
            }
        }
        // Fail mode: nothing is posted behind the staff's back. Every POST of
        // the key must be a delivery's own, so before the POS's last answer.
        if mode == WhenPmsUnavailable::Fail
            && let Some(last) = charge.last_reply()
            && let Some(late) = posts
                .get(key)
                .and_then(|p| p.iter().find(|t| **t > last + LATE_POST_TOLERANCE))
        {
            accounts.fail_mode_late_post.push(format!(
                "{key}: POST {:.1} s after the POS's last answer",
                (*late - last).as_secs_f64()
            ));
        }
        if let (Some(view), Some(ja)) = (journal, accounts.journal.as_mut()) {
            let refused_by_pms = hit.contains(&Fault::Refuse);
            let expects_entry = !finals.is_empty()
                || !booked.is_empty()
                || delivered
                    .iter()
                    .flat_map(|d| d.transient.iter())
                    .any(|t| implies_entry(t));
            match view.entries.get(key) {
                None if expects_entry && accounts.lost_writes => ja.entries_wiped += 1,
                None if expects_entry => ja.entry_missing.push(format!(
                    "{key} ({}; answers {:?}; {} bookings)",
                    mode_name(mode),
                    delivered.iter().map(|d| &d.answer).collect::<Vec<_>>(),
                    booked.len()
                )),
                None => ja.no_entry_nothing_sent += 1,
                Some(entry) => {
                    let state = entry.state;
                    *ja.states.entry((mode_name(mode), state)).or_default() += 1;
                    let by_worker = entry.worker_attempts > 0
                        || entry.attempts.iter().any(|a| a.by == Actor::Worker);
                    let first_post = posts.get(key).and_then(|p| p.first()).copied();
                    let describe = || {
                        format!(
                            "{key} ({}, {}; answers {:?}; attempts {:?})",
                            mode_name(mode),
                            state.as_str(),
                            delivered.iter().map(|d| &d.answer).collect::<Vec<_>>(),
                            entry
                                .attempts
                                .iter()
                                .map(|a| format!("{:?}:{}", a.by, a.outcome))
                                .collect::<Vec<_>>()
                        )
                    };
                    if entry.mode != mode {
                        ja.unexpected_state
                            .push(format!("{key}: entry mode {:?}", entry.mode));
                    }
                    match state {
                        JournalState::Queued | JournalState::Unknown => {
                            ja.entry_open.push(describe())
                        }
                        JournalState::Posted => {
                            let named = entry
                                .postings
                                .first()
                                .and_then(|p| p.pms_reference.as_ref());
                            match booked.first() {
                                None => ja.posted_entry_without_booking.push(describe()),
                                Some(one) if named != Some(&one.pms_reference) => {
                                    ja.posted_entry_without_booking.push(format!(
                                        "{}: entry names {named:?}, booked {}",
                                        describe(),
                                        one.pms_reference
                                    ))
                                }
                                Some(_) => {}
                            }
                        }
                        JournalState::Failed
                        | JournalState::Rejected
                        | JournalState::NeedsAttention
                            if !booked.is_empty() =>
                        {
                            let after_pos = match (first_post, charge.last_reply()) {
                                (Some(post), Some(last)) => post > last + LATE_POST_TOLERANCE,
                                _ => false,
                            };
                            if state == JournalState::Failed && after_pos {
                                ja.failed_entry_posted_later.push(describe());
                            } else {
                                ja.booking_without_posted_entry.push(describe());
                            }
                        }
                        JournalState::Failed
                        | JournalState::Rejected
                        | JournalState::NeedsAttention => {}
                        JournalState::Acknowledged | JournalState::Resolved => {
                            ja.unexpected_state.push(describe())
                        }
                    }
                    if state == JournalState::NeedsAttention && !refused_by_pms {
                        ja.needs_attention_without_refusal.push(describe());
                    }
                    // The entry tells what the POS heard.
                    let agrees = match answer {
                        Some(Final::Posted { .. }) => state == JournalState::Posted,
                        Some(Final::Refused) if was_queued => state == JournalState::NeedsAttention,
                        // The refusal's own write lost (Redis down): the worker
                        // finds nothing at the PMS and says `failed`. Not on the
                        // folio either way (a booking is caught above).
                        Some(Final::Refused) if state == JournalState::Failed => {
                            ja.refused_but_failed += 1;
                            true
                        }
                        Some(Final::Refused) => state == JournalState::Rejected,
                        Some(Final::Queued) => {
                            let ok = state == JournalState::Posted
                                || (state == JournalState::NeedsAttention && refused_by_pms);
                            if !ok {
                                ja.queued_not_posted.push(describe());
                            }
                            true
                        }
                        Some(Final::Unexpected { .. }) | None => true,
                    };
                    if !agrees {
                        ja.disagrees_with_answer.push(describe());
                    }
                    if was_queued {
                        ja.queued_keys += 1;
                        if state == JournalState::Posted && by_worker {
                            ja.queued_posted_by_worker += 1;
                        }
                        if state == JournalState::NeedsAttention {
                            ja.queued_needs_attention += 1;
                        }
                    }
                    if closed && finals.is_empty() {
                        *ja.never_resent.entry(mode_name(mode)).or_default() += 1;
                        if by_worker {
                            *ja.never_resent_by_worker
                                .entry(mode_name(mode))
                                .or_default() += 1;
                        }
                        if state == JournalState::Posted {
                            *ja.never_resent_posted.entry(mode_name(mode)).or_default() += 1;
                        }
                    }
                }
            }
            if !view.entries.contains_key(key) && closed && finals.is_empty() {
                *ja.never_resent.entry(mode_name(mode)).or_default() += 1;
            }
        }
        let clean = accounts.violations() == before;
        if clean && matches!(answer, Some(Final::Posted { .. })) {
            accounts.exactly_once += 1;
        }
        let mut hit = hit;
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
    let by_mode = |mode: WhenPmsUnavailable| {
        plan.charges
            .iter()
            .filter(|c| c.tenant().mode == mode)
            .count()
    };
    row(
        "tenants",
        format!(
            "fail {} charges, queue {} charges (journal poll {} ms)",
            by_mode(WhenPmsUnavailable::Fail),
            by_mode(WhenPmsUnavailable::Queue),
            POLL_INTERVAL.as_millis()
        ),
    );
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
        "orders closed by the POS (no retry)",
        format!(
            "{} deliveries closed at an answer that is not final, {} re-sends not made ({} charges may close, {:.0} %)",
            counters.closed_orders.load(Ordering::Relaxed),
            counters.skipped_resends.load(Ordering::Relaxed),
            plan.charges.iter().filter(|c| c.closes_on_failure).count(),
            driver::CLOSE_SHARE * 100.0
        ),
    );
    row(
        "final answers by key",
        format!(
            "200 posted {}, 200 queued {}, 422 refused by the PMS {}",
            accounts.posted, accounts.queued, accounts.refused
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
        "PMS outage (503 to every POST and lookup)",
        format!(
            "{} ({:.1} s, {} requests refused)",
            events.pms_outages,
            events.pms_outage.as_secs_f64(),
            pms.refused_while_down()
        ),
    );
    row(
        if args.lose_writes == Some(LoseWrites::Restart) {
            "redis lost its writes (SIGKILL, no AOF/RDB)"
        } else if args.lose_writes == Some(LoseWrites::Flushall) {
            "redis lost its writes (FLUSHALL of a master)"
        } else if args.cluster && args.manual_failover {
            "CLUSTER FAILOVER (a replica takes over)"
        } else if args.cluster {
            "cluster master kill -9, replica takes over"
        } else {
            "redis crash (SIGKILL, AOF on) and restart"
        },
        format!(
            "{} ({:.1} s down)",
            events.redis_crashes,
            events.redis_outage.as_secs_f64()
        ),
    );
    if args.lose_writes.is_some() {
        row(
            "records wiped (keys Redis held at the loss)",
            events.records_wiped.to_string(),
        );
    }
    row(
        "reconcile_new_keys (lookup before every first POST)",
        if args.reconcile_new_keys { "on" } else { "off" }.to_string(),
    );
    match &accounts.journal {
        None => row(
            "journal",
            "not checked (each process keeps its own in memory)".to_string(),
        ),
        Some(ja) => {
            for mode in [WhenPmsUnavailable::Fail, WhenPmsUnavailable::Queue] {
                let n = |state: JournalState| {
                    ja.states
                        .get(&(mode_name(mode), state))
                        .copied()
                        .unwrap_or(0)
                };
                let other: usize = JournalState::ALL
                    .iter()
                    .filter(|s| {
                        !matches!(
                            s,
                            JournalState::Posted
                                | JournalState::Failed
                                | JournalState::Rejected
                                | JournalState::NeedsAttention
                        )
                    })
                    .map(|s| n(*s))
                    .sum();
                row(
                    &format!("journal {}", mode_name(mode)),
                    format!(
                        "posted {} / failed {} / rejected {} / needs_attention {}{}",
                        n(JournalState::Posted),
                        n(JournalState::Failed),
                        n(JournalState::Rejected),
                        n(JournalState::NeedsAttention),
                        if other > 0 {
                            format!(" / other {other}")
                        } else {
                            String::new()
                        }
                    ),
                );
            }
            let get = |m: &HashMap<&'static str, usize>, mode| {
                m.get(mode_name(mode)).copied().unwrap_or(0)
            };
            let total = |m: &HashMap<&'static str, usize>| m.values().sum::<usize>();
            row(
                "charges never re-sent",
                format!(
                    "{} (settled by the worker: {}; on the folio: {}) [fail {} / {} by the worker; queue {} / {}]",
                    total(&ja.never_resent),
                    total(&ja.never_resent_by_worker),
                    total(&ja.never_resent_posted),
                    get(&ja.never_resent, WhenPmsUnavailable::Fail),
                    get(&ja.never_resent_by_worker, WhenPmsUnavailable::Fail),
                    get(&ja.never_resent, WhenPmsUnavailable::Queue),
                    get(&ja.never_resent_by_worker, WhenPmsUnavailable::Queue),
                ),
            );
            row(
                "answered 200 queued",
                format!(
                    "{} keys (posted by the worker {}, needs_attention after a refusal {})",
                    ja.queued_keys, ja.queued_posted_by_worker, ja.queued_needs_attention
                ),
            );
            row(
                "no entry, nothing sent to the PMS",
                format!(
                    "{} keys (stopped before the journal)",
                    ja.no_entry_nothing_sent
                ),
            );
            if accounts.lost_writes {
                row(
                    "final answer changed after the loss",
                    format!(
                        "{} keys (record wiped, re-send decided again; books settled on the last answer)",
                        accounts.answer_changed_after_loss
                    ),
                );
                row(
                    "journal entries wiped, never written again",
                    format!(
                        "{} keys (not a violation with --lose-writes)",
                        ja.entries_wiped
                    ),
                );
            }
            row(
                "422 at the POS, entry failed (not rejected)",
                format!(
                    "{} keys (the refusal's journal write was lost)",
                    ja.refused_but_failed
                ),
            );
            row(
                "journal settled (nothing queued/unknown)",
                format!(
                    "{:.1} s after the last delivery (limit {} s)",
                    ja.settled_after.as_secs_f64(),
                    JOURNAL_SETTLE_LIMIT.as_secs()
                ),
            );
        }
    }
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
        "lost (200 queued, never on the folio)",
        &accounts.queued_never_booked,
    );
    if accounts.lost_writes && accounts.spool {
        check(
            "LOST with the wiped queue (200 queued; spooled)",
            &accounts.queued_lost_with_queue,
        );
    } else if accounts.lost_writes {
        println!(
            "  {:<44} {:>6}  without journal.spool_dir, queue mode needs a Redis that keeps its writes (not counted)",
            "LOST with the wiped queue (200 queued)",
            accounts.queued_lost_with_queue.len(),
        );
        for example in accounts.queued_lost_with_queue.iter().take(5) {
            println!("      {example}");
        }
    }
    check(
        "different final answers for one key",
        &accounts.inconsistent,
    );
    check("unexpected final answers", &accounts.unexpected);
    check("protocol violations seen by the PMS", &accounts.protocol);
    check(
        "fail mode: POST after the POS's last answer",
        &accounts.fail_mode_late_post,
    );
    if let Some(ja) = &accounts.journal {
        check("journal: entry missing", &ja.entry_missing);
        check("journal: entry still open", &ja.entry_open);
        check(
            "journal: posted entry without a booking",
            &ja.posted_entry_without_booking,
        );
        check(
            "journal: booking without a posted entry",
            &ja.booking_without_posted_entry,
        );
        check(
            "journal: failed entry posted later",
            &ja.failed_entry_posted_later,
        );
        check(
            "journal: queued (200) but not posted",
            &ja.queued_not_posted,
        );
        check(
            "journal: entry contradicts the POS's answer",
            &ja.disagrees_with_answer,
        );
        check(
            "journal: needs_attention without a refusal",
            &ja.needs_attention_without_refusal,
        );
        check(
            "journal: entry in an unexpected state",
            &ja.unexpected_state,
        );
        check("journal: entry unreadable", &ja.unreadable);
    }
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
