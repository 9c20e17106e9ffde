//! Sigstore's own JavaScript producers, for the tests: `@sigstore/sign` makes bundles,
//! `@sigstore/oci` attaches them to images as OCI referrers, and `@sigstore/mock` serves a
//! Fulcio, a Rekor and a timestamp authority on 127.0.0.1. They run through
//! `hack/sigstore-js/sigstore.js`, with the pinned packages `hack/sigstore-js/install.sh`
//! installs (once per process here).

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::OnceLock;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use tempfile::TempDir;

use crate::cosign::{Pusher, simple_signing_payload};

/// `hack/sigstore-js` of the repository.
fn dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../hack/sigstore-js")
}

/// Installs the packages (npm ci) the first time a process asks.
pub fn install() {
    static INSTALLED: OnceLock<()> = OnceLock::new();
    INSTALLED.get_or_init(|| {
        let out = Command::new(dir().join("install.sh"))
            .output()
            .expect("run hack/sigstore-js/install.sh");
        assert!(
            out.status.success(),
            "hack/sigstore-js/install.sh failed:\n{}",
            String::from_utf8_lossy(&out.stderr)
        );
    });
}

/// Runs `node sigstore.js ARGS`; its standard output.
pub fn run(args: &[&str]) -> String {
    install();
    let out = Command::new("node")
        .arg(dir().join("sigstore.js"))
        .args(args)
        .output()
        .expect("run node");
    assert!(
        out.status.success(),
        "node sigstore.js {args:?} failed:\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).expect("utf-8")
}

/// An ECDSA P-256 signing key kept in a temp dir, for `sign --key`.
pub struct Key {
    _dir: TempDir,
    prefix: PathBuf,
    /// The public key, PEM.
    pub public_pem: String,
}

impl Key {
    /// A new key.
    pub fn new() -> Key {
        let dir = tempfile::tempdir().expect("temp dir");
        let prefix = dir.path().join("cosign");
        let public_pem = run(&["key", prefix.to_str().expect("path")]);
        Key {
            _dir: dir,
            prefix,
            public_pem,
        }
    }

    /// What `--key` takes.
    pub fn path(&self) -> &str {
        self.prefix.to_str().expect("path")
    }
}

impl Default for Key {
    fn default() -> Self {
        Key::new()
    }
}

/// A bundle made by `sign` with `args` (`--digest` and the rest); its bytes.
pub fn sign(args: &[&str]) -> Vec<u8> {
    let dir = tempfile::tempdir().expect("temp dir");
    let out = dir.path().join("bundle.json");
    let mut all = vec!["sign", "--out", out.to_str().expect("path")];
    all.extend_from_slice(args);
    run(&all);
    std::fs::read(&out).expect("read the bundle")
}

/// Attaches `bundle` to `image` (`host:port/repository`) at `digest` as cosign v3 does, with
/// `extra` arguments (`--artifact-type`, `--predicate-type`).
pub fn attach(image: &str, digest: &str, bundle: &[u8], extra: &[&str]) {
    let dir = tempfile::tempdir().expect("temp dir");
    let file = dir.path().join("bundle.json");
    std::fs::write(&file, bundle).expect("write the bundle");
    let mut args = vec![
        "attach",
        "--image",
        image,
        "--digest",
        digest,
        "--bundle",
        file.to_str().expect("path"),
    ];
    args.extend_from_slice(extra);
    run(&args);
}

/// `@sigstore/mock`'s Fulcio, Rekor and timestamp authority on 127.0.0.1, and a trusted root
/// for them; stopped on drop.
pub struct Mocks {
    child: Child,
    dir: TempDir,
    /// The Fulcio's URL.
    pub fulcio: String,
    /// The Rekor's URL.
    pub rekor: String,
    /// The timestamp authority's URL.
    pub tsa: String,
}

impl Mocks {
    /// Starts them and waits until they serve.
    pub fn start() -> Mocks {
        Mocks::start_with(&[])
    }

    /// Starts them with `env` (see `lib/mock-servers.js`: `MOCK_REKOR_SKEW_S`, ...).
    pub fn start_with(env: &[(&str, &str)]) -> Mocks {
        install();
        let dir = tempfile::tempdir().expect("temp dir");
        let mut child = Command::new("node")
            .arg(self::dir().join("sigstore.js"))
            .arg("mocks")
            .arg(dir.path())
            .envs(env.iter().copied())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("start the mocks");
        let mut line = String::new();
        let stdout = child.stdout.take().expect("stdout");
        BufReader::new(stdout)
            .read_line(&mut line)
            .expect("the mocks' endpoints");
        let endpoints: serde_json::Value = serde_json::from_str(&line)
            .unwrap_or_else(|e| panic!("the mocks did not start ({e}): {line:?}"));
        let url = |name: &str| endpoints[name].as_str().expect("endpoint").to_owned();
        Mocks {
            fulcio: url("fulcio"),
            rekor: url("rekor"),
            tsa: url("tsa"),
            child,
            dir,
        }
    }

    /// The trusted_root.json of these mocks.
    pub fn trusted_root(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("trusted_root.json")).expect("trusted root")
    }

    /// Where [`Mocks::trusted_root`] is stored.
    pub fn trusted_root_path(&self) -> PathBuf {
        self.dir.path().join("trusted_root.json")
    }

    /// The Fulcio's CA certificate (PEM): the chain cosign stores beside a certificate.
    pub fn fulcio_root_pem(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("fulcio-root.pem")).expect("fulcio root")
    }

    /// The arguments of `sign` for a keyless signature: a certificate of this Fulcio for
    /// `subject` (a URI SAN) of `issuer`, logged in this Rekor.
    pub fn keyless<'a>(&'a self, subject: &'a str, issuer: &'a str) -> [&'a str; 8] {
        [
            "--fulcio",
            &self.fulcio,
            "--identity",
            subject,
            "--issuer",
            issuer,
            "--rekor",
            &self.rekor,
        ]
    }
}

/// The annotations cosign v1/v2 puts on a keyless legacy signature layer, made of a
/// message-signature bundle over the layer's payload (`sign --kind message --artifact
/// PAYLOAD`, keyless and logged): the signature, the certificate and `chain_pem` (PEM), and
/// the Rekor entry as cosign's `dev.sigstore.cosign/bundle` (the signed entry timestamp and
/// the entry's body, integrated time, index and log ID in hex).
pub fn legacy_annotations(bundle: &[u8], chain_pem: &str) -> BTreeMap<String, String> {
    let bundle: serde_json::Value = serde_json::from_slice(bundle).expect("bundle json");
    let material = &bundle["verificationMaterial"];
    let certificate = material["certificate"]["rawBytes"]
        .as_str()
        .or_else(|| material["x509CertificateChain"]["certificates"][0]["rawBytes"].as_str())
        .expect("a keyless bundle");
    let der = STANDARD.decode(certificate).expect("base64");
    let pem = pem_block("CERTIFICATE", &der);
    let entry = &material["tlogEntries"][0];
    let number = |v: &serde_json::Value| -> i64 {
        v.as_str()
            .map(|s| s.parse().expect("number"))
            .or_else(|| v.as_i64())
            .unwrap_or(0)
    };
    let log_id: String = STANDARD
        .decode(entry["logId"]["keyId"].as_str().expect("log id"))
        .expect("base64")
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    let rekor = serde_json::json!({
        "SignedEntryTimestamp": entry["inclusionPromise"]["signedEntryTimestamp"],
        "Payload": {
            "body": entry["canonicalizedBody"],
            "integratedTime": number(&entry["integratedTime"]),
            "logIndex": number(&entry["logIndex"]),
            "logID": log_id,
        },
    });
    BTreeMap::from([
        (
            "dev.cosignproject.cosign/signature".to_owned(),
            bundle["messageSignature"]["signature"]
                .as_str()
                .expect("a message signature")
                .to_owned(),
        ),
        ("dev.sigstore.cosign/certificate".to_owned(), pem),
        ("dev.sigstore.cosign/chain".to_owned(), chain_pem.to_owned()),
        ("dev.sigstore.cosign/bundle".to_owned(), rekor.to_string()),
    ])
}

/// The layout of a signature.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Layout {
    /// A cosign v3 bundle attached as an OCI referrer (by @sigstore/oci).
    Bundle,
    /// cosign v1/v2's `.sig` layer with its certificate, chain and Rekor annotations.
    Legacy,
}

/// Signs `host/repository@digest` keyless through `mocks` for `subject` of `issuer`, in
/// `layout`, the bundle changed by `tamper` before it is stored.
pub async fn sign_keyless(
    pusher: &Pusher,
    repository: &str,
    digest: &str,
    mocks: &Mocks,
    (subject, issuer): (&str, &str),
    layout: Layout,
    tamper: impl Fn(&mut serde_json::Value),
) {
    let host = pusher.host();
    let keyless = mocks.keyless(subject, issuer);
    let payload = simple_signing_payload(&format!("{host}/{repository}"), digest);
    let dir = tempfile::tempdir().expect("temp dir");
    let file = dir.path().join("payload.json");
    std::fs::write(&file, &payload).expect("write the payload");
    let mut args = vec!["--digest", digest];
    if layout == Layout::Legacy {
        args.extend_from_slice(&[
            "--kind",
            "message",
            "--artifact",
            file.to_str().expect("path"),
        ]);
    }
    args.extend_from_slice(&keyless);
    let mut json: serde_json::Value = serde_json::from_slice(&sign(&args)).expect("bundle json");
    tamper(&mut json);
    let bundle = serde_json::to_vec(&json).expect("json");
    match layout {
        Layout::Legacy => {
            let annotations = legacy_annotations(&bundle, &mocks.fulcio_root_pem());
            pusher
                .push_annotated_layer(repository, digest, &payload, annotations)
                .await;
        }
        Layout::Bundle => attach(&format!("{host}/{repository}"), digest, &bundle, &[]),
    }
}

fn pem_block(label: &str, der: &[u8]) -> String {
    let body = STANDARD.encode(der);
    let lines: Vec<&str> = body
        .as_bytes()
        .chunks(64)
        .map(|c| std::str::from_utf8(c).expect("ascii"))
        .collect();
    format!(
        "-----BEGIN {label}-----\n{}\n-----END {label}-----\n",
        lines.join("\n")
    )
}

impl Drop for Mocks {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
