//! The cache-aside read path, and the only place that decides hit, miss, fill, negative
//! caching, single-flight and degradation.
//!
//! - hit: the cached bytes are served as they are (no JSON work);
//! - miss: the same round trip that would have returned a hit leases the product's key
//!   to the reader (`SET NX GET`); it reads the table and swaps the lease for the product
//!   only if the lease is still there (compare-and-set). An invalidation that lands meanwhile overwrites the lease, so a
//!   reader holding an older copy can never put it back for a whole TTL; a reader whose
//!   table read fails releases its lease (swaps it for [`Lease::released`]), so the next
//!   reader takes the key at once;
//! - a reader that finds someone else's lease waits briefly for the fill instead of
//!   reading the table too (across processes); concurrent misses inside one process
//!   share one lookup (single-flight);
//! - an id the table lacks is remembered as a marker for a short TTL (negative caching);
//! - cache trouble (error, timeout): logged, counted, and the request is served from
//!   the table (`BYPASS`); after a few failures a breaker skips the cache for a while
//!   (one breaker per [`Cache::parts`]: a memcached node down skips only its keys);
//!   corrupt entries count as misses and are overwritten;
//! - an error about one key (a value of the wrong type) is not an outage: that request
//!   is served from the table and the key is deleted, but the breaker counts the cache
//!   as up (it answered), so other ids keep their hits;
//! - table trouble: after a few consecutive failures each read gets a short deadline
//!   instead of the store's whole timeout, until the table answers one in time;
//!   `StoreErrors` and an error the HTTP layer turns into a 503, unless
//!   a last-known-good copy is kept (`STALE_TTL_SECONDS`): every fill also writes the
//!   served bytes under the copy's key (in the fill's own script), and when the table
//!   cannot answer (and only then: never when it answered, found or not found) the copy
//!   is served as `STALE`, with its age; a "not found" from the table deletes the copy.

use std::collections::HashMap;
use std::future::Future;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use tokio::sync::OnceCell;
use tracing::warn;

use crate::breaker::{Breaker, TableBreaker};
use crate::cache_entry::{CacheEntry, Lease, NegativeTtl, StaleCopy, TtlJitter, stale_key};
use crate::domain::{Product, ProductId};
use crate::error::{CacheError, CacheErrorKind, ServiceError, StoreError, report};
use crate::metrics::Meters;
use crate::ports::{Cache, ProductStore, STORE_READ_TIMEOUT};

/// How long a fill lease lives: it must outlast the slowest table read it covers (the
/// store's whole timeout, retries included), with a second for the fill itself.
pub const LEASE_TTL: Duration = Duration::from_secs(STORE_READ_TIMEOUT.as_secs() + 1);
/// How long a released lease ([`Lease::released`]) stays: any reader takes it over.
const RELEASED_TTL: Duration = Duration::from_secs(1);
/// How often, and how many times, a reader looks again for someone else's fill.
const LEASE_POLL_INTERVAL: Duration = Duration::from_millis(10);
const LEASE_POLLS: u32 = 10;

/// Where a served product came from, as reported in `X-Cache`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CacheStatus {
    Hit,
    Miss,
    /// The cache could not be used; the product came from the table.
    Bypass,
    /// The table could not answer; the product is its last-known-good copy, written
    /// this many seconds ago.
    Stale {
        age_secs: u64,
    },
}

impl CacheStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Hit => "HIT",
            Self::Miss => "MISS",
            Self::Bypass => "BYPASS",
            Self::Stale { .. } => "STALE",
        }
    }
}

/// A product and how it was found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Served {
    pub product: Product,
    pub cache: CacheStatus,
}

/// The result of one lookup, shared by every request that joined it.
pub type Outcome = (Result<Product, ServiceError>, CacheStatus);

/// Which way a lookup goes: requests join only a lookup going their own way, so the
/// label each one reports is true of it (a request whose cache call failed never
/// reports a fill's HIT or MISS, and the other way round).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
enum Path {
    /// The cache is in use: wait for a fill, or fill.
    Fill,
    /// The cache failed or is skipped: straight to the table.
    Bypass,
}

/// One lookup in progress: its path and cache key, and the outcome it will share.
type Flight = (Path, String);
type InFlight = HashMap<Flight, Arc<OnceCell<Outcome>>>;

/// Lookups in progress, by path and cache key: concurrent misses join the first one.
#[derive(Default)]
struct Flights {
    inflight: Mutex<InFlight>,
}

impl Flights {
    async fn run<F: Future<Output = Outcome>>(
        &self,
        path: Path,
        key: &str,
        lookup: impl FnOnce() -> F,
    ) -> Outcome {
        let flight: Flight = (path, key.to_owned());
        let cell = Arc::clone(self.lock().entry(flight.clone()).or_default());
        let outcome = cell.get_or_init(lookup).await.clone();
        let mut inflight = self.lock();
        if inflight
            .get(&flight)
            .is_some_and(|current| Arc::ptr_eq(current, &cell))
        {
            inflight.remove(&flight);
        }
        outcome
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, InFlight> {
        // Only whole entries are inserted or removed; a poisoned map is still consistent.
        self.inflight
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

/// What a read of the product's key found, as far as this request is concerned.
enum Found {
    /// A product or a live missing marker: the answer.
    Answer(Outcome),
    /// Someone else's live lease: their fill is on its way.
    Leased,
    /// Garbage, or a marker past its own expiry: to be replaced.
    Stale(Bytes),
}

/// Cache-aside over any [`Cache`] and [`ProductStore`].
pub struct ProductService<C, S> {
    cache: C,
    store: S,
    ttl: Duration,
    /// Spreads the product entries' expiry (`CACHE_TTL_JITTER_PERCENT`).
    jitter: TtlJitter,
    negative_ttl: NegativeTtl,
    /// One per part of the cache that fails on its own ([`Cache::parts`]: memcached's
    /// nodes), so one node down leaves the others' keys cached.
    breakers: Box<[Breaker]>,
    /// Shortens table reads while the table keeps failing.
    table: TableBreaker,
    flights: Flights,
    meters: Meters,
    /// Optional in-process tier for hot keys, in front of the cache.
    l1: Option<moka::sync::Cache<String, Product>>,
    /// How long last-known-good copies are kept; `None`: none are.
    stale_ttl: Option<Duration>,
}

impl<C: Cache, S: ProductStore> ProductService<C, S> {
    pub fn new(cache: C, store: S, ttl: Duration) -> Self {
        let breakers: Box<[Breaker]> = (0..cache.parts().max(1))
            .map(|_| Breaker::default())
            .collect();
        Self {
            cache,
            store,
            ttl,
            jitter: TtlJitter::default(),
            negative_ttl: NegativeTtl::default(),
            breakers,
            table: TableBreaker::default(),
            flights: Flights::default(),
            meters: Meters::register(),
            l1: None,
            stale_ttl: None,
        }
    }

    /// Keeps a last-known-good copy of every product filled, for `stale_ttl`, and serves
    /// it when the table cannot answer; `None` keeps none.
    #[must_use]
    pub fn with_stale_ttl(mut self, stale_ttl: Option<Duration>) -> Self {
        self.stale_ttl = stale_ttl;
        self
    }

    /// Adds an in-process tier of at most `entries` products kept for `ttl`. It saves a
    /// Redis round trip on hot keys, at a price: a stream invalidation cannot reach
    /// other processes' tiers, so a change can be served stale for up to `ttl`.
    #[must_use]
    pub fn with_l1(mut self, entries: u64, ttl: Duration) -> Self {
        self.l1 = (entries > 0).then(|| {
            moka::sync::Cache::builder()
                .max_capacity(entries)
                .time_to_live(ttl)
                .build()
        });
        self
    }

    /// Takes a random part of at most `jitter`'s percentage off each product entry's TTL,
    /// so entries filled together do not expire together.
    #[must_use]
    pub fn with_ttl_jitter(mut self, jitter: TtlJitter) -> Self {
        self.jitter = jitter;
        self
    }

    /// How long an unknown id is remembered.
    #[must_use]
    pub fn with_negative_ttl(mut self, negative_ttl: NegativeTtl) -> Self {
        self.negative_ttl = negative_ttl;
        self
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

    /// Whether a breaker is currently skipping the cache (or a part of it).
    pub fn cache_bypassed(&self) -> bool {
        self.breakers.iter().any(Breaker::is_open)
    }

    /// The breaker of the part of the cache that holds `key`.
    fn breaker(&self, key: &str) -> &Breaker {
        &self.breakers[self.cache.part_of(key) % self.breakers.len()]
    }

    /// The product with this id, from the cache when it can.
    ///
    /// # Errors
    /// [`ServiceError::NotFound`] when the table has no such product,
    /// [`ServiceError::Store`] when the table cannot answer.
    pub async fn get(&self, id: &ProductId) -> Result<Served, ServiceError> {
        let (result, cache) = self.read(id).await;
        result.map(|product| Served { product, cache })
    }

    /// [`Self::get`], with where the answer came from whatever it is: a missing id is
    /// cached too (`X-Cache` on a 404).
    pub async fn read(&self, id: &ProductId) -> Outcome {
        let key = id.cache_key();
        let (result, cache) = match self.l1.as_ref().and_then(|l1| l1.get(&key)) {
            Some(product) => (Ok(product), CacheStatus::Hit),
            None => {
                let outcome = self.lookup(id, &key).await;
                let outcome = self.or_last_known_good(&key, outcome).await;
                self.remember(key, &outcome);
                outcome
            }
        };
        self.count(&result, cache);
        (result, cache)
    }

    /// Metrics for one answered request (an L1 hit counts as a hit).
    fn count(&self, result: &Result<Product, ServiceError>, cache: CacheStatus) {
        match cache {
            CacheStatus::Hit => self.meters.hits.increment(1),
            CacheStatus::Miss | CacheStatus::Bypass => self.meters.misses.increment(1),
            CacheStatus::Stale { .. } => {
                self.meters.misses.increment(1);
                self.meters.stale_served.increment(1);
            }
        }
        if matches!(result, Err(ServiceError::NotFound(_))) {
            self.meters.not_found.increment(1);
        }
    }

    /// Keeps a product that went through the cache in the L1 tier.
    fn remember(&self, key: String, (result, cache): &Outcome) {
        if let (Some(l1), Ok(product), CacheStatus::Hit | CacheStatus::Miss) =
            (&self.l1, result, cache)
            && product.is_cacheable()
        {
            l1.insert(key, product.clone());
        }
    }

    /// Finds the product: the cache's answer, a fill, or the table alone.
    ///
    /// Every path but the hit is boxed: their futures (the table's client, waits, fills)
    /// are several kilobytes, and in place they would make the hit's future as large,
    /// to be moved by every layer above it on every request.
    async fn lookup(&self, id: &ProductId, key: &str) -> Outcome {
        // One round trip serves a hit and, on a miss, leases the key to this reader:
        // SET product:<id> <lease> NX PX <lease TTL> GET.
        let lease = Lease::new(LEASE_TTL);
        match self
            .guarded(
                key,
                self.cache.read_or_lease(key, lease.to_bytes(), LEASE_TTL),
            )
            .await
        {
            // The lease is ours: nobody else reads the table for this key meanwhile.
            Some(None) => Box::pin(self.read_and_fill(id, key, &lease)).await,
            Some(Some(bytes)) => match self.classify(id, key, bytes) {
                Found::Answer(outcome) => outcome,
                // Another reader is filling: readers in this process wait together.
                Found::Leased => {
                    Box::pin(
                        self.flights
                            .run(Path::Fill, key, || self.wait_or_fill(id, key)),
                    )
                    .await
                }
                // Replaced once, by one reader in this process.
                Found::Stale(stale) => {
                    Box::pin(
                        self.flights
                            .run(Path::Fill, key, || self.take_over(id, key, stale)),
                    )
                    .await
                }
            },
            None => {
                Box::pin(self.flights.run(Path::Bypass, key, || {
                    self.read_store(id, CacheStatus::Bypass)
                }))
                .await
            }
        }
    }

    fn classify(&self, id: &ProductId, key: &str, bytes: Bytes) -> Found {
        let entry = CacheEntry::decode(bytes);
        if entry.is_expired_marker() {
            if !matches!(&entry, CacheEntry::Lease(lease) if lease.is_released()) {
                warn!(
                    key,
                    "marker past its own expiry (its TTL was lost); replacing it"
                );
            }
            return Found::Stale(entry.encode());
        }
        match entry {
            CacheEntry::Product(product) => Found::Answer((Ok(product), CacheStatus::Hit)),
            CacheEntry::Missing(_) => {
                Found::Answer((Err(ServiceError::NotFound(id.clone())), CacheStatus::Hit))
            }
            CacheEntry::Lease(_) => Found::Leased,
            CacheEntry::Corrupt(bytes) => {
                warn!(key, "corrupt cache entry treated as a miss");
                self.meters.cache_errors.increment(1);
                Found::Stale(bytes)
            }
        }
    }

    /// Swaps a stale entry for our lease and fills; if someone wrote the key meanwhile,
    /// goes on as if their lease had been found.
    async fn take_over(&self, id: &ProductId, key: &str, stale: Bytes) -> Outcome {
        let lease = Lease::new(LEASE_TTL);
        if self.swap_for_lease(key, stale, &lease).await {
            return self.read_and_fill(id, key, &lease).await;
        }
        self.wait_or_fill(id, key).await
    }

    async fn swap_for_lease(&self, key: &str, stale: Bytes, lease: &Lease) -> bool {
        if !Product::fits_cache(&stale) {
            // Not ours, and too large to send back as the compare-and-set's expected
            // value: removed, then leased as an empty key is. A value written meanwhile
            // (a fill, an invalidation) is removed too, which costs one more fill.
            return self.guarded(key, self.cache.delete(key)).await.is_some()
                && self
                    .guarded(
                        key,
                        self.cache.read_or_lease(key, lease.to_bytes(), LEASE_TTL),
                    )
                    .await
                    == Some(None);
        }
        let swap = self.cache.fill(key, stale, lease.to_bytes(), LEASE_TTL);
        self.guarded(key, swap).await == Some(true)
    }

    /// Someone else holds the key: poll for their fill; take the key when it frees up
    /// or holds something stale. A lease that outlives the polls (a slow or dead
    /// reader) is left alone and the table answers without filling.
    async fn wait_or_fill(&self, id: &ProductId, key: &str) -> Outcome {
        for _ in 0..LEASE_POLLS {
            let lease = Lease::new(LEASE_TTL);
            let found = self
                .guarded(
                    key,
                    self.cache.read_or_lease(key, lease.to_bytes(), LEASE_TTL),
                )
                .await;
            match found {
                None => return self.read_store(id, CacheStatus::Bypass).await,
                Some(None) => return self.read_and_fill(id, key, &lease).await,
                Some(Some(bytes)) => match self.classify(id, key, bytes) {
                    Found::Answer(outcome) => return outcome,
                    Found::Leased => tokio::time::sleep(LEASE_POLL_INTERVAL).await,
                    // Swap what we saw for our lease; if someone wrote meanwhile, look again.
                    Found::Stale(stale) => {
                        if self.swap_for_lease(key, stale, &lease).await {
                            return self.read_and_fill(id, key, &lease).await;
                        }
                    }
                },
            }
        }
        self.read_store(id, CacheStatus::Miss).await
    }

    /// Reads the table and swaps our lease for what was read.
    async fn read_and_fill(&self, id: &ProductId, key: &str, lease: &Lease) -> Outcome {
        let (result, status) = self.read_store(id, CacheStatus::Miss).await;
        let (entry, ttl) = match &result {
            // Never cached (`MAX_CACHED_BODY_BYTES`): the key is let go at once, and a
            // last-known-good copy of a smaller version is dropped, as the stream
            // handler drops it for such a change.
            Ok(product) if !product.is_cacheable() => {
                warn!(
                    key,
                    bytes = product.body().len(),
                    "product too large to cache; served from the table"
                );
                if self.stale_ttl.is_some() {
                    tokio::join!(self.release(key, lease), self.forget_copy(key));
                } else {
                    self.release(key, lease).await;
                }
                return (result, status);
            }
            Ok(product) if self.stale_ttl.is_some() => {
                self.fill_keeping_copy(key, lease, product).await;
                return (result, status);
            }
            Ok(product) => (
                CacheEntry::Product(product.clone()),
                self.jitter.apply(self.ttl),
            ),
            Err(ServiceError::NotFound(_)) => (
                CacheEntry::missing(self.negative_ttl),
                self.negative_ttl.get(),
            ),
            // Left alone, our lease would hold the key for the rest of LEASE_TTL: other
            // readers would wait for a fill that is not coming, then read the table
            // without filling, even once it answers again. Released (if still ours),
            // the next reader takes the key at once.
            Err(ServiceError::Store(_)) => {
                self.release(key, lease).await;
                return (result, status);
            }
        };
        // `false` means an invalidation replaced our lease: what we read may be older
        // than what is cached now, so it must not be stored.
        let fill = self.guarded(
            key,
            self.cache.fill(key, lease.to_bytes(), entry.encode(), ttl),
        );
        if self.stale_ttl.is_some() && matches!(result, Err(ServiceError::NotFound(_))) {
            // The table has no such product: any copy left is of a deleted one whose
            // REMOVE never reached the cache (retries exhausted, record too old), and
            // must not be served in the next outage. Sent alongside the fill: no extra
            // round trip. At worst it deletes the copy of a product inserted meanwhile,
            // which only loses STALE cover until its next fill.
            tokio::join!(fill, self.forget_copy(key));
        } else {
            fill.await;
        }
        (result, status)
    }

    /// Deletes the product's last-known-good copy.
    async fn forget_copy(&self, key: &str) {
        let copy_key = stale_key(key);
        self.guarded(&copy_key, self.cache.delete(&copy_key)).await;
    }

    /// Releases our lease (if still ours) for a fill that is not coming, so that the next
    /// reader takes the key at once instead of waiting for it.
    async fn release(&self, key: &str, lease: &Lease) {
        let release = self.cache.fill(
            key,
            lease.to_bytes(),
            Lease::released().to_bytes(),
            RELEASED_TTL,
        );
        self.guarded(key, release).await;
    }

    /// The fill, with the product's last-known-good copy written in the same round trip
    /// (and only if the fill itself happens).
    async fn fill_keeping_copy(&self, key: &str, lease: &Lease, product: &Product) {
        let Some(stale_ttl) = self.stale_ttl else {
            return;
        };
        let copy_key = stale_key(key);
        let copy = StaleCopy::now(product.clone()).encode();
        let value = CacheEntry::Product(product.clone()).encode();
        let fill = self.cache.fill_keeping_copy(
            key,
            lease.to_bytes(),
            value,
            self.jitter.apply(self.ttl),
            (&copy_key, copy, stale_ttl),
        );
        self.guarded(key, fill).await;
    }

    /// When the table could not answer, the product's last-known-good copy if one is
    /// kept, as `STALE`; every other outcome as it is. A table that answered (a product,
    /// or none) is never second-guessed by a copy.
    async fn or_last_known_good(&self, key: &str, outcome: Outcome) -> Outcome {
        let Some(stale_ttl) = self.stale_ttl else {
            return outcome;
        };
        // An item that cannot be served is an answer too: the table holds a newer
        // version than the copy (the invalidator drops the copy for such a change).
        let unanswered = matches!(&outcome.0, Err(ServiceError::Store(err))
            if matches!(**err, StoreError::Unavailable(_)));
        if !unanswered {
            return outcome;
        }
        let copy_key = stale_key(key);
        // Boxed as the other paths that are not a hit (see `lookup`).
        let copy = Box::pin(self.guarded(&copy_key, self.cache.read(&copy_key)))
            .await
            .flatten()
            .and_then(|bytes| StaleCopy::decode(&bytes))
            .filter(|copy| copy.is_within(stale_ttl));
        match copy {
            Some(copy) => {
                let age_secs = copy.age().as_secs();
                warn!(
                    key,
                    age_secs, "table unavailable; serving the last-known-good copy"
                );
                (Ok(copy.into_product()), CacheStatus::Stale { age_secs })
            }
            None => outcome,
        }
    }

    async fn read_store(&self, id: &ProductId, status: CacheStatus) -> Outcome {
        let read = match self.table.deadline() {
            None => self.store.get(id).await,
            // The table keeps failing: do not make this miss wait out the whole store
            // timeout too, but still ask, so an answer in time ends the trouble.
            Some(deadline) => tokio::time::timeout(deadline, self.store.get(id))
                .await
                .unwrap_or_else(|_| {
                    Err(StoreError::Unavailable(
                        "no answer within the deadline for a table in trouble".into(),
                    ))
                }),
        };
        self.table
            .record(!matches!(read, Err(StoreError::Unavailable(_))));
        let result = match read {
            Ok(Some(product)) => Ok(product),
            Ok(None) => Err(ServiceError::NotFound(id.clone())),
            Err(err) => {
                self.meters.store_errors.increment(1);
                Err(err.into())
            }
        };
        (result, status)
    }

    /// Runs a cache call through the breaker; `None` when skipped or failed (logged
    /// and counted), so callers degrade to the table. Only an outage is a breaker
    /// failure: an error about one call or one key came from a cache that answered.
    async fn guarded<T>(
        &self,
        key: &str,
        call: impl Future<Output = Result<T, CacheError>>,
    ) -> Option<T> {
        let breaker = self.breaker(key);
        if !breaker.allow() {
            return None;
        }
        match call.await {
            Ok(value) => {
                breaker.record_success();
                Some(value)
            }
            Err(err) if err.is_outage() => {
                breaker.record_failure();
                self.meters.cache_errors.increment(1);
                warn!(error = %report(&err), "cache call failed; serving from the table");
                None
            }
            Err(err) => {
                breaker.record_success();
                self.meters.cache_errors.increment(1);
                warn!(error = %report(&err), "cache entry unusable; serving from the table");
                if let CacheErrorKind::WrongType { key } = &err.kind {
                    self.delete_wrong_type(key).await;
                }
                None
            }
        }
    }

    /// Deletes a key that holds a type the service never writes (a hash, a list: a
    /// stray writer or an operator's slip), so the next read fills it again; left in
    /// place it would send every read of that id to the table for good. Every key under
    /// `product:` is this service's, and a plain `SET` (the invalidator's refresh)
    /// would overwrite it just the same.
    async fn delete_wrong_type(&self, key: &str) {
        match self.cache.delete(key).await {
            Ok(()) => warn!(key, "deleted a cache entry of the wrong type"),
            Err(err) => {
                if err.is_outage() {
                    self.breaker(key).record_failure();
                }
                warn!(key, error = %report(&err), "could not delete a cache entry of the wrong type");
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

    use tokio::sync::Notify;

    use super::*;
    use crate::adapters::MemoryCache;
    use crate::breaker::FAILURE_THRESHOLD;
    use crate::cache_entry::{DEFAULT_NEGATIVE_TTL, Expiry};
    use crate::domain::MAX_CACHED_BODY_BYTES;
    use crate::invalidate::{Change, Invalidator};
    use crate::item::{item_from_json, product_from_item};
    use crate::testing::{CacheOp, TestCache};

    const TTL: Duration = Duration::from_secs(300);
    const P1: &str = r#"{"name":"Lamp","price":12345678901234567890.123456789,"productId":"p1"}"#;
    const P1_V2: &str = r#"{"name":"Lamp","price":10.5,"productId":"p1"}"#;

    fn product(json: &str) -> Product {
        product_from_item(&item_from_json(json).unwrap()).unwrap()
    }

    /// A store that counts reads, can fail, can be updated, and can hold a read back
    /// until the test opens its gate (to interleave a read with a write).
    #[derive(Clone, Default)]
    struct FakeStore {
        products: Arc<Mutex<HashMap<String, Product>>>,
        reads: Arc<AtomicUsize>,
        failing: Arc<AtomicBool>,
        /// The table answers, with an item that cannot be served.
        malformed: Arc<AtomicBool>,
        /// The table never answers: each read times out after the store's whole
        /// timeout, as the SDK's does in a timeout storm.
        hanging: Arc<AtomicBool>,
        delay: Duration,
        gate: Option<Arc<Notify>>,
    }

    impl FakeStore {
        fn with(products: &[&str]) -> Self {
            let store = Self::default();
            for json in products {
                store.put(json);
            }
            store
        }

        fn put(&self, json: &str) {
            let product = product(json);
            let id = item_from_json(json).unwrap().get("productId").cloned();
            let Some(serde_dynamo::AttributeValue::S(id)) = id else {
                panic!("no id")
            };
            self.products.lock().unwrap().insert(id, product);
        }

        fn reads(&self) -> usize {
            self.reads.load(Ordering::SeqCst)
        }
    }

    impl ProductStore for FakeStore {
        async fn get(&self, id: &ProductId) -> Result<Option<Product>, StoreError> {
            self.reads.fetch_add(1, Ordering::SeqCst);
            if self.hanging.load(Ordering::SeqCst) {
                tokio::time::sleep(STORE_READ_TIMEOUT).await;
                return Err(StoreError::Unavailable("operation timed out".into()));
            }
            if self.failing.load(Ordering::SeqCst) {
                return Err(StoreError::Unavailable("table down".into()));
            }
            if self.malformed.load(Ordering::SeqCst) {
                return Err(StoreError::Malformed {
                    id: id.as_str().to_owned(),
                    source: crate::error::ItemError::MissingId,
                });
            }
            // What the table says now...
            let found = self.products.lock().unwrap().get(id.as_str()).cloned();
            // ...arrives later.
            if let Some(gate) = &self.gate {
                gate.notified().await;
            }
            tokio::time::sleep(self.delay).await;
            Ok(found)
        }
    }

    fn id(raw: &str) -> ProductId {
        ProductId::parse(raw).unwrap()
    }

    fn cached(service: &ProductService<MemoryCache, FakeStore>, key: &str) -> Option<CacheEntry> {
        service.cache().get(key).map(CacheEntry::decode)
    }

    #[tokio::test]
    async fn a_miss_reads_the_table_and_fills_the_cache_then_hits() {
        // GIVEN an empty cache
        let store = FakeStore::with(&[P1]);
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
            cached(&service, "product:p1"),
            Some(CacheEntry::Product(product(P1)))
        );
        assert_eq!(store.reads(), 1);
    }

    /// The TTL of each product entry after `ids` misses through `service`.
    async fn filled_ttls(
        service: &ProductService<MemoryCache, FakeStore>,
        ids: &[String],
    ) -> Vec<Duration> {
        let mut ttls = Vec::new();
        for raw in ids {
            assert_eq!(
                service.get(&id(raw)).await.unwrap().cache,
                CacheStatus::Miss
            );
            ttls.push(service.cache().ttl(&format!("product:{raw}")).unwrap());
        }
        ttls
    }

    #[tokio::test(start_paused = true)]
    async fn ttl_jitter_spreads_the_expiry_of_entries_filled_together_and_never_lengthens_it() {
        // GIVEN 200 products, with and without last-known-good copies
        let ids: Vec<String> = (0..200).map(|n| format!("p{n}")).collect();
        let json: Vec<String> = ids
            .iter()
            .map(|id| format!(r#"{{"name":"Lamp","productId":"{id}"}}"#))
            .collect();
        let store = FakeStore::with(&json.iter().map(String::as_str).collect::<Vec<_>>());
        for stale_ttl in [None, Some(Duration::from_secs(86_400))] {
            // WHEN they are all filled at the same instant, with 20 % jitter
            let service = ProductService::new(MemoryCache::default(), store.clone(), TTL)
                .with_stale_ttl(stale_ttl)
                .with_ttl_jitter(TtlJitter::percent(20));
            let ttls = filled_ttls(&service, &ids).await;
            // THEN each lives between 80 % of the TTL and the TTL, and they spread over it
            crate::cache_entry::assert_jittered(&ttls, TTL, 20);
        }
        // AND without jitter every entry gets the TTL exactly (the contract's EX 300)
        let service = ProductService::new(MemoryCache::default(), store.clone(), TTL);
        assert!(
            filled_ttls(&service, &ids)
                .await
                .iter()
                .all(|ttl| *ttl == TTL)
        );
    }

    #[tokio::test(start_paused = true)]
    async fn entries_live_for_the_ttl_then_the_table_is_read_again() {
        // GIVEN a filled cache
        let store = FakeStore::with(&[P1]);
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
        assert_eq!(store.reads(), 2);
    }

    #[tokio::test(start_paused = true)]
    async fn unknown_ids_are_remembered_for_the_negative_ttl() {
        // GIVEN an id the table does not hold
        let store = FakeStore::with(&[P1]);
        let service = ProductService::new(MemoryCache::default(), store.clone(), TTL);
        // WHEN it is asked for 100 times within 10 s
        for _ in 0..100 {
            let err = service.get(&id("nope")).await.unwrap_err();
            assert!(
                matches!(err, ServiceError::NotFound(ref missing) if missing.as_str() == "nope"),
                "{err:?}"
            );
            tokio::time::advance(Duration::from_millis(100)).await;
        }
        // THEN the table was read once, and the marker (not a product) sits under the key
        assert_eq!(store.reads(), 1);
        assert!(matches!(
            cached(&service, "product:nope"),
            Some(CacheEntry::Missing(_))
        ));
        // AND after the negative TTL the table is asked again
        tokio::time::advance(DEFAULT_NEGATIVE_TTL).await;
        assert!(service.get(&id("nope")).await.is_err());
        assert_eq!(store.reads(), 2);
    }

    #[tokio::test]
    async fn concurrent_misses_in_one_process_share_one_table_read() {
        // GIVEN a slow table and a cold cache
        let store = FakeStore {
            delay: Duration::from_millis(30),
            ..FakeStore::with(&[P1])
        };
        let service = Arc::new(ProductService::new(
            MemoryCache::default(),
            store.clone(),
            TTL,
        ));
        // WHEN 64 requests for the product arrive at once
        let mut tasks = tokio::task::JoinSet::new();
        for _ in 0..64 {
            let service = Arc::clone(&service);
            tasks.spawn(async move { service.get(&id("p1")).await.unwrap() });
        }
        let served = tasks.join_all().await;
        // THEN they all get the product from a single read
        assert!(
            served
                .iter()
                .all(|s| s.product.body().as_ref() == P1.as_bytes())
        );
        assert_eq!(store.reads(), 1);
    }

    #[tokio::test]
    async fn concurrent_misses_across_processes_are_bounded_by_the_lease() {
        // GIVEN four service instances (processes) sharing one cache, and a slow table
        let store = FakeStore {
            delay: Duration::from_millis(30),
            ..FakeStore::with(&[P1])
        };
        let cache = MemoryCache::default();
        let services: Vec<_> = (0..4)
            .map(|_| Arc::new(ProductService::new(cache.clone(), store.clone(), TTL)))
            .collect();
        // WHEN 64 requests arrive at once, spread over them
        let mut tasks = tokio::task::JoinSet::new();
        for n in 0..64 {
            let service = Arc::clone(&services[n % services.len()]);
            tasks.spawn(async move { service.get(&id("p1")).await.unwrap() });
        }
        let served = tasks.join_all().await;
        // THEN one reader filled and the others waited for its fill
        assert!(
            served
                .iter()
                .all(|s| s.product.body().as_ref() == P1.as_bytes())
        );
        assert!(store.reads() <= 2, "{} table reads", store.reads());
    }

    #[tokio::test]
    async fn an_invalidation_during_a_fill_wins_over_the_stale_read() {
        // GIVEN a reader whose table read returned v1 but has not reached the cache yet
        let gate = Arc::new(Notify::new());
        let store = FakeStore {
            gate: Some(Arc::clone(&gate)),
            ..FakeStore::with(&[P1])
        };
        let cache = MemoryCache::default();
        let service = Arc::new(ProductService::new(cache.clone(), store.clone(), TTL));
        let reader = tokio::spawn({
            let service = Arc::clone(&service);
            async move { service.get(&id("p1")).await.unwrap() }
        });
        while store.reads() == 0 {
            tokio::task::yield_now().await;
        }
        // WHEN the item is updated and the stream invalidator applies the change
        store.put(P1_V2);
        let invalidator = Invalidator::new(cache.clone(), TTL, NegativeTtl::default());
        invalidator
            .apply(&Change::Refresh(id("p1"), product(P1_V2)))
            .await
            .unwrap();
        // AND only then the slow reader finishes its fill
        gate.notify_one();
        let stale = reader.await.unwrap();
        assert_eq!(
            stale.product.body().as_ref(),
            P1.as_bytes(),
            "the reader answers what it read"
        );
        // THEN the cache holds the new version, not the stale one
        assert_eq!(cache.get("product:p1").as_deref(), Some(P1_V2.as_bytes()));
        let next = service.get(&id("p1")).await.unwrap();
        assert_eq!(
            (next.cache, next.product.body().as_ref()),
            (CacheStatus::Hit, P1_V2.as_bytes())
        );
    }

    #[tokio::test]
    async fn an_insert_clears_the_negative_marker() {
        // GIVEN an id remembered as missing
        let store = FakeStore::with(&[]);
        let cache = MemoryCache::default();
        let service = ProductService::new(cache.clone(), store.clone(), TTL);
        assert!(service.get(&id("p1")).await.is_err());
        // WHEN the product is inserted and the stream invalidator applies it
        store.put(P1);
        Invalidator::new(cache, TTL, NegativeTtl::default())
            .apply(&Change::Refresh(id("p1"), product(P1)))
            .await
            .unwrap();
        // THEN the next read hits the new product without reading the table again
        assert_eq!(
            service.get(&id("p1")).await.unwrap().cache,
            CacheStatus::Hit
        );
        assert_eq!(store.reads(), 1);
    }

    #[tokio::test]
    async fn a_broken_cache_degrades_to_the_table_and_the_breaker_stops_calling_it() {
        // GIVEN a cache that fails every call
        let store = FakeStore::with(&[P1]);
        let cache = TestCache::default();
        cache.fail_always();
        let service = ProductService::new(cache, store.clone(), TTL);
        // WHEN products are read THEN they are served from the table, marked BYPASS
        for _ in 0..20 {
            let served = service.get(&id("p1")).await.unwrap();
            assert_eq!(served.cache, CacheStatus::Bypass);
            assert_eq!(served.product.body().as_ref(), P1.as_bytes());
        }
        // AND unknown ids are still plain 404s
        assert!(matches!(
            service.get(&id("nope")).await,
            Err(ServiceError::NotFound(_))
        ));
        // AND the breaker stopped paying for cache calls after a few failures
        assert_eq!(service.cache().calls(), FAILURE_THRESHOLD as usize);
        assert!(service.cache_bypassed());
    }

    #[tokio::test]
    async fn errors_about_one_key_never_open_the_breaker() {
        // GIVEN a cache that answers, but only with "wrong type" errors
        let store = FakeStore::with(&[P1]);
        let cache = TestCache::default();
        cache.fail_wrong_type();
        let service = ProductService::new(cache, store.clone(), TTL);
        // WHEN the key is read many times THEN each read is served from the table
        for _ in 0..20 {
            let served = service.get(&id("p1")).await.unwrap();
            assert_eq!(served.cache, CacheStatus::Bypass);
        }
        // AND every read still tried the cache (and to delete the bad key): the breaker
        // never opened
        assert_eq!(service.cache().calls(), 40);
        assert!(!service.cache_bypassed());
    }

    #[tokio::test]
    async fn a_failing_table_is_an_error_but_cached_products_are_still_served() {
        // GIVEN p1 cached, then the table fails
        let store = FakeStore::with(&[P1]);
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

    #[tokio::test(start_paused = true)]
    async fn a_reader_whose_table_read_failed_releases_its_lease_and_the_next_one_fills() {
        // GIVEN two processes sharing a cache, and a table that fails one read
        let store = FakeStore::with(&[P1]);
        let cache = MemoryCache::default();
        let first = ProductService::new(cache.clone(), store.clone(), TTL);
        let second = ProductService::new(cache.clone(), store.clone(), TTL);
        store.failing.store(true, Ordering::SeqCst);
        // WHEN the first reader's table read fails
        assert!(matches!(
            first.get(&id("p1")).await,
            Err(ServiceError::Store(_))
        ));
        // THEN its lease is released, not left to hold the key for LEASE_TTL
        assert!(matches!(
            cached(&first, "product:p1"),
            Some(CacheEntry::Lease(lease)) if lease.is_released()
        ));
        // WHEN the table answers again and another process reads the product
        store.failing.store(false, Ordering::SeqCst);
        let started = tokio::time::Instant::now();
        let served = second.get(&id("p1")).await.unwrap();
        // THEN it takes the key at once (no wait for a fill) and fills it
        assert_eq!(served.cache, CacheStatus::Miss);
        assert_eq!(started.elapsed(), Duration::ZERO);
        assert_eq!(
            cached(&second, "product:p1"),
            Some(CacheEntry::Product(served.product))
        );
        assert_eq!(first.get(&id("p1")).await.unwrap().cache, CacheStatus::Hit);
    }

    #[tokio::test]
    async fn a_corrupt_entry_is_a_miss_and_is_repaired() {
        // GIVEN garbage under the product's key
        let store = FakeStore::with(&[P1]);
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
            cached(&service, "product:p1"),
            Some(CacheEntry::Product(product(P1)))
        );
        assert_eq!(
            service.get(&id("p1")).await.unwrap().cache,
            CacheStatus::Hit
        );
    }

    #[tokio::test]
    async fn a_cached_value_too_large_to_be_ours_is_not_served_and_is_replaced() {
        use CacheOp::{Delete, Fill, ReadOrLease};
        // The value is deleted, then the key leased, rather than swapped for a lease by
        // a compare-and-set, which would send it back to the cache; a delete that fails
        // leases nothing, and the next look deletes it.
        for (first_delete_fails, calls) in [
            (false, vec![ReadOrLease, Delete, ReadOrLease, Fill]),
            (
                true,
                vec![ReadOrLease, Delete, ReadOrLease, Delete, ReadOrLease, Fill],
            ),
        ] {
            // GIVEN a JSON object under the product's key, larger than the service caches
            let cache = TestCache::default();
            let service = ProductService::new(cache.clone(), FakeStore::with(&[P1]), TTL);
            let foreign = format!(r#"{{"d":"{}"}}"#, "x".repeat(MAX_CACHED_BODY_BYTES));
            cache
                .inner()
                .set("product:p1", Bytes::from(foreign), TTL)
                .await
                .unwrap();
            if first_delete_fails {
                cache.fail_nth(Delete, 1);
            }
            // WHEN read THEN the table's product is served, and replaces it
            let served = service.get(&id("p1")).await.unwrap();
            assert_eq!(
                (served.cache, served.product),
                (CacheStatus::Miss, product(P1))
            );
            assert_eq!(
                cache.inner().get("product:p1").map(CacheEntry::decode),
                Some(CacheEntry::Product(product(P1)))
            );
            assert_eq!(
                cache.ops(),
                calls,
                "first delete fails: {first_delete_fails}"
            );
        }
    }

    #[tokio::test(start_paused = true)]
    async fn a_product_too_large_to_cache_is_served_from_the_table_and_never_cached() {
        // GIVEN a product cached, with its last-known-good copy
        let store = FakeStore::with(&[P1]);
        let cache = MemoryCache::default();
        let stale_ttl = Some(Duration::from_secs(3600));
        ProductService::new(cache.clone(), store.clone(), TTL)
            .with_stale_ttl(stale_ttl)
            .get(&id("p1"))
            .await
            .unwrap();
        assert!(cache.get(&stale_key("product:p1")).is_some());
        // WHEN it grows past what the cache may hold, its entry gone (its TTL), and a
        // process with an L1 tier reads it twice
        let large = format!(
            r#"{{"productId":"p1","d":"{}"}}"#,
            "x".repeat(MAX_CACHED_BODY_BYTES)
        );
        let expected = product(&large);
        store.put(&large);
        cache.delete("product:p1").await.unwrap();
        let service = ProductService::new(cache.clone(), store.clone(), TTL)
            .with_stale_ttl(stale_ttl)
            .with_l1(100, Duration::from_secs(60));
        let reads = store.reads();
        for read in 1..=2 {
            let served = service.get(&id("p1")).await.unwrap();
            // THEN it is served whole from the table each time: neither the cache nor
            // the L1 tier keeps it
            assert_eq!(served.cache, CacheStatus::Miss);
            assert!(served.product == expected, "not the table's product");
            assert_eq!(store.reads(), reads + read);
            // AND the key holds only a released lease, which the next reader takes at
            // once, and the smaller version's last-known-good copy is gone
            assert!(matches!(
                cached(&service, "product:p1"),
                Some(CacheEntry::Lease(lease)) if lease.is_released()
            ));
            assert_eq!(cache.get(&stale_key("product:p1")), None);
        }
    }

    #[tokio::test]
    async fn the_l1_tier_serves_hot_keys_without_the_cache_for_its_ttl() {
        // GIVEN a service with an L1 tier in front of a cache
        let store = FakeStore::with(&[P1]);
        let cache = MemoryCache::default();
        let service = ProductService::new(cache.clone(), store.clone(), TTL)
            .with_l1(100, Duration::from_secs(60));
        service.get(&id("p1")).await.unwrap();
        // WHEN the shared cache loses the entry (another process's invalidation)
        cache.delete("product:p1").await.unwrap();
        // THEN this process still serves it from L1: the documented staleness
        assert_eq!(
            service.get(&id("p1")).await.unwrap().cache,
            CacheStatus::Hit
        );
        assert_eq!(store.reads(), 1);
    }

    #[tokio::test]
    async fn a_lease_left_by_a_dead_reader_does_not_block_reads() {
        // GIVEN a lease nobody will ever replace
        let store = FakeStore::with(&[P1]);
        let service = ProductService::new(MemoryCache::default(), store.clone(), TTL);
        service
            .cache()
            .set("product:p1", Lease::new(LEASE_TTL).to_bytes(), LEASE_TTL)
            .await
            .unwrap();
        // WHEN read THEN the product is served from the table after a short wait
        let served = service.get(&id("p1")).await.unwrap();
        assert_eq!(
            (served.cache, served.product.body().as_ref()),
            (CacheStatus::Miss, P1.as_bytes())
        );
    }

    #[tokio::test(start_paused = true)]
    async fn markers_that_lost_their_ttl_stop_being_believed_at_their_own_expiry() {
        // GIVEN a missing marker and a lease whose own expiry has passed, kept by the
        // cache far longer (as after PERSIST or a restore)
        let store = FakeStore::with(&[P1, P1_V2.replace("p1", "p2").as_str()]);
        let service = ProductService::new(MemoryCache::default(), store.clone(), TTL);
        let past = Expiry::at_unix_millis(1);
        let stale = [
            ("product:p1", CacheEntry::Missing(past)),
            (
                "product:p2",
                CacheEntry::Lease(Lease::with_token(past, "dead")),
            ),
        ];
        for (key, entry) in &stale {
            service.cache().set(key, entry.encode(), TTL).await.unwrap();
        }
        // WHEN both are read
        let started = tokio::time::Instant::now();
        let p1 = service.get(&id("p1")).await.unwrap();
        let p2 = service.get(&id("p2")).await.unwrap();
        // THEN both come from the table at once (no wait for a fill), and the cache
        // holds the products again
        assert_eq!((p1.cache, p2.cache), (CacheStatus::Miss, CacheStatus::Miss));
        assert!(
            started.elapsed() < LEASE_POLL_INTERVAL,
            "{:?}",
            started.elapsed()
        );
        assert_eq!(
            cached(&service, "product:p1"),
            Some(CacheEntry::Product(p1.product))
        );
        assert_eq!(
            cached(&service, "product:p2"),
            Some(CacheEntry::Product(p2.product))
        );
        assert_eq!(store.reads(), 2);
    }

    #[tokio::test(start_paused = true)]
    async fn a_request_whose_cache_call_failed_never_reports_another_requests_fill() {
        // GIVEN a lease left by a reader in another process, and a request waiting for
        // its fill
        let store = FakeStore::with(&[P1]);
        let service = Arc::new(ProductService::new(
            TestCache::default(),
            store.clone(),
            TTL,
        ));
        let lease = Lease::new(LEASE_TTL);
        service
            .cache()
            .set("product:p1", lease.to_bytes(), LEASE_TTL)
            .await
            .unwrap();
        let waiting = tokio::spawn({
            let service = Arc::clone(&service);
            async move { service.get(&id("p1")).await.unwrap() }
        });
        // (the set, its first read and its first poll)
        while service.cache().calls() < 3 {
            tokio::task::yield_now().await;
        }
        // WHEN another request's cache call fails meanwhile
        service.cache().fail_nth(CacheOp::ReadOrLease, 3);
        let failed = service.get(&id("p1")).await.unwrap();
        // THEN it reports BYPASS (it did not join the fill), and the waiter its own MISS
        assert_eq!(failed.cache, CacheStatus::Bypass);
        assert_eq!(waiting.await.unwrap().cache, CacheStatus::Miss);
    }

    #[test]
    fn the_lease_outlives_the_slowest_store_read() {
        // GIVEN the store's read timeout (retries included), which the DynamoDB adapter uses
        assert_eq!(crate::adapters::aws::OPERATION_TIMEOUT, STORE_READ_TIMEOUT);
        // THEN a lease lives longer, so a slow read never fills after its lease is gone
        assert!(LEASE_TTL > STORE_READ_TIMEOUT);
    }

    #[tokio::test]
    async fn a_value_that_only_looks_like_json_is_never_served_and_is_replaced() {
        // GIVEN bytes that start with { and end with } but are not JSON
        let store = FakeStore::with(&[P1]);
        let service = ProductService::new(MemoryCache::default(), store.clone(), TTL);
        let garbage = Bytes::from_static(b"{not json}");
        service
            .cache()
            .set("product:p1", garbage, TTL)
            .await
            .unwrap();
        // WHEN the product is read
        let served = service.get(&id("p1")).await.unwrap();
        // THEN the table's product is served as a miss, and replaces the garbage
        assert_eq!(
            (served.cache, served.product.body().as_ref()),
            (CacheStatus::Miss, P1.as_bytes())
        );
        assert_eq!(
            cached(&service, "product:p1"),
            Some(CacheEntry::Product(product(P1)))
        );
    }

    const DAY: Duration = Duration::from_secs(86_400);

    /// Whether reading `raw` is a store error (a 503: no copy served).
    async fn unavailable(service: &ProductService<MemoryCache, FakeStore>, raw: &str) -> bool {
        matches!(service.get(&id(raw)).await, Err(ServiceError::Store(_)))
    }

    /// p1 served with copies kept, then its 300 s entry gone: only the copy is left.
    async fn only_a_copy_of_p1() -> (ProductService<MemoryCache, FakeStore>, MemoryCache) {
        let store = FakeStore::with(&[P1]);
        let cache = MemoryCache::default();
        let service =
            ProductService::new(cache.clone(), store.clone(), TTL).with_stale_ttl(Some(DAY));
        service.get(&id("p1")).await.unwrap();
        cache.delete("product:p1").await.unwrap();
        (service, cache)
    }

    /// How long reading `raw` took, and how it was answered.
    async fn timed_get(
        service: &ProductService<MemoryCache, FakeStore>,
        raw: &str,
    ) -> (Duration, Result<CacheStatus, ()>) {
        let started = tokio::time::Instant::now();
        let result = service.get(&id(raw)).await;
        (
            started.elapsed(),
            result.map(|served| served.cache).map_err(drop),
        )
    }

    #[tokio::test(start_paused = true)]
    async fn in_a_timeout_storm_misses_stop_waiting_out_the_store_timeout_and_it_ends_with_the_storm()
     {
        // GIVEN only a copy of p1, and a table that stops answering (every read times out)
        let (service, _cache) = only_a_copy_of_p1().await;
        let store = service.store().clone();
        store.hanging.store(true, Ordering::SeqCst);
        // WHEN misses keep coming THEN the first few each wait out the store's timeout
        for _ in 0..FAILURE_THRESHOLD {
            let (took, answer) = timed_get(&service, "p1").await;
            assert!(took >= STORE_READ_TIMEOUT, "{took:?}");
            assert!(
                matches!(answer, Ok(CacheStatus::Stale { .. })),
                "{answer:?}"
            );
        }
        // AND after them every miss is answered at once: the copy as STALE, others 503
        for _ in 0..5 {
            let (took, answer) = timed_get(&service, "p1").await;
            assert!(
                matches!(answer, Ok(CacheStatus::Stale { .. })),
                "{answer:?}"
            );
            assert!(took < Duration::from_millis(500), "STALE after {took:?}");
            let (took, answer) = timed_get(&service, "never-served").await;
            assert!(answer.is_err());
            assert!(took < Duration::from_millis(500), "503 after {took:?}");
        }
        // WHEN the table answers again THEN the very next miss is a MISS
        store.hanging.store(false, Ordering::SeqCst);
        let (_, answer) = timed_get(&service, "p1").await;
        assert_eq!(answer, Ok(CacheStatus::Miss));
        // AND the next failure gets the store's whole timeout again (the trouble ended)
        store.hanging.store(true, Ordering::SeqCst);
        let (took, _) = timed_get(&service, "never-served-2").await;
        assert!(took >= STORE_READ_TIMEOUT, "{took:?}");
    }

    #[tokio::test]
    async fn a_table_outage_serves_the_last_known_good_copy_as_stale() {
        // GIVEN p1 served once with copies kept, then its 300 s entry gone
        let (service, _cache) = only_a_copy_of_p1().await;
        let store = service.store().clone();
        // WHEN the table fails
        store.failing.store(true, Ordering::SeqCst);
        // THEN p1 is served STALE with its exact bytes, and a never-served id is an error
        let served = service.get(&id("p1")).await.unwrap();
        assert!(matches!(served.cache, CacheStatus::Stale { age_secs: 0 }));
        assert_eq!(served.product.body().as_ref(), P1.as_bytes());
        assert!(unavailable(&service, "never").await);
        // AND once the table is back, the next miss is a MISS
        store.failing.store(false, Ordering::SeqCst);
        assert_eq!(
            service.get(&id("p1")).await.unwrap().cache,
            CacheStatus::Miss
        );
    }

    #[tokio::test]
    async fn a_copy_is_never_served_when_the_table_answered_or_when_copies_are_off() {
        // GIVEN p1 served with copies kept, then deleted from the table
        let store = FakeStore::with(&[P1]);
        let cache = MemoryCache::default();
        let service =
            ProductService::new(cache.clone(), store.clone(), TTL).with_stale_ttl(Some(DAY));
        service.get(&id("p1")).await.unwrap();
        cache.delete("product:p1").await.unwrap();
        store.products.lock().unwrap().clear();
        // WHEN read THEN the table's "not found" wins over the copy
        assert!(matches!(
            service.get(&id("p1")).await,
            Err(ServiceError::NotFound(_))
        ));
        // AND with copies off, a table outage is an error as before
        let off = ProductService::new(MemoryCache::default(), FakeStore::with(&[P1]), TTL)
            .with_stale_ttl(None);
        off.get(&id("p1")).await.unwrap();
        off.cache().delete("product:p1").await.unwrap();
        off.store().failing.store(true, Ordering::SeqCst);
        assert!(matches!(
            off.get(&id("p1")).await,
            Err(ServiceError::Store(_))
        ));
        assert_eq!(off.cache().get(&stale_key("product:p1")), None);
    }

    #[tokio::test]
    async fn a_product_removed_through_the_stream_is_never_served_stale() {
        // GIVEN p1 served with copies kept, then removed through the stream
        let store = FakeStore::with(&[P1]);
        let cache = MemoryCache::default();
        let service =
            ProductService::new(cache.clone(), store.clone(), TTL).with_stale_ttl(Some(DAY));
        service.get(&id("p1")).await.unwrap();
        Invalidator::new(cache.clone(), TTL, NegativeTtl::default())
            .with_stale_ttl(Some(DAY))
            .apply(&Change::Remove(id("p1")))
            .await
            .unwrap();
        // WHEN the marker expires and the table fails
        cache.delete("product:p1").await.unwrap();
        store.failing.store(true, Ordering::SeqCst);
        // THEN there is no copy to serve
        assert_eq!(cache.get(&stale_key("product:p1")), None);
        assert!(matches!(
            service.get(&id("p1")).await,
            Err(ServiceError::Store(_))
        ));
    }

    #[tokio::test]
    async fn a_copy_is_never_served_when_the_table_answered_with_an_unservable_item() {
        // GIVEN only a copy of p1, and the table now holding an item for p1 that cannot
        // be served (the invalidator drops the copy for such a change, but has not yet)
        let (service, _cache) = only_a_copy_of_p1().await;
        service.store().malformed.store(true, Ordering::SeqCst);
        // WHEN read THEN the table's answer wins: an error, not the old copy
        assert!(unavailable(&service, "p1").await);
    }

    #[tokio::test]
    async fn a_copy_older_than_its_ttl_or_dated_in_the_future_is_not_served() {
        // GIVEN copies of p1 that outlived STALE_TTL_SECONDS (the key lost its TTL:
        // PERSIST, a restore, a TTL lowered since) or claim to be written far ahead
        let (service, cache) = only_a_copy_of_p1().await;
        service.store().failing.store(true, Ordering::SeqCst);
        let body = product(P1).body().clone();
        let written = |unix_millis: u64| {
            let mut bytes = format!("!stale:v1:{unix_millis}:").into_bytes();
            bytes.extend_from_slice(&body);
            Bytes::from(bytes)
        };
        let now = u64::try_from(
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .unwrap()
                .as_millis(),
        )
        .unwrap();
        let day_ms = u64::try_from(DAY.as_millis()).unwrap();
        for bytes in [
            written(now - day_ms - 60_000),
            written(1),
            written(now + 3_600_000),
            written(u64::MAX),
        ] {
            cache
                .set(&stale_key("product:p1"), bytes.clone(), DAY)
                .await
                .unwrap();
            // WHEN the table cannot answer THEN the copy is not served
            assert!(unavailable(&service, "p1").await, "{bytes:?}");
        }
        // AND a copy written within STALE_TTL_SECONDS still is, with its age
        cache
            .set(
                &stale_key("product:p1"),
                written(now - day_ms + 60_000),
                DAY,
            )
            .await
            .unwrap();
        let served = service.get(&id("p1")).await.unwrap();
        assert!(
            matches!(served.cache, CacheStatus::Stale { age_secs } if age_secs >= 86_340),
            "{:?}",
            served.cache
        );
    }

    #[tokio::test]
    async fn a_product_the_table_no_longer_has_loses_its_copy_even_if_the_stream_lost_the_remove() {
        // GIVEN only a copy of p1, and p1 deleted from the table without its REMOVE ever
        // reaching the cache (retries exhausted, record too old: sent to the DLQ)
        let (service, cache) = only_a_copy_of_p1().await;
        service.store().products.lock().unwrap().clear();
        // WHEN it is read while the table answers THEN it is not found
        assert!(matches!(
            service.get(&id("p1")).await,
            Err(ServiceError::NotFound(_))
        ));
        // AND once the missing marker has expired, a table outage serves no copy of it
        cache.delete("product:p1").await.unwrap();
        service.store().failing.store(true, Ordering::SeqCst);
        assert_eq!(cache.get(&stale_key("product:p1")), None);
        assert!(unavailable(&service, "p1").await);
    }

    #[tokio::test]
    async fn the_l1_tier_never_keeps_a_stale_answer() {
        // GIVEN only a copy of p1, and a process with an L1 tier on the same cache
        let (filler, cache) = only_a_copy_of_p1().await;
        let service = ProductService::new(cache, filler.store().clone(), TTL)
            .with_stale_ttl(Some(DAY))
            .with_l1(100, Duration::from_secs(60));
        // WHEN the table fails THEN p1 is served STALE
        filler.store().failing.store(true, Ordering::SeqCst);
        let served = service.get(&id("p1")).await.unwrap();
        assert!(matches!(served.cache, CacheStatus::Stale { .. }));
        // AND once the table is back the next read is a MISS from it, not an L1 HIT of
        // the copy
        filler.store().failing.store(false, Ordering::SeqCst);
        assert_eq!(
            service.get(&id("p1")).await.unwrap().cache,
            CacheStatus::Miss
        );
    }
}
