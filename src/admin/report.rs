//! `GET /admin/v1/reports/daily?tenant=&date=YYYY-MM-DD`: the night audit's view
//! of one business date. A business date runs from the tenant's
//! `business_day_starts` (local time in `time_zone`) to the same time the next
//! day; receipts count by when chargebridge first saw them.

use actix_web::http::header;
use actix_web::{HttpRequest, HttpResponse, web};
use chrono::{NaiveDate, TimeZone};
use rust_decimal::Decimal;
use serde::{Deserialize, Serialize};

use super::{error, gate, rfc3339, tenant, total_of};
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
        t.time_zone
            .from_local_datetime(&d.and_time(t.business_day_starts))
            .earliest()
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
    for e in entries {
        if e.state == JournalState::Posted {
            posted_revenue += e
                .postings
                .iter()
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
    })
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
    ] {
        out.push_str(&format!(
            "{},{},{row},,{total},{}\n",
            d.tenant, d.date, d.currency
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
    let Some(report) = summarize(&t, date, &entries) else {
        return error(400, "invalid_query", "date out of range");
    };
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
