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

use std::future::Future;
use std::io;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use bytes::Bytes;
use hyper::header::{ALLOW, CONTENT_TYPE, HeaderValue};
use hyper::{Method, Request, Response, StatusCode};
use tokio::net::TcpListener;

use super::metrics::Metrics;
use crate::server::{Handler, ServerConfig, Transport, serve_on};

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
/// How long in-flight requests may take to finish once shutdown is asked for.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(5);
/// Probes and scrapes send no body.
const MAX_BODY_BYTES: usize = 16 << 10;

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
/// seconds at most) and returns. The server is the webhook's ([`crate::server`]), without TLS
/// and with the limits of a port that probes and scrapers use.
///
/// A failed `accept` is logged and retried, never fatal: the probes must keep working.
pub async fn serve_health(
    listener: TcpListener,
    metrics: Metrics,
    readiness: Readiness,
    shutdown: impl Future<Output = ()>,
) -> io::Result<()> {
    let config = ServerConfig {
        name: "health",
        max_body_bytes: MAX_BODY_BYTES,
        header_read_timeout: HEADER_READ_TIMEOUT,
        request_timeout: HEADER_READ_TIMEOUT,
        shutdown_grace: SHUTDOWN_GRACE,
        max_connections: Some(MAX_CONNECTIONS),
        max_connection_age: Some(CONNECTION_LIFETIME),
        ..ServerConfig::with_transport(Transport::Plain)
    };
    let routes = Arc::new(Routes { metrics, readiness });
    serve_on(listener, config, routes, shutdown)
        .await
        .map_err(io::Error::other)
}

/// What the three paths answer from.
#[derive(Clone)]
struct Routes {
    metrics: Metrics,
    readiness: Readiness,
}

impl Handler for Routes {
    async fn handle(&self, request: Request<Bytes>) -> Response<Bytes> {
        self.respond(&request)
    }
}

impl Routes {
    fn respond<B>(&self, request: &Request<B>) -> Response<Bytes> {
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

    fn metrics(&self) -> Response<Bytes> {
        match self.metrics.encode() {
            Ok(body) => {
                let mut response = Response::new(Bytes::from(body));
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
fn text(status: StatusCode, body: &'static str) -> Response<Bytes> {
    let mut response = Response::new(Bytes::from_static(body.as_bytes()));
    *response.status_mut() = status;
    response
        .headers_mut()
        .insert(CONTENT_TYPE, HeaderValue::from_static(TEXT_CONTENT_TYPE));
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    fn get(routes: &Routes, method: Method, path: &str) -> Response<Bytes> {
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
        let status = |method, path| get(&routes, method, path).status();
        assert_eq!(status(Method::GET, "/healthz"), StatusCode::OK);
        assert_eq!(status(Method::HEAD, "/healthz"), StatusCode::OK);
        assert_eq!(
            status(Method::GET, "/readyz"),
            StatusCode::SERVICE_UNAVAILABLE
        );
        routes.readiness.set_ready();
        assert_eq!(status(Method::GET, "/readyz"), StatusCode::OK);
        routes.readiness.set_not_ready();
        assert_eq!(
            status(Method::GET, "/readyz"),
            StatusCode::SERVICE_UNAVAILABLE
        );
        let metrics = get(&routes, Method::GET, "/metrics?x=1");
        assert_eq!(metrics.status(), StatusCode::OK);
        assert_eq!(metrics.headers()[CONTENT_TYPE], OPENMETRICS_CONTENT_TYPE);
        let post = get(&routes, Method::POST, "/metrics");
        assert_eq!(post.status(), StatusCode::METHOD_NOT_ALLOWED);
        assert_eq!(post.headers()[ALLOW], "GET, HEAD");
        assert_eq!(status(Method::GET, "/"), StatusCode::NOT_FOUND);
        assert_eq!(status(Method::GET, "/healthz/"), StatusCode::NOT_FOUND);
    }
}
