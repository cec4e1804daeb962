//! What only a shared, persistent store can show: several processes agreeing,
//! fencing after a lost lease, Redis going away and coming back, restarts.

use std::time::Duration;

use chargebridge::pms::memory::Fault;

use crate::both_stores;
use crate::helpers::*;
use crate::redis_server::RedisServer;

fn record_key(key: &str) -> String {
    format!("chargebridge:idem:{TENANT}:{key}")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_instances_post_exactly_once_and_replay_each_other() {
    let redis = RedisServer::start(false);
    let a = spawn_app(StoreChoice::RedisAt(redis.url())).await;
    let b = spawn_app(StoreChoice::RedisAt(redis.url())).await;
    let key = fresh_key();
    a.push_fault(Fault::Slow(Duration::from_millis(300)));
    b.push_fault(Fault::Slow(Duration::from_millis(300)));
    let tasks: Vec<_> = (0..16)
        .map(|i| if i % 2 == 0 { &a } else { &b }.charge_in_background(&key, SEED))
        .collect();
    let mut bodies = Vec::new();
    for t in tasks {
        let answer = t.await.unwrap();
        assert_eq!(answer.status, 200);
        bodies.push(answer.bytes);
    }
    assert!(
        bodies.windows(2).all(|w| w[0] == w[1]),
        "every answer is the same bytes"
    );
    assert_eq!(
        a.applied_for(&key) + b.applied_for(&key),
        1,
        "one posting across both"
    );

    // A delivery answered by A is replayed by B byte for byte.
    let key2 = fresh_key();
    let first = a.charge(&key2, SEED).await;
    let replay = b.charge(&key2, SEED).await;
    assert_eq!(first.status, 200);
    assert!(replay.replayed());
    assert_eq!(first.bytes, replay.bytes);
}

async fn lost_lease_cannot_clobber_the_successor(store: StoreChoice) {
    // Deliberately unsafe settings (config refuses a lease shorter than the
    // deadline) to make one request outlive its lease.
    let app = spawn_with(settings(&store, |s| {
        s.idempotency.lease = Duration::from_millis(200)
    }))
    .await;
    let key = fresh_key();
    app.push_fault(Fault::Slow(Duration::from_millis(1200)));
    let slow = app.charge_in_background(&key, SEED);
    tokio::time::sleep(Duration::from_millis(500)).await;
    // The lease has run out: this delivery takes over, reconciles, posts.
    let successor = app.charge(&key, SEED).await;
    assert_eq!(successor.status, 200);
    let late = slow.await.unwrap().bytes;
    assert_ne!(
        late, successor.bytes,
        "the late one posted too (that is why leases outlast deadlines)"
    );
    // The record is still the successor's: the late request's write was fenced off.
    let replay = app.charge(&key, SEED).await;
    assert!(replay.replayed());
    assert_eq!(replay.bytes, successor.bytes);
}
both_stores!(fencing, lost_lease_cannot_clobber_the_successor);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_stopped_fails_closed_and_recovers() {
    let mut redis = RedisServer::start(true);
    let app = spawn_app(StoreChoice::RedisAt(redis.url())).await;
    let done = fresh_key();
    assert_eq!(app.charge(&done, SEED).await.status, 200);
    assert_eq!(app.get("/readyz").await.status, 200);

    redis.stop();
    let posts_before = app.memory_pms().posts_attempted();
    for _ in 0..5 {
        let answer = app.charge(&fresh_key(), SEED).await;
        assert_eq!(
            (answer.status, answer.code().as_str()),
            (500, "store_unavailable")
        );
        answer.assert_error_contract();
    }
    // Even a key that was completed is not answered from a guess.
    assert_eq!(app.charge(&done, SEED).await.code(), "store_unavailable");
    // A bad payload is still told as one (a 4XX, never the store's 500), though
    // its key is claimed before the body is fully parsed.
    let bad = seed_with(|v| v["closeDate"] = "2020-01-01T00:00:00Z".into());
    let answer = app.charge(&fresh_key(), &bad).await;
    assert_eq!(
        answer.status,
        400,
        "{}",
        String::from_utf8_lossy(&answer.bytes)
    );
    assert_eq!(
        app.memory_pms().posts_attempted(),
        posts_before,
        "zero postings while Redis is down"
    );
    let ready = app.get("/readyz").await;
    assert_eq!(ready.status, 503);
    assert!(String::from_utf8_lossy(&ready.bytes).contains("store:redis"));

    // Back with AOF: the completed key still replays, new keys post again.
    redis.restart();
    let mut replay = app.charge(&done, SEED).await;
    for _ in 0..20 {
        if replay.status == 200 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
        replay = app.charge(&done, SEED).await;
    }
    assert_eq!(replay.status, 200);
    assert!(replay.replayed(), "record survived the restart");
    assert_eq!(app.applied_for(&done), 1);
    assert_eq!(app.charge(&fresh_key(), SEED).await.status, 200);
    assert_eq!(app.get("/readyz").await.status, 200);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn restarted_service_still_replays_from_redis() {
    let redis = RedisServer::start(false);
    let key = fresh_key();
    let first = {
        let app = spawn_app(StoreChoice::RedisAt(redis.url())).await;
        let first = app.charge(&key, SEED).await;
        app.stop().await;
        first
    };
    let app = spawn_app(StoreChoice::RedisAt(redis.url())).await;
    let replay = app.charge(&key, SEED).await;
    assert!(replay.replayed());
    assert_eq!(first.bytes, replay.bytes);
    assert!(app.applied().is_empty(), "the new process posted nothing");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn records_are_versioned_json_with_retention_ttl() {
    let redis = RedisServer::start(false);
    let app = spawn_app(StoreChoice::RedisAt(redis.url())).await;
    let key = fresh_key();
    app.charge(&key, SEED).await;
    let raw = redis.cli(&["GET", &record_key(&key)]);
    let record: serde_json::Value = serde_json::from_str(&raw).unwrap();
    assert_eq!(record["v"], 1);
    assert_eq!(record["state"], "completed");
    assert_eq!(record["response"]["status"], 200);
    assert_eq!(record["fp"].as_str().unwrap().len(), 64);
    let ttl: i64 = redis.cli(&["PTTL", &record_key(&key)]).parse().unwrap();
    let week = 7 * 24 * 3600 * 1000;
    assert!(ttl > week - 60_000 && ttl <= week, "ttl {ttl}");

    // A record written by the previous release (fewer fields) is still replayed.
    let old_key = fresh_key();
    let fp = chargebridge::idempotency::fingerprint(SEED.as_bytes()).unwrap();
    let old = serde_json::json!({
        "owner": "old-release", "v": 1, "state": "completed", "fp": fp,
        "response": {"status": 200, "body": "{\"status\":\"posted\",\"pmsReference\":\"OLD-1\",\"idempotencyKey\":\"x\"}"}
    });
    redis.cli(&["SET", &record_key(&old_key), &old.to_string()]);
    let answer = app.charge(&old_key, SEED).await;
    assert!(answer.replayed());
    assert_eq!(answer.json()["pmsReference"], "OLD-1");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn abandoned_in_progress_record_is_reconciled_before_posting() {
    // A process killed mid-posting leaves an in-progress record whose lease has
    // run out. The next delivery must ask the PMS first, not post blindly.
    let redis = RedisServer::start(false);
    let app = spawn_app(StoreChoice::RedisAt(redis.url())).await;
    let key = fresh_key();
    let fp = chargebridge::idempotency::fingerprint(SEED.as_bytes()).unwrap();
    let dead = serde_json::json!({
        "owner": "killed-process", "v": 1, "state": "in_progress", "fp": fp, "lease_until_ms": 1
    });
    redis.cli(&["SET", &record_key(&key), &dead.to_string(), "PX", "600000"]);
    // Not applied at the PMS: the delivery posts once.
    let answer = app.charge(&key, SEED).await;
    assert_eq!(answer.status, 200);
    assert_eq!(app.applied_for(&key), 1);

    // Applied at the PMS before the crash: the delivery finds it and does not post.
    let key2 = fresh_key();
    app.push_fault(Fault::ApplyThenUnknown);
    assert_eq!(app.charge(&key2, SEED).await.status, 500);
    let dead2 = serde_json::json!({
        "owner": "killed-process", "v": 1, "state": "in_progress", "fp": fp, "lease_until_ms": 1
    });
    redis.cli(&[
        "SET",
        &record_key(&key2),
        &dead2.to_string(),
        "PX",
        "600000",
    ]);
    assert_eq!(app.charge(&key2, SEED).await.status, 200);
    assert_eq!(app.applied_for(&key2), 1);
}

/// Redis loses every record and journal entry (`FLUSHALL`) after a charge was
/// posted; the POS sends it again. With `reconcile_new_keys` the re-sent charge
/// is found at the PMS by its reference (200, the same PMS reference, nothing
/// posted); without it, nothing says the key is a re-delivery and it is posted
/// a second time (what the lost-writes chaos run found).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn after_lost_writes_reconcile_new_keys_finds_the_charge_at_the_pms() {
    let redis = RedisServer::start(false);
    for reconcile in [true, false] {
        let app = spawn_with(settings(&StoreChoice::RedisAt(redis.url()), |s| {
            s.idempotency.reconcile_new_keys = reconcile;
        }))
        .await;
        let key = fresh_key();
        let first = app.charge(&key, SEED).await;
        assert_eq!(first.status, 200);
        assert!(first.json()["pmsReference"].is_string());
        assert_eq!(redis.cli(&["flushall"]), "OK");
        let again = app.charge(&key, SEED).await;
        assert_eq!(again.status, 200);
        assert!(!again.replayed(), "the record is gone: not a replay");
        let postings = app
            .applied()
            .iter()
            .filter(|p| p.charge.idempotency_key == key)
            .count();
        if reconcile {
            assert_eq!(postings, 1, "found at the PMS, not posted again");
            assert_eq!(
                again.json()["pmsReference"],
                first.json()["pmsReference"],
                "the same posting"
            );
        } else {
            assert_eq!(
                postings, 2,
                "without it the lost record means a second posting"
            );
        }
    }
}

/// `journal.spool_dir`: a charge the POS was told is queued survives a Redis
/// that loses its writes (`FLUSHALL` while the PMS is down). The worker's sweep
/// writes the entry back from the local spool and posts it once the PMS is
/// back; without the spool the same charge is lost.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_queued_charge_outlives_lost_writes_with_a_spool() {
    let redis = RedisServer::start(false);
    for spooled in [true, false] {
        let dir = tempfile::tempdir().unwrap();
        let spool = dir.path().join("spool");
        let down = dir.path().join("pms-down");
        let app = spawn_with(settings(&StoreChoice::RedisAt(redis.url()), |s| {
            s.tenants[0].when_pms_unavailable = chargebridge::config::WhenPmsUnavailable::Queue;
            s.journal.poll_interval = Duration::from_millis(100);
            if spooled {
                s.journal.spool_dir = Some(spool.display().to_string());
            }
            if let Some(chargebridge::pms::PmsSettings::Memory(m)) = s.pms.get_mut("demo") {
                m.down_file = Some(down.display().to_string());
            }
        }))
        .await;
        std::fs::write(&down, b"down").unwrap();
        let key = fresh_key();
        let answer = app.charge(&key, SEED).await;
        assert_eq!(answer.json()["status"], "queued", "{}", answer.text());
        if spooled {
            assert_eq!(std::fs::read_dir(&spool).unwrap().count(), 1, "spooled");
        }
        assert_eq!(redis.cli(&["flushall"]), "OK");
        std::fs::remove_file(&down).unwrap();
        // Sweeps every 2 s, then a worker turn; the charge is reconciled first.
        let deadline = std::time::Instant::now() + Duration::from_secs(8);
        while app.applied_for(&key) == 0 && std::time::Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        if spooled {
            assert_eq!(app.applied_for(&key), 1, "restored and posted once");
            let entry = app.state.journal.get(&app.tenant, &key).await.unwrap();
            assert_eq!(
                entry.map(|e| e.state),
                Some(chargebridge::journal::JournalState::Posted)
            );
            // The next sweep forgets the settled entry.
            let deadline = std::time::Instant::now() + Duration::from_secs(5);
            while std::fs::read_dir(&spool).unwrap().count() > 0
                && std::time::Instant::now() < deadline
            {
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            assert_eq!(std::fs::read_dir(&spool).unwrap().count(), 0);
        } else {
            assert_eq!(app.applied_for(&key), 0, "without a spool it is lost");
        }
        app.stop().await;
    }
}

/// The record of a refused charge is lost (a Cluster master killed before its
/// write reached the replica: records and journal live on different shards)
/// and the POS sends the charge again. The journal kept the refusal: the
/// re-send replays the same 422, byte for byte, and nothing is posted. Before,
/// the re-send was decided afresh and posted (the chaos run's Cluster failover
/// found a key answered 422 and then 200).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_refusal_outlives_its_lost_record() {
    let redis = RedisServer::start(false);
    let app = spawn_with(settings(&StoreChoice::RedisAt(redis.url()), |_| {})).await;
    let key = fresh_key();
    app.push_fault(Fault::Reject("Folio closed for room 101".into()));
    let first = app.charge(&key, SEED).await;
    assert_eq!(first.status, 422, "{}", first.text());
    assert_eq!(redis.cli(&["DEL", &record_key(&key)]), "1");
    let again = app.charge(&key, SEED).await;
    assert_eq!(
        (again.status, again.replayed()),
        (422, true),
        "{}",
        again.text()
    );
    assert_eq!(again.bytes, first.bytes);
    assert!(app.applied().is_empty(), "not posted after its refusal");
    assert_eq!(app.memory_pms().posts_attempted(), 1);
    // The record is back: the next re-send is a plain replay.
    assert_ne!(redis.cli(&["EXISTS", &record_key(&key)]), "0");
    app.stop().await;
}

/// The service's store keeps a Redis connection per thread, driven by the
/// runtime it was made on. A runtime that ends while its thread lives on (a
/// test's, a command-line tool's) must not leave the next runtime on that
/// thread with a connection nobody drives: every round here must answer.
#[test]
fn per_thread_connections_outlive_the_runtime_that_made_them() {
    use chargebridge::idempotency::StoreBackend;
    use chargebridge::idempotency::redis::RedisStore;
    use secrecy::SecretString;

    let redis = RedisServer::start(false);
    let store = std::sync::Arc::new(
        RedisStore::new(&SecretString::from(redis.url()), Duration::from_secs(2))
            .unwrap()
            .per_thread_connections(),
    );
    // A runtime of its own, as an HTTP worker has, that ends after one ping.
    fn ping_on_a_new_runtime(store: &RedisStore, what: &str) {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        runtime
            .block_on(store.ping())
            .unwrap_or_else(|e| panic!("{what}: {}", e.0));
    }
    for round in 0..3 {
        ping_on_a_new_runtime(&store, &format!("round {round} on this thread"));
    }
    // Several threads at once, each with a connection of its own.
    let threads: Vec<_> = (0..3)
        .map(|t| {
            let store = store.clone();
            std::thread::spawn(move || ping_on_a_new_runtime(&store, &format!("thread {t}")))
        })
        .collect();
    for t in threads {
        t.join().unwrap();
    }
}

/// `docs/redis.md` sizes `maxclients` by connections per replica: one per HTTP
/// worker thread plus the main runtime's. Here 2 workers, and the test's own
/// runtime (2 threads, where the journal worker runs) stands in for the main
/// one: after 40 deliveries at once on a fresh service, at most those 4 are
/// open, and at most 8 were opened (each connection is preceded by a plain
/// probe that shows why a first connect fails). Before, each of a thread's
/// first concurrent deliveries connected and all but one were closed again
/// (82 opened for these 40).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_replica_holds_a_redis_connection_per_thread_not_per_delivery() {
    let redis = RedisServer::start(false);
    let app = spawn_with(settings(&StoreChoice::RedisAt(redis.url()), |_| {})).await;
    // Connections Redis has accepted so far, this redis-cli's own included.
    let accepted = || -> usize {
        let stats = redis.cli(&["INFO", "stats"]);
        stats
            .lines()
            .find_map(|l| l.strip_prefix("total_connections_received:"))
            .and_then(|n| n.trim().parse().ok())
            .expect("INFO stats")
    };
    let before = accepted();
    let keys: Vec<String> = (0..40).map(|_| fresh_key()).collect();
    let answers = futures_util::future::join_all(keys.iter().map(|k| app.charge(k, SEED))).await;
    for a in &answers {
        assert_eq!(a.status, 200, "{}", a.text());
    }
    let opened = accepted() - before - 1;
    // Every line is a client; one of them is this redis-cli.
    let open = redis
        .cli(&["CLIENT", "LIST", "TYPE", "normal"])
        .lines()
        .count()
        - 1;
    assert!(
        (1..=4).contains(&open) && opened <= 8,
        "{open} connections open and {opened} opened, for 2 workers and 2 runtime threads"
    );
    app.stop().await;
}
