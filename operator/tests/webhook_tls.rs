//! The webhook's HTTPS server over real TLS connections on 127.0.0.1: ALPN, TLS versions,
//! limits, certificate rotation and graceful shutdown. Certificates are made by the
//! `openssl` command line in a temporary directory; the server answers with an echo.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::fs;
use std::net::{Ipv4Addr, SocketAddr};
use std::path::PathBuf;
use std::process::{Command, Output, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use http::{Request, Response, StatusCode, Version};
use image_policy::server::{CHECK_INTERVAL, Handler, ServerConfig, ServerError, serve, serve_on};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, ServerName};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

/// Echoes the body; `/slow` answers after 500 ms.
struct Echo;

impl Handler for Echo {
    async fn handle(&self, request: Request<Bytes>) -> Response<Bytes> {
        if request.uri().path() == "/slow" {
            tokio::time::sleep(Duration::from_millis(500)).await;
        }
        Response::new(request.into_body())
    }
}

/// Two CAs and leaf certificates for 127.0.0.1 signed by either; `tls.crt`/`tls.key` are
/// the files the server reads.
struct Pki {
    dir: tempfile::TempDir,
}

impl Pki {
    fn new() -> Pki {
        let pki = Pki {
            dir: tempfile::tempdir().unwrap(),
        };
        for ca in ["ca1", "ca2"] {
            pki.openssl(&format!(
                "genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out {ca}.key"
            ));
            pki.openssl(&format!(
                "req -x509 -new -key {ca}.key -out {ca}.pem -days 2 -subj /CN=webhook-test-{ca} \
                 -addext basicConstraints=critical,CA:TRUE -addext keyUsage=critical,keyCertSign,cRLSign"
            ));
        }
        fs::write(
            pki.path("leaf.ext"),
            "basicConstraints = critical,CA:FALSE\nkeyUsage = critical,digitalSignature\n\
             extendedKeyUsage = serverAuth\nsubjectAltName = IP:127.0.0.1,DNS:localhost\n",
        )
        .unwrap();
        pki
    }

    fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    /// Issues `{name}.pem` and `{name}.key`, signed by `ca`.
    fn issue(&self, ca: &str, name: &str) {
        self.openssl(&format!(
            "genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out {name}.key"
        ));
        self.openssl(&format!(
            "req -new -key {name}.key -out {name}.csr -subj /CN={name}"
        ));
        self.openssl(&format!(
            "x509 -req -in {name}.csr -CA {ca}.pem -CAkey {ca}.key -CAcreateserial -days 2 \
             -extfile leaf.ext -out {name}.pem"
        ));
    }

    /// Copies `name`'s pair over the served files, key first, as a rotation would.
    fn install(&self, name: &str) {
        fs::copy(self.path(&format!("{name}.key")), self.path("tls.key")).unwrap();
        fs::copy(self.path(&format!("{name}.pem")), self.path("tls.crt")).unwrap();
    }

    fn config(&self) -> ServerConfig {
        ServerConfig::new(self.path("tls.crt"), self.path("tls.key"))
    }

    fn leaf_der(&self, name: &str) -> Vec<u8> {
        CertificateDer::from_pem_file(self.path(&format!("{name}.pem")))
            .unwrap()
            .to_vec()
    }

    fn openssl(&self, args: &str) {
        let output = Command::new("openssl")
            .args(args.split_whitespace())
            .current_dir(self.dir.path())
            .output()
            .unwrap_or_else(|e| panic!("run openssl (hack/install-deps.sh installs it): {e}"));
        assert!(
            output.status.success(),
            "openssl {args}: {}",
            String::from_utf8_lossy(&output.stderr)
        );
    }
}

/// A server running on 127.0.0.1 with the [`Echo`] handler.
struct Server {
    addr: SocketAddr,
    stop: oneshot::Sender<()>,
    task: JoinHandle<Result<(), ServerError>>,
}

impl Server {
    async fn start(config: ServerConfig) -> Server {
        let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).await.unwrap();
        let addr = listener.local_addr().unwrap();
        let (stop, stopped) = oneshot::channel::<()>();
        let shutdown = async move {
            let _ = stopped.await;
        };
        let task = tokio::spawn(serve_on(listener, config, Arc::new(Echo), shutdown));
        Server { addr, stop, task }
    }

    fn url(&self, path: &str) -> String {
        format!("https://{}{path}", self.addr)
    }

    async fn stop(self) -> Result<(), ServerError> {
        let _ = self.stop.send(());
        tokio::time::timeout(Duration::from_secs(10), self.task)
            .await
            .expect("shutdown in time")
            .unwrap()
    }
}

/// Two CAs, with `one` (signed by `ca1`) installed.
fn pki_with_one() -> Pki {
    let pki = Pki::new();
    pki.issue("ca1", "one");
    pki.install("one");
    pki
}

/// A client that trusts only `ca` and records the server's certificate in each response.
fn client(pki: &Pki, ca: &str) -> reqwest::ClientBuilder {
    let pem = fs::read(pki.path(&format!("{ca}.pem"))).unwrap();
    reqwest::Client::builder()
        .tls_certs_only([reqwest::Certificate::from_pem(&pem).unwrap()])
        .tls_info(true)
        .no_proxy()
        .timeout(Duration::from_secs(10))
}

fn peer_certificate(response: &reqwest::Response) -> Vec<u8> {
    let info = response
        .extensions()
        .get::<reqwest::tls::TlsInfo>()
        .expect("TLS info");
    info.peer_certificate()
        .expect("a peer certificate")
        .to_vec()
}

async fn echo(client: &reqwest::Client, url: &str, body: &'static str) -> reqwest::Response {
    client
        .post(url)
        .body(body)
        .send()
        .await
        .unwrap_or_else(|e| panic!("POST {url}: {e:?}"))
}

/// A raw TLS connection speaking `http/1.1`, trusting `ca1`.
async fn raw_tls(pki: &Pki, addr: SocketAddr) -> tokio_rustls::client::TlsStream<TcpStream> {
    let mut roots = rustls::RootCertStore::empty();
    roots
        .add(CertificateDer::from_pem_file(pki.path("ca1.pem")).unwrap())
        .unwrap();
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let mut config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(roots)
        .with_no_client_auth();
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    let tcp = TcpStream::connect(addr).await.unwrap();
    let name = ServerName::from(addr.ip());
    tokio_rustls::TlsConnector::from(Arc::new(config))
        .connect(name, tcp)
        .await
        .unwrap()
}

/// Reads until the server closes (EOF or a reset), at most `limit`; `None` if still open.
async fn wait_for_close(
    stream: &mut (impl AsyncReadExt + Unpin),
    limit: Duration,
) -> Option<Duration> {
    let started = Instant::now();
    let mut sink = Vec::new();
    match tokio::time::timeout(limit, stream.read_to_end(&mut sink)).await {
        Ok(_) => Some(started.elapsed()),
        Err(_) => None,
    }
}

/// `openssl s_client` against the server with extra `args`; stdin closed so it ends after the handshake.
async fn s_client(addr: SocketAddr, args: &'static str) -> Output {
    tokio::task::spawn_blocking(move || {
        Command::new("openssl")
            .args(["s_client", "-connect", &addr.to_string()])
            .args(args.split_whitespace())
            .stdin(Stdio::null())
            .output()
            .unwrap()
    })
    .await
    .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn http2_and_http1_are_chosen_by_alpn() {
    let pki = pki_with_one();
    let server = Server::start(pki.config()).await;

    let h2 = client(&pki, "ca1").build().unwrap();
    let response = echo(&h2, &server.url("/review"), "over h2").await;
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(response.version(), Version::HTTP_2);
    assert_eq!(response.text().await.unwrap(), "over h2");

    let h1 = client(&pki, "ca1").http1_only().build().unwrap();
    let response = echo(&h1, &server.url("/review"), "over http/1.1").await;
    assert_eq!(response.version(), Version::HTTP_11);
    assert_eq!(response.text().await.unwrap(), "over http/1.1");

    server.stop().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn tls_1_2_and_1_3_are_served_and_1_1_is_refused() {
    let pki = pki_with_one();
    let server = Server::start(pki.config()).await;

    for version in [
        reqwest::tls::Version::TLS_1_2,
        reqwest::tls::Version::TLS_1_3,
    ] {
        let only = client(&pki, "ca1")
            .tls_version_min(version)
            .tls_version_max(version)
            .build()
            .unwrap();
        let response = echo(&only, &server.url("/"), "hi").await;
        assert_eq!(response.status(), StatusCode::OK, "{version:?}");
    }

    // rustls cannot even offer TLS 1.1, so ask OpenSSL, lowering its own floor for it.
    let refused = s_client(server.addr, "-tls1_1 -cipher DEFAULT@SECLEVEL=0").await;
    let said = format!(
        "{}{}",
        String::from_utf8_lossy(&refused.stdout),
        String::from_utf8_lossy(&refused.stderr)
    );
    assert!(
        !refused.status.success(),
        "TLS 1.1 handshake succeeded: {said}"
    );
    // rustls answers a hello without TLS 1.2 or 1.3 with a handshake_failure alert (40).
    assert!(
        said.contains("SSL alert number 40"),
        "not refused by the server: {said}"
    );
    // The same probe at TLS 1.2 works, so the refusal above is the version's.
    let accepted = s_client(server.addr, "-tls1_2").await;
    assert!(
        accepted.status.success(),
        "{}",
        String::from_utf8_lossy(&accepted.stderr)
    );

    server.stop().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_body_over_the_limit_gets_413() {
    let pki = pki_with_one();
    let config = ServerConfig {
        max_body_bytes: 1024,
        ..pki.config()
    };
    let server = Server::start(config).await;
    let at_limit = "x".repeat(1024);
    let over_limit = "x".repeat(1025);

    for client in [client(&pki, "ca1"), client(&pki, "ca1").http1_only()] {
        let client = client.build().unwrap();
        let response = client
            .post(server.url("/"))
            .body(at_limit.clone())
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), StatusCode::OK);
        assert_eq!(response.text().await.unwrap().len(), 1024);
        let response = client
            .post(server.url("/"))
            .body(over_limit.clone())
            .send()
            .await
            .unwrap();
        assert_eq!(
            response.status(),
            StatusCode::PAYLOAD_TOO_LARGE,
            "{:?}",
            response.version()
        );
        assert!(response.text().await.unwrap().contains("1024 bytes"));
    }
    // Far over the limit, over HTTP/2 (where refusing early cannot reset the connection).
    let client = client(&pki, "ca1").build().unwrap();
    let response = client
        .post(server.url("/"))
        .body(vec![b'x'; 4 << 20])
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::PAYLOAD_TOO_LARGE);

    server.stop().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_client_slow_with_its_headers_is_cut_off_after_the_header_timeout() {
    let pki = pki_with_one();
    let config = ServerConfig {
        header_read_timeout: Duration::from_secs(1),
        ..pki.config()
    };
    let server = Server::start(config).await;

    let mut slow = raw_tls(&pki, server.addr).await;
    slow.write_all(b"POST /review HTTP/1.1\r\nHost: 127.0.0.1\r\n")
        .await
        .unwrap();
    slow.flush().await.unwrap();
    let closed_after = wait_for_close(&mut slow, Duration::from_secs(5))
        .await
        .expect("closed by the server");
    assert!(
        closed_after >= Duration::from_millis(800),
        "closed too early: {closed_after:?}"
    );

    // A client that finishes its request in time on the same kind of connection is answered.
    let mut prompt = raw_tls(&pki, server.addr).await;
    prompt
        .write_all(b"POST /review HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: 2\r\nConnection: close\r\n\r\nok")
        .await
        .unwrap();
    let mut answer = Vec::new();
    let _ = prompt.read_to_end(&mut answer).await;
    let answer = String::from_utf8_lossy(&answer);
    assert!(
        answer.starts_with("HTTP/1.1 200 OK\r\n") && answer.ends_with("\r\n\r\nok"),
        "{answer}"
    );

    server.stop().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_client_that_never_completes_the_handshake_is_cut_off() {
    let pki = pki_with_one();
    let config = ServerConfig {
        tls_handshake_timeout: Duration::from_secs(1),
        ..pki.config()
    };
    let server = Server::start(config).await;

    let mut silent = TcpStream::connect(server.addr).await.unwrap();
    let closed_after = wait_for_close(&mut silent, Duration::from_secs(5))
        .await
        .expect("closed by the server");
    assert!(
        closed_after >= Duration::from_millis(800),
        "closed too early: {closed_after:?}"
    );

    server.stop().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_rotated_certificate_is_served_to_new_connections_and_open_ones_keep_working() {
    let pki = pki_with_one();
    pki.issue("ca2", "two");
    let server = Server::start(pki.config()).await;

    // Keep-alive connections opened before the rotation, by clients that trust only ca1.
    let old_h2 = client(&pki, "ca1").build().unwrap();
    let old_h1 = client(&pki, "ca1").http1_only().build().unwrap();
    for old in [&old_h2, &old_h1] {
        let response = echo(old, &server.url("/"), "before").await;
        assert_eq!(peer_certificate(&response), pki.leaf_der("one"));
    }

    pki.install("two");
    tokio::time::sleep(CHECK_INTERVAL + Duration::from_millis(200)).await;

    let new = client(&pki, "ca2").build().unwrap();
    let response = echo(&new, &server.url("/"), "after").await;
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(peer_certificate(&response), pki.leaf_der("two"));

    // The old connections still work with the old certificate. A new connection from these
    // clients would fail (they do not trust ca2), so these went over the old ones.
    for old in [&old_h2, &old_h1] {
        let response = echo(old, &server.url("/"), "still").await;
        assert_eq!(response.status(), StatusCode::OK);
        assert_eq!(peer_certificate(&response), pki.leaf_der("one"));
    }
    let fresh_ca1 = client(&pki, "ca1").build().unwrap();
    assert!(
        fresh_ca1.get(server.url("/")).send().await.is_err(),
        "a new connection still got the old certificate"
    );

    server.stop().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn shutdown_finishes_in_flight_requests_and_refuses_new_connections() {
    let pki = pki_with_one();
    let server = Server::start(pki.config()).await;
    let started = Instant::now();

    let mut in_flight = Vec::new();
    for client in [client(&pki, "ca1"), client(&pki, "ca1").http1_only()] {
        let client = client.build().unwrap();
        let url = server.url("/slow");
        in_flight.push(tokio::spawn(async move {
            let response = echo(&client, &url, "finish me").await;
            (
                response.status(),
                response.version(),
                response.text().await.unwrap(),
            )
        }));
    }
    tokio::time::sleep(Duration::from_millis(200)).await;

    let addr = server.addr;
    let stopped = tokio::spawn(server.stop());
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert!(
        TcpStream::connect(addr).await.is_err(),
        "a new connection was accepted during shutdown"
    );

    let mut versions = Vec::new();
    for request in in_flight {
        let (status, version, body) = request.await.unwrap();
        assert_eq!((status, body.as_str()), (StatusCode::OK, "finish me"));
        versions.push(version);
    }
    assert_eq!(versions, [Version::HTTP_2, Version::HTTP_11]);
    assert!(started.elapsed() >= Duration::from_millis(500));
    stopped.await.unwrap().unwrap();
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "shutdown took {:?}",
        started.elapsed()
    );
}

#[tokio::test]
async fn a_missing_key_or_a_taken_address_is_an_error_naming_it() {
    let pki = pki_with_one();
    fs::remove_file(pki.path("tls.key")).unwrap();
    let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).await.unwrap();
    let addr = listener.local_addr().unwrap();
    let e = serve_on(
        listener,
        pki.config(),
        Arc::new(Echo),
        std::future::pending(),
    )
    .await
    .unwrap_err();
    assert!(matches!(e, ServerError::Certificate(_)), "{e:?}");
    assert!(
        e.to_string()
            .contains(&pki.path("tls.key").display().to_string()),
        "{e}"
    );

    let _taken = TcpListener::bind(addr).await.unwrap();
    let config = ServerConfig {
        addr,
        ..pki.config()
    };
    let e = serve(config, Arc::new(Echo), std::future::pending())
        .await
        .unwrap_err();
    assert!(matches!(e, ServerError::Bind { .. }), "{e:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn at_the_connection_limit_idle_connections_make_room_and_busy_ones_stay() {
    let pki = pki_with_one();
    let config = ServerConfig {
        max_connections: Some(4),
        ..pki.config()
    };
    let server = Server::start(config).await;

    // One connection in the middle of a slow request, then three idle ones: the limit.
    let mut busy = raw_tls(&pki, server.addr).await;
    busy.write_all(b"POST /slow HTTP/1.1\r\nhost: x\r\ncontent-length: 4\r\n\r\nbusy")
        .await
        .unwrap();
    tokio::time::sleep(Duration::from_millis(50)).await;
    let mut idle = Vec::new();
    for _ in 0..3 {
        idle.push(raw_tls(&pki, server.addr).await);
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    // New ones, each kept open after its request: each is served, pushing out the idle ones
    // oldest first, and the busy connection's request is answered all the same.
    let mut fresh = Vec::new();
    for _ in 0..3 {
        let mut stream = raw_tls(&pki, server.addr).await;
        stream
            .write_all(b"POST / HTTP/1.1\r\nhost: x\r\ncontent-length: 5\r\n\r\nfresh")
            .await
            .unwrap();
        let mut answer = vec![0; 512];
        let n = stream.read(&mut answer).await.unwrap();
        let answer = String::from_utf8_lossy(&answer[..n]).into_owned();
        assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
        fresh.push(stream);
    }
    for stream in &mut idle {
        assert!(
            wait_for_close(stream, Duration::from_secs(2))
                .await
                .is_some(),
            "an idle connection made room"
        );
    }
    for stream in &mut fresh {
        assert!(
            wait_for_close(stream, Duration::from_millis(100))
                .await
                .is_none(),
            "the newer connections stay"
        );
    }
    let mut answer = vec![0; 512];
    let n = tokio::time::timeout(Duration::from_secs(2), busy.read(&mut answer))
        .await
        .expect("the busy connection is answered")
        .unwrap();
    let answer = String::from_utf8_lossy(&answer[..n]);
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
    assert!(answer.ends_with("busy"), "{answer}");

    server.stop().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn at_the_connection_limit_with_every_connection_busy_a_new_one_is_closed() {
    let pki = pki_with_one();
    let config = ServerConfig {
        max_connections: Some(2),
        ..pki.config()
    };
    let server = Server::start(config).await;
    let mut busy = Vec::new();
    for _ in 0..2 {
        let mut stream = raw_tls(&pki, server.addr).await;
        stream
            .write_all(b"POST /slow HTTP/1.1\r\nhost: x\r\ncontent-length: 1\r\n\r\nx")
            .await
            .unwrap();
        busy.push(stream);
    }
    tokio::time::sleep(Duration::from_millis(100)).await;
    let mut refused = TcpStream::connect(server.addr).await.unwrap();
    assert!(
        wait_for_close(&mut refused, Duration::from_secs(1))
            .await
            .is_some(),
        "closed at once"
    );
    // Once the slow requests are answered, there is room again.
    tokio::time::sleep(Duration::from_millis(600)).await;
    let response = echo(
        &client(&pki, "ca1").build().unwrap(),
        &server.url("/"),
        "room",
    )
    .await;
    assert_eq!(response.status(), StatusCode::OK);

    server.stop().await.unwrap();
}
