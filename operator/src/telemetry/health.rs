//! The plain-HTTP port for probes and scrapes (`--metrics-addr`, `0.0.0.0:8080` by default),
//! kept apart from the webhook's TLS port so that a kubelet probe or a Prometheus scrape never
//! competes with admissions and needs no certificate.
//!
//! - `GET /healthz`: 200 `ok` while the process serves at all (liveness).
//! - `GET /readyz`: 200 `ok` once [`Readiness::set_ready`] was called, 503 before (and after
//!   [`Readiness::set_not_ready`], e.g. while shutting down).
//! - `GET /metrics`: [`Metrics::encode`] as `application/openmetrics-text`.
//!
//! `HEAD` is answered like `GET` without a body; another method on these paths is 405, any
//! other path 404.

use std::convert::Infallible;
use std::future::Future;
use std::io;
use std::pin::pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use bytes::Bytes;
use http_body_util::Full;
use hyper::body::Incoming;
use hyper::header::{ALLOW, CONTENT_TYPE, HeaderValue};
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{Method, Request, Response, StatusCode};
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;
use tokio::task::JoinSet;

use super::metrics::Metrics;

/// The content type of `/metrics` (OpenMetrics 1.0 text).
pub const OPENMETRICS_CONTENT_TYPE: &str =
    "application/openmetrics-text; version=1.0.0; charset=utf-8";
const TEXT_CONTENT_TYPE: &str = "text/plain; charset=utf-8";

/// A client gets this long to send its request headers (a slow client cannot hold a connection).
const HEADER_READ_TIMEOUT: Duration = Duration::from_secs(5);
/// A kept-alive connection is closed (gracefully, between requests) after this long, so that
/// idle connections cannot pile up to the limit below for good.
const CONNECTION_LIFETIME: Duration = Duration::from_secs(300);
/// Connections served at once; more are closed at once. Probes and scrapes need a handful.
const MAX_CONNECTIONS: usize = 256;
/// Pause after a failed `accept` (such as too many open files) before the next.
const ACCEPT_BACKOFF: Duration = Duration::from_millis(100);
/// How long in-flight requests may take to finish once shutdown is asked for.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(5);

/// Whether the operator is ready to admit: false until the first policy snapshot (or the
/// knowledge that there is none) is loaded. Clones share one flag.
#[derive(Debug, Clone, Default)]
pub struct Readiness(Arc<AtomicBool>);

impl Readiness {
    /// A flag that is not ready yet.
    pub fn new() -> Self {
        Readiness::default()
    }

    /// Marks the operator ready: `/readyz` answers 200 from now on.
    pub fn set_ready(&self) {
        self.0.store(true, Ordering::Release);
    }

    /// Marks the operator not ready (e.g. on shutdown): `/readyz` answers 503 again.
    pub fn set_not_ready(&self) {
        self.0.store(false, Ordering::Release);
    }

    /// Whether [`Readiness::set_ready`] was called (and not undone).
    pub fn is_ready(&self) -> bool {
        self.0.load(Ordering::Acquire)
    }
}

/// Serves `/healthz`, `/readyz` and `/metrics` over plain HTTP/1.1 on `listener` until
/// `shutdown` completes; then stops accepting, lets requests in flight finish (for a few
/// seconds at most) and returns.
///
/// A failed `accept` is logged and retried, never fatal: the probes must keep working.
pub async fn serve_health(
    listener: TcpListener,
    metrics: Metrics,
    readiness: Readiness,
    shutdown: impl Future<Output = ()>,
) -> io::Result<()> {
    let mut shutdown = pin!(shutdown);
    let (closing, closed) = watch::channel(());
    let mut connections = JoinSet::new();
    loop {
        tokio::select! {
            () = &mut shutdown => break,
            Some(_) = connections.join_next(), if !connections.is_empty() => {}
            accepted = listener.accept() => match accepted {
                Ok((stream, _)) if connections.len() < MAX_CONNECTIONS => {
                    let routes = Routes { metrics: metrics.clone(), readiness: readiness.clone() };
                    connections.spawn(serve_connection(stream, routes, closed.clone()));
                }
                Ok((stream, peer)) => {
                    tracing::warn!(target: "image-policy.health", %peer, limit = MAX_CONNECTIONS, "Too many connections, closing a new one");
                    drop(stream);
                }
                Err(error) => {
                    tracing::warn!(target: "image-policy.health", %error, "Accepting a connection failed");
                    tokio::time::sleep(ACCEPT_BACKOFF).await;
                }
            }
        }
    }
    drop(listener);
    drop(closing);
    let drained = tokio::time::timeout(SHUTDOWN_GRACE, async {
        while connections.join_next().await.is_some() {}
    })
    .await;
    if drained.is_err() {
        connections.shutdown().await;
    }
    Ok(())
}

/// Serves one connection until the client closes it, its lifetime ends, or the server shuts
/// down; the last two close it between requests.
async fn serve_connection(stream: TcpStream, routes: Routes, mut closed: watch::Receiver<()>) {
    let service = service_fn(move |request: Request<Incoming>| {
        let response = routes.respond(&request);
        async move { Ok::<_, Infallible>(response) }
    });
    let mut builder = http1::Builder::new();
    builder
        .timer(TokioTimer::new())
        .header_read_timeout(HEADER_READ_TIMEOUT);
    let mut connection = pin!(builder.serve_connection(TokioIo::new(stream), service));
    let result = tokio::select! {
        result = connection.as_mut() => result,
        _ = closed.changed() => {
            connection.as_mut().graceful_shutdown();
            connection.await
        }
        () = tokio::time::sleep(CONNECTION_LIFETIME) => {
            connection.as_mut().graceful_shutdown();
            connection.await
        }
    };
    if let Err(error) = result {
        // Clients that hang up or time out are routine, hence debug.
        tracing::debug!(target: "image-policy.health", %error, "Health connection ended with an error");
    }
}

/// What the three paths answer from.
#[derive(Clone)]
struct Routes {
    metrics: Metrics,
    readiness: Readiness,
}

impl Routes {
    fn respond<B>(&self, request: &Request<B>) -> Response<Full<Bytes>> {
        let path = request.uri().path();
        if !matches!(path, "/healthz" | "/readyz" | "/metrics") {
            return text(StatusCode::NOT_FOUND, "not found\n");
        }
        if request.method() != Method::GET && request.method() != Method::HEAD {
            let mut response = text(StatusCode::METHOD_NOT_ALLOWED, "method not allowed\n");
            response
                .headers_mut()
                .insert(ALLOW, HeaderValue::from_static("GET, HEAD"));
            return response;
        }
        match path {
            "/healthz" => text(StatusCode::OK, "ok\n"),
            "/readyz" if self.readiness.is_ready() => text(StatusCode::OK, "ok\n"),
            "/readyz" => text(StatusCode::SERVICE_UNAVAILABLE, "not ready\n"),
            _ => self.metrics(),
        }
    }

    fn metrics(&self) -> Response<Full<Bytes>> {
        match self.metrics.encode() {
            Ok(body) => {
                let mut response = Response::new(Full::new(Bytes::from(body)));
                response.headers_mut().insert(
                    CONTENT_TYPE,
                    HeaderValue::from_static(OPENMETRICS_CONTENT_TYPE),
                );
                response
            }
            Err(error) => {
                tracing::error!(target: "image-policy.health", %error, "Encoding metrics failed");
                text(
                    StatusCode::INTERNAL_SERVER_ERROR,
                    "metrics could not be encoded\n",
                )
            }
        }
    }
}

/// A plain-text response.
fn text(status: StatusCode, body: &'static str) -> Response<Full<Bytes>> {
    let mut response = Response::new(Full::new(Bytes::from_static(body.as_bytes())));
    *response.status_mut() = status;
    response
        .headers_mut()
        .insert(CONTENT_TYPE, HeaderValue::from_static(TEXT_CONTENT_TYPE));
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    fn get(routes: &Routes, method: Method, path: &str) -> Response<Full<Bytes>> {
        let request = Request::builder()
            .method(method)
            .uri(path)
            .body(())
            .unwrap();
        routes.respond(&request)
    }

    #[test]
    fn routes_answer_by_path_and_method() {
        let routes = Routes {
            metrics: Metrics::new(),
            readiness: Readiness::new(),
        };
        assert_eq!(
            get(&routes, Method::GET, "/healthz").status(),
            StatusCode::OK
        );
        assert_eq!(
            get(&routes, Method::HEAD, "/healthz").status(),
            StatusCode::OK
        );
        assert_eq!(
            get(&routes, Method::GET, "/readyz").status(),
            StatusCode::SERVICE_UNAVAILABLE
        );
        routes.readiness.set_ready();
        assert_eq!(
            get(&routes, Method::GET, "/readyz").status(),
            StatusCode::OK
        );
        routes.readiness.set_not_ready();
        assert_eq!(
            get(&routes, Method::GET, "/readyz").status(),
            StatusCode::SERVICE_UNAVAILABLE
        );
        let metrics = get(&routes, Method::GET, "/metrics?x=1");
        assert_eq!(metrics.status(), StatusCode::OK);
        assert_eq!(metrics.headers()[CONTENT_TYPE], OPENMETRICS_CONTENT_TYPE);
        let post = get(&routes, Method::POST, "/metrics");
        assert_eq!(post.status(), StatusCode::METHOD_NOT_ALLOWED);
        assert_eq!(post.headers()[ALLOW], "GET, HEAD");
        assert_eq!(
            get(&routes, Method::GET, "/").status(),
            StatusCode::NOT_FOUND
        );
        assert_eq!(
            get(&routes, Method::GET, "/healthz/").status(),
            StatusCode::NOT_FOUND
        );
    }
}
