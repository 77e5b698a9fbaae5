//! The one reader of the environment. Every variable is read once, at start-up, into
//! [`Config`]; a bad value stops the process with an error naming the variable.

use std::net::SocketAddr;
use std::time::Duration;

use crate::error::ConfigError;

pub const TABLE_NAME: &str = "TABLE_NAME";
pub const REDIS_URL: &str = "REDIS_URL";
pub const REDIS_AUTH_SECRET_ARN: &str = "REDIS_AUTH_SECRET_ARN";
pub const CACHE_TTL_SECONDS: &str = "CACHE_TTL_SECONDS";
pub const NEGATIVE_CACHE_TTL_SECONDS: &str = "NEGATIVE_CACHE_TTL_SECONDS";
pub const REDIS_TIMEOUT_MS: &str = "REDIS_TIMEOUT_MS";
pub const HTTP_MAX_AGE_SECONDS: &str = "HTTP_MAX_AGE_SECONDS";
pub const L1_CACHE_ENTRIES: &str = "L1_CACHE_ENTRIES";
pub const L1_TTL_MS: &str = "L1_TTL_MS";
pub const METRICS_NAMESPACE: &str = "METRICS_NAMESPACE";
pub const LISTEN_ADDR: &str = "LISTEN_ADDR";
/// Set by the Lambda service; its presence selects Lambda mode.
pub const AWS_LAMBDA_RUNTIME_API: &str = "AWS_LAMBDA_RUNTIME_API";

const DEFAULT_CACHE_TTL: Duration = Duration::from_secs(300);
const DEFAULT_NEGATIVE_TTL: Duration = Duration::from_secs(30);
const DEFAULT_REDIS_TIMEOUT: Duration = Duration::from_millis(50);
const DEFAULT_HTTP_MAX_AGE: u32 = 60;
const DEFAULT_METRICS_NAMESPACE: &str = "ProductCatalog";
const DEFAULT_LISTEN_ADDR: &str = "127.0.0.1:3000";

/// How requests reach the process.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// Inside AWS Lambda: events come from the Runtime API.
    Lambda,
    /// A plain HTTP server on `listen_addr`.
    Local { listen_addr: SocketAddr },
}

/// A Redis URL; kept out of `Debug` output because it may carry a password.
#[derive(Clone, PartialEq, Eq)]
pub struct RedisUrl(String);

impl RedisUrl {
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The same URL with `password` as its password (the ElastiCache AUTH token).
    ///
    /// # Errors
    /// [`ConfigError`] naming `REDIS_URL` when the URL cannot carry a password.
    pub fn with_password(&self, password: &str) -> Result<Self, ConfigError> {
        let mut url = url::Url::parse(&self.0).map_err(|err| {
            ConfigError::invalid(REDIS_URL, &redact_url(&self.0), &err.to_string())
        })?;
        url.set_password(Some(password)).map_err(|()| {
            ConfigError::invalid(REDIS_URL, &redact_url(&self.0), "cannot carry a password")
        })?;
        Ok(Self(url.into()))
    }
}

impl TryFrom<String> for RedisUrl {
    type Error = ConfigError;

    fn try_from(url: String) -> Result<Self, ConfigError> {
        validate_redis_url(&url)?;
        Ok(Self(url))
    }
}

impl std::fmt::Debug for RedisUrl {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&redact_url(&self.0))
    }
}

/// Everything the process needs from its environment.
#[derive(Debug, Clone)]
pub struct Config {
    pub mode: Mode,
    /// DynamoDB table; `None` selects the embedded sample catalog (local mode only).
    pub table_name: Option<String>,
    /// Redis or ElastiCache; `None` selects the in-process cache.
    pub redis_url: Option<RedisUrl>,
    /// Secrets Manager secret holding the AUTH token, added to `redis_url` at start-up.
    pub redis_auth_secret_arn: Option<String>,
    /// Time to live of `product:<id>` entries.
    pub cache_ttl: Duration,
    /// How long an id the table lacks is remembered.
    pub negative_ttl: Duration,
    /// Bound on every Redis call; past it the request is served from the table.
    pub redis_timeout: Duration,
    /// `Cache-Control: public, max-age=<this>` on 200 responses.
    pub http_max_age: u32,
    /// Size of the optional in-process tier in front of Redis (0: off).
    pub l1_entries: u64,
    /// How long the in-process tier keeps a product (stream invalidations cannot reach it).
    pub l1_ttl: Duration,
    pub metrics_namespace: String,
}

impl Config {
    /// Reads the process environment.
    ///
    /// # Errors
    /// A [`ConfigError`] naming the first variable whose value is unusable.
    pub fn from_env() -> Result<Self, ConfigError> {
        Self::from_lookup(|name| std::env::var(name).ok())
    }

    /// Reads configuration through `lookup`, so tests need not touch the real environment.
    /// An empty value counts as unset.
    ///
    /// # Errors
    /// A [`ConfigError`] naming the first variable whose value is unusable.
    pub fn from_lookup(lookup: impl Fn(&str) -> Option<String>) -> Result<Self, ConfigError> {
        let get = |name: &str| lookup(name).filter(|value| !value.is_empty());

        let mode = if get(AWS_LAMBDA_RUNTIME_API).is_some() {
            Mode::Lambda
        } else {
            let raw = get(LISTEN_ADDR).unwrap_or_else(|| DEFAULT_LISTEN_ADDR.to_owned());
            let listen_addr = raw.parse().map_err(|_| {
                ConfigError::invalid(LISTEN_ADDR, &raw, "expected host:port, e.g. 127.0.0.1:3000")
            })?;
            Mode::Local { listen_addr }
        };

        let table_name = get(TABLE_NAME)
            .map(|name| validate_table_name(&name).map(|()| name))
            .transpose()?;
        if mode == Mode::Lambda && table_name.is_none() {
            return Err(ConfigError::missing(
                TABLE_NAME,
                "required in Lambda mode (the sample catalog is for local runs only)",
            ));
        }

        let redis_url = get(REDIS_URL).map(RedisUrl::try_from).transpose()?;
        let redis_auth_secret_arn = get(REDIS_AUTH_SECRET_ARN);
        if let Some(arn) = &redis_auth_secret_arn {
            if !arn.starts_with("arn:") {
                return Err(ConfigError::invalid(
                    REDIS_AUTH_SECRET_ARN,
                    arn,
                    "expected a Secrets Manager secret ARN",
                ));
            }
            if redis_url.is_none() {
                return Err(ConfigError::missing(
                    REDIS_URL,
                    "REDIS_AUTH_SECRET_ARN is set, so a Redis URL is needed",
                ));
            }
        }

        let cache_ttl = match get(CACHE_TTL_SECONDS) {
            None => DEFAULT_CACHE_TTL,
            Some(raw) => {
                Duration::from_secs(parse_in_range(CACHE_TTL_SECONDS, &raw, 1, 30 * 24 * 3600)?)
            }
        };
        let negative_ttl = match get(NEGATIVE_CACHE_TTL_SECONDS) {
            None => DEFAULT_NEGATIVE_TTL,
            Some(raw) => {
                Duration::from_secs(parse_in_range(NEGATIVE_CACHE_TTL_SECONDS, &raw, 1, 3600)?)
            }
        };
        let redis_timeout = match get(REDIS_TIMEOUT_MS) {
            None => DEFAULT_REDIS_TIMEOUT,
            Some(raw) => Duration::from_millis(parse_in_range(REDIS_TIMEOUT_MS, &raw, 1, 10_000)?),
        };
        let http_max_age = match get(HTTP_MAX_AGE_SECONDS) {
            None => DEFAULT_HTTP_MAX_AGE,
            // Bounded by a year, so the value always fits in u32.
            Some(raw) => parse_in_range(HTTP_MAX_AGE_SECONDS, &raw, 0, 365 * 24 * 3600)? as u32,
        };

        let l1_entries = match get(L1_CACHE_ENTRIES) {
            None => 0,
            Some(raw) => parse_in_range(L1_CACHE_ENTRIES, &raw, 0, 1_000_000)?,
        };
        let l1_ttl = match get(L1_TTL_MS) {
            None => Duration::from_secs(1),
            Some(raw) => Duration::from_millis(parse_in_range(L1_TTL_MS, &raw, 1, 60_000)?),
        };

        let metrics_namespace =
            get(METRICS_NAMESPACE).unwrap_or_else(|| DEFAULT_METRICS_NAMESPACE.to_owned());
        validate_namespace(&metrics_namespace)?;

        Ok(Self {
            mode,
            table_name,
            redis_url,
            redis_auth_secret_arn,
            cache_ttl,
            negative_ttl,
            redis_timeout,
            http_max_age,
            l1_entries,
            l1_ttl,
            metrics_namespace,
        })
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

/// DynamoDB's own rule: 3 to 255 characters of `a-z A-Z 0-9 _ - .`.
fn validate_table_name(name: &str) -> Result<(), ConfigError> {
    let valid_chars = name
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'-' | b'.'));
    if (3..=255).contains(&name.len()) && valid_chars {
        Ok(())
    } else {
        Err(ConfigError::invalid(
            TABLE_NAME,
            name,
            "expected 3 to 255 characters of a-z, A-Z, 0-9, '_', '-', '.'",
        ))
    }
}

fn validate_redis_url(raw: &str) -> Result<(), ConfigError> {
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
    let database = url.path().trim_start_matches('/');
    if !database.is_empty() && database.parse::<u8>().is_err() {
        return Err(invalid("the path must be a database number, e.g. /0"));
    }
    Ok(())
}

/// CloudWatch namespaces: 1 to 255 characters, not starting with `AWS/`.
fn validate_namespace(namespace: &str) -> Result<(), ConfigError> {
    if namespace.len() <= 255
        && !namespace.starts_with("AWS/")
        && !namespace.chars().any(char::is_control)
    {
        Ok(())
    } else {
        Err(ConfigError::invalid(
            METRICS_NAMESPACE,
            namespace,
            "expected 1 to 255 printable characters, not starting with AWS/",
        ))
    }
}

/// Hides the password of a URL such as `rediss://user:secret@host:6379`.
fn redact_url(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else {
        return url.to_owned();
    };
    match rest.rsplit_once('@') {
        Some((credentials, host)) => {
            let user = credentials.split_once(':').map_or("", |(user, _)| user);
            format!("{scheme}://{user}:***@{host}")
        }
        None => url.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(vars: &[(&str, &str)]) -> Result<Config, ConfigError> {
        let vars: Vec<(String, String)> = vars
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        Config::from_lookup(|name| vars.iter().find(|(k, _)| k == name).map(|(_, v)| v.clone()))
    }

    #[test]
    fn defaults_give_the_embedded_local_setup() {
        let config = config(&[]).unwrap();
        assert_eq!(
            config.mode,
            Mode::Local {
                listen_addr: "127.0.0.1:3000".parse().unwrap()
            }
        );
        assert_eq!(config.table_name, None);
        assert_eq!(config.redis_url, None);
        assert_eq!(config.cache_ttl, Duration::from_secs(300));
        assert_eq!(config.negative_ttl, Duration::from_secs(30));
        assert_eq!(config.redis_timeout, Duration::from_millis(50));
        assert_eq!(config.http_max_age, 60);
        assert_eq!(config.metrics_namespace, "ProductCatalog");
    }

    #[test]
    fn lambda_mode_requires_a_table() {
        let err = config(&[(AWS_LAMBDA_RUNTIME_API, "127.0.0.1:9001")]).unwrap_err();
        assert!(err.to_string().contains("TABLE_NAME"), "{err}");
        let ok = config(&[
            (AWS_LAMBDA_RUNTIME_API, "127.0.0.1:9001"),
            (TABLE_NAME, "Products"),
        ])
        .unwrap();
        assert_eq!(ok.mode, Mode::Lambda);
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
        ];
        for (var, value) in cases {
            let err = config(&[(var, value)]).expect_err(value);
            assert!(err.to_string().contains(var), "{var}={value}: {err}");
        }
    }

    #[test]
    fn redis_passwords_never_reach_messages() {
        let err = config(&[(REDIS_URL, "http://user:hunter2@cache:6379")]).unwrap_err();
        assert!(!err.to_string().contains("hunter2"), "{err}");
        let ok = config(&[(REDIS_URL, "rediss://default:hunter2@cache.example:6379")]).unwrap();
        assert!(!format!("{ok:?}").contains("hunter2"));
    }

    #[test]
    fn the_auth_token_goes_into_the_url() {
        let url = RedisUrl::try_from("rediss://cache.example:6379".to_owned()).unwrap();
        assert_eq!(
            url.with_password("t0k/en").unwrap().as_str(),
            "rediss://:t0k%2Fen@cache.example:6379"
        );
        let err = config(&[(
            REDIS_AUTH_SECRET_ARN,
            "arn:aws:secretsmanager:eu-west-1:1:secret:x",
        )])
        .unwrap_err();
        assert!(err.to_string().contains("REDIS_URL"), "{err}");
    }

    #[test]
    fn empty_values_count_as_unset() {
        let config = config(&[(REDIS_URL, ""), (TABLE_NAME, ""), (CACHE_TTL_SECONDS, "")]).unwrap();
        assert_eq!(config.redis_url, None);
        assert_eq!(config.table_name, None);
        assert_eq!(config.cache_ttl, Duration::from_secs(300));
    }
}
