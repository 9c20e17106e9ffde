//! The real cosign CLI (v3, built from Go modules by `hack/sigstore/install.sh`), run by the
//! tests the way a release pipeline runs it: `cosign sign`, `cosign attest`, `cosign
//! generate-key-pair`, `cosign trusted-root create`, `cosign signing-config create`.
//!
//! cosign never reaches the network here: signing with a key and no log passes
//! `--use-signing-config=false --tlog-upload=false` (no TUF signing config), and every other
//! signature names a local signing config and trusted root ([`crate::local_sigstore`]).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::{Mutex, OnceLock};

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use tempfile::TempDir;

use crate::cosign::Pusher;
use crate::local_sigstore::LocalSigstore;
use crate::registry::Registry;

/// `hack/sigstore` of the repository.
fn hack_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../hack/sigstore")
}

/// The binary of one tool `hack/sigstore/install.sh` builds (`cosign`, `rekor-server`,
/// `timestamp-server`, `olareg`), built first if missing; asked once per process and tool.
pub fn tool(name: &str) -> PathBuf {
    static PATHS: OnceLock<Mutex<BTreeMap<String, PathBuf>>> = OnceLock::new();
    let mut paths = PATHS
        .get_or_init(Default::default)
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner());
    if let Some(path) = paths.get(name) {
        return path.clone();
    }
    let out = Command::new(hack_dir().join("install.sh"))
        .args(["bin", name])
        .output()
        .expect("run hack/sigstore/install.sh");
    assert!(
        out.status.success(),
        "hack/sigstore/install.sh bin {name} failed:\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let path = PathBuf::from(String::from_utf8(out.stdout).expect("utf-8").trim());
    assert!(path.exists(), "{} is missing", path.display());
    paths.insert(name.to_owned(), path.clone());
    path
}

/// Where cosign writes a signature.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Format {
    /// `--new-bundle-format=false`: simple-signing layers, cosign 2's default layout.
    Legacy,
    /// cosign v3's default: a Sigstore bundle (DSSE in-toto statement) as an OCI referrer.
    Bundle,
}

/// `--registry-referrers-mode`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Mode {
    /// `legacy`: the `sha256-<hex>.sig` (`.att`) tag for the legacy format.
    Legacy,
    /// `oci-1-1`: an OCI 1.1 referrer (the referrers API, or the tag schema where the
    /// registry has none); cosign requires `COSIGN_EXPERIMENTAL=1` for it.
    Oci11,
}

impl Mode {
    fn flag(self) -> &'static str {
        match self {
            Mode::Legacy => "--registry-referrers-mode=legacy",
            Mode::Oci11 => "--registry-referrers-mode=oci-1-1",
        }
    }
}

/// A cosign key pair (`cosign generate-key-pair`, empty password), kept in a temp dir.
pub struct CosignKey {
    _dir: TempDir,
    /// `cosign.key`: what `--key` takes.
    pub private: PathBuf,
    /// The public key, PEM.
    pub public_pem: String,
}

/// A key algorithm for [`Cosign::import_key`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum KeyAlgorithm {
    /// ECDSA P-256, what `cosign generate-key-pair` makes.
    EcdsaP256,
    /// ECDSA P-384.
    EcdsaP384,
    /// RSA 2048 (PKCS#1 v1.5 signatures).
    Rsa2048,
    /// Ed25519.
    Ed25519,
}

impl KeyAlgorithm {
    /// `openssl genpkey` arguments that make such a key.
    fn genpkey(self) -> &'static str {
        match self {
            KeyAlgorithm::EcdsaP256 => "-algorithm EC -pkeyopt ec_paramgen_curve:P-256",
            KeyAlgorithm::EcdsaP384 => "-algorithm EC -pkeyopt ec_paramgen_curve:P-384",
            KeyAlgorithm::Rsa2048 => "-algorithm RSA -pkeyopt rsa_keygen_bits:2048",
            KeyAlgorithm::Ed25519 => "-algorithm ED25519",
        }
    }
}

/// The real cosign for one registry: trusts its CA (and, through `SSL_CERT_FILE`, the CAs of
/// the local Sigstore services), logs in with its basic auth if it has one, speaks plain HTTP
/// to it if it does, with its own `HOME`.
pub struct Cosign {
    home: TempDir,
    registry_ca: PathBuf,
    plain_http: bool,
}

/// What is signed and how: see [`Cosign::sign`].
#[derive(Clone, Copy)]
pub struct Signing<'a> {
    /// The signature's format.
    pub format: Format,
    /// The referrers mode.
    pub mode: Mode,
    /// Logged in (and timestamped by) these local services; `None`: no log, no timestamp.
    pub sigstore: Option<&'a LocalSigstore>,
    /// `--recursive`: an index and each of its platform images.
    pub recursive: bool,
}

impl Signing<'static> {
    /// Unlogged, in `format` with `mode`.
    pub const fn new(format: Format, mode: Mode) -> Self {
        Signing {
            format,
            mode,
            sigstore: None,
            recursive: false,
        }
    }

    /// cosign 2's default: simple-signing layers at the `sha256-<hex>.sig` tag, unlogged.
    pub const LEGACY_TAG: Signing<'static> = Signing::new(Format::Legacy, Mode::Legacy);

    /// cosign v3's default: a Sigstore bundle as an OCI referrer, unlogged.
    pub const BUNDLE: Signing<'static> = Signing::new(Format::Bundle, Mode::Oci11);
}

impl Cosign {
    /// cosign trusting `registry`'s CA, with its credentials.
    pub fn new(registry: &Registry) -> Cosign {
        let home = tempfile::Builder::new()
            .prefix("image-policy-cosign-")
            .tempdir()
            .expect("temp dir");
        if let Some((user, password)) = registry.basic_auth() {
            // What `docker login` leaves: cosign's keychain reads it from $HOME.
            let auth =
                base64::engine::general_purpose::STANDARD.encode(format!("{user}:{password}"));
            let config = serde_json::json!({"auths": {registry.host(): {"auth": auth}}});
            let dir = home.path().join(".docker");
            std::fs::create_dir_all(&dir).expect("create .docker");
            std::fs::write(dir.join("config.json"), config.to_string()).expect("write config.json");
        }
        Cosign {
            home,
            registry_ca: registry.ca_path(),
            plain_http: registry.is_plain_http(),
        }
    }

    /// Runs `cosign ARGS` with `sigstore`'s CA trusted for its HTTPS services; its output,
    /// or the failure with cosign's words.
    pub fn try_run(
        &self,
        args: &[&str],
        sigstore: Option<&LocalSigstore>,
    ) -> Result<String, String> {
        let mut command = Command::new(tool("cosign"));
        command
            .args(args)
            .env_clear()
            .env("PATH", std::env::var_os("PATH").unwrap_or_default())
            .env("HOME", self.home.path())
            // Keys are made with an empty password; oci-1-1 is "experimental" to cosign.
            .env("COSIGN_PASSWORD", "")
            .env("COSIGN_EXPERIMENTAL", "1")
            .env("TUF_ROOT", self.home.path().join("tuf"));
        if let Some(sigstore) = sigstore {
            // Go reads the roots of its HTTPS clients from SSL_CERT_FILE.
            command.env("SSL_CERT_FILE", sigstore.ca_path());
        }
        let out = command.output().expect("run cosign");
        let text = format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        if out.status.success() {
            Ok(text)
        } else {
            Err(format!("cosign {args:?} failed ({}):\n{text}", out.status))
        }
    }

    /// Runs `cosign ARGS`, which must succeed.
    pub fn run(&self, args: &[&str], sigstore: Option<&LocalSigstore>) -> String {
        self.try_run(args, sigstore)
            .unwrap_or_else(|e| panic!("{e}"))
    }

    /// A new key pair.
    pub fn generate_key(&self) -> CosignKey {
        let dir = tempfile::tempdir().expect("temp dir");
        let prefix = dir.path().join("cosign");
        self.run(
            &[
                "generate-key-pair",
                "--output-key-prefix",
                prefix.to_str().expect("path"),
            ],
            None,
        );
        let public_pem =
            std::fs::read_to_string(dir.path().join("cosign.pub")).expect("read cosign.pub");
        CosignKey {
            private: dir.path().join("cosign.key"),
            public_pem,
            _dir: dir,
        }
    }

    /// A key pair of `algorithm`, made by openssl and imported with `cosign import-key-pair`:
    /// cosign signs with any of them, but generates only ECDSA P-256.
    pub fn import_key(&self, algorithm: KeyAlgorithm) -> CosignKey {
        let dir = tempfile::tempdir().expect("temp dir");
        crate::registry::openssl(
            dir.path(),
            &format!("genpkey {} -out openssl.pem", algorithm.genpkey()),
        );
        let prefix = dir.path().join("cosign");
        self.run(
            &[
                "import-key-pair",
                "--key",
                dir.path().join("openssl.pem").to_str().expect("path"),
                "--output-key-prefix",
                prefix.to_str().expect("path"),
            ],
            None,
        );
        let public_pem =
            std::fs::read_to_string(dir.path().join("cosign.pub")).expect("read cosign.pub");
        CosignKey {
            private: dir.path().join("cosign.key"),
            public_pem,
            _dir: dir,
        }
    }

    fn registry_args(&self) -> Vec<String> {
        let mut args = vec![
            "--registry-cacert".to_owned(),
            self.registry_ca.display().to_string(),
        ];
        if self.plain_http {
            args.push("--allow-http-registry".to_owned());
        }
        args
    }

    /// Where signatures are logged: the local services' signing config and trusted root, or
    /// nothing at all (no TUF, no log, no timestamp).
    fn service_args(sigstore: Option<&LocalSigstore>) -> Vec<String> {
        match sigstore {
            Some(sigstore) => vec![
                "--signing-config".to_owned(),
                sigstore.signing_config_path().display().to_string(),
                "--trusted-root".to_owned(),
                sigstore.trusted_root_path().display().to_string(),
            ],
            None => vec![
                "--use-signing-config=false".to_owned(),
                "--tlog-upload=false".to_owned(),
            ],
        }
    }

    /// `cosign sign --key KEY IMAGE` as `how` says; cosign's output.
    pub fn sign(&self, image: &str, key: &CosignKey, how: Signing<'_>) -> String {
        let mut args = vec![
            "sign".to_owned(),
            "--yes".to_owned(),
            "--key".to_owned(),
            key.private.display().to_string(),
        ];
        args.extend(self.common(how));
        args.push(image.to_owned());
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        self.run(&args, how.sigstore)
    }

    /// `cosign sign --identity-token TOKEN IMAGE`: keyless, with a certificate of the local
    /// Fulcio for the token's identity, logged and timestamped by `sigstore`.
    pub fn sign_keyless(
        &self,
        image: &str,
        token: &str,
        format: Format,
        sigstore: &LocalSigstore,
    ) -> String {
        let how = Signing {
            format,
            mode: Mode::Legacy,
            sigstore: Some(sigstore),
            recursive: false,
        };
        let (_dir, file) = token_file(token);
        let mut args = vec![
            "sign".to_owned(),
            "--yes".to_owned(),
            "--identity-token".to_owned(),
            file.display().to_string(),
        ];
        args.extend(self.common(how));
        args.push(image.to_owned());
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        self.run(&args, Some(sigstore))
    }

    /// `cosign sign --identity-token TOKEN --new-bundle-format=false --tlog-upload=false`:
    /// cosign's legacy keyless layer, with a certificate of the Fulcio at `fulcio` and a
    /// timestamp of `sigstore`'s timestamp authority, and no log entry (cosign v3.1.3 cannot
    /// log this format to Rekor v2); cosign's output.
    pub fn sign_keyless_unlogged(
        &self,
        image: &str,
        token: &str,
        fulcio: &str,
        sigstore: &LocalSigstore,
    ) -> String {
        let (_dir, file) = token_file(token);
        let mut args = vec![
            "sign".to_owned(),
            "--yes".to_owned(),
            "--identity-token".to_owned(),
            file.display().to_string(),
            "--use-signing-config=false".to_owned(),
            "--tlog-upload=false".to_owned(),
            "--fulcio-url".to_owned(),
            fulcio.to_owned(),
            "--timestamp-server-url".to_owned(),
            sigstore.tsa_url.clone(),
            "--trusted-root".to_owned(),
            sigstore.trusted_root_path().display().to_string(),
            "--new-bundle-format=false".to_owned(),
            Mode::Legacy.flag().to_owned(),
        ];
        args.extend(self.registry_args());
        args.push(image.to_owned());
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        self.run(&args, Some(sigstore))
    }

    /// `cosign attest --key KEY --type TYPE --predicate FILE IMAGE` (`how.mode` is not
    /// passed: attest has no such flag); cosign's output.
    pub fn attest(
        &self,
        image: &str,
        key: &CosignKey,
        predicate_type: &str,
        predicate: &serde_json::Value,
        how: Signing<'_>,
    ) -> String {
        let signer = ["--key".to_owned(), key.private.display().to_string()];
        self.attest_as(&signer, image, (predicate_type, predicate), how)
    }

    /// `cosign attest --identity-token TOKEN --type TYPE --predicate FILE IMAGE`: keyless, a
    /// bundle with a certificate of the local Fulcio for the token's identity, logged and
    /// timestamped by `sigstore`; cosign's output.
    pub fn attest_keyless(
        &self,
        image: &str,
        token: &str,
        predicate_type: &str,
        predicate: &serde_json::Value,
        sigstore: &LocalSigstore,
    ) -> String {
        let (_dir, file) = token_file(token);
        let signer = ["--identity-token".to_owned(), file.display().to_string()];
        let how = Signing {
            sigstore: Some(sigstore),
            ..Signing::BUNDLE
        };
        self.attest_as(&signer, image, (predicate_type, predicate), how)
    }

    fn attest_as(
        &self,
        signer: &[String],
        image: &str,
        (predicate_type, predicate): (&str, &serde_json::Value),
        how: Signing<'_>,
    ) -> String {
        let dir = tempfile::tempdir().expect("temp dir");
        let file = dir.path().join("predicate.json");
        std::fs::write(&file, predicate.to_string()).expect("write the predicate");
        let mut args = vec!["attest".to_owned(), "--yes".to_owned()];
        args.extend_from_slice(signer);
        args.extend([
            "--type".to_owned(),
            predicate_type.to_owned(),
            "--predicate".to_owned(),
            file.display().to_string(),
        ]);
        // `attest` has no --registry-referrers-mode: the format alone says where it goes
        // (the `.att` tag, or a bundle referrer).
        let mut common = self.common(how);
        common.retain(|arg| arg != how.mode.flag());
        args.extend(common);
        args.push(image.to_owned());
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        self.run(&args, how.sigstore)
    }

    fn common(&self, how: Signing<'_>) -> Vec<String> {
        let mut args = self.registry_args();
        args.extend(Self::service_args(how.sigstore));
        args.push(
            match how.format {
                Format::Legacy => "--new-bundle-format=false",
                Format::Bundle => "--new-bundle-format=true",
            }
            .to_owned(),
        );
        args.push(how.mode.flag().to_owned());
        if how.recursive {
            args.push("--recursive".to_owned());
        }
        args
    }
}

/// The demo of the seed's three checks ([`Cosign::push_demo`]): the keys that signed its
/// images.
pub struct Demo {
    /// Signed `demo/signed:v1`.
    pub key: CosignKey,
    /// Signed `demo/other-key:v1`.
    pub other_key: CosignKey,
}

impl Cosign {
    /// The demo of the seed's three checks, signed by the real cosign in the layout the
    /// seed's transcript shows (cosign 2's `sha256-<hex>.sig`, whose refusal by another key
    /// reads exactly `The image: ... is not signed.`): `demo/signed:v1` signed with a new key,
    /// `demo/other-key:v1` with another, and `demo/unsigned:v1`.
    pub async fn push_demo(&self, pusher: &Pusher) -> Demo {
        let (key, other_key) = (self.generate_key(), self.generate_key());
        let host = pusher.host().to_owned();
        for (repository, signer) in [("demo/signed", &key), ("demo/other-key", &other_key)] {
            let digest = pusher.push_image(repository, "v1").await;
            self.sign(
                &format!("{host}/{repository}@{digest}"),
                signer,
                Signing::LEGACY_TAG,
            );
        }
        pusher.push_image("demo/unsigned", "v1").await;
        Demo { key, other_key }
    }
}

/// The Sigstore bundle cosign attached to `repository@digest` (its first referrer holding
/// one), read through the referrers API or, where the registry has none, the referrers tag
/// schema: for a test that replays cosign's own bundle where cosign would never put it.
pub async fn attached_bundle(registry: &Registry, repository: &str, digest: &str) -> Vec<u8> {
    const INDEX: &str = "application/vnd.oci.image.index.v1+json";
    const MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";
    let client = registry.https_client();
    let get = |path: String, accept: &'static str| {
        let request = client.get(registry.url(&path)).header("accept", accept);
        async move {
            let response = request.send().await.expect("ask the registry");
            let status = response.status();
            let body = response.bytes().await.expect("read the answer").to_vec();
            (status.as_u16(), body)
        }
    };
    let (status, mut index) = get(format!("/v2/{repository}/referrers/{digest}"), INDEX).await;
    if status == 404 {
        let tag = digest.replace(':', "-");
        (_, index) = get(format!("/v2/{repository}/manifests/{tag}"), INDEX).await;
    }
    let index: serde_json::Value = serde_json::from_slice(&index).expect("a referrers index");
    for entry in index["manifests"].as_array().into_iter().flatten() {
        let referrer = entry["digest"].as_str().expect("an entry's digest");
        let (_, manifest) = get(format!("/v2/{repository}/manifests/{referrer}"), MANIFEST).await;
        let manifest: serde_json::Value = serde_json::from_slice(&manifest).expect("a manifest");
        let layer = &manifest["layers"][0];
        let is_bundle = layer["mediaType"]
            .as_str()
            .is_some_and(|t| t.starts_with("application/vnd.dev.sigstore.bundle"));
        if is_bundle {
            let blob = layer["digest"].as_str().expect("a layer digest");
            let (status, bundle) = get(format!("/v2/{repository}/blobs/{blob}"), "*/*").await;
            assert_eq!(status, 200, "the bundle blob {blob}");
            return bundle;
        }
    }
    panic!("no bundle among the referrers of {repository}@{digest}: {index}");
}

/// An OIDC identity token for the local Fulcio: a JWT signed ES256 by a throwaway key. cosign
/// parses it (and signs its subject as the proof of possession) without verifying it; the
/// mock Fulcio takes `sub` as the certificate's URI SAN and `iss` as its issuer extension.
pub fn identity_token(subject: &str, issuer: &str) -> String {
    use aws_lc_rs::rand::SystemRandom;
    use aws_lc_rs::signature::{ECDSA_P256_SHA256_FIXED_SIGNING, EcdsaKeyPair};
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("clock")
        .as_secs();
    let header = serde_json::json!({"alg": "ES256", "typ": "JWT"});
    let claims = serde_json::json!({
        "iss": issuer,
        "sub": subject,
        "aud": "sigstore",
        "iat": now,
        "nbf": now,
        "exp": now + 600,
    });
    let signing_input = format!(
        "{}.{}",
        URL_SAFE_NO_PAD.encode(header.to_string()),
        URL_SAFE_NO_PAD.encode(claims.to_string())
    );
    let key = EcdsaKeyPair::generate(&ECDSA_P256_SHA256_FIXED_SIGNING).expect("ES256 key");
    let signature = key
        .sign(&SystemRandom::new(), signing_input.as_bytes())
        .expect("sign the token");
    format!(
        "{signing_input}.{}",
        URL_SAFE_NO_PAD.encode(signature.as_ref())
    )
}

/// `token` in a file of its own, for `--identity-token`: cosign reads a token given inline
/// only when it parses it as it expects. The file lives as long as the directory returned.
fn token_file(token: &str) -> (tempfile::TempDir, std::path::PathBuf) {
    let dir = tempfile::tempdir().expect("temp dir");
    let file = dir.path().join("token");
    std::fs::write(&file, token).expect("write the token");
    (dir, file)
}
