//! docs/openapi.yaml against the running local server: every response to a documented
//! operation must have a documented status, only documented headers (beyond transport
//! ones) with values their schema admits, a documented media type and a body its schema
//! admits; and every documented status must be produced by some request here.

use std::collections::BTreeSet;

use regex::Regex;
use yaml_rust2::{Yaml, YamlLoader};

use crate::helpers::{ChildGuard, Emulator, RedisServer, free_port, product_api};

const PATH: &str = "/product/{productId}";
/// Set by the HTTP stack, not by the API.
const TRANSPORT_HEADERS: [&str; 4] = ["date", "connection", "transfer-encoding", "keep-alive"];

/// product-api as a local server with `env`, killed on drop.
struct Server {
    _guard: ChildGuard,
    base: String,
}

impl Server {
    fn start(env: &[(&str, &str)]) -> Self {
        let env: Vec<(String, String)> = env
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        let (guard, port) = product_api(&env);
        Self {
            _guard: guard,
            base: format!("http://127.0.0.1:{port}"),
        }
    }
}

struct Exchange {
    method: String,
    what: String,
    status: u16,
    headers: Vec<(String, String)>,
    body: Vec<u8>,
}

async fn send(server: &Server, method: &str, path: &str, headers: &[(&str, &str)]) -> Exchange {
    let client = reqwest::Client::new();
    let mut request = client.request(
        reqwest::Method::from_bytes(method.as_bytes()).unwrap(),
        format!("{}{path}", server.base),
    );
    for (name, value) in headers {
        request = request.header(*name, *value);
    }
    let response = request.send().await.unwrap();
    Exchange {
        method: method.to_lowercase(),
        what: format!("{method} {path} {headers:?}"),
        status: response.status().as_u16(),
        headers: response
            .headers()
            .iter()
            .map(|(k, v)| (k.as_str().to_owned(), v.to_str().unwrap().to_owned()))
            .collect(),
        body: response.bytes().await.unwrap().to_vec(),
    }
}

fn spec() -> Yaml {
    let text =
        std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/docs/openapi.yaml")).unwrap();
    YamlLoader::load_from_str(&text).unwrap().remove(0)
}

/// Follows a local `$ref` ("#/components/...").
fn resolve<'a>(doc: &'a Yaml, node: &'a Yaml) -> &'a Yaml {
    match node["$ref"].as_str() {
        Some(reference) => {
            let target = reference
                .strip_prefix("#/")
                .unwrap()
                .split('/')
                .fold(doc, |node, key| &node[key]);
            assert!(!target.is_badvalue(), "dangling $ref {reference}");
            resolve(doc, target)
        }
        None => node,
    }
}

/// Whether `value` satisfies the (resolved) schema, as far as this API's schemas go.
fn admits(doc: &Yaml, schema: &Yaml, value: &serde_json::Value) -> Result<(), String> {
    let schema = resolve(doc, schema);
    if let Some(allowed) = schema["enum"].as_vec() {
        let ok = allowed.iter().any(|a| match a {
            Yaml::String(s) => value.as_str() == Some(s),
            Yaml::Integer(i) => value.as_i64() == Some(*i),
            _ => false,
        });
        if !ok {
            return Err(format!("{value} is not one of {allowed:?}"));
        }
    }
    match schema["type"].as_str() {
        Some("string") => {
            let text = value.as_str().ok_or(format!("{value} is not a string"))?;
            if let Some(min) = schema["minLength"].as_i64()
                && (text.chars().count() as i64) < min
            {
                return Err(format!("{text:?} is shorter than {min}"));
            }
            if let Some(pattern) = schema["pattern"].as_str()
                && !Regex::new(pattern).unwrap().is_match(text)
            {
                return Err(format!("{text:?} does not match {pattern}"));
            }
        }
        Some("integer") => {
            let number = value.as_i64().ok_or(format!("{value} is not an integer"))?;
            if let Some(min) = schema["minimum"].as_i64()
                && number < min
            {
                return Err(format!("{number} is below {min}"));
            }
        }
        Some("object") => {
            let object = value
                .as_object()
                .ok_or(format!("{value} is not an object"))?;
            for required in schema["required"].as_vec().into_iter().flatten() {
                let key = required.as_str().unwrap();
                if !object.contains_key(key) {
                    return Err(format!("{value} lacks {key}"));
                }
            }
            let properties = schema["properties"].as_hash();
            for (key, item) in object {
                match properties.and_then(|p| p.get(&Yaml::String(key.clone()))) {
                    Some(property) => admits(doc, property, item)?,
                    None if schema["additionalProperties"].as_bool() == Some(false) => {
                        return Err(format!("{value} has the undocumented property {key}"));
                    }
                    None => {}
                }
            }
        }
        _ => {}
    }
    Ok(())
}

/// Everything about one response that the document must describe.
fn check(doc: &Yaml, exchange: &Exchange) -> Result<(), String> {
    let operation = &doc["paths"][PATH][exchange.method.as_str()];
    if operation.is_badvalue() {
        return Err(format!("{} is not a documented operation", exchange.method));
    }
    let response = &operation["responses"][exchange.status.to_string().as_str()];
    if response.is_badvalue() {
        return Err(format!("status {} is not documented", exchange.status));
    }
    let response = resolve(doc, response);
    let documented = response["headers"].as_hash().cloned().unwrap_or_default();
    let header = |name: &str| {
        documented
            .iter()
            .find(|(k, _)| k.as_str().unwrap().eq_ignore_ascii_case(name))
            .map(|(_, v)| resolve(doc, v))
    };
    let content = response["content"].as_hash();
    for (name, value) in &exchange.headers {
        if TRANSPORT_HEADERS.contains(&name.as_str()) {
            continue;
        }
        if let (true, Some(media_types)) = (name == "content-type", content) {
            let media = value.split(';').next().unwrap().trim();
            if !media_types.contains_key(&Yaml::String(media.to_owned())) {
                return Err(format!("media type {media} is not documented"));
            }
            continue;
        }
        let spec = header(name).ok_or(format!("header {name} is not documented"))?;
        let value = match spec["schema"]["type"].as_str() {
            Some("integer") => value
                .parse::<i64>()
                .map(serde_json::Value::from)
                .map_err(|_| format!("header {name}: {value:?} is not an integer"))?,
            _ => serde_json::Value::from(value.as_str()),
        };
        admits(doc, &spec["schema"], &value).map_err(|err| format!("header {name}: {err}"))?;
    }
    for (name, spec) in &documented {
        let name = name.as_str().unwrap();
        if resolve(doc, spec)["required"].as_bool() == Some(true)
            && !exchange
                .headers
                .iter()
                .any(|(k, _)| k.eq_ignore_ascii_case(name))
        {
            return Err(format!("the required header {name} is missing"));
        }
    }
    match content {
        Some(media) if exchange.method != "head" => {
            let schema = &media[&Yaml::String("application/json".to_owned())]["schema"];
            let body: serde_json::Value = serde_json::from_slice(&exchange.body)
                .map_err(|err| format!("the body is not JSON: {err}"))?;
            admits(doc, schema, &body).map_err(|err| format!("body: {err}"))?;
        }
        _ if !exchange.body.is_empty() => return Err("an undocumented body".to_owned()),
        _ => {}
    }
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_openapi_document_describes_every_response_and_every_documented_status_occurs() {
    // GIVEN the document and four local servers: the embedded default, one whose Redis is
    // down (BYPASS), one whose table cannot be reached (503), and one whose table went
    // away after it served a product (STALE)
    let doc = spec();
    let embedded = Server::start(&[]);
    let closed = format!("127.0.0.1:{}", free_port());
    let redis_down = Server::start(&[
        ("REDIS_URL", &format!("redis://{closed}")),
        ("REDIS_TIMEOUT_MS", "50"),
    ]);
    let table_down = Server::start(&[
        ("TABLE_NAME", "Products"),
        ("AWS_ENDPOINT_URL_DYNAMODB", &format!("http://{closed}")),
        ("AWS_REGION", "eu-west-1"),
        ("AWS_ACCESS_KEY_ID", "local"),
        ("AWS_SECRET_ACCESS_KEY", "local"),
        ("AWS_EC2_METADATA_DISABLED", "true"),
    ]);

    let redis = RedisServer::start();
    let mut emulator = Emulator::start();
    emulator.sample_table().await;
    let redis_url = redis.url();
    let table_gone = Server::start(&[
        ("TABLE_NAME", "Products"),
        ("REDIS_URL", &redis_url),
        ("AWS_ENDPOINT_URL_DYNAMODB", &emulator.endpoint),
        ("AWS_REGION", "eu-west-1"),
        ("AWS_ACCESS_KEY_ID", "local"),
        ("AWS_SECRET_ACCESS_KEY", "local"),
        ("AWS_EC2_METADATA_DISABLED", "true"),
    ]);
    let served = send(&table_gone, "GET", "/product/P-10004", &[]).await;
    assert_eq!(served.status, 200);
    // The 300-second entry runs out during the outage; the last-known-good copy stays.
    let _: i64 = fred::prelude::KeysInterface::del(&redis.client().await, "product:P-10004")
        .await
        .unwrap();
    emulator.stop();

    // WHEN every kind of request is sent (a conditional one to STALE too)
    let served_etag = served
        .headers
        .iter()
        .find(|(k, _)| k == "etag")
        .unwrap()
        .1
        .clone();
    let mut exchanges = vec![served];
    for method in ["GET", "HEAD"] {
        exchanges.push(send(&embedded, method, "/product/P-10001", &[]).await);
        exchanges.push(send(&embedded, method, "/product/P-10001", &[]).await);
        let etag = exchanges
            .last()
            .unwrap()
            .headers
            .iter()
            .find(|(k, _)| k == "etag")
            .unwrap()
            .1
            .clone();
        exchanges.push(
            send(
                &embedded,
                method,
                "/product/P-10001",
                &[("if-none-match", &etag)],
            )
            .await,
        );
        // A missing id: from the table, then remembered, and with the cache down.
        let missing = format!("/product/no-such-product-{method}");
        exchanges.push(send(&embedded, method, &missing, &[]).await);
        exchanges.push(send(&embedded, method, &missing, &[]).await);
        exchanges.push(send(&redis_down, method, &missing, &[]).await);
        exchanges.push(send(&embedded, method, "/product/bad%01id", &[]).await);
        exchanges.push(send(&embedded, method, "/product/a%2Fb", &[]).await);
        exchanges.push(send(&redis_down, method, "/product/P-10002", &[]).await);
        exchanges.push(send(&table_down, method, "/product/P-10003", &[]).await);
        exchanges.push(send(&table_gone, method, "/product/P-10004", &[]).await);
        let stale_304 = send(
            &table_gone,
            method,
            "/product/P-10004",
            &[("if-none-match", &served_etag)],
        )
        .await;
        assert_eq!(stale_304.status, 304, "{}", stale_304.what);
        exchanges.push(stale_304);
    }
    for method in ["POST", "PUT", "PATCH", "DELETE", "OPTIONS", "TRACE"] {
        exchanges.push(send(&embedded, method, "/product/P-10001", &[]).await);
    }

    // THEN each response is described by the document
    let problems: Vec<String> = exchanges
        .iter()
        .filter_map(|exchange| {
            check(&doc, exchange)
                .err()
                .map(|err| format!("{} -> {}: {err}", exchange.what, exchange.status))
        })
        .collect();
    assert!(problems.is_empty(), "{problems:#?}");
    // AND the X-Cache values the document promises all occurred, for products and for
    // missing ids
    let x_cache = |status: u16| -> BTreeSet<&str> {
        exchanges
            .iter()
            .filter(|e| e.status == status)
            .flat_map(|e| &e.headers)
            .filter(|(k, _)| k == "x-cache")
            .map(|(_, v)| v.as_str())
            .collect()
    };
    assert_eq!(
        x_cache(200),
        BTreeSet::from(["BYPASS", "HIT", "MISS", "STALE"])
    );
    assert_eq!(x_cache(404), BTreeSet::from(["BYPASS", "HIT", "MISS"]));
    // AND every documented status was produced
    let produced: BTreeSet<(String, String)> = exchanges
        .iter()
        .map(|e| (e.method.clone(), e.status.to_string()))
        .collect();
    let operations = doc["paths"][PATH].as_hash().unwrap();
    for (method, operation) in operations {
        let method = method.as_str().unwrap();
        if method == "parameters" {
            continue;
        }
        for status in operation["responses"].as_hash().unwrap().keys() {
            let status = status.as_str().unwrap().to_owned();
            assert!(
                produced.contains(&(method.to_owned(), status.clone())),
                "{method} {status} is documented but no request produced it"
            );
        }
    }
}
