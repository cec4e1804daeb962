//! The posting journal and its worker: nothing depends on Lightspeed re-sending.
//! The store suite runs on memory, Redis and Redis Cluster; the behaviour runs
//! the real app (its worker included) against the memory PMS.

use std::time::{Duration, Instant};

use chargebridge::config::WhenPmsUnavailable;
use chargebridge::journal::{
    Journal, JournalEntry, JournalState, Query, memory::MemoryJournal, now_ms, redis::RedisJournal,
};
use chargebridge::pms::PmsSettings;
use chargebridge::pms::memory::{Fault, FaultKind, MemoryPmsSettings};
use secrecy::SecretString;

use crate::both_stores;
use crate::helpers::*;

fn body_text(a: &Answer) -> String {
    String::from_utf8_lossy(&a.bytes).into_owned()
}

async fn entry(app: &TestApp, key: &str) -> Option<JournalEntry> {
    app.state.journal.get(&app.tenant, key).await.unwrap()
}

/// Polls the journal until the entry is in `state` (or panics after `within`).
async fn wait_for_state(
    app: &TestApp,
    key: &str,
    state: JournalState,
    within: Duration,
) -> JournalEntry {
    let until = Instant::now() + within;
    loop {
        let found = entry(app, key).await;
        if let Some(e) = &found
            && e.state == state
        {
            return e.clone();
        }
        assert!(
            Instant::now() < until,
            "entry not {state:?} within {within:?}: {:?}",
            found.map(|e| (e.state, e.attempts))
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

fn queue_mode(s: &mut chargebridge::config::Settings) {
    s.tenants[0].when_pms_unavailable = WhenPmsUnavailable::Queue;
    s.journal.poll_interval = Duration::from_millis(100);
}

fn fast_worker(s: &mut chargebridge::config::Settings) {
    s.journal.poll_interval = Duration::from_millis(100);
}

async fn a_posted_charge_has_its_entry(store: StoreChoice) {
    let app = spawn_with(settings(&store, fast_worker)).await;
    let key = fresh_key();
    let answer = app.charge(&key, SEED).await;
    assert_eq!(answer.status, 200);
    let e = entry(&app, &key).await.expect("an entry");
    assert_eq!(e.state, JournalState::Posted);
    assert_eq!(e.answered, Some(200));
    assert_eq!(e.postings.len(), 1);
    assert_eq!(e.postings[0].reservation_id, "001");
    assert!(e.postings[0].pms_reference.is_some());
    assert_eq!(e.attempts.len(), 1);
    assert_eq!(e.attempts[0].outcome, "posted");
    let json = String::from_utf8(e.encode()).unwrap();
    assert!(!json.contains(API_KEY), "never the API key: {json}");
    // A replay does not touch it.
    assert!(app.charge(&key, SEED).await.replayed());
    assert_eq!(entry(&app, &key).await.unwrap().attempts.len(), 1);
}
both_stores!(posted_entry, a_posted_charge_has_its_entry);

async fn fail_mode_never_posts_by_itself(store: StoreChoice) {
    let app = spawn_with(settings(&store, fast_worker)).await;
    let key = fresh_key();
    app.push_fault(Fault::Unavailable);
    let answer = app.charge(&key, SEED).await;
    assert_eq!(
        (answer.status, answer.code().as_str()),
        (500, "pms_unavailable")
    );
    let e = entry(&app, &key).await.unwrap();
    assert_eq!(e.state, JournalState::Failed);
    assert_eq!(e.next_attempt_ms, None, "nothing for the worker");
    tokio::time::sleep(Duration::from_millis(1500)).await;
    assert_eq!(
        app.memory_pms().posts_attempted(),
        1,
        "the worker never posts"
    );
    assert!(app.applied().is_empty());
    // Staff may re-send: that posts, and the entry follows.
    let again = app.charge(&key, SEED).await;
    assert_eq!(again.status, 200, "{}", body_text(&again));
    let e = entry(&app, &key).await.unwrap();
    assert_eq!(e.state, JournalState::Posted);
    assert_eq!(e.attempts.len(), 2, "the history is kept");
}
both_stores!(fail_mode, fail_mode_never_posts_by_itself);

async fn an_unknown_outcome_is_reconciled_by_the_worker(store: StoreChoice) {
    let app = spawn_with(settings(&store, fast_worker)).await;
    let key = fresh_key();
    // The PMS applies the charge, then the answer is lost.
    app.push_fault(Fault::ApplyThenUnknown);
    let answer = app.charge(&key, SEED).await;
    assert_eq!(
        (answer.status, answer.code().as_str()),
        (500, "pms_outcome_unknown")
    );
    assert_eq!(
        entry(&app, &key).await.unwrap().state,
        JournalState::Unknown
    );
    let e = wait_for_state(&app, &key, JournalState::Posted, Duration::from_secs(5)).await;
    assert!(
        e.attempts
            .iter()
            .any(|a| a.outcome == "posted" && a.by == chargebridge::journal::Actor::Worker)
    );
    assert_eq!(
        app.memory_pms().posts_attempted(),
        1,
        "reconciled, not posted again"
    );
    assert_eq!(app.applied_for(&key), 1);
    // A later re-delivery replays the truth.
    let replay = app.charge(&key, SEED).await;
    assert_eq!(replay.status, 200);
    assert!(replay.replayed());
    assert_eq!(replay.json()["status"], "posted");
}
both_stores!(
    unknown_reconciled,
    an_unknown_outcome_is_reconciled_by_the_worker
);

/// A delivery that died with the outcome unknown, for a charge the PMS never
/// got: the worker reconciles, finds nothing and, in fail mode, does not post.
async fn an_unknown_outcome_not_at_the_pms_becomes_failed(store: StoreChoice) {
    let app = spawn_with(settings(&store, fast_worker)).await;
    let key = fresh_key();
    let k = chargebridge::domain::IdempotencyKey::parse(key.as_bytes()).unwrap();
    let record = chargebridge::idempotency::record_key(&app.tenant, &k);
    let far = tokio::time::Instant::now() + Duration::from_secs(5);
    match app
        .state
        .idempotency
        .begin(record, "fp-died", far)
        .await
        .unwrap()
    {
        chargebridge::idempotency::Begin::Owned(guard) => {
            assert!(guard.mark_unknown().await.unwrap())
        }
        chargebridge::idempotency::Begin::Replay(_) => panic!("a fresh key"),
    }
    let mut e = sample(&app.tenant, &key, now_ms(), JournalState::Unknown);
    e.fingerprint = "fp-died".into();
    e.next_attempt_ms = Some(now_ms());
    assert!(app.state.journal.put(&e, None).await.unwrap());
    let e = wait_for_state(&app, &key, JournalState::Failed, Duration::from_secs(5)).await;
    assert!(e.attempts.iter().any(|a| a.outcome == "not_found"));
    assert_eq!(
        app.memory_pms().posts_attempted(),
        0,
        "fail mode: never posted"
    );
    // The key is free again: staff re-sending it posts it.
    let resent = app.charge(&key, SEED).await;
    assert_eq!(resent.status, 200, "{}", body_text(&resent));
}
both_stores!(
    unknown_not_found,
    an_unknown_outcome_not_at_the_pms_becomes_failed
);

async fn a_queued_charge_is_posted_once_without_a_redelivery(store: StoreChoice) {
    let app = spawn_with(settings(&store, queue_mode)).await;
    let key = fresh_key();
    app.push_fault(Fault::Unavailable);
    let answer = app.charge(&key, SEED).await;
    assert_eq!(answer.status, 200, "{}", body_text(&answer));
    assert_eq!(answer.json()["status"], "queued");
    assert!(answer.json().get("pmsReference").is_none());
    assert_eq!(entry(&app, &key).await.unwrap().state, JournalState::Queued);
    // While queued, a re-delivery hears the same.
    let meanwhile = app.charge(&key, SEED).await;
    assert!(meanwhile.replayed());
    // The worker posts it as soon as the PMS takes it.
    let e = wait_for_state(&app, &key, JournalState::Posted, Duration::from_secs(6)).await;
    assert!(e.postings[0].pms_reference.is_some());
    assert_eq!(app.applied_for(&key), 1);
    let later = app.charge(&key, SEED).await;
    assert!(later.replayed());
    assert_eq!(
        later.json()["status"],
        "posted",
        "the record tells the truth now"
    );
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(app.applied_for(&key), 1, "exactly once");
}
both_stores!(
    queue_mode_posts,
    a_queued_charge_is_posted_once_without_a_redelivery
);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_queued_charge_refused_later_needs_attention() {
    let app = spawn_with(settings(&StoreChoice::Memory, queue_mode)).await;
    let key = fresh_key();
    app.push_fault(Fault::Unavailable);
    app.push_fault(Fault::Reject("Folio closed".into()));
    let answer = app.charge(&key, SEED).await;
    assert_eq!(answer.json()["status"], "queued");
    let e = wait_for_state(
        &app,
        &key,
        JournalState::NeedsAttention,
        Duration::from_secs(6),
    )
    .await;
    assert!(
        e.attempts
            .iter()
            .any(|a| a.outcome == "rejected" && a.message.as_deref() == Some("Folio closed"))
    );
    assert!(app.applied().is_empty());
    let replay = app.charge(&key, SEED).await;
    assert_eq!(
        (replay.status, replay.code().as_str()),
        (422, "pms_rejected")
    );
}

/// A delivery refused by the PMS whose last entry write was lost (a Redis
/// failover at that moment): the record says 422, the entry is still the
/// `unknown` one written before the PMS call. The worker must settle the entry
/// as the refusal the POS heard, not post the charge behind it (the chaos run's
/// Cluster failover found this: charged after a 422).
async fn a_refusal_whose_entry_write_was_lost_is_not_posted_by_the_worker(store: StoreChoice) {
    let app = spawn_with(settings(&store, queue_mode)).await;
    let key = fresh_key();
    app.push_fault(Fault::Reject("Folio closed".into()));
    let answer = app.charge(&key, SEED).await;
    assert_eq!(answer.status, 422, "{}", body_text(&answer));
    let mut lost = entry(&app, &key).await.unwrap();
    assert_eq!(lost.state, JournalState::Rejected);
    lost.state = JournalState::Unknown;
    lost.answered = None;
    // Due now (not 0: the census trims index members older than retention).
    lost.next_attempt_ms = Some(chargebridge::journal::now_ms());
    app.state.journal.put(&lost, None).await.unwrap();
    let e = wait_for_state(&app, &key, JournalState::Rejected, Duration::from_secs(6)).await;
    assert_eq!(e.answered, Some(422));
    assert!(app.applied().is_empty(), "not posted behind the 422");
    assert_eq!(app.memory_pms().posts_attempted(), 1);
    let replay = app.charge(&key, SEED).await;
    assert_eq!((replay.status, replay.replayed()), (422, true));
}
both_stores!(
    refusal_catch_up,
    a_refusal_whose_entry_write_was_lost_is_not_posted_by_the_worker
);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_entry_never_settled_is_given_up_to_a_person() {
    let app = spawn_with(settings(&StoreChoice::Memory, |s| {
        queue_mode(s);
        s.journal.give_up_after = Duration::from_millis(1500);
        s.pms.insert(
            "demo".into(),
            PmsSettings::Memory(MemoryPmsSettings {
                fault: FaultKind::Unavailable,
                ..Default::default()
            }),
        );
    }))
    .await;
    let key = fresh_key();
    assert_eq!(app.charge(&key, SEED).await.json()["status"], "queued");
    let e = wait_for_state(
        &app,
        &key,
        JournalState::NeedsAttention,
        Duration::from_secs(8),
    )
    .await;
    assert_eq!(e.next_attempt_ms, None);
    assert!(app.applied().is_empty());
}

/// Two replicas share one Redis; each has its own (memory) PMS, so a charge
/// worked twice would show at both.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_processes_work_one_queued_entry_exactly_once() {
    // Two replicas of one tenant (an id of their own on the shared Redis).
    let id = format!("pair-{}", &uuid::Uuid::new_v4().simple().to_string()[..12]);
    let replica = |s: &mut chargebridge::config::Settings| {
        queue_mode(s);
        s.tenants[0].id = Some(id.clone());
    };
    let one = spawn_with(settings(&StoreChoice::Redis, replica)).await;
    let two = spawn_with(settings(&StoreChoice::Redis, replica)).await;
    let mut keys = Vec::new();
    for _ in 0..10 {
        let key = fresh_key();
        one.push_fault(Fault::Unavailable);
        assert_eq!(one.charge(&key, SEED).await.json()["status"], "queued");
        keys.push(key);
    }
    for key in &keys {
        wait_for_state(&one, key, JournalState::Posted, Duration::from_secs(10)).await;
    }
    tokio::time::sleep(Duration::from_millis(500)).await;
    for key in &keys {
        let e = entry(&one, key).await.unwrap();
        assert_eq!(
            one.applied_for(key) + two.applied_for(key),
            1,
            "{key} posted exactly once across both replicas: {:?} {:?}",
            e.attempts,
            (one.applied().len(), two.applied().len())
        );
        assert_eq!(
            one.applied_for(key) + two.applied_for(key),
            1,
            "{key} posted exactly once across both replicas"
        );
    }
}

// ---------------------------------------------------------------------------
// The store suite: the same operations on every backend.

fn journal_on(store: &StoreChoice) -> Journal {
    let retention = Duration::from_secs(3600);
    let url = match store {
        StoreChoice::Memory => return Journal::Memory(MemoryJournal::new(retention, 1000)),
        StoreChoice::Redis => crate::redis_server::shared_url(),
        StoreChoice::Cluster => crate::redis_server::shared_cluster_url(),
        StoreChoice::RedisAt(url) => url.clone(),
        StoreChoice::Tls => {
            let (url, options) = crate::redis_tls::shared_tls_options(Duration::from_secs(2));
            return Journal::Redis(Box::new(
                RedisJournal::with_options(&SecretString::from(url), &options, retention).unwrap(),
            ));
        }
    };
    Journal::Redis(Box::new(
        RedisJournal::new(&SecretString::from(url), Duration::from_secs(2), retention).unwrap(),
    ))
}

fn sample(tenant: &str, key: &str, created_ms: u64, state: JournalState) -> JournalEntry {
    let app_settings = chargebridge::config::Settings::demo();
    let pms = chargebridge::pms::PmsRegistry::build(&app_settings.pms).unwrap();
    let tenants = chargebridge::domain::Tenants::build(&app_settings.tenants, &pms).unwrap();
    let wire = chargebridge::lightspeed::parse_charge(SEED.as_bytes()).unwrap();
    let k = chargebridge::domain::IdempotencyKey::parse(key.as_bytes()).unwrap();
    let mut charge = chargebridge::domain::Charge::from_wire(
        &wire,
        tenants.by_id("demo").unwrap(),
        &k,
        chrono::Utc::now(),
    )
    .unwrap();
    charge.tenant = tenant.to_string();
    let postings: Vec<_> = charge
        .clone()
        .postings()
        .into_iter()
        .map(std::sync::Arc::new)
        .collect();
    let mut e = JournalEntry::new(
        &charge,
        &postings,
        "fp",
        WhenPmsUnavailable::Fail,
        created_ms,
    );
    e.state = state;
    e
}

async fn the_journal_store_keeps_its_promises(store: StoreChoice) {
    let journal = journal_on(&store);
    let tenant = format!("t-{}", &uuid::Uuid::new_v4().simple().to_string()[..8]);
    let now = now_ms();
    // create writes once; a second create returns what is there.
    let mut first = sample(&tenant, "k1", now - 3000, JournalState::Unknown);
    first.next_attempt_ms = Some(now - 10);
    assert_eq!(journal.create(&first).await.unwrap(), None);
    let again = sample(&tenant, "k1", now, JournalState::Posted);
    assert_eq!(journal.create(&again).await.unwrap(), Some(first.clone()));
    assert_eq!(
        journal.get(&tenant, "k1").await.unwrap(),
        Some(first.clone())
    );
    // The charge round-trips exactly (money as decimal strings).
    assert_eq!(
        journal.get(&tenant, "k1").await.unwrap().unwrap().charge,
        first.charge
    );

    let mut second = sample(&tenant, "k2", now - 2000, JournalState::Queued);
    second.next_attempt_ms = Some(now + 60_000);
    let third = sample(&tenant, "k3", now - 1000, JournalState::Posted);
    for e in [&second, &third] {
        assert!(journal.put(e, None).await.unwrap());
    }
    // Due: only what is due now.
    assert_eq!(journal.due(&tenant, now, 10).await.unwrap(), ["k1"]);

    // Leases: one owner at a time; fenced writes need the lease.
    assert!(
        journal
            .lease(&tenant, "k1", "w1", Duration::from_secs(5))
            .await
            .unwrap()
    );
    assert!(
        !journal
            .lease(&tenant, "k1", "w2", Duration::from_secs(5))
            .await
            .unwrap()
    );
    let mut posted = first.clone();
    posted.state = JournalState::Posted;
    posted.next_attempt_ms = None;
    assert!(
        !journal.put(&posted, Some("w2")).await.unwrap(),
        "not w2's lease"
    );
    assert!(journal.put(&posted, Some("w1")).await.unwrap());
    journal.release(&tenant, "k1", "w1").await.unwrap();
    assert!(
        journal
            .lease(&tenant, "k1", "w2", Duration::from_millis(200))
            .await
            .unwrap()
    );
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(
        journal
            .lease(&tenant, "k1", "w3", Duration::from_secs(1))
            .await
            .unwrap(),
        "an expired lease is free"
    );
    assert!(journal.due(&tenant, now, 10).await.unwrap().is_empty());

    // Lists: newest first, by state, paginated without gaps or repeats.
    let all = journal
        .list(
            &tenant,
            &Query {
                limit: 2,
                ..Default::default()
            },
        )
        .await
        .unwrap();
    let keys: Vec<&str> = all.entries.iter().map(|e| e.key.as_str()).collect();
    assert_eq!(keys, ["k3", "k2"]);
    let rest = journal
        .list(
            &tenant,
            &Query {
                limit: 2,
                cursor: all.next_cursor.clone(),
                ..Default::default()
            },
        )
        .await
        .unwrap();
    let keys: Vec<&str> = rest.entries.iter().map(|e| e.key.as_str()).collect();
    assert_eq!(keys, ["k1"]);
    assert_eq!(rest.next_cursor, None);
    let posted_only = journal
        .list(
            &tenant,
            &Query {
                state: Some(JournalState::Posted),
                limit: 10,
                ..Default::default()
            },
        )
        .await
        .unwrap();
    let keys: Vec<&str> = posted_only.entries.iter().map(|e| e.key.as_str()).collect();
    assert_eq!(keys, ["k3", "k1"], "k1 moved from unknown to posted");
    let window = journal
        .list(
            &tenant,
            &Query {
                since_ms: Some(now - 2500),
                until_ms: Some(now - 1500),
                limit: 10,
                ..Default::default()
            },
        )
        .await
        .unwrap();
    assert_eq!(window.entries.len(), 1);
    assert_eq!(window.entries[0].key, "k2");

    let census = journal.census(&tenant).await.unwrap();
    let count = |s: JournalState| census.iter().find(|(c, _, _)| *c == s).unwrap().1;
    assert_eq!(count(JournalState::Posted), 2);
    assert_eq!(count(JournalState::Queued), 1);
    assert_eq!(count(JournalState::Unknown), 0);
    let oldest_queued = census
        .iter()
        .find(|(c, _, _)| *c == JournalState::Queued)
        .unwrap()
        .2;
    assert_eq!(oldest_queued, Some(now - 2000));
}
both_stores!(journal_store, the_journal_store_keeps_its_promises);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn journal_series_exist_from_start_up_with_help_and_type() {
    let app = spawn_with(settings(&StoreChoice::Memory, fast_worker)).await;
    // The worker registers them as it starts.
    tokio::time::sleep(Duration::from_millis(300)).await;
    let text = String::from_utf8(app.get("/metrics").await.bytes).unwrap();
    for name in [
        "chargebridge_journal_entries",
        "chargebridge_journal_oldest_entry_age_seconds",
        "chargebridge_worker_attempts_total",
    ] {
        assert!(
            text.contains(&format!("# HELP {name} ")),
            "no HELP for {name}"
        );
        assert!(
            text.contains(&format!("# TYPE {name} ")),
            "no TYPE for {name}"
        );
    }
    let tenant = &app.tenant;
    for state in ["needs_attention", "queued", "posted", "failed"] {
        assert!(
            text.contains(&format!(
                "chargebridge_journal_entries{{tenant=\"{tenant}\",state=\"{state}\"}}"
            )),
            "no {state} series for {tenant}"
        );
    }
    assert!(text.contains(&format!(
        "chargebridge_journal_oldest_entry_age_seconds{{tenant=\"{tenant}\",state=\"needs_attention\"}} 0"
    )));
}

/// Found by the chaos run: a queued charge whose look-up failed while the PMS
/// was down was demoted to `unknown`, then marked `failed` and never posted.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_queued_charge_stays_queued_through_an_outage_and_is_posted_after_it() {
    let dir = tempfile::tempdir().unwrap();
    let down = dir.path().join("pms-down");
    let down_path = down.display().to_string();
    let app = spawn_with(settings(&StoreChoice::Memory, |s| {
        queue_mode(s);
        s.pms.insert(
            "demo".into(),
            PmsSettings::Memory(MemoryPmsSettings {
                down_file: Some(down_path),
                ..Default::default()
            }),
        );
    }))
    .await;
    std::fs::write(&down, "").unwrap();
    let key = fresh_key();
    assert_eq!(app.charge(&key, SEED).await.json()["status"], "queued");
    // The worker meets the outage (its look-ups fail) a few times.
    tokio::time::sleep(Duration::from_millis(2500)).await;
    let e = entry(&app, &key).await.unwrap();
    assert_eq!(e.state, JournalState::Queued, "{:?}", e.attempts);
    assert!(
        e.attempts
            .iter()
            .any(|a| a.by == chargebridge::journal::Actor::Worker)
    );
    std::fs::remove_file(&down).unwrap();
    wait_for_state(&app, &key, JournalState::Posted, Duration::from_secs(10)).await;
    assert_eq!(app.applied_for(&key), 1);
}

/// Found by the chaos run: a re-delivery of a `failed` key left the entry
/// `failed` (not due) until its last write, so a lost write hid a posted charge.
/// The re-delivery now puts the entry back to `unknown` and due first.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_redelivery_reopens_its_entry_before_calling_the_pms() {
    let app = spawn_with(settings(&StoreChoice::Memory, fast_worker)).await;
    let key = fresh_key();
    app.push_fault(Fault::Unavailable);
    assert_eq!(app.charge(&key, SEED).await.status, 500);
    assert_eq!(entry(&app, &key).await.unwrap().state, JournalState::Failed);
    app.push_fault(Fault::Slow(Duration::from_millis(800)));
    let resend = app.charge_in_background(&key, SEED);
    tokio::time::sleep(Duration::from_millis(300)).await;
    let during = entry(&app, &key).await.unwrap();
    assert_eq!(
        during.state,
        JournalState::Unknown,
        "reopened while at the PMS"
    );
    assert!(during.next_attempt_ms.is_some(), "and due for the worker");
    let answer = resend.await.unwrap();
    assert_eq!(answer.status, 200);
    assert_eq!(entry(&app, &key).await.unwrap().state, JournalState::Posted);
}
