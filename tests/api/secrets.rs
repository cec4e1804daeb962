//! A full run of the real binary, logging at `trace`, through successes and every
//! kind of failure; afterwards no credential may appear in its logs, its answers
//! (bodies and headers, `/metrics` included), its captured fixtures or the output
//! of `check-config`.
//!
//! Credentials come from every kind of source: inline, `*_env` and `*_file`, and
//! the Redis URL (carrying the password) from `redis_url_file` in one run and from
//! `CHARGEBRIDGE__IDEMPOTENCY__REDIS_URL` in the other.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use base64::Engine;
use serde_json::Value;

use crate::fake_apaleo::{self, FakeApaleo};
use crate::fake_http_pms::{HttpFault, start_fake};
use crate::helpers::{fresh_key, seed_with};
use crate::redis_server::{RedisServer, free_port, wait_for_port};

const BIN: &str = env!("CARGO_BIN_EXE_chargebridge");

/// Tenants' API keys: inline, from a file, from an environment variable, inline.
const KEY_HTTP: &str = "ApiKeyHttp-7Qm2vX9pL4";
const KEY_APALEO: &str = "ApiKeyApaleoFromFile-3Hs8Kd1Wz";
const KEY_BAD_TOKEN: &str = "ApiKeyFromEnv-Vn5Rt2Yc6";
const KEY_DOWN: &str = "ApiKeyDownPms-Jg4Lp8Qe1";
/// What a client offers that is nobody's key; it must not be echoed either.
const OFFERED_WRONG_KEY: &str = "OfferedWrongKey-Bx7Nf3Ua9";
const REDIS_PASSWORD: &str = "RedisPassw0rd-Kc2Tm9Ws4";
/// The http PMS's bearer token (`token_file`) and a wrong one (`token_env`).
const PMS_TOKEN: &str = "PmsBearerToken-Hd6Ry1Zo8";
const WRONG_PMS_TOKEN: &str = "WrongPmsToken-Eu3Gx7Ib5";

const KEY_C_VAR: &str = "CB_SECRETS_TEST_TENANT_KEY";
const WRONG_TOKEN_VAR: &str = "CB_SECRETS_TEST_WRONG_PMS_TOKEN";

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Format {
    Json,
    Text,
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_secret_leaks_from_a_full_run_with_json_logs() {
    full_run(Format::Json).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_secret_leaks_from_a_full_run_with_text_logs() {
    full_run(Format::Text).await;
}

/// Where every output of the run is kept, for the final search.
struct Outputs {
    /// stdout and stderr of `serve`.
    logs: String,
    /// Every answer: status line, headers and body.
    answers: Vec<String>,
    /// stdout and stderr of each `check-config` run.
    check_config: Vec<String>,
    /// Every file of the capture directory.
    captures: Vec<(PathBuf, String)>,
}

struct Bridge {
    base: String,
    client: reqwest::Client,
    answers: Vec<String>,
}

struct Reply {
    status: u16,
    headers: reqwest::header::HeaderMap,
    body: String,
}

impl Reply {
    fn json(&self) -> Value {
        serde_json::from_str(&self.body).unwrap_or(Value::Null)
    }

    fn code(&self) -> String {
        self.json()["code"].as_str().unwrap_or("").to_string()
    }
}

impl Bridge {
    async fn send(&mut self, request: reqwest::RequestBuilder) -> Reply {
        let response = request.send().await.expect("chargebridge answers");
        let status = response.status().as_u16();
        let headers = response.headers().clone();
        let body = response.text().await.expect("a readable body");
        let mut seen = format!("HTTP {status}\n");
        for (name, value) in &headers {
            seen.push_str(&format!(
                "{name}: {}\n",
                String::from_utf8_lossy(value.as_bytes())
            ));
        }
        seen.push('\n');
        seen.push_str(&body);
        self.answers.push(seen);
        Reply {
            status,
            headers,
            body,
        }
    }

    async fn charge(&mut self, key: &str, body: String) -> Reply {
        let request = self
            .client
            .post(format!("{}/lightspeed/charge", self.base))
            .header("content-type", "application/json")
            .header("accept", "application/json")
            .header("x-lightspeed-idempotency-key", key)
            .body(body);
        self.send(request).await
    }

    async fn get(&mut self, path: &str) -> Reply {
        let request = self.client.get(format!("{}{path}", self.base));
        self.send(request).await
    }

    async fn search(&mut self, tenant: &str, api_key: Option<&str>, term: &str) -> Reply {
        let mut query = vec![("businessExternalReference", tenant), ("term", term)];
        if let Some(key) = api_key {
            query.push(("apiKey", key));
        }
        let request = self
            .client
            .get(format!("{}/lightspeed/search", self.base))
            .query(&query);
        self.send(request).await
    }
}

/// The seed example for `tenant`, offering `api_key` (none: the field is left
/// out), charged to `reservation`.
fn payload(tenant: &str, api_key: Option<&str>, reservation: &str) -> String {
    seed_with(|v| {
        v["businessExternalReference"] = tenant.into();
        match api_key {
            Some(key) => v["apiKey"] = key.into(),
            None => {
                v.as_object_mut().unwrap().remove("apiKey");
            }
        }
        v["payments"][0]["reservationId"] = reservation.into();
    })
}

fn write(dir: &Path, name: &str, content: &str) -> PathBuf {
    let path = dir.join(name);
    // Mounted secrets often end in a line break; the resolver drops it.
    std::fs::write(&path, format!("{content}\n")).unwrap();
    path
}

struct Setup {
    config: PathBuf,
    /// `CHARGEBRIDGE__…` and `*_env` variables the binary gets.
    env: Vec<(String, String)>,
    capture: PathBuf,
    port: u16,
}

fn setup(
    format: Format,
    dir: &Path,
    redis_port: u16,
    http_pms: &str,
    apaleo: &FakeApaleo,
) -> Setup {
    let port = free_port();
    let dead_port = free_port();
    let redis_url = format!("redis://:{REDIS_PASSWORD}@127.0.0.1:{redis_port}");
    let capture = dir.join("capture");
    let key_file = write(dir, "apaleo-tenant-key", KEY_APALEO);
    let token_file = write(dir, "pms-token", PMS_TOKEN);
    let secret_file = write(dir, "apaleo-client-secret", fake_apaleo::CLIENT_SECRET);
    let mut env = vec![
        (KEY_C_VAR.to_string(), KEY_BAD_TOKEN.to_string()),
        (WRONG_TOKEN_VAR.to_string(), WRONG_PMS_TOKEN.to_string()),
    ];
    let (log_format, redis_source) = match format {
        Format::Json => {
            let url_file = write(dir, "redis-url", &redis_url);
            ("json", format!("redis_url_file = {:?}", url_file.display()))
        }
        Format::Text => {
            env.push((
                "CHARGEBRIDGE__IDEMPOTENCY__REDIS_URL".to_string(),
                redis_url,
            ));
            ("pretty", String::new())
        }
    };
    let config = format!(
        r#"
[server]
listen = "127.0.0.1:{port}"
request_deadline = "3s"
pms_safety_margin = "200ms"
shutdown_grace = "2s"
workers = 2

[idempotency]
store = "redis"
{redis_source}
lease = "4s"
in_flight_wait = "500ms"
command_timeout = "500ms"
accept_unsafe_redis = true

[log]
format = "{log_format}"
level = "trace"

[capture]
dir = {capture:?}

[[tenants]]
id = "hotel-http"
business_external_reference = "hotel-http"
api_key = "{KEY_HTTP}"
currency = "EUR"
pms = "hotel"

[[tenants]]
id = "hotel-apaleo"
api_key_file = {key_file:?}
currency = "EUR"
pms = "apaleo"

[tenants.mapping]
taxes = {{ "12345" = "Reduced" }}

[[tenants]]
id = "hotel-bad-token"
api_key_env = "{KEY_C_VAR}"
currency = "EUR"
pms = "bad-token"

[[tenants]]
id = "hotel-down"
api_key = "{KEY_DOWN}"
currency = "EUR"
pms = "down"

[pms.hotel]
adapter = "http"
url = "{http_pms}"
token_file = {token_file:?}

[pms.bad-token]
adapter = "http"
url = "{http_pms}"
token_env = "{WRONG_TOKEN_VAR}"

[pms.down]
adapter = "http"
url = "http://127.0.0.1:{dead_port}"
token = "{PMS_TOKEN}"

[pms.apaleo]
adapter = "apaleo"
url = "{apaleo}"
identity_url = "{apaleo}"
client_id = "{client_id}"
client_secret_file = {secret_file:?}
property_id = "{property}"
default_vat_type = "Normal"
"#,
        capture = capture.display().to_string(),
        key_file = key_file.display().to_string(),
        token_file = token_file.display().to_string(),
        secret_file = secret_file.display().to_string(),
        apaleo = apaleo.base,
        client_id = fake_apaleo::CLIENT_ID,
        property = fake_apaleo::PROPERTY,
    );
    let path = dir.join("chargebridge.toml");
    std::fs::write(&path, config).unwrap();
    Setup {
        config: path,
        env,
        capture,
        port,
    }
}

/// The binary with the run's environment and nothing inherited that could
/// change its configuration.
fn command(setup: &Setup) -> Command {
    let mut cmd = Command::new(BIN);
    for (name, _) in std::env::vars() {
        if name.starts_with("CHARGEBRIDGE") || name == "RUST_LOG" {
            cmd.env_remove(name);
        }
    }
    cmd.envs(setup.env.iter().map(|(k, v)| (k.as_str(), v.as_str())));
    cmd.stdin(Stdio::null());
    cmd
}

fn serve(setup: &Setup, log: &Path) -> Child {
    let out = std::fs::File::create(log).unwrap();
    let err = out.try_clone().unwrap();
    let child = command(setup)
        .arg("serve")
        .arg("--config")
        .arg(&setup.config)
        .stdout(out)
        .stderr(err)
        .spawn()
        .unwrap();
    wait_for_port(setup.port, true);
    child
}

fn check_config(setup: &Setup, expected: &str) -> String {
    let out = command(setup)
        .arg("check-config")
        .arg("--config")
        .arg(&setup.config)
        .output()
        .unwrap();
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        text.contains("tenant hotel-apaleo → pms apaleo")
            && text.contains("api key from file")
            && text.contains(expected),
        "check-config resolved the configuration and says {expected:?}:\n{text}"
    );
    text
}

/// SIGTERM, then wait: the process drains and writes what it still has queued.
fn stop(mut child: Child) {
    let _ = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status();
    for _ in 0..100 {
        if child.try_wait().unwrap().is_some() {
            return;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    child.kill().unwrap();
    child.wait().unwrap();
}

/// Colour codes of the text format, which could otherwise split a secret.
fn strip_ansi(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut chars = text.chars();
    while let Some(c) = chars.next() {
        if c == '\u{1b}' {
            for c in chars.by_ref() {
                if c.is_ascii_alphabetic() {
                    break;
                }
            }
        } else {
            out.push(c);
        }
    }
    out
}

async fn full_run(format: Format) {
    let dir = tempfile::tempdir().unwrap();
    let mut redis = RedisServer::start_with(false, &["--requirepass", REDIS_PASSWORD]);
    let http_pms = start_fake(Some(PMS_TOKEN)).await;
    let apaleo = FakeApaleo::start().await;
    let setup = setup(format, dir.path(), redis.port, &http_pms.url, &apaleo);
    let log_path = dir.path().join("serve.log");
    let child = serve(&setup, &log_path);
    let mut bridge = Bridge {
        base: format!("http://127.0.0.1:{}", setup.port),
        client: reqwest::Client::builder()
            .timeout(Duration::from_secs(20))
            .build()
            .unwrap(),
        answers: Vec::new(),
    };
    let mut charges = 0;
    let redis_origin = match format {
        Format::Json => "redis reachable (url from file)",
        // CHARGEBRIDGE__IDEMPOTENCY__REDIS_URL sets `redis_url` itself.
        Format::Text => "redis reachable (url from config)",
    };
    let mut check_config_runs = vec![check_config(&setup, redis_origin)];

    assert_eq!(bridge.get("/healthz").await.status, 200);
    // Two PMSs cannot be reached with their credentials: not ready, and says why.
    let ready = bridge.get("/readyz").await;
    assert_eq!(ready.status, 503, "{}", ready.body);
    assert!(ready.body.contains("pms:bad-token"), "{}", ready.body);

    // The http PMS: posted, replayed, key reused with another body.
    let key = fresh_key();
    let ok = bridge
        .charge(&key, payload("hotel-http", Some(KEY_HTTP), "001"))
        .await;
    assert_eq!(ok.status, 200, "{}", ok.body);
    let again = bridge
        .charge(&key, payload("hotel-http", Some(KEY_HTTP), "001"))
        .await;
    assert_eq!(again.status, 200, "{}", again.body);
    assert!(again.headers.contains_key("idempotent-replayed"));
    let reused = bridge
        .charge(&key, payload("hotel-http", Some(KEY_HTTP), "002"))
        .await;
    assert_eq!(reused.code(), "idempotency_key_reused", "{}", reused.body);
    charges += 3;
    assert!(
        http_pms.seen().iter().any(|s| s.path == "/charges"
            && s.authorization.as_deref() == Some(&format!("Bearer {PMS_TOKEN}"))),
        "the token from token_file reached the PMS"
    );

    // Wrong and missing API keys.
    let wrong = bridge
        .charge(
            &fresh_key(),
            payload("hotel-http", Some(OFFERED_WRONG_KEY), "001"),
        )
        .await;
    assert_eq!(wrong.status, 401, "{}", wrong.body);
    let wrong_tenant = bridge
        .charge(&fresh_key(), payload("hotel-nobody", Some(KEY_HTTP), "001"))
        .await;
    assert_eq!(wrong_tenant.status, 401, "{}", wrong_tenant.body);
    let missing = bridge
        .charge(&fresh_key(), payload("hotel-http", None, "001"))
        .await;
    assert!(
        matches!(missing.status, 400 | 401),
        "{} {}",
        missing.status,
        missing.body
    );
    // Not JSON, but carrying the right key: refused, and captured as text.
    let broken = format!(
        "{},",
        payload("hotel-http", Some(KEY_HTTP), "001").trim_end()
    );
    let malformed = bridge.charge(&fresh_key(), broken).await;
    assert_eq!(malformed.status, 400, "{}", malformed.body);
    charges += 4;

    // The PMS refuses, fails with a 5XX, cannot be reached, refuses the token.
    let refused = bridge
        .charge(&fresh_key(), payload("hotel-http", Some(KEY_HTTP), "004"))
        .await;
    assert_eq!(refused.code(), "pms_rejected", "{}", refused.body);
    http_pms.push(HttpFault::Status(
        500,
        serde_json::json!({"message": "Internal error"}),
    ));
    let failed = bridge
        .charge(&fresh_key(), payload("hotel-http", Some(KEY_HTTP), "001"))
        .await;
    assert_eq!(failed.status, 500, "{}", failed.body);
    let down = bridge
        .charge(&fresh_key(), payload("hotel-down", Some(KEY_DOWN), "001"))
        .await;
    assert_eq!(down.code(), "pms_unavailable", "{}", down.body);
    let bad_token = bridge
        .charge(
            &fresh_key(),
            payload("hotel-bad-token", Some(KEY_BAD_TOKEN), "001"),
        )
        .await;
    assert_ne!(bad_token.status, 200, "{}", bad_token.body);
    assert!(
        http_pms
            .seen()
            .iter()
            .any(|s| s.authorization.as_deref() == Some(&format!("Bearer {WRONG_PMS_TOKEN}"))),
        "the token from token_env reached the PMS (and was refused)"
    );
    charges += 4;

    // apaleo: a token is fetched, used, revoked and fetched again; a refusal.
    let posted = bridge
        .charge(
            &fresh_key(),
            payload("hotel-apaleo", Some(KEY_APALEO), "001"),
        )
        .await;
    assert_eq!(posted.status, 200, "{}", posted.body);
    apaleo.revoke_tokens();
    let after_refresh = bridge
        .charge(
            &fresh_key(),
            payload("hotel-apaleo", Some(KEY_APALEO), "001"),
        )
        .await;
    assert_eq!(after_refresh.status, 200, "{}", after_refresh.body);
    let closed = bridge
        .charge(
            &fresh_key(),
            payload("hotel-apaleo", Some(KEY_APALEO), "004"),
        )
        .await;
    assert_eq!(closed.status, 422, "{}", closed.body);
    charges += 3;
    assert!(
        apaleo.issued_tokens().len() >= 2,
        "the revoked token was replaced"
    );

    // Guest search, right and wrong keys, and the operations endpoints.
    let found = bridge.search("hotel-http", Some(KEY_HTTP), "Doe").await;
    assert_eq!(found.status, 200, "{}", found.body);
    let found = bridge
        .search("hotel-apaleo", Some(KEY_APALEO), "Jane")
        .await;
    assert_eq!(found.status, 200, "{}", found.body);
    let bad_search = bridge
        .search("hotel-bad-token", Some(KEY_BAD_TOKEN), "Doe")
        .await;
    assert!(
        bad_search.status == 200 && bad_search.body.contains(r#""code":"pms_unavailable""#),
        "{}",
        bad_search.body
    );
    let denied = bridge
        .search("hotel-http", Some(OFFERED_WRONG_KEY), "Doe")
        .await;
    assert!(
        denied.status == 200 && denied.body.contains(r#""code":"unauthorized""#),
        "{}",
        denied.body
    );
    let anonymous = bridge.search("hotel-http", None, "Doe").await;
    assert!(
        anonymous.status == 200 && anonymous.body.contains(r#""code":"unauthorized""#),
        "{}",
        anonymous.body
    );
    let metrics = bridge.get("/metrics").await;
    assert!(
        metrics.body.contains("chargebridge_requests_total"),
        "{}",
        metrics.body
    );

    // Redis goes away: charges fail closed, readiness says why.
    redis.stop();
    let no_store = bridge
        .charge(&fresh_key(), payload("hotel-http", Some(KEY_HTTP), "001"))
        .await;
    assert_eq!(no_store.status, 500, "{}", no_store.body);
    assert_eq!(no_store.code(), "store_unavailable", "{}", no_store.body);
    charges += 1;
    let not_ready = bridge.get("/readyz").await;
    assert_eq!(not_ready.status, 503, "{}", not_ready.body);
    assert!(not_ready.body.contains("store:redis"), "{}", not_ready.body);
    check_config_runs.push(check_config(&setup, "FAIL  redis"));

    stop(child);
    let logs = strip_ansi(&std::fs::read_to_string(&log_path).unwrap());
    let mut captures = Vec::new();
    for entry in std::fs::read_dir(&setup.capture).unwrap() {
        let path = entry.unwrap().path();
        let text = String::from_utf8_lossy(&std::fs::read(&path).unwrap()).into_owned();
        captures.push((path, text));
    }

    assert_logs_are_meaningful(format, &logs, charges);
    assert!(
        captures.len() >= 8,
        "deliveries were captured: {}",
        captures.len()
    );
    let outputs = Outputs {
        logs,
        answers: bridge.answers,
        check_config: check_config_runs,
        captures,
    };
    let mut secrets: Vec<(&str, String)> = vec![
        ("tenant API key (inline)", KEY_HTTP.into()),
        ("tenant API key (api_key_file)", KEY_APALEO.into()),
        ("tenant API key (api_key_env)", KEY_BAD_TOKEN.into()),
        ("tenant API key (down PMS)", KEY_DOWN.into()),
        ("offered wrong API key", OFFERED_WRONG_KEY.into()),
        ("Redis password", REDIS_PASSWORD.into()),
        ("http PMS token (token_file)", PMS_TOKEN.into()),
        ("wrong http PMS token (token_env)", WRONG_PMS_TOKEN.into()),
        (
            "apaleo client secret (client_secret_file)",
            fake_apaleo::CLIENT_SECRET.into(),
        ),
        (
            "apaleo HTTP Basic credentials",
            base64::engine::general_purpose::STANDARD.encode(format!(
                "{}:{}",
                fake_apaleo::CLIENT_ID,
                fake_apaleo::CLIENT_SECRET
            )),
        ),
    ];
    let issued = apaleo.issued_tokens();
    assert!(!issued.is_empty());
    for token in &issued {
        secrets.push(("apaleo access token", token.clone()));
    }
    assert_no_secret_in(&outputs, &secrets);
}

/// An empty or cut log would pass the search; make sure it holds what a run at
/// `trace` must write.
fn assert_logs_are_meaningful(format: Format, logs: &str, charges: usize) {
    let lines: Vec<&str> = logs.lines().collect();
    eprintln!("{format:?} run: {} log lines", lines.len());
    let request_lines = lines.iter().filter(|l| l.contains("latency_ms")).count();
    assert_eq!(
        request_lines, charges,
        "one request line per charge delivery"
    );
    for expected in [
        "chargebridge serving",
        "capturing every charge delivery",
        "fetched an access token",
        "access token refused; fetching a new one",
        "PMS rejected the charge",
        "charge not completed",
        "guest search failed",
    ] {
        assert!(logs.contains(expected), "the log mentions {expected:?}");
    }
    let (trace, debug) = match format {
        Format::Json => (r#""level":"TRACE""#, r#""level":"DEBUG""#),
        Format::Text => ("TRACE ", "DEBUG "),
    };
    assert!(logs.contains(debug), "debug events are logged");
    assert!(logs.contains(trace), "trace events are logged");
    if format == Format::Json {
        for line in &lines {
            assert!(
                serde_json::from_str::<Value>(line).is_ok(),
                "not a JSON line: {line}"
            );
        }
    }
}

fn assert_no_secret_in(outputs: &Outputs, secrets: &[(&str, String)]) {
    let mut places: Vec<(String, &str)> = vec![("the log".into(), outputs.logs.as_str())];
    for (i, answer) in outputs.answers.iter().enumerate() {
        places.push((format!("answer #{i}"), answer));
    }
    for (i, text) in outputs.check_config.iter().enumerate() {
        places.push((format!("check-config run #{i}"), text));
    }
    for (path, text) in &outputs.captures {
        places.push((format!("capture {}", path.display()), text));
    }
    let mut leaks = Vec::new();
    for (what, secret) in secrets {
        assert!(secret.len() >= 16, "{what} is distinctive");
        for (place, text) in &places {
            if let Some(at) = text.find(secret.as_str()) {
                let start = text[..at]
                    .char_indices()
                    .rev()
                    .nth(80)
                    .map_or(0, |(i, _)| i);
                let end = (at + secret.len() + 80).min(text.len());
                let end = (end..=text.len())
                    .find(|i| text.is_char_boundary(*i))
                    .unwrap_or(text.len());
                leaks.push(format!("{what} in {place}: …{}…", &text[start..end]));
            }
        }
    }
    assert!(leaks.is_empty(), "secrets leaked:\n{}", leaks.join("\n"));
}
