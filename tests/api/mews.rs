//! The Mews adapter end to end, against the local fake Mews server: the
//! conformance kit plus what is specific to Mews (rate limits, reservation
//! states, exact items, service mapping, reconciliation paging).

use std::sync::Arc;
use std::time::{Duration, Instant};

use chargebridge::config::MappingSettings;
use chargebridge::pms::PmsSettings;
use chargebridge::pms::mews::MewsSettings;
use rust_decimal::Decimal;
use serde_json::{Value, json};

use crate::conformance::{FakeFault, FakePms, reference_for};
use crate::fake_mews::{self, FakeMews, Fault};
use crate::helpers::*;

crate::conformance!(mews_adapter, fake_mews::start_dyn);

/// The demo tenant on `fake`, as the kit sets it up, after `tweak`.
async fn app_on(
    fake: &Arc<FakeMews>,
    tweak: impl FnOnce(&mut MewsSettings, &mut MappingSettings),
) -> TestApp {
    app_with_deadline(fake, Duration::from_millis(2500), tweak).await
}

async fn app_with_deadline(
    fake: &Arc<FakeMews>,
    deadline: Duration,
    tweak: impl FnOnce(&mut MewsSettings, &mut MappingSettings),
) -> TestApp {
    let PmsSettings::Mews(mut mews) = fake.settings() else {
        unreachable!("the fake configures the mews adapter")
    };
    let mut mapping = fake_mews::mapping();
    tweak(&mut mews, &mut mapping);
    spawn_with(settings(&StoreChoice::Memory, |s| {
        s.server.request_deadline = deadline;
        s.server.pms_safety_margin = Duration::from_millis(300);
        s.pms.insert("mews".into(), PmsSettings::Mews(mews));
        s.tenants[0].pms = "mews".into();
        s.tenants[0].mapping = mapping;
    }))
    .await
}

fn applied_for(fake: &FakeMews, key: &str) -> Vec<crate::conformance::FakeCharge> {
    let reference = reference_for(key);
    fake.applied()
        .into_iter()
        .filter(|c| c.reference == reference)
        .collect()
}

fn body_for_reservation(reservation: &str) -> String {
    seed_with(|v| v["payments"][0]["reservationId"] = Value::from(reservation))
}

fn decimal(v: &Value) -> Decimal {
    v.as_number()
        .map(|n| n.to_string())
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("not a decimal: {v}"))
}

/// Σ UnitCount × GrossValue of an `orders/add` body.
fn order_total(order: &Value) -> Decimal {
    order["Items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| {
            Decimal::from(i["UnitCount"].as_i64().unwrap())
                * decimal(&i["UnitAmount"]["GrossValue"])
        })
        .sum()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_order_carries_the_reference_exact_amounts_and_the_mapping() {
    let fake = fake_mews::start().await;
    let app = app_on(&fake, |_, _| {}).await;
    let key = fresh_key();
    let answer = app.charge(&key, SEED).await;
    assert_eq!(
        answer.status,
        200,
        "{}",
        String::from_utf8_lossy(&answer.bytes)
    );

    let call = fake.calls("orders/add").pop().unwrap();
    let order = &call.body;
    let reference = reference_for(&key);
    let jane = fake_mews::guest("001");
    assert_eq!(order["ClientToken"], fake_mews::CLIENT_TOKEN);
    assert_eq!(order["AccessToken"], fake_mews::ACCESS_TOKEN);
    assert!(
        order["Client"]
            .as_str()
            .unwrap()
            .starts_with("chargebridge ")
    );
    assert_eq!(order["ServiceId"], fake_mews::RESTAURANT_SERVICE);
    assert_eq!(order["AccountId"], jane.account);
    assert_eq!(order["LinkedReservationId"], "001");
    assert_eq!(order["ConsumptionUtc"], "2021-01-01T00:00:00.000Z");
    let notes = order["Notes"].as_str().unwrap();
    assert!(
        notes.contains("R51.3") && notes.contains("A1234.5") && notes.contains(&reference),
        "{notes}"
    );
    let items = order["Items"].as_array().unwrap();
    assert!(
        items
            .iter()
            .all(|i| i["ExternalIdentifier"] == reference.as_str())
    );
    assert!(items.iter().all(|i| i["UnitCount"].is_i64()));
    // The seed does not add up, so it is one consolidated item plus the tip,
    // written exactly as the decimals (no float on the way).
    assert!(call.raw.contains(r#""GrossValue":66.0"#), "{}", call.raw);
    assert!(call.raw.contains(r#""GrossValue":1.0"#), "{}", call.raw);
    assert_eq!(order_total(order), Decimal::new(670, 1));
    let tip = items.iter().find(|i| i["Name"] == "Tip").unwrap();
    assert_eq!(tip["AccountingCategoryId"], fake_mews::TIPS_CATEGORY);
    // The answer names Mews's order.
    let pms_reference = answer.json()["pmsReference"].as_str().unwrap().to_string();
    assert!(
        uuid::Uuid::parse_str(&pms_reference).is_ok(),
        "{pms_reference}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_itemized_receipt_carries_mapped_categories_and_tax_codes() {
    let fake = fake_mews::start().await;
    let app = app_on(&fake, |_, _| {}).await;
    // 2 × 11.00 (tax on top) + 3.00 service charge = 25.00, plus the 1.50 tip on top.
    let body = seed_with(|v| {
        v["transactions"][0]["amount"] = Value::from(20.0);
        v["transactions"][0]["taxLines"] = serde_json::json!([
            {"taxId": "12345", "taxAmount": 2.00, "taxRate": 1.1, "taxIncluded": false}]);
        v["serviceCharge"] = serde_json::json!({"amount": 3.00, "type": "UNTAXED"});
        v["payments"][0]["amount"] = Value::from(25.0);
        v["payments"][0]["gratuity"] = Value::from(1.5);
    });
    let answer = app.charge(&fresh_key(), &body).await;
    assert_eq!(
        answer.status,
        200,
        "{}",
        String::from_utf8_lossy(&answer.bytes)
    );
    let order = fake.last_order();
    let items = order["Items"].as_array().unwrap();
    assert_eq!(items.len(), 3, "{order}");
    assert_eq!(items[0]["UnitCount"], 2);
    assert_eq!(
        decimal(&items[0]["UnitAmount"]["GrossValue"]),
        Decimal::new(1100, 2)
    );
    assert_eq!(items[0]["UnitAmount"]["TaxCodes"][0], fake_mews::VAT_CODE);
    assert_eq!(items[0]["AccountingCategoryId"], fake_mews::FOOD_CATEGORY);
    assert_eq!(
        items[1]["AccountingCategoryId"],
        fake_mews::SERVICE_CHARGE_CATEGORY
    );
    assert_eq!(order_total(&order), Decimal::new(2650, 2));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rate_limited_posting_is_unavailable_and_a_retry_posts_once() {
    let fake = fake_mews::start().await;
    let app = app_on(&fake, |_, _| {}).await;
    let key = fresh_key();
    fake.inject(FakeFault::Unavailable);
    let answer = app.charge(&key, SEED).await;
    assert_eq!(
        (answer.status, answer.code().as_str()),
        (500, "pms_unavailable")
    );
    answer.assert_error_contract();
    let adds = fake.calls("orders/add");
    assert_eq!(adds.len(), 1);
    assert_eq!(adds[0].status, 429, "Mews said: too many requests");
    assert!(applied_for(&fake, &key).is_empty());

    let retry = app.charge(&key, SEED).await;
    assert_eq!(
        retry.status,
        200,
        "{}",
        String::from_utf8_lossy(&retry.bytes)
    );
    assert!(
        !retry.replayed(),
        "the claim was released, so the retry posted"
    );
    assert_eq!(applied_for(&fake, &key).len(), 1);
    assert!(
        fake.calls("orderItems/getAll").is_empty(),
        "a 429 is not an unknown outcome: nothing to reconcile"
    );
    assert!(app.charge(&key, SEED).await.replayed());
    assert_eq!(applied_for(&fake, &key).len(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_refused_connection_is_unavailable() {
    let fake = fake_mews::start().await;
    let closed = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port()
    };
    let app = app_on(&fake, |m, _| m.url = format!("http://127.0.0.1:{closed}")).await;
    let key = fresh_key();
    for _ in 0..2 {
        let answer = app.charge(&key, SEED).await;
        assert_eq!(
            (answer.status, answer.code().as_str()),
            (500, "pms_unavailable")
        );
        answer.assert_error_contract();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wrong_credentials_are_unavailable_not_the_guests_fault() {
    let fake = fake_mews::start().await;
    let app = app_on(&fake, |m, _| {
        m.access_token = Some(secrecy::SecretString::from("revoked".to_string()))
    })
    .await;
    let answer = app.charge(&fresh_key(), SEED).await;
    assert_eq!(
        (answer.status, answer.code().as_str()),
        (500, "pms_unavailable")
    );
    assert!(fake.all_calls().iter().all(|c| c.status == 401));
    let ready = app.get("/readyz").await;
    assert_eq!(ready.status, 503);
    assert!(!String::from_utf8_lossy(&ready.bytes).contains("revoked"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn readiness_asks_mews() {
    let fake = fake_mews::start().await;
    let app = app_on(&fake, |_, _| {}).await;
    let ready = app.get("/readyz").await;
    assert_eq!(
        ready.status,
        200,
        "{}",
        String::from_utf8_lossy(&ready.bytes)
    );
    assert_eq!(fake.calls("configuration/get").len(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_checked_out_guest_is_refused_with_a_readable_message() {
    let fake = fake_mews::start().await;
    let app = app_on(&fake, |_, _| {}).await;
    let key = fresh_key();
    let body = body_for_reservation("004");
    let answer = app.charge(&key, &body).await;
    assert_eq!(
        (answer.status, answer.code().as_str()),
        (422, "pms_rejected")
    );
    answer.assert_error_contract();
    assert_eq!(
        answer.json()["customerErrorMessage"],
        "Guest has checked out"
    );
    assert!(
        fake.calls("orders/add").is_empty(),
        "nothing was sent to the folio"
    );
    let replay = app.charge(&key, &body).await;
    assert!(replay.replayed());
    assert_eq!(replay.bytes, answer.bytes);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unknown_reservation_is_refused() {
    let fake = fake_mews::start().await;
    let app = app_on(&fake, |_, _| {}).await;
    // Mews answers 400 for an id that is not one of its ids, and an empty list
    // for a well-formed id it does not have.
    for reservation in ["999", "0f515589-99b4-423d-b83a-b237009f0509"] {
        let answer = app
            .charge(&fresh_key(), &body_for_reservation(reservation))
            .await;
        assert_eq!(
            (answer.status, answer.code().as_str()),
            (422, "pms_rejected"),
            "{reservation}"
        );
        assert_eq!(answer.json()["customerErrorMessage"], "Unknown reservation");
    }
    let lookups = fake.calls("reservations/getAll/2023-06-06");
    assert_eq!((lookups[0].status, lookups[1].status), (400, 200));
    assert!(fake.calls("orders/add").is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_refund_posts_negative_prices_for_whole_units() {
    let fake = fake_mews::start().await;
    let app = app_on(&fake, |_, _| {}).await;
    let key = fresh_key();
    let answer = app.charge(&key, &fixture("refund.json")).await;
    assert_eq!(
        answer.status,
        200,
        "{}",
        String::from_utf8_lossy(&answer.bytes)
    );
    let order = fake.last_order();
    for item in order["Items"].as_array().unwrap() {
        assert!(item["UnitCount"].as_i64().unwrap() > 0, "{item}");
        assert!(
            decimal(&item["UnitAmount"]["GrossValue"]).is_sign_negative(),
            "{item}"
        );
    }
    assert!(
        order["Notes"]
            .as_str()
            .unwrap()
            .contains("refund of A1234.5")
    );
    assert_eq!(order_total(&order), Decimal::new(-660, 1));
    assert_eq!(applied_for(&fake, &key)[0].amount, Decimal::new(-660, 1));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn several_room_payments_post_the_exact_room_amount() {
    let fake = fake_mews::start().await;
    let app = app_on(&fake, |_, _| {}).await;
    let key = fresh_key();
    let answer = app
        .charge(&key, &fixture("multi-payment-same-room.json"))
        .await;
    assert_eq!(
        answer.status,
        200,
        "{}",
        String::from_utf8_lossy(&answer.bytes)
    );
    let applied = applied_for(&fake, &key);
    assert_eq!(applied.len(), 1, "one order for the receipt");
    assert_eq!(
        applied[0].amount,
        Decimal::new(675, 1),
        "32.00 + 1.00 + 34.00 + 0.50"
    );
    let tip = fake.last_order()["Items"]
        .as_array()
        .unwrap()
        .iter()
        .find(|i| i["Name"] == "Tip")
        .map(|i| decimal(&i["UnitAmount"]["GrossValue"]));
    assert_eq!(tip, Some(Decimal::new(15, 1)), "1.00 + 0.50");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn items_without_a_tax_code_take_the_adapters_default() {
    let fake = fake_mews::start().await;
    let app = app_on(&fake, |m, _| {
        m.default_tax_code = Some(fake_mews::VAT_CODE.into());
    })
    .await;
    let answer = app
        .charge(&fresh_key(), &fixture("multi-payment-same-room.json"))
        .await;
    assert_eq!(answer.status, 200, "{}", answer.json());
    let items = fake.last_order()["Items"].as_array().unwrap().clone();
    let tip = items
        .iter()
        .find(|i| i["Name"] == "Tip")
        .expect("a tip item");
    assert_eq!(tip["UnitAmount"]["TaxCodes"], json!([fake_mews::VAT_CODE]));
    // Without the setting, the tip carries no tax code (what Mews refuses
    // in legal environments that need one on every item).
    let fake = fake_mews::start().await;
    let app = app_on(&fake, |_, _| {}).await;
    let answer = app
        .charge(&fresh_key(), &fixture("multi-payment-same-room.json"))
        .await;
    assert_eq!(answer.status, 200, "{}", answer.json());
    let items = fake.last_order()["Items"].as_array().unwrap().clone();
    let tip = items
        .iter()
        .find(|i| i["Name"] == "Tip")
        .expect("a tip item");
    assert_eq!(tip["UnitAmount"]["TaxCodes"], json!([]));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_service_charge_receipt_posts_the_exact_room_amount() {
    let fake = fake_mews::start().await;
    let app = app_on(&fake, |_, _| {}).await;
    let key = fresh_key();
    let answer = app
        .charge(&key, &fixture("service-charge-apportioned.json"))
        .await;
    assert_eq!(
        answer.status,
        200,
        "{}",
        String::from_utf8_lossy(&answer.bytes)
    );
    assert_eq!(applied_for(&fake, &key)[0].amount, Decimal::new(670, 1));
    assert_eq!(order_total(&fake.last_order()), Decimal::new(670, 1));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_missing_service_mapping_is_a_readable_422() {
    let fake = fake_mews::start().await;
    let app = app_on(&fake, |m, mapping| {
        m.service_id = None;
        mapping.revenue_centers.clear();
        mapping.default_revenue_center = None;
    })
    .await;
    let key = fresh_key();
    let answer = app.charge(&key, SEED).await;
    assert_eq!(
        (answer.status, answer.code().as_str()),
        (422, "pms_rejected")
    );
    answer.assert_error_contract();
    assert_eq!(
        answer.json()["customerErrorMessage"],
        "No Mews service mapped for this outlet"
    );
    assert!(fake.all_calls().is_empty(), "refused before calling Mews");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_adapters_default_service_serves_unmapped_outlets() {
    let fake = fake_mews::start().await;
    let app = app_on(&fake, |m, mapping| {
        m.service_id = Some(fake_mews::RESTAURANT_SERVICE.into());
        mapping.revenue_centers.clear();
    })
    .await;
    let answer = app.charge(&fresh_key(), SEED).await;
    assert_eq!(
        answer.status,
        200,
        "{}",
        String::from_utf8_lossy(&answer.bytes)
    );
    assert_eq!(
        fake.last_order()["ServiceId"],
        fake_mews::RESTAURANT_SERVICE
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_server_error_after_sending_is_unknown_and_reconciled() {
    let fake = fake_mews::start().await;
    let app = app_on(&fake, |_, _| {}).await;

    // Mews applied the order, then failed: the retry finds it and does not post.
    let applied_key = fresh_key();
    fake.push(Fault::ApplyThenStatus(500));
    let first = app.charge(&applied_key, SEED).await;
    assert_eq!(
        (first.status, first.code().as_str()),
        (500, "pms_outcome_unknown")
    );
    let retry = app.charge(&applied_key, SEED).await;
    assert_eq!(
        retry.status,
        200,
        "{}",
        String::from_utf8_lossy(&retry.bytes)
    );
    assert_eq!(applied_for(&fake, &applied_key).len(), 1);
    assert_eq!(
        fake.calls("orders/add").len(),
        1,
        "reconciled, not posted again"
    );

    // Mews failed without applying: the retry finds nothing and posts once.
    let lost_key = fresh_key();
    fake.push(Fault::Status(503));
    let first = app.charge(&lost_key, SEED).await;
    assert_eq!(
        (first.status, first.code().as_str()),
        (500, "pms_outcome_unknown")
    );
    let retry = app.charge(&lost_key, SEED).await;
    assert_eq!(
        retry.status,
        200,
        "{}",
        String::from_utf8_lossy(&retry.bytes)
    );
    assert_eq!(applied_for(&fake, &lost_key).len(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reconciliation_pages_through_a_busy_account() {
    let fake = fake_mews::start().await;
    // Three pages of 1 000 items take a while in a debug build under a loaded
    // test run; this checks the paging, not the speed.
    let app = app_with_deadline(&fake, Duration::from_secs(8), |_, _| {}).await;
    let key = fresh_key();
    fake.push(Fault::ApplyThenStatus(504));
    let first = app.charge(&key, SEED).await;
    assert_eq!(first.code(), "pms_outcome_unknown");
    // 2 500 newer items on the same account, consumed at the same time: ours is
    // on the third page.
    let closed: chrono::DateTime<chrono::Utc> = "2021-01-01T00:00:00Z".parse().unwrap();
    fake.seed_items(fake_mews::guest("001").account, 2500, closed);
    let retry = app.charge(&key, SEED).await;
    assert_eq!(
        retry.status,
        200,
        "{}",
        String::from_utf8_lossy(&retry.bytes)
    );
    assert_eq!(applied_for(&fake, &key).len(), 1);
    let pages = fake.calls("orderItems/getAll");
    assert_eq!(pages.len(), 3, "followed the cursor");
    assert!(pages[0].body["Limitation"]["Cursor"].is_null());
    assert!(pages[2].body["Limitation"]["Cursor"].is_string());
    assert_eq!(
        pages[0].body["ServiceIds"][0],
        fake_mews::RESTAURANT_SERVICE,
        "one of the filters Mews requires"
    );
    assert_eq!(
        pages[0].body["AccountIds"][0],
        fake_mews::guest("001").account
    );
    assert_eq!(
        pages[0].body["ConsumedUtc"]["StartUtc"],
        "2020-12-30T00:00:00.000Z"
    );
    assert_eq!(
        pages[0].body["ConsumedUtc"]["EndUtc"],
        "2021-01-03T00:00:00.000Z"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn search_matches_names_and_rooms_of_checked_in_guests() {
    let fake = fake_mews::start().await;
    let app = app_on(&fake, |_, _| {}).await;
    let q = |term: &str| {
        format!(
            "/lightspeed/search?term={term}&businessExternalReference={REFERENCE}&apiKey={API_KEY}"
        )
    };
    let by_room = app.get(&q("102")).await.json();
    let list = by_room["reservations"].as_array().unwrap();
    assert_eq!(list.len(), 1, "{by_room}");
    assert_eq!(list[0]["clientName"], "John Smith");
    assert_eq!(list[0]["reservationId"], "002");
    assert_eq!(list[0]["roomDescription"], "Twin");
    assert_eq!(list[0]["blocked"], false);
    assert!(list[0].get("creditLimit").is_none());
    for term in ["jane", "Jane%20Doe", "Doe,%20Jane", "DOE%20J"] {
        let by_name = app.get(&q(term)).await.json();
        assert_eq!(
            by_name["reservations"][0]["roomId"], "101",
            "{term}: {by_name}"
        );
    }
    let all_rooms = app.get(&q("10")).await.json();
    assert_eq!(all_rooms["reservations"].as_array().unwrap().len(), 2);
    assert!(
        app.get(&q("202")).await.json()["reservations"]
            .as_array()
            .unwrap()
            .is_empty(),
        "room 202's guest has checked out"
    );
    let asked = fake.calls("reservations/getAll/2023-06-06");
    assert_eq!(asked[0].body["States"], serde_json::json!(["Started"]));
}

/// A request straight to the fake, as the adapter would send it.
async fn send(fake: &FakeMews, op: &str, body: Value) -> (u16, Value) {
    let answer = reqwest::Client::new()
        .post(format!("{}/api/connector/v1/{op}", fake.url))
        .json(&body)
        .send()
        .await
        .expect("the fake answers");
    let status = answer.status().as_u16();
    (status, answer.json().await.unwrap_or(Value::Null))
}

fn credentials(access_token: &str) -> serde_json::Map<String, Value> {
    let Value::Object(map) = serde_json::json!({
        "ClientToken": fake_mews::CLIENT_TOKEN,
        "AccessToken": access_token,
        "Client": "chargebridge test",
        "Limitation": { "Count": 10 },
    }) else {
        unreachable!()
    };
    map
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_fake_refuses_what_mews_description_refuses() {
    let fake = fake_mews::start().await;

    // The reconciliation filter chargebridge used to send: `AccountIds` and
    // `ConsumedUtc` alone are none of the filters `orderItems/getAll` requires.
    let mut old_filter = credentials(fake_mews::ACCESS_TOKEN);
    old_filter.insert(
        "AccountIds".into(),
        serde_json::json!([fake_mews::guest("001").account]),
    );
    old_filter.insert(
        "ConsumedUtc".into(),
        serde_json::json!({ "StartUtc": "2020-12-30T00:00:00Z", "EndUtc": "2021-01-03T00:00:00Z" }),
    );
    let (status, answer) = send(
        &fake,
        "orderItems/getAll",
        Value::Object(old_filter.clone()),
    )
    .await;
    assert_eq!(status, 400, "{answer}");
    assert!(
        answer["Message"].is_string(),
        "Mews's error shape: {answer}"
    );
    let seen = fake.take_violations();
    assert!(
        seen.iter()
            .any(|v| v.contains("orderItems_getAll") && v.contains("at least one of")),
        "{seen:?}"
    );
    // With the service, as the adapter now asks, it is fine.
    old_filter.insert(
        "ServiceIds".into(),
        serde_json::json!([fake_mews::RESTAURANT_SERVICE]),
    );
    let (status, answer) = send(&fake, "orderItems/getAll", Value::Object(old_filter)).await;
    assert_eq!(status, 200, "{answer}");
    assert_eq!(fake.take_violations(), Vec::<String>::new());

    // `customers/getAll` has no `EnterpriseIds` (the adapter sent them with a
    // portfolio token), and a portfolio token needs `ChainIds`.
    let mut customers = credentials(fake_mews::PORTFOLIO_ACCESS_TOKEN);
    customers.insert(
        "CustomerIds".into(),
        serde_json::json!([fake_mews::guest("001").account]),
    );
    customers.insert("Extent".into(), serde_json::json!({ "Customers": true }));
    customers.insert(
        "EnterpriseIds".into(),
        serde_json::json!([fake_mews::ENTERPRISE]),
    );
    let (status, _) = send(&fake, "customers/getAll", Value::Object(customers)).await;
    assert_eq!(status, 400);
    let seen = fake.take_violations();
    assert!(seen.iter().any(|v| v.contains("EnterpriseIds")), "{seen:?}");
    assert!(seen.iter().any(|v| v.contains("ChainIds")), "{seen:?}");

    // `payments/getAll` without any filter, and `payments/addExternal` with a
    // field `ExternalPaymentParameters` does not have and an unknown type.
    let (status, _) = send(
        &fake,
        "payments/getAll",
        Value::Object(credentials(fake_mews::ACCESS_TOKEN)),
    )
    .await;
    assert_eq!(status, 400);
    let seen = fake.take_violations();
    assert!(
        seen.iter()
            .any(|v| v.contains("payments_getAll") && v.contains("at least one of")),
        "{seen:?}"
    );
    let mut payment = credentials(fake_mews::ACCESS_TOKEN);
    payment.remove("Limitation");
    payment.insert("AccountId".into(), json!(fake_mews::PAYMASTER.0));
    payment.insert(
        "Amount".into(),
        json!({ "Currency": fake_mews::CURRENCY, "GrossValue": 16.0 }),
    );
    payment.insert("ExternalIdentifier".into(), json!("cb-test"));
    payment.insert("Type".into(), json!("Card"));
    payment.insert("PaymentMethod".into(), json!("CASH"));
    let (status, _) = send(
        &fake,
        "payments/addExternal",
        Value::Object(payment.clone()),
    )
    .await;
    assert_eq!(status, 400);
    let seen = fake.take_violations();
    assert!(seen.iter().any(|v| v.contains("PaymentMethod")), "{seen:?}");
    assert!(seen.iter().any(|v| v.contains("Card")), "{seen:?}");
    // As the adapter sends it, it is fine; a portfolio token also needs the
    // enterprise.
    payment.remove("PaymentMethod");
    payment.insert("Type".into(), json!("Cash"));
    let (status, answer) = send(
        &fake,
        "payments/addExternal",
        Value::Object(payment.clone()),
    )
    .await;
    assert_eq!(status, 200, "{answer}");
    assert_eq!(fake.take_violations(), Vec::<String>::new());
    payment.insert(
        "AccessToken".into(),
        json!(fake_mews::PORTFOLIO_ACCESS_TOKEN),
    );
    let (status, _) = send(&fake, "payments/addExternal", Value::Object(payment)).await;
    assert_eq!(status, 400);
    let seen = fake.take_violations();
    assert!(seen.iter().any(|v| v.contains("EnterpriseId")), "{seen:?}");

    // No credentials in the body (Mews's keys are body fields, not headers).
    let (status, _) = send(&fake, "configuration/get", serde_json::json!({})).await;
    assert_eq!(status, 400);
    let seen = fake.take_violations();
    assert!(
        seen.iter().any(|v| v.contains("MewsClientToken")),
        "{seen:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_portfolio_token_names_the_enterprise_and_the_chain() {
    let fake = fake_mews::start().await;
    let app = app_on(&fake, |m, _| {
        m.access_token = Some(fake_mews::PORTFOLIO_ACCESS_TOKEN.to_string().into());
        m.enterprise_id = Some(fake_mews::ENTERPRISE.into());
        m.chain_id = Some(fake_mews::CHAIN.into());
    })
    .await;
    let key = fresh_key();
    fake.push(Fault::ApplyThenStatus(500));
    assert_eq!(app.charge(&key, SEED).await.code(), "pms_outcome_unknown");
    let retry = app.charge(&key, SEED).await;
    assert_eq!(
        retry.status,
        200,
        "{}",
        String::from_utf8_lossy(&retry.bytes)
    );
    let search = app
        .get(&format!(
            "/lightspeed/search?term=doe&businessExternalReference={REFERENCE}&apiKey={API_KEY}"
        ))
        .await;
    assert_eq!(search.json()["reservations"][0]["clientName"], "Jane Doe");

    assert_eq!(
        fake.calls("orders/add")[0].body["EnterpriseId"],
        fake_mews::ENTERPRISE
    );
    let customers = fake.calls("customers/getAll");
    assert!(!customers.is_empty());
    for c in &customers {
        assert_eq!(c.body["ChainIds"], serde_json::json!([fake_mews::CHAIN]));
        assert!(c.body.get("EnterpriseIds").is_none(), "{}", c.body);
    }
    for op in [
        "reservations/getAll/2023-06-06",
        "resources/getAll",
        "orderItems/getAll",
    ] {
        for c in fake.calls(op) {
            assert_eq!(
                c.body["EnterpriseIds"],
                serde_json::json!([fake_mews::ENTERPRISE]),
                "{op}"
            );
        }
    }
}

/// The latency a posting through Mews adds, against the local fake (debug build,
/// loopback). Run with `cargo test --test api mews::posting_latency -- --ignored
/// --nocapture`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "measurement, not a check"]
async fn posting_latency() {
    const N: usize = 100;
    async fn measure(app: &TestApp) -> Vec<Duration> {
        for _ in 0..10 {
            assert_eq!(app.charge(&fresh_key(), SEED).await.status, 200);
        }
        let mut times = Vec::with_capacity(N);
        for _ in 0..N {
            let key = fresh_key();
            let started = Instant::now();
            let answer = app.charge(&key, SEED).await;
            times.push(started.elapsed());
            assert_eq!(answer.status, 200);
        }
        times.sort();
        times
    }
    let pct = |t: &[Duration], p: usize| t[(t.len() * p / 100).min(t.len() - 1)];
    let memory = spawn_app(StoreChoice::Memory).await;
    let base = measure(&memory).await;
    let fake = fake_mews::start().await;
    let mews = app_on(&fake, |_, _| {}).await;
    let through = measure(&mews).await;
    println!(
        "POST /lightspeed/charge, {N} sequential charges\n  memory PMS: p50 {:?} p99 {:?}\n  Mews fake:  p50 {:?} p99 {:?}\n  added:      p50 {:?} p99 {:?}",
        pct(&base, 50),
        pct(&base, 99),
        pct(&through, 50),
        pct(&through, 99),
        pct(&through, 50).saturating_sub(pct(&base, 50)),
        pct(&through, 99).saturating_sub(pct(&base, 99)),
    );
    assert_eq!(fake.applied().len(), N + 10);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn retry_after_holds_back_every_call_of_the_credential() {
    let fake = fake_mews::start().await;
    let app = app_with_deadline(&fake, Duration::from_millis(1000), |_, _| {}).await;
    fake.inject(FakeFault::Unavailable); // 429 with Retry-After: 2
    let answer = app.charge(&fresh_key(), SEED).await;
    assert_eq!(answer.code(), "pms_unavailable");
    let calls = fake.all_calls().len();
    // Another charge within those 2 s cannot have a turn before its 1 s
    // deadline: it is not sent at all (nothing posted, nothing to reconcile).
    let second = app.charge(&fresh_key(), SEED).await;
    assert_eq!(
        (second.status, second.code().as_str()),
        (500, "pms_unavailable")
    );
    assert_eq!(fake.all_calls().len(), calls, "nothing sent to Mews");
    let metrics = app.get("/metrics").await;
    let text = String::from_utf8_lossy(&metrics.bytes).to_string();
    assert!(
        text.contains("chargebridge_pms_rate_limited_total{pms=\"Mews\",outcome=\"refused\"}"),
        "{text}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn calls_beyond_the_configured_rate_wait_or_are_not_sent() {
    let fake = fake_mews::start().await;
    let app = app_with_deadline(&fake, Duration::from_millis(1000), |m, _| {
        m.rate_limit = chargebridge::pms::rate_limit::RateLimit::new(2, Duration::from_secs(20));
    })
    .await;
    // Each posting makes two calls (reservation, order): the bucket of two
    // serves the first charge, the second finds no turn within its deadline.
    assert_eq!(app.charge(&fresh_key(), SEED).await.status, 200);
    let calls = fake.all_calls().len();
    let second = app.charge(&fresh_key(), SEED).await;
    assert_eq!(second.code(), "pms_unavailable", "{}", second.json());
    assert_eq!(
        fake.all_calls().len(),
        calls,
        "nothing sent beyond the rate"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_404_to_orders_add_is_a_set_up_error_not_a_refusal() {
    let fake = fake_mews::start().await;
    let app = app_on(&fake, |_, _| {}).await;
    let key = fresh_key();
    fake.push(Fault::Status(404));
    assert_set_up_error_is_unavailable(&app, &key, "Mews 404").await;
    assert_eq!(
        applied_for(&fake, &key).len(),
        1,
        "posted once, by the retry"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_408_to_orders_add_may_have_been_applied() {
    let fake = fake_mews::start().await;
    let app = app_on(&fake, |_, _| {}).await;
    let key = fresh_key();
    fake.push(Fault::ApplyThenStatus(408));
    let first = app.charge(&key, SEED).await;
    assert_eq!(
        (first.status, first.code().as_str()),
        (500, "pms_outcome_unknown"),
        "{}",
        String::from_utf8_lossy(&first.bytes)
    );
    let entry = app
        .state
        .journal
        .get(&app.tenant, &key)
        .await
        .unwrap()
        .expect("a journal entry");
    assert_eq!(entry.state, chargebridge::journal::JournalState::Unknown);
    // Reconciled by reference: found, not posted again.
    let retry = app.charge(&key, SEED).await;
    assert_eq!(
        retry.status,
        200,
        "{}",
        String::from_utf8_lossy(&retry.bytes)
    );
    assert_eq!(applied_for(&fake, &key).len(), 1);
    assert_eq!(
        fake.calls("orders/add").len(),
        1,
        "reconciled, not posted again"
    );
}

// ------------------------------------------- payments against the house account

/// The demo tenant on `fake` with per-receipt revenue posting to the fake's
/// paymaster account, the fake's payment mapping, after `tweak`.
async fn revenue_app(
    fake: &Arc<FakeMews>,
    deadline: Duration,
    tweak: impl FnOnce(&mut MappingSettings),
) -> TestApp {
    let mut mapping = fake_mews::mapping();
    mapping.default_revenue_account = Some(format!("account:{}", fake_mews::PAYMASTER.0));
    tweak(&mut mapping);
    spawn_with(settings(&StoreChoice::Memory, |s| {
        s.server.request_deadline = deadline;
        s.server.pms_safety_margin = Duration::from_millis(300);
        s.pms.insert("mews".into(), fake.settings());
        s.tenants[0].pms = "mews".into();
        s.tenants[0].mirroring = true;
        s.tenants[0].revenue_posting = chargebridge::config::RevenuePosting::PerReceipt;
        s.tenants[0].mapping = mapping;
    }))
    .await
}

/// The card receipt (66 + 1 tip, no room part) as a refund of 66.
fn card_refund() -> String {
    seed_with_fixture("mirroring-no-room-charge.json", |v| {
        v["payments"][0]["amount"] = json!(-66.0);
        v["payments"][0]["gratuity"] = json!(0.0);
        for line in v["transactions"].as_array_mut().unwrap() {
            for field in ["amount", "unitAmount"] {
                if let Some(a) = line[field].as_f64() {
                    line[field] = json!(-a);
                }
            }
        }
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_card_payment_settles_the_house_account_as_an_external_payment() {
    let fake = fake_mews::start().await;
    let app = revenue_app(&fake, Duration::from_millis(2500), |_| {}).await;
    let answer = app
        .charge(&fresh_key(), &fixture("mirroring-no-room-charge.json"))
        .await;
    assert_eq!(answer.status, 200, "{}", answer.text());

    let order = fake.last_order();
    assert_eq!(order["AccountId"], fake_mews::PAYMASTER.0);
    let payment = fake.last_payment();
    assert_eq!(payment["AccountId"], fake_mews::PAYMASTER.0);
    assert!(
        payment.get("ReservationId").is_none(),
        "a paymaster: no reservation"
    );
    assert_eq!(
        payment["Type"], "CreditCard",
        "CARD as the fake hotel maps it"
    );
    assert_eq!(payment["Amount"]["Currency"], fake_mews::CURRENCY);
    assert_eq!(
        decimal(&payment["Amount"]["GrossValue"]),
        Decimal::new(670, 1)
    );
    assert_eq!(
        decimal(&payment["Amount"]["GrossValue"]),
        order_total(&order),
        "the account balances"
    );
    let reference = payment["ExternalIdentifier"].as_str().unwrap();
    assert!(
        reference.starts_with("cb-") && reference.len() == 32,
        "{reference}"
    );
    assert!(payment["Notes"].as_str().unwrap().contains(reference));
    assert_ne!(
        order["Items"][0]["ExternalIdentifier"], reference,
        "the payment has its own reference"
    );
    let paid = fake.payments();
    assert_eq!(paid.len(), 1);
    assert_eq!(paid[0].reference, reference);
    assert_eq!(paid[0].amount, Decimal::new(670, 1));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_refund_receipt_pays_back_with_a_negative_external_payment() {
    let fake = fake_mews::start().await;
    let app = revenue_app(&fake, Duration::from_millis(2500), |_| {}).await;
    let answer = app.charge(&fresh_key(), &card_refund()).await;
    assert_eq!(answer.status, 200, "{}", answer.text());
    let payment = fake.last_payment();
    assert_eq!(payment["Type"], "CreditCard");
    assert_eq!(
        decimal(&payment["Amount"]["GrossValue"]),
        Decimal::new(-660, 1)
    );
    assert_eq!(order_total(&fake.last_order()), Decimal::new(-660, 1));
    assert_eq!(fake.payments()[0].amount, Decimal::new(-660, 1));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_payment_type_the_hotel_has_not_enabled_is_refused_with_mews_message() {
    let fake = fake_mews::start().await;
    // A Mews type, but not one the fake hotel takes.
    let app = revenue_app(&fake, Duration::from_millis(2500), |m| {
        m.payment_methods.insert("CARD".into(), "Voucher".into());
    })
    .await;
    let answer = app
        .charge(&fresh_key(), &fixture("mirroring-no-room-charge.json"))
        .await;
    assert_eq!(answer.status, 422, "{}", answer.text());
    assert!(answer.text().contains("Voucher"), "{}", answer.text());
    let sent = fake.calls("payments/addExternal");
    assert_eq!(sent.len(), 1);
    assert_eq!(sent[0].status, 403);
    assert!(fake.payments().is_empty());
    assert_eq!(fake.applied().len(), 1, "the revenue is on the account");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_method_that_is_no_mews_payment_type_is_refused_before_sending() {
    let fake = fake_mews::start().await;
    let app = revenue_app(&fake, Duration::from_millis(2500), |m| {
        m.payment_methods.insert("CARD".into(), "Card".into());
    })
    .await;
    let answer = app
        .charge(&fresh_key(), &fixture("mirroring-no-room-charge.json"))
        .await;
    assert_eq!(answer.status, 422, "{}", answer.text());
    assert!(fake.calls("payments/addExternal").is_empty());
    assert!(fake.payments().is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn payment_reconciliation_pages_through_a_busy_house_account() {
    let fake = fake_mews::start().await;
    // Three pages of 1 000 payments take a while in a debug build under a
    // loaded test run; this checks the paging, not the speed.
    let app = revenue_app(&fake, Duration::from_secs(8), |_| {}).await;
    let key = fresh_key();
    let body = fixture("mirroring-no-room-charge.json");
    fake.push_payment(Fault::ApplyThenStatus(500));
    let first = app.charge(&key, &body).await;
    assert_eq!(first.code(), "pms_outcome_unknown", "{}", first.text());
    // 2 500 newer payments on the house account: ours is on the third page.
    fake.seed_payments(fake_mews::PAYMASTER.0, 2500);
    let retry = app.charge(&key, &body).await;
    assert_eq!(retry.status, 200, "{}", retry.text());
    assert_eq!(fake.payments().len(), 1, "paid once");
    assert_eq!(
        fake.calls("payments/addExternal").len(),
        1,
        "found, not sent again"
    );
    assert_eq!(fake.applied().len(), 1, "charged once");
    let pages = fake.calls("payments/getAll");
    assert_eq!(pages.len(), 3, "followed the cursor");
    assert!(pages[0].body["Limitation"]["Cursor"].is_null());
    assert!(pages[2].body["Limitation"]["Cursor"].is_string());
    assert_eq!(pages[0].body["AccountIds"], json!([fake_mews::PAYMASTER.0]));
    assert!(pages[0].body["CreatedUtc"]["StartUtc"].is_string());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_a_portfolio_token_payments_name_the_enterprise() {
    let fake = fake_mews::start().await;
    let mut mapping = fake_mews::mapping();
    mapping.default_revenue_account = Some(format!("account:{}", fake_mews::PAYMASTER.0));
    let PmsSettings::Mews(mut mews) = fake.settings() else {
        unreachable!("the fake configures the mews adapter")
    };
    mews.access_token = Some(fake_mews::PORTFOLIO_ACCESS_TOKEN.to_string().into());
    mews.enterprise_id = Some(fake_mews::ENTERPRISE.into());
    mews.chain_id = Some(fake_mews::CHAIN.into());
    let app = spawn_with(settings(&StoreChoice::Memory, |s| {
        s.server.request_deadline = Duration::from_millis(2500);
        s.server.pms_safety_margin = Duration::from_millis(300);
        s.pms.insert("mews".into(), PmsSettings::Mews(mews));
        s.tenants[0].pms = "mews".into();
        s.tenants[0].mirroring = true;
        s.tenants[0].revenue_posting = chargebridge::config::RevenuePosting::PerReceipt;
        s.tenants[0].mapping = mapping;
    }))
    .await;
    let key = fresh_key();
    let body = fixture("mirroring-no-room-charge.json");
    fake.push_payment(Fault::ApplyThenStatus(500));
    assert_eq!(app.charge(&key, &body).await.code(), "pms_outcome_unknown");
    let retry = app.charge(&key, &body).await;
    assert_eq!(retry.status, 200, "{}", retry.text());
    assert_eq!(fake.payments().len(), 1);
    assert_eq!(
        fake.calls("payments/addExternal")[0].body["EnterpriseId"],
        fake_mews::ENTERPRISE
    );
    let read = fake.calls("payments/getAll");
    assert!(!read.is_empty());
    for c in read {
        assert_eq!(c.body["EnterpriseIds"], json!([fake_mews::ENTERPRISE]));
    }
}
