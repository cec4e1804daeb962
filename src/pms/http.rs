//! The generic `http` adapter: chargebridge's own JSON protocol, for a PMS that has
//! no built-in adapter. The integrator implements four endpoints under one base URL;
//! the full contract is `schemas/pms-http-protocol.openapi.yaml`.
//!
//! | call | request | answers |
//! |---|---|---|
//! | post | `POST {url}/charges`, header `Idempotency-Key: <reference>`, JSON [charge body](#the-charge-body) | 2XX posted (`{"pmsReference": …}`), 4XX refused (`{"message": …}`), 429/5XX not applied |
//! | reconcile | `GET {url}/charges/{reference}` | 200 `{"pmsReference": …, "charge": …}` or 404 |
//! | payment | `POST {url}/payments` (a settlement part, see `RoomCharge::settlement`), same rules as `POST /charges` | as for post |
//! | payment reconcile | `GET {url}/payments/{reference}` | 200 or 404 |
//! | search | `GET {url}/reservations?term=…` | 200 `{"reservations": [...]}` |
//! | health | `GET {url}/health` | 2XX |
//!
//! With `token` (or `token_env`, `token_file`) set, every request carries
//! `Authorization: Bearer …`.
//! The token is never logged and never part of an error text.
//!
//! # Outcome classes
//!
//! * **2XX**: posted. The PMS's id is the body's `pmsReference`; a 2XX without a
//!   readable one is still posted and reports the charge's own `reference`.
//! * **4XX**: rejected ([`ErrorClass::Rejected`]) with the body's `message` (else the status
//!   text), stored and replayed as 422. Eight statuses are not refusals:
//!   * `404 Not Found`, `405 Method Not Allowed`, `415 Unsupported Media Type`:
//!     chargebridge is set up wrong (base URL, path, content type); nothing was
//!     applied, so unavailable ([`ErrorClass::Unavailable`]), logged as a configuration error;
//!   * `401 Unauthorized` and `403 Forbidden`: chargebridge's token was not
//!     accepted; nothing was applied and fixing the configuration changes the
//!     answer, so it is unavailable ([`ErrorClass::Unavailable`]) (logged as an error), never a
//!     refusal stored for the whole retention;
//!   * `429 Too Many Requests` and `408 Request Timeout`: not applied
//!     (unavailable ([`ErrorClass::Unavailable`]));
//!   * `409 Conflict`: the PMS is still processing a request with the same
//!     `Idempotency-Key`, so the charge may yet be applied (unknown ([`ErrorClass::Unknown`])).
//!     Storing a refusal here could lose a charge the PMS is about to apply.
//! * **5XX**: unavailable ([`ErrorClass::Unavailable`]). The protocol *requires* a PMS to answer
//!   5XX only when it has not applied the charge (and to keep a proxy in front of it
//!   from turning a timeout after forwarding into a 502/504). If it still happens,
//!   the retry carries the same `Idempotency-Key`, which the PMS must deduplicate.
//! * **Connection refused / connect timeout**: nothing was sent, unavailable ([`ErrorClass::Unavailable`]).
//! * **Timeout or connection loss after the request may have left** (including a
//!   per-request timeout that fires while still connecting, which reqwest does not
//!   tell apart): unknown ([`ErrorClass::Unknown`]).
//! * **3XX**: redirects are not followed; a set-up error like 404 (wrong base URL),
//!   unavailable ([`ErrorClass::Unavailable`]), logged as an error with its `Location`.
//! * Anything else (1XX, unassigned codes): unknown ([`ErrorClass::Unknown`]).
//!
//! Each attempt waits at most `min(timeout, deadline - now)`. Only outcomes known
//! not to have applied anything are retried (connection refused, 429, 503), at most
//! `max_retries` times, after `Retry-After` (seconds or HTTP date) or a short
//! back-off, and only when the wait still leaves time for another attempt before
//! the deadline. A PMS in maintenance can therefore answer `503` with a long
//! `Retry-After` to make chargebridge give up at once (the POS shows "retry").
//! After a `429` with `Retry-After`, no call to this PMS leaves until the wait
//! has passed (the shared transport's rate limiter); deliveries in between are
//! answered "not posted" at once and the journal's worker waits at least as long.
//!
//! # The charge body
//!
//! One JSON object per charge (`ChargeBody`); all money is a **decimal string**
//! (`"66.00"`, exactly as computed, never a float). Top-level facts: `reference`
//! (also the `Idempotency-Key`), `tenant`, `idempotencyKey` (Lightspeed's key, for
//! people), `reservationId`, `amount` (what the folio must carry, tip included),
//! `gratuity` (the tip part of `amount`), `currency`, `refund` (negative amount),
//! `paymentMethod`, `closedAt`/`openedAt` (RFC 3339), `receipt` (ids), `outlet`
//! (mapped outlet, `null` when unmapped), and two lists:
//!
//! * `items`: the folio items to post (from [`folio_items`]); their `amount`s add
//!   up to `amount` exactly. A PMS that itemizes posts these.
//! * `lines`: the receipt's sale lines as Lightspeed sent them (with mapped revenue
//!   and tax codes), for display and audit. They need not add up to `amount`
//!   (a partial room payment pays only part of the receipt).
//!
//! # Reconciliation and its limits
//!
//! When a post ends unknown ([`ErrorClass::Unknown`]), the next delivery of the same Lightspeed
//! key first asks `GET {url}/charges/{reference}`: 200 means the PMS has it (the
//! delivery answers 200 without posting again), 404 means it certainly does not
//! (the delivery posts), anything else keeps the outcome unknown (500, retry later).
//! The reference is derived from tenant and key, so it is the same on every
//! delivery. If the idempotency record itself was lost (Redis flushed),
//! chargebridge does not know to reconcile and simply posts again, with the same
//! `Idempotency-Key`: the PMS's deduplication answers with the first result.
//!
//! What this cannot guarantee, and what the PMS side must therefore provide:
//!
//! * **A charge still in flight inside the PMS.** If the first POST is still being
//!   processed when the reconcile GET arrives, a correct PMS may answer 404 and
//!   chargebridge posts again. Only the PMS honouring `Idempotency-Key` (same key:
//!   return the first result, or 409 while the first is running) prevents a double
//!   posting then. The key is the real guarantee; reconcile is the fast path.
//! * **A 404 that is not the PMS's answer** (wrong base URL, a proxy's own 404)
//!   reads as "not there": chargebridge posts, and that post normally fails the
//!   same way (4XX, refused) rather than applying twice.
//! * **A PMS that forgets keys.** Reconcile and deduplication are only as good as
//!   the PMS's memory of references; it must keep them at least as long as
//!   chargebridge's `retention` (7 days by default).
//! * **The content.** Reconcile matches by reference only; chargebridge refuses a
//!   reused key with a different body before it gets here, so the same reference
//!   always means the same charge.

use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use reqwest::Method;
use rust_decimal::Decimal;
use secrecy::SecretString;
use serde::{Deserialize, Serialize};
use tokio::time::Instant;

use super::itemize::{FolioItem, ItemKind, folio_items};
use super::rate_limit::RateLimit;
use super::transport::{self, Auth, Call, Transport, TransportSettings, Vendor};
use super::{ErrorClass, GuestStay, PmsAdapter, PmsError, PostingReceipt};
use crate::config::secret::Sources;
use crate::domain::{Charge, Line, Named, ReceiptRefs, RoomCharge, ServiceChargeItem};

/// The header that carries the charge's reference on `POST /charges`.
pub const IDEMPOTENCY_KEY: &str = "idempotency-key";

/// A retry is only worth it with at least this much time left after the wait.
const MIN_ATTEMPT: Duration = Duration::from_millis(200);
/// Back-off before a retry when the PMS gave no `Retry-After`.
const BACKOFF: Duration = Duration::from_millis(100);
/// Longest reason text kept from a PMS answer (the POS shows 50 characters).
const MAX_REASON: usize = 200;
/// Upper bound of `max_retries`: retries must fit in one request deadline.
const MAX_RETRIES: u32 = 5;

/// What the protocol's answers mean (see the module documentation): the shared
/// reading, except that a 5XX is "not applied" (the protocol requires it) and a
/// 409 is "still processing this key" (unknown).
static HTTP_PROTOCOL: Vendor = Vendor {
    error_text: |_, body| refusal_message(body),
    classify: |status, call, _| match (status, call) {
        (409, Call::Write) => Some(ErrorClass::Unknown),
        (500..=599, _) => Some(ErrorClass::Unavailable),
        _ => None,
    },
    ..Vendor::plain("PMS")
};

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HttpPmsSettings {
    /// Base URL (`https://pms.example/chargebridge`); endpoints are appended.
    pub url: String,
    /// Upper bound of one request (further bounded by the request deadline).
    #[serde(default = "default_timeout", with = "humantime_serde")]
    pub timeout: Duration,
    /// Sent as `Authorization: Bearer <token>`.
    #[serde(default)]
    pub token: Option<SecretString>,
    /// Name of an environment variable holding the token (instead of `token`).
    #[serde(default)]
    pub token_env: Option<String>,
    /// Path of a file holding the token (instead of `token`).
    #[serde(default)]
    pub token_file: Option<String>,
    /// Retries of a post known not to have been applied (connection refused,
    /// 429, 503), within the deadline.
    #[serde(default = "default_max_retries")]
    pub max_retries: u32,
}

fn default_timeout() -> Duration {
    Duration::from_secs(8)
}
fn default_max_retries() -> u32 {
    1
}

impl HttpPmsSettings {
    /// Defaults for everything but the URL.
    pub fn new(url: impl Into<String>) -> Self {
        HttpPmsSettings {
            url: url.into(),
            timeout: default_timeout(),
            token: None,
            token_env: None,
            token_file: None,
            max_retries: default_max_retries(),
        }
    }

    pub fn check(&self) -> Result<(), String> {
        transport::base_url(&self.url, "url")?;
        if self.timeout.is_zero() {
            return Err("timeout must be positive".into());
        }
        self.token_sources().origin()?;
        if self.max_retries > MAX_RETRIES {
            return Err(format!("max_retries must be at most {MAX_RETRIES}"));
        }
        Ok(())
    }

    fn token_sources(&self) -> Sources<'_> {
        Sources::new("token", &self.token, &self.token_env, &self.token_file)
    }
}

/// The adapter: one transport (connection pool) per configured PMS.
pub struct HttpPms {
    api: Transport,
    base: reqwest::Url,
    max_retries: u32,
}

impl HttpPms {
    pub fn new(settings: &HttpPmsSettings) -> Result<Self, String> {
        settings.check()?;
        let auth = match settings.token_sources().resolve()? {
            Some(token) => Auth::Bearer(token),
            None => Auth::None,
        };
        let api = Transport::new(TransportSettings {
            vendor: &HTTP_PROTOCOL,
            timeout: settings.timeout,
            rate_limit: RateLimit::OFF,
            auth,
            headers: Vec::new(),
            user_agent: None,
        })?;
        Ok(HttpPms {
            api,
            base: transport::base_url(&settings.url, "url")?,
            max_retries: settings.max_retries,
        })
    }

    fn url(&self, segments: &[&str]) -> reqwest::Url {
        transport::join(&self.base, segments)
    }

    /// Whether waiting `wait` still leaves a worthwhile attempt before `deadline`.
    fn fits(wait: Duration, deadline: Instant) -> bool {
        Instant::now() + wait + MIN_ATTEMPT <= deadline
    }
}

#[async_trait::async_trait]
impl PmsAdapter for HttpPms {
    fn kind(&self) -> &'static str {
        "http"
    }

    async fn post(
        &self,
        charge: &Arc<Charge>,
        deadline: Instant,
    ) -> Result<PostingReceipt, PmsError> {
        let (resource, body) = if let Some(room) = super::settlement_of(charge) {
            ("payments", serde_json::to_vec(&PaymentBody::new(charge, room)))
        } else {
            let Some(body) = ChargeBody::new(charge) else {
                return Err(PmsError::rejected("Nothing to charge to the room"));
            };
            ("charges", serde_json::to_vec(&body))
        };
        let body = body
            .map_err(|e| PmsError::unavailable(format!("could not encode the charge: {e}")))?;
        let request = self
            .api
            .request(resource, Call::Write, Method::POST, self.url(&[resource]))
            .header(IDEMPOTENCY_KEY, charge.reference.as_str())
            .json_bytes(body);
        let mut retries = 0;
        loop {
            let error = match self.api.send(&request, deadline).await {
                Ok(answer) if answer.is_success() => return Ok(receipt_from(&answer.body, charge)),
                Ok(answer) => {
                    let error = self.api.failure(&request, &answer);
                    // Only 429 and 503 say "not applied, try again"; any other
                    // status is this charge's answer.
                    if !matches!(answer.status, 429 | 503) {
                        return Err(error);
                    }
                    error
                }
                // Not sent (connection refused): worth another try.
                Err(e) if e.is_unavailable() && !e.is_out_of_time() => e,
                Err(e) => return Err(e),
            };
            let wait = error.retry_after().unwrap_or_else(|| backoff(retries));
            if retries >= self.max_retries || !Self::fits(wait, deadline) {
                return Err(error);
            }
            retries += 1;
            tracing::info!(
                reference = %charge.reference,
                error = %error,
                wait_ms = wait.as_millis() as u64,
                retry = retries,
                "http PMS did not apply the charge; retrying"
            );
            tokio::time::sleep(wait).await;
        }
    }

    async fn reconcile(
        &self,
        charge: &Charge,
        deadline: Instant,
    ) -> Result<Option<PostingReceipt>, PmsError> {
        let (resource, what) = match super::settlement_of(charge) {
            Some(_) => ("payments", "payment read-back"),
            None => ("charges", "charge read-back"),
        };
        let url = self.url(&[resource, charge.reference.as_str()]);
        let request = self.api.request(what, Call::Read, Method::GET, url);
        let answer = self
            .api
            .send(&request, deadline)
            .await
            .map_err(|e| e.as_class(ErrorClass::Unavailable, "reconcile"))?;
        match answer.status {
            // The protocol's "not here".
            404 => Ok(None),
            // The status says the PMS has it; a body we cannot read does not undo that.
            200..=299 => Ok(Some(receipt_from(&answer.body, charge))),
            _ => Err(self
                .api
                .failure(&request, &answer)
                .as_class(ErrorClass::Unavailable, "reconcile")),
        }
    }

    async fn search(&self, term: &str, deadline: Instant) -> Result<Vec<GuestStay>, PmsError> {
        let request = self
            .api
            .request(
                "reservations",
                Call::Read,
                Method::GET,
                self.url(&["reservations"]),
            )
            .query(&[("term", term)]);
        let answer = self
            .api
            .call(&request, deadline)
            .await
            .map_err(|e| e.as_class(ErrorClass::Unavailable, "search"))?;
        parse_reservations(&answer.body).map_err(|e| PmsError::unavailable(format!("search: {e}")))
    }

    async fn health(&self) -> Result<(), PmsError> {
        let deadline = Instant::now() + self.api.timeout();
        let request = self
            .api
            .request("health", Call::Read, Method::GET, self.url(&["health"]));
        self.api
            .call(&request, deadline)
            .await
            .map(|_| ())
            .map_err(|e| e.as_class(ErrorClass::Unavailable, "health"))
    }
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct PmsReferenceAnswer {
    #[serde(default)]
    pms_reference: Option<serde_json::Value>,
}

/// The PMS's id from a `{"pmsReference": …}` body, else the charge's own reference.
fn receipt_from(body: &[u8], charge: &Charge) -> PostingReceipt {
    let from_body = serde_json::from_slice::<PmsReferenceAnswer>(body)
        .ok()
        .and_then(|a| a.pms_reference)
        .and_then(|v| match v {
            serde_json::Value::String(s) => Some(s),
            serde_json::Value::Number(n) => Some(n.to_string()),
            _ => None,
        })
        .map(|s| clip(s.trim(), MAX_REASON))
        .filter(|s| !s.is_empty());
    PostingReceipt {
        pms_reference: from_body.unwrap_or_else(|| charge.reference.to_string()),
    }
}

/// The refusal reason of a 4XX: the body's `message`, if it has one.
fn refusal_message(body: &[u8]) -> Option<String> {
    #[derive(Deserialize)]
    struct Refusal {
        message: Option<String>,
    }
    serde_json::from_slice::<Refusal>(body)
        .ok()
        .and_then(|r| r.message)
        .map(|m| clip(m.trim(), MAX_REASON))
        .filter(|m| !m.is_empty())
}

/// Back-off before retry number `retries + 1` when the PMS gave no `Retry-After`.
fn backoff(retries: u32) -> Duration {
    BACKOFF.saturating_mul(1 << retries.min(4))
}

/// At most `max` characters of `text`, cut at a character boundary.
fn clip(text: &str, max: usize) -> String {
    text.chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .take(max)
        .collect()
}

/// The JSON body of `POST /charges` (schema `Charge` in the OpenAPI document).
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
struct ChargeBody<'a> {
    reference: &'a str,
    tenant: &'a str,
    idempotency_key: &'a str,
    reservation_id: &'a str,
    #[serde(with = "rust_decimal::serde::str")]
    amount: Decimal,
    #[serde(with = "rust_decimal::serde::str")]
    gratuity: Decimal,
    currency: &'a str,
    refund: bool,
    payment_method: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    opened_at: Option<DateTime<Utc>>,
    closed_at: DateTime<Utc>,
    receipt: &'a ReceiptRefs,
    /// Always present; `null` when the tenant maps no outlet.
    outlet: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    revenue_center: Option<&'a Named>,
    #[serde(skip_serializing_if = "Option::is_none")]
    name: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    owner: Option<&'a Named>,
    #[serde(skip_serializing_if = "Option::is_none")]
    device_id: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    covers: Option<u32>,
    items: Vec<ItemBody>,
    lines: &'a [Line],
    #[serde(skip_serializing_if = "Option::is_none")]
    service_charge: Option<&'a ServiceChargeItem>,
}

/// The JSON body of `POST /payments` (schema `Payment`): one of a receipt's
/// payments, settling its revenue on the house account it was charged to.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
struct PaymentBody<'a> {
    reference: &'a str,
    tenant: &'a str,
    idempotency_key: &'a str,
    /// The house account the receipt's revenue was charged to.
    reservation_id: &'a str,
    #[serde(with = "rust_decimal::serde::str")]
    amount: Decimal,
    currency: &'a str,
    refund: bool,
    payment_method: &'a str,
    closed_at: DateTime<Utc>,
    receipt: &'a ReceiptRefs,
    outlet: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    revenue_center: Option<&'a Named>,
}

impl<'a> PaymentBody<'a> {
    fn new(charge: &'a Charge, room: &'a RoomCharge) -> Self {
        PaymentBody {
            reference: charge.reference.as_str(),
            tenant: &charge.tenant,
            idempotency_key: &charge.idempotency_key,
            reservation_id: &room.reservation_id,
            amount: room.amount,
            currency: &charge.currency,
            refund: charge.refund,
            payment_method: &room.payment_method,
            closed_at: charge.closed_at,
            receipt: &charge.receipt,
            outlet: charge.outlet.as_deref(),
            revenue_center: charge.revenue_center.as_ref(),
        }
    }
}

/// One folio item (schema `FolioItem`).
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
struct ItemBody {
    kind: &'static str,
    description: String,
    quantity: i32,
    #[serde(with = "rust_decimal::serde::str")]
    unit_amount: Decimal,
    #[serde(with = "rust_decimal::serde::str")]
    amount: Decimal,
    #[serde(skip_serializing_if = "Option::is_none")]
    revenue_code: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    tax_code: Option<String>,
    #[serde(
        with = "rust_decimal::serde::str_option",
        skip_serializing_if = "Option::is_none"
    )]
    tax_percent: Option<Decimal>,
}

impl From<FolioItem> for ItemBody {
    fn from(item: FolioItem) -> Self {
        ItemBody {
            kind: match item.kind {
                ItemKind::Sale => "sale",
                ItemKind::ServiceCharge => "serviceCharge",
                ItemKind::Tip => "tip",
                ItemKind::Consolidated => "consolidated",
            },
            description: item.description,
            quantity: item.quantity,
            unit_amount: item.unit_gross,
            amount: item.gross,
            revenue_code: item.revenue_code,
            tax_code: item.tax_code,
            tax_percent: item.tax_percent,
        }
    }
}

impl<'a> ChargeBody<'a> {
    /// `None` for a charge with nothing to put on a room.
    fn new(charge: &'a Charge) -> Option<Self> {
        let room: &RoomCharge = charge.room()?;
        Some(ChargeBody {
            reference: charge.reference.as_str(),
            tenant: &charge.tenant,
            idempotency_key: &charge.idempotency_key,
            reservation_id: &room.reservation_id,
            amount: room.amount,
            gratuity: room.gratuity,
            currency: &charge.currency,
            refund: charge.refund,
            payment_method: &room.payment_method,
            opened_at: charge.opened_at,
            closed_at: charge.closed_at,
            receipt: &charge.receipt,
            outlet: charge.outlet.as_deref(),
            revenue_center: charge.revenue_center.as_ref(),
            name: charge.name.as_deref(),
            owner: charge.owner.as_ref(),
            device_id: charge.device_id.as_deref(),
            covers: charge.covers,
            items: folio_items(charge)
                .into_iter()
                .map(ItemBody::from)
                .collect(),
            lines: &charge.lines,
            service_charge: charge.service_charge.as_ref(),
        })
    }
}

/// The answer to `GET /reservations` (schema `Reservations`).
#[derive(Deserialize)]
struct ReservationsAnswer {
    reservations: Vec<Reservation>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Reservation {
    reservation_id: IdText,
    room_id: IdText,
    #[serde(default)]
    room_description: Option<String>,
    client_name: String,
    #[serde(default)]
    credit_limit: Option<serde_json::Value>,
    #[serde(default)]
    blocked: bool,
    /// Only checked-in guests are expected; filtered defensively when present.
    #[serde(default)]
    checked_in: Option<bool>,
}

/// An id sent as a string or a number.
#[derive(Deserialize)]
#[serde(untagged)]
enum IdText {
    Text(String),
    Number(serde_json::Number),
}

impl IdText {
    fn into_string(self) -> String {
        match self {
            IdText::Text(s) => s,
            IdText::Number(n) => n.to_string(),
        }
    }
}

fn parse_reservations(body: &[u8]) -> Result<Vec<GuestStay>, String> {
    let answer: ReservationsAnswer =
        serde_json::from_slice(body).map_err(|e| format!("invalid answer: {e}"))?;
    answer
        .reservations
        .into_iter()
        .filter(|r| r.checked_in != Some(false))
        .map(|r| {
            let credit_limit = credit_limit(r.credit_limit)
                .map_err(|e| format!("reservation {:?}: {e}", r.client_name))?;
            Ok(GuestStay {
                reservation_id: r.reservation_id.into_string(),
                room_id: r.room_id.into_string(),
                room_description: r.room_description.unwrap_or_default(),
                client_name: r.client_name,
                credit_limit,
                blocked: r.blocked,
            })
        })
        .collect()
}

/// `creditLimit` as a JSON number or a decimal string, parsed exactly.
fn credit_limit(value: Option<serde_json::Value>) -> Result<Option<Decimal>, String> {
    use std::str::FromStr;
    let text = match value {
        None | Some(serde_json::Value::Null) => return Ok(None),
        // With arbitrary precision the number keeps its written digits.
        Some(serde_json::Value::Number(n)) => n.to_string(),
        Some(serde_json::Value::String(s)) => s,
        Some(_) => return Err("creditLimit is neither a number nor a string".into()),
    };
    let text = text.trim();
    Decimal::from_str(text)
        .or_else(|_| Decimal::from_scientific(text))
        .map(Some)
        .map_err(|_| format!("creditLimit {text:?} is not a decimal"))
}


impl super::AdapterSettings for HttpPmsSettings {
    fn check(&self) -> Result<(), String> {
        HttpPmsSettings::check(self)
    }

    fn build(&self) -> Result<super::Built, String> {
        Ok(super::Built::adapter(HttpPms::new(self)?))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use secrecy::ExposeSecret;
    use crate::config::Settings;

    use crate::pms::PmsRegistry;
    use serde_json::Value;

    const SCHEMA: &str = include_str!("../../schemas/pms-http-protocol.openapi.yaml");

    fn charge_of(json: &str) -> Charge {
        crate::pms::demo_charge(json)
    }

    fn seed_body() -> Value {
        let charge = charge_of(include_str!("../../fixtures/payloads/seed-example.json"));
        serde_json::to_value(ChargeBody::new(&charge).unwrap()).unwrap()
    }

    fn schema() -> Value {
        serde_norway::from_str(SCHEMA).expect("the OpenAPI document is valid YAML")
    }

    /// `#/components/schemas/X` resolved against the document.
    fn resolve<'a>(doc: &'a Value, node: &'a Value) -> &'a Value {
        match node.get("$ref").and_then(Value::as_str) {
            Some(r) => {
                let pointer = r.strip_prefix('#').expect("local $ref");
                resolve(doc, doc.pointer(pointer).unwrap_or_else(|| panic!("{r}")))
            }
            None => node,
        }
    }

    /// A small validator for the subset of JSON Schema the document uses: `$ref`,
    /// `allOf`, `type` (a name or a list), `required`, `properties` (undeclared
    /// ones are problems), `items`, string `enum`, and `format: decimal` (checked by
    /// parsing). Collects every problem.
    fn validate(doc: &Value, node: &Value, value: &Value, at: &str, problems: &mut Vec<String>) {
        let node = resolve(doc, node);
        for part in node
            .get("allOf")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
        {
            validate(doc, part, value, at, problems);
        }
        if let Some(types) = node.get("type") {
            let allowed: Vec<&str> = match types {
                Value::String(t) => vec![t.as_str()],
                Value::Array(ts) => ts.iter().filter_map(Value::as_str).collect(),
                _ => vec![],
            };
            let actual = match value {
                Value::Null => "null",
                Value::Bool(_) => "boolean",
                Value::Number(n) if n.is_i64() || n.is_u64() => "integer",
                Value::Number(_) => "number",
                Value::String(_) => "string",
                Value::Array(_) => "array",
                Value::Object(_) => "object",
            };
            let ok =
                allowed.contains(&actual) || (actual == "integer" && allowed.contains(&"number"));
            if !ok {
                problems.push(format!("{at}: {actual} where the schema says {allowed:?}"));
            }
        }
        if let (Some(choices), Some(_)) =
            (node.get("enum").and_then(Value::as_array), value.as_str())
            && !choices.contains(value)
        {
            problems.push(format!("{at}: {value} not in {choices:?}"));
        }
        if node.get("format").and_then(Value::as_str) == Some("decimal")
            && let Some(s) = value.as_str()
            && s.parse::<Decimal>().is_err()
        {
            problems.push(format!("{at}: {s:?} is not a decimal"));
        }
        if let Some(obj) = value.as_object() {
            for req in node
                .get("required")
                .and_then(Value::as_array)
                .into_iter()
                .flatten()
                .filter_map(Value::as_str)
            {
                if !obj.contains_key(req) {
                    problems.push(format!("{at}: required `{req}` missing"));
                }
            }
            if let Some(props) = node.get("properties").and_then(Value::as_object) {
                for (k, v) in obj {
                    // Stricter than the document (which tells integrators to
                    // ignore unknown properties): whatever is sent is documented.
                    match props.get(k) {
                        Some(p) => validate(doc, p, v, &format!("{at}.{k}"), problems),
                        None => problems.push(format!("{at}: `{k}` is not in the schema")),
                    }
                }
            }
        }
        if let (Some(items), Some(arr)) = (node.get("items"), value.as_array()) {
            for (i, v) in arr.iter().enumerate() {
                validate(doc, items, v, &format!("{at}[{i}]"), problems);
            }
        }
    }

    fn problems(schema_name: &str, value: &Value) -> Vec<String> {
        let doc = schema();
        let node = doc
            .pointer(&format!("/components/schemas/{schema_name}"))
            .unwrap_or_else(|| panic!("schema {schema_name}"))
            .clone();
        let mut problems = Vec::new();
        validate(&doc, &node, value, "$", &mut problems);
        problems
    }

    /// A payment settling the seed receipt's revenue on house account H-BAR.
    fn settlement() -> Charge {
        let mut charge = charge_of(include_str!("../../fixtures/payloads/seed-example.json"));
        let room = &mut charge.rooms[0];
        room.reservation_id = "H-BAR".into();
        room.revenue = true;
        room.payments = vec![crate::domain::RevenuePayment {
            method: "CA".into(),
            lightspeed: "CASH".into(),
            amount: room.amount,
        }];
        let mut parts = charge.postings();
        assert_eq!(parts.len(), 2, "the charge, then its payment");
        parts.pop().unwrap()
    }

    #[test]
    fn the_payment_body_matches_the_protocols_schema() {
        let charge = settlement();
        let room = crate::pms::settlement_of(&charge).expect("a settlement");
        let body = serde_json::to_value(PaymentBody::new(&charge, room)).unwrap();
        assert_eq!(problems("Payment", &body), Vec::<String>::new(), "{body}");
        assert_eq!(body["paymentMethod"], "CA");
        assert_eq!(body["amount"], "67.0");
        assert_eq!(body["reservationId"], "H-BAR");
        let doc = schema();
        let example = doc.pointer("/components/examples/Payment/value").unwrap();
        assert_eq!(problems("Payment", example), Vec::<String>::new());
    }

    #[test]
    fn charge_body_has_every_property_the_schema_requires() {
        let body = seed_body();
        let doc = schema();
        let required = doc
            .pointer("/components/schemas/Charge/required")
            .and_then(Value::as_array)
            .expect("Charge.required");
        for name in [
            "reference",
            "tenant",
            "reservationId",
            "amount",
            "gratuity",
            "currency",
            "refund",
            "closedAt",
            "receipt",
            "outlet",
            "lines",
            "items",
        ] {
            assert!(
                required.contains(&Value::String(name.into())),
                "the schema should require {name}"
            );
        }
        for name in required.iter().filter_map(Value::as_str) {
            assert!(
                body.get(name).is_some(),
                "body lacks required `{name}`: {body}"
            );
        }
        assert_eq!(problems("Charge", &body), Vec::<String>::new(), "{body:#}");
    }

    #[test]
    fn the_documented_example_is_what_the_adapter_sends() {
        let doc = schema();
        let example = doc
            .pointer("/components/examples/Charge/value")
            .expect("Charge example");
        assert_eq!(
            example,
            &seed_body(),
            "regenerate the example from the seed"
        );
    }

    #[test]
    fn every_fixture_body_matches_the_schema() {
        let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/fixtures/payloads");
        for entry in std::fs::read_dir(dir).unwrap() {
            let path = entry.unwrap().path();
            let charge = charge_of(&std::fs::read_to_string(&path).unwrap());
            let Some(body) = ChargeBody::new(&charge) else {
                continue;
            };
            let body = serde_json::to_value(body).unwrap();
            assert_eq!(
                problems("Charge", &body),
                Vec::<String>::new(),
                "{}: {body:#}",
                path.display()
            );
        }
    }

    #[test]
    fn money_is_sent_as_exact_decimal_strings() {
        let body = seed_body();
        assert_eq!(body["amount"], "67.0");
        assert_eq!(body["gratuity"], "1.0");
        assert_eq!(body["reservationId"], "001");
        assert_eq!(body["closedAt"], "2021-01-01T00:00:00Z");
        assert_eq!(body["refund"], false);
        assert!(body["outlet"].is_null());
        let items = body["items"].as_array().unwrap();
        let total: Decimal = items
            .iter()
            .map(|i| i["amount"].as_str().unwrap().parse::<Decimal>().unwrap())
            .sum();
        assert_eq!(total, Decimal::new(670, 1), "items add up to the amount");
        let text = serde_json::to_string(&body).unwrap();
        assert!(!text.contains("\"amount\":66"), "no JSON numbers for money");
    }

    #[test]
    fn schema_examples_are_understood_by_the_adapter() {
        let doc = schema();
        let example = doc
            .pointer("/components/examples/Reservations/value")
            .expect("Reservations example");
        assert!(problems("Reservations", example).is_empty());
        let bytes = serde_json::to_vec(example).unwrap();
        let guests = parse_reservations(&bytes).unwrap();
        assert!(!guests.is_empty());
        assert!(guests.iter().all(|g| !g.client_name.is_empty()));
        let posted = doc
            .pointer("/components/examples/Posted/value")
            .expect("Posted example");
        assert!(problems("Posted", posted).is_empty());
        let charge = charge_of(include_str!("../../fixtures/payloads/seed-example.json"));
        let receipt = receipt_from(&serde_json::to_vec(posted).unwrap(), &charge);
        assert_eq!(
            Some(receipt.pms_reference.as_str()),
            posted["pmsReference"].as_str()
        );
    }

    /// What the adapter makes of a `POST /charges` answer.
    fn outcome(status: u16, body: &str, retry_after: Option<u64>) -> Result<PostingReceipt, PmsError> {
        let charge = charge_of(include_str!("../../fixtures/payloads/seed-example.json"));
        let pms = HttpPms::new(&HttpPmsSettings::new("http://127.0.0.1:9/pms")).unwrap();
        let request = pms
            .api
            .request("charges", Call::Write, Method::POST, pms.url(&["charges"]));
        let mut headers = reqwest::header::HeaderMap::new();
        if let Some(s) = retry_after {
            headers.insert(reqwest::header::RETRY_AFTER, s.into());
        }
        let answer = transport::Answer {
            status,
            headers,
            body: body.as_bytes().to_vec(),
            request_id: "r-1".into(),
        };
        if answer.is_success() {
            Ok(receipt_from(&answer.body, &charge))
        } else {
            Err(pms.api.failure(&request, &answer))
        }
    }

    #[test]
    fn statuses_are_classified() {
        let charge = charge_of(include_str!("../../fixtures/payloads/seed-example.json"));
        assert_eq!(
            outcome(201, r#"{"pmsReference":"F-1"}"#, None),
            Ok(PostingReceipt {
                pms_reference: "F-1".into()
            })
        );
        assert_eq!(
            outcome(200, "", None),
            Ok(PostingReceipt {
                pms_reference: charge.reference.to_string()
            }),
            "a 2XX without a pmsReference is still posted"
        );
        assert_eq!(
            outcome(422, r#"{"message":"Folio closed"}"#, None),
            Err(PmsError::rejected("Folio closed"))
        );
        assert_eq!(
            outcome(410, "<html>nope</html>", None),
            Err(PmsError::rejected("Hotel system refused: 410 Gone"))
        );
        let class = |status: u16, body: &str, retry: Option<u64>| {
            outcome(status, body, retry).unwrap_err().class
        };
        for status in [401, 403] {
            assert_eq!(
                class(status, r#"{"message":"Invalid token"}"#, None),
                ErrorClass::Unavailable,
                "{status}: credentials refused are not a refusal to store"
            );
        }
        let limited = outcome(429, "", Some(0)).unwrap_err();
        assert_eq!(limited.retry_after(), Some(Duration::ZERO));
        let busy = outcome(503, "", None).unwrap_err();
        assert!(busy.is_unavailable() && busy.retry_after().is_none());
        assert_eq!(class(500, "", None), ErrorClass::Unavailable);
        assert_eq!(class(408, "", None), ErrorClass::Unavailable);
        assert_eq!(class(409, "", None), ErrorClass::Unknown);
        assert_eq!(class(101, "", None), ErrorClass::Unknown);
        for status in [302, 404, 405, 415] {
            assert_eq!(
                class(status, r#"{"message":"Not Found"}"#, None),
                ErrorClass::Unavailable,
                "{status}: a set-up error is not a refusal to store"
            );
        }
    }

    #[test]
    fn reservations_accept_numbers_strings_and_filter_checked_out() {
        let body = br#"{"reservations":[
            {"reservationId":"001","roomId":101,"roomDescription":"Double","clientName":"Jane Doe","creditLimit":500.10,"blocked":false},
            {"reservationId":2,"roomId":"102","clientName":"John Smith","creditLimit":"250.5"},
            {"reservationId":"004","roomId":"202","clientName":"Arthur Dent","checkedIn":false}
        ]}"#;
        let guests = parse_reservations(body).unwrap();
        assert_eq!(guests.len(), 2);
        assert_eq!(guests[0].room_id, "101");
        assert_eq!(guests[0].credit_limit, Some(Decimal::new(50010, 2)));
        assert_eq!(guests[1].reservation_id, "2");
        assert_eq!(guests[1].credit_limit, Some(Decimal::new(2505, 1)));
        assert_eq!(guests[1].room_description, "");
        assert!(parse_reservations(br#"{"reservations":[{"reservationId":"1","roomId":"1","clientName":"X","creditLimit":"lots"}]}"#).is_err());
        assert!(parse_reservations(b"[]").is_err());
    }

    #[test]
    fn settings_are_checked() {
        let ok = HttpPmsSettings::new("https://pms.example/api/");
        assert!(ok.check().is_ok());
        for bad in [
            "ftp://pms.example",
            "not a url",
            "https://user:pw@pms.example",
            "https://pms.example/?token=x",
        ] {
            assert!(HttpPmsSettings::new(bad).check().is_err(), "{bad}");
        }
        let mut both = HttpPmsSettings::new("http://127.0.0.1:9000");
        both.token = Some(SecretString::from("t"));
        both.token_env = Some("T".into());
        assert!(both.check().is_err());
        let mut retries = HttpPmsSettings::new("http://127.0.0.1:9000");
        retries.max_retries = 50;
        assert!(retries.check().is_err());
    }

    #[test]
    fn settings_have_defaults_and_refuse_unknown_keys() {
        let s: crate::pms::PmsSettings = serde_json::from_value(serde_json::json!({
            "adapter": "http",
            "url": "http://127.0.0.1:9000",
            "token": "s3cret",
        }))
        .unwrap();
        let crate::pms::PmsSettings::Http(s) = s else {
            panic!("not http")
        };
        assert_eq!(s.timeout, Duration::from_secs(8));
        assert_eq!(s.max_retries, 1);
        assert!(!format!("{s:?}").contains("s3cret"), "token never printed");
        let unknown = serde_json::from_value::<crate::pms::PmsSettings>(serde_json::json!({
            "adapter": "http", "url": "http://x", "tokn": "typo"
        }));
        assert!(unknown.is_err());
    }

    #[test]
    fn the_token_can_come_from_a_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("token");
        std::fs::write(&path, "file-t0ken\n").unwrap();
        let s: crate::pms::PmsSettings = serde_json::from_value(serde_json::json!({
            "adapter": "http",
            "url": "http://127.0.0.1:9000",
            "token_file": path.display().to_string(),
        }))
        .unwrap();
        let crate::pms::PmsSettings::Http(s) = s else {
            panic!("not http")
        };
        assert!(s.check().is_ok());
        assert_eq!(
            s.token_sources().require().unwrap().expose_secret(),
            "file-t0ken"
        );
        assert!(HttpPms::new(&s).is_ok());
        let mut both = s.clone();
        both.token = Some(SecretString::from("t"));
        assert!(both.check().unwrap_err().contains("token_file"));
    }

    #[test]
    fn the_specs_config_example_loads_with_env_overrides() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("chargebridge.toml");
        std::fs::write(
            &path,
            r#"
[[tenants]]
id = "quickbooks-123"
api_key = "quickbooks-key-345"
currency = "EUR"
room_charge_method_codes = ["IKPMS"]
pms = "main"

[pms.main]
adapter = "http"
url = "http://127.0.0.1:9000"
timeout = "8s"
"#,
        )
        .unwrap();
        let settings = Settings::load_with_env(
            Some(&path),
            [
                (
                    "CHARGEBRIDGE__PMS__MAIN__MAX_RETRIES".to_string(),
                    "2".to_string(),
                ),
                (
                    "CHARGEBRIDGE__PMS__MAIN__TOKEN".to_string(),
                    "t0ken".to_string(),
                ),
            ],
        )
        .unwrap();
        let crate::pms::PmsSettings::Http(s) = &settings.pms["main"] else {
            panic!("not http")
        };
        assert_eq!(s.url, "http://127.0.0.1:9000");
        assert_eq!(s.timeout, Duration::from_secs(8));
        assert_eq!(s.max_retries, 2);
        assert_eq!(s.token.as_ref().map(|t| t.expose_secret()), Some("t0ken"));
        let registry = PmsRegistry::build(&settings.pms).unwrap();
        assert_eq!(registry.get("main").unwrap().kind(), "http");
    }

    #[test]
    fn a_missing_token_env_fails_the_build() {
        let mut s = HttpPmsSettings::new("http://127.0.0.1:9000");
        s.token_env = Some("CHARGEBRIDGE_TEST_SURELY_UNSET_TOKEN".into());
        let err = HttpPms::new(&s).err().unwrap();
        assert!(
            err.contains("CHARGEBRIDGE_TEST_SURELY_UNSET_TOKEN"),
            "{err}"
        );
    }
}
