//! A registry that says what it is told: a plain-HTTP server on 127.0.0.1 answering each
//! `(method, path)` with the reply given for it (404 otherwise), and logging every request.
//!
//! For what the real registry cannot be made to do: answer a layer with bytes that are not its
//! digest, list a missing blob, implement the OCI referrers API (distribution 2.8 has none).
//! Verifiers reach it with `--insecure-registry` (`RegistryConfig::insecure_registries`), or
//! over TLS ([`Stub::start_tls`]) with its certificate as a trusted root.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::TcpListener;

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
        Self::serve(None).await
    }

    /// Starts a stub that speaks HTTPS with a certificate for 127.0.0.1 made in `dir`; the
    /// certificate's PEM, for the client's roots, with it.
    pub async fn start_tls(dir: &std::path::Path) -> (Stub, Vec<u8>) {
        let (cert, key) = crate::tls::self_signed(dir);
        let pem = std::fs::read(&cert).expect("cert");
        use rustls::pki_types::pem::PemObject as _;
        let certs = rustls::pki_types::CertificateDer::pem_file_iter(&cert)
            .expect("cert file")
            .collect::<Result<Vec<_>, _>>()
            .expect("certs");
        let key = rustls::pki_types::PrivateKeyDer::from_pem_file(&key).expect("key");
        let config = rustls::ServerConfig::builder_with_provider(Arc::new(
            rustls::crypto::aws_lc_rs::default_provider(),
        ))
        .with_safe_default_protocol_versions()
        .expect("versions")
        .with_no_client_auth()
        .with_single_cert(certs, key)
        .expect("server config");
        let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(config));
        (Self::serve(Some(acceptor)).await, pem)
    }

    async fn serve(tls: Option<tokio_rustls::TlsAcceptor>) -> Stub {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let host = listener.local_addr().expect("addr").to_string();
        let routes: Routes = Arc::default();
        let log = Arc::new(Mutex::new(Vec::new()));
        let (r, l) = (routes.clone(), log.clone());
        tokio::spawn(async move {
            while let Ok((stream, _)) = listener.accept().await {
                let (r, l, tls) = (r.clone(), l.clone(), tls.clone());
                tokio::spawn(async move {
                    match tls {
                        None => answer(stream, r, l).await,
                        Some(acceptor) => {
                            if let Ok(stream) = acceptor.accept(stream).await {
                                answer(stream, r, l).await;
                            }
                        }
                    }
                });
            }
        });
        Stub { host, routes, log }
    }

    /// Answers `method path` with a `307` to `location` from now on.
    pub fn redirect(&self, method: &str, path: &str, location: &str) {
        let mut reply = Reply::status(307);
        reply
            .headers
            .push(("location".to_owned(), location.to_owned()));
        self.route(method, path, reply);
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

async fn answer<S: AsyncRead + AsyncWrite + Unpin>(
    mut stream: S,
    routes: Routes,
    log: Arc<Mutex<Vec<(String, String)>>>,
) {
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
