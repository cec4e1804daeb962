//! The `opera` adapter against the local OHIP fake: what the conformance kit does
//! not cover (tokens, request shape, refunds, mappings, rate limits).

use std::sync::Arc;
use std::time::Duration;

use chargebridge::config::MappingSettings;
use rust_decimal::Decimal;
use serde_json::Value;

use crate::conformance::{FakePms, app_for, reference_for};
use crate::fake_opera::{FakeOpera, OperaFault};
use crate::helpers::*;

fn as_fake(fake: &Arc<FakeOpera>) -> Arc<dyn FakePms> {
    fake.clone()
}

/// The kit's app, but with `mapping` instead of the fake's own.
async fn app_with_mapping(fake: &Arc<FakeOpera>, mapping: MappingSettings) -> TestApp {
    let pms = fake.settings();
    spawn_with(settings(&StoreChoice::Memory, |s| {
        s.server.request_deadline = Duration::from_millis(2500);
        s.server.pms_safety_margin = Duration::from_millis(300);
        s.pms.insert("fake".into(), pms);
        s.tenants[0].pms = "fake".into();
        s.tenants[0].mapping = mapping;
    }))
    .await
}

fn applied_amounts(fake: &Arc<FakeOpera>, key: &str) -> Vec<Decimal> {
    let reference = reference_for(key);
    fake.applied()
        .into_iter()
        .filter(|c| c.reference == reference)
        .map(|c| c.amount)
        .collect()
}

/// A receipt whose lines, service charge and tip add up to the room payment.
pub const ITEMIZED: &str = r#"{"businessExternalReference":"quickbooks-123","apiKey":"quickbooks-key-345",
  "receiptId":"R77","covers":3,
  "transactions":[
    {"quantity":2,"amount":20.00,"description":"Fries","groupId":25769803810,
     "taxLines":[{"taxId":"12345","taxAmount":2.00,"taxRate":1.1,"taxIncluded":false}]},
    {"quantity":0.5,"amount":7.50,"description":"Cheese","groupId":25769803810,
     "taxLines":[{"taxId":"12345","taxAmount":0.68,"taxRate":1.1,"taxIncluded":true}]}],
  "serviceCharge":{"amount":3.00,"type":"UNTAXED"},
  "payments":[{"amount":32.50,"gratuity":1.50,"methodCode":"IKPMS","reservationId":"001"}]}"#;

fn body_text(a: &Answer) -> String {
    String::from_utf8_lossy(&a.bytes).into_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn posts_the_documented_request_shape() {
    let fake = FakeOpera::start().await;
    let app = app_for(&as_fake(&fake)).await;
    let key = fresh_key();
    let answer = app.charge(&key, SEED).await;
    assert_eq!(answer.status, 200, "{}", body_text(&answer));
    let bodies = fake.charge_bodies();
    assert_eq!(bodies.len(), 1, "one call carries the whole receipt");
    let charges = bodies[0]["criteria"]["charges"].as_array().unwrap().clone();
    // The seed does not add up, so it is one consolidated item plus the tip.
    assert_eq!(charges.len(), 2);
    assert_eq!(charges[0]["transactionCode"], "2010");
    assert_eq!(charges[1]["transactionCode"], "9100");
    let text = serde_json::to_string(&charges).unwrap();
    assert!(text.contains(r#""amount":66.0"#), "exact decimal: {text}");
    assert!(text.contains(r#""amount":1.0"#), "exact decimal: {text}");
    for c in &charges {
        assert!(c["postingQuantity"].is_i64());
        assert_eq!(c["postingReference"], reference_for(&key).as_str());
        assert_eq!(c["checkNumber"], "R51.3");
        assert_eq!(c["price"]["currencyCode"], "EUR");
    }
    assert_eq!(charges[0]["covers"], "2");
    assert!(charges[1].get("covers").is_none(), "covers counted once");
    // The 200 names OPERA's transaction numbers.
    let pms_reference = answer.json()["pmsReference"].as_str().unwrap().to_string();
    assert!(
        pms_reference.split(',').all(|n| n.parse::<u64>().is_ok()),
        "{pms_reference}"
    );
    assert!(fake.shape_errors().is_empty(), "{:?}", fake.shape_errors());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_itemized_receipt_posts_integer_quantities_and_unit_prices() {
    let fake = FakeOpera::start().await;
    let app = app_for(&as_fake(&fake)).await;
    let body = ITEMIZED;
    let key = fresh_key();
    let answer = app.charge(&key, body).await;
    assert_eq!(answer.status, 200, "{}", body_text(&answer));
    let charges = fake.charge_bodies()[0]["criteria"]["charges"]
        .as_array()
        .unwrap()
        .clone();
    let shape: Vec<(String, i64, String)> = charges
        .iter()
        .map(|c| {
            (
                c["transactionCode"].as_str().unwrap().to_string(),
                c["postingQuantity"].as_i64().unwrap(),
                c["price"]["amount"].to_string(),
            )
        })
        .collect();
    assert_eq!(
        shape,
        [
            ("2010".to_string(), 2, "11.00".to_string()),
            ("2010".to_string(), 1, "7.50".to_string()),
            ("9200".to_string(), 1, "3.00".to_string()),
            ("9100".to_string(), 1, "1.50".to_string()),
        ]
    );
    assert_eq!(applied_amounts(&fake, &key), [Decimal::new(3400, 2)]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_refund_posts_negative_amounts() {
    let fake = FakeOpera::start().await;
    let app = app_for(&as_fake(&fake)).await;
    let key = fresh_key();
    let answer = app.charge(&key, &fixture("refund.json")).await;
    assert_eq!(answer.status, 200, "{}", body_text(&answer));
    let charges = fake.charge_bodies()[0]["criteria"]["charges"]
        .as_array()
        .unwrap()
        .clone();
    for c in &charges {
        let price: Decimal = c["price"]["amount"].to_string().parse().unwrap();
        assert!(price.is_sign_negative(), "{c}");
        assert!(c["postingQuantity"].as_i64().unwrap() > 0, "{c}");
    }
    assert_eq!(applied_amounts(&fake, &key), [Decimal::new(-660, 1)]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_missing_transaction_code_is_a_readable_422() {
    let fake = FakeOpera::start().await;
    let app = app_with_mapping(&fake, MappingSettings::default()).await;
    let key = fresh_key();
    let answer = app.charge(&key, SEED).await;
    assert_eq!(
        (answer.status, answer.code().as_str()),
        (422, "pms_rejected")
    );
    answer.assert_error_contract();
    assert_eq!(
        answer.json()["customerErrorMessage"],
        "No OPERA transaction code for Food"
    );
    assert!(fake.charge_bodies().is_empty(), "nothing reached OPERA");
    let replay = app.charge(&key, SEED).await;
    assert!(replay.replayed());
    assert_eq!(replay.bytes, answer.bytes);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_default_transaction_code_fills_unmapped_groups() {
    let fake = FakeOpera::start().await;
    let mut opera = fake.opera_settings();
    opera.default_transaction_code = Some("2000".into());
    let app = spawn_with(settings(&StoreChoice::Memory, |s| {
        s.pms
            .insert("fake".into(), chargebridge::pms::PmsSettings::Opera(opera));
        s.tenants[0].pms = "fake".into();
    }))
    .await;
    let answer = app.charge(&fresh_key(), SEED).await;
    assert_eq!(answer.status, 200, "{}", body_text(&answer));
    let charges = fake.charge_bodies()[0]["criteria"]["charges"].clone();
    assert_eq!(charges[0]["transactionCode"], "2000");
    assert_eq!(charges[1]["transactionCode"], "2000");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_guest_not_in_house_is_refused_with_operas_words() {
    let fake = FakeOpera::start().await;
    let app = app_for(&as_fake(&fake)).await;
    let body = seed_with(|v| v["payments"][0]["reservationId"] = "004".into());
    let answer = app.charge(&fresh_key(), &body).await;
    assert_eq!(
        (answer.status, answer.code().as_str()),
        (422, "pms_rejected")
    );
    assert_eq!(
        answer.json()["customerErrorMessage"],
        "Reservation is not in house"
    );
    // OHIP answers an unknown reservation 404 with its error body: a refusal
    // in OPERA's words (a 404 without that body is a set-up error, below).
    let body = seed_with(|v| v["payments"][0]["reservationId"] = "999".into());
    let answer = app.charge(&fresh_key(), &body).await;
    assert_eq!(
        (answer.status, answer.code().as_str()),
        (422, "pms_rejected")
    );
    assert_eq!(
        answer.json()["customerErrorMessage"],
        "Reservation not found"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_404_to_the_charge_is_a_set_up_error_not_a_refusal() {
    let fake = FakeOpera::start().await;
    let app = app_for(&as_fake(&fake)).await;
    let key = fresh_key();
    fake.push(OperaFault::Status(404));
    assert_set_up_error_is_unavailable(&app, &key, "OPERA 404").await;
    assert_eq!(
        applied_amounts(&fake, &key).len(),
        1,
        "posted once, by the retry"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_redirect_is_not_followed_and_is_a_set_up_error() {
    let fake = FakeOpera::start().await;
    let app = app_for(&as_fake(&fake)).await;
    let key = fresh_key();
    // Followed, the POST would turn into a GET of a page answering 200: "posted".
    fake.push(OperaFault::Redirect("/csh/v1/services/cashiering/status"));
    assert_set_up_error_is_unavailable(&app, &key, "OPERA 302").await;
    assert_eq!(
        applied_amounts(&fake, &key).len(),
        1,
        "posted once, by the retry"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn too_many_requests_is_unavailable_and_the_retry_posts_once() {
    let fake = FakeOpera::start().await;
    let app = app_for(&as_fake(&fake)).await;
    let key = fresh_key();
    fake.push(OperaFault::TooManyRequests);
    let first = app.charge(&key, SEED).await;
    assert_eq!(
        (first.status, first.code().as_str()),
        (500, "pms_unavailable")
    );
    first.assert_error_contract();
    assert!(applied_amounts(&fake, &key).is_empty());
    let retry = app.charge(&key, SEED).await;
    assert_eq!(retry.status, 200, "{}", body_text(&retry));
    assert_eq!(applied_amounts(&fake, &key).len(), 1);
    assert_eq!(fake.read_backs(), 0, "nothing to reconcile after a 429");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_expired_token_is_refreshed_before_use() {
    let fake = FakeOpera::start().await;
    fake.set_token_lifetime(1);
    let app = app_for(&as_fake(&fake)).await;
    assert_eq!(app.charge(&fresh_key(), SEED).await.status, 200);
    assert_eq!(fake.token_requests(), 1);
    assert_eq!(app.charge(&fresh_key(), SEED).await.status, 200);
    assert_eq!(fake.token_requests(), 1, "the cached token is reused");
    tokio::time::sleep(Duration::from_millis(1100)).await;
    assert_eq!(app.charge(&fresh_key(), SEED).await.status, 200);
    assert_eq!(fake.token_requests(), 2, "refreshed ahead of expiry");
    assert_eq!(fake.unauthorized(), 0, "never sent an expired token");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_401_triggers_exactly_one_refresh() {
    let fake = FakeOpera::start().await;
    let app = app_for(&as_fake(&fake)).await;
    assert_eq!(app.charge(&fresh_key(), SEED).await.status, 200);
    fake.revoke_tokens();
    let key = fresh_key();
    let answer = app.charge(&key, SEED).await;
    assert_eq!(answer.status, 200, "{}", body_text(&answer));
    assert_eq!((fake.token_requests(), fake.unauthorized()), (2, 1));
    assert_eq!(applied_amounts(&fake, &key).len(), 1);

    // Credentials that never work: one refresh, then a retryable 500.
    fake.refuse_every_token();
    let key = fresh_key();
    let answer = app.charge(&key, SEED).await;
    assert_eq!(
        (answer.status, answer.code().as_str()),
        (500, "pms_unavailable")
    );
    assert_eq!((fake.token_requests(), fake.unauthorized()), (3, 3));
    assert!(applied_amounts(&fake, &key).is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_requests_share_one_token_fetch() {
    let fake = FakeOpera::start().await;
    fake.set_token_delay(Duration::from_millis(300));
    let app = Arc::new(app_for(&as_fake(&fake)).await);
    let searches = (0..8).map(|_| {
        let app = app.clone();
        tokio::spawn(async move {
            app.get(&format!(
                "/lightspeed/search?term=Smith&businessExternalReference={REFERENCE}&apiKey={API_KEY}"
            ))
            .await
        })
    });
    for s in futures_util::future::join_all(searches).await {
        let answer = s.unwrap();
        assert_eq!(answer.status, 200, "{}", body_text(&answer));
        let list: Value = answer.json()["reservations"].clone();
        assert_eq!(list[0]["clientName"], "John Smith");
        assert_eq!(list[0]["roomId"], "102");
    }
    assert_eq!(fake.token_requests(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn search_finds_in_house_guests_by_room() {
    let fake = FakeOpera::start().await;
    let app = app_for(&as_fake(&fake)).await;
    let q = |term: &str| {
        format!(
            "/lightspeed/search?term={term}&businessExternalReference={REFERENCE}&apiKey={API_KEY}"
        )
    };
    let found = app.get(&q("101")).await.json();
    assert_eq!(found["reservations"][0]["clientName"], "Jane Doe");
    assert_eq!(found["reservations"][0]["roomDescription"], "DBL");
    assert_eq!(found["reservations"][0]["blocked"], false);
    let none = app.get(&q("202")).await.json();
    assert_eq!(none["reservations"].as_array().unwrap().len(), 0);
    // Staff type names either way round; OPERA is asked for the surname.
    for term in ["Doe,%20Jane", "Jane%20Doe", "doe"] {
        let found = app.get(&q(term)).await.json();
        assert_eq!(
            found["reservations"][0]["clientName"], "Jane Doe",
            "{term}: {found}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn readiness_checks_token_and_status() {
    let fake = FakeOpera::start().await;
    let app = app_for(&as_fake(&fake)).await;
    let ready = app.get("/readyz").await;
    assert_eq!(ready.status, 200, "{}", body_text(&ready));
    fake.refuse_every_token();
    let ready = app.get("/readyz").await;
    assert_eq!(ready.status, 503, "{}", body_text(&ready));
}

/// p50 and p99 of `n` sequential charges through `app`.
pub async fn measure(app: &TestApp, n: usize) -> (Duration, Duration) {
    // Warm up (token, connections) outside the measurement.
    app.charge(&fresh_key(), SEED).await;
    let mut took = Vec::with_capacity(n);
    for _ in 0..n {
        let started = std::time::Instant::now();
        let answer = app.charge(&fresh_key(), SEED).await;
        took.push(started.elapsed());
        assert_eq!(answer.status, 200, "{}", body_text(&answer));
    }
    took.sort();
    let at = |p: f64| took[((took.len() as f64 * p).ceil() as usize).clamp(1, took.len()) - 1];
    (at(0.50), at(0.99))
}

/// `cargo test --test api latency -- --ignored --nocapture`
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "measurement, not a check"]
async fn latency_through_opera() {
    let baseline = spawn_app(StoreChoice::Memory).await;
    let (b50, b99) = measure(&baseline, 100).await;
    let fake = FakeOpera::start().await;
    let app = app_for(&as_fake(&fake)).await;
    let (p50, p99) = measure(&app, 100).await;
    println!(
        "memory PMS: p50 {b50:?} p99 {b99:?}; opera fake: p50 {p50:?} p99 {p99:?} (100 sequential charges)"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_fake_refuses_what_the_ohip_descriptions_refuse() {
    let fake = FakeOpera::start().await;
    let client = reqwest::Client::new();
    let hotel = crate::fake_opera::HOTEL;

    // No x-app-key, a text quantity, a price without its amount.
    let answer = client
        .post(format!("{}/csh/v1/hotels/{hotel}/reservations/001/charges", fake.base))
        .header("authorization", "Bearer anything")
        .header("x-hotelid", hotel)
        .json(&serde_json::json!({ "criteria": { "hotelId": hotel, "charges": [
            { "transactionCode": "2000", "postingQuantity": "two", "price": { "currencyCode": "EUR" } } ] } }))
        .send()
        .await
        .unwrap();
    assert_eq!(answer.status(), 400);
    let body: Value = answer.json().await.unwrap();
    assert!(
        body["title"].is_string() && body["detail"].is_string(),
        "OHIP's shape: {body}"
    );
    let seen = fake.take_violations();
    assert!(
        seen.iter().any(|v| v.contains("`x-app-key` is required")),
        "{seen:?}"
    );
    assert!(
        seen.iter().any(|v| v.contains("postingQuantity")),
        "{seen:?}"
    );
    assert_eq!(fake.charge_bodies().len(), 0, "nothing reached the handler");

    // The read-back without its required reservation list, and a misspelt filter.
    let answer = client
        .get(format!("{}/csh/v1/hotels/{hotel}/transactions", fake.base))
        .query(&[("referenceNumber", "cb-1")])
        .header("authorization", "Bearer anything")
        .header("x-app-key", crate::fake_opera::APP_KEY)
        .header("x-hotelid", hotel)
        .send()
        .await
        .unwrap();
    assert_eq!(answer.status(), 400);
    let seen = fake.take_violations();
    assert!(
        seen.iter()
            .any(|v| v.contains("`reservationList` is required")),
        "{seen:?}"
    );
    assert!(
        seen.iter()
            .any(|v| v.contains("`referenceNumber` is not in the description")),
        "{seen:?}"
    );

    // A token request with a grant type OHIP does not offer and no client credentials.
    let answer = client
        .post(format!("{}/oauth/v1/tokens", fake.base))
        .header("x-app-key", crate::fake_opera::APP_KEY)
        .form(&[("grant_type", "authorization_code")])
        .send()
        .await
        .unwrap();
    assert_eq!(answer.status(), 400);
    let seen = fake.take_violations();
    assert!(seen.iter().any(|v| v.contains("grant_type")), "{seen:?}");
    assert!(seen.iter().any(|v| v.contains("basicAuth")), "{seen:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn routing_instructions_are_sent_only_when_configured() {
    let fake = FakeOpera::start().await;
    let mapping = fake.mapping();
    let mut opera = fake.opera_settings();
    opera.apply_routing_instructions = Some(false);
    let app = spawn_with(settings(&StoreChoice::Memory, |s| {
        s.server.request_deadline = Duration::from_millis(2500);
        s.server.pms_safety_margin = Duration::from_millis(300);
        s.pms
            .insert("fake".into(), chargebridge::pms::PmsSettings::Opera(opera));
        s.tenants[0].pms = "fake".into();
        s.tenants[0].mapping = mapping.clone();
    }))
    .await;
    assert_eq!(app.charge(&fresh_key(), SEED).await.status, 200);
    let body = fake.charge_bodies().pop().expect("a posting");
    let lines = body["criteria"]["charges"].as_array().unwrap();
    assert!(!lines.is_empty());
    assert!(
        lines
            .iter()
            .all(|l| l["applyRoutingInstructions"] == Value::Bool(false)),
        "{body}"
    );

    // Unset, the field is left to OPERA's default.
    let app = app_with_mapping(&fake, mapping).await;
    assert_eq!(app.charge(&fresh_key(), SEED).await.status, 200);
    let body = fake.charge_bodies().pop().expect("a posting");
    assert!(
        body["criteria"]["charges"][0]
            .get("applyRoutingInstructions")
            .is_none(),
        "{body}"
    );
}

/// OHIP reads back at most 30 days. A receipt that closed before that (a replayed
/// recording) whose first post may have reached OPERA is not posted again on
/// "not found": the outcome stays unknown. A recent one is posted by the retry.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn not_found_outside_the_read_back_window_stays_unknown() {
    let fake = FakeOpera::start().await;
    let app = app_for(&as_fake(&fake)).await;
    for (close, retry_status, posted) in [
        ("2021-01-01T00:00:00Z", 500, 0),
        (chrono::Utc::now().to_rfc3339().as_str(), 200, 1),
    ] {
        let body = seed_with(|v| v["closeDate"] = close.into());
        let key = fresh_key();
        // A 504 after sending: OPERA may have applied it (it did not).
        fake.push(OperaFault::Status(504));
        let first = app.charge(&key, &body).await;
        assert_eq!(first.code(), "pms_outcome_unknown", "{close}");
        let retry = app.charge(&key, &body).await;
        assert_eq!(retry.status, retry_status, "{close}: {}", body_text(&retry));
        if retry_status == 500 {
            assert_eq!(retry.code(), "pms_outcome_unknown");
        }
        assert_eq!(applied_amounts(&fake, &key).len(), posted, "{close}");
    }
}

/// A per-receipt tenant whose revenue goes to the posting master `PM1` and is
/// settled there by the receipt's payments (the fake maps CASH and CARD).
async fn settling_app(fake: &Arc<FakeOpera>, tweak: impl FnOnce(&mut MappingSettings)) -> TestApp {
    crate::conformance::app_with(&as_fake(fake), |t| {
        t.mirroring = true;
        t.revenue_posting = chargebridge::config::RevenuePosting::PerReceipt;
        t.mapping.default_revenue_account = Some("PM1".into());
        tweak(&mut t.mapping);
    })
    .await
}

/// The mirroring fixture (CARD 66 + 1 tip, all revenue), negated: a refund.
fn mirroring_refund() -> String {
    let mut v: Value = serde_json::from_str(&fixture("mirroring-no-room-charge.json")).unwrap();
    let t = &mut v["transactions"][0];
    t["quantity"] = (-2.0).into();
    t["amount"] = (-20.0).into();
    t["serviceChargeContribution"] = (-4.5).into();
    t["taxLines"]["taxAmount"] = (-1.0).into();
    v["payments"][0]["amount"] = (-66.0).into();
    v["payments"][0]["gratuity"] = (-1.0).into();
    v["serviceCharge"]["amount"] = (-1.0).into();
    v.to_string()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_payment_posts_the_documented_request_shape() {
    let fake = FakeOpera::start().await;
    let app = settling_app(&fake, |_| {}).await;
    let key = fresh_key();
    let answer = app
        .charge(&key, &fixture("mirroring-no-room-charge.json"))
        .await;
    assert_eq!(answer.status, 200, "{}", body_text(&answer));
    let bodies = fake.payment_bodies();
    assert_eq!(bodies.len(), 1, "one payment for the one method");
    let criteria = &bodies[0]["criteria"];
    assert_eq!(criteria["reservationId"]["id"], "PM1");
    assert_eq!(criteria["paymentMethod"]["paymentMethod"], "POSCARD");
    assert_eq!(criteria["postingAmount"]["currencyCode"], "EUR");
    let text = serde_json::to_string(&criteria["postingAmount"]).unwrap();
    assert!(
        text.contains(r#""amount":67.0"#),
        "exact decimal, tip included: {text}"
    );
    assert_eq!(criteria["postingRemark"], "Lightspeed receipt R51.3");
    let payments = fake.payments();
    let reference = criteria["postingReference"].as_str().unwrap();
    assert_eq!(payments[0].reference, reference);
    assert_eq!(reference.len(), 32);
    assert!(
        fake.applied().iter().all(|c| c.reference != reference),
        "the payment has its own reference"
    );
    // The POS hears OPERA's transaction numbers of both postings.
    let shown = answer.json().to_string();
    assert!(shown.contains("88000"), "{shown}");
    assert!(fake.shape_errors().is_empty(), "{:?}", fake.shape_errors());
}

/// A refund receipt takes its revenue back from the house account and pays
/// the money back: a negative payment in the same method.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_refund_receipt_posts_a_negative_payment() {
    let fake = FakeOpera::start().await;
    let app = settling_app(&fake, |_| {}).await;
    let key = fresh_key();
    let answer = app.charge(&key, &mirroring_refund()).await;
    assert_eq!(answer.status, 200, "{}", body_text(&answer));
    let payments = fake.payments();
    assert_eq!(payments.len(), 1);
    assert_eq!(payments[0].amount, Decimal::new(-670, 1));
    let charged: Decimal = fake.applied().iter().map(|c| c.amount).sum();
    assert_eq!(charged, payments[0].amount, "the house account balances");
    let body = &fake.payment_bodies()[0]["criteria"];
    assert_eq!(body["paymentMethod"]["paymentMethod"], "POSCARD");
    assert!(body.get("originalTransactionNo").is_none());
}

/// A Lightspeed method the tenant does not map goes as its own code, which the
/// property does not have: OPERA refuses the payment, staff read why, and the
/// revenue stays posted once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_payment_code_opera_lacks_is_refused_with_its_words() {
    let fake = FakeOpera::start().await;
    let app = settling_app(&fake, |m| {
        m.payment_methods.remove("CARD");
    })
    .await;
    let key = fresh_key();
    let body = fixture("mirroring-no-room-charge.json");
    let answer = app.charge(&key, &body).await;
    assert_eq!(answer.status, 422, "{}", body_text(&answer));
    let message = answer.json()["customerErrorMessage"]
        .as_str()
        .unwrap()
        .to_string();
    // The POS shows a short text: which payment, then OPERA's words (cut).
    assert!(message.starts_with("Payment CARD refused"), "{message}");
    assert_eq!(fake.applied().len(), 1, "the revenue is posted");
    assert!(fake.payments().is_empty());
    let replay = app.charge(&key, &body).await;
    assert_eq!(replay.bytes, answer.bytes);
    assert_eq!(fake.applied().len(), 1);
}

/// The payment of a receipt older than OHIP's 30-day read-back (a replayed
/// recording) meets a 504: OPERA may have it. Its revenue posting is on the
/// house account inside the window, and the payment is only ever sent after
/// it, so "not found" is certain and the retry pays once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_old_receipts_lost_payment_is_reconciled_after_its_revenue() {
    let fake = FakeOpera::start().await;
    let app = settling_app(&fake, |_| {}).await;
    let body = fixture("mirroring-no-room-charge.json");
    for apply in [false, true] {
        let key = fresh_key();
        let before = (fake.applied().len(), fake.payments().len());
        fake.push_payment(if apply {
            OperaFault::Kit(crate::conformance::FakeFault::ApplyThenTimeout)
        } else {
            OperaFault::Status(504)
        });
        let first = app.charge(&key, &body).await;
        assert_eq!(
            first.code(),
            "pms_outcome_unknown",
            "{apply}: {}",
            body_text(&first)
        );
        let reads = fake.read_backs();
        let retry = app.charge(&key, &body).await;
        assert_eq!(retry.status, 200, "{apply}: {}", body_text(&retry));
        assert!(fake.read_backs() > reads, "{apply}: reconciled first");
        assert_eq!(fake.applied().len(), before.0 + 1, "{apply}: charged once");
        assert_eq!(fake.payments().len(), before.1 + 1, "{apply}: paid once");
    }
}
