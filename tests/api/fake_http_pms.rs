//! A real local HTTP server that implements chargebridge's generic PMS protocol
//! (`schemas/pms-http-protocol.openapi.yaml`) the way a well-behaved PMS would:
//! it deduplicates on `Idempotency-Key`, refuses unknown or checked-out
//! reservations, and checks the shape of every charge it receives (a malformed
//! request is answered 400 and recorded as a violation, so tests fail loudly).
//!
//! Faults are injected per next `POST /charges` (or `POST /payments`);
//! `/health` can be made to fail.

use std::collections::{HashMap, VecDeque};
use std::str::FromStr;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use actix_web::{App, HttpRequest, HttpResponse, HttpServer, web};
use chargebridge::pms::PmsSettings;
use chargebridge::pms::http::HttpPmsSettings;
use rust_decimal::Decimal;
use secrecy::SecretString;
use serde_json::{Value, json};

use crate::conformance::{FakeCharge, FakeFault, FakePms};

/// What the fake does with the next charge request.
#[derive(Debug, Clone)]
pub enum HttpFault {
    /// One of the conformance kit's faults.
    Kit(FakeFault),
    /// `429 Too Many Requests`, with this `Retry-After` if any; nothing applied.
    TooMany(Option<&'static str>),
    /// This status and JSON body, nothing applied.
    Status(u16, Value),
}

/// How long `ApplyThenTimeout` holds the answer back: past any test deadline.
const HOLD_ANSWER: Duration = Duration::from_secs(5);

/// One request the fake received.
#[derive(Debug, Clone)]
pub struct Seen {
    pub method: String,
    pub path: String,
    pub authorization: Option<String>,
    pub idempotency_key: Option<String>,
    pub body: Option<Value>,
}

#[derive(Clone, Copy)]
enum Resource {
    Charges,
    Payments,
}

struct Posting {
    pms_reference: String,
    body: Value,
}

#[derive(Default)]
struct State {
    /// By `Idempotency-Key`.
    postings: HashMap<String, Posting>,
    /// Every application in order; a double posting shows twice.
    applied: Vec<FakeCharge>,
    /// Payments by `Idempotency-Key`, and every application in order.
    payments: HashMap<String, Posting>,
    paid: Vec<FakeCharge>,
    faults: VecDeque<HttpFault>,
    payment_faults: VecDeque<HttpFault>,
    seen: Vec<Seen>,
    violations: Vec<String>,
    health_status: u16,
}

struct Shared {
    state: Mutex<State>,
    /// When set, requests without `Authorization: Bearer <token>` get 401.
    token: Option<String>,
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Applies the charge under `key` once; a repeated key returns the first
    /// result without applying again.
    fn apply_to(&self, resource: Resource, key: &str, body: &Value) -> (String, bool) {
        let mut guard = self.lock();
        let state = &mut *guard;
        let (postings, applied, prefix) = match resource {
            Resource::Charges => (&mut state.postings, &mut state.applied, "TRX"),
            Resource::Payments => (&mut state.payments, &mut state.paid, "PAY"),
        };
        if let Some(p) = postings.get(key) {
            return (p.pms_reference.clone(), true);
        }
        let pms_reference = format!("{prefix}-{:06}", applied.len() + 1);
        let amount = body["amount"]
            .as_str()
            .and_then(|a| Decimal::from_str(a).ok())
            .unwrap_or_default();
        applied.push(FakeCharge {
            reference: key.to_string(),
            amount,
        });
        postings.insert(
            key.to_string(),
            Posting {
                pms_reference: pms_reference.clone(),
                body: body.clone(),
            },
        );
        (pms_reference, false)
    }
}

pub struct FakeHttpPms {
    pub url: String,
    shared: Arc<Shared>,
    handle: actix_web::dev::ServerHandle,
}

/// The conformance kit's constructor.
pub async fn start() -> Arc<dyn FakePms> {
    start_fake(None).await
}

/// A fake that requires `token` (as `Authorization: Bearer`) when given one.
pub async fn start_fake(token: Option<&str>) -> Arc<FakeHttpPms> {
    let shared = Arc::new(Shared {
        state: Mutex::new(State {
            health_status: 200,
            ..State::default()
        }),
        token: token.map(str::to_string),
    });
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind a free port");
    let port = listener.local_addr().unwrap().port();
    let data = web::Data::from(shared.clone());
    let server = HttpServer::new(move || {
        App::new()
            .app_data(data.clone())
            .app_data(web::PayloadConfig::new(1 << 20))
            .route("/charges", web::post().to(post_charge))
            .route("/charges/{reference}", web::get().to(get_charge))
            .route("/payments", web::post().to(post_payment))
            .route("/payments/{reference}", web::get().to(get_payment))
            .route("/reservations", web::get().to(reservations))
            .route("/health", web::get().to(health))
    })
    .workers(2)
    .disable_signals()
    .listen(listener)
    .expect("listen")
    .run();
    let handle = server.handle();
    tokio::spawn(server);
    Arc::new(FakeHttpPms {
        url: format!("http://127.0.0.1:{port}"),
        shared,
        handle,
    })
}

impl FakeHttpPms {
    pub fn push(&self, fault: HttpFault) {
        self.shared.lock().faults.push_back(fault);
    }

    pub fn set_health(&self, status: u16) {
        self.shared.lock().health_status = status;
    }

    /// Every request received, in order.
    pub fn seen(&self) -> Vec<Seen> {
        self.shared.lock().seen.clone()
    }

    /// How many `POST /charges` arrived (applied or not).
    pub fn charge_requests(&self) -> usize {
        self.seen()
            .iter()
            .filter(|s| s.method == "POST" && s.path == "/charges")
            .count()
    }

    /// Requests whose shape broke the protocol.
    pub fn violations(&self) -> Vec<String> {
        self.shared.lock().violations.clone()
    }

    /// Settings pointing the adapter here, with the token the fake expects.
    pub fn http_settings(&self) -> HttpPmsSettings {
        let mut s = HttpPmsSettings::new(self.url.clone());
        s.token = self.shared.token.clone().map(SecretString::from);
        s
    }

    pub async fn stop(&self) {
        self.handle.stop(false).await;
    }
}

impl FakePms for FakeHttpPms {
    fn settings(&self) -> PmsSettings {
        PmsSettings::Http(self.http_settings())
    }

    fn inject(&self, fault: FakeFault) {
        self.push(HttpFault::Kit(fault));
    }

    /// This PMS's payment methods are `CA` (cash) and `CC` (card).
    fn mapping(&self) -> chargebridge::config::MappingSettings {
        chargebridge::config::MappingSettings {
            payment_methods: [("CASH", "CA"), ("CARD", "CC")]
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .into(),
            ..Default::default()
        }
    }

    fn applied(&self) -> Vec<FakeCharge> {
        self.shared.lock().applied.clone()
    }

    fn inject_payment(&self, fault: FakeFault) {
        self.shared
            .lock()
            .payment_faults
            .push_back(HttpFault::Kit(fault));
    }

    fn payments(&self) -> Vec<FakeCharge> {
        self.shared.lock().paid.clone()
    }
}

fn message(status: u16, text: &str) -> HttpResponse {
    HttpResponse::build(actix_web::http::StatusCode::from_u16(status).unwrap())
        .json(json!({ "message": text }))
}

/// Records the request; answers 401 when the fake wants a token it did not get.
fn admit(req: &HttpRequest, shared: &Shared, body: Option<Value>) -> Option<HttpResponse> {
    let header = |name: &str| {
        req.headers()
            .get(name)
            .and_then(|v| v.to_str().ok())
            .map(str::to_string)
    };
    let authorization = header("authorization");
    shared.lock().seen.push(Seen {
        method: req.method().to_string(),
        path: req.path().to_string(),
        authorization: authorization.clone(),
        idempotency_key: header("idempotency-key"),
        body,
    });
    match &shared.token {
        Some(token) if authorization.as_deref() != Some(&format!("Bearer {token}")) => {
            Some(message(401, "Invalid PMS token"))
        }
        _ => None,
    }
}

/// The protocol's rules for a charge body; every problem found.
fn shape_problems(req: &HttpRequest, body: &Value) -> Vec<String> {
    let mut problems = Vec::new();
    let key = req
        .headers()
        .get("idempotency-key")
        .and_then(|v| v.to_str().ok());
    match key {
        None => problems.push("no Idempotency-Key header".to_string()),
        Some(k) if body["reference"].as_str() != Some(k) => {
            problems.push(format!("Idempotency-Key {k} is not the body's reference"))
        }
        Some(_) => {}
    }
    let json_type = req
        .headers()
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .is_some_and(|c| c.starts_with("application/json"));
    if !json_type {
        problems.push("Content-Type is not application/json".into());
    }
    for field in [
        "reference",
        "tenant",
        "idempotencyKey",
        "reservationId",
        "currency",
        "paymentMethod",
    ] {
        if body[field].as_str().is_none_or(str::is_empty) {
            problems.push(format!("{field} is not a non-empty string"));
        }
    }
    let decimal = |v: &Value| v.as_str().and_then(|s| Decimal::from_str(s).ok());
    for field in ["amount", "gratuity"] {
        if decimal(&body[field]).is_none() {
            problems.push(format!("{field} is not a decimal string: {}", body[field]));
        }
    }
    if !body["refund"].is_boolean() {
        problems.push("refund is not a boolean".into());
    }
    if body["closedAt"]
        .as_str()
        .and_then(|s| chrono::DateTime::parse_from_rfc3339(s).ok())
        .is_none()
    {
        problems.push("closedAt is not RFC 3339".into());
    }
    if !body["receipt"].is_object() {
        problems.push("receipt is not an object".into());
    }
    if !(body["outlet"].is_null() || body["outlet"].is_string()) || body.get("outlet").is_none() {
        problems.push("outlet is missing".into());
    }
    if !body["lines"].is_array() {
        problems.push("lines is not an array".into());
    }
    match body["items"].as_array() {
        Some(items) if !items.is_empty() => {
            let total: Option<Decimal> = items.iter().map(|i| decimal(&i["amount"])).sum();
            if total.is_none() || total != decimal(&body["amount"]) {
                problems.push(format!(
                    "items {total:?} do not add up to amount {}",
                    body["amount"]
                ));
            }
        }
        _ => problems.push("items is not a non-empty array".into()),
    }
    problems
}

async fn post_charge(
    req: HttpRequest,
    bytes: web::Bytes,
    shared: web::Data<Shared>,
) -> HttpResponse {
    post_write(Resource::Charges, req, bytes, shared).await
}

async fn post_payment(
    req: HttpRequest,
    bytes: web::Bytes,
    shared: web::Data<Shared>,
) -> HttpResponse {
    post_write(Resource::Payments, req, bytes, shared).await
}

/// The protocol's rules for a payment body (schema `Payment`).
fn payment_problems(req: &HttpRequest, body: &Value) -> Vec<String> {
    let mut problems = Vec::new();
    let key = req
        .headers()
        .get("idempotency-key")
        .and_then(|v| v.to_str().ok());
    if key.is_none() || key != body["reference"].as_str() {
        problems.push("Idempotency-Key is not the body's reference".to_string());
    }
    for field in [
        "reference",
        "tenant",
        "idempotencyKey",
        "reservationId",
        "currency",
        "paymentMethod",
    ] {
        if body[field].as_str().is_none_or(str::is_empty) {
            problems.push(format!("{field} is not a non-empty string"));
        }
    }
    if body["amount"]
        .as_str()
        .and_then(|s| Decimal::from_str(s).ok())
        .is_none()
    {
        problems.push(format!(
            "amount is not a decimal string: {}",
            body["amount"]
        ));
    }
    if !body["refund"].is_boolean() || !body["receipt"].is_object() {
        problems.push("refund or receipt missing".into());
    }
    if body["closedAt"]
        .as_str()
        .and_then(|s| chrono::DateTime::parse_from_rfc3339(s).ok())
        .is_none()
    {
        problems.push("closedAt is not RFC 3339".into());
    }
    if body.get("outlet").is_none() {
        problems.push("outlet is missing".into());
    }
    for charge_only in ["items", "lines", "gratuity"] {
        if body.get(charge_only).is_some() {
            problems.push(format!("{charge_only} is not a payment property"));
        }
    }
    problems
}

async fn post_write(
    resource: Resource,
    req: HttpRequest,
    bytes: web::Bytes,
    shared: web::Data<Shared>,
) -> HttpResponse {
    let body: Option<Value> = serde_json::from_slice(&bytes).ok();
    if let Some(denied) = admit(&req, &shared, body.clone()) {
        return denied;
    }
    let Some(body) = body else {
        shared.lock().violations.push("body is not JSON".into());
        return message(400, "Body is not JSON");
    };
    let problems = match resource {
        Resource::Charges => shape_problems(&req, &body),
        Resource::Payments => payment_problems(&req, &body),
    };
    if !problems.is_empty() {
        let text = problems.join("; ");
        shared.lock().violations.push(text.clone());
        return message(400, &format!("Bad charge: {text}"));
    }
    let key = body["reference"].as_str().unwrap_or_default().to_string();
    match body["reservationId"].as_str() {
        Some("001" | "002" | "H-BAR") => {}
        Some("004") => return message(422, "Guest is not checked in"),
        _ => return message(422, "Unknown reservation"),
    }
    if matches!(resource, Resource::Payments)
        && !matches!(body["paymentMethod"].as_str(), Some("CA" | "CC"))
    {
        return message(422, "Unknown payment method");
    }
    let fault = match resource {
        Resource::Charges => shared.lock().faults.pop_front(),
        Resource::Payments => shared.lock().payment_faults.pop_front(),
    };
    let answer = |(pms_reference, replayed): (String, bool)| {
        HttpResponse::Created().json(json!({ "pmsReference": pms_reference, "replayed": replayed }))
    };
    match fault {
        None => answer(shared.apply_to(resource, &key, &body)),
        Some(HttpFault::Kit(FakeFault::Reject(reason))) => message(422, &reason),
        Some(HttpFault::Kit(FakeFault::Unavailable)) => HttpResponse::ServiceUnavailable()
            // Longer than any deadline: chargebridge must give up, not retry.
            .insert_header(("Retry-After", "30"))
            .json(json!({ "message": "Maintenance" })),
        Some(HttpFault::Kit(FakeFault::ApplyThenTimeout)) => {
            let applied = shared.apply_to(resource, &key, &body);
            tokio::time::sleep(HOLD_ANSWER).await;
            answer(applied)
        }
        Some(HttpFault::Kit(FakeFault::Slow(delay))) => {
            // The work goes on even if the client stops waiting, as in a real PMS.
            let shared = shared.into_inner();
            let work = tokio::spawn(async move {
                tokio::time::sleep(delay).await;
                shared.apply_to(resource, &key, &body)
            });
            match work.await {
                Ok(applied) => answer(applied),
                Err(_) => message(500, "Internal error"),
            }
        }
        Some(HttpFault::TooMany(retry_after)) => {
            let mut r = HttpResponse::TooManyRequests();
            if let Some(v) = retry_after {
                r.insert_header(("Retry-After", v));
            }
            r.json(json!({ "message": "Slow down" }))
        }
        Some(HttpFault::Status(status, body)) => {
            HttpResponse::build(actix_web::http::StatusCode::from_u16(status).unwrap()).json(body)
        }
    }
}

async fn get_charge(
    req: HttpRequest,
    reference: web::Path<String>,
    shared: web::Data<Shared>,
) -> HttpResponse {
    if let Some(denied) = admit(&req, &shared, None) {
        return denied;
    }
    let state = shared.lock();
    match state.postings.get(reference.as_str()) {
        Some(p) => HttpResponse::Ok().json(json!({
            "pmsReference": p.pms_reference,
            "charge": p.body,
        })),
        None => message(404, "No such charge"),
    }
}

async fn get_payment(
    req: HttpRequest,
    reference: web::Path<String>,
    shared: web::Data<Shared>,
) -> HttpResponse {
    if let Some(denied) = admit(&req, &shared, None) {
        return denied;
    }
    let state = shared.lock();
    match state.payments.get(reference.as_str()) {
        Some(p) => HttpResponse::Ok().json(json!({
            "pmsReference": p.pms_reference,
            "payment": p.body,
        })),
        None => message(404, "No such payment"),
    }
}

async fn reservations(req: HttpRequest, shared: web::Data<Shared>) -> HttpResponse {
    if let Some(denied) = admit(&req, &shared, None) {
        return denied;
    }
    let term = web::Query::<HashMap<String, String>>::from_query(req.query_string())
        .ok()
        .and_then(|q| q.get("term").cloned())
        .unwrap_or_default()
        .to_lowercase();
    if term.is_empty() {
        return message(400, "term is required");
    }
    // Jane's credit limit is a JSON number, John's a string: both are allowed.
    // Arthur is listed with `checkedIn: false` (a sloppy PMS) to exercise the
    // adapter's defensive filter.
    let guests = [
        json!({"reservationId": "001", "roomId": "101", "roomDescription": "Double, garden view",
               "clientName": "Jane Doe", "creditLimit": 500.00, "blocked": false}),
        json!({"reservationId": "002", "roomId": "102", "roomDescription": "Twin",
               "clientName": "John Smith", "creditLimit": "250.50", "blocked": false}),
        json!({"reservationId": "004", "roomId": "202", "roomDescription": "Double",
               "clientName": "Arthur Dent", "blocked": false, "checkedIn": false}),
    ];
    // The protocol: a term starting with `*` asks for house accounts.
    if let Some(name) = term.strip_prefix('*') {
        let houses = [
            json!({"reservationId": "H-BAR", "roomId": "BAR", "roomDescription": "House account",
                             "clientName": "Bar Account", "blocked": false}),
        ];
        let found: Vec<Value> = houses
            .into_iter()
            .filter(|h| {
                h["clientName"]
                    .as_str()
                    .is_some_and(|n| n.to_lowercase().contains(name.trim()))
            })
            .collect();
        return HttpResponse::Ok().json(json!({ "reservations": found }));
    }
    let found: Vec<Value> = guests
        .into_iter()
        .filter(|g| {
            g["clientName"]
                .as_str()
                .is_some_and(|n| n.to_lowercase().contains(&term))
                || g["roomId"].as_str().is_some_and(|r| r.starts_with(&term))
        })
        .collect();
    HttpResponse::Ok().json(json!({ "reservations": found }))
}

async fn health(req: HttpRequest, shared: web::Data<Shared>) -> HttpResponse {
    if let Some(denied) = admit(&req, &shared, None) {
        return denied;
    }
    let status = shared.lock().health_status;
    message(status, if status < 300 { "ok" } else { "down" })
}
