//! `idempotency::fingerprint`: the hand-written canonical-JSON scanner, checked
//! against serde_json (with `arbitrary_precision`, as the service builds it).
//!
//! src/idempotency/fingerprint.rs promises the canonical text is "byte for byte the
//! text `serde_json::Value` would print" (keys in byte order, plain numbers as
//! written, exponents in serde_json's spelling), and that its
//! depth limit is serde_json's own. So, for any bytes:
//! - `fingerprint` is `Some` exactly when `canonical_json` is, and is the hex
//!   SHA-256 of that text; canonical text is its own canonical text;
//! - `canonical_json(b)` is `Some` exactly when `serde_json::from_slice::<Value>(b)`
//!   accepts `b`, and then equals `serde_json::to_string(&value)`;
//! - JSON-equal bodies canonicalise alike: the compact and pretty re-serialisations
//!   of the value give the same canonical text.
//!
//! The documented differences: an object keyed `$serde_json::private::Number`,
//! which serde_json's `Value` takes for a number (or refuses), is an object to the
//! scanner; and duplicate member names are all kept (`Value` keeps the last).
//! Bodies the scanner reads with either are not compared with `Value`'s text.
#![no_main]

use chargebridge::idempotency::fingerprint::{
    canonical_json, canonical_json_with_duplicates, fingerprint,
};
use libfuzzer_sys::fuzz_target;
use sha2::{Digest, Sha256};

/// In canonical text a member's key follows `{` or `,` (a quote inside a string
/// is escaped, so neither pattern can occur there).
fn has_private_number_key(canonical: &str) -> bool {
    const KEY: &str = "\"$serde_json::private::Number\":";
    canonical
        .match_indices(KEY)
        .any(|(i, _)| matches!(canonical.as_bytes()[..i].last(), Some(b'{' | b',')))
}

fuzz_target!(|data: &[u8]| {
    let canonical = canonical_json(data);
    let print = fingerprint(data);
    assert_eq!(print.is_some(), canonical.is_some());
    if let Some(canonical) = &canonical {
        assert_eq!(
            print.as_deref(),
            Some(hex::encode(Sha256::digest(canonical.as_bytes())).as_str())
        );
        assert_eq!(
            canonical_json(canonical.as_bytes()).as_ref(),
            Some(canonical),
            "canonical text is not a fixed point"
        );
        if has_private_number_key(canonical) {
            return;
        }
    }

    let reference = serde_json::from_slice::<serde_json::Value>(data);
    assert_eq!(
        canonical.is_some(),
        reference.is_ok(),
        "scanner and serde_json disagree on acceptance: scanner {}, serde_json {:?}",
        canonical.is_some(),
        reference.as_ref().err().map(|e| e.to_string()),
    );
    let (Some(canonical), Ok(value)) = (canonical, reference) else {
        return;
    };
    if canonical_json_with_duplicates(data).is_some_and(|(_, duplicates)| duplicates) {
        return;
    }
    let compact = serde_json::to_string(&value).expect("a Value always prints");
    assert_eq!(
        canonical, compact,
        "canonical text differs from serde_json's"
    );

    // Equal JSON values, different texts: the same canonical text.
    let pretty = serde_json::to_string_pretty(&value).expect("a Value always prints");
    for other in [&compact, &pretty] {
        assert_eq!(
            canonical_json(other.as_bytes()).as_deref(),
            Some(canonical.as_str()),
            "an equal body canonicalises differently: {other}"
        );
    }
});
