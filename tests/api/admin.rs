//! The operator API over the journal: who may use it, what it lists, and what
//! retry, resolve and the daily report do.

use std::time::{Duration, Instant};

use chargebridge::config::WhenPmsUnavailable;
use chargebridge::pms::memory::Fault;
use secrecy::SecretString;
use serde_json::{Value, json};

use crate::helpers::*;

const TOKEN: &str = "admin-test-token-7f3a";

fn with_admin(s: &mut chargebridge::config::Settings) {
    s.admin.token = Some(SecretString::from(TOKEN));
    s.journal.poll_interval = Duration::from_millis(100);
}

async fn admin(app: &TestApp, method: &str, path: &str, body: Option<Value>) -> (u16, Value) {
    let url = format!("{}{path}", app.address);
    let request = match method {
        "POST" => app.client.post(&url).json(&body.unwrap_or(json!({}))),
        _ => app.client.get(&url),
    };
    let response = request.bearer_auth(TOKEN).send().await.unwrap();
    let status = response.status().as_u16();
    let text = response.text().await.unwrap();
    (
        status,
        serde_json::from_str(&text).unwrap_or(Value::String(text)),
    )
}

async fn wait_for(app: &TestApp, state: &str, key: &str) -> Value {
    let until = Instant::now() + Duration::from_secs(6);
    loop {
        let (_, entry) = admin(
            app,
            "GET",
            &format!("/admin/v1/postings/{}/{key}", app.tenant),
            None,
        )
        .await;
        if entry["state"] == state {
            return entry;
        }
        assert!(Instant::now() < until, "not {state}: {entry}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_admin_api_is_off_without_a_token_and_tells_nothing_to_strangers() {
    let off = spawn_app(StoreChoice::Memory).await;
    assert_eq!(off.get("/admin/v1/postings").await.status, 404);
    assert_eq!(off.get("/admin/").await.status, 404);

    let app = spawn_with(settings(&StoreChoice::Memory, with_admin)).await;
    for auth in [None, Some("Bearer wrong"), Some(TOKEN), Some("Basic abc")] {
        let mut request = app.client.get(format!("{}/admin/v1/postings", app.address));
        if let Some(a) = auth {
            request = request.header("authorization", a);
        }
        let response = request.send().await.unwrap();
        assert_eq!(response.status().as_u16(), 401, "{auth:?}");
        let body: Value = response.json().await.unwrap();
        assert_eq!(body, json!({"error": "unauthorized"}));
    }
    let (status, _) = admin(&app, "GET", "/admin/v1/postings", None).await;
    assert_eq!(status, 200);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_operator_retries_a_failed_charge_and_resolves_one_that_needs_attention() {
    let app = spawn_with(settings(&StoreChoice::Memory, with_admin)).await;
    // A failed charge (fail mode, the PMS down).
    let failed = fresh_key();
    app.push_fault(Fault::Unavailable);
    assert_eq!(app.charge(&failed, SEED).await.status, 500);
    // A posted one.
    let posted = fresh_key();
    assert_eq!(app.charge(&posted, SEED).await.status, 200);

    let (status, list) = admin(&app, "GET", "/admin/v1/postings?state=failed", None).await;
    assert_eq!(status, 200);
    let entries = list["entries"].as_array().unwrap();
    assert_eq!(entries.len(), 1, "{list}");
    assert_eq!(entries[0]["key"], failed.as_str());
    assert_eq!(entries[0]["amount"], "67.0");
    assert_eq!(entries[0]["lastOutcome"], "unavailable");
    let (_, all) = admin(
        &app,
        "GET",
        &format!("/admin/v1/postings?tenant={}", app.tenant),
        None,
    )
    .await;
    let keys: Vec<&str> = all["entries"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["key"].as_str().unwrap())
        .collect();
    assert_eq!(keys, [posted.as_str(), failed.as_str()], "newest first");

    // Retry: reconciled (not there), posted with the same reference.
    let (status, entry) = admin(
        &app,
        "POST",
        &format!("/admin/v1/postings/{}/{failed}/retry", app.tenant),
        None,
    )
    .await;
    assert_eq!(status, 200, "{entry}");
    assert_eq!(entry["state"], "posted");
    let last = entry["attempts"]
        .as_array()
        .unwrap()
        .last()
        .unwrap()
        .clone();
    assert_eq!(last["by"], "operator");
    assert_eq!(app.applied_for(&failed), 1);
    // A re-delivery now replays the truth.
    let replay = app.charge(&failed, SEED).await;
    assert!(replay.replayed());
    assert_eq!(replay.json()["status"], "posted");
    // A posted entry cannot be retried again.
    let (status, refused) = admin(
        &app,
        "POST",
        &format!("/admin/v1/postings/{}/{failed}/retry", app.tenant),
        None,
    )
    .await;
    assert_eq!(
        (status, refused["error"].as_str()),
        (409, Some("wrong_state"))
    );
    assert_eq!(app.applied_for(&failed), 1);

    // Resolve needs a note, and never posts.
    let path = format!("/admin/v1/postings/{}/{posted}/resolve", app.tenant);
    let (status, _) = admin(&app, "POST", &path, Some(json!({"note": ""}))).await;
    assert_eq!(status, 400);
    let (status, _) = admin(&app, "POST", &path, Some(json!({"note": "x"}))).await;
    assert_eq!(status, 409, "a posted entry is not resolved");
    let (status, _) = admin(
        &app,
        "GET",
        &format!("/admin/v1/postings/{}/LS1_nope", app.tenant),
        None,
    )
    .await;
    assert_eq!(status, 404);
    let (status, _) = admin(&app, "GET", "/admin/v1/postings/nobody/LS1_nope", None).await;
    assert_eq!(status, 404);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_queued_charge_refused_later_is_resolved_with_a_note() {
    let app = spawn_with(settings(&StoreChoice::Memory, |s| {
        with_admin(s);
        s.tenants[0].when_pms_unavailable = WhenPmsUnavailable::Queue;
    }))
    .await;
    let key = fresh_key();
    app.push_fault(Fault::Unavailable);
    app.push_fault(Fault::Reject("Guest checked out".into()));
    assert_eq!(app.charge(&key, SEED).await.json()["status"], "queued");
    wait_for(&app, "needs_attention", &key).await;
    let path = format!("/admin/v1/postings/{}/{key}/resolve", app.tenant);
    let (status, entry) = admin(
        &app,
        "POST",
        &path,
        Some(json!({"note": "Paid by card at the desk"})),
    )
    .await;
    assert_eq!(status, 200, "{entry}");
    assert_eq!(entry["state"], "resolved");
    assert_eq!(entry["note"], "Paid by card at the desk");
    assert!(app.applied().is_empty(), "resolving never posts");
    let (_, list) = admin(
        &app,
        "GET",
        "/admin/v1/postings?state=needs_attention",
        None,
    )
    .await;
    assert!(list["entries"].as_array().unwrap().is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_daily_report_counts_a_business_date_in_json_and_csv() {
    let app = spawn_with(settings(&StoreChoice::Memory, |s| {
        with_admin(s);
        s.tenants[0].time_zone = "Europe/Amsterdam".into();
        s.tenants[0].business_day_starts = "04:00".into();
    }))
    .await;
    assert_eq!(app.charge(&fresh_key(), SEED).await.status, 200);
    assert_eq!(
        app.charge(&fresh_key(), &fixture("refund.json"))
            .await
            .status,
        200
    );
    app.push_fault(Fault::Unavailable);
    assert_eq!(app.charge(&fresh_key(), SEED).await.status, 500);
    // Today's business date in Amsterdam, with the 04:00 cut-off.
    let local = chrono::Utc::now().with_timezone(&chrono_tz::Europe::Amsterdam)
        - chrono::Duration::hours(4);
    let date = local.date_naive().to_string();
    let path = format!("/admin/v1/reports/daily?tenant={}&date={date}", app.tenant);
    let (status, report) = admin(&app, "GET", &path, None).await;
    assert_eq!(status, 200, "{report}");
    assert_eq!(report["timeZone"], "Europe/Amsterdam");
    let line = |state: &str| {
        report["states"]
            .as_array()
            .unwrap()
            .iter()
            .find(|l| l["state"] == state)
            .unwrap()
            .clone()
    };
    assert_eq!(line("posted")["count"], 2);
    assert_eq!(line("posted")["total"], "1.0", "67.0 - 66.0");
    assert_eq!(line("failed")["count"], 1);
    assert_eq!(line("failed")["total"], "67.0");
    assert_eq!(report["refunds"]["count"], 1);
    assert_eq!(report["refunds"]["total"], "-66.0");
    assert_eq!(report["tips"], "2.0");
    assert_eq!(report["postedTotal"], "1.0");

    let csv = app
        .client
        .get(format!("{}{path}", app.address))
        .bearer_auth(TOKEN)
        .header("accept", "text/csv")
        .send()
        .await
        .unwrap();
    assert!(
        csv.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/csv")
    );
    let text = csv.text().await.unwrap();
    assert!(
        text.starts_with("tenant,date,state,count,total,currency\n"),
        "{text}"
    );
    assert!(
        text.contains(&format!("{},{date},failed,1,67.0,EUR", app.tenant)),
        "{text}"
    );
    assert!(text.contains("refunds,1,-66.0,EUR"), "{text}");

    // Yesterday: nothing.
    let yesterday = (local.date_naive() - chrono::Duration::days(1)).to_string();
    let (_, empty) = admin(
        &app,
        "GET",
        &format!(
            "/admin/v1/reports/daily?tenant={}&date={yesterday}",
            app.tenant
        ),
        None,
    )
    .await;
    assert!(
        empty["states"]
            .as_array()
            .unwrap()
            .iter()
            .all(|l| l["count"] == 0)
    );
    let (status, _) = admin(&app, "GET", "/admin/v1/reports/daily?tenant=demo", None).await;
    assert_eq!(status, 400, "a date is required");
}
