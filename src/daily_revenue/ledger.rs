//! Where the day's revenue parts wait for their summary: in process memory or
//! in Redis next to the journal.
//!
//! A *bucket* is one summary to be: `<business date>|<16 hex digits>` of the
//! house account and revenue center (so a bucket id is safe in a key name and
//! in an idempotency key). Per tenant:
//!
//! * `where:<date>`: receipt key → bucket, for the receipts of that business
//!   date (a receipt is added once, whichever way it comes back);
//! * `parts:<bucket>`: receipt key → the part (JSON of its [`Charge`]);
//! * `sealed:<bucket>`: set once its summary is being posted; a receipt of a
//!   sealed bucket goes into the bucket of the current business date (late);
//! * `days:<date>`: the buckets of a date (for the report);
//! * `open`: buckets not yet handed to the journal.
//!
//! In Redis every key carries the tenant's hash tag, so one script adds a part
//! atomically against the seal, on Redis Cluster too. Everything but `open`
//! expires after the journal's retention.

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
use std::sync::Mutex;
use std::time::Duration;

use chrono::NaiveDate;
use redis::Script;

use crate::domain::Charge;
use crate::idempotency::StoreError;
use crate::idempotency::redis::RedisStore;

/// KEYS: where(date), sealed(bucket), open, parts(bucket), days(date),
/// parts(late), days(late date), sealed(late). ARGV: receipt key, bucket, late
/// bucket, part JSON, ttl ms. Returns the bucket the part is in.
const ADD: &str = r#"
local known = redis.call('HGET', KEYS[1], ARGV[1])
if known then return known end
local bucket, parts, days = ARGV[2], KEYS[4], KEYS[5]
if redis.call('EXISTS', KEYS[2]) == 1 then
  if redis.call('EXISTS', KEYS[8]) == 1 then
    return redis.error_reply('the current business date is already summarized (clock skew?)')
  end
  bucket, parts, days = ARGV[3], KEYS[6], KEYS[7]
end
redis.call('HSET', parts, ARGV[1], ARGV[4])
redis.call('PEXPIRE', parts, ARGV[5])
redis.call('HSET', KEYS[1], ARGV[1], bucket)
redis.call('PEXPIRE', KEYS[1], ARGV[5])
redis.call('SADD', days, bucket)
redis.call('PEXPIRE', days, ARGV[5])
redis.call('SADD', KEYS[3], bucket)
return bucket
"#;

/// One summary to be.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Bucket(String);

impl Bucket {
    pub fn new(date: NaiveDate, account: &str, revenue_center: &str) -> Bucket {
        use sha2::{Digest, Sha256};
        let mut hasher = Sha256::new();
        hasher.update(account.as_bytes());
        hasher.update([0u8]);
        hasher.update(revenue_center.as_bytes());
        let hex = hex::encode(hasher.finalize());
        Bucket(format!("{date}|{}", &hex[..16]))
    }

    pub fn parse(raw: &str) -> Option<Bucket> {
        let (date, hash) = raw.split_once('|')?;
        date.parse::<NaiveDate>().ok()?;
        (hash.len() == 16 && hash.bytes().all(|b| b.is_ascii_hexdigit()))
            .then(|| Bucket(raw.to_string()))
    }

    pub fn date(&self) -> NaiveDate {
        self.0
            .split_once('|')
            .and_then(|(d, _)| d.parse().ok())
            .unwrap_or_default()
    }

    /// The same account and revenue center on another date.
    pub fn on(&self, date: NaiveDate) -> Bucket {
        let hash = self.0.split_once('|').map_or("", |(_, h)| h);
        Bucket(format!("{date}|{hash}"))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// The configured backend, chosen with the journal's.
pub enum Ledger {
    Memory(MemoryLedger),
    Redis(Box<RedisLedger>),
}

impl Ledger {
    /// Adds a receipt's part to `bucket`, or to `late` when `bucket` is
    /// already summarized; a receipt already added stays where it is.
    pub async fn add(
        &self,
        tenant: &str,
        key: &str,
        bucket: &Bucket,
        late: &Bucket,
        part: &Charge,
    ) -> Result<Bucket, StoreError> {
        let json = serde_json::to_vec(part).map_err(|e| StoreError(e.to_string()))?;
        match self {
            Ledger::Memory(m) => m.add(tenant, key, bucket, late, json),
            Ledger::Redis(r) => r.add(tenant, key, bucket, late, &json).await,
        }
    }

    /// Buckets not yet handed to the journal.
    pub async fn open(&self, tenant: &str) -> Result<Vec<Bucket>, StoreError> {
        match self {
            Ledger::Memory(m) => Ok(m.with(tenant, |t| t.open.iter().cloned().collect())),
            Ledger::Redis(r) => r.open(tenant).await,
        }
    }

    /// From now on, receipts of `bucket` go to a later one.
    pub async fn seal(&self, tenant: &str, bucket: &Bucket) -> Result<(), StoreError> {
        match self {
            Ledger::Memory(m) => {
                m.with(tenant, |t| t.sealed.insert(bucket.clone()));
                Ok(())
            }
            Ledger::Redis(r) => r.seal(tenant, bucket).await,
        }
    }

    /// The parts of a bucket, by receipt key.
    pub async fn parts(
        &self,
        tenant: &str,
        bucket: &Bucket,
    ) -> Result<BTreeMap<String, Charge>, StoreError> {
        let raw: Vec<(String, Vec<u8>)> = match self {
            Ledger::Memory(m) => m.with(tenant, |t| {
                t.parts
                    .get(bucket)
                    .map(|p| p.iter().map(|(k, v)| (k.clone(), v.clone())).collect())
                    .unwrap_or_default()
            }),
            Ledger::Redis(r) => r.parts(tenant, bucket).await?,
        };
        raw.into_iter()
            .map(|(key, json)| {
                serde_json::from_slice::<Charge>(&json)
                    .map(|c| (key, c))
                    .map_err(|e| StoreError(format!("unreadable revenue part: {e}")))
            })
            .collect()
    }

    /// The bucket's summary is in the journal: the worker and operators own it.
    pub async fn handed_off(&self, tenant: &str, bucket: &Bucket) -> Result<(), StoreError> {
        match self {
            Ledger::Memory(m) => {
                m.with(tenant, |t| t.open.remove(bucket));
                Ok(())
            }
            Ledger::Redis(r) => r.handed_off(tenant, bucket).await,
        }
    }

    /// The buckets of a business date (late receipts of earlier dates included).
    pub async fn buckets_of(
        &self,
        tenant: &str,
        date: NaiveDate,
    ) -> Result<Vec<Bucket>, StoreError> {
        match self {
            Ledger::Memory(m) => Ok(m.with(tenant, |t| {
                t.days
                    .get(&date)
                    .map(|b| b.iter().cloned().collect())
                    .unwrap_or_default()
            })),
            Ledger::Redis(r) => r.buckets_of(tenant, date).await,
        }
    }

    /// Where each receipt of a business date went.
    pub async fn receipts_of(
        &self,
        tenant: &str,
        date: NaiveDate,
    ) -> Result<Vec<(String, Bucket)>, StoreError> {
        match self {
            Ledger::Memory(m) => Ok(m.with(tenant, |t| {
                t.places
                    .get(&date)
                    .map(|p| p.iter().map(|(k, b)| (k.clone(), b.clone())).collect())
                    .unwrap_or_default()
            })),
            Ledger::Redis(r) => r.receipts_of(tenant, date).await,
        }
    }

    pub async fn is_sealed(&self, tenant: &str, bucket: &Bucket) -> Result<bool, StoreError> {
        match self {
            Ledger::Memory(m) => Ok(m.with(tenant, |t| t.sealed.contains(bucket))),
            Ledger::Redis(r) => r.is_sealed(tenant, bucket).await,
        }
    }
}

#[derive(Default)]
struct TenantLedger {
    places: HashMap<NaiveDate, BTreeMap<String, Bucket>>,
    parts: HashMap<Bucket, BTreeMap<String, Vec<u8>>>,
    sealed: HashSet<Bucket>,
    days: HashMap<NaiveDate, BTreeSet<Bucket>>,
    open: BTreeSet<Bucket>,
}

/// The ledger of one process (the embedded default and tests).
#[derive(Default)]
pub struct MemoryLedger {
    tenants: Mutex<HashMap<String, TenantLedger>>,
}

impl MemoryLedger {
    fn with<T>(&self, tenant: &str, f: impl FnOnce(&mut TenantLedger) -> T) -> T {
        // Every change is a few inserts: a poisoned lock is still whole.
        let mut all = self.tenants.lock().unwrap_or_else(|p| p.into_inner());
        f(all.entry(tenant.to_string()).or_default())
    }

    fn add(
        &self,
        tenant: &str,
        key: &str,
        bucket: &Bucket,
        late: &Bucket,
        json: Vec<u8>,
    ) -> Result<Bucket, StoreError> {
        self.with(tenant, |t| {
            let date = bucket.date();
            if let Some(known) = t.places.get(&date).and_then(|p| p.get(key)) {
                return Ok(known.clone());
            }
            let target = if t.sealed.contains(bucket) {
                if t.sealed.contains(late) {
                    return Err(StoreError(
                        "the current business date is already summarized (clock skew?)".into(),
                    ));
                }
                late.clone()
            } else {
                bucket.clone()
            };
            t.parts
                .entry(target.clone())
                .or_default()
                .insert(key.to_string(), json);
            t.places
                .entry(date)
                .or_default()
                .insert(key.to_string(), target.clone());
            t.days
                .entry(target.date())
                .or_default()
                .insert(target.clone());
            t.open.insert(target.clone());
            Ok(target)
        })
    }
}

/// The ledger in Redis.
pub struct RedisLedger {
    store: std::sync::Arc<RedisStore>,
    retention: Duration,
    add_script: Script,
}

fn prefix(tenant: &str) -> String {
    format!("chargebridge:daily:{{{tenant}}}:")
}

impl RedisLedger {
    /// The ledger on an existing store's connection (the service's own).
    pub fn on(store: std::sync::Arc<RedisStore>, retention: Duration) -> Self {
        RedisLedger {
            store,
            retention,
            add_script: Script::new(ADD),
        }
    }

    fn ttl_ms(&self) -> String {
        u64::try_from(self.retention.as_millis())
            .unwrap_or(u64::MAX)
            .max(1)
            .to_string()
    }

    async fn add(
        &self,
        tenant: &str,
        key: &str,
        bucket: &Bucket,
        late: &Bucket,
        json: &[u8],
    ) -> Result<Bucket, StoreError> {
        let p = prefix(tenant);
        let keys = [
            format!("{p}where:{}", bucket.date()),
            format!("{p}sealed:{}", bucket.as_str()),
            format!("{p}open"),
            format!("{p}parts:{}", bucket.as_str()),
            format!("{p}days:{}", bucket.date()),
            format!("{p}parts:{}", late.as_str()),
            format!("{p}days:{}", late.date()),
            format!("{p}sealed:{}", late.as_str()),
        ];
        let keys: Vec<&str> = keys.iter().map(String::as_str).collect();
        let ttl = self.ttl_ms();
        let placed: String = self
            .store
            .invoke_keys(
                "revenue add",
                &self.add_script,
                &keys,
                &[
                    key.as_bytes(),
                    bucket.as_str().as_bytes(),
                    late.as_str().as_bytes(),
                    json,
                    ttl.as_bytes(),
                ],
            )
            .await?;
        Bucket::parse(&placed).ok_or_else(|| StoreError(format!("unreadable bucket `{placed}`")))
    }

    async fn open(&self, tenant: &str) -> Result<Vec<Bucket>, StoreError> {
        let members: Vec<String> = self
            .store
            .query(
                "revenue open",
                redis::cmd("SMEMBERS").arg(format!("{}open", prefix(tenant))),
            )
            .await?;
        Ok(members.iter().filter_map(|m| Bucket::parse(m)).collect())
    }

    async fn seal(&self, tenant: &str, bucket: &Bucket) -> Result<(), StoreError> {
        let _: redis::Value = self
            .store
            .query(
                "revenue seal",
                redis::cmd("SET")
                    .arg(format!("{}sealed:{}", prefix(tenant), bucket.as_str()))
                    .arg(1)
                    .arg("PX")
                    .arg(self.ttl_ms()),
            )
            .await?;
        Ok(())
    }

    async fn is_sealed(&self, tenant: &str, bucket: &Bucket) -> Result<bool, StoreError> {
        self.store
            .query(
                "revenue sealed",
                redis::cmd("EXISTS").arg(format!("{}sealed:{}", prefix(tenant), bucket.as_str())),
            )
            .await
    }

    async fn parts(
        &self,
        tenant: &str,
        bucket: &Bucket,
    ) -> Result<Vec<(String, Vec<u8>)>, StoreError> {
        self.store
            .query(
                "revenue parts",
                redis::cmd("HGETALL").arg(format!("{}parts:{}", prefix(tenant), bucket.as_str())),
            )
            .await
    }

    async fn handed_off(&self, tenant: &str, bucket: &Bucket) -> Result<(), StoreError> {
        let _: redis::Value = self
            .store
            .query(
                "revenue handed off",
                redis::cmd("SREM")
                    .arg(format!("{}open", prefix(tenant)))
                    .arg(bucket.as_str()),
            )
            .await?;
        Ok(())
    }

    async fn buckets_of(&self, tenant: &str, date: NaiveDate) -> Result<Vec<Bucket>, StoreError> {
        let members: Vec<String> = self
            .store
            .query(
                "revenue days",
                redis::cmd("SMEMBERS").arg(format!("{}days:{date}", prefix(tenant))),
            )
            .await?;
        let mut buckets: Vec<Bucket> = members.iter().filter_map(|m| Bucket::parse(m)).collect();
        buckets.sort();
        Ok(buckets)
    }

    async fn receipts_of(
        &self,
        tenant: &str,
        date: NaiveDate,
    ) -> Result<Vec<(String, Bucket)>, StoreError> {
        let places: Vec<(String, String)> = self
            .store
            .query(
                "revenue where",
                redis::cmd("HGETALL").arg(format!("{}where:{date}", prefix(tenant))),
            )
            .await?;
        Ok(places
            .into_iter()
            .filter_map(|(k, b)| Bucket::parse(&b).map(|b| (k, b)))
            .collect())
    }
}
