//! Keyless signatures (a Fulcio certificate for a workload identity, logged in Rekor) of
//! images in the real registry (Debian's docker-registry 2.8), made by npm's @sigstore/sign
//! through @sigstore/mock's Fulcio and Rekor on 127.0.0.1, in both layouts: a cosign v3
//! bundle attached by @sigstore/oci, and cosign v1/v2's legacy `.sig` layer with its
//! certificate, chain and Rekor annotations. Verified offline against the mocks' trusted root.

// A test crate: its helpers fail the test loudly by design.
#![allow(
    clippy::expect_used,
    clippy::unwrap_used,
    clippy::indexing_slicing,
    clippy::panic
)]

use std::sync::Arc;

use image_policy::policy::{Identity, Matcher, NamedKey, PublicKey, Transparency, TrustRoot};
use image_policy::verify::{Failure, RegistryConfig, Rejection, Verdict, Verifier, VerifyConfig};
use image_policy_testsupport::cosign::{Pusher, simple_signing_payload};
use image_policy_testsupport::registry::{Registry, RegistryOptions};
use image_policy_testsupport::sigstore_js::{self, Key, Layout, Mocks};

const WORKFLOW: &str = "https://github.com/acme/app/.github/workflows/release.yml@refs/tags/v1.0.0";
const GITHUB: &str = "https://token.actions.githubusercontent.com";

fn plain_registry() -> Registry {
    Registry::start(RegistryOptions {
        plain_http: true,
        ..RegistryOptions::default()
    })
}

fn verifier(registry: &Registry) -> Verifier {
    Verifier::new(VerifyConfig {
        registry: RegistryConfig {
            insecure_registries: [registry.host()].into(),
            ..RegistryConfig::default()
        },
        ..VerifyConfig::default()
    })
    .expect("verifier")
}

fn root(name: &str, document: &str) -> Arc<TrustRoot> {
    let root = Arc::new(TrustRoot::parse(name, document));
    assert!(root.verifier().is_ok(), "{root:?}");
    root
}

fn identity(subject: Matcher, issuer: &str, root: &Arc<TrustRoot>) -> NamedKey {
    NamedKey::keyless(
        "release",
        Identity::new(subject, Matcher::exact(issuer), root.clone()),
    )
}

async fn verify(verifier: &Verifier, image: &str, keys: &[&NamedKey]) -> Verdict {
    verifier.clear_caches();
    let image = image_policy::policy::ImageName::parse(image).expect("image");
    verifier.verify(&image, keys, &[]).await
}

/// Images signed keyless through `mocks`, pushed to `registry`.
struct Signing<'a> {
    pusher: &'a Pusher,
    mocks: &'a Mocks,
}

impl Signing<'_> {
    /// An image `repository:v1` signed keyless for `subject`, in `layout`, the bundle changed
    /// by `tamper` first; its digest.
    async fn image(
        &self,
        repository: &str,
        subject: &str,
        layout: Layout,
        tamper: impl Fn(&mut serde_json::Value),
    ) -> String {
        let digest = self.pusher.push_image(repository, "v1").await;
        sigstore_js::sign_keyless(
            self.pusher,
            repository,
            &digest,
            self.mocks,
            (subject, GITHUB),
            layout,
            tamper,
        )
        .await;
        digest
    }
}

fn untouched(_: &mut serde_json::Value) {}

/// Another valid base64 value of the same length at `pointer`.
fn flip(pointer: &'static str) -> impl Fn(&mut serde_json::Value) {
    move |json| {
        let value = json.pointer_mut(pointer).expect(pointer);
        let text = value.as_str().unwrap().to_owned();
        let flipped = if text.starts_with('A') { "B" } else { "A" };
        *value = format!("{flipped}{}", &text[1..]).into();
    }
}

const LAYOUTS: [(&str, Layout); 2] = [("bundle", Layout::Bundle), ("legacy", Layout::Legacy)];

#[tokio::test]
async fn keyless_signatures_are_admitted_for_their_identity_in_both_layouts() {
    let mocks = Mocks::start();
    let registry = plain_registry();
    let pusher = Pusher::new(&registry);
    let host = registry.host();
    let signing = Signing {
        pusher: &pusher,
        mocks: &mocks,
    };
    let root = root("mock", &mocks.trusted_root());
    let verifier = verifier(&registry);
    let exact = identity(Matcher::exact(WORKFLOW), GITHUB, &root);
    let any_release = identity(
        Matcher::pattern(
            r"https://github\.com/acme/[^/]+/\.github/workflows/release\.yml@refs/tags/v.*",
        )
        .unwrap(),
        GITHUB,
        &root,
    );
    let other = identity(
        Matcher::exact(WORKFLOW.replace("acme/app", "acme/other")),
        GITHUB,
        &root,
    );
    let google = identity(
        Matcher::exact(WORKFLOW),
        "https://accounts.google.com",
        &root,
    );
    let key = NamedKey::new(
        "k",
        PublicKey::from_pem(&Key::new().public_pem).expect("key"),
    );
    for (name, layout) in LAYOUTS {
        let repository = format!("keyless/{name}");
        let digest = signing
            .image(&repository, WORKFLOW, layout, untouched)
            .await;
        for image in [
            format!("{host}/{repository}:v1"),
            format!("{host}/{repository}@{digest}"),
        ] {
            for signer in [&exact, &any_release] {
                assert_eq!(
                    verify(&verifier, &image, &[signer]).await,
                    Verdict::Verified {
                        digest: digest.clone(),
                        key: "release".into()
                    },
                    "{image}"
                );
            }
            // Another subject, or the same subject of another issuer: another identity.
            for signer in [&other, &google] {
                assert_eq!(
                    verify(&verifier, &image, &[signer]).await,
                    Verdict::Denied(Failure::Rejected(Rejection::IdentityMismatch {
                        subject: WORKFLOW.into(),
                        issuer: GITHUB.into()
                    })),
                    "{image}"
                );
            }
        }
        // A key never verifies a keyless signature; beside the identity, any of them admits.
        let image = format!("{host}/{repository}@{digest}");
        let verdict = verify(&verifier, &image, &[&key]).await;
        assert!(
            matches!(
                verdict,
                Verdict::Denied(Failure::Rejected(
                    Rejection::NoKeyVerifies(_) | Rejection::OtherDigest
                ))
            ),
            "{verdict:?}"
        );
        assert!(matches!(
            verify(&verifier, &image, &[&key, &other, &exact]).await,
            Verdict::Verified { .. }
        ));
        // Keyless costs the requests a key does: 2 by digest for the legacy layout, 4 for a
        // bundle in a registry known to lack the referrers API.
        registry.clear_requests();
        verify(&verifier, &image, &[&exact]).await;
        let requests = registry.requests();
        let expected = match layout {
            Layout::Legacy => 2,
            Layout::Bundle => 4,
        };
        assert_eq!(requests.len(), expected, "{requests:#?}");
    }
}

#[tokio::test]
async fn keyless_signatures_that_do_not_verify_are_refused_for_what_fails() {
    let mocks = Mocks::start();
    let registry = plain_registry();
    let pusher = Pusher::new(&registry);
    let host = registry.host();
    let signing = Signing {
        pusher: &pusher,
        mocks: &mocks,
    };
    let verifier = verifier(&registry);
    let document = mocks.trusted_root();
    let signer = identity(Matcher::exact(WORKFLOW), GITHUB, &root("mock", &document));

    // Another Fulcio: the same root with the CA of other mocks in place of the one that
    // issued the certificates.
    let others = Mocks::start();
    let mut swapped: serde_json::Value = serde_json::from_str(&document).unwrap();
    let foreign: serde_json::Value = serde_json::from_str(&others.trusted_root()).unwrap();
    swapped["certificateAuthorities"] = foreign["certificateAuthorities"].clone();
    let untrusting = identity(
        Matcher::exact(WORKFLOW),
        GITHUB,
        &root("foreign-ca", &swapped.to_string()),
    );

    // A Rekor whose clock is 5 minutes behind: its integrated times are before the
    // certificates' notBefore.
    let early = Mocks::start_with(&[("MOCK_REKOR_SKEW_S", "-300")]);
    let early_signing = Signing {
        mocks: &early,
        ..signing
    };
    let early_signer = identity(
        Matcher::exact(WORKFLOW),
        GITHUB,
        &root("early", &early.trusted_root()),
    );

    for (name, layout) in LAYOUTS {
        let repository = format!("refused/{name}");
        let digest = signing
            .image(&repository, WORKFLOW, layout, untouched)
            .await;
        let verdict = verify(
            &verifier,
            &format!("{host}/{repository}@{digest}"),
            &[&untrusting],
        )
        .await;
        assert!(
            matches!(&verdict, Verdict::Denied(Failure::Rejected(Rejection::UntrustedCertificate { root, .. })) if root == "foreign-ca"),
            "{name}: {verdict:?}"
        );

        let repository = format!("refused/{name}-set");
        let set = "/verificationMaterial/tlogEntries/0/inclusionPromise/signedEntryTimestamp";
        let digest = signing
            .image(&repository, WORKFLOW, layout, flip(set))
            .await;
        let verdict = verify(
            &verifier,
            &format!("{host}/{repository}@{digest}"),
            &[&signer],
        )
        .await;
        assert!(
            matches!(&verdict, Verdict::Denied(Failure::Rejected(Rejection::NoLogEntry { root, .. })) if root == "mock"),
            "{name}: {verdict:?}"
        );

        let repository = format!("refused/{name}-early");
        let digest = early_signing
            .image(&repository, WORKFLOW, layout, untouched)
            .await;
        let verdict = verify(
            &verifier,
            &format!("{host}/{repository}@{digest}"),
            &[&early_signer],
        )
        .await;
        let Verdict::Denied(Failure::Rejected(Rejection::UntrustedCertificate { why, .. })) =
            &verdict
        else {
            panic!("{name}: {verdict:?}");
        };
        assert!(
            why.contains("CertNotValidYet") || why.contains("not yet valid"),
            "{name}: {why}"
        );
    }

    // No log entry at all (signed without Rekor): no signing time, refused.
    let repository = "refused/unlogged";
    let digest = pusher.push_image(repository, "v1").await;
    let bundle = sigstore_js::sign(&[
        "--digest",
        &digest,
        "--fulcio",
        &mocks.fulcio,
        "--identity",
        WORKFLOW,
        "--issuer",
        GITHUB,
    ]);
    sigstore_js::attach(&format!("{host}/{repository}"), &digest, &bundle, &[]);
    let verdict = verify(
        &verifier,
        &format!("{host}/{repository}@{digest}"),
        &[&signer],
    )
    .await;
    assert!(
        matches!(
            &verdict,
            Verdict::Denied(
                Failure::Rejected(Rejection::NoLogEntry { .. })
                    | Failure::Rejected(Rejection::NoSigningTime { .. })
            )
        ),
        "{verdict:?}"
    );
}

#[tokio::test]
async fn a_legacy_key_signature_with_its_rekor_entry_meets_a_required_log() {
    let mocks = Mocks::start();
    let registry = plain_registry();
    let pusher = Pusher::new(&registry);
    let host = registry.host();
    let verifier = verifier(&registry);
    let key = Key::new();
    let required = NamedKey {
        transparency: Transparency::Required(root("mock", &mocks.trusted_root())),
        ..NamedKey::new("logged", PublicKey::from_pem(&key.public_pem).expect("key"))
    };
    let repository = "legacy/logged";
    let digest = pusher.push_image(repository, "v1").await;
    let payload = simple_signing_payload(&format!("{host}/{repository}"), &digest);
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("payload.json");
    std::fs::write(&file, &payload).unwrap();
    let bundle = sigstore_js::sign(&[
        "--digest",
        &digest,
        "--kind",
        "message",
        "--artifact",
        file.to_str().unwrap(),
        "--key",
        key.path(),
        "--rekor",
        &mocks.rekor,
    ]);
    let json: serde_json::Value = serde_json::from_slice(&bundle).unwrap();
    let entry = &json["verificationMaterial"]["tlogEntries"][0];
    let log_id: String = base64_decode(entry["logId"]["keyId"].as_str().unwrap())
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    let rekor = serde_json::json!({
        "SignedEntryTimestamp": entry["inclusionPromise"]["signedEntryTimestamp"],
        "Payload": {
            "body": entry["canonicalizedBody"],
            "integratedTime": entry["integratedTime"].as_str().unwrap().parse::<i64>().unwrap(),
            "logIndex": entry["logIndex"].as_str().unwrap().parse::<i64>().unwrap(),
            "logID": log_id,
        },
    });
    let signature = json["messageSignature"]["signature"].as_str().unwrap();
    let annotations = std::collections::BTreeMap::from([
        (
            "dev.cosignproject.cosign/signature".to_owned(),
            signature.to_owned(),
        ),
        ("dev.sigstore.cosign/bundle".to_owned(), rekor.to_string()),
    ]);
    pusher
        .push_annotated_layer(repository, &digest, &payload, annotations)
        .await;
    let image = format!("{host}/{repository}@{digest}");
    assert!(matches!(
        verify(&verifier, &image, &[&required]).await,
        Verdict::Verified { .. }
    ));
    // The same signature without its entry does not meet the requirement.
    let bare = "legacy/unlogged";
    let digest = pusher.push_image(bare, "v1").await;
    let payload = simple_signing_payload(&format!("{host}/{bare}"), &digest);
    std::fs::write(&file, &payload).unwrap();
    let bundle = sigstore_js::sign(&[
        "--digest",
        &digest,
        "--kind",
        "message",
        "--artifact",
        file.to_str().unwrap(),
        "--key",
        key.path(),
    ]);
    let json: serde_json::Value = serde_json::from_slice(&bundle).unwrap();
    let signature = json["messageSignature"]["signature"].as_str().unwrap();
    pusher
        .push_signature_layer(bare, &digest, &payload, signature)
        .await;
    let verdict = verify(&verifier, &format!("{host}/{bare}@{digest}"), &[&required]).await;
    assert!(
        matches!(
            &verdict,
            Verdict::Denied(Failure::Rejected(Rejection::NoLogEntry { .. }))
        ),
        "{verdict:?}"
    );
}

fn base64_decode(text: &str) -> Vec<u8> {
    use base64::Engine as _;
    base64::engine::general_purpose::STANDARD
        .decode(text)
        .unwrap()
}
