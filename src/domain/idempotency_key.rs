//! The `X-Lightspeed-Idempotency-Key` header, checked once at the edge.

use std::fmt;

use crate::error::ApiError;

/// Longest key accepted (SPEC: 1–255 visible ASCII characters).
pub const MAX_KEY_LEN: usize = 255;

/// A key of 1–255 visible ASCII characters (`0x21`–`0x7E`). Lightspeed sends
/// `LS1_<uuid>`; any other key of that alphabet is accepted.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct IdempotencyKey(String);

impl IdempotencyKey {
    pub fn parse(raw: &[u8]) -> Result<Self, ApiError> {
        if raw.is_empty() {
            return Err(ApiError::InvalidIdempotencyKey("empty"));
        }
        if raw.len() > MAX_KEY_LEN {
            return Err(ApiError::InvalidIdempotencyKey(
                "longer than 255 characters",
            ));
        }
        if !raw.iter().all(|b| (0x21..=0x7e).contains(b)) {
            return Err(ApiError::InvalidIdempotencyKey(
                "only visible ASCII characters are allowed",
            ));
        }
        // Checked above: every byte is ASCII.
        Ok(IdempotencyKey(String::from_utf8_lossy(raw).into_owned()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for IdempotencyKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lightspeed_keys_and_other_visible_ascii_are_accepted() {
        for k in [
            "LS1_123e4567-e89b-12d3-a456-426614174000",
            "a",
            "!~{}:x",
            &"k".repeat(255),
        ] {
            assert_eq!(IdempotencyKey::parse(k.as_bytes()).unwrap().as_str(), k);
        }
    }

    #[test]
    fn empty_long_space_control_and_non_ascii_are_refused() {
        for k in [
            &b""[..],
            &[b'k'; 256][..],
            b"with space",
            b"tab\t",
            b"\x7f",
            "é".as_bytes(),
        ] {
            assert!(IdempotencyKey::parse(k).is_err(), "{k:?}");
        }
    }
}
