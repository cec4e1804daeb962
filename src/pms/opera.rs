//! Oracle OPERA Cloud through OHIP (the Oracle Hospitality Integration Platform).
//!
//! * **Auth**: OAuth client credentials at `token_url` (default
//!   `{url}/oauth/v1/tokens`: form `grant_type=client_credentials`,
//!   `scope=urn:opc:hgbu:ws:__myscopes__`, HTTP Basic client id and secret, headers
//!   `x-app-key` and `enterpriseId` when configured). Every API call carries
//!   `Authorization: Bearer …`, `x-app-key` and `x-hotelid`. Tokens are cached and
//!   refreshed ahead of expiry and once after a 401 ([`super::oauth`]).
//! * **Post**: one `postBillingCharges` call
//!   (`POST /csh/v1/hotels/{hotelId}/reservations/{reservationId}/charges`) whose
//!   `criteria.charges` list carries every folio item of the receipt, so OPERA
//!   applies the whole receipt in one request. Each item has `transactionCode` (the
//!   tenant's mapped revenue code, else `default_transaction_code`), `price` (unit
//!   price, exact decimal, negative for refunds), `postingQuantity` (a positive
//!   integer), `postingReference` (the charge's derived reference), `checkNumber`
//!   (the Lightspeed receipt id) and `postingRemark`; the first item carries the
//!   covers. OHIP has no idempotency header.
//! * **Payments** (a settlement part, settling a receipt's revenue on its
//!   posting master): one `postBillingPayment` call
//!   (`POST /csh/v1/hotels/{hotelId}/reservations/{reservationId}/payments`) with
//!   `criteria.paymentMethod.paymentMethod` (the tenant's mapped OPERA payment
//!   code, at most 20 characters, refused otherwise), `postingAmount` (exact
//!   decimal, negative for a refund receipt), `postingReference` (the part's own
//!   reference) and `postingRemark`. Reconciled like a charge: the same read-back
//!   finds the one posting carrying the part's reference.
//! * **Outcome classes**: no connection, 401 after one refresh, 403, 408, 429 and
//!   503 are *unavailable* (nothing applied); a timeout or a dropped connection
//!   after the request left, and any other 5XX, are *unknown*; other 4XX are
//!   *rejected* with OPERA's `detail` / `title` as the staff message.
//! * **Reconcile**: `getGuestsTransactions`
//!   (`GET /csh/v1/hotels/{hotelId}/transactions?reservationList=…&referenceNumberWildCard=…`,
//!   including postings already on a generated folio or an AR invoice) and a match
//!   on each posting's `reference`. It sees the postings still on the reservation
//!   within OHIP's 30-day window (we ask from the receipt's close date minus one
//!   day to tomorrow, at most 30 days counting both ends). It cannot see postings
//!   transferred to another reservation or routed elsewhere before the retry. For
//!   a receipt older than the window, "not found" proves nothing: the outcome
//!   stays *unknown* (never posted again blind).
//! * **Search**: OHIP's Reservation API (`GET /rsv/v1/hotels/{hotelId}/reservations`
//!   with `searchTypes=InHouse` and `surname` or `roomId`); this operation is not in
//!   the Cashiering description, so the adapter uses only the fields it documents
//!   (`reservations.reservationInfo[]`: `reservationIdList`, `roomStay.roomId`,
//!   `roomStay.roomType`, `reservationGuest` names, `reservationStatus`, and
//!   `cashiering.billingPrivileges.postingRestriction` for "blocked").
//! * **Health**: a token, then `GET /csh/v1/services/cashiering/status`.

use std::sync::Arc;
use std::time::Duration;

use secrecy::SecretString;
use serde::Deserialize;
use serde_json::{Value, json};
use tokio::time::Instant;

use reqwest::Method;

use super::itemize::{FolioItem, folio_items};
use super::oauth::TokenRequest;
use super::rate_limit::RateLimit;
use super::rest::{self, ItemOrigin};
use super::transport::{self, Auth, Call, Transport, TransportSettings, Vendor};
use super::{ErrorClass, GuestStay, PmsAdapter, PmsError, PostingReceipt};
use crate::config::secret::Sources;
use crate::domain::{Charge, RoomCharge};

/// OHIP's scope for "everything this application may do".
const SCOPE: &str = "urn:opc:hgbu:ws:__myscopes__";
/// OHIP's `getGuestsTransactions`: "This API allows a time span of 30 days."
/// Counted with both ends, as the safe reading.
const READ_BACK_DAYS: u64 = 30;
/// Most guests a search returns.
const SEARCH_LIMIT: u32 = 20;

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OperaSettings {
    /// The OHIP gateway, e.g. `https://xyz-ohip.oracleindustry.com`.
    pub url: String,
    /// Default `{url}/oauth/v1/tokens`.
    #[serde(default)]
    pub token_url: Option<String>,
    pub client_id: String,
    #[serde(default)]
    pub client_secret: Option<SecretString>,
    /// Name of an environment variable holding the client secret.
    #[serde(default)]
    pub client_secret_env: Option<String>,
    /// Path of a file holding the client secret.
    #[serde(default)]
    pub client_secret_file: Option<String>,
    /// The OHIP application key (`x-app-key`).
    #[serde(default)]
    pub app_key: Option<SecretString>,
    /// Name of an environment variable holding the application key.
    #[serde(default)]
    pub app_key_env: Option<String>,
    /// Path of a file holding the application key.
    #[serde(default)]
    pub app_key_file: Option<String>,
    /// OPERA's hotel code (`x-hotelid`, path `hotelId`).
    pub hotel_id: String,
    /// Sent as `enterpriseId` to the token endpoint where the environment needs it.
    #[serde(default)]
    pub enterprise_id: Option<String>,
    /// Transaction code for items whose accounting group has no mapped code.
    #[serde(default)]
    pub default_transaction_code: Option<String>,
    /// OAuth scope asked for with the token. OHIP's default asks for every
    /// scope the application was granted; a tenancy may limit it.
    #[serde(default = "default_scope")]
    pub scope: String,
    /// Sent as `applyRoutingInstructions` on every charge line when set: `true`
    /// lets OPERA route restaurant charges to another folio or a company per
    /// the reservation's routing, `false` keeps them on the guest's folio.
    /// Unset, the field is left out and OPERA's own default applies.
    #[serde(default)]
    pub apply_routing_instructions: Option<bool>,
    #[serde(default = "default_timeout", with = "humantime_serde")]
    pub timeout: Duration,
    /// OHIP allows 50 calls per second per application by default; replicas
    /// sharing the credential share that, so divide `requests` among them.
    #[serde(default = "default_rate_limit")]
    pub rate_limit: RateLimit,
}

fn default_rate_limit() -> RateLimit {
    RateLimit::new(50, Duration::from_secs(1))
}

fn default_timeout() -> Duration {
    Duration::from_secs(8)
}

fn default_scope() -> String {
    SCOPE.to_string()
}

impl OperaSettings {
    fn client_secret_sources(&self) -> Sources<'_> {
        Sources::new(
            "client_secret",
            &self.client_secret,
            &self.client_secret_env,
            &self.client_secret_file,
        )
    }

    fn app_key_sources(&self) -> Sources<'_> {
        Sources::new(
            "app_key",
            &self.app_key,
            &self.app_key_env,
            &self.app_key_file,
        )
    }

    pub fn check(&self) -> Result<(), String> {
        transport::base_url(&self.url, "url")?;
        if let Some(t) = &self.token_url {
            transport::base_url(t, "token_url")?;
        }
        if self.scope.trim().is_empty() {
            return Err("scope is empty (leave it out for OHIP's default)".into());
        }
        if self.client_id.trim().is_empty() {
            return Err("client_id is empty".into());
        }
        self.client_secret_sources().required_origin()?;
        self.app_key_sources().required_origin()?;
        if self.hotel_id.trim().is_empty() {
            return Err("hotel_id is empty".into());
        }
        // OHIP's token description: `enterpriseId` has `pattern: ^[A-Z0-9]{1,8}$`
        // ("Global unique ID of the Enterprise", sent with client credentials in
        // OCIM environments).
        if let Some(e) = &self.enterprise_id
            && (!(1..=8).contains(&e.len())
                || !e
                    .bytes()
                    .all(|b| b.is_ascii_uppercase() || b.is_ascii_digit()))
        {
            return Err(format!(
                "enterprise_id `{e}` is not an OHIP enterprise id (1 to 8 capital letters or digits)"
            ));
        }
        if self
            .default_transaction_code
            .as_deref()
            .is_some_and(|c| c.trim().is_empty())
        {
            return Err("default_transaction_code is empty".into());
        }
        if self.timeout.is_zero() {
            return Err("timeout must be positive".into());
        }
        Ok(())
    }
}

pub struct OperaPms {
    settings: OperaSettings,
    base: reqwest::Url,
    api: Transport,
}

/// What OHIP's answers mean (see the module documentation).
static OPERA: Vendor = Vendor {
    name: "OPERA",
    error_text: |status, body| is_ohip_error(body).then(|| error_text(status, body)),
    classify: |status, call, body| {
        // OHIP describes 404 on postBillingCharges as "Resource not found" with
        // its error body (exceptionDetailType): the reservation is not there,
        // which staff must read. A 404 without that body (a gateway, a wrong
        // path) is a set-up error.
        (status == 404 && call == Call::Write && is_ohip_error(body)).then_some(ErrorClass::Rejected)
    },
    // OHIP's `x-request-id` parameter (a UUID) on every operation we call.
    request_id_header: Some("x-request-id"),
    answer_id: |_| None,
};

impl OperaPms {
    pub fn new(settings: OperaSettings) -> Result<Self, String> {
        settings.check()?;
        let base = transport::base_url(&settings.url, "url")?;
        let token_url = match &settings.token_url {
            Some(t) => transport::base_url(t, "token_url")?,
            None => transport::join(&base, &["oauth", "v1", "tokens"]),
        };
        let client_secret = settings.client_secret_sources().require()?;
        let app_key = settings.app_key_sources().require()?;
        let mut token_headers = vec![("x-app-key", app_key.clone())];
        if let Some(enterprise) = &settings.enterprise_id {
            token_headers.push(("enterpriseId", SecretString::from(enterprise.clone())));
        }
        let api = Transport::new(TransportSettings {
            vendor: &OPERA,
            timeout: settings.timeout,
            rate_limit: settings.rate_limit,
            auth: Auth::ClientCredentials(TokenRequest {
                url: token_url,
                client_id: settings.client_id.clone(),
                client_secret,
                form: vec![("scope", settings.scope.clone())],
                headers: token_headers,
            }),
            headers: vec![
                ("x-app-key", app_key),
                ("x-hotelid", SecretString::from(settings.hotel_id.clone())),
            ],
            user_agent: None,
        })?;
        Ok(OperaPms {
            settings,
            base,
            api,
        })
    }

    fn url(&self, segments: &[&str]) -> reqwest::Url {
        transport::join(&self.base, segments)
    }

    /// `getGuestsTransactions` on `reservation` within `window`: every posting
    /// whose `reference` is `reference`.
    async fn postings_by_reference(
        &self,
        reservation: &str,
        reference: &str,
        window: &ReadBack,
        deadline: Instant,
    ) -> Result<Vec<Value>, PmsError> {
        let query = [
            ("reservationList", reservation.to_string()),
            ("referenceNumberWildCard", reference.to_string()),
            ("includeTransactionsWithFolioNo", "true".into()),
            ("includeTransactionsWithARInvoiceNo", "true".into()),
            ("includeGenerates", "false".into()),
            ("postedTransactionType", "All".into()),
            ("startDate", window.start.to_string()),
            ("endDate", window.end.to_string()),
        ];
        let url = self.url(&[
            "csh",
            "v1",
            "hotels",
            &self.settings.hotel_id,
            "transactions",
        ]);
        let request = self
            .api
            .request("getGuestsTransactions", Call::Read, Method::GET, url)
            .query(&query);
        let answer = self
            .api
            .call(&request, deadline)
            .await
            .map_err(|e| e.as_class(ErrorClass::Unknown, "reconcile"))?;
        let json = answer
            .json()
            .map_err(|_| PmsError::unknown("OPERA transactions read-back is not JSON"))?;
        let mut found = Vec::new();
        postings_with_reference(&json, reference, &mut found);
        Ok(found.into_iter().cloned().collect())
    }

    /// Whether the revenue charge a settlement part settles (`room.settles`,
    /// posted before it) is on the house account within `window`.
    async fn revenue_in_window(
        &self,
        room: &RoomCharge,
        window: &ReadBack,
        deadline: Instant,
    ) -> Result<bool, PmsError> {
        let Some(revenue) = &room.settles else {
            return Ok(false);
        };
        let found = self
            .postings_by_reference(&room.reservation_id, revenue.as_str(), window, deadline)
            .await?;
        Ok(!found.is_empty())
    }

    /// One `postBillingPayment` call for a settlement part (see [`payment_body`]).
    async fn post_payment(
        &self,
        charge: &Charge,
        room: &RoomCharge,
        deadline: Instant,
    ) -> Result<PostingReceipt, PmsError> {
        let hotel = self.settings.hotel_id.as_str();
        let body = payment_body(hotel, charge, room)?;
        let url = self.url(&[
            "csh",
            "v1",
            "hotels",
            hotel,
            "reservations",
            &room.reservation_id,
            "payments",
        ]);
        let request = self
            .api
            .request("postBillingPayment", Call::Write, Method::POST, url)
            .json(&body);
        let answer = self.api.call(&request, deadline).await?;
        Ok(posted(&answer, charge))
    }

    /// The `criteria.charges` list, or a refusal naming the missing mapping.
    fn charge_lines(&self, charge: &Charge, items: &[FolioItem]) -> Result<Vec<Value>, PmsError> {
        let origins = rest::item_origins(charge, items);
        let check_number = charge
            .receipt
            .receipt_id
            .as_deref()
            .or(charge.receipt.fisc_id.as_deref());
        let mut lines = Vec::with_capacity(items.len());
        for (i, (item, origin)) in items.iter().zip(&origins).enumerate() {
            let code = item
                .revenue_code
                .as_deref()
                .or(self.settings.default_transaction_code.as_deref())
                .ok_or_else(|| missing_code(origin))?;
            // OPERA multiplies price by quantity; a refund travels as a negative
            // price with a positive count, so the folio shows a credit.
            let (quantity, price) = if item.quantity < 0 {
                (-i64::from(item.quantity), -item.unit_gross)
            } else {
                (i64::from(item.quantity), item.unit_gross)
            };
            let price = rest::json_decimal(price).map_err(PmsError::unavailable)?;
            let mut line = json!({
                "transactionCode": code,
                "price": { "amount": price, "currencyCode": charge.currency },
                "postingQuantity": quantity,
                "postingReference": charge.reference.as_str(),
                "postingRemark": item.description,
            });
            if let Some(check) = check_number {
                line["checkNumber"] = json!(check);
            }
            if let Some(routing) = self.settings.apply_routing_instructions {
                line["applyRoutingInstructions"] = json!(routing);
            }
            if i == 0
                && let Some(covers) = charge.covers
            {
                line["covers"] = json!(covers.to_string());
            }
            lines.push(line);
        }
        Ok(lines)
    }
}

/// Longest payment method code OHIP takes
/// (`cashieringPaymentMethodType.paymentMethod`: `maxLength: 20`).
const PAYMENT_METHOD_MAX: usize = 20;

/// The `postBillingPayment` body of a settlement part: one payment of
/// `room.amount` (negative for a refund receipt) in method
/// `room.payment_method` on the house account `room.reservation_id`, carrying
/// the part's reference as `postingReference` (read back as the posting's
/// `reference`).
fn payment_body(hotel: &str, charge: &Charge, room: &RoomCharge) -> Result<Value, PmsError> {
    let method = room.payment_method.trim();
    if method.is_empty() {
        return Err(PmsError::rejected(
            "No OPERA payment method for this payment: map it in payment_methods",
        ));
    }
    if method.chars().count() > PAYMENT_METHOD_MAX {
        return Err(PmsError::rejected(format!(
            "OPERA payment method {method} is longer than {PAYMENT_METHOD_MAX} characters"
        )));
    }
    if room.amount.is_zero() {
        return Err(PmsError::rejected("Nothing to pay"));
    }
    let amount = rest::json_decimal(room.amount).map_err(PmsError::unavailable)?;
    let receipt = charge
        .receipt
        .receipt_id
        .as_deref()
        .or(charge.receipt.fisc_id.as_deref());
    let remark = match receipt {
        Some(id) => format!("Lightspeed receipt {id}"),
        None => "Lightspeed receipt".to_string(),
    };
    Ok(json!({
        "criteria": {
            "hotelId": hotel,
            "reservationId": { "id": room.reservation_id, "type": "Reservation" },
            "paymentMethod": { "paymentMethod": method },
            "postingAmount": { "amount": amount, "currencyCode": charge.currency },
            "postingReference": charge.reference.as_str(),
            "postingRemark": remark,
        }
    }))
}

fn missing_code(origin: &ItemOrigin) -> PmsError {
    tracing::warn!(
        item = %origin.label,
        mapping_key = %origin.revenue_key,
        "no OPERA transaction code: map the key, or set default_transaction_code in the PMS settings"
    );
    PmsError::rejected(format!("No OPERA transaction code for {}", origin.label))
}

/// Staff-readable text of an OPERA error body (`exceptionDetailType`).
/// OHIP's error body (`exceptionDetailType`, whose `type` and `title` are
/// required), as opposed to a gateway's or another server's 404.
fn is_ohip_error(body: &[u8]) -> bool {
    serde_json::from_slice::<Value>(body).is_ok_and(|json| {
        json.get("type").is_some_and(Value::is_string)
            && json.get("title").is_some_and(Value::is_string)
    })
}

fn error_text(status: u16, body: &[u8]) -> String {
    let json: Value = serde_json::from_slice(body).unwrap_or(Value::Null);
    let field = |v: &Value, k: &str| {
        v.get(k)
            .and_then(Value::as_str)
            .map(rest::staff_text)
            .filter(|s| !s.is_empty())
    };
    let from_details = || {
        json.get("o:errorDetails")
            .and_then(Value::as_array)
            .and_then(|d| {
                d.iter()
                    .find_map(|e| field(e, "detail").or_else(|| field(e, "title")))
            })
    };
    field(&json, "detail")
        .or_else(|| field(&json, "title").filter(|t| !is_generic_title(t)))
        .or_else(from_details)
        .or_else(|| field(&json, "title"))
        .unwrap_or_else(|| match status {
            404 => "Reservation not found in OPERA".to_string(),
            s => format!("OPERA refused the charge (HTTP {s})"),
        })
}

/// Titles that only repeat the HTTP status say nothing to staff.
fn is_generic_title(title: &str) -> bool {
    matches!(
        title.to_ascii_lowercase().as_str(),
        "bad request" | "not found" | "conflict" | "unprocessable entity" | "forbidden"
    )
}

/// Every posting object (anything with a `reference`) under `value`.
fn postings_with_reference<'a>(value: &'a Value, reference: &str, out: &mut Vec<&'a Value>) {
    match value {
        Value::Object(map) => {
            if map.get("reference").and_then(Value::as_str) == Some(reference) {
                out.push(value);
            }
            for v in map.values() {
                postings_with_reference(v, reference, out);
            }
        }
        Value::Array(items) => {
            for v in items {
                postings_with_reference(v, reference, out);
            }
        }
        _ => {}
    }
}

/// The receipt of a created posting: OPERA's transaction numbers of the
/// postings carrying our reference, else the `Location` tail, else our reference.
fn posted(answer: &transport::Answer, charge: &Charge) -> PostingReceipt {
    let json: Value = serde_json::from_slice(&answer.body).unwrap_or(Value::Null);
    let mut postings = Vec::new();
    postings_with_reference(&json, charge.reference.as_str(), &mut postings);
    let numbers = transaction_numbers(&postings);
    let pms_reference = if !numbers.is_empty() {
        numbers.join(",")
    } else if let Some(location) = answer
        .location()
        .and_then(|l| l.rsplit('/').next())
        .filter(|l| !l.is_empty())
    {
        location.to_string()
    } else {
        charge.reference.to_string()
    };
    PostingReceipt { pms_reference }
}

fn transaction_numbers(postings: &[&Value]) -> Vec<String> {
    let mut numbers: Vec<String> = postings
        .iter()
        .filter_map(|p| p.get("transactionNo").and_then(rest::text_of))
        .collect();
    numbers.dedup();
    numbers
}

#[async_trait::async_trait]
impl PmsAdapter for OperaPms {
    fn kind(&self) -> &'static str {
        "opera"
    }

    #[tracing::instrument(skip_all, fields(pms = "opera", reference = %charge.reference))]
    async fn post(
        &self,
        charge: &Arc<Charge>,
        deadline: Instant,
    ) -> Result<PostingReceipt, PmsError> {
        if let Some(room) = super::settlement_of(charge) {
            return self.post_payment(charge, room, deadline).await;
        }
        let room = super::room_of(charge)?;
        let items = folio_items(charge);
        let lines = self.charge_lines(charge, &items)?;
        let hotel = self.settings.hotel_id.as_str();
        let reservation = room.reservation_id.as_str();
        let body = json!({
            "criteria": {
                "hotelId": hotel,
                "reservationId": { "id": reservation, "type": "Reservation" },
                "charges": lines,
            }
        });
        let url = self.url(&[
            "csh",
            "v1",
            "hotels",
            hotel,
            "reservations",
            reservation,
            "charges",
        ]);
        let request = self
            .api
            .request("postBillingCharges", Call::Write, Method::POST, url)
            .json(&body);
        let answer = self.api.call(&request, deadline).await?;
        Ok(posted(&answer, charge))
    }

    #[tracing::instrument(skip_all, fields(pms = "opera", reference = %charge.reference))]
    async fn reconcile(
        &self,
        charge: &Charge,
        deadline: Instant,
    ) -> Result<Option<PostingReceipt>, PmsError> {
        let Some(room) = charge.room() else {
            return Ok(None);
        };
        let today = chrono::Utc::now().date_naive();
        let window = read_back_window(charge.closed_at.date_naive(), today);
        let reference = charge.reference.as_str();
        let found = self
            .postings_by_reference(&room.reservation_id, reference, &window, deadline)
            .await?;
        if found.is_empty()
            && !window.covers_receipt
            && room.settlement
            && self
                .revenue_in_window(room, &window, deadline)
                .await?
        {
            // A payment is attempted only after its receipt's revenue reached
            // the house account, and that posting is inside the window: so is
            // any earlier attempt of the payment, and "not there" is certain.
            return Ok(None);
        }
        if found.is_empty() && !window.covers_receipt {
            // An earlier attempt may lie before the window: answering "not there"
            // could post it twice, so the outcome stays unknown and the charge
            // goes to the operator's list.
            return Err(PmsError::unknown(format!(
                "not among OPERA's postings since {}, and the receipt closed on {}, before OHIP's {READ_BACK_DAYS}-day read-back window: check the folio",
                window.start,
                charge.closed_at.date_naive()
            )));
        }
        if found.is_empty() {
            return Ok(None);
        }
        // A payment is one posting; a charge is one per folio item.
        let expected = if room.settlement {
            1
        } else {
            folio_items(charge).len()
        };
        if found.len() != expected {
            tracing::warn!(
                found = found.len(),
                expected,
                "OPERA holds a different number of postings for this reference; check the folio"
            );
        }
        let found: Vec<&Value> = found.iter().collect();
        let numbers = transaction_numbers(&found);
        Ok(Some(PostingReceipt {
            pms_reference: if numbers.is_empty() {
                reference.to_string()
            } else {
                numbers.join(",")
            },
        }))
    }

    #[tracing::instrument(skip_all, fields(pms = "opera"))]
    async fn search(&self, term: &str, deadline: Instant) -> Result<Vec<GuestStay>, PmsError> {
        let house = super::house_account_term(term);
        let term = term.trim();
        let by_room = house.is_none() && rest::looks_like_room(term);
        let mut query = vec![
            ("searchTypes", "InHouse".to_string()),
            ("limit", SEARCH_LIMIT.to_string()),
        ];
        match house {
            // Posting masters are in-house reservations on pseudo rooms ("True
            // indicates as pseudo room type. This is usually used for a posting
            // master reservation."); OHIP has no filter for them, so the name
            // narrows the search and `pseudoRoom` picks them.
            Some("") => {}
            Some(name) => query.push(("surname", super::surname_in(name).to_string())),
            None if by_room => query.push(("roomId", term.to_string())),
            None => query.push(("surname", super::surname_in(term).to_string())),
        }
        let url = self.url(&[
            "rsv",
            "v1",
            "hotels",
            &self.settings.hotel_id,
            "reservations",
        ]);
        let request = self
            .api
            .request("getHotelReservations", Call::Read, Method::GET, url)
            .query(&query);
        let answer = self.api.call(&request, deadline).await?;
        let json = answer
            .json()
            .map_err(|_| PmsError::unavailable("OPERA search answer is not JSON"))?;
        let list = json
            .pointer("/reservations/reservationInfo")
            .and_then(Value::as_array)
            .cloned()
            .unwrap_or_default();
        Ok(list
            .iter()
            .filter(|info| is_posting_master(info) == house.is_some())
            .filter_map(guest_stay)
            .filter(|g| match house {
                Some(name) => super::house_account_matches(name, &g.client_name),
                None => super::stay_matches(term, g),
            })
            .collect())
    }

    async fn health(&self) -> Result<(), PmsError> {
        let deadline = Instant::now() + self.settings.timeout;
        let url = self.url(&["csh", "v1", "services", "cashiering", "status"]);
        let request = self
            .api
            .request("pingCashieringService", Call::Read, Method::GET, url);
        self.api.call(&request, deadline).await.map(|_| ())
    }
}

/// The dates a read-back asks for.
#[derive(Debug, PartialEq, Eq)]
struct ReadBack {
    start: chrono::NaiveDate,
    end: chrono::NaiveDate,
    /// Whether the window reaches back to the receipt's day: only then does
    /// "not found" mean OPERA never got it.
    covers_receipt: bool,
}

/// The `startDate`..`endDate` of a read-back for a receipt closed on `closed`:
/// from the day before (a business date not yet rolled) to tomorrow (time zones),
/// at most [`READ_BACK_DAYS`] days counting both ends.
fn read_back_window(closed: chrono::NaiveDate, today: chrono::NaiveDate) -> ReadBack {
    let end = today
        .checked_add_days(chrono::Days::new(1))
        .unwrap_or(today);
    let earliest = end
        .checked_sub_days(chrono::Days::new(READ_BACK_DAYS - 1))
        .unwrap_or(end);
    let start = closed
        .checked_sub_days(chrono::Days::new(1))
        .unwrap_or(closed)
        .clamp(earliest, end);
    ReadBack {
        start,
        end,
        covers_receipt: closed >= earliest,
    }
}

/// A posting-master reservation: one on a pseudo room.
fn is_posting_master(info: &Value) -> bool {
    info.pointer("/roomStay/pseudoRoom").and_then(Value::as_bool) == Some(true)
}

/// One `reservationInfo` as a checked-in guest, if it is one.
fn guest_stay(info: &Value) -> Option<GuestStay> {
    let status = info
        .get("reservationStatus")
        .or_else(|| info.get("computedReservationStatus"))
        .and_then(Value::as_str);
    if status.is_some_and(|s| s != "InHouse" && s != "DueOut") {
        return None;
    }
    let ids = info.get("reservationIdList").and_then(Value::as_array)?;
    let reservation_id = ids
        .iter()
        .find(|id| id.get("type").and_then(Value::as_str) == Some("Reservation"))
        .or_else(|| ids.first())
        .and_then(|id| id.get("id"))
        .and_then(rest::text_of)?;
    let stay = info.get("roomStay");
    let room_id = stay
        .and_then(|s| s.get("roomId"))
        .and_then(rest::text_of)
        .unwrap_or_default();
    let room_description = stay
        .and_then(|s| s.get("roomType"))
        .and_then(rest::text_of)
        .unwrap_or_default();
    let guest = info.get("reservationGuest");
    let name_part = |k: &str| guest.and_then(|g| g.get(k)).and_then(rest::text_of);
    let client_name = name_part("fullName").unwrap_or_else(|| {
        [name_part("givenName"), name_part("surname")]
            .into_iter()
            .flatten()
            .collect::<Vec<_>>()
            .join(" ")
    });
    let blocked = info
        .pointer("/cashiering/billingPrivileges/postingRestriction")
        .and_then(Value::as_bool)
        .unwrap_or(false);
    Some(GuestStay {
        reservation_id,
        room_id,
        room_description,
        client_name,
        credit_limit: None,
        blocked,
    })
}


impl super::AdapterSettings for OperaSettings {
    fn check(&self) -> Result<(), String> {
        OperaSettings::check(self)
    }

    fn build(&self) -> Result<super::Built, String> {
        Ok(super::Built::adapter(OperaPms::new(self.clone())?))
    }

    fn notes(&self) -> Vec<String> {
        // OHIP's token description: "Only while using Client Credentials
        // workflow with OCIM environments, users should pass this header."
        match self.enterprise_id {
            Some(_) => Vec::new(),
            None => vec![
                "no enterprise_id; OCIM environments need it with client credentials (the token request fails without it)"
                    .into(),
            ],
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_enterprise_id_follows_ohips_pattern() {
        let settings = |enterprise: &str| OperaSettings {
            url: "https://ohip.example".into(),
            token_url: None,
            client_id: "c".into(),
            client_secret: Some(SecretString::from("s")),
            client_secret_env: None,
            client_secret_file: None,
            app_key: Some(SecretString::from("k")),
            app_key_env: None,
            app_key_file: None,
            hotel_id: "H1".into(),
            enterprise_id: Some(enterprise.into()),
            default_transaction_code: None,
            scope: default_scope(),
            apply_routing_instructions: None,
            rate_limit: default_rate_limit(),
            timeout: default_timeout(),
        };
        assert!(settings("CBENT").check().is_ok());
        assert!(settings("ENT12345").check().is_ok());
        for bad in ["", "cbent", "ENTERPRISE9", "CB-ENT"] {
            let err = settings(bad).check().unwrap_err();
            assert!(err.contains("enterprise_id"), "{bad}: {err}");
        }
    }

    #[test]
    fn the_read_back_window_never_exceeds_thirty_days() {
        let day = |s: &str| chrono::NaiveDate::parse_from_str(s, "%Y-%m-%d").unwrap();
        let window = |closed: &str| {
            let w = read_back_window(day(closed), day("2026-12-03"));
            (w.start, w.end, w.covers_receipt)
        };
        assert_eq!(
            window("2026-12-03"),
            (day("2026-12-02"), day("2026-12-04"), true)
        );
        let (start, end, covers) = window("2026-11-05");
        assert_eq!((start, end, covers), (day("2026-11-05"), day("2026-12-04"), true));
        assert_eq!((end - start).num_days() + 1, 30, "30 days counting both ends");
        // Older receipts (a replayed fixture, a late retry): the latest 30 days,
        // and "not found" there proves nothing.
        assert_eq!(
            window("2021-01-01"),
            (day("2026-11-05"), day("2026-12-04"), false)
        );
        // A clock behind the POS: the window still ends tomorrow.
        assert_eq!(
            window("2026-12-05"),
            (day("2026-12-04"), day("2026-12-04"), true)
        );
    }

    /// A settlement part of the seed receipt: `amount` in method `method` on
    /// the posting master `PM1`.
    fn settlement(method: &str, amount: rust_decimal::Decimal) -> Charge {
        let mut c = crate::pms::demo_charge(include_str!("../../fixtures/payloads/seed-example.json"));
        c.reference = crate::domain::PostingReference::for_settlement(&c.reference, method);
        c.rooms = vec![RoomCharge {
            reservation_id: "PM1".into(),
            amount,
            gratuity: rust_decimal::Decimal::ZERO,
            payment_method: method.into(),
            revenue: true,
            summary_date: None,
            payments: Vec::new(),
            settlement: true,
            settles: None,
        }];
        c.refund = amount.is_sign_negative();
        c.lines.clear();
        c.service_charge = None;
        c
    }

    #[test]
    fn a_payment_body_carries_method_amount_and_reference() {
        let c = settlement("CA", rust_decimal::Decimal::new(160, 1));
        let room = crate::pms::settlement_of(&c).unwrap();
        let body = payment_body("H1", &c, room).unwrap();
        let criteria = &body["criteria"];
        assert_eq!(criteria["hotelId"], "H1");
        assert_eq!(criteria["reservationId"], json!({ "id": "PM1", "type": "Reservation" }));
        assert_eq!(criteria["paymentMethod"], json!({ "paymentMethod": "CA" }));
        assert_eq!(criteria["postingAmount"]["currencyCode"], c.currency.as_str());
        assert_eq!(criteria["postingReference"], c.reference.as_str());
        assert_eq!(c.reference.as_str().len(), 32);
        assert_eq!(criteria["postingRemark"], "Lightspeed receipt R51.3");
        let text = serde_json::to_string(&body).unwrap();
        assert!(text.contains(r#""amount":16.0"#), "exact decimal: {text}");
        // Nothing the description leaves undescribed (action) or that needs a
        // device or a cashier.
        let keys: Vec<&str> = criteria.as_object().unwrap().keys().map(String::as_str).collect();
        assert_eq!(
            keys,
            ["hotelId", "paymentMethod", "postingAmount", "postingReference", "postingRemark", "reservationId"]
        );
    }

    #[test]
    fn a_refund_payment_is_a_negative_amount() {
        let c = settlement("CA", rust_decimal::Decimal::new(-750, 2));
        let room = crate::pms::settlement_of(&c).unwrap();
        let body = payment_body("H1", &c, room).unwrap();
        let text = serde_json::to_string(&body["criteria"]["postingAmount"]).unwrap();
        assert!(text.contains(r#""amount":-7.50"#), "{text}");
        assert!(body["criteria"].get("originalTransactionNo").is_none());
    }

    #[test]
    fn a_payment_method_opera_cannot_take_is_refused() {
        let amount = rust_decimal::Decimal::new(160, 1);
        for (method, words) in [
            ("  ", "payment_methods"),
            ("A-PAYMENT-CODE-OF-21C", "longer than 20 characters"),
        ] {
            let c = settlement(method, amount);
            let err = payment_body("H1", &c, crate::pms::settlement_of(&c).unwrap()).unwrap_err();
            assert_eq!(err.class, ErrorClass::Rejected, "{method}");
            assert!(err.detail.contains(words), "{method}: {}", err.detail);
        }
        let c = settlement("TWENTY-CHARS-CODE-OK", amount);
        assert!(payment_body("H1", &c, crate::pms::settlement_of(&c).unwrap()).is_ok());
    }

    #[test]
    fn error_text_prefers_the_specific_detail() {
        let body =
            br#"{"type":"x","title":"Bad Request","status":400,"detail":"Folio is closed.\n"}"#;
        assert_eq!(
            error_text(400, body),
            "Folio is closed"
        );
        let body = br#"{"type":"x","title":"Reservation is not in house","status":400}"#;
        assert_eq!(
            error_text(400, body),
            "Reservation is not in house"
        );
        assert_eq!(
            error_text(404, b""),
            "Reservation not found in OPERA"
        );
    }

    #[test]
    fn a_toml_section_selects_and_configures_the_adapter() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("c.toml");
        std::fs::write(
            &path,
            r#"
[[tenants]]
id = "hotel"
api_key = "k"
currency = "EUR"
pms = "opera"

[pms.opera]
adapter = "opera"
url = "https://ohip.example"
client_id = "c"
client_secret_env = "CHARGEBRIDGE_TEST_OPERA_SECRET_UNSET"
app_key = "k"
hotel_id = "H1"
timeout = "3s"
"#,
        )
        .unwrap();
        let s = crate::config::Settings::load_with_env(Some(&path), []).unwrap();
        let crate::pms::PmsSettings::Opera(opera) = &s.pms["opera"] else {
            panic!("not an opera section");
        };
        assert_eq!(opera.timeout, Duration::from_secs(3));
        let err = OperaPms::new(opera.clone()).err().unwrap();
        assert!(
            err.contains("CHARGEBRIDGE_TEST_OPERA_SECRET_UNSET"),
            "{err}"
        );

        std::fs::write(&path, "[pms.opera]\nadapter = \"opera\"\nurl = \"https://x\"\nclient_id = \"c\"\nhotel_id = \"H\"\nclient_secret = \"s\"\napp_key = \"k\"\nhotel = \"typo\"\n").unwrap();
        let err = crate::config::Settings::load_with_env(Some(&path), [])
            .unwrap_err()
            .to_string();
        assert!(err.contains("hotel"), "{err}");
    }

    #[test]
    fn settings_need_each_secret_once() {
        let s: OperaSettings = serde_json::from_value(json!({
            "url": "https://ohip.example", "client_id": "c", "client_secret": "s",
            "app_key": "k", "hotel_id": "H1"
        }))
        .unwrap();
        assert!(s.check().is_ok());
        assert_eq!(s.timeout, Duration::from_secs(8));
        let mut twice = s.clone();
        twice.client_secret_env = Some("X".into());
        assert!(twice.check().unwrap_err().contains("client_secret"));
        let printed = format!("{s:?}");
        assert!(!printed.contains("\"s\""), "{printed}");
    }

    #[test]
    fn secrets_can_come_from_files() {
        use secrecy::ExposeSecret;
        let dir = tempfile::tempdir().unwrap();
        let secret = dir.path().join("secret");
        let app_key = dir.path().join("app-key");
        std::fs::write(&secret, "opera-file-secret\n").unwrap();
        std::fs::write(&app_key, "opera-file-app-key\n").unwrap();
        let s: OperaSettings = serde_json::from_value(json!({
            "url": "https://ohip.example", "client_id": "c", "hotel_id": "H1",
            "client_secret_file": secret.display().to_string(),
            "app_key_file": app_key.display().to_string(),
        }))
        .unwrap();
        assert!(s.check().is_ok());
        assert_eq!(
            s.client_secret_sources().require().unwrap().expose_secret(),
            "opera-file-secret"
        );
        assert_eq!(
            s.app_key_sources().require().unwrap().expose_secret(),
            "opera-file-app-key"
        );
        assert!(OperaPms::new(s.clone()).is_ok());
        let mut both = s;
        both.app_key = Some(SecretString::from("k"));
        assert!(both.check().unwrap_err().contains("app_key_file"));
    }
}
