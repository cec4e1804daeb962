//! Guest searches, one PMS call per tenant and term at a time.
//!
//! Unless "manual search" is switched on at the POS, Lightspeed searches on every
//! keystroke, from every device, while PMS rate limits are small (Mews: 200
//! requests per 30 s per token). So identical searches in flight share one PMS
//! call, and a successful answer is reused for `search_cache` (default 10 s).
//! Failures are never reused: the next search asks the PMS again.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures_util::FutureExt;
use futures_util::future::{BoxFuture, Shared};
use tokio::time::Instant;

use crate::domain::Tenant;
use crate::metrics as m;
use crate::pms::{GuestStay, PmsError};

/// Most (tenant, term) answers kept; past it, expired ones go, then all.
const MAX_ENTRIES: usize = 10_000;

type SearchResult = Result<Arc<Vec<GuestStay>>, PmsError>;

enum Slot {
    /// The one PMS call for this tenant and term; every asker awaits it.
    InFlight {
        generation: u64,
        call: Shared<BoxFuture<'static, SearchResult>>,
    },
    Ready {
        until: Instant,
        guests: Arc<Vec<GuestStay>>,
    },
}

struct Entries {
    slots: HashMap<(String, String), Slot>,
    next_generation: u64,
}

pub struct GuestSearch {
    ttl: Duration,
    entries: Arc<Mutex<Entries>>,
}

impl GuestSearch {
    pub fn new(ttl: Duration) -> Self {
        GuestSearch {
            ttl,
            entries: Arc::new(Mutex::new(Entries {
                slots: HashMap::new(),
                next_generation: 0,
            })),
        }
    }

    /// Checked-in guests of `tenant` matching `term`, from the cache, from a
    /// call already in flight, or from a new PMS call that outlives this asker
    /// (a cancelled request never wastes a call another asker waits for).
    pub async fn search(
        &self,
        tenant: &Arc<Tenant>,
        term: &str,
        deadline: Instant,
    ) -> SearchResult {
        let call = self.call_for(tenant, term, deadline);
        match tokio::time::timeout_at(deadline, call).await {
            Ok(result) => result,
            Err(_) => Err(PmsError::out_of_time("search overran the deadline")),
        }
    }

    fn call_for(
        &self,
        tenant: &Arc<Tenant>,
        term: &str,
        deadline: Instant,
    ) -> BoxFuture<'static, SearchResult> {
        let key = (tenant.id.clone(), term.to_string());
        let mut entries = self.entries.lock().unwrap_or_else(|p| p.into_inner());
        match entries.slots.get(&key) {
            Some(Slot::Ready { until, guests }) if *until > Instant::now() => {
                m::search_cache("hit");
                let guests = guests.clone();
                return async move { Ok(guests) }.boxed();
            }
            Some(Slot::InFlight { call, .. }) => {
                m::search_cache("coalesced");
                return call.clone().boxed();
            }
            _ => {}
        }
        m::search_cache("miss");
        entries.next_generation += 1;
        let generation = entries.next_generation;
        if entries.slots.len() >= MAX_ENTRIES {
            let now = Instant::now();
            entries.slots.retain(|_, slot| {
                matches!(slot, Slot::Ready { until, .. } if *until > now)
                    || matches!(slot, Slot::InFlight { .. })
            });
            if entries.slots.len() >= MAX_ENTRIES {
                entries
                    .slots
                    .retain(|_, slot| matches!(slot, Slot::InFlight { .. }));
            }
        }
        let pms = tenant.pms.clone();
        let shared = self.entries.clone();
        let ttl = self.ttl;
        let task_key = key.clone();
        let term = term.to_string();
        let task = tokio::spawn(async move {
            let found = pms.search(&term, deadline).await.map(Arc::new);
            let mut entries = shared.lock().unwrap_or_else(|p| p.into_inner());
            let ours = matches!(entries.slots.get(&task_key),
                Some(Slot::InFlight { generation: g, .. }) if *g == generation);
            if ours {
                match &found {
                    Ok(guests) if !ttl.is_zero() => {
                        entries.slots.insert(
                            task_key,
                            Slot::Ready {
                                until: Instant::now() + ttl,
                                guests: guests.clone(),
                            },
                        );
                    }
                    _ => {
                        entries.slots.remove(&task_key);
                    }
                }
            }
            found
        });
        let call = async move {
            task.await
                .unwrap_or_else(|e| Err(PmsError::unavailable(format!("search task failed: {e}"))))
        }
        .boxed()
        .shared();
        entries.slots.insert(
            key,
            Slot::InFlight {
                generation,
                call: call.clone(),
            },
        );
        call.boxed()
    }
}
