#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

use super::*;

const EC_CERT: &str = include_str!("../testdata/ec.pem");
const EC_PKCS8: &str = include_str!("../testdata/ec-pkcs8.key");
const EC_SEC1: &str = include_str!("../testdata/ec-sec1.key");
const RSA_CERT: &str = include_str!("../testdata/rsa.pem");
const RSA_PKCS1: &str = include_str!("../testdata/rsa-pkcs1.key");

struct Files {
    dir: tempfile::TempDir,
}

impl Files {
    fn new(cert: &str, key: &str) -> Files {
        let files = Files {
            dir: tempfile::tempdir().unwrap(),
        };
        files.write(cert, key);
        files
    }

    fn cert(&self) -> PathBuf {
        self.dir.path().join("tls.crt")
    }

    fn key(&self) -> PathBuf {
        self.dir.path().join("tls.key")
    }

    fn write(&self, cert: &str, key: &str) {
        fs::write(self.cert(), cert).unwrap();
        fs::write(self.key(), key).unwrap();
    }

    /// A store that checks on every call, so that tests need not sleep.
    fn store(&self) -> Result<CertStore, CertError> {
        CertStore::load(&self.cert(), &self.key(), provider(), Duration::ZERO, None)
    }
}

fn provider() -> Arc<CryptoProvider> {
    Arc::new(rustls::crypto::aws_lc_rs::default_provider())
}

fn leaf(pem: &str) -> CertificateDer<'static> {
    CertificateDer::from_pem_slice(pem.as_bytes()).unwrap()
}

fn served(store: &CertStore) -> CertificateDer<'static> {
    store.current().cert[0].clone()
}

#[test]
fn loads_pkcs8_sec1_and_pkcs1_keys() {
    for (cert, key) in [
        (EC_CERT, EC_PKCS8),
        (EC_CERT, EC_SEC1),
        (RSA_CERT, RSA_PKCS1),
    ] {
        let files = Files::new(cert, key);
        let store = files.store().unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(served(&store), leaf(cert));
    }
}

#[test]
fn initial_failures_name_the_file() {
    let files = Files::new(EC_CERT, EC_PKCS8);
    fs::remove_file(files.key()).unwrap();
    let e = files.store().unwrap_err();
    assert!(matches!(e, CertError::Read { .. }), "{e:?}");
    assert!(e.to_string().contains("tls.key"), "{e}");

    files.write("not a certificate", EC_PKCS8);
    let e = files.store().unwrap_err();
    assert!(matches!(e, CertError::Certificate { .. }), "{e:?}");
    assert!(e.to_string().contains("tls.crt"), "{e}");

    files.write(EC_CERT, EC_CERT);
    let e = files.store().unwrap_err();
    assert!(matches!(e, CertError::Key { .. }), "{e:?}");
    assert!(e.to_string().contains("tls.key"), "{e}");

    files.write(EC_CERT, RSA_PKCS1);
    let e = files.store().unwrap_err();
    assert!(matches!(e, CertError::Unusable { .. }), "{e:?}");
}

#[test]
fn a_changed_pair_is_served_after_a_refresh() {
    let files = Files::new(EC_CERT, EC_PKCS8);
    let store = files.store().unwrap();
    files.write(RSA_CERT, RSA_PKCS1);
    store.refresh_if_due();
    assert_eq!(served(&store), leaf(RSA_CERT));
}

#[test]
fn a_broken_reload_keeps_the_old_pair_until_the_files_are_whole() {
    let files = Files::new(EC_CERT, EC_PKCS8);
    let store = files.store().unwrap();

    // Half-written certificate, then a certificate whose key has not been written yet.
    files.write(&RSA_CERT[..RSA_CERT.len() / 2], EC_PKCS8);
    store.refresh_if_due();
    assert_eq!(served(&store), leaf(EC_CERT));
    fs::write(files.cert(), RSA_CERT).unwrap();
    store.refresh_if_due();
    assert_eq!(served(&store), leaf(EC_CERT));

    // A missing file is a failure too.
    fs::remove_file(files.key()).unwrap();
    store.refresh_if_due();
    assert_eq!(served(&store), leaf(EC_CERT));

    fs::write(files.key(), RSA_PKCS1).unwrap();
    store.refresh_if_due();
    assert_eq!(served(&store), leaf(RSA_CERT));
}

#[test]
fn the_files_are_not_looked_at_more_often_than_the_interval() {
    let files = Files::new(EC_CERT, EC_PKCS8);
    let store = CertStore::load(
        &files.cert(),
        &files.key(),
        provider(),
        Duration::from_secs(3600),
        None,
    )
    .unwrap();
    files.write(RSA_CERT, RSA_PKCS1);
    store.refresh_if_due();
    assert_eq!(served(&store), leaf(EC_CERT));
}

#[test]
fn a_provided_pair_is_served_once_set_and_a_bad_one_is_refused() {
    let provided = ProvidedCert::new();
    assert!(
        provided.current().is_none(),
        "nothing to serve before the first pair"
    );
    assert!(
        provided
            .set_pem(EC_CERT.as_bytes(), EC_PKCS8.as_bytes(), "s")
            .unwrap()
    );
    assert!(
        !provided
            .set_pem(EC_CERT.as_bytes(), EC_SEC1.as_bytes(), "s")
            .unwrap(),
        "same certificate"
    );
    let e = provided
        .set_pem(RSA_CERT.as_bytes(), EC_PKCS8.as_bytes(), "secret ns/tls")
        .unwrap_err();
    assert!(matches!(e, CertError::Unusable { .. }), "{e:?}");
    assert!(e.to_string().contains("secret ns/tls tls.key"), "{e}");
    assert_eq!(provided.current().unwrap().cert[0], leaf(EC_CERT), "kept");
    assert!(
        provided
            .set_pem(RSA_CERT.as_bytes(), RSA_PKCS1.as_bytes(), "s")
            .unwrap()
    );
    assert_eq!(provided.current().unwrap().cert[0], leaf(RSA_CERT));
}

#[test]
fn the_observer_sees_every_certificate_that_starts_being_served() {
    let seen = Arc::new(Mutex::new(Vec::new()));
    let observer = {
        let seen = Arc::clone(&seen);
        CertObserver::new(move |leaf| seen.lock().unwrap().push(leaf.to_vec()))
    };
    let files = Files::new(EC_CERT, EC_PKCS8);
    let store = CertStore::load(
        &files.cert(),
        &files.key(),
        provider(),
        Duration::ZERO,
        Some(observer.clone()),
    )
    .unwrap();
    files.write(&RSA_CERT[..10], RSA_PKCS1);
    store.refresh_if_due();
    files.write(RSA_CERT, RSA_PKCS1);
    store.refresh_if_due();
    let provided = ProvidedCert::with_observer(observer);
    provided
        .set_pem(EC_CERT.as_bytes(), EC_PKCS8.as_bytes(), "s")
        .unwrap();
    provided
        .set_pem(EC_CERT.as_bytes(), EC_PKCS8.as_bytes(), "s")
        .unwrap();
    let expected = [EC_CERT, RSA_CERT, EC_CERT].map(|c| leaf(c).to_vec());
    assert_eq!(
        *seen.lock().unwrap(),
        expected,
        "loads, not failures or repeats"
    );
}

#[cfg(unix)]
#[test]
fn a_symlink_swap_is_seen() {
    // How kubelet updates a mounted Secret: new files in a new directory, then the
    // `..data` link is replaced.
    let files = Files::new(EC_CERT, EC_PKCS8);
    let dir = files.dir.path();
    for (name, cert, key) in [("a", EC_CERT, EC_PKCS8), ("b", RSA_CERT, RSA_PKCS1)] {
        fs::create_dir(dir.join(name)).unwrap();
        fs::write(dir.join(name).join("tls.crt"), cert).unwrap();
        fs::write(dir.join(name).join("tls.key"), key).unwrap();
    }
    let link = |target: &str| {
        let tmp = dir.join("..data_tmp");
        std::os::unix::fs::symlink(target, &tmp).unwrap();
        fs::rename(&tmp, dir.join("..data")).unwrap();
    };
    link("a");
    let cert = dir.join("..data/tls.crt");
    let key = dir.join("..data/tls.key");
    let store = CertStore::load(&cert, &key, provider(), Duration::ZERO, None).unwrap();
    assert_eq!(served(&store), leaf(EC_CERT));
    link("b");
    store.refresh_if_due();
    assert_eq!(served(&store), leaf(RSA_CERT));
}
