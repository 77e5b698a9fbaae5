//! The `product-api` binary in local mode, as a user runs it: real process, real
//! sockets, real Redis and emulator; metrics read back from its stdout.

use std::io::Read;
use std::process::{Command, Stdio};

use bytes::Bytes;
use fred::prelude::KeysInterface;
use product_catalog::metrics;

use crate::helpers::{
    ChildGuard, RedisServer, emf_sum, free_port, product_api, sample_table, service_env,
    wait_for_port,
};

const BINARY: &str = env!("CARGO_BIN_EXE_product-api");

#[tokio::test]
async fn the_local_server_misses_then_hits_and_reports_emf() {
    // GIVEN product-api as a local server on real Redis and the emulator
    let redis = RedisServer::start();
    let table = sample_table().await;
    let port = free_port();
    let spawned_at = unix_millis();
    let mut child = ChildGuard(
        Command::new(BINARY)
            .env_clear()
            .envs(service_env(&redis.url(), &table))
            .env("LISTEN_ADDR", format!("127.0.0.1:{port}"))
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .unwrap(),
    );
    wait_for_port(port, "product-api");

    // WHEN a product is read twice and a missing one once THEN MISS, HIT, 404
    let http = reqwest::Client::new();
    let url = format!("http://127.0.0.1:{port}/product/P-10030");
    let first_request_at = unix_millis();
    let first = http.get(&url).send().await.unwrap();
    assert_eq!(first.status(), 200);
    assert_eq!(first.headers()["x-cache"], "MISS");
    let first_body = first.bytes().await.unwrap();
    let second = http.get(&url).send().await.unwrap();
    assert_eq!(second.headers()["x-cache"], "HIT");
    assert_eq!(second.bytes().await.unwrap(), first_body);
    assert_eq!(
        http.get(format!("http://127.0.0.1:{port}/product/nope"))
            .send()
            .await
            .unwrap()
            .status(),
        404
    );

    // AND Redis holds the served bytes for the TTL
    let client = redis.client().await;
    let ttl: i64 = client.ttl("product:P-10030").await.unwrap();
    assert!((295..=300).contains(&ttl), "TTL {ttl}");
    let stored: Bytes = client.get("product:P-10030").await.unwrap();
    assert_eq!(stored, first_body);

    // WHEN it is stopped THEN it exits cleanly and its EMF lines count what happened
    // SIGTERM: the server drains and flushes what it counted.
    let status = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
    let mut stdout = String::new();
    child
        .stdout
        .take()
        .unwrap()
        .read_to_string(&mut stdout)
        .unwrap();
    assert!(child.wait().unwrap().success());
    assert_eq!(emf_sum(&stdout, "CacheHits"), 1.0, "{stdout}");
    assert_eq!(emf_sum(&stdout, "CacheMisses"), 2.0, "{stdout}");
    assert_eq!(emf_sum(&stdout, "NotFound"), 1.0, "{stdout}");
    // A periodic flush may have split them. The first comes 10 s after start: no document
    // of zeros at start (written or not, as two tasks raced), and none before the first
    // request unless the start itself took 10 s.
    let first_periodic =
        spawned_at + u64::try_from(metrics::LOCAL_FLUSH_INTERVAL.as_millis()).unwrap();
    let docs: Vec<serde_json::Value> = stdout
        .lines()
        .map(|line| serde_json::from_str(line).unwrap())
        .collect();
    let mut latencies = 0;
    for doc in &docs {
        assert_eq!(doc["Service"], "product-api");
        assert_eq!(
            doc["_aws"]["CloudWatchMetrics"][0]["Dimensions"],
            serde_json::json!([["Service"]])
        );
        let stamped = doc["_aws"]["Timestamp"].as_u64().unwrap();
        assert!(
            stamped >= first_request_at.min(first_periodic),
            "written before any request, and before the first periodic flush: {doc}"
        );
        latencies += doc["Latency"].as_array().map_or(0, Vec::len);
    }
    assert_eq!(latencies, 3, "{stdout}");
}

fn unix_millis() -> u64 {
    let since_epoch = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap();
    u64::try_from(since_epoch.as_millis()).unwrap()
}

#[test]
fn a_bad_variable_stops_start_up_with_its_name() {
    // GIVEN environments with one unusable variable each
    let cases = [
        (
            vec![("CACHE_TTL_SECONDS", "five minutes")],
            "CACHE_TTL_SECONDS",
        ),
        (vec![("REDIS_URL", "memcached://cache:11211")], "REDIS_URL"),
        (vec![("LISTEN_ADDR", "everywhere")], "LISTEN_ADDR"),
        (
            vec![("AWS_LAMBDA_RUNTIME_API", "127.0.0.1:9001")],
            "TABLE_NAME",
        ),
    ];
    for (vars, name) in cases {
        // WHEN product-api starts THEN it exits with 2, naming the variable
        let output = Command::new(BINARY)
            .env_clear()
            .envs(vars)
            .output()
            .unwrap();
        assert_eq!(output.status.code(), Some(2), "{name}");
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert!(stderr.contains(name), "{name}: {stderr}");
    }
}

#[test]
fn a_value_that_is_not_utf8_stops_start_up_with_its_name() {
    use std::os::unix::ffi::OsStrExt;
    // GIVEN CACHE_TTL_SECONDS set to a byte that is not UTF-8
    let bad = std::ffi::OsStr::from_bytes(b"\xff");
    // WHEN product-api starts THEN it exits with 2 naming the variable (not "unset": 300)
    let output = Command::new(BINARY)
        .env_clear()
        .env("CACHE_TTL_SECONDS", bad)
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("CACHE_TTL_SECONDS"), "{stderr}");
}

#[test]
fn a_rust_log_that_does_not_parse_is_reported() {
    // GIVEN a RUST_LOG that does not parse
    let port = free_port();
    let mut server = ChildGuard(
        Command::new(BINARY)
            .env_clear()
            .env("RUST_LOG", "hyper=loud")
            .env("LISTEN_ADDR", format!("127.0.0.1:{port}"))
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap(),
    );
    // WHEN product-api starts THEN it serves, and its log says RUST_LOG was not used
    wait_for_port(port, "product-api");
    let _ = server.kill();
    let mut stderr = String::new();
    server
        .stderr
        .take()
        .unwrap()
        .read_to_string(&mut stderr)
        .unwrap();
    assert!(
        stderr.contains("RUST_LOG=\"hyper=loud\" does not parse"),
        "{stderr}"
    );
}

#[test]
fn the_embedded_default_needs_no_services() {
    // GIVEN product-api with an empty environment (in-process cache, sample catalog)
    let (server, port) = product_api(&[]);
    // WHEN a product is read twice THEN a MISS then a HIT
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let (first, second) = runtime.block_on(async {
        let url = format!("http://127.0.0.1:{port}/product/P-10001");
        let first = reqwest::get(&url).await.unwrap();
        let second = reqwest::get(&url).await.unwrap();
        (first, second)
    });
    drop(server);
    assert_eq!(first.status(), 200);
    assert_eq!(first.headers()["x-cache"], "MISS");
    assert_eq!(second.headers()["x-cache"], "HIT");
}
