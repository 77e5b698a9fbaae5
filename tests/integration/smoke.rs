//! `make smoke` (scripts/smoke.sh) against the local server on its embedded default: the
//! same script the pipeline runs after every apply.

use std::path::Path;
use std::process::{Command, Output};

use crate::helpers::product_api;

fn smoke(url: &str, env: &[(&str, &str)]) -> Output {
    Command::new("make")
        .args(["--no-print-directory", "smoke", &format!("URL={url}")])
        .envs(env.iter().copied())
        .current_dir(Path::new(env!("CARGO_MANIFEST_DIR")))
        .output()
        .unwrap()
}

#[test]
fn make_smoke_passes_against_a_fresh_local_server_and_flags_a_warm_cache_unless_allowed() {
    // GIVEN product-api on the embedded default (in-process cache, sample catalog)
    let (_server, port) = product_api(&[]);
    let url = format!("http://127.0.0.1:{port}");

    // WHEN make smoke runs THEN every check passes, each with its latency
    let first = smoke(&url, &[]);
    let report = String::from_utf8_lossy(&first.stderr);
    assert!(first.status.success(), "{report}");
    for line in [
        "/product/P-10001",
        "200 MISS",
        "200 HIT",
        "404",
        "400",
        " ms",
        "smoke: OK",
    ] {
        assert!(report.contains(line), "missing {line:?} in:\n{report}");
    }

    // WHEN it runs again within the TTL THEN the first GET is a HIT: a surprise, and it says so
    let again = smoke(&url, &[]);
    let report = String::from_utf8_lossy(&again.stderr);
    assert!(!again.status.success(), "{report}");
    assert!(report.contains("expected MISS"), "{report}");
    // UNLESS a warm cache is expected (a retried pipeline Apply)
    let warm = smoke(&url, &[("SMOKE_ALLOW_WARM", "1")]);
    assert!(
        warm.status.success(),
        "{}",
        String::from_utf8_lossy(&warm.stderr)
    );
}
