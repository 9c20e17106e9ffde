//! Admission throughput and latency over TLS with keep-alive, measured with `wrk` (Debian's
//! package) on 127.0.0.1, side by side with a bare server on the same stack that answers a
//! fixed allow:
//!
//! - webhook: `POST /signing-policy-check` with a Pod whose image matches the policy and
//!   whose signature verdict is cached (the steady state of a busy cluster);
//! - bare: the same hyper + tokio-rustls server with a handler that returns a fixed
//!   AdmissionReview allow without looking at the body (the server reads it in, as for any
//!   handler);
//! - bare, reading the review: the same, after `Request::parse` of the body: what any
//!   webhook that reads its review pays before it decides anything.
//!
//! `cargo bench -p image-policy --bench webhook_load` (needs `wrk` and `hack/registry.sh
//! install`). Prints requests per second and latency percentiles of each, and their ratio.
//! Before that, it times `Request::parse`, `Webhook::handle` and the HTTP handler
//! (`Routes::handle`: metrics and the decision's log line too) on the same body in process,
//! without TLS or HTTP: the handler's own cost per review; and `Webhook::pin` (the mutating
//! webhook, `/pin-digests`) on the same body, beside `Webhook::handle`. The HTTP handler is
//! timed without a logger and again with the JSON logger at its default level writing to a
//! sink: the difference is the cost of the log line of each decision.
//!
//! The load runs measure the webhook as deployed: after the bare servers and the webhook
//! without a logger, the JSON logger at its default level (info) is installed for the whole
//! process, writing to `/dev/null`, and the webhook runs again with one log line per decision;
//! the bare server logs nothing. Under load it also reports the CPU time per request of the
//! servers (this process) and of wrk: on a small machine they share the cores, so throughput
//! is about cores / (server + wrk CPU per request).
//!
//! Last, a second table that carries over from one machine and one run to the next:
//! instructions and allocations per cached review in process, counted by valgrind's callgrind
//! for reading the review, the decision, the HTTP handler and the log line (`callgrind.rs`).
//! `hack/bench.sh` installs wrk, valgrind and the registry, then runs this bench.
//! `WEBHOOK_LOAD=callgrind` prints that table alone, `WEBHOOK_LOAD=wrk` the others alone.
//! `WEBHOOK_LOAD_PROFILE=<rounds> cargo bench ... --bench webhook_load` only runs those stages
//! `rounds` times each and stops: what callgrind runs, and something for `perf record` too.

#![allow(
    missing_docs,
    clippy::expect_used,
    clippy::unwrap_used,
    clippy::panic,
    clippy::indexing_slicing
)]

#[path = "webhook_load/callgrind.rs"]
mod callgrind;
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
use tracing_subscriber::fmt::MakeWriter;
use tracing_subscriber::layer::SubscriberExt as _;

const DURATION: &str = "10s";
const CONNECTIONS: &str = "16";
/// Reviews handled in process for each per-review figure: [`BATCHES`] batches of
/// [`BATCH`], of which the fastest counts.
const BATCH: u32 = 10_000;
const BATCHES: u32 = 5;
/// Reviews per stage under callgrind: its counts are the same for any number of rounds; this
/// many make the one-off costs inside a stage (its first call's) negligible.
const CALLGRIND_ROUNDS: u32 = 10_000;

/// The bare server's handler: a fixed allow, after reading the body as a review when
/// `read_review` (the floor of any webhook that reads what it is sent).
struct FixedAllow {
    read_review: bool,
}

impl Handler for FixedAllow {
    async fn handle(&self, request: Request<Bytes>) -> Response<Bytes> {
        if self.read_review {
            assert!(Review::parse(request.body()).is_ok(), "not a review");
        }
        Response::new(Bytes::from_static(
            br#"{"apiVersion":"admission.k8s.io/v1","kind":"AdmissionReview","response":{"uid":"0c3331b6-1812-11ea-b3fc-02897404852e","allowed":true}}"#,
        ))
    }
}

/// Microseconds of this thread's CPU time per call of `f`: the fastest of [`BATCHES`]
/// batches of [`BATCH`] calls, each after a short warm-up. CPU time rather than elapsed
/// time, and the fastest batch rather than the mean, so that other processes on the machine
/// count less (wall-clock time where the kernel does not say).
async fn per_review<F, Fut, T>(f: F) -> f64
where
    F: Fn() -> Fut,
    Fut: std::future::Future<Output = T>,
{
    let mut fastest = f64::INFINITY;
    for _ in 0..BATCHES {
        fastest = fastest.min(batch(&f).await);
    }
    fastest
}

/// [`per_review`] of `f` without a logger, with the JSON logger at its default level writing
/// to a sink, and with it writing to `/dev/null` (one `write` per line, as to stderr), in
/// alternating batches so that a busy moment of the machine weighs on each alike: the
/// differences are the cost of the log line, without and with its system call.
async fn per_review_logged<F, Fut, T>(f: F) -> [f64; 3]
where
    F: Fn() -> Fut,
    Fut: std::future::Future<Output = T>,
{
    let dev_null = Arc::new(std::fs::File::create("/dev/null").expect("/dev/null"));
    let mut fastest = [f64::INFINITY; 3];
    for _ in 0..BATCHES {
        // No logger at all: `tracing` forgets that the last one wanted these events.
        tracing::callsite::rebuild_interest_cache();
        fastest[0] = fastest[0].min(batch(&f).await);
        {
            let logger = tracing::Dispatch::new(json_logger(std::io::sink));
            let _default = tracing::dispatcher::set_default(&logger);
            fastest[1] = fastest[1].min(batch(&f).await);
        }
        let logger = tracing::Dispatch::new(json_logger(dev_null.clone()));
        let _default = tracing::dispatcher::set_default(&logger);
        fastest[2] = fastest[2].min(batch(&f).await);
    }
    tracing::callsite::rebuild_interest_cache();
    fastest
}

/// Microseconds of this thread's CPU time per call of `f`, over [`BATCH`] calls after a
/// warm-up of a tenth of that.
async fn batch<F, Fut, T>(f: &F) -> f64
where
    F: Fn() -> Fut,
    Fut: std::future::Future<Output = T>,
{
    for _ in 0..BATCH / 10 {
        std::hint::black_box(f().await);
    }
    let (start, cpu_start) = (std::time::Instant::now(), thread_cpu_ns());
    for _ in 0..BATCH {
        std::hint::black_box(f().await);
    }
    let ns = match (cpu_start, thread_cpu_ns()) {
        (Some(before), Some(after)) => (after - before) as f64,
        _ => start.elapsed().as_nanos() as f64,
    };
    ns / 1e3 / f64::from(BATCH)
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

/// The JSON logger at its default level, as `image-policy run` installs it, writing to
/// `make_writer`.
fn json_logger<W>(make_writer: W) -> impl tracing::Subscriber + Send + Sync
where
    W: for<'w> MakeWriter<'w> + Send + Sync + 'static,
{
    tracing_subscriber::registry()
        .with(env_filter("", None).expect("filter"))
        .with(json_layer(make_writer))
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
    let body = signed.body.clone();
    let dir = tempfile::tempdir().expect("dir");
    if let Ok(rounds) = std::env::var("WEBHOOK_LOAD_PROFILE") {
        let rounds = rounds.parse().expect("WEBHOOK_LOAD_PROFILE=<rounds>");
        callgrind::stages(rounds, signed.webhook, &body);
        return;
    }
    // `WEBHOOK_LOAD=callgrind`: the second table alone, without the minute of wrk.
    if std::env::var("WEBHOOK_LOAD").as_deref() == Ok("callgrind") {
        callgrind_table(dir.path());
        return;
    }
    let webhook = signed.webhook;
    let handle_us = per_review(|| async { webhook.handle(&body).await.status() }).await;
    // The mutating webhook on the same cached 1-image Pod: the same decision, and its patch.
    let pinned = webhook.pin(&body).await;
    assert_eq!(
        pinned.pins().len(),
        1,
        "{}",
        String::from_utf8_lossy(&pinned.body())
    );
    let pin_us = per_review(|| async { webhook.pin(&body).await.status() }).await;
    let parse_us = per_review(|| async { Review::parse(&body).is_ok() }).await;
    let body_file = dir.path().join("review.json");
    std::fs::write(&body_file, &body).expect("body file");

    let (cert, key) = image_policy_testsupport::tls::self_signed(dir.path());
    let server_config = ServerConfig::new(&cert, &key);
    let routes = Arc::new(Routes::new(webhook, Metrics::new()));
    // The HTTP handler: the review, its metrics and its log line; without a logger `tracing`
    // events cost next to nothing, so the same is timed again with the JSON logger at its
    // default level (info) writing to a sink (the difference is the log line) and to
    // /dev/null (its system call too).
    let posted = Bytes::from(body.clone());
    let post = || {
        Request::post(ADMISSION_PATH)
            .body(posted.clone())
            .expect("request")
    };
    let [routes_us, logged_us, dev_null_us] = per_review_logged(|| routes.handle(post())).await;
    let ours = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let bare = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let reading = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let [ours_port, bare_port, reading_port] =
        [&ours, &bare, &reading].map(|l| l.local_addr().unwrap().port());
    tokio::spawn(serve_on(
        ours,
        server_config.clone(),
        routes,
        std::future::pending(),
    ));
    for (listener, read_review) in [(bare, false), (reading, true)] {
        tokio::spawn(serve_on(
            listener,
            server_config.clone(),
            Arc::new(FixedAllow { read_review }),
            std::future::pending(),
        ));
    }

    let (body_file, dir_path) = (body_file.clone(), dir.path().to_owned());
    let [bare_result, reading_result, unlogged_result, webhook_result] =
        tokio::task::spawn_blocking(move || {
            let bare = wrk(bare_port, &body_file, &dir_path);
            let reading = wrk(reading_port, &body_file, &dir_path);
            let unlogged = wrk(ours_port, &body_file, &dir_path);
            // From here on the process logs as deployed, to nowhere: each decision writes its
            // line (the bare server logs nothing).
            let dev_null = std::fs::File::create("/dev/null").expect("/dev/null");
            tracing::subscriber::set_global_default(json_logger(Arc::new(dev_null)))
                .expect("logger");
            let logged = wrk(ours_port, &body_file, &dir_path);
            [bare, reading, unlogged, logged]
        })
        .await
        .expect("wrk");

    println!(
        "in process, reviews of {} bytes, µs of CPU per review (fastest of {BATCHES} x {BATCH}):\n  \
         Request::parse {parse_us:.1}, Webhook::handle {handle_us:.1}, Webhook::pin {pin_us:.1}, \
         Routes::handle {routes_us:.1}, Routes::handle with the JSON log line {logged_us:.1} \
         (to /dev/null {dev_null_us:.1})\n  \
         Webhook::pin / Webhook::handle: {:.2}x (goal: at most 1.5x)\n  \
         the log line (Routes::handle with it - without): {:.2} µs (goal: at most 2 µs); \
         its write to /dev/null: {:.2} µs more\n",
        body.len(),
        pin_us / handle_us,
        logged_us - routes_us,
        dev_null_us - logged_us,
    );
    println!("wrk -t2 -c{CONNECTIONS} -d{DURATION} --latency, TLS keep-alive, 127.0.0.1\n");
    println!(
        "{:<40} {:>12} {:>10} {:>10} {:>10} {:>16} {:>13}",
        "", "requests/s", "p50", "p90", "p99", "server CPU/req", "wrk CPU/req"
    );
    for (name, r) in [
        ("webhook, cached signed Pod, logged", &webhook_result),
        ("webhook, the same without a logger", &unlogged_result),
        ("bare server, reading the review", &reading_result),
        ("bare server, fixed allow", &bare_result),
    ] {
        println!(
            "{name:<40} {:>12.0} {:>10} {:>10} {:>10} {:>13.1} µs {:>10.1} µs",
            r.rps, r.p50, r.p90, r.p99, r.server_cpu_us, r.wrk_cpu_us
        );
    }
    println!(
        "\nthroughput ratio webhook (logged) / bare: {:.2}x (goal: at least 0.80x; p99 goal: under 2 ms)",
        webhook_result.rps / bare_result.rps
    );
    println!(
        "server CPU per request, webhook logging each decision / bare: {:.2}x (goal: at most 1.5x); \
         without a logger: {:.2}x",
        webhook_result.server_cpu_us / bare_result.server_cpu_us,
        unlogged_result.server_cpu_us / bare_result.server_cpu_us,
    );
    println!(
        "reading the review alone (Request::parse, then the fixed allow) / bare: {:.2}x; \
         the webhook logging each decision / that: {:.2}x",
        reading_result.server_cpu_us / bare_result.server_cpu_us,
        webhook_result.server_cpu_us / reading_result.server_cpu_us,
    );
    if std::env::var("WEBHOOK_LOAD").as_deref() != Ok("wrk") {
        callgrind_table(dir.path());
    }
}

/// The second table: instructions and allocations per cached review (see `callgrind.rs`).
fn callgrind_table(dir: &Path) {
    println!();
    let Some(counted) = callgrind::measure(CALLGRIND_ROUNDS, dir) else {
        println!("valgrind is not installed (hack/bench.sh installs it): no instruction counts");
        return;
    };
    println!(
        "callgrind, per cached review in process ({CALLGRIND_ROUNDS} rounds each, after a warm-up):"
    );
    println!("{:<50} {:>14} {:>13}", "", "instructions", "allocations");
    for (name, c) in callgrind::STAGES.iter().zip(&counted) {
        println!(
            "{name:<50} {:>14.0} {:>13.1}",
            c.instructions, c.allocations
        );
    }
    let [parse, handle, routes, logged] = [0, 1, 2, 3].map(|i| counted[i]);
    for (name, more, less) in [
        (
            "the decision and its answer (handle - parse)",
            handle,
            parse,
        ),
        ("the log line (logged - no logger)", logged, routes),
    ] {
        println!(
            "{name:<50} {:>14.0} {:>13.1}",
            more.instructions - less.instructions,
            more.allocations - less.allocations
        );
    }
}
