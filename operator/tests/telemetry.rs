//! The health port over a real TCP connection: `/healthz`, `/readyz` before and after
//! readiness, `/metrics` with a recorded admission, 404, and shutdown.

// A test crate: its helpers fail the test loudly by design.
#![allow(
    clippy::expect_used,
    clippy::unwrap_used,
    clippy::indexing_slicing,
    clippy::panic
)]

use std::time::Duration;

use image_policy::telemetry::{DecisionLabel, Metrics, Readiness, serve_health};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

const TIMEOUT: Duration = Duration::from_secs(10);

struct Server {
    addr: std::net::SocketAddr,
    stop: oneshot::Sender<()>,
    task: JoinHandle<std::io::Result<()>>,
}

async fn start(metrics: Metrics, readiness: Readiness) -> Server {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let (stop, stopped) = oneshot::channel::<()>();
    let task = tokio::spawn(serve_health(listener, metrics, readiness, async {
        let _ = stopped.await;
    }));
    Server { addr, stop, task }
}

struct Answer {
    status: u16,
    headers: Vec<(String, String)>,
    body: String,
}

impl Answer {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(key, _)| key.eq_ignore_ascii_case(name))
            .map(|(_, value)| value.as_str())
    }
}

/// One HTTP/1.1 request on a fresh connection, read to the end (`Connection: close`).
async fn request(addr: std::net::SocketAddr, method: &str, path: &str) -> Answer {
    tokio::time::timeout(TIMEOUT, async {
        let mut stream = TcpStream::connect(addr).await.unwrap();
        let head = format!("{method} {path} HTTP/1.1\r\nHost: test\r\nConnection: close\r\n\r\n");
        stream.write_all(head.as_bytes()).await.unwrap();
        let mut raw = Vec::new();
        stream.read_to_end(&mut raw).await.unwrap();
        parse(&String::from_utf8(raw).unwrap())
    })
    .await
    .unwrap()
}

fn parse(raw: &str) -> Answer {
    let (head, body) = raw.split_once("\r\n\r\n").unwrap();
    let mut lines = head.split("\r\n");
    let status_line = lines.next().unwrap();
    let status = status_line.split(' ').nth(1).unwrap().parse().unwrap();
    let headers = lines
        .map(|line| {
            let (key, value) = line.split_once(':').unwrap();
            (key.trim().to_owned(), value.trim().to_owned())
        })
        .collect();
    Answer {
        status,
        headers,
        body: body.to_owned(),
    }
}

#[tokio::test]
async fn health_readiness_metrics_and_not_found() {
    let metrics = Metrics::new();
    let readiness = Readiness::new();
    let server = start(metrics.clone(), readiness.clone()).await;

    let healthz = request(server.addr, "GET", "/healthz").await;
    assert_eq!(healthz.status, 200);
    assert_eq!(healthz.body, "ok\n");

    let not_ready = request(server.addr, "GET", "/readyz").await;
    assert_eq!(not_ready.status, 503);
    assert_eq!(not_ready.body, "not ready\n");

    readiness.set_ready();
    let ready = request(server.addr, "GET", "/readyz").await;
    assert_eq!(ready.status, 200);
    assert_eq!(ready.body, "ok\n");

    metrics.admission(
        "Pod",
        "CREATE",
        DecisionLabel::Denied,
        "NotSigned",
        Duration::from_millis(2),
    );
    let scrape = request(server.addr, "GET", "/metrics").await;
    assert_eq!(scrape.status, 200);
    assert_eq!(
        scrape.header("content-type"),
        Some("application/openmetrics-text; version=1.0.0; charset=utf-8")
    );
    assert!(
        scrape.body.contains(
            "image_policy_admission_requests_total{kind=\"Pod\",operation=\"CREATE\",decision=\"denied\",reason=\"NotSigned\"} 1\n"
        ),
        "{}",
        scrape.body
    );
    assert!(
        scrape.body.contains(
            "image_policy_admission_duration_seconds_bucket{le=\"0.0025\",kind=\"Pod\"} 1\n"
        ),
        "{}",
        scrape.body
    );
    assert!(scrape.body.ends_with("# EOF\n"), "{}", scrape.body);

    let missing = request(server.addr, "GET", "/nope").await;
    assert_eq!(missing.status, 404);

    let post = request(server.addr, "POST", "/healthz").await;
    assert_eq!(post.status, 405);
    assert_eq!(post.header("allow"), Some("GET, HEAD"));

    let head = request(server.addr, "HEAD", "/healthz").await;
    assert_eq!(head.status, 200);
    assert_eq!(head.body, "");

    server.stop.send(()).unwrap();
    tokio::time::timeout(TIMEOUT, server.task)
        .await
        .unwrap()
        .unwrap()
        .unwrap();
    assert!(
        TcpStream::connect(server.addr).await.is_err(),
        "the port must be closed after shutdown"
    );
}

#[tokio::test]
async fn keep_alive_connection_does_not_hold_up_shutdown() {
    let server = start(Metrics::new(), Readiness::new()).await;
    let mut stream = TcpStream::connect(server.addr).await.unwrap();
    stream
        .write_all(b"GET /healthz HTTP/1.1\r\nHost: test\r\n\r\n")
        .await
        .unwrap();
    let mut buffer = [0u8; 512];
    let read = tokio::time::timeout(TIMEOUT, stream.read(&mut buffer))
        .await
        .unwrap()
        .unwrap();
    assert!(String::from_utf8_lossy(&buffer[..read]).starts_with("HTTP/1.1 200"));

    // The connection is idle and kept alive; shutdown closes it and returns promptly.
    server.stop.send(()).unwrap();
    tokio::time::timeout(Duration::from_secs(3), server.task)
        .await
        .unwrap()
        .unwrap()
        .unwrap();
    let closed = tokio::time::timeout(TIMEOUT, stream.read(&mut buffer))
        .await
        .unwrap();
    assert!(matches!(closed, Ok(0) | Err(_)), "{closed:?}");
}
