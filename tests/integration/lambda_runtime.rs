//! The `product-api` binary in Lambda mode behind a local implementation of the Lambda
//! Runtime API (the same HTTP protocol AWS runs), fed API Gateway and Function URL events.

use std::collections::HashMap;
use std::convert::Infallible;
use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use fred::prelude::KeysInterface;
use http_body_util::{BodyExt, Full};
use hyper::server::conn::http1;
use hyper::{Request, Response};
use hyper_util::rt::TokioIo;
use serde_json::Value;
use tokio::sync::{mpsc, oneshot};

use crate::helpers::{RedisServer, emf_sum, sample_table, service_env};

type Waiters = Arc<Mutex<HashMap<String, oneshot::Sender<Result<Value, String>>>>>;

/// A Runtime API: `invoke` queues an event, the function's `next` call takes it, and its
/// `response` (or `error`) call completes the invocation.
pub struct RuntimeApi {
    pub addr: std::net::SocketAddr,
    queue: mpsc::UnboundedSender<(String, Value)>,
    waiters: Waiters,
}

impl RuntimeApi {
    pub async fn start() -> Self {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let (queue, events) = mpsc::unbounded_channel::<(String, Value)>();
        let events = Arc::new(tokio::sync::Mutex::new(events));
        let waiters: Waiters = Arc::default();
        let shared = Arc::clone(&waiters);
        tokio::spawn(async move {
            loop {
                let (stream, _) = listener.accept().await.unwrap();
                let (events, waiters) = (Arc::clone(&events), Arc::clone(&shared));
                let service = hyper::service::service_fn(move |request| {
                    let (events, waiters) = (Arc::clone(&events), Arc::clone(&waiters));
                    async move { Ok::<_, Infallible>(route(request, events, waiters).await) }
                });
                tokio::spawn(http1::Builder::new().serve_connection(TokioIo::new(stream), service));
            }
        });
        Self {
            addr,
            queue,
            waiters,
        }
    }

    /// Sends one event and waits for the function's answer.
    pub async fn invoke(&self, event: Value) -> Result<Value, String> {
        let id = uuid::Uuid::new_v4().to_string();
        let (done, answer) = oneshot::channel();
        self.waiters.lock().unwrap().insert(id.clone(), done);
        self.queue.send((id, event)).unwrap();
        tokio::time::timeout(Duration::from_secs(10), answer)
            .await
            .expect("invocation timed out")
            .unwrap()
    }
}

async fn route(
    request: Request<hyper::body::Incoming>,
    events: Arc<tokio::sync::Mutex<mpsc::UnboundedReceiver<(String, Value)>>>,
    waiters: Waiters,
) -> Response<Full<Bytes>> {
    let path = request.uri().path().to_owned();
    if path == "/2018-06-01/runtime/invocation/next" {
        let (id, event) = events.lock().await.recv().await.unwrap();
        let deadline = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap()
            .as_millis()
            + 30_000;
        return Response::builder()
            .header("lambda-runtime-aws-request-id", id)
            .header("lambda-runtime-deadline-ms", deadline.to_string())
            .header(
                "lambda-runtime-invoked-function-arn",
                "arn:aws:lambda:eu-west-1:123456789012:function:product-api",
            )
            .header(
                "lambda-runtime-trace-id",
                "Root=1-673f2b10-0123456789abcdef01234567;Sampled=0",
            )
            .body(Full::new(Bytes::from(event.to_string())))
            .unwrap();
    }
    let body = request.into_body().collect().await.unwrap().to_bytes();
    let parts: Vec<&str> = path
        .trim_start_matches("/2018-06-01/runtime/")
        .split('/')
        .collect();
    match parts.as_slice() {
        ["invocation", id, outcome @ ("response" | "error")] => {
            let answer = if *outcome == "response" {
                Ok(serde_json::from_slice(&body).unwrap())
            } else {
                Err(String::from_utf8_lossy(&body).into_owned())
            };
            if let Some(waiter) = waiters.lock().unwrap().remove(*id) {
                let _ = waiter.send(answer);
            }
        }
        ["init", "error"] => panic!(
            "function failed to initialise: {}",
            String::from_utf8_lossy(&body)
        ),
        _ => panic!("unexpected Runtime API call {path}"),
    }
    Response::builder()
        .status(202)
        .body(Full::new(Bytes::new()))
        .unwrap()
}

/// A product-api process in Lambda mode; its stdout lines are collected.
struct Function {
    child: Child,
    stdout: Arc<Mutex<String>>,
}

impl Function {
    fn spawn(runtime: &RuntimeApi, env: Vec<(String, String)>) -> Self {
        let mut child = Command::new(env!("CARGO_BIN_EXE_product-api"))
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
            .stderr(Stdio::inherit())
            .spawn()
            .unwrap();
        let stdout = Arc::new(Mutex::new(String::new()));
        let sink = Arc::clone(&stdout);
        let pipe = child.stdout.take().unwrap();
        std::thread::spawn(move || {
            for line in BufReader::new(pipe).lines().map_while(Result::ok) {
                let mut all = sink.lock().unwrap();
                all.push_str(&line);
                all.push('\n');
            }
        });
        Self { child, stdout }
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
}

impl Drop for Function {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
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
    let redis = RedisServer::start();
    let table = sample_table().await;
    let runtime = RuntimeApi::start().await;
    let function = Function::spawn(&runtime, service_env(&redis.url(), &table));

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
