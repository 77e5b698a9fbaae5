//! The secret read's connection, opened as start-up begins. With the AUTH token in
//! Secrets Manager, a cold hit's longest chain is that read: the SDK's configuration,
//! its client and the request's signing (CPU, milliseconds on a small Lambda), and only
//! then TCP, TLS and the call. TCP and TLS need none of that CPU, so they start here as
//! soon as the configuration names the endpoint, beside it, and the SDK's first request
//! to that endpoint goes over this connection instead of opening its own. Any other
//! request, a retry, or a request after this connection failed, closed or grew old
//! takes the SDK's own client as before. Only the Secrets Manager client is given it
//! (`aws::AuthSecret`): a DynamoDB client sharing the endpoint (one emulator for all)
//! keeps its own connections.

use std::fmt;
use std::io;
use std::pin::Pin;
use std::sync::{Arc, Mutex, PoisonError};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use aws_smithy_runtime_api::client::http::{
    HttpClient, HttpConnector, HttpConnectorFuture, HttpConnectorSettings, SharedHttpClient,
    SharedHttpConnector,
};
use aws_smithy_runtime_api::client::orchestrator::{HttpRequest, HttpResponse};
use aws_smithy_runtime_api::client::result::ConnectorError;
use aws_smithy_runtime_api::client::runtime_components::{
    RuntimeComponents, RuntimeComponentsBuilder,
};
use aws_smithy_types::body::SdkBody;
use aws_smithy_types::config_bag::ConfigBag;
use hyper_util::client::legacy::connect::{Connected, Connection};
use hyper_util::rt::{TokioExecutor, TokioIo};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpStream;
use tokio::sync::oneshot;
use tokio_rustls::client::TlsStream;

use crate::adapters::dns::EarlyLookups;
use crate::error::BoxError;
use crate::tls::TrustedRoots;

/// How old a connection opened at start-up may be when a request takes it; then it is
/// closed, taken or not (a wrong guess of the endpoint leaves it untaken), and a request
/// opens its own. A cold start takes it within milliseconds.
pub const EARLY_CONNECTION_MAX_AGE: Duration = Duration::from_secs(5);

/// How long a request waits for the connection still opening before opening its own:
/// far more than a TCP and TLS handshake in one region take, far less than a SYN lost
/// and sent again (1 s), after which a fresh connection is the quicker way.
pub const EARLY_CONNECTION_WAIT: Duration = Duration::from_millis(250);

/// A connection to one endpoint, opened at start-up for the first request to it. Clones
/// share it; the default holds none.
#[derive(Clone, Default)]
pub struct EarlyConnection {
    early: Option<Arc<Early>>,
}

struct Early {
    origin: Origin,
    started: Instant,
    /// The connection, once open (or why it could not be); taken by the first request.
    opening: Mutex<Option<oneshot::Receiver<io::Result<Stream>>>>,
}

impl fmt::Debug for EarlyConnection {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.early {
            None => f.write_str("EarlyConnection(none)"),
            Some(early) => write!(f, "EarlyConnection({:?})", early.origin),
        }
    }
}

/// Scheme, host and port: what a request must go to for the connection to serve it.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Origin {
    tls: bool,
    host: String,
    port: u16,
}

impl Origin {
    /// `None` for anything but an `http` or `https` URL with a host.
    fn of(url: &url::Url) -> Option<Self> {
        let tls = match url.scheme() {
            "https" => true,
            "http" => false,
            _ => return None,
        };
        Some(Self {
            tls,
            // Lowercase: the URL parser makes it so.
            host: url.host_str()?.to_owned(),
            port: url.port_or_known_default()?,
        })
    }
}

impl EarlyConnection {
    /// Starts opening a connection to `endpoint`'s origin (TCP, and for `https` TLS
    /// trusting `roots`, as the SDK's client does), its host resolved through `lookups`,
    /// within `timeout`. Not for an endpoint reached through an HTTP proxy
    /// ([`proxied`]): this connection would go around it.
    pub fn open(
        endpoint: &url::Url,
        roots: TrustedRoots,
        lookups: EarlyLookups,
        timeout: Duration,
    ) -> Self {
        Self::open_with(endpoint, move || roots.client_config(), lookups, timeout)
    }

    /// [`EarlyConnection::open`], TLS configured by `tls` (made on a blocking thread
    /// started here: parsing roots is CPU; the connection opens on the current runtime).
    pub fn open_with(
        endpoint: &url::Url,
        tls: impl FnOnce() -> Result<rustls::ClientConfig, BoxError> + Send + 'static,
        lookups: EarlyLookups,
        timeout: Duration,
    ) -> Self {
        let Some(origin) = Origin::of(endpoint) else {
            return Self::default();
        };
        let tls = origin.tls.then(|| {
            tokio::task::spawn_blocking(move || {
                let mut config = tls()?;
                config.alpn_protocols = vec![b"http/1.1".to_vec()];
                Ok::<_, BoxError>(tokio_rustls::TlsConnector::from(Arc::new(config)))
            })
        });
        let (opened, opening) = oneshot::channel();
        let target = origin.clone();
        let uri = format!("http://{}:{}", origin.host, origin.port);
        tokio::spawn(async move {
            let open = async {
                let tcp = connect(uri, lookups).await?;
                let Some(tls) = tls else {
                    return Ok(Stream::Plain(tcp));
                };
                let connector = tls
                    .await
                    .map_err(io::Error::other)?
                    .map_err(io::Error::other)?;
                // An IPv6 address without the brackets URLs write it in.
                let host = target.host.trim_start_matches('[').trim_end_matches(']');
                let name = rustls::pki_types::ServerName::try_from(host.to_owned())
                    .map_err(|err| io::Error::new(io::ErrorKind::InvalidInput, err))?;
                Ok(Stream::Tls(Box::new(connector.connect(name, tcp).await?)))
            };
            let result = match tokio::time::timeout(timeout, open).await {
                Ok(result) => result,
                Err(_) => Err(io::Error::new(io::ErrorKind::TimedOut, "connect timed out")),
            };
            if let Err(err) = &result {
                tracing::debug!(host = %target.host, error = %err, "the early connection could not be opened; the first request will open its own");
            }
            // No taker left (the client went away): the connection closes with it.
            let _ = opened.send(result);
        });
        let early = Arc::new(Early {
            origin,
            started: Instant::now(),
            opening: Mutex::new(Some(opening)),
        });
        // Past its age nobody takes it: closed, not kept for the life of the process.
        let closing = Arc::downgrade(&early);
        tokio::spawn(async move {
            tokio::time::sleep(EARLY_CONNECTION_MAX_AGE).await;
            if let Some(early) = closing.upgrade() {
                early.take_opening();
            }
        });
        Self { early: Some(early) }
    }

    /// The SDK's HTTP client `inner`, its first request to this connection's origin
    /// sent over it.
    pub fn serving_first_request(&self, inner: SharedHttpClient) -> SharedHttpClient {
        if self.early.is_none() {
            return inner;
        }
        SharedHttpClient::new(FirstRequestEarly {
            inner,
            early: self.clone(),
        })
    }

    /// The connection, for a request to `uri`: only the first one to its origin, and
    /// only while it is recent.
    fn take(&self, uri: &str) -> Option<oneshot::Receiver<io::Result<Stream>>> {
        let early = self.early.as_ref()?;
        let origin = Origin::of(&url::Url::parse(uri).ok()?)?;
        if origin != early.origin {
            return None;
        }
        let opening = early.take_opening()?;
        // Too old: dropped here, which closes it.
        (early.started.elapsed() <= EARLY_CONNECTION_MAX_AGE).then_some(opening)
    }
}

impl Early {
    fn take_opening(&self) -> Option<oneshot::Receiver<io::Result<Stream>>> {
        self.opening
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .take()
    }
}

/// Whether requests to `endpoint` go through an HTTP proxy, by the environment's
/// `HTTP_PROXY`, `HTTPS_PROXY`, `ALL_PROXY` and `NO_PROXY`: the rules the SDK's client
/// follows (`ProxyConfig::from_env`).
pub fn proxied(endpoint: &url::Url) -> bool {
    endpoint.as_str().parse::<http::Uri>().is_ok_and(|uri| {
        hyper_util::client::proxy::matcher::Matcher::from_env()
            .intercept(&uri)
            .is_some()
    })
}

/// A TCP connection to `uri`'s host and port, its name resolved through `lookups`, by
/// hyper's connector as the SDK's client connects: Nagle off, and where the name has
/// addresses of both families, the second family tried 300 ms after the first.
async fn connect(uri: String, lookups: EarlyLookups) -> io::Result<TcpStream> {
    let uri: http::Uri = uri
        .parse()
        .map_err(|err| io::Error::new(io::ErrorKind::InvalidInput, err))?;
    let mut connector =
        hyper_util::client::legacy::connect::HttpConnector::new_with_resolver(Resolver(lookups));
    connector.set_nodelay(true);
    // This connector only opens TCP; TLS comes after, for `https`.
    connector.enforce_http(false);
    let tcp = tower_service::Service::call(&mut connector, uri)
        .await
        .map_err(io::Error::other)?;
    Ok(tcp.into_inner())
}

/// [`EarlyLookups`] as the resolver of hyper's connector.
#[derive(Clone)]
struct Resolver(EarlyLookups);

impl tower_service::Service<hyper_util::client::legacy::connect::dns::Name> for Resolver {
    type Response = std::vec::IntoIter<std::net::SocketAddr>;
    type Error = io::Error;
    type Future = Pin<Box<dyn Future<Output = io::Result<Self::Response>> + Send>>;

    fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<io::Result<()>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, name: hyper_util::client::legacy::connect::dns::Name) -> Self::Future {
        let lookups = self.0.clone();
        // hyper's connector sets the port on each address.
        Box::pin(async move { Ok(lookups.resolve(name.as_str(), 0).await?.into_iter()) })
    }
}

/// The SDK's HTTP client, whose connectors send the first request to the early
/// connection's origin over it.
#[derive(Debug)]
struct FirstRequestEarly {
    inner: SharedHttpClient,
    early: EarlyConnection,
}

impl HttpClient for FirstRequestEarly {
    fn http_connector(
        &self,
        settings: &HttpConnectorSettings,
        components: &RuntimeComponents,
    ) -> SharedHttpConnector {
        SharedHttpConnector::new(FirstRequestEarlyConnector {
            inner: self.inner.http_connector(settings, components),
            early: self.early.clone(),
        })
    }

    fn validate_base_client_config(
        &self,
        components: &RuntimeComponentsBuilder,
        cfg: &ConfigBag,
    ) -> Result<(), aws_smithy_runtime_api::box_error::BoxError> {
        self.inner.validate_base_client_config(components, cfg)
    }

    fn validate_final_config(
        &self,
        components: &RuntimeComponents,
        cfg: &ConfigBag,
    ) -> Result<(), aws_smithy_runtime_api::box_error::BoxError> {
        self.inner.validate_final_config(components, cfg)
    }

    fn connector_metadata(
        &self,
    ) -> Option<aws_smithy_runtime_api::client::connector_metadata::ConnectorMetadata> {
        self.inner.connector_metadata()
    }
}

#[derive(Debug)]
struct FirstRequestEarlyConnector {
    inner: SharedHttpConnector,
    early: EarlyConnection,
}

impl HttpConnector for FirstRequestEarlyConnector {
    fn call(&self, request: HttpRequest) -> HttpConnectorFuture {
        let Some(opening) = self.early.take(request.uri()) else {
            return self.inner.call(request);
        };
        let inner = self.inner.clone();
        // In each case where the connection cannot serve, the request opens its own
        // within the same attempt, rather than fail it and wait out a backoff.
        HttpConnectorFuture::new(async move {
            let stream = match tokio::time::timeout(EARLY_CONNECTION_WAIT, opening).await {
                Ok(Ok(Ok(stream))) if !stream.closed_by_peer() => stream,
                // Not open yet, could not be opened, or closed by the endpoint since.
                _ => return inner.call(request).await,
            };
            // Kept to send again should the connection turn out closed before any
            // answer came (a TLS close the check above cannot see, or one racing the
            // send): nothing was answered, and reading a secret changes nothing.
            let again = request.try_clone();
            match (send_over(stream, request).await, again) {
                (Err(Unsent::Closed(_)), Some(again)) => inner.call(again).await,
                (Err(Unsent::Closed(err) | Unsent::Failed(err)), _) => Err(err),
                (Ok(response), _) => Ok(response),
            }
        })
    }
}

/// Why a request sent over the early connection got no answer.
enum Unsent {
    /// The connection ended before a response began.
    Closed(ConnectorError),
    Failed(ConnectorError),
}

/// Sends `request` over `stream` through hyper's client, as the SDK's own client would
/// (origin-form request line, `Host` header). A failure is an I/O error: the caller sends
/// the request again on the SDK's own client when the connection closed before any
/// answer, and the SDK retries the rest as any I/O error.
async fn send_over(stream: Stream, request: HttpRequest) -> Result<HttpResponse, Unsent> {
    let request = request
        .try_into_http1x()
        .map_err(|err| Unsent::Failed(ConnectorError::user(err.into())))?;
    let client = hyper_util::client::legacy::Client::builder(TokioExecutor::new())
        .build::<_, SdkBody>(Handover::of(stream));
    let response = client.request(request).await.map_err(|err| {
        let closed = std::error::Error::source(&err)
            .and_then(|source| source.downcast_ref::<hyper::Error>())
            .is_some_and(|err| err.is_incomplete_message() || err.is_closed() || err.is_canceled());
        let err = ConnectorError::io(err.into());
        if closed {
            Unsent::Closed(err)
        } else {
            Unsent::Failed(err)
        }
    })?;
    HttpResponse::try_from(response.map(SdkBody::from_body_1_x))
        .map_err(|err| Unsent::Failed(ConnectorError::other(err.into(), None)))
}

/// A hyper connector that hands over one connection, once.
#[derive(Clone)]
struct Handover(Arc<Mutex<Option<Stream>>>);

impl Handover {
    fn of(stream: Stream) -> Self {
        Self(Arc::new(Mutex::new(Some(stream))))
    }
}

impl tower_service::Service<http::Uri> for Handover {
    type Response = TokioIo<Stream>;
    type Error = io::Error;
    type Future = std::future::Ready<io::Result<TokioIo<Stream>>>;

    fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<io::Result<()>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, _: http::Uri) -> Self::Future {
        let stream = self.0.lock().unwrap_or_else(PoisonError::into_inner).take();
        std::future::ready(stream.map(TokioIo::new).ok_or_else(|| {
            io::Error::new(io::ErrorKind::NotConnected, "the early connection was used")
        }))
    }
}

/// The connection: plain TCP for an `http` endpoint (emulators), else TLS over it.
enum Stream {
    Plain(TcpStream),
    Tls(Box<TlsStream<TcpStream>>),
}

impl Stream {
    /// Whether the other end closed the connection (or reset it), as far as the socket
    /// already knows; it reads nothing.
    fn closed_by_peer(&self) -> bool {
        let tcp = match self {
            Self::Plain(tcp) => tcp,
            Self::Tls(tls) => tls.get_ref().0,
        };
        let mut byte = [0; 1];
        let mut peeked = ReadBuf::new(&mut byte);
        let mut context = Context::from_waker(std::task::Waker::noop());
        // Bytes waiting (in TLS 1.3, the server's session tickets) or none yet: open.
        matches!(
            tcp.poll_peek(&mut context, &mut peeked),
            Poll::Ready(Ok(0) | Err(_))
        )
    }
}

impl Connection for Stream {
    fn connected(&self) -> Connected {
        Connected::new()
    }
}

impl AsyncRead for Stream {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Self::Plain(tcp) => Pin::new(tcp).poll_read(cx, buf),
            Self::Tls(tls) => Pin::new(tls.as_mut()).poll_read(cx, buf),
        }
    }
}

impl AsyncWrite for Stream {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        match self.get_mut() {
            Self::Plain(tcp) => Pin::new(tcp).poll_write(cx, buf),
            Self::Tls(tls) => Pin::new(tls.as_mut()).poll_write(cx, buf),
        }
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Self::Plain(tcp) => Pin::new(tcp).poll_flush(cx),
            Self::Tls(tls) => Pin::new(tls.as_mut()).poll_flush(cx),
        }
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Self::Plain(tcp) => Pin::new(tcp).poll_shutdown(cx),
            Self::Tls(tls) => Pin::new(tls.as_mut()).poll_shutdown(cx),
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::time::{Duration, Instant};

    use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};

    use super::{EarlyConnection, EarlyLookups};
    use crate::adapters::aws;

    const TOKEN: &str = "t0ken";

    /// What a [`secrets_endpoint`] does with its first connection.
    #[derive(Clone, Copy, PartialEq)]
    enum First {
        Answered,
        /// Closed as soon as it is accepted.
        Closed,
        /// Closed once the TLS handshake is done (with TLS's close_notify).
        ClosedAfterHandshake,
        /// Held open and never answered, not even its handshake.
        Silent,
    }

    /// A Secrets Manager stand-in on 127.0.0.1 answering every request with a secret
    /// holding [`TOKEN`] (over TLS with `tls`); the connections it accepted, counted as
    /// they are accepted.
    async fn secrets_endpoint(
        tls: Option<tokio_rustls::TlsAcceptor>,
        first: First,
    ) -> (url::Url, Arc<AtomicUsize>) {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let scheme = if tls.is_some() { "https" } else { "http" };
        let host = if tls.is_some() {
            "localhost"
        } else {
            "127.0.0.1"
        };
        let port = listener.local_addr().unwrap().port();
        let url = url::Url::parse(&format!("{scheme}://{host}:{port}")).unwrap();
        let accepted = Arc::new(AtomicUsize::new(0));
        let counted = Arc::clone(&accepted);
        tokio::spawn(async move {
            while let Ok((tcp, _)) = listener.accept().await {
                let is_first = counted.fetch_add(1, Ordering::SeqCst) == 0;
                if is_first && first == First::Closed {
                    continue;
                }
                let close = is_first && first == First::ClosedAfterHandshake;
                let silent = is_first && first == First::Silent;
                let tls = tls.clone();
                tokio::spawn(async move {
                    if silent {
                        tokio::time::sleep(Duration::from_secs(60)).await;
                        drop(tcp);
                        return;
                    }
                    match tls {
                        Some(tls) => {
                            if let Ok(mut stream) = tls.accept(tcp).await {
                                if close {
                                    let _ = stream.shutdown().await;
                                } else {
                                    answer(stream).await;
                                }
                            }
                        }
                        None => answer(tcp).await,
                    }
                });
            }
        });
        (url, accepted)
    }

    /// Answers each whole request (headers, then `content-length` bytes) in turn.
    async fn answer(mut stream: impl tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin) {
        let body = format!(r#"{{"Name":"auth","SecretString":"{TOKEN}"}}"#);
        let reply = format!(
            "HTTP/1.1 200 OK\r\ncontent-type: application/x-amz-json-1.1\r\ncontent-length: {}\r\n\r\n{body}",
            body.len()
        );
        let mut read = Vec::new();
        let mut chunk = [0; 4096];
        loop {
            while let Some(length) = request_length(&read) {
                read.drain(..length);
                if stream.write_all(reply.as_bytes()).await.is_err() {
                    return;
                }
            }
            match stream.read(&mut chunk).await {
                Ok(0) | Err(_) => return,
                Ok(n) => read.extend_from_slice(&chunk[..n]),
            }
        }
    }

    /// The length of the whole request at the start of `read`, once it is all there.
    fn request_length(read: &[u8]) -> Option<usize> {
        let headers = read.windows(4).position(|w| w == b"\r\n\r\n")? + 4;
        let text = String::from_utf8_lossy(&read[..headers]).to_ascii_lowercase();
        let body: usize = text
            .lines()
            .find_map(|line| line.strip_prefix("content-length:"))
            .map_or(0, |value| value.trim().parse().unwrap());
        (read.len() >= headers + body).then_some(headers + body)
    }

    /// A self-signed certificate for `localhost`: the server's, and the only root the
    /// clients trust.
    fn localhost_certificate() -> (tokio_rustls::TlsAcceptor, Vec<u8>) {
        let certified = rcgen::generate_simple_self_signed(["localhost".to_owned()]).unwrap();
        let config = rustls::ServerConfig::builder_with_provider(Arc::new(
            rustls::crypto::aws_lc_rs::default_provider(),
        ))
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_no_client_auth()
        .with_single_cert(
            vec![certified.cert.der().clone()],
            rustls::pki_types::PrivateKeyDer::Pkcs8(certified.signing_key.serialize_der().into()),
        )
        .unwrap();
        (
            tokio_rustls::TlsAcceptor::from(Arc::new(config)),
            certified.cert.pem().into_bytes(),
        )
    }

    /// A client configuration trusting `pem` alone.
    fn trusting(pem: &[u8]) -> Result<rustls::ClientConfig, crate::error::BoxError> {
        use rustls::pki_types::{CertificateDer, pem::PemObject as _};
        let mut roots = rustls::RootCertStore::empty();
        roots.add(CertificateDer::from_pem_slice(pem)?)?;
        Ok(rustls::ClientConfig::builder_with_provider(Arc::new(
            rustls::crypto::aws_lc_rs::default_provider(),
        ))
        .with_safe_default_protocol_versions()?
        .with_root_certificates(roots)
        .with_no_client_auth())
    }

    /// An early connection to `endpoint` over TLS trusting `pem`, opening within
    /// `timeout`.
    fn open_trusting(endpoint: &url::Url, pem: &[u8], timeout: Duration) -> EarlyConnection {
        let pem = pem.to_vec();
        EarlyConnection::open_with(
            endpoint,
            move || trusting(&pem),
            EarlyLookups::default(),
            timeout,
        )
    }

    /// Reads the secret at `endpoint` through the SDK's HTTPS client (trusting `pem`
    /// where given) with `early` serving its first request.
    async fn read_secret(
        early: &EarlyConnection,
        endpoint: &url::Url,
        pem: Option<&[u8]>,
    ) -> Result<String, String> {
        read_secret_retrying(early, endpoint, pem, 3).await
    }

    /// [`read_secret`], in at most `attempts`.
    async fn read_secret_retrying(
        early: &EarlyConnection,
        endpoint: &url::Url,
        pem: Option<&[u8]>,
        attempts: u32,
    ) -> Result<String, String> {
        let trust = match pem {
            Some(pem) => aws_smithy_http_client::tls::TrustStore::empty().with_pem_certificate(pem),
            None => aws_smithy_http_client::tls::TrustStore::default(),
        };
        let client = early.serving_first_request(aws::https_client(trust, EarlyLookups::default()));
        let sdk = aws_config::defaults(aws_config::BehaviorVersion::latest())
            .http_client(client)
            .region(aws_config::Region::new("eu-west-1"))
            .credentials_provider(aws_sdk_secretsmanager::config::Credentials::new(
                "AKID", "secret", None, None, "test",
            ))
            .endpoint_url(endpoint.as_str())
            .retry_config(aws_config::retry::RetryConfig::standard().with_max_attempts(attempts))
            .load()
            .await;
        aws_sdk_secretsmanager::Client::new(&sdk)
            .get_secret_value()
            .secret_id("auth")
            .send()
            .await
            .map(|read| read.secret_string.unwrap_or_default())
            .map_err(|err| {
                format!(
                    "{:?}",
                    aws_smithy_types::error::display::DisplayErrorContext(err)
                )
            })
    }

    async fn until(what: &str, done: impl Fn() -> bool) {
        let deadline = Instant::now() + Duration::from_secs(3);
        while !done() {
            assert!(Instant::now() < deadline, "{what}");
            tokio::time::sleep(Duration::from_millis(2)).await;
        }
    }

    #[tokio::test]
    async fn the_first_request_to_the_endpoint_goes_over_the_connection_opened_before_it() {
        // GIVEN an endpoint over TLS, and a connection opened to it before any SDK
        // client exists
        let (acceptor, pem) = localhost_certificate();
        let (endpoint, accepted) = secrets_endpoint(Some(acceptor), First::Answered).await;
        let early = open_trusting(&endpoint, &pem, Duration::from_secs(1));
        until("the early connection was not opened", || {
            accepted.load(Ordering::SeqCst) == 1
        })
        .await;
        // WHEN the SDK reads the secret THEN it is read over that connection: no other
        let read = read_secret(&early, &endpoint, Some(&pem)).await;
        assert_eq!(read.as_deref(), Ok(TOKEN));
        assert_eq!(accepted.load(Ordering::SeqCst), 1, "a second connection");
        // WHEN it reads it again THEN on a connection of its own: the early one served
        // one request
        let read = read_secret(&early, &endpoint, Some(&pem)).await;
        assert_eq!(read.as_deref(), Ok(TOKEN));
        assert_eq!(accepted.load(Ordering::SeqCst), 2);
    }

    #[tokio::test]
    async fn a_connection_the_endpoint_closed_leaves_the_request_to_the_sdk_s_own() {
        // GIVEN an early connection the endpoint closed before the request came
        let (endpoint, accepted) = secrets_endpoint(None, First::Closed).await;
        let early = EarlyConnection::open_with(
            &endpoint,
            || unreachable!("plain HTTP"),
            EarlyLookups::default(),
            Duration::from_secs(1),
        );
        until("the early connection was not opened", || {
            accepted.load(Ordering::SeqCst) == 1
        })
        .await;
        // WHEN the SDK reads the secret, in one attempt THEN it is read, on a connection
        // of its own: the closed one was not tried
        let read = read_secret_retrying(&early, &endpoint, None, 1).await;
        assert_eq!(read.as_deref(), Ok(TOKEN));
        assert_eq!(accepted.load(Ordering::SeqCst), 2);
    }

    #[tokio::test]
    async fn a_tls_connection_the_endpoint_closed_leaves_the_request_to_the_sdk_s_own() {
        // GIVEN an early TLS connection the endpoint closed once the handshake was done:
        // its close_notify is data on the socket, which looks open
        let (acceptor, pem) = localhost_certificate();
        let (endpoint, accepted) =
            secrets_endpoint(Some(acceptor), First::ClosedAfterHandshake).await;
        let early = open_trusting(&endpoint, &pem, Duration::from_secs(1));
        until("the early connection was not opened", || {
            accepted.load(Ordering::SeqCst) == 1
        })
        .await;
        tokio::time::sleep(Duration::from_millis(50)).await;
        // WHEN the SDK reads the secret, in one attempt THEN it is read, on a connection
        // of its own: the request found the connection closed and went again
        let read = read_secret_retrying(&early, &endpoint, Some(&pem), 1).await;
        assert_eq!(read.as_deref(), Ok(TOKEN));
        assert_eq!(accepted.load(Ordering::SeqCst), 2);
    }

    #[tokio::test]
    async fn a_request_waits_for_a_connection_still_opening_only_briefly() {
        // GIVEN an early TLS connection whose handshake the endpoint never answers,
        // given all the time in the world to open
        let (acceptor, pem) = localhost_certificate();
        let (endpoint, accepted) = secrets_endpoint(Some(acceptor), First::Silent).await;
        let early = open_trusting(&endpoint, &pem, Duration::from_secs(60));
        // WHEN the SDK reads the secret, in one attempt THEN it is read well before the
        // early connection could give up: on a connection of its own
        let read = tokio::time::timeout(
            Duration::from_secs(5),
            read_secret_retrying(&early, &endpoint, Some(&pem), 1),
        )
        .await
        .expect("the request waited for the early connection");
        assert_eq!(read.as_deref(), Ok(TOKEN));
        assert_eq!(accepted.load(Ordering::SeqCst), 2);
    }

    #[tokio::test]
    async fn a_connection_that_could_not_open_leaves_the_request_to_the_sdk_s_own() {
        // GIVEN an early connection to `localhost` that fails: start-up's lookup said
        // 127.0.0.3, where nothing listens
        let (endpoint, accepted) = secrets_endpoint(None, First::Answered).await;
        let mut endpoint = endpoint;
        endpoint.set_host(Some("localhost")).unwrap();
        let lookups = EarlyLookups::default().with_answer(
            "localhost",
            Instant::now(),
            Some(vec![std::net::Ipv4Addr::new(127, 0, 0, 3).into()]),
        );
        let early = EarlyConnection::open_with(
            &endpoint,
            || unreachable!("plain HTTP"),
            lookups,
            Duration::from_secs(1),
        );
        // WHEN the SDK reads the secret, in one attempt THEN it is read, on a connection
        // of its own
        let read = read_secret_retrying(&early, &endpoint, None, 1).await;
        assert_eq!(read.as_deref(), Ok(TOKEN));
        assert_eq!(accepted.load(Ordering::SeqCst), 1);
    }

    #[tokio::test]
    async fn a_connection_nobody_takes_is_closed_once_too_old_to_take() {
        // GIVEN a connection opened at start-up to an endpoint no request goes to (a
        // wrong guess), the endpoint noting when it closes
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let endpoint =
            url::Url::parse(&format!("http://{}", listener.local_addr().unwrap())).unwrap();
        let (closed, closing) = tokio::sync::oneshot::channel();
        tokio::spawn(async move {
            let (mut tcp, _) = listener.accept().await.unwrap();
            let _ = tcp.read(&mut [0; 1]).await;
            let _ = closed.send(Instant::now());
        });
        let opened = Instant::now();
        let _early = EarlyConnection::open_with(
            &endpoint,
            || unreachable!("plain HTTP"),
            EarlyLookups::default(),
            Duration::from_secs(1),
        );
        // THEN it is closed once it is too old for a request to take, not kept open for
        // the life of the process
        let closed_at = tokio::time::timeout(super::EARLY_CONNECTION_MAX_AGE * 2, closing)
            .await
            .expect("still open")
            .unwrap();
        assert!(closed_at - opened >= super::EARLY_CONNECTION_MAX_AGE);
    }

    #[tokio::test]
    async fn only_the_first_recent_request_to_its_origin_takes_it() {
        let early = |started: Instant| {
            let (_, opening) = tokio::sync::oneshot::channel();
            EarlyConnection {
                early: Some(Arc::new(super::Early {
                    origin: super::Origin::of(&url::Url::parse("https://sm.test").unwrap())
                        .unwrap(),
                    started,
                    opening: std::sync::Mutex::new(Some(opening)),
                })),
            }
        };
        // GIVEN a connection opened to https://sm.test just now
        let now = early(Instant::now());
        // THEN a request elsewhere does not take it
        for elsewhere in [
            "http://sm.test/",
            "https://sm.test:8443/",
            "https://other.test/",
            "not a url",
        ] {
            assert!(now.take(elsewhere).is_none(), "{elsewhere}");
        }
        // THEN the first request there takes it (whatever the path or the host's case),
        // the next does not
        assert!(
            now.take("https://SM.test:443/?Action=GetSecretValue")
                .is_some()
        );
        assert!(now.take("https://sm.test/").is_none());
        // GIVEN one opened longer ago than a cold start takes THEN nobody takes it
        let long_ago = Instant::now()
            .checked_sub(super::EARLY_CONNECTION_MAX_AGE + Duration::from_secs(1))
            .expect("a machine up for more than 6 s");
        assert!(early(long_ago).take("https://sm.test/").is_none());
        // GIVEN none THEN nothing is taken
        assert!(
            EarlyConnection::default()
                .take("https://sm.test/")
                .is_none()
        );
    }
}
