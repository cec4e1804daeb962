//! `revenue_posting = "daily"`: a day's non-room revenue as one posting per
//! business date, house account and revenue center, after the cut-off.
//!
//! * A delivery adds its receipt's revenue part ([`crate::domain::Charge::parts`])
//!   to the [`Ledger`] bucket of the receipt's business date (tenant time zone,
//!   `business_day_starts`), once per receipt, and answers 200: the POS is done.
//! * [`close_due`] (the worker, every turn) takes each bucket whose date ended
//!   `revenue_summary_delay` ago: it seals it (later receipts of that date go
//!   into the current date's bucket: *late*), sums its parts per accounting
//!   group and tax into one summary charge, and hands it to
//!   [`crate::posting::deliver`] under an idempotency key of its own
//!   (`daily-revenue.<date>.<bucket>`) in store-and-forward mode. From there the
//!   journal owns it like any charge: posted once, retried while the PMS is
//!   down, reconciled by reference after an unknown outcome, on the operator's
//!   list when refused.
//!
//! Replicas may close the same bucket at the same time: the seal freezes the
//! parts, so both build the same summary with the same fingerprint, and the
//! idempotency key lets one of them post it.

pub mod ledger;

use std::collections::BTreeMap;
use std::sync::Arc;

use chrono::{DateTime, NaiveDate, Utc};
use rust_decimal::Decimal;
use sha2::{Digest, Sha256};

pub use ledger::{Bucket, Ledger, MemoryLedger, RedisLedger};

use crate::config::WhenPmsUnavailable;
use crate::domain::{
    Charge, IdempotencyKey, Line, PostingReference, ReceiptRefs, RevenuePayment, RoomCharge,
    ServiceChargeItem, TaxItem, Tenant,
};
use crate::error::ApiError;
use crate::idempotency::StoreError;
use crate::journal::JournalState;
use crate::posting::Budget;
use crate::startup::AppState;

/// The idempotency key (and journal key) of a bucket's summary.
pub fn summary_key(bucket: &Bucket) -> String {
    format!("daily-revenue.{}", bucket.as_str().replace('|', "."))
}

/// Whether a journal key is a daily summary's.
pub fn is_summary_key(key: &str) -> bool {
    key.starts_with("daily-revenue.")
}

/// The bucket a deferred revenue part goes to, and the bucket of the current
/// business date that takes it when its own is already summarized.
pub fn buckets_for(part: &Charge, tenant: &Tenant, now: DateTime<Utc>) -> Option<(Bucket, Bucket)> {
    let room = part.room()?;
    let date = room.summary_date?;
    let bucket = Bucket::new(date, &room.reservation_id, &revenue_center_key(part));
    let today = tenant.business_date(now).max(date);
    let late = bucket.on(today);
    Some((bucket, late))
}

fn revenue_center_key(part: &Charge) -> String {
    part.revenue_center
        .as_ref()
        .and_then(|rc| rc.id.clone().or_else(|| rc.name.clone()))
        .unwrap_or_default()
}

/// When a business date's summary is due: the next date's start plus the delay.
pub fn due_at(tenant: &Tenant, date: NaiveDate) -> Option<DateTime<Utc>> {
    let next = tenant.business_day_start(date.succ_opt()?)?;
    chrono::Duration::from_std(tenant.revenue_summary_delay)
        .ok()
        .map(|d| next + d)
}

/// What closing one bucket came to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Closed {
    pub bucket: Bucket,
    /// `posted`, `queued`, `acknowledged` (nothing to post), `refused` (on
    /// the operator's list), or why it stays open (`store_unavailable`, …).
    pub outcome: String,
}

/// Closes every bucket of `tenant` due at `now`. Buckets that cannot be
/// closed now (the store is down, another replica is posting) stay open.
pub async fn close_due(
    state: &AppState,
    tenant: &Arc<Tenant>,
    now: DateTime<Utc>,
) -> Result<Vec<Closed>, StoreError> {
    let mut closed = Vec::new();
    for bucket in state.revenue_ledger.open(&tenant.id).await? {
        if due_at(tenant, bucket.date()).is_none_or(|due| due > now) {
            continue;
        }
        let outcome = close(state, tenant, &bucket).await?;
        closed.push(Closed { bucket, outcome });
    }
    Ok(closed)
}

async fn close(
    state: &AppState,
    tenant: &Arc<Tenant>,
    bucket: &Bucket,
) -> Result<String, StoreError> {
    let ledger = &state.revenue_ledger;
    ledger.seal(&tenant.id, bucket).await?;
    let parts = ledger.parts(&tenant.id, bucket).await?;
    let key_text = summary_key(bucket);
    let Ok(key) = IdempotencyKey::parse(key_text.as_bytes()) else {
        return Err(StoreError(format!("unusable summary key {key_text}")));
    };
    let Some(summary) = summary_charge(tenant, &key, bucket, &parts) else {
        ledger.handed_off(&tenant.id, bucket).await?;
        return Ok("acknowledged".into());
    };
    let fingerprint = hex::encode(Sha256::digest(
        serde_json::to_vec(&summary).unwrap_or_default(),
    ));
    // Nobody waits at a POS for a summary: when the PMS cannot take it, the
    // journal keeps it and the worker posts it (store and forward).
    let forward = Arc::new(Tenant {
        when_pms_unavailable: WhenPmsUnavailable::Queue,
        ..tenant.as_ref().clone()
    });
    let budget = Budget::from_now(
        state.server.request_deadline,
        state.server.pms_safety_margin,
    );
    let receipts = parts.len();
    let total = summary.room().map(|r| r.amount).unwrap_or_default();
    let reply = crate::posting::deliver(
        &state.idempotency,
        &state.journal,
        ledger,
        forward,
        Box::new(move || Ok(summary)),
        key,
        fingerprint,
        budget,
    )
    .await;
    let outcome = match reply {
        Ok(reply) if reply.status == 200 => {
            let status = serde_json::from_str::<serde_json::Value>(&reply.body)
                .ok()
                .and_then(|v| v["status"].as_str().map(str::to_string))
                .unwrap_or_else(|| "posted".into());
            tracing::info!(tenant = %tenant.id, bucket = bucket.as_str(), receipts, %total, status, "daily revenue summary handed to the journal");
            status
        }
        Ok(reply) => {
            // Refused by the PMS: only a person can settle it.
            tracing::error!(tenant = %tenant.id, bucket = bucket.as_str(), status = reply.status, body = %reply.body, "daily revenue summary refused by the PMS: needs attention");
            to_operator(state, &tenant.id, &key_text).await?;
            "refused".into()
        }
        Err(ApiError::StoreUnavailable(e)) => return Err(StoreError(e)),
        Err(ApiError::InProgress) => return Ok("in_progress".into()),
        Err(ApiError::IdempotencyKeyReused) => {
            // The parts changed after the seal (a store that lost writes):
            // the summary already handed off stands; a person compares.
            tracing::error!(tenant = %tenant.id, bucket = bucket.as_str(), "daily revenue summary differs from the one already posted: compare the report with the PMS");
            "differs".into()
        }
        Err(other) => {
            tracing::error!(tenant = %tenant.id, bucket = bucket.as_str(), error = %other, "daily revenue summary not posted; tried again next turn");
            return Ok(other.code().to_string());
        }
    };
    ledger.handed_off(&tenant.id, bucket).await?;
    Ok(outcome)
}

/// A refused summary goes on the operator's list.
async fn to_operator(state: &AppState, tenant: &str, key: &str) -> Result<(), StoreError> {
    if let Some(mut entry) = state.journal.get(tenant, key).await?
        && entry.state == JournalState::Rejected
    {
        entry.state = JournalState::NeedsAttention;
        entry.updated_ms = crate::journal::now_ms();
        state.journal.put(&entry, None).await?;
    }
    Ok(())
}

/// Accounting group id, name and PMS revenue code: one summary line each.
type GroupKey = (Option<String>, Option<String>, Option<String>);

/// One posting for the bucket: the parts' amounts and tips summed, their lines
/// summed per accounting group and revenue code, taxes per tax. `None` when
/// there are no parts.
pub fn summary_charge(
    tenant: &Tenant,
    key: &IdempotencyKey,
    bucket: &Bucket,
    parts: &BTreeMap<String, Charge>,
) -> Option<Charge> {
    let first = parts.values().next()?;
    let first_room = first.room()?;
    let date = bucket.date();
    let mut amount = Decimal::ZERO;
    let mut gratuity = Decimal::ZERO;
    let mut covers: Option<u32> = None;
    let mut service: Option<ServiceChargeItem> = None;
    let mut groups: BTreeMap<GroupKey, Line> = BTreeMap::new();
    let mut payments: Vec<RevenuePayment> = Vec::new();
    for part in parts.values() {
        let Some(room) = part.room() else { continue };
        amount += room.amount;
        gratuity += room.gratuity;
        for p in &room.payments {
            match payments.iter_mut().find(|s| s.method == p.method) {
                Some(sum) => sum.amount += p.amount,
                None => payments.push(RevenuePayment {
                    lightspeed: "daily".to_string(),
                    ..p.clone()
                }),
            }
        }
        if let Some(c) = part.covers {
            covers = Some(covers.unwrap_or(0).saturating_add(c));
        }
        if let Some(sc) = &part.service_charge {
            match service.as_mut() {
                Some(s) => s.amount += sc.amount,
                None => service = Some(sc.clone()),
            }
        }
        for line in &part.lines {
            let group = line.accounting_group.clone().unwrap_or_default();
            let id = (
                group.id.clone(),
                group.name.clone(),
                line.revenue_code.clone(),
            );
            let sum = groups.entry(id).or_insert_with(|| Line {
                description: group
                    .name
                    .clone()
                    .or_else(|| group.id.clone())
                    .unwrap_or_else(|| "Revenue".to_string()),
                sku: None,
                quantity: Decimal::ONE,
                unit_amount: None,
                amount: Decimal::ZERO,
                line_type: line.line_type.clone(),
                accounting_group: line.accounting_group.clone(),
                revenue_code: line.revenue_code.clone(),
                staff: None,
                service_charge_contribution: None,
                tax_lines: Vec::new(),
            });
            sum.amount += line.amount;
            if let Some(c) = line.service_charge_contribution {
                sum.service_charge_contribution =
                    Some(sum.service_charge_contribution.unwrap_or_default() + c);
            }
            for tax in &line.tax_lines {
                add_tax(&mut sum.tax_lines, tax);
            }
        }
    }
    let mut lines: Vec<Line> = groups.into_values().collect();
    for line in &mut lines {
        line.unit_amount = Some(line.amount);
    }
    let opened_at = tenant.business_day_start(date);
    let closed_at = date
        .succ_opt()
        .and_then(|next| tenant.business_day_start(next))
        .map(|at| at - chrono::Duration::seconds(1))
        .unwrap_or_else(Utc::now);
    let rc_name = first
        .revenue_center
        .as_ref()
        .and_then(|rc| rc.name.clone().or_else(|| rc.id.clone()));
    // The same summary (and fingerprint) on every replica, in any order of parts.
    payments.sort_by(|a, b| a.method.cmp(&b.method));
    Some(Charge {
        tenant: tenant.id.clone(),
        idempotency_key: key.as_str().to_string(),
        reference: PostingReference::derive(&tenant.id, key),
        receipt: ReceiptRefs {
            receipt_id: Some(format!("revenue {date}")),
            fisc_id: None,
            uuid: None,
            initial_account_id: None,
        },
        name: Some(match &rc_name {
            Some(rc) => format!("Revenue {date} {rc}"),
            None => format!("Revenue {date}"),
        }),
        currency: first.currency.clone(),
        rooms: vec![RoomCharge {
            reservation_id: first_room.reservation_id.clone(),
            amount,
            gratuity,
            payment_method: "daily".to_string(),
            revenue: true,
            summary_date: None,
            payments,
            settlement: false,
            settles: None,
        }],
        refund: amount.is_sign_negative() && !amount.is_zero(),
        opened_at,
        closed_at,
        revenue_center: first.revenue_center.clone(),
        outlet: first.outlet.clone(),
        gratuity_code: first.gratuity_code.clone(),
        service_charge_code: first.service_charge_code.clone(),
        owner: None,
        device_id: None,
        covers,
        lines,
        service_charge: service,
    })
}

fn add_tax(taxes: &mut Vec<TaxItem>, tax: &TaxItem) {
    let same = |t: &TaxItem| {
        t.tax_id == tax.tax_id
            && t.name == tax.name
            && t.rate == tax.rate
            && t.included == tax.included
            && t.pms_tax_code == tax.pms_tax_code
    };
    match taxes.iter_mut().find(|t| same(t)) {
        Some(t) => {
            t.amount = match (t.amount, tax.amount) {
                (Some(a), Some(b)) => Some(a + b),
                (a, b) => a.or(b),
            }
        }
        None => taxes.push(tax.clone()),
    }
}
