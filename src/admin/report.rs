//! `GET /admin/v1/reports/daily?tenant=&date=YYYY-MM-DD`: the night audit's view
//! of one business date. A business date runs from the tenant's
//! `business_day_starts` (local time in `time_zone`) to the same time the next
//! day; receipts count by when chargebridge first saw them.

use actix_web::http::header;
use actix_web::{HttpRequest, HttpResponse, web};
use chrono::NaiveDate;
use rust_decimal::Decimal;
use serde::{Deserialize, Serialize};

use super::{error, gate, payments_of, rfc3339, tenant, total_of};
use crate::domain::Tenant;
use crate::journal::{JournalEntry, JournalState, Query};
use crate::startup::AppState;

#[derive(Deserialize)]
pub struct ReportQuery {
    tenant: Option<String>,
    date: Option<String>,
}

#[derive(Serialize, Default, Clone)]
#[serde(rename_all = "camelCase")]
struct Line {
    state: &'static str,
    count: u64,
    #[serde(with = "rust_decimal::serde::str")]
    total: Decimal,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Daily {
    tenant: String,
    date: String,
    time_zone: String,
    from: String,
    until: String,
    currency: String,
    /// Every state, in a fixed order, zeros included.
    states: Vec<Line>,
    refunds: Totals,
    #[serde(with = "rust_decimal::serde::str")]
    tips: Decimal,
    /// Room charges on the folio (posted): the figure to compare with the PMS.
    #[serde(with = "rust_decimal::serde::str")]
    posted_total: Decimal,
    /// The part of `posted_total` charged to guests' rooms.
    #[serde(with = "rust_decimal::serde::str")]
    posted_room_charges: Decimal,
    /// The part of `posted_total` that is non-room revenue posted to house
    /// accounts (`revenue_posting`).
    #[serde(with = "rust_decimal::serde::str")]
    posted_revenue: Decimal,
    /// The receipts' own payments (cash, card…) posted against the house
    /// accounts their revenue went to (`payment_methods` mapped): equal to
    /// `postedRevenue` when every account balances.
    #[serde(with = "rust_decimal::serde::str")]
    posted_payments: Decimal,
    /// `revenue_posting = "daily"`: this date's summaries (one per house
    /// account and revenue center), late receipts of earlier dates included.
    revenue_summaries: Vec<RevenueSummary>,
    /// This date's receipts that arrived after its summary was posted: they
    /// went into the summaries of the dates listed.
    late_revenue: LateRevenue,
}

#[derive(Serialize, Clone)]
#[serde(rename_all = "camelCase")]
pub struct RevenueSummary {
    /// The summary's journal key (`daily-revenue.<date>.<id>`).
    key: String,
    account: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    revenue_center: Option<String>,
    receipts: u64,
    /// Receipts of earlier dates that arrived after their own summary.
    late_receipts: u64,
    #[serde(with = "rust_decimal::serde::str")]
    total: Decimal,
    /// `open` until the date's summary is due; then the journal entry's state.
    state: String,
}

#[derive(Serialize, Default, Clone)]
#[serde(rename_all = "camelCase")]
pub struct LateRevenue {
    count: u64,
    #[serde(with = "rust_decimal::serde::str")]
    total: Decimal,
    posted_with: Vec<String>,
}

#[derive(Serialize, Default)]
struct Totals {
    count: u64,
    #[serde(with = "rust_decimal::serde::str")]
    total: Decimal,
}

/// The UTC window `[from, until)` of a business date, in ms.
pub fn window(t: &Tenant, date: NaiveDate) -> Option<(u64, u64)> {
    let start = |d: NaiveDate| {
        t.business_day_start(d)
            .and_then(|at| u64::try_from(at.timestamp_millis()).ok())
    };
    Some((start(date)?, start(date.succ_opt()?)?))
}

/// Counts and totals of the entries of one business date.
pub fn summarize(t: &Tenant, date: NaiveDate, entries: &[JournalEntry]) -> Option<Daily> {
    let (from, until) = window(t, date)?;
    let mut states: Vec<Line> = JournalState::ALL
        .iter()
        .map(|s| Line {
            state: s.as_str(),
            ..Line::default()
        })
        .collect();
    let mut refunds = Totals::default();
    let mut tips = Decimal::ZERO;
    let mut posted_revenue = Decimal::ZERO;
    let mut posted_payments = Decimal::ZERO;
    let entries = entries
        .iter()
        .filter(|e| !crate::daily_revenue::is_summary_key(&e.key));
    for e in entries {
        posted_payments += payments_of(e);
        if e.state == JournalState::Posted {
            posted_revenue += e
                .postings
                .iter()
                .filter(|p| p.payment.is_none())
                .filter(|p| {
                    e.charge
                        .rooms
                        .iter()
                        .any(|r| r.revenue && r.reservation_id == p.reservation_id)
                })
                .map(|p| p.amount)
                .sum::<Decimal>();
        }
        let total = total_of(e);
        let line = &mut states[e.state.index()];
        line.count += 1;
        line.total += total;
        if e.charge.refund {
            refunds.count += 1;
            refunds.total += total;
        }
        tips += e
            .charge
            .rooms
            .iter()
            .map(|r| crate::domain::money::round_to_minor_unit(r.gratuity, &e.charge.currency))
            .sum::<Decimal>();
    }
    let posted_total = states[JournalState::Posted.index()].total;
    Some(Daily {
        tenant: t.id.clone(),
        date: date.to_string(),
        time_zone: t.time_zone.name().to_string(),
        from: rfc3339(from),
        until: rfc3339(until),
        currency: t.currency.clone(),
        states,
        refunds,
        tips,
        posted_total,
        posted_room_charges: posted_total - posted_revenue,
        posted_revenue,
        posted_payments,
        revenue_summaries: Vec::new(),
        late_revenue: LateRevenue::default(),
    })
}

/// Adds the date's daily revenue summaries (from the ledger and the journal)
/// to the report: a posted summary counts into `postedTotal` and
/// `postedRevenue` of its own business date, not of the day it was posted.
async fn add_revenue_summaries(
    state: &AppState,
    t: &Tenant,
    date: NaiveDate,
    report: &mut Daily,
) -> Result<(), crate::idempotency::StoreError> {
    use crate::daily_revenue::{Bucket, summary_key};
    let ledger = &state.revenue_ledger;
    for bucket in ledger.buckets_of(&t.id, date).await? {
        let parts = ledger.parts(&t.id, &bucket).await?;
        let Some(first) = parts.values().next() else {
            continue;
        };
        let key = summary_key(&bucket);
        let total: Decimal = parts
            .values()
            .filter_map(|p| p.room().map(|r| r.amount))
            .sum();
        let entry = state.journal.get(&t.id, &key).await?;
        let state_name = match &entry {
            Some(e) => e.state.as_str().to_string(),
            None if ledger.is_sealed(&t.id, &bucket).await? => "closing".to_string(),
            None => "open".to_string(),
        };
        if let Some(e) = &entry {
            report.posted_payments += payments_of(e);
        }
        if let Some(e) = entry.filter(|e| e.state == JournalState::Posted) {
            let posted = total_of(&e);
            report.posted_total += posted;
            report.posted_revenue += posted;
            report.states[JournalState::Posted.index()].count += 1;
            report.states[JournalState::Posted.index()].total += posted;
        }
        report.revenue_summaries.push(RevenueSummary {
            key,
            account: first
                .room()
                .map(|r| r.reservation_id.clone())
                .unwrap_or_default(),
            revenue_center: first
                .revenue_center
                .as_ref()
                .and_then(|rc| rc.name.clone().or_else(|| rc.id.clone())),
            receipts: parts.len() as u64,
            late_receipts: parts
                .values()
                .filter(|p| p.room().and_then(|r| r.summary_date) != Some(date))
                .count() as u64,
            total,
            state: state_name,
        });
    }
    // Each later bucket is read once, however many of its receipts are late.
    let mut later: std::collections::BTreeMap<Bucket, Vec<String>> = Default::default();
    for (key, bucket) in ledger.receipts_of(&t.id, date).await? {
        if bucket.date() != date {
            later.entry(bucket).or_default().push(key);
        }
    }
    for (bucket, keys) in &later {
        let parts = ledger.parts(&t.id, bucket).await?;
        for key in keys {
            report.late_revenue.count += 1;
            report.late_revenue.total += parts
                .get(key)
                .and_then(|p| p.room().map(|r| r.amount))
                .unwrap_or_default();
        }
    }
    let mut dates: Vec<String> = later.keys().map(|b| b.date().to_string()).collect();
    dates.dedup();
    report.late_revenue.posted_with = dates;
    Ok(())
}

/// The report as CSV for the night audit: one row per state, then refunds,
/// tips, the posted total and its two parts (room charges, revenue).
pub fn csv(d: &Daily) -> String {
    let mut out = String::from("tenant,date,state,count,total,currency\n");
    for l in &d.states {
        out.push_str(&format!(
            "{},{},{},{},{},{}\n",
            d.tenant, d.date, l.state, l.count, l.total, d.currency
        ));
    }
    out.push_str(&format!(
        "{},{},refunds,{},{},{}\n",
        d.tenant, d.date, d.refunds.count, d.refunds.total, d.currency
    ));
    for (row, total) in [
        ("tips", d.tips),
        ("posted_total", d.posted_total),
        ("posted_room_charges", d.posted_room_charges),
        ("posted_revenue", d.posted_revenue),
        ("posted_payments", d.posted_payments),
    ] {
        out.push_str(&format!(
            "{},{},{row},,{total},{}\n",
            d.tenant, d.date, d.currency
        ));
    }
    for r in &d.revenue_summaries {
        out.push_str(&format!(
            "{},{},revenue_summary {} {},{},{},{}\n",
            d.tenant, d.date, r.account, r.state, r.receipts, r.total, d.currency
        ));
    }
    if d.late_revenue.count > 0 {
        out.push_str(&format!(
            "{},{},late_revenue,{},{},{}\n",
            d.tenant, d.date, d.late_revenue.count, d.late_revenue.total, d.currency
        ));
    }
    out
}

pub async fn daily(
    req: HttpRequest,
    q: web::Query<ReportQuery>,
    state: web::Data<AppState>,
) -> HttpResponse {
    if let Err(refused) = gate(&req, &state) {
        return refused;
    }
    let Some(tenant_id) = q.tenant.as_deref().filter(|t| !t.is_empty()) else {
        return error(400, "invalid_query", "tenant is required");
    };
    let t = match tenant(&state, tenant_id) {
        Ok(t) => t.clone(),
        Err(refused) => return refused,
    };
    let Some(date) = q
        .date
        .as_deref()
        .and_then(|d| NaiveDate::parse_from_str(d, "%Y-%m-%d").ok())
    else {
        return error(400, "invalid_query", "date is required as YYYY-MM-DD");
    };
    let Some((from, until)) = window(&t, date) else {
        return error(400, "invalid_query", "date out of range");
    };
    let mut entries = Vec::new();
    let mut query = Query {
        since_ms: Some(from),
        until_ms: Some(until),
        limit: 500,
        ..Query::default()
    };
    // A business date of a busy outlet is a few thousand receipts: page through.
    for _ in 0..1_000 {
        match state.journal.list(&t.id, &query).await {
            Ok(page) => {
                entries.extend(page.entries);
                match page.next_cursor {
                    Some(c) => query.cursor = Some(c),
                    None => break,
                }
            }
            Err(e) => {
                tracing::warn!(error = %e, "daily report: journal not reachable");
                return error(503, "store_unavailable", "the journal cannot be read now");
            }
        }
    }
    let Some(mut report) = summarize(&t, date, &entries) else {
        return error(400, "invalid_query", "date out of range");
    };
    if let Err(e) = add_revenue_summaries(&state, &t, date, &mut report).await {
        tracing::warn!(error = %e, "daily report: revenue ledger not reachable");
        return error(503, "store_unavailable", "the journal cannot be read now");
    }
    let wants_csv = req
        .headers()
        .get(header::ACCEPT)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|a| a.contains("text/csv"));
    if wants_csv {
        HttpResponse::Ok()
            .content_type("text/csv; charset=utf-8")
            .insert_header((
                header::CONTENT_DISPOSITION,
                format!(
                    "attachment; filename=\"chargebridge-{}-{}.csv\"",
                    report.tenant, report.date
                ),
            ))
            .body(csv(&report))
    } else {
        HttpResponse::Ok().json(report)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_business_date_starts_at_the_local_cut_off() {
        let mut t = Tenant::offline("t");
        t.time_zone = "Europe/Amsterdam".parse().unwrap();
        t.business_day_starts = chrono::NaiveTime::from_hms_opt(4, 0, 0).unwrap();
        // Winter: UTC+1, so 04:00 local is 03:00 UTC.
        let (from, until) = window(&t, NaiveDate::from_ymd_opt(2026, 12, 2).unwrap()).unwrap();
        assert_eq!(rfc3339(from), "2026-12-02T03:00:00.000Z");
        assert_eq!(rfc3339(until), "2026-12-03T03:00:00.000Z");
        // The night the clocks go back is 25 hours long.
        let (from, until) = window(&t, NaiveDate::from_ymd_opt(2026, 10, 24).unwrap()).unwrap();
        assert_eq!(until - from, 25 * 3600 * 1000);
    }
}
