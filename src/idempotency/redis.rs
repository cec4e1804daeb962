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

use redis::aio::ConnectionManager;
use redis::cluster_async::ClusterConnection;
use redis::{FromRedisValue, Script};
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

#[derive(Clone)]
enum Connection {
    Single(ConnectionManager),
    Cluster(ClusterConnection),
}

enum Target {
    Single(Box<redis::Client>),
    Cluster(Box<redis::cluster::ClusterClient>),
}

pub struct RedisStore {
    target: Target,
    connection: OnceCell<Connection>,
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
                "appendonly is off: records are lost when Redis restarts; enable AOF persistence"
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
    StoreError(format!("redis {context}: {e}"))
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

impl RedisStore {
    /// Prepares the store; nothing is connected until first use, so the service
    /// starts (and reports not ready) while Redis is down.
    pub fn new(url: &SecretString, command_timeout: Duration) -> Result<Self, StoreError> {
        let url = url.expose_secret();
        let target = match cluster_nodes(url) {
            Some(nodes) => {
                let client = redis::cluster::ClusterClient::builder(nodes)
                    .connection_timeout(command_timeout)
                    .response_timeout(command_timeout)
                    .build()
                    .map_err(|e| {
                        StoreError(format!("invalid redis cluster url: {}", e.category()))
                    })?;
                Target::Cluster(Box::new(client))
            }
            None => {
                Target::Single(Box::new(redis::Client::open(url).map_err(|e| {
                    StoreError(format!("invalid redis url: {}", e.category()))
                })?))
            }
        };
        Ok(RedisStore {
            target,
            connection: OnceCell::new(),
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
        }
    }

    async fn connection(&self) -> Result<Connection, StoreError> {
        let timeout = self.command_timeout;
        let conn =
            tokio::time::timeout(timeout, self.connection.get_or_try_init(|| self.connect()))
                .await
                .map_err(|_| StoreError(format!("redis connect timed out after {timeout:?}")))??;
        Ok(conn.clone())
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
            }
        };
        tokio::time::timeout(self.command_timeout, run)
            .await
            .map_err(|_| {
                StoreError(format!(
                    "redis {what} timed out after {:?}",
                    self.command_timeout
                ))
            })?
            .map_err(|e| store_error(what, e))
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
            }
        };
        tokio::time::timeout(self.command_timeout, run)
            .await
            .map_err(|_| {
                StoreError(format!(
                    "redis {what} timed out after {:?}",
                    self.command_timeout
                ))
            })?
            .map_err(|e| store_error(what, e))
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
            None => Ok(Claim::Claimed),
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
