//! The posting journal: every charge chargebridge has accepted, until it is on a
//! folio or on an operator's list.
//!
//! Lightspeed closes the order at the POS as soon as it is paid to room and
//! re-sends nothing, so a failed posting cannot wait for a re-delivery. One entry
//! per (tenant, idempotency key) is written before the PMS is called and updated
//! after every attempt: the normalized charge (never the API key), its postings,
//! the attempts and a [`JournalState`]. The worker (`crate::worker`) finishes
//! what the delivery could not: it reconciles unknown outcomes and posts queued
//! charges, under a fenced lease so two replicas never work one entry.
//!
//! Backends: [`memory::MemoryJournal`] for one process, [`redis::RedisJournal`]
//! next to the idempotency records (per-tenant hash tags, so an entry and its
//! indexes change in one script on Redis Cluster too).

pub mod memory;
pub mod redis;
pub mod spool;

use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::config::WhenPmsUnavailable;
use crate::domain::Charge;
use crate::idempotency::StoreError;

/// Current entry format; readers accept every version up to this one.
pub const ENTRY_VERSION: u8 = 1;

/// Most attempts kept per entry: the first few and the latest.
const MAX_ATTEMPTS: usize = 50;

/// Where a charge stands. See `docs/operations.md` for what each means to the hotel.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum JournalState {
    /// On the folio (every posting of the receipt).
    Posted,
    /// Nothing to post (a MIRRORING receipt without a room charge).
    Acknowledged,
    /// The PMS refused for good; the POS was told.
    Rejected,
    /// Accepted for store and forward; the worker posts it.
    Queued,
    /// The PMS may have it; being reconciled.
    Unknown,
    /// Definitely not posted; the POS was told it failed.
    Failed,
    /// A person must act (refused after being queued, half posted, given up).
    NeedsAttention,
    /// Closed by an operator, with a note.
    Resolved,
}

impl JournalState {
    pub const ALL: [JournalState; 8] = [
        JournalState::Posted,
        JournalState::Acknowledged,
        JournalState::Rejected,
        JournalState::Queued,
        JournalState::Unknown,
        JournalState::Failed,
        JournalState::NeedsAttention,
        JournalState::Resolved,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            JournalState::Posted => "posted",
            JournalState::Acknowledged => "acknowledged",
            JournalState::Rejected => "rejected",
            JournalState::Queued => "queued",
            JournalState::Unknown => "unknown",
            JournalState::Failed => "failed",
            JournalState::NeedsAttention => "needs_attention",
            JournalState::Resolved => "resolved",
        }
    }

    /// Position in [`JournalState::ALL`] (index keys are laid out in that order).
    pub fn index(self) -> usize {
        JournalState::ALL
            .iter()
            .position(|s| *s == self)
            .unwrap_or_default()
    }

    /// The worker still has something to do for an entry in this state.
    pub fn is_open(self) -> bool {
        matches!(self, JournalState::Queued | JournalState::Unknown)
    }
}

/// Who made an attempt.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Actor {
    /// A delivery from Lightspeed.
    Delivery,
    /// The background worker.
    Worker,
    /// An operator action.
    Operator,
}

/// One call (or set of calls) to the PMS for this entry.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Attempt {
    pub at_ms: u64,
    pub by: Actor,
    /// `posted`, `reconciled`, `not_found`, `rejected`, `unavailable`,
    /// `unknown`, `deadline`, `busy`, `deferred` (revenue into a daily summary).
    pub outcome: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
    pub latency_ms: u64,
}

/// One reservation's posting of the receipt.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PostingStatus {
    pub reservation_id: String,
    /// The reference derived from the idempotency key that the PMS carries.
    pub reference: String,
    #[serde(with = "rust_decimal::serde::str")]
    pub amount: rust_decimal::Decimal,
    /// The PMS's id, once it is on the folio.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pms_reference: Option<String>,
    /// A payment settling revenue on the house account: its PMS method.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub payment: Option<String>,
}

impl PostingStatus {
    /// Whether `part` is this posting.
    pub fn is(&self, part: &crate::idempotency::PostedPart) -> bool {
        self.reservation_id == part.reservation_id && self.payment == part.payment
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct JournalEntry {
    pub v: u8,
    pub tenant: String,
    pub key: String,
    /// Fingerprint of the delivery's body: the worker takes the idempotency
    /// record over with it.
    pub fingerprint: String,
    pub state: JournalState,
    /// The tenant's `when_pms_unavailable` when the charge arrived.
    pub mode: WhenPmsUnavailable,
    pub created_ms: u64,
    pub updated_ms: u64,
    /// When the worker should look at it next; `None` when nothing is due.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub next_attempt_ms: Option<u64>,
    /// What the POS was told last (status), if anything.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub answered: Option<u16>,
    /// The refusal (4XX) a re-delivery replays, kept here too: the record
    /// lives on another shard and may be lost in a failover without it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub refusal: Option<crate::idempotency::StoredResponse>,
    pub charge: Charge,
    pub postings: Vec<PostingStatus>,
    pub attempts: Vec<Attempt>,
    /// Worker attempts so far (for the backoff).
    #[serde(default)]
    pub worker_attempts: u32,
    /// The operator's note of a `resolved` entry.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub note: Option<String>,
}

impl JournalEntry {
    /// A new entry for a delivery about to reach the PMS.
    pub fn new(
        charge: &Charge,
        postings: &[std::sync::Arc<Charge>],
        fingerprint: &str,
        mode: WhenPmsUnavailable,
        now_ms: u64,
    ) -> Self {
        JournalEntry {
            v: ENTRY_VERSION,
            tenant: charge.tenant.clone(),
            key: charge.idempotency_key.clone(),
            fingerprint: fingerprint.to_string(),
            state: JournalState::Unknown,
            mode,
            created_ms: now_ms,
            updated_ms: now_ms,
            next_attempt_ms: None,
            answered: None,
            refusal: None,
            charge: charge.clone(),
            postings: postings
                .iter()
                .filter_map(|p| {
                    p.room().map(|room| PostingStatus {
                        reservation_id: room.reservation_id.clone(),
                        reference: p.reference.to_string(),
                        amount: room.amount,
                        pms_reference: None,
                        payment: room.part_payment().map(str::to_string),
                    })
                })
                .collect(),
            attempts: Vec::new(),
            worker_attempts: 0,
            note: None,
        }
    }

    pub fn record_attempt(&mut self, attempt: Attempt) {
        if self.attempts.len() >= MAX_ATTEMPTS {
            // Keep the first five (how it started) and the latest.
            self.attempts.remove(5);
        }
        self.attempts.push(attempt);
    }

    pub fn encode(&self) -> Vec<u8> {
        serde_json::to_vec(self).unwrap_or_default()
    }

    pub fn decode(bytes: &[u8]) -> Result<JournalEntry, StoreError> {
        let entry: JournalEntry = serde_json::from_slice(bytes)
            .map_err(|e| StoreError(format!("unreadable journal entry: {e}")))?;
        if entry.v == 0 || entry.v > ENTRY_VERSION {
            return Err(StoreError(format!(
                "journal entry version {} is newer than this release",
                entry.v
            )));
        }
        Ok(entry)
    }
}

/// A page of entries, newest first.
#[derive(Debug, Clone, Default)]
pub struct Page {
    pub entries: Vec<JournalEntry>,
    /// Pass back to get the next page; `None` at the end.
    pub next_cursor: Option<String>,
}

/// What to list.
#[derive(Debug, Clone, Default)]
pub struct Query {
    pub state: Option<JournalState>,
    /// Created at or after (ms since the epoch).
    pub since_ms: Option<u64>,
    /// Created before.
    pub until_ms: Option<u64>,
    pub limit: usize,
    /// An opaque position from a previous page.
    pub cursor: Option<String>,
}

/// The atomic operations the journal needs, each on one tenant's keys.
pub trait JournalBackend: Send + Sync {
    /// Writes the entry and its indexes. With `fence`, only while the entry's
    /// lease is held by that owner (`Ok(false)` otherwise: a newer owner won).
    fn put(
        &self,
        entry: &JournalEntry,
        fence: Option<&str>,
    ) -> impl std::future::Future<Output = Result<bool, StoreError>> + Send;

    /// Writes a new entry; an entry already there is returned untouched (a
    /// re-delivery of a known key), so the caller can carry its history over.
    fn create(
        &self,
        entry: &JournalEntry,
    ) -> impl std::future::Future<Output = Result<Option<JournalEntry>, StoreError>> + Send;

    fn get(
        &self,
        tenant: &str,
        key: &str,
    ) -> impl std::future::Future<Output = Result<Option<JournalEntry>, StoreError>> + Send;

    /// Keys of entries whose next attempt is due at `now_ms`, oldest first.
    fn due(
        &self,
        tenant: &str,
        now_ms: u64,
        limit: usize,
    ) -> impl std::future::Future<Output = Result<Vec<String>, StoreError>> + Send;

    /// Takes the entry's lease for `ttl` if it is free (or already `owner`'s).
    fn lease(
        &self,
        tenant: &str,
        key: &str,
        owner: &str,
        ttl: Duration,
    ) -> impl std::future::Future<Output = Result<bool, StoreError>> + Send;

    /// Gives the lease back if `owner` still holds it.
    fn release(
        &self,
        tenant: &str,
        key: &str,
        owner: &str,
    ) -> impl std::future::Future<Output = Result<(), StoreError>> + Send;

    /// Entries of a tenant, newest first.
    fn list(
        &self,
        tenant: &str,
        query: &Query,
    ) -> impl std::future::Future<Output = Result<Page, StoreError>> + Send;

    /// Forgets index members (and, in memory, settled entries) older than
    /// `before_ms`: the retention, applied off the request path.
    fn trim(
        &self,
        tenant: &str,
        before_ms: u64,
    ) -> impl std::future::Future<Output = Result<(), StoreError>> + Send;

    /// How many entries are in each state, and the creation time of the oldest
    /// one per state (for metrics and alerts).
    fn census(
        &self,
        tenant: &str,
    ) -> impl std::future::Future<Output = Result<Vec<(JournalState, u64, Option<u64>)>, StoreError>>
    + Send;
}

/// The configured backend, chosen once at start-up.
pub enum Journal {
    Memory(memory::MemoryJournal),
    Redis(Box<redis::RedisJournal>),
}

macro_rules! dispatch {
    ($self:ident, $op:literal, $j:ident => $call:expr) => {{
        let started = std::time::Instant::now();
        let result = match $self {
            Journal::Memory($j) => $call.await,
            Journal::Redis($j) => $call.await,
        };
        crate::metrics::store_call($op, started.elapsed(), result.is_err());
        result
    }};
}

impl Journal {
    /// Readiness: `Err` when no new entry can be written (a memory journal
    /// full of open entries). The Redis journal's health is its store's ping.
    pub fn capacity_check(&self) -> Result<(), String> {
        match self {
            Journal::Memory(j) if !j.has_room() => {
                Err("memory journal full of open entries; new charges are refused".into())
            }
            _ => Ok(()),
        }
    }

    pub async fn put(&self, entry: &JournalEntry, fence: Option<&str>) -> Result<bool, StoreError> {
        dispatch!(self, "journal_put", j => j.put(entry, fence))
    }

    pub async fn create(&self, entry: &JournalEntry) -> Result<Option<JournalEntry>, StoreError> {
        dispatch!(self, "journal_create", j => j.create(entry))
    }

    pub async fn get(&self, tenant: &str, key: &str) -> Result<Option<JournalEntry>, StoreError> {
        dispatch!(self, "journal_get", j => j.get(tenant, key))
    }

    pub async fn due(
        &self,
        tenant: &str,
        now_ms: u64,
        limit: usize,
    ) -> Result<Vec<String>, StoreError> {
        dispatch!(self, "journal_due", j => j.due(tenant, now_ms, limit))
    }

    pub async fn lease(
        &self,
        tenant: &str,
        key: &str,
        owner: &str,
        ttl: Duration,
    ) -> Result<bool, StoreError> {
        dispatch!(self, "journal_lease", j => j.lease(tenant, key, owner, ttl))
    }

    pub async fn release(&self, tenant: &str, key: &str, owner: &str) -> Result<(), StoreError> {
        dispatch!(self, "journal_release", j => j.release(tenant, key, owner))
    }

    pub async fn list(&self, tenant: &str, query: &Query) -> Result<Page, StoreError> {
        dispatch!(self, "journal_list", j => j.list(tenant, query))
    }

    pub async fn trim(&self, tenant: &str, before_ms: u64) -> Result<(), StoreError> {
        dispatch!(self, "journal_trim", j => j.trim(tenant, before_ms))
    }

    pub async fn census(
        &self,
        tenant: &str,
    ) -> Result<Vec<(JournalState, u64, Option<u64>)>, StoreError> {
        dispatch!(self, "journal_census", j => j.census(tenant))
    }

    /// The local spool of queued charges (`journal.spool_dir`, Redis only).
    pub fn spool(&self) -> Option<&spool::Spool> {
        match self {
            Journal::Redis(j) => j.spool.as_ref(),
            Journal::Memory(_) => None,
        }
    }

    /// Keeps a copy of a queued entry on local disk before the POS hears
    /// "queued" (with a spool); a copy that cannot be written is logged, and
    /// the charge is still in Redis.
    pub fn keep_locally(&self, entry: &JournalEntry) {
        if let Some(spool) = self.spool()
            && let Err(e) = spool.keep(entry)
        {
            tracing::error!(
                tenant = %entry.tenant, key = %entry.key, error = %e, dir = %spool.dir().display(),
                "queued charge not copied to the local spool: it is only in Redis"
            );
        }
    }
}

/// Milliseconds since the Unix epoch.
pub fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
        .unwrap_or(0)
}

/// The worker's wait before attempt `n` (1, 2, 4 … s, at most 5 min), with up
/// to a quarter more at random so replicas do not move in step.
pub fn backoff(attempt: u32) -> Duration {
    let base = Duration::from_secs(1u64 << attempt.min(9)).min(Duration::from_secs(300));
    let jitter_ms =
        u64::from(uuid::Uuid::new_v4().as_u128() as u16) % (base.as_millis() as u64 / 4 + 1);
    base + Duration::from_millis(jitter_ms)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_from_one_second_to_five_minutes() {
        for (n, low) in [
            (0, 1),
            (1, 2),
            (2, 4),
            (3, 8),
            (8, 256),
            (9, 300),
            (20, 300),
        ] {
            let d = backoff(n);
            assert!(d >= Duration::from_secs(low), "{n}: {d:?}");
            assert!(d <= Duration::from_secs(low) * 5 / 4, "{n}: {d:?}");
        }
    }

    #[test]
    fn states_have_stable_names_and_positions() {
        let names: Vec<&str> = JournalState::ALL.iter().map(|s| s.as_str()).collect();
        assert_eq!(
            names,
            [
                "posted",
                "acknowledged",
                "rejected",
                "queued",
                "unknown",
                "failed",
                "needs_attention",
                "resolved"
            ]
        );
        for (i, s) in JournalState::ALL.iter().enumerate() {
            assert_eq!(s.index(), i);
            let json = serde_json::to_string(s).unwrap();
            assert_eq!(json, format!("\"{}\"", s.as_str()));
        }
    }
}
