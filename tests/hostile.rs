//! Hostile input, through the Lambda path (event JSON -> `runtime::Event` -> the reply) and
//! through plain HTTP requests: never a panic, never a 5xx, never a key outside
//! `product:`. Includes a bounded, seeded fuzz loop and property tests.

use std::time::Duration;

use lambda_http::{Context, LambdaEvent};
use product_catalog::adapters::MemoryStore;
use product_catalog::domain::ProductId;
use product_catalog::http::Api;
use product_catalog::runtime::{Event, Invocation};
use product_catalog::service::ProductService;
use product_catalog::testing::TestCache;
use proptest::prelude::*;
use serde_json::{Value, json};

/// The API over a cache that records every key it is asked about.
type TestApi = Api<TestCache, MemoryStore>;

fn api() -> TestApi {
    Api::new(
        ProductService::new(
            TestCache::default(),
            MemoryStore::sample().unwrap(),
            Duration::from_secs(300),
        ),
        60,
    )
}

fn fixture(name: &str) -> Value {
    let path = format!("{}/tests/fixtures/{name}.json", env!("CARGO_MANIFEST_DIR"));
    serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
}

/// Whether an event is read as a request (a REST one by product-api's own reader or by
/// lambda_http, the others by lambda_http), rather than refused as unreadable.
fn is_read_as_a_request(event: &Value) -> bool {
    !matches!(
        serde_json::from_str::<Event>(&event.to_string()).unwrap(),
        Event::Unreadable { .. }
    )
}

/// Whether a REST event on stage `prod` with this path should be read by product-api's
/// own reader: when the path is not empty and, with the stage in front, is a URI (else
/// lambda_http takes it).
fn rest_reader_takes(path: &str) -> bool {
    !path.is_empty() && http::Uri::try_from(format!("/prod{path}")).is_ok()
}

fn is_read_by_the_rest_reader(event: &Value) -> bool {
    matches!(
        serde_json::from_str::<Event>(&event.to_string()).unwrap(),
        Event::Rest(_)
    )
}

/// The reply to an event, read and answered as `product-api` reads and answers it.
async fn invoke(api: &TestApi, event: &Value) -> Value {
    let event = serde_json::from_str::<Event>(&event.to_string()).unwrap();
    let reply = Invocation::read(LambdaEvent::new(event, Context::default()))
        .answer(api)
        .await;
    serde_json::to_value(&reply).unwrap()
}

fn status(reply: &Value) -> u64 {
    reply["statusCode"].as_u64().unwrap()
}

fn assert_keys_stay_in_namespace(api: &TestApi) {
    for key in api.service().cache().keys() {
        assert!(key.starts_with("product:"), "key outside product: {key:?}");
        assert!(
            key.len() <= "product:".len() + 256,
            "key too long: {}",
            key.len()
        );
    }
}

#[tokio::test]
async fn events_that_make_lambda_http_panic_get_400() {
    // GIVEN events that lambda_http's own conversion panics on: bad Host headers, a
    // 100,000-character path
    let api = api();
    let long_path = format!("/product/{}", "a".repeat(100_000));
    let mut cases = Vec::new();
    for host in ["exa mple.com", "h:99999", "[::1", "x y:1"] {
        let mut event = fixture("function_url");
        event["headers"]["host"] = host.into();
        cases.push((format!("Function URL host {host:?}"), event));
    }
    let mut event = fixture("function_url");
    event["rawPath"] = long_path.clone().into();
    cases.push(("Function URL long path".to_owned(), event));
    let mut event = fixture("apigw_rest_stage");
    event["path"] = long_path.into();
    event["pathParameters"] = Value::Null;
    cases.push(("REST long path".to_owned(), event));

    for (case, event) in cases {
        // WHEN each goes through the Lambda path
        let reply = invoke(&api, &event).await;
        // THEN each is answered 400 with the JSON error, not a panic or a 5xx
        assert_eq!(status(&reply), 400, "{case}");
        let body: Value = serde_json::from_str(reply["body"].as_str().unwrap()).unwrap();
        assert_eq!(body["error"], "bad_request", "{case}");
    }
    assert_keys_stay_in_namespace(&api);
}

#[tokio::test]
async fn a_host_with_a_slash_does_not_change_the_route() {
    // GIVEN events whose Host holds a path separator (lambda_http does not panic on it)
    let api = api();
    let mut rest = fixture("apigw_rest_stage");
    rest["headers"]["Host"] = "a/b".into();
    rest["multiValueHeaders"]["Host"] = json!(["a/b"]);
    let mut url = fixture("function_url");
    url["headers"]["host"] = "a/b".into();
    for event in [rest, url] {
        // WHEN each goes through the Lambda path THEN the product is served as usual
        let reply = invoke(&api, &event).await;
        assert_eq!(status(&reply), 200, "{reply}");
    }
}

#[tokio::test]
async fn a_rest_event_is_served_whatever_url_its_host_would_make() {
    // GIVEN REST events with a Host or an X-Forwarded-Proto no URL can hold, on which
    // lambda_http's conversion panics (API Gateway sends neither): the REST reader does
    // not build that URL, since no route reads it
    let api = api();
    let mut cases = Vec::new();
    for host in ["exa mple.com", "h:99999", "[::1", "x y:1"] {
        let mut event = fixture("apigw_rest_stage");
        event["headers"]["Host"] = host.into();
        event["multiValueHeaders"]["Host"] = json!([host]);
        cases.push((format!("Host {host:?}"), event));
    }
    let mut event = fixture("apigw_rest_stage");
    event["headers"]["X-Forwarded-Proto"] = "ht tp".into();
    event["multiValueHeaders"]["X-Forwarded-Proto"] = json!(["ht tp"]);
    cases.push(("X-Forwarded-Proto".to_owned(), event));
    for (case, event) in cases {
        // WHEN each goes through the Lambda path THEN the product is served as usual
        let reply = invoke(&api, &event).await;
        assert_eq!(status(&reply), 200, "{case}: {reply}");
    }
    assert_keys_stay_in_namespace(&api);
}

#[tokio::test]
async fn hostile_ids_through_every_event_shape() {
    // GIVEN hostile ids, each with the status the contract gives it: 400 for what the
    // id rules refuse, 404 for the rest (none of them is in the catalog)
    let api = api();
    let ids = [
        ("a".repeat(10_000), 400),
        ("\r\nSET product:x 1\r\n".to_owned(), 400),
        ("../../etc/passwd".to_owned(), 400),
        ("*".to_owned(), 404),
        ("product:P-10001".to_owned(), 404),
        ("{\"productId\":1}".to_owned(), 404),
        ("\u{202e}\u{feff}🦀".to_owned(), 404),
        ("%00".to_owned(), 404),
        (" ".to_owned(), 404),
    ];
    for (id, expected) in &ids {
        let mut rest = fixture("apigw_rest_stage");
        rest["pathParameters"]["productId"] = id.clone().into();
        let encoded = percent_encoding::utf8_percent_encode(id, percent_encoding::NON_ALPHANUMERIC)
            .to_string();
        let mut url = fixture("function_url");
        url["rawPath"] = format!("/product/{encoded}").into();
        for event in [rest, url] {
            // WHEN it arrives as a REST path parameter or an encoded Function URL path
            let code = status(&invoke(&api, &event).await);
            // THEN it gets its status, and never reaches a key outside product:
            assert_eq!(code, *expected, "{id:?}");
        }
    }
    assert_keys_stay_in_namespace(&api);
}

/// Random methods and paths from a fixed seed: bounded, repeatable.
#[tokio::test]
async fn seeded_fuzz_of_methods_and_paths() {
    let api = api();
    let mut rng = fastrand::Rng::with_seed(0x5EED_2026);
    let methods = [
        "GET", "HEAD", "POST", "PUT", "DELETE", "PATCH", "OPTIONS", "TRACE", "CONNECT", "get",
        "BREW",
    ];
    let alphabet: Vec<char> =
        "abcXYZ019/%.*+-_ ~?#&=:;@!$'()[]{}|\\^`\"<>\u{0}\u{7f}\u{85}é東🦀\r\n\t"
            .chars()
            .collect();
    const ROUNDS: usize = 3_000;
    // GIVEN random methods and paths from a fixed seed
    let mut plain = 0;
    for round in 0..ROUNDS {
        let len = rng.usize(0..40);
        let tail: String = (0..len)
            .map(|_| alphabet[rng.usize(..alphabet.len())])
            .collect();
        let path = match rng.u8(0..4) {
            0 => tail.clone(),
            1 => format!("/{tail}"),
            _ => format!("/product/{tail}"),
        };
        let method = methods[rng.usize(..methods.len())];
        let event = match round % 3 {
            0 => {
                let mut event = fixture("function_url");
                event["rawPath"] = path.clone().into();
                event["requestContext"]["http"]["method"] = method.into();
                event
            }
            1 => {
                let mut event = fixture("apigw_http_v2_default_route_stage");
                event["rawPath"] = path.clone().into();
                event["requestContext"]["http"]["method"] = method.into();
                event
            }
            _ => {
                let mut event = fixture("apigw_rest_edge");
                event["path"] = path.clone().into();
                event["pathParameters"] = Value::Null;
                event["httpMethod"] = method.into();
                event["requestContext"]["httpMethod"] = method.into();
                event
            }
        };
        // WHEN it goes through the Lambda path (every such event is read as a request,
        // a REST one by the REST reader when its path is a URI)
        assert!(is_read_as_a_request(&event), "{method} {path:?}");
        if round % 3 == 2 {
            let expected = rest_reader_takes(&path);
            assert_eq!(is_read_by_the_rest_reader(&event), expected, "{path:?}");
        }
        let code = status(&invoke(&api, &event).await);
        // THEN it gets a 200 or a 4xx
        assert!((200..500).contains(&code), "{code} for {method} {path:?}");
        // AND the same through a plain request, when it is a valid one
        if let Ok(request) = http::Request::builder().method(method).uri(&path).body(()) {
            let code = api.handle(&request).await.status().as_u16();
            assert!((200..500).contains(&code), "{code} for {method} {path:?}");
            plain += 1;
        }
    }
    // AND the plain-request half really ran: with this seed 494 of the paths are valid
    // URIs (most random paths hold characters a URI cannot)
    println!("{ROUNDS} Lambda events, {plain} plain requests");
    assert!(
        plain >= 400,
        "only {plain} of {ROUNDS} paths made plain requests"
    );
    assert_keys_stay_in_namespace(&api);
}

/// What a proptest's cases share: a runtime to answer on, the API, the event template.
type Shared = (tokio::runtime::Runtime, TestApi, Value);

fn shared(fixture_name: &str) -> Shared {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    (runtime, api(), fixture(fixture_name))
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 2_000, ..ProptestConfig::default() })]

    #[test]
    fn id_parsing_accepts_exactly_the_contract(raw in "\\PC{0,80}|.{0,300}") {
        // GIVEN any string WHEN parsed as an id THEN accepted exactly when the contract says
        match ProductId::parse(&raw) {
            Ok(id) => {
                prop_assert!(!raw.is_empty() && raw.len() <= 256);
                prop_assert!(!raw.chars().any(char::is_control) && !raw.contains('/'));
                prop_assert_eq!(id.cache_key(), format!("product:{raw}"));
            }
            Err(_) => prop_assert!(raw.is_empty() || raw.len() > 256 || raw.chars().any(char::is_control) || raw.contains('/')),
        }
    }

    #[test]
    fn any_event_path_gets_a_4xx_or_200(path in "(/product/)?[ -~\u{80}-\u{10ffff}]{0,64}", method in "[A-Z]{1,8}") {
        static SHARED: std::sync::LazyLock<Shared> =
            std::sync::LazyLock::new(|| shared("function_url"));
        // GIVEN any path and method in a Function URL event
        let (runtime, api, template) = &*SHARED;
        let mut event = template.clone();
        event["rawPath"] = path.clone().into();
        event["requestContext"]["http"]["method"] = method.into();
        // WHEN it goes through the Lambda path (it is always read as a request)
        prop_assert!(is_read_as_a_request(&event), "{:?}", path);
        // THEN a 200 or a 4xx
        let code = status(&runtime.block_on(invoke(api, &event)));
        prop_assert!((200..500).contains(&code), "{} for {:?}", code, path);
    }

    #[test]
    fn any_rest_event_path_or_id_gets_a_4xx_or_200(path in "(/product/)?[ -~\u{80}-\u{10ffff}]{0,64}", id in proptest::option::of("[ -~\u{80}-\u{10ffff}]{0,64}"), method in "[A-Z]{1,8}") {
        static SHARED: std::sync::LazyLock<Shared> =
            std::sync::LazyLock::new(|| shared("apigw_rest_edge"));
        // GIVEN any path, path parameter and method in a REST event (the deployed shape)
        let (runtime, api, template) = &*SHARED;
        let mut event = template.clone();
        event["path"] = path.clone().into();
        event["pathParameters"] = id.map_or(Value::Null, |id| json!({ "productId": id }));
        event["httpMethod"] = method.clone().into();
        event["requestContext"]["httpMethod"] = method.into();
        // WHEN it goes through the Lambda path (it is always read as a request)
        prop_assert!(is_read_as_a_request(&event), "{:?}", path);
        prop_assert_eq!(is_read_by_the_rest_reader(&event), rest_reader_takes(&path), "{:?}", path);
        // THEN a 200 or a 4xx
        let code = status(&runtime.block_on(invoke(api, &event)));
        prop_assert!((200..500).contains(&code), "{} for {:?}", code, path);
    }
}
