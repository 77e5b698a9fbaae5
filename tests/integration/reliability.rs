//! Failures and load against real services, on both cache engines where the behaviour is
//! shared: stampedes, negative caching, the cache killed under load or frozen, the
//! compare-and-set fill (Lua on Redis, CAS on memcached), and the table's emulator stopped.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use bytes::Bytes;
use product_catalog::adapters::{AnyCache, DynamoStore};
use product_catalog::domain::{Product, ProductId};
use product_catalog::error::StoreError;
use product_catalog::http::Api;
use product_catalog::ports::{Cache, ProductStore};
use product_catalog::service::ProductService;

use crate::helpers::{
    CacheServer, Emulator, Engine, on_each_engine, product_api, sample_table, service_env,
};

/// Counts GetItem calls on the way to the real table.
#[derive(Clone)]
struct CountingStore {
    inner: DynamoStore,
    reads: Arc<AtomicUsize>,
}

impl ProductStore for CountingStore {
    async fn get(&self, id: &ProductId) -> Result<Option<Product>, StoreError> {
        self.reads.fetch_add(1, Ordering::SeqCst);
        self.inner.get(id).await
    }
}

/// A measured figure, printed for `make figures` (scripts/figures.sh), which writes
/// them into docs/RELIABILITY.md.
fn figure(what: &str, value: &str) {
    println!("figure: {what} -> {value}");
}

/// A figure measured on one engine: Redis figures keep their names, memcached ones say so.
fn engine_figure(engine: Engine, what: &str, value: &str) {
    match engine {
        Engine::Redis => figure(what, value),
        // The shared tests name the cache as Redis; on memcached that is memcached.
        Engine::Memcached => {
            let what = what
                .replace("redis-server", "memcached")
                .replace("Redis", "memcached");
            figure(&format!("memcached: {what}"), value);
        }
    }
}

/// Four service instances with their own cache connections, like four Lambda
/// environments, in front of one counted table.
async fn instances(
    server: &CacheServer,
    table: &DynamoStore,
) -> (
    Vec<Arc<ProductService<AnyCache, CountingStore>>>,
    Arc<AtomicUsize>,
) {
    let reads = Arc::new(AtomicUsize::new(0));
    let mut services = Vec::new();
    for _ in 0..4 {
        let cache = server.cache(Duration::from_millis(200)).await;
        let store = CountingStore {
            inner: table.clone(),
            reads: Arc::clone(&reads),
        };
        services.push(Arc::new(ProductService::new(
            cache,
            store,
            Duration::from_secs(300),
        )));
    }
    (services, reads)
}

on_each_engine! {
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn sixty_four_concurrent_cold_gets_make_at_most_two_get_items(engine: Engine) {
    // GIVEN four instances on one cache, a counted table, a cold key
    let server = CacheServer::start(engine);
    let table = sample_table().await;
    let (services, reads) = instances(&server, &table).await;
    let id = ProductId::parse("P-10042").unwrap();
    // WHEN 64 requests for it arrive at once
    let mut tasks = tokio::task::JoinSet::new();
    for n in 0..64 {
        let (service, id) = (Arc::clone(&services[n % 4]), id.clone());
        tasks.spawn(async move { service.get(&id).await.map(|served| served.product) });
    }
    // THEN all get the same product from at most two GetItem calls
    let products = tasks.join_all().await;
    assert!(
        products
            .iter()
            .all(|p| p.as_ref().is_ok_and(|p| p == products[0].as_ref().unwrap()))
    );
    let get_items = reads.load(Ordering::SeqCst);
    engine_figure(
        engine,
        "64 concurrent cold GETs of one id over 4 instances",
        &format!("{get_items} GetItem"),
    );
    assert!(get_items <= 2, "{get_items} GetItem calls");
}
}

on_each_engine! {
#[tokio::test]
async fn a_hundred_gets_of_a_missing_id_make_at_most_two_get_items(engine: Engine) {
    // GIVEN four instances and an id the table lacks
    let server = CacheServer::start(engine);
    let table = sample_table().await;
    let (services, reads) = instances(&server, &table).await;
    let id = ProductId::parse("no-such-product").unwrap();
    // WHEN it is asked for 100 times THEN the table is read at most twice
    let started = Instant::now();
    for n in 0..100 {
        assert!(services[n % 4].get(&id).await.is_err());
    }
    assert!(started.elapsed() < Duration::from_secs(10));
    let get_items = reads.load(Ordering::SeqCst);
    engine_figure(
        engine,
        "100 GETs of a missing id within 10 s",
        &format!("{get_items} GetItem"),
    );
    assert!(get_items <= 2, "{get_items} GetItem calls");
}
}

on_each_engine! {
#[tokio::test]
async fn read_or_lease_and_fill_on_the_real_cache(engine: Engine) {
    // GIVEN an empty key on a real cache
    let server = CacheServer::start(engine);
    let cache = server.cache(Duration::from_millis(200)).await;
    let ttl = Duration::from_secs(5);
    let (lease, other, value) = (
        Bytes::from_static(b"lease"),
        Bytes::from_static(b"other"),
        Bytes::from_static(b"value"),
    );
    // WHEN a reader misses THEN its lease is stored; the next reader sees the lease
    let key = "product:k";
    assert_eq!(
        cache.read_or_lease(key, lease.clone(), ttl).await.unwrap(),
        None
    );
    assert_eq!(
        cache.read_or_lease(key, other.clone(), ttl).await.unwrap(),
        Some(lease.clone())
    );
    // WHEN a fill names a lease that is not there THEN nothing changes
    assert!(!cache.fill(key, other.clone(), value.clone(), ttl).await.unwrap());
    // WHEN the lease holder fills THEN the value replaces it, with the value's TTL
    let long = Duration::from_secs(300);
    assert!(
        cache
            .fill(key, lease.clone(), value.clone(), long)
            .await
            .unwrap()
    );
    let (stored, ttl) = server.get_with_ttl(key).await.unwrap();
    assert_eq!(stored, value);
    assert!((295..=300).contains(&ttl), "{ttl}");
    // AND an absent key is never filled
    let absent = "product:absent";
    assert!(!cache.fill(absent, lease.clone(), value.clone(), long).await.unwrap());
    assert_eq!(cache.read(absent).await.unwrap(), None);
    // AND a key rewritten after the lease was taken (an invalidation) is not filled
    let raced = "product:raced";
    assert_eq!(cache.read_or_lease(raced, lease.clone(), ttl_of(5)).await.unwrap(), None);
    cache.set(raced, other.clone(), long).await.unwrap();
    assert!(!cache.fill(raced, lease.clone(), value.clone(), long).await.unwrap());
    assert_eq!(cache.read(raced).await.unwrap(), Some(other.clone()));
    // AND the last-known-good copy is written only by a fill that replaced its lease
    let copy = ("product:/stale/{x}k2", Bytes::from_static(b"copy"), long);
    assert!(!cache.fill_keeping_copy(raced, lease.clone(), value.clone(), long, copy.clone()).await.unwrap());
    assert_eq!(cache.read(copy.0).await.unwrap(), None);
    let fresh = "product:k2";
    assert_eq!(cache.read_or_lease(fresh, lease.clone(), ttl_of(5)).await.unwrap(), None);
    assert!(cache.fill_keeping_copy(fresh, lease, value.clone(), long, copy.clone()).await.unwrap());
    assert_eq!(cache.read(fresh).await.unwrap(), Some(value));
    assert_eq!(cache.read(copy.0).await.unwrap(), Some(copy.1));
    // AND a delete empties a key; deleting it again is no error
    cache.delete(fresh).await.unwrap();
    cache.delete(fresh).await.unwrap();
    assert_eq!(cache.read(fresh).await.unwrap(), None);
}
}

fn ttl_of(seconds: u64) -> Duration {
    Duration::from_secs(seconds)
}

on_each_engine! {
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn killing_the_cache_under_load_costs_no_request(engine: Engine) {
    // GIVEN product-api under load from 16 workers
    let mut cache = CacheServer::start(engine);
    let table = sample_table().await;
    let (_server, port) = product_api(&service_env(&cache.url(), &table));

    // 2,000 requests over existing ids at concurrency 16; Redis is killed after 600.
    let http = reqwest::Client::new();
    let sent = Arc::new(AtomicUsize::new(0));
    let mut workers = tokio::task::JoinSet::new();
    for _ in 0..16 {
        let (http, sent) = (http.clone(), Arc::clone(&sent));
        workers.spawn(async move {
            let mut results = Vec::new();
            loop {
                let n = sent.fetch_add(1, Ordering::SeqCst);
                if n >= 2_000 {
                    return results;
                }
                let url = format!("http://127.0.0.1:{port}/product/P-{}", 10001 + n % 200);
                let started = Instant::now();
                let status = http
                    .get(url)
                    .send()
                    .await
                    .map(|r| r.status().as_u16())
                    .unwrap_or(0);
                results.push((status, started.elapsed()));
            }
        });
    }
    // WHEN the cache is killed after 600 requests
    while sent.load(Ordering::SeqCst) < 600 {
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
    cache.stop();
    // THEN all 2,000 requests succeed, none slower than a second
    let results: Vec<_> = workers.join_all().await.into_iter().flatten().collect();
    let failures = results
        .iter()
        .filter(|(status, _)| !(200..300).contains(status))
        .count();
    let slowest = results.iter().map(|(_, took)| *took).max().unwrap();
    engine_figure(
        engine,
        "2,000 requests at concurrency 16, redis-server SIGKILLed after 600",
        &format!("{failures} non-2xx, slowest {slowest:.0?}"),
    );
    assert_eq!(results.len(), 2_000);
    assert_eq!(failures, 0);
    assert!(slowest < Duration::from_secs(1), "slowest {slowest:?}");

    // AND when the cache is back, hits return within 10 s
    cache.restart();
    let restarted = Instant::now();
    let url = format!("http://127.0.0.1:{port}/product/P-10001");
    loop {
        let response = http.get(&url).send().await.unwrap();
        assert_eq!(response.status(), 200);
        if response.headers()["x-cache"] == "HIT" {
            break;
        }
        assert!(
            restarted.elapsed() < Duration::from_secs(10),
            "no hit within 10 s of the restart"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    engine_figure(
        engine,
        "hits again after Redis restarts",
        &format!("{:.1?}", restarted.elapsed()),
    );
}
}

#[tokio::test]
async fn with_the_table_stopped_cached_ids_are_served_and_others_get_503() {
    // GIVEN a product cached from an emulator of the test's own
    let server = CacheServer::start(Engine::Redis);
    let mut emulator = Emulator::start();
    let table = emulator.sample_table().await;
    let cache = server.cache(Duration::from_millis(200)).await;
    let api = Api::new(
        ProductService::new(cache, table, Duration::from_secs(300)),
        60,
    );
    let get = |id: &str| {
        http::Request::get(format!("/product/{id}"))
            .body(())
            .unwrap()
    };
    assert_eq!(api.handle(&get("P-10050")).await.status(), 200);

    // WHEN the emulator stops THEN the cached product is a HIT and an uncached one a quick 503
    emulator.stop();
    let cached = api.handle(&get("P-10050")).await;
    assert_eq!(cached.status(), 200);
    assert_eq!(cached.headers()["x-cache"], "HIT");
    let started = Instant::now();
    let uncached = api.handle(&get("P-10051")).await;
    assert_eq!(uncached.status(), 503);
    assert_eq!(uncached.headers()["retry-after"], "1");
    figure(
        "emulator stopped: uncached id answered 503 with Retry-After after",
        &format!("{:.1?}", started.elapsed()),
    );
    assert!(started.elapsed() < Duration::from_secs(5));
}

on_each_engine! {
#[tokio::test]
async fn a_frozen_cache_costs_at_most_the_timeout_and_recovers_when_thawed(engine: Engine) {
    // GIVEN a product cached
    let server = CacheServer::start(engine);
    let table = sample_table().await;
    let cache = server.cache(Duration::from_millis(50)).await;
    let api = Api::new(
        ProductService::new(cache, table, Duration::from_secs(300)),
        60,
    );
    let get = || http::Request::get("/product/P-10080").body(()).unwrap();
    assert_eq!(api.handle(&get()).await.headers()["x-cache"], "MISS");

    // WHEN the cache freezes THEN requests are quick 200 BYPASS and the breaker opens
    server.signal("-STOP");
    let mut slowest = Duration::ZERO;
    for _ in 0..50 {
        let started = Instant::now();
        let response = api.handle(&get()).await;
        slowest = slowest.max(started.elapsed());
        assert_eq!(response.status(), 200);
        assert_eq!(response.headers()["x-cache"], "BYPASS");
    }
    engine_figure(
        engine,
        "Redis frozen (SIGSTOP), 50 requests, all 200 BYPASS: slowest",
        &format!("{slowest:.0?}"),
    );
    assert!(slowest < Duration::from_millis(500), "{slowest:?}");
    assert!(api.service().cache_bypassed(), "the breaker should be open");

    // WHEN it thaws THEN hits return within 10 s
    server.signal("-CONT");
    let thawed = Instant::now();
    while api.handle(&get()).await.headers()["x-cache"] != "HIT" {
        assert!(
            thawed.elapsed() < Duration::from_secs(10),
            "no hit within 10 s of thawing"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    engine_figure(
        engine,
        "hits again after SIGCONT",
        &format!("{:.1?}", thawed.elapsed()),
    );
}
}
