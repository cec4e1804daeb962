//! The journal in process memory, for the embedded default and tests: the same
//! operations as the Redis journal, with bounded size.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use super::{JournalBackend, JournalEntry, JournalState, Page, Query, now_ms};
use crate::idempotency::StoreError;

type Id = (String, String);

#[derive(Default)]
struct State {
    entries: HashMap<Id, JournalEntry>,
    leases: HashMap<Id, (String, Instant)>,
}

pub struct MemoryJournal {
    state: Mutex<State>,
    retention: Duration,
    capacity: usize,
}

impl MemoryJournal {
    pub fn new(retention: Duration, capacity: usize) -> Self {
        MemoryJournal {
            state: Mutex::new(State::default()),
            retention,
            capacity: capacity.max(1),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        // Every update is one insert or remove: a poisoned lock is still whole.
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn lease_holder(state: &State, id: &Id) -> Option<String> {
        state
            .leases
            .get(id)
            .filter(|(_, until)| *until > Instant::now())
            .map(|(owner, _)| owner.clone())
    }

    /// Room for one more: entries past retention go first, then settled ones,
    /// oldest first. Open entries (queued, unknown) are never dropped.
    fn make_room(&self, state: &mut State) -> Result<(), StoreError> {
        if state.entries.len() < self.capacity {
            return Ok(());
        }
        let cutoff =
            now_ms().saturating_sub(u64::try_from(self.retention.as_millis()).unwrap_or(u64::MAX));
        state.entries.retain(|_, e| e.updated_ms >= cutoff);
        if state.entries.len() < self.capacity {
            return Ok(());
        }
        let oldest_settled = state
            .entries
            .iter()
            .filter(|(_, e)| !e.state.is_open() && e.state != JournalState::NeedsAttention)
            .min_by_key(|(_, e)| e.updated_ms)
            .map(|(id, _)| id.clone());
        match oldest_settled {
            Some(id) => {
                state.entries.remove(&id);
                Ok(())
            }
            None => Err(StoreError("memory journal full of open entries".into())),
        }
    }
}

impl MemoryJournal {
    /// Whether one more entry fits (after dropping what `make_room` may drop):
    /// a journal full of open entries refuses every new charge.
    pub fn has_room(&self) -> bool {
        let state = self.lock();
        state.entries.len() < self.capacity
            || state
                .entries
                .values()
                .any(|e| !e.state.is_open() && e.state != JournalState::NeedsAttention)
    }
}

impl JournalBackend for MemoryJournal {
    async fn put(&self, entry: &JournalEntry, fence: Option<&str>) -> Result<bool, StoreError> {
        let id = (entry.tenant.clone(), entry.key.clone());
        let mut state = self.lock();
        if let Some(owner) = fence
            && Self::lease_holder(&state, &id).as_deref() != Some(owner)
        {
            return Ok(false);
        }
        if !state.entries.contains_key(&id) {
            self.make_room(&mut state)?;
        }
        state.entries.insert(id, entry.clone());
        Ok(true)
    }

    async fn create(&self, entry: &JournalEntry) -> Result<Option<JournalEntry>, StoreError> {
        let id = (entry.tenant.clone(), entry.key.clone());
        let mut state = self.lock();
        if let Some(existing) = state.entries.get(&id) {
            return Ok(Some(existing.clone()));
        }
        self.make_room(&mut state)?;
        state.entries.insert(id, entry.clone());
        Ok(None)
    }

    async fn get(&self, tenant: &str, key: &str) -> Result<Option<JournalEntry>, StoreError> {
        Ok(self
            .lock()
            .entries
            .get(&(tenant.to_string(), key.to_string()))
            .cloned())
    }

    async fn due(
        &self,
        tenant: &str,
        now_ms: u64,
        limit: usize,
    ) -> Result<Vec<String>, StoreError> {
        let state = self.lock();
        let mut due: Vec<(u64, &String)> = state
            .entries
            .iter()
            .filter(|((t, _), _)| t == tenant)
            .filter_map(|((_, k), e)| {
                e.next_attempt_ms
                    .filter(|at| *at <= now_ms)
                    .map(|at| (at, k))
            })
            .collect();
        due.sort();
        Ok(due
            .into_iter()
            .take(limit)
            .map(|(_, k)| k.clone())
            .collect())
    }

    async fn lease(
        &self,
        tenant: &str,
        key: &str,
        owner: &str,
        ttl: Duration,
    ) -> Result<bool, StoreError> {
        let id = (tenant.to_string(), key.to_string());
        let mut state = self.lock();
        match Self::lease_holder(&state, &id) {
            Some(holder) if holder != owner => Ok(false),
            _ => {
                state
                    .leases
                    .insert(id, (owner.to_string(), Instant::now() + ttl));
                Ok(true)
            }
        }
    }

    async fn release(&self, tenant: &str, key: &str, owner: &str) -> Result<(), StoreError> {
        let id = (tenant.to_string(), key.to_string());
        let mut state = self.lock();
        if state.leases.get(&id).is_some_and(|(o, _)| o == owner) {
            state.leases.remove(&id);
        }
        Ok(())
    }

    async fn list(&self, tenant: &str, query: &Query) -> Result<Page, StoreError> {
        let state = self.lock();
        // Newest first by (created, key); the cursor is the last one shown.
        let after: Option<(u64, String)> = query.cursor.as_deref().and_then(parse_cursor);
        let mut matching: Vec<&JournalEntry> = state
            .entries
            .values()
            .filter(|e| e.tenant == tenant)
            .filter(|e| query.state.is_none_or(|s| e.state == s))
            .filter(|e| query.since_ms.is_none_or(|t| e.created_ms >= t))
            .filter(|e| query.until_ms.is_none_or(|t| e.created_ms < t))
            .filter(|e| {
                after
                    .as_ref()
                    .is_none_or(|(c, k)| (e.created_ms, &e.key) < (*c, k))
            })
            .collect();
        matching.sort_by(|a, b| (b.created_ms, &b.key).cmp(&(a.created_ms, &a.key)));
        let limit = query.limit.max(1);
        let more = matching.len() > limit;
        let entries: Vec<JournalEntry> = matching.into_iter().take(limit).cloned().collect();
        let next_cursor = if more {
            entries.last().map(|e| cursor_of(e.created_ms, &e.key))
        } else {
            None
        };
        Ok(Page {
            entries,
            next_cursor,
        })
    }

    async fn trim(&self, _tenant: &str, before_ms: u64) -> Result<(), StoreError> {
        let mut state = self.lock();
        state
            .entries
            .retain(|_, e| e.updated_ms >= before_ms || e.state.is_open());
        Ok(())
    }

    async fn census(
        &self,
        tenant: &str,
    ) -> Result<Vec<(JournalState, u64, Option<u64>)>, StoreError> {
        let state = self.lock();
        Ok(JournalState::ALL
            .iter()
            .map(|s| {
                let of_state = state
                    .entries
                    .values()
                    .filter(|e| e.tenant == tenant && e.state == *s);
                let (count, oldest) = of_state.fold((0u64, None::<u64>), |(n, old), e| {
                    (
                        n + 1,
                        Some(old.map_or(e.created_ms, |o: u64| o.min(e.created_ms))),
                    )
                });
                (*s, count, oldest)
            })
            .collect())
    }
}

/// `<created_ms>:<key>`: the position after which the next page starts.
pub fn cursor_of(created_ms: u64, key: &str) -> String {
    format!("{created_ms}:{key}")
}

pub fn parse_cursor(cursor: &str) -> Option<(u64, String)> {
    let (ms, key) = cursor.split_once(':')?;
    Some((ms.parse().ok()?, key.to_string()))
}
