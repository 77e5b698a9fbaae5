//! How requests arrive: as Lambda events through the Runtime API, or over plain HTTP
//! in local mode. Both hand the same [`Api`] an `http::Request` and send back what it
//! answers.

use std::convert::Infallible;
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http::Response;
use http_body_util::Full;
use hyper::server::conn::http1;
use hyper_util::rt::TokioIo;
use hyper_util::server::graceful::GracefulShutdown;
use metrics_cloudwatch_embedded::Collector;
use tokio::net::TcpListener;
use tracing::{debug, warn};

use crate::http::Api;
use crate::ports::{Cache, ProductStore};

/// How long in-flight local requests get to finish after a shutdown signal.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(5);

/// Serves Lambda invocations until the runtime stops, flushing EMF metrics after each.
///
/// # Errors
/// When the Runtime API cannot be reached.
pub async fn run_lambda<C: Cache, S: ProductStore>(
    api: Arc<Api<C, S>>,
    metrics: &'static Collector,
) -> Result<(), lambda_http::Error> {
    metrics_cloudwatch_embedded::lambda::handler::run_http(
        metrics,
        move |request: lambda_http::Request| {
            let api = Arc::clone(&api);
            async move { Ok::<_, lambda_http::Error>(lambda_body(api.handle(&request).await)) }
        },
    )
    .await
}

/// Our bodies are JSON, so they go back as text: API Gateway would pass a binary
/// (base64) body through undecoded unless binary media types were configured.
fn lambda_body(response: Response<Bytes>) -> Response<lambda_http::Body> {
    response.map(|bytes| {
        if bytes.is_empty() {
            return lambda_http::Body::Empty;
        }
        match String::from_utf8(Vec::from(bytes)) {
            Ok(text) => lambda_http::Body::Text(text),
            Err(err) => lambda_http::Body::Binary(err.into_bytes()),
        }
    })
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
