//! How requests arrive: as Lambda events through the Runtime API, or over plain HTTP
//! in local mode. Both hand the same [`Api`] an `http::Request` and send back what it
//! answers.

use std::cell::{Cell, RefCell};
use std::convert::Infallible;
use std::future::Future;
use std::panic::AssertUnwindSafe;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http::Response;
use http_body_util::Full;
use hyper::server::conn::http1;
use hyper_util::rt::TokioIo;
use hyper_util::server::graceful::GracefulShutdown;
use lambda_http::aws_lambda_events::alb::AlbTargetGroupResponse;
use lambda_http::aws_lambda_events::apigw::{ApiGatewayProxyResponse, ApiGatewayV2httpResponse};
use lambda_http::request::{LambdaRequest, RequestOrigin};
use lambda_http::{BoxFuture, LambdaEvent, RequestExt};
use metrics_cloudwatch_embedded::Collector;
use serde_json::value::RawValue;
use tokio::net::TcpListener;
use tracing::{debug, error, warn};

use crate::http::Api;
use crate::ports::{Cache, ProductStore};

/// How long in-flight local requests get to finish after a shutdown signal.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(5);

/// Serves Lambda invocations until the runtime stops, flushing EMF metrics after each.
///
/// The event is taken as raw JSON and converted to an `http::Request` here rather than by
/// `lambda_http`'s adapter, because `lambda_http`'s types refuse some events (a header
/// value with a control byte, a header name with a space, a method such as `GE T`, a
/// numeric path parameter) and its conversion panics on others (an invalid `Host`, a
/// path over 64 KiB): behind API Gateway either is a 502, where the contract wants a 400.
///
/// # Errors
/// When the Runtime API cannot be reached.
pub async fn run_lambda<C: Cache, S: ProductStore>(
    api: Arc<Api<C, S>>,
    metrics: &'static Collector,
) -> Result<(), lambda_http::Error> {
    metrics_cloudwatch_embedded::lambda::handler::run(
        metrics,
        move |event: LambdaEvent<Box<RawValue>>| {
            let api = Arc::clone(&api);
            // Boxed as a trait object: nested in the runtime's own futures, the concrete
            // type is too deep for the compiler's default limit.
            let invocation: BoxFuture<'static, Result<LambdaReply, lambda_http::Error>> =
                Box::pin(async move { Ok(handle_raw_event(&api, event).await) });
            invocation
        },
    )
    .await
}

/// One invocation from its raw JSON: an event `lambda_http` cannot deserialize is
/// answered 400 in the shape its caller expects. Never fails.
pub async fn handle_raw_event<C: Cache, S: ProductStore>(
    api: &Api<C, S>,
    event: LambdaEvent<Box<RawValue>>,
) -> LambdaReply {
    let LambdaEvent { payload, context } = event;
    match serde_json::from_str::<LambdaRequest>(payload.get()) {
        Ok(request) => handle_event(api, LambdaEvent::new(request, context)).await,
        Err(err) => {
            warn!(
                request_id = context.request_id,
                error = %err,
                "event could not be read as an HTTP request; answering 400"
            );
            let response = crate::http::malformed_request_response(&context.request_id);
            LambdaReply::new(&origin_of_unreadable(&payload), response)
        }
    }
}

/// Which kind of caller sent an event that did not deserialize, judged from the fields
/// that tell the shapes apart (`version` 2.0: HTTP API or Function URL; `elb`: ALB).
fn origin_of_unreadable(payload: &RawValue) -> RequestOrigin {
    let event: serde_json::Value = serde_json::from_str(payload.get()).unwrap_or_default();
    if event["version"] == "2.0" {
        RequestOrigin::ApiGatewayV2
    } else if event["requestContext"]["elb"].is_object() {
        RequestOrigin::Alb
    } else {
        RequestOrigin::ApiGatewayV1
    }
}

/// One invocation: event in, API Gateway / Function URL / ALB response out. Never fails.
pub async fn handle_event<C: Cache, S: ProductStore>(
    api: &Api<C, S>,
    event: LambdaEvent<LambdaRequest>,
) -> LambdaReply {
    let LambdaEvent { payload, context } = event;
    let origin = payload.request_origin();
    let request_id = context.request_id.clone();
    let response = match catch_panic(|| lambda_http::Request::from(payload)) {
        Ok(request) => api.handle(&request.with_lambda_context(context)).await,
        Err(panic) => {
            warn!(
                request_id,
                panic = panic.message.as_str(),
                panic.location = panic.location.as_deref(),
                "event could not be turned into an HTTP request; answering 400"
            );
            crate::http::malformed_request_response(&request_id)
        }
    };
    LambdaReply::new(&origin, response)
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
    CATCHING.with(|catching| catching.set(true));
    let result = std::panic::catch_unwind(AssertUnwindSafe(f));
    CATCHING.with(|catching| catching.set(false));
    result.map_err(|payload| CaughtPanic {
        message: panic_message(payload.as_ref()),
        location: CAUGHT_AT.with(RefCell::take),
    })
}

fn panic_message(payload: &(dyn std::any::Any + Send)) -> String {
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

/// Serves HTTP/1.1 on `listener` until `shutdown` resolves, then lets in-flight requests
/// finish (up to a grace period).
pub async fn serve_local<C: Cache, S: ProductStore>(
    listener: TcpListener,
    api: Arc<Api<C, S>>,
    shutdown: impl Future<Output = ()>,
) {
    let graceful = GracefulShutdown::new();
    tokio::pin!(shutdown);
    loop {
        tokio::select! {
            accepted = listener.accept() => {
                let stream = match accepted {
                    Ok((stream, _)) => stream,
                    Err(err) => {
                        // Out of file descriptors and the like: back off instead of spinning.
                        warn!(error = %err, "accept failed");
                        tokio::time::sleep(Duration::from_millis(50)).await;
                        continue;
                    }
                };
                let _ = stream.set_nodelay(true);
                let api = Arc::clone(&api);
                let service = hyper::service::service_fn(move |request| {
                    let api = Arc::clone(&api);
                    async move { Ok::<_, Infallible>(api.handle(&request).await.map(Full::new)) }
                });
                let connection = graceful.watch(http1::Builder::new().serve_connection(TokioIo::new(stream), service));
                tokio::spawn(async move {
                    if let Err(err) = connection.await {
                        debug!(error = %err, "connection closed with an error");
                    }
                });
            }
            () = &mut shutdown => break,
        }
    }
    drop(listener);
    if tokio::time::timeout(SHUTDOWN_GRACE, graceful.shutdown())
        .await
        .is_err()
    {
        warn!("some connections were still open after the shutdown grace period");
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
