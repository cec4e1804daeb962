//! apaleo, through its Finance and Booking APIs.
//!
//! * **Auth**: OAuth client credentials at `{identity_url}/connect/token` (HTTP
//!   Basic client id and secret), bearer tokens cached and refreshed ahead of expiry
//!   and once after a 401 ([`super::oauth`]).
//! * **Post**: find the reservation's guest folio that allows adding charges
//!   (`GET /finance/v1/folios?reservationIds=…&type=Guest&excludeClosed=true&expand=allowedActions`: the
//!   first with `AddCharge` in `allowedActions`, the main folio first; none →
//!   rejected "No open folio for this guest"), then one
//!   `POST /finance/v1/folio-actions/{folioId}/charges` per folio item with
//!   `serviceType`, `vatType`, `name`, `amount {amount, currency}` (the item's gross
//!   total as an exact decimal), `quantity` 1 (the count goes into the name:
//!   apaleo does not describe `amount` as per unit or per line) and `receipt` =
//!   `{reference}/{n}` (the charge's derived reference and the item's position,
//!   which apaleo keeps on the charge and shows in read-back). Each call also
//!   carries `Idempotency-Key` with the same value; the adapter does not rely on it.
//! * **Not atomic**: apaleo takes one charge per call. A failure after some items
//!   were applied is *unknown*, never *unavailable* or *rejected*: the next delivery
//!   reconciles, finds the items already there by their receipt, and posts only the
//!   missing ones.
//! * **Outcome classes** (per call, before any item applied): no connection, 401
//!   after one refresh, 403, 408, 429, 503 → unavailable; timeout or connection lost
//!   after sending, other 5XX → unknown; other 4XX → rejected with apaleo's
//!   `messages` (or `detail` / `title`).
//! * **Reconcile**: every folio of the reservation (any type, open or closed), each
//!   read with `GET /finance/v1/folios/{id}`, charges matched on `receipt`. It sees
//!   charges on the reservation's folios, including closed folios and charges moved
//!   between them. It cannot see charges moved to another reservation's or an
//!   external folio, nor charges whose receipt was edited.
//! * **Payments** (settlement parts, `revenue_posting` with `payment_methods`):
//!   one custom payment, `POST /finance/v1/folios/{folioId}/payments` with
//!   `method` (apaleo's vocabulary, [`payment_method`]), `amount {amount,
//!   currency}` and `receipt` = the part's reference (apaleo requires a receipt on
//!   the house account), to the house / external folio the revenue part went to
//!   (a reservation: the folio its charges go to if that one allows `AddPayment`,
//!   else its open folio that does). `Idempotency-Key` repeats the reference
//!   (not relied on). A method outside apaleo's list is refused before any
//!   call. A negative amount
//!   (a refund receipt) is a folio refund, `POST /finance/v1/folios/{folioId}/refunds`,
//!   of the positive amount: apaleo describes no negative payment. Reconcile pages
//!   through `GET /finance/v1/folios/{folioId}/payments` (or `…/refunds`) with
//!   `statusCodes=Pending,Success` and matches `receipt`.
//! * **Search**: `GET /booking/v1/reservations?status=InHouse&textSearch=…`,
//!   narrowed to guests whose name the term names (`Doe`, `Jane Doe`, `Doe, Jane`)
//!   or whose unit (room) matches.
//! * **Health**: a token, then `GET /finance/v1/folios?pageSize=1`.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use secrecy::SecretString;
use serde::Deserialize;
use serde_json::{Value, json};
use tokio::time::Instant;

use reqwest::Method;

use super::itemize::{FolioItem, ItemKind, folio_items};
use super::oauth::TokenRequest;
use super::rate_limit::RateLimit;
use super::rest::{self, ItemOrigin};
use super::transport::{self, Answer, Auth, Call, Transport, TransportSettings, Vendor};
use super::{ErrorClass, GuestStay, PmsAdapter, PmsError, PostingReceipt};
use crate::config::secret::Sources;
use crate::domain::{Charge, RoomCharge};

/// Most guests a search returns.
const SEARCH_LIMIT: u32 = 20;

/// Payments (or refunds) per page of a folio's list: apaleo's maximum ("Items
/// per page. Default: 500. Maximum: 500.").
const PAYMENT_PAGE: usize = 500;

/// Pages of a folio's payments a reconcile reads before it gives up (as
/// unknown, never as "not there"): the list is newest first, so a payment
/// chargebridge just posted is on the first page.
const PAYMENT_PAGES: usize = 20;

/// The methods apaleo takes for a custom payment and a folio refund (the
/// `method` enum of `CreateCustomPaymentRequest` and `CreateFolioRefundRequest`).
const PAYMENT_METHODS: [&str; 28] = [
    "Cash",
    "BankTransfer",
    "CreditCard",
    "Amex",
    "VisaCredit",
    "VisaDebit",
    "MasterCard",
    "MasterCardDebit",
    "Maestro",
    "GiroCard",
    "DiscoverCard",
    "Diners",
    "Jcb",
    "BookingCom",
    "VPay",
    "PayPal",
    "Postcard",
    "Reka",
    "Twint",
    "Lunchcheck",
    "Voucher",
    "ChinaUnionPay",
    "Other",
    "Cheque",
    "Airbnb",
    "HolidayCheck",
    "Representation",
    "IDeal",
];

/// apaleo's method for a tenant's mapped code: apaleo's own names, matched
/// without regard to case, spaces or punctuation (`credit_card`, `Booking.com`),
/// and `CARD` as apaleo's generic card ("Use 'CreditCard', if none of the
/// specific credit cards types matches").
fn payment_method(code: &str) -> Option<&'static str> {
    let folded = |s: &str| {
        s.chars()
            .filter(char::is_ascii_alphanumeric)
            .map(|c| c.to_ascii_lowercase())
            .collect::<String>()
    };
    let wanted = folded(code);
    if wanted == "card" {
        return Some("CreditCard");
    }
    PAYMENT_METHODS.iter().copied().find(|m| folded(m) == wanted)
}

/// Payment or refund: where it goes and how apaleo lists it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Settlement {
    Payment,
    Refund,
}

impl Settlement {
    fn of(room: &RoomCharge) -> Self {
        if room.amount.is_sign_negative() {
            Settlement::Refund
        } else {
            Settlement::Payment
        }
    }

    /// The folio sub-resource, which is also the list's key in apaleo's answer.
    fn segment(self) -> &'static str {
        match self {
            Settlement::Payment => "payments",
            Settlement::Refund => "refunds",
        }
    }

    fn post_op(self) -> &'static str {
        match self {
            Settlement::Payment => "FinanceFoliosByFolioIdPaymentsPost",
            Settlement::Refund => "FinanceFoliosByFolioIdRefundsPost",
        }
    }

    fn list_op(self) -> &'static str {
        match self {
            Settlement::Payment => "FinanceFoliosByFolioIdPaymentsGet",
            Settlement::Refund => "FinanceFoliosByFolioIdRefundsGet",
        }
    }
}

/// The body of the payment (or refund) that settles `room`, a settlement part
/// of `charge`.
fn settlement_body(charge: &Charge, room: &RoomCharge) -> Result<(Settlement, Value), PmsError> {
    let method = payment_method(&room.payment_method).ok_or_else(|| {
        PmsError::rejected(format!(
            "apaleo has no payment method {}",
            room.payment_method.trim()
        ))
    })?;
    if room.amount.is_zero() {
        return Err(PmsError::rejected("No amount to pay"));
    }
    let kind = Settlement::of(room);
    let amount = rest::json_decimal(room.amount.abs()).map_err(PmsError::unavailable)?;
    let mut body = json!({
        "method": method,
        "amount": { "amount": amount, "currency": charge.currency },
        "receipt": charge.reference.to_string(),
    });
    if kind == Settlement::Refund {
        body["reason"] = json!("Lightspeed refund receipt");
    }
    Ok((kind, body))
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ApaleoSettings {
    #[serde(default = "default_url")]
    pub url: String,
    #[serde(default = "default_identity_url")]
    pub identity_url: String,
    pub client_id: String,
    #[serde(default)]
    pub client_secret: Option<SecretString>,
    /// Name of an environment variable holding the client secret.
    #[serde(default)]
    pub client_secret_env: Option<String>,
    /// Path of a file holding the client secret.
    #[serde(default)]
    pub client_secret_file: Option<String>,
    /// Limits folio and guest look-ups to one property.
    #[serde(default)]
    pub property_id: Option<String>,
    /// apaleo `serviceType` of the charges.
    #[serde(default = "default_service_type")]
    pub service_type: String,
    /// `vatType` for items whose tax has no mapped code (`[tenants.mapping]
    /// taxes`), for the service charge and for receipts posted as one amount.
    #[serde(default)]
    pub default_vat_type: Option<String>,
    /// `vatType` of tips.
    #[serde(default = "default_tip_vat_type")]
    pub tip_vat_type: String,
    #[serde(default = "default_timeout", with = "humantime_serde")]
    pub timeout: Duration,
    /// Calls per credential; off by default (apaleo publishes no fixed
    /// figure). Set it when the client's quota is known.
    #[serde(default = "default_rate_limit")]
    pub rate_limit: RateLimit,
}

fn default_url() -> String {
    "https://api.apaleo.com".into()
}
fn default_identity_url() -> String {
    "https://identity.apaleo.com".into()
}
fn default_service_type() -> String {
    "FoodAndBeverages".into()
}
fn default_tip_vat_type() -> String {
    "Without".into()
}
fn default_rate_limit() -> RateLimit {
    RateLimit::OFF
}

fn default_timeout() -> Duration {
    Duration::from_secs(8)
}

impl ApaleoSettings {
    fn client_secret_sources(&self) -> Sources<'_> {
        Sources::new(
            "client_secret",
            &self.client_secret,
            &self.client_secret_env,
            &self.client_secret_file,
        )
    }

    pub fn check(&self) -> Result<(), String> {
        transport::base_url(&self.url, "url")?;
        transport::base_url(&self.identity_url, "identity_url")?;
        if self.client_id.trim().is_empty() {
            return Err("client_id is empty".into());
        }
        self.client_secret_sources().required_origin()?;
        let blank = |v: &str| v.trim().is_empty();
        if self.property_id.as_deref().is_some_and(blank) {
            return Err("property_id is empty".into());
        }
        if blank(&self.service_type) {
            return Err("service_type is empty".into());
        }
        if self.default_vat_type.as_deref().is_some_and(blank) {
            return Err("default_vat_type is empty".into());
        }
        if blank(&self.tip_vat_type) {
            return Err("tip_vat_type is empty".into());
        }
        if self.timeout.is_zero() {
            return Err("timeout must be positive".into());
        }
        Ok(())
    }
}

pub struct ApaleoPms {
    settings: ApaleoSettings,
    base: reqwest::Url,
    api: Transport,
}

/// One charge request, ready to send.
struct ItemRequest {
    receipt: String,
    body: Value,
}

/// What apaleo's answers mean: the shared reading of statuses, with apaleo's
/// `messages` (or problem details) as the staff text.
static APALEO: Vendor = Vendor {
    error_text: |status, body| has_error_body(body).then(|| error_text(status, body)),
    ..Vendor::plain("apaleo")
};

impl ApaleoPms {
    pub fn new(settings: ApaleoSettings) -> Result<Self, String> {
        settings.check()?;
        let base = transport::base_url(&settings.url, "url")?;
        let identity = transport::base_url(&settings.identity_url, "identity_url")?;
        let client_secret = settings.client_secret_sources().require()?;
        let api = Transport::new(TransportSettings {
            vendor: &APALEO,
            timeout: settings.timeout,
            rate_limit: settings.rate_limit,
            auth: Auth::ClientCredentials(TokenRequest {
                url: transport::join(&identity, &["connect", "token"]),
                client_id: settings.client_id.clone(),
                client_secret,
                form: Vec::new(),
                headers: Vec::new(),
            }),
            headers: Vec::new(),
            user_agent: None,
        })?;
        Ok(ApaleoPms {
            settings,
            base,
            api,
        })
    }

    fn url(&self, segments: &[&str]) -> reqwest::Url {
        transport::join(&self.base, segments)
    }

    /// The receipt that identifies item `index` (0-based) of `charge`.
    fn receipt(charge: &Charge, index: usize) -> String {
        format!("{}/{}", charge.reference, index + 1)
    }

    /// One request per folio item, or a refusal naming the missing mapping.
    fn item_requests(
        &self,
        charge: &Charge,
        items: &[FolioItem],
    ) -> Result<Vec<ItemRequest>, PmsError> {
        let origins = rest::item_origins(charge, items);
        // A receipt posted as one amount keeps its VAT type when all lines share one.
        let common_tax = {
            let mut codes = charge
                .lines
                .iter()
                .map(|l| l.tax_lines.first().and_then(|t| t.pms_tax_code.clone()));
            match codes.next() {
                Some(Some(first)) if codes.all(|c| c.as_deref() == Some(first.as_str())) => {
                    Some(first)
                }
                _ => None,
            }
        };
        items
            .iter()
            .zip(&origins)
            .enumerate()
            .map(|(i, (item, origin))| {
                let vat_type = match item.kind {
                    ItemKind::Tip => Some(self.settings.tip_vat_type.clone()),
                    ItemKind::Sale => item.tax_code.clone(),
                    ItemKind::Consolidated => common_tax.clone(),
                    ItemKind::ServiceCharge => None,
                }
                .or_else(|| self.settings.default_vat_type.clone())
                .ok_or_else(|| missing_vat_type(origin))?;
                let amount = rest::json_decimal(item.gross).map_err(PmsError::unavailable)?;
                let receipt = Self::receipt(charge, i);
                // apaleo's description does not say whether `amount` is per unit
                // or per line. One unit at the line's total is the same folio
                // total under either reading; the count goes into the name.
                let count = item.quantity.unsigned_abs();
                let name = if count > 1 {
                    format!("{count} × {}", item.description)
                } else {
                    item.description.clone()
                };
                let body = json!({
                    "serviceType": self.settings.service_type,
                    "vatType": vat_type,
                    "name": name,
                    "amount": { "amount": amount, "currency": charge.currency },
                    "quantity": 1,
                    "receipt": receipt,
                });
                Ok(ItemRequest { receipt, body })
            })
            .collect()
    }

    /// The open house and external folios whose debitor the `*` term's `name`
    /// names (apaleo's `textSearch`: "debitor first name or last name or company
    /// name, folio id").
    async fn house_folios(&self, name: &str, deadline: Instant) -> Result<Vec<GuestStay>, PmsError> {
        let mut stays = Vec::new();
        for kind in ["House", "External"] {
            let mut query = vec![
                ("type", kind.to_string()),
                ("status", "Open".to_string()),
                ("pageSize", SEARCH_LIMIT.to_string()),
            ];
            if !name.is_empty() {
                query.push(("textSearch", name.to_string()));
            }
            stays.extend(
                self.list_folios(query, "folio search", deadline)
                    .await?
                    .iter()
                    .filter_map(house_stay)
                    .filter(|g| super::house_account_matches(name, &g.client_name)),
            );
        }
        Ok(stays)
    }

    /// The reservation's folios: with `open_only`, its open guest folios (where
    /// charges go), else all of them.
    async fn folios(
        &self,
        reservation: &str,
        open_only: bool,
        deadline: Instant,
    ) -> Result<Vec<Value>, PmsError> {
        let mut query = vec![("reservationIds", reservation.to_string())];
        if open_only {
            // Charges go to a guest folio; a read-back looks at every folio of
            // the reservation, since apaleo may route a charge to another one.
            query.push(("type", "Guest".into()));
            query.push(("excludeClosed", "true".into()));
            // apaleo lists a folio's `allowedActions` (which [`pick_folio`] reads)
            // only when asked: "Allowed actions are only returned, when the list
            // is filtered by reservation ID", and `expand` names `allowedActions`
            // among "all embedded resources that should be expanded".
            query.push(("expand", "allowedActions".into()));
        }
        self.list_folios(query, "folio list", deadline).await
    }

    /// `FinanceFoliosGet` with `query` (and the configured property): the folios.
    async fn list_folios(
        &self,
        mut query: Vec<(&'static str, String)>,
        what: &str,
        deadline: Instant,
    ) -> Result<Vec<Value>, PmsError> {
        if let Some(property) = &self.settings.property_id {
            query.push(("propertyIds", property.clone()));
        }
        let url = self.url(&["finance", "v1", "folios"]);
        let request = self
            .api
            .request("FinanceFoliosGet", Call::Read, Method::GET, url)
            .query(&query);
        let json = read_json(&self.api.call(&request, deadline).await?, what)?;
        Ok(json
            .get("folios")
            .and_then(Value::as_array)
            .cloned()
            .unwrap_or_default())
    }

    /// Posts `requests` in order to `folio`. Before the first success a failure
    /// keeps its class; after it, any failure is unknown (part of the receipt is on
    /// the folio).
    async fn post_items(
        &self,
        folio: &str,
        requests: &[ItemRequest],
        already: usize,
        deadline: Instant,
    ) -> Result<Vec<String>, PmsError> {
        let url = self.url(&["finance", "v1", "folio-actions", folio, "charges"]);
        let mut ids = Vec::with_capacity(requests.len());
        for (done, request) in requests.iter().enumerate() {
            let call = self
                .api
                .request(
                    "FinanceFolio-actionsByFolioIdChargesPost",
                    Call::Write,
                    Method::POST,
                    url.clone(),
                )
                .header("Idempotency-Key", request.receipt.clone())
                .json(&request.body);
            let result = self.api.call(&call, deadline).await.map(|answer| {
                answer
                    .json()
                    .ok()
                    .and_then(|v| v.get("id").and_then(rest::text_of))
            });
            match result {
                Ok(id) => ids.push(id.unwrap_or_else(|| request.receipt.clone())),
                Err(e) if done + already == 0 => return Err(e),
                Err(e) => {
                    tracing::error!(
                        folio,
                        receipt = %request.receipt,
                        applied = done + already,
                        total = requests.len() + already,
                        error = %e,
                        "apaleo took part of the receipt; the next delivery completes it"
                    );
                    return Err(PmsError::unknown(format!(
                        "apaleo took {} of {} items, then: {e}",
                        done + already,
                        requests.len() + already
                    )));
                }
            }
        }
        Ok(ids)
    }

    /// The folio a payment to `account` goes to: the house / external folio it
    /// names, else the reservation's open folio that takes payments — the one
    /// its charges go to when that one takes both.
    async fn payment_folio(&self, account: &str, deadline: Instant) -> Result<String, PmsError> {
        if let Some(folio) = house_folio(account) {
            return Ok(folio.to_string());
        }
        let folios = self.folios(account, true, deadline).await?;
        pick_folio(&folios, &["AddCharge", "AddPayment"])
            .or_else(|| pick_folio(&folios, &["AddPayment"]))
            .ok_or_else(|| PmsError::rejected("No open folio takes this payment"))
    }

    /// Posts the payment (or refund) a settlement part describes.
    async fn post_settlement(
        &self,
        charge: &Charge,
        room: &RoomCharge,
        deadline: Instant,
    ) -> Result<PostingReceipt, PmsError> {
        let (kind, body) = settlement_body(charge, room)?;
        let folio = self.payment_folio(&room.reservation_id, deadline).await?;
        let reference = charge.reference.to_string();
        let url = self.url(&["finance", "v1", "folios", &folio, kind.segment()]);
        let call = self
            .api
            .request(kind.post_op(), Call::Write, Method::POST, url)
            .header("Idempotency-Key", reference.clone())
            .json(&body);
        let answer = self.api.call(&call, deadline).await?;
        let id = answer
            .json()
            .ok()
            .and_then(|v| v.get("id").and_then(rest::text_of));
        Ok(PostingReceipt {
            pms_reference: id.unwrap_or(reference),
        })
    }

    /// The payment (or refund) of a settlement part, found by its receipt on the
    /// house folio (or any folio of the reservation).
    async fn find_settlement(
        &self,
        charge: &Charge,
        room: &RoomCharge,
        deadline: Instant,
    ) -> Result<Option<PostingReceipt>, PmsError> {
        let unknown = |e: PmsError| e.as_class(ErrorClass::Unknown, "reconcile");
        let folio_ids: Vec<String> = match house_folio(&room.reservation_id) {
            Some(folio) => vec![folio.to_string()],
            None => self
                .folios(&room.reservation_id, false, deadline)
                .await
                .map_err(unknown)?
                .iter()
                .filter_map(|f| f.get("id").and_then(rest::text_of))
                .collect(),
        };
        let reference = charge.reference.to_string();
        let kind = Settlement::of(room);
        for folio in folio_ids {
            if let Some(id) = self
                .find_on_folio(&folio, kind, &reference, deadline)
                .await
                .map_err(unknown)?
            {
                return Ok(Some(PostingReceipt { pms_reference: id }));
            }
        }
        Ok(None)
    }

    /// The id of the pending or successful payment (refund) on `folio` whose
    /// receipt is `reference`. apaleo's lists have no receipt filter: the pages
    /// are read until it shows, or the list ends.
    async fn find_on_folio(
        &self,
        folio: &str,
        kind: Settlement,
        reference: &str,
        deadline: Instant,
    ) -> Result<Option<String>, PmsError> {
        let url = self.url(&["finance", "v1", "folios", folio, kind.segment()]);
        let page_size = PAYMENT_PAGE.to_string();
        for page in 1..=PAYMENT_PAGES {
            let request = self
                .api
                .request(kind.list_op(), Call::Read, Method::GET, url.clone())
                .query(&[
                    ("statusCodes", "Pending,Success".to_string()),
                    ("pageNumber", page.to_string()),
                    ("pageSize", page_size.clone()),
                ]);
            let answer = self.api.call(&request, deadline).await?;
            // "If the page has no items, the API returns 204 No Content."
            let list = read_json(&answer, kind.segment())?;
            let items = list
                .get(kind.segment())
                .and_then(Value::as_array)
                .map(Vec::as_slice)
                .unwrap_or_default();
            if let Some(id) = items
                .iter()
                .find(|p| p.get("receipt").and_then(Value::as_str) == Some(reference))
                .and_then(|p| p.get("id").and_then(rest::text_of))
            {
                return Ok(Some(id));
            }
            let count = list.get("count").and_then(Value::as_u64);
            let seen = (page * PAYMENT_PAGE) as u64;
            if items.len() < PAYMENT_PAGE || count.is_some_and(|c| seen >= c) {
                return Ok(None);
            }
        }
        Err(PmsError::unknown(format!(
            "more than {} {} on apaleo folio {folio}: not searched to the end",
            PAYMENT_PAGE * PAYMENT_PAGES,
            kind.segment()
        )))
    }
}

fn missing_vat_type(origin: &ItemOrigin) -> PmsError {
    tracing::warn!(
        item = %origin.label,
        mapping_key = %origin.tax_key,
        "no apaleo VAT type: map the tax, or set default_vat_type in the PMS settings"
    );
    PmsError::rejected(format!("No apaleo VAT type for {}", origin.label))
}

/// A 2XX answer as JSON; apaleo answers an empty list with 204.
fn read_json(answer: &Answer, what: &str) -> Result<Value, PmsError> {
    answer
        .json()
        .map_err(|_| PmsError::unavailable(format!("apaleo {what} is not JSON")))
}

/// Whether `body` has apaleo's error shape (`messages`) or problem details.
fn has_error_body(body: &[u8]) -> bool {
    serde_json::from_slice::<Value>(body).is_ok_and(|json| {
        ["messages", "detail", "title", "errors"]
            .iter()
            .any(|k| json.get(k).is_some())
    })
}

/// Staff-readable text of an apaleo error body: `{"messages": [...]}`, or a
/// problem-details body (`detail`, `title`, `errors`).
fn error_text(status: u16, body: &[u8]) -> String {
    let json: Value = serde_json::from_slice(body).unwrap_or(Value::Null);
    let clean = |s: &str| Some(rest::staff_text(s)).filter(|t| !t.is_empty());
    let messages = json
        .get("messages")
        .and_then(Value::as_array)
        .map(|m| {
            m.iter()
                .filter_map(Value::as_str)
                .filter_map(clean)
                .collect::<Vec<_>>()
                .join("; ")
        })
        .filter(|m| !m.is_empty());
    let errors = || {
        json.get("errors").and_then(Value::as_object).and_then(|e| {
            e.values()
                .flat_map(|v| v.as_array().cloned().unwrap_or_default())
                .find_map(|v| v.as_str().and_then(clean))
        })
    };
    messages
        .or_else(|| json.get("detail").and_then(Value::as_str).and_then(clean))
        .or_else(errors)
        .or_else(|| json.get("title").and_then(Value::as_str).and_then(clean))
        .unwrap_or_else(|| match status {
            404 => "Folio not found in apaleo".to_string(),
            s => format!("apaleo refused the charge (HTTP {s})"),
        })
}

/// The folio to post to: allows every one of `wanted` (`AddCharge`,
/// `AddPayment`), the main folio first.
fn pick_folio(folios: &[Value], wanted: &[&str]) -> Option<String> {
    let accepts_charges = |f: &&Value| match f.get("allowedActions").and_then(Value::as_array) {
        Some(actions) => wanted
            .iter()
            .all(|w| actions.iter().any(|a| a.as_str() == Some(*w))),
        // Without the list, an open folio is the best evidence.
        None => f.get("status").and_then(Value::as_str) != Some("Closed"),
    };
    let is_main = |f: &&Value| f.get("isMainFolio").and_then(Value::as_bool) == Some(true);
    let candidates: Vec<&Value> = folios.iter().filter(accepts_charges).collect();
    candidates
        .iter()
        .copied()
        .find(is_main)
        .or_else(|| candidates.first().copied())
        .and_then(|f| f.get("id"))
        .and_then(rest::text_of)
}

#[async_trait::async_trait]
impl PmsAdapter for ApaleoPms {
    fn kind(&self) -> &'static str {
        "apaleo"
    }

    #[tracing::instrument(skip_all, fields(pms = "apaleo", reference = %charge.reference))]
    async fn post(
        &self,
        charge: &Arc<Charge>,
        deadline: Instant,
    ) -> Result<PostingReceipt, PmsError> {
        if let Some(room) = super::settlement_of(charge) {
            return self.post_settlement(charge, room, deadline).await;
        }
        let room = super::room_of(charge)?;
        let items = folio_items(charge);
        let requests = self.item_requests(charge, &items)?;
        let folio = match house_folio(&room.reservation_id) {
            // A house / external folio chosen in a `*` search: posted to as is
            // (apaleo answers whether it takes charges).
            Some(folio) => folio.to_string(),
            None => {
                let folios = self.folios(&room.reservation_id, true, deadline).await?;
                pick_folio(&folios, &["AddCharge"])
                    .ok_or_else(|| PmsError::rejected("No open folio for this guest"))?
            }
        };
        let ids = self.post_items(&folio, &requests, 0, deadline).await?;
        Ok(PostingReceipt {
            pms_reference: ids.join(","),
        })
    }

    #[tracing::instrument(skip_all, fields(pms = "apaleo", reference = %charge.reference))]
    async fn reconcile(
        &self,
        charge: &Charge,
        deadline: Instant,
    ) -> Result<Option<PostingReceipt>, PmsError> {
        if let Some(room) = super::settlement_of(charge) {
            return self.find_settlement(charge, room, deadline).await;
        }
        let Some(room) = charge.room() else {
            return Ok(None);
        };
        let unknown = |e: PmsError| e.as_class(ErrorClass::Unknown, "reconcile");
        let house = house_folio(&room.reservation_id);
        let folio_ids: Vec<String> = match house {
            Some(folio) => vec![folio.to_string()],
            None => self
                .folios(&room.reservation_id, false, deadline)
                .await
                .map_err(unknown)?
                .iter()
                .filter_map(|f| f.get("id").and_then(rest::text_of))
                .collect(),
        };
        // receipt → charge id, over every folio of the reservation.
        let mut found: BTreeMap<String, String> = BTreeMap::new();
        let prefix = format!("{}/", charge.reference);
        for id in folio_ids {
            let url = self.url(&["finance", "v1", "folios", &id]);
            let request = self
                .api
                .request("FinanceFoliosByIdGet", Call::Read, Method::GET, url);
            let answer = self.api.call(&request, deadline).await.map_err(unknown)?;
            let folio = read_json(&answer, "folio").map_err(unknown)?;
            for c in folio
                .get("charges")
                .and_then(Value::as_array)
                .into_iter()
                .flatten()
            {
                if let (Some(receipt), Some(charge_id)) = (
                    c.get("receipt").and_then(Value::as_str),
                    c.get("id").and_then(rest::text_of),
                ) && receipt.starts_with(&prefix)
                {
                    found.entry(receipt.to_string()).or_insert(charge_id);
                }
            }
        }
        if found.is_empty() {
            return Ok(None);
        }
        let items = folio_items(charge);
        let complete = (0..items.len()).all(|i| found.contains_key(&Self::receipt(charge, i)));
        let missing: Vec<ItemRequest> = if complete {
            Vec::new()
        } else {
            self.item_requests(charge, &items)
                .map_err(unknown)?
                .into_iter()
                .filter(|r| !found.contains_key(&r.receipt))
                .collect()
        };
        let mut ids: Vec<String> = found.into_values().collect();
        if !missing.is_empty() {
            tracing::warn!(
                missing = missing.len(),
                "apaleo holds part of this receipt; posting the missing items"
            );
            let folio = match house {
                Some(folio) => folio.to_string(),
                None => {
                    let open = self
                        .folios(&room.reservation_id, true, deadline)
                        .await
                        .map_err(unknown)?;
                    pick_folio(&open, &["AddCharge"]).ok_or_else(|| {
                        PmsError::unknown(
                            "part of the receipt is posted and no folio accepts the rest",
                        )
                    })?
                }
            };
            let more = self
                .post_items(&folio, &missing, ids.len(), deadline)
                .await
                .map_err(unknown)?;
            ids.extend(more);
        }
        Ok(Some(PostingReceipt {
            pms_reference: ids.join(","),
        }))
    }

    #[tracing::instrument(skip_all, fields(pms = "apaleo"))]
    async fn search(&self, term: &str, deadline: Instant) -> Result<Vec<GuestStay>, PmsError> {
        if let Some(name) = super::house_account_term(term) {
            return self.house_folios(name, deadline).await;
        }
        let term = term.trim();
        let mut query = vec![
            ("status", "InHouse".to_string()),
            // "Doe, Jane" as typed would not be found as one text: the surname is.
            (
                "textSearch",
                if term.contains(',') {
                    super::surname_in(term).to_string()
                } else {
                    term.to_string()
                },
            ),
            ("pageSize", SEARCH_LIMIT.to_string()),
        ];
        if let Some(property) = &self.settings.property_id {
            query.push(("propertyIds", property.clone()));
        }
        let url = self.url(&["booking", "v1", "reservations"]);
        let request = self
            .api
            .request("BookingReservationsGet", Call::Read, Method::GET, url)
            .query(&query);
        let answer = self.api.call(&request, deadline).await?;
        let json = read_json(&answer, "reservation search")?;
        Ok(json
            .get("reservations")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
            .filter_map(guest_stay)
            .filter(|g| super::stay_matches(term, g))
            .collect())
    }

    async fn health(&self) -> Result<(), PmsError> {
        let deadline = Instant::now() + self.settings.timeout;
        let url = self.url(&["finance", "v1", "folios"]);
        let request = self
            .api
            .request("FinanceFoliosGet", Call::Read, Method::GET, url)
            .query(&[("pageSize", "1")]);
        self.api.call(&request, deadline).await.map(|_| ())
    }
}

/// What a house-account search answers as the "reservation" of a house or
/// external folio, so that the charge Lightspeed sends back names the folio.
const FOLIO_PREFIX: &str = "folio:";

/// The house / external folio a charge's reservation id names, if it names one.
fn house_folio(reservation_id: &str) -> Option<&str> {
    reservation_id
        .strip_prefix(FOLIO_PREFIX)
        .filter(|id| !id.is_empty())
}

/// One house or external folio as a chargeable account.
fn house_stay(folio: &Value) -> Option<GuestStay> {
    let id = folio.get("id").and_then(rest::text_of)?;
    let text = |p: &str| folio.pointer(p).and_then(rest::text_of);
    let person = [text("/debitor/firstName"), text("/debitor/name")]
        .into_iter()
        .flatten()
        .collect::<Vec<_>>()
        .join(" ");
    let client_name = text("/debitor/company/name")
        .or((!person.is_empty()).then_some(person))
        .unwrap_or_else(|| id.clone());
    let description = match folio.get("type").and_then(Value::as_str) {
        Some("External") => "External account",
        _ => "House account",
    };
    Some(GuestStay {
        reservation_id: format!("{FOLIO_PREFIX}{id}"),
        room_id: id,
        room_description: description.into(),
        client_name,
        credit_limit: None,
        blocked: folio.get("status").and_then(Value::as_str) != Some("Open"),
    })
}

/// One apaleo reservation as a checked-in guest, if it is one.
fn guest_stay(r: &Value) -> Option<GuestStay> {
    if r.get("status").and_then(Value::as_str) != Some("InHouse") {
        return None;
    }
    let reservation_id = r.get("id").and_then(rest::text_of)?;
    let text = |p: &str| r.pointer(p).and_then(rest::text_of);
    let client_name = [
        text("/primaryGuest/firstName"),
        text("/primaryGuest/lastName"),
    ]
    .into_iter()
    .flatten()
    .collect::<Vec<_>>()
    .join(" ");
    Some(GuestStay {
        reservation_id,
        room_id: text("/unit/name").unwrap_or_default(),
        room_description: text("/unitGroup/name").unwrap_or_default(),
        client_name,
        // apaleo has no credit limit on a reservation (only balances).
        credit_limit: None,
        // "Whether the reservation can accept charges on its folios."
        blocked: r.get("isOpenForCharges").and_then(Value::as_bool) == Some(false),
    })
}


impl super::AdapterSettings for ApaleoSettings {
    fn check(&self) -> Result<(), String> {
        ApaleoSettings::check(self)
    }

    fn build(&self) -> Result<super::Built, String> {
        Ok(super::Built::adapter(ApaleoPms::new(self.clone())?))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rust_decimal::Decimal;

    #[test]
    fn the_main_folio_that_takes_charges_wins() {
        let folios = vec![
            json!({"id": "F-1", "isMainFolio": true, "allowedActions": ["AddPayment"]}),
            json!({"id": "F-2", "isMainFolio": false, "allowedActions": ["AddCharge"]}),
            json!({"id": "F-3", "isMainFolio": true, "allowedActions": ["AddCharge"]}),
        ];
        let charges = &["AddCharge"];
        assert_eq!(pick_folio(&folios, charges).as_deref(), Some("F-3"));
        assert_eq!(pick_folio(&folios[..2], charges).as_deref(), Some("F-2"));
        assert_eq!(pick_folio(&folios[..1], charges), None);
        assert_eq!(pick_folio(&folios, &["AddPayment"]).as_deref(), Some("F-1"));
        assert_eq!(
            pick_folio(&folios, &["AddCharge", "AddPayment"]),
            None,
            "no folio here takes both"
        );
    }

    /// A settlement part of `amount` in `method` to the bar's house folio.
    fn settlement(amount: Decimal, method: &str) -> Charge {
        let mut charge = crate::pms::demo_charge(include_str!(
            "../../fixtures/payloads/seed-example.json"
        ));
        charge.lines.clear();
        charge.service_charge = None;
        charge.refund = amount.is_sign_negative();
        charge.rooms = vec![RoomCharge {
            reservation_id: "folio:MUC-HOUSE".into(),
            amount,
            gratuity: Decimal::ZERO,
            payment_method: method.into(),
            revenue: true,
            summary_date: None,
            payments: Vec::new(),
            settlement: true,
            settles: None,
        }];
        charge
    }

    #[test]
    fn a_settlement_is_a_custom_payment_with_our_reference_as_receipt() {
        let charge = settlement(Decimal::new(1600, 2), "Cash");
        let room = crate::pms::settlement_of(&charge).unwrap();
        let (kind, body) = settlement_body(&charge, room).unwrap();
        assert_eq!(kind, Settlement::Payment);
        assert_eq!(
            body,
            json!({
                "method": "Cash",
                "amount": { "amount": rest::json_decimal(Decimal::new(1600, 2)).unwrap(), "currency": charge.currency },
                "receipt": charge.reference.to_string(),
            })
        );
        assert_eq!(body["amount"]["amount"].to_string(), "16.00", "exact digits");
        assert_eq!(body["receipt"].as_str().unwrap().len(), 32);
    }

    #[test]
    fn a_negative_settlement_is_a_refund_of_the_positive_amount() {
        let charge = settlement(Decimal::new(-1600, 2), "CASH");
        let room = crate::pms::settlement_of(&charge).unwrap();
        let (kind, body) = settlement_body(&charge, room).unwrap();
        assert_eq!(kind, Settlement::Refund);
        assert_eq!((kind.segment(), kind.post_op()), ("refunds", "FinanceFoliosByFolioIdRefundsPost"));
        assert_eq!(body["method"], "Cash");
        assert_eq!(body["amount"]["amount"].to_string(), "16.00");
        assert_eq!(body["receipt"], charge.reference.to_string());
        assert!(body["reason"].is_string());
    }

    #[test]
    fn methods_apaleo_cannot_take_are_refused() {
        for (code, method) in [
            ("Cash", "Cash"),
            ("CREDIT_CARD", "CreditCard"),
            ("card", "CreditCard"),
            ("Booking.com", "BookingCom"),
            ("visa-debit", "VisaDebit"),
        ] {
            assert_eq!(payment_method(code), Some(method), "{code}");
        }
        // Read-back only (apaleo's payment services set them), or not apaleo's.
        for code in ["Invoice", "PspCash", "IKPMS", ""] {
            assert_eq!(payment_method(code), None, "{code}");
        }
        let charge = settlement(Decimal::new(500, 2), "IKPMS");
        let room = crate::pms::settlement_of(&charge).unwrap();
        let refused = settlement_body(&charge, room).unwrap_err();
        assert!(refused.is_rejected());
        assert!(refused.detail.contains("IKPMS"), "{}", refused.detail);
    }

    #[test]
    fn error_text_reads_both_error_shapes() {
        assert_eq!(
            error_text(422, br#"{"messages":["Folio is closed."]}"#),
            "Folio is closed"
        );
        assert_eq!(
            error_text(400, br#"{"title":"One or more validation errors occurred.","errors":{"vatType":["Unknown VAT type"]}}"#),
            "Unknown VAT type"
        );
        assert_eq!(error_text(404, b""), "Folio not found in apaleo");
    }

    #[test]
    fn a_toml_section_selects_the_adapter() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("c.toml");
        std::fs::write(
            &path,
            "[pms.a]\nadapter = \"apaleo\"\nclient_id = \"c\"\nclient_secret = \"s\"\nproperty_id = \"MUC\"\ndefault_vat_type = \"Normal\"\n",
        )
        .unwrap();
        let s = crate::config::Settings::load_with_env(Some(&path), []).unwrap();
        let crate::pms::PmsSettings::Apaleo(apaleo) = &s.pms["a"] else {
            panic!("not an apaleo section");
        };
        assert_eq!(apaleo.property_id.as_deref(), Some("MUC"));
        assert!(ApaleoPms::new(apaleo.clone()).is_ok());
    }

    #[test]
    fn settings_have_apaleo_defaults() {
        let s: ApaleoSettings =
            serde_json::from_value(json!({"client_id": "c", "client_secret_env": "APALEO_SECRET"}))
                .unwrap();
        assert!(s.check().is_ok());
        assert_eq!(s.url, "https://api.apaleo.com");
        assert_eq!(s.service_type, "FoodAndBeverages");
        assert_eq!(s.tip_vat_type, "Without");
    }

    #[test]
    fn the_client_secret_can_come_from_a_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("secret");
        std::fs::write(&path, "apaleo-file-secret\n").unwrap();
        let s: ApaleoSettings = serde_json::from_value(
            json!({"client_id": "c", "client_secret_file": path.display().to_string()}),
        )
        .unwrap();
        assert!(s.check().is_ok());
        use secrecy::ExposeSecret;
        assert_eq!(
            s.client_secret_sources().require().unwrap().expose_secret(),
            "apaleo-file-secret"
        );
        assert!(ApaleoPms::new(s.clone()).is_ok());
        let mut both = s;
        both.client_secret_env = Some("APALEO_SECRET".into());
        assert!(both.check().unwrap_err().contains("client_secret_file"));
    }
}
