//! Settings: embedded defaults, then a TOML file, then `CHARGEBRIDGE__SECTION__KEY`
//! environment variables. Secrets stay wrapped in `SecretString` and never print;
//! each can also come from a named environment variable or file ([`secret`]).

pub mod secret;

use std::collections::BTreeMap;
use std::path::Path;
use std::time::Duration;

use secrecy::SecretString;
use serde::Deserialize;

use crate::pms::PmsSettings;

/// Defaults for every key; a config file only overrides what it names.
pub const DEFAULTS_TOML: &str = r#"
[server]
listen = "127.0.0.1:8080"
request_deadline = "10s"
body_limit = 1048576
shutdown_grace = "30s"
pms_safety_margin = "500ms"
client_request_timeout = "5s"
max_connections = 1000
search_cache = "10s"

[idempotency]
store = "memory"
lease = "30s"
in_flight_wait = "5s"
retention = "7d"
command_timeout = "2s"
accept_unsafe_redis = false
memory_capacity = 100000

[log]
format = "auto"
level = "info"
"#;

/// What `serve` runs on when no config file is given: a demo tenant that accepts
/// the seed example (`quickbooks-123` / `quickbooks-key-345`) on the memory PMS.
pub const DEMO_TOML: &str = r#"
[[tenants]]
id = "demo"
business_external_reference = "quickbooks-123"
api_key = "quickbooks-key-345"
currency = "EUR"
room_charge_method_codes = ["IKPMS"]
pms = "demo"

[pms.demo]
adapter = "memory"
"#;

const ENV_PREFIX: &str = "CHARGEBRIDGE";

/// Where the Redis store connects when no `redis_url` source is set.
pub const DEFAULT_REDIS_URL: &str = "redis://127.0.0.1:6379";

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Settings {
    pub server: ServerSettings,
    pub idempotency: IdempotencySettings,
    #[serde(default)]
    pub tenants: Vec<TenantSettings>,
    #[serde(default)]
    pub pms: BTreeMap<String, PmsSettings>,
    pub log: LogSettings,
    #[serde(default)]
    pub capture: Option<CaptureSettings>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ServerSettings {
    /// `host:port`; port 0 picks a free port (tests).
    pub listen: String,
    /// Every answer is given within this time of the request's arrival.
    #[serde(with = "humantime_serde")]
    pub request_deadline: Duration,
    pub body_limit: usize,
    /// SIGTERM waits this long for in-flight requests before exiting.
    #[serde(with = "humantime_serde")]
    pub shutdown_grace: Duration,
    /// Kept back from the PMS call's budget so the answer still leaves in time.
    #[serde(with = "humantime_serde")]
    pub pms_safety_margin: Duration,
    /// A client must send its whole request head and body within this time.
    #[serde(with = "humantime_serde")]
    pub client_request_timeout: Duration,
    /// Per worker; further connections wait in the accept queue.
    pub max_connections: usize,
    #[serde(default)]
    pub workers: Option<usize>,
    /// The base URL Lightspeed calls (`https://bridge.example.com/lightspeed`),
    /// registered as each provider's endpoint by `chargebridge lightspeed providers`.
    #[serde(default)]
    pub public_url: Option<String>,
    /// How long a guest search answer is reused for the same tenant and term
    /// (the POS searches on every keystroke); `0s` turns the cache off.
    /// Identical searches in flight are always coalesced into one PMS call.
    #[serde(with = "humantime_serde")]
    pub search_cache: Duration,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum StoreKind {
    Memory,
    Redis,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct IdempotencySettings {
    pub store: StoreKind,
    /// `redis://`, `rediss://`, or a comma-separated list of cluster nodes
    /// (`redis+cluster://h1:7000,h2:7001`); may carry a password. Default
    /// [`DEFAULT_REDIS_URL`].
    #[serde(default)]
    pub redis_url: Option<SecretString>,
    /// Name of an environment variable holding the Redis URL (instead of
    /// `redis_url`, which `CHARGEBRIDGE__IDEMPOTENCY__REDIS_URL` also sets).
    #[serde(default)]
    pub redis_url_env: Option<String>,
    /// Path of a file holding the Redis URL (instead of `redis_url`).
    #[serde(default)]
    pub redis_url_file: Option<String>,
    #[serde(with = "humantime_serde")]
    pub lease: Duration,
    #[serde(with = "humantime_serde")]
    pub in_flight_wait: Duration,
    #[serde(with = "humantime_serde")]
    pub retention: Duration,
    /// Upper bound of any single store command.
    #[serde(with = "humantime_serde")]
    pub command_timeout: Duration,
    /// Silences the start-up check of Redis' eviction and persistence settings.
    pub accept_unsafe_redis: bool,
    /// Most records the embedded memory store keeps (oldest completed go first).
    pub memory_capacity: usize,
}

#[derive(Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TenantSettings {
    /// Stable short name (`[a-z0-9-]`): record keys, posting references, logs,
    /// metrics. Optional in serde only so its absence gets a message naming the fix.
    #[serde(default)]
    pub id: Option<String>,
    /// Optional pin: Lightspeed's `businessExternalReference` (the integrator's
    /// K-Series API client id, shared by all its locations). When set, a request
    /// naming another reference is refused like a wrong key.
    #[serde(default)]
    pub business_external_reference: Option<String>,
    #[serde(default)]
    pub api_key: Option<SecretString>,
    /// Name of an environment variable holding the API key.
    #[serde(default)]
    pub api_key_env: Option<String>,
    /// Path of a file holding the API key (a mounted Kubernetes secret).
    #[serde(default)]
    pub api_key_file: Option<String>,
    pub currency: String,
    #[serde(default = "default_room_codes")]
    pub room_charge_method_codes: Vec<String>,
    /// `false` (Lightspeed's example): the tip comes on top of the payment's
    /// `amount`. `true`: the tip is already inside `amount`.
    #[serde(default)]
    pub gratuity_included: bool,
    /// The provider was registered with MIRRORING: every closed receipt arrives,
    /// and one without a room-charge payment is acknowledged, not refused.
    #[serde(default)]
    pub mirroring: bool,
    pub pms: String,
    #[serde(default)]
    pub mapping: MappingSettings,
}

impl TenantSettings {
    /// The id, or `?` for messages about a tenant that has none.
    pub fn id_or_placeholder(&self) -> &str {
        self.id.as_deref().unwrap_or("?")
    }
}

impl std::fmt::Debug for TenantSettings {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TenantSettings")
            .field("id", &self.id)
            .field(
                "business_external_reference",
                &self.business_external_reference,
            )
            .field("api_key", &self.api_key.as_ref().map(|_| "[redacted]"))
            .field("api_key_env", &self.api_key_env)
            .field("api_key_file", &self.api_key_file)
            .field("currency", &self.currency)
            .field("pms", &self.pms)
            .finish_non_exhaustive()
    }
}

/// Longest tenant id: it is part of every record key and metric label.
pub const MAX_TENANT_ID: usize = 40;

/// Why `id` is not a valid tenant id, if it is not.
pub fn tenant_id_problem(id: &str) -> Option<&'static str> {
    if id.is_empty() {
        Some("is empty")
    } else if id.len() > MAX_TENANT_ID {
        Some("is longer than 40 characters")
    } else if !id
        .bytes()
        .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
    {
        Some("may only hold a-z, 0-9 and -")
    } else if id.starts_with('-') || id.ends_with('-') {
        Some("may not start or end with -")
    } else {
        None
    }
}

impl IdempotencySettings {
    fn redis_url_sources(&self) -> secret::Sources<'_> {
        secret::Sources::new(
            "redis_url",
            &self.redis_url,
            &self.redis_url_env,
            &self.redis_url_file,
        )
    }

    /// The Redis URL from `redis_url`, `redis_url_env`, `redis_url_file`, or the default.
    pub fn redis_url(&self) -> Result<SecretString, String> {
        Ok(self
            .redis_url_sources()
            .resolve()
            .map_err(|e| format!("idempotency.{e}"))?
            .unwrap_or_else(|| SecretString::from(DEFAULT_REDIS_URL)))
    }

    /// Where the Redis URL comes from, for `check-config`.
    pub fn redis_url_origin(&self) -> &'static str {
        match self.redis_url_sources().origin() {
            Ok(Some(origin)) => origin.as_str(),
            _ => "default",
        }
    }
}

/// Lightspeed concepts → PMS codes. Adapters that need a mapping say which.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MappingSettings {
    /// Lightspeed revenue center id → PMS outlet / service.
    #[serde(default)]
    pub revenue_centers: BTreeMap<String, String>,
    /// Lightspeed accounting group id → PMS revenue / transaction code.
    #[serde(default)]
    pub accounting_groups: BTreeMap<String, String>,
    /// Lightspeed tax id → PMS tax code.
    #[serde(default)]
    pub taxes: BTreeMap<String, String>,
    /// Used when a group or revenue center has no entry of its own.
    #[serde(default)]
    pub default_revenue_center: Option<String>,
    #[serde(default)]
    pub default_accounting_group: Option<String>,
    #[serde(default)]
    pub default_tax: Option<String>,
    /// Code for tips and service charge lines.
    #[serde(default)]
    pub gratuity_code: Option<String>,
    #[serde(default)]
    pub service_charge_code: Option<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    /// JSON when stdout is not a terminal, pretty otherwise.
    Auto,
    Json,
    Pretty,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LogSettings {
    pub format: LogFormat,
    /// An `EnvFilter` directive; `RUST_LOG` wins when set.
    pub level: String,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CaptureSettings {
    /// Directory where every delivery is written as a fixture (secrets redacted).
    pub dir: String,
}

fn default_room_codes() -> Vec<String> {
    vec!["IKPMS".to_string()]
}

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read configuration: {0}")]
    Load(#[from] config::ConfigError),
    #[error("invalid configuration: {0}")]
    Invalid(String),
}

impl Settings {
    /// Embedded defaults (plus the demo tenant when `file` is `None`), the file,
    /// then the environment.
    pub fn load(file: Option<&Path>) -> Result<Settings, ConfigError> {
        Self::load_with_env(file, std::env::vars())
    }

    pub fn load_with_env(
        file: Option<&Path>,
        env: impl IntoIterator<Item = (String, String)>,
    ) -> Result<Settings, ConfigError> {
        use config::{Config, Environment, File, FileFormat};
        let mut builder =
            Config::builder().add_source(File::from_str(DEFAULTS_TOML, FileFormat::Toml));
        match file {
            Some(path) => {
                builder =
                    builder.add_source(File::from(path).format(FileFormat::Toml).required(true));
            }
            None => builder = builder.add_source(File::from_str(DEMO_TOML, FileFormat::Toml)),
        }
        let env: config::Map<String, String> = env
            .into_iter()
            .filter(|(k, _)| k.starts_with(&format!("{ENV_PREFIX}__")))
            .collect();
        builder = builder.add_source(
            Environment::with_prefix(ENV_PREFIX)
                .prefix_separator("__")
                .separator("__")
                .try_parsing(true)
                .source(Some(env)),
        );
        let settings: Settings = builder.build()?.try_deserialize()?;
        settings.check()?;
        Ok(settings)
    }

    /// The demo configuration, as `serve` with no file runs it.
    pub fn demo() -> Settings {
        Self::load_with_env(None, std::iter::empty()).expect("embedded defaults are valid")
    }

    /// Cross-key rules serde cannot express.
    pub fn check(&self) -> Result<(), ConfigError> {
        let invalid = |m: String| Err(ConfigError::Invalid(m));
        if self.idempotency.lease <= self.server.request_deadline {
            return invalid(format!(
                "idempotency.lease ({}) must be longer than server.request_deadline ({})",
                humantime::format_duration(self.idempotency.lease),
                humantime::format_duration(self.server.request_deadline)
            ));
        }
        if self.server.request_deadline.is_zero() {
            return invalid("server.request_deadline must be positive".into());
        }
        if self.server.body_limit == 0 {
            return invalid("server.body_limit must be positive".into());
        }
        if self.idempotency.retention < self.idempotency.lease {
            return invalid("idempotency.retention must be at least idempotency.lease".into());
        }
        let mut seen = std::collections::BTreeSet::new();
        for (i, t) in self.tenants.iter().enumerate() {
            let at = format!("tenants[{i}]");
            let Some(id) = t.id.as_deref() else {
                return invalid(format!(
                    "{at} has no `id`: add a short, stable name such as id = \"hotel-amsterdam\" \
                     (a-z, 0-9, -). Since version 2 a tenant is one Lightspeed business location, \
                     found by its api_key; the id names it in records, logs and metrics, and \
                     business_external_reference is an optional pin"
                ));
            };
            if let Some(problem) = tenant_id_problem(id) {
                return invalid(format!("{at}.id `{id}` {problem}"));
            }
            if !seen.insert(id) {
                return invalid(format!("{at}.id `{id}` is defined twice"));
            }
            if t.business_external_reference.as_deref() == Some("") {
                return invalid(format!(
                    "{at}.business_external_reference is empty (leave it out to accept any)"
                ));
            }
            if !self.pms.contains_key(&t.pms) {
                return invalid(format!(
                    "{at}.pms names `{}`, which has no [pms.{}] section",
                    t.pms, t.pms
                ));
            }
            if t.currency.len() != 3 || !t.currency.bytes().all(|b| b.is_ascii_uppercase()) {
                return invalid(format!(
                    "{at}.currency `{}` is not an ISO 4217 code",
                    t.currency
                ));
            }
            if t.room_charge_method_codes.is_empty() {
                return invalid(format!("{at}.room_charge_method_codes is empty"));
            }
            if let Err(e) = t.api_key_sources().required_origin() {
                return invalid(format!("{at}: {e}"));
            }
        }
        if let Err(e) = self.idempotency.redis_url_sources().origin() {
            return invalid(format!("idempotency.{e}"));
        }
        for (name, pms) in &self.pms {
            pms.check()
                .map_err(|m| ConfigError::Invalid(format!("pms.{name}: {m}")))?;
        }
        Ok(())
    }
}

impl TenantSettings {
    pub fn api_key_sources(&self) -> secret::Sources<'_> {
        secret::Sources::new(
            "api_key",
            &self.api_key,
            &self.api_key_env,
            &self.api_key_file,
        )
    }

    /// The API key from the place the configuration names.
    pub fn resolve_api_key(&self) -> Result<SecretString, ConfigError> {
        self.api_key_sources().require().map_err(|e| {
            ConfigError::Invalid(format!("tenant `{}`: {e}", self.id_or_placeholder()))
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use secrecy::ExposeSecret;

    fn env(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn embedded_defaults_run_the_demo_tenant() {
        let s = Settings::demo();
        assert_eq!(s.server.listen, "127.0.0.1:8080");
        assert_eq!(s.server.request_deadline, Duration::from_secs(10));
        assert_eq!(s.server.body_limit, 1_048_576);
        assert_eq!(s.idempotency.store, StoreKind::Memory);
        assert_eq!(s.idempotency.retention, Duration::from_secs(7 * 86_400));
        assert_eq!(s.tenants[0].id.as_deref(), Some("demo"));
        assert_eq!(
            s.tenants[0].business_external_reference.as_deref(),
            Some("quickbooks-123")
        );
        assert!(!s.tenants[0].gratuity_included, "tip on top by default");
        assert!(!s.tenants[0].mirroring);
        assert_eq!(s.tenants[0].room_charge_method_codes, vec!["IKPMS"]);
    }

    #[test]
    fn environment_overrides_nested_keys() {
        let s = Settings::load_with_env(
            None,
            env(&[
                ("CHARGEBRIDGE__SERVER__LISTEN", "0.0.0.0:9999"),
                ("CHARGEBRIDGE__IDEMPOTENCY__STORE", "redis"),
                ("CHARGEBRIDGE__IDEMPOTENCY__IN_FLIGHT_WAIT", "250ms"),
                ("OTHER__SERVER__LISTEN", "ignored"),
            ]),
        )
        .unwrap();
        assert_eq!(s.server.listen, "0.0.0.0:9999");
        assert_eq!(s.idempotency.store, StoreKind::Redis);
        assert_eq!(s.idempotency.in_flight_wait, Duration::from_millis(250));
    }

    #[test]
    fn bad_files_name_the_key() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("c.toml");
        std::fs::write(&path, "[server]\nrequest_deadline = \"soon\"\n").unwrap();
        let err = Settings::load_with_env(Some(&path), [])
            .unwrap_err()
            .to_string();
        assert!(err.contains("request_deadline"), "{err}");

        std::fs::write(&path, "[server]\nlisten_typo = \"x\"\n").unwrap();
        let err = Settings::load_with_env(Some(&path), [])
            .unwrap_err()
            .to_string();
        assert!(err.contains("listen_typo"), "{err}");

        std::fs::write(
            &path,
            "[[tenants]]\nid = \"a\"\napi_key = \"k\"\ncurrency = \"EUR\"\npms = \"nope\"\n",
        )
        .unwrap();
        let err = Settings::load_with_env(Some(&path), [])
            .unwrap_err()
            .to_string();
        assert!(err.contains("tenants[0].pms"), "{err}");
    }

    #[test]
    fn tenant_ids_are_required_valid_and_unique() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("c.toml");
        let pms = "[pms.m]\nadapter = \"memory\"\n";
        let tenant = |id: &str, key: &str| {
            format!("[[tenants]]\n{id}api_key = \"{key}\"\ncurrency = \"EUR\"\npms = \"m\"\n")
        };
        for (tenants, expected) in [
            (
                // A version 1 file: reference only, no id.
                "[[tenants]]\nbusiness_external_reference = \"x\"\napi_key = \"k\"\ncurrency = \"EUR\"\npms = \"m\"\n".to_string(),
                "tenants[0] has no `id`: add a short, stable name",
            ),
            (tenant("id = \"Hotel_1\"\n", "k"), "tenants[0].id `Hotel_1` may only hold a-z, 0-9 and -"),
            (tenant("id = \"\"\n", "k"), "tenants[0].id `` is empty"),
            (
                format!("{}{}", tenant("id = \"a\"\n", "k1"), tenant("id = \"a\"\n", "k2")),
                "tenants[1].id `a` is defined twice",
            ),
        ] {
            std::fs::write(&path, format!("{tenants}{pms}")).unwrap();
            let err = Settings::load_with_env(Some(&path), [])
                .unwrap_err()
                .to_string();
            assert!(err.contains(expected), "{err}");
        }
        std::fs::write(&path, format!("{}{pms}", tenant("id = \"hotel-1\"\n", "k"))).unwrap();
        let s = Settings::load_with_env(Some(&path), []).unwrap();
        assert_eq!(s.tenants[0].business_external_reference, None);
    }

    #[test]
    fn a_lease_shorter_than_the_deadline_is_refused() {
        let err = Settings::load_with_env(None, env(&[("CHARGEBRIDGE__IDEMPOTENCY__LEASE", "5s")]))
            .unwrap_err()
            .to_string();
        assert!(err.contains("lease"), "{err}");
    }

    #[test]
    fn api_keys_resolve_from_env_and_file_and_never_print() {
        let dir = tempfile::tempdir().unwrap();
        let key_file = dir.path().join("key");
        std::fs::write(&key_file, "from-file\n").unwrap();
        let mut t = Settings::demo().tenants[0].clone();
        t.api_key = None;
        t.api_key_file = Some(key_file.display().to_string());
        assert_eq!(t.resolve_api_key().unwrap().expose_secret(), "from-file");
        t.api_key_file = None;
        t.api_key_env = Some("CHARGEBRIDGE_TEST_SURELY_UNSET_VAR".into());
        assert!(t.resolve_api_key().is_err());
        let printed = format!("{:?}", Settings::demo());
        assert!(!printed.contains("quickbooks-key-345"), "{printed}");
    }

    #[test]
    fn a_tenant_needs_exactly_one_api_key_source() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("c.toml");
        let tenant =
            "[[tenants]]\nid = \"a\"\ncurrency = \"EUR\"\npms = \"m\"\n";
        let pms = "[pms.m]\nadapter = \"memory\"\n";
        for (keys, expected) in [
            (
                "",
                "tenants[0]: needs one of api_key, api_key_env, api_key_file",
            ),
            (
                "api_key = \"k\"\napi_key_file = \"/run/secrets/k\"\n",
                "tenants[0]: set only one of api_key, api_key_env, api_key_file",
            ),
        ] {
            std::fs::write(&path, format!("{tenant}{keys}{pms}")).unwrap();
            let err = Settings::load_with_env(Some(&path), [])
                .unwrap_err()
                .to_string();
            assert!(err.contains(expected), "{err}");
        }
    }

    #[test]
    fn the_redis_url_comes_from_the_config_a_file_or_the_default() {
        assert_eq!(
            Settings::demo()
                .idempotency
                .redis_url()
                .unwrap()
                .expose_secret(),
            DEFAULT_REDIS_URL
        );
        let dir = tempfile::tempdir().unwrap();
        let url_file = dir.path().join("redis-url");
        std::fs::write(&url_file, "redis://:pw-in-file@10.0.0.1:6379\n").unwrap();
        let path = dir.path().join("c.toml");
        std::fs::write(
            &path,
            format!(
                "[idempotency]\nstore = \"redis\"\nredis_url_file = \"{}\"\n",
                url_file.display()
            ),
        )
        .unwrap();
        let s = Settings::load_with_env(Some(&path), []).unwrap();
        assert_eq!(
            s.idempotency.redis_url().unwrap().expose_secret(),
            "redis://:pw-in-file@10.0.0.1:6379"
        );
        assert_eq!(s.idempotency.redis_url_origin(), "file");
        assert!(!format!("{s:?}").contains("pw-in-file"));

        // The environment's redis_url and the file's are two sources: refused.
        let err = Settings::load_with_env(
            Some(&path),
            env(&[("CHARGEBRIDGE__IDEMPOTENCY__REDIS_URL", "redis://other:6379")]),
        )
        .unwrap_err()
        .to_string();
        assert!(
            err.contains("set only one of redis_url, redis_url_env, redis_url_file"),
            "{err}"
        );

        std::fs::remove_file(&url_file).unwrap();
        let err = s.idempotency.redis_url().unwrap_err();
        assert!(
            err.starts_with(&format!(
                "idempotency.redis_url_file {}:",
                url_file.display()
            )),
            "{err}"
        );
    }
}
