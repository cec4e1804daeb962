//! A local copy of every charge the POS was told is `queued`, kept on this
//! replica's disk until the journal in Redis has settled it.
//!
//! Store and forward promises the POS that chargebridge posts the charge; the
//! promise lives in the Redis journal. A Redis that loses recent writes (a
//! restart without persistence, `FLUSHALL`, a failover that drops the last
//! writes) would take those charges with it, and nothing else knows of them:
//! Lightspeed re-sends nothing. With `journal.spool_dir` set, each queued
//! entry is also written here (fsync'd before the POS hears "queued"), and the
//! worker's sweep puts back every spooled entry the journal no longer has. The
//! restored entry is reconciled by reference before any post, so a charge the
//! PMS already has is not posted again. A file goes once its entry is settled.

use std::io::Write;
use std::path::{Path, PathBuf};

use sha2::{Digest, Sha256};

use super::{Journal, JournalEntry};
use crate::idempotency::StoreError;

pub struct Spool {
    dir: PathBuf,
}

/// What one sweep did.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Sweep {
    /// Entries the journal had lost, written back.
    pub restored: usize,
    /// Files removed: their entries are settled (or past the retention).
    pub settled: usize,
    /// Files still waiting for their entries to settle.
    pub waiting: usize,
}

impl Spool {
    /// Opens (creating it if needed) the spool directory; an error when it
    /// cannot be written, so a bad path stops start-up instead of a charge.
    pub fn open(dir: impl Into<PathBuf>) -> Result<Self, String> {
        let dir = dir.into();
        std::fs::create_dir_all(&dir)
            .map_err(|e| format!("journal.spool_dir {}: {e}", dir.display()))?;
        let probe = dir.join(".write-probe");
        std::fs::write(&probe, b"ok")
            .and_then(|()| std::fs::remove_file(&probe))
            .map_err(|e| format!("journal.spool_dir {} is not writable: {e}", dir.display()))?;
        Ok(Spool { dir })
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    fn path_of(&self, tenant: &str, key: &str) -> PathBuf {
        let mut hasher = Sha256::new();
        hasher.update(tenant.as_bytes());
        hasher.update([0u8]);
        hasher.update(key.as_bytes());
        let name = hex::encode(&hasher.finalize()[..16]);
        self.dir.join(format!("{name}.json"))
    }

    /// Writes `entry` durably (temporary file, fsync, rename, fsync of the
    /// directory) before the POS is told the charge is queued.
    pub fn keep(&self, entry: &JournalEntry) -> std::io::Result<()> {
        let path = self.path_of(&entry.tenant, &entry.key);
        let tmp = path.with_extension("tmp");
        {
            let mut file = std::fs::File::create(&tmp)?;
            file.write_all(&entry.encode())?;
            file.sync_all()?;
        }
        std::fs::rename(&tmp, &path)?;
        std::fs::File::open(&self.dir)?.sync_all()
    }

    /// Every spooled entry (unreadable files are logged and left for a person).
    fn entries(&self) -> Vec<(PathBuf, JournalEntry)> {
        let Ok(dir) = std::fs::read_dir(&self.dir) else {
            return Vec::new();
        };
        dir.filter_map(Result::ok)
            .map(|e| e.path())
            .filter(|p| p.extension().is_some_and(|x| x == "json"))
            .filter_map(|path| match std::fs::read(&path) {
                Ok(bytes) => match JournalEntry::decode(&bytes) {
                    Ok(entry) => Some((path, entry)),
                    Err(e) => {
                        tracing::error!(file = %path.display(), error = %e, "unreadable spooled journal entry; left in place");
                        None
                    }
                },
                Err(_) => None,
            })
            .collect()
    }

    /// Puts back what the journal lost and forgets what it has settled.
    /// Stops at the first store error (the next sweep tries again).
    pub async fn sweep(
        &self,
        journal: &Journal,
        retention_ms: u64,
        now_ms: u64,
    ) -> Result<Sweep, StoreError> {
        let mut sweep = Sweep::default();
        for (path, mut entry) in self.entries() {
            if now_ms.saturating_sub(entry.updated_ms) > retention_ms {
                let _ = std::fs::remove_file(&path);
                sweep.settled += 1;
                continue;
            }
            match journal.get(&entry.tenant, &entry.key).await? {
                Some(known) if known.state.is_open() => sweep.waiting += 1,
                Some(_) => {
                    let _ = std::fs::remove_file(&path);
                    sweep.settled += 1;
                }
                None => {
                    // Due at once; the worker reconciles it before posting.
                    entry.next_attempt_ms = Some(now_ms);
                    if journal.create(&entry).await?.is_none() {
                        tracing::warn!(
                            tenant = %entry.tenant, key = %entry.key,
                            "queued charge missing from the journal (Redis lost it): restored from the local spool"
                        );
                        crate::metrics::journal_restored();
                        sweep.restored += 1;
                    }
                    sweep.waiting += 1;
                }
            }
        }
        Ok(sweep)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_spool_that_cannot_be_written_is_refused() {
        let file = std::env::temp_dir().join(format!("cb-spool-file-{}", std::process::id()));
        std::fs::write(&file, b"x").unwrap();
        let error = Spool::open(file.join("below-a-file")).err().unwrap();
        assert!(error.contains("journal.spool_dir"), "{error}");
        let _ = std::fs::remove_file(&file);
    }
}
