//! The `cache-invalidator` binary on real Redis and memcached, with stream records for items written
//! to the emulator, and the read path seeing the result.

use product_catalog::app;
use product_catalog::item::item_from_json;
use serde_json::{Value, json};

use crate::helpers::{
    CacheServer, api_config, on_each_engine, run_invalidator, sample_table, stream_record,
};

/// Runs the invalidator on one event, as the local (stdin) mode does.
fn invalidate(server: &CacheServer, event: &Value) -> Value {
    let (var, url) = server.env();
    run_invalidator(&[(var, url.as_ref())], event)
}

on_each_engine! {
#[tokio::test]
async fn modify_and_remove_records_are_visible_on_the_next_get(engine: Engine) {
    // GIVEN a product cached by the API
    let redis = CacheServer::start(engine);
    let table = sample_table().await;
    let api = app::build(&api_config(&redis.url(), &table)).await.unwrap();
    let get = |id: &str| {
        http::Request::get(format!("/product/{id}"))
            .body(())
            .unwrap()
    };

    // Cached old version.
    assert_eq!(
        api.handle(&get("P-10060")).await.headers()["x-cache"],
        "MISS"
    );

    // WHEN the item changes and cache-invalidator gets its MODIFY record
    // The item changes in the table; its stream record reaches the invalidator.
    let updated =
        item_from_json(r#"{"productId":"P-10060","name":"Renamed","price":99.95,"stock":3}"#)
            .unwrap();
    table.put(updated.clone()).await.unwrap();
    let image = serde_json::to_value(&updated).unwrap();
    let reply = invalidate(
        &redis,
        &json!({"Records": [stream_record("MODIFY", "P-10060", Some(&image), 1)]}),
    );
    assert_eq!(reply["batchItemFailures"], json!([]));

    // THEN the next read is a HIT with the new version, the bytes a miss would store
    let after = api.handle(&get("P-10060")).await;
    assert_eq!(after.headers()["x-cache"], "HIT");
    assert_eq!(
        after.body().as_ref(),
        br#"{"name":"Renamed","price":99.95,"productId":"P-10060","stock":3}"#
    );
    // The refreshed bytes are exactly what a miss would store.
    redis.remove("product:P-10060").await;
    let refilled = api.handle(&get("P-10060")).await;
    assert_eq!(refilled.headers()["x-cache"], "MISS");
    assert_eq!(refilled.body(), after.body());

    // WHEN the item is deleted and its REMOVE record applied THEN the next read is a 404
    // Removed: 404 at once, from the cache.
    table
        .delete(&product_catalog::domain::ProductId::parse("P-10060").unwrap())
        .await
        .unwrap();
    invalidate(
        &redis,
        &json!({"Records": [stream_record("REMOVE", "P-10060", None, 2)]}),
    );
    assert_eq!(api.handle(&get("P-10060")).await.status(), 404);
}
}

on_each_engine! {
#[tokio::test]
async fn with_the_cache_down_the_first_record_is_reported_for_retry(engine: Engine) {
    // GIVEN a cache that is down
    let mut redis = CacheServer::start(engine);
    redis.stop();
    let image = json!({"productId": {"S": "x"}});
    let event = json!({"Records": [stream_record("MODIFY", "x", Some(&image), 41), stream_record("MODIFY", "x", Some(&image), 42)]});
    // WHEN a batch of two records arrives THEN the first is reported, so Lambda retries from it
    let reply = invalidate(&redis, &event);
    assert_eq!(
        reply["batchItemFailures"],
        json!([{"itemIdentifier": "41"}])
    );
}
}
