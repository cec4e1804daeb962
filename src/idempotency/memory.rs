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
    records: Mutex<Records>,
    capacity: usize,
}

struct Records {
    entries: HashMap<String, Entry>,
    /// When a full store may next be swept for expired records.
    next_sweep: Instant,
}

/// A full store is swept at most this often, so a flood of new keys against a
/// full store costs a lookup per claim, not a walk over every record.
const SWEEP_INTERVAL: Duration = Duration::from_secs(1);

impl MemoryStore {
    pub fn new(capacity: usize) -> Self {
        MemoryStore {
            records: Mutex::new(Records {
                entries: HashMap::new(),
                next_sweep: Instant::now(),
            }),
            capacity: capacity.max(1),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Records> {
        // Every update is a single insert/remove: a poisoned map is still consistent.
        self.records.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Records currently held (expired ones included until swept).
    pub fn len(&self) -> usize {
        self.lock().entries.len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
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
        let mut records = self.lock();
        let records = &mut *records;
        if let Some(existing) = Self::live(&mut records.entries, key, now) {
            return Ok(Claim::Existing(existing.record.clone()));
        }
        if records.entries.len() >= self.capacity {
            if now >= records.next_sweep {
                records.next_sweep = now + SWEEP_INTERVAL;
                records.entries.retain(|_, e| e.expires_at > now);
            }
            if records.entries.len() >= self.capacity {
                return Err(StoreError(format!(
                    "memory store full ({} records); use the Redis store",
                    self.capacity
                )));
            }
        }
        records.entries.insert(
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
        let mut records = self.lock();
        match Self::live(&mut records.entries, key, now) {
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
        let mut records = self.lock();
        match Self::live(&mut records.entries, key, now) {
            Some(entry) if entry.record.owner == owner => {
                records.entries.remove(key);
                Ok(true)
            }
            _ => Ok(false),
        }
    }

    /// A full store fails every new charge, so it reads as not ready and the
    /// instance leaves the load balancer's rotation until records expire.
    async fn ping(&self) -> Result<(), StoreError> {
        let now = Instant::now();
        let mut records = self.lock();
        if records.entries.len() >= self.capacity && now >= records.next_sweep {
            records.next_sweep = now + SWEEP_INTERVAL;
            records.entries.retain(|_, e| e.expires_at > now);
        }
        if records.entries.len() >= self.capacity {
            return Err(StoreError(format!(
                "memory store full ({} records); new charges are refused",
                self.capacity
            )));
        }
        Ok(())
    }
}
