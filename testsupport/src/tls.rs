//! A self-signed serving certificate for 127.0.0.1, made with the `openssl` command line.

use std::path::{Path, PathBuf};
use std::process::Command;

/// Writes `tls.crt` and `tls.key` into `dir`: P-256, `CN=127.0.0.1`, SAN `IP:127.0.0.1`, and
/// `CA:FALSE` (rustls refuses a CA certificate as a server's), valid for a day. A client trusts
/// it by taking `tls.crt` as its only root.
pub fn self_signed(dir: &Path) -> (PathBuf, PathBuf) {
    self_signed_with(
        dir,
        &["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256"],
    )
}

/// The same with an RSA 2048 key, as Helm's `genCA` and `genSignedCert` make them: for
/// measuring what a handshake costs with one.
pub fn self_signed_rsa(dir: &Path) -> (PathBuf, PathBuf) {
    self_signed_with(dir, &["-newkey", "rsa:2048"])
}

fn self_signed_with(dir: &Path, key_args: &[&str]) -> (PathBuf, PathBuf) {
    let (cert, key) = (dir.join("tls.crt"), dir.join("tls.key"));
    let out = Command::new("openssl")
        .args(["req", "-x509"])
        .args(key_args)
        .args(["-nodes", "-days", "1"])
        .args([
            "-subj",
            "/CN=127.0.0.1",
            "-addext",
            "subjectAltName=IP:127.0.0.1",
        ])
        .args(["-addext", "basicConstraints=critical,CA:FALSE"])
        .args([
            "-keyout",
            key.to_str().unwrap(),
            "-out",
            cert.to_str().unwrap(),
        ])
        .output()
        .expect("openssl");
    assert!(
        out.status.success(),
        "openssl: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    (cert, key)
}
