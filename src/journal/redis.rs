//! The journal in Redis, next to the idempotency records.
//!
//! Every key of a tenant carries the hash tag `{<tenant id>}`, so an entry, its
//! lease and its indexes live in one slot and change together in one script,
//! on a single node or on Redis Cluster:
//!
//! * `chargebridge:journal:{t}:e:<key>`: the entry (JSON), expiring `retention`
//!   after its last change;
//! * `chargebridge:journal:{t}:lease:<key>`: the worker's lease (owner token);
//! * `chargebridge:journal:{t}:time`: every entry by creation time;
//! * `chargebridge:journal:{t}:state:<state>`: the entries in each state, by
//!   creation time;
//! * `chargebridge:journal:{t}:due`: the entries the worker must look at, by
//!   when.
//!
//! * `chargebridge:journal:{t}:s:<key>`: the index the entry is in, so a write
//!   moves it between two indexes instead of touching all of them.
//!
//! Index members older than `retention` are trimmed by the worker's census
//! (every few seconds), not on the request path.

use std::sync::Arc;
use std::time::Duration;

use redis::Script;
use secrecy::SecretString;

use super::memory::{cursor_of, parse_cursor};
use super::{JournalBackend, JournalEntry, JournalState, Page, Query};
use crate::idempotency::StoreError;
use crate::idempotency::redis::{RedisOptions, RedisStore};

/// KEYS: entry, lease, time, due, state (the entry's index position), then one
/// index per state (in `JournalState::ALL` order). ARGV: entry JSON, member,
/// state position (1-based), created ms, next attempt ms or "", ttl ms, fence
/// owner or "", "1" to write only a new entry (an existing one is returned
/// instead). Touches only the indexes that change: a few commands per write.
const PUT: &str = r#"
if ARGV[8] == '1' then
  local existing = redis.call('GET', KEYS[1])
  if existing then return existing end
end
if ARGV[7] ~= '' and redis.call('GET', KEYS[2]) ~= ARGV[7] then return 0 end
local old = redis.call('GET', KEYS[5])
if old ~= ARGV[3] then
  if old then redis.call('ZREM', KEYS[5 + tonumber(old)], ARGV[2]) end
  redis.call('ZADD', KEYS[5 + tonumber(ARGV[3])], ARGV[4], ARGV[2])
end
if not old then redis.call('ZADD', KEYS[3], ARGV[4], ARGV[2]) end
if ARGV[5] ~= '' then
  redis.call('ZADD', KEYS[4], ARGV[5], ARGV[2])
else
  redis.call('ZREM', KEYS[4], ARGV[2])
end
redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[6])
redis.call('SET', KEYS[5], ARGV[3], 'PX', ARGV[6])
return 1
"#;

/// KEYS: lease. ARGV: owner, ttl ms.
const LEASE: &str = r#"
local holder = redis.call('GET', KEYS[1])
if holder and holder ~= ARGV[1] then return 0 end
redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2])
return 1
"#;

/// KEYS: lease. ARGV: owner.
const RELEASE: &str = r#"
if redis.call('GET', KEYS[1]) == ARGV[1] then redis.call('DEL', KEYS[1]) end
return 1
"#;

pub struct RedisJournal {
    /// Shared with the idempotency records in the service: the answer and the
    /// entry written together go out on the same connection.
    store: Arc<RedisStore>,
    retention: Duration,
    put_script: Script,
    lease_script: Script,
    release_script: Script,
    /// Queued entries also kept on local disk (`journal.spool_dir`).
    pub(super) spool: Option<super::spool::Spool>,
}

fn prefix(tenant: &str) -> String {
    format!("chargebridge:journal:{{{tenant}}}:")
}

fn ms(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX).max(1)
}

impl RedisJournal {
    pub fn new(
        url: &SecretString,
        command_timeout: Duration,
        retention: Duration,
    ) -> Result<Self, StoreError> {
        Self::with_options(url, &RedisOptions::new(command_timeout), retention)
    }

    /// As [`RedisJournal::new`], with the TLS files and Sentinel of `options`.
    pub fn with_options(
        url: &SecretString,
        options: &RedisOptions,
        retention: Duration,
    ) -> Result<Self, StoreError> {
        Ok(Self::on(
            Arc::new(RedisStore::with_options(url, options)?),
            retention,
        ))
    }

    /// The journal on an existing store's connection (the service's own).
    pub fn on(store: Arc<RedisStore>, retention: Duration) -> Self {
        RedisJournal {
            store,
            retention,
            put_script: Script::new(PUT),
            lease_script: Script::new(LEASE),
            release_script: Script::new(RELEASE),
            spool: None,
        }
    }

    /// Keeps every queued entry in `spool` too, until the journal settles it.
    pub fn with_spool(mut self, spool: super::spool::Spool) -> Self {
        self.spool = Some(spool);
        self
    }

    fn state_keys(tenant: &str) -> Vec<String> {
        let p = prefix(tenant);
        JournalState::ALL
            .iter()
            .map(|s| format!("{p}state:{}", s.as_str()))
            .collect()
    }

    async fn entries(
        &self,
        tenant: &str,
        keys: &[String],
    ) -> Result<Vec<JournalEntry>, StoreError> {
        if keys.is_empty() {
            return Ok(Vec::new());
        }
        let p = prefix(tenant);
        let mut cmd = redis::cmd("MGET");
        for k in keys {
            cmd.arg(format!("{p}e:{k}"));
        }
        let values: Vec<Option<Vec<u8>>> = self.store.query("journal mget", &cmd).await?;
        values
            .into_iter()
            .flatten()
            .map(|v| JournalEntry::decode(&v))
            .collect()
    }
}

impl RedisJournal {
    async fn write(
        &self,
        entry: &JournalEntry,
        fence: Option<&str>,
        only_new: bool,
    ) -> Result<redis::Value, StoreError> {
        let p = prefix(&entry.tenant);
        let mut keys = vec![
            format!("{p}e:{}", entry.key),
            format!("{p}lease:{}", entry.key),
            format!("{p}time"),
            format!("{p}due"),
            format!("{p}s:{}", entry.key),
        ];
        keys.extend(Self::state_keys(&entry.tenant));
        let keys: Vec<&str> = keys.iter().map(String::as_str).collect();
        let position = (entry.state.index() + 1).to_string();
        let created = entry.created_ms.to_string();
        let next = entry
            .next_attempt_ms
            .map(|n| n.to_string())
            .unwrap_or_default();
        let ttl = ms(self.retention).to_string();
        let json = entry.encode();
        self.store
            .invoke_keys(
                "journal put",
                &self.put_script,
                &keys,
                &[
                    &json,
                    entry.key.as_bytes(),
                    position.as_bytes(),
                    created.as_bytes(),
                    next.as_bytes(),
                    ttl.as_bytes(),
                    fence.unwrap_or("").as_bytes(),
                    if only_new { b"1" } else { b"0" },
                ],
            )
            .await
    }
}

impl JournalBackend for RedisJournal {
    async fn put(&self, entry: &JournalEntry, fence: Option<&str>) -> Result<bool, StoreError> {
        Ok(matches!(
            self.write(entry, fence, false).await?,
            redis::Value::Int(1)
        ))
    }

    async fn create(&self, entry: &JournalEntry) -> Result<Option<JournalEntry>, StoreError> {
        match self.write(entry, None, true).await? {
            redis::Value::BulkString(existing) => JournalEntry::decode(&existing).map(Some),
            _ => Ok(None),
        }
    }

    async fn get(&self, tenant: &str, key: &str) -> Result<Option<JournalEntry>, StoreError> {
        let mut cmd = redis::cmd("GET");
        cmd.arg(format!("{}e:{key}", prefix(tenant)));
        let value: Option<Vec<u8>> = self.store.query("journal get", &cmd).await?;
        value.map(|v| JournalEntry::decode(&v)).transpose()
    }

    async fn due(
        &self,
        tenant: &str,
        now_ms: u64,
        limit: usize,
    ) -> Result<Vec<String>, StoreError> {
        let mut cmd = redis::cmd("ZRANGE");
        cmd.arg(format!("{}due", prefix(tenant)))
            .arg("-inf")
            .arg(now_ms)
            .arg("BYSCORE")
            .arg("LIMIT")
            .arg(0)
            .arg(limit);
        self.store.query("journal due", &cmd).await
    }

    async fn lease(
        &self,
        tenant: &str,
        key: &str,
        owner: &str,
        ttl: Duration,
    ) -> Result<bool, StoreError> {
        let lease = format!("{}lease:{key}", prefix(tenant));
        let ttl = ms(ttl).to_string();
        let taken: i64 = self
            .store
            .invoke_keys(
                "journal lease",
                &self.lease_script,
                &[&lease],
                &[owner.as_bytes(), ttl.as_bytes()],
            )
            .await?;
        Ok(taken == 1)
    }

    async fn release(&self, tenant: &str, key: &str, owner: &str) -> Result<(), StoreError> {
        let lease = format!("{}lease:{key}", prefix(tenant));
        let _: i64 = self
            .store
            .invoke_keys(
                "journal release",
                &self.release_script,
                &[&lease],
                &[owner.as_bytes()],
            )
            .await?;
        Ok(())
    }

    async fn list(&self, tenant: &str, query: &Query) -> Result<Page, StoreError> {
        let p = prefix(tenant);
        let index = match query.state {
            Some(s) => format!("{p}state:{}", s.as_str()),
            None => format!("{p}time"),
        };
        let after = query.cursor.as_deref().and_then(parse_cursor);
        let mut max = query
            .until_ms
            .map_or("+inf".to_string(), |u| format!("({u}"));
        if let Some((created, _)) = &after {
            max = created.to_string();
        }
        let min = query.since_ms.map_or("-inf".to_string(), |s| s.to_string());
        let limit = query.limit.max(1);
        // A few more than a page: members sharing the cursor's millisecond that
        // were already shown are skipped below.
        let mut cmd = redis::cmd("ZRANGE");
        cmd.arg(&index)
            .arg(&max)
            .arg(&min)
            .arg("BYSCORE")
            .arg("REV")
            .arg("LIMIT")
            .arg(0)
            .arg(limit + 64)
            .arg("WITHSCORES");
        let scored: Vec<(String, u64)> = self.store.query("journal list", &cmd).await?;
        let mut members: Vec<(u64, String)> = scored
            .into_iter()
            .map(|(k, s)| (s, k))
            .filter(|(s, k)| after.as_ref().is_none_or(|(c, ck)| (*s, k) < (*c, ck)))
            .collect();
        members.sort_by(|a, b| b.cmp(a));
        let more = members.len() > limit;
        members.truncate(limit);
        let keys: Vec<String> = members.iter().map(|(_, k)| k.clone()).collect();
        let mut entries = self.entries(tenant, &keys).await?;
        entries.sort_by(|a, b| (b.created_ms, &b.key).cmp(&(a.created_ms, &a.key)));
        let next_cursor = if more {
            members.last().map(|(s, k)| cursor_of(*s, k))
        } else {
            None
        };
        Ok(Page {
            entries,
            next_cursor,
        })
    }

    async fn trim(&self, tenant: &str, before_ms: u64) -> Result<(), StoreError> {
        let p = prefix(tenant);
        let mut keys = vec![format!("{p}time"), format!("{p}due")];
        keys.extend(Self::state_keys(tenant));
        let before = format!("({before_ms}");
        for key in keys {
            let mut cmd = redis::cmd("ZREMRANGEBYSCORE");
            cmd.arg(&key).arg("-inf").arg(&before);
            let _: i64 = self.store.query("journal trim", &cmd).await?;
        }
        Ok(())
    }

    async fn census(
        &self,
        tenant: &str,
    ) -> Result<Vec<(JournalState, u64, Option<u64>)>, StoreError> {
        let mut out = Vec::with_capacity(JournalState::ALL.len());
        for (state, key) in JournalState::ALL.iter().zip(Self::state_keys(tenant)) {
            let count: u64 = self
                .store
                .query("journal census", redis::cmd("ZCARD").arg(&key))
                .await?;
            let mut first = redis::cmd("ZRANGE");
            first.arg(&key).arg(0).arg(0).arg("WITHSCORES");
            let oldest: Vec<(String, u64)> = self.store.query("journal census", &first).await?;
            out.push((*state, count, oldest.first().map(|(_, s)| *s)));
        }
        Ok(out)
    }
}
