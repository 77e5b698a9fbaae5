//! The floor for Lambda-mode benchmarks: a Rust function on the same runtime
//! (`lambda_http` over `lambda_runtime`, one thread as product-api uses in Lambda) that
//! does no I/O and answers `{}`.

use lambda_http::{Body, Error, Request, Response, run, service_fn};

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), Error> {
    run(service_fn(|_request: Request| async {
        Response::builder()
            .status(200)
            .header("content-type", "application/json")
            .body(Body::from("{}"))
            .map_err(Error::from)
    }))
    .await
}
