//! One webhook replica under connection floods, as an attacker inside the cluster network
//! could send them, while reviews keep arriving on fresh connections as the API server's do:
//!
//! - idle: 20,000 TLS connections opened at 500 per second (the rate an issue reported),
//!   then as fast as the client can, each then left idle;
//! - streams: 16 HTTP/2 connections opening request streams whose bodies never end, as many
//!   as the server allows (512, twice its handler slots), again as each times out;
//! - resets: HTTP/2 connections that open streams and reset them at once ("rapid reset").
//!
//! `cargo bench -p image-policy --bench connection_flood` (needs `hack/registry.sh
//! install`). The server is this process: the webhook as `image-policy run` builds it (the
//! real server with its default limits, `--max-connections` 1024, the real handler with a
//! cached signed Pod). The prober and each attack are child processes (this binary again),
//! so that the resident memory measured is the server's alone; on two cores or more the
//! server runs on core 0 and the children on core 1, the attacker at the lowest priority, as
//! if each were on a machine of its own. The prober sends one review on a new connection
//! every 10 ms; the table gives its latency percentiles and failures, and the server's peak
//! RSS, per phase. `CONNECTION_FLOOD=N` changes the 20,000; `CONNECTION_FLOOD_KEY=rsa` serves
//! an RSA 2048 key instead of the P-256 one the chart makes.

#![allow(
    missing_docs,
    clippy::expect_used,
    clippy::unwrap_used,
    clippy::panic,
    clippy::indexing_slicing
)]

mod support;

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use image_policy::server::{ServerConfig, serve_on};
use image_policy::telemetry::Metrics;
use image_policy::webhook::http::{ADMISSION_PATH, Routes};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, ServerName};
use tokio::io::AsyncReadExt;
use tokio::net::{TcpListener, TcpSocket};

const CHILD: &str = "CONNECTION_FLOOD_CHILD";
const PROBE_EVERY: Duration = Duration::from_millis(10);
const PHASE: Duration = Duration::from_secs(8);
/// HTTP/2 connections opening streams that never end, 32 streams each.
const STREAM_CONNECTIONS: usize = 16;
/// The server's concurrent streams per connection.
const H2_STREAMS: usize = 32;
/// As `image-policy run` sets it (`--max-connections`).
const MAX_CONNECTIONS: usize = 1024;

fn main() {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("runtime");
    match std::env::var(CHILD) {
        Ok(args) => runtime.block_on(child(&args)),
        Err(_) => runtime.block_on(parent()),
    }
}

/// Peak resident memory of this process since the last reset, from `/proc/self/status`.
fn rss_kib() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .unwrap_or_default()
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next()?.parse().ok())
        .unwrap_or(0)
}

async fn parent() {
    let signed = support::signed_webhook().await;
    let dir = tempfile::tempdir().expect("dir");
    // The serving key as the chart makes it (P-256); `CONNECTION_FLOOD_KEY=rsa`: RSA 2048, as
    // Helm's genCA made it before, to compare what handshakes cost the server.
    let rsa = std::env::var("CONNECTION_FLOOD_KEY").is_ok_and(|k| k == "rsa");
    let (cert, key) = if rsa {
        image_policy_testsupport::tls::self_signed_rsa(dir.path())
    } else {
        image_policy_testsupport::tls::self_signed(dir.path())
    };
    println!(
        "serving key: {}",
        if rsa { "RSA 2048" } else { "ECDSA P-256" }
    );
    let body_file = dir.path().join("review.json");
    std::fs::write(&body_file, &signed.body).expect("body");
    let mut config = ServerConfig::new(&cert, &key);
    config.max_connections = Some(MAX_CONNECTIONS);
    let routes = Arc::new(Routes::new(signed.webhook, Metrics::new()));
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().unwrap();
    tokio::spawn(serve_on(listener, config, routes, std::future::pending()));
    tokio::time::sleep(Duration::from_millis(100)).await;

    let peak = Arc::new(AtomicU64::new(rss_kib()));
    let sampler = Arc::clone(&peak);
    tokio::spawn(async move {
        loop {
            sampler.fetch_max(rss_kib(), Ordering::Relaxed);
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    });
    let flood: usize = std::env::var("CONNECTION_FLOOD")
        .ok()
        .and_then(|n| n.parse().ok())
        .unwrap_or(20_000);
    let before = rss_kib();
    let pinned = pin_to_separate_cores();
    let args = format!("{addr} {} {}", cert.display(), body_file.display());
    let rows = tokio::task::spawn_blocking(move || {
        ["quiet", "idle500", "idle", "streams", "resets"].map(|phase| {
            peak.store(rss_kib(), Ordering::Relaxed);
            let (cpu_before, started) = (cpu_seconds(), Instant::now());
            // The prober at normal priority, the attacker below it: each as if on a machine
            // of its own, so that neither the attacker's CPU nor the prober's is the server's.
            let mut prober = child_process(pinned, false)
                .env(CHILD, format!("probe {args}"))
                .stdin(Stdio::piped())
                .stdout(Stdio::piped())
                .spawn()
                .expect("prober");
            let attacker = child_process(pinned, true)
                .env(CHILD, format!("{phase} {args} {flood}"))
                .stdout(Stdio::piped())
                .output()
                .expect("attacker");
            assert!(attacker.status.success(), "the {phase} attacker failed");
            drop(prober.stdin.take());
            let probed = prober.wait_with_output().expect("prober");
            assert!(probed.status.success(), "the prober failed");
            let busy = (cpu_seconds() - cpu_before) / started.elapsed().as_secs_f64();
            let (name, attacks) = phase_name(phase);
            format!(
                "{name:<38} {:>8} {} {:>14.1} {:>11.0} %",
                String::from_utf8_lossy(&attacker.stdout)
                    .trim()
                    .replace(attacks, ""),
                String::from_utf8_lossy(&probed.stdout).trim(),
                peak.load(Ordering::Relaxed) as f64 / 1024.0,
                busy * 100.0
            )
        })
    })
    .await
    .unwrap();
    println!(
        "one replica, --max-connections {MAX_CONNECTIONS}; a review on a new TLS connection every {PROBE_EVERY:?}; \
         server RSS before: {:.1} MiB; {}\n",
        before as f64 / 1024.0,
        if pinned {
            "server on core 0, prober and (niced) attackers on core 1, as on other machines"
        } else {
            "server, attackers and prober sharing the cores"
        }
    );
    println!(
        "{:<38} {:>8} {:>8} {:>8} {:>8} {:>8} {:>8} {:>14} {:>13}",
        "",
        "attacks",
        "reviews",
        "failed",
        "p50 ms",
        "p99 ms",
        "max ms",
        "peak RSS MiB",
        "server CPU"
    );
    for row in rows {
        println!("{row}");
    }
    println!(
        "\ngoals: every review answered, p99 under 50 ms, RSS under 64 MiB; server CPU is of one core"
    );
}

fn phase_name(phase: &str) -> (&'static str, &'static str) {
    match phase {
        "idle" => ("idle TLS connections, at full speed", "connections "),
        "idle500" => ("idle TLS connections, 500 per second", "connections "),
        "streams" => ("HTTP/2 streams that never end, 16 conns", "streams "),
        "resets" => ("HTTP/2 rapid resets", "streams "),
        _ => ("quiet (no attack)", "none "),
    }
}

/// This binary again, on core 1 when `pinned`, at the lowest priority when `nice`.
fn child_process(pinned: bool, nice: bool) -> Command {
    let exe = std::env::current_exe().unwrap();
    let mut words: Vec<std::ffi::OsString> = Vec::new();
    if nice {
        words.extend(["nice".into(), "-n".into(), "19".into()]);
    }
    if pinned {
        words.extend(["taskset".into(), "-c".into(), "1".into()]);
    }
    words.push(exe.into());
    let mut command = Command::new(&words[0]);
    command.args(&words[1..]);
    command
}

/// CPU seconds this process has used, from `/proc/self/stat` (utime + stime, 100 Hz).
fn cpu_seconds() -> f64 {
    let stat = std::fs::read_to_string("/proc/self/stat").unwrap_or_default();
    let fields: Vec<f64> = stat
        .rsplit_once(')')
        .map(|(_, rest)| {
            rest.split_whitespace()
                .map(|f| f.parse().unwrap_or(0.0))
                .collect()
        })
        .unwrap_or_default();
    (fields.get(11).copied().unwrap_or(0.0) + fields.get(12).copied().unwrap_or(0.0)) / 100.0
}

/// Puts this process (every thread) on core 0, for the children to run on core 1, so that
/// the attacker's TLS handshakes do not take the server's CPU, as they would not from another
/// machine: with `taskset` (util-linux) on a machine of two cores or more.
fn pin_to_separate_cores() -> bool {
    if std::thread::available_parallelism().map_or(1, |n| n.get()) < 2 {
        return false;
    }
    Command::new("taskset")
        .args(["-a", "-p", "-c", "0", &std::process::id().to_string()])
        .stdout(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

/// A child: `probe ADDR CA BODY` probes until its stdin closes and prints its figures;
/// `PHASE ADDR CA BODY N` runs one attack and prints how many it made.
async fn child(args: &str) {
    let parts: Vec<&str> = args.split(' ').collect();
    let addr: SocketAddr = parts[1].parse().unwrap();
    let ca = PathBuf::from(parts[2]);
    if parts[0] == "probe" {
        let body = Arc::new(std::fs::read(parts[3]).unwrap());
        let stop = Arc::new(AtomicBool::new(false));
        let stopper = Arc::clone(&stop);
        std::thread::spawn(move || {
            let _ = std::io::copy(&mut std::io::stdin(), &mut std::io::sink());
            stopper.store(true, Ordering::Relaxed);
        });
        let mut latencies = probe(addr, ca, body, stop).await;
        let failed = latencies.iter().filter(|l| l.is_none()).count();
        let mut ok: Vec<f64> = latencies.drain(..).flatten().collect();
        ok.sort_by(f64::total_cmp);
        let at = |q: f64| ok.get(((ok.len() as f64 * q) as usize).min(ok.len().saturating_sub(1)));
        let ms = |v: Option<&f64>| v.map_or("-".to_owned(), |v| format!("{v:.1}"));
        println!(
            "{:>8} {failed:>8} {:>8} {:>8} {:>8}",
            ok.len() + failed,
            ms(at(0.5)),
            ms(at(0.99)),
            ms(ok.last()),
        );
        return;
    }
    let tls = Arc::new(client_config(&ca));
    let phase = match parts[0] {
        "idle" => Phase::Idle(parts[4].parse().unwrap(), None),
        "idle500" => Phase::Idle(parts[4].parse().unwrap(), Some(500)),
        "streams" => Phase::Streams,
        "resets" => Phase::Resets,
        _ => Phase::Quiet,
    };
    let (_, unit) = phase_name(parts[0]);
    let made = attack(phase, addr, &tls, &Arc::new(AtomicBool::new(false))).await;
    println!("{unit}{made}");
}

#[derive(Clone, Copy)]
enum Phase {
    Quiet,
    /// How many, and at most how many per second.
    Idle(usize, Option<u32>),
    Streams,
    Resets,
}

/// Runs one phase's attack; how many connections (idle) or streams (HTTP/2) it opened.
async fn attack(
    phase: Phase,
    addr: SocketAddr,
    tls: &Arc<rustls::ClientConfig>,
    stop: &Arc<AtomicBool>,
) -> usize {
    match phase {
        Phase::Quiet => {
            tokio::time::sleep(PHASE).await;
            0
        }
        Phase::Idle(n, rate) => idle_flood(n, rate, addr, tls).await,
        Phase::Streams => {
            let deadline = Instant::now() + PHASE;
            let opened = Arc::new(AtomicUsize::new(0));
            // Enough connections for their streams to outnumber the server's 256 handler
            // slots twice over; each reconnects if the server ends it.
            let clients: Vec<_> = (0..STREAM_CONNECTIONS)
                .map(|_| {
                    let (tls, opened) = (Arc::clone(tls), Arc::clone(&opened));
                    tokio::spawn(async move {
                        while Instant::now() < deadline {
                            let _ = tokio::time::timeout_at(
                                deadline.into(),
                                endless_streams(addr, &tls, Arc::clone(&opened)),
                            )
                            .await;
                        }
                    })
                })
                .collect();
            for client in clients {
                let _ = client.await;
            }
            opened.load(Ordering::Relaxed)
        }
        Phase::Resets => {
            let deadline = Instant::now() + PHASE;
            let opened = Arc::new(AtomicUsize::new(0));
            while Instant::now() < deadline && !stop.load(Ordering::Relaxed) {
                let _ = tokio::time::timeout_at(
                    deadline.into(),
                    rapid_resets(addr, tls, Arc::clone(&opened)),
                )
                .await;
            }
            opened.load(Ordering::Relaxed)
        }
    }
}

fn client_config(ca: &Path) -> rustls::ClientConfig {
    let mut roots = rustls::RootCertStore::empty();
    roots
        .add(CertificateDer::from_pem_file(ca).unwrap())
        .unwrap();
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(roots)
        .with_no_client_auth()
}

/// Opens `n` TLS connections, 64 handshakes at a time and at most `rate` per second, each
/// then idle until the server closes it; returns once all are opened, plus a second.
async fn idle_flood(
    n: usize,
    rate: Option<u32>,
    addr: SocketAddr,
    tls: &Arc<rustls::ClientConfig>,
) -> usize {
    let mut pace = rate.map(|r| tokio::time::interval(Duration::from_secs(1) / r));
    let mut config = (**tls).clone();
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    let connector = tokio_rustls::TlsConnector::from(Arc::new(config));
    let gate = Arc::new(tokio::sync::Semaphore::new(64));
    let opened = Arc::new(AtomicUsize::new(0));
    for i in 0..n {
        if let Some(pace) = &mut pace {
            pace.tick().await;
        }
        let permit = Arc::clone(&gate).acquire_owned().await.unwrap();
        let (connector, opened) = (connector.clone(), Arc::clone(&opened));
        tokio::spawn(async move {
            // Several source addresses, so that closed connections' ports are not exhausted.
            let source = IpAddr::V4(Ipv4Addr::new(127, 0, 1, 1 + (i % 8) as u8));
            let Ok(socket) = TcpSocket::new_v4() else {
                return;
            };
            if socket.bind(SocketAddr::new(source, 0)).is_err() {
                return;
            }
            let Ok(tcp) = socket.connect(addr).await else {
                return;
            };
            let handshake = connector.connect(ServerName::from(addr.ip()), tcp).await;
            drop(permit);
            if let Ok(mut stream) = handshake {
                opened.fetch_add(1, Ordering::Relaxed);
                let mut sink = [0u8; 64];
                while matches!(stream.read(&mut sink).await, Ok(n) if n > 0) {}
            }
        });
    }
    tokio::time::sleep(Duration::from_secs(1)).await;
    opened.load(Ordering::Relaxed)
}

async fn h2_connect(
    addr: SocketAddr,
    tls: &Arc<rustls::ClientConfig>,
) -> Option<h2::client::SendRequest<bytes::Bytes>> {
    let mut config = (**tls).clone();
    config.alpn_protocols = vec![b"h2".to_vec()];
    let tcp = tokio::net::TcpStream::connect(addr).await.ok()?;
    let stream = tokio_rustls::TlsConnector::from(Arc::new(config))
        .connect(ServerName::from(addr.ip()), tcp)
        .await
        .ok()?;
    let (send, connection) = h2::client::handshake(stream).await.ok()?;
    tokio::spawn(connection);
    Some(send)
}

fn review_headers() -> http::Request<()> {
    http::Request::post(format!("https://127.0.0.1{ADMISSION_PATH}"))
        .header("content-type", "application/json")
        .body(())
        .unwrap()
}

/// Opens request streams whose bodies never end, as many as the server lets it, forever.
async fn endless_streams(
    addr: SocketAddr,
    tls: &Arc<rustls::ClientConfig>,
    opened: Arc<AtomicUsize>,
) {
    let Some(mut send) = h2_connect(addr, tls).await else {
        tokio::time::sleep(Duration::from_millis(10)).await;
        return;
    };
    let mut held = Vec::new();
    loop {
        send = match send.ready().await {
            Ok(send) => send,
            Err(_) => return,
        };
        match send.send_request(review_headers(), false) {
            Ok((response, body)) => {
                opened.fetch_add(1, Ordering::Relaxed);
                // Keep the body open; let the response arrive (a 408) whenever it does.
                held.push(body);
                tokio::spawn(response);
                // The h2 client queues streams past the server's limit in its own memory
                // instead of waiting: hold as many as the server serves, and no more (none
                // ends within a phase, shorter than the server's request timeout).
                if held.len() >= H2_STREAMS {
                    std::future::pending::<()>().await;
                }
            }
            Err(_) => return,
        }
    }
}

/// Opens a stream and resets it at once, again and again.
async fn rapid_resets(addr: SocketAddr, tls: &Arc<rustls::ClientConfig>, opened: Arc<AtomicUsize>) {
    let Some(mut send) = h2_connect(addr, tls).await else {
        tokio::time::sleep(Duration::from_millis(10)).await;
        return;
    };
    loop {
        send = match send.ready().await {
            Ok(send) => send,
            Err(_) => return,
        };
        match send.send_request(review_headers(), false) {
            Ok((_response, mut body)) => {
                opened.fetch_add(1, Ordering::Relaxed);
                body.send_reset(h2::Reason::CANCEL);
            }
            Err(_) => return,
        }
    }
}

/// A review on a new connection every [`PROBE_EVERY`] until `stop`: each one's latency in
/// milliseconds, or `None` if it failed or was not allowed.
async fn probe(
    addr: SocketAddr,
    ca: PathBuf,
    body: Arc<Vec<u8>>,
    stop: Arc<AtomicBool>,
) -> Vec<Option<f64>> {
    // On a thread of its own, so that the flood's tasks do not delay the measurement.
    tokio::task::spawn_blocking(move || {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        runtime.block_on(async move {
            let pem = std::fs::read(&ca).unwrap();
            let client = reqwest::Client::builder()
                .tls_certs_only([reqwest::Certificate::from_pem(&pem).unwrap()])
                .pool_max_idle_per_host(0)
                .http1_only()
                .no_proxy()
                .timeout(Duration::from_secs(10))
                .build()
                .unwrap();
            let url = format!("https://{addr}{ADMISSION_PATH}");
            let mut latencies = Vec::new();
            let mut tick = tokio::time::interval(PROBE_EVERY);
            while !stop.load(Ordering::Relaxed) {
                tick.tick().await;
                let started = Instant::now();
                let answer = client
                    .post(&url)
                    .header("content-type", "application/json")
                    .body(body.to_vec())
                    .send()
                    .await;
                let allowed = match answer {
                    Ok(response) => response
                        .text()
                        .await
                        .is_ok_and(|t| t.contains("\"allowed\":true")),
                    Err(_) => false,
                };
                latencies.push(allowed.then(|| started.elapsed().as_secs_f64() * 1e3));
            }
            latencies
        })
    })
    .await
    .unwrap()
}
