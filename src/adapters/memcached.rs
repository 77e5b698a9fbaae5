//! [`Cache`] on memcached 1.6 / ElastiCache for Memcached, over its meta commands
//! (`mg`, `ms`, `md`), with the nodes chosen per key by rendezvous hashing.
//!
//! Why a codec of our own: the maintained async clients either speak only the classic
//! text commands, or send one command per round trip over plain TCP. The read path needs
//! two meta commands pipelined in one write (the lease's add, then the read) and TLS
//! (`memcaches://`, ElastiCache in-transit encryption). The codec below covers exactly the
//! replies those commands have (`VA`, `HD`, `NS`, `EX`, `NF`, `EN`, `CLIENT_ERROR`,
//! `SERVER_ERROR`, `ERROR`).
//!
//! How the port maps onto memcached:
//! - `read_or_lease`: `ms <key> T<ttl> ME` (add: stores the lease only if the key is
//!   empty) and `mg <key> v c`, pipelined: one round trip. The read answers the key's
//!   value and CAS; when that value is our own lease, we own the fill, and the lease's
//!   CAS is remembered (in a small in-process map, by lease) for the fill.
//! - `fill`: `ms <key> C<cas>` with the lease's CAS: the compare-and-set, one round trip.
//!   An invalidation since the lease was taken changed the CAS, so the set fails (`EX`)
//!   and a stale read never refills. (memcached 1.6.18, Debian 12, has no flag to choose
//!   an item's CAS, `E`, so it must be read back.) When the lease's CAS is not known (its
//!   entry was evicted, or the lease is not this process's), the fill reads it first
//!   (`mg <key> v c`) and compares the value: two round trips.
//! - `fill_keeping_copy`: a plain `ms` of the copy on the copy key's node (often another
//!   node), then the fill; when the fill did not replace the lease, an `md` of the copy.
//!   One more round trip on that path (two when the fill lost its lease).
//!
//! Keys: memcached keys are at most 250 bytes with no spaces or control characters; a
//! product id may be 256 bytes of UTF-8 with spaces. [`wire_key`] maps every key
//! injectively: printable ASCII of at most 250 bytes as it is; other keys of at most 186
//! bytes (whose base64 fits 250) as themselves in binary (`b` flag); anything longer, or
//! starting with a NUL byte, as a NUL byte followed by the key's SHA-256 (`b` flag). No
//! unhashed key starts with NUL, so a hashed key can only equal another hashed key, which
//! takes a SHA-256 collision.
//!
//! Every command carries an opaque token (`O`, unique in the process) that the server
//! echoes: a reply bearing another token (a server that answered twice, a stream out of
//! step) is a protocol error and its connection is dropped, so one key's value is never
//! read as another's.
//!
//! Every call carries a timeout covering connecting, writing and reading. A connection
//! whose call failed in any way (I/O, timeout, a reply we could not follow) is dropped and
//! dialled again by the next call, so a restarted or thawed server is used again without
//! any background task. Errors are sorted for the breaker: no answer is an outage
//! ([`CacheErrorKind::Unavailable`]); a value too large for the server, or a refused
//! command, concerns that call only ([`CacheErrorKind::Rejected`]).

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::time::Duration;

use base64::Engine as _;
use bytes::{BufMut, Bytes, BytesMut};
use sha2::Digest as _;
use tokio::io::{AsyncBufReadExt, AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, BufStream};
use tokio::net::TcpStream;
use tokio::sync::Mutex;

use crate::config::{MemcachedNode, MemcachedUrl};
use crate::error::{CacheError, CacheErrorKind};
use crate::ports::Cache;
use crate::tls::TrustedRoots;

/// How long a new connection (TCP and TLS) may take; the call's own timeout bounds it too.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(2);
/// memcached's longest key.
const MAX_KEY: usize = 250;
/// The longest key whose base64 fits in [`MAX_KEY`].
const MAX_BINARY_KEY: usize = MAX_KEY / 4 * 3;
/// memcached reads a TTL above 30 days as a Unix time.
const MAX_TTL_SECS: u64 = 30 * 24 * 3600;
/// The longest reply line we accept (status lines are short; this is a guard).
const MAX_LINE: usize = 1024;

trait Stream: AsyncRead + AsyncWrite + Send + Unpin {}
impl<T: AsyncRead + AsyncWrite + Send + Unpin> Stream for T {}

type Connection = BufStream<Box<dyn Stream>>;

/// One memcached node and its connections.
struct Node {
    node: MemcachedNode,
    /// Rendezvous-hash seed of the node, from its address.
    seed: u64,
    slots: Vec<Mutex<Option<Connection>>>,
    next: AtomicUsize,
}

/// A memcached client over one or more nodes.
#[derive(Clone)]
pub struct MemcachedCache {
    nodes: Arc<[Node]>,
    tls: Option<tokio_rustls::TlsConnector>,
    timeout: Duration,
    /// The CAS of each lease this process holds, so the fill is one round trip.
    lease_cas: Arc<LeaseCas>,
}

/// How many leases' CAS values are kept, and for how long (longer than any lease).
const LEASE_CAS_ENTRIES: usize = 10_000;
const LEASE_CAS_TTL: Duration = Duration::from_secs(60);

/// The CAS values of the leases this process took, by lease bytes (unique per lease).
/// Bounded: a lease whose fill never comes (the table failed) ages out, and when the map
/// is full of live entries it starts again empty (those fills then read the CAS back).
#[derive(Default)]
struct LeaseCas {
    entries: std::sync::Mutex<std::collections::HashMap<Bytes, (u64, std::time::Instant)>>,
}

impl LeaseCas {
    fn insert(&self, lease: Bytes, cas: u64) {
        let mut entries = self
            .entries
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if entries.len() >= LEASE_CAS_ENTRIES {
            entries.retain(|_, (_, at)| at.elapsed() < LEASE_CAS_TTL);
            if entries.len() >= LEASE_CAS_ENTRIES {
                entries.clear();
            }
        }
        entries.insert(lease, (cas, std::time::Instant::now()));
    }

    fn remove(&self, lease: &[u8]) -> Option<u64> {
        let mut entries = self
            .entries
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let (cas, at) = entries.remove(lease)?;
        (at.elapsed() < LEASE_CAS_TTL).then_some(cas)
    }
}

impl MemcachedCache {
    /// A client for the nodes of `url`, `connections` per node, each call bounded by
    /// `timeout`, TLS (`memcaches://`) trusting the system's roots. Connects lazily: the
    /// first call to a node dials it.
    ///
    /// # Errors
    /// [`CacheError`] when TLS cannot be set up (no usable root certificates).
    pub fn new(
        url: &MemcachedUrl,
        timeout: Duration,
        connections: usize,
    ) -> Result<Self, CacheError> {
        Self::trusting(url, timeout, connections, TrustedRoots::System)
    }

    /// [`MemcachedCache::new`], TLS trusting `roots`.
    ///
    /// # Errors
    /// [`CacheError`] when TLS cannot be set up (no usable root certificates).
    pub fn trusting(
        url: &MemcachedUrl,
        timeout: Duration,
        connections: usize,
        roots: TrustedRoots,
    ) -> Result<Self, CacheError> {
        let tls = if url.tls() {
            Some(tls_connector(roots)?)
        } else {
            None
        };
        let nodes = url
            .nodes()
            .iter()
            .map(|node| Node {
                seed: xxhash_rust::xxh3::xxh3_64(node.to_string().as_bytes()),
                node: node.clone(),
                slots: (0..connections.max(1)).map(|_| Mutex::new(None)).collect(),
                next: AtomicUsize::new(0),
            })
            .collect();
        Ok(Self {
            nodes,
            tls,
            timeout,
            lease_cas: Arc::default(),
        })
    }

    /// Dials every node now, at most `limit`, so that the first requests find open
    /// connections.
    ///
    /// # Errors
    /// [`CacheError`] naming the first node that could not be reached in time; later
    /// calls dial again.
    pub async fn wait_connected(&self, limit: Duration) -> Result<(), CacheError> {
        for node in self.nodes.iter() {
            let mut slot = node.slots[0].lock().await;
            if slot.is_none() {
                let connection = tokio::time::timeout(limit, self.dial(&node.node))
                    .await
                    .map_err(|elapsed| CacheError::new("connect", elapsed))??;
                *slot = Some(connection);
            }
        }
        Ok(())
    }

    /// The node `key` lives on: the highest rendezvous score (keys move only from or to
    /// a node that is added or removed).
    fn node_for(&self, key: &[u8]) -> &Node {
        &self.nodes[self.node_index(key)]
    }

    fn node_index(&self, key: &[u8]) -> usize {
        let score = |node: &Node| xxhash_rust::xxh3::xxh3_64_with_seed(key, node.seed);
        let mut best = 0;
        let mut best_score = score(&self.nodes[0]);
        for (index, node) in self.nodes.iter().enumerate().skip(1) {
            let s = score(node);
            if s > best_score {
                best = index;
                best_score = s;
            }
        }
        best
    }

    async fn dial(&self, node: &MemcachedNode) -> Result<Connection, CacheError> {
        let connect = async {
            let tcp = TcpStream::connect((node.host(), node.port())).await?;
            tcp.set_nodelay(true)?;
            let stream: Box<dyn Stream> = match &self.tls {
                None => Box::new(tcp),
                Some(connector) => {
                    let name = rustls::pki_types::ServerName::try_from(node.host().to_owned())
                        .map_err(|err| {
                            std::io::Error::new(std::io::ErrorKind::InvalidInput, err)
                        })?;
                    Box::new(connector.connect(name, tcp).await?)
                }
            };
            Ok::<_, std::io::Error>(BufStream::new(stream))
        };
        match tokio::time::timeout(CONNECT_TIMEOUT, connect).await {
            Ok(Ok(connection)) => Ok(connection),
            Ok(Err(err)) => Err(CacheError::new("connect", err)),
            Err(elapsed) => Err(CacheError::new("connect", elapsed)),
        }
    }

    /// Sends `request` (one or more commands) to `key`'s node and reads one reply per
    /// command, within the timeout. A connection that failed is dropped.
    async fn exchange(
        &self,
        operation: &'static str,
        key: &str,
        request: &Request,
    ) -> Result<Vec<Reply>, CacheError> {
        let node = self.node_for(key.as_bytes());
        let slot = &node.slots[node.next.fetch_add(1, Ordering::Relaxed) % node.slots.len()];
        let call = async {
            let mut guard = slot.lock().await;
            // The connection is taken out for the call and put back only after a whole
            // exchange: a call that fails, or times out and is dropped halfway, takes it
            // along, so no later call reads the rest of someone else's reply.
            let mut connection = match guard.take() {
                Some(connection) => connection,
                // Boxed: dialing (TCP, TLS) is rare and its future large, and in place it
                // would make every call's future as large, a Redis deployment's included
                // (`AnyCache` is as large as its largest adapter's).
                None => Box::pin(self.dial(&node.node)).await?,
            };
            let replies = round_trip(&mut connection, request)
                .await
                .map_err(|err| CacheError::new(operation, err))?;
            // After an error reply the server may still be reading what it refused (a
            // bad data chunk): the connection is not trusted again.
            if !replies.iter().any(Reply::is_error) {
                *guard = Some(connection);
            }
            Ok(replies)
        };
        match tokio::time::timeout(self.timeout, call).await {
            Ok(result) => result,
            Err(elapsed) => Err(CacheError::new(operation, elapsed)),
        }
        .and_then(|replies| check(operation, key, replies))
    }
}

/// Replies that concern the call, not the connection: refused commands and server
/// errors. A `SERVER_ERROR` about one value (too large) is that call's problem; any other
/// (out of memory, and the like) holds for every key.
fn check(
    operation: &'static str,
    key: &str,
    replies: Vec<Reply>,
) -> Result<Vec<Reply>, CacheError> {
    for reply in &replies {
        match reply {
            Reply::ServerError(message) if message.contains("too large") => {
                return Err(CacheError::with_kind(
                    operation,
                    CacheErrorKind::Rejected,
                    format!("{key}: {message}"),
                ));
            }
            Reply::ServerError(message) => {
                return Err(CacheError::new(
                    operation,
                    format!("SERVER_ERROR {message}"),
                ));
            }
            Reply::ClientError(message) => {
                return Err(CacheError::with_kind(
                    operation,
                    CacheErrorKind::Rejected,
                    format!("{key}: CLIENT_ERROR {message}"),
                ));
            }
            _ => {}
        }
    }
    Ok(replies)
}

fn tls_connector(roots: TrustedRoots) -> Result<tokio_rustls::TlsConnector, CacheError> {
    let config = roots
        .client_config()
        .map_err(|err| CacheError::new("configure", err))?;
    Ok(tokio_rustls::TlsConnector::from(Arc::new(config)))
}

// ---- The meta-protocol codec ------------------------------------------------------

/// One reply to one meta command.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Reply {
    /// `VA <size> <flags>`: a value, and its CAS when `c` was asked for.
    Value {
        data: Bytes,
        cas: Option<u64>,
    },
    /// `HD`: done (stored, deleted).
    Done,
    /// `NS`: not stored (an add found the key, a CAS found none).
    NotStored,
    /// `EX`: the CAS did not match.
    Exists,
    /// `NF`: no such key (`md`, `ms` with CAS).
    NotFound,
    /// `EN`: no such key (`mg`).
    Miss,
    ClientError(String),
    ServerError(String),
}

impl Reply {
    fn is_error(&self) -> bool {
        matches!(self, Self::ClientError(_) | Self::ServerError(_))
    }
}

/// Meta commands sent in one write, each tagged with an opaque token (`O`) that the
/// server echoes in its reply: a reply that is not the one awaited (a server that
/// answered twice, a connection out of step) is caught, never taken for another key's.
struct Request {
    bytes: BytesMut,
    opaques: Vec<u64>,
}

/// The next opaque token; unique in the process, so a late reply never matches.
static NEXT_OPAQUE: AtomicU64 = AtomicU64::new(1);

/// Writes `request`, reads one reply per command, each bearing its command's token
/// (error replies carry none; the connection is dropped after them anyway).
async fn round_trip(connection: &mut Connection, request: &Request) -> std::io::Result<Vec<Reply>> {
    connection.write_all(&request.bytes).await?;
    connection.flush().await?;
    let mut replies = Vec::with_capacity(request.opaques.len());
    let mut line = Vec::with_capacity(64);
    for expected in &request.opaques {
        let (reply, opaque) = read_reply(connection, &mut line).await?;
        if !reply.is_error() && opaque != Some(*expected) {
            return Err(protocol_error(format!(
                "a reply to another command ({reply:?}, O{opaque:?}, awaited O{expected})"
            )));
        }
        replies.push(reply);
    }
    Ok(replies)
}

fn protocol_error(what: impl Into<String>) -> std::io::Error {
    std::io::Error::new(std::io::ErrorKind::InvalidData, what.into())
}

/// One reply, and the opaque token it echoes.
async fn read_reply<R: AsyncBufReadExt + AsyncReadExt + Unpin>(
    reader: &mut R,
    line: &mut Vec<u8>,
) -> std::io::Result<(Reply, Option<u64>)> {
    line.clear();
    let read = (&mut *reader)
        .take(MAX_LINE as u64)
        .read_until(b'\n', line)
        .await?;
    if read == 0 {
        return Err(std::io::Error::new(
            std::io::ErrorKind::UnexpectedEof,
            "memcached closed the connection",
        ));
    }
    let text = line
        .strip_suffix(b"\r\n")
        .ok_or_else(|| protocol_error("a reply line without CRLF"))?;
    let text = std::str::from_utf8(text).map_err(|_| protocol_error("a reply line not UTF-8"))?;
    let mut words = text.split(' ');
    let opaque = text
        .split(' ')
        .skip(1)
        .find_map(|flag| flag.strip_prefix('O'))
        .and_then(|opaque| opaque.parse().ok());
    let reply = match words.next().unwrap_or_default() {
        "VA" => {
            let size: usize = words
                .next()
                .and_then(|size| size.parse().ok())
                .ok_or_else(|| protocol_error(format!("bad value header {text:?}")))?;
            let cas = words
                .filter_map(|flag| flag.strip_prefix('c'))
                .find_map(|cas| cas.parse().ok());
            // Read as the bytes arrive, not allocated from the header: a server that
            // announces more than it sends costs what it sent, until the timeout.
            let wanted = size
                .checked_add(2)
                .ok_or_else(|| protocol_error(format!("bad value header {text:?}")))?;
            let mut data = Vec::with_capacity(wanted.min(64 * 1024));
            (&mut *reader)
                .take(wanted as u64)
                .read_to_end(&mut data)
                .await?;
            if data.len() != wanted || !data.ends_with(b"\r\n") {
                return Err(protocol_error("a value without CRLF"));
            }
            data.truncate(size);
            Reply::Value {
                data: Bytes::from(data),
                cas,
            }
        }
        "HD" => Reply::Done,
        "NS" => Reply::NotStored,
        "EX" => Reply::Exists,
        "NF" => Reply::NotFound,
        "EN" => Reply::Miss,
        // The server may have lost track of the request: the connection is not reused.
        "ERROR" => return Err(protocol_error("memcached answered ERROR")),
        "CLIENT_ERROR" => Reply::ClientError(text["CLIENT_ERROR".len()..].trim().to_owned()),
        "SERVER_ERROR" => Reply::ServerError(text["SERVER_ERROR".len()..].trim().to_owned()),
        _ => return Err(protocol_error(format!("unexpected reply {text:?}"))),
    };
    Ok((reply, opaque))
}

/// A key as sent: the text to put on the command line, and whether it is base64 (`b`).
#[derive(Debug, Clone, PartialEq, Eq)]
struct WireKey {
    text: String,
    binary: bool,
}

/// The memcached key for `key`; injective (see the module doc).
fn wire_key(key: &str) -> WireKey {
    let bytes = key.as_bytes();
    if bytes.len() <= MAX_KEY && !bytes.is_empty() && bytes.iter().all(u8::is_ascii_graphic) {
        return WireKey {
            text: key.to_owned(),
            binary: false,
        };
    }
    let base64 = base64::engine::general_purpose::STANDARD;
    if bytes.len() <= MAX_BINARY_KEY && bytes.first().is_some_and(|b| *b != 0) {
        return WireKey {
            text: base64.encode(bytes),
            binary: true,
        };
    }
    let mut hashed = Vec::with_capacity(33);
    hashed.push(0);
    hashed.extend_from_slice(&sha2::Sha256::digest(bytes));
    WireKey {
        text: base64.encode(hashed),
        binary: true,
    }
}

/// TTL in whole seconds, rounded up, from 1 (0 would mean "never expires") to 30 days
/// (longer would be read as a Unix time).
fn ttl_secs(ttl: Duration) -> u64 {
    ttl.as_millis()
        .div_ceil(1000)
        .try_into()
        .unwrap_or(MAX_TTL_SECS)
        .clamp(1, MAX_TTL_SECS)
}

/// Appends one meta command: `<verb> <key> [<size>] <flags…>[ b] O<token>\r\n[<data>\r\n]`.
fn command(request: &mut Request, verb: &str, key: &WireKey, data: Option<&[u8]>, flags: &str) {
    let opaque = NEXT_OPAQUE.fetch_add(1, Ordering::Relaxed);
    request.opaques.push(opaque);
    let request = &mut request.bytes;
    request.put_slice(verb.as_bytes());
    request.put_u8(b' ');
    request.put_slice(key.text.as_bytes());
    if let Some(data) = data {
        request.put_slice(format!(" {}", data.len()).as_bytes());
    }
    if !flags.is_empty() {
        request.put_u8(b' ');
        request.put_slice(flags.as_bytes());
    }
    if key.binary {
        request.put_slice(b" b");
    }
    request.put_slice(format!(" O{opaque}\r\n").as_bytes());
    if let Some(data) = data {
        request.put_slice(data);
        request.put_slice(b"\r\n");
    }
}

fn one_command(verb: &str, key: &WireKey, data: Option<&[u8]>, flags: &str) -> Request {
    let mut request = Request::with_capacity(64 + data.map_or(0, <[u8]>::len));
    command(&mut request, verb, key, data, flags);
    request
}

impl Request {
    fn with_capacity(bytes: usize) -> Self {
        Self {
            bytes: BytesMut::with_capacity(bytes),
            opaques: Vec::with_capacity(2),
        }
    }
}

fn unexpected(operation: &'static str, replies: &[Reply]) -> CacheError {
    CacheError::with_kind(
        operation,
        CacheErrorKind::Rejected,
        format!("unexpected reply {replies:?}"),
    )
}

impl MemcachedCache {
    /// The value under `key`; for tools, tests and the read of a last-known-good copy.
    ///
    /// # Errors
    /// [`CacheError`] when memcached cannot answer in time.
    pub async fn get(&self, key: &str) -> Result<Option<Bytes>, CacheError> {
        let request = one_command("mg", &wire_key(key), None, "v");
        match self.exchange("mg", key, &request).await?.as_slice() {
            [Reply::Value { data, .. }] => Ok(Some(data.clone())),
            [Reply::Miss] => Ok(None),
            other => Err(unexpected("mg", other)),
        }
    }

    /// Replaces the lease with `value` by compare-and-set; whether it did.
    async fn replace_lease(
        &self,
        key: &str,
        lease: &[u8],
        value: &[u8],
        ttl: Duration,
    ) -> Result<bool, CacheError> {
        let wire = wire_key(key);
        let cas = match self.lease_cas.remove(lease) {
            Some(cas) => cas,
            None => match self.lease_cas_from_server(key, &wire, lease).await? {
                Some(cas) => cas,
                None => return Ok(false),
            },
        };
        let flags = format!("T{} C{cas}", ttl_secs(ttl));
        let write = one_command("ms", &wire, Some(value), &flags);
        match self.exchange("ms", key, &write).await?.as_slice() {
            [Reply::Done] => Ok(true),
            [Reply::Exists | Reply::NotFound | Reply::NotStored] => Ok(false),
            other => Err(unexpected("ms", other)),
        }
    }

    /// The CAS of the item under `key` if it still holds `lease`; `None` when someone
    /// else wrote or deleted the key (their value wins).
    async fn lease_cas_from_server(
        &self,
        key: &str,
        wire: &WireKey,
        lease: &[u8],
    ) -> Result<Option<u64>, CacheError> {
        let read = one_command("mg", wire, None, "v c");
        match self.exchange("mg", key, &read).await?.as_slice() {
            [
                Reply::Value {
                    data,
                    cas: Some(cas),
                },
            ] if data.as_ref() == lease => Ok(Some(*cas)),
            [Reply::Value { .. } | Reply::Miss] => Ok(None),
            other => Err(unexpected("mg", other)),
        }
    }
}

impl Cache for MemcachedCache {
    async fn read_or_lease(
        &self,
        key: &str,
        lease: Bytes,
        ttl: Duration,
    ) -> Result<Option<Bytes>, CacheError> {
        let wire = wire_key(key);
        let mut request = Request::with_capacity(160 + lease.len());
        // Add (mode E): the lease is stored only if the key holds nothing. Then read
        // whatever the key holds now: ours, or what was there.
        command(
            &mut request,
            "ms",
            &wire,
            Some(&lease),
            &format!("T{} ME", ttl_secs(ttl)),
        );
        command(&mut request, "mg", &wire, None, "v c");
        match self.exchange("ms ME + mg", key, &request).await?.as_slice() {
            [Reply::Done | Reply::NotStored, Reply::Value { data, cas }] => {
                if data != &lease {
                    return Ok(Some(data.clone()));
                }
                if let Some(cas) = cas {
                    self.lease_cas.insert(lease, *cas);
                }
                Ok(None)
            }
            // Deleted between the add and the read: nothing to serve and no lease held;
            // the fill will find no lease and store nothing.
            [Reply::Done | Reply::NotStored, Reply::Miss] => Ok(None),
            other => Err(unexpected("ms ME + mg", other)),
        }
    }

    async fn fill(
        &self,
        key: &str,
        lease: Bytes,
        value: Bytes,
        ttl: Duration,
    ) -> Result<bool, CacheError> {
        self.replace_lease(key, &lease, &value, ttl).await
    }

    async fn set(&self, key: &str, value: Bytes, ttl: Duration) -> Result<(), CacheError> {
        let flags = format!("T{}", ttl_secs(ttl));
        let request = one_command("ms", &wire_key(key), Some(&value), &flags);
        match self.exchange("ms", key, &request).await?.as_slice() {
            [Reply::Done] => Ok(()),
            other => Err(unexpected("ms", other)),
        }
    }

    async fn delete(&self, key: &str) -> Result<(), CacheError> {
        let request = one_command("md", &wire_key(key), None, "");
        match self.exchange("md", key, &request).await?.as_slice() {
            [Reply::Done | Reply::NotFound] => Ok(()),
            other => Err(unexpected("md", other)),
        }
    }

    async fn read(&self, key: &str) -> Result<Option<Bytes>, CacheError> {
        self.get(key).await
    }

    fn parts(&self) -> usize {
        self.nodes.len()
    }

    fn part_of(&self, key: &str) -> usize {
        self.node_index(key.as_bytes())
    }

    async fn fill_keeping_copy(
        &self,
        key: &str,
        lease: Bytes,
        value: Bytes,
        ttl: Duration,
        (copy_key, copy, copy_ttl): (&str, Bytes, Duration),
    ) -> Result<bool, CacheError> {
        // The copy (often on another node: not one atomic step) is written before the
        // fill's compare-and-set, and taken back when the fill did not happen. Written
        // after it, the copy could land after an invalidation that came between the two
        // (the entry replaced, then the copy deleted) and bring a removed product's copy
        // back. This way an invalidation before the compare-and-set fails it (and the
        // copy goes), one after it comes after the copy too. A copy that cannot be
        // written (its node is down) only loses STALE cover: the entry is filled anyway.
        let copied = self.set(copy_key, copy, copy_ttl).await;
        if let Err(err) = &copied {
            tracing::warn!(key = copy_key, error = %err, "copy not written; filling without it");
        }
        let filled = self.replace_lease(key, &lease, &value, ttl).await;
        // Not filled, or not known to be (an error): the copy goes (at worst STALE cover
        // is lost until the next fill).
        if copied.is_ok()
            && !matches!(filled, Ok(true))
            && let Err(err) = self.delete(copy_key).await
        {
            tracing::warn!(key = copy_key, error = %err, "copy of a failed fill left");
        }
        filled
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_map_to_valid_memcached_keys_without_collisions() {
        // GIVEN keys: printable, with spaces and unicode, long ones, NUL-prefixed ones
        let long_ascii = format!("product:{}", "a".repeat(256));
        let long_unicode = format!("product:{}", "é".repeat(128));
        let keys = [
            "product:p1".to_owned(),
            "product:a b".to_owned(),
            "product:é😀".to_owned(),
            format!("product:{}", "a".repeat(242)),
            long_ascii.clone(),
            format!("{long_ascii}b"),
            long_unicode.clone(),
            format!("{long_unicode} "),
            "\0x".to_owned(),
        ];
        let mut seen = std::collections::HashSet::new();
        for key in &keys {
            let wire = wire_key(key);
            // THEN each is at most 250 bytes of printable ASCII, and its own
            assert!(wire.text.len() <= MAX_KEY, "{key:?} -> {wire:?}");
            assert!(wire.text.bytes().all(|b| b.is_ascii_graphic()), "{wire:?}");
            let raw = if wire.binary {
                base64::engine::general_purpose::STANDARD
                    .decode(&wire.text)
                    .unwrap()
            } else {
                wire.text.clone().into_bytes()
            };
            assert!(seen.insert(raw), "{key:?} collides");
        }
        // AND short printable keys read plainly; hashed ones start with NUL
        assert_eq!(wire_key("product:p1").text, "product:p1");
        let hashed = base64::engine::general_purpose::STANDARD
            .decode(wire_key(&long_ascii).text)
            .unwrap();
        assert_eq!((hashed.len(), hashed[0]), (33, 0));
    }

    #[test]
    fn a_lease_cas_is_given_once_and_the_map_stays_bounded() {
        // GIVEN a remembered lease CAS
        let map = LeaseCas::default();
        map.insert(Bytes::from_static(b"lease-1"), 42);
        // THEN the fill gets it once
        assert_eq!(map.remove(b"lease-1"), Some(42));
        assert_eq!(map.remove(b"lease-1"), None);
        // AND however many leases are never filled, the map holds at most its bound
        for n in 0..(LEASE_CAS_ENTRIES + 10) {
            map.insert(Bytes::from(n.to_string()), n as u64);
        }
        let len = map.entries.lock().unwrap().len();
        assert!(len <= LEASE_CAS_ENTRIES, "{len}");
        let last = LEASE_CAS_ENTRIES + 9;
        assert_eq!(map.remove(last.to_string().as_bytes()), Some(last as u64));
    }

    #[test]
    fn ttls_are_whole_seconds_never_zero_nor_read_as_dates() {
        assert_eq!(ttl_secs(Duration::from_millis(1)), 1);
        assert_eq!(ttl_secs(Duration::from_millis(3_001)), 4);
        assert_eq!(ttl_secs(Duration::from_secs(300)), 300);
        assert_eq!(ttl_secs(Duration::from_secs(40 * 24 * 3600)), MAX_TTL_SECS);
    }

    #[tokio::test]
    async fn replies_are_read_one_by_one_with_their_values() {
        // GIVEN the bytes of several replies in a row
        let wire: &[u8] =
            b"HD\r\nVA 5 c42\r\nab\r\nc\r\nEN\r\nNS\r\nSERVER_ERROR object too large for cache\r\n";
        let mut reader = tokio::io::BufReader::new(wire);
        let mut line = Vec::new();
        let mut replies = Vec::new();
        for _ in 0..5 {
            replies.push(read_reply(&mut reader, &mut line).await.unwrap().0);
        }
        // THEN each is read whole, values with CRLF inside included
        assert_eq!(
            replies,
            [
                Reply::Done,
                Reply::Value {
                    data: Bytes::from_static(b"ab\r\nc"),
                    cas: Some(42)
                },
                Reply::Miss,
                Reply::NotStored,
                Reply::ServerError("object too large for cache".into()),
            ]
        );
        // AND a connection that ends, or says something unknown, is an error
        assert!(read_reply(&mut reader, &mut line).await.is_err());
        let mut odd = tokio::io::BufReader::new(&b"WAT\r\n"[..]);
        assert!(read_reply(&mut odd, &mut line).await.is_err());
    }

    #[tokio::test]
    async fn a_value_header_announcing_more_than_arrives_is_an_error_not_a_crash() {
        // GIVEN a server that announces values it never sends: the largest size, and a
        // gigabyte, each followed by a few bytes and the end of the connection
        for header in [
            format!("VA {} c1\r\nabc", usize::MAX),
            "VA 1073741824 c1\r\nabc".to_owned(),
        ] {
            let mut reader = tokio::io::BufReader::new(header.as_bytes());
            let mut line = Vec::new();
            // WHEN the reply is read THEN it is an error (no overflow, no allocation of
            // what was announced before it arrives)
            assert!(
                read_reply(&mut reader, &mut line).await.is_err(),
                "{header}"
            );
        }
    }
}

#[cfg(test)]
mod hostile_server {
    use super::*;

    /// A memcached stand-in that answers each `mg` with the value of the key asked for
    /// (echoing its token), and each `md` twice.
    async fn answering_deletes_twice() -> u16 {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        tokio::spawn(async move {
            while let Ok((stream, _)) = listener.accept().await {
                tokio::spawn(async move {
                    let mut stream = tokio::io::BufStream::new(stream);
                    let mut line = String::new();
                    while stream.read_line(&mut line).await.unwrap_or(0) > 0 {
                        let words: Vec<&str> = line.split_whitespace().collect();
                        let opaque = words.iter().find(|w| w.starts_with('O')).unwrap();
                        let reply = match words[0] {
                            "mg" => format!("VA {} {opaque}\r\n{}\r\n", words[1].len(), words[1]),
                            _ => format!("HD {opaque}\r\nHD {opaque}\r\n"),
                        };
                        stream.write_all(reply.as_bytes()).await.unwrap();
                        stream.flush().await.unwrap();
                        line.clear();
                    }
                });
            }
        });
        port
    }

    #[tokio::test]
    async fn a_server_that_answers_twice_never_has_one_key_read_as_another() {
        // GIVEN a server that answers a delete twice, on one connection
        let port = answering_deletes_twice().await;
        let url = MemcachedUrl::try_from(format!("memcache://127.0.0.1:{port}")).unwrap();
        let cache = MemcachedCache::new(&url, Duration::from_millis(500), 1).unwrap();
        cache.delete("product:gone").await.unwrap();
        // WHEN keys are read afterwards
        for key in ["product:b", "product:c", "product:d"] {
            // THEN each read is that key's value or an error, never another key's value
            match cache.get(key).await {
                Ok(value) => assert_eq!(value.as_deref(), Some(key.as_bytes())),
                Err(err) => assert!(key == "product:b", "{key}: {err:?}"),
            }
        }
    }
}
