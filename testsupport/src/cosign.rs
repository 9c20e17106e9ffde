//! Pushes images, image indexes and cosign signatures to a test [`Registry`], laid out as
//! `docker push` and `cosign sign` lay them out, and loads the real cosign signatures in
//! `tests/data/signatures/`.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::fs;
use std::path::PathBuf;

use aws_lc_rs::digest;
use aws_lc_rs::rand::{SecureRandom as _, SystemRandom};
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use oci_client::client::{Certificate, CertificateEncoding, ClientConfig, ClientProtocol};
use oci_client::errors::{OciDistributionError, OciErrorCode};
use oci_client::secrets::RegistryAuth;
use oci_client::{Client, Reference};
use reqwest::header::HeaderValue;
use serde::{Deserialize, Serialize};
use sigstore::crypto::SigStoreSigner;

use super::registry::Registry;

/// OCI image manifest media type.
pub const OCI_MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";
/// OCI image index media type.
pub const OCI_INDEX: &str = "application/vnd.oci.image.index.v1+json";
/// OCI image config media type; cosign uses it for the `.sig` manifest's config too.
pub const OCI_CONFIG: &str = "application/vnd.oci.image.config.v1+json";
/// Uncompressed OCI layer media type.
pub const OCI_LAYER_TAR: &str = "application/vnd.oci.image.layer.v1.tar";
/// Media type of a cosign signature layer (its blob is the simple-signing payload).
pub const SIMPLE_SIGNING: &str = "application/vnd.dev.cosign.simplesigning.v1+json";
/// Layer annotation holding the base64 signature over the payload blob.
pub const SIGNATURE_ANNOTATION: &str = "dev.cosignproject.cosign/signature";
/// Manifest media types accepted when reading one back.
const ACCEPTED_MANIFESTS: &[&str] = &[
    OCI_MANIFEST,
    OCI_INDEX,
    "application/vnd.docker.distribution.manifest.v2+json",
    "application/vnd.docker.distribution.manifest.list.v2+json",
];

/// Pushes content to one registry, with its credentials if it has any.
pub struct Pusher {
    client: Client,
    auth: RegistryAuth,
    host: String,
}

/// An image manifest, fields in the order go-containerregistry (so cosign) writes them.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Manifest {
    /// Always 2.
    pub schema_version: u32,
    /// [`OCI_MANIFEST`].
    pub media_type: String,
    /// The config blob.
    pub config: Descriptor,
    /// The layer blobs; in a `.sig` manifest, one per signature.
    pub layers: Vec<Descriptor>,
}

/// A content descriptor.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Descriptor {
    /// What the blob or manifest is.
    pub media_type: String,
    /// Its length in bytes.
    pub size: u64,
    /// `sha256:<hex>` of its bytes.
    pub digest: String,
    /// Cosign puts the signature here.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub annotations: Option<BTreeMap<String, String>>,
    /// Set on the entries of an image index.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub platform: Option<Platform>,
}

/// The platform of an image index entry.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Platform {
    /// `amd64`, `arm64`.
    pub architecture: String,
    /// `linux`.
    pub os: String,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct Index {
    schema_version: u32,
    media_type: &'static str,
    manifests: Vec<Descriptor>,
}

/// The config blob of a `.sig` manifest, byte for byte what cosign (go-containerregistry's
/// `mutate.Append` on an empty image) writes: one empty history entry and one diff id per
/// signature layer.
#[derive(Serialize)]
struct CosignConfig<'a> {
    architecture: &'static str,
    created: &'static str,
    history: Vec<History>,
    os: &'static str,
    rootfs: RootFs<'a>,
    config: Empty,
}

#[derive(Serialize)]
struct History {
    created: &'static str,
}

#[derive(Serialize)]
struct RootFs<'a> {
    #[serde(rename = "type")]
    kind: &'static str,
    diff_ids: Vec<&'a str>,
}

#[derive(Serialize)]
struct Empty {}

impl Pusher {
    /// A client that trusts the registry's CA and uses its basic auth, if any.
    pub fn new(registry: &Registry) -> Self {
        let config = ClientConfig {
            protocol: if registry.is_plain_http() {
                ClientProtocol::Http
            } else {
                ClientProtocol::Https
            },
            // One POST and one PUT per blob instead of POST, PATCH, PUT: the blobs are tiny.
            use_monolithic_push: true,
            extra_root_certificates: vec![Certificate {
                encoding: CertificateEncoding::Pem,
                data: registry.ca_pem(),
            }],
            ..ClientConfig::default()
        };
        // `Client::new` would fall back to a default client on error; fail instead.
        let client = Client::try_from(config).expect("build the OCI client");
        let auth = match registry.basic_auth() {
            Some((user, password)) => RegistryAuth::Basic(user, password),
            None => RegistryAuth::Anonymous,
        };
        Pusher {
            client,
            auth,
            host: registry.host(),
        }
    }

    /// The registry's `host:port`.
    pub fn host(&self) -> &str {
        &self.host
    }

    /// Pushes a small random linux/amd64 image (config + one layer) at `tag`; returns its
    /// manifest digest `sha256:...`.
    pub async fn push_image(&self, repository: &str, tag: &str) -> String {
        let manifest = self.push_image_blobs(repository, "amd64").await;
        self.push_manifest(repository, tag, OCI_MANIFEST, &to_json(&manifest))
            .await
    }

    /// Pushes an OCI image index of two random images (linux/amd64, linux/arm64) at `tag`;
    /// returns the index digest and the two platform manifest digests.
    pub async fn push_index(&self, repository: &str, tag: &str) -> (String, Vec<String>) {
        let mut entries = Vec::new();
        for architecture in ["amd64", "arm64"] {
            let body = to_json(&self.push_image_blobs(repository, architecture).await);
            let digest = sha256_digest(&body);
            self.push_manifest(repository, &digest, OCI_MANIFEST, &body)
                .await;
            entries.push(Descriptor {
                media_type: OCI_MANIFEST.to_owned(),
                size: body.len() as u64,
                digest,
                annotations: None,
                platform: Some(Platform {
                    architecture: architecture.to_owned(),
                    os: "linux".to_owned(),
                }),
            });
        }
        let platforms = entries.iter().map(|entry| entry.digest.clone()).collect();
        let index = Index {
            schema_version: 2,
            media_type: OCI_INDEX,
            manifests: entries,
        };
        let digest = self
            .push_manifest(repository, tag, OCI_INDEX, &to_json(&index))
            .await;
        (digest, platforms)
    }

    /// Signs `digest` as `cosign sign --key` does: a simple-signing payload naming
    /// `HOST/repository` and `digest`, signed by `signer`, appended as one more layer to the
    /// manifest at tag `sha256-<hex>.sig`. Returns the payload bytes.
    ///
    /// An imitation of cosign, kept for what the real one cannot do in a test: sign in-process
    /// in microseconds with any key algorithm, as the base of the faults below; the real
    /// layout is [`crate::producers::Cosign::sign`]'s (`operator/tests/cosign_real.rs`).
    pub async fn sign(&self, repository: &str, digest: &str, signer: &SigStoreSigner) -> Vec<u8> {
        let docker_reference = format!("{}/{repository}", self.host);
        let payload = simple_signing_payload(&docker_reference, digest);
        let signature = signer.sign(&payload).expect("sign the payload");
        self.push_signature_layer(repository, digest, &payload, &STANDARD.encode(signature))
            .await;
        payload
    }

    /// Appends a signature layer with any payload and annotation (forged, corrupted or copied
    /// signatures) to the `.sig` manifest of `digest`, creating it when missing.
    ///
    /// Unlike cosign, an identical layer already there is not skipped: a test gets exactly
    /// the layers it pushed. An imitation kept for faults cosign never writes: forged,
    /// corrupted, copied or replayed layers.
    pub async fn push_signature_layer(
        &self,
        repository: &str,
        digest: &str,
        payload: &[u8],
        signature_b64: &str,
    ) {
        let annotations =
            BTreeMap::from([(SIGNATURE_ANNOTATION.to_owned(), signature_b64.to_owned())]);
        self.push_annotated_layer(repository, digest, payload, annotations)
            .await;
    }

    /// Appends a signature layer with `annotations` (the signature, and for keyless cosign
    /// its certificate, chain and Rekor entry) to the `.sig` manifest of `digest`. An
    /// imitation kept for faults cosign never writes: a tampered certificate, chain or entry.
    pub async fn push_annotated_layer(
        &self,
        repository: &str,
        digest: &str,
        payload: &[u8],
        annotations: BTreeMap<String, String>,
    ) {
        let mut layers = self
            .signature_manifest(repository, digest)
            .await
            .map(|manifest| manifest.layers)
            .unwrap_or_default();
        layers.push(Descriptor {
            annotations: Some(annotations),
            ..self.push_blob(repository, SIMPLE_SIGNING, payload).await
        });
        let config = cosign_config(&layers);
        let manifest = Manifest {
            schema_version: 2,
            media_type: OCI_MANIFEST.to_owned(),
            config: self.push_blob(repository, OCI_CONFIG, &config).await,
            layers,
        };
        let tag = signature_tag(digest);
        self.push_manifest(repository, &tag, OCI_MANIFEST, &to_json(&manifest))
            .await;
    }

    /// Attaches `bundle` (a Sigstore bundle v0.3) to `repository@subject` as cosign v3 does on
    /// a registry without the referrers API: an untagged referrer manifest whose one layer is
    /// the bundle, listed in the index tagged `sha256-<hex>`. The subject's manifest need not
    /// be in the registry (a bundle made elsewhere, for an image whose bytes are not here).
    /// An imitation kept for what cosign refuses to write: look-alike and replayed referrers,
    /// referrers of a subject the registry does not hold.
    pub async fn attach_referrer(&self, repository: &str, subject: &str, bundle: &[u8]) {
        const BUNDLE: &str = "application/vnd.dev.sigstore.bundle.v0.3+json";
        const EMPTY: &str = "application/vnd.oci.empty.v1+json";
        let layer = self.push_blob(repository, BUNDLE, bundle).await;
        let config = self.push_blob(repository, EMPTY, b"{}").await;
        let referrer = serde_json::json!({
            "schemaVersion": 2,
            "mediaType": OCI_MANIFEST,
            "artifactType": BUNDLE,
            "config": config,
            "layers": [layer],
            "subject": { "mediaType": OCI_MANIFEST, "digest": subject, "size": 0 },
            "annotations": {
                "dev.sigstore.bundle.content": "dsse-envelope",
                "dev.sigstore.bundle.predicateType": "https://sigstore.dev/cosign/sign/v1",
            },
        });
        let body = to_json(&referrer);
        let digest = sha256_digest(&body);
        self.push_manifest(repository, &digest, OCI_MANIFEST, &body)
            .await;
        let index = serde_json::json!({
            "schemaVersion": 2,
            "mediaType": OCI_INDEX,
            "manifests": [{
                "mediaType": OCI_MANIFEST,
                "digest": digest,
                "size": body.len(),
                "artifactType": BUNDLE,
            }],
        });
        let tag = subject.replace(':', "-");
        self.push_manifest(repository, &tag, OCI_INDEX, &to_json(&index))
            .await;
    }

    /// Attaches `content` to `repository@subject` as an OCI 1.1 artifact of `artifact_type`
    /// (`oras attach` does so for an SBOM): an untagged manifest whose one layer is the
    /// content, with an empty config and the subject. No referrers tag schema index is
    /// written: for a registry with the referrers API, which lists it. An imitation of
    /// another tool, for referrers cosign does not write. Returns the manifest's digest.
    pub async fn attach_artifact(
        &self,
        repository: &str,
        subject: &str,
        artifact_type: &str,
        content: &[u8],
    ) -> String {
        const EMPTY: &str = "application/vnd.oci.empty.v1+json";
        let layer = self.push_blob(repository, artifact_type, content).await;
        let config = self.push_blob(repository, EMPTY, b"{}").await;
        let size = self
            .fetch_manifest(repository, subject)
            .await
            .map_or(0, |body| body.len());
        let manifest = serde_json::json!({
            "schemaVersion": 2,
            "mediaType": OCI_MANIFEST,
            "artifactType": artifact_type,
            "config": config,
            "layers": [layer],
            "subject": { "mediaType": OCI_MANIFEST, "digest": subject, "size": size },
        });
        let body = to_json(&manifest);
        let digest = sha256_digest(&body);
        self.push_manifest(repository, &digest, OCI_MANIFEST, &body)
            .await
    }

    /// The `.sig` manifest of `digest` in `repository`, if one was pushed.
    pub async fn signature_manifest(&self, repository: &str, digest: &str) -> Option<Manifest> {
        let body = self
            .fetch_manifest(repository, &signature_tag(digest))
            .await?;
        Some(serde_json::from_slice(&body).expect("parse the .sig manifest"))
    }

    /// Points `tag` at `digest`, a manifest already in `repository` (the same bytes are put
    /// under the tag, so the digest is unchanged).
    pub async fn retag(&self, repository: &str, tag: &str, digest: &str) {
        let body = self
            .fetch_manifest(repository, digest)
            .await
            .unwrap_or_else(|| panic!("retag: {repository}@{digest} is not in the registry"));
        let parsed: serde_json::Value = serde_json::from_slice(&body).expect("parse the manifest");
        let media_type = parsed["mediaType"]
            .as_str()
            .expect("the manifest names its mediaType");
        self.push_manifest(repository, tag, media_type, &body).await;
    }

    /// Pushes a random image's layer and config; returns the manifest to push for them.
    async fn push_image_blobs(&self, repository: &str, architecture: &str) -> Manifest {
        let mut nonce = [0u8; 16];
        SystemRandom::new().fill(&mut nonce).expect("random bytes");
        let layer = tar_with_file("nonce", hex(&nonce).as_bytes());
        let layer = self.push_blob(repository, OCI_LAYER_TAR, &layer).await;
        let config = serde_json::json!({
            "architecture": architecture,
            "os": "linux",
            "config": {},
            "rootfs": { "type": "layers", "diff_ids": [layer.digest] },
        });
        let config = to_json(&config);
        Manifest {
            schema_version: 2,
            media_type: OCI_MANIFEST.to_owned(),
            config: self.push_blob(repository, OCI_CONFIG, &config).await,
            layers: vec![layer],
        }
    }

    async fn push_blob(&self, repository: &str, media_type: &str, data: &[u8]) -> Descriptor {
        let digest = sha256_digest(data);
        let reference = self.reference(repository, &digest).await;
        self.client
            .push_blob(&reference, data.to_vec(), &digest)
            .await
            .unwrap_or_else(|e| panic!("push blob {digest} to {reference}: {e}"));
        Descriptor {
            media_type: media_type.to_owned(),
            size: data.len() as u64,
            digest,
            annotations: None,
            platform: None,
        }
    }

    /// Puts `body` at `tag_or_digest`; returns its digest.
    async fn push_manifest(
        &self,
        repository: &str,
        tag_or_digest: &str,
        media_type: &str,
        body: &[u8],
    ) -> String {
        let reference = self.reference(repository, tag_or_digest).await;
        let content_type =
            HeaderValue::from_str(media_type).expect("a media type is a header value");
        self.client
            .push_manifest_raw(&reference, body.to_vec(), content_type)
            .await
            .unwrap_or_else(|e| panic!("push manifest to {reference}: {e}"));
        sha256_digest(body)
    }

    /// The manifest at `tag_or_digest` as stored, or `None` when the registry has none.
    async fn fetch_manifest(&self, repository: &str, tag_or_digest: &str) -> Option<Vec<u8>> {
        let reference = self.reference(repository, tag_or_digest).await;
        match self
            .client
            .pull_manifest_raw(&reference, &self.auth, ACCEPTED_MANIFESTS)
            .await
        {
            Ok((body, _digest)) => Some(body.to_vec()),
            Err(OciDistributionError::RegistryError { envelope, .. })
                if envelope
                    .errors
                    .iter()
                    .any(|e| e.code == OciErrorCode::ManifestUnknown) =>
            {
                None
            }
            Err(e) => panic!("fetch manifest {reference}: {e}"),
        }
    }

    /// The reference to `tag_or_digest`, with the credentials stored for it: oci-client's
    /// blob and manifest calls only use credentials stored beforehand.
    async fn reference(&self, repository: &str, tag_or_digest: &str) -> Reference {
        self.client
            .store_auth_if_needed(&self.host, &self.auth)
            .await;
        let (host, repository, target) = (
            self.host.clone(),
            repository.to_owned(),
            tag_or_digest.to_owned(),
        );
        if tag_or_digest.starts_with("sha256:") {
            Reference::with_digest(host, repository, target)
        } else {
            Reference::with_tag(host, repository, target)
        }
    }
}

/// The public key of `signer`, as PEM (what a policy's `publicKey` holds).
pub fn public_key_pem(signer: &SigStoreSigner) -> String {
    signer
        .to_sigstore_keypair()
        .expect("pair")
        .public_key_to_pem()
        .expect("pem")
}

/// Cosign's simple-signing payload, byte for byte:
/// `{"critical":{"identity":{"docker-reference":"…"},"image":{"docker-manifest-digest":"…"},"type":"cosign container image signature"},"optional":null}`.
pub fn simple_signing_payload(docker_reference: &str, digest: &str) -> Vec<u8> {
    // Keys in cosign's order, which is also alphabetical: the same bytes whether or not
    // serde_json's `preserve_order` is on in this build.
    let payload = serde_json::json!({
        "critical": {
            "identity": { "docker-reference": docker_reference },
            "image": { "docker-manifest-digest": digest },
            "type": "cosign container image signature",
        },
        "optional": null,
    });
    to_json(&payload)
}

/// The tag cosign stores the signatures of `digest` under: `sha256-<hex>.sig`.
pub fn signature_tag(digest: &str) -> String {
    format!("{}.sig", digest.replace(':', "-"))
}

/// `sha256:<hex>` of `data`.
pub fn sha256_digest(data: &[u8]) -> String {
    format!(
        "sha256:{}",
        hex(digest::digest(&digest::SHA256, data).as_ref())
    )
}

fn cosign_config(layers: &[Descriptor]) -> Vec<u8> {
    let config = CosignConfig {
        architecture: "",
        created: "0001-01-01T00:00:00Z",
        history: layers
            .iter()
            .map(|_| History {
                created: "0001-01-01T00:00:00Z",
            })
            .collect(),
        os: "",
        rootfs: RootFs {
            kind: "layers",
            diff_ids: layers.iter().map(|l| l.digest.as_str()).collect(),
        },
        config: Empty {},
    };
    to_json(&config)
}

fn to_json(value: &impl Serialize) -> Vec<u8> {
    serde_json::to_vec(value).expect("serialize JSON")
}

fn hex(bytes: &[u8]) -> String {
    bytes
        .iter()
        .fold(String::with_capacity(bytes.len() * 2), |mut out, byte| {
            let _ = write!(out, "{byte:02x}");
            out
        })
}

/// A ustar archive holding one regular file, so the layer is a real, extractable layer.
fn tar_with_file(name: &str, contents: &[u8]) -> Vec<u8> {
    const BLOCK: usize = 512;
    let mut header = [0u8; BLOCK];
    let mut put =
        |offset: usize, field: &[u8]| header[offset..offset + field.len()].copy_from_slice(field);
    put(0, name.as_bytes());
    put(100, b"0000644\0"); // mode
    put(108, b"0000000\0"); // uid
    put(116, b"0000000\0"); // gid
    put(124, format!("{:011o}\0", contents.len()).as_bytes());
    put(136, b"00000000000\0"); // mtime
    put(148, b"        "); // the checksum counts its own field as spaces
    put(156, b"0"); // regular file
    put(257, b"ustar\x0000");
    let checksum: u32 = header.iter().map(|&byte| u32::from(byte)).sum();
    header[148..156].copy_from_slice(format!("{checksum:06o}\0 ").as_bytes());

    let mut archive = header.to_vec();
    archive.extend_from_slice(contents);
    archive.resize(BLOCK + contents.len().div_ceil(BLOCK) * BLOCK, 0);
    archive.resize(archive.len() + 2 * BLOCK, 0); // end-of-archive marker
    archive
}

/// One real cosign signature from `tests/data/signatures/` (see its README.md).
#[derive(Clone, Debug)]
pub struct RealSignature {
    /// The case's folder name, e.g. `sigstore-rs-busybox-ecdsa`.
    pub id: String,
    /// The public key that verifies it (PEM).
    pub key_pem: Vec<u8>,
    /// The exact signed payload.
    pub payload: Vec<u8>,
    /// The `dev.cosignproject.cosign/signature` annotation value.
    pub signature_b64: String,
    /// The image digest the payload names.
    pub image_digest: String,
    /// The repository the payload names.
    pub docker_reference: String,
    /// `sha256:<hex>` of the payload.
    pub payload_sha256: String,
    /// `valid` for every case so far.
    pub expected: String,
}

#[derive(Deserialize)]
struct IndexEntry {
    id: String,
    key: String,
    payload_sha256: String,
    image_digest: String,
    docker_reference: String,
    expected: String,
}

/// The folder of the real signatures.
pub fn real_signatures_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../operator/tests/data/signatures")
}

/// Every case of `tests/data/signatures/index.json`, with its files read.
pub fn real_signatures() -> Vec<RealSignature> {
    let dir = real_signatures_dir();
    let index = fs::read(dir.join("index.json")).expect("read index.json");
    let entries: Vec<IndexEntry> = serde_json::from_slice(&index).expect("parse index.json");
    entries
        .into_iter()
        .map(|entry| {
            let case = dir.join(&entry.id);
            let read = |path: PathBuf| {
                fs::read(&path).unwrap_or_else(|e| panic!("read {}: {e}", path.display()))
            };
            let signature =
                String::from_utf8(read(case.join("signature.b64"))).expect("base64 text");
            RealSignature {
                key_pem: read(dir.join(&entry.key)),
                payload: read(case.join("payload.json")),
                signature_b64: signature.trim().to_owned(),
                id: entry.id,
                image_digest: entry.image_digest,
                docker_reference: entry.docker_reference,
                payload_sha256: entry.payload_sha256,
                expected: entry.expected,
            }
        })
        .collect()
}
