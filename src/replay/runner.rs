//! Sends fixtures to a running chargebridge and compares every answer with its
//! expectation.
//!
//! Units (independent deliveries and sequences) run up to `concurrency` at a time;
//! the steps of a sequence run in order. With `repeat` > 1 every delivery is sent
//! that many times at once (a duplicate storm): the copies must all give the same
//! answer, and of a stored answer (200, `pms_rejected`) at most one copy may be
//! fresh, the others replayed.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use futures_util::StreamExt;
use rust_decimal::Decimal;
use serde::Serialize;
use serde_json::Value;

use super::fixture::{Delivery, Expect, PostedExpect, REDACTED, Unit, restore_api_key};
use super::report::{Progress, Report};
use crate::domain::{IdempotencyKey, PostingReference};
use crate::routes::{IDEMPOTENCY_HEADER, REPLAYED_HEADER};

/// How a replay runs.
#[derive(Debug, Clone)]
pub struct Options {
    /// The base Lightspeed is configured with (`http://host:8080/lightspeed`);
    /// fixture paths are appended to it.
    pub target: String,
    /// Units run at the same time.
    pub concurrency: usize,
    /// Copies of each delivery sent at once.
    pub repeat: usize,
    /// Fresh keys for this run (see [`super::fixture::KeyResolver`]).
    pub rewrite_keys: bool,
    /// Per request.
    pub timeout: Duration,
    /// Put back in place of `"apiKey": "<redacted>"` (captured fixtures).
    pub api_key: Option<String>,
    /// Show a progress line on stderr (only sensible on a terminal).
    pub progress: bool,
    /// The id of the tenant the deliveries reach (its API key is in the bodies):
    /// posting references derive from it, for `posted` checks.
    pub tenant: String,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            target: "http://127.0.0.1:8080/lightspeed".into(),
            concurrency: 4,
            repeat: 1,
            rewrite_keys: false,
            timeout: Duration::from_secs(20),
            api_key: None,
            progress: false,
            tenant: "demo".into(),
        }
    }
}

/// A charge as the PMS holds it, for `posted` expectations.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Posting {
    pub amount: Decimal,
    pub gratuity: Option<Decimal>,
    pub refund: Option<bool>,
    pub reservation_id: Option<String>,
    pub currency: Option<String>,
}

/// Looks up what the PMS holds for a delivery. Only test set-ups have one: the
/// memory PMS in-process, or a PMS speaking chargebridge's generic HTTP protocol.
#[async_trait::async_trait]
pub trait PmsInspector: Send + Sync {
    /// Every posting carrying the reference chargebridge derives from `tenant` and
    /// `key`; empty when the PMS has none. Two entries mean a double posting.
    async fn postings(&self, tenant: &str, key: &str) -> Result<Vec<Posting>, String>;
}

/// `--pms-inspect URL`: a PMS speaking the generic HTTP adapter protocol, whose
/// `GET {URL}/charges/{reference}` answers the stored posting (200) or 404.
pub struct HttpInspector {
    base: String,
    client: reqwest::Client,
}

impl HttpInspector {
    pub fn new(base: &str, timeout: Duration) -> Result<Self, String> {
        let client = reqwest::Client::builder()
            .timeout(timeout)
            .build()
            .map_err(|e| e.to_string())?;
        Ok(HttpInspector {
            base: base.trim_end_matches('/').to_string(),
            client,
        })
    }
}

#[async_trait::async_trait]
impl PmsInspector for HttpInspector {
    async fn postings(&self, tenant: &str, key: &str) -> Result<Vec<Posting>, String> {
        let key = IdempotencyKey::parse(key.as_bytes()).map_err(|e| e.to_string())?;
        let reference = PostingReference::derive(tenant, &key);
        let url = format!("{}/charges/{}", self.base, reference);
        let resp = self
            .client
            .get(&url)
            .header("accept", "application/json")
            .send()
            .await
            .map_err(|e| format!("GET {url}: {e}"))?;
        match resp.status().as_u16() {
            404 => Ok(Vec::new()),
            200 => {
                let body: Value = resp.json().await.map_err(|e| format!("GET {url}: {e}"))?;
                // The charge is the body itself or its `charge` member.
                let charge = body.get("charge").unwrap_or(&body);
                posting_from_json(charge)
                    .map(|p| vec![p])
                    .ok_or_else(|| format!("GET {url}: no amount in {body}"))
            }
            other => Err(format!("GET {url}: status {other}")),
        }
    }
}

fn decimal_of(v: Option<&Value>) -> Option<Decimal> {
    match v? {
        Value::String(s) => crate::lightspeed::shapes::parse_decimal(s).ok(),
        Value::Number(n) => crate::lightspeed::shapes::parse_decimal(&n.to_string()).ok(),
        _ => None,
    }
}

fn posting_from_json(v: &Value) -> Option<Posting> {
    Some(Posting {
        amount: decimal_of(v.get("amount"))?,
        gratuity: decimal_of(v.get("gratuity")),
        refund: v.get("refund").and_then(Value::as_bool),
        reservation_id: v
            .get("reservationId")
            .and_then(|r| r.as_str().map(str::to_string)),
        currency: v
            .get("currency")
            .and_then(|c| c.as_str().map(str::to_string)),
    })
}

/// One answer to one copy of a delivery.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Answer {
    /// `None` when no answer came (connection refused, timeout).
    pub status: Option<u16>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    pub replayed: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub code: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub customer_error_message: Option<String>,
    /// The body as text (lossy), cut at 4 KiB in reports.
    pub body: String,
    #[serde(skip)]
    pub bytes: Vec<u8>,
    pub elapsed_ms: f64,
}

impl Answer {
    fn json(&self) -> Option<Value> {
        serde_json::from_slice(&self.bytes).ok()
    }
}

/// One field that differs from its expectation.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct Mismatch {
    pub field: String,
    pub expected: String,
    pub got: String,
}

/// The outcome of one delivery (all its copies).
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct DeliveryResult {
    /// The fixture file.
    pub fixture: String,
    /// The sequence directory, or the file itself for an independent delivery.
    pub unit: String,
    /// 1-based position in its sequence.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub step: Option<usize>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    pub method: String,
    pub url: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub idempotency_key: Option<String>,
    pub expected: Expect,
    pub answers: Vec<Answer>,
    pub mismatches: Vec<Mismatch>,
    /// Checks that could not run (`posted` without an inspector).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub skipped: Vec<String>,
    pub elapsed_ms: f64,
}

impl DeliveryResult {
    pub fn passed(&self) -> bool {
        self.mismatches.is_empty()
    }

    /// The first copy's status, or `None` if the copies disagree or none answered.
    pub fn status(&self) -> Option<u16> {
        let first = self.answers.first()?.status?;
        self.answers
            .iter()
            .all(|a| a.status == Some(first))
            .then_some(first)
    }
}

struct Ctx {
    options: Options,
    client: reqwest::Client,
    inspector: Option<Arc<dyn PmsInspector>>,
    progress: Arc<Progress>,
}

/// Runs every unit and returns the report (results in the units' order).
pub async fn run(
    units: Vec<Unit>,
    options: Options,
    inspector: Option<Arc<dyn PmsInspector>>,
) -> Result<Report, String> {
    let client = reqwest::Client::builder()
        .timeout(options.timeout)
        .user_agent(concat!("chargebridge-replay/", env!("CARGO_PKG_VERSION")))
        .build()
        .map_err(|e| format!("HTTP client: {e}"))?;
    let total: usize = units
        .iter()
        .flat_map(|u| u.deliveries())
        .map(|d| copies(&options, d))
        .sum();
    let progress = Arc::new(Progress::new(total, options.progress));
    let ticker = progress.clone().start();
    let started_at = chrono::Utc::now();
    let started = Instant::now();
    let concurrency = options.concurrency.max(1);
    let ctx = Arc::new(Ctx {
        options,
        client,
        inspector,
        progress: progress.clone(),
    });
    let mut done: Vec<(usize, Vec<DeliveryResult>)> =
        futures_util::stream::iter(units.into_iter().enumerate())
            .map(|(i, unit)| {
                let ctx = ctx.clone();
                async move { (i, run_unit(&ctx, &unit).await) }
            })
            .buffer_unordered(concurrency)
            .collect()
            .await;
    progress.finish();
    if let Some(t) = ticker {
        let _ = t.await;
    }
    done.sort_by_key(|(i, _)| *i);
    Ok(Report::new(
        ctx.options.target.clone(),
        started_at,
        started.elapsed(),
        ctx.options.repeat.max(1),
        ctx.options.rewrite_keys,
        done.into_iter().flat_map(|(_, r)| r).collect(),
    ))
}

fn copies(options: &Options, d: &Delivery) -> usize {
    if d.fixture.repeatable {
        options.repeat.max(1)
    } else {
        1
    }
}

/// A delivery with its templates resolved, ready to send.
struct Prepared {
    method: reqwest::Method,
    url: String,
    headers: Vec<(String, String)>,
    key: Option<String>,
    body: Vec<u8>,
    tenant: Option<String>,
    expect: Expect,
    is_charge: bool,
}

fn prepare(
    d: &Delivery,
    keys: &mut super::fixture::KeyResolver,
    options: &Options,
) -> Result<Prepared, String> {
    let f = &d.fixture;
    let method = reqwest::Method::from_bytes(f.request.method.to_ascii_uppercase().as_bytes())
        .map_err(|_| format!("bad method {}", f.request.method))?;
    let mut headers = Vec::new();
    let mut key = None;
    for (name, value) in &f.request.headers {
        let value = if name.eq_ignore_ascii_case(IDEMPOTENCY_HEADER) {
            let k = keys.header_key(value);
            key = Some(k.clone());
            k
        } else {
            keys.expand(value)
        };
        headers.push((name.clone(), value));
    }
    let mut body = if f.request.body_base64.is_some() {
        f.body_bytes()
    } else {
        match &f.request.body {
            None => Vec::new(),
            Some(Value::String(s)) => {
                let mut text = keys.expand(s);
                if let Some(api_key) = &options.api_key {
                    let quoted = serde_json::to_string(api_key).unwrap_or_default();
                    text = text.replace(&format!("\"{REDACTED}\""), &quoted);
                }
                text.into_bytes()
            }
            Some(value) => {
                let mut value = keys.expand_value(value);
                if let Some(api_key) = &options.api_key {
                    restore_api_key(&mut value, api_key);
                }
                serde_json::to_vec(&value).map_err(|e| e.to_string())?
            }
        }
    };
    let tenant = Some(options.tenant.clone());
    body.resize(body.len() + f.request.padding, b' ');
    let mut expect = f.expectation();
    if let Some(b) = &expect.body {
        expect.body = Some(keys.expand_value(b));
    }
    if let Some(m) = &expect.customer_error_message {
        expect.customer_error_message = Some(keys.expand(m));
    }
    Ok(Prepared {
        method,
        url: format!("{}{}", options.target.trim_end_matches('/'), f.request.path),
        headers,
        key,
        body,
        tenant,
        expect,
        is_charge: f.is_charge(),
    })
}

async fn run_unit(ctx: &Ctx, unit: &Unit) -> Vec<DeliveryResult> {
    let mut keys = unit.keys(ctx.options.rewrite_keys);
    let mut earlier: HashMap<String, Vec<u8>> = HashMap::new();
    let mut results = Vec::new();
    for (i, d) in unit.deliveries().iter().enumerate() {
        let result = run_delivery(ctx, unit, i, d, &mut keys, &earlier).await;
        if let Some(first) = result.answers.iter().find(|a| a.status.is_some()) {
            earlier.insert(d.step.clone(), first.bytes.clone());
        }
        ctx.progress
            .add(result.answers.len().max(1), !result.passed());
        results.push(result);
    }
    results
}

async fn run_delivery(
    ctx: &Ctx,
    unit: &Unit,
    index: usize,
    d: &Delivery,
    keys: &mut super::fixture::KeyResolver,
    earlier: &HashMap<String, Vec<u8>>,
) -> DeliveryResult {
    let started = Instant::now();
    let mut result = DeliveryResult {
        fixture: d.path.display().to_string(),
        unit: unit.name(),
        step: unit.is_sequence().then_some(index + 1),
        description: d.fixture.description.clone(),
        method: d.fixture.request.method.clone(),
        url: String::new(),
        idempotency_key: None,
        expected: d.fixture.expectation(),
        answers: Vec::new(),
        mismatches: Vec::new(),
        skipped: Vec::new(),
        elapsed_ms: 0.0,
    };
    let prepared = match prepare(d, keys, &ctx.options) {
        Ok(p) => p,
        Err(e) => {
            result.mismatches.push(Mismatch {
                field: "request".into(),
                expected: "a request that can be sent".into(),
                got: e,
            });
            return result;
        }
    };
    result.url = redact_url(&prepared.url);
    result.idempotency_key = prepared.key.clone();
    result.expected = prepared.expect.clone();
    let n = copies(&ctx.options, d);
    result.answers =
        futures_util::future::join_all((0..n).map(|_| send(&ctx.client, &prepared))).await;
    compare(&prepared, &result.answers, earlier, &mut result.mismatches);
    check_posted(ctx, &prepared, &mut result).await;
    result.elapsed_ms = started.elapsed().as_secs_f64() * 1000.0;
    result
}

async fn send(client: &reqwest::Client, p: &Prepared) -> Answer {
    let started = Instant::now();
    let mut req = client.request(p.method.clone(), &p.url);
    for (name, value) in &p.headers {
        req = req.header(name.as_str(), value.as_str());
    }
    let outcome = async {
        let resp = req.body(p.body.clone()).send().await?;
        let status = resp.status().as_u16();
        let replayed = resp
            .headers()
            .get(REPLAYED_HEADER)
            .is_some_and(|v| v.as_bytes().eq_ignore_ascii_case(b"true"));
        let bytes = resp.bytes().await?.to_vec();
        Ok::<_, reqwest::Error>((status, replayed, bytes))
    }
    .await;
    let elapsed_ms = started.elapsed().as_secs_f64() * 1000.0;
    match outcome {
        Ok((status, replayed, bytes)) => {
            let json: Option<Value> = serde_json::from_slice(&bytes).ok();
            let field = |name: &str| {
                json.as_ref()
                    .and_then(|j| j.get(name))
                    .and_then(Value::as_str)
                    .map(str::to_string)
            };
            Answer {
                status: Some(status),
                error: None,
                replayed,
                code: field("code"),
                customer_error_message: field("customerErrorMessage"),
                body: String::from_utf8_lossy(&bytes).into_owned(),
                bytes,
                elapsed_ms,
            }
        }
        Err(e) => Answer {
            status: None,
            error: Some(describe_reqwest(&e)),
            replayed: false,
            code: None,
            customer_error_message: None,
            body: String::new(),
            bytes: Vec::new(),
            elapsed_ms,
        },
    }
}

/// The URL as reports show it: an `apiKey` query parameter (guest search) is
/// replaced by `<redacted>`, so reports can be shared.
fn redact_url(url: &str) -> String {
    let Some((base, query)) = url.split_once('?') else {
        return url.to_string();
    };
    let params: Vec<String> = query
        .split('&')
        .map(|p| match p.split_once('=') {
            Some((name, _)) if name.eq_ignore_ascii_case("apiKey") => {
                format!("{name}={REDACTED}")
            }
            _ => p.to_string(),
        })
        .collect();
    format!("{base}?{}", params.join("&"))
}

fn describe_reqwest(e: &reqwest::Error) -> String {
    use std::error::Error;
    let mut text = if e.is_timeout() {
        "timed out".to_string()
    } else if e.is_connect() {
        "cannot connect".to_string()
    } else {
        e.to_string()
    };
    let mut source = e.source();
    while let Some(s) = source {
        text.push_str(": ");
        text.push_str(&s.to_string());
        source = s.source();
    }
    text
}

fn quoted(s: &str) -> String {
    serde_json::to_string(s).unwrap_or_else(|_| s.to_string())
}

fn opt_quoted(s: Option<&str>) -> String {
    s.map(quoted).unwrap_or_else(|| "(none)".to_string())
}

fn shorten(text: &str, max: usize) -> String {
    if text.chars().count() <= max {
        text.to_string()
    } else {
        let head: String = text.chars().take(max).collect();
        format!("{head}…")
    }
}

fn push(out: &mut Vec<Mismatch>, field: &str, expected: impl Into<String>, got: impl Into<String>) {
    out.push(Mismatch {
        field: field.to_string(),
        expected: expected.into(),
        got: got.into(),
    });
}

/// An answer that the idempotency layer stores and replays.
fn is_stored(a: &Answer) -> bool {
    a.status == Some(200) || a.code.as_deref() == Some("pms_rejected")
}

fn summarize(a: &Answer) -> String {
    match (a.status, &a.code) {
        (Some(s), Some(c)) => format!("{s} {c}"),
        (Some(s), None) => {
            let status = a
                .json()
                .and_then(|j| j.get("status").and_then(Value::as_str).map(str::to_string));
            match status {
                Some(st) => format!("{s} {st}"),
                None => s.to_string(),
            }
        }
        (None, _) => a.error.clone().unwrap_or_else(|| "no answer".into()),
    }
}

fn compare(
    p: &Prepared,
    answers: &[Answer],
    earlier: &HashMap<String, Vec<u8>>,
    out: &mut Vec<Mismatch>,
) {
    let n = answers.len();
    let failed: Vec<&Answer> = answers.iter().filter(|a| a.status.is_none()).collect();
    if let Some(first) = failed.first() {
        let got = if n == 1 {
            first.error.clone().unwrap_or_default()
        } else {
            format!(
                "{} of {n} copies: {}",
                failed.len(),
                first.error.clone().unwrap_or_default()
            )
        };
        push(out, "transport", "an answer", got);
    }
    let answered: Vec<&Answer> = answers.iter().filter(|a| a.status.is_some()).collect();
    let Some(first) = answered.first().copied() else {
        return;
    };
    let e = &p.expect;

    // Copies of one delivery must all give the same answer.
    if answered.len() > 1 {
        let mut groups: Vec<(&Answer, usize)> = Vec::new();
        for a in &answered {
            match groups
                .iter_mut()
                .find(|(g, _)| g.status == a.status && g.bytes == a.bytes)
            {
                Some(g) => g.1 += 1,
                None => groups.push((a, 1)),
            }
        }
        if groups.len() > 1 {
            let got = groups
                .iter()
                .map(|(a, c)| format!("{c}× {}", summarize(a)))
                .collect::<Vec<_>>()
                .join(", ");
            push(
                out,
                "copies",
                format!("{} identical answers", answered.len()),
                got,
            );
        }
    }

    if first.status != Some(e.status) {
        push(
            out,
            "status",
            e.status.to_string(),
            first.status.map(|s| s.to_string()).unwrap_or_default(),
        );
    }
    if let Some(code) = &e.code
        && *code != first.code
    {
        push(
            out,
            "code",
            opt_quoted(code.as_deref()),
            opt_quoted(first.code.as_deref()),
        );
    }
    if let Some(msg) = &e.customer_error_message
        && Some(msg) != first.customer_error_message.as_ref()
    {
        push(
            out,
            "customerErrorMessage",
            quoted(msg),
            opt_quoted(first.customer_error_message.as_deref()),
        );
    }
    if let Some(expected_body) = &e.body {
        match first.json() {
            Some(got) => subset(expected_body, &got, "body", out),
            None => push(
                out,
                "body",
                shorten(&expected_body.to_string(), 200),
                format!("not JSON: {}", shorten(&first.body, 200)),
            ),
        }
    }
    if let Some(step) = &e.same_body_as {
        match earlier.get(step) {
            None => push(
                out,
                "sameBodyAs",
                format!("the answer of step {}", quoted(step)),
                "no earlier step of that name in this sequence answered",
            ),
            Some(bytes) if *bytes != first.bytes => push(
                out,
                "sameBodyAs",
                shorten(&String::from_utf8_lossy(bytes), 300),
                shorten(&first.body, 300),
            ),
            Some(_) => {}
        }
    }
    check_replayed(e.replayed, &answered, p.is_charge, out);
    if p.is_charge {
        contract(first, p.key.as_deref(), out);
    }
}

/// Only charge answers are stored and replayed; copies of anything else are all fresh.
fn check_replayed(
    expected: Option<bool>,
    answered: &[&Answer],
    is_charge: bool,
    out: &mut Vec<Mismatch>,
) {
    let n = answered.len();
    let fresh = answered.iter().filter(|a| !a.replayed).count();
    if n == 1 {
        if let Some(r) = expected
            && r != answered[0].replayed
        {
            push(
                out,
                "replayed",
                r.to_string(),
                answered[0].replayed.to_string(),
            );
        }
        return;
    }
    let stored = is_charge && is_stored(answered[0]);
    let (ok, wanted) = match (expected, stored) {
        (Some(true), _) => (fresh == 0, format!("all {n} copies replayed")),
        (Some(false), true) => (fresh == 1, format!("exactly 1 of {n} copies fresh")),
        (Some(false), false) => (fresh == n, format!("no copy replayed ({n} fresh)")),
        (None, true) => (fresh <= 1, format!("at most 1 of {n} copies fresh")),
        (None, false) => (true, String::new()),
    };
    if !ok {
        push(
            out,
            "replayed",
            wanted,
            format!("{fresh} fresh, {} replayed", n - fresh),
        );
    }
}

/// `expected` must be found in `got`: objects member by member, the rest equal.
fn subset(expected: &Value, got: &Value, path: &str, out: &mut Vec<Mismatch>) {
    match (expected, got) {
        (Value::Object(want), Value::Object(have)) => {
            for (k, v) in want {
                let here = format!("{path}.{k}");
                match have.get(k) {
                    Some(g) => subset(v, g, &here, out),
                    None => push(out, &here, shorten(&v.to_string(), 200), "(absent)"),
                }
            }
        }
        _ if expected == got => {}
        _ => push(
            out,
            path,
            shorten(&expected.to_string(), 200),
            shorten(&got.to_string(), 200),
        ),
    }
}

/// What Lightspeed relies on, whatever the fixture expects: error bodies carry a
/// printable `customerErrorMessage` of at most 50 characters and a `code`; a 200
/// names its outcome and echoes the key.
fn contract(a: &Answer, key: Option<&str>, out: &mut Vec<Mismatch>) {
    let Some(status) = a.status else { return };
    let json = a.json();
    if status == 200 {
        let outcome = json
            .as_ref()
            .and_then(|j| j.get("status"))
            .and_then(Value::as_str);
        if !matches!(outcome, Some("posted" | "acknowledged")) {
            push(
                out,
                "contract",
                "200 body with status posted or acknowledged",
                shorten(&a.body, 200),
            );
        }
        let echoed = json
            .as_ref()
            .and_then(|j| j.get("idempotencyKey"))
            .and_then(Value::as_str);
        if let Some(key) = key
            && echoed != Some(key)
        {
            push(
                out,
                "contract",
                format!("idempotencyKey {}", quoted(key)),
                format!("idempotencyKey {}", opt_quoted(echoed)),
            );
        }
        return;
    }
    let message = a.customer_error_message.as_deref();
    let fits = message.is_some_and(|m| {
        let n = crate::error::utf16_units(m);
        (1..=crate::error::MAX_MESSAGE_UNITS).contains(&n) && !m.chars().any(char::is_control)
    });
    if !fits {
        push(
            out,
            "contract",
            "customerErrorMessage of 1–50 printable characters",
            opt_quoted(message),
        );
    }
    if a.code.as_deref().is_none_or(str::is_empty) {
        push(out, "contract", "a code", shorten(&a.body, 200));
    }
}

async fn check_posted(ctx: &Ctx, p: &Prepared, result: &mut DeliveryResult) {
    let Some(expected) = &p.expect.posted else {
        return;
    };
    let Some(inspector) = &ctx.inspector else {
        result
            .skipped
            .push("posted (no PMS inspector: --pms-inspect)".into());
        return;
    };
    let (Some(tenant), Some(key)) = (&p.tenant, &p.key) else {
        push(
            &mut result.mismatches,
            "posted",
            "a delivery with a tenant and a key",
            "cannot tell which posting to look for",
        );
        return;
    };
    let postings = match inspector.postings(tenant, key).await {
        Ok(p) => p,
        Err(e) => {
            push(&mut result.mismatches, "posted", "PMS inspection", e);
            return;
        }
    };
    let out = &mut result.mismatches;
    match expected {
        PostedExpect::Nothing => {
            if !postings.is_empty() {
                push(
                    out,
                    "posted",
                    "nothing posted",
                    format!("{} posting(s)", postings.len()),
                );
            }
        }
        PostedExpect::Charge(want) => {
            if postings.len() != 1 {
                push(
                    out,
                    "posted",
                    "exactly 1 posting",
                    format!("{} posting(s)", postings.len()),
                );
            }
            let Some(got) = postings.first() else { return };
            let dec = |d: Option<Decimal>| d.map(|d| d.to_string()).unwrap_or("(none)".into());
            if let Some(a) = want.amount
                && a != got.amount
            {
                push(out, "posted.amount", a.to_string(), got.amount.to_string());
            }
            if let Some(g) = want.gratuity
                && Some(g) != got.gratuity
            {
                push(out, "posted.gratuity", g.to_string(), dec(got.gratuity));
            }
            if let Some(r) = want.refund
                && Some(r) != got.refund
            {
                push(
                    out,
                    "posted.refund",
                    r.to_string(),
                    got.refund.map(|r| r.to_string()).unwrap_or("(none)".into()),
                );
            }
            if let Some(res) = &want.reservation_id
                && Some(res) != got.reservation_id.as_ref()
            {
                push(
                    out,
                    "posted.reservationId",
                    quoted(res),
                    opt_quoted(got.reservation_id.as_deref()),
                );
            }
            if let Some(c) = &want.currency
                && Some(c) != got.currency.as_ref()
            {
                push(
                    out,
                    "posted.currency",
                    quoted(c),
                    opt_quoted(got.currency.as_deref()),
                );
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn answer(status: u16, replayed: bool, body: &str) -> Answer {
        let json: Value = serde_json::from_str(body).unwrap_or(Value::Null);
        Answer {
            status: Some(status),
            error: None,
            replayed,
            code: json.get("code").and_then(Value::as_str).map(str::to_string),
            customer_error_message: json
                .get("customerErrorMessage")
                .and_then(Value::as_str)
                .map(str::to_string),
            body: body.to_string(),
            bytes: body.as_bytes().to_vec(),
            elapsed_ms: 1.0,
        }
    }

    fn prepared(expect: Expect) -> Prepared {
        Prepared {
            method: reqwest::Method::POST,
            url: "http://x/lightspeed/charge".into(),
            headers: vec![],
            key: Some("k".into()),
            body: vec![],
            tenant: None,
            expect,
            is_charge: true,
        }
    }

    const OK: &str = r#"{"status":"posted","pmsReference":"MEM-1","idempotencyKey":"k"}"#;

    #[test]
    fn matching_answers_pass() {
        let e = Expect {
            status: 200,
            code: Some(None),
            replayed: Some(false),
            body: Some(serde_json::json!({"status": "posted"})),
            ..Expect::default()
        };
        let mut out = Vec::new();
        compare(
            &prepared(e),
            &[answer(200, false, OK)],
            &HashMap::new(),
            &mut out,
        );
        assert!(out.is_empty(), "{out:?}");
    }

    #[test]
    fn every_differing_field_is_reported() {
        let e = Expect {
            status: 200,
            code: Some(None),
            customer_error_message: Some("x".into()),
            replayed: Some(true),
            body: Some(serde_json::json!({"status": "posted"})),
            ..Expect::default()
        };
        let body = r#"{"customerErrorMessage":"Invalid charge data: empty body","code":"invalid_payload"}"#;
        let mut out = Vec::new();
        compare(
            &prepared(e),
            &[answer(400, false, body)],
            &HashMap::new(),
            &mut out,
        );
        let fields: Vec<&str> = out.iter().map(|m| m.field.as_str()).collect();
        assert_eq!(
            fields,
            [
                "status",
                "code",
                "customerErrorMessage",
                "body.status",
                "replayed"
            ]
        );
        assert_eq!(out[1].expected, "(none)");
        assert_eq!(out[1].got, "\"invalid_payload\"");
    }

    #[test]
    fn storms_allow_one_fresh_stored_answer() {
        let e = Expect {
            status: 200,
            replayed: Some(false),
            ..Expect::default()
        };
        let mut out = Vec::new();
        let ok = [
            answer(200, true, OK),
            answer(200, false, OK),
            answer(200, true, OK),
        ];
        compare(&prepared(e.clone()), &ok, &HashMap::new(), &mut out);
        assert!(out.is_empty(), "{out:?}");
        let twice = [answer(200, false, OK), answer(200, false, OK)];
        compare(&prepared(e), &twice, &HashMap::new(), &mut out);
        assert_eq!(out[0].field, "replayed");
    }

    #[test]
    fn disagreeing_copies_are_reported() {
        let busy = r#"{"customerErrorMessage":"Charge still processing, retry shortly","code":"in_progress"}"#;
        let mut out = Vec::new();
        compare(
            &prepared(Expect {
                status: 200,
                ..Expect::default()
            }),
            &[answer(200, false, OK), answer(409, false, busy)],
            &HashMap::new(),
            &mut out,
        );
        assert_eq!(out[0].field, "copies");
        assert_eq!(out[0].got, "1× 200 posted, 1× 409 in_progress");
    }

    #[test]
    fn the_error_contract_is_always_checked() {
        let mut out = Vec::new();
        let long = format!(
            r#"{{"customerErrorMessage":"{}","code":"x"}}"#,
            "m".repeat(51)
        );
        compare(
            &prepared(Expect {
                status: 500,
                ..Expect::default()
            }),
            &[answer(500, false, &long)],
            &HashMap::new(),
            &mut out,
        );
        assert_eq!(out[0].field, "contract");
    }

    #[test]
    fn same_body_as_compares_bytes() {
        let mut earlier = HashMap::new();
        earlier.insert("01-first".to_string(), OK.as_bytes().to_vec());
        let e = Expect {
            status: 200,
            same_body_as: Some("01-first".into()),
            ..Expect::default()
        };
        let mut out = Vec::new();
        compare(
            &prepared(e.clone()),
            &[answer(200, true, OK)],
            &earlier,
            &mut out,
        );
        assert!(out.is_empty(), "{out:?}");
        let other = r#"{"status":"posted","pmsReference":"MEM-2","idempotencyKey":"k"}"#;
        compare(
            &prepared(e),
            &[answer(200, true, other)],
            &earlier,
            &mut out,
        );
        assert_eq!(out[0].field, "sameBodyAs");
    }

    #[test]
    fn reported_urls_hide_api_keys() {
        assert_eq!(
            redact_url("http://x/lightspeed/search?term=a&apiKey=s3cret&b=1"),
            "http://x/lightspeed/search?term=a&apiKey=<redacted>&b=1"
        );
        assert_eq!(redact_url("http://x/charge"), "http://x/charge");
    }

    #[test]
    fn postings_are_read_from_the_charge_member_or_the_body() {
        let p = posting_from_json(&serde_json::json!({"amount": "66.0", "refund": false})).unwrap();
        assert_eq!(p.amount.to_string(), "66.0");
        assert_eq!(p.refund, Some(false));
        assert!(posting_from_json(&serde_json::json!({"x": 1})).is_none());
    }
}
