//! Admission throughput and latency over TLS with keep-alive, measured with `wrk` (Debian's
//! package) on 127.0.0.1, side by side with a bare server on the same stack that answers a
//! fixed allow:
//!
//! - webhook: `POST /signing-policy-check` with a Pod whose image matches the policy and
//!   whose signature verdict is cached (the steady state of a busy cluster);
//! - bare: the same hyper + tokio-rustls server with a handler that returns a fixed
//!   AdmissionReview allow, without reading the body.
//!
//! `cargo bench -p image-policy --bench webhook_load` (needs `wrk` and `hack/registry.sh
//! install`). Prints requests per second and latency percentiles of each, and their ratio.
//! Before that, it times `Request::parse`, `Webhook::handle` and the HTTP handler
//! (`Routes::handle`: metrics and the decision's log line too) on the same body in process,
//! without TLS or HTTP: the handler's own cost per review; and `Webhook::pin` (the mutating
//! webhook, `/pin-digests`) on the same body, beside `Webhook::handle`. The server runs without a logger,
//! as the load runs do; the HTTP handler is timed once more with the JSON logger at its
//! default level writing to nowhere, for the cost of the log line of each decision. Under load it also reports the CPU
//! time per request of the servers (this process) and of wrk: on a small machine they share
//! the cores, so throughput is about cores / (server + wrk CPU per request).
//!
//! `WEBHOOK_LOAD_PROFILE=300000 cargo bench ... --bench webhook_load` only handles the body
//! that many times in process and stops: something to run under `perf record`.

#![allow(
    missing_docs,
    clippy::expect_used,
    clippy::unwrap_used,
    clippy::panic,
    clippy::indexing_slicing
)]

mod support;

use std::path::Path;
use std::process::Command;
use std::sync::Arc;

use bytes::Bytes;
use http::{Request, Response};
use image_policy::server::{Handler, ServerConfig, serve_on};
use image_policy::telemetry::{Metrics, env_filter, json_layer};
use image_policy::webhook::http::{ADMISSION_PATH, Routes};
use image_policy::webhook::review::Request as Review;
use tokio::net::TcpListener;
use tracing_subscriber::layer::SubscriberExt as _;

const DURATION: &str = "10s";
const CONNECTIONS: &str = "16";
/// Reviews handled in process for the per-review figures.
const IN_PROCESS_ROUNDS: u32 = 50_000;

struct FixedAllow;

impl Handler for FixedAllow {
    async fn handle(&self, _: Request<Bytes>) -> Response<Bytes> {
        Response::new(Bytes::from_static(
            br#"{"apiVersion":"admission.k8s.io/v1","kind":"AdmissionReview","response":{"uid":"0c3331b6-1812-11ea-b3fc-02897404852e","allowed":true}}"#,
        ))
    }
}

/// Microseconds of this thread's CPU time per call of `f`, over [`IN_PROCESS_ROUNDS`] calls
/// after a short warm-up: CPU time rather than elapsed time, so that other processes on the
/// machine count less (wall-clock time where the kernel does not say).
async fn per_review<F, Fut, T>(f: F) -> f64
where
    F: Fn() -> Fut,
    Fut: std::future::Future<Output = T>,
{
    for _ in 0..IN_PROCESS_ROUNDS / 10 {
        std::hint::black_box(f().await);
    }
    let (start, cpu_start) = (std::time::Instant::now(), thread_cpu_ns());
    for _ in 0..IN_PROCESS_ROUNDS {
        std::hint::black_box(f().await);
    }
    let ns = match (cpu_start, thread_cpu_ns()) {
        (Some(before), Some(after)) => (after - before) as f64,
        _ => start.elapsed().as_nanos() as f64,
    };
    ns / 1e3 / f64::from(IN_PROCESS_ROUNDS)
}

/// Nanoseconds this thread has run, from `/proc/thread-self/schedstat` (Linux). The futures
/// above run on the thread that blocks on them: nothing is spawned.
fn thread_cpu_ns() -> Option<u64> {
    std::fs::read_to_string("/proc/thread-self/schedstat")
        .ok()?
        .split_whitespace()
        .next()?
        .parse()
        .ok()
}

struct WrkResult {
    rps: f64,
    p50: String,
    p90: String,
    p99: String,
    /// CPU time of this process (the servers) per request, in microseconds.
    server_cpu_us: f64,
    /// CPU time of wrk per request, in microseconds.
    wrk_cpu_us: f64,
}

/// CPU seconds used so far by this process and by its children that have been waited for,
/// from `/proc/self/stat` (Linux; zeros elsewhere).
fn cpu_seconds() -> (f64, f64) {
    let stat = std::fs::read_to_string("/proc/self/stat").unwrap_or_default();
    // Fields after the command name, which is in parentheses and may hold spaces.
    let fields: Vec<f64> = stat
        .rsplit_once(')')
        .map(|(_, rest)| {
            rest.split_whitespace()
                .map(|f| f.parse().unwrap_or(0.0))
                .collect()
        })
        .unwrap_or_default();
    // utime, stime, cutime, cstime are fields 14 to 17; the slice starts at field 3.
    let ticks = |i: usize| fields.get(i - 3).copied().unwrap_or(0.0);
    // Clock ticks per second: 100 on Linux unless configured otherwise.
    let hz = 100.0;
    ((ticks(14) + ticks(15)) / hz, (ticks(16) + ticks(17)) / hz)
}

fn wrk(port: u16, body: &Path, dir: &Path) -> WrkResult {
    let script = dir.join("post.lua");
    std::fs::write(
        &script,
        format!(
            "local f = io.open(\"{}\", \"rb\")\nwrk.method = \"POST\"\nwrk.body = f:read(\"*a\")\nf:close()\n\
             wrk.headers[\"Content-Type\"] = \"application/json\"\n",
            body.display()
        ),
    )
    .expect("script");
    let (server_before, children_before) = cpu_seconds();
    let out = Command::new("wrk")
        .args([
            "-t2",
            "-c",
            CONNECTIONS,
            "-d",
            DURATION,
            "--latency",
            "-s",
            script.to_str().unwrap(),
        ])
        .arg(format!("https://127.0.0.1:{port}/signing-policy-check"))
        .output()
        .expect("wrk (apt-get install wrk)");
    let (server_after, children_after) = cpu_seconds();
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(!text.contains("Non-2xx"), "errors under load:\n{text}");
    let field = |prefix: &str| {
        text.lines()
            .find(|l| l.trim_start().starts_with(prefix))
            .and_then(|l| l.split_whitespace().nth(1))
            .unwrap_or("?")
            .to_owned()
    };
    let rps = field("Requests/sec:").parse().unwrap_or(0.0);
    // "  123456 requests in 10.00s, 29.87MB read"
    let requests: f64 = text
        .lines()
        .find(|l| l.contains(" requests in "))
        .and_then(|l| l.split_whitespace().next())
        .and_then(|n| n.parse().ok())
        .unwrap_or(f64::NAN);
    WrkResult {
        rps,
        p50: field("50%"),
        p90: field("90%"),
        p99: field("99%"),
        server_cpu_us: (server_after - server_before) * 1e6 / requests,
        wrk_cpu_us: (children_after - children_before) * 1e6 / requests,
    }
}

fn main() {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("runtime");
    runtime.block_on(run());
}

async fn run() {
    let signed = support::signed_webhook().await;
    let (webhook, body) = (signed.webhook, signed.body);
    let dir = tempfile::tempdir().expect("dir");
    if let Some(rounds) = std::env::var("WEBHOOK_LOAD_PROFILE")
        .ok()
        .and_then(|n| n.parse::<u32>().ok())
    {
        // For a profiler: only the handler, `rounds` times, then stop.
        let start = std::time::Instant::now();
        for _ in 0..rounds {
            std::hint::black_box(webhook.handle(&body).await);
        }
        let us = start.elapsed().as_secs_f64() * 1e6 / f64::from(rounds.max(1));
        println!("Webhook::handle {us:.2} µs per review over {rounds}");
        return;
    }
    let handle_us = per_review(|| async { webhook.handle(&body).await.status }).await;
    // The mutating webhook on the same cached 1-image Pod: the same decision, and its patch.
    let pinned = webhook.pin(&body).await;
    assert_eq!(
        pinned.pins.len(),
        1,
        "{}",
        String::from_utf8_lossy(&pinned.body)
    );
    let pin_us = per_review(|| async { webhook.pin(&body).await.status }).await;
    let parse_us = per_review(|| async { Review::parse(&body).is_ok() }).await;
    let body_file = dir.path().join("review.json");
    std::fs::write(&body_file, &body).expect("body file");

    let (cert, key) = image_policy_testsupport::tls::self_signed(dir.path());
    let server_config = ServerConfig::new(&cert, &key);
    let routes = Arc::new(Routes::new(webhook, Metrics::new()));
    // The HTTP handler: the review, its metrics and its log line. The bench runs without a
    // logger, so `tracing` events cost next to nothing; the server logs every decision at its
    // default level (info), so the same is timed again with the JSON logger, writing nowhere.
    let posted = Bytes::from(body.clone());
    let post = || {
        Request::post(ADMISSION_PATH)
            .body(posted.clone())
            .expect("request")
    };
    let routes_us = per_review(|| routes.handle(post())).await;
    let logged_us = {
        let logger = tracing_subscriber::registry()
            .with(env_filter("info", None).expect("filter"))
            .with(json_layer(std::io::sink));
        let _default = tracing::subscriber::set_default(logger);
        per_review(|| routes.handle(post())).await
    };
    let ours = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let bare = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let (ours_port, bare_port) = (
        ours.local_addr().unwrap().port(),
        bare.local_addr().unwrap().port(),
    );
    tokio::spawn(serve_on(
        ours,
        server_config.clone(),
        routes,
        std::future::pending(),
    ));
    tokio::spawn(serve_on(
        bare,
        server_config,
        Arc::new(FixedAllow),
        std::future::pending(),
    ));

    let (body_file, dir_path) = (body_file.clone(), dir.path().to_owned());
    let (webhook_result, bare_result) = tokio::task::spawn_blocking(move || {
        let bare = wrk(bare_port, &body_file, &dir_path);
        let ours = wrk(ours_port, &body_file, &dir_path);
        (ours, bare)
    })
    .await
    .expect("wrk");

    println!(
        "in process, {IN_PROCESS_ROUNDS} reviews of {} bytes, µs of CPU per review:\n  \
         Request::parse {parse_us:.1}, Webhook::handle {handle_us:.1}, Routes::handle {routes_us:.1}, \
         Routes::handle with the JSON log line {logged_us:.1}, Webhook::pin {pin_us:.1}\n  \
         Webhook::pin / Webhook::handle: {:.2}x (goal: at most 1.5x)\n",
        body.len(),
        pin_us / handle_us
    );
    println!("wrk -t2 -c{CONNECTIONS} -d{DURATION} --latency, TLS keep-alive, 127.0.0.1\n");
    println!(
        "{:<40} {:>12} {:>10} {:>10} {:>10} {:>16} {:>13}",
        "", "requests/s", "p50", "p90", "p99", "server CPU/req", "wrk CPU/req"
    );
    for (name, r) in [
        ("webhook, cached signed Pod", &webhook_result),
        ("bare server, fixed allow", &bare_result),
    ] {
        println!(
            "{name:<40} {:>12.0} {:>10} {:>10} {:>10} {:>13.1} µs {:>10.1} µs",
            r.rps, r.p50, r.p90, r.p99, r.server_cpu_us, r.wrk_cpu_us
        );
    }
    println!(
        "\nthroughput ratio webhook / bare: {:.2}x (goal: at least 0.80x; p99 goal: under 2 ms)",
        webhook_result.rps / bare_result.rps
    );
}
