//! What a Redis round trip costs through `fred`, against a raw one, on a single-threaded
//! tokio runtime as product-api runs in Lambda mode, and how fred's options move it.
//! Every variant is measured in the same rounds, one after the other, so that noise
//! falls on all of them alike. `BENCH_ONLY=fred` runs this section alone.

use std::time::{Duration, Instant};

use bytes::Bytes;
use fred::prelude::{ClientLike as _, KeysInterface as _};
use fred::types::config::{Config as FredConfig, UnresponsiveConfig};
use fred::types::{Expiration, SetOptions};
use product_catalog::adapters::RedisCache;
use product_catalog::config::RedisUrl;
use product_catalog::ports::Cache as _;

use crate::{Latency, ROUNDS, Report, latency, median_of, ms};

/// Round trips per variant per round.
const CALLS: usize = 3_000;
const KEY: &str = "bench:fred-options";

/// One way of sending the command, as a fresh connection of its own.
enum Variant {
    /// A hand-written RESP exchange on a tokio `TcpStream`: the floor.
    Raw(tokio::net::TcpStream, Vec<u8>),
    /// A fred client; `set_nx_get` sends the hit path's command instead of a GET.
    Fred {
        client: fred::clients::Pool,
        set_nx_get: bool,
    },
    /// product-api's adapter, configured as product-api configures it.
    Adapter(RedisCache),
}

impl Variant {
    async fn call(&mut self) {
        match self {
            Self::Raw(stream, command) => crate::production::async_raw_get(stream, command).await,
            Self::Fred { client, set_nx_get } => {
                let value: Option<Bytes> = if *set_nx_get {
                    client
                        .set(
                            KEY,
                            "lease",
                            Some(Expiration::PX(4_000)),
                            Some(SetOptions::NX),
                            true,
                        )
                        .await
                        .unwrap()
                } else {
                    client.get(KEY).await.unwrap()
                };
                assert!(value.is_some());
            }
            Self::Adapter(cache) => {
                let value = cache
                    .read_or_lease(KEY, Bytes::from_static(b"lease"), Duration::from_secs(4))
                    .await
                    .unwrap();
                assert!(value.is_some());
            }
        }
    }
}

/// A fred pool of one connection with `configure` applied to its settings.
async fn fred_client(
    url: &str,
    configure: impl FnOnce(
        &mut fred::types::config::PerformanceConfig,
        &mut fred::types::config::ConnectionConfig,
    ),
) -> fred::clients::Pool {
    let (mut performance, mut connection) = (Default::default(), Default::default());
    configure(&mut performance, &mut connection);
    let pool = fred::types::Builder::from_config(FredConfig::from_url(url).unwrap())
        .set_performance_config(performance)
        .set_connection_config(connection)
        .build_pool(1)
        .unwrap();
    drop(pool.init().await.unwrap());
    pool
}

/// The variants, each with the name its row carries.
async fn variants(url: &str, port: u16) -> Vec<(&'static str, Variant)> {
    let raw = tokio::net::TcpStream::connect(("127.0.0.1", port))
        .await
        .unwrap();
    raw.set_nodelay(true).unwrap();
    let fred = |set_nx_get| move |client| Variant::Fred { client, set_nx_get };
    vec![
        (
            "raw GET (tokio TcpStream, by hand)",
            Variant::Raw(raw, crate::production::get_command(KEY)),
        ),
        (
            "fred GET, defaults",
            fred(false)(fred_client(url, |_, _| {}).await),
        ),
        (
            "fred GET, nodelay",
            fred(false)(
                fred_client(url, |_, connection| connection.tcp.nodelay = Some(true)).await,
            ),
        ),
        (
            "fred GET, nodelay + 250 ms command timeout",
            fred(false)(
                fred_client(url, |performance, connection| {
                    connection.tcp.nodelay = Some(true);
                    performance.default_command_timeout = Duration::from_millis(250);
                })
                .await,
            ),
        ),
        (
            "fred GET, nodelay + max_feed_count 1",
            fred(false)(
                fred_client(url, |performance, connection| {
                    connection.tcp.nodelay = Some(true);
                    performance.max_feed_count = 1;
                })
                .await,
            ),
        ),
        (
            "fred GET, nodelay + unresponsive check (2 s / 500 ms)",
            fred(false)(
                fred_client(url, |_, connection| {
                    connection.tcp.nodelay = Some(true);
                    connection.unresponsive = UnresponsiveConfig {
                        max_timeout: Some(Duration::from_secs(2)),
                        interval: Duration::from_millis(500),
                    };
                })
                .await,
            ),
        ),
        (
            "fred SET NX PX GET (the hit's command), nodelay",
            fred(true)(fred_client(url, |_, connection| connection.tcp.nodelay = Some(true)).await),
        ),
        ("product-api's adapter: read_or_lease", {
            let cache = RedisCache::connect(
                &RedisUrl::try_from(url.to_owned()).unwrap(),
                Duration::from_millis(250),
                1,
            )
            .unwrap();
            cache.wait_connected(Duration::from_secs(5)).await.unwrap();
            Variant::Adapter(cache)
        }),
    ]
}

/// Runs every variant `ROUNDS` times, interleaved, on one current-thread runtime.
fn measure(url: String, port: u16) -> Vec<(&'static str, Latency)> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(async {
        let mut variants = variants(&url, port).await;
        for (_, variant) in &mut variants {
            for _ in 0..200 {
                variant.call().await;
            }
        }
        let mut rounds: Vec<Vec<Latency>> = variants.iter().map(|_| Vec::new()).collect();
        for _ in 0..ROUNDS {
            for ((_, variant), rounds) in variants.iter_mut().zip(&mut rounds) {
                let mut samples = Vec::with_capacity(CALLS);
                for _ in 0..CALLS {
                    let started = Instant::now();
                    variant.call().await;
                    samples.push(started.elapsed());
                }
                rounds.push(latency(samples));
            }
        }
        variants
            .iter()
            .zip(rounds)
            .map(|((name, _), rounds)| (*name, median_of(&rounds)))
            .collect()
    })
}

pub async fn run(report: &mut Report, redis: &crate::helpers::RedisServer) {
    let client = redis.client().await;
    let _: () = client
        .set(KEY, "{\"id\":\"P-1\"}", None, None, false)
        .await
        .unwrap();
    let (url, port) = (redis.url(), redis.port);
    let figures = tokio::task::spawn_blocking(move || measure(url, port))
        .await
        .unwrap();
    let floor = figures[0].1;
    for (name, figure) in figures {
        report.row(
            &format!("one thread: {name}"),
            format!("p50 {} / p99 {}", ms(figure.p50), ms(figure.p99)),
            format!("raw GET p50 {}", ms(floor.p50)),
            format!(
                "{:.2}x (+{})",
                figure.p50.as_secs_f64() / floor.p50.as_secs_f64(),
                ms(figure.p50.saturating_sub(floor.p50))
            ),
        );
    }
}
