//! Name resolution started with the process. A cold start's connections (Redis, the
//! secret read, DynamoDB) each used to resolve their host as they connected, after the
//! TLS roots, the SDK configuration and the signing: a lookup on each cold chain. Here
//! the hosts the configuration names are looked up as soon as it is read, beside that
//! work, and each answer goes to the first connection made for each time its host was
//! named (in AWS three names, one connection each; in emulators often one name for all).
//! Only to those: connections after them (a reconnect, a second pooled connection)
//! resolve afresh, so a name that moves (ElastiCache's primary endpoint after a
//! failover) is followed as before. fred and the AWS SDK are given [`EarlyLookups`] as
//! their resolver.

use std::collections::HashMap;
use std::io;
use std::net::{IpAddr, SocketAddr};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use tokio::sync::watch;

/// How old an answer from start-up may be when a connection takes it; an older one is
/// looked up again. A cold start takes its answers within milliseconds; this only keeps
/// a connection opened much later (the first miss of an idle process) off an address
/// that may have changed since.
pub const EARLY_ANSWER_MAX_AGE: Duration = Duration::from_secs(5);

/// A lookup started at start-up, for any number of takers: `None` while it runs, then
/// when it ended and the addresses it found (`None`: it failed).
type Lookup = watch::Receiver<Option<(Instant, Option<Vec<IpAddr>>)>>;

/// One lookup started at start-up, and how many connections may still take its answer.
struct EarlyAnswer {
    lookup: Lookup,
    takers: usize,
}

/// Lookups started at start-up, each handed to the first connections to its host.
/// Clones share them. The default holds none: every name is resolved when asked.
#[derive(Clone, Default)]
pub struct EarlyLookups {
    answers: Arc<Mutex<HashMap<String, EarlyAnswer>>>,
}

impl std::fmt::Debug for EarlyLookups {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let answers = self.lock();
        f.debug_map()
            .entries(answers.iter().map(|(host, answer)| {
                let state = if answer.lookup.borrow().is_some() {
                    "found"
                } else {
                    "looking"
                };
                (host, format!("{state} for {}", answer.takers))
            }))
            .finish()
    }
}

impl EarlyLookups {
    /// Starts looking up each of `hosts` on a blocking thread of the current runtime
    /// (as the resolvers it stands in for do), once per name (names are not case
    /// sensitive); a name given `n` times has its answer taken by `n` connections. IP
    /// addresses are skipped. The lookups start here, not when the caller next yields.
    pub fn start<'a>(hosts: impl IntoIterator<Item = &'a str>) -> Self {
        let lookups = Self::default();
        for host in hosts {
            if ip_address(host).is_some() {
                continue;
            }
            lookups
                .lock()
                .entry(host.to_ascii_lowercase())
                .or_insert_with(|| {
                    let host = host.to_owned();
                    EarlyAnswer {
                        lookup: started(move || lookup_now(&host)),
                        takers: 0,
                    }
                })
                .takers += 1;
        }
        lookups
    }

    /// The addresses of `host`, each with `port`: start-up's answer while it has takers
    /// left, is recent and did not fail; otherwise a lookup now.
    ///
    /// # Errors
    /// When the lookup now fails or finds no address.
    pub async fn resolve(&self, host: &str, port: u16) -> io::Result<Vec<SocketAddr>> {
        let ips = self.resolve_ips(host).await?;
        Ok(ips
            .into_iter()
            .map(|ip| SocketAddr::new(ip, port))
            .collect())
    }

    /// [`EarlyLookups::resolve`], without the port.
    ///
    /// # Errors
    /// As [`EarlyLookups::resolve`].
    pub async fn resolve_ips(&self, host: &str) -> io::Result<Vec<IpAddr>> {
        // An address is itself: no thread to start (fred's own resolver starts one).
        if let Some(ip) = ip_address(host) {
            return Ok(vec![ip]);
        }
        if let Some(lookup) = self.take(host)
            && let Some((found_at, Some(ips))) = answer_of(lookup).await
            && found_at.elapsed() <= EARLY_ANSWER_MAX_AGE
        {
            return Ok(ips);
        }
        let host = host.to_owned();
        match tokio::task::spawn_blocking(move || lookup_now(&host)).await {
            Ok(found) => found,
            Err(failed) => Err(io::Error::other(failed)),
        }
    }

    /// Start-up's lookup of `host`, for one of its takers.
    fn take(&self, host: &str) -> Option<Lookup> {
        let host = host.to_ascii_lowercase();
        let mut answers = self.lock();
        let answer = answers.get_mut(&host)?;
        answer.takers -= 1;
        let lookup = answer.lookup.clone();
        if answer.takers == 0 {
            answers.remove(&host);
        }
        Some(lookup)
    }

    /// Start-up's answer for `host`, for one connection, as if looked up at
    /// `found_at`.
    #[cfg(test)]
    #[must_use]
    pub(crate) fn with_answer(
        self,
        host: &str,
        found_at: Instant,
        found: Option<Vec<IpAddr>>,
    ) -> Self {
        let (_, lookup) = watch::channel(Some((found_at, found)));
        self.lock()
            .insert(host.to_ascii_lowercase(), EarlyAnswer { lookup, takers: 1 });
        self
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, EarlyAnswer>> {
        self.answers.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// `lookup` started on a blocking thread of the current runtime at once.
fn started(lookup: impl FnOnce() -> io::Result<Vec<IpAddr>> + Send + 'static) -> Lookup {
    let (found, lookup_in_progress) = watch::channel(None);
    // The answer is in the channel; nothing waits for the thread itself.
    drop(tokio::task::spawn_blocking(move || {
        let answer = lookup().ok();
        found.send_replace(Some((Instant::now(), answer)));
    }));
    lookup_in_progress
}

/// The end of a lookup; `None` when it panicked.
async fn answer_of(mut lookup: Lookup) -> Option<(Instant, Option<Vec<IpAddr>>)> {
    let answer = lookup.wait_for(Option::is_some).await.ok()?;
    answer.clone()
}

/// The IP address `host` is, if it is one (in brackets too, as URLs write IPv6 ones):
/// it needs no lookup.
fn ip_address(host: &str) -> Option<IpAddr> {
    host.strip_prefix('[')
        .and_then(|host| host.strip_suffix(']'))
        .unwrap_or(host)
        .parse()
        .ok()
}

/// `host`'s addresses by the system's resolver (getaddrinfo: blocks). An answer with
/// no address is an error, as fred makes it.
fn lookup_now(host: &str) -> io::Result<Vec<IpAddr>> {
    use std::net::ToSocketAddrs as _;
    let ips: Vec<IpAddr> = (host, 0).to_socket_addrs()?.map(|addr| addr.ip()).collect();
    if ips.is_empty() {
        return Err(io::Error::new(
            io::ErrorKind::NotFound,
            format!("{host} has no address"),
        ));
    }
    Ok(ips)
}

/// fred's resolver: a Redis connection's host through [`EarlyLookups`].
#[async_trait::async_trait]
impl fred::types::Resolve for EarlyLookups {
    async fn resolve(
        &self,
        host: fred::bytes_utils::Str,
        port: u16,
    ) -> Result<Vec<SocketAddr>, fred::error::Error> {
        EarlyLookups::resolve(self, &host, port)
            .await
            .map_err(|err| {
                fred::error::Error::new(
                    fred::error::ErrorKind::IO,
                    format!("cannot resolve {host}: {err}"),
                )
            })
    }
}

/// The AWS SDK's resolver: an AWS endpoint's host through [`EarlyLookups`].
impl aws_smithy_runtime_api::client::dns::ResolveDns for EarlyLookups {
    fn resolve_dns<'a>(
        &'a self,
        name: &'a str,
    ) -> aws_smithy_runtime_api::client::dns::DnsFuture<'a> {
        aws_smithy_runtime_api::client::dns::DnsFuture::new(async move {
            self.resolve_ips(name)
                .await
                .map_err(aws_smithy_runtime_api::client::dns::ResolveDnsError::new)
        })
    }
}

/// A name that moved, for the tests of the resolvers' wiring.
#[cfg(test)]
pub(crate) mod moved_name {
    use std::net::Ipv4Addr;
    use std::sync::Arc;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::time::Instant;

    use super::EarlyLookups;

    /// One port open on 127.0.0.3, where [`MovedLocalhost::lookups`] (start-up's)
    /// say `localhost` is, and on 127.0.0.1, where it resolves now (as ElastiCache's
    /// primary endpoint moves in a failover). Each closes its connections at once and
    /// counts them.
    pub(crate) struct MovedLocalhost {
        pub(crate) port: u16,
        pub(crate) lookups: EarlyLookups,
        early: Arc<AtomicUsize>,
        now: Arc<AtomicUsize>,
    }

    impl MovedLocalhost {
        pub(crate) async fn open() -> Self {
            loop {
                let (port, early) = counting_listener(Ipv4Addr::new(127, 0, 0, 3), 0)
                    .await
                    .unwrap();
                if let Ok((_, now)) = counting_listener(Ipv4Addr::LOCALHOST, port).await {
                    let lookups = EarlyLookups::default().with_answer(
                        "localhost",
                        Instant::now(),
                        Some(vec![Ipv4Addr::new(127, 0, 0, 3).into()]),
                    );
                    return Self {
                        port,
                        lookups,
                        early,
                        now,
                    };
                }
            }
        }

        /// Connections made where start-up's lookup said.
        pub(crate) fn reached_early(&self) -> usize {
            self.early.load(Ordering::SeqCst)
        }

        /// Connections made where the name resolves now.
        pub(crate) fn reached_now(&self) -> usize {
            self.now.load(Ordering::SeqCst)
        }
    }

    async fn counting_listener(
        ip: Ipv4Addr,
        port: u16,
    ) -> std::io::Result<(u16, Arc<AtomicUsize>)> {
        let listener = tokio::net::TcpListener::bind((ip, port)).await?;
        let port = listener.local_addr()?.port();
        let accepted = Arc::new(AtomicUsize::new(0));
        let counting = Arc::clone(&accepted);
        tokio::spawn(async move {
            while let Ok((socket, _)) = listener.accept().await {
                counting.fetch_add(1, Ordering::SeqCst);
                drop(socket);
            }
        });
        Ok((port, accepted))
    }
}

#[cfg(test)]
mod tests {
    use std::net::{IpAddr, Ipv4Addr};
    use std::time::{Duration, Instant};

    use super::{EARLY_ANSWER_MAX_AGE, EarlyLookups};

    /// An address `localhost` never resolves to, as a start-up answer to tell apart.
    const EARLY: IpAddr = IpAddr::V4(Ipv4Addr::new(192, 0, 2, 7));

    fn resolves_as_localhost(ips: &[IpAddr]) -> bool {
        !ips.is_empty() && ips.iter().all(IpAddr::is_loopback)
    }

    #[tokio::test]
    async fn the_first_connection_takes_start_ups_answer_and_the_next_ones_look_up_again() {
        // GIVEN start-up's answer for localhost (one it would not give now)
        let lookups =
            EarlyLookups::default().with_answer("localhost", Instant::now(), Some(vec![EARLY]));
        // WHEN a first connection resolves it
        let first = lookups.resolve("localhost", 6379).await.unwrap();
        // THEN it gets start-up's answer, with its port
        assert_eq!(first, vec![std::net::SocketAddr::new(EARLY, 6379)]);
        // WHEN another resolves it (a reconnect, after a failover moved the name)
        let again = lookups.resolve_ips("localhost").await.unwrap();
        // THEN it looks the name up now
        assert!(resolves_as_localhost(&again), "{again:?}");
    }

    #[tokio::test]
    async fn an_old_or_failed_answer_is_looked_up_again() {
        // GIVEN an answer older than the bound, and one that failed
        let Some(long_ago) =
            Instant::now().checked_sub(EARLY_ANSWER_MAX_AGE + Duration::from_secs(1))
        else {
            return; // a machine up for less than that: nothing to check
        };
        let old = EarlyLookups::default().with_answer("localhost", long_ago, Some(vec![EARLY]));
        let failed = EarlyLookups::default().with_answer("localhost", Instant::now(), None);
        // THEN neither is used: the name is looked up now
        for lookups in [old, failed] {
            let found = lookups.resolve_ips("localhost").await.unwrap();
            assert!(resolves_as_localhost(&found), "{found:?}");
        }
    }

    #[tokio::test]
    async fn start_looks_up_each_name_once_for_as_many_connections_as_it_is_named() {
        // GIVEN a name twice, in two spellings (Redis and an AWS endpoint behind one
        // emulator host), and two IP addresses
        let lookups = EarlyLookups::start(["localhost", "127.0.0.1", "[::1]", "LocalHost"]);
        // THEN one lookup runs, for the name, for two connections, and it ends though
        // nobody asks for it and this thread never yields to the runtime: it started at
        // once, on a thread of its own
        let deadline = Instant::now() + Duration::from_secs(5);
        while format!("{lookups:?}") != r#"{"localhost": "found for 2"}"# {
            assert!(Instant::now() < deadline, "{lookups:?}");
            std::thread::sleep(Duration::from_millis(5));
        }
        // AND two connections take its answer, then it is gone
        for left in [r#"{"localhost": "found for 1"}"#, "{}"] {
            let found = lookups.resolve_ips("LOCALHOST").await.unwrap();
            assert!(resolves_as_localhost(&found), "{found:?}");
            assert_eq!(format!("{lookups:?}"), left);
        }
        // (and an address resolves to itself, without a lookup)
        assert_eq!(
            lookups.resolve("127.0.0.1", 1).await.unwrap(),
            vec!["127.0.0.1:1".parse().unwrap()]
        );
        assert_eq!(
            lookups.resolve("[::1]", 2).await.unwrap(),
            vec!["[::1]:2".parse().unwrap()]
        );
    }
}
