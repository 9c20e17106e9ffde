//! One request: the body read under its limits, a concurrency permit, the handler, a deadline.
//!
//! The order matters. The body is read first, each of its bytes counted against a budget
//! shared by every request (`max_buffered_bytes`) and held until the request is answered, so
//! memory for bodies is bounded by that budget whatever the number of connections and
//! streams. Only then is a handler permit taken: a client that opens requests and never
//! finishes their bodies holds bytes it sent, never one of the `max_concurrent_requests`
//! handler slots, so it cannot starve the API server's reviews of them. The deadline starts
//! when the request's headers are in and covers the body, the wait and the handler, so no
//! request is answered later than `request_timeout` after it arrived.

use std::error::Error as StdError;
use std::time::Duration;

use bytes::Bytes;
use bytes::BytesMut;
use http::header::{CONTENT_LENGTH, CONTENT_TYPE, HeaderValue, RETRY_AFTER};
use http::{Request, Response, StatusCode};
use http_body_util::{BodyExt, Full, LengthLimitError, Limited};
use hyper::body::Body;
use tokio::sync::{Semaphore, SemaphorePermit};
use tokio::time::{Instant, timeout, timeout_at};

use super::Handler;

/// What every request shares: the handler and the limits.
pub(super) struct Shared<H> {
    pub(super) handler: std::sync::Arc<H>,
    pub(super) permits: Semaphore,
    /// The bytes of request bodies that may be held at once, over all requests.
    pub(super) body_bytes: Semaphore,
    pub(super) limits: Limits,
}

/// The per-request limits of [`super::ServerConfig`].
#[derive(Debug, Clone, Copy)]
pub(super) struct Limits {
    pub(super) max_body_bytes: usize,
    pub(super) max_buffered_bytes: usize,
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
        // At least one whole body fits, or a body at the limit could never be read.
        let bytes = limits
            .max_buffered_bytes
            .max(limits.max_body_bytes)
            .clamp(1, Semaphore::MAX_PERMITS);
        Shared {
            handler,
            permits: Semaphore::new(permits),
            body_bytes: Semaphore::new(bytes),
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
        if declared_length(&request).is_some_and(|length| length > limits.max_body_bytes as u64) {
            return too_large(limits.max_body_bytes);
        }
        let (parts, body) = request.into_parts();
        let (body, _bytes) = match timeout_at(deadline, self.collect(body)).await {
            Ok(Ok(read)) => read,
            Ok(Err(BodyError::TooLarge)) => return too_large(limits.max_body_bytes),
            Ok(Err(BodyError::Unreadable)) => {
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
        let wait = limits
            .max_queue_wait
            .min(deadline.saturating_duration_since(Instant::now()));
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

/// Why a body was not read.
enum BodyError {
    TooLarge,
    Unreadable,
}

impl<H> Shared<H> {
    /// The whole body, within `max_body_bytes`, and its bytes' share of the budget, held
    /// until dropped. Waits while the budget is spent (the caller's deadline bounds it).
    async fn collect<B>(&self, body: B) -> Result<(Bytes, SemaphorePermit<'_>), BodyError>
    where
        B: Body<Data = Bytes>,
        B::Error: Into<Box<dyn StdError + Send + Sync>>,
    {
        let mut body = std::pin::pin!(Limited::new(body, self.limits.max_body_bytes));
        let mut held = self
            .body_bytes
            .acquire_many(0)
            .await
            .map_err(|_| BodyError::Unreadable)?;
        let mut buffer = BytesMut::new();
        while let Some(frame) = body.frame().await {
            let frame = frame.map_err(|e| match e.is::<LengthLimitError>() {
                true => BodyError::TooLarge,
                false => BodyError::Unreadable,
            })?;
            let Ok(data) = frame.into_data() else {
                continue; // trailers
            };
            // Within max_body_bytes, which the budget is at least: always fits in a u32.
            let n = u32::try_from(data.len()).map_err(|_| BodyError::TooLarge)?;
            let share = self
                .body_bytes
                .acquire_many(n)
                .await
                .map_err(|_| BodyError::Unreadable)?;
            held.merge(share);
            if buffer.is_empty() && body.is_end_stream() {
                // One frame, the whole body: no copy.
                return Ok((data, held));
            }
            buffer.extend_from_slice(&data);
        }
        Ok((buffer.freeze(), held))
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

    use std::convert::Infallible;
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
            max_buffered_bytes: 64,
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

    /// Sends a request that holds its permit for `sleep_ms` before it is answered; the task
    /// ends with its status.
    fn occupy(
        shared: &Arc<Shared<Echo>>,
        sleep_ms: &'static str,
    ) -> tokio::task::JoinHandle<StatusCode> {
        let mut slow = request("slow");
        slow.headers_mut()
            .insert("sleep-ms", HeaderValue::from_static(sleep_ms));
        let shared = shared.clone();
        tokio::spawn(async move { shared.respond(slow).await.status() })
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
        let busy = occupy(&shared, "1000");
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
        let busy = occupy(&shared, "100");
        tokio::time::sleep(Duration::from_millis(20)).await;
        assert_eq!(
            shared.respond(request("next")).await.status(),
            StatusCode::OK
        );
        assert_eq!(busy.await.unwrap(), StatusCode::OK);
    }

    /// A body that sends `sent` and then nothing, never ending.
    fn endless(sent: &'static str) -> Request<impl Body<Data = Bytes, Error = Infallible>> {
        use futures::StreamExt as _;
        let first = hyper::body::Frame::data(Bytes::from_static(sent.as_bytes()));
        let frames = futures::stream::iter([Ok(first)]).chain(futures::stream::pending());
        Request::new(http_body_util::StreamBody::new(frames))
    }

    /// Sends `count` requests whose bodies send `sent` and never end; each task ends with its
    /// status.
    fn stuck(
        shared: &Arc<Shared<Echo>>,
        count: usize,
        sent: &'static str,
    ) -> Vec<tokio::task::JoinHandle<StatusCode>> {
        (0..count)
            .map(|_| {
                let shared = shared.clone();
                tokio::spawn(async move { shared.respond(endless(sent)).await.status() })
            })
            .collect()
    }

    #[tokio::test]
    async fn bodies_that_never_end_hold_no_handler_slot() {
        let shared = shared(1, Duration::ZERO);
        let stuck = stuck(&shared, 3, "0123");
        tokio::time::sleep(Duration::from_millis(50)).await;
        // The one handler slot is free: a whole request is answered at once.
        let response = shared.respond(request("next")).await;
        assert_eq!(response.status(), StatusCode::OK);
        for task in stuck {
            assert_eq!(task.await.unwrap(), StatusCode::REQUEST_TIMEOUT);
        }
    }

    #[tokio::test]
    async fn the_bytes_held_for_bodies_are_bounded_and_freed() {
        // A budget of 64 bytes: four bodies of 16 that never end hold all of it.
        let shared = shared(8, Duration::ZERO);
        let stuck = stuck(&shared, 4, "0123456789abcdef");
        tokio::time::sleep(Duration::from_millis(50)).await;
        assert_eq!(shared.body_bytes.available_permits(), 0);
        // The next body waits for bytes: read once the stuck ones time out (408) and free
        // them, just within its own deadline.
        let started = std::time::Instant::now();
        let response = shared.respond(request("late")).await;
        assert_eq!(response.status(), StatusCode::OK);
        assert!(
            started.elapsed() >= Duration::from_millis(1900),
            "{:?}",
            started.elapsed()
        );
        for task in stuck {
            task.await.unwrap();
        }
        assert_eq!(shared.body_bytes.available_permits(), 64, "all freed");
        assert_eq!(
            shared.respond(request("again")).await.status(),
            StatusCode::OK
        );
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
