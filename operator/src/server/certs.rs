//! The serving certificate: read from PEM files and re-read when they change
//! ([`CertStore`]), or handed over in memory by the operator's certificate manager
//! ([`ProvidedCert`], `certificates.mode=operator`).
//!
//! The check of the files is driven by TLS handshakes, not by a background task: each
//! handshake may look at the files' metadata (two `stat` calls), at most once per
//! [`CHECK_INTERVAL`]. So a rotated certificate is served to the first new connection made a
//! second after the files change, an idle server does no I/O, and there is no task to start or
//! stop. Only metadata is compared (modification time, length, inode): the files are read and
//! parsed only when it changes, so the handshake path stays cheap. Kubernetes updates a
//! mounted Secret by swapping a symlink, which changes the inode even when time and length
//! happen to match.
//!
//! A reload that fails (a half-written file, bad PEM, a key that does not match the
//! certificate) keeps the certificate in use and logs a warning once; it is tried again
//! when the files change again. Connections already open are never touched: rustls only
//! asks for a certificate during a handshake.

use std::fs;
use std::io;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, PoisonError, RwLock, TryLockError};
use std::time::{Duration, Instant, SystemTime};

use rustls::crypto::CryptoProvider;
use rustls::pki_types::pem::{self, PemObject};
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::server::{ClientHello, ResolvesServerCert};
use rustls::sign::CertifiedKey;

use super::LOG_TARGET;

/// How often, at most, a handshake looks at the files for a change.
pub const CHECK_INTERVAL: Duration = Duration::from_secs(1);

/// Why the serving certificate or its key could not be loaded.
#[derive(Debug, thiserror::Error)]
pub enum CertError {
    /// A file could not be read (missing, unreadable).
    #[error("cannot read {}: {source}", path.display())]
    Read {
        /// The certificate or key file that was read.
        path: PathBuf,
        /// What the operating system said.
        #[source]
        source: io::Error,
    },
    /// The certificate holds no PEM `CERTIFICATE` block, or a malformed one.
    #[error("{origin} holds no usable PEM certificate: {source}")]
    Certificate {
        /// Where the certificate came from: its file, or its Secret and key.
        origin: String,
        /// What is wrong with its PEM.
        #[source]
        source: pem::Error,
    },
    /// The key holds no PEM private key (PKCS#8, SEC1 or PKCS#1), or a malformed one.
    #[error(
        "{origin} holds no usable PEM private key (PKCS#8, SEC1 \"EC PRIVATE KEY\" or PKCS#1 \"RSA PRIVATE KEY\"): {source}"
    )]
    Key {
        /// Where the key came from.
        origin: String,
        /// What is wrong with its PEM.
        #[source]
        source: pem::Error,
    },
    /// The key is of a kind rustls cannot sign with, or is not the certificate's key.
    #[error("the key in {key} cannot serve the certificate in {cert}: {source}")]
    Unusable {
        /// Where the certificate came from.
        cert: String,
        /// Where the key came from.
        key: String,
        /// rustls' reason.
        #[source]
        source: rustls::Error,
    },
}

/// Told of every certificate chain that starts being served (its leaf), for instance to
/// export its expiry as a metric.
#[derive(Clone)]
pub struct CertObserver(Arc<dyn Fn(&CertificateDer<'_>) + Send + Sync>);

impl CertObserver {
    /// Calls `f` with the leaf of each certificate loaded.
    pub fn new(f: impl Fn(&CertificateDer<'_>) + Send + Sync + 'static) -> Self {
        CertObserver(Arc::new(f))
    }

    fn loaded(observer: Option<&CertObserver>, key: &CertifiedKey) {
        if let (Some(observer), Some(leaf)) = (observer, key.cert.first()) {
            (observer.0)(leaf);
        }
    }
}

impl std::fmt::Debug for CertObserver {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("CertObserver")
    }
}

/// A certificate and key handed over in memory: the resolver of `certificates.mode=operator`,
/// where the operator reads them from its Secret through the API (a mounted Secret would reach
/// the Pod only after the kubelet's next sync, a minute or more after a renewal).
///
/// Until the first pair is set, handshakes fail: there is nothing to serve.
#[derive(Debug)]
pub struct ProvidedCert {
    provider: Arc<CryptoProvider>,
    current: RwLock<Option<Arc<CertifiedKey>>>,
    observer: Option<CertObserver>,
}

impl ProvidedCert {
    /// An empty one, on rustls' aws-lc-rs provider.
    pub fn new() -> Self {
        ProvidedCert {
            provider: Arc::new(rustls::crypto::aws_lc_rs::default_provider()),
            current: RwLock::new(None),
            observer: None,
        }
    }

    /// The same, telling `observer` of each certificate set.
    pub fn with_observer(observer: CertObserver) -> Self {
        ProvidedCert {
            observer: Some(observer),
            ..ProvidedCert::new()
        }
    }

    /// Serves `cert_pem` (the chain, leaf first) with `key_pem` to the next new connections,
    /// if they belong together; otherwise keeps what is served. `origin` names where they came
    /// from, for the error. Returns whether the served certificate changed.
    pub fn set_pem(
        &self,
        cert_pem: &[u8],
        key_pem: &[u8],
        origin: &str,
    ) -> Result<bool, CertError> {
        let key = certified_key(
            cert_pem,
            key_pem,
            &format!("{origin} tls.crt"),
            &format!("{origin} tls.key"),
            &self.provider,
        )?;
        let mut current = self.current.write().unwrap_or_else(PoisonError::into_inner);
        if current.as_ref().is_some_and(|c| c.cert == key.cert) {
            return Ok(false);
        }
        CertObserver::loaded(self.observer.as_ref(), &key);
        *current = Some(Arc::new(key));
        Ok(true)
    }

    /// The certificate and key that new connections get, once one is set.
    pub fn current(&self) -> Option<Arc<CertifiedKey>> {
        self.current
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }
}

impl Default for ProvidedCert {
    fn default() -> Self {
        ProvidedCert::new()
    }
}

impl ResolvesServerCert for ProvidedCert {
    fn resolve(&self, _client_hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        self.current()
    }
}

/// The current certificate and key, and the files they are re-read from.
#[derive(Debug)]
pub struct CertStore {
    cert_file: PathBuf,
    key_file: PathBuf,
    provider: Arc<CryptoProvider>,
    interval: Duration,
    current: RwLock<Arc<CertifiedKey>>,
    check: Mutex<Check>,
    observer: Option<CertObserver>,
}

/// What the last look at the files saw.
#[derive(Debug)]
struct Check {
    at: Instant,
    /// The metadata of the last load attempted, successful or not.
    seen: Option<Stamp>,
    /// Whether the files could not even be looked at last time (warned once).
    unreadable: bool,
}

/// The metadata of both files: a change in any field means "read them again".
#[derive(Debug, Clone, PartialEq, Eq)]
struct Stamp {
    cert: FileStamp,
    key: FileStamp,
}

#[derive(Debug, Clone, PartialEq, Eq)]
struct FileStamp {
    modified: Option<SystemTime>,
    len: u64,
    inode: u64,
}

impl CertStore {
    /// Loads the certificate chain and key; an error names the file at fault. `observer` is
    /// told of this certificate and of every one reloaded.
    pub fn load(
        cert_file: &Path,
        key_file: &Path,
        provider: Arc<CryptoProvider>,
        interval: Duration,
        observer: Option<CertObserver>,
    ) -> Result<Self, CertError> {
        // Metadata first, then contents: a change in between is seen again at the next check.
        let seen = stamp(cert_file, key_file).ok();
        let key = load_certified_key(cert_file, key_file, &provider)?;
        CertObserver::loaded(observer.as_ref(), &key);
        Ok(CertStore {
            observer,
            cert_file: cert_file.to_owned(),
            key_file: key_file.to_owned(),
            provider,
            interval,
            current: RwLock::new(Arc::new(key)),
            check: Mutex::new(Check {
                at: Instant::now(),
                seen,
                unreadable: false,
            }),
        })
    }

    /// The certificate and key that new connections get.
    pub fn current(&self) -> Arc<CertifiedKey> {
        Arc::clone(&self.current.read().unwrap_or_else(PoisonError::into_inner))
    }

    /// Re-reads the files if the last check is older than the interval and they changed.
    ///
    /// Never waits: when another handshake is checking, this one uses the current key.
    pub fn refresh_if_due(&self) {
        let mut check = match self.check.try_lock() {
            Ok(check) => check,
            Err(TryLockError::WouldBlock) => return,
            Err(TryLockError::Poisoned(poisoned)) => poisoned.into_inner(),
        };
        let now = Instant::now();
        if now.saturating_duration_since(check.at) < self.interval {
            return;
        }
        check.at = now;
        self.refresh(&mut check);
    }

    fn refresh(&self, check: &mut Check) {
        let stamp = match stamp(&self.cert_file, &self.key_file) {
            Ok(stamp) => stamp,
            Err(e) => {
                if !check.unreadable {
                    let error = &e as &dyn std::error::Error;
                    tracing::warn!(target: LOG_TARGET, error, "Cannot look at the certificate files, keeping the current certificate");
                }
                check.unreadable = true;
                return;
            }
        };
        check.unreadable = false;
        if check.seen.as_ref() == Some(&stamp) {
            return;
        }
        check.seen = Some(stamp);
        match load_certified_key(&self.cert_file, &self.key_file, &self.provider) {
            Ok(key) => {
                CertObserver::loaded(self.observer.as_ref(), &key);
                *self.current.write().unwrap_or_else(PoisonError::into_inner) = Arc::new(key);
                let file = self.cert_file.display();
                tracing::info!(target: LOG_TARGET, %file, "Reloaded the serving certificate");
            }
            Err(e) => {
                let error = &e as &dyn std::error::Error;
                tracing::warn!(target: LOG_TARGET, error, "Cannot reload the serving certificate, keeping the current one");
            }
        }
    }
}

impl ResolvesServerCert for CertStore {
    fn resolve(&self, _client_hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        self.refresh_if_due();
        Some(self.current())
    }
}

/// Reads a PEM chain (leaf first) and its PEM key from their files.
fn load_certified_key(
    cert_file: &Path,
    key_file: &Path,
    provider: &CryptoProvider,
) -> Result<CertifiedKey, CertError> {
    certified_key(
        &read(cert_file)?,
        &read(key_file)?,
        &cert_file.display().to_string(),
        &key_file.display().to_string(),
        provider,
    )
}

/// Whether a PEM chain and PEM key can be served together (rustls' own check, as when they
/// are loaded); the error says what is wrong.
pub fn check_pair(cert_pem: &[u8], key_pem: &[u8], origin: &str) -> Result<(), CertError> {
    let provider = rustls::crypto::aws_lc_rs::default_provider();
    certified_key(
        cert_pem,
        key_pem,
        &format!("{origin} certificate"),
        &format!("{origin} key"),
        &provider,
    )
    .map(drop)
}

/// Parses a PEM chain (leaf first) and its PEM key, and checks that they belong together.
fn certified_key(
    cert_pem: &[u8],
    key_pem: &[u8],
    cert_origin: &str,
    key_origin: &str,
    provider: &CryptoProvider,
) -> Result<CertifiedKey, CertError> {
    let certificate_error = |source| CertError::Certificate {
        origin: cert_origin.to_owned(),
        source,
    };
    let chain = CertificateDer::pem_slice_iter(cert_pem)
        .collect::<Result<Vec<_>, _>>()
        .map_err(certificate_error)?;
    if chain.is_empty() {
        return Err(certificate_error(pem::Error::NoItemsFound));
    }
    let key = PrivateKeyDer::from_pem_slice(key_pem).map_err(|source| CertError::Key {
        origin: key_origin.to_owned(),
        source,
    })?;
    CertifiedKey::from_der(chain, key, provider).map_err(|source| CertError::Unusable {
        cert: cert_origin.to_owned(),
        key: key_origin.to_owned(),
        source,
    })
}

fn read(path: &Path) -> Result<Vec<u8>, CertError> {
    fs::read(path).map_err(|source| CertError::Read {
        path: path.to_owned(),
        source,
    })
}

fn stamp(cert_file: &Path, key_file: &Path) -> io::Result<Stamp> {
    Ok(Stamp {
        cert: file_stamp(cert_file)?,
        key: file_stamp(key_file)?,
    })
}

fn file_stamp(path: &Path) -> io::Result<FileStamp> {
    // `metadata` follows symlinks: a swapped `..data` link shows as a new inode.
    let metadata = fs::metadata(path)?;
    #[cfg(unix)]
    let inode = std::os::unix::fs::MetadataExt::ino(&metadata);
    #[cfg(not(unix))]
    let inode = 0;
    Ok(FileStamp {
        modified: metadata.modified().ok(),
        len: metadata.len(),
        inode,
    })
}

#[cfg(test)]
mod tests;
