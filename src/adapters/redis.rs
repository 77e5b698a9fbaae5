//! [`Cache`] on Redis / ElastiCache through a `fred` pool, created once per process and
//! reused across Lambda invocations.
//!
//! Every command carries a timeout and the pool reconnects by itself: a client with
//! neither hangs while Redis is down and never recovers after it restarts, which on
//! Lambda would mean a broken cache until the next cold start. That includes the first
//! connection: Redis may be unreachable when the process starts (an ElastiCache
//! failover) and reachable a second later. TLS (`rediss://`) goes through rustls with
//! the system's root certificates.
//!
//! A node that turns into a replica under an open connection (a failover) answers
//! READONLY; the pool then reconnects, which follows the primary endpoint's DNS name to
//! the new primary.
//!
//! Errors are sorted for the breaker ([`CacheErrorKind`]): a timeout or a lost
//! connection is an outage, while a reply error about one key (`WRONGTYPE`) is not.

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use fred::prelude::{
    ClientLike, Error as FredError, ErrorKind, EventInterface, KeysInterface, LuaInterface,
    ReconnectPolicy,
};
use fred::types::config::{
    Config as FredConfig, CredentialProvider, ReconnectError, Server, TcpConfig, TlsConnector,
    UnresponsiveConfig,
};
use fred::types::{Expiration, SetOptions, Value};
use tokio::sync::{Notify, watch};

use crate::adapters::dns::EarlyLookups;
use crate::adapters::elasticache_iam::IamTokens;
use crate::config::RedisUrl;
use crate::error::{CacheError, CacheErrorKind};
use crate::ports::Cache;
use crate::tls::TrustedRoots;

/// How long a new connection may take before it counts as failed: TCP and TLS, and
/// then, separately, its set-up (AUTH, with the wait for a pending token, and fred's own
/// commands).
const CONNECT_TIMEOUT: Duration = Duration::from_secs(2);

/// A pooled Redis client.
#[derive(Clone)]
pub struct RedisCache {
    pool: fred::clients::Pool,
    /// Set by [`RedisCache::quit`], and closed when the last clone is dropped: either
    /// way the connection tasks stop and are not started again ([`keep_connecting`]).
    quitting: Arc<watch::Sender<bool>>,
}

/// The TLS settings of `rediss://` connections: rustls trusting the configured roots
/// (`TRUSTED_ROOTS`). Loading the system's roots is several milliseconds of CPU, so a
/// cold start builds this on a blocking thread while the AUTH token is on its way,
/// instead of after it.
#[derive(Clone)]
pub struct RedisTls(TlsConnector);

impl RedisTls {
    /// Loads `roots`.
    ///
    /// # Errors
    /// [`CacheError`] when they cannot be read or none is usable.
    pub fn trusting(roots: TrustedRoots) -> Result<Self, CacheError> {
        roots
            .client_config()
            .map(|config| Self(config.into()))
            .map_err(|err| CacheError::new("configure TLS", err))
    }
}

/// The AUTH token: first still being read (a cold start reads it from Secrets Manager),
/// then the one in use. A pool given one resolves the name and opens TCP and TLS at
/// once, and waits for the token only to send AUTH: the secret's round trips and the
/// connection's overlap instead of following each other. Reconnections use the token in
/// use at the time, and when Redis refuses it (`WRONGPASS`, `NOAUTH`: the token was
/// rotated) the pool tells the [`TokenSender`], which may read a new one.
#[derive(Clone)]
pub struct PendingToken {
    state: watch::Receiver<TokenState>,
    refused: std::sync::Arc<Notify>,
}

/// Delivers the token to every pool holding its [`PendingToken`], and hears when Redis
/// refuses it. Dropped without a token (the read failed, start-up is stopping), it ends
/// their connection tasks.
pub struct TokenSender {
    state: watch::Sender<TokenState>,
    refused: std::sync::Arc<Notify>,
}

enum TokenState {
    Pending,
    Arrived(String),
}

/// How long one connection attempt waits for the token: less than fred's budget for the
/// whole set-up ([`CONNECT_TIMEOUT`]), so that a slow secret read is reported as what it
/// is, not as a Redis timeout. The next attempt waits again.
const TOKEN_WAIT: Duration = Duration::from_millis(1_500);

/// Why connections stop when the token will not come; start-up reports the failed read
/// itself, naming the secret.
const TOKEN_NOT_READ: &str = "the AUTH token could not be read";

impl PendingToken {
    /// A token to come, and where to send it.
    #[must_use]
    pub fn new() -> (TokenSender, Self) {
        let (state, receiver) = watch::channel(TokenState::Pending);
        let refused = std::sync::Arc::new(Notify::new());
        (
            TokenSender {
                state,
                refused: std::sync::Arc::clone(&refused),
            },
            Self {
                state: receiver,
                refused,
            },
        )
    }

    /// The token, once it has come.
    async fn wait(&self) -> Result<String, FredError> {
        let mut state = self.state.clone();
        let arrived = tokio::time::timeout(
            TOKEN_WAIT,
            state.wait_for(|state| matches!(state, TokenState::Arrived(_))),
        )
        .await;
        match arrived {
            Ok(Ok(state)) => match &*state {
                TokenState::Arrived(token) => Ok(token.clone()),
                TokenState::Pending => unreachable!("wait_for returned a pending token"),
            },
            // The sender is gone without a token: a `Config` error ends the connection
            // task instead of reconnecting for ever.
            Ok(Err(_)) => Err(FredError::new(ErrorKind::Config, TOKEN_NOT_READ)),
            // Not `Auth`: that kind is kept for the server's refusals, which ask for a
            // new token ([`PendingToken::refused_by_redis`]); this one is still coming.
            Err(_) => Err(FredError::new(
                ErrorKind::Timeout,
                "the AUTH token has not come from Secrets Manager yet",
            )),
        }
    }

    /// Tells the sender when a connection failed because Redis refused the token. Many
    /// refusals before the sender looks count as one.
    fn refused_by_redis(&self, error: &FredError) {
        if *error.kind() == ErrorKind::Auth {
            self.refused.notify_one();
        }
    }
}

impl TokenSender {
    /// Makes `token` the one every later connection sends. Returns whether it differs
    /// from the token in use.
    pub fn send(&self, token: String) -> bool {
        self.state.send_if_modified(|state| {
            let changed = !matches!(state, TokenState::Arrived(used) if *used == token);
            *state = TokenState::Arrived(token);
            changed
        })
    }

    /// [`TokenSender::send`] for the first token, at start-up: then lets the
    /// connections waiting for it run before the caller goes on. On one thread (a
    /// Lambda's runtime) they would otherwise send `AUTH` only when start-up next
    /// yields, after the rest of it and the Runtime API client's set-up, all on the cold
    /// start's chain, while `AUTH`'s round trip could have been under way (measured:
    /// `docs/BENCHMARKS.md`, "the token handed over before start-up goes on").
    pub async fn hand_over(&self, token: String) {
        self.send(token);
        tokio::task::yield_now().await;
    }

    /// Waits until Redis refuses the token in use; `false` once no pool holds it.
    async fn refused(&self) -> bool {
        tokio::select! {
            () = self.refused.notified() => true,
            () = self.state.closed() => false,
        }
    }

    /// Reads the token again with `read` each time Redis refuses the one in use, for as
    /// long as a pool holds it: a warm process follows a rotation of the secret instead
    /// of bypassing the cache until its next cold start. A read that brings no new
    /// token (the secret not updated yet, or wrong) spaces out the next one, from 1 s
    /// doubling to 5 min, so that a wrong secret costs a read every few minutes, not one
    /// per reconnection attempt; 5 min without a refusal start the spacing over.
    ///
    /// When no token has come yet (start-up's read failed in a way that may pass), it
    /// first reads until one does, from 1 s doubling to [`FIRST_READ_MAX`].
    pub async fn follow_rotations<F, Fut, E>(self, mut read: F)
    where
        F: FnMut() -> Fut,
        Fut: std::future::Future<Output = Result<String, E>>,
        E: std::error::Error,
    {
        let mut first_reads = first_read_pauses();
        while matches!(*self.state.borrow(), TokenState::Pending) {
            let pause = first_reads.next().unwrap_or(FIRST_READ_MAX);
            tokio::select! {
                () = tokio::time::sleep(pause) => {}
                () = self.state.closed() => return,
            }
            match read().await {
                Ok(token) => {
                    self.send(token);
                    tracing::info!("the AUTH token was read; connecting to Redis with it");
                }
                Err(err) => {
                    tracing::warn!(error = %crate::error::report(&err), "the AUTH token could not be read yet; the cache stays bypassed");
                }
            }
        }
        let mut pauses = reread_pauses();
        loop {
            let waiting = tokio::time::Instant::now();
            if !self.refused().await {
                return;
            }
            // No refusal for that long: the trouble that spaced the reads out is over,
            // and this one (a new rotation) starts the spacing over.
            if waiting.elapsed() >= REREAD_MAX {
                pauses = reread_pauses();
            }
            let pause = match read().await.map(|token| self.send(token)) {
                Ok(true) => {
                    tracing::info!(
                        "Redis refused the AUTH token; a new one was read from the secret"
                    );
                    pauses = reread_pauses();
                    REREAD_MIN
                }
                Ok(false) => {
                    tracing::warn!("Redis refused the AUTH token, and the secret still holds it");
                    pauses.next().unwrap_or(REREAD_MAX)
                }
                Err(err) => {
                    tracing::warn!(error = %crate::error::report(&err), "Redis refused the AUTH token, and the secret could not be read again");
                    pauses.next().unwrap_or(REREAD_MAX)
                }
            };
            tokio::time::sleep(pause).await;
        }
    }
}

/// The shortest time between two reads of the token after refusals.
const REREAD_MIN: Duration = Duration::from_secs(1);
/// The longest, while reads bring no token Redis takes.
const REREAD_MAX: Duration = Duration::from_secs(300);

/// The longest time between two reads of a token that has not come yet: the cache is
/// bypassed meanwhile.
const FIRST_READ_MAX: Duration = Duration::from_secs(30);

fn first_read_pauses() -> backon::ExponentialBackoff {
    use backon::BackoffBuilder as _;
    backon::ExponentialBuilder::default()
        .with_min_delay(REREAD_MIN)
        .with_max_delay(FIRST_READ_MAX)
        .without_max_times()
        .build()
}

fn reread_pauses() -> backon::ExponentialBackoff {
    use backon::BackoffBuilder as _;
    backon::ExponentialBuilder::default()
        .with_min_delay(REREAD_MIN)
        .with_max_delay(REREAD_MAX)
        .without_max_times()
        .build()
}

/// fred's source of `AUTH` credentials: the URL's user name, and the token.
struct TokenCredentials {
    username: Option<String>,
    token: PendingToken,
}

impl std::fmt::Debug for TokenCredentials {
    // Never the token itself.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let arrived = matches!(*self.token.state.borrow(), TokenState::Arrived(_));
        f.debug_struct("TokenCredentials")
            .field("username", &self.username)
            .field("arrived", &arrived)
            .finish()
    }
}

#[async_trait::async_trait]
impl CredentialProvider for TokenCredentials {
    async fn fetch(
        &self,
        _: Option<&Server>,
    ) -> Result<(Option<String>, Option<String>), FredError> {
        Ok((self.username.clone(), Some(self.token.wait().await?)))
    }
}

/// fred's source of `AUTH` credentials for an IAM-enabled ElastiCache user: the user id,
/// and a token signed for this connection.
struct IamCredentials(IamTokens);

/// How often fred sends each connection `AUTH` again with a fresh token: ElastiCache
/// closes an IAM-authenticated connection 12 hours after its last `AUTH`, and all of a
/// process's connections, opened together, would close together, failing what they
/// carry at that moment.
const IAM_REAUTH_INTERVAL: Duration = Duration::from_secs(3600);

impl std::fmt::Debug for IamCredentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("IamCredentials")
            .field("user", &self.0.user())
            .finish()
    }
}

#[async_trait::async_trait]
impl CredentialProvider for IamCredentials {
    async fn fetch(
        &self,
        _: Option<&Server>,
    ) -> Result<(Option<String>, Option<String>), FredError> {
        // `Auth`: the connection is retried, with a new token, on the reconnect policy.
        let token = self.0.token().await.map_err(|err| {
            FredError::new(
                ErrorKind::Auth,
                format!(
                    "cannot sign an IAM authentication token: {}",
                    crate::error::report(&*err)
                ),
            )
        })?;
        Ok((Some(self.0.user().to_owned()), Some(token)))
    }

    fn refresh_interval(&self) -> Option<Duration> {
        Some(IAM_REAUTH_INTERVAL)
    }
}

/// Where connections get the password `AUTH` sends.
#[derive(Clone)]
pub enum RedisPassword {
    /// The URL's, if it holds one.
    Url,
    /// A token read from a secret, perhaps still on its way.
    Token(PendingToken),
    /// A token signed for each connection, for an IAM-enabled ElastiCache user.
    Iam(IamTokens),
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
        Self::connect_with(
            url,
            None,
            RedisPassword::Url,
            command_timeout,
            pool_size,
            EarlyLookups::default(),
        )
    }

    /// [`RedisCache::connect`], with TLS settings built beforehand for a `rediss://`
    /// URL (`None`: the system's roots, loaded here), where `AUTH`'s password comes
    /// from, and the names start-up looked up (the first connection to a host takes
    /// its answer).
    ///
    /// # Errors
    /// [`CacheError`] when the URL is not one `fred` accepts, or TLS cannot be set up.
    pub fn connect_with(
        url: &RedisUrl,
        tls: Option<RedisTls>,
        password: RedisPassword,
        command_timeout: Duration,
        pool_size: usize,
        lookups: EarlyLookups,
    ) -> Result<Self, CacheError> {
        let mut config = match url.as_str().strip_prefix("rediss") {
            // Parsed as the plain-text URL and given our TLS settings: fred, given
            // rediss://, would load the system's roots itself, whatever TRUSTED_ROOTS says.
            Some(rest) => {
                let tls = match tls {
                    Some(RedisTls(tls)) => tls,
                    None => RedisTls::trusting(TrustedRoots::System)?.0,
                };
                let mut config = FredConfig::from_url(&format!("redis{rest}"))
                    .map_err(|err| CacheError::new("configure", err))?;
                config.tls = Some(tls.into());
                config
            }
            None => FredConfig::from_url(url.as_str())
                .map_err(|err| CacheError::new("configure", err))?,
        };
        let token = match password {
            RedisPassword::Url => None,
            RedisPassword::Token(token) => {
                config.credential_provider = Some(std::sync::Arc::new(TokenCredentials {
                    username: config.username.clone(),
                    token: token.clone(),
                }));
                Some(token)
            }
            RedisPassword::Iam(tokens) => {
                config.credential_provider = Some(std::sync::Arc::new(IamCredentials(tokens)));
                None
            }
        };
        Self::start(config, token, command_timeout, pool_size, lookups)
    }

    /// The pool for `config`, its connections started, resolving through `lookups`;
    /// `token` is told of Redis's refusals.
    fn start(
        mut config: FredConfig,
        token: Option<PendingToken>,
        command_timeout: Duration,
        pool_size: usize,
        lookups: EarlyLookups,
    ) -> Result<Self, CacheError> {
        // Without fail-fast, fred waits its reconnect policy's first delay (1 ms here,
        // up to 2 on tokio's timer) before even the first connection: on a cold start's
        // chain. With it, the first attempt goes at once, and when it fails fred ends the
        // connection task for good, however lenient the policy: `keep_connecting` starts
        // it again, so a process started while Redis is unreachable still uses it later.
        config.fail_fast = true;
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
                // After a failover that keeps the old primary up as a replica, the open
                // connection answers every write (each read here is `SET NX GET`) with
                // READONLY for good; reconnecting follows the endpoint to the new
                // primary. LOADING (a restarted node reading its data) and CLUSTERDOWN
                // also end by reconnecting.
                conn.reconnect_errors = vec![
                    ReconnectError::ReadOnly,
                    ReconnectError::Loading,
                    ReconnectError::ClusterDown,
                ];
                // A connection whose replies stop coming (frozen server, dropped route)
                // is closed and re-dialled instead of waited on forever.
                conn.unresponsive = UnresponsiveConfig {
                    max_timeout: Some(Duration::from_secs(2)),
                    interval: Duration::from_millis(500),
                };
            })
            .set_policy(reconnect_policy())
            .build_pool(pool_size.max(1))
            .map_err(|err| CacheError::new("configure", err))?;
        pool.prefer_connected(true);
        let connection_errors = ConnectionErrors::default();
        let quitting = Arc::new(watch::Sender::new(false));
        for client in pool.clients() {
            // Both run for the life of the process.
            drop(tokio::spawn(listen_to_connection_errors(
                client.error_rx(),
                connection_errors.clone(),
                token.clone(),
            )));
            drop(tokio::spawn(keep_connecting(
                client.clone(),
                Arc::new(lookups.clone()),
                quitting.subscribe(),
            )));
        }
        Ok(Self { pool, quitting })
    }

    /// Waits until every connection is up, at most `limit`.
    ///
    /// # Errors
    /// [`CacheError`] when Redis is not reachable in time; the pool keeps trying.
    pub async fn wait_connected(&self, limit: Duration) -> Result<(), CacheError> {
        // A failed first attempt is told to the waiters (fail-fast); keep waiting for
        // the attempts after it.
        let mut failed = None;
        let connected = tokio::time::timeout(limit, async {
            loop {
                match self.pool.wait_for_connect().await {
                    Ok(()) => return,
                    Err(err) => failed = Some(err),
                }
            }
        })
        .await;
        match (connected, failed) {
            (Ok(()), _) => Ok(()),
            (Err(_), Some(err)) => Err(CacheError::new("connect", err)),
            (Err(elapsed), None) => Err(CacheError::new("connect", elapsed)),
        }
    }

    /// Closes the connections (for tests and orderly shutdown) for good: `QUIT` to those
    /// that are up, and any connection task still starting is stopped. So are they all
    /// once the last clone of the cache is dropped.
    pub async fn quit(&self) {
        let _ = self.pool.quit().await;
        self.quitting.send_replace(true);
    }
}

/// Hears a client's connection errors: logs them, and tells the token's sender of the
/// server's refusals. fred's own `on_error` listener stops for good once it falls
/// behind its channel (32 errors, as when many connections fail at once while the one
/// runtime thread is busy); this one counts what it missed as a possible refusal (a
/// read of the secret, spaced out by [`TokenSender::follow_rotations`]) and goes on.
async fn listen_to_connection_errors(
    mut errors: tokio::sync::broadcast::Receiver<(FredError, Option<Server>)>,
    log: ConnectionErrors,
    token: Option<PendingToken>,
) {
    use tokio::sync::broadcast::error::RecvError;
    loop {
        match errors.recv().await {
            Ok((error, server)) => {
                log.report(&error, server.as_ref());
                if let Some(token) = &token {
                    token.refused_by_redis(&error);
                }
            }
            Err(RecvError::Lagged(missed)) => {
                tracing::warn!(
                    missed,
                    "Redis connection errors came faster than they were read"
                );
                if let Some(token) = &token {
                    token.refused.notify_one();
                }
            }
            Err(RecvError::Closed) => return,
        }
    }
}

/// Logs why connections fail (refused, TLS, `WRONGPASS`, `READONLY`): without it, a
/// command waiting for a connection that never comes only reports its own timeout, and
/// an operator with a wrong password would look for a slow network. While an outage
/// lasts the same reason is logged once a minute, not at every reconnection attempt.
#[derive(Clone, Default)]
struct ConnectionErrors {
    last: std::sync::Arc<std::sync::Mutex<Option<(String, std::time::Instant)>>>,
}

impl ConnectionErrors {
    const REPEAT_AFTER: Duration = Duration::from_secs(60);

    fn report(&self, error: &FredError, server: Option<&fred::types::config::Server>) {
        // Not a Redis fault, and start-up is stopping with the failed read's own error.
        if *error.kind() == ErrorKind::Config && error.details() == TOKEN_NOT_READ {
            return;
        }
        let reason = error.to_string();
        let mut last = self
            .last
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let repeated = last
            .as_ref()
            .is_some_and(|(seen, at)| *seen == reason && at.elapsed() < Self::REPEAT_AFTER);
        if !repeated {
            let server = server.map(ToString::to_string);
            tracing::warn!(reason = %reason, server, "Redis connection failed; retrying");
            *last = Some((reason, std::time::Instant::now()));
        }
    }
}

/// Runs a client's connection task, and starts it again on [`reconnect_policy`]'s delays
/// whenever it ends on a connection error: with fail-fast, fred ends it when the first
/// connection fails (Redis unreachable, refusing the token, timing out). Connections
/// lost later are re-dialled by fred itself, within the task. A task that panicked is
/// started again too (its client would otherwise fail every command for the life of the
/// process). Ends when the client quits, and on an error no retry mends (a bad
/// configuration, or a token start-up could not read, as it stops).
async fn keep_connecting(
    client: fred::clients::Client,
    resolver: Arc<dyn fred::types::Resolve>,
    mut quitting: watch::Receiver<bool>,
) {
    // Before the first connection: it is the one that takes start-up's lookup.
    client.set_resolver(resolver).await;
    let mut policy = reconnect_policy();
    loop {
        // Read apart from the `if`: the borrow's guard must not live across an await.
        let quit = *quitting.borrow();
        if quit || quitting.has_changed().is_err() {
            return;
        }
        let mut task = client.connect();
        let ended = tokio::select! {
            ended = &mut task => Some(ended),
            _ = quitting.wait_for(|quit| *quit) => None,
        };
        let Some(ended) = ended else {
            // Quit, or the last clone of the cache dropped. fred's `quit` ends a task
            // that is up, and with it the task that refreshes an IAM token (which holds
            // the client, so it would outlive the cache); it does nothing to a task that
            // has not taken its command channel yet (one just started), which would then
            // connect for good: that one is aborted.
            let _ = tokio::time::timeout(Duration::from_millis(100), client.quit()).await;
            task.abort();
            return;
        };
        match ended {
            Ok(Err(err)) if !matches!(err.kind(), ErrorKind::Config | ErrorKind::Url) => {}
            Err(join) if join.is_panic() => {
                tracing::error!(
                    panic = crate::runtime::panic_message(join.into_panic().as_ref()),
                    "the Redis connection task panicked; starting it again"
                );
            }
            // Quit, or an error fred's own policy would not retry either.
            _ => return,
        }
        let delay = Duration::from_millis(policy.next_delay().unwrap_or(2_000));
        if tokio::time::timeout(delay, quitting.wait_for(|quit| *quit))
            .await
            .is_ok()
        {
            return;
        }
    }
}

/// Retry for ever, 1 ms growing fourfold to 2 s between attempts. The first delay is
/// kept short: it is the one after a first connection that failed. No jitter: one
/// process holds only a few connections.
fn reconnect_policy() -> ReconnectPolicy {
    let mut policy = ReconnectPolicy::new_exponential(0, 1, 2_000, 4);
    policy.set_jitter(0);
    policy
}

/// Compare-and-set for one key: replace the value only if it is still the lease.
/// Single-key, so it runs unchanged on a cluster.
const FILL_IF_LEASED: &str = r"
if redis.call('GET', KEYS[1]) == ARGV[1] then
  redis.call('SET', KEYS[1], ARGV[2], 'PX', ARGV[3])
  return 1
end
return 0";

/// [`FILL_IF_LEASED`], and when it filled, also the last-known-good copy under KEYS[2]
/// (same slot as KEYS[1], see `cache_entry::stale_key`): one round trip, and a copy is
/// never written by a reader whose lease an invalidation took.
const FILL_IF_LEASED_KEEPING_COPY: &str = r"
if redis.call('GET', KEYS[1]) == ARGV[1] then
  redis.call('SET', KEYS[1], ARGV[2], 'PX', ARGV[3])
  redis.call('SET', KEYS[2], ARGV[4], 'PX', ARGV[5])
  return 1
end
return 0";

/// Sorts a `fred` error into an outage or a problem of one call or one key, so that one
/// bad key cannot open the breaker and take the cache from every other key.
fn cache_error(operation: &'static str, key: &str, err: FredError) -> CacheError {
    // A script relays the error of the command inside it: code first on Redis 7
    // (`WRONGTYPE …`), after a prefix on older servers (`ERR Error running script …`).
    let kind = if err.details().contains("WRONGTYPE") {
        CacheErrorKind::WrongType {
            key: key.to_owned(),
        }
    } else {
        match err.kind() {
            ErrorKind::InvalidArgument
            | ErrorKind::InvalidCommand
            | ErrorKind::Parse
            | ErrorKind::NotFound => CacheErrorKind::Rejected,
            // Timeouts, I/O, refused or lost connections, cluster and AUTH trouble, and
            // server errors that hold for every key (LOADING, READONLY, OOM, …).
            _ => CacheErrorKind::Unavailable,
        }
    };
    CacheError::with_kind(operation, kind, err)
}

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
        Box::pin(self.pool.get::<Option<Bytes>, _>(key))
            .await
            .map_err(|err| cache_error("GET", key, err))
    }
}

// Every fred command in this file is boxed. Its futures are large (about 7 KB: they carry
// fred's reconnection and backchannel machinery); awaited in place, every async layer
// above them (service, HTTP, runtime) would be as large and move that much memory at
// each call, on every request. Boxed, a command costs one allocation.
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
        Box::pin(
            self.pool
                .set(key, lease, expiry, Some(SetOptions::NX), true),
        )
        .await
        .map_err(|err| cache_error("SET NX GET", key, err))
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
        let replaced: i64 = Box::pin(self.pool.eval(FILL_IF_LEASED, key, args))
            .await
            .map_err(|err| cache_error("EVAL", key, err))?;
        Ok(replaced == 1)
    }

    async fn set(&self, key: &str, value: Bytes, ttl: Duration) -> Result<(), CacheError> {
        let expiry = Some(Expiration::PX(ttl_millis(ttl)));
        Box::pin(self.pool.set::<(), _, _>(key, value, expiry, None, false))
            .await
            .map_err(|err| cache_error("SET", key, err))
    }

    async fn delete(&self, key: &str) -> Result<(), CacheError> {
        Box::pin(self.pool.del::<i64, _>(key))
            .await
            .map(drop)
            .map_err(|err| cache_error("DEL", key, err))
    }

    async fn read(&self, key: &str) -> Result<Option<Bytes>, CacheError> {
        self.get(key).await
    }

    async fn fill_keeping_copy(
        &self,
        key: &str,
        lease: Bytes,
        value: Bytes,
        ttl: Duration,
        (copy_key, copy, copy_ttl): (&str, Bytes, Duration),
    ) -> Result<bool, CacheError> {
        let args = vec![
            Value::Bytes(lease),
            Value::Bytes(value),
            Value::Integer(ttl_millis(ttl)),
            Value::Bytes(copy),
            Value::Integer(ttl_millis(copy_ttl)),
        ];
        let replaced: i64 = Box::pin(self.pool.eval(
            FILL_IF_LEASED_KEEPING_COPY,
            vec![key, copy_key],
            args,
        ))
        .await
        .map_err(|err| cache_error("EVAL", key, err))?;
        Ok(replaced == 1)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn iam_connections_authenticate_again_well_inside_elasticache_s_12_hours() {
        let user = crate::config::IamUser::new("product-api", "products", false).unwrap();
        let credentials = IamCredentials(IamTokens::new(
            crate::adapters::aws::SharedSdkConfig::default(),
            user,
        ));
        let interval = credentials.refresh_interval().unwrap();
        assert!(
            interval <= Duration::from_secs(12 * 3600) / 4,
            "{interval:?}"
        );
        // (and the token never shows in logs)
        assert!(!format!("{credentials:?}").contains("X-Amz"));
    }

    #[tokio::test(start_paused = true)]
    async fn a_pending_token_is_waited_for_within_the_set_up_budget() {
        // GIVEN a token still being read
        let (sender, pending) = PendingToken::new();
        // WHEN a connection asks before it comes THEN it waits less than fred's set-up
        // budget and says what it waits for
        let started = tokio::time::Instant::now();
        let err = pending.wait().await.unwrap_err();
        assert_eq!(started.elapsed(), TOKEN_WAIT);
        assert!(TOKEN_WAIT < CONNECT_TIMEOUT);
        // (not `Auth`, which would ask for the token to be read again)
        assert_eq!(*err.kind(), ErrorKind::Timeout);
        assert!(err.details().contains("Secrets Manager"), "{err}");
        // WHEN it comes THEN a connection waiting for it and later ones get it
        let waiting = tokio::spawn({
            let pending = pending.clone();
            async move { pending.wait().await }
        });
        tokio::time::sleep(Duration::from_millis(100)).await;
        sender.send("t0k%41 en".to_owned());
        assert_eq!(waiting.await.unwrap().unwrap(), "t0k%41 en");
        let started = tokio::time::Instant::now();
        assert_eq!(pending.wait().await.unwrap(), "t0k%41 en");
        assert_eq!(started.elapsed(), Duration::ZERO);
    }

    #[tokio::test]
    async fn a_token_that_will_not_come_ends_the_connections_without_a_redis_warning() {
        // GIVEN a token whose read failed (its sender dropped)
        let (sender, pending) = PendingToken::new();
        drop(sender);
        // WHEN a connection asks THEN the error is one fred does not reconnect after
        let err = pending.wait().await.unwrap_err();
        assert_eq!(*err.kind(), ErrorKind::Config);
        // AND it is not logged as a Redis connection failure (the read's error is)
        let errors = ConnectionErrors::default();
        errors.report(&err, None);
        assert!(errors.last.lock().unwrap().is_none());
    }

    #[tokio::test(start_paused = true)]
    async fn only_the_server_s_refusals_ask_for_a_new_token_and_many_count_as_one() {
        // GIVEN a token in use
        let (sender, pending) = PendingToken::new();
        assert!(sender.send("old".to_owned()));
        // WHEN connections fail for other reasons THEN nothing is asked
        pending.refused_by_redis(&FredError::new(ErrorKind::IO, "connection refused"));
        pending.refused_by_redis(&FredError::new(ErrorKind::Timeout, "not come yet"));
        let asked = tokio::time::timeout(Duration::from_secs(60), sender.refused()).await;
        assert!(
            asked.is_err(),
            "asked for a new token after a non-AUTH failure"
        );
        // WHEN Redis refuses the token on three connections THEN the sender hears it once
        for _ in 0..3 {
            pending.refused_by_redis(&FredError::new(ErrorKind::Auth, "WRONGPASS invalid"));
        }
        assert!(sender.refused().await);
        let again = tokio::time::timeout(Duration::from_secs(60), sender.refused()).await;
        assert!(again.is_err(), "three refusals were heard more than once");
        // AND sending the same token again is no change, a new one is, and connections
        // get it
        assert!(!sender.send("old".to_owned()));
        assert!(sender.send("new".to_owned()));
        assert_eq!(pending.wait().await.unwrap(), "new");
        // WHEN no pool holds the token any more THEN the sender stops listening
        drop(pending);
        assert!(!sender.refused().await);
    }

    /// A secret for [`TokenSender::follow_rotations`]: what it answers is the test's to
    /// set, and its reads are counted.
    #[derive(Clone)]
    struct FakeSecret(std::sync::Arc<std::sync::Mutex<(u32, Result<&'static str, &'static str>)>>);

    impl FakeSecret {
        fn answering(answer: Result<&'static str, &'static str>) -> Self {
            Self(std::sync::Arc::new(std::sync::Mutex::new((0, answer))))
        }

        fn answer(&self, answer: Result<&'static str, &'static str>) {
            self.0.lock().unwrap().1 = answer;
        }

        fn reads(&self) -> u32 {
            self.0.lock().unwrap().0
        }

        fn reader(
            &self,
        ) -> impl FnMut() -> std::future::Ready<Result<String, std::io::Error>> + use<> {
            let secret = self.clone();
            move || {
                let mut state = secret.0.lock().unwrap();
                state.0 += 1;
                std::future::ready(state.1.map(str::to_owned).map_err(std::io::Error::other))
            }
        }
    }

    #[tokio::test(start_paused = true)]
    async fn a_refused_token_is_read_again_and_reads_that_bring_nothing_new_are_spaced_out() {
        // GIVEN a token in use, and a secret whose reads are counted
        let (sender, pending) = PendingToken::new();
        sender.send("old".to_owned());
        let secret = FakeSecret::answering(Ok("old"));
        let following = tokio::spawn(sender.follow_rotations(secret.reader()));
        let reads = || secret.reads();
        let refuse = || pending.refused_by_redis(&FredError::new(ErrorKind::Auth, "WRONGPASS"));
        // WHEN nothing is refused THEN nothing is read
        tokio::time::sleep(Duration::from_secs(60)).await;
        assert_eq!(reads(), 0);

        // WHEN the secret is rotated and Redis refuses the old token THEN one read
        // brings the new one, which the next connection sends
        secret.answer(Ok("new"));
        refuse();
        tokio::time::sleep(Duration::from_millis(10)).await;
        assert_eq!(reads(), 1);
        assert_eq!(pending.wait().await.unwrap(), "new");

        // WHEN Redis goes on refusing it, ten times a second, for 20 s THEN the reads
        // that bring nothing new come 1, 1, 2, 4 and 8 s apart, not one per refusal
        refuse_ten_times_a_second(&pending, 200).await;
        assert_eq!(reads(), 6, "reads at 0, 1, 2, 4, 8 and 16 s");

        // WHEN the secret cannot be read THEN the token in use stays
        secret.answer(Err("AccessDenied"));
        refuse();
        tokio::time::sleep(Duration::from_secs(20)).await;
        assert_eq!(reads(), 7);
        assert_eq!(pending.wait().await.unwrap(), "new");

        // WHEN it holds a newer token again THEN the spacing starts over after it
        secret.answer(Ok("newer"));
        refuse();
        tokio::time::sleep(Duration::from_secs(40)).await;
        assert_eq!(reads(), 8);
        assert_eq!(pending.wait().await.unwrap(), "newer");
        refuse_ten_times_a_second(&pending, 25).await;
        assert_eq!(reads(), 10, "reads at once and 1 s later, not 64 s later");

        // WHEN no pool holds the token any more THEN the task ends
        drop(pending);
        tokio::time::timeout(Duration::from_secs(600), following)
            .await
            .expect("still following a token no pool holds")
            .unwrap();
    }

    #[tokio::test(start_paused = true)]
    async fn a_token_start_up_could_not_read_is_read_again_until_it_comes() {
        // GIVEN no token yet (start-up's read failed in a way that may pass), and a
        // secret that cannot be read for 20 s
        let (sender, pending) = PendingToken::new();
        let secret = FakeSecret::answering(Err("InternalServiceError"));
        let following = tokio::spawn(sender.follow_rotations(secret.reader()));
        let reads = || secret.reads();
        // WHEN time passes THEN it is read again 1, 2, 4 and 8 s apart, not at once (the
        // failed read was start-up's)
        tokio::time::sleep(Duration::from_millis(500)).await;
        assert_eq!(reads(), 0);
        tokio::time::sleep(Duration::from_millis(19_500)).await;
        assert_eq!(reads(), 4, "reads at 1, 3, 7 and 15 s");
        assert!(pending.wait().await.is_err(), "a token came from nowhere");
        // WHEN the secret can be read again THEN the next read brings the token, which
        // connections then send
        secret.answer(Ok("t0ken"));
        tokio::time::sleep(Duration::from_secs(20)).await;
        assert_eq!(reads(), 5, "the read at 31 s");
        assert_eq!(pending.wait().await.unwrap(), "t0ken");
        // AND from then on only a refusal makes it read
        tokio::time::sleep(Duration::from_secs(600)).await;
        assert_eq!(reads(), 5);
        pending.refused_by_redis(&FredError::new(ErrorKind::Auth, "WRONGPASS"));
        tokio::time::sleep(Duration::from_millis(10)).await;
        assert_eq!(reads(), 6);
        // WHEN no pool holds the token any more THEN the task ends
        drop(pending);
        tokio::time::timeout(Duration::from_secs(600), following)
            .await
            .expect("still following a token no pool holds")
            .unwrap();
    }

    #[tokio::test(start_paused = true)]
    async fn reading_a_token_that_never_comes_ends_when_no_pool_waits_for_it() {
        // GIVEN no token yet and a secret that cannot be read
        let (sender, pending) = PendingToken::new();
        let following = tokio::spawn(sender.follow_rotations(|| async {
            Err::<String, _>(std::io::Error::other("ThrottlingException"))
        }));
        tokio::time::sleep(Duration::from_secs(100)).await;
        // WHEN the pools are gone (the process is stopping) THEN so is the task, within
        // the pause it was in
        drop(pending);
        tokio::time::timeout(Duration::from_secs(1), following)
            .await
            .expect("still reading a token no pool waits for")
            .unwrap();
    }

    #[tokio::test(start_paused = true)]
    async fn connection_errors_missed_in_a_burst_count_as_a_refusal_and_listening_goes_on() {
        // GIVEN a token in use and a listener on a channel of two errors
        let (sender, pending) = PendingToken::new();
        sender.send("old".to_owned());
        let (errors, rx) = tokio::sync::broadcast::channel(2);
        let log = ConnectionErrors::default();
        let listening = tokio::spawn(listen_to_connection_errors(
            rx,
            log.clone(),
            Some(pending.clone()),
        ));
        // WHEN five I/O errors come before it reads any
        for n in 0..5 {
            errors
                .send((FredError::new(ErrorKind::IO, format!("refused {n}")), None))
                .unwrap();
        }
        // THEN what it missed counts as a possible refusal
        let asked = tokio::time::timeout(Duration::from_secs(1), sender.refused()).await;
        assert_eq!(
            asked,
            Ok(true),
            "a burst that overflowed the channel was not heard"
        );
        // AND it goes on: a later refusal is heard, and errors are still logged
        errors
            .send((FredError::new(ErrorKind::Auth, "WRONGPASS"), None))
            .unwrap();
        let asked = tokio::time::timeout(Duration::from_secs(1), sender.refused()).await;
        assert_eq!(asked, Ok(true));
        let logged = log
            .last
            .lock()
            .unwrap()
            .as_ref()
            .map(|(reason, _)| reason.clone());
        assert!(logged.unwrap().contains("WRONGPASS"));
        // WHEN the client is gone THEN the listener ends
        drop(errors);
        listening.await.unwrap();
    }

    #[tokio::test(start_paused = true)]
    async fn after_a_quiet_spell_the_spacing_of_reads_starts_over() {
        // GIVEN reads spaced out to minutes by a secret that kept the refused token
        let (sender, pending) = PendingToken::new();
        sender.send("old".to_owned());
        let reads = std::sync::Arc::new(std::sync::atomic::AtomicU32::new(0));
        drop(tokio::spawn(sender.follow_rotations({
            let reads = std::sync::Arc::clone(&reads);
            move || {
                reads.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                async { Ok::<_, std::io::Error>("old".to_owned()) }
            }
        })));
        let reads = || reads.load(std::sync::atomic::Ordering::SeqCst);
        refuse_ten_times_a_second(&pending, 2_000).await;
        assert_eq!(reads(), 8, "reads at 0, 1, 3, 7, 15, 31, 63 and 127 s");
        // (and one at 255 s, for the refusals heard during the last pause, which then
        // runs to 511 s)
        tokio::time::sleep(Duration::from_secs(60)).await;
        assert_eq!(reads(), 9);
        // WHEN Redis takes the token for longer than the longest pause, then refuses it
        // again, ten times a second
        tokio::time::sleep(REREAD_MAX * 2).await;
        refuse_ten_times_a_second(&pending, 15).await;
        // THEN the reads come at once and 1 s later, not one long pause later
        assert_eq!(reads(), 11);
    }

    async fn refuse_ten_times_a_second(pending: &PendingToken, times: u32) {
        for _ in 0..times {
            pending.refused_by_redis(&FredError::new(ErrorKind::Auth, "WRONGPASS"));
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    #[test]
    fn the_credentials_never_show_the_token() {
        let (sender, token) = PendingToken::new();
        sender.send("s3cret-t0ken".to_owned());
        let credentials = TokenCredentials {
            username: Some("app".to_owned()),
            token,
        };
        let shown = format!("{credentials:?}");
        assert!(!shown.contains("s3cret"), "{shown}");
        assert!(shown.contains("arrived: true"), "{shown}");
    }

    /// A port that accepts TCP connections and never answers (fred asks for credentials
    /// once TCP is up, before it sends anything).
    async fn silent_server() -> (String, tokio::task::JoinHandle<()>) {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("redis://{}", listener.local_addr().unwrap());
        let accepting = tokio::spawn(async move {
            let mut held = Vec::new();
            while let Ok((socket, _)) = listener.accept().await {
                held.push(socket);
            }
        });
        (url, accepting)
    }

    /// Waits until `done`, failing with `what` after `within`.
    async fn eventually(within: Duration, what: &str, done: impl Fn() -> bool) {
        let deadline = tokio::time::Instant::now() + within;
        while !done() {
            assert!(tokio::time::Instant::now() < deadline, "{what}");
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    }

    /// A pool on `url` as [`RedisCache::connect_with`] makes it, asking `credentials`.
    fn cache_asking(url: &str, credentials: Arc<dyn CredentialProvider>) -> RedisCache {
        let mut config = FredConfig::from_url(url).unwrap();
        config.credential_provider = Some(credentials);
        RedisCache::start(
            config,
            None,
            Duration::from_millis(50),
            1,
            EarlyLookups::default(),
        )
        .unwrap()
    }

    #[tokio::test]
    async fn the_first_connection_goes_where_start_up_looked_and_reconnects_where_the_name_is_now()
    {
        // GIVEN a name that moved since start-up looked it up
        let name = crate::adapters::dns::moved_name::MovedLocalhost::open().await;
        // WHEN a cache connects to it through start-up's lookups
        let config = FredConfig::from_url(&format!("redis://localhost:{}", name.port)).unwrap();
        let cache = RedisCache::start(
            config,
            None,
            Duration::from_millis(50),
            1,
            name.lookups.clone(),
        )
        .unwrap();
        // THEN its first connection goes where start-up looked, and only that one: the
        // reconnections after it (each closed at once) go where the name is now
        eventually(
            Duration::from_secs(3),
            "no reconnection where the name is now",
            || name.reached_now() >= 2,
        )
        .await;
        assert_eq!(name.reached_early(), 1);
        cache.quit().await;
    }

    /// Panics when first asked, then counts the calls and never answers.
    #[derive(Debug, Default)]
    struct PanicsFirst(std::sync::atomic::AtomicUsize);

    #[async_trait::async_trait]
    impl CredentialProvider for PanicsFirst {
        async fn fetch(
            &self,
            _: Option<&Server>,
        ) -> Result<(Option<String>, Option<String>), FredError> {
            if self.0.fetch_add(1, std::sync::atomic::Ordering::SeqCst) == 0 {
                panic!("a bug in a credential provider");
            }
            std::future::pending().await
        }
    }

    #[tokio::test]
    async fn a_connection_task_that_panicked_is_started_again() {
        // GIVEN a connection whose set-up panics the first time
        let (url, _server) = silent_server().await;
        let credentials = Arc::new(PanicsFirst::default());
        let cache = cache_asking(&url, credentials.clone());

        // THEN the connection is attempted again (fred's task would otherwise be gone,
        // and every command fail, for the life of the process)
        eventually(Duration::from_secs(2), "not attempted again", || {
            credentials.0.load(std::sync::atomic::Ordering::SeqCst) >= 2
        })
        .await;
        cache.quit().await;
    }

    /// Notes when it is asked, then never answers; notes when that wait is dropped.
    #[derive(Debug, Default)]
    struct Stalls {
        asked: Notify,
        dropped: std::sync::Arc<std::sync::atomic::AtomicBool>,
    }

    struct SetOnDrop(std::sync::Arc<std::sync::atomic::AtomicBool>);

    impl Drop for SetOnDrop {
        fn drop(&mut self) {
            self.0.store(true, std::sync::atomic::Ordering::SeqCst);
        }
    }

    #[async_trait::async_trait]
    impl CredentialProvider for Stalls {
        async fn fetch(
            &self,
            _: Option<&Server>,
        ) -> Result<(Option<String>, Option<String>), FredError> {
            let _guard = SetOnDrop(std::sync::Arc::clone(&self.dropped));
            self.asked.notify_one();
            std::future::pending().await
        }
    }

    #[tokio::test]
    async fn quit_stops_a_connection_still_being_set_up() {
        // GIVEN a connection in its set-up, waiting for its credentials
        let (url, _server) = silent_server().await;
        let credentials = Arc::new(Stalls::default());
        let cache = cache_asking(&url, credentials.clone());
        credentials.asked.notified().await;

        // WHEN the cache quits (fred's QUIT waits behind the set-up, and times out)
        cache.quit().await;

        // THEN the set-up is abandoned, rather than left to connect for good
        eventually(Duration::from_secs(1), "still being set up", || {
            credentials
                .dropped
                .load(std::sync::atomic::Ordering::SeqCst)
        })
        .await;
    }

    #[tokio::test]
    async fn dropping_the_last_clone_of_the_cache_stops_its_connections() {
        // GIVEN a connection in its set-up, and a clone of the cache
        let (url, _server) = silent_server().await;
        let credentials = Arc::new(Stalls::default());
        let cache = cache_asking(&url, credentials.clone());
        let clone = cache.clone();
        credentials.asked.notified().await;

        // WHEN one clone is dropped THEN the connection goes on
        drop(cache);
        tokio::time::sleep(Duration::from_millis(200)).await;
        assert!(
            !credentials
                .dropped
                .load(std::sync::atomic::Ordering::SeqCst),
            "stopped while a clone was left"
        );
        // AND WHEN the last is THEN it stops, rather than live on with nobody to use it
        drop(clone);
        eventually(Duration::from_secs(1), "still being set up", || {
            credentials
                .dropped
                .load(std::sync::atomic::Ordering::SeqCst)
        })
        .await;
    }
}
