//! The PMS the chaos run posts to: chargebridge's generic `http` protocol
//! (`schemas/pms-http-protocol.openapi.yaml`) with a ledger that counts every
//! application, and faults drawn at random for one POST in ten.
//!
//! `set_down` takes the whole PMS down for a while (every POST and lookup
//! answered 503), the outage a queue-mode tenant exists for.
//!
//! The simulator honours `Idempotency-Key` as the protocol requires (a repeated
//! reference gets the first result), but it also counts each POST that a PMS
//! *without* that protection would have applied again. The harness fails on
//! either: a second application, or a re-post of a charge already applied.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use actix_web::{App, HttpRequest, HttpResponse, HttpServer, web};
use rust_decimal::Decimal;
use serde_json::{Value, json};

use crate::rng::Rng;

/// The fault classes of the issue, each injected in `FAULT_SHARE` of POSTs / 4.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Fault {
    /// 422: the PMS refuses for good (nothing applied).
    Refuse,
    /// 503: the PMS is unavailable (nothing applied).
    Unavailable,
    /// Applied, answered after a delay that still fits the deadline.
    Slow,
    /// Applied, answered only after chargebridge stopped waiting.
    ApplyThenTimeout,
}

impl Fault {
    pub const ALL: [Fault; 4] = [
        Fault::Refuse,
        Fault::Unavailable,
        Fault::Slow,
        Fault::ApplyThenTimeout,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Fault::Refuse => "refuse (422)",
            Fault::Unavailable => "unavailable (503)",
            Fault::Slow => "slow (applied, late answer)",
            Fault::ApplyThenTimeout => "apply-then-time-out",
        }
    }
}

/// What the simulator did to one POST.
#[derive(Debug, Clone, Copy)]
pub struct Timing {
    /// How long a slow answer takes (inside chargebridge's PMS budget).
    pub slow: Duration,
    /// How long an apply-then-time-out answer is held (past that budget).
    pub hold: Duration,
}

/// One charge as the PMS books it.
#[derive(Debug, Clone)]
pub struct Booking {
    pub idempotency_key: String,
    pub pms_reference: String,
    pub amount: Decimal,
    /// POSTs that would have applied this reference (1 is right).
    pub applications: u32,
}

#[derive(Default)]
struct Ledger {
    /// By chargebridge's `reference` (the `Idempotency-Key` header).
    bookings: HashMap<String, Booking>,
    /// Fault classes drawn for each Lightspeed idempotency key.
    faults_by_key: HashMap<String, Vec<Fault>>,
    injected: HashMap<Fault, usize>,
    /// When each well-formed POST arrived, by Lightspeed idempotency key.
    posts_by_key: HashMap<String, Vec<Instant>>,
    /// Requests that broke the protocol (wrong shape, header ≠ reference).
    violations: Vec<String>,
}

struct Shared {
    ledger: Mutex<Ledger>,
    rng: Mutex<Rng>,
    fault_share: f64,
    timing: Timing,
    next_reference: AtomicU64,
    posts: AtomicUsize,
    lookups: AtomicUsize,
    in_flight: AtomicUsize,
    /// An outage: every POST and GET is answered 503 (nothing applied).
    down: AtomicBool,
    refused_while_down: AtomicUsize,
}

impl Shared {
    fn ledger(&self) -> MutexGuard<'_, Ledger> {
        self.ledger.lock().unwrap_or_else(|p| p.into_inner())
    }
}

pub struct PmsSimulator {
    pub url: String,
    shared: Arc<Shared>,
    handle: actix_web::dev::ServerHandle,
}

impl PmsSimulator {
    pub async fn start(seed: u64, fault_share: f64, timing: Timing) -> PmsSimulator {
        let shared = Arc::new(Shared {
            ledger: Mutex::default(),
            rng: Mutex::new(Rng::new(seed ^ 0x9e37_79b9_7f4a_7c15)),
            fault_share,
            timing,
            next_reference: AtomicU64::new(1),
            posts: AtomicUsize::new(0),
            lookups: AtomicUsize::new(0),
            in_flight: AtomicUsize::new(0),
            down: AtomicBool::new(false),
            refused_while_down: AtomicUsize::new(0),
        });
        let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind a free port");
        let port = listener.local_addr().expect("local addr").port();
        let data = web::Data::from(shared.clone());
        let server = HttpServer::new(move || {
            App::new()
                .app_data(data.clone())
                .app_data(web::PayloadConfig::new(1 << 20))
                .route("/charges", web::post().to(post_charge))
                .route("/charges/{reference}", web::get().to(get_charge))
                .route(
                    "/health",
                    web::get().to(|| async { HttpResponse::Ok().finish() }),
                )
        })
        .workers(2)
        .max_connection_rate(10_000)
        .disable_signals()
        .listen(listener)
        .expect("listen")
        .run();
        let handle = server.handle();
        tokio::spawn(server);
        PmsSimulator {
            url: format!("http://127.0.0.1:{port}"),
            shared,
            handle,
        }
    }

    /// Bookings by Lightspeed idempotency key (several if the reference differed).
    pub fn bookings_by_key(&self) -> HashMap<String, Vec<Booking>> {
        let mut by_key: HashMap<String, Vec<Booking>> = HashMap::new();
        for booking in self.shared.ledger().bookings.values() {
            by_key
                .entry(booking.idempotency_key.clone())
                .or_default()
                .push(booking.clone());
        }
        by_key
    }

    pub fn faults_by_key(&self) -> HashMap<String, Vec<Fault>> {
        self.shared.ledger().faults_by_key.clone()
    }

    /// When each POST for a key arrived (to tell the delivery's own POSTs from
    /// any made after the POS heard its last answer).
    pub fn posts_by_key(&self) -> HashMap<String, Vec<Instant>> {
        self.shared.ledger().posts_by_key.clone()
    }

    pub fn injected(&self, fault: Fault) -> usize {
        self.shared
            .ledger()
            .injected
            .get(&fault)
            .copied()
            .unwrap_or(0)
    }

    pub fn violations(&self) -> Vec<String> {
        self.shared.ledger().violations.clone()
    }

    pub fn posts(&self) -> usize {
        self.shared.posts.load(Ordering::Relaxed)
    }

    pub fn lookups(&self) -> usize {
        self.shared.lookups.load(Ordering::Relaxed)
    }

    /// Takes the whole PMS down (503 to every POST and lookup) or back up.
    pub fn set_down(&self, down: bool) {
        self.shared.down.store(down, Ordering::SeqCst);
    }

    /// Requests (POST or GET) answered 503 because the PMS was down.
    pub fn refused_while_down(&self) -> usize {
        self.shared.refused_while_down.load(Ordering::Relaxed)
    }

    /// POSTs being processed right now (to kill a process mid-posting).
    pub fn in_flight(&self) -> usize {
        self.shared.in_flight.load(Ordering::Relaxed)
    }

    pub async fn stop(&self) {
        self.handle.stop(false).await;
    }
}

fn message(status: u16, text: &str) -> HttpResponse {
    HttpResponse::build(actix_web::http::StatusCode::from_u16(status).expect("status"))
        .json(json!({ "message": text }))
}

struct InFlight<'a>(&'a AtomicUsize);

impl<'a> InFlight<'a> {
    fn enter(counter: &'a AtomicUsize) -> Self {
        counter.fetch_add(1, Ordering::Relaxed);
        InFlight(counter)
    }
}

impl Drop for InFlight<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::Relaxed);
    }
}

/// Books the charge under `reference`, or counts a re-application.
fn apply(shared: &Shared, reference: &str, key: &str, amount: Decimal) -> String {
    let mut ledger = shared.ledger();
    if let Some(booking) = ledger.bookings.get_mut(reference) {
        booking.applications += 1;
        return booking.pms_reference.clone();
    }
    let pms_reference = format!(
        "FOLIO-{}",
        shared.next_reference.fetch_add(1, Ordering::Relaxed)
    );
    ledger.bookings.insert(
        reference.to_string(),
        Booking {
            idempotency_key: key.to_string(),
            pms_reference: pms_reference.clone(),
            amount,
            applications: 1,
        },
    );
    pms_reference
}

async fn post_charge(
    req: HttpRequest,
    bytes: web::Bytes,
    shared: web::Data<Shared>,
) -> HttpResponse {
    shared.posts.fetch_add(1, Ordering::Relaxed);
    let _in_flight = InFlight::enter(&shared.in_flight);
    let body: Value = match serde_json::from_slice(&bytes) {
        Ok(v) => v,
        Err(e) => {
            shared.ledger().violations.push(format!("body: {e}"));
            return message(400, "Body is not JSON");
        }
    };
    let reference = body["reference"].as_str().unwrap_or_default().to_string();
    let key = body["idempotencyKey"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    let header = req
        .headers()
        .get("idempotency-key")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default();
    let amount = body["amount"]
        .as_str()
        .and_then(|a| a.parse::<Decimal>().ok());
    let Some(amount) = amount.filter(|_| !reference.is_empty() && header == reference) else {
        shared.ledger().violations.push(format!(
            "malformed charge (header {header:?}, reference {reference:?}, amount {:?})",
            body["amount"]
        ));
        return message(400, "Bad charge");
    };

    shared
        .ledger()
        .posts_by_key
        .entry(key.clone())
        .or_default()
        .push(Instant::now());
    if shared.down.load(Ordering::SeqCst) {
        shared.refused_while_down.fetch_add(1, Ordering::Relaxed);
        return message(503, "PMS down for maintenance");
    }
    let fault = {
        let mut rng = shared.rng.lock().unwrap_or_else(|p| p.into_inner());
        rng.chance(shared.fault_share)
            .then(|| Fault::ALL[rng.below(Fault::ALL.len() as u64) as usize])
    };
    if let Some(fault) = fault {
        let mut ledger = shared.ledger();
        *ledger.injected.entry(fault).or_default() += 1;
        ledger
            .faults_by_key
            .entry(key.clone())
            .or_default()
            .push(fault);
    }
    let answer = |pms_reference: String| {
        HttpResponse::Created().json(json!({ "pmsReference": pms_reference }))
    };
    match fault {
        None => answer(apply(&shared, &reference, &key, amount)),
        Some(Fault::Refuse) => message(422, "Folio closed for this guest"),
        Some(Fault::Unavailable) => message(503, "PMS unavailable"),
        Some(Fault::Slow) => {
            let booked = apply(&shared, &reference, &key, amount);
            tokio::time::sleep(shared.timing.slow).await;
            answer(booked)
        }
        Some(Fault::ApplyThenTimeout) => {
            let booked = apply(&shared, &reference, &key, amount);
            tokio::time::sleep(shared.timing.hold).await;
            answer(booked)
        }
    }
}

async fn get_charge(reference: web::Path<String>, shared: web::Data<Shared>) -> HttpResponse {
    shared.lookups.fetch_add(1, Ordering::Relaxed);
    if shared.down.load(Ordering::SeqCst) {
        shared.refused_while_down.fetch_add(1, Ordering::Relaxed);
        return message(503, "PMS down for maintenance");
    }
    let ledger = shared.ledger();
    match ledger.bookings.get(reference.as_str()) {
        Some(b) => HttpResponse::Ok().json(json!({
            "pmsReference": b.pms_reference,
            "charge": { "reference": reference.as_str(), "amount": b.amount.to_string() },
        })),
        None => message(404, "No such charge"),
    }
}
