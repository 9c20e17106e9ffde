//! One request: a concurrency permit, the body read under a limit, the handler, a deadline.
//!
//! The order matters. The permit is taken first, so a request waiting for one holds no
//! body in memory: memory is bounded by `max_concurrent_requests × max_body_bytes`. The
//! deadline starts when the request's headers are in and covers the wait, the body and the
//! handler, so no request is answered later than `request_timeout` after it arrived.

use std::error::Error as StdError;
use std::time::Duration;

use bytes::Bytes;
use http::header::{CONTENT_LENGTH, CONTENT_TYPE, HeaderValue, RETRY_AFTER};
use http::{Request, Response, StatusCode};
use http_body_util::{BodyExt, Full, LengthLimitError, Limited};
use hyper::body::Body;
use tokio::sync::Semaphore;
use tokio::time::{Instant, timeout, timeout_at};

use super::Handler;

/// What every request shares: the handler and the limits.
pub(super) struct Shared<H> {
    pub(super) handler: std::sync::Arc<H>,
    pub(super) permits: Semaphore,
    pub(super) limits: Limits,
}

/// The per-request limits of [`super::ServerConfig`].
#[derive(Debug, Clone, Copy)]
pub(super) struct Limits {
    pub(super) max_body_bytes: usize,
    pub(super) max_queue_wait: Duration,
    pub(super) request_timeout: Duration,
}

impl<H: Handler> Shared<H> {
    pub(super) fn new(
        handler: std::sync::Arc<H>,
        max_concurrent_requests: usize,
        limits: Limits,
    ) -> Self {
        // `Semaphore::new` panics above MAX_PERMITS; zero would refuse everything.
        let permits = max_concurrent_requests.clamp(1, Semaphore::MAX_PERMITS);
        Shared {
            handler,
            permits: Semaphore::new(permits),
            limits,
        }
    }

    /// Answers one request; every failure of the client or of the limits is a response.
    pub(super) async fn respond<B>(&self, request: Request<B>) -> Response<Full<Bytes>>
    where
        B: Body<Data = Bytes>,
        B::Error: Into<Box<dyn StdError + Send + Sync>>,
    {
        let limits = self.limits;
        let deadline = Instant::now() + limits.request_timeout;
        let wait = limits.max_queue_wait.min(limits.request_timeout);
        // `timeout` polls the acquisition first, so a free permit is taken even with no wait.
        let Ok(Ok(_permit)) = timeout(wait, self.permits.acquire()).await else {
            let mut response = text(
                StatusCode::SERVICE_UNAVAILABLE,
                "too many concurrent requests; retry\n",
            );
            response
                .headers_mut()
                .insert(RETRY_AFTER, HeaderValue::from_static("1"));
            return response;
        };
        if declared_length(&request).is_some_and(|length| length > limits.max_body_bytes as u64) {
            return too_large(limits.max_body_bytes);
        }
        let (parts, body) = request.into_parts();
        let body = match timeout_at(
            deadline,
            Limited::new(body, limits.max_body_bytes).collect(),
        )
        .await
        {
            Ok(Ok(collected)) => collected.to_bytes(),
            Ok(Err(e)) if e.is::<LengthLimitError>() => return too_large(limits.max_body_bytes),
            Ok(Err(_)) => {
                return text(
                    StatusCode::BAD_REQUEST,
                    "the request body could not be read\n",
                );
            }
            Err(_) => {
                return text(
                    StatusCode::REQUEST_TIMEOUT,
                    "the request body did not arrive in time\n",
                );
            }
        };
        match timeout_at(
            deadline,
            self.handler.handle(Request::from_parts(parts, body)),
        )
        .await
        {
            Ok(response) => response.map(Full::new),
            Err(_) => text(
                StatusCode::SERVICE_UNAVAILABLE,
                "the request was not answered in time\n",
            ),
        }
    }
}

/// The `Content-Length` the client announced, if it announced a valid one.
fn declared_length<B>(request: &Request<B>) -> Option<u64> {
    request
        .headers()
        .get(CONTENT_LENGTH)?
        .to_str()
        .ok()?
        .parse()
        .ok()
}

fn too_large(limit: usize) -> Response<Full<Bytes>> {
    let message = format!("the request body is larger than the limit of {limit} bytes\n");
    text(StatusCode::PAYLOAD_TOO_LARGE, message)
}

fn text(status: StatusCode, message: impl Into<Bytes>) -> Response<Full<Bytes>> {
    let mut response = Response::new(Full::new(message.into()));
    *response.status_mut() = status;
    response.headers_mut().insert(
        CONTENT_TYPE,
        HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    response
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]

    use std::sync::Arc;

    use super::*;

    /// Echoes the body; sleeps for the time in the `sleep-ms` header first.
    struct Echo;

    impl Handler for Echo {
        async fn handle(&self, request: Request<Bytes>) -> Response<Bytes> {
            let sleep = request
                .headers()
                .get("sleep-ms")
                .and_then(|v| v.to_str().ok()?.parse().ok())
                .unwrap_or(0);
            tokio::time::sleep(Duration::from_millis(sleep)).await;
            Response::new(request.into_body())
        }
    }

    fn shared(max_concurrent: usize, max_queue_wait: Duration) -> Arc<Shared<Echo>> {
        let limits = Limits {
            max_body_bytes: 16,
            max_queue_wait,
            request_timeout: Duration::from_secs(2),
        };
        Arc::new(Shared::new(Arc::new(Echo), max_concurrent, limits))
    }

    fn request(body: &'static str) -> Request<Full<Bytes>> {
        Request::new(Full::new(Bytes::from_static(body.as_bytes())))
    }

    async fn body(response: Response<Full<Bytes>>) -> Bytes {
        response.into_body().collect().await.unwrap().to_bytes()
    }

    #[tokio::test]
    async fn a_body_at_the_limit_reaches_the_handler() {
        let response = shared(4, Duration::ZERO)
            .respond(request("0123456789abcdef"))
            .await;
        assert_eq!(response.status(), StatusCode::OK);
        assert_eq!(body(response).await, "0123456789abcdef");
    }

    #[tokio::test]
    async fn a_body_over_the_limit_is_413_with_or_without_a_length() {
        let shared = shared(4, Duration::ZERO);
        // No Content-Length header: the limit is found while reading.
        let response = shared.respond(request("0123456789abcdefX")).await;
        assert_eq!(response.status(), StatusCode::PAYLOAD_TOO_LARGE);
        // An announced length over the limit is refused before reading anything.
        let mut announced = request("");
        announced
            .headers_mut()
            .insert(CONTENT_LENGTH, HeaderValue::from_static("17"));
        let response = shared.respond(announced).await;
        assert_eq!(response.status(), StatusCode::PAYLOAD_TOO_LARGE);
        assert!(String::from_utf8_lossy(&body(response).await).contains("16 bytes"));
    }

    #[tokio::test]
    async fn past_the_concurrency_limit_a_request_waits_briefly_then_gets_503() {
        let shared = shared(1, Duration::from_millis(100));
        let mut slow = request("slow");
        slow.headers_mut()
            .insert("sleep-ms", HeaderValue::from_static("1000"));
        let busy = tokio::spawn({
            let shared = shared.clone();
            async move { shared.respond(slow).await.status() }
        });
        tokio::time::sleep(Duration::from_millis(50)).await;

        let started = std::time::Instant::now();
        let response = shared.respond(request("next")).await;
        assert_eq!(response.status(), StatusCode::SERVICE_UNAVAILABLE);
        assert_eq!(response.headers()[RETRY_AFTER], "1");
        let waited = started.elapsed();
        assert!(
            waited >= Duration::from_millis(90) && waited < Duration::from_millis(800),
            "{waited:?}"
        );

        assert_eq!(busy.await.unwrap(), StatusCode::OK);
        // The permit is back.
        assert_eq!(
            shared.respond(request("again")).await.status(),
            StatusCode::OK
        );
    }

    #[tokio::test]
    async fn a_waiting_request_gets_the_permit_when_it_frees_up_in_time() {
        let shared = shared(1, Duration::from_millis(1000));
        let mut slow = request("slow");
        slow.headers_mut()
            .insert("sleep-ms", HeaderValue::from_static("100"));
        let busy = tokio::spawn({
            let shared = shared.clone();
            async move { shared.respond(slow).await.status() }
        });
        tokio::time::sleep(Duration::from_millis(20)).await;
        assert_eq!(
            shared.respond(request("next")).await.status(),
            StatusCode::OK
        );
        assert_eq!(busy.await.unwrap(), StatusCode::OK);
    }

    #[tokio::test]
    async fn a_handler_slower_than_the_request_timeout_gets_503() {
        let shared = shared(4, Duration::ZERO);
        let mut slow = request("slow");
        slow.headers_mut()
            .insert("sleep-ms", HeaderValue::from_static("5000"));
        let started = std::time::Instant::now();
        let response = shared.respond(slow).await;
        assert_eq!(response.status(), StatusCode::SERVICE_UNAVAILABLE);
        let took = started.elapsed();
        assert!(
            took >= Duration::from_millis(1900) && took < Duration::from_millis(3000),
            "{took:?}"
        );
    }
}
