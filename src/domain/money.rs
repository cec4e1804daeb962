//! Rounding money to what a folio can hold: the currency's minor unit.
//!
//! The exact values Lightspeed sent stay in the fingerprint and the journal;
//! what is posted is rounded half to even (banker's rounding, the IEEE 754
//! default a Java POS uses itself), to the currency's ISO 4217 decimals.

use rust_decimal::{Decimal, RoundingStrategy};

/// Decimal places of `currency`'s minor unit (ISO 4217); 2 for any code not listed.
pub fn minor_units(currency: &str) -> u32 {
    match currency {
        "BIF" | "CLP" | "DJF" | "GNF" | "ISK" | "JPY" | "KMF" | "KRW" | "PYG" | "RWF" | "UGX"
        | "UYI" | "VND" | "VUV" | "XAF" | "XOF" | "XPF" => 0,
        "BHD" | "IQD" | "JOD" | "KWD" | "LYD" | "OMR" | "TND" => 3,
        "CLF" | "UYW" => 4,
        _ => 2,
    }
}

/// `value` rounded half to even at `currency`'s minor unit.
pub fn round_to_minor_unit(value: Decimal, currency: &str) -> Decimal {
    value.round_dp_with_strategy(minor_units(currency), RoundingStrategy::MidpointNearestEven)
}

/// Most decimal places kept for quantities, unit amounts and rates, which may
/// be finer than a cent (`10.00 / 3`); beyond that only float residue lives.
pub const FINE_SCALE: u32 = 8;

/// `value` rounded half to even at [`FINE_SCALE`] places.
pub fn round_fine(value: Decimal) -> Decimal {
    value.round_dp_with_strategy(FINE_SCALE, RoundingStrategy::MidpointNearestEven)
}

/// Whether rounding `exact` to `rounded` moved it by more than the error a
/// binary floating-point number carries (about 10^-15 of its size): such a
/// value was not float residue but an amount with more decimals than the
/// currency has, which someone should look at.
pub fn moved_beyond_float_noise(exact: Decimal, rounded: Decimal) -> bool {
    let noise = exact.abs().max(Decimal::ONE) * Decimal::new(1, 12);
    (exact - rounded).abs() > noise
}

#[cfg(test)]
mod tests {
    use super::*;

    fn d(s: &str) -> Decimal {
        s.parse().unwrap()
    }

    #[test]
    fn rounds_half_to_even_at_the_minor_unit() {
        assert_eq!(
            round_to_minor_unit(d("0.30000000000000004"), "EUR"),
            d("0.30")
        );
        assert_eq!(round_to_minor_unit(d("2.345"), "EUR"), d("2.34"));
        assert_eq!(round_to_minor_unit(d("2.355"), "EUR"), d("2.36"));
        assert_eq!(round_to_minor_unit(d("-2.345"), "EUR"), d("-2.34"));
        assert_eq!(round_to_minor_unit(d("1250.5"), "JPY"), d("1250"));
        assert_eq!(round_to_minor_unit(d("1.2345"), "KWD"), d("1.234"));
        // Values with fewer decimals keep their own scale.
        assert_eq!(round_to_minor_unit(d("67.0"), "EUR").to_string(), "67.0");
    }

    #[test]
    fn float_noise_is_told_from_real_decimals() {
        let exact = d("0.30000000000000004");
        assert!(!moved_beyond_float_noise(exact, d("0.30")));
        let exact = d("1234567.8900000001");
        assert!(!moved_beyond_float_noise(exact, d("1234567.89")));
        assert!(moved_beyond_float_noise(d("12.345"), d("12.34")));
        assert!(moved_beyond_float_noise(d("0.001"), d("0.00")));
    }
}
