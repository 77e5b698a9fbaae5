//! Issue 11 on real services: `product-api` and `cache-invalidator` as processes, a
//! `redis-server`, and an emulator of the test's own that is stopped (the outage) and
//! started again.

use fred::prelude::{Client, ClientLike, KeysInterface};
use fred::types::CustomCommand;
use product_catalog::cache_entry::stale_key;
use serde_json::json;

use crate::helpers::{ChildGuard, Emulator, Endpoint, RedisServer, product_api, run_invalidator};

/// Environment for product-api (or the invalidator) on this Redis and this emulator's
/// `Products` table.
fn env(redis: &RedisServer, emulator: &Emulator, extra: &[(&str, &str)]) -> Vec<(String, String)> {
    let mut env: Vec<(String, String)> = std::env::vars()
        .filter(|(k, _)| k.starts_with("AWS_"))
        .collect();
    env.retain(|(k, _)| k != "AWS_ENDPOINT_URL_DYNAMODB");
    env.push((
        "AWS_ENDPOINT_URL_DYNAMODB".into(),
        emulator.endpoint.clone(),
    ));
    env.push(("REDIS_URL".into(), redis.url()));
    env.push(("TABLE_NAME".into(), "Products".into()));
    env.push(("RUST_LOG".into(), "error".into()));
    for (k, v) in extra {
        env.push(((*k).into(), (*v).into()));
    }
    env
}

struct Got {
    status: u16,
    x_cache: String,
    age: Option<String>,
    cache_control: String,
    body: Vec<u8>,
}

async fn get(port: u16, id: &str) -> Got {
    let response = reqwest::get(format!("http://127.0.0.1:{port}/product/{id}"))
        .await
        .unwrap();
    let header = |name: &str| {
        response
            .headers()
            .get(name)
            .map(|v| v.to_str().unwrap().to_owned())
    };
    Got {
        status: response.status().as_u16(),
        x_cache: header("x-cache").unwrap_or_default(),
        age: header("age"),
        cache_control: header("cache-control").unwrap_or_default(),
        body: response.bytes().await.unwrap().to_vec(),
    }
}

/// A REMOVE stream record for `id`, through the cache-invalidator binary.
fn remove_through_stream(env: &[(String, String)], id: &str) {
    let event = json!({"Records": [{
        "eventID": "remove-1",
        "eventName": "REMOVE",
        "eventVersion": "1.1",
        "eventSource": "aws:dynamodb",
        "awsRegion": "eu-west-1",
        "dynamodb": {
            "Keys": {"productId": {"S": id}},
            "SequenceNumber": "1",
            "SizeBytes": 10,
            "StreamViewType": "NEW_AND_OLD_IMAGES"
        },
        "eventSourceARN": "arn:aws:dynamodb:eu-west-1:123456789012:table/Products/stream/2026-11-22T09:00:00.000"
    }]});
    let env: Vec<(&str, &std::ffi::OsStr)> = env
        .iter()
        .map(|(k, v)| (k.as_str(), std::ffi::OsStr::new(v.as_str())))
        .collect();
    let reply = run_invalidator(&env, &event);
    assert_eq!(reply["batchItemFailures"], json!([]), "{reply}");
}

/// Lets the 300-second entries (and the missing marker) expire, as they would during a
/// long outage; the last-known-good copies stay.
async fn expire_entries(redis: &Client, ids: &[&str]) {
    for id in ids {
        let _: i64 = redis.del(format!("product:{id}")).await.unwrap();
    }
}

async fn memory_usage(redis: &Client, key: &str) -> i64 {
    redis
        .custom(
            CustomCommand::new_static("MEMORY", None, false),
            vec![
                "USAGE".to_owned(),
                key.to_owned(),
                "SAMPLES".to_owned(),
                "0".to_owned(),
            ],
        )
        .await
        .unwrap()
}

struct Outage {
    redis: RedisServer,
    emulator: Emulator,
    client: Client,
    _server: ChildGuard,
    port: u16,
}

async fn outage_setup(extra: &[(&str, &str)]) -> Outage {
    let redis = RedisServer::start();
    let emulator = Emulator::start();
    emulator.sample_table().await;
    let (server, port) = product_api(&env(&redis, &emulator, extra));
    let client = redis.client().await;
    Outage {
        redis,
        emulator,
        client,
        _server: server,
        port,
    }
}

#[tokio::test]
async fn with_the_table_down_served_ids_are_stale_others_503_and_removed_ones_never_200() {
    // GIVEN products served once (P-10050, P-10051, P-10052), then P-10052 deleted from
    // the table, its REMOVE applied by cache-invalidator
    let mut outage = outage_setup(&[]).await;
    let port = outage.port;
    let mut before = Vec::new();
    for id in ["P-10050", "P-10051", "P-10052"] {
        let got = get(port, id).await;
        assert_eq!((got.status, got.x_cache.as_str()), (200, "MISS"), "{id}");
        before.push(got.body);
    }
    let invalidator_env = env(&outage.redis, &outage.emulator, &[]);
    remove_through_stream(&invalidator_env, "P-10052");
    // (figures for the README: what a cached product and its copy cost in Redis)
    let entry = memory_usage(&outage.client, "product:P-10050").await;
    let copy = memory_usage(&outage.client, &stale_key("product:P-10050")).await;
    println!(
        "figure: MEMORY USAGE of P-10050 ({} bytes served): entry {entry} B, copy {copy} B",
        before[0].len()
    );
    expire_entries(&outage.client, &["P-10050", "P-10051", "P-10052"]).await;

    // WHEN the table goes away
    outage.emulator.stop();

    // THEN served ids answer 200 STALE with the exact bytes served before, an age and a
    // short Cache-Control
    for (id, body) in ["P-10050", "P-10051"].iter().zip(&before) {
        let got = get(port, id).await;
        assert_eq!((got.status, got.x_cache.as_str()), (200, "STALE"), "{id}");
        assert_eq!(&got.body, body, "{id}");
        let age: u64 = got.age.expect("an Age header").parse().unwrap();
        assert!(age < 60, "{age}");
        assert_eq!(got.cache_control, "public, max-age=5, must-revalidate");
    }
    // AND a never-served id answers 503, and the removed one is never 200
    assert_eq!(get(port, "P-10053").await.status, 503);
    let removed = get(port, "P-10052").await;
    assert!(
        matches!(removed.status, 404 | 503),
        "a deleted product answered {} {}",
        removed.status,
        removed.x_cache
    );

    // WHEN the table is back THEN the next miss is a MISS, not STALE
    outage.emulator.restart();
    outage.emulator.sample_table().await;
    let got = get(port, "P-10051").await;
    assert_eq!((got.status, got.x_cache.as_str()), (200, "MISS"));
}

#[tokio::test]
async fn with_stale_ttl_zero_an_outage_is_answered_as_before() {
    // GIVEN copies turned off and a product served once
    let mut outage = outage_setup(&[("STALE_TTL_SECONDS", "0")]).await;
    let port = outage.port;
    assert_eq!(get(port, "P-10050").await.status, 200);
    // THEN Redis holds only product:<id> keys, as before
    let keys: Vec<String> = outage
        .client
        .custom(
            CustomCommand::new_static("KEYS", None, false),
            vec!["*".to_owned()],
        )
        .await
        .unwrap();
    assert_eq!(keys, vec!["product:P-10050".to_owned()]);
    expire_entries(&outage.client, &["P-10050"]).await;
    // WHEN the table goes away THEN a served id whose entry expired is a 503, as before
    outage.emulator.stop();
    let got = get(port, "P-10050").await;
    assert_eq!(got.status, 503);
}

#[tokio::test]
async fn in_a_timeout_storm_stale_answers_come_at_once_after_the_first_few_and_heal_with_the_table()
{
    // GIVEN product-api whose DynamoDB endpoint leads to the emulator, P-10053 served once
    let redis = RedisServer::start();
    let emulator = Emulator::start();
    emulator.sample_table().await;
    let emulator_port: u16 = emulator
        .endpoint
        .rsplit(':')
        .next()
        .unwrap()
        .parse()
        .unwrap();
    let endpoint = Endpoint::start(emulator_port).await;
    let mut env = env(&redis, &emulator, &[]);
    env.retain(|(k, _)| k != "AWS_ENDPOINT_URL_DYNAMODB");
    env.push((
        "AWS_ENDPOINT_URL_DYNAMODB".into(),
        format!("http://127.0.0.1:{}", endpoint.port),
    ));
    let (_server, port) = product_api(&env);
    let client = redis.client().await;
    assert_eq!(get(port, "P-10053").await.x_cache, "MISS");
    expire_entries(&client, &["P-10053"]).await;

    // WHEN the table stops answering (requests accepted, nothing comes back)
    endpoint.black_hole(true);
    // THEN the first misses wait out the SDK's timeout (3 s) and answer STALE
    let timed = |id: &'static str| async move {
        let started = std::time::Instant::now();
        let got = get(port, id).await;
        (started.elapsed(), got)
    };
    let mut first = Vec::new();
    for _ in 0..3 {
        let (took, got) = timed("P-10053").await;
        assert_eq!((got.status, got.x_cache.as_str()), (200, "STALE"));
        first.push(took);
    }
    // AND from then on STALE (and 503 for a never-served id) comes at once
    let mut later = Vec::new();
    for _ in 0..5 {
        let (took, got) = timed("P-10053").await;
        assert_eq!((got.status, got.x_cache.as_str()), (200, "STALE"));
        later.push(took);
        let (took, got) = timed("P-10099").await;
        assert_eq!(got.status, 503);
        later.push(took);
    }
    assert!(first.iter().all(|t| t.as_secs_f64() > 2.5), "{first:?}");
    let slowest = *later.iter().max().unwrap();
    assert!(
        slowest.as_millis() < 1_000,
        "answers after the first few: {later:?}"
    );

    // WHEN the table answers again THEN misses are MISS again within a second
    endpoint.black_hole(false);
    let healed = std::time::Instant::now();
    loop {
        let got = get(port, "P-10053").await;
        if got.x_cache == "MISS" {
            break;
        }
        assert_eq!(got.x_cache, "STALE");
        assert!(
            healed.elapsed().as_secs() < 2,
            "still STALE 2 s after the table came back"
        );
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    println!("figure: table not answering: the first 3 misses, STALE after -> {first:.1?}");
    println!(
        "figure: table not answering: the next 10 misses, STALE or 503, slowest -> {slowest:.1?}"
    );
    println!(
        "figure: table answering again: first MISS after -> {:.1?}",
        healed.elapsed()
    );
}
