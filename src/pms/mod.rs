//! PMS adapters: the one seam between chargebridge and a hotel's property system.
//!
//! An adapter does four things: post a charge (carrying the charge's derived
//! `reference`, within a deadline), find a charge again by that reference
//! (reconcile), search checked-in guests, and report its health. Every failure is
//! classified, because the class decides what happens to the idempotency record:
//!
//! * [`ErrorClass::Rejected`]: a permanent business refusal (closed folio, unknown
//!   room). Stored and replayed as 422.
//! * [`ErrorClass::Unavailable`]: the charge was definitely **not** applied (could
//!   not connect, 5XX before acceptance). The claim is released; a retry posts.
//! * [`ErrorClass::Unknown`]: the charge **may** have been applied (timeout after the
//!   request was sent). Recorded; the next delivery reconciles before posting.
//!
//! Adding a PMS: write one file, `src/pms/<kind>.rs`, with a settings struct
//! (serde, `deny_unknown_fields`) implementing [`AdapterSettings`] and a type
//! implementing [`PmsAdapter`]; then add one line to `adapters!` below. An HTTP
//! adapter builds its calls on `transport::Transport` with a `transport::Vendor`
//! that says what the vendor's statuses and error bodies mean; deadline budget,
//! redirects, timeouts, rate limit, credentials, error classes and metrics are
//! the transport's. The config loader, `check-config` and the metrics find the
//! new kind without further changes.
//!
//! ```no_run
//! use std::sync::Arc;
//! use chargebridge::domain::Charge;
//! use chargebridge::pms::{AdapterSettings, Built, GuestStay, PmsAdapter, PmsError, PostingReceipt};
//! use tokio::time::Instant;
//!
//! #[derive(Debug, Clone, serde::Deserialize)]
//! #[serde(deny_unknown_fields)]
//! struct LedgerSettings {}
//!
//! impl AdapterSettings for LedgerSettings {
//!     fn check(&self) -> Result<(), String> { Ok(()) }
//!     fn build(&self) -> Result<Built, String> { Ok(Built::adapter(Ledger)) }
//! }
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

#[macro_use]
mod registry;

// The registry: one line per adapter kind (`adapter = "<variant>"` in lowercase).
adapters! {
    memory::MemoryPmsSettings => Memory,
    http::HttpPmsSettings => Http,
    mews::MewsSettings => Mews,
    opera::OperaSettings => Opera,
    apaleo::ApaleoSettings => Apaleo,
}

pub mod itemize;
mod oauth;
pub mod rate_limit;
mod rest;
pub(crate) mod transport;

use rust_decimal::Decimal;
use serde::Serialize;
use std::sync::Arc;
use tokio::time::Instant;

use crate::domain::{Charge, RoomCharge};

pub use registry::{AdapterSettings, Built, PmsRegistry};

/// The room-charge part of `charge`. `posting.rs` never posts a charge without
/// one, so this only guards adapters called directly.
pub fn room_of(charge: &Charge) -> Result<&RoomCharge, PmsError> {
    charge
        .room()
        .ok_or_else(|| PmsError::rejected("Nothing to charge to the room"))
}

/// The room of a settlement part (a payment against a house account, see
/// `RoomCharge::settlement`), `None` for a charge.
pub fn settlement_of(charge: &Charge) -> Option<&RoomCharge> {
    charge.room().filter(|r| r.settlement)
}

/// How a PMS call failed; see the module documentation for what each class means.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorClass {
    /// Permanent refusal; the detail is the PMS's reason, readable by staff.
    Rejected,
    /// Definitely not applied.
    Unavailable,
    /// May have been applied.
    Unknown,
}

impl ErrorClass {
    /// Short label for metrics and logs.
    pub fn label(self) -> &'static str {
        match self {
            ErrorClass::Rejected => "rejected",
            ErrorClass::Unavailable => "unavailable",
            ErrorClass::Unknown => "unknown",
        }
    }
}

/// A failed PMS call: its class (what it means for the charge), a one-line
/// detail (for a refusal, the PMS's reason as staff should read it), and what
/// caused it when that was an error of its own (a transport failure).
#[derive(Debug, Clone)]
pub struct PmsError {
    pub class: ErrorClass,
    pub detail: String,
    /// The pause a rate-limited PMS asked for (429 with `Retry-After`).
    retry_after: Option<std::time::Duration>,
    /// Nothing was tried because the deadline had come.
    out_of_time: bool,
    /// The PMS's HTTP status, when it answered one.
    status: Option<u16>,
    source: Option<Arc<dyn std::error::Error + Send + Sync>>,
}

impl PmsError {
    pub fn new(class: ErrorClass, detail: impl Into<String>) -> Self {
        PmsError {
            class,
            detail: detail.into(),
            retry_after: None,
            out_of_time: false,
            status: None,
            source: None,
        }
    }

    /// A permanent business refusal; `reason` is shown to staff.
    pub fn rejected(reason: impl Into<String>) -> Self {
        Self::new(ErrorClass::Rejected, reason)
    }

    /// Definitely not applied.
    pub fn unavailable(detail: impl Into<String>) -> Self {
        Self::new(ErrorClass::Unavailable, detail)
    }

    /// May have been applied.
    pub fn unknown(detail: impl Into<String>) -> Self {
        Self::new(ErrorClass::Unknown, detail)
    }

    /// Not tried: no time was left before the deadline.
    pub fn out_of_time(detail: impl Into<String>) -> Self {
        PmsError {
            out_of_time: true,
            ..Self::unavailable(detail)
        }
    }

    /// Not applied, and the PMS asked for a pause (429 with `Retry-After`): the
    /// journal's worker waits at least that long before the next attempt.
    pub fn rate_limited(detail: impl Into<String>, wait: std::time::Duration) -> Self {
        PmsError {
            retry_after: Some(wait),
            ..Self::unavailable(detail)
        }
    }

    /// The same failure, caused by `source` (kept for `Error::source`).
    pub fn caused_by(mut self, source: impl std::error::Error + Send + Sync + 'static) -> Self {
        self.source = Some(Arc::new(source));
        self
    }

    /// The same failure seen as `class` (a read-back that failed leaves the
    /// outcome unknown), with `context` before the detail.
    pub fn as_class(mut self, class: ErrorClass, context: &str) -> Self {
        self.class = class;
        if !context.is_empty() {
            self.detail = format!("{context}: {}", self.detail);
        }
        self
    }

    /// The same failure, known to come from an answer with this HTTP status.
    pub fn with_status(mut self, status: u16) -> Self {
        self.status = Some(status);
        self
    }

    /// The HTTP status the PMS answered, when the failure is an answer.
    pub fn status(&self) -> Option<u16> {
        self.status
    }

    /// The pause a rate-limited PMS asked for, if it did.
    pub fn retry_after(&self) -> Option<std::time::Duration> {
        self.retry_after
            .filter(|_| self.class == ErrorClass::Unavailable)
    }

    /// Whether the call was not made because the deadline had come.
    pub fn is_out_of_time(&self) -> bool {
        self.out_of_time
    }

    pub fn is_rejected(&self) -> bool {
        self.class == ErrorClass::Rejected
    }

    pub fn is_unavailable(&self) -> bool {
        self.class == ErrorClass::Unavailable
    }

    pub fn is_unknown(&self) -> bool {
        self.class == ErrorClass::Unknown
    }

    /// Short label for metrics and logs.
    pub fn class(&self) -> &'static str {
        self.class.label()
    }
}

impl std::fmt::Display for PmsError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let class = match self.class {
            ErrorClass::Rejected => "rejected",
            ErrorClass::Unavailable => "unavailable",
            ErrorClass::Unknown => "outcome unknown",
        };
        write!(f, "{class}: {}", self.detail)
    }
}

impl std::error::Error for PmsError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        self.source
            .as_deref()
            .map(|e| e as &(dyn std::error::Error + 'static))
    }
}

/// Two failures are the same when class, detail and asked pause agree; the
/// cause is context, not identity.
impl PartialEq for PmsError {
    fn eq(&self, other: &Self) -> bool {
        self.class == other.class
            && self.detail == other.detail
            && self.retry_after == other.retry_after
    }
}

impl Eq for PmsError {}

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
    /// [`ErrorClass::Unknown`].
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
        assert_eq!(PmsError::unavailable("down").retry_after(), None);
        let unknown = e.clone().as_class(ErrorClass::Unknown, "reconcile");
        assert_eq!(unknown.retry_after(), None);
        assert_eq!(
            unknown.to_string(),
            "outcome unknown: reconcile: PMS answered HTTP 429"
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

/// Whether a guest found by a PMS search is one the term asks for: the room
/// exactly when the term looks like a room number ("101", "12B"), else the name
/// by [`name_matches`].
pub fn stay_matches(term: &str, stay: &GuestStay) -> bool {
    if rest::looks_like_room(term) {
        stay.room_id.eq_ignore_ascii_case(term)
    } else {
        name_matches(term, &stay.client_name)
    }
}

/// The name part of a search for house / posting-master accounts: a term that
/// starts with `*` (`*BAR` → `BAR`, `*` → every account); `None` for a guest
/// search.
pub fn house_account_term(term: &str) -> Option<&str> {
    term.trim().strip_prefix('*').map(str::trim)
}

/// Whether a house account's name is one the name part of a `*` term asks for
/// (every account for an empty one).
pub fn house_account_matches(name_term: &str, name: &str) -> bool {
    name_term.is_empty() || name_matches(name_term, name)
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

/// A charge built from a Lightspeed payload for the demo tenant, for unit tests.
#[cfg(test)]
pub(crate) fn demo_charge(json: &str) -> Charge {
    let s = crate::config::Settings::demo();
    let pms = PmsRegistry::build(&s.pms).unwrap();
    let tenants = crate::domain::Tenants::build(&s.tenants, &pms).unwrap();
    let wire = crate::lightspeed::parse_charge(json.as_bytes()).unwrap();
    let tenant = tenants.by_id("demo").unwrap();
    Charge::from_wire(
        &wire,
        tenant,
        &crate::domain::IdempotencyKey::parse(b"LS1_test").unwrap(),
        chrono::Utc::now(),
    )
    .unwrap()
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
    fn a_star_asks_for_house_accounts() {
        assert_eq!(house_account_term("*BAR"), Some("BAR"));
        assert_eq!(house_account_term(" * bar "), Some("bar"));
        assert_eq!(house_account_term("*"), Some(""));
        assert_eq!(house_account_term("Doe"), None);
        assert!(house_account_matches("", "Bar house account"));
        assert!(house_account_matches("bar", "Bar house account"));
        assert!(!house_account_matches("spa", "Bar house account"));
    }

    #[test]
    fn the_surname_is_before_a_comma_or_last() {
        assert_eq!(surname_in("Doe, Jane"), "Doe");
        assert_eq!(surname_in("Jane Doe"), "Doe");
        assert_eq!(surname_in(" Doe "), "Doe");
        assert_eq!(surname_in(", Jane"), "Jane");
    }
}
