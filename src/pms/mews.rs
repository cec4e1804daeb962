//! The Mews adapter (`adapter = "mews"`): posts room charges through the Mews
//! Connector API.
//!
//! Every call is `POST {url}/api/connector/v1/<resource>/<operation>` with a JSON
//! body carrying `ClientToken`, `AccessToken` and `Client` (name and version).
//!
//! ## Posting
//! 1. `reservations/getAll/2023-06-06` by the charge's reservation id gives the
//!    reservation's state and its owner's account. Only `Started` (checked in)
//!    reservations take charges; anything else is refused for good with a message
//!    for the staff ("Guest not checked in", "Guest has checked out",
//!    "Unknown reservation").
//! 2. `orders/add` on the mapped service (the tenant's revenue-center mapping,
//!    else this adapter's `service_id`), linked to the reservation, consumed at
//!    the receipt's close time, with the items of [`folio_items`]: whole
//!    `UnitCount`s, the gross `UnitAmount` written exactly as the decimal (a
//!    refund is a positive count at a negative price), the mapped tax code and
//!    accounting category. Every item carries the charge's reference as its
//!    `ExternalIdentifier`, and the order's `Notes` carry it with the receipt ids.
//!    (The order itself has no `ExternalIdentifier` field in Mews's schema, which
//!    refuses unknown fields, so the reference travels on the items.)
//!
//! `orders/add` has no idempotency key, so a failure is classified by whether the
//! request can have been applied:
//!
//! | what happened                                         | class        |
//! |-------------------------------------------------------|--------------|
//! | could not connect, or deadline reached before sending | unavailable  |
//! | 429 (request not processed)                           | unavailable  |
//! | 401 (credentials; logged as an error)                 | unavailable  |
//! | 3XX / 404 / 405 / 415 (set-up error; logged as one)   | unavailable  |
//! | other unexpected 4XX                                  | unavailable  |
//! | 400 / 403                                             | rejected     |
//! | 408 on `orders/add` (Mews gave up while processing)   | unknown      |
//! | 5XX, timeout or connection lost after sending         | unknown      |
//!
//! Each request waits at most `min(timeout, deadline - now)`.
//!
//! ## Reconciliation
//! After an unknown outcome the next delivery asks [`MewsPms::reconcile`]: it finds
//! the reservation's account again (whatever the reservation's state now) and
//! lists that account's order items with `orderItems/getAll`, filtered by the
//! service posting uses (`ServiceIds`, one of the filters Mews requires), by
//! `AccountIds` and by `ConsumedUtc` within `closed_at ± reconcile_window`
//! (we set the consumption time to `closed_at`, so the item falls inside), and
//! follows `Cursor` / `Limitation` pages until the list is exhausted. An item whose
//! `ExternalIdentifier` is the reference (or whose `Notes` contain it) means the
//! charge is there; its `ServiceOrderId` (the order id) is the receipt.
//!
//! What it cannot guarantee:
//! * It only sees items whose consumption time Mews kept within the window; an
//!   item whose consumption was moved outside it by hotel staff, or an item moved
//!   to another account, is not found (and would be posted again).
//! * It must read every page before answering "not there"; if the deadline comes
//!   first, or any page fails, it answers an error and the outcome stays unknown
//!   (500 to Lightspeed, never a second posting). A guest with a very large
//!   account may therefore need several retries.
//! * Mews's description of `orderItems/getAll` lists fewer filters than its
//!   parameter table (which accepts `AccountIds` and `ConsumedUtc` alone); the
//!   request carries `ServiceIds`, which both accept. An item moved to another
//!   service by hotel staff is not found.
//! * A charge found in state `Canceled` still counts as found: the hotel chose to
//!   cancel it, and posting it again would undo that choice.
//!
//! ## Payments against the house account
//! A settlement part ([`super::settlement_of`]: one of a receipt's payments,
//! settling its revenue on the house account) is posted with
//! `payments/addExternal` ("a payment that is tracked outside of the system") to
//! the account the revenue part was charged to: the paymaster of an
//! `account:<id>`, or the owner of a reservation (then also naming the
//! reservation, which must be checked in, as for a charge). The method code is
//! one of Mews's external payment types (`Cash`, `CreditCard`, `GiftCard`, …,
//! [`EXTERNAL_PAYMENT_TYPES`], any case); anything else is refused before
//! sending. Whether the hotel has that type enabled is Mews's to say (a 400 /
//! 403, refused with its message). The amount is the part's, signed: a refund
//! receipt sends a negative `GrossValue`. The reference goes as the payment's
//! `ExternalIdentifier` and in its `Notes`; failures are classified as for
//! `orders/add` (no idempotency key there either).
//!
//! Reconciliation lists the account's payments with `payments/getAll`
//! (`AccountIds`, and `CreatedUtc` from `reconcile_window` before the receipt's
//! close until now, cut to the last three months, Mews's longest span), newest
//! first, page by page, and takes the payment whose
//! `Data.External.ExternalIdentifier` or `Identifier` is the reference, or whose
//! `Notes` contain it (Mews's description does not say in which of them the
//! `ExternalIdentifier` sent comes back). A payment posted more than three
//! months before the look-up, for a receipt closed earlier still, is not seen;
//! nor is one moved to another account.
//!
//! ## Search
//! `reservations/getAll/2023-06-06` with `States: ["Started"]`, then
//! `customers/getAll` for the owners' names and `resources/getAll` for the
//! assigned rooms; the term matches the name, the room or the confirmation
//! number. A customer classified `Blocklist`/`Blacklist`/`Cashlist` is listed as
//! blocked (no charges to the room).
//!
//! ## Health
//! `configuration/get`, a cheap authenticated call.

use std::collections::{BTreeMap, HashMap};
use std::str::FromStr;
use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, SecondsFormat, Utc};
use rust_decimal::Decimal;
use secrecy::{ExposeSecret, SecretString};
use serde::Deserialize;
use serde::de::DeserializeOwned;
use serde_json::{Map, Value, json};
use tokio::time::Instant;

use reqwest::Method;

use super::itemize::{FolioItem, folio_items};
use super::rate_limit::RateLimit;
use super::transport::{self, Answer, Auth, Call, Transport, TransportSettings, Vendor};
use super::{ErrorClass, GuestStay, PmsAdapter, PmsError, PostingReceipt};
use crate::domain::RoomCharge;
use crate::config::secret::Sources;
use crate::domain::Charge;

/// Page size of every `getAll` (Mews's maximum `Limitation.Count`).
const PAGE: usize = 1000;
/// A bound on pages followed, against a server that keeps answering full pages.
const MAX_PAGES: usize = 200;
/// `orders/add` is not sent with less time than this left: a request cut off
/// after sending would leave the outcome unknown for nothing.
const MIN_WRITE_BUDGET: Duration = Duration::from_millis(100);
/// Mews time filters span at most three months; the window is applied on both
/// sides of the close time.
const MAX_RECONCILE_WINDOW: Duration = Duration::from_secs(44 * 86_400);
/// Ids per `customers/getAll` / `resources/getAll` request.
const IDS_PER_REQUEST: usize = 100;
/// The longest `CreatedUtc` span of a `payments/getAll` (Mews: 3 months).
const MAX_PAYMENT_SPAN: chrono::Duration = chrono::Duration::days(90);
/// Clock difference allowed between Mews and us when reading payments back.
const CLOCK_SKEW: chrono::Duration = chrono::Duration::minutes(5);

/// Mews's external payment types (`ExternalPaymentTypeEnum` of
/// `payments/addExternal`), spelt as Mews spells them: the codes a tenant's
/// `payment_methods` may map to for Mews. Several are marked "deprecated, only
/// for existing partners" by Mews (`CreditCard`, the card brands, `IDeal`,
/// `PayPal`, `OnlinePayment`, `DepositCreditCard`); Mews decides whether it
/// takes them from an integration.
const EXTERNAL_PAYMENT_TYPES: [&str; 43] = [
    "Unspecified",
    "BadDebts",
    "Bacs",
    "WireTransfer",
    "Invoice",
    "ExchangeRateDifference",
    "Complimentary",
    "Reseller",
    "ExchangeRoundingDifference",
    "Barter",
    "Commission",
    "BankCharges",
    "CrossSettlement",
    "Cash",
    "CreditCard",
    "Prepayment",
    "Cheque",
    "Bancontact",
    "IDeal",
    "PayPal",
    "GiftCard",
    "LoyaltyPoints",
    "ChequeVacances",
    "OnlinePayment",
    "CardCheck",
    "PaymentHubRedirection",
    "Voucher",
    "MasterCard",
    "Visa",
    "Amex",
    "Discover",
    "DinersClub",
    "Jcb",
    "UnionPay",
    "Twint",
    "Reka",
    "LoyaltyCard",
    "PosDiningAndSpaReward",
    "DirectDebit",
    "DepositCheck",
    "DepositCash",
    "DepositCreditCard",
    "DepositWireTransfer",
];

/// The external payment type a method code names (any case), as Mews spells it.
fn external_payment_type(method: &str) -> Option<&'static str> {
    let method = method.trim();
    EXTERNAL_PAYMENT_TYPES
        .iter()
        .copied()
        .find(|t| t.eq_ignore_ascii_case(method))
}

/// `[pms.NAME]` with `adapter = "mews"`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MewsSettings {
    /// Platform address, e.g. `https://api.mews.com`.
    pub url: String,
    #[serde(default)]
    pub client_token: Option<SecretString>,
    /// Name of an environment variable holding the client token.
    #[serde(default)]
    pub client_token_env: Option<String>,
    /// Path of a file holding the client token.
    #[serde(default)]
    pub client_token_file: Option<String>,
    #[serde(default)]
    pub access_token: Option<SecretString>,
    /// Name of an environment variable holding the access token.
    #[serde(default)]
    pub access_token_env: Option<String>,
    /// Path of a file holding the access token.
    #[serde(default)]
    pub access_token_file: Option<String>,
    /// Sent as `Client` with chargebridge's version.
    #[serde(default = "default_client_name")]
    pub client_name: String,
    /// Needed with a portfolio access token.
    #[serde(default)]
    pub enterprise_id: Option<String>,
    /// The enterprise's chain; needed with a portfolio access token (Mews's
    /// `customers/getAll` takes `ChainIds`, "Required when using Portfolio Access
    /// Tokens", and no `EnterpriseIds`).
    #[serde(default)]
    pub chain_id: Option<String>,
    /// Service to post to when the tenant maps no service for the revenue center.
    #[serde(default)]
    pub service_id: Option<String>,
    /// Mews tax code for items that carry none of their own: tips, service
    /// charge, and lines whose Lightspeed tax is not mapped. Legal environments
    /// that require a tax code on every item refuse the order without it.
    #[serde(default)]
    pub default_tax_code: Option<String>,
    /// Upper bound of one request (the request deadline may cut it shorter).
    #[serde(default = "default_timeout", with = "humantime_serde")]
    pub timeout: Duration,
    /// Reconciliation looks at items consumed within this of the receipt's close.
    #[serde(default = "default_reconcile_window", with = "humantime_serde")]
    pub reconcile_window: Duration,
    /// Mews allows 200 requests per access token in 30 s; replicas sharing the
    /// token share that, so divide `requests` among them.
    #[serde(default = "default_rate_limit")]
    pub rate_limit: RateLimit,
}

fn default_rate_limit() -> RateLimit {
    RateLimit::new(200, Duration::from_secs(30))
}

fn default_client_name() -> String {
    "chargebridge".to_string()
}
fn default_timeout() -> Duration {
    Duration::from_secs(8)
}
fn default_reconcile_window() -> Duration {
    Duration::from_secs(2 * 86_400)
}

impl MewsSettings {
    /// Settings for `url` with the two tokens and every default.
    pub fn new(url: impl Into<String>, client_token: &str, access_token: &str) -> Self {
        MewsSettings {
            url: url.into(),
            client_token: Some(SecretString::from(client_token.to_string())),
            client_token_env: None,
            client_token_file: None,
            access_token: Some(SecretString::from(access_token.to_string())),
            access_token_env: None,
            access_token_file: None,
            client_name: default_client_name(),
            enterprise_id: None,
            chain_id: None,
            service_id: None,
            default_tax_code: None,
            timeout: default_timeout(),
            reconcile_window: default_reconcile_window(),
            rate_limit: default_rate_limit(),
        }
    }

    fn client_token_sources(&self) -> Sources<'_> {
        Sources::new(
            "client_token",
            &self.client_token,
            &self.client_token_env,
            &self.client_token_file,
        )
    }

    fn access_token_sources(&self) -> Sources<'_> {
        Sources::new(
            "access_token",
            &self.access_token,
            &self.access_token_env,
            &self.access_token_file,
        )
    }

    /// Rules serde cannot express; the message names the key.
    pub fn check(&self) -> Result<(), String> {
        self.rate_limit.check()?;
        transport::base_url(&self.url, "url")?;
        self.client_token_sources().required_origin()?;
        self.access_token_sources().required_origin()?;
        if self.client_name.trim().is_empty() {
            return Err("client_name is empty".into());
        }
        for (value, key) in [
            (&self.enterprise_id, "enterprise_id"),
            (&self.chain_id, "chain_id"),
            (&self.service_id, "service_id"),
        ] {
            if let Some(v) = value
                && uuid::Uuid::parse_str(v).is_err()
            {
                return Err(format!("{key} `{v}` is not a Mews id (UUID)"));
            }
        }
        if self.enterprise_id.is_some() && self.chain_id.is_none() {
            return Err(
                "chain_id is required with enterprise_id (a portfolio access token): Mews's customers/getAll needs ChainIds"
                    .into(),
            );
        }
        if self.timeout.is_zero() {
            return Err("timeout must be positive".into());
        }
        if self.reconcile_window.is_zero() || self.reconcile_window > MAX_RECONCILE_WINDOW {
            return Err(
                "reconcile_window must be positive and at most 44d (Mews filters span 3 months)"
                    .into(),
            );
        }
        Ok(())
    }
}

/// The Mews Connector API adapter; one transport per adapter.
pub struct MewsPms {
    api: Transport,
    /// `{url}/api/connector/v1/`
    base: reqwest::Url,
    client_token: SecretString,
    access_token: SecretString,
    client: String,
    settings: MewsSettings,
}

/// What Mews's answers mean (its error statuses as the Connector API describes
/// them in `tests/vendor/mews`): 400 and 403 are refusals with a `Message` for
/// the user; 408 on a write was being processed and may have been applied; 401,
/// 429 and the set-up statuses ran nothing; any other 4XX is not one Mews
/// describes, so nothing is assumed applied.
static MEWS: Vendor = Vendor {
    name: "Mews",
    error_text: |_, body| {
        serde_json::from_slice::<MewsErrorBody>(body)
            .ok()
            .and_then(|e| e.message)
            .map(|m| staff_sentence(&m))
    },
    classify: |status, call, _| match (status, call) {
        (400 | 403, _) => Some(ErrorClass::Rejected),
        // "Error caused by heavy request that takes too long to process
        // (typically tens of seconds)": Mews was processing the order when it
        // gave up, and nothing says it was rolled back.
        (408, Call::Write) => Some(ErrorClass::Unknown),
        // A 503 too: nothing in Mews's description says it ran nothing.
        (500..=599, Call::Write) => Some(ErrorClass::Unknown),
        (401 | 429, _) => None,
        (402..=499, Call::Write) => Some(ErrorClass::Unavailable),
        _ => None,
    },
    request_id_header: None,
    answer_id: |body| {
        serde_json::from_slice::<MewsErrorBody>(body)
            .ok()
            .and_then(|e| e.request_id)
    },
};

impl MewsPms {
    pub fn new(settings: MewsSettings) -> Result<Self, String> {
        settings.check()?;
        let client_token = settings.client_token_sources().require()?;
        let access_token = settings.access_token_sources().require()?;
        let client = format!(
            "{} {}",
            settings.client_name.trim(),
            env!("CARGO_PKG_VERSION")
        );
        let api = Transport::new(TransportSettings {
            vendor: &MEWS,
            timeout: settings.timeout,
            rate_limit: settings.rate_limit,
            // The tokens travel in the body.
            auth: Auth::None,
            headers: Vec::new(),
            user_agent: Some(client.clone()),
        })?;
        let base = transport::base_url(&settings.url, "url")?;
        Ok(MewsPms {
            api,
            base: transport::join(&base, &["api", "connector", "v1"]),
            client_token,
            access_token,
            client,
            settings,
        })
    }

    /// The request body: credentials, then `fields`. `EnterpriseId` (single
    /// operations) or `EnterpriseIds` (`getAll`) when configured, except for
    /// `customers/getAll` ([`Scope::Chain`]), which takes `ChainIds` instead.
    fn body(&self, fields: Value, scope: Scope) -> Value {
        let mut body = Map::new();
        body.insert(
            "ClientToken".into(),
            Value::String(self.client_token.expose_secret().to_string()),
        );
        body.insert(
            "AccessToken".into(),
            Value::String(self.access_token.expose_secret().to_string()),
        );
        body.insert("Client".into(), Value::String(self.client.clone()));
        match (scope, &self.settings.enterprise_id, &self.settings.chain_id) {
            (Scope::Chain, _, Some(chain)) => {
                body.insert("ChainIds".into(), json!([chain]));
            }
            (Scope::Chain, _, None) | (Scope::None, _, _) | (_, None, _) => {}
            (Scope::EnterpriseList, Some(id), _) => {
                body.insert("EnterpriseIds".into(), json!([id]));
            }
            (Scope::Enterprise, Some(id), _) => {
                body.insert("EnterpriseId".into(), Value::String(id.clone()));
            }
        }
        if let Value::Object(fields) = fields {
            body.extend(fields);
        }
        Value::Object(body)
    }

    /// One operation (`orders/add`, `reservations/getAll/2023-06-06`); every
    /// Connector API operation is a POST of JSON. Never logs the body (it carries
    /// the tokens). A 2XX answers its body as JSON (`null` when empty).
    async fn call(
        &self,
        op: &'static str,
        call: Call,
        body: &Value,
        deadline: Instant,
    ) -> Result<Answer, PmsError> {
        let url = transport::join(&self.base, &op.split('/').collect::<Vec<_>>());
        let mut request = self.api.request(op, call, Method::POST, url).json(body);
        if call == Call::Write {
            request = request.min_budget(MIN_WRITE_BUDGET);
        }
        self.api.call(&request, deadline).await
    }

    /// Every item of a `getAll`, following `Cursor` until a short page. Stops early
    /// once `stop` holds for an item.
    async fn get_all<T: DeserializeOwned>(
        &self,
        op: &'static str,
        key: &'static str,
        filter: Value,
        deadline: Instant,
        stop: impl Fn(&T) -> bool,
    ) -> Result<Vec<T>, PmsError> {
        let mut all = Vec::new();
        let mut cursor: Option<String> = None;
        for _ in 0..MAX_PAGES {
            let scope = if op == "customers/getAll" {
                Scope::Chain
            } else {
                Scope::EnterpriseList
            };
            let mut body = self.body(filter.clone(), scope);
            if let Value::Object(fields) = &mut body {
                fields.insert(
                    "Limitation".into(),
                    json!({ "Count": PAGE, "Cursor": cursor }),
                );
            }
            let answer = self.call(op, Call::Read, &body, deadline).await?;
            let Ok(Value::Object(mut page)) = answer.json() else {
                return Err(PmsError::unavailable(format!(
                    "Mews {op}: answer is not a JSON object"
                )));
            };
            let items: Vec<T> = match page.remove(key) {
                None | Some(Value::Null) => Vec::new(),
                Some(v) => serde_json::from_value(v).map_err(|e| {
                    PmsError::unavailable(format!("Mews {op}: unreadable {key}: {e}"))
                })?,
            };
            let next = page
                .remove("Cursor")
                .and_then(|c| c.as_str().map(str::to_string));
            let count = items.len();
            let found = items.iter().any(&stop);
            all.extend(items);
            if found || count < PAGE || next.is_none() || next == cursor {
                return Ok(all);
            }
            cursor = next;
        }
        Err(PmsError::unavailable(format!(
            "Mews {op}: more than {MAX_PAGES} pages"
        )))
    }

    /// The reservation with this id, whatever its state; `None` if Mews has none.
    async fn reservation(
        &self,
        id: &str,
        deadline: Instant,
    ) -> Result<Option<Reservation>, PmsError> {
        let found: Vec<Reservation> = self
            .get_all(
                "reservations/getAll/2023-06-06",
                "Reservations",
                json!({ "ReservationIds": [id] }),
                deadline,
                |r: &Reservation| r.id.eq_ignore_ascii_case(id),
            )
            .await?;
        Ok(found.into_iter().find(|r| r.id.eq_ignore_ascii_case(id)))
    }

    /// The service to post to, or a refusal naming what the operator must map.
    fn service_for(&self, charge: &Charge) -> Result<String, PmsError> {
        let service = charge
            .outlet
            .clone()
            .or_else(|| self.settings.service_id.clone());
        let rc = charge.revenue_center.as_ref();
        let rc_id = rc.and_then(|r| r.id.as_deref()).unwrap_or("");
        let rc_name = rc.and_then(|r| r.name.as_deref()).unwrap_or("");
        let Some(service) = service else {
            tracing::warn!(
                tenant = %charge.tenant,
                revenue_center_id = rc_id,
                revenue_center_name = rc_name,
                "no Mews service for this revenue center: add revenue_centers.\"{}\" (or default_revenue_center) to the tenant's [tenants.mapping], or service_id to its Mews [pms] section",
                if rc_id.is_empty() { rc_name } else { rc_id }
            );
            return Err(PmsError::rejected(
                "No Mews service mapped for this outlet",
            ));
        };
        if uuid::Uuid::parse_str(&service).is_err() {
            tracing::warn!(
                tenant = %charge.tenant,
                revenue_center_id = rc_id,
                service = %service,
                "the Mews service mapped for this revenue center is not a Mews id (UUID)"
            );
            return Err(PmsError::rejected(
                "Mews service mapping is invalid for this outlet",
            ));
        }
        Ok(service)
    }

    fn order_body(
        &self,
        charge: &Charge,
        service: &str,
        reservation: Option<&str>,
        account: &str,
    ) -> Result<Value, PmsError> {
        let mut items = Vec::new();
        for item in folio_items(charge) {
            if let Some(category) = &item.revenue_code
                && uuid::Uuid::parse_str(category).is_err()
            {
                tracing::warn!(
                    tenant = %charge.tenant,
                    category = %category,
                    "a mapped Mews accounting category is not a Mews id (UUID): fix [tenants.mapping] accounting_groups / gratuity_code / service_charge_code"
                );
                return Err(PmsError::rejected(
                    "Mews accounting category mapping is invalid",
                ));
            }
            let mut item = item;
            if item.tax_code.is_none() {
                item.tax_code = self.settings.default_tax_code.clone();
            }
            items.push(order_item(
                &item,
                &charge.currency,
                charge.reference.as_str(),
            )?);
        }
        Ok(self.body(
            json!({
                "ServiceId": service,
                "AccountId": account,
                // Optional: a paymaster account's order links no reservation.
                "LinkedReservationId": reservation,
                "ConsumptionUtc": utc(charge.closed_at),
                "Notes": order_notes(charge),
                "Options": { "DisableItemGrouping": true },
                "Items": items,
            }),
            Scope::Enterprise,
        ))
    }
}

impl MewsPms {
    /// `orders/add`; a success status means Mews applied it, even if the body
    /// got lost.
    async fn add_order(
        &self,
        charge: &Charge,
        body: &Value,
        deadline: Instant,
    ) -> Result<PostingReceipt, PmsError> {
        let answer = self.call("orders/add", Call::Write, body, deadline).await?;
        let order = answer
            .json()
            .ok()
            .and_then(|a| a.get("OrderId").and_then(Value::as_str).map(str::to_string));
        if order.is_none() {
            tracing::warn!(reference = %charge.reference, "Mews accepted the order without a readable OrderId; answering with the reference");
        }
        Ok(PostingReceipt {
            pms_reference: order.unwrap_or_else(|| charge.reference.to_string()),
        })
    }

    /// The account a posting to `room` went to, found again whatever the
    /// reservation's state now; `None` when nothing can have been posted (an
    /// id posting refuses, no such reservation, a reservation without account).
    async fn account_posted_to(
        &self,
        room: &RoomCharge,
        deadline: Instant,
    ) -> Result<Option<String>, PmsError> {
        match paymaster_account(&room.reservation_id) {
            Ok(Some(account)) => Ok(Some(account.to_string())),
            // Never posted: posting refuses the same id.
            Err(_) => Ok(None),
            Ok(None) => match self.reservation(&room.reservation_id, deadline).await {
                Ok(Some(r)) => Ok(r.account().map(str::to_string)),
                // No such reservation (or an id Mews refuses): nothing can have
                // been posted to it, since posting needs this look-up to succeed.
                Ok(None) => Ok(None),
                Err(e) if e.status() == Some(400) => Ok(None),
                Err(e) => Err(e.as_class(ErrorClass::Unavailable, "")),
            },
        }
    }

    /// `payments/addExternal` of a settlement part: the part's amount to the
    /// account its revenue part was charged to.
    async fn post_payment(
        &self,
        charge: &Charge,
        room: &RoomCharge,
        deadline: Instant,
    ) -> Result<PostingReceipt, PmsError> {
        let Some(kind) = external_payment_type(&room.payment_method) else {
            tracing::warn!(
                tenant = %charge.tenant,
                method = %room.payment_method,
                "the payment method is not a Mews external payment type (Cash, CreditCard, GiftCard, …): fix [tenants.mapping] payment_methods / default_payment_method"
            );
            return Err(PmsError::rejected("Payment method not valid for Mews"));
        };
        let body = if let Some(account) = paymaster_account(&room.reservation_id)? {
            self.payment_body(charge, room, kind, account, None)?
        } else {
            let reservation = match self.reservation(&room.reservation_id, deadline).await {
                Ok(Some(r)) => r,
                Ok(None) => return Err(PmsError::rejected("Unknown reservation")),
                Err(e) if e.status() == Some(400) => {
                    return Err(PmsError::rejected("Unknown reservation"));
                }
                Err(e) => return Err(e.as_class(ErrorClass::Unavailable, "")),
            };
            reservation.check_chargeable()?;
            let Some(account) = reservation.account() else {
                return Err(PmsError::rejected("Reservation has no guest account"));
            };
            self.payment_body(charge, room, kind, account, Some(&reservation.id))?
        };
        let answer = self
            .call("payments/addExternal", Call::Write, &body, deadline)
            .await?;
        let id = answer.json().ok().and_then(|a| {
            a.get("ExternalPaymentId")
                .and_then(Value::as_str)
                .map(str::to_string)
        });
        if id.is_none() {
            tracing::warn!(reference = %charge.reference, "Mews accepted the payment without a readable ExternalPaymentId; answering with the reference");
        }
        Ok(PostingReceipt {
            pms_reference: id.unwrap_or_else(|| charge.reference.to_string()),
        })
    }

    /// The `payments/addExternal` body (`ExternalPaymentParameters`).
    fn payment_body(
        &self,
        charge: &Charge,
        room: &RoomCharge,
        kind: &str,
        account: &str,
        reservation: Option<&str>,
    ) -> Result<Value, PmsError> {
        let mut fields = json!({
            "AccountId": account,
            "Amount": { "Currency": charge.currency, "GrossValue": money(room.amount)? },
            "Type": kind,
            "ExternalIdentifier": charge.reference.as_str(),
            "Notes": order_notes(charge),
        });
        if let (Some(reservation), Value::Object(f)) = (reservation, &mut fields) {
            f.insert("ReservationId".into(), Value::String(reservation.to_string()));
        }
        Ok(self.body(fields, Scope::Enterprise))
    }

    /// The payment of a settlement part, looked up on its account by reference.
    async fn find_payment(
        &self,
        charge: &Charge,
        room: &RoomCharge,
        deadline: Instant,
    ) -> Result<Option<PostingReceipt>, PmsError> {
        // Posting refuses these before sending anything.
        if external_payment_type(&room.payment_method).is_none() {
            return Ok(None);
        }
        let Some(account) = self.account_posted_to(room, deadline).await? else {
            return Ok(None);
        };
        let window = chrono::Duration::from_std(self.settings.reconcile_window)
            .map_err(|e| PmsError::unavailable(format!("reconcile_window: {e}")))?;
        let (start, end) = payment_window(charge.closed_at, Utc::now(), window);
        let reference = charge.reference.as_str();
        let payments: Vec<Payment> = self
            .get_all(
                "payments/getAll",
                "Payments",
                json!({
                    "AccountIds": [account],
                    "CreatedUtc": { "StartUtc": utc(start), "EndUtc": utc(end) },
                }),
                deadline,
                |p: &Payment| p.carries(reference),
            )
            .await?;
        Ok(payments
            .into_iter()
            .find(|p| p.carries(reference))
            .map(|p| PostingReceipt {
                pms_reference: p.id.unwrap_or_else(|| reference.to_string()),
            }))
    }

    /// Paymaster accounts whose name the `*` term's `name` names, by
    /// `customers/search` ("Searches for customers that are active at the moment
    /// in the enterprise (e.g. companions of checked-in reservations or
    /// paymasters)"), kept when classified `PaymasterAccount`.
    async fn paymasters(&self, name: &str, deadline: Instant) -> Result<Vec<GuestStay>, PmsError> {
        let body = self.body(
            json!({
                "Name": if name.is_empty() { Value::Null } else { json!(name) },
                "Extent": { "Customers": true, "Documents": false, "Addresses": false },
            }),
            Scope::None,
        );
        let answer = self.call("customers/search", Call::Read, &body, deadline).await?;
        #[derive(Deserialize)]
        #[serde(rename_all = "PascalCase")]
        struct Found {
            #[serde(default)]
            customers: Vec<FoundCustomer>,
        }
        #[derive(Deserialize)]
        #[serde(rename_all = "PascalCase")]
        struct FoundCustomer {
            customer: Customer,
        }
        let found: Found = serde_json::from_slice(&answer.body).map_err(|e| {
            PmsError::unavailable(format!("Mews customers/search: unreadable answer: {e}"))
        })?;
        Ok(found
            .customers
            .into_iter()
            .map(|f| f.customer)
            .filter(Customer::is_paymaster)
            .filter(|c| super::house_account_matches(name, &c.full_name()))
            .map(|c| GuestStay {
                reservation_id: format!("{PAYMASTER_PREFIX}{}", c.id),
                room_id: c.number.clone().unwrap_or_default(),
                room_description: "House account".into(),
                client_name: c.full_name(),
                credit_limit: None,
                blocked: c.blocked(),
            })
            .collect())
    }
}

/// What a house-account search answers as the "reservation" of a paymaster
/// account, so that the charge Lightspeed sends back names the account.
const PAYMASTER_PREFIX: &str = "account:";

/// The paymaster account a charge's reservation id names (`account:<id>`), if
/// it names one; a refusal when the id after the prefix is not a Mews id.
fn paymaster_account(reservation_id: &str) -> Result<Option<&str>, PmsError> {
    let Some(id) = reservation_id.strip_prefix(PAYMASTER_PREFIX) else {
        return Ok(None);
    };
    if uuid::Uuid::parse_str(id).is_err() {
        return Err(PmsError::rejected("Unknown house account"));
    }
    Ok(Some(id))
}

/// How a request names the enterprise of a portfolio access token.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Scope {
    /// `EnterpriseId` (single operations: `orders/add`, `configuration/get`).
    Enterprise,
    /// `EnterpriseIds` (`reservations/getAll`, `resources/getAll`, `orderItems/getAll`).
    EnterpriseList,
    /// `ChainIds` (`customers/getAll`: "Required when using Portfolio Access
    /// Tokens"; it has no `EnterpriseIds`).
    Chain,
    /// Neither (`customers/search` describes no enterprise or chain field and
    /// refuses unknown ones).
    None,
}

/// One `Items[]` entry: a positive whole count at the exact gross unit price.
fn order_item(item: &FolioItem, currency: &str, reference: &str) -> Result<Value, PmsError> {
    let (count, unit) = if item.quantity < 0 {
        (item.quantity.unsigned_abs(), -item.unit_gross)
    } else {
        (item.quantity.unsigned_abs(), item.unit_gross)
    };
    let count = i32::try_from(count)
        .map_err(|_| PmsError::rejected("Item quantity too large for Mews"))?;
    let mut entry = json!({
        "Name": item_name(&item.description),
        "UnitCount": count,
        "UnitAmount": {
            "Currency": currency,
            "GrossValue": money(unit)?,
            "TaxCodes": item.tax_code.iter().collect::<Vec<_>>(),
        },
        "ExternalIdentifier": reference,
    });
    if let (Some(category), Value::Object(fields)) = (&item.revenue_code, &mut entry) {
        fields.insert(
            "AccountingCategoryId".into(),
            Value::String(category.clone()),
        );
    }
    Ok(entry)
}

/// The decimal as a JSON number with exactly its digits (no float on the way).
fn money(amount: Decimal) -> Result<Value, PmsError> {
    serde_json::Number::from_str(&amount.to_string())
        .map(Value::Number)
        .map_err(|_| PmsError::unavailable(format!("cannot write {amount} as a JSON number")))
}

fn item_name(description: &str) -> String {
    const MAX: usize = 255;
    let name = description.trim();
    let name = if name.is_empty() {
        "Restaurant item"
    } else {
        name
    };
    name.chars().take(MAX).collect()
}

/// What the hotel reads on the order: the receipt ids and the reference.
fn order_notes(charge: &Charge) -> String {
    let r = &charge.receipt;
    let mut notes = String::from("Lightspeed");
    if let Some(id) = &r.receipt_id {
        notes.push_str(&format!(" receipt {id}"));
    }
    if let Some(fisc) = &r.fisc_id {
        notes.push_str(&format!(" fiscId {fisc}"));
    }
    if charge.refund
        && let Some(original) = &r.initial_account_id
    {
        notes.push_str(&format!(" refund of {original}"));
    }
    notes.push_str(&format!(" ref {}", charge.reference));
    notes
}

fn utc(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(SecondsFormat::Millis, true)
}

/// Mews's error body.
#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "PascalCase")]
struct MewsErrorBody {
    #[serde(default)]
    message: Option<String>,
    #[serde(default)]
    request_id: Option<String>,
}

/// The first sentence of Mews's message, for the staff; the API layer cuts it to
/// Lightspeed's 50 characters.
fn staff_sentence(message: &str) -> String {
    let first_line = message.trim().lines().next().unwrap_or("").trim();
    let sentence = match first_line.find(". ") {
        Some(i) => &first_line[..i],
        None => first_line,
    };
    let sentence = sentence.trim().trim_end_matches('.').trim();
    if sentence.is_empty() {
        "Hotel system refused the charge".to_string()
    } else {
        sentence.to_string()
    }
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase")]
struct Reservation {
    id: String,
    #[serde(default)]
    state: Option<String>,
    #[serde(default)]
    account_id: Option<String>,
    /// The 2017 shape names the owner so.
    #[serde(default)]
    customer_id: Option<String>,
    #[serde(default)]
    assigned_resource_id: Option<String>,
    #[serde(default)]
    number: Option<String>,
}

impl Reservation {
    fn account(&self) -> Option<&str> {
        self.account_id
            .as_deref()
            .or(self.customer_id.as_deref())
            .filter(|a| !a.is_empty())
    }

    /// `Err(reason)` unless the guest is checked in.
    fn check_chargeable(&self) -> Result<(), PmsError> {
        match self.state.as_deref() {
            Some("Started") => Ok(()),
            Some("Processed") => Err(PmsError::rejected("Guest has checked out")),
            _ => Err(PmsError::rejected("Guest not checked in")),
        }
    }
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase")]
struct Customer {
    id: String,
    #[serde(default)]
    first_name: Option<String>,
    #[serde(default)]
    last_name: Option<String>,
    #[serde(default)]
    classifications: Option<Vec<String>>,
    #[serde(default)]
    number: Option<String>,
}

impl Customer {
    fn is_paymaster(&self) -> bool {
        self.classifications
            .iter()
            .flatten()
            .any(|c| c == "PaymasterAccount")
    }

    fn full_name(&self) -> String {
        [self.first_name.as_deref(), self.last_name.as_deref()]
            .into_iter()
            .flatten()
            .map(str::trim)
            .filter(|s| !s.is_empty())
            .collect::<Vec<_>>()
            .join(" ")
    }

    /// Classifications under which a hotel does not let the guest charge the room.
    fn blocked(&self) -> bool {
        self.classifications
            .iter()
            .flatten()
            .any(|c| matches!(c.as_str(), "Blocklist" | "Blacklist" | "Cashlist"))
    }
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase")]
struct Resource {
    id: String,
    #[serde(default)]
    name: Option<String>,
    #[serde(default)]
    descriptions: Option<BTreeMap<String, String>>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase")]
struct OrderItem {
    #[serde(default)]
    service_order_id: Option<String>,
    #[serde(default)]
    external_identifier: Option<String>,
    #[serde(default)]
    notes: Option<String>,
}

impl OrderItem {
    fn carries(&self, reference: &str) -> bool {
        self.external_identifier.as_deref() == Some(reference)
            || self.notes.as_deref().is_some_and(|n| n.contains(reference))
    }
}

/// `[start, end)` of the `CreatedUtc` filter that finds a payment posted for a
/// receipt closed at `closed_at`: Mews created it when we posted it, after the
/// close and before now. So from `window` before the close (or before now, for
/// a close time ahead of the clock) until now, but never longer than Mews's
/// three months: for a receipt closed longer ago, the last three months.
fn payment_window(
    closed_at: DateTime<Utc>,
    now: DateTime<Utc>,
    window: chrono::Duration,
) -> (DateTime<Utc>, DateTime<Utc>) {
    let end = now
        .checked_add_signed(CLOCK_SKEW)
        .unwrap_or(DateTime::<Utc>::MAX_UTC);
    let earliest = end
        .checked_sub_signed(MAX_PAYMENT_SPAN)
        .unwrap_or(DateTime::<Utc>::MIN_UTC);
    let start = closed_at
        .min(now)
        .checked_sub_signed(window)
        .unwrap_or(DateTime::<Utc>::MIN_UTC)
        .max(earliest);
    (start, end)
}

/// What reconciliation reads of a `Payment`.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase")]
struct Payment {
    #[serde(default)]
    id: Option<String>,
    #[serde(default)]
    identifier: Option<String>,
    #[serde(default)]
    notes: Option<String>,
    #[serde(default)]
    data: Option<PaymentData>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase")]
struct PaymentData {
    #[serde(default)]
    external: Option<ExternalPaymentData>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase")]
struct ExternalPaymentData {
    #[serde(default)]
    external_identifier: Option<String>,
}

impl Payment {
    fn carries(&self, reference: &str) -> bool {
        let external = self
            .data
            .as_ref()
            .and_then(|d| d.external.as_ref())
            .and_then(|e| e.external_identifier.as_deref());
        external == Some(reference)
            || self.identifier.as_deref() == Some(reference)
            || self.notes.as_deref().is_some_and(|n| n.contains(reference))
    }
}

#[async_trait::async_trait]
impl PmsAdapter for MewsPms {
    fn kind(&self) -> &'static str {
        "mews"
    }

    async fn post(
        &self,
        charge: &Arc<Charge>,
        deadline: Instant,
    ) -> Result<PostingReceipt, PmsError> {
        if let Some(room) = super::settlement_of(charge) {
            return self.post_payment(charge, room, deadline).await;
        }
        let room = super::room_of(charge)?;
        let service = self.service_for(charge)?;
        if let Some(account) = paymaster_account(&room.reservation_id)? {
            let body = self.order_body(charge, &service, None, account)?;
            return self.add_order(charge, &body, deadline).await;
        }
        let reservation = match self.reservation(&room.reservation_id, deadline).await {
            Ok(Some(r)) => r,
            Ok(None) => return Err(PmsError::rejected("Unknown reservation")),
            // Mews answers 400 for an id that is not one of its ids.
            Err(e) if e.status() == Some(400) => {
                return Err(PmsError::rejected("Unknown reservation"));
            }
            Err(e) => return Err(e.as_class(ErrorClass::Unavailable, "")),
        };
        reservation.check_chargeable()?;
        let Some(account) = reservation.account() else {
            return Err(PmsError::rejected(
                "Reservation has no guest account",
            ));
        };
        let body = self.order_body(charge, &service, Some(&reservation.id), account)?;
        self.add_order(charge, &body, deadline).await
    }

    async fn reconcile(
        &self,
        charge: &Charge,
        deadline: Instant,
    ) -> Result<Option<PostingReceipt>, PmsError> {
        let Some(room) = charge.room() else {
            return Ok(None);
        };
        if room.settlement {
            return self.find_payment(charge, room, deadline).await;
        }
        let Some(account) = self.account_posted_to(room, deadline).await? else {
            return Ok(None);
        };
        let account = account.as_str();
        // Mews: "At least one of the `OrderItemIds`, `ServiceOrderIds`,
        // `ServiceIds`, `BillIds`, `CreatedUtc`, `UpdatedUtc`, `ClosedUtc` filters
        // must be specified" (`AccountIds` and `ConsumedUtc` alone are not
        // enough). The service is the one posting uses; without one nothing was
        // ever sent.
        let Ok(service) = self.service_for(charge) else {
            return Ok(None);
        };
        let window = chrono::Duration::from_std(self.settings.reconcile_window)
            .map_err(|e| PmsError::unavailable(format!("reconcile_window: {e}")))?;
        let reference = charge.reference.as_str();
        let items: Vec<OrderItem> = self
            .get_all(
                "orderItems/getAll",
                "OrderItems",
                json!({
                    "ServiceIds": [service],
                    "AccountIds": [account],
                    "ConsumedUtc": {
                        "StartUtc": utc(charge.closed_at.checked_sub_signed(window).unwrap_or(DateTime::<Utc>::MIN_UTC)),
                        "EndUtc": utc(charge.closed_at.checked_add_signed(window).unwrap_or(DateTime::<Utc>::MAX_UTC)),
                    },
                }),
                deadline,
                |i: &OrderItem| i.carries(reference),
            )
            .await?;
        Ok(items
            .into_iter()
            .find(|i| i.carries(reference))
            .map(|i| PostingReceipt {
                pms_reference: i.service_order_id.unwrap_or_else(|| reference.to_string()),
            }))
    }

    async fn search(&self, term: &str, deadline: Instant) -> Result<Vec<GuestStay>, PmsError> {
        if let Some(name) = super::house_account_term(term) {
            return self.paymasters(name, deadline).await;
        }
        let term = term.trim().to_lowercase();
        let reservations: Vec<Reservation> = self
            .get_all(
                "reservations/getAll/2023-06-06",
                "Reservations",
                json!({ "States": ["Started"] }),
                deadline,
                |_: &Reservation| false,
            )
            .await?;
        // Mews filters by state; a server that did not is still never trusted.
        let reservations: Vec<_> = reservations
            .into_iter()
            .filter(|r| r.state.as_deref() == Some("Started"))
            .collect();

        let account_ids: Vec<&str> = unique(reservations.iter().filter_map(|r| r.account()));
        let mut customers: HashMap<String, Customer> = HashMap::new();
        for chunk in account_ids.chunks(IDS_PER_REQUEST) {
            let found: Vec<Customer> = self
                .get_all(
                    "customers/getAll",
                    "Customers",
                    json!({
                        "CustomerIds": chunk,
                        "Extent": { "Customers": true, "Documents": false, "Addresses": false },
                    }),
                    deadline,
                    |_: &Customer| false,
                )
                .await?;
            customers.extend(found.into_iter().map(|c| (c.id.to_lowercase(), c)));
        }

        let resource_ids: Vec<&str> = unique(
            reservations
                .iter()
                .filter_map(|r| r.assigned_resource_id.as_deref()),
        );
        let mut resources: HashMap<String, Resource> = HashMap::new();
        for chunk in resource_ids.chunks(IDS_PER_REQUEST) {
            let found: Vec<Resource> = self
                .get_all(
                    "resources/getAll",
                    "Resources",
                    json!({
                        "ResourceIds": chunk,
                        "Extent": { "Resources": true },
                    }),
                    deadline,
                    |_: &Resource| false,
                )
                .await?;
            resources.extend(found.into_iter().map(|r| (r.id.to_lowercase(), r)));
        }

        let mut stays: Vec<GuestStay> = reservations
            .iter()
            .filter_map(|r| {
                let customer = r.account().and_then(|a| customers.get(&a.to_lowercase()));
                let resource = r
                    .assigned_resource_id
                    .as_deref()
                    .and_then(|id| resources.get(&id.to_lowercase()));
                let name = customer.map(Customer::full_name).unwrap_or_default();
                let room = resource.and_then(|x| x.name.clone()).unwrap_or_default();
                let room_l = room.to_lowercase();
                let matches = super::name_matches(&term, &name)
                    || (!room_l.is_empty() && room_l.starts_with(&term))
                    || r.number
                        .as_deref()
                        .is_some_and(|n| n.eq_ignore_ascii_case(&term));
                matches.then(|| GuestStay {
                    reservation_id: r.id.clone(),
                    room_id: room,
                    room_description: resource
                        .and_then(|x| x.descriptions.as_ref())
                        .and_then(|d| d.values().next().cloned())
                        .unwrap_or_default(),
                    client_name: name,
                    credit_limit: None,
                    blocked: customer.is_some_and(Customer::blocked),
                })
            })
            .collect();
        stays.sort_by(|a, b| {
            (a.room_id.as_str(), a.client_name.as_str())
                .cmp(&(b.room_id.as_str(), b.client_name.as_str()))
        });
        Ok(stays)
    }

    async fn health(&self) -> Result<(), PmsError> {
        let deadline = Instant::now() + self.settings.timeout;
        self.call(
            "configuration/get",
            Call::Read,
            &self.body(json!({}), Scope::Enterprise),
            deadline,
        )
        .await
        .map(|_| ())
        .map_err(|e| e.as_class(ErrorClass::Unavailable, ""))
    }
}

/// Distinct values, first occurrence first.
fn unique<'a>(values: impl Iterator<Item = &'a str>) -> Vec<&'a str> {
    let mut seen = std::collections::HashSet::new();
    values.filter(|v| seen.insert(v.to_lowercase())).collect()
}


impl super::AdapterSettings for MewsSettings {
    fn check(&self) -> Result<(), String> {
        MewsSettings::check(self)
    }

    fn build(&self) -> Result<super::Built, String> {
        Ok(super::Built::adapter(MewsPms::new(self.clone())?))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::pms::itemize::ItemKind;

    fn settings() -> MewsSettings {
        MewsSettings::new("http://127.0.0.1:1", "client", "access")
    }

    #[test]
    fn settings_are_checked() {
        assert!(settings().check().is_ok());
        let mut s = settings();
        s.url = "ftp://x".into();
        assert!(s.check().unwrap_err().contains("url"));
        let mut s = settings();
        s.access_token_env = Some("X".into());
        assert!(s.check().unwrap_err().contains("access_token"));
        let mut s = settings();
        s.client_token = None;
        assert!(s.check().unwrap_err().contains("client_token"));
        let mut s = settings();
        s.service_id = Some("restaurant".into());
        assert!(s.check().unwrap_err().contains("service_id"));
        let mut s = settings();
        s.reconcile_window = Duration::from_secs(60 * 86_400);
        assert!(s.check().unwrap_err().contains("reconcile_window"));
        // A portfolio access token: customers/getAll needs the chain.
        let mut s = settings();
        s.enterprise_id = Some("851df8c8-90f2-4c4a-8e01-a4fc46b25178".into());
        assert!(s.check().unwrap_err().contains("chain_id"));
        s.chain_id = Some("chain".into());
        assert!(s.check().unwrap_err().contains("chain_id"));
        s.chain_id = Some("8ddea57b-6a5c-4eec-8c4c-24467dce118e".into());
        assert!(s.check().is_ok());
    }

    #[test]
    fn a_portfolio_token_names_the_chain_for_customers_and_the_enterprise_elsewhere() {
        let mut s = settings();
        s.enterprise_id = Some("851df8c8-90f2-4c4a-8e01-a4fc46b25178".into());
        s.chain_id = Some("8ddea57b-6a5c-4eec-8c4c-24467dce118e".into());
        let pms = MewsPms::new(s).unwrap();
        let customers = pms.body(json!({}), Scope::Chain);
        assert_eq!(
            customers["ChainIds"],
            json!(["8ddea57b-6a5c-4eec-8c4c-24467dce118e"])
        );
        assert!(customers.get("EnterpriseIds").is_none());
        let list = pms.body(json!({}), Scope::EnterpriseList);
        assert_eq!(
            list["EnterpriseIds"],
            json!(["851df8c8-90f2-4c4a-8e01-a4fc46b25178"])
        );
        let single = pms.body(json!({}), Scope::Enterprise);
        assert_eq!(
            single["EnterpriseId"],
            "851df8c8-90f2-4c4a-8e01-a4fc46b25178"
        );
        // Without a portfolio token nothing names the enterprise or chain.
        let plain = MewsPms::new(settings())
            .unwrap()
            .body(json!({}), Scope::Chain);
        assert!(plain.get("ChainIds").is_none() && plain.get("EnterpriseIds").is_none());
    }

    #[test]
    fn settings_deserialize_with_defaults_and_refuse_unknown_keys() {
        let s: MewsSettings = serde_json::from_value(json!({
            "url": "https://api.mews.com",
            "client_token": "c",
            "access_token_env": "MEWS_ACCESS",
        }))
        .unwrap();
        assert_eq!(s.timeout, Duration::from_secs(8));
        assert_eq!(s.reconcile_window, Duration::from_secs(2 * 86_400));
        assert_eq!(s.client_name, "chargebridge");
        assert!(!format!("{s:?}").contains("\"c\""), "tokens never print");
        let typo = serde_json::from_value::<MewsSettings>(json!({
            "url": "https://api.mews.com", "client_token": "c", "access_token": "a",
            "acces_token": "a",
        }));
        assert!(typo.is_err());
    }

    #[test]
    fn a_config_file_selects_the_mews_adapter() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("c.toml");
        std::fs::write(
            &path,
            r#"
[[tenants]]
id = "hotel"
api_key = "k"
currency = "EUR"
pms = "main"

[pms.main]
adapter = "mews"
url = "https://api.mews-demo.com"
client_token = "client-secret-value"
access_token = "access-secret-value"
service_id = "bd26d8db-86da-4f96-9efc-e5a4654a4a94"
timeout = "5s"
reconcile_window = "3d"
"#,
        )
        .unwrap();
        let s = crate::config::Settings::load_with_env(Some(&path), []).unwrap();
        let crate::pms::PmsSettings::Mews(m) = &s.pms["main"] else {
            panic!("not the mews adapter");
        };
        assert_eq!(m.timeout, Duration::from_secs(5));
        assert_eq!(m.reconcile_window, Duration::from_secs(3 * 86_400));
        let printed = format!("{s:?}");
        assert!(!printed.contains("secret-value"), "{printed}");
        assert!(crate::pms::PmsRegistry::build(&s.pms).is_ok());

        std::fs::write(
            &path,
            "[pms.main]\nadapter = \"mews\"\nurl = \"https://x\"\nclient_token = \"c\"\n",
        )
        .unwrap();
        let err = crate::config::Settings::load_with_env(Some(&path), [])
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("pms.main") && err.contains("access_token"),
            "{err}"
        );
    }

    #[test]
    fn tokens_can_come_from_files() {
        let dir = tempfile::tempdir().unwrap();
        let client = dir.path().join("client");
        let access = dir.path().join("access");
        std::fs::write(&client, "client-from-file\n").unwrap();
        std::fs::write(&access, "access-from-file\n").unwrap();
        let s: MewsSettings = serde_json::from_value(json!({
            "url": "https://api.mews.com",
            "client_token_file": client.display().to_string(),
            "access_token_file": access.display().to_string(),
        }))
        .unwrap();
        assert!(s.check().is_ok());
        let pms = MewsPms::new(s.clone()).unwrap();
        assert_eq!(pms.client_token.expose_secret(), "client-from-file");
        assert_eq!(pms.access_token.expose_secret(), "access-from-file");
        let mut both = s;
        both.access_token = Some(SecretString::from("a"));
        assert!(both.check().unwrap_err().contains("access_token_file"));
    }

    #[test]
    fn tokens_come_from_the_environment_when_named() {
        let mut s = settings();
        s.access_token = None;
        s.access_token_env = Some("CHARGEBRIDGE_TEST_SURELY_UNSET_MEWS_TOKEN".into());
        let err = MewsPms::new(s).err().unwrap();
        assert!(
            err.contains("CHARGEBRIDGE_TEST_SURELY_UNSET_MEWS_TOKEN"),
            "{err}"
        );
    }

    /// What the adapter makes of a Mews error answer to `op`.
    fn failure(call: Call, status: u16, message: &str) -> PmsError {
        let pms = MewsPms::new(settings()).unwrap();
        let request = pms.api.request(
            "orders/add",
            call,
            Method::POST,
            transport::join(&pms.base, &["orders", "add"]),
        );
        let body = json!({ "Message": message, "RequestId": "mews-req-1" });
        pms.api.failure(
            &request,
            &Answer {
                status,
                headers: Default::default(),
                body: serde_json::to_vec(&body).unwrap(),
                request_id: "mews-req-1".into(),
            },
        )
    }

    #[test]
    fn write_failures_are_classified_by_whether_mews_may_have_applied_them() {
        let class = |status| failure(Call::Write, status, "").class();
        assert_eq!(class(429), "unavailable");
        assert_eq!(class(408), "unknown");
        assert_eq!(class(401), "unavailable");
        assert_eq!(class(404), "unavailable");
        assert_eq!(class(409), "unavailable");
        assert_eq!(class(500), "unknown");
        assert_eq!(class(503), "unknown");
        assert_eq!(
            failure(Call::Write, 403, "The bill is closed. Contact the reception."),
            PmsError::rejected("The bill is closed")
        );
        assert_eq!(failure(Call::Write, 400, "Invalid ServiceId.").class(), "rejected");
        let down = failure(Call::Write, 500, "Oops");
        assert!(down.detail.contains("mews-req-1"), "{}", down.detail);
        // Reads never report an unknown outcome.
        assert_eq!(failure(Call::Read, 500, "").class(), "unavailable");
        assert_eq!(failure(Call::Read, 408, "").class(), "unavailable");
    }

    #[test]
    fn staff_read_the_first_sentence() {
        assert_eq!(staff_sentence("Folio is closed"), "Folio is closed");
        assert_eq!(
            staff_sentence("  Credit limit exceeded.\nDetails: 123 "),
            "Credit limit exceeded"
        );
        assert_eq!(staff_sentence(""), "Hotel system refused the charge");
    }

    fn item(quantity: i32, unit: Decimal) -> FolioItem {
        FolioItem {
            kind: ItemKind::Sale,
            description: "Fries".into(),
            quantity,
            unit_gross: unit,
            gross: unit * Decimal::from(quantity),
            revenue_code: Some("90eff5aa-36b4-4689-80c0-ab3a00bb412e".into()),
            tax_code: Some("DE-2020-1-L".into()),
            tax_percent: None,
        }
    }

    #[test]
    fn items_carry_exact_amounts_and_refunds_are_negative_prices() {
        let sale = order_item(&item(3, Decimal::new(3333333, 5)), "EUR", "cb-1").unwrap();
        let text = serde_json::to_string(&sale).unwrap();
        assert!(text.contains(r#""GrossValue":33.33333"#), "{text}");
        assert!(text.contains(r#""UnitCount":3"#), "{text}");
        assert_eq!(sale["ExternalIdentifier"], "cb-1");
        assert_eq!(sale["UnitAmount"]["TaxCodes"], json!(["DE-2020-1-L"]));
        assert_eq!(
            sale["AccountingCategoryId"],
            "90eff5aa-36b4-4689-80c0-ab3a00bb412e"
        );

        let refund = order_item(&item(-2, Decimal::new(1000, 2)), "EUR", "cb-1").unwrap();
        let text = serde_json::to_string(&refund).unwrap();
        assert!(text.contains(r#""UnitCount":2"#), "{text}");
        assert!(text.contains(r#""GrossValue":-10.00"#), "{text}");
    }

    /// A settlement part of `amount` in `method` to a paymaster account.
    fn settlement(method: &str, amount: Decimal) -> Charge {
        let mut charge =
            crate::pms::demo_charge(include_str!("../../fixtures/payloads/seed-example.json"));
        charge.rooms = vec![RoomCharge {
            reservation_id: "account:7e0c8b1a-3f2d-4c5e-9a6b-1d2e3f4a5b6c".into(),
            amount,
            gratuity: Decimal::ZERO,
            payment_method: method.into(),
            revenue: true,
            summary_date: None,
            payments: Vec::new(),
            settlement: true,
            settles: None,
        }];
        charge.lines.clear();
        charge.service_charge = None;
        charge.refund = amount.is_sign_negative();
        charge
    }

    #[test]
    fn a_payment_carries_the_reference_the_exact_amount_and_mews_spelling_of_the_type() {
        let pms = MewsPms::new(settings()).unwrap();
        let charge = settlement("CASH", Decimal::new(1600, 2));
        let room = charge.room().unwrap();
        let kind = external_payment_type(&room.payment_method).unwrap();
        assert_eq!(kind, "Cash");
        let body = pms
            .payment_body(&charge, room, kind, "7e0c8b1a-3f2d-4c5e-9a6b-1d2e3f4a5b6c", None)
            .unwrap();
        let text = serde_json::to_string(&body).unwrap();
        assert!(text.contains(r#""GrossValue":16.00"#), "{text}");
        assert_eq!(body["AccountId"], "7e0c8b1a-3f2d-4c5e-9a6b-1d2e3f4a5b6c");
        assert_eq!(body["Amount"]["Currency"], json!(charge.currency));
        assert_eq!(body["Type"], "Cash");
        assert_eq!(body["ExternalIdentifier"], charge.reference.as_str());
        assert!(
            body["Notes"]
                .as_str()
                .unwrap()
                .contains(charge.reference.as_str())
        );
        assert!(body.get("ReservationId").is_none(), "a paymaster: no reservation");
        assert!(body.get("EnterpriseId").is_none(), "no portfolio token");
        for key in ["ClientToken", "AccessToken", "Client"] {
            assert!(body[key].is_string(), "{key}");
        }

        // A refund receipt pays back: a negative amount, and the reservation a
        // guest-account house account names.
        let refund = settlement("creditcard", Decimal::new(-670, 1));
        let room = refund.room().unwrap();
        let kind = external_payment_type(&room.payment_method).unwrap();
        let body = pms
            .payment_body(&refund, room, kind, "acc", Some("res-1"))
            .unwrap();
        let text = serde_json::to_string(&body).unwrap();
        assert!(text.contains(r#""GrossValue":-67.0"#), "{text}");
        assert_eq!(body["Type"], "CreditCard");
        assert_eq!(body["ReservationId"], "res-1");
    }

    #[test]
    fn only_mews_external_payment_types_are_methods() {
        assert_eq!(external_payment_type(" giftcard "), Some("GiftCard"));
        assert_eq!(external_payment_type("DepositWireTransfer"), Some("DepositWireTransfer"));
        assert_eq!(external_payment_type("CARD"), None);
        assert_eq!(external_payment_type(""), None);
    }

    #[tokio::test]
    async fn a_method_mews_does_not_know_is_refused_before_sending() {
        // Nothing listens on the settings' port: a call would be unavailable.
        let pms = MewsPms::new(settings()).unwrap();
        let charge = Arc::new(settlement("CARD", Decimal::new(1600, 2)));
        let err = pms
            .post(&charge, Instant::now() + Duration::from_secs(1))
            .await
            .unwrap_err();
        assert_eq!(err, PmsError::rejected("Payment method not valid for Mews"));
        assert_eq!(
            pms.reconcile(&charge, Instant::now() + Duration::from_secs(1))
                .await
                .unwrap(),
            None,
            "never sent, so never there"
        );
    }

    #[test]
    fn a_payment_is_found_by_its_external_identifier_identifier_or_notes() {
        let reference = "cb-0123456789abcdef0123456789abc";
        let read = |v: Value| serde_json::from_value::<Payment>(v).unwrap();
        assert!(read(json!({
            "Id": "p1", "Identifier": null, "Notes": null,
            "Data": { "Discriminator": "External", "External": { "Type": "Cash", "ExternalIdentifier": reference } },
        }))
        .carries(reference));
        assert!(read(json!({ "Id": "p1", "Identifier": reference, "Data": null })).carries(reference));
        assert!(
            read(json!({ "Id": "p1", "Identifier": "", "Notes": format!("Lightspeed receipt 1 ref {reference}") }))
                .carries(reference)
        );
        assert!(
            !read(json!({ "Id": "p1", "Identifier": "ch_1", "Notes": "Minibar",
                "Data": { "Discriminator": "CreditCard", "CreditCard": {} } }))
            .carries(reference)
        );
    }

    #[test]
    fn payments_are_looked_for_from_before_the_close_until_now_within_three_months() {
        let at = |s: &str| DateTime::parse_from_rfc3339(s).unwrap().with_timezone(&Utc);
        let day = chrono::Duration::days(1);
        let (start, end) = payment_window(at("2026-12-01T12:00:00Z"), at("2026-12-03T12:00:00Z"), day * 2);
        assert_eq!(start, at("2026-11-29T12:00:00Z"));
        assert_eq!(end, at("2026-12-03T12:05:00Z"));
        // A close time ahead of the clock: from before now.
        let (start, _) = payment_window(at("2026-12-05T00:00:00Z"), at("2026-12-03T12:00:00Z"), day);
        assert_eq!(start, at("2026-12-02T12:00:00Z"));
        // Never more than Mews's three months: for an old receipt, the last three.
        let (start, end) = payment_window(at("2026-01-01T00:00:00Z"), at("2026-12-03T12:00:00Z"), day);
        assert_eq!(end, at("2026-12-03T12:05:00Z"));
        assert_eq!(end - start, MAX_PAYMENT_SPAN);
    }

    #[test]
    fn search_flags_guests_the_hotel_does_not_let_charge() {
        let c = |classes: &[&str]| Customer {
            id: "x".into(),
            first_name: Some("Jane".into()),
            last_name: Some("Doe".into()),
            classifications: Some(classes.iter().map(|s| s.to_string()).collect()),
            number: None,
        };
        assert!(c(&["PaymasterAccount"]).is_paymaster());
        assert!(!c(&["Returning"]).is_paymaster());
        assert!(!c(&["Returning"]).blocked());
        assert!(c(&["Blocklist"]).blocked());
        assert!(c(&["Cashlist"]).blocked());
        assert_eq!(c(&[]).full_name(), "Jane Doe");
    }
}
