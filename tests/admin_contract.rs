//! `schemas/admin.openapi.yaml` against the real service: every endpoint of the
//! admin API is called in its success and error cases (401, 404 while admin is
//! off, 400, 409, 413, 503 with the store down), every body is validated against
//! the schema the document gives for that path, method, status and media type,
//! and the (path, method, status, code) answers produced must be exactly the
//! ones the document lists.

use std::collections::BTreeSet;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use chargebridge::config::{Settings, StoreKind};
use chargebridge::pms::memory::Fault;
use chargebridge::startup::{AppState, Application};
use secrecy::SecretString;
use serde_json::{Value, json};

const SEED: &str = include_str!("../fixtures/payloads/seed-example.json");
const TOKEN: &str = "t0ken";
const TENANT: &str = "demo";

const LIST: &str = "/admin/v1/postings";
const SHOW: &str = "/admin/v1/postings/{tenant}/{key}";
const RETRY: &str = "/admin/v1/postings/{tenant}/{key}/retry";
const RESOLVE: &str = "/admin/v1/postings/{tenant}/{key}/resolve";
const DAILY: &str = "/admin/v1/reports/daily";

fn openapi() -> Value {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("schemas/admin.openapi.yaml");
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    serde_norway::from_str(&text).expect("the admin OpenAPI document is YAML")
}

/// `#/components/schemas/X` → `#/$defs/X`, so a response's schema validates as
/// JSON Schema 2020-12 next to the document's schemas.
fn rewrite_refs(value: &Value) -> Value {
    match value {
        Value::Object(map) => Value::Object(
            map.iter()
                .map(|(k, v)| {
                    let v = match (k.as_str(), v.as_str()) {
                        ("$ref", Some(r)) => {
                            Value::String(r.replace("#/components/schemas/", "#/$defs/"))
                        }
                        _ => rewrite_refs(v),
                    };
                    (k.clone(), v)
                })
                .collect(),
        ),
        Value::Array(items) => Value::Array(items.iter().map(rewrite_refs).collect()),
        other => other.clone(),
    }
}

/// (path template, METHOD, status, code or "") — one kind of answer.
type Seen = BTreeSet<(String, String, String, String)>;

struct Contract {
    doc: Value,
    defs: Value,
}

impl Contract {
    fn load() -> Self {
        let doc = openapi();
        let defs = rewrite_refs(&doc["components"]["schemas"]);
        Contract { doc, defs }
    }

    /// The object at a local `$ref`, or `value` itself.
    fn deref<'a>(&'a self, value: &'a Value) -> &'a Value {
        match value.get("$ref").and_then(Value::as_str) {
            Some(r) => self
                .doc
                .pointer(r.strip_prefix('#').expect("a local $ref"))
                .unwrap_or_else(|| panic!("dangling {r}")),
            None => value,
        }
    }

    fn response(&self, path: &str, method: &str, status: u16) -> Option<&Value> {
        let op = self.doc["paths"].get(path)?.get(method.to_lowercase())?;
        op["responses"]
            .get(status.to_string())
            .map(|r| self.deref(r))
    }

    fn validator(&self, schema: &Value) -> jsonschema::Validator {
        let schema = json!({
            "$schema": "https://json-schema.org/draft/2020-12/schema",
            "$defs": self.defs,
            "allOf": [rewrite_refs(schema)],
        });
        jsonschema::draft202012::options()
            .should_validate_formats(true)
            .build(&schema)
            .unwrap_or_else(|e| panic!("not a valid schema: {e}"))
    }

    /// Every code a response names: the `error` enums (or consts) and `code`
    /// consts of its schemas. The generic `Error` schema lists every code, so it
    /// is not entered; each response narrows it with its own enum.
    fn codes(&self, value: &Value, out: &mut BTreeSet<String>) {
        match value {
            Value::Object(map) => {
                if let Some(r) = map.get("$ref").and_then(Value::as_str) {
                    if r != "#/components/schemas/Error" {
                        self.codes(self.deref(value), out);
                    }
                    return;
                }
                if let Some(props) = map.get("properties") {
                    for name in ["error", "code"] {
                        let Some(p) = props.get(name) else { continue };
                        if let Some(list) = p.get("enum").and_then(Value::as_array) {
                            out.extend(list.iter().filter_map(Value::as_str).map(String::from));
                        }
                        if let Some(c) = p.get("const").and_then(Value::as_str) {
                            out.insert(c.to_string());
                        }
                    }
                }
                map.iter()
                    .filter(|(k, _)| k.as_str() != "properties")
                    .for_each(|(_, v)| self.codes(v, out));
                if let Some(props) = map.get("properties").and_then(Value::as_object) {
                    props
                        .iter()
                        .filter(|(k, _)| !matches!(k.as_str(), "error" | "code"))
                        .for_each(|(_, v)| self.codes(v, out));
                }
            }
            Value::Array(items) => items.iter().for_each(|v| self.codes(v, out)),
            _ => {}
        }
    }

    fn documented(&self) -> Seen {
        let mut out = Seen::new();
        for (path, item) in self.doc["paths"].as_object().expect("paths") {
            for (method, op) in item.as_object().unwrap() {
                let Some(responses) = op.get("responses").and_then(Value::as_object) else {
                    continue;
                };
                for (status, response) in responses {
                    let mut codes = BTreeSet::new();
                    self.codes(self.deref(response), &mut codes);
                    if codes.is_empty() {
                        codes.insert(String::new());
                    }
                    for code in codes {
                        out.insert((path.clone(), method.to_uppercase(), status.clone(), code));
                    }
                }
            }
        }
        out
    }
}

struct Service {
    url: String,
    state: Arc<AppState>,
    client: reqwest::Client,
}

fn settings(tweak: impl FnOnce(&mut Settings)) -> Settings {
    let mut s = Settings::demo();
    s.server.listen = "127.0.0.1:0".into();
    s.server.workers = Some(2);
    s.log.level = "warn".into();
    s.admin.token = Some(SecretString::from(TOKEN));
    s.journal.poll_interval = Duration::from_millis(100);
    s.idempotency.command_timeout = Duration::from_millis(500);
    tweak(&mut s);
    s
}

async fn start(settings: Settings) -> Service {
    let app = Application::build(settings).expect("app builds");
    let url = format!("http://127.0.0.1:{}", app.port());
    let state = app.state();
    tokio::spawn(app.run_until_stopped());
    Service {
        url,
        state,
        client: reqwest::Client::builder()
            .timeout(Duration::from_secs(30))
            .build()
            .unwrap(),
    }
}

fn fresh_key() -> String {
    format!("LS1_{}", uuid::Uuid::new_v4())
}

/// How a probe authenticates.
#[derive(Clone, Copy)]
enum Auth {
    Token,
    None,
    Wrong,
}

/// One probe: a request and the kind of answer expected of it.
struct Probe<'a> {
    method: &'a str,
    /// The documented path template the request is an instance of.
    template: &'a str,
    tenant: &'a str,
    key: &'a str,
    query: &'a str,
    auth: Auth,
    accept: Option<&'a str>,
    body: Option<Vec<u8>>,
}

impl<'a> Probe<'a> {
    fn new(method: &'a str, template: &'a str) -> Self {
        Probe {
            method,
            template,
            tenant: TENANT,
            key: "LS1_nope",
            query: "",
            auth: Auth::Token,
            accept: None,
            body: None,
        }
    }
    fn entry(mut self, tenant: &'a str, key: &'a str) -> Self {
        self.tenant = tenant;
        self.key = key;
        self
    }
    fn query(mut self, query: &'a str) -> Self {
        self.query = query;
        self
    }
    fn auth(mut self, auth: Auth) -> Self {
        self.auth = auth;
        self
    }
    fn accept(mut self, accept: &'a str) -> Self {
        self.accept = Some(accept);
        self
    }
    fn body(mut self, body: impl Into<Vec<u8>>) -> Self {
        self.body = Some(body.into());
        self
    }
    fn note(self, note: &str) -> Self {
        self.body(json!({ "note": note }).to_string())
    }
}

/// Sends probes, validates every answer against the document, records it.
struct Checker {
    contract: Contract,
    seen: Seen,
}

impl Checker {
    /// Sends `probe` to `service`; asserts the status and the code (`""` for
    /// none) and the body's schema; returns the body (JSON, or the text as a
    /// JSON string).
    async fn expect(
        &mut self,
        service: &Service,
        probe: Probe<'_>,
        status: u16,
        code: &str,
    ) -> Value {
        let path = probe
            .template
            .replace("{tenant}", probe.tenant)
            .replace("{key}", probe.key);
        let url = format!("{}{path}{}", service.url, probe.query);
        let mut request = match probe.method {
            "GET" => service.client.get(&url),
            "POST" => service.client.post(&url),
            other => panic!("{other}"),
        };
        request = match probe.auth {
            Auth::Token => request.bearer_auth(TOKEN),
            Auth::Wrong => request.bearer_auth("not-the-t0ken"),
            Auth::None => request,
        };
        if let Some(accept) = probe.accept {
            request = request.header("accept", accept);
        }
        if let Some(body) = probe.body {
            request = request
                .header("content-type", "application/json")
                .body(body);
        }
        let response = request.send().await.expect("the service answers");
        let got = response.status().as_u16();
        let media = response
            .headers()
            .get("content-type")
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
            .split(';')
            .next()
            .unwrap()
            .trim()
            .to_string();
        let www_authenticate = response
            .headers()
            .get("www-authenticate")
            .map(|v| v.to_str().unwrap().to_string());
        let text = response.text().await.unwrap();
        let what = format!("{} {url} -> {got} {media}: {text}", probe.method);
        assert_eq!(got, status, "{what}");
        let body: Value = if media == "application/json" {
            serde_json::from_str(&text).unwrap_or_else(|e| panic!("{what}: not JSON: {e}"))
        } else {
            Value::String(text.clone())
        };
        let found = body
            .get("error")
            .or_else(|| body.get("code"))
            .and_then(Value::as_str)
            .unwrap_or("")
            .to_string();
        assert_eq!(found, code, "{what}");
        if status == 401 {
            assert_eq!(body, json!({"error": "unauthorized"}), "{what}");
            assert_eq!(www_authenticate.as_deref(), Some("Bearer"), "{what}");
        }

        let response = self
            .contract
            .response(probe.template, probe.method, status)
            .unwrap_or_else(|| {
                panic!("undocumented: {} {} {status}", probe.method, probe.template)
            });
        let schema = response["content"]
            .get(&media)
            .unwrap_or_else(|| panic!("{what}: media type {media:?} not documented"))["schema"]
            .clone();
        let validator = self.contract.validator(&schema);
        let errors: Vec<String> = validator
            .iter_errors(&body)
            .map(|e| format!("{e} at {}", e.instance_path()))
            .collect();
        assert!(
            errors.is_empty(),
            "{what}\ndoes not follow the document: {errors:?}"
        );
        self.seen.insert((
            probe.template.to_string(),
            probe.method.to_string(),
            status.to_string(),
            found,
        ));
        body
    }
}

impl Service {
    async fn charge(&self, key: &str) -> u16 {
        self.client
            .post(format!("{}/lightspeed/charge", self.url))
            .header("Content-Type", "application/json")
            .header("X-Lightspeed-Idempotency-Key", key)
            .body(SEED)
            .send()
            .await
            .unwrap()
            .status()
            .as_u16()
    }

    fn push_fault(&self, fault: Fault) {
        self.state.pms.memory("demo").unwrap().push_fault(fault);
    }
}

#[test]
fn the_admin_document_is_consistent() {
    let contract = Contract::load();
    assert_eq!(contract.doc["openapi"], "3.1.0");
    assert_eq!(
        contract.doc["components"]["securitySchemes"]["adminToken"]["scheme"],
        "bearer"
    );
    // Every local $ref resolves.
    fn refs(value: &Value, out: &mut Vec<String>) {
        match value {
            Value::Object(map) => {
                if let Some(r) = map.get("$ref").and_then(Value::as_str) {
                    out.push(r.to_string());
                }
                map.values().for_each(|v| refs(v, out));
            }
            Value::Array(items) => items.iter().for_each(|v| refs(v, out)),
            _ => {}
        }
    }
    let mut all = Vec::new();
    refs(&contract.doc, &mut all);
    assert!(all.len() > 20);
    for r in all {
        let pointer = r
            .strip_prefix('#')
            .unwrap_or_else(|| panic!("not local: {r}"));
        assert!(contract.doc.pointer(pointer).is_some(), "dangling {r}");
    }
    // Every schema compiles; the states are the journal's, in its order.
    for (name, _) in contract.doc["components"]["schemas"].as_object().unwrap() {
        contract.validator(&json!({"$ref": format!("#/components/schemas/{name}")}));
    }
    let states: Vec<&str> = contract.doc["components"]["schemas"]["State"]["enum"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s.as_str().unwrap())
        .collect();
    let journal: Vec<&str> = chargebridge::journal::JournalState::ALL
        .iter()
        .map(|s| s.as_str())
        .collect();
    assert_eq!(states, journal);
    // Every code a response names is one of the Error schema's (or 401's, or the
    // general query error's).
    let mut known: BTreeSet<String> = contract.doc["components"]["schemas"]["Error"]["properties"]
        ["error"]["enum"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c.as_str().unwrap().to_string())
        .collect();
    known.insert("unauthorized".into());
    known.insert("invalid_payload".into());
    for (path, method, status, code) in contract.documented() {
        assert!(
            code.is_empty() || known.contains(&code),
            "{method} {path} {status}: {code}"
        );
    }
    // The schemas are not vacuous: wrong shapes fail.
    let summary = contract.validator(&json!({"$ref": "#/components/schemas/Summary"}));
    let good = json!({
        "tenant": "demo", "key": "LS1_x", "state": "failed",
        "createdAt": "2026-12-02T21:14:03.120Z", "updatedAt": "2026-12-02T21:14:03.120Z",
        "currency": "EUR", "amount": "67.0", "reservations": ["001"], "refund": false,
        "attempts": 1, "lastOutcome": "unavailable"
    });
    assert!(
        summary.is_valid(&good),
        "{:?}",
        summary
            .iter_errors(&good)
            .map(|e| e.to_string())
            .collect::<Vec<_>>()
    );
    for (what, change) in [
        ("an amount as a number", json!({"amount": 67.0})),
        ("an unknown state", json!({"state": "lost"})),
        ("a time that is not one", json!({"createdAt": "yesterday"})),
        ("an undocumented member", json!({"extra": 1})),
    ] {
        let mut bad = good.clone();
        for (k, v) in change.as_object().unwrap() {
            bad[k] = v.clone();
        }
        assert!(!summary.is_valid(&bad), "the Summary schema accepts {what}");
    }
    let mut bad = good.clone();
    bad.as_object_mut().unwrap().remove("key");
    assert!(!summary.is_valid(&bad), "the Summary schema accepts no key");
    let error = contract.validator(
        &contract.response(RETRY, "POST", 409).unwrap()["content"]["application/json"]["schema"],
    );
    assert!(error.is_valid(&json!({"error": "busy", "message": "m"})));
    assert!(
        !error.is_valid(&json!({"error": "not_found", "message": "m"})),
        "409 narrows the codes"
    );

    // Every operation needs the token (the document-wide security).
    assert_eq!(contract.doc["security"], json!([{"adminToken": []}]));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_admin_api_answers_exactly_what_its_document_says() {
    let mut c = Checker {
        contract: Contract::load(),
        seen: Seen::new(),
    };
    let app = start(settings(|_| {})).await;

    // Entries: a failed charge (the PMS down once), a posted one, another failed.
    let failed = fresh_key();
    app.push_fault(Fault::Unavailable);
    assert_eq!(app.charge(&failed).await, 500);
    let posted = fresh_key();
    assert_eq!(app.charge(&posted).await, 200);
    let to_resolve = fresh_key();
    app.push_fault(Fault::Unavailable);
    assert_eq!(app.charge(&to_resolve).await, 500);

    // GET /admin/v1/postings
    let page = c.expect(&app, Probe::new("GET", LIST), 200, "").await;
    assert_eq!(page["entries"].as_array().unwrap().len(), 3, "{page}");
    let page = c
        .expect(
            &app,
            Probe::new("GET", LIST).query("?tenant=demo&limit=1"),
            200,
            "",
        )
        .await;
    let cursor = page["nextCursor"]
        .as_str()
        .expect("a next page")
        .to_string();
    let query = format!("?tenant=demo&limit=1&cursor={cursor}");
    let next = c
        .expect(&app, Probe::new("GET", LIST).query(&query), 200, "")
        .await;
    assert_ne!(next["entries"][0]["key"], page["entries"][0]["key"]);
    c.expect(
        &app,
        Probe::new("GET", LIST).query("?state=failed&since=2020-01-01&until=2999-01-01T00:00:00Z"),
        200,
        "",
    )
    .await;
    for bad in [
        "?state=lost",
        "?since=yesterday",
        "?until=12",
        "?cursor=abc",
    ] {
        c.expect(
            &app,
            Probe::new("GET", LIST).query(bad),
            400,
            "invalid_query",
        )
        .await;
    }
    for unreadable in ["?limit=abc", "?limit=-1", "?tenant=a&tenant=b"] {
        c.expect(
            &app,
            Probe::new("GET", LIST).query(unreadable),
            400,
            "invalid_payload",
        )
        .await;
    }
    c.expect(
        &app,
        Probe::new("GET", LIST).auth(Auth::None),
        401,
        "unauthorized",
    )
    .await;
    c.expect(
        &app,
        Probe::new("GET", LIST).auth(Auth::Wrong),
        401,
        "unauthorized",
    )
    .await;
    c.expect(
        &app,
        Probe::new("GET", LIST).query("?tenant=nobody"),
        404,
        "unknown_tenant",
    )
    .await;

    // GET /admin/v1/postings/{tenant}/{key}
    let entry = c
        .expect(
            &app,
            Probe::new("GET", SHOW).entry(TENANT, &failed),
            200,
            "",
        )
        .await;
    assert_eq!(entry["state"], "failed");
    c.expect(&app, Probe::new("GET", SHOW), 404, "not_found")
        .await;
    c.expect(
        &app,
        Probe::new("GET", SHOW).entry("nobody", "LS1_nope"),
        404,
        "unknown_tenant",
    )
    .await;
    c.expect(
        &app,
        Probe::new("GET", SHOW)
            .entry(TENANT, &failed)
            .auth(Auth::None),
        401,
        "unauthorized",
    )
    .await;

    // POST …/retry: posted now; again: wrong_state.
    let entry = c
        .expect(
            &app,
            Probe::new("POST", RETRY).entry(TENANT, &failed),
            200,
            "",
        )
        .await;
    assert_eq!(entry["state"], "posted", "{entry}");
    c.expect(
        &app,
        Probe::new("POST", RETRY).entry(TENANT, &failed),
        409,
        "wrong_state",
    )
    .await;
    c.expect(&app, Probe::new("POST", RETRY), 404, "not_found")
        .await;
    c.expect(
        &app,
        Probe::new("POST", RETRY).entry("nobody", "LS1_nope"),
        404,
        "unknown_tenant",
    )
    .await;
    c.expect(
        &app,
        Probe::new("POST", RETRY)
            .entry(TENANT, &to_resolve)
            .auth(Auth::Wrong),
        401,
        "unauthorized",
    )
    .await;

    // POST …/resolve
    let path_note = "Posted by hand at the front desk";
    c.expect(
        &app,
        Probe::new("POST", RESOLVE)
            .entry(TENANT, &to_resolve)
            .note(""),
        400,
        "invalid_body",
    )
    .await;
    c.expect(
        &app,
        Probe::new("POST", RESOLVE)
            .entry(TENANT, &to_resolve)
            .body("not json"),
        400,
        "invalid_body",
    )
    .await;
    c.expect(
        &app,
        Probe::new("POST", RESOLVE)
            .entry(TENANT, &to_resolve)
            .body("{}"),
        400,
        "invalid_body",
    )
    .await;
    c.expect(
        &app,
        Probe::new("POST", RESOLVE).entry(TENANT, &posted).note("x"),
        409,
        "wrong_state",
    )
    .await;
    c.expect(
        &app,
        Probe::new("POST", RESOLVE).note("x"),
        404,
        "not_found",
    )
    .await;
    c.expect(
        &app,
        Probe::new("POST", RESOLVE)
            .entry("nobody", "LS1_nope")
            .note("x"),
        404,
        "unknown_tenant",
    )
    .await;
    c.expect(
        &app,
        Probe::new("POST", RESOLVE)
            .entry(TENANT, &to_resolve)
            .note("x")
            .auth(Auth::None),
        401,
        "unauthorized",
    )
    .await;
    let huge = json!({ "note": "x".repeat(300 * 1024) }).to_string();
    c.expect(
        &app,
        Probe::new("POST", RESOLVE)
            .entry(TENANT, &to_resolve)
            .body(huge),
        413,
        "",
    )
    .await;
    let entry = c
        .expect(
            &app,
            Probe::new("POST", RESOLVE)
                .entry(TENANT, &to_resolve)
                .note(path_note),
            200,
            "",
        )
        .await;
    assert_eq!(entry["state"], "resolved");
    assert_eq!(entry["note"], path_note);

    // 409 busy: someone else holds the entry's lease.
    assert!(
        app.state
            .journal
            .lease(TENANT, &posted, "contract-test", Duration::from_secs(30))
            .await
            .unwrap()
    );
    c.expect(
        &app,
        Probe::new("POST", RETRY).entry(TENANT, &posted),
        409,
        "busy",
    )
    .await;
    c.expect(
        &app,
        Probe::new("POST", RESOLVE).entry(TENANT, &posted).note("x"),
        409,
        "busy",
    )
    .await;
    app.state
        .journal
        .release(TENANT, &posted, "contract-test")
        .await
        .unwrap();

    // GET /admin/v1/reports/daily (the business date of the entries: UTC, 04:00).
    let created =
        chrono::DateTime::from_timestamp_millis(entry["created_ms"].as_i64().unwrap()).unwrap();
    let date = (created - chrono::Duration::hours(4))
        .date_naive()
        .to_string();
    let query = format!("?tenant=demo&date={date}");
    let report = c
        .expect(&app, Probe::new("GET", DAILY).query(&query), 200, "")
        .await;
    assert_eq!(report["postedTotal"], "134.0", "{report}");
    let csv = c
        .expect(
            &app,
            Probe::new("GET", DAILY).query(&query).accept("text/csv"),
            200,
            "",
        )
        .await;
    assert!(
        csv.as_str()
            .unwrap()
            .contains(&format!("demo,{date},resolved,1,67.0,EUR"))
    );
    for bad in [
        "?date=2026-12-02",
        "?tenant=demo",
        "?tenant=demo&date=02-12-2026",
        "?tenant=demo&date=2026-02-30",
        "?tenant=demo&date=262143-12-31",
    ] {
        c.expect(
            &app,
            Probe::new("GET", DAILY).query(bad),
            400,
            "invalid_query",
        )
        .await;
    }
    c.expect(
        &app,
        Probe::new("GET", DAILY).query("?tenant=demo&tenant=x&date=2026-12-02"),
        400,
        "invalid_payload",
    )
    .await;
    c.expect(
        &app,
        Probe::new("GET", DAILY).query("?tenant=nobody&date=2026-12-02"),
        404,
        "unknown_tenant",
    )
    .await;
    c.expect(
        &app,
        Probe::new("GET", DAILY).query(&query).auth(Auth::None),
        401,
        "unauthorized",
    )
    .await;

    // The admin API off: 404 not_found everywhere, even with a token.
    let off = start(settings(|s| s.admin.token = None)).await;
    c.expect(&off, Probe::new("GET", LIST), 404, "not_found")
        .await;
    c.expect(&off, Probe::new("GET", SHOW), 404, "not_found")
        .await;
    c.expect(&off, Probe::new("POST", RETRY), 404, "not_found")
        .await;
    c.expect(
        &off,
        Probe::new("POST", RESOLVE).note("x"),
        404,
        "not_found",
    )
    .await;
    c.expect(
        &off,
        Probe::new("GET", DAILY).query("?tenant=demo&date=2026-12-02"),
        404,
        "not_found",
    )
    .await;

    // The journal unreachable (Redis on a dead port): 503 store_unavailable.
    let dead_port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let down = start(settings(|s| {
        s.idempotency.store = StoreKind::Redis;
        s.idempotency.redis_url =
            Some(SecretString::from(format!("redis://127.0.0.1:{dead_port}")));
    }))
    .await;
    c.expect(&down, Probe::new("GET", LIST), 503, "store_unavailable")
        .await;
    c.expect(&down, Probe::new("GET", SHOW), 503, "store_unavailable")
        .await;
    c.expect(&down, Probe::new("POST", RETRY), 503, "store_unavailable")
        .await;
    c.expect(
        &down,
        Probe::new("POST", RESOLVE).note("x"),
        503,
        "store_unavailable",
    )
    .await;
    c.expect(
        &down,
        Probe::new("GET", DAILY).query("?tenant=demo&date=2026-12-02"),
        503,
        "store_unavailable",
    )
    .await;

    // Exactly what the document lists: each status (and code) produced, and
    // nothing produced that it does not list.
    let documented = c.contract.documented();
    let missing: Vec<_> = documented.difference(&c.seen).collect();
    assert!(
        missing.is_empty(),
        "documented but never produced: {missing:?}"
    );
    let undocumented: Vec<_> = c.seen.difference(&documented).collect();
    assert!(
        undocumented.is_empty(),
        "produced but not documented: {undocumented:?}"
    );
    let statuses = |s: &Seen| -> BTreeSet<(String, String, String)> {
        s.iter()
            .map(|(p, m, st, _)| (p.clone(), m.clone(), st.clone()))
            .collect()
    };
    assert_eq!(statuses(&c.seen), statuses(&documented));
    assert_eq!(
        statuses(&documented).len(),
        26,
        "5 endpoints: {:?}",
        statuses(&documented)
    );
}
