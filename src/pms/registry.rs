//! The one place adapters are registered, and the wrapper every adapter runs in.
//!
//! [`adapters!`] (invoked once, in `pms/mod.rs`) takes one line per adapter kind,
//! `module::Settings => Variant`, and declares the module, the `[pms.NAME]`
//! settings variant chosen by `adapter = "variant"` (lowercase), and how the
//! section is checked and built. Everything else (the config loader's key lists
//! and secret keys, `check-config`, metrics) reads the adapter's own settings
//! type through serde and [`AdapterSettings`].

use std::collections::BTreeMap;
use std::sync::Arc;

use tokio::time::Instant;

use super::memory::MemoryPms;
use super::{GuestStay, PmsAdapter, PmsError, PmsSettings, PostingReceipt};
use crate::domain::Charge;

/// What each adapter's settings type provides to the registry.
pub trait AdapterSettings {
    /// Rules serde cannot express; the message names the key.
    fn check(&self) -> Result<(), String>;
    /// The adapter, ready to serve (credentials resolved, clients built).
    fn build(&self) -> Result<Built, String>;
    /// Advice for `check-config` that is not an error.
    fn notes(&self) -> Vec<String> {
        Vec::new()
    }
}

/// A built adapter; the memory adapter also hands out its concrete type for
/// tests and demos that inspect postings or script faults.
pub struct Built {
    adapter: Arc<dyn PmsAdapter>,
    memory: Option<Arc<MemoryPms>>,
}

impl Built {
    pub fn adapter(adapter: impl PmsAdapter) -> Self {
        Built {
            adapter: Arc::new(adapter),
            memory: None,
        }
    }

    pub(super) fn memory(pms: MemoryPms) -> Self {
        let pms = Arc::new(pms);
        Built {
            adapter: pms.clone(),
            memory: Some(pms),
        }
    }
}

/// Declares the adapter modules and [`PmsSettings`]: one line per adapter.
macro_rules! adapters {
    ($($module:ident :: $settings:ident => $variant:ident),+ $(,)?) => {
        $(pub mod $module;)+

        /// `[pms.NAME]` sections, chosen by their `adapter` key.
        #[derive(Debug, Clone, serde::Deserialize)]
        #[serde(tag = "adapter", rename_all = "lowercase")]
        pub enum PmsSettings {
            $($variant($module::$settings),)+
        }

        impl PmsSettings {
            fn section(&self) -> &dyn registry::AdapterSettings {
                match self {
                    $(PmsSettings::$variant(s) => s,)+
                }
            }
        }
    };
}

impl PmsSettings {
    /// Rules serde cannot express; the message names the key.
    pub fn check(&self) -> Result<(), String> {
        self.section().check()
    }

    /// Advice for `check-config` that is not an error.
    pub fn notes(&self) -> Vec<String> {
        self.section().notes()
    }
}

/// Every configured PMS by name, built once at start-up, each in [`Metered`].
#[derive(Clone, Default)]
pub struct PmsRegistry {
    adapters: BTreeMap<String, Arc<dyn PmsAdapter>>,
    memory: BTreeMap<String, Arc<MemoryPms>>,
}

impl PmsRegistry {
    pub fn build(settings: &BTreeMap<String, PmsSettings>) -> Result<Self, String> {
        let mut registry = PmsRegistry::default();
        for (name, s) in settings {
            let built = s
                .section()
                .build()
                .map_err(|e| format!("pms.{name}: {e}"))?;
            if let Some(memory) = built.memory {
                registry.memory.insert(name.clone(), memory);
            }
            registry
                .adapters
                .insert(name.clone(), Arc::new(Metered(built.adapter)));
        }
        Ok(registry)
    }

    pub fn get(&self, name: &str) -> Option<&Arc<dyn PmsAdapter>> {
        self.adapters.get(name)
    }

    pub fn iter(&self) -> impl Iterator<Item = (&String, &Arc<dyn PmsAdapter>)> {
        self.adapters.iter()
    }

    /// The memory adapter called `name`, for tests and demos that inspect postings
    /// or script faults.
    pub fn memory(&self, name: &str) -> Option<&Arc<MemoryPms>> {
        self.memory.get(name)
    }
}

/// Records every adapter call once, whoever makes it (a delivery, the worker,
/// a search, a health probe): `chargebridge_pms_duration_seconds{adapter,op}`
/// and `chargebridge_pms_errors_total{adapter,op,class}`.
struct Metered(Arc<dyn PmsAdapter>);

fn record<T>(
    adapter: &'static str,
    op: &'static str,
    started: std::time::Instant,
    outcome: &Result<T, PmsError>,
) {
    crate::metrics::pms_call(adapter, op, started.elapsed(), outcome.as_ref().err());
}

#[async_trait::async_trait]
impl PmsAdapter for Metered {
    fn kind(&self) -> &'static str {
        self.0.kind()
    }

    async fn post(
        &self,
        charge: &Arc<Charge>,
        deadline: Instant,
    ) -> Result<PostingReceipt, PmsError> {
        let started = std::time::Instant::now();
        let outcome = self.0.post(charge, deadline).await;
        record(self.kind(), "post", started, &outcome);
        outcome
    }

    async fn reconcile(
        &self,
        charge: &Charge,
        deadline: Instant,
    ) -> Result<Option<PostingReceipt>, PmsError> {
        let started = std::time::Instant::now();
        let outcome = self.0.reconcile(charge, deadline).await;
        record(self.kind(), "reconcile", started, &outcome);
        outcome
    }

    async fn search(&self, term: &str, deadline: Instant) -> Result<Vec<GuestStay>, PmsError> {
        let started = std::time::Instant::now();
        let outcome = self.0.search(term, deadline).await;
        record(self.kind(), "search", started, &outcome);
        outcome
    }

    async fn health(&self) -> Result<(), PmsError> {
        let started = std::time::Instant::now();
        let outcome = self.0.health().await;
        record(self.kind(), "health", started, &outcome);
        outcome
    }
}
