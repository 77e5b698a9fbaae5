//! ElastiCache IAM authentication tokens against botocore's, the signer AWS's own Python
//! examples use (`tests/support/elasticache_iam_token.py`, run from the venv `make test`
//! installs): the same input must give the same token, parameter for parameter.

use std::path::Path;
use std::time::{Duration, SystemTime};

use aws_credential_types::Credentials;
use product_catalog::adapters::elasticache_iam::signed_token;
use product_catalog::config::IamUser;

/// The token botocore makes for the same input.
fn botocore_token(
    user: &IamUser,
    region: &str,
    credentials: &Credentials,
    unix_seconds: u64,
) -> String {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
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

/// A token's query, decoded, sorted: the order of the parameters is not signed.
fn query(token: &str) -> Vec<(String, String)> {
    let (_, query) = token.split_once('?').unwrap();
    let mut pairs: Vec<(String, String)> = url::form_urlencoded::parse(query.as_bytes())
        .into_owned()
        .collect();
    pairs.sort();
    pairs
}

#[test]
fn tokens_are_the_ones_botocore_signs() {
    // GIVEN users of both kinds of cache, credentials with and without a session token
    // (with characters that need encoding), times and regions
    let cases = [
        (
            IamUser::new("product-api", "products", false).unwrap(),
            "us-east-1",
            Credentials::new(
                "AKIDEXAMPLE",
                "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY",
                None,
                None,
                "test",
            ),
            1_796_535_651,
        ),
        (
            IamUser::new("product-reader-2", "catalog-prod-1", true).unwrap(),
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
        let at = SystemTime::UNIX_EPOCH + Duration::from_secs(time);
        let ours = signed_token(&user, region, &credentials, at).unwrap();
        let theirs = botocore_token(&user, region, &credentials, time);
        assert_eq!(
            ours.split_once('?').unwrap().0,
            theirs.split_once('?').unwrap().0
        );
        assert_eq!(
            query(&ours),
            query(&theirs),
            "\nours:   {ours}\ntheirs: {theirs}"
        );
    }
}
