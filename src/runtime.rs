//! How requests arrive: as Lambda events through the Runtime API, or over plain HTTP
//! in local mode. Both hand the same [`Api`] an `http::Request` and send back what it
//! answers.

use std::cell::{Cell, RefCell};
use std::collections::BTreeMap;
use std::convert::Infallible;
use std::future::Future;
use std::panic::AssertUnwindSafe;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use backon::{BackoffBuilder as _, ExponentialBackoff, ExponentialBuilder};
use bytes::Bytes;
use http::Response;
use http_body_util::Full;
use hyper::server::conn::http1;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::server::graceful::GracefulShutdown;
use lambda_http::aws_lambda_events::alb::{AlbTargetGroupRequest, AlbTargetGroupResponse};
use lambda_http::aws_lambda_events::apigw::{
    ApiGatewayProxyRequest, ApiGatewayProxyResponse, ApiGatewayV2httpRequest,
    ApiGatewayV2httpResponse,
};
use lambda_http::request::{LambdaRequest, RequestOrigin};
use lambda_http::{BoxFuture, LambdaEvent, RequestExt, lambda_runtime};
use metrics_cloudwatch_embedded::Collector;
use rustix::io::Errno;
use serde_json::value::RawValue;
use tokio::net::TcpListener;
use tokio::sync::{Notify, Semaphore};
use tracing::{debug, error, info, warn};

use crate::http::Api;
use crate::ports::{Cache, ProductStore};

/// How long in-flight local requests get to finish after a shutdown signal.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(5);

/// Serves Lambda invocations until the runtime stops, flushing EMF metrics after each.
///
/// The event is read as an [`Event`] and converted to an `http::Request` here rather
/// than by `lambda_http`'s adapter, because `lambda_http`'s types refuse some events (a
/// header value with a control byte, a header name with a space, a method such as
/// `GE T`, a numeric path parameter) and its conversion panics on others (an invalid
/// `Host`, a path over 64 KiB): behind API Gateway either is a 502, where the contract
/// wants a 400. REST events, the ones the deployed API sends, are read by
/// [`crate::rest_event`] instead, in about half the CPU; what it does not take goes the
/// way above.
///
/// The first event is fetched while `cache_connecting` (the rest of start-up, see
/// [`crate::app::start`]) is still under way; its invocation waits for it, so that a
/// cold start's `/next` round trip overlaps the cache's connection set-up.
///
/// # Errors
/// When the Runtime API cannot be reached.
pub async fn run_lambda<C: Cache, S: ProductStore>(
    api: Arc<Api<C, S>>,
    cache_connecting: BoxFuture<'static, ()>,
    metrics: &'static Collector,
) -> Result<(), lambda_http::Error> {
    let mut cache_connecting = Some(cache_connecting);
    run_with_metrics(metrics, move |event: LambdaEvent<Event>| {
        invocation(Arc::clone(&api), cache_connecting.take(), event)
    })
    .await
}

/// One invocation's future, boxed as a trait object: nested in the runtime's own
/// futures, the concrete type is too deep for the compiler's default limit.
fn invocation<C: Cache, S: ProductStore>(
    api: Arc<Api<C, S>>,
    first: Option<BoxFuture<'static, ()>>,
    event: LambdaEvent<Event>,
) -> BoxFuture<'static, Result<LambdaReply, lambda_http::Error>> {
    // Taken apart before the future is made, so that across its `await`s it holds the
    // request and the API's future, not the event they came from.
    Box::pin(answer(api, first, Invocation::read(event)))
}

/// Answers an invocation once start-up's cache connection is done (`first`: the first
/// invocation's wait, see [`run_lambda`]).
async fn answer<C: Cache, S: ProductStore>(
    api: Arc<Api<C, S>>,
    first: Option<BoxFuture<'static, ()>>,
    invocation: Invocation,
) -> Result<LambdaReply, lambda_http::Error> {
    if let Some(connecting) = first {
        connecting.await;
    }
    Ok(invocation.answer(&api).await)
}

/// Runs a Lambda handler until the runtime stops, with `lambda_runtime`'s tracing span
/// around each invocation and the metrics written out after it
/// ([`crate::metrics::FlushEachInvocation`]).
///
/// # Errors
/// When the Runtime API cannot be reached.
pub async fn run_with_metrics<E, R, H, F>(
    metrics: &'static Collector,
    handler: H,
) -> Result<(), lambda_http::Error>
where
    E: serde::de::DeserializeOwned,
    R: serde::Serialize,
    H: FnMut(LambdaEvent<E>) -> F,
    F: Future<Output = Result<R, lambda_http::Error>>,
{
    lambda_runtime::Runtime::new(lambda_runtime::service_fn(handler))
        .layer(lambda_runtime::layers::TracingLayer::new())
        .layer(crate::metrics::FlushEachInvocation(metrics))
        .run()
        .await
}

/// An invocation's event: the HTTP request it carries, or what can still be told of an
/// event that is JSON but no request `lambda_http` can read.
#[derive(Debug)]
// Made once per invocation and taken apart at once: boxing the request would only add an
// allocation to every request.
#[allow(clippy::large_enum_variant)]
pub enum Event {
    /// A REST API proxy event, already read into its request ([`crate::rest_event`]).
    Rest(lambda_http::Request),
    Request(LambdaRequest),
    Unreadable {
        /// Which kind of caller sent it, so that the 400 goes back in its shape.
        origin: RequestOrigin,
        /// The request id API Gateway gave it, when it has one.
        request_id: Option<String>,
        /// Why it could not be read.
        error: String,
    },
}

impl Event {
    /// Reads an event's JSON: a REST event by [`crate::rest_event`], and what that
    /// leaves as `lambda_http` does, from text already taken whole: the three shapes API
    /// Gateway and ALB send are tried directly, so that their JSON is scanned twice, as
    /// the plain adapter does, not three times; anything else goes to `LambdaRequest`'s
    /// own `Deserialize`, which tries every shape this build enables. A panic in
    /// `lambda_http`'s reading makes the event unreadable (a 400).
    #[must_use]
    pub fn read(json: &str) -> Self {
        if let Some(request) = crate::rest_event::read(json) {
            return Self::Rest(request);
        }
        // `aws_lambda_events`' header reader panics on a map past `HeaderMap`'s size
        // limit; here, in the Runtime API's own call, a panic would end the process.
        catch_panic(|| Self::read_with_lambda_http(json)).unwrap_or_else(|panic| {
            let (origin, request_id) = read_unreadable(json);
            let at = panic.location.unwrap_or_default();
            Self::Unreadable {
                origin,
                request_id,
                error: format!("{} (at {at})", panic.message),
            }
        })
    }

    fn read_with_lambda_http(json: &str) -> Self {
        if let Ok(event) = serde_json::from_str::<ApiGatewayProxyRequest>(json) {
            return Self::Request(LambdaRequest::ApiGatewayV1(event));
        }
        if let Ok(event) = serde_json::from_str::<ApiGatewayV2httpRequest>(json) {
            return Self::Request(LambdaRequest::ApiGatewayV2(event));
        }
        if let Ok(event) = serde_json::from_str::<AlbTargetGroupRequest>(json) {
            return Self::Request(LambdaRequest::Alb(event));
        }
        match serde_json::from_str::<LambdaRequest>(json) {
            Ok(request) => Self::Request(request),
            Err(err) => {
                let (origin, request_id) = read_unreadable(json);
                Self::Unreadable {
                    origin,
                    request_id,
                    error: err.to_string(),
                }
            }
        }
    }
}

impl<'de> serde::Deserialize<'de> for Event {
    /// Fails only on text that is not JSON at all, which the Runtime API never sends.
    /// The event is borrowed from the invocation's body, not copied.
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let json = <&RawValue as serde::Deserialize>::deserialize(deserializer)?;
        Ok(Self::read(json.get()))
    }
}

/// An invocation, read: the request to answer, or the answer already (a 400 for an
/// event that is no request `lambda_http` can read or turn into one). Made without
/// awaiting anything: the event (over a kilobyte, with its context) is not kept in the
/// invocation's future, where each async layer would hold and move its own copy of it
/// on every request.
pub enum Invocation {
    Request {
        origin: RequestOrigin,
        request: lambda_http::Request,
    },
    Answered(LambdaReply),
}

impl Invocation {
    /// Takes an event apart; an event that is no request is answered here, and logged.
    #[must_use]
    pub fn read(event: LambdaEvent<Event>) -> Self {
        let LambdaEvent { payload, context } = event;
        match payload {
            Event::Rest(request) => Self::Request {
                origin: RequestOrigin::ApiGatewayV1,
                request: request.with_lambda_context(context),
            },
            Event::Request(request) => Self::from_request(LambdaEvent::new(request, context)),
            Event::Unreadable {
                origin,
                request_id,
                error,
            } => {
                let request_id = request_id.unwrap_or(context.request_id);
                warn!(
                    request_id,
                    error, "event could not be read as an HTTP request; answering 400"
                );
                let response = crate::http::malformed_request_response(&request_id);
                Self::Answered(LambdaReply::new(&origin, response))
            }
        }
    }

    /// The `http::Request` an event carries; `lambda_http`'s conversion panics on some
    /// events, which are answered 400.
    fn from_request(event: LambdaEvent<LambdaRequest>) -> Self {
        let LambdaEvent { payload, context } = event;
        let origin = payload.request_origin();
        let request_id = api_request_id(&payload).unwrap_or_else(|| context.request_id.clone());
        match catch_panic(|| lambda_http::Request::from(payload)) {
            Ok(request) => Self::Request {
                origin,
                request: request.with_lambda_context(context),
            },
            Err(panic) => {
                warn!(
                    request_id,
                    panic = panic.message.as_str(),
                    panic.location = panic.location.as_deref(),
                    "event could not be turned into an HTTP request; answering 400"
                );
                let response = crate::http::malformed_request_response(&request_id);
                Self::Answered(LambdaReply::new(&origin, response))
            }
        }
    }

    /// The reply, in the shape the event's caller expects. Never fails.
    pub async fn answer<C: Cache, S: ProductStore>(self, api: &Api<C, S>) -> LambdaReply {
        match self {
            Self::Request { origin, request } => {
                LambdaReply::new(&origin, api.handle(&request).await)
            }
            Self::Answered(reply) => reply,
        }
    }
}

/// What can still be told of an event that did not deserialize: which kind of caller
/// sent it, judged from the fields that tell the shapes apart (`version` 2.0: HTTP API
/// or Function URL; `elb`: ALB), and the request id API Gateway gave it (the one its
/// access log and its client see), when there is one.
fn read_unreadable(json: &str) -> (RequestOrigin, Option<String>) {
    let event: serde_json::Value = serde_json::from_str(json).unwrap_or_default();
    let origin = if event["version"] == "2.0" {
        RequestOrigin::ApiGatewayV2
    } else if event["requestContext"]["elb"].is_object() {
        RequestOrigin::Alb
    } else {
        RequestOrigin::ApiGatewayV1
    };
    let request_id = event["requestContext"]["requestId"]
        .as_str()
        .filter(|id| !id.is_empty())
        .map(str::to_owned);
    (origin, request_id)
}

/// The request id API Gateway (or a Function URL) gave a request, when it gave one.
fn api_request_id(request: &LambdaRequest) -> Option<String> {
    match request {
        LambdaRequest::ApiGatewayV1(event) => event.request_context.request_id.clone(),
        LambdaRequest::ApiGatewayV2(event) => event.request_context.request_id.clone(),
        // ALB events carry no request id; the enum is non-exhaustive.
        _ => None,
    }
    .filter(|id| !id.is_empty())
}

thread_local! {
    /// Set while [`catch_panic`] runs `f`: the panic hook leaves the report to it.
    static CATCHING: Cell<bool> = const { Cell::new(false) };
    /// Where the panic [`catch_panic`] caught happened, noted by the hook.
    static CAUGHT_AT: RefCell<Option<String>> = const { RefCell::new(None) };
}

/// A panic caught by [`catch_panic`].
struct CaughtPanic {
    message: String,
    location: Option<String>,
}

/// Runs `f`, turning a panic into an error that the caller logs (one line, with the
/// request's context) instead of the hook printing it.
fn catch_panic<T>(f: impl FnOnce() -> T) -> Result<T, CaughtPanic> {
    let outer = CATCHING.with(|catching| catching.replace(true));
    let result = std::panic::catch_unwind(AssertUnwindSafe(f));
    CATCHING.with(|catching| catching.set(outer));
    result.map_err(|payload| CaughtPanic {
        message: panic_message(payload.as_ref()),
        location: CAUGHT_AT.with(RefCell::take),
    })
}

pub(crate) fn panic_message(payload: &(dyn std::any::Any + Send)) -> String {
    if let Some(text) = payload.downcast_ref::<&str>() {
        (*text).to_owned()
    } else if let Some(text) = payload.downcast_ref::<String>() {
        text.clone()
    } else {
        "a panic without a message".to_owned()
    }
}

/// Replaces the default panic output (`thread 'main' panicked at …` in plain text) with
/// one log line through `tracing`, so panics read like every other log record (JSON in
/// Lambda). A panic inside [`catch_panic`] is logged by its caller instead.
pub fn log_panics() {
    std::panic::set_hook(Box::new(|info| {
        let location = info.location().map(ToString::to_string);
        if CATCHING.with(Cell::get) {
            CAUGHT_AT.with(|caught| *caught.borrow_mut() = location);
            return;
        }
        error!(
            panic = panic_message(info.payload()).as_str(),
            panic.location = location.as_deref(),
            "panic"
        );
    }));
}

/// What the function returns, in the shape its caller expects.
#[derive(Debug, serde::Serialize)]
#[serde(untagged)]
pub enum LambdaReply {
    /// API Gateway REST (v1) proxy integration.
    Rest(ApiGatewayProxyResponse),
    /// API Gateway HTTP API (v2) and Function URLs.
    Http(ApiGatewayV2httpResponse),
    Alb(AlbTargetGroupResponse),
}

impl LambdaReply {
    fn new(origin: &RequestOrigin, response: Response<Bytes>) -> Self {
        let (parts, bytes) = response.into_parts();
        let status_code = i64::from(parts.status.as_u16());
        // Our bodies are JSON, so they go back as text: API Gateway would pass a binary
        // (base64) body through undecoded unless binary media types were configured.
        let (body, is_base64_encoded) = if bytes.is_empty() {
            (None, false)
        } else {
            match String::from_utf8(Vec::from(bytes)) {
                Ok(text) => (Some(lambda_http::Body::Text(text)), false),
                Err(err) => (Some(lambda_http::Body::Binary(err.into_bytes())), true),
            }
        };
        match origin {
            RequestOrigin::ApiGatewayV2 => {
                let mut reply = ApiGatewayV2httpResponse::default();
                reply.status_code = status_code;
                reply.headers = parts.headers;
                reply.body = body;
                reply.is_base64_encoded = is_base64_encoded;
                Self::Http(reply)
            }
            RequestOrigin::Alb => {
                let mut reply = AlbTargetGroupResponse::default();
                reply.status_code = status_code;
                reply.status_description = Some(parts.status.to_string());
                reply.multi_value_headers = parts.headers.clone();
                reply.headers = parts.headers;
                reply.body = body;
                reply.is_base64_encoded = is_base64_encoded;
                Self::Alb(reply)
            }
            // REST, and anything newer: the v1 shape is what API Gateway documents.
            _ => {
                let mut reply = ApiGatewayProxyResponse::default();
                reply.status_code = status_code;
                // Only one of the two maps: API Gateway merges them, duplicating headers.
                reply.multi_value_headers = parts.headers;
                reply.body = body;
                reply.is_base64_encoded = is_base64_encoded;
                Self::Rest(reply)
            }
        }
    }
}

/// How long a client has to send a request's head (request line and headers). hyper
/// starts this timer whenever it waits for a head: on a new connection, and after each
/// response on a kept-alive one, so it is also the idle keep-alive timeout.
pub const HEADER_READ_TIMEOUT: Duration = Duration::from_secs(10);
/// Largest request head read into memory; hyper answers 431 past it (Node's default).
pub const MAX_HEADER_BYTES: usize = 16 * 1024;
/// Most connections open at once, lowered to fit the file-descriptor limit.
pub const MAX_CONNECTIONS: usize = 1024;
/// File descriptors left for everything else (Redis, DynamoDB, the runtime).
const RESERVED_FDS: u64 = 64;
/// Bounds of the pause after a failed `accept` (out of descriptors, and the like).
const ACCEPT_BACKOFF_MIN: Duration = Duration::from_millis(10);
const ACCEPT_BACKOFF_MAX: Duration = Duration::from_secs(1);

/// Serves HTTP/1.1 on `listener` until `shutdown` resolves, then lets in-flight requests
/// finish (up to a grace period).
///
/// Bounded against slow or idle clients: each connection must send a request head
/// within [`HEADER_READ_TIMEOUT`] and of at most [`MAX_HEADER_BYTES`]; at most
/// [`MAX_CONNECTIONS`] are open (fewer under a lower descriptor limit), and at the limit
/// a new connection closes the oldest one with no request in progress, so idle sockets
/// cannot lock everyone out. A failing `accept` is retried with exponential backoff.
pub async fn serve_local<C: Cache, S: ProductStore>(
    listener: TcpListener,
    api: Arc<Api<C, S>>,
    shutdown: impl Future<Output = ()>,
) {
    let limit = connection_limit();
    info!(
        max_connections = limit,
        header_read_timeout_s = HEADER_READ_TIMEOUT.as_secs(),
        "local server limits"
    );
    let connections = Arc::new(Connections::new(limit));
    let mut http = http1::Builder::new();
    http.timer(TokioTimer::new())
        .header_read_timeout(HEADER_READ_TIMEOUT)
        .max_buf_size(MAX_HEADER_BYTES);
    let graceful = GracefulShutdown::new();
    let mut backoff = None;
    tokio::pin!(shutdown);
    loop {
        let accepted = tokio::select! {
            accepted = listener.accept() => accepted,
            () = &mut shutdown => break,
        };
        let stream = match accepted {
            Ok((stream, _)) => {
                backoff = None;
                stream
            }
            Err(err) => {
                let delay = backoff
                    .get_or_insert_with(accept_backoff)
                    .next()
                    .unwrap_or(ACCEPT_BACKOFF_MAX);
                warn!(error = %err, retry_in_ms = delay.as_millis(), "accept failed");
                if matches!(err.raw_os_error(), Some(code) if code == Errno::MFILE.raw_os_error() || code == Errno::NFILE.raw_os_error())
                {
                    connections.close_oldest_idle();
                }
                tokio::select! {
                    () = tokio::time::sleep(delay) => continue,
                    () = &mut shutdown => break,
                }
            }
        };
        let permit = match Arc::clone(&connections.permits).try_acquire_owned() {
            Ok(permit) => permit,
            Err(_) => {
                // At the limit: make room by closing an idle connection; when every
                // connection is busy, wait for one to finish.
                connections.close_oldest_idle();
                tokio::select! {
                    permit = Arc::clone(&connections.permits).acquire_owned() => match permit {
                        Ok(permit) => permit,
                        Err(_) => break,
                    },
                    () = &mut shutdown => break,
                }
            }
        };
        let _ = stream.set_nodelay(true);
        let open = OpenConnection::register(&connections);
        let slot = Arc::clone(&open.slot);
        let api = Arc::clone(&api);
        let service = hyper::service::service_fn(move |request| {
            let api = Arc::clone(&api);
            let busy = Busy::start(&slot);
            async move {
                let response = api.handle(&request).await.map(Full::new);
                drop(busy);
                Ok::<_, Infallible>(response)
            }
        });
        let connection = graceful.watch(http.serve_connection(TokioIo::new(stream), service));
        tokio::spawn(async move {
            tokio::select! {
                result = connection => if let Err(err) = result {
                    debug!(error = %err, "connection closed with an error");
                },
                () = open.slot.close.notified() => debug!("closed an idle connection to make room"),
            }
            drop((open, permit));
        });
    }
    drop(listener);
    if tokio::time::timeout(SHUTDOWN_GRACE, graceful.shutdown())
        .await
        .is_err()
    {
        warn!("some connections were still open after the shutdown grace period");
    }
}

/// [`MAX_CONNECTIONS`], or fewer when the file-descriptor limit would run out first.
fn connection_limit() -> usize {
    let fds = rustix::process::getrlimit(rustix::process::Resource::Nofile).current;
    let room = fds.map_or(u64::MAX, |fds| fds.saturating_sub(RESERVED_FDS).max(1));
    usize::try_from(room).map_or(MAX_CONNECTIONS, |room| room.min(MAX_CONNECTIONS))
}

fn accept_backoff() -> ExponentialBackoff {
    ExponentialBuilder::default()
        .with_min_delay(ACCEPT_BACKOFF_MIN)
        .with_max_delay(ACCEPT_BACKOFF_MAX)
        .without_max_times()
        .build()
}

/// The local server's open connections in the order they came, so that at the limit the
/// oldest one with no request in progress can be closed.
struct Connections {
    permits: Arc<Semaphore>,
    open: Mutex<BTreeMap<u64, Arc<Slot>>>,
    next_id: AtomicU64,
}

#[derive(Default)]
struct Slot {
    /// Requests being answered on this connection (0 or 1 for HTTP/1.1).
    in_flight: AtomicUsize,
    /// Set once this connection was chosen to be closed.
    closing: AtomicBool,
    close: Notify,
}

impl Connections {
    fn new(limit: usize) -> Self {
        Self {
            permits: Arc::new(Semaphore::new(limit)),
            open: Mutex::new(BTreeMap::new()),
            next_id: AtomicU64::new(0),
        }
    }

    fn registry(&self) -> std::sync::MutexGuard<'_, BTreeMap<u64, Arc<Slot>>> {
        // The map stays consistent whatever panicked while holding it.
        self.open.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Asks the oldest connection with no request in progress to close; says if any did.
    fn close_oldest_idle(&self) -> bool {
        let open = self.registry();
        let idle = open.values().find(|slot| {
            slot.in_flight.load(Ordering::Acquire) == 0
                && !slot.closing.swap(true, Ordering::AcqRel)
        });
        idle.inspect(|slot| slot.close.notify_one()).is_some()
    }
}

/// A connection's place among the open ones, given up when it is dropped.
struct OpenConnection {
    id: u64,
    slot: Arc<Slot>,
    connections: Arc<Connections>,
}

impl OpenConnection {
    fn register(connections: &Arc<Connections>) -> Self {
        let id = connections.next_id.fetch_add(1, Ordering::Relaxed);
        let slot = Arc::new(Slot::default());
        connections.registry().insert(id, Arc::clone(&slot));
        Self {
            id,
            slot,
            connections: Arc::clone(connections),
        }
    }
}

impl Drop for OpenConnection {
    fn drop(&mut self) {
        self.connections.registry().remove(&self.id);
    }
}

/// Marks a connection busy while a request is answered (also if the answer is dropped).
struct Busy(Arc<Slot>);

impl Busy {
    fn start(slot: &Arc<Slot>) -> Self {
        slot.in_flight.fetch_add(1, Ordering::AcqRel);
        Self(Arc::clone(slot))
    }
}

impl Drop for Busy {
    fn drop(&mut self) {
        self.0.in_flight.fetch_sub(1, Ordering::AcqRel);
    }
}

/// Resolves on Ctrl-C or SIGTERM.
pub async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut signal) => {
                signal.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let terminate = std::future::pending::<()>();
    tokio::select! {
        () = ctrl_c => {},
        () = terminate => {},
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fixture(name: &str) -> String {
        let path = format!("{}/tests/fixtures/{name}.json", env!("CARGO_MANIFEST_DIR"));
        std::fs::read_to_string(path).unwrap()
    }

    #[test]
    fn events_are_read_as_lambda_http_reads_them() {
        // GIVEN REST events: read by `rest_event` (whose tests compare it with lambda_http)
        for name in [
            "apigw_rest_stage",
            "apigw_rest_custom_domain",
            "apigw_rest_edge",
        ] {
            let read = serde_json::from_str::<Event>(&fixture(name)).unwrap();
            assert!(matches!(read, Event::Rest(_)), "{name}: {read:?}");
        }
        // AND each other kind of event the function is sent
        for name in [
            "apigw_http_v2",
            "apigw_http_v2_default_route_stage",
            "function_url",
        ] {
            let json = fixture(name);
            assert_reads_alike(name, &json);
        }
        // AND an ALB event
        let alb = serde_json::json!({
            "httpMethod": "GET", "path": "/product/P-10001", "headers": {},
            "requestContext": { "elb": { "targetGroupArn": "arn:aws:elasticloadbalancing:eu-west-1:123456789012:targetgroup/t/1" } },
            "isBase64Encoded": false, "body": null
        });
        assert_reads_alike("alb", &alb.to_string());
        // AND a WebSocket event, a shape this build does not enable: unreadable (a 400)
        let websocket =
            serde_json::json!({ "requestContext": { "connectedAt": 1, "requestTimeEpoch": 1 } });
        let read = serde_json::from_str::<Event>(&websocket.to_string()).unwrap();
        assert!(matches!(read, Event::Unreadable { .. }), "{read:?}");
    }

    fn assert_reads_alike(name: &str, json: &str) {
        // WHEN read as an Event and by lambda_http's own Deserialize
        let Event::Request(ours) = serde_json::from_str::<Event>(json).unwrap() else {
            panic!("{name} was not read as a request");
        };
        let theirs: LambdaRequest = serde_json::from_str(json).unwrap();
        // THEN both give the same request
        assert_eq!(format!("{ours:?}"), format!("{theirs:?}"), "{name}");
    }

    #[test]
    fn an_event_lambda_http_panics_on_reading_is_unreadable() {
        // GIVEN a REST event with more header names than a HeaderMap holds, on which
        // aws_lambda_events' header reader panics
        let mut event: serde_json::Value =
            serde_json::from_str(&fixture("apigw_rest_stage")).unwrap();
        for i in 0..26_000 {
            event["multiValueHeaders"][format!("m{i}")] = serde_json::json!(["1"]);
        }
        // WHEN it is read THEN it is unreadable (a 400), with its request id, not a panic
        let read = serde_json::from_str::<Event>(&event.to_string()).unwrap();
        let Event::Unreadable { request_id, .. } = read else {
            panic!("read as a request: {read:?}");
        };
        assert_eq!(
            request_id.as_deref(),
            Some("c6af9ac6-7b61-11e6-9a41-93e8deadbeef")
        );
    }

    #[test]
    fn an_unreadable_event_keeps_its_shape_and_request_id() {
        // GIVEN an HTTP API event whose headers lambda_http refuses (a number)
        let mut event: serde_json::Value = serde_json::from_str(&fixture("apigw_http_v2")).unwrap();
        event["headers"] = serde_json::json!({ "accept": 5 });
        event["requestContext"]["requestId"] = "api-gw-id".into();
        // WHEN it is read
        let read = serde_json::from_str::<Event>(&event.to_string()).unwrap();
        // THEN it is unreadable, with the caller's shape and API Gateway's request id
        let Event::Unreadable {
            origin, request_id, ..
        } = read
        else {
            panic!("read as a request: {read:?}");
        };
        assert!(matches!(origin, RequestOrigin::ApiGatewayV2));
        assert_eq!(request_id.as_deref(), Some("api-gw-id"));
    }
}

#[cfg(test)]
mod future_size {
    use std::time::Duration;

    use lambda_http::Context;

    use super::*;
    use crate::adapters::{AnyCache, AnyStore, MemoryCache, MemoryStore};
    use crate::service::ProductService;

    /// Every invocation's future is built on the stack and moved into a box, and each
    /// async layer inside it moves its own part once more: a large future is paid in
    /// memory copies on every request, hit or miss. The paths that are not a hit box
    /// their large futures (the table's client, fred's commands) so that a hit's stays
    /// small, memcached's dialing is boxed (in place it made `Api::handle`'s future 4.5
    /// KB, a Redis deployment's too), and the event is taken apart before the future is
    /// made (holding it made the invocation's future 10 KB; 11.7 KB with both).
    #[test]
    fn an_invocation_future_stays_small_with_every_adapter_compiled_in() {
        // GIVEN the API as product-api builds it, with the enums of every adapter
        let service = ProductService::new(
            AnyCache::Memory(MemoryCache::default()),
            AnyStore::Memory(MemoryStore::sample().unwrap()),
            Duration::from_secs(300),
        );
        let api = Arc::new(Api::new(service, 60));
        let json = std::fs::read_to_string(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/tests/fixtures/apigw_rest_stage.json"
        ))
        .unwrap();
        let event = LambdaEvent::new(Event::read(&json), Context::default());
        // WHEN an invocation's future is made, boxed as `run_lambda` gives it to the
        // runtime, THEN it is little more than the API's, a fraction of what the table's
        // client or a fred command alone would make it (each about 7 KB)
        let boxed = invocation(Arc::clone(&api), None, event);
        let size = std::mem::size_of_val(&*boxed);
        println!("invocation future: {size} bytes");
        assert!(size <= 5 * 1024, "{size} bytes");
        let request = http::Request::new(());
        let answer = api.handle(&request);
        let size = std::mem::size_of_val(&answer);
        println!("Api::handle future: {size} bytes");
        assert!(size <= 3584, "{size} bytes");
    }
}
