//! Guest search and the operations endpoints.

use crate::both_stores;
use crate::helpers::*;

async fn search_finds_checked_in_guests(store: StoreChoice) {
    let app = spawn_app(store).await;
    let q = |term: &str| {
        format!(
            "/lightspeed/search?term={term}&businessExternalReference={REFERENCE}&apiKey={API_KEY}"
        )
    };
    let answer = app.get(&q("jane")).await;
    assert_eq!(answer.status, 200);
    assert_eq!(answer.json()["success"], true);
    assert_eq!(answer.json()["errorMessage"], "");
    let list = answer.json()["reservations"].as_array().unwrap().clone();
    assert_eq!(list.len(), 1);
    assert_eq!(list[0]["reservationId"], "001");
    assert_eq!(list[0]["roomId"], "101");
    assert_eq!(list[0]["clientName"], "Jane Doe");
    assert!(list[0]["creditLimit"].is_number(), "a JSON number");
    assert_eq!(list[0]["creditLimit"].to_string(), "500");
    assert_eq!(list[0]["blocked"], false);
    // By room number.
    let rooms = app.get(&q("102")).await.json();
    assert_eq!(rooms["reservations"][0]["clientName"], "John Smith");
    // A guest who is not checked in is never offered.
    assert!(
        app.get(&q("arthur")).await.json()["reservations"]
            .as_array()
            .unwrap()
            .is_empty()
    );
    // Blocked guests are listed with the flag set.
    let blocked = app.get(&q("M%C3%BCller")).await.json();
    assert_eq!(blocked["reservations"][0]["blocked"], true);

    // Failures keep Lightspeed's convention: HTTP 200, success false.
    let empty = app.get(&q("")).await;
    assert_eq!((empty.status, empty.code().as_str()), (200, "invalid_term"));
    empty.assert_search_failure();
    let bad = app
        .get(&format!(
            "/lightspeed/search?term=jane&businessExternalReference={REFERENCE}&apiKey=nope"
        ))
        .await;
    assert_eq!((bad.status, bad.code().as_str()), (200, "unauthorized"));
    bad.assert_search_failure();
    let none = app.get("/lightspeed/search?term=jane").await;
    assert_eq!((none.status, none.code().as_str()), (200, "unauthorized"));
}
both_stores!(search, search_finds_checked_in_guests);

async fn health_ready_and_metrics(store: StoreChoice) {
    let app = spawn_app(store).await;
    assert_eq!(app.get("/healthz").await.status, 200);
    let ready = app.get("/readyz").await;
    assert_eq!(
        ready.status,
        200,
        "{}",
        String::from_utf8_lossy(&ready.bytes)
    );
    assert_eq!(ready.json()["status"], "ready");
    let key = fresh_key();
    app.charge(&key, SEED).await;
    app.charge(&key, SEED).await;
    let metrics = app.get("/metrics").await;
    assert_eq!(metrics.status, 200);
    let text = String::from_utf8_lossy(&metrics.bytes).to_string();
    for name in [
        "chargebridge_requests_total",
        "chargebridge_idempotent_replays_total",
        "chargebridge_pms_duration_seconds",
        "chargebridge_in_flight_requests",
    ] {
        assert!(text.contains(name), "{name} missing from metrics");
    }
    assert!(!text.contains(API_KEY));
}
both_stores!(ops, health_ready_and_metrics);
