//! The one reader of the environment. Each binary reads the configuration it uses, once,
//! at start-up: [`ApiConfig`] (product-api), [`InvalidatorConfig`] (cache-invalidator),
//! [`CatalogConfig`] (catalog). What they share is read by the same code, with the same
//! rules: how the process runs ([`Mode`]), how Redis is reached ([`RedisConfig`]) and how
//! long entries live ([`EntryTtls`]). A bad value stops the process with an error naming
//! the variable.

use std::cell::RefCell;
use std::ffi::OsString;
use std::net::SocketAddr;
use std::time::Duration;

use crate::cache_entry::{
    DEFAULT_NEGATIVE_TTL, DEFAULT_STALE_TTL, MAX_NEGATIVE_TTL, MAX_TTL_JITTER_PERCENT, NegativeTtl,
    TtlJitter,
};
use crate::error::ConfigError;
use crate::tls::TrustedRoots;

pub const TABLE_NAME: &str = "TABLE_NAME";
pub const REDIS_URL: &str = "REDIS_URL";
pub const REDIS_AUTH_SECRET_ARN: &str = "REDIS_AUTH_SECRET_ARN";
/// ElastiCache IAM authentication ([`IamUser`]): the IAM-enabled user's id, the cache's
/// name, and whether it is a serverless cache.
pub const REDIS_IAM_USER: &str = "REDIS_IAM_USER";
pub const REDIS_IAM_CACHE: &str = "REDIS_IAM_CACHE";
pub const REDIS_IAM_SERVERLESS: &str = "REDIS_IAM_SERVERLESS";
pub const CACHE_TTL_SECONDS: &str = "CACHE_TTL_SECONDS";
pub const NEGATIVE_CACHE_TTL_SECONDS: &str = "NEGATIVE_CACHE_TTL_SECONDS";
pub const STALE_TTL_SECONDS: &str = "STALE_TTL_SECONDS";
pub const CACHE_TTL_JITTER_PERCENT: &str = "CACHE_TTL_JITTER_PERCENT";
/// The entry settings ([`EntryTtls`]): product-api fills entries and cache-invalidator
/// rewrites them, so a deployment must give both the same values.
pub const ENTRY_SETTINGS: [&str; 4] = [
    CACHE_TTL_SECONDS,
    NEGATIVE_CACHE_TTL_SECONDS,
    STALE_TTL_SECONDS,
    CACHE_TTL_JITTER_PERCENT,
];
pub const REDIS_TIMEOUT_MS: &str = "REDIS_TIMEOUT_MS";
pub const MEMCACHED_URL: &str = "MEMCACHED_URL";
pub const MEMCACHED_TIMEOUT_MS: &str = "MEMCACHED_TIMEOUT_MS";
pub const HTTP_MAX_AGE_SECONDS: &str = "HTTP_MAX_AGE_SECONDS";
pub const L1_CACHE_ENTRIES: &str = "L1_CACHE_ENTRIES";
pub const L1_TTL_MS: &str = "L1_TTL_MS";
pub const METRICS_NAMESPACE: &str = "METRICS_NAMESPACE";
pub const LISTEN_ADDR: &str = "LISTEN_ADDR";
/// Which roots TLS trusts: `system` (the default) or `amazon` (compiled in; the
/// deployed functions' setting). See [`crate::tls`].
pub const TRUSTED_ROOTS: &str = "TRUSTED_ROOTS";
/// Read by rustls-native-certs, not by us: with `TRUSTED_ROOTS=system`, the file of roots
/// TLS trusts instead of the system's store. Checked here.
pub const SSL_CERT_FILE: &str = "SSL_CERT_FILE";
/// Set by the Lambda service; its presence selects Lambda mode.
pub const AWS_LAMBDA_RUNTIME_API: &str = "AWS_LAMBDA_RUNTIME_API";
/// Set by the Lambda service: `on-demand`, `provisioned-concurrency` or `snap-start`.
pub const AWS_LAMBDA_INITIALIZATION_TYPE: &str = "AWS_LAMBDA_INITIALIZATION_TYPE";

const DEFAULT_CACHE_TTL: Duration = Duration::from_secs(300);
/// product-api: a Redis call on the request path must be quick, or skipped.
pub const API_REDIS_TIMEOUT: Duration = Duration::from_millis(50);
/// cache-invalidator: a slow write is better than a failed one, which blocks the shard.
pub const INVALIDATOR_REDIS_TIMEOUT: Duration = Duration::from_secs(1);
/// catalog: an operator command may wait longer than a request would.
pub const CATALOG_REDIS_TIMEOUT: Duration = Duration::from_secs(5);
const DEFAULT_HTTP_MAX_AGE: u32 = 60;
const DEFAULT_L1_TTL: Duration = Duration::from_secs(1);
const DEFAULT_LISTEN_ADDR: &str = "127.0.0.1:3000";
/// The most of a file of roots read at start-up (Debian's bundle: about 220 KB).
const MAX_PEM_FILE: u64 = 16 << 20;

/// How requests reach the process.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// Inside AWS Lambda: events come from the Runtime API.
    Lambda,
    /// Outside Lambda: a local HTTP server (product-api) or one event on stdin
    /// (cache-invalidator).
    Local,
}

/// A DynamoDB table name, by DynamoDB's own rule: 3 to 255 characters of
/// `a-z A-Z 0-9 _ - .`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TableName(String);

impl TableName {
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl TryFrom<String> for TableName {
    type Error = ConfigError;

    fn try_from(name: String) -> Result<Self, ConfigError> {
        let valid_chars = name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'-' | b'.'));
        if (3..=255).contains(&name.len()) && valid_chars {
            Ok(Self(name))
        } else {
            Err(ConfigError::invalid(
                TABLE_NAME,
                &name,
                "expected 3 to 255 characters of a-z, A-Z, 0-9, '_', '-', '.'",
            ))
        }
    }
}

impl std::fmt::Display for TableName {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

/// The ARN of a Secrets Manager secret:
/// `arn:<partition>:secretsmanager:<region>:<account>:secret:<name>`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SecretArn(String);

impl SecretArn {
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl TryFrom<String> for SecretArn {
    type Error = ConfigError;

    fn try_from(arn: String) -> Result<Self, ConfigError> {
        let parts: Vec<&str> = arn.splitn(7, ':').collect();
        let valid = matches!(
            parts.as_slice(),
            ["arn", partition, "secretsmanager", region, account, "secret", name]
                if !partition.is_empty()
                    && !region.is_empty()
                    && account.len() == 12
                    && account.bytes().all(|b| b.is_ascii_digit())
                    && !name.is_empty()
        );
        if valid {
            Ok(Self(arn))
        } else {
            Err(ConfigError::invalid(
                REDIS_AUTH_SECRET_ARN,
                &arn,
                "expected a Secrets Manager secret ARN, \
                 arn:<partition>:secretsmanager:<region>:<account>:secret:<name>",
            ))
        }
    }
}

/// An IAM-enabled ElastiCache user and the cache it connects to: each connection
/// authenticates as `user` with a token signed for `cache` (`adapters::elasticache_iam`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IamUser {
    user: String,
    cache: String,
    serverless: bool,
}

impl IamUser {
    /// `REDIS_IAM_USER`, `REDIS_IAM_CACHE` and `REDIS_IAM_SERVERLESS`, checked.
    ///
    /// # Errors
    /// [`ConfigError`] naming the variable that ElastiCache would refuse.
    pub fn new(user: &str, cache: &str, serverless: bool) -> Result<Self, ConfigError> {
        // ElastiCache's own rules for user ids and cache names. An IAM-enabled user's
        // name is its id; both, and cache names, are stored in lower case, and the token
        // (and AUTH) must name them as stored.
        let starts_with_letter = |s: &str| s.starts_with(|c: char| c.is_ascii_alphabetic());
        let hyphens_ok = |s: &str| !s.ends_with('-') && !s.contains("--");
        let lower = |s: &str| {
            s.bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        };
        if !(starts_with_letter(user) && lower(user)) {
            return Err(ConfigError::invalid(
                REDIS_IAM_USER,
                user,
                "expected an ElastiCache user id as ElastiCache stores it: a lower-case \
                 letter, then lower-case letters, digits or hyphens",
            ));
        }
        if !(starts_with_letter(cache) && cache.len() <= 40 && hyphens_ok(cache) && lower(cache)) {
            return Err(ConfigError::invalid(
                REDIS_IAM_CACHE,
                cache,
                "expected the replication group id or serverless cache name as ElastiCache \
                 stores it: at most 40 lower-case letters, digits and single hyphens, \
                 starting with a letter",
            ));
        }
        Ok(Self {
            user: user.to_owned(),
            cache: cache.to_owned(),
            serverless,
        })
    }

    /// The user id, sent as `AUTH`'s user name.
    pub fn user(&self) -> &str {
        &self.user
    }

    /// The replication group id or serverless cache name the token is signed for.
    pub fn cache(&self) -> &str {
        &self.cache
    }

    /// Whether the cache is serverless (its tokens name the resource type).
    pub fn serverless(&self) -> bool {
        self.serverless
    }
}

/// A Redis URL; kept out of `Debug` output because it may carry a password.
#[derive(Clone, PartialEq, Eq)]
pub struct RedisUrl(String);

impl RedisUrl {
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// Whether connections use TLS (`rediss://`, `rediss-cluster://`).
    pub fn tls(&self) -> bool {
        self.0.starts_with("rediss")
    }

    /// The host it names (a cluster's first node).
    pub fn host(&self) -> Option<String> {
        url::Url::parse(&self.0).ok()?.host_str().map(str::to_owned)
    }
}

impl TryFrom<String> for RedisUrl {
    type Error = ConfigError;

    /// Kept as the URL parser reads it (the scheme in lower case, spaces and control
    /// characters around it gone), which is what fred reads too: so that `REDISS://`
    /// or ` rediss://` is TLS everywhere a scheme is looked at.
    fn try_from(url: String) -> Result<Self, ConfigError> {
        Ok(Self(validate_redis_url(&url)?.into()))
    }
}

impl std::fmt::Debug for RedisUrl {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&redact_url(&self.0))
    }
}

/// One memcached node, `host:port`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MemcachedNode {
    host: String,
    port: u16,
}

impl MemcachedNode {
    pub fn host(&self) -> &str {
        &self.host
    }

    pub fn port(&self) -> u16 {
        self.port
    }
}

impl std::fmt::Display for MemcachedNode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if self.host.contains(':') {
            write!(f, "[{}]:{}", self.host, self.port)
        } else {
            write!(f, "{}:{}", self.host, self.port)
        }
    }
}

/// memcached's default port.
const MEMCACHED_PORT: u16 = 11211;

/// `memcache://host:port[,host:port…]`, or `memcaches://…` for TLS: the nodes of a
/// memcached cluster, sharded by the client. It carries no secret (memcached on
/// ElastiCache has no AUTH), so `Debug` shows it whole.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MemcachedUrl {
    tls: bool,
    nodes: Vec<MemcachedNode>,
}

impl MemcachedUrl {
    pub fn tls(&self) -> bool {
        self.tls
    }

    /// At least one node, in the order given, without duplicates.
    pub fn nodes(&self) -> &[MemcachedNode] {
        &self.nodes
    }
}

impl TryFrom<String> for MemcachedUrl {
    type Error = ConfigError;

    fn try_from(raw: String) -> Result<Self, ConfigError> {
        let invalid = |reason: &str| ConfigError::invalid(MEMCACHED_URL, &raw, reason);
        let (tls, list) = if let Some(list) = raw.strip_prefix("memcaches://") {
            (true, list)
        } else if let Some(list) = raw.strip_prefix("memcache://") {
            (false, list)
        } else {
            return Err(invalid(
                "expected memcache://host:port[,host:port...] or memcaches:// (TLS)",
            ));
        };
        let list = list.strip_suffix('/').unwrap_or(list);
        if list.contains('@') {
            return Err(invalid(
                "memcached takes no user or password (ElastiCache has no AUTH)",
            ));
        }
        let mut nodes: Vec<MemcachedNode> = Vec::new();
        for entry in list.split(',') {
            let (host, port) = match entry.rsplit_once(':') {
                Some((host, port)) if !host.ends_with(':') => (host, Some(port)),
                _ => (entry, None),
            };
            let host = host
                .strip_prefix('[')
                .and_then(|h| h.strip_suffix(']'))
                .unwrap_or(host);
            let port = match port {
                None => MEMCACHED_PORT,
                Some(port) => port
                    .parse()
                    .ok()
                    .filter(|port| *port > 0)
                    .ok_or_else(|| invalid(&format!("bad port in {entry:?}")))?,
            };
            let valid_host = !host.is_empty()
                && host
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'-' | b'_' | b':'));
            if !valid_host {
                return Err(invalid(&format!("bad host in {entry:?}")));
            }
            let node = MemcachedNode {
                host: host.to_owned(),
                port,
            };
            if nodes.contains(&node) {
                return Err(invalid(&format!("{node} is listed twice")));
            }
            nodes.push(node);
        }
        Ok(Self { tls, nodes })
    }
}

/// How a binary reaches memcached.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MemcachedConfig {
    pub url: MemcachedUrl,
    /// Bound on every memcached call (`MEMCACHED_TIMEOUT_MS`; the default is the
    /// binary's, as for Redis).
    pub timeout: Duration,
}

/// The shared cache a binary uses: Redis (`REDIS_URL`) or memcached (`MEMCACHED_URL`),
/// never both.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CacheConfig {
    Redis(RedisConfig),
    Memcached(MemcachedConfig),
}

impl CacheConfig {
    /// Bound on every call to the cache.
    pub fn timeout(&self) -> Duration {
        match self {
            Self::Redis(redis) => redis.timeout,
            Self::Memcached(memcached) => memcached.timeout,
        }
    }
}

/// How a binary reaches Redis; the same variables and rules for all three.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RedisConfig {
    pub url: RedisUrl,
    /// How connections authenticate.
    pub auth: RedisAuth,
    /// Bound on every Redis command (`REDIS_TIMEOUT_MS`; the default is the binary's).
    pub timeout: Duration,
}

/// How Redis connections authenticate.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RedisAuth {
    /// With what the URL holds: a password, or none.
    Url,
    /// With the token a Secrets Manager secret holds (`REDIS_AUTH_SECRET_ARN`), read at
    /// start-up and again when Redis refuses it.
    Secret(SecretArn),
    /// As an IAM-enabled ElastiCache user (`REDIS_IAM_USER`), with a token signed for
    /// each connection.
    Iam(IamUser),
}

/// How long `product:<id>` entries live; product-api and cache-invalidator must agree.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct EntryTtls {
    /// Time to live of a product.
    pub product: Duration,
    /// How long an id the table lacks is remembered.
    pub negative: NegativeTtl,
    /// How long a product's last-known-good copy is kept (`STALE_TTL_SECONDS`); `None`
    /// (0) keeps none.
    pub stale: Option<Duration>,
    /// How much of `product` may be taken off each entry's TTL at random
    /// (`CACHE_TTL_JITTER_PERCENT`; 0, the default, keeps it exact).
    pub jitter: TtlJitter,
}

/// product-api's configuration.
#[derive(Debug, Clone)]
pub struct ApiConfig {
    pub mode: Mode,
    /// Where the local server listens (unused in Lambda mode).
    pub listen_addr: SocketAddr,
    /// DynamoDB table; `None` selects the embedded sample catalog (local mode only).
    pub table: Option<TableName>,
    /// Redis or memcached (ElastiCache); `None` selects the in-process cache.
    pub cache: Option<CacheConfig>,
    pub ttls: EntryTtls,
    /// `Cache-Control: public, max-age=<this>` on 200 responses.
    pub http_max_age: u32,
    /// Size of the optional in-process tier in front of Redis (0: off).
    pub l1_entries: u64,
    /// How long the in-process tier keeps a product (stream invalidations cannot reach it).
    pub l1_ttl: Duration,
    pub metrics_namespace: String,
    /// The roots every TLS connection trusts (Redis, memcached, the AWS SDK).
    pub trusted_roots: TrustedRoots,
    /// Whether start-up waits for the cache's first connection before taking requests.
    /// Not in an on-demand Lambda environment, where a request is usually waiting and
    /// the first invocation waits instead (its `/next` overlapping the connection's
    /// set-up); in one initialized ahead (`provisioned-concurrency`, or any type but
    /// `on-demand`), which is frozen after `/next` for as long as no request comes, a
    /// connection still being set up would be thawed half open. (Lambda may also
    /// initialize an on-demand environment ahead, saying `on-demand`: there a handshake
    /// that timed out while frozen is redialled, and the first request waits for that,
    /// up to 1 s, before serving from the table.)
    pub connect_before_first_request: bool,
}

/// cache-invalidator's configuration: it needs a shared cache, and never reads the table.
#[derive(Debug, Clone)]
pub struct InvalidatorConfig {
    pub mode: Mode,
    pub cache: CacheConfig,
    pub ttls: EntryTtls,
    pub metrics_namespace: String,
    pub trusted_roots: TrustedRoots,
}

/// catalog's configuration: each command checks for what it needs.
#[derive(Debug, Clone)]
pub struct CatalogConfig {
    pub table: Option<TableName>,
    pub cache: Option<CacheConfig>,
    pub trusted_roots: TrustedRoots,
}

/// A configuration read from the environment.
pub trait FromEnvironment: Sized {
    /// Reads configuration through `lookup` (a variable's value, `None` when unset), so
    /// tests need not touch the real environment. An empty value counts as unset.
    ///
    /// # Errors
    /// A [`ConfigError`] naming the first variable whose value is unusable.
    fn from_lookup(lookup: impl Fn(&str) -> Option<String>) -> Result<Self, ConfigError> {
        Self::from_os_lookup(|name| lookup(name).map(OsString::from))
    }

    /// Reads configuration through `lookup` of raw values: one that is not UTF-8 is an
    /// error naming its variable, never taken as unset.
    ///
    /// # Errors
    /// A [`ConfigError`] naming the first variable whose value is unusable.
    fn from_os_lookup(lookup: impl Fn(&str) -> Option<OsString>) -> Result<Self, ConfigError> {
        let env = Env {
            lookup: &lookup,
            not_utf8: RefCell::new(None),
        };
        let config = Self::read(&env);
        match env.not_utf8.into_inner() {
            Some(err) => Err(err),
            None => config,
        }
    }

    /// Reads the process environment.
    ///
    /// # Errors
    /// A [`ConfigError`] naming the first variable whose value is unusable.
    fn from_env() -> Result<Self, ConfigError> {
        Self::from_os_lookup(|name| std::env::var_os(name))
    }

    #[doc(hidden)]
    fn read(env: &Env<'_>) -> Result<Self, ConfigError>;
}

impl FromEnvironment for ApiConfig {
    fn read(env: &Env<'_>) -> Result<Self, ConfigError> {
        let mode = env.mode();
        let listen_addr = match mode {
            Mode::Lambda => DEFAULT_LISTEN_ADDR,
            Mode::Local => &env
                .get(LISTEN_ADDR)
                .unwrap_or_else(|| DEFAULT_LISTEN_ADDR.to_owned()),
        };
        let listen_addr = listen_addr.parse().map_err(|_| {
            ConfigError::invalid(
                LISTEN_ADDR,
                listen_addr,
                "expected host:port, e.g. 127.0.0.1:3000",
            )
        })?;
        let table = env.table()?;
        if mode == Mode::Lambda && table.is_none() {
            return Err(ConfigError::missing(
                TABLE_NAME,
                "required in Lambda mode (the sample catalog is for local runs only)",
            ));
        }
        let metrics_namespace = env.metrics_namespace()?;
        let trusted_roots = env.trusted_roots()?;
        Ok(Self {
            mode,
            listen_addr,
            table,
            cache: env.cache(API_REDIS_TIMEOUT)?,
            ttls: env.ttls()?,
            http_max_age: match env.get(HTTP_MAX_AGE_SECONDS) {
                None => DEFAULT_HTTP_MAX_AGE,
                // Bounded by a year, so the value always fits in u32.
                Some(raw) => parse_in_range(HTTP_MAX_AGE_SECONDS, &raw, 0, 365 * 24 * 3600)? as u32,
            },
            l1_entries: match env.get(L1_CACHE_ENTRIES) {
                None => 0,
                Some(raw) => parse_in_range(L1_CACHE_ENTRIES, &raw, 0, 1_000_000)?,
            },
            l1_ttl: match env.get(L1_TTL_MS) {
                None => DEFAULT_L1_TTL,
                Some(raw) => Duration::from_millis(parse_in_range(L1_TTL_MS, &raw, 1, 60_000)?),
            },
            metrics_namespace,
            trusted_roots,
            // Unset: outside Lambda (local mode, or a Runtime API emulator), where
            // nothing is frozen.
            connect_before_first_request: mode == Mode::Local
                || env
                    .get(AWS_LAMBDA_INITIALIZATION_TYPE)
                    .is_some_and(|kind| kind != "on-demand"),
        })
    }
}

impl FromEnvironment for InvalidatorConfig {
    fn read(env: &Env<'_>) -> Result<Self, ConfigError> {
        let cache = env.cache(INVALIDATOR_REDIS_TIMEOUT)?.ok_or_else(|| {
            ConfigError::missing(
                REDIS_URL,
                "the cache-invalidator needs the cache to invalidate (or MEMCACHED_URL)",
            )
        })?;
        Ok(Self {
            mode: env.mode(),
            cache,
            ttls: env.ttls()?,
            metrics_namespace: env.metrics_namespace()?,
            trusted_roots: env.trusted_roots()?,
        })
    }
}

impl FromEnvironment for CatalogConfig {
    fn read(env: &Env<'_>) -> Result<Self, ConfigError> {
        Ok(Self {
            table: env.table()?,
            cache: env.cache(CATALOG_REDIS_TIMEOUT)?,
            trusted_roots: env.trusted_roots()?,
        })
    }
}

/// The environment as the readers above see it: empty values count as unset.
#[doc(hidden)]
pub struct Env<'a> {
    lookup: &'a dyn Fn(&str) -> Option<OsString>,
    /// The first variable whose value is not UTF-8 (reported instead of the result).
    not_utf8: RefCell<Option<ConfigError>>,
}

impl Env<'_> {
    fn get(&self, name: &'static str) -> Option<String> {
        match (self.lookup)(name)?.into_string() {
            Ok(value) => Some(value).filter(|value| !value.is_empty()),
            Err(raw) => {
                self.not_utf8.borrow_mut().get_or_insert_with(|| {
                    let shown = redact_url(&raw.to_string_lossy());
                    ConfigError::invalid(name, &shown, "not valid UTF-8")
                });
                None
            }
        }
    }

    fn mode(&self) -> Mode {
        if self.get(AWS_LAMBDA_RUNTIME_API).is_some() {
            Mode::Lambda
        } else {
            Mode::Local
        }
    }

    fn metrics_namespace(&self) -> Result<String, ConfigError> {
        let namespace = self
            .get(METRICS_NAMESPACE)
            .unwrap_or_else(|| crate::metrics::NAMESPACE.to_owned());
        validate_namespace(&namespace)?;
        Ok(namespace)
    }

    /// `TRUSTED_ROOTS`; with `system`, `SSL_CERT_FILE`, when set, must name a regular
    /// file of whole PEM certificates: otherwise the SDK would trust no root, only
    /// warning, and every handshake would fail later, far from the cause.
    fn trusted_roots(&self) -> Result<TrustedRoots, ConfigError> {
        let roots = match self.get(TRUSTED_ROOTS) {
            None => TrustedRoots::default(),
            Some(raw) => TrustedRoots::parse(&raw).ok_or_else(|| {
                ConfigError::invalid(TRUSTED_ROOTS, &raw, "expected system or amazon")
            })?,
        };
        if roots == TrustedRoots::System {
            // rustls-native-certs takes a set, empty SSL_CERT_FILE as a file with no name.
            if (self.lookup)(SSL_CERT_FILE).is_some_and(|raw| raw.is_empty()) {
                return Err(ConfigError::invalid(
                    SSL_CERT_FILE,
                    "",
                    "set but empty: unset it, or name a file of PEM certificates",
                ));
            }
            if let Some(path) = self.get(SSL_CERT_FILE) {
                check_pem_file(&path)
                    .map_err(|why| ConfigError::invalid(SSL_CERT_FILE, &path, &why))?;
            }
        }
        Ok(roots)
    }

    fn table(&self) -> Result<Option<TableName>, ConfigError> {
        self.get(TABLE_NAME).map(TableName::try_from).transpose()
    }

    /// `REDIS_URL` or `MEMCACHED_URL` (an error naming both when both are set).
    fn cache(&self, default_timeout: Duration) -> Result<Option<CacheConfig>, ConfigError> {
        let redis = self.redis(default_timeout)?;
        let memcached = self
            .get(MEMCACHED_URL)
            .map(MemcachedUrl::try_from)
            .transpose()?;
        let timeout = match self.get(MEMCACHED_TIMEOUT_MS) {
            None => default_timeout,
            Some(raw) => {
                Duration::from_millis(parse_in_range(MEMCACHED_TIMEOUT_MS, &raw, 1, 10_000)?)
            }
        };
        match (redis, memcached) {
            (Some(_), Some(_)) => Err(ConfigError::invalid(
                MEMCACHED_URL,
                "(set)",
                "REDIS_URL and MEMCACHED_URL are both set: choose one cache engine",
            )),
            (Some(redis), None) => Ok(Some(CacheConfig::Redis(redis))),
            (None, Some(url)) => Ok(Some(CacheConfig::Memcached(MemcachedConfig {
                url,
                timeout,
            }))),
            (None, None) => Ok(None),
        }
    }

    fn redis(&self, default_timeout: Duration) -> Result<Option<RedisConfig>, ConfigError> {
        let url = self.get(REDIS_URL).map(RedisUrl::try_from).transpose()?;
        let auth = self.redis_auth()?;
        let timeout = match self.get(REDIS_TIMEOUT_MS) {
            None => default_timeout,
            Some(raw) => Duration::from_millis(parse_in_range(REDIS_TIMEOUT_MS, &raw, 1, 10_000)?),
        };
        let Some(url) = url else {
            return match auth {
                RedisAuth::Url => Ok(None),
                RedisAuth::Secret(_) => Err(ConfigError::missing(
                    REDIS_URL,
                    "REDIS_AUTH_SECRET_ARN is set, so a Redis URL is needed",
                )),
                RedisAuth::Iam(_) => Err(ConfigError::missing(
                    REDIS_URL,
                    "REDIS_IAM_USER is set, so a Redis URL is needed",
                )),
            };
        };
        if let RedisAuth::Iam(_) = auth {
            let parsed = validate_redis_url(url.as_str())?;
            if !url.tls() {
                return Err(ConfigError::invalid(
                    REDIS_URL,
                    &redact_url(url.as_str()),
                    "ElastiCache takes IAM authentication over TLS only: rediss://",
                ));
            }
            if !parsed.username().is_empty() || parsed.password().is_some() {
                return Err(ConfigError::invalid(
                    REDIS_URL,
                    &redact_url(url.as_str()),
                    "with REDIS_IAM_USER the user and the token come from IAM: \
                     remove the credentials from the URL",
                ));
            }
        }
        Ok(Some(RedisConfig { url, auth, timeout }))
    }

    /// `REDIS_AUTH_SECRET_ARN`, or the `REDIS_IAM_*` variables, or neither.
    fn redis_auth(&self) -> Result<RedisAuth, ConfigError> {
        let secret = self
            .get(REDIS_AUTH_SECRET_ARN)
            .map(SecretArn::try_from)
            .transpose()?;
        let serverless = match self.get(REDIS_IAM_SERVERLESS) {
            None => None,
            Some(raw) => Some(match raw.as_str() {
                "true" => true,
                "false" => false,
                _ => {
                    return Err(ConfigError::invalid(
                        REDIS_IAM_SERVERLESS,
                        &raw,
                        "expected true or false",
                    ));
                }
            }),
        };
        let iam = match (self.get(REDIS_IAM_USER), self.get(REDIS_IAM_CACHE)) {
            (Some(user), Some(cache)) => {
                Some(IamUser::new(&user, &cache, serverless.unwrap_or(false))?)
            }
            (Some(_), None) => {
                return Err(ConfigError::missing(
                    REDIS_IAM_CACHE,
                    "REDIS_IAM_USER is set, so the cache its tokens are signed for is needed",
                ));
            }
            (None, Some(_)) => {
                return Err(ConfigError::missing(
                    REDIS_IAM_USER,
                    "REDIS_IAM_CACHE is set, so the IAM-enabled user is needed",
                ));
            }
            (None, None) => {
                if let Some(serverless) = serverless {
                    return Err(ConfigError::invalid(
                        REDIS_IAM_SERVERLESS,
                        &serverless.to_string(),
                        "only means something with REDIS_IAM_USER and REDIS_IAM_CACHE",
                    ));
                }
                None
            }
        };
        match (secret, iam) {
            (Some(_), Some(_)) => Err(ConfigError::invalid(
                REDIS_IAM_USER,
                "(set)",
                "REDIS_AUTH_SECRET_ARN and REDIS_IAM_USER are both set: \
                 choose the AUTH token or IAM authentication",
            )),
            (Some(secret), None) => Ok(RedisAuth::Secret(secret)),
            (None, Some(iam)) => Ok(RedisAuth::Iam(iam)),
            (None, None) => Ok(RedisAuth::Url),
        }
    }

    fn ttls(&self) -> Result<EntryTtls, ConfigError> {
        let product = match self.get(CACHE_TTL_SECONDS) {
            None => DEFAULT_CACHE_TTL,
            Some(raw) => {
                Duration::from_secs(parse_in_range(CACHE_TTL_SECONDS, &raw, 1, 30 * 24 * 3600)?)
            }
        };
        let negative = match self.get(NEGATIVE_CACHE_TTL_SECONDS) {
            None => DEFAULT_NEGATIVE_TTL,
            Some(raw) => {
                let max = MAX_NEGATIVE_TTL.as_secs();
                Duration::from_secs(parse_in_range(NEGATIVE_CACHE_TTL_SECONDS, &raw, 1, max)?)
            }
        };
        Ok(EntryTtls {
            product,
            negative: NegativeTtl::new(negative),
            stale: self.stale_ttl()?,
            jitter: match self.get(CACHE_TTL_JITTER_PERCENT) {
                None => TtlJitter::default(),
                Some(raw) => {
                    let max = u64::from(MAX_TTL_JITTER_PERCENT);
                    let percent = parse_in_range(CACHE_TTL_JITTER_PERCENT, &raw, 0, max)?;
                    TtlJitter::percent(u8::try_from(percent).unwrap_or(MAX_TTL_JITTER_PERCENT))
                }
            },
        })
    }

    /// `STALE_TTL_SECONDS`: 0 turns last-known-good copies off; at most 30 days.
    fn stale_ttl(&self) -> Result<Option<Duration>, ConfigError> {
        match self.get(STALE_TTL_SECONDS) {
            None => Ok(Some(DEFAULT_STALE_TTL)),
            Some(raw) => {
                let seconds = parse_in_range(STALE_TTL_SECONDS, &raw, 0, 30 * 24 * 3600)?;
                Ok((seconds > 0).then(|| Duration::from_secs(seconds)))
            }
        }
    }
}

fn parse_in_range(var: &'static str, raw: &str, min: u64, max: u64) -> Result<u64, ConfigError> {
    match raw.trim().parse::<u64>() {
        Ok(value) if (min..=max).contains(&value) => Ok(value),
        _ => Err(ConfigError::invalid(
            var,
            raw,
            &format!("expected a whole number from {min} to {max}"),
        )),
    }
}

/// A regular file (not a pipe or a device, which could block or never end), at most
/// [`MAX_PEM_FILE`], holding certificates each of which ends: checked by its markers,
/// not decoded (decoding is the clients' work, and what a cold start cannot spare twice).
fn check_pem_file(path: &str) -> Result<(), String> {
    const BEGIN: &str = "-----BEGIN CERTIFICATE-----";
    const END: &str = "-----END CERTIFICATE-----";
    let unreadable =
        |err: std::io::Error| format!("cannot be read ({err}): TLS would trust no root");
    let metadata = std::fs::metadata(path).map_err(unreadable)?;
    if !metadata.is_file() {
        return Err("not a regular file of PEM certificates".to_owned());
    }
    if metadata.len() > MAX_PEM_FILE {
        return Err(format!(
            "larger than {} MiB: not a file of roots",
            MAX_PEM_FILE >> 20
        ));
    }
    // Bounded again: the file may have changed since it was looked at.
    let mut bytes = Vec::new();
    std::io::Read::read_to_end(
        &mut std::io::Read::take(std::fs::File::open(path).map_err(unreadable)?, MAX_PEM_FILE),
        &mut bytes,
    )
    .map_err(unreadable)?;
    let text = String::from_utf8_lossy(&bytes);
    // As rustls reads PEM: a marker counts only at the start of a line.
    let count = |marker: &str| text.lines().filter(|line| line.starts_with(marker)).count();
    match (count(BEGIN), count(END)) {
        (0, _) => Err("holds no PEM certificate: TLS would trust no root".to_owned()),
        (begins, ends) if begins != ends => Err(format!(
            "holds {begins} certificate beginnings and {ends} ends: truncated or damaged"
        )),
        _ => Ok(()),
    }
}

fn validate_redis_url(raw: &str) -> Result<url::Url, ConfigError> {
    let shown = redact_url(raw);
    let invalid = |reason: &str| ConfigError::invalid(REDIS_URL, &shown, reason);
    let url = url::Url::parse(raw).map_err(|err| invalid(&err.to_string()))?;
    if !matches!(
        url.scheme(),
        "redis" | "rediss" | "redis-cluster" | "rediss-cluster"
    ) {
        return Err(invalid(
            "expected redis://, rediss:// (TLS), redis-cluster:// or rediss-cluster://",
        ));
    }
    if url.host_str().is_none_or(str::is_empty) {
        return Err(invalid("no host"));
    }
    // Port 0 parses, but no server listens there: every connection would fail.
    if url.port() == Some(0) {
        return Err(invalid("port 0 is not a port a server can listen on"));
    }
    let database = url.path().trim_start_matches('/');
    if !database.is_empty() && database.parse::<u8>().is_err() {
        return Err(invalid("the path must be a database number, e.g. /0"));
    }
    Ok(url)
}

/// CloudWatch's rules for a namespace: 1 to 255 characters of `0-9 A-Z a-z . - _ / # :`
/// and space, at least one not a space, not starting with `:` or `AWS/`.
fn validate_namespace(namespace: &str) -> Result<(), ConfigError> {
    let allowed = |b: u8| b.is_ascii_alphanumeric() || b" .-_/#:".contains(&b);
    if (1..=255).contains(&namespace.len())
        && namespace.bytes().all(allowed)
        && namespace.bytes().any(|b| b != b' ')
        && !namespace.starts_with(':')
        && !namespace.starts_with("AWS/")
    {
        Ok(())
    } else {
        Err(ConfigError::invalid(
            METRICS_NAMESPACE,
            namespace,
            "expected 1 to 255 characters of 0-9 A-Z a-z . - _ / # : and space, \
             not all spaces, not starting with ':' or AWS/",
        ))
    }
}

/// Hides the password and the query (which may carry one too) of a URL such as
/// `rediss://user:secret@host:6379/0?password=secret`.
fn redact_url(url: &str) -> String {
    let hide_query = |part: &str| match part.split_once('?') {
        Some((base, _)) => format!("{base}?***"),
        None => part.to_owned(),
    };
    let Some((scheme, rest)) = url.split_once("://") else {
        return hide_query(url);
    };
    // Credentials first, up to the last '@': a password may hold '?', '/' or '#'.
    match rest.rsplit_once('@') {
        Some((credentials, host)) => match credentials.split_once(':') {
            Some((user, _)) => format!("{scheme}://{user}:***@{}", hide_query(host)),
            None => format!("{scheme}://{credentials}@{}", hide_query(host)),
        },
        None => format!("{scheme}://{}", hide_query(rest)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn read<T: FromEnvironment>(vars: &[(&str, &str)]) -> Result<T, ConfigError> {
        T::from_lookup(|name| {
            vars.iter()
                .find(|(k, _)| *k == name)
                .map(|(_, v)| (*v).to_owned())
        })
    }

    fn api(vars: &[(&str, &str)]) -> Result<ApiConfig, ConfigError> {
        read(vars)
    }

    const ARN: &str = "arn:aws:secretsmanager:eu-west-1:123456789012:secret:cache-auth-AbCdEf";

    #[test]
    fn a_redis_url_is_kept_as_the_parser_reads_it_so_tls_is_seen_however_it_is_written() {
        for (raw, kept, tls) in [
            ("REDISS://:p@h:6380/0", "rediss://:p@h:6380/0", true),
            ("Rediss-Cluster://h:6380", "rediss-cluster://h:6380", true),
            (" rediss://h", "rediss://h", true),
            ("\u{1}rediss://U:Pw@h\n", "rediss://U:Pw@h", true),
            ("redi\tss://h", "rediss://h", true),
            ("REDIS://h:6379", "redis://h:6379", false),
            ("redis-cluster://h", "redis-cluster://h", false),
        ] {
            let url = RedisUrl::try_from(raw.to_owned()).unwrap();
            // The scheme as fred will read it; the user and password as written.
            assert_eq!((url.as_str(), url.tls()), (kept, tls), "{raw:?}");
        }
    }

    /// The roots each of the three binaries reads from `vars` (and a Redis URL, which
    /// cache-invalidator needs).
    fn roots_in_every_binary(vars: &[(&str, &str)]) -> [Result<TrustedRoots, ConfigError>; 3] {
        let vars: Vec<(&str, &str)> = [(REDIS_URL, "redis://h:6379")]
            .into_iter()
            .chain(vars.iter().copied())
            .collect();
        [
            read::<ApiConfig>(&vars).map(|c| c.trusted_roots),
            read::<InvalidatorConfig>(&vars).map(|c| c.trusted_roots),
            read::<CatalogConfig>(&vars).map(|c| c.trusted_roots),
        ]
    }

    #[test]
    fn trusted_roots_is_system_or_amazon_in_every_binary() {
        let roots = roots_in_every_binary;
        // GIVEN nothing set THEN the system's roots, as every TLS client's default
        for roots in roots(&[]) {
            assert_eq!(roots.unwrap(), TrustedRoots::System);
        }
        for roots in roots(&[(TRUSTED_ROOTS, "amazon")]) {
            assert_eq!(roots.unwrap(), TrustedRoots::Amazon);
        }
        // GIVEN a value that is neither THEN each binary stops naming the variable
        for roots in roots(&[(TRUSTED_ROOTS, "Amazon")]) {
            let message = roots.unwrap_err().to_string();
            assert!(message.starts_with("TRUSTED_ROOTS=\"Amazon\""), "{message}");
            assert!(message.contains("expected system or amazon"), "{message}");
        }
    }

    #[test]
    fn a_trust_file_without_whole_certificates_stops_every_binary_naming_ssl_cert_file() {
        let dir = tempfile::tempdir().unwrap();
        let file = |name: &str, text: &[u8]| {
            let path = dir.path().join(name);
            std::fs::write(&path, text).unwrap();
            path.display().to_string()
        };
        let roots = file(
            "roots.pem",
            b"# blocks of -----BEGIN CERTIFICATE----- follow\n-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n",
        );
        let every_binary = roots_in_every_binary;
        // GIVEN SSL_CERT_FILE naming a file of certificates THEN every binary starts
        for started in every_binary(&[(SSL_CERT_FILE, &roots)]) {
            started.unwrap();
        }
        // GIVEN a missing file, a directory, a device, an empty file, one with no
        // certificate, and a truncated one
        let truncated = std::fs::read_to_string(&roots)
            .unwrap()
            .replace("-----END CERTIFICATE-----\n", "");
        for (bad, why) in [
            (
                dir.path().join("missing.pem").display().to_string(),
                "cannot be read",
            ),
            (dir.path().display().to_string(), "not a regular file"),
            ("/dev/zero".to_owned(), "not a regular file"),
            (file("empty.pem", b""), "holds no PEM certificate"),
            (
                file("garbage.pem", &[0xff, 0xfe, b'\n', b'x']),
                "holds no PEM certificate",
            ),
            (file("truncated.pem", truncated.as_bytes()), "truncated"),
        ] {
            // THEN each binary stops, naming the variable and saying why
            for started in every_binary(&[(SSL_CERT_FILE, &bad)]) {
                let message = started.unwrap_err().to_string();
                assert!(message.starts_with("SSL_CERT_FILE="), "{message}");
                assert!(message.contains(why), "{message}");
            }
            // AND with TRUSTED_ROOTS=amazon the file is not used, so not checked
            for started in every_binary(&[(SSL_CERT_FILE, &bad), (TRUSTED_ROOTS, "amazon")]) {
                started.unwrap();
            }
        }
        // GIVEN SSL_CERT_FILE set but empty (which rustls-native-certs would take as a
        // file with no name) THEN each binary stops too
        let empty = |name: &str| (name == SSL_CERT_FILE).then(OsString::new);
        for message in [
            ApiConfig::from_os_lookup(empty).unwrap_err().to_string(),
            InvalidatorConfig::from_os_lookup(|name| {
                empty(name).or_else(|| (name == REDIS_URL).then(|| "redis://h".into()))
            })
            .unwrap_err()
            .to_string(),
            CatalogConfig::from_os_lookup(empty)
                .unwrap_err()
                .to_string(),
        ] {
            assert!(
                message.contains("SSL_CERT_FILE") && message.contains("set but empty"),
                "{message}"
            );
        }
    }

    #[test]
    fn defaults_give_the_embedded_local_setup() {
        // GIVEN an empty environment WHEN product-api reads it
        let config = api(&[]).unwrap();
        // THEN it runs locally on the sample catalog and the in-process cache
        assert_eq!(config.mode, Mode::Local);
        assert_eq!(config.listen_addr, "127.0.0.1:3000".parse().unwrap());
        assert_eq!(config.table, None);
        assert_eq!(config.cache, None);
        assert_eq!(config.ttls.product, Duration::from_secs(300));
        assert_eq!(config.ttls.negative.get(), Duration::from_secs(30));
        assert_eq!(config.http_max_age, 60);
        assert_eq!(config.metrics_namespace, "ProductCatalog");
    }

    #[test]
    fn lambda_mode_requires_a_table_for_the_api_only() {
        // GIVEN Lambda mode without a table
        let lambda = [(AWS_LAMBDA_RUNTIME_API, "127.0.0.1:9001")];
        // WHEN product-api reads it THEN TABLE_NAME is named
        let err = api(&lambda).unwrap_err();
        assert!(err.to_string().contains("TABLE_NAME"), "{err}");
        // AND with a table it is Lambda mode
        let ok = api(&[lambda[0], (TABLE_NAME, "Products")]).unwrap();
        assert_eq!(ok.mode, Mode::Lambda);
        // AND the invalidator, which never reads the table, needs only Redis
        let invalidator: InvalidatorConfig =
            read(&[lambda[0], (REDIS_URL, "redis://cache:6379")]).unwrap();
        assert_eq!(invalidator.mode, Mode::Lambda);
    }

    #[test]
    fn only_an_on_demand_lambda_takes_its_first_event_before_the_cache_is_connected() {
        let lambda = [
            (AWS_LAMBDA_RUNTIME_API, "127.0.0.1:9001"),
            (TABLE_NAME, "Products"),
        ];
        let waits = |kind: Option<&str>| {
            let mut vars = lambda.to_vec();
            vars.extend(kind.map(|kind| (AWS_LAMBDA_INITIALIZATION_TYPE, kind)));
            api(&vars).unwrap().connect_before_first_request
        };
        // An on-demand environment has its request waiting; emulators set no type.
        assert!(!waits(Some("on-demand")));
        assert!(!waits(None));
        // One initialized ahead is frozen after /next, maybe for hours.
        assert!(waits(Some("provisioned-concurrency")));
        assert!(waits(Some("snap-start")));
        assert!(waits(Some("a type Lambda adds later")));
        // Locally, the server listens once the cache is connected, as before.
        assert!(api(&[]).unwrap().connect_before_first_request);
    }

    #[test]
    fn each_binary_reads_only_what_it_uses() {
        // GIVEN a LISTEN_ADDR nobody but the local API server uses
        let vars = [
            (LISTEN_ADDR, "everywhere"),
            (REDIS_URL, "redis://cache:6379"),
        ];
        // THEN only product-api refuses it
        assert!(api(&vars).is_err());
        assert!(read::<CatalogConfig>(&vars).is_ok());
        assert!(read::<InvalidatorConfig>(&vars).is_ok());
        // AND the invalidator needs a REDIS_URL, which the others do not
        let err = read::<InvalidatorConfig>(&[]).unwrap_err();
        assert!(err.to_string().contains(REDIS_URL), "{err}");
    }

    #[test]
    fn every_binary_follows_redis_timeout_ms_with_its_own_default() {
        // GIVEN a Redis URL, without and with REDIS_TIMEOUT_MS
        let url = (REDIS_URL, "redis://cache:6379");
        let timeouts = |vars: &[(&str, &str)]| {
            [
                api(vars).unwrap().cache.unwrap().timeout(),
                read::<InvalidatorConfig>(vars).unwrap().cache.timeout(),
                read::<CatalogConfig>(vars)
                    .unwrap()
                    .cache
                    .unwrap()
                    .timeout(),
            ]
        };
        // THEN each binary has its default, and all follow the variable when set
        assert_eq!(
            timeouts(&[url]),
            [
                API_REDIS_TIMEOUT,
                INVALIDATOR_REDIS_TIMEOUT,
                CATALOG_REDIS_TIMEOUT
            ]
        );
        assert_eq!(
            timeouts(&[url, (REDIS_TIMEOUT_MS, "250")]),
            [Duration::from_millis(250); 3]
        );
    }

    #[test]
    fn every_bad_value_names_its_variable() {
        let cases = [
            (CACHE_TTL_SECONDS, "0"),
            (CACHE_TTL_SECONDS, "five"),
            (CACHE_TTL_SECONDS, "-3"),
            (NEGATIVE_CACHE_TTL_SECONDS, "0"),
            (REDIS_TIMEOUT_MS, "100000"),
            (HTTP_MAX_AGE_SECONDS, "1e9"),
            (L1_CACHE_ENTRIES, "lots"),
            (L1_TTL_MS, "0"),
            (LISTEN_ADDR, "localhost"),
            (TABLE_NAME, "a"),
            (TABLE_NAME, "bad name"),
            (REDIS_URL, "http://localhost:6379"),
            (REDIS_URL, "redis://"),
            (METRICS_NAMESPACE, "AWS/Lambda"),
            (REDIS_AUTH_SECRET_ARN, "secret"),
            (REDIS_AUTH_SECRET_ARN, "arn:aws:s3:::bucket"),
        ];
        for (var, value) in cases {
            // GIVEN one bad value WHEN product-api reads it THEN the error names it
            let err = api(&[(var, value), (REDIS_URL, "redis://cache:6379")])
                .err()
                .or_else(|| api(&[(var, value)]).err())
                .expect(value);
            assert!(err.to_string().contains(var), "{var}={value}: {err}");
        }
    }

    #[test]
    fn redis_passwords_never_reach_messages() {
        let err = api(&[(REDIS_URL, "http://user:hunter2@cache:6379")]).unwrap_err();
        assert!(!err.to_string().contains("hunter2"), "{err}");
        let ok = api(&[(REDIS_URL, "rediss://default:hunter2@cache.example:6379")]).unwrap();
        assert!(!format!("{ok:?}").contains("hunter2"));
    }

    #[test]
    fn the_auth_secret_needs_a_url() {
        // GIVEN a secret without a URL THEN the error names REDIS_URL
        let err = api(&[(REDIS_AUTH_SECRET_ARN, ARN)]).unwrap_err();
        assert!(err.to_string().contains("REDIS_URL"), "{err}");
        // AND a secret with a URL is kept, typed
        let ok = api(&[(REDIS_AUTH_SECRET_ARN, ARN), (REDIS_URL, "rediss://c:6379")]).unwrap();
        let Some(CacheConfig::Redis(redis)) = ok.cache else {
            panic!("{:?}", ok.cache)
        };
        assert_eq!(
            redis.auth,
            RedisAuth::Secret(SecretArn::try_from(ARN.to_owned()).unwrap())
        );
    }

    #[test]
    fn iam_authentication_needs_a_user_a_cache_and_tls() {
        let iam = [
            (
                REDIS_URL,
                "rediss://master.products.abc123.use1.cache.amazonaws.com:6379",
            ),
            (REDIS_IAM_USER, "product-api"),
            (REDIS_IAM_CACHE, "products"),
        ];
        // GIVEN a user, a cache and a TLS URL THEN connections authenticate with IAM
        let redis = |vars: &[(&str, &str)]| match api(vars).map(|config| config.cache) {
            Ok(Some(CacheConfig::Redis(redis))) => Ok(redis),
            other => Err(format!("{other:?}")),
        };
        let RedisAuth::Iam(user) = redis(&iam).unwrap().auth else {
            panic!("not IAM")
        };
        assert_eq!(
            (user.user(), user.cache(), user.serverless()),
            ("product-api", "products", false)
        );
        let serverless = [&iam[..], &[(REDIS_IAM_SERVERLESS, "true")]].concat();
        let RedisAuth::Iam(user) = redis(&serverless).unwrap().auth else {
            panic!("not IAM")
        };
        assert!(user.serverless());
        // AND every way of getting it wrong is an error naming the variable to fix
        let without = |name: &str| -> Vec<(&str, &str)> {
            iam.iter().copied().filter(|(n, _)| *n != name).collect()
        };
        let with = |extra: (&'static str, &'static str)| -> Vec<(&str, &str)> {
            let mut vars: Vec<(&str, &str)> =
                iam.iter().copied().filter(|(n, _)| *n != extra.0).collect();
            vars.push(extra);
            vars
        };
        let cases: Vec<(Vec<(&str, &str)>, &str)> = vec![
            (without(REDIS_IAM_CACHE), REDIS_IAM_CACHE),
            (without(REDIS_IAM_USER), REDIS_IAM_USER),
            (without(REDIS_URL), REDIS_URL),
            (with((REDIS_URL, "redis://cache:6379")), REDIS_URL),
            (
                with((REDIS_URL, "rediss://default:hunter2@cache:6379")),
                REDIS_URL,
            ),
            (with((REDIS_IAM_CACHE, "Products")), REDIS_IAM_CACHE),
            (with((REDIS_IAM_CACHE, "products--2")), REDIS_IAM_CACHE),
            (with((REDIS_IAM_CACHE, "products.example")), REDIS_IAM_CACHE),
            (with((REDIS_IAM_CACHE, "")), REDIS_IAM_CACHE),
            (with((REDIS_IAM_USER, "1user")), REDIS_IAM_USER),
            (with((REDIS_IAM_USER, "Product-API")), REDIS_IAM_USER),
            (with((REDIS_IAM_USER, "product api")), REDIS_IAM_USER),
            (with((REDIS_IAM_SERVERLESS, "yes")), REDIS_IAM_SERVERLESS),
            (with((REDIS_AUTH_SECRET_ARN, ARN)), REDIS_IAM_USER),
            (
                vec![
                    (REDIS_URL, "rediss://c:6379"),
                    (REDIS_IAM_SERVERLESS, "true"),
                ],
                REDIS_IAM_SERVERLESS,
            ),
        ];
        for (vars, named) in cases {
            let err = redis(&vars).unwrap_err();
            assert!(err.contains(named), "{vars:?}: {err}");
            assert!(!err.contains("hunter2"), "{err}");
        }
        // AND without any of them the URL's own credentials are used
        assert_eq!(
            redis(&[(REDIS_URL, "rediss://c:6379")]).unwrap().auth,
            RedisAuth::Url
        );
    }

    #[test]
    fn a_value_that_is_not_utf8_is_an_error_naming_its_variable() {
        use std::os::unix::ffi::OsStringExt;
        for var in [CACHE_TTL_SECONDS, REDIS_URL, TABLE_NAME] {
            // GIVEN one variable whose value is not UTF-8
            let lookup = |name: &str| (name == var).then(|| OsString::from_vec(vec![0xff]));
            // WHEN product-api reads it THEN it is an error naming it, not "unset"
            let err = ApiConfig::from_os_lookup(lookup).unwrap_err();
            assert!(err.to_string().contains(var), "{var}: {err}");
        }
    }

    #[test]
    fn metrics_namespaces_follow_cloudwatch_rules() {
        for good in ["ProductCatalog", "Team/Product-Catalog_1.0", "a #b:c"] {
            assert!(api(&[(METRICS_NAMESPACE, good)]).is_ok(), "{good}");
        }
        for bad in [
            "AWS/Lambda",
            ":x",
            "   ",
            "caf\u{e9}",
            "a\tb",
            "a\"b",
            &"x".repeat(256),
        ] {
            let err = api(&[(METRICS_NAMESPACE, bad)]).unwrap_err();
            assert!(err.to_string().contains(METRICS_NAMESPACE), "{bad}: {err}");
        }
    }

    #[test]
    fn a_query_string_in_the_redis_url_is_redacted_too() {
        let url = RedisUrl::try_from("rediss://cache:6379/0?password=hunter2".to_owned()).unwrap();
        assert_eq!(format!("{url:?}"), "rediss://cache:6379/0?***");
        let err = api(&[(REDIS_URL, "http://cache:6379?password=hunter2")]).unwrap_err();
        assert!(!err.to_string().contains("hunter2"), "{err}");
    }

    #[test]
    fn a_redis_url_on_port_0_is_refused_at_start_up() {
        for url in ["redis://cache:0", "rediss://:token@cache:0/0"] {
            let err = api(&[(REDIS_URL, url)]).unwrap_err().to_string();
            assert!(
                err.contains(REDIS_URL) && err.contains("port 0"),
                "{url}: {err}"
            );
            assert!(!err.contains("token"), "{err}");
        }
        assert!(api(&[(REDIS_URL, "redis://cache:6379")]).is_ok());
    }

    #[test]
    fn empty_values_count_as_unset() {
        let config = api(&[(REDIS_URL, ""), (TABLE_NAME, ""), (CACHE_TTL_SECONDS, "")]).unwrap();
        assert_eq!(config.cache, None);
        assert_eq!(config.table, None);
        assert_eq!(config.ttls.product, Duration::from_secs(300));
    }

    #[test]
    fn a_password_is_hidden_whatever_characters_it_holds() {
        for (url, shown) in [
            (
                "redis://user:s3cr?et@host:6379",
                "redis://user:***@host:6379",
            ),
            (
                "redis://:p/a#ss@host:6379/0?x=1",
                "redis://:***@host:6379/0?***",
            ),
            ("redis://user@host:6379", "redis://user@host:6379"),
            ("redis://host:6379?password=x", "redis://host:6379?***"),
            ("host?password=x", "host?***"),
        ] {
            assert_eq!(redact_url(url), shown, "{url}");
        }
    }

    #[test]
    fn stale_ttl_defaults_to_a_day_and_zero_turns_it_off_for_both_binaries() {
        let url = (REDIS_URL, "redis://cache:6379");
        let stale = |vars: &[(&str, &str)]| {
            let api = api(vars).unwrap().ttls.stale;
            assert_eq!(read::<InvalidatorConfig>(vars).unwrap().ttls.stale, api);
            api
        };
        assert_eq!(stale(&[url]), Some(Duration::from_secs(86_400)));
        assert_eq!(stale(&[url, (STALE_TTL_SECONDS, "0")]), None);
        assert_eq!(
            stale(&[url, (STALE_TTL_SECONDS, "600")]),
            Some(Duration::from_secs(600))
        );
        for bad in ["-1", "a day", "2592001", "1.5"] {
            let err = api(&[(STALE_TTL_SECONDS, bad)]).unwrap_err().to_string();
            assert!(
                err.contains(STALE_TTL_SECONDS) && err.contains(bad),
                "{bad}: {err}"
            );
        }
    }

    #[test]
    fn memcached_urls_name_their_nodes_and_tls() {
        // GIVEN a TLS URL of three nodes, one with the default port
        let config = api(&[(
            MEMCACHED_URL,
            "memcaches://a.cache:11211,b.cache:11212,c.cache",
        )])
        .unwrap();
        let Some(CacheConfig::Memcached(memcached)) = config.cache else {
            panic!("{:?}", config.cache)
        };
        // THEN each node is kept, in order, and TLS is on
        assert!(memcached.url.tls());
        let nodes: Vec<String> = memcached
            .url
            .nodes()
            .iter()
            .map(ToString::to_string)
            .collect();
        assert_eq!(nodes, ["a.cache:11211", "b.cache:11212", "c.cache:11211"]);
        assert_eq!(memcached.timeout, API_REDIS_TIMEOUT);
        // AND plain memcache:// is plain TCP, with MEMCACHED_TIMEOUT_MS followed
        let plain = read::<InvalidatorConfig>(&[
            (MEMCACHED_URL, "memcache://127.0.0.1:11211"),
            (MEMCACHED_TIMEOUT_MS, "20"),
        ])
        .unwrap();
        let CacheConfig::Memcached(memcached) = plain.cache else {
            panic!("{:?}", plain.cache)
        };
        assert!(!memcached.url.tls());
        assert_eq!(memcached.timeout, Duration::from_millis(20));
    }

    #[test]
    fn bad_memcached_urls_name_the_variable() {
        for bad in [
            "redis://a:6379",
            "memcache://",
            "memcache://a:0",
            "memcache://a:x",
            "memcache://a,,b",
            "memcache://user:pw@a:11211",
            "memcache://a:1,a:1",
            "memcache://a b:1",
        ] {
            let err = api(&[(MEMCACHED_URL, bad)]).unwrap_err();
            assert!(err.to_string().contains(MEMCACHED_URL), "{bad}: {err}");
        }
        let err = api(&[(MEMCACHED_URL, "memcache://a"), (MEMCACHED_TIMEOUT_MS, "0")]).unwrap_err();
        assert!(err.to_string().contains(MEMCACHED_TIMEOUT_MS), "{err}");
    }

    #[test]
    fn redis_and_memcached_together_is_an_error_naming_both() {
        let both = [
            (REDIS_URL, "redis://a:6379"),
            (MEMCACHED_URL, "memcache://b:11211"),
        ];
        for err in [
            api(&both).unwrap_err(),
            read::<InvalidatorConfig>(&both).unwrap_err(),
            read::<CatalogConfig>(&both).unwrap_err(),
        ] {
            let message = err.to_string();
            assert!(
                message.contains(REDIS_URL) && message.contains(MEMCACHED_URL),
                "{message}"
            );
        }
    }

    #[test]
    fn ttl_jitter_is_off_by_default_and_read_alike_by_both_binaries() {
        let url = (REDIS_URL, "redis://cache:6379");
        let jitter = |vars: &[(&str, &str)]| {
            let api = api(vars).unwrap().ttls.jitter;
            assert_eq!(read::<InvalidatorConfig>(vars).unwrap().ttls.jitter, api);
            api
        };
        assert_eq!(jitter(&[url]), TtlJitter::default());
        assert_eq!(
            jitter(&[url, (CACHE_TTL_JITTER_PERCENT, "0")]),
            TtlJitter::default()
        );
        assert_eq!(
            jitter(&[url, (CACHE_TTL_JITTER_PERCENT, "10")]),
            TtlJitter::percent(10)
        );
        assert_eq!(
            jitter(&[url, (CACHE_TTL_JITTER_PERCENT, "50")]),
            TtlJitter::percent(50)
        );
        for bad in ["51", "-5", "10%", "2.5", "ten"] {
            let err = api(&[(CACHE_TTL_JITTER_PERCENT, bad)])
                .unwrap_err()
                .to_string();
            assert!(
                err.contains(CACHE_TTL_JITTER_PERCENT) && err.contains(bad),
                "{bad}: {err}"
            );
        }
    }
}
