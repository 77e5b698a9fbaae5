//! Error enums, one per layer. Only `http.rs` turns them into status codes.

use thiserror::Error;

/// Any error from a backing library, kept as the `source` of ours.
pub type BoxError = Box<dyn std::error::Error + Send + Sync + 'static>;

/// A variable of the environment that cannot be used.
#[derive(Debug, Error)]
pub enum ConfigError {
    #[error("{var}={value:?} is invalid: {reason}")]
    Invalid {
        var: &'static str,
        value: String,
        reason: String,
    },
    #[error("{var} is not set: {reason}")]
    Missing {
        var: &'static str,
        reason: &'static str,
    },
}

impl ConfigError {
    pub(crate) fn invalid(var: &'static str, value: &str, reason: &str) -> Self {
        Self::Invalid {
            var,
            value: value.to_owned(),
            reason: reason.to_owned(),
        }
    }

    pub(crate) fn missing(var: &'static str, reason: &'static str) -> Self {
        Self::Missing { var, reason }
    }
}

/// Why a product id was refused.
#[derive(Debug, Error, Clone, PartialEq, Eq)]
pub enum IdError {
    #[error("product id is empty")]
    Empty,
    #[error("product id is {0} bytes long; the limit is {max}", max = crate::domain::MAX_ID_BYTES)]
    TooLong(usize),
    #[error("product id contains a control character")]
    ControlCharacter,
    #[error("product id contains '/'")]
    Slash,
    #[error("product id is not valid percent-encoded UTF-8")]
    BadEncoding,
}

/// A DynamoDB item or JSON document that cannot be converted.
#[derive(Debug, Error)]
pub enum ItemError {
    #[error("number attribute {0:?} is not a JSON number")]
    BadNumber(String),
    #[error("a product must be a JSON object")]
    NotAnObject,
    #[error("a product needs a string productId")]
    MissingId,
    #[error(transparent)]
    InvalidId(#[from] IdError),
    #[error(
        "number {0} is outside DynamoDB's range (at most 38 significant digits, magnitude from 1e-130 to under 1e126)"
    )]
    NumberOutOfRange(String),
    #[error("the item is {0} bytes as DynamoDB counts them; the limit is 409600 (400 KB)")]
    TooLarge(usize),
    #[error("an attribute name of {0} bytes; DynamoDB takes 1 to 65535")]
    AttributeName(usize),
    #[error(
        "more than 31 lists or maps inside one another: DynamoDB takes 32 levels, the attribute counted"
    )]
    TooDeep,
    #[error("same productId as item [{first}]")]
    Duplicate { first: usize },
    #[error("invalid JSON")]
    Json(#[from] serde_json::Error),
}

/// One element of a catalog file that cannot be loaded, by its index in the array.
#[derive(Debug, Error)]
#[error("item [{index}]{}: {error}", id.as_ref().map(|id| format!(" (productId {id:?})")).unwrap_or_default())]
pub struct BadItem {
    pub index: usize,
    pub id: Option<String>,
    #[source]
    pub error: ItemError,
}

/// A catalog file that cannot be loaded as a whole.
#[derive(Debug, Error)]
pub enum CatalogError {
    #[error("not a JSON array")]
    NotAnArray(#[source] serde_json::Error),
    #[error("{} of {total} items are invalid", bad.len())]
    BadItems { bad: Vec<BadItem>, total: usize },
}

/// A cache call that failed or timed out.
#[derive(Debug, Error)]
#[error("cache {operation} failed")]
pub struct CacheError {
    pub operation: &'static str,
    /// Whether the cache as a whole is in trouble, or only this call or key.
    pub kind: CacheErrorKind,
    #[source]
    pub source: BoxError,
}

/// What a [`CacheError`] says about the cache: the breaker counts only outages.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CacheErrorKind {
    /// The cache cannot be reached or did not answer in time (connection refused or
    /// lost, timeout, a server that refuses everything): every key is affected.
    Unavailable,
    /// The cache answered, but `key` holds a value of another type than the service
    /// writes (Redis `WRONGTYPE`, e.g. a hash): only that key is affected.
    WrongType { key: String },
    /// The cache answered with an error about this one call (an argument refused, a
    /// reply that cannot be read as what was asked): the cache itself is fine.
    Rejected,
}

impl CacheError {
    /// An outage: the cache cannot be used at all right now.
    pub fn new(operation: &'static str, source: impl Into<BoxError>) -> Self {
        Self::with_kind(operation, CacheErrorKind::Unavailable, source)
    }

    /// An error of the given kind; adapters sort their library's errors with it.
    pub fn with_kind(
        operation: &'static str,
        kind: CacheErrorKind,
        source: impl Into<BoxError>,
    ) -> Self {
        Self {
            operation,
            kind,
            source: source.into(),
        }
    }

    /// Whether this error means the cache is down or slow for everyone (and not just
    /// unable to serve one call or one key).
    pub fn is_outage(&self) -> bool {
        matches!(self.kind, CacheErrorKind::Unavailable)
    }
}

/// The product store could not answer.
#[derive(Debug, Error)]
pub enum StoreError {
    #[error("product store unavailable")]
    Unavailable(#[source] BoxError),
    #[error("stored item {id:?} cannot be served")]
    Malformed {
        id: String,
        #[source]
        source: ItemError,
    },
}

/// Outcome of the read path other than a product. Cloneable, because one lookup's
/// outcome is shared by every request that joined it.
#[derive(Debug, Error, Clone)]
pub enum ServiceError {
    #[error("product {:?} not found", .0.as_str())]
    NotFound(crate::domain::ProductId),
    #[error("product store failed")]
    Store(#[source] std::sync::Arc<StoreError>),
}

impl From<StoreError> for ServiceError {
    fn from(err: StoreError) -> Self {
        Self::Store(std::sync::Arc::new(err))
    }
}

/// Why the service could not start.
#[derive(Debug, Error)]
pub enum StartError {
    #[error("the embedded sample catalog is invalid")]
    Catalog(#[from] ItemError),
    #[error("the Redis client could not be built")]
    Cache(#[from] CacheError),
    #[error(transparent)]
    Secret(#[from] SecretError),
    #[error(
        "REDIS_IAM_USER={user}: no IAM authentication token can be signed for REDIS_IAM_CACHE={cache}"
    )]
    IamToken {
        user: String,
        cache: String,
        #[source]
        source: BoxError,
    },
    #[error(transparent)]
    Config(#[from] ConfigError),
}

/// The ElastiCache AUTH token could not be read from its secret.
#[derive(Debug, Error)]
#[error("REDIS_AUTH_SECRET_ARN={arn}: the Redis AUTH token could not be read from Secrets Manager")]
pub struct SecretError {
    pub arn: String,
    #[source]
    pub source: BoxError,
    /// Whether the read may succeed later by itself (Secrets Manager timed out, was
    /// throttled or failed on its side), as opposed to a refusal or a wrong secret.
    pub may_pass: bool,
}

/// An error and its chain of causes on one line, for logs.
pub fn report(err: &dyn std::error::Error) -> String {
    let mut line = err.to_string();
    let mut source = err.source();
    while let Some(cause) = source {
        line.push_str(": ");
        line.push_str(&cause.to_string());
        source = cause.source();
    }
    line
}
