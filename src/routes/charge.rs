//! `POST /lightspeed/charge`: Lightspeed's Charge Transaction webhook.
//!
//! Order of checks: `Accept` (406), `Content-Type` (415; a missing or empty one is
//! JSON), idempotency key (400), body size (413), JSON and shapes (400), tenant by
//! API key (401), business rules (400), a room-charge payment (422 unless the
//! tenant has MIRRORING); then the idempotency layer and the PMS (`posting.rs`).

use actix_web::http::header::{self, HeaderMap};
use actix_web::web::BytesMut;
use actix_web::{HttpRequest, HttpResponse, web};
use futures_util::StreamExt;
use secrecy::ExposeSecret;
use std::sync::Arc;
use tokio::time::Instant;
use tracing::Instrument;

use crate::domain::{Charge, IdempotencyKey, Tenant};
use crate::error::ApiError;
use crate::idempotency::fingerprint;
use crate::lightspeed;
use crate::metrics as m;
use crate::posting::{self, Budget, Reply};
use crate::startup::AppState;

pub const IDEMPOTENCY_HEADER: &str = "X-Lightspeed-Idempotency-Key";
pub const REPLAYED_HEADER: &str = "Idempotent-Replayed";

/// What the request log line says about a delivery (never the API key).
#[derive(Default)]
struct LogFields {
    tenant: Option<String>,
    key: Option<String>,
    fisc_id: Option<String>,
    /// The raw body, kept (reference-counted) only when `[capture]` is on.
    body: Option<web::Bytes>,
}

pub async fn charge(
    req: HttpRequest,
    mut payload: web::Payload,
    state: web::Data<AppState>,
) -> HttpResponse {
    let started = std::time::Instant::now();
    let _in_flight = m::InFlight::start();
    let deadline = Instant::now() + state.server.request_deadline;
    let mut fields = LogFields::default();
    let request_id = req
        .headers()
        .get("x-request-id")
        .and_then(|v| v.to_str().ok())
        .filter(|v| !v.is_empty() && v.len() <= 128 && v.bytes().all(|b| b.is_ascii_graphic()))
        .map(str::to_string)
        .unwrap_or_else(|| uuid::Uuid::new_v4().simple().to_string());
    let span = tracing::info_span!("charge", request_id = %request_id);
    let outcome = handle(&req, &mut payload, &state, deadline, &mut fields)
        .instrument(span.clone())
        .await;
    let captured_answer = state.capture.as_ref().map(|_| match &outcome {
        Ok(reply) => reply.body.clone().into_bytes(),
        Err(error) => error.body(),
    });
    let (response, status, code, replayed) = match outcome {
        Ok(reply) => {
            let status = actix_web::http::StatusCode::from_u16(reply.status)
                .unwrap_or(actix_web::http::StatusCode::INTERNAL_SERVER_ERROR);
            let mut builder = HttpResponse::build(status);
            builder.content_type("application/json");
            if reply.replayed {
                builder.insert_header((REPLAYED_HEADER, "true"));
            }
            let code = if reply.status == 200 {
                "ok"
            } else {
                code_of_stored(&reply)
            };
            (builder.body(reply.body), reply.status, code, reply.replayed)
        }
        Err(error) => {
            use actix_web::ResponseError;
            if error.status_code().is_server_error() {
                tracing::warn!(error = %error, "charge not completed");
            }
            let response = if error.leaves_body_unread() {
                // actix-web drains a chunked body whose reader was dropped, with no
                // time limit; a reader still alive when the answer has been sent
                // makes it close the connection instead (after its short linger).
                error.response_head().body(AnswerKeepingReader {
                    answer: Some(error.body().into()),
                    _reader: payload,
                })
            } else {
                error.error_response()
            };
            (response, error.status_code().as_u16(), error.code(), false)
        }
    };
    if let (Some(capture), Some(answer)) = (&state.capture, captured_answer) {
        capture.record(req.headers(), fields.body.take(), status, answer, replayed);
    }
    let elapsed = started.elapsed();
    m::request("charge", status, code, elapsed);
    let mut response = response;
    if let Ok(value) = header::HeaderValue::from_str(&request_id) {
        response
            .headers_mut()
            .insert(header::HeaderName::from_static("x-request-id"), value);
    }
    let _entered = span.enter();
    tracing::info!(
        tenant = fields.tenant.as_deref().unwrap_or("-"),
        idempotency_key = fields.key.as_deref().unwrap_or("-"),
        fisc_id = fields.fisc_id.as_deref().unwrap_or("-"),
        status,
        code,
        replayed,
        latency_ms = elapsed.as_secs_f64() * 1000.0,
        "charge"
    );
    response
}

/// An answer sent before the request body was read, holding the body's reader
/// until the answer is out (see the charge handler).
struct AnswerKeepingReader {
    answer: Option<web::Bytes>,
    _reader: web::Payload,
}

impl actix_web::body::MessageBody for AnswerKeepingReader {
    type Error = std::convert::Infallible;

    fn size(&self) -> actix_web::body::BodySize {
        let length = self.answer.as_ref().map_or(0, |a| a.len());
        actix_web::body::BodySize::Sized(length as u64)
    }

    fn poll_next(
        self: std::pin::Pin<&mut Self>,
        _: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Option<Result<web::Bytes, Self::Error>>> {
        std::task::Poll::Ready(self.get_mut().answer.take().map(Ok))
    }
}

/// Stored non-200 answers are `pms_rejected` (the only kind that is stored).
fn code_of_stored(reply: &Reply) -> &'static str {
    if reply.status == 422 {
        "pms_rejected"
    } else {
        "stored"
    }
}

async fn handle(
    req: &HttpRequest,
    payload: &mut web::Payload,
    state: &web::Data<AppState>,
    deadline: Instant,
    fields: &mut LogFields,
) -> Result<Reply, ApiError> {
    let headers = req.headers();
    check_accept(headers)?;
    check_content_type(headers)?;
    let key = match headers.get(IDEMPOTENCY_HEADER) {
        None => return Err(ApiError::MissingIdempotencyKey),
        Some(value) => IdempotencyKey::parse(value.as_bytes())?,
    };
    fields.key = Some(key.to_string());
    let body = read_body(
        headers,
        payload,
        state.server.body_limit,
        state.server.client_request_timeout,
    )
    .await?
    .freeze();
    if state.capture.is_some() {
        fields.body = Some(body.clone());
    }

    // Credentials first: with them the key can be claimed (or its stored answer
    // replayed) before the full parse; see `posting::deliver`.
    let (tenant, build): (Arc<Tenant>, posting::BuildCharge) =
        match lightspeed::Credentials::read(&body) {
            Some(credentials) => {
                fields.fisc_id = credentials.receipt_identifier().map(str::to_string);
                let tenant = state.tenants.authenticate(
                    credentials.api_key.expose_secret(),
                    credentials.business_external_reference.as_deref(),
                )?;
                let (t, k, b) = (tenant.clone(), key.clone(), body.clone());
                (tenant, Box::new(move || build_charge(&b, &t, &k)))
            }
            None => {
                // Not even the credentials: the full parse says what is wrong
                // (or, for a shape the light read refuses, does the work now).
                let wire = lightspeed::parse_charge(&body)?;
                fields.fisc_id = wire.receipt_identifier().map(str::to_string);
                let tenant = state.tenants.authenticate(
                    wire.api_key.expose_secret(),
                    wire.business_external_reference.as_deref(),
                )?;
                let charge = charge_for(&wire, &tenant, &key)?;
                (tenant, Box::new(move || Ok(charge)))
            }
        };
    fields.tenant = Some(tenant.id.clone());
    let fp = fingerprint(&body).ok_or_else(|| ApiError::unreadable("body is not JSON"))?;
    drop(body);

    // Own task: a client hanging up must not cut a posting (and its record) in half.
    let app = state.clone();
    let budget = Budget {
        deadline,
        safety_margin: state.server.pms_safety_margin,
    };
    let task = actix_web::rt::spawn(
        async move {
            posting::deliver(
                &app.idempotency,
                &app.journal,
                &app.revenue_ledger,
                tenant,
                build,
                key,
                fp,
                budget,
            )
            .await
        }
        .instrument(tracing::Span::current()),
    );
    match task.await {
        Ok(result) => result,
        Err(e) => Err(ApiError::Internal(format!("charge task failed: {e}"))),
    }
}

/// The charge a body asks for: parsed, validated and mapped for `tenant`.
fn build_charge(body: &[u8], tenant: &Tenant, key: &IdempotencyKey) -> Result<Charge, ApiError> {
    charge_for(&lightspeed::parse_charge(body)?, tenant, key)
}

/// The charge a parsed body asks for, mapped for `tenant`.
fn charge_for(
    wire: &lightspeed::v1::ChargeTransaction,
    tenant: &Tenant,
    key: &IdempotencyKey,
) -> Result<Charge, ApiError> {
    let charge = Charge::from_wire(wire, tenant, key, chrono::Utc::now())?;
    if !charge.needs_posting() && !tenant.mirroring {
        return Err(no_room_charge(wire, tenant));
    }
    Ok(charge)
}

/// A receipt with no room-charge payment, for a tenant without MIRRORING: the
/// payment method or the tenant's codes are set up wrong, and room charges
/// would otherwise be dropped without a trace.
fn no_room_charge(wire: &lightspeed::v1::ChargeTransaction, tenant: &Tenant) -> ApiError {
    let mut seen: Vec<String> = Vec::new();
    for code in wire
        .payments
        .iter()
        .filter_map(|p| p.method_code.as_deref())
    {
        let code: String = code.trim().chars().take(32).collect();
        if seen.len() < 10 && !seen.contains(&code) {
            seen.push(code);
        }
    }
    let seen = if seen.is_empty() {
        "none".to_string()
    } else {
        seen.join(",")
    };
    tracing::error!(
        tenant = %tenant.id,
        method_codes_seen = %seen,
        room_charge_method_codes = %tenant.room_charge_method_codes.join(","),
        "receipt without a room-charge payment refused: check the Back Office payment method's \
         code, the tenant's room_charge_method_codes, or set mirroring = true if the provider \
         was registered with MIRRORING"
    );
    ApiError::NoRoomChargePayment(seen)
}

/// `Accept` absent, or naming JSON, `application/*` or `*/*` with q > 0.
fn check_accept(headers: &HeaderMap) -> Result<(), ApiError> {
    let mut any = false;
    for value in headers.get_all(header::ACCEPT) {
        let Ok(text) = value.to_str() else {
            return Ok(());
        };
        for range in text.split(',') {
            let mut parts = range.split(';');
            let media = parts.next().unwrap_or("").trim().to_ascii_lowercase();
            if media.is_empty() {
                continue;
            }
            any = true;
            let refused = parts.any(|p| {
                let p = p.trim();
                p.strip_prefix("q=")
                    .and_then(|q| q.trim().parse::<f32>().ok())
                    .is_some_and(|q| q <= 0.0)
            });
            let json = matches!(media.as_str(), "application/json" | "application/*" | "*/*")
                || media.ends_with("+json");
            if json && !refused {
                return Ok(());
            }
        }
    }
    if any {
        Err(ApiError::NotAcceptable)
    } else {
        Ok(())
    }
}

/// `application/json` (or `…+json`), parameters such as `charset=utf-8` allowed.
/// A missing or empty `Content-Type` is read as JSON: Lightspeed does not list
/// the header, and an example of its shows it empty.
fn check_content_type(headers: &HeaderMap) -> Result<(), ApiError> {
    let Some(value) = headers.get(header::CONTENT_TYPE) else {
        return Ok(());
    };
    let value = value.to_str().map_err(|_| ApiError::UnsupportedMediaType)?;
    if value.trim().is_empty() {
        return Ok(());
    }
    let media = value
        .split(';')
        .next()
        .unwrap_or("")
        .trim()
        .to_ascii_lowercase();
    let charset_ok = value.split(';').skip(1).all(|p| {
        let p = p.trim().to_ascii_lowercase();
        match p.strip_prefix("charset=") {
            Some(cs) => matches!(cs.trim_matches('"'), "utf-8" | "utf8"),
            None => true,
        }
    });
    if (media == "application/json"
        || (media.starts_with("application/") && media.ends_with("+json")))
        && charset_ok
    {
        Ok(())
    } else {
        Err(ApiError::UnsupportedMediaType)
    }
}

/// Reads the body up to `limit` bytes; a declared or actual excess is 413 before
/// anything is buffered beyond the limit. actix-web times only the request head
/// (`client_request_timeout`); the body gets the same allowance here, so a client
/// that trickles bytes is answered 408 instead of holding its connection for good.
async fn read_body(
    headers: &HeaderMap,
    payload: &mut web::Payload,
    limit: usize,
    timeout: std::time::Duration,
) -> Result<BytesMut, ApiError> {
    tokio::time::timeout(timeout, read_body_unbounded(headers, payload, limit))
        .await
        .unwrap_or(Err(ApiError::RequestTimeout(timeout)))
}

async fn read_body_unbounded(
    headers: &HeaderMap,
    payload: &mut web::Payload,
    limit: usize,
) -> Result<BytesMut, ApiError> {
    let declared = headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse::<u64>().ok());
    if declared.is_some_and(|length| length > limit as u64) {
        return Err(ApiError::PayloadTooLarge { limit });
    }
    // One allocation for the whole body when its length is declared.
    let mut body = BytesMut::with_capacity(declared.map_or(8 * 1024, |l| l as usize));
    while let Some(chunk) = payload.next().await {
        let chunk = chunk.map_err(|e| ApiError::unreadable(format!("incomplete body: {e}")))?;
        if body.len() + chunk.len() > limit {
            return Err(ApiError::PayloadTooLarge { limit });
        }
        body.extend_from_slice(&chunk);
    }
    Ok(body)
}

#[cfg(test)]
mod tests {
    use super::*;
    use actix_web::http::header::{HeaderName, HeaderValue};

    fn headers(pairs: &[(&str, &str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.append(
                HeaderName::from_bytes(k.as_bytes()).unwrap(),
                HeaderValue::from_str(v).unwrap(),
            );
        }
        h
    }

    #[test]
    fn accept_allows_json_and_wildcards() {
        for ok in [
            "application/json",
            "*/*",
            "application/*",
            "text/html, application/json;q=0.5",
            "application/problem+json",
        ] {
            assert!(check_accept(&headers(&[("accept", ok)])).is_ok(), "{ok}");
        }
        assert!(check_accept(&headers(&[])).is_ok());
        for bad in ["text/html", "application/xml", "application/json;q=0"] {
            assert!(check_accept(&headers(&[("accept", bad)])).is_err(), "{bad}");
        }
    }

    #[test]
    fn content_type_must_be_json() {
        for ok in [
            "application/json",
            "application/json; charset=utf-8",
            "Application/JSON;charset=UTF-8",
        ] {
            assert!(
                check_content_type(&headers(&[("content-type", ok)])).is_ok(),
                "{ok}"
            );
        }
        for bad in [
            "text/plain",
            "application/x-www-form-urlencoded",
            "application/json; charset=latin1",
            "json",
        ] {
            assert!(
                check_content_type(&headers(&[("content-type", bad)])).is_err(),
                "{bad}"
            );
        }
        // Missing or empty: read as JSON.
        assert!(check_content_type(&headers(&[])).is_ok());
        assert!(check_content_type(&headers(&[("content-type", "")])).is_ok());
        assert!(check_content_type(&headers(&[("content-type", "  ")])).is_ok());
    }
}
