//! The documents in `schemas/` against the server and the model:
//!
//! * every fixture body (not meant to be invalid) validates against the v1 schema,
//!   and every fixture file against the fixture schema;
//! * the model accepts every payload the v1 schema accepts (property test);
//! * every answer the server gives validates against `responses.schema.json`;
//! * the OpenAPI document lists exactly the statuses and codes the server produces
//!   (the corpus replay plus explicit probes for what fixtures cannot provoke).

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::sync::OnceLock;
use std::time::Duration;

use chargebridge::pms::memory::Fault;
use chargebridge::replay::{Fixture, load};
use proptest::prelude::*;
use serde_json::Value;

use crate::helpers::*;
use crate::replay::{corpus_dir, options, replay_with};

fn schema_path(rel: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("schemas")
        .join(rel)
}

fn read_json(path: &Path) -> Value {
    let text = std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// A validator that asserts `format` (so `date-time` is checked, not just annotated).
fn validator(schema: &Value) -> jsonschema::Validator {
    jsonschema::draft202012::options()
        .should_validate_formats(true)
        .build(schema)
        .unwrap_or_else(|e| panic!("not a valid schema: {e}"))
}

fn v1() -> &'static jsonschema::Validator {
    static V1: OnceLock<jsonschema::Validator> = OnceLock::new();
    V1.get_or_init(|| {
        validator(&read_json(&schema_path(
            "lightspeed/charge-transaction.v1.schema.json",
        )))
    })
}

fn errors(v: &jsonschema::Validator, instance: &Value) -> Vec<String> {
    v.iter_errors(instance)
        .map(|e| format!("{} at {}", e, e.instance_path()))
        .collect()
}

/// The answer bodies, by `$defs` name.
struct Responses(jsonschema::ValidatorMap);

impl Responses {
    fn load() -> Self {
        let schema = read_json(&schema_path("responses.schema.json"));
        Responses(
            jsonschema::draft202012::options()
                .should_validate_formats(true)
                .build_map(&schema)
                .expect("responses schema builds"),
        )
    }

    fn check(&self, def: &str, body: &Value, what: &str) {
        let v = self
            .0
            .get(&format!("#/$defs/{def}"))
            .unwrap_or_else(|| panic!("no $defs/{def}"));
        let errs = errors(v, body);
        assert!(
            errs.is_empty(),
            "{what}: body {body} is not a {def}: {errs:?}"
        );
    }
}

fn corpus_files() -> Vec<(PathBuf, Fixture)> {
    load(&[corpus_dir()], false)
        .expect("corpus loads")
        .into_iter()
        .flat_map(|u| u.steps)
        .map(|d| (d.path, d.fixture))
        .collect()
}

#[test]
fn fixture_bodies_follow_the_v1_schema() {
    let fixture_schema = validator(&read_json(&schema_path("fixture.schema.json")));
    let mut checked = 0;
    let mut invalid_on_purpose = Vec::new();
    for (path, fixture) in corpus_files() {
        let raw = read_json(&path);
        let errs = errors(&fixture_schema, &raw);
        assert!(
            errs.is_empty(),
            "{}: not a fixture: {errs:?}",
            path.display()
        );
        if !fixture.is_charge() {
            continue;
        }
        let expect = fixture.expectation();
        let body: Option<Value> = serde_json::from_slice(&fixture.body_bytes()).ok();
        if expect.code == Some(Some("invalid_payload".into())) {
            if let Some(body) = body
                && !v1().is_valid(&body)
            {
                invalid_on_purpose.push(path.clone());
            }
            continue;
        }
        let body = body.unwrap_or_else(|| panic!("{}: body is not JSON", path.display()));
        let errs = errors(v1(), &body);
        assert!(
            errs.is_empty(),
            "{}: body does not follow the v1 schema: {errs:?}",
            path.display()
        );
        checked += 1;
    }
    assert!(checked >= 40, "only {checked} bodies checked");
    // The schema is not vacuous: the type errors of the corpus are schema errors.
    assert!(invalid_on_purpose.len() >= 4, "{invalid_on_purpose:?}");

    for entry in
        std::fs::read_dir(Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures/payloads")).unwrap()
    {
        let path = entry.unwrap().path();
        let errs = errors(v1(), &read_json(&path));
        assert!(errs.is_empty(), "{}: {errs:?}", path.display());
    }
}

#[test]
fn the_v1_schema_refuses_what_the_model_refuses_by_shape() {
    let seed: Value = serde_json::from_str(SEED).unwrap();
    let with = |f: &dyn Fn(&mut Value)| {
        let mut v = seed.clone();
        f(&mut v);
        v
    };
    for (what, bad) in [
        (
            "taxLines as a number",
            with(&|v| v["transactions"][0]["taxLines"] = 5.into()),
        ),
        (
            "paymentDate as a float",
            with(&|v| v["payments"][0]["paymentDate"] = serde_json::from_str("1.5").unwrap()),
        ),
        (
            "paymentDate as words",
            with(&|v| v["payments"][0]["paymentDate"] = "yesterday".into()),
        ),
        (
            "an impossible date",
            with(&|v| v["closeDate"] = "2021-02-30T00:00:00Z".into()),
        ),
        (
            "an id as an object",
            with(&|v| v["revenueCenterId"] = serde_json::json!({"id": 1})),
        ),
        (
            "an id with a fraction",
            with(&|v| v["deviceId"] = serde_json::from_str("1.5").unwrap()),
        ),
        ("negative covers", with(&|v| v["covers"] = (-1).into())),
        (
            "an amount as words",
            with(&|v| v["payments"][0]["amount"] = "sixty".into()),
        ),
        (
            "no apiKey",
            with(&|v| {
                v.as_object_mut().unwrap().remove("apiKey");
            }),
        ),
        (
            "a 256-character fiscId",
            with(&|v| v["fiscId"] = "f".repeat(256).into()),
        ),
    ] {
        assert!(!v1().is_valid(&bad), "the schema accepts {what}");
        assert!(
            chargebridge::lightspeed::parse_charge(bad.to_string().as_bytes()).is_err(),
            "the model accepts {what}"
        );
    }
}

// ---------------------------------------------------------------------------
// Property test: payloads valid under the v1 schema, written as JSON text.

fn quoted(s: &str) -> String {
    serde_json::to_string(s).unwrap()
}

fn object(members: Vec<(String, String)>) -> String {
    let body: Vec<String> = members
        .into_iter()
        .map(|(k, v)| format!("{}:{}", quoted(&k), v))
        .collect();
    format!("{{{}}}", body.join(","))
}

/// Exact decimals as JSON number text: plain (`-123.4500`) or with an exponent.
fn decimal() -> impl Strategy<Value = String> {
    let plain = (-1_000_000_000_000i64..1_000_000_000_000, 0u32..=8)
        .prop_map(|(m, s)| rust_decimal::Decimal::new(m, s).to_string());
    let exponent = (-1_000_000i64..1_000_000, 0u32..=4, -3i32..=3)
        .prop_map(|(m, s, e)| format!("{}e{e}", rust_decimal::Decimal::new(m, s)));
    prop_oneof![4 => plain, 1 => exponent]
}

/// A string of up to `max` characters (any Unicode), sometimes exactly `max`.
fn text(max: usize) -> impl Strategy<Value = String> {
    prop_oneof![
        8 => proptest::collection::vec(any::<char>(), 0..24).prop_map(String::from_iter),
        1 => Just("é".repeat(max)),
    ]
    .prop_map(|s| quoted(&s))
}

fn id() -> impl Strategy<Value = String> {
    prop_oneof![
        any::<i64>().prop_map(|n| n.to_string()),
        (0i64..1_000_000).prop_map(|n| format!("{n}.0")),
        "[A-Za-z0-9._-]{0,20}".prop_map(|s| quoted(&s)),
    ]
}

fn timestamp() -> impl Strategy<Value = String> {
    let rfc3339 = (
        (1970u32..=9998, 1u32..=12, 1u32..=28),
        (0u32..=23, 0u32..=59, 0u32..=59),
        proptest::option::of("[0-9]{1,9}"),
        prop_oneof![
            Just("Z".to_string()),
            (any::<bool>(), 0u32..=23, 0u32..=59)
                .prop_map(|(plus, h, m)| format!("{}{h:02}:{m:02}", if plus { '+' } else { '-' })),
        ],
    )
        .prop_map(|((y, mo, d), (h, mi, s), frac, off)| {
            let frac = frac.map(|f| format!(".{f}")).unwrap_or_default();
            quoted(&format!(
                "{y:04}-{mo:02}-{d:02}T{h:02}:{mi:02}:{s:02}{frac}{off}"
            ))
        });
    prop_oneof![
        rfc3339,
        (0i64..100_000_000_000).prop_map(|n| n.to_string()),
        (100_000_000_000i64..=253_402_300_799_999).prop_map(|n| n.to_string()),
        (0i64..100_000_000_000).prop_map(|n| format!("{n}.0")),
    ]
}

fn count() -> impl Strategy<Value = String> {
    prop_oneof![
        any::<u32>().prop_map(|n| n.to_string()),
        (0u32..100).prop_map(|n| format!("{n}.0")),
    ]
}

fn one_of_or_other(known: &'static [&'static str]) -> impl Strategy<Value = String> {
    prop_oneof![
        proptest::sample::select(known).prop_map(quoted),
        "[A-Z][A-Za-z_]{0,15}".prop_map(|s| quoted(&s)),
    ]
}

/// Any small JSON value, for fields Lightspeed may add.
fn extra_value() -> impl Strategy<Value = String> {
    let leaf = prop_oneof![
        Just("null".to_string()),
        any::<bool>().prop_map(|b| b.to_string()),
        decimal(),
        "\\PC{0,12}".prop_map(|s| quoted(&s)),
    ];
    leaf.prop_recursive(3, 12, 4, |inner| {
        prop_oneof![
            proptest::collection::vec(inner.clone(), 0..4)
                .prop_map(|items| format!("[{}]", items.join(","))),
            proptest::collection::btree_map("[a-z]{1,6}", inner, 0..4)
                .prop_map(|m| object(m.into_iter().collect())),
        ]
    })
}

/// Members not known to the model (prefixed `x`, which no documented field is).
fn extras() -> impl Strategy<Value = BTreeMap<String, String>> {
    proptest::collection::btree_map("x[A-Za-z0-9_]{0,10}", extra_value(), 0..3)
}

/// Optional members: each present or not.
fn members(
    fields: Vec<(&'static str, BoxedStrategy<String>)>,
) -> impl Strategy<Value = Vec<(String, String)>> {
    let parts: Vec<BoxedStrategy<Option<(String, String)>>> = fields
        .into_iter()
        .map(|(name, s)| proptest::option::of(s.prop_map(move |v| (name.to_string(), v))).boxed())
        .collect();
    (parts, extras()).prop_map(|(parts, extras)| {
        parts
            .into_iter()
            .flatten()
            .chain(extras)
            .collect::<Vec<_>>()
    })
}

fn tax_line() -> impl Strategy<Value = String> {
    members(vec![
        ("taxId", id().boxed()),
        ("taxName", text(1000).boxed()),
        ("taxAmount", decimal().boxed()),
        ("taxRate", decimal().boxed()),
        (
            "taxIncluded",
            any::<bool>().prop_map(|b| b.to_string()).boxed(),
        ),
    ])
    .prop_map(object)
}

fn transaction_line() -> impl Strategy<Value = String> {
    let tax_lines = prop_oneof![
        tax_line(),
        proptest::collection::vec(tax_line(), 0..3).prop_map(|v| format!("[{}]", v.join(","))),
    ];
    members(vec![
        ("unitAmount", decimal().boxed()),
        ("quantity", decimal().boxed()),
        ("amount", decimal().boxed()),
        ("description", text(1000).boxed()),
        ("staffId", id().boxed()),
        ("staffName", text(1000).boxed()),
        ("groupId", id().boxed()),
        ("groupName", text(1000).boxed()),
        ("taxId", id().boxed()),
        ("taxName", text(1000).boxed()),
        ("taxRate", decimal().boxed()),
        (
            "taxIncluded",
            any::<bool>().prop_map(|b| b.to_string()).boxed(),
        ),
        ("sku", text(255).boxed()),
        (
            "type",
            one_of_or_other(&["Sale", "LineDiscount", "AccountDiscount", "PercentItem"]).boxed(),
        ),
        ("serviceChargeContribution", decimal().boxed()),
        ("taxLines", tax_lines.boxed()),
    ])
    .prop_map(object)
}

fn payment() -> impl Strategy<Value = String> {
    members(vec![
        ("paymentDate", timestamp().boxed()),
        ("staffId", id().boxed()),
        ("staffName", text(1000).boxed()),
        ("gratuity", decimal().boxed()),
        ("amount", decimal().boxed()),
        ("methodName", text(1000).boxed()),
        (
            "methodCode",
            one_of_or_other(&["IKPMS", "CASH", "CARD"]).boxed(),
        ),
        ("reservationId", id().boxed()),
    ])
    .prop_map(object)
}

fn payload() -> impl Strategy<Value = String> {
    let service_charge = members(vec![
        ("amount", decimal().boxed()),
        ("type", one_of_or_other(&["UNTAXED", "APPORTIONED"]).boxed()),
    ])
    .prop_map(object);
    let required = (
        prop_oneof!["[a-z0-9-]{1,40}".boxed(), Just("r".repeat(255)).boxed()],
        "\\PC{0,40}",
    );
    let optional = members(vec![
        ("name", text(1000).boxed()),
        ("openDate", timestamp().boxed()),
        ("closeDate", timestamp().boxed()),
        ("covers", count().boxed()),
        ("ownerId", id().boxed()),
        ("ownerName", text(1000).boxed()),
        ("deviceId", id().boxed()),
        ("receiptId", text(255).boxed()),
        ("fiscId", text(255).boxed()),
        ("uuid", text(255).boxed()),
        ("initialAccountId", text(255).boxed()),
        ("identifier", text(255).boxed()),
        ("revenueCenterId", id().boxed()),
        ("revenueCenterName", text(1000).boxed()),
        (
            "transactions",
            proptest::collection::vec(transaction_line(), 0..4)
                .prop_map(|v| format!("[{}]", v.join(",")))
                .boxed(),
        ),
        (
            "payments",
            proptest::collection::vec(payment(), 0..4)
                .prop_map(|v| format!("[{}]", v.join(",")))
                .boxed(),
        ),
        ("serviceCharge", service_charge.boxed()),
    ]);
    (required, optional).prop_map(|((reference, key), mut members)| {
        members.push(("businessExternalReference".into(), quoted(&reference)));
        members.push(("apiKey".into(), quoted(&key)));
        object(members)
    })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(300))]

    /// The model accepts every payload the schema accepts.
    #[test]
    fn the_model_accepts_what_the_v1_schema_accepts(text in payload()) {
        let value: Value = serde_json::from_str(&text).expect("the generator writes JSON");
        let errs = errors(v1(), &value);
        prop_assert!(errs.is_empty(), "generated payload not schema-valid: {errs:?}\n{text}");
        let parsed = chargebridge::lightspeed::parse_charge(text.as_bytes());
        prop_assert!(parsed.is_ok(), "model refused a schema-valid payload: {:?}\n{text}", parsed.err());
    }
}

// ---------------------------------------------------------------------------
// The server against responses.schema.json and the OpenAPI document.

/// (path, METHOD, status, code or "") — one kind of answer.
type Seen = BTreeSet<(String, String, String, String)>;

fn record(
    seen: &mut Seen,
    responses: &Responses,
    path: &str,
    method: &str,
    status: u16,
    bytes: &[u8],
) {
    let body: Option<Value> = serde_json::from_slice(bytes).ok();
    let code = body
        .as_ref()
        .and_then(|b| b.get("code"))
        .and_then(Value::as_str)
        .unwrap_or("")
        .to_string();
    let what = format!("{method} {path} {status}");
    match (path, status) {
        ("/lightspeed/charge", 200) => {
            responses.check("chargeSuccess", body.as_ref().expect("JSON"), &what)
        }
        ("/lightspeed/search", 200) => {
            responses.check("searchResult", body.as_ref().expect("JSON"), &what)
        }
        ("/lightspeed/charge" | "/lightspeed/search", _) => {
            responses.check("error", body.as_ref().expect("JSON"), &what)
        }
        ("/healthz", _) => responses.check("health", body.as_ref().expect("JSON"), &what),
        ("/readyz", _) => responses.check("readiness", body.as_ref().expect("JSON"), &what),
        _ => {}
    }
    seen.insert((path.into(), method.into(), status.to_string(), code));
}

fn record_answer(seen: &mut Seen, responses: &Responses, path: &str, method: &str, a: &Answer) {
    record(seen, responses, path, method, a.status, &a.bytes);
}

/// Every code enum under a response object (the `allOf` members name them).
fn codes_in(value: &Value, out: &mut BTreeSet<String>) {
    match value {
        Value::Object(map) => {
            if let Some(list) = map
                .get("code")
                .and_then(|c| c.get("enum"))
                .and_then(Value::as_array)
            {
                out.extend(list.iter().filter_map(Value::as_str).map(str::to_string));
            }
            map.values().for_each(|v| codes_in(v, out));
        }
        Value::Array(items) => items.iter().for_each(|v| codes_in(v, out)),
        _ => {}
    }
}

fn refs_in(value: &Value, out: &mut Vec<String>) {
    match value {
        Value::Object(map) => {
            if let Some(r) = map.get("$ref").and_then(Value::as_str) {
                out.push(r.to_string());
            }
            map.values().for_each(|v| refs_in(v, out));
        }
        Value::Array(items) => items.iter().for_each(|v| refs_in(v, out)),
        _ => {}
    }
}

fn openapi() -> Value {
    let text = std::fs::read_to_string(schema_path("chargebridge.openapi.yaml")).unwrap();
    serde_norway::from_str(&text).expect("the OpenAPI document is YAML")
}

fn documented(doc: &Value) -> Seen {
    let mut out = Seen::new();
    for (path, item) in doc["paths"].as_object().expect("paths") {
        for (method, op) in item.as_object().unwrap() {
            let Some(responses) = op.get("responses").and_then(Value::as_object) else {
                continue;
            };
            for (status, response) in responses {
                let mut codes = BTreeSet::new();
                codes_in(response, &mut codes);
                // A 200 with codes is the search envelope: success has none.
                if codes.is_empty() || status == "200" {
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

#[test]
fn the_openapi_document_is_consistent() {
    let doc = openapi();
    assert_eq!(doc["openapi"], "3.1.0");
    let responses = read_json(&schema_path("responses.schema.json"));
    let mut refs = Vec::new();
    refs_in(&doc, &mut refs);
    assert!(!refs.is_empty());
    for r in refs {
        if let Some(name) = r.strip_prefix("./responses.schema.json#/$defs/") {
            assert!(responses["$defs"].get(name).is_some(), "dangling {r}");
        } else if let Some(pointer) = r.strip_prefix('#') {
            assert!(doc.pointer(pointer).is_some(), "dangling {r}");
        } else {
            assert!(
                schema_path(r.trim_start_matches("./")).exists(),
                "dangling {r}"
            );
        }
    }
    // Every code the OpenAPI document names is a code of the responses schema.
    let known: BTreeSet<&str> = responses["$defs"]["code"]["enum"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(Value::as_str)
        .collect();
    for (_, _, _, code) in documented(&doc) {
        assert!(code.is_empty() || known.contains(code.as_str()), "{code}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_openapi_document_lists_exactly_what_the_server_answers() {
    let responses = Responses::load();
    let mut seen = Seen::new();

    // The corpus, with every answer checked against responses.schema.json.
    let app = spawn_app(StoreChoice::Memory).await;
    let report = replay_with(&app, &[corpus_dir()], options(&app)).await;
    assert!(report.ok(), "{}", report.table());
    for r in &report.results {
        let path = r
            .url
            .strip_prefix(&app.address)
            .unwrap()
            .split('?')
            .next()
            .unwrap()
            .to_string();
        for a in &r.answers {
            record(
                &mut seen,
                &responses,
                &path,
                &r.method,
                a.status.expect("answered"),
                &a.bytes,
            );
        }
    }

    // Probes for what a fixture cannot provoke against the default server.
    let charge = "/lightspeed/charge";
    // 409: a duplicate arrives while the first is still at a slow PMS and gives up
    // waiting after in_flight_wait.
    let impatient = spawn_with(settings(&StoreChoice::Memory, |s| {
        s.idempotency.in_flight_wait = Duration::from_millis(200);
    }))
    .await;
    let slow = seed_with(|v| v["payments"][0]["reservationId"] = "fail-slow".into());
    let key = fresh_key();
    let (first, second) = tokio::join!(impatient.charge(&key, &slow), async {
        tokio::time::sleep(Duration::from_millis(100)).await;
        impatient.charge(&key, &slow).await
    });
    assert_eq!((first.status, second.code().as_str()), (200, "in_progress"));
    record_answer(&mut seen, &responses, charge, "POST", &second);

    // 500 store_unavailable, and /readyz 503, with Redis unreachable.
    let dead = format!("redis://127.0.0.1:{}", crate::redis_server::free_port());
    let no_store = spawn_app(StoreChoice::RedisAt(dead)).await;
    let answer = no_store.charge(&fresh_key(), SEED).await;
    assert_eq!(answer.code(), "store_unavailable");
    record_answer(&mut seen, &responses, charge, "POST", &answer);
    let ready = no_store.get("/readyz").await;
    assert_eq!(ready.status, 503);
    record_answer(&mut seen, &responses, "/readyz", "GET", &ready);

    // 500 deadline_exceeded: no time is left for the PMS once the key is taken.
    let hurried = spawn_with(settings(&StoreChoice::Memory, |s| {
        s.server.request_deadline = Duration::from_millis(50);
        s.server.pms_safety_margin = Duration::from_millis(100);
    }))
    .await;
    let answer = hurried.charge(&fresh_key(), SEED).await;
    assert_eq!(answer.code(), "deadline_exceeded");
    record_answer(&mut seen, &responses, charge, "POST", &answer);
    // The search envelope's deadline_exceeded: no time left for the PMS either.
    let search = "/lightspeed/search";
    let answer = hurried
        .get(&format!(
            "{search}?term=jane&businessExternalReference={REFERENCE}&apiKey={API_KEY}"
        ))
        .await;
    assert_eq!(
        (answer.status, answer.code().as_str()),
        (200, "deadline_exceeded")
    );
    record_answer(&mut seen, &responses, search, "GET", &answer);

    // 408 request_timeout: a body that trickles in slower than client_request_timeout.
    let strict = spawn_with(settings(&StoreChoice::Memory, |s| {
        s.server.client_request_timeout = Duration::from_millis(300);
    }))
    .await;
    let whole = crate::hostile::request("", SEED.as_bytes());
    let head = whole[..whole.len() - SEED.len()].to_vec();
    let parts = crate::hostile::trickled(head, SEED.as_bytes());
    let seen_raw =
        crate::hostile::exchange(crate::hostile::host(&strict), parts, Duration::from_secs(5))
            .await;
    let status = seen_raw.status.expect("an answer to a trickled body");
    assert_eq!(status, 408);
    record(
        &mut seen,
        &responses,
        charge,
        "POST",
        status,
        &seen_raw.body,
    );

    // 500 internal: an adapter that panics (a slow fault too long to schedule
    // overflows the clock) is contained in the charge's task.
    app.push_fault(Fault::Slow(Duration::MAX));
    let answer = app.charge(&fresh_key(), SEED).await;
    assert_eq!(answer.code(), "internal");
    record_answer(&mut seen, &responses, charge, "POST", &answer);

    for path in ["/healthz", "/readyz", "/metrics"] {
        let answer = app.get(path).await;
        assert_eq!(answer.status, 200, "{path}");
        record_answer(&mut seen, &responses, path, "GET", &answer);
    }

    let doc = documented(&openapi());
    let missing: Vec<_> = doc.difference(&seen).collect();
    assert!(
        missing.is_empty(),
        "documented but never produced: {missing:?}"
    );
    let undocumented: Vec<_> = seen.difference(&doc).collect();
    assert!(
        undocumented.is_empty(),
        "produced but not documented: {undocumented:?}"
    );
}
