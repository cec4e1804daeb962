//! The `apaleo` adapter against the local apaleo fake: what the conformance kit does
//! not cover (folio choice, per-item charges, partial postings, tokens, mappings).

use std::sync::Arc;
use std::time::Duration;

use chargebridge::config::MappingSettings;
use chargebridge::pms::PmsSettings;
use chargebridge::pms::apaleo::ApaleoSettings;
use rust_decimal::Decimal;

use crate::conformance::{FakeFault, FakePms, app_for, reference_for};
use crate::fake_apaleo::{ApaleoFault, FakeApaleo};
use crate::helpers::*;
use crate::opera::{ITEMIZED, measure};

fn as_fake(fake: &Arc<FakeApaleo>) -> Arc<dyn FakePms> {
    fake.clone()
}

/// The kit's app with other adapter settings and mapping.
async fn app_with(apaleo: ApaleoSettings, mapping: MappingSettings) -> TestApp {
    spawn_with(settings(&StoreChoice::Memory, |s| {
        s.server.request_deadline = Duration::from_millis(2500);
        s.server.pms_safety_margin = Duration::from_millis(300);
        s.pms.insert("fake".into(), PmsSettings::Apaleo(apaleo));
        s.tenants[0].pms = "fake".into();
        s.tenants[0].mapping = mapping;
    }))
    .await
}

fn applied_amounts(fake: &Arc<FakeApaleo>, key: &str) -> Vec<Decimal> {
    let reference = reference_for(key);
    fake.applied()
        .into_iter()
        .filter(|c| c.reference == reference)
        .map(|c| c.amount)
        .collect()
}

fn body_text(a: &Answer) -> String {
    String::from_utf8_lossy(&a.bytes).into_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn posts_one_charge_per_item_with_the_documented_shape() {
    let fake = FakeApaleo::start().await;
    let app = app_for(&as_fake(&fake)).await;
    let key = fresh_key();
    let answer = app.charge(&key, SEED).await;
    assert_eq!(answer.status, 200, "{}", body_text(&answer));
    let reference = reference_for(&key);
    let charges = fake.charges();
    assert_eq!(charges.len(), 2, "the consolidated amount and the tip");
    let first = &charges[0];
    assert_eq!(first.folio, "001-1");
    assert_eq!(first.receipt, format!("{reference}/1"));
    assert_eq!(
        first.idempotency_key.as_deref(),
        Some(first.receipt.as_str())
    );
    assert_eq!(first.body["serviceType"], "FoodAndBeverages");
    assert_eq!(first.body["vatType"], "Reduced", "the lines' mapped tax");
    assert_eq!(first.body["quantity"], 1);
    assert_eq!(first.body["amount"]["currency"], "EUR");
    assert_eq!(first.body["amount"]["amount"].to_string(), "66.0");
    let tip = &charges[1];
    assert_eq!(tip.receipt, format!("{reference}/2"));
    assert_eq!(tip.body["vatType"], "Without");
    assert_eq!(tip.body["amount"]["amount"].to_string(), "1.0");
    assert_eq!(
        answer.json()["pmsReference"],
        format!("{},{}", first.id, tip.id)
    );
    assert!(fake.shape_errors().is_empty(), "{:?}", fake.shape_errors());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_itemized_receipt_posts_line_totals_with_counts_in_the_name_and_taxes() {
    let fake = FakeApaleo::start().await;
    let app = app_for(&as_fake(&fake)).await;
    let key = fresh_key();
    let answer = app.charge(&key, ITEMIZED).await;
    assert_eq!(answer.status, 200, "{}", body_text(&answer));
    let shape: Vec<(String, i64, String, String)> = fake
        .charges()
        .iter()
        .map(|c| {
            (
                c.body["name"].as_str().unwrap().to_string(),
                c.body["quantity"].as_i64().unwrap(),
                c.body["amount"]["amount"].to_string(),
                c.body["vatType"].as_str().unwrap().to_string(),
            )
        })
        .collect();
    let row = |n: &str, q, a: &str, v: &str| (n.to_string(), q, a.to_string(), v.to_string());
    assert_eq!(
        shape,
        [
            row("2 × Fries", 1, "22.00", "Reduced"),
            row("Cheese", 1, "7.50", "Reduced"),
            row("Service charge", 1, "3.00", "Normal"),
            row("Tip", 1, "1.50", "Without"),
        ]
    );
    assert_eq!(applied_amounts(&fake, &key), [Decimal::new(3400, 2)]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_folio_that_takes_charges_is_chosen() {
    let fake = FakeApaleo::start().await;
    let app = app_for(&as_fake(&fake)).await;
    let body = seed_with(|v| v["payments"][0]["reservationId"] = "002".into());
    let answer = app.charge(&fresh_key(), &body).await;
    assert_eq!(answer.status, 200, "{}", body_text(&answer));
    assert!(fake.charges().iter().all(|c| c.folio == "002-2"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_guest_without_an_open_folio_is_refused() {
    let fake = FakeApaleo::start().await;
    let app = app_for(&as_fake(&fake)).await;
    let body = seed_with(|v| v["payments"][0]["reservationId"] = "004".into());
    let answer = app.charge(&fresh_key(), &body).await;
    assert_eq!(
        (answer.status, answer.code().as_str()),
        (422, "pms_rejected")
    );
    assert_eq!(
        answer.json()["customerErrorMessage"],
        "No open folio for this guest"
    );
    assert_eq!(fake.charge_requests(), 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_refund_posts_negative_amounts() {
    let fake = FakeApaleo::start().await;
    let app = app_for(&as_fake(&fake)).await;
    let key = fresh_key();
    let answer = app.charge(&key, &fixture("refund.json")).await;
    assert_eq!(answer.status, 200, "{}", body_text(&answer));
    for c in fake.charges() {
        assert!(c.amount.is_sign_negative(), "{:?}", c.body);
        assert!(c.body["quantity"].as_i64().unwrap() >= 1);
    }
    assert_eq!(applied_amounts(&fake, &key), [Decimal::new(-660, 1)]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_missing_vat_mapping_is_a_readable_422() {
    let fake = FakeApaleo::start().await;
    let mut apaleo = fake.apaleo_settings();
    apaleo.default_vat_type = None;
    let app = app_with(apaleo, MappingSettings::default()).await;
    let key = fresh_key();
    let answer = app.charge(&key, SEED).await;
    assert_eq!(
        (answer.status, answer.code().as_str()),
        (422, "pms_rejected")
    );
    answer.assert_error_contract();
    assert_eq!(
        answer.json()["customerErrorMessage"],
        "No apaleo VAT type for Food"
    );
    assert_eq!(fake.charge_requests(), 0, "nothing reached apaleo");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn too_many_requests_is_unavailable_and_the_retry_posts_once() {
    let fake = FakeApaleo::start().await;
    let app = app_for(&as_fake(&fake)).await;
    let key = fresh_key();
    fake.push(ApaleoFault::TooManyRequests);
    let first = app.charge(&key, SEED).await;
    assert_eq!(
        (first.status, first.code().as_str()),
        (500, "pms_unavailable")
    );
    assert!(applied_amounts(&fake, &key).is_empty());
    let retry = app.charge(&key, SEED).await;
    assert_eq!(retry.status, 200, "{}", body_text(&retry));
    assert_eq!(applied_amounts(&fake, &key), [Decimal::new(670, 1)]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_partial_posting_is_unknown_and_the_retry_completes_it() {
    let fake = FakeApaleo::start().await;
    let app = app_for(&as_fake(&fake)).await;
    let key = fresh_key();
    // The first item goes through, the second meets a 503.
    fake.push(ApaleoFault::Pass);
    fake.push(ApaleoFault::Kit(FakeFault::Unavailable));
    let first = app.charge(&key, SEED).await;
    assert_eq!(
        (first.status, first.code().as_str()),
        (500, "pms_outcome_unknown"),
        "part of the receipt is on the folio: not a plain retry"
    );
    assert_eq!(fake.charges().len(), 1);
    let retry = app.charge(&key, SEED).await;
    assert_eq!(retry.status, 200, "{}", body_text(&retry));
    let receipts: Vec<String> = fake.charges().iter().map(|c| c.receipt.clone()).collect();
    let reference = reference_for(&key);
    assert_eq!(
        receipts,
        [format!("{reference}/1"), format!("{reference}/2")]
    );
    assert_eq!(applied_amounts(&fake, &key), [Decimal::new(670, 1)]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_expired_token_is_refreshed_and_a_401_refreshes_once() {
    let fake = FakeApaleo::start().await;
    fake.set_token_lifetime(1);
    let app = app_for(&as_fake(&fake)).await;
    assert_eq!(app.charge(&fresh_key(), SEED).await.status, 200);
    tokio::time::sleep(Duration::from_millis(1100)).await;
    assert_eq!(app.charge(&fresh_key(), SEED).await.status, 200);
    assert_eq!((fake.token_requests(), fake.unauthorized()), (2, 0));

    fake.set_token_lifetime(3600);
    fake.revoke_tokens();
    assert_eq!(app.charge(&fresh_key(), SEED).await.status, 200);
    assert_eq!((fake.token_requests(), fake.unauthorized()), (3, 1));

    fake.refuse_every_token();
    let key = fresh_key();
    let answer = app.charge(&key, SEED).await;
    assert_eq!(
        (answer.status, answer.code().as_str()),
        (500, "pms_unavailable")
    );
    assert_eq!(fake.token_requests(), 4, "one refresh, not a loop");
    assert!(applied_amounts(&fake, &key).is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn search_finds_in_house_guests_by_room() {
    let fake = FakeApaleo::start().await;
    let app = app_for(&as_fake(&fake)).await;
    let q = |term: &str| {
        format!(
            "/lightspeed/search?term={term}&businessExternalReference={REFERENCE}&apiKey={API_KEY}"
        )
    };
    let found = app.get(&q("102")).await.json();
    assert_eq!(found["reservations"][0]["clientName"], "John Smith");
    assert_eq!(found["reservations"][0]["roomDescription"], "Twin");
    let none = app.get(&q("202")).await.json();
    assert_eq!(none["reservations"].as_array().unwrap().len(), 0);
    // A reservation apaleo marks closed for charges is found, but blocked.
    assert_eq!(found["reservations"][0]["blocked"], false);
    let closed = app.get(&q("103")).await.json();
    assert_eq!(closed["reservations"][0]["clientName"], "Ford Prefect");
    assert_eq!(closed["reservations"][0]["blocked"], true, "{closed}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn readiness_checks_token_and_finance_api() {
    let fake = FakeApaleo::start().await;
    let app = app_for(&as_fake(&fake)).await;
    assert_eq!(app.get("/readyz").await.status, 200);
    fake.refuse_every_token();
    assert_eq!(app.get("/readyz").await.status, 503);
}

/// `cargo test --test api latency -- --ignored --nocapture`
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "measurement, not a check"]
async fn latency_through_apaleo() {
    let fake = FakeApaleo::start().await;
    let app = app_for(&as_fake(&fake)).await;
    let (p50, p99) = measure(&app, 100).await;
    println!("apaleo fake: p50 {p50:?} p99 {p99:?} (100 sequential charges)");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_fake_refuses_what_apaleos_descriptions_refuse() {
    let fake = FakeApaleo::start().await;
    let client = reqwest::Client::new();

    // The folio filter of apaleo's thin summaries: `reservationId` is not a
    // parameter of the description (`reservationIds` is).
    let answer = client
        .get(format!("{}/finance/v1/folios", fake.base))
        .query(&[("reservationId", "001"), ("type", "Guest")])
        .bearer_auth("anything")
        .send()
        .await
        .unwrap();
    assert_eq!(answer.status(), 422);
    let body: serde_json::Value = answer.json().await.unwrap();
    assert!(body["messages"][0].is_string(), "apaleo's shape: {body}");
    let seen = fake.take_violations();
    assert!(
        seen.iter()
            .any(|v| v.contains("`reservationId` is not in the description")),
        "{seen:?}"
    );

    // A charge without a VAT type, with a text amount, and no bearer token.
    let answer = client
        .post(format!(
            "{}/finance/v1/folio-actions/001-1/charges",
            fake.base
        ))
        .json(
            &serde_json::json!({ "serviceType": "FoodAndBeverages", "name": "Fries",
            "amount": { "amount": "22.00", "currency": "EUR" } }),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(answer.status(), 422);
    let seen = fake.take_violations();
    assert!(seen.iter().any(|v| v.contains("vatType")), "{seen:?}");
    assert!(
        seen.iter().any(|v| v.contains("/amount/amount")),
        "{seen:?}"
    );
    assert!(seen.iter().any(|v| v.contains("security")), "{seen:?}");
    assert!(fake.charges().is_empty(), "nothing reached the handler");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_404_to_the_charge_is_a_set_up_error_not_a_refusal() {
    let fake = FakeApaleo::start().await;
    let app = app_for(&as_fake(&fake)).await;
    let key = fresh_key();
    fake.push(ApaleoFault::Status(404));
    assert_set_up_error_is_unavailable(&app, &key, "apaleo 404").await;
    assert!(
        !applied_amounts(&fake, &key).is_empty(),
        "posted by the retry"
    );
}

/// A per-receipt tenant whose revenue goes to `account`, with the fake's
/// payment methods (CASH → Cash, CARD → CreditCard) and `methods` on top.
async fn revenue_app(fake: &Arc<FakeApaleo>, account: &str, methods: &[(&str, &str)]) -> TestApp {
    let methods: Vec<(String, String)> = methods
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    crate::conformance::app_with(&as_fake(fake), |t| {
        t.mirroring = true;
        t.revenue_posting = chargebridge::config::RevenuePosting::PerReceipt;
        t.mapping.default_revenue_account = Some(account.to_string());
        t.mapping.payment_methods.extend(methods);
    })
    .await
}

/// `body` as the refund of the same receipt: every amount, quantity and tax
/// negated (unit prices stay positive, as Lightspeed sends them).
fn refund_of(body: &str) -> String {
    let mut json: serde_json::Value = serde_json::from_str(body).unwrap();
    let negate = |v: &mut serde_json::Value| {
        if let Some(n) = v.as_f64() {
            *v = serde_json::json!(-n);
        }
    };
    for t in json["transactions"].as_array_mut().unwrap() {
        for field in ["quantity", "amount", "serviceChargeContribution"] {
            negate(&mut t[field]);
        }
        negate(&mut t["taxLines"]["taxAmount"]);
    }
    for p in json["payments"].as_array_mut().unwrap() {
        negate(&mut p["amount"]);
        negate(&mut p["gratuity"]);
    }
    negate(&mut json["serviceCharge"]["amount"]);
    json["receiptId"] = serde_json::json!("R51.3-refund");
    json.to_string()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_receipts_cash_is_a_custom_payment_on_the_house_folio_with_its_reference() {
    let fake = FakeApaleo::start().await;
    let app = revenue_app(&fake, "folio:MUC-HOUSE", &[]).await;
    let key = fresh_key();
    let body = fixture("partial-payment-room-and-cash.json");
    let answer = app.charge(&key, &body).await;
    assert_eq!(answer.status, 200, "{}", body_text(&answer));
    let payments = fake.folio_payments();
    assert_eq!(payments.len(), 1, "{payments:?}");
    let paid = &payments[0];
    assert_eq!(paid.folio, "MUC-HOUSE");
    assert!(!paid.refund);
    assert_eq!(paid.body["method"], "Cash");
    assert_eq!(paid.body["amount"]["amount"].to_string(), "16.0");
    assert_eq!(paid.body["amount"]["currency"], "EUR");
    let receipt = paid
        .receipt
        .clone()
        .expect("a receipt on the house account");
    assert!(
        receipt.starts_with("cb-") && receipt.len() == 32,
        "{receipt}"
    );
    assert_eq!(paid.idempotency_key.as_deref(), Some(receipt.as_str()));
    let house: Vec<_> = fake
        .charges()
        .into_iter()
        .filter(|c| c.folio == "MUC-HOUSE")
        .collect();
    assert!(!house.is_empty());
    assert!(
        house.iter().all(|c| !c.receipt.starts_with(&receipt)),
        "the payment has its own reference"
    );
    let charged: Decimal = house.iter().map(|c| c.amount).sum();
    assert_eq!(charged, paid.signed(), "the house folio balances");
    // A replay posts nothing; a lost answer is found again by the receipt.
    assert_eq!(app.charge(&key, &body).await.status, 200);
    assert_eq!(fake.payment_requests(), 1);
    assert!(fake.shape_errors().is_empty(), "{:?}", fake.shape_errors());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_refund_receipt_refunds_the_house_folio_instead_of_a_negative_payment() {
    let fake = FakeApaleo::start().await;
    let app = revenue_app(&fake, "folio:MUC-HOUSE", &[]).await;
    let sale = fixture("partial-payment-room-and-cash.json");
    assert_eq!(app.charge(&fresh_key(), &sale).await.status, 200);
    let key = fresh_key();
    let refund = refund_of(&sale);
    let answer = app.charge(&key, &refund).await;
    assert_eq!(answer.status, 200, "{}", body_text(&answer));
    let payments = fake.folio_payments();
    assert_eq!(payments.len(), 2, "{payments:?}");
    let back = &payments[1];
    assert!(back.refund, "POST …/refunds, not a payment");
    assert_eq!(back.folio, "MUC-HOUSE");
    assert_eq!(back.body["method"], "Cash");
    assert_eq!(
        back.body["amount"]["amount"].to_string(),
        "16.0",
        "a positive refund"
    );
    assert_eq!(back.signed(), Decimal::new(-160, 1));
    assert_eq!(
        as_fake(&fake).payments().last().unwrap().amount,
        Decimal::new(-160, 1)
    );
    let house: Decimal = fake
        .charges()
        .iter()
        .filter(|c| c.folio == "MUC-HOUSE")
        .map(|c| c.amount)
        .sum();
    let paid: Decimal = payments.iter().map(|p| p.signed()).sum();
    assert_eq!(
        (house, paid),
        (Decimal::ZERO, Decimal::ZERO),
        "sale and refund cancel out"
    );
    // The refund is found again (apaleo lists it as pending) and not repeated.
    assert_eq!(app.charge(&key, &refund).await.status, 200);
    assert_eq!(fake.folio_payments().len(), 2);
    assert!(fake.shape_errors().is_empty(), "{:?}", fake.shape_errors());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_lost_refund_answer_is_found_in_the_refund_list() {
    let fake = FakeApaleo::start().await;
    let app = revenue_app(&fake, "folio:MUC-HOUSE", &[]).await;
    let key = fresh_key();
    let refund = refund_of(&fixture("partial-payment-room-and-cash.json"));
    fake.push_payment(ApaleoFault::Kit(FakeFault::ApplyThenTimeout));
    let first = app.charge(&key, &refund).await;
    assert_eq!(first.status, 500, "{}", body_text(&first));
    let again = app.charge(&key, &refund).await;
    assert_eq!(again.status, 200, "{}", body_text(&again));
    let refunds: Vec<_> = fake
        .folio_payments()
        .into_iter()
        .filter(|p| p.refund)
        .collect();
    assert_eq!(refunds.len(), 1, "refunded once");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_payment_to_a_reservation_goes_to_its_folio_that_takes_payments() {
    let fake = FakeApaleo::start().await;
    let app = revenue_app(&fake, "002", &[]).await;
    let key = fresh_key();
    let body = fixture("mirroring-no-room-charge.json");
    let answer = app.charge(&key, &body).await;
    assert_eq!(answer.status, 200, "{}", body_text(&answer));
    let payments = fake.folio_payments();
    assert_eq!(payments.len(), 1, "{payments:?}");
    // Where 002's charges go (its second folio; the main one takes payments
    // but no charges): the reservation's folio balances.
    assert_eq!(payments[0].folio, "002-2");
    assert!(fake.charges().iter().all(|c| c.folio == "002-2"));
    assert_eq!(payments[0].body["method"], "CreditCard");
    assert_eq!(payments[0].signed(), Decimal::new(670, 1));
    assert_eq!(app.charge(&key, &body).await.status, 200);
    assert_eq!(fake.payment_requests(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_method_apaleo_cannot_take_is_refused_without_a_call() {
    let fake = FakeApaleo::start().await;
    let app = revenue_app(&fake, "folio:MUC-HOUSE", &[("CASH", "Coupon")]).await;
    let answer = app
        .charge(&fresh_key(), &fixture("partial-payment-room-and-cash.json"))
        .await;
    assert_eq!(
        (answer.status, answer.code().as_str()),
        (422, "pms_rejected"),
        "{}",
        body_text(&answer)
    );
    assert!(
        body_text(&answer).contains("Coupon"),
        "the staff see the method: {}",
        body_text(&answer)
    );
    assert_eq!(fake.payment_requests(), 0, "refused before any call");
    assert!(
        fake.charges().iter().any(|c| c.folio == "MUC-HOUSE"),
        "the revenue itself is charged"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reconcile_reads_a_busy_house_folio_page_by_page() {
    let fake = FakeApaleo::start().await;
    let app = revenue_app(&fake, "folio:MUC-HOUSE", &[]).await;
    let key = fresh_key();
    let body = fixture("partial-payment-room-and-cash.json");
    fake.push_payment(ApaleoFault::Kit(FakeFault::ApplyThenTimeout));
    let first = app.charge(&key, &body).await;
    assert_eq!(first.status, 500, "{}", body_text(&first));
    // Newest first, 500 a page: ours is now on the second page.
    fake.add_foreign_payments("MUC-HOUSE", 600);
    let again = app.charge(&key, &body).await;
    assert_eq!(again.status, 200, "{}", body_text(&again));
    let ours: Vec<_> = fake
        .folio_payments()
        .into_iter()
        .filter(|p| p.receipt.as_deref().is_some_and(|r| r.starts_with("cb-")))
        .collect();
    assert_eq!(ours.len(), 1, "found on page 2, not paid again");
}
