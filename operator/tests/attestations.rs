//! Required attestations (docs/contract.md §1–§3) decided as admission decides them
//! (`Admission::judge`), on attestations made by real producers and stored in real registries:
//! the real cosign (v3.1.3) `cosign attest` in the referrers (olareg, with the referrers API,
//! and distribution 2.8, through the tag schema) and in its legacy `.att` tag, logged and
//! timestamped by a real Rekor v2 and timestamp authority where a signing time matters (and
//! keyless, with a certificate of `@sigstore/mock`'s Fulcio); and `@sigstore/sign` for a
//! statement cosign will not make (another digest's).

// A test crate: its helpers fail the test loudly by design.
#![allow(
    clippy::expect_used,
    clippy::unwrap_used,
    clippy::indexing_slicing,
    clippy::panic
)]

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use image_policy::policy::{Documents, Snapshot};
use image_policy::verify::{
    Cache, Observer, RegistryConfig, RegistryOutcome, Verifier, VerifyConfig,
};
use image_policy::webhook::Webhook;
use image_policy::webhook::admit::Settings;
use image_policy::webhook::credentials::{Anonymous, Owner};
use image_policy::webhook::decision::Outcome;
use image_policy_crd::ClusterImagePolicy;
use image_policy_testsupport::cosign::Pusher;
use image_policy_testsupport::local_sigstore::LocalSigstore;
use image_policy_testsupport::producers::{
    Cosign, CosignKey, Format, Mode, Signing, identity_token,
};
use image_policy_testsupport::registry::{Registry, RegistryKind, RegistryOptions};
use image_policy_testsupport::sigstore_js::{self, Mocks};
use serde_json::{Value, json};
use tokio::sync::watch;

const SLSA: &str = "https://slsa.dev/provenance/v1";
const SCAN: &str = "https://example.com/scan/v1";
const KINDS: [RegistryKind; 2] = [RegistryKind::Olareg, RegistryKind::Distribution];

/// The registry exchanges a verifier reports.
#[derive(Default)]
struct Exchanges(AtomicUsize);

impl Observer for Exchanges {
    fn cache(&self, _: Cache, _: bool) {}
    fn registry_request(&self, _: RegistryOutcome) {
        self.0.fetch_add(1, Ordering::SeqCst);
    }
}

impl Exchanges {
    fn take(&self) -> usize {
        self.0.swap(0, Ordering::SeqCst)
    }
}

/// A registry, its producers, and admission deciding on it with one verifier.
struct Setup {
    registry: Registry,
    pusher: Pusher,
    cosign: Cosign,
    webhook: Webhook,
    exchanges: Arc<Exchanges>,
}

impl Setup {
    /// Over TLS, as cosign speaks to a registry.
    fn new(kind: RegistryKind) -> Setup {
        Setup::start(kind, false)
    }

    /// Over plain HTTP, as `@sigstore/oci` speaks to 127.0.0.1.
    fn plain(kind: RegistryKind) -> Setup {
        Setup::start(kind, true)
    }

    fn start(kind: RegistryKind, plain_http: bool) -> Setup {
        let registry = Registry::start(RegistryOptions {
            kind,
            plain_http,
            ..RegistryOptions::default()
        });
        let exchanges = Arc::new(Exchanges::default());
        let trust = if plain_http {
            RegistryConfig {
                insecure_registries: [registry.host()].into(),
                ..RegistryConfig::default()
            }
        } else {
            RegistryConfig {
                extra_roots_pem: vec![registry.ca_pem()],
                ..RegistryConfig::default()
            }
        };
        let verifier = Verifier::new(VerifyConfig {
            registry: trust,
            ..VerifyConfig::default()
        })
        .expect("verifier")
        .with_observer(exchanges.clone());
        let (_, rx) = watch::channel(image_policy::policy::PolicyState::Absent);
        let webhook = Webhook::new(rx, verifier, Arc::new(Anonymous), Settings::default());
        Setup {
            pusher: Pusher::new(&registry),
            cosign: Cosign::new(&registry),
            registry,
            webhook,
            exchanges,
        }
    }

    /// A new image `repository:v1`: `host/repository@digest`.
    async fn image(&self, repository: &str) -> String {
        let digest = self.pusher.push_image(repository, "v1").await;
        format!("{}/{repository}@{digest}", self.registry.host())
    }

    /// What admission decides for `image` under `snapshot`.
    async fn decide(&self, snapshot: &Snapshot, image: &str) -> Outcome {
        let mut outcomes = self
            .webhook
            .admission()
            .judge(snapshot, Owner::none(), vec![image.to_owned()])
            .await;
        outcomes.pop().expect("one outcome").1
    }

    fn sign(&self, image: &str, key: &CosignKey) {
        self.cosign
            .sign(image, key, Signing::new(Format::Bundle, Mode::Legacy));
    }

    fn attest(&self, image: &str, key: &CosignKey, kind: &str, predicate: &Value, how: Signing) {
        self.cosign.attest(image, key, kind, predicate, how);
    }
}

/// A policy with `keys` (name, `{publicKey}` or `{keyless}` and the rest) and one entry for
/// every image of the registry, `entry` (its keys and attestations), compiled with the trusted
/// roots of `documents`.
fn snapshot(keys: Value, entry: Value, extra: Value, documents: &Documents) -> Snapshot {
    let mut verification = json!({"keys": keys, "images": [entry]});
    if let (Some(v), Some(extra)) = (verification.as_object_mut(), extra.as_object()) {
        v.extend(extra.clone());
    }
    let policy: ClusterImagePolicy = serde_json::from_value(json!({
        "apiVersion": "signing.apps.tanzu.vmware.com/v1beta1", "kind": "ClusterImagePolicy",
        "metadata": {"name": "image-policy"}, "spec": {"verification": verification}}))
    .expect("policy");
    Snapshot::compile_with(&policy, documents).expect("compiles")
}

fn key(name: &str, key: &CosignKey) -> Value {
    json!({"name": name, "publicKey": key.public_pem})
}

/// An SLSA provenance v1 predicate as GitHub's attest-build-provenance writes it, built from
/// `repository`.
fn provenance(repository: &str) -> Value {
    json!({
        "buildDefinition": {
            "buildType": "https://actions.github.io/buildtypes/workflow/v1",
            "externalParameters": {"workflow": {
                "repository": format!("https://github.com/{repository}"),
                "path": ".github/workflows/release.yml",
                "ref": "refs/tags/v1.0.0"}},
        },
        "runDetails": {"builder": {"id": "https://github.com/actions/runner/github-hosted"}},
    })
}

/// A vulnerability scan finished `hours_ago`, with `critical` findings.
fn scan(hours_ago: i64, critical: u32) -> Value {
    let finished = chrono::Utc::now() - chrono::Duration::hours(hours_ago);
    json!({
        "scanner": {"uri": "https://example.com/scanner", "version": "1.0"},
        "metadata": {"scanFinishedOn": finished.to_rfc3339_opts(chrono::SecondsFormat::Secs, true)},
        "summary": {"critical": critical},
    })
}

const BUILT_BY_CI: &str = r#"predicate.buildDefinition.externalParameters.workflow.repository == "https://github.com/acme/app""#;

/// The entry of the issue's example: signed by `release`, with its provenance built from
/// acme/app, signed by `attester`.
fn built_by_ci(host: &str, attester: &str) -> Value {
    json!({
        "namePattern": format!("{host}/*"),
        "keys": [{"name": "release"}],
        "attestations": [{
            "name": "built-by-ci",
            "predicateType": SLSA,
            "keys": [{"name": attester}],
            "conditions": [{"expression": BUILT_BY_CI, "message": "built from acme/app"}],
        }],
    })
}

fn denied(outcome: &Outcome) -> (&str, &str) {
    match outcome {
        Outcome::Denied { message, reason } => (message.as_str(), reason.as_str()),
        other => panic!("not denied: {other:?}"),
    }
}

fn admitted(outcome: &Outcome) -> bool {
    matches!(outcome, Outcome::Admitted { .. })
}

#[tokio::test]
async fn real_cosign_provenance_is_required_and_its_conditions_decide_on_both_registries() {
    for kind in KINDS {
        let setup = Setup::new(kind);
        let host = setup.registry.host();
        let release = setup.cosign.generate_key();
        let policy = snapshot(
            json!([key("release", &release)]),
            built_by_ci(&host, "release"),
            json!({}),
            &Documents::new(),
        );
        let bundle = Signing::new(Format::Bundle, Mode::Legacy);

        // Signed, with provenance from the right repository: admitted.
        let good = setup.image("good").await;
        setup.sign(&good, &release);
        setup.attest(
            &good,
            &release,
            "slsaprovenance1",
            &provenance("acme/app"),
            bundle,
        );
        let outcome = setup.decide(&policy, &good).await;
        assert!(admitted(&outcome), "{kind:?}: {outcome:?}");

        // From another repository: refused with the condition's message.
        let other = setup.image("other").await;
        setup.sign(&other, &release);
        setup.attest(
            &other,
            &release,
            "slsaprovenance1",
            &provenance("acme/fork"),
            bundle,
        );
        let outcome = setup.decide(&policy, &other).await;
        assert_eq!(
            denied(&outcome),
            (
                format!(
                    "The image: {other} does not meet the conditions of its attestation \
                     \"built-by-ci\" (https://slsa.dev/provenance/v1): built from acme/app."
                )
                .as_str(),
                "ConditionFailed"
            ),
            "{kind:?}"
        );

        // Signed, without provenance: refused, and not said to be unsigned.
        let bare = setup.image("bare").await;
        setup.sign(&bare, &release);
        let outcome = setup.decide(&policy, &bare).await;
        let (message, reason) = denied(&outcome);
        let digest = bare.rsplit_once('@').unwrap().1;
        assert_eq!(reason, "AttestationMissing", "{kind:?}");
        assert!(
            message.starts_with(&format!(
                "The image: {bare} does not have the attestation \"built-by-ci\" \
                 (https://slsa.dev/provenance/v1) its policy requires. None of that type was \
                 found for {digest}:"
            )),
            "{kind:?}: {message}"
        );

        // Attested, not signed: the signature the entry requires comes first.
        let unsigned = setup.image("unsigned").await;
        setup.attest(
            &unsigned,
            &release,
            "slsaprovenance1",
            &provenance("acme/app"),
            bundle,
        );
        let outcome = setup.decide(&policy, &unsigned).await;
        let (message, reason) = denied(&outcome);
        assert_eq!(reason, "AttestationOnly", "{kind:?}: {message}");
        assert!(message.starts_with(&format!("The image: {unsigned} is not signed.")));
    }
}

#[tokio::test]
async fn cosigns_legacy_att_tag_is_read_when_the_referrers_hold_none() {
    // Distribution only: olareg answers a digest without referrers with `"manifests": null`,
    // which the referrers index does not read yet (cosign_real.rs,
    // a_referrers_api_answering_null_manifests_means_no_referrers).
    let setup = Setup::new(RegistryKind::Distribution);
    let host = setup.registry.host();
    let release = setup.cosign.generate_key();
    let policy = snapshot(
        json!([key("release", &release)]),
        built_by_ci(&host, "release"),
        json!({}),
        &Documents::new(),
    );
    let legacy = Signing::new(Format::Legacy, Mode::Legacy);
    for (repository, from, holds) in [
        ("att-good", "acme/app", true),
        ("att-fork", "acme/fork", false),
    ] {
        let image = setup.image(repository).await;
        setup.cosign.sign(&image, &release, legacy);
        setup.attest(
            &image,
            &release,
            "slsaprovenance1",
            &provenance(from),
            legacy,
        );
        let outcome = setup.decide(&policy, &image).await;
        if holds {
            assert!(admitted(&outcome), "{outcome:?}");
        } else {
            assert_eq!(denied(&outcome).1, "ConditionFailed");
        }
    }
}

#[tokio::test]
async fn an_attestation_of_another_signer_does_not_count() {
    let setup = Setup::new(RegistryKind::Olareg);
    let host = setup.registry.host();
    let release = setup.cosign.generate_key();
    let stranger = setup.cosign.generate_key();
    let policy = snapshot(
        json!([key("release", &release)]),
        built_by_ci(&host, "release"),
        json!({}),
        &Documents::new(),
    );
    let bundle = Signing::new(Format::Bundle, Mode::Legacy);

    // Attested by another key than the attestation's.
    let image = setup.image("stranger").await;
    setup.sign(&image, &release);
    setup.attest(
        &image,
        &stranger,
        "slsaprovenance1",
        &provenance("acme/app"),
        bundle,
    );
    let outcome = setup.decide(&policy, &image).await;
    assert_eq!(
        denied(&outcome),
        (
            format!(
                "The image: {image} does not have the attestation \"built-by-ci\" \
                 (https://slsa.dev/provenance/v1) its policy requires. Those of that type are \
                 signed by none of its keys."
            )
            .as_str(),
            "AttestationMissing"
        )
    );
}

#[tokio::test]
async fn an_attestation_for_another_digest_does_not_count() {
    let setup = Setup::plain(RegistryKind::Olareg);
    let host = setup.registry.host();
    // A statement about another digest, attached to this one (as if copied): @sigstore/sign
    // makes what cosign will not, and @sigstore/oci attaches it.
    let js = sigstore_js::Key::new();
    let js_policy = snapshot(
        json!([{"name": "release", "publicKey": js.public_pem}]),
        built_by_ci(&host, "release"),
        json!({}),
        &Documents::new(),
    );
    let image = setup.image("copied").await;
    let digest = image.rsplit_once('@').unwrap().1.to_owned();
    let repository = format!("{host}/copied");
    let signature = sigstore_js::sign(&["--digest", &digest, "--key", js.path()]);
    sigstore_js::attach(&repository, &digest, &signature, &[]);
    let elsewhere = format!("sha256:{}", "5".repeat(64));
    let copied = sigstore_js::sign(&[
        "--digest",
        &digest,
        "--subject",
        &elsewhere,
        "--predicate-type",
        SLSA,
        "--key",
        js.path(),
    ]);
    sigstore_js::attach(&repository, &digest, &copied, &["--predicate-type", SLSA]);
    let outcome = setup.decide(&js_policy, &image).await;
    assert_eq!(
        denied(&outcome),
        (
            format!(
                "The image: {image} does not have the attestation \"built-by-ci\" \
                 (https://slsa.dev/provenance/v1) its policy requires. Those of that type are \
                 for other images, not for its digest."
            )
            .as_str(),
            "AttestationMissing"
        )
    );
}

#[tokio::test]
async fn an_entry_may_require_keyless_attestations_alone_and_refuses_another_identity() {
    // GitHub's provenance alone (no signature): a keyless identity of the workflow, attested
    // by the real cosign with a certificate of @sigstore/mock's Fulcio, logged in a real Rekor
    // v2 and timestamped, whose trusted root the policy names.
    let setup = Setup::new(RegistryKind::Olareg);
    let host = setup.registry.host();
    let mocks = Mocks::start();
    let sigstore = LocalSigstore::start_with_fulcio(&mocks);
    let documents = Documents::from([(
        "mock-root".to_owned(),
        BTreeMap::from([("trusted_root.json".to_owned(), sigstore.trusted_root())]),
    )]);
    let github = "https://token.actions.githubusercontent.com";
    let ours = "https://github.com/acme/app/.github/workflows/release.yml@refs/tags/v1.0.0";
    let theirs = "https://github.com/evil/app/.github/workflows/release.yml@refs/tags/v1.0.0";
    let policy = snapshot(
        json!([{
            "name": "github-actions",
            "keyless": {"issuer": github, "subjectRegExp": "https://github.com/acme/app/.*"},
            "trustedRoot": "mock",
        }]),
        json!({
            "namePattern": format!("{host}/*"),
            "attestations": [{
                "name": "built-by-ci",
                "predicateType": SLSA,
                "keys": [{"name": "github-actions"}],
                "conditions": [{"expression": "signer.subject.startsWith('https://github.com/acme/app/') && signer.issuer == 'https://token.actions.githubusercontent.com'"}],
            }],
        }),
        json!({"trustedRoots": [{"name": "mock", "configMapRef": {"name": "mock-root"}}]}),
        &documents,
    );
    let attest = |image: &str, subject: &str| {
        let token = identity_token(subject, github);
        let predicate = provenance("acme/app");
        let cosign = &setup.cosign;
        cosign.attest_keyless(image, &token, "slsaprovenance1", &predicate, &sigstore);
    };
    let image = setup.image("keyless").await;
    attest(&image, ours);
    let outcome = setup.decide(&policy, &image).await;
    assert!(
        matches!(&outcome, Outcome::Admitted { key, .. } if key == "github-actions"),
        "{outcome:?}"
    );

    let image = setup.image("impostor").await;
    attest(&image, theirs);
    let outcome = setup.decide(&policy, &image).await;
    assert_eq!(
        denied(&outcome),
        (
            format!(
                "The image: {image} does not have the attestation \"built-by-ci\" \
                 (https://slsa.dev/provenance/v1) its policy requires. Those of that type are \
                 signed by a certificate of the subject {theirs} of the issuer {github}, which \
                 none of its identities matches."
            )
            .as_str(),
            "AttestationMissing"
        )
    );
}

/// The entry of a scan that must be fresh and clean, attested by `attester`.
fn scanned(host: &str) -> Value {
    json!({
        "namePattern": format!("{host}/*"),
        "keys": [{"name": "release"}],
        "attestations": [{
            "name": "scanned",
            "predicateType": SCAN,
            "keys": [{"name": "scanner"}],
            "conditions": [
                {"expression": r#"timestamp(predicate.metadata.scanFinishedOn) > now - duration("168h")"#,
                 "message": "scanned within a week"},
                {"expression": "predicate.summary.critical == 0", "message": "no critical finding"},
            ],
        }],
    })
}

#[tokio::test]
async fn a_freshness_condition_reads_now() {
    let setup = Setup::new(RegistryKind::Olareg);
    let host = setup.registry.host();
    let (release, scanner) = (setup.cosign.generate_key(), setup.cosign.generate_key());
    let policy = snapshot(
        json!([key("release", &release), key("scanner", &scanner)]),
        scanned(&host),
        json!({}),
        &Documents::new(),
    );
    let bundle = Signing::new(Format::Bundle, Mode::Legacy);
    for (repository, hours_ago, fresh) in [("recent", 1, true), ("stale", 30 * 24, false)] {
        let image = setup.image(repository).await;
        setup.sign(&image, &release);
        setup.attest(&image, &scanner, SCAN, &scan(hours_ago, 0), bundle);
        let outcome = setup.decide(&policy, &image).await;
        if fresh {
            assert!(admitted(&outcome), "{outcome:?}");
        } else {
            assert_eq!(
                denied(&outcome).0,
                format!(
                    "The image: {image} does not meet the conditions of its attestation \
                     \"scanned\" (https://example.com/scan/v1): scanned within a week."
                )
            );
        }
    }
}

#[tokio::test]
async fn only_the_newest_attestation_of_a_type_counts() {
    // Logged in a real Rekor v2 and timestamped by a real timestamp authority: the scanner's
    // key requires its log, so each scan has a verified signing time (the RFC 3161 one).
    let setup = Setup::new(RegistryKind::Olareg);
    let host = setup.registry.host();
    let sigstore = LocalSigstore::start();
    let documents = Documents::from([(
        "local-root".to_owned(),
        BTreeMap::from([("trusted_root.json".to_owned(), sigstore.trusted_root())]),
    )]);
    let (release, scanner) = (setup.cosign.generate_key(), setup.cosign.generate_key());
    let keys = |log: &str| {
        json!([key("release", &release), {
            "name": "scanner", "publicKey": scanner.public_pem,
            "transparencyLog": log, "trustedRoot": "local",
        }])
    };
    let roots =
        json!({"trustedRoots": [{"name": "local", "configMapRef": {"name": "local-root"}}]});
    let timed = snapshot(keys("Required"), scanned(&host), roots.clone(), &documents);
    let untimed = snapshot(keys("Optional"), scanned(&host), roots, &documents);
    let logged = Signing {
        sigstore: Some(&sigstore),
        ..Signing::new(Format::Bundle, Mode::Legacy)
    };
    let second = std::time::Duration::from_millis(1100);

    // A clean scan, then a newer one with a critical finding: the newer decides.
    let worse = setup.image("worse").await;
    setup.sign(&worse, &release);
    setup.attest(&worse, &scanner, SCAN, &scan(2, 0), logged);
    std::thread::sleep(second);
    setup.attest(&worse, &scanner, SCAN, &scan(1, 1), logged);
    let outcome = setup.decide(&timed, &worse).await;
    assert_eq!(
        denied(&outcome).0,
        format!(
            "The image: {worse} does not meet the conditions of its attestation \"scanned\" \
             (https://example.com/scan/v1): no critical finding."
        )
    );

    // A scan with a finding, then a newer clean one: admitted.
    let better = setup.image("better").await;
    setup.sign(&better, &release);
    setup.attest(&better, &scanner, SCAN, &scan(2, 1), logged);
    std::thread::sleep(second);
    setup.attest(&better, &scanner, SCAN, &scan(1, 0), logged);
    let outcome = setup.decide(&timed, &better).await;
    assert!(admitted(&outcome), "{outcome:?}");

    // Without the log, no signing time is verified: the two cannot be told apart, and each
    // must meet the conditions.
    let outcome = setup.decide(&untimed, &better).await;
    assert_eq!(denied(&outcome).1, "ConditionFailed", "{outcome:?}");
}

#[tokio::test]
async fn conditions_are_evaluated_at_each_decision_on_what_the_cache_keeps() {
    for kind in KINDS {
        let setup = Setup::new(kind);
        let host = setup.registry.host();
        let release = setup.cosign.generate_key();
        let image = setup.image("cached").await;
        setup.sign(&image, &release);
        let bundle = Signing::new(Format::Bundle, Mode::Legacy);
        let keys = json!([key("release", &release)]);
        let signature_only = snapshot(
            keys.clone(),
            json!({"namePattern": format!("{host}/*"), "keys": [{"name": "release"}]}),
            json!({}),
            &Documents::new(),
        );
        let strict = snapshot(
            keys.clone(),
            built_by_ci(&host, "release"),
            json!({}),
            &Documents::new(),
        );
        let mut other = built_by_ci(&host, "release");
        other["attestations"][0]["conditions"][0]["expression"] =
            json!(r#"predicate.runDetails.builder.id.endsWith("/self-hosted")"#);
        other["attestations"][0]["conditions"][0]["message"] =
            json!("built on a self-hosted runner");
        let self_hosted = snapshot(keys, other, json!({}), &Documents::new());

        // The signature alone, cold (cosign_real.rs): the `.sig` tag's 404, the referrers
        // (olareg's API; distribution's 404 and its tag schema's index), the signature's
        // manifest and bundle.
        setup.exchanges.take();
        assert!(admitted(&setup.decide(&signature_only, &image).await));
        let alone = setup.exchanges.take();
        assert_eq!(alone, if kind == RegistryKind::Olareg { 4 } else { 5 });

        // Attested too, with a new verifier's cold caches: two requests more, the
        // attestation's manifest and bundle; the listing and the signature are read once.
        setup.attest(
            &image,
            &release,
            "slsaprovenance1",
            &provenance("acme/app"),
            bundle,
        );
        let cold = Setup {
            webhook: Webhook::new(
                watch::channel(image_policy::policy::PolicyState::Absent).1,
                verifier_of(&setup.registry, setup.exchanges.clone()),
                Arc::new(Anonymous),
                Settings::default(),
            ),
            ..setup
        };
        assert!(admitted(&cold.decide(&strict, &image).await));
        let attested = cold.exchanges.take();
        eprintln!(
            "cold requests, {kind:?}: signature {alone}, signature and attestation {attested}"
        );
        assert_eq!(attested, alone + 2, "{kind:?}");

        // Another condition on the same attestation: decided again, from the cache.
        let outcome = cold.decide(&self_hosted, &image).await;
        assert_eq!(denied(&outcome).1, "ConditionFailed");
        assert_eq!(cold.exchanges.take(), 0, "{kind:?}: warm");
    }
}

/// A new verifier of `registry`, reporting to `exchanges`.
fn verifier_of(registry: &Registry, exchanges: Arc<Exchanges>) -> Verifier {
    Verifier::new(VerifyConfig {
        registry: RegistryConfig {
            extra_roots_pem: vec![registry.ca_pem()],
            ..RegistryConfig::default()
        },
        ..VerifyConfig::default()
    })
    .expect("verifier")
    .with_observer(exchanges)
}

#[tokio::test]
async fn warn_mode_admits_what_an_attestation_would_refuse_with_its_words() {
    let setup = Setup::new(RegistryKind::Olareg);
    let host = setup.registry.host();
    let release = setup.cosign.generate_key();
    let mut entry = built_by_ci(&host, "release");
    entry["mode"] = json!("Warn");
    let policy = snapshot(
        json!([key("release", &release)]),
        entry,
        json!({}),
        &Documents::new(),
    );
    let image = setup.image("warned").await;
    setup.sign(&image, &release);
    let outcome = setup.decide(&policy, &image).await;
    match outcome {
        Outcome::Waived { message, reason } => {
            assert_eq!(reason.as_str(), "AttestationMissing");
            assert!(
                message.contains("does not have the attestation \"built-by-ci\""),
                "{message}"
            );
        }
        other => panic!("not waived: {other:?}"),
    }
}

#[tokio::test]
async fn a_condition_that_does_not_compile_is_refused_with_its_field_path() {
    // The validating webhook refuses the policy on its way in, before any image is decided.
    let setup = Setup::new(RegistryKind::Distribution);
    let release = setup.cosign.generate_key();
    let conditions = json!([
        {"expression": BUILT_BY_CI},
        {"expression": "predicate.buildDefinition.externalParameters.workflow.repository =="},
        {"expression": "predicat.runDetails != null"},
    ]);
    let review = json!({"apiVersion": "admission.k8s.io/v1", "kind": "AdmissionReview", "request": {
        "uid": "p1",
        "kind": {"group": "signing.apps.tanzu.vmware.com", "version": "v1beta1", "kind": "ClusterImagePolicy"},
        "resource": {"group": "signing.apps.tanzu.vmware.com", "version": "v1beta1", "resource": "clusterimagepolicies"},
        "name": "image-policy", "operation": "CREATE",
        "object": {"apiVersion": "signing.apps.tanzu.vmware.com/v1beta1", "kind": "ClusterImagePolicy",
            "metadata": {"name": "image-policy"},
            "spec": {"verification": {"keys": [key("release", &release)],
                "images": [{"namePattern": "registry.example.org/*", "keys": [{"name": "release"}],
                    "attestations": [{"name": "built-by-ci", "predicateType": SLSA,
                        "conditions": conditions}]}]}}}}});
    let (_, decision) = setup
        .webhook
        .handle(&serde_json::to_vec(&review).unwrap())
        .await
        .into_decision()
        .unwrap();
    assert!(!decision.allowed, "{decision:?}");
    let message = decision.message.unwrap();
    assert!(
        message.starts_with(
            "ClusterImagePolicy \"image-policy\" is invalid: \
             spec.verification.images[0].attestations[0].conditions[1].expression: the \
             expression is not valid CEL: "
        ),
        "{message}"
    );
    assert!(
        message.contains(
            "; spec.verification.images[0].attestations[0].conditions[2].expression: the \
             expression reads \"predicat\", which is not a variable"
        ),
        "{message}"
    );
    assert!(!message.contains("conditions[0]"), "{message}");
}

#[test]
fn verify_bundle_evaluates_conditions_on_a_real_github_provenance_offline() {
    // GitHub's own attestation of a build of malancas/attest-demo (public-good Sigstore),
    // verified with the built-in public-good root: nothing is fetched.
    let data = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/data/bundles/github-attest-demo-provenance");
    let meta: Value =
        serde_json::from_slice(&std::fs::read(data.join("meta.json")).unwrap()).unwrap();
    let bundle = data.join("bundle.sigstore.json");
    let text = |field: &str| meta[field].as_str().unwrap().to_owned();
    let run = |conditions: &[&str]| {
        let mut command = std::process::Command::new(env!("CARGO_BIN_EXE_image-policy"));
        command
            .arg("verify-bundle")
            .arg("--bundle")
            .arg(&bundle)
            .args([
                "--digest",
                &text("digest"),
                "--certificate-identity",
                &text("certificateIdentity"),
                "--certificate-oidc-issuer",
                &text("certificateOidcIssuer"),
                "--predicate-type",
                SLSA,
            ]);
        for condition in conditions {
            command.args(["--condition", condition]);
        }
        let out = command.output().unwrap();
        let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
        (
            out.status.code(),
            stdout + &String::from_utf8_lossy(&out.stderr),
        )
    };
    let repository = |name: &str| {
        format!(
            r#"predicate.buildDefinition.externalParameters.workflow.repository == "https://github.com/{name}""#
        )
    };
    let hosted =
        r#"predicate.runDetails.builder.id == "https://github.com/actions/runner/github-hosted""#;
    let ours = repository("malancas/attest-demo");
    let (code, out) = run(&[&ours, hosted]);
    assert_eq!(code, Some(0), "{out}");
    assert!(out.starts_with("Verified: "), "{out}");
    assert!(out.contains(&format!("Condition holds: {ours}\n")), "{out}");
    assert!(
        out.contains(&format!("Condition holds: {hosted}\n")),
        "{out}"
    );

    let theirs = repository("sigstore/cosign");
    let (code, out) = run(&[&ours, &theirs]);
    assert_eq!(code, Some(1), "{out}");
    assert!(
        out.contains(&format!("Condition fails: {theirs}\n")),
        "{out}"
    );

    // A condition on a field the predicate lacks: it cannot be evaluated, which is no pass.
    let (code, out) = run(&["predicate.metadata.scanFinishedOn != ''"]);
    assert_eq!(code, Some(1), "{out}");
    assert!(
        out.contains("it cannot be evaluated: No such key: metadata"),
        "{out}"
    );

    // An expression that does not compile is unusable input.
    let (code, out) = run(&["predicate.buildDefinition =="]);
    assert_eq!(code, Some(2), "{out}");
    assert!(out.contains("--condition"), "{out}");
}

#[tokio::test]
async fn check_decides_attestations_offline_from_a_cluster() {
    let setup = Setup::new(RegistryKind::Olareg);
    let host = setup.registry.host();
    let release = setup.cosign.generate_key();
    let bundle = Signing::new(Format::Bundle, Mode::Legacy);
    let good = setup.image("check-good").await;
    setup.sign(&good, &release);
    setup.attest(
        &good,
        &release,
        "slsaprovenance1",
        &provenance("acme/app"),
        bundle,
    );
    let bare = setup.image("check-bare").await;
    setup.sign(&bare, &release);

    let dir = tempfile::tempdir().expect("dir");
    let path = dir.path().join("policy.yaml");
    let policy = json!({
        "apiVersion": "signing.apps.tanzu.vmware.com/v1beta1", "kind": "ClusterImagePolicy",
        "metadata": {"name": "image-policy"},
        "spec": {"verification": {"keys": [key("release", &release)],
            "images": [built_by_ci(&host, "release")]}},
    });
    std::fs::write(&path, serde_yaml::to_string(&policy).unwrap()).expect("policy");
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_image-policy"))
        .args(["check", "--policy", path.to_str().unwrap()])
        .args(["--ca-file", setup.registry.ca_path().to_str().unwrap()])
        .args([&good, &bare])
        .output()
        .expect("run");
    let text = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(1), "{text}");
    let lines: Vec<&str> = text.lines().collect();
    assert!(
        lines[0].starts_with(&format!("Admitted: {good} (")),
        "{text}"
    );
    assert!(
        lines[1].starts_with(&format!(
            "Denied: The image: {bare} does not have the attestation \"built-by-ci\""
        )),
        "{text}"
    );
}
