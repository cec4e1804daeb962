//! Idempotency semantics (README "Redis in production"), written once over the store trait.
//!
//! A delivery either **owns** its key (and must finish with `complete`,
//! `release` or `mark_unknown`) or is answered from the record of the delivery
//! that owned it. Records live under `chargebridge:idem:<tenant>:<key>`.
//!
//! One deliberate detail: an in-progress record is written with the retention TTL
//! and carries its lease end inside (`lease_until_ms`). A holder that died
//! mid-posting (hard kill, lost node) therefore leaves a trace, and the next
//! delivery reconciles with the PMS before posting, instead of finding the key
//! gone and posting blindly a second time.

pub mod fingerprint;
pub mod memory;
mod record;
pub mod redis;
mod store;

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use tokio::time::Instant;

pub use fingerprint::fingerprint;
pub use record::{PostedPart, RECORD_VERSION, Record, RecordState, StoredResponse};
pub use store::{Claim, Store, StoreBackend, StoreError};

use crate::domain::IdempotencyKey;

/// First and longest pause between looks at a key another delivery holds.
const FIRST_POLL: Duration = Duration::from_millis(1);
const MAX_POLL: Duration = Duration::from_millis(100);

/// Why a delivery could not take or replay its key.
#[derive(Debug, thiserror::Error)]
pub enum BeginError {
    #[error("idempotency key reused with a different payload")]
    Reused,
    #[error("another delivery of this key is still in progress")]
    InProgress,
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// What a delivery gets when it asks for its key.
pub enum Begin<'a> {
    /// The key is ours: do the work, then settle the guard.
    Owned(Guard<'a>),
    /// A final answer exists: send it again, byte for byte.
    Replay(StoredResponse),
}

#[derive(Debug, Clone)]
pub struct IdempotencySettings {
    pub lease: Duration,
    pub in_flight_wait: Duration,
    pub retention: Duration,
    /// Look every key up at the PMS before its first POST (`[idempotency]
    /// reconcile_new_keys`).
    pub reconcile_new_keys: bool,
}

pub struct Idempotency {
    store: Store,
    settings: IdempotencySettings,
}

fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
        .unwrap_or(0)
}

/// Store key of a delivery. `:` and `%` in the tenant are escaped so no two
/// (tenant, key) pairs can collide.
pub fn record_key(tenant: &str, key: &IdempotencyKey) -> String {
    let mut out = String::with_capacity(20 + tenant.len() + key.as_str().len());
    out.push_str("chargebridge:idem:");
    for ch in tenant.chars() {
        match ch {
            '%' => out.push_str("%25"),
            ':' => out.push_str("%3A"),
            c => out.push(c),
        }
    }
    out.push(':');
    out.push_str(key.as_str());
    out
}

impl Idempotency {
    pub fn new(store: Store, settings: IdempotencySettings) -> Self {
        Idempotency { store, settings }
    }

    pub fn store(&self) -> &Store {
        &self.store
    }

    /// `reconcile_new_keys`: every key is looked up at the PMS before its
    /// first POST (the store may have lost an earlier delivery's record).
    pub fn reconcile_new_keys(&self) -> bool {
        self.settings.reconcile_new_keys
    }

    /// The claim's lease in milliseconds.
    pub fn lease_ms(&self) -> u64 {
        u64::try_from(self.settings.lease.as_millis()).unwrap_or(u64::MAX / 2)
    }

    fn in_progress(&self, owner: &str, fp: &str) -> Record {
        Record {
            owner: owner.to_string(),
            v: RECORD_VERSION,
            state: RecordState::InProgress,
            fp: fp.to_string(),
            lease_until_ms: self.lease_end(),
            response: None,
            posted: Vec::new(),
        }
    }

    fn lease_end(&self) -> u64 {
        now_ms() + u64::try_from(self.settings.lease.as_millis()).unwrap_or(u64::MAX / 2)
    }

    /// Takes the key, replays its final answer, or waits for the delivery that
    /// holds it (up to `in_flight_wait`, and never past `wait_until`).
    pub async fn begin(
        &self,
        record_key: String,
        fp: &str,
        wait_until: Instant,
    ) -> Result<Begin<'_>, BeginError> {
        let owner = uuid::Uuid::new_v4().simple().to_string();
        let wait_until = wait_until.min(Instant::now() + self.settings.in_flight_wait);
        // A first delivery usually settles within a few milliseconds: poll soon,
        // then back off so a slow PMS does not turn waiters into a load on Redis.
        let mut backoff = FIRST_POLL;
        loop {
            let mine = self.in_progress(&owner, fp);
            let existing = match self
                .store
                .claim(&record_key, &mine, self.settings.retention)
                .await?
            {
                Claim::Claimed => {
                    return Ok(Begin::Owned(Guard::new(self, record_key, owner, fp, None)));
                }
                Claim::Existing(existing) => existing,
            };
            if existing.fp != fp {
                return Err(BeginError::Reused);
            }
            match existing.state {
                RecordState::Completed => {
                    if let Some(response) = existing.response {
                        return Ok(Begin::Replay(response));
                    }
                    // A completed record without a response cannot be replayed:
                    // treat it like an unknown outcome and reconcile.
                }
                RecordState::InProgress if !existing.lease_expired(now_ms()) => {
                    let now = Instant::now();
                    if now >= wait_until {
                        return Err(BeginError::InProgress);
                    }
                    if backoff == FIRST_POLL {
                        crate::metrics::in_flight_wait();
                    }
                    tokio::time::sleep(backoff.min(wait_until - now)).await;
                    backoff = (backoff * 2).min(MAX_POLL);
                    continue;
                }
                RecordState::InProgress | RecordState::Unknown => {}
            }
            // Unknown outcome or an abandoned lease: take the key over, fenced on
            // the previous owner, and reconcile before posting anything.
            let mut mine = mine;
            mine.posted = existing.posted.clone();
            if self
                .store
                .replace_if_owner(&record_key, &existing.owner, &mine, self.settings.retention)
                .await?
            {
                return Ok(Begin::Owned(Guard::new(
                    self,
                    record_key,
                    owner,
                    fp,
                    Some(existing.posted),
                )));
            }
            // Someone else changed the record meanwhile: look again.
        }
    }
}

impl Idempotency {
    /// Takes the key for the journal's worker, whatever its final answer says
    /// (a queued answer is final for replays but not for the charge): `None`
    /// while a delivery holds it. The guard always reconciles first.
    pub async fn take_over(
        &self,
        record_key: String,
        fp: &str,
    ) -> Result<Option<Guard<'_>>, BeginError> {
        let owner = uuid::Uuid::new_v4().simple().to_string();
        let mut mine = self.in_progress(&owner, fp);
        let existing = match self
            .store
            .claim(&record_key, &mine, self.settings.retention)
            .await?
        {
            // Gone (released, expired or lost): the journal says the PMS may
            // have it, so it is reconciled all the same.
            Claim::Claimed => {
                return Ok(Some(Guard::new(
                    self,
                    record_key,
                    owner,
                    fp,
                    Some(Vec::new()),
                )));
            }
            Claim::Existing(existing) => existing,
        };
        if existing.fp != fp {
            return Err(BeginError::Reused);
        }
        if existing.state == RecordState::InProgress && !existing.lease_expired(now_ms()) {
            return Ok(None);
        }
        mine.posted = existing.posted.clone();
        if self
            .store
            .replace_if_owner(&record_key, &existing.owner, &mine, self.settings.retention)
            .await?
        {
            let mut guard = Guard::new(self, record_key, owner, fp, Some(existing.posted));
            if existing.state == RecordState::Completed {
                guard.heard = existing.response;
            }
            Ok(Some(guard))
        } else {
            Ok(None)
        }
    }
}

/// Ownership of one key. Settle it with exactly one of `complete`, `release` or
/// `mark_unknown`; a guard dropped unsettled leaves its in-progress record to
/// expire into a reconciliation.
pub struct Guard<'a> {
    idempotency: &'a Idempotency,
    record_key: String,
    owner: String,
    fp: String,
    reconcile_first: bool,
    posted: Vec<PostedPart>,
    /// The final answer the record held when the worker took the key over.
    heard: Option<StoredResponse>,
}

impl<'a> Guard<'a> {
    /// `taken_over` carries what the previous owner had posted when the key was
    /// taken over from an unknown outcome or an abandoned lease.
    fn new(
        idempotency: &'a Idempotency,
        record_key: String,
        owner: String,
        fp: &str,
        taken_over: Option<Vec<PostedPart>>,
    ) -> Self {
        Guard {
            idempotency,
            record_key,
            owner,
            fp: fp.to_string(),
            reconcile_first: taken_over.is_some(),
            posted: taken_over.unwrap_or_default(),
            heard: None,
        }
    }

    /// True when an earlier delivery may have reached the PMS: ask it first.
    pub fn must_reconcile(&self) -> bool {
        self.reconcile_first
    }

    /// Something outside the record (the posting journal) says an earlier
    /// attempt may have reached the PMS: ask it before posting.
    pub fn require_reconcile(&mut self) {
        self.reconcile_first = true;
    }

    /// The final answer stored for replays before `take_over` (what the POS
    /// heard, even if the journal entry was not updated with it).
    pub fn heard(&self) -> Option<&StoredResponse> {
        self.heard.as_ref()
    }

    /// Postings an earlier delivery of this key already put on the folio.
    pub fn posted(&self) -> &[PostedPart] {
        &self.posted
    }

    fn record(&self, state: RecordState, response: Option<StoredResponse>) -> Record {
        Record {
            owner: self.owner.clone(),
            v: RECORD_VERSION,
            state,
            fp: self.fp.clone(),
            lease_until_ms: 0,
            response,
            posted: self.posted.clone(),
        }
    }

    /// Replaces the record, fenced on our owner token.
    async fn write(&self, record: &Record) -> Result<bool, StoreError> {
        self.idempotency
            .store
            .replace_if_owner(
                &self.record_key,
                &self.owner,
                record,
                self.idempotency.settings.retention,
            )
            .await
    }

    /// Keeps what is on the folio so far (several reservations on one receipt),
    /// so a delivery that dies half-way leaves the rest to be posted, not redone.
    pub async fn record_progress(&mut self, posted: Vec<PostedPart>) -> Result<bool, StoreError> {
        self.posted = posted;
        let mut record = self.record(RecordState::InProgress, None);
        record.lease_until_ms = self.idempotency.lease_end();
        self.write(&record).await
    }

    /// Stores the final answer for replays. `Ok(false)` means our lease was lost
    /// and a successor's record was left untouched.
    pub async fn complete(self, response: StoredResponse) -> Result<bool, StoreError> {
        let record = self.record(RecordState::Completed, Some(response));
        self.write(&record).await
    }

    /// Frees the key after a failure that left nothing applied: a retry runs again.
    pub async fn release(self) -> Result<bool, StoreError> {
        self.idempotency
            .store
            .delete_if_owner(&self.record_key, &self.owner)
            .await
    }

    /// Records that the PMS may have applied the charge (or, with several
    /// reservations, that some postings are on the folio and others not yet).
    pub async fn mark_unknown(self) -> Result<bool, StoreError> {
        let record = self.record(RecordState::Unknown, None);
        self.write(&record).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn record_keys_escape_the_tenant() {
        let k = IdempotencyKey::parse(b"b:c").unwrap();
        let k2 = IdempotencyKey::parse(b"c").unwrap();
        assert_eq!(record_key("a", &k), "chargebridge:idem:a:b:c");
        assert_ne!(record_key("a", &k), record_key("a:b", &k2));
        assert_eq!(record_key("a:b%", &k2), "chargebridge:idem:a%3Ab%25:c");
    }
}
