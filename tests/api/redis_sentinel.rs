//! Redis Sentinel: a master, a replica and three sentinels on loopback ports,
//! charges flowing (with re-deliveries) while the master is failed over. The
//! service must follow the new master, answer every charge in the end, fail
//! closed (`500 store_unavailable`) while the switch lasts, and never post a
//! charge twice. Prints a table of what happened.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use crate::helpers::*;
use crate::redis_server::RedisServer;

const MASTER: &str = "chargebridge";

/// The whole deployment; every process stops (by PID) when it drops.
struct Sentinels {
    servers: Vec<RedisServer>,
    sentinels: Vec<RedisServer>,
}

impl Sentinels {
    fn start() -> Sentinels {
        let master = RedisServer::start(true);
        let replica = RedisServer::start_with(
            true,
            &["--replicaof", "127.0.0.1", &master.port.to_string()],
        );
        wait_until("the replica is in sync", Duration::from_secs(20), || {
            replica
                .cli(&["info", "replication"])
                .contains("master_link_status:up")
        });
        let sentinels: Vec<RedisServer> = (0..3)
            .map(|_| {
                RedisServer::start_sentinel(MASTER, master.port, 2, Duration::from_millis(1000))
            })
            .collect();
        // Each sentinel must know the replica (it learns it from INFO) and the
        // other sentinels (from their hellos) before a failover can be run.
        wait_until(
            "the sentinels know each other and the replica",
            Duration::from_secs(40),
            || {
                sentinels.iter().all(|s| {
                    s.cli(&["sentinel", "replicas", MASTER])
                        .contains(&replica.port.to_string())
                        && s.cli(&["sentinel", "ckquorum", MASTER])
                            .starts_with("OK 3 usable")
                })
            },
        );
        Sentinels {
            servers: vec![master, replica],
            sentinels,
        }
    }

    fn url(&self) -> String {
        let hosts: Vec<String> = self
            .sentinels
            .iter()
            .map(|s| format!("127.0.0.1:{}", s.port))
            .collect();
        format!("redis+sentinel://{}/{MASTER}", hosts.join(","))
    }

    /// The master's port as the first sentinel names it.
    fn master_port(&self) -> u16 {
        let out = self.sentinels[0].cli(&["sentinel", "get-master-addr-by-name", MASTER]);
        out.lines()
            .nth(1)
            .and_then(|p| p.trim().parse().ok())
            .unwrap_or(0)
    }
}

fn wait_until(what: &str, limit: Duration, mut ok: impl FnMut() -> bool) {
    let start = Instant::now();
    while !ok() {
        assert!(start.elapsed() < limit, "{what}: not within {limit:?}");
        std::thread::sleep(Duration::from_millis(100));
    }
}

#[derive(Default)]
struct Tally {
    deliveries: AtomicUsize,
    duplicates: AtomicUsize,
    store_unavailable: AtomicUsize,
    in_flight_409: AtomicUsize,
    other: AtomicUsize,
    started: AtomicUsize,
}

/// Delivers `key` until it is answered 200 (as Lightspeed's retries and the
/// staff would), counting every answer. `false` if it never was.
async fn deliver(app: &TestApp, key: &str, tally: &Tally) -> bool {
    for _ in 0..200 {
        let answer = app.charge(key, SEED).await;
        tally.deliveries.fetch_add(1, Ordering::SeqCst);
        match (answer.status, answer.code().as_str()) {
            (200, _) => return true,
            (500, "store_unavailable") => {
                answer.assert_error_contract();
                tally.store_unavailable.fetch_add(1, Ordering::SeqCst);
            }
            (409, _) => {
                tally.in_flight_409.fetch_add(1, Ordering::SeqCst);
            }
            (status, code) => {
                eprintln!("unexpected answer {status} {code}");
                tally.other.fetch_add(1, Ordering::SeqCst);
            }
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    false
}

/// How the master goes away.
#[derive(Clone, Copy, Debug)]
enum Fault {
    /// `SENTINEL FAILOVER`: the master is alive and is demoted.
    Failover,
    /// `kill -9` of the master: the sentinels must notice it is down first.
    KillMaster,
}

async fn failover_under_traffic(fault: Fault) {
    const WORKERS: usize = 8;
    const MIN_CHARGES: usize = 300;
    let deployment = tokio::task::spawn_blocking(Sentinels::start).await.unwrap();
    assert_eq!(deployment.master_port(), deployment.servers[0].port);
    let app = Arc::new(spawn_app(StoreChoice::RedisAt(deployment.url())).await);
    assert_eq!(app.get("/readyz").await.status, 200);

    let keys = Arc::new(std::sync::Mutex::new(Vec::<String>::new()));
    let tally = Arc::new(Tally::default());
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let mut workers = Vec::new();
    for _ in 0..WORKERS {
        let (app, keys, tally, stop) = (app.clone(), keys.clone(), tally.clone(), stop.clone());
        workers.push(tokio::spawn(async move {
            let mut never = Vec::new();
            loop {
                let i = tally.started.fetch_add(1, Ordering::SeqCst);
                if stop.load(Ordering::SeqCst) && i >= MIN_CHARGES {
                    break;
                }
                let key = fresh_key();
                keys.lock().unwrap().push(key.clone());
                // 3 charges in 10 are delivered twice: at the same moment, or just after.
                let ok = match i % 10 {
                    0 | 3 => {
                        tally.duplicates.fetch_add(1, Ordering::SeqCst);
                        let (a, b) =
                            tokio::join!(deliver(&app, &key, &tally), deliver(&app, &key, &tally));
                        a && b
                    }
                    6 => {
                        tally.duplicates.fetch_add(1, Ordering::SeqCst);
                        let first = deliver(&app, &key, &tally).await;
                        first && deliver(&app, &key, &tally).await
                    }
                    _ => deliver(&app, &key, &tally).await,
                };
                if !ok {
                    never.push(key);
                }
            }
            never
        }));
    }

    // Traffic for a while, then the fault, then wait for the sentinels' switch.
    while tally.started.load(Ordering::SeqCst) < 100 {
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let unavailable_before = tally.store_unavailable.load(Ordering::SeqCst);
    let deliveries_before = tally.deliveries.load(Ordering::SeqCst);
    let fault_at = Instant::now();
    let deployment = tokio::task::spawn_blocking(move || {
        let mut deployment = deployment;
        match fault {
            Fault::Failover => {
                let reply = deployment.sentinels[0].cli(&["sentinel", "failover", MASTER]);
                assert_eq!(reply, "OK", "SENTINEL FAILOVER: {reply}");
            }
            Fault::KillMaster => deployment.servers[0].crash(),
        }
        wait_until(
            "the sentinels name the new master",
            Duration::from_secs(30),
            || deployment.master_port() == deployment.servers[1].port,
        );
        if let Fault::KillMaster = fault {
            // Brought back, as its supervisor would: the sentinels make it a
            // replica of the new master, which then has a replica to WAIT for.
            deployment.servers[0].start_again();
        }
        deployment
    })
    .await
    .unwrap();
    let switch = fault_at.elapsed();
    let deliveries_in_switch = tally.deliveries.load(Ordering::SeqCst) - deliveries_before;
    let unavailable_in_switch = tally.store_unavailable.load(Ordering::SeqCst) - unavailable_before;
    // Traffic goes on for two seconds on the new master.
    tokio::time::sleep(Duration::from_secs(2)).await;
    stop.store(true, Ordering::SeqCst);
    let mut never_answered = Vec::new();
    for w in workers {
        never_answered.extend(w.await.unwrap());
    }

    // Lightspeed re-sends every charge once more, well after the switch: a
    // record lost in the failover would be posted a second time here.
    let keys = keys.lock().unwrap().clone();
    let mut resent_replayed = 0;
    for key in &keys {
        let answer = app.charge(key, SEED).await;
        tally.deliveries.fetch_add(1, Ordering::SeqCst);
        tally.duplicates.fetch_add(1, Ordering::SeqCst);
        if answer.status == 200 && answer.replayed() {
            resent_replayed += 1;
        }
    }

    let mut applied: HashMap<String, usize> = HashMap::new();
    for p in app.applied() {
        *applied.entry(p.charge.idempotency_key.clone()).or_default() += 1;
    }
    let double: Vec<_> = applied.iter().filter(|(_, n)| **n > 1).collect();
    let lost: Vec<_> = keys
        .iter()
        .filter(|k| applied.get(*k).copied().unwrap_or(0) == 0)
        .collect();

    let row = |what: &str, n: String| println!("| {what:<44} | {n:>8} |");
    println!(
        "\nSentinel, {fault:?} under traffic (1 master + 1 replica + 3 sentinels, {WORKERS} clients)"
    );
    println!("| {:<44} | {:>8} |", "what", "count");
    println!("|{}|{}|", "-".repeat(46), "-".repeat(10));
    row("charges", keys.len().to_string());
    row(
        "deliveries (HTTP attempts)",
        tally.deliveries.load(Ordering::SeqCst).to_string(),
    );
    row(
        "duplicates (same key re-sent)",
        tally.duplicates.load(Ordering::SeqCst).to_string(),
    );
    row("faults injected", format!("1 {fault:?}"));
    row(
        "switch (fault to new master named), ms",
        switch.as_millis().to_string(),
    );
    row(
        "deliveries during the switch",
        deliveries_in_switch.to_string(),
    );
    row(
        "500 store_unavailable during the switch",
        unavailable_in_switch.to_string(),
    );
    row(
        "500 store_unavailable in all",
        tally.store_unavailable.load(Ordering::SeqCst).to_string(),
    );
    row(
        "409 in flight (concurrent duplicate)",
        tally.in_flight_409.load(Ordering::SeqCst).to_string(),
    );
    row(
        "other answers",
        tally.other.load(Ordering::SeqCst).to_string(),
    );
    row(
        "final re-sends replayed",
        format!("{resent_replayed}/{}", keys.len()),
    );
    row("double postings", double.len().to_string());
    row("lost charges", lost.len().to_string());
    row("never answered 200", never_answered.len().to_string());

    // After the switch the service writes to the new master.
    let after = fresh_key();
    assert_eq!(app.charge(&after, SEED).await.status, 200);
    let record = format!("chargebridge:idem:{}:{after}", app.tenant);
    assert!(
        deployment.servers[1]
            .cli(&["get", &record])
            .contains("completed"),
        "the record is on the new master"
    );
    assert!(double.is_empty(), "posted twice: {double:?}");
    assert!(lost.is_empty(), "never posted: {lost:?}");
    assert!(
        never_answered.is_empty(),
        "never answered 200: {never_answered:?}"
    );
    assert_eq!(
        tally.other.load(Ordering::SeqCst),
        0,
        "only 200, 409 and 500 store_unavailable"
    );
    assert_eq!(app.get("/readyz").await.status, 200);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn sentinel_failover_under_traffic_posts_each_charge_once() {
    failover_under_traffic(Fault::Failover).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn sentinel_master_killed_under_traffic_posts_each_charge_once() {
    failover_under_traffic(Fault::KillMaster).await;
}

/// Sentinels with their own `requirepass`, distinct from the master's: without
/// `sentinel_password` nothing is posted (the sentinels refuse to name the
/// master, fail closed); with it (here from `sentinel_password_file`) charges
/// post once and a `SENTINEL FAILOVER` is followed.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn sentinels_with_their_own_password() {
    const MASTER_PW: &str = "master-pw-7f3a";
    const SENTINEL_PW: &str = "sentinel-pw-91c2";
    let deployment = tokio::task::spawn_blocking(|| {
        let auth = ["--requirepass", MASTER_PW, "--masterauth", MASTER_PW];
        let master = RedisServer::start_with(true, &auth);
        let port = master.port.to_string();
        let mut replica_args = auth.to_vec();
        replica_args.extend(["--replicaof", "127.0.0.1", &port]);
        let replica = RedisServer::start_with(true, &replica_args);
        wait_until("the replica is in sync", Duration::from_secs(20), || {
            replica
                .cli(&["info", "replication"])
                .contains("master_link_status:up")
        });
        // Clients and the other sentinels must give SENTINEL_PW; the sentinels
        // give MASTER_PW to the master and the replica.
        let conf = format!(
            "requirepass {SENTINEL_PW}\nsentinel sentinel-pass {SENTINEL_PW}\n\
             sentinel auth-pass {MASTER} {MASTER_PW}\n"
        );
        let sentinels: Vec<RedisServer> = (0..3)
            .map(|_| {
                RedisServer::start_sentinel_with(
                    MASTER,
                    master.port,
                    2,
                    Duration::from_millis(1000),
                    &conf,
                    Some(SENTINEL_PW),
                    &[],
                )
            })
            .collect();
        wait_until(
            "the sentinels know each other and the replica",
            Duration::from_secs(40),
            || {
                sentinels.iter().all(|s| {
                    s.cli(&["sentinel", "replicas", MASTER])
                        .contains(&replica.port.to_string())
                        && s.cli(&["sentinel", "ckquorum", MASTER])
                            .starts_with("OK 3 usable")
                })
            },
        );
        Sentinels {
            servers: vec![master, replica],
            sentinels,
        }
    })
    .await
    .unwrap();
    // The sentinel really wants its password.
    let unauthenticated = std::process::Command::new("redis-cli")
        .args(["-p", &deployment.sentinels[0].port.to_string(), "ping"])
        .output()
        .unwrap();
    assert!(
        String::from_utf8_lossy(&unauthenticated.stdout).contains("NOAUTH"),
        "the sentinel answers without its password"
    );
    let url = deployment.url().replace(
        "redis+sentinel://",
        &format!("redis+sentinel://:{MASTER_PW}@"),
    );

    // The master's password only: the sentinels refuse, nothing is posted.
    let without = spawn_with(settings(&StoreChoice::RedisAt(url.clone()), |_| {})).await;
    let answer = without.charge(&fresh_key(), SEED).await;
    assert_eq!(
        (answer.status, answer.code().as_str()),
        (500, "store_unavailable")
    );
    assert_eq!(without.get("/readyz").await.status, 503);
    assert!(without.applied().is_empty());

    // With the sentinels' password, from a file.
    let dir = tempfile::tempdir().unwrap();
    let pw_file = dir.path().join("sentinel-password");
    std::fs::write(&pw_file, format!("{SENTINEL_PW}\n")).unwrap();
    let pw_path = pw_file.display().to_string();
    let app = spawn_with(settings(&StoreChoice::RedisAt(url), |s| {
        s.idempotency.sentinel_password_file = Some(pw_path.clone());
    }))
    .await;
    assert_eq!(app.get("/readyz").await.status, 200);
    let tally = Tally::default();
    let mut keys = Vec::new();
    for _ in 0..20 {
        let key = fresh_key();
        assert!(deliver(&app, &key, &tally).await, "{key} answered 200");
        keys.push(key);
    }

    let deployment = tokio::task::spawn_blocking(move || {
        let reply = deployment.sentinels[0].cli(&["sentinel", "failover", MASTER]);
        assert_eq!(reply, "OK", "SENTINEL FAILOVER: {reply}");
        wait_until(
            "the sentinels name the new master",
            Duration::from_secs(30),
            || deployment.master_port() == deployment.servers[1].port,
        );
        deployment
    })
    .await
    .unwrap();
    // Charges after the switch (each retried through the switch until 200),
    // then every charge once more.
    for _ in 0..20 {
        let key = fresh_key();
        assert!(deliver(&app, &key, &tally).await, "{key} answered 200");
        keys.push(key);
    }
    for key in &keys {
        assert!(deliver(&app, key, &tally).await, "{key} re-sent");
    }
    let mut applied: HashMap<String, usize> = HashMap::new();
    for p in app.applied() {
        *applied.entry(p.charge.idempotency_key.clone()).or_default() += 1;
    }
    for key in &keys {
        assert_eq!(applied.get(key), Some(&1), "{key} posted once");
    }
    let after = keys.last().unwrap();
    let record = format!("chargebridge:idem:{}:{after}", app.tenant);
    assert!(
        deployment.servers[1]
            .cli(&["get", &record])
            .contains("completed"),
        "the record is on the new master"
    );
    assert_eq!(tally.other.load(Ordering::SeqCst), 0);
    println!(
        "Sentinels with their own password: {} charges, {} deliveries, {} store_unavailable, 0 double postings, 0 lost",
        keys.len(),
        tally.deliveries.load(Ordering::SeqCst),
        tally.store_unavailable.load(Ordering::SeqCst)
    );
}

/// Sentinel over TLS end to end: a master, a replica and three sentinels that
/// all speak only TLS (`port 0`, `tls-port`, `tls-replication yes`, with
/// certificates made by rcgen); chargebridge on `rediss+sentinel://` with the
/// CA file asks the sentinels over TLS and reaches the master over TLS.
/// Charges post once, and a `SENTINEL FAILOVER` is followed.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn sentinel_over_tls_posts_once_and_follows_a_failover() {
    let pki = crate::redis_tls::Pki::new();
    let path = |p: &std::path::Path| p.display().to_string();
    let (ca, cert, key) = (path(&pki.ca), path(&pki.server.cert), path(&pki.server.key));
    let deployment = tokio::task::spawn_blocking(move || {
        let tls_args: Vec<String> = [
            "--tls-cert-file",
            &cert,
            "--tls-key-file",
            &key,
            "--tls-ca-cert-file",
            &ca,
            "--tls-auth-clients",
            "no",
            "--tls-replication",
            "yes",
            "--appendonly",
            "yes",
        ]
        .iter()
        .map(|a| a.to_string())
        .collect();
        let cli: Vec<String> = vec!["--tls".into(), "--insecure".into()];
        let master = RedisServer::start_tls(&tls_args, &cli);
        let mut replica_args = tls_args.clone();
        replica_args.extend([
            "--replicaof".to_string(),
            "127.0.0.1".to_string(),
            master.port.to_string(),
        ]);
        let replica = RedisServer::start_tls(&replica_args, &cli);
        wait_until(
            "the replica is in sync over TLS",
            Duration::from_secs(20),
            || {
                replica
                    .cli(&["info", "replication"])
                    .contains("master_link_status:up")
            },
        );
        // `port 0` after the helper's `port` line: TLS only.
        let conf = format!(
            "port 0\ntls-port {{port}}\ntls-cert-file {cert}\ntls-key-file {key}\n\
             tls-ca-cert-file {ca}\ntls-auth-clients no\ntls-replication yes\n"
        );
        let sentinels: Vec<RedisServer> = (0..3)
            .map(|_| {
                RedisServer::start_sentinel_with(
                    MASTER,
                    master.port,
                    2,
                    Duration::from_millis(1000),
                    &conf,
                    None,
                    &cli,
                )
            })
            .collect();
        wait_until(
            "the sentinels know each other and the replica (over TLS)",
            Duration::from_secs(40),
            || {
                sentinels.iter().all(|s| {
                    s.cli(&["sentinel", "replicas", MASTER])
                        .contains(&replica.port.to_string())
                        && s.cli(&["sentinel", "ckquorum", MASTER])
                            .starts_with("OK 3 usable")
                })
            },
        );
        Sentinels {
            servers: vec![master, replica],
            sentinels,
        }
    })
    .await
    .unwrap();
    // Nothing answers in clear text.
    let plain = std::process::Command::new("redis-cli")
        .args(["-p", &deployment.sentinels[0].port.to_string(), "ping"])
        .output()
        .unwrap();
    assert!(
        !String::from_utf8_lossy(&plain.stdout).contains("PONG"),
        "the sentinel answers without TLS"
    );
    let url = deployment
        .url()
        .replace("redis+sentinel://", "rediss+sentinel://");
    let ca = path(&pki.ca);
    let app = spawn_with(settings(&StoreChoice::RedisAt(url), |s| {
        s.idempotency.tls_ca_file = Some(ca.clone());
    }))
    .await;
    assert_eq!(app.get("/readyz").await.status, 200);
    let tally = Tally::default();
    let mut keys = Vec::new();
    for _ in 0..20 {
        let key = fresh_key();
        assert!(deliver(&app, &key, &tally).await, "{key} answered 200");
        keys.push(key);
    }
    let deployment = tokio::task::spawn_blocking(move || {
        let reply = deployment.sentinels[0].cli(&["sentinel", "failover", MASTER]);
        assert_eq!(reply, "OK", "SENTINEL FAILOVER: {reply}");
        wait_until(
            "the sentinels name the new master",
            Duration::from_secs(30),
            || deployment.master_port() == deployment.servers[1].port,
        );
        deployment
    })
    .await
    .unwrap();
    for _ in 0..20 {
        let key = fresh_key();
        assert!(deliver(&app, &key, &tally).await, "{key} answered 200");
        keys.push(key);
    }
    for key in &keys {
        assert!(deliver(&app, key, &tally).await, "{key} re-sent");
    }
    let mut applied: HashMap<String, usize> = HashMap::new();
    for p in app.applied() {
        *applied.entry(p.charge.idempotency_key.clone()).or_default() += 1;
    }
    for key in &keys {
        assert_eq!(applied.get(key), Some(&1), "{key} posted once");
    }
    let record = format!("chargebridge:idem:{}:{}", app.tenant, keys.last().unwrap());
    assert!(
        deployment.servers[1]
            .cli(&["get", &record])
            .contains("completed"),
        "the record is on the new master"
    );
    assert_eq!(tally.other.load(Ordering::SeqCst), 0);
    println!(
        "Sentinel over TLS: {} charges, {} deliveries, {} store_unavailable, 0 double postings, 0 lost",
        keys.len(),
        tally.deliveries.load(Ordering::SeqCst),
        tally.store_unavailable.load(Ordering::SeqCst)
    );
}
