//! Implementations of the ports, and the enums that let configuration pick one at
//! start-up while the service stays generic (no boxing on the request path).

pub mod aws;
pub mod dns;
pub mod dynamo;
pub mod early_connection;
pub mod elasticache_iam;
pub mod memcached;
pub mod memory_cache;
pub mod memory_store;
pub mod redis;

pub use dns::EarlyLookups;
pub use dynamo::DynamoStore;
pub use memcached::MemcachedCache;
pub use memory_cache::MemoryCache;
pub use memory_store::MemoryStore;
pub use redis::{PendingToken, RedisCache, RedisTls, TokenSender};

use crate::domain::{Product, ProductId};
use crate::error::StoreError;
use crate::ports::ProductStore;

/// The cache chosen by `REDIS_URL` or `MEMCACHED_URL`.
pub enum AnyCache {
    Redis(RedisCache),
    Memcached(MemcachedCache),
    Memory(MemoryCache),
}

/// Sends each call to whichever cache `self` holds.
macro_rules! either_cache {
    ($this:ident, $op:ident, $key:ident, $cache:ident => $call:expr) => {
        either_cache!($this, $cache => $call)
    };
    ($this:ident, $cache:ident => $call:expr) => {
        match $this {
            AnyCache::Redis($cache) => $call,
            AnyCache::Memcached($cache) => $call,
            AnyCache::Memory($cache) => $call,
        }
    };
}
crate::ports::forward_cache!(impl[] for AnyCache, either_cache, either_cache);

impl AnyCache {
    /// Closes the connections where the client keeps them in the background (Redis);
    /// the others close when dropped.
    pub async fn quit(&self) {
        if let Self::Redis(redis) = self {
            redis.quit().await;
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
