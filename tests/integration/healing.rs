//! Faults that must heal once they end: Redis unreachable when the process starts (and a
//! table that does not answer then, which start-up must not wait for), a breaker probe
//! abandoned by its client while Redis is frozen, a key of the wrong type (which is one
//! entry's problem, not an outage), and a failover that leaves the old primary up as a
//! replica. Each test prints its figure. And one fault that must not heal: a cache told
//! to quit while Redis was down stays closed.

use std::io::Write;
use std::net::TcpStream;
use std::time::{Duration, Instant};

use fred::prelude::ClientLike;
use fred::types::{ClusterHash, CustomCommand};
use product_catalog::adapters::{DynamoStore, RedisCache};
use product_catalog::breaker::COOL_DOWN;
use product_catalog::config::RedisUrl;
use product_catalog::http::Api;
use product_catalog::service::ProductService;

use crate::helpers::{ChildGuard, Endpoint, RedisServer, product_api, sample_table, service_env};

/// How soon after Redis answers again the first hit must come.
const HEAL_LIMIT: Duration = Duration::from_secs(5);

/// A `product-api` process in local mode, killed on drop (also when a test fails).
struct ProductApiProcess {
    port: u16,
    _guard: ChildGuard,
}

impl ProductApiProcess {
    fn start(redis_url: &str, table: &DynamoStore, extra_env: &[(&str, &str)]) -> Self {
        let mut env = service_env(redis_url, table);
        env.extend(
            extra_env
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string())),
        );
        let (guard, port) = product_api(&env);
        Self {
            port,
            _guard: guard,
        }
    }

    fn url(&self, id: &str) -> String {
        format!("http://127.0.0.1:{}/product/{id}", self.port)
    }

    /// Sends a request for `id` and closes the connection before the answer, as a
    /// client that gives up does: the server drops the request's future mid-flight.
    fn abandon(&self, id: &str, after: Duration) {
        let mut stream = TcpStream::connect(("127.0.0.1", self.port)).unwrap();
        write!(
            stream,
            "GET /product/{id} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n"
        )
        .unwrap();
        std::thread::sleep(after);
        drop(stream);
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
    println!(
        "figure: Redis unreachable when product-api starts, up 1 s later: first HIT after it came up -> {took:.1?}"
    );
}

#[tokio::test]
async fn a_probe_abandoned_by_its_client_does_not_stick_the_breaker() {
    let redis = RedisServer::start();
    let table = sample_table().await;
    // A long command timeout keeps the probe out long enough for its client to leave.
    let api = ProductApiProcess::start(&redis.url(), &table, &[("REDIS_TIMEOUT_MS", "500")]);
    let http = reqwest::Client::new();
    let url = api.url("P-10062");
    // GIVEN the product cached
    assert_eq!(x_cache(&http, &url).await, "MISS");
    assert_eq!(x_cache(&http, &url).await, "HIT");

    // AND Redis frozen until the breaker opens: a BYPASS that no longer waits for the
    // command timeout
    redis.signal("-STOP");
    let frozen = Instant::now();
    loop {
        let sent = Instant::now();
        assert_eq!(x_cache(&http, &url).await, "BYPASS");
        if sent.elapsed() < Duration::from_millis(250) {
            break;
        }
        assert!(
            frozen.elapsed() < Duration::from_secs(10),
            "the breaker did not open"
        );
    }

    // WHEN, after the cool-down, the probe request's client closes its connection while
    // the probe waits on the frozen Redis
    tokio::time::sleep(COOL_DOWN + Duration::from_millis(200)).await;
    api.abandon("P-10062", Duration::from_millis(100));

    // AND Redis answers again
    redis.signal("-CONT");

    // THEN the first HIT comes within 5 s
    let took = first_hit(&http, &url, "thawing").await;
    println!(
        "figure: Redis frozen until the breaker opens, the probe's client gone: first HIT after SIGCONT -> {took:.1?}"
    );
}

#[tokio::test]
async fn a_wrong_type_key_does_not_take_the_cache_from_other_ids() {
    let redis = RedisServer::start();
    let table = sample_table().await;
    let cache = RedisCache::connect(
        &RedisUrl::try_from(redis.url()).unwrap(),
        Duration::from_millis(200),
        1,
    )
    .unwrap();
    cache.wait_connected(Duration::from_secs(2)).await.unwrap();
    let api = Api::new(
        ProductService::new(cache, table, Duration::from_secs(300)),
        60,
    );
    let x_cache = async |id: &str| {
        let request = http::Request::get(format!("/product/{id}"))
            .body(())
            .unwrap();
        let response = api.handle(&request).await;
        assert_eq!(response.status(), 200, "{id}");
        response.headers()["x-cache"].to_str().unwrap().to_owned()
    };
    let operator = redis.client().await;
    let hset = CustomCommand::new_static("HSET", ClusterHash::FirstKey, false);

    // GIVEN another id cached
    assert_eq!(x_cache("P-10071").await, "MISS");
    assert_eq!(x_cache("P-10071").await, "HIT");

    // WHEN 8 requests for an id whose key holds a hash (WRONGTYPE for every command but
    // SET and DEL) come in bursts (a hot id) between requests for the other id: the
    // breaker opens after 3 consecutive outages
    let mut other = Vec::new();
    for burst in [3, 3, 2] {
        for _ in 0..burst {
            // Put back each time, as a stray writer would.
            let _: i64 = operator
                .custom(hset.clone(), vec!["product:P-10070", "field", "value"])
                .await
                .unwrap();
            assert_eq!(x_cache("P-10070").await, "BYPASS");
        }
        other.push(x_cache("P-10071").await);
    }

    // THEN the other id kept every hit, and the breaker stayed closed
    assert!(other.iter().all(|cache| cache == "HIT"), "{other:?}");
    assert!(!api.service().cache_bypassed());
    // AND the wrong-type key was repaired: left alone, the id misses once, then hits
    assert_eq!(x_cache("P-10070").await, "MISS");
    assert_eq!(x_cache("P-10070").await, "HIT");
    println!(
        "figure: 8 requests for a wrong-type key in bursts between requests for another id: that id answered -> {other:?}"
    );
}

async fn redis_cli(port: u16, args: &[&str]) {
    let status = tokio::process::Command::new("redis-cli")
        .arg("-p")
        .arg(port.to_string())
        .args(args)
        .stdout(std::process::Stdio::null())
        .status()
        .await
        .unwrap();
    assert!(status.success(), "redis-cli {args:?}");
}

#[tokio::test]
async fn after_a_failover_that_keeps_the_old_primary_up_as_a_replica_hits_come_back() {
    // GIVEN product-api on a primary endpoint that leads to Redis A, the product cached
    let (old_primary, new_primary) = (RedisServer::start(), RedisServer::start());
    let endpoint = Endpoint::start(old_primary.port).await;
    let table = sample_table().await;
    let api =
        ProductApiProcess::start(&format!("redis://127.0.0.1:{}", endpoint.port), &table, &[]);
    let http = reqwest::Client::new();
    let url = api.url("P-10064");
    assert_eq!(x_cache(&http, &url).await, "MISS");
    assert_eq!(x_cache(&http, &url).await, "HIT");

    // WHEN B is promoted, A is demoted to B's replica (it now answers every write with
    // READONLY, over the connection product-api already holds) and the endpoint
    // leads to B from now on
    redis_cli(new_primary.port, &["REPLICAOF", "NO", "ONE"]).await;
    endpoint.switch_to(new_primary.port);
    redis_cli(
        old_primary.port,
        &["REPLICAOF", "127.0.0.1", &new_primary.port.to_string()],
    )
    .await;

    // THEN product-api leaves the demoted node by itself: a HIT (from B) within 5 s,
    // where before it answered BYPASS until the process ended
    let healed = first_hit(&http, &url, "the failover").await;
    println!(
        "figure: failover with the old primary kept up as a replica (READONLY): first HIT after the switch -> {healed:.1?}"
    );
}

#[tokio::test]
async fn start_up_does_not_wait_for_a_table_that_does_not_answer() {
    // GIVEN a product cached in Redis, and a DynamoDB endpoint that accepts connections
    // and never answers (a black-holed route)
    let redis = RedisServer::start();
    let table = sample_table().await;
    let warm = ProductApiProcess::start(&redis.url(), &table, &[]);
    let http = reqwest::Client::new();
    assert_eq!(x_cache(&http, &warm.url("P-10003")).await, "MISS");
    drop(warm);
    let silent = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let endpoint = format!("http://{}", silent.local_addr().unwrap());

    // WHEN product-api starts against it
    let started = Instant::now();
    let api = ProductApiProcess::start(
        &redis.url(),
        &table,
        &[("AWS_ENDPOINT_URL_DYNAMODB", &endpoint)],
    );
    let listening = started.elapsed();

    // THEN it listens without waiting for the table (the connection it opens for the
    // first miss is opened in the background) and serves the cached product
    println!("listening {} ms after the spawn", listening.as_millis());
    assert!(
        listening < ATTEMPT_LIMIT,
        "start-up took {listening:?}: it waited for the table"
    );
    assert_eq!(x_cache(&http, &api.url("P-10003")).await, "HIT");
    drop(silent);
}

/// Below one DynamoDB attempt's timeout: a start-up that waited for the table takes longer.
const ATTEMPT_LIMIT: Duration = product_catalog::adapters::aws::ATTEMPT_TIMEOUT;

#[tokio::test]
async fn a_cache_that_quit_while_redis_was_down_stays_closed_once_redis_is_up() {
    // GIVEN a cache started while Redis is down, retrying its first connection
    let mut redis = RedisServer::not_started();
    let cache = RedisCache::connect(
        &RedisUrl::try_from(redis.url()).unwrap(),
        Duration::from_millis(200),
        1,
    )
    .unwrap();
    assert!(
        cache
            .wait_connected(Duration::from_millis(300))
            .await
            .is_err()
    );

    // WHEN it quits, and then Redis comes up
    cache.quit().await;
    redis.restart();

    // THEN it does not connect again: past the retry policy's longest delay (2 s), the
    // only client Redis has is the one asking
    tokio::time::sleep(Duration::from_millis(2_500)).await;
    let clients = std::process::Command::new("redis-cli")
        .args(["-p", &redis.port.to_string(), "CLIENT", "LIST"])
        .output()
        .unwrap();
    let clients = String::from_utf8_lossy(&clients.stdout);
    assert_eq!(clients.lines().count(), 1, "{clients}");
    println!(
        "figure: a cache that quit while Redis was down: clients of Redis 2.5 s after it came up -> 1, the one asking"
    );
}
