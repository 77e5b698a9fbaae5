//! The local server against slow, idle and greedy clients: header-read timeout, idle
//! keep-alive timeout, connection limit under a low file-descriptor limit, memory held
//! by unfinished headers. The `product-api` binary with its embedded defaults.

use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use product_catalog::runtime::{HEADER_READ_TIMEOUT, MAX_HEADER_BYTES};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::helpers::{free_port, wait_for_port};

/// A local product-api (embedded catalog, in-process cache), killed on drop.
struct LocalServer {
    port: u16,
    child: Child,
}

impl LocalServer {
    /// Started through `prefix` (e.g. `prlimit --nofile=256:256 --`), when given.
    fn start(prefix: &[&str]) -> Self {
        let port = free_port();
        let binary = env!("CARGO_BIN_EXE_product-api");
        let mut command = match prefix.split_first() {
            Some((program, args)) => {
                let mut command = Command::new(program);
                command.args(args).arg(binary);
                command
            }
            None => Command::new(binary),
        };
        let child = command
            .env_clear()
            .env("LISTEN_ADDR", format!("127.0.0.1:{port}"))
            .env("RUST_LOG", "error")
            .stdout(Stdio::null())
            .stderr(Stdio::inherit())
            .spawn()
            .unwrap();
        wait_for_port(port, "product-api");
        Self { port, child }
    }

    /// A line of `/proc/<pid>/status` in bytes (VmRSS, VmHWM).
    fn memory(&self, field: &str) -> u64 {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.child.id())).unwrap();
        let line = status.lines().find(|l| l.starts_with(field)).unwrap();
        line.split_whitespace()
            .nth(1)
            .unwrap()
            .parse::<u64>()
            .unwrap()
            * 1024
    }

    async fn get(&self, id: &str) -> reqwest::Response {
        reqwest::Client::builder()
            .timeout(Duration::from_secs(5))
            .build()
            .unwrap()
            .get(format!("http://127.0.0.1:{}/product/{id}", self.port))
            .send()
            .await
            .expect("the server answers")
    }
}

impl Drop for LocalServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Waits until the server closes `socket` (EOF or reset); returns when, or None.
async fn closed_within(mut socket: TcpStream, limit: Duration) -> Option<Duration> {
    let started = Instant::now();
    let mut buf = [0u8; 4096];
    loop {
        match tokio::time::timeout_at((started + limit).into(), socket.read(&mut buf)).await {
            Err(_) => return None,
            Ok(Ok(0) | Err(_)) => return Some(started.elapsed()),
            Ok(Ok(_)) => {} // a response (e.g. 408/431): keep reading until the close
        }
    }
}

#[tokio::test]
async fn half_sent_and_idle_connections_are_closed_within_the_header_read_timeout() {
    // GIVEN a local server
    let server = LocalServer::start(&[]);
    let addr = ("127.0.0.1", server.port);
    let limit = HEADER_READ_TIMEOUT + Duration::from_secs(3);

    // WHEN clients connect and send nothing, half a request, a request trickled byte by
    // byte, or one full request and then nothing (an idle keep-alive connection)
    let mut waits = Vec::new();
    for _ in 0..20 {
        let socket = TcpStream::connect(addr).await.unwrap();
        waits.push(("silent", tokio::spawn(closed_within(socket, limit))));
        let mut socket = TcpStream::connect(addr).await.unwrap();
        socket
            .write_all(b"GET /product/P-10001 HTTP/1.1\r\nHost: x\r\nX-Half: ")
            .await
            .unwrap();
        waits.push(("half-sent", tokio::spawn(closed_within(socket, limit))));
    }
    let trickler = TcpStream::connect(addr).await.unwrap();
    let (mut reader, mut writer) = trickler.into_split();
    tokio::spawn(async move {
        let _ = writer.write_all(b"GET /product/P-10001 HTTP/1.1\r\n").await;
        while writer.write_all(b"X").await.is_ok() {
            tokio::time::sleep(Duration::from_millis(500)).await;
        }
    });
    let trickled = tokio::spawn(async move {
        let started = Instant::now();
        let mut buf = [0u8; 4096];
        while started.elapsed() < limit {
            let read = tokio::time::timeout(Duration::from_millis(200), reader.read(&mut buf));
            if let Ok(Ok(0) | Err(_)) = read.await {
                return Some(started.elapsed());
            }
        }
        None
    });
    let mut keep_alive = TcpStream::connect(addr).await.unwrap();
    keep_alive
        .write_all(b"GET /product/P-10001 HTTP/1.1\r\nHost: x\r\n\r\n")
        .await
        .unwrap();
    let mut head = [0u8; 12];
    keep_alive.read_exact(&mut head).await.unwrap();
    assert_eq!(&head, b"HTTP/1.1 200");
    waits.push((
        "idle keep-alive",
        tokio::spawn(closed_within(keep_alive, limit)),
    ));

    // THEN every one of them is closed by the server within the timeout (plus a margin)
    let mut slowest = Duration::ZERO;
    for (kind, wait) in waits {
        let closed = wait.await.unwrap();
        let closed =
            closed.unwrap_or_else(|| panic!("a {kind} connection was still open after {limit:?}"));
        slowest = slowest.max(closed);
    }
    let trickled = trickled
        .await
        .unwrap()
        .expect("a trickling client was still connected");
    println!(
        "header-read timeout {HEADER_READ_TIMEOUT:?}: 41 silent, half-sent and idle connections closed, the last after {slowest:.1?}; a trickling client after {trickled:.1?}"
    );
    // And the server still serves.
    assert_eq!(server.get("P-10001").await.status(), 200);
}

#[tokio::test]
async fn idle_sockets_cannot_lock_others_out_under_a_low_descriptor_limit() {
    // GIVEN a local server limited to 256 file descriptors
    let server = LocalServer::start(&["prlimit", "--nofile=256:256", "--"]);
    // WHEN 300 clients connect and send nothing
    let mut idle = Vec::new();
    for _ in 0..300 {
        idle.push(
            TcpStream::connect(("127.0.0.1", server.port))
                .await
                .unwrap(),
        );
    }
    tokio::time::sleep(Duration::from_millis(300)).await;
    // THEN a normal request still gets its answer, promptly
    let started = Instant::now();
    let response = server.get("P-10001").await;
    assert_eq!(response.status(), 200);
    println!(
        "descriptor limit 256, 300 idle sockets: a normal request answered in {:.1?}",
        started.elapsed()
    );
    drop(idle);
}

#[tokio::test]
async fn unfinished_headers_cannot_take_the_memory() {
    // GIVEN a local server at rest
    let server = LocalServer::start(&[]);
    assert_eq!(server.get("P-10001").await.status(), 200);
    let before = server.memory("VmRSS:");
    // WHEN 300 clients each send 380 KB of headers and never finish them
    let padding = vec![b'a'; 380 * 1024];
    let mut clients = Vec::new();
    for _ in 0..300 {
        let mut socket = TcpStream::connect(("127.0.0.1", server.port))
            .await
            .unwrap();
        let padding = padding.clone();
        clients.push(tokio::spawn(async move {
            let _ = socket
                .write_all(b"GET /product/P-10001 HTTP/1.1\r\nHost: x\r\nX-Pad: ")
                .await;
            let _ = socket.write_all(&padding).await;
            socket
        }));
    }
    let mut sockets = Vec::new();
    for client in clients {
        sockets.push(client.await.unwrap());
    }
    tokio::time::sleep(Duration::from_millis(500)).await;
    // THEN the server's memory stays bounded: at most MAX_HEADER_BYTES each is read
    let peak = server.memory("VmHWM:");
    let grown = peak.saturating_sub(before);
    println!(
        "300 connections with 380 KB of unfinished headers: RSS {:.1} MiB at rest, peak {:.1} MiB (head limit {} KiB)",
        before as f64 / 1048576.0,
        peak as f64 / 1048576.0,
        MAX_HEADER_BYTES / 1024
    );
    assert!(
        grown < 32 * 1024 * 1024,
        "RSS grew by {grown} bytes for 300 unfinished heads"
    );
    drop(sockets);
    assert_eq!(server.get("P-10001").await.status(), 200);
}
