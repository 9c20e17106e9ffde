//! Signatures the real cosign (v3.1.3) logged in a real Rekor v2 (rekor-tiles v2.3.0 on
//! Tessera's POSIX storage) and timestamped by a real timestamp authority
//! (timestamp-authority v2.1.3), all on 127.0.0.1 with TLS from the test's CA
//! (`testsupport::local_sigstore`), stored in olareg (the OCI 1.1 referrers API). Keyless ones
//! get their certificate from `@sigstore/mock`'s Fulcio. Verified offline against the trusted
//! root made for those services: the checkpoint and inclusion proof of the Rekor v2 entry,
//! and the RFC 3161 timestamp as the signing time (Rekor v2 has no integrated time).

// A test crate: its helpers fail the test loudly by design.
#![allow(
    clippy::expect_used,
    clippy::unwrap_used,
    clippy::indexing_slicing,
    clippy::panic
)]

use std::sync::Arc;

use image_policy::policy::{
    Identity, ImageName, Matcher, NamedKey, PublicKey, Transparency, TrustRoot,
};
use image_policy::verify::Format as Stored;
use image_policy::verify::{Failure, RegistryConfig, Rejection, Verdict, Verifier, VerifyConfig};
use image_policy_testsupport::cosign::Pusher;
use image_policy_testsupport::local_sigstore::LocalSigstore;
use image_policy_testsupport::producers::{
    Cosign, CosignKey, Format, Mode, Signing, identity_token,
};
use image_policy_testsupport::registry::{Registry, RegistryKind, RegistryOptions};
use image_policy_testsupport::sigstore_js::Mocks;

const WORKFLOW: &str = "https://github.com/acme/app/.github/workflows/release.yml@refs/tags/v1.0.0";
const GITHUB: &str = "https://token.actions.githubusercontent.com";

fn olareg() -> Registry {
    Registry::start(RegistryOptions {
        kind: RegistryKind::Olareg,
        ..RegistryOptions::default()
    })
}

fn verifier(registry: &Registry) -> Verifier {
    Verifier::new(VerifyConfig {
        registry: RegistryConfig {
            extra_roots_pem: vec![registry.ca_pem()],
            ..RegistryConfig::default()
        },
        ..VerifyConfig::default()
    })
    .expect("verifier")
}

fn root(sigstore: &LocalSigstore) -> Arc<TrustRoot> {
    let root = Arc::new(TrustRoot::parse("local", &sigstore.trusted_root()));
    assert!(root.verifier().is_ok(), "{root:?}");
    root
}

fn named(name: &str, key: &CosignKey) -> NamedKey {
    NamedKey::new(name, PublicKey::from_pem(&key.public_pem).expect("key"))
}

async fn verify(registry: &Registry, image: &str, keys: &[&NamedKey]) -> Verdict {
    verifier(registry)
        .verify(&ImageName::parse(image).expect("image"), keys, &[])
        .await
}

/// The Sigstore bundle cosign attached to `repository@digest`, read through olareg's
/// referrers API.
async fn attached_bundle(registry: &Registry, repository: &str, digest: &str) -> serde_json::Value {
    let client = registry.https_client();
    let get = |path: String, accept: &'static str| {
        let request = client.get(registry.url(&path)).header("accept", accept);
        async move {
            request
                .send()
                .await
                .unwrap()
                .error_for_status()
                .unwrap()
                .json::<serde_json::Value>()
                .await
                .unwrap()
        }
    };
    let index = get(
        format!("/v2/{repository}/referrers/{digest}"),
        "application/vnd.oci.image.index.v1+json",
    )
    .await;
    let referrer = index["manifests"][0]["digest"].as_str().unwrap().to_owned();
    let manifest = get(
        format!("/v2/{repository}/manifests/{referrer}"),
        "application/vnd.oci.image.manifest.v1+json",
    )
    .await;
    let layer = manifest["layers"][0]["digest"].as_str().unwrap().to_owned();
    get(format!("/v2/{repository}/blobs/{layer}"), "*/*").await
}

#[tokio::test]
async fn key_signatures_logged_in_a_real_rekor_v2_verify_offline_when_the_log_is_required() {
    let mut sigstore = LocalSigstore::start();
    let registry = olareg();
    let pusher = Pusher::new(&registry);
    let cosign = Cosign::new(&registry);
    let host = registry.host();
    let key = cosign.generate_key();
    let required = NamedKey {
        transparency: Transparency::Required(root(&sigstore)),
        ..named("logged", &key)
    };
    let logged = Signing {
        sigstore: Some(&sigstore),
        ..Signing::new(Format::Bundle, Mode::Oci11)
    };

    let digest = pusher.push_image("logged", "v1").await;
    cosign.sign(&format!("{host}/logged@{digest}"), &key, logged);
    // A Rekor v2 entry: no signed entry timestamp, no integrated time, an inclusion proof with
    // the log's signed checkpoint; and an RFC 3161 timestamp of the authority.
    let bundle = attached_bundle(&registry, "logged", &digest).await;
    let entry = &bundle["verificationMaterial"]["tlogEntries"][0];
    assert_eq!(entry["kindVersion"]["version"], "0.0.2", "{entry:#}");
    assert!(entry["inclusionPromise"].is_null(), "{entry:#}");
    let checkpoint = entry["inclusionProof"]["checkpoint"]["envelope"]
        .as_str()
        .unwrap();
    assert!(checkpoint.starts_with("127.0.0.1\n"), "{checkpoint}");
    assert_eq!(
        bundle["verificationMaterial"]["timestampVerificationData"]["rfc3161Timestamps"]
            .as_array()
            .map(Vec::len),
        Some(1)
    );
    assert!(sigstore.running());

    // Not logged: the key that requires the log refuses it; without the requirement, admitted.
    let unlogged = pusher.push_image("unlogged", "v1").await;
    cosign.sign(
        &format!("{host}/unlogged@{unlogged}"),
        &key,
        Signing::new(Format::Bundle, Mode::Oci11),
    );

    // Offline: the log and the authority are gone, the proofs are in the bundle.
    drop(sigstore);
    let verdict = verify(&registry, &format!("{host}/logged:v1"), &[&required]).await;
    assert_eq!(
        verdict,
        Verdict::Verified {
            digest,
            key: "logged".into()
        }
    );
    let verdict = verify(&registry, &format!("{host}/unlogged:v1"), &[&required]).await;
    assert!(
        matches!(&verdict, Verdict::Denied(Failure::Rejected(Rejection::NoLogEntry { root, .. })) if root == "local"),
        "{verdict:?}"
    );
    let verdict = verify(
        &registry,
        &format!("{host}/unlogged:v1"),
        &[&named("optional", &key)],
    )
    .await;
    assert!(matches!(verdict, Verdict::Verified { .. }), "{verdict:?}");
    // Another key, required log or not: refused.
    let other = NamedKey {
        transparency: required.transparency.clone(),
        ..named("other", &cosign.generate_key())
    };
    let verdict = verify(&registry, &format!("{host}/logged:v1"), &[&other]).await;
    assert_eq!(
        verdict,
        Verdict::Denied(Failure::Rejected(Rejection::NoKeyVerifies(Stored::Bundle)))
    );
}

#[tokio::test]
async fn keyless_signatures_through_fulcio_logged_in_rekor_v2_and_timestamped_admit_their_identity()
{
    let mocks = Mocks::start();
    let sigstore = LocalSigstore::start_with_fulcio(&mocks);
    let registry = olareg();
    let pusher = Pusher::new(&registry);
    let cosign = Cosign::new(&registry);
    let host = registry.host();
    let root = root(&sigstore);
    let identity = |subject: Matcher| {
        NamedKey::keyless(
            "release",
            Identity::new(subject, Matcher::exact(GITHUB), root.clone()),
        )
    };
    let exact = identity(Matcher::exact(WORKFLOW));
    let pattern = identity(
        Matcher::pattern(r"https://github\.com/acme/.+/\.github/workflows/release\.yml@.+")
            .unwrap(),
    );
    let other_subject = identity(Matcher::exact(
        "https://github.com/acme/other/.github/workflows/release.yml@refs/tags/v1.0.0",
    ));
    let other_issuer = NamedKey::keyless(
        "release",
        Identity::new(
            Matcher::exact(WORKFLOW),
            Matcher::exact("https://accounts.google.com"),
            root.clone(),
        ),
    );

    let digest = pusher.push_image("keyless", "v1").await;
    cosign.sign_keyless(
        &format!("{host}/keyless@{digest}"),
        &identity_token(WORKFLOW, GITHUB),
        Format::Bundle,
        &sigstore,
    );
    let bundle = attached_bundle(&registry, "keyless", &digest).await;
    let material = &bundle["verificationMaterial"];
    assert!(material["certificate"].is_object(), "{material:#}");
    assert_eq!(
        material["tlogEntries"][0]["kindVersion"]["version"],
        "0.0.2"
    );

    drop(sigstore);
    drop(mocks);
    let image = format!("{host}/keyless:v1");
    for key in [&exact, &pattern] {
        let verdict = verify(&registry, &image, &[key]).await;
        assert_eq!(
            verdict,
            Verdict::Verified {
                digest: digest.clone(),
                key: "release".into()
            }
        );
    }
    for key in [&other_subject, &other_issuer] {
        let verdict = verify(&registry, &image, &[key]).await;
        assert!(
            matches!(
                verdict,
                Verdict::Denied(Failure::Rejected(Rejection::IdentityMismatch { .. }))
            ),
            "{verdict:?}"
        );
    }
}

/// cosign's legacy keyless layer timestamped by a timestamp authority and not logged
/// (`--tlog-upload=false`): the timestamp proves when the certificate was valid, so it counts
/// for an identity whose log is optional, as `cosign verify --insecure-ignore-tlog` takes it,
/// and not for one whose log is required (docs/contract.md §3).
#[tokio::test(flavor = "multi_thread")]
async fn a_legacy_keyless_signature_timestamped_and_not_logged_counts_only_where_the_log_is_optional()
 {
    let mocks = Mocks::start();
    let sigstore = LocalSigstore::start_with_fulcio(&mocks);
    let registry = olareg();
    let pusher = Pusher::new(&registry);
    let cosign = Cosign::new(&registry);
    let host = registry.host();
    let required = NamedKey::keyless(
        "release",
        Identity::new(
            Matcher::exact(WORKFLOW),
            Matcher::exact(GITHUB),
            root(&sigstore),
        ),
    );
    let optional = NamedKey {
        transparency: Transparency::Optional,
        ..required.clone()
    };
    let digest = pusher.push_image("unlogged", "v1").await;
    cosign.sign_keyless_unlogged(
        &format!("{host}/unlogged@{digest}"),
        &identity_token(WORKFLOW, GITHUB),
        &mocks.fulcio,
        &sigstore,
    );
    drop(sigstore);
    drop(mocks);
    let image = format!("{host}/unlogged:v1");
    assert_eq!(
        verify(&registry, &image, &[&optional]).await,
        Verdict::Verified {
            digest,
            key: "release".into()
        }
    );
    let verdict = verify(&registry, &image, &[&required]).await;
    assert!(
        matches!(
            verdict,
            Verdict::Denied(Failure::Rejected(Rejection::NoLogEntry { .. }))
        ),
        "{verdict:?}"
    );
}
