//! The verifier against a real registry (Debian's docker-registry on 127.0.0.1, TLS with a CA
//! made per run): signatures made by the real cosign (v3.1.3, `hack/sigstore`) in cosign 2's
//! `.sig` layout, and the real cosign signatures of the conformance data, every way of
//! failing, request counts read from the registry's own access log, caching, credentials.
//! The imitation of cosign (`Pusher`) only lays out what the real one never writes: replayed
//! and tampered signatures, and signatures whose image is not in the registry.

// A test crate: its helpers fail the test loudly by design.
#![allow(
    clippy::expect_used,
    clippy::unwrap_used,
    clippy::indexing_slicing,
    clippy::panic
)]

use std::sync::Arc;
use std::time::Duration;

use base64::Engine as _;
use image_policy::policy::{ImageName, NamedKey, PublicKey};
use image_policy::verify::{
    Credential, Failure, Format, RegistryConfig, Rejection, Verdict, Verifier, VerifyConfig,
};
use image_policy::webhook::words::explanation;
use image_policy_testsupport::cosign::{
    Pusher, public_key_pem, real_signatures, simple_signing_payload,
};
use image_policy_testsupport::producers::{Cosign, CosignKey, KeyAlgorithm, Signing};
use image_policy_testsupport::registry::{Registry, RegistryOptions};
use sigstore::crypto::{SigStoreSigner, SigningScheme};

fn named(name: &str, key: &CosignKey) -> NamedKey {
    NamedKey::new(name, PublicKey::from_pem(&key.public_pem).expect("key"))
}

/// The real cosign, with a new key, and the policy key of that key (named `k`).
fn cosign(registry: &Registry) -> (Cosign, CosignKey, NamedKey) {
    let cosign = Cosign::new(registry);
    let key = cosign.generate_key();
    let named = named("k", &key);
    (cosign, key, named)
}

fn config(registry: &Registry) -> VerifyConfig {
    VerifyConfig {
        registry: RegistryConfig {
            extra_roots_pem: vec![registry.ca_pem()],
            ..RegistryConfig::default()
        },
        ..VerifyConfig::default()
    }
}

fn verifier(registry: &Registry) -> Verifier {
    Verifier::new(config(registry)).expect("verifier")
}

async fn verify(verifier: &Verifier, image: &str, keys: &[&NamedKey]) -> Verdict {
    verifier
        .verify(&ImageName::parse(image).expect("image"), keys, &[])
        .await
}

fn failure(verdict: Verdict) -> Failure {
    match verdict {
        Verdict::Denied(f) => f,
        Verdict::Verified { .. } => panic!("expected a denial"),
    }
}

/// The registry's view, without the readiness probe or pushes: method and path.
fn requests(registry: &Registry) -> Vec<String> {
    registry
        .requests()
        .into_iter()
        .map(|r| format!("{} {} {}", r.method, r.path, r.status))
        .collect()
}

/// Who signs with a key of one algorithm.
enum Producer {
    /// The real cosign, with a key it generated or imported.
    Cosign(CosignKey),
    /// The imitation, in-process: pure Ed25519, as older cosign signed. cosign v3.1.3 signs
    /// Ed25519 keys as Ed25519ph, which its own `cosign verify` refuses, and so does the
    /// verifier (cosign_real.rs, `cosign_v3_ed25519_signatures_are_refused_as_...`).
    Imitation(SigStoreSigner),
}

#[tokio::test]
async fn every_key_algorithm_verifies_its_signature_and_no_other() {
    let registry = Registry::start(RegistryOptions::default());
    let pusher = Pusher::new(&registry);
    let cosign = Cosign::new(&registry);
    let verifier = verifier(&registry);
    let host = registry.host();
    let algorithms = [
        ("ecdsa-p256", KeyAlgorithm::EcdsaP256),
        ("ecdsa-p384", KeyAlgorithm::EcdsaP384),
        ("rsa-2048", KeyAlgorithm::Rsa2048),
    ];
    let mut signers: Vec<(Producer, NamedKey)> = algorithms
        .into_iter()
        .map(|(name, algorithm)| {
            let key = cosign.import_key(algorithm);
            let named = named(name, &key);
            (Producer::Cosign(key), named)
        })
        .collect();
    let ed25519 = SigningScheme::ED25519.create_signer().expect("signer");
    let named_ed25519 = NamedKey::new(
        "ed25519",
        PublicKey::from_pem(&public_key_pem(&ed25519)).expect("key"),
    );
    signers.push((Producer::Imitation(ed25519), named_ed25519));
    for (i, (signer, key)) in signers.iter().enumerate() {
        let repo = format!("algo/{i}");
        let digest = pusher.push_image(&repo, "v1").await;
        match signer {
            Producer::Cosign(signer) => {
                cosign.sign(
                    &format!("{host}/{repo}@{digest}"),
                    signer,
                    Signing::LEGACY_TAG,
                );
            }
            Producer::Imitation(signer) => {
                pusher.sign(&repo, &digest, signer).await;
            }
        }
        let image = format!("{host}/{repo}:v1");
        let verdict = verify(&verifier, &image, &[key]).await;
        assert_eq!(
            verdict,
            Verdict::Verified {
                digest: digest.clone(),
                key: key.name.clone()
            },
            "{}",
            key.name
        );
        let others: Vec<&NamedKey> = signers
            .iter()
            .filter(|(_, k)| k.name != key.name)
            .map(|(_, k)| k)
            .collect();
        let verdict = verify(&verifier, &image, &others).await;
        assert_eq!(
            failure(verdict),
            Failure::Rejected(Rejection::NoKeyVerifies(Format::Legacy)),
            "{}",
            key.name
        );
    }
}

#[tokio::test]
async fn real_cosign_signatures_verify_with_their_keys_only() {
    let registry = Registry::start(RegistryOptions::default());
    let pusher = Pusher::new(&registry);
    let verifier = verifier(&registry);
    let cases = real_signatures();
    let keys: Vec<NamedKey> = cases
        .iter()
        .map(|c| {
            NamedKey::new(
                c.id.clone(),
                PublicKey::from_pem(&String::from_utf8_lossy(&c.key_pem)).expect("key"),
            )
        })
        .collect();
    assert!(cases.len() >= 3);
    for case in &cases {
        let repo = format!("real/{}", case.id);
        pusher
            .push_signature_layer(
                &repo,
                &case.image_digest,
                &case.payload,
                &case.signature_b64,
            )
            .await;
        let image = format!("{}/{repo}@{}", registry.host(), case.image_digest);
        let own: Vec<&NamedKey> = keys.iter().filter(|k| k.name == case.id).collect();
        let verdict = verify(&verifier, &image, &own).await;
        assert_eq!(
            verdict,
            Verdict::Verified {
                digest: case.image_digest.clone(),
                key: case.id.clone()
            },
            "{}",
            case.id
        );
        let others: Vec<&NamedKey> = keys.iter().filter(|k| k.name != case.id).collect();
        let verdict = verify(&verifier, &image, &others).await;
        assert_eq!(
            failure(verdict),
            Failure::Rejected(Rejection::NoKeyVerifies(Format::Legacy)),
            "{}",
            case.id
        );
    }
}

#[tokio::test]
async fn each_way_of_not_being_signed_has_its_reason() {
    let registry = Registry::start(RegistryOptions::default());
    let pusher = Pusher::new(&registry);
    let verifier = verifier(&registry);
    let (cosign, cosign_key, key) = cosign(&registry);
    let host = registry.host();

    // Unsigned.
    let unsigned = pusher.push_image("cases/unsigned", "v1").await;
    let verdict = verify(&verifier, &format!("{host}/cases/unsigned:v1"), &[&key]).await;
    assert_eq!(failure(verdict), Failure::NotSigned { digest: unsigned });

    // A signature copied from another image: the real cosign's layer of the original, its
    // payload naming the original's digest, replayed under the copy's `.sig` tag (imitation:
    // cosign never writes a replay).
    let original = pusher.push_image("cases/original", "v1").await;
    cosign.sign(
        &format!("{host}/cases/original@{original}"),
        &cosign_key,
        Signing::LEGACY_TAG,
    );
    let layer = pusher
        .signature_manifest("cases/original", &original)
        .await
        .expect("cosign's .sig manifest")
        .layers
        .remove(0);
    let payload = registry
        .https_client()
        .get(registry.url(&format!("/v2/cases/original/blobs/{}", layer.digest)))
        .send()
        .await
        .unwrap()
        .bytes()
        .await
        .unwrap();
    assert_eq!(
        payload,
        simple_signing_payload(&format!("{host}/cases/original"), &original)
    );
    let signature = &layer.annotations.as_ref().unwrap()["dev.cosignproject.cosign/signature"];
    let copy = pusher.push_image("cases/copy", "v1").await;
    pusher
        .push_signature_layer("cases/copy", &copy, &payload, signature)
        .await;
    let verdict = verify(&verifier, &format!("{host}/cases/copy:v1"), &[&key]).await;
    let copied = failure(verdict);
    assert_eq!(copied, Failure::Rejected(Rejection::OtherDigest));
    assert!(explanation(&copied).is_some_and(|e| e.contains("other images")));

    // A corrupted signature over the right payload, by a key the policy trusts (imitation:
    // cosign never writes a tampered signature, and signs in-process only here).
    let tamperer = SigningScheme::ECDSA_P256_SHA256_ASN1
        .create_signer()
        .expect("signer");
    let trusted = NamedKey::new(
        "tamperer",
        PublicKey::from_pem(&public_key_pem(&tamperer)).expect("key"),
    );
    let keys = [&key, &trusted];
    let corrupt = pusher.push_image("cases/corrupt", "v1").await;
    let payload = simple_signing_payload(&format!("{host}/cases/corrupt"), &corrupt);
    let mut raw = tamperer.sign(&payload).expect("sign");
    raw[10] ^= 0xff;
    let bad = base64::engine::general_purpose::STANDARD.encode(raw);
    pusher
        .push_signature_layer("cases/corrupt", &corrupt, &payload, &bad)
        .await;
    let verdict = verify(&verifier, &format!("{host}/cases/corrupt:v1"), &keys).await;
    assert_eq!(
        failure(verdict),
        Failure::Rejected(Rejection::NoKeyVerifies(Format::Legacy))
    );

    // A signature layer that is not base64 at all, then the real cosign's signature, which
    // it appends to the same `.sig` manifest: the good one wins.
    // (A fresh verifier: the rejection above is cached for its TTL, as it should be.)
    pusher
        .push_signature_layer("cases/corrupt", &corrupt, &payload, "!!not base64!!")
        .await;
    let image = format!("{host}/cases/corrupt@{corrupt}");
    cosign.sign(&image, &cosign_key, Signing::LEGACY_TAG);
    let layers = pusher
        .signature_manifest("cases/corrupt", &corrupt)
        .await
        .unwrap()
        .layers;
    assert_eq!(layers.len(), 3, "cosign appended its layer: {layers:#?}");
    let fresh = Verifier::new(config(&registry)).expect("verifier");
    let verdict = verify(&fresh, &image, &keys).await;
    assert_eq!(
        verdict,
        Verdict::Verified {
            digest: corrupt.clone(),
            key: "k".into()
        }
    );

    // No such image.
    let verdict = verify(&verifier, &format!("{host}/cases/absent:v1"), &[&key]).await;
    assert_eq!(failure(verdict), Failure::ImageNotFound);
}

#[tokio::test]
async fn requests_are_the_minimum_and_a_cached_digest_costs_none() {
    let registry = Registry::start(RegistryOptions::default());
    let pusher = Pusher::new(&registry);
    let verifier = verifier(&registry);
    let (cosign, signer, key) = cosign(&registry);
    let host = registry.host();
    let digest = pusher.push_image("count/app", "v1").await;
    cosign.sign(
        &format!("{host}/count/app@{digest}"),
        &signer,
        Signing::LEGACY_TAG,
    );
    let hex = digest.trim_start_matches("sha256:");

    registry.clear_requests();
    let verdict = verify(&verifier, &format!("{host}/count/app:v1"), &[&key]).await;
    assert!(matches!(verdict, Verdict::Verified { .. }), "{verdict:?}");
    let seen = requests(&registry);
    assert_eq!(seen.len(), 3, "a cold tag: {seen:#?}");
    assert_eq!(seen[0], "HEAD /v2/count/app/manifests/v1 200");
    assert_eq!(
        seen[1],
        format!("GET /v2/count/app/manifests/sha256-{hex}.sig 200")
    );
    assert!(
        seen[2].starts_with("GET /v2/count/app/blobs/sha256:") && seen[2].ends_with(" 200"),
        "{seen:#?}"
    );

    let cold = Verifier::new(config(&registry)).expect("verifier");
    registry.clear_requests();
    let verdict = verify(&cold, &format!("{host}/count/app@{digest}"), &[&key]).await;
    assert!(matches!(verdict, Verdict::Verified { .. }), "{verdict:?}");
    assert_eq!(
        requests(&registry).len(),
        2,
        "a cold digest: {:#?}",
        requests(&registry)
    );

    registry.clear_requests();
    let verdict = verify(&cold, &format!("{host}/count/app@{digest}"), &[&key]).await;
    assert!(matches!(verdict, Verdict::Verified { .. }), "{verdict:?}");
    assert_eq!(requests(&registry), Vec::<String>::new(), "a cached digest");
}

#[tokio::test]
async fn a_hundred_concurrent_checks_make_one_round() {
    let registry = Registry::start(RegistryOptions::default());
    let pusher = Pusher::new(&registry);
    let verifier = verifier(&registry);
    let (cosign, signer, key) = cosign(&registry);
    let digest = pusher.push_image("burst/app", "v1").await;
    let host = registry.host();
    cosign.sign(
        &format!("{host}/burst/app@{digest}"),
        &signer,
        Signing::LEGACY_TAG,
    );
    let image =
        Arc::new(ImageName::parse(&format!("{}/burst/app:v1", registry.host())).expect("image"));
    let key = Arc::new(key);
    registry.clear_requests();
    let checks = (0..100).map(|_| {
        let (verifier, image, key) = (verifier.clone(), image.clone(), key.clone());
        tokio::spawn(async move { verifier.verify(&image, &[&key], &[]).await })
    });
    for verdict in futures::future::join_all(checks).await {
        assert!(matches!(verdict.expect("task"), Verdict::Verified { .. }));
    }
    assert_eq!(requests(&registry).len(), 3, "{:#?}", requests(&registry));
}

#[tokio::test]
async fn a_moved_tag_is_seen_once_its_digest_expires() {
    let registry = Registry::start(RegistryOptions::default());
    let pusher = Pusher::new(&registry);
    let short = VerifyConfig {
        digest_ttl: Duration::from_millis(300),
        ..config(&registry)
    };
    let verifier = Verifier::new(short).expect("verifier");
    let (cosign, signer, key) = cosign(&registry);
    let signed = pusher.push_image("moving/app", "v1").await;
    let host = registry.host();
    cosign.sign(
        &format!("{host}/moving/app@{signed}"),
        &signer,
        Signing::LEGACY_TAG,
    );
    let unsigned = pusher.push_image("moving/app", "unsigned").await;
    let image = format!("{}/moving/app:v1", registry.host());
    assert!(matches!(
        verify(&verifier, &image, &[&key]).await,
        Verdict::Verified { .. }
    ));
    pusher.retag("moving/app", "v1", &unsigned).await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(
        failure(verify(&verifier, &image, &[&key]).await),
        Failure::NotSigned { digest: unsigned }
    );
}

#[tokio::test]
async fn an_index_is_verified_by_its_own_digest_and_a_platform_by_its() {
    let registry = Registry::start(RegistryOptions::default());
    let pusher = Pusher::new(&registry);
    let verifier = verifier(&registry);
    let (cosign, signer, key) = cosign(&registry);
    let (index, platforms) = pusher.push_index("multi/app", "v1").await;
    let host = registry.host();
    cosign.sign(
        &format!("{host}/multi/app@{index}"),
        &signer,
        Signing::LEGACY_TAG,
    );
    let verdict = verify(&verifier, &format!("{host}/multi/app:v1"), &[&key]).await;
    assert_eq!(
        verdict,
        Verdict::Verified {
            digest: index.clone(),
            key: key.name.clone()
        }
    );
    // A platform digest is its own image: the index's signature does not cover it.
    let platform = &platforms[0];
    let verdict = verify(&verifier, &format!("{host}/multi/app@{platform}"), &[&key]).await;
    assert_eq!(
        failure(verdict),
        Failure::NotSigned {
            digest: platform.clone()
        }
    );
    cosign.sign(
        &format!("{host}/multi/app@{platform}"),
        &signer,
        Signing::LEGACY_TAG,
    );
    let fresh = Verifier::new(config(&registry)).expect("verifier");
    let verdict = verify(&fresh, &format!("{host}/multi/app@{platform}"), &[&key]).await;
    assert!(matches!(verdict, Verdict::Verified { .. }), "{verdict:?}");
}

#[tokio::test]
async fn credentials_fall_through_to_one_that_works() {
    let registry = Registry::start(RegistryOptions {
        basic_auth: Some(("alice".into(), "right-password".into())),
        ..RegistryOptions::default()
    });
    let pusher = Pusher::new(&registry);
    // cosign logs in with the registry's basic auth.
    let (cosign, signer, key) = cosign(&registry);
    let host = registry.host();
    let digest = pusher.push_image("private/app", "v1").await;
    cosign.sign(
        &format!("{host}/private/app@{digest}"),
        &signer,
        Signing::LEGACY_TAG,
    );
    let image = ImageName::parse(&format!("{host}/private/app:v1")).expect("image");
    let wrong = Credential::new(&host, "alice", "wrong-password");
    let right = Credential::new(&host, "alice", "right-password");

    let verifier = verifier(&registry);
    let verdict = verifier.verify(&image, &[&key], &[]).await;
    assert_eq!(
        failure(verdict),
        Failure::Unauthorized { host: host.clone() }
    );
    let verdict = verifier
        .verify(&image, &[&key], std::slice::from_ref(&wrong))
        .await;
    assert_eq!(
        failure(verdict),
        Failure::Unauthorized { host: host.clone() }
    );
    let verdict = verifier
        .verify(&image, &[&key], &[wrong.clone(), right.clone()])
        .await;
    assert!(
        matches!(verdict, Verdict::Verified { .. }),
        "wrong then right: {verdict:?}"
    );
    let verdict = Verifier::new(config(&registry))
        .expect("v")
        .verify(&image, &[&key], &[right])
        .await;
    assert!(
        matches!(verdict, Verdict::Verified { .. }),
        "right alone: {verdict:?}"
    );
}

#[tokio::test]
async fn a_registry_with_an_unknown_ca_is_unreachable() {
    let registry = Registry::start(RegistryOptions::default());
    let pusher = Pusher::new(&registry);
    pusher.push_image("tls/app", "v1").await;
    let (_, _, key) = cosign(&registry);
    let untrusting = Verifier::new(VerifyConfig::default()).expect("verifier");
    let verdict = verify(
        &untrusting,
        &format!("{}/tls/app:v1", registry.host()),
        &[&key],
    )
    .await;
    let failure = failure(verdict);
    assert_eq!(failure.label(), "Unreachable", "{failure:?}");
    assert!(
        explanation(&failure).is_some_and(|e| e.to_lowercase().contains("certificate")),
        "{failure:?}"
    );
}

#[tokio::test]
async fn the_check_command_prints_the_decisions_and_exits_by_them() {
    let registry = Registry::start(RegistryOptions::default());
    let pusher = Pusher::new(&registry);
    let (cosign, signer, key) = cosign(&registry);
    let host = registry.host();
    let signed = pusher.push_image("cli/signed", "v1").await;
    cosign.sign(
        &format!("{host}/cli/signed@{signed}"),
        &signer,
        Signing::LEGACY_TAG,
    );
    pusher.push_image("cli/unsigned", "v1").await;
    let pem = signer.public_pem.clone();
    let dir = tempfile::tempdir().expect("dir");
    let policy = dir.path().join("policy.yaml");
    let indented: String = pem.lines().map(|l| format!("        {l}\n")).collect();
    std::fs::write(
        &policy,
        format!(
            "apiVersion: signing.apps.tanzu.vmware.com/v1beta1\nkind: ClusterImagePolicy\nmetadata:\n  name: image-policy\n\
             spec:\n  verification:\n    keys:\n    - name: {}\n      publicKey: |\n{indented}    images:\n    - namePattern: {host}/cli/*\n      keys: [{{name: {}}}]\n",
            key.name, key.name
        ),
    )
    .expect("policy");
    let bin = env!("CARGO_BIN_EXE_image-policy");
    let ca = registry.ca_path();
    let run = |args: &[&str]| {
        let out = std::process::Command::new(bin)
            .args([
                "check",
                "--policy",
                policy.to_str().unwrap(),
                "--ca-file",
                ca.to_str().unwrap(),
            ])
            .args(args)
            .output()
            .expect("run");
        (
            out.status.code(),
            String::from_utf8_lossy(&out.stdout).into_owned(),
        )
    };
    let (code, out) = run(&[&format!("{host}/cli/signed:v1")]);
    assert_eq!(code, Some(0), "{out}");
    assert_eq!(
        out,
        format!(
            "Admitted: {host}/cli/signed:v1 ({signed} verified with key {})\n",
            key.name
        )
    );

    let (code, out) = run(&[&format!("{host}/cli/unsigned:v1"), "busybox"]);
    assert_eq!(code, Some(1), "{out}");
    let lines: Vec<&str> = out.lines().collect();
    assert!(lines[0].starts_with(&format!("Denied: The image: {host}/cli/unsigned:v1 is not signed. No signature was found for sha256:")), "{out}");
    assert_eq!(
        lines[1],
        "Denied: Could not verify against any image policies for container image: busybox."
    );

    let (code, out) = run(&["--allow-unmatched-images", "busybox"]);
    assert_eq!(code, Some(0), "{out}");
    assert_eq!(
        out,
        "Warning: busybox did not match any image policies. Container will be created as AllowUnmatchedImages flag is true.\n"
    );

    let manifest = dir.path().join("deploy.yaml");
    std::fs::write(
        &manifest,
        format!(
            "apiVersion: apps/v1\nkind: Deployment\nmetadata: {{name: web}}\nspec:\n  template:\n    spec:\n      initContainers: [{{name: i, image: {host}/cli/unsigned:v1}}]\n      containers: [{{name: c, image: {host}/cli/signed:v1}}]\n\
             ---\napiVersion: batch/v1\nkind: CronJob\nmetadata: {{name: nightly}}\nspec:\n  jobTemplate:\n    spec:\n      template:\n        spec:\n          containers: [{{name: c, image: {host}/cli/signed:v1}}]\n"
        ),
    )
    .expect("manifest");
    let (code, out) = run(&["-f", manifest.to_str().unwrap(), "-o", "json"]);
    assert_eq!(code, Some(1), "{out}");
    let json: serde_json::Value = serde_json::from_str(&out).expect("json");
    let rows: Vec<(String, bool)> = json
        .as_array()
        .expect("array")
        .iter()
        .map(|r| {
            (
                r["workload"].as_str().unwrap_or_default().to_owned(),
                r["admitted"].as_bool().unwrap_or_default(),
            )
        })
        .collect();
    assert_eq!(
        rows,
        [
            ("Deployment/web".into(), false),
            ("Deployment/web".into(), true),
            ("CronJob/nightly".into(), true)
        ]
    );
    let (code, _) = run(&["-f", "/nonexistent.yaml"]);
    assert_eq!(code, Some(2));

    // A broad entry beside a narrow one with another key: the broad key admits the narrow
    // entry's images too ("any of"), and check says so.
    let strict = cosign.import_key(KeyAlgorithm::EcdsaP384);
    let strict_pem: String = strict
        .public_pem
        .lines()
        .map(|l| format!("        {l}\n"))
        .collect();
    std::fs::write(
        &policy,
        format!(
            concat!(
                "apiVersion: signing.apps.tanzu.vmware.com/v1beta1\nkind: ClusterImagePolicy\n",
                "metadata:\n  name: image-policy\nspec:\n  verification:\n    keys:\n",
                "    - name: broad\n      publicKey: |\n{indented}",
                "    - name: strict\n      publicKey: |\n{strict_pem}",
                "    images:\n",
                "    - namePattern: {host}/*\n      keys: [{{name: broad}}]\n",
                "    - namePattern: {host}/cli/*\n      keys: [{{name: strict}}]\n",
            ),
            indented = indented,
            strict_pem = strict_pem,
            host = host
        ),
    )
    .expect("policy");
    let (code, out) = run(&[&format!("{host}/cli/signed:v1")]);
    assert_eq!(code, Some(0), "{out}");
    assert_eq!(
        out,
        format!(
            "Admitted: {host}/cli/signed:v1 ({signed} verified with key broad)\n  Note: any of these keys admits it: broad, strict (its matched entries name different keys)\n"
        )
    );
    let (_, out) = run(&["-o", "json", &format!("{host}/cli/signed:v1")]);
    let json: serde_json::Value = serde_json::from_str(&out).expect("json");
    assert_eq!(
        json[0]["anyOf"],
        serde_json::json!(["broad", "strict"]),
        "{out}"
    );
}

/// Counts what the verifier reports, as the metrics do.
#[derive(Default)]
struct Recorder(std::sync::Mutex<Vec<String>>);

impl image_policy::verify::Observer for Recorder {
    fn cache(&self, cache: image_policy::verify::Cache, hit: bool) {
        let cache = cache.as_str();
        self.0
            .lock()
            .unwrap()
            .push(format!("{cache} {}", if hit { "hit" } else { "miss" }));
    }
    fn registry_request(&self, outcome: image_policy::verify::RegistryOutcome) {
        let outcome = outcome.as_str();
        self.0.lock().unwrap().push(format!("registry {outcome}"));
    }
}

#[tokio::test]
async fn cache_lookups_and_registry_exchanges_are_reported() {
    let registry = Registry::start(RegistryOptions::default());
    let pusher = Pusher::new(&registry);
    let (cosign, signer, key) = cosign(&registry);
    let digest = pusher.push_image("observed/app", "v1").await;
    let host = registry.host();
    cosign.sign(
        &format!("{host}/observed/app@{digest}"),
        &signer,
        Signing::LEGACY_TAG,
    );
    let recorder = Arc::new(Recorder::default());
    let verifier = verifier(&registry).with_observer(recorder.clone());
    let image = format!("{}/observed/app:v1", registry.host());
    assert!(matches!(
        verify(&verifier, &image, &[&key]).await,
        Verdict::Verified { .. }
    ));
    assert!(matches!(
        verify(&verifier, &image, &[&key]).await,
        Verdict::Verified { .. }
    ));
    let missing = format!("{}/observed/absent:v1", registry.host());
    assert_eq!(
        failure(verify(&verifier, &missing, &[&key]).await),
        Failure::ImageNotFound
    );
    assert_eq!(
        *recorder.0.lock().unwrap(),
        [
            "registry ok",
            "digest miss",
            "registry ok",
            "registry ok",
            "verdict miss",
            "digest hit",
            "verdict hit",
            "registry not_found",
            "digest miss",
        ]
    );
}

/// Every spelling of a covered registry is matched, so with --allow-unmatched-images none of
/// them is admitted unverified (#16): leading zeros in the port, the default HTTPS port
/// written out, and each name of Docker Hub. The real registry's image is denied as unsigned;
/// the others (no network here) as unreachable, never with the "did not match" warning.
#[tokio::test]
async fn every_spelling_of_a_covered_registry_is_checked() {
    let registry = Registry::start(RegistryOptions::default());
    let pusher = Pusher::new(&registry);
    let (_, signer, _) = cosign(&registry);
    pusher.push_image("app/unsigned", "v1").await;
    let host = registry.host();
    let port = host.rsplit(':').next().expect("port");
    let indented: String = signer
        .public_pem
        .lines()
        .map(|l| format!("        {l}\n"))
        .collect();
    let dir = tempfile::tempdir().expect("dir");
    let policy = dir.path().join("policy.yaml");
    std::fs::write(
        &policy,
        format!(
            concat!(
                "apiVersion: signing.apps.tanzu.vmware.com/v1beta1\nkind: ClusterImagePolicy\n",
                "metadata:\n  name: image-policy\nspec:\n  verification:\n    keys:\n",
                "    - name: k\n      publicKey: |\n{indented}",
                "    images:\n",
                "    - namePattern: {host}/app/*\n      keys: [{{name: k}}]\n",
                "    - namePattern: registry.example.org/*\n      keys: [{{name: k}}]\n",
                "    - namePattern: docker.io/library/*\n      keys: [{{name: k}}]\n",
            ),
            indented = indented,
            host = host
        ),
    )
    .expect("policy");
    let spellings = [
        format!("127.0.0.1:0{port}/app/unsigned:v1"),
        format!("127.0.0.1:000{port}/app/unsigned:v1"),
        "registry.example.org:443/x:1".to_owned(),
        "registry.example.org:0443/x:1".to_owned(),
        "REGISTRY.example.org:443/x:1".to_owned(),
        "docker.io:443/library/busybox".to_owned(),
        "registry-1.docker.io:443/library/busybox".to_owned(),
        "registry.hub.docker.com/library/busybox".to_owned(),
        "registry.hub.docker.com:443/busybox".to_owned(),
    ];
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_image-policy"))
        .args([
            "check",
            "--allow-unmatched-images",
            "--registry-timeout",
            "2s",
        ])
        .args(["--policy", policy.to_str().unwrap()])
        .args(["--ca-file", registry.ca_path().to_str().unwrap()])
        .args(&spellings)
        .output()
        .expect("run");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(1), "{stdout}");
    let lines: Vec<&str> = stdout.lines().collect();
    assert_eq!(lines.len(), spellings.len(), "{stdout}");
    for (line, written) in lines.iter().zip(&spellings) {
        assert!(
            line.starts_with(&format!("Denied: The image: {written} is not signed.")),
            "{written}: {line}"
        );
    }
    // The registry reached by the spellings with leading zeros is the real one.
    assert!(
        lines[0].contains("No signature was found for sha256:"),
        "{}",
        lines[0]
    );
    assert!(
        lines[1].contains("No signature was found for sha256:"),
        "{}",
        lines[1]
    );
}
