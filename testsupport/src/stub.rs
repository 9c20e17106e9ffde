//! A registry that says what it is told: a plain-HTTP server on 127.0.0.1 answering each
//! `(method, path)` with the reply given for it (404 otherwise), and logging every request.
//!
//! For what the real registry cannot be made to do: answer a layer with bytes that are not its
//! digest, list a missing blob, implement the OCI referrers API (distribution 2.8 has none).
//! Verifiers reach it with `--insecure-registry` (`RegistryConfig::insecure_registries`).

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

use crate::cosign::sha256_digest;

/// One answer.
#[derive(Clone, Debug)]
pub struct Reply {
    /// The HTTP status.
    pub status: u16,
    /// Headers besides `content-length`.
    pub headers: Vec<(String, String)>,
    /// The body (not sent for HEAD).
    pub body: Vec<u8>,
}

impl Reply {
    /// 200 with `body` of `content_type`.
    pub fn ok(content_type: &str, body: Vec<u8>) -> Self {
        Reply {
            status: 200,
            headers: vec![("content-type".to_owned(), content_type.to_owned())],
            body,
        }
    }

    /// `status` with an empty body.
    pub fn status(status: u16) -> Self {
        Reply {
            status,
            headers: Vec::new(),
            body: Vec::new(),
        }
    }
}

type Routes = Arc<Mutex<HashMap<(String, String), Reply>>>;

/// The running stub; it stops when the test's runtime does.
pub struct Stub {
    host: String,
    routes: Routes,
    log: Arc<Mutex<Vec<(String, String)>>>,
}

impl Stub {
    /// Starts a stub on a free port of 127.0.0.1.
    pub async fn start() -> Stub {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let host = listener.local_addr().expect("addr").to_string();
        let routes: Routes = Arc::default();
        let log = Arc::new(Mutex::new(Vec::new()));
        let (r, l) = (routes.clone(), log.clone());
        tokio::spawn(async move {
            while let Ok((stream, _)) = listener.accept().await {
                tokio::spawn(answer(stream, r.clone(), l.clone()));
            }
        });
        Stub { host, routes, log }
    }

    /// `127.0.0.1:PORT`.
    pub fn host(&self) -> String {
        self.host.clone()
    }

    /// Answers `method path` with `reply` from now on.
    pub fn route(&self, method: &str, path: &str, reply: Reply) {
        self.routes
            .lock()
            .unwrap()
            .insert((method.to_owned(), path.to_owned()), reply);
    }

    /// Serves `body` as the manifest `repository:reference` (a tag or a digest), for HEAD and
    /// GET, with its media type and digest; returns the digest.
    pub fn manifest(
        &self,
        repository: &str,
        reference: &str,
        media_type: &str,
        body: &[u8],
    ) -> String {
        let digest = sha256_digest(body);
        let mut reply = Reply::ok(media_type, body.to_vec());
        reply
            .headers
            .push(("docker-content-digest".to_owned(), digest.clone()));
        let path = format!("/v2/{repository}/manifests/{reference}");
        self.route("HEAD", &path, reply.clone());
        self.route("GET", &path, reply);
        digest
    }

    /// Serves `body` as the blob `digest` of `repository` (any digest: it may lie).
    pub fn blob(&self, repository: &str, digest: &str, body: &[u8]) {
        let path = format!("/v2/{repository}/blobs/{digest}");
        self.route(
            "GET",
            &path,
            Reply::ok("application/octet-stream", body.to_vec()),
        );
    }

    /// Every request so far, as `(method, path)` (query included).
    pub fn requests(&self) -> Vec<(String, String)> {
        self.log.lock().unwrap().clone()
    }
}

async fn answer(mut stream: TcpStream, routes: Routes, log: Arc<Mutex<Vec<(String, String)>>>) {
    let mut head = Vec::new();
    let mut buf = [0u8; 4096];
    while !head.windows(4).any(|w| w == b"\r\n\r\n") {
        match stream.read(&mut buf).await {
            Ok(0) | Err(_) => return,
            Ok(n) => head.extend_from_slice(&buf[..n]),
        }
    }
    let text = String::from_utf8_lossy(&head).into_owned();
    let mut words = text.split_whitespace();
    let (method, target) = (
        words.next().unwrap_or_default().to_owned(),
        words.next().unwrap_or_default().to_owned(),
    );
    log.lock().unwrap().push((method.clone(), target.clone()));
    let path = target.split('?').next().unwrap_or_default().to_owned();
    let reply = routes
        .lock()
        .unwrap()
        .get(&(method.clone(), path))
        .cloned()
        .unwrap_or_else(|| Reply::status(404));
    let mut out = format!("HTTP/1.1 {} Stub\r\nconnection: close\r\n", reply.status);
    for (name, value) in &reply.headers {
        out.push_str(&format!("{name}: {value}\r\n"));
    }
    out.push_str(&format!("content-length: {}\r\n\r\n", reply.body.len()));
    let mut bytes = out.into_bytes();
    if method != "HEAD" {
        bytes.extend_from_slice(&reply.body);
    }
    let _ = stream.write_all(&bytes).await;
    let _ = stream.shutdown().await;
}
