//! Services for the integration tests: a `redis-server` or `memcached` per test (killed
//! on drop), either behind [`CacheServer`] for tests that run on both engines, and a
//! fresh table per test in the emulator.

use std::net::{TcpListener, TcpStream};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use bytes::Bytes;
use fred::prelude::{Builder, ClientLike, Config as FredConfig, KeysInterface};
use product_catalog::adapters::{AnyCache, DynamoStore, MemcachedCache, RedisCache};
use product_catalog::config::{ApiConfig, FromEnvironment, MemcachedUrl, RedisUrl, TableName};
use product_catalog::item::items_from_json_array;
use product_catalog::metrics;

/// A port nobody listens on right now.
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// Waits until something accepts TCP connections on `port`.
pub fn wait_for_port(port: u16, what: &str) {
    let deadline = Instant::now() + Duration::from_secs(10);
    while TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(
            Instant::now() < deadline,
            "{what} did not start listening on port {port} within 10 s"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// A child process that is killed (and reaped) when dropped, also when the test that
/// started it panics.
pub struct ChildGuard(pub Child);

impl std::ops::Deref for ChildGuard {
    type Target = Child;

    fn deref(&self) -> &Child {
        &self.0
    }
}

impl std::ops::DerefMut for ChildGuard {
    fn deref_mut(&mut self) -> &mut Child {
        &mut self.0
    }
}

impl Drop for ChildGuard {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// A `product-api` local server with exactly `env` (and `LISTEN_ADDR`), stdout
/// discarded, listening when this returns; killed when the guard drops.
pub fn product_api(env: &[(String, String)]) -> (ChildGuard, u16) {
    let (guard, port) = spawn_product_api(env);
    wait_for_port(port, "product-api");
    (guard, port)
}

/// [`product_api`] without waiting for it to listen.
pub fn spawn_product_api(env: &[(String, String)]) -> (ChildGuard, u16) {
    let port = free_port();
    let child = Command::new(env!("CARGO_BIN_EXE_product-api"))
        .env_clear()
        .envs(env.iter().cloned())
        .env("LISTEN_ADDR", format!("127.0.0.1:{port}"))
        .stdout(Stdio::null())
        .spawn()
        .expect("start product-api");
    (ChildGuard(child), port)
}

/// A throw-away `redis-server` on a free port.
pub struct RedisServer {
    pub port: u16,
    child: Option<Child>,
    dir: tempfile::TempDir,
    extra: Vec<String>,
}

impl RedisServer {
    pub fn start() -> Self {
        Self::start_with(|_, _| Vec::new())
    }

    /// Starts with extra arguments, given the port and the server's own folder (TLS,
    /// AUTH, cluster settings). With `--port 0` in them, `port` is the TLS port.
    pub fn start_with(extra: impl FnOnce(u16, &Path) -> Vec<String>) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let port = free_port();
        let extra = extra(port, dir.path());
        let mut server = Self {
            port,
            child: None,
            dir,
            extra,
        };
        server.restart();
        server
    }

    /// A server on a free port that is not running yet: nothing listens there until
    /// [`RedisServer::restart`].
    pub fn not_started() -> Self {
        Self {
            port: free_port(),
            child: None,
            dir: tempfile::tempdir().unwrap(),
            extra: Vec::new(),
        }
    }

    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}", self.port)
    }

    /// Starts (again) on the same port.
    pub fn restart(&mut self) {
        assert!(self.child.is_none(), "already running");
        let child = Command::new("redis-server")
            .args(["--port", &self.port.to_string(), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"])
            .args(["--logfile", "redis.log"])
            .arg("--dir")
            .arg(self.dir.path())
            .args(&self.extra)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("redis-server must be on PATH (Debian package redis-server); `make test` checks for it");
        self.child = Some(child);
        wait_for_port(self.port, "redis-server");
    }

    /// Kills the server (SIGKILL: no goodbye to clients).
    pub fn stop(&mut self) {
        kill_child(&mut self.child);
    }

    /// Freezes (SIGSTOP) or thaws (SIGCONT) the server: connections stay open, replies stop.
    pub fn signal(&self, signal: &str) {
        send_signal(self.child.as_ref().expect("running"), signal);
    }

    /// A plain client for looking at what the service wrote.
    pub async fn client(&self) -> fred::clients::Client {
        self.client_with_password(None).await
    }

    /// [`RedisServer::client`] for a server started with `--requirepass`.
    pub async fn client_with_password(&self, password: Option<&str>) -> fred::clients::Client {
        let mut config = FredConfig::from_url(&self.url()).unwrap();
        config.password = password.map(str::to_owned);
        let client = Builder::from_config(config).build().unwrap();
        client
            .init()
            .await
            .expect("connect to the test redis-server");
        client
    }
}

impl Drop for RedisServer {
    fn drop(&mut self) {
        self.stop();
    }
}

/// Sends `signal` (`-STOP`, `-CONT`) to a child process. For `-STOP`, returns only once
/// every thread has stopped: kill(2) returns as soon as the signal is queued, and a
/// worker thread still running on the other core can answer one more request.
fn send_signal(child: &Child, signal: &str) {
    let pid = child.id().to_string();
    assert!(
        Command::new("kill")
            .args([signal, &pid])
            .status()
            .unwrap()
            .success()
    );
    if signal == "-STOP" {
        let started = Instant::now();
        while !every_thread_stopped(child.id()) {
            assert!(
                started.elapsed() < Duration::from_secs(5),
                "pid {pid} not stopped 5 s after SIGSTOP"
            );
            std::thread::sleep(Duration::from_millis(1));
        }
    }
}

/// Whether every thread of `pid` is in state `T` (stopped), read from /proc.
fn every_thread_stopped(pid: u32) -> bool {
    let tasks = std::fs::read_dir(format!("/proc/{pid}/task")).expect("read /proc/PID/task");
    tasks.flatten().all(|task| {
        // The state is the field after the command name, which ends with the last ')';
        // a thread that has exited since the listing answers nothing either.
        let stat = std::fs::read_to_string(task.path().join("stat")).ok();
        stat.is_none_or(|stat| {
            stat.rsplit_once(')')
                .is_some_and(|(_, rest)| rest.trim_start().starts_with('T'))
        })
    })
}

/// Kills (SIGKILL) and reaps a child, if there is one.
fn kill_child(child: &mut Option<Child>) {
    if let Some(mut child) = child.take() {
        let _ = child.kill();
        let _ = child.wait();
    }
}

/// A throw-away `memcached` on a free port (TCP only, loopback only).
pub struct MemcachedServer {
    pub port: u16,
    child: Option<Child>,
    extra: Vec<String>,
}

impl MemcachedServer {
    pub fn start() -> Self {
        Self::start_with(Vec::new())
    }

    /// Starts with extra arguments (TLS: `-Z -o ssl_chain_cert=…,ssl_key=…`).
    pub fn start_with(extra: Vec<String>) -> Self {
        let mut server = Self::not_started();
        server.extra = extra;
        server.restart();
        server
    }

    /// A server on a free port that is not running yet.
    pub fn not_started() -> Self {
        Self {
            port: free_port(),
            child: None,
            extra: Vec::new(),
        }
    }

    pub fn url(&self) -> String {
        format!("memcache://127.0.0.1:{}", self.port)
    }

    /// Starts (again) on the same port, empty.
    pub fn restart(&mut self) {
        assert!(self.child.is_none(), "already running");
        let mut command = Command::new("memcached");
        command.args(["-p", &self.port.to_string(), "-U", "0", "-l", "127.0.0.1"]);
        // memcached refuses to run as root unless told which user to run as.
        if rustix::process::geteuid().is_root() {
            command.args(["-u", "root"]);
        }
        let child = command
            .args(&self.extra)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap_or_else(|err| {
                panic!(
                    "memcached must be on PATH ({err}): install the Debian package \
                     (`apt-get install memcached`); `make test` installs it through \
                     scripts/install-tools.sh"
                )
            });
        self.child = Some(child);
        wait_for_port(self.port, "memcached");
    }

    /// Kills the server (SIGKILL).
    pub fn stop(&mut self) {
        kill_child(&mut self.child);
    }

    /// Freezes (SIGSTOP) or thaws (SIGCONT) the server.
    pub fn signal(&self, signal: &str) {
        send_signal(self.child.as_ref().expect("running"), signal);
    }

    /// Sends raw protocol text and reads until the reply ends with `end` (e.g. `b"\r\n"`
    /// after one status line): for looking at what the service wrote.
    pub fn raw(&self, request: &[u8], replies: usize) -> Vec<u8> {
        use std::io::{BufRead as _, BufReader, Read as _, Write as _};
        let stream = TcpStream::connect(("127.0.0.1", self.port)).expect("connect to memcached");
        stream
            .set_read_timeout(Some(Duration::from_secs(5)))
            .unwrap();
        (&stream).write_all(request).unwrap();
        let mut reader = BufReader::new(&stream);
        let mut out = Vec::new();
        for _ in 0..replies {
            let start = out.len();
            reader.read_until(b'\n', &mut out).unwrap();
            let line = String::from_utf8_lossy(&out[start..]).into_owned();
            if let Some(size) = line.strip_prefix("VA ") {
                let size: usize = size.split([' ', '\r']).next().unwrap().parse().unwrap();
                let mut data = vec![0; size + 2];
                reader.read_exact(&mut data).unwrap();
                out.extend_from_slice(&data);
            }
        }
        out
    }

    /// The value under a printable key and its remaining TTL in seconds (-1: none).
    pub fn get_with_ttl(&self, key: &str) -> Option<(Vec<u8>, i64)> {
        let reply = self.raw(format!("mg {key} v t\r\n").as_bytes(), 1);
        if reply.starts_with(b"EN") {
            return None;
        }
        let header_end = reply.iter().position(|b| *b == b'\n').unwrap();
        let header = String::from_utf8_lossy(&reply[..header_end]).into_owned();
        let ttl = header
            .split_whitespace()
            .find_map(|flag| flag.strip_prefix('t'))
            .unwrap()
            .parse()
            .unwrap();
        let value = reply[header_end + 1..reply.len() - 2].to_vec();
        Some((value, ttl))
    }
}

impl Drop for MemcachedServer {
    fn drop(&mut self) {
        self.stop();
    }
}

/// A cache engine the behaviour tests run against.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Engine {
    Redis,
    Memcached,
}

/// A throw-away server of either engine, with the same few operations.
pub enum CacheServer {
    Redis(RedisServer),
    Memcached(MemcachedServer),
}

impl CacheServer {
    pub fn start(engine: Engine) -> Self {
        match engine {
            Engine::Redis => Self::Redis(RedisServer::start()),
            Engine::Memcached => Self::Memcached(MemcachedServer::start()),
        }
    }

    /// A server on a free port, not running until [`CacheServer::restart`].
    pub fn not_started(engine: Engine) -> Self {
        match engine {
            Engine::Redis => Self::Redis(RedisServer::not_started()),
            Engine::Memcached => Self::Memcached(MemcachedServer::not_started()),
        }
    }

    /// `redis://…` or `memcache://…`; [`service_env`] picks the variable from it.
    pub fn url(&self) -> String {
        match self {
            Self::Redis(redis) => redis.url(),
            Self::Memcached(memcached) => memcached.url(),
        }
    }

    /// The variable that names this server, and its value.
    pub fn env(&self) -> (&'static str, String) {
        (cache_url_var(&self.url()), self.url())
    }

    pub fn restart(&mut self) {
        match self {
            Self::Redis(redis) => redis.restart(),
            Self::Memcached(memcached) => memcached.restart(),
        }
    }

    pub fn stop(&mut self) {
        match self {
            Self::Redis(redis) => redis.stop(),
            Self::Memcached(memcached) => memcached.stop(),
        }
    }

    pub fn signal(&self, signal: &str) {
        match self {
            Self::Redis(redis) => redis.signal(signal),
            Self::Memcached(memcached) => memcached.signal(signal),
        }
    }

    /// The service's adapter for this server, every call bounded by `timeout`, connected.
    pub async fn cache(&self, timeout: Duration) -> AnyCache {
        let cache = match self {
            Self::Redis(redis) => {
                let url = RedisUrl::try_from(redis.url()).unwrap();
                AnyCache::Redis(RedisCache::connect(&url, timeout, 1).unwrap())
            }
            Self::Memcached(memcached) => {
                let url = MemcachedUrl::try_from(memcached.url()).unwrap();
                AnyCache::Memcached(MemcachedCache::new(&url, timeout, 1).unwrap())
            }
        };
        match &cache {
            AnyCache::Redis(redis) => redis.wait_connected(Duration::from_secs(2)).await.unwrap(),
            AnyCache::Memcached(memcached) => {
                memcached
                    .wait_connected(Duration::from_secs(2))
                    .await
                    .unwrap();
            }
            AnyCache::Memory(_) => {}
        }
        cache
    }

    /// What a printable key holds and its remaining TTL in seconds (-1: none), read with
    /// a plain client of the engine, not the service's adapter.
    pub async fn get_with_ttl(&self, key: &str) -> Option<(Bytes, i64)> {
        match self {
            Self::Redis(redis) => {
                let client = redis.client().await;
                let value: Option<Bytes> = client.get(key).await.unwrap();
                let ttl: i64 = client.ttl(key).await.unwrap();
                value.map(|value| (value, ttl))
            }
            Self::Memcached(memcached) => memcached
                .get_with_ttl(key)
                .map(|(value, ttl)| (Bytes::from(value), ttl)),
        }
    }

    /// Deletes a printable key with a plain client.
    pub async fn remove(&self, key: &str) {
        match self {
            Self::Redis(redis) => {
                let _: i64 = redis.client().await.del(key).await.unwrap();
            }
            Self::Memcached(memcached) => {
                let reply = memcached.raw(format!("md {key}\r\n").as_bytes(), 1);
                assert!(reply == b"HD\r\n" || reply == b"NF\r\n", "{reply:?}");
            }
        }
    }

    /// Stores `value` under a printable key, without TTL, with a plain client.
    pub async fn put(&self, key: &str, value: &[u8]) {
        match self {
            Self::Redis(redis) => {
                let client = redis.client().await;
                let _: () = client.set(key, value, None, None, false).await.unwrap();
            }
            Self::Memcached(memcached) => {
                let mut request = format!("ms {key} {} T0\r\n", value.len()).into_bytes();
                request.extend_from_slice(value);
                request.extend_from_slice(b"\r\n");
                assert_eq!(memcached.raw(&request, 1), b"HD\r\n");
            }
        }
    }
}

/// The variable that takes this cache URL.
pub fn cache_url_var(url: &str) -> &'static str {
    if url.starts_with("memcache") {
        "MEMCACHED_URL"
    } else {
        "REDIS_URL"
    }
}

/// Writes a behaviour test once and runs it against each engine: `name::redis` and
/// `name::memcached`.
#[allow(unused_macros)]
macro_rules! on_each_engine {
    ($(#[$attr:meta])* async fn $name:ident($engine:ident: Engine) $body:block) => {
        mod $name {
            #[allow(unused_imports)]
            use super::*;

            async fn body($engine: $crate::helpers::Engine) $body

            $(#[$attr])*
            async fn redis() {
                body($crate::helpers::Engine::Redis).await;
            }

            $(#[$attr])*
            async fn memcached() {
                body($crate::helpers::Engine::Memcached).await;
            }
        }
    };
}
#[allow(unused_imports)]
pub(crate) use on_each_engine;

/// The emulator's endpoint; fails clearly when the tests run outside `make test`.
pub fn dynamodb_endpoint() -> String {
    std::env::var("AWS_ENDPOINT_URL_DYNAMODB").unwrap_or_else(|_| {
        panic!(
            "AWS_ENDPOINT_URL_DYNAMODB is not set: the integration tests need the DynamoDB emulator. \
             Run them with `make test` (or scripts/with-emulator.sh cargo test), which installs and starts it."
        )
    })
}

/// A new, empty table with a unique name.
pub async fn fresh_table() -> DynamoStore {
    dynamodb_endpoint();
    let name = format!("products-{}", uuid::Uuid::new_v4().simple());
    let store = DynamoStore::from_env(
        TableName::try_from(name).unwrap(),
        product_catalog::tls::TrustedRoots::System,
    )
    .await;
    store
        .create_table()
        .await
        .expect("create a table in the emulator");
    store
}

/// A fresh table holding the sample catalog.
pub async fn sample_table() -> DynamoStore {
    let store = fresh_table().await;
    load_sample(&store).await;
    store
}

/// Loads `data/products.json` into `store`'s table.
pub async fn load_sample(store: &DynamoStore) {
    let catalog =
        std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("data/products.json"))
            .unwrap();
    store
        .load(items_from_json_array(&catalog).unwrap(), |_| {})
        .await
        .expect("load the sample catalog");
}

/// product-api's configuration for these services, read as the binary would.
pub fn api_config(redis_url: &str, table: &DynamoStore) -> ApiConfig {
    api_config_with(redis_url, table, &[])
}

/// The same, with more variables.
pub fn api_config_with(redis_url: &str, table: &DynamoStore, more: &[(&str, &str)]) -> ApiConfig {
    let mut env = service_env(redis_url, table);
    env.extend(more.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned())));
    ApiConfig::from_lookup(|name| {
        env.iter()
            .find(|(key, _)| key == name)
            .map(|(_, value)| value.clone())
    })
    .unwrap()
}

/// Environment for a `product-api` process using these services.
pub fn service_env(redis_url: &str, table: &DynamoStore) -> Vec<(String, String)> {
    let mut env: Vec<(String, String)> = std::env::vars()
        .filter(|(k, _)| k.starts_with("AWS_"))
        .collect();
    env.push((cache_url_var(redis_url).into(), redis_url.to_owned()));
    env.push(("TABLE_NAME".into(), table.table().to_string()));
    env.push(("RUST_LOG".into(), "warn".into()));
    env
}

/// Sums the values of `metric` over the EMF lines in `stdout`.
pub fn emf_sum(stdout: &str, metric: &str) -> f64 {
    stdout
        .lines()
        .filter_map(|line| serde_json::from_str::<serde_json::Value>(line).ok())
        .filter(|doc| doc["_aws"]["CloudWatchMetrics"][0]["Namespace"] == metrics::NAMESPACE)
        .filter_map(|doc| doc[metric].as_f64())
        .sum()
}

/// A DynamoDB emulator of the test's own, for tests that stop it.
pub struct Emulator {
    pub endpoint: String,
    child: Child,
}

impl Emulator {
    pub fn start() -> Self {
        Self::start_on(free_port(), Duration::ZERO)
    }

    /// One whose new tables stay `CREATING` for `creating` (refusing writes, as
    /// DynamoDB does for seconds), where the shared one makes them `ACTIVE` at once.
    pub fn creating_tables_for(creating: Duration) -> Self {
        Self::start_on(free_port(), creating)
    }

    /// Starts it again on the same port, empty (the emulator keeps nothing), as after
    /// an outage.
    pub fn restart(&mut self) {
        self.stop();
        let port = self.endpoint.rsplit(':').next().unwrap().parse().unwrap();
        *self = Self::start_on(port, Duration::ZERO);
    }

    fn start_on(port: u16, creating: Duration) -> Self {
        let cli = Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("tools/emulator/node_modules/dynalite/cli.js");
        assert!(
            cli.exists(),
            "dynalite is not installed: run `make test` (scripts/install-tools.sh installs it)"
        );
        let child = Command::new("node")
            .arg(cli)
            .args([
                "--host",
                "127.0.0.1",
                "--port",
                &port.to_string(),
                "--createTableMs",
                &creating.as_millis().to_string(),
            ])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("node must be on PATH to run the DynamoDB emulator");
        wait_for_port(port, "dynalite");
        Self {
            endpoint: format!("http://127.0.0.1:{port}"),
            child,
        }
    }

    /// A store on a fresh table in this emulator, loaded with the sample catalog.
    pub async fn sample_table(&self) -> DynamoStore {
        let config = aws_sdk_dynamodb::config::Builder::from(
            &product_catalog::adapters::aws::sdk_config().await,
        )
        .endpoint_url(&self.endpoint)
        .build();
        let table = TableName::try_from("Products".to_owned()).unwrap();
        let store = DynamoStore::new(aws_sdk_dynamodb::Client::from_conf(config), table);
        store
            .create_table()
            .await
            .expect("create a table in the emulator");
        load_sample(&store).await;
        store
    }

    pub fn stop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for Emulator {
    fn drop(&mut self) {
        self.stop();
    }
}

/// Runs `cache-invalidator` in its local (stdin) mode on one stream event, with only the
/// environment given, and returns its batch response.
pub fn run_invalidator(
    env: &[(&str, &std::ffi::OsStr)],
    event: &serde_json::Value,
) -> serde_json::Value {
    use std::io::Write as _;
    let mut child = Command::new(env!("CARGO_BIN_EXE_cache-invalidator"))
        .env_clear()
        .envs(env.iter().copied())
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(event.to_string().as_bytes())
        .unwrap();
    let output = child.wait_with_output().unwrap();
    assert!(output.status.success(), "{output:?}");
    serde_json::from_slice(&output.stdout).unwrap()
}

/// A DynamoDB Stream record (`NEW_AND_OLD_IMAGES`) for `id`, as Lambda hands it to
/// `cache-invalidator`.
pub fn stream_record(
    event_name: &str,
    id: &str,
    new_image: Option<&serde_json::Value>,
    sequence: u32,
) -> serde_json::Value {
    serde_json::json!({
        "eventID": format!("event-{sequence}"),
        "eventName": event_name,
        "eventVersion": "1.1",
        "eventSource": "aws:dynamodb",
        "awsRegion": "eu-west-1",
        "dynamodb": {
            "ApproximateCreationDateTime": 1795338000,
            "Keys": {"productId": {"S": id}},
            "NewImage": new_image,
            "SequenceNumber": sequence.to_string(),
            "SizeBytes": 100,
            "StreamViewType": "NEW_AND_OLD_IMAGES"
        },
        "eventSourceARN": "arn:aws:dynamodb:eu-west-1:123456789012:table/Products/stream/2026-11-22T09:00:00.000"
    })
}

#[test]
fn a_test_that_panics_leaves_no_product_api_behind() {
    // GIVEN a test that starts product-api and then fails
    let mut port = 0;
    let failed = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        let (_server, listening) = product_api(&[]);
        port = listening;
        panic!("a failing assertion");
    }));
    // THEN the server is gone with it
    assert!(failed.is_err() && port != 0);
    assert!(
        TcpStream::connect(("127.0.0.1", port)).is_err(),
        "product-api still listens on {port} after the test that started it panicked"
    );
}

/// A TCP endpoint in front of a local server, standing in for an AWS endpoint: each new
/// connection goes to whichever port it leads to at that moment (a failover switches a
/// DNS name; connections already open stay where they are), and it can turn into a
/// black hole (a network fault or an overloaded service: connections are accepted and
/// requests sent, but nothing comes back, until the fault ends and they are closed).
pub struct Endpoint {
    pub port: u16,
    upstream: std::sync::Arc<std::sync::atomic::AtomicU16>,
    black_hole: tokio::sync::watch::Sender<bool>,
}

impl Endpoint {
    /// Starts leading to `upstream` (on the caller's tokio runtime).
    pub async fn start(upstream: u16) -> Self {
        use std::sync::atomic::Ordering;
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let target = std::sync::Arc::new(std::sync::atomic::AtomicU16::new(upstream));
        let (black_hole, faults) = tokio::sync::watch::channel(false);
        let to = target.clone();
        tokio::spawn(async move {
            while let Ok((mut client, _)) = listener.accept().await {
                let mut fault = faults.clone();
                let upstream = to.load(Ordering::SeqCst);
                tokio::spawn(async move {
                    if !*fault.borrow() {
                        let Ok(mut server) =
                            tokio::net::TcpStream::connect(("127.0.0.1", upstream)).await
                        else {
                            return;
                        };
                        tokio::select! {
                            _ = tokio::io::copy_bidirectional(&mut client, &mut server) => return,
                            _ = fault.wait_for(|&on| on) => {}
                        }
                    }
                    // Swallowed: held open, unanswered, until the fault ends.
                    let _ = fault.wait_for(|&on| !on).await;
                });
            }
        });
        Self {
            port,
            upstream: target,
            black_hole,
        }
    }

    /// New connections go to `port` from now on.
    pub fn switch_to(&self, port: u16) {
        self.upstream
            .store(port, std::sync::atomic::Ordering::SeqCst);
    }

    /// Starts (`true`) or ends (`false`) the black hole.
    pub fn black_hole(&self, on: bool) {
        self.black_hole.send_replace(on);
    }
}

/// An instance metadata endpoint that accepts and never answers, for an SDK
/// configuration that cannot finish loading ([`StalledMetadata::env`]).
pub struct StalledMetadata {
    endpoint: String,
    given_up: std::sync::Arc<std::sync::atomic::AtomicBool>,
}

impl StalledMetadata {
    pub fn start() -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let endpoint = format!("http://{}", listener.local_addr().unwrap());
        let given_up = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        let seen = std::sync::Arc::clone(&given_up);
        std::thread::spawn(move || {
            for mut connection in listener.incoming().map_while(Result::ok) {
                let seen = std::sync::Arc::clone(&seen);
                std::thread::spawn(move || {
                    // Read until the SDK closes the connection, on its timeout.
                    let _ = std::io::copy(&mut connection, &mut std::io::sink());
                    seen.store(true, std::sync::atomic::Ordering::SeqCst);
                });
            }
        });
        Self { endpoint, given_up }
    }

    /// `env` without a region, so that the SDK asks this endpoint for one.
    pub fn env(&self, env: Vec<(String, String)>) -> Vec<(String, String)> {
        let mut env: Vec<(String, String)> = env
            .into_iter()
            .filter(|(name, _)| {
                ![
                    "AWS_REGION",
                    "AWS_DEFAULT_REGION",
                    "AWS_EC2_METADATA_DISABLED",
                ]
                .contains(&name.as_str())
            })
            .collect();
        env.push((
            "AWS_EC2_METADATA_SERVICE_ENDPOINT".into(),
            self.endpoint.clone(),
        ));
        env
    }

    /// Whether the SDK gave up on it (closed a connection).
    pub fn given_up(&self) -> bool {
        self.given_up.load(std::sync::atomic::Ordering::SeqCst)
    }
}

/// A TCP endpoint in front of a local server that holds every connection, unanswered,
/// until it is opened, then lets each through (a slow dependency, not a broken one).
pub struct Gate {
    port: u16,
    open: tokio::sync::watch::Sender<bool>,
    held: std::sync::Arc<std::sync::atomic::AtomicUsize>,
}

impl Gate {
    /// Starts closed, in front of `upstream` (on the caller's tokio runtime).
    pub async fn start(upstream: u16) -> Self {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let (open, opened) = tokio::sync::watch::channel(false);
        let held = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let counted = held.clone();
        tokio::spawn(async move {
            while let Ok((mut client, _)) = listener.accept().await {
                counted.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                let mut opened = opened.clone();
                tokio::spawn(async move {
                    if opened.wait_for(|&open| open).await.is_err() {
                        return;
                    }
                    let Ok(mut server) =
                        tokio::net::TcpStream::connect(("127.0.0.1", upstream)).await
                    else {
                        return;
                    };
                    let _ = tokio::io::copy_bidirectional(&mut client, &mut server).await;
                });
            }
        });
        Self { port, open, held }
    }

    pub fn endpoint(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// Connections accepted so far.
    pub fn held(&self) -> usize {
        self.held.load(std::sync::atomic::Ordering::SeqCst)
    }

    /// Lets held and new connections through.
    pub fn open(&self) {
        self.open.send_replace(true);
    }
}

/// moto's server (from `.tools/venv`, installed by `make test`), killed on drop.
pub struct Moto {
    pub endpoint: String,
    child: Child,
}

impl Moto {
    pub fn start() -> Self {
        let binary = Path::new(env!("CARGO_MANIFEST_DIR")).join(".tools/venv/bin/moto_server");
        assert!(
            binary.exists(),
            "moto is not installed: run `make test` (scripts/install-tools.sh installs it)"
        );
        let port = free_port();
        let child = Command::new(binary)
            .args(["-H", "127.0.0.1", "-p", &port.to_string()])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        wait_for_port(port, "moto_server");
        Self {
            endpoint: format!("http://127.0.0.1:{port}"),
            child,
        }
    }
}

impl Drop for Moto {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// An HTTPS endpoint on localhost, its certificate from a test CA (`ca.pem` in the
/// directory returned), answering every request with `200` and `body` (JSON): an AWS
/// service's stand-in for what happens before and after the handshake.
pub async fn https_endpoint(body: &'static str) -> (u16, tempfile::TempDir) {
    use rustls::pki_types::pem::PemObject as _;
    use rustls::pki_types::{CertificateDer, PrivateKeyDer};
    use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
    let dir = tempfile::tempdir().unwrap();
    make_certificates(dir.path());
    let config = rustls::ServerConfig::builder_with_provider(std::sync::Arc::new(
        rustls::crypto::aws_lc_rs::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .unwrap()
    .with_no_client_auth()
    .with_single_cert(
        vec![CertificateDer::from_pem_file(dir.path().join("server.pem")).unwrap()],
        PrivateKeyDer::from_pem_file(dir.path().join("server.key")).unwrap(),
    )
    .unwrap();
    let acceptor = tokio_rustls::TlsAcceptor::from(std::sync::Arc::new(config));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    tokio::spawn(async move {
        while let Ok((tcp, _)) = listener.accept().await {
            let acceptor = acceptor.clone();
            tokio::spawn(async move {
                let Ok(mut tls) = acceptor.accept(tcp).await else {
                    return;
                };
                let mut request = vec![0; 64 * 1024];
                while matches!(tls.read(&mut request).await, Ok(1..)) {
                    let reply = format!(
                        "HTTP/1.1 200 OK\r\ncontent-type: application/x-amz-json-1.1\r\ncontent-length: {}\r\n\r\n{body}",
                        body.len()
                    );
                    if tls.write_all(reply.as_bytes()).await.is_err() {
                        return;
                    }
                }
            });
        }
    });
    (port, dir)
}

/// Writes `ca.pem`, `server.pem`, `server.key` into `dir`; the server cert names localhost.
pub fn make_certificates(dir: &std::path::Path) {
    let ca_key = rcgen::KeyPair::generate().unwrap();
    let mut ca_params = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
    ca_params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
    ca_params
        .distinguished_name
        .push(rcgen::DnType::CommonName, "product-catalog test CA");
    let ca_cert = ca_params.self_signed(&ca_key).unwrap();
    let issuer = rcgen::Issuer::new(ca_params, ca_key);
    let server_key = rcgen::KeyPair::generate().unwrap();
    let server_params =
        rcgen::CertificateParams::new(vec!["localhost".to_owned(), "127.0.0.1".to_owned()])
            .unwrap();
    let server_cert = server_params.signed_by(&server_key, &issuer).unwrap();
    std::fs::write(dir.join("ca.pem"), ca_cert.pem()).unwrap();
    std::fs::write(dir.join("server.pem"), server_cert.pem()).unwrap();
    std::fs::write(dir.join("server.key"), server_key.serialize_pem()).unwrap();
}

/// Starts product-api with `env`, which must make it stop by itself within 10 s; its
/// stderr.
pub async fn failed_start(env: Vec<(String, String)>) -> String {
    let mut child = tokio::process::Command::new(env!("CARGO_BIN_EXE_product-api"))
        .env_clear()
        .envs(env)
        .env("LISTEN_ADDR", format!("127.0.0.1:{}", free_port()))
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let stderr = child.stderr.take().unwrap();
    let status = tokio::time::timeout(Duration::from_secs(10), child.wait())
        .await
        .expect("product-api still running 10 s after a failed start")
        .unwrap();
    let mut message = String::new();
    tokio::io::AsyncReadExt::read_to_string(&mut { stderr }, &mut message)
        .await
        .unwrap();
    assert!(!status.success(), "{message}");
    message
}
