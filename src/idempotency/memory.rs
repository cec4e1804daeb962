//! The embedded store: one process, records in memory. For development, demos and
//! tests; production runs Redis so replicas agree and records survive restarts.
//!
//! Bounded: at most `capacity` records (about 570 bytes each, measured with the
//! seed payload). Expired records are swept when the store fills, at most once a
//! second (a sweep walks every record); if it is still full, new claims fail
//! closed (`store_unavailable`) rather than forgetting a completed charge, which
//! could let a retry post twice.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::Duration;

use tokio::time::Instant;

use super::Record;
use super::store::{Claim, StoreBackend, StoreError};

struct Entry {
    record: Record,
    expires_at: Instant,
}

pub struct MemoryStore {
    entries: Mutex<HashMap<String, Entry>>,
    capacity: usize,
    /// When a full store may next be swept for expired records.
    next_sweep: Mutex<Instant>,
}

/// A full store is swept at most this often, so a flood of new keys against a
/// full store costs a lookup per claim, not a walk over every record.
const SWEEP_INTERVAL: Duration = Duration::from_secs(1);

impl MemoryStore {
    pub fn new(capacity: usize) -> Self {
        MemoryStore {
            entries: Mutex::new(HashMap::new()),
            capacity: capacity.max(1),
            next_sweep: Mutex::new(Instant::now()),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, Entry>> {
        // Every update is a single insert/remove: a poisoned map is still consistent.
        self.entries.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Records currently held (expired ones included until swept).
    pub fn len(&self) -> usize {
        self.lock().len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    fn sweep_due(&self, now: Instant) -> bool {
        let mut next = self.next_sweep.lock().unwrap_or_else(|p| p.into_inner());
        if now < *next {
            return false;
        }
        *next = now + SWEEP_INTERVAL;
        true
    }

    fn live<'a>(
        entries: &'a mut HashMap<String, Entry>,
        key: &str,
        now: Instant,
    ) -> Option<&'a mut Entry> {
        if entries.get(key).is_some_and(|e| e.expires_at <= now) {
            entries.remove(key);
        }
        entries.get_mut(key)
    }
}

impl StoreBackend for MemoryStore {
    async fn claim(&self, key: &str, record: &Record, ttl: Duration) -> Result<Claim, StoreError> {
        let now = Instant::now();
        let mut entries = self.lock();
        if let Some(existing) = Self::live(&mut entries, key, now) {
            return Ok(Claim::Existing(existing.record.clone()));
        }
        if entries.len() >= self.capacity {
            if self.sweep_due(now) {
                entries.retain(|_, e| e.expires_at > now);
            }
            if entries.len() >= self.capacity {
                return Err(StoreError(format!(
                    "memory store full ({} records); use the Redis store",
                    self.capacity
                )));
            }
        }
        entries.insert(
            key.to_string(),
            Entry {
                record: record.clone(),
                expires_at: now + ttl,
            },
        );
        Ok(Claim::Claimed)
    }

    async fn replace_if_owner(
        &self,
        key: &str,
        owner: &str,
        record: &Record,
        ttl: Duration,
    ) -> Result<bool, StoreError> {
        let now = Instant::now();
        let mut entries = self.lock();
        match Self::live(&mut entries, key, now) {
            Some(entry) if entry.record.owner == owner => {
                entry.record = record.clone();
                entry.expires_at = now + ttl;
                Ok(true)
            }
            _ => Ok(false),
        }
    }

    async fn delete_if_owner(&self, key: &str, owner: &str) -> Result<bool, StoreError> {
        let now = Instant::now();
        let mut entries = self.lock();
        match Self::live(&mut entries, key, now) {
            Some(entry) if entry.record.owner == owner => {
                entries.remove(key);
                Ok(true)
            }
            _ => Ok(false),
        }
    }

    async fn ping(&self) -> Result<(), StoreError> {
        Ok(())
    }
}
