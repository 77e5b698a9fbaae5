//! Integration tests against real services: `redis-server` and `memcached` instances started per test on
//! free ports, and the DynamoDB emulator that `make test` starts and names in
//! `AWS_ENDPOINT_URL_DYNAMODB`. Nothing here is skipped: a missing service fails the
//! test with a message saying how to provide it.

mod catalog_cli;
mod engines;
mod healing;
mod helpers;
mod iam;
mod invalidator;
mod lambda_runtime;
mod local_limits;
mod local_server;
mod openapi;
mod read_path;
mod reliability;
mod secrets;
mod smoke;
mod stale;
mod tls_cluster;

#[path = "../support/runtime_api.rs"]
mod runtime_api;
