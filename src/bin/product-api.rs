//! `product-api`: the read API. A Lambda when `AWS_LAMBDA_RUNTIME_API` is set, a local
//! HTTP server on `LISTEN_ADDR` otherwise.

use std::sync::Arc;

use anyhow::Context as _;
use product_catalog::config::{ApiConfig, Mode};
use product_catalog::{app, logging, metrics, runtime};
use tracing::info;

fn main() -> anyhow::Result<()> {
    let config: ApiConfig = app::config_or_exit("product-api");
    // A Lambda environment serves one request at a time: one thread avoids handing each
    // Redis reply to another worker thread, and starts faster.
    let mut runtime = match config.mode {
        Mode::Lambda => tokio::runtime::Builder::new_current_thread(),
        Mode::Local => tokio::runtime::Builder::new_multi_thread(),
    };
    let runtime = runtime.enable_all().build()?;
    let served = runtime.block_on(serve(config));
    // Not waiting for ever for blocking work left (a name lookup whose DNS server does
    // not answer would hold the exit of a start-up that failed for another reason).
    runtime.shutdown_timeout(SHUTDOWN_WAIT);
    served
}

/// How long the exit waits for blocking work left on the runtime.
const SHUTDOWN_WAIT: std::time::Duration = std::time::Duration::from_secs(1);

async fn serve(config: ApiConfig) -> anyhow::Result<()> {
    logging::init(config.mode);
    runtime::log_panics();
    let emf = metrics::builder(&config.metrics_namespace, metrics::SERVICE_PRODUCT_API);
    let collector = metrics::install(emf).map_err(|err| anyhow::anyhow!(err))?;
    let flushing = (config.mode == Mode::Local).then(|| {
        metrics::flush_every(metrics::LOCAL_FLUSH_INTERVAL, move || {
            metrics::write_out(collector, std::io::stdout());
        })
    });
    let (api, cache_connecting) = app::start(&config).await?;
    let api = Arc::new(api);
    // What the first request still waits for.
    let first_request_waits: app::CacheConnecting = if config.connect_before_first_request {
        cache_connecting.await;
        Box::pin(std::future::ready(()))
    } else {
        cache_connecting
    };
    if config.mode == Mode::Lambda {
        return runtime::run_lambda(api, first_request_waits, collector)
            .await
            .map_err(|err| anyhow::anyhow!(err));
    }
    let listener = tokio::net::TcpListener::bind(config.listen_addr)
        .await
        .with_context(|| format!("cannot listen on LISTEN_ADDR={}", config.listen_addr))?;
    info!("listening on http://{}", listener.local_addr()?);
    runtime::serve_local(listener, api, runtime::shutdown_signal()).await;
    // What was counted since the last periodic flush, as the last document.
    if let Some(flushing) = flushing {
        flushing.abort();
    }
    metrics::write_out(collector, std::io::stdout());
    Ok(())
}
