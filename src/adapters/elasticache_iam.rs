//! ElastiCache IAM authentication: an IAM-enabled user's `AUTH` token is a SigV4
//! presigned `connect` request for the cache, signed here with the process's own AWS
//! credentials (in Lambda, the function role's, from the environment). Signing is local
//! CPU: a cold start authenticates without the three round trips to Secrets Manager that
//! reading an AUTH token costs, and no long-lived password exists to leak or rotate.
//!
//! A token is valid for 15 minutes and ElastiCache closes an IAM-authenticated connection
//! after 12 hours, so every connection (the first, and each reconnection after that
//! close, a failover or a network fault) signs a fresh one.

use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, SystemTime};

use aws_credential_types::Credentials;
use aws_credential_types::provider::ProvideCredentials as _;
use aws_sigv4::http_request::{
    SignableBody, SignableRequest, SignatureLocation, SigningSettings, sign,
};
use aws_sigv4::sign::v4;
use aws_smithy_runtime_api::client::identity::Identity;

use crate::adapters::aws::SharedSdkConfig;
use crate::config::IamUser;
use crate::error::BoxError;

/// How long a token is valid: ElastiCache's fixed 15 minutes.
const TOKEN_LIFETIME: Duration = Duration::from_secs(900);

/// How long credentials without an expiry (the environment's, a static profile's) are
/// used before the provider is asked again: the SDK's own identity cache's default.
const REUSE_WITHOUT_EXPIRY: Duration = Duration::from_secs(15 * 60);
/// Credentials this close to their expiry are fetched again rather than signed with.
const EXPIRY_MARGIN: Duration = Duration::from_secs(60);

/// Signs tokens for one user and cache with the credentials and region of the shared SDK
/// configuration (loaded once per start-up, whoever asks first). Clones share the
/// credentials last fetched.
#[derive(Clone)]
pub struct IamTokens {
    sdk: SharedSdkConfig,
    user: IamUser,
    /// The credentials last fetched, and when. The SDK configuration's provider is the
    /// bare chain, without the cache its clients put in front of it: asked for each
    /// connection, an assume-role profile or instance metadata would be called for
    /// every reconnection attempt.
    last: Arc<Mutex<Option<(Credentials, SystemTime)>>>,
}

impl IamTokens {
    pub fn new(sdk: SharedSdkConfig, user: IamUser) -> Self {
        Self {
            sdk,
            user,
            last: Arc::default(),
        }
    }

    /// The user id, `AUTH`'s user name.
    pub fn user(&self) -> &str {
        self.user.user()
    }

    /// A token signed now.
    ///
    /// # Errors
    /// When the SDK configuration has no region or no credentials, or they cannot be
    /// had now.
    pub async fn token(&self) -> Result<String, BoxError> {
        let config = self.sdk.get().await;
        let region = config
            .region()
            .ok_or("no AWS region is configured (AWS_REGION, or the profile's region)")?;
        let now = SystemTime::now();
        let credentials = match self.reusable_credentials(now) {
            Some(credentials) => credentials,
            None => {
                let credentials = config
                    .credentials_provider()
                    .ok_or("no AWS credentials provider is configured")?
                    .provide_credentials()
                    .await?;
                *self.last.lock().unwrap_or_else(PoisonError::into_inner) =
                    Some((credentials.clone(), now));
                credentials
            }
        };
        signed_token(&self.user, region.as_ref(), &credentials, now)
    }

    fn reusable_credentials(&self, now: SystemTime) -> Option<Credentials> {
        let last = self.last.lock().unwrap_or_else(PoisonError::into_inner);
        last.as_ref()
            .filter(|(credentials, fetched)| reusable(credentials, *fetched, now))
            .map(|(credentials, _)| credentials.clone())
    }
}

/// Whether `credentials`, fetched at `fetched`, may still sign at `now`.
fn reusable(credentials: &Credentials, fetched: SystemTime, now: SystemTime) -> bool {
    let until = credentials
        .expiry()
        .unwrap_or_else(|| fetched + REUSE_WITHOUT_EXPIRY);
    now >= fetched && now + EXPIRY_MARGIN < until
}

/// The token for `user` at `time`, signed with `credentials` for `region`: the presigned URL of `GET
/// http://<cache>/?Action=connect&User=<user>[&ResourceType=ServerlessCache]` for the
/// `elasticache` service, without its scheme, as AWS's own examples make it.
pub fn signed_token(
    user: &IamUser,
    region: &str,
    credentials: &Credentials,
    time: SystemTime,
) -> Result<String, BoxError> {
    let mut query = url::form_urlencoded::Serializer::new(String::new());
    query
        .append_pair("Action", "connect")
        .append_pair("User", user.user());
    if user.serverless() {
        query.append_pair("ResourceType", "ServerlessCache");
    }
    let url = format!("https://{}/?{}", user.cache(), query.finish());
    let mut settings = SigningSettings::default();
    settings.signature_location = SignatureLocation::QueryParams;
    settings.expires_in = Some(TOKEN_LIFETIME);
    let identity = Identity::from(credentials.clone());
    let params = v4::SigningParams::builder()
        .identity(&identity)
        .region(region)
        .name("elasticache")
        .time(time)
        .settings(settings)
        .build()?
        .into();
    let signable = SignableRequest::new("GET", &url, std::iter::empty(), SignableBody::Bytes(&[]))?;
    let (instructions, _signature) = sign(signable, &params)?.into_parts();
    let mut request = http::Request::get(&url).body(())?;
    instructions.apply_to_request_http1x(&mut request);
    // The URL without its scheme, as ElastiCache takes it.
    let signed = request.uri().to_string();
    Ok(signed
        .strip_prefix("https://")
        .unwrap_or(&signed)
        .to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(unix_seconds: u64) -> SystemTime {
        SystemTime::UNIX_EPOCH + Duration::from_secs(unix_seconds)
    }

    fn test_credentials() -> Credentials {
        Credentials::new(
            "AKIDEXAMPLE",
            "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY",
            None,
            None,
            "test",
        )
    }

    fn query(token: &str) -> Vec<(String, String)> {
        let (_, query) = token.split_once('?').unwrap();
        url::form_urlencoded::parse(query.as_bytes())
            .into_owned()
            .collect()
    }

    fn param(token: &str, name: &str) -> Option<String> {
        query(token)
            .into_iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v)
    }

    #[test]
    fn a_token_is_a_presigned_connect_request_for_the_cache() {
        // GIVEN a user of a replication group and fixed credentials and time
        let user = IamUser::new("product-api", "products", false).unwrap();
        let credentials = test_credentials();
        let token = signed_token(&user, "eu-west-1", &credentials, at(1_796_535_651)).unwrap();
        // THEN it is the cache's name, the connect action and the signature's parameters,
        // valid 15 minutes, for the elasticache service, signing only the host
        assert!(
            token.starts_with("products/?Action=connect&User=product-api&"),
            "{token}"
        );
        assert!(!token.contains("://"), "{token}");
        assert_eq!(param(&token, "ResourceType"), None);
        assert_eq!(
            param(&token, "X-Amz-Algorithm").unwrap(),
            "AWS4-HMAC-SHA256"
        );
        assert_eq!(
            param(&token, "X-Amz-Credential").unwrap(),
            format!(
                "{}/20261206/eu-west-1/elasticache/aws4_request",
                credentials.access_key_id()
            )
        );
        assert_eq!(param(&token, "X-Amz-Date").unwrap(), "20261206T054051Z");
        assert_eq!(param(&token, "X-Amz-Expires").unwrap(), "900");
        assert_eq!(param(&token, "X-Amz-SignedHeaders").unwrap(), "host");
        assert_eq!(param(&token, "X-Amz-Signature").unwrap().len(), 64);
        // AND a serverless cache's names its resource type
        let serverless = IamUser::new("product-api", "products", true).unwrap();
        let token = signed_token(&serverless, "eu-west-1", &credentials, at(1_796_535_651));
        assert_eq!(
            param(&token.unwrap(), "ResourceType").as_deref(),
            Some("ServerlessCache")
        );
        // AND a role's session token travels with it (Lambda's credentials have one)
        let with_session =
            Credentials::new("ASIAEXAMPLE", "secret", Some("a/b+c=".into()), None, "test");
        let token = signed_token(&user, "eu-west-1", &with_session, at(1_796_535_651)).unwrap();
        assert_eq!(
            param(&token, "X-Amz-Security-Token").as_deref(),
            Some("a/b+c=")
        );
    }

    #[test]
    fn each_second_signs_another_token() {
        let user = IamUser::new("product-api", "products", false).unwrap();
        let credentials = test_credentials();
        let one = signed_token(&user, "eu-west-1", &credentials, at(1_796_535_651)).unwrap();
        let same = signed_token(&user, "eu-west-1", &credentials, at(1_796_535_651)).unwrap();
        let next = signed_token(&user, "eu-west-1", &credentials, at(1_796_535_652)).unwrap();
        assert_eq!(one, same);
        assert_ne!(one, next);
    }

    #[test]
    fn credentials_are_reused_until_near_their_expiry() {
        let fetched = at(1_796_535_651);
        let later = |seconds| fetched + Duration::from_secs(seconds);
        // GIVEN credentials without an expiry THEN they serve 15 minutes, less the margin
        let lasting = test_credentials();
        assert!(reusable(&lasting, fetched, later(0)));
        assert!(reusable(&lasting, fetched, later(14 * 60 - 1)));
        assert!(!reusable(&lasting, fetched, later(14 * 60)));
        // GIVEN a role's, expiring in an hour THEN up to a minute before that
        let role = Credentials::new(
            "ASIA",
            "secret",
            Some("t".into()),
            Some(later(3600)),
            "test",
        );
        assert!(reusable(&role, fetched, later(3538)));
        assert!(!reusable(&role, fetched, later(3540)));
        // AND a clock that went back is no reason to trust them
        assert!(!reusable(&role, fetched, fetched - Duration::from_secs(5)));
    }
}
