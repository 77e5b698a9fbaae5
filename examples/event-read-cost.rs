//! Time to read a Lambda event into the request the API answers, `product-api`'s way
//! (`runtime::Event`, then `runtime::Invocation`) against `lambda_http`'s own
//! (`LambdaRequest`, then `Request::from`), in the same run.
//!
//! `cargo run --release --example event-read-cost [EVENT.json ...]` (default: the REST
//! fixtures under `tests/fixtures`). Each figure is the median of 7 rounds of 100,000
//! reads; `docs/BENCHMARKS.md` says what it found.

use std::hint::black_box;
use std::time::Instant;

use lambda_http::lambda_runtime::{Context, LambdaEvent};
use lambda_http::request::LambdaRequest;
use product_catalog::runtime::{Event, Invocation};

const ROUNDS: usize = 7;
const READS: u32 = 100_000;

fn main() {
    let mut paths: Vec<String> = std::env::args().skip(1).collect();
    if paths.is_empty() {
        paths = ["apigw_rest_stage", "apigw_rest_edge"]
            .iter()
            .map(|name| format!("{}/tests/fixtures/{name}.json", env!("CARGO_MANIFEST_DIR")))
            .collect();
    }
    for path in paths {
        let json = std::fs::read_to_string(&path).unwrap_or_else(|err| panic!("{path}: {err}"));
        let ours = median_us(|| {
            let event: Event = serde_json::from_str(black_box(&json)).unwrap();
            black_box(Invocation::read(LambdaEvent::new(
                event,
                Context::default(),
            )));
        });
        let theirs = median_us(|| {
            let event: LambdaRequest = serde_json::from_str(black_box(&json)).unwrap();
            black_box(lambda_http::Request::from(event));
        });
        let name = std::path::Path::new(&path)
            .file_name()
            .map_or(path.as_str(), |name| name.to_str().unwrap_or(&path));
        println!(
            "{name} ({} bytes): product-api {ours:.2} us, lambda_http {theirs:.2} us ({:.2}x)",
            json.len(),
            ours / theirs
        );
    }
}

/// Microseconds per call of `read`, the median of the rounds.
fn median_us(mut read: impl FnMut()) -> f64 {
    let mut rounds: Vec<f64> = (0..ROUNDS)
        .map(|_| {
            let started = Instant::now();
            for _ in 0..READS {
                read();
            }
            started.elapsed().as_secs_f64() * 1e6 / f64::from(READS)
        })
        .collect();
    rounds.sort_by(f64::total_cmp);
    rounds[ROUNDS / 2]
}
