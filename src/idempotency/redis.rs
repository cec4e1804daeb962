//! The Redis store: the store of record when several replicas share the work.
//!
//! * Claim is one round trip: `SET key record NX PX ttl GET` sets the record if
//!   the key is free, else returns the existing record (Redis ≥ 7.0).
//! * Replace and delete are Lua scripts that compare the owner token first
//!   (fencing), so a request that lost its lease never touches its successor's
//!   record. Each touches exactly one key, so the same code runs on Redis Cluster.
//! * Connections multiplex many requests over one socket and reconnect by
//!   themselves; every command is bounded by `command_timeout`, so a hung Redis
//!   becomes `store_unavailable` inside the request deadline, never a hung request.

use std::time::Duration;

use redis::aio::{ConnectionManager, MultiplexedConnection};
use redis::cluster_async::ClusterConnection;
use redis::sentinel::{SentinelClient, SentinelClientBuilder, SentinelServerType};
use redis::{ClientTlsConfig, FromRedisValue, Script, TlsCertificates};
use secrecy::{ExposeSecret, SecretString};
use tokio::sync::OnceCell;

use super::Record;
use super::store::{Claim, StoreBackend, StoreError};

// Records this release writes begin with `{"owner":"<token>"`, so a prefix
// compare settles ownership without decoding; any other layout (another
// release's writer) is decoded to be sure.
const REPLACE_IF_OWNER: &str = r#"
local v = redis.call('GET', KEYS[1])
if not v then return 0 end
local prefix = '{"owner":"' .. ARGV[1] .. '"'
if string.sub(v, 1, #prefix) ~= prefix then
  local ok, rec = pcall(cjson.decode, v)
  if not ok or type(rec) ~= 'table' or rec['owner'] ~= ARGV[1] then return 0 end
end
redis.call('SET', KEYS[1], ARGV[2], 'PX', ARGV[3])
return 1
"#;

const DELETE_IF_OWNER: &str = r#"
local v = redis.call('GET', KEYS[1])
if not v then return 0 end
local prefix = '{"owner":"' .. ARGV[1] .. '"'
if string.sub(v, 1, #prefix) ~= prefix then
  local ok, rec = pcall(cjson.decode, v)
  if not ok or type(rec) ~= 'table' or rec['owner'] ~= ARGV[1] then return 0 end
end
redis.call('DEL', KEYS[1])
return 1
"#;

static NEXT_STORE_ID: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(1);

thread_local! {
    /// Per-thread connections of the stores that use them, by store id.
    static THREAD_CONNECTIONS: std::cell::RefCell<Vec<ThreadConnection>> =
        const { std::cell::RefCell::new(Vec::new()) };
}

/// A connection kept for one thread, and whether the runtime that drives it
/// still runs (a runtime that ends drops its tasks, and with them the guard).
/// The cell is shared by the thread's tasks: the first one connects, the
/// others wait for it instead of each opening a connection of its own.
struct ThreadConnection {
    store: u64,
    conn: std::sync::Arc<OnceCell<Connection>>,
    driven: std::sync::Arc<std::sync::atomic::AtomicBool>,
}

/// Lives in a task of the runtime a connection was made on; says when it ends.
struct DrivenGuard(std::sync::Arc<std::sync::atomic::AtomicBool>);

impl Drop for DrivenGuard {
    fn drop(&mut self) {
        self.0.store(false, std::sync::atomic::Ordering::Release);
    }
}

#[derive(Clone)]
enum Connection {
    Single(ConnectionManager),
    Cluster(ClusterConnection),
    /// To the master the sentinels named; forgotten on any error, so the next
    /// command asks them again (and so follows a failover).
    Sentinel(MultiplexedConnection),
}

enum Target {
    Single(Box<redis::Client>),
    Cluster(Box<redis::cluster::ClusterClient>),
    Sentinel(Box<SentinelTarget>),
}

struct SentinelTarget {
    client: tokio::sync::Mutex<SentinelClient>,
    master: std::sync::Mutex<Option<Master>>,
}

/// The connection to the master the sentinels named, where it is, and when
/// they last confirmed it.
struct Master {
    conn: MultiplexedConnection,
    addr: String,
    confirmed: std::time::Instant,
}

/// How long a master the sentinels named is used before asking them again. A
/// master demoted by a failover keeps accepting writes until the sentinels
/// reconfigure it (seconds later), and those writes are lost; asking this often
/// bounds that window.
const SENTINEL_RECHECK: Duration = Duration::from_millis(500);

/// How to reach Redis beyond what the URL says: TLS files and Sentinel.
#[derive(Debug, Clone)]
pub struct RedisOptions {
    /// Upper bound of any single command (and of connecting).
    pub command_timeout: Duration,
    /// PEM CA certificate(s) to trust instead of the public web roots.
    pub tls_ca_file: Option<String>,
    /// PEM client certificate chain and key for mutual TLS.
    pub tls_cert_file: Option<String>,
    pub tls_key_file: Option<String>,
    /// Sentinel nodes (`host:port`) when the URL is not `redis+sentinel://`.
    pub sentinels: Vec<String>,
    /// The master's name at the sentinels.
    pub master_name: Option<String>,
    /// The sentinels' own password (`requirepass` on the sentinels).
    pub sentinel_password: Option<SecretString>,
    /// Replicas that must acknowledge a claim or record update (`WAIT`);
    /// `None`: 1 with Sentinel, 0 otherwise.
    pub wait_for_replicas: Option<u32>,
}

impl RedisOptions {
    /// A plain connection: no TLS files, no Sentinel.
    pub fn new(command_timeout: Duration) -> Self {
        RedisOptions {
            command_timeout,
            tls_ca_file: None,
            tls_cert_file: None,
            tls_key_file: None,
            sentinels: Vec::new(),
            master_name: None,
            sentinel_password: None,
            wait_for_replicas: None,
        }
    }

    /// The options the `[idempotency]` section sets (the sentinels' password
    /// read from its source now).
    pub fn from_settings(s: &crate::config::IdempotencySettings) -> Result<Self, StoreError> {
        Ok(RedisOptions {
            command_timeout: s.command_timeout,
            tls_ca_file: s.tls_ca_file.clone(),
            tls_cert_file: s.tls_cert_file.clone(),
            tls_key_file: s.tls_key_file.clone(),
            sentinels: s.sentinels.clone(),
            master_name: s.master_name.clone(),
            sentinel_password: s.sentinel_password().map_err(StoreError)?,
            wait_for_replicas: s.wait_for_replicas,
        })
    }

    fn has_tls_files(&self) -> bool {
        self.tls_ca_file.is_some() || self.tls_cert_file.is_some() || self.tls_key_file.is_some()
    }

    /// The CA and client certificate files, read now (start-up), `None` when
    /// none is configured.
    fn certificates(&self) -> Result<Option<TlsCertificates>, StoreError> {
        if !self.has_tls_files() {
            return Ok(None);
        }
        fn read(key: &str, path: &str) -> Result<Vec<u8>, StoreError> {
            std::fs::read(path)
                .map_err(|e| StoreError(format!("idempotency.{key} {path}: cannot read it: {e}")))
        }
        let root_cert = match &self.tls_ca_file {
            Some(path) => Some(read("tls_ca_file", path)?),
            None => None,
        };
        let client_tls = match (&self.tls_cert_file, &self.tls_key_file) {
            (Some(cert), Some(key)) => Some(ClientTlsConfig {
                client_cert: read("tls_cert_file", cert)?,
                client_key: read("tls_key_file", key)?,
            }),
            (None, None) => None,
            _ => {
                return Err(StoreError(
                    "idempotency.tls_cert_file and idempotency.tls_key_file go together: set both or neither"
                        .into(),
                ));
            }
        };
        Ok(Some(TlsCertificates {
            client_tls,
            root_cert,
        }))
    }
}

pub struct RedisStore {
    target: Target,
    /// Replicas that must acknowledge a claim or record update (0: none).
    wait_for_replicas: u32,
    tls: bool,
    mutual_tls: bool,
    connection: OnceCell<Connection>,
    /// Set by the service: a single Redis is reached over one connection per
    /// thread (see [`RedisStore::per_thread_connections`]).
    per_thread: bool,
    /// Tells this store's connections apart in a thread's cache.
    id: u64,
    command_timeout: Duration,
    replace_script: Script,
    delete_script: Script,
}

/// What the start-up check found about the server's durability settings.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SafetyReport {
    pub maxmemory_policy: Option<String>,
    pub appendonly: Option<String>,
}

impl SafetyReport {
    /// Problems that can lose records (and so double-charge), in words.
    pub fn problems(&self) -> Vec<String> {
        let mut out = Vec::new();
        match self.maxmemory_policy.as_deref() {
            Some("noeviction") => {}
            Some(p) => out.push(format!(
                "maxmemory-policy is `{p}`: Redis may evict idempotency records under memory pressure; set `noeviction`"
            )),
            None => out.push("could not read maxmemory-policy (CONFIG GET refused); make sure it is `noeviction`".into()),
        }
        match self.appendonly.as_deref() {
            Some("yes") => {}
            Some(_) => out.push(
                "appendonly is off: records are lost when Redis restarts; enable AOF persistence (until then, reconcile_new_keys = true keeps re-sent charges from posting twice and journal.spool_dir keeps queued ones)"
                    .into(),
            ),
            None => out.push(
                "could not read appendonly (CONFIG GET refused); make sure AOF is enabled".into(),
            ),
        }
        out
    }
}

fn store_error(context: &str, e: impl std::fmt::Display) -> StoreError {
    let detail = e.to_string();
    match tls_in_words(&detail) {
        Some(words) => StoreError(format!("redis {context}: TLS: {words} ({detail})")),
        None => StoreError(format!("redis {context}: {detail}")),
    }
}

/// What a TLS failure means, in words an operator acts on; `None` for other
/// errors. Matched on the messages of rustls (the TLS library under the client).
pub fn tls_in_words(detail: &str) -> Option<&'static str> {
    const WORDS: &[(&[&str], &str)] = &[
        (
            &["UnknownIssuer"],
            "the server's certificate is signed by an unknown CA; set idempotency.tls_ca_file \
             to the CA certificate that signed it",
        ),
        (
            &["not valid for name", "NotValidForName"],
            "the server's certificate is for another name (wrong name): connect by a name or \
             address the certificate lists, or reissue it",
        ),
        (
            &["certificate expired", "Expired"],
            "the server's certificate has expired; renew it",
        ),
        (
            &["not valid yet", "NotValidYet"],
            "the server's certificate is not valid yet; check the clocks",
        ),
        (
            &["CertificateRequired", "peer sent no certificates"],
            "the server wants a client certificate (mutual TLS); set idempotency.tls_cert_file \
             and idempotency.tls_key_file",
        ),
        (
            &[
                "alert: UnknownCA",
                "alert: BadCertificate",
                "alert: CertificateUnknown",
            ],
            "the server refused our client certificate (it does not trust the CA that signed it)",
        ),
        (
            &["alert: CertificateExpired"],
            "the server says our client certificate has expired; renew it",
        ),
        (
            &["corrupt message", "InvalidContentType"],
            "the server does not speak TLS on this port; use redis:// or the TLS port",
        ),
        (
            &[
                "Unable to parse",
                "Unable to extract private key",
                "trust anchors",
            ],
            "a certificate or key file is not valid PEM",
        ),
    ];
    WORDS
        .iter()
        .find(|(needles, _)| needles.iter().any(|n| detail.contains(n)))
        .map(|(_, words)| *words)
}

/// A Sentinel deployment: where the sentinels are and how to reach the master.
#[derive(Debug, PartialEq, Eq)]
struct SentinelSpec {
    nodes: Vec<(String, u16)>,
    master_name: String,
    tls: bool,
    username: Option<String>,
    password: Option<String>,
    /// The sentinels' own password (`idempotency.sentinel_password`).
    sentinel_password: Option<String>,
    db: i64,
}

fn host_port(node: &str, default_port: u16) -> Result<(String, u16), StoreError> {
    let node = node.trim();
    let bad = || StoreError(format!("sentinel address `{node}` is not host:port"));
    let port = |p: &str| p.parse::<u16>().map_err(|_| bad());
    if let Some(rest) = node.strip_prefix('[') {
        let (host, after) = rest.split_once(']').ok_or_else(bad)?;
        return match after.strip_prefix(':') {
            Some(p) => Ok((host.to_string(), port(p)?)),
            None if after.is_empty() => Ok((host.to_string(), default_port)),
            None => Err(bad()),
        };
    }
    match node.split_once(':') {
        Some((h, p)) if !h.is_empty() => Ok((h.to_string(), port(p)?)),
        None if !node.is_empty() => Ok((node.to_string(), default_port)),
        _ => Err(bad()),
    }
}

fn percent_decode(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let escaped = (bytes[i] == b'%' && i + 2 < bytes.len())
            .then(|| std::str::from_utf8(&bytes[i + 1..i + 3]).ok())
            .flatten()
            .and_then(|h| u8::from_str_radix(h, 16).ok());
        if let Some(b) = escaped {
            out.push(b);
            i += 3;
            continue;
        }
        out.push(bytes[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// Splits `user:password@` into its parts (either may be empty).
fn credentials(auth: &str) -> (Option<String>, Option<String>) {
    let (user, password) = match auth.split_once(':') {
        Some((u, p)) => (u, Some(p)),
        None => (auth, None),
    };
    let some = |s: &str| (!s.is_empty()).then(|| percent_decode(s));
    (some(user), password.and_then(some))
}

const SENTINEL_PORT: u16 = 26379;

/// `redis+sentinel://[user:pw@]h1:p1,h2:p2/master[/db]` (or `rediss+sentinel://`),
/// or a plain URL with `sentinels` and `master_name` set; `None` when neither.
fn sentinel_spec(url: &str, options: &RedisOptions) -> Result<Option<SentinelSpec>, StoreError> {
    let (tls, rest) = if let Some(rest) = url.strip_prefix("redis+sentinel://") {
        (false, rest)
    } else if let Some(rest) = url.strip_prefix("rediss+sentinel://") {
        (true, rest)
    } else if !options.sentinels.is_empty() {
        let info = redis::IntoConnectionInfo::into_connection_info(url)
            .map_err(|e| StoreError(format!("invalid redis url: {}", e.category())))?;
        let tls = matches!(info.addr(), redis::ConnectionAddr::TcpTls { .. });
        let redis = info.redis_settings();
        let master_name = options.master_name.clone().ok_or_else(|| {
            StoreError("idempotency.sentinels needs idempotency.master_name".into())
        })?;
        return Ok(Some(SentinelSpec {
            nodes: options
                .sentinels
                .iter()
                .map(|n| host_port(n, SENTINEL_PORT))
                .collect::<Result<_, _>>()?,
            master_name,
            tls,
            username: redis.username().map(str::to_string),
            password: redis.password().map(str::to_string),
            sentinel_password: sentinel_password(options),
            db: redis.db(),
        }));
    } else {
        return Ok(None);
    };
    let (auth, rest) = match rest.rsplit_once('@') {
        Some((auth, rest)) => (Some(auth), rest),
        None => (None, rest),
    };
    let (hosts, path) = rest.split_once('/').unwrap_or((rest, ""));
    let mut path = path.split('/').filter(|p| !p.is_empty());
    let master_name = match path.next() {
        Some(name) => percent_decode(name),
        None => options.master_name.clone().ok_or_else(|| {
            StoreError(
                "a redis+sentinel:// URL names the master after the hosts \
                 (redis+sentinel://h1:26379,h2:26379/mymaster), or set idempotency.master_name"
                    .into(),
            )
        })?,
    };
    let db = match path.next() {
        Some(db) => db
            .parse::<i64>()
            .map_err(|_| StoreError(format!("sentinel url: database `{db}` is not a number")))?,
        None => 0,
    };
    let nodes: Vec<(String, u16)> = hosts
        .split(',')
        .filter(|h| !h.trim().is_empty())
        .map(|h| host_port(h, SENTINEL_PORT))
        .collect::<Result<_, _>>()?;
    if nodes.is_empty() {
        return Err(StoreError("sentinel url names no sentinel".into()));
    }
    let (username, password) = auth.map(credentials).unwrap_or((None, None));
    Ok(Some(SentinelSpec {
        nodes,
        master_name,
        tls,
        username,
        password,
        sentinel_password: sentinel_password(options),
        db,
    }))
}

fn sentinel_password(options: &RedisOptions) -> Option<String> {
    options
        .sentinel_password
        .as_ref()
        .map(|p| p.expose_secret().to_string())
}

fn sentinel_client(
    spec: SentinelSpec,
    certs: Option<TlsCertificates>,
) -> Result<SentinelClient, StoreError> {
    let addrs = spec.nodes.into_iter().map(|(host, port)| {
        if spec.tls {
            redis::ConnectionAddr::TcpTls {
                host,
                port,
                insecure: false,
                tls_params: None,
            }
        } else {
            redis::ConnectionAddr::Tcp(host, port)
        }
    });
    let mut builder =
        SentinelClientBuilder::new(addrs, spec.master_name, SentinelServerType::Master)
            .map_err(|e| StoreError(format!("invalid sentinel settings: {e}")))?
            .set_client_to_redis_db(spec.db);
    if let Some(user) = spec.username {
        builder = builder.set_client_to_redis_username(user);
    }
    if let Some(password) = spec.password {
        builder = builder.set_client_to_redis_password(password);
    }
    if let Some(password) = spec.sentinel_password {
        builder = builder.set_client_to_sentinel_password(password);
    }
    if spec.tls {
        builder = builder
            .set_client_to_redis_tls_mode(redis::TlsMode::Secure)
            .set_client_to_sentinel_tls_mode(redis::TlsMode::Secure);
        if let Some(certs) = certs {
            builder = builder
                .set_client_to_redis_certificates(certs.clone())
                .set_client_to_sentinel_certificates(certs);
        }
    }
    builder
        .build()
        .map_err(|e| store_error("sentinel settings", e))
}

/// Splits `redis+cluster://[auth@]h1:p1,h2:p2` (or `rediss+cluster://…`, or a
/// plain comma-separated list of URLs) into one URL per node.
fn cluster_nodes(url: &str) -> Option<Vec<String>> {
    let (scheme, rest) = if let Some(rest) = url.strip_prefix("redis+cluster://") {
        ("redis", rest)
    } else if let Some(rest) = url.strip_prefix("rediss+cluster://") {
        ("rediss", rest)
    } else if url.contains(',') {
        return Some(
            url.split(',')
                .map(|s| s.trim().to_string())
                .filter(|s| !s.is_empty())
                .collect(),
        );
    } else {
        return None;
    };
    let rest = rest.trim_end_matches('/');
    let (auth, hosts) = match rest.rsplit_once('@') {
        Some((auth, hosts)) => (format!("{auth}@"), hosts),
        None => (String::new(), rest),
    };
    Some(
        hosts
            .split(',')
            .map(str::trim)
            .filter(|h| !h.is_empty())
            .map(|h| format!("{scheme}://{auth}{h}"))
            .collect(),
    )
}

impl SentinelTarget {
    /// The master's connection while it was confirmed recently.
    fn current(&self) -> Option<MultiplexedConnection> {
        let slot = self.master.lock().ok()?;
        let master = slot.as_ref()?;
        (master.confirmed.elapsed() < SENTINEL_RECHECK).then(|| master.conn.clone())
    }

    /// The connection kept for `addr`, if that is where it goes (now confirmed).
    fn reuse(&self, addr: &str) -> Option<MultiplexedConnection> {
        let mut slot = self.master.lock().ok()?;
        let master = slot.as_mut()?;
        if master.addr != addr {
            return None;
        }
        master.confirmed = std::time::Instant::now();
        Some(master.conn.clone())
    }
}

impl RedisStore {
    /// Prepares the store; nothing is connected until first use, so the service
    /// starts (and reports not ready) while Redis is down.
    pub fn new(url: &SecretString, command_timeout: Duration) -> Result<Self, StoreError> {
        Self::with_options(url, &RedisOptions::new(command_timeout))
    }

    /// As [`RedisStore::new`], with TLS files and Sentinel from `options`; the
    /// certificate files are read here, once.
    pub fn with_options(url: &SecretString, options: &RedisOptions) -> Result<Self, StoreError> {
        let command_timeout = options.command_timeout;
        let url = url.expose_secret();
        let certs = options.certificates()?;
        let tls = url.starts_with("rediss");
        if certs.is_some() && !tls {
            return Err(StoreError(
                "idempotency.tls_ca_file / tls_cert_file / tls_key_file are set, but the Redis URL \
                 is not rediss:// (TLS): use rediss:// or drop the files"
                    .into(),
            ));
        }
        if url.contains("#insecure") {
            return Err(StoreError(
                "the Redis URL asks for #insecure (no certificate check); this service always \
                 checks the server's certificate and name: set idempotency.tls_ca_file instead"
                    .into(),
            ));
        }
        let target = if let Some(spec) = sentinel_spec(url, options)? {
            let client = sentinel_client(spec, certs)?;
            Target::Sentinel(Box::new(SentinelTarget {
                client: tokio::sync::Mutex::new(client),
                master: std::sync::Mutex::new(None),
            }))
        } else {
            match cluster_nodes(url) {
                Some(nodes) => {
                    let mut builder = redis::cluster::ClusterClient::builder(nodes)
                        .connection_timeout(command_timeout)
                        .response_timeout(command_timeout);
                    if let Some(certs) = certs {
                        builder = builder.certs(certs);
                    }
                    let client =
                        builder
                            .build()
                            .map_err(|e| match tls_in_words(&e.to_string()) {
                                Some(words) => StoreError(format!(
                                    "invalid redis cluster TLS settings: {words}"
                                )),
                                None => StoreError(format!(
                                    "invalid redis cluster url: {}",
                                    e.category()
                                )),
                            })?;
                    Target::Cluster(Box::new(client))
                }
                None => {
                    let client = match certs {
                        Some(certs) => redis::Client::build_with_tls(url, certs),
                        None => redis::Client::open(url),
                    };
                    Target::Single(Box::new(client.map_err(|e| {
                        match tls_in_words(&e.to_string()) {
                            Some(words) => {
                                StoreError(format!("invalid redis TLS settings: {words}"))
                            }
                            None => StoreError(format!("invalid redis url: {}", e.category())),
                        }
                    })?))
                }
            }
        };
        let wait_for_replicas = match (&target, options.wait_for_replicas) {
            (Target::Cluster(_), Some(n)) if n > 0 => {
                return Err(StoreError(
                    "idempotency.wait_for_replicas is not supported on Redis Cluster; leave it out"
                        .into(),
                ));
            }
            (Target::Sentinel(_), None) => 1,
            (_, n) => n.unwrap_or(0),
        };
        Ok(RedisStore {
            target,
            wait_for_replicas,
            tls,
            mutual_tls: options.tls_cert_file.is_some(),
            connection: OnceCell::new(),
            per_thread: false,
            id: NEXT_STORE_ID.fetch_add(1, std::sync::atomic::Ordering::Relaxed),
            command_timeout,
            replace_script: Script::new(REPLACE_IF_OWNER),
            delete_script: Script::new(DELETE_IF_OWNER),
        })
    }

    async fn connect(&self) -> Result<Connection, StoreError> {
        match &self.target {
            Target::Single(client) => {
                let config = redis::aio::ConnectionManagerConfig::new()
                    .set_connection_timeout(Some(self.command_timeout))
                    .set_response_timeout(Some(self.command_timeout))
                    .set_number_of_retries(2)
                    .set_max_delay(Duration::from_millis(500));
                // One plain attempt first: the manager retries a failed first
                // connection until the timeout, which would hide why it failed
                // (a TLS certificate problem is not worth retrying).
                let probe = redis::AsyncConnectionConfig::new()
                    .set_connection_timeout(Some(self.command_timeout))
                    .set_response_timeout(Some(self.command_timeout));
                drop(
                    client
                        .get_multiplexed_async_connection_with_config(&probe)
                        .await
                        .map_err(|e| store_error("connect", e))?,
                );
                client
                    .get_connection_manager_with_config(config)
                    .await
                    .map(Connection::Single)
                    .map_err(|e| store_error("connect", e))
            }
            Target::Cluster(client) => client
                .get_async_connection()
                .await
                .map(Connection::Cluster)
                .map_err(|e| store_error("cluster connect", e)),
            Target::Sentinel(target) => {
                let mut client = target.client.lock().await;
                if let Some(conn) = target.current() {
                    // Another request found the master while this one waited.
                    return Ok(Connection::Sentinel(conn));
                }
                let master = client
                    .async_get_client()
                    .await
                    .map_err(|e| store_error("sentinel: finding the master", e))?;
                let addr = master.get_connection_info().addr().to_string();
                if let Some(conn) = target.reuse(&addr) {
                    return Ok(Connection::Sentinel(conn));
                }
                let config = redis::AsyncConnectionConfig::new()
                    .set_connection_timeout(Some(self.command_timeout))
                    .set_response_timeout(Some(self.command_timeout));
                let conn = master
                    .get_multiplexed_async_connection_with_config(&config)
                    .await
                    .map_err(|e| store_error("sentinel: connecting to the master", e))?;
                if let Ok(mut slot) = target.master.lock() {
                    *slot = Some(Master {
                        conn: conn.clone(),
                        addr,
                        confirmed: std::time::Instant::now(),
                    });
                }
                Ok(Connection::Sentinel(conn))
            }
        }
    }

    /// A single Redis reached over one connection per thread, made on first
    /// use on that thread. The service's HTTP workers each run their own
    /// single-threaded runtime: a connection made there is driven there, so a
    /// command is written and its answer read without waking another thread
    /// (two cross-thread wake-ups per exchange with one shared connection).
    /// Only for stores used from runtimes that live as long as the store (the
    /// service's workers and its main runtime); Cluster and Sentinel keep one
    /// connection (they follow the topology from it).
    pub fn per_thread_connections(mut self) -> Self {
        self.per_thread = matches!(self.target, Target::Single(_));
        self
    }

    async fn thread_connection(&self) -> Result<Connection, StoreError> {
        let cell = THREAD_CONNECTIONS.with(|c| {
            let mut kept = c.borrow_mut();
            // A connection whose runtime ended is driven by nobody: dropped.
            kept.retain(|k| k.driven.load(std::sync::atomic::Ordering::Acquire));
            if let Some(k) = kept.iter().find(|k| k.store == self.id) {
                return k.conn.clone();
            }
            let driven = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(true));
            let guard = DrivenGuard(driven.clone());
            tokio::spawn(async move {
                let _guard = guard;
                std::future::pending::<()>().await
            });
            let conn = std::sync::Arc::new(OnceCell::new());
            kept.push(ThreadConnection {
                store: self.id,
                conn: conn.clone(),
                driven,
            });
            conn
        });
        // Each caller waits at most `command_timeout`, whoever connects.
        let timeout = self.command_timeout;
        tokio::time::timeout(timeout, cell.get_or_try_init(|| self.connect()))
            .await
            .map_err(|_| StoreError(format!("redis connect timed out after {timeout:?}")))?
            .cloned()
    }

    async fn connection(&self) -> Result<Connection, StoreError> {
        if self.per_thread {
            return self.thread_connection().await;
        }
        let timeout = self.command_timeout;
        if let Target::Sentinel(target) = &self.target {
            if let Some(conn) = target.current() {
                return Ok(Connection::Sentinel(conn));
            }
            return tokio::time::timeout(timeout, self.connect())
                .await
                .map_err(|_| StoreError(format!("redis connect timed out after {timeout:?}")))?;
        }
        let conn =
            tokio::time::timeout(timeout, self.connection.get_or_try_init(|| self.connect()))
                .await
                .map_err(|_| StoreError(format!("redis connect timed out after {timeout:?}")))??;
        Ok(conn.clone())
    }

    /// After a failed command on Sentinel, the next one asks the sentinels
    /// again: the master may have moved (a demoted master answers READONLY, or
    /// drops its clients).
    fn forget_master(&self) {
        if let Target::Sentinel(target) = &self.target
            && let Ok(mut slot) = target.master.lock()
        {
            *slot = None;
        }
    }

    pub(crate) async fn query<T: FromRedisValue>(
        &self,
        what: &str,
        cmd: &redis::Cmd,
    ) -> Result<T, StoreError> {
        let conn = self.connection().await?;
        let run = async move {
            match conn {
                Connection::Single(mut c) => cmd.query_async(&mut c).await,
                Connection::Cluster(mut c) => cmd.query_async(&mut c).await,
                Connection::Sentinel(mut c) => cmd.query_async(&mut c).await,
            }
        };
        self.finish(what, tokio::time::timeout(self.command_timeout, run).await)
    }

    /// A command's outcome as a store result; any failure on Sentinel makes the
    /// next command look for the master again.
    fn finish<T>(
        &self,
        what: &str,
        outcome: Result<redis::RedisResult<T>, tokio::time::error::Elapsed>,
    ) -> Result<T, StoreError> {
        let result = match outcome {
            Ok(Ok(value)) => return Ok(value),
            Err(_) => StoreError(format!(
                "redis {what} timed out after {:?}",
                self.command_timeout
            )),
            Ok(Err(e)) => store_error(what, e),
        };
        self.forget_master();
        Err(result)
    }

    async fn invoke<T: FromRedisValue>(
        &self,
        what: &str,
        script: &Script,
        key: &str,
        args: &[&[u8]],
    ) -> Result<T, StoreError> {
        self.invoke_keys(what, script, &[key], args).await
    }

    /// Runs `script` on `keys` (all in one hash slot on Cluster) with `args`.
    pub(crate) async fn invoke_keys<T: FromRedisValue>(
        &self,
        what: &str,
        script: &Script,
        keys: &[&str],
        args: &[&[u8]],
    ) -> Result<T, StoreError> {
        let conn = self.connection().await?;
        let mut invocation = script.prepare_invoke();
        for key in keys {
            invocation.key(*key);
        }
        for arg in args {
            invocation.arg(*arg);
        }
        let run = async move {
            match conn {
                Connection::Single(mut c) => invocation.invoke_async(&mut c).await,
                Connection::Cluster(mut c) => invocation.invoke_async(&mut c).await,
                Connection::Sentinel(mut c) => invocation.invoke_async(&mut c).await,
            }
        };
        self.finish(what, tokio::time::timeout(self.command_timeout, run).await)
    }

    /// How the store reaches Redis, for `check-config` (` over TLS, via Sentinel`).
    pub fn describe(&self) -> String {
        let mut out = String::new();
        if self.tls {
            out += if self.mutual_tls {
                " over mutual TLS"
            } else {
                " over TLS"
            };
        }
        match &self.target {
            Target::Single(_) => {}
            Target::Cluster(_) => out += " (Cluster)",
            Target::Sentinel(_) => out += " via Sentinel",
        }
        if self.wait_for_replicas > 0 {
            out += &format!(
                ", each claim waits for {} replica(s)",
                self.wait_for_replicas
            );
        }
        out
    }

    /// Waits until `wait_for_replicas` replicas have every write this
    /// connection made so far (ours included); an error when fewer do in time,
    /// so nothing is posted on a claim a failover could lose.
    async fn replicated(&self, what: &str) -> Result<(), StoreError> {
        let wanted = self.wait_for_replicas;
        if wanted == 0 {
            return Ok(());
        }
        let within = (self.command_timeout / 2).max(Duration::from_millis(1));
        let mut cmd = redis::cmd("WAIT");
        cmd.arg(wanted).arg(ttl_ms(within));
        let acked: i64 = self.query(what, &cmd).await?;
        if acked < i64::from(wanted) {
            self.forget_master();
            return Err(StoreError(format!(
                "redis {what}: the write reached {acked} of {wanted} replica(s) within {within:?} \
                 (a failover may be under way)"
            )));
        }
        Ok(())
    }

    /// Reads the settings that decide whether records can be lost.
    pub async fn safety_report(&self) -> Result<SafetyReport, StoreError> {
        async fn config_get(store: &RedisStore, name: &str) -> Option<String> {
            let mut cmd = redis::cmd("CONFIG");
            cmd.arg("GET").arg(name);
            let pairs: Vec<String> = store.query("config get", &cmd).await.ok()?;
            pairs.get(1).cloned()
        }
        self.ping().await?;
        Ok(SafetyReport {
            maxmemory_policy: config_get(self, "maxmemory-policy").await,
            appendonly: config_get(self, "appendonly").await,
        })
    }
}

fn ttl_ms(ttl: Duration) -> u64 {
    u64::try_from(ttl.as_millis()).unwrap_or(u64::MAX).max(1)
}

fn decode(bytes: &[u8]) -> Result<Record, StoreError> {
    Record::decode(bytes).map_err(StoreError)
}

impl StoreBackend for RedisStore {
    async fn claim(&self, key: &str, record: &Record, ttl: Duration) -> Result<Claim, StoreError> {
        let mut cmd = redis::cmd("SET");
        cmd.arg(key)
            .arg(record.encode())
            .arg("NX")
            .arg("PX")
            .arg(ttl_ms(ttl))
            .arg("GET");
        let previous: Option<Vec<u8>> = self.query("claim", &cmd).await?;
        match previous {
            None => match self.replicated("claim").await {
                Ok(()) => Ok(Claim::Claimed),
                Err(e) => {
                    // Nothing was posted on it: free the key for the retry
                    // (best effort; a lease that outlives us is taken over).
                    let _ = self.delete_if_owner(key, &record.owner).await;
                    Err(e)
                }
            },
            Some(bytes) => Ok(Claim::Existing(decode(&bytes)?)),
        }
    }

    async fn replace_if_owner(
        &self,
        key: &str,
        owner: &str,
        record: &Record,
        ttl: Duration,
    ) -> Result<bool, StoreError> {
        let ttl = ttl_ms(ttl).to_string();
        let value = record.encode();
        let replaced: i64 = self
            .invoke(
                "replace",
                &self.replace_script,
                key,
                &[owner.as_bytes(), &value, ttl.as_bytes()],
            )
            .await?;
        if replaced == 1 {
            self.replicated("replace").await?;
        }
        Ok(replaced == 1)
    }

    async fn delete_if_owner(&self, key: &str, owner: &str) -> Result<bool, StoreError> {
        let deleted: i64 = self
            .invoke("delete", &self.delete_script, key, &[owner.as_bytes()])
            .await?;
        Ok(deleted == 1)
    }

    async fn ping(&self) -> Result<(), StoreError> {
        let _: String = self.query("ping", &redis::cmd("PING")).await?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cluster_urls_become_node_lists() {
        assert_eq!(cluster_nodes("redis://h:1"), None);
        assert_eq!(
            cluster_nodes("redis+cluster://a:1,b:2").unwrap(),
            vec!["redis://a:1", "redis://b:2"]
        );
        assert_eq!(
            cluster_nodes("rediss+cluster://u:p@a:1,b:2/").unwrap(),
            vec!["rediss://u:p@a:1", "rediss://u:p@b:2"]
        );
        assert_eq!(
            cluster_nodes("redis://a:1, redis://b:2").unwrap(),
            vec!["redis://a:1", "redis://b:2"]
        );
    }

    #[test]
    fn sentinel_urls_name_the_sentinels_and_the_master() {
        let plain = RedisOptions::new(Duration::from_secs(1));
        assert_eq!(sentinel_spec("redis://h:1", &plain).unwrap(), None);
        let spec = sentinel_spec(
            "rediss+sentinel://:p%40ss@s1:26379,s2,[::1]:26380/mymaster/2",
            &plain,
        )
        .unwrap()
        .unwrap();
        assert_eq!(
            spec,
            SentinelSpec {
                nodes: vec![
                    ("s1".into(), 26379),
                    ("s2".into(), 26379),
                    ("::1".into(), 26380)
                ],
                master_name: "mymaster".into(),
                tls: true,
                username: None,
                password: Some("p@ss".into()),
                sentinel_password: None,
                db: 2,
            }
        );
        let err = sentinel_spec("redis+sentinel://s1:26379", &plain).unwrap_err();
        assert!(err.0.contains("names the master"), "{}", err.0);

        let mut keys = RedisOptions::new(Duration::from_secs(1));
        keys.sentinels = vec!["10.0.0.1:26379".into(), "10.0.0.2".into()];
        keys.master_name = Some("cb".into());
        let spec = sentinel_spec("redis://u:pw@ignored:6379/3", &keys)
            .unwrap()
            .unwrap();
        assert_eq!(spec.nodes[1], ("10.0.0.2".into(), 26379));
        assert_eq!(
            (spec.master_name.as_str(), spec.tls, spec.db),
            ("cb", false, 3)
        );
        assert_eq!(spec.username.as_deref(), Some("u"));
        assert_eq!(spec.password.as_deref(), Some("pw"));
        assert_eq!(spec.sentinel_password, None);
        // The sentinels' own password is separate from the master's.
        keys.sentinel_password = Some(SecretString::from("sentinel-pw"));
        let spec = sentinel_spec("redis://u:pw@ignored:6379/3", &keys)
            .unwrap()
            .unwrap();
        assert_eq!(spec.password.as_deref(), Some("pw"));
        assert_eq!(spec.sentinel_password.as_deref(), Some("sentinel-pw"));
        assert!(host_port("h:notaport", 1).is_err());
    }

    #[test]
    fn tls_failures_are_put_in_words() {
        let unknown = "invalid peer certificate: UnknownIssuer";
        assert!(tls_in_words(unknown).unwrap().contains("unknown CA"));
        let name = r#"invalid peer certificate: certificate not valid for name "10.0.0.1"; certificate is only valid for DnsName("redis")"#;
        assert!(tls_in_words(name).unwrap().contains("wrong name"));
        assert!(tls_in_words("Connection refused (os error 111)").is_none());
        let e = store_error("connect", unknown);
        assert!(e.0.starts_with("redis connect: TLS: "), "{}", e.0);
    }

    #[test]
    fn unsafe_settings_are_reported() {
        let safe = SafetyReport {
            maxmemory_policy: Some("noeviction".into()),
            appendonly: Some("yes".into()),
        };
        assert!(safe.problems().is_empty());
        let unsafe_ = SafetyReport {
            maxmemory_policy: Some("allkeys-lru".into()),
            appendonly: Some("no".into()),
        };
        assert_eq!(unsafe_.problems().len(), 2);
    }
}
