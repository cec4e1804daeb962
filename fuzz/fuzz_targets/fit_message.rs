//! `error::fit_message`: any text becomes a valid `customerErrorMessage`.
//!
//! Invariants (src/error.rs: at most 50 UTF-16 code units, as Lightspeed's Java
//! POS counts them, no control characters; fixtures/README.md: "1–50 printable
//! characters"):
//! - at most 50 UTF-16 units, no control character, no leading/trailing space;
//! - empty only when the text has nothing but white space and control characters;
//! - idempotent: fit(fit(x)) == fit(x);
//! - text that fits after clean-up is returned as it is; longer text is a prefix
//!   of the cleaned text, cut at a grapheme boundary to at most 49 characters (the
//!   longest such prefix), plus `…`; a first grapheme longer than 49 characters
//!   is cut at a character boundary instead;
//! - the messages built on it (a PMS refusal, a payload error) are 1–50 characters.
#![no_main]

use chargebridge::error::{ApiError, MAX_MESSAGE_UNITS, fit_message};
use libfuzzer_sys::fuzz_target;
use unicode_segmentation::UnicodeSegmentation;

/// The documented clean-up, written independently: control characters become
/// spaces, white space runs collapse to one space, none at either end.
/// The oracle, written apart from the code: terminal escapes (`ESC [ … final`)
/// and invisible format characters go, other control characters become spaces,
/// white space collapses.
fn cleaned(text: &str) -> String {
    let mut kept = String::new();
    let mut rest = text.chars().peekable();
    while let Some(c) = rest.next() {
        if c == '\u{1b}' {
            if rest.peek() == Some(&'[') {
                rest.next();
                for d in rest.by_ref() {
                    if ('@'..='~').contains(&d) {
                        break;
                    }
                }
            }
            continue;
        }
        let format = matches!(c as u32,
            0xad | 0x61c | 0x180e | 0x200b..=0x200f | 0x202a..=0x202e
            | 0x2060..=0x2064 | 0x2066..=0x206f | 0xfeff | 0xfff9..=0xfffb);
        if !format {
            kept.push(c);
        }
    }
    let spaced: String = kept
        .chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .collect();
    spaced.split_whitespace().collect::<Vec<_>>().join(" ")
}

fn chars(s: &str) -> usize {
    s.encode_utf16().count()
}

fn check_contract(what: &str, message: &str) {
    let n = chars(message);
    assert!(
        (1..=MAX_MESSAGE_UNITS).contains(&n),
        "{what}: {n} characters: {message:?}"
    );
    assert!(
        !message.chars().any(char::is_control),
        "{what}: control character in {message:?}"
    );
}

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    let out = fit_message(&text);
    let clean = cleaned(&text);

    assert!(chars(&out) <= MAX_MESSAGE_UNITS, "too long: {out:?}");
    assert!(!out.chars().any(char::is_control), "control: {out:?}");
    assert_eq!(out.trim(), out, "untrimmed: {out:?}");
    assert_eq!(out.is_empty(), clean.is_empty(), "emptiness: {out:?}");
    assert_eq!(fit_message(&out), out, "not idempotent");

    if chars(&clean) <= MAX_MESSAGE_UNITS {
        assert_eq!(out, clean, "text that fits must be kept");
    } else {
        let kept = out
            .strip_suffix('…')
            .unwrap_or_else(|| panic!("a cut without …: {out:?}"));
        assert!(clean.starts_with(kept), "not a prefix: {out:?}");
        let budget = MAX_MESSAGE_UNITS - 1;
        let mut graphemes = clean.graphemes(true);
        let first = graphemes.next().unwrap_or_default();
        if chars(first) > budget {
            assert!(
                chars(kept) + 1 >= budget && chars(kept) <= budget,
                "long first grapheme: {out:?}"
            );
        } else {
            // The longest run of whole graphemes within the budget.
            let mut expected = first.len();
            let mut used = chars(first);
            for g in graphemes {
                if used + chars(g) > budget {
                    break;
                }
                used += chars(g);
                expected += g.len();
            }
            assert_eq!(kept, &clean[..expected], "cut at the wrong place");
        }
    }

    // The messages that carry outside text.
    check_contract(
        "PmsRejected",
        &ApiError::PmsRejected(text.to_string()).customer_message(),
    );
    let mid = (0..=text.len() / 2)
        .rev()
        .find(|&i| text.is_char_boundary(i))
        .unwrap_or(0);
    let (path, detail) = text.split_at(mid);
    check_contract(
        "InvalidPayload",
        &ApiError::invalid(path, detail).customer_message(),
    );
});
