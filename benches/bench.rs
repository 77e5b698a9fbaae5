//! `make bench`: the service's costs next to floors measured in the same run, since
//! these machines are noisy. Starts its own `redis-server`; uses the DynamoDB emulator
//! `scripts/with-emulator.sh` provides. Prints one table and writes it, with the command
//! that made it, to `docs/BENCHMARKS.md`.
//!
//! - in process: the service's hit and miss paths vs a raw fred GET and a raw
//!   GetItem + SET;
//! - the same paths on memcached (its own `memcached`), vs a raw meta-protocol `mg` and
//!   GetItem + `ms`, and beside the Redis paths measured in the same rounds;
//! - Lambda mode behind a local Runtime API: cold start, warm latency and throughput vs
//!   a no-I/O Rust function (`examples/noop-lambda.rs`);
//! - local HTTP mode under `wrk` vs `redis-benchmark` GET at the same concurrency;
//! - peak RSS and binary size.

mod fred_options;
#[path = "../tests/integration/helpers.rs"]
#[allow(dead_code)]
mod helpers;
mod production;
#[path = "../tests/support/runtime_api.rs"]
mod runtime_api;

use std::fmt::Write as _;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use aws_sdk_dynamodb::types::AttributeValue;
use bytes::Bytes;
use fred::prelude::KeysInterface;
use product_catalog::adapters::{DynamoStore, MemcachedCache, RedisCache, aws::sdk_config};
use product_catalog::config::{MemcachedUrl, RedisUrl};
use product_catalog::domain::ProductId;
use product_catalog::ports::Cache;
use product_catalog::service::ProductService;
use serde_json::Value;

use helpers::{MemcachedServer, RedisServer, free_port, sample_table, service_env, wait_for_port};
use runtime_api::RuntimeApi;

/// Rounds per measurement; the figure reported is the median of the rounds' values.
const ROUNDS: usize = 5;

#[derive(Clone, Copy)]
struct Latency {
    p50: Duration,
    p99: Duration,
}

fn latency(mut samples: Vec<Duration>) -> Latency {
    samples.sort();
    let at = |q: f64| samples[((samples.len() as f64 - 1.0) * q).round() as usize];
    Latency {
        p50: at(0.50),
        p99: at(0.99),
    }
}

/// Median, over rounds, of each percentile.
fn median_of(rounds: &[Latency]) -> Latency {
    let median = |mut values: Vec<Duration>| {
        values.sort();
        values[values.len() / 2]
    };
    Latency {
        p50: median(rounds.iter().map(|l| l.p50).collect()),
        p99: median(rounds.iter().map(|l| l.p99).collect()),
    }
}

fn median_f64(mut values: Vec<f64>) -> f64 {
    values.sort_by(f64::total_cmp);
    values[values.len() / 2]
}

fn ms(d: Duration) -> String {
    format!("{:.3} ms", d.as_secs_f64() * 1000.0)
}

/// A latency as its report shows it.
fn p50_p99(latency: Latency) -> String {
    format!("p50 {} / p99 {}", ms(latency.p50), ms(latency.p99))
}

/// Results table rows: (what, figure, floor, ratio or target verdict).
struct Report {
    rows: Vec<[String; 4]>,
}

impl Report {
    fn row(&mut self, what: &str, figure: String, floor: String, verdict: String) {
        println!("{what:<58} {figure:>28} {floor:>28} {verdict}");
        self.rows.push([what.to_owned(), figure, floor, verdict]);
    }
}

fn verdict(ratio: f64, target: f64) -> String {
    format!(
        "{ratio:.2}x (target <= {target}x) {}",
        if ratio <= target { "met" } else { "MISSED" }
    )
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    helpers::dynamodb_endpoint();
    let mut report = Report { rows: Vec::new() };
    let redis = RedisServer::start();
    let table = sample_table().await;
    println!(
        "{:<58} {:>28} {:>28} verdict",
        "measurement", "figure", "floor"
    );

    // BENCH_ONLY=memcached: the memcached rows alone.
    if std::env::var("BENCH_ONLY").as_deref() == Ok("memcached") {
        memcached_beside_redis(&mut report, &redis, &table).await;
        return;
    }
    // BENCH_ONLY=production: the production-path profile alone; docs/BENCHMARKS.md is
    // then left as it is (as with every BENCH_ONLY).
    if std::env::var("BENCH_ONLY").as_deref() == Ok("production") {
        production::run(&mut report, &redis, &table).await;
        return;
    }
    // BENCH_ONLY=fred: a Redis round trip through fred and its options, against a raw one.
    if std::env::var("BENCH_ONLY").as_deref() == Ok("fred") {
        fred_options::run(&mut report, &redis).await;
        return;
    }
    // BENCH_ONLY=lambda: the Lambda-mode rows alone.
    if std::env::var("BENCH_ONLY").as_deref() == Ok("lambda") {
        lambda_mode(&mut report, &redis, &table).await;
        return;
    }
    in_process(&mut report, &redis, &table).await;
    fred_options::run(&mut report, &redis).await;
    memcached_beside_redis(&mut report, &redis, &table).await;
    // BENCH_ONLY=in-process: the in-process rows alone (a few minutes less on 2 cores);
    // docs/BENCHMARKS.md is then left as it is.
    if std::env::var("BENCH_ONLY").as_deref() == Ok("in-process") {
        return;
    }
    skewed(&mut report, &redis, &table).await;
    lambda_mode(&mut report, &redis, &table).await;
    local_http(&mut report, &redis, &table).await;
    production::run(&mut report, &redis, &table).await;
    sizes(&mut report);

    write_markdown(&report);
}

// --- in process ----------------------------------------------------------------------

async fn in_process(report: &mut Report, redis: &RedisServer, table: &DynamoStore) {
    let raw = redis.client().await;
    let cache = RedisCache::connect(
        &RedisUrl::try_from(redis.url()).unwrap(),
        Duration::from_millis(50),
        1,
    )
    .unwrap();
    cache.wait_connected(Duration::from_secs(2)).await.unwrap();
    let service = ProductService::new(cache, table.clone(), Duration::from_secs(300));
    // The same, keeping last-known-good copies (STALE_TTL_SECONDS' default).
    let with_copies = ProductService::new(
        cache_for_copies(redis).await,
        table.clone(),
        Duration::from_secs(300),
    )
    .with_stale_ttl(Some(Duration::from_secs(86_400)));
    let id = ProductId::parse("P-10001").unwrap();
    service.get(&id).await.unwrap();

    // Hit path vs one raw GET, interleaved rounds.
    let (mut hits, mut floors) = (Vec::new(), Vec::new());
    for _ in 0..ROUNDS {
        let mut floor = Vec::with_capacity(2_000);
        for _ in 0..2_000 {
            let started = Instant::now();
            let _: Option<Bytes> = raw.get("product:P-10001").await.unwrap();
            floor.push(started.elapsed());
        }
        let mut hit = Vec::with_capacity(2_000);
        for _ in 0..2_000 {
            let started = Instant::now();
            service.get(&id).await.unwrap();
            hit.push(started.elapsed());
        }
        floors.push(latency(floor));
        hits.push(latency(hit));
    }
    let (hit, floor) = (median_of(&hits), median_of(&floors));
    report.row(
        "in process: hit path (service.get, cached)",
        p50_p99(hit),
        format!("fred GET {}", p50_p99(floor)),
        verdict(hit.p50.as_secs_f64() / floor.p50.as_secs_f64(), 1.3),
    );

    // Miss path vs GetItem + SET.
    let client = aws_sdk_dynamodb::Client::new(&sdk_config().await);
    let (mut misses, mut floors, mut copies) = (Vec::new(), Vec::new(), Vec::new());
    for _ in 0..ROUNDS {
        let mut floor = Vec::with_capacity(300);
        for n in 0..300 {
            let key = format!("P-{}", 10001 + n % 200);
            let started = Instant::now();
            let body = raw_get_item(&client, table, &key).await;
            let _: () = raw
                .set(format!("bench:{key}"), body, None, None, false)
                .await
                .unwrap();
            floor.push(started.elapsed());
        }
        let mut miss = Vec::with_capacity(300);
        for n in 0..300 {
            let id = ProductId::parse(&format!("P-{}", 10001 + n % 200)).unwrap();
            let _: i64 = raw.del(id.cache_key()).await.unwrap();
            let started = Instant::now();
            service.get(&id).await.unwrap();
            miss.push(started.elapsed());
        }
        let mut copying = Vec::with_capacity(300);
        for n in 0..300 {
            let id = ProductId::parse(&format!("P-{}", 10001 + n % 200)).unwrap();
            let _: i64 = raw.del(id.cache_key()).await.unwrap();
            let started = Instant::now();
            with_copies.get(&id).await.unwrap();
            copying.push(started.elapsed());
        }
        floors.push(latency(floor));
        misses.push(latency(miss));
        copies.push(latency(copying));
    }
    let copy = median_of(&copies);
    let (miss, floor) = (median_of(&misses), median_of(&floors));
    report.row(
        "in process: miss path, also writing the last-known-good copy",
        p50_p99(copy),
        format!("without the copy {}", p50_p99(miss)),
        format!("{:.2}x", copy.p50.as_secs_f64() / miss.p50.as_secs_f64()),
    );
    report.row(
        "in process: miss path (GetItem, lease, compare-and-set)",
        p50_p99(miss),
        format!("GetItem+SET {}", p50_p99(floor)),
        verdict(miss.p50.as_secs_f64() / floor.p50.as_secs_f64(), 1.2),
    );
}

/// A raw strongly consistent GetItem of `key`, as a miss-path floor reads it; a short
/// stand-in for the item, for the floor's write.
async fn raw_get_item(client: &aws_sdk_dynamodb::Client, table: &DynamoStore, key: &str) -> String {
    let item = client
        .get_item()
        .table_name(table.table().as_str())
        .key("productId", AttributeValue::S(key.to_owned()))
        .consistent_read(true)
        .send()
        .await
        .unwrap();
    format!("{:?}", item.item.map(|i| i.len()))
}

async fn cache_for_copies(redis: &RedisServer) -> RedisCache {
    let cache = RedisCache::connect(
        &RedisUrl::try_from(redis.url()).unwrap(),
        Duration::from_millis(50),
        1,
    )
    .unwrap();
    cache.wait_connected(Duration::from_secs(2)).await.unwrap();
    cache
}

// --- memcached beside Redis ---------------------------------------------------------

/// One plain connection to memcached, speaking the meta protocol by hand: the floor.
struct RawMemcached {
    stream: tokio::io::BufStream<tokio::net::TcpStream>,
}

impl RawMemcached {
    async fn connect(port: u16) -> Self {
        let stream = tokio::net::TcpStream::connect(("127.0.0.1", port))
            .await
            .unwrap();
        stream.set_nodelay(true).unwrap();
        Self {
            stream: tokio::io::BufStream::new(stream),
        }
    }

    /// Sends one command and reads its one reply (a status line, or a value).
    async fn call(&mut self, command: &[u8]) -> Vec<u8> {
        use tokio::io::{AsyncBufReadExt as _, AsyncReadExt as _, AsyncWriteExt as _};
        self.stream.write_all(command).await.unwrap();
        self.stream.flush().await.unwrap();
        let mut line = Vec::new();
        self.stream.read_until(b'\n', &mut line).await.unwrap();
        if let Some(size) = line.strip_prefix(b"VA ") {
            let size: usize = std::str::from_utf8(size)
                .unwrap()
                .split([' ', '\r'])
                .next()
                .unwrap()
                .parse()
                .unwrap();
            let mut value = vec![0; size + 2];
            self.stream.read_exact(&mut value).await.unwrap();
            value.truncate(size);
            return value;
        }
        line
    }
}

/// The latency percentiles of `count` calls of `call`.
async fn timed(count: usize, mut call: impl AsyncFnMut()) -> Latency {
    let mut samples = Vec::with_capacity(count);
    for _ in 0..count {
        let started = Instant::now();
        call().await;
        samples.push(started.elapsed());
    }
    latency(samples)
}

/// One round of 300 misses: each id's key is emptied by `empty` (untimed), then read.
async fn miss_round<C: Cache>(
    service: &ProductService<C, DynamoStore>,
    mut empty: impl AsyncFnMut(&ProductId),
) -> Latency {
    let mut samples = Vec::with_capacity(300);
    for n in 0..300 {
        let id = ProductId::parse(&format!("P-{}", 10001 + n % 200)).unwrap();
        empty(&id).await;
        let started = Instant::now();
        service.get(&id).await.unwrap();
        samples.push(started.elapsed());
    }
    latency(samples)
}

/// Hit and miss paths on memcached next to a raw `mg` (hit) and GetItem + raw `ms`
/// (miss), and next to the same paths on Redis, all interleaved in the same rounds.
async fn memcached_beside_redis(report: &mut Report, redis: &RedisServer, table: &DynamoStore) {
    let memcached = MemcachedServer::start();
    let url = MemcachedUrl::try_from(memcached.url()).unwrap();
    let cache = MemcachedCache::new(&url, Duration::from_millis(50), 1).unwrap();
    cache.wait_connected(Duration::from_secs(2)).await.unwrap();
    let on_memcached = ProductService::new(cache, table.clone(), Duration::from_secs(300));
    let on_redis = ProductService::new(
        cache_for_copies(redis).await,
        table.clone(),
        Duration::from_secs(300),
    );
    let mut raw = RawMemcached::connect(memcached.port).await;
    let raw_redis = redis.client().await;
    let id = ProductId::parse("P-10001").unwrap();
    on_memcached.get(&id).await.unwrap();
    on_redis.get(&id).await.unwrap();

    let (mut hits, mut floors, mut redis_hits) = (Vec::new(), Vec::new(), Vec::new());
    for _ in 0..ROUNDS {
        floors.push(
            timed(2_000, async || {
                drop(raw.call(b"mg product:P-10001 v\r\n").await)
            })
            .await,
        );
        hits.push(timed(2_000, async || drop(on_memcached.get(&id).await.unwrap())).await);
        redis_hits.push(timed(2_000, async || drop(on_redis.get(&id).await.unwrap())).await);
    }
    let (hit, floor, redis_hit) = (median_of(&hits), median_of(&floors), median_of(&redis_hits));
    report.row(
        "memcached, in process: hit path (service.get, cached)",
        p50_p99(hit),
        format!("raw mg {}", p50_p99(floor)),
        verdict(hit.p50.as_secs_f64() / floor.p50.as_secs_f64(), 1.3),
    );
    report.row(
        "memcached beside Redis: hit path, same rounds",
        format!("memcached {}", p50_p99(hit)),
        format!("Redis {}", p50_p99(redis_hit)),
        format!(
            "{:.2}x",
            hit.p50.as_secs_f64() / redis_hit.p50.as_secs_f64()
        ),
    );

    let client = aws_sdk_dynamodb::Client::new(&sdk_config().await);
    let (mut misses, mut floors, mut redis_misses) = (Vec::new(), Vec::new(), Vec::new());
    for _ in 0..ROUNDS {
        let mut floor = Vec::with_capacity(300);
        for n in 0..300 {
            let key = format!("P-{}", 10001 + n % 200);
            let started = Instant::now();
            let body = raw_get_item(&client, table, &key).await;
            let set = format!("ms bench:{key} {} T300\r\n{body}\r\n", body.len());
            raw.call(set.as_bytes()).await;
            floor.push(started.elapsed());
        }
        let miss = miss_round(&on_memcached, async |id| {
            raw.call(format!("md {}\r\n", id.cache_key()).as_bytes())
                .await;
        })
        .await;
        let redis_miss = miss_round(&on_redis, async |id| {
            let _: i64 = raw_redis.del(id.cache_key()).await.unwrap();
        })
        .await;
        floors.push(latency(floor));
        misses.push(miss);
        redis_misses.push(redis_miss);
    }
    let (miss, floor, redis_miss) = (
        median_of(&misses),
        median_of(&floors),
        median_of(&redis_misses),
    );
    report.row(
        "memcached, in process: miss path (GetItem, lease, CAS fill)",
        p50_p99(miss),
        format!("GetItem+ms {}", p50_p99(floor)),
        verdict(miss.p50.as_secs_f64() / floor.p50.as_secs_f64(), 1.2),
    );
    report.row(
        "memcached beside Redis: miss path, same rounds",
        format!("memcached {}", p50_p99(miss)),
        format!("Redis {}", p50_p99(redis_miss)),
        format!(
            "{:.2}x",
            miss.p50.as_secs_f64() / redis_miss.p50.as_secs_f64()
        ),
    );
}

/// Ids drawn from a Zipf(1.1) distribution over the 200 sample products, seeded.
fn zipf_ids(count: usize) -> Vec<ProductId> {
    let weights: Vec<f64> = (1..=200)
        .map(|rank| 1.0 / f64::from(rank).powf(1.1))
        .collect();
    let total: f64 = weights.iter().sum();
    let mut cdf = Vec::with_capacity(200);
    let mut sum = 0.0;
    for weight in weights {
        sum += weight / total;
        cdf.push(sum);
    }
    let mut rng = fastrand::Rng::with_seed(42);
    (0..count)
        .map(|_| {
            let draw = rng.f64();
            let rank = cdf.iter().position(|&c| draw <= c).unwrap_or(199);
            ProductId::parse(&format!("P-{}", 10001 + rank)).unwrap()
        })
        .collect()
}

async fn skewed(report: &mut Report, redis: &RedisServer, table: &DynamoStore) {
    let ids = zipf_ids(20_000);
    let url = RedisUrl::try_from(redis.url()).unwrap();
    let (mut plain, mut tiered) = (Vec::new(), Vec::new());
    for _ in 0..ROUNDS {
        for (with_l1, rates) in [(false, &mut plain), (true, &mut tiered)] {
            let cache = RedisCache::connect(&url, Duration::from_millis(50), 1).unwrap();
            cache.wait_connected(Duration::from_secs(2)).await.unwrap();
            let mut service = ProductService::new(cache, table.clone(), Duration::from_secs(300));
            if with_l1 {
                service = service.with_l1(10_000, Duration::from_secs(1));
            }
            for id in &ids[..1_000] {
                service.get(id).await.unwrap();
            }
            let started = Instant::now();
            for id in &ids {
                service.get(id).await.unwrap();
            }
            rates.push(ids.len() as f64 / started.elapsed().as_secs_f64());
        }
    }
    let (plain, tiered) = (median_f64(plain), median_f64(tiered));
    report.row(
        "in process: Zipf(1.1) over 200 ids, L1 tier (10k entries, 1 s)",
        format!("{tiered:.0} gets/s"),
        format!("without L1 {plain:.0} gets/s"),
        format!("{:.1}x with L1", tiered / plain),
    );
}

// --- Lambda mode -----------------------------------------------------------------------

fn lambda_env(runtime: &RuntimeApi) -> Vec<(String, String)> {
    [
        ("AWS_LAMBDA_RUNTIME_API", runtime.addr.to_string()),
        ("AWS_LAMBDA_FUNCTION_NAME", "product-api".to_owned()),
        ("AWS_LAMBDA_FUNCTION_VERSION", "$LATEST".to_owned()),
        ("AWS_LAMBDA_FUNCTION_MEMORY_SIZE", "256".to_owned()),
        (
            "AWS_LAMBDA_LOG_GROUP_NAME",
            "/aws/lambda/product-api".to_owned(),
        ),
        ("AWS_LAMBDA_LOG_STREAM_NAME", "bench".to_owned()),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_owned(), v))
    .collect()
}

fn rest_event() -> Value {
    let path = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/fixtures/apigw_rest_stage.json"
    );
    serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
}

fn spawn_function(binary: &str, runtime: &RuntimeApi, env: &[(String, String)]) -> Child {
    function_command(Command::new(binary), runtime, env)
        .spawn()
        .unwrap()
}

/// `command` (a function, or a tool with the function as its argument) with the
/// function's environment and the Runtime API's, its output discarded.
fn function_command(
    mut command: Command,
    runtime: &RuntimeApi,
    env: &[(String, String)],
) -> Command {
    command
        .env_clear()
        .envs(env.iter().cloned())
        .envs(lambda_env(runtime))
        .env("RUST_LOG", "error")
        .stdout(Stdio::null())
        .stderr(Stdio::null());
    command
}

fn peak_rss_mib(child: &Child) -> f64 {
    let status = std::fs::read_to_string(format!("/proc/{}/status", child.id())).unwrap();
    let kb: f64 = status
        .lines()
        .find(|l| l.starts_with("VmHWM:"))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|v| v.parse().ok())
        .unwrap();
    kb / 1024.0
}

/// Median time from process spawn to the first response, over `spawns` processes.
async fn cold_start(binary: &str, env: &[(String, String)], spawns: usize) -> Duration {
    let mut samples = Vec::new();
    for _ in 0..spawns {
        let runtime = RuntimeApi::start().await;
        let started = Instant::now();
        let mut child = spawn_function(binary, &runtime, env);
        let response = runtime.invoke(rest_event()).await.unwrap();
        samples.push(started.elapsed());
        assert_eq!(response["statusCode"], 200, "{response}");
        let _ = child.kill();
        let _ = child.wait();
    }
    latency(samples).p50
}

/// What one function did warm, over every round.
struct Warm {
    latency: Latency,
    /// Invocations per second, median of the rounds.
    rate: f64,
    /// Peak RSS after all of them.
    rss_mib: f64,
    /// The function's own CPU time (user + system) per invocation: on Lambda, where CPU
    /// is a share proportional to memory, what bounds throughput and billed time.
    cpu: Duration,
}

/// Warm figures of one function.
async fn warm(binary: &str, env: &[(String, String)]) -> Warm {
    let mut figures = warm_interleaved(&[(binary, env.to_vec())]).await;
    figures.remove(0)
}

/// [`warm`] for several functions at once, each behind its own Runtime API: every round
/// takes 2,000 invocations of each in turn, so that the machine's noise falls on all of
/// them alike.
async fn warm_interleaved(functions: &[(&str, Vec<(String, String)>)]) -> Vec<Warm> {
    let event = rest_event();
    let mut started = Vec::new();
    for (binary, env) in functions {
        let runtime = RuntimeApi::start().await;
        let child = spawn_function(binary, &runtime, env);
        runtime.invoke(event.clone()).await.unwrap();
        let cpu_before = cpu_time(&child);
        started.push((runtime, child, cpu_before));
    }
    let mut rounds: Vec<(Vec<Latency>, Vec<f64>)> =
        functions.iter().map(|_| Default::default()).collect();
    for _ in 0..ROUNDS {
        for ((runtime, _, _), (latencies, rates)) in started.iter().zip(&mut rounds) {
            let mut samples = Vec::with_capacity(2_000);
            let round = Instant::now();
            for _ in 0..2_000 {
                let event = event.clone();
                let begun = Instant::now();
                let reply = runtime.invoke(event).await.unwrap();
                samples.push(begun.elapsed());
                assert_eq!(reply["statusCode"], 200, "{reply}");
            }
            rates.push(2_000.0 / round.elapsed().as_secs_f64());
            latencies.push(latency(samples));
        }
    }
    started
        .into_iter()
        .zip(rounds)
        .map(|((_, mut child, cpu_before), (latencies, rates))| {
            let cpu = (cpu_time(&child) - cpu_before) / u32::try_from(ROUNDS * 2_000).unwrap();
            let rss_mib = peak_rss_mib(&child);
            let _ = child.kill();
            let _ = child.wait();
            Warm {
                latency: median_of(&latencies),
                rate: median_f64(rates),
                rss_mib,
                cpu,
            }
        })
        .collect()
}

/// Instructions per warm invocation, counted by callgrind: the same count however busy
/// the machine is. Two runs of the function under valgrind, of `SHORT` and of `SHORT +
/// COUNTED` invocations, each counted from the exec to the SIGTERM after its last
/// answer; start-up and shutdown cancel out in the difference.
async fn instructions_per_invocation(binary: &str, env: &[(String, String)]) -> f64 {
    const SHORT: usize = 100;
    const COUNTED: usize = 1_000;
    let event = rest_event();
    let mut totals = Vec::new();
    for invocations in [SHORT, SHORT + COUNTED] {
        let out = std::env::temp_dir().join(format!(
            "bench-callgrind-{}-{invocations}.out",
            std::process::id()
        ));
        let runtime = RuntimeApi::start().await;
        let mut valgrind = Command::new("valgrind");
        valgrind
            .arg("--tool=callgrind")
            .arg(format!("--callgrind-out-file={}", out.display()))
            .arg(binary);
        let mut child = function_command(valgrind, &runtime, env)
            .spawn()
            .expect("valgrind (Debian package valgrind; scripts/bench.sh installs it)");
        for _ in 0..invocations {
            let reply = runtime.invoke(event.clone()).await.unwrap();
            assert_eq!(reply["statusCode"], 200, "{reply}");
        }
        // callgrind writes its counts as the process ends, on a signal too.
        let killed = Command::new("kill")
            .args(["-TERM", &child.id().to_string()])
            .status()
            .unwrap();
        assert!(killed.success());
        let _ = child.wait();
        let counts = std::fs::read_to_string(&out).unwrap();
        let _ = std::fs::remove_file(&out);
        let total = counts
            .lines()
            .find_map(|line| {
                line.strip_prefix("summary:")
                    .or(line.strip_prefix("totals:"))
            })
            .and_then(|total| total.trim().parse::<f64>().ok())
            .expect("callgrind's output has its total");
        totals.push(total);
    }
    (totals[1] - totals[0]) / COUNTED as f64
}

/// CPU time a running process has used so far, user and system, on all its threads,
/// those that have exited included: its process CPU clock (`clock_getcpuclockid`), in
/// nanoseconds (`/proc/PID/stat` counts 10 ms ticks, as long as a cold start's CPU).
fn cpu_time(child: &Child) -> Duration {
    let pid = libc::pid_t::try_from(child.id()).unwrap();
    let mut clock: libc::clockid_t = 0;
    // SAFETY: a pid and a pointer to a clockid_t that outlives the call.
    let found = unsafe { libc::clock_getcpuclockid(pid, &raw mut clock) };
    assert_eq!(
        found,
        0,
        "no CPU clock for process {pid}: {}",
        std::io::Error::from_raw_os_error(found)
    );
    let mut now = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: a clock id just given by the kernel and a pointer to a timespec that
    // outlives the call.
    let read = unsafe { libc::clock_gettime(clock, &raw mut now) };
    assert_eq!(
        read,
        0,
        "process {pid}'s CPU clock: {}",
        std::io::Error::last_os_error()
    );
    let cpu = Duration::new(
        u64::try_from(now.tv_sec).unwrap(),
        u32::try_from(now.tv_nsec).unwrap(),
    );
    assert!(!cpu.is_zero(), "process {pid} has used no CPU");
    cpu
}

/// A release example's path, in the target directory this bench was built into (it runs
/// from `<target>/release/deps/`, so `CARGO_TARGET_DIR` is followed); `make bench`
/// builds them first.
fn example(name: &str) -> String {
    let release = std::env::current_exe()
        .ok()
        .and_then(|bench| Some(bench.parent()?.parent()?.to_owned()))
        .expect("the bench runs from <target>/release/deps");
    let path = release.join("examples").join(name);
    assert!(
        path.exists(),
        "{}: build it first: cargo build --release --example {name}",
        path.display()
    );
    path.display().to_string()
}

async fn lambda_mode(report: &mut Report, redis: &RedisServer, table: &DynamoStore) {
    let product_api = env!("CARGO_BIN_EXE_product-api");
    let noop = example("noop-lambda");
    let raw_get = example("raw-get-lambda");
    let fred_get = example("fred-get-lambda");
    let env = service_env(&redis.url(), table);
    // Warm the product into Redis so the hit path is measured.
    let _: i64 = redis.client().await.del("product:P-10001").await.unwrap();

    let python = concat!(env!("CARGO_MANIFEST_DIR"), "/benches/python_demo/bootstrap");
    // The function's stderr is not shown, so a missing venv would only be a timeout. The
    // stamp is written once every package has installed.
    assert!(
        std::path::Path::new(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/.tools/demo-venv/.installed-requirements-bench.txt"
        ))
        .exists(),
        "the Python baseline's venv is missing or incomplete: run scripts/install-tools.sh bench"
    );
    let mut python_env = env.clone();
    // boto3 reads the region from AWS_DEFAULT_REGION, which Lambda sets beside AWS_REGION.
    if let Some((_, region)) = env.iter().find(|(name, _)| name == "AWS_REGION") {
        python_env.push(("AWS_DEFAULT_REGION".to_owned(), region.clone()));
    }
    // Its own key, cached by a first invocation, so that its hit path is measured too.
    let _: i64 = redis
        .client()
        .await
        .del("demo:product:P-10001")
        .await
        .unwrap();

    let ours_start = cold_start(product_api, &env, 21).await;
    let floor = cold_start(&noop, &env, 21).await;
    let python_start = cold_start(python, &python_env, 21).await;
    report.row(
        "Lambda: cold start, spawn to first response (median of 21)",
        ms(ours_start),
        format!("no-I/O function {}", ms(floor)),
        format!(
            "target < 20 ms {}",
            if ours_start < Duration::from_millis(20) {
                "met"
            } else {
                "MISSED"
            }
        ),
    );

    let mut with_l1 = env.clone();
    with_l1.push(("L1_CACHE_ENTRIES".to_owned(), "10000".to_owned()));
    let mut raw_env = env.clone();
    raw_env.push(("BENCH_KEY".to_owned(), "product:P-10001".to_owned()));
    let figures = warm_interleaved(&[
        (product_api, env.clone()),
        (&noop, env.clone()),
        (&raw_get, raw_env.clone()),
        (product_api, with_l1),
        (python, python_env),
        (&fred_get, raw_env.clone()),
    ])
    .await;
    // Its hits were hits: the key its first invocation filled is still there.
    let demo_key: Option<String> = redis
        .client()
        .await
        .get("demo:product:P-10001")
        .await
        .unwrap();
    assert!(demo_key.is_some(), "the Python baseline cached nothing");
    let [ours, floor, raw, tiered, python, adapter] = &figures[..] else {
        unreachable!("six functions measured")
    };
    let gap = ours.latency.p50.saturating_sub(floor.latency.p50);
    let round_trip = raw.latency.p50.saturating_sub(floor.latency.p50);
    report.row(
        "Lambda: one raw Redis GET per invocation (examples/raw-get-lambda.rs)",
        p50_p99(raw.latency),
        format!("no-I/O {}", p50_p99(floor.latency)),
        format!(
            "a raw round trip as a function pays it: +{}",
            ms(round_trip)
        ),
    );
    // Noise can put the raw function at or under the no-I/O one: then there is no unit.
    let verdict = if round_trip.is_zero() {
        format!(
            "+{}; no verdict: the raw round trip measured 0 in this run",
            ms(gap)
        )
    } else {
        format!(
            "+{} = {:.2} raw round trips (target <= 1.5) {}",
            ms(gap),
            gap.as_secs_f64() / round_trip.as_secs_f64(),
            if gap <= round_trip.mul_f64(1.5) {
                "met"
            } else {
                "MISSED"
            }
        )
    };
    report.row(
        "Lambda: warm hit through the Runtime API",
        p50_p99(ours.latency),
        format!("no-I/O {}", p50_p99(floor.latency)),
        verdict,
    );
    let tiered_gap = tiered.latency.p50.as_secs_f64() - floor.latency.p50.as_secs_f64();
    report.row(
        "Lambda: warm hit with the L1 tier on (no Redis round trip)",
        p50_p99(tiered.latency),
        format!("no-I/O {}", p50_p99(floor.latency)),
        format!("{:+.3} ms", tiered_gap * 1000.0),
    );
    // The hit's gap, split where the adapter's function stands between the raw GET's and
    // product-api: fred and the hit's command, then product-api's own work around them.
    let in_units = |gap: f64| {
        if round_trip.is_zero() {
            String::new()
        } else {
            format!(" = {:.2} raw round trips", gap / round_trip.as_secs_f64())
        }
    };
    let adapter_gap = adapter.latency.p50.as_secs_f64() - raw.latency.p50.as_secs_f64();
    let own_gap = ours.latency.p50.as_secs_f64() - adapter.latency.p50.as_secs_f64();
    report.row(
        "Lambda: the hit's command through product-api's Redis adapter (examples/fred-get-lambda.rs)",
        p50_p99(adapter.latency),
        format!("raw GET {}", p50_p99(raw.latency)),
        format!(
            "fred and SET NX GET above the raw GET {:+.3} ms{}; product-api above this {:+.3} ms{}",
            adapter_gap * 1000.0,
            in_units(adapter_gap),
            own_gap * 1000.0,
            in_units(own_gap)
        ),
    );
    report.row(
        "Lambda: the Python demo handler's warm hit (benches/python_demo)",
        p50_p99(python.latency),
        format!("product-api {}", p50_p99(ours.latency)),
        format!(
            "product-api's p99 is {:.2}x of it (target <= 0.5x) {}",
            ours.latency.p99.as_secs_f64() / python.latency.p99.as_secs_f64(),
            if ours.latency.p99.as_secs_f64() <= python.latency.p99.as_secs_f64() / 2.0 {
                "met"
            } else {
                "MISSED"
            }
        ),
    );
    report.row(
        "Lambda: the Python demo handler's cold start (median of 21)",
        ms(python_start),
        format!("product-api {}", ms(ours_start)),
        format!(
            "{:.0}x of product-api's",
            python_start.as_secs_f64() / ours_start.as_secs_f64()
        ),
    );
    report.row(
        "Lambda: CPU time per warm hit (user + system, over every round)",
        format!("{:.0} us", ours.cpu.as_secs_f64() * 1e6),
        format!(
            "no-I/O {:.0} us; raw GET {:.0} us; fred adapter {:.0} us; with L1 {:.0} us",
            floor.cpu.as_secs_f64() * 1e6,
            raw.cpu.as_secs_f64() * 1e6,
            adapter.cpu.as_secs_f64() * 1e6,
            tiered.cpu.as_secs_f64() * 1e6
        ),
        format!(
            "Python demo {:.0} us ({:.2}x of it)",
            python.cpu.as_secs_f64() * 1e6,
            ours.cpu.as_secs_f64() / python.cpu.as_secs_f64()
        ),
    );
    // The same four functions' work counted, not timed: the figures above move with the
    // machine, these do not.
    let ours_ir = instructions_per_invocation(product_api, &env).await;
    let floor_ir = instructions_per_invocation(&noop, &env).await;
    let raw_ir = instructions_per_invocation(&raw_get, &raw_env).await;
    let adapter_ir = instructions_per_invocation(&fred_get, &raw_env).await;
    report.row(
        "Lambda: instructions per warm hit (callgrind, 1,000 hits)",
        format!("{:.1}k", ours_ir / 1e3),
        format!(
            "no-I/O {:.1}k; raw GET {:.1}k; fred adapter {:.1}k",
            floor_ir / 1e3,
            raw_ir / 1e3,
            adapter_ir / 1e3
        ),
        format!(
            "fred and SET NX GET above the raw GET {:+.1}k; product-api above the adapter {:+.1}k",
            (adapter_ir - raw_ir) / 1e3,
            (ours_ir - adapter_ir) / 1e3
        ),
    );
    report.row(
        "Lambda: invocations per second, one instance",
        format!("{:.0}/s", ours.rate),
        format!(
            "no-I/O {:.0}/s; Python demo {:.0}/s",
            floor.rate, python.rate
        ),
        format!("{:.2}x of the floor", ours.rate / floor.rate),
    );
    report.row(
        "Lambda: peak RSS after 10,000 invocations",
        format!("{:.1} MiB", ours.rss_mib),
        format!("Python demo {:.1} MiB", python.rss_mib),
        format!(
            "target < 20 MiB {}",
            if ours.rss_mib < 20.0 { "met" } else { "MISSED" }
        ),
    );
}

// --- local HTTP under load ------------------------------------------------------------

fn wrk(port: u16, connections: u32) -> f64 {
    let output = Command::new("wrk")
        // wrk needs at least one connection per thread.
        .args([
            format!("-t{}", connections.min(2)),
            format!("-c{connections}"),
            "-d5s".to_owned(),
        ])
        .arg(format!("http://127.0.0.1:{port}/product/P-10001"))
        .output()
        .expect("wrk must be on PATH (Debian package wrk); make bench installs it");
    let text = String::from_utf8_lossy(&output.stdout);
    text.lines()
        .find_map(|l| l.strip_prefix("Requests/sec:"))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or_else(|| panic!("no Requests/sec in wrk output: {text}"))
}

fn redis_benchmark(port: u16, connections: u32) -> f64 {
    let output = Command::new("redis-benchmark")
        .args([
            "-p",
            &port.to_string(),
            "-t",
            "get",
            "-c",
            &connections.to_string(),
            "-n",
            "200000",
            "-q",
        ])
        .output()
        .expect("redis-benchmark must be on PATH (Debian package redis-tools)");
    let text = String::from_utf8_lossy(&output.stdout);
    let line = text
        .split(['\r', '\n'])
        .rfind(|l| l.starts_with("GET:"))
        .unwrap_or_default()
        .to_owned();
    line.split_whitespace()
        .nth(1)
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| panic!("no GET rate in: {text}"))
}

async fn local_http(report: &mut Report, redis: &RedisServer, table: &DynamoStore) {
    const PAIRS: usize = 5;
    let port = free_port();
    let mut child = Command::new(env!("CARGO_BIN_EXE_product-api"))
        .env_clear()
        .envs(service_env(&redis.url(), table))
        // As local mode's own default does: past 100 requests between two flushes of the
        // metrics (10 s), the EMF exporter logs an error for every request.
        .env("RUST_LOG", "error,metrics_cloudwatch_embedded=off")
        .env("LISTEN_ADDR", format!("127.0.0.1:{port}"))
        .stdout(Stdio::null())
        .spawn()
        .unwrap();
    wait_for_port(port, "product-api");
    reqwest::get(format!("http://127.0.0.1:{port}/product/P-10001"))
        .await
        .unwrap();
    for connections in [1, 16, 64] {
        // In pairs, each run of wrk beside a run of its floor: redis-benchmark alone moves
        // by a third between runs minutes apart here, so the verdict is the median of the
        // pairs' ratios, not a ratio of medians taken minutes apart.
        let pairs: Vec<(f64, f64)> = (0..PAIRS)
            .map(|_| {
                (
                    wrk(port, connections),
                    redis_benchmark(redis.port, connections),
                )
            })
            .collect();
        let ours = median_f64(pairs.iter().map(|(ours, _)| *ours).collect());
        let floor = median_f64(pairs.iter().map(|(_, floor)| *floor).collect());
        let ratios: Vec<f64> = pairs.iter().map(|(ours, floor)| ours / floor).collect();
        let ratio = median_f64(ratios.clone());
        let spread = ratios
            .iter()
            .map(|ratio| format!("{ratio:.2}"))
            .collect::<Vec<_>>()
            .join(", ");
        report.row(
            &format!("local HTTP: hits per second, {connections} connections (wrk)"),
            format!("{ours:.0}/s"),
            format!("redis-benchmark GET {floor:.0}/s"),
            format!(
                "{ratio:.2}x, median of {PAIRS} pairs ({spread}) (target >= 0.5x) {}",
                if ratio >= 0.5 { "met" } else { "MISSED" }
            ),
        );
    }
    report.row(
        "local HTTP: peak RSS after the load",
        format!("{:.1} MiB", peak_rss_mib(&child)),
        String::new(),
        String::new(),
    );
    let _ = child.kill();
    let _ = child.wait();
}

// --- sizes ------------------------------------------------------------------------------

fn sizes(report: &mut Report) {
    let binary = env!("CARGO_BIN_EXE_product-api");
    let bytes = std::fs::metadata(binary).unwrap().len() as f64;
    let mb = bytes / 1_000_000.0;
    report.row(
        "product-api binary, stripped (release profile)",
        format!("{mb:.1} MB"),
        String::new(),
        format!(
            "target < 15 MB {}",
            if mb < 15.0 { "met" } else { "MISSED" }
        ),
    );
}

fn write_markdown(report: &Report) {
    let cpu = std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|info| {
            info.lines()
                .find(|l| l.starts_with("model name"))
                .map(|l| l.split(':').nth(1).unwrap_or("").trim().to_owned())
        })
        .unwrap_or_default();
    let cores = std::thread::available_parallelism().map_or(0, usize::from);
    let mut md = String::new();
    let _ = writeln!(md, "# Benchmarks\n");
    let _ = writeln!(
        md,
        "Made by `make bench` (`scripts/bench.sh`) on {cores} cores ({cpu}), against a local `redis-server` and dynalite."
    );
    let _ = writeln!(
        md,
        "Figures are medians of {ROUNDS} rounds (cold starts: of 21 spawns); each is next to a floor measured in the same run.\n"
    );
    let _ = writeln!(
        md,
        "| measurement | figure | floor | verdict |\n| --- | --- | --- | --- |"
    );
    for [what, figure, floor, verdict] in &report.rows {
        let _ = writeln!(md, "| {what} | {figure} | {floor} | {verdict} |");
    }
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/docs/BENCHMARKS.md");
    let notes = std::fs::read_to_string(path)
        .ok()
        .and_then(|old| {
            old.split_once("<!-- notes -->")
                .map(|(_, notes)| notes.to_owned())
        })
        .unwrap_or_else(|| "\n".to_owned());
    std::fs::write(path, format!("{md}\n<!-- notes -->{notes}")).unwrap();
    println!("\nwritten to docs/BENCHMARKS.md");
}
