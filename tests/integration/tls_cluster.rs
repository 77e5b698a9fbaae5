//! ElastiCache-like settings on real local servers: TLS with AUTH (password, and user
//! plus password) against a test CA made here, and a three-shard Redis cluster.

use std::process::Command;
use std::time::{Duration, Instant};

use product_catalog::app;
use rcgen::{BasicConstraints, CertificateParams, IsCa, Issuer, KeyPair};

use crate::helpers::{RedisServer, api_config, product_api, sample_table, service_env};

/// Writes `ca.pem`, `server.pem`, `server.key` into `dir`; the server cert names localhost.
fn make_certificates(dir: &std::path::Path) {
    let ca_key = KeyPair::generate().unwrap();
    let mut ca_params = CertificateParams::new(Vec::<String>::new()).unwrap();
    ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    ca_params
        .distinguished_name
        .push(rcgen::DnType::CommonName, "product-catalog test CA");
    let ca_cert = ca_params.self_signed(&ca_key).unwrap();
    let issuer = Issuer::new(ca_params, ca_key);
    let server_key = KeyPair::generate().unwrap();
    let server_params =
        CertificateParams::new(vec!["localhost".to_owned(), "127.0.0.1".to_owned()]).unwrap();
    let server_cert = server_params.signed_by(&server_key, &issuer).unwrap();
    std::fs::write(dir.join("ca.pem"), ca_cert.pem()).unwrap();
    std::fs::write(dir.join("server.pem"), server_cert.pem()).unwrap();
    std::fs::write(dir.join("server.key"), server_key.serialize_pem()).unwrap();
}

fn tls_redis() -> RedisServer {
    RedisServer::start_with(|port, dir| {
        make_certificates(dir);
        // AUTH as ElastiCache offers it: the default user's token, and a named user.
        std::fs::write(
            dir.join("users.acl"),
            "user default on >s3cret-token ~* &* +@all\nuser app on >app-pass ~product:* &* +@all\n",
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
    let mut env = service_env(redis_url, table);
    // rustls-native-certs honours SSL_CERT_FILE, as OpenSSL does.
    env.push(("SSL_CERT_FILE".into(), ca.display().to_string()));
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

    let cli = Command::new("redis-cli")
        .args(["--tls", "--cacert"])
        .arg(&ca)
        .args([
            "-p",
            &port.to_string(),
            "--user",
            "app",
            "--pass",
            "app-pass",
            "--no-auth-warning",
        ])
        .args(["TTL", "product:P-10070"])
        .output()
        .unwrap();
    let ttl: i64 = String::from_utf8_lossy(&cli.stdout)
        .trim()
        .parse()
        .expect("redis-cli over TLS answers TTL");
    assert!((290..=300).contains(&ttl), "TTL {ttl}");
    let _ = Command::new("redis-cli")
        .args(["--tls", "--cacert"])
        .arg(&ca)
        .args([
            "-p",
            &port.to_string(),
            "-a",
            "s3cret-token",
            "--no-auth-warning",
            "DEL",
            "product:P-10070",
        ])
        .output()
        .unwrap();

    // WHEN it uses the ACL user THEN MISS then HIT
    let with_user = two_gets(
        &format!("rediss://app:app-pass@localhost:{port}"),
        &ca,
        &table,
    )
    .await;
    assert_eq!(with_user, ("MISS".into(), "HIT".into()));

    // WHEN the password is wrong THEN it degrades to BYPASS
    let wrong = two_gets(&format!("rediss://:wrong@localhost:{port}"), &ca, &table).await;
    assert_eq!(wrong, ("BYPASS".into(), "BYPASS".into()));
}

/// Three masters on free ports, slots spread by redis-cli.
struct Cluster {
    nodes: Vec<RedisServer>,
}

impl Cluster {
    fn start() -> Self {
        let nodes: Vec<RedisServer> = (0..3)
            .map(|_| {
                RedisServer::start_with(|_, _| {
                    [
                        "--cluster-enabled",
                        "yes",
                        "--cluster-config-file",
                        "nodes.conf",
                        "--cluster-node-timeout",
                        "2000",
                    ]
                    .map(String::from)
                    .to_vec()
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
    let url = format!("redis-cluster://127.0.0.1:{}", cluster.nodes[0].port);
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
}
