//! Full-revenue postings (`revenue_posting = "per_receipt"`): the part of a
//! receipt not charged to a room goes to the house account mapped for its
//! revenue center, once, like a room charge.

use rust_decimal::Decimal;
use std::str::FromStr;

use crate::helpers::*;

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
