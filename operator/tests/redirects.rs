//! Redirects a registry cannot turn against the cluster (#15): an HTTPS registry that
//! redirects every request to a plain-HTTP address, to a link-local or metadata address, or to
//! a loopback one, is refused with a sentence that says why, and nothing reaches the target; a
//! redirect of a blob download to another HTTPS host (a CDN) is followed. The registries are
//! TLS stubs, since the real one does not redirect.

// A test crate: its helpers fail the test loudly by design.
#![allow(
    clippy::expect_used,
    clippy::unwrap_used,
    clippy::indexing_slicing,
    clippy::panic
)]

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use image_policy::policy::{ImageName, NamedKey, PublicKey};
use image_policy::verify::{
    Failure, RegistryConfig, RegistryError, Verdict, Verifier, VerifyConfig,
};
use image_policy_testsupport::cosign::{
    OCI_MANIFEST, public_key_pem, sha256_digest, signature_tag, simple_signing_payload,
};
use image_policy_testsupport::stub::Stub;
use sigstore::crypto::SigningScheme;

fn verifier(roots: Vec<Vec<u8>>, allow_loopback: bool) -> Verifier {
    Verifier::new(VerifyConfig {
        registry: RegistryConfig {
            extra_roots_pem: roots,
            allow_redirects_to_loopback: allow_loopback,
            ..RegistryConfig::default()
        },
        ..VerifyConfig::default()
    })
    .expect("verifier")
}

fn key() -> (sigstore::crypto::SigStoreSigner, NamedKey) {
    let signer = SigningScheme::ECDSA_P256_SHA256_ASN1
        .create_signer()
        .expect("signer");
    let key = NamedKey::new(
        "k",
        PublicKey::from_pem(&public_key_pem(&signer)).expect("key"),
    );
    (signer, key)
}

async fn verify(verifier: &Verifier, image: &str, key: &NamedKey) -> Verdict {
    verifier
        .verify(&ImageName::parse(image).unwrap(), &[key], &[])
        .await
}

fn refused_because(verdict: &Verdict) -> String {
    match verdict {
        Verdict::Denied(Failure::Unreachable(RegistryError::Redirected { detail, .. })) => {
            detail.clone()
        }
        other => panic!("not a refused redirect: {other:?}"),
    }
}

#[tokio::test]
async fn a_registry_cannot_send_the_webhook_to_plain_http_link_local_or_loopback() {
    let dir = tempfile::tempdir().unwrap();
    let (evil, pem) = Stub::start_tls(dir.path()).await;
    // Where the registry points: a plain-HTTP service of the cluster, which must see nothing.
    let target = Stub::start().await;
    let (_, key) = key();
    let verifier = verifier(vec![pem.clone()], false);
    let image = format!("{}/app:v1", evil.host());
    let secret = format!("http://{}/latest/meta-data/secret", target.host());
    evil.redirect("HEAD", "/v2/app/manifests/v1", &secret);
    evil.redirect("GET", "/v2/app/manifests/v1", &secret);

    let verdict = verify(&verifier, &image, &key).await;
    let why = refused_because(&verdict);
    assert!(why.contains("from HTTPS to plain HTTP"), "{why}");
    assert!(target.requests().is_empty(), "{:?}", target.requests());
    let Verdict::Denied(failure) = &verdict else {
        unreachable!()
    };
    assert_eq!(failure.label(), "BadResponse");
    let words = image_policy::webhook::words::not_signed(&image, failure);
    assert_eq!(
        words,
        format!(
            "The image: {image} is not signed. The registry {} sent a redirect from HTTPS to plain HTTP ({secret}), which is never followed.",
            evil.host()
        )
    );

    // Link-local and metadata addresses, by either scheme; and a loopback one.
    for (location, words) in [
        ("http://169.254.169.254/latest/meta-data/iam", "plain HTTP"),
        (
            "https://169.254.169.254/latest/meta-data/iam",
            "link-local or metadata",
        ),
        (
            "https://[fd00:ec2::254]/latest/meta-data",
            "link-local or metadata",
        ),
        (
            "https://metadata.google.internal/computeMetadata/v1/",
            "link-local or metadata",
        ),
        ("https://127.0.0.1:1/x", "local address"),
    ] {
        evil.redirect("HEAD", "/v2/app/manifests/v1", location);
        let why = refused_because(&verify(&verifier, &image, &key).await);
        assert!(why.contains(words), "{location}: {why}");
    }
}

#[tokio::test]
async fn a_blob_download_redirected_to_another_https_host_is_followed() {
    let dir = tempfile::tempdir().unwrap();
    let (registry_dir, cdn_dir) = (dir.path().join("registry"), dir.path().join("cdn"));
    std::fs::create_dir_all(&registry_dir).unwrap();
    std::fs::create_dir_all(&cdn_dir).unwrap();
    let (registry, registry_pem) = Stub::start_tls(&registry_dir).await;
    let (cdn, cdn_pem) = Stub::start_tls(&cdn_dir).await;
    let (signer, key) = key();
    let manifest = br#"{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json","config":{"mediaType":"application/vnd.oci.image.config.v1+json","digest":"sha256:44136fa355b3678a1146ad16f7e8649e94fb4fc21fe77e8310c060f61caaff8a","size":2},"layers":[]}"#;
    let digest = registry.manifest("app", "v1", OCI_MANIFEST, manifest);
    let payload = simple_signing_payload(&format!("{}/app", registry.host()), &digest);
    let signature = STANDARD.encode(signer.sign(&payload).expect("sign"));
    let payload_digest = sha256_digest(&payload);
    let sig = serde_json::json!({"schemaVersion": 2, "mediaType": OCI_MANIFEST,
        "config": {"mediaType": "application/vnd.oci.image.config.v1+json", "digest": sha256_digest(b"{}"), "size": 2},
        "layers": [{"mediaType": "application/vnd.dev.cosign.simplesigning.v1+json",
            "digest": payload_digest, "size": payload.len(),
            "annotations": {"dev.cosignproject.cosign/signature": signature}}]});
    registry.manifest(
        "app",
        &signature_tag(&digest),
        OCI_MANIFEST,
        &serde_json::to_vec(&sig).unwrap(),
    );
    // The payload is served by the CDN, where the registry redirects its download.
    let blob_path = format!("/v2/app/blobs/{payload_digest}");
    let cdn_path = format!("/blobs/{payload_digest}");
    registry.redirect(
        "GET",
        &blob_path,
        &format!("https://{}{cdn_path}?signature=abc", cdn.host()),
    );
    cdn.route(
        "GET",
        &cdn_path,
        image_policy_testsupport::stub::Reply::ok("application/octet-stream", payload.clone()),
    );
    let image = format!("{}/app:v1", registry.host());
    // The CDN is on 127.0.0.1 here, so loopback must be allowed for this test; a real CDN is
    // a public host.
    let allowed = verifier(vec![registry_pem.clone(), cdn_pem.clone()], true);
    let verdict = verify(&allowed, &image, &key).await;
    assert!(matches!(verdict, Verdict::Verified { .. }), "{verdict:?}");
    assert_eq!(cdn.requests().len(), 1, "{:?}", cdn.requests());
    // Without that flag, the same redirect to a loopback address is refused.
    let strict = verifier(vec![registry_pem, cdn_pem], false);
    let why = refused_because(&verify(&strict, &image, &key).await);
    assert!(why.contains("local address"), "{why}");
    assert!(
        !why.contains("signature=abc"),
        "the query is not repeated: {why}"
    );
}
