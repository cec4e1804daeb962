//! The fingerprint that tells a true duplicate from a reused key: SHA-256 of the
//! body's canonical JSON (object keys sorted, insignificant white space removed,
//! numbers kept exactly as written, strings re-escaped one way).
//!
//! The canonical text is produced by a small scanner over the raw bytes: strings
//! without escapes and plain numbers are copied as they stand (their canonical
//! form *is* their text), and only escaped strings and exponents go through
//! serde_json. It is byte for byte the text `serde_json::Value` would print
//! (keys in byte order, the last of duplicate keys wins), so records written by
//! earlier releases still match; a test pins that.

use std::borrow::Cow;

use sha2::{Digest, Sha256};

/// Deeper nesting is refused (serde_json's own recursion limit is 128).
const MAX_DEPTH: usize = 128;

/// Hex SHA-256 of the canonical form of `body`, or `None` if it is not JSON.
pub fn fingerprint(body: &[u8]) -> Option<String> {
    let canonical = canonical_bytes(body)?;
    Some(hex::encode(Sha256::digest(&canonical)))
}

/// The canonical text itself (for tests and for people comparing two payloads).
pub fn canonical_json(body: &[u8]) -> Option<String> {
    String::from_utf8(canonical_bytes(body)?).ok()
}

fn canonical_bytes(body: &[u8]) -> Option<Vec<u8>> {
    // Refuse invalid UTF-8 up front: the scanner copies string bytes verbatim.
    std::str::from_utf8(body).ok()?;
    let mut scanner = Scanner { b: body, i: 0 };
    let mut out = Vec::with_capacity(body.len());
    scanner.value(&mut out, 0)?;
    scanner.ws();
    (scanner.i == body.len()).then_some(out)
}

struct Scanner<'a> {
    b: &'a [u8],
    i: usize,
}

impl<'a> Scanner<'a> {
    fn ws(&mut self) {
        while let Some(b' ' | b'\n' | b'\r' | b'\t') = self.b.get(self.i) {
            self.i += 1;
        }
    }

    fn literal(&mut self, word: &[u8], out: &mut Vec<u8>) -> Option<()> {
        if self.b.get(self.i..self.i + word.len())? == word {
            self.i += word.len();
            out.extend_from_slice(word);
            Some(())
        } else {
            None
        }
    }

    fn value(&mut self, out: &mut Vec<u8>, depth: usize) -> Option<()> {
        self.ws();
        match *self.b.get(self.i)? {
            b'{' => self.object(out, depth + 1),
            b'[' => self.array(out, depth + 1),
            b'"' => {
                let text = self.string()?;
                write_string(&text, out);
                Some(())
            }
            b't' => self.literal(b"true", out),
            b'f' => self.literal(b"false", out),
            b'n' => self.literal(b"null", out),
            b'-' | b'0'..=b'9' => self.number(out),
            _ => None,
        }
    }

    /// The string at the cursor, unescaped (borrowed when it has no escapes).
    fn string(&mut self) -> Option<Cow<'a, str>> {
        let start = self.i;
        self.i += 1;
        let mut escaped = false;
        loop {
            match *self.b.get(self.i)? {
                b'"' => break,
                b'\\' => {
                    escaped = true;
                    self.i += 2;
                }
                c if c < 0x20 => return None,
                _ => self.i += 1,
            }
        }
        self.i += 1;
        let quoted = &self.b[start..self.i];
        if escaped {
            serde_json::from_slice::<String>(quoted)
                .ok()
                .map(Cow::Owned)
        } else {
            std::str::from_utf8(&quoted[1..quoted.len() - 1])
                .ok()
                .map(Cow::Borrowed)
        }
    }

    fn number(&mut self, out: &mut Vec<u8>) -> Option<()> {
        let start = self.i;
        let mut exponent = false;
        while let Some(&c) = self.b.get(self.i) {
            match c {
                b'0'..=b'9' | b'-' | b'+' | b'.' => {}
                b'e' | b'E' => exponent = true,
                _ => break,
            }
            self.i += 1;
        }
        let raw = &self.b[start..self.i];
        // serde_json validates the number; plain ones keep their text exactly,
        // exponents take its spelling (`1e2` prints as `1e+2`).
        let number: serde_json::Number = serde_json::from_slice(raw).ok()?;
        if exponent {
            out.extend_from_slice(number.to_string().as_bytes());
        } else {
            out.extend_from_slice(raw);
        }
        Some(())
    }

    fn array(&mut self, out: &mut Vec<u8>, depth: usize) -> Option<()> {
        if depth > MAX_DEPTH {
            return None;
        }
        self.i += 1;
        out.push(b'[');
        self.ws();
        if self.b.get(self.i) == Some(&b']') {
            self.i += 1;
            out.push(b']');
            return Some(());
        }
        loop {
            self.value(out, depth)?;
            self.ws();
            match *self.b.get(self.i)? {
                b',' => {
                    self.i += 1;
                    out.push(b',');
                }
                b']' => {
                    self.i += 1;
                    out.push(b']');
                    return Some(());
                }
                _ => return None,
            }
        }
    }

    fn object(&mut self, out: &mut Vec<u8>, depth: usize) -> Option<()> {
        if depth > MAX_DEPTH {
            return None;
        }
        self.i += 1;
        self.ws();
        if self.b.get(self.i) == Some(&b'}') {
            self.i += 1;
            out.extend_from_slice(b"{}");
            return Some(());
        }
        // Member values are written to one scratch buffer; the members are then
        // sorted by key and copied out.
        let mut scratch = Vec::new();
        let mut members: Vec<(Cow<'a, str>, usize, usize)> = Vec::new();
        loop {
            self.ws();
            if self.b.get(self.i) != Some(&b'"') {
                return None;
            }
            let key = self.string()?;
            self.ws();
            if self.b.get(self.i) != Some(&b':') {
                return None;
            }
            self.i += 1;
            let start = scratch.len();
            self.value(&mut scratch, depth)?;
            members.push((key, start, scratch.len()));
            self.ws();
            match *self.b.get(self.i)? {
                b',' => self.i += 1,
                b'}' => {
                    self.i += 1;
                    break;
                }
                _ => return None,
            }
        }
        // Byte order of keys, as a BTreeMap<String, _> has; of duplicate keys
        // the last wins (the sort is stable).
        members.sort_by(|a, b| a.0.as_bytes().cmp(b.0.as_bytes()));
        out.push(b'{');
        let mut first = true;
        for (n, (key, start, end)) in members.iter().enumerate() {
            if members.get(n + 1).is_some_and(|next| next.0 == *key) {
                continue;
            }
            if !first {
                out.push(b',');
            }
            first = false;
            write_string(key, out);
            out.push(b':');
            out.extend_from_slice(&scratch[*start..*end]);
        }
        out.push(b'}');
        Some(())
    }
}

/// A JSON string literal, escaped the way serde_json escapes.
fn write_string(text: &str, out: &mut Vec<u8>) {
    if text.bytes().all(|c| c >= 0x20 && c != b'"' && c != b'\\') {
        out.push(b'"');
        out.extend_from_slice(text.as_bytes());
        out.push(b'"');
    } else {
        // Writing a &str into a Vec cannot fail.
        let _ = serde_json::to_writer(&mut *out, text);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The reference: what `serde_json::Value` prints. Earlier releases hashed it.
    fn value_canonical(body: &[u8]) -> String {
        let v: serde_json::Value = serde_json::from_slice(body).unwrap();
        serde_json::to_string(&v).unwrap()
    }

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
        assert!(fingerprint(b"{} x").is_none());
        assert_eq!(fingerprint(br#"{"a":1}"#).unwrap().len(), 64);
    }

    #[test]
    fn every_fixture_body_canonicalises_as_before() {
        let root = concat!(env!("CARGO_MANIFEST_DIR"), "/fixtures");
        let files = crate::validate::collect_json_files(&[root.into()]).unwrap();
        assert!(files.len() > 50);
        for file in files {
            let bytes = std::fs::read(&file).unwrap();
            for body in [bytes.clone(), crate::validate::payload_of(&bytes)] {
                if serde_json::from_slice::<serde_json::Value>(&body).is_ok() {
                    assert_eq!(
                        canonical_json(&body).unwrap(),
                        value_canonical(&body),
                        "{}",
                        file.display()
                    );
                }
            }
        }
    }

    #[test]
    fn invalid_or_too_deep_json_has_no_fingerprint() {
        for bad in [
            &b"{\"a\":}"[..],
            b"[1,]",
            b"{\"a\" 1}",
            b"01",
            b"1.",
            b"\"\x01\"",
            b"tru",
            b"{\"a\":1}}",
            &[0xff],
        ] {
            assert!(
                fingerprint(bad).is_none(),
                "{:?}",
                String::from_utf8_lossy(bad)
            );
        }
        let deep = format!("{}{}", "[".repeat(200), "]".repeat(200));
        assert!(fingerprint(deep.as_bytes()).is_none());
        let ok = format!("{}{}", "[".repeat(100), "]".repeat(100));
        assert!(fingerprint(ok.as_bytes()).is_some());
    }

    #[test]
    fn canonical_text_is_what_earlier_releases_hashed() {
        let cases: Vec<Vec<u8>> = vec![
            include_bytes!("../../fixtures/payloads/seed-example.json").to_vec(),
            include_bytes!("../../fixtures/payloads/unknown-fields-and-enums.json").to_vec(),
            include_bytes!("../../fixtures/payloads/exact-money.json").to_vec(),
            r#"{"z":1,"a":{"\u0041":"\n\t\"q\"","a":[1e5,-0,0.5E-3,true,false,null]},"é":"ü","a\u0000":2}"#.as_bytes().to_vec(),
            br#"{"dup":1,"x":0,"dup":2}"#.to_vec(),
            br#"[{"b":1,"a":2},"s",3.14,[]]"#.to_vec(),
            br#""just a string""#.to_vec(),
            b"12345678901234567890123456789".to_vec(),
        ];
        for body in cases {
            assert_eq!(
                canonical_json(&body).unwrap(),
                value_canonical(&body),
                "{}",
                String::from_utf8_lossy(&body)
            );
        }
    }
}
