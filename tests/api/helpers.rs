//! `spawn_app`: the real application on a random port, with its own state.

use std::sync::Arc;
use std::time::Duration;

use chargebridge::config::{Settings, StoreKind};
use chargebridge::pms::memory::{AppliedPosting, Fault, MemoryPms};
use chargebridge::startup::{AppState, Application};
use secrecy::SecretString;
use serde_json::Value;

pub const SEED: &str = include_str!("../../fixtures/payloads/seed-example.json");
/// The demo tenant's id (record keys, references, logs).
pub const TENANT: &str = "demo";
/// The demo tenant's pinned `businessExternalReference` (the seed's).
pub const REFERENCE: &str = "quickbooks-123";
pub const API_KEY: &str = "quickbooks-key-345";

/// Which idempotency store an app runs on.
#[derive(Debug, Clone)]
pub enum StoreChoice {
    Memory,
    /// The shared test Redis (or `REDIS_URL`).
    Redis,
    /// The shared three-master test Redis Cluster (or `REDIS_CLUSTER_URL`).
    Cluster,
    /// A specific Redis URL (own server, cluster, or a dead port).
    RedisAt(String),
    /// The shared mutual-TLS test Redis (`rediss://`, CA and client certificate).
    Tls,
}

pub struct TestApp {
    pub address: String,
    /// The id of the app's first tenant (`demo`, or its own on shared Redis).
    pub tenant: String,
    pub state: Arc<AppState>,
    pub client: reqwest::Client,
    pub handle: actix_web::dev::ServerHandle,
}

pub fn fresh_key() -> String {
    format!("LS1_{}", uuid::Uuid::new_v4())
}

/// Demo settings on a free port; `tweak` adjusts them before start.
pub fn settings(store: &StoreChoice, tweak: impl FnOnce(&mut Settings)) -> Settings {
    let mut s = Settings::demo();
    s.server.listen = "127.0.0.1:0".into();
    s.server.workers = Some(2);
    s.log.level = "warn".into();
    match store {
        StoreChoice::Memory => s.idempotency.store = StoreKind::Memory,
        StoreChoice::Redis => {
            s.idempotency.store = StoreKind::Redis;
            s.idempotency.redis_url = Some(SecretString::from(crate::redis_server::shared_url()));
            own_tenant_id(&mut s);
        }
        StoreChoice::Cluster => {
            s.idempotency.store = StoreKind::Redis;
            s.idempotency.redis_url =
                Some(SecretString::from(crate::redis_server::shared_cluster_url()));
            own_tenant_id(&mut s);
        }
        StoreChoice::Tls => {
            let (pki, server) = crate::redis_tls::shared_tls();
            crate::redis_tls::tls_settings(&mut s, server.port, pki);
            own_tenant_id(&mut s);
        }
        StoreChoice::RedisAt(url) => {
            s.idempotency.store = StoreKind::Redis;
            s.idempotency.redis_url = Some(SecretString::from(url.clone()));
        }
    }
    s.idempotency.command_timeout = Duration::from_millis(500);
    tweak(&mut s);
    s
}

/// Apps on the shared test Redis each get a tenant id of their own: the journal
/// workers of concurrent tests would otherwise work each other's entries (as
/// replicas of one tenant rightly do) against their own memory PMSs.
fn own_tenant_id(s: &mut Settings) {
    let id = format!("demo-{}", &uuid::Uuid::new_v4().simple().to_string()[..12]);
    s.tenants[0].id = Some(id);
}

pub async fn spawn_app(store: StoreChoice) -> TestApp {
    spawn_with(settings(&store, |_| {})).await
}

pub async fn spawn_with(settings: Settings) -> TestApp {
    let tenant = settings
        .tenants
        .first()
        .and_then(|t| t.id.clone())
        .unwrap_or_default();
    let app = Application::build(settings).expect("app builds");
    let port = app.port();
    let state = app.state();
    let handle = app.handle();
    tokio::spawn(app.run_until_stopped());
    TestApp {
        address: format!("http://127.0.0.1:{port}"),
        tenant,
        state,
        client: reqwest::Client::builder()
            .timeout(Duration::from_secs(30))
            .build()
            .unwrap(),
        handle,
    }
}

/// A parsed answer.
pub struct Answer {
    pub status: u16,
    pub headers: reqwest::header::HeaderMap,
    pub bytes: Vec<u8>,
}

impl Answer {
    pub fn json(&self) -> Value {
        serde_json::from_slice(&self.bytes)
            .unwrap_or_else(|_| panic!("not JSON: {:?}", String::from_utf8_lossy(&self.bytes)))
    }

    /// The body as text, for assertion messages.
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.bytes).into_owned()
    }

    pub fn code(&self) -> String {
        self.json()["code"].as_str().unwrap_or("").to_string()
    }

    pub fn replayed(&self) -> bool {
        self.headers
            .get("idempotent-replayed")
            .is_some_and(|v| v == "true")
    }

    /// Asserts the Lightspeed error contract: JSON with a printable
    /// `customerErrorMessage` of at most 50 characters and a `code`.
    pub fn assert_error_contract(&self) {
        let body = self.json();
        let msg = body["customerErrorMessage"]
            .as_str()
            .unwrap_or_else(|| panic!("no customerErrorMessage in {body}"));
        assert!(
            !msg.is_empty() && msg.encode_utf16().count() <= 50,
            "bad message {msg:?}"
        );
        assert!(
            !msg.chars().any(char::is_control),
            "control char in {msg:?}"
        );
        assert!(
            body["code"].as_str().is_some_and(|c| !c.is_empty()),
            "no code in {body}"
        );
    }
}

impl Answer {
    /// Lightspeed's search failure envelope: 200, `success` false, a staff
    /// message of 1–50 UTF-16 units, no reservations, a machine `code`.
    pub fn assert_search_failure(&self) {
        assert_eq!(self.status, 200);
        let body = self.json();
        assert_eq!(body["success"], false, "{body}");
        let msg = body["errorMessage"].as_str().unwrap_or("");
        assert!(
            !msg.is_empty() && msg.encode_utf16().count() <= 50,
            "bad errorMessage {msg:?}"
        );
        assert_eq!(body["reservations"], serde_json::json!([]), "{body}");
        assert!(
            body["code"].as_str().is_some_and(|c| !c.is_empty()),
            "{body}"
        );
    }
}

impl TestApp {
    pub fn memory_pms(&self) -> &Arc<MemoryPms> {
        self.state.pms.memory("demo").expect("demo memory PMS")
    }

    pub fn applied(&self) -> Vec<AppliedPosting> {
        self.memory_pms().applied()
    }

    pub fn applied_for(&self, key: &str) -> usize {
        self.applied()
            .iter()
            .filter(|p| p.charge.idempotency_key == key)
            .count()
    }

    pub fn push_fault(&self, fault: Fault) {
        self.memory_pms().push_fault(fault);
    }

    /// POSTs `body` to `/lightspeed/charge` as Lightspeed does.
    pub async fn charge(&self, key: &str, body: &str) -> Answer {
        self.raw_charge(
            &[
                ("content-type", "application/json"),
                ("accept", "application/json"),
                ("x-lightspeed-idempotency-key", key),
            ],
            body.as_bytes().to_vec(),
        )
        .await
    }

    /// Starts a Lightspeed-style delivery in the background (concurrency tests).
    pub fn charge_in_background(
        &self,
        key: &str,
        body: &'static str,
    ) -> tokio::task::JoinHandle<Answer> {
        let request = self
            .client
            .post(format!("{}/lightspeed/charge", self.address))
            .header("content-type", "application/json")
            .header("x-lightspeed-idempotency-key", key)
            .body(body);
        tokio::spawn(
            async move { Self::answer(request.send().await.expect("request completes")).await },
        )
    }

    pub async fn raw_charge(&self, headers: &[(&str, &str)], body: Vec<u8>) -> Answer {
        let mut req = self
            .client
            .post(format!("{}/lightspeed/charge", self.address));
        for (k, v) in headers {
            req = req.header(*k, *v);
        }
        let resp = req.body(body).send().await.expect("request completes");
        Self::answer(resp).await
    }

    pub async fn get(&self, path_and_query: &str) -> Answer {
        let resp = self
            .client
            .get(format!("{}{}", self.address, path_and_query))
            .send()
            .await
            .expect("request completes");
        Self::answer(resp).await
    }

    async fn answer(resp: reqwest::Response) -> Answer {
        let status = resp.status().as_u16();
        let headers = resp.headers().clone();
        let bytes = resp.bytes().await.expect("body").to_vec();
        Answer {
            status,
            headers,
            bytes,
        }
    }

    pub async fn stop(&self) {
        self.handle.stop(true).await;
    }
}

/// The seed example with `f` applied to its JSON.
pub fn seed_with(f: impl FnOnce(&mut Value)) -> String {
    let mut v: Value = serde_json::from_str(SEED).unwrap();
    f(&mut v);
    serde_json::to_string(&v).unwrap()
}

/// A fixture after `f` changed it.
pub fn seed_with_fixture(name: &str, f: impl FnOnce(&mut Value)) -> String {
    let mut v: Value = serde_json::from_str(&fixture(name)).unwrap();
    f(&mut v);
    serde_json::to_string(&v).unwrap()
}

pub fn fixture(name: &str) -> String {
    std::fs::read_to_string(format!(
        "{}/fixtures/payloads/{name}",
        env!("CARGO_MANIFEST_DIR")
    ))
    .unwrap_or_else(|e| panic!("fixture {name}: {e}"))
}

/// Runs one test body against the memory store, a real Redis and a real Redis
/// Cluster: the same semantics must hold on each.
#[macro_export]
macro_rules! both_stores {
    ($name:ident, $body:path) => {
        mod $name {
            use super::*;
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn memory() {
                $body($crate::helpers::StoreChoice::Memory).await
            }
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn redis() {
                $body($crate::helpers::StoreChoice::Redis).await
            }
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn cluster() {
                $body($crate::helpers::StoreChoice::Cluster).await
            }
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn tls() {
                $body($crate::helpers::StoreChoice::Tls).await
            }
        }
    };
}

/// A charge whose posting call met a set-up error (404, 405, 415, 3XX: wrong base
/// URL, path or content type), injected into the fake just before: answered
/// `500 pms_unavailable` (never a stored `422 pms_rejected`), the journal entry
/// is `failed` (not a permanent refusal), and the retry posts (no replay).
pub async fn assert_set_up_error_is_unavailable(app: &TestApp, key: &str, what: &str) {
    let answer = app.charge(key, SEED).await;
    assert_eq!(
        (answer.status, answer.code().as_str()),
        (500, "pms_unavailable"),
        "{what}: {}",
        String::from_utf8_lossy(&answer.bytes)
    );
    let entry = app
        .state
        .journal
        .get(&app.tenant, key)
        .await
        .unwrap()
        .expect("a journal entry");
    assert_eq!(
        entry.state,
        chargebridge::journal::JournalState::Failed,
        "{what}: not a permanent refusal"
    );
    let retry = app.charge(key, SEED).await;
    assert_eq!(
        retry.status,
        200,
        "{what}: the retry posts: {}",
        String::from_utf8_lossy(&retry.bytes)
    );
    assert!(!retry.replayed(), "{what}: nothing was stored to replay");
}

/// A `revenue_summary_delay` the worker never reaches with the real clock:
/// tests close business dates themselves with [`close_revenue_days`].
pub const NEVER_BY_ITSELF: std::time::Duration =
    std::time::Duration::from_secs(200 * 365 * 24 * 3600);

/// Closes the app's daily revenue summaries as if it were just after the
/// summary of `date` (YYYY-MM-DD) fell due; the outcomes, by bucket.
pub async fn close_revenue_days(app: &TestApp, date: &str) -> Vec<String> {
    let tenant = app
        .state
        .tenants
        .iter()
        .find(|t| t.id == app.tenant)
        .expect("the app's tenant")
        .clone();
    let date: chrono::NaiveDate = date.parse().expect("a date");
    let now = chargebridge::daily_revenue::due_at(&tenant, date).expect("a due time")
        + chrono::Duration::seconds(1);
    chargebridge::daily_revenue::close_due(&app.state, &tenant, now)
        .await
        .expect("closed")
        .into_iter()
        .map(|c| c.outcome)
        .collect()
}
