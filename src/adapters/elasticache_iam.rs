//! ElastiCache IAM authentication: an IAM-enabled user's `AUTH` token is a SigV4
//! presigned `connect` request for the cache, signed here with the process's own AWS
//! credentials (in Lambda, the function role's, from the environment). Signing is local
//! CPU: a cold start authenticates without the three round trips to Secrets Manager that
//! reading an AUTH token costs, and no long-lived password exists to leak or rotate.
//!
//! A token is valid for 15 minutes and ElastiCache closes an IAM-authenticated connection
//! after 12 hours, so every connection (the first, and each reconnection after that
//! close, a failover or a network fault) signs a fresh one.

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

/// Signs tokens for one user and cache with the credentials and region of the shared SDK
/// configuration (loaded once per start-up, whoever asks first).
#[derive(Clone)]
pub struct IamTokens {
    sdk: SharedSdkConfig,
    user: IamUser,
}

impl IamTokens {
    pub fn new(sdk: SharedSdkConfig, user: IamUser) -> Self {
        Self { sdk, user }
    }

    /// The user id, `AUTH`'s user name.
    pub fn user(&self) -> &str {
        self.user.user()
    }

    /// A token signed now with the current credentials (the SDK's provider caches and
    /// refreshes them).
    ///
    /// # Errors
    /// When the SDK configuration has no region or no credentials, or they cannot be
    /// had now.
    pub async fn token(&self) -> Result<String, BoxError> {
        let config = self.sdk.get().await;
        let region = config
            .region()
            .ok_or("no AWS region is configured (AWS_REGION)")?;
        let credentials = config
            .credentials_provider()
            .ok_or("no AWS credentials provider is configured")?
            .provide_credentials()
            .await?;
        signed_token(&self.user, region.as_ref(), &credentials, SystemTime::now())
    }
}

/// The token for `user` at `time`: the presigned URL of `GET
/// http://<cache>/?Action=connect&User=<user>[&ResourceType=ServerlessCache]` for the
/// `elasticache` service, without its scheme, as AWS's own examples make it.
fn signed_token(
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

    /// The token botocore makes for the same input (`tests/support/elasticache_iam_token.py`),
    /// from the venv `make test` installs.
    fn botocore_token(
        user: &IamUser,
        region: &str,
        credentials: &Credentials,
        unix_seconds: u64,
    ) -> String {
        let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
        let python = root.join(".tools/venv/bin/python");
        assert!(
            python.exists(),
            "botocore is not installed: run `make test` (scripts/install-tools.sh installs it)"
        );
        let mut command = std::process::Command::new(python);
        command
            .arg(root.join("tests/support/elasticache_iam_token.py"))
            .arg(user.cache())
            .arg(user.user())
            .arg(region)
            .arg(user.serverless().to_string())
            .arg(unix_seconds.to_string())
            .arg(credentials.access_key_id())
            .arg(credentials.secret_access_key());
        if let Some(session_token) = credentials.session_token() {
            command.arg(session_token);
        }
        let output = command.output().unwrap();
        assert!(
            output.status.success(),
            "{}",
            String::from_utf8_lossy(&output.stderr)
        );
        String::from_utf8(output.stdout)
            .unwrap()
            .trim_end()
            .to_owned()
    }

    #[test]
    fn tokens_are_the_ones_botocore_signs() {
        // GIVEN users of both kinds of cache, credentials with and without a session
        // token (with characters that need encoding), times and regions
        let cases = [
            (
                IamUser::new("product-api", "products", false).unwrap(),
                "us-east-1",
                test_credentials(),
                1_796_535_651,
            ),
            (
                IamUser::new("Product-Reader-2", "catalog-prod-1", true).unwrap(),
                "eu-central-1",
                Credentials::new(
                    "ASIAQEXAMPLE7",
                    "s3cr3t/with+plus=",
                    Some("IQoJb3Jp/Z2luX2Vj+EJ//////////wEaCXVz==".into()),
                    None,
                    "test",
                ),
                1_700_000_000 + u64::from(fastrand::u32(..)),
            ),
        ];
        for (user, region, credentials, time) in cases {
            // WHEN both sign THEN the tokens are the same, parameter for parameter
            let ours = signed_token(&user, region, &credentials, at(time)).unwrap();
            let theirs = botocore_token(&user, region, &credentials, time);
            assert_eq!(
                ours.split_once('?').unwrap().0,
                theirs.split_once('?').unwrap().0
            );
            let (mut ours_query, mut theirs_query) = (query(&ours), query(&theirs));
            ours_query.sort();
            theirs_query.sort();
            assert_eq!(
                ours_query, theirs_query,
                "\nours:   {ours}\ntheirs: {theirs}"
            );
        }
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
}
