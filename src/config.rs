//! Settings: embedded defaults, then a TOML file, then `CHARGEBRIDGE__SECTION__KEY`
//! environment variables. Secrets stay wrapped in `SecretString` and never print;
//! each can also come from a named environment variable or file ([`secret`]).
//!
//! Loading reports every problem at once, one line each, naming the key and
//! saying in plain words what is accepted ([`ConfigError::Problems`]); the
//! merged tree is reviewed against the keys below before serde reads it.
//! [`Provenance`] tells `check-config` which layer set each value.

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
drain_delay = "5s"
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
reconcile_new_keys = false

[journal]
retention = "90d"
give_up_after = "24h"
poll_interval = "500ms"

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

/// The API key of Lightspeed's published example (and of the demo tenant):
/// public, so a tenant using it is announced loudly at start-up.
pub const DEMO_API_KEY: &str = "quickbooks-key-345";

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
    pub journal: JournalSettings,
    #[serde(default)]
    pub admin: AdminSettings,
}

/// The operator API and console (`/admin/`): off unless a token is set.
#[derive(Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AdminSettings {
    #[serde(default)]
    pub token: Option<SecretString>,
    /// Name of an environment variable holding the token
    /// (conventionally `CHARGEBRIDGE_ADMIN_TOKEN`).
    #[serde(default)]
    pub token_env: Option<String>,
    #[serde(default)]
    pub token_file: Option<String>,
}

impl std::fmt::Debug for AdminSettings {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AdminSettings")
            .field("token", &self.token.as_ref().map(|_| "[redacted]"))
            .field("token_env", &self.token_env)
            .field("token_file", &self.token_file)
            .finish()
    }
}

impl AdminSettings {
    pub fn token_sources(&self) -> secret::Sources<'_> {
        secret::Sources::new("token", &self.token, &self.token_env, &self.token_file)
    }

    /// The admin token, `None` when the operator surface is off.
    pub fn resolve_token(&self) -> Result<Option<SecretString>, ConfigError> {
        self.token_sources()
            .resolve()
            .map_err(|e| ConfigError::Invalid(format!("admin.{e}")))
    }
}

/// The posting journal and its worker (every charge seen until it is on a folio
/// or on an operator's list).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct JournalSettings {
    /// How long entries are kept (and listed) after their last change.
    #[serde(with = "humantime_serde")]
    pub retention: Duration,
    /// An entry still not settled this long after the receipt becomes
    /// `needs_attention`.
    #[serde(with = "humantime_serde")]
    pub give_up_after: Duration,
    /// How often each replica's worker looks for due entries.
    #[serde(with = "humantime_serde")]
    pub poll_interval: Duration,
    /// A local directory where this replica keeps a copy of every charge the
    /// POS was told is queued, until the Redis journal settles it; the worker
    /// writes back any the journal lost (a Redis that loses recent writes).
    /// One directory per replica. Unset: queued charges live in Redis only.
    #[serde(default)]
    pub spool_dir: Option<String>,
}

/// Whether receipts that are not (or not wholly) charged to a room reach the PMS.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum RevenuePosting {
    /// Only room charges are posted (non-room receipts are acknowledged).
    #[default]
    Off,
    /// Each receipt's non-room part is posted, on its own, to the house account
    /// mapped for its revenue center (`revenue_accounts`).
    PerReceipt,
    /// The non-room parts are summed per business date, revenue center and
    /// accounting group, and posted once after the day's cut-off
    /// (`revenue_summary_delay` after `business_day_starts`).
    Daily,
}

/// What the POS hears, and who posts, when the PMS cannot take a charge now.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum WhenPmsUnavailable {
    /// 500 to the POS; staff were told it failed, so chargebridge never posts it
    /// by itself (an unknown outcome is only reconciled).
    #[default]
    Fail,
    /// 200 `queued` to the POS; the worker posts it when the PMS takes it.
    Queue,
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
    /// After SIGTERM, `/readyz` answers 503 (and charges are still served) this
    /// long before the listener closes, so a load balancer sees the instance
    /// leave. A second signal skips the rest of it.
    #[serde(with = "humantime_serde")]
    pub drain_delay: Duration,
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
    /// PEM file of the CA certificate(s) that signed the Redis server's
    /// certificate (`rediss://` only); without it the public web roots are trusted.
    #[serde(default)]
    pub tls_ca_file: Option<String>,
    /// PEM file of the client certificate (chain) shown to Redis for mutual TLS;
    /// set together with `tls_key_file`.
    #[serde(default)]
    pub tls_cert_file: Option<String>,
    /// PEM file of the client certificate's private key.
    #[serde(default)]
    pub tls_key_file: Option<String>,
    /// Redis Sentinel nodes (`host:port`) that name the master (instead of a
    /// `redis+sentinel://` URL); the URL then only carries the scheme, credentials
    /// and database of the master.
    #[serde(default)]
    pub sentinels: Vec<String>,
    /// The master's name as the sentinels know it (`sentinel monitor NAME ...`).
    #[serde(default)]
    pub master_name: Option<String>,
    /// The sentinels' own password (their `requirepass`), when they have one;
    /// the master's password stays in the Redis URL. Or `sentinel_password_env`
    /// (a variable's name) or `sentinel_password_file` (a file's path).
    #[serde(default)]
    pub sentinel_password: Option<SecretString>,
    #[serde(default)]
    pub sentinel_password_env: Option<String>,
    #[serde(default)]
    pub sentinel_password_file: Option<String>,
    /// Replicas that must have a new claim (and each record update) before it
    /// counts (`WAIT`): a failover then cannot lose a claim whose charge was
    /// posted. Default 1 with Sentinel, 0 otherwise; not on Cluster.
    #[serde(default)]
    pub wait_for_replicas: Option<u32>,
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
    /// Ask the PMS by reference before the first POST of every key, not only
    /// when the record or the journal says an earlier attempt may have reached
    /// it. A re-delivery whose record and entry Redis lost (restarted without
    /// persistence, `FLUSHALL`, a failover that dropped acknowledged writes)
    /// is then found at the PMS instead of posted twice; costs one PMS lookup
    /// per charge.
    pub reconcile_new_keys: bool,
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
    /// `off` (default), `per_receipt` or `daily`: post non-room receipts to
    /// house accounts, one by one or as one summary per business date.
    #[serde(default)]
    pub revenue_posting: RevenuePosting,
    /// With `daily`: how long after the business date ends its summary is
    /// posted (receipts closed just before the cut-off are still on their way).
    #[serde(default = "default_revenue_summary_delay", with = "humantime_serde")]
    pub revenue_summary_delay: Duration,
    /// `fail` (default) or `queue` (store and forward).
    #[serde(default)]
    pub when_pms_unavailable: WhenPmsUnavailable,
    /// IANA time zone of the business dates in reports (`Europe/Amsterdam`).
    #[serde(default = "default_time_zone")]
    pub time_zone: String,
    /// Local time at which a business date starts (the night-audit cut-off).
    #[serde(default = "default_business_day_starts")]
    pub business_day_starts: String,
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

    fn sentinel_password_sources(&self) -> secret::Sources<'_> {
        secret::Sources::new(
            "sentinel_password",
            &self.sentinel_password,
            &self.sentinel_password_env,
            &self.sentinel_password_file,
        )
    }

    /// The sentinels' password from `sentinel_password`, `_env` or `_file`.
    pub fn sentinel_password(&self) -> Result<Option<SecretString>, String> {
        self.sentinel_password_sources()
            .resolve()
            .map_err(|e| format!("idempotency.{e}"))
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
    /// Lightspeed revenue center id (or name) → the PMS house account that takes
    /// that outlet's non-room revenue (`revenue_posting`): the id a `*` search
    /// answers as `reservationId`.
    #[serde(default)]
    pub revenue_accounts: BTreeMap<String, String>,
    #[serde(default)]
    pub default_revenue_account: Option<String>,
    /// Lightspeed payment method code → the PMS payment method a revenue
    /// part's payments are posted with, so the house account balances to zero
    /// per receipt. Payments are posted only when this or
    /// `default_payment_method` is set.
    #[serde(default)]
    pub payment_methods: BTreeMap<String, String>,
    /// For a Lightspeed code `payment_methods` does not name.
    #[serde(default)]
    pub default_payment_method: Option<String>,
}

impl MappingSettings {
    /// Whether revenue parts are settled by payments on the house account.
    pub fn posts_payments(&self) -> bool {
        !self.payment_methods.is_empty() || self.default_payment_method.is_some()
    }

    /// The PMS payment method for Lightspeed's `code` (`None`: payments are
    /// not posted). A code the mapping does not name takes the default, else
    /// goes as it is (the PMS may refuse it: the operator's list then says so).
    pub fn payment_method<'a>(&'a self, code: &'a str) -> Option<&'a str> {
        if !self.posts_payments() {
            return None;
        }
        Some(
            self.payment_methods
                .get(code)
                .or(self.default_payment_method.as_ref())
                .map(String::as_str)
                .unwrap_or(code),
        )
    }
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

fn default_time_zone() -> String {
    "UTC".to_string()
}

fn default_revenue_summary_delay() -> Duration {
    Duration::from_secs(30 * 60)
}

fn default_business_day_starts() -> String {
    "04:00".to_string()
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
    /// Every problem loading found, each naming its key, in plain words.
    #[error("{}", list_problems(.0))]
    Problems(Vec<String>),
}

fn list_problems(problems: &[String]) -> String {
    let mut text = match problems.len() {
        1 => "1 problem in the configuration:".to_string(),
        n => format!("{n} problems in the configuration:"),
    };
    for problem in problems {
        text.push_str("\n  ");
        text.push_str(problem);
    }
    text
}

/// A problem [`Settings::check`] found, with the keys it is about: loading drops
/// those about a key it already refused (and stood in a default for).
struct Problem {
    keys: Vec<String>,
    text: String,
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
        Self::load_with_provenance(file, env).map(|(settings, _)| settings)
    }

    /// As [`Settings::load_with_env`], and where each value came from.
    ///
    /// Every problem found is reported at once ([`ConfigError::Problems`]): the
    /// merged tree is walked against the known keys, a refused value is replaced
    /// by its default (or left out) so the walk and the cross-key rules of
    /// [`Settings::check`] can go on.
    pub fn load_with_provenance(
        file: Option<&Path>,
        env: impl IntoIterator<Item = (String, String)>,
    ) -> Result<(Settings, Provenance), ConfigError> {
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
        let mut env_names: Vec<String> = env.keys().cloned().collect();
        env_names.sort();
        builder = builder.add_source(
            Environment::with_prefix(ENV_PREFIX)
                .prefix_separator("__")
                .separator("__")
                .try_parsing(true)
                .source(Some(env)),
        );
        let tree = builder.build()?.cache;
        let provenance = Provenance {
            tree: without_secrets(&tree),
            env_names,
            demo: file.is_none(),
        };
        let defaults = Config::builder()
            .add_source(File::from_str(DEFAULTS_TOML, FileFormat::Toml))
            .build()?
            .cache;
        let settings = review(tree, &defaults, &provenance.env_names)?;
        Ok((settings, provenance))
    }

    /// The demo configuration, as `serve` with no file runs it.
    pub fn demo() -> Settings {
        Self::load_with_env(None, std::iter::empty()).expect("embedded defaults are valid")
    }

    /// Cross-key rules serde cannot express; every broken one is reported.
    pub fn check(&self) -> Result<(), ConfigError> {
        let problems = self.problems();
        if problems.is_empty() {
            Ok(())
        } else {
            Err(ConfigError::Problems(
                problems.into_iter().map(|p| p.text).collect(),
            ))
        }
    }

    fn problems(&self) -> Vec<Problem> {
        let mut out = Vec::new();
        let mut add = |keys: &[&str], text: String| {
            out.push(Problem {
                keys: keys.iter().map(|k| k.to_string()).collect(),
                text,
            })
        };
        let (deadline, lease) = ("server.request_deadline", "idempotency.lease");
        if self.idempotency.lease <= self.server.request_deadline {
            add(
                &[lease, deadline],
                format!(
                    "idempotency.lease ({}) must be longer than server.request_deadline ({})",
                    humantime::format_duration(self.idempotency.lease),
                    humantime::format_duration(self.server.request_deadline)
                ),
            );
        }
        if self.server.request_deadline.is_zero() {
            add(
                &[deadline],
                "server.request_deadline must be positive".into(),
            );
        }
        if self.server.body_limit == 0 {
            add(
                &["server.body_limit"],
                "server.body_limit must be positive".into(),
            );
        }
        if self.idempotency.retention < self.idempotency.lease {
            add(
                &["idempotency.retention", lease],
                "idempotency.retention must be at least idempotency.lease".into(),
            );
        }
        let mut seen = std::collections::BTreeSet::new();
        for (i, t) in self.tenants.iter().enumerate() {
            let at = format!("tenants[{i}]");
            let key = |k: &str| format!("{at}.{k}");
            match t.id.as_deref() {
                None => add(
                    &[&key("id")],
                    format!(
                        "{at} has no `id`: add a short, stable name such as id = \"hotel-amsterdam\" \
                         (a-z, 0-9, -). Since version 2 a tenant is one Lightspeed business \
                         location, found by its api_key; the id names it in records, logs and \
                         metrics, and business_external_reference is an optional pin"
                    ),
                ),
                Some(id) => {
                    if let Some(problem) = tenant_id_problem(id) {
                        add(&[&key("id")], format!("{at}.id `{id}` {problem}"));
                    } else if !seen.insert(id) {
                        add(&[&key("id")], format!("{at}.id `{id}` is defined twice"));
                    }
                }
            }
            if t.business_external_reference.as_deref() == Some("") {
                add(
                    &[&key("business_external_reference")],
                    format!(
                        "{at}.business_external_reference is empty (leave it out to accept any)"
                    ),
                );
            }
            if !self.pms.contains_key(&t.pms) {
                add(
                    &[&key("pms")],
                    format!(
                        "{at}.pms names `{}`, which has no [pms.{}] section",
                        t.pms, t.pms
                    ),
                );
            }
            if t.currency.len() != 3 || !t.currency.bytes().all(|b| b.is_ascii_uppercase()) {
                add(
                    &[&key("currency")],
                    format!("{at}.currency `{}` is not an ISO 4217 code", t.currency),
                );
            }
            if t.room_charge_method_codes.is_empty() {
                add(
                    &[&key("room_charge_method_codes")],
                    format!("{at}.room_charge_method_codes is empty"),
                );
            }
            if t.time_zone.parse::<chrono_tz::Tz>().is_err() {
                add(
                    &[&key("time_zone")],
                    format!(
                        "{at}.time_zone `{}` is not an IANA time zone; write e.g. \"Europe/Amsterdam\"",
                        t.time_zone
                    ),
                );
            }
            if chrono::NaiveTime::parse_from_str(&t.business_day_starts, "%H:%M").is_err() {
                add(
                    &[&key("business_day_starts")],
                    format!(
                        "{at}.business_day_starts `{}` is not a time of day; write e.g. \"04:00\"",
                        t.business_day_starts
                    ),
                );
            }
            if let Err(e) = t.api_key_sources().required_origin() {
                add(
                    &[&key("api_key"), &key("api_key_env"), &key("api_key_file")],
                    format!("{at}: {e}"),
                );
            }
        }
        if let Err(e) = self.admin.token_sources().origin() {
            add(
                &["admin.token", "admin.token_env", "admin.token_file"],
                format!("admin.{e}"),
            );
        }
        if self.journal.poll_interval.is_zero() {
            add(
                &["journal.poll_interval"],
                "journal.poll_interval must be positive".to_string(),
            );
        }
        if let Err(e) = self.idempotency.redis_url_sources().origin() {
            add(
                &[
                    "idempotency.redis_url",
                    "idempotency.redis_url_env",
                    "idempotency.redis_url_file",
                ],
                format!("idempotency.{e}"),
            );
        }
        if let Err(e) = self.idempotency.sentinel_password_sources().origin() {
            add(
                &[
                    "idempotency.sentinel_password",
                    "idempotency.sentinel_password_env",
                    "idempotency.sentinel_password_file",
                ],
                format!("idempotency.{e}"),
            );
        }
        let idem = &self.idempotency;
        if idem.tls_cert_file.is_some() != idem.tls_key_file.is_some() {
            add(
                &["idempotency.tls_cert_file", "idempotency.tls_key_file"],
                "idempotency.tls_cert_file and idempotency.tls_key_file go together \
                 (the client certificate and its key for mutual TLS): set both or neither"
                    .to_string(),
            );
        }
        if !idem.sentinels.is_empty() && idem.master_name.is_none() {
            add(
                &["idempotency.sentinels", "idempotency.master_name"],
                "idempotency.sentinels needs idempotency.master_name, the name the \
                 sentinels monitor the master by"
                    .to_string(),
            );
        }
        for (name, pms) in &self.pms {
            if let Err(m) = pms.check() {
                add(&[&format!("pms.{name}")], format!("pms.{name}: {m}"));
            }
        }
        out
    }
}

// ---------------------------------------------------------------------------
// Reviewing the merged tree: every problem, in plain words.

/// What a key holds, as far as the review goes.
#[derive(Clone, Copy)]
enum Kind {
    Text,
    /// Text that is never echoed in a message.
    Secret,
    Duration,
    Count,
    Flag,
    /// One of the words, which are the serde names of an enum; the noun says
    /// what a word names (`"rediss" is not a store`).
    Choice(&'static str, &'static [&'static str]),
    TextList,
    TextMap,
    Section(&'static [Field]),
    /// `[[name]]`: a list of sections.
    Sections(&'static [Field]),
    /// `[pms.NAME]` sections, whose keys the adapters' own settings define.
    PmsSections,
}

struct Field {
    name: &'static str,
    kind: Kind,
    /// Set for a key without a default: how to add it.
    missing: Option<&'static str>,
}

const fn opt(name: &'static str, kind: Kind) -> Field {
    Field {
        name,
        kind,
        missing: None,
    }
}

const fn required(name: &'static str, kind: Kind, hint: &'static str) -> Field {
    Field {
        name,
        kind,
        missing: Some(hint),
    }
}

/// The keys of [`Settings`]; a test holds them to the structs' serde names.
const TOP: &[Field] = &[
    opt("server", Kind::Section(SERVER)),
    opt("idempotency", Kind::Section(IDEMPOTENCY)),
    opt("tenants", Kind::Sections(TENANT)),
    opt("pms", Kind::PmsSections),
    opt("log", Kind::Section(LOG)),
    opt("capture", Kind::Section(CAPTURE)),
    opt("journal", Kind::Section(JOURNAL)),
    opt("admin", Kind::Section(ADMIN)),
];

const ADMIN: &[Field] = &[
    opt("token", Kind::Secret),
    opt("token_env", Kind::Text),
    opt("token_file", Kind::Text),
];

const JOURNAL: &[Field] = &[
    opt("retention", Kind::Duration),
    opt("give_up_after", Kind::Duration),
    opt("poll_interval", Kind::Duration),
    opt("spool_dir", Kind::Text),
];

const UNAVAILABLE_MODES: &[&str] = &["fail", "queue"];
const REVENUE_MODES: &[&str] = &["off", "per_receipt", "daily"];

const SERVER: &[Field] = &[
    opt("listen", Kind::Text),
    opt("request_deadline", Kind::Duration),
    opt("body_limit", Kind::Count),
    opt("shutdown_grace", Kind::Duration),
    opt("drain_delay", Kind::Duration),
    opt("pms_safety_margin", Kind::Duration),
    opt("client_request_timeout", Kind::Duration),
    opt("max_connections", Kind::Count),
    opt("workers", Kind::Count),
    opt("public_url", Kind::Text),
    opt("search_cache", Kind::Duration),
];

const STORES: &[&str] = &["memory", "redis"];
const LOG_FORMATS: &[&str] = &["auto", "json", "pretty"];

const IDEMPOTENCY: &[Field] = &[
    opt("store", Kind::Choice("store", STORES)),
    opt("redis_url", Kind::Secret),
    opt("redis_url_env", Kind::Text),
    opt("redis_url_file", Kind::Text),
    opt("tls_ca_file", Kind::Text),
    opt("tls_cert_file", Kind::Text),
    opt("tls_key_file", Kind::Text),
    opt("sentinels", Kind::TextList),
    opt("master_name", Kind::Text),
    opt("sentinel_password", Kind::Secret),
    opt("sentinel_password_env", Kind::Text),
    opt("sentinel_password_file", Kind::Text),
    opt("wait_for_replicas", Kind::Count),
    opt("lease", Kind::Duration),
    opt("in_flight_wait", Kind::Duration),
    opt("retention", Kind::Duration),
    opt("command_timeout", Kind::Duration),
    opt("accept_unsafe_redis", Kind::Flag),
    opt("reconcile_new_keys", Kind::Flag),
    opt("memory_capacity", Kind::Count),
];

const TENANT: &[Field] = &[
    // Required, but its absence is explained by `check` (version 1 files).
    opt("id", Kind::Text),
    opt("business_external_reference", Kind::Text),
    opt("api_key", Kind::Secret),
    opt("api_key_env", Kind::Text),
    opt("api_key_file", Kind::Text),
    required(
        "currency",
        Kind::Text,
        "add currency = \"EUR\" (an ISO 4217 code)",
    ),
    opt("room_charge_method_codes", Kind::TextList),
    opt("gratuity_included", Kind::Flag),
    opt("mirroring", Kind::Flag),
    opt(
        "revenue_posting",
        Kind::Choice("revenue posting mode", REVENUE_MODES),
    ),
    opt("revenue_summary_delay", Kind::Duration),
    opt(
        "when_pms_unavailable",
        Kind::Choice("mode", UNAVAILABLE_MODES),
    ),
    opt("time_zone", Kind::Text),
    opt("business_day_starts", Kind::Text),
    required(
        "pms",
        Kind::Text,
        "add pms = \"NAME\", naming the [pms.NAME] section that posts its charges",
    ),
    opt("mapping", Kind::Section(MAPPING)),
];

const MAPPING: &[Field] = &[
    opt("revenue_centers", Kind::TextMap),
    opt("accounting_groups", Kind::TextMap),
    opt("taxes", Kind::TextMap),
    opt("default_revenue_center", Kind::Text),
    opt("default_accounting_group", Kind::Text),
    opt("default_tax", Kind::Text),
    opt("gratuity_code", Kind::Text),
    opt("service_charge_code", Kind::Text),
    opt("revenue_accounts", Kind::TextMap),
    opt("default_revenue_account", Kind::Text),
    opt("payment_methods", Kind::TextMap),
    opt("default_payment_method", Kind::Text),
];

const LOG: &[Field] = &[
    opt("format", Kind::Choice("log format", LOG_FORMATS)),
    opt("level", Kind::Text),
];

const CAPTURE: &[Field] = &[required(
    "dir",
    Kind::Text,
    "add dir = \"/var/lib/chargebridge/capture\" (where deliveries are written)",
)];

/// The origin `config` gives values read from the environment.
const FROM_ENVIRONMENT: &str = "the environment";

/// Walks `tree` against the known keys, then deserializes what is left and runs
/// [`Settings::check`]; all problems together, or the settings.
fn review(
    mut tree: Value,
    defaults: &Value,
    env_names: &[String],
) -> Result<Settings, ConfigError> {
    let mut review = Review {
        problems: Vec::new(),
        repaired: Vec::new(),
        env_names,
    };
    review.section("", TOP, &mut tree, Some(defaults));
    let settings = match tree.try_deserialize::<Settings>() {
        Ok(settings) => Some(settings),
        Err(e) => {
            // The walk missed something serde refuses: still say it plainly.
            review.problems.push(plain_config_error(&e));
            None
        }
    };
    if let Some(settings) = &settings {
        for problem in settings.problems() {
            let about_repaired = problem
                .keys
                .iter()
                .any(|k| review.repaired.iter().any(|r| related(k, r)));
            if !about_repaired {
                review.problems.push(problem.text);
            }
        }
    }
    match settings {
        Some(settings) if review.problems.is_empty() => Ok(settings),
        _ => {
            // In the order of the file's sections (the cross-key rules with the
            // section they start with); the walk's order within one.
            review.problems.sort_by_key(|line| section_rank(line));
            Err(ConfigError::Problems(review.problems))
        }
    }
}

/// Where the line's key (`tenants[2].pms …`) sorts: its section, then its tenant.
fn section_rank(line: &str) -> (usize, usize) {
    let key = line.split([' ', ':', '.']).next().unwrap_or_default();
    let (section, index) = match key.split_once('[') {
        Some((section, rest)) => (
            section,
            rest.trim_end_matches(']').parse().unwrap_or(usize::MAX),
        ),
        None => (key, 0),
    };
    let rank = TOP
        .iter()
        .position(|f| f.name == section)
        .map_or(0, |i| i + 1);
    (rank, index)
}

use config::{Value, ValueKind};

struct Review<'a> {
    problems: Vec<String>,
    /// Keys whose value was refused and replaced (or left out).
    repaired: Vec<String>,
    env_names: &'a [String],
}

impl Review<'_> {
    /// Records `text` about the value at `path`, naming the environment
    /// variable when that is where the value came from.
    fn problem(&mut self, path: &str, value: &Value, text: String) {
        let vars = if from_environment(value) {
            let prefix = env_name(path);
            self.env_names
                .iter()
                .filter(|n| {
                    let n = n.to_ascii_uppercase();
                    n == prefix || n.starts_with(&format!("{prefix}__"))
                })
                .cloned()
                .collect::<Vec<_>>()
        } else {
            Vec::new()
        };
        if vars.is_empty() {
            self.problems.push(text);
        } else {
            self.problems
                .push(format!("{text} (set by {})", vars.join(", ")));
        }
    }

    fn section(
        &mut self,
        at: &str,
        fields: &'static [Field],
        value: &mut Value,
        defaults: Option<&Value>,
    ) {
        if !matches!(value.kind, ValueKind::Table(_)) {
            let header = match at.split_once('[') {
                Some((list, _)) => format!("[[{list}]]"),
                None => format!("[{at}]"),
            };
            let text = format!(
                "{at}: {} is not a section; write {header} on a line of its own, then its settings",
                shown(value)
            );
            self.problem(at, value, text);
            *value = defaults
                .cloned()
                .unwrap_or_else(|| Value::new(None, ValueKind::Table(config::Map::new())));
            self.repaired.push(at.to_string());
            return;
        }
        let ValueKind::Table(table) = &mut value.kind else {
            return;
        };
        let known: Vec<&str> = fields.iter().map(|f| f.name).collect();
        let mut unknown: Vec<String> = table
            .keys()
            .filter(|k| !known.contains(&k.as_str()))
            .cloned()
            .collect();
        unknown.sort();
        for key in unknown {
            let Some(v) = table.remove(&key) else {
                continue;
            };
            let path = join(at, &key);
            self.problem(&path, &v, unknown_key(&path, &key, &known));
        }
        for field in fields {
            let path = join(at, field.name);
            let default = defaults.and_then(|d| child(d, field.name));
            let Some(v) = table.get_mut(field.name) else {
                if let Some(hint) = field.missing {
                    self.problems.push(format!("{path} is missing: {hint}"));
                    table.insert(field.name.to_string(), placeholder());
                    self.repaired.push(path);
                }
                continue;
            };
            match field.kind {
                Kind::Section(sub) => self.section(&path, sub, v, default),
                Kind::Sections(sub) => self.sections(&path, sub, v),
                Kind::PmsSections => self.pms(&path, v),
                leaf => {
                    let Some(what) = leaf_problem(leaf, v) else {
                        continue;
                    };
                    self.problem(&path, v, format!("{path}: {what}"));
                    self.repaired.push(path);
                    match (default, field.missing) {
                        (Some(d), _) => *v = d.clone(),
                        (None, Some(_)) => *v = placeholder(),
                        (None, None) => {
                            table.remove(field.name);
                        }
                    }
                }
            }
        }
    }

    fn sections(&mut self, at: &str, fields: &'static [Field], value: &mut Value) {
        let ValueKind::Array(items) = &mut value.kind else {
            let text = format!(
                "{at}: {} is not a list of sections; write [[{at}]] (two brackets) above each one",
                shown(value)
            );
            self.problem(at, value, text);
            *value = Value::new(None, ValueKind::Array(Vec::new()));
            self.repaired.push(at.to_string());
            return;
        };
        for (i, item) in items.iter_mut().enumerate() {
            self.section(&format!("{at}[{i}]"), fields, item, None);
        }
    }

    fn pms(&mut self, at: &str, value: &mut Value) {
        let ValueKind::Table(sections) = &mut value.kind else {
            let text = format!(
                "{at}: {} is not a section; write a [pms.NAME] section for each PMS, with its adapter",
                shown(value)
            );
            self.problem(at, value, text);
            *value = Value::new(None, ValueKind::Table(config::Map::new()));
            self.repaired.push(at.to_string());
            return;
        };
        let mut names: Vec<String> = sections.keys().cloned().collect();
        names.sort();
        for name in names {
            if let Some(section) = sections.get_mut(&name) {
                self.pms_section(&format!("{at}.{name}"), section);
            }
        }
    }

    /// One `[pms.NAME]` section. Its keys are the adapter's: serde is asked for
    /// them, and each refused key is found by leaving keys out one at a time.
    fn pms_section(&mut self, at: &str, value: &mut Value) {
        let first = self.problems.len();
        self.pms_keys(at, value);
        // serde meets the keys in no set order; the lines start with the key.
        self.problems[first..].sort();
    }

    fn pms_keys(&mut self, at: &str, value: &mut Value) {
        let adapters = pms_adapters();
        let adapter = match &value.kind {
            ValueKind::Table(table) => table.get("adapter").cloned(),
            _ => {
                let text = format!(
                    "{at}: {} is not a section; write [{at}] on a line of its own, then adapter = \"…\" and its settings",
                    shown(value)
                );
                self.problem(at, value, text);
                self.stand_in_for_pms(at, value);
                return;
            }
        };
        let adapter = match adapter {
            None => {
                let text = format!(
                    "{at}.adapter is missing: add adapter = \"NAME\", one of {}",
                    or_list(&adapters)
                );
                self.problem(at, value, text);
                self.stand_in_for_pms(at, value);
                return;
            }
            Some(a) => match a.clone().try_deserialize::<String>() {
                Ok(name) if adapters.contains(&name) => name,
                _ => {
                    let path = format!("{at}.adapter");
                    let text = format!(
                        "{path}: {} is not an adapter; use {}",
                        shown(&a),
                        or_list(&adapters)
                    );
                    self.problem(&path, &a, text);
                    self.stand_in_for_pms(at, value);
                    return;
                }
            },
        };
        let fields = pms_fields(&adapter);
        let secret = |key: &str| {
            fields.as_ref().is_some_and(|f| {
                f.iter().any(|f| *f == format!("{key}_env"))
                    && f.iter().any(|f| *f == format!("{key}_file"))
            })
        };
        let ValueKind::Table(table) = &mut value.kind else {
            return;
        };
        if let Some(fields) = &fields {
            let known: Vec<&str> = fields.iter().map(String::as_str).collect();
            let mut unknown: Vec<String> = table
                .keys()
                .filter(|k| *k != "adapter" && !known.contains(&k.as_str()))
                .cloned()
                .collect();
            unknown.sort();
            for key in unknown {
                if let Some(v) = table.remove(&key) {
                    let path = format!("{at}.{key}");
                    self.problem(&path, &v, unknown_key(&path, &key, &known));
                }
            }
        }
        // Missing keys this review stood in for with "" to look further.
        let mut stood_in: Vec<String> = Vec::new();
        // Each round removes or adds one key; a section has only so many.
        for _ in 0..64 {
            let Err(error) = pms_accepts(table) else {
                return;
            };
            let missing = missing_field(&error);
            // A key of the section itself that is missing (serde says so once
            // the whole section is read): say so, stand in for it, read on.
            if let Some(field) = missing.as_ref().filter(|f| {
                !table.contains_key(f.as_str())
                    && fields.as_ref().is_some_and(|all| all.contains(f))
            }) {
                let path = format!("{at}.{field}");
                // A key refused below and taken out is not missing too.
                if !self.repaired.contains(&path) {
                    self.problems.push(format!("{path} is missing"));
                    self.repaired.push(path);
                }
                if stood_in.contains(field) {
                    self.stand_in_for_pms(at, value);
                    return;
                }
                stood_in.push(field.clone());
                table.insert(field.clone(), placeholder());
                continue;
            }
            let text = error.to_string();
            let mut keys: Vec<String> = table.keys().filter(|k| *k != "adapter").cloned().collect();
            keys.sort();
            let culprit = keys.into_iter().find(|key| {
                let mut without = table.clone();
                without.remove(key);
                pms_accepts(&without).err().map(|e| e.to_string()) != Some(text.clone())
            });
            match culprit {
                Some(key) if stood_in.contains(&key) => {
                    // Not text after all: nothing more to learn here.
                    self.stand_in_for_pms(at, value);
                    return;
                }
                Some(key) => {
                    let Some(v) = table.remove(&key) else {
                        return;
                    };
                    let path = format!("{at}.{key}");
                    let line = match &missing {
                        Some(field) => format!("{path}: an entry has no {field}"),
                        None => plain_line(&path, &innermost(&error), secret(&key)),
                    };
                    self.problem(&path, &v, line);
                    self.repaired.push(path);
                }
                None => {
                    self.problems.push(plain_line(at, &innermost(&error), true));
                    self.stand_in_for_pms(at, value);
                    return;
                }
            }
        }
    }

    /// A section that cannot be read is replaced by an empty memory PMS, so a
    /// tenant naming it is not also said to name a missing section.
    fn stand_in_for_pms(&mut self, at: &str, value: &mut Value) {
        let mut table = config::Map::new();
        table.insert("adapter".to_string(), Value::new(None, "memory"));
        *value = Value::new(None, ValueKind::Table(table));
        self.repaired.push(at.to_string());
    }
}

fn pms_accepts(table: &config::Map<String, Value>) -> Result<(), config::ConfigError> {
    Value::new(None, ValueKind::Table(table.clone()))
        .try_deserialize::<PmsSettings>()
        .map(|_| ())
}

/// The adapters `[pms.NAME] adapter` accepts, as serde names them.
fn pms_adapters() -> Vec<String> {
    let mut probe = config::Map::new();
    probe.insert("adapter".to_string(), Value::new(None, "\u{1}"));
    match pms_accepts(&probe) {
        Err(e) => serde_names(&innermost(&e)),
        Ok(()) => Vec::new(),
    }
}

/// The keys an adapter's section accepts, as serde names them (`None` for an
/// unknown adapter).
pub fn pms_fields(adapter: &str) -> Option<Vec<String>> {
    let mut probe = config::Map::new();
    probe.insert("adapter".to_string(), Value::new(None, adapter));
    probe.insert("\u{1}".to_string(), Value::new(None, 0));
    let message = innermost(&pms_accepts(&probe).err()?);
    message
        .starts_with("unknown field `\u{1}`")
        .then(|| serde_names(&message))
}

/// The names serde lists after `expected` in its unknown-field and
/// unknown-variant messages.
fn serde_names(message: &str) -> Vec<String> {
    let Some((_, listed)) = message.split_once("expected") else {
        return Vec::new();
    };
    listed
        .split('`')
        .skip(1)
        .step_by(2)
        .map(str::to_string)
        .collect()
}

fn missing_field(error: &config::ConfigError) -> Option<String> {
    match error {
        config::ConfigError::NotFound(field) => Some(field.clone()),
        config::ConfigError::At { error, .. } => missing_field(error),
        _ => None,
    }
}

/// The message of an error, without `config`'s ` for key …` and ` in …` tails.
fn innermost(error: &config::ConfigError) -> String {
    match error {
        config::ConfigError::At { error, .. } => innermost(error),
        config::ConfigError::Type {
            unexpected,
            expected,
            ..
        } => format!("invalid type: {unexpected}, expected {expected}"),
        config::ConfigError::NotFound(field) => format!("missing field `{field}`"),
        config::ConfigError::Message(m) => m.clone(),
        other => other.to_string(),
    }
}

/// A serde error from deserializing the whole tree, in plain words.
fn plain_config_error(error: &config::ConfigError) -> String {
    match error {
        config::ConfigError::Type { key, .. } | config::ConfigError::At { key, .. } => plain_line(
            key.as_deref().unwrap_or("configuration"),
            &innermost(error),
            true,
        ),
        config::ConfigError::NotFound(key) => format!("{key} is missing"),
        other => plain_line("configuration", &innermost(other), true),
    }
}

/// serde's message about the key at `path`, in plain words. `hide` leaves the
/// value out (it may be a secret).
fn plain_line(path: &str, message: &str, hide: bool) -> String {
    if let Some(rest) = message.strip_prefix("unknown field `") {
        let (field, rest) = rest.split_once('`').unwrap_or((rest, ""));
        let known = serde_names(rest);
        let known: Vec<&str> = known.iter().map(String::as_str).collect();
        let path = if path == field || path.ends_with(&format!(".{field}")) {
            path.to_string()
        } else {
            join(path, field)
        };
        return unknown_key(&path, field, &known);
    }
    if let Some(rest) = message.strip_prefix("unknown variant `") {
        let (got, rest) = rest.split_once('`').unwrap_or((rest, ""));
        return format!(
            "{path}: \"{got}\" is not accepted here; use {}",
            or_list(&serde_names(rest))
        );
    }
    // `config`'s own words for an enum it cannot read.
    if let Some((_, got)) = message.split_once(" does not have variant constructor ") {
        return format!("{path}: \"{got}\" is not accepted here");
    }
    if message.contains("should be represented by either string") {
        return format!("{path}: write one word in quotes");
    }
    if let Some(rest) = message.strip_prefix("missing field `") {
        let field = rest.split('`').next().unwrap_or(rest);
        return format!("{} is missing", join(path, field));
    }
    for prefix in ["invalid type: ", "invalid value: "] {
        if let Some((got, wanted)) = message
            .strip_prefix(prefix)
            .and_then(|rest| rest.split_once(", expected "))
        {
            let got = if hide {
                "the value".to_string()
            } else {
                plain_unexpected(got)
            };
            return format!("{path}: {got} is not {}", plain_expected(wanted));
        }
    }
    format!("{path}: {message}")
}

/// serde's and `config`'s `string "x"`, `integer `5``, `map`: as written.
fn plain_unexpected(got: &str) -> String {
    if let Some(s) = got.strip_prefix("string ") {
        return s.to_string();
    }
    if let Some((_, v)) = got.split_once('`') {
        return v.trim_end_matches('`').to_string();
    }
    match got {
        "map" => "a table".into(),
        "sequence" => "a list".into(),
        "unit value" | "option" => "an empty value".into(),
        other => other.into(),
    }
}

/// What serde expected, said as what to write.
fn plain_expected(wanted: &str) -> String {
    let wanted = wanted.trim();
    match wanted {
        "a duration" => DURATION_HINT.into(),
        "a boolean" => "true or false".into(),
        "a string" | "a borrowed string" | "a character" => "text; write it in quotes".into(),
        "a sequence" => "a list; write e.g. [\"A\", \"B\"]".into(),
        "a map" => "a table".into(),
        "u8" | "u16" | "u32" | "u64" | "u128" | "usize" => "a whole number (0 or more)".into(),
        "i8" | "i16" | "i32" | "i64" | "i128" | "isize" | "an integer" => "a whole number".into(),
        "f32" | "f64" | "a number" => "a number".into(),
        w if w.starts_with("struct ") => "a table".into(),
        w if w.contains("Decimal") || w.contains("decimal") => {
            "a decimal number such as \"12.50\"".into()
        }
        w if w.contains('`') => format!(
            "accepted here; use {}",
            or_list(&serde_names(&format!("expected {w}")))
        ),
        w => w.into(),
    }
}

const DURATION_HINT: &str = "a duration; write e.g. \"10s\" or \"500ms\"";

/// What is wrong with a leaf value, or `None`; serde decides, as it will when
/// the settings are built.
fn leaf_problem(kind: Kind, value: &Value) -> Option<String> {
    fn accepts<T: serde::de::DeserializeOwned>(value: &Value) -> bool {
        value.clone().try_deserialize::<T>().is_ok()
    }
    let got = shown(value);
    match kind {
        Kind::Text => {
            (!accepts::<String>(value)).then(|| format!("{got} is not text; write it in quotes"))
        }
        Kind::Secret => (!accepts::<String>(value))
            .then(|| "the value is not text; write it in quotes".to_string()),
        Kind::Duration => (!accepts::<humantime_serde::Serde<Duration>>(value))
            .then(|| format!("{got} is not {DURATION_HINT}")),
        Kind::Count => {
            (!accepts::<usize>(value)).then(|| format!("{got} is not a whole number (0 or more)"))
        }
        Kind::Flag => (!accepts::<bool>(value)).then(|| format!("{got} is not true or false")),
        Kind::Choice(noun, words) => {
            let ok = value
                .clone()
                .try_deserialize::<String>()
                .is_ok_and(|w| words.contains(&w.as_str()));
            let words: Vec<String> = words.iter().map(|w| w.to_string()).collect();
            (!ok).then(|| format!("{got} is not a {noun}; use {}", or_list(&words)))
        }
        Kind::TextList => (!accepts::<Vec<String>>(value))
            .then(|| format!("{got} is not a list of text; write e.g. [\"A\", \"B\"]")),
        Kind::TextMap => (!accepts::<BTreeMap<String, String>>(value))
            .then(|| format!("{got} is not a table of codes; write e.g. {{ \"1\" = \"CODE\" }}")),
        Kind::Section(_) | Kind::Sections(_) | Kind::PmsSections => None,
    }
}

/// A value as written in TOML, or what it is when it is not a single value.
fn shown(value: &Value) -> String {
    match &value.kind {
        ValueKind::String(s) => format!("{s:?}"),
        ValueKind::Boolean(b) => b.to_string(),
        ValueKind::I64(i) => i.to_string(),
        ValueKind::I128(i) => i.to_string(),
        ValueKind::U64(i) => i.to_string(),
        ValueKind::U128(i) => i.to_string(),
        ValueKind::Float(f) => f.to_string(),
        ValueKind::Table(_) => "a table".into(),
        ValueKind::Array(_) => "a list".into(),
        ValueKind::Nil => "an empty value".into(),
    }
}

/// `"a"`, `"a" or "b"`, `"a", "b" or "c"`.
fn or_list(words: &[String]) -> String {
    let quoted: Vec<String> = words.iter().map(|w| format!("\"{w}\"")).collect();
    match quoted.split_last() {
        None => "another value".into(),
        Some((last, [])) => last.clone(),
        Some((last, rest)) => format!("{} or {last}", rest.join(", ")),
    }
}

fn unknown_key(path: &str, key: &str, known: &[&str]) -> String {
    let what = if path.contains(['.', '[']) {
        "a setting"
    } else {
        "a section"
    };
    match did_you_mean(key, known) {
        Some(near) => format!("{path} is not {what} (did you mean {near}?)"),
        None if known.is_empty() => format!("{path} is not {what}"),
        None => format!("{path} is not {what}; known here: {}", known.join(", ")),
    }
}

/// The known key `key` is most likely a typo of: a few letters off, or one is
/// the other with something added (`listen_typo` → `listen`).
fn did_you_mean<'a>(key: &str, known: &[&'a str]) -> Option<&'a str> {
    let key_lower = key.to_ascii_lowercase();
    known
        .iter()
        .copied()
        .filter_map(|k| {
            let d = edit_distance(&key_lower, k);
            let close = d <= (k.len().max(key.len()) / 3).max(1);
            let extended = (k.len() >= 3 && key_lower.starts_with(k))
                || (key.len() >= 3 && k.starts_with(&key_lower));
            (close || extended).then_some((d, k))
        })
        .min_by_key(|(d, _)| *d)
        .map(|(_, k)| k)
}

/// Edits (insert, delete, substitute, swap two neighbours) from `a` to `b`.
fn edit_distance(a: &str, b: &str) -> usize {
    let (a, b): (Vec<char>, Vec<char>) = (a.chars().collect(), b.chars().collect());
    let mut d = vec![vec![0usize; b.len() + 1]; a.len() + 1];
    for (i, row) in d.iter_mut().enumerate() {
        row[0] = i;
    }
    for (j, cell) in d[0].iter_mut().enumerate() {
        *cell = j;
    }
    for i in 1..=a.len() {
        for j in 1..=b.len() {
            let cost = usize::from(a[i - 1] != b[j - 1]);
            d[i][j] = (d[i - 1][j] + 1)
                .min(d[i][j - 1] + 1)
                .min(d[i - 1][j - 1] + cost);
            if i > 1 && j > 1 && a[i - 1] == b[j - 2] && a[i - 2] == b[j - 1] {
                d[i][j] = d[i][j].min(d[i - 2][j - 2] + 1);
            }
        }
    }
    d[a.len()][b.len()]
}

fn join(at: &str, key: &str) -> String {
    if at.is_empty() {
        key.to_string()
    } else {
        format!("{at}.{key}")
    }
}

/// Whether `a` and `b` are one key, or one holds the other.
fn related(a: &str, b: &str) -> bool {
    let holds = |outer: &str, inner: &str| {
        inner
            .strip_prefix(outer)
            .is_some_and(|rest| rest.is_empty() || rest.starts_with(['.', '[']))
    };
    holds(a, b) || holds(b, a)
}

fn child<'v>(value: &'v Value, key: &str) -> Option<&'v Value> {
    match &value.kind {
        ValueKind::Table(table) => table.get(key),
        _ => None,
    }
}

/// Stands in for a missing required text, so the rest can still be checked.
fn placeholder() -> Value {
    Value::new(None, "")
}

/// Whether any value in `value` came from the environment.
fn from_environment(value: &Value) -> bool {
    if value.origin() == Some(FROM_ENVIRONMENT) {
        return true;
    }
    match &value.kind {
        ValueKind::Table(table) => table.values().any(from_environment),
        ValueKind::Array(items) => items.iter().any(from_environment),
        _ => false,
    }
}

/// `server.listen` → `CHARGEBRIDGE__SERVER__LISTEN`.
fn env_name(path: &str) -> String {
    format!("{ENV_PREFIX}__{}", path.replace('.', "__")).to_ascii_uppercase()
}

// ---------------------------------------------------------------------------
// Provenance: where each value came from, for `check-config`.

/// Which layer set a value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Layer {
    /// The configuration file.
    File,
    /// `CHARGEBRIDGE__SECTION__KEY`, named.
    Environment(String),
    /// [`DEFAULTS_TOML`].
    Default,
    /// [`DEMO_TOML`] (no file given).
    Demo,
    /// No layer sets it.
    Unset,
}

impl std::fmt::Display for Layer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Layer::File => f.write_str("file"),
            Layer::Environment(var) => write!(f, "environment {var}"),
            Layer::Default => f.write_str("default"),
            Layer::Demo => f.write_str("embedded demo configuration"),
            Layer::Unset => f.write_str("not set"),
        }
    }
}

/// The merged configuration with each value's origin, without its secrets:
/// only `adapter`, `*_env` and `*_file` values are kept (names, not secrets).
pub struct Provenance {
    tree: Value,
    env_names: Vec<String>,
    demo: bool,
}

fn without_secrets(value: &Value) -> Value {
    fn strip(value: &Value, key: &str) -> Value {
        let origin = value.origin().map(str::to_string);
        let kind = match &value.kind {
            ValueKind::Table(table) => ValueKind::Table(
                table
                    .iter()
                    .map(|(k, v)| (k.clone(), strip(v, k)))
                    .collect(),
            ),
            ValueKind::Array(items) => {
                ValueKind::Array(items.iter().map(|v| strip(v, key)).collect())
            }
            ValueKind::String(s)
                if key == "adapter" || key.ends_with("_env") || key.ends_with("_file") =>
            {
                ValueKind::String(s.clone())
            }
            _ => ValueKind::Nil,
        };
        Value::new(origin.as_ref(), kind)
    }
    strip(value, "")
}

impl Provenance {
    fn node(&self, path: &[&str]) -> Option<&Value> {
        let mut node = &self.tree;
        for segment in path {
            node = match &node.kind {
                ValueKind::Table(table) => table.get(*segment)?,
                ValueKind::Array(items) => items.get(segment.parse::<usize>().ok()?)?,
                _ => return None,
            };
        }
        Some(node)
    }

    /// The layer that set the value at `path` (`["tenants", "0", "api_key"]`).
    pub fn layer(&self, path: &[&str]) -> Layer {
        let Some(node) = self.node(path) else {
            return Layer::Unset;
        };
        match node.origin() {
            Some(FROM_ENVIRONMENT) => {
                let wanted = env_name(&path.join("."));
                let var = self
                    .env_names
                    .iter()
                    .find(|n| n.eq_ignore_ascii_case(&wanted))
                    .cloned()
                    .unwrap_or(wanted);
                Layer::Environment(var)
            }
            Some(_) => Layer::File,
            None if self.demo && matches!(path.first(), Some(&"tenants" | &"pms")) => Layer::Demo,
            None => Layer::Default,
        }
    }

    fn text(&self, path: &[&str]) -> Option<String> {
        match &self.node(path)?.kind {
            ValueKind::String(s) => Some(s.clone()),
            _ => None,
        }
    }

    /// Where the secret `key` of the section at `section` is configured.
    pub fn secret(&self, section: &[&str], key: &str) -> secret::Place {
        let at = |k: &str| -> Vec<String> {
            section
                .iter()
                .map(|s| s.to_string())
                .chain([k.to_string()])
                .collect()
        };
        let layer = |p: &[String]| self.layer(&p.iter().map(String::as_str).collect::<Vec<_>>());
        let text = |p: &[String]| self.text(&p.iter().map(String::as_str).collect::<Vec<_>>());
        let value = at(key);
        let env = at(&format!("{key}_env"));
        let file = at(&format!("{key}_file"));
        let key = key.to_string();
        match layer(&value) {
            Layer::Unset => {}
            set => return secret::Place::Value(set),
        }
        if let Some(name) = text(&env) {
            return secret::Place::Variable {
                key,
                name,
                set_in: layer(&env),
            };
        }
        if let Some(path) = text(&file) {
            return secret::Place::File {
                key,
                path,
                set_in: layer(&file),
            };
        }
        secret::Place::Unset
    }

    /// Each secret of `[pms.NAME]` (a key with `_env` and `_file` variants) and
    /// where it is configured.
    pub fn pms_secrets(&self, name: &str) -> Vec<(String, secret::Place)> {
        let Some(fields) = self
            .text(&["pms", name, "adapter"])
            .and_then(|adapter| pms_fields(&adapter))
        else {
            return Vec::new();
        };
        fields
            .iter()
            .filter(|f| {
                fields.contains(&format!("{f}_env")) && fields.contains(&format!("{f}_file"))
            })
            .map(|f| (f.clone(), self.secret(&["pms", name], f)))
            .collect()
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
        let tenant = "[[tenants]]\nid = \"a\"\ncurrency = \"EUR\"\npms = \"m\"\n";
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
    fn tls_and_sentinel_keys_load_and_half_pairs_are_refused() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("c.toml");
        std::fs::write(
            &path,
            "[idempotency]\nstore = \"redis\"\nredis_url = \"rediss://:pw@x/\"\n\
             tls_ca_file = \"/ca.pem\"\ntls_cert_file = \"/c.pem\"\ntls_key_file = \"/c.key\"\n\
             sentinels = [\"10.0.0.1:26379\", \"10.0.0.2:26379\"]\nmaster_name = \"cb\"\n\
             wait_for_replicas = 1\n",
        )
        .unwrap();
        let s = Settings::load_with_env(Some(&path), []).unwrap();
        assert_eq!(s.idempotency.tls_ca_file.as_deref(), Some("/ca.pem"));
        assert_eq!(s.idempotency.sentinels.len(), 2);
        assert_eq!(s.idempotency.master_name.as_deref(), Some("cb"));
        assert_eq!(s.idempotency.wait_for_replicas, Some(1));

        std::fs::write(
            &path,
            "[idempotency]\ntls_cert_file = \"/c.pem\"\nsentinels = [\"h:26379\"]\n",
        )
        .unwrap();
        let err = Settings::load_with_env(Some(&path), [])
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("tls_cert_file and idempotency.tls_key_file go together"),
            "{err}"
        );
        assert!(
            err.contains("sentinels needs idempotency.master_name"),
            "{err}"
        );
    }

    #[test]
    fn the_sentinels_password_is_a_secret_with_three_sources() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("c.toml");
        let pw = dir.path().join("sentinel-pw");
        std::fs::write(&pw, "s-pw\n").unwrap();
        std::fs::write(
            &path,
            format!(
                "[idempotency]\nstore = \"redis\"\nsentinel_password_file = \"{}\"\n",
                pw.display()
            ),
        )
        .unwrap();
        let s = Settings::load_with_env(Some(&path), []).unwrap();
        let got = s.idempotency.sentinel_password().unwrap().unwrap();
        assert_eq!(got.expose_secret(), "s-pw");
        std::fs::write(
            &path,
            "[idempotency]\nsentinel_password = \"a\"\nsentinel_password_env = \"V\"\n",
        )
        .unwrap();
        let err = Settings::load_with_env(Some(&path), [])
            .unwrap_err()
            .to_string();
        assert!(
            err.contains(
                "set only one of sentinel_password, sentinel_password_env, sentinel_password_file"
            ),
            "{err}"
        );
        assert!(!err.contains("\"a\""), "{err}");
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

    fn load_file(text: &str, vars: &[(&str, &str)]) -> Result<Settings, String> {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("c.toml");
        std::fs::write(&path, text).unwrap();
        Settings::load_with_env(Some(&path), env(vars)).map_err(|e| e.to_string())
    }

    const SERDE_JARGON: &[&str] = &[
        "variant",
        "invalid type",
        "invalid value",
        "expected",
        "missing field",
        "unknown field",
    ];

    #[test]
    fn every_problem_is_listed_at_once_in_plain_words() {
        let err = load_file(
            r#"
[server]
listen_typo = "0.0.0.0:8080"
request_deadline = "soon"

[idempotency]
store = "rediss"

[[tenants]]
id = "a"
api_key = "k1"
currency = "EUR"
pms = "m"

[[tenants]]
id = "b"
api_key = "k2"
pms = "m"

[pms.m]
adapter = "http"
url = "http://127.0.0.1:9"
timeout = "a while"

[log]
format = "JSON"
"#,
            &[("CHARGEBRIDGE__SERVER__BODY_LIMIT", "big")],
        )
        .unwrap_err();
        let lines: Vec<&str> = err.lines().collect();
        assert_eq!(
            lines,
            [
                "7 problems in the configuration:",
                "  server.listen_typo is not a setting (did you mean listen?)",
                "  server.request_deadline: \"soon\" is not a duration; write e.g. \"10s\" or \"500ms\"",
                "  server.body_limit: \"big\" is not a whole number (0 or more) \
                 (set by CHARGEBRIDGE__SERVER__BODY_LIMIT)",
                "  idempotency.store: \"rediss\" is not a store; use \"memory\" or \"redis\"",
                "  tenants[1].currency is missing: add currency = \"EUR\" (an ISO 4217 code)",
                "  pms.m.timeout: \"a while\" is not a duration; write e.g. \"10s\" or \"500ms\"",
                "  log.format: \"JSON\" is not a log format; use \"auto\", \"json\" or \"pretty\"",
            ],
            "{err}"
        );
        for jargon in SERDE_JARGON {
            assert!(!err.contains(jargon), "{jargon}: {err}");
        }
    }

    #[test]
    fn cross_key_rules_are_all_reported_too() {
        let pms = "[pms.m]\nadapter = \"memory\"\n";
        let err = load_file(
            &format!(
                "[server]\nbody_limit = 0\n[idempotency]\nlease = \"5s\"\n\
                 [[tenants]]\nbusiness_external_reference = \"x\"\napi_key = \"k\"\ncurrency = \"eur\"\npms = \"m\"\n\
                 [[tenants]]\nid = \"b\"\ncurrency = \"EUR\"\npms = \"nope\"\n{pms}"
            ),
            &[],
        )
        .unwrap_err();
        for expected in [
            "6 problems in the configuration:",
            "idempotency.lease (5s) must be longer than server.request_deadline (10s)",
            "server.body_limit must be positive",
            "tenants[0] has no `id`: add a short, stable name",
            "tenants[0].currency `eur` is not an ISO 4217 code",
            "tenants[1].pms names `nope`, which has no [pms.nope] section",
            "tenants[1]: needs one of api_key, api_key_env, api_key_file",
        ] {
            assert!(err.contains(expected), "{expected}: {err}");
        }
    }

    #[test]
    fn a_refused_value_brings_no_made_up_problems() {
        // The deadline is refused, so the lease is not compared with the default
        // that stood in for it; a tenant without pms is not said to name ``; a
        // tenant naming a broken section is not said to name a missing one.
        let err = load_file(
            "[server]\nrequest_deadline = \"soon\"\n[idempotency]\nlease = \"5s\"\n\
             [[tenants]]\nid = \"a\"\napi_key = \"k\"\ncurrency = \"EUR\"\n\
             [[tenants]]\nid = \"b\"\napi_key = \"k2\"\ncurrency = \"EUR\"\npms = \"broken\"\n\
             [pms.broken]\nadapter = \"mewz\"\n",
            &[],
        )
        .unwrap_err();
        let lines: Vec<&str> = err.lines().collect();
        assert_eq!(
            lines,
            [
                "3 problems in the configuration:",
                "  server.request_deadline: \"soon\" is not a duration; write e.g. \"10s\" or \"500ms\"",
                "  tenants[0].pms is missing: add pms = \"NAME\", naming the [pms.NAME] section \
                 that posts its charges",
                "  pms.broken.adapter: \"mewz\" is not an adapter; use \"memory\", \"http\", \
                 \"mews\", \"opera\" or \"apaleo\"",
            ],
            "{err}"
        );
    }

    #[test]
    fn pms_sections_are_reviewed_against_their_adapter() {
        let err = load_file(
            r#"
[pms.a]
url = "https://x"

[pms.o]
adapter = "opera"
url = "https://ohip.example"
hotel = "H1"
timeout = 3
client_secret = ["s3cret-in-a-list"]

[pms.g]
adapter = "memory"
guests = [{ reservation_id = "1", room_id = "101" }]
"#,
            &[],
        )
        .unwrap_err();
        for expected in [
            "pms.a.adapter is missing: add adapter = \"NAME\", one of \"memory\", \"http\", \
             \"mews\", \"opera\" or \"apaleo\"",
            "pms.o.hotel is not a setting (did you mean hotel_id?)",
            "pms.o.timeout: 3 is not a duration; write e.g. \"10s\" or \"500ms\"",
            "pms.o.client_secret: the value is not text; write it in quotes",
            "pms.o.client_id is missing",
            "pms.o.hotel_id is missing",
            "pms.g.guests: an entry has no client_name",
        ] {
            assert!(err.contains(expected), "{expected}: {err}");
        }
        assert!(!err.contains("s3cret"), "{err}");
        for jargon in SERDE_JARGON {
            assert!(!err.contains(jargon), "{jargon}: {err}");
        }
    }

    #[test]
    fn misplaced_sections_are_explained() {
        let err = load_file(
            "server = \"x\"\n[tenants]\nid = \"a\"\n[sever]\nlisten = \"x\"\n[pms]\nm = 1\n",
            &[],
        )
        .unwrap_err();
        for expected in [
            "sever is not a section (did you mean server?)",
            "server: \"x\" is not a section; write [server] on a line of its own",
            "tenants: a table is not a list of sections; write [[tenants]] (two brackets) above each one",
            "pms.m: 1 is not a section; write [pms.m] on a line of its own",
        ] {
            assert!(err.contains(expected), "{expected}: {err}");
        }
    }

    #[test]
    fn typos_get_a_suggestion() {
        let known = [
            "listen",
            "request_deadline",
            "redis_url",
            "redis_url_env",
            "store",
        ];
        for (typo, near) in [
            ("listen_typo", Some("listen")),
            ("listn", Some("listen")),
            ("requst_deadline", Some("request_deadline")),
            ("stroe", Some("store")),
            ("redis_uri", Some("redis_url")),
            ("redis", Some("redis_url")),
            ("x", None),
            ("colour", None),
        ] {
            assert_eq!(did_you_mean(typo, &known), near, "{typo}");
        }
    }

    /// The names serde accepts for `T`, from its unknown-field or -variant message.
    fn serde_names_of<T: serde::de::DeserializeOwned>(probe: Value) -> Vec<String> {
        let message = innermost(&probe.try_deserialize::<T>().err().unwrap());
        serde_names(&message)
    }

    #[test]
    fn the_review_knows_every_key_serde_does() {
        let probe = || {
            let mut table = config::Map::new();
            table.insert("\u{1}".to_string(), Value::new(None, 0));
            Value::new(None, ValueKind::Table(table))
        };
        let names = |fields: &[Field]| {
            fields
                .iter()
                .map(|f| f.name.to_string())
                .collect::<Vec<_>>()
        };
        assert_eq!(names(TOP), serde_names_of::<Settings>(probe()));
        assert_eq!(names(SERVER), serde_names_of::<ServerSettings>(probe()));
        assert_eq!(
            names(IDEMPOTENCY),
            serde_names_of::<IdempotencySettings>(probe())
        );
        assert_eq!(names(TENANT), serde_names_of::<TenantSettings>(probe()));
        assert_eq!(names(MAPPING), serde_names_of::<MappingSettings>(probe()));
        assert_eq!(names(LOG), serde_names_of::<LogSettings>(probe()));
        assert_eq!(names(CAPTURE), serde_names_of::<CaptureSettings>(probe()));
        fn variants<T: serde::de::DeserializeOwned>() -> Vec<String> {
            let e = serde_json::from_value::<T>(serde_json::json!("\u{1}")).err();
            serde_names(&e.unwrap().to_string())
        }
        assert_eq!(STORES, variants::<StoreKind>());
        assert_eq!(LOG_FORMATS, variants::<LogFormat>());
        assert_eq!(
            pms_adapters(),
            ["memory", "http", "mews", "opera", "apaleo"]
        );
        assert!(
            pms_fields("http")
                .unwrap()
                .contains(&"token_file".to_string())
        );
        assert_eq!(pms_fields("mewz"), None);
    }

    #[test]
    fn provenance_names_the_layer_of_each_value() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("c.toml");
        std::fs::write(
            &path,
            "[server]\nrequest_deadline = \"3s\"\n[idempotency]\nredis_url_env = \"MY_REDIS_URL\"\n\
             [[tenants]]\nid = \"a\"\napi_key_file = \"/run/secrets/a\"\ncurrency = \"EUR\"\npms = \"h\"\n\
             [[tenants]]\nid = \"b\"\napi_key = \"inline-key-in-file\"\ncurrency = \"EUR\"\npms = \"h\"\n\
             [pms.h]\nadapter = \"http\"\nurl = \"http://127.0.0.1:9\"\n",
        )
        .unwrap();
        let (_, p) = Settings::load_with_provenance(
            Some(&path),
            env(&[
                ("CHARGEBRIDGE__SERVER__LISTEN", "0.0.0.0:9"),
                ("CHARGEBRIDGE__PMS__H__TOKEN", "token-from-env"),
            ]),
        )
        .unwrap();
        assert_eq!(
            p.layer(&["server", "listen"]),
            Layer::Environment("CHARGEBRIDGE__SERVER__LISTEN".into())
        );
        assert_eq!(p.layer(&["server", "request_deadline"]), Layer::File);
        assert_eq!(p.layer(&["server", "shutdown_grace"]), Layer::Default);
        assert_eq!(p.layer(&["server", "public_url"]), Layer::Unset);
        assert_eq!(
            p.secret(&["idempotency"], "redis_url"),
            secret::Place::Variable {
                key: "redis_url".into(),
                name: "MY_REDIS_URL".into(),
                set_in: Layer::File
            }
        );
        let a = p.secret(&["tenants", "0"], "api_key");
        assert_eq!(
            a.to_string(),
            "secret file /run/secrets/a (api_key_file from file)"
        );
        let b = p.secret(&["tenants", "1"], "api_key");
        assert_eq!(b, secret::Place::Value(Layer::File));
        assert_eq!(b.to_string(), "file (value not shown)");
        assert_eq!(
            p.pms_secrets("h"),
            [(
                "token".to_string(),
                secret::Place::Value(Layer::Environment("CHARGEBRIDGE__PMS__H__TOKEN".into()))
            )]
        );
        // It keeps the names of variables and files, never a secret.
        assert_eq!(p.text(&["pms", "h", "token"]), None);
        assert_eq!(p.text(&["tenants", "1", "api_key"]), None);

        let (_, demo) = Settings::load_with_provenance(None, []).unwrap();
        assert_eq!(demo.layer(&["server", "listen"]), Layer::Default);
        assert_eq!(
            demo.secret(&["tenants", "0"], "api_key"),
            secret::Place::Value(Layer::Demo)
        );
        assert_eq!(
            demo.secret(&["idempotency"], "redis_url"),
            secret::Place::Unset
        );
    }
}
