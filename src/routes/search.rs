//! `GET /lightspeed/search`: checked-in guests whose name or room matches `term`.
//!
//! Answered in Lightspeed's envelope, always HTTP 200 (its documented convention):
//! `{"success":true,"errorMessage":"","reservations":[…]}`, or on failure
//! `"success":false` with a staff-readable `errorMessage`, no reservations and a
//! machine `code`. Metrics and logs keep the real outcome.

use actix_web::{HttpResponse, web};
use rust_decimal::Decimal;
use serde::{Deserialize, Serialize, Serializer};
use tokio::time::Instant;

use crate::error::{ApiError, fit_message};
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

/// One reservation as Lightspeed reads it.
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct Reservation<'a> {
    reservation_id: &'a str,
    room_id: &'a str,
    /// Falls back to the room id: the POS shows it, and an empty one helps no one.
    room_description: &'a str,
    client_name: &'a str,
    /// A JSON number, exact (Lightspeed reads a BigDecimal).
    #[serde(
        skip_serializing_if = "Option::is_none",
        serialize_with = "decimal_as_number"
    )]
    credit_limit: Option<Decimal>,
    blocked: bool,
}

impl<'a> From<&'a GuestStay> for Reservation<'a> {
    fn from(g: &'a GuestStay) -> Self {
        Reservation {
            reservation_id: &g.reservation_id,
            room_id: &g.room_id,
            room_description: if g.room_description.trim().is_empty() {
                &g.room_id
            } else {
                &g.room_description
            },
            client_name: &g.client_name,
            credit_limit: g.credit_limit,
            blocked: g.blocked,
        }
    }
}

/// Writes the decimal's digits as a JSON number (serde_json keeps them exactly
/// with `arbitrary_precision`); never through a binary float.
fn decimal_as_number<S: Serializer>(value: &Option<Decimal>, s: S) -> Result<S::Ok, S::Error> {
    match value {
        Some(d) => match d.to_string().parse::<serde_json::Number>() {
            Ok(n) => s.serialize_some(&n),
            Err(_) => s.serialize_none(),
        },
        None => s.serialize_none(),
    }
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct Envelope<'a> {
    success: bool,
    error_message: String,
    reservations: Vec<Reservation<'a>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    code: Option<&'static str>,
}

/// A search that could not be answered: what the POS shows, and the code.
struct SearchFailure {
    code: &'static str,
    message: String,
}

impl From<ApiError> for SearchFailure {
    fn from(e: ApiError) -> Self {
        let (code, message) = match &e {
            ApiError::Unauthorized => ("unauthorized", e.customer_message()),
            ApiError::EmptySearchTerm => ("invalid_term", e.customer_message()),
            ApiError::InvalidPayload { .. } => {
                ("invalid_term", fit_message("Search term too long"))
            }
            ApiError::DeadlineExceeded => (
                "deadline_exceeded",
                fit_message("Hotel system too slow to answer"),
            ),
            _ => ("pms_unavailable", fit_message("Hotel system unavailable")),
        };
        SearchFailure { code, message }
    }
}

/// Longest search term passed on to a PMS.
const MAX_TERM: usize = 100;

pub async fn search(query: web::Query<SearchQuery>, state: web::Data<AppState>) -> HttpResponse {
    let started = std::time::Instant::now();
    let result = run(query.into_inner(), &state).await;
    let (body, code) = match &result {
        Ok(guests) => (
            Envelope {
                success: true,
                error_message: String::new(),
                reservations: guests.iter().map(Reservation::from).collect(),
                code: None,
            },
            "ok",
        ),
        Err(failure) => (
            Envelope {
                success: false,
                error_message: failure.message.clone(),
                reservations: Vec::new(),
                code: Some(failure.code),
            },
            failure.code,
        ),
    };
    m::request("search", 200, code, started.elapsed());
    HttpResponse::Ok().json(body)
}

async fn run(
    query: SearchQuery,
    state: &AppState,
) -> Result<std::sync::Arc<Vec<GuestStay>>, SearchFailure> {
    let tenant = state.tenants.authenticate(
        query.api_key.as_deref().unwrap_or(""),
        query.business_external_reference.as_deref(),
    )?;
    let term = query.term.as_deref().unwrap_or("").trim();
    if term.is_empty() {
        return Err(ApiError::EmptySearchTerm.into());
    }
    if term.chars().count() > MAX_TERM {
        return Err(ApiError::invalid("term", "too long").into());
    }
    let deadline = Instant::now() + state.server.request_deadline;
    let pms_deadline = deadline
        .checked_sub(state.server.pms_safety_margin)
        .unwrap_or(deadline);
    state
        .search
        .search(&tenant, term, pms_deadline)
        .await
        .map_err(|e| {
            tracing::warn!(error = %e, tenant = %tenant.id, "guest search failed");
            if e.is_out_of_time() {
                ApiError::DeadlineExceeded.into()
            } else {
                ApiError::PmsUnavailable(e.to_string()).into()
            }
        })
}
