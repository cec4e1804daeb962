//! The one error type of the Lightspeed-facing endpoints.
//!
//! Every non-200 answer is built here: a status, a stable machine `code` and a
//! `customerErrorMessage` that Lightspeed prints on the POS (at most 50 UTF-16 code
//! units: the POS is a Java client, so an emoji counts two).
//! Handlers return `ApiError`; they never write error bodies by hand.

use actix_web::http::StatusCode;
use actix_web::{HttpResponse, ResponseError};
use serde::Serialize;
use unicode_segmentation::UnicodeSegmentation;

/// Longest field path and reason kept in a payload error (characters).
const MAX_PATH: usize = 120;
const MAX_DETAIL: usize = 200;

/// `text` cut to `max` characters (plus `…`), at a character boundary.
fn bounded(text: String, max: usize) -> String {
    match text.char_indices().nth(max) {
        None => text,
        Some((cut, _)) => format!("{}…", &text[..cut]),
    }
}

/// What is wrong with a payload, in the terms staff at the POS can act on: each
/// class has one plain sentence; the field path and the technical reason go to
/// `detail` and the log (integrators read those, staff do not).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Problem {
    /// Not JSON, not UTF-8, empty, not an object, duplicate member names.
    Unreadable,
    /// A required field is absent.
    Missing,
    /// A room-charge payment names no reservation.
    NoReservation,
    /// More lines, payments or taxes than one receipt can sensibly have.
    TooLarge,
    /// A wrong type, an impossible value or a broken business rule.
    Invalid,
}

impl Problem {
    fn sentence(self) -> &'static str {
        match self {
            Problem::Unreadable => "Receipt data unreadable: charge NOT posted",
            Problem::Missing => "Receipt data incomplete: charge NOT posted",
            Problem::NoReservation => "Room charge without a reservation: NOT posted",
            Problem::TooLarge => "Receipt too large to post",
            Problem::Invalid => "Receipt data invalid: charge NOT posted",
        }
    }
}

/// Lightspeed prints at most this many UTF-16 code units of `customerErrorMessage`.
pub const MAX_MESSAGE_UNITS: usize = 50;

#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    /// Unparseable JSON, wrong types, missing data or a failed business rule.
    /// `path` names the field (`transactions[1].amount`) where one is known.
    #[error("invalid payload at `{path}`: {detail}")]
    InvalidPayload {
        path: String,
        detail: String,
        problem: Problem,
    },
    #[error("missing X-Lightspeed-Idempotency-Key header")]
    MissingIdempotencyKey,
    #[error("invalid idempotency key: {0}")]
    InvalidIdempotencyKey(&'static str),
    #[error("unknown business or wrong api key")]
    Unauthorized,
    #[error("Accept excludes application/json")]
    NotAcceptable,
    #[error("idempotency key still in progress")]
    InProgress,
    #[error("body larger than {limit} bytes")]
    PayloadTooLarge { limit: usize },
    /// The body did not arrive within `client_request_timeout` (a trickling client).
    #[error("body not received within {0:?}")]
    RequestTimeout(std::time::Duration),
    #[error("content type is not application/json")]
    UnsupportedMediaType,
    #[error("idempotency key reused with a different payload")]
    IdempotencyKeyReused,
    /// The PMS refused the charge for good; the string is its reason.
    #[error("PMS rejected the charge: {0}")]
    PmsRejected(String),
    #[error("PMS unavailable: {0}")]
    PmsUnavailable(String),
    #[error("PMS outcome unknown: {0}")]
    PmsOutcomeUnknown(String),
    /// No payment carries one of the tenant's room-charge codes, and the tenant
    /// does not receive every receipt (MIRRORING): a set-up mistake, never ignored.
    #[error("no room-charge payment (method codes seen: {0})")]
    NoRoomChargePayment(String),
    #[error("idempotency store unavailable: {0}")]
    StoreUnavailable(String),
    #[error("request deadline exceeded")]
    DeadlineExceeded,
    #[error("empty search term")]
    EmptySearchTerm,
    /// The HTTP parser could not read the request (see `wire_errors`).
    #[error("request not readable as HTTP/1.1")]
    MalformedRequest,
    /// The request line and headers overflow the parser's buffer.
    #[error("request head too large")]
    RequestHeadTooLarge,
    #[error("no such route")]
    NotFound,
    /// The string is the resource's `Allow` header value.
    #[error("method not allowed (allowed: {0})")]
    MethodNotAllowed(&'static str),
    #[error("internal error: {0}")]
    Internal(String),
}

impl ApiError {
    /// The stable machine code clients and tests match on.
    pub fn code(&self) -> &'static str {
        match self {
            ApiError::InvalidPayload { .. } | ApiError::EmptySearchTerm => "invalid_payload",
            ApiError::MissingIdempotencyKey => "missing_idempotency_key",
            ApiError::InvalidIdempotencyKey(_) => "invalid_idempotency_key",
            ApiError::Unauthorized => "unauthorized",
            ApiError::NotAcceptable => "not_acceptable",
            ApiError::InProgress => "in_progress",
            ApiError::PayloadTooLarge { .. } => "payload_too_large",
            ApiError::RequestTimeout(_) => "request_timeout",
            ApiError::UnsupportedMediaType => "unsupported_media_type",
            ApiError::IdempotencyKeyReused => "idempotency_key_reused",
            ApiError::PmsRejected(_) => "pms_rejected",
            ApiError::PmsUnavailable(_) => "pms_unavailable",
            ApiError::PmsOutcomeUnknown(_) => "pms_outcome_unknown",
            ApiError::NoRoomChargePayment(_) => "no_room_charge_payment",
            ApiError::StoreUnavailable(_) => "store_unavailable",
            ApiError::DeadlineExceeded => "deadline_exceeded",
            ApiError::MalformedRequest => "malformed_request",
            ApiError::RequestHeadTooLarge => "request_head_too_large",
            ApiError::NotFound => "not_found",
            ApiError::MethodNotAllowed(_) => "method_not_allowed",
            ApiError::Internal(_) => "internal",
        }
    }

    /// What the waiting staff read on the POS. Internal detail (store errors,
    /// PMS transport errors) stays in the log, never here.
    pub fn customer_message(&self) -> String {
        let text: &str = match self {
            ApiError::InvalidPayload { problem, .. } => problem.sentence(),
            ApiError::MissingIdempotencyKey => "Missing idempotency key",
            ApiError::InvalidIdempotencyKey(_) => "Invalid idempotency key",
            ApiError::Unauthorized => "PMS link not authorised: check API key",
            ApiError::NotAcceptable => "Client must accept application/json",
            ApiError::InProgress => "This charge is already being processed",
            ApiError::PayloadTooLarge { .. } => "Receipt too large to post",
            ApiError::RequestTimeout(_) => "Receipt arrived too slowly: NOT posted",
            ApiError::UnsupportedMediaType => "Content-Type must be application/json",
            ApiError::IdempotencyKeyReused => "Key already used for another receipt",
            ApiError::PmsRejected(reason) => {
                // Empty after clean-up, not just after trim: a reason of control
                // characters only (`"\u{1c}"`) would otherwise print nothing.
                let fitted = fit_message(reason);
                if fitted.is_empty() {
                    "Hotel system refused the charge"
                } else {
                    return fitted;
                }
            }
            ApiError::PmsUnavailable(_) => "Hotel system down: charge NOT posted",
            ApiError::NoRoomChargePayment(_) => "No room-charge payment: check PMS set-up",
            ApiError::PmsOutcomeUnknown(_) => "Unconfirmed: check the folio before re-posting",
            ApiError::StoreUnavailable(_) => "Charge service down: charge NOT posted",
            ApiError::DeadlineExceeded => "Hotel system too slow: charge NOT posted",
            ApiError::EmptySearchTerm => "Enter a guest name or room",
            ApiError::MalformedRequest => "Request unreadable: charge NOT posted",
            ApiError::RequestHeadTooLarge => "Request headers too large: NOT posted",
            ApiError::NotFound => "Unknown endpoint",
            ApiError::MethodNotAllowed(_) => "Method not allowed",
            ApiError::Internal(_) => "Internal error: check the folio",
        };
        fit_message(text)
    }

    /// Status, content type and connection handling of this error's answer, for
    /// a caller that supplies the body itself (see routes::charge).
    pub fn response_head(&self) -> actix_web::HttpResponseBuilder {
        let mut response = HttpResponse::build(self.status_code());
        if let ApiError::MethodNotAllowed(allow) = self {
            response.insert_header((actix_web::http::header::ALLOW, *allow));
        }
        if self.leaves_body_unread() {
            response.force_close();
        }
        response.content_type("application/json");
        response
    }

    /// Answered before the request body was read to its end: the connection is
    /// closed rather than left to a client that goes on sending (or trickling).
    pub fn leaves_body_unread(&self) -> bool {
        matches!(
            self,
            ApiError::PayloadTooLarge { .. } | ApiError::RequestTimeout(_)
        )
    }

    /// A payload error at `path` (empty when no field is to blame).
    /// Both parts are bounded: they may quote the request (a member name, a
    /// value), and an error body must not grow with what an attacker sends.
    pub fn invalid(path: impl Into<String>, detail: impl Into<String>) -> Self {
        Self::payload(Problem::Invalid, path, detail)
    }

    /// A payload error of a given class (see [`Problem`]).
    pub fn payload(problem: Problem, path: impl Into<String>, detail: impl Into<String>) -> Self {
        ApiError::InvalidPayload {
            path: bounded(path.into(), MAX_PATH),
            detail: bounded(detail.into(), MAX_DETAIL),
            problem,
        }
    }

    /// A body that is not a JSON object at all.
    pub fn unreadable(detail: impl Into<String>) -> Self {
        Self::payload(Problem::Unreadable, "", detail)
    }

    /// The JSON body of this error, as bytes (also what the idempotency store keeps).
    /// Payload errors add a `detail` for integrators; Lightspeed ignores it.
    pub fn body(&self) -> Vec<u8> {
        #[derive(Serialize)]
        #[serde(rename_all = "camelCase")]
        struct Body<'a> {
            customer_error_message: String,
            code: &'a str,
            #[serde(skip_serializing_if = "Option::is_none")]
            detail: Option<String>,
        }
        let detail = match self {
            ApiError::InvalidPayload { .. } => Some(self.to_string()),
            _ => None,
        };
        serde_json::to_vec(&Body {
            customer_error_message: self.customer_message(),
            code: self.code(),
            detail,
        })
        .unwrap_or_else(|_| {
            br#"{"customerErrorMessage":"Internal error","code":"internal"}"#.to_vec()
        })
    }
}

impl ResponseError for ApiError {
    fn status_code(&self) -> StatusCode {
        match self {
            ApiError::InvalidPayload { .. }
            | ApiError::MissingIdempotencyKey
            | ApiError::InvalidIdempotencyKey(_)
            | ApiError::EmptySearchTerm => StatusCode::BAD_REQUEST,
            ApiError::Unauthorized => StatusCode::UNAUTHORIZED,
            ApiError::NotAcceptable => StatusCode::NOT_ACCEPTABLE,
            ApiError::InProgress => StatusCode::CONFLICT,
            ApiError::PayloadTooLarge { .. } => StatusCode::PAYLOAD_TOO_LARGE,
            ApiError::RequestTimeout(_) => StatusCode::REQUEST_TIMEOUT,
            ApiError::UnsupportedMediaType => StatusCode::UNSUPPORTED_MEDIA_TYPE,
            ApiError::IdempotencyKeyReused
            | ApiError::PmsRejected(_)
            | ApiError::NoRoomChargePayment(_) => StatusCode::UNPROCESSABLE_ENTITY,
            ApiError::MalformedRequest => StatusCode::BAD_REQUEST,
            ApiError::RequestHeadTooLarge => StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE,
            ApiError::NotFound => StatusCode::NOT_FOUND,
            ApiError::MethodNotAllowed(_) => StatusCode::METHOD_NOT_ALLOWED,
            ApiError::PmsUnavailable(_)
            | ApiError::PmsOutcomeUnknown(_)
            | ApiError::StoreUnavailable(_)
            | ApiError::DeadlineExceeded
            | ApiError::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    fn error_response(&self) -> HttpResponse {
        self.response_head().body(self.body())
    }
}

/// Makes any text a valid `customerErrorMessage`: control characters become spaces,
/// runs of white space collapse, and text over 50 UTF-16 code units is cut to 49
/// plus `…` at a grapheme boundary (never inside a surrogate pair, and an accent
/// is never split from its letter). The result is empty when the text has nothing
/// but white space and control characters: the caller then needs a message of its own.
pub fn fit_message(text: &str) -> String {
    let mut clean = String::with_capacity(text.len().min(256));
    let mut last_space = true;
    let mut chars = text.chars().peekable();
    while let Some(ch) = chars.next() {
        // A terminal escape (`ESC [ 31 m`) goes whole, not just its ESC.
        if ch == '\u{1b}' {
            if chars.peek() == Some(&'[') {
                chars.next();
                for c in chars.by_ref() {
                    if ('\u{40}'..='\u{7e}').contains(&c) {
                        break;
                    }
                }
            }
            continue;
        }
        // Invisible format characters (bidi overrides, zero-width spaces, BOM)
        // can reorder or hide what staff read.
        if is_format_character(ch) {
            continue;
        }
        let ch = if ch.is_control() || ch.is_whitespace() {
            ' '
        } else {
            ch
        };
        if ch == ' ' {
            if last_space {
                continue;
            }
            last_space = true;
        } else {
            last_space = false;
        }
        clean.push(ch);
    }
    let clean = clean.trim_end();
    if utf16_units(clean) <= MAX_MESSAGE_UNITS {
        return clean.to_string();
    }
    let budget = MAX_MESSAGE_UNITS - 1;
    let mut out = String::new();
    let mut used = 0;
    for grapheme in clean.graphemes(true) {
        let n = utf16_units(grapheme);
        if used + n > budget {
            // A grapheme longer than the whole budget (pathological combining
            // sequences) is cut at a character boundary instead.
            if used == 0 {
                for ch in grapheme.chars() {
                    if used + ch.len_utf16() > budget {
                        break;
                    }
                    used += ch.len_utf16();
                    out.push(ch);
                }
            }
            break;
        }
        out.push_str(grapheme);
        used += n;
    }
    out.push('…');
    out
}

/// Unicode's format characters (category Cf) that occur in practice.
fn is_format_character(ch: char) -> bool {
    matches!(ch,
        '\u{ad}' | '\u{61c}' | '\u{180e}' | '\u{200b}'..='\u{200f}' | '\u{202a}'..='\u{202e}'
        | '\u{2060}'..='\u{2064}' | '\u{2066}'..='\u{206f}' | '\u{feff}' | '\u{fff9}'..='\u{fffb}')
}

/// Length as a Java client counts it.
pub fn utf16_units(text: &str) -> usize {
    text.chars().map(char::len_utf16).sum()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn chars(s: &str) -> usize {
        utf16_units(s)
    }

    #[test]
    fn emoji_count_two_units_and_pairs_are_never_split() {
        // 30 emoji are 30 characters but 60 UTF-16 units: over the limit.
        let out = fit_message(&"🏨".repeat(30));
        assert_eq!(
            utf16_units(&out),
            49,
            "24 emoji (48 units) plus the ellipsis"
        );
        assert!(out.starts_with(&"🏨".repeat(24)) && out.ends_with('…'));
        // An odd budget: 1 ASCII + emoji; the last emoji must not be split.
        let out = fit_message(&format!("a{}", "😀".repeat(30)));
        assert!(utf16_units(&out) <= 50);
        assert_eq!(out.encode_utf16().count(), utf16_units(&out));
        assert!(String::from_utf16(&out.encode_utf16().collect::<Vec<_>>()).is_ok());
        // 25 emoji are exactly 50 units: kept whole.
        assert_eq!(fit_message(&"😀".repeat(25)), "😀".repeat(25));
    }

    #[test]
    fn no_message_asks_for_a_retry_lightspeed_will_not_make() {
        for e in [
            ApiError::PmsUnavailable("x".into()),
            ApiError::PmsOutcomeUnknown("x".into()),
            ApiError::StoreUnavailable("x".into()),
            ApiError::DeadlineExceeded,
            ApiError::InProgress,
            ApiError::RequestTimeout(std::time::Duration::from_secs(5)),
            ApiError::Internal("x".into()),
        ] {
            let m = e.customer_message().to_lowercase();
            assert!(!m.contains("retry") && !m.contains("try again"), "{m}");
        }
    }

    #[test]
    fn short_messages_are_kept() {
        assert_eq!(fit_message("Network failure"), "Network failure");
    }

    #[test]
    fn exactly_fifty_is_kept() {
        let s = "a".repeat(50);
        assert_eq!(fit_message(&s), s);
    }

    #[test]
    fn long_ascii_is_cut_to_49_plus_ellipsis() {
        let s = "b".repeat(51);
        let out = fit_message(&s);
        assert_eq!(chars(&out), 50);
        assert!(out.ends_with('…'));
        assert_eq!(&out[..49], &"b".repeat(49));
    }

    #[test]
    fn multibyte_characters_count_as_one() {
        let s = "é".repeat(50);
        assert_eq!(fit_message(&s), s);
        let out = fit_message(&"€".repeat(60));
        assert_eq!(chars(&out), 50);
        assert!(out.starts_with(&"€".repeat(49)));
    }

    #[test]
    fn combining_sequences_are_not_split() {
        // 'e' + COMBINING ACUTE is one grapheme of two characters.
        let mut s = "x".repeat(48);
        s.push_str("e\u{301}");
        s.push_str("tail");
        let out = fit_message(&s);
        assert!(chars(&out) <= 50);
        assert!(
            !out.contains('e'),
            "the grapheme must not be split: {out:?}"
        );
        assert!(out.ends_with('…'));
    }

    #[test]
    fn emoji_with_modifiers_stay_whole() {
        let family = "👨\u{200d}👩\u{200d}👧";
        let s = format!("{}{}", "y".repeat(47), family.repeat(3));
        let out = fit_message(&s);
        assert!(chars(&out) <= 50);
        assert!(!out.contains('\u{200d}') || out.contains(family));
    }

    #[test]
    fn format_characters_and_terminal_escapes_are_removed() {
        let out = fit_message("Folio\u{202e} closed\u{200b} \u{feff}\u{1b}[31mnow\u{1b}[0m");
        assert_eq!(out, "Folio closed now");
        assert_eq!(fit_message("\u{200b}\u{202e}"), "");
        assert_eq!(
            ApiError::PmsRejected("\u{feff}\u{200b}".into()).customer_message(),
            "Hotel system refused the charge"
        );
    }

    #[test]
    fn payload_errors_quote_a_bounded_part_of_the_request() {
        let huge = "k".repeat(500_000);
        let e = ApiError::invalid(format!("transactions[0].{huge}"), format!("unknown {huge}"));
        let body = e.body();
        assert!(body.len() < 1_000, "{} bytes", body.len());
        let ApiError::InvalidPayload { path, detail, .. } = &e else {
            unreachable!()
        };
        assert!(path.ends_with('…') && path.chars().count() == MAX_PATH + 1);
        assert!(detail.chars().count() == MAX_DETAIL + 1);
    }

    #[test]
    fn control_characters_are_removed() {
        let out = fit_message("line\none\ttab\u{7}bell");
        assert_eq!(out, "line one tab bell");
        assert!(!out.chars().any(char::is_control));
    }

    /// Found by fuzz/fuzz_targets/fit_message.rs (fuzz/regressions/fit_message/):
    /// `trim` keeps control characters such as U+001C, which fit_message then
    /// removes, and the POS got an empty message.
    #[test]
    fn a_refusal_of_control_characters_only_gets_the_default_message() {
        for reason in ["\u{1c}", " \u{7}\u{0} ", "\u{1b}\u{1f}\t"] {
            assert_eq!(
                ApiError::PmsRejected(reason.into()).customer_message(),
                "Hotel system refused the charge",
                "{reason:?}"
            );
        }
        assert_eq!(fit_message("\u{1c}"), "");
    }

    #[test]
    fn every_code_has_a_valid_message() {
        let all = [
            ApiError::invalid("transactions[1].amount", "expected a number"),
            ApiError::MissingIdempotencyKey,
            ApiError::InvalidIdempotencyKey("too long"),
            ApiError::Unauthorized,
            ApiError::NotAcceptable,
            ApiError::InProgress,
            ApiError::PayloadTooLarge { limit: 1 },
            ApiError::RequestTimeout(std::time::Duration::from_secs(5)),
            ApiError::UnsupportedMediaType,
            ApiError::IdempotencyKeyReused,
            ApiError::PmsRejected("Folio closed".into()),
            ApiError::PmsRejected(String::new()),
            ApiError::PmsUnavailable("x".into()),
            ApiError::PmsOutcomeUnknown("x".into()),
            ApiError::NoRoomChargePayment("CASH".into()),
            ApiError::StoreUnavailable("x".into()),
            ApiError::DeadlineExceeded,
            ApiError::EmptySearchTerm,
            ApiError::NotFound,
            ApiError::MethodNotAllowed("POST"),
            ApiError::MalformedRequest,
            ApiError::RequestHeadTooLarge,
            ApiError::Internal("x".into()),
        ];
        for e in all {
            let m = e.customer_message();
            assert!(!m.is_empty() && chars(&m) <= 50, "{m:?}");
            let body: serde_json::Value = serde_json::from_slice(&e.body()).unwrap();
            assert_eq!(body["code"], e.code());
        }
    }
}
