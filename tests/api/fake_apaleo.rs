//! A local apaleo: the identity server's token endpoint and the Finance and Booking
//! calls the `apaleo` adapter makes, as apaleo documents them.
//!
//! * `POST /connect/token`: client credentials (HTTP Basic); tokens expire.
//! * `GET /finance/v1/folios?reservationIds=…&type=Guest[&excludeClosed=true]`:
//!   folio list items (`id`, `type`, `isMainFolio`, `status`, `allowedActions`);
//!   204 when empty, as apaleo answers empty lists.
//! * `GET /finance/v1/folios/{id}`: the folio with its `charges` (`receipt`, `amount`).
//! * `POST /finance/v1/folio-actions/{folioId}/charges`: checks `serviceType`,
//!   `vatType`, `name`, exact `amount {amount, currency}`, integer `quantity`,
//!   `receipt`; answers 201 `{"id"}`; errors as `{"messages": [...]}`.
//! * `POST /finance/v1/folios/{folioId}/payments`: a custom payment (`method`,
//!   exact positive `amount`, `receipt` — required on a house folio); 201 `{"id"}`.
//! * `POST /finance/v1/folios/{folioId}/refunds`: a folio refund (same fields,
//!   `reason`); 201 `{"id"}`, listed as `Pending` ("processed asynchronously").
//! * `GET /finance/v1/folios/{folioId}/payments` and `…/refunds`: newest first,
//!   `statusCodes`, `pageNumber`, `pageSize` (at most 500); 204 past the end.
//! * `GET /booking/v1/reservations?status=InHouse&textSearch=…`.
//!
//! Guests: reservation `001` Jane Doe in 101 (one open main folio), `002` John Smith
//! in 102 (a closed-for-charges main folio and an open second folio), `004` Arthur
//! Dent in 202, checked out (a closed folio).
//!
//! Every request and every answer also goes through apaleo's published
//! descriptions (`tests/vendor/apaleo/`, [`crate::vendor_oracle`]): what they refuse
//! is answered 422 `{"messages": […]}` and fails the test when the fake is dropped.

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::str::FromStr;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use actix_web::{App, HttpRequest, HttpResponse, HttpServer, web};
use chargebridge::config::MappingSettings;
use chargebridge::pms::PmsSettings;
use chargebridge::pms::apaleo::ApaleoSettings;
use rust_decimal::Decimal;
use secrecy::SecretString;
use serde_json::{Value, json};

use crate::conformance::{FakeCharge, FakeFault, FakePms};
use crate::vendor_oracle::{self, Request, Vendor, ViolationGuard, Violations};

/// The parts of apaleo's Finance and Booking descriptions the adapter uses
/// (`tests/vendor/apaleo/`, cut by its `extract.py`). The identity server's
/// `/connect/token` is not part of them (apaleo documents it with its identity
/// server, not in these descriptions), so it passes unchecked.
pub fn vendor() -> Arc<Vendor> {
    static VENDOR: std::sync::OnceLock<Arc<Vendor>> = std::sync::OnceLock::new();
    VENDOR
        .get_or_init(|| {
            Arc::new(
                Vendor::new(
                    "apaleo",
                    &[
                        (
                            "apaleo/finance",
                            include_str!("../vendor/apaleo/finance.subset.openapi.json"),
                        ),
                        (
                            "apaleo/booking",
                            include_str!("../vendor/apaleo/booking.subset.openapi.json"),
                        ),
                    ],
                )
                .outside("/connect/")
                // apaleo's gateway rate-limits with 429 (the adapter must take it as
                // "not processed"); the descriptions do not list it.
                .gateway_statuses(&[429, 502, 504])
                .response_rule(allowed_actions_rule),
            )
        })
        .clone()
}

/// `GET /finance/v1/folios`: "Allowed actions are only returned, when the list is
/// filtered by reservation ID." and `expand`: "List of all embedded resources that
/// should be expanded in the response. Possible values are: allowances,
/// allowedActions, …" — so a folio list carries `allowedActions` only when asked
/// with `expand=allowedActions` and `reservationIds`.
fn allowed_actions_rule(op: &str, request: &Request, status: u16, answer: &Value) -> Vec<String> {
    if op != "FinanceFoliosGet" || status != 200 {
        return Vec::new();
    }
    let asked = request
        .query_values("expand")
        .iter()
        .any(|e| e.split(',').any(|x| x == "allowedActions"))
        && !request.query_values("reservationIds").is_empty();
    let carried = answer["folios"]
        .as_array()
        .is_some_and(|f| f.iter().any(|f| f.get("allowedActions").is_some()));
    if carried && !asked {
        vec!["allowedActions returned without expand=allowedActions and reservationIds".into()]
    } else {
        Vec::new()
    }
}

/// Whether a folio list request asked for `allowedActions` (see the rule above).
fn wants_allowed_actions(query: &HashMap<String, String>) -> bool {
    query.contains_key("reservationIds")
        && query
            .get("expand")
            .is_some_and(|e| e.split(',').any(|x| x == "allowedActions"))
}

pub const PROPERTY: &str = "CBP";
pub const CLIENT_ID: &str = "cb-apaleo-client";
pub const CLIENT_SECRET: &str = "apaleo-secret-never-logged";
/// `base64(CLIENT_ID:CLIENT_SECRET)`.
const BASIC: &str = "Basic Y2ItYXBhbGVvLWNsaWVudDphcGFsZW8tc2VjcmV0LW5ldmVyLWxvZ2dlZA==";
const TOKEN_LIFETIME: u64 = 3600;
const LATE: Duration = Duration::from_secs(5);
const SERVICE_TYPES: [&str; 4] = ["Other", "Accommodation", "FoodAndBeverages", "CityTax"];
const VAT_TYPES: [&str; 8] = [
    "Null",
    "VeryReduced",
    "Reduced",
    "Normal",
    "Without",
    "Special",
    "ReducedCovid19",
    "NormalCovid19",
];

/// What the next charge request meets.
#[derive(Debug, Clone)]
pub enum ApaleoFault {
    Kit(FakeFault),
    /// 429 with `Retry-After`, before anything is applied.
    TooManyRequests,
    /// This request goes through normally (to aim a later fault at a later item).
    Pass,
    /// This status (with an apaleo `messages` body), nothing applied: a misrouted call.
    Status(u16),
}

struct Guest {
    reservation_id: &'static str,
    room: &'static str,
    unit_group: &'static str,
    first: &'static str,
    last: &'static str,
    in_house: bool,
    /// apaleo's `isOpenForCharges`.
    open_for_charges: bool,
}

const GUESTS: [Guest; 4] = [
    Guest {
        reservation_id: "001",
        room: "101",
        unit_group: "Double",
        first: "Jane",
        last: "Doe",
        in_house: true,
        open_for_charges: true,
    },
    Guest {
        reservation_id: "002",
        room: "102",
        unit_group: "Twin",
        first: "John",
        last: "Smith",
        in_house: true,
        open_for_charges: true,
    },
    Guest {
        reservation_id: "004",
        room: "202",
        unit_group: "Double",
        first: "Arthur",
        last: "Dent",
        in_house: false,
        open_for_charges: false,
    },
    Guest {
        reservation_id: "005",
        room: "103",
        unit_group: "Single",
        first: "Ford",
        last: "Prefect",
        in_house: true,
        open_for_charges: false,
    },
];

struct Folio {
    id: &'static str,
    /// Empty for house and external folios.
    reservation: &'static str,
    main: bool,
    closed: bool,
    takes_charges: bool,
    /// apaleo's folio `type`: `Guest`, `House`, `External`.
    kind: &'static str,
    /// The debitor's name (house and external folios).
    debitor: &'static str,
}

const FOLIOS: [Folio; 6] = [
    Folio {
        id: "001-1",
        reservation: "001",
        main: true,
        closed: false,
        takes_charges: true,
        kind: "Guest",
        debitor: "",
    },
    Folio {
        id: "002-1",
        reservation: "002",
        main: true,
        closed: false,
        takes_charges: false,
        kind: "Guest",
        debitor: "",
    },
    Folio {
        id: "002-2",
        reservation: "002",
        main: false,
        closed: false,
        takes_charges: true,
        kind: "Guest",
        debitor: "",
    },
    Folio {
        id: "004-1",
        reservation: "004",
        main: true,
        closed: true,
        takes_charges: false,
        kind: "Guest",
        debitor: "",
    },
    Folio {
        id: "MUC-HOUSE",
        reservation: "",
        main: false,
        closed: false,
        takes_charges: true,
        kind: "House",
        debitor: "Bar Account",
    },
    Folio {
        id: "MUC-SPA",
        reservation: "",
        main: false,
        closed: false,
        takes_charges: true,
        kind: "External",
        debitor: "Spa Account",
    },
];

/// A payment or refund on a folio.
#[derive(Debug, Clone)]
pub struct PostedPayment {
    pub id: String,
    pub folio: String,
    pub receipt: Option<String>,
    pub idempotency_key: Option<String>,
    pub body: Value,
    /// A folio refund (`POST …/refunds`), not a payment.
    pub refund: bool,
    /// As sent: positive for payments and refunds alike.
    pub amount: Decimal,
}

impl PostedPayment {
    /// What it does to the folio: a refund gives money back.
    pub fn signed(&self) -> Decimal {
        if self.refund {
            -self.amount
        } else {
            self.amount
        }
    }
}

#[derive(Debug, Clone)]
pub struct PostedCharge {
    pub id: String,
    pub folio: String,
    pub receipt: String,
    pub idempotency_key: Option<String>,
    pub body: Value,
    pub amount: Decimal,
}

struct State {
    token_lifetime: u64,
    tokens: HashMap<String, Instant>,
    token_requests: u64,
    /// Every access token handed out, revoked or not.
    issued: Vec<String>,
    unauthorized: u64,
    refuse_every_token: bool,
    faults: VecDeque<ApaleoFault>,
    charges: Vec<PostedCharge>,
    charge_requests: u64,
    /// What the next payment or refund request meets.
    payment_faults: VecDeque<ApaleoFault>,
    payments: Vec<PostedPayment>,
    payment_requests: u64,
    shape_errors: Vec<String>,
}

impl Default for State {
    fn default() -> Self {
        State {
            token_lifetime: TOKEN_LIFETIME,
            tokens: HashMap::new(),
            token_requests: 0,
            issued: Vec::new(),
            unauthorized: 0,
            refuse_every_token: false,
            faults: VecDeque::new(),
            charges: Vec::new(),
            charge_requests: 0,
            payment_faults: VecDeque::new(),
            payments: Vec::new(),
            payment_requests: 0,
            shape_errors: Vec::new(),
        }
    }
}

type Shared = Arc<Mutex<State>>;

pub struct FakeApaleo {
    pub base: String,
    state: Shared,
    /// What apaleo's descriptions refuse; checked when the fake is dropped.
    violations: ViolationGuard,
}

/// For `conformance!`.
pub async fn make() -> Arc<dyn FakePms> {
    FakeApaleo::start().await
}

crate::conformance!(apaleo_adapter, make);

impl FakeApaleo {
    pub async fn start() -> Arc<FakeApaleo> {
        let state: Shared = Arc::default();
        let data = web::Data::new(state.clone());
        let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind fake apaleo");
        let port = listener.local_addr().unwrap().port();
        let violations = Violations::default();
        let recorder = violations.clone();
        let server = HttpServer::new(move || {
            App::new()
                // apaleo answers "Validation errors in the request body or query
                // params" with 422 and a `MessageItemCollection`.
                .wrap(vendor_oracle::guard(vendor(), recorder.clone(), |m| {
                    messages(422, m)
                }))
                .app_data(data.clone())
                .route("/connect/token", web::post().to(token))
                .route("/finance/v1/folios", web::get().to(folios))
                .route("/finance/v1/folios/{id}", web::get().to(folio))
                .route(
                    "/finance/v1/folio-actions/{id}/charges",
                    web::post().to(post_charge),
                )
                .route(
                    "/finance/v1/folios/{id}/payments",
                    web::post().to(post_payment),
                )
                .route(
                    "/finance/v1/folios/{id}/payments",
                    web::get().to(list_payments),
                )
                .route(
                    "/finance/v1/folios/{id}/refunds",
                    web::post().to(post_refund),
                )
                .route(
                    "/finance/v1/folios/{id}/refunds",
                    web::get().to(list_refunds),
                )
                .route("/booking/v1/reservations", web::get().to(reservations))
                .default_service(web::to(|| async { HttpResponse::NotFound().finish() }))
        })
        .workers(2)
        .disable_signals()
        .listen(listener)
        .expect("listen")
        .run();
        tokio::spawn(server);
        Arc::new(FakeApaleo {
            base: format!("http://127.0.0.1:{port}"),
            state,
            violations: ViolationGuard(violations),
        })
    }

    /// What the oracle refused so far (emptied: the fake's drop checks the rest).
    pub fn take_violations(&self) -> Vec<String> {
        self.violations.0.take()
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap()
    }

    pub fn apaleo_settings(&self) -> ApaleoSettings {
        ApaleoSettings {
            url: self.base.clone(),
            identity_url: self.base.clone(),
            client_id: CLIENT_ID.into(),
            client_secret: Some(SecretString::from(CLIENT_SECRET)),
            client_secret_env: None,
            client_secret_file: None,
            property_id: Some(PROPERTY.into()),
            service_type: "FoodAndBeverages".into(),
            default_vat_type: Some("Normal".into()),
            tip_vat_type: "Without".into(),
            timeout: Duration::from_secs(8),
            rate_limit: chargebridge::pms::rate_limit::RateLimit::OFF,
        }
    }

    pub fn push(&self, fault: ApaleoFault) {
        self.lock().faults.push_back(fault);
    }

    pub fn set_token_lifetime(&self, seconds: u64) {
        self.lock().token_lifetime = seconds;
    }

    pub fn revoke_tokens(&self) {
        self.lock().tokens.clear();
    }

    pub fn refuse_every_token(&self) {
        self.lock().refuse_every_token = true;
    }

    pub fn token_requests(&self) -> u64 {
        self.lock().token_requests
    }

    /// Every access token issued so far (tests look for them where they must not be).
    pub fn issued_tokens(&self) -> Vec<String> {
        self.lock().issued.clone()
    }

    pub fn unauthorized(&self) -> u64 {
        self.lock().unauthorized
    }

    /// Every charge on any folio, in the order applied.
    pub fn charges(&self) -> Vec<PostedCharge> {
        self.lock().charges.clone()
    }

    /// Authenticated charge requests, applied or not.
    pub fn charge_requests(&self) -> u64 {
        self.lock().charge_requests
    }

    /// The next payment or refund request meets `fault` (charges do not).
    pub fn push_payment(&self, fault: ApaleoFault) {
        self.lock().payment_faults.push_back(fault);
    }

    /// Every payment and refund on any folio, in the order applied.
    pub fn folio_payments(&self) -> Vec<PostedPayment> {
        self.lock().payments.clone()
    }

    /// `count` payments by someone else (receipts `FRONT-DESK-{n}`) on `folio`,
    /// newer than any so far: what a busy house folio holds.
    pub fn add_foreign_payments(&self, folio: &str, count: usize) {
        let mut s = self.lock();
        for n in 0..count {
            let receipt = format!("FRONT-DESK-{n}");
            let body = json!({
                "method": "Cash",
                "amount": { "amount": 1, "currency": "EUR" },
                "receipt": receipt,
            });
            apply_payment(
                &mut s,
                folio,
                Some(receipt),
                None,
                body,
                Decimal::ONE,
                false,
            );
        }
    }

    /// Authenticated payment and refund requests, applied or not.
    pub fn payment_requests(&self) -> u64 {
        self.lock().payment_requests
    }

    pub fn shape_errors(&self) -> Vec<String> {
        self.lock().shape_errors.clone()
    }
}

impl FakePms for FakeApaleo {
    fn settings(&self) -> PmsSettings {
        PmsSettings::Apaleo(self.apaleo_settings())
    }

    fn mapping(&self) -> MappingSettings {
        MappingSettings {
            taxes: [("12345".to_string(), "Reduced".to_string())].into(),
            payment_methods: [
                ("CASH".to_string(), "Cash".to_string()),
                ("CARD".to_string(), "CreditCard".to_string()),
            ]
            .into(),
            ..MappingSettings::default()
        }
    }

    fn inject(&self, fault: FakeFault) {
        self.push(ApaleoFault::Kit(fault));
    }

    /// One entry per application of a receipt: its items are the charges whose
    /// receipt is `{reference}/{n}`; the k-th application sums the k-th charge of
    /// each item, so a receipt applied twice shows twice.
    fn applied(&self) -> Vec<FakeCharge> {
        let mut by_reference: BTreeMap<String, (usize, BTreeMap<String, Vec<Decimal>>)> =
            BTreeMap::new();
        for (order, c) in self.lock().charges.iter().enumerate() {
            let (reference, item) = c.receipt.rsplit_once('/').unwrap_or((&c.receipt, ""));
            let entry = by_reference
                .entry(reference.to_string())
                .or_insert_with(|| (order, BTreeMap::new()));
            entry.1.entry(item.to_string()).or_default().push(c.amount);
        }
        let mut out: Vec<(usize, FakeCharge)> = Vec::new();
        for (reference, (order, items)) in by_reference {
            let times = items.values().map(Vec::len).max().unwrap_or(0);
            for k in 0..times {
                out.push((
                    order,
                    FakeCharge {
                        reference: reference.clone(),
                        amount: items.values().filter_map(|a| a.get(k)).sum(),
                    },
                ));
            }
        }
        out.sort_by_key(|(order, _)| *order);
        out.into_iter().map(|(_, c)| c).collect()
    }

    /// The next payment or refund request meets `fault` (charges do not).
    fn inject_payment(&self, fault: FakeFault) {
        self.push_payment(ApaleoFault::Kit(fault));
    }

    /// Every payment and refund, in order: the reference is its receipt, a
    /// refund's amount negative.
    fn payments(&self) -> Vec<FakeCharge> {
        self.lock()
            .payments
            .iter()
            .map(|p| FakeCharge {
                reference: p.receipt.clone().unwrap_or_default(),
                amount: p.signed(),
            })
            .collect()
    }
}

fn messages(status: u16, text: &str) -> HttpResponse {
    HttpResponse::build(actix_web::http::StatusCode::from_u16(status).unwrap())
        .json(json!({ "messages": [text] }))
}

fn header<'a>(req: &'a HttpRequest, name: &str) -> Option<&'a str> {
    req.headers().get(name).and_then(|v| v.to_str().ok())
}

async fn token(
    req: HttpRequest,
    form: web::Form<HashMap<String, String>>,
    state: web::Data<Shared>,
) -> HttpResponse {
    let mut s = state.lock().unwrap();
    s.token_requests += 1;
    if header(&req, "authorization") != Some(BASIC)
        || form.get("grant_type").map(String::as_str) != Some("client_credentials")
    {
        return HttpResponse::BadRequest().json(json!({ "error": "invalid_client" }));
    }
    let value = format!("apaleo-token-{}-{}", s.token_requests, uuid::Uuid::new_v4());
    let lifetime = s.token_lifetime;
    s.issued.push(value.clone());
    s.tokens.insert(
        value.clone(),
        Instant::now() + Duration::from_secs(lifetime),
    );
    HttpResponse::Ok().json(json!({
        "access_token": value,
        "expires_in": lifetime,
        "token_type": "Bearer",
        "scope": "folios.manage reservations.read",
    }))
}

fn refused(req: &HttpRequest, s: &mut State) -> Option<HttpResponse> {
    let bearer = header(req, "authorization").and_then(|h| h.strip_prefix("Bearer "));
    let valid = bearer
        .and_then(|t| s.tokens.get(t))
        .is_some_and(|expires| Instant::now() < *expires);
    if !valid || s.refuse_every_token {
        s.unauthorized += 1;
        return Some(HttpResponse::Unauthorized().finish());
    }
    None
}

fn folio_item(f: &Folio, s: &State, with_actions: bool) -> Value {
    let balance: Decimal = s
        .charges
        .iter()
        .filter(|c| c.folio == f.id)
        .map(|c| c.amount)
        .sum();
    let mut actions = vec!["AddPayment", "AddRefund"];
    if f.takes_charges {
        actions.push("AddCharge");
    }
    if f.closed {
        actions = vec!["Reopen"];
    }
    let mut item = json!({
        "id": f.id,
        "created": "2021-01-01T10:00:00Z",
        "updated": "2021-01-01T10:00:00Z",
        "type": f.kind,
        "isMainFolio": f.main,
        "status": if f.closed { "Closed" } else { "Open" },
        "balance": { "amount": Value::Number(serde_json::Number::from_str(&balance.to_string()).unwrap()), "currency": "EUR" },
    });
    if f.reservation.is_empty() {
        item["debitor"] = json!({ "name": f.debitor });
    } else {
        item["reservation"] =
            json!({ "id": f.reservation, "bookingId": format!("B{}", f.reservation) });
    }
    if with_actions {
        item["allowedActions"] = json!(actions);
    }
    item
}

async fn folios(
    req: HttpRequest,
    query: web::Query<HashMap<String, String>>,
    state: web::Data<Shared>,
) -> HttpResponse {
    let mut s = state.lock().unwrap();
    if let Some(answer) = refused(&req, &mut s) {
        return answer;
    }
    if query.get("propertyIds").is_some_and(|p| p != PROPERTY) {
        return HttpResponse::NoContent().finish();
    }
    let reservations: Option<Vec<&str>> =
        query.get("reservationIds").map(|r| r.split(',').collect());
    let kind = query.get("type");
    let status = query.get("status");
    // "contained in: debitor first name or last name or company name, folio id"
    let text = query.get("textSearch").map(|t| t.to_lowercase());
    let exclude_closed = query.get("excludeClosed").map(String::as_str) == Some("true");
    let list: Vec<Value> = FOLIOS
        .iter()
        .filter(|f| {
            reservations
                .as_ref()
                .is_none_or(|r| r.contains(&f.reservation))
        })
        .filter(|f| kind.is_none_or(|k| k == f.kind))
        .filter(|f| status.is_none_or(|st| (st == "Closed") == f.closed))
        .filter(|f| {
            text.as_ref().is_none_or(|t| {
                f.debitor.to_lowercase().contains(t) || f.id.to_lowercase().contains(t)
            })
        })
        .filter(|f| !(exclude_closed && f.closed))
        .map(|f| folio_item(f, &s, wants_allowed_actions(&query)))
        .collect();
    if list.is_empty() {
        return HttpResponse::NoContent().finish();
    }
    HttpResponse::Ok().json(json!({ "count": list.len(), "folios": list }))
}

async fn folio(
    req: HttpRequest,
    path: web::Path<String>,
    state: web::Data<Shared>,
) -> HttpResponse {
    let mut s = state.lock().unwrap();
    if let Some(answer) = refused(&req, &mut s) {
        return answer;
    }
    let Some(f) = FOLIOS.iter().find(|f| f.id == path.as_str()) else {
        return HttpResponse::NotFound().finish();
    };
    let mut body = folio_item(f, &s, true);
    body["property"] = json!({ "id": PROPERTY });
    body["charges"] = s
        .charges
        .iter()
        .filter(|c| c.folio == f.id)
        .map(|c| {
            json!({
                "id": c.id,
                "serviceType": c.body["serviceType"],
                "name": c.body["name"],
                "isPosted": false,
                "serviceDate": "2021-01-01",
                "created": "2021-01-01T00:00:00Z",
                "amount": {
                    "grossAmount": c.body["amount"]["amount"],
                    "netAmount": c.body["amount"]["amount"],
                    "vatType": c.body["vatType"],
                    "vatPercent": 0,
                    "currency": c.body["amount"]["currency"],
                },
                "receipt": c.receipt,
                "quantity": c.body["quantity"],
                "type": "Direct",
            })
        })
        .collect();
    HttpResponse::Ok().json(body)
}

/// The documented charge shape; the amount on success.
fn check_charge(body: &Value) -> Result<(String, Decimal), String> {
    let service = body.get("serviceType").and_then(Value::as_str);
    if !service.is_some_and(|s| SERVICE_TYPES.contains(&s)) {
        return Err("serviceType".into());
    }
    let vat = body.get("vatType").and_then(Value::as_str);
    if !vat.is_some_and(|v| VAT_TYPES.contains(&v)) {
        return Err(format!("vatType {vat:?}"));
    }
    body.get("name")
        .and_then(Value::as_str)
        .filter(|n| !n.trim().is_empty())
        .ok_or("name")?;
    let amount = body.pointer("/amount/amount").ok_or("amount.amount")?;
    let text = amount.to_string();
    if !amount.is_number() || text.contains(['e', 'E']) {
        return Err("amount.amount must be a plain decimal number".into());
    }
    let amount = Decimal::from_str(&text).map_err(|_| "amount.amount")?;
    body.pointer("/amount/currency")
        .and_then(Value::as_str)
        .filter(|c| c.len() == 3)
        .ok_or("amount.currency")?;
    body.get("quantity")
        .and_then(Value::as_i64)
        .filter(|q| *q >= 1)
        .ok_or("quantity must be a positive integer")?;
    let receipt = body
        .get("receipt")
        .and_then(Value::as_str)
        .filter(|r| !r.is_empty())
        .ok_or("receipt")?;
    Ok((receipt.to_string(), amount))
}

fn apply(
    s: &mut State,
    folio: &str,
    receipt: String,
    key: Option<String>,
    body: Value,
    amount: Decimal,
) -> Value {
    let id = format!("{folio}-C{}", s.charges.len() + 1);
    s.charges.push(PostedCharge {
        id: id.clone(),
        folio: folio.to_string(),
        receipt,
        idempotency_key: key,
        body,
        amount,
    });
    json!({ "id": id })
}

async fn post_charge(
    req: HttpRequest,
    path: web::Path<String>,
    body: web::Bytes,
    state: web::Data<Shared>,
) -> HttpResponse {
    let folio_id = path.into_inner();
    let key = header(&req, "Idempotency-Key").map(str::to_string);
    let (fault, receipt, json, amount) = {
        let mut s = state.lock().unwrap();
        if let Some(answer) = refused(&req, &mut s) {
            return answer;
        }
        s.charge_requests += 1;
        let Ok(json) = serde_json::from_slice::<Value>(&body) else {
            s.shape_errors.push("body is not JSON".into());
            return messages(400, "The request body is not JSON");
        };
        let (receipt, amount) = match check_charge(&json) {
            Ok(ok) => ok,
            Err(problem) => {
                s.shape_errors.push(problem.clone());
                return messages(400, &format!("Invalid field: {problem}"));
            }
        };
        if key.as_deref() != Some(receipt.as_str()) {
            s.shape_errors
                .push("Idempotency-Key should repeat the receipt".into());
        }
        let fault = s.faults.pop_front();
        let Some(f) = FOLIOS.iter().find(|f| f.id == folio_id) else {
            return HttpResponse::NotFound().finish();
        };
        if fault.is_none() && !f.takes_charges {
            return messages(422, "Charges cannot be added to this folio");
        }
        (fault, receipt, json, amount)
    };
    match fault {
        None | Some(ApaleoFault::Pass) => {
            let created = apply(
                &mut state.lock().unwrap(),
                &folio_id,
                receipt,
                key,
                json,
                amount,
            );
            HttpResponse::Ok().json(created)
        }
        Some(ApaleoFault::Kit(FakeFault::Reject(reason))) => messages(422, &reason),
        Some(ApaleoFault::Status(status)) => messages(status, "Not a charge endpoint"),
        Some(ApaleoFault::Kit(FakeFault::Unavailable)) => {
            HttpResponse::ServiceUnavailable().finish()
        }
        Some(ApaleoFault::TooManyRequests) => HttpResponse::TooManyRequests()
            .insert_header(("Retry-After", "1"))
            .finish(),
        Some(ApaleoFault::Kit(FakeFault::ApplyThenTimeout)) => {
            let created = apply(
                &mut state.lock().unwrap(),
                &folio_id,
                receipt,
                key,
                json,
                amount,
            );
            tokio::time::sleep(LATE).await;
            HttpResponse::Ok().json(created)
        }
        Some(ApaleoFault::Kit(FakeFault::Slow(delay))) => {
            tokio::time::sleep(delay).await;
            let created = apply(
                &mut state.lock().unwrap(),
                &folio_id,
                receipt,
                key,
                json,
                amount,
            );
            HttpResponse::Ok().json(created)
        }
    }
}

/// The methods apaleo takes for a custom payment or a folio refund
/// (`CreateCustomPaymentRequest.method`, `CreateFolioRefundRequest.method`).
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

/// A plain decimal JSON number (no exponent), exactly.
fn exact_amount(value: Option<&Value>) -> Result<Decimal, String> {
    let amount = value.ok_or("amount.amount")?;
    let text = amount.to_string();
    if !amount.is_number() || text.contains(['e', 'E']) {
        return Err("amount.amount must be a plain decimal number".into());
    }
    Decimal::from_str(&text).map_err(|_| "amount.amount".to_string())
}

/// The documented payment / refund shape (the oracle checks the schema; this
/// reads it): the amount and receipt.
fn check_payment(body: &Value) -> Result<(Decimal, Option<String>), String> {
    let method = body.get("method").and_then(Value::as_str);
    if !method.is_some_and(|m| PAYMENT_METHODS.contains(&m)) {
        return Err(format!("method {method:?}"));
    }
    let amount = exact_amount(body.pointer("/amount/amount"))?;
    body.pointer("/amount/currency")
        .and_then(Value::as_str)
        .filter(|c| c.len() == 3)
        .ok_or("amount.currency")?;
    let receipt = body
        .get("receipt")
        .and_then(Value::as_str)
        .map(str::to_string);
    Ok((amount, receipt))
}

async fn post_payment(
    req: HttpRequest,
    path: web::Path<String>,
    body: web::Bytes,
    state: web::Data<Shared>,
) -> HttpResponse {
    settle(req, path.into_inner(), body, state, false).await
}

async fn post_refund(
    req: HttpRequest,
    path: web::Path<String>,
    body: web::Bytes,
    state: web::Data<Shared>,
) -> HttpResponse {
    settle(req, path.into_inner(), body, state, true).await
}

fn apply_payment(
    s: &mut State,
    folio: &str,
    receipt: Option<String>,
    key: Option<String>,
    body: Value,
    amount: Decimal,
    refund: bool,
) -> Value {
    let id = format!(
        "{folio}-{}{}",
        if refund { "R" } else { "P" },
        s.payments.len() + 1
    );
    s.payments.push(PostedPayment {
        id: id.clone(),
        folio: folio.to_string(),
        receipt,
        idempotency_key: key,
        body,
        refund,
        amount,
    });
    json!({ "id": id })
}

/// `POST …/payments` ("A custom payment will not involve any automatic
/// processing") and `POST …/refunds` ("Trigger a generic refund for the folio").
async fn settle(
    req: HttpRequest,
    folio_id: String,
    body: web::Bytes,
    state: web::Data<Shared>,
    refund: bool,
) -> HttpResponse {
    let key = header(&req, "Idempotency-Key").map(str::to_string);
    let (fault, receipt, json, amount) = {
        let mut s = state.lock().unwrap();
        if let Some(answer) = refused(&req, &mut s) {
            return answer;
        }
        s.payment_requests += 1;
        let Ok(json) = serde_json::from_slice::<Value>(&body) else {
            s.shape_errors.push("payment body is not JSON".into());
            return messages(400, "The request body is not JSON");
        };
        let (amount, receipt) = match check_payment(&json) {
            Ok(ok) => ok,
            Err(problem) => {
                s.shape_errors.push(problem.clone());
                return messages(422, &format!("Invalid field: {problem}"));
            }
        };
        let Some(f) = FOLIOS.iter().find(|f| f.id == folio_id) else {
            return HttpResponse::NotFound().finish();
        };
        // "This field is required if you are adding payment to the house account."
        if f.kind == "House" && receipt.as_deref().is_none_or(str::is_empty) {
            s.shape_errors
                .push("a house-folio payment without receipt".into());
            return messages(422, "The receipt is required on the house account");
        }
        // The description gives no sign rule; money back is a refund (its own
        // operation), so the fake takes positive amounts only.
        if amount <= Decimal::ZERO {
            s.shape_errors.push(format!(
                "{} amount {amount} is not positive",
                if refund { "refund" } else { "payment" }
            ));
            return messages(422, "Amount must be greater than 0");
        }
        if key.is_none() || key != receipt {
            s.shape_errors
                .push("Idempotency-Key should repeat the receipt".into());
        }
        let fault = s.payment_faults.pop_front();
        if fault.is_none() && f.closed {
            return messages(422, "Payments cannot be added to a closed folio");
        }
        (fault, receipt, json, amount)
    };
    let created = |state: &web::Data<Shared>| {
        apply_payment(
            &mut state.lock().unwrap(),
            &folio_id,
            receipt.clone(),
            key.clone(),
            json.clone(),
            amount,
            refund,
        )
    };
    match fault {
        None | Some(ApaleoFault::Pass) => HttpResponse::Created().json(created(&state)),
        Some(ApaleoFault::Kit(FakeFault::Reject(reason))) => messages(422, &reason),
        Some(ApaleoFault::Status(status)) => messages(status, "Not a payment endpoint"),
        Some(ApaleoFault::Kit(FakeFault::Unavailable)) => {
            HttpResponse::ServiceUnavailable().finish()
        }
        Some(ApaleoFault::TooManyRequests) => HttpResponse::TooManyRequests()
            .insert_header(("Retry-After", "1"))
            .finish(),
        Some(ApaleoFault::Kit(FakeFault::ApplyThenTimeout)) => {
            let body = created(&state);
            tokio::time::sleep(LATE).await;
            HttpResponse::Created().json(body)
        }
        Some(ApaleoFault::Kit(FakeFault::Slow(delay))) => {
            tokio::time::sleep(delay).await;
            HttpResponse::Created().json(created(&state))
        }
    }
}

async fn list_payments(
    req: HttpRequest,
    path: web::Path<String>,
    query: web::Query<HashMap<String, String>>,
    state: web::Data<Shared>,
) -> HttpResponse {
    list_settlements(req, path.into_inner(), query.into_inner(), state, false)
}

async fn list_refunds(
    req: HttpRequest,
    path: web::Path<String>,
    query: web::Query<HashMap<String, String>>,
    state: web::Data<Shared>,
) -> HttpResponse {
    list_settlements(req, path.into_inner(), query.into_inner(), state, true)
}

/// A folio's payments (`FolioPaymentModel`) or refunds (`RefundModel`): "ordered
/// by creation date, newest first", filtered by `statusCodes`, one page of
/// `pageSize` ("Default: 500. Maximum: 500."); "If the page has no items, the API
/// returns 204 No Content."
fn list_settlements(
    req: HttpRequest,
    folio_id: String,
    query: HashMap<String, String>,
    state: web::Data<Shared>,
    refunds: bool,
) -> HttpResponse {
    let mut s = state.lock().unwrap();
    if let Some(answer) = refused(&req, &mut s) {
        return answer;
    }
    if !FOLIOS.iter().any(|f| f.id == folio_id) {
        return HttpResponse::NotFound().finish();
    }
    let number = |name: &str, default: usize| {
        query
            .get(name)
            .map_or(Some(default), |v| v.parse::<usize>().ok())
    };
    let (Some(page), Some(size)) = (number("pageNumber", 1), number("pageSize", 500)) else {
        return messages(422, "pageNumber and pageSize must be numbers");
    };
    if page == 0 || size == 0 || size > 500 {
        return messages(422, "pageSize must be between 1 and 500");
    }
    // A custom payment is accounted at once; a refund "will be processed".
    let status = if refunds { "Pending" } else { "Success" };
    let wanted: Option<Vec<&str>> = query.get("statusCodes").map(|c| c.split(',').collect());
    if wanted.as_ref().is_some_and(|w| !w.contains(&status)) {
        return HttpResponse::NoContent().finish();
    }
    let all: Vec<&PostedPayment> = s
        .payments
        .iter()
        .rev()
        .filter(|p| p.folio == folio_id && p.refund == refunds)
        .collect();
    let items: Vec<Value> = all
        .iter()
        .skip((page - 1) * size)
        .take(size)
        .map(|p| {
            let mut item = json!({
                "id": p.id,
                "method": p.body["method"],
                "amount": p.body["amount"],
                "status": status,
                "businessDate": "2021-01-01",
            });
            if let Some(receipt) = &p.receipt {
                item["receipt"] = json!(receipt);
            }
            if refunds {
                item["refundDate"] = json!("2021-01-01T12:00:00Z");
                if let Some(reason) = p.body.get("reason") {
                    item["reason"] = reason.clone();
                }
            } else {
                item["paymentDate"] = json!("2021-01-01T12:00:00Z");
                item["type"] = json!("Custom");
            }
            item
        })
        .collect();
    if items.is_empty() {
        return HttpResponse::NoContent().finish();
    }
    let mut list = serde_json::Map::new();
    list.insert("count".into(), json!(all.len()));
    list.insert(
        (if refunds { "refunds" } else { "payments" }).into(),
        Value::Array(items),
    );
    HttpResponse::Ok().json(Value::Object(list))
}

async fn reservations(
    req: HttpRequest,
    query: web::Query<HashMap<String, String>>,
    state: web::Data<Shared>,
) -> HttpResponse {
    {
        let mut s = state.lock().unwrap();
        if let Some(answer) = refused(&req, &mut s) {
            return answer;
        }
    }
    let in_house_only = query.get("status").map(String::as_str) == Some("InHouse");
    let text = query.get("textSearch").map(|t| t.to_lowercase());
    let found: Vec<Value> = GUESTS
        .iter()
        .filter(|g| !in_house_only || g.in_house)
        .filter(|g| {
            text.as_ref().is_none_or(|t| {
                format!("{} {} {} {}", g.first, g.last, g.room, g.reservation_id)
                    .to_lowercase()
                    .contains(t.as_str())
            })
        })
        .map(|g| {
            json!({
                "id": g.reservation_id,
                "bookingId": format!("B{}", g.reservation_id),
                "status": if g.in_house { "InHouse" } else { "CheckedOut" },
                "property": { "id": PROPERTY },
                "unit": { "id": format!("{PROPERTY}-{}", g.room), "name": g.room },
                "unitGroup": { "id": format!("{PROPERTY}-{}", g.unit_group), "name": g.unit_group },
                "primaryGuest": { "firstName": g.first, "lastName": g.last },
                "ratePlan": { "id": format!("{PROPERTY}-FLEX"), "isSubjectToCityTax": false },
                "arrival": "2021-01-01T15:00:00+01:00",
                "departure": "2021-01-04T11:00:00+01:00",
                "created": "2020-12-01T10:00:00Z",
                "modified": "2020-12-01T10:00:00Z",
                "adults": 1,
                "channelCode": "Direct",
                "guaranteeType": "CreditCard",
                "hasCityTax": false,
                "isOpenForCharges": g.open_for_charges,
                "balance": { "amount": 0, "currency": "EUR" },
                "totalGrossAmount": { "amount": 300, "currency": "EUR" },
                "cancellationFee": {
                    "id": "FLEX-CXL", "code": "FLEX", "name": "Flexible", "description": "Free until the day of arrival",
                    "dueDateTime": "2021-01-01T00:00:00+01:00", "fee": { "amount": 0, "currency": "EUR" },
                },
                "noShowFee": {
                    "id": "FLEX-NS", "code": "FLEX", "name": "No show", "description": "First night",
                    "fee": { "amount": 100, "currency": "EUR" },
                },
            })
        })
        .collect();
    if found.is_empty() {
        return HttpResponse::NoContent().finish();
    }
    HttpResponse::Ok().json(json!({ "count": found.len(), "reservations": found }))
}
