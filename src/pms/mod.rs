//! PMS adapters: the one seam between chargebridge and a hotel's property system.
//!
//! An adapter does four things: post a charge (carrying the charge's derived
//! `reference`, within a deadline), find a charge again by that reference
//! (reconcile), search checked-in guests, and report its health. Every failure is
//! classified, because the class decides what happens to the idempotency record:
//!
//! * [`PmsError::Rejected`]: a permanent business refusal (closed folio, unknown
//!   room). Stored and replayed as 422.
//! * [`PmsError::Unavailable`]: the charge was definitely **not** applied (could
//!   not connect, 5XX before acceptance). The claim is released; a retry posts.
//! * [`PmsError::Unknown`]: the charge **may** have been applied (timeout after the
//!   request was sent). Recorded; the next delivery reconciles before posting.
//!
//! Adding a PMS: write one file with a settings struct and a type implementing
//! [`PmsAdapter`], then add one variant to [`PmsSettings`] (`registry.rs`).
//!
//! ```no_run
//! use std::sync::Arc;
//! use chargebridge::domain::Charge;
//! use chargebridge::pms::{GuestStay, PmsAdapter, PmsError, PostingReceipt};
//! use tokio::time::Instant;
//!
//! struct Ledger;
//!
//! #[async_trait::async_trait]
//! impl PmsAdapter for Ledger {
//!     fn kind(&self) -> &'static str { "ledger" }
//!     async fn post(&self, charge: &Arc<Charge>, _deadline: Instant) -> Result<PostingReceipt, PmsError> {
//!         Ok(PostingReceipt { pms_reference: charge.reference.to_string() })
//!     }
//!     async fn reconcile(&self, _charge: &Charge, _deadline: Instant) -> Result<Option<PostingReceipt>, PmsError> {
//!         Ok(None)
//!     }
//!     async fn search(&self, _term: &str, _deadline: Instant) -> Result<Vec<GuestStay>, PmsError> {
//!         Ok(vec![])
//!     }
//!     async fn health(&self) -> Result<(), PmsError> { Ok(()) }
//! }
//! ```

pub mod apaleo;
pub mod http;
pub mod itemize;
pub mod memory;
pub mod mews;
mod oauth;
pub mod opera;
pub mod rate_limit;
mod registry;
mod rest;

use rust_decimal::Decimal;
use serde::Serialize;
use std::sync::Arc;
use tokio::time::Instant;

use crate::domain::{Charge, RoomCharge};

pub use registry::{PmsRegistry, PmsSettings};

/// The room-charge part of `charge`. `posting.rs` never posts a charge without
/// one, so this only guards adapters called directly.
pub fn room_of(charge: &Charge) -> Result<&RoomCharge, PmsError> {
    charge
        .room()
        .ok_or_else(|| PmsError::Rejected("Nothing to charge to the room".into()))
}

/// How a PMS call failed; see the module documentation for what each class means.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PmsError {
    /// Permanent refusal; the string is the PMS's reason, readable by staff.
    #[error("rejected: {0}")]
    Rejected(String),
    /// Definitely not applied.
    #[error("unavailable: {0}")]
    Unavailable(String),
    /// May have been applied.
    #[error("outcome unknown: {0}")]
    Unknown(String),
}

/// How [`PmsError::rate_limited`] writes the wait into an unavailable error.
const RETRY_AFTER_MARK: &str = " (retry after ";

impl PmsError {
    /// Not applied, and the PMS asked for a pause (429 with `Retry-After`): the
    /// journal's worker waits at least that long before the next attempt.
    pub fn rate_limited(detail: impl Into<String>, wait: std::time::Duration) -> Self {
        PmsError::Unavailable(format!(
            "{}{RETRY_AFTER_MARK}{} ms)",
            detail.into(),
            wait.as_millis()
        ))
    }

    /// The pause a rate-limited PMS asked for, if it did.
    pub fn retry_after(&self) -> Option<std::time::Duration> {
        let PmsError::Unavailable(detail) = self else {
            return None;
        };
        let (_, rest) = detail.rsplit_once(RETRY_AFTER_MARK)?;
        let ms: u64 = rest.strip_suffix(" ms)")?.parse().ok()?;
        Some(std::time::Duration::from_millis(ms))
    }

    /// Short label for metrics and logs.
    pub fn class(&self) -> &'static str {
        match self {
            PmsError::Rejected(_) => "rejected",
            PmsError::Unavailable(_) => "unavailable",
            PmsError::Unknown(_) => "unknown",
        }
    }
}

/// What the PMS answered for an applied charge.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PostingReceipt {
    /// The PMS's own id of the posting (order id, transaction number, …).
    pub pms_reference: String,
}

/// A checked-in guest, as `/lightspeed/search` answers it.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct GuestStay {
    pub reservation_id: String,
    pub room_id: String,
    pub room_description: String,
    pub client_name: String,
    #[serde(
        skip_serializing_if = "Option::is_none",
        with = "rust_decimal::serde::str_option"
    )]
    pub credit_limit: Option<Decimal>,
    pub blocked: bool,
}

/// The contract every PMS implements. Implementations must be cheap to share
/// (`Arc`) and safe to call concurrently.
#[async_trait::async_trait]
pub trait PmsAdapter: Send + Sync + 'static {
    /// The adapter's kind (`memory`, `http`, …), for logs and metrics.
    fn kind(&self) -> &'static str;

    /// Applies the charge once, carrying `charge.reference` so it can be found
    /// again. The charge comes shared, so an adapter that keeps it need not copy it. Must answer before `deadline`; a timeout after the request left is
    /// [`PmsError::Unknown`].
    async fn post(
        &self,
        charge: &Arc<Charge>,
        deadline: Instant,
    ) -> Result<PostingReceipt, PmsError>;

    /// Looks for a charge carrying `charge.reference`; `Ok(None)` means the PMS
    /// certainly does not have it.
    async fn reconcile(
        &self,
        charge: &Charge,
        deadline: Instant,
    ) -> Result<Option<PostingReceipt>, PmsError>;

    /// Checked-in guests whose name or room matches `term`.
    async fn search(&self, term: &str, deadline: Instant) -> Result<Vec<GuestStay>, PmsError>;

    /// Whether the PMS can be reached with the configured credentials.
    async fn health(&self) -> Result<(), PmsError>;
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn a_rate_limit_carries_its_wait() {
        let e = PmsError::rate_limited("PMS answered HTTP 429", Duration::from_secs(30));
        assert_eq!(e.class(), "unavailable");
        assert_eq!(e.retry_after(), Some(Duration::from_secs(30)));
        assert_eq!(PmsError::Unavailable("down".into()).retry_after(), None);
        assert_eq!(
            PmsError::Unknown("x (retry after 5 ms)".into()).retry_after(),
            None
        );
    }
}

/// Whether a guest-search term names this guest's name, however the staff
/// typed it: "Doe", "Jane Doe", "Doe, Jane", "doe jane", "Do" — every word of
/// the term starts a word of the name, in any order. Case and accents as
/// typed are compared without case only.
pub fn name_matches(term: &str, name: &str) -> bool {
    let words = |text: &str| -> Vec<String> {
        text.split(|c: char| c.is_whitespace() || c == ',')
            .filter(|w| !w.is_empty())
            .map(str::to_lowercase)
            .collect()
    };
    let wanted = words(term);
    let have = words(name);
    !wanted.is_empty()
        && wanted
            .iter()
            .all(|w| have.iter().any(|h| h.starts_with(w.as_str())))
}

/// The surname in a term, for PMS searches that take one: the part before a
/// comma ("Doe, Jane"), else the last word ("Jane Doe").
pub fn surname_in(term: &str) -> &str {
    let term = term.trim();
    match term.split_once(',') {
        Some((surname, _)) if !surname.trim().is_empty() => surname.trim(),
        _ => term.split_whitespace().last().unwrap_or(term),
    }
}

#[cfg(test)]
mod name_tests {
    use super::*;

    #[test]
    fn names_match_in_either_order_and_by_prefix() {
        for term in ["Doe", "jane doe", "Doe, Jane", "DOE,JANE", "Do", "Jane  D"] {
            assert!(name_matches(term, "Jane Doe"), "{term}");
        }
        for term in ["Smith", "Jane Smith", "oe", ",", ""] {
            assert!(!name_matches(term, "Jane Doe"), "{term}");
        }
        assert!(name_matches("Müller", "Hans MÜLLER"));
    }

    #[test]
    fn the_surname_is_before_a_comma_or_last() {
        assert_eq!(surname_in("Doe, Jane"), "Doe");
        assert_eq!(surname_in("Jane Doe"), "Doe");
        assert_eq!(surname_in(" Doe "), "Doe");
        assert_eq!(surname_in(", Jane"), "Jane");
    }
}
