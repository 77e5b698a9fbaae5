//! The read path with the real clients: fred against `redis-server` and our meta-protocol
//! client against `memcached` (the shared behaviour tests run on both), aws-sdk-dynamodb
//! against the emulator.

use std::time::{Duration, Instant};

use bytes::Bytes;
use fred::prelude::KeysInterface;
use http::{Response, StatusCode};
use product_catalog::adapters::{DynamoStore, aws::sdk_config};
use product_catalog::app::{self, ProductApi};
use product_catalog::cache_entry::CacheEntry;
use product_catalog::domain::MAX_CACHED_BODY_BYTES;
use product_catalog::http::Api;
use product_catalog::item::item_from_json;
use product_catalog::service::ProductService;

use crate::helpers::{
    CacheServer, RedisServer, api_config, api_config_with, free_port, fresh_table, on_each_engine,
    sample_table,
};

async fn get(api: &ProductApi, id: &str) -> Response<Bytes> {
    let path = format!(
        "/product/{}",
        percent_encoding::utf8_percent_encode(id, percent_encoding::NON_ALPHANUMERIC)
    );
    api.handle(&http::Request::get(path).body(()).unwrap())
        .await
}

fn x_cache(response: &Response<Bytes>) -> &str {
    response
        .headers()
        .get("x-cache")
        .map_or("", |v| v.to_str().unwrap())
}

on_each_engine! {
#[tokio::test]
async fn a_miss_fills_the_cache_with_the_served_bytes_for_the_ttl_then_hits(engine: Engine) {
    // GIVEN the service on a real cache and the emulator, cold
    let server = CacheServer::start(engine);
    let table = sample_table().await;
    let api = app::build(&api_config(&server.url(), &table)).await.unwrap();

    // WHEN a product is read THEN a MISS, and the cache holds exactly the served bytes for the TTL
    let first = get(&api, "P-10001").await;
    assert_eq!(first.status(), StatusCode::OK);
    assert_eq!(x_cache(&first), "MISS");
    let (stored, ttl) = server.get_with_ttl("product:P-10001").await.unwrap();
    assert!((295..=300).contains(&ttl), "TTL {ttl}");
    assert_eq!(stored, first.body(), "the cache holds exactly the served bytes");
    assert!(
        std::str::from_utf8(&stored)
            .unwrap()
            .contains("12345678901234567890.123456789")
    );

    // WHEN it is read again THEN a HIT with the same bytes
    let second = get(&api, "P-10001").await;
    assert_eq!(x_cache(&second), "HIT");
    assert_eq!(second.body(), first.body());
}
}

#[tokio::test]
async fn with_ttl_jitter_the_products_filled_together_expire_apart_within_the_ttl() {
    // GIVEN the service configured as an operator would, with CACHE_TTL_JITTER_PERCENT=20
    let redis = RedisServer::start();
    let table = sample_table().await;
    let config = api_config_with(&redis.url(), &table, &[("CACHE_TTL_JITTER_PERCENT", "20")]);
    let api = app::build(&config).await.unwrap();
    let client = redis.client().await;
    // WHEN 40 products are filled one after the other
    let mut ttls = Vec::new();
    for n in 0..40 {
        let key = format!("P-{}", 10001 + n);
        assert_eq!(x_cache(&get(&api, &key).await), "MISS");
        let pttl: i64 = client.pttl(format!("product:{key}")).await.unwrap();
        ttls.push(pttl);
    }
    // THEN Redis expires each between 240 s and 300 s, spread over that range
    assert!(
        ttls.iter().all(|ms| (239_000..=300_000).contains(ms)),
        "{ttls:?}"
    );
    let spread = ttls.iter().max().unwrap() - ttls.iter().min().unwrap();
    assert!(
        spread > 20_000,
        "PTTLs spread over only {spread} ms: {ttls:?}"
    );
}

#[tokio::test]
async fn every_dynamodb_type_is_served_as_plain_json_with_exact_numbers() {
    // GIVEN an item with every DynamoDB type, written through the SDK
    let redis = RedisServer::start();
    let table = fresh_table().await;
    // Sets and binary cannot be written from JSON; add them as DynamoDB types.
    let mut item = item_from_json(
        r#"{"productId":"exotic ☕ 1","price":12345678901234567890.123456789,"tiny":-0.000000000000000000000000000001,
            "nested":{"list":[1,"two",true,null,{"deep":1.50}]},"empty":"","flag":false}"#,
    )
    .unwrap();
    item.insert(
        "tags".into(),
        serde_dynamo::AttributeValue::Ss(vec!["a".into(), "b".into()]),
    );
    item.insert(
        "sizes".into(),
        serde_dynamo::AttributeValue::Ns(vec!["1.5".into()]),
    );
    item.insert(
        "thumb".into(),
        serde_dynamo::AttributeValue::B(vec![0, 1, 2, 255]),
    );
    table.put(item).await.unwrap();
    let api = app::build(&api_config(&redis.url(), &table)).await.unwrap();

    // WHEN it is read THEN plain JSON with sorted keys and exact numbers
    let response = get(&api, "exotic ☕ 1").await;
    assert_eq!(response.status(), StatusCode::OK);
    // Key order is sorted; the emulator may return set members in any order. DynamoDB
    // itself trims trailing zeros (1.50 is stored as 1.5); every other digit is kept.
    let body = std::str::from_utf8(response.body()).unwrap();
    assert!(
        body.starts_with(r#"{"empty":"","flag":false,"nested":{"list":[1,"two",true,null,{"deep":1.5}]},"price":12345678901234567890.123456789,"productId":"exotic ☕ 1","sizes":[1.5],"tags":["#),
        "{body}"
    );
    assert!(
        body.ends_with(r#"],"thumb":"AAEC/w==","tiny":-0.000000000000000000000000000001}"#),
        "{body}"
    );
}

on_each_engine! {
#[tokio::test]
async fn unknown_ids_are_404_and_remembered_for_the_negative_ttl(engine: Engine) {
    // GIVEN an id the table lacks
    let server = CacheServer::start(engine);
    let table = sample_table().await;
    let api = app::build(&api_config(&server.url(), &table)).await.unwrap();
    // WHEN it is read THEN 404, and the missing marker sits under its key for the negative TTL
    assert_eq!(get(&api, "missing-1").await.status(), StatusCode::NOT_FOUND);
    let (marker, ttl) = server.get_with_ttl("product:missing-1").await.unwrap();
    assert!(matches!(CacheEntry::decode(marker), CacheEntry::Missing(_)));
    assert!((25..=30).contains(&ttl), "TTL {ttl}");
    // AND the next read is a 404 too
    assert_eq!(get(&api, "missing-1").await.status(), StatusCode::NOT_FOUND);
}
}

on_each_engine! {
#[tokio::test]
async fn the_cache_going_down_degrades_to_bypass_and_hits_return_after_restart(engine: Engine) {
    // GIVEN a product cached in a working cache
    let mut server = CacheServer::start(engine);
    let table = sample_table().await;
    let api = app::build(&api_config(&server.url(), &table)).await.unwrap();
    assert_eq!(x_cache(&get(&api, "P-10010").await), "MISS");

    // WHEN the cache dies THEN every read is a quick 200 BYPASS
    server.stop();
    for _ in 0..5 {
        let started = Instant::now();
        let response = get(&api, "P-10010").await;
        assert_eq!(response.status(), StatusCode::OK);
        assert_eq!(x_cache(&response), "BYPASS");
        assert!(
            started.elapsed() < Duration::from_secs(1),
            "took {:?}",
            started.elapsed()
        );
    }

    // WHEN it comes back (empty, for memcached) THEN hits return within 10 s
    server.restart();
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let response = get(&api, "P-10010").await;
        assert_eq!(response.status(), StatusCode::OK);
        if x_cache(&response) == "HIT" {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "no cache hit within 10 s of the cache coming back"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}
}

on_each_engine! {
#[tokio::test]
async fn an_unreachable_cache_at_start_up_does_not_stop_the_service(engine: Engine) {
    // GIVEN a cache URL nobody listens on
    let table = sample_table().await;
    let nowhere = CacheServer::not_started(engine).url();
    // WHEN the service starts THEN it starts quickly and serves from the table
    let started = Instant::now();
    let api = app::build(&api_config(&nowhere, &table)).await.unwrap();
    assert!(
        started.elapsed() < Duration::from_secs(3),
        "start-up took {:?}",
        started.elapsed()
    );
    let response = get(&api, "P-10011").await;
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(x_cache(&response), "BYPASS");
}
}

on_each_engine! {
#[tokio::test]
async fn a_failing_table_still_serves_cached_products_and_503s_the_rest(engine: Engine) {
    // GIVEN one product cached through a healthy service
    let server = CacheServer::start(engine);
    let table = sample_table().await;
    // Warm one product through a healthy service.
    let healthy = app::build(&api_config(&server.url(), &table)).await.unwrap();
    assert_eq!(get(&healthy, "P-10020").await.status(), StatusCode::OK);

    // WHEN the same cache is in front of a table nobody answers for
    // The same cache in front of a table nobody answers for.
    let dead_endpoint = format!("http://127.0.0.1:{}", free_port());
    let client = aws_sdk_dynamodb::Client::from_conf(
        aws_sdk_dynamodb::config::Builder::from(&sdk_config().await)
            .endpoint_url(dead_endpoint)
            .build(),
    );
    let cache = server.cache(Duration::from_millis(50)).await;
    let service = ProductService::new(
        cache,
        DynamoStore::new(client, table.table().clone()),
        Duration::from_secs(300),
    );
    let broken = Api::new(service, 60);

    // THEN the cached product is still a HIT, and an uncached one a 503 with Retry-After
    let cached = broken
        .handle(&http::Request::get("/product/P-10020").body(()).unwrap())
        .await;
    assert_eq!(cached.status(), StatusCode::OK);
    assert_eq!(x_cache(&cached), "HIT");

    let uncached = broken
        .handle(&http::Request::get("/product/P-10021").body(()).unwrap())
        .await;
    assert_eq!(uncached.status(), StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(uncached.headers()["retry-after"], "1");
    let body: serde_json::Value = serde_json::from_slice(uncached.body()).unwrap();
    assert_eq!(body["error"], "unavailable");
}
}

#[tokio::test]
async fn a_missing_marker_that_lost_its_ttl_stops_being_believed_within_its_ttl() {
    // GIVEN NEGATIVE_CACHE_TTL_SECONDS=2 and an id the table lacks, remembered as missing
    let redis = RedisServer::start();
    let table = sample_table().await;
    let config = api_config_with(&redis.url(), &table, &[("NEGATIVE_CACHE_TTL_SECONDS", "2")]);
    let api = app::build(&config).await.unwrap();
    let marked = Instant::now();
    assert_eq!(get(&api, "late-1").await.status(), StatusCode::NOT_FOUND);
    // WHEN the marker loses its TTL (PERSIST) and the product is written without a
    // stream invalidation
    let client = redis.client().await;
    let persisted: bool = client.persist("product:late-1").await.unwrap();
    assert!(persisted);
    let item = item_from_json(r#"{"name":"Late","productId":"late-1"}"#).unwrap();
    table.put(item).await.unwrap();
    // THEN the marker is believed until its own expiry, and not after: the product is
    // served (a MISS) within the 2 s, and cached with the product TTL
    while get(&api, "late-1").await.status() == StatusCode::NOT_FOUND {
        assert!(
            marked.elapsed() < Duration::from_millis(2_500),
            "still 404 {:?} after a 2 s marker was written",
            marked.elapsed()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(
        marked.elapsed() >= Duration::from_millis(1_900),
        "{:?}",
        marked.elapsed()
    );
    let stored: Bytes = client.get("product:late-1").await.unwrap();
    assert_eq!(stored.as_ref(), br#"{"name":"Late","productId":"late-1"}"#);
    let ttl: i64 = client.ttl("product:late-1").await.unwrap();
    assert!((295..=300).contains(&ttl), "TTL {ttl}");
}

on_each_engine! {
#[tokio::test]
async fn a_value_too_large_to_be_ours_is_never_served_and_is_replaced(engine: Engine) {
    // GIVEN a JSON object larger than the service ever caches, under a product's key (a
    // generous timeout: this is about what the value is, not how long a debug build
    // takes to read it on a busy machine)
    let server = CacheServer::start(engine);
    let table = sample_table().await;
    let timeouts = [("REDIS_TIMEOUT_MS", "5000"), ("MEMCACHED_TIMEOUT_MS", "5000")];
    let api = app::build(&api_config_with(&server.url(), &table, &timeouts))
        .await
        .unwrap();
    let foreign = format!(
        r#"{{"productId":"P-10012","d":"{}"}}"#,
        "x".repeat(MAX_CACHED_BODY_BYTES)
    );
    server.put("product:P-10012", foreign.as_bytes()).await;
    // WHEN the product is read
    let response = get(&api, "P-10012").await;
    // THEN the table's product is served (a MISS), and it replaces the value
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(x_cache(&response), "MISS");
    assert!(response.body().len() < 10_000, "{}", response.body().len());
    let (stored, _) = server.get_with_ttl("product:P-10012").await.unwrap();
    assert_eq!(stored, response.body());
    assert_eq!(x_cache(&get(&api, "P-10012").await), "HIT");
}
}

on_each_engine! {
#[tokio::test]
async fn a_value_that_only_looks_like_json_is_never_served_and_is_replaced(engine: Engine) {
    // GIVEN bytes that start with { and end with } but are not JSON, under a product's key
    let server = CacheServer::start(engine);
    let table = sample_table().await;
    let api = app::build(&api_config(&server.url(), &table)).await.unwrap();
    server.put("product:P-10012", b"{not json}").await;
    // WHEN the product is read
    let response = get(&api, "P-10012").await;
    // THEN the table's product is served (a MISS), and it replaces the bad value
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(x_cache(&response), "MISS");
    serde_json::from_slice::<serde_json::Value>(response.body()).expect("a JSON body");
    let (stored, _) = server.get_with_ttl("product:P-10012").await.unwrap();
    assert_eq!(stored, response.body());
    assert_eq!(x_cache(&get(&api, "P-10012").await), "HIT");
}
}
