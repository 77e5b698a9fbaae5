//! Product-catalog read API: `GET /product/{productId}` served from Redis with DynamoDB
//! behind it (cache-aside), as an AWS Lambda or as a local HTTP server.
//!
//! Module map (ports and adapters):
//! - [`config`]: the one reader of the environment: a configuration per binary over
//!   shared parts.
//! - [`error`]: error enums per layer.
//! - [`domain`]: [`domain::ProductId`] (validated once, at the edge), [`domain::Product`]
//!   (the JSON bytes served) and the one function that builds a cache key.
//! - [`cache_entry`]: what a `product:<id>` key can hold (product, missing marker,
//!   lease) and its one encoding.
//! - [`item`]: DynamoDB item <-> JSON with numbers kept to their exact digits.
//! - [`ports`]: the [`ports::Cache`] and [`ports::ProductStore`] traits.
//! - [`adapters`]: Redis (fred), memcached (meta commands) and in-process caches; DynamoDB and in-memory stores;
//!   AWS SDK client set-up (`adapters::aws`).
//! - [`service`]: every cache-aside decision (hit, miss, fill, leases, negative caching,
//!   single-flight, degradation), with [`breaker`] guarding the cache.
//! - [`http`]: routing, headers and the one place that maps errors to status codes.
//! - [`invalidate`]: DynamoDB Stream records -> cache refreshes and removals.
//! - [`metrics`]: metric names and the EMF exporter set-up.
//! - [`runtime`]: how requests arrive: the Lambda runtime or a local HTTP server.
//! - [`app`]: wiring a binary's configuration into its running parts; the one
//!   `connect_redis`.
//! - [`logging`]: the log subscriber (JSON in Lambda, readable locally).
//! - [`operator`]: what the `catalog` CLI does.
//! - [`testing`]: test doubles shared by unit tests, `tests/` and benchmarks.
//! - [`tls`]: the roots every TLS client trusts (`TRUSTED_ROOTS`: the system's, or the
//!   Amazon Trust Services roots compiled in).

pub mod adapters;
pub mod app;
pub mod breaker;
pub mod cache_entry;
pub mod config;
pub mod domain;
pub mod error;
pub mod http;
pub mod invalidate;
pub mod item;
pub mod logging;
pub mod metrics;
pub mod operator;
pub mod ports;
pub mod rest_event;
pub mod runtime;
pub mod service;
pub mod testing;
pub mod tls;
