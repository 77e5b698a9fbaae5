//! The ElastiCache AUTH token read from Secrets Manager at start-up, as deployed: a
//! password-protected `redis-server`, the token in moto's Secrets Manager, product-api
//! given only the URL and the secret's ARN.

use product_catalog::adapters::aws::sdk_config;

use crate::helpers::{Moto, RedisServer, product_api, sample_table, service_env};

async fn x_cache_of_two_gets(env: Vec<(String, String)>) -> Vec<String> {
    let (_server, port) = product_api(&env);
    let mut seen = Vec::new();
    for _ in 0..2 {
        let response = reqwest::get(format!("http://127.0.0.1:{port}/product/P-10090"))
            .await
            .unwrap();
        assert_eq!(response.status(), 200);
        seen.push(response.headers()["x-cache"].to_str().unwrap().to_owned());
    }
    seen
}

#[tokio::test]
async fn the_auth_token_is_read_from_secrets_manager() {
    // GIVEN a password-protected Redis and its token in Secrets Manager
    let redis = RedisServer::start_with(|_, _| {
        vec!["--requirepass".to_owned(), "t0ken-from-secrets".to_owned()]
    });
    let moto = Moto::start();
    let secrets = aws_sdk_secretsmanager::Client::from_conf(
        aws_sdk_secretsmanager::config::Builder::from(&sdk_config().await)
            .endpoint_url(&moto.endpoint)
            .build(),
    );
    let arn = secrets
        .create_secret()
        .name("product-catalog-cache-auth")
        .secret_string("t0ken-from-secrets")
        .send()
        .await
        .unwrap()
        .arn
        .unwrap();
    let table = sample_table().await;

    // WHEN product-api has only the URL THEN Redis refuses it and it serves BYPASS
    // The URL alone has no password: Redis refuses, requests are served from the table.
    let mut env = service_env(&redis.url(), &table);
    assert_eq!(x_cache_of_two_gets(env.clone()).await, ["BYPASS", "BYPASS"]);

    // WHEN it also has the secret's ARN THEN it reads the token and the cache works
    // With the secret's ARN the token is fetched at start-up and the cache works.
    env.push(("REDIS_AUTH_SECRET_ARN".to_owned(), arn));
    env.push((
        "AWS_ENDPOINT_URL_SECRETS_MANAGER".to_owned(),
        moto.endpoint.clone(),
    ));
    assert_eq!(x_cache_of_two_gets(env).await, ["MISS", "HIT"]);
}
