//! Replay fixtures: what one delivery sends and what it expects back.
//!
//! The format is documented in `fixtures/README.md` and described by
//! `schemas/fixture.schema.json`. A file is either a fixture (`{"request": …,
//! "expect": …}`) or a plain Lightspeed payload, which is sent as-is with a made-up
//! key and expected to answer 200.
//!
//! Files are grouped into [`Unit`]s: an independent delivery, or a **sequence**
//! (a directory named `seq-*`, or any directory with `--sequence`) whose files run
//! one after the other in name order and share their symbolic keys.

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};

use base64::Engine;
use rust_decimal::Decimal;
use serde::{Deserialize, Deserializer, Serialize};
use serde_json::Value;
use sha2::{Digest, Sha256};

use crate::domain::IdempotencyKey;
use crate::routes::IDEMPOTENCY_HEADER;

/// The placeholder capture writes instead of an `apiKey`; `--api-key` puts a real
/// key back in its place.
pub const REDACTED: &str = "<redacted>";

/// The placeholder for an `apiKey` the server refused (401): `--api-key` leaves it
/// alone, so the replay is refused again.
pub const REDACTED_REJECTED: &str = "<redacted:rejected>";

/// Directories with this name prefix are sequences.
pub const SEQUENCE_PREFIX: &str = "seq-";

/// One fixture file as written on disk.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct Fixture {
    /// Free text for people reading the fixture or the report.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    pub request: RequestSpec,
    /// Absent: the delivery is expected to answer 200.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expect: Option<Expect>,
    /// `false`: concurrent copies of this delivery legitimately answer differently
    /// (an unknown PMS outcome: the first copy gets 500, the copies that waited
    /// reconcile to 200), so `--repeat` sends it once.
    #[serde(default = "yes", skip_serializing_if = "is_true")]
    pub repeatable: bool,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct RequestSpec {
    #[serde(default = "default_method")]
    pub method: String,
    /// Relative to the `--target` base (`/charge` under `…/lightspeed`); may carry
    /// a query string.
    #[serde(default = "default_path")]
    pub path: String,
    /// Sent exactly as listed (names are case-insensitive). No key header, no key.
    #[serde(default)]
    pub headers: BTreeMap<String, String>,
    /// A JSON value is sent as compact JSON (numbers kept as written); a string is
    /// sent verbatim, for raw and invalid bodies.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub body: Option<Value>,
    /// Bytes that are not UTF-8 (instead of `body`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub body_base64: Option<String>,
    /// Spaces appended to the body (insignificant JSON white space), to exceed the
    /// server's body limit without storing a megabyte in the repository.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub padding: usize,
}

/// What the answer must be. Every field is optional except `status`.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct Expect {
    pub status: u16,
    /// The error body's `code`; `null` means the body must have none (success).
    #[serde(
        default,
        deserialize_with = "explicit_null",
        skip_serializing_if = "Option::is_none"
    )]
    pub code: Option<Option<String>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub customer_error_message: Option<String>,
    /// The `Idempotent-Replayed: true` header.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub replayed: Option<bool>,
    /// A subset of the JSON body: objects match member by member, anything else
    /// exactly (`{"status": "posted"}` checks the 200 body's `status`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub body: Option<Value>,
    /// The body must be byte-identical to the answer of this earlier step of the
    /// same sequence (its file name without `.json`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub same_body_as: Option<String>,
    /// What the PMS must hold for this delivery; checked only with an inspector
    /// (`--pms-inspect`, or the memory PMS in the contract tests).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub posted: Option<PostedExpect>,
}

/// `false`: nothing posted for this delivery. An object: exactly one posting,
/// matching every field given.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PostedExpect {
    Nothing,
    Charge(PostedCharge),
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct PostedCharge {
    /// Compared as decimals (`66.0` equals `66.00`).
    #[serde(
        default,
        deserialize_with = "crate::lightspeed::shapes::opt_decimal",
        serialize_with = "opt_decimal_text",
        skip_serializing_if = "Option::is_none"
    )]
    pub amount: Option<Decimal>,
    #[serde(
        default,
        deserialize_with = "crate::lightspeed::shapes::opt_decimal",
        serialize_with = "opt_decimal_text",
        skip_serializing_if = "Option::is_none"
    )]
    pub gratuity: Option<Decimal>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub refund: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reservation_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub currency: Option<String>,
}

impl<'de> Deserialize<'de> for PostedExpect {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        // Through a `Value`: an untagged enum would buffer numbers and lose their text.
        match Value::deserialize(d)? {
            Value::Bool(false) => Ok(PostedExpect::Nothing),
            value @ Value::Object(_) => serde_json::from_value(value)
                .map(PostedExpect::Charge)
                .map_err(serde::de::Error::custom),
            _ => Err(serde::de::Error::custom(
                "`posted` is false or an object (amount, gratuity, refund, reservationId, currency)",
            )),
        }
    }
}

impl Serialize for PostedExpect {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match self {
            PostedExpect::Nothing => s.serialize_bool(false),
            PostedExpect::Charge(c) => c.serialize(s),
        }
    }
}

fn opt_decimal_text<S: serde::Serializer>(v: &Option<Decimal>, s: S) -> Result<S::Ok, S::Error> {
    match v {
        Some(d) => s.serialize_str(&d.to_string()),
        None => s.serialize_none(),
    }
}

fn explicit_null<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Option<String>>, D::Error> {
    Option::<String>::deserialize(d).map(Some)
}

fn yes() -> bool {
    true
}
fn is_true(b: &bool) -> bool {
    *b
}
fn is_zero(n: &usize) -> bool {
    *n == 0
}
fn default_method() -> String {
    "POST".to_string()
}
fn default_path() -> String {
    "/charge".to_string()
}

impl Fixture {
    /// A plain Lightspeed payload as a fixture: Lightspeed's headers, a made-up
    /// key, the file's bytes as body, and 200 expected.
    pub fn from_payload(bytes: &[u8]) -> Fixture {
        let mut headers = BTreeMap::new();
        headers.insert("Content-Type".to_string(), "application/json".to_string());
        headers.insert("Accept".to_string(), "application/json".to_string());
        headers.insert(IDEMPOTENCY_HEADER.to_string(), MADE_UP_KEY.to_string());
        Fixture {
            description: None,
            request: RequestSpec {
                method: default_method(),
                path: default_path(),
                headers,
                body: None,
                body_base64: Some(base64::engine::general_purpose::STANDARD.encode(bytes)),
                padding: 0,
            },
            expect: None,
            repeatable: true,
        }
    }

    /// Reads a fixture or a plain payload from its bytes.
    pub fn parse(bytes: &[u8]) -> Result<Fixture, String> {
        let value: Value = serde_json::from_slice(bytes).map_err(|e| format!("not JSON: {e}"))?;
        match &value {
            Value::Object(map) if map.contains_key("request") => {
                let fixture: Fixture = serde_json::from_value(value).map_err(|e| e.to_string())?;
                fixture.check()?;
                Ok(fixture)
            }
            _ => Ok(Fixture::from_payload(bytes)),
        }
    }

    fn check(&self) -> Result<(), String> {
        if self.request.body.is_some() && self.request.body_base64.is_some() {
            return Err("request has both `body` and `bodyBase64`".into());
        }
        if let Some(b64) = &self.request.body_base64 {
            base64::engine::general_purpose::STANDARD
                .decode(b64)
                .map_err(|e| format!("request.bodyBase64: {e}"))?;
        }
        if !self.request.path.starts_with('/') {
            return Err(format!(
                "request.path `{}` must start with `/`",
                self.request.path
            ));
        }
        reqwest::Method::from_bytes(self.request.method.as_bytes())
            .map_err(|_| format!("request.method `{}` is not a method", self.request.method))?;
        Ok(())
    }

    /// The body bytes as written (templates unresolved, no padding).
    pub fn body_bytes(&self) -> Vec<u8> {
        if let Some(b64) = &self.request.body_base64 {
            return base64::engine::general_purpose::STANDARD
                .decode(b64)
                .unwrap_or_default();
        }
        match &self.request.body {
            None => Vec::new(),
            Some(Value::String(s)) => s.clone().into_bytes(),
            Some(other) => serde_json::to_vec(other).unwrap_or_default(),
        }
    }

    /// The expectation, with the default (200) for fixtures that state none.
    pub fn expectation(&self) -> Expect {
        self.expect.clone().unwrap_or(Expect {
            status: 200,
            ..Expect::default()
        })
    }

    /// Whether this delivery goes to the charge webhook.
    pub fn is_charge(&self) -> bool {
        self.request.method.eq_ignore_ascii_case("POST")
            && self
                .request
                .path
                .split('?')
                .next()
                .is_some_and(|p| p.trim_end_matches('/').ends_with("/charge"))
    }
}

/// One fixture file, loaded.
#[derive(Debug, Clone)]
pub struct Delivery {
    /// The file, as found from the command-line arguments.
    pub path: PathBuf,
    /// The file name without `.json`: what `sameBodyAs` names.
    pub step: String,
    pub fixture: Fixture,
}

/// What runs on its own: one delivery, or a sequence that stays in order.
#[derive(Debug, Clone)]
pub struct Unit {
    /// The sequence's directory; `None` for an independent delivery.
    pub sequence: Option<PathBuf>,
    /// One delivery, or the sequence's steps in order.
    pub steps: Vec<Delivery>,
}

impl Unit {
    pub fn single(d: Delivery) -> Unit {
        Unit {
            sequence: None,
            steps: vec![d],
        }
    }

    pub fn name(&self) -> String {
        self.scope_path().display().to_string()
    }

    pub fn deliveries(&self) -> &[Delivery] {
        &self.steps
    }

    pub fn is_sequence(&self) -> bool {
        self.sequence.is_some()
    }

    /// What symbolic keys are derived from when they are not rewritten.
    fn scope_path(&self) -> &Path {
        match (&self.sequence, self.steps.first()) {
            (Some(dir), _) => dir,
            (None, Some(d)) => &d.path,
            (None, None) => Path::new(""),
        }
    }

    /// A key resolver for one run of this unit.
    pub fn keys(&self, rewrite: bool) -> KeyResolver {
        let path = self.scope_path();
        let scope = std::fs::canonicalize(path)
            .unwrap_or_else(|_| path.to_path_buf())
            .display()
            .to_string();
        KeyResolver::new(scope, rewrite)
    }
}

fn is_sequence_dir(path: &Path) -> bool {
    path.file_name()
        .and_then(|n| n.to_str())
        .is_some_and(|n| n.starts_with(SEQUENCE_PREFIX))
}

fn sorted_entries(dir: &Path) -> std::io::Result<Vec<PathBuf>> {
    let mut entries: Vec<PathBuf> = std::fs::read_dir(dir)?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .collect();
    entries.sort();
    Ok(entries)
}

fn is_json(path: &Path) -> bool {
    path.extension().is_some_and(|e| e == "json")
}

/// Loads every fixture below `paths` into units. A file argument is one delivery;
/// a directory is walked: `seq-*` directories are sequences, other `*.json` files
/// independent deliveries. With `as_sequences`, each directory argument is one
/// sequence of all its files (a capture directory, say). Every unreadable or
/// malformed file is reported, not just the first.
pub fn load(paths: &[PathBuf], as_sequences: bool) -> Result<Vec<Unit>, Vec<String>> {
    let mut units = Vec::new();
    let mut errors = Vec::new();
    for path in paths {
        if path.is_dir() {
            if as_sequences || is_sequence_dir(path) {
                match load_sequence(path, as_sequences) {
                    Ok(unit) => units.push(unit),
                    Err(mut e) => errors.append(&mut e),
                }
            } else {
                walk(path, &mut units, &mut errors);
            }
        } else {
            match load_delivery(path) {
                Ok(d) => units.push(Unit::single(d)),
                Err(e) => errors.push(e),
            }
        }
    }
    if errors.is_empty() {
        Ok(units)
    } else {
        Err(errors)
    }
}

fn walk(dir: &Path, units: &mut Vec<Unit>, errors: &mut Vec<String>) {
    let entries = match sorted_entries(dir) {
        Ok(e) => e,
        Err(e) => {
            errors.push(format!("{}: {e}", dir.display()));
            return;
        }
    };
    for entry in entries {
        if entry.is_dir() {
            if is_sequence_dir(&entry) {
                match load_sequence(&entry, false) {
                    Ok(unit) => units.push(unit),
                    Err(mut e) => errors.append(&mut e),
                }
            } else {
                walk(&entry, units, errors);
            }
        } else if is_json(&entry) {
            match load_delivery(&entry) {
                Ok(d) => units.push(Unit::single(d)),
                Err(e) => errors.push(e),
            }
        }
    }
}

fn load_sequence(dir: &Path, recursive: bool) -> Result<Unit, Vec<String>> {
    let mut files = Vec::new();
    let mut errors = Vec::new();
    collect_sequence_files(dir, recursive, &mut files, &mut errors);
    let mut steps = Vec::new();
    for file in files {
        match load_delivery(&file) {
            Ok(d) => steps.push(d),
            Err(e) => errors.push(e),
        }
    }
    if steps.is_empty() && errors.is_empty() {
        errors.push(format!("{}: sequence without fixtures", dir.display()));
    }
    if errors.is_empty() {
        Ok(Unit {
            sequence: Some(dir.to_path_buf()),
            steps,
        })
    } else {
        Err(errors)
    }
}

fn collect_sequence_files(
    dir: &Path,
    recursive: bool,
    files: &mut Vec<PathBuf>,
    errors: &mut Vec<String>,
) {
    match sorted_entries(dir) {
        Ok(entries) => {
            for entry in entries {
                if entry.is_dir() {
                    if recursive {
                        collect_sequence_files(&entry, true, files, errors);
                    } else {
                        errors.push(format!(
                            "{}: a sequence holds files only (move the directory out, or use --sequence)",
                            entry.display()
                        ));
                    }
                } else if is_json(&entry) {
                    files.push(entry);
                }
            }
        }
        Err(e) => errors.push(format!("{}: {e}", dir.display())),
    }
}

fn load_delivery(path: &Path) -> Result<Delivery, String> {
    let bytes = std::fs::read(path).map_err(|e| format!("{}: {e}", path.display()))?;
    let fixture = Fixture::parse(&bytes).map_err(|e| format!("{}: {e}", path.display()))?;
    let step = path
        .file_stem()
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_default();
    Ok(Delivery {
        path: path.to_path_buf(),
        step,
        fixture,
    })
}

// ---------------------------------------------------------------------------
// Keys.

/// The key header value of plain payload files: a fresh key on every send.
const MADE_UP_KEY: &str = "{{key:*}}";
const TEMPLATE_OPEN: &str = "{{key:";
const TEMPLATE_CLOSE: &str = "}}";

/// Resolves `{{key:NAME}}` templates and, with `--rewrite-keys`, literal keys, for
/// one run of one unit (so a sequence's steps agree on their keys).
///
/// * `{{key:NAME}}` is a stable key derived from the unit's path and NAME, or a
///   fresh `LS1_<uuid>` per run when rewriting.
/// * `{{key:*}}` is a fresh key every time it is resolved (plain payloads).
/// * A literal key header is sent as written; when rewriting, a *valid* literal
///   key is replaced by a fresh one (the same within the unit), while an invalid
///   one is kept, since it is what the fixture tests.
pub struct KeyResolver {
    scope: String,
    rewrite: bool,
    resolved: HashMap<String, String>,
}

impl KeyResolver {
    pub fn new(scope: impl Into<String>, rewrite: bool) -> Self {
        KeyResolver {
            scope: scope.into(),
            rewrite,
            resolved: HashMap::new(),
        }
    }

    fn fresh() -> String {
        format!("LS1_{}", uuid::Uuid::new_v4())
    }

    fn symbolic(&mut self, name: &str) -> String {
        if name == "*" {
            return Self::fresh();
        }
        if let Some(k) = self.resolved.get(name) {
            return k.clone();
        }
        let key = if self.rewrite {
            Self::fresh()
        } else {
            let mut h = Sha256::new();
            h.update(b"chargebridge-fixture-key\0");
            h.update(self.scope.as_bytes());
            h.update([0u8]);
            h.update(name.as_bytes());
            let digest = h.finalize();
            let mut bytes = [0u8; 16];
            bytes.copy_from_slice(&digest[..16]);
            format!(
                "LS1_{}",
                uuid::Builder::from_custom_bytes(bytes).into_uuid()
            )
        };
        self.resolved.insert(name.to_string(), key.clone());
        key
    }

    /// Replaces every `{{key:NAME}}` in `text`.
    pub fn expand(&mut self, text: &str) -> String {
        if !text.contains(TEMPLATE_OPEN) {
            return text.to_string();
        }
        let mut out = String::with_capacity(text.len() + 32);
        let mut rest = text;
        while let Some(start) = rest.find(TEMPLATE_OPEN) {
            let after = &rest[start + TEMPLATE_OPEN.len()..];
            let Some(end) = after.find(TEMPLATE_CLOSE) else {
                break;
            };
            out.push_str(&rest[..start]);
            let name = &after[..end];
            let key = self.symbolic(name);
            out.push_str(&key);
            rest = &after[end + TEMPLATE_CLOSE.len()..];
        }
        out.push_str(rest);
        out
    }

    /// The value to send in the key header.
    pub fn header_key(&mut self, written: &str) -> String {
        if written.contains(TEMPLATE_OPEN) {
            return self.expand(written);
        }
        if self.rewrite && IdempotencyKey::parse(written.as_bytes()).is_ok() {
            let slot = format!("\0literal\0{written}");
            if let Some(k) = self.resolved.get(&slot) {
                return k.clone();
            }
            let key = Self::fresh();
            self.resolved.insert(slot, key.clone());
            return key;
        }
        written.to_string()
    }

    /// Expands templates in every string of a JSON value.
    pub fn expand_value(&mut self, value: &Value) -> Value {
        match value {
            Value::String(s) => Value::String(self.expand(s)),
            Value::Array(items) => {
                Value::Array(items.iter().map(|v| self.expand_value(v)).collect())
            }
            Value::Object(map) => Value::Object(
                map.iter()
                    .map(|(k, v)| (k.clone(), self.expand_value(v)))
                    .collect(),
            ),
            other => other.clone(),
        }
    }
}

/// Replaces every `"<redacted>"` string value of an `apiKey` member with `key`.
pub fn restore_api_key(value: &mut Value, key: &str) {
    match value {
        Value::Object(map) => {
            for (name, v) in map.iter_mut() {
                if name.eq_ignore_ascii_case("apiKey") && v.as_str() == Some(REDACTED) {
                    *v = Value::String(key.to_string());
                } else {
                    restore_api_key(v, key);
                }
            }
        }
        Value::Array(items) => items.iter_mut().for_each(|v| restore_api_key(v, key)),
        _ => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn symbolic_keys_are_stable_per_scope_unless_rewritten() {
        let mut a = KeyResolver::new("/x/seq-a", false);
        let k1 = a.expand("{{key:a}}");
        assert!(k1.starts_with("LS1_") && k1.len() == 40, "{k1}");
        assert_eq!(a.expand("{{key:a}}"), k1);
        assert_ne!(a.expand("{{key:b}}"), k1);
        assert_eq!(KeyResolver::new("/x/seq-a", false).expand("{{key:a}}"), k1);
        assert_ne!(KeyResolver::new("/x/seq-b", false).expand("{{key:a}}"), k1);

        let mut r = KeyResolver::new("/x/seq-a", true);
        let fresh = r.expand("{{key:a}}");
        assert_ne!(fresh, k1);
        assert_eq!(r.expand("x-{{key:a}}-y"), format!("x-{fresh}-y"));
        assert_ne!(
            KeyResolver::new("/x/seq-a", true).expand("{{key:a}}"),
            fresh
        );
    }

    #[test]
    fn literal_keys_are_rewritten_only_when_valid() {
        let mut r = KeyResolver::new("s", true);
        let k = r.header_key("LS1_abc");
        assert_ne!(k, "LS1_abc");
        assert_eq!(r.header_key("LS1_abc"), k);
        assert_eq!(r.header_key("bad key"), "bad key");
        assert_eq!(r.header_key(""), "");
        let mut plain = KeyResolver::new("s", false);
        assert_eq!(plain.header_key("LS1_abc"), "LS1_abc");
        assert_ne!(plain.header_key("{{key:*}}"), plain.header_key("{{key:*}}"));
    }

    #[test]
    fn plain_payloads_become_fixtures_expecting_200() {
        let f = Fixture::parse(br#"{"businessExternalReference": "b", "apiKey": "k"}"#).unwrap();
        assert_eq!(f.expectation().status, 200);
        assert_eq!(
            f.body_bytes(),
            br#"{"businessExternalReference": "b", "apiKey": "k"}"#
        );
        assert!(f.is_charge());
    }

    #[test]
    fn fixtures_parse_with_every_field() {
        let f = Fixture::parse(
            br#"{"description": "d", "repeatable": false,
                "request": {"headers": {"Accept": "application/json"}, "body": {"amount": 66.0}},
                "expect": {"status": 200, "code": null, "replayed": false,
                           "body": {"status": "posted"}, "sameBodyAs": "01-first",
                           "posted": {"amount": "66.0", "refund": false}}}"#,
        )
        .unwrap();
        assert!(!f.repeatable);
        let e = f.expect.unwrap();
        assert_eq!(e.code, Some(None));
        match e.posted.unwrap() {
            PostedExpect::Charge(c) => assert_eq!(c.amount.unwrap().to_string(), "66.0"),
            other => panic!("{other:?}"),
        }
        assert_eq!(f.request.body.unwrap()["amount"].to_string(), "66.0");
        let f = Fixture::parse(br#"{"request": {}, "expect": {"status": 422, "posted": false}}"#)
            .unwrap();
        assert_eq!(f.expect.unwrap().posted, Some(PostedExpect::Nothing));
    }

    #[test]
    fn malformed_fixtures_say_why() {
        assert!(
            Fixture::parse(br#"{"request": {"bdy": 1}}"#)
                .unwrap_err()
                .contains("bdy")
        );
        assert!(
            Fixture::parse(br#"{"request": {"path": "charge"}}"#)
                .unwrap_err()
                .contains("path")
        );
        assert!(Fixture::parse(b"{").unwrap_err().contains("not JSON"));
        assert!(
            Fixture::parse(br#"{"request": {}, "expect": {"status": 200, "posted": true}}"#)
                .is_err()
        );
    }

    #[test]
    fn redacted_api_keys_are_restored() {
        let mut v = serde_json::json!({"apiKey": REDACTED, "x": {"apiKey": "keep"}});
        restore_api_key(&mut v, "secret");
        assert_eq!(v["apiKey"], "secret");
        assert_eq!(v["x"]["apiKey"], "keep");
    }
}
