//! Operations endpoints: liveness, readiness, metrics.

use std::sync::atomic::Ordering;
use std::time::Duration;

use actix_web::{HttpResponse, web};
use serde::Serialize;

use crate::startup::AppState;

/// `GET /healthz`: the process is up and serving.
pub async fn healthz() -> HttpResponse {
    HttpResponse::Ok().json(serde_json::json!({"status": "ok"}))
}

#[derive(Serialize)]
struct Check {
    name: String,
    ok: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    error: Option<String>,
}

/// Bound on each readiness probe, so a hung dependency reads as not ready.
const PROBE_TIMEOUT: Duration = Duration::from_secs(2);

/// `GET /readyz`: the store answers, every PMS's health check passes, and the
/// process is not draining. 503 with the failing parts otherwise.
pub async fn readyz(state: web::Data<AppState>) -> HttpResponse {
    // Every probe runs at once, each within PROBE_TIMEOUT: the answer takes as
    // long as the slowest part, not the sum, however many PMSs are configured.
    let store = async {
        let store = tokio::time::timeout(PROBE_TIMEOUT, state.idempotency.store().ping()).await;
        Check {
            name: format!("store:{}", state.idempotency.store().kind()),
            ok: matches!(store, Ok(Ok(()))),
            error: match store {
                Ok(Ok(())) => None,
                Ok(Err(e)) => Some(e.to_string()),
                Err(_) => Some("timed out".into()),
            },
        }
    };
    let pmss = futures_util::future::join_all(state.pms.iter().map(|(name, pms)| async move {
        let health = tokio::time::timeout(PROBE_TIMEOUT, pms.health()).await;
        Check {
            name: format!("pms:{name}"),
            ok: matches!(health, Ok(Ok(()))),
            error: match health {
                Ok(Ok(())) => None,
                Ok(Err(e)) => Some(e.to_string()),
                Err(_) => Some("timed out".into()),
            },
        }
    }));
    let (store, pmss) = futures_util::future::join(store, pmss).await;
    let mut checks = vec![store];
    let journal = state.journal.capacity_check();
    checks.push(Check {
        name: "journal".into(),
        ok: journal.is_ok(),
        error: journal.err(),
    });
    checks.extend(pmss);
    let draining = state.draining.load(Ordering::SeqCst);
    if draining {
        checks.push(Check {
            name: "draining".into(),
            ok: false,
            error: Some("shutting down".into()),
        });
    }
    let ready = checks.iter().all(|c| c.ok);
    let body = serde_json::json!({
        "status": if ready { "ready" } else { "not_ready" },
        "checks": checks,
    });
    if ready {
        HttpResponse::Ok().json(body)
    } else {
        HttpResponse::ServiceUnavailable().json(body)
    }
}

/// `GET /metrics`: Prometheus text format.
pub async fn metrics() -> HttpResponse {
    HttpResponse::Ok()
        .content_type("text/plain; version=0.0.4")
        .body(crate::metrics::render())
}
