//! PMS failure classes, deadline, and a store that cannot be reached.

use std::time::{Duration, Instant};

use chargebridge::pms::memory::Fault;

use crate::both_stores;
use crate::helpers::*;

async fn rejected_is_stored_and_replayed(store: StoreChoice) {
    let app = spawn_app(store).await;
    let key = fresh_key();
    app.push_fault(Fault::Reject("Folio closed for room 101".into()));
    let first = app.charge(&key, SEED).await;
    assert_eq!(first.status, 422);
    assert_eq!(first.code(), "pms_rejected");
    assert_eq!(
        first.json()["customerErrorMessage"],
        "Folio closed for room 101"
    );
    let second = app.charge(&key, SEED).await;
    assert_eq!(second.status, 422);
    assert!(second.replayed());
    assert_eq!(first.bytes, second.bytes);
    assert_eq!(
        app.memory_pms().posts_attempted(),
        1,
        "the refusal was not asked twice"
    );
    assert!(app.applied().is_empty());
}
both_stores!(rejected, rejected_is_stored_and_replayed);

async fn long_rejections_are_cut_to_fit(store: StoreChoice) {
    let app = spawn_app(store).await;
    app.push_fault(Fault::Reject(
        "Credit limit exceeded for reservation 001: guest must settle at the front desk".into(),
    ));
    let answer = app.charge(&fresh_key(), SEED).await;
    answer.assert_error_contract();
    let msg = answer.json()["customerErrorMessage"]
        .as_str()
        .unwrap()
        .to_string();
    assert_eq!(msg.chars().count(), 50);
    assert!(msg.ends_with('…'));
}
both_stores!(long_rejection, long_rejections_are_cut_to_fit);

async fn unavailable_releases_and_retry_posts_once(store: StoreChoice) {
    let app = spawn_app(store).await;
    let key = fresh_key();
    app.push_fault(Fault::Unavailable);
    let first = app.charge(&key, SEED).await;
    assert_eq!(
        (first.status, first.code().as_str()),
        (500, "pms_unavailable")
    );
    first.assert_error_contract();
    assert!(app.applied().is_empty());
    let retry = app.charge(&key, SEED).await;
    assert_eq!(retry.status, 200);
    assert!(!retry.replayed());
    assert_eq!(app.applied_for(&key), 1);
}
both_stores!(unavailable, unavailable_releases_and_retry_posts_once);

async fn unknown_outcome_is_reconciled_not_reposted(store: StoreChoice) {
    let app = spawn_app(store).await;
    let key = fresh_key();
    app.push_fault(Fault::ApplyThenUnknown);
    let first = app.charge(&key, SEED).await;
    assert_eq!(
        (first.status, first.code().as_str()),
        (500, "pms_outcome_unknown")
    );
    first.assert_error_contract();
    assert_eq!(app.applied_for(&key), 1, "the PMS did apply it");
    let retry = app.charge(&key, SEED).await;
    assert_eq!(retry.status, 200);
    assert_eq!(app.applied_for(&key), 1, "reconciled, not posted again");
    assert_eq!(app.memory_pms().posts_attempted(), 1);
    let again = app.charge(&key, SEED).await;
    assert!(again.replayed());
    assert_eq!(again.bytes, retry.bytes);
}
both_stores!(unknown_outcome, unknown_outcome_is_reconciled_not_reposted);

/// The PMS answers after the deadline (and applies the charge late): the
/// answer still leaves in time as unknown, and the retry finds the charge.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deadline_bounds_the_answer_memory() {
    let app = spawn_with(settings(&StoreChoice::Memory, |s| {
        s.server.request_deadline = Duration::from_millis(800);
        s.server.pms_safety_margin = Duration::from_millis(100);
    }))
    .await;
    slow_pms_is_cut_at_the_deadline(app).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deadline_bounds_the_answer_redis() {
    let app = spawn_with(settings(&StoreChoice::Redis, |s| {
        s.server.request_deadline = Duration::from_millis(800);
        s.server.pms_safety_margin = Duration::from_millis(100);
    }))
    .await;
    slow_pms_is_cut_at_the_deadline(app).await;
}

async fn slow_pms_is_cut_at_the_deadline(app: TestApp) {
    let key = fresh_key();
    let deadline = app.state.server.request_deadline;
    app.push_fault(Fault::Slow(deadline + Duration::from_secs(2)));
    let started = Instant::now();
    let first = app.charge(&key, SEED).await;
    assert!(
        started.elapsed() < deadline + Duration::from_millis(300),
        "took {:?}",
        started.elapsed()
    );
    assert_eq!(
        (first.status, first.code().as_str()),
        (500, "pms_outcome_unknown")
    );
    let retry = app.charge(&key, SEED).await;
    assert_eq!(retry.status, 200);
    assert_eq!(app.applied_for(&key), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unreachable_store_fails_closed() {
    let dead = format!("redis://127.0.0.1:{}", crate::redis_server::free_port());
    let app = spawn_app(StoreChoice::RedisAt(dead)).await;
    let started = Instant::now();
    let answer = app.charge(&fresh_key(), SEED).await;
    assert_eq!(
        (answer.status, answer.code().as_str()),
        (500, "store_unavailable")
    );
    answer.assert_error_contract();
    assert!(started.elapsed() < Duration::from_secs(3));
    assert_eq!(
        app.memory_pms().posts_attempted(),
        0,
        "nothing posted without deduplication"
    );
    let ready = app.get("/readyz").await;
    assert_eq!(ready.status, 503);
    assert_eq!(ready.json()["status"], "not_ready");
}
