//! Deserializers for the fields Lightspeed documents in more than one shape.
//!
//! `serde_json` runs with `arbitrary_precision`, so a JSON number reaches a
//! `deserialize_any` visitor as a one-entry map holding the number's text; that is
//! how money stays exact. `#[serde(untagged)]` and `flatten` would buffer those
//! maps and lose them, so each tolerant shape is a small visitor instead.

use std::fmt;
use std::str::FromStr;

use chrono::{DateTime, NaiveDateTime, TimeZone, Utc};
use rust_decimal::Decimal;
use serde::Deserialize;
use serde::de::{self, DeserializeOwned, Deserializer, MapAccess, SeqAccess, Visitor};

/// Parses a decimal from its JSON text exactly (`0.1` stays `0.1`, `66.0` keeps
/// its scale). Exponent forms (`1e-2`) are accepted.
pub fn parse_decimal(text: &str) -> Result<Decimal, String> {
    let text = text.trim();
    let parsed = if text.contains(['e', 'E']) {
        from_scientific_exact(text)
    } else {
        Decimal::from_str_exact(text).ok()
    };
    parsed.ok_or_else(|| format!("`{}` is not a representable decimal", shorten(text)))
}

/// `1.5e3` exactly, or nothing. (`Decimal::from_scientific` rounds a mantissa with
/// more digits than a `Decimal` holds: `1.0000000000000000000000000000001e0` became
/// `1`. Money is refused rather than rounded.)
fn from_scientific_exact(text: &str) -> Option<Decimal> {
    let (mantissa, exponent) = text.split_once(['e', 'E'])?;
    let exponent: i64 = exponent.parse().ok()?;
    let mantissa = Decimal::from_str_exact(mantissa).ok()?;
    if mantissa.is_zero() {
        return Some(Decimal::ZERO);
    }
    let mut digits = mantissa.mantissa();
    // Checked: an exponent near i64::MIN (`1e-9223372036854775808`) overflowed.
    let mut scale = i64::from(mantissa.scale()).checked_sub(exponent)?;
    if scale < 0 {
        let factor = 10i128.checked_pow(u32::try_from(-scale).ok()?)?;
        return Decimal::try_from_i128_with_scale(digits.checked_mul(factor)?, 0).ok();
    }
    // Trailing zeros carry no value: drop them while the scale is too large.
    while scale > i64::from(Decimal::MAX_SCALE) && digits % 10 == 0 {
        digits /= 10;
        scale -= 1;
    }
    Decimal::try_from_i128_with_scale(digits, u32::try_from(scale).ok()?).ok()
}

/// A money value or rate from its JSON text: exact where a `Decimal` holds it,
/// otherwise rounded (half-even) at 28 decimal places or 30 significant digits.
/// A Java POS sends float residue (`0.30000000000000004`,
/// `5.551115123125783e-17`); refusing it would lose a guest's bill, and digits
/// that far right never reach a folio (money is rounded to the currency's minor
/// unit where it is posted). A magnitude below 10^-28 reads as 0. Only a value
/// too large for a `Decimal` (about 7.9 × 10^28) is refused.
pub fn parse_amount(text: &str) -> Result<Decimal, String> {
    let text = text.trim();
    if let Ok(exact) = parse_decimal(text) {
        return Ok(exact);
    }
    rounded_decimal(text).ok_or_else(|| {
        let numeric = !text.is_empty()
            && text
                .bytes()
                .all(|b| b.is_ascii_digit() || matches!(b, b'.' | b'e' | b'E' | b'+' | b'-'));
        if numeric {
            format!("`{}` is too large", shorten(text))
        } else {
            format!("`{}` is not a number", shorten(text))
        }
    })
}

/// Digits kept before rounding (a `Decimal` holds 28 or 29).
const KEPT_DIGITS: usize = 30;

fn rounded_decimal(text: &str) -> Option<Decimal> {
    let (negative, rest) = match text.as_bytes().first()? {
        b'-' => (true, &text[1..]),
        b'+' => (false, &text[1..]),
        _ => (false, text),
    };
    let (mantissa, exponent) = match rest.split_once(['e', 'E']) {
        Some((m, e)) => (m, e.parse::<i64>().ok()?),
        None => (rest, 0),
    };
    let (int, frac) = mantissa.split_once('.').unwrap_or((mantissa, ""));
    if int.is_empty() && frac.is_empty()
        || !int.bytes().chain(frac.bytes()).all(|b| b.is_ascii_digit())
    {
        return None;
    }
    let digits: Vec<u8> = int.bytes().chain(frac.bytes()).map(|b| b - b'0').collect();
    let Some(first) = digits.iter().position(|&d| d != 0) else {
        return Some(Decimal::ZERO);
    };
    let significant = &digits[first..];
    let kept = significant.len().min(KEPT_DIGITS);
    let mut value = significant[..kept]
        .iter()
        .fold(0i128, |v, &d| v * 10 + i128::from(d));
    let dropped = &significant[kept..];
    if let Some((&next, tail)) = dropped.split_first() {
        let above_half = next > 5 || (next == 5 && tail.iter().any(|&d| d != 0));
        if above_half || (next == 5 && value % 2 == 1) {
            value += 1;
        }
    }
    // value × 10^-scale is the number.
    let frac_len = i64::try_from(frac.len()).ok()?;
    let dropped_len = i64::try_from(dropped.len()).ok()?;
    let mut scale = frac_len.checked_sub(exponent)?.checked_sub(dropped_len)?;
    let max_scale = i64::from(Decimal::MAX_SCALE);
    if scale > max_scale {
        let excess = scale - max_scale;
        // value < 10^31: shifted by 32 places or more it rounds to 0.
        value = if excess > 32 {
            0
        } else {
            divide_half_even(value, 10i128.pow(u32::try_from(excess).ok()?))
        };
        scale = max_scale;
    }
    if scale < 0 {
        value = value.checked_mul(10i128.checked_pow(u32::try_from(-scale).ok()?)?)?;
        scale = 0;
    }
    // A Decimal's mantissa has 96 bits: give up places until it fits.
    let mantissa_limit = i128::from(u64::MAX) << 32 | i128::from(u32::MAX);
    while value > mantissa_limit && scale > 0 {
        value = divide_half_even(value, 10);
        scale -= 1;
    }
    let signed = if negative { -value } else { value };
    Decimal::try_from_i128_with_scale(signed, u32::try_from(scale).ok()?).ok()
}

/// `value / divisor` (both positive), rounded half to even.
fn divide_half_even(value: i128, divisor: i128) -> i128 {
    let (quotient, remainder) = (value / divisor, value % divisor);
    match (remainder * 2).cmp(&divisor) {
        std::cmp::Ordering::Greater => quotient + 1,
        std::cmp::Ordering::Equal if quotient % 2 == 1 => quotient + 1,
        _ => quotient,
    }
}

fn shorten(text: &str) -> String {
    if text.chars().count() > 24 {
        let head: String = text.chars().take(20).collect();
        format!("{head}…")
    } else {
        text.to_string()
    }
}

/// The text of a JSON number delivered through `arbitrary_precision`.
fn number_text<'de, A: MapAccess<'de>>(map: A) -> Result<String, A::Error> {
    let number = serde_json::Number::deserialize(de::value::MapAccessDeserializer::new(map))?;
    Ok(number.to_string())
}

// ---------------------------------------------------------------------------
// Decimal: a number or a numeric string.

struct DecimalVisitor;

impl<'de> Visitor<'de> for DecimalVisitor {
    type Value = Option<Decimal>;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a decimal number")
    }
    fn visit_unit<E: de::Error>(self) -> Result<Self::Value, E> {
        Ok(None)
    }
    fn visit_none<E: de::Error>(self) -> Result<Self::Value, E> {
        Ok(None)
    }
    fn visit_some<D: Deserializer<'de>>(self, d: D) -> Result<Self::Value, D::Error> {
        d.deserialize_any(self)
    }
    fn visit_i64<E: de::Error>(self, v: i64) -> Result<Self::Value, E> {
        Ok(Some(Decimal::from(v)))
    }
    fn visit_u64<E: de::Error>(self, v: u64) -> Result<Self::Value, E> {
        Ok(Some(Decimal::from(v)))
    }
    fn visit_str<E: de::Error>(self, v: &str) -> Result<Self::Value, E> {
        parse_amount(v).map(Some).map_err(E::custom)
    }
    fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<Self::Value, A::Error> {
        let text = number_text(map)?;
        parse_amount(&text).map(Some).map_err(de::Error::custom)
    }
}

/// `Option<Decimal>` from a number, a numeric string or null (see [`parse_amount`]).
pub fn opt_decimal<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Decimal>, D::Error> {
    d.deserialize_any(DecimalVisitor)
}

// ---------------------------------------------------------------------------
// Identifiers: numbers or strings, kept as text.

/// An identifier Lightspeed sends as a number in one document and a string in
/// another. Kept as the exact text so large ids (`94489280528`) never round.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Id(pub String);

impl Id {
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for Id {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// Longest identifier accepted, in characters: ids are copied into logs, records
/// and PMS requests, so an unbounded one would make every copy unbounded too.
pub const MAX_ID_CHARS: usize = 255;

fn check_id_length<E: de::Error>(v: &str) -> Result<(), E> {
    if v.chars().count() > MAX_ID_CHARS {
        return Err(E::custom(format!(
            "identifier longer than {MAX_ID_CHARS} characters"
        )));
    }
    Ok(())
}

struct IdVisitor;

impl<'de> Visitor<'de> for IdVisitor {
    type Value = Option<Id>;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("an identifier (number or string)")
    }
    fn visit_unit<E: de::Error>(self) -> Result<Self::Value, E> {
        Ok(None)
    }
    fn visit_none<E: de::Error>(self) -> Result<Self::Value, E> {
        Ok(None)
    }
    fn visit_some<D: Deserializer<'de>>(self, d: D) -> Result<Self::Value, D::Error> {
        d.deserialize_any(self)
    }
    fn visit_i64<E: de::Error>(self, v: i64) -> Result<Self::Value, E> {
        Ok(Some(Id(v.to_string())))
    }
    fn visit_u64<E: de::Error>(self, v: u64) -> Result<Self::Value, E> {
        Ok(Some(Id(v.to_string())))
    }
    fn visit_str<E: de::Error>(self, v: &str) -> Result<Self::Value, E> {
        check_id_length(v)?;
        Ok(Some(Id(v.to_string())))
    }
    fn visit_string<E: de::Error>(self, v: String) -> Result<Self::Value, E> {
        check_id_length(&v)?;
        Ok(Some(Id(v)))
    }
    fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<Self::Value, A::Error> {
        let text = number_text(map)?;
        // An id is a whole number; `12.0` is tolerated as `12`, `12.5` is not.
        let value = parse_decimal(&text).map_err(de::Error::custom)?;
        if !value.fract().is_zero() {
            return Err(de::Error::custom(format!(
                "identifier `{}` is not a whole number",
                shorten(&text)
            )));
        }
        Ok(Some(Id(value.trunc().normalize().to_string())))
    }
}

/// `Option<Id>` from a number, a string or null.
pub fn opt_id<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Id>, D::Error> {
    d.deserialize_any(IdVisitor)
}

// ---------------------------------------------------------------------------
// Counts (covers): integer, integral decimal or numeric string.

/// `Option<u32>` for counts documented as integer in one place and number in another.
pub fn opt_count<'de, D: Deserializer<'de>>(d: D) -> Result<Option<u32>, D::Error> {
    let Some(value) = d.deserialize_any(DecimalVisitor)? else {
        return Ok(None);
    };
    if !value.fract().is_zero() || value.is_sign_negative() && !value.is_zero() {
        return Err(de::Error::custom("expected a whole, non-negative number"));
    }
    use rust_decimal::prelude::ToPrimitive;
    value
        .trunc()
        .to_u32()
        .map(Some)
        .ok_or_else(|| de::Error::custom("number too large"))
}

// ---------------------------------------------------------------------------
// Timestamps: RFC 3339 strings or integer epochs.

/// Epoch integers above this are milliseconds (it is year 5138 in seconds).
const EPOCH_MILLIS_THRESHOLD: i64 = 100_000_000_000;

fn from_epoch(value: i64) -> Option<DateTime<Utc>> {
    if value.abs() >= EPOCH_MILLIS_THRESHOLD {
        Utc.timestamp_millis_opt(value).single()
    } else {
        Utc.timestamp_opt(value, 0).single()
    }
}

/// Parses a timestamp text: RFC 3339, a naive date-time taken as UTC (Lightspeed
/// documents its times as UTC), or an integer epoch in seconds or milliseconds.
pub fn parse_timestamp(text: &str) -> Result<DateTime<Utc>, String> {
    let text = text.trim();
    if let Ok(t) = DateTime::parse_from_rfc3339(text) {
        return Ok(t.with_timezone(&Utc));
    }
    for format in ["%Y-%m-%dT%H:%M:%S%.f", "%Y-%m-%d %H:%M:%S%.f"] {
        if let Ok(t) = NaiveDateTime::parse_from_str(text, format) {
            return Ok(t.and_utc());
        }
    }
    if let Ok(epoch) = i64::from_str(text)
        && let Some(t) = from_epoch(epoch)
    {
        return Ok(t);
    }
    Err(format!("`{}` is not a date-time", shorten(text)))
}

struct TimestampVisitor;

impl<'de> Visitor<'de> for TimestampVisitor {
    type Value = Option<DateTime<Utc>>;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("an RFC 3339 date-time or an epoch integer")
    }
    fn visit_unit<E: de::Error>(self) -> Result<Self::Value, E> {
        Ok(None)
    }
    fn visit_none<E: de::Error>(self) -> Result<Self::Value, E> {
        Ok(None)
    }
    fn visit_some<D: Deserializer<'de>>(self, d: D) -> Result<Self::Value, D::Error> {
        d.deserialize_any(self)
    }
    fn visit_i64<E: de::Error>(self, v: i64) -> Result<Self::Value, E> {
        from_epoch(v)
            .map(Some)
            .ok_or_else(|| E::custom("epoch out of range"))
    }
    fn visit_u64<E: de::Error>(self, v: u64) -> Result<Self::Value, E> {
        let v = i64::try_from(v).map_err(|_| E::custom("epoch out of range"))?;
        self.visit_i64(v)
    }
    fn visit_str<E: de::Error>(self, v: &str) -> Result<Self::Value, E> {
        parse_timestamp(v).map(Some).map_err(E::custom)
    }
    fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<Self::Value, A::Error> {
        let text = number_text(map)?;
        // JSON Schema's "integer" includes `1609459200.0` and `1.6094592e9`: accept
        // any whole number, whatever its notation.
        use rust_decimal::prelude::ToPrimitive;
        let epoch = i64::from_str(&text)
            .ok()
            .or_else(|| {
                parse_decimal(&text)
                    .ok()
                    .filter(|d| d.fract().is_zero())
                    .and_then(|d| d.trunc().to_i64())
            })
            .ok_or_else(|| de::Error::custom("epoch must be a whole number"))?;
        self.visit_i64(epoch)
    }
}

/// `Option<DateTime<Utc>>` from an RFC 3339 string, an epoch integer or null.
pub fn opt_timestamp<'de, D: Deserializer<'de>>(d: D) -> Result<Option<DateTime<Utc>>, D::Error> {
    d.deserialize_any(TimestampVisitor)
}

// ---------------------------------------------------------------------------
// One-or-many: an object or an array of objects (taxLines).

struct OneOrManyVisitor<T>(std::marker::PhantomData<T>);

impl<'de, T: DeserializeOwned> Visitor<'de> for OneOrManyVisitor<T> {
    type Value = Vec<T>;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("an object or an array of objects")
    }
    fn visit_unit<E: de::Error>(self) -> Result<Self::Value, E> {
        Ok(Vec::new())
    }
    fn visit_none<E: de::Error>(self) -> Result<Self::Value, E> {
        Ok(Vec::new())
    }
    fn visit_some<D: Deserializer<'de>>(self, d: D) -> Result<Self::Value, D::Error> {
        d.deserialize_any(self)
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Self::Value, A::Error> {
        let mut out = Vec::with_capacity(seq.size_hint().unwrap_or(1).min(64));
        while let Some(item) = seq.next_element::<T>()? {
            out.push(item);
        }
        Ok(out)
    }
    fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<Self::Value, A::Error> {
        let one = T::deserialize(de::value::MapAccessDeserializer::new(ObjectOnly {
            inner: map,
        }))?;
        Ok(vec![one])
    }
}

/// `serde_json` hands a bare number to `deserialize_any` as a one-entry map under
/// a private key. This wrapper refuses that key, so `5` is not read as `{}`.
struct ObjectOnly<A> {
    inner: A,
}

const NUMBER_TOKEN: &str = "$serde_json::private::Number";

impl<'de, A: MapAccess<'de>> MapAccess<'de> for ObjectOnly<A> {
    type Error = A::Error;

    fn next_key_seed<K: de::DeserializeSeed<'de>>(
        &mut self,
        seed: K,
    ) -> Result<Option<K::Value>, A::Error> {
        use serde::de::IntoDeserializer;
        match self.inner.next_key::<String>()? {
            None => Ok(None),
            Some(key) if key == NUMBER_TOKEN => Err(de::Error::invalid_type(
                de::Unexpected::Other("a number"),
                &"an object or an array of objects",
            )),
            Some(key) => seed.deserialize(key.into_deserializer()).map(Some),
        }
    }

    fn next_value_seed<V: de::DeserializeSeed<'de>>(
        &mut self,
        seed: V,
    ) -> Result<V::Value, A::Error> {
        self.inner.next_value_seed(seed)
    }
}

/// `Vec<T>` from a single object, an array of objects, or null.
pub fn one_or_many<'de, D: Deserializer<'de>, T: DeserializeOwned>(
    d: D,
) -> Result<Vec<T>, D::Error> {
    d.deserialize_any(OneOrManyVisitor(std::marker::PhantomData))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde::Deserialize;

    #[test]
    fn scientific_notation_is_exact_or_refused() {
        for (text, exact) in [
            ("1.5e3", "1500"),
            ("6.60E+1", "66.0"),
            ("-25e-2", "-0.25"),
            ("0e999999999", "0"),
            ("1000e-30", "0.0000000000000000000000000010"),
            (
                "7.9228162514264337593543950335e28",
                "79228162514264337593543950335",
            ),
        ] {
            let parsed = parse_decimal(text).unwrap_or_else(|e| panic!("{text}: {e}"));
            assert_eq!(parsed, exact.parse::<Decimal>().unwrap(), "{text}");
        }
        // More digits than a Decimal holds, or out of range: refused, never rounded.
        for text in [
            "1.0000000000000000000000000000001e0",
            "12345678901234567890123456789012e-3",
            "1e-40",
            "1.5e30",
            "1e999999999",
            "1e-999999999",
            "1e99999999999999999999",
        ] {
            assert!(parse_decimal(text).is_err(), "{text} was accepted");
        }
    }

    /// fuzz/regressions/parse_charge/exponent-i64-min: the scale overflowed (a
    /// panic where overflow is checked: debug builds, tests, the fuzz targets).
    #[test]
    fn exponents_at_the_ends_of_i64_are_refused() {
        for text in [
            "1e-9223372036854775808",
            "-2.50E-9223372036854775808",
            "1.5e-9223372036854775807",
            "1e9223372036854775807",
        ] {
            assert!(parse_decimal(text).is_err(), "{text} was accepted");
        }
    }

    #[derive(Deserialize, Debug)]
    struct Probe {
        #[serde(default, deserialize_with = "opt_decimal")]
        d: Option<Decimal>,
        #[serde(default, deserialize_with = "opt_id")]
        id: Option<Id>,
        #[serde(default, deserialize_with = "opt_timestamp")]
        t: Option<DateTime<Utc>>,
        #[serde(default, deserialize_with = "opt_count")]
        c: Option<u32>,
        #[serde(default, deserialize_with = "one_or_many")]
        many: Vec<Inner>,
    }

    #[derive(Deserialize, Debug, PartialEq)]
    struct Inner {
        #[serde(default, deserialize_with = "opt_decimal")]
        x: Option<Decimal>,
    }

    fn probe(json: &str) -> Result<Probe, serde_json::Error> {
        serde_json::from_str(json)
    }

    #[test]
    fn decimals_round_trip_exactly() {
        for text in ["0.1", "66.0", "12345678901234.56", "-0.01", "1.10", "0"] {
            let p = probe(&format!(r#"{{"d": {text}}}"#)).unwrap();
            assert_eq!(p.d.unwrap().to_string(), text);
        }
    }

    #[test]
    fn decimals_accept_strings_and_exponents() {
        assert_eq!(
            probe(r#"{"d": "20.50"}"#).unwrap().d.unwrap().to_string(),
            "20.50"
        );
        assert_eq!(
            probe(r#"{"d": 1e-2}"#).unwrap().d.unwrap().to_string(),
            "0.01"
        );
        assert!(probe(r#"{"d": null}"#).unwrap().d.is_none());
        assert!(probe(r#"{}"#).unwrap().d.is_none());
    }

    #[test]
    fn decimals_refuse_garbage_and_overflow() {
        assert!(probe(r#"{"d": "abc"}"#).is_err());
        assert!(probe(r#"{"d": true}"#).is_err());
        assert!(probe(r#"{"d": [1]}"#).is_err());
        assert!(probe(r#"{"d": 1e400}"#).is_err());
        assert!(probe(r#"{"d": 123456789012345678901234567890123}"#).is_err());
    }

    /// Issue 21: a Java POS's float residue and tiny numbers are money too.
    #[test]
    fn amounts_accept_float_residue_and_tiny_numbers() {
        for (text, read) in [
            ("0.30000000000000004", "0.30000000000000004"),
            ("5.551115123125783e-17", "0.0000000000000000555111512313"),
            ("-5.551115123125783e-17", "-0.0000000000000000555111512313"),
            ("1e-29", "0"),
            ("1e-40", "0"),
            ("-1e-999999999", "0"),
            (
                "0.00000000000000000000000000015",
                "0.0000000000000000000000000002",
            ),
            (
                "0.00000000000000000000000000025",
                "0.0000000000000000000000000002",
            ),
            (
                "1.0000000000000000000000000000001e0",
                "1.0000000000000000000000000000",
            ),
            (
                "12345678901234567890123456789012e-3",
                "12345678901234567890123456789.012",
            ),
            (
                "\"0.1000000000000000055511151231257827\"",
                "0.1000000000000000055511151231",
            ),
        ] {
            let json = format!(r#"{{"d": {text}}}"#);
            let d = probe(&json)
                .unwrap_or_else(|e| panic!("{text}: {e}"))
                .d
                .unwrap();
            assert_eq!(d, read.parse::<Decimal>().unwrap(), "{text} read as {d}");
        }
        for text in ["1.5e30", "1e999999999", "123456789012345678901234567890123"] {
            let refusal = probe(&format!(r#"{{"d": {text}}}"#)).unwrap_err();
            assert!(refusal.to_string().contains("too large"), "{refusal}");
        }
    }

    #[test]
    fn ids_accept_numbers_and_strings() {
        assert_eq!(
            probe(r#"{"id": 94489280528}"#).unwrap().id.unwrap().0,
            "94489280528"
        );
        assert_eq!(probe(r#"{"id": "12345"}"#).unwrap().id.unwrap().0, "12345");
        assert_eq!(probe(r#"{"id": 6.0}"#).unwrap().id.unwrap().0, "6");
        assert!(probe(r#"{"id": 6.5}"#).is_err());
        assert!(probe(r#"{"id": {}}"#).is_err());
    }

    #[test]
    fn timestamps_accept_rfc3339_and_epochs() {
        let expected = "2021-01-01T00:00:00Z".parse::<DateTime<Utc>>().unwrap();
        for json in [
            r#"{"t": "2021-01-01T00:00:00Z"}"#,
            r#"{"t": "2021-01-01T01:00:00+01:00"}"#,
            r#"{"t": "2021-01-01T00:00:00"}"#,
            r#"{"t": 1609459200}"#,
            r#"{"t": 1609459200000}"#,
            r#"{"t": "1609459200000"}"#,
        ] {
            assert_eq!(probe(json).unwrap().t.unwrap(), expected, "{json}");
        }
        assert!(probe(r#"{"t": "yesterday"}"#).is_err());
        assert!(probe(r#"{"t": 1.5}"#).is_err());
        for json in [r#"{"t": 1609459200.0}"#, r#"{"t": 1.6094592e9}"#] {
            assert_eq!(probe(json).unwrap().t.unwrap(), expected, "{json}");
        }
    }

    #[test]
    fn counts_accept_integers_and_integral_numbers() {
        assert_eq!(probe(r#"{"c": 2}"#).unwrap().c, Some(2));
        assert_eq!(probe(r#"{"c": 2.0}"#).unwrap().c, Some(2));
        assert_eq!(probe(r#"{"c": "3"}"#).unwrap().c, Some(3));
        assert!(probe(r#"{"c": 2.5}"#).is_err());
        assert!(probe(r#"{"c": -1}"#).is_err());
    }

    #[test]
    fn one_or_many_accepts_object_array_and_null() {
        let one = probe(r#"{"many": {"x": 1.0}}"#).unwrap().many;
        assert_eq!(one.len(), 1);
        assert_eq!(one[0].x.unwrap().to_string(), "1.0");
        let two = probe(r#"{"many": [{"x": 1}, {"x": "2.5"}]}"#).unwrap().many;
        assert_eq!(two.len(), 2);
        assert!(probe(r#"{"many": null}"#).unwrap().many.is_empty());
        assert!(probe(r#"{"many": 5}"#).is_err());
        assert!(probe(r#"{"many": "x"}"#).is_err());
    }
}
