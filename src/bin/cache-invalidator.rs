//! `cache-invalidator`: the Lambda on the Products table's DynamoDB Stream. It refreshes
//! or removes `product:<id>` for every changed item and reports partial batch failures.
//! Outside Lambda it applies one stream event read from stdin (for local stacks):
//! `cache-invalidator < event.json`.

use std::io::Read as _;

use anyhow::Context as _;
use aws_lambda_events::event::dynamodb::Event;
use lambda_http::lambda_runtime::{self, LambdaEvent};
use product_catalog::config::{InvalidatorConfig, Mode};
use product_catalog::invalidate::Invalidator;
use product_catalog::{app, logging, metrics, runtime};

#[tokio::main(flavor = "current_thread")]
async fn main() -> anyhow::Result<()> {
    let config: InvalidatorConfig = app::config_or_exit("cache-invalidator");
    logging::init(config.mode);
    // The recorder before the invalidator, which registers its counter: a counter
    // registered first would count into no recorder, and never be written.
    let collector = match config.mode {
        Mode::Lambda => {
            let emf = metrics::builder(
                &config.metrics_namespace,
                metrics::SERVICE_CACHE_INVALIDATOR,
            );
            Some(metrics::install(emf).map_err(|err| anyhow::anyhow!(err))?)
        }
        Mode::Local => None,
    };
    // An unreachable cache is logged: records then fail and are retried.
    let cache = app::connect_cache(&config.cache, 1, config.trusted_roots).await?;
    let invalidator = Invalidator::new(cache, config.ttls.product, config.ttls.negative)
        .with_stale_ttl(config.ttls.stale)
        .with_ttl_jitter(config.ttls.jitter);

    if let Some(collector) = collector {
        let invalidator = &invalidator;
        // EMF lines are flushed after each invocation.
        return runtime::run_with_metrics(collector, move |event: LambdaEvent<Event>| async move {
            Ok::<_, lambda_runtime::Error>(invalidator.handle(&event.payload).await)
        })
        .await
        .map_err(|err| anyhow::anyhow!(err));
    }
    let mut input = String::new();
    std::io::stdin()
        .read_to_string(&mut input)
        .context("read the event from stdin")?;
    let event: Event =
        serde_json::from_str(&input).context("stdin is not a DynamoDB stream event")?;
    let response = invalidator.handle(&event).await;
    println!("{}", serde_json::to_string(&response)?);
    Ok(())
}
