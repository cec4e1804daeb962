//! The store trait: the few atomic operations the idempotency semantics need.
//! The semantics themselves are written once, in `mod.rs`, over this trait.

use std::time::Duration;

use super::Record;
use super::memory::MemoryStore;
use super::redis::RedisStore;

#[derive(Debug, Clone, thiserror::Error)]
#[error("{0}")]
pub struct StoreError(pub String);

/// Result of a claim: the key was free and is now ours, or someone's record.
#[derive(Debug)]
pub enum Claim {
    Claimed,
    Existing(Record),
}

/// Atomic operations on one key each (so Redis Cluster works).
pub trait StoreBackend: Send + Sync {
    /// Sets `record` with `ttl` if the key is absent, else returns what is there.
    fn claim(
        &self,
        key: &str,
        record: &Record,
        ttl: Duration,
    ) -> impl std::future::Future<Output = Result<Claim, StoreError>> + Send;

    /// Replaces the record (and TTL) only if the current record's owner is `owner`.
    fn replace_if_owner(
        &self,
        key: &str,
        owner: &str,
        record: &Record,
        ttl: Duration,
    ) -> impl std::future::Future<Output = Result<bool, StoreError>> + Send;

    /// Deletes the key only if the current record's owner is `owner`.
    fn delete_if_owner(
        &self,
        key: &str,
        owner: &str,
    ) -> impl std::future::Future<Output = Result<bool, StoreError>> + Send;

    /// Whether the store answers.
    fn ping(&self) -> impl std::future::Future<Output = Result<(), StoreError>> + Send;
}

/// The configured backend, chosen once at start-up (static dispatch).
pub enum Store {
    Memory(MemoryStore),
    Redis(std::sync::Arc<RedisStore>),
}

impl Store {
    pub fn kind(&self) -> &'static str {
        match self {
            Store::Memory(_) => "memory",
            Store::Redis(_) => "redis",
        }
    }

    pub async fn claim(
        &self,
        key: &str,
        record: &Record,
        ttl: Duration,
    ) -> Result<Claim, StoreError> {
        let started = std::time::Instant::now();
        let result = match self {
            Store::Memory(s) => s.claim(key, record, ttl).await,
            Store::Redis(s) => s.claim(key, record, ttl).await,
        };
        crate::metrics::store_call("claim", started.elapsed(), result.is_err());
        result
    }

    pub async fn replace_if_owner(
        &self,
        key: &str,
        owner: &str,
        record: &Record,
        ttl: Duration,
    ) -> Result<bool, StoreError> {
        let started = std::time::Instant::now();
        let result = match self {
            Store::Memory(s) => s.replace_if_owner(key, owner, record, ttl).await,
            Store::Redis(s) => s.replace_if_owner(key, owner, record, ttl).await,
        };
        crate::metrics::store_call("replace_if_owner", started.elapsed(), result.is_err());
        result
    }

    pub async fn delete_if_owner(&self, key: &str, owner: &str) -> Result<bool, StoreError> {
        let started = std::time::Instant::now();
        let result = match self {
            Store::Memory(s) => s.delete_if_owner(key, owner).await,
            Store::Redis(s) => s.delete_if_owner(key, owner).await,
        };
        crate::metrics::store_call("delete_if_owner", started.elapsed(), result.is_err());
        result
    }

    pub async fn ping(&self) -> Result<(), StoreError> {
        let started = std::time::Instant::now();
        let result = match self {
            Store::Memory(s) => s.ping().await,
            Store::Redis(s) => s.ping().await,
        };
        crate::metrics::store_call("ping", started.elapsed(), result.is_err());
        result
    }
}
