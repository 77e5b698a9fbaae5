//! ElastiCache-like settings on real local servers: TLS with AUTH (password, and user
//! plus password) against a test CA made here, and a three-shard Redis cluster. The named
//! user has exactly the ACL the Terraform gives the serverless cache's user, so a command
//! the functions send that the ACL forbids fails here before it fails in AWS.

use std::process::Command;
use std::time::{Duration, Instant};

use product_catalog::app;

use crate::helpers::{
    MemcachedServer, RedisServer, api_config, cache_url_var, failed_start, make_certificates,
    product_api, run_invalidator, sample_table, service_env,
};

/// The `access_string` of the serverless cache's "app" user in terraform/modules/cache.
fn terraform_app_access_string() -> String {
    let path = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/terraform/modules/cache/main.tf"
    );
    let text = std::fs::read_to_string(path).unwrap();
    let line = text
        .lines()
        .find(|line| line.trim_start().starts_with("app_access_string"))
        .expect("terraform/modules/cache/main.tf defines local.app_access_string");
    let value = line.split_once('=').unwrap().1.trim();
    value.trim_matches('"').to_owned()
}

fn tls_redis() -> RedisServer {
    RedisServer::start_with(|port, dir| {
        make_certificates(dir);
        // AUTH as ElastiCache offers it: the default user's token, a named user with
        // the Terraform's ACL, and an IAM-enabled user with the same ACL. That user takes
        // any password here, where ElastiCache checks the signed token (whose signature
        // adapters::elasticache_iam checks against botocore's).
        std::fs::write(
            dir.join("users.acl"),
            format!(
                "user default on >s3cret-token ~* &* +@all\nuser app >app-pass {acl}\n\
                 user product-api nopass {acl}\n",
                acl = terraform_app_access_string()
            ),
        )
        .unwrap();
        let path = |name: &str| dir.join(name).display().to_string();
        vec![
            "--port".into(),
            "0".into(),
            "--tls-port".into(),
            port.to_string(),
            "--tls-cert-file".into(),
            path("server.pem"),
            "--tls-key-file".into(),
            path("server.key"),
            "--tls-ca-cert-file".into(),
            path("ca.pem"),
            "--tls-auth-clients".into(),
            "no".into(),
            "--aclfile".into(),
            path("users.acl"),
        ]
    })
}

/// Runs product-api against `redis_url`, trusting the test CA, and returns the X-Cache
/// of two GETs of one product.
async fn two_gets(
    redis_url: &str,
    ca: &std::path::Path,
    table: &product_catalog::adapters::DynamoStore,
) -> (String, String) {
    two_gets_with(redis_url, ca, table, &[]).await
}

/// [`two_gets`] with more variables.
async fn two_gets_with(
    redis_url: &str,
    ca: &std::path::Path,
    table: &product_catalog::adapters::DynamoStore,
    more: &[(&str, &str)],
) -> (String, String) {
    let mut env = service_env(redis_url, table);
    // rustls-native-certs honours SSL_CERT_FILE, as OpenSSL does.
    env.push(("SSL_CERT_FILE".into(), ca.display().to_string()));
    env.extend(more.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned())));
    let (_server, port) = product_api(&env);
    let url = format!("http://127.0.0.1:{port}/product/P-10070");
    let mut seen = Vec::new();
    for _ in 0..2 {
        let response = reqwest::get(&url).await.unwrap();
        assert_eq!(response.status(), 200);
        seen.push(response.headers()["x-cache"].to_str().unwrap().to_owned());
    }
    (seen[0].clone(), seen[1].clone())
}

/// A stream event with one REMOVE of `id` (event id `acl-1`).
fn remove_event(id: &str) -> serde_json::Value {
    serde_json::json!({"Records": [{
        "eventID": "acl-1",
        "eventName": "REMOVE",
        "eventSource": "aws:dynamodb",
        "awsRegion": "eu-west-1",
        "dynamodb": {
            "Keys": {"productId": {"S": id}},
            "SequenceNumber": "1",
            "SizeBytes": 10,
            "StreamViewType": "NEW_AND_OLD_IMAGES"
        },
        "eventSourceARN": "arn:aws:dynamodb:eu-west-1:123456789012:table/Products/stream/x"
    }]})
}

/// Runs cache-invalidator (stdin mode) on one REMOVE of `id`, trusting the test CA.
fn invalidate_as(redis_url: &str, ca: &std::path::Path, id: &str) -> serde_json::Value {
    run_invalidator(
        &[
            (cache_url_var(redis_url), redis_url.as_ref()),
            ("SSL_CERT_FILE", ca.as_os_str()),
        ],
        &remove_event(id),
    )
}

#[tokio::test]
async fn tls_with_a_password_and_with_a_user_works_and_a_wrong_password_degrades() {
    // GIVEN Redis over TLS with a default-user token and an ACL user
    let redis = tls_redis();
    let table = sample_table().await;
    let ca = redis.dir().join("ca.pem");
    let port = redis.port;

    // WHEN product-api uses the token THEN MISS then HIT, with the TTL set
    let with_password = two_gets(
        &format!("rediss://:s3cret-token@localhost:{port}"),
        &ca,
        &table,
    )
    .await;
    assert_eq!(with_password, ("MISS".into(), "HIT".into()));

    // redis-cli over TLS, as the default user (the token) or as another user.
    let cli = |auth: &[&str], command: &[&str]| -> String {
        let output = Command::new("redis-cli")
            .args(["--tls", "--cacert"])
            .arg(&ca)
            .args(["-p", &port.to_string(), "--no-auth-warning"])
            .args(auth)
            .args(command)
            .output()
            .unwrap();
        String::from_utf8_lossy(&output.stdout).trim().to_owned()
    };
    let admin = ["-a", "s3cret-token"];
    let ttl: i64 = cli(&admin, &["TTL", "product:P-10070"])
        .parse()
        .expect("redis-cli over TLS answers TTL");
    assert!((290..=300).contains(&ttl), "TTL {ttl}");
    cli(&admin, &["DEL", "product:P-10070"]);

    // WHEN it uses the ACL user THEN MISS then HIT
    let app_url = format!("rediss://app:app-pass@localhost:{port}");
    let with_user = two_gets(&app_url, &ca, &table).await;
    assert_eq!(with_user, ("MISS".into(), "HIT".into()));
    // The invalidator, as the same user: a REMOVE replaces the product.
    let removed = invalidate_as(&app_url, &ca, "P-10070");
    assert_eq!(
        removed["batchItemFailures"],
        serde_json::json!([]),
        "{removed}"
    );
    let value = cli(&admin, &["GET", "product:P-10070"]);
    assert!(!value.starts_with('{'), "after REMOVE: {value}");
    // Nothing the service or the invalidator sent was refused, not even quietly.
    assert_eq!(cli(&admin, &["ACL", "LOG"]), "", "commands the ACL refused");
    // And what the ACL is for: no command outside the service's own.
    let denied = cli(&["--user", "app", "--pass", "app-pass"], &["FLUSHALL"]);
    assert!(denied.contains("NOPERM"), "{denied}");

    // WHEN the password is wrong THEN it degrades to BYPASS
    let wrong = two_gets(&format!("rediss://:wrong@localhost:{port}"), &ca, &table).await;
    assert_eq!(wrong, ("BYPASS".into(), "BYPASS".into()));
}

#[tokio::test]
async fn an_iam_enabled_user_authenticates_with_a_signed_token() {
    // GIVEN Redis over TLS with an IAM-enabled user, and product-api configured for it
    let redis = tls_redis();
    let table = sample_table().await;
    let ca = redis.dir().join("ca.pem");
    let url = format!("rediss://localhost:{}", redis.port);
    let iam = [
        ("REDIS_IAM_USER", "product-api"),
        ("REDIS_IAM_CACHE", "products"),
    ];
    // WHEN it serves a product twice THEN MISS then HIT: it authenticated as that user
    // (the only one that takes this password; without AUTH the default user refuses)
    let gets = two_gets_with(&url, &ca, &table, &iam).await;
    assert_eq!(gets, ("MISS".into(), "HIT".into()));

    // GIVEN no region to sign for (and no instance metadata to ask)
    let mut env: Vec<(String, String)> = service_env(&url, &table)
        .into_iter()
        .filter(|(name, _)| name != "AWS_REGION" && name != "AWS_DEFAULT_REGION")
        .collect();
    env.extend(iam.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned())));
    env.push(("AWS_EC2_METADATA_DISABLED".into(), "true".into()));
    env.push(("SSL_CERT_FILE".into(), ca.display().to_string()));
    // WHEN product-api starts THEN it stops, naming the user, the cache and the reason
    let message = failed_start(env).await;
    assert!(
        message.contains("REDIS_IAM_USER=product-api")
            && message.contains("REDIS_IAM_CACHE=products"),
        "{message}"
    );
    assert!(message.contains("AWS_REGION"), "{message}");
}

/// Three masters on free ports, slots spread by redis-cli.
struct Cluster {
    nodes: Vec<RedisServer>,
}

impl Cluster {
    fn start() -> Self {
        let nodes: Vec<RedisServer> = (0..3)
            .map(|_| {
                RedisServer::start_with(|_, dir| {
                    // The default user stays open (redis-cli --cluster create); the
                    // service connects as "app", with the Terraform's ACL.
                    let acl = dir.join("users.acl");
                    std::fs::write(
                        &acl,
                        format!(
                            "user default on nopass ~* &* +@all\nuser app >app-pass {}\n",
                            terraform_app_access_string()
                        ),
                    )
                    .unwrap();
                    [
                        "--cluster-enabled",
                        "yes",
                        "--cluster-config-file",
                        "nodes.conf",
                        "--cluster-node-timeout",
                        "2000",
                        "--aclfile",
                    ]
                    .map(String::from)
                    .into_iter()
                    .chain([acl.display().to_string()])
                    .collect()
                })
            })
            .collect();
        let mut create = Command::new("redis-cli");
        create.arg("--cluster").arg("create");
        for node in &nodes {
            create.arg(format!("127.0.0.1:{}", node.port));
        }
        let output = create
            .args(["--cluster-replicas", "0", "--cluster-yes"])
            .output()
            .unwrap();
        assert!(
            output.status.success(),
            "cluster create: {}",
            String::from_utf8_lossy(&output.stdout)
        );
        let deadline = Instant::now() + Duration::from_secs(15);
        for node in &nodes {
            loop {
                let info = Command::new("redis-cli")
                    .args(["-p", &node.port.to_string(), "cluster", "info"])
                    .output()
                    .unwrap();
                if String::from_utf8_lossy(&info.stdout).contains("cluster_state:ok") {
                    break;
                }
                assert!(Instant::now() < deadline, "cluster did not become ready");
                std::thread::sleep(Duration::from_millis(100));
            }
        }
        Self { nodes }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cluster_mode_serves_keys_on_every_shard() {
    // GIVEN a three-shard Redis cluster
    let cluster = Cluster::start();
    let table = sample_table().await;
    let url = format!(
        "redis-cluster://app:app-pass@127.0.0.1:{}",
        cluster.nodes[0].port
    );
    let api = app::build(&api_config(&url, &table)).await.unwrap();

    // WHEN 30 products are read twice THEN MISS, then HIT, for each
    let ids: Vec<String> = (10001..10031).map(|n| format!("P-{n}")).collect();
    for pass in ["MISS", "HIT"] {
        for id in &ids {
            let response = api
                .handle(
                    &http::Request::get(format!("/product/{id}"))
                        .body(())
                        .unwrap(),
                )
                .await;
            assert_eq!(response.status(), 200);
            assert_eq!(response.headers()["x-cache"], pass, "{id}");
        }
    }
    // AND the keys really are spread over the three shards
    // The keys really are spread over the three shards.
    let per_node: Vec<usize> = cluster
        .nodes
        .iter()
        .map(|node| {
            let out = Command::new("redis-cli")
                .args(["-p", &node.port.to_string(), "dbsize"])
                .output()
                .unwrap();
            String::from_utf8_lossy(&out.stdout).trim().parse().unwrap()
        })
        .collect();
    assert!(
        per_node.iter().all(|&n| n > 0),
        "keys per shard: {per_node:?}"
    );
    // Nothing the service sent as "app" was refused by the Terraform's ACL.
    for node in &cluster.nodes {
        let log = Command::new("redis-cli")
            .args(["-p", &node.port.to_string(), "ACL", "LOG"])
            .output()
            .unwrap();
        assert_eq!(
            String::from_utf8_lossy(&log.stdout).trim(),
            "",
            "commands the ACL refused on {}",
            node.port
        );
    }
}

/// memcached with TLS on (Debian's build has it: -Z), its certificate from a test CA
/// whose `ca.pem` is in the directory returned.
fn tls_memcached() -> (MemcachedServer, tempfile::TempDir) {
    let dir = tempfile::tempdir().unwrap();
    make_certificates(dir.path());
    let path = |name: &str| dir.path().join(name).display().to_string();
    let memcached = MemcachedServer::start_with(vec![
        "-Z".into(),
        "-o".into(),
        format!(
            "ssl_chain_cert={},ssl_key={}",
            path("server.pem"),
            path("server.key")
        ),
    ]);
    (memcached, dir)
}

#[tokio::test]
async fn a_memcaches_url_reaches_memcached_over_tls_and_plain_tcp_does_not() {
    // GIVEN memcached with TLS on (Debian's build has it: -Z), certificates from the test CA
    let (memcached, dir) = tls_memcached();
    let table = sample_table().await;
    let ca = dir.path().join("ca.pem");
    let port = memcached.port;

    // WHEN product-api uses memcaches:// THEN MISS then HIT
    let tls = two_gets(&format!("memcaches://localhost:{port}"), &ca, &table).await;
    assert_eq!(tls, ("MISS".to_owned(), "HIT".to_owned()));
    // AND the invalidator reaches it over TLS too
    let reply = invalidate_as(&format!("memcaches://localhost:{port}"), &ca, "P-10070");
    assert_eq!(reply["batchItemFailures"], serde_json::json!([]));
    // AND a plain memcache:// client gets nothing from the TLS port: BYPASS, still 200
    let plain = two_gets(&format!("memcache://localhost:{port}"), &ca, &table).await;
    assert_eq!(plain, ("BYPASS".to_owned(), "BYPASS".to_owned()));
}

#[tokio::test]
async fn with_trusted_roots_amazon_a_cache_signed_by_another_ca_is_refused() {
    // GIVEN Redis and memcached over TLS, their certificates from the test CA, and
    // SSL_CERT_FILE naming that CA (as in the tests above, where it is trusted)
    let redis = tls_redis();
    let (memcached, dir) = tls_memcached();
    let table = sample_table().await;
    let amazon = [("TRUSTED_ROOTS", "amazon")];
    let redis_url = format!("rediss://:s3cret-token@localhost:{}", redis.port);
    // However the scheme is written, it is TLS with these roots (fred, left to itself
    // with a rediss URL, would load the system's).
    let upper_case = format!("REDISS://:s3cret-token@localhost:{}", redis.port);
    let spaced = format!(" rediss://:s3cret-token@localhost:{}", redis.port);
    let memcached_url = format!("memcaches://localhost:{}", memcached.port);
    for (url, ca) in [
        (&redis_url, redis.dir().join("ca.pem")),
        (&upper_case, redis.dir().join("ca.pem")),
        (&spaced, redis.dir().join("ca.pem")),
        (&memcached_url, dir.path().join("ca.pem")),
    ] {
        // WHEN product-api trusts the Amazon roots THEN no handshake succeeds: the test
        // CA (in SSL_CERT_FILE, and the system's roots) plays no part; still 200
        let gets = two_gets_with(url, &ca, &table, &amazon).await;
        assert_eq!(gets, ("BYPASS".to_owned(), "BYPASS".to_owned()), "{url}");
        // AND the invalidator reports its record for retry
        let reply = run_invalidator(
            &[
                (cache_url_var(url), url.as_ref()),
                ("SSL_CERT_FILE", ca.as_os_str()),
                ("TRUSTED_ROOTS", "amazon".as_ref()),
            ],
            &remove_event("P-10070"),
        );
        assert_eq!(
            reply["batchItemFailures"][0]["itemIdentifier"], "1",
            "{url}: {reply}"
        );
    }
}

#[test]
fn a_wrong_password_is_logged_as_the_servers_refusal_not_as_a_timeout() {
    // GIVEN Redis with an AUTH token, and cache-invalidator given the wrong one
    let redis = RedisServer::start_with(|_, _| vec!["--requirepass".into(), "right-token".into()]);
    let url = format!("redis://:wrong-token@127.0.0.1:{}", redis.port);
    let event = remove_event("P-10001");
    let mut child = Command::new(env!("CARGO_BIN_EXE_cache-invalidator"))
        .env_clear()
        .env("REDIS_URL", &url)
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    {
        use std::io::Write as _;
        let mut stdin = child.stdin.take().unwrap();
        stdin.write_all(event.to_string().as_bytes()).unwrap();
    }
    let output = child.wait_with_output().unwrap();
    let (stdout, stderr) = (
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr),
    );
    // WHEN it runs THEN the record is reported for retry, and the log says why: the
    // server refused the password (an operator fixing a timeout would look elsewhere)
    let response: serde_json::Value = serde_json::from_str(&stdout).unwrap();
    assert_eq!(
        response["batchItemFailures"][0]["itemIdentifier"], "1",
        "record not reported: {stdout}\n{stderr}"
    );
    assert!(
        stderr.contains("WRONGPASS") || stderr.contains("invalid username-password"),
        "the log does not name the refused password:\n{stderr}"
    );
    // AND the password itself is not in the log
    assert!(!stderr.contains("wrong-token"), "{stderr}");
}
