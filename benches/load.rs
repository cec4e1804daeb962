//! Load benchmark: chargebridge (Redis store, memory PMS) against a baseline
//! actix-web handler that parses the same JSON and makes the same number of
//! Redis round trips a straightforward implementation makes. Results are ratios
//! to that baseline, because absolute numbers on a shared machine are noise.
//!
//! `cargo bench --bench load` starts its own redis-server, both servers (as
//! separate processes, so their peak RSS can be read), drives them over HTTP/1.1
//! keep-alive connections from this process, and rewrites `BENCHMARKS.md`.
//! Then (issue 19) a slow PMS: fresh chargebridge processes whose memory PMS
//! answers postings in 200 ms, 1 s and 3 s, driven at the same concurrency
//! while `/healthz` and guest searches are probed; and 50 simulated POS devices
//! typing names into the guest search (PMS calls against distinct terms).
//! Options (after `--`): `--seconds N` per run (default 8), `--connections N`
//! (default 64), `--quick` (2 s runs, no growth runs, shorter slow-PMS and
//! search runs), `--no-write`.

use std::fmt::Write as _;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

const SEED: &str = include_str!("../fixtures/payloads/seed-example.json");

/// What the profile shows and what each change bought: written by hand, kept
/// in the generated file so that one command reproduces all of it.
const NOTES: &str = include_str!("load-notes.md");

/// The issue's targets, each with the measured value and whether it is met.
fn targets_table(against: &[(&str, f64, f64)], peak_rss_kib: u64, errors: u64) -> String {
    let ratio = |name: &str| {
        against
            .iter()
            .find(|(label, _, _)| *label == name)
            .map_or(0.0, |(_, rps, _)| *rps)
    };
    let worst_p99 = against.iter().map(|(_, _, p99)| *p99).fold(0.0, f64::max);
    let rss_mib = peak_rss_kib as f64 / 1024.0;
    let met = |ok: bool| if ok { "met" } else { "**not met**" };
    let mut out = String::from(
        "## Targets\n\n| target | measured | | why not (see *What stands in the way*) |\n|---|---:|---|---|\n",
    );
    for (target, measured, ok, why) in [
        (
            "unique deliveries ≥ 85 % of the baseline's throughput",
            format!("{:.0} %", 100.0 * ratio("unique")),
            ratio("unique") >= 0.85,
            "the journal: two durable entry writes per charge (three Lua scripts in Redis, \
             the entry's JSON twice) against the baseline's two plain commands",
        ),
        (
            "replays ≥ 100 % of the baseline's repeated-key throughput",
            format!("{:.0} %", 100.0 * ratio("replays")),
            ratio("replays") >= 1.0,
            "a replay still reads the tenant's credentials, checks the API key and \
             fingerprints the whole body before it may answer; the baseline does neither",
        ),
        (
            "p99 ≤ 2× the baseline's p99 (worst run)",
            format!("{worst_p99:.2}×"),
            worst_p99 <= 2.0,
            "follows throughput: on two saturated cores a queue of 64 connections waits \
             as long as each delivery's CPU",
        ),
        (
            "peak RSS under load ≤ 32 MiB",
            format!("{rss_mib:.1} MiB"),
            rss_mib <= 32.0,
            "",
        ),
        ("no error responses", errors.to_string(), errors == 0, ""),
    ] {
        let why = if ok { "" } else { why };
        let _ = writeln!(out, "| {target} | {measured} | {} | {why} |", met(ok));
    }
    out
}

// ---------------------------------------------------------------------------
// Baseline server (run as a child process of this bench: `--baseline-server`).

mod baseline {
    use actix_web::{App, HttpRequest, HttpResponse, HttpServer, web};
    use redis::AsyncCommands;

    struct State {
        redis: redis::aio::ConnectionManager,
    }

    async fn charge(req: HttpRequest, body: web::Bytes, state: web::Data<State>) -> HttpResponse {
        let Some(key) = req
            .headers()
            .get("x-lightspeed-idempotency-key")
            .and_then(|v| v.to_str().ok())
        else {
            return HttpResponse::BadRequest().finish();
        };
        // The same parse as the real handler's model: a full JSON document.
        let value: serde_json::Value = match serde_json::from_slice(&body) {
            Ok(v) => v,
            Err(_) => return HttpResponse::BadRequest().finish(),
        };
        let record_key = format!("baseline:{key}");
        let mut conn = state.redis.clone();
        // Round trip 1: claim.
        let claimed: Option<String> = match redis::cmd("SET")
            .arg(&record_key)
            .arg("in_progress")
            .arg("NX")
            .arg("PX")
            .arg(30_000)
            .query_async(&mut conn)
            .await
        {
            Ok(v) => v,
            Err(_) => return HttpResponse::InternalServerError().finish(),
        };
        let body = if claimed.is_some() {
            // Round trip 2: store the answer.
            let answer = format!(
                r#"{{"status":"posted","pmsReference":"B-1","idempotencyKey":"{key}","n":{}}}"#,
                value.as_object().map_or(0, |o| o.len())
            );
            let stored: Result<(), _> = conn.set_ex(&record_key, &answer, 604_800).await;
            if stored.is_err() {
                return HttpResponse::InternalServerError().finish();
            }
            answer
        } else {
            // Round trip 2: read the stored answer.
            match conn.get::<_, Option<String>>(&record_key).await {
                Ok(Some(answer)) => answer,
                _ => return HttpResponse::InternalServerError().finish(),
            }
        };
        HttpResponse::Ok()
            .content_type("application/json")
            .body(body)
    }

    pub fn serve(port: u16, redis_url: &str) -> std::io::Result<()> {
        let system = actix_web::rt::System::new();
        let url = redis_url.to_string();
        system.block_on(async move {
            let client = redis::Client::open(url.as_str()).map_err(std::io::Error::other)?;
            let redis = client
                .get_connection_manager()
                .await
                .map_err(std::io::Error::other)?;
            let state = web::Data::new(State { redis });
            HttpServer::new(move || {
                App::new()
                    .app_data(state.clone())
                    .app_data(web::PayloadConfig::new(1 << 20))
                    .route("/lightspeed/charge", web::post().to(charge))
            })
            .bind(("127.0.0.1", port))?
            .run()
            .await
        })
    }
}

// ---------------------------------------------------------------------------
// Processes.

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

fn wait_for_port(port: u16) {
    let start = Instant::now();
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(
            start.elapsed() < Duration::from_secs(20),
            "port {port} never opened"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

struct Proc(Child);

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

impl Proc {
    /// Current resident set size (VmRSS) in KiB.
    fn rss_kib(&self) -> u64 {
        rss_of(self.0.id())
    }

    /// Peak resident set size (VmHWM) in KiB.
    fn peak_rss_kib(&self) -> u64 {
        std::fs::read_to_string(format!("/proc/{}/status", self.0.id()))
            .ok()
            .and_then(|s| {
                s.lines()
                    .find(|l| l.starts_with("VmHWM:"))
                    .and_then(|l| l.split_whitespace().nth(1))
                    .and_then(|v| v.parse().ok())
            })
            .unwrap_or(0)
    }
}

/// VmRSS of a process in KiB (0 when it cannot be read).
fn rss_of(pid: u32) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmRSS:"))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|v| v.parse().ok())
        })
        .unwrap_or(0)
}

fn start_redis() -> (Proc, u16) {
    let port = free_port();
    let dir = std::env::temp_dir().join(format!("cb-bench-redis-{port}"));
    let _ = std::fs::create_dir_all(&dir);
    let child = Command::new("redis-server")
        .args([
            "--port",
            &port.to_string(),
            "--bind",
            "127.0.0.1",
            "--save",
            "",
            "--appendonly",
            "no",
            // The growth run fills Redis with `DEBUG POPULATE` (refused by
            // default since Redis 7: the "1 million records" row had none).
            "--enable-debug-command",
            "local",
        ])
        .arg("--dir")
        .arg(&dir)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("redis-server on PATH");
    wait_for_port(port);
    (Proc(child), port)
}

fn redis_cli(port: u16, args: &[&str]) -> String {
    let out = Command::new("redis-cli")
        .arg("-p")
        .arg(port.to_string())
        .args(args)
        .output()
        .expect("redis-cli");
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

fn start_chargebridge(redis_port: u16) -> (Proc, u16) {
    start_chargebridge_with(redis_port, &[])
}

/// chargebridge with extra `CHARGEBRIDGE__…` settings (e.g. a slow memory PMS).
fn start_chargebridge_with(redis_port: u16, extra: &[(&str, String)]) -> (Proc, u16) {
    let port = free_port();
    let mut command = Command::new(env!("CARGO_BIN_EXE_chargebridge"));
    for (key, value) in extra {
        command.env(key, value);
    }
    let child = command
        .arg("serve")
        .env("CHARGEBRIDGE__SERVER__LISTEN", format!("127.0.0.1:{port}"))
        .env("CHARGEBRIDGE__IDEMPOTENCY__STORE", "redis")
        .env(
            "CHARGEBRIDGE__IDEMPOTENCY__REDIS_URL",
            format!("redis://127.0.0.1:{redis_port}"),
        )
        .env("CHARGEBRIDGE__IDEMPOTENCY__ACCEPT_UNSAFE_REDIS", "true")
        .env("CHARGEBRIDGE__LOG__FORMAT", "json")
        // The stand-in PMS keeps its latest postings for inspection; the bench
        // measures the subscriber, so keep that bookkeeping small.
        .env("CHARGEBRIDGE__PMS__DEMO__RETAIN_POSTINGS", "100")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("chargebridge binary");
    wait_for_port(port);
    (Proc(child), port)
}

fn start_baseline(redis_port: u16) -> (Proc, u16) {
    let port = free_port();
    let child = Command::new(std::env::current_exe().unwrap())
        .args([
            "--baseline-server",
            &port.to_string(),
            &format!("redis://127.0.0.1:{redis_port}"),
        ])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("baseline server");
    wait_for_port(port);
    (Proc(child), port)
}

// ---------------------------------------------------------------------------
// Load generator: raw HTTP/1.1 over keep-alive connections.

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Mix {
    /// Every request a new key.
    Unique,
    /// Every request repeats one of a pre-posted set of keys.
    Replays,
    /// 70 % new keys, 30 % duplicates of keys sent moments ago (often in flight).
    Mixed,
}

struct Run {
    /// CPU seconds each watched process (see [`WATCH`]) used during the run.
    cpu_seconds: Vec<f64>,
    requests: u64,
    errors: u64,
    seconds: f64,
    latencies_us: Vec<u32>,
}

impl Run {
    fn rps(&self) -> f64 {
        self.requests as f64 / self.seconds
    }
    fn pct(&self, p: f64) -> f64 {
        if self.latencies_us.is_empty() {
            return 0.0;
        }
        let i = ((self.latencies_us.len() as f64 - 1.0) * p).round() as usize;
        self.latencies_us[i] as f64 / 1000.0
    }
    fn max(&self) -> f64 {
        self.latencies_us.last().copied().unwrap_or(0) as f64 / 1000.0
    }
    /// CPU µs per request of the `i`-th watched process.
    fn cpu_us_per_request(&self, i: usize) -> f64 {
        self.cpu_seconds.get(i).copied().unwrap_or(0.0) * 1e6 / self.requests.max(1) as f64
    }
}

/// Processes whose CPU time a run measures (server, Redis), by pid.
static WATCH: std::sync::Mutex<Vec<u32>> = std::sync::Mutex::new(Vec::new());

fn watch(pids: &[u32]) {
    if let Ok(mut w) = WATCH.lock() {
        *w = pids.to_vec();
    }
}

/// User + system CPU seconds of `pid` so far (0 when it cannot be read).
fn cpu_seconds_of(pid: u32) -> f64 {
    static TICKS: std::sync::OnceLock<f64> = std::sync::OnceLock::new();
    let ticks = *TICKS.get_or_init(|| {
        Command::new("getconf")
            .arg("CLK_TCK")
            .output()
            .ok()
            .and_then(|o| String::from_utf8_lossy(&o.stdout).trim().parse().ok())
            .unwrap_or(100.0)
    });
    std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .ok()
        .and_then(|s| {
            // Fields after the command name (which may hold spaces): state is 3.
            let rest = s.rsplit_once(')')?.1;
            let f: Vec<&str> = rest.split_whitespace().collect();
            let user: f64 = f.get(11)?.parse().ok()?;
            let system: f64 = f.get(12)?.parse().ok()?;
            Some((user + system) / ticks)
        })
        .unwrap_or(0.0)
}

fn watched_cpu() -> Vec<f64> {
    WATCH
        .lock()
        .map(|w| w.iter().map(|p| cpu_seconds_of(*p)).collect())
        .unwrap_or_default()
}

fn request_bytes(key: &str, body: &str) -> Vec<u8> {
    format!(
        "POST /lightspeed/charge HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n\
         Accept: application/json\r\nX-Lightspeed-Idempotency-Key: {key}\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    )
    .into_bytes()
}

/// Sends one request and reads one response; returns the status.
async fn exchange(
    stream: &mut TcpStream,
    request: &[u8],
    buf: &mut Vec<u8>,
) -> std::io::Result<u16> {
    stream.write_all(request).await?;
    buf.clear();
    let mut chunk = [0u8; 8192];
    loop {
        let n = stream.read(&mut chunk).await?;
        if n == 0 {
            return Err(std::io::Error::other("connection closed"));
        }
        buf.extend_from_slice(&chunk[..n]);
        if let Some(head_end) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            let head = std::str::from_utf8(&buf[..head_end]).map_err(std::io::Error::other)?;
            let status: u16 = head
                .split_whitespace()
                .nth(1)
                .and_then(|s| s.parse().ok())
                .ok_or_else(|| std::io::Error::other("bad status line"))?;
            let length: usize = head
                .lines()
                .find_map(|l| {
                    let (k, v) = l.split_once(':')?;
                    k.eq_ignore_ascii_case("content-length")
                        .then(|| v.trim().parse().ok())?
                })
                .unwrap_or(0);
            let total = head_end + 4 + length;
            while buf.len() < total {
                let n = stream.read(&mut chunk).await?;
                if n == 0 {
                    return Err(std::io::Error::other("connection closed mid-body"));
                }
                buf.extend_from_slice(&chunk[..n]);
            }
            return Ok(status);
        }
    }
}

async fn drive(
    port: u16,
    mix: Mix,
    connections: usize,
    seconds: f64,
    body: Arc<String>,
    tag: &str,
) -> Run {
    let counter = Arc::new(AtomicU64::new(0));
    let replay_keys: Arc<Vec<String>> =
        Arc::new((0..1000).map(|i| format!("LS1_{tag}-replay-{i}")).collect());
    if mix == Mix::Replays {
        // Post each replay key once so every measured request is a replay.
        let mut s = TcpStream::connect(("127.0.0.1", port)).await.unwrap();
        let mut buf = Vec::new();
        for k in replay_keys.iter() {
            exchange(&mut s, &request_bytes(k, &body), &mut buf)
                .await
                .unwrap();
        }
    }
    // The run's clock starts after the seeding: in `--quick` mode seeding
    // 1000 keys could otherwise use up the whole run (replays at 0 req/s).
    let deadline = Instant::now() + Duration::from_secs_f64(seconds);
    let cpu_before = watched_cpu();
    let started = Instant::now();
    let mut tasks = Vec::new();
    for c in 0..connections {
        let counter = counter.clone();
        let body = body.clone();
        let replay_keys = replay_keys.clone();
        let tag = tag.to_string();
        tasks.push(tokio::spawn(async move {
            let mut stream = TcpStream::connect(("127.0.0.1", port)).await.unwrap();
            stream.set_nodelay(true).unwrap();
            let mut buf = Vec::with_capacity(16 * 1024);
            let mut latencies = Vec::with_capacity(100_000);
            let mut errors = 0u64;
            let mut i: u64 = 0;
            while Instant::now() < deadline {
                let n = counter.fetch_add(1, Ordering::Relaxed);
                let key = match mix {
                    Mix::Unique => format!("LS1_{tag}-{c}-{i}"),
                    Mix::Replays => replay_keys[(n % replay_keys.len() as u64) as usize].clone(),
                    // 30 %: one of a small pool of hot keys shared by every
                    // connection (rotating every 5000 requests), so duplicates
                    // of one key are often in flight at once.
                    Mix::Mixed if n % 10 < 3 => format!("LS1_{tag}-hot-{}-{}", n % 64, n / 5000),
                    Mix::Mixed => format!("LS1_{tag}-{c}-{i}"),
                };
                i += 1;
                let request = request_bytes(&key, &body);
                let t = Instant::now();
                match exchange(&mut stream, &request, &mut buf).await {
                    Ok(200) => latencies.push(t.elapsed().as_micros().min(u32::MAX as u128) as u32),
                    Ok(status) => {
                        if errors == 0 {
                            eprintln!(
                                "first error status {status}: {}",
                                String::from_utf8_lossy(&buf)
                            );
                        }
                        errors += 1;
                        latencies.push(t.elapsed().as_micros().min(u32::MAX as u128) as u32);
                    }
                    Err(_) => {
                        errors += 1;
                        stream = match TcpStream::connect(("127.0.0.1", port)).await {
                            Ok(s) => s,
                            Err(_) => break,
                        };
                    }
                }
            }
            (latencies, errors)
        }));
    }
    let mut latencies_us = Vec::new();
    let mut errors = 0;
    for t in tasks {
        let (l, e) = t.await.unwrap();
        latencies_us.extend(l);
        errors += e;
    }
    let seconds = started.elapsed().as_secs_f64();
    let cpu_seconds = watched_cpu()
        .iter()
        .zip(&cpu_before)
        .map(|(after, before)| after - before)
        .collect();
    latencies_us.sort_unstable();
    Run {
        cpu_seconds,
        requests: latencies_us.len() as u64,
        errors,
        seconds,
        latencies_us,
    }
}

// ---------------------------------------------------------------------------
// A slow PMS (issue 19): postings that take 200 ms, 1 s, 3 s; meanwhile health
// checks and guest searches must still answer at once.

/// The service's own limit on requests in flight: actix-web's
/// `max_connections` per worker (the bench config's default) times the workers
/// (one per core unless `server.workers` is set). There is no other concurrency
/// limit on deliveries (no PMS bulkhead, the Redis client multiplexes).
const MAX_CONNECTIONS_PER_WORKER: usize = 1000;

fn http_get(path: &str) -> Vec<u8> {
    format!("GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nAccept: application/json\r\n\r\n")
        .into_bytes()
}

/// The body of the response `exchange` left in `buf`.
fn body_of(buf: &[u8]) -> &[u8] {
    buf.windows(4)
        .position(|w| w == b"\r\n\r\n")
        .map_or(&[][..], |i| &buf[i + 4..])
}

fn micros(d: Duration) -> u32 {
    d.as_micros().min(u32::MAX as u128) as u32
}

/// Percentile in ms of sorted microsecond samples.
fn pct_ms(sorted_us: &[u32], p: f64) -> f64 {
    if sorted_us.is_empty() {
        return 0.0;
    }
    let i = ((sorted_us.len() as f64 - 1.0) * p).round() as usize;
    sorted_us[i] as f64 / 1000.0
}

fn search_path(term: &str) -> String {
    format!(
        "/lightspeed/search?term={term}&businessExternalReference=quickbooks-123&apiKey=quickbooks-key-345"
    )
}

struct Probes {
    health_us: Vec<u32>,
    search_us: Vec<u32>,
    failures: u64,
}

/// `count` sequential probes of `/healthz` and of a guest search (a new term
/// each time, so every one is a PMS call, not a cache hit), `gap` apart.
async fn probe(port: u16, count: usize, gap: Duration, tag: &str) -> Probes {
    let mut health = TcpStream::connect(("127.0.0.1", port)).await.unwrap();
    let mut search = TcpStream::connect(("127.0.0.1", port)).await.unwrap();
    health.set_nodelay(true).unwrap();
    search.set_nodelay(true).unwrap();
    let mut buf = Vec::new();
    let mut out = Probes {
        health_us: Vec::new(),
        search_us: Vec::new(),
        failures: 0,
    };
    for i in 0..count {
        let t = Instant::now();
        match exchange(&mut health, &http_get("/healthz"), &mut buf).await {
            Ok(200) => {}
            _ => out.failures += 1,
        }
        out.health_us.push(micros(t.elapsed()));
        let t = Instant::now();
        let ok = matches!(
            exchange(
                &mut search,
                &http_get(&search_path(&format!("probe{tag}x{i}"))),
                &mut buf
            )
            .await,
            Ok(200)
        ) && body_of(&buf).starts_with(br#"{"success":true"#);
        if !ok {
            out.failures += 1;
        }
        out.search_us.push(micros(t.elapsed()));
        tokio::time::sleep(gap).await;
    }
    out.health_us.sort_unstable();
    out.search_us.sort_unstable();
    out
}

struct SlowRow {
    delay: Duration,
    run: Run,
    expected_rps: f64,
    in_flight: f64,
    idle_rss_kib: u64,
    load_rss_kib: u64,
    probes: Probes,
}

impl SlowRow {
    fn kib_per_in_flight(&self) -> f64 {
        self.load_rss_kib.saturating_sub(self.idle_rss_kib) as f64 / self.in_flight.max(1.0)
    }
}

/// One slow-PMS run on a fresh chargebridge: idle RSS, then unique deliveries
/// at `conns` connections with RSS sampled and probes sent while they run.
fn slow_run(
    rt: &tokio::runtime::Runtime,
    redis_port: u16,
    delay: Duration,
    conns: usize,
    seconds: f64,
    probes: usize,
    cap: usize,
) -> SlowRow {
    let ms = delay.as_millis();
    let (cb, port) = start_chargebridge_with(
        redis_port,
        &[
            ("CHARGEBRIDGE__SERVER__REQUEST_DEADLINE", "10s".to_string()),
            ("CHARGEBRIDGE__PMS__DEMO__FAULT", "slow".to_string()),
            ("CHARGEBRIDGE__PMS__DEMO__SLOW_DELAY", format!("{ms}ms")),
        ],
    );
    let pid = cb.0.id();
    // Idle: started and answering, no delivery yet.
    rt.block_on(async {
        let mut s = TcpStream::connect(("127.0.0.1", port)).await.unwrap();
        let mut buf = Vec::new();
        for _ in 0..3 {
            let _ = exchange(&mut s, &http_get("/healthz"), &mut buf).await;
        }
        tokio::time::sleep(Duration::from_millis(300)).await;
    });
    let idle_rss_kib = cb.rss_kib();
    let tag = format!("slow{ms}");
    let (run, probes, load_rss_kib) = rt.block_on(async {
        let done = Arc::new(std::sync::atomic::AtomicBool::new(false));
        let sampler = {
            let done = done.clone();
            tokio::spawn(async move {
                let mut peak = 0;
                while !done.load(Ordering::Relaxed) {
                    peak = peak.max(rss_of(pid));
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
                peak
            })
        };
        let load = {
            let tag = tag.clone();
            tokio::spawn(async move {
                drive(
                    port,
                    Mix::Unique,
                    conns,
                    seconds,
                    Arc::new(SEED.to_string()),
                    &tag,
                )
                .await
            })
        };
        // Let every connection's first posting reach the PMS, then probe.
        tokio::time::sleep(Duration::from_millis(300)).await;
        let probes = probe(port, probes, Duration::from_millis(20), &tag).await;
        let run = load.await.unwrap();
        done.store(true, Ordering::Relaxed);
        (run, probes, sampler.await.unwrap())
    });
    let mean_s = run.latencies_us.iter().map(|&u| u as f64).sum::<f64>()
        / run.latencies_us.len().max(1) as f64
        / 1e6;
    let in_flight = run.rps() * mean_s;
    drop(cb);
    SlowRow {
        delay,
        expected_rps: conns.min(cap) as f64 / delay.as_secs_f64(),
        in_flight,
        idle_rss_kib,
        load_rss_kib,
        probes,
        run,
    }
}

fn slow_section(rows: &[SlowRow], conns: usize, cap: usize, workers: usize) -> String {
    let mut out = String::new();
    let seconds: Vec<String> = rows
        .iter()
        .map(|r| format!("{:.1}", r.run.seconds))
        .collect();
    let probes = rows.first().map_or(0, |r| r.probes.health_us.len());
    let _ = writeln!(
        out,
        "## Slow PMS\n\n\
         The memory PMS answers every posting after a fixed delay (`fault = \"slow\"`, `slow_delay`); \
         `server.request_deadline` is 10 s (within Lightspeed's window), so even 3 s fits. A fresh \
         chargebridge (Redis store) per delay, driven by {conns} keep-alive connections of unique \
         deliveries (runs of {} s, each long enough for several postings per connection). \
         Expected req/s is Little's law: in-flight / PMS latency, with in-flight = min(connections, \
         the service's limit of `max_connections` × workers = {MAX_CONNECTIONS_PER_WORKER} × {workers} = {cap}); \
         nothing else bounds deliveries in flight. In flight (measured) = req/s × mean latency. RSS is \
         the service's VmRSS: idle after start, peak of 100 ms samples under load; KiB per in-flight \
         delivery = (RSS under load − idle RSS) / in flight. While the postings run, {probes} sequential \
         probes each of `GET /healthz` and `GET /lightspeed/search` (a new term each time, so each one \
         is a PMS search call; `search_delay` 0) are sent, 20 ms apart, on their own connections.\n",
        seconds.join(" / ")
    );
    let _ = writeln!(
        out,
        "| PMS latency | req/s | expected req/s | p50 ms | p99 ms | errors | in flight | idle RSS MiB | RSS under load MiB | KiB per in-flight delivery | /healthz p99 ms | search p99 ms |"
    );
    let _ = writeln!(
        out,
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|"
    );
    for r in rows {
        let _ = writeln!(
            out,
            "| {} ms | {:.1} | {:.1} | {:.2} | {:.2} | {} | {:.1} | {:.1} | {:.1} | {:.1} | {:.2} | {:.2} |",
            r.delay.as_millis(),
            r.run.rps(),
            r.expected_rps,
            r.run.pct(0.5),
            r.run.pct(0.99),
            r.run.errors,
            r.in_flight,
            r.idle_rss_kib as f64 / 1024.0,
            r.load_rss_kib as f64 / 1024.0,
            r.kib_per_in_flight(),
            pct_ms(&r.probes.health_us, 0.99),
            pct_ms(&r.probes.search_us, 0.99),
        );
    }
    // A missed target names the run that missed it.
    let verdict = |ok: bool, why: String| {
        if ok {
            "met".to_string()
        } else {
            format!("**not met** ({why})")
        }
    };
    let label = |r: &SlowRow| format!("{} ms", r.delay.as_millis());
    let worst_by = |f: &dyn Fn(&SlowRow) -> f64, lowest: bool| {
        rows.iter()
            .map(|r| (f(r), label(r)))
            .reduce(|a, b| if (b.0 < a.0) == lowest { b } else { a })
            .unwrap_or((0.0, String::new()))
    };
    let (worst_ratio, ratio_at) = worst_by(&|r| r.run.rps() / r.expected_rps, true);
    let (worst_overhead, overhead_at) =
        worst_by(&|r| r.run.pct(0.99) - r.delay.as_secs_f64() * 1000.0, false);
    let (worst_health, health_at) = worst_by(&|r| pct_ms(&r.probes.health_us, 0.99), false);
    let (worst_search, search_at) = worst_by(&|r| pct_ms(&r.probes.search_us, 0.99), false);
    let probe_failures: u64 = rows.iter().map(|r| r.probes.failures).sum();
    let errors: u64 = rows.iter().map(|r| r.run.errors).sum();
    let (peak_rss, rss_at) = worst_by(&|r| r.load_rss_kib as f64 / 1024.0, false);
    let _ = writeln!(out, "\n| target | measured | |\n|---|---:|---|");
    for (target, measured, verdict) in [
        (
            "throughput ≥ 90 % of Little's law (worst delay)".to_string(),
            format!("{:.0} %", 100.0 * worst_ratio),
            verdict(
                worst_ratio >= 0.9,
                format!("at {ratio_at}: deliveries wait beyond the PMS's own time"),
            ),
        ),
        (
            "p99 ≤ PMS latency + 100 ms (worst delay)".to_string(),
            format!("+{worst_overhead:.1} ms"),
            verdict(worst_overhead <= 100.0, format!("at {overhead_at}")),
        ),
        (
            "health checks never stuck behind postings: /healthz p99 ≤ 50 ms (worst)".to_string(),
            format!("{worst_health:.2} ms"),
            verdict(worst_health <= 50.0, format!("at {health_at}")),
        ),
        (
            "searches never stuck behind postings: search p99 ≤ 50 ms (worst)".to_string(),
            format!("{worst_search:.2} ms"),
            verdict(worst_search <= 50.0, format!("at {search_at}")),
        ),
        (
            format!("RSS under load ≤ 32 MiB with {conns} postings in flight"),
            format!("{peak_rss:.1} MiB"),
            verdict(peak_rss <= 32.0, format!("at {rss_at}")),
        ),
        (
            "no error responses (deliveries and probes)".to_string(),
            (errors + probe_failures).to_string(),
            verdict(
                errors + probe_failures == 0,
                format!("{errors} deliveries, {probe_failures} probes"),
            ),
        ),
    ] {
        let _ = writeln!(out, "| {target} | {measured} | {verdict} |");
    }
    out
}

// ---------------------------------------------------------------------------
// Guest searches from many POS devices typing names (issue 19).

/// Surnames the devices type; several share prefixes ("Jan…", "Mar…", "Smi…").
const NAMES: &[&str] = &[
    "Jane", "Jansen", "Janssen", "Johnson", "Jones", "Smith", "Smits", "Muller", "Martin",
    "Martens", "Doe", "Dent", "Garcia", "Garner", "Brown", "Bakker",
];

struct SearchRun {
    devices: usize,
    names_per_device: usize,
    searches: u64,
    distinct: usize,
    failed: u64,
    seconds: f64,
    latencies_us: Vec<u32>,
    pms_calls: u64,
    hits: u64,
    coalesced: u64,
    misses: u64,
    cache: Duration,
    windows: u64,
}

/// Sum of the samples of `metric` whose labels contain `label` in a
/// Prometheus text exposition.
fn metric_sum(text: &str, metric: &str, label: &str) -> u64 {
    text.lines()
        .filter(|l| l.starts_with(metric) && l[metric.len()..].starts_with('{'))
        .filter(|l| l.contains(label))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .map(|v| v as u64)
        .sum()
}

async fn metrics_text(port: u16) -> String {
    let mut s = TcpStream::connect(("127.0.0.1", port)).await.unwrap();
    let mut buf = Vec::new();
    exchange(&mut s, &http_get("/metrics"), &mut buf)
        .await
        .unwrap();
    String::from_utf8_lossy(body_of(&buf)).into_owned()
}

/// The names device `d` types, in order.
fn device_names(d: usize, n: usize) -> Vec<&'static str> {
    (0..n)
        .map(|k| NAMES[(d * 3 + k * 5) % NAMES.len()])
        .collect()
}

fn search_run(
    rt: &tokio::runtime::Runtime,
    redis_port: u16,
    devices: usize,
    names_per_device: usize,
) -> SearchRun {
    let cache = Duration::from_secs(10);
    let (cb, port) = start_chargebridge_with(
        redis_port,
        &[
            ("CHARGEBRIDGE__SERVER__SEARCH_CACHE", "10s".to_string()),
            ("CHARGEBRIDGE__PMS__DEMO__SEARCH_DELAY", "50ms".to_string()),
        ],
    );
    let keystroke = Duration::from_millis(120);
    let between_names = Duration::from_millis(500);
    let mut terms = std::collections::HashSet::new();
    for d in 0..devices {
        for name in device_names(d, names_per_device) {
            for i in 1..=name.len() {
                terms.insert(&name[..i]);
            }
        }
    }
    let run = rt.block_on(async {
        let before = metrics_text(port).await;
        let started = Instant::now();
        let mut tasks = Vec::new();
        for d in 0..devices {
            tasks.push(tokio::spawn(async move {
                // Devices start over the first second, not in lockstep.
                let mut at = Instant::now() + Duration::from_millis((d as u64 * 20) % 1000);
                let mut stream = TcpStream::connect(("127.0.0.1", port)).await.unwrap();
                stream.set_nodelay(true).unwrap();
                let mut buf = Vec::new();
                let mut latencies = Vec::new();
                let mut failed = 0u64;
                for name in device_names(d, names_per_device) {
                    for i in 1..=name.len() {
                        tokio::time::sleep_until(at.into()).await;
                        let t = Instant::now();
                        let ok = matches!(
                            exchange(&mut stream, &http_get(&search_path(&name[..i])), &mut buf)
                                .await,
                            Ok(200)
                        ) && body_of(&buf).starts_with(br#"{"success":true"#);
                        if !ok {
                            failed += 1;
                        }
                        latencies.push(micros(t.elapsed()));
                        at += keystroke;
                    }
                    at += between_names;
                }
                (latencies, failed)
            }));
        }
        let mut latencies_us = Vec::new();
        let mut failed = 0;
        for t in tasks {
            let (l, f) = t.await.unwrap();
            latencies_us.extend(l);
            failed += f;
        }
        let seconds = started.elapsed().as_secs_f64();
        let after = metrics_text(port).await;
        latencies_us.sort_unstable();
        let delta = |metric: &str, label: &str| {
            metric_sum(&after, metric, label).saturating_sub(metric_sum(&before, metric, label))
        };
        let windows = (seconds / cache.as_secs_f64()).floor() as u64 + 1;
        SearchRun {
            devices,
            names_per_device,
            searches: latencies_us.len() as u64,
            distinct: terms.len(),
            failed,
            seconds,
            pms_calls: delta("chargebridge_pms_duration_seconds_count", r#"op="search""#),
            hits: delta("chargebridge_search_cache_total", r#"outcome="hit""#),
            coalesced: delta("chargebridge_search_cache_total", r#"outcome="coalesced""#),
            misses: delta("chargebridge_search_cache_total", r#"outcome="miss""#),
            latencies_us,
            cache,
            windows,
        }
    });
    drop(cb);
    run
}

fn search_section(r: &SearchRun) -> String {
    let mut out = String::new();
    let _ = writeln!(
        out,
        "## Guest searches\n\n\
         {} simulated POS devices each type {} surnames letter by letter (one search per keystroke, \
         120 ms apart, 500 ms between names, devices starting over the first second), drawn from {} \
         names that overlap between devices and share prefixes (`J`, `Ja`, `Jan`, … of Jane, Jansen, \
         Janssen). The memory PMS takes 50 ms per search (`search_delay`); `server.search_cache` is \
         {} s. PMS search calls are read from `/metrics` (`chargebridge_pms_duration_seconds_count{{op=\"search\"}}`, \
         before and after); hit / coalesced / miss from `chargebridge_search_cache_total`. A cache \
         window is one `search_cache` period: a run of D s spans floor(D / {}) + 1 of them per term.\n",
        r.devices,
        r.names_per_device,
        NAMES.len(),
        r.cache.as_secs(),
        r.cache.as_secs()
    );
    let _ = writeln!(
        out,
        "| devices | searches sent | distinct terms | run s | cache windows | PMS search calls | hits | coalesced | misses | p50 ms | p99 ms | failed |"
    );
    let _ = writeln!(
        out,
        "|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|"
    );
    let _ = writeln!(
        out,
        "| {} | {} | {} | {:.1} | {} | {} | {} | {} | {} | {:.2} | {:.2} | {} |",
        r.devices,
        r.searches,
        r.distinct,
        r.seconds,
        r.windows,
        r.pms_calls,
        r.hits,
        r.coalesced,
        r.misses,
        pct_ms(&r.latencies_us, 0.5),
        pct_ms(&r.latencies_us, 0.99),
        r.failed
    );
    let met = |ok: bool| if ok { "met" } else { "**not met**" };
    let bound = r.distinct as u64 * r.windows;
    let _ = writeln!(out, "\n| target | measured | |\n|---|---:|---|");
    let _ = writeln!(
        out,
        "| at most one PMS call per distinct term per cache window (≤ {} × {} = {bound}) | {} | {} |",
        r.distinct,
        r.windows,
        r.pms_calls,
        if r.pms_calls <= bound {
            "met".to_string()
        } else {
            format!("**not met** ({} calls over the bound)", r.pms_calls - bound)
        }
    );
    let _ = writeln!(
        out,
        "| every search answered (`success: true`) | {} failed | {} |",
        r.failed,
        met(r.failed == 0)
    );
    out
}

fn payload_with_lines(lines: usize) -> String {
    let mut v: serde_json::Value = serde_json::from_str(SEED).unwrap();
    let line = v["transactions"][0].clone();
    v["transactions"] = serde_json::Value::Array(vec![line; lines]);
    serde_json::to_string(&v).unwrap()
}

// ---------------------------------------------------------------------------

struct Options {
    seconds: f64,
    connections: usize,
    quick: bool,
    write: bool,
}

fn options() -> Options {
    let args: Vec<String> = std::env::args().collect();
    let value = |name: &str| {
        args.iter()
            .position(|a| a == name)
            .and_then(|i| args.get(i + 1))
            .and_then(|v| v.parse::<f64>().ok())
    };
    let quick = args.iter().any(|a| a == "--quick");
    Options {
        seconds: value("--seconds").unwrap_or(if quick { 2.0 } else { 8.0 }),
        connections: value("--connections").map_or(64, |v| v as usize),
        quick,
        write: !args.iter().any(|a| a == "--no-write"),
    }
}

fn row(out: &mut String, name: &str, run: &Run, rss_kib: u64) {
    let _ = writeln!(
        out,
        "| {name} | {:.0} | {:.2} | {:.2} | {:.2} | {:.2} | {} | {:.1} |",
        run.rps(),
        run.pct(0.50),
        run.pct(0.90),
        run.pct(0.99),
        run.max(),
        run.errors,
        rss_kib as f64 / 1024.0
    );
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    if let Some(i) = args.iter().position(|a| a == "--baseline-server") {
        let port: u16 = args[i + 1].parse().unwrap();
        baseline::serve(port, &args[i + 2]).unwrap();
        return;
    }
    if let Some(i) = args.iter().position(|a| a == "--load-only") {
        // Drive an already running server (for profiling):
        // --load-only PORT SECONDS [CONNECTIONS [unique|replays|mixed]]
        let port: u16 = args[i + 1].parse().unwrap();
        let secs: f64 = args[i + 2].parse().unwrap();
        let conns: usize = args.get(i + 3).and_then(|c| c.parse().ok()).unwrap_or(64);
        let mix = match args.get(i + 4).map(String::as_str) {
            Some("replays") => Mix::Replays,
            Some("mixed") => Mix::Mixed,
            _ => Mix::Unique,
        };
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .enable_all()
            .build()
            .unwrap();
        let tag = format!("p{}", std::process::id());
        let run = rt.block_on(drive(
            port,
            mix,
            conns,
            secs,
            Arc::new(SEED.to_string()),
            &tag,
        ));
        println!(
            "{:.0} req/s, p50 {:.2} ms, p99 {:.2} ms, errors {}",
            run.rps(),
            run.pct(0.5),
            run.pct(0.99),
            run.errors
        );
        return;
    }
    let opts = options();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .unwrap();
    let (redis, redis_port) = start_redis();
    let (cb, cb_port) = start_chargebridge(redis_port);
    let (base, base_port) = start_baseline(redis_port);
    let seed = Arc::new(SEED.to_string());
    let secs = opts.seconds;
    let conns = opts.connections;

    let mut table = String::new();
    let _ = writeln!(
        table,
        "| run | req/s | p50 ms | p90 ms | p99 ms | max ms | errors | peak RSS MiB |"
    );
    let _ = writeln!(table, "|---|---:|---:|---:|---:|---:|---:|---:|");
    let mut ratios = String::new();
    let mut all_errors = 0;
    // (label, throughput ratio, p99 ratio) per mix, for the targets table.
    let mut against = Vec::new();
    for (mix, label, slug) in [
        (Mix::Unique, "unique", "u"),
        (Mix::Replays, "replays", "r"),
        (Mix::Mixed, "mixed 70/30", "m"),
    ] {
        // Warm both servers, then measure each.
        rt.block_on(drive(
            base_port,
            mix,
            conns,
            0.5,
            seed.clone(),
            &format!("wb-{slug}"),
        ));
        rt.block_on(drive(
            cb_port,
            mix,
            conns,
            0.5,
            seed.clone(),
            &format!("wc-{slug}"),
        ));
        watch(&[base.0.id(), redis.0.id()]);
        let b = rt.block_on(drive(
            base_port,
            mix,
            conns,
            secs,
            seed.clone(),
            &format!("b-{slug}"),
        ));
        watch(&[cb.0.id(), redis.0.id()]);
        let c = rt.block_on(drive(
            cb_port,
            mix,
            conns,
            secs,
            seed.clone(),
            &format!("c-{slug}"),
        ));
        row(
            &mut table,
            &format!("baseline, {label}"),
            &b,
            base.peak_rss_kib(),
        );
        row(
            &mut table,
            &format!("chargebridge, {label}"),
            &c,
            cb.peak_rss_kib(),
        );
        all_errors += c.errors;
        against.push((
            label,
            c.rps() / b.rps(),
            c.pct(0.99) / b.pct(0.99).max(0.001),
        ));
        let _ = writeln!(
            ratios,
            "| {label} | {:.0} % | {:.2} | {:.0} | {:.0} | {:.0} | {:.0} |",
            100.0 * c.rps() / b.rps(),
            c.pct(0.99) / b.pct(0.99).max(0.001),
            b.cpu_us_per_request(0),
            b.cpu_us_per_request(1),
            c.cpu_us_per_request(0),
            c.cpu_us_per_request(1),
        );
        eprintln!(
            "{label}: baseline {:.0} req/s, chargebridge {:.0} req/s",
            b.rps(),
            c.rps()
        );
    }

    // Before the growth runs, whose 500-line bodies are not "under load" as measured.
    let rss_under_load = cb.peak_rss_kib();
    let mut growth = String::new();
    if !opts.quick {
        let _ = writeln!(
            growth,
            "| payload / store | req/s | p50 ms | p99 ms | errors |"
        );
        let _ = writeln!(growth, "|---|---:|---:|---:|---:|");
        for lines in [1usize, 50, 500] {
            let body = Arc::new(payload_with_lines(lines));
            let r = rt.block_on(drive(
                cb_port,
                Mix::Unique,
                conns,
                secs / 2.0,
                body.clone(),
                &format!("g{lines}"),
            ));
            let _ = writeln!(
                growth,
                "| {lines} lines ({} bytes), unique keys | {:.0} | {:.2} | {:.2} | {} |",
                body.len(),
                r.rps(),
                r.pct(0.5),
                r.pct(0.99),
                r.errors
            );
        }
        let before = rt.block_on(drive(
            cb_port,
            Mix::Unique,
            conns,
            secs / 2.0,
            seed.clone(),
            "g-empty",
        ));
        redis_cli(
            redis_port,
            &[
                "DEBUG",
                "POPULATE",
                "1000000",
                "chargebridge:idem:filler",
                "300",
            ],
        );
        // And a million journal entries of the bench's tenant, each in the
        // creation-time and state indexes every delivery writes to (scored
        // now, so the worker's retention trim keeps them).
        redis_cli(
            redis_port,
            &[
                "DEBUG",
                "POPULATE",
                "1000000",
                "chargebridge:journal:{demo}:e:filler",
                "1000",
            ],
        );
        let now_ms = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_millis())
            .to_string();
        redis_cli(
            redis_port,
            &[
                "EVAL",
                "for i = 1, tonumber(ARGV[2]) do \
                   redis.call('ZADD', KEYS[1], ARGV[1], 'filler:' .. i) \
                   redis.call('ZADD', KEYS[2], ARGV[1], 'filler:' .. i) \
                 end return 1",
                "2",
                "chargebridge:journal:{demo}:time",
                "chargebridge:journal:{demo}:state:posted",
                &now_ms,
                "1000000",
            ],
        );
        let indexed = redis_cli(redis_port, &["ZCARD", "chargebridge:journal:{demo}:time"]);
        let keys = redis_cli(redis_port, &["DBSIZE"]);
        let after = rt.block_on(drive(
            cb_port,
            Mix::Unique,
            conns,
            secs / 2.0,
            seed.clone(),
            "g-full",
        ));
        for (label, r) in [
            ("seed, few records in Redis", &before),
            (
                "seed, 1 million records and 1 million journal entries in Redis",
                &after,
            ),
        ] {
            let _ = writeln!(
                growth,
                "| {label} | {:.0} | {:.2} | {:.2} | {} |",
                r.rps(),
                r.pct(0.5),
                r.pct(0.99),
                r.errors
            );
        }
        eprintln!("growth: DBSIZE after populate = {keys}, journal time index = {indexed}");
    }
    // Slow PMS and guest searches: fresh chargebridge processes on the same Redis.
    let workers = std::thread::available_parallelism().map_or(1, |n| n.get());
    let cap = MAX_CONNECTIONS_PER_WORKER * workers;
    let (rounds, probes) = if opts.quick { (2.0, 20) } else { (4.0, 50) };
    let mut slow_rows = Vec::new();
    for delay_ms in [200u64, 1000, 3000] {
        let delay = Duration::from_millis(delay_ms);
        // Whole rounds of postings: the last one starts before the clock runs out.
        let seconds = secs.max(rounds * delay.as_secs_f64()) - delay.as_secs_f64() / 2.0;
        let r = slow_run(&rt, redis_port, delay, conns, seconds, probes, cap);
        eprintln!(
            "slow PMS {delay_ms} ms: {:.1} req/s (expected {:.1}), p99 {:.1} ms, healthz p99 {:.2} ms, search p99 {:.2} ms",
            r.run.rps(),
            r.expected_rps,
            r.run.pct(0.99),
            pct_ms(&r.probes.health_us, 0.99),
            pct_ms(&r.probes.search_us, 0.99)
        );
        slow_rows.push(r);
    }
    let slow = slow_section(&slow_rows, conns, cap, workers);
    let searches = search_run(&rt, redis_port, 50, if opts.quick { 3 } else { 6 });
    eprintln!(
        "searches: {} sent, {} distinct terms, {} PMS calls",
        searches.searches, searches.distinct, searches.pms_calls
    );
    let search = search_section(&searches);
    drop(redis);

    let targets = targets_table(&against, rss_under_load, all_errors);
    let report = format!(
        "# Benchmarks\n\n\
         Reproduce with `cargo bench --bench load` (writes this file). Machine: {} cores, load generator \
         on the same cores ({conns} keep-alive connections, {secs} s per run). chargebridge runs with the \
         Redis store (a private `redis-server`), the memory PMS (no PMS latency) and JSON logs to /dev/null. \
         The baseline is a minimal actix-web handler that parses the same JSON and makes two Redis round \
         trips per request (`SET NX PX` + `SET` for a new key, `SET NX PX` + `GET` for a repeated key).\n\n\
         {table}\n\
         ## Against the baseline\n\n\
         | run | throughput vs baseline | p99 vs baseline (×) | baseline CPU µs/req | its Redis CPU µs/req | chargebridge CPU µs/req | its Redis CPU µs/req |\n\
         |---|---:|---:|---:|---:|---:|---:|\n{ratios}\n\
         CPU per request is user + system time of the server process and of Redis over the \
         measured run (`/proc/<pid>/stat`), divided by the requests answered; the load generator's \
         own share of the two cores is not counted.\n\n\
         Redis round trips per delivery: a new key costs 3 (`SET … NX PX … GET` claims it or returns the \
         existing record; one `EVALSHA` writes the posting journal's entry and its indexes before the PMS is \
         called; then the answer's `EVALSHA`, fenced on the owner token, and the journal's update are sent \
         together on the same connection); a replay costs 1 (the claim returns the stored answer; the journal is not touched). \
         Before the journal a new key cost 2. Errors across chargebridge runs: {all_errors}.\n\n\
         {targets}\n\
         {}\n\
         {slow}\n\
         {search}\n\
         {NOTES}",
        std::thread::available_parallelism().map_or(0, |n| n.get()),
        if growth.is_empty() {
            String::new()
        } else {
            format!("## Growth\n\n{growth}")
        }
    );
    println!("{report}");
    if opts.write {
        std::fs::write(
            concat!(env!("CARGO_MANIFEST_DIR"), "/BENCHMARKS.md"),
            report,
        )
        .unwrap();
    }
}
