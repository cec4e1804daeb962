//! The adapter conformance kit: one suite, run end to end (through
//! `POST /lightspeed/charge`) against every PMS adapter and a local HTTP server
//! that reproduces that PMS's API. A new adapter gets it by implementing
//! [`FakePms`] for its fake server and adding one `conformance!` line.

use std::sync::Arc;
use std::time::{Duration, Instant};

use chargebridge::config::MappingSettings;
use chargebridge::pms::PmsSettings;
use rust_decimal::Decimal;

use crate::helpers::*;

/// How the fake PMS treats the next charge it receives.
#[derive(Debug, Clone)]
pub enum FakeFault {
    /// A business refusal, with the PMS's own reason text.
    Reject(String),
    /// Refuse before applying (5XX or connection refused/reset before reading).
    Unavailable,
    /// Apply the charge, then answer too late (after the request deadline).
    ApplyThenTimeout,
    /// Answer after this delay (applying the charge as usual).
    Slow(Duration),
}

/// A charge the fake PMS holds.
#[derive(Debug, Clone)]
pub struct FakeCharge {
    /// The reference chargebridge derived (ExternalIdentifier, postingReference, …).
    pub reference: String,
    /// Gross total put on the folio for this posting.
    pub amount: Decimal,
}

/// A local server that behaves like one PMS's API.
///
/// Every fake knows these guests: reservation `001`, Jane Doe, room 101, checked in
/// (the seed example charges it); reservation `002`, John Smith, room 102, checked
/// in; reservation `004`, Arthur Dent, room 202, **not** checked in.
pub trait FakePms: Send + Sync {
    /// The `[pms.NAME]` settings that point the adapter at this server.
    fn settings(&self) -> PmsSettings;
    /// The tenant mapping this PMS needs (outlets, revenue and tax codes).
    fn mapping(&self) -> MappingSettings {
        MappingSettings::default()
    }
    /// The next charge request meets this fault.
    fn inject(&self, fault: FakeFault);
    /// Every charge applied so far, in order (a double posting shows twice).
    fn applied(&self) -> Vec<FakeCharge>;
    /// The next payment request (a receipt's payment settling its revenue on
    /// a house account) meets this fault.
    fn inject_payment(&self, fault: FakeFault);
    /// Every payment applied so far, in order; amounts signed.
    fn payments(&self) -> Vec<FakeCharge>;
}

/// An app whose demo tenant posts to `fake`, with a short deadline so timeouts
/// are quick to provoke.
pub async fn app_for(fake: &Arc<dyn FakePms>) -> TestApp {
    app_with(fake, |_| {}).await
}

/// [`app_for`], with the tenant changed by `tweak` after the fake's mapping.
pub async fn app_with(
    fake: &Arc<dyn FakePms>,
    tweak: impl FnOnce(&mut chargebridge::config::TenantSettings),
) -> TestApp {
    let pms = fake.settings();
    let mapping = fake.mapping();
    spawn_with(settings(&StoreChoice::Memory, |s| {
        s.server.request_deadline = Duration::from_millis(2500);
        s.server.pms_safety_margin = Duration::from_millis(300);
        s.pms.insert("fake".into(), pms);
        s.tenants[0].pms = "fake".into();
        s.tenants[0].mapping = mapping;
        tweak(&mut s.tenants[0]);
    }))
    .await
}

fn applied_for(fake: &Arc<dyn FakePms>, reference_part: &str) -> Vec<FakeCharge> {
    fake.applied()
        .into_iter()
        .filter(|c| c.reference.contains(reference_part))
        .collect()
}

/// The reference chargebridge derives for the demo tenant and `key`.
pub fn reference_for(key: &str) -> String {
    let key = chargebridge::domain::IdempotencyKey::parse(key.as_bytes()).unwrap();
    chargebridge::domain::PostingReference::derive(TENANT, &key).to_string()
}

pub async fn posts_once(fake: Arc<dyn FakePms>) {
    let app = app_for(&fake).await;
    let key = fresh_key();
    let answer = app.charge(&key, SEED).await;
    assert_eq!(
        answer.status,
        200,
        "{}",
        String::from_utf8_lossy(&answer.bytes)
    );
    assert_eq!(answer.json()["status"], "posted");
    let replay = app.charge(&key, SEED).await;
    assert!(replay.replayed());
    let applied = applied_for(&fake, &reference_for(&key));
    assert_eq!(applied.len(), 1, "exactly one posting");
    assert_eq!(
        applied[0].amount,
        Decimal::new(670, 1),
        "the room-charge amount, tip included"
    );
}

pub async fn rejection_is_422_and_stored(fake: Arc<dyn FakePms>) {
    let app = app_for(&fake).await;
    let key = fresh_key();
    fake.inject(FakeFault::Reject("Folio is closed".into()));
    let answer = app.charge(&key, SEED).await;
    assert_eq!(
        (answer.status, answer.code().as_str()),
        (422, "pms_rejected")
    );
    answer.assert_error_contract();
    let message = answer.json()["customerErrorMessage"]
        .as_str()
        .unwrap()
        .to_lowercase();
    assert!(
        message.contains("closed"),
        "the PMS's reason reaches the staff: {message}"
    );
    let replay = app.charge(&key, SEED).await;
    assert!(replay.replayed());
    assert_eq!(replay.bytes, answer.bytes);
    assert!(applied_for(&fake, &reference_for(&key)).is_empty());
}

pub async fn unavailable_then_retry_posts_once(fake: Arc<dyn FakePms>) {
    let app = app_for(&fake).await;
    let key = fresh_key();
    fake.inject(FakeFault::Unavailable);
    let answer = app.charge(&key, SEED).await;
    assert_eq!(
        (answer.status, answer.code().as_str()),
        (500, "pms_unavailable")
    );
    answer.assert_error_contract();
    assert!(applied_for(&fake, &reference_for(&key)).is_empty());
    let retry = app.charge(&key, SEED).await;
    assert_eq!(
        retry.status,
        200,
        "{}",
        String::from_utf8_lossy(&retry.bytes)
    );
    assert_eq!(applied_for(&fake, &reference_for(&key)).len(), 1);
}

pub async fn unknown_then_retry_reconciles(fake: Arc<dyn FakePms>) {
    let app = app_for(&fake).await;
    let key = fresh_key();
    fake.inject(FakeFault::ApplyThenTimeout);
    let started = Instant::now();
    let answer = app.charge(&key, SEED).await;
    assert!(
        started.elapsed() < Duration::from_millis(2900),
        "deadline respected: {:?}",
        started.elapsed()
    );
    assert_eq!(
        (answer.status, answer.code().as_str()),
        (500, "pms_outcome_unknown")
    );
    answer.assert_error_contract();
    assert_eq!(
        applied_for(&fake, &reference_for(&key)).len(),
        1,
        "the fake applied it"
    );
    let retry = app.charge(&key, SEED).await;
    assert_eq!(
        retry.status,
        200,
        "{}",
        String::from_utf8_lossy(&retry.bytes)
    );
    assert_eq!(
        applied_for(&fake, &reference_for(&key)).len(),
        1,
        "reconciled, not posted twice"
    );
}

pub async fn deadline_is_respected(fake: Arc<dyn FakePms>) {
    let app = app_for(&fake).await;
    let key = fresh_key();
    fake.inject(FakeFault::Slow(Duration::from_secs(6)));
    let started = Instant::now();
    let answer = app.charge(&key, SEED).await;
    assert!(
        started.elapsed() < Duration::from_millis(2900),
        "took {:?}",
        started.elapsed()
    );
    assert_eq!(answer.status, 500);
    answer.assert_error_contract();
}

pub async fn search_lists_checked_in_guests(fake: Arc<dyn FakePms>) {
    let app = app_for(&fake).await;
    let q = |term: &str| {
        format!(
            "/lightspeed/search?term={term}&businessExternalReference={REFERENCE}&apiKey={API_KEY}"
        )
    };
    let found = app.get(&q("Doe")).await;
    assert_eq!(
        found.status,
        200,
        "{}",
        String::from_utf8_lossy(&found.bytes)
    );
    let list = found.json()["reservations"].as_array().unwrap().clone();
    assert_eq!(list.len(), 1, "{list:?}");
    assert_eq!(list[0]["reservationId"], "001");
    assert_eq!(list[0]["roomId"], "101");
    assert_eq!(list[0]["clientName"], "Jane Doe");
    assert!(list[0]["blocked"].is_boolean());
    let absent = app.get(&q("Dent")).await.json();
    assert!(
        absent["reservations"].as_array().unwrap().is_empty(),
        "checked-out guests are not offered"
    );
}

/// SPEC v2: a term starting with `*` searches the PMS's house / posting-master
/// accounts instead of guests, and a charge to the account it offers posts like
/// one to a reservation. Every kit fake knows one, "Bar Account".
pub async fn house_accounts_are_found_and_charged(fake: Arc<dyn FakePms>) {
    let app = app_for(&fake).await;
    let q = |term: &str| {
        format!(
            "/lightspeed/search?term={term}&businessExternalReference={REFERENCE}&apiKey={API_KEY}"
        )
    };
    let found = app.get(&q("*bar")).await.json();
    assert_eq!(found["success"], true, "{found}");
    let list = found["reservations"].as_array().unwrap().clone();
    assert_eq!(list.len(), 1, "{found}");
    let account = &list[0];
    assert!(
        account["clientName"]
            .as_str()
            .is_some_and(|n| n.to_lowercase().contains("bar")),
        "{account}"
    );
    let id = account["reservationId"].as_str().unwrap().to_string();
    for id_of_guest in [q("Doe"), q("bar")] {
        let guests = app.get(&id_of_guest).await.json();
        assert!(
            guests["reservations"]
                .as_array()
                .unwrap()
                .iter()
                .all(|g| g["reservationId"] != id.as_str()),
            "a guest search does not offer house accounts: {guests}"
        );
    }
    let all = app.get(&q("*")).await.json();
    assert!(
        all["reservations"]
            .as_array()
            .unwrap()
            .iter()
            .any(|g| g["reservationId"] == id.as_str()),
        "`*` alone lists every account: {all}"
    );
    let body = seed_with(|v| v["payments"][0]["reservationId"] = id.clone().into());
    let key = fresh_key();
    let answer = app.charge(&key, &body).await;
    assert_eq!(
        answer.status,
        200,
        "{}",
        String::from_utf8_lossy(&answer.bytes)
    );
    let replay = app.charge(&key, &body).await;
    assert_eq!(replay.status, 200);
    let applied = applied_for(&fake, &reference_for(&key));
    let total: Decimal = applied.iter().map(|c| c.amount).sum();
    assert_eq!(
        total,
        Decimal::new(6700, 2),
        "posted once, the room amount (tip included)"
    );
}

/// Full-revenue postings (`revenue_posting = "per_receipt"`): a receipt's
/// non-room payments reach the house account a `*` search offers, once, next to
/// the room part, in every adapter.
pub async fn revenue_posting_reaches_the_house_account(fake: Arc<dyn FakePms>) {
    let found = app_for(&fake)
        .await
        .get(&format!(
            "/lightspeed/search?term=*bar&businessExternalReference={REFERENCE}&apiKey={API_KEY}"
        ))
        .await
        .json();
    let account = found["reservations"][0]["reservationId"]
        .as_str()
        .unwrap()
        .to_string();
    let app = app_with(&fake, |t| {
        t.mirroring = true;
        t.revenue_posting = chargebridge::config::RevenuePosting::PerReceipt;
        t.mapping.default_revenue_account = Some(account.clone());
    })
    .await;
    let total = || -> Decimal { fake.applied().iter().map(|c| c.amount).sum() };
    for (name, expected) in [
        // 50 + 1 tip to room 001, 16 cash to the account.
        ("partial-payment-room-and-cash.json", Decimal::new(670, 1)),
        // 66 + 1 tip by card, all to the account.
        ("mirroring-no-room-charge.json", Decimal::new(1340, 1)),
    ] {
        let key = fresh_key();
        let body = fixture(name);
        let answer = app.charge(&key, &body).await;
        assert_eq!(
            answer.status,
            200,
            "{name}: {}",
            String::from_utf8_lossy(&answer.bytes)
        );
        assert_eq!(app.charge(&key, &body).await.status, 200, "{name}: replay");
        assert_eq!(total(), expected, "{name}: posted once, the whole receipt");
    }
}

/// With the tenant's `payment_methods` mapped, a receipt's non-room payments
/// settle its revenue on the house account, so the account balances to zero
/// per receipt; each payment is posted once through replays, a payment the
/// PMS could not take and one whose answer was lost.
pub async fn revenue_payments_balance_the_house_account(fake: Arc<dyn FakePms>) {
    let found = app_for(&fake)
        .await
        .get(&format!(
            "/lightspeed/search?term=*bar&businessExternalReference={REFERENCE}&apiKey={API_KEY}"
        ))
        .await
        .json();
    let account = found["reservations"][0]["reservationId"]
        .as_str()
        .unwrap()
        .to_string();
    assert!(
        fake.mapping().posts_payments(),
        "the fake maps payment methods"
    );
    let app = app_with(&fake, |t| {
        t.mirroring = true;
        t.revenue_posting = chargebridge::config::RevenuePosting::PerReceipt;
        t.mapping.default_revenue_account = Some(account.clone());
    })
    .await;
    let charged = || -> Decimal { fake.applied().iter().map(|c| c.amount).sum() };
    let paid = || -> Decimal { fake.payments().iter().map(|c| c.amount).sum() };
    // What the house account holds: the room part (50 + 1 to room 001) is charged
    // to the guest, not to the account.
    let room_part = Decimal::new(510, 1);
    for (name, payment) in [
        ("partial-payment-room-and-cash.json", Decimal::new(160, 1)),
        ("mirroring-no-room-charge.json", Decimal::new(670, 1)),
    ] {
        let key = fresh_key();
        let body = fixture(name);
        let before = (fake.payments().len(), paid());
        let answer = app.charge(&key, &body).await;
        assert_eq!(answer.status, 200, "{name}: {}", answer.text());
        assert_eq!(app.charge(&key, &body).await.status, 200, "{name}: replay");
        assert_eq!(fake.payments().len(), before.0 + 1, "{name}: one payment");
        assert_eq!(paid() - before.1, payment, "{name}: the payment");
    }
    assert_eq!(charged() - room_part, paid(), "the house account balances");

    // The PMS could not take the payment (the charge is on the account): the
    // POS is told to retry, and the re-send posts the payment alone.
    for fault in [FakeFault::Unavailable, FakeFault::ApplyThenTimeout] {
        let (charges, payments) = (fake.applied().len(), fake.payments().len());
        let key = fresh_key();
        let body = fixture("mirroring-no-room-charge.json");
        fake.inject_payment(fault.clone());
        let first = app.charge(&key, &body).await;
        assert_eq!(first.status, 500, "{fault:?}: {}", first.text());
        let again = app.charge(&key, &body).await;
        assert_eq!(again.status, 200, "{fault:?}: {}", again.text());
        assert_eq!(
            app.charge(&key, &body).await.status,
            200,
            "{fault:?}: replay"
        );
        assert_eq!(fake.applied().len(), charges + 1, "{fault:?}: charged once");
        assert_eq!(fake.payments().len(), payments + 1, "{fault:?}: paid once");
    }
    assert_eq!(charged() - room_part, paid(), "the house account balances");
}

/// `revenue_posting = "daily"`: the receipts' non-room parts wait for the
/// business date's summary, which reaches the house account once, in every
/// adapter; closing again, or replaying a receipt, posts nothing.
pub async fn daily_revenue_summary_posts_once(fake: Arc<dyn FakePms>) {
    let found = app_for(&fake)
        .await
        .get(&format!(
            "/lightspeed/search?term=*bar&businessExternalReference={REFERENCE}&apiKey={API_KEY}"
        ))
        .await
        .json();
    let account = found["reservations"][0]["reservationId"]
        .as_str()
        .unwrap()
        .to_string();
    let app = app_with(&fake, |t| {
        t.mirroring = true;
        t.revenue_posting = chargebridge::config::RevenuePosting::Daily;
        t.mapping.default_revenue_account = Some(account.clone());
        // Only the test closes the day (the worker would with the real clock).
        t.revenue_summary_delay = NEVER_BY_ITSELF;
    })
    .await;
    let total = || -> Decimal { fake.applied().iter().map(|c| c.amount).sum() };
    let mut deliveries = Vec::new();
    for name in [
        "partial-payment-room-and-cash.json",
        "mirroring-no-room-charge.json",
        "mirroring-no-room-charge.json",
    ] {
        let key = fresh_key();
        let body = fixture(name);
        let answer = app.charge(&key, &body).await;
        assert_eq!(
            answer.status,
            200,
            "{name}: {}",
            String::from_utf8_lossy(&answer.bytes)
        );
        deliveries.push((key, body));
    }
    assert_eq!(
        total(),
        Decimal::new(510, 1),
        "only the room part (50 + 1 tip) is posted at once"
    );
    let closed = close_revenue_days(&app, "2020-12-31").await;
    assert_eq!(closed, ["posted"], "one summary for the date");
    assert_eq!(fake.applied().len(), 2);
    assert_eq!(
        total(),
        Decimal::new(510 + 160 + 670 + 670, 1),
        "16 cash + twice 66 + 1 tip, in one posting"
    );
    assert!(close_revenue_days(&app, "2020-12-31").await.is_empty());
    for (key, body) in &deliveries {
        assert_eq!(app.charge(key, body).await.status, 200, "replay");
    }
    assert_eq!(
        fake.applied().len(),
        2,
        "closing again or replaying posts nothing"
    );
}

pub async fn receipt_kinds_post_the_exact_room_amount(fake: Arc<dyn FakePms>) {
    let app = app_for(&fake).await;
    for (fixture_name, expected) in [
        ("refund.json", Decimal::new(-660, 1)),
        ("multi-payment-same-room.json", Decimal::new(675, 1)),
        ("partial-payment-room-and-cash.json", Decimal::new(510, 1)),
        ("service-charge-apportioned.json", Decimal::new(670, 1)),
    ] {
        let key = fresh_key();
        let answer = app.charge(&key, &fixture(fixture_name)).await;
        assert_eq!(
            answer.status,
            200,
            "{fixture_name}: {}",
            String::from_utf8_lossy(&answer.bytes)
        );
        let applied = applied_for(&fake, &reference_for(&key));
        assert!(!applied.is_empty(), "{fixture_name}: nothing applied");
        let total: Decimal = applied.iter().map(|c| c.amount).sum();
        assert_eq!(total, expected, "{fixture_name}: folio total");
    }
}

/// Runs the whole kit against the fake built by `$make` (an async fn returning
/// `Arc<dyn FakePms>`).
#[macro_export]
macro_rules! conformance {
    ($name:ident, $make:path) => {
        mod $name {
            use super::*;
            use $crate::conformance as kit;
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn posts_once() {
                kit::posts_once($make().await).await
            }
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn rejection_is_422_and_stored() {
                kit::rejection_is_422_and_stored($make().await).await
            }
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn unavailable_then_retry_posts_once() {
                kit::unavailable_then_retry_posts_once($make().await).await
            }
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn unknown_then_retry_reconciles() {
                kit::unknown_then_retry_reconciles($make().await).await
            }
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn deadline_is_respected() {
                kit::deadline_is_respected($make().await).await
            }
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn receipt_kinds_post_the_exact_room_amount() {
                kit::receipt_kinds_post_the_exact_room_amount($make().await).await
            }
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn house_accounts_are_found_and_charged() {
                kit::house_accounts_are_found_and_charged($make().await).await
            }
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn revenue_posting_reaches_the_house_account() {
                kit::revenue_posting_reaches_the_house_account($make().await).await
            }
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn revenue_payments_balance_the_house_account() {
                kit::revenue_payments_balance_the_house_account($make().await).await
            }
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn daily_revenue_summary_posts_once() {
                kit::daily_revenue_summary_posts_once($make().await).await
            }
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn search_lists_checked_in_guests() {
                kit::search_lists_checked_in_guests($make().await).await
            }
        }
    };
}
