//! Sigstore's own servers on 127.0.0.1 for one test, over TLS from a CA the test makes: a real
//! Rekor v2 (rekor-tiles, on Tessera's POSIX storage, with a checkpoint key the test makes) and
//! a real RFC 3161 timestamp authority (timestamp-authority v2), both built by
//! `hack/sigstore/install.sh`; optionally the `@sigstore/mock` Fulcio for keyless signing. The
//! trusted root (`trusted_root.json`) and signing config (v0.2) that name them are made by
//! `cosign trusted-root create` and `cosign signing-config create`.

use std::fs::{self, File};
use std::io::{self, BufRead, BufReader, Read, Write};
use std::net::{Ipv4Addr, SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::thread;
use std::time::{Duration, Instant};

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, ServerName};
use tempfile::TempDir;

use crate::producers::tool;
use crate::registry::{free_port, generate_certs, openssl};
use crate::sigstore_js::Mocks;

const READY_TIMEOUT: Duration = Duration::from_secs(20);
/// Starts that lose the race for a free port to another process are retried this many times.
const START_ATTEMPTS: usize = 5;
/// Who operates the services, as the signing config says.
const OPERATOR: &str = "image-policy-test";

/// A Rekor v2 log, a timestamp authority, and the trust documents naming them; the servers
/// are killed and their files removed on drop.
pub struct LocalSigstore {
    dir: TempDir,
    rekor: Server,
    tsa: Server,
    /// `https://127.0.0.1:PORT` of the Rekor v2.
    pub rekor_url: String,
    /// `https://127.0.0.1:PORT/api/v1/timestamp`: the timestamp authority's endpoint.
    pub tsa_url: String,
}

/// A spawned server, killed on drop; its log is shown when a test fails.
struct Server {
    child: Child,
    log: PathBuf,
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        if thread::panicking() {
            eprintln!("--- {} (tail) ---\n{}", self.log.display(), tail(&self.log));
        }
    }
}

impl LocalSigstore {
    /// Rekor v2 and the timestamp authority, for signing with a key.
    pub fn start() -> LocalSigstore {
        LocalSigstore::start_with(None)
    }

    /// The same, with the mock Fulcio of `mocks` (and its CT log) for keyless signing; the
    /// trusted root also names the mocks' Rekor v1.
    pub fn start_with_fulcio(mocks: &Mocks) -> LocalSigstore {
        LocalSigstore::start_with(Some(mocks))
    }

    fn start_with(fulcio: Option<&Mocks>) -> LocalSigstore {
        let dir = tempfile::Builder::new()
            .prefix("image-policy-sigstore-")
            .tempdir()
            .expect("temp dir");
        let path = |name: &str| dir.path().join(name);
        // One CA and one server certificate for 127.0.0.1 serve both services.
        generate_certs(dir.path());
        let tls = client_config(&path("ca.pem"));
        // The log's checkpoint key: ECDSA P-256, so its log ID (and the checkpoint's key hint)
        // is the SHA-256 of the public key, as Rekor v1's is.
        openssl(
            dir.path(),
            "genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out rekor.key",
        );
        openssl(dir.path(), "pkey -in rekor.key -pubout -out rekor.pub");
        let (rekor, rekor_port) = start_rekor(dir.path(), &tls);
        let (tsa, tsa_base) = start_tsa(dir.path());
        let (status, chain) = https_get(&tsa_base, "/api/v1/timestamp/certchain", &tls)
            .expect("fetch the timestamp authority's chain");
        assert_eq!(status, 200, "{}", String::from_utf8_lossy(&chain));
        fs::write(path("tsa-chain.pem"), chain).expect("write tsa-chain.pem");

        let local = LocalSigstore {
            rekor_url: format!("https://127.0.0.1:{rekor_port}"),
            tsa_url: format!("{tsa_base}/api/v1/timestamp"),
            rekor,
            tsa,
            dir,
        };
        local.write_trust(fulcio);
        local
    }

    /// `trusted_root.json` and `signing_config.json`, by cosign's own commands, valid from a
    /// few minutes ago (the mock Fulcio's CA and the authority's chain start at their start).
    fn write_trust(&self, fulcio: Option<&Mocks>) {
        let start = start_time();
        let path = |name: &str| self.dir.path().join(name).display().to_string();
        // Rekor v2's checkpoint origin is the host of its URL, without the port: what
        // sigstore-go (so cosign) checks the checkpoint's signature line against.
        let mut root = vec![
            "trusted-root".to_owned(),
            "create".to_owned(),
            "--no-default-ctfe".to_owned(),
            "--no-default-fulcio".to_owned(),
            "--no-default-rekor".to_owned(),
            "--no-default-tsa".to_owned(),
            format!(
                "--rekor=url={},public-key={},start-time={start},origin=127.0.0.1",
                self.rekor_url,
                path("rekor.pub")
            ),
            format!(
                "--tsa=url={},certificate-chain={},start-time={start}",
                self.tsa_url,
                path("tsa-chain.pem")
            ),
            format!("--out={}", path("trusted_root.json")),
        ];
        let mut config = vec![
            "signing-config".to_owned(),
            "create".to_owned(),
            "--no-default-fulcio".to_owned(),
            "--no-default-oidc".to_owned(),
            "--no-default-rekor".to_owned(),
            "--no-default-tsa".to_owned(),
            format!(
                "--rekor=url={},api-version=2,start-time={start},operator={OPERATOR}",
                self.rekor_url
            ),
            "--rekor-config=ANY".to_owned(),
            format!(
                "--tsa=url={},api-version=1,start-time={start},operator={OPERATOR}",
                self.tsa_url
            ),
            "--tsa-config=ANY".to_owned(),
            format!("--out={}", path("signing_config.json")),
        ];
        if let Some(mocks) = fulcio {
            let mocks_dir = mocks.trusted_root_path();
            let mocks_dir = mocks_dir.parent().expect("the mocks' dir");
            root.push(format!(
                "--fulcio=url={},certificate-chain={},start-time={start}",
                mocks.fulcio,
                mocks_dir.join("fulcio-root.pem").display()
            ));
            root.push(format!(
                "--ctfe=url={}/ct,public-key={},start-time={start}",
                mocks.fulcio,
                mocks_dir.join("ctlog-pub.pem").display()
            ));
            // The mocks' Rekor v1 beside the real Rekor v2, as Sigstore's public-good root
            // lists both: cosign v3.1.3 writes no keyless legacy `.sig` layer with a log entry
            // here (Rekor v2 takes no such entry, and cosign panics on the mock Rekor v1's
            // answer), so a test lays that layer out from `@sigstore/sign`'s entry in the
            // mock, and one root verifies both.
            root.push(format!(
                "--rekor=url={},public-key={},start-time={start}",
                mocks.rekor,
                mocks_dir.join("rekor-pub.pem").display()
            ));
            config.push(format!(
                "--fulcio=url={},api-version=1,start-time={start},operator={OPERATOR}",
                mocks.fulcio
            ));
        }
        for args in [root, config] {
            let out = Command::new(tool("cosign"))
                .args(&args)
                .env("HOME", self.dir.path())
                .output()
                .expect("run cosign");
            assert!(
                out.status.success(),
                "cosign {args:?}: {}",
                String::from_utf8_lossy(&out.stderr)
            );
        }
    }

    /// The PEM CA that signed both services' certificates.
    pub fn ca_path(&self) -> PathBuf {
        self.dir.path().join("ca.pem")
    }

    /// The trusted root naming the Rekor v2, the timestamp authority (and, when started with
    /// the mocks, their Fulcio, CT log and Rekor v1).
    pub fn trusted_root_path(&self) -> PathBuf {
        self.dir.path().join("trusted_root.json")
    }

    /// [`LocalSigstore::trusted_root_path`]'s document.
    pub fn trusted_root(&self) -> String {
        fs::read_to_string(self.trusted_root_path()).expect("read trusted_root.json")
    }

    /// The signing config (v0.2) that sends cosign to these services.
    pub fn signing_config_path(&self) -> PathBuf {
        self.dir.path().join("signing_config.json")
    }

    /// Whether both servers still run (a test's last check that nothing died under it).
    pub fn running(&mut self) -> bool {
        [&mut self.rekor, &mut self.tsa]
            .into_iter()
            .all(|server| matches!(server.child.try_wait(), Ok(None)))
    }
}

/// `date -u` a few minutes ago, RFC 3339.
fn start_time() -> String {
    let out = Command::new("date")
        .args(["-u", "-d", "-10 min", "+%Y-%m-%dT%H:%M:%SZ"])
        .output()
        .expect("run date");
    assert!(out.status.success());
    String::from_utf8(out.stdout)
        .expect("utf-8")
        .trim()
        .to_owned()
}

/// rekor-server (POSIX) on three free loopback ports (HTTPS, gRPC, metrics: it allocates
/// none itself), checkpoints every 500 ms so that an entry's proof comes back quickly.
fn start_rekor(dir: &Path, tls: &Arc<rustls::ClientConfig>) -> (Server, u16) {
    let bin = tool("rekor-server");
    let log = dir.join("rekor.log");
    for _ in 0..START_ATTEMPTS {
        let storage = dir.join("rekor-storage");
        let _ = fs::remove_dir_all(&storage);
        fs::create_dir_all(&storage).expect("create the log's storage");
        let (http, grpc, metrics) = (free_port(), free_port(), free_port());
        let mut command = Command::new(&bin);
        command
            .arg("serve")
            .args(["--http-address", "127.0.0.1", "--grpc-address", "127.0.0.1"])
            .arg(format!("--http-port={http}"))
            .arg(format!("--grpc-port={grpc}"))
            .arg(format!("--http-metrics-port={metrics}"))
            .arg("--hostname=127.0.0.1")
            .arg(format!("--storage-dir={}", storage.display()))
            .arg(format!(
                "--signer-filepath={}",
                dir.join("rekor.key").display()
            ))
            .arg(format!(
                "--http-tls-cert-file={}",
                dir.join("server.pem").display()
            ))
            .arg(format!(
                "--http-tls-key-file={}",
                dir.join("server.key").display()
            ))
            .arg("--checkpoint-interval=500ms");
        let mut server = spawn(command, &log);
        let base = format!("https://127.0.0.1:{http}");
        match wait_until(&mut server, || {
            https_get(&base, "/healthz", tls).is_ok_and(|(status, _)| status == 200)
        }) {
            Ok(()) => return (server, http),
            Err(log_text) if log_text.contains("address already in use") => continue,
            Err(log_text) => panic!("rekor-server did not start:\n{log_text}"),
        }
    }
    panic!("rekor-server did not start: no free ports after {START_ATTEMPTS} attempts");
}

/// The timestamp authority (hack/sigstore/cmd/timestamp-server: its in-memory signer, HTTPS
/// on a port the kernel picks, printed on stdout).
fn start_tsa(dir: &Path) -> (Server, String) {
    let log = dir.join("tsa.log");
    let stderr = File::create(&log).expect("create tsa.log");
    let mut child = Command::new(tool("timestamp-server"))
        .arg(format!("--tls-cert={}", dir.join("server.pem").display()))
        .arg(format!("--tls-key={}", dir.join("server.key").display()))
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(stderr)
        .spawn()
        .expect("spawn timestamp-server");
    let mut line = String::new();
    BufReader::new(child.stdout.take().expect("stdout"))
        .read_line(&mut line)
        .expect("read the authority's address");
    let server = Server { child, log };
    let base = line.trim().to_owned();
    assert!(
        base.starts_with("https://127.0.0.1:"),
        "timestamp-server did not start: {line:?}\n{}",
        tail(&server.log)
    );
    (server, base)
}

fn spawn(mut command: Command, log: &Path) -> Server {
    let out = File::create(log).expect("create the log");
    let err = out.try_clone().expect("clone the log");
    let child = command
        .stdin(Stdio::null())
        .stdout(out)
        .stderr(err)
        .spawn()
        .unwrap_or_else(|e| panic!("spawn {command:?}: {e}"));
    Server {
        child,
        log: log.to_owned(),
    }
}

/// Polls `ready` until it holds; the server's log when it exits or never gets ready.
fn wait_until(server: &mut Server, mut ready: impl FnMut() -> bool) -> Result<(), String> {
    let deadline = Instant::now() + READY_TIMEOUT;
    loop {
        if let Some(status) = server.child.try_wait().expect("poll the server") {
            return Err(format!("exited with {status}:\n{}", tail(&server.log)));
        }
        if ready() {
            return Ok(());
        }
        if Instant::now() >= deadline {
            let _ = server.child.kill();
            return Err(format!(
                "not ready within {READY_TIMEOUT:?}:\n{}",
                tail(&server.log)
            ));
        }
        thread::sleep(Duration::from_millis(50));
    }
}

/// One blocking `GET` over TLS (HTTP/1.0: the body runs to the end of the connection): the
/// test may run inside a tokio runtime, where a blocking reqwest client would panic.
fn https_get(
    base: &str,
    path: &str,
    tls: &Arc<rustls::ClientConfig>,
) -> io::Result<(u16, Vec<u8>)> {
    let port: u16 = base
        .rsplit(':')
        .next()
        .and_then(|p| p.parse().ok())
        .ok_or_else(|| io::Error::other("no port"))?;
    let address = SocketAddr::from((Ipv4Addr::LOCALHOST, port));
    let socket = TcpStream::connect_timeout(&address, Duration::from_secs(1))?;
    socket.set_read_timeout(Some(Duration::from_secs(5)))?;
    socket.set_write_timeout(Some(Duration::from_secs(5)))?;
    let name = ServerName::IpAddress(Ipv4Addr::LOCALHOST.into());
    let connection =
        rustls::ClientConnection::new(Arc::clone(tls), name).map_err(io::Error::other)?;
    let mut stream = rustls::StreamOwned::new(connection, socket);
    write!(stream, "GET {path} HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n")?;
    let mut response = Vec::new();
    match stream.read_to_end(&mut response) {
        Ok(_) => {}
        // Go closes without close_notify after an HTTP/1.0 response.
        Err(e) if e.kind() == io::ErrorKind::UnexpectedEof && !response.is_empty() => {}
        Err(e) => return Err(e),
    }
    let split = response
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .ok_or_else(|| io::Error::other("no end of headers"))?;
    let status = std::str::from_utf8(response.get(9..12).unwrap_or_default())
        .ok()
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| io::Error::other("not an HTTP response"))?;
    Ok((status, response.split_off(split + 4)))
}

/// A rustls client that trusts only `ca`.
fn client_config(ca: &Path) -> Arc<rustls::ClientConfig> {
    let mut roots = rustls::RootCertStore::empty();
    roots
        .add(CertificateDer::from_pem_file(ca).expect("read the CA"))
        .expect("trust the CA");
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    Arc::new(
        rustls::ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .expect("TLS versions")
            .with_root_certificates(roots)
            .with_no_client_auth(),
    )
}

fn tail(path: &Path) -> String {
    let text = fs::read_to_string(path).unwrap_or_default();
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(30)..].join("\n")
}
