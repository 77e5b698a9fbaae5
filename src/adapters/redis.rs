//! [`Cache`] on Redis / ElastiCache through a `fred` pool, created once per process and
//! reused across Lambda invocations.
//!
//! Every command carries a timeout and the pool reconnects by itself: a client with
//! neither hangs while Redis is down and never recovers after it restarts, which on
//! Lambda would mean a broken cache until the next cold start. TLS (`rediss://`) goes
//! through rustls with the system's root certificates.

use std::time::Duration;

use bytes::Bytes;
use fred::prelude::{ClientLike, Error as FredError, KeysInterface, LuaInterface, ReconnectPolicy};
use fred::types::config::{Config as FredConfig, TcpConfig, UnresponsiveConfig};
use fred::types::{Expiration, SetOptions, Value};

use crate::config::RedisUrl;
use crate::error::CacheError;
use crate::ports::Cache;

/// How long a new connection (TCP, TLS, AUTH) may take before it counts as failed.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(2);

/// A pooled Redis client.
#[derive(Clone)]
pub struct RedisCache {
    pool: fred::clients::Pool,
}

impl RedisCache {
    /// Builds the pool and starts connecting in the background; commands sent before
    /// the connection is up wait for it, within their timeout.
    ///
    /// # Errors
    /// [`CacheError`] when the URL is not one `fred` accepts.
    pub fn connect(
        url: &RedisUrl,
        command_timeout: Duration,
        pool_size: usize,
    ) -> Result<Self, CacheError> {
        let config =
            FredConfig::from_url(url.as_str()).map_err(|err| CacheError::new("configure", err))?;
        let pool = fred::types::Builder::from_config(config)
            .with_performance_config(|perf| perf.default_command_timeout = command_timeout)
            .with_connection_config(|conn| {
                conn.connection_timeout = CONNECT_TIMEOUT;
                conn.internal_command_timeout = CONNECT_TIMEOUT;
                // A failed read is served from the table; retrying it would only add latency.
                conn.max_command_attempts = 1;
                conn.tcp = TcpConfig {
                    nodelay: Some(true),
                    ..TcpConfig::default()
                };
                // A connection whose replies stop coming (frozen server, dropped route)
                // is closed and re-dialled instead of waited on forever.
                conn.unresponsive = UnresponsiveConfig {
                    max_timeout: Some(Duration::from_secs(2)),
                    interval: Duration::from_millis(500),
                };
            })
            // Retry for ever, 50 ms doubling to 2 s between attempts.
            .set_policy(ReconnectPolicy::new_exponential(0, 50, 2_000, 2))
            .build_pool(pool_size.max(1))
            .map_err(|err| CacheError::new("configure", err))?;
        pool.prefer_connected(true);
        // The connection tasks run for the life of the process; their handles are not needed.
        drop(pool.connect_pool());
        Ok(Self { pool })
    }

    /// Waits until every connection is up, at most `limit`.
    ///
    /// # Errors
    /// [`CacheError`] when Redis is not reachable in time; the pool keeps trying.
    pub async fn wait_connected(&self, limit: Duration) -> Result<(), CacheError> {
        match tokio::time::timeout(limit, self.pool.wait_for_connect()).await {
            Ok(result) => result.map_err(|err| CacheError::new("connect", err)),
            Err(elapsed) => Err(CacheError::new("connect", elapsed)),
        }
    }

    /// Closes the connections (for tests and orderly shutdown).
    pub async fn quit(&self) {
        let _ = self.pool.quit().await;
    }
}

/// Compare-and-set for one key: replace the value only if it is still the lease.
/// Single-key, so it runs unchanged on a cluster.
const FILL_IF_LEASED: &str = r"
if redis.call('GET', KEYS[1]) == ARGV[1] then
  redis.call('SET', KEYS[1], ARGV[2], 'PX', ARGV[3])
  return 1
end
return 0";

fn ttl_millis(ttl: Duration) -> i64 {
    // Config bounds TTLs to 30 days, but never send PX 0 (an error in Redis).
    i64::try_from(ttl.as_millis()).unwrap_or(i64::MAX).max(1)
}

impl RedisCache {
    /// The value under `key`; for tools and tests (the read path uses
    /// [`Cache::read_or_lease`]).
    ///
    /// # Errors
    /// [`CacheError`] when Redis cannot answer in time.
    pub async fn get(&self, key: &str) -> Result<Option<Bytes>, CacheError> {
        self.pool
            .get::<Option<Bytes>, _>(key)
            .await
            .map_err(|err: FredError| CacheError::new("GET", err))
    }
}

impl Cache for RedisCache {
    async fn read_or_lease(
        &self,
        key: &str,
        lease: Bytes,
        ttl: Duration,
    ) -> Result<Option<Bytes>, CacheError> {
        // SET key lease NX PX ttl GET: NX together with GET needs Redis 7.0 or Valkey;
        // ElastiCache runs both.
        let expiry = Some(Expiration::PX(ttl_millis(ttl)));
        self.pool
            .set(key, lease, expiry, Some(SetOptions::NX), true)
            .await
            .map_err(|err| CacheError::new("SET NX GET", err))
    }

    async fn fill(
        &self,
        key: &str,
        lease: Bytes,
        value: Bytes,
        ttl: Duration,
    ) -> Result<bool, CacheError> {
        let args = vec![
            Value::Bytes(lease),
            Value::Bytes(value),
            Value::Integer(ttl_millis(ttl)),
        ];
        let replaced: i64 = self
            .pool
            .eval(FILL_IF_LEASED, key, args)
            .await
            .map_err(|err| CacheError::new("EVAL", err))?;
        Ok(replaced == 1)
    }

    async fn set(&self, key: &str, value: Bytes, ttl: Duration) -> Result<(), CacheError> {
        let expiry = Some(Expiration::PX(ttl_millis(ttl)));
        self.pool
            .set::<(), _, _>(key, value, expiry, None, false)
            .await
            .map_err(|err| CacheError::new("SET", err))
    }

    async fn delete(&self, key: &str) -> Result<(), CacheError> {
        self.pool
            .del::<i64, _>(key)
            .await
            .map(drop)
            .map_err(|err| CacheError::new("DEL", err))
    }
}
