//! Registries that misbehave: each gives a bounded, clear denial, never a panic or a hang,
//! and never reads more than its limit.
//!
//! The real registry cannot be made to lie, so this is the one place where the registry is a
//! stub: a raw TCP server on 127.0.0.1 that answers every request the same broken way.

// A test crate: its helpers fail the test loudly by design.
#![allow(clippy::expect_used, clippy::indexing_slicing, clippy::panic)]

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use image_policy::policy::{ImageName, NamedKey, PublicKey};
use image_policy::verify::{Failure, RegistryConfig, Verdict, Verifier, VerifyConfig};
use image_policy::webhook::words::explanation;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

const DIGEST: &str = "sha256:ffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff";

#[derive(Clone, Copy)]
enum Fault {
    Hang,
    ServerError,
    GarbageManifest,
    HugeManifest,
    RedirectLoop,
    /// Redirects this many times (each hop adds an `h` to the path), then answers 404.
    Redirects(usize),
    CloseMidBody,
}

/// Serves `fault` to every connection; counts the bytes it sent.
async fn serve(fault: Fault) -> (String, Arc<AtomicUsize>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let host = listener.local_addr().expect("addr").to_string();
    let sent = Arc::new(AtomicUsize::new(0));
    let counter = sent.clone();
    tokio::spawn(async move {
        while let Ok((stream, _)) = listener.accept().await {
            tokio::spawn(answer(stream, fault, counter.clone()));
        }
    });
    (host, sent)
}

async fn answer(mut stream: TcpStream, fault: Fault, sent: Arc<AtomicUsize>) {
    let mut head = Vec::new();
    let mut buf = [0u8; 1024];
    while !head.windows(4).any(|w| w == b"\r\n\r\n") {
        match stream.read(&mut buf).await {
            Ok(0) | Err(_) => return,
            Ok(n) => head.extend_from_slice(&buf[..n]),
        }
    }
    let response: Vec<u8> = match fault {
        Fault::Hang => {
            tokio::time::sleep(Duration::from_secs(60)).await;
            return;
        }
        Fault::ServerError => {
            b"HTTP/1.1 500 Internal Server Error\r\ncontent-length: 0\r\n\r\n".to_vec()
        }
        Fault::GarbageManifest => {
            let body = b"{\"schemaVersion\": 2, \"layers\": [ this is not json";
            let mut r =
                format!("HTTP/1.1 200 OK\r\ncontent-length: {}\r\n\r\n", body.len()).into_bytes();
            r.extend_from_slice(body);
            r
        }
        Fault::HugeManifest => {
            // 100 MB announced and streamed without a length: the client must stop reading.
            let header = b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n";
            if stream.write_all(header).await.is_err() {
                return;
            }
            let chunk = vec![b'a'; 64 * 1024];
            let frame = [
                format!("{:x}\r\n", chunk.len()).into_bytes(),
                chunk,
                b"\r\n".to_vec(),
            ]
            .concat();
            for _ in 0..(100 * 1024 * 1024 / (64 * 1024)) {
                if stream.write_all(&frame).await.is_err() {
                    return;
                }
                sent.fetch_add(64 * 1024, Ordering::Relaxed);
            }
            return;
        }
        Fault::RedirectLoop => {
            let path = String::from_utf8_lossy(&head)
                .split_whitespace()
                .nth(1)
                .unwrap_or("/")
                .to_owned();
            format!("HTTP/1.1 302 Found\r\nlocation: {path}\r\ncontent-length: 0\r\n\r\n")
                .into_bytes()
        }
        Fault::Redirects(hops) => {
            let path = String::from_utf8_lossy(&head)
                .split_whitespace()
                .nth(1)
                .unwrap_or("/")
                .to_owned();
            let done = path.len() - path.trim_end_matches('h').len();
            if done >= hops {
                b"HTTP/1.1 404 Not Found\r\ncontent-length: 0\r\n\r\n".to_vec()
            } else {
                format!("HTTP/1.1 302 Found\r\nlocation: {path}h\r\ncontent-length: 0\r\n\r\n")
                    .into_bytes()
            }
        }
        Fault::CloseMidBody => {
            b"HTTP/1.1 200 OK\r\ncontent-length: 5000\r\n\r\n{\"schemaVersion\"".to_vec()
        }
    };
    let _ = stream.write_all(&response).await;
    let _ = stream.shutdown().await;
}

fn key() -> NamedKey {
    let pem = include_str!("data/keys/p256.pub");
    NamedKey::new("k", PublicKey::from_pem(pem).expect("key"))
}

async fn verify(host: &str, image: &str) -> (Verdict, Duration) {
    verify_with(host, image, false).await
}

/// [`verify`], with redirects to loopback addresses (the test's registry) allowed or not.
async fn verify_with(host: &str, image: &str, loopback: bool) -> (Verdict, Duration) {
    let registry = RegistryConfig {
        insecure_registries: [host.to_owned()].into(),
        request_timeout: Duration::from_secs(1),
        allow_redirects_to_loopback: loopback,
        ..RegistryConfig::default()
    };
    let verifier = Verifier::new(VerifyConfig {
        registry,
        budget: Duration::from_secs(3),
        ..VerifyConfig::default()
    })
    .expect("verifier");
    let image = ImageName::parse(image).expect("image");
    let key = key();
    let start = Instant::now();
    let verdict = verifier.verify(&image, &[&key], &[]).await;
    (verdict, start.elapsed())
}

fn label(verdict: &Verdict) -> &'static str {
    match verdict {
        Verdict::Denied(failure) => failure.label().as_str(),
        Verdict::Verified { .. } => "Verified",
    }
}

#[tokio::test]
async fn a_hanging_registry_is_a_timeout_not_a_hang() {
    let (host, _) = serve(Fault::Hang).await;
    let (verdict, took) = verify(&host, &format!("{host}/app:v1")).await;
    assert_eq!(label(&verdict), "Timeout", "{verdict:?}");
    assert!(
        took < Duration::from_secs(5),
        "bounded by the request timeout and the budget: {took:?}"
    );
}

#[tokio::test]
async fn a_server_error_is_a_bad_response() {
    let (host, _) = serve(Fault::ServerError).await;
    let (verdict, _) = verify(&host, &format!("{host}/app:v1")).await;
    let Verdict::Denied(Failure::Unreachable(error)) = &verdict else {
        panic!("{verdict:?}")
    };
    assert!(error.to_string().contains("HTTP 500"), "{error}");
}

#[tokio::test]
async fn a_garbage_signature_manifest_is_a_bad_response() {
    let (host, _) = serve(Fault::GarbageManifest).await;
    let (verdict, _) = verify(&host, &format!("{host}/app@{DIGEST}")).await;
    assert_eq!(label(&verdict), "BadResponse", "{verdict:?}");
    let Verdict::Denied(failure) = &verdict else {
        unreachable!()
    };
    assert!(
        explanation(failure).is_some_and(|e| e.contains("not one")),
        "{failure:?}"
    );
}

#[tokio::test]
async fn a_huge_manifest_is_not_read_past_its_limit() {
    let (host, sent) = serve(Fault::HugeManifest).await;
    let (verdict, _) = verify(&host, &format!("{host}/app@{DIGEST}")).await;
    assert_eq!(label(&verdict), "BadResponse", "{verdict:?}");
    let Verdict::Denied(failure) = &verdict else {
        unreachable!()
    };
    assert!(
        explanation(failure).is_some_and(|e| e.contains("limit")),
        "{failure:?}"
    );
    // The server stops when the client hangs up; socket buffers let it run a little ahead.
    let sent = sent.load(Ordering::Relaxed);
    assert!(
        sent < 40 * 1024 * 1024,
        "the client read on: {sent} bytes sent"
    );
}

#[tokio::test]
async fn a_redirect_loop_ends() {
    let (host, _) = serve(Fault::RedirectLoop).await;
    let (verdict, _) = verify_with(&host, &format!("{host}/app:v1"), true).await;
    let Verdict::Denied(failure) = &verdict else {
        panic!("{verdict:?}")
    };
    assert!(
        explanation(failure).is_some_and(|e| e.contains("more than 5 redirects")),
        "{failure:?}"
    );
}

/// At most 5 redirects are followed: 5 lead to the answer (here a 404: nothing there), a
/// sixth is refused, saying so.
#[tokio::test]
async fn five_redirects_are_followed_and_a_sixth_is_not() {
    let redirects = |verdict: &Verdict| match verdict {
        Verdict::Denied(failure) => {
            explanation(failure).is_some_and(|e| e.contains("more than 5 redirects"))
        }
        _ => false,
    };
    let (host, _) = serve(Fault::Redirects(5)).await;
    let (at, _) = verify_with(&host, &format!("{host}/app:v1"), true).await;
    assert!(
        matches!(at, Verdict::Denied(_)) && !redirects(&at),
        "{at:?}"
    );
    let (host, _) = serve(Fault::Redirects(6)).await;
    let (past, _) = verify_with(&host, &format!("{host}/app:v1"), true).await;
    assert!(redirects(&past), "{past:?}");
}

#[tokio::test]
async fn a_body_that_breaks_off_is_a_bad_response() {
    let (host, _) = serve(Fault::CloseMidBody).await;
    let (verdict, _) = verify(&host, &format!("{host}/app@{DIGEST}")).await;
    assert_eq!(label(&verdict), "BadResponse", "{verdict:?}");
}

#[tokio::test]
async fn nobody_listening_is_unreachable() {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let host = listener.local_addr().expect("addr").to_string();
    drop(listener);
    let (verdict, _) = verify(&host, &format!("{host}/app:v1")).await;
    assert_eq!(label(&verdict), "Unreachable", "{verdict:?}");
}
