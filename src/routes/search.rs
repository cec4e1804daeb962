//! `GET /lightspeed/search`: checked-in guests whose name or room matches `term`.

use actix_web::{HttpResponse, web};
use serde::{Deserialize, Serialize};
use tokio::time::Instant;

use crate::error::ApiError;
use crate::metrics as m;
use crate::pms::GuestStay;
use crate::startup::AppState;

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SearchQuery {
    #[serde(default)]
    term: Option<String>,
    #[serde(default)]
    business_external_reference: Option<String>,
    #[serde(default)]
    api_key: Option<String>,
}

#[derive(Serialize)]
struct SearchAnswer {
    reservations: Vec<GuestStay>,
}

/// Longest search term passed on to a PMS.
const MAX_TERM: usize = 100;

pub async fn search(
    query: web::Query<SearchQuery>,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    let started = std::time::Instant::now();
    let result = run(query.into_inner(), &state).await;
    let (status, code) = match &result {
        Ok(_) => (200, "ok"),
        Err(e) => {
            use actix_web::ResponseError;
            (e.status_code().as_u16(), e.code())
        }
    };
    m::request("search", status, code, started.elapsed());
    result
}

async fn run(query: SearchQuery, state: &AppState) -> Result<HttpResponse, ApiError> {
    let tenant = state.tenants.authenticate(
        query.api_key.as_deref().unwrap_or(""),
        query.business_external_reference.as_deref(),
    )?;
    let term = query.term.as_deref().unwrap_or("").trim();
    if term.is_empty() {
        return Err(ApiError::EmptySearchTerm);
    }
    if term.chars().count() > MAX_TERM {
        return Err(ApiError::invalid("term", "too long"));
    }
    let deadline = Instant::now() + state.server.request_deadline;
    let pms_deadline = deadline
        .checked_sub(state.server.pms_safety_margin)
        .unwrap_or(deadline);
    let pms = tenant.pms.as_ref();
    let started = std::time::Instant::now();
    let found = match tokio::time::timeout_at(deadline, pms.search(term, pms_deadline)).await {
        Ok(found) => found,
        Err(_) => Err(crate::pms::PmsError::Unavailable(
            "search overran the deadline".into(),
        )),
    };
    m::pms_call(
        pms.kind(),
        "search",
        started.elapsed(),
        found.as_ref().err(),
    );
    let reservations = found.map_err(|e| {
        tracing::warn!(error = %e, tenant = %tenant.id, "guest search failed");
        ApiError::PmsUnavailable(e.to_string())
    })?;
    Ok(HttpResponse::Ok().json(SearchAnswer { reservations }))
}
