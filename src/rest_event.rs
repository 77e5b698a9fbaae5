//! API Gateway REST (v1) proxy events, read straight into the request the API answers.
//!
//! `lambda_http` reads such an event whole into `aws_lambda_events`' types: every field
//! into an owned string, both header maps through an untagged reader that makes a
//! `serde_json` error for each multi-value header (it tries a string before a list), and
//! then a URL, a query map and five extensions built from them. That was the largest
//! piece of a warm hit's CPU after the round trips. This reads what the API reads (the
//! method, the path, the headers, the path parameters, the stage, the request id and the
//! body), borrowing the event's text where it can, and skips the rest unparsed.
//!
//! An event whose read fields this does not read as `lambda_http` would (an invalid
//! header, a method or a path parameter `lambda_http` refuses, a base64 body, no path, a
//! map past `HeaderMap`'s size) is left to `lambda_http` ([`read`] gives `None`), whose
//! reading, or refusal, stands. What this does not read, it does not check, and that
//! makes the differences, all on events API Gateway does not send:
//! - a field no route reads that `lambda_http`'s types refuse (a number for `resource`
//!   or a query parameter, a duplicate key, a lone surrogate escape, an `identity` that
//!   is not an object) made the event unreadable, answered 400; it is now served;
//! - `lambda_http` builds a URL from the `Host` header (or the domain name), the
//!   `X-Forwarded-Proto` header, the stage, the path and the query, and panics on one no
//!   URL can hold or one over 64 KiB once encoded (answered 400, see
//!   [`crate::runtime::run_lambda`]); this builds no URL, so such an event is served.

use std::borrow::Cow;
use std::collections::HashMap;
use std::fmt;

use http::{HeaderMap, HeaderName, HeaderValue, Method, Uri};
use lambda_http::aws_lambda_events::apigw::ApiGatewayProxyRequestContext;
use lambda_http::aws_lambda_events::query_map::QueryMap;
use lambda_http::request::RequestContext;
use lambda_http::{Body, RequestExt};
use serde::Deserialize;
use serde::de::{Deserializer, MapAccess, SeqAccess, Visitor};

/// The request a REST API proxy event carries, or `None` when it is not one this reads
/// as `lambda_http` does (see the module's documentation for what differs).
///
/// The request has the method, the headers (the multi-value ones, each replaced by its
/// single-value entry where both are given, as `lambda_http` merges them), the body, and
/// the extensions [`RequestExt`] reads the raw path, the path parameters and the request
/// context from; the context holds the method, the stage and the request id. Its URI is
/// the path as given, with the stage in front where `lambda_http` puts it;
/// `lambda_http`'s also holds the host and the query, resolves dot segments and
/// percent-encodes what a URL must. No route reads the URI here: routing reads the raw
/// path, never empty on this path. Query strings and stage variables are not read.
#[must_use]
pub fn read(json: &str) -> Option<lambda_http::Request> {
    serde_json::from_str::<RestEvent<'_>>(json)
        .ok()?
        .into_request()
}

/// The fields of a REST proxy event the API uses, typed as `ApiGatewayProxyRequest`
/// types them: an event it refuses for one of these fields is refused here too, and so
/// left to it.
#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct RestEvent<'a> {
    #[serde(borrow)]
    http_method: Text<'a>,
    #[serde(borrow, default)]
    path: Option<Text<'a>>,
    #[serde(borrow, default)]
    headers: Option<SingleValueHeaders<'a>>,
    #[serde(default)]
    multi_value_headers: Option<MultiValueHeaders>,
    #[serde(borrow, default)]
    path_parameters: Option<HashMap<Text<'a>, Text<'a>>>,
    #[serde(borrow)]
    request_context: Context<'a>,
    #[serde(borrow, default)]
    body: Option<Text<'a>>,
    #[serde(default)]
    is_base64_encoded: Option<bool>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Context<'a> {
    /// Required, as `lambda_http` requires it: what tells a REST event from an ALB's.
    #[serde(borrow)]
    http_method: Text<'a>,
    #[serde(borrow, default)]
    stage: Option<Text<'a>>,
    #[serde(borrow, default)]
    request_id: Option<Text<'a>>,
}

impl RestEvent<'_> {
    fn into_request(self) -> Option<lambda_http::Request> {
        let method = Method::from_bytes(self.http_method.0.as_bytes()).ok()?;
        let context_method =
            Method::from_bytes(self.request_context.http_method.0.as_bytes()).ok()?;
        // An absent path is answered from the URI `lambda_http` builds, and a base64 body
        // decoded by a call that panics on bad input: both rare, both left to it.
        let path = self.path.filter(|path| !path.0.is_empty())?.0;
        if self.is_base64_encoded == Some(true) && self.body.is_some() {
            return None;
        }
        let stage = self.request_context.stage.map(|stage| stage.0.into_owned());
        let uri = Uri::try_from(path_with_stage(stage.as_deref(), &path).as_ref()).ok()?;
        let mut headers = self.multi_value_headers.map(|m| m.0).unwrap_or_default();
        for (name, value) in self.headers.map(|h| h.0).unwrap_or_default() {
            // API Gateway gives every header in both maps: most are already there, alone.
            let mut present = headers.get_all(name.0.as_ref()).iter();
            if present
                .next()
                .is_some_and(|v| v.as_bytes() == value.0.as_bytes())
                && present.next().is_none()
            {
                continue;
            }
            let name = HeaderName::from_bytes(name.0.as_bytes()).ok()?;
            let value = HeaderValue::from_str(&value.0).ok()?;
            // A map past `HeaderMap`'s size limit is left to lambda_http, whose reading
            // or conversion panics on it (both caught).
            headers.try_insert(name, value).ok()?;
        }

        let mut context = ApiGatewayProxyRequestContext::default();
        context.http_method = context_method;
        context.stage = stage;
        context.request_id = self.request_context.request_id.map(|id| id.0.into_owned());
        let parameters: HashMap<String, String> = self
            .path_parameters
            .unwrap_or_default()
            .into_iter()
            .map(|(name, value)| (name.0.into_owned(), value.0.into_owned()))
            .collect();
        let body = self
            .body
            .map_or(Body::Empty, |body| Body::from(body.0.into_owned()));

        let mut request = http::Request::new(body);
        *request.method_mut() = method;
        *request.uri_mut() = uri;
        *request.headers_mut() = headers;
        Some(
            request
                .with_raw_http_path(path.into_owned())
                .with_path_parameters(QueryMap::from(parameters))
                .with_request_context(RequestContext::ApiGatewayV1(context)),
        )
    }
}

/// The path `lambda_http` puts in a REST request's URI: the stage in front, unless the
/// path already starts with it, the stage is `$default`, or
/// `AWS_LAMBDA_HTTP_IGNORE_STAGE_IN_PATH` is set.
fn path_with_stage<'p>(stage: Option<&str>, path: &'p str) -> Cow<'p, str> {
    match stage {
        Some(stage)
            if stage != "$default"
                && std::env::var("AWS_LAMBDA_HTTP_IGNORE_STAGE_IN_PATH").is_err()
                && !path
                    .strip_prefix('/')
                    .and_then(|rest| rest.strip_prefix(stage))
                    .is_some_and(|rest| rest.starts_with('/')) =>
        {
            Cow::Owned(format!("/{stage}{path}"))
        }
        _ => Cow::Borrowed(path),
    }
}

/// A JSON string, borrowed from the event when it has no escapes.
#[derive(PartialEq, Eq, Hash)]
struct Text<'a>(Cow<'a, str>);

impl<'de: 'a, 'a> Deserialize<'de> for Text<'a> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct TextVisitor;
        impl<'de> Visitor<'de> for TextVisitor {
            type Value = Text<'de>;
            fn expecting(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
                formatter.write_str("a string")
            }
            fn visit_borrowed_str<E>(self, text: &'de str) -> Result<Self::Value, E> {
                Ok(Text(Cow::Borrowed(text)))
            }
            fn visit_str<E>(self, text: &str) -> Result<Self::Value, E> {
                Ok(Text(Cow::Owned(text.to_owned())))
            }
            fn visit_string<E>(self, text: String) -> Result<Self::Value, E> {
                Ok(Text(Cow::Owned(text)))
            }
        }
        deserializer.deserialize_str(TextVisitor)
    }
}

/// `headers`: one string per name, kept as text until both maps are read, since they
/// are merged in a fixed order whatever order the event gives them in.
struct SingleValueHeaders<'a>(Vec<(Text<'a>, Text<'a>)>);

impl<'de: 'a, 'a> Deserialize<'de> for SingleValueHeaders<'a> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct PairsVisitor;
        impl<'de> Visitor<'de> for PairsVisitor {
            type Value = SingleValueHeaders<'de>;
            fn expecting(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
                formatter.write_str("a map of header names to strings")
            }
            fn visit_map<M: MapAccess<'de>>(self, mut map: M) -> Result<Self::Value, M::Error> {
                let mut pairs = Vec::with_capacity(map.size_hint().unwrap_or(16));
                while let Some(pair) = map.next_entry::<Text<'de>, Text<'de>>()? {
                    pairs.push(pair);
                }
                Ok(SingleValueHeaders(pairs))
            }
        }
        deserializer.deserialize_map(PairsVisitor)
    }
}

/// `multiValueHeaders`: a list of strings per name, every one of them a valid header.
struct MultiValueHeaders(HeaderMap);

impl<'de> Deserialize<'de> for MultiValueHeaders {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct MapVisitor;
        impl<'de> Visitor<'de> for MapVisitor {
            type Value = MultiValueHeaders;
            fn expecting(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
                formatter.write_str("a map of header names to lists of strings")
            }
            fn visit_map<M: MapAccess<'de>>(self, mut map: M) -> Result<Self::Value, M::Error> {
                use serde::de::Error as _;
                let mut headers = HeaderMap::with_capacity(map.size_hint().unwrap_or(16));
                while let Some(name) = map.next_key::<Text<'de>>()? {
                    let name =
                        HeaderName::from_bytes(name.0.as_bytes()).map_err(M::Error::custom)?;
                    map.next_value_seed(ValuesSeed {
                        name: &name,
                        headers: &mut headers,
                    })?;
                }
                Ok(MultiValueHeaders(headers))
            }
        }
        deserializer.deserialize_map(MapVisitor)
    }
}

/// Appends one header's list of values to the map, as they are read.
struct ValuesSeed<'h> {
    name: &'h HeaderName,
    headers: &'h mut HeaderMap,
}

impl<'de> serde::de::DeserializeSeed<'de> for ValuesSeed<'_> {
    type Value = ();
    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<(), D::Error> {
        deserializer.deserialize_seq(self)
    }
}

impl<'de> Visitor<'de> for ValuesSeed<'_> {
    type Value = ();
    fn expecting(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        formatter.write_str("a list of header values")
    }
    fn visit_seq<S: SeqAccess<'de>>(self, mut values: S) -> Result<(), S::Error> {
        use serde::de::Error as _;
        while let Some(value) = values.next_element::<Text<'de>>()? {
            let value = HeaderValue::from_str(&value.0).map_err(S::Error::custom)?;
            self.headers
                .try_append(self.name, value)
                .map_err(S::Error::custom)?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use lambda_http::request::LambdaRequest;
    use serde_json::{Value, json};

    use super::*;

    fn fixture(name: &str) -> Value {
        let path = format!("{}/tests/fixtures/{name}.json", env!("CARGO_MANIFEST_DIR"));
        serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
    }

    /// The REST events of the fixtures, and odd but valid variants of them.
    fn rest_events() -> Vec<(String, Value)> {
        let mut events = Vec::new();
        for name in [
            "apigw_rest_stage",
            "apigw_rest_custom_domain",
            "apigw_rest_edge",
        ] {
            events.push((name.to_owned(), fixture(name)));
        }
        let base = fixture("apigw_rest_stage");
        let mut variant = |name: &str, change: &Change| {
            let mut event = base.clone();
            change(&mut event);
            events.push((name.to_owned(), event));
        };
        variant("a header given twice", &|e| {
            e["multiValueHeaders"]["If-None-Match"] = json!(["\"a\"", "W/\"b\""]);
            e["headers"]["If-None-Match"] = json!("W/\"b\"");
        });
        variant("a header given twice, the first in headers", &|e| {
            e["multiValueHeaders"]["If-None-Match"] = json!(["\"a\"", "\"b\""]);
            e["headers"]["If-None-Match"] = json!("\"a\"");
        });
        variant("a header only in multiValueHeaders", &|e| {
            e["multiValueHeaders"]["X-Only-Multi"] = json!(["1", "2"]);
        });
        variant("a header only in headers", &|e| {
            e["headers"]["X-Only-Single"] = json!("1");
        });
        variant("the two maps disagree", &|e| {
            e["multiValueHeaders"]["Accept"] = json!(["text/html", "*/*"]);
            e["headers"]["Accept"] = json!("application/json");
        });
        variant("a name in two cases", &|e| {
            e["headers"]["accept"] = json!("text/plain");
        });
        variant("no headers", &|e| {
            e["headers"] = Value::Null;
            e["multiValueHeaders"] = Value::Null;
        });
        variant("header maps absent", &|e| {
            e.as_object_mut().unwrap().remove("headers");
            e.as_object_mut().unwrap().remove("multiValueHeaders");
        });
        variant("the $default stage", &|e| {
            e["requestContext"]["stage"] = json!("$default");
        });
        variant("the stage already in the path", &|e| {
            e["path"] = json!("/prod/product/P-10001");
        });
        variant("no stage", &|e| {
            e["requestContext"].as_object_mut().unwrap().remove("stage");
        });
        variant("no request id", &|e| {
            e["requestContext"]["requestId"] = Value::Null;
        });
        variant("no path parameters", &|e| {
            e["pathParameters"] = Value::Null;
        });
        variant("an encoded id", &|e| {
            e["path"] = json!("/product/P%2D10001");
            e["pathParameters"] = Value::Null;
        });
        variant("escapes in strings", &|e| {
            e["pathParameters"]["productId"] = json!("P-1\u{e9}\"\\");
            e["headers"]["X-Escaped"] = json!("a\tb \u{7e}");
        });
        variant("a text body and another method", &|e| {
            e["httpMethod"] = json!("POST");
            e["requestContext"]["httpMethod"] = json!("POST");
            e["body"] = json!("{\"a\":1}");
            e["isBase64Encoded"] = Value::Null;
        });
        variant("an extension method", &|e| {
            e["httpMethod"] = json!("PURGE");
        });
        events
    }

    /// A change made to an event.
    type Change = dyn Fn(&mut Value);

    fn lambda_http_reads(event: &Value) -> lambda_http::Request {
        lambda_http_reads_text(&event.to_string())
    }

    fn lambda_http_reads_text(event: &str) -> lambda_http::Request {
        let read: LambdaRequest = serde_json::from_str(event).unwrap();
        assert!(matches!(read, LambdaRequest::ApiGatewayV1(_)));
        lambda_http::Request::from(read)
    }

    fn v1(request: &lambda_http::Request) -> &ApiGatewayProxyRequestContext {
        match request.request_context_ref() {
            Some(RequestContext::ApiGatewayV1(context)) => context,
            other => panic!("not a REST context: {other:?}"),
        }
    }

    #[test]
    fn rest_events_are_read_as_lambda_http_reads_them() {
        for (name, event) in rest_events() {
            // GIVEN a REST event WHEN it is read here and by lambda_http
            let ours = read(&event.to_string()).unwrap_or_else(|| panic!("{name}: not read"));
            let theirs = lambda_http_reads(&event);
            // THEN what the API reads of a request is the same in both
            assert_eq!(ours.method(), theirs.method(), "{name}");
            assert_eq!(ours.headers(), theirs.headers(), "{name}");
            assert_eq!(ours.raw_http_path(), theirs.raw_http_path(), "{name}");
            assert_eq!(ours.uri().path(), theirs.uri().path(), "{name}");
            assert_eq!(
                ours.path_parameters_ref(),
                theirs.path_parameters_ref(),
                "{name}"
            );
            let (context, expected) = (v1(&ours), v1(&theirs));
            assert_eq!(context.http_method, expected.http_method, "{name}");
            assert_eq!(context.stage, expected.stage, "{name}");
            assert_eq!(context.request_id, expected.request_id, "{name}");
            assert_eq!(ours.body().as_ref(), theirs.body().as_ref(), "{name}");
        }
    }

    #[test]
    fn the_header_maps_merge_alike_in_either_order() {
        // GIVEN events with the two maps in both orders, a header given differently in
        // each, and a name in two cases (`serde_json::Value` writes keys sorted, so the
        // text is put together by hand)
        let mut rest = fixture("apigw_rest_stage");
        let object = rest.as_object_mut().unwrap();
        object.remove("headers");
        object.remove("multiValueHeaders");
        let rest = rest.to_string();
        let multi = r#""multiValueHeaders":{"If-None-Match":["\"a\"","\"b\""],"accept":["x","y"]}"#;
        let single = r#""headers":{"accept":"z","If-None-Match":"\"b\"","Accept":"w"}"#;
        for (name, first, second) in [
            ("multi first", multi, single),
            ("single first", single, multi),
        ] {
            let event = format!("{{{first},{second},{}", &rest[1..]);
            // WHEN each is read here and by lambda_http THEN the headers are the same
            let ours = read(&event).unwrap_or_else(|| panic!("{name}: not read"));
            let theirs = lambda_http_reads_text(&event);
            assert_eq!(ours.headers(), theirs.headers(), "{name}");
            assert_eq!(ours.headers()["accept"], "w", "{name}");
        }
    }

    #[test]
    fn what_it_does_not_read_it_does_not_check() {
        // GIVEN events lambda_http refuses or panics on for what no route reads (the
        // differences the module's documentation gives; API Gateway sends none of them)
        let base = fixture("apigw_rest_stage");
        let cases: [(&str, &Change); 4] = [
            ("a number for resource", &|e| e["resource"] = json!(5)),
            ("an identity that is not an object", &|e| {
                e["requestContext"]["identity"] = json!(5);
            }),
            ("a Host no URL can hold", &|e| {
                e["headers"]["Host"] = json!("exa mple.com");
                e["multiValueHeaders"]["Host"] = json!(["exa mple.com"]);
            }),
            ("a query over 64 KiB", &|e| {
                e["queryStringParameters"]["ref"] = json!("r".repeat(70_000));
                e["multiValueQueryStringParameters"]["ref"] = json!(["r".repeat(70_000)]);
            }),
        ];
        for (name, change) in cases {
            let mut event = base.clone();
            change(&mut event);
            let event = event.to_string();
            // WHEN it is read THEN it is read as any other
            let request = read(&event).unwrap_or_else(|| panic!("{name}"));
            assert_eq!(request.raw_http_path(), "/product/P-10001", "{name}");
            // AND lambda_http refuses it, or panics on it
            let theirs = std::panic::catch_unwind(|| lambda_http::request::from_str(&event));
            assert!(!matches!(theirs, Ok(Ok(_))), "{name}: lambda_http reads it");
        }
    }

    #[test]
    fn header_maps_past_their_size_limit_are_left_to_lambda_http() {
        // GIVEN an event with more header names than one HeaderMap holds, half in each map
        let mut event = fixture("apigw_rest_stage");
        for i in 0..13_000 {
            event["multiValueHeaders"][format!("m{i}")] = json!(["1"]);
            event["headers"][format!("s{i}")] = json!("1");
        }
        // WHEN it is read THEN it is left to lambda_http, without a panic
        assert!(read(&event.to_string()).is_none());
        // AND one map alone past the limit too
        event["headers"] = json!({});
        for i in 13_000..26_000 {
            event["multiValueHeaders"][format!("m{i}")] = json!(["1"]);
        }
        assert!(read(&event.to_string()).is_none());
    }

    #[test]
    fn events_it_cannot_read_as_lambda_http_does_are_left_to_lambda_http() {
        let base = fixture("apigw_rest_stage");
        let cases: [(&str, &Change); 13] = [
            ("a header value with a control byte", &|e| {
                e["multiValueHeaders"]["Accept"] = json!(["a\u{1}b"]);
            }),
            ("a single header value with a control byte", &|e| {
                e["headers"]["X-Other"] = json!("a\u{1}b");
            }),
            ("a header name with a space", &|e| {
                e["headers"]["Bad Name"] = json!("1");
            }),
            ("a number for a header", &|e| {
                e["headers"]["Accept"] = json!(5)
            }),
            ("a list in headers", &|e| {
                e["headers"]["Accept"] = json!(["a"])
            }),
            ("a string in multiValueHeaders", &|e| {
                e["multiValueHeaders"]["Accept"] = json!("a");
            }),
            ("a method with a space", &|e| {
                e["httpMethod"] = json!("GE T")
            }),
            ("a numeric path parameter", &|e| {
                e["pathParameters"]["productId"] = json!(10001);
            }),
            ("no method in the context (an ALB event)", &|e| {
                e["requestContext"] = json!({ "elb": { "targetGroupArn": "arn" } });
            }),
            ("a base64 body", &|e| {
                e["body"] = json!("e30=");
                e["isBase64Encoded"] = json!(true);
            }),
            ("no path", &|e| e["path"] = Value::Null),
            ("a path no URI can hold", &|e| {
                e["path"] = json!("/product/a b")
            }),
            ("no requestContext", &|e| {
                e.as_object_mut().unwrap().remove("requestContext");
            }),
        ];
        for (name, change) in cases {
            // GIVEN an event this reader does not take
            let mut event = base.clone();
            change(&mut event);
            // WHEN it is read THEN it is left to lambda_http
            assert!(read(&event.to_string()).is_none(), "{name}");
        }
        // AND the other shapes are left to it too
        for name in ["apigw_http_v2", "function_url"] {
            assert!(read(&fixture(name).to_string()).is_none(), "{name}");
        }
    }

    #[tokio::test]
    async fn the_api_answers_both_readings_alike() {
        use std::time::Duration;

        use crate::adapters::{MemoryCache, MemoryStore};
        use crate::http::Api;
        use crate::service::ProductService;

        // GIVEN the API over the sample catalog, a fresh one for each answer
        let api = || {
            Api::new(
                ProductService::new(
                    MemoryCache::default(),
                    MemoryStore::sample().unwrap(),
                    Duration::from_secs(300),
                ),
                60,
            )
        };
        for (name, event) in rest_events() {
            // WHEN a REST event is answered from each reading
            // (with the same Lambda context, whose request id stands in for a missing one)
            let mut context = lambda_http::Context::default();
            context.request_id = "lambda-request-id".to_owned();
            let ours = read(&event.to_string()).unwrap();
            let ours = api()
                .handle(&ours.with_lambda_context(context.clone()))
                .await;
            let theirs = lambda_http_reads(&event).with_lambda_context(context);
            let theirs = api().handle(&theirs).await;
            // THEN the answers are the same
            assert_eq!(ours.status(), theirs.status(), "{name}");
            assert_eq!(ours.headers(), theirs.headers(), "{name}");
            assert_eq!(ours.body(), theirs.body(), "{name}");
        }
    }
}
