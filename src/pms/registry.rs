//! The one place adapters are registered: a settings variant per adapter kind.

use std::collections::BTreeMap;
use std::sync::Arc;

use serde::Deserialize;

use super::PmsAdapter;
use super::apaleo::{ApaleoPms, ApaleoSettings};
use super::http::{HttpPms, HttpPmsSettings};
use super::memory::{MemoryPms, MemoryPmsSettings};
use super::mews::{MewsPms, MewsSettings};
use super::opera::{OperaPms, OperaSettings};

/// `[pms.NAME]` sections, chosen by their `adapter` key.
#[derive(Debug, Clone, Deserialize)]
#[serde(tag = "adapter", rename_all = "lowercase")]
pub enum PmsSettings {
    Memory(MemoryPmsSettings),
    Http(HttpPmsSettings),
    Mews(MewsSettings),
    Opera(OperaSettings),
    Apaleo(ApaleoSettings),
}

impl PmsSettings {
    /// Rules serde cannot express; the message names the key.
    pub fn check(&self) -> Result<(), String> {
        match self {
            PmsSettings::Memory(s) => s.check(),
            PmsSettings::Http(s) => s.check(),
            PmsSettings::Mews(s) => s.check(),
            PmsSettings::Opera(s) => s.check(),
            PmsSettings::Apaleo(s) => s.check(),
        }
    }

    fn build(&self) -> Result<Built, String> {
        Ok(match self {
            PmsSettings::Memory(s) => {
                let pms = Arc::new(MemoryPms::new(s.clone()));
                Built {
                    adapter: pms.clone(),
                    memory: Some(pms),
                }
            }
            PmsSettings::Http(s) => Built {
                adapter: Arc::new(HttpPms::new(s)?),
                memory: None,
            },
            PmsSettings::Mews(s) => Built {
                adapter: Arc::new(MewsPms::new(s.clone())?),
                memory: None,
            },
            PmsSettings::Opera(s) => Built {
                adapter: Arc::new(OperaPms::new(s.clone())?),
                memory: None,
            },
            PmsSettings::Apaleo(s) => Built {
                adapter: Arc::new(ApaleoPms::new(s.clone())?),
                memory: None,
            },
        })
    }
}

struct Built {
    adapter: Arc<dyn PmsAdapter>,
    memory: Option<Arc<MemoryPms>>,
}

/// Every configured PMS by name, built once at start-up.
#[derive(Clone, Default)]
pub struct PmsRegistry {
    adapters: BTreeMap<String, Arc<dyn PmsAdapter>>,
    memory: BTreeMap<String, Arc<MemoryPms>>,
}

impl PmsRegistry {
    pub fn build(settings: &BTreeMap<String, PmsSettings>) -> Result<Self, String> {
        let mut registry = PmsRegistry::default();
        for (name, s) in settings {
            let built = s.build().map_err(|e| format!("pms.{name}: {e}"))?;
            if let Some(memory) = built.memory {
                registry.memory.insert(name.clone(), memory);
            }
            registry.adapters.insert(name.clone(), built.adapter);
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
