//! Signatures made by the real cosign (v3.1.3, built from Go modules by
//! `hack/sigstore/install.sh`) in every layout it writes, stored in two real registries:
//! olareg, which answers the OCI 1.1 referrers API (with `artifactType` filtering) as GHCR,
//! ECR, ACR, Harbor and Quay do, and CNCF distribution 2.8, which has no referrers API (cosign
//! then falls back to the referrers tag schema). Verified through `Verifier`, with the cold
//! registry requests each image costs.
//!
//! What cosign writes (read from cosign v3.1.3 and checked on both registries):
//! - `--new-bundle-format=false --registry-referrers-mode=legacy`: the `sha256-<hex>.sig` tag,
//!   one simple-signing layer per signature (cosign 2's default).
//! - `--new-bundle-format=false --registry-referrers-mode=oci-1-1`: a referrer manifest of
//!   artifactType `application/vnd.dev.cosign.artifact.sig.v1+json` holding those layers (on
//!   distribution, an entry of that artifactType in the `sha256-<hex>` index).
//! - the bundle format (the default), whatever the mode: a referrer manifest with one Sigstore
//!   bundle layer; on distribution, an entry in the `sha256-<hex>` index instead.

// A test crate: its helpers fail the test loudly by design.
#![allow(
    clippy::expect_used,
    clippy::unwrap_used,
    clippy::indexing_slicing,
    clippy::panic
)]

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use image_policy::policy::{ImageName, NamedKey, PublicKey};
use image_policy::verify::Format as Stored;
use image_policy::verify::{
    Cache, Failure, Observer, RegistryConfig, RegistryOutcome, Rejection, Verdict, Verifier,
    VerifyConfig,
};
use image_policy_testsupport::cosign::Pusher;
use image_policy_testsupport::producers::{Cosign, CosignKey, Format, KeyAlgorithm, Mode, Signing};
use image_policy_testsupport::registry::{Registry, RegistryKind, RegistryOptions};

const KINDS: [RegistryKind; 2] = [RegistryKind::Olareg, RegistryKind::Distribution];

fn registry(kind: RegistryKind) -> Registry {
    Registry::start(RegistryOptions {
        kind,
        ..RegistryOptions::default()
    })
}

/// A new verifier: nothing cached, nothing known of the registry.
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

fn named(name: &str, key: &CosignKey) -> NamedKey {
    NamedKey::new(name, PublicKey::from_pem(&key.public_pem).expect("key"))
}

async fn verify(verifier: &Verifier, image: &str, keys: &[&NamedKey]) -> Verdict {
    verifier
        .verify(&ImageName::parse(image).expect("image"), keys, &[])
        .await
}

/// The registry exchanges a verifier reports (`Observer`, what its metrics count).
#[derive(Default)]
struct Exchanges(AtomicUsize);

impl Observer for Exchanges {
    fn cache(&self, _: Cache, _: bool) {}
    fn registry_request(&self, _: RegistryOutcome) {
        self.0.fetch_add(1, Ordering::SeqCst);
    }
}

/// The requests the registry answered since the last look, as `METHOD path status`.
fn requests(registry: &Registry) -> Vec<String> {
    let requests = registry
        .requests()
        .into_iter()
        .map(|r| format!("{} {} {}", r.method, r.path, r.status))
        .collect();
    registry.clear_requests();
    requests
}

/// The four layouts cosign writes, with the cold requests a digest signed in it costs a new
/// verifier, on olareg and on distribution.
const LAYOUTS: [(&str, Format, Mode, usize, usize); 4] = [
    // The `.sig` manifest and its payload blob.
    ("legacy .sig", Format::Legacy, Mode::Legacy, 2, 2),
    // The `.sig` 404, the referrers API (olareg) or the API's 404 and the tag schema's index
    // (distribution), the referrer's manifest and its payload blob.
    ("legacy, oci-1-1 mode", Format::Legacy, Mode::Oci11, 4, 5),
    // The same, with a bundle blob.
    ("bundle, legacy mode", Format::Bundle, Mode::Legacy, 4, 5),
    ("bundle, oci-1-1 mode", Format::Bundle, Mode::Oci11, 4, 5),
];

#[tokio::test]
async fn real_cosign_signatures_admit_with_their_key_only_at_the_least_cost_on_both_registries() {
    for kind in KINDS {
        let registry = registry(kind);
        let pusher = Pusher::new(&registry);
        let cosign = Cosign::new(&registry);
        let host = registry.host();
        let (signer, other) = (cosign.generate_key(), cosign.generate_key());
        let (right, wrong) = (named("release", &signer), named("other", &other));

        // Unsigned, for the record: the `.sig` 404 and the referrers API's empty list
        // (olareg), or its 404 and the tag schema's 404 (distribution).
        let unsigned = pusher.push_image("unsigned", "v1").await;
        requests(&registry);
        let verdict = verify(
            &verifier(&registry),
            &format!("{host}/unsigned@{unsigned}"),
            &[&right],
        )
        .await;
        assert_eq!(
            verdict,
            Verdict::Denied(Failure::NotSigned { digest: unsigned })
        );
        let cold = requests(&registry);
        let expected = if kind == RegistryKind::Olareg { 2 } else { 3 };
        assert_eq!(cold.len(), expected, "{kind:?}, unsigned: {cold:#?}");
        eprintln!(
            "cold requests, {kind:?}, unsigned, by digest: {}",
            cold.len()
        );

        for (i, (layout, format, mode, olareg, distribution)) in LAYOUTS.into_iter().enumerate() {
            let repository = format!("app{i}");
            let digest = pusher.push_image(&repository, "v1").await;
            cosign.sign(
                &format!("{host}/{repository}@{digest}"),
                &signer,
                Signing::new(format, mode),
            );
            let by_digest = format!("{host}/{repository}@{digest}");

            requests(&registry);
            let exchanges = Arc::new(Exchanges::default());
            let observed = verifier(&registry).with_observer(exchanges.clone());
            let verdict = verify(&observed, &by_digest, &[&right]).await;
            assert_eq!(
                verdict,
                Verdict::Verified {
                    digest: digest.clone(),
                    key: "release".into()
                },
                "{kind:?}, {layout}"
            );
            let cold = requests(&registry);
            let expected = match kind {
                RegistryKind::Olareg => olareg,
                RegistryKind::Distribution => distribution,
            };
            assert_eq!(cold.len(), expected, "{kind:?}, {layout}: {cold:#?}");
            // The verifier counts what the registry logged: nothing is hidden in either.
            assert_eq!(exchanges.0.load(Ordering::SeqCst), expected);
            eprintln!(
                "cold requests, {kind:?}, {layout}, by digest: {}",
                cold.len()
            );

            // A tag costs its HEAD more.
            let verdict = verify(
                &verifier(&registry),
                &format!("{host}/{repository}:v1"),
                &[&right],
            )
            .await;
            assert!(matches!(verdict, Verdict::Verified { .. }), "{verdict:?}");
            assert_eq!(
                requests(&registry).len(),
                expected + 1,
                "{kind:?}, {layout}"
            );

            // Any other key: refused, as a signature that does not verify.
            let verdict = verify(&verifier(&registry), &by_digest, &[&wrong]).await;
            let stored = match format {
                Format::Legacy => Stored::Legacy,
                Format::Bundle => Stored::Bundle,
            };
            assert_eq!(
                verdict,
                Verdict::Denied(Failure::Rejected(Rejection::NoKeyVerifies(stored))),
                "{kind:?}, {layout}"
            );
        }
    }
}

#[tokio::test]
async fn cosign_writes_a_bundle_where_each_registry_keeps_referrers() {
    // What the tests above rely on: cosign's bundle is a referrer in olareg's referrers API,
    // and, on distribution (the API answers 404), an entry of the tag schema's index; in both,
    // typed as a bundle and annotated with cosign's signature predicate.
    for kind in KINDS {
        let registry = registry(kind);
        let pusher = Pusher::new(&registry);
        let cosign = Cosign::new(&registry);
        let digest = pusher.push_image("where", "v1").await;
        let key = cosign.generate_key();
        let image = format!("{}/where@{digest}", registry.host());
        cosign.sign(&image, &key, Signing::new(Format::Bundle, Mode::Oci11));
        let client = registry.https_client();
        let api = client
            .get(registry.url(&format!("/v2/where/referrers/{digest}")))
            .send()
            .await
            .unwrap();
        let tag = format!("/v2/where/manifests/sha256-{}", &digest[7..]);
        let index: serde_json::Value = match kind {
            RegistryKind::Olareg => {
                assert_eq!(api.status(), 200);
                api.json().await.unwrap()
            }
            RegistryKind::Distribution => {
                assert_eq!(api.status(), 404);
                client
                    .get(registry.url(&tag))
                    .header("accept", "application/vnd.oci.image.index.v1+json")
                    .send()
                    .await
                    .unwrap()
                    .error_for_status()
                    .unwrap()
                    .json()
                    .await
                    .unwrap()
            }
        };
        let entries = index["manifests"].as_array().unwrap();
        assert_eq!(entries.len(), 1, "{kind:?}: {index:#}");
        assert_eq!(
            entries[0]["artifactType"], "application/vnd.dev.sigstore.bundle.v0.3+json",
            "{kind:?}"
        );
        if kind == RegistryKind::Olareg {
            // The registry pulls the referrer's annotations up, and filters by artifactType.
            assert_eq!(
                entries[0]["annotations"]["dev.sigstore.bundle.predicateType"],
                "https://sigstore.dev/cosign/sign/v1"
            );
            let filtered = client
                .get(registry.url(&format!(
                    "/v2/where/referrers/{digest}?artifactType=application/vnd.dev.cosign.artifact.sig.v1%2Bjson"
                )))
                .send()
                .await
                .unwrap();
            assert_eq!(filtered.headers()["oci-filters-applied"], "artifactType");
            let filtered: serde_json::Value = filtered.json().await.unwrap();
            assert_eq!(filtered["manifests"], serde_json::json!([]));
            // No tag schema where the API is.
            let status = client
                .get(registry.url(&tag))
                .send()
                .await
                .unwrap()
                .status();
            assert_eq!(status, 404);
        }
    }
}

#[tokio::test]
async fn legacy_signatures_that_cosign_attaches_as_referrers_are_found() {
    // `--new-bundle-format=false --registry-referrers-mode=oci-1-1`: no `.sig` tag, but a
    // referrer of cosign's signature artifactType holding simple-signing layers, checked
    // layer by layer as the `.sig` tag's are.
    for kind in KINDS {
        let registry = registry(kind);
        let pusher = Pusher::new(&registry);
        let cosign = Cosign::new(&registry);
        let digest = pusher.push_image("oci11", "v1").await;
        let key = cosign.generate_key();
        let image = format!("{}/oci11@{digest}", registry.host());
        cosign.sign(&image, &key, Signing::new(Format::Legacy, Mode::Oci11));
        let client = registry.https_client();
        let sig_tag = format!("/v2/oci11/manifests/sha256-{}.sig", &digest[7..]);
        let status = client.get(registry.url(&sig_tag)).send().await.unwrap();
        assert_eq!(status.status(), 404, "{kind:?}: no .sig tag");

        requests(&registry);
        let exchanges = Arc::new(Exchanges::default());
        let observed = verifier(&registry).with_observer(exchanges.clone());
        let verdict = verify(&observed, &image, &[&named("k", &key)]).await;
        assert_eq!(
            verdict,
            Verdict::Verified {
                digest: digest.clone(),
                key: "k".into()
            },
            "{kind:?}"
        );
        // The `.sig` 404, the referrers (API, or 404 and the tag schema), the referrer's
        // manifest and its one payload blob: what a bundle costs.
        let cold = requests(&registry);
        let expected = if kind == RegistryKind::Olareg { 4 } else { 5 };
        assert_eq!(cold.len(), expected, "{kind:?}: {cold:#?}");
        assert_eq!(exchanges.0.load(Ordering::SeqCst), expected, "{kind:?}");
        assert!(
            cold.last().is_some_and(|r| r.contains("/blobs/")),
            "{kind:?}: {cold:#?}"
        );
    }
}

#[tokio::test]
async fn a_referrers_api_answering_null_manifests_means_no_referrers() {
    // olareg answers a digest without referrers with `"manifests": null` (the OCI spec asks
    // for an empty list): read as no referrers, not as a bad answer.
    let registry = registry(RegistryKind::Olareg);
    let pusher = Pusher::new(&registry);
    let cosign = Cosign::new(&registry);
    let host = registry.host();
    let key = cosign.generate_key();
    let unsigned = pusher.push_image("null/unsigned", "v1").await;
    let answer: serde_json::Value = registry
        .https_client()
        .get(registry.url(&format!("/v2/null/unsigned/referrers/{unsigned}")))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert!(answer["manifests"].is_null(), "{answer:#}");
    requests(&registry);
    let verdict = verify(
        &verifier(&registry),
        &format!("{host}/null/unsigned@{unsigned}"),
        &[&named("k", &key)],
    )
    .await;
    assert_eq!(
        verdict,
        Verdict::Denied(Failure::NotSigned {
            digest: unsigned.clone()
        })
    );
    // The `.sig` 404 and the referrers API's empty answer.
    let cold = requests(&registry);
    assert_eq!(
        cold,
        [
            format!(
                "GET /v2/null/unsigned/manifests/sha256-{}.sig 404",
                &unsigned[7..]
            ),
            format!("GET /v2/null/unsigned/referrers/{unsigned} 200"),
        ]
    );

    // Signed by another key, the legacy way: that signature is what the denial names.
    let digest = pusher.push_image("null/other", "v1").await;
    let image = format!("{host}/null/other@{digest}");
    cosign.sign(
        &image,
        &cosign.generate_key(),
        Signing::new(Format::Legacy, Mode::Legacy),
    );
    let verdict = verify(&verifier(&registry), &image, &[&named("k", &key)]).await;
    assert_eq!(
        verdict,
        Verdict::Denied(Failure::Rejected(Rejection::NoKeyVerifies(Stored::Legacy)))
    );
}

#[tokio::test]
async fn cosign_v3_ed25519_signatures_are_refused_as_cosign_verify_refuses_them() {
    // cosign v3.1.3 signs with an Ed25519 key as Ed25519ph (a SHA-512 prehash, its default
    // for hashedrekord entries: cosign/v3 pkg/cosign/keys.go, GetDefaultLoadOptions), and its
    // own `cosign verify --key` checks pure Ed25519: it refuses what it signed, in both
    // formats. The verifier agrees with it (NoKeyVerifies); the pure Ed25519 signatures older
    // cosign wrote verify (verify_registry.rs, `every_key_algorithm_...`).
    let registry = registry(RegistryKind::Olareg);
    let pusher = Pusher::new(&registry);
    let cosign = Cosign::new(&registry);
    let key = cosign.import_key(KeyAlgorithm::Ed25519);
    let public = tempfile::NamedTempFile::new().unwrap();
    std::fs::write(public.path(), &key.public_pem).unwrap();
    let ca = registry.ca_path();
    for (i, how) in [Signing::LEGACY_TAG, Signing::BUNDLE]
        .into_iter()
        .enumerate()
    {
        let repository = format!("ed25519-{i}");
        let digest = pusher.push_image(&repository, "v1").await;
        let image = format!("{}/{repository}@{digest}", registry.host());
        cosign.sign(&image, &key, how);
        let mut args = vec![
            "verify",
            "--key",
            public.path().to_str().unwrap(),
            "--registry-cacert",
            ca.to_str().unwrap(),
            "--insecure-ignore-tlog=true",
            "--use-signed-timestamps=false",
        ];
        if how.format == Format::Legacy {
            args.push("--new-bundle-format=false");
        }
        args.push(&image);
        let refused = cosign.try_run(&args, None).unwrap_err();
        assert!(
            refused.contains("failed to verify signature"),
            "{:?}: {refused}",
            how.format
        );
        let verdict = verify(&verifier(&registry), &image, &[&named("ed25519", &key)]).await;
        let stored = match how.format {
            Format::Legacy => Stored::Legacy,
            Format::Bundle => Stored::Bundle,
        };
        assert_eq!(
            verdict,
            Verdict::Denied(Failure::Rejected(Rejection::NoKeyVerifies(stored))),
            "{:?}",
            how.format
        );
    }
}

/// An SLSA provenance v1 predicate, as a CI would attest it.
fn provenance() -> serde_json::Value {
    serde_json::json!({
        "buildDefinition": {
            "buildType": "https://actions.github.io/buildtypes/workflow/v1",
            "externalParameters": {"workflow": {"repository": "https://github.com/acme/app"}},
        },
        "runDetails": {"builder": {"id": "https://github.com/actions/runner"}},
    })
}

#[tokio::test]
async fn cosign_attestations_are_never_taken_for_signatures() {
    // `cosign attest` in its legacy layout (the `sha256-<hex>.att` tag, DSSE layers) and as a
    // bundle referrer: signed by the very key the policy trusts, and still no signature.
    let cases = [
        ("legacy .att", Format::Legacy, Mode::Legacy),
        ("bundle", Format::Bundle, Mode::Legacy),
    ];
    for kind in KINDS {
        let registry = registry(kind);
        let pusher = Pusher::new(&registry);
        let cosign = Cosign::new(&registry);
        let host = registry.host();
        let key = cosign.generate_key();
        let trusted = named("release", &key);
        for (i, (layout, format, mode)) in cases.into_iter().enumerate() {
            let repository = format!("attested{i}");
            let digest = pusher.push_image(&repository, "v1").await;
            let image = format!("{host}/{repository}@{digest}");
            cosign.attest(
                &image,
                &key,
                "slsaprovenance1",
                &provenance(),
                Signing::new(format, mode),
            );
            let verdict = verify(&verifier(&registry), &image, &[&trusted]).await;
            match (format, kind) {
                // The bundle is found, verified, and read as what it is.
                (Format::Bundle, _) => assert_eq!(
                    verdict,
                    Verdict::Denied(Failure::Rejected(Rejection::Attestation {
                        predicate_type: "https://slsa.dev/provenance/v1".into()
                    })),
                    "{kind:?}, {layout}"
                ),
                // The `.att` tag is not a place signatures are looked for.
                (Format::Legacy, _) => assert_eq!(
                    verdict,
                    Verdict::Denied(Failure::NotSigned {
                        digest: digest.clone()
                    }),
                    "{kind:?}, {layout}"
                ),
            }

            // Signed as well: admitted by the signature.
            cosign.sign(&image, &key, Signing::new(format, mode));
            requests(&registry);
            let verdict = verify(&verifier(&registry), &image, &[&trusted]).await;
            assert!(
                matches!(verdict, Verdict::Verified { .. }),
                "{kind:?}, {layout}: {verdict:?}"
            );
            // The cost, the same whatever order the index lists the two referrers in. Where the
            // referrers index carries the entries' annotations (olareg copies them from the
            // manifests), a signature's alone. The tag schema's index that cosign writes on
            // distribution carries none (and is sorted by digest, so in no telling order):
            // both referrer manifests are read, then the signature's bundle only.
            let expected = match (format, kind) {
                (Format::Legacy, _) => 2,
                (Format::Bundle, RegistryKind::Olareg) => 4,
                (Format::Bundle, RegistryKind::Distribution) => 6,
            };
            let cold = requests(&registry);
            assert_eq!(cold.len(), expected, "{kind:?}, {layout}: {cold:#?}");
            let blobs = cold.iter().filter(|r| r.contains("/blobs/")).count();
            assert_eq!(
                blobs, 1,
                "{kind:?}, {layout}: the attestation's is not read"
            );
        }
    }
}

#[tokio::test]
async fn a_multi_platform_image_is_admitted_by_the_signature_of_the_digest_it_is_run_by() {
    // docs/contract.md §3: an image is verified by the digest it names or its tag resolves
    // to. A tag of a multi-platform image resolves to the index, which `cosign sign` signs; a
    // platform's own digest needs its own signature (`cosign sign --recursive` makes both),
    // and platforms signed one by one do not sign their index.
    for kind in KINDS {
        let registry = registry(kind);
        let pusher = Pusher::new(&registry);
        let cosign = Cosign::new(&registry);
        let host = registry.host();
        let key = cosign.generate_key();
        let trusted = named("release", &key);
        let admitted = |verdict: &Verdict| matches!(verdict, Verdict::Verified { .. });
        for format in [Format::Legacy, Format::Bundle] {
            let mode = Mode::Legacy;
            let tag = |name: &str| format!("{host}/{name}-{format:?}:v1").to_lowercase();
            let at = |name: &str, digest: &str| {
                format!("{host}/{name}-{format:?}@{digest}").to_lowercase()
            };

            // Signed at the index digest only.
            let (index, platforms) = pusher
                .push_index(&format!("index-{format:?}").to_lowercase(), "v1")
                .await;
            cosign.sign(&at("index", &index), &key, Signing::new(format, mode));
            let verdict = verify(&verifier(&registry), &tag("index"), &[&trusted]).await;
            assert_eq!(
                verdict,
                Verdict::Verified {
                    digest: index.clone(),
                    key: "release".into()
                },
                "{kind:?}, {format:?}"
            );
            for platform in &platforms {
                let verdict =
                    verify(&verifier(&registry), &at("index", platform), &[&trusted]).await;
                assert_eq!(
                    verdict,
                    Verdict::Denied(Failure::NotSigned {
                        digest: platform.clone()
                    }),
                    "{kind:?}, {format:?}"
                );
            }

            // --recursive: the index and each platform.
            let (index, platforms) = pusher
                .push_index(&format!("recursive-{format:?}").to_lowercase(), "v1")
                .await;
            cosign.sign(
                &at("recursive", &index),
                &key,
                Signing {
                    recursive: true,
                    ..Signing::new(format, mode)
                },
            );
            for digest in std::iter::once(&index).chain(&platforms) {
                let verdict =
                    verify(&verifier(&registry), &at("recursive", digest), &[&trusted]).await;
                assert!(
                    admitted(&verdict),
                    "{kind:?}, {format:?}, {digest}: {verdict:?}"
                );
            }

            // Each platform signed, not the index: the tag (the index) is refused, the
            // platforms by digest are admitted.
            let (index, platforms) = pusher
                .push_index(&format!("platforms-{format:?}").to_lowercase(), "v1")
                .await;
            for platform in &platforms {
                cosign.sign(&at("platforms", platform), &key, Signing::new(format, mode));
                let verdict = verify(
                    &verifier(&registry),
                    &at("platforms", platform),
                    &[&trusted],
                )
                .await;
                assert!(admitted(&verdict), "{kind:?}, {format:?}: {verdict:?}");
            }
            let verdict = verify(&verifier(&registry), &tag("platforms"), &[&trusted]).await;
            assert_eq!(
                verdict,
                Verdict::Denied(Failure::NotSigned { digest: index }),
                "{kind:?}, {format:?}"
            );
        }
    }
}

#[tokio::test]
async fn a_bundle_costs_at_most_4_requests_and_referrers_support_is_learned_once() {
    // One verifier, two bundle-signed digests, counted by the registry's log and by the
    // verifier's `Observer` (what its metrics count). On olareg the referrers API is the
    // listing itself: one request per image, never a probe, 4 in all. On distribution the
    // API's 404 is remembered: the second image goes straight to the tag schema, and costs
    // what it costs on olareg.
    for kind in KINDS {
        let registry = registry(kind);
        let pusher = Pusher::new(&registry);
        let cosign = Cosign::new(&registry);
        let host = registry.host();
        let key = cosign.generate_key();
        let trusted = named("release", &key);
        let exchanges = Arc::new(Exchanges::default());
        let verifier = verifier(&registry).with_observer(exchanges.clone());
        let mut costs = Vec::new();
        for repository in ["first", "second"] {
            let digest = pusher.push_image(repository, "v1").await;
            let image = format!("{host}/{repository}@{digest}");
            cosign.sign(&image, &key, Signing::new(Format::Bundle, Mode::Oci11));
            requests(&registry);
            exchanges.0.store(0, Ordering::SeqCst);
            let verdict = verify(&verifier, &image, &[&trusted]).await;
            assert!(matches!(verdict, Verdict::Verified { .. }), "{verdict:?}");
            let cold = requests(&registry);
            assert_eq!(exchanges.0.load(Ordering::SeqCst), cold.len(), "{cold:#?}");
            let asked = cold.iter().filter(|r| r.contains("/referrers/")).count();
            costs.push((cold.len(), asked));
            if kind == RegistryKind::Olareg {
                let hex = &digest[7..];
                let [sig, referrers, manifest, blob] = cold.as_slice() else {
                    panic!("{cold:#?}")
                };
                assert_eq!(
                    sig,
                    &format!("GET /v2/{repository}/manifests/sha256-{hex}.sig 404")
                );
                assert_eq!(
                    referrers,
                    &format!("GET /v2/{repository}/referrers/{digest} 200")
                );
                assert!(manifest.contains("/manifests/sha256:") && manifest.ends_with(" 200"));
                assert!(blob.contains("/blobs/sha256:") && blob.ends_with(" 200"));
            }
        }
        let expected = match kind {
            RegistryKind::Olareg => [(4, 1), (4, 1)],
            RegistryKind::Distribution => [(5, 1), (4, 0)],
        };
        assert_eq!(costs, expected, "{kind:?}");
    }
}

#[tokio::test]
async fn referrers_are_listed_whole_because_one_artifact_type_filter_would_drop_signatures() {
    // docs/contract.md §3: the verifier asks for the referrers without `artifactType`. The
    // OCI distribution spec's filter takes one artifactType per request, and cosign's
    // signatures come in two (its bundle, and its legacy signature as a referrer), besides
    // the empty type of cosign up to v3.0.6: one filter would hide the others, several would
    // cost a request each, and the whole list costs the one request a filtered one does.
    const BUNDLE: &str = "application/vnd.dev.sigstore.bundle.v0.3+json";
    const COSIGN_SIG: &str = "application/vnd.dev.cosign.artifact.sig.v1+json";
    for kind in KINDS {
        let registry = registry(kind);
        let pusher = Pusher::new(&registry);
        let cosign = Cosign::new(&registry);
        let (bundle_key, legacy_key) = (cosign.generate_key(), cosign.generate_key());
        let digest = pusher.push_image("filters", "v1").await;
        let image = format!("{}/filters@{digest}", registry.host());
        cosign.sign(
            &image,
            &bundle_key,
            Signing::new(Format::Bundle, Mode::Oci11),
        );
        cosign.sign(
            &image,
            &legacy_key,
            Signing::new(Format::Legacy, Mode::Oci11),
        );

        let client = registry.https_client();
        let filtered = |artifact_type: &str| {
            let url = registry.url(&format!(
                "/v2/filters/referrers/{digest}?artifactType={}",
                artifact_type.replace('+', "%2B")
            ));
            let request = client.get(url);
            async move { request.send().await.unwrap() }
        };
        let answer = filtered(BUNDLE).await;
        match kind {
            RegistryKind::Olareg => {
                // The registry applies the filter, and says so.
                assert_eq!(answer.headers()["oci-filters-applied"], "artifactType");
                let index: serde_json::Value = answer.json().await.unwrap();
                let types: Vec<&str> = index["manifests"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .map(|e| e["artifactType"].as_str().unwrap())
                    .collect();
                assert_eq!(types, [BUNDLE], "the legacy signature is filtered out");
                // Two values: the spec has one; olareg takes the first.
                let url = registry.url(&format!(
                    "/v2/filters/referrers/{digest}?artifactType={}&artifactType={}",
                    COSIGN_SIG.replace('+', "%2B"),
                    BUNDLE.replace('+', "%2B")
                ));
                let index: serde_json::Value =
                    client.get(url).send().await.unwrap().json().await.unwrap();
                assert_eq!(index["manifests"].as_array().unwrap().len(), 1, "{index:#}");
                assert_eq!(index["manifests"][0]["artifactType"], COSIGN_SIG);
            }
            // No API, so no filter: the tag schema's index is a manifest, read whole.
            RegistryKind::Distribution => assert_eq!(answer.status(), 404),
        }

        // Unfiltered, the verifier finds either signature.
        for (name, key) in [("bundle", &bundle_key), ("legacy", &legacy_key)] {
            requests(&registry);
            let verdict = verify(&verifier(&registry), &image, &[&named(name, key)]).await;
            assert_eq!(
                verdict,
                Verdict::Verified {
                    digest: digest.clone(),
                    key: name.into()
                },
                "{kind:?}"
            );
            let logged = registry.requests();
            let listings: Vec<_> = logged
                .iter()
                .filter(|r| r.path.contains("/referrers/"))
                .collect();
            assert_eq!(listings.len(), 1, "{kind:?}: {logged:#?}");
            assert_eq!(listings[0].query, None, "{kind:?}: no filter asked for");
        }
    }
}
