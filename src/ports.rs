//! The two ports of the service. Adapters in [`crate::adapters`] implement them; the
//! service in [`crate::service`] depends on nothing else.

use std::future::Future;
use std::time::Duration;

use bytes::Bytes;

use crate::domain::{Product, ProductId};
use crate::error::{CacheError, StoreError};

/// A byte cache with per-entry expiry (Redis, or an in-process map).
pub trait Cache: Send + Sync + 'static {
    /// The value under `key`, if present and not expired.
    ///
    /// # Errors
    /// [`CacheError`] when the cache cannot answer in time.
    fn get(&self, key: &str) -> impl Future<Output = Result<Option<Bytes>, CacheError>> + Send;

    /// Stores `value` under `key` for `ttl`.
    ///
    /// # Errors
    /// [`CacheError`] when the write cannot be made in time.
    fn set(
        &self,
        key: &str,
        value: Bytes,
        ttl: Duration,
    ) -> impl Future<Output = Result<(), CacheError>> + Send;

    /// The value under `key` if there is one (left as it is); otherwise stores `value`
    /// for `ttl` and answers `None` (`SET NX GET`, one round trip).
    ///
    /// # Errors
    /// [`CacheError`] when the cache cannot answer in time.
    fn get_or_set(
        &self,
        key: &str,
        value: Bytes,
        ttl: Duration,
    ) -> impl Future<Output = Result<Option<Bytes>, CacheError>> + Send;

    /// Stores `value` under `key` for `ttl` only if the key is absent (`SET NX`); says
    /// whether it did.
    ///
    /// # Errors
    /// [`CacheError`] when the write cannot be made in time.
    fn set_if_absent(
        &self,
        key: &str,
        value: Bytes,
        ttl: Duration,
    ) -> impl Future<Output = Result<bool, CacheError>> + Send;

    /// Replaces the value under `key` with `value` for `ttl` only if it still equals
    /// `expected` (compare-and-set, atomic); says whether it did.
    ///
    /// # Errors
    /// [`CacheError`] when the write cannot be made in time.
    fn replace_if_equals(
        &self,
        key: &str,
        expected: Bytes,
        value: Bytes,
        ttl: Duration,
    ) -> impl Future<Output = Result<bool, CacheError>> + Send;

    /// Removes `key`; removing a missing key is not an error.
    ///
    /// # Errors
    /// [`CacheError`] when the delete cannot be made in time.
    fn delete(&self, key: &str) -> impl Future<Output = Result<(), CacheError>> + Send;
}

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
