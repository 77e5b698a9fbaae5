//! The `product-api` binary in Lambda mode behind a local implementation of the Lambda
//! Runtime API (the same HTTP protocol AWS runs), fed API Gateway and Function URL events.

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use fred::prelude::KeysInterface;
use serde_json::Value;

use product_catalog::adapters::DynamoStore;

use crate::helpers::{
    RedisServer, StalledMetadata, emf_sum, fresh_table, sample_table, service_env,
};
use crate::runtime_api::RuntimeApi;

/// A function process in Lambda mode; its stdout and stderr lines are collected.
struct Function {
    child: Child,
    stdout: Arc<Mutex<String>>,
    stderr: Arc<Mutex<String>>,
}

/// What becomes of a function's stdout.
#[derive(PartialEq)]
enum Stdout {
    Collected,
    /// Its read end closed at once: every write fails, as when the log pipe is gone.
    Broken,
}

/// Collects the lines of `pipe` into a shared string, on a thread of its own.
fn collect(pipe: impl std::io::Read + Send + 'static) -> Arc<Mutex<String>> {
    let lines = Arc::new(Mutex::new(String::new()));
    let sink = Arc::clone(&lines);
    std::thread::spawn(move || {
        for line in BufReader::new(pipe).lines().map_while(Result::ok) {
            let mut all = sink.lock().unwrap();
            all.push_str(&line);
            all.push('\n');
        }
    });
    lines
}

impl Function {
    /// product-api.
    fn spawn(runtime: &RuntimeApi, env: Vec<(String, String)>) -> Self {
        Self::spawn_binary(
            env!("CARGO_BIN_EXE_product-api"),
            runtime,
            env,
            Stdout::Collected,
        )
    }

    fn spawn_binary(
        binary: &str,
        runtime: &RuntimeApi,
        env: Vec<(String, String)>,
        stdout: Stdout,
    ) -> Self {
        let mut child = Command::new(binary)
            .env_clear()
            .envs(env)
            .env("AWS_LAMBDA_RUNTIME_API", runtime.addr.to_string())
            .env("AWS_LAMBDA_FUNCTION_NAME", "product-api")
            .env("AWS_LAMBDA_FUNCTION_VERSION", "$LATEST")
            .env("AWS_LAMBDA_FUNCTION_MEMORY_SIZE", "256")
            .env("AWS_LAMBDA_LOG_GROUP_NAME", "/aws/lambda/product-api")
            .env(
                "AWS_LAMBDA_LOG_STREAM_NAME",
                "2026/11/22/[$LATEST]0123456789abcdef",
            )
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let pipe = child.stdout.take().unwrap();
        let stdout = if stdout == Stdout::Collected {
            collect(pipe)
        } else {
            drop(pipe);
            Arc::default()
        };
        let stderr = collect(child.stderr.take().unwrap());
        Self {
            child,
            stdout,
            stderr,
        }
    }

    /// Waits until `metric` adds up to `expected` in the EMF output.
    fn wait_for_metric(&self, metric: &str, expected: f64) {
        let deadline = Instant::now() + Duration::from_secs(5);
        loop {
            let sum = emf_sum(&self.stdout.lock().unwrap(), metric);
            if sum == expected {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "{metric} = {sum}, expected {expected}: {}",
                self.stdout.lock().unwrap()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// The EMF documents written, once there are `expected` (or 5 s have passed) and a
    /// moment more, so that an extra one would be seen too.
    fn emf_documents(&self, expected: usize) -> Vec<Value> {
        let documents = || -> Vec<Value> {
            self.stdout
                .lock()
                .unwrap()
                .lines()
                .filter_map(|line| serde_json::from_str::<Value>(line).ok())
                .filter(|document| document["_aws"].is_object())
                .collect()
        };
        let deadline = Instant::now() + Duration::from_secs(5);
        while documents().len() < expected && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(20));
        }
        std::thread::sleep(Duration::from_millis(200));
        documents()
    }
}

impl Drop for Function {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        // What the function logged, for a failing test's output.
        eprint!("{}", self.stderr.lock().unwrap());
    }
}

fn fixture(name: &str) -> Value {
    let path = format!("{}/tests/fixtures/{name}.json", env!("CARGO_MANIFEST_DIR"));
    serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
}

/// A header of an API Gateway / Function URL response, whichever form it uses.
fn header(response: &Value, name: &str) -> Option<String> {
    let pick = |map: &Value| {
        map.as_object()?
            .iter()
            .find(|(key, _)| key.eq_ignore_ascii_case(name))
            .map(|(_, value)| {
                value
                    .as_str()
                    .map_or_else(|| value[0].as_str().unwrap_or("").to_owned(), str::to_owned)
            })
    };
    pick(&response["headers"]).or_else(|| pick(&response["multiValueHeaders"]))
}

#[tokio::test(flavor = "multi_thread")]
async fn lambda_mode_serves_rest_http_api_and_function_url_events() {
    // GIVEN product-api in Lambda mode behind a local Runtime API
    let redis = RedisServer::start();
    let table = sample_table().await;
    let runtime = RuntimeApi::start().await;
    let function = Function::spawn(&runtime, service_env(&redis.url(), &table));

    // WHEN REST events arrive THEN MISS, then HIT, with EMF lines per invocation
    // REST API with a stage: miss, then hit; Redis holds the served body.
    let rest = fixture("apigw_rest_stage");
    let first = runtime.invoke(rest.clone()).await.unwrap();
    assert_eq!(first["statusCode"], 200, "{first}");
    assert_eq!(header(&first, "x-cache").as_deref(), Some("MISS"));
    assert_eq!(
        header(&first, "content-type").as_deref(),
        Some("application/json")
    );
    assert_eq!(first["isBase64Encoded"], false);
    let body = first["body"].as_str().unwrap().to_owned();
    assert!(body.contains("12345678901234567890.123456789"), "{body}");
    let stored: String = redis.client().await.get("product:P-10001").await.unwrap();
    assert_eq!(stored, body);
    function.wait_for_metric("CacheMisses", 1.0);

    let second = runtime.invoke(rest).await.unwrap();
    assert_eq!(header(&second, "x-cache").as_deref(), Some("HIT"));
    assert_eq!(second["body"].as_str(), Some(body.as_str()));
    function.wait_for_metric("CacheHits", 1.0);

    // WHEN the other event shapes arrive THEN each routes to its product
    // HTTP API, HTTP API $default route on a named stage, Function URL.
    for (name, id) in [
        ("apigw_http_v2", "P-10003"),
        ("apigw_http_v2_default_route_stage", "P-10004"),
        ("function_url", "🦀-plush"),
        ("apigw_rest_custom_domain", "P-10002"),
    ] {
        let response = runtime.invoke(fixture(name)).await.unwrap();
        assert_eq!(response["statusCode"], 200, "{name}: {response}");
        let product: Value = serde_json::from_str(response["body"].as_str().unwrap()).unwrap();
        assert_eq!(product["productId"], id, "{name}");
    }

    // WHEN a request is wrong THEN the error is a response, never a function error
    // Errors are responses, never invocation errors (API Gateway would answer 502).
    let mut post = fixture("apigw_rest_stage");
    post["httpMethod"] = "POST".into();
    let response = runtime.invoke(post).await.unwrap();
    assert_eq!(response["statusCode"], 405);
    assert_eq!(header(&response, "allow").as_deref(), Some("GET, HEAD"));
    let mut missing = fixture("apigw_http_v2");
    missing["pathParameters"]["productId"] = "does-not-exist".into();
    let response = runtime.invoke(missing).await.unwrap();
    assert_eq!(response["statusCode"], 404);
    let error: Value = serde_json::from_str(response["body"].as_str().unwrap()).unwrap();
    assert_eq!(error["requestId"], "Vq0yFhz0DoEEJ3w=");

    // One EMF document per invocation, with the per-request counts.
    function.wait_for_metric("CacheMisses", 6.0);
    function.wait_for_metric("NotFound", 1.0);
}

#[tokio::test(flavor = "multi_thread")]
async fn events_lambda_http_cannot_read_get_400_and_panics_log_one_json_line() {
    // GIVEN a function in Lambda mode
    let redis = RedisServer::start();
    let table = fresh_table().await;
    let runtime = RuntimeApi::start().await;
    let function = Function::spawn(&runtime, service_env(&redis.url(), &table));

    // WHEN it is sent events lambda_http's own types refuse to deserialize
    let rest_header = |name: &str, value: &str| {
        let mut event = fixture("apigw_rest_stage");
        event["headers"][name] = value.into();
        event["multiValueHeaders"][name] = serde_json::json!([value]);
        event
    };
    let mut bad_method = fixture("apigw_rest_stage");
    bad_method["httpMethod"] = "GE T".into();
    let mut numeric_id = fixture("apigw_rest_stage");
    numeric_id["pathParameters"]["productId"] = 10001.into();
    let mut v2_header = fixture("function_url");
    v2_header["headers"]["x-note"] = "a\u{1}b".into();
    let cases = [
        ("header value with \\x01", rest_header("X-Note", "a\u{1}b")),
        ("header value with \\x7f", rest_header("X-Note", "a\u{7f}b")),
        ("header name with a space", rest_header("X Note", "b")),
        ("httpMethod GE T", bad_method),
        ("numeric productId", numeric_id),
        ("v2 header value with \\x01", v2_header),
    ];
    // THEN each is answered 400 with the JSON error, never a function error
    for (name, event) in cases {
        // The id API Gateway gave the request, which its access log and client see.
        let api_request_id = event["requestContext"]["requestId"].clone();
        let reply = runtime
            .invoke(event)
            .await
            .unwrap_or_else(|err| panic!("{name}: function error {err}"));
        assert_eq!(reply["statusCode"], 400, "{name}: {reply}");
        let body: Value = serde_json::from_str(reply["body"].as_str().unwrap()).unwrap();
        assert_eq!(body["error"], "bad_request", "{name}: {body}");
        assert_eq!(body["requestId"], api_request_id, "{name}: {body}");
        assert_eq!(
            header(&reply, "x-request-id").as_deref(),
            api_request_id.as_str(),
            "{name}"
        );
        assert_eq!(
            header(&reply, "content-type").as_deref(),
            Some("application/json"),
            "{name}"
        );
    }

    // WHEN an event makes lambda_http's conversion panic (a Function URL event whose
    // host has a space; REST events are read by product-api's own reader, which builds
    // no URL from the Host)
    let mut panicking = fixture("function_url");
    panicking["headers"]["host"] = "exa mple.com".into();
    let api_request_id = panicking["requestContext"]["requestId"].clone();
    let reply = runtime.invoke(panicking).await.unwrap();
    assert_eq!(reply["statusCode"], 400, "{reply}");
    assert_eq!(
        header(&reply, "x-request-id").as_deref(),
        api_request_id.as_str()
    );
    // THEN the panic is logged as one JSON line, never as the default plain text
    let deadline = Instant::now() + Duration::from_secs(5);
    let line = loop {
        let logged = function.stderr.lock().unwrap().clone();
        if let Some(line) = logged.lines().find(|line| line.contains("panic")) {
            break line.to_owned();
        }
        assert!(Instant::now() < deadline, "no panic logged: {logged}");
        std::thread::sleep(Duration::from_millis(20));
    };
    let logged = function.stderr.lock().unwrap().clone();
    assert!(!logged.contains("panicked at"), "{logged}");
    let record: Value = serde_json::from_str(&line)
        .unwrap_or_else(|err| panic!("not a JSON log line ({err}): {line}"));
    assert_eq!(record["level"], "WARN", "{record}");
    assert!(record["fields"]["panic"].is_string(), "{record}");
    assert_eq!(
        logged.lines().filter(|line| line.contains("panic")).count(),
        1,
        "{logged}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn cache_invalidator_writes_one_emf_document_per_invocation_with_its_unappliable_records() {
    // GIVEN cache-invalidator in Lambda mode behind a local Runtime API
    let redis = RedisServer::start();
    let runtime = RuntimeApi::start().await;
    let function = Function::spawn_binary(
        env!("CARGO_BIN_EXE_cache-invalidator"),
        &runtime,
        vec![("REDIS_URL".to_owned(), redis.url())],
        Stdout::Collected,
    );

    // WHEN it gets an empty batch, a record that names no product, and an event that is
    // no stream event at all (the runtime answers that one with an invocation error)
    let empty = runtime.invoke(serde_json::json!({ "Records": [] })).await;
    assert!(empty.is_ok(), "{empty:?}");
    let unappliable = serde_json::json!({ "Records": [{
        "eventID": "e1", "eventName": "REMOVE", "eventVersion": "1.1",
        "eventSource": "aws:dynamodb", "awsRegion": "eu-west-1",
        "dynamodb": { "ApproximateCreationDateTime": 1795338000, "Keys": {},
                      "SequenceNumber": "7", "SizeBytes": 1,
                      "StreamViewType": "NEW_AND_OLD_IMAGES" },
        "eventSourceARN": "arn:aws:dynamodb:eu-west-1:123456789012:table/Products/stream/x"
    }] });
    let reply = runtime.invoke(unappliable).await.unwrap();
    assert_eq!(
        reply["batchItemFailures"][0]["itemIdentifier"], "7",
        "{reply}"
    );
    let wrong = runtime
        .invoke(serde_json::json!({ "Records": "nope" }))
        .await;
    assert!(wrong.is_err(), "{wrong:?}");

    // THEN one EMF document per invocation, failed ones included, counting the record
    let documents = function.emf_documents(3);
    assert_eq!(documents.len(), 3, "{documents:#?}");
    assert!(
        documents
            .iter()
            .all(|document| document["Service"] == "cache-invalidator"),
        "{documents:#?}"
    );
    let unappliable: f64 = documents
        .iter()
        .filter_map(|document| document["UnappliableRecords"].as_f64())
        .sum();
    assert_eq!(unappliable, 1.0, "{documents:#?}");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_stdout_that_cannot_be_written_loses_the_metrics_not_the_answers() {
    // GIVEN product-api in Lambda mode whose stdout's reader is gone
    let redis = RedisServer::start();
    let table = sample_table().await;
    let runtime = RuntimeApi::start().await;
    let mut function = Function::spawn_binary(
        env!("CARGO_BIN_EXE_product-api"),
        &runtime,
        service_env(&redis.url(), &table),
        Stdout::Broken,
    );

    // WHEN requests come THEN every one is answered, and the process stays up
    for _ in 0..5 {
        let reply = runtime.invoke(fixture("apigw_rest_stage")).await.unwrap();
        assert_eq!(reply["statusCode"], 200, "{reply}");
    }
    std::thread::sleep(Duration::from_millis(200));
    assert!(function.child.try_wait().unwrap().is_none(), "it exited");
    // AND each lost document is logged, without a panic
    let logged = function.stderr.lock().unwrap().clone();
    let lost = logged
        .lines()
        .filter(|line| line.contains("metrics could not be written"))
        .count();
    assert_eq!(lost, 5, "{logged}");
    assert!(!logged.contains("panic"), "{logged}");
}

/// A Redis server and a table, with the product of the `apigw_rest_stage` event cached
/// by a first process (a miss) that has ended; the event, to ask again.
async fn cached_by_a_first_process() -> (RedisServer, DynamoStore, Value) {
    let redis = RedisServer::start();
    let table = sample_table().await;
    let runtime = RuntimeApi::start().await;
    let filler = Function::spawn(&runtime, service_env(&redis.url(), &table));
    let event = fixture("apigw_rest_stage");
    let miss = runtime.invoke(event.clone()).await.unwrap();
    assert_eq!(header(&miss, "x-cache").as_deref(), Some("MISS"), "{miss}");
    drop(filler);
    (redis, table, event)
}

#[tokio::test(flavor = "multi_thread")]
async fn a_first_hit_waits_for_neither_the_aws_sdk_nor_dynamodb() {
    // GIVEN a product a first process cached in Redis
    let (redis, table, event) = cached_by_a_first_process().await;
    // AND an SDK configuration that cannot finish loading: no region in the environment,
    // so the SDK asks the instance metadata endpoint, which accepts and never answers
    let metadata = StalledMetadata::start();
    let env = metadata.env(service_env(&redis.url(), &table));

    // WHEN a new process starts and gets the same request
    let runtime = RuntimeApi::start().await;
    let _function = Function::spawn(&runtime, env);
    let hit = runtime.invoke(event).await.unwrap();

    // THEN it answers from Redis while the SDK is still waiting for its region
    assert_eq!(hit["statusCode"], 200, "{hit}");
    assert_eq!(header(&hit, "x-cache").as_deref(), Some("HIT"), "{hit}");
    assert!(
        !metadata.given_up(),
        "the hit was answered only after the SDK gave up on the metadata endpoint"
    );
}

/// A relay to `upstream` on a port of its own that counts the connections it accepts.
async fn counting_relay(upstream: u16) -> (u16, Arc<std::sync::atomic::AtomicUsize>) {
    relay(upstream, None).await
}

/// [`counting_relay`]; with `first_closed`, the first connection is held without an
/// answer, and the flag set once its client closes it.
async fn relay(
    upstream: u16,
    first_closed: Option<Arc<std::sync::atomic::AtomicBool>>,
) -> (u16, Arc<std::sync::atomic::AtomicUsize>) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let accepted = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let counted = Arc::clone(&accepted);
    tokio::spawn(async move {
        while let Ok((mut client, _)) = listener.accept().await {
            let number = counted.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
            if let (0, Some(closed)) = (number, &first_closed) {
                let closed = Arc::clone(closed);
                tokio::spawn(async move {
                    let _ = tokio::io::copy(&mut client, &mut tokio::io::sink()).await;
                    closed.store(true, std::sync::atomic::Ordering::SeqCst);
                });
                continue;
            }
            tokio::spawn(async move {
                let mut server = tokio::net::TcpStream::connect(("127.0.0.1", upstream))
                    .await
                    .unwrap();
                let _ = tokio::io::copy_bidirectional(&mut client, &mut server).await;
            });
        }
    });
    (port, accepted)
}

/// The DynamoDB emulator's port.
fn emulator_port() -> u16 {
    let endpoint = crate::helpers::dynamodb_endpoint();
    endpoint.rsplit(':').next().unwrap().parse().unwrap()
}

/// A new product-api process whose request was already waiting when it started (as at a
/// cold start), its answer, and what the process needs kept alive while the test looks:
/// dropped, the Runtime API would answer `/next` with no request id and end the process.
/// Fields drop in order: the process first.
struct ColdStart {
    answer: Value,
    _function: Function,
    _runtime: RuntimeApi,
    _redis: RedisServer,
}

/// A [`ColdStart`] with an empty cache and the table reached through 127.0.0.1:`port`.
async fn cold_miss_through(port: u16) -> ColdStart {
    let redis = RedisServer::start();
    let table = sample_table().await;
    let mut env = service_env(&redis.url(), &table);
    env.retain(|(name, _)| name != "AWS_ENDPOINT_URL_DYNAMODB");
    env.push((
        "AWS_ENDPOINT_URL_DYNAMODB".into(),
        format!("http://127.0.0.1:{port}"),
    ));
    let runtime = RuntimeApi::start().await;
    let waiting = runtime.invoke(fixture("apigw_rest_stage"));
    let function = Function::spawn(&runtime, env);
    let answer = waiting.await.unwrap();
    ColdStart {
        answer,
        _function: function,
        _runtime: runtime,
        _redis: redis,
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_first_miss_uses_the_connection_start_up_opened() {
    // GIVEN the table behind a relay that counts connections, and an empty cache
    let (port, connections) = counting_relay(emulator_port()).await;

    // WHEN a process starts with a request already waiting, which misses
    let started = cold_miss_through(port).await;
    let miss = &started.answer;

    // THEN the miss is served over the one connection start-up opened to warm up
    assert_eq!(header(miss, "x-cache").as_deref(), Some("MISS"), "{miss}");
    assert_eq!(
        connections.load(std::sync::atomic::Ordering::SeqCst),
        1,
        "the miss opened a connection of its own beside the warm-up's"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_first_miss_does_not_wait_through_a_stuck_warm_up() {
    // GIVEN a table whose first connection gets no answer (a lost SYN-ACK, a dead
    // route), which the start-up warm-up takes, and an empty cache
    let first_closed = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let (port, _) = relay(emulator_port(), Some(Arc::clone(&first_closed))).await;

    // WHEN a process starts with a request already waiting, which misses
    let started = cold_miss_through(port).await;
    let miss = &started.answer;

    // THEN the miss is served over a connection of its own while the warm-up still waits
    // on the first (the SDK drops it after its 1 s attempt timeout)
    assert_eq!(header(miss, "x-cache").as_deref(), Some("MISS"), "{miss}");
    assert!(
        !first_closed.load(std::sync::atomic::Ordering::SeqCst),
        "the miss waited for the warm-up's attempt to time out"
    );
}

/// A relay to `upstream` that holds every connection it accepts, passing nothing either
/// way, until `release` is sent `true`; it counts the connections.
async fn held_relay(
    upstream: u16,
) -> (
    u16,
    tokio::sync::watch::Sender<bool>,
    Arc<std::sync::atomic::AtomicUsize>,
) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let (release, released) = tokio::sync::watch::channel(false);
    let accepted = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let counted = Arc::clone(&accepted);
    tokio::spawn(async move {
        while let Ok((mut client, _)) = listener.accept().await {
            counted.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
            let mut released = released.clone();
            tokio::spawn(async move {
                if released.wait_for(|open| *open).await.is_err() {
                    return;
                }
                let mut server = tokio::net::TcpStream::connect(("127.0.0.1", upstream))
                    .await
                    .unwrap();
                let _ = tokio::io::copy_bidirectional(&mut client, &mut server).await;
            });
        }
    });
    (port, release, accepted)
}

#[tokio::test(flavor = "multi_thread")]
async fn a_provisioned_environment_connects_to_redis_before_asking_for_an_event() {
    // GIVEN a product cached in Redis, reached through a relay that holds connections
    let (redis, table, event) = cached_by_a_first_process().await;
    let (port, release, connections) = held_relay(redis.port).await;

    // WHEN an environment initialized ahead of its requests starts
    let runtime = RuntimeApi::start().await;
    let mut env = service_env(&format!("redis://127.0.0.1:{port}"), &table);
    env.push((
        "AWS_LAMBDA_INITIALIZATION_TYPE".into(),
        "provisioned-concurrency".into(),
    ));
    let _function = Function::spawn(&runtime, env);

    // THEN it does not ask for an event (after which it may be frozen for hours) while
    // its Redis connection is still being set up
    let deadline = Instant::now() + Duration::from_secs(5);
    while connections.load(std::sync::atomic::Ordering::SeqCst) == 0 {
        assert!(
            Instant::now() < deadline,
            "no connection to Redis within 5 s"
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(runtime.first_next().is_none(), "asked for an event first");
    // AND once Redis answers it does, and hits
    release.send(true).unwrap();
    let hit = runtime.invoke(event).await.unwrap();
    assert_eq!(header(&hit, "x-cache").as_deref(), Some("HIT"), "{hit}");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_cold_start_asks_for_its_first_event_while_redis_is_still_connecting() {
    // GIVEN a product a first process cached in Redis
    let (redis, table, event) = cached_by_a_first_process().await;
    // AND Redis reached through a relay that holds connections until told
    let (port, release, connections) = held_relay(redis.port).await;

    // WHEN a new process starts
    let runtime = RuntimeApi::start().await;
    let function = Function::spawn(
        &runtime,
        service_env(&format!("redis://127.0.0.1:{port}"), &table),
    );

    // THEN it asks for its first event while its Redis connection is still held (it
    // used to wait for the connection, up to 1 s, before asking)
    let deadline = Instant::now() + Duration::from_secs(5);
    while runtime.first_next().is_none() {
        assert!(Instant::now() < deadline, "no /next within 5 s");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    // (the relay may note the connection a moment after the function asked)
    while connections.load(std::sync::atomic::Ordering::SeqCst) == 0 {
        assert!(
            Instant::now() < deadline,
            "no connection to Redis within 5 s"
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    // AND once Redis answers, that first request waits for the connection and hits
    release.send(true).unwrap();
    let hit = runtime.invoke(event).await.unwrap();
    assert_eq!(header(&hit, "x-cache").as_deref(), Some("HIT"), "{hit}");
    let logged = function.stderr.lock().unwrap().clone();
    assert!(!logged.contains("not reachable yet"), "{logged}");
}

#[tokio::test(flavor = "multi_thread")]
async fn the_runtime_api_runs_its_first_next_hook_before_answering_that_ask() {
    // GIVEN a Runtime API with an event queued, and a hook for the first ask that takes
    // 200 ms (the bench's CPU share sets a function's quota there)
    let runtime = Arc::new(RuntimeApi::start().await);
    let ran = Arc::new(Mutex::new(Vec::<Instant>::new()));
    let noted = Arc::clone(&ran);
    runtime.on_first_next(move || {
        noted.lock().unwrap().push(Instant::now());
        std::thread::sleep(Duration::from_millis(200));
    });
    let queued = tokio::spawn({
        let runtime = Arc::clone(&runtime);
        async move { runtime.invoke(serde_json::json!({"n": 1})).await }
    });
    let next = format!("http://{}/2018-06-01/runtime/invocation/next", runtime.addr);
    let client = reqwest::Client::new();

    // WHEN the function asks for its event
    let asked = Instant::now();
    let event = client.get(&next).send().await.unwrap();
    let answered = Instant::now();

    // THEN the hook ran once, and the answer waited for it
    assert_eq!(event.status(), 200);
    let ran_at = ran.lock().unwrap().clone();
    assert_eq!(ran_at.len(), 1, "{ran_at:?}");
    assert!(asked <= ran_at[0], "ran before the ask");
    assert!(
        answered - asked >= Duration::from_millis(200),
        "answered {:?} after the ask",
        answered - asked
    );
    // (the ask is the init phase's end the bench reports: noted before the hook ran)
    assert!(
        runtime
            .first_next()
            .is_some_and(|at| asked <= at && at <= ran_at[0])
    );
    // AND a hook given after the first ask runs at once
    let late = Arc::new(Mutex::new(false));
    let set = Arc::clone(&late);
    runtime.on_first_next(move || *set.lock().unwrap() = true);
    assert!(*late.lock().unwrap(), "a late hook did not run");
    queued.abort();
}
