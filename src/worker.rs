//! The journal's worker, in every replica: finishes what a delivery could not.
//!
//! Every `journal.poll_interval` it asks each tenant's journal for due entries
//! (unknown outcomes to reconcile, queued charges to post), takes each one's
//! lease (so two replicas never work one entry) and runs
//! [`crate::posting::work_entry`]. A worker that stalls past its lease cannot
//! overwrite a newer result: its journal writes are fenced on the lease and its
//! record writes on the idempotency owner token. On SIGTERM it stops taking
//! entries and finishes the ones it holds.

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use futures_util::StreamExt;

use crate::journal::{JournalState, now_ms};
use crate::metrics as m;
use crate::posting::{Budget, WorkOutcome, work_entry};
use crate::startup::AppState;

/// Entries taken per tenant and turn, and worked at the same time.
const BATCH: usize = 32;
const CONCURRENCY: usize = 8;
/// How often the journal census (metrics) is refreshed.
const CENSUS_EVERY: Duration = Duration::from_secs(10);

pub struct WorkerSettings {
    pub poll_interval: Duration,
    /// `journal.retention`: older index members are trimmed by the census.
    pub retention: Duration,
    pub give_up_after: Duration,
    /// Longer than one entry's work (the request deadline).
    pub lease: Duration,
}

/// Runs until `state.draining` is set, then returns once the entries it holds
/// are settled.
pub async fn run(state: Arc<AppState>, settings: WorkerSettings) {
    let owner = format!("worker-{}", uuid::Uuid::new_v4().simple());
    let mut census_due = std::time::Instant::now();
    let mut sweep_due = std::time::Instant::now();
    loop {
        if state.draining.load(Ordering::SeqCst) {
            return;
        }
        for tenant in state.tenants.iter() {
            if state.draining.load(Ordering::SeqCst) {
                return;
            }
            turn(&state, tenant, &owner, &settings).await;
            if tenant.revenue_posting == crate::config::RevenuePosting::Daily {
                close_revenue_days(&state, tenant).await;
            }
        }
        if sweep_due <= std::time::Instant::now() {
            sweep_spool(&state, settings.retention).await;
            sweep_due = std::time::Instant::now() + SPOOL_SWEEP_EVERY;
        }
        if census_due <= std::time::Instant::now() {
            // A tenant switched away from `daily` still has its open days
            // posted (less often: usually there are none).
            for tenant in state.tenants.iter() {
                if tenant.revenue_posting != crate::config::RevenuePosting::Daily {
                    close_revenue_days(&state, tenant).await;
                }
            }
            census(&state).await;
            trim(&state, settings.retention).await;
            census_due = std::time::Instant::now() + CENSUS_EVERY;
        }
        tokio::time::sleep(settings.poll_interval).await;
    }
}

async fn turn(
    state: &AppState,
    tenant: &Arc<crate::domain::Tenant>,
    owner: &str,
    settings: &WorkerSettings,
) {
    let due = match state.journal.due(&tenant.id, now_ms(), BATCH).await {
        Ok(due) => due,
        Err(e) => {
            tracing::warn!(tenant = %tenant.id, error = %e, "journal not reachable; the worker tries again");
            return;
        }
    };
    futures_util::stream::iter(due)
        .for_each_concurrent(CONCURRENCY, |key| async move {
            match state.journal.lease(&tenant.id, &key, owner, settings.lease).await {
                Ok(true) => {}
                Ok(false) => return,
                Err(e) => {
                    tracing::warn!(tenant = %tenant.id, error = %e, "journal lease failed");
                    return;
                }
            }
            let budget = Budget::from_now(
                state.server.request_deadline,
                state.server.pms_safety_margin,
            );
            let outcome = work_entry(
                &state.idempotency,
                &state.journal,
                tenant,
                &key,
                owner,
                settings.give_up_after,
                budget,
            )
            .await;
            match outcome {
                Ok(WorkOutcome::Now(s)) => {
                    tracing::debug!(tenant = %tenant.id, key = %key, state = s.as_str(), "worker turn")
                }
                Ok(WorkOutcome::Busy | WorkOutcome::Skipped) => {}
                Err(e) => tracing::warn!(tenant = %tenant.id, key = %key, error = %e, "worker turn failed; tried again later"),
            }
            if let Err(e) = state.journal.release(&tenant.id, &key, owner).await {
                tracing::warn!(tenant = %tenant.id, error = %e, "journal lease not released; it expires");
            }
        })
        .await;
}

/// `revenue_posting = "daily"`: hands the summaries of ended business dates to
/// the journal (its next turns post them).
async fn close_revenue_days(state: &AppState, tenant: &Arc<crate::domain::Tenant>) {
    match crate::daily_revenue::close_due(state, tenant, chrono::Utc::now()).await {
        Ok(closed) => {
            for c in closed {
                tracing::debug!(tenant = %tenant.id, bucket = c.bucket.as_str(), outcome = %c.outcome, "daily revenue summary");
            }
        }
        Err(e) => {
            tracing::warn!(tenant = %tenant.id, error = %e, "daily revenue summaries not closed; tried again next turn")
        }
    }
}

/// How often the local spool of queued charges is compared with the journal:
/// a restored charge waits at most this long (plus a poll) for its post.
const SPOOL_SWEEP_EVERY: std::time::Duration = std::time::Duration::from_secs(2);

/// `journal.spool_dir`: writes back the queued charges Redis lost.
pub async fn sweep_spool(state: &AppState, retention: std::time::Duration) {
    let Some(spool) = state.journal.spool() else {
        return;
    };
    let retention_ms = u64::try_from(retention.as_millis()).unwrap_or(u64::MAX);
    match spool.sweep(&state.journal, retention_ms, now_ms()).await {
        Ok(sweep) if sweep.restored > 0 => tracing::warn!(
            restored = sweep.restored,
            waiting = sweep.waiting,
            "journal entries restored from the local spool"
        ),
        Ok(_) => {}
        Err(e) => {
            tracing::warn!(error = %e, "local spool not compared with the journal; tried again")
        }
    }
}

/// Entries by tenant and state, and the age of the oldest entry needing a
/// person or waiting in the queue.
pub async fn census(state: &AppState) {
    let now = now_ms();
    for tenant in state.tenants.iter() {
        match state.journal.census(&tenant.id).await {
            Ok(rows) => {
                for (s, count, oldest) in rows {
                    m::journal_entries(&tenant.id, s.as_str(), count);
                    if matches!(s, JournalState::NeedsAttention | JournalState::Queued) {
                        let age = oldest.map_or(0.0, |o| now.saturating_sub(o) as f64 / 1000.0);
                        m::journal_oldest(&tenant.id, s.as_str(), age);
                    }
                }
            }
            Err(e) => tracing::debug!(tenant = %tenant.id, error = %e, "journal census failed"),
        }
    }
}

/// Applies the journal's retention to its indexes, off the request path.
async fn trim(state: &AppState, retention: Duration) {
    let before = now_ms().saturating_sub(u64::try_from(retention.as_millis()).unwrap_or(u64::MAX));
    for tenant in state.tenants.iter() {
        if let Err(e) = state.journal.trim(&tenant.id, before).await {
            tracing::debug!(tenant = %tenant.id, error = %e, "journal trim failed");
        }
    }
}

/// Every journal series at 0 from start-up, so alerts see them before traffic.
pub fn register_metrics(state: &AppState) {
    for tenant in state.tenants.iter() {
        for s in JournalState::ALL {
            m::journal_entries(&tenant.id, s.as_str(), 0);
        }
        for s in [JournalState::NeedsAttention, JournalState::Queued] {
            m::journal_oldest(&tenant.id, s.as_str(), 0.0);
        }
    }
    for outcome in JournalState::ALL {
        m::worker_attempt_zero(outcome.as_str());
    }
}
