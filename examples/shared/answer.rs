//! What the Lambda-mode floors answer: the cached bytes as product-api answers a hit.

use lambda_http::{Body, Error, Response};

/// A 200 with `bytes` as a JSON body, as text: a binary body would go back
/// base64-encoded.
pub fn cached_bytes(bytes: Vec<u8>) -> Result<Response<Body>, Error> {
    Response::builder()
        .status(200)
        .header("content-type", "application/json")
        .body(Body::from(String::from_utf8(bytes)?))
        .map_err(Error::from)
}
