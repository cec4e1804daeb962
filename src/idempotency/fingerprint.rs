//! The fingerprint that tells a true duplicate from a reused key: SHA-256 of the
//! body's canonical JSON (object keys sorted, insignificant white space removed,
//! numbers kept exactly as written, strings re-escaped one way).
//!
//! The canonical text is streamed into the hasher from a borrowed tree: strings
//! without escapes are never copied, and no map is built. It is byte for byte the
//! text `serde_json::Value` would print (keys in byte order, the last of
//! duplicate keys wins), so records written by earlier releases still match.

use std::borrow::Cow;
use std::fmt;
use std::io::{self, Write};

use serde::Deserialize;
use serde::de::{self, Deserializer, MapAccess, SeqAccess, Visitor};
use sha2::{Digest, Sha256};

/// Hex SHA-256 of the canonical form of `body`, or `None` if it is not JSON.
pub fn fingerprint(body: &[u8]) -> Option<String> {
    let mut de = serde_json::Deserializer::from_slice(body);
    let tree = Canon::deserialize(&mut de).ok()?;
    de.end().ok()?;
    let mut writer = HashWriter(Sha256::new());
    tree.write(&mut writer).ok()?;
    Some(hex::encode(writer.0.finalize()))
}

/// The canonical text itself (for tests and for people comparing two payloads).
pub fn canonical_json(body: &[u8]) -> Option<String> {
    let mut de = serde_json::Deserializer::from_slice(body);
    let tree = Canon::deserialize(&mut de).ok()?;
    de.end().ok()?;
    let mut out = Vec::with_capacity(body.len());
    tree.write(&mut out).ok()?;
    String::from_utf8(out).ok()
}

/// serde_json's `arbitrary_precision` hands numbers over as a map with this key.
const NUMBER_TOKEN: &str = "$serde_json::private::Number";

enum Canon<'a> {
    Null,
    Bool(bool),
    Number(String),
    Str(Cow<'a, str>),
    Array(Vec<Canon<'a>>),
    Object(Vec<(Cow<'a, str>, Canon<'a>)>),
}

impl Canon<'_> {
    fn write<W: Write>(&self, out: &mut W) -> io::Result<()> {
        match self {
            Canon::Null => out.write_all(b"null"),
            Canon::Bool(true) => out.write_all(b"true"),
            Canon::Bool(false) => out.write_all(b"false"),
            Canon::Number(text) => out.write_all(text.as_bytes()),
            Canon::Str(s) => serde_json::to_writer(&mut *out, s.as_ref()).map_err(io::Error::other),
            Canon::Array(items) => {
                out.write_all(b"[")?;
                for (i, item) in items.iter().enumerate() {
                    if i > 0 {
                        out.write_all(b",")?;
                    }
                    item.write(out)?;
                }
                out.write_all(b"]")
            }
            Canon::Object(entries) => {
                out.write_all(b"{")?;
                for (i, (key, value)) in entries.iter().enumerate() {
                    if i > 0 {
                        out.write_all(b",")?;
                    }
                    serde_json::to_writer(&mut *out, key.as_ref()).map_err(io::Error::other)?;
                    out.write_all(b":")?;
                    value.write(out)?;
                }
                out.write_all(b"}")
            }
        }
    }
}

/// A string that borrows from the input when it has no escapes.
struct Text<'a>(Cow<'a, str>);

impl<'de> Deserialize<'de> for Text<'de> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = Text<'de>;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a string")
            }
            fn visit_borrowed_str<E: de::Error>(self, v: &'de str) -> Result<Self::Value, E> {
                Ok(Text(Cow::Borrowed(v)))
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<Self::Value, E> {
                Ok(Text(Cow::Owned(v.to_string())))
            }
            fn visit_string<E: de::Error>(self, v: String) -> Result<Self::Value, E> {
                Ok(Text(Cow::Owned(v)))
            }
        }
        d.deserialize_str(V)
    }
}

impl<'de> Deserialize<'de> for Canon<'de> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_any(CanonVisitor)
    }
}

struct CanonVisitor;

impl<'de> Visitor<'de> for CanonVisitor {
    type Value = Canon<'de>;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("any JSON value")
    }
    fn visit_unit<E: de::Error>(self) -> Result<Self::Value, E> {
        Ok(Canon::Null)
    }
    fn visit_bool<E: de::Error>(self, v: bool) -> Result<Self::Value, E> {
        Ok(Canon::Bool(v))
    }
    fn visit_i64<E: de::Error>(self, v: i64) -> Result<Self::Value, E> {
        Ok(Canon::Number(v.to_string()))
    }
    fn visit_u64<E: de::Error>(self, v: u64) -> Result<Self::Value, E> {
        Ok(Canon::Number(v.to_string()))
    }
    fn visit_borrowed_str<E: de::Error>(self, v: &'de str) -> Result<Self::Value, E> {
        Ok(Canon::Str(Cow::Borrowed(v)))
    }
    fn visit_str<E: de::Error>(self, v: &str) -> Result<Self::Value, E> {
        Ok(Canon::Str(Cow::Owned(v.to_string())))
    }
    fn visit_string<E: de::Error>(self, v: String) -> Result<Self::Value, E> {
        Ok(Canon::Str(Cow::Owned(v)))
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Self::Value, A::Error> {
        let mut items = Vec::with_capacity(seq.size_hint().unwrap_or(0).min(1024));
        while let Some(item) = seq.next_element::<Canon<'de>>()? {
            items.push(item);
        }
        Ok(Canon::Array(items))
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
        let mut entries: Vec<(Cow<'de, str>, Canon<'de>)> = Vec::new();
        while let Some(Text(key)) = map.next_key::<Text<'de>>()? {
            if entries.is_empty() && key == NUMBER_TOKEN {
                let text: String = map.next_value()?;
                return Ok(Canon::Number(text));
            }
            let value = map.next_value::<Canon<'de>>()?;
            entries.push((key, value));
        }
        // Byte order of keys, as a BTreeMap<String, _> has; for duplicate keys the
        // last one wins (stable sort keeps input order among equals).
        entries.sort_by(|a, b| a.0.as_bytes().cmp(b.0.as_bytes()));
        let mut deduped: Vec<(Cow<'de, str>, Canon<'de>)> = Vec::with_capacity(entries.len());
        for entry in entries {
            match deduped.last_mut() {
                Some(last) if last.0 == entry.0 => *last = entry,
                _ => deduped.push(entry),
            }
        }
        Ok(Canon::Object(deduped))
    }
}

struct HashWriter(Sha256);

impl Write for HashWriter {
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
