//! The ElastiCache AUTH token read from Secrets Manager at start-up, as deployed: a
//! password-protected `redis-server`, the token in moto's Secrets Manager, product-api
//! given only the URL and the secret's ARN.

use product_catalog::adapters::aws::sdk_config;
use product_catalog::adapters::redis::RedisPassword;
use product_catalog::adapters::{EarlyLookups, PendingToken, RedisCache};
use product_catalog::config::RedisUrl;

use std::time::{Duration, Instant};

use fred::prelude::ClientLike;

use crate::helpers::{
    Gate, Moto, RedisServer, StalledMetadata, failed_start, https_endpoint, product_api,
    sample_table, service_env, spawn_product_api, wait_for_port,
};

async fn x_cache_of_two_gets(env: Vec<(String, String)>) -> Vec<String> {
    let (_server, port) = product_api(&env);
    x_cache_of(port).await
}

async fn x_cache_of(port: u16) -> Vec<String> {
    let mut seen = Vec::new();
    for _ in 0..2 {
        let response = reqwest::get(format!("http://127.0.0.1:{port}/product/P-10090"))
            .await
            .unwrap();
        assert_eq!(response.status(), 200);
        seen.push(response.headers()["x-cache"].to_str().unwrap().to_owned());
    }
    seen
}

const TOKEN: &str = "t0ken-from-secrets";

/// A Redis that wants [`TOKEN`], moto holding it, and the secret's ARN.
async fn protected_redis_and_its_secret() -> (RedisServer, Moto, String) {
    let redis = RedisServer::start_with(|_, _| vec!["--requirepass".to_owned(), TOKEN.to_owned()]);
    let moto = Moto::start();
    let arn = secrets_manager(&moto)
        .await
        .create_secret()
        .name("product-catalog-cache-auth")
        .secret_string(TOKEN)
        .send()
        .await
        .unwrap()
        .arn
        .unwrap();
    (redis, moto, arn)
}

/// The tests' own client for moto (what they set up, not what they test): the functions'
/// 3 s bound on a call was too short for moto's first answer while a load test ran
/// beside it on two cores (two tests failed so in CI, 2026-12-08).
async fn secrets_manager(moto: &Moto) -> aws_sdk_secretsmanager::Client {
    aws_sdk_secretsmanager::Client::from_conf(
        aws_sdk_secretsmanager::config::Builder::from(&sdk_config().await)
            .endpoint_url(&moto.endpoint)
            .timeout_config(
                aws_config::timeout::TimeoutConfig::builder()
                    .operation_timeout(Duration::from_secs(60))
                    .build(),
            )
            .build(),
    )
}

fn with_secret(mut env: Vec<(String, String)>, arn: &str, endpoint: &str) -> Vec<(String, String)> {
    env.push(("REDIS_AUTH_SECRET_ARN".to_owned(), arn.to_owned()));
    env.push((
        "AWS_ENDPOINT_URL_SECRETS_MANAGER".to_owned(),
        endpoint.to_owned(),
    ));
    env
}

#[tokio::test]
async fn the_auth_token_is_read_from_secrets_manager() {
    // GIVEN a password-protected Redis and its token in Secrets Manager
    let (redis, moto, arn) = protected_redis_and_its_secret().await;
    let table = sample_table().await;

    // WHEN product-api has only the URL THEN Redis refuses it and it serves BYPASS
    // The URL alone has no password: Redis refuses, requests are served from the table.
    let mut env = service_env(&redis.url(), &table);
    assert_eq!(x_cache_of_two_gets(env.clone()).await, ["BYPASS", "BYPASS"]);

    // WHEN it also has the secret's ARN THEN it reads the token and the cache works
    // With the secret's ARN the token is fetched at start-up and the cache works.
    env = with_secret(env, &arn, &moto.endpoint);
    assert_eq!(x_cache_of_two_gets(env).await, ["MISS", "HIT"]);
}

#[tokio::test]
async fn a_rotated_token_is_read_again_when_redis_refuses_the_old_one() {
    // GIVEN product-api serving from a password-protected Redis with the token it read
    let (redis, moto, arn) = protected_redis_and_its_secret().await;
    let table = sample_table().await;
    let env = with_secret(service_env(&redis.url(), &table), &arn, &moto.endpoint);
    let (_server, port) = product_api(&env);
    assert_eq!(x_cache_of(port).await, ["MISS", "HIT"]);

    let secrets = secrets_manager(&moto).await;
    let put_secret = |token: &'static str| {
        secrets
            .put_secret_value()
            .secret_id(&arn)
            .secret_string(token)
            .send()
    };
    let admin = redis.client_with_password(Some(TOKEN)).await;

    // WHEN the token is rotated, the secret first, and Redis then drops the connections
    // authenticated with the old one (a failover, a restart)
    put_secret("r0tated-t0ken").await.unwrap();
    require_only(&admin, "r0tated-t0ken").await;
    // THEN the warm process reads the new token and serves from the cache again,
    // instead of bypassing it until its next cold start
    let took = seconds_to_a_hit(port).await;
    assert!(took < 10.0, "no HIT 10 s after the rotation");

    // WHEN it is rotated in the other order, Redis first (as the stack's apply does on
    // Serverless), and the secret only 300 ms later
    require_only(&admin, "r0tated-ag4in").await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    put_secret("r0tated-ag4in").await.unwrap();
    // THEN the read that found the old token is followed by one that finds the new
    let took = seconds_to_a_hit(port).await;
    assert!(took < 10.0, "no HIT 10 s after the second rotation");
}

/// Makes Redis take only `token` and drops every other client's connection.
async fn require_only(admin: &fred::clients::Client, token: &str) {
    let _: String = admin
        .custom(fred::cmd!("CONFIG"), vec!["SET", "requirepass", token])
        .await
        .unwrap();
    let killed: u64 = admin
        .custom(fred::cmd!("CLIENT"), vec!["KILL", "TYPE", "normal"])
        .await
        .unwrap();
    assert!(killed >= 1, "product-api had no connection to drop");
}

/// Seconds until product-api serves a cached product again (at most 10 s of asking).
async fn seconds_to_a_hit(port: u16) -> f64 {
    let started = Instant::now();
    while started.elapsed() < Duration::from_secs(10) {
        let response = reqwest::get(format!("http://127.0.0.1:{port}/product/P-10090"))
            .await
            .unwrap();
        assert_eq!(response.status(), 200);
        if response.headers()["x-cache"] == "HIT" {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let took = started.elapsed().as_secs_f64();
    eprintln!("HIT again after {took:.2} s");
    took
}

// Multi-threaded: the gate's tasks run while this thread waits for the port.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_redis_connection_opens_while_the_token_is_read() {
    // GIVEN a password-protected Redis, its token in Secrets Manager, and Secrets
    // Manager's endpoint holding every request until it is opened
    let (redis, moto, arn) = protected_redis_and_its_secret().await;
    let table = sample_table().await;
    let moto_port = moto.endpoint.rsplit(':').next().unwrap().parse().unwrap();
    let gate = Gate::start(moto_port).await;
    let env = with_secret(service_env(&redis.url(), &table), &arn, &gate.endpoint());

    // WHEN product-api starts THEN Redis has its connection while the secret read is
    // held (either may come first: the read runs on a thread of its own)
    let (_server, port) = spawn_product_api(&env);
    let client = redis.client_with_password(Some(TOKEN)).await;
    let started = Instant::now();
    while connected_clients(&client).await < 2 || gate.held() == 0 {
        assert!(
            started.elapsed() < Duration::from_secs(2),
            "no connection to Redis while the secret read is held (read held: {})",
            gate.held()
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    }

    // WHEN the token comes THEN those connections authenticate and the cache works
    gate.open();
    wait_for_port(port, "product-api");
    assert_eq!(x_cache_of(port).await, ["MISS", "HIT"]);
}

// Multi-threaded: the gate's tasks run while this thread waits for the port.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_secret_is_read_over_the_connection_start_up_opened() {
    // GIVEN the token in Secrets Manager, its endpoint counting connections
    let (redis, moto, arn) = protected_redis_and_its_secret().await;
    let table = sample_table().await;
    let moto_port = moto.endpoint.rsplit(':').next().unwrap().parse().unwrap();
    let counting = Gate::start(moto_port).await;
    counting.open();
    let env = with_secret(
        service_env(&redis.url(), &table),
        &arn,
        &counting.endpoint(),
    );
    // WHEN product-api starts and serves
    let (_server, port) = product_api(&env);
    assert_eq!(x_cache_of(port).await, ["MISS", "HIT"]);
    // THEN the token was read over one connection: the one opened as start-up began
    // (`the_secret_read_s_connection_opens_before_the_sdk_can_send` shows it opens),
    // not a second one the SDK opened when it was ready to send
    assert_eq!(counting.held(), 1);
}

// Multi-threaded: the gate's tasks run while this thread waits.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_secret_read_s_connection_opens_before_the_sdk_can_send() {
    // GIVEN the token in Secrets Manager, its endpoint holding every connection
    let (redis, moto, arn) = protected_redis_and_its_secret().await;
    let table = sample_table().await;
    let moto_port = moto.endpoint.rsplit(':').next().unwrap().parse().unwrap();
    let gate = Gate::start(moto_port).await;
    // AND an SDK configuration that cannot finish loading: no region in the
    // environment, so the SDK asks the instance metadata endpoint, which accepts and
    // never answers (the SDK gives up on it after seconds)
    let metadata = StalledMetadata::start();
    let env = with_secret(
        metadata.env(service_env(&redis.url(), &table)),
        &arn,
        &gate.endpoint(),
    );

    // WHEN product-api starts
    let (_server, _port) = spawn_product_api(&env);

    // THEN Secrets Manager has the read's connection while the SDK is still waiting for
    // its region, without which it cannot sign the request
    let started = Instant::now();
    while gate.held() == 0 {
        assert!(
            started.elapsed() < Duration::from_secs(2),
            "no connection to Secrets Manager before the SDK's configuration was loaded"
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    assert!(
        !metadata.given_up(),
        "the connection came only after the SDK gave up on the metadata endpoint"
    );
}

#[tokio::test]
async fn a_secret_that_cannot_be_read_stops_start_up_naming_its_variable() {
    // GIVEN the ARN of a secret Secrets Manager does not hold
    let (redis, moto, arn) = protected_redis_and_its_secret().await;
    let table = sample_table().await;
    let missing = arn.replace("product-catalog-cache-auth", "no-such-secret");
    let env = with_secret(service_env(&redis.url(), &table), &missing, &moto.endpoint);

    // WHEN product-api starts THEN it stops by itself, naming the variable and the ARN
    let message = failed_start(env).await;
    assert!(
        message.contains(&format!("REDIS_AUTH_SECRET_ARN={missing}")),
        "{message}"
    );
    // AND the failed read is not also reported as a Redis fault
    assert!(!message.contains("Redis connection failed"), "{message}");
}

#[tokio::test]
async fn the_sdk_s_client_built_for_other_roots_trusts_them_and_works() {
    // GIVEN the SDK's HTTPS client as TRUSTED_ROOTS=amazon builds it, but given a test
    // CA instead of the Amazon roots, and an endpoint whose certificate that CA signs
    let (port, certificates) = https_endpoint("{}").await;
    let ca = std::fs::read(certificates.path().join("ca.pem")).unwrap();
    let client = product_catalog::adapters::aws::https_client(
        aws_smithy_http_client::tls::TrustStore::empty().with_pem_certificate(ca),
        product_catalog::adapters::EarlyLookups::default(),
    );
    let sdk = aws_config::defaults(aws_config::BehaviorVersion::latest())
        .http_client(client)
        .region(aws_config::Region::new("eu-west-1"))
        .credentials_provider(aws_sdk_secretsmanager::config::Credentials::new(
            "AKID", "secret", None, None, "test",
        ))
        .endpoint_url(format!("https://localhost:{port}"))
        .load()
        .await;
    // WHEN a call goes through it THEN it is answered: TLS, HTTP and the SDK's settings
    // work with the client built here
    let answer = aws_sdk_secretsmanager::Client::new(&sdk)
        .get_secret_value()
        .secret_id("cache-auth")
        .send()
        .await
        .unwrap();
    assert_eq!(answer.secret_string(), None);
}

#[tokio::test]
async fn with_trusted_roots_amazon_the_secret_read_trusts_no_other_root() {
    // GIVEN a Secrets Manager endpoint over TLS, its certificate from a test CA that
    // SSL_CERT_FILE names, answering a secret with no string value
    let (port, certificates) = https_endpoint("{}").await;
    let redis = RedisServer::start();
    let table = sample_table().await;
    let arn = "arn:aws:secretsmanager:eu-west-1:123456789012:secret:cache-auth-AbCdEf";
    let mut env = with_secret(
        service_env(&redis.url(), &table),
        arn,
        &format!("https://localhost:{port}"),
    );
    let ca = certificates.path().join("ca.pem").display().to_string();
    env.push(("SSL_CERT_FILE".to_owned(), ca));
    let trusting = |roots: &str| {
        let mut env = env.clone();
        env.push(("TRUSTED_ROOTS".to_owned(), roots.to_owned()));
        env
    };
    // WHEN product-api trusts the system's store (SSL_CERT_FILE) THEN the handshake
    // succeeds: it stops on the answer, which holds no token
    let message = failed_start(trusting("system")).await;
    assert!(message.contains("no string value"), "{message}");
    // WHEN it trusts the Amazon roots THEN the handshake is refused: the test CA, in
    // SSL_CERT_FILE, plays no part in the SDK's TLS
    let message = failed_start(trusting("amazon")).await;
    assert!(
        message.contains(&format!("REDIS_AUTH_SECRET_ARN={arn}")),
        "{message}"
    );
    assert!(message.contains("UnknownIssuer"), "{message}");
}

// One thread, as product-api's Lambda runtime: while this test's task holds it, nothing
// else on the runtime runs, so what Redis sees then was sent before the hand-over returned.
#[tokio::test(flavor = "current_thread")]
async fn a_connection_waiting_for_the_token_sends_auth_before_start_up_goes_on() {
    // GIVEN a password-protected Redis, and a pool whose connection is open and waiting
    // for its token
    let redis = RedisServer::start_with(|_, _| vec!["--requirepass".to_owned(), TOKEN.to_owned()]);
    let (sender, pending) = PendingToken::new();
    let cache = RedisCache::connect_with(
        &RedisUrl::try_from(redis.url()).unwrap(),
        None,
        RedisPassword::Token(pending),
        Duration::from_millis(500),
        1,
        EarlyLookups::default(),
    )
    .unwrap();
    let started = Instant::now();
    while !others_last_commands(redis.port).contains(&"NULL".to_owned()) {
        assert!(
            started.elapsed() < Duration::from_secs(2),
            "the pool's connection did not open"
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    }

    // WHEN start-up hands the token over
    sender.hand_over(TOKEN.to_owned()).await;

    // THEN Redis has had AUTH on that connection before start-up goes on: this thread,
    // the runtime's only one, is held here (no await), so nothing more can be sent
    let started = Instant::now();
    loop {
        let commands = others_last_commands(redis.port);
        if commands == ["auth"] {
            break;
        }
        assert!(
            started.elapsed() < Duration::from_secs(1),
            "no AUTH before start-up went on; the pool's last commands: {commands:?}"
        );
        std::thread::sleep(Duration::from_millis(10));
    }
    // AND the pool then finishes connecting
    cache.wait_connected(Duration::from_secs(2)).await.unwrap();
}

/// The last command of each connection to Redis but the one asking (`CLIENT LIST`'s
/// `cmd`), over a blocking connection of its own: it does not yield to the runtime.
fn others_last_commands(port: u16) -> Vec<String> {
    use std::io::{Read as _, Write as _};
    let mut redis = std::net::TcpStream::connect(("127.0.0.1", port)).unwrap();
    write!(
        redis,
        "*2\r\n$4\r\nAUTH\r\n${}\r\n{TOKEN}\r\n*2\r\n$6\r\nCLIENT\r\n$4\r\nLIST\r\n",
        TOKEN.len()
    )
    .unwrap();
    // `+OK`, then `CLIENT LIST` as one bulk string: `$<length>`, the text.
    let mut answer = Vec::new();
    let mut chunk = [0; 4096];
    let list = loop {
        let read = redis.read(&mut chunk).unwrap();
        assert!(
            read > 0,
            "Redis closed: {}",
            String::from_utf8_lossy(&answer)
        );
        answer.extend_from_slice(&chunk[..read]);
        let text = String::from_utf8_lossy(&answer).into_owned();
        let Some(bulk) = text.strip_prefix("+OK\r\n$") else {
            assert!("+OK\r\n$".starts_with(&text), "{text}");
            continue;
        };
        if let Some((length, rest)) = bulk.split_once("\r\n") {
            let length: usize = length.parse().unwrap();
            if rest.len() >= length {
                break rest[..length].to_owned();
            }
        }
    };
    list.lines()
        .filter_map(|line| line.split(' ').find_map(|field| field.strip_prefix("cmd=")))
        .filter(|command| *command != "client|list")
        .map(str::to_owned)
        .collect()
}

async fn connected_clients(client: &fred::clients::Client) -> u64 {
    let info: String = client
        .custom(fred::cmd!("INFO"), vec!["clients"])
        .await
        .unwrap();
    info.lines()
        .find_map(|line| line.strip_prefix("connected_clients:"))
        .and_then(|count| count.trim().parse().ok())
        .expect("INFO clients has connected_clients")
}

/// A fault of Secrets Manager's.
#[derive(Clone, Copy, Debug)]
enum Fault {
    /// An error answer: its status and AWS error code.
    Answer(u16, &'static str),
    /// The connection reset once the request is in (a brownout).
    Reset,
}

/// Secrets Manager's stand-in for a fault on its side: an HTTP endpoint in front of
/// moto that meets every request with `fault` until healed, then lets connections
/// through to moto.
struct FailingFront {
    port: u16,
    healed: tokio::sync::watch::Sender<bool>,
    failed: std::sync::Arc<std::sync::atomic::AtomicUsize>,
}

impl FailingFront {
    async fn start(moto: &Moto, fault: Fault) -> Self {
        use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
        let upstream: u16 = moto.endpoint.rsplit(':').next().unwrap().parse().unwrap();
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let (healed, is_healed) = tokio::sync::watch::channel(false);
        let failed = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let counted = failed.clone();
        tokio::spawn(async move {
            while let Ok((mut client, _)) = listener.accept().await {
                if *is_healed.borrow() {
                    tokio::spawn(async move {
                        if let Ok(mut server) =
                            tokio::net::TcpStream::connect(("127.0.0.1", upstream)).await
                        {
                            let _ = tokio::io::copy_bidirectional(&mut client, &mut server).await;
                        }
                    });
                    continue;
                }
                let counted = counted.clone();
                tokio::spawn(async move {
                    // The request's head, then its body: the fault comes after both.
                    let mut request = Vec::new();
                    let mut chunk = [0; 4096];
                    loop {
                        let Ok(read @ 1..) = client.read(&mut chunk).await else {
                            return;
                        };
                        request.extend_from_slice(&chunk[..read]);
                        let text = String::from_utf8_lossy(&request);
                        if let Some(end) = text.find("\r\n\r\n") {
                            let length = text[..end]
                                .lines()
                                .find_map(|line| {
                                    let (name, value) = line.split_once(':')?;
                                    name.eq_ignore_ascii_case("content-length")
                                        .then(|| value.trim().parse::<usize>().ok())?
                                })
                                .unwrap_or(0);
                            if request.len() >= end + 4 + length {
                                break;
                            }
                        }
                    }
                    counted.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                    match fault {
                        Fault::Answer(status, code) => {
                            let body = format!(
                                r#"{{"__type":"{code}","message":"injected by the test"}}"#
                            );
                            let reply = format!(
                                "HTTP/1.1 {status} Injected\r\ncontent-type: application/x-amz-json-1.1\r\nx-amzn-errortype: {code}\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
                                body.len()
                            );
                            let _ = client.write_all(reply.as_bytes()).await;
                        }
                        Fault::Reset => {
                            let _ = client.set_zero_linger();
                        }
                    }
                });
            }
        });
        Self {
            port,
            healed,
            failed,
        }
    }

    fn endpoint(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// Requests met with the fault so far.
    fn failed(&self) -> usize {
        self.failed.load(std::sync::atomic::Ordering::SeqCst)
    }

    /// New connections go through to moto from now on.
    fn heal(&self) {
        self.healed.send_replace(true);
    }
}

#[tokio::test]
async fn secrets_manager_failing_at_start_up_costs_the_cache_only_until_it_answers() {
    for fault in [
        Fault::Answer(500, "InternalServiceError"),
        // (Secrets Manager's documentation also gives this code a 400)
        Fault::Answer(400, "InternalServiceError"),
        Fault::Answer(400, "ThrottlingException"),
        Fault::Reset,
    ] {
        // GIVEN Secrets Manager failing on its side (or throttling, or resetting its
        // connections) as product-api starts
        let (redis, moto, arn) = protected_redis_and_its_secret().await;
        let table = sample_table().await;
        let front = FailingFront::start(&moto, fault).await;
        let env = with_secret(service_env(&redis.url(), &table), &arn, &front.endpoint());

        // WHEN product-api starts THEN it does, and serves from the table
        let (_server, port) = product_api(&env);
        assert_eq!(x_cache_of(port).await, ["BYPASS", "BYPASS"], "{fault:?}");
        assert!(front.failed() >= 1, "{fault:?}: the secret was not read");

        // WHEN Secrets Manager answers again THEN the cache is used within seconds,
        // without a restart
        front.heal();
        let healed = Instant::now();
        loop {
            let response = reqwest::get(format!("http://127.0.0.1:{port}/product/P-10090"))
                .await
                .unwrap();
            assert_eq!(response.status(), 200, "{fault:?}");
            if response.headers()["x-cache"] == "HIT" {
                break;
            }
            assert!(
                healed.elapsed() < Duration::from_secs(15),
                "{fault:?}: no HIT 15 s after Secrets Manager answered again"
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        eprintln!(
            "{fault:?}: HIT {:?} after Secrets Manager answered again",
            healed.elapsed()
        );
    }
}

#[tokio::test]
async fn without_the_token_start_up_does_not_wait_for_redis() {
    // GIVEN Secrets Manager failing on its side as product-api starts
    let (redis, moto, arn) = protected_redis_and_its_secret().await;
    let table = sample_table().await;
    let front = FailingFront::start(&moto, Fault::Answer(400, "InternalServiceError")).await;
    let env = with_secret(service_env(&redis.url(), &table), &arn, &front.endpoint());
    // WHEN it starts
    let (mut server, port) = spawn_product_api_logging(&env);
    wait_for_port(port, "product-api");
    server.kill().unwrap();
    let mut log = String::new();
    std::io::Read::read_to_string(&mut server.stderr.take().unwrap(), &mut log).unwrap();
    // THEN it said why it serves from the table, and did not wait for a connection that
    // could not authenticate (a second of every cold start while Secrets Manager fails)
    assert!(log.contains("until the token is read"), "{log}");
    assert!(log.contains("REDIS_AUTH_SECRET_ARN="), "{log}");
    assert!(!log.contains("Redis not reachable yet"), "{log}");
}

/// product-api with `env`, its log (stderr) kept for the test to read.
fn spawn_product_api_logging(env: &[(String, String)]) -> (std::process::Child, u16) {
    let port = crate::helpers::free_port();
    let child = std::process::Command::new(env!("CARGO_BIN_EXE_product-api"))
        .env_clear()
        .envs(env.iter().cloned())
        .env("LISTEN_ADDR", format!("127.0.0.1:{port}"))
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    (child, port)
}

#[tokio::test]
async fn the_catalog_cli_stops_at_once_naming_the_secret_secrets_manager_fails_to_give() {
    // GIVEN Secrets Manager failing on its side
    let (redis, moto, arn) = protected_redis_and_its_secret().await;
    let front = FailingFront::start(&moto, Fault::Answer(500, "InternalServiceError")).await;
    // WHEN an operator drops a cache entry with the CLI
    let started = Instant::now();
    let output = std::process::Command::new(env!("CARGO_BIN_EXE_catalog"))
        .env_clear()
        .envs(std::env::vars().filter(|(k, _)| k.starts_with("AWS_")))
        .env("REDIS_URL", redis.url())
        .env("REDIS_AUTH_SECRET_ARN", &arn)
        .env("AWS_ENDPOINT_URL_SECRETS_MANAGER", front.endpoint())
        .args(["invalidate", "P-10090"])
        .output()
        .unwrap();
    // THEN it fails, naming the secret, without waiting for a token that is not coming
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(!output.status.success(), "{stderr}");
    assert!(stderr.contains("REDIS_AUTH_SECRET_ARN="), "{stderr}");
    assert!(
        started.elapsed() < Duration::from_secs(8),
        "{:?}",
        started.elapsed()
    );
}
