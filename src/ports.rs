//! The two ports of the service. Adapters in [`crate::adapters`] implement them; the
//! service in [`crate::service`] depends on nothing else.

use std::future::Future;
use std::time::Duration;

use bytes::Bytes;

use crate::domain::{Product, ProductId};
use crate::error::{CacheError, StoreError};

/// A byte cache with per-entry expiry (Redis, or an in-process map), shaped by what the
/// read path and the invalidator need. What the bytes mean is [`crate::cache_entry`]'s
/// business; a cache only stores them.
pub trait Cache: Send + Sync + 'static {
    /// The value under `key` (a hit, or a marker); when there is none, stores `lease`
    /// under `key` for `ttl` and answers `None`: the caller now owns the fill. One round
    /// trip serves both, so a hit costs no more than a plain read.
    ///
    /// # Errors
    /// [`CacheError`] when the cache cannot answer in time.
    fn read_or_lease(
        &self,
        key: &str,
        lease: Bytes,
        ttl: Duration,
    ) -> impl Future<Output = Result<Option<Bytes>, CacheError>> + Send;

    /// Replaces `lease` under `key` with `value` for `ttl`, only if the key still holds
    /// exactly `lease` (atomic compare-and-set); says whether it did. `false` means
    /// someone else wrote the key meanwhile (an invalidation), whose value must win.
    ///
    /// # Errors
    /// [`CacheError`] when the write cannot be made in time.
    fn fill(
        &self,
        key: &str,
        lease: Bytes,
        value: Bytes,
        ttl: Duration,
    ) -> impl Future<Output = Result<bool, CacheError>> + Send;

    /// Stores `value` under `key` for `ttl`, whatever the key holds.
    ///
    /// # Errors
    /// [`CacheError`] when the write cannot be made in time.
    fn set(
        &self,
        key: &str,
        value: Bytes,
        ttl: Duration,
    ) -> impl Future<Output = Result<(), CacheError>> + Send;

    /// Removes `key`; removing a missing key is not an error.
    ///
    /// # Errors
    /// [`CacheError`] when the delete cannot be made in time.
    fn delete(&self, key: &str) -> impl Future<Output = Result<(), CacheError>> + Send;

    /// The value under `key`, if any; a plain read that leases nothing (for keys the
    /// read path only looks at, such as a last-known-good copy).
    ///
    /// # Errors
    /// [`CacheError`] when the cache cannot answer in time.
    fn read(&self, key: &str) -> impl Future<Output = Result<Option<Bytes>, CacheError>> + Send;

    /// [`Cache::fill`], and when it replaced the lease, also stores `copy` under
    /// `copy_key` for `copy_ttl`, in the same round trip where the cache allows (Redis:
    /// one script; `copy_key` must be in the same cluster slot as `key`). When the lease
    /// was lost (an invalidation wrote the key), the copy is not written either: the
    /// invalidation has already written or deleted it.
    ///
    /// # Errors
    /// [`CacheError`] when the writes cannot be made in time.
    fn fill_keeping_copy(
        &self,
        key: &str,
        lease: Bytes,
        value: Bytes,
        ttl: Duration,
        copy: (&str, Bytes, Duration),
    ) -> impl Future<Output = Result<bool, CacheError>> + Send;

    /// How many parts of the cache fail on their own (memcached: its nodes, which the
    /// client shards over); the service keeps one breaker per part, so one node down
    /// does not send every other node's keys to the table.
    fn parts(&self) -> usize {
        1
    }

    /// The part, below [`Cache::parts`], that holds `key`.
    fn part_of(&self, key: &str) -> usize {
        let _ = key;
        0
    }
}

/// Implements [`Cache`] for a type that forwards every call to another cache, writing
/// the signatures once. `$route!(self, Op, key, cache => call)` binds `cache` to
/// the cache this call goes to and evaluates `call`; it may also return early with an
/// error. `Op` names the operation (`ReadOrLease`, `Fill`, `Set`, `Delete`, `Read`,
/// `FillKeepingCopy`). `$inner!(self, cache => call)` does the same for the calls that
/// neither fail nor are journalled (`parts`, `part_of`).
macro_rules! forward_cache {
    (impl[$($generics:tt)*] for $ty:ty, $route:ident, $inner:ident) => {
        impl<$($generics)*> $crate::ports::Cache for $ty {
            fn parts(&self) -> usize {
                $inner!(self, cache => cache.parts())
            }

            fn part_of(&self, key: &str) -> usize {
                $inner!(self, cache => cache.part_of(key))
            }

            async fn read_or_lease(
                &self,
                key: &str,
                lease: ::bytes::Bytes,
                ttl: ::std::time::Duration,
            ) -> Result<Option<::bytes::Bytes>, $crate::error::CacheError> {
                $route!(self, ReadOrLease, key, cache => cache.read_or_lease(key, lease, ttl).await)
            }

            async fn fill(
                &self,
                key: &str,
                lease: ::bytes::Bytes,
                value: ::bytes::Bytes,
                ttl: ::std::time::Duration,
            ) -> Result<bool, $crate::error::CacheError> {
                $route!(self, Fill, key, cache => cache.fill(key, lease, value, ttl).await)
            }

            async fn set(
                &self,
                key: &str,
                value: ::bytes::Bytes,
                ttl: ::std::time::Duration,
            ) -> Result<(), $crate::error::CacheError> {
                $route!(self, Set, key, cache => cache.set(key, value, ttl).await)
            }

            async fn delete(&self, key: &str) -> Result<(), $crate::error::CacheError> {
                $route!(self, Delete, key, cache => cache.delete(key).await)
            }

            async fn read(
                &self,
                key: &str,
            ) -> Result<Option<::bytes::Bytes>, $crate::error::CacheError> {
                $route!(self, Read, key, cache => cache.read(key).await)
            }

            async fn fill_keeping_copy(
                &self,
                key: &str,
                lease: ::bytes::Bytes,
                value: ::bytes::Bytes,
                ttl: ::std::time::Duration,
                copy: (&str, ::bytes::Bytes, ::std::time::Duration),
            ) -> Result<bool, $crate::error::CacheError> {
                $route!(self, FillKeepingCopy, key, cache => {
                    cache.fill_keeping_copy(key, lease, value, ttl, copy).await
                })
            }
        }
    };
}
pub(crate) use forward_cache;

/// How long a store read may take, retries included, before it gives up: adapters
/// enforce it, and the service's fill leases are derived from it so that a slow read
/// never outlives its lease.
pub const STORE_READ_TIMEOUT: Duration = Duration::from_secs(3);

/// The source of truth for products (DynamoDB, or the sample catalog).
pub trait ProductStore: Send + Sync + 'static {
    /// The product with this id, or `None` when there is none.
    ///
    /// # Errors
    /// [`StoreError::Unavailable`] when the store cannot answer, [`StoreError::Malformed`]
    /// when the stored item cannot be served as JSON.
    fn get(
        &self,
        id: &ProductId,
    ) -> impl Future<Output = Result<Option<Product>, StoreError>> + Send;
}
