//! `lightspeed::parse_charge`, then `Charge::from_wire` for two tenants (tip
//! included in the payment amount, and added to it), as `routes::charge` and
//! `validate` call them.
//!
//! Invariants:
//! - neither panics, whatever the bytes;
//! - every error is a payload error (`invalid_payload`) whose
//!   `customerErrorMessage` is 1–50 characters without control characters, and
//!   whose body is JSON carrying that code and message;
//! - `parse_charge` reads every money field exactly: a plain decimal (number or
//!   numeric string, any notation) is held as exactly that value, or refused;
//! - on `Ok`, money is exact: every money field of the input that the charge
//!   carries (payment amounts and tips, line quantity / unit amount / amount,
//!   tax amounts and rates, service charge) is, read from the JSON text itself, a
//!   whole number of 10^-8 within ±10^15 and equal to the `Decimal` in the charge;
//!   a line without `amount` carries exactly `unitAmount × quantity`; the room
//!   amount and tip are the exact sums over the room-charge payments, and
//!   `refund` is "the room amount is negative".
#![no_main]

use std::sync::LazyLock;

use chargebridge::domain::{Charge, IdempotencyKey, Tenant};
use chargebridge::error::{ApiError, MAX_MESSAGE_UNITS};
use chargebridge::lightspeed::{parse_charge, v1};
use libfuzzer_sys::fuzz_target;
use rust_decimal::Decimal;
use serde_json::Value;

/// Money is whole numbers of 10^-SCALE (`MAX_SCALE` in src/domain/charge.rs).
const SCALE: u32 = 8;
/// ±10^15 (`MAX_MONEY`), in units of 10^-SCALE.
const MAX_UNITS: i128 = 10i128.pow(15 + SCALE);
const ROOM_CODE: &str = "IKPMS";

static TENANTS: LazyLock<[Tenant; 2]> = LazyLock::new(|| {
    let mut tips_added = Tenant::offline("fuzz");
    tips_added.gratuity_included = false;
    [Tenant::offline("fuzz"), tips_added]
});
static KEY: LazyLock<IdempotencyKey> =
    LazyLock::new(|| IdempotencyKey::parse(b"LS1_fuzz").expect("a valid key"));

fn check_error(e: &ApiError) {
    assert!(
        matches!(e, ApiError::InvalidPayload { .. }),
        "not a payload error: {e:?}"
    );
    let message = e.customer_message();
    let n = message.encode_utf16().count();
    assert!(
        (1..=MAX_MESSAGE_UNITS).contains(&n),
        "{n} characters: {message:?}"
    );
    assert!(
        !message.chars().any(char::is_control),
        "control character: {message:?}"
    );
    let body: Value = serde_json::from_slice(&e.body()).expect("error body is JSON");
    assert_eq!(body["code"], "invalid_payload");
    assert_eq!(body["customerErrorMessage"], message.as_str());
}

/// A plain decimal text, `[+-]digits[.digits][(e|E)[+-]digits]` with white space
/// around (as `shapes::parse_decimal` trims), as sign, significant digits and power
/// of ten: the value is ±digits × 10^power, the digits have no leading or trailing
/// zero ("" is zero). `None`: not that grammar (the tolerant parser may still read
/// it; it is not checked). An exponent beyond ±10^7 saturates there, far outside
/// any `Decimal`.
fn plain_decimal(text: &str) -> Option<(bool, String, i64)> {
    let t = text.trim();
    let (negative, t) = match t.as_bytes().first() {
        Some(b'-') => (true, &t[1..]),
        Some(b'+') => (false, &t[1..]),
        _ => (false, t),
    };
    let (mantissa, exponent) = match t.find(['e', 'E']) {
        Some(i) => (&t[..i], Some(&t[i + 1..])),
        None => (t, None),
    };
    let (int, frac) = mantissa.split_once('.').unwrap_or((mantissa, ""));
    let all_digits = |s: &str| s.bytes().all(|b| b.is_ascii_digit());
    if (int.is_empty() && frac.is_empty()) || !all_digits(int) || !all_digits(frac) {
        return None;
    }
    const LIMIT: i64 = 10_000_000;
    let exponent = match exponent {
        None => 0,
        Some(e) => {
            let (sign, body) = match e.as_bytes().first() {
                Some(b'-') => (-1, &e[1..]),
                Some(b'+') => (1, &e[1..]),
                _ => (1, e),
            };
            if body.is_empty() || !all_digits(body) {
                return None;
            }
            sign * body.parse::<i64>().map_or(LIMIT, |v| v.min(LIMIT))
        }
    };
    let digits = format!("{int}{frac}");
    let digits = digits.trim_start_matches('0');
    let significant = digits.trim_end_matches('0');
    let power = exponent - frac.len() as i64 + (digits.len() - significant.len()) as i64;
    Some((negative, significant.to_string(), power))
}

/// The same three parts of a `Decimal`.
fn decimal_parts(d: Decimal) -> (bool, String, i64) {
    let digits = d.mantissa().unsigned_abs().to_string();
    let significant = digits.trim_end_matches('0');
    let power = (digits.len() - significant.len()) as i64 - i64::from(d.scale());
    (d.is_sign_negative(), significant.to_string(), power)
}

/// `d` is exactly the value written in `text` (when that is a plain decimal).
fn same_value(d: Decimal, text: &str) -> bool {
    match plain_decimal(text) {
        None => true,
        Some((_, digits, _)) if digits.is_empty() => d.is_zero(),
        Some(parts) => parts == decimal_parts(d),
    }
}

/// A decimal text read exactly, in units of 10^-SCALE.
#[derive(Debug, PartialEq)]
enum Exact {
    /// Not a plain decimal: not checked.
    Skip,
    /// Not a whole number of units, or far too large: must never be accepted.
    Unrepresentable,
    Units(i128),
}

fn exact_units(text: &str) -> Exact {
    let Some((negative, digits, power)) = plain_decimal(text) else {
        return Exact::Skip;
    };
    if digits.is_empty() {
        return Exact::Units(0);
    }
    // value × 10^SCALE = digits × 10^shift; the digits end in no zero.
    let shift = power + i64::from(SCALE);
    if shift < 0 || digits.len() as i64 + shift > 36 {
        return Exact::Unrepresentable;
    }
    let units = digits.parse::<i128>().expect("at most 36 digits")
        * 10i128.pow(u32::try_from(shift).expect("at most 36"));
    Exact::Units(if negative { -units } else { units })
}

/// A decimal in units of 10^-scale, if it has at most that many places.
fn decimal_units(d: Decimal, scale: u32) -> i128 {
    assert!(
        d.scale() <= scale,
        "{d} has more than {scale} decimal places"
    );
    d.mantissa()
        .checked_mul(10i128.pow(scale - d.scale()))
        .expect("accepted money is far below i128")
}

/// The text of a money field of the input (a number or a string), if present.
fn text_of(object: &Value, field: &str) -> Option<String> {
    match object.get(field)? {
        Value::Null => None,
        Value::Number(n) => Some(n.to_string()),
        Value::String(s) => Some(s.clone()),
        other => panic!("{field} accepted as money: {other}"),
    }
}

/// The units of a money field the charge accepted: exact and in range.
fn accepted_units(object: &Value, field: &str) -> Option<i128> {
    let text = text_of(object, field)?;
    match exact_units(&text) {
        Exact::Skip => None,
        Exact::Unrepresentable => panic!("{field} `{text}` accepted but not exact"),
        Exact::Units(u) => {
            assert!(
                u.abs() <= MAX_UNITS,
                "{field} `{text}` accepted out of range"
            );
            Some(u)
        }
    }
}

/// `charge` holds exactly the money of `field` (absent and null: `None`).
fn check_money(object: &Value, field: &str, charge: Option<Decimal>) {
    let Some(text) = text_of(object, field) else {
        assert!(charge.is_none(), "{field}: {charge:?} from nothing");
        return;
    };
    let d = charge.unwrap_or_else(|| panic!("{field} `{text}` lost"));
    if let Some(units) = accepted_units(object, field) {
        assert_eq!(
            decimal_units(d, SCALE),
            units,
            "{field} `{text}` read as {d}"
        );
    }
}

/// A JSON list field as its elements (absent and null: none; an object: itself).
fn elements<'v>(object: &'v Value, field: &str) -> Vec<&'v Value> {
    match object.get(field) {
        None | Some(Value::Null) => Vec::new(),
        Some(Value::Array(items)) => items.iter().collect(),
        Some(one) => vec![one],
    }
}

/// The wire model holds exactly the decimal written in `field` (absent and null:
/// `None`), whatever `from_wire` will say of it.
fn check_exact(object: &Value, field: &str, wire: Option<Decimal>) {
    match (text_of(object, field), wire) {
        (None, None) => {}
        (Some(text), Some(d)) => assert!(same_value(d, &text), "{field} `{text}` read as {d}"),
        (text, d) => panic!("{field}: {text:?} read as {d:?}"),
    }
}

fn check_wire(json: &Value, wire: &v1::ChargeTransaction) {
    let lines = elements(json, "transactions");
    assert_eq!(lines.len(), wire.transactions.len());
    for (line, w) in lines.into_iter().zip(&wire.transactions) {
        check_exact(line, "unitAmount", w.unit_amount);
        check_exact(line, "quantity", w.quantity);
        check_exact(line, "amount", w.amount);
        check_exact(line, "taxRate", w.tax_rate);
        check_exact(
            line,
            "serviceChargeContribution",
            w.service_charge_contribution,
        );
        let taxes = elements(line, "taxLines");
        assert_eq!(taxes.len(), w.tax_lines.len());
        for (tax, t) in taxes.into_iter().zip(&w.tax_lines) {
            check_exact(tax, "taxAmount", t.tax_amount);
            check_exact(tax, "taxRate", t.tax_rate);
        }
    }
    let payments = elements(json, "payments");
    assert_eq!(payments.len(), wire.payments.len());
    for (payment, p) in payments.into_iter().zip(&wire.payments) {
        check_exact(payment, "amount", p.amount);
        check_exact(payment, "gratuity", p.gratuity);
    }
    match (json.get("serviceCharge"), &wire.service_charge) {
        (Some(sc @ Value::Object(_)), Some(w)) => check_exact(sc, "amount", w.amount),
        (None | Some(Value::Null), None) => {}
        (sc, w) => panic!("serviceCharge {sc:?} read as {w:?}"),
    }
}

fn check_charge(json: &Value, tenant: &Tenant, charge: &Charge) {
    let lines = elements(json, "transactions");
    assert_eq!(lines.len(), charge.lines.len());
    for (line, out) in lines.into_iter().zip(&charge.lines) {
        check_money(line, "unitAmount", out.unit_amount);
        check_money(
            line,
            "serviceChargeContribution",
            out.service_charge_contribution,
        );
        match text_of(line, "quantity") {
            None => assert_eq!(out.quantity, Decimal::ONE),
            Some(_) => check_money(line, "quantity", Some(out.quantity)),
        }
        if text_of(line, "amount").is_some() {
            check_money(line, "amount", Some(out.amount));
        } else if let (Some(unit), Some(quantity)) = (
            accepted_units(line, "unitAmount"),
            text_of(line, "quantity").map_or(Some(10i128.pow(SCALE)), |_| {
                accepted_units(line, "quantity")
            }),
        ) {
            // unit × quantity, in units of 10^-(2 × SCALE).
            let product = unit
                .checked_mul(quantity)
                .expect("an accepted product is far below i128");
            assert_eq!(
                decimal_units(out.amount, 2 * SCALE),
                product,
                "amount {} is not unitAmount × quantity",
                out.amount
            );
        }
        let taxes = elements(line, "taxLines");
        if taxes.is_empty() {
            if let Some(tax) = out.tax_lines.first() {
                check_money(line, "taxRate", tax.rate);
            }
        } else {
            assert_eq!(taxes.len(), out.tax_lines.len());
            for (tax, item) in taxes.into_iter().zip(&out.tax_lines) {
                check_money(tax, "taxAmount", item.amount);
                check_money(tax, "taxRate", item.rate);
            }
        }
    }

    match json.get("serviceCharge") {
        Some(sc @ Value::Object(_)) => check_money(
            sc,
            "amount",
            charge.service_charge.as_ref().map(|s| s.amount),
        ),
        _ => assert!(charge.service_charge.is_none()),
    }

    let (mut amount, mut tip, mut any) = (0i128, 0i128, false);
    for payment in elements(json, "payments") {
        let gratuity = accepted_units(payment, "gratuity");
        let paid = accepted_units(payment, "amount");
        // Room-charge codes match without case or padding.
        let is_room = payment
            .get("methodCode")
            .and_then(Value::as_str)
            .is_some_and(|c| c.trim().eq_ignore_ascii_case(ROOM_CODE));
        if !is_room {
            continue;
        }
        let (Some(paid), gratuity) = (paid, gratuity.unwrap_or(0)) else {
            // A room payment whose amount is in a notation not checked here.
            return;
        };
        any = true;
        amount += if tenant.gratuity_included {
            paid
        } else {
            paid + gratuity
        };
        tip += gratuity;
    }
    // One room charge per reservation (MULTI_PAYMENTS); together they are the
    // room payments' total.
    if charge.rooms.is_empty() {
        assert!(!any, "room payments but no room charge");
        return;
    }
    assert!(any, "a room charge without room payments");
    let total: i128 = charge
        .rooms
        .iter()
        .map(|r| decimal_units(r.amount, SCALE))
        .sum();
    let tips: i128 = charge
        .rooms
        .iter()
        .map(|r| decimal_units(r.gratuity, SCALE))
        .sum();
    assert_eq!(total, amount, "room amount");
    assert_eq!(tips, tip, "room tip");
    assert!(amount.abs() <= MAX_UNITS * 200, "room amount out of range");
    assert_eq!(charge.refund, amount < 0, "refund flag");
    for room in &charge.rooms {
        assert!(
            decimal_units(room.amount, SCALE).abs() <= MAX_UNITS,
            "room amount out of range"
        );
        assert!(!room.reservation_id.is_empty());
        assert_eq!(room.reservation_id.trim(), room.reservation_id);
    }
}

fuzz_target!(|data: &[u8]| {
    let wire = match parse_charge(data) {
        Ok(wire) => wire,
        Err(e) => return check_error(&e),
    };
    // The oracle reads money from the JSON text itself. (A body serde_json's
    // `Value` refuses but the wire model takes, such as a lone surrogate in an
    // ignored field, is only checked for panics and error contract.)
    let json = serde_json::from_slice::<Value>(data).ok();
    if let Some(json) = &json {
        check_wire(json, &wire);
    }
    for tenant in TENANTS.iter() {
        match Charge::from_wire(&wire, tenant, &KEY, Default::default()) {
            Err(e) => check_error(&e),
            Ok(charge) => {
                if let Some(json) = &json {
                    check_charge(json, tenant, &charge);
                }
                serde_json::to_vec(&charge).expect("a charge serialises");
            }
        }
    }
});
