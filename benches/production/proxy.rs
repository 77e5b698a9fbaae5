//! The network between the function and its dependencies, as the production-path profile
//! models it: a TCP proxy that makes every round trip through it cost a configured delay
//! (and a new connection one more, its TCP handshake), and a TLS terminator with the test
//! CA in front of the plain-HTTP emulators (moto, dynalite).
//!
//! The delay proxy runs on OS threads with blocking sockets: tokio's timer has a 1 ms
//! resolution, too coarse for a 0.5 ms round trip, while `thread::sleep` is good to the
//! thread's timer slack, which the proxy sets to 1 ns (the kernel's default, 50 µs, made
//! each round trip about 0.05 ms longer). The bench measures what a round trip through it
//! really costs and prints that beside the delay asked for.

use std::io::{Read, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Mutex, mpsc};
use std::time::{Duration, Instant};

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};

/// What the delay proxies saw while [`WireLog::start`]ed (`BENCH_TRACE`): the wire side
/// of a traced cold start, each event stamped when it happened, and each connection
/// numbered in its proxy.
pub struct WireLog;

static WIRE_LOG: Mutex<Option<Vec<(Instant, String)>>> = Mutex::new(None);
/// Whether the log is on: off, a proxy takes no lock.
static WIRE_LOG_ON: AtomicBool = AtomicBool::new(false);

impl WireLog {
    /// From now on, the proxies note what they see.
    pub fn start() {
        *WIRE_LOG.lock().unwrap() = Some(Vec::new());
        WIRE_LOG_ON.store(true, Ordering::SeqCst);
    }

    /// What they noted since [`WireLog::start`]; they stop noting.
    pub fn take() -> Vec<(Instant, String)> {
        WIRE_LOG_ON.store(false, Ordering::SeqCst);
        WIRE_LOG.lock().unwrap().take().unwrap_or_default()
    }

    fn note(at: Instant, event: impl FnOnce() -> String) {
        if !WIRE_LOG_ON.load(Ordering::Relaxed) {
            return;
        }
        if let Some(log) = WIRE_LOG.lock().unwrap().as_mut() {
            log.push((at, event()));
        }
    }
}

/// A proxy that delays every reply by one round trip, listening until the bench ends.
pub struct DelayProxy {
    pub port: u16,
}

impl DelayProxy {
    /// Forwards connections to `upstream`. The client's bytes go through at once; each
    /// chunk of the upstream's reply is held until `rtt` after it arrived, so a request
    /// and its reply cost `rtt`. The first reply on a connection is also held until
    /// `2 × rtt` after the connection was accepted: on loopback `connect` returns at once,
    /// where a real network spends a round trip on the TCP handshake first.
    /// `name` says which dependency it stands for in the [`WireLog`].
    pub fn start(name: &'static str, upstream: SocketAddr, rtt: Duration) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        std::thread::spawn(move || {
            for (number, client) in (1..).zip(listener.incoming()) {
                let Ok(client) = client else { continue };
                let accepted = Instant::now();
                let name = format!("{name} #{number}");
                WireLog::note(accepted, || format!("{name}: connection accepted"));
                std::thread::spawn(move || {
                    if let Ok(server) = TcpStream::connect(upstream) {
                        forward(&name, client, server, accepted, rtt);
                    }
                });
            }
        });
        Self { port }
    }
}

/// One proxied connection: client to server at once, server to client delayed.
fn forward(name: &str, client: TcpStream, server: TcpStream, accepted: Instant, rtt: Duration) {
    // This thread sleeps out each delay: 1 ns of timer slack instead of the kernel's
    // default 50 µs, so that the sleep ends when asked.
    let _ = rustix::thread::set_current_timer_slack(std::num::NonZeroU64::new(1));
    let _ = (client.set_nodelay(true), server.set_nodelay(true));
    let (Ok(mut client_in), Ok(mut server_out)) = (client.try_clone(), server.try_clone()) else {
        return;
    };
    let sender = name.to_owned();
    std::thread::spawn(move || {
        let mut buffer = vec![0; 64 * 1024];
        while let Ok(n @ 1..) = client_in.read(&mut buffer) {
            WireLog::note(Instant::now(), || format!("{sender}: {n} bytes sent"));
            if server_out.write_all(&buffer[..n]).is_err() {
                break;
            }
        }
        let _ = server_out.shutdown(Shutdown::Write);
    });
    let (chunks, due) = mpsc::channel::<(Instant, Vec<u8>)>();
    let mut server_in = server;
    let answerer = name.to_owned();
    std::thread::spawn(move || {
        let mut buffer = vec![0; 64 * 1024];
        while let Ok(n @ 1..) = server_in.read(&mut buffer) {
            let arrived = Instant::now();
            WireLog::note(arrived, || {
                format!("{answerer}: {n} bytes answered by the server, now held")
            });
            if chunks.send((arrived, buffer[..n].to_vec())).is_err() {
                break;
            }
        }
    });
    let mut client_out = client;
    let mut not_before = accepted + 2 * rtt;
    for (arrived, chunk) in due {
        not_before = not_before.max(arrived + rtt);
        if let Some(wait) = not_before.checked_duration_since(Instant::now()) {
            std::thread::sleep(wait);
        }
        WireLog::note(Instant::now(), || {
            format!("{name}: {} bytes delivered", chunk.len())
        });
        if client_out.write_all(&chunk).is_err() {
            break;
        }
    }
    let _ = client_out.shutdown(Shutdown::Write);
}

/// TLS in front of a plain TCP service, with the certificate in `dir` (`server.pem`,
/// `server.key`, as `helpers::make_certificates` writes them), until the bench ends.
pub struct TlsTerminator {
    pub addr: SocketAddr,
    /// Each connection's first request and first answer, as they pass.
    pub exchanges: Exchanges,
}

/// One connection through a [`TlsTerminator`]: when it was accepted, when its first
/// request went to the upstream and when the upstream's first answer came back. The
/// last two give the emulator's own answering time as a cold start meets it (a fresh
/// connection, the machine idle since the last start), which a warm client calling it
/// back to back need not show (moto, by hand: 2.2 ms back to back, 4.5-5.8 ms for calls
/// 50-200 ms apart).
#[derive(Clone, Copy)]
pub struct Exchange {
    pub accepted: Instant,
    pub requested: Option<Instant>,
    pub answered: Option<Instant>,
}

/// The exchanges of one terminator, in the order their connections were accepted.
#[derive(Clone, Default)]
pub struct Exchanges(Arc<Mutex<Vec<Exchange>>>);

impl Exchanges {
    /// The first connection accepted between `from` and `to` that was answered.
    pub fn answered_between(&self, from: Instant, to: Instant) -> Option<Exchange> {
        self.0
            .lock()
            .unwrap()
            .iter()
            .find(|e| e.accepted >= from && e.accepted <= to && e.answered.is_some())
            .copied()
    }

    fn open(&self, accepted: Instant) -> usize {
        let mut all = self.0.lock().unwrap();
        all.push(Exchange {
            accepted,
            requested: None,
            answered: None,
        });
        all.len() - 1
    }

    fn note(&self, index: usize, what: fn(&mut Exchange) -> &mut Option<Instant>) {
        let now = Instant::now();
        what(&mut self.0.lock().unwrap()[index]).get_or_insert(now);
    }
}

impl TlsTerminator {
    pub async fn start(upstream: SocketAddr, dir: &Path) -> Self {
        let certs = CertificateDer::pem_file_iter(dir.join("server.pem"))
            .unwrap()
            .collect::<Result<Vec<_>, _>>()
            .unwrap();
        let key = PrivateKeyDer::from_pem_file(dir.join("server.key")).unwrap();
        let mut config = rustls::ServerConfig::builder_with_provider(Arc::new(
            rustls::crypto::aws_lc_rs::default_provider(),
        ))
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_no_client_auth()
        .with_single_cert(certs, key)
        .unwrap();
        config.alpn_protocols = vec![b"http/1.1".to_vec()];
        let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(config));
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let exchanges = Exchanges::default();
        let recorded = exchanges.clone();
        tokio::spawn(async move {
            while let Ok((stream, _)) = listener.accept().await {
                let index = recorded.open(Instant::now());
                let (acceptor, recorded) = (acceptor.clone(), recorded.clone());
                tokio::spawn(async move {
                    let _ = stream.set_nodelay(true);
                    let Ok(tls) = acceptor.accept(stream).await else {
                        return;
                    };
                    let Ok(plain) = tokio::net::TcpStream::connect(upstream).await else {
                        return;
                    };
                    let _ = plain.set_nodelay(true);
                    let (mut client_in, mut client_out) = tokio::io::split(tls);
                    let (mut upstream_in, mut upstream_out) = plain.into_split();
                    tokio::join!(
                        copy_noting_the_first_chunk(&mut client_in, &mut upstream_out, || {
                            recorded.note(index, |e| &mut e.requested);
                        }),
                        copy_noting_the_first_chunk(&mut upstream_in, &mut client_out, || {
                            recorded.note(index, |e| &mut e.answered);
                        }),
                    );
                });
            }
        });
        Self { addr, exchanges }
    }
}

/// Copies `from` to `to` until `from` ends or `to` fails, calling `first` when the first
/// bytes arrive; then shuts `to` down for writing.
async fn copy_noting_the_first_chunk(
    from: &mut (impl tokio::io::AsyncRead + Unpin),
    to: &mut (impl tokio::io::AsyncWrite + Unpin),
    first: impl FnOnce(),
) {
    use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
    let mut first = Some(first);
    let mut buffer = vec![0; 16 * 1024];
    while let Ok(n @ 1..) = from.read(&mut buffer).await {
        if let Some(first) = first.take() {
            first();
        }
        if to.write_all(&buffer[..n]).await.is_err() {
            break;
        }
    }
    let _ = to.shutdown().await;
}

/// The round trip of one `GET key` on a plain blocking socket: the least a Redis round
/// trip can cost from this machine, with no client library in the way.
pub fn raw_redis_round_trips(port: u16, key: &str, count: usize) -> Vec<Duration> {
    let mut stream = TcpStream::connect(("127.0.0.1", port)).unwrap();
    stream.set_nodelay(true).unwrap();
    let command = get_command(key);
    let mut buffer = vec![0; 64 * 1024];
    (0..count)
        .map(|_| {
            let started = Instant::now();
            stream.write_all(&command).unwrap();
            read_bulk_reply(&mut stream, &mut buffer);
            started.elapsed()
        })
        .collect()
}

/// The same on a single-threaded tokio runtime, as product-api runs in Lambda mode: the
/// least a Redis round trip costs an async client (the reactor's wake-up included).
pub fn async_redis_round_trips(port: u16, key: &str, count: usize) -> Vec<Duration> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(async {
        let mut stream = tokio::net::TcpStream::connect(("127.0.0.1", port))
            .await
            .unwrap();
        stream.set_nodelay(true).unwrap();
        let command = get_command(key);
        let mut samples = Vec::with_capacity(count);
        for _ in 0..count {
            let started = Instant::now();
            async_raw_get(&mut stream, &command).await;
            samples.push(started.elapsed());
        }
        samples
    })
}

/// `GET key` in RESP.
pub fn get_command(key: &str) -> Vec<u8> {
    format!("*2\r\n$3\r\nGET\r\n${}\r\n{key}\r\n", key.len()).into_bytes()
}

/// Sends a hand-written `GET` ([`get_command`]) on a tokio stream and reads its bulk reply.
pub async fn async_raw_get(stream: &mut tokio::net::TcpStream, command: &[u8]) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    stream.write_all(command).await.unwrap();
    let mut buffer = [0; 4096];
    let mut filled = 0;
    loop {
        let n = stream.read(&mut buffer[filled..]).await.unwrap();
        assert!(n > 0, "Redis closed the connection");
        filled += n;
        if bulk_reply_complete(&buffer[..filled]) {
            break;
        }
    }
}

fn bulk_reply_complete(text: &[u8]) -> bool {
    let Some(end) = text.windows(2).position(|w| w == b"\r\n") else {
        return false;
    };
    let length: i64 = std::str::from_utf8(&text[1..end]).unwrap().parse().unwrap();
    let total = usize::try_from(length).map_or(end + 2, |length| end + 2 + length + 2);
    text.len() >= total
}

/// Reads one RESP bulk reply (`$<len>\r\n<bytes>\r\n`, or `$-1\r\n`).
fn read_bulk_reply(stream: &mut TcpStream, buffer: &mut [u8]) {
    let mut filled = 0;
    while !bulk_reply_complete(&buffer[..filled]) {
        let n = stream.read(&mut buffer[filled..]).unwrap();
        assert!(n > 0, "Redis closed the connection");
        filled += n;
    }
}
