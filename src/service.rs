//! The cache-aside read path, and the only place that decides hit, miss, fill and
//! degradation.
//!
//! - hit: the cached bytes are served as they are (no JSON work);
//! - miss: the table is read, the bytes are stored with the TTL, then served;
//! - cache trouble (error, timeout, corrupt entry): logged, counted as `CacheErrors`,
//!   and the request is served from the table (`BYPASS`) instead of failing;
//! - table trouble: `StoreErrors` and an error the HTTP layer turns into a 503.

use std::time::Duration;

use tracing::warn;

use crate::domain::{Product, ProductId};
use crate::error::{ServiceError, report};
use crate::metrics::Meters;
use crate::ports::{Cache, ProductStore};

/// Where a served product came from, as reported in `X-Cache`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CacheStatus {
    Hit,
    Miss,
    /// The cache could not be used; the product came from the table.
    Bypass,
}

impl CacheStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Hit => "HIT",
            Self::Miss => "MISS",
            Self::Bypass => "BYPASS",
        }
    }
}

/// A product and how it was found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Served {
    pub product: Product,
    pub cache: CacheStatus,
}

/// Cache-aside over any [`Cache`] and [`ProductStore`].
pub struct ProductService<C, S> {
    cache: C,
    store: S,
    ttl: Duration,
    meters: Meters,
}

impl<C: Cache, S: ProductStore> ProductService<C, S> {
    pub fn new(cache: C, store: S, ttl: Duration) -> Self {
        Self {
            cache,
            store,
            ttl,
            meters: Meters::register(),
        }
    }

    pub fn cache(&self) -> &C {
        &self.cache
    }

    pub fn store(&self) -> &S {
        &self.store
    }

    pub fn meters(&self) -> &Meters {
        &self.meters
    }

    /// The product with this id, from the cache when it can.
    ///
    /// # Errors
    /// [`ServiceError::NotFound`] when the table has no such product,
    /// [`ServiceError::Store`] when the table cannot answer.
    pub async fn get(&self, id: &ProductId) -> Result<Served, ServiceError> {
        let key = id.cache_key();
        let cache_usable = match self.cache.get(&key).await {
            Ok(Some(bytes)) if Product::looks_valid(&bytes) => {
                self.meters.hits.increment(1);
                return Ok(Served {
                    product: Product::from_json_bytes(bytes),
                    cache: CacheStatus::Hit,
                });
            }
            Ok(Some(_)) => {
                // Overwritten by the fill below.
                warn!(key, "corrupt cache entry treated as a miss");
                self.meters.cache_errors.increment(1);
                true
            }
            Ok(None) => true,
            Err(err) => {
                warn!(key, error = %report(&err), "cache read failed; serving from the table");
                self.meters.cache_errors.increment(1);
                false
            }
        };
        self.meters.misses.increment(1);

        let product = match self.store.get(id).await {
            Ok(Some(product)) => product,
            Ok(None) => {
                self.meters.not_found.increment(1);
                return Err(ServiceError::NotFound(id.as_str().to_owned()));
            }
            Err(err) => {
                self.meters.store_errors.increment(1);
                return Err(err.into());
            }
        };

        if !cache_usable {
            return Ok(Served {
                product,
                cache: CacheStatus::Bypass,
            });
        }
        if let Err(err) = self.cache.set(&key, product.body().clone(), self.ttl).await {
            warn!(key, error = %report(&err), "cache fill failed");
            self.meters.cache_errors.increment(1);
        }
        Ok(Served {
            product,
            cache: CacheStatus::Miss,
        })
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;
    use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

    use bytes::Bytes;

    use super::*;
    use crate::adapters::{MemoryCache, MemoryStore};
    use crate::error::{CacheError, StoreError};

    const TTL: Duration = Duration::from_secs(300);

    /// A store that counts reads and can be switched to failing.
    #[derive(Clone, Default)]
    struct CountingStore {
        inner: Arc<MemoryStore>,
        reads: Arc<AtomicUsize>,
        failing: Arc<AtomicBool>,
    }

    impl ProductStore for CountingStore {
        async fn get(&self, id: &ProductId) -> Result<Option<Product>, StoreError> {
            self.reads.fetch_add(1, Ordering::SeqCst);
            if self.failing.load(Ordering::SeqCst) {
                return Err(StoreError::Unavailable("table down".into()));
            }
            self.inner.get(id).await
        }
    }

    /// A cache that fails every call, like Redis that is down.
    struct BrokenCache;

    impl Cache for BrokenCache {
        async fn get(&self, _: &str) -> Result<Option<Bytes>, CacheError> {
            Err(CacheError::new("GET", "connection refused"))
        }
        async fn set(&self, _: &str, _: Bytes, _: Duration) -> Result<(), CacheError> {
            Err(CacheError::new("SET", "connection refused"))
        }
        async fn delete(&self, _: &str) -> Result<(), CacheError> {
            Err(CacheError::new("DEL", "connection refused"))
        }
    }

    fn store() -> CountingStore {
        let catalog =
            r#"[{"productId":"p1","name":"Lamp","price":12345678901234567890.123456789}]"#;
        CountingStore {
            inner: Arc::new(MemoryStore::from_json_array(catalog).unwrap()),
            ..Default::default()
        }
    }

    fn id(raw: &str) -> ProductId {
        ProductId::parse(raw).unwrap()
    }

    const P1: &str = r#"{"name":"Lamp","price":12345678901234567890.123456789,"productId":"p1"}"#;

    #[tokio::test]
    async fn a_miss_reads_the_table_and_fills_the_cache_then_hits() {
        // GIVEN an empty cache
        let store = store();
        let service = ProductService::new(MemoryCache::default(), store.clone(), TTL);
        // WHEN the product is read twice
        let first = service.get(&id("p1")).await.unwrap();
        let second = service.get(&id("p1")).await.unwrap();
        // THEN the first is a miss that fills the cache with the served bytes, the second a hit
        assert_eq!(first.cache, CacheStatus::Miss);
        assert_eq!(second.cache, CacheStatus::Hit);
        assert_eq!(first.product.body().as_ref(), P1.as_bytes());
        assert_eq!(second.product, first.product);
        assert_eq!(
            service.cache().get("product:p1").await.unwrap().as_deref(),
            Some(P1.as_bytes())
        );
        assert_eq!(store.reads.load(Ordering::SeqCst), 1);
    }

    #[tokio::test(start_paused = true)]
    async fn entries_live_for_the_ttl_then_the_table_is_read_again() {
        // GIVEN a filled cache
        let store = store();
        let service = ProductService::new(MemoryCache::default(), store.clone(), TTL);
        service.get(&id("p1")).await.unwrap();
        assert_eq!(service.cache().ttl("product:p1"), Some(TTL));
        // WHEN just under the TTL passes THEN it still hits
        tokio::time::advance(TTL - Duration::from_secs(1)).await;
        assert_eq!(
            service.get(&id("p1")).await.unwrap().cache,
            CacheStatus::Hit
        );
        // WHEN the TTL has passed THEN it misses and reads the table again
        tokio::time::advance(Duration::from_secs(1)).await;
        assert_eq!(
            service.get(&id("p1")).await.unwrap().cache,
            CacheStatus::Miss
        );
        assert_eq!(store.reads.load(Ordering::SeqCst), 2);
    }

    #[tokio::test]
    async fn unknown_ids_are_not_found_and_not_cached() {
        let service = ProductService::new(MemoryCache::default(), store(), TTL);
        let err = service.get(&id("nope")).await.unwrap_err();
        assert!(
            matches!(err, ServiceError::NotFound(ref missing) if missing == "nope"),
            "{err:?}"
        );
        assert_eq!(service.cache().get("product:nope").await.unwrap(), None);
    }

    #[tokio::test]
    async fn a_broken_cache_degrades_to_the_table() {
        // GIVEN a cache that fails every call
        let store = store();
        let service = ProductService::new(BrokenCache, store.clone(), TTL);
        // WHEN a product is read THEN it is served from the table, marked BYPASS
        let served = service.get(&id("p1")).await.unwrap();
        assert_eq!(served.cache, CacheStatus::Bypass);
        assert_eq!(served.product.body().as_ref(), P1.as_bytes());
        // AND unknown ids are still plain 404s
        assert!(matches!(
            service.get(&id("nope")).await,
            Err(ServiceError::NotFound(_))
        ));
    }

    #[tokio::test]
    async fn a_failing_table_is_an_error_but_cached_products_are_still_served() {
        // GIVEN p1 cached, then the table fails
        let store = store();
        let service = ProductService::new(MemoryCache::default(), store.clone(), TTL);
        service.get(&id("p1")).await.unwrap();
        store.failing.store(true, Ordering::SeqCst);
        // THEN p1 is still served from the cache, and an uncached id is a store error
        assert_eq!(
            service.get(&id("p1")).await.unwrap().cache,
            CacheStatus::Hit
        );
        assert!(matches!(
            service.get(&id("other")).await,
            Err(ServiceError::Store(_))
        ));
    }

    #[tokio::test]
    async fn a_corrupt_entry_is_a_miss_and_is_repaired() {
        // GIVEN garbage under the product's key
        let store = store();
        let service = ProductService::new(MemoryCache::default(), store.clone(), TTL);
        service
            .cache()
            .set("product:p1", Bytes::from_static(b"\x00garbage"), TTL)
            .await
            .unwrap();
        // WHEN read THEN it is a miss served from the table, and the entry is rewritten
        assert_eq!(
            service.get(&id("p1")).await.unwrap().cache,
            CacheStatus::Miss
        );
        assert_eq!(
            service.cache().get("product:p1").await.unwrap().as_deref(),
            Some(P1.as_bytes())
        );
        assert_eq!(
            service.get(&id("p1")).await.unwrap().cache,
            CacheStatus::Hit
        );
    }
}
