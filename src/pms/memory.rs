//! The in-process PMS: records postings, answers searches from a guest list, and
//! fails on request. It backs the embedded default, demos, replay fixtures and the
//! tests of the idempotency semantics.
//!
//! Faults come from three places, first match wins:
//! 1. a script of faults pushed by tests ([`MemoryPms::push_fault`]), one per post;
//! 2. the reservation id of the charge when `triggers` is on (default): `fail-reject`,
//!    `fail-unavailable`, `fail-unknown` (applies, then reports a timeout),
//!    `fail-slow` (takes `slow_delay`), so replay fixtures can exercise each class;
//! 3. the configured `fault`, applied to every post.
//!
//! With `triggers` on, a guest search for the term `fail-unavailable` fails as
//! unavailable, so the search endpoint's 500 can be replayed too.

use std::collections::{HashMap, VecDeque};
use std::sync::Arc;
use std::sync::Mutex;
use std::time::Duration;

use rust_decimal::Decimal;
use serde::Deserialize;
use tokio::time::Instant;

use super::{GuestStay, PmsAdapter, PmsError, PostingReceipt};
use crate::domain::Charge;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum FaultKind {
    None,
    Reject,
    Unavailable,
    Unknown,
    Slow,
}

/// One injected failure.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Fault {
    /// Refuse for good with this reason.
    Reject(String),
    /// Refuse before applying anything.
    Unavailable,
    /// Apply the charge, then report a lost answer.
    ApplyThenUnknown,
    /// Take this long; if the deadline passes first, apply late and report unknown.
    Slow(Duration),
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MemoryPmsSettings {
    #[serde(default = "default_fault")]
    pub fault: FaultKind,
    #[serde(default = "default_reject_message")]
    pub reject_message: String,
    #[serde(default = "default_slow_delay", with = "humantime_serde")]
    pub slow_delay: Duration,
    /// Reservation ids starting with `fail-` choose a fault (see module docs).
    #[serde(default = "default_true")]
    pub triggers: bool,
    /// Guests for `/lightspeed/search`; a small demo list when absent.
    #[serde(default)]
    pub guests: Option<Vec<GuestSettings>>,
    /// Applied postings kept for inspection (oldest dropped first), so a
    /// long-running demo stays bounded in memory.
    #[serde(default = "default_retain_postings")]
    pub retain_postings: usize,
    /// References kept for reconciliation; older ones are forgotten, so this
    /// stand-in PMS can only reconcile the latest this many charges.
    #[serde(default = "default_retain_references")]
    pub retain_references: usize,
    /// How long each guest search takes (tests of search coalescing).
    #[serde(default, with = "humantime_serde")]
    pub search_delay: Duration,
    /// While a file exists at this path the PMS is down (every post and
    /// reconciliation unavailable): `touch` it to take the demo PMS down, remove
    /// it to bring it back, without a restart.
    #[serde(default)]
    pub down_file: Option<String>,
}

impl Default for MemoryPmsSettings {
    fn default() -> Self {
        MemoryPmsSettings {
            fault: FaultKind::None,
            reject_message: default_reject_message(),
            slow_delay: default_slow_delay(),
            triggers: true,
            guests: None,
            retain_postings: default_retain_postings(),
            retain_references: default_retain_references(),
            search_delay: Duration::ZERO,
            down_file: None,
        }
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GuestSettings {
    pub reservation_id: String,
    pub room_id: String,
    #[serde(default)]
    pub room_description: String,
    pub client_name: String,
    #[serde(default)]
    pub credit_limit: Option<Decimal>,
    #[serde(default)]
    pub blocked: bool,
    #[serde(default = "default_true")]
    pub checked_in: bool,
    /// A house / posting-master account, offered only to `*` searches.
    #[serde(default)]
    pub house: bool,
}

fn default_fault() -> FaultKind {
    FaultKind::None
}
fn default_reject_message() -> String {
    "Folio closed for this room".to_string()
}
fn default_slow_delay() -> Duration {
    Duration::from_secs(2)
}
fn default_retain_postings() -> usize {
    1_000
}
fn default_retain_references() -> usize {
    10_000
}
fn default_true() -> bool {
    true
}

impl MemoryPmsSettings {
    pub fn check(&self) -> Result<(), String> {
        if self.reject_message.trim().is_empty() {
            return Err("reject_message is empty".into());
        }
        Ok(())
    }
}

/// A charge the memory PMS applied.
#[derive(Debug, Clone)]
pub struct AppliedPosting {
    pub pms_reference: String,
    /// Shared with the delivery that posted it (no deep copy per posting).
    pub charge: Arc<Charge>,
}

#[derive(Default)]
struct State {
    /// The latest applications, in order; a double posting shows up as two.
    applied: VecDeque<AppliedPosting>,
    /// Reference → PMS reference of its first application, for reconcile.
    by_reference: HashMap<String, String>,
    reference_order: VecDeque<String>,
    total_applied: u64,
    script: VecDeque<Fault>,
    posts_attempted: u64,
    searches: u64,
}

pub struct MemoryPms {
    settings: MemoryPmsSettings,
    guests: Vec<GuestSettings>,
    state: Mutex<State>,
}

impl MemoryPms {
    pub fn new(settings: MemoryPmsSettings) -> Self {
        let guests = settings.guests.clone().unwrap_or_else(demo_guests);
        MemoryPms {
            settings,
            guests,
            state: Mutex::new(State::default()),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        // A panic while holding the lock cannot leave State inconsistent (every
        // update is a single push/insert), so a poisoned lock is still usable.
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Queues a fault for the next post (tests).
    pub fn push_fault(&self, fault: Fault) {
        self.lock().script.push_back(fault);
    }

    /// The charges applied so far, in order (the latest `retain_postings`).
    pub fn applied(&self) -> Vec<AppliedPosting> {
        self.lock().applied.iter().cloned().collect()
    }

    /// How many times `post` was called (applied or not).
    pub fn posts_attempted(&self) -> u64 {
        self.lock().posts_attempted
    }

    /// How many guest searches reached this PMS.
    pub fn searches(&self) -> u64 {
        self.lock().searches
    }

    fn apply(&self, charge: &Arc<Charge>) -> PostingReceipt {
        let mut state = self.lock();
        state.total_applied += 1;
        let pms_reference = format!("MEM-{:06}", state.total_applied);
        if state.applied.len() >= self.settings.retain_postings.max(1) {
            state.applied.pop_front();
        }
        state.applied.push_back(AppliedPosting {
            pms_reference: pms_reference.clone(),
            charge: Arc::clone(charge),
        });
        let reference = charge.reference.to_string();
        if !state.by_reference.contains_key(&reference) {
            if state.reference_order.len() >= self.settings.retain_references.max(1)
                && let Some(oldest) = state.reference_order.pop_front()
            {
                state.by_reference.remove(&oldest);
            }
            state.reference_order.push_back(reference.clone());
            state.by_reference.insert(reference, pms_reference.clone());
        }
        PostingReceipt { pms_reference }
    }

    /// The operator's switch: the down file exists.
    fn is_down(&self) -> bool {
        self.settings
            .down_file
            .as_deref()
            .is_some_and(|path| std::path::Path::new(path).exists())
    }

    fn next_fault(&self, charge: &Charge) -> Option<Fault> {
        let mut state = self.lock();
        state.posts_attempted += 1;
        if let Some(fault) = state.script.pop_front() {
            return Some(fault);
        }
        drop(state);
        if self.is_down() {
            return Some(Fault::Unavailable);
        }
        let from_trigger = if self.settings.triggers {
            charge
                .room()
                .and_then(|r| r.reservation_id.strip_prefix("fail-"))
                .and_then(|kind| match kind {
                    "reject" => Some(FaultKind::Reject),
                    "unavailable" => Some(FaultKind::Unavailable),
                    "unknown" => Some(FaultKind::Unknown),
                    "slow" => Some(FaultKind::Slow),
                    _ => None,
                })
        } else {
            None
        };
        match from_trigger.unwrap_or(self.settings.fault) {
            FaultKind::None => None,
            FaultKind::Reject => Some(Fault::Reject(self.settings.reject_message.clone())),
            FaultKind::Unavailable => Some(Fault::Unavailable),
            FaultKind::Unknown => Some(Fault::ApplyThenUnknown),
            FaultKind::Slow => Some(Fault::Slow(self.settings.slow_delay)),
        }
    }
}

#[async_trait::async_trait]
impl PmsAdapter for MemoryPms {
    fn kind(&self) -> &'static str {
        "memory"
    }

    async fn post(
        &self,
        charge: &Arc<Charge>,
        deadline: Instant,
    ) -> Result<PostingReceipt, PmsError> {
        match self.next_fault(charge) {
            None => Ok(self.apply(charge)),
            Some(Fault::Reject(reason)) => Err(PmsError::rejected(reason)),
            Some(Fault::Unavailable) => Err(PmsError::unavailable(
                "memory PMS told to be unavailable",
            )),
            Some(Fault::ApplyThenUnknown) => {
                self.apply(charge);
                Err(PmsError::unknown(
                    "memory PMS applied the charge and dropped the answer",
                ))
            }
            Some(Fault::Slow(delay)) => {
                let done = Instant::now() + delay;
                if done <= deadline {
                    tokio::time::sleep_until(done).await;
                    Ok(self.apply(charge))
                } else {
                    // Like a real PMS, it finishes the work although we stopped waiting.
                    tokio::time::sleep_until(deadline).await;
                    self.apply(charge);
                    Err(PmsError::unknown(
                        "memory PMS answered after the deadline",
                    ))
                }
            }
        }
    }

    async fn reconcile(
        &self,
        charge: &Charge,
        _deadline: Instant,
    ) -> Result<Option<PostingReceipt>, PmsError> {
        if self.is_down() {
            return Err(PmsError::unavailable(
                "memory PMS is down (down_file exists)",
            ));
        }
        let state = self.lock();
        Ok(state
            .by_reference
            .get(charge.reference.as_str())
            .map(|pms_reference| PostingReceipt {
                pms_reference: pms_reference.clone(),
            }))
    }

    async fn search(&self, term: &str, _deadline: Instant) -> Result<Vec<GuestStay>, PmsError> {
        self.lock().searches += 1;
        if !self.settings.search_delay.is_zero() {
            tokio::time::sleep(self.settings.search_delay).await;
        }
        let house = super::house_account_term(term).map(str::to_lowercase);
        let term = term.trim().to_lowercase();
        if self.settings.triggers && term == "fail-unavailable" {
            return Err(PmsError::unavailable(
                "memory PMS told to be unavailable",
            ));
        }
        Ok(self
            .guests
            .iter()
            .filter(|g| g.checked_in && g.house == house.is_some())
            .filter(|g| match &house {
                Some(name) => super::house_account_matches(name, &g.client_name),
                None => {
                    super::name_matches(&term, &g.client_name)
                        || g.room_id.to_lowercase() == term
                        || g.room_id.to_lowercase().starts_with(&term)
                }
            })
            .map(|g| GuestStay {
                reservation_id: g.reservation_id.clone(),
                room_id: g.room_id.clone(),
                room_description: g.room_description.clone(),
                client_name: g.client_name.clone(),
                credit_limit: g.credit_limit,
                blocked: g.blocked,
            })
            .collect())
    }

    async fn health(&self) -> Result<(), PmsError> {
        if self.is_down() {
            return Err(PmsError::unavailable(
                "memory PMS is down (down_file exists)",
            ));
        }
        Ok(())
    }
}

fn demo_guests() -> Vec<GuestSettings> {
    let guest =
        |res: &str, room: &str, desc: &str, name: &str, limit: Option<i64>, blocked, checked_in| {
            GuestSettings {
                reservation_id: res.into(),
                room_id: room.into(),
                room_description: desc.into(),
                client_name: name.into(),
                credit_limit: limit.map(Decimal::from),
                blocked,
                checked_in,
                house: false,
            }
        };
    vec![
        guest(
            "001",
            "101",
            "Double, garden view",
            "Jane Doe",
            Some(500),
            false,
            true,
        ),
        guest("002", "102", "Twin", "John Smith", None, false, true),
        guest("003", "201", "Suite", "Zoë Müller", Some(2000), true, true),
        guest("004", "202", "Double", "Arthur Dent", None, false, false),
        GuestSettings {
            house: true,
            ..guest("H-BAR", "BAR", "House account", "Bar Account", None, false, true)
        },
    ]
}

impl super::AdapterSettings for MemoryPmsSettings {
    fn check(&self) -> Result<(), String> {
        MemoryPmsSettings::check(self)
    }

    fn build(&self) -> Result<super::Built, String> {
        Ok(super::Built::memory(MemoryPms::new(self.clone())))
    }
}

#[cfg(test)]
mod down_file_tests {
    use super::*;

    #[tokio::test]
    async fn the_down_file_takes_the_pms_down_and_back() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("down");
        let pms = MemoryPms::new(MemoryPmsSettings {
            down_file: Some(path.display().to_string()),
            ..Default::default()
        });
        assert!(pms.health().await.is_ok());
        std::fs::write(&path, "").unwrap();
        assert!(pms.health().await.is_err_and(|e| e.is_unavailable()));
        std::fs::remove_file(&path).unwrap();
        assert!(pms.health().await.is_ok());
    }
}

#[cfg(test)]
mod house_account_tests {
    use super::*;

    #[tokio::test]
    async fn a_star_term_finds_house_accounts_and_only_those() {
        let pms = MemoryPms::new(MemoryPmsSettings::default());
        let deadline = Instant::now() + Duration::from_secs(1);
        let names = |found: Vec<GuestStay>| -> Vec<String> {
            found.into_iter().map(|g| g.reservation_id).collect()
        };
        assert_eq!(names(pms.search("*bar", deadline).await.unwrap()), ["H-BAR"]);
        assert_eq!(names(pms.search("*", deadline).await.unwrap()), ["H-BAR"]);
        assert!(names(pms.search("*spa", deadline).await.unwrap()).is_empty());
        assert!(names(pms.search("Bar", deadline).await.unwrap()).is_empty());
        assert_eq!(names(pms.search("Doe", deadline).await.unwrap()), ["001"]);
    }
}
