//! `POST /lightspeed/charge`: every row of the status table (README "Endpoints"), on both stores.

use std::time::Duration;

use serde_json::json;

use crate::both_stores;
use crate::helpers::*;

async fn seed_example_posts_once(store: StoreChoice) {
    let app = spawn_app(store).await;
    let key = fresh_key();
    let answer = app.charge(&key, SEED).await;
    assert_eq!(
        answer.status,
        200,
        "{}",
        String::from_utf8_lossy(&answer.bytes)
    );
    let body = answer.json();
    assert_eq!(body["status"], "posted");
    assert_eq!(body["idempotencyKey"], key.as_str());
    assert!(
        body["pmsReference"]
            .as_str()
            .is_some_and(|r| r.starts_with("MEM-"))
    );
    assert!(!answer.replayed());

    let applied = app.applied();
    assert_eq!(applied.len(), 1);
    let room = applied[0].charge.room().unwrap();
    assert_eq!(
        room.amount.to_string(),
        "67.0",
        "66.0 plus the 1.0 tip on top"
    );
    assert_eq!(room.gratuity.to_string(), "1.0");
    assert_eq!(room.reservation_id, "001");
    assert_eq!(applied[0].charge.currency, "EUR");
    assert!(!applied[0].charge.refund);
    assert_eq!(applied[0].charge.lines.len(), 1);
    assert_eq!(
        applied[0].charge.receipt.fisc_id.as_deref(),
        Some("A1234.5")
    );
}
both_stores!(seed_example, seed_example_posts_once);

async fn duplicate_is_replayed_byte_identical(store: StoreChoice) {
    let app = spawn_app(store).await;
    let key = fresh_key();
    let first = app.charge(&key, SEED).await;
    // Same JSON, other formatting: still the same delivery.
    let reformatted =
        serde_json::to_string(&serde_json::from_str::<serde_json::Value>(SEED).unwrap()).unwrap();
    let second = app.charge(&key, &reformatted).await;
    assert_eq!(first.status, 200);
    assert_eq!(second.status, 200);
    assert_eq!(first.bytes, second.bytes);
    assert!(second.replayed());
    assert_eq!(app.applied_for(&key), 1);
}
both_stores!(duplicate_replay, duplicate_is_replayed_byte_identical);

async fn key_reuse_with_other_payload_is_422(store: StoreChoice) {
    let app = spawn_app(store).await;
    let key = fresh_key();
    assert_eq!(app.charge(&key, SEED).await.status, 200);
    let other = seed_with(|v| v["payments"][0]["amount"] = json!(67.0));
    let answer = app.charge(&key, &other).await;
    assert_eq!(answer.status, 422);
    assert_eq!(answer.code(), "idempotency_key_reused");
    answer.assert_error_contract();
    assert_eq!(app.applied().len(), 1);
}
both_stores!(key_reuse, key_reuse_with_other_payload_is_422);

async fn header_and_content_errors(store: StoreChoice) {
    let app = spawn_app(store).await;
    let key = fresh_key();
    type Case<'a> = (Vec<(&'a str, &'a str)>, u16, &'a str);
    let cases: Vec<Case> = vec![
        (
            vec![("content-type", "application/json")],
            400,
            "missing_idempotency_key",
        ),
        (
            vec![
                ("content-type", "application/json"),
                ("x-lightspeed-idempotency-key", "has space"),
            ],
            400,
            "invalid_idempotency_key",
        ),
        (
            vec![
                ("content-type", "text/plain"),
                ("x-lightspeed-idempotency-key", &key),
            ],
            415,
            "unsupported_media_type",
        ),
        (
            vec![
                ("content-type", "application/json"),
                ("accept", "text/html"),
                ("x-lightspeed-idempotency-key", &key),
            ],
            406,
            "not_acceptable",
        ),
    ];
    for (headers, status, code) in cases {
        let answer = app.raw_charge(&headers, SEED.as_bytes().to_vec()).await;
        assert_eq!(answer.status, status, "{headers:?}");
        assert_eq!(answer.code(), code, "{headers:?}");
        answer.assert_error_contract();
    }
    let long_key = "k".repeat(256);
    let answer = app.charge(&long_key, SEED).await;
    assert_eq!(
        (answer.status, answer.code().as_str()),
        (400, "invalid_idempotency_key")
    );
    // 255 characters is still a valid key.
    assert_eq!(app.charge(&"k".repeat(255), SEED).await.status, 200);
    assert_eq!(app.applied().len(), 1);
}
both_stores!(header_errors, header_and_content_errors);

async fn oversized_body_is_413(store: StoreChoice) {
    let app = spawn_with(settings(&store, |s| s.server.body_limit = 4096)).await;
    let big = seed_with(|v| v["name"] = json!("x".repeat(5000)));
    let answer = app.charge(&fresh_key(), &big).await;
    assert_eq!(answer.status, 413);
    assert_eq!(answer.code(), "payload_too_large");
    answer.assert_error_contract();
    // The default limit is 1 MiB.
    let app = spawn_app(StoreChoice::Memory).await;
    let huge = seed_with(|v| v["name"] = json!("x".repeat(1_100_000)));
    assert_eq!(app.charge(&fresh_key(), &huge).await.status, 413);
    assert!(app.applied().is_empty());
}
both_stores!(oversized, oversized_body_is_413);

async fn wrong_credentials_are_401(store: StoreChoice) {
    let app = spawn_app(store).await;
    for body in [
        seed_with(|v| v["apiKey"] = json!("wrong-key")),
        seed_with(|v| v["businessExternalReference"] = json!("someone-else")),
        seed_with(|v| v["apiKey"] = json!("")),
    ] {
        let answer = app.charge(&fresh_key(), &body).await;
        assert_eq!(answer.status, 401);
        assert_eq!(answer.code(), "unauthorized");
        answer.assert_error_contract();
        assert!(!String::from_utf8_lossy(&answer.bytes).contains("key-345"));
    }
    assert!(app.applied().is_empty());
}
both_stores!(credentials, wrong_credentials_are_401);

async fn concurrent_duplicates_post_once(store: StoreChoice) {
    let app = spawn_app(store).await;
    let key = fresh_key();
    // A slow PMS keeps the first delivery in flight while the others arrive.
    app.push_fault(chargebridge::pms::memory::Fault::Slow(
        Duration::from_millis(300),
    ));
    let tasks: Vec<_> = (0..16)
        .map(|_| app.charge_in_background(&key, SEED))
        .collect();
    let mut bodies = Vec::new();
    let mut fresh = 0;
    for t in tasks {
        let answer = t.await.unwrap();
        assert_eq!(answer.status, 200);
        if !answer.replayed() {
            fresh += 1;
        }
        bodies.push(answer.bytes);
    }
    assert_eq!(fresh, 1, "exactly one delivery did the work");
    assert!(bodies.windows(2).all(|w| w[0] == w[1]));
    assert_eq!(app.applied_for(&key), 1);
}
both_stores!(concurrent_duplicates, concurrent_duplicates_post_once);

async fn in_flight_duplicate_gets_409_after_waiting(store: StoreChoice) {
    let app = spawn_with(settings(&store, |s| {
        s.idempotency.in_flight_wait = Duration::from_millis(200)
    }))
    .await;
    let key = fresh_key();
    app.push_fault(chargebridge::pms::memory::Fault::Slow(
        Duration::from_millis(1500),
    ));
    let first = app.charge_in_background(&key, SEED);
    tokio::time::sleep(Duration::from_millis(150)).await;
    let started = std::time::Instant::now();
    let second = app.charge(&key, SEED).await;
    assert_eq!(second.status, 409);
    assert_eq!(second.code(), "in_progress");
    second.assert_error_contract();
    assert!(
        started.elapsed() >= Duration::from_millis(190),
        "it waited first"
    );
    // A different payload under the busy key is refused at once.
    let other = seed_with(|v| v["covers"] = json!(3));
    assert_eq!(
        app.charge(&key, &other).await.code(),
        "idempotency_key_reused"
    );
    assert_eq!(first.await.unwrap().status, 200);
    let third = app.charge(&key, SEED).await;
    assert_eq!(third.status, 200);
    assert!(third.replayed());
    assert_eq!(app.applied_for(&key), 1);
}
both_stores!(in_flight_409, in_flight_duplicate_gets_409_after_waiting);

async fn unknown_routes_and_methods_answer_json(store: StoreChoice) {
    let app = spawn_app(store).await;
    let answer = app.get("/lightspeed/nope").await;
    assert_eq!((answer.status, answer.code().as_str()), (404, "not_found"));
    answer.assert_error_contract();
    let answer = app.get("/lightspeed/charge").await;
    assert_eq!(
        (answer.status, answer.code().as_str()),
        (405, "method_not_allowed")
    );
    answer.assert_error_contract();
    // A trailing slash in the configured base still reaches the endpoint.
    let resp = app
        .client
        .post(format!("{}/lightspeed/charge/", app.address))
        .header("content-type", "application/json")
        .header("x-lightspeed-idempotency-key", fresh_key())
        .body(SEED)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status().as_u16(), 200);
}
both_stores!(routes, unknown_routes_and_methods_answer_json);
