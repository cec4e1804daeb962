//! A local OPERA Cloud (OHIP) gateway: the calls the `opera` adapter makes, as the
//! OHIP Cashiering 25.5 description and the OHIP OAuth documentation define them.
//!
//! * `POST /oauth/v1/tokens`: client credentials (HTTP Basic), `x-app-key`,
//!   `enterpriseId`, form `grant_type` + `scope`; tokens expire.
//! * `POST /csh/v1/hotels/{hotelId}/reservations/{reservationId}/charges`
//!   (`postBillingCharges`): checks headers and the request shape (integer
//!   quantities, exact decimal prices, one posting reference), applies every item
//!   of the list at once, answers 201 with the postings.
//! * `POST /csh/v1/hotels/{hotelId}/reservations/{reservationId}/payments`
//!   (`postBillingPayment`): one payment in one of the property's payment codes
//!   ([`PAYMENT_METHODS`]; another is refused as OPERA refuses a code it does not
//!   have), exact decimal amount (negative: a refund), one posting reference;
//!   answers 201 with the payment posting.
//! * `GET /csh/v1/hotels/{hotelId}/transactions` (`getGuestsTransactions`) with
//!   `reservationList` and `referenceNumberWildCard`, at most 30 days; charges
//!   and payments alike (`transactionType` `Revenue` / `Payment`).
//! * `GET /rsv/v1/hotels/{hotelId}/reservations` with `searchTypes=InHouse`.
//! * `GET /csh/v1/services/cashiering/status`.
//!
//! Errors use OHIP's `exceptionDetailType` body (`type`, `title`, `status`,
//! `detail`, `o:errorCode`).
//!
//! Every request and every answer also goes through OHIP's published descriptions
//! (`tests/vendor/opera/`, [`crate::vendor_oracle`]): what they refuse is answered
//! 400 `exceptionDetailType` and fails the test when the fake is dropped.

use std::collections::{HashMap, VecDeque};
use std::str::FromStr;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use actix_web::{App, HttpRequest, HttpResponse, HttpServer, web};
use chargebridge::config::MappingSettings;
use chargebridge::pms::PmsSettings;
use chargebridge::pms::opera::OperaSettings;
use rust_decimal::Decimal;
use secrecy::SecretString;
use serde_json::{Value, json};

use crate::conformance::{FakeCharge, FakeFault, FakePms};
use crate::vendor_oracle::{self, Request, Vendor, ViolationGuard, Violations};

/// The parts of Oracle's OHIP descriptions the adapter uses (`tests/vendor/opera/`,
/// cut by its `extract.py`): Cashiering, Reservation (search) and OAuth.
pub fn vendor() -> Arc<Vendor> {
    static VENDOR: std::sync::OnceLock<Arc<Vendor>> = std::sync::OnceLock::new();
    VENDOR
        .get_or_init(|| {
            Arc::new(
                Vendor::new(
                    "OPERA Cloud",
                    &[
                        (
                            "opera/csh",
                            include_str!("../vendor/opera/csh.subset.swagger.json"),
                        ),
                        (
                            "opera/rsv",
                            include_str!("../vendor/opera/rsv.subset.swagger.json"),
                        ),
                        (
                            "opera/oauth",
                            include_str!("../vendor/opera/oauth.subset.swagger.json"),
                        ),
                    ],
                )
                // OHIP's gateway rate-limits with 429 (the adapter must take it
                // as "not processed"); the Cashiering description does not list it.
                // A wrong base URL meets a server that redirects (302); the
                // description does not list it either. A wrong path meets the
                // gateway's own 404, not the operation's (the fake's own
                // "Reservation not found" 404 keeps OHIP's body, see `error`).
                .gateway_statuses(&[302, 404, 429, 504])
                .request_rule(bearer_rule),
            )
        })
        .clone()
}

/// Every Cashiering/Reservation call's `authorization` header (`#/parameters/authKey`)
/// is the "Bearer token that needs to be passed which is generated post user
/// authentication"; the schema only says `type: string`.
fn bearer_rule(op: &str, request: &Request, _: &Value) -> Vec<String> {
    if op == "getToken" {
        return Vec::new();
    }
    match request.header("authorization") {
        Some(h) if h.len() > 7 && h[..7].eq_ignore_ascii_case("Bearer ") => Vec::new(),
        _ => vec!["authorization is not a bearer token".into()],
    }
}

pub const HOTEL: &str = "CBHOTEL";
pub const CLIENT_ID: &str = "cb-opera-client";
pub const CLIENT_SECRET: &str = "opera-secret-never-logged";
/// `base64(CLIENT_ID:CLIENT_SECRET)`.
const BASIC: &str = "Basic Y2Itb3BlcmEtY2xpZW50Om9wZXJhLXNlY3JldC1uZXZlci1sb2dnZWQ=";
pub const APP_KEY: &str = "4f1c2d3e-5a6b-4c7d-8e9f-0a1b2c3d4e5f";
pub const ENTERPRISE: &str = "CBENT";
const SCOPE: &str = "urn:opc:hgbu:ws:__myscopes__";
/// Seconds a token lives unless a test says otherwise (OHIP: 60 minutes).
const TOKEN_LIFETIME: u64 = 3600;
/// How long an `ApplyThenTimeout` answer waits (well past any test deadline).
const LATE: Duration = Duration::from_secs(5);
/// The property's payment codes (OHIP's `paymentMethod` is the property's own
/// code, a string of at most 20 characters): cash, and a card already settled at
/// the POS (a code that takes no card data).
pub const PAYMENT_METHODS: [&str; 2] = ["CA", "POSCARD"];

/// What the next charge request meets: a kit fault or an OPERA-specific one.
#[derive(Debug, Clone)]
pub enum OperaFault {
    Kit(FakeFault),
    /// 429 with `Retry-After`, before anything is applied.
    TooManyRequests,
    /// This status (with an OHIP error body), nothing applied: a misrouted call.
    Status(u16),
    /// `302 Found` to this `Location` (a `GET` there answers 200), nothing applied:
    /// a base URL that a server redirects.
    Redirect(&'static str),
}

struct Guest {
    reservation_id: &'static str,
    room: &'static str,
    room_type: &'static str,
    given: &'static str,
    surname: &'static str,
    in_house: bool,
    /// A posting master on a pseudo room (`roomStay.pseudoRoom`).
    pseudo: bool,
}

const GUESTS: [Guest; 4] = [
    Guest {
        reservation_id: "001",
        room: "101",
        room_type: "DBL",
        given: "Jane",
        surname: "Doe",
        in_house: true,
        pseudo: false,
    },
    Guest {
        reservation_id: "002",
        room: "102",
        room_type: "TWN",
        given: "John",
        surname: "Smith",
        in_house: true,
        pseudo: false,
    },
    Guest {
        reservation_id: "004",
        room: "202",
        room_type: "DBL",
        given: "Arthur",
        surname: "Dent",
        in_house: false,
        pseudo: false,
    },
    Guest {
        reservation_id: "PM1",
        room: "9001",
        room_type: "PM",
        given: "",
        surname: "Bar Account",
        in_house: true,
        pseudo: true,
    },
];

#[derive(Debug, Clone)]
struct Posting {
    transaction_no: u64,
    reservation: String,
    reference: String,
    code: String,
    price: Decimal,
    quantity: i64,
    check: Option<String>,
    remark: Option<String>,
    currency: String,
    /// A payment (`postBillingPayment`; `code` is the payment method), not a
    /// charge.
    payment: bool,
}

struct State {
    token_lifetime: u64,
    token_delay: Duration,
    tokens: HashMap<String, Instant>,
    token_requests: u64,
    unauthorized: u64,
    refuse_every_token: bool,
    faults: VecDeque<OperaFault>,
    payment_faults: VecDeque<OperaFault>,
    postings: Vec<Posting>,
    applications: Vec<FakeCharge>,
    payments: Vec<FakeCharge>,
    charge_bodies: Vec<Value>,
    payment_bodies: Vec<Value>,
    read_backs: u64,
    shape_errors: Vec<String>,
    next_transaction: u64,
}

impl Default for State {
    fn default() -> Self {
        State {
            token_lifetime: TOKEN_LIFETIME,
            token_delay: Duration::ZERO,
            tokens: HashMap::new(),
            token_requests: 0,
            unauthorized: 0,
            refuse_every_token: false,
            faults: VecDeque::new(),
            payment_faults: VecDeque::new(),
            postings: Vec::new(),
            applications: Vec::new(),
            payments: Vec::new(),
            charge_bodies: Vec::new(),
            payment_bodies: Vec::new(),
            read_backs: 0,
            shape_errors: Vec::new(),
            next_transaction: 880_001,
        }
    }
}

type Shared = Arc<Mutex<State>>;

pub struct FakeOpera {
    pub base: String,
    state: Shared,
    /// What OHIP's descriptions refuse; checked when the fake is dropped.
    violations: ViolationGuard,
}

/// For `conformance!`.
pub async fn make() -> Arc<dyn FakePms> {
    FakeOpera::start().await
}

crate::conformance!(opera_adapter, make);

impl FakeOpera {
    pub async fn start() -> Arc<FakeOpera> {
        let state: Shared = Arc::default();
        let data = web::Data::new(state.clone());
        let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind fake OPERA");
        let port = listener.local_addr().unwrap().port();
        let violations = Violations::default();
        let recorder = violations.clone();
        let server = HttpServer::new(move || {
            App::new()
                .wrap(vendor_oracle::guard(vendor(), recorder.clone(), |m| {
                    error(400, "Bad Request", m)
                }))
                .app_data(data.clone())
                .route("/oauth/v1/tokens", web::post().to(token))
                .route(
                    "/csh/v1/hotels/{hotel}/reservations/{reservation}/charges",
                    web::post().to(post_charges),
                )
                .route(
                    "/csh/v1/hotels/{hotel}/reservations/{reservation}/payments",
                    web::post().to(post_payment),
                )
                .route(
                    "/csh/v1/hotels/{hotel}/transactions",
                    web::get().to(transactions),
                )
                .route(
                    "/rsv/v1/hotels/{hotel}/reservations",
                    web::get().to(reservations),
                )
                .route("/csh/v1/services/cashiering/status", web::get().to(status))
                .default_service(web::to(|| async {
                    error(404, "Not Found", "No such OHIP resource")
                }))
        })
        .workers(2)
        .disable_signals()
        .listen(listener)
        .expect("listen")
        .run();
        tokio::spawn(server);
        Arc::new(FakeOpera {
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

    pub fn opera_settings(&self) -> OperaSettings {
        OperaSettings {
            url: self.base.clone(),
            token_url: None,
            client_id: CLIENT_ID.into(),
            client_secret: Some(SecretString::from(CLIENT_SECRET)),
            client_secret_env: None,
            client_secret_file: None,
            app_key: Some(SecretString::from(APP_KEY)),
            app_key_env: None,
            app_key_file: None,
            hotel_id: HOTEL.into(),
            enterprise_id: Some(ENTERPRISE.into()),
            default_transaction_code: None,
            scope: "urn:opc:hgbu:ws:__myscopes__".into(),
            apply_routing_instructions: None,
            rate_limit: chargebridge::pms::rate_limit::RateLimit::new(50, Duration::from_secs(1)),
            timeout: Duration::from_secs(8),
        }
    }

    pub fn push(&self, fault: OperaFault) {
        self.lock().faults.push_back(fault);
    }

    /// The next `postBillingPayment` meets `fault`.
    pub fn push_payment(&self, fault: OperaFault) {
        self.lock().payment_faults.push_back(fault);
    }

    /// Every well-formed `postBillingPayment` body, in order.
    pub fn payment_bodies(&self) -> Vec<Value> {
        self.lock().payment_bodies.clone()
    }

    /// Tokens issued from now on live this long.
    pub fn set_token_lifetime(&self, seconds: u64) {
        self.lock().token_lifetime = seconds;
    }

    /// The token endpoint takes this long to answer.
    pub fn set_token_delay(&self, delay: Duration) {
        self.lock().token_delay = delay;
    }

    /// Forgets every issued token (as after a key rotation): the next call gets 401.
    pub fn revoke_tokens(&self) {
        self.lock().tokens.clear();
    }

    /// Every token, old or new, is refused from now on.
    pub fn refuse_every_token(&self) {
        self.lock().refuse_every_token = true;
    }

    pub fn token_requests(&self) -> u64 {
        self.lock().token_requests
    }

    /// How many calls were answered 401.
    pub fn unauthorized(&self) -> u64 {
        self.lock().unauthorized
    }

    /// Every authenticated `postBillingCharges` body, in order.
    pub fn charge_bodies(&self) -> Vec<Value> {
        self.lock().charge_bodies.clone()
    }

    pub fn read_backs(&self) -> u64 {
        self.lock().read_backs
    }

    /// Requests that did not follow the documented shape.
    pub fn shape_errors(&self) -> Vec<String> {
        self.lock().shape_errors.clone()
    }
}

impl FakePms for FakeOpera {
    fn settings(&self) -> PmsSettings {
        PmsSettings::Opera(self.opera_settings())
    }

    fn mapping(&self) -> MappingSettings {
        MappingSettings {
            accounting_groups: [("25769803810".to_string(), "2010".to_string())].into(),
            gratuity_code: Some("9100".into()),
            service_charge_code: Some("9200".into()),
            payment_methods: [
                ("CASH".to_string(), PAYMENT_METHODS[0].to_string()),
                ("CARD".to_string(), PAYMENT_METHODS[1].to_string()),
            ]
            .into(),
            ..MappingSettings::default()
        }
    }

    fn inject(&self, fault: FakeFault) {
        self.push(OperaFault::Kit(fault));
    }

    fn applied(&self) -> Vec<FakeCharge> {
        self.lock().applications.clone()
    }

    fn inject_payment(&self, fault: FakeFault) {
        self.push_payment(OperaFault::Kit(fault));
    }

    fn payments(&self) -> Vec<FakeCharge> {
        self.lock().payments.clone()
    }
}

/// OHIP's `exceptionDetailType`.
fn error(status: u16, title: &str, detail: &str) -> HttpResponse {
    let code = actix_web::http::StatusCode::from_u16(status).unwrap();
    HttpResponse::build(code).json(json!({
        "type": format!("https://www.rfc-editor.org/rfc/rfc9110.html#status.{status}"),
        "title": title,
        "status": status,
        "detail": detail,
        "o:errorCode": format!("FAKE-{status}"),
    }))
}

fn header<'a>(req: &'a HttpRequest, name: &str) -> Option<&'a str> {
    req.headers().get(name).and_then(|v| v.to_str().ok())
}

async fn token(
    req: HttpRequest,
    form: web::Form<HashMap<String, String>>,
    state: web::Data<Shared>,
) -> HttpResponse {
    let delay = {
        let mut s = state.lock().unwrap();
        s.token_requests += 1;
        s.token_delay
    };
    tokio::time::sleep(delay).await;
    let mut problems = Vec::new();
    if header(&req, "authorization") != Some(BASIC) {
        problems.push("client credentials (HTTP Basic)");
    }
    if header(&req, "x-app-key") != Some(APP_KEY) {
        problems.push("x-app-key");
    }
    if header(&req, "enterpriseId") != Some(ENTERPRISE) {
        problems.push("enterpriseId");
    }
    if form.get("grant_type").map(String::as_str) != Some("client_credentials") {
        problems.push("grant_type");
    }
    if form.get("scope").map(String::as_str) != Some(SCOPE) {
        problems.push("scope");
    }
    if !problems.is_empty() {
        return HttpResponse::Unauthorized().json(json!({
            "error": "invalid_client",
            "error_description": format!("bad {}", problems.join(", ")),
        }));
    }
    let mut s = state.lock().unwrap();
    let value = format!("opera-token-{}-{}", s.token_requests, uuid::Uuid::new_v4());
    let lifetime = s.token_lifetime;
    s.tokens.insert(
        value.clone(),
        Instant::now() + Duration::from_secs(lifetime),
    );
    HttpResponse::Ok().json(json!({
        "access_token": value,
        "token_type": "Bearer",
        "expires_in": lifetime,
    }))
}

/// The checks every OHIP call makes before doing anything; `Some` is the refusal.
fn refused(req: &HttpRequest, s: &mut State, hotel: Option<&str>) -> Option<HttpResponse> {
    let bearer = header(req, "authorization").and_then(|h| h.strip_prefix("Bearer "));
    let valid = bearer
        .and_then(|t| s.tokens.get(t))
        .is_some_and(|expires| Instant::now() < *expires);
    if !valid || s.refuse_every_token {
        s.unauthorized += 1;
        return Some(HttpResponse::Unauthorized().finish());
    }
    if header(req, "x-app-key") != Some(APP_KEY) {
        s.shape_errors.push("x-app-key missing or wrong".into());
        return Some(error(401, "Unauthorized", "Invalid application key"));
    }
    if header(req, "x-hotelid") != Some(HOTEL) || hotel.is_some_and(|h| h != HOTEL) {
        s.shape_errors.push("x-hotelid or hotelId wrong".into());
        return Some(error(400, "Bad Request", "Unknown hotel"));
    }
    None
}

fn decimal(v: &Value) -> Option<Decimal> {
    match v {
        Value::Number(n) => Decimal::from_str(&n.to_string()).ok(),
        _ => None,
    }
}

/// The documented request shape; returns the postings to apply.
fn check_charges(
    body: &Value,
    reservation: &str,
    next_transaction: &mut u64,
) -> Result<Vec<Posting>, String> {
    let criteria = body.get("criteria").ok_or("no criteria")?;
    if criteria.get("hotelId").and_then(Value::as_str) != Some(HOTEL) {
        return Err("criteria.hotelId".into());
    }
    if criteria
        .pointer("/reservationId/id")
        .and_then(Value::as_str)
        != Some(reservation)
    {
        return Err("criteria.reservationId.id differs from the path".into());
    }
    let charges = criteria
        .get("charges")
        .and_then(Value::as_array)
        .filter(|c| !c.is_empty())
        .ok_or("criteria.charges must be a non-empty list")?;
    let mut postings = Vec::new();
    let mut reference: Option<&str> = None;
    for (i, c) in charges.iter().enumerate() {
        let at = |f: &str| format!("charges[{i}].{f}");
        let code = c
            .get("transactionCode")
            .and_then(Value::as_str)
            .filter(|s| !s.is_empty() && s.len() <= 80)
            .ok_or_else(|| at("transactionCode"))?;
        let amount = c
            .pointer("/price/amount")
            .ok_or_else(|| at("price.amount"))?;
        let text = amount.to_string();
        if !amount.is_number() || text.contains(['e', 'E']) {
            return Err(at("price.amount must be a plain decimal number"));
        }
        let price = decimal(amount).ok_or_else(|| at("price.amount"))?;
        let currency = c
            .pointer("/price/currencyCode")
            .and_then(Value::as_str)
            .filter(|s| s.len() == 3)
            .ok_or_else(|| at("price.currencyCode"))?;
        let quantity = c
            .get("postingQuantity")
            .and_then(Value::as_i64)
            .filter(|q| *q > 0)
            .ok_or_else(|| at("postingQuantity must be a positive integer"))?;
        let posting_ref = c
            .get("postingReference")
            .and_then(Value::as_str)
            .filter(|s| !s.is_empty() && s.len() <= 2000)
            .ok_or_else(|| at("postingReference"))?;
        if reference.is_some_and(|r| r != posting_ref) {
            return Err(at("postingReference differs between items"));
        }
        reference = Some(posting_ref);
        if let Some(covers) = c.get("covers")
            && !covers.as_str().is_some_and(|s| {
                !s.is_empty() && s.len() <= 10 && s.bytes().all(|b| b.is_ascii_digit())
            })
        {
            return Err(at("covers must be a numeric string"));
        }
        *next_transaction += 1;
        postings.push(Posting {
            transaction_no: *next_transaction,
            reservation: reservation.to_string(),
            reference: posting_ref.to_string(),
            code: code.to_string(),
            price,
            quantity,
            check: c
                .get("checkNumber")
                .and_then(Value::as_str)
                .map(str::to_string),
            remark: c
                .get("postingRemark")
                .and_then(Value::as_str)
                .map(str::to_string),
            currency: currency.to_string(),
            payment: false,
        });
    }
    Ok(postings)
}

fn number(d: Decimal) -> serde_json::Number {
    serde_json::Number::from_str(&d.to_string()).unwrap()
}

fn posting_json(p: &Posting) -> Value {
    let amount = p.price * Decimal::from(p.quantity);
    if p.payment {
        // A payment is a credit to the folio.
        return json!({
            "transactionNo": p.transaction_no,
            "reference": p.reference,
            "remark": p.remark,
            "transactionCode": p.code,
            "postedAmount": { "amount": number(amount), "currencyCode": p.currency },
            "creditAmount": { "amount": number(amount), "currencyCode": p.currency },
            "transactionType": "Payment",
            "folioWindowNo": 1,
        });
    }
    json!({
        "transactionNo": p.transaction_no,
        "reference": p.reference,
        "checkNo": p.check,
        "remark": p.remark,
        "transactionCode": p.code,
        "quantity": p.quantity,
        "price": { "amount": serde_json::Number::from_str(&p.price.to_string()).unwrap(), "currencyCode": p.currency },
        "postedAmount": { "amount": serde_json::Number::from_str(&amount.to_string()).unwrap(), "currencyCode": p.currency },
        "transactionType": "Revenue",
        "folioWindowNo": 1,
    })
}

fn apply(s: &mut State, postings: Vec<Posting>) -> Value {
    let amount = postings
        .iter()
        .map(|p| p.price * Decimal::from(p.quantity))
        .sum();
    s.applications.push(FakeCharge {
        reference: postings[0].reference.clone(),
        amount,
    });
    let body = json!({
        "postings": postings.iter().map(posting_json).collect::<Vec<_>>(),
        "links": [],
    });
    s.postings.extend(postings);
    body
}

async fn post_charges(
    req: HttpRequest,
    path: web::Path<(String, String)>,
    body: web::Bytes,
    state: web::Data<Shared>,
) -> HttpResponse {
    let (hotel, reservation) = path.into_inner();
    let (fault, postings) = {
        let mut s = state.lock().unwrap();
        if let Some(answer) = refused(&req, &mut s, Some(&hotel)) {
            return answer;
        }
        let json: Value = match serde_json::from_slice(&body) {
            Ok(v) => v,
            Err(_) => {
                s.shape_errors.push("body is not JSON".into());
                return error(400, "Bad Request", "Body is not JSON");
            }
        };
        s.charge_bodies.push(json.clone());
        let mut next = s.next_transaction;
        let postings = match check_charges(&json, &reservation, &mut next) {
            Ok(p) => p,
            Err(problem) => {
                s.shape_errors.push(problem.clone());
                return error(400, "Bad Request", &problem);
            }
        };
        let fault = s.faults.pop_front();
        if fault.is_none() {
            match GUESTS.iter().find(|g| g.reservation_id == reservation) {
                None => return error(404, "Not Found", "Reservation not found"),
                Some(g) if !g.in_house => {
                    return error(400, "Bad Request", "Reservation is not in house");
                }
                Some(_) => {}
            }
        }
        s.next_transaction = next;
        (fault, postings)
    };
    respond(fault, || apply(&mut state.lock().unwrap(), postings)).await
}

/// The answer to a write that passed the checks: what `fault` makes of it;
/// `apply` applies the write and gives the 201 body.
async fn respond(fault: Option<OperaFault>, apply: impl FnOnce() -> Value) -> HttpResponse {
    match fault {
        None => HttpResponse::Created().json(apply()),
        Some(OperaFault::Kit(FakeFault::Reject(reason))) => error(400, "Bad Request", &reason),
        // What answers a wrong base URL or path: the API gateway's own short
        // JSON, not OHIP's error body (no title/status/o:errorCode).
        Some(OperaFault::Status(status)) => {
            HttpResponse::build(actix_web::http::StatusCode::from_u16(status).unwrap())
                .json(json!({ "code": "NotFound", "message": "Not Found" }))
        }
        Some(OperaFault::Redirect(location)) => HttpResponse::Found()
            .insert_header(("Location", location))
            .finish(),
        Some(OperaFault::Kit(FakeFault::Unavailable)) => {
            HttpResponse::ServiceUnavailable().finish()
        }
        Some(OperaFault::TooManyRequests) => HttpResponse::TooManyRequests()
            .insert_header(("Retry-After", "1"))
            .json(json!({"title": "Too Many Requests", "status": 429})),
        Some(OperaFault::Kit(FakeFault::ApplyThenTimeout)) => {
            let body = apply();
            tokio::time::sleep(LATE).await;
            HttpResponse::Created().json(body)
        }
        Some(OperaFault::Kit(FakeFault::Slow(delay))) => {
            tokio::time::sleep(delay).await;
            HttpResponse::Created().json(apply())
        }
    }
}

/// `postBillingPayment`'s documented request shape; returns the payment to apply
/// or, as `Ok(Err)`, OPERA's own refusal (a payment code the property lacks).
fn check_payment(
    body: &Value,
    reservation: &str,
    transaction_no: u64,
) -> Result<Result<Posting, String>, String> {
    let criteria = body.get("criteria").ok_or("no criteria")?;
    if criteria.get("hotelId").and_then(Value::as_str) != Some(HOTEL) {
        return Err("criteria.hotelId".into());
    }
    if criteria
        .pointer("/reservationId/id")
        .and_then(Value::as_str)
        != Some(reservation)
    {
        return Err("criteria.reservationId.id differs from the path".into());
    }
    let method = criteria
        .pointer("/paymentMethod/paymentMethod")
        .and_then(Value::as_str)
        .filter(|m| !m.is_empty())
        .ok_or("criteria.paymentMethod.paymentMethod")?;
    let amount = criteria
        .pointer("/postingAmount/amount")
        .ok_or("criteria.postingAmount.amount")?;
    if !amount.is_number() || amount.to_string().contains(['e', 'E']) {
        return Err("criteria.postingAmount.amount must be a plain decimal number".into());
    }
    let amount = decimal(amount)
        .filter(|a| !a.is_zero())
        .ok_or("criteria.postingAmount.amount must not be zero")?;
    let currency = criteria
        .pointer("/postingAmount/currencyCode")
        .and_then(Value::as_str)
        .filter(|s| s.len() == 3)
        .ok_or("criteria.postingAmount.currencyCode")?;
    let reference = criteria
        .get("postingReference")
        .and_then(Value::as_str)
        .filter(|s| !s.is_empty())
        .ok_or("criteria.postingReference")?;
    for field in ["charges", "originalTransactionNo", "paymentCard"] {
        if criteria.get(field).is_some() {
            return Err(format!("criteria.{field} is not expected on a POS payment"));
        }
    }
    if !PAYMENT_METHODS.contains(&method) {
        return Ok(Err(format!("Payment method {method} is not configured")));
    }
    Ok(Ok(Posting {
        transaction_no,
        reservation: reservation.to_string(),
        reference: reference.to_string(),
        code: method.to_string(),
        price: amount,
        quantity: 1,
        check: None,
        remark: criteria
            .get("postingRemark")
            .and_then(Value::as_str)
            .map(str::to_string),
        currency: currency.to_string(),
        payment: true,
    }))
}

fn apply_payment(s: &mut State, payment: Posting) -> Value {
    s.payments.push(FakeCharge {
        reference: payment.reference.clone(),
        amount: payment.price,
    });
    let body = json!({ "postings": [posting_json(&payment)], "links": [] });
    s.postings.push(payment);
    body
}

async fn post_payment(
    req: HttpRequest,
    path: web::Path<(String, String)>,
    body: web::Bytes,
    state: web::Data<Shared>,
) -> HttpResponse {
    let (hotel, reservation) = path.into_inner();
    let (fault, payment) = {
        let mut s = state.lock().unwrap();
        if let Some(answer) = refused(&req, &mut s, Some(&hotel)) {
            return answer;
        }
        let json: Value = match serde_json::from_slice(&body) {
            Ok(v) => v,
            Err(_) => {
                s.shape_errors.push("payment body is not JSON".into());
                return error(400, "Bad Request", "Body is not JSON");
            }
        };
        let payment = match check_payment(&json, &reservation, s.next_transaction + 1) {
            Ok(Ok(p)) => p,
            Ok(Err(refusal)) => return error(400, "Bad Request", &refusal),
            Err(problem) => {
                s.shape_errors.push(format!("payment: {problem}"));
                return error(400, "Bad Request", &problem);
            }
        };
        s.payment_bodies.push(json);
        let fault = s.payment_faults.pop_front();
        if fault.is_none() {
            match GUESTS.iter().find(|g| g.reservation_id == reservation) {
                None => return error(404, "Not Found", "Reservation not found"),
                Some(g) if !g.in_house => {
                    return error(400, "Bad Request", "Reservation is not in house");
                }
                Some(_) => {}
            }
        }
        s.next_transaction += 1;
        (fault, payment)
    };
    respond(fault, || apply_payment(&mut state.lock().unwrap(), payment)).await
}

async fn transactions(
    req: HttpRequest,
    path: web::Path<String>,
    query: web::Query<HashMap<String, String>>,
    state: web::Data<Shared>,
) -> HttpResponse {
    let mut s = state.lock().unwrap();
    if let Some(answer) = refused(&req, &mut s, Some(&path)) {
        return answer;
    }
    s.read_backs += 1;
    let Some(reservation) = query.get("reservationList") else {
        s.shape_errors
            .push("transactions without reservationList".into());
        return error(400, "Bad Request", "reservationList is required");
    };
    let date = |k: &str| {
        query
            .get(k)
            .and_then(|d| chrono::NaiveDate::parse_from_str(d, "%Y-%m-%d").ok())
    };
    match (date("startDate"), date("endDate")) {
        (Some(start), Some(end)) if end >= start && (end - start).num_days() <= 30 => {}
        _ => {
            s.shape_errors
                .push("transactions needs startDate/endDate within 30 days".into());
            return error(400, "Bad Request", "The time span may not exceed 30 days");
        }
    }
    let wildcard = query
        .get("referenceNumberWildCard")
        .cloned()
        .unwrap_or_default();
    let postings: Vec<Value> = s
        .postings
        .iter()
        .filter(|p| &p.reservation == reservation && p.reference.contains(&wildcard))
        .map(posting_json)
        .collect();
    HttpResponse::Ok().json(json!({
        "reservationFolioInformation": [{
            "reservationInfo": { "reservationIdList": [{ "id": reservation, "type": "Reservation" }] },
            "folioWindows": [{ "folioWindowNo": 1, "folios": [{ "postings": postings }] }],
        }],
        "links": [],
    }))
}

async fn reservations(
    req: HttpRequest,
    path: web::Path<String>,
    query: web::Query<HashMap<String, String>>,
    state: web::Data<Shared>,
) -> HttpResponse {
    {
        let mut s = state.lock().unwrap();
        if let Some(answer) = refused(&req, &mut s, Some(&path)) {
            return answer;
        }
    }
    let in_house_only = query.get("searchTypes").map(String::as_str) == Some("InHouse");
    let surname = query.get("surname").map(|s| s.to_lowercase());
    let room = query.get("roomId");
    let found: Vec<Value> = GUESTS
        .iter()
        .filter(|g| !in_house_only || g.in_house)
        .filter(|g| {
            surname
                .as_ref()
                .is_none_or(|s| g.surname.to_lowercase().starts_with(s))
        })
        .filter(|g| room.is_none_or(|r| g.room == r))
        .map(|g| {
            json!({
                "reservationIdList": [
                    { "id": g.reservation_id, "type": "Reservation" },
                    { "id": format!("CONF{}", g.reservation_id), "type": "Confirmation" }
                ],
                "roomStay": { "roomId": g.room, "roomType": g.room_type, "pseudoRoom": g.pseudo },
                "reservationGuest": if g.given.is_empty() {
                    json!({ "surname": g.surname })
                } else {
                    json!({ "givenName": g.given, "surname": g.surname })
                },
                "reservationStatus": if g.in_house { "InHouse" } else { "CheckedOut" },
                "cashiering": { "billingPrivileges": { "postingRestriction": false } },
            })
        })
        .collect();
    HttpResponse::Ok().json(json!({
        "reservations": { "reservationInfo": found, "totalResults": found.len() },
    }))
}

async fn status(req: HttpRequest, state: web::Data<Shared>) -> HttpResponse {
    let mut s = state.lock().unwrap();
    if let Some(answer) = refused(&req, &mut s, None) {
        return answer;
    }
    HttpResponse::Ok().json(json!({ "version": "25.5.0.0" }))
}
