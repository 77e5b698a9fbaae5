//! `make smoke` (scripts/smoke.sh) against local servers: the same script the pipeline
//! runs after every apply, and README step 4 after `make seed`.

use std::path::Path;
use std::process::{Command, Output};

use product_catalog::item::item_from_json;
use serde_json::{Value, json};

use crate::helpers::{
    RedisServer, cache_url_var, product_api, run_invalidator, sample_table, service_env,
    stream_record,
};

fn smoke(url: &str, env: &[(&str, &str)]) -> Output {
    Command::new("make")
        .args(["--no-print-directory", "smoke", &format!("URL={url}")])
        .envs(env.iter().copied())
        .current_dir(Path::new(env!("CARGO_MANIFEST_DIR")))
        .output()
        .unwrap()
}

fn assert_reports(output: &Output, lines: &[&str]) {
    let report = String::from_utf8_lossy(&output.stderr);
    for line in lines {
        assert!(report.contains(line), "missing {line:?} in:\n{report}");
    }
}

#[test]
fn make_smoke_passes_against_a_fresh_local_server_and_again_once_the_id_is_cached() {
    // GIVEN product-api on the embedded default (in-process cache, sample catalog)
    let (_server, port) = product_api(&[]);
    let url = format!("http://127.0.0.1:{port}");

    // WHEN make smoke runs THEN every check passes, each with its latency: the seeded
    // id from the table then the cache, a missing id the same way, an invalid id
    let first = smoke(&url, &[]);
    assert!(
        first.status.success(),
        "{}",
        String::from_utf8_lossy(&first.stderr)
    );
    assert_reports(
        &first,
        &[
            "/product/P-10001",
            "200 MISS",
            "200 HIT",
            "404 MISS",
            "404 HIT",
            "/no-such-route",
            "400",
            " ms",
            "smoke: OK",
        ],
    );

    // WHEN it runs again within the TTL THEN the first GET is a HIT, which it says and accepts
    let again = smoke(&url, &[]);
    assert!(
        again.status.success(),
        "{}",
        String::from_utf8_lossy(&again.stderr)
    );
    assert_reports(&again, &["cached already", "404 MISS", "smoke: OK"]);
}

/// The table loaded as `make seed` loads it, and the INSERT record of the smoke's id
/// applied by cache-invalidator (which caches its new image) on `redis`.
async fn seeded_and_streamed(redis: &RedisServer) -> product_catalog::adapters::DynamoStore {
    let table = sample_table().await;
    let catalog: Vec<Value> = serde_json::from_str(
        &std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("data/products.json"))
            .unwrap(),
    )
    .unwrap();
    let seeded = catalog
        .iter()
        .find(|product| product["productId"] == "P-10001")
        .unwrap();
    let image = serde_json::to_value(item_from_json(&seeded.to_string()).unwrap()).unwrap();
    let reply = run_invalidator(
        &[(cache_url_var(&redis.url()), redis.url().as_ref())],
        &json!({"Records": [stream_record("INSERT", "P-10001", Some(&image), 1)]}),
    );
    assert_eq!(reply["batchItemFailures"], json!([]));
    table
}

#[tokio::test]
async fn make_smoke_passes_right_after_make_seed_though_the_stream_has_cached_the_products() {
    // GIVEN product-api on Redis, right after make seed and the stream's INSERT records
    let redis = RedisServer::start();
    let table = seeded_and_streamed(&redis).await;
    let (_server, port) = product_api(&service_env(&redis.url(), &table));

    // WHEN make smoke runs next, as README step 4 does THEN it passes: two HITs for the
    // seeded id, saying so, and product-api's own fill shown by the missing id
    let smoked = smoke(&format!("http://127.0.0.1:{port}"), &[]);
    assert!(
        smoked.status.success(),
        "{}",
        String::from_utf8_lossy(&smoked.stderr)
    );
    assert_reports(
        &smoked,
        &[
            "200 HIT",
            "cached already",
            "404 MISS",
            "404 HIT",
            "smoke: OK",
        ],
    );
    assert!(!String::from_utf8_lossy(&smoked.stderr).contains("200 MISS"));
}

#[tokio::test]
async fn make_smoke_fails_when_product_api_cannot_fill_though_the_stream_cached_the_seeded_id() {
    // GIVEN a cache that refuses product-api's compare-and-set (an ACL without EVAL),
    // and the seeded id cached by the stream's invalidator (a plain SET)
    let redis = RedisServer::start_with(|_, _| {
        [
            "--user", "default", "on", "nopass", "~*", "&*", "+@all", "-eval", "-evalsha",
        ]
        .map(str::to_owned)
        .to_vec()
    });
    let table = seeded_and_streamed(&redis).await;
    let (_server, port) = product_api(&service_env(&redis.url(), &table));

    // WHEN make smoke runs THEN the seeded id's two HITs do not hide it: the missing id
    // is not cached, and it says so
    let smoked = smoke(&format!("http://127.0.0.1:{port}"), &[]);
    assert!(!smoked.status.success());
    assert_reports(&smoked, &["200 HIT", "expected MISS then HIT"]);
}

#[tokio::test]
async fn make_smoke_fails_when_the_function_cannot_use_the_cache() {
    // GIVEN product-api whose cache is not there
    let redis = RedisServer::not_started();
    let table = sample_table().await;
    let (_server, port) = product_api(&service_env(&redis.url(), &table));
    // WHEN make smoke runs THEN it fails on the BYPASS, naming the cache
    let smoked = smoke(&format!("http://127.0.0.1:{port}"), &[]);
    assert!(!smoked.status.success());
    assert_reports(&smoked, &["200 BYPASS", "could not use the cache"]);
}

/// An API stand-in that answers the seeded id with a HIT, an invalid id with a 400, and
/// any other id with a 404 whose `X-Cache` is `missing_x_cache` (none if `None`).
fn stand_in_api(missing_x_cache: Option<&'static str>) -> u16 {
    use std::io::{BufRead as _, BufReader, Write as _};
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    std::thread::spawn(move || {
        for stream in listener.incoming().map_while(Result::ok) {
            let mut reader = BufReader::new(stream);
            let mut request_line = String::new();
            if reader.read_line(&mut request_line).is_err() {
                continue;
            }
            // The rest of the head.
            let mut line = String::new();
            while reader.read_line(&mut line).is_ok_and(|n| n > 2) {
                line.clear();
            }
            let path = request_line.split_whitespace().nth(1).unwrap_or("");
            let (status, headers, body) = if path == "/product/P-10001" {
                (
                    "200 OK",
                    "x-cache: HIT\r\netag: \"1\"\r\n".to_owned(),
                    r#"{"productId":"P-10001"}"#,
                )
            } else if path.contains("%01") {
                (
                    "400 Bad Request",
                    String::new(),
                    r#"{"error":"invalid_id"}"#,
                )
            } else {
                (
                    "404 Not Found",
                    missing_x_cache
                        .map(|value| format!("x-cache: {value}\r\n"))
                        .unwrap_or_default(),
                    r#"{"error":"not_found"}"#,
                )
            };
            let reply = format!(
                "HTTP/1.1 {status}\r\ncontent-type: application/json\r\n{headers}content-length: {}\r\nconnection: close\r\n\r\n{body}",
                body.len()
            );
            let _ = reader.get_mut().write_all(reply.as_bytes());
        }
    });
    port
}

#[test]
fn make_smoke_names_an_api_older_than_itself_and_a_cache_it_cannot_use_for_a_missing_id() {
    // GIVEN an API whose 404s carry no X-Cache (deployed before they did)
    let port = stand_in_api(None);
    // WHEN make smoke runs THEN it fails, saying to deploy first
    let smoked = smoke(&format!("http://127.0.0.1:{port}"), &[]);
    assert!(!smoked.status.success());
    assert_reports(&smoked, &["older than this script", "make deploy"]);

    // GIVEN an API that could not use the cache for a missing id
    let port = stand_in_api(Some("BYPASS"));
    // WHEN make smoke runs THEN it fails, naming the cache
    let smoked = smoke(&format!("http://127.0.0.1:{port}"), &[]);
    assert!(!smoked.status.success());
    assert_reports(
        &smoked,
        &["a missing id: X-Cache BYPASS", "could not use the cache"],
    );
}
