//! Implementations of the ports, and the enums that let configuration pick one at
//! start-up while the service stays generic (no boxing on the request path).

pub mod aws;
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

/// Runs the same call on whichever cache `self` holds.
macro_rules! on_either {
    ($self:ident, $cache:ident => $call:expr) => {
        match $self {
            AnyCache::Redis($cache) => $call,
            AnyCache::Memory($cache) => $call,
        }
    };
}

impl Cache for AnyCache {
    async fn read_or_lease(
        &self,
        key: &str,
        lease: Bytes,
        ttl: Duration,
    ) -> Result<Option<Bytes>, CacheError> {
        on_either!(self, c => c.read_or_lease(key, lease, ttl).await)
    }

    async fn fill(
        &self,
        key: &str,
        lease: Bytes,
        value: Bytes,
        ttl: Duration,
    ) -> Result<bool, CacheError> {
        on_either!(self, c => c.fill(key, lease, value, ttl).await)
    }

    async fn set(&self, key: &str, value: Bytes, ttl: Duration) -> Result<(), CacheError> {
        on_either!(self, c => c.set(key, value, ttl).await)
    }

    async fn delete(&self, key: &str) -> Result<(), CacheError> {
        on_either!(self, c => c.delete(key).await)
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
