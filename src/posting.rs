//! What happens to a charge: the state machine that the delivery (route), the
//! journal's worker and operator actions all run. Knows nothing of HTTP.
//!
//! * [`deliver`]: a delivery from Lightspeed. Takes the idempotency key, writes
//!   the journal entry before the PMS is called, posts, then settles record and
//!   entry together (one store round trip more than the idempotency layer alone).
//! * [`work_entry`]: the worker's turn at a due entry (unknown outcome or queued
//!   charge), under the entry's lease and the key's idempotency guard.
//!
//! Both post through [`run_postings`]: a receipt charged to several reservations
//! (MULTI_PAYMENTS) is one posting per reservation ([`Charge::postings`]); each
//! one on the folio is written into the idempotency record before the next, so
//! whatever dies half-way leaves only the rest to be posted. Every path asks the
//! PMS by reference before posting when an earlier attempt may have reached it.

use std::sync::Arc;
use std::time::Duration;

use serde::Serialize;
use tokio::time::Instant;

use crate::config::WhenPmsUnavailable;
use crate::domain::{Charge, IdempotencyKey, Tenant};
use crate::error::ApiError;
use crate::idempotency::{
    Begin, BeginError, Guard, Idempotency, PostedPart, StoredResponse, record_key,
};
use crate::journal::{Actor, Attempt, Journal, JournalEntry, JournalState, backoff, now_ms};
use crate::metrics as m;
use crate::pms::{ErrorClass, PmsAdapter, PmsError, PostingReceipt};

/// The answer to a delivery: status and body exactly as sent (and as replayed).
#[derive(Debug, Clone)]
pub struct Reply {
    pub status: u16,
    pub body: String,
    pub replayed: bool,
}

impl Reply {
    fn fresh(response: StoredResponse) -> Self {
        Reply {
            status: response.status,
            body: response.body,
            replayed: false,
        }
    }
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct Success<'a> {
    status: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    pms_reference: Option<&'a str>,
    idempotency_key: &'a str,
    /// Only for a receipt charged to several reservations.
    #[serde(skip_serializing_if = "<[_]>::is_empty")]
    postings: &'a [PostedPart],
}

/// The 200 body: `posted` (with the PMS reference), `acknowledged` (nothing to
/// post) or `queued` (stored; chargebridge posts it).
fn success_body(status: &'static str, idempotency_key: &str, posted: &[PostedPart]) -> String {
    let body = Success {
        status,
        pms_reference: posted.first().map(|p| p.pms_reference.as_str()),
        idempotency_key,
        postings: if posted.len() > 1 { posted } else { &[] },
    };
    serde_json::to_string(&body).unwrap_or_default()
}

fn ok_response(status: &'static str, key: &str, posted: &[PostedPart]) -> StoredResponse {
    StoredResponse {
        status: 200,
        body: success_body(status, key, posted),
    }
}

fn error_response(error: &ApiError) -> StoredResponse {
    use actix_web::ResponseError;
    StoredResponse {
        status: error.status_code().as_u16(),
        body: String::from_utf8_lossy(&error.body()).into_owned(),
    }
}

pub struct Budget {
    /// The answer must leave by then.
    pub deadline: Instant,
    /// Kept back from PMS calls so the answer (and the record) still fit.
    pub safety_margin: Duration,
}

impl Budget {
    pub fn from_now(total: Duration, safety_margin: Duration) -> Self {
        Budget {
            deadline: Instant::now() + total,
            safety_margin,
        }
    }

    fn pms_deadline(&self) -> Instant {
        self.deadline
            .checked_sub(self.safety_margin)
            .unwrap_or(self.deadline)
    }
}

/// Why one posting is not (known to be) on the folio.
#[derive(Debug)]
enum PostingFailure {
    Pms(PmsError),
    /// No time left to call the PMS: nothing was sent.
    Deadline,
}

impl PostingFailure {
    /// When the worker should try again after `attempt` attempts: the backoff,
    /// or longer when the PMS asked for a pause.
    fn next_attempt_ms(&self, attempt: u32) -> u64 {
        let mut wait = backoff(attempt);
        if let PostingFailure::Pms(e) = self
            && let Some(asked) = e.retry_after()
        {
            wait = wait.max(asked);
        }
        now_ms() + u64::try_from(wait.as_millis()).unwrap_or(u64::MAX / 2)
    }

    fn outcome(&self) -> &'static str {
        match self {
            PostingFailure::Pms(e) => e.class(),
            PostingFailure::Deadline => "deadline",
        }
    }

    fn message(&self) -> String {
        match self {
            PostingFailure::Pms(e) => e.detail.clone(),
            PostingFailure::Deadline => "no time left for the PMS".into(),
        }
    }
}

/// What a run over the postings of one receipt came to.
struct Run {
    posted: Vec<PostedPart>,
    refused: Vec<(String, String)>,
    /// Reconciled and not at the PMS, and not posted (reconcile-only runs).
    not_found: usize,
    /// Stopped here: the rest is not known to be on the folio.
    failure: Option<PostingFailure>,
    attempts: Vec<Attempt>,
}

/// Posts (or, with `may_post` false, only looks up) every posting not yet on
/// the folio, in order, keeping progress in the idempotency record.
async fn run_postings(
    pms: &dyn PmsAdapter,
    postings: &[Arc<Charge>],
    guard: &mut Guard<'_>,
    may_post: bool,
    by: Actor,
    budget: &Budget,
) -> Run {
    let several = postings.len() > 1;
    let mut run = Run {
        posted: guard.posted().to_vec(),
        refused: Vec::new(),
        not_found: 0,
        failure: None,
        attempts: Vec::new(),
    };
    // House accounts whose revenue charge the PMS refused: their payments
    // would leave the account in credit, so they are not posted.
    let mut refused_accounts: Vec<&str> = Vec::new();
    for posting in postings {
        let Some(room) = posting.room() else { continue };
        if room.settlement && refused_accounts.contains(&room.reservation_id.as_str()) {
            continue;
        }
        if run.posted.iter().any(|p| p.is_of(room)) {
            continue;
        }
        let started = std::time::Instant::now();
        let outcome = post_once(pms, posting, guard.must_reconcile(), may_post, budget).await;
        let attempt = |outcome: &str, message: Option<String>| Attempt {
            at_ms: now_ms(),
            by,
            outcome: outcome.to_string(),
            message,
            latency_ms: u64::try_from(started.elapsed().as_millis()).unwrap_or(u64::MAX),
        };
        match outcome {
            Ok(Some(receipt)) => {
                run.attempts.push(attempt("posted", None));
                run.posted.push(PostedPart {
                    reservation_id: room.reservation_id.clone(),
                    pms_reference: receipt.pms_reference,
                    payment: room.part_payment().map(str::to_string),
                });
                if several {
                    settle_store(guard.record_progress(run.posted.clone()).await);
                }
            }
            Ok(None) => {
                run.attempts.push(attempt("not_found", None));
                run.not_found += 1;
            }
            Err(PostingFailure::Pms(e)) if e.is_rejected() => {
                let reason = e.detail;
                tracing::info!(reservation = %room.reservation_id, %reason, "PMS rejected the charge");
                run.attempts.push(attempt("rejected", Some(reason.clone())));
                if room.revenue && !room.settlement {
                    refused_accounts.push(&room.reservation_id);
                }
                let part = match room.part_payment() {
                    Some(method) => format!("Payment {method}"),
                    None => format!("Res. {}", room.reservation_id),
                };
                run.refused.push((part, reason));
            }
            Err(failure) => {
                run.attempts
                    .push(attempt(failure.outcome(), Some(failure.message())));
                run.failure = Some(failure);
                break;
            }
        }
    }
    run
}

/// The 422 for refused postings: the PMS's own reason for a receipt with one
/// reservation; which reservation was refused (and that the rest is on the
/// folio) for several.
fn refusal(refused: &[(String, String)], postings: usize, posted: usize) -> Option<ApiError> {
    let (part, reason) = refused.first()?;
    if postings <= 1 {
        return Some(ApiError::PmsRejected(reason.clone()));
    }
    let others = if posted > 0 { "; others posted" } else { "" };
    Some(ApiError::PmsRejected(format!(
        "{part} refused{others}: {reason}"
    )))
}

/// Asks the PMS first when an earlier attempt may have reached it, then posts
/// (when allowed). `Ok(None)`: not at the PMS and not posted.
async fn post_once(
    pms: &dyn PmsAdapter,
    charge: &Arc<Charge>,
    reconcile_first: bool,
    may_post: bool,
    budget: &Budget,
) -> Result<Option<PostingReceipt>, PostingFailure> {
    if reconcile_first {
        // Timed and counted by the registry's wrapper, like every adapter call.
        let found = pms.reconcile(charge, budget.pms_deadline()).await;
        match found {
            Ok(Some(receipt)) => {
                tracing::info!(reference = %charge.reference, "reconciled: the PMS already has this charge");
                return Ok(Some(receipt));
            }
            Ok(None) => {}
            Err(e) => {
                tracing::warn!(error = %e, reference = %charge.reference, "reconciliation failed; outcome still unknown");
                return Err(PostingFailure::Pms(PmsError::unknown(e.to_string())));
            }
        }
    }
    if !may_post {
        return Ok(None);
    }
    let pms_deadline = budget.pms_deadline();
    if Instant::now() >= pms_deadline {
        return Err(PostingFailure::Deadline);
    }
    // The adapter owns its deadline; this outer bound only guards against an
    // adapter that ignores it. Cut off after sending, the outcome is unknown.
    let outcome =
        match tokio::time::timeout_at(budget.deadline, pms.post(charge, pms_deadline)).await {
            Ok(outcome) => outcome,
            Err(_) => Err(PmsError::unknown("adapter overran the request deadline")),
        };
    outcome.map(Some).map_err(PostingFailure::Pms)
}

fn settle_store(result: Result<bool, crate::idempotency::StoreError>) {
    match result {
        Ok(true) => {}
        Ok(false) => tracing::warn!(
            "idempotency lease lost before settling; the successor's record was kept"
        ),
        Err(e) => tracing::error!(error = %e, "could not settle the idempotency record"),
    }
}

fn settle_journal(result: Result<bool, crate::idempotency::StoreError>, entry: &JournalEntry) {
    match result {
        Ok(true) => {}
        Ok(false) => tracing::warn!(
            tenant = %entry.tenant, key = %entry.key,
            "journal lease lost: a newer worker's entry was kept"
        ),
        Err(e) => tracing::error!(
            error = %e, tenant = %entry.tenant, key = %entry.key, state = entry.state.as_str(),
            "could not write the journal entry"
        ),
    }
}

/// Copies what the run learnt into the entry's postings and attempts.
fn note_run(entry: &mut JournalEntry, run: &Run) {
    for part in &run.posted {
        if let Some(p) = entry.postings.iter_mut().find(|p| p.is(part)) {
            p.pms_reference = Some(part.pms_reference.clone());
        }
    }
    for attempt in &run.attempts {
        entry.record_attempt(attempt.clone());
    }
    entry.updated_ms = now_ms();
}

/// How long the worker keeps trying to write an entry whose record is written.
const WORKER_WRITE_PATIENCE: Duration = Duration::from_secs(10);

/// How a record is settled together with its journal entry.
enum Settle {
    Complete(StoredResponse),
    Release,
    MarkUnknown,
}

async fn settle(
    guard: Guard<'_>,
    how: Settle,
    journal: &Journal,
    entry: &JournalEntry,
    fence: Option<&str>,
    until: Instant,
) {
    let record = async {
        match how {
            Settle::Complete(response) => guard.complete(response).await,
            Settle::Release => guard.release().await,
            Settle::MarkUnknown => guard.mark_unknown().await,
        }
    };
    // Different keys (and slots): sent together, one round trip.
    let (record, written) = tokio::join!(record, journal.put(entry, fence));
    settle_store(record);
    // The record now says what the POS hears; an entry left behind it would have
    // the worker decide the charge again. A failover lasts seconds, so the
    // write is tried again while the budget allows.
    let written = match written {
        Err(_) => put_until(journal, entry, fence, until).await,
        done => done,
    };
    settle_journal(written, entry);
    m::journal_transition(entry.state.as_str());
}

/// Writes the entry, trying again with a growing pause until `until`.
async fn put_until(
    journal: &Journal,
    entry: &JournalEntry,
    fence: Option<&str>,
    until: Instant,
) -> Result<bool, crate::idempotency::StoreError> {
    let mut pause = Duration::from_millis(100);
    loop {
        let written = journal.put(entry, fence).await;
        if written.is_ok() || Instant::now() + pause >= until {
            return written;
        }
        tokio::time::sleep(pause).await;
        pause = (pause * 2).min(Duration::from_secs(1));
    }
}

/// A refusal from the PMS. The POS hears it only once the journal holds it:
/// with the record alone (on another shard, lost in a failover) the worker
/// could post the charge behind a 422. A journal that cannot take it means
/// 500 (the key stays ours and is decided again), never a refusal forgotten.
async fn refuse(
    guard: Guard<'_>,
    journal: &Journal,
    entry: &mut JournalEntry,
    response: StoredResponse,
    posted: &[PostedPart],
    until: Instant,
) -> Result<Reply, ApiError> {
    entry.answered = Some(response.status);
    entry.refusal = Some(response.clone());
    match put_until(journal, entry, None, until).await {
        Ok(_) => {
            m::journal_transition(entry.state.as_str());
            settle_store(guard.complete(response.clone()).await);
            Ok(Reply::fresh(response))
        }
        Err(e) => {
            tracing::error!(
                tenant = %entry.tenant, key = %entry.key, error = %e,
                "PMS refusal not written to the journal: answered 500, the charge stays open"
            );
            settle_store(if posted.is_empty() {
                guard.release().await
            } else {
                guard.mark_unknown().await
            });
            Err(ApiError::StoreUnavailable(e.0))
        }
    }
}

/// Runs one delivery of `charge` to completion. Runs in its own task, so a client
/// that hangs up cannot cut a posting in half.
/// Parses, validates and maps the delivery's body: run only once the key is
/// ours, so a replay is answered without it.
pub type BuildCharge = Box<dyn FnOnce() -> Result<Charge, ApiError> + Send>;

#[allow(clippy::too_many_arguments)]
pub async fn deliver(
    idempotency: &Idempotency,
    journal: &Journal,
    ledger: &crate::daily_revenue::Ledger,
    tenant: Arc<Tenant>,
    build: BuildCharge,
    key: IdempotencyKey,
    fp: String,
    budget: Budget,
) -> Result<Reply, ApiError> {
    // The fingerprint covers the whole body, so a replay is the same payload
    // that was valid when its answer was stored: it is answered without parsing.
    let guard = match take_key(idempotency, &tenant, &key, &fp, &budget).await {
        Ok(Begin::Replay(response)) => {
            m::replay();
            return Ok(Reply {
                status: response.status,
                body: response.body,
                replayed: true,
            });
        }
        Ok(Begin::Owned(guard)) => guard,
        // A bad body is told as such whatever the store or the key says (a
        // malformed request gets its 4XX even while Redis is down).
        Err(error) => {
            build()?;
            return Err(error);
        }
    };
    let charge = match build() {
        Ok(charge) => charge,
        Err(error) => {
            // Refusals of the payload are not stored: a corrected retry posts.
            settle_store(guard.release().await);
            return Err(error);
        }
    };
    let (postings, deferred) = charge.clone().parts();
    let postings: Vec<Arc<Charge>> = postings.into_iter().map(Arc::new).collect();
    let mut entry = JournalEntry::new(
        &charge,
        &postings,
        &fp,
        tenant.when_pms_unavailable,
        now_ms(),
    );
    if let Err(error) = defer_revenue(ledger, &tenant, &deferred, &mut entry).await {
        settle_store(guard.release().await);
        return Err(error);
    }
    if !charge.needs_posting() || charge.charges_nothing() || postings.is_empty() {
        entry.state = JournalState::Acknowledged;
        return Ok(answer(
            guard,
            journal,
            &mut entry,
            ok_response("acknowledged", key.as_str(), &[]),
            budget.deadline,
        )
        .await);
    }
    let mut guard = match open_entry(journal, &mut entry, guard, idempotency.lease_ms()).await? {
        Opened::Owned(guard) => guard,
        Opened::Replay(reply) => return Ok(reply),
    };
    if idempotency.reconcile_new_keys() {
        // Nothing here says the key is new if Redis lost its writes.
        guard.require_reconcile();
    }
    let pms = tenant.pms.as_ref();
    let run = run_postings(pms, &postings, &mut guard, true, Actor::Delivery, &budget).await;
    note_run(&mut entry, &run);
    entry.next_attempt_ms = None;
    if let Some(failure) = run.failure {
        let posted = run.posted;
        return not_posted(
            guard, journal, &mut entry, &tenant, failure, &posted, &budget,
        )
        .await;
    }
    if let Some(error) = refusal(&run.refused, postings.len(), run.posted.len()) {
        entry.state = if run.posted.is_empty() {
            JournalState::Rejected
        } else {
            tracing::error!(
                tenant = %tenant.id, key = %key, refused = run.refused.len(), posted = run.posted.len(),
                "receipt posted in part: a person must settle the refused reservations"
            );
            JournalState::NeedsAttention
        };
        let response = error_response(&error);
        return refuse(
            guard,
            journal,
            &mut entry,
            response,
            &run.posted,
            budget.deadline,
        )
        .await;
    }
    // The PMS has the charge whatever happens to the record now, so the answer is
    // 200 either way; a record we failed to write is found again by reconciliation.
    entry.state = JournalState::Posted;
    Ok(answer(
        guard,
        journal,
        &mut entry,
        ok_response("posted", key.as_str(), &run.posted),
        budget.deadline,
    )
    .await)
}

/// `revenue_posting = "daily"`: the receipt's revenue part goes into the
/// summary of its business date (once per receipt); an attempt in the entry
/// says which. A ledger that cannot take it means nothing is posted (fail
/// closed, the key is freed).
async fn defer_revenue(
    ledger: &crate::daily_revenue::Ledger,
    tenant: &Tenant,
    deferred: &[Charge],
    entry: &mut JournalEntry,
) -> Result<(), ApiError> {
    for part in deferred {
        let Some((bucket, late)) =
            crate::daily_revenue::buckets_for(part, tenant, chrono::Utc::now())
        else {
            continue;
        };
        let placed = ledger
            .add(&tenant.id, &entry.key, &bucket, &late, part)
            .await
            .map_err(|e| ApiError::StoreUnavailable(e.0))?;
        if placed != bucket {
            tracing::warn!(
                tenant = %tenant.id, key = %entry.key, date = %bucket.date(), into = %placed.date(),
                "late receipt: its business date is already summarized; its revenue goes into the next summary"
            );
        }
        let amount = part.room().map(|r| r.amount).unwrap_or_default();
        entry.record_attempt(Attempt {
            at_ms: now_ms(),
            by: Actor::Delivery,
            outcome: "deferred".into(),
            message: Some(format!(
                "revenue {amount} into the daily summary {}",
                crate::daily_revenue::summary_key(&placed)
            )),
            latency_ms: 0,
        });
    }
    Ok(())
}

/// Takes the idempotency key (or finds its final answer to replay).
async fn take_key<'a>(
    idempotency: &'a Idempotency,
    tenant: &Tenant,
    key: &IdempotencyKey,
    fp: &str,
    budget: &Budget,
) -> Result<Begin<'a>, ApiError> {
    idempotency
        .begin(record_key(&tenant.id, key), fp, budget.pms_deadline())
        .await
        .map_err(|e| match e {
            BeginError::Reused => ApiError::IdempotencyKeyReused,
            BeginError::InProgress => {
                m::in_flight_conflict();
                ApiError::InProgress
            }
            BeginError::Store(e) => ApiError::StoreUnavailable(e.0),
        })
}

/// Writes the entry before the PMS is called. It is due for the worker only
/// once this delivery's lease is over (the delivery settles long before). A
/// journal that cannot hold the charge means it is not posted (fail closed).
async fn open_entry<'a>(
    journal: &Journal,
    entry: &mut JournalEntry,
    mut guard: Guard<'a>,
    lease_ms: u64,
) -> Result<Opened<'a>, ApiError> {
    entry.next_attempt_ms = Some(now_ms() + lease_ms);
    match journal.create(entry).await {
        Ok(None) => Ok(Opened::Owned(guard)),
        Ok(Some(earlier)) => {
            // The POS was told this key was refused, and its record is gone
            // (lost with a shard's writes): the refusal is stored again and
            // replayed, not decided afresh.
            if let Some(refusal) = earlier.refusal.clone().filter(|_| {
                matches!(
                    earlier.state,
                    JournalState::Rejected | JournalState::NeedsAttention
                )
            }) {
                tracing::warn!(tenant = %entry.tenant, key = %entry.key, "idempotency record lost: the refusal is replayed from the journal");
                settle_store(guard.complete(refusal.clone()).await);
                m::replay();
                return Ok(Opened::Replay(Reply {
                    status: refusal.status,
                    body: refusal.body,
                    replayed: true,
                }));
            }
            // A re-delivery of a known key: the entry goes back to unknown and
            // due (one more write, on this path only), so a delivery that dies
            // or loses its last write is still finished by the worker.
            // The journal knows this key. Unless it was definitely not posted,
            // the PMS is asked first, whatever the record says (it may be lost).
            if earlier.state != JournalState::Failed {
                guard.require_reconcile();
            }
            carry_over(entry, earlier);
            match journal.put(entry, None).await {
                Ok(_) => Ok(Opened::Owned(guard)),
                Err(e) => {
                    settle_store(guard.release().await);
                    Err(ApiError::StoreUnavailable(e.0))
                }
            }
        }
        Err(e) => {
            settle_store(guard.release().await);
            Err(ApiError::StoreUnavailable(e.0))
        }
    }
}

/// What opening the entry left the delivery with.
enum Opened<'a> {
    /// The key is ours to post.
    Owned(Guard<'a>),
    /// Its answer is already known (a refusal kept in the journal).
    Replay(Reply),
}

/// A final answer: stored for replays, written into the entry with it.
async fn answer(
    guard: Guard<'_>,
    journal: &Journal,
    entry: &mut JournalEntry,
    response: StoredResponse,
    until: Instant,
) -> Reply {
    entry.answered = Some(response.status);
    if (400..500).contains(&response.status) {
        entry.refusal = Some(response.clone());
    }
    settle(
        guard,
        Settle::Complete(response.clone()),
        journal,
        entry,
        None,
        until,
    )
    .await;
    Reply::fresh(response)
}

/// The PMS could not take (all of) the charge now. `queue` tenants: the POS
/// hears "queued" and the worker posts it. `fail` tenants: 500; the key is
/// freed when nothing can be at the PMS, else the worker reconciles.
async fn not_posted(
    guard: Guard<'_>,
    journal: &Journal,
    entry: &mut JournalEntry,
    tenant: &Tenant,
    failure: PostingFailure,
    posted: &[PostedPart],
    budget: &Budget,
) -> Result<Reply, ApiError> {
    let retry_at = failure.next_attempt_ms(0);
    let nothing_out = posted.is_empty() && !guard.must_reconcile();
    let maybe_applied = matches!(&failure, PostingFailure::Pms(e) if e.is_unknown());
    let error = match failure {
        PostingFailure::Deadline => ApiError::DeadlineExceeded,
        PostingFailure::Pms(e) => match e.class {
            ErrorClass::Unavailable => ApiError::PmsUnavailable(e.detail),
            ErrorClass::Unknown => ApiError::PmsOutcomeUnknown(e.detail),
            ErrorClass::Rejected => ApiError::PmsRejected(e.detail),
        },
    };
    if tenant.when_pms_unavailable == WhenPmsUnavailable::Queue {
        tracing::warn!(tenant = %tenant.id, reason = %error, "charge queued: the worker posts it when the PMS takes it");
        entry.state = JournalState::Queued;
        entry.next_attempt_ms = Some(retry_at);
        // The POS is about to hear "queued": the promise must outlive Redis.
        entry.answered = Some(200);
        journal.keep_locally(entry);
        let response = ok_response("queued", &entry.key, posted);
        return Ok(answer(guard, journal, entry, response, budget.deadline).await);
    }
    entry.answered = Some(500);
    if nothing_out && !maybe_applied {
        entry.state = JournalState::Failed;
        settle(
            guard,
            Settle::Release,
            journal,
            entry,
            None,
            budget.deadline,
        )
        .await;
    } else {
        entry.state = JournalState::Unknown;
        entry.next_attempt_ms = Some(retry_at);
        settle(
            guard,
            Settle::MarkUnknown,
            journal,
            entry,
            None,
            budget.deadline,
        )
        .await;
    }
    Err(error)
}

/// A re-delivery of a key the journal knows: its history stays.
fn carry_over(entry: &mut JournalEntry, earlier: JournalEntry) {
    entry.created_ms = earlier.created_ms;
    entry.worker_attempts = earlier.worker_attempts;
    let mut attempts = earlier.attempts;
    attempts.append(&mut entry.attempts);
    entry.attempts = attempts;
    for p in &mut entry.postings {
        if let Some(known) = earlier
            .postings
            .iter()
            .find(|e| e.reservation_id == p.reservation_id && e.payment == p.payment)
        {
            p.pms_reference.clone_from(&known.pms_reference);
        }
    }
}

/// What the worker did with an entry.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WorkOutcome {
    /// Not due any more, or another worker had it.
    Skipped,
    /// A delivery holds the key: looked at again shortly.
    Busy,
    /// The entry moved on (or was rescheduled) to this state.
    Now(JournalState),
}

/// The worker's turn at one due entry, which it holds the lease of (`owner`).
pub async fn work_entry(
    idempotency: &Idempotency,
    journal: &Journal,
    tenant: &Tenant,
    key: &str,
    owner: &str,
    give_up_after: Duration,
    budget: Budget,
) -> Result<WorkOutcome, crate::idempotency::StoreError> {
    let Some(mut entry) = journal.get(&tenant.id, key).await? else {
        return Ok(WorkOutcome::Skipped);
    };
    let now = now_ms();
    if !entry.state.is_open() || entry.next_attempt_ms.is_none_or(|at| at > now) {
        return Ok(WorkOutcome::Skipped);
    }
    if Duration::from_millis(now.saturating_sub(entry.created_ms)) > give_up_after {
        return Ok(give_up(journal, &mut entry, owner).await);
    }
    let Ok(record_key) =
        IdempotencyKey::parse(entry.key.as_bytes()).map(|k| record_key(&tenant.id, &k))
    else {
        return Ok(WorkOutcome::Skipped);
    };
    let guard = match idempotency.take_over(record_key, &entry.fingerprint).await {
        Ok(Some(guard)) => guard,
        Ok(None) => return Ok(busy(journal, &mut entry, owner).await),
        Err(BeginError::Store(e)) => return Err(e),
        Err(e) => {
            tracing::error!(tenant = %entry.tenant, key = %entry.key, error = %e, "journal entry does not match its idempotency record");
            entry.state = JournalState::NeedsAttention;
            entry.next_attempt_ms = None;
            settle_journal(journal.put(&entry, Some(owner)).await, &entry);
            return Ok(WorkOutcome::Now(entry.state));
        }
    };
    // The delivery's last entry write was lost after the POS heard a refusal
    // (the record says so): the charge is settled as refused, not posted now.
    if entry.state == JournalState::Unknown
        && entry.answered.is_none()
        && let Some(heard) = guard
            .heard()
            .filter(|r| (400..500).contains(&r.status))
            .cloned()
    {
        tracing::warn!(tenant = %entry.tenant, key = %entry.key, status = heard.status, "journal entry catches up with the refusal the POS heard");
        entry.state = if guard.posted().is_empty() {
            JournalState::Rejected
        } else {
            JournalState::NeedsAttention
        };
        entry.answered = Some(heard.status);
        entry.refusal = Some(heard.clone());
        entry.next_attempt_ms = None;
        entry.updated_ms = now;
        let until = Instant::now() + WORKER_WRITE_PATIENCE;
        settle(
            guard,
            Settle::Complete(heard),
            journal,
            &entry,
            Some(owner),
            until,
        )
        .await;
        return Ok(WorkOutcome::Now(entry.state));
    }
    // Store and forward: the POS was told it would be posted.
    let turn = Turn {
        may_post: entry.mode == WhenPmsUnavailable::Queue,
        by: Actor::Worker,
        owner,
    };
    let state = finish(guard, journal, tenant, &mut entry, turn, budget).await;
    m::worker_attempt(state.as_str());
    Ok(WorkOutcome::Now(state))
}

/// Open too long (`journal.give_up_after`): a person must settle it.
async fn give_up(journal: &Journal, entry: &mut JournalEntry, owner: &str) -> WorkOutcome {
    tracing::error!(
        tenant = %entry.tenant, key = %entry.key, state = entry.state.as_str(),
        "posting given up after journal.give_up_after: a person must settle it"
    );
    entry.state = JournalState::NeedsAttention;
    entry.next_attempt_ms = None;
    entry.updated_ms = now_ms();
    settle_journal(journal.put(entry, Some(owner)).await, entry);
    m::journal_transition(entry.state.as_str());
    WorkOutcome::Now(entry.state)
}

/// A delivery of this key is in progress: look again in a second.
async fn busy(journal: &Journal, entry: &mut JournalEntry, owner: &str) -> WorkOutcome {
    let now = now_ms();
    entry.next_attempt_ms = Some(now + 1_000);
    entry.record_attempt(Attempt {
        at_ms: now,
        by: Actor::Worker,
        outcome: "busy".into(),
        message: Some("a delivery of this key is in progress".into()),
        latency_ms: 0,
    });
    settle_journal(journal.put(entry, Some(owner)).await, entry);
    WorkOutcome::Busy
}

/// Who works an entry, and whether it may post (a queued charge, or an
/// operator's retry) or only look the charge up (an unknown outcome in `fail`
/// mode: staff were told it failed).
struct Turn<'a> {
    may_post: bool,
    by: Actor,
    /// The journal lease holder; every entry write is fenced on it.
    owner: &'a str,
}

/// Reconciles (and, when allowed, posts) under the key's guard, then settles
/// record and entry together.
async fn finish(
    mut guard: Guard<'_>,
    journal: &Journal,
    tenant: &Tenant,
    entry: &mut JournalEntry,
    turn: Turn<'_>,
    budget: Budget,
) -> JournalState {
    let postings: Vec<Arc<Charge>> = entry
        .charge
        .clone()
        .postings()
        .into_iter()
        .map(Arc::new)
        .collect();
    let pms = tenant.pms.as_ref();
    let run = run_postings(pms, &postings, &mut guard, turn.may_post, turn.by, &budget).await;
    note_run(entry, &run);
    if turn.by == Actor::Worker {
        entry.worker_attempts += 1;
    }
    let fence = Some(turn.owner);
    // The worker answers nobody: it may wait out a failover for its entry write
    // (fenced on its lease, so a late write cannot overwrite a successor's).
    let until = match turn.by {
        Actor::Worker => budget.deadline.max(Instant::now() + WORKER_WRITE_PATIENCE),
        _ => budget.deadline,
    };
    if let Some(failure) = &run.failure {
        let how = still_open(entry, failure, &run.posted);
        settle(guard, how, journal, entry, fence, until).await;
        return entry.state;
    }
    entry.next_attempt_ms = None;
    let all = postings.iter().filter(|p| p.needs_posting()).count();
    let completed = if run.posted.len() == all {
        // `answered` stays what the POS heard; re-deliveries now replay 200.
        entry.state = JournalState::Posted;
        entry.refusal = None;
        tracing::info!(tenant = %entry.tenant, key = %entry.key, by = ?turn.by, "journal entry posted");
        Some(ok_response("posted", &entry.key, &run.posted))
    } else if let Some(error) = refusal(&run.refused, postings.len(), run.posted.len()) {
        // Refused after the POS was told otherwise: only a person can settle it.
        tracing::error!(
            tenant = %entry.tenant, key = %entry.key, reason = %error,
            "charge refused by the PMS after it was accepted: needs attention"
        );
        entry.state = JournalState::NeedsAttention;
        let response = error_response(&error);
        entry.refusal = Some(response.clone());
        Some(response)
    } else {
        None
    };
    if let Some(response) = completed {
        settle(
            guard,
            Settle::Complete(response),
            journal,
            entry,
            fence,
            until,
        )
        .await;
        return entry.state;
    }
    // Looked up, and not (all) at the PMS, in fail mode.
    if run.posted.is_empty() {
        entry.state = JournalState::Failed;
        settle(guard, Settle::Release, journal, entry, fence, until).await;
    } else {
        tracing::error!(tenant = %entry.tenant, key = %entry.key, "receipt half posted: needs attention");
        entry.state = JournalState::NeedsAttention;
        settle(guard, Settle::MarkUnknown, journal, entry, fence, until).await;
    }
    entry.state
}

/// The PMS could not be reached (or its answer was lost) this time. An outcome
/// that may have been applied is `unknown` (reconciled next); an open entry is
/// looked at again after the backoff; a closed one (an operator's retry of a
/// failed entry) stays as it was.
fn still_open(entry: &mut JournalEntry, failure: &PostingFailure, posted: &[PostedPart]) -> Settle {
    tracing::info!(tenant = %entry.tenant, key = %entry.key, outcome = failure.outcome(), "journal entry not settled yet");
    // A charge the POS heard "queued" for stays queued: the worker looks it up
    // and posts it. In fail mode a possibly applied charge is only reconciled.
    if entry.mode == WhenPmsUnavailable::Fail
        && matches!(failure, PostingFailure::Pms(e) if e.is_unknown())
    {
        entry.state = JournalState::Unknown;
    }
    if !entry.state.is_open() {
        entry.next_attempt_ms = None;
        return if posted.is_empty() {
            Settle::Release
        } else {
            Settle::MarkUnknown
        };
    }
    entry.next_attempt_ms = Some(failure.next_attempt_ms(entry.worker_attempts));
    if entry.state == JournalState::Queued {
        Settle::Complete(ok_response("queued", &entry.key, posted))
    } else {
        Settle::MarkUnknown
    }
}

/// Why an operator action could not be done.
#[derive(Debug, thiserror::Error)]
pub enum OperatorError {
    #[error("no such entry")]
    NotFound,
    #[error("the entry is being worked on; try again in a moment")]
    Busy,
    #[error("an entry that is {0} cannot be {1}")]
    WrongState(&'static str, &'static str),
    #[error(transparent)]
    Store(#[from] crate::idempotency::StoreError),
}

/// An operator's retry: reconcile, then post now with the same reference
/// (a `failed`, `queued`, `unknown` or `needs_attention` entry).
pub async fn operator_retry(
    idempotency: &Idempotency,
    journal: &Journal,
    tenant: &Tenant,
    key: &str,
    budget: Budget,
) -> Result<JournalEntry, OperatorError> {
    let owner = format!("operator-{}", uuid::Uuid::new_v4().simple());
    let mut entry = leased(journal, tenant, key, &owner, idempotency.lease_ms()).await?;
    let result = async {
        if !matches!(
            entry.state,
            JournalState::Failed
                | JournalState::Queued
                | JournalState::Unknown
                | JournalState::NeedsAttention
        ) {
            return Err(OperatorError::WrongState(entry.state.as_str(), "retried"));
        }
        let record_key = IdempotencyKey::parse(entry.key.as_bytes())
            .map(|k| record_key(&tenant.id, &k))
            .map_err(|_| OperatorError::NotFound)?;
        let guard = match idempotency.take_over(record_key, &entry.fingerprint).await {
            Ok(Some(guard)) => guard,
            Ok(None) => return Err(OperatorError::Busy),
            Err(BeginError::Store(e)) => return Err(e.into()),
            Err(_) => return Err(OperatorError::WrongState("inconsistent", "retried")),
        };
        let turn = Turn {
            may_post: true,
            by: Actor::Operator,
            owner: &owner,
        };
        finish(guard, journal, tenant, &mut entry, turn, budget).await;
        Ok(entry.clone())
    }
    .await;
    let _ = journal.release(&tenant.id, key, &owner).await;
    result
}

/// Closes an entry handled outside chargebridge, with the operator's note.
/// Never posts.
pub async fn operator_resolve(
    journal: &Journal,
    tenant: &Tenant,
    key: &str,
    note: &str,
    lease_ms: u64,
) -> Result<JournalEntry, OperatorError> {
    let owner = format!("operator-{}", uuid::Uuid::new_v4().simple());
    let mut entry = leased(journal, tenant, key, &owner, lease_ms).await?;
    let result = async {
        if matches!(
            entry.state,
            JournalState::Posted | JournalState::Acknowledged | JournalState::Resolved
        ) {
            return Err(OperatorError::WrongState(entry.state.as_str(), "resolved"));
        }
        entry.state = JournalState::Resolved;
        entry.note = Some(note.to_string());
        entry.next_attempt_ms = None;
        entry.updated_ms = now_ms();
        entry.record_attempt(Attempt {
            at_ms: entry.updated_ms,
            by: Actor::Operator,
            outcome: "resolved".into(),
            message: Some(note.to_string()),
            latency_ms: 0,
        });
        if !journal.put(&entry, Some(&owner)).await? {
            return Err(OperatorError::Busy);
        }
        m::journal_transition(entry.state.as_str());
        Ok(entry.clone())
    }
    .await;
    let _ = journal.release(&tenant.id, key, &owner).await;
    result
}

/// The entry, under a lease for `owner` (so no worker works it meanwhile).
async fn leased(
    journal: &Journal,
    tenant: &Tenant,
    key: &str,
    owner: &str,
    lease_ms: u64,
) -> Result<JournalEntry, OperatorError> {
    if journal.get(&tenant.id, key).await?.is_none() {
        return Err(OperatorError::NotFound);
    }
    if !journal
        .lease(&tenant.id, key, owner, Duration::from_millis(lease_ms))
        .await?
    {
        return Err(OperatorError::Busy);
    }
    match journal.get(&tenant.id, key).await? {
        Some(entry) => Ok(entry),
        None => {
            let _ = journal.release(&tenant.id, key, owner).await;
            Err(OperatorError::NotFound)
        }
    }
}
