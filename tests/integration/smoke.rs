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

    // WHEN make smoke runs THEN every check passes, each with its latency
    let first = smoke(&url, &[("SMOKE_EXPECT_MISS", "1")]);
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
            "404",
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
    assert_reports(&again, &["cached already", "smoke: OK"]);
    // UNLESS a fill is asked for
    let strict = smoke(&url, &[("SMOKE_EXPECT_MISS", "1")]);
    assert!(!strict.status.success());
    assert_reports(&strict, &["expected MISS"]);
}

#[tokio::test]
async fn make_smoke_passes_right_after_make_seed_though_the_stream_has_cached_the_products() {
    // GIVEN the table loaded as make seed loads it, product-api on Redis, and the INSERT
    // record of the smoke's id applied by cache-invalidator, which caches its new image
    let redis = RedisServer::start();
    let table = sample_table().await;
    let (_server, port) = product_api(&service_env(&redis.url(), &table));
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

    // WHEN make smoke runs next, as README step 4 does THEN it passes on two HITs, saying so
    let url = format!("http://127.0.0.1:{port}");
    let smoked = smoke(&url, &[]);
    assert!(
        smoked.status.success(),
        "{}",
        String::from_utf8_lossy(&smoked.stderr)
    );
    assert_reports(&smoked, &["200 HIT", "cached already", "smoke: OK"]);
    assert!(!String::from_utf8_lossy(&smoked.stderr).contains("200 MISS"));

    // WHEN a fill is asked for THEN it fails, naming the invalidator as the likely cause
    let strict = smoke(&url, &[("SMOKE_EXPECT_MISS", "1")]);
    assert!(!strict.status.success());
    assert_reports(&strict, &["expected MISS", "invalidator"]);
}
