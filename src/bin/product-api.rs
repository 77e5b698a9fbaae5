//! `product-api`: the read API. A Lambda when `AWS_LAMBDA_RUNTIME_API` is set, a local
//! HTTP server on `LISTEN_ADDR` otherwise.

use std::sync::Arc;

use anyhow::Context as _;
use product_catalog::config::{Config, Mode};
use product_catalog::{app, metrics, runtime};
use tracing::info;

fn main() -> anyhow::Result<()> {
    let config = match Config::from_env() {
        Ok(config) => config,
        Err(err) => {
            eprintln!("product-api: configuration error: {err}");
            std::process::exit(2);
        }
    };
    // A Lambda environment serves one request at a time: one thread avoids handing each
    // Redis reply to another worker thread, and starts faster.
    let runtime = match config.mode {
        Mode::Lambda => tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()?,
        Mode::Local { .. } => tokio::runtime::Builder::new_multi_thread()
            .enable_all()
            .build()?,
    };
    runtime.block_on(serve(config))
}

async fn serve(config: Config) -> anyhow::Result<()> {
    app::init_logging(config.mode);
    runtime::log_panics();
    let emf = metrics::builder(&config.metrics_namespace, metrics::SERVICE_PRODUCT_API);

    match config.mode {
        Mode::Lambda => {
            let collector = metrics::install(emf).map_err(|err| anyhow::anyhow!(err))?;
            let api = Arc::new(app::build(&config).await?);
            runtime::run_lambda(api, collector)
                .await
                .map_err(|err| anyhow::anyhow!(err))
        }
        Mode::Local { listen_addr } => {
            let collector =
                metrics::install(emf.with_auto_flush_interval(metrics::LOCAL_FLUSH_INTERVAL))
                    .map_err(|err| anyhow::anyhow!(err))?;
            let api = Arc::new(app::build(&config).await?);
            let listener = tokio::net::TcpListener::bind(listen_addr)
                .await
                .with_context(|| format!("cannot listen on LISTEN_ADDR={listen_addr}"))?;
            info!("listening on http://{}", listener.local_addr()?);
            runtime::serve_local(listener, api, runtime::shutdown_signal()).await;
            // What was counted since the last periodic flush.
            collector
                .flush(std::io::stdout())
                .context("flush metrics")?;
            Ok(())
        }
    }
}
