//! Wiring: turns a [`Config`] into a ready [`Api`], choosing adapters from what is set.

use std::time::Duration;

use tracing::{info, warn};

use crate::adapters::{AnyCache, AnyStore, DynamoStore, MemoryCache, MemoryStore, RedisCache};
use crate::cache_entry::NegativeTtl;
use crate::config::{Config, Mode, RedisUrl};
use crate::error::{StartError, report};
use crate::http::Api;
use crate::service::ProductService;

/// The API as the binaries run it.
pub type ProductApi = Api<AnyCache, AnyStore>;

/// How long start-up waits for Redis before serving without it (it keeps reconnecting).
const REDIS_START_WAIT: Duration = Duration::from_secs(1);

/// Builds the cache and the store (concurrently, to shorten cold starts) and the API.
///
/// # Errors
/// [`StartError`] when an adapter cannot be built. An unreachable Redis is not an
/// error: the service starts, serves from the table, and reconnects in the background.
pub async fn build(config: &Config) -> Result<ProductApi, StartError> {
    let (cache, store) = tokio::join!(build_cache(config), build_store(config));
    let service = ProductService::new(cache?, store?, config.cache_ttl)
        .with_negative_ttl(NegativeTtl::new(config.negative_ttl))
        .with_l1(config.l1_entries, config.l1_ttl);
    Ok(Api::new(service, config.http_max_age))
}

/// The cache chosen by `REDIS_URL`.
///
/// # Errors
/// [`StartError::Cache`] when the Redis client cannot be configured.
pub async fn build_cache(config: &Config) -> Result<AnyCache, StartError> {
    let Some(url) = redis_url(config).await? else {
        info!("REDIS_URL not set: using the in-process cache");
        return Ok(AnyCache::Memory(MemoryCache::default()));
    };
    // Lambda runs one request at a time per process; locally a few connections share load.
    let pool_size = match config.mode {
        Mode::Lambda => 1,
        Mode::Local { .. } => std::thread::available_parallelism().map_or(2, usize::from),
    };
    let redis = RedisCache::connect(&url, config.redis_timeout, pool_size)?;
    match redis.wait_connected(REDIS_START_WAIT).await {
        Ok(()) => info!(redis = ?url, "connected to Redis"),
        Err(err) => {
            warn!(redis = ?url, error = %report(&err), "Redis not reachable yet; serving from the table meanwhile")
        }
    }
    Ok(AnyCache::Redis(redis))
}

/// `REDIS_URL`, with the AUTH token from `REDIS_AUTH_SECRET_ARN` as its password when
/// that is set; `None` when no Redis is configured.
///
/// # Errors
/// [`StartError::Secret`] when the secret cannot be read.
pub async fn redis_url(config: &Config) -> Result<Option<RedisUrl>, StartError> {
    let Some(url) = &config.redis_url else {
        return Ok(None);
    };
    match &config.redis_auth_secret_arn {
        Some(arn) => Ok(Some(url.with_password(&auth_token(arn).await?)?)),
        None => Ok(Some(url.clone())),
    }
}

/// Reads the ElastiCache AUTH token kept in Secrets Manager (once, at start-up).
async fn auth_token(secret_arn: &str) -> Result<String, StartError> {
    let client = aws_sdk_secretsmanager::Client::new(&crate::adapters::dynamo::sdk_config().await);
    let secret = client
        .get_secret_value()
        .secret_id(secret_arn)
        .send()
        .await
        .map_err(|err| StartError::Secret(err.into()))?;
    secret
        .secret_string
        .ok_or_else(|| StartError::Secret("the secret has no string value".into()))
}

/// The store chosen by `TABLE_NAME`.
///
/// # Errors
/// [`StartError::Catalog`] when the embedded sample catalog is invalid.
pub async fn build_store(config: &Config) -> Result<AnyStore, StartError> {
    match &config.table_name {
        Some(table) => Ok(AnyStore::Dynamo(DynamoStore::from_env(table.clone()).await)),
        None => {
            let catalog = MemoryStore::sample()?;
            info!(
                products = catalog.len(),
                "TABLE_NAME not set: serving the embedded sample catalog"
            );
            Ok(AnyStore::Memory(catalog))
        }
    }
}

/// Sets up logging on stderr (stdout carries the EMF metric lines): JSON in Lambda,
/// human-readable locally. `RUST_LOG` overrides the level.
pub fn init_logging(mode: Mode) {
    let default = match mode {
        Mode::Lambda => "info",
        // The EMF exporter keeps 100 latency samples per flush, the format's limit; under
        // local load it drops the rest and would log each drop.
        Mode::Local { .. } => "info,metrics_cloudwatch_embedded=off",
    };
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(default));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    match mode {
        Mode::Lambda => builder
            .json()
            .with_ansi(false)
            .without_time()
            .with_current_span(false)
            .init(),
        Mode::Local { .. } => builder.init(),
    }
}
