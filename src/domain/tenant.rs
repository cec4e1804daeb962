//! Tenants (one per hotel / Lightspeed business location) and their authentication.

use std::collections::HashMap;
use std::sync::Arc;

use secrecy::{ExposeSecret, SecretString};
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

use crate::config::{ConfigError, MappingSettings, TenantSettings};
use crate::error::ApiError;
use crate::pms::{PmsAdapter, PmsRegistry};

#[derive(Clone)]
pub struct Tenant {
    /// The configured tenant id (`[a-z0-9-]`): record keys, references, logs.
    pub id: String,
    /// When set, only requests naming this `businessExternalReference` are let in.
    pub pinned_reference: Option<String>,
    pub currency: String,
    pub room_charge_method_codes: Vec<String>,
    pub gratuity_included: bool,
    /// MIRRORING: receipts without a room charge are acknowledged, not refused.
    pub mirroring: bool,
    /// Whether non-room receipts are posted to house accounts.
    pub revenue_posting: crate::config::RevenuePosting,
    /// `daily`: how long after a business date ends its summary is posted.
    pub revenue_summary_delay: std::time::Duration,
    /// What the POS hears, and who posts, when the PMS cannot take a charge now.
    pub when_pms_unavailable: crate::config::WhenPmsUnavailable,
    /// Business dates (reports) are in this zone and start at `business_day_starts`.
    pub time_zone: chrono_tz::Tz,
    pub business_day_starts: chrono::NaiveTime,
    /// Name of the `[pms.NAME]` section.
    pub pms_name: String,
    pub pms: Arc<dyn PmsAdapter>,
    pub mapping: MappingSettings,
}

impl std::fmt::Debug for Tenant {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Tenant")
            .field("id", &self.id)
            .field("pms", &self.pms_name)
            .finish_non_exhaustive()
    }
}

impl Tenant {
    /// A tenant with default rules and no credentials, for offline validation.
    pub fn offline(id: &str) -> Tenant {
        Tenant {
            id: id.to_string(),
            pinned_reference: None,
            currency: "EUR".to_string(),
            room_charge_method_codes: vec!["IKPMS".to_string()],
            gratuity_included: false,
            mirroring: false,
            revenue_posting: Default::default(),
            revenue_summary_delay: std::time::Duration::from_secs(30 * 60),
            when_pms_unavailable: Default::default(),
            time_zone: chrono_tz::UTC,
            business_day_starts: chrono::NaiveTime::MIN,
            pms_name: String::new(),
            pms: Arc::new(crate::pms::memory::MemoryPms::new(Default::default())),
            mapping: MappingSettings::default(),
        }
    }

    /// The business date `at` falls on: local time in `time_zone`, a date
    /// starting at `business_day_starts` (a receipt closed at 01:30 with a
    /// 04:00 cut-off belongs to the day before).
    pub fn business_date(&self, at: chrono::DateTime<chrono::Utc>) -> chrono::NaiveDate {
        let local = at.with_timezone(&self.time_zone).naive_local();
        let date = local.date();
        if local.time() < self.business_day_starts {
            date.pred_opt().unwrap_or(date)
        } else {
            date
        }
    }

    /// When a business date starts (UTC); `None` only for dates out of range.
    /// A cut-off that does not exist that night (a DST gap) starts at the
    /// first local time after it.
    pub fn business_day_start(
        &self,
        date: chrono::NaiveDate,
    ) -> Option<chrono::DateTime<chrono::Utc>> {
        use chrono::TimeZone;
        let local = date.and_time(self.business_day_starts);
        (0..=180)
            .find_map(|minutes| {
                self.time_zone
                    .from_local_datetime(&(local + chrono::Duration::minutes(minutes)))
                    .earliest()
            })
            .map(|at| at.with_timezone(&chrono::Utc))
    }

    /// Lightspeed's code is `IKPMS`; set-ups differ in case and stray spaces.
    pub fn is_room_charge_code(&self, code: &str) -> bool {
        let code = code.trim();
        self.room_charge_method_codes
            .iter()
            .any(|c| c.trim().eq_ignore_ascii_case(code))
    }
}

fn digest(secret: &str) -> [u8; 32] {
    Sha256::digest(secret.as_bytes()).into()
}

/// All tenants, found by the SHA-256 digest of their API key.
///
/// The offered key is hashed first and the digest is what is looked up, so
/// lookup time depends on a digest, never on how much of a key was right; the
/// match is then confirmed with a constant-time comparison.
#[derive(Default)]
pub struct Tenants {
    by_key_digest: HashMap<[u8; 32], Arc<Tenant>>,
    by_id: HashMap<String, Arc<Tenant>>,
}

impl Tenants {
    pub fn build(settings: &[TenantSettings], pms: &PmsRegistry) -> Result<Self, ConfigError> {
        let mut tenants = Tenants::default();
        for t in settings {
            let id = t.id_or_placeholder();
            let adapter = pms.get(&t.pms).ok_or_else(|| {
                ConfigError::Invalid(format!("tenant `{id}` names unknown pms `{}`", t.pms))
            })?;
            let key: SecretString = t.resolve_api_key()?;
            let tenant = Arc::new(Tenant {
                id: id.to_string(),
                pinned_reference: t.business_external_reference.clone(),
                currency: t.currency.clone(),
                room_charge_method_codes: t.room_charge_method_codes.clone(),
                gratuity_included: t.gratuity_included,
                mirroring: t.mirroring,
                revenue_posting: t.revenue_posting,
                revenue_summary_delay: t.revenue_summary_delay,
                when_pms_unavailable: t.when_pms_unavailable,
                // Both checked by `Settings::check`.
                time_zone: t.time_zone.parse().unwrap_or(chrono_tz::UTC),
                business_day_starts: chrono::NaiveTime::parse_from_str(
                    &t.business_day_starts,
                    "%H:%M",
                )
                .unwrap_or(chrono::NaiveTime::MIN),
                pms_name: t.pms.clone(),
                pms: adapter.clone(),
                mapping: t.mapping.clone(),
            });
            if let Some(other) = tenants
                .by_key_digest
                .insert(digest(key.expose_secret()), tenant.clone())
            {
                return Err(ConfigError::Invalid(format!(
                    "tenants `{}` and `{id}` have the same api_key: every Lightspeed business \
                     location is registered with a key of its own",
                    other.id
                )));
            }
            tenants.by_id.insert(tenant.id.clone(), tenant);
        }
        Ok(tenants)
    }

    /// The tenant by id, without authentication (offline tools, operators).
    pub fn by_id(&self, id: &str) -> Option<&Arc<Tenant>> {
        self.by_id.get(id)
    }

    /// The tenant whose key this is, without a reference check (offline tools).
    pub fn find_by_key(&self, api_key: &str) -> Option<&Arc<Tenant>> {
        self.by_key_digest.get(&digest(api_key))
    }

    /// Every tenant, in no particular order.
    pub fn iter(&self) -> impl Iterator<Item = &Arc<Tenant>> {
        self.by_id.values()
    }

    pub fn len(&self) -> usize {
        self.by_id.len()
    }

    pub fn is_empty(&self) -> bool {
        self.by_id.is_empty()
    }

    /// The tenant whose key `api_key` is. A tenant that pins its
    /// `businessExternalReference` also needs `reference` to match. Every
    /// refusal is the same `Unauthorized`.
    pub fn authenticate(
        &self,
        api_key: &str,
        reference: Option<&str>,
    ) -> Result<Arc<Tenant>, ApiError> {
        let offered = digest(api_key);
        let found = self.by_key_digest.get_key_value(&offered);
        let (stored, tenant) = match found {
            Some((stored, tenant)) => (stored, Some(tenant)),
            None => (&[0u8; 32], None),
        };
        let key_ok = bool::from(stored.ct_eq(&offered)) && tenant.is_some();
        match tenant {
            Some(tenant) if key_ok => match &tenant.pinned_reference {
                Some(pinned) if reference != Some(pinned.as_str()) => Err(ApiError::Unauthorized),
                _ => Ok(tenant.clone()),
            },
            _ => Err(ApiError::Unauthorized),
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
        let demo = tenants
            .authenticate("quickbooks-key-345", Some("quickbooks-123"))
            .unwrap();
        assert_eq!(demo.id, "demo");
        assert!(
            tenants
                .authenticate("quickbooks-key-346", Some("quickbooks-123"))
                .is_err()
        );
        assert!(tenants.authenticate("", Some("quickbooks-123")).is_err());
        // The demo tenant pins its reference: another (or none) is refused.
        assert!(
            tenants
                .authenticate("quickbooks-key-345", Some("other"))
                .is_err()
        );
        assert!(tenants.authenticate("quickbooks-key-345", None).is_err());
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
            ("unknown-reference", right),
        ];
        for (reference, key) in wrong {
            // Whatever the offered length, what is compared has the same size.
            assert_eq!(digest(key).len(), digest(right).len());
            let err = tenants.authenticate(key, Some(reference)).unwrap_err();
            assert!(matches!(err, ApiError::Unauthorized), "{err:?}");
            assert_eq!(
                err.body(),
                ApiError::Unauthorized.body(),
                "one answer for every wrong key"
            );
        }
        assert!(tenants.authenticate(right, Some("quickbooks-123")).is_ok());
    }
}

#[cfg(test)]
mod location_tests {
    use super::*;
    use crate::config::Settings;

    fn two_locations(extra: &str) -> Result<Tenants, ConfigError> {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("c.toml");
        std::fs::write(
            &path,
            format!(
                "[[tenants]]\nid = \"amsterdam\"\napi_key = \"key-ams\"\ncurrency = \"EUR\"\npms = \"m\"\n\
                 business_external_reference = \"client-1\"\n\
                 [[tenants]]\nid = \"rotterdam\"\napi_key = \"{extra}\"\ncurrency = \"EUR\"\npms = \"m\"\n\
                 room_charge_method_codes = [\"ikpms\", \"ROOM\"]\n\
                 [pms.m]\nadapter = \"memory\"\n"
            ),
        )
        .unwrap();
        let s = Settings::load_with_env(Some(&path), []).unwrap();
        let pms = PmsRegistry::build(&s.pms).unwrap();
        Tenants::build(&s.tenants, &pms)
    }

    #[test]
    fn two_locations_of_one_integrator_are_told_apart_by_key() {
        let tenants = two_locations("key-rot").unwrap();
        let ams = tenants.authenticate("key-ams", Some("client-1")).unwrap();
        let rot = tenants.authenticate("key-rot", Some("client-1")).unwrap();
        assert_eq!(
            (ams.id.as_str(), rot.id.as_str()),
            ("amsterdam", "rotterdam")
        );
        // Rotterdam pins nothing: any reference (or none) is fine with its key.
        assert!(tenants.authenticate("key-rot", None).is_ok());
        assert!(tenants.authenticate("key-ams", Some("client-2")).is_err());
        assert_eq!(tenants.by_id("rotterdam").unwrap().id, "rotterdam");
    }

    #[test]
    fn a_shared_api_key_is_a_configuration_error() {
        let err = two_locations("key-ams").err().unwrap().to_string();
        assert!(
            err.contains("tenants `amsterdam` and `rotterdam` have the same api_key"),
            "{err}"
        );
    }

    #[test]
    fn room_charge_codes_match_without_case_or_padding() {
        let tenants = two_locations("key-rot").unwrap();
        let rot = tenants.by_id("rotterdam").unwrap();
        for code in ["IKPMS", "ikpms", " IkPms ", "room"] {
            assert!(rot.is_room_charge_code(code), "{code}");
        }
        assert!(!rot.is_room_charge_code("CASH"));
    }
}
