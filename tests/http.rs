//! The HTTP contract through the event reading product-api does (`runtime::Event`:
//! REST events by its own reader, the others by `lambda_http`): API Gateway REST (v1)
//! with a stage and a custom-domain base path, HTTP API (v2), Function URLs, and plain
//! local requests. In-process adapters; no services needed.

use bytes::Bytes;
use http::{Response, StatusCode};
use lambda_http::{Context, LambdaEvent};
use product_catalog::adapters::{MemoryCache, MemoryStore};
use product_catalog::http::Api;
use product_catalog::runtime::{Event, Invocation};
use product_catalog::service::ProductService;
use serde_json::Value;

type TestApi = Api<MemoryCache, MemoryStore>;

fn api() -> TestApi {
    let service = ProductService::new(
        MemoryCache::default(),
        MemoryStore::sample().unwrap(),
        std::time::Duration::from_secs(300),
    );
    Api::new(service, 60)
}

fn fixture(name: &str) -> Value {
    let path = format!("{}/tests/fixtures/{name}.json", env!("CARGO_MANIFEST_DIR"));
    serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap()
}

/// A REST (v1) event for `/product/{id}` on stage `prod`, as API Gateway sends it.
fn rest_event(id: &str, method: &str) -> Value {
    let mut event = fixture("apigw_rest_stage");
    event["pathParameters"]["productId"] = id.into();
    event["path"] = format!("/product/{id}").into();
    event["requestContext"]["path"] = format!("/prod/product/{id}").into();
    event["httpMethod"] = method.into();
    event["requestContext"]["httpMethod"] = method.into();
    event
}

/// A Function URL event for a raw (still percent-encoded) path.
fn url_event(raw_path: &str, method: &str) -> Value {
    let mut event = fixture("function_url");
    event["rawPath"] = raw_path.into();
    event["requestContext"]["http"]["path"] = raw_path.into();
    event["requestContext"]["http"]["method"] = method.into();
    event
}

async fn send(api: &TestApi, event: &Value) -> Response<Bytes> {
    let event = serde_json::from_str::<Event>(&event.to_string()).unwrap();
    match Invocation::read(LambdaEvent::new(event, Context::default())) {
        Invocation::Request { request, .. } => api.handle(&request).await,
        Invocation::Answered(reply) => panic!("the event was not read as a request: {reply:?}"),
    }
}

fn header<'a>(response: &'a Response<Bytes>, name: &str) -> &'a str {
    response
        .headers()
        .get(name)
        .map_or("", |value| value.to_str().unwrap())
}

fn json(response: &Response<Bytes>) -> Value {
    serde_json::from_slice(response.body()).expect("body is JSON")
}

fn assert_error(response: &Response<Bytes>, status: StatusCode, code: &str) {
    assert_eq!(response.status(), status, "{:?}", response.body());
    assert_eq!(header(response, "content-type"), "application/json");
    let body = json(response);
    assert_eq!(body["error"], code);
    assert!(body["message"].as_str().is_some_and(|m| !m.is_empty()));
    assert!(body["requestId"].as_str().is_some_and(|id| !id.is_empty()));
    assert_eq!(
        body["requestId"].as_str().unwrap(),
        header(response, "x-request-id")
    );
}

#[tokio::test]
async fn rest_event_with_a_stage_misses_then_hits() {
    // GIVEN a cold cache and a REST event on stage prod
    let api = api();
    let event = fixture("apigw_rest_stage");

    // WHEN it is sent THEN a MISS with the JSON body, caching headers and the gateway request id
    let first = send(&api, &event).await;
    assert_eq!(first.status(), StatusCode::OK);
    assert_eq!(header(&first, "x-cache"), "MISS");
    assert_eq!(header(&first, "content-type"), "application/json");
    assert_eq!(header(&first, "cache-control"), "public, max-age=60");
    assert_eq!(
        header(&first, "x-request-id"),
        "c6af9ac6-7b61-11e6-9a41-93e8deadbeef"
    );
    let etag = header(&first, "etag").to_owned();
    assert!(
        etag.starts_with('"') && etag.ends_with('"') && !etag.starts_with("W/"),
        "{etag}"
    );
    let body = std::str::from_utf8(first.body()).unwrap();
    assert!(
        body.contains(r#""price":12345678901234567890.123456789"#),
        "{body}"
    );
    assert_eq!(json(&first)["productId"], "P-10001");

    // WHEN it is sent again THEN a HIT with the same bytes and ETag
    let second = send(&api, &event).await;
    assert_eq!(header(&second, "x-cache"), "HIT");
    assert_eq!(second.body(), first.body());
    assert_eq!(header(&second, "etag"), etag);
}

#[tokio::test]
async fn every_event_shape_routes_to_its_product() {
    // GIVEN one event of each shape, each for its own product
    let api = api();
    let cases = [
        ("apigw_rest_custom_domain", "P-10002"),
        ("apigw_http_v2", "P-10003"),
        ("apigw_http_v2_default_route_stage", "P-10004"),
        ("function_url", "🦀-plush"),
    ];
    for (name, id) in cases {
        // WHEN it is sent THEN its product is served
        let response = send(&api, &fixture(name)).await;
        assert_eq!(
            response.status(),
            StatusCode::OK,
            "{name}: {:?}",
            response.body()
        );
        assert_eq!(json(&response)["productId"], id, "{name}");
    }
}

#[tokio::test]
async fn ids_with_any_printable_character_round_trip() {
    // GIVEN ids with spaces, symbols, percent signs and non-ASCII characters
    let api = api();
    for id in [
        "café ☕ grinder",
        "🦀-plush",
        "gift card",
        "A+B*C",
        "100%-cotton",
        "東京-mug",
    ] {
        // WHEN each is requested as a REST path parameter THEN it is served under that id
        let response = send(&api, &rest_event(id, "GET")).await;
        assert_eq!(response.status(), StatusCode::OK, "{id}");
        assert_eq!(json(&response)["productId"], id);
        // AND the same through a percent-encoded Function URL path
        let encoded = percent_encoding::utf8_percent_encode(id, percent_encoding::NON_ALPHANUMERIC)
            .to_string();
        let response = send(&api, &url_event(&format!("/product/{encoded}"), "GET")).await;
        assert_eq!(json(&response)["productId"], id, "function URL {encoded}");
    }
}

/// JSON text in one canonical form, numbers kept as written: objects with sorted keys,
/// no insignificant white space. Two texts with the same canonical form hold the same
/// values to the last digit, which `serde_json::Value` (f64 numbers) cannot tell.
fn canonical(json: &str) -> String {
    use std::collections::BTreeMap;

    use serde_json::value::RawValue;
    let text = json.trim();
    if let Ok(object) = serde_json::from_str::<BTreeMap<String, &RawValue>>(text) {
        let fields: Vec<String> = object
            .iter()
            .map(|(key, value)| format!("{}:{}", Value::from(key.as_str()), canonical(value.get())))
            .collect();
        format!("{{{}}}", fields.join(","))
    } else if let Ok(array) = serde_json::from_str::<Vec<&RawValue>>(text) {
        let items: Vec<String> = array.iter().map(|item| canonical(item.get())).collect();
        format!("[{}]", items.join(","))
    } else if let Ok(string) = serde_json::from_str::<String>(text) {
        Value::from(string).to_string()
    } else {
        // A number, true, false or null: its text as written.
        text.to_owned()
    }
}

#[tokio::test]
async fn served_bodies_are_the_catalog_items_exactly() {
    // GIVEN the sample catalog, each item's text as written in the file
    let api = api();
    let items: Vec<&serde_json::value::RawValue> =
        serde_json::from_str(product_catalog::adapters::memory_store::SAMPLE_CATALOG).unwrap();
    assert!(items.len() >= 40);
    for item in items {
        let id = serde_json::from_str::<Value>(item.get()).unwrap()["productId"]
            .as_str()
            .unwrap()
            .to_owned();
        // WHEN it is requested
        let response = send(&api, &rest_event(&id, "GET")).await;
        // THEN the body holds the same values, every digit of every number included
        let body = std::str::from_utf8(response.body()).unwrap();
        assert_eq!(canonical(body), canonical(item.get()), "{id}");
    }
}

#[tokio::test]
async fn head_answers_like_get_without_a_body() {
    // GIVEN a product
    let api = api();
    // WHEN it is asked for with GET, then with HEAD
    let get = send(&api, &rest_event("P-10005", "GET")).await;
    let head = send(&api, &rest_event("P-10005", "HEAD")).await;
    // THEN HEAD answers as GET did (length, ETag, a HIT), without a body
    assert_eq!(head.status(), StatusCode::OK);
    assert!(head.body().is_empty());
    assert_eq!(
        header(&head, "content-length"),
        get.body().len().to_string()
    );
    assert_eq!(header(&head, "etag"), header(&get, "etag"));
    assert_eq!(header(&head, "x-cache"), "HIT");
}

#[tokio::test]
async fn matching_if_none_match_gives_304() {
    // GIVEN the ETag of a product
    let api = api();
    let first = send(&api, &rest_event("P-10006", "GET")).await;
    let etag = header(&first, "etag").to_owned();
    for value in [
        etag.clone(),
        format!("W/{etag}"),
        format!("\"other\", {etag}"),
        "*".to_owned(),
    ] {
        // WHEN it comes back in If-None-Match (strong, weak, in a list, or *) THEN 304 without a body
        let mut event = rest_event("P-10006", "GET");
        event["headers"]["If-None-Match"] = value.clone().into();
        event["multiValueHeaders"]["If-None-Match"] = serde_json::json!([value.clone()]);
        let response = send(&api, &event).await;
        assert_eq!(response.status(), StatusCode::NOT_MODIFIED, "{value}");
        assert!(response.body().is_empty());
        assert_eq!(header(&response, "etag"), etag);
    }
    // AND a tag that does not match gets the 200
    let mut event = rest_event("P-10006", "GET");
    event["multiValueHeaders"]["If-None-Match"] = serde_json::json!(["\"stale\""]);
    assert_eq!(send(&api, &event).await.status(), StatusCode::OK);
}

#[tokio::test]
async fn other_methods_get_405_with_allow() {
    // GIVEN the product route
    let api = api();
    for method in ["POST", "PUT", "DELETE", "PATCH", "OPTIONS"] {
        // WHEN any method but GET and HEAD is used THEN 405 with Allow
        let response = send(&api, &rest_event("P-10001", method)).await;
        assert_error(
            &response,
            StatusCode::METHOD_NOT_ALLOWED,
            "method_not_allowed",
        );
        assert_eq!(header(&response, "allow"), "GET, HEAD");
    }
}

#[tokio::test]
async fn unknown_products_and_paths_get_404_json() {
    // GIVEN an id the catalog lacks, and paths outside /product/{id}
    let api = api();
    // WHEN each is requested THEN a 404 JSON error
    let missing = send(&api, &rest_event("no-such-product", "GET")).await;
    assert_error(&missing, StatusCode::NOT_FOUND, "not_found");
    // AND the missing id's says where it came from, as a product's does: the table
    // first, then the cache, which remembers it (make smoke relies on it)
    assert_eq!(header(&missing, "x-cache"), "MISS");
    let again = send(&api, &rest_event("no-such-product", "HEAD")).await;
    assert_eq!(again.status(), StatusCode::NOT_FOUND);
    assert_eq!(header(&again, "x-cache"), "HIT");
    for path in [
        "/",
        "/products",
        "/product",
        "/product/P-10001/extra",
        "/product/a/b",
        "/other/product/P-10001",
        "/PRODUCT/P-10001",
    ] {
        let response = send(&api, &url_event(path, "GET")).await;
        assert_error(&response, StatusCode::NOT_FOUND, "not_found");
        // (nothing was looked up)
        assert!(response.headers().get("x-cache").is_none(), "{path}");
    }
}

#[tokio::test]
async fn invalid_ids_get_400_json() {
    // GIVEN ids the contract refuses: control characters, over 256 bytes, a slash
    let api = api();
    let long = "x".repeat(257);
    for id in [
        "a\u{0}b",
        "a\r\nb",
        "\u{7f}",
        "x\u{85}",
        long.as_str(),
        "a/b",
    ] {
        // WHEN each is requested as a path parameter THEN a 400 JSON error
        assert_error(
            &send(&api, &rest_event(id, "GET")).await,
            StatusCode::BAD_REQUEST,
            "invalid_id",
        );
    }
    // AND the same for raw paths: empty, control characters, bad percent-encoding, %2F
    for raw in [
        "/product/",
        "/product/%00",
        "/product/a%0D%0Ab",
        "/product/%zz",
        "/product/%",
        "/product/%FF",
        "/product/a%2Fb",
    ] {
        assert_error(
            &send(&api, &url_event(raw, "GET")).await,
            StatusCode::BAD_REQUEST,
            "invalid_id",
        );
    }
    // 256 bytes is fine (and simply not found).
    assert_error(
        &send(&api, &rest_event(&"x".repeat(256), "GET")).await,
        StatusCode::NOT_FOUND,
        "not_found",
    );
}

#[tokio::test]
async fn the_query_string_is_never_part_of_the_id() {
    // GIVEN a request whose query string names another product
    let api = api();
    let mut event = url_event("/product/P-10007", "GET");
    event["rawQueryString"] = "id=P-10008&x=%2F".into();
    // WHEN it is sent THEN the product of the path is served
    assert_eq!(json(&send(&api, &event).await)["productId"], "P-10007");
}

#[tokio::test]
async fn plain_local_requests_use_the_uri_path() {
    // GIVEN plain HTTP requests, as the local server hands them over
    let api = api();
    let request = http::Request::get("/product/caf%C3%A9%20%E2%98%95%20grinder?x=1")
        .body(())
        .unwrap();
    // WHEN the path holds an encoded id THEN it is decoded and served, query aside
    let response = api.handle(&request).await;
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(json(&response)["productId"], "café ☕ grinder");
    // AND an unknown path is a 404 JSON error
    let request = http::Request::get("/nope").body(()).unwrap();
    assert_error(
        &api.handle(&request).await,
        StatusCode::NOT_FOUND,
        "not_found",
    );
}
