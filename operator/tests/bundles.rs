//! cosign v3's signatures (Sigstore bundles attached as OCI referrers) of images in real
//! registries: Debian's docker-registry 2.8, which has no referrers API (the referrers tag
//! schema is read), and olareg, which has it. Signed by the real cosign (v3.1.3,
//! `hack/sigstore`) where it writes the case; by Sigstore's own npm producers (@sigstore/sign
//! and @sigstore/oci) for what cosign does not write (message signatures, bundles of another
//! digest, tampered bundles, entries in @sigstore/mock's Rekor v1), each said where.

// A test crate: its helpers fail the test loudly by design.
#![allow(
    clippy::expect_used,
    clippy::unwrap_used,
    clippy::indexing_slicing,
    clippy::panic
)]

use image_policy::policy::{ImageName, NamedKey, PublicKey, Transparency, TrustRoot};
use image_policy::verify::{
    Failure, Format, RegistryConfig, Rejection, Verdict, Verifier, VerifyConfig,
};
use image_policy_testsupport::cosign::Pusher;
use image_policy_testsupport::producers::{Cosign, CosignKey, Signing};
use image_policy_testsupport::registry::{Registry, RegistryKind, RegistryOptions};
use image_policy_testsupport::sigstore_js::{self, Key, Mocks};

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

fn named(name: &str, key: &Key) -> NamedKey {
    NamedKey::new(name, PublicKey::from_pem(&key.public_pem).expect("key"))
}

fn named_cosign(name: &str, key: &CosignKey) -> NamedKey {
    NamedKey::new(name, PublicKey::from_pem(&key.public_pem).expect("key"))
}

async fn verify(verifier: &Verifier, image: &str, keys: &[&NamedKey]) -> Verdict {
    verifier
        .verify(&ImageName::parse(image).expect("image"), keys, &[])
        .await
}

/// A bundle of `digest` signed with `key` by @sigstore/sign, attached to `host/repository` as
/// cosign v3 does, by @sigstore/oci.
fn sign_and_attach(host: &str, repository: &str, digest: &str, key: &Key, extra: &[&str]) {
    let bundle = sigstore_js::sign(&["--digest", digest, "--key", key.path()]);
    sigstore_js::attach(&format!("{host}/{repository}"), digest, &bundle, extra);
}

/// `GET` of a manifest or index as stored, with the Accept header distribution needs for it.
async fn get_manifest(registry: &Registry, path: &str, media_type: &str) -> Vec<u8> {
    reqwest::Client::new()
        .get(registry.url(path))
        .header("accept", media_type)
        .send()
        .await
        .unwrap()
        .error_for_status()
        .unwrap()
        .bytes()
        .await
        .unwrap()
        .to_vec()
}

fn requests(registry: &Registry) -> Vec<String> {
    registry
        .requests()
        .into_iter()
        .map(|r| format!("{} {} {}", r.method, r.path, r.status))
        .collect()
}

#[tokio::test]
async fn a_cosign_v3_signature_is_found_by_tag_and_by_digest_at_the_least_cost() {
    let registry = plain_registry();
    let pusher = Pusher::new(&registry);
    let host = registry.host();
    let digest = pusher.push_image("v3/app", "v1").await;
    let cosign = Cosign::new(&registry);
    let key = cosign.generate_key();
    cosign.sign(&format!("{host}/v3/app@{digest}"), &key, Signing::BUNDLE);
    let k = named_cosign("v3-key", &key);
    let verifier = verifier(&registry);

    registry.clear_requests();
    let by_digest = verify(&verifier, &format!("{host}/v3/app@{digest}"), &[&k]).await;
    assert_eq!(
        by_digest,
        Verdict::Verified {
            digest: digest.clone(),
            key: "v3-key".into()
        }
    );
    // A fresh process: the legacy tag, the referrers API (none here), the referrers tag, the
    // referrer's manifest and its bundle.
    let fresh = requests(&registry);
    assert_eq!(fresh.len(), 5, "{fresh:#?}");
    let hex = digest.trim_start_matches("sha256:");
    assert_eq!(
        fresh[0],
        format!("GET /v2/v3/app/manifests/sha256-{hex}.sig 404")
    );
    assert_eq!(fresh[1], format!("GET /v2/v3/app/referrers/{digest} 404"));
    assert_eq!(
        fresh[2],
        format!("GET /v2/v3/app/manifests/sha256-{hex} 200")
    );

    // Once the registry is known to have no referrers API, that request is not made again.
    verifier.clear_caches();
    registry.clear_requests();
    let by_tag = verify(&verifier, &format!("{host}/v3/app:v1"), &[&k]).await;
    assert!(matches!(by_tag, Verdict::Verified { .. }), "{by_tag:?}");
    let known = requests(&registry);
    assert_eq!(known.len(), 5, "a tag costs its HEAD too: {known:#?}");
    assert!(
        !known.iter().any(|r| r.contains("/referrers/")),
        "{known:#?}"
    );
    verifier.clear_caches();
    registry.clear_requests();
    verify(&verifier, &format!("{host}/v3/app@{digest}"), &[&k]).await;
    assert_eq!(requests(&registry).len(), 4, "{:#?}", requests(&registry));
}

#[tokio::test]
async fn index_entries_typed_oci_empty_are_read_too() {
    // cosign up to v3.0.6 typed the referrers tag's entries application/vnd.oci.empty.v1+json.
    let registry = plain_registry();
    let pusher = Pusher::new(&registry);
    let host = registry.host();
    let digest = pusher.push_image("v3/empty", "v1").await;
    let cosign = Cosign::new(&registry);
    let key = cosign.generate_key();
    cosign.sign(&format!("{host}/v3/empty@{digest}"), &key, Signing::BUNDLE);
    // The referrers tag's entry as cosign up to v3.0.6 wrote it; the referrer itself is the
    // same bundle manifest.
    let path = format!(
        "/v2/v3/empty/manifests/sha256-{}",
        digest.trim_start_matches("sha256:")
    );
    let index_type = "application/vnd.oci.image.index.v1+json";
    let index = get_manifest(&registry, &path, index_type).await;
    let mut index: serde_json::Value = serde_json::from_slice(&index).unwrap();
    index["manifests"][0]["artifactType"] = "application/vnd.oci.empty.v1+json".into();
    reqwest::Client::new()
        .put(registry.url(&path))
        .header("content-type", index_type)
        .body(serde_json::to_vec(&index).unwrap())
        .send()
        .await
        .unwrap()
        .error_for_status()
        .unwrap();
    let stored = get_manifest(&registry, &path, index_type).await;
    let stored: serde_json::Value = serde_json::from_slice(&stored).unwrap();
    assert_eq!(
        stored["manifests"][0]["artifactType"],
        "application/vnd.oci.empty.v1+json"
    );
    let k = named_cosign("k", &key);
    let verdict = verify(&verifier(&registry), &format!("{host}/v3/empty:v1"), &[&k]).await;
    assert!(matches!(verdict, Verdict::Verified { .. }), "{verdict:?}");
}

#[tokio::test]
async fn a_legacy_signature_and_a_bundle_of_other_keys_each_admit() {
    let registry = plain_registry();
    let pusher = Pusher::new(&registry);
    let host = registry.host();
    let digest = pusher.push_image("both/app", "v1").await;
    let cosign = Cosign::new(&registry);
    let (legacy, bundle_key) = (cosign.generate_key(), cosign.generate_key());
    let signed = format!("{host}/both/app@{digest}");
    cosign.sign(&signed, &legacy, Signing::LEGACY_TAG);
    cosign.sign(&signed, &bundle_key, Signing::BUNDLE);
    let legacy_key = named_cosign("legacy", &legacy);
    let v3_key = named_cosign("v3", &bundle_key);
    let verifier = verifier(&registry);
    let image = format!("{host}/both/app:v1");
    for (key, name) in [(&legacy_key, "legacy"), (&v3_key, "v3")] {
        let verdict = verify(&verifier, &image, &[key]).await;
        assert_eq!(
            verdict,
            Verdict::Verified {
                digest: digest.clone(),
                key: name.into()
            }
        );
    }
    // The legacy signature is found first: its image costs what it always did.
    verifier.clear_caches();
    registry.clear_requests();
    verify(&verifier, &image, &[&legacy_key]).await;
    assert_eq!(requests(&registry).len(), 3, "{:#?}", requests(&registry));
}

#[tokio::test]
async fn what_is_not_a_signature_of_this_image_by_these_keys_is_refused_with_its_reason() {
    let registry = plain_registry();
    let pusher = Pusher::new(&registry);
    let host = registry.host();
    let cosign = Cosign::new(&registry);
    let trusted = cosign.generate_key();
    let k = named_cosign("k", &trusted);
    let verifier = verifier(&registry);

    // Signed, but by another key.
    let digest = pusher.push_image("no/other-key", "v1").await;
    let image = format!("{host}/no/other-key@{digest}");
    cosign.sign(&image, &cosign.generate_key(), Signing::BUNDLE);
    let verdict = verify(&verifier, &format!("{host}/no/other-key:v1"), &[&k]).await;
    assert_eq!(
        verdict,
        Verdict::Denied(Failure::Rejected(Rejection::NoKeyVerifies(Format::Bundle)))
    );

    // A bundle whose subject is another image's digest, attached to this one, by a key the
    // policy trusts (@sigstore/*: cosign attaches a bundle to its own subject only).
    let key = Key::new();
    let k = named("k", &key);
    let digest = pusher.push_image("no/copied", "v1").await;
    let elsewhere = pusher.push_image("no/elsewhere", "v1").await;
    let bundle = sigstore_js::sign(&["--digest", &elsewhere, "--key", key.path()]);
    sigstore_js::attach(&format!("{host}/no/copied"), &digest, &bundle, &[]);
    let verdict = verify(&verifier, &format!("{host}/no/copied:v1"), &[&k]).await;
    assert_eq!(
        verdict,
        Verdict::Denied(Failure::Rejected(Rejection::OtherDigest))
    );

    // A payload changed after signing (the statement's name), its digest still right
    // (@sigstore/*, then tampered: cosign never writes one).
    let digest = pusher.push_image("no/tampered", "v1").await;
    let bundle = sigstore_js::sign(&["--digest", &digest, "--key", key.path()]);
    let mut json: serde_json::Value = serde_json::from_slice(&bundle).unwrap();
    use base64::Engine as _;
    let b64 = base64::engine::general_purpose::STANDARD;
    let payload = b64
        .decode(json["dsseEnvelope"]["payload"].as_str().unwrap())
        .unwrap();
    let tampered = String::from_utf8(payload)
        .unwrap()
        .replace("\"name\":\"image\"", "\"name\":\"other\"");
    json["dsseEnvelope"]["payload"] = b64.encode(tampered).into();
    sigstore_js::attach(
        &format!("{host}/no/tampered"),
        &digest,
        &serde_json::to_vec(&json).unwrap(),
        &[],
    );
    let verdict = verify(&verifier, &format!("{host}/no/tampered:v1"), &[&k]).await;
    assert_eq!(
        verdict,
        Verdict::Denied(Failure::Rejected(Rejection::NoKeyVerifies(Format::Bundle)))
    );

    // An attestation (`cosign attest`, SLSA provenance) signed by the very key: not a
    // signature.
    let digest = pusher.push_image("no/attested", "v1").await;
    let slsa = "https://slsa.dev/provenance/v1";
    let predicate = serde_json::json!({"buildDefinition": {"buildType": "https://example.com/ci"}});
    cosign.attest(
        &format!("{host}/no/attested@{digest}"),
        &trusted,
        "slsaprovenance1",
        &predicate,
        Signing::BUNDLE,
    );
    let k = named_cosign("k", &trusted);
    let verdict = verify(&verifier, &format!("{host}/no/attested:v1"), &[&k]).await;
    assert_eq!(
        verdict,
        Verdict::Denied(Failure::Rejected(Rejection::Attestation {
            predicate_type: slsa.into()
        }))
    );

    // Nothing at all.
    let digest = pusher.push_image("no/unsigned", "v1").await;
    let verdict = verify(&verifier, &format!("{host}/no/unsigned:v1"), &[&k]).await;
    assert_eq!(verdict, Verdict::Denied(Failure::NotSigned { digest }));
}

#[tokio::test]
async fn a_message_signature_over_the_manifest_counts() {
    // @sigstore/sign: cosign signs images with DSSE statements only.
    let registry = plain_registry();
    let pusher = Pusher::new(&registry);
    let host = registry.host();
    let digest = pusher.push_image("msg/app", "v1").await;
    let manifest = get_manifest(
        &registry,
        "/v2/msg/app/manifests/v1",
        "application/vnd.oci.image.manifest.v1+json",
    )
    .await;
    let dir = tempfile::tempdir().unwrap();
    let artifact = dir.path().join("manifest.json");
    std::fs::write(&artifact, &manifest).unwrap();
    let key = Key::new();
    let bundle = sigstore_js::sign(&[
        "--kind",
        "message",
        "--digest",
        &digest,
        "--artifact",
        artifact.to_str().unwrap(),
        "--key",
        key.path(),
    ]);
    assert!(
        serde_json::from_slice::<serde_json::Value>(&bundle).unwrap()["messageSignature"]
            .is_object()
    );
    sigstore_js::attach(&format!("{host}/msg/app"), &digest, &bundle, &[]);
    let k = named("k", &key);
    let verdict = verify(&verifier(&registry), &format!("{host}/msg/app:v1"), &[&k]).await;
    assert!(matches!(verdict, Verdict::Verified { .. }), "{verdict:?}");
}

#[tokio::test]
async fn a_required_transparency_log_admits_only_with_an_entry_that_verifies() {
    // @sigstore/sign with @sigstore/mock's Rekor v1, whose entries are then tampered with: the
    // real cosign logs in the real Rekor v2 (rekor_v2.rs).
    let mocks = Mocks::start();
    let registry = plain_registry();
    let pusher = Pusher::new(&registry);
    let host = registry.host();
    let key = Key::new();
    let root = std::sync::Arc::new(TrustRoot::parse("mock", &mocks.trusted_root()));
    assert!(root.verifier().is_ok(), "{root:?}");
    let required = NamedKey {
        transparency: Transparency::Required(root),
        ..named("logged", &key)
    };
    let verifier = verifier(&registry);

    // Logged in the mock Rekor: admitted.
    let digest = pusher.push_image("tlog/logged", "v1").await;
    let bundle = sigstore_js::sign(&[
        "--digest",
        &digest,
        "--key",
        key.path(),
        "--rekor",
        &mocks.rekor,
    ]);
    let with_entry: serde_json::Value = serde_json::from_slice(&bundle).unwrap();
    assert!(with_entry["verificationMaterial"]["tlogEntries"][0]["inclusionPromise"].is_object());
    sigstore_js::attach(&format!("{host}/tlog/logged"), &digest, &bundle, &[]);
    let verdict = verify(&verifier, &format!("{host}/tlog/logged:v1"), &[&required]).await;
    assert!(matches!(verdict, Verdict::Verified { .. }), "{verdict:?}");

    // Not logged: the same key refuses it, naming the trusted root.
    let digest = pusher.push_image("tlog/unlogged", "v1").await;
    sign_and_attach(&host, "tlog/unlogged", &digest, &key, &[]);
    let verdict = verify(&verifier, &format!("{host}/tlog/unlogged:v1"), &[&required]).await;
    assert!(
        matches!(&verdict, Verdict::Denied(Failure::Rejected(Rejection::NoLogEntry { root, .. })) if root == "mock"),
        "{verdict:?}"
    );
    // ... and the key without the requirement admits it.
    let optional = named("optional", &key);
    let verdict = verify(&verifier, &format!("{host}/tlog/unlogged:v1"), &[&optional]).await;
    assert!(matches!(verdict, Verdict::Verified { .. }), "{verdict:?}");

    // A corrupted inclusion proof, and a corrupted signed entry timestamp.
    for (repository, field) in [
        (
            "tlog/proof",
            "/verificationMaterial/tlogEntries/0/inclusionProof/rootHash",
        ),
        (
            "tlog/set",
            "/verificationMaterial/tlogEntries/0/inclusionPromise/signedEntryTimestamp",
        ),
    ] {
        let digest = pusher.push_image(repository, "v1").await;
        let bundle = sigstore_js::sign(&[
            "--digest",
            &digest,
            "--key",
            key.path(),
            "--rekor",
            &mocks.rekor,
        ]);
        let mut json: serde_json::Value = serde_json::from_slice(&bundle).unwrap();
        let value = json.pointer_mut(field).expect(field);
        let text = value.as_str().unwrap().to_owned();
        // Another valid base64 value of the same length.
        let flipped = if text.starts_with('A') { "B" } else { "A" };
        *value = format!("{flipped}{}", &text[1..]).into();
        sigstore_js::attach(
            &format!("{host}/{repository}"),
            &digest,
            &serde_json::to_vec(&json).unwrap(),
            &[],
        );
        let verdict = verify(&verifier, &format!("{host}/{repository}:v1"), &[&required]).await;
        assert!(
            matches!(
                &verdict,
                Verdict::Denied(Failure::Rejected(Rejection::NoLogEntry { .. }))
            ),
            "{field}: {verdict:?}"
        );
    }
}

#[tokio::test]
async fn the_referrers_api_is_used_where_a_registry_has_it() {
    let registry = Registry::start(RegistryOptions {
        kind: RegistryKind::Olareg,
        ..RegistryOptions::default()
    });
    let pusher = Pusher::new(&registry);
    let host = registry.host();
    let digest = pusher.push_image("api/app", "v1").await;
    // An SBOM referrer first (the imitation of `oras attach`: cosign writes none), then the
    // real cosign's bundle.
    let sbom = pusher
        .attach_artifact("api/app", &digest, "application/spdx+json", b"{}")
        .await;
    let cosign = Cosign::new(&registry);
    let key = cosign.generate_key();
    cosign.sign(&format!("{host}/api/app@{digest}"), &key, Signing::BUNDLE);
    let listed: serde_json::Value = registry
        .https_client()
        .get(registry.url(&format!("/v2/api/app/referrers/{digest}")))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(
        listed["manifests"].as_array().unwrap().len(),
        2,
        "{listed:#}"
    );
    let verifier = Verifier::new(VerifyConfig {
        registry: RegistryConfig {
            extra_roots_pem: vec![registry.ca_pem()],
            ..RegistryConfig::default()
        },
        ..VerifyConfig::default()
    })
    .unwrap();
    let k = named_cosign("k", &key);
    registry.clear_requests();
    let verdict = verify(&verifier, &format!("{host}/api/app@{digest}"), &[&k]).await;
    assert!(matches!(verdict, Verdict::Verified { .. }), "{verdict:?}");
    // The legacy tag, the referrers API, the signature's referrer (cosign's first) and its
    // bundle: no referrers tag, and the SBOM is never fetched.
    let requests = requests(&registry);
    assert_eq!(requests.len(), 4, "{requests:#?}");
    assert_eq!(
        requests[1],
        format!("GET /v2/api/app/referrers/{digest} 200")
    );
    assert!(requests[2].contains("/manifests/sha256:"), "{requests:#?}");
    assert!(requests[3].contains("/blobs/sha256:"), "{requests:#?}");
    assert!(!requests.iter().any(|r| r.contains(&sbom)), "{requests:#?}");
}

#[test]
fn verify_bundle_checks_a_bundle_file_offline() {
    let mocks = Mocks::start();
    let key = Key::new();
    let digest = format!("sha256:{}", "ab".repeat(32));
    let dir = tempfile::tempdir().unwrap();
    let file = |name: &str, bytes: &[u8]| {
        let path = dir.path().join(name);
        std::fs::write(&path, bytes).unwrap();
        path.to_str().unwrap().to_owned()
    };
    let plain = file(
        "plain.json",
        &sigstore_js::sign(&["--digest", &digest, "--key", key.path()]),
    );
    let logged = file(
        "logged.json",
        &sigstore_js::sign(&[
            "--digest",
            &digest,
            "--key",
            key.path(),
            "--rekor",
            &mocks.rekor,
        ]),
    );
    let public = file("key.pub", key.public_pem.as_bytes());
    let other = file("other.pub", Key::new().public_pem.as_bytes());
    let root = mocks.trusted_root_path();
    let root = root.to_str().unwrap();
    let run = |args: &[&str]| {
        let out = std::process::Command::new(env!("CARGO_BIN_EXE_image-policy"))
            .arg("verify-bundle")
            .args(args)
            .output()
            .unwrap();
        let text = format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        (out.status.code(), text)
    };
    let (code, out) = run(&["--bundle", &plain, "--digest", &digest, "--key", &public]);
    assert_eq!(code, Some(0), "{out}");
    assert!(out.starts_with("Verified: "), "{out}");
    let (code, out) = run(&["--bundle", &plain, "--digest", &digest, "--key", &other]);
    assert_eq!(
        (code, out.as_str()),
        (
            Some(1),
            "Not verified: Its Sigstore bundle is signed by none of the keys of the policy.\n"
        )
    );
    let another = format!("sha256:{}", "cd".repeat(32));
    let (code, out) = run(&["--bundle", &plain, "--digest", &another, "--key", &public]);
    assert_eq!(code, Some(1), "{out}");
    assert!(out.contains("for other images"), "{out}");
    // The log: required, against the mocks' trusted root.
    let tlog = ["--require-tlog", "--trusted-root", root];
    let (code, out) = run(&[
        &["--bundle", &logged, "--digest", &digest, "--key", &public][..],
        &tlog,
    ]
    .concat());
    assert_eq!(code, Some(0), "{out}");
    let (code, out) = run(&[
        &["--bundle", &plain, "--digest", &digest, "--key", &public][..],
        &tlog,
    ]
    .concat());
    assert_eq!(code, Some(1), "{out}");
    assert!(
        out.contains("no transparency log entry that verifies against the trusted root"),
        "{out}"
    );
    // ... and against the built-in public-good root, which did not log it.
    let (code, out) = run(&[
        "--bundle",
        &logged,
        "--digest",
        &digest,
        "--key",
        &public,
        "--require-tlog",
    ]);
    assert_eq!(code, Some(1), "{out}");
    assert!(out.contains("sigstore-public-good"), "{out}");
    // Unusable input.
    let junk = file("junk.json", b"{\"mediaType\": 5}");
    for args in [
        vec![
            "--bundle",
            junk.as_str(),
            "--digest",
            &digest,
            "--key",
            &public,
        ],
        vec![
            "--bundle",
            &plain,
            "--digest",
            "sha256:nope",
            "--key",
            &public,
        ],
        vec!["--bundle", &plain, "--digest", &digest, "--key", &plain],
        vec![
            "--bundle",
            "/nonexistent",
            "--digest",
            &digest,
            "--key",
            &public,
        ],
        vec![
            "--bundle",
            &plain,
            "--digest",
            &digest,
            "--key",
            &public,
            "--require-tlog",
            "--trusted-root",
            &junk,
        ],
    ] {
        let (code, out) = run(&args);
        assert_eq!(code, Some(2), "{args:?}: {out}");
        assert!(out.starts_with("error: "), "{out}");
    }

    // Keyless: the real cosign v3 bundle of kubewarden-controller, with the built-in root.
    let data = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/data/bundles");
    let kubewarden = format!("{data}/kubewarden-controller-v1.34.0-keyless/bundle.sigstore.json");
    let signed = "sha256:c811d58de79c92f03214e63aa339484e488d694ae8a6283b5f3f17a9faf50172";
    let subject = "https://github.com/kubewarden/kubewarden-controller/.github/workflows/release.yml@refs/tags/v1.34.0";
    let github = "https://token.actions.githubusercontent.com";
    let keyless = |identity: &[&str]| {
        run(&[
            &["--bundle", kubewarden.as_str(), "--digest", signed][..],
            identity,
        ]
        .concat())
    };
    let (code, out) = keyless(&[
        "--certificate-identity",
        subject,
        "--certificate-oidc-issuer",
        github,
    ]);
    assert_eq!(code, Some(0), "{out}");
    let (code, out) = keyless(&[
        "--certificate-identity-regexp",
        r"https://github\.com/kubewarden/.*/release\.yml@refs/tags/v1\..*",
        "--certificate-oidc-issuer-regexp",
        r"https://token\.actions\.githubusercontent\.com",
    ]);
    assert_eq!(code, Some(0), "{out}");
    let (code, out) = keyless(&[
        "--certificate-identity",
        subject,
        "--certificate-oidc-issuer",
        "https://accounts.google.com",
    ]);
    assert_eq!(
        (code, out.as_str()),
        (
            Some(1),
            format!(
                "Not verified: Its signature's certificate names the subject {subject} of the issuer {github}, which no identity of the policy matches.\n"
            )
            .as_str()
        )
    );
    // Against another root (the mocks'), its certificate chains to nothing.
    let (code, out) = keyless(&[
        "--certificate-identity",
        subject,
        "--certificate-oidc-issuer",
        github,
        "--trusted-root",
        root,
    ]);
    assert_eq!(code, Some(1), "{out}");
    assert!(out.starts_with("Not verified: "), "{out}");
    // An attestation is not a signature, unless asked for.
    let attestation = format!("{data}/made-with-sigstore-js/attestation-key.sigstore.json");
    let signer = format!("{data}/made-with-sigstore-js/signer.pub.pem");
    let made = std::fs::read_to_string(format!("{data}/made-with-sigstore-js/digest")).unwrap();
    let attested = |extra: &[&str]| {
        run(&[
            &[
                "--bundle",
                attestation.as_str(),
                "--digest",
                made.trim(),
                "--key",
                signer.as_str(),
            ][..],
            extra,
        ]
        .concat())
    };
    assert_eq!(attested(&[]).0, Some(1));
    assert_eq!(attested(&["--predicate-type", "any"]).0, Some(0));
    assert_eq!(
        attested(&["--predicate-type", "https://slsa.dev/provenance/v1"]).0,
        Some(0)
    );
    assert_eq!(
        attested(&["--predicate-type", "https://spdx.dev/Document"]).0,
        Some(1)
    );
    let (code, out) = keyless(&[
        "--certificate-identity-regexp",
        "(",
        "--certificate-oidc-issuer",
        github,
    ]);
    assert_eq!(code, Some(2), "{out}");
}

#[tokio::test]
async fn check_reads_a_policys_trusted_root_from_a_file() {
    let mocks = Mocks::start();
    let registry = plain_registry();
    let host = registry.host();
    let key = Key::new();
    let digest = Pusher::new(&registry)
        .push_image("check/logged", "v1")
        .await;
    let bundle = sigstore_js::sign(&[
        "--digest",
        &digest,
        "--key",
        key.path(),
        "--rekor",
        &mocks.rekor,
    ]);
    sigstore_js::attach(&format!("{host}/check/logged"), &digest, &bundle, &[]);
    let dir = tempfile::tempdir().unwrap();
    let policy = dir.path().join("policy.yaml");
    let indented: String = key
        .public_pem
        .lines()
        .map(|l| format!("        {l}\n"))
        .collect();
    std::fs::write(
        &policy,
        format!(
            "apiVersion: signing.apps.tanzu.vmware.com/v1beta1\nkind: ClusterImagePolicy\n\
             metadata:\n  name: image-policy\nspec:\n  verification:\n    trustedRoots:\n\
             \x20   - name: mock\n      configMapRef: {{name: mock-root}}\n    keys:\n\
             \x20   - name: logged\n      transparencyLog: Required\n      trustedRoot: mock\n\
             \x20     publicKey: |\n{indented}    images:\n    - namePattern: {host}/check/*\n\
             \x20     keys: [{{name: logged}}]\n"
        ),
    )
    .unwrap();
    let image = format!("{host}/check/logged:v1");
    let root = mocks.trusted_root_path();
    let run = |extra: &[&str]| {
        let out = std::process::Command::new(env!("CARGO_BIN_EXE_image-policy"))
            .args(["check", "--policy", policy.to_str().unwrap()])
            .args(["--insecure-registry", &host])
            .args(extra)
            .arg(&image)
            .output()
            .unwrap();
        let text = format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        (out.status.code(), text)
    };
    let with_root = format!("mock={}", root.display());
    let (code, out) = run(&["--trusted-root", &with_root]);
    assert_eq!(code, Some(0), "{out}");
    assert!(out.starts_with(&format!("Admitted: {image} (")), "{out}");
    // Without the file the root is unavailable, as with a missing ConfigMap: refused.
    let (code, out) = run(&[]);
    assert_eq!(code, Some(1), "{out}");
    assert!(
        out.contains("The trusted root mock that its key requires cannot be used"),
        "{out}"
    );
    // A name the policy does not declare is unusable input, not a silent miss.
    let typo = format!("mokc={}", root.display());
    let (code, out) = run(&["--trusted-root", &typo]);
    assert_eq!(code, Some(2), "{out}");
    assert!(
        out.contains("the policy declares no trusted root of that name (it declares: mock)"),
        "{out}"
    );
}
