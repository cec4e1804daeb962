//! Where a validated charge goes: through the idempotency layer to the tenant's
//! PMS, exactly once, inside the request deadline. Knows nothing of HTTP.
//!
//! A receipt charged to several reservations (MULTI_PAYMENTS) is one posting per
//! reservation ([`Charge::postings`]). They are posted in turn; each one on the
//! folio is written into the idempotency record before the next, so a delivery
//! that fails or dies half-way leaves only the rest to be posted later.

use std::sync::Arc;
use std::time::Duration;

use serde::Serialize;
use tokio::time::Instant;

use crate::domain::{Charge, IdempotencyKey, Tenant};
use crate::error::ApiError;
use crate::idempotency::{
    Begin, BeginError, Guard, Idempotency, PostedPart, StoredResponse, record_key,
};
use crate::metrics as m;
use crate::pms::{PmsAdapter, PmsError, PostingReceipt};

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
struct Posted<'a> {
    status: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    pms_reference: Option<&'a str>,
    idempotency_key: &'a str,
    /// Only for a receipt charged to several reservations.
    #[serde(skip_serializing_if = "<[_]>::is_empty")]
    postings: &'a [PostedPart],
}

fn success_body(idempotency_key: &str, posted: &[PostedPart]) -> String {
    let body = Posted {
        // A receipt with no room-charge payment (MIRRORING) is acknowledged.
        status: if posted.is_empty() {
            "acknowledged"
        } else {
            "posted"
        },
        pms_reference: posted.first().map(|p| p.pms_reference.as_str()),
        idempotency_key,
        postings: if posted.len() > 1 { posted } else { &[] },
    };
    serde_json::to_string(&body).unwrap_or_default()
}

pub struct Budget {
    /// The answer must leave by then.
    pub deadline: Instant,
    /// Kept back from PMS calls so the answer (and the record) still fit.
    pub safety_margin: Duration,
}

impl Budget {
    fn pms_deadline(&self) -> Instant {
        self.deadline
            .checked_sub(self.safety_margin)
            .unwrap_or(self.deadline)
    }
}

/// Why one posting is not (known to be) on the folio.
enum PostingFailure {
    Pms(PmsError),
    /// No time left to call the PMS: nothing was sent.
    Deadline,
}

/// Runs one delivery of `charge` to completion. Runs in its own task, so a client
/// that hangs up cannot cut a posting in half.
pub async fn deliver(
    idempotency: &Idempotency,
    tenant: Arc<Tenant>,
    charge: Charge,
    key: IdempotencyKey,
    fp: String,
    budget: Budget,
) -> Result<Reply, ApiError> {
    let begin = idempotency
        .begin(record_key(&tenant.id, &key), &fp, budget.pms_deadline())
        .await
        .map_err(|e| match e {
            BeginError::Reused => ApiError::IdempotencyKeyReused,
            BeginError::InProgress => {
                m::in_flight_conflict();
                ApiError::InProgress
            }
            BeginError::Store(e) => ApiError::StoreUnavailable(e.0),
        })?;
    let mut guard = match begin {
        Begin::Replay(response) => {
            m::replay();
            return Ok(Reply {
                status: response.status,
                body: response.body,
                replayed: true,
            });
        }
        Begin::Owned(guard) => guard,
    };

    let key_text = charge.idempotency_key.clone();
    let postings: Vec<Arc<Charge>> = charge.postings().into_iter().map(Arc::new).collect();
    let several = postings.len() > 1;
    let pms = tenant.pms.as_ref();
    let mut posted: Vec<PostedPart> = guard.posted().to_vec();
    let mut refused: Vec<(String, String)> = Vec::new();
    for posting in postings.iter().filter(|p| p.needs_posting()) {
        let Some(room) = posting.room() else { continue };
        if posted
            .iter()
            .any(|p| p.reservation_id == room.reservation_id)
        {
            continue;
        }
        match post_once(pms, posting, guard.must_reconcile(), &budget).await {
            Ok(receipt) => {
                posted.push(PostedPart {
                    reservation_id: room.reservation_id.clone(),
                    pms_reference: receipt.pms_reference,
                });
                if several {
                    settle_store(guard.record_progress(posted.clone()).await);
                }
            }
            Err(PostingFailure::Pms(PmsError::Rejected(reason))) => {
                tracing::info!(reservation = %room.reservation_id, %reason, "PMS rejected the charge");
                refused.push((room.reservation_id.clone(), reason));
            }
            Err(failure) => return settle_failure(guard, failure, &posted).await,
        }
    }

    if let Some(error) = refusal(&refused, postings.len(), posted.len()) {
        if !posted.is_empty() {
            tracing::error!(
                refused = refused.len(),
                posted = posted.len(),
                "receipt posted in part: a person must settle the refused reservations"
            );
        }
        let response = StoredResponse {
            status: 422,
            body: String::from_utf8_lossy(&error.body()).into_owned(),
        };
        settle_store(guard.complete(response.clone()).await);
        return Ok(Reply::fresh(response));
    }
    let response = StoredResponse {
        status: 200,
        body: success_body(&key_text, &posted),
    };
    // The PMS has the charge whatever happens to the record now, so the answer is
    // 200 either way; a record we failed to write is found again by reconciliation.
    settle_store(guard.complete(response.clone()).await);
    Ok(Reply::fresh(response))
}

/// The 422 for refused postings: the PMS's own reason for a receipt with one
/// reservation; which reservation was refused (and that the rest is on the
/// folio) for several.
fn refusal(refused: &[(String, String)], postings: usize, posted: usize) -> Option<ApiError> {
    let (reservation, reason) = refused.first()?;
    if postings <= 1 {
        return Some(ApiError::PmsRejected(reason.clone()));
    }
    let others = if posted > 0 { "; others posted" } else { "" };
    Some(ApiError::PmsRejected(format!(
        "Res. {reservation} refused{others}: {reason}"
    )))
}

/// Posts one charge, asking the PMS first when an earlier attempt may have
/// reached it.
async fn post_once(
    pms: &dyn PmsAdapter,
    charge: &Arc<Charge>,
    reconcile_first: bool,
    budget: &Budget,
) -> Result<PostingReceipt, PostingFailure> {
    if reconcile_first {
        let started = std::time::Instant::now();
        let found = pms.reconcile(charge, budget.pms_deadline()).await;
        m::pms_call(
            pms.kind(),
            "reconcile",
            started.elapsed(),
            found.as_ref().err(),
        );
        match found {
            Ok(Some(receipt)) => {
                tracing::info!(reference = %charge.reference, "reconciled: the PMS already has this charge");
                return Ok(receipt);
            }
            Ok(None) => {}
            Err(e) => {
                tracing::warn!(error = %e, reference = %charge.reference, "reconciliation failed; outcome still unknown");
                return Err(PostingFailure::Pms(PmsError::Unknown(e.to_string())));
            }
        }
    }
    let pms_deadline = budget.pms_deadline();
    if Instant::now() >= pms_deadline {
        return Err(PostingFailure::Deadline);
    }
    let started = std::time::Instant::now();
    // The adapter owns its deadline; this outer bound only guards against an
    // adapter that ignores it. Cut off after sending, the outcome is unknown.
    let outcome =
        match tokio::time::timeout_at(budget.deadline, pms.post(charge, pms_deadline)).await {
            Ok(outcome) => outcome,
            Err(_) => Err(PmsError::Unknown(
                "adapter overran the request deadline".into(),
            )),
        };
    m::pms_call(
        pms.kind(),
        "post",
        started.elapsed(),
        outcome.as_ref().err(),
    );
    outcome.map_err(PostingFailure::Pms)
}

/// A posting that is not known to be on the folio. The key is released only
/// when nothing of this receipt can be at the PMS; otherwise the record says
/// "unknown" (with what is posted), and the next delivery reconciles first.
async fn settle_failure(
    guard: Guard<'_>,
    failure: PostingFailure,
    posted: &[PostedPart],
) -> Result<Reply, ApiError> {
    let nothing_out = posted.is_empty() && !guard.must_reconcile();
    let error = match failure {
        PostingFailure::Deadline => ApiError::DeadlineExceeded,
        PostingFailure::Pms(PmsError::Unavailable(detail)) => ApiError::PmsUnavailable(detail),
        PostingFailure::Pms(PmsError::Unknown(detail)) => {
            settle_store(guard.mark_unknown().await);
            return Err(ApiError::PmsOutcomeUnknown(detail));
        }
        PostingFailure::Pms(PmsError::Rejected(reason)) => ApiError::PmsRejected(reason),
    };
    if nothing_out {
        settle_store(guard.release().await);
    } else {
        settle_store(guard.mark_unknown().await);
    }
    Err(error)
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
