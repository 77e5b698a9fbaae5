//! What holds on every cache engine beyond the read path's basics: an invalidation that
//! lands during a fill wins over the filler's stale read (on the real cache's
//! compare-and-set), ids of every shape round-trip (memcached keys are at most 250
//! printable bytes), and, on memcached, keys spread over several nodes and
//! `catalog invalidate`.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use bytes::Bytes;
use product_catalog::adapters::{DynamoStore, MemcachedCache};
use product_catalog::app;
use product_catalog::cache_entry::NegativeTtl;
use product_catalog::config::MemcachedUrl;
use product_catalog::domain::{Product, ProductId};
use product_catalog::error::StoreError;
use product_catalog::invalidate::{Change, Invalidator};
use product_catalog::item::item_from_json;
use product_catalog::ports::{Cache, ProductStore};
use product_catalog::service::{CacheStatus, ProductService};
use tokio::sync::Notify;

use crate::helpers::{
    CacheServer, MemcachedServer, api_config, dynamodb_endpoint, on_each_engine, sample_table,
};

const TTL: Duration = Duration::from_secs(300);

/// The real table, whose reads wait for `gate` once they have read (a slow filler).
#[derive(Clone)]
struct GatedStore {
    inner: DynamoStore,
    gate: Arc<Notify>,
    reads: Arc<AtomicUsize>,
}

impl ProductStore for GatedStore {
    async fn get(&self, id: &ProductId) -> Result<Option<Product>, StoreError> {
        let product = self.inner.get(id).await;
        self.reads.fetch_add(1, Ordering::SeqCst);
        self.gate.notified().await;
        product
    }
}

fn id(raw: &str) -> ProductId {
    ProductId::parse(raw).unwrap()
}

on_each_engine! {
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_invalidation_during_a_fill_wins_over_the_stale_read(engine: Engine) {
    // GIVEN a reader whose table read returned v1 but has not reached the cache yet
    let server = CacheServer::start(engine);
    let table = sample_table().await;
    let store = GatedStore {
        inner: table.clone(),
        gate: Arc::new(Notify::new()),
        reads: Arc::default(),
    };
    let cache = server.cache(Duration::from_millis(500)).await;
    let service = Arc::new(ProductService::new(cache, store.clone(), TTL));
    let reader = tokio::spawn({
        let service = Arc::clone(&service);
        async move { service.get(&id("P-10090")).await.unwrap() }
    });
    while store.reads.load(Ordering::SeqCst) == 0 {
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
    // WHEN the item is updated and the stream invalidator applies the change
    let v2 = r#"{"name":"Second","productId":"P-10090"}"#;
    table.put(item_from_json(v2).unwrap()).await.unwrap();
    let invalidator = Invalidator::new(server.cache(Duration::from_millis(500)).await, TTL, NegativeTtl::default());
    let new = Product::from_json_bytes(Bytes::from_static(v2.as_bytes()));
    invalidator.apply(&Change::Refresh(id("P-10090"), new)).await.unwrap();
    // AND only then the slow reader finishes its fill
    store.gate.notify_one();
    let stale = reader.await.unwrap();
    assert_ne!(stale.product.body().as_ref(), v2.as_bytes(), "the reader answers what it read");
    // THEN the cache holds the new version, not the stale one
    let (cached, _) = server.get_with_ttl("product:P-10090").await.unwrap();
    assert_eq!(cached.as_ref(), v2.as_bytes());
    store.gate.notify_one();
    let next = service.get(&id("P-10090")).await.unwrap();
    assert_eq!((next.cache, next.product.body().as_ref()), (CacheStatus::Hit, v2.as_bytes()));
}
}

on_each_engine! {
#[tokio::test]
async fn ids_of_every_shape_round_trip_through_the_cache(engine: Engine) {
    // GIVEN products whose ids hold spaces, unicode, and 256 bytes (past memcached's 250),
    // two of them alike in their first 250 bytes
    let server = CacheServer::start(engine);
    let table = sample_table().await;
    let long = "x".repeat(250);
    let ids = [
        "with space".to_owned(),
        "é 😀 ☕".to_owned(),
        format!("{long}-one-1"),
        format!("{long}-two-2"),
        "é".repeat(128),
    ];
    for raw in &ids {
        let item = serde_json::json!({"productId": raw, "name": format!("name of {raw}")});
        table.put(item_from_json(&item.to_string()).unwrap()).await.unwrap();
    }
    let api = app::build(&api_config(&server.url(), &table)).await.unwrap();
    for raw in &ids {
        let path = format!(
            "/product/{}",
            percent_encoding::utf8_percent_encode(raw, percent_encoding::NON_ALPHANUMERIC)
        );
        let request = || http::Request::get(&path).body(()).unwrap();
        // WHEN each is read twice THEN a MISS, then a HIT with its own product
        let first = api.handle(&request()).await;
        assert_eq!(first.status(), 200, "{raw}");
        assert_eq!(first.headers()["x-cache"], "MISS", "{raw}");
        let second = api.handle(&request()).await;
        assert_eq!(second.headers()["x-cache"], "HIT", "{raw}");
        let body: serde_json::Value = serde_json::from_slice(second.body()).unwrap();
        assert_eq!(body["productId"], raw.as_str());
    }
}
}

/// How many items a memcached holds (`stats`: `curr_items`).
fn items(server: &MemcachedServer) -> u64 {
    let mut stream = std::net::TcpStream::connect(("127.0.0.1", server.port)).unwrap();
    std::io::Write::write_all(&mut stream, b"stats\r\nquit\r\n").unwrap();
    let mut all = String::new();
    std::io::Read::read_to_string(&mut stream, &mut all).unwrap();
    all.lines()
        .find_map(|line| line.strip_prefix("STAT curr_items "))
        .unwrap()
        .trim()
        .parse()
        .unwrap()
}

#[tokio::test]
async fn keys_spread_over_every_memcached_node_and_each_is_found_again() {
    // GIVEN three memcached nodes in one MEMCACHED_URL
    let nodes = [
        MemcachedServer::start(),
        MemcachedServer::start(),
        MemcachedServer::start(),
    ];
    let list: Vec<String> = nodes
        .iter()
        .map(|n| format!("127.0.0.1:{}", n.port))
        .collect();
    let url = MemcachedUrl::try_from(format!("memcache://{}", list.join(","))).unwrap();
    let cache = MemcachedCache::new(&url, Duration::from_millis(500), 1).unwrap();
    // WHEN 300 keys are written
    for n in 0..300 {
        let value = Bytes::from(format!("value {n}"));
        cache
            .set(&format!("product:k{n}"), value, TTL)
            .await
            .unwrap();
    }
    // THEN every node holds a fair share, and each key reads back
    let shares: Vec<u64> = nodes.iter().map(items).collect();
    assert_eq!(shares.iter().sum::<u64>(), 300, "{shares:?}");
    assert!(shares.iter().all(|share| *share >= 60), "{shares:?}");
    for n in 0..300 {
        let value = cache.read(&format!("product:k{n}")).await.unwrap();
        assert_eq!(value.as_deref(), Some(format!("value {n}").as_bytes()));
    }
    // AND a client listing the nodes in another order finds the same keys
    let reversed: Vec<String> = list.iter().rev().cloned().collect();
    let url = MemcachedUrl::try_from(format!("memcache://{}", reversed.join(","))).unwrap();
    let other = MemcachedCache::new(&url, Duration::from_millis(500), 1).unwrap();
    for n in 0..300 {
        assert!(
            other
                .read(&format!("product:k{n}"))
                .await
                .unwrap()
                .is_some(),
            "k{n}"
        );
    }
}

#[tokio::test]
async fn catalog_invalidate_drops_the_memcached_entry() {
    // GIVEN a product cached in memcached
    let server = MemcachedServer::start();
    let table = sample_table().await;
    let api = app::build(&api_config(&server.url(), &table))
        .await
        .unwrap();
    let get = || http::Request::get("/product/P-10095").body(()).unwrap();
    assert_eq!(api.handle(&get()).await.headers()["x-cache"], "MISS");
    assert!(server.get_with_ttl("product:P-10095").is_some());
    // WHEN the operator runs `catalog invalidate` with MEMCACHED_URL
    dynamodb_endpoint();
    let output = std::process::Command::new(env!("CARGO_BIN_EXE_catalog"))
        .env_clear()
        .envs(std::env::vars().filter(|(k, _)| k.starts_with("AWS_")))
        .env("MEMCACHED_URL", server.url())
        .args(["invalidate", "P-10095"])
        .output()
        .unwrap();
    assert!(output.status.success(), "{output:?}");
    // THEN the entry is gone and the next read is a MISS
    assert!(server.get_with_ttl("product:P-10095").is_none());
    assert_eq!(api.handle(&get()).await.headers()["x-cache"], "MISS");
}

#[tokio::test]
async fn a_value_over_the_memcached_item_size_is_refused_for_that_key_only() {
    // GIVEN memcached with its default 1 MB item size
    let server = MemcachedServer::start();
    let url = MemcachedUrl::try_from(server.url()).unwrap();
    let cache = MemcachedCache::new(&url, Duration::from_millis(500), 1).unwrap();
    // WHEN a 2 MB value is written THEN that call is refused as a problem of its own key
    let err = cache
        .set("product:huge", Bytes::from(vec![b'x'; 2 << 20]), TTL)
        .await
        .unwrap_err();
    assert!(!err.is_outage(), "{err:?}");
    // AND a DynamoDB-sized value (400 KB) and the next calls go through
    let big = Bytes::from(vec![b'y'; 400 * 1024]);
    cache.set("product:big", big.clone(), TTL).await.unwrap();
    assert_eq!(cache.read("product:big").await.unwrap(), Some(big));
    assert_eq!(cache.read("product:huge").await.unwrap(), None);
}

#[tokio::test]
async fn a_fill_by_a_process_that_did_not_take_the_lease_compares_the_value() {
    // GIVEN a lease taken through one client (which remembers its CAS) and a second
    // client that does not know it (as after the CAS was evicted from the first)
    let server = MemcachedServer::start();
    let url = MemcachedUrl::try_from(server.url()).unwrap();
    let taker = MemcachedCache::new(&url, Duration::from_millis(500), 1).unwrap();
    let other = MemcachedCache::new(&url, Duration::from_millis(500), 1).unwrap();
    let (lease, value) = (
        Bytes::from_static(b"!lease:v1:1:t"),
        Bytes::from_static(b"{}"),
    );
    let short = Duration::from_secs(5);
    assert_eq!(
        taker
            .read_or_lease("product:a", lease.clone(), short)
            .await
            .unwrap(),
        None
    );
    // WHEN the second client fills with the lease THEN it reads the CAS and succeeds
    assert!(
        other
            .fill("product:a", lease.clone(), value.clone(), TTL)
            .await
            .unwrap()
    );
    assert_eq!(server.get_with_ttl("product:a").unwrap().0, value);
    // AND the first client's remembered CAS no longer matches: its fill stores nothing
    assert!(
        !taker
            .fill("product:a", lease, Bytes::from_static(b"{\"x\":1}"), TTL)
            .await
            .unwrap()
    );
    assert_eq!(server.get_with_ttl("product:a").unwrap().0, value);
}

/// A TCP relay to `port` that forwards what clients send only while `open` holds true
/// (replies always pass): a node whose requests are held in the network.
async fn held_relay(port: u16, open: tokio::sync::watch::Receiver<bool>) -> u16 {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let relay = listener.local_addr().unwrap().port();
    tokio::spawn(async move {
        while let Ok((client, _)) = listener.accept().await {
            let server = tokio::net::TcpStream::connect(("127.0.0.1", port))
                .await
                .unwrap();
            let (mut client_read, mut client_write) = client.into_split();
            let (mut server_read, mut server_write) = server.into_split();
            tokio::spawn(async move {
                let _ = tokio::io::copy(&mut server_read, &mut client_write).await;
            });
            let mut open = open.clone();
            tokio::spawn(async move {
                let mut buffer = vec![0; 64 * 1024];
                loop {
                    let read = tokio::io::AsyncReadExt::read(&mut client_read, &mut buffer).await;
                    let Ok(read @ 1..) = read else { break };
                    if open.wait_for(|open| *open).await.is_err() {
                        break;
                    }
                    let chunk = &buffer[..read];
                    if tokio::io::AsyncWriteExt::write_all(&mut server_write, chunk)
                        .await
                        .is_err()
                    {
                        break;
                    }
                }
            });
        }
    });
    relay
}

/// A client for memcached nodes on these ports.
fn memcached_client(ports: &[u16]) -> MemcachedCache {
    let nodes: Vec<String> = ports.iter().map(|p| format!("127.0.0.1:{p}")).collect();
    let url = MemcachedUrl::try_from(format!("memcache://{}", nodes.join(","))).unwrap();
    MemcachedCache::new(&url, Duration::from_secs(2), 1).unwrap()
}

/// A product key that `cache` puts on the node `on_a` reaches, and whose last-known-good
/// copy on the node `on_b` reaches.
async fn key_split_over(
    cache: &MemcachedCache,
    on_a: &MemcachedCache,
    on_b: &MemcachedCache,
) -> String {
    use product_catalog::cache_entry::stale_key;
    let probe = Bytes::from_static(b"probe");
    for n in 0.. {
        let key = format!("product:split{n}");
        cache.set(&key, probe.clone(), TTL).await.unwrap();
        cache
            .set(&stale_key(&key), probe.clone(), TTL)
            .await
            .unwrap();
        let entry_on_a = on_a.read(&key).await.unwrap().is_some();
        let copy_on_b = on_b.read(&stale_key(&key)).await.unwrap().is_some();
        cache.delete(&key).await.unwrap();
        cache.delete(&stale_key(&key)).await.unwrap();
        if entry_on_a && copy_on_b {
            return key;
        }
    }
    unreachable!()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_removal_between_the_fill_and_its_copy_on_another_node_leaves_no_copy() {
    // GIVEN two memcached nodes, the second reached through a relay that can hold
    // requests, and a key whose entry is on the first node and whose copy on the second
    use product_catalog::cache_entry::stale_key;
    let (a, b) = (MemcachedServer::start(), MemcachedServer::start());
    let (open, gate) = tokio::sync::watch::channel(true);
    let relay = held_relay(b.port, gate).await;
    let (cache, on_a, on_b) = (
        memcached_client(&[a.port, relay]),
        memcached_client(&[a.port]),
        memcached_client(&[b.port]),
    );
    let key = key_split_over(&cache, &on_a, &on_b).await;
    let lease = Bytes::from_static(b"!lease:v1:1:race");
    assert_eq!(
        cache.read_or_lease(&key, lease.clone(), TTL).await.unwrap(),
        None
    );
    // WHEN the reader fills (entry and copy of v1) while the second node's requests are held
    open.send_replace(false);
    let v1 = Bytes::from_static(b"{\"v\":1}");
    let fill = tokio::spawn({
        let (cache, key, v1) = (cache.clone(), key.clone(), v1.clone());
        async move {
            let copy = (stale_key(&key), v1.clone(), TTL);
            cache
                .fill_keeping_copy(&key, lease, v1, TTL, (&copy.0, copy.1, copy.2))
                .await
        }
    });
    for _ in 0..300 {
        if on_a.read(&key).await.unwrap().as_ref() == Some(&v1) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
    // AND the product is removed meanwhile (the invalidator: entry first, then copy)
    on_a.set(&key, Bytes::from_static(b"!missing"), TTL)
        .await
        .unwrap();
    on_b.delete(&stale_key(&key)).await.unwrap();
    // AND only then the held requests reach the second node
    open.send_replace(true);
    let _ = fill.await.unwrap();
    // THEN no copy of the removed product is left to be served in an outage
    assert_eq!(on_b.read(&stale_key(&key)).await.unwrap(), None);
}

#[tokio::test]
async fn with_one_memcached_node_down_the_other_nodes_keys_stay_cached() {
    // GIVEN a service over three memcached nodes, and products cached on each
    let mut nodes = [
        MemcachedServer::start(),
        MemcachedServer::start(),
        MemcachedServer::start(),
    ];
    let cache = memcached_client(&nodes.iter().map(|n| n.port).collect::<Vec<_>>());
    let service = ProductService::new(cache, sample_table().await, TTL);
    let mut on_node: [Vec<ProductId>; 3] = Default::default();
    for n in 1..=30 {
        let id = id(&format!("P-{}", 10000 + n));
        assert_eq!(service.get(&id).await.unwrap().cache, CacheStatus::Miss);
        let node = nodes
            .iter()
            .position(|node| node.get_with_ttl(&id.cache_key()).is_some());
        on_node[node.unwrap()].push(id);
    }
    assert!(on_node.iter().all(|ids| ids.len() >= 3), "{on_node:?}");
    // WHEN the first node goes down and its keys are read, again and again
    nodes[0].stop();
    for id in on_node[0].iter().cycle().take(6) {
        assert_eq!(service.get(id).await.unwrap().cache, CacheStatus::Bypass);
    }
    // THEN the other nodes' keys are still hits
    for id in on_node[1].iter().chain(&on_node[2]) {
        assert_eq!(
            service.get(id).await.unwrap().cache,
            CacheStatus::Hit,
            "{id:?}"
        );
    }
    // AND once the node is back (empty), its keys are cached again by themselves
    nodes[0].restart();
    tokio::time::sleep(product_catalog::breaker::COOL_DOWN).await;
    let back = &on_node[0][0];
    let first = service.get(back).await.unwrap().cache;
    assert_eq!(first, CacheStatus::Miss);
    assert_eq!(service.get(back).await.unwrap().cache, CacheStatus::Hit);
}

#[tokio::test]
async fn with_the_copy_node_down_a_fill_still_caches_the_entry() {
    // GIVEN two memcached nodes, and a key whose entry is on the first and whose copy
    // on the second, which then goes down
    use product_catalog::cache_entry::stale_key;
    let (a, mut b) = (MemcachedServer::start(), MemcachedServer::start());
    let (cache, on_a, on_b) = (
        memcached_client(&[a.port, b.port]),
        memcached_client(&[a.port]),
        memcached_client(&[b.port]),
    );
    let key = key_split_over(&cache, &on_a, &on_b).await;
    b.stop();
    let lease = Bytes::from_static(b"!lease:v1:1:down");
    assert_eq!(
        cache.read_or_lease(&key, lease.clone(), TTL).await.unwrap(),
        None
    );
    // WHEN the reader fills, with its copy
    let v1 = Bytes::from_static(b"{\"v\":1}");
    let copy = (stale_key(&key), v1.clone(), TTL);
    let filled = cache
        .fill_keeping_copy(&key, lease, v1.clone(), TTL, (&copy.0, copy.1, copy.2))
        .await;
    // THEN the entry is cached all the same (only the copy is missing)
    assert!(filled.unwrap(), "the fill happened");
    assert_eq!(on_a.read(&key).await.unwrap(), Some(v1));
}
