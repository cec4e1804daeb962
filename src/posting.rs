//! Where a validated charge goes: through the idempotency layer to the tenant's
//! PMS, exactly once, inside the request deadline. Knows nothing of HTTP.

use std::sync::Arc;
use std::time::Duration;

use serde::Serialize;
use tokio::time::Instant;

use crate::domain::{Charge, IdempotencyKey, Tenant};
use crate::error::ApiError;
use crate::idempotency::{Begin, BeginError, Guard, Idempotency, StoredResponse, record_key};
use crate::metrics as m;
use crate::pms::{PmsError, PostingReceipt};

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
}

fn success_body(charge: &Charge, receipt: Option<&PostingReceipt>) -> String {
    let body = Posted {
        // A receipt with no room-charge payment is acknowledged, not posted.
        status: if receipt.is_some() {
            "posted"
        } else {
            "acknowledged"
        },
        pms_reference: receipt.map(|r| r.pms_reference.as_str()),
        idempotency_key: &charge.idempotency_key,
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
        .begin(
            record_key(&tenant.id, &key),
            &fp,
            budget.pms_deadline(),
        )
        .await
        .map_err(|e| match e {
            BeginError::Reused => ApiError::IdempotencyKeyReused,
            BeginError::InProgress => {
                m::in_flight_conflict();
                ApiError::InProgress
            }
            BeginError::Store(e) => ApiError::StoreUnavailable(e.0),
        })?;
    let guard = match begin {
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

    if !charge.needs_posting() {
        return settle_success(guard, &charge, None).await;
    }

    let pms = tenant.pms.as_ref();
    let charge = Arc::new(charge);
    if guard.must_reconcile() {
        let started = std::time::Instant::now();
        let found = pms.reconcile(&charge, budget.pms_deadline()).await;
        m::pms_call(
            pms.kind(),
            "reconcile",
            started.elapsed(),
            found.as_ref().err(),
        );
        match found {
            Ok(Some(receipt)) => {
                tracing::info!(reference = %charge.reference, "reconciled: the PMS already has this charge");
                return settle_success(guard, &charge, Some(&receipt)).await;
            }
            Ok(None) => {}
            Err(e) => {
                tracing::warn!(error = %e, reference = %charge.reference, "reconciliation failed; outcome still unknown");
                settle_store(guard.mark_unknown().await);
                return Err(ApiError::PmsOutcomeUnknown(e.to_string()));
            }
        }
    }

    let pms_deadline = budget.pms_deadline();
    if Instant::now() >= pms_deadline {
        settle_store(guard.release().await);
        return Err(ApiError::DeadlineExceeded);
    }
    let started = std::time::Instant::now();
    // The adapter owns its deadline; this outer bound only guards against an
    // adapter that ignores it. Cut off after sending, the outcome is unknown.
    let outcome =
        match tokio::time::timeout_at(budget.deadline, pms.post(&charge, pms_deadline)).await {
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
    match outcome {
        Ok(receipt) => settle_success(guard, &charge, Some(&receipt)).await,
        Err(PmsError::Rejected(reason)) => {
            let error = ApiError::PmsRejected(reason);
            let response = StoredResponse {
                status: 422,
                body: String::from_utf8_lossy(&error.body()).into_owned(),
            };
            tracing::info!(reason = %error, "PMS rejected the charge");
            settle_store(guard.complete(response.clone()).await);
            Ok(Reply::fresh(response))
        }
        Err(PmsError::Unavailable(detail)) => {
            settle_store(guard.release().await);
            Err(ApiError::PmsUnavailable(detail))
        }
        Err(PmsError::Unknown(detail)) => {
            settle_store(guard.mark_unknown().await);
            Err(ApiError::PmsOutcomeUnknown(detail))
        }
    }
}

async fn settle_success(
    guard: Guard<'_>,
    charge: &Charge,
    receipt: Option<&PostingReceipt>,
) -> Result<Reply, ApiError> {
    let response = StoredResponse {
        status: 200,
        body: success_body(charge, receipt),
    };
    // The PMS has the charge whatever happens to the record now, so the answer is
    // 200 either way; a record we failed to write is found again by reconciliation.
    settle_store(guard.complete(response.clone()).await);
    Ok(Reply::fresh(response))
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
