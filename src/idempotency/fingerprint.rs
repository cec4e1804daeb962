//! The fingerprint that tells a true duplicate from a reused key: SHA-256 of the
//! body's canonical JSON (object keys sorted, insignificant white space removed,
//! numbers kept exactly as written, strings re-escaped one way).

use std::io;

use serde_json::Value;
use sha2::{Digest, Sha256};

/// Hex SHA-256 of the canonical form of `body`, or `None` if it is not JSON.
pub fn fingerprint(body: &[u8]) -> Option<String> {
    // With `arbitrary_precision` a number keeps its text; the default `Map` is a
    // BTreeMap, so serialising the value writes keys in sorted order.
    let value: Value = serde_json::from_slice(body).ok()?;
    Some(fingerprint_value(&value))
}

pub fn fingerprint_value(value: &Value) -> String {
    let mut writer = HashWriter(Sha256::new());
    // Writing into a hasher cannot fail, and a `Value` always serialises.
    let _ = serde_json::to_writer(&mut writer, value);
    hex::encode(writer.0.finalize())
}

/// The canonical text itself (for tests and for people comparing two payloads).
pub fn canonical_json(body: &[u8]) -> Option<String> {
    let value: Value = serde_json::from_slice(body).ok()?;
    serde_json::to_string(&value).ok()
}

struct HashWriter(Sha256);

impl io::Write for HashWriter {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.0.update(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn key_order_and_white_space_do_not_matter() {
        let a = br#"{"b": 1, "a": [1, 2, {"y": true, "x": null}]}"#;
        let b = b"{\n  \"a\":[1,2,{\"x\":null,\"y\":true}],\n\t\"b\":1\n}";
        assert_eq!(fingerprint(a), fingerprint(b));
        assert_eq!(
            canonical_json(a).unwrap(),
            r#"{"a":[1,2,{"x":null,"y":true}],"b":1}"#
        );
    }

    #[test]
    fn numbers_are_kept_as_written() {
        assert_eq!(
            canonical_json(br#"{"a": 66.0, "b": -0.10, "c": 12345678901234.56}"#).unwrap(),
            r#"{"a":66.0,"b":-0.10,"c":12345678901234.56}"#
        );
        assert_ne!(fingerprint(br#"{"a": 66.0}"#), fingerprint(br#"{"a": 66}"#));
        assert_ne!(
            fingerprint(br#"{"a": 0.1}"#),
            fingerprint(br#"{"a": 0.10}"#)
        );
    }

    #[test]
    fn string_escapes_are_canonical() {
        assert_eq!(
            fingerprint(br#"{"a": "\u00e9"}"#),
            fingerprint("{\"a\": \"é\"}".as_bytes())
        );
        assert_eq!(
            fingerprint(br#"{"a": "\/"}"#),
            fingerprint(br#"{"a": "/"}"#)
        );
    }

    #[test]
    fn any_value_change_changes_the_fingerprint() {
        assert_ne!(fingerprint(br#"{"a": "x"}"#), fingerprint(br#"{"a": "y"}"#));
        assert_ne!(
            fingerprint(br#"{"a": [1, 2]}"#),
            fingerprint(br#"{"a": [2, 1]}"#)
        );
        assert!(fingerprint(b"{").is_none());
        assert_eq!(fingerprint(br#"{"a":1}"#).unwrap().len(), 64);
    }
}
