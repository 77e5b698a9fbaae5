//! The HTTP contract through `lambda_http`'s own event parsing: API Gateway REST (v1)
//! with a stage and a custom-domain base path, HTTP API (v2), Function URLs, and plain
//! local requests. In-process adapters; no services needed.

use std::sync::LazyLock;

use bytes::Bytes;
use http::{Response, StatusCode};
use product_catalog::adapters::{MemoryCache, MemoryStore};
use product_catalog::http::Api;
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

/// The sample catalog's served bytes, by id.
static CATALOG: LazyLock<Value> = LazyLock::new(|| {
    serde_json::from_str(product_catalog::adapters::memory_store::SAMPLE_CATALOG).unwrap()
});

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
    let request =
        lambda_http::request::from_str(&event.to_string()).expect("lambda_http parses the event");
    api.handle(&request).await
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
    let api = api();
    let event = fixture("apigw_rest_stage");

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

    let second = send(&api, &event).await;
    assert_eq!(header(&second, "x-cache"), "HIT");
    assert_eq!(second.body(), first.body());
    assert_eq!(header(&second, "etag"), etag);
}

#[tokio::test]
async fn every_event_shape_routes_to_its_product() {
    let api = api();
    let cases = [
        ("apigw_rest_custom_domain", "P-10002"),
        ("apigw_http_v2", "P-10003"),
        ("apigw_http_v2_default_route_stage", "P-10004"),
        ("function_url", "🦀-plush"),
    ];
    for (name, id) in cases {
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
    let api = api();
    for id in [
        "café ☕ grinder",
        "🦀-plush",
        "gift card",
        "A+B*C",
        "100%-cotton",
        "東京-mug",
    ] {
        let response = send(&api, &rest_event(id, "GET")).await;
        assert_eq!(response.status(), StatusCode::OK, "{id}");
        assert_eq!(json(&response)["productId"], id);
        let encoded = percent_encoding::utf8_percent_encode(id, percent_encoding::NON_ALPHANUMERIC)
            .to_string();
        let response = send(&api, &url_event(&format!("/product/{encoded}"), "GET")).await;
        assert_eq!(json(&response)["productId"], id, "function URL {encoded}");
    }
}

#[tokio::test]
async fn served_bodies_are_the_catalog_items_exactly() {
    let api = api();
    for expected in CATALOG.as_array().unwrap().iter().take(40) {
        let id = expected["productId"].as_str().unwrap();
        let response = send(&api, &rest_event(id, "GET")).await;
        // Same JSON value (key order aside) as the catalog file.
        assert_eq!(&json(&response), expected, "{id}");
    }
}

#[tokio::test]
async fn head_answers_like_get_without_a_body() {
    let api = api();
    let get = send(&api, &rest_event("P-10005", "GET")).await;
    let head = send(&api, &rest_event("P-10005", "HEAD")).await;
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
    let api = api();
    let first = send(&api, &rest_event("P-10006", "GET")).await;
    let etag = header(&first, "etag").to_owned();
    for value in [
        etag.clone(),
        format!("W/{etag}"),
        format!("\"other\", {etag}"),
        "*".to_owned(),
    ] {
        let mut event = rest_event("P-10006", "GET");
        event["headers"]["If-None-Match"] = value.clone().into();
        event["multiValueHeaders"]["If-None-Match"] = serde_json::json!([value.clone()]);
        let response = send(&api, &event).await;
        assert_eq!(response.status(), StatusCode::NOT_MODIFIED, "{value}");
        assert!(response.body().is_empty());
        assert_eq!(header(&response, "etag"), etag);
    }
    let mut event = rest_event("P-10006", "GET");
    event["multiValueHeaders"]["If-None-Match"] = serde_json::json!(["\"stale\""]);
    assert_eq!(send(&api, &event).await.status(), StatusCode::OK);
}

#[tokio::test]
async fn other_methods_get_405_with_allow() {
    let api = api();
    for method in ["POST", "PUT", "DELETE", "PATCH", "OPTIONS"] {
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
    let api = api();
    assert_error(
        &send(&api, &rest_event("no-such-product", "GET")).await,
        StatusCode::NOT_FOUND,
        "not_found",
    );
    for path in [
        "/",
        "/products",
        "/product",
        "/product/P-10001/extra",
        "/other/product/P-10001",
        "/PRODUCT/P-10001",
    ] {
        assert_error(
            &send(&api, &url_event(path, "GET")).await,
            StatusCode::NOT_FOUND,
            "not_found",
        );
    }
}

#[tokio::test]
async fn invalid_ids_get_400_json() {
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
        assert_error(
            &send(&api, &rest_event(id, "GET")).await,
            StatusCode::BAD_REQUEST,
            "invalid_id",
        );
    }
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
    let api = api();
    let mut event = url_event("/product/P-10007", "GET");
    event["rawQueryString"] = "id=P-10008&x=%2F".into();
    assert_eq!(json(&send(&api, &event).await)["productId"], "P-10007");
}

#[tokio::test]
async fn plain_local_requests_use_the_uri_path() {
    let api = api();
    let request = http::Request::get("/product/caf%C3%A9%20%E2%98%95%20grinder?x=1")
        .body(())
        .unwrap();
    let response = api.handle(&request).await;
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(json(&response)["productId"], "café ☕ grinder");
    let request = http::Request::get("/nope").body(()).unwrap();
    assert_error(
        &api.handle(&request).await,
        StatusCode::NOT_FOUND,
        "not_found",
    );
}
