//! The third floor for Lambda-mode benchmarks: the raw GET function
//! (`examples/raw-get-lambda.rs`) with its hand-written `GET` replaced by product-api's
//! own Redis adapter (`adapters::redis::RedisCache`, fred as product-api configures it)
//! sending the hit's command, `SET key lease NX PX ttl GET`. Between the raw function
//! and this one is what fred and the hit's command cost a function; between this one
//! and product-api, what product-api does around the round trip (the service, the
//! ETag, the headers, the metrics). `REDIS_URL` and `BENCH_KEY` say where; the key must
//! hold a value, so that every command is a hit and leases nothing.

use std::time::Duration;

use bytes::Bytes;
use lambda_http::{Error, Request, run, service_fn};
use product_catalog::adapters::redis::RedisCache;
use product_catalog::config::{API_REDIS_TIMEOUT, RedisUrl};
use product_catalog::ports::Cache as _;

#[path = "shared/answer.rs"]
mod answer;

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), Error> {
    let url = RedisUrl::try_from(std::env::var("REDIS_URL")?)?;
    let key = &*std::env::var("BENCH_KEY")?.leak();
    // product-api's defaults in Lambda mode: its REDIS_TIMEOUT_MS, one connection.
    let cache = RedisCache::connect(&url, API_REDIS_TIMEOUT, 1)?;
    cache.wait_connected(Duration::from_secs(2)).await?;
    let cache = &*Box::leak(Box::new(cache));
    let lease = Bytes::from_static(b"lease:fred-get-lambda");
    run(service_fn(move |_request: Request| {
        let lease = lease.clone();
        async move {
            let value = cache
                .read_or_lease(key, lease, Duration::from_secs(4))
                .await?
                .ok_or("the key is not cached")?;
            answer::cached_bytes(value.to_vec())
        }
    }))
    .await
}
