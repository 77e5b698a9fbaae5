//! Wiring: turns a binary's configuration into its running parts, choosing adapters from
//! what is set. The one place that connects to Redis or memcached.

use std::time::Duration;

use tracing::{info, warn};

use crate::adapters::early_connection::{EarlyConnection, proxied};
use crate::adapters::elasticache_iam::IamTokens;
use crate::adapters::redis::RedisPassword;
use crate::adapters::{
    AnyCache, AnyStore, DynamoStore, EarlyLookups, MemcachedCache, MemoryCache, MemoryStore,
    PendingToken, RedisCache, RedisTls, aws,
};
use crate::config::{
    ApiConfig, CacheConfig, FromEnvironment, Mode, RedisAuth, RedisConfig, TableName,
};
use crate::error::{CacheError, StartError, report};
use crate::http::Api;
use crate::service::ProductService;
use crate::tls::TrustedRoots;

/// The API as the binaries run it.
pub type ProductApi = Api<AnyCache, AnyStore>;

/// How long the cache's first connection is waited for (by start-up, or in an on-demand
/// Lambda by the first request) before going on without it (it keeps reconnecting).
const REDIS_START_WAIT: Duration = Duration::from_secs(1);

/// The cache's first connection, still opening when [`start`] returns: awaiting it waits
/// up to [`REDIS_START_WAIT`] for the connection and logs whether it came (the client
/// keeps reconnecting either way). Never fails.
pub type CacheConnecting = futures_util::future::BoxFuture<'static, ()>;

/// The binary's configuration from the environment; on a bad value, says which variable
/// on stderr and exits with status 2.
pub fn config_or_exit<T: FromEnvironment>(binary: &str) -> T {
    match T::from_env() {
        Ok(config) => config,
        Err(err) => {
            eprintln!("{binary}: configuration error: {err}");
            std::process::exit(2);
        }
    }
}

/// [`start`], and the wait for the cache's first connection: the API ready to serve.
///
/// # Errors
/// As [`start`].
pub async fn build(config: &ApiConfig) -> Result<ProductApi, StartError> {
    let (api, connecting) = start(config).await?;
    connecting.await;
    Ok(api)
}

/// Builds the cache and the store and the API, returning once everything that can stop
/// start-up is done (configuration, the AUTH secret read, the IAM token signed): the
/// cache's connection is still opening ([`CacheConnecting`], for the first request to
/// wait for), and a DynamoDB store finishes its set-up in the background ([`build_store`]).
///
/// # Errors
/// [`StartError`] when an adapter cannot be built. An unreachable Redis is not an
/// error: the service starts, serves from the table, and reconnects in the background.
pub async fn start(config: &ApiConfig) -> Result<(ProductApi, CacheConnecting), StartError> {
    let hosts = early_hosts(config, aws::endpoint);
    let lookups = EarlyLookups::start(hosts.iter().map(String::as_str));
    let early = early_secret_connection(config, aws::endpoint, &lookups);
    let sdk = aws::SharedSdkConfig::trusting(config.trusted_roots)
        .resolving_with(lookups)
        .connecting_early(early);
    let (cache, store) = tokio::join!(
        build_cache(config, &sdk),
        build_store(config.table.as_ref(), &sdk)
    );
    let (cache, connecting) = cache?;
    let service = ProductService::new(cache, store?, config.ttls.product)
        .with_negative_ttl(config.ttls.negative)
        .with_l1(config.l1_entries, config.l1_ttl)
        .with_stale_ttl(config.ttls.stale)
        .with_ttl_jitter(config.ttls.jitter);
    Ok((Api::new(service, config.http_max_age), connecting))
}

/// The hosts a cold start connects to, looked up at once ([`EarlyLookups`]): Redis's,
/// and the AWS endpoints start-up calls, as `endpoint` finds them (Secrets Manager for
/// the AUTH token, DynamoDB for its warm-up). memcached's client resolves its nodes
/// itself.
fn early_hosts(
    config: &ApiConfig,
    endpoint: impl Fn(aws::Service) -> Option<url::Url>,
) -> Vec<String> {
    let endpoint_host = |service| endpoint(service)?.host_str().map(str::to_owned);
    let mut hosts = Vec::new();
    if let Some(CacheConfig::Redis(redis)) = &config.cache {
        hosts.extend(redis.url.host());
        if let RedisAuth::Secret(_) = redis.auth {
            hosts.extend(endpoint_host(aws::Service::SecretsManager));
        }
    }
    if config.table.is_some() {
        hosts.extend(endpoint_host(aws::Service::DynamoDb));
    }
    hosts
}

/// The connection of the AUTH token's read, opened at once ([`EarlyConnection`]) when
/// the token is in Secrets Manager: that read is a cold hit's longest chain, and its TCP
/// and TLS need nothing the SDK's configuration and signing, on the same chain, make.
/// None where the endpoint is unknown here or reached through a proxy.
fn early_secret_connection(
    config: &ApiConfig,
    endpoint: impl Fn(aws::Service) -> Option<url::Url>,
    lookups: &EarlyLookups,
) -> EarlyConnection {
    let Some(CacheConfig::Redis(RedisConfig {
        auth: RedisAuth::Secret(_),
        ..
    })) = &config.cache
    else {
        return EarlyConnection::default();
    };
    match endpoint(aws::Service::SecretsManager) {
        Some(url) if !proxied(&url) => EarlyConnection::open(
            &url,
            config.trusted_roots,
            lookups.clone(),
            aws::CONNECT_TIMEOUT,
        ),
        _ => EarlyConnection::default(),
    }
}

/// The cache chosen by `REDIS_URL` or `MEMCACHED_URL`, its connection still opening.
///
/// # Errors
/// [`StartError`] when the cache client cannot be configured.
pub async fn build_cache(
    config: &ApiConfig,
    sdk: &aws::SharedSdkConfig,
) -> Result<(AnyCache, CacheConnecting), StartError> {
    let Some(cache) = &config.cache else {
        info!("neither REDIS_URL nor MEMCACHED_URL set: using the in-process cache");
        return Ok((
            AnyCache::Memory(MemoryCache::default()),
            Box::pin(std::future::ready(())),
        ));
    };
    // Lambda runs one request at a time per process; locally a few connections share load.
    let pool_size = match config.mode {
        Mode::Lambda => 1,
        Mode::Local => std::thread::available_parallelism().map_or(2, usize::from),
    };
    connect_cache_with(cache, pool_size, sdk, UnreadToken::ReadLater).await
}

/// Connects to the configured shared cache: [`connect_redis`], or memcached with
/// `connections` per node, TLS and the AWS SDK trusting `roots`. An unreachable cache
/// is logged, not an error.
///
/// # Errors
/// [`StartError`] when the client cannot be configured (or the Redis secret read).
pub async fn connect_cache(
    cache: &CacheConfig,
    connections: usize,
    roots: TrustedRoots,
) -> Result<AnyCache, StartError> {
    let sdk = aws::SharedSdkConfig::trusting(roots);
    let (cache, connecting) =
        connect_cache_with(cache, connections, &sdk, UnreadToken::Stop).await?;
    connecting.await;
    Ok(cache)
}

/// What start-up does when the AUTH token's read fails in a way that may pass (no answer
/// in time, Secrets Manager's own fault, throttling). A secret that is missing, refused
/// or holds no token stops start-up either way.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum UnreadToken {
    /// Go on without the cache and read again until the token comes: the API serves from
    /// the table meanwhile, instead of failing every cold start for as long as it lasts.
    ReadLater,
    /// Stop, naming the secret: the `catalog` CLI (a person is waiting for its answer)
    /// and `cache-invalidator` (its stream records are retried, init included).
    Stop,
}

/// [`connect_cache`] with the SDK configuration the rest of the start-up shares (TLS
/// trusts the roots it trusts), returned while its connection is still opening.
///
/// # Errors
/// [`StartError`] when the client cannot be configured (or the Redis secret read).
pub async fn connect_cache_with(
    cache: &CacheConfig,
    connections: usize,
    sdk: &aws::SharedSdkConfig,
    unread: UnreadToken,
) -> Result<(AnyCache, CacheConnecting), StartError> {
    match cache {
        CacheConfig::Redis(redis) => {
            let (cache, connecting) = connect_redis_with(redis, connections, sdk, unread).await?;
            Ok((AnyCache::Redis(cache), connecting))
        }
        CacheConfig::Memcached(memcached) => {
            let cache = MemcachedCache::trusting(
                &memcached.url,
                memcached.timeout,
                connections,
                sdk.trusted_roots(),
            )?;
            let (waiting, url) = (cache.clone(), memcached.url.clone());
            let connecting = async move {
                match waiting.wait_connected(REDIS_START_WAIT).await {
                    Ok(()) => info!(memcached = ?url, "connected to memcached"),
                    Err(err) => {
                        warn!(memcached = ?url, error = %report(&err), "memcached not reachable yet; going on without it meanwhile");
                    }
                }
            };
            Ok((AnyCache::Memcached(cache), Box::pin(connecting)))
        }
    }
}

/// Connects to Redis as every binary does: the AUTH token from Secrets Manager when
/// `REDIS_AUTH_SECRET_ARN` is set, the configured timeout on every command, and a short
/// wait for the connection; TLS and the AWS SDK trust `roots`. An unreachable Redis is
/// logged, not an error: the pool keeps reconnecting in the background.
///
/// # Errors
/// [`StartError`] when the secret cannot be read or the client cannot be configured.
pub async fn connect_redis(
    redis: &RedisConfig,
    pool_size: usize,
    roots: TrustedRoots,
) -> Result<RedisCache, StartError> {
    let sdk = aws::SharedSdkConfig::trusting(roots);
    let (cache, connecting) = connect_redis_with(redis, pool_size, &sdk, UnreadToken::Stop).await?;
    connecting.await;
    Ok(cache)
}

/// [`connect_redis`] with the SDK configuration the rest of the start-up shares, returned
/// once the token is in hand (read or signed) while the connection is still opening.
///
/// # Errors
/// [`StartError`] when the secret cannot be read or the client cannot be configured.
pub async fn connect_redis_with(
    redis: &RedisConfig,
    pool_size: usize,
    sdk: &aws::SharedSdkConfig,
    unread: UnreadToken,
) -> Result<(RedisCache, CacheConnecting), StartError> {
    // TLS settings (the roots parsed) on a blocking thread, while the token is read.
    let roots = sdk.trusted_roots();
    let tls = redis
        .url
        .tls()
        .then(|| tokio::task::spawn_blocking(move || RedisTls::trusting(roots)));
    // The token is read while the connections open: they wait for it only to send AUTH.
    // An IAM token needs no read: each connection signs its own; start-up signs one
    // first, so that a function without region or credentials stops, saying why.
    let (token, password) = match &redis.auth {
        RedisAuth::Url => (None, RedisPassword::Url),
        RedisAuth::Secret(arn) => {
            let (sender, pending) = PendingToken::new();
            (Some((arn, sender)), RedisPassword::Token(pending))
        }
        RedisAuth::Iam(user) => (
            None,
            RedisPassword::Iam(IamTokens::new(sdk.clone(), user.clone())),
        ),
    };
    // Whether start-up goes on without the token: then there is no connection to wait for.
    let read_token = async {
        let mut unread_token = false;
        if let Some((arn, sender)) = token {
            let secret = aws::AuthSecret::open(sdk, arn).await;
            match secret.read().await {
                Ok(token) => sender.hand_over(token).await,
                // A secret that is missing, refused or wrong stops start-up, naming it.
                Err(err) if !err.may_pass || unread == UnreadToken::Stop => {
                    return Err(err.into());
                }
                // Secrets Manager failing for a while must not take the API down: the
                // cache is bypassed (served from the table) until a read succeeds.
                Err(err) => {
                    warn!(error = %report(&err), "serving from the table without the cache until the token is read");
                    unread_token = true;
                }
            }
            tokio::spawn(sender.follow_rotations(move || {
                let secret = secret.clone();
                async move { secret.read().await }
            }));
        }
        Ok::<_, StartError>(unread_token)
    };
    // The same signer as the connections': they reuse the credentials it fetches.
    let iam_tokens = match &password {
        RedisPassword::Iam(tokens) => Some(tokens.clone()),
        _ => None,
    };
    let sign_iam_token = async {
        if let (Some(tokens), RedisAuth::Iam(user)) = (iam_tokens, &redis.auth) {
            tokens
                .token()
                .await
                .map_err(|source| StartError::IamToken {
                    user: user.user().to_owned(),
                    cache: user.cache().to_owned(),
                    source,
                })?;
        }
        Ok::<_, StartError>(())
    };
    let connect = async {
        let tls = match tls {
            Some(loading) => Some(
                loading
                    .await
                    .map_err(|err| CacheError::new("configure TLS", err))??,
            ),
            None => None,
        };
        Ok(RedisCache::connect_with(
            &redis.url,
            tls,
            password,
            redis.timeout,
            pool_size,
            sdk.early_lookups(),
        )?)
    };
    let (unread_token, (), cache) = tokio::try_join!(read_token, sign_iam_token, connect)?;
    let (waiting, url) = (cache.clone(), redis.url.clone());
    let connecting = async move {
        if unread_token {
            return; // no AUTH can succeed before the token comes
        }
        match waiting.wait_connected(REDIS_START_WAIT).await {
            Ok(()) => info!(redis = ?url, "connected to Redis"),
            Err(err) => {
                warn!(redis = ?url, error = %report(&err), "Redis not reachable yet; going on without it meanwhile");
            }
        }
    };
    Ok((cache, Box::pin(connecting)))
}

/// The store chosen by `TABLE_NAME`. A DynamoDB store is returned at once, its client
/// built (the SDK's CPU-heavy part on a blocking thread) and its connection opened in the
/// background ([`DynamoStore::opening`]): start-up and a first hit wait for neither.
///
/// # Errors
/// [`StartError::Catalog`] when the embedded sample catalog is invalid.
pub async fn build_store(
    table: Option<&TableName>,
    sdk: &aws::SharedSdkConfig,
) -> Result<AnyStore, StartError> {
    match table {
        Some(table) => {
            let sdk = sdk.clone();
            let client = async move { sdk.client(aws_sdk_dynamodb::Client::new).await };
            Ok(AnyStore::Dynamo(DynamoStore::opening(
                client,
                table.clone(),
            )))
        }
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

#[cfg(test)]
mod tests {
    use crate::config::{ApiConfig, FromEnvironment as _};

    /// The configuration `vars` make.
    fn config(vars: &[(&str, &str)]) -> ApiConfig {
        ApiConfig::from_lookup(|name| {
            vars.iter()
                .find(|(key, _)| *key == name)
                .map(|(_, value)| (*value).to_owned())
        })
        .unwrap()
    }

    /// The hosts a start-up with `vars` looks up early, each AWS endpoint named by its
    /// service.
    fn early_hosts(vars: &[(&str, &str)]) -> Vec<String> {
        super::early_hosts(&config(vars), endpoint_named_after)
    }

    /// An endpoint named after its service (`https://secretsmanager.test/`).
    #[allow(clippy::unnecessary_wraps)] // as `aws::endpoint`
    fn endpoint_named_after(service: crate::adapters::aws::Service) -> Option<url::Url> {
        url::Url::parse(&format!("https://{service:?}.test")).ok()
    }

    #[tokio::test]
    async fn start_up_opens_the_secret_read_s_connection_only_where_there_is_a_secret() {
        let early = |vars: &[(&str, &str)]| {
            format!(
                "{:?}",
                super::early_secret_connection(
                    &config(vars),
                    endpoint_named_after,
                    &crate::adapters::EarlyLookups::default(),
                )
            )
        };
        let redis = ("REDIS_URL", "rediss://master.cache.example:6379");
        // GIVEN the AUTH token in a secret THEN its endpoint's connection opens
        let secret = (
            "REDIS_AUTH_SECRET_ARN",
            "arn:aws:secretsmanager:eu-west-1:123456789012:secret:auth-AbCdEf",
        );
        assert!(
            early(&[redis, secret]).contains("secretsmanager.test"),
            "{}",
            early(&[redis, secret])
        );
        // GIVEN IAM authentication, a password in the URL, or no Redis THEN none
        let iam = [
            redis,
            ("REDIS_IAM_USER", "product-api"),
            ("REDIS_IAM_CACHE", "product-catalog"),
        ];
        for vars in [&iam[..], &[redis], &[]] {
            assert_eq!(early(vars), "EarlyConnection(none)", "{vars:?}");
        }
    }

    #[tokio::test]
    async fn the_redis_connection_takes_the_lookups_of_the_sdk_configuration_it_shares() {
        // GIVEN start-up's lookups, which say `localhost` is where it no longer is, in
        // the SDK configuration start-up shares
        let name = crate::adapters::dns::moved_name::MovedLocalhost::open().await;
        let sdk =
            crate::adapters::aws::SharedSdkConfig::default().resolving_with(name.lookups.clone());
        let redis = crate::config::RedisConfig {
            url: format!("redis://localhost:{}", name.port)
                .try_into()
                .unwrap(),
            auth: crate::config::RedisAuth::Url,
            timeout: std::time::Duration::from_millis(50),
        };
        // WHEN Redis is connected to as start-up does
        let (cache, _connecting) =
            super::connect_redis_with(&redis, 1, &sdk, super::UnreadToken::Stop)
                .await
                .unwrap();
        // THEN its first connection goes where start-up's lookup said
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(3);
        while name.reached_early() == 0 {
            assert!(
                std::time::Instant::now() < deadline,
                "not where start-up looked"
            );
            tokio::time::sleep(std::time::Duration::from_millis(5)).await;
        }
        cache.quit().await;
    }

    #[test]
    fn start_up_looks_up_the_hosts_its_first_connections_go_to() {
        let lambda = ("AWS_LAMBDA_RUNTIME_API", "127.0.0.1:9001");
        let table = ("TABLE_NAME", "Products");
        let redis = ("REDIS_URL", "rediss://master.cache.example:6379");
        // GIVEN a Redis with its AUTH token in a secret, and a table
        let secret = (
            "REDIS_AUTH_SECRET_ARN",
            "arn:aws:secretsmanager:eu-west-1:123456789012:secret:auth-AbCdEf",
        );
        // THEN Redis's host, Secrets Manager's and DynamoDB's
        assert_eq!(
            early_hosts(&[lambda, table, redis, secret]),
            [
                "master.cache.example",
                "secretsmanager.test",
                "dynamodb.test"
            ]
        );
        // GIVEN IAM authentication: no secret to read
        let iam = ("REDIS_IAM_USER", "product-api");
        let iam_cache = ("REDIS_IAM_CACHE", "product-catalog");
        assert_eq!(
            early_hosts(&[lambda, table, redis, iam, iam_cache]),
            ["master.cache.example", "dynamodb.test"]
        );
        // GIVEN memcached (its client resolves its nodes), or no shared cache
        let memcached = ("MEMCACHED_URL", "memcache://memcached.example:11211");
        assert_eq!(early_hosts(&[lambda, table, memcached]), ["dynamodb.test"]);
        // GIVEN local mode on the sample catalog and the in-process cache: nothing
        assert!(early_hosts(&[]).is_empty());
    }
}
