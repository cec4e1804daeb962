//! The operator surface over the journal: `/admin/v1` (JSON API) and `/admin/`
//! (the console page). Off unless an admin token is configured; every request
//! needs `Authorization: Bearer <token>`, compared as SHA-256 digests in
//! constant time. A refusal says nothing but `unauthorized`. Every action is
//! logged with who did it and what.

pub mod report;

use actix_web::http::header;
use actix_web::{HttpRequest, HttpResponse, web};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

use crate::domain::Tenant;
use crate::journal::{JournalEntry, JournalState, Query};
use crate::posting::{Budget, OperatorError, operator_resolve, operator_retry};
use crate::startup::AppState;

/// Who acts, in the logs: the one configured token.
const ACTOR: &str = "admin-token";
/// Most entries in one page.
const MAX_LIMIT: usize = 500;
/// Longest resolve note kept.
const MAX_NOTE: usize = 1_000;

/// The configured token's digest; `None`: the operator surface is off.
pub struct AdminAccess {
    digest: Option<[u8; 32]>,
}

impl AdminAccess {
    pub fn new(token: Option<&str>) -> Self {
        AdminAccess {
            digest: token.map(|t| Sha256::digest(t.as_bytes()).into()),
        }
    }

    pub fn enabled(&self) -> bool {
        self.digest.is_some()
    }

    fn allows(&self, req: &HttpRequest) -> bool {
        let Some(expected) = &self.digest else {
            return false;
        };
        let offered = req
            .headers()
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.strip_prefix("Bearer "))
            .unwrap_or("");
        let offered: [u8; 32] = Sha256::digest(offered.trim().as_bytes()).into();
        bool::from(expected.ct_eq(&offered))
    }
}

/// The admin routes (registered always; they answer 404 while admin is off).
pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.service(
        web::scope("/admin")
            // A resolve note is short; a larger body is refused (413) unread.
            .app_data(web::PayloadConfig::new(64 * 1024))
            .route("", web::get().to(console))
            .route("/", web::get().to(console))
            .service(
                web::scope("/v1")
                    .route("/postings", web::get().to(list))
                    .route("/postings/{tenant}/{key}", web::get().to(show))
                    .route("/postings/{tenant}/{key}/retry", web::post().to(retry))
                    .route("/postings/{tenant}/{key}/resolve", web::post().to(resolve))
                    .route("/reports/daily", web::get().to(report::daily))
                    .default_service(web::to(not_found)),
            ),
    );
}

/// A JSON error of the admin API: `{"error": code, "message": text}`.
pub(crate) fn error(status: u16, code: &str, message: &str) -> HttpResponse {
    let status = actix_web::http::StatusCode::from_u16(status)
        .unwrap_or(actix_web::http::StatusCode::INTERNAL_SERVER_ERROR);
    HttpResponse::build(status).json(serde_json::json!({"error": code, "message": message}))
}

async fn not_found() -> HttpResponse {
    error(404, "not_found", "no such admin endpoint")
}

/// `Ok` when the request may use the admin API; the answer to send otherwise.
// The refusal is the whole response, built once per refused request.
#[allow(clippy::result_large_err)]
pub(crate) fn gate(req: &HttpRequest, state: &AppState) -> Result<(), HttpResponse> {
    if !state.admin.enabled() {
        return Err(error(
            404,
            "not_found",
            "the admin API is off (no [admin] token)",
        ));
    }
    if state.admin.allows(req) {
        Ok(())
    } else {
        Err(HttpResponse::Unauthorized()
            .insert_header((header::WWW_AUTHENTICATE, "Bearer"))
            .json(serde_json::json!({"error": "unauthorized"})))
    }
}

#[allow(clippy::result_large_err)]
pub(crate) fn tenant<'a>(
    state: &'a AppState,
    id: &str,
) -> Result<&'a std::sync::Arc<Tenant>, HttpResponse> {
    state
        .tenants
        .by_id(id)
        .ok_or_else(|| error(404, "unknown_tenant", "no tenant with this id"))
}

const CONSOLE: &str = include_str!("console.html");

/// The console: one page over this API (no external assets). The page itself
/// holds no data; it asks for the token and calls the API.
async fn console(state: web::Data<AppState>) -> HttpResponse {
    if !state.admin.enabled() {
        return error(
            404,
            "not_found",
            "the admin console is off (no [admin] token)",
        );
    }
    HttpResponse::Ok()
        .content_type("text/html; charset=utf-8")
        .insert_header(("Content-Security-Policy", "default-src 'self'; script-src 'unsafe-inline'; style-src 'unsafe-inline'; img-src data:"))
        .insert_header(("X-Frame-Options", "DENY"))
        .insert_header(("Cache-Control", "no-store"))
        .body(CONSOLE)
}

#[derive(Deserialize)]
pub struct ListQuery {
    tenant: Option<String>,
    state: Option<String>,
    /// RFC 3339 or a date (`2026-12-02`, UTC midnight).
    since: Option<String>,
    until: Option<String>,
    limit: Option<usize>,
    cursor: Option<String>,
}

/// One line of a list: enough to see what needs a person.
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct Summary<'a> {
    tenant: &'a str,
    key: &'a str,
    state: &'static str,
    created_at: String,
    updated_at: String,
    currency: &'a str,
    /// The room-charge total, as a decimal string.
    amount: String,
    reservations: Vec<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    receipt_id: Option<&'a str>,
    refund: bool,
    attempts: usize,
    #[serde(skip_serializing_if = "Option::is_none")]
    last_outcome: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    last_message: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    answered: Option<u16>,
    #[serde(skip_serializing_if = "Option::is_none")]
    note: Option<&'a str>,
}

pub(crate) fn rfc3339(ms: u64) -> String {
    chrono::DateTime::from_timestamp_millis(i64::try_from(ms).unwrap_or(i64::MAX))
        .map(|t| t.to_rfc3339_opts(chrono::SecondsFormat::Millis, true))
        .unwrap_or_default()
}

/// What the receipt charged (its payments settling revenue on a house
/// account are not charges: [`payments_of`]).
pub(crate) fn total_of(entry: &JournalEntry) -> rust_decimal::Decimal {
    entry
        .postings
        .iter()
        .filter(|p| p.payment.is_none())
        .map(|p| p.amount)
        .sum()
}

/// The payments posted against house accounts for this entry.
pub(crate) fn payments_of(entry: &JournalEntry) -> rust_decimal::Decimal {
    entry
        .postings
        .iter()
        .filter(|p| p.payment.is_some() && p.pms_reference.is_some())
        .map(|p| p.amount)
        .sum()
}

fn summary(e: &JournalEntry) -> Summary<'_> {
    let last = e.attempts.last();
    Summary {
        tenant: &e.tenant,
        key: &e.key,
        state: e.state.as_str(),
        created_at: rfc3339(e.created_ms),
        updated_at: rfc3339(e.updated_ms),
        currency: &e.charge.currency,
        amount: total_of(e).to_string(),
        reservations: e
            .postings
            .iter()
            .filter(|p| p.payment.is_none())
            .map(|p| p.reservation_id.as_str())
            .collect(),
        receipt_id: e.charge.receipt.receipt_id.as_deref(),
        refund: e.charge.refund,
        attempts: e.attempts.len(),
        last_outcome: last.map(|a| a.outcome.as_str()),
        last_message: last.and_then(|a| a.message.as_deref()),
        answered: e.answered,
        note: e.note.as_deref(),
    }
}

pub(crate) fn parse_state(text: &str) -> Option<JournalState> {
    JournalState::ALL.into_iter().find(|s| s.as_str() == text)
}

/// RFC 3339, or a plain date read as UTC midnight.
fn parse_time(text: &str) -> Option<u64> {
    let at = chrono::DateTime::parse_from_rfc3339(text)
        .map(|t| t.with_timezone(&chrono::Utc))
        .ok()
        .or_else(|| {
            chrono::NaiveDate::parse_from_str(text, "%Y-%m-%d")
                .ok()
                .and_then(|d| d.and_hms_opt(0, 0, 0))
                .map(|t| t.and_utc())
        })?;
    u64::try_from(at.timestamp_millis()).ok()
}

/// `GET /admin/v1/postings`: entries newest first, one tenant or all.
async fn list(
    req: HttpRequest,
    q: web::Query<ListQuery>,
    state: web::Data<AppState>,
) -> HttpResponse {
    if let Err(refused) = gate(&req, &state) {
        return refused;
    }
    let q = q.into_inner();
    let state_filter = match q.state.as_deref() {
        None | Some("") => None,
        Some(s) => match parse_state(s) {
            Some(s) => Some(s),
            None => return error(400, "invalid_query", "state is not a journal state"),
        },
    };
    let time = |t: &Option<String>| match t.as_deref() {
        None | Some("") => Ok(None),
        Some(text) => parse_time(text).map(Some).ok_or(()),
    };
    let (Ok(since_ms), Ok(until_ms)) = (time(&q.since), time(&q.until)) else {
        return error(400, "invalid_query", "since/until: RFC 3339 or YYYY-MM-DD");
    };
    let limit = q.limit.unwrap_or(50).clamp(1, MAX_LIMIT);
    let tenants: Vec<&std::sync::Arc<Tenant>> = match q.tenant.as_deref() {
        Some(id) if !id.is_empty() => match tenant(&state, id) {
            Ok(t) => vec![t],
            Err(refused) => return refused,
        },
        _ if q.cursor.is_some() => {
            return error(400, "invalid_query", "a cursor needs its tenant");
        }
        _ => state.tenants.iter().collect(),
    };
    let query = Query {
        state: state_filter,
        since_ms,
        until_ms,
        limit,
        cursor: q.cursor.clone(),
    };
    let mut entries = Vec::new();
    let mut next_cursor = None;
    for t in &tenants {
        match state.journal.list(&t.id, &query).await {
            Ok(page) => {
                entries.extend(page.entries);
                if tenants.len() == 1 {
                    next_cursor = page.next_cursor;
                }
            }
            Err(e) => {
                tracing::warn!(error = %e, "admin list: journal not reachable");
                return error(503, "store_unavailable", "the journal cannot be read now");
            }
        }
    }
    entries.sort_by(|a, b| (b.created_ms, &b.key).cmp(&(a.created_ms, &a.key)));
    entries.truncate(limit);
    let items: Vec<Summary> = entries.iter().map(summary).collect();
    HttpResponse::Ok().json(serde_json::json!({"entries": items, "nextCursor": next_cursor}))
}

/// `GET /admin/v1/postings/{tenant}/{key}`: the whole entry with its attempts.
async fn show(
    req: HttpRequest,
    path: web::Path<(String, String)>,
    state: web::Data<AppState>,
) -> HttpResponse {
    let (t, key) = match gated_entry(&req, &state, path) {
        Ok(found) => found,
        Err(refused) => return refused,
    };
    match state.journal.get(&t.id, &key).await {
        Ok(Some(entry)) => HttpResponse::Ok().json(entry),
        Ok(None) => error(404, "not_found", "no journal entry for this key"),
        Err(e) => {
            tracing::warn!(error = %e, "admin show: journal not reachable");
            error(503, "store_unavailable", "the journal cannot be read now")
        }
    }
}

/// The gate, then the `{tenant}/{key}` of an entry's path.
#[allow(clippy::result_large_err)]
fn gated_entry(
    req: &HttpRequest,
    state: &AppState,
    path: web::Path<(String, String)>,
) -> Result<(std::sync::Arc<Tenant>, String), HttpResponse> {
    gate(req, state)?;
    let (tenant_id, key) = path.into_inner();
    Ok((tenant(state, &tenant_id)?.clone(), key))
}

fn operator_error(e: OperatorError) -> HttpResponse {
    match e {
        OperatorError::NotFound => error(404, "not_found", "no journal entry for this key"),
        OperatorError::Busy => error(409, "busy", &e.to_string()),
        OperatorError::WrongState(..) => error(409, "wrong_state", &e.to_string()),
        OperatorError::Store(e) => {
            tracing::warn!(error = %e, "admin action: store not reachable");
            error(
                503,
                "store_unavailable",
                "the journal cannot be written now",
            )
        }
    }
}

/// `POST …/retry`: reconcile, then post now with the same reference.
async fn retry(
    req: HttpRequest,
    path: web::Path<(String, String)>,
    state: web::Data<AppState>,
) -> HttpResponse {
    let (t, key) = match gated_entry(&req, &state, path) {
        Ok(found) => found,
        Err(refused) => return refused,
    };
    let budget = Budget::from_now(
        state.server.request_deadline,
        state.server.pms_safety_margin,
    );
    let result = operator_retry(&state.idempotency, &state.journal, &t, &key, budget).await;
    match result {
        Ok(entry) => {
            tracing::info!(actor = ACTOR, action = "retry", tenant = %t.id, idempotency_key = %key, state = entry.state.as_str(), "admin action");
            HttpResponse::Ok().json(entry)
        }
        Err(e) => {
            tracing::info!(actor = ACTOR, action = "retry", tenant = %t.id, idempotency_key = %key, refused = %e, "admin action refused");
            operator_error(e)
        }
    }
}

#[derive(Deserialize)]
pub struct ResolveBody {
    note: String,
}

/// `POST …/resolve` with `{"note": "..."}`: close an entry handled outside
/// chargebridge. Never posts.
async fn resolve(
    req: HttpRequest,
    path: web::Path<(String, String)>,
    body: web::Bytes,
    state: web::Data<AppState>,
) -> HttpResponse {
    let (t, key) = match gated_entry(&req, &state, path) {
        Ok(found) => found,
        Err(refused) => return refused,
    };
    let note = match serde_json::from_slice::<ResolveBody>(&body) {
        Ok(b) if !b.note.trim().is_empty() => {
            b.note.trim().chars().take(MAX_NOTE).collect::<String>()
        }
        _ => return error(400, "invalid_body", "send {\"note\": \"what was done\"}"),
    };
    match operator_resolve(
        &state.journal,
        &t,
        &key,
        &note,
        state.idempotency.lease_ms(),
    )
    .await
    {
        Ok(entry) => {
            tracing::info!(actor = ACTOR, action = "resolve", tenant = %t.id, idempotency_key = %key, note = %note, "admin action");
            HttpResponse::Ok().json(entry)
        }
        Err(e) => {
            tracing::info!(actor = ACTOR, action = "resolve", tenant = %t.id, idempotency_key = %key, refused = %e, "admin action refused");
            operator_error(e)
        }
    }
}
