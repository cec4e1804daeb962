//! `chargebridge lightspeed …` against a local stand-in for Lightspeed's PMS API.
//!
//! The stand-in knows the API only from `tests/vendor/lightspeed/pms-api.subset.openapi.json`
//! (cut from Lightspeed's published description by `extract.py`). Every request
//! is checked against it: method and path, the bearer token the operation's
//! security asks for, the query and path parameters, and the JSON body against
//! the operation's requestBody schema (with `jsonschema`). A request that does not
//! conform is answered 400 in Lightspeed's error shape *and* recorded as a
//! violation, which fails the test. Each answer is validated against the
//! operation's response schema for its status before it is sent (statuses the
//! description does not list, 401 and 405, against `pms-apiErrorResponse`).
//!
//! The stand-in's behaviour beyond the description (one provider per location,
//! providers visible only to the OAuth client that created them, 400 for a
//! taken or unknown location) follows Lightspeed's prose documentation; the real
//! API was not called.

#[path = "support/path_template.rs"]
mod path_template;
use path_template::match_template;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::{Arc, Mutex, mpsc};

use actix_web::{App, HttpRequest, HttpResponse, HttpServer, web};
use serde_json::{Map, Value, json};

const BIN: &str = env!("CARGO_BIN_EXE_chargebridge");
const SUBSET: &str = include_str!("vendor/lightspeed/pms-api.subset.openapi.json");

/// The access token of "our" OAuth client, and of another integrator's.
const TOKEN: &str = "tok-ours-8c1f2e9a77";
const OTHER_TOKEN: &str = "tok-theirs-41d0b6";
/// The configured tenants' API keys, and the other integrator's.
const KEY_1: &str = "key-hotel-one-5b7d3a91";
const KEY_2: &str = "key-hotel-two-0e44c2f8";
const OTHER_KEY: &str = "key-of-someone-else-77aa";
const SECRETS: [&str; 5] = [TOKEN, OTHER_TOKEN, KEY_1, KEY_2, OTHER_KEY];

/// A location with revenue centers, one taken by another integrator, one empty.
const LOCATION: i64 = 45454565682155;
const TAKEN_LOCATION: i64 = 45454565682156;
const EMPTY_LOCATION: i64 = 45454565682157;
const UNKNOWN_LOCATION: i64 = 99;
const FIRST_ID: i64 = 3012455645;
const PUBLIC_URL: &str = "https://bridge.example.com/lightspeed";
const ERROR_SCHEMA: &str = "#/components/schemas/pms-apiErrorResponse";

// ---------------------------------------------------------------------------
// The description
// ---------------------------------------------------------------------------

struct Operation {
    method: String,
    template: String,
    id: String,
    spec: Value,
}

struct Description {
    doc: Value,
    operations: Vec<Operation>,
}

impl Description {
    fn load() -> Description {
        let doc: Value = serde_json::from_str(SUBSET).expect("the subset is JSON");
        let mut operations = Vec::new();
        for (template, item) in doc["paths"].as_object().expect("paths") {
            for (method, spec) in item.as_object().expect("path item") {
                if !matches!(method.as_str(), "get" | "put" | "post" | "delete" | "patch") {
                    continue;
                }
                operations.push(Operation {
                    method: method.to_uppercase(),
                    template: template.clone(),
                    id: spec["operationId"].as_str().unwrap_or("?").to_string(),
                    spec: spec.clone(),
                });
            }
        }
        Description { doc, operations }
    }

    /// A validator for a schema of the description: the schema as the root, with
    /// the description's components beside it so `#/components/…` resolves.
    fn validator(&self, schema: &Value) -> jsonschema::Validator {
        let mut root = match schema {
            Value::Object(map) => map.clone(),
            other => {
                let mut map = Map::new();
                map.insert("allOf".into(), json!([other]));
                map
            }
        };
        root.insert("components".into(), self.doc["components"].clone());
        jsonschema::draft202012::options()
            .should_validate_formats(true)
            .build(&Value::Object(root))
            .unwrap_or_else(|e| panic!("not a schema: {e}: {schema}"))
    }

    fn errors(&self, schema: &Value, instance: &Value) -> Vec<(String, String)> {
        let validator = self.validator(schema);
        validator
            .iter_errors(instance)
            .map(|e| (e.instance_path().to_string(), e.to_string()))
            .collect()
    }

    /// The operation whose path template matches, with the captured parameters;
    /// `Err(true)` when the path exists but not for this method.
    fn find(
        &self,
        method: &str,
        path: &str,
    ) -> Result<(&Operation, BTreeMap<String, String>), bool> {
        let mut path_known = false;
        for op in &self.operations {
            let Some(params) = match_template(&op.template, path) else {
                continue;
            };
            path_known = true;
            if op.method == method {
                return Ok((op, params));
            }
        }
        Err(path_known)
    }

    /// The schema an answer of `status` must follow.
    fn response_schema(&self, op: Option<&Operation>, status: u16) -> Option<Value> {
        if let Some(op) = op {
            let content = &op.spec["responses"][status.to_string()]["content"];
            if let Some(content) = content.as_object() {
                return content
                    .get("application/json")
                    .or_else(|| content.get("*/*"))
                    .map(|c| c["schema"].clone());
            }
        }
        (status >= 400).then(|| json!({ "$ref": ERROR_SCHEMA }))
    }
}

/// A parameter's text as the JSON value its schema is checked against.
fn parameter_value(text: &str) -> Value {
    match text.parse::<i64>() {
        Ok(n) => json!(n),
        Err(_) => Value::String(text.to_string()),
    }
}

// ---------------------------------------------------------------------------
// The stand-in
// ---------------------------------------------------------------------------

#[derive(Debug, Clone)]
struct Seen {
    method: String,
    path: String,
    operation: Option<String>,
    body: Option<Value>,
}

struct Stored {
    owner: &'static str,
    provider: Value,
}

#[derive(Default)]
struct State {
    providers: BTreeMap<i64, Stored>,
    next_id: i64,
    violations: Vec<String>,
    seen: Vec<Seen>,
}

struct Fake {
    description: Description,
    state: Mutex<State>,
}

struct Answer {
    status: u16,
    body: Value,
}

/// A request the fake does not carry out; `violation` when it breaks the description.
struct Refusal {
    status: u16,
    body: Value,
    violation: bool,
}

fn lightspeed_error(status: &str, message: &str, subs: &[(&str, &str)]) -> Value {
    let subs: Vec<Value> = subs
        .iter()
        .map(|(field, message)| json!({"field": field, "message": message}))
        .collect();
    json!({
        "status": status,
        "timestamp": "2026-12-02T09:30:00Z",
        "message": message,
        "apiSubExceptions": subs,
    })
}

impl Fake {
    fn new() -> Fake {
        let mut state = State {
            next_id: FIRST_ID,
            ..State::default()
        };
        // Another integrator's provider: invisible to our client, but the
        // location is taken.
        state.providers.insert(
            1000,
            Stored {
                owner: "theirs",
                provider: json!({
                    "id": 1000,
                    "name": "Other PMS",
                    "apiKey": OTHER_KEY,
                    "businessLocationId": TAKEN_LOCATION,
                    "endpoint": "https://other.example.net/pms",
                    "features": ["SEARCH_BY_NAME"],
                }),
            },
        );
        Fake {
            description: Description::load(),
            state: Mutex::new(state),
        }
    }

    fn violation(&self, text: String) {
        self.state.lock().unwrap().violations.push(text);
    }

    fn handle(
        &self,
        method: &str,
        path: &str,
        query: &str,
        authorization: Option<&str>,
        content_type: Option<&str>,
        body: &[u8],
    ) -> Answer {
        let what = format!("{method} {path}");
        let parsed_body: Option<Value> = serde_json::from_slice(body).ok();
        let found = self.description.find(method, path);
        self.state.lock().unwrap().seen.push(Seen {
            method: method.into(),
            path: path.into(),
            operation: found.as_ref().ok().map(|(op, _)| op.id.clone()),
            body: parsed_body.clone(),
        });
        let (op, path_params) = match found {
            Ok(found) => found,
            Err(path_known) => {
                let (status, code) = if path_known {
                    (405, "METHOD_NOT_ALLOWED")
                } else {
                    (404, "NOT_FOUND")
                };
                self.violation(format!("{what}: not an operation of the description"));
                return self.checked(
                    None,
                    status,
                    lightspeed_error(code, "No such operation", &[]),
                );
            }
        };
        let answer =
            match self.check_request(op, &path_params, query, authorization, content_type, body) {
                Err(Refusal {
                    status,
                    body: error,
                    violation,
                }) => {
                    if violation {
                        self.violation(format!(
                            "{what}: {}",
                            error["message"].as_str().unwrap_or("")
                        ));
                        for sub in error["apiSubExceptions"].as_array().into_iter().flatten() {
                            self.violation(format!(
                                "{what}:   {}: {}",
                                sub["field"].as_str().unwrap_or(""),
                                sub["message"].as_str().unwrap_or("")
                            ));
                        }
                    }
                    Answer {
                        status,
                        body: error,
                    }
                }
                Ok(caller) => self.behave(op, caller, &path_params, query, parsed_body),
            };
        self.checked(Some(op), answer.status, answer.body)
    }

    /// The caller ("ours" or "theirs"), or the refusal of a request that breaks
    /// the description (401 for a token the fake does not know).
    fn check_request(
        &self,
        op: &Operation,
        path_params: &BTreeMap<String, String>,
        query: &str,
        authorization: Option<&str>,
        content_type: Option<&str>,
        body: &[u8],
    ) -> Result<&'static str, Refusal> {
        let d = &self.description;
        // Security: OAuth2 bearer token.
        let mut caller = "anonymous";
        if op.spec.get("security").is_some() {
            let token = authorization
                .and_then(|a| a.strip_prefix("Bearer "))
                .map(str::trim);
            caller = match token {
                None | Some("") => {
                    return Err(Refusal {
                        status: 401,
                        body: lightspeed_error(
                            "UNAUTHORIZED",
                            "missing bearer token (the operation's security is OAuth2)",
                            &[],
                        ),
                        violation: true,
                    });
                }
                Some(TOKEN) => "ours",
                Some(OTHER_TOKEN) => "theirs",
                // Well-formed but unknown: Lightspeed's business, not a violation.
                Some(_) => {
                    return Err(Refusal {
                        status: 401,
                        body: lightspeed_error("UNAUTHORIZED", "invalid token", &[]),
                        violation: false,
                    });
                }
            };
        }
        // Parameters.
        let mut problems: Vec<(String, String)> = Vec::new();
        let declared: Vec<&Value> = op.spec["parameters"]
            .as_array()
            .into_iter()
            .flatten()
            .collect();
        let query_pairs: Vec<(String, String)> =
            match web::Query::<Vec<(String, String)>>::from_query(query) {
                Ok(q) => q.into_inner(),
                Err(e) => {
                    problems.push(("query".into(), format!("unparseable: {e}")));
                    Vec::new()
                }
            };
        for (name, _) in &query_pairs {
            let known = declared
                .iter()
                .any(|p| p["in"] == "query" && p["name"] == name.as_str());
            if !known {
                problems.push((
                    name.clone(),
                    "not a query parameter of the operation".into(),
                ));
            }
            if query_pairs.iter().filter(|(n, _)| n == name).count() > 1 {
                problems.push((name.clone(), "given more than once".into()));
            }
        }
        for p in &declared {
            let name = p["name"].as_str().unwrap_or("");
            let value = match p["in"].as_str() {
                Some("path") => path_params.get(name).cloned(),
                Some("query") => query_pairs
                    .iter()
                    .find(|(n, _)| n == name)
                    .map(|(_, v)| v.clone()),
                Some("header") => None,
                _ => None,
            };
            match value {
                None if p["required"] == true => {
                    problems.push((name.into(), "required parameter missing".into()))
                }
                None => {}
                Some(text) => {
                    for (_, e) in d.errors(&p["schema"], &parameter_value(&text)) {
                        problems.push((name.into(), e));
                    }
                }
            }
        }
        // Body.
        match op.spec.get("requestBody") {
            Some(request_body) => {
                let json_type = content_type
                    .map(|c| {
                        c.split(';')
                            .next()
                            .unwrap_or("")
                            .trim()
                            .eq_ignore_ascii_case("application/json")
                    })
                    .unwrap_or(false);
                if body.is_empty() {
                    if request_body["required"] == true {
                        problems.push(("body".into(), "required request body missing".into()));
                    }
                } else if !json_type {
                    problems.push((
                        "body".into(),
                        format!("Content-Type {content_type:?} is not application/json"),
                    ));
                } else {
                    match serde_json::from_slice::<Value>(body) {
                        Err(e) => problems.push(("body".into(), format!("not JSON: {e}"))),
                        Ok(value) => {
                            let schema = &request_body["content"]["application/json"]["schema"];
                            for (at, e) in d.errors(schema, &value) {
                                let field = at.trim_start_matches('/').replace('/', ".");
                                problems.push((
                                    if field.is_empty() {
                                        "body".into()
                                    } else {
                                        field
                                    },
                                    e,
                                ));
                            }
                        }
                    }
                }
            }
            None if !body.is_empty() => {
                problems.push(("body".into(), "the operation takes no request body".into()))
            }
            None => {}
        }
        if problems.is_empty() {
            return Ok(caller);
        }
        let subs: Vec<(&str, &str)> = problems
            .iter()
            .map(|(f, m)| (f.as_str(), m.as_str()))
            .collect();
        Err(Refusal {
            status: 400,
            body: lightspeed_error("BAD_REQUEST", "Validation failed", &subs),
            violation: true,
        })
    }

    /// What Lightspeed does with a valid request.
    fn behave(
        &self,
        op: &Operation,
        caller: &'static str,
        path_params: &BTreeMap<String, String>,
        query: &str,
        body: Option<Value>,
    ) -> Answer {
        let mut state = self.state.lock().unwrap();
        let ok = |body: Value| Answer { status: 200, body };
        let not_found = |what: &str| Answer {
            status: 404,
            body: lightspeed_error("NOT_FOUND", &format!("{what} not found"), &[]),
        };
        let id: Option<i64> = path_params.get("id").and_then(|v| v.parse().ok());
        let owned = |state: &State, id: Option<i64>| {
            id.and_then(|id| state.providers.get(&id))
                .filter(|s| s.owner == caller)
                .map(|s| s.provider.clone())
        };
        match op.id.as_str() {
            "pms-apiGetProviders" => {
                let filter: Option<i64> = web::Query::<Vec<(String, String)>>::from_query(query)
                    .ok()
                    .and_then(|q| {
                        q.into_inner()
                            .into_iter()
                            .find(|(n, _)| n == "businessLocationId")
                    })
                    .and_then(|(_, v)| v.parse().ok());
                let list: Vec<Value> = state
                    .providers
                    .values()
                    .filter(|s| s.owner == caller)
                    .filter(|s| filter.is_none_or(|l| s.provider["businessLocationId"] == json!(l)))
                    .map(|s| s.provider.clone())
                    .collect();
                ok(Value::Array(list))
            }
            "pms-apiCreateProvider" => {
                let mut provider = body.unwrap_or_default();
                let location = provider["businessLocationId"].as_i64().unwrap_or(0);
                if ![LOCATION, TAKEN_LOCATION, EMPTY_LOCATION].contains(&location) {
                    return Answer {
                        status: 400,
                        body: lightspeed_error(
                            "BAD_REQUEST",
                            "Validation failed",
                            &[("businessLocationId", "business location does not exist")],
                        ),
                    };
                }
                if state
                    .providers
                    .values()
                    .any(|s| s.provider["businessLocationId"] == json!(location))
                {
                    return Answer {
                        status: 400,
                        body: lightspeed_error(
                            "BAD_REQUEST",
                            "Validation failed",
                            &[(
                                "businessLocationId",
                                "A PMS provider is already configured for this business location",
                            )],
                        ),
                    };
                }
                let id = state.next_id;
                state.next_id += 1;
                provider["id"] = json!(id);
                state.providers.insert(
                    id,
                    Stored {
                        owner: caller,
                        provider: provider.clone(),
                    },
                );
                ok(provider)
            }
            "pms-apiGetProvider" => match owned(&state, id) {
                Some(p) => ok(p),
                None => not_found("Provider"),
            },
            "pms-apiUpdateProvider" => {
                let Some(mut provider) = owned(&state, id) else {
                    return not_found("Provider");
                };
                let body = body.unwrap_or_default();
                for key in ["name", "endpoint", "apiKey", "features"] {
                    provider[key] = body[key].clone();
                }
                if let Some(stored) = id.and_then(|id| state.providers.get_mut(&id)) {
                    stored.provider = provider.clone();
                }
                ok(provider)
            }
            "pms-apiDeleteProvider" => match owned(&state, id) {
                Some(_) => {
                    let id = id.unwrap_or_default();
                    state.providers.remove(&id);
                    ok(json!(id))
                }
                None => not_found("Provider"),
            },
            "pms-apiGetRevenueCenters" => {
                match path_params
                    .get("businessLocationId")
                    .and_then(|v| v.parse::<i64>().ok())
                {
                    Some(LOCATION) => ok(json!([
                        {"id": 343243933, "name": "Bar"},
                        {"id": 343243934, "name": "Terrace \"Sud\""},
                    ])),
                    Some(TAKEN_LOCATION) => ok(json!([{"id": 1, "name": "Main"}])),
                    Some(EMPTY_LOCATION) => ok(json!([])),
                    _ => not_found("Business location"),
                }
            }
            other => Answer {
                status: 500,
                body: lightspeed_error(
                    "INTERNAL_SERVER_ERROR",
                    &format!("no behaviour for {other}"),
                    &[],
                ),
            },
        }
    }

    /// The answer, if it follows the description's schema for its status; a
    /// violation and a 500 otherwise.
    fn checked(&self, op: Option<&Operation>, status: u16, body: Value) -> Answer {
        let where_ = op.map(|o| o.id.as_str()).unwrap_or("(no operation)");
        let Some(schema) = self.description.response_schema(op, status) else {
            self.violation(format!(
                "{where_}: the fake answered {status}, which the description does not list"
            ));
            return Answer {
                status: 500,
                body: lightspeed_error("INTERNAL_SERVER_ERROR", "fake answer not described", &[]),
            };
        };
        let errors = self.description.errors(&schema, &body);
        if !errors.is_empty() {
            self.violation(format!("{where_}: the fake's own {status} answer does not follow the description: {errors:?}"));
            return Answer {
                status: 500,
                body: lightspeed_error("INTERNAL_SERVER_ERROR", "fake answer invalid", &[]),
            };
        }
        Answer { status, body }
    }
}

async fn serve(req: HttpRequest, body: web::Bytes, fake: web::Data<Fake>) -> HttpResponse {
    let header = |name: &str| req.headers().get(name).and_then(|v| v.to_str().ok());
    let answer = fake.handle(
        req.method().as_str(),
        req.path(),
        req.query_string(),
        header("authorization"),
        header("content-type"),
        &body,
    );
    let status = actix_web::http::StatusCode::from_u16(answer.status)
        .unwrap_or(actix_web::http::StatusCode::INTERNAL_SERVER_ERROR);
    HttpResponse::build(status)
        .content_type("application/json")
        .body(answer.body.to_string())
}

struct Running {
    fake: Arc<Fake>,
    base: String,
    handle: actix_web::dev::ServerHandle,
}

impl Running {
    fn start() -> Running {
        let fake = Arc::new(Fake::new());
        let data = web::Data::from(fake.clone());
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            actix_web::rt::System::new().block_on(async move {
                let server = HttpServer::new(move || {
                    App::new()
                        .app_data(data.clone())
                        .default_service(web::to(serve))
                })
                .workers(1)
                .disable_signals()
                .bind(("127.0.0.1", 0))
                .expect("bind the fake");
                let port = server.addrs()[0].port();
                let server = server.run();
                tx.send((port, server.handle())).expect("report the port");
                let _ = server.await;
            });
        });
        let (port, handle) = rx.recv().expect("the fake starts");
        Running {
            fake,
            base: format!("http://127.0.0.1:{port}"),
            handle,
        }
    }

    fn violations(&self) -> Vec<String> {
        self.fake.state.lock().unwrap().violations.clone()
    }

    fn assert_conforming(&self) {
        let v = self.violations();
        assert!(
            v.is_empty(),
            "requests broke the description:\n{}",
            v.join("\n")
        );
    }

    fn seen(&self) -> Vec<Seen> {
        self.fake.state.lock().unwrap().seen.clone()
    }

    fn ours(&self) -> Vec<Value> {
        let state = self.fake.state.lock().unwrap();
        state
            .providers
            .values()
            .filter(|s| s.owner == "ours")
            .map(|s| s.provider.clone())
            .collect()
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        // The stop command is sent at once; the returned future only waits.
        drop(self.handle.stop(false));
    }
}

// ---------------------------------------------------------------------------
// The binary
// ---------------------------------------------------------------------------

fn config_text() -> String {
    format!(
        r#"
[server]
public_url = "{PUBLIC_URL}"

[[tenants]]
id = "hotel-one"
api_key = "{KEY_1}"
currency = "EUR"
pms = "m"

[[tenants]]
id = "hotel-two"
api_key = "{KEY_2}"
currency = "EUR"
pms = "m"
mirroring = true
mapping = {{ revenue_centers = {{ "343243933" = "OUTLET-BAR", "555" = "GONE" }} }}

[pms.m]
adapter = "memory"
"#
    )
}

struct Setup {
    fake: Running,
    _dir: tempfile::TempDir,
    config: PathBuf,
}

fn setup() -> Setup {
    setup_with(&config_text())
}

fn setup_with(config: &str) -> Setup {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("chargebridge.toml");
    std::fs::write(&path, config).unwrap();
    Setup {
        fake: Running::start(),
        _dir: dir,
        config: path,
    }
}

#[derive(Debug)]
struct Run {
    code: i32,
    stdout: String,
    stderr: String,
}

impl Setup {
    /// `chargebridge lightspeed --base-url <fake> --config <file> ARGS` with our token.
    fn run(&self, args: &[&str]) -> Run {
        self.run_with(args, Some(TOKEN), true)
    }

    fn run_with(&self, args: &[&str], token: Option<&str>, with_config: bool) -> Run {
        let mut cmd = Command::new(BIN);
        cmd.args(["lightspeed", "--base-url", &self.fake.base]);
        if with_config {
            cmd.arg("--config").arg(&self.config);
        }
        cmd.args(args);
        for (name, _) in std::env::vars() {
            if name.starts_with("CHARGEBRIDGE") || name == "LIGHTSPEED_ACCESS_TOKEN" {
                cmd.env_remove(name);
            }
        }
        if let Some(token) = token {
            cmd.env("LIGHTSPEED_ACCESS_TOKEN", token);
        }
        let out = cmd.output().expect("run chargebridge");
        let run = Run {
            code: out.status.code().unwrap_or(-1),
            stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
        };
        for secret in SECRETS {
            assert!(
                !run.stdout.contains(secret) && !run.stderr.contains(secret),
                "a secret was printed by {args:?}:\n{run:#?}"
            );
        }
        run
    }

    fn create(&self, extra: &[&str]) -> Run {
        let location = LOCATION.to_string();
        let mut args = vec![
            "providers",
            "create",
            "--tenant",
            "hotel-one",
            "--business-location-id",
            &location,
        ];
        args.extend_from_slice(extra);
        let run = self.run(&args);
        assert_eq!(run.code, 0, "{run:#?}");
        run
    }
}

fn assert_no_secrets(out: &std::process::Output) {
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    for secret in SECRETS {
        assert!(!text.contains(secret), "a secret was printed: {text}");
    }
}

fn ok(run: &Run) {
    assert_eq!(run.code, 0, "{run:#?}");
}

fn operations(seen: &[Seen]) -> Vec<String> {
    seen.iter()
        .map(|s| {
            s.operation
                .clone()
                .unwrap_or_else(|| format!("{} {}", s.method, s.path))
        })
        .collect()
}

// ---------------------------------------------------------------------------
// Tests
// ---------------------------------------------------------------------------

#[test]
fn create_registers_the_tenant_at_its_business_location() {
    let s = setup();
    let run = s.create(&[
        "--feature",
        "MULTI_PAYMENTS",
        "--feature",
        "partial_payments",
    ]);
    assert!(
        run.stdout.contains(&format!(
            "Registered PMS provider {FIRST_ID} at business location {LOCATION} for tenant `hotel-one`."
        )),
        "{run:#?}"
    );
    for advice in [
        "SEARCH_BY_NAME (always on): staff pick the guest from a list",
        "MULTI_PAYMENTS: chargebridge supports it",
        "PARTIAL_PAYMENTS: chargebridge supports it",
        "SERVICE_CHARGE is off; enabling it later needs `providers update --feature SERVICE_CHARGE",
        "Back Office",
    ] {
        assert!(
            run.stderr.contains(advice),
            "missing {advice:?}:\n{}",
            run.stderr
        );
    }
    let ours = s.fake.ours();
    assert_eq!(ours.len(), 1);
    assert_eq!(ours[0]["apiKey"], KEY_1);
    assert_eq!(ours[0]["endpoint"], PUBLIC_URL);
    assert_eq!(ours[0]["name"], "chargebridge");
    assert_eq!(ours[0]["businessLocationId"], json!(LOCATION));
    assert_eq!(
        ours[0]["features"],
        json!(["SEARCH_BY_NAME", "MULTI_PAYMENTS", "PARTIAL_PAYMENTS"])
    );
    assert_eq!(
        operations(&s.fake.seen()),
        ["pms-apiGetProviders", "pms-apiCreateProvider"],
        "one look for an existing provider, then the registration"
    );

    // A second registration is stopped before it is sent, naming the first.
    let again = s.run(&[
        "providers",
        "create",
        "--tenant",
        "hotel-one",
        "--business-location-id",
        &LOCATION.to_string(),
    ]);
    assert_eq!(again.code, 1, "{again:#?}");
    assert!(
        again.stderr.contains(&format!(
            "business location {LOCATION} already has PMS provider {FIRST_ID} \"chargebridge\" \
             ({PUBLIC_URL}, for tenant `hotel-one`)"
        )),
        "{again:#?}"
    );
    let creates = operations(&s.fake.seen())
        .iter()
        .filter(|o| *o == "pms-apiCreateProvider")
        .count();
    assert_eq!(creates, 1);
    s.fake.assert_conforming();
}

#[test]
fn create_prints_json_for_scripts_without_the_api_key() {
    let s = setup();
    let run = s.create(&["--json", "--name", "Bridge Amsterdam"]);
    let value: Value = serde_json::from_str(&run.stdout).expect("stdout is JSON");
    assert_eq!(
        value,
        json!({
            "id": FIRST_ID,
            "businessLocationId": LOCATION,
            "name": "Bridge Amsterdam",
            "endpoint": PUBLIC_URL,
            "features": ["SEARCH_BY_NAME"],
            "tenant": "hotel-one",
        })
    );
    // Advice goes to stderr, so stdout stays parseable.
    assert!(run.stderr.contains("SEARCH_BY_NAME (always on)"));
    s.fake.assert_conforming();
}

#[test]
fn list_prints_a_table_and_json() {
    let s = setup();
    s.create(&["--feature", "MULTI_PAYMENTS"]);

    let table = s.run(&["providers", "list"]);
    ok(&table);
    let lines: Vec<&str> = table.stdout.lines().collect();
    assert_eq!(lines.len(), 2, "{}", table.stdout);
    for column in ["ID", "LOCATION", "NAME", "ENDPOINT", "FEATURES", "TENANT"] {
        assert!(lines[0].contains(column), "{}", lines[0]);
    }
    let cells: Vec<&str> = lines[1].split_whitespace().collect();
    assert_eq!(
        cells,
        [
            FIRST_ID.to_string().as_str(),
            LOCATION.to_string().as_str(),
            "chargebridge",
            PUBLIC_URL,
            "SEARCH_BY_NAME,MULTI_PAYMENTS",
            "hotel-one"
        ]
    );
    // The other integrator's provider is not ours to see.
    assert!(!table.stdout.contains("Other PMS"));

    let json_run = s.run(&[
        "providers",
        "list",
        "--json",
        "--business-location-id",
        &LOCATION.to_string(),
    ]);
    ok(&json_run);
    let list: Value = serde_json::from_str(&json_run.stdout).expect("JSON");
    assert_eq!(
        list,
        json!([{
            "id": FIRST_ID,
            "businessLocationId": LOCATION,
            "name": "chargebridge",
            "endpoint": PUBLIC_URL,
            "features": ["SEARCH_BY_NAME", "MULTI_PAYMENTS"],
            "tenant": "hotel-one",
        }])
    );
    let last = s.fake.seen().pop().unwrap();
    assert_eq!(last.path, "/pms/v1/providers");

    let empty = s.run(&[
        "providers",
        "list",
        "--business-location-id",
        &EMPTY_LOCATION.to_string(),
    ]);
    ok(&empty);
    assert_eq!(
        empty.stdout,
        format!(
            "No PMS provider registered by this OAuth client at business location {EMPTY_LOCATION}.\n"
        )
    );
    let none = s.run(&[
        "providers",
        "list",
        "--json",
        "--business-location-id",
        &EMPTY_LOCATION.to_string(),
    ]);
    assert_eq!(none.stdout.trim(), "[]");
    s.fake.assert_conforming();
}

#[test]
fn update_replaces_features_and_keeps_what_is_not_given() {
    let s = setup();
    s.create(&["--name", "Bridge"]);
    let location = LOCATION.to_string();
    let run = s.run(&[
        "providers",
        "update",
        "--tenant",
        "hotel-one",
        "--business-location-id",
        &location,
        "--feature",
        "SERVICE_CHARGE,MULTI_PAYMENTS",
    ]);
    ok(&run);
    assert!(
        run.stdout.contains(&format!(
            "Updated PMS provider {FIRST_ID} at business location {LOCATION}"
        )),
        "{run:#?}"
    );
    assert!(
        run.stdout.contains(
            "features: SEARCH_BY_NAME,SERVICE_CHARGE,MULTI_PAYMENTS (was SEARCH_BY_NAME)\n"
        ),
        "{run:#?}"
    );
    assert!(run.stdout.contains("apiKey: unchanged"), "{run:#?}");
    assert!(
        run.stderr.contains("SERVICE_CHARGE is being enabled")
            && run
                .stderr
                .contains("toggle the PMS Server of the room-charge payment method"),
        "{run:#?}"
    );
    let stored = &s.fake.ours()[0];
    assert_eq!(
        stored["features"],
        json!(["SEARCH_BY_NAME", "SERVICE_CHARGE", "MULTI_PAYMENTS"])
    );
    assert_eq!(stored["name"], "Bridge", "the name is kept");

    // No --feature: the registered features stay; the endpoint changes.
    let run = s.run(&[
        "providers",
        "update",
        "--tenant",
        "hotel-one",
        "--business-location-id",
        &location,
        "--endpoint",
        "https://new.example.com/lightspeed",
        "--json",
    ]);
    ok(&run);
    let value: Value = serde_json::from_str(&run.stdout).expect("JSON");
    assert_eq!(value["endpoint"], "https://new.example.com/lightspeed");
    assert_eq!(
        value["features"],
        json!(["SEARCH_BY_NAME", "SERVICE_CHARGE", "MULTI_PAYMENTS"])
    );
    assert!(value.get("apiKey").is_none());

    // By id, the PUT body carries what the description requires and no location.
    let run = s.run(&[
        "providers",
        "update",
        "--id",
        &FIRST_ID.to_string(),
        "--tenant",
        "hotel-one",
        "--business-location-id",
        &location,
        "--feature",
        "SEARCH_BY_NAME",
    ]);
    ok(&run);
    assert!(
        run.stderr.contains("SERVICE_CHARGE is being disabled"),
        "{run:#?}"
    );
    assert!(
        run.stdout.contains(
            "features: SEARCH_BY_NAME (was SEARCH_BY_NAME,SERVICE_CHARGE,MULTI_PAYMENTS)"
        ),
        "{run:#?}"
    );
    let put = s
        .fake
        .seen()
        .into_iter()
        .rfind(|r| r.method == "PUT")
        .expect("a PUT");
    assert_eq!(put.path, format!("/pms/v1/providers/{FIRST_ID}"));
    let body = put.body.expect("a JSON body");
    let mut keys: Vec<&String> = body.as_object().unwrap().keys().collect();
    keys.sort();
    assert_eq!(keys, ["apiKey", "endpoint", "features", "name"]);
    assert_eq!(body["features"], json!(["SEARCH_BY_NAME"]));

    // An id at another location is refused before anything is changed.
    let run = s.run(&[
        "providers",
        "update",
        "--id",
        &FIRST_ID.to_string(),
        "--tenant",
        "hotel-one",
        "--business-location-id",
        &EMPTY_LOCATION.to_string(),
    ]);
    assert_eq!(run.code, 1, "{run:#?}");
    assert!(run.stderr.contains(&format!(
        "belongs to business location {LOCATION}, not {EMPTY_LOCATION}"
    )));
    s.fake.assert_conforming();
}

#[test]
fn mirroring_follows_the_tenant_and_a_disagreement_is_warned() {
    let s = setup();
    // hotel-two has mirroring = true: MIRRORING is registered without a flag.
    let run = s.run(&[
        "providers",
        "create",
        "--tenant",
        "hotel-two",
        "--business-location-id",
        &LOCATION.to_string(),
    ]);
    ok(&run);
    assert!(
        run.stderr
            .contains("MIRRORING added: tenant `hotel-two` has mirroring = true"),
        "{run:#?}"
    );
    assert_eq!(
        s.fake.ours()[0]["features"],
        json!(["SEARCH_BY_NAME", "MIRRORING"])
    );
    assert_eq!(s.fake.ours()[0]["apiKey"], KEY_2);

    // hotel-one has mirroring = false: asking for MIRRORING is warned about.
    let run = s.run(&[
        "providers",
        "create",
        "--tenant",
        "hotel-one",
        "--business-location-id",
        &EMPTY_LOCATION.to_string(),
        "--feature",
        "MIRRORING",
    ]);
    ok(&run);
    assert!(
        run.stderr.contains(
            "warning: MIRRORING is requested but tenant `hotel-one` has mirroring = false"
        ),
        "{run:#?}"
    );
    s.fake.assert_conforming();
}

#[test]
fn revenue_centers_print_a_table_and_a_toml_template() {
    let s = setup();
    let run = s.run(&[
        "revenue-centers",
        "--business-location-id",
        &LOCATION.to_string(),
    ]);
    ok(&run);
    let expected_template = "[tenants.mapping.revenue_centers]\n\
         \"343243933\" = \"\"  # Bar\n\
         \"343243934\" = \"\"  # Terrace \"Sud\"\n";
    assert!(
        run.stdout
            .starts_with("ID         NAME\n343243933  Bar\n343243934  Terrace \"Sud\"\n"),
        "{}",
        run.stdout
    );
    assert!(run.stdout.ends_with(expected_template), "{}", run.stdout);
    assert!(run.stdout.contains(&format!(
        "# Revenue centers of business location {LOCATION}"
    )));

    // The template pastes under a [[tenants]] entry as valid configuration.
    let template: String = run.stdout.lines().skip(3).collect::<Vec<_>>().join("\n");
    let pasted = format!(
        "[[tenants]]\nid = \"h\"\napi_key = \"k\"\ncurrency = \"EUR\"\npms = \"m\"\n{template}\n\
         [pms.m]\nadapter = \"memory\"\n"
    );
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("pasted.toml");
    std::fs::write(&path, pasted).unwrap();
    let settings = chargebridge::config::Settings::load_with_env(Some(Path::new(&path)), [])
        .expect("the pasted template loads");
    let keys: Vec<&String> = settings.tenants[0].mapping.revenue_centers.keys().collect();
    assert_eq!(keys, ["343243933", "343243934"]);

    // With a tenant, its mapping fills the template; stale keys are warned about.
    let run = s.run(&[
        "revenue-centers",
        "--business-location-id",
        &LOCATION.to_string(),
        "--tenant",
        "hotel-two",
    ]);
    ok(&run);
    assert!(
        run.stdout
            .contains("\"343243933\" = \"OUTLET-BAR\"  # Bar\n"),
        "{}",
        run.stdout
    );
    assert!(
        run.stderr.contains("maps revenue center \"555\""),
        "{}",
        run.stderr
    );

    let run = s.run(&[
        "revenue-centers",
        "--json",
        "--business-location-id",
        &LOCATION.to_string(),
    ]);
    ok(&run);
    let value: Value = serde_json::from_str(&run.stdout).expect("JSON");
    assert_eq!(
        value,
        json!([{"id": "343243933", "name": "Bar"}, {"id": "343243934", "name": "Terrace \"Sud\""}])
    );

    let run = s.run(&[
        "revenue-centers",
        "--business-location-id",
        &EMPTY_LOCATION.to_string(),
    ]);
    ok(&run);
    assert!(run.stdout.contains(&format!(
        "Business location {EMPTY_LOCATION} has no revenue centers."
    )));

    let run = s.run(&[
        "revenue-centers",
        "--business-location-id",
        &UNKNOWN_LOCATION.to_string(),
    ]);
    assert_eq!(run.code, 1, "{run:#?}");
    assert!(
        run.stderr
            .contains("Lightspeed found nothing (404): Business location not found"),
        "{run:#?}"
    );
    s.fake.assert_conforming();
}

#[test]
fn delete_requires_yes_and_removes_the_registration() {
    let s = setup();
    s.create(&[]);
    let before = s.fake.seen().len();
    let run = s.run(&[
        "providers",
        "delete",
        "--business-location-id",
        &LOCATION.to_string(),
    ]);
    assert_eq!(run.code, 2, "{run:#?}");
    assert!(run.stderr.contains("pass --yes"), "{run:#?}");
    assert_eq!(s.fake.seen().len(), before, "nothing sent without --yes");
    assert_eq!(s.fake.ours().len(), 1);

    let run = s.run(&[
        "providers",
        "delete",
        "--business-location-id",
        &LOCATION.to_string(),
        "--yes",
    ]);
    ok(&run);
    assert_eq!(
        run.stdout,
        format!(
            "Deleted PMS provider {FIRST_ID} \"chargebridge\" at business location {LOCATION}.\n"
        )
    );
    assert!(s.fake.ours().is_empty());
    let ops = operations(&s.fake.seen());
    assert_eq!(
        ops[ops.len() - 2..],
        ["pms-apiGetProviders", "pms-apiDeleteProvider"]
    );

    // By id, with JSON; then the id is gone: Lightspeed's 404, exit 1.
    s.create(&[]);
    let second = (FIRST_ID + 1).to_string();
    let run = s.run(&["providers", "delete", "--id", &second, "--yes", "--json"]);
    ok(&run);
    let value: Value = serde_json::from_str(&run.stdout).expect("JSON");
    assert_eq!(
        value,
        json!({"deleted": FIRST_ID + 1, "businessLocationId": LOCATION, "name": "chargebridge"})
    );
    let run = s.run(&["providers", "delete", "--id", &second, "--yes"]);
    assert_eq!(run.code, 1, "{run:#?}");
    assert!(
        run.stderr
            .contains("Lightspeed found nothing (404): Provider not found"),
        "{run:#?}"
    );
    let run = s.run(&[
        "providers",
        "delete",
        "--business-location-id",
        &LOCATION.to_string(),
        "--yes",
    ]);
    assert_eq!(run.code, 1, "{run:#?}");
    assert!(run.stderr.contains(&format!(
        "no PMS provider of this OAuth client at business location {LOCATION}"
    )));
    s.fake.assert_conforming();
}

#[test]
fn lightspeed_refusals_are_readable_and_exit_1() {
    let s = setup();
    // Another integrator's provider holds the location; it is not listed to us,
    // so the registration is sent and refused.
    let run = s.run(&[
        "providers",
        "create",
        "--tenant",
        "hotel-one",
        "--business-location-id",
        &TAKEN_LOCATION.to_string(),
    ]);
    assert_eq!(run.code, 1, "{run:#?}");
    assert!(
        run.stderr.contains(
            "chargebridge: Lightspeed refused (400): Validation failed; businessLocationId: A PMS \
             provider is already configured for this business location"
        ),
        "{run:#?}"
    );
    assert!(run.stdout.is_empty(), "{run:#?}");

    let run = s.run(&[
        "providers",
        "create",
        "--json",
        "--tenant",
        "hotel-one",
        "--business-location-id",
        &UNKNOWN_LOCATION.to_string(),
    ]);
    assert_eq!(run.code, 1, "{run:#?}");
    assert!(
        run.stderr.contains("Lightspeed refused (400): Validation failed; businessLocationId: business location does not exist"),
        "{run:#?}"
    );
    assert!(run.stdout.is_empty(), "{run:#?}");

    // A token Lightspeed does not accept.
    let run = s.run_with(&["providers", "list"], Some("tok-expired-3"), true);
    assert_eq!(run.code, 1, "{run:#?}");
    assert!(
        run.stderr
            .contains("Lightspeed refused the access token (401): invalid token")
            && run.stderr.contains("propertymanagement"),
        "{run:#?}"
    );
    assert!(!run.stderr.contains("tok-expired-3"));

    // Nothing listens: exit 1, a one-line reason.
    let closed = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let out = Command::new(BIN)
        .args([
            "lightspeed",
            "--base-url",
            &format!("http://127.0.0.1:{closed}"),
            "providers",
            "list",
        ])
        .env("LIGHTSPEED_ACCESS_TOKEN", TOKEN)
        .env_remove("CHARGEBRIDGE_CONFIG")
        .output()
        .unwrap();
    assert_no_secrets(&out);
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("cannot reach Lightspeed: could not connect"),
        "{err}"
    );
    s.fake.assert_conforming();
}

#[test]
fn a_missing_token_is_a_configuration_error() {
    let s = setup();
    let run = s.run_with(&["providers", "list"], None, true);
    assert_eq!(run.code, 2, "{run:#?}");
    assert!(
        run.stderr
            .contains("the environment variable LIGHTSPEED_ACCESS_TOKEN is not set"),
        "{run:#?}"
    );
    let run = s.run_with(
        &[
            "--token-env",
            "CB_TEST_SURELY_UNSET_TOKEN",
            "providers",
            "list",
        ],
        Some(TOKEN),
        true,
    );
    assert_eq!(run.code, 2, "{run:#?}");
    assert!(
        run.stderr.contains("CB_TEST_SURELY_UNSET_TOKEN is not set"),
        "{run:#?}"
    );
    let run = s.run_with(
        &["revenue-centers", "--business-location-id", "1"],
        Some("  "),
        true,
    );
    assert_eq!(run.code, 2, "{run:#?}");
    assert!(
        run.stderr.contains("LIGHTSPEED_ACCESS_TOKEN is empty"),
        "{run:#?}"
    );
    assert!(s.fake.seen().is_empty(), "nothing was sent");
}

#[test]
fn usage_and_configuration_errors_exit_2_before_anything_is_sent() {
    let s = setup();
    let location = LOCATION.to_string();
    let create = |extra: &[&str]| {
        let mut args = vec!["providers", "create", "--business-location-id", &location];
        args.extend_from_slice(extra);
        s.run(&args)
    };
    for (args, expected) in [
        (vec!["--tenant", "nope"], "no tenant with id `nope`"),
        (
            vec![
                "--tenant",
                "hotel-one",
                "--endpoint",
                "http://bridge.example.com/lightspeed",
            ],
            "is plain http",
        ),
        (
            vec![
                "--tenant",
                "hotel-one",
                "--endpoint",
                "https://bridge.example.com/lightspeed?x=1",
            ],
            "may not have a query",
        ),
        (
            vec!["--tenant", "hotel-one", "--feature", "NOT_A_FEATURE"],
            "invalid value 'NOT_A_FEATURE'",
        ),
        (
            vec!["--tenant", "hotel-one", "--name", " "],
            "--name must have 1 to 255 characters",
        ),
    ] {
        let run = create(&args);
        assert_eq!(run.code, 2, "{args:?}: {run:#?}");
        assert!(run.stderr.contains(expected), "{args:?}: {run:#?}");
    }
    assert!(
        create(&["--tenant", "nope"])
            .stderr
            .contains("(configured: hotel-one, hotel-two)")
    );

    // Without a configuration, create has no tenant to register.
    let run = s.run_with(
        &[
            "providers",
            "create",
            "--tenant",
            "hotel-one",
            "--business-location-id",
            &location,
        ],
        Some(TOKEN),
        false,
    );
    assert_eq!(run.code, 2, "{run:#?}");
    assert!(
        run.stderr
            .contains("needs the configuration: pass --config FILE or set CHARGEBRIDGE_CONFIG")
    );

    // No public_url and no --endpoint.
    let bare = setup_with(&config_text().replace(&format!("public_url = \"{PUBLIC_URL}\""), ""));
    let run = bare.run(&[
        "providers",
        "create",
        "--tenant",
        "hotel-one",
        "--business-location-id",
        &location,
    ]);
    assert_eq!(run.code, 2, "{run:#?}");
    assert!(run.stderr.contains("set server.public_url"), "{run:#?}");

    // A remote plain-http base URL would carry the token unencrypted.
    let out = Command::new(BIN)
        .args([
            "lightspeed",
            "--base-url",
            "http://api.example.com",
            "providers",
            "list",
        ])
        .env("LIGHTSPEED_ACCESS_TOKEN", TOKEN)
        .env_remove("CHARGEBRIDGE_CONFIG")
        .output()
        .unwrap();
    assert_no_secrets(&out);
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("is plain http"));
    let out = Command::new(BIN)
        .args([
            "lightspeed",
            "--base-url",
            "https://x",
            "--environment",
            "production",
            "providers",
            "list",
        ])
        .env("LIGHTSPEED_ACCESS_TOKEN", TOKEN)
        .output()
        .unwrap();
    assert_no_secrets(&out);
    assert_eq!(
        out.status.code(),
        Some(2),
        "--base-url and --environment exclude each other"
    );

    assert!(
        s.fake.seen().is_empty(),
        "nothing was sent: {:?}",
        s.fake.seen()
    );

    // --allow-http lets a test endpoint through, with a warning.
    let run = create(&[
        "--tenant",
        "hotel-one",
        "--endpoint",
        "http://127.0.0.1:8080/lightspeed",
        "--allow-http",
    ]);
    ok(&run);
    assert!(
        run.stderr
            .contains("warning: --endpoint `http://127.0.0.1:8080/lightspeed` is plain http")
    );
    assert_eq!(
        s.fake.ours()[0]["endpoint"],
        "http://127.0.0.1:8080/lightspeed"
    );
    s.fake.assert_conforming();
}

#[test]
fn every_operation_of_the_description_is_used_by_the_commands() {
    let s = setup();
    let location = LOCATION.to_string();
    let id = FIRST_ID.to_string();
    s.create(&[]);
    ok(&s.run(&["providers", "list"]));
    ok(&s.run(&[
        "providers",
        "update",
        "--id",
        &id,
        "--tenant",
        "hotel-one",
        "--business-location-id",
        &location,
    ]));
    ok(&s.run(&["revenue-centers", "--business-location-id", &location]));
    ok(&s.run(&["providers", "delete", "--id", &id, "--yes"]));
    let mut used: Vec<String> = operations(&s.fake.seen());
    used.sort();
    used.dedup();
    let mut described: Vec<String> = s
        .fake
        .fake
        .description
        .operations
        .iter()
        .map(|o| o.id.clone())
        .collect();
    described.sort();
    assert_eq!(used, described);
    assert_eq!(described.len(), 6);
    s.fake.assert_conforming();
}

#[test]
fn the_fake_flags_requests_that_break_the_description() {
    let fake = Running::start();
    let base = fake.base.clone();
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let valid = json!({
        "businessLocationId": LOCATION,
        "name": "chargebridge",
        "endpoint": PUBLIC_URL,
        "apiKey": KEY_1,
        "features": ["SEARCH_BY_NAME"],
    });
    let with = |key: &str, value: Value| {
        let mut body = valid.clone();
        body[key] = value;
        body
    };
    let mut missing_location = valid.clone();
    missing_location
        .as_object_mut()
        .unwrap()
        .remove("businessLocationId");
    let bearer = Some(TOKEN);
    // (method, path and query, token, body, the violation expected)
    type Case = (
        &'static str,
        String,
        Option<&'static str>,
        Option<Value>,
        &'static str,
    );
    let cases: Vec<Case> = vec![
        (
            "POST",
            "/pms/v1/providers".into(),
            bearer,
            Some(with("features", json!(["NOT_A_FEATURE"]))),
            "features.0",
        ),
        (
            "POST",
            "/pms/v1/providers".into(),
            bearer,
            Some(missing_location),
            "\"businessLocationId\" is a required property",
        ),
        (
            "POST",
            "/pms/v1/providers".into(),
            bearer,
            Some(with("features", json!(["MIRRORING", "MIRRORING"]))),
            "unique",
        ),
        (
            "POST",
            "/pms/v1/providers".into(),
            bearer,
            Some(with("name", json!(""))),
            " name:",
        ),
        (
            "POST",
            "/pms/v1/providers".into(),
            bearer,
            Some(with("businessLocationId", json!("45454565682155"))),
            "businessLocationId",
        ),
        (
            "POST",
            "/pms/v1/providers".into(),
            bearer,
            None,
            "required request body missing",
        ),
        (
            "GET",
            "/pms/v1/providers".into(),
            None,
            None,
            "missing bearer token",
        ),
        (
            "GET",
            "/pms/v1/providers?businessLocationId=abc".into(),
            bearer,
            None,
            "businessLocationId",
        ),
        (
            "GET",
            "/pms/v1/providers?location=1".into(),
            bearer,
            None,
            "not a query parameter",
        ),
        ("GET", "/pms/v1/providers/abc".into(), bearer, None, "id:"),
        (
            "DELETE",
            "/pms/v1/providers/1".into(),
            bearer,
            Some(json!({"x": 1})),
            "takes no request body",
        ),
        (
            "PATCH",
            "/pms/v1/providers/1".into(),
            bearer,
            None,
            "not an operation of the description",
        ),
        (
            "GET",
            "/pms/v2/providers".into(),
            bearer,
            None,
            "not an operation of the description",
        ),
    ];
    let client = reqwest::Client::new();
    let error_schema = json!({ "$ref": ERROR_SCHEMA });
    for (method, target, token, body, expected) in cases {
        let before = fake.violations().len();
        let (status, answer) = runtime.block_on(async {
            let mut request = client.request(
                reqwest::Method::from_bytes(method.as_bytes()).unwrap(),
                format!("{base}{target}"),
            );
            if let Some(token) = token {
                request = request.bearer_auth(token);
            }
            if let Some(body) = &body {
                request = request.json(body);
            }
            let response = request.send().await.unwrap();
            let status = response.status().as_u16();
            (status, response.json::<Value>().await.unwrap())
        });
        assert!(status >= 400, "{method} {target}: {status}");
        assert!(
            fake.fake
                .description
                .errors(&error_schema, &answer)
                .is_empty(),
            "the refusal is in Lightspeed's error shape: {answer}"
        );
        let new: Vec<String> = fake.violations()[before..].to_vec();
        assert!(
            new.iter().any(|v| v.contains(expected)),
            "{method} {target}: expected a violation naming {expected:?}, got {new:?}"
        );
    }
    // A conforming request is no violation, and is answered as described.
    let before = fake.violations().len();
    let status = runtime.block_on(async {
        client
            .post(format!("{base}/pms/v1/providers"))
            .bearer_auth(TOKEN)
            .json(&valid)
            .send()
            .await
            .unwrap()
            .status()
            .as_u16()
    });
    assert_eq!(status, 200);
    assert_eq!(fake.violations().len(), before);
}

#[test]
fn the_fake_checks_its_own_answers() {
    let fake = Fake::new();
    let op = fake
        .description
        .operations
        .iter()
        .find(|o| o.id == "pms-apiGetProvider")
        .unwrap();
    let answer = fake.checked(
        Some(op),
        200,
        json!({"id": "not-an-integer", "features": ["NOPE"]}),
    );
    assert_eq!(answer.status, 500);
    let good = fake.checked(
        Some(op),
        200,
        json!({"id": 1, "features": ["SEARCH_BY_NAME"]}),
    );
    assert_eq!(good.status, 200);
    let v = fake.state.lock().unwrap().violations.clone();
    assert_eq!(v.len(), 1, "{v:?}");
    assert!(v[0].contains("does not follow the description"), "{v:?}");
}
