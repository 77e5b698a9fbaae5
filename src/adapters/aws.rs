//! AWS SDK client set-up, in one place: the SDK configuration with bounded timeouts
//! (loaded once per start-up, however many clients are built from it), the
//! DynamoDB client, and the one Secrets Manager read (the ElastiCache AUTH token). `AWS_ENDPOINT_URL_DYNAMODB` and `AWS_ENDPOINT_URL_SECRETS_MANAGER` (read by
//! the SDK itself) point the clients at emulators.

use std::time::Duration;

use aws_smithy_runtime_api::client::orchestrator::HttpResponse;
use aws_smithy_runtime_api::client::result::{ConnectorError, SdkError};
use aws_smithy_types::error::metadata::ProvideErrorMetadata;

use crate::adapters::dns::EarlyLookups;
use crate::adapters::early_connection::EarlyConnection;
use crate::config::SecretArn;
use crate::error::{BoxError, SecretError};
use crate::tls::TrustedRoots;

/// How long a new connection to an AWS endpoint may take.
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(1);
/// How long one attempt of a call may take.
pub const ATTEMPT_TIMEOUT: Duration = Duration::from_secs(1);
/// How long a call may take, retries included: a slow table answers with a 503 well
/// inside the Lambda timeout instead of hanging the invocation. The store port's bound.
pub const OPERATION_TIMEOUT: Duration = crate::ports::STORE_READ_TIMEOUT;
/// Attempts per call, the first included.
pub const MAX_ATTEMPTS: u32 = 3;

/// The SDK configuration of one start-up, loaded by the first client that needs it;
/// clients built meanwhile wait for that load instead of repeating it (at a cold start
/// the secret read and the DynamoDB client ask for it at the same time). Not a process
/// global: SDK clients keep connections on the tokio runtime that made them. Clones
/// share the one load, which runs [`off_the_runtime_thread`].
#[derive(Clone, Default)]
pub struct SharedSdkConfig {
    roots: TrustedRoots,
    lookups: EarlyLookups,
    early: EarlyConnection,
    config: std::sync::Arc<tokio::sync::OnceCell<aws_config::SdkConfig>>,
}

impl SharedSdkConfig {
    /// A configuration whose clients trust `roots` (the default: the system's).
    pub fn trusting(roots: TrustedRoots) -> Self {
        Self {
            roots,
            ..Self::default()
        }
    }

    /// The same, its clients taking the answers of `lookups` started at start-up.
    #[must_use]
    pub fn resolving_with(self, lookups: EarlyLookups) -> Self {
        Self { lookups, ..self }
    }

    /// The same, the secret read's first request sent over `early` ([`AuthSecret`]).
    #[must_use]
    pub fn connecting_early(self, early: EarlyConnection) -> Self {
        Self { early, ..self }
    }

    /// The roots its clients trust; the cache's TLS trusts the same.
    pub fn trusted_roots(&self) -> TrustedRoots {
        self.roots
    }

    /// The lookups its clients take answers from; the cache's connections take theirs
    /// from the same.
    pub fn early_lookups(&self) -> EarlyLookups {
        self.lookups.clone()
    }

    pub async fn get(&self) -> &aws_config::SdkConfig {
        let (roots, lookups) = (self.roots, self.lookups.clone());
        self.config
            .get_or_init(|| {
                off_the_runtime_thread(async move { loader(roots, lookups).load().await })
            })
            .await
    }

    /// A client on this configuration, made by `make` (e.g. `Client::new`) on a blocking
    /// thread: building a client parses the trust store again.
    pub async fn client<C: Send + 'static>(
        &self,
        make: impl FnOnce(&aws_config::SdkConfig) -> C + Send + 'static,
    ) -> C {
        let config = self.get().await.clone();
        blocking(move || make(&config)).await
    }
}

/// Runs start-up work of the AWS SDK on a blocking thread of the current runtime, which
/// still drives its I/O. Loading the SDK configuration reads and parses the system's
/// trust store (the SDK's HTTP client builds its connector when a client is configured),
/// milliseconds of CPU without an `await`: on the runtime's thread (one, in Lambda) it
/// held up the Redis connection, and with it a first hit, which needs none of it.
///
/// For start-up work only: the runtime must be running (in Lambda, its thread is in
/// `block_on`) until `work` ends; a runtime shut down while `work` waits on I/O or a
/// timer makes that wait panic on the blocking thread. (Lambda sets `AWS_REGION`, so the
/// configuration load waits on nothing there; without it the SDK asks the instance
/// metadata endpoint.) A panic in `work` is resumed in the caller.
pub async fn off_the_runtime_thread<F>(work: F) -> F::Output
where
    F: Future + Send + 'static,
    F::Output: Send + 'static,
{
    let runtime = tokio::runtime::Handle::current();
    blocking(move || runtime.block_on(work)).await
}

/// A synchronous piece of SDK start-up on a blocking thread; a panic in it is resumed in
/// the caller.
async fn blocking<T: Send + 'static>(work: impl FnOnce() -> T + Send + 'static) -> T {
    match tokio::task::spawn_blocking(work).await {
        Ok(output) => output,
        Err(failed) => std::panic::resume_unwind(failed.into_panic()),
    }
}

/// A freshly loaded SDK configuration: the standard credential and region chain, with
/// the timeouts above, trusting the system's roots.
pub async fn sdk_config() -> aws_config::SdkConfig {
    sdk_config_trusting(TrustedRoots::System).await
}

/// [`sdk_config`], its clients trusting `roots`.
pub async fn sdk_config_trusting(roots: TrustedRoots) -> aws_config::SdkConfig {
    loader(roots, EarlyLookups::default()).load().await
}

fn loader(roots: TrustedRoots, lookups: EarlyLookups) -> aws_config::ConfigLoader {
    loader_with(roots, lookups, |name| std::env::var(name).ok())
}

/// [`loader`], reading the environment through `var`.
fn loader_with(
    roots: TrustedRoots,
    lookups: EarlyLookups,
    var: impl Fn(&str) -> Option<String>,
) -> aws_config::ConfigLoader {
    let timeouts = aws_config::timeout::TimeoutConfig::builder()
        .connect_timeout(CONNECT_TIMEOUT)
        .operation_attempt_timeout(ATTEMPT_TIMEOUT)
        .operation_timeout(OPERATION_TIMEOUT)
        .build();
    let mut loader = aws_config::defaults(aws_config::BehaviorVersion::latest())
        .timeout_config(timeouts)
        .retry_config(aws_config::retry::RetryConfig::standard().with_max_attempts(MAX_ATTEMPTS));
    let from_env = SettledByEnv::read(var);
    if from_env.credentials {
        loader = loader.credentials_provider(
            aws_config::environment::EnvironmentVariableCredentialsProvider::new(),
        );
    }
    if let Some(region) = from_env.region {
        loader = loader.region(aws_config::Region::new(region));
    }
    let trust_store = roots.sdk_trust_store().unwrap_or_default();
    loader.http_client(https_client(trust_store, lookups))
}

/// What the environment settles before the SDK's default chains would look further.
/// Lambda sets the function role's credentials and `AWS_REGION` in every sandbox, and
/// both default chains look at the environment first; but building the credential chain
/// also builds its profile, web-identity (an STS client, with STS's endpoint tables),
/// container and instance-metadata providers, CPU on the cold start's longest chain
/// (the secret read) for providers that are never asked. So where the environment
/// answers, the loader is given the environment's own providers: the same answer,
/// without building the rest. (Decided once per load, while the provider reads the
/// environment again at each refresh: no binary here changes its environment.)
#[derive(Debug, PartialEq, Eq)]
struct SettledByEnv {
    /// The environment's credential provider would answer: an access key and a secret
    /// key, both not blank (the test it applies itself).
    credentials: bool,
    /// `AWS_REGION`, the first variable the region chain reads, when not blank.
    region: Option<String>,
}

impl SettledByEnv {
    fn read(var: impl Fn(&str) -> Option<String>) -> Self {
        let set = |name| var(name).filter(|value: &String| !value.trim().is_empty());
        Self {
            credentials: set("AWS_ACCESS_KEY_ID").is_some()
                && set("AWS_SECRET_ACCESS_KEY").is_some(),
            region: set("AWS_REGION"),
        }
    }
}

/// An AWS service start-up calls, to look its endpoint up early ([`endpoint`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Service {
    DynamoDb,
    SecretsManager,
}

impl Service {
    /// The first label of its regional endpoints' host.
    fn endpoint_prefix(self) -> &'static str {
        match self {
            Self::DynamoDb => "dynamodb",
            Self::SecretsManager => "secretsmanager",
        }
    }

    /// Its `AWS_ENDPOINT_URL_*` variable.
    fn endpoint_url_variable(self) -> &'static str {
        match self {
            Self::DynamoDb => "AWS_ENDPOINT_URL_DYNAMODB",
            Self::SecretsManager => "AWS_ENDPOINT_URL_SECRETS_MANAGER",
        }
    }
}

/// The endpoint `service`'s client calls, as the SDK chooses it from what the
/// environment holds: the endpoint URL set for the service or for all, else the regional
/// endpoint of `AWS_REGION` (what Lambda sets) in the commercial, GovCloud, China or
/// European Sovereign Cloud partitions. `None` where the SDK would look further (a
/// profile, FIPS or dual-stack endpoints, the isolated partitions); that connection then
/// resolves its host when it connects and opens when the SDK sends, as without this. A
/// wrong guess costs one lookup and one connection nobody takes (closed after 5 s).
/// (`endpoints_are_the_sdk_s_own` checks it against the SDK's endpoint rules.)
pub fn endpoint(service: Service) -> Option<url::Url> {
    endpoint_with(service, |name| std::env::var(name).ok())
}

/// [`endpoint`], reading the environment through `var`.
fn endpoint_with(service: Service, var: impl Fn(&str) -> Option<String>) -> Option<url::Url> {
    let set = |name: &str| var(name).filter(|value| !value.trim().is_empty());
    // As the SDK reads its flags: `true` in any case, untrimmed.
    let on = |name: &str| var(name).is_some_and(|value| value.eq_ignore_ascii_case("true"));
    if !on("AWS_IGNORE_CONFIGURED_ENDPOINT_URLS") {
        // The service's variable, even blank, is the one the SDK reads.
        if let Some(url) = var(service.endpoint_url_variable()).or_else(|| set("AWS_ENDPOINT_URL"))
        {
            return url::Url::parse(url.trim()).ok().filter(url::Url::has_host);
        }
    }
    // DynamoDB's account-based endpoints name the account, which the SDK learns from
    // the credentials.
    if on("AWS_USE_FIPS_ENDPOINT")
        || on("AWS_USE_DUALSTACK_ENDPOINT")
        || (service == Service::DynamoDb && set("AWS_ACCOUNT_ID").is_some())
    {
        return None;
    }
    let region = set("AWS_REGION")?;
    let domain = if region.starts_with("cn-") {
        "amazonaws.com.cn"
    } else if region.starts_with("eusc-") {
        "amazonaws.eu"
    } else if region.contains("-iso") {
        return None;
    } else {
        "amazonaws.com"
    };
    url::Url::parse(&format!(
        "https://{}.{region}.{domain}",
        service.endpoint_prefix()
    ))
    .ok()
}

/// The SDK's default HTTPS client (rustls on AWS-LC, the connector settings and sleep of
/// each client, the proxy settings of the environment), trusting `trust_store` (its
/// default: the system's roots) and resolving names through `lookups` (getaddrinfo on a
/// blocking thread, as the default resolver, where start-up looked up nothing). A copy
/// of aws-smithy-runtime 1.11's `default_https_client` (for behavior versions since
/// 2025-08-07), which takes neither: check it against that function when the SDK is
/// upgraded.
pub fn https_client(
    trust_store: aws_smithy_http_client::tls::TrustStore,
    lookups: EarlyLookups,
) -> aws_sdk_dynamodb::config::SharedHttpClient {
    use aws_smithy_http_client::{ConnectorBuilder, proxy::ProxyConfig, tls};
    let context = tls::TlsContext::builder()
        .with_trust_store(trust_store)
        .build()
        .expect("a TLS context of PEM roots always builds");
    aws_smithy_http_client::Builder::new().build_with_connector_fn(move |settings, components| {
        let mut connector = ConnectorBuilder::default()
            .tls_provider(tls::Provider::Rustls(
                tls::rustls_provider::CryptoMode::AwsLc,
            ))
            .tls_context(context.clone());
        connector.set_connector_settings(settings.cloned());
        if let Some(components) = components {
            connector.set_sleep_impl(components.sleep_impl());
        }
        connector.set_proxy_config(Some(ProxyConfig::from_env()));
        connector.build_with_resolver(lookups.clone())
    })
}

/// A DynamoDB client on [`sdk_config_trusting`] `roots`.
pub async fn dynamodb_client(roots: TrustedRoots) -> aws_sdk_dynamodb::Client {
    aws_sdk_dynamodb::Client::new(&sdk_config_trusting(roots).await)
}

/// The secret holding the ElastiCache AUTH token, with the client that reads it: built
/// for the read at start-up, and kept for the reads after Redis refuses the token.
#[derive(Clone)]
pub struct AuthSecret {
    client: aws_sdk_secretsmanager::Client,
    arn: SecretArn,
}

impl AuthSecret {
    /// The secret `arn`, read through a client on `sdk`, its first request over the
    /// connection start-up opened (if it did).
    pub async fn open(sdk: &SharedSdkConfig, arn: &SecretArn) -> Self {
        let early = sdk.early.clone();
        let client = sdk
            .client(move |config| {
                let mut builder = aws_sdk_secretsmanager::config::Builder::from(config);
                builder.set_http_client(
                    config
                        .http_client()
                        .map(|http| early.serving_first_request(http)),
                );
                aws_sdk_secretsmanager::Client::from_conf(builder.build())
            })
            .await;
        Self {
            client,
            arn: arn.clone(),
        }
    }

    /// Reads the secret's string value.
    ///
    /// # Errors
    /// [`SecretError`] naming the secret when it cannot be read or holds no token; it
    /// says whether the failure may pass by itself ([`read_may_pass`]).
    pub async fn read(&self) -> Result<String, SecretError> {
        let failed = |source: BoxError, may_pass| SecretError {
            arn: self.arn.as_str().to_owned(),
            source,
            may_pass,
        };
        let secret = self
            .client
            .get_secret_value()
            .secret_id(self.arn.as_str())
            .send()
            .await
            .map_err(|err| {
                let may_pass = read_may_pass(&err);
                failed(err.into(), may_pass)
            })?;
        auth_token(secret.secret_string).map_err(|why| failed(why.into(), false))
    }
}

/// Whether a failed call may succeed later by itself, past the SDK's own retries: no
/// answer in time, an answer cut short, or one that says to try again (the service's
/// own fault, throttling). Not a connection that could not be made (a refused
/// handshake, no route, an unknown name): at start-up that is most often a setting
/// (`TRUSTED_ROOTS`, a security group, the endpoint), which must stop the process,
/// saying so, where the first deploy's `make smoke` and logs show it.
pub fn read_may_pass<E: ProvideErrorMetadata>(err: &SdkError<E, HttpResponse>) -> bool {
    match err {
        SdkError::TimeoutError(_) | SdkError::ResponseError(_) => true,
        SdkError::ServiceError(service) => {
            answer_may_pass(service.raw().status().as_u16(), service.err().code())
        }
        // A connection that timed out, or that was made and then broke (reset, closed
        // before the answer: a brownout), unlike one that could not be made at all.
        SdkError::DispatchFailure(failure) => {
            failure.is_timeout() || failure.as_connector_error().is_some_and(made_then_broken)
        }
        _ => false,
    }
}

/// Whether the HTTP client had its connection when the call failed.
fn made_then_broken(err: &ConnectorError) -> bool {
    let mut source: Option<&(dyn std::error::Error + 'static)> = Some(err);
    while let Some(cause) = source {
        if let Some(client) = cause.downcast_ref::<hyper_util::client::legacy::Error>() {
            return !client.is_connect();
        }
        source = cause.source();
    }
    false
}

/// AWS's generic codes for its own fault, whatever status they come with (Secrets
/// Manager's documentation gives `InternalServiceError` a 400 in one place, a 500 in
/// another).
const SERVICE_FAULTS: &[&str] = &[
    "InternalServiceError",
    "InternalServerError",
    "InternalFailure",
    "ServiceUnavailable",
];

/// Whether an AWS service's error answer says to try again: a 5xx, AWS's own fault by
/// its code, or a code the SDK itself retries as throttling or as a transient fault.
pub fn answer_may_pass(status: u16, code: Option<&str>) -> bool {
    use aws_runtime::retries::classifiers::{THROTTLING_ERRORS, TRANSIENT_ERRORS};
    (500..600).contains(&status)
        || code.is_some_and(|code| {
            SERVICE_FAULTS.contains(&code)
                || THROTTLING_ERRORS.contains(&code)
                || TRANSIENT_ERRORS.contains(&code)
        })
}

/// The AUTH token a secret's string value holds, without surrounding whitespace (a
/// secret saved by hand with `echo` ends with a newline; an ElastiCache token holds no
/// whitespace). An empty one is no token: `AUTH ""` would only be refused, for good, as
/// a wrong password.
fn auth_token(value: Option<String>) -> Result<String, &'static str> {
    match value.as_deref().map(str::trim) {
        None => Err("the secret has no string value"),
        Some("") => Err("the secret's string value is empty"),
        Some(token) => Ok(token.to_owned()),
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn the_environment_settles_credentials_and_region_only_when_it_holds_them() {
        use super::SettledByEnv;
        let settled = |vars: &[(&str, &str)]| {
            SettledByEnv::read(|name| {
                vars.iter()
                    .find(|(key, _)| *key == name)
                    .map(|(_, value)| (*value).to_owned())
            })
        };
        // GIVEN what Lambda sets in every sandbox
        // THEN both come from the environment
        assert_eq!(
            settled(&[
                ("AWS_ACCESS_KEY_ID", "ASIAEXAMPLE"),
                ("AWS_SECRET_ACCESS_KEY", "secret"),
                ("AWS_SESSION_TOKEN", "token"),
                ("AWS_REGION", "eu-west-1"),
            ]),
            SettledByEnv {
                credentials: true,
                region: Some("eu-west-1".to_owned()),
            }
        );
        // GIVEN nothing (a laptop with a profile, an EC2 instance with a role)
        // THEN the default chains decide both
        let neither = SettledByEnv {
            credentials: false,
            region: None,
        };
        assert_eq!(settled(&[]), neither);
        // GIVEN half a key pair, blank values, or only the fallback region variable
        // THEN the default chains decide, as they would have: they read the environment
        // first too, and a blank key there is no key
        assert_eq!(settled(&[("AWS_ACCESS_KEY_ID", "AKIA")]), neither);
        assert_eq!(settled(&[("AWS_SECRET_ACCESS_KEY", "secret")]), neither);
        assert_eq!(
            settled(&[
                ("AWS_ACCESS_KEY_ID", " "),
                ("AWS_SECRET_ACCESS_KEY", "secret"),
                ("AWS_REGION", ""),
                ("AWS_DEFAULT_REGION", "us-east-2"),
            ]),
            neither
        );
    }

    #[tokio::test]
    async fn the_loader_takes_what_the_environment_settles_and_leaves_the_rest_to_the_chains() {
        use crate::tls::TrustedRoots;
        let env = |vars: &'static [(&'static str, &'static str)]| {
            move |name: &str| {
                vars.iter()
                    .find(|(key, _)| *key == name)
                    .map(|(_, value)| (*value).to_owned())
            }
        };
        // GIVEN an environment as Lambda's
        let lambda = super::loader_with(
            TrustedRoots::System,
            super::EarlyLookups::default(),
            env(&[
                ("AWS_ACCESS_KEY_ID", "ASIAEXAMPLE"),
                ("AWS_SECRET_ACCESS_KEY", "secret"),
                ("AWS_REGION", "eu-west-1"),
            ]),
        )
        .load()
        .await;
        // THEN the configuration takes its credentials and region from it
        assert_eq!(lambda.region().map(|r| r.as_ref()), Some("eu-west-1"));
        let provider = format!("{:?}", lambda.credentials_provider());
        assert!(
            provider.contains("EnvironmentVariableCredentialsProvider")
                && !provider.contains("DefaultCredentialsChain"),
            "{provider}"
        );
        // GIVEN a region but no keys
        let laptop = super::loader_with(
            TrustedRoots::System,
            super::EarlyLookups::default(),
            env(&[("AWS_REGION", "us-east-2")]),
        )
        .load()
        .await;
        // THEN the default credential chain decides
        assert_eq!(laptop.region().map(|r| r.as_ref()), Some("us-east-2"));
        let provider = format!("{:?}", laptop.credentials_provider());
        assert!(provider.contains("DefaultCredentialsChain"), "{provider}");
    }

    #[tokio::test]
    async fn sdk_clients_connect_first_where_start_up_looked_and_then_where_the_name_is_now() {
        // GIVEN a name that moved since start-up looked it up, and a DynamoDB client on
        // an SDK configuration taking start-up's lookups, its endpoint that name
        let name = crate::adapters::dns::moved_name::MovedLocalhost::open().await;
        let config = super::loader_with(
            crate::tls::TrustedRoots::System,
            name.lookups.clone(),
            |var| (var == "AWS_REGION").then(|| "eu-west-1".to_owned()),
        )
        .load()
        .await;
        let client = aws_sdk_dynamodb::Client::from_conf(
            aws_sdk_dynamodb::config::Builder::from(&config)
                .endpoint_url(format!("http://localhost:{}", name.port))
                .credentials_provider(aws_sdk_dynamodb::config::Credentials::new(
                    "AKID", "secret", None, None, "test",
                ))
                .build(),
        );
        // WHEN it calls (each connection is closed at once: the call fails after its
        // attempts)
        let called = client.describe_table().table_name("t").send().await;
        // THEN its first attempt went where start-up looked, the retries where the name
        // resolves now
        let err = called.expect_err("no server to answer");
        let shown = format!("{:?}", err);
        assert!(shown.contains("DispatchFailure"), "{shown}");
        assert_eq!(name.reached_early(), 1);
        assert_eq!(name.reached_now(), super::MAX_ATTEMPTS as usize - 1);
    }

    #[tokio::test]
    async fn endpoints_are_the_sdk_s_own() {
        use super::{Service, endpoint_with};
        use aws_sdk_dynamodb::config::endpoint::ResolveEndpoint as _;
        let env = |vars: Vec<(&'static str, String)>| {
            move |name: &str| {
                vars.iter()
                    .find(|(key, _)| *key == name)
                    .map(|(_, value)| value.clone())
            }
        };
        // GIVEN AWS_REGION alone, as Lambda sets it, in each partition we guess for
        for region in [
            "us-east-1",
            "eu-west-1",
            "ap-southeast-5",
            "il-central-1",
            "us-gov-west-1",
            "cn-north-1",
            "cn-northwest-1",
            "eusc-de-east-1",
        ] {
            let var = env(vec![("AWS_REGION", region.to_owned())]);
            // THEN the endpoint (scheme, host, port) is the one the SDK's endpoint rules
            // give
            let dynamodb = aws_sdk_dynamodb::config::endpoint::DefaultResolver::new()
                .resolve_endpoint(
                    &aws_sdk_dynamodb::config::endpoint::Params::builder()
                        .region(region)
                        .build()
                        .unwrap(),
                )
                .await
                .unwrap();
            let secrets =
                aws_sdk_secretsmanager::config::endpoint::ResolveEndpoint::resolve_endpoint(
                    &aws_sdk_secretsmanager::config::endpoint::DefaultResolver::new(),
                    &aws_sdk_secretsmanager::config::endpoint::Params::builder()
                        .region(region)
                        .build()
                        .unwrap(),
                )
                .await
                .unwrap();
            let sdk_s = |url: &str| Some(origin(&url::Url::parse(url).unwrap()));
            assert_eq!(
                endpoint_with(Service::DynamoDb, &var).map(|url| origin(&url)),
                sdk_s(dynamodb.url()),
                "{region}"
            );
            assert_eq!(
                endpoint_with(Service::SecretsManager, &var).map(|url| origin(&url)),
                sdk_s(secrets.url()),
                "{region}"
            );
        }
        // GIVEN an endpoint URL for the service, or for all: that one, the service's first
        let var = env(vec![
            ("AWS_REGION", "eu-west-1".to_owned()),
            (
                "AWS_ENDPOINT_URL_DYNAMODB",
                " http://dynalite.test:4567/ ".to_owned(),
            ),
            ("AWS_ENDPOINT_URL", "https://all.test".to_owned()),
        ]);
        let origin_of = |service| endpoint_with(service, &var).map(|url| origin(&url));
        assert_eq!(
            origin_of(Service::DynamoDb),
            Some(("http".to_owned(), "dynalite.test".to_owned(), Some(4567)))
        );
        assert_eq!(
            origin_of(Service::SecretsManager),
            Some(("https".to_owned(), "all.test".to_owned(), Some(443)))
        );
        // (unless the configured endpoint URLs are to be ignored)
        let var = env(vec![
            ("AWS_REGION", "eu-west-1".to_owned()),
            ("AWS_ENDPOINT_URL", "https://all.test".to_owned()),
            ("AWS_IGNORE_CONFIGURED_ENDPOINT_URLS", "true".to_owned()),
        ]);
        assert_eq!(
            endpoint_with(Service::DynamoDb, &var)
                .map(String::from)
                .as_deref(),
            Some("https://dynamodb.eu-west-1.amazonaws.com/")
        );
        // GIVEN what the SDK would decide elsewhere: no guess
        for vars in [
            vec![],
            vec![("AWS_DEFAULT_REGION", "eu-west-1".to_owned())],
            vec![("AWS_REGION", "us-iso-east-1".to_owned())],
            vec![
                ("AWS_REGION", "eu-west-1".to_owned()),
                ("AWS_USE_FIPS_ENDPOINT", "true".to_owned()),
            ],
            vec![
                ("AWS_REGION", "eu-west-1".to_owned()),
                ("AWS_USE_DUALSTACK_ENDPOINT", "TRUE".to_owned()),
            ],
            vec![("AWS_ENDPOINT_URL", "not a url".to_owned())],
            vec![("AWS_ENDPOINT_URL", "unix:/run/dynamodb.sock".to_owned())],
            vec![
                ("AWS_REGION", "eu-west-1".to_owned()),
                ("AWS_ENDPOINT_URL_DYNAMODB", String::new()),
                ("AWS_ENDPOINT_URL", "https://all.test".to_owned()),
            ],
            vec![
                ("AWS_REGION", "eu-west-1".to_owned()),
                ("AWS_ACCOUNT_ID", "123456789012".to_owned()),
            ],
        ] {
            let shown = format!("{vars:?}");
            assert_eq!(endpoint_with(Service::DynamoDb, env(vars)), None, "{shown}");
        }
    }

    /// Scheme, host and port: where a connection goes.
    fn origin(url: &url::Url) -> (String, String, Option<u16>) {
        (
            url.scheme().to_owned(),
            url.host_str().unwrap().to_owned(),
            url.port_or_known_default(),
        )
    }

    #[test]
    fn an_absent_or_empty_secret_value_is_no_token() {
        // (moto stores an empty string as no value at all, so this is checked here.)
        assert_eq!(
            super::auth_token(Some("t0k en%41".to_owned())),
            Ok("t0k en%41".to_owned())
        );
        assert!(
            super::auth_token(Some(String::new()))
                .unwrap_err()
                .contains("empty")
        );
        assert!(
            super::auth_token(None)
                .unwrap_err()
                .contains("no string value")
        );
        // GIVEN a secret saved by hand with its newline, or only whitespace
        // THEN the token is what is around it: ElastiCache tokens hold no whitespace
        assert_eq!(
            super::auth_token(Some(" t0ken-from-hand\n".to_owned())),
            Ok("t0ken-from-hand".to_owned())
        );
        assert!(
            super::auth_token(Some(" \r\n".to_owned()))
                .unwrap_err()
                .contains("empty")
        );
    }

    #[test]
    fn a_failed_read_may_pass_only_when_aws_says_to_try_again_or_did_not_answer() {
        use aws_sdk_secretsmanager::operation::get_secret_value::GetSecretValueError;
        use aws_smithy_runtime_api::client::orchestrator::HttpResponse;
        use aws_smithy_runtime_api::client::result::{ConnectorError, SdkError};
        use aws_smithy_types::body::SdkBody;
        let answered = |status: u16, code: &str| {
            SdkError::service_error(
                GetSecretValueError::generic(
                    aws_sdk_secretsmanager::error::ErrorMetadata::builder()
                        .code(code)
                        .build(),
                ),
                HttpResponse::new(status.try_into().unwrap(), SdkBody::empty()),
            )
        };
        // GIVEN Secrets Manager's own fault, throttling, or no answer in time
        // THEN the read may succeed later
        for may_pass in [
            answered(500, "InternalServiceError"),
            answered(503, "ServiceUnavailable"),
            answered(400, "ThrottlingException"),
            answered(400, "RequestTimeoutException"),
            answered(400, "InternalServiceError"),
            SdkError::timeout_error("no answer within 3 s"),
            SdkError::dispatch_failure(ConnectorError::timeout("connect timed out".into())),
        ] {
            assert!(super::read_may_pass(&may_pass), "{may_pass:?}");
        }
        // GIVEN a refusal, a wrong secret, or no connection at all (a refused
        // handshake, no route) THEN it will not pass by itself: start-up stops
        for refused in [
            answered(400, "ResourceNotFoundException"),
            answered(400, "AccessDeniedException"),
            answered(400, "DecryptionFailure"),
            answered(400, "InvalidRequestException"),
            SdkError::dispatch_failure(ConnectorError::io("handshake refused".into())),
        ] {
            assert!(!super::read_may_pass(&refused), "{refused:?}");
        }
    }

    #[test]
    fn tls_randomness_skips_cpu_jitter_entropy() {
        // GIVEN the AWS-LC build every TLS connection here uses
        // WHEN asked which entropy source seeds its random generator
        // SAFETY: a pure query of a static setting, no arguments.
        let jitter = unsafe { aws_lc_sys::FIPS_is_entropy_cpu_jitter() };
        // THEN it is not CPU Jitter Entropy (45 ms of a cold start; .cargo/config.toml).
        // (On a VM AWS-LC detects through /dev/sysgenid it answers 0 either way; Lambda
        // and this project's machines have no such device.)
        assert_eq!(
            jitter, 0,
            "AWS_LC_SYS_NO_JITTER_ENTROPY did not reach aws-lc-sys's build"
        );
    }
}
