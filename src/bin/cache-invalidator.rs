//! `cache-invalidator`: the Lambda on the Products table's DynamoDB Stream. It refreshes
//! or removes `product:<id>` for every changed item and reports partial batch failures.
//! Outside Lambda it applies one stream event read from stdin (for local stacks):
//! `cache-invalidator < event.json`.

use std::io::Read as _;
use std::time::Duration;

use anyhow::Context as _;
use aws_lambda_events::event::dynamodb::Event;
use lambda_http::lambda_runtime::{self, LambdaEvent, service_fn};
use product_catalog::adapters::RedisCache;
use product_catalog::cache_entry::NegativeTtl;
use product_catalog::config::{self, Config, Mode};
use product_catalog::invalidate::Invalidator;
use product_catalog::{app, error::report};
use tracing::warn;

/// Writes may wait longer than reads: a slow write is retried, a failed one blocks the shard.
const WRITE_TIMEOUT: Duration = Duration::from_secs(1);

#[tokio::main(flavor = "current_thread")]
async fn main() -> anyhow::Result<()> {
    let config = match Config::from_env() {
        Ok(config) => config,
        Err(err) => {
            eprintln!("cache-invalidator: configuration error: {err}");
            std::process::exit(2);
        }
    };
    app::init_logging(config.mode);
    let Some(url) = app::redis_url(&config).await? else {
        eprintln!(
            "cache-invalidator: configuration error: {} is not set: the cache to invalidate",
            config::REDIS_URL
        );
        std::process::exit(2);
    };

    let cache = RedisCache::connect(&url, WRITE_TIMEOUT, 1)?;
    if let Err(err) = cache.wait_connected(WRITE_TIMEOUT).await {
        warn!(error = %report(&err), "Redis not reachable yet; records will fail and be retried");
    }
    let negative_ttl = NegativeTtl::new(config.negative_ttl);
    let invalidator = Invalidator::new(cache, config.cache_ttl, negative_ttl);

    match config.mode {
        Mode::Lambda => {
            let invalidator = &invalidator;
            lambda_runtime::run(service_fn(move |event: LambdaEvent<Event>| async move {
                Ok::<_, lambda_runtime::Error>(invalidator.handle(&event.payload).await)
            }))
            .await
            .map_err(|err| anyhow::anyhow!(err))
        }
        Mode::Local { .. } => {
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
    }
}
