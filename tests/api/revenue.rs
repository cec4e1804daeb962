//! Full-revenue postings (`revenue_posting = "per_receipt"`): the part of a
//! receipt not charged to a room goes to the house account mapped for its
//! revenue center, once, like a room charge.

use rust_decimal::Decimal;
use std::str::FromStr;

use crate::both_stores;
use crate::helpers::*;
use chargebridge::pms::memory::Fault;

/// The demo tenant with MIRRORING and per-receipt revenue posting; the
/// fixtures' revenue center 94489280528 ("Fixed POS") goes to the demo's house
/// account `H-BAR`.
async fn revenue_app(map_rc: bool) -> TestApp {
    revenue_app_with(|s| {
        if map_rc {
            s.tenants[0]
                .mapping
                .revenue_accounts
                .insert("94489280528".into(), "H-BAR".into());
        }
    })
    .await
}

/// The demo tenant with MIRRORING and per-receipt revenue posting, after `tweak`.
async fn revenue_app_with(tweak: impl FnOnce(&mut chargebridge::config::Settings)) -> TestApp {
    spawn_with(settings(&StoreChoice::Memory, |s| {
        s.tenants[0].mirroring = true;
        s.tenants[0].revenue_posting = chargebridge::config::RevenuePosting::PerReceipt;
        tweak(s);
    }))
    .await
}

/// (reservation or account, amount) of every posting the memory PMS applied.
fn postings(app: &TestApp) -> Vec<(String, Decimal)> {
    app.applied()
        .iter()
        .map(|p| {
            let room = p.charge.room().unwrap();
            (room.reservation_id.clone(), room.amount)
        })
        .collect()
}

fn dec(s: &str) -> Decimal {
    Decimal::from_str(s).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_receipt_paid_by_card_posts_to_the_outlets_house_account_once() {
    let app = revenue_app(true).await;
    let key = fresh_key();
    let body = fixture("mirroring-no-room-charge.json");
    let answer = app.charge(&key, &body).await;
    assert_eq!(
        answer.status,
        200,
        "{}",
        String::from_utf8_lossy(&answer.bytes)
    );
    assert_eq!(
        postings(&app),
        [("H-BAR".to_string(), dec("67.0"))],
        "66 + 1 tip"
    );
    let replay = app.charge(&key, &body).await;
    assert_eq!(replay.status, 200);
    assert!(replay.replayed());
    assert_eq!(postings(&app).len(), 1, "a replay posts nothing");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_receipt_paid_partly_to_a_room_posts_the_rest_to_the_outlet() {
    let app = revenue_app(true).await;
    let body = seed_with_fixture("partial-payment-room-and-cash.json", |v| {
        v["revenueCenterId"] = 94489280528u64.into();
    });
    let answer = app.charge(&fresh_key(), &body).await;
    assert_eq!(
        answer.status,
        200,
        "{}",
        String::from_utf8_lossy(&answer.bytes)
    );
    let mut posted = postings(&app);
    posted.sort();
    assert_eq!(
        posted,
        [
            ("001".to_string(), dec("51.0")),
            ("H-BAR".to_string(), dec("16.0"))
        ]
    );
    let total: Decimal = posted.iter().map(|(_, a)| *a).sum();
    assert_eq!(total, dec("67.0"), "the whole receipt, once");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_refund_paid_back_in_cash_credits_the_house_account() {
    let app = revenue_app(true).await;
    let body = seed_with_fixture("mirroring-no-room-charge.json", |v| {
        v["payments"][0]["amount"] = serde_json::json!(-66.0);
        v["payments"][0]["gratuity"] = serde_json::json!(0.0);
    });
    let answer = app.charge(&fresh_key(), &body).await;
    assert_eq!(
        answer.status,
        200,
        "{}",
        String::from_utf8_lossy(&answer.bytes)
    );
    assert_eq!(postings(&app), [("H-BAR".to_string(), dec("-66.0"))]);
    assert!(app.applied()[0].charge.refund);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_a_mapped_account_the_revenue_is_acknowledged_not_posted() {
    let app = revenue_app(false).await;
    let answer = app
        .charge(&fresh_key(), &fixture("mirroring-no-room-charge.json"))
        .await;
    assert_eq!(
        answer.status,
        200,
        "{}",
        String::from_utf8_lossy(&answer.bytes)
    );
    assert_eq!(answer.json()["status"], "acknowledged");
    assert!(postings(&app).is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn revenue_posting_is_off_by_default() {
    let app = spawn_with(settings(&StoreChoice::Memory, |s| {
        s.tenants[0].mirroring = true;
        s.tenants[0].mapping.default_revenue_account = Some("H-BAR".into());
    }))
    .await;
    let answer = app
        .charge(&fresh_key(), &fixture("mirroring-no-room-charge.json"))
        .await;
    assert_eq!(answer.json()["status"], "acknowledged");
    assert!(postings(&app).is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_daily_report_shows_room_charges_and_revenue_side_by_side() {
    let app = revenue_app_with(|s| {
        s.tenants[0].mapping.default_revenue_account = Some("H-BAR".into());
        s.admin.token = Some(secrecy::SecretString::from("report-token-0123456789abcdef"));
        t_zone(s);
    })
    .await;
    let partial = fixture("partial-payment-room-and-cash.json");
    assert_eq!(app.charge(&fresh_key(), &partial).await.status, 200);
    // Today's business date in UTC with a 00:00 cut-off.
    let today = chrono::Utc::now().date_naive().to_string();
    let report: serde_json::Value = app
        .client
        .get(format!(
            "{}/admin/v1/reports/daily?tenant={}&date={today}",
            app.address, app.tenant
        ))
        .bearer_auth("report-token-0123456789abcdef")
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(report["postedTotal"], "67.0", "{report}");
    assert_eq!(report["postedRoomCharges"], "51.0", "{report}");
    assert_eq!(report["postedRevenue"], "16.0", "{report}");
}

fn t_zone(s: &mut chargebridge::config::Settings) {
    s.tenants[0].time_zone = "UTC".into();
    s.tenants[0].business_day_starts = "00:00".into();
}

// --- revenue_posting = "daily" -------------------------------------------

/// Daily revenue posting for the demo tenant in New York (cut-off 04:00); the
/// test closes the days itself ([`close_revenue_days`]).
fn daily(
    store: &StoreChoice,
    tweak: impl FnOnce(&mut chargebridge::config::Settings),
) -> chargebridge::config::Settings {
    settings(store, |s| {
        s.journal.poll_interval = std::time::Duration::from_millis(100);
        s.admin.token = Some(secrecy::SecretString::from(DAILY_TOKEN));
        let t = &mut s.tenants[0];
        t.mirroring = true;
        t.revenue_posting = chargebridge::config::RevenuePosting::Daily;
        t.time_zone = "America/New_York".into();
        t.business_day_starts = "04:00".into();
        t.revenue_summary_delay = NEVER_BY_ITSELF;
        t.mapping
            .revenue_accounts
            .insert("94489280528".into(), "H-BAR".into());
        tweak(s);
    })
}

const DAILY_TOKEN: &str = "daily-report-token-0123456789";

/// The daily report of `date`, as the night audit reads it.
async fn daily_report(app: &TestApp, date: &str) -> serde_json::Value {
    let response = app
        .client
        .get(format!(
            "{}/admin/v1/reports/daily?tenant={}&date={date}",
            app.address, app.tenant
        ))
        .bearer_auth(DAILY_TOKEN)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status().as_u16(), 200);
    response.json().await.unwrap()
}

/// The tenant's current business date.
fn tenant_today(app: &TestApp) -> chrono::NaiveDate {
    let tenant = app.state.tenants.iter().next().unwrap().clone();
    tenant.business_date(chrono::Utc::now())
}

/// The card-paid receipt (66 + 1 tip), closed at `close_date`.
fn card_receipt(close_date: &str) -> String {
    seed_with_fixture("mirroring-no-room-charge.json", |v| {
        v["closeDate"] = serde_json::json!(close_date);
    })
}

async fn deliver_ok(app: &TestApp, key: &str, body: &str) -> serde_json::Value {
    let answer = app.charge(key, body).await;
    assert_eq!(
        answer.status,
        200,
        "{}",
        String::from_utf8_lossy(&answer.bytes)
    );
    answer.json()
}

async fn receipts_are_summed_per_business_date_in_the_tenants_time_zone(store: StoreChoice) {
    let app = spawn_with(daily(&store, |_| {})).await;
    // 03:30 in New York (EST) belongs to the day before; in UTC it would not.
    let early = (fresh_key(), card_receipt("2026-11-10T08:30:00Z"));
    let evening = (fresh_key(), card_receipt("2026-11-10T03:00:00Z"));
    let next_day = (fresh_key(), card_receipt("2026-11-10T09:30:00Z"));
    for (key, body) in [&early, &evening, &next_day] {
        let answer = deliver_ok(&app, key, body).await;
        assert_eq!(answer["status"], "acknowledged", "the POS is done at once");
    }
    assert!(
        postings(&app).is_empty(),
        "nothing is posted before the cut-off"
    );

    assert_eq!(close_revenue_days(&app, "2026-11-09").await, ["posted"]);
    assert_eq!(postings(&app), [("H-BAR".to_string(), dec("134.0"))]);
    let summary = &app.applied()[0].charge;
    assert_eq!(
        summary.name.as_deref(),
        Some("Revenue 2026-11-09 Fixed POS")
    );
    assert!(!summary.refund);

    assert_eq!(close_revenue_days(&app, "2026-11-10").await, ["posted"]);
    assert_eq!(
        postings(&app),
        [
            ("H-BAR".to_string(), dec("134.0")),
            ("H-BAR".to_string(), dec("67.0"))
        ]
    );
    // Replays and another close post nothing.
    for (key, body) in [&early, &evening, &next_day] {
        let replay = app.charge(key, body).await;
        assert!(replay.replayed());
    }
    assert!(close_revenue_days(&app, "2026-11-10").await.is_empty());
    assert_eq!(app.applied().len(), 2);
}
both_stores!(
    daily_business_dates,
    receipts_are_summed_per_business_date_in_the_tenants_time_zone
);

async fn a_pms_outage_during_the_daily_posting_posts_it_once_when_it_is_back(store: StoreChoice) {
    let app = spawn_with(daily(&store, |_| {})).await;
    deliver_ok(&app, &fresh_key(), &card_receipt("2026-11-10T12:00:00Z")).await;
    app.push_fault(Fault::Unavailable);
    assert_eq!(
        close_revenue_days(&app, "2026-11-10").await,
        ["queued"],
        "the journal keeps it for the worker"
    );
    assert!(app.applied().is_empty());
    let until = std::time::Instant::now() + std::time::Duration::from_secs(15);
    while app.applied().is_empty() && std::time::Instant::now() < until {
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    assert_eq!(postings(&app), [("H-BAR".to_string(), dec("67.0"))]);
    assert!(close_revenue_days(&app, "2026-11-10").await.is_empty());
    tokio::time::sleep(std::time::Duration::from_millis(500)).await;
    assert_eq!(app.applied().len(), 1, "posted once");
    let key = chargebridge::daily_revenue::summary_key(&chargebridge::daily_revenue::Bucket::new(
        "2026-11-10".parse().unwrap(),
        "H-BAR",
        "94489280528",
    ));
    let entry = app
        .state
        .journal
        .get(&app.tenant, &key)
        .await
        .unwrap()
        .expect("the summary's journal entry");
    assert_eq!(entry.state, chargebridge::journal::JournalState::Posted);
}
both_stores!(
    daily_outage,
    a_pms_outage_during_the_daily_posting_posts_it_once_when_it_is_back
);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_late_receipt_goes_into_the_next_summary_and_the_report_says_so() {
    let app = spawn_with(daily(&StoreChoice::Memory, |_| {})).await;
    deliver_ok(&app, &fresh_key(), &card_receipt("2026-11-10T12:00:00Z")).await;
    assert_eq!(close_revenue_days(&app, "2026-11-10").await, ["posted"]);
    // Closed on the 10th, delivered after its summary was posted.
    let late_key = fresh_key();
    deliver_ok(&app, &late_key, &card_receipt("2026-11-10T13:00:00Z")).await;
    let entry = app
        .state
        .journal
        .get(&app.tenant, &late_key)
        .await
        .unwrap()
        .expect("the receipt's entry");
    assert!(
        entry.postings.is_empty(),
        "its revenue is the summary's posting"
    );
    assert_eq!(entry.attempts[0].outcome, "deferred");
    assert!(
        entry.attempts[0]
            .message
            .as_deref()
            .unwrap()
            .contains(&format!("daily-revenue.{}.", tenant_today(&app))),
        "{:?}",
        entry.attempts
    );
    assert!(close_revenue_days(&app, "2026-11-10").await.is_empty());
    assert_eq!(app.applied().len(), 1, "the posted summary is not changed");

    let today = tenant_today(&app);
    let report = daily_report(&app, "2026-11-10").await;
    let summaries = report["revenueSummaries"].as_array().unwrap();
    assert_eq!(summaries.len(), 1, "{report}");
    assert_eq!(summaries[0]["receipts"], 1);
    assert_eq!(summaries[0]["total"], "67.0");
    assert_eq!(summaries[0]["state"], "posted");
    assert_eq!(report["lateRevenue"]["count"], 1, "{report}");
    assert_eq!(report["lateRevenue"]["total"], "67.0");
    assert_eq!(report["lateRevenue"]["postedWith"][0], today.to_string());

    assert_eq!(
        close_revenue_days(&app, &today.to_string()).await,
        ["posted"]
    );
    assert_eq!(
        postings(&app),
        [
            ("H-BAR".to_string(), dec("67.0")),
            ("H-BAR".to_string(), dec("67.0"))
        ]
    );
    let report = daily_report(&app, &today.to_string()).await;
    assert_eq!(report["revenueSummaries"][0]["lateReceipts"], 1, "{report}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_refund_nets_against_the_days_sales() {
    let app = spawn_with(daily(&StoreChoice::Memory, |_| {})).await;
    deliver_ok(&app, &fresh_key(), &card_receipt("2026-11-10T12:00:00Z")).await;
    deliver_ok(&app, &fresh_key(), &card_receipt("2026-11-10T12:30:00Z")).await;
    let refund = seed_with_fixture("mirroring-no-room-charge.json", |v| {
        v["closeDate"] = serde_json::json!("2026-11-10T14:00:00Z");
        v["payments"][0]["amount"] = serde_json::json!(-66.0);
        v["payments"][0]["gratuity"] = serde_json::json!(0.0);
        for line in v["transactions"].as_array_mut().unwrap() {
            for field in ["amount", "unitAmount"] {
                if let Some(a) = line[field].as_f64() {
                    line[field] = serde_json::json!(-a);
                }
            }
        }
    });
    deliver_ok(&app, &fresh_key(), &refund).await;
    assert_eq!(close_revenue_days(&app, "2026-11-10").await, ["posted"]);
    assert_eq!(
        postings(&app),
        [("H-BAR".to_string(), dec("68.0"))],
        "67 + 67 - 66"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_day_that_nets_to_zero_posts_nothing() {
    let app = spawn_with(daily(&StoreChoice::Memory, |_| {})).await;
    let sale = card_receipt("2026-11-10T12:00:00Z");
    let refund = seed_with_fixture("mirroring-no-room-charge.json", |v| {
        v["closeDate"] = serde_json::json!("2026-11-10T14:00:00Z");
        v["payments"][0]["amount"] = serde_json::json!(-66.0);
        v["payments"][0]["gratuity"] = serde_json::json!(-1.0);
    });
    deliver_ok(&app, &fresh_key(), &sale).await;
    deliver_ok(&app, &fresh_key(), &refund).await;
    assert_eq!(
        close_revenue_days(&app, "2026-11-10").await,
        ["acknowledged"]
    );
    assert!(app.applied().is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_deferred_revenue_part_is_counted_once_in_the_report() {
    let app = spawn_with(daily(&StoreChoice::Memory, |_| {})).await;
    let body = seed_with_fixture("partial-payment-room-and-cash.json", |v| {
        v["revenueCenterId"] = 94489280528u64.into();
        v["closeDate"] = serde_json::json!("2026-11-10T12:00:00Z");
    });
    deliver_ok(&app, &fresh_key(), &body).await;
    assert_eq!(postings(&app), [("001".to_string(), dec("51.0"))]);
    // The receipt counts on the day it was seen, with its room part only.
    let seen = daily_report(&app, &tenant_today(&app).to_string()).await;
    assert_eq!(seen["postedTotal"], "51.0", "{seen}");
    assert_eq!(seen["postedRoomCharges"], "51.0");
    assert_eq!(seen["postedRevenue"], "0");
    assert_eq!(close_revenue_days(&app, "2026-11-10").await, ["posted"]);
    // The cash part counts once, in its own business date's summary.
    let day = daily_report(&app, "2026-11-10").await;
    assert_eq!(day["postedRevenue"], "16.0", "{day}");
    assert_eq!(day["revenueSummaries"][0]["total"], "16.0");
    let seen = daily_report(&app, &tenant_today(&app).to_string()).await;
    assert_eq!(
        seen["postedTotal"], "51.0",
        "the summary is not counted again: {seen}"
    );
}

// --- payments settling revenue on the house account ------------------------

/// (account, method, amount) of every payment the memory PMS applied.
fn payments(app: &TestApp) -> Vec<(String, String, Decimal)> {
    app.applied()
        .iter()
        .filter_map(|p| chargebridge::pms::settlement_of(&p.charge))
        .map(|r| (r.reservation_id.clone(), r.payment_method.clone(), r.amount))
        .collect()
}

/// Charges only (no payments), as [`postings`] lists them.
fn charges(app: &TestApp) -> Vec<(String, Decimal)> {
    app.applied()
        .iter()
        .filter(|p| chargebridge::pms::settlement_of(&p.charge).is_none())
        .map(|p| {
            let room = p.charge.room().unwrap();
            (room.reservation_id.clone(), room.amount)
        })
        .collect()
}

fn map_payments(s: &mut chargebridge::config::Settings) {
    let m = &mut s.tenants[0].mapping;
    m.default_revenue_account = Some("H-BAR".into());
    m.payment_methods.insert("CASH".into(), "CA".into());
    m.payment_methods.insert("CARD".into(), "CC".into());
    m.payment_methods.insert("VISA".into(), "CC".into());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn payments_settle_the_house_account_per_receipt_once() {
    let app = revenue_app_with(map_payments).await;
    let key = fresh_key();
    let body = fixture("partial-payment-room-and-cash.json");
    let answer = deliver_ok(&app, &key, &body).await;
    assert_eq!(
        charges(&app),
        [
            ("001".to_string(), dec("51.0")),
            ("H-BAR".to_string(), dec("16.0"))
        ]
    );
    assert_eq!(
        payments(&app),
        [("H-BAR".to_string(), "CA".to_string(), dec("16.0"))]
    );
    // The answer names every posting; the payment says it is one.
    let parts = answer["postings"].as_array().unwrap();
    assert_eq!(parts.len(), 3, "{answer}");
    assert_eq!(parts[2]["payment"], "CA", "{answer}");
    let replay = app.charge(&key, &body).await;
    assert!(replay.replayed());
    assert_eq!(app.applied().len(), 3, "a replay posts nothing");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn payments_are_summed_per_pms_method_and_balance_to_the_cent() {
    let app = revenue_app_with(map_payments).await;
    // CARD and VISA both map to CC; cash on its own. Amounts with float residue.
    let body = seed_with_fixture("mirroring-no-room-charge.json", |v| {
        let card = v["payments"][0].clone();
        let mut visa = card.clone();
        visa["methodCode"] = "VISA".into();
        visa["amount"] = serde_json::json!(10.004);
        visa["gratuity"] = serde_json::json!(0.0);
        let mut cash = card.clone();
        cash["methodCode"] = "CASH".into();
        cash["amount"] = serde_json::json!(10.004);
        cash["gratuity"] = serde_json::json!(0.0);
        v["payments"] = serde_json::json!([card, visa, cash]);
    });
    deliver_ok(&app, &fresh_key(), &body).await;
    let revenue: Decimal = charges(&app).iter().map(|c| c.1).sum();
    let paid = payments(&app);
    assert_eq!(paid.len(), 2, "one payment per PMS method: {paid:?}");
    assert_eq!(paid[0].1, "CC");
    assert_eq!(paid[1].1, "CA");
    assert_eq!(revenue, dec("87.01"), "67 + 10.004 + 10.004 rounded");
    assert_eq!(
        paid.iter().map(|p| p.2).sum::<Decimal>(),
        revenue,
        "the account balances: {paid:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_refund_pays_back_with_a_negative_payment() {
    let app = revenue_app_with(map_payments).await;
    let body = seed_with_fixture("mirroring-no-room-charge.json", |v| {
        v["payments"][0]["amount"] = serde_json::json!(-66.0);
        v["payments"][0]["gratuity"] = serde_json::json!(0.0);
    });
    deliver_ok(&app, &fresh_key(), &body).await;
    assert_eq!(charges(&app), [("H-BAR".to_string(), dec("-66.0"))]);
    assert_eq!(
        payments(&app),
        [("H-BAR".to_string(), "CC".to_string(), dec("-66.0"))]
    );
    let payment = app.applied().last().unwrap().charge.clone();
    assert!(payment.refund);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unmapped_method_takes_the_default_else_goes_as_it_is() {
    let app = revenue_app_with(|s| {
        s.tenants[0].mapping.default_revenue_account = Some("H-BAR".into());
        s.tenants[0].mapping.default_payment_method = Some("OTHER".into());
    })
    .await;
    deliver_ok(
        &app,
        &fresh_key(),
        &fixture("mirroring-no-room-charge.json"),
    )
    .await;
    assert_eq!(payments(&app)[0].1, "OTHER");
    let app = revenue_app_with(|s| {
        s.tenants[0].mapping.default_revenue_account = Some("H-BAR".into());
        s.tenants[0]
            .mapping
            .payment_methods
            .insert("CASH".into(), "CA".into());
    })
    .await;
    deliver_ok(
        &app,
        &fresh_key(),
        &fixture("mirroring-no-room-charge.json"),
    )
    .await;
    assert_eq!(payments(&app)[0].1, "CARD", "no default: Lightspeed's code");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_a_payment_mapping_no_payment_is_posted() {
    let app = revenue_app(true).await;
    deliver_ok(
        &app,
        &fresh_key(),
        &fixture("mirroring-no-room-charge.json"),
    )
    .await;
    assert!(payments(&app).is_empty());
    assert_eq!(charges(&app).len(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_refused_payment_keeps_the_charge_and_needs_attention() {
    let app = revenue_app_with(map_payments).await;
    // The charge posts (a zero delay is no fault); the PMS refuses the payment.
    app.push_fault(Fault::Slow(std::time::Duration::ZERO));
    app.push_fault(Fault::Reject("No such payment method".into()));
    let key = fresh_key();
    let body = fixture("mirroring-no-room-charge.json");
    let answer = app.charge(&key, &body).await;
    assert_eq!(answer.status, 422, "{}", answer.text());
    let message = answer.json()["customerErrorMessage"].clone();
    assert!(
        message
            .as_str()
            .is_some_and(|m| m.starts_with("Payment CC refused")),
        "{message}"
    );
    assert_eq!(charges(&app).len(), 1, "the charge stays");
    assert!(payments(&app).is_empty());
    let entry = app
        .state
        .journal
        .get(&app.tenant, &key)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        entry.state,
        chargebridge::journal::JournalState::NeedsAttention
    );
    assert!(
        entry
            .postings
            .iter()
            .any(|p| p.payment.as_deref() == Some("CC"))
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_daily_summary_is_settled_by_the_days_payments_per_method() {
    let app = spawn_with(daily(&StoreChoice::Memory, map_payments)).await;
    deliver_ok(&app, &fresh_key(), &card_receipt("2026-11-10T12:00:00Z")).await;
    deliver_ok(&app, &fresh_key(), &card_receipt("2026-11-10T13:00:00Z")).await;
    let cash = seed_with_fixture("partial-payment-room-and-cash.json", |v| {
        v["revenueCenterId"] = 94489280528u64.into();
        v["closeDate"] = serde_json::json!("2026-11-10T14:00:00Z");
    });
    deliver_ok(&app, &fresh_key(), &cash).await;
    assert!(payments(&app).is_empty(), "nothing before the summary");
    assert_eq!(close_revenue_days(&app, "2026-11-10").await, ["posted"]);
    assert_eq!(
        payments(&app),
        [
            ("H-BAR".to_string(), "CA".to_string(), dec("16.0")),
            ("H-BAR".to_string(), "CC".to_string(), dec("134.0")),
        ]
    );
    assert!(close_revenue_days(&app, "2026-11-10").await.is_empty());
    assert_eq!(payments(&app).len(), 2, "closing again pays nothing");
    let day = daily_report(&app, "2026-11-10").await;
    assert_eq!(day["postedRevenue"], "150.0", "{day}");
    assert_eq!(day["postedPayments"], "150.0", "{day}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_refused_revenue_charge_is_not_paid() {
    let app = revenue_app_with(map_payments).await;
    app.push_fault(Fault::Reject("Account closed".into()));
    let answer = app
        .charge(&fresh_key(), &fixture("mirroring-no-room-charge.json"))
        .await;
    assert_eq!(answer.status, 422, "{}", answer.text());
    assert!(app.applied().is_empty(), "no payment without its charge");
    assert_eq!(app.memory_pms().posts_attempted(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_summary_the_pms_refuses_goes_to_the_operators_list() {
    let app = spawn_with(daily(&StoreChoice::Memory, |_| {})).await;
    deliver_ok(&app, &fresh_key(), &card_receipt("2026-11-10T12:00:00Z")).await;
    app.push_fault(Fault::Reject("Account closed".into()));
    assert_eq!(close_revenue_days(&app, "2026-11-10").await, ["refused"]);
    assert!(app.applied().is_empty());
    let key = chargebridge::daily_revenue::summary_key(&chargebridge::daily_revenue::Bucket::new(
        "2026-11-10".parse().unwrap(),
        "H-BAR",
        "94489280528",
    ));
    let entry = app
        .state
        .journal
        .get(&app.tenant, &key)
        .await
        .unwrap()
        .expect("the summary's journal entry");
    assert_eq!(
        entry.state,
        chargebridge::journal::JournalState::NeedsAttention
    );
    let day = daily_report(&app, "2026-11-10").await;
    assert_eq!(
        day["revenueSummaries"][0]["state"], "needs_attention",
        "{day}"
    );
    assert_eq!(day["postedRevenue"], "0", "{day}");
}

/// Two replicas (one Redis, one tenant) close the same business date at the
/// same moment: the seal and the summary's key let one posting through.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn two_replicas_closing_the_same_day_post_one_summary() {
    let redis = crate::redis_server::RedisServer::start(false);
    let store = StoreChoice::RedisAt(redis.url());
    let a = spawn_with(daily(&store, map_payments)).await;
    let b = spawn_with(daily(&store, map_payments)).await;
    deliver_ok(&a, &fresh_key(), &card_receipt("2026-11-10T12:00:00Z")).await;
    deliver_ok(&b, &fresh_key(), &card_receipt("2026-11-10T13:00:00Z")).await;
    for _ in 0..5 {
        let (x, y) = tokio::join!(
            close_revenue_days(&a, "2026-11-10"),
            close_revenue_days(&b, "2026-11-10")
        );
        let mut all = [x, y].concat();
        all.sort();
        assert!(all.len() <= 2, "{all:?}");
    }
    let applied: Vec<_> = a.applied().into_iter().chain(b.applied()).collect();
    let charges: Vec<Decimal> = applied
        .iter()
        .filter(|p| chargebridge::pms::settlement_of(&p.charge).is_none())
        .map(|p| p.charge.room().unwrap().amount)
        .collect();
    assert_eq!(charges, [dec("134.0")], "one summary for both replicas");
    let paid: Vec<Decimal> = applied
        .iter()
        .filter_map(|p| chargebridge::pms::settlement_of(&p.charge))
        .map(|r| r.amount)
        .collect();
    assert_eq!(paid, [dec("134.0")], "and one payment");
}

/// A tenant switched from `daily` to another mode still gets the days it
/// left open posted, by the worker, without anybody asking.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn days_left_open_by_a_switch_away_from_daily_are_still_posted() {
    let redis = crate::redis_server::RedisServer::start(false);
    let store = StoreChoice::RedisAt(redis.url());
    let daily_app = spawn_with(daily(&store, |_| {})).await;
    deliver_ok(
        &daily_app,
        &fresh_key(),
        &card_receipt("2026-11-10T12:00:00Z"),
    )
    .await;
    daily_app.stop().await;
    let app = spawn_with(daily(&store, |s| {
        s.tenants[0].revenue_posting = chargebridge::config::RevenuePosting::PerReceipt;
        s.tenants[0].revenue_summary_delay = std::time::Duration::from_secs(60);
    }))
    .await;
    let until = std::time::Instant::now() + std::time::Duration::from_secs(20);
    while app.applied().is_empty() && std::time::Instant::now() < until {
        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    }
    assert_eq!(postings(&app), [("H-BAR".to_string(), dec("67.0"))]);
}
