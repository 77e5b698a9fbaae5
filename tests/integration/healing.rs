//! Faults that must heal once they end: Redis unreachable when the process starts.
//! Each test prints its figure.

use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use product_catalog::adapters::DynamoStore;

use crate::helpers::{RedisServer, free_port, sample_table, service_env, wait_for_port};

/// How soon after Redis answers again the first hit must come.
const HEAL_LIMIT: Duration = Duration::from_secs(5);

/// A `product-api` process in local mode, killed on drop (also when a test fails).
struct ProductApiProcess {
    port: u16,
    child: Child,
}

impl ProductApiProcess {
    fn start(redis_url: &str, table: &DynamoStore, extra_env: &[(&str, &str)]) -> Self {
        let port = free_port();
        let child = Command::new(env!("CARGO_BIN_EXE_product-api"))
            .env_clear()
            .envs(service_env(redis_url, table))
            .env("LISTEN_ADDR", format!("127.0.0.1:{port}"))
            .envs(extra_env.iter().copied())
            .stdout(Stdio::null())
            .spawn()
            .unwrap();
        let process = Self { port, child };
        wait_for_port(port, "product-api");
        process
    }

    fn url(&self, id: &str) -> String {
        format!("http://127.0.0.1:{}/product/{id}", self.port)
    }
}

impl Drop for ProductApiProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The `X-Cache` of a GET that must answer 200.
async fn x_cache(http: &reqwest::Client, url: &str) -> String {
    let response = http.get(url).send().await.unwrap();
    assert_eq!(response.status(), 200, "{url}");
    response.headers()["x-cache"].to_str().unwrap().to_owned()
}

/// Polls `url` every 50 ms until it answers `X-Cache: HIT`; how long that took.
async fn first_hit(http: &reqwest::Client, url: &str, what: &str) -> Duration {
    let since = Instant::now();
    let mut seen = Vec::new();
    loop {
        let cache = x_cache(http, url).await;
        if cache == "HIT" {
            return since.elapsed();
        }
        seen.push(cache);
        assert!(
            since.elapsed() < HEAL_LIMIT,
            "no HIT within {HEAL_LIMIT:?} of {what}; answers were {seen:?}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test]
async fn redis_unreachable_at_start_then_up_gives_hits_within_5_s() {
    // GIVEN product-api started while nothing listens on its Redis port
    let mut redis = RedisServer::not_started();
    let table = sample_table().await;
    let api = ProductApiProcess::start(&redis.url(), &table, &[]);
    let http = reqwest::Client::new();
    let url = api.url("P-10061");
    assert_eq!(x_cache(&http, &url).await, "BYPASS");

    // WHEN redis-server starts on that port a second later
    tokio::time::sleep(Duration::from_secs(1)).await;
    redis.restart();

    // THEN the cache is used again: the first HIT comes within 5 s
    let took = first_hit(&http, &url, "Redis coming up").await;
    println!("Redis up 1 s after product-api was listening: first HIT {took:?} after it came up");
}
