//! `[capture] dir`: every `/lightspeed/charge` delivery written as a replay
//! fixture (see `fixtures/README.md`), so real traffic can be replayed later.
//!
//! Off the hot path: the handler only queues what it already has (the raw body is
//! reference-counted, not copied) on a bounded channel; one writer thread turns
//! each entry into a fixture file. A full queue drops the capture with a warning,
//! never the request. What is written: the `Content-Type`, `Accept` and key
//! headers (no other header), the body with every `apiKey` replaced by
//! `"<redacted>"`, and the answer as the fixture's `expect`. File names start
//! with the UTC time, so they sort in the order the answers left.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc::{Receiver, SyncSender, TrySendError, sync_channel};
use std::thread::JoinHandle;

use actix_web::http::header::HeaderMap;
use actix_web::web::Bytes;
use base64::Engine;
use chrono::{DateTime, Utc};
use serde_json::{Map, Value, json};

use crate::config::CaptureSettings;
use crate::replay::fixture::{REDACTED, REDACTED_REJECTED};
use crate::routes::IDEMPOTENCY_HEADER;

/// Deliveries waiting to be written; beyond this, captures are dropped.
pub const QUEUE: usize = 256;

/// Headers a capture keeps, in their canonical spelling.
const KEPT_HEADERS: [&str; 3] = ["Content-Type", "Accept", IDEMPOTENCY_HEADER];

/// One delivery, as the handler saw it.
struct Captured {
    at: DateTime<Utc>,
    seq: u64,
    headers: Vec<(&'static str, String)>,
    body: Option<Bytes>,
    declared_length: Option<u64>,
    status: u16,
    response: Vec<u8>,
    replayed: bool,
}

pub struct CaptureWriter {
    dir: PathBuf,
    tx: Option<SyncSender<Captured>>,
    thread: Option<JoinHandle<()>>,
    seq: AtomicU64,
}

impl std::fmt::Debug for CaptureWriter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CaptureWriter")
            .field("dir", &self.dir)
            .finish_non_exhaustive()
    }
}

impl CaptureWriter {
    /// Creates the directory and starts the writer thread.
    pub fn start(settings: &CaptureSettings, body_limit: usize) -> std::io::Result<Self> {
        Self::with_queue(Path::new(&settings.dir), body_limit, QUEUE)
    }

    pub fn with_queue(dir: &Path, body_limit: usize, queue: usize) -> std::io::Result<Self> {
        std::fs::create_dir_all(dir)?;
        let (tx, rx) = sync_channel(queue.max(1));
        let out = dir.to_path_buf();
        let thread = std::thread::Builder::new()
            .name("capture-writer".into())
            .spawn(move || writer(rx, &out, body_limit))?;
        Ok(CaptureWriter {
            dir: dir.to_path_buf(),
            tx: Some(tx),
            thread: Some(thread),
            seq: AtomicU64::new(0),
        })
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Queues one delivery; `false` when it was dropped (queue full or writer gone).
    pub fn record(
        &self,
        headers: &HeaderMap,
        body: Option<Bytes>,
        status: u16,
        response: Vec<u8>,
        replayed: bool,
    ) -> bool {
        let Some(tx) = &self.tx else { return false };
        let kept = KEPT_HEADERS
            .iter()
            .filter_map(|name| {
                let values: Vec<String> = headers
                    .get_all(*name)
                    .map(|v| String::from_utf8_lossy(v.as_bytes()).into_owned())
                    .collect();
                (!values.is_empty()).then(|| (*name, values.join(", ")))
            })
            .collect();
        let declared_length = headers
            .get(actix_web::http::header::CONTENT_LENGTH)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.trim().parse().ok());
        let item = Captured {
            at: Utc::now(),
            seq: self.seq.fetch_add(1, Ordering::Relaxed) + 1,
            headers: kept,
            body,
            declared_length,
            status,
            response,
            replayed,
        };
        match tx.try_send(item) {
            Ok(()) => true,
            Err(TrySendError::Full(_)) => {
                metrics::counter!("chargebridge_captures_dropped_total").increment(1);
                tracing::warn!(dir = %self.dir.display(), "capture queue full: delivery not captured");
                false
            }
            Err(TrySendError::Disconnected(_)) => {
                metrics::counter!("chargebridge_captures_dropped_total").increment(1);
                tracing::warn!("capture writer stopped: delivery not captured");
                false
            }
        }
    }
}

impl Drop for CaptureWriter {
    /// Writes what is still queued before the process goes.
    fn drop(&mut self) {
        self.tx.take();
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

fn writer(rx: Receiver<Captured>, dir: &Path, body_limit: usize) {
    let pid = std::process::id();
    while let Ok(item) = rx.recv() {
        if let Err(e) = write_one(dir, pid, &item, body_limit) {
            tracing::warn!(dir = %dir.display(), error = %e, "cannot write capture");
        }
    }
}

fn write_one(dir: &Path, pid: u32, item: &Captured, body_limit: usize) -> std::io::Result<PathBuf> {
    let name = format!(
        "{}-{pid}-{:06}.json",
        item.at.format("%Y%m%dT%H%M%S%.6fZ"),
        item.seq
    );
    let fixture = to_fixture(item, body_limit);
    let mut text = serde_json::to_vec_pretty(&fixture).map_err(std::io::Error::other)?;
    text.push(b'\n');
    // Written aside, then renamed: a reader never sees half a fixture.
    let tmp = dir.join(format!(".{name}.tmp"));
    let path = dir.join(&name);
    std::fs::write(&tmp, text)?;
    std::fs::rename(&tmp, &path)?;
    Ok(path)
}

fn to_fixture(item: &Captured, body_limit: usize) -> Value {
    let headers: Map<String, Value> = item
        .headers
        .iter()
        .map(|(k, v)| (k.to_string(), Value::String(v.clone())))
        .collect();
    let mut request = json!({"method": "POST", "path": "/charge", "headers": headers});
    // A refused key is marked as such, so putting the real key back for a replay
    // does not turn a 401 into a 200.
    let placeholder = if item.status == 401 {
        REDACTED_REJECTED
    } else {
        REDACTED
    };
    match &item.body {
        Some(bytes) => {
            let (field, value) = body_field(bytes, placeholder);
            request[field] = value;
        }
        // Refused for its size before it was read: pad an empty body to the
        // size it had, so the replay is refused the same way.
        None if item.status == 413 => {
            request["body"] = json!("");
            let size = item
                .declared_length
                .and_then(|n| usize::try_from(n).ok())
                .unwrap_or(body_limit.saturating_add(1));
            request["padding"] = json!(size);
        }
        // Refused before the body was read (headers): it did not matter.
        None => {}
    }
    let answer: Option<Value> = serde_json::from_slice(&item.response).ok();
    let field = |name: &str| answer.as_ref().and_then(|a| a.get(name)).cloned();
    let mut expect = json!({"status": item.status, "replayed": item.replayed});
    if item.status == 200 {
        expect["code"] = Value::Null;
        if let Some(status) = field("status") {
            expect["body"] = json!({ "status": status });
        }
    } else {
        if let Some(code) = field("code") {
            expect["code"] = code;
        }
        if let Some(message) = field("customerErrorMessage") {
            expect["customerErrorMessage"] = message;
        }
    }
    json!({
        "description": format!("captured {}", item.at.to_rfc3339_opts(chrono::SecondsFormat::Micros, true)),
        "request": request,
        "expect": expect,
    })
}

/// The body as the fixture keeps it: JSON when it is a JSON object or array that
/// survives a round trip, else the text verbatim, else base64; `apiKey` redacted
/// in every case.
fn body_field(bytes: &[u8], placeholder: &str) -> (&'static str, Value) {
    let Ok(text) = std::str::from_utf8(bytes) else {
        let redacted = redact_text(bytes, placeholder);
        return (
            "bodyBase64",
            Value::String(base64::engine::general_purpose::STANDARD.encode(redacted)),
        );
    };
    if let Ok(mut value) = serde_json::from_str::<Value>(text)
        && (value.is_object() || value.is_array())
        && !has_duplicate_keys(text)
    {
        redact_value(&mut value, placeholder);
        return ("body", value);
    }
    let redacted = redact_text(text.as_bytes(), placeholder);
    (
        "body",
        Value::String(String::from_utf8_lossy(&redacted).into_owned()),
    )
}

/// Replaces the value of every `apiKey` member (any depth, any case).
pub fn redact_value(value: &mut Value, placeholder: &str) {
    match value {
        Value::Object(map) => {
            for (name, v) in map.iter_mut() {
                if name.eq_ignore_ascii_case("apiKey") {
                    *v = Value::String(placeholder.to_string());
                } else {
                    redact_value(v, placeholder);
                }
            }
        }
        Value::Array(items) => items.iter_mut().for_each(|v| redact_value(v, placeholder)),
        _ => {}
    }
}

/// The same for text that is not valid JSON: the token after each `"apiKey":`
/// (a string, or a bare scalar) becomes `"<redacted>"`.
pub fn redact_text(bytes: &[u8], placeholder: &str) -> Vec<u8> {
    const NEEDLE: &[u8] = b"\"apikey\"";
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let is_key = bytes.len() - i >= NEEDLE.len()
            && bytes[i..i + NEEDLE.len()].eq_ignore_ascii_case(NEEDLE);
        if !is_key {
            out.push(bytes[i]);
            i += 1;
            continue;
        }
        out.extend_from_slice(&bytes[i..i + NEEDLE.len()]);
        i += NEEDLE.len();
        let mut j = i;
        while j < bytes.len() && bytes[j].is_ascii_whitespace() {
            j += 1;
        }
        if j >= bytes.len() || bytes[j] != b':' {
            continue;
        }
        j += 1;
        while j < bytes.len() && bytes[j].is_ascii_whitespace() {
            j += 1;
        }
        out.extend_from_slice(&bytes[i..j]);
        let end = if bytes.get(j) == Some(&b'"') {
            // To the closing quote, skipping escapes; an unterminated string runs
            // to the end and is redacted whole.
            let mut k = j + 1;
            while k < bytes.len() && bytes[k] != b'"' {
                k += if bytes[k] == b'\\' { 2 } else { 1 };
            }
            (k + 1).min(bytes.len())
        } else {
            let mut k = j;
            while k < bytes.len() && !matches!(bytes[k], b',' | b'}' | b']') {
                k += 1;
            }
            k
        };
        if end > j {
            out.extend_from_slice(format!("\"{placeholder}\"").as_bytes());
        }
        i = end;
    }
    out
}

/// Whether any object in `text` repeats a member name: such a body is kept as
/// text, since a JSON value would keep only one of the members.
fn has_duplicate_keys(text: &str) -> bool {
    use serde::de::{DeserializeSeed, Deserializer, IgnoredAny, MapAccess, SeqAccess, Visitor};
    use std::collections::HashSet;
    use std::fmt;

    struct Check;

    impl<'de> DeserializeSeed<'de> for Check {
        type Value = bool;
        fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<bool, D::Error> {
            d.deserialize_any(self)
        }
    }

    impl<'de> Visitor<'de> for Check {
        type Value = bool;
        fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
            f.write_str("JSON")
        }
        fn visit_bool<E>(self, _: bool) -> Result<bool, E> {
            Ok(false)
        }
        fn visit_i64<E>(self, _: i64) -> Result<bool, E> {
            Ok(false)
        }
        fn visit_u64<E>(self, _: u64) -> Result<bool, E> {
            Ok(false)
        }
        fn visit_f64<E>(self, _: f64) -> Result<bool, E> {
            Ok(false)
        }
        fn visit_str<E>(self, _: &str) -> Result<bool, E> {
            Ok(false)
        }
        fn visit_unit<E>(self) -> Result<bool, E> {
            Ok(false)
        }
        fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<bool, A::Error> {
            let mut dup = false;
            while let Some(d) = seq.next_element_seed(Check)? {
                dup |= d;
            }
            Ok(dup)
        }
        fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<bool, A::Error> {
            let mut seen = HashSet::new();
            let mut dup = false;
            while let Some(key) = map.next_key::<String>()? {
                // A number under `arbitrary_precision` arrives as a private map.
                if key == "$serde_json::private::Number" {
                    map.next_value::<IgnoredAny>()?;
                    return Ok(false);
                }
                dup |= !seen.insert(key);
                dup |= map.next_value_seed(Check)?;
            }
            Ok(dup)
        }
    }

    let mut de = serde_json::Deserializer::from_str(text);
    Check.deserialize(&mut de).unwrap_or(false)
}

#[cfg(test)]
mod tests {
    use super::*;
    use actix_web::http::header::{HeaderName, HeaderValue};

    fn headers() -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in [
            ("content-type", "application/json"),
            ("accept", "application/json"),
            ("x-lightspeed-idempotency-key", "LS1_k"),
            ("authorization", "Bearer secret"),
            ("cookie", "s=secret"),
        ] {
            h.insert(
                HeaderName::from_static(k),
                HeaderValue::from_str(v).unwrap(),
            );
        }
        h
    }

    fn wait_for_files(dir: &Path, n: usize) -> Vec<PathBuf> {
        for _ in 0..200 {
            let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
                .unwrap()
                .map(|e| e.unwrap().path())
                .filter(|p| p.extension().is_some_and(|e| e == "json"))
                .collect();
            if files.len() >= n {
                files.sort();
                return files;
            }
            std::thread::sleep(std::time::Duration::from_millis(10));
        }
        panic!("captures not written");
    }

    #[test]
    fn api_keys_are_redacted_in_json_and_text() {
        let mut v = json!({"apiKey": "s3cret", "x": [{"APIKEY": 1}], "y": "apiKey"});
        redact_value(&mut v, REDACTED);
        assert_eq!(
            v,
            json!({"apiKey": REDACTED, "x": [{"APIKEY": REDACTED}], "y": "apiKey"})
        );
        let text =
            br#"{"apiKey" : "s3\"cret", "ApiKey":12345, "name": "apiKey", "apikey": "unterminated"#;
        let out = String::from_utf8(redact_text(text, REDACTED)).unwrap();
        assert!(!out.contains("s3") && !out.contains("12345") && !out.contains("unterminated"));
        assert_eq!(out.matches(REDACTED).count(), 3, "{out}");
        assert!(out.contains(r#""name": "apiKey""#), "{out}");
    }

    #[test]
    fn duplicate_members_are_detected() {
        assert!(has_duplicate_keys(r#"{"a":1,"a":2}"#));
        assert!(has_duplicate_keys(r#"[{"b":{"a":1.5,"a":2}}]"#));
        assert!(!has_duplicate_keys(r#"{"a":1.50,"b":{"a":[1,2]}}"#));
    }

    #[test]
    fn bodies_keep_their_meaning() {
        let (f, v) = body_field(br#"{"amount": 66.0, "apiKey": "k"}"#, REDACTED);
        assert_eq!(f, "body");
        assert_eq!(v["amount"].to_string(), "66.0");
        assert_eq!(v["apiKey"], REDACTED);
        // A JSON string body is kept as its text, or a replay would unquote it.
        assert_eq!(body_field(br#""charge""#, REDACTED).1, json!("\"charge\""));
        let (_, v) = body_field(br#"{"apiKey":"k","apiKey":"j"}"#, REDACTED);
        assert_eq!(
            v,
            json!(format!(
                r#"{{"apiKey":"{REDACTED}","apiKey":"{REDACTED}"}}"#
            ))
        );
        let (f, _) = body_field(&[b'{', 0xff, b'}'], REDACTED);
        assert_eq!(f, "bodyBase64");
    }

    #[test]
    fn deliveries_become_fixtures_in_time_order() {
        let dir = tempfile::tempdir().unwrap();
        let w = CaptureWriter::with_queue(dir.path(), 1024, 16).unwrap();
        let body = Bytes::from_static(
            br#"{"businessExternalReference":"quickbooks-123","apiKey":"quickbooks-key-345"}"#,
        );
        assert!(w.record(
            &headers(),
            Some(body),
            200,
            br#"{"status":"posted","pmsReference":"MEM-1","idempotencyKey":"LS1_k"}"#.to_vec(),
            false
        ));
        assert!(w.record(
            &headers(),
            None,
            413,
            br#"{"customerErrorMessage":"Receipt too large to post","code":"payload_too_large"}"#
                .to_vec(),
            false
        ));
        let files = wait_for_files(dir.path(), 2);
        let first = std::fs::read_to_string(&files[0]).unwrap();
        assert!(!first.contains("quickbooks-key-345"), "{first}");
        assert!(!first.contains("secret"), "{first}");
        let f = crate::replay::Fixture::parse(first.as_bytes()).unwrap();
        assert_eq!(f.request.headers.len(), 3);
        let e = f.expect.unwrap();
        assert_eq!(
            (e.status, e.replayed, e.code),
            (200, Some(false), Some(None))
        );
        assert_eq!(e.body.unwrap(), json!({"status": "posted"}));
        let second = crate::replay::Fixture::parse(&std::fs::read(&files[1]).unwrap()).unwrap();
        assert_eq!(second.request.padding, 1025);
        assert_eq!(
            second.expect.unwrap().code,
            Some(Some("payload_too_large".into()))
        );
    }

    #[test]
    fn a_full_queue_drops_the_capture_not_the_caller() {
        let dir = tempfile::tempdir().unwrap();
        // A writer whose thread never reads: the queue holds one entry.
        let (tx, _rx) = sync_channel(1);
        let w = CaptureWriter {
            dir: dir.path().to_path_buf(),
            tx: Some(tx),
            thread: None,
            seq: AtomicU64::new(0),
        };
        let started = std::time::Instant::now();
        assert!(w.record(&headers(), None, 400, b"{}".to_vec(), false));
        assert!(!w.record(&headers(), None, 400, b"{}".to_vec(), false));
        assert!(started.elapsed() < std::time::Duration::from_secs(1));
    }
}
