//! One HTTP server for both of the operator's ports: the admission webhook over TLS
//! (HTTP/1.1 and HTTP/2) and the plain HTTP/1.1 health and metrics port. It knows nothing of
//! admission: every request, its body collected, goes to a [`Handler`].
//!
//! - **TLS** ([`Transport::Tls`]): rustls on aws-lc-rs, TLS 1.3 and 1.2 only; ALPN offers
//!   `h2` and `http/1.1`. A connection that negotiates `h2` is served as HTTP/2, every other
//!   one as HTTP/1.1 (HTTP/2 over TLS needs ALPN, RFC 9113 §3.2; the API server always offers
//!   it). [`Transport::Plain`] serves HTTP/1.1 only.
//! - **Certificates** are re-read from their files when they change, checked during
//!   handshakes at most once per [`CHECK_INTERVAL`] (no background task, no I/O when
//!   idle). A failed reload keeps the current certificate and logs a warning; connections
//!   in flight are never dropped. Or the certificate is handed over in memory
//!   ([`CertSource::Provided`]) by the operator's certificate manager.
//! - **Limits**: the TLS handshake and, for HTTP/1.1, each request's headers (also the idle
//!   time between keep-alive requests) must arrive within their timeouts; HTTP/2 pings idle
//!   connections and drops those that stop answering. A body over `max_body_bytes` gets 413
//!   without more than that ever being buffered (an announced `Content-Length` over the
//!   limit is refused before reading); the bodies held at once share `max_buffered_body_bytes`.
//!   Once its body is in, past `max_concurrent_requests` a request waits for a handler slot
//!   at most `max_queue_wait` and then gets 503 with `Retry-After: 1`: a short burst is
//!   absorbed, a sustained overload is refused quickly instead of piling up latency, and a
//!   client that never finishes its bodies holds no slot.
//!   Each request is answered within `request_timeout` of its headers arriving (408 if the
//!   body is late, 503 if the handler is). With `max_connections`, a connection past that
//!   many makes the one idle longest close (see `connections.rs`), so that a flood of idle
//!   connections cannot shut out busy ones; with `max_connection_age`, a connection is
//!   closed gracefully (between requests) once that old. HTTP/2 allows 32 concurrent
//!   streams per connection and closes connections that reset streams in a flood.
//! - **Shutdown**: when the `shutdown` future resolves, the listener is closed, idle
//!   connections are closed, in-flight requests finish (HTTP/2 clients get a GOAWAY), and
//!   after `shutdown_grace` whatever is left is dropped.
//!
//! Nothing a client sends can stop the server: accept and handshake errors are logged and
//! the loop goes on.

mod certs;
mod connections;
mod request;

use std::convert::Infallible;
use std::error::Error as StdError;
use std::future::Future;
use std::io;
use std::net::{Ipv4Addr, SocketAddr};
use std::path::PathBuf;
use std::pin::pin;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http::{Request, Response};
use hyper::rt::{Read, Write};
use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto;
use rustls::version::{TLS12, TLS13};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;
use tokio::task::JoinSet;
use tokio::time::timeout;
use tokio_rustls::TlsAcceptor;

use self::certs::CertStore;
pub use self::certs::{CHECK_INTERVAL, CertError, CertObserver, ProvidedCert, check_pair};
use self::connections::{Connections, Room, Slot};
use self::request::{Limits, Shared};

/// The `logger` of this module's log lines; each names its port with a `server` field.
const LOG_TARGET: &str = "image-policy.server";

/// The TLS versions served; TLS 1.1 and older are refused during the handshake.
pub const TLS_VERSIONS: [&rustls::SupportedProtocolVersion; 2] = [&TLS13, &TLS12];

/// The ALPN protocols offered, in order of preference.
pub const ALPN_PROTOCOLS: [&[u8]; 2] = [b"h2", b"http/1.1"];

/// How long to pause after `accept` fails (out of file descriptors, say) before trying again.
const ACCEPT_BACKOFF: Duration = Duration::from_millis(100);

/// HTTP/2 keep-alive: an idle connection is pinged this often and dropped if the ping is
/// not answered within the same time.
const H2_KEEP_ALIVE: Duration = Duration::from_secs(20);

/// HTTP/2 streams open at once on one connection; more are refused (`REFUSED_STREAM`). The
/// API server sends one review per stream and rarely has many in flight on one connection.
const H2_MAX_CONCURRENT_STREAMS: u32 = 32;

/// HTTP/2 streams that a client may reset before the server has accepted them, and streams
/// the server may reset for the client's errors, before the connection is closed with
/// `ENHANCE_YOUR_CALM` (the "rapid reset" attack, CVE-2023-44487, and its variants).
const H2_MAX_PENDING_RESETS: usize = 20;
const H2_MAX_ERROR_RESETS: usize = 64;

/// The largest header block accepted on HTTP/2; a review's headers are a few hundred bytes.
const H2_MAX_HEADER_LIST: u32 = 64 * 1024;

/// HTTP/2 flow-control windows (per stream and per connection: the protocol's default) and
/// the HTTP/1.1 read buffer: what one connection can make the server hold before a request
/// is read, so that `max_connections` of them stay within tens of MiB. A 3 MiB review still
/// streams at hundreds of MB/s over a cluster network.
const H2_WINDOW: u32 = 65_535;
const H1_MAX_BUFFER: usize = 64 * 1024;

/// How long an idle connection asked to make room may take to close (an HTTP/2 GOAWAY).
const IDLE_CLOSE_GRACE: Duration = Duration::from_millis(100);

/// At most one warning this often that new connections are being closed at the limit.
const FULL_WARNING_INTERVAL: Duration = Duration::from_secs(10);

/// Where and how to serve. [`ServerConfig::new`] gives the defaults.
#[derive(Debug, Clone)]
pub struct ServerConfig {
    /// The address [`serve`] listens on (`--webhook-addr`); [`serve_on`] ignores it.
    pub addr: SocketAddr,
    /// TLS with a certificate, or plain HTTP/1.1.
    pub transport: Transport,
    /// Which port this is (`webhook`, `health`), in the `server` field of its log lines.
    pub name: &'static str,
    /// Told of each certificate loaded from files (a [`ProvidedCert`] has its own).
    pub certificate_observer: Option<CertObserver>,
    /// The largest request body accepted; larger ones get 413.
    pub max_body_bytes: usize,
    /// How many bytes of request bodies are held at once, over all requests (at least
    /// `max_body_bytes`): a body is read before its request waits for a handler slot, and a
    /// read that would pass this waits for bytes to be freed.
    pub max_buffered_body_bytes: usize,
    /// How long a client may take to send a request's headers (HTTP/1.1), and to send the
    /// next request on an idle keep-alive connection.
    pub header_read_timeout: Duration,
    /// How long a client may take to complete the TLS handshake.
    pub tls_handshake_timeout: Duration,
    /// How many requests are handled at once, over all connections (at least 1).
    pub max_concurrent_requests: usize,
    /// How long a request waits for one of those slots before it gets 503.
    pub max_queue_wait: Duration,
    /// How long after its headers arrive a request is answered at the latest: waiting for a
    /// slot, reading the body and the handler together.
    pub request_timeout: Duration,
    /// How long shutdown waits for in-flight requests before dropping them.
    pub shutdown_grace: Duration,
    /// How many connections are served at once. At the limit, a new connection makes the
    /// one idle longest close; if every one has a request in flight, the new one is closed.
    /// `None`: no bound.
    pub max_connections: Option<usize>,
    /// How old a connection may grow before it is closed between requests. `None`: no bound.
    pub max_connection_age: Option<Duration>,
}

impl ServerConfig {
    /// The default address: all interfaces, port 8443.
    pub const DEFAULT_ADDR: SocketAddr =
        SocketAddr::new(std::net::IpAddr::V4(Ipv4Addr::UNSPECIFIED), 8443);

    /// The API server refuses request bodies over 3 MiB, so a review holds at most that
    /// much of object, plus the envelope (user info, options, and for an UPDATE the old
    /// object, which is usually small next to the limit). Kept near the API server's limit
    /// because memory is bounded by this times `max_concurrent_requests`.
    pub const DEFAULT_MAX_BODY_BYTES: usize = 3 * 1024 * 1024 + 256 * 1024;

    /// Ten bodies at the limit, or a thousand reviews of a typical 30 KiB, at once.
    pub const DEFAULT_MAX_BUFFERED_BODY_BYTES: usize = 32 * 1024 * 1024;

    /// The defaults, serving the given certificate and key files: 0.0.0.0:8443, a body
    /// limit of 3.25 MiB, 10 s for headers and for the TLS handshake, 256 concurrent
    /// requests with at most 1 s of waiting, 12 s per request (the API server gives up
    /// after the webhook's `timeoutSeconds`, 10 s) and 25 s of grace at shutdown (within
    /// Kubernetes' default 30 s termination grace period).
    pub fn new(cert_file: impl Into<PathBuf>, key_file: impl Into<PathBuf>) -> Self {
        Self::with_certificate(CertSource::Files {
            cert_file: cert_file.into(),
            key_file: key_file.into(),
        })
    }

    /// The same defaults, serving the certificate of `certificate`.
    pub fn with_certificate(certificate: CertSource) -> Self {
        Self::with_transport(Transport::Tls(certificate))
    }

    /// The same defaults, over `transport`.
    pub fn with_transport(transport: Transport) -> Self {
        ServerConfig {
            addr: Self::DEFAULT_ADDR,
            transport,
            name: "webhook",
            certificate_observer: None,
            max_body_bytes: Self::DEFAULT_MAX_BODY_BYTES,
            max_buffered_body_bytes: Self::DEFAULT_MAX_BUFFERED_BODY_BYTES,
            header_read_timeout: Duration::from_secs(10),
            tls_handshake_timeout: Duration::from_secs(10),
            max_concurrent_requests: 256,
            max_queue_wait: Duration::from_secs(1),
            request_timeout: Duration::from_secs(12),
            shutdown_grace: Duration::from_secs(25),
            max_connections: None,
            max_connection_age: None,
        }
    }
}

/// How connections are served.
#[derive(Debug, Clone)]
pub enum Transport {
    /// HTTPS with this certificate: HTTP/2 or HTTP/1.1, by ALPN.
    Tls(CertSource),
    /// Plain HTTP/1.1.
    Plain,
}

/// Where the serving certificate comes from.
#[derive(Debug, Clone)]
pub enum CertSource {
    /// PEM files, re-read when they change.
    Files {
        /// The certificate chain, leaf first (`--tls-cert-file`).
        cert_file: PathBuf,
        /// The private key: PKCS#8, SEC1 or PKCS#1 (`--tls-key-file`).
        key_file: PathBuf,
    },
    /// Handed over in memory by the certificate manager (`--tls-secret`).
    Provided(Arc<ProvidedCert>),
}

/// What the server calls for each request: method, URI, headers and the whole body (already
/// within the limit). The response is sent as it is.
pub trait Handler: Send + Sync + 'static {
    /// Answers one request.
    fn handle(&self, request: Request<Bytes>) -> impl Future<Output = Response<Bytes>> + Send;
}

/// Why the server could not start. Once it serves, nothing stops it but `shutdown`.
#[derive(Debug, thiserror::Error)]
pub enum ServerError {
    /// The address could not be listened on (in use, not permitted).
    #[error("cannot listen on {addr}: {source}")]
    Bind {
        /// The address of [`ServerConfig::addr`].
        addr: SocketAddr,
        /// What the operating system said.
        #[source]
        source: io::Error,
    },
    /// The certificate or its key could not be loaded.
    #[error("cannot load the webhook's serving certificate: {0}")]
    Certificate(#[from] CertError),
    /// rustls refused the TLS configuration (should not happen with the fixed versions).
    #[error("cannot configure TLS: {0}")]
    Tls(#[source] rustls::Error),
}

/// Listens on [`ServerConfig::addr`] and serves until `shutdown` resolves; see [`serve_on`].
pub async fn serve<H: Handler>(
    config: ServerConfig,
    handler: Arc<H>,
    shutdown: impl Future<Output = ()>,
) -> Result<(), ServerError> {
    let addr = config.addr;
    let listener = TcpListener::bind(addr)
        .await
        .map_err(|source| ServerError::Bind { addr, source })?;
    serve_on(listener, config, handler, shutdown).await
}

/// Serves on an already bound listener until `shutdown` resolves, then finishes in-flight
/// requests (for at most [`ServerConfig::shutdown_grace`]) and returns.
///
/// Certificate files are loaded before anything is accepted: an error names the file at fault.
pub async fn serve_on<H: Handler>(
    listener: TcpListener,
    config: ServerConfig,
    handler: Arc<H>,
    shutdown: impl Future<Output = ()>,
) -> Result<(), ServerError> {
    let context = Arc::new(Context::new(&config, handler)?);
    let server = config.name;
    if let Ok(addr) = listener.local_addr() {
        match config.transport {
            Transport::Tls(_) => {
                tracing::info!(target: LOG_TARGET, server, %addr, "Serving over HTTPS")
            }
            Transport::Plain => {
                tracing::info!(target: LOG_TARGET, server, %addr, "Serving over HTTP")
            }
        }
    }
    // Dropping the sender tells every connection to finish its request and close.
    let (closing, closed) = watch::channel(());
    let mut connections = JoinSet::new();
    let slots = Connections::new(config.max_connections);
    let mut full = FullWarning::default();
    let mut shutdown = pin!(shutdown);
    loop {
        tokio::select! {
            () = &mut shutdown => break,
            accepted = listener.accept() => match accepted {
                Ok((tcp, peer)) => match slots.admit() {
                    Room::Serve(slot) => {
                        connections.spawn(serve_connection(tcp, peer, slot, Arc::clone(&context), closed.clone()));
                    }
                    Room::Full => {
                        drop(tcp);
                        full.closed(server, slots.open());
                    }
                },
                Err(e) => {
                    log_accept_error(server, &e);
                    tokio::time::sleep(ACCEPT_BACKOFF).await;
                }
            },
            Some(joined) = connections.join_next(), if !connections.is_empty() => {
                if let Err(e) = joined {
                    let error = &e as &dyn StdError;
                    tracing::error!(target: LOG_TARGET, server, error, "A connection task failed");
                }
            }
        }
    }
    drop(listener);
    drop(closing);
    tracing::info!(target: LOG_TARGET, server, connections = connections.len(), "Shutting down, finishing in-flight requests");
    let drained = timeout(config.shutdown_grace, async {
        while connections.join_next().await.is_some() {}
    })
    .await;
    if drained.is_err() {
        let grace = format!("{:?}", config.shutdown_grace);
        tracing::warn!(target: LOG_TARGET, server, %grace, "In-flight requests did not finish in time, dropping them");
    }
    connections.shutdown().await;
    Ok(())
}

/// Closing new connections at the limit is logged at most once per
/// [`FULL_WARNING_INTERVAL`], with how many were closed since the last line: a flood must
/// not become a flood of log lines.
#[derive(Default)]
struct FullWarning {
    last: Option<tokio::time::Instant>,
    since: u64,
}

impl FullWarning {
    fn closed(&mut self, server: &str, open: usize) {
        self.since += 1;
        let now = tokio::time::Instant::now();
        if self
            .last
            .is_some_and(|last| now.duration_since(last) < FULL_WARNING_INTERVAL)
        {
            return;
        }
        let closed = std::mem::take(&mut self.since);
        self.last = Some(now);
        tracing::warn!(target: LOG_TARGET, server, open, closed, "Every connection is busy at the limit, closing new ones");
    }
}

fn log_accept_error(server: &str, e: &io::Error) {
    let error = e as &dyn StdError;
    tracing::warn!(target: LOG_TARGET, server, error, "Accepting a connection failed");
}

/// What every connection shares.
struct Context<H> {
    /// `None` for plain HTTP.
    acceptor: Option<TlsAcceptor>,
    /// For connections that negotiated `http/1.1` or nothing, and plain ones.
    http1: auto::Builder<TokioExecutor>,
    /// For connections that negotiated `h2`.
    http2: auto::Builder<TokioExecutor>,
    handshake_timeout: Duration,
    max_age: Option<Duration>,
    /// How long a connection asked to make room may take to finish: the request timeout.
    close_grace: Duration,
    name: &'static str,
    shared: Arc<Shared<H>>,
}

impl<H: Handler> Context<H> {
    fn new(config: &ServerConfig, handler: Arc<H>) -> Result<Self, ServerError> {
        let acceptor = match &config.transport {
            Transport::Tls(certificate) => Some(tls_acceptor(certificate, config)?),
            Transport::Plain => None,
        };
        let mut http = auto::Builder::new(TokioExecutor::new());
        http.http1()
            .timer(TokioTimer::new())
            .header_read_timeout(config.header_read_timeout)
            .max_buf_size(H1_MAX_BUFFER)
            .keep_alive(true);
        http.http2()
            .timer(TokioTimer::new())
            .keep_alive_interval(H2_KEEP_ALIVE)
            .keep_alive_timeout(H2_KEEP_ALIVE)
            .max_concurrent_streams(H2_MAX_CONCURRENT_STREAMS)
            .max_pending_accept_reset_streams(H2_MAX_PENDING_RESETS)
            .max_local_error_reset_streams(H2_MAX_ERROR_RESETS)
            .max_header_list_size(H2_MAX_HEADER_LIST)
            .initial_stream_window_size(H2_WINDOW)
            .initial_connection_window_size(H2_WINDOW);
        let limits = Limits {
            max_body_bytes: config.max_body_bytes,
            max_buffered_bytes: config.max_buffered_body_bytes,
            max_queue_wait: config.max_queue_wait,
            request_timeout: config.request_timeout,
        };
        Ok(Context {
            acceptor,
            http1: http.clone().http1_only(),
            http2: http.http2_only(),
            handshake_timeout: config.tls_handshake_timeout,
            max_age: config.max_connection_age,
            close_grace: config.request_timeout,
            name: config.name,
            shared: Arc::new(Shared::new(handler, config.max_concurrent_requests, limits)),
        })
    }
}

fn tls_acceptor(
    certificate: &CertSource,
    config: &ServerConfig,
) -> Result<TlsAcceptor, ServerError> {
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let resolver: Arc<dyn rustls::server::ResolvesServerCert> = match certificate {
        CertSource::Files {
            cert_file,
            key_file,
        } => Arc::new(CertStore::load(
            cert_file,
            key_file,
            Arc::clone(&provider),
            CHECK_INTERVAL,
            config.certificate_observer.clone(),
        )?),
        CertSource::Provided(provided) => Arc::clone(provided) as _,
    };
    let mut tls = rustls::ServerConfig::builder_with_provider(provider)
        .with_protocol_versions(&TLS_VERSIONS)
        .map_err(ServerError::Tls)?
        .with_no_client_auth()
        .with_cert_resolver(resolver);
    tls.alpn_protocols = ALPN_PROTOCOLS.iter().map(|p| p.to_vec()).collect();
    Ok(TlsAcceptor::from(Arc::new(tls)))
}

/// One connection: the TLS handshake under its timeout (for HTTPS), then HTTP until either
/// side ends it, it grows too old, it must make room for a newer one, or shutdown closes it
/// gracefully. Its `slot` is freed when it ends.
async fn serve_connection<H: Handler>(
    tcp: TcpStream,
    peer: SocketAddr,
    slot: Slot,
    context: Arc<Context<H>>,
    closed: watch::Receiver<()>,
) {
    // Reviews and probes are small request/response pairs: do not wait to coalesce writes.
    let _ = tcp.set_nodelay(true);
    let server = context.name;
    let slot = Arc::new(slot);
    let Some(acceptor) = &context.acceptor else {
        return serve_http(
            TokioIo::new(tcp),
            &context.http1,
            &context,
            peer,
            slot,
            closed,
        )
        .await;
    };
    let handshake = tokio::select! {
        handshake = timeout(context.handshake_timeout, acceptor.accept(tcp)) => handshake,
        () = slot.closing() => {
            tracing::debug!(target: LOG_TARGET, server, %peer, "Closed during its TLS handshake to make room");
            return;
        }
    };
    let tls = match handshake {
        Ok(Ok(tls)) => tls,
        Ok(Err(e)) => {
            // Usually a client that does not trust the certificate: the caBundle is wrong.
            let error = &e as &dyn StdError;
            tracing::warn!(target: LOG_TARGET, server, %peer, error, "TLS handshake failed");
            return;
        }
        Err(_) => {
            tracing::warn!(target: LOG_TARGET, server, %peer, "TLS handshake timed out");
            return;
        }
    };
    let negotiated_h2 = tls.get_ref().1.alpn_protocol() == Some(b"h2".as_slice());
    let http = if negotiated_h2 {
        &context.http2
    } else {
        &context.http1
    };
    serve_http(TokioIo::new(tls), http, &context, peer, slot, closed).await;
}

/// HTTP on one connection until it ends; closed gracefully (between requests) at shutdown,
/// at its maximum age, or to make room (then dropped if a request that arrived meanwhile
/// is not answered within the request timeout).
async fn serve_http<H, I>(
    io: I,
    http: &auto::Builder<TokioExecutor>,
    context: &Context<H>,
    peer: SocketAddr,
    slot: Arc<Slot>,
    mut closed: watch::Receiver<()>,
) where
    H: Handler,
    I: Read + Write + Unpin + Send + 'static,
{
    let shared = Arc::clone(&context.shared);
    let requests = Arc::clone(&slot);
    let service = service_fn(move |request| {
        let shared = Arc::clone(&shared);
        let in_flight = requests.request();
        async move {
            let response = shared.respond(request).await;
            drop(in_flight);
            Ok::<_, Infallible>(response)
        }
    });
    let mut connection = pin!(http.serve_connection(io, service));
    let too_old = async {
        match context.max_age {
            Some(age) => tokio::time::sleep(age).await,
            None => std::future::pending().await,
        }
    };
    let result = tokio::select! {
        result = connection.as_mut() => result,
        _ = closed.changed() => {
            connection.as_mut().graceful_shutdown();
            connection.await
        }
        () = too_old => {
            connection.as_mut().graceful_shutdown();
            connection.await
        }
        () = slot.closing() => {
            tracing::debug!(target: LOG_TARGET, server = context.name, %peer, "Closing an idle connection to make room");
            connection.as_mut().graceful_shutdown();
            // Idle when chosen: time to send an HTTP/2 GOAWAY, no more (hyper does not end
            // an HTTP/1.1 connection that never sent a request). A request that arrived
            // meanwhile still has its whole time.
            let grace = if slot.busy() { context.close_grace } else { IDLE_CLOSE_GRACE };
            timeout(grace, connection).await.unwrap_or(Ok(()))
        }
    };
    if let Err(e) = result {
        // Clients going away and header timeouts end up here: worth a debug line, no more.
        let error = &*e as &dyn StdError;
        tracing::debug!(target: LOG_TARGET, server = context.name, %peer, error, "Connection ended with an error");
    }
}
