//! A real registry for one test: its own process, port, CA and storage, killed and removed on
//! drop. Two kinds: Debian's `docker-registry` (CNCF distribution 2.8, no OCI 1.1 referrers
//! API: referrers live in the tag schema), and olareg (the OCI 1.1 referrers API, with
//! `artifactType` filtering, as GHCR, ECR, ACR, Harbor and Quay answer it), built by
//! `hack/sigstore/install.sh`.

use std::fs::{self, File};
use std::io::{self, Read, Write};
use std::net::{Ipv4Addr, SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::thread;
use std::time::{Duration, Instant};

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, ServerName};
use tempfile::TempDir;

const REGISTRY_BIN: &str = "/usr/bin/docker-registry";
/// The marker of olareg's request log lines (`-v trace`): one per request, once answered.
const OLAREG_REQUEST: &str = "msg=ServeHTTP ";
const READY_TIMEOUT: Duration = Duration::from_secs(10);
/// Starts that lose the race for a free port to another process are retried this many times.
const START_ATTEMPTS: usize = 5;

/// A running registry at `https://127.0.0.1:PORT`; dropping it kills the process and
/// removes its storage, certificates and logs.
pub struct Registry {
    child: Child,
    dir: TempDir,
    port: u16,
    basic_auth: Option<(String, String)>,
    plain_http: bool,
    kind: RegistryKind,
    /// Bytes of the access log that `requests()` skips (see `clear_requests`).
    log_offset: AtomicUsize,
}

/// How to start a [`Registry`].
#[derive(Clone, Debug, Default)]
pub struct RegistryOptions {
    /// `(user, password)`: the registry then requires HTTP basic auth (htpasswd, bcrypt).
    pub basic_auth: Option<(String, String)>,
    /// Plain HTTP instead of TLS: what `@sigstore/oci` speaks to 127.0.0.1. The verifier
    /// reaches it with `--insecure-registry`.
    pub plain_http: bool,
    /// Which registry runs.
    pub kind: RegistryKind,
}

/// Which registry a [`Registry`] runs.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum RegistryKind {
    /// CNCF distribution 2.8 (Debian's `docker-registry`): no referrers API, so cosign and the
    /// verifier use the referrers tag schema (`sha256-<hex>`).
    #[default]
    Distribution,
    /// olareg (`hack/sigstore`): the OCI 1.1 referrers API. No basic auth.
    Olareg,
}

/// One HTTP request the registry answered, from its access log.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LoggedRequest {
    /// `GET`, `HEAD`, `PUT`, ...
    pub method: String,
    /// The path without the query, e.g. `/v2/app/manifests/v1`.
    pub path: String,
    /// The query string without `?`, if any.
    pub query: Option<String>,
    /// The HTTP status the registry answered.
    pub status: u16,
}

impl Registry {
    /// Starts a registry and waits until it answers HTTPS. Panics with the registry's log
    /// when it cannot start.
    pub fn start(options: RegistryOptions) -> Registry {
        let olareg = match options.kind {
            RegistryKind::Distribution => {
                assert!(
                    Path::new(REGISTRY_BIN).exists(),
                    "{REGISTRY_BIN} is missing: run hack/registry.sh install"
                );
                None
            }
            RegistryKind::Olareg => {
                assert!(
                    options.basic_auth.is_none(),
                    "olareg has no basic auth: test credentials on distribution"
                );
                Some(crate::producers::tool("olareg"))
            }
        };
        let dir = tempfile::Builder::new()
            .prefix("image-policy-registry-")
            .tempdir()
            .expect("create the registry's temp dir");
        generate_certs(dir.path());
        if let Some((user, password)) = &options.basic_auth {
            write_htpasswd(dir.path(), user, password);
        }
        let tls = (!options.plain_http).then(|| probe_tls_config(&dir.path().join("ca.pem")));
        for _ in 0..START_ATTEMPTS {
            let port = free_port();
            write_config(
                dir.path(),
                port,
                options.basic_auth.is_some(),
                options.plain_http,
            );
            let mut child = match &olareg {
                None => spawn(dir.path()),
                Some(bin) => spawn_olareg(bin, dir.path(), port, options.plain_http),
            };
            match wait_ready(&mut child, dir.path(), port, tls.as_ref()) {
                Ok(()) => {
                    let registry = Registry {
                        child,
                        dir,
                        port,
                        basic_auth: options.basic_auth,
                        plain_http: options.plain_http,
                        kind: options.kind,
                        log_offset: AtomicUsize::new(0),
                    };
                    registry.wait_for_probe_log();
                    registry.clear_requests();
                    return registry;
                }
                Err(StartError::PortTaken) => continue,
                Err(StartError::Failed(reason)) => {
                    let _ = child.kill();
                    let _ = child.wait();
                    panic!(
                        "registry did not start: {reason}\n{}",
                        log_tails(dir.path())
                    );
                }
            }
        }
        panic!("registry did not start: no free port after {START_ATTEMPTS} attempts");
    }

    /// `127.0.0.1:PORT`, as an image reference names the registry.
    pub fn host(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    /// `https://127.0.0.1:PORT` (or `http://` for a plain-HTTP registry) followed by `path`
    /// (which starts with `/`).
    pub fn url(&self, path: &str) -> String {
        let scheme = if self.plain_http { "http" } else { "https" };
        format!("{scheme}://{}{path}", self.host())
    }

    /// Which registry runs.
    pub fn kind(&self) -> RegistryKind {
        self.kind
    }

    /// Whether it serves plain HTTP ([`RegistryOptions::plain_http`]).
    pub fn is_plain_http(&self) -> bool {
        self.plain_http
    }

    /// The PEM certificate of the CA that signed the registry's server certificate.
    pub fn ca_pem(&self) -> Vec<u8> {
        fs::read(self.ca_path()).expect("read the registry CA")
    }

    /// Where [`Registry::ca_pem`] is stored.
    pub fn ca_path(&self) -> PathBuf {
        self.dir.path().join("ca.pem")
    }

    /// An HTTPS client that trusts only the registry's CA (and sends no credentials).
    pub fn https_client(&self) -> reqwest::Client {
        let ca = reqwest::Certificate::from_pem(&self.ca_pem()).expect("parse the registry CA");
        reqwest::Client::builder()
            .tls_certs_only([ca])
            .build()
            .expect("build an HTTPS client")
    }

    /// The `(user, password)` the registry requires, if it requires any.
    pub fn basic_auth(&self) -> Option<(String, String)> {
        self.basic_auth.clone()
    }

    /// Every request answered since start (or the last [`Registry::clear_requests`]), in
    /// order, including HEADs and 401s.
    pub fn requests(&self) -> Vec<LoggedRequest> {
        let log = self.settled_access_log();
        let new = log
            .get(self.log_offset.load(Ordering::SeqCst)..)
            .unwrap_or_default();
        match self.kind {
            RegistryKind::Distribution => new.lines().map(parse_access_line).collect(),
            RegistryKind::Olareg => new
                .lines()
                .filter(|line| line.contains(OLAREG_REQUEST))
                .map(parse_olareg_line)
                .collect(),
        }
    }

    /// Forgets the requests answered so far: `requests()` then lists only later ones.
    pub fn clear_requests(&self) {
        let len = self.settled_access_log().len();
        self.log_offset.store(len, Ordering::SeqCst);
    }

    /// The access log up to its last complete line, once no line was added for a moment.
    ///
    /// The registry writes a request's line when its handler returns, which for a large body
    /// can be just after the client has read the response: waiting until the log is still
    /// for a few milliseconds makes "the request I just made" reliably visible.
    fn settled_access_log(&self) -> String {
        let path = self.dir.path().join("access.log");
        let mut last = fs::read_to_string(&path).expect("read the registry access log");
        for _ in 0..100 {
            thread::sleep(Duration::from_millis(5));
            let now = fs::read_to_string(&path).expect("read the registry access log");
            if now.len() == last.len() {
                break;
            }
            last = now;
        }
        let complete = last.rfind('\n').map_or(0, |end| end + 1);
        last.truncate(complete);
        last
    }

    /// The readiness probe's request is logged when its handler returns; wait for that line
    /// so `clear_requests` in `start` skips it.
    fn wait_for_probe_log(&self) {
        let path = self.dir.path().join("access.log");
        let deadline = Instant::now() + READY_TIMEOUT;
        let logged = |log: &str| match self.kind {
            RegistryKind::Distribution => log.contains('\n'),
            RegistryKind::Olareg => log.contains(OLAREG_REQUEST),
        };
        while !logged(&fs::read_to_string(&path).unwrap_or_default()) {
            assert!(
                Instant::now() < deadline,
                "registry logged no request\n{}",
                log_tails(self.dir.path())
            );
            thread::sleep(Duration::from_millis(2));
        }
    }
}

impl Drop for Registry {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        // Shown with the failing test's output; the temp dir is removed right after.
        if thread::panicking() {
            eprintln!("{}", log_tails(self.dir.path()));
        }
    }
}

enum StartError {
    PortTaken,
    Failed(String),
}

/// A CA and a server certificate for `127.0.0.1` and `localhost`, with the `openssl` CLI.
///
/// The extensions are given explicitly: the system openssl.cnf would make the server
/// certificate a CA too, which rustls refuses as a server's certificate.
pub(crate) fn generate_certs(dir: &Path) {
    let p256 = "-algorithm EC -pkeyopt ec_paramgen_curve:P-256";
    openssl(dir, &format!("genpkey {p256} -out ca.key"));
    openssl(dir, &format!("genpkey {p256} -out server.key"));
    openssl(
        dir,
        "req -x509 -new -key ca.key -out ca.pem -days 2 -subj /CN=image-policy-test-registry-ca \
         -addext basicConstraints=critical,CA:TRUE -addext keyUsage=critical,keyCertSign,cRLSign",
    );
    openssl(
        dir,
        "req -new -key server.key -out server.csr -subj /CN=localhost",
    );
    fs::write(
        dir.join("server.ext"),
        "basicConstraints = critical,CA:FALSE\n\
         keyUsage = critical,digitalSignature\n\
         extendedKeyUsage = serverAuth\n\
         subjectAltName = IP:127.0.0.1,DNS:localhost\n",
    )
    .expect("write server.ext");
    openssl(
        dir,
        "x509 -req -in server.csr -CA ca.pem -CAkey ca.key -CAcreateserial -CAserial ca.srl \
         -days 2 -extfile server.ext -out server.pem",
    );
}

/// Runs `openssl` in `dir` with whitespace-separated `args` (file names relative to `dir`).
pub(crate) fn openssl(dir: &Path, args: &str) {
    let output = Command::new("openssl")
        .args(args.split_whitespace())
        .current_dir(dir)
        .output()
        .unwrap_or_else(|e| panic!("run openssl (hack/install-deps.sh installs it): {e}"));
    assert!(
        output.status.success(),
        "openssl {args} failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
}

/// The registry reads bcrypt hashes only; `htpasswd -B` (apache2-utils) makes them. Cost 4,
/// the minimum, because the registry checks the hash on every request.
fn write_htpasswd(dir: &Path, user: &str, password: &str) {
    let output = Command::new("htpasswd")
        .args(["-Bbn", "-C", "4", user, password])
        .output()
        .unwrap_or_else(|e| panic!("run htpasswd: {e}: run hack/registry.sh install"));
    assert!(
        output.status.success(),
        "htpasswd failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    fs::write(dir.join("htpasswd"), output.stdout).expect("write htpasswd");
}

/// The configuration: TLS, storage in the temp dir, deletes allowed (so tags can move), no
/// notifications, proxy or cache (distribution has them off unless configured; a cache would
/// hide a delete), access log on (it goes to stdout).
fn write_config(dir: &Path, port: u16, basic_auth: bool, plain_http: bool) {
    let path = |name: &str| dir.join(name).display().to_string();
    let mut config = serde_json::json!({
        "version": "0.1",
        "log": { "level": "info", "formatter": "text", "accesslog": { "disabled": false } },
        "storage": {
            "filesystem": { "rootdirectory": path("data") },
            "delete": { "enabled": true },
            "maintenance": { "uploadpurging": { "enabled": false } },
        },
        "http": {
            "addr": format!("127.0.0.1:{port}"),
            // A fixed secret silences the registry's warning; one process needs no sharing.
            "secret": "image-policy-test-registry",
            "tls": { "certificate": path("server.pem"), "key": path("server.key") },
        },
    });
    if plain_http && let Some(http) = config["http"].as_object_mut() {
        http.remove("tls");
    }
    if basic_auth {
        config["auth"] = serde_json::json!({
            "htpasswd": { "realm": "image-policy-test", "path": path("htpasswd") }
        });
    }
    let yaml = serde_yaml::to_string(&config).expect("serialize the registry config");
    fs::write(dir.join("config.yml"), yaml).expect("write the registry config");
}

/// Asks the kernel for a free port. Another process may take it before the registry binds
/// it: `start` then sees "address already in use" and tries another.
pub(crate) fn free_port() -> u16 {
    let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).expect("bind 127.0.0.1:0");
    listener.local_addr().expect("local address").port()
}

/// The access log (Apache combined format) goes to stdout, everything else to stderr.
fn spawn(dir: &Path) -> Child {
    let access = File::create(dir.join("access.log")).expect("create access.log");
    let server = File::create(dir.join("registry.log")).expect("create registry.log");
    Command::new(REGISTRY_BIN)
        .arg("serve")
        .arg(dir.join("config.yml"))
        .stdin(Stdio::null())
        .stdout(access)
        .stderr(server)
        .spawn()
        .unwrap_or_else(|e| panic!("spawn {REGISTRY_BIN}: {e}"))
}

/// olareg serving `dir/data` on `127.0.0.1:port`: its request log (`-v trace`, one line per
/// request once answered) goes to stderr, so to `access.log` as distribution's does; deletes
/// allowed as on distribution; no garbage collection during a test.
fn spawn_olareg(bin: &Path, dir: &Path, port: u16, plain_http: bool) -> Child {
    let access = File::create(dir.join("access.log")).expect("create access.log");
    let server = File::create(dir.join("registry.log")).expect("create registry.log");
    let mut command = Command::new(bin);
    command
        .args(["-v", "trace", "serve", "--addr", "127.0.0.1", "--port"])
        .arg(port.to_string())
        .arg("--dir")
        .arg(dir.join("data"))
        .args(["--api-delete", "--gc-frequency=-1s"]);
    if !plain_http {
        command
            .arg("--tls-cert")
            .arg(dir.join("server.pem"))
            .arg("--tls-key")
            .arg(dir.join("server.key"));
    }
    command
        .stdin(Stdio::null())
        .stdout(server)
        .stderr(access)
        .spawn()
        .unwrap_or_else(|e| panic!("spawn {}: {e}", bin.display()))
}

/// Polls `GET /v2/` (over TLS, unless `tls` is `None`) until any HTTP status comes back.
fn wait_ready(
    child: &mut Child,
    dir: &Path,
    port: u16,
    tls: Option<&Arc<rustls::ClientConfig>>,
) -> Result<(), StartError> {
    let deadline = Instant::now() + READY_TIMEOUT;
    loop {
        if let Some(status) = child.try_wait().expect("poll the registry process") {
            // distribution says it in registry.log, olareg on stderr (access.log).
            let log = fs::read_to_string(dir.join("registry.log")).unwrap_or_default()
                + &fs::read_to_string(dir.join("access.log")).unwrap_or_default();
            return Err(if log.contains("address already in use") {
                StartError::PortTaken
            } else {
                StartError::Failed(format!("exited with {status}"))
            });
        }
        match probe(port, tls) {
            Ok(_status) => return Ok(()),
            // The TLS handshake failed: the certificates are wrong, and waiting won't help.
            Err(e) if e.kind() == io::ErrorKind::InvalidData => {
                return Err(StartError::Failed(format!(
                    "TLS to the registry failed: {e}"
                )));
            }
            Err(e) if Instant::now() >= deadline => {
                return Err(StartError::Failed(format!(
                    "no HTTPS answer within {READY_TIMEOUT:?}: {e}"
                )));
            }
            Err(_) => thread::sleep(Duration::from_millis(10)),
        }
    }
}

/// One blocking request (HTTPS with `tls`): the test may run inside a tokio runtime, where a
/// blocking reqwest client would panic, and a start must not need one.
fn probe(port: u16, tls: Option<&Arc<rustls::ClientConfig>>) -> io::Result<u16> {
    let address = SocketAddr::from((Ipv4Addr::LOCALHOST, port));
    let socket = TcpStream::connect_timeout(&address, Duration::from_secs(1))?;
    socket.set_read_timeout(Some(Duration::from_secs(2)))?;
    socket.set_write_timeout(Some(Duration::from_secs(2)))?;
    let request = b"GET /v2/ HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n";
    let mut status_line = [0u8; 12]; // "HTTP/1.1 200"
    match tls {
        Some(tls) => {
            let name = ServerName::IpAddress(Ipv4Addr::LOCALHOST.into());
            let connection =
                rustls::ClientConnection::new(Arc::clone(tls), name).map_err(io::Error::other)?;
            let mut stream = rustls::StreamOwned::new(connection, socket);
            stream.write_all(request)?;
            stream.read_exact(&mut status_line)?;
        }
        None => {
            let mut stream = socket;
            stream.write_all(request)?;
            stream.read_exact(&mut status_line)?;
        }
    }
    std::str::from_utf8(&status_line[9..])
        .ok()
        .and_then(|code| code.parse().ok())
        .ok_or_else(|| io::Error::other("not an HTTP response"))
}

/// A rustls client that trusts only the registry's CA: the same checks the verifier makes.
fn probe_tls_config(ca: &Path) -> Arc<rustls::ClientConfig> {
    let mut roots = rustls::RootCertStore::empty();
    let ca = CertificateDer::from_pem_file(ca).expect("read the CA certificate");
    roots.add(ca).expect("trust the CA certificate");
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .expect("TLS versions")
        .with_root_certificates(roots)
        .with_no_client_auth();
    Arc::new(config)
}

/// Parses one access log line:
/// `127.0.0.1 - - [date] "HEAD /v2/app/manifests/v1 HTTP/2.0" 200 0 "" "agent"`.
fn parse_access_line(line: &str) -> LoggedRequest {
    let parsed = (|| {
        let (_, rest) = line.split_once('"')?;
        let (request, rest) = rest.split_once('"')?;
        let mut request = request.split(' ');
        let method = request.next()?.to_owned();
        let target = request.next()?;
        let status = rest.split_whitespace().next()?.parse().ok()?;
        let (path, query) = match target.split_once('?') {
            Some((path, query)) => (path, Some(query.to_owned())),
            None => (target, None),
        };
        Some(LoggedRequest {
            method,
            path: path.to_owned(),
            query,
            status,
        })
    })();
    parsed.unwrap_or_else(|| panic!("not an access log line: {line:?}"))
}

/// Parses one olareg request line (log/slog's text format):
/// `time=… level=DEBUG-4 msg=ServeHTTP duration=… method=GET url=/v2/app/manifests/v1
/// status=200 req-headers=… resp-headers=…`; a value with `=` or spaces is quoted.
fn parse_olareg_line(line: &str) -> LoggedRequest {
    let field = |name: &str| -> Option<String> {
        let start = line.find(&format!(" {name}="))? + name.len() + 2;
        let rest = line.get(start..)?;
        Some(match rest.strip_prefix('"') {
            Some(quoted) => quoted.split('"').next()?.to_owned(),
            None => rest.split(' ').next()?.to_owned(),
        })
    };
    let parsed = (|| {
        let target = field("url")?;
        let (path, query) = match target.split_once('?') {
            Some((path, query)) => (path.to_owned(), Some(query.to_owned())),
            None => (target, None),
        };
        Some(LoggedRequest {
            method: field("method")?,
            path,
            query,
            status: field("status")?.parse().ok()?,
        })
    })();
    parsed.unwrap_or_else(|| panic!("not an olareg request line: {line:?}"))
}

/// The last lines of the registry's logs, for a failure message.
fn log_tails(dir: &Path) -> String {
    let tail = |name: &str| {
        let text = fs::read_to_string(dir.join(name)).unwrap_or_default();
        let lines: Vec<&str> = text.lines().collect();
        lines[lines.len().saturating_sub(20)..].join("\n")
    };
    format!(
        "--- registry.log (tail) ---\n{}\n--- access.log (tail) ---\n{}",
        tail("registry.log"),
        tail("access.log")
    )
}
