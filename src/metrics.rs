//! Prometheus metrics, recorded through the `metrics` facade and rendered by
//! `metrics-exporter-prometheus` at `GET /metrics`. Every name starts with
//! `chargebridge_`. Labels never carry tenants' secrets or guest data.

use std::sync::OnceLock;
use std::time::Duration;

use metrics::{counter, gauge, histogram};
use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};

use crate::pms::PmsError;

static HANDLE: OnceLock<PrometheusHandle> = OnceLock::new();

const UPKEEP_INTERVAL: Duration = Duration::from_secs(1);

const LATENCY_BUCKETS: &[f64] = &[
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 15.0,
];

/// Installs the process-wide recorder once; later calls return the same handle.
pub fn handle() -> &'static PrometheusHandle {
    HANDLE.get_or_init(|| {
        let recorder = PrometheusBuilder::new()
            .set_buckets_for_metric(Matcher::Suffix("_seconds".into()), LATENCY_BUCKETS)
            .map(|b| b.build_recorder())
            .unwrap_or_else(|_| PrometheusBuilder::new().build_recorder());
        let handle = recorder.handle();
        // Fails only if another recorder was installed first (embedding apps).
        let _ = metrics::set_global_recorder(recorder);
        describe();
        // Histograms buffer raw samples until upkeep folds them into buckets:
        // without this, an unscraped process would grow without bound.
        let upkeep = handle.clone();
        let _ = std::thread::Builder::new()
            .name("metrics-upkeep".into())
            .spawn(move || {
                loop {
                    std::thread::sleep(UPKEEP_INTERVAL);
                    upkeep.run_upkeep();
                }
            });
        handle
    })
}

/// HELP text for every series (the exporter writes TYPE from the kind).
fn describe() {
    use metrics::{describe_counter, describe_gauge, describe_histogram};
    describe_counter!(
        "chargebridge_requests_total",
        "Requests by route, HTTP status and machine code."
    );
    describe_histogram!(
        "chargebridge_request_duration_seconds",
        "Time to answer, by route."
    );
    describe_counter!(
        "chargebridge_idempotent_replays_total",
        "Deliveries answered from a stored answer."
    );
    describe_counter!(
        "chargebridge_in_flight_waits_total",
        "Duplicates that waited for the delivery holding their key."
    );
    describe_counter!(
        "chargebridge_in_flight_conflicts_total",
        "Duplicates answered 409 after in_flight_wait."
    );
    describe_gauge!(
        "chargebridge_in_flight_requests",
        "Charge requests being handled now."
    );
    describe_histogram!(
        "chargebridge_store_duration_seconds",
        "Idempotency and journal store calls, by operation."
    );
    describe_counter!(
        "chargebridge_store_errors_total",
        "Failed store calls, by operation."
    );
    describe_histogram!(
        "chargebridge_pms_duration_seconds",
        "PMS calls, by adapter and operation."
    );
    describe_counter!(
        "chargebridge_pms_errors_total",
        "Failed PMS calls, by adapter, operation and class."
    );
    describe_counter!(
        "chargebridge_search_cache_total",
        "Guest searches by how they were answered: hit, coalesced or miss."
    );
    describe_gauge!(
        "chargebridge_journal_entries",
        "Posting journal entries by tenant and state (refreshed by the worker)."
    );
    describe_gauge!(
        "chargebridge_journal_oldest_entry_age_seconds",
        "Age of the oldest queued / needs_attention entry by tenant (0: none)."
    );
    describe_counter!(
        "chargebridge_journal_transitions_total",
        "Journal entries written, by the state written."
    );
    describe_counter!(
        "chargebridge_journal_restored_total",
        "Queued charges the Redis journal had lost, written back from this replica's spool (journal.spool_dir)."
    );
    describe_counter!(
        "chargebridge_worker_attempts_total",
        "The worker's turns at due entries, by the state they left."
    );
}

/// The text exposition.
pub fn render() -> String {
    let handle = handle();
    handle.run_upkeep();
    handle.render()
}

pub fn request(route: &'static str, status: u16, code: &'static str, elapsed: Duration) {
    counter!("chargebridge_requests_total", "route" => route, "status" => status_label(status), "code" => code)
        .increment(1);
    histogram!("chargebridge_request_duration_seconds", "route" => route)
        .record(elapsed.as_secs_f64());
}

/// Status labels without a per-request allocation for the statuses we send.
fn status_label(status: u16) -> metrics::SharedString {
    let known: &'static str = match status {
        200 => "200",
        400 => "400",
        401 => "401",
        404 => "404",
        405 => "405",
        406 => "406",
        409 => "409",
        413 => "413",
        415 => "415",
        422 => "422",
        500 => "500",
        503 => "503",
        _ => return metrics::SharedString::from(status.to_string()),
    };
    metrics::SharedString::const_str(known)
}

pub fn replay() {
    counter!("chargebridge_idempotent_replays_total").increment(1);
}

pub fn in_flight_wait() {
    counter!("chargebridge_in_flight_waits_total").increment(1);
}

/// Guest searches by how they were answered: `hit` (cached), `coalesced` (joined
/// a PMS call in flight) or `miss` (a new PMS call).
pub fn search_cache(outcome: &'static str) {
    counter!("chargebridge_search_cache_total", "outcome" => outcome).increment(1);
}

/// A journal entry written in this state (by a delivery, the worker or an operator).
pub fn journal_transition(state: &'static str) {
    counter!("chargebridge_journal_transitions_total", "state" => state).increment(1);
}

/// A queued charge restored from the local spool (Redis lost it).
pub fn journal_restored() {
    counter!("chargebridge_journal_restored_total").increment(1);
}

/// One turn of the worker at an entry, by the state it left the entry in.
pub fn worker_attempt(outcome: &'static str) {
    counter!("chargebridge_worker_attempts_total", "outcome" => outcome).increment(1);
}

/// Journal entries of a tenant in a state (refreshed by the worker's census).
pub fn journal_entries(tenant: &str, state: &'static str, count: u64) {
    gauge!("chargebridge_journal_entries", "tenant" => tenant.to_string(), "state" => state)
        .set(count as f64);
}

/// Age in seconds of the oldest entry of a tenant in a state (0: none).
pub fn journal_oldest(tenant: &str, state: &'static str, seconds: f64) {
    gauge!("chargebridge_journal_oldest_entry_age_seconds", "tenant" => tenant.to_string(), "state" => state)
        .set(seconds);
}

/// Makes a worker outcome series exist at 0.
pub fn worker_attempt_zero(outcome: &'static str) {
    counter!("chargebridge_worker_attempts_total", "outcome" => outcome).increment(0);
}

pub fn in_flight_conflict() {
    counter!("chargebridge_in_flight_conflicts_total").increment(1);
}

/// Every store command, timed; failures counted by operation.
pub fn store_call(op: &'static str, elapsed: Duration, failed: bool) {
    histogram!("chargebridge_store_duration_seconds", "op" => op).record(elapsed.as_secs_f64());
    if failed {
        counter!("chargebridge_store_errors_total", "op" => op).increment(1);
    }
}

pub fn pms_call(
    adapter: &'static str,
    op: &'static str,
    elapsed: Duration,
    error: Option<&PmsError>,
) {
    histogram!("chargebridge_pms_duration_seconds", "adapter" => adapter, "op" => op)
        .record(elapsed.as_secs_f64());
    if let Some(e) = error {
        counter!("chargebridge_pms_errors_total", "adapter" => adapter, "op" => op, "class" => e.class())
            .increment(1);
    }
}

/// One HTTP exchange with a PMS (`status`: `2xx`, `404`, …, or `none` when no
/// answer came), recorded by the transport for every adapter alike.
pub fn pms_http(pms: &'static str, op: &'static str, status: &'static str, elapsed: Duration) {
    counter!("chargebridge_pms_http_requests_total", "pms" => pms, "op" => op, "status" => status)
        .increment(1);
    histogram!("chargebridge_pms_http_duration_seconds", "pms" => pms, "op" => op)
        .record(elapsed.as_secs_f64());
}

/// A PMS call paced by its credential's rate limit: `waited`, `refused` (no
/// turn before the deadline: not sent), `answered_429`.
pub fn pms_rate_limited(pms: &'static str, outcome: &'static str) {
    counter!("chargebridge_pms_rate_limited_total", "pms" => pms, "outcome" => outcome)
        .increment(1);
}

/// Counts a request in flight for as long as the guard lives.
pub struct InFlight;

impl InFlight {
    pub fn start() -> Self {
        gauge!("chargebridge_in_flight_requests").increment(1.0);
        InFlight
    }
}

impl Drop for InFlight {
    fn drop(&mut self) {
        gauge!("chargebridge_in_flight_requests").decrement(1.0);
    }
}
