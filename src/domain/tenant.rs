//! Tenants (one per hotel / Lightspeed business location) and their authentication.

use std::collections::HashMap;
use std::sync::Arc;

use secrecy::{ExposeSecret, SecretString};
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

use crate::config::{ConfigError, MappingSettings, TenantSettings};
use crate::error::ApiError;
use crate::pms::{PmsAdapter, PmsRegistry};

pub struct Tenant {
    /// Lightspeed's `businessExternalReference`.
    pub reference: String,
    /// SHA-256 of the API key: compared in constant time, never the key itself.
    api_key_digest: [u8; 32],
    pub currency: String,
    pub room_charge_method_codes: Vec<String>,
    pub gratuity_included: bool,
    /// Name of the `[pms.NAME]` section.
    pub pms_name: String,
    pub pms: Arc<dyn PmsAdapter>,
    pub mapping: MappingSettings,
}

impl std::fmt::Debug for Tenant {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Tenant")
            .field("reference", &self.reference)
            .field("pms", &self.pms_name)
            .finish_non_exhaustive()
    }
}

impl Tenant {
    /// A tenant with default rules and no credentials, for offline validation.
    pub fn offline(reference: &str) -> Tenant {
        Tenant {
            reference: reference.to_string(),
            api_key_digest: [0; 32],
            currency: "EUR".to_string(),
            room_charge_method_codes: vec!["IKPMS".to_string()],
            gratuity_included: true,
            pms_name: String::new(),
            pms: Arc::new(crate::pms::memory::MemoryPms::new(Default::default())),
            mapping: MappingSettings::default(),
        }
    }

    pub fn is_room_charge_code(&self, code: &str) -> bool {
        self.room_charge_method_codes.iter().any(|c| c == code)
    }
}

fn digest(secret: &str) -> [u8; 32] {
    Sha256::digest(secret.as_bytes()).into()
}

/// All tenants by `businessExternalReference`.
#[derive(Default)]
pub struct Tenants {
    by_reference: HashMap<String, Arc<Tenant>>,
}

impl Tenants {
    pub fn build(settings: &[TenantSettings], pms: &PmsRegistry) -> Result<Self, ConfigError> {
        let mut by_reference = HashMap::new();
        for t in settings {
            let adapter = pms.get(&t.pms).ok_or_else(|| {
                ConfigError::Invalid(format!(
                    "tenant `{}` names unknown pms `{}`",
                    t.business_external_reference, t.pms
                ))
            })?;
            let key: SecretString = t.resolve_api_key()?;
            let tenant = Tenant {
                reference: t.business_external_reference.clone(),
                api_key_digest: digest(key.expose_secret()),
                currency: t.currency.clone(),
                room_charge_method_codes: t.room_charge_method_codes.clone(),
                gratuity_included: t.gratuity_included,
                pms_name: t.pms.clone(),
                pms: adapter.clone(),
                mapping: t.mapping.clone(),
            };
            by_reference.insert(tenant.reference.clone(), Arc::new(tenant));
        }
        Ok(Tenants { by_reference })
    }

    /// The tenant by reference, without authentication (offline tools only).
    pub fn find(&self, reference: &str) -> Option<&Tenant> {
        self.by_reference.get(reference).map(|t| t.as_ref())
    }

    pub fn len(&self) -> usize {
        self.by_reference.len()
    }

    pub fn is_empty(&self) -> bool {
        self.by_reference.is_empty()
    }

    /// The tenant if `api_key` is its key. The comparison takes the same time
    /// whatever the key, and an unknown tenant costs the same as a wrong key.
    pub fn authenticate(&self, reference: &str, api_key: &str) -> Result<Arc<Tenant>, ApiError> {
        let offered = digest(api_key);
        match self.by_reference.get(reference) {
            Some(tenant) if bool::from(tenant.api_key_digest.ct_eq(&offered)) => Ok(tenant.clone()),
            Some(_) => Err(ApiError::Unauthorized),
            None => {
                let _ = [0u8; 32].ct_eq(&offered);
                Err(ApiError::Unauthorized)
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Settings;

    #[test]
    fn only_the_right_key_opens_the_right_tenant() {
        let s = Settings::demo();
        let pms = PmsRegistry::build(&s.pms).unwrap();
        let tenants = Tenants::build(&s.tenants, &pms).unwrap();
        assert!(
            tenants
                .authenticate("quickbooks-123", "quickbooks-key-345")
                .is_ok()
        );
        assert!(
            tenants
                .authenticate("quickbooks-123", "quickbooks-key-346")
                .is_err()
        );
        assert!(tenants.authenticate("quickbooks-123", "").is_err());
        assert!(tenants.authenticate("other", "quickbooks-key-345").is_err());
    }

    /// Keys are never compared as strings: both sides become 32-byte SHA-256
    /// digests first, so a wrong key of the right length, a shorter or longer
    /// one, and an unknown tenant all meet the same fixed-size constant-time
    /// comparison and end in the same answer.
    #[test]
    fn wrong_keys_of_any_length_are_refused_the_same_way() {
        let s = Settings::demo();
        let pms = PmsRegistry::build(&s.pms).unwrap();
        let tenants = Tenants::build(&s.tenants, &pms).unwrap();
        let right = "quickbooks-key-345";
        let same_length = "quickbooks-key-346";
        assert_eq!(same_length.len(), right.len());
        let wrong: [(&str, &str); 6] = [
            ("quickbooks-123", same_length),
            ("quickbooks-123", "quickbooks-key-34"),
            ("quickbooks-123", "quickbooks-key-3456"),
            ("quickbooks-123", ""),
            ("quickbooks-123", &"q".repeat(10_000)),
            ("unknown-tenant", right),
        ];
        for (reference, key) in wrong {
            // Whatever the offered length, what is compared has the same size.
            assert_eq!(digest(key).len(), digest(right).len());
            let err = tenants.authenticate(reference, key).unwrap_err();
            assert!(matches!(err, ApiError::Unauthorized), "{err:?}");
            assert_eq!(
                err.body(),
                ApiError::Unauthorized.body(),
                "one answer for every wrong key"
            );
        }
        assert!(tenants.authenticate("quickbooks-123", right).is_ok());
    }
}
