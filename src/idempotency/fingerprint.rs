//! The fingerprint that tells a true duplicate from a reused key: SHA-256 of the
//! body's canonical JSON (object keys sorted, insignificant white space removed,
//! numbers kept exactly as written, strings re-escaped one way).
//!
//! The canonical text is produced by a small scanner over the raw bytes: strings
//! without escapes and plain numbers are copied as they stand (their canonical
//! form *is* their text), and only escaped strings and exponents go through
//! serde_json. It is byte for byte the text `serde_json::Value` would print
//! (keys in byte order), so records written by earlier releases still match; a
//! test pins that.
//!
//! With two differences, on purpose. Duplicate member names are all kept, in the
//! order sent (`Value` keeps the last): the model refuses duplicates of fields
//! it reads, but duplicates inside fields it does not read are accepted, and two
//! bodies that differ only there must not share a fingerprint (one would be
//! replayed the other's answer instead of getting 422). And under `arbitrary_precision` serde_json carries
//! a number as an object whose key is `$serde_json::private::Number`, so its
//! `Value` takes a body's object with that first key for a number (or refuses the
//! body if the member is not a number's text). The scanner reads it as the object
//! it is. Lightspeed sends no such key; copying the quirk would only let two
//! different bodies share a fingerprint.

use std::borrow::Cow;

use sha2::{Digest, Sha256};

/// Deeper nesting is refused, as serde_json refuses it: its recursion budget of 128
/// runs out *at* the 128th nested array or object, so 127 levels is the most.
const MAX_DEPTH: usize = 127;

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
    let text = std::str::from_utf8(body).ok()?;
    canonical_scan(text).map(|(out, _)| out)
}

/// The canonical text and whether any object had duplicate member names (where
/// it differs from `serde_json::Value`'s text; for the fuzz oracle).
pub fn canonical_json_with_duplicates(body: &[u8]) -> Option<(String, bool)> {
    let (out, duplicates) = canonical_scan(std::str::from_utf8(body).ok()?)?;
    Some((String::from_utf8(out).ok()?, duplicates))
}

fn canonical_scan(text: &str) -> Option<(Vec<u8>, bool)> {
    let body = text.as_bytes();
    let mut scanner = Scanner {
        s: text,
        b: body,
        i: 0,
        spare: Vec::new(),
        duplicates: false,
    };
    let mut out = Vec::with_capacity(body.len());
    scanner.value(&mut out, 0)?;
    scanner.ws();
    (scanner.i == body.len()).then_some((out, scanner.duplicates))
}

/// An object's members while it is being sorted: key, and the span of its
/// canonical value in the scratch buffer.
type Members<'a> = Vec<(Cow<'a, str>, usize, usize)>;

struct Scanner<'a> {
    s: &'a str,
    b: &'a [u8],
    i: usize,
    /// Scratch buffers of finished objects, reused by the next ones (a payload
    /// has an object per line; allocating for each cost a third of the time).
    spare: Vec<(Vec<u8>, Members<'a>)>,
    /// Some object had a member name twice.
    duplicates: bool,
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
        if escaped {
            serde_json::from_slice::<String>(&self.b[start..self.i])
                .ok()
                .map(Cow::Owned)
        } else {
            // The body is valid UTF-8 and quotes are ASCII: the slice is on
            // character boundaries (`get` checks, without re-validating).
            self.s.get(start + 1..self.i - 1).map(Cow::Borrowed)
        }
    }

    /// A number per JSON's grammar. Plain ones keep their text exactly (that is
    /// how serde_json's arbitrary-precision `Value` prints them); exponents take
    /// serde_json's spelling (`1e2` prints as `1e+2`).
    fn number(&mut self, out: &mut Vec<u8>) -> Option<()> {
        let b = self.b;
        let start = self.i;
        let digits = |mut i: usize| {
            while let Some(b'0'..=b'9') = b.get(i) {
                i += 1;
            }
            i
        };
        let mut i = start;
        if b.get(i) == Some(&b'-') {
            i += 1;
        }
        i = match b.get(i)? {
            b'0' => i + 1,
            b'1'..=b'9' => digits(i + 1),
            _ => return None,
        };
        if b.get(i) == Some(&b'.') {
            let end = digits(i + 1);
            if end == i + 1 {
                return None;
            }
            i = end;
        }
        let exponent = matches!(b.get(i), Some(b'e' | b'E'));
        if exponent {
            i += 1;
            if let Some(b'+' | b'-') = b.get(i) {
                i += 1;
            }
            let end = digits(i);
            if end == i {
                return None;
            }
            i = end;
        }
        self.i = i;
        let raw = &b[start..i];
        if exponent {
            let number: serde_json::Number = serde_json::from_slice(raw).ok()?;
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
        let (mut scratch, mut members) = self.spare.pop().unwrap_or_default();
        scratch.clear();
        members.clear();
        let written = self.members(&mut scratch, &mut members, depth);
        if written.is_some() {
            self.duplicates |= write_sorted(&scratch, &mut members, out);
        }
        self.spare.push((scratch, members));
        written
    }

    fn members(
        &mut self,
        scratch: &mut Vec<u8>,
        members: &mut Members<'a>,
        depth: usize,
    ) -> Option<()> {
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
            self.value(scratch, depth)?;
            members.push((key, start, scratch.len()));
            self.ws();
            match *self.b.get(self.i)? {
                b',' => self.i += 1,
                b'}' => {
                    self.i += 1;
                    return Some(());
                }
                _ => return None,
            }
        }
    }
}

/// Byte order of keys, as a BTreeMap<String, _> has; duplicate keys are all
/// written, in the order sent (the sort is stable). Says whether there were any.
fn write_sorted(scratch: &[u8], members: &mut Members<'_>, out: &mut Vec<u8>) -> bool {
    members.sort_by(|a, b| a.0.as_bytes().cmp(b.0.as_bytes()));
    out.push(b'{');
    let mut duplicates = false;
    for (n, (key, start, end)) in members.iter().enumerate() {
        if n > 0 {
            out.push(b',');
            duplicates |= members[n - 1].0 == *key;
        }
        write_string(key, out);
        out.push(b':');
        out.extend_from_slice(&scratch[*start..*end]);
    }
    out.push(b'}');
    duplicates
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
    fn numbers_follow_json_grammar_exactly_as_serde_json_does() {
        let numbers = [
            "0",
            "-0",
            "01",
            "-01",
            "1.",
            ".5",
            "-",
            "1e",
            "1e+",
            "1E5",
            "1.5e-3",
            "-0.0e0",
            "00",
            "1.2.3",
            "+1",
            "1e5.5",
            "1-2",
            "2e-0",
            "0.000",
            "9".repeat(400).as_str(),
        ]
        .map(|n| n.to_string());
        for n in &numbers {
            for body in [format!("[{n}]"), format!("{{\"a\":{n}}}"), n.clone()] {
                let expected = serde_json::from_str::<serde_json::Value>(&body)
                    .ok()
                    .map(|v| serde_json::to_string(&v).unwrap());
                assert_eq!(canonical_json(body.as_bytes()), expected, "{body}");
            }
        }
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
                // Bodies with duplicate members canonicalise differently on purpose.
                let duplicates = canonical_json_with_duplicates(&body).is_some_and(|(_, d)| d);
                if serde_json::from_slice::<serde_json::Value>(&body).is_ok() && !duplicates {
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

    /// fuzz/regressions/fingerprint/nesting-128: 128 levels had a fingerprint
    /// although serde_json (and so every earlier release) refuses them.
    #[test]
    fn nesting_limit_is_serde_jsons() {
        for depth in [126, 127, 128, 129] {
            let arrays = format!("{}{}", "[".repeat(depth), "]".repeat(depth));
            let objects = format!(
                "{}{{}}{}",
                "{\"a\":".repeat(depth - 1),
                "}".repeat(depth - 1)
            );
            for body in [arrays, objects] {
                let serde = serde_json::from_str::<serde_json::Value>(&body).is_ok();
                assert_eq!(canonical_json(body.as_bytes()).is_some(), serde, "{depth}");
                assert_eq!(serde, depth <= 127, "{depth}");
            }
        }
    }

    /// fuzz/regressions/fingerprint/private-number-key: where the scanner and
    /// serde_json's `Value` differ, by design (see the module documentation).
    #[test]
    fn serde_jsons_private_number_key_is_an_ordinary_key() {
        let body = br#"{"$serde_json::private::Number":"1e"}"#;
        assert!(serde_json::from_slice::<serde_json::Value>(body).is_err());
        assert_eq!(canonical_json(body).unwrap(), String::from_utf8_lossy(body));
        let disguised = br#"{"a":{"$serde_json::private::Number":"5"}}"#;
        assert_eq!(value_canonical(disguised), r#"{"a":5}"#);
        assert_ne!(fingerprint(disguised), fingerprint(br#"{"a":5}"#));
    }

    /// Issue 21: bodies that differ only in a duplicate member of a field the
    /// model does not read are different deliveries.
    #[test]
    fn duplicate_members_are_all_fingerprinted() {
        let last_two = br#"{"future":{"a":1,"a":2}}"#;
        let only_two = br#"{"future":{"a":2}}"#;
        let three_two = br#"{"future":{"a":3,"a":2}}"#;
        assert_ne!(fingerprint(last_two), fingerprint(only_two));
        assert_ne!(fingerprint(last_two), fingerprint(three_two));
        assert_eq!(
            canonical_json(br#"{"b":0,"a":1, "a" :2}"#).unwrap(),
            r#"{"a":1,"a":2,"b":0}"#
        );
        assert_eq!(
            canonical_json_with_duplicates(last_two),
            Some((r#"{"future":{"a":1,"a":2}}"#.to_string(), true))
        );
        assert_eq!(
            canonical_json_with_duplicates(only_two).map(|(_, d)| d),
            Some(false)
        );
    }

    #[test]
    fn canonical_text_is_what_earlier_releases_hashed() {
        let cases: Vec<Vec<u8>> = vec![
            include_bytes!("../../fixtures/payloads/seed-example.json").to_vec(),
            include_bytes!("../../fixtures/payloads/unknown-fields-and-enums.json").to_vec(),
            include_bytes!("../../fixtures/payloads/exact-money.json").to_vec(),
            r#"{"z":1,"a":{"\u0041":"\n\t\"q\"","a":[1e5,-0,0.5E-3,true,false,null]},"é":"ü","a\u0000":2}"#.as_bytes().to_vec(),
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
