//! Implementations of the ports, and the enums that let configuration pick one at
//! start-up while the service stays generic (no boxing on the request path).

pub mod dynamo;
pub mod memory_cache;
pub mod memory_store;
pub mod redis;

use std::time::Duration;

use bytes::Bytes;

pub use dynamo::DynamoStore;
pub use memory_cache::MemoryCache;
pub use memory_store::MemoryStore;
pub use redis::RedisCache;

use crate::domain::{Product, ProductId};
use crate::error::{CacheError, StoreError};
use crate::ports::{Cache, ProductStore};

/// The cache chosen by `REDIS_URL`.
pub enum AnyCache {
    Redis(RedisCache),
    Memory(MemoryCache),
}

impl Cache for AnyCache {
    async fn get(&self, key: &str) -> Result<Option<Bytes>, CacheError> {
        match self {
            Self::Redis(cache) => cache.get(key).await,
            Self::Memory(cache) => cache.get(key).await,
        }
    }

    async fn set(&self, key: &str, value: Bytes, ttl: Duration) -> Result<(), CacheError> {
        match self {
            Self::Redis(cache) => cache.set(key, value, ttl).await,
            Self::Memory(cache) => cache.set(key, value, ttl).await,
        }
    }

    async fn get_or_set(
        &self,
        key: &str,
        value: Bytes,
        ttl: Duration,
    ) -> Result<Option<Bytes>, CacheError> {
        match self {
            Self::Redis(cache) => cache.get_or_set(key, value, ttl).await,
            Self::Memory(cache) => cache.get_or_set(key, value, ttl).await,
        }
    }

    async fn set_if_absent(
        &self,
        key: &str,
        value: Bytes,
        ttl: Duration,
    ) -> Result<bool, CacheError> {
        match self {
            Self::Redis(cache) => cache.set_if_absent(key, value, ttl).await,
            Self::Memory(cache) => cache.set_if_absent(key, value, ttl).await,
        }
    }

    async fn replace_if_equals(
        &self,
        key: &str,
        expected: Bytes,
        value: Bytes,
        ttl: Duration,
    ) -> Result<bool, CacheError> {
        match self {
            Self::Redis(cache) => cache.replace_if_equals(key, expected, value, ttl).await,
            Self::Memory(cache) => cache.replace_if_equals(key, expected, value, ttl).await,
        }
    }

    async fn delete(&self, key: &str) -> Result<(), CacheError> {
        match self {
            Self::Redis(cache) => cache.delete(key).await,
            Self::Memory(cache) => cache.delete(key).await,
        }
    }
}

/// The store chosen by `TABLE_NAME`.
pub enum AnyStore {
    Dynamo(DynamoStore),
    Memory(MemoryStore),
}

impl ProductStore for AnyStore {
    async fn get(&self, id: &ProductId) -> Result<Option<Product>, StoreError> {
        match self {
            Self::Dynamo(store) => store.get(id).await,
            Self::Memory(store) => store.get(id).await,
        }
    }
}
