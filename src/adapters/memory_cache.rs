//! In-process [`Cache`]: the local default when no `REDIS_URL` is set, and the fake the
//! service's unit tests run against. Bounded by the memory its entries really take
//! (bookkeeping included, not only key and value bytes); expiry follows tokio's clock so
//! tests can move time with `tokio::time::pause`.

use std::time::Duration;

use bytes::Bytes;
use moka::ops::compute::{CompResult, Op};
use tokio::time::Instant;

use crate::error::CacheError;
use crate::ports::Cache;

/// Default bound on the memory the in-process cache may use.
pub const DEFAULT_CAPACITY_BYTES: u64 = 64 * 1024 * 1024;

/// What one entry costs besides its key and value bytes: moka's own bookkeeping (its
/// hash table slot, entry and access-order nodes, reference counts), the key's and the
/// value's headers, the allocator's rounding and what churn leaves behind. Measured on
/// x86_64 Linux (glibc): with only key and value counted, 67,648 negative entries of 31
/// bytes took 32.7 MiB, about 480 bytes each beyond the 31
/// (`tests::the_memory_used_stays_near_the_bound` with this set to 0), so a bound that
/// counted only key and value bytes let 800,000 missing ids take 280 MB.
pub const ENTRY_OVERHEAD_BYTES: usize = 512;

#[derive(Clone)]
struct Entry {
    value: Bytes,
    expires_at: Instant,
}

/// A size-bounded map of byte values with per-entry expiry.
#[derive(Clone)]
pub struct MemoryCache {
    entries: moka::sync::Cache<String, Entry>,
}

impl MemoryCache {
    pub fn new(capacity_bytes: u64) -> Self {
        let entries = moka::sync::Cache::builder()
            .max_capacity(capacity_bytes)
            .weigher(|key: &String, entry: &Entry| {
                u32::try_from(ENTRY_OVERHEAD_BYTES + key.len() + entry.value.len())
                    .unwrap_or(u32::MAX)
            })
            .build();
        Self { entries }
    }

    /// Seconds left on `key`, as Redis' `TTL` would say; for tests and tools.
    pub fn ttl(&self, key: &str) -> Option<Duration> {
        let entry = self.entries.get(key)?;
        entry.expires_at.checked_duration_since(Instant::now())
    }
}

impl Default for MemoryCache {
    fn default() -> Self {
        Self::new(DEFAULT_CAPACITY_BYTES)
    }
}

impl MemoryCache {
    /// The value under `key`, if present and not expired; for tools and tests (the read
    /// path uses [`Cache::read_or_lease`]).
    pub fn get(&self, key: &str) -> Option<Bytes> {
        match self.entries.get(key) {
            Some(entry) if entry.expires_at > Instant::now() => Some(entry.value),
            Some(_) => {
                self.entries.invalidate(key);
                None
            }
            None => None,
        }
    }
}

impl Cache for MemoryCache {
    async fn read_or_lease(
        &self,
        key: &str,
        lease: Bytes,
        ttl: Duration,
    ) -> Result<Option<Bytes>, CacheError> {
        let now = Instant::now();
        let result = self
            .entries
            .entry_by_ref(key)
            .and_compute_with(|current| match current {
                Some(entry) if entry.value().expires_at > now => Op::Nop,
                _ => Op::Put(Entry {
                    value: lease,
                    expires_at: now + ttl,
                }),
            });
        Ok(match result {
            CompResult::Unchanged(entry) => Some(entry.into_value().value),
            _ => None,
        })
    }

    async fn fill(
        &self,
        key: &str,
        lease: Bytes,
        value: Bytes,
        ttl: Duration,
    ) -> Result<bool, CacheError> {
        let now = Instant::now();
        let result = self
            .entries
            .entry_by_ref(key)
            .and_compute_with(|current| match current {
                Some(entry) if entry.value().expires_at > now && entry.value().value == lease => {
                    Op::Put(Entry {
                        value,
                        expires_at: now + ttl,
                    })
                }
                _ => Op::Nop,
            });
        Ok(matches!(result, CompResult::ReplacedWith(_)))
    }

    async fn set(&self, key: &str, value: Bytes, ttl: Duration) -> Result<(), CacheError> {
        let expires_at = Instant::now() + ttl;
        self.entries
            .insert(key.to_owned(), Entry { value, expires_at });
        Ok(())
    }

    async fn delete(&self, key: &str) -> Result<(), CacheError> {
        self.entries.invalidate(key);
        Ok(())
    }

    async fn read(&self, key: &str) -> Result<Option<Bytes>, CacheError> {
        Ok(self.get(key))
    }

    /// The fill, then the copy: two steps, not one. An invalidation landing between
    /// them could leave a copy it had just deleted; in-process caches serve one local
    /// process, which runs no invalidator.
    async fn fill_keeping_copy(
        &self,
        key: &str,
        lease: Bytes,
        value: Bytes,
        ttl: Duration,
        (copy_key, copy, copy_ttl): (&str, Bytes, Duration),
    ) -> Result<bool, CacheError> {
        let filled = self.fill(key, lease, value, ttl).await?;
        if filled {
            self.set(copy_key, copy, copy_ttl).await?;
        }
        Ok(filled)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn entries_expire_after_their_ttl() {
        // GIVEN an entry with a 300 s TTL
        let cache = MemoryCache::default();
        cache
            .set("k", Bytes::from_static(b"v"), Duration::from_secs(300))
            .await
            .unwrap();
        // WHEN 299 s pass THEN it is still there
        tokio::time::advance(Duration::from_secs(299)).await;
        assert_eq!(cache.get("k"), Some(Bytes::from_static(b"v")));
        assert_eq!(cache.ttl("k"), Some(Duration::from_secs(1)));
        // WHEN the TTL has passed THEN it is gone
        tokio::time::advance(Duration::from_secs(1)).await;
        assert_eq!(cache.get("k"), None);
    }

    #[tokio::test(start_paused = true)]
    async fn read_or_lease_and_fill_behave_like_redis() {
        // GIVEN an empty cache
        let cache = MemoryCache::default();
        let ttl = Duration::from_secs(3);
        let (lease, other, value) = (
            Bytes::from_static(b"lease"),
            Bytes::from_static(b"other"),
            Bytes::from_static(b"value"),
        );
        // WHEN a reader misses THEN its lease is stored, and the next reader sees it
        assert_eq!(
            cache.read_or_lease("k", lease.clone(), ttl).await.unwrap(),
            None
        );
        assert_eq!(
            cache.read_or_lease("k", other.clone(), ttl).await.unwrap(),
            Some(lease.clone())
        );
        // WHEN someone fills with a lease that is not there THEN nothing changes
        assert!(
            !cache
                .fill("k", other.clone(), value.clone(), ttl)
                .await
                .unwrap()
        );
        assert_eq!(cache.get("k"), Some(lease.clone()));
        // WHEN the lease holder fills THEN the value replaces the lease, for the new TTL
        let long = Duration::from_secs(300);
        assert!(
            cache
                .fill("k", lease.clone(), value.clone(), long)
                .await
                .unwrap()
        );
        assert_eq!(cache.get("k"), Some(value.clone()));
        assert_eq!(cache.ttl("k"), Some(long));
        // WHEN a lease expires THEN the key is free for the next reader, and absent keys
        // cannot be filled
        cache.set("e", lease.clone(), ttl).await.unwrap();
        tokio::time::advance(ttl).await;
        assert!(
            !cache
                .fill("e", lease.clone(), value.clone(), ttl)
                .await
                .unwrap()
        );
        assert_eq!(
            cache.read_or_lease("e", other.clone(), ttl).await.unwrap(),
            None
        );
        assert!(!cache.fill("absent", lease, value, ttl).await.unwrap());
        assert_eq!(cache.get("absent"), None);
    }

    #[tokio::test]
    async fn delete_removes_and_tolerates_missing_keys() {
        // GIVEN one entry
        let cache = MemoryCache::default();
        cache
            .set("k", Bytes::from_static(b"v"), Duration::from_secs(5))
            .await
            .unwrap();
        // WHEN it and a key that never existed are deleted THEN neither fails
        cache.delete("k").await.unwrap();
        cache.delete("never-there").await.unwrap();
        // AND the entry is gone
        assert_eq!(cache.get("k"), None);
    }

    /// Resident memory of this process in bytes (Linux).
    fn rss_bytes() -> u64 {
        let status = std::fs::read_to_string("/proc/self/status").unwrap();
        let line = status.lines().find(|l| l.starts_with("VmRSS:")).unwrap();
        let kb: u64 = line.split_whitespace().nth(1).unwrap().parse().unwrap();
        kb * 1024
    }

    /// Set in the child process [`the_memory_used_stays_near_the_bound`] runs its body in,
    /// to the parent's pid: a value left in the environment from elsewhere does not match.
    const ALONE: &str = "PRODUCT_CATALOG_MEMORY_TEST_PARENT";

    /// Runs the measurement in a process of its own: RSS is the whole process's, and under
    /// plain `cargo test` (the Makefile's runner without cargo-nextest) every other test of
    /// this binary runs beside it on threads of the same process, growing it too.
    #[test]
    fn the_memory_used_stays_near_the_bound() {
        let parent = std::os::unix::process::parent_id().to_string();
        if std::env::var(ALONE).is_ok_and(|pid| pid == parent) {
            return tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap()
                .block_on(memory_used_stays_near_the_bound());
        }
        // The test's path as libtest names it: this module's, without the crate's name.
        let module = module_path!().split_once("::").unwrap().1;
        let name = format!("{module}::the_memory_used_stays_near_the_bound");
        // The image running now, even if the file has since been rebuilt.
        let child = std::process::Command::new("/proc/self/exe")
            .args([name.as_str(), "--exact", "--nocapture", "--test-threads=1"])
            .env(ALONE, std::process::id().to_string())
            .output()
            .unwrap();
        let stdout = String::from_utf8_lossy(&child.stdout);
        print!("{stdout}{}", String::from_utf8_lossy(&child.stderr));
        assert!(
            child.status.success(),
            "the measurement failed in its own process: {}",
            child.status
        );
        // The body ran there, measured and passed.
        assert!(
            stdout.contains("entries kept; RSS grew"),
            "the child ran no measurement"
        );
        assert!(stdout.contains("test result: ok. 1 passed;"));
    }

    async fn memory_used_stays_near_the_bound() {
        // GIVEN an in-process cache bounded to 2 MiB
        const CAPACITY: u64 = 2 * 1024 * 1024;
        let cache = MemoryCache::new(CAPACITY);
        let before = rss_bytes();
        // WHEN 200,000 distinct missing ids pass through it as the service writes them:
        // a lease, then the missing marker in its place
        let ttl = Duration::from_secs(30);
        for n in 0..200_000u32 {
            let key = format!("product:missing-{n:07}");
            let lease = Bytes::from(format!("!lease:{:032x}-{n:x}", u128::from(n)));
            assert!(
                cache
                    .read_or_lease(&key, lease.clone(), ttl)
                    .await
                    .unwrap()
                    .is_none()
            );
            cache
                .fill(&key, lease, Bytes::from_static(b"!missing"), ttl)
                .await
                .unwrap();
        }
        cache.entries.run_pending_tasks();
        let grown = rss_bytes().saturating_sub(before);
        let entries = cache.entries.entry_count();
        println!(
            "{entries} entries kept; RSS grew {:.1} MiB for an {} MiB bound",
            grown as f64 / 1048576.0,
            CAPACITY / 1048576
        );
        // THEN the process grew by about the bound, not by what the entries would have
        // taken unbounded (~100 MB). The growth beyond the bound is the cache's own
        // structures and what 200,000 freed allocations leave in glibc's heap: 6.7 to
        // 8.0 MiB in runs on 2026-12-06 (one over the 8 MiB this allowed until then),
        // hence 12 MiB, still an eighth of the unbounded figure.
        assert!(cache.entries.weighted_size() <= CAPACITY);
        assert!(
            grown < CAPACITY * 4 + 4 * 1024 * 1024,
            "RSS grew {grown} bytes for a {CAPACITY}-byte bound ({entries} entries)"
        );
    }
}
