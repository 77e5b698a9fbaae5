//! The HTTP face of the service, shared by the Lambda and local runtimes: routing, id
//! validation, caching headers, and the one place that maps errors to status codes.
//!
//! Routing takes the id from API Gateway's path parameters when it has them (REST API
//! with a stage or a custom-domain base path: the stage never matters), and otherwise
//! matches `/product/{id}` on the stage-free raw path (HTTP API `$default` routes,
//! Function URLs, the local server).

use std::borrow::Cow;

use bytes::Bytes;
use http::header::{
    AGE, ALLOW, CACHE_CONTROL, CONTENT_LENGTH, CONTENT_TYPE, ETAG, IF_NONE_MATCH, RETRY_AFTER,
};
use http::{HeaderMap, HeaderName, HeaderValue, Method, Request, Response, StatusCode};
use lambda_http::RequestExt;
use lambda_http::request::RequestContext;
use thiserror::Error;
use tokio::time::Instant;
use tracing::error;

use crate::domain::ProductId;
use crate::error::{IdError, ServiceError, report};
use crate::ports::{Cache, ProductStore};
use crate::service::{CacheStatus, ProductService, Served};

/// The path parameter named in the API Gateway resource `/product/{productId}`.
pub const PATH_PARAMETER: &str = "productId";
const ROUTE_PREFIX: &str = "/product/";

pub const X_CACHE: HeaderName = HeaderName::from_static("x-cache");
pub const X_REQUEST_ID: HeaderName = HeaderName::from_static("x-request-id");
const JSON: HeaderValue = HeaderValue::from_static("application/json");
const NO_STORE: HeaderValue = HeaderValue::from_static("no-store");
const ALLOWED: HeaderValue = HeaderValue::from_static("GET, HEAD");
/// `Cache-Control` of a `STALE` answer: a downstream cache may keep it only briefly (and,
/// as its `Age` counts against `max-age`, usually not at all), so the fresh product is
/// served as soon as the table answers again.
const STALE_CACHE_CONTROL: HeaderValue =
    HeaderValue::from_static("public, max-age=5, must-revalidate");
/// Seconds a client should wait after a 503.
const RETRY_AFTER_SECONDS: HeaderValue = HeaderValue::from_static("1");

/// Why a request did not get a product.
#[derive(Debug, Error)]
pub enum ApiError {
    #[error("no route for this path")]
    UnknownPath,
    #[error("only GET and HEAD are allowed")]
    MethodNotAllowed,
    #[error("the request is malformed")]
    MalformedRequest,
    #[error(transparent)]
    InvalidId(#[from] IdError),
    #[error(transparent)]
    Service(#[from] ServiceError),
}

/// The API: a [`ProductService`] behind HTTP semantics.
pub struct Api<C, S> {
    service: ProductService<C, S>,
    cache_control: HeaderValue,
}

impl<C: Cache, S: ProductStore> Api<C, S> {
    /// `max_age` is the `Cache-Control` max-age of 200 responses, in seconds.
    pub fn new(service: ProductService<C, S>, max_age: u32) -> Self {
        let cache_control = HeaderValue::from_str(&format!("public, max-age={max_age}"))
            .unwrap_or(HeaderValue::from_static("no-cache"));
        Self {
            service,
            cache_control,
        }
    }

    pub fn service(&self) -> &ProductService<C, S> {
        &self.service
    }

    /// Answers one request. Never fails and never panics: every outcome is a response.
    pub async fn handle<B>(&self, request: &Request<B>) -> Response<Bytes> {
        let started = Instant::now();
        let request_id = request_id(request);
        let mut response = match self.answer(request, &request_id).await {
            Ok(response) => response,
            Err(err) => error_response(&err, &request_id),
        };
        if let Ok(value) = HeaderValue::from_str(&request_id) {
            response.headers_mut().insert(X_REQUEST_ID, value);
        }
        if request.method() == Method::HEAD {
            let length = response.body().len();
            response
                .headers_mut()
                .insert(CONTENT_LENGTH, HeaderValue::from(length));
            *response.body_mut() = Bytes::new();
        }
        self.service
            .meters()
            .latency
            .record(started.elapsed().as_secs_f64() * 1000.0);
        response
    }

    async fn answer<B>(
        &self,
        request: &Request<B>,
        request_id: &str,
    ) -> Result<Response<Bytes>, ApiError> {
        let raw_id = route(request)?;
        if !matches!(*request.method(), Method::GET | Method::HEAD) {
            return Err(ApiError::MethodNotAllowed);
        }
        let id = ProductId::parse(&raw_id)?;
        match self.service.read(&id).await {
            (Ok(product), cache) => {
                Ok(self.product_response(request.headers(), Served { product, cache }))
            }
            // A missing id is cached too: where its 404 came from, as for a product.
            (Err(err @ ServiceError::NotFound(_)), cache) => {
                let mut response = error_response(&err.into(), request_id);
                response
                    .headers_mut()
                    .insert(X_CACHE, HeaderValue::from_static(cache.as_str()));
                Ok(response)
            }
            (Err(err), _) => Err(err.into()),
        }
    }

    fn product_response(&self, request_headers: &HeaderMap, served: Served) -> Response<Bytes> {
        let body = served.product.into_body();
        let etag = etag(&body);
        let not_modified = if_none_match(request_headers, &etag);
        let mut response = Response::new(if not_modified { Bytes::new() } else { body });
        if not_modified {
            *response.status_mut() = StatusCode::NOT_MODIFIED;
        }
        let headers = response.headers_mut();
        if !not_modified {
            headers.insert(CONTENT_TYPE, JSON);
        }
        headers.insert(ETAG, etag);
        headers.insert(CACHE_CONTROL, self.cache_control.clone());
        headers.insert(X_CACHE, HeaderValue::from_static(served.cache.as_str()));
        if let CacheStatus::Stale { age_secs } = served.cache {
            headers.insert(AGE, HeaderValue::from(age_secs));
            headers.insert(CACHE_CONTROL, STALE_CACHE_CONTROL);
        }
        response
    }
}

/// The raw (decoded, not yet validated) product id this request addresses.
fn route<B>(request: &Request<B>) -> Result<Cow<'_, str>, ApiError> {
    // API Gateway has matched `/product/{productId}` and decoded the parameter.
    if let Some(id) = request
        .path_parameters_ref()
        .and_then(|params| params.first(PATH_PARAMETER))
    {
        return Ok(Cow::Borrowed(id));
    }
    let path = match request.raw_http_path() {
        "" => request.uri().path(),
        raw => raw,
    };
    let path = strip_stage(request, path);
    let segment = path
        .strip_prefix(ROUTE_PREFIX)
        .filter(|rest| !rest.contains('/'))
        .ok_or(ApiError::UnknownPath)?;
    Ok(percent_decode(segment)?)
}

/// Drops a leading `/{stage}` that API Gateway may have left in the raw path.
fn strip_stage<'a, B>(request: &Request<B>, path: &'a str) -> &'a str {
    let stage = match request.request_context_ref() {
        Some(RequestContext::ApiGatewayV1(context)) => context.stage.as_deref(),
        Some(RequestContext::ApiGatewayV2(context)) => context.stage.as_deref(),
        _ => None,
    };
    match stage {
        Some(stage) if stage != "$default" => path
            .strip_prefix('/')
            .and_then(|rest| rest.strip_prefix(stage))
            .filter(|rest| rest.starts_with('/'))
            .unwrap_or(path),
        _ => path,
    }
}

/// Strict percent-decoding: every `%` must start a two-digit hex escape, and the result
/// must be UTF-8.
fn percent_decode(segment: &str) -> Result<Cow<'_, str>, IdError> {
    let bytes = segment.as_bytes();
    let well_formed = bytes
        .iter()
        .enumerate()
        .filter(|(_, b)| **b == b'%')
        .all(|(i, _)| {
            bytes.get(i + 1).is_some_and(u8::is_ascii_hexdigit)
                && bytes.get(i + 2).is_some_and(u8::is_ascii_hexdigit)
        });
    if !well_formed {
        return Err(IdError::BadEncoding);
    }
    percent_encoding::percent_decode_str(segment)
        .decode_utf8()
        .map_err(|_| IdError::BadEncoding)
}

/// A strong validator: the xxh3 hash of the exact bytes served.
fn etag(body: &[u8]) -> HeaderValue {
    let tag = format!("\"{:016x}\"", xxhash_rust::xxh3::xxh3_64(body));
    HeaderValue::from_str(&tag).unwrap_or(HeaderValue::from_static("\"0\""))
}

/// RFC 9110 `If-None-Match`: `*` or a list of tags, compared weakly.
fn if_none_match(headers: &HeaderMap, etag: &HeaderValue) -> bool {
    let ours = etag.as_bytes();
    headers
        .get_all(IF_NONE_MATCH)
        .iter()
        .filter_map(|value| value.to_str().ok())
        .flat_map(|list| list.split(','))
        .any(|candidate| {
            let candidate = candidate.trim();
            candidate == "*" || candidate.strip_prefix("W/").unwrap_or(candidate).as_bytes() == ours
        })
}

/// API Gateway's request id when there is one, so logs match its access logs; else
/// the Lambda request id; else a fresh one (local mode).
fn request_id<B>(request: &Request<B>) -> String {
    let from_gateway = match request.request_context_ref() {
        Some(RequestContext::ApiGatewayV1(context)) => context.request_id.clone(),
        Some(RequestContext::ApiGatewayV2(context)) => context.request_id.clone(),
        _ => None,
    };
    // An empty id is no id: each source is judged on its own.
    from_gateway
        .filter(|id| !id.is_empty())
        .or_else(|| {
            request
                .lambda_context_ref()
                .map(|context| context.request_id.clone())
                .filter(|id| !id.is_empty())
        })
        .unwrap_or_else(|| uuid::Uuid::new_v4().to_string())
}

/// The answer to an event that cannot even be read as an HTTP request.
pub fn malformed_request_response(request_id: &str) -> Response<Bytes> {
    let mut response = error_response(&ApiError::MalformedRequest, request_id);
    if let Ok(value) = HeaderValue::from_str(request_id) {
        response.headers_mut().insert(X_REQUEST_ID, value);
    }
    response
}

/// The one map from errors to statuses. 5xx causes are logged here.
fn error_response(err: &ApiError, request_id: &str) -> Response<Bytes> {
    let (status, code) = match err {
        ApiError::UnknownPath => (StatusCode::NOT_FOUND, "not_found"),
        ApiError::MethodNotAllowed => (StatusCode::METHOD_NOT_ALLOWED, "method_not_allowed"),
        ApiError::InvalidId(_) => (StatusCode::BAD_REQUEST, "invalid_id"),
        ApiError::MalformedRequest => (StatusCode::BAD_REQUEST, "bad_request"),
        ApiError::Service(ServiceError::NotFound(_)) => (StatusCode::NOT_FOUND, "not_found"),
        ApiError::Service(ServiceError::Store(_)) => {
            error!(request_id, error = %report(err), "product store failed");
            (StatusCode::SERVICE_UNAVAILABLE, "unavailable")
        }
    };
    let message = match err {
        ApiError::Service(ServiceError::Store(_)) => {
            "the product store is unavailable; retry shortly".to_owned()
        }
        other => other.to_string(),
    };
    let body = serde_json::json!({ "error": code, "message": message, "requestId": request_id });
    let mut response = Response::new(Bytes::from(body.to_string()));
    *response.status_mut() = status;
    let headers = response.headers_mut();
    headers.insert(CONTENT_TYPE, JSON);
    headers.insert(CACHE_CONTROL, NO_STORE);
    if status == StatusCode::METHOD_NOT_ALLOWED {
        headers.insert(ALLOW, ALLOWED);
    }
    if status == StatusCode::SERVICE_UNAVAILABLE {
        headers.insert(RETRY_AFTER, RETRY_AFTER_SECONDS);
    }
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percent_decoding_is_strict() {
        assert_eq!(percent_decode("a%20b").unwrap(), "a b");
        assert_eq!(percent_decode("%F0%9F%A6%80").unwrap(), "🦀");
        assert_eq!(percent_decode("100%25").unwrap(), "100%");
        for bad in ["%", "%2", "%zz", "a%g1", "%FF", "%C3%28"] {
            assert_eq!(percent_decode(bad), Err(IdError::BadEncoding), "{bad}");
        }
    }

    #[test]
    fn if_none_match_follows_rfc_9110() {
        let etag = HeaderValue::from_static("\"abc\"");
        let check = |value: &'static str| {
            let mut headers = HeaderMap::new();
            headers.insert(IF_NONE_MATCH, HeaderValue::from_static(value));
            if_none_match(&headers, &etag)
        };
        assert!(check("\"abc\""));
        assert!(check("W/\"abc\""));
        assert!(check("\"x\", \"abc\""));
        assert!(check("*"));
        assert!(!check("\"abcd\""));
        assert!(!check("abc"));
        assert!(!if_none_match(&HeaderMap::new(), &etag));
    }

    #[test]
    fn the_request_id_is_api_gateways_else_lambdas_else_a_fresh_one() {
        use lambda_http::aws_lambda_events::apigw::ApiGatewayProxyRequestContext;
        let request = |gateway: Option<&str>, lambda: &str| {
            let mut context = ApiGatewayProxyRequestContext::default();
            context.request_id = gateway.map(str::to_owned);
            let mut lambda_context = lambda_http::Context::default();
            lambda_context.request_id = lambda.to_owned();
            Request::new(())
                .with_request_context(RequestContext::ApiGatewayV1(context))
                .with_lambda_context(lambda_context)
        };
        assert_eq!(request_id(&request(Some("gw"), "lambda")), "gw");
        assert_eq!(request_id(&request(None, "lambda")), "lambda");
        // An empty id from API Gateway is no id: the Lambda one stands in for it.
        assert_eq!(request_id(&request(Some(""), "lambda")), "lambda");
        let fresh = request_id(&request(Some(""), ""));
        assert!(uuid::Uuid::parse_str(&fresh).is_ok(), "{fresh}");
    }
}
