//! One bad signature layer never hides a good one: a layer that is too large, missing, not
//! its digest or not a payload counts as one signature that does not verify, is named in the
//! log, and the next layer is tried (#16). The real registry cannot list a missing blob or
//! serve bytes that are not their digest, so those go through a stub registry, with layers
//! the imitation signs in-process (the real cosign cannot push to the stub); the oversized
//! payload goes through the real one, beside the real cosign's signature.

// A test crate: its helpers fail the test loudly by design.
#![allow(
    clippy::expect_used,
    clippy::unwrap_used,
    clippy::indexing_slicing,
    clippy::panic
)]

use std::io::Write;
use std::sync::{Arc, Mutex};

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use image_policy::policy::{ImageName, NamedKey, PublicKey};
use image_policy::telemetry::{env_filter, json_layer};
use image_policy::verify::{
    Failure, Format, RegistryConfig, Rejection, Verdict, Verifier, VerifyConfig,
};
use image_policy_testsupport::cosign::{
    Pusher, public_key_pem, sha256_digest, signature_tag, simple_signing_payload,
};
use image_policy_testsupport::producers::{Cosign, Signing};
use image_policy_testsupport::registry::{Registry, RegistryOptions};
use image_policy_testsupport::stub::Stub;
use sigstore::crypto::{SigStoreSigner, SigningScheme};
use tracing_subscriber::layer::SubscriberExt as _;

const OCI_MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";
const SIMPLE_SIGNING: &str = "application/vnd.dev.cosign.simplesigning.v1+json";

/// An in-process key for the stub's layers: imitation, since the real cosign cannot push to a
/// stub that serves missing and lying blobs.
fn signer() -> (SigStoreSigner, NamedKey) {
    let signer = SigningScheme::ECDSA_P256_SHA256_ASN1
        .create_signer()
        .expect("signer");
    let key = NamedKey::new(
        "k",
        PublicKey::from_pem(&public_key_pem(&signer)).expect("key"),
    );
    (signer, key)
}

/// The JSON log lines written while `f` runs (on this thread).
async fn logged<T>(f: impl std::future::Future<Output = T>) -> (T, String) {
    #[derive(Clone, Default)]
    struct Buffer(Arc<Mutex<Vec<u8>>>);
    impl Write for Buffer {
        fn write(&mut self, data: &[u8]) -> std::io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(data);
            Ok(data.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }
    let buffer = Buffer::default();
    let writer = buffer.clone();
    let subscriber = tracing_subscriber::registry()
        .with(env_filter("info", None).expect("filter"))
        .with(json_layer(move || writer.clone()));
    let _default = tracing::subscriber::set_default(subscriber);
    let out = f.await;
    let text = String::from_utf8(buffer.0.lock().unwrap().clone()).expect("utf-8");
    (out, text)
}

fn layer(digest: &str, size: usize, signature: &str) -> serde_json::Value {
    serde_json::json!({"mediaType": SIMPLE_SIGNING, "digest": digest, "size": size,
        "annotations": {"dev.cosignproject.cosign/signature": signature}})
}

/// A stub registry with the image `app:v1` whose `.sig` manifest holds `bad` layers first and
/// then, when `good` is set, a valid signature; returns the stub and the image.
fn stub_image(
    stub: &Stub,
    signer: &SigStoreSigner,
    bad: Vec<serde_json::Value>,
    good: bool,
) -> String {
    let image = br#"{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json","config":{"mediaType":"application/vnd.oci.image.config.v1+json","digest":"sha256:44136fa355b3678a1146ad16f7e8649e94fb4fc21fe77e8310c060f61caaff8a","size":2},"layers":[]}"#;
    let digest = stub.manifest("app", "v1", OCI_MANIFEST, image);
    let mut layers = bad;
    if good {
        let payload = simple_signing_payload(&format!("{}/app", stub.host()), &digest);
        let signature = STANDARD.encode(signer.sign(&payload).expect("sign"));
        let payload_digest = sha256_digest(&payload);
        stub.blob("app", &payload_digest, &payload);
        layers.push(layer(&payload_digest, payload.len(), &signature));
    }
    let sig = serde_json::json!({"schemaVersion": 2, "mediaType": OCI_MANIFEST,
        "config": {"mediaType": "application/vnd.oci.image.config.v1+json", "digest": sha256_digest(b"{}"), "size": 2},
        "layers": layers});
    stub.manifest(
        "app",
        &signature_tag(&digest),
        OCI_MANIFEST,
        &serde_json::to_vec(&sig).unwrap(),
    );
    format!("{}/app:v1", stub.host())
}

fn stub_verifier(stub: &Stub) -> Verifier {
    Verifier::new(VerifyConfig {
        registry: RegistryConfig {
            insecure_registries: [stub.host()].into(),
            ..RegistryConfig::default()
        },
        ..VerifyConfig::default()
    })
    .expect("verifier")
}

#[tokio::test]
async fn a_missing_blob_and_a_blob_that_is_not_its_digest_do_not_hide_a_good_signature() {
    let stub = Stub::start().await;
    let (signer, key) = signer();
    let missing = format!("sha256:{}", "1".repeat(64));
    let lying = sha256_digest(b"what the manifest promised");
    stub.blob("app", &lying, b"other bytes entirely");
    let not_a_digest = "sha256:../../../../etc/passwd";
    let bad = vec![
        layer(&missing, 10, "c2ln"),
        layer(&lying, 26, "c2ln"),
        layer(not_a_digest, 10, "c2ln"),
    ];
    let image = stub_image(&stub, &signer, bad, true);
    let verifier = stub_verifier(&stub);
    let (verdict, log) =
        logged(verifier.verify(&ImageName::parse(&image).unwrap(), &[&key], &[])).await;
    assert!(
        matches!(verdict, Verdict::Verified { .. }),
        "{verdict:?}\n{log}"
    );
    for (digest, reason) in [
        (missing.as_str(), "the blob is missing"),
        (lying.as_str(), "does not have that digest"),
        (not_a_digest, "its digest is not sha256:<64 hex digits>"),
    ] {
        let line = log
            .lines()
            .find(|l| l.contains("Signature layer skipped") && l.contains(digest))
            .unwrap_or_else(|| panic!("no log line for {digest}:\n{log}"));
        assert!(line.contains(reason), "{line}");
    }
    // The digest that is no digest never reached a URL.
    let requests = stub.requests();
    assert!(
        !requests.iter().any(|(_, path)| path.contains("etc/passwd")),
        "{requests:?}"
    );
    assert!(
        requests.iter().any(|(_, path)| path.ends_with(&missing)),
        "{requests:?}"
    );
}

#[tokio::test]
async fn layers_that_all_fail_are_signatures_that_do_not_verify() {
    let stub = Stub::start().await;
    let (signer, key) = signer();
    let missing = format!("sha256:{}", "2".repeat(64));
    let image = stub_image(&stub, &signer, vec![layer(&missing, 10, "c2ln")], false);
    let verdict = stub_verifier(&stub)
        .verify(&ImageName::parse(&image).unwrap(), &[&key], &[])
        .await;
    assert_eq!(
        verdict,
        Verdict::Denied(Failure::Rejected(Rejection::NoKeyVerifies(Format::Legacy)))
    );
}

#[tokio::test]
async fn an_oversized_payload_layer_in_the_real_registry_does_not_hide_a_good_signature() {
    let registry = Registry::start(RegistryOptions::default());
    let pusher = Pusher::new(&registry);
    let cosign = Cosign::new(&registry);
    let signer = cosign.generate_key();
    let key = NamedKey::new("k", PublicKey::from_pem(&signer.public_pem).expect("key"));
    let digest = pusher.push_image("big/app", "v1").await;
    // 1.5 MiB, over the 1 MiB payload limit: pushed first by the imitation (cosign never
    // writes one), then the real cosign appends its signature to the same `.sig` manifest.
    let oversized = vec![b'x'; 3 << 19];
    pusher
        .push_signature_layer("big/app", &digest, &oversized, "c2ln")
        .await;
    let image = format!("{}/big/app@{digest}", registry.host());
    cosign.sign(&image, &signer, Signing::LEGACY_TAG);
    let layers = pusher
        .signature_manifest("big/app", &digest)
        .await
        .unwrap()
        .layers;
    assert_eq!(layers.len(), 2, "{layers:#?}");
    // cosign read the oversized layer to append to it: only the verifier's requests count.
    registry.clear_requests();
    let verifier = Verifier::new(VerifyConfig {
        registry: RegistryConfig {
            extra_roots_pem: vec![registry.ca_pem()],
            ..RegistryConfig::default()
        },
        ..VerifyConfig::default()
    })
    .expect("verifier");
    let image = ImageName::parse(&format!("{}/big/app:v1", registry.host())).unwrap();
    let (verdict, log) = logged(verifier.verify(&image, &[&key], &[])).await;
    assert!(
        matches!(verdict, Verdict::Verified { .. }),
        "{verdict:?}\n{log}"
    );
    let skipped = sha256_digest(&oversized);
    assert!(
        log.lines().any(|l| l.contains("Signature layer skipped")
            && l.contains(&skipped)
            && l.contains("over the payload limit")),
        "{log}"
    );
    // Skipped by its declared size: the oversized blob is never downloaded.
    let fetched = registry.requests();
    assert!(
        !fetched.iter().any(|r| r.path.ends_with(&skipped)),
        "{fetched:?}"
    );
}
