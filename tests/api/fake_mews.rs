//! A local Mews Connector API: a real HTTP server (actix-web on 127.0.0.1:0) that
//! answers the operations the Mews adapter calls, with the documented request
//! and answer shapes and error bodies (`{"Message": …}`), checks what it is sent
//! (tokens, no unknown `orders/add` fields, integer `UnitCount`, exact decimal
//! `GrossValue`, an `ExternalIdentifier` on every item), and fails on request.
//!
//! Payments against a house account (`payments/addExternal`) are checked too: a
//! known account, the reservation it owns, the enterprise currency, an exact
//! gross amount, an external payment type the fake hotel has enabled
//! ([`ENABLED_PAYMENT_TYPES`], listed by `configuration/get` as Mews does) and
//! chargebridge's reference as `ExternalIdentifier`. `payments/getAll` answers
//! them newest first, with the sent amount negated (Mews shows payments as
//! negative amounts); a `Cash` payment the way Mews's example shows a cash
//! payment (`CashPayment`, `Data: null`, `Identifier: null`, the sent `Notes`),
//! any other type as an `ExternalPayment` whose `Data.External` keeps the
//! `ExternalIdentifier`.
//!
//! Guests (the kit's): reservation `001` Jane Doe in room 101 and `002` John Smith
//! in room 102 are checked in (`Started`); `004` Arthur Dent in room 202 has
//! checked out (`Processed`).
//!
//! Every request and every answer also goes through Mews's published description
//! (`tests/vendor/mews/`, [`crate::vendor_oracle`]): what it refuses is answered
//! 400 `{"Message": …}` and fails the test when the fake is dropped.

use std::collections::VecDeque;
use std::net::TcpListener;
use std::str::FromStr;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use actix_web::{App, HttpResponse, HttpServer, web};
use chargebridge::config::MappingSettings;
use chargebridge::pms::PmsSettings;
use chargebridge::pms::mews::MewsSettings;
use chrono::{DateTime, SecondsFormat, Utc};
use rust_decimal::Decimal;
use serde_json::{Map, Value, json};

use crate::conformance::{FakeCharge, FakeFault, FakePms};
use crate::vendor_oracle::{self, Request, Vendor, ViolationGuard, Violations};

pub const CLIENT_TOKEN: &str = "E0D439EE522F44368DC78E1BFB03710C-FAKE";
pub const ACCESS_TOKEN: &str = "C66EF7B239D24632943D115EDE9CB810-FAKE";
/// A Portfolio Access Token (several enterprises of one chain).
pub const PORTFOLIO_ACCESS_TOKEN: &str = "7A5A2F0C1B8E4C7D9E6F5A4B3C2D1E0F-PORTFOLIO";
/// The chain of the portfolio's enterprises.
pub const CHAIN: &str = "8ddea57b-6a5c-4eec-8c4c-24467dce118e";
pub const ENTERPRISE: &str = "851df8c8-90f2-4c4a-8e01-a4fc46b25178";
/// The restaurant's Mews service (an "additional" service orders go to).
pub const RESTAURANT_SERVICE: &str = "5ee074b1-6c86-48e8-915f-c7aa4702086f";
pub const STAY_SERVICE: &str = "bd26d8db-86da-4f96-9efc-e5a4654a4a94";
pub const FOOD_CATEGORY: &str = "90eff5aa-36b4-4689-80c0-ab3a00bb412e";
pub const TIPS_CATEGORY: &str = "c0610937-0165-4091-a79c-44eb34173daf";
pub const SERVICE_CHARGE_CATEGORY: &str = "c5819fe7-d67c-4c24-b02e-6ce84a1d3b1d";
pub const VAT_CODE: &str = "DE-2020-1-L";
/// The seed example's revenue center, accounting group and tax ids.
pub const SEED_REVENUE_CENTER: &str = "94489280528";
pub const SEED_GROUP: &str = "25769803810";
pub const SEED_TAX: &str = "12345";
pub const CURRENCY: &str = "EUR";
/// The external payment types the fake hotel takes (`configuration/get`'s
/// `EnabledExternalPaymentTypes`).
pub const ENABLED_PAYMENT_TYPES: [&str; 4] = ["Cash", "CreditCard", "GiftCard", "Invoice"];

pub struct Guest {
    pub reservation: &'static str,
    pub number: &'static str,
    pub account: &'static str,
    pub first: &'static str,
    pub last: &'static str,
    pub resource: &'static str,
    pub room: &'static str,
    pub description: &'static str,
    pub state: &'static str,
}

pub const GUESTS: [Guest; 3] = [
    Guest {
        reservation: "001",
        number: "5201",
        account: "fadd5bb6-b428-45d5-94f8-fd0d89fece6d",
        first: "Jane",
        last: "Doe",
        resource: "20e00c32-d561-4008-8609-82d8aa525714",
        room: "101",
        description: "Double, garden view",
        state: "Started",
    },
    Guest {
        reservation: "002",
        number: "5202",
        account: "35d4b117-4e60-44a3-9580-c582117eff98",
        first: "John",
        last: "Smith",
        resource: "1ec29188-01ca-4294-9983-fac59f85a448",
        room: "102",
        description: "Twin",
        state: "Started",
    },
    Guest {
        reservation: "004",
        number: "5204",
        account: "c173bb22-6ff8-4ffd-875f-afb900c92865",
        first: "Arthur",
        last: "Dent",
        resource: "a1b2c3d4-e5f6-7890-abcd-ef1234567890",
        room: "202",
        description: "Double",
        state: "Processed",
    },
];

/// The paymaster account every kit fake knows: "Bar Account", found by a `*`
/// house-account search and charged without a reservation.
pub const PAYMASTER: (&str, &str, &str) = (
    "7e0c8b1a-3f2d-4c5e-9a6b-1d2e3f4a5b6c",
    "PM-BAR",
    "Bar Account",
);

pub fn guest(reservation: &str) -> &'static Guest {
    GUESTS
        .iter()
        .find(|g| g.reservation == reservation)
        .expect("a kit guest")
}

/// What the next `orders/add` meets.
#[derive(Debug, Clone)]
pub enum Fault {
    /// The kit's faults: Reject → 403, Unavailable → 429 with `Retry-After`,
    /// ApplyThenTimeout → applied then answered after 5 s, Slow(d) → answered
    /// (and applied) after `d`.
    Kit(FakeFault),
    /// Answer this status without applying.
    Status(u16),
    /// Apply, then answer this status.
    ApplyThenStatus(u16),
}

/// One call the fake received.
#[derive(Debug, Clone)]
pub struct Call {
    pub op: String,
    pub raw: String,
    pub body: Value,
    pub status: u16,
}

#[derive(Debug, Clone)]
struct StoredItem {
    id: String,
    account: String,
    service: String,
    order: String,
    name: String,
    external_identifier: Option<String>,
    notes: Option<String>,
    category: Option<String>,
    unit_count: i64,
    unit_gross: Decimal,
    tax_codes: Vec<String>,
    consumed: DateTime<Utc>,
    created: DateTime<Utc>,
}

/// A payment `payments/addExternal` added.
#[derive(Debug, Clone)]
struct StoredPayment {
    id: String,
    account: String,
    reservation: Option<String>,
    /// The external payment type.
    kind: String,
    /// As sent: positive for a payment, negative for a refund.
    gross: Decimal,
    external_identifier: String,
    notes: Option<String>,
    created: DateTime<Utc>,
}

#[derive(Default)]
struct State {
    faults: VecDeque<Fault>,
    /// What the next `payments/addExternal` meets.
    payment_faults: VecDeque<Fault>,
    applied: Vec<FakeCharge>,
    /// Oldest first.
    items: Vec<StoredItem>,
    /// Oldest first.
    payments: Vec<StoredPayment>,
    calls: Vec<Call>,
}

pub struct FakeMews {
    pub url: String,
    state: Arc<Mutex<State>>,
    _handle: actix_web::dev::ServerHandle,
    /// What Mews's description refuses; checked when the fake is dropped.
    violations: ViolationGuard,
}

// ------------------------------------------------------- the vendor's oracle

/// The part of Mews's Connector API description the adapter uses
/// (`tests/vendor/mews/`, cut by its `extract.py`).
pub fn vendor() -> Arc<Vendor> {
    static VENDOR: std::sync::OnceLock<Arc<Vendor>> = std::sync::OnceLock::new();
    VENDOR
        .get_or_init(|| {
            Arc::new(
                Vendor::new(
                    "Mews",
                    &[
                        (
                            "mews/reservations",
                            include_str!("../vendor/mews/reservations.subset.openapi.json"),
                        ),
                        (
                            "mews/orders",
                            include_str!("../vendor/mews/orders.subset.openapi.json"),
                        ),
                        (
                            "mews/order-items",
                            include_str!("../vendor/mews/order-items.subset.openapi.json"),
                        ),
                        (
                            "mews/customers",
                            include_str!("../vendor/mews/customers.subset.openapi.json"),
                        ),
                        (
                            "mews/resources",
                            include_str!("../vendor/mews/resources.subset.openapi.json"),
                        ),
                        (
                            "mews/configuration",
                            include_str!("../vendor/mews/configuration.subset.openapi.json"),
                        ),
                        (
                            "mews/payments",
                            include_str!("../vendor/mews/payments.subset.openapi.json"),
                        ),
                    ],
                )
                // The security schemes `MewsClientToken`/`MewsAccessToken` are
                // declared `in: header`, but their description says: "Mews
                // authentication is performed by supplying ClientToken,
                // AccessToken and Client as fields in the JSON request body (not as
                // HTTP headers)."
                .api_keys_in_body()
                // Tests play a gateway in front of Mews answering 502/503/504
                // (an outcome the adapter must classify), which Mews does not list.
                .gateway_statuses(&[502, 503, 504])
                // A wrong base URL or path meets a server that is not Mews's
                // Connector API (404), which Mews does not list either.
                .gateway_statuses(&[404])
                .request_rule(order_items_filter_rule)
                .request_rule(payments_filter_rule)
                .request_rule(portfolio_rule),
            )
        })
        .clone()
}

/// `orderItems/getAll`: "At least one of the `OrderItemIds`, `ServiceOrderIds`,
/// `ServiceIds`, `BillIds`, `CreatedUtc`, `UpdatedUtc`, `ClosedUtc` filters must be
/// specified in the request." (the operation's description; its parameter table
/// also calls `AccountIds`, `ConsumedUtc` and `CanceledUtc` "Required if no other
/// filter is provided" — the operation's own list is the stricter, and is kept).
fn order_items_filter_rule(op: &str, _: &Request, body: &Value) -> Vec<String> {
    const ONE_OF: [&str; 7] = [
        "OrderItemIds",
        "ServiceOrderIds",
        "ServiceIds",
        "BillIds",
        "CreatedUtc",
        "UpdatedUtc",
        "ClosedUtc",
    ];
    if op != "orderItems_getAll"
        || ONE_OF
            .iter()
            .any(|f| body.get(*f).is_some_and(|v| !v.is_null()))
    {
        return Vec::new();
    }
    vec![format!("at least one of {ONE_OF:?} must be specified")]
}

/// `payments/getAll`: "At least one filter parameter must be specified." (the
/// operation's description; its parameter table calls each of these "Required
/// if no other filter is provided").
fn payments_filter_rule(op: &str, _: &Request, body: &Value) -> Vec<String> {
    const ONE_OF: [&str; 8] = [
        "PaymentIds",
        "AccountIds",
        "BillIds",
        "ReservationIds",
        "CreatedUtc",
        "UpdatedUtc",
        "ChargedUtc",
        "ClosedUtc",
    ];
    if op != "payments_getAll"
        || ONE_OF
            .iter()
            .any(|f| body.get(*f).is_some_and(|v| !v.is_null()))
    {
        return Vec::new();
    }
    vec![format!("at least one of {ONE_OF:?} must be specified")]
}

/// With a Portfolio Access Token: `customers/getAll` `ChainIds` "Required when
/// using Portfolio Access Tokens, ignored otherwise."; `orders/add` and
/// `payments/addExternal` `EnterpriseId` "Required when using Portfolio Access
/// Tokens, ignored otherwise."
fn portfolio_rule(op: &str, _: &Request, body: &Value) -> Vec<String> {
    if body.get("AccessToken").and_then(Value::as_str) != Some(PORTFOLIO_ACCESS_TOKEN) {
        return Vec::new();
    }
    let field = match op {
        "customers_getAll" => "ChainIds",
        "orders_add" | "payments_addExternal" => "EnterpriseId",
        _ => return Vec::new(),
    };
    if body.get(field).is_some_and(|v| !v.is_null()) {
        Vec::new()
    } else {
        vec![format!("{field} is required with a Portfolio Access Token")]
    }
}

fn lock(state: &Mutex<State>) -> MutexGuard<'_, State> {
    state.lock().unwrap_or_else(|p| p.into_inner())
}

impl FakeMews {
    pub fn push(&self, fault: Fault) {
        lock(&self.state).faults.push_back(fault);
    }

    /// The next `payments/addExternal` meets `fault`.
    pub fn push_payment(&self, fault: Fault) {
        lock(&self.state).payment_faults.push_back(fault);
    }

    /// The body of the last `payments/addExternal` that was applied.
    pub fn last_payment(&self) -> Value {
        self.calls("payments/addExternal")
            .into_iter()
            .rev()
            .find(|c| c.status == 200)
            .map(|c| c.body)
            .expect("an applied payment")
    }

    /// Adds `n` unrelated payments (no external identifier) to `account`, newer
    /// than everything so far.
    pub fn seed_payments(&self, account: &str, n: usize) {
        let mut state = lock(&self.state);
        for i in 0..n {
            state.payments.push(StoredPayment {
                id: uuid::Uuid::new_v4().to_string(),
                account: account.to_string(),
                reservation: None,
                kind: "GiftCard".into(),
                gross: Decimal::new(1000 + i as i64, 2),
                external_identifier: String::new(),
                notes: Some("Front desk".into()),
                created: Utc::now(),
            });
        }
    }

    /// Every call received for `op`, in order.
    pub fn calls(&self, op: &str) -> Vec<Call> {
        lock(&self.state)
            .calls
            .iter()
            .filter(|c| c.op == op)
            .cloned()
            .collect()
    }

    /// What the oracle refused so far (emptied: the fake's drop checks the rest).
    pub fn take_violations(&self) -> Vec<String> {
        self.violations.0.take()
    }

    pub fn all_calls(&self) -> Vec<Call> {
        lock(&self.state).calls.clone()
    }

    /// The body of the last `orders/add` that was applied.
    pub fn last_order(&self) -> Value {
        self.calls("orders/add")
            .into_iter()
            .rev()
            .find(|c| c.status == 200)
            .map(|c| c.body)
            .expect("an applied order")
    }

    /// Adds `n` unrelated items (no external identifier) to `account`, newer than
    /// everything so far, consumed at `consumed`.
    pub fn seed_items(&self, account: &str, n: usize, consumed: DateTime<Utc>) {
        let mut state = lock(&self.state);
        for i in 0..n {
            state.items.push(StoredItem {
                id: uuid::Uuid::new_v4().to_string(),
                account: account.to_string(),
                service: RESTAURANT_SERVICE.to_string(),
                order: uuid::Uuid::new_v4().to_string(),
                name: format!("Minibar {i}"),
                external_identifier: None,
                notes: Some("Minibar".into()),
                category: None,
                unit_count: 1,
                unit_gross: Decimal::new(450, 2),
                tax_codes: vec![VAT_CODE.to_string()],
                consumed,
                created: Utc::now(),
            });
        }
    }
}

pub async fn start() -> Arc<FakeMews> {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind the fake Mews");
    let port = listener.local_addr().expect("local address").port();
    let state = Arc::new(Mutex::new(State::default()));
    let data = web::Data::from(state.clone());
    let violations = Violations::default();
    let recorder = violations.clone();
    let server = HttpServer::new(move || {
        App::new()
            .wrap(vendor_oracle::guard(vendor(), recorder.clone(), |m| {
                error(400, m)
            }))
            .app_data(data.clone())
            .app_data(web::PayloadConfig::new(1 << 20))
            .route("/api/connector/v1/{op:.*}", web::post().to(connector))
    })
    .workers(1)
    .disable_signals()
    .listen(listener)
    .expect("listen")
    .run();
    let handle = server.handle();
    tokio::spawn(server);
    Arc::new(FakeMews {
        url: format!("http://127.0.0.1:{port}"),
        state,
        _handle: handle,
        violations: ViolationGuard(violations),
    })
}

/// For the conformance kit.
pub async fn start_dyn() -> Arc<dyn FakePms> {
    start().await
}

/// The mapping a hotel on Mews configures for the seed's revenue center, group
/// and tax, plus tips and service charge.
pub fn mapping() -> MappingSettings {
    MappingSettings {
        revenue_centers: [(
            SEED_REVENUE_CENTER.to_string(),
            RESTAURANT_SERVICE.to_string(),
        )]
        .into(),
        accounting_groups: [(SEED_GROUP.to_string(), FOOD_CATEGORY.to_string())].into(),
        taxes: [(SEED_TAX.to_string(), VAT_CODE.to_string())].into(),
        gratuity_code: Some(TIPS_CATEGORY.to_string()),
        service_charge_code: Some(SERVICE_CHARGE_CATEGORY.to_string()),
        // Lightspeed's methods as Mews external payment types the fake hotel
        // has enabled.
        payment_methods: [
            ("CASH".to_string(), "Cash".to_string()),
            ("CARD".to_string(), "CreditCard".to_string()),
        ]
        .into(),
        ..MappingSettings::default()
    }
}

impl FakePms for FakeMews {
    fn settings(&self) -> PmsSettings {
        PmsSettings::Mews(MewsSettings::new(&self.url, CLIENT_TOKEN, ACCESS_TOKEN))
    }

    fn mapping(&self) -> MappingSettings {
        mapping()
    }

    fn inject(&self, fault: FakeFault) {
        self.push(Fault::Kit(fault));
    }

    fn applied(&self) -> Vec<FakeCharge> {
        lock(&self.state).applied.clone()
    }

    fn inject_payment(&self, fault: FakeFault) {
        self.push_payment(Fault::Kit(fault));
    }

    /// Every payment added, in order, with the amount chargebridge sent.
    fn payments(&self) -> Vec<FakeCharge> {
        lock(&self.state)
            .payments
            .iter()
            .filter(|p| !p.external_identifier.is_empty())
            .map(|p| FakeCharge {
                reference: p.external_identifier.clone(),
                amount: p.gross,
            })
            .collect()
    }
}

// ---------------------------------------------------------------- the server

fn error(status: u16, message: &str) -> HttpResponse {
    HttpResponse::build(actix_web::http::StatusCode::from_u16(status).expect("status"))
        .json(json!({ "Message": message, "RequestId": uuid::Uuid::new_v4().to_string(), "Details": null }))
}

fn ok(body: Value) -> HttpResponse {
    HttpResponse::Ok().json(body)
}

fn utc(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(SecondsFormat::Secs, true)
}

async fn connector(
    op: web::Path<String>,
    raw: web::Bytes,
    state: web::Data<Mutex<State>>,
) -> HttpResponse {
    let op = op.into_inner();
    let raw = String::from_utf8_lossy(&raw).into_owned();
    let body: Value = serde_json::from_str(&raw).unwrap_or(Value::Null);
    let answer = answer(&op, &body, &state).await;
    lock(&state).calls.push(Call {
        op,
        raw,
        body,
        status: answer.status().as_u16(),
    });
    answer
}

async fn answer(op: &str, body: &Value, state: &Mutex<State>) -> HttpResponse {
    let Some(body) = body.as_object() else {
        return error(400, "Invalid request body.");
    };
    let authorised = body.get("ClientToken").and_then(Value::as_str) == Some(CLIENT_TOKEN)
        && body
            .get("AccessToken")
            .and_then(Value::as_str)
            .is_some_and(|t| t == ACCESS_TOKEN || t == PORTFOLIO_ACCESS_TOKEN)
        && body
            .get("Client")
            .and_then(Value::as_str)
            .is_some_and(|c| !c.trim().is_empty());
    if !authorised {
        return error(401, "Invalid ClientToken, AccessToken or Client.");
    }
    let result = match op {
        "configuration/get" => Ok(ok(json!({
            "NowUtc": utc(Utc::now()),
            "Enterprise": {
                "Id": ENTERPRISE,
                "ChainId": CHAIN,
                "ChainName": "Fake Hotels",
                "Name": "Fake Hotel",
                "CreatedUtc": "2020-01-01T00:00:00Z",
                "UpdatedUtc": "2020-01-01T00:00:00Z",
                "TimeZoneIdentifier": "Europe/Berlin",
                "LegalEnvironmentCode": "DE",
                "AccommodationEnvironmentCode": "DE",
                "AccountingEnvironmentCode": "DE",
                "TaxEnvironmentCode": "DE-2020",
                "DefaultLanguageCode": "en-US",
                "EditableHistoryInterval": "P0M7DT0H0M0S",
                "AccountingEditableHistoryInterval": "P0M7DT0H0M0S",
                "OperationalEditableHistoryInterval": "P0M7DT0H0M0S",
                "AddressId": "7b4ba4b4-4bd1-4f8c-8f0f-3b58e2b14b5e",
                "Address": { "Line1": "Hauptstr. 1", "City": "Berlin", "PostalCode": "10115", "CountryCode": "DE" },
                "GroupNames": [],
                "Pricing": "Gross",
                "Subscription": { "TaxIdentifier": "DE123456789" },
                "Currencies": [ { "Currency": CURRENCY, "IsDefault": true, "IsEnabled": true } ],
                "AccountingConfiguration": {
                    "EnabledExternalPaymentTypes": ENABLED_PAYMENT_TYPES,
                    "Options": [],
                    "SurchargeConfiguration": { "SurchargeFees": {} },
                },
            },
            "Service": null,
        }))),
        "reservations/getAll/2023-06-06" => reservations(body),
        "customers/getAll" => customers(body),
        "customers/search" => customer_search(body),
        "resources/getAll" => resources(body),
        "orderItems/getAll" => order_items(body, state),
        "orders/add" => return add_order(body, state).await,
        "payments/addExternal" => return add_payment(body, state).await,
        "payments/getAll" => payments(body, state),
        _ => return error(404, "Unknown operation."),
    };
    result.unwrap_or_else(|message| error(400, &message))
}

type Answer = Result<HttpResponse, String>;

/// `Limitation` → `(count, cursor)`.
fn limitation(body: &Map<String, Value>) -> Result<(usize, Option<String>), String> {
    let l = body
        .get("Limitation")
        .and_then(Value::as_object)
        .ok_or("Limitation is required.")?;
    let count = l
        .get("Count")
        .and_then(Value::as_u64)
        .filter(|c| (1..=1000).contains(c))
        .ok_or("Limitation.Count must be an integer from 1 to 1000.")?;
    let cursor = l.get("Cursor").and_then(Value::as_str).map(str::to_string);
    Ok((count as usize, cursor))
}

/// One page of `rows` after the row whose id is `cursor`: the rows and the
/// answer's `Cursor` (the id of the last one).
fn paged<T>(
    rows: Vec<T>,
    id: impl Fn(&T) -> &str,
    body: &Map<String, Value>,
) -> Result<(Vec<T>, Value), String> {
    let (count, cursor) = limitation(body)?;
    let start = match cursor {
        None => 0,
        Some(c) => {
            rows.iter()
                .position(|r| id(r) == c)
                .ok_or("Invalid Limitation.Cursor.")?
                + 1
        }
    };
    let rows: Vec<T> = rows.into_iter().skip(start).take(count).collect();
    let next = rows
        .last()
        .map(|r| Value::String(id(r).to_string()))
        .unwrap_or(Value::Null);
    Ok((rows, next))
}

/// The answer for one page of rendered rows.
fn page(rows: Vec<Value>, key: &str, body: &Map<String, Value>) -> Answer {
    let (rows, next) = paged(rows, |r| r["Id"].as_str().unwrap_or(""), body)?;
    let mut answer = Map::new();
    answer.insert(key.to_string(), Value::Array(rows));
    answer.insert("Cursor".into(), next);
    Ok(ok(Value::Object(answer)))
}

fn strings(body: &Map<String, Value>, key: &str) -> Result<Option<Vec<String>>, String> {
    match body.get(key) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::Array(values)) if !values.is_empty() => values
            .iter()
            .map(|v| v.as_str().map(str::to_string))
            .collect::<Option<Vec<_>>>()
            .map(Some)
            .ok_or_else(|| format!("Invalid {key}.")),
        Some(_) => Err(format!("Invalid {key}.")),
    }
}

/// `[StartUtc, EndUtc)` of a time filter.
type Interval = (DateTime<Utc>, DateTime<Utc>);

fn interval(body: &Map<String, Value>, key: &str) -> Result<Option<Interval>, String> {
    let Some(v) = body.get(key).filter(|v| !v.is_null()) else {
        return Ok(None);
    };
    let at = |k: &str| {
        v.get(k)
            .and_then(Value::as_str)
            .and_then(|s| DateTime::parse_from_rfc3339(s).ok())
            .map(|t| t.with_timezone(&Utc))
            .ok_or_else(|| format!("Invalid {key}.{k}."))
    };
    let (start, end) = (at("StartUtc")?, at("EndUtc")?);
    if end < start || end - start > chrono::Duration::days(92) {
        return Err(format!("{key} must span at most 3 months."));
    }
    Ok(Some((start, end)))
}

fn reservations(body: &Map<String, Value>) -> Answer {
    let ids = strings(body, "ReservationIds")?;
    // Mews ids are UUIDs (the kit's guests keep their short ids).
    if let Some(bad) = ids
        .iter()
        .flatten()
        .find(|i| uuid::Uuid::parse_str(i).is_err() && !GUESTS.iter().any(|g| g.reservation == *i))
    {
        return Err(format!("Invalid ReservationIds: {bad}."));
    }
    let states = strings(body, "States")?;
    let rows = GUESTS
        .iter()
        .filter(|g| ids.as_ref().is_none_or(|ids| ids.iter().any(|i| i == g.reservation)))
        .filter(|g| states.as_ref().is_none_or(|s| s.iter().any(|s| s == g.state)))
        .map(|g| {
            json!({
                "Id": g.reservation,
                "ServiceId": STAY_SERVICE,
                "AccountId": g.account,
                "AccountType": "Customer",
                "Number": g.number,
                "State": g.state,
                "Origin": "Connector",
                "CreatedUtc": "2021-01-01T00:00:00Z",
                "UpdatedUtc": "2021-01-01T00:00:00Z",
                "AssignedResourceId": g.resource,
                "AssignedResourceLocked": false,
                "GroupId": "4f7a3c0e-9a54-4b55-8f1a-0c7d2f4b6a11",
                "RateId": "e4b7a2c1-3d6f-4e8a-9b0c-1d2e3f4a5b6c",
                "RequestedResourceCategoryId": "773d5e42-de1e-43a0-9ce6-f940faf2303f",
                "CreatorProfileId": "3cd637ef-4728-47f9-8fb1-afb900c9cdcf",
                "UpdaterProfileId": "3cd637ef-4728-47f9-8fb1-afb900c9cdcf",
                "StartUtc": "2020-12-31T14:00:00Z",
                "EndUtc": "2021-01-03T10:00:00Z",
                "ScheduledStartUtc": "2020-12-31T14:00:00Z",
                "ScheduledEndUtc": "2021-01-03T10:00:00Z",
                "Options": { "OwnerCheckedIn": g.state == "Started", "AllCompanionsCheckedIn": g.state == "Started",
                             "AnyCompanionCheckedIn": g.state == "Started", "ConnectorCheckIn": false },
                "PersonCounts": [ { "AgeCategoryId": "1f67644f-052d-4863-acdf-ae1600c60ca0", "Count": 1 } ],
            })
        })
        .collect();
    page(rows, "Reservations", body)
}

/// A `Customer` as Mews describes it.
fn customer_json(
    id: &str,
    number: &str,
    first: Option<&str>,
    last: &str,
    classes: &[&str],
) -> Value {
    let mut c = json!({
        "Id": id,
        "ChainId": CHAIN,
        "Number": number,
        "LastName": last,
        "Classifications": classes,
        "Options": [],
        "IsActive": true,
        "PreferredSpaceFeatures": [],
        "CreatedUtc": "2020-01-01T00:00:00Z",
        "UpdatedUtc": "2020-01-01T00:00:00Z",
        "CreatorProfileId": "3cd637ef-4728-47f9-8fb1-afb900c9cdcf",
        "UpdaterProfileId": "3cd637ef-4728-47f9-8fb1-afb900c9cdcf",
    });
    if let Some(first) = first {
        c["FirstName"] = json!(first);
    }
    c
}

fn customers(body: &Map<String, Value>) -> Answer {
    if body.get("Extent").and_then(Value::as_object).is_none() {
        return Err("Extent is required.".into());
    }
    let ids = strings(body, "CustomerIds")?;
    let rows = GUESTS
        .iter()
        .filter(|g| {
            ids.as_ref()
                .is_none_or(|ids| ids.iter().any(|i| i == g.account))
        })
        .map(|g| customer_json(g.account, g.number, Some(g.first), g.last, &[]))
        .collect();
    page(rows, "Customers", body)
}

/// `customers/search`: customers active now (checked-in guests, paymasters)
/// whose first, last or full name contains `Name` (any case).
fn customer_search(body: &Map<String, Value>) -> Answer {
    let name = body
        .get("Name")
        .and_then(Value::as_str)
        .map(str::to_lowercase);
    let named = |full: &str| {
        name.as_ref()
            .is_none_or(|n| full.to_lowercase().contains(n))
    };
    let mut found: Vec<Value> = GUESTS
        .iter()
        .filter(|g| g.state == "Started")
        .filter(|g| named(&format!("{} {}", g.first, g.last)))
        .map(|g| json!({ "Customer": customer_json(g.account, g.number, Some(g.first), g.last, &[]), "Reservation": null }))
        .collect();
    let (id, number, last) = PAYMASTER;
    if named(last) {
        found.push(json!({
            "Customer": customer_json(id, number, None, last, &["PaymasterAccount"]),
            "Reservation": null,
        }));
    }
    Ok(ok(json!({ "Customers": found })))
}

fn resources(body: &Map<String, Value>) -> Answer {
    let ids = strings(body, "ResourceIds")?;
    let rows = GUESTS
        .iter()
        .filter(|g| {
            ids.as_ref()
                .is_none_or(|ids| ids.iter().any(|i| i == g.resource))
        })
        .map(|g| {
            json!({
                "Id": g.resource,
                "EnterpriseId": ENTERPRISE,
                "IsActive": true,
                "ParentResourceId": null,
                "Name": g.room,
                "State": "Clean",
                "Descriptions": { "en-US": g.description },
                "ExternalNames": {},
                "Directions": {},
                "CreatedUtc": "2020-01-01T00:00:00Z",
                "UpdatedUtc": "2020-01-01T00:00:00Z",
                "Data": { "Discriminator": "Space", "Value": { "FloorNumber": "1" } },
            })
        })
        .collect();
    page(rows, "Resources", body)
}

fn amount(gross: Decimal, tax_codes: &[String]) -> Value {
    json!({
        "Currency": CURRENCY,
        "NetValue": Value::Number(serde_json::Number::from_str(&gross.to_string()).expect("number")),
        "GrossValue": Value::Number(serde_json::Number::from_str(&gross.to_string()).expect("number")),
        "TaxValues": tax_codes.iter().map(|c| json!({ "Code": c, "Value": 0 })).collect::<Vec<_>>(),
        "Breakdown": { "Items": [] },
    })
}

fn order_items(body: &Map<String, Value>, state: &Mutex<State>) -> Answer {
    const FILTERS: [&str; 10] = [
        "OrderItemIds",
        "AccountIds",
        "ServiceOrderIds",
        "ServiceIds",
        "BillIds",
        "CreatedUtc",
        "UpdatedUtc",
        "ConsumedUtc",
        "CanceledUtc",
        "ClosedUtc",
    ];
    if !FILTERS
        .iter()
        .any(|f| body.get(*f).is_some_and(|v| !v.is_null()))
    {
        return Err("At least one filter must be specified.".into());
    }
    let accounts = strings(body, "AccountIds")?;
    if accounts.as_ref().is_some_and(|a| a.len() > 100) {
        return Err("AccountIds: at most 100 items.".into());
    }
    let services = strings(body, "ServiceIds")?;
    let consumed = interval(body, "ConsumedUtc")?;
    let created = interval(body, "CreatedUtc")?;
    let state = lock(state);
    // Newest first: the cursor names the oldest item returned so far.
    let matching: Vec<&StoredItem> = state
        .items
        .iter()
        .rev()
        .filter(|i| accounts.as_ref().is_none_or(|a| a.contains(&i.account)))
        .filter(|i| services.as_ref().is_none_or(|s| s.contains(&i.service)))
        .filter(|i| consumed.is_none_or(|(s, e)| s <= i.consumed && i.consumed < e))
        .filter(|i| created.is_none_or(|(s, e)| s <= i.created && i.created < e))
        .collect();
    let (items, next) = paged(matching, |i| i.id.as_str(), body)?;
    let rows: Vec<Value> = items
        .into_iter()
        .map(|i| {
            json!({
                "Id": i.id,
                "EnterpriseId": ENTERPRISE,
                "AccountId": i.account,
                "AccountType": "Customer",
                "ServiceId": i.service,
                "ServiceOrderId": i.order,
                "Notes": i.notes,
                "BillId": null,
                "AccountingCategoryId": i.category,
                "BillingName": i.name,
                "ExternalIdentifier": i.external_identifier,
                "UnitCount": i.unit_count,
                "UnitAmount": amount(i.unit_gross, &i.tax_codes),
                "Amount": amount(i.unit_gross * Decimal::from(i.unit_count), &i.tax_codes),
                "OriginalAmount": amount(i.unit_gross * Decimal::from(i.unit_count), &i.tax_codes),
                "RevenueType": "Additional",
                "CreatorProfileId": "3cd637ef-4728-47f9-8fb1-afb900c9cdcf",
                "UpdaterProfileId": "3cd637ef-4728-47f9-8fb1-afb900c9cdcf",
                "CreatedUtc": utc(i.created),
                "UpdatedUtc": utc(i.created),
                "ConsumedUtc": utc(i.consumed),
                "CanceledUtc": null,
                "ClosedUtc": null,
                "StartUtc": null,
                "AccountingState": "Open",
                "Type": "CustomItem",
                "Options": { "CanceledWithReservation": false },
                "Data": null,
            })
        })
        .collect();
    Ok(ok(json!({ "OrderItems": rows, "Cursor": next })))
}

/// An `Items[]` entry, checked against `OrderItemAdditionData`.
struct NewItem {
    name: String,
    unit_count: i64,
    unit_gross: Decimal,
    tax_codes: Vec<String>,
    category: Option<String>,
    external_identifier: String,
}

fn new_item(i: usize, v: &Value) -> Result<NewItem, String> {
    let at = |m: &str| format!("Items[{i}]: {m}");
    let item = v.as_object().ok_or_else(|| at("not an object"))?;
    for key in item.keys() {
        if ![
            "Name",
            "UnitCount",
            "UnitAmount",
            "AccountingCategoryId",
            "ExternalIdentifier",
        ]
        .contains(&key.as_str())
        {
            return Err(at(&format!("unknown property {key}")));
        }
    }
    let name = item
        .get("Name")
        .and_then(Value::as_str)
        .filter(|n| !n.is_empty())
        .ok_or_else(|| at("Name is required"))?;
    let unit_count = item
        .get("UnitCount")
        .and_then(Value::as_i64)
        .filter(|c| i32::try_from(*c).is_ok())
        .ok_or_else(|| at("UnitCount must be an int32"))?;
    let amount = item
        .get("UnitAmount")
        .and_then(Value::as_object)
        .ok_or_else(|| at("UnitAmount is required"))?;
    for key in amount.keys() {
        if !["Currency", "TaxCodes", "NetValue", "GrossValue"].contains(&key.as_str()) {
            return Err(at(&format!("unknown property UnitAmount.{key}")));
        }
    }
    if amount.get("Currency").and_then(Value::as_str) != Some(CURRENCY) {
        return Err(at("UnitAmount.Currency must be the enterprise currency"));
    }
    let tax_codes = amount
        .get("TaxCodes")
        .and_then(Value::as_array)
        .ok_or_else(|| at("UnitAmount.TaxCodes is required"))?
        .iter()
        .map(|c| c.as_str().map(str::to_string))
        .collect::<Option<Vec<_>>>()
        .ok_or_else(|| at("TaxCodes must be strings"))?;
    if let Some(code) = tax_codes.iter().find(|c| c.as_str() != VAT_CODE) {
        return Err(at(&format!("unknown tax code {code}")));
    }
    if amount.get("NetValue").is_some_and(|v| !v.is_null()) {
        return Err(at("this fake expects gross prices only"));
    }
    // The number exactly as written (serde_json keeps the digits).
    let gross = match amount.get("GrossValue") {
        Some(Value::Number(n)) => Decimal::from_str(&n.to_string())
            .map_err(|_| at(&format!("GrossValue {n} is not a plain decimal")))?,
        _ => return Err(at("UnitAmount.GrossValue is required")),
    };
    let category = match item.get("AccountingCategoryId") {
        None | Some(Value::Null) => None,
        Some(Value::String(c))
            if [FOOD_CATEGORY, TIPS_CATEGORY, SERVICE_CHARGE_CATEGORY].contains(&c.as_str()) =>
        {
            Some(c.clone())
        }
        Some(_) => return Err(at("invalid AccountingCategoryId")),
    };
    let external_identifier = item
        .get("ExternalIdentifier")
        .and_then(Value::as_str)
        .filter(|e| !e.is_empty())
        .ok_or_else(|| at("ExternalIdentifier missing (chargebridge must send its reference)"))?;
    Ok(NewItem {
        name: name.to_string(),
        unit_count,
        unit_gross: gross,
        tax_codes,
        category,
        external_identifier: external_identifier.to_string(),
    })
}

struct NewOrder {
    service: String,
    account: String,
    notes: Option<String>,
    consumed: DateTime<Utc>,
    items: Vec<NewItem>,
}

/// Checks an `orders/add` body against `OrderAdditionParameters`.
fn new_order(body: &Map<String, Value>) -> Result<NewOrder, (u16, String)> {
    const FIELDS: [&str; 15] = [
        "ClientToken",
        "AccessToken",
        "Client",
        "EnterpriseId",
        "ServiceId",
        "AccountId",
        "CustomerId",
        "Options",
        "ProductOrders",
        "Items",
        "ConsumptionUtc",
        "Notes",
        "BusinessSegmentId",
        "BillId",
        "LinkedReservationId",
    ];
    let bad = |m: String| (400, m);
    if let Some(key) = body.keys().find(|k| !FIELDS.contains(&k.as_str())) {
        return Err(bad(format!("Invalid request: unknown property {key}.")));
    }
    let service = body
        .get("ServiceId")
        .and_then(Value::as_str)
        .ok_or_else(|| bad("ServiceId is required.".into()))?;
    if service != RESTAURANT_SERVICE {
        return Err(bad("Invalid ServiceId.".into()));
    }
    let account = body
        .get("AccountId")
        .and_then(Value::as_str)
        .ok_or_else(|| bad("AccountId is required.".into()))?;
    let owner = GUESTS.iter().find(|g| g.account == account);
    if owner.is_none() && account != PAYMASTER.0 {
        return Err(bad("Invalid AccountId.".into()));
    }
    if let Some(linked) = body.get("LinkedReservationId").and_then(Value::as_str) {
        let reservation = GUESTS
            .iter()
            .find(|g| g.reservation == linked)
            .ok_or_else(|| bad("Invalid LinkedReservationId.".into()))?;
        if owner.is_none_or(|o| o.account != reservation.account) {
            return Err((
                403,
                "The reservation does not belong to the account.".into(),
            ));
        }
    }
    let consumed = match body.get("ConsumptionUtc") {
        None | Some(Value::Null) => Utc::now(),
        Some(v) => v
            .as_str()
            .and_then(|s| DateTime::parse_from_rfc3339(s).ok())
            .map(|t| t.with_timezone(&Utc))
            .ok_or_else(|| bad("Invalid ConsumptionUtc.".into()))?,
    };
    let items = body
        .get("Items")
        .and_then(Value::as_array)
        .filter(|i| !i.is_empty())
        .ok_or_else(|| bad("Items or ProductOrders are required.".into()))?
        .iter()
        .enumerate()
        .map(|(i, v)| new_item(i, v))
        .collect::<Result<Vec<_>, _>>()
        .map_err(bad)?;
    Ok(NewOrder {
        service: service.to_string(),
        account: account.to_string(),
        notes: body
            .get("Notes")
            .and_then(Value::as_str)
            .map(str::to_string),
        consumed,
        items,
    })
}

fn apply(order: &NewOrder, state: &Mutex<State>) -> String {
    let id = uuid::Uuid::new_v4().to_string();
    let mut state = lock(state);
    let mut total = Decimal::ZERO;
    for item in &order.items {
        total += item.unit_gross * Decimal::from(item.unit_count);
        state.items.push(StoredItem {
            id: uuid::Uuid::new_v4().to_string(),
            account: order.account.clone(),
            service: order.service.clone(),
            order: id.clone(),
            name: item.name.clone(),
            external_identifier: Some(item.external_identifier.clone()),
            notes: order.notes.clone(),
            category: item.category.clone(),
            unit_count: item.unit_count,
            unit_gross: item.unit_gross,
            tax_codes: item.tax_codes.clone(),
            consumed: order.consumed,
            created: Utc::now(),
        });
    }
    state.applied.push(FakeCharge {
        reference: order.items[0].external_identifier.clone(),
        amount: total,
    });
    id
}

async fn add_order(body: &Map<String, Value>, state: &Mutex<State>) -> HttpResponse {
    let order = match new_order(body) {
        Ok(o) => o,
        Err((status, message)) => return error(status, &message),
    };
    let fault = lock(state).faults.pop_front();
    let added = |id: String| ok(json!({ "OrderId": id }));
    match fault {
        None => added(apply(&order, state)),
        Some(Fault::Kit(FakeFault::Reject(message))) => error(403, &message),
        Some(Fault::Kit(FakeFault::Unavailable)) => HttpResponse::TooManyRequests()
            .insert_header(("Retry-After", "2"))
            .json(
                json!({ "Message": "Request limit exceeded.", "RequestId": null, "Details": null }),
            ),
        Some(Fault::Kit(FakeFault::ApplyThenTimeout)) => {
            let id = apply(&order, state);
            tokio::time::sleep(Duration::from_secs(5)).await;
            added(id)
        }
        Some(Fault::Kit(FakeFault::Slow(delay))) => {
            tokio::time::sleep(delay).await;
            added(apply(&order, state))
        }
        Some(Fault::Status(status)) => error(status, "Unexpected error."),
        Some(Fault::ApplyThenStatus(status)) => {
            apply(&order, state);
            error(status, "Unexpected error.")
        }
    }
}

// ------------------------------------------------------------------ payments

/// Checks a `payments/addExternal` body (`ExternalPaymentParameters`; the
/// oracle has checked its shape).
fn new_payment(body: &Map<String, Value>) -> Result<StoredPayment, (u16, String)> {
    let bad = |m: &str| (400, m.to_string());
    let account = body
        .get("AccountId")
        .and_then(Value::as_str)
        .ok_or_else(|| bad("AccountId is required."))?;
    let owner = GUESTS.iter().find(|g| g.account == account);
    if owner.is_none() && account != PAYMASTER.0 {
        return Err(bad("Invalid AccountId."));
    }
    let reservation = match body.get("ReservationId") {
        None | Some(Value::Null) => None,
        Some(v) => {
            let id = v.as_str().ok_or_else(|| bad("Invalid ReservationId."))?;
            let reservation = GUESTS
                .iter()
                .find(|g| g.reservation == id)
                .ok_or_else(|| bad("Invalid ReservationId."))?;
            if reservation.account != account {
                return Err((
                    403,
                    "The reservation does not belong to the account.".into(),
                ));
            }
            Some(id.to_string())
        }
    };
    let amount = body
        .get("Amount")
        .and_then(Value::as_object)
        .ok_or_else(|| bad("Amount is required."))?;
    if amount.get("Currency").and_then(Value::as_str) != Some(CURRENCY) {
        return Err(bad("Amount.Currency must be the enterprise currency."));
    }
    if ["NetValue", "TaxCodes"]
        .iter()
        .any(|k| amount.get(*k).is_some_and(|v| !v.is_null()))
    {
        return Err(bad("this fake expects a gross amount only"));
    }
    // The number exactly as written (serde_json keeps the digits).
    let gross = match amount.get("GrossValue") {
        Some(Value::Number(n)) => Decimal::from_str(&n.to_string())
            .map_err(|_| bad(&format!("GrossValue {n} is not a plain decimal")))?,
        _ => return Err(bad("Amount.GrossValue is required.")),
    };
    // "Type of the external payment. (Required for the enterprises based in the
    // French Legal Environment where `Unspecified` is considered as fraud.)"
    let kind = body
        .get("Type")
        .and_then(Value::as_str)
        .unwrap_or("Unspecified");
    // "The external payment type must be enabled by the property in order to
    // accept such payments in their Mews environment."
    if !ENABLED_PAYMENT_TYPES.contains(&kind) {
        return Err((
            403,
            format!("External payment type {kind} is not enabled. Contact the property."),
        ));
    }
    let external_identifier = body
        .get("ExternalIdentifier")
        .and_then(Value::as_str)
        .filter(|e| !e.is_empty())
        .ok_or_else(|| bad("ExternalIdentifier missing (chargebridge must send its reference)"))?;
    Ok(StoredPayment {
        id: uuid::Uuid::new_v4().to_string(),
        account: account.to_string(),
        reservation,
        kind: kind.to_string(),
        gross,
        external_identifier: external_identifier.to_string(),
        notes: body
            .get("Notes")
            .and_then(Value::as_str)
            .map(str::to_string),
        created: Utc::now(),
    })
}

fn apply_payment(payment: &StoredPayment, state: &Mutex<State>) -> String {
    let mut payment = payment.clone();
    payment.id = uuid::Uuid::new_v4().to_string();
    payment.created = Utc::now();
    let id = payment.id.clone();
    lock(state).payments.push(payment);
    id
}

async fn add_payment(body: &Map<String, Value>, state: &Mutex<State>) -> HttpResponse {
    let payment = match new_payment(body) {
        Ok(p) => p,
        Err((status, message)) => return error(status, &message),
    };
    let fault = lock(state).payment_faults.pop_front();
    let added = |id: String| ok(json!({ "ExternalPaymentId": id }));
    match fault {
        None => added(apply_payment(&payment, state)),
        Some(Fault::Kit(FakeFault::Reject(message))) => error(403, &message),
        Some(Fault::Kit(FakeFault::Unavailable)) => HttpResponse::TooManyRequests()
            .insert_header(("Retry-After", "2"))
            .json(
                json!({ "Message": "Request limit exceeded.", "RequestId": null, "Details": null }),
            ),
        Some(Fault::Kit(FakeFault::ApplyThenTimeout)) => {
            let id = apply_payment(&payment, state);
            tokio::time::sleep(Duration::from_secs(5)).await;
            added(id)
        }
        Some(Fault::Kit(FakeFault::Slow(delay))) => {
            tokio::time::sleep(delay).await;
            added(apply_payment(&payment, state))
        }
        Some(Fault::Status(status)) => error(status, "Unexpected error."),
        Some(Fault::ApplyThenStatus(status)) => {
            apply_payment(&payment, state);
            error(status, "Unexpected error.")
        }
    }
}

/// A `Payment` as Mews describes it (and as its example shows a cash payment).
fn payment_json(p: &StoredPayment) -> Value {
    // "Payment's amount, negative amount represents either rebate or a payment."
    let shown = amount(-p.gross, &[]);
    let (kind, data) = if p.kind == "Cash" {
        ("CashPayment", Value::Null)
    } else {
        (
            "ExternalPayment",
            json!({
                "Discriminator": "External",
                "CreditCard": null,
                "Invoice": null,
                "External": {
                    "Type": p.kind,
                    "ExternalIdentifier": if p.external_identifier.is_empty() { Value::Null } else { json!(p.external_identifier) },
                },
                "Ghost": null,
                "Alternative": null,
            }),
        )
    };
    json!({
        "Id": p.id,
        "EnterpriseId": ENTERPRISE,
        "AccountId": p.account,
        "AccountType": "Customer",
        "PaymentRequestId": null,
        "BillId": null,
        "ReservationId": p.reservation,
        "AccountingCategoryId": null,
        "Amount": shown,
        "OriginalAmount": shown,
        "Notes": p.notes,
        "SettlementId": null,
        "ConsumedUtc": utc(p.created),
        "ClosedUtc": null,
        "ChargedUtc": utc(p.created),
        "CreatedUtc": utc(p.created),
        "UpdatedUtc": utc(p.created),
        // Required and not nullable in the schema (the example shows null).
        "SettlementUtc": utc(p.created),
        "AccountingState": "Open",
        "State": "Charged",
        "Identifier": null,
        "Type": kind,
        // "Value provided only for payments processed by Mews Payments."
        "Kind": null,
        "Data": data,
        "PaymentOrigin": "Api",
    })
}

/// `payments/getAll` by `PaymentIds`, `AccountIds`, `ReservationIds` and
/// `CreatedUtc`, newest first (the cursor names the oldest payment returned).
fn payments(body: &Map<String, Value>, state: &Mutex<State>) -> Answer {
    for unsupported in [
        "BillIds",
        "UpdatedUtc",
        "ChargedUtc",
        "ClosedUtc",
        "SettlementUtc",
    ] {
        if body.get(unsupported).is_some_and(|v| !v.is_null()) {
            return Err(format!("this fake does not filter by {unsupported}"));
        }
    }
    let ids = strings(body, "PaymentIds")?;
    let accounts = strings(body, "AccountIds")?;
    let reservations = strings(body, "ReservationIds")?;
    let created = interval(body, "CreatedUtc")?;
    if ids.is_none() && accounts.is_none() && reservations.is_none() && created.is_none() {
        return Err("At least one filter parameter must be specified.".into());
    }
    let state = lock(state);
    let matching: Vec<&StoredPayment> = state
        .payments
        .iter()
        .rev()
        .filter(|p| ids.as_ref().is_none_or(|i| i.contains(&p.id)))
        .filter(|p| accounts.as_ref().is_none_or(|a| a.contains(&p.account)))
        .filter(|p| {
            reservations
                .as_ref()
                .is_none_or(|r| p.reservation.as_ref().is_some_and(|x| r.contains(x)))
        })
        .filter(|p| created.is_none_or(|(s, e)| s <= p.created && p.created < e))
        .collect();
    let (rows, next) = paged(matching, |p| p.id.as_str(), body)?;
    let rows: Vec<Value> = rows.into_iter().map(payment_json).collect();
    Ok(ok(json!({ "Payments": rows, "Cursor": next })))
}
