use std::sync::Arc;

use base64::Engine as _;

use super::*;
use crate::policy::trust::RootError;
use crate::policy::{Identity, Matcher, PublicKey, TrustRoot};
use crate::verify::layout::referrers::{MAX_REFERRERS, candidates};
use crate::verify::verdict::{Format, Rejection};

const DATA: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/data/bundles");

fn read(path: &str) -> Vec<u8> {
    std::fs::read(format!("{DATA}/{path}")).unwrap_or_else(|e| panic!("{path}: {e}"))
}

fn digest() -> String {
    String::from_utf8(read("made-with-sigstore-js/digest"))
        .unwrap()
        .trim()
        .to_owned()
}

fn signer() -> NamedKey {
    let pem = String::from_utf8(read("made-with-sigstore-js/signer.pub.pem")).unwrap();
    NamedKey::new("signer", PublicKey::from_pem(&pem).unwrap())
}

fn mock_root() -> Arc<TrustRoot> {
    let json = String::from_utf8(read("made-with-sigstore-js/trusted_root.json")).unwrap();
    Arc::new(TrustRoot::parse("mock", &json))
}

fn required(root: Arc<TrustRoot>) -> NamedKey {
    NamedKey {
        transparency: Transparency::Required(root),
        ..signer()
    }
}

#[test]
fn bundles_made_by_sigstore_js_verify_with_their_key_only() {
    let plain = read("made-with-sigstore-js/dsse-key.sigstore.json");
    let key = signer();
    assert_eq!(check(&plain, &digest(), &[&key]), Ok(key.identity()));
    let other = format!("sha256:{}", "0".repeat(64));
    assert_eq!(check(&plain, &other, &[&key]), Err(Rejection::OtherDigest));
    let stranger = NamedKey::new(
        "p256",
        PublicKey::from_pem(include_str!("../../../tests/data/keys/p256.pub")).unwrap(),
    );
    assert_eq!(
        check(&plain, &digest(), &[&stranger]),
        Err(Rejection::NoKeyVerifies(Format::Bundle))
    );
    assert_eq!(
        check(&plain, &digest(), &[&stranger, &key]),
        Ok(key.identity()),
        "any of the keys"
    );
    let attestation = read("made-with-sigstore-js/attestation-key.sigstore.json");
    assert_eq!(
        check(&attestation, &digest(), &[&key]),
        Err(Rejection::Attestation {
            predicate_type: "https://slsa.dev/provenance/v1".into()
        })
    );
}

#[test]
fn a_required_log_needs_an_entry_of_the_keys_root() {
    let plain = read("made-with-sigstore-js/dsse-key.sigstore.json");
    let logged = read("made-with-sigstore-js/dsse-key-rekor.sigstore.json");
    let key = required(mock_root());
    assert!(check(&logged, &digest(), &[&key]).is_ok());
    assert!(matches!(
        check(&plain, &digest(), &[&key]),
        Err(Rejection::NoLogEntry { root, .. }) if root == "mock"
    ));
    let public_good = required(TrustRoot::public_good());
    assert!(matches!(
        check(&logged, &digest(), &[&public_good]),
        Err(Rejection::NoLogEntry { root, .. }) if root == "sigstore-public-good"
    ));
    let gone = RootError::NoConfigMap("gone".into());
    let gone = required(Arc::new(TrustRoot::unavailable("mock", gone)));
    assert_eq!(
        check(&logged, &digest(), &[&gone]),
        Err(Rejection::RootUnavailable {
            root: "mock".into(),
            why: "ConfigMap gone was not found in the operator's namespace".into()
        })
    );
}

#[test]
fn a_keyless_bundle_is_no_keys_signature() {
    let kubewarden = read("kubewarden-controller-v1.34.0-keyless/bundle.sigstore.json");
    let digest = "sha256:c811d58de79c92f03214e63aa339484e488d694ae8a6283b5f3f17a9faf50172";
    assert_eq!(
        check(&kubewarden, digest, &[&signer()]),
        Err(Rejection::NoKeyVerifies(Format::Bundle))
    );
    assert!(matches!(
        check(b"{}", digest, &[&signer()]),
        Err(Rejection::Unreadable {
            format: Format::Bundle,
            ..
        })
    ));
    assert!(matches!(
        check(&[0xff, 0xfe], digest, &[&signer()]),
        Err(Rejection::Unreadable {
            format: Format::Bundle,
            ..
        })
    ));
}

const KUBEWARDEN_DIGEST: &str =
    "sha256:c811d58de79c92f03214e63aa339484e488d694ae8a6283b5f3f17a9faf50172";
const KUBEWARDEN_SUBJECT: &str = "https://github.com/kubewarden/kubewarden-controller/.github/workflows/release.yml@refs/tags/v1.34.0";
const GITHUB_ISSUER: &str = "https://token.actions.githubusercontent.com";

fn identity(subject: Matcher, issuer: Matcher, root: Arc<TrustRoot>) -> NamedKey {
    NamedKey::keyless("id", Identity::new(subject, issuer, root))
}

fn kubewarden_identity(subject: Matcher, issuer: Matcher) -> NamedKey {
    identity(subject, issuer, TrustRoot::public_good())
}

/// The identity that signed the kubewarden bundle, exactly.
fn kubewarden_signer() -> NamedKey {
    kubewarden_identity(
        Matcher::exact(KUBEWARDEN_SUBJECT),
        Matcher::exact(GITHUB_ISSUER),
    )
}

/// The real cosign v3 keyless bundle, with the built-in public-good root and no network.
#[test]
fn the_kubewarden_bundle_verifies_for_its_identity_only() {
    let bundle = read("kubewarden-controller-v1.34.0-keyless/bundle.sigstore.json");
    let exact = kubewarden_signer();
    assert_eq!(
        check(&bundle, KUBEWARDEN_DIGEST, &[&exact]),
        Ok(exact.identity())
    );
    let release_workflows = kubewarden_identity(
        Matcher::pattern(
            r"https://github\.com/kubewarden/[^/]+/\.github/workflows/release\.yml@refs/tags/v1\.\d+\.\d+",
        )
        .unwrap(),
        Matcher::exact(GITHUB_ISSUER),
    );
    assert!(check(&bundle, KUBEWARDEN_DIGEST, &[&release_workflows]).is_ok());
    let mismatch = Err(Rejection::IdentityMismatch {
        subject: KUBEWARDEN_SUBJECT.into(),
        issuer: GITHUB_ISSUER.into(),
    });
    let older_tag = kubewarden_identity(
        Matcher::exact(KUBEWARDEN_SUBJECT.replace("v1.34.0", "v1.33.0")),
        Matcher::exact(GITHUB_ISSUER),
    );
    assert_eq!(check(&bundle, KUBEWARDEN_DIGEST, &[&older_tag]), mismatch);
    let google = kubewarden_identity(
        Matcher::exact(KUBEWARDEN_SUBJECT),
        Matcher::exact("https://accounts.google.com"),
    );
    assert_eq!(check(&bundle, KUBEWARDEN_DIGEST, &[&google]), mismatch);
    // A part of the subject is not the subject: expressions match whole values.
    let part = kubewarden_identity(
        Matcher::pattern("https://github.com/kubewarden").unwrap(),
        Matcher::exact(GITHUB_ISSUER),
    );
    assert_eq!(check(&bundle, KUBEWARDEN_DIGEST, &[&part]), mismatch);
    // Any of: the identity after a key that does not verify.
    assert!(matches!(
        check(&bundle, KUBEWARDEN_DIGEST, &[&signer(), &google, &exact]),
        Ok(key) if key == exact.identity()
    ));
    // Another digest, and another root.
    let other = format!("sha256:{}", "0".repeat(64));
    assert_eq!(
        check(&bundle, &other, &[&exact]),
        Err(Rejection::OtherDigest)
    );
    let mock = identity(
        Matcher::exact(KUBEWARDEN_SUBJECT),
        Matcher::exact(GITHUB_ISSUER),
        mock_root(),
    );
    assert!(
        matches!(
            check(&bundle, KUBEWARDEN_DIGEST, &[&mock]),
            Err(Rejection::UntrustedCertificate { ref root, .. }
                | Rejection::NoLogEntry { ref root, .. }
                | Rejection::NoSigningTime { ref root, .. }) if root == "mock"
        ),
        "{:?}",
        check(&bundle, KUBEWARDEN_DIGEST, &[&mock])
    );
}

/// What each kind of damage to a keyless bundle is refused as.
#[test]
fn a_damaged_keyless_bundle_is_refused_for_what_is_damaged() {
    let bundle = read("kubewarden-controller-v1.34.0-keyless/bundle.sigstore.json");
    let exact = kubewarden_signer();
    let edit = |f: &dyn Fn(&mut serde_json::Value)| {
        let mut json: serde_json::Value = serde_json::from_slice(&bundle).unwrap();
        f(&mut json);
        check(
            &serde_json::to_vec(&json).unwrap(),
            KUBEWARDEN_DIGEST,
            &[&exact],
        )
    };
    let entry = "/verificationMaterial/tlogEntries/0";
    let flip = |json: &mut serde_json::Value, pointer: &str| {
        let value = json.pointer_mut(pointer).unwrap();
        let text = value.as_str().unwrap().to_owned();
        let flipped = if text.starts_with('A') { "B" } else { "A" };
        *value = format!("{flipped}{}", &text[1..]).into();
    };
    let no_entry = edit(&|j| flip(j, &format!("{entry}/inclusionPromise/signedEntryTimestamp")));
    assert!(
        matches!(no_entry, Err(Rejection::NoLogEntry { .. })),
        "{no_entry:?}"
    );
    let no_proof = edit(&|j| flip(j, &format!("{entry}/inclusionProof/rootHash")));
    assert!(
        matches!(no_proof, Err(Rejection::NoLogEntry { .. })),
        "{no_proof:?}"
    );
    // No log entry and no timestamp: no signing time at all.
    let timeless = edit(&|j| {
        j["verificationMaterial"]["tlogEntries"] = serde_json::json!([]);
        j["verificationMaterial"]["timestampVerificationData"] = serde_json::json!({});
    });
    assert!(
        matches!(
            timeless,
            Err(Rejection::NoLogEntry { .. } | Rejection::NoSigningTime { .. })
        ),
        "{timeless:?}"
    );
    let certificate = edit(&|j| flip(j, "/verificationMaterial/certificate/rawBytes"));
    assert!(certificate.is_err(), "{certificate:?}");
}

fn xorshift(state: &mut u64) -> u64 {
    *state ^= *state << 13;
    *state ^= *state >> 7;
    *state ^= *state << 17;
    *state
}

/// Changes a few bytes of `input`: replaced, removed, inserted or cut.
fn mutate(input: &[u8], state: &mut u64) -> Vec<u8> {
    let interesting = b"{}[]\":,\\0123456789 \n=+/AZaz-";
    let mut out = input.to_vec();
    for _ in 0..=xorshift(state) % 4 {
        if out.is_empty() {
            break;
        }
        let at = (xorshift(state) as usize) % out.len();
        let byte = interesting[(xorshift(state) as usize) % interesting.len()];
        match xorshift(state) % 4 {
            0 => out[at] = byte,
            1 => {
                out.remove(at);
            }
            2 => out.insert(at, byte),
            _ => out.truncate(at),
        }
    }
    out
}

/// Mutates the bytes inside one base64 field of a bundle (a payload, a signature, a proof, a
/// certificate), keeping the JSON well-formed, so that parsing gets past the text.
fn mutate_field(bundle: &[u8], state: &mut u64) -> Vec<u8> {
    let mut json: serde_json::Value = serde_json::from_slice(bundle).unwrap();
    let mut fields = Vec::new();
    collect_strings(&json, String::new(), &mut fields);
    let path = &fields[(xorshift(state) as usize) % fields.len()];
    let b64 = base64::engine::general_purpose::STANDARD;
    if let Some(value) = json.pointer_mut(path) {
        let text = value.as_str().unwrap_or_default().to_owned();
        *value = match b64.decode(&text) {
            Ok(bytes) => b64.encode(mutate(&bytes, state)).into(),
            Err(_) => String::from_utf8_lossy(&mutate(text.as_bytes(), state))
                .into_owned()
                .into(),
        };
    }
    serde_json::to_vec(&json).unwrap()
}

fn collect_strings(value: &serde_json::Value, path: String, out: &mut Vec<String>) {
    match value {
        serde_json::Value::String(_) => out.push(path),
        serde_json::Value::Array(items) => {
            for (i, item) in items.iter().enumerate() {
                collect_strings(item, format!("{path}/{i}"), out);
            }
        }
        serde_json::Value::Object(map) => {
            for (k, v) in map {
                collect_strings(v, format!("{path}/{k}"), out);
            }
        }
        _ => {}
    }
}

/// No bundle makes the check panic, and no change to a bundle makes another key or another
/// digest verify. IMAGE_POLICY_FUZZ_ROUNDS=200000 for a long run.
#[test]
fn mutated_bundles_never_panic() {
    let rounds: u64 = std::env::var("IMAGE_POLICY_FUZZ_ROUNDS")
        .ok()
        .and_then(|r| r.parse().ok())
        .unwrap_or(1500);
    let seeds = [
        read("made-with-sigstore-js/dsse-key.sigstore.json"),
        read("made-with-sigstore-js/dsse-key-rekor.sigstore.json"),
        read("made-with-sigstore-js/attestation-key.sigstore.json"),
        read("kubewarden-controller-v1.34.0-keyless/bundle.sigstore.json"),
    ];
    let keys = [signer(), required(mock_root()), kubewarden_signer()];
    let keys: Vec<&NamedKey> = keys.iter().collect();
    let stranger = NamedKey::new(
        "p256",
        PublicKey::from_pem(include_str!("../../../tests/data/keys/p256.pub")).unwrap(),
    );
    let other = format!("sha256:{}", "0".repeat(64));
    let mut state = 0x9e37_79b9_7f4a_7c15_u64;
    for round in 0..rounds {
        for seed in &seeds {
            let mutated = if round % 2 == 0 {
                mutate(seed, &mut state)
            } else {
                mutate_field(seed, &mut state)
            };
            let _ = check(&mutated, &digest(), &keys);
            assert!(
                check(&mutated, &digest(), &[&stranger]).is_err(),
                "round {round}: a stranger's key verified {}",
                String::from_utf8_lossy(&mutated)
            );
            assert!(
                check(&mutated, &other, &keys).is_err(),
                "round {round}: another digest verified"
            );
        }
    }
}

/// Referrers indexes: any bytes give an answer or an error, at most MAX_REFERRERS
/// candidates, each a digest safe in a URL, cosign's signatures first.
#[test]
fn mutated_indexes_never_panic_and_stay_bounded() {
    let entry = |i: usize, predicate: &str| {
        serde_json::json!({"mediaType": "application/vnd.oci.image.manifest.v1+json",
            "digest": format!("sha256:{i:064x}"), "size": 10,
            "artifactType": "application/vnd.dev.sigstore.bundle.v0.3+json",
            "annotations": {"dev.sigstore.bundle.predicateType": predicate}})
    };
    let mut manifests: Vec<_> = (0..40)
        .map(|i| entry(i, "https://slsa.dev/provenance/v1"))
        .collect();
    manifests.push(entry(99, COSIGN_SIGN_PREDICATE));
    let index = serde_json::to_vec(&serde_json::json!({
        "schemaVersion": 2, "mediaType": "application/vnd.oci.image.index.v1+json",
        "manifests": manifests}))
    .unwrap();
    let ordered = candidates(&index).unwrap();
    assert_eq!(ordered.len(), MAX_REFERRERS);
    assert_eq!(
        ordered[0],
        format!("sha256:{:064x}", 99),
        "cosign's signature first"
    );
    let mut state = 0x2545_f491_4f6c_dd1d_u64;
    for _ in 0..20_000 {
        if let Ok(found) = candidates(&mutate(&index, &mut state)) {
            assert!(found.len() <= MAX_REFERRERS);
            assert!(
                found
                    .iter()
                    .all(|d| crate::verify::registry::is_sha256_digest(d))
            );
        }
    }
}

/// `bytes` with the inclusion proof of its first log entry stating `size` as its tree size,
/// and without its signed entry timestamp unless `promise`.
fn with_proof_size(bytes: &[u8], size: u64, promise: bool) -> Vec<u8> {
    let mut json: serde_json::Value = serde_json::from_slice(bytes).unwrap();
    let entry = json
        .pointer_mut("/verificationMaterial/tlogEntries/0")
        .and_then(serde_json::Value::as_object_mut)
        .unwrap();
    if !promise {
        entry.remove("inclusionPromise");
    }
    entry.get_mut("inclusionProof").unwrap()["treeSize"] = size.to_string().into();
    serde_json::to_vec(&json).unwrap()
}

/// An inclusion proof counts only as a proof in the tree its checkpoint signs. A tree size one
/// off the real one shapes the same audit path, so the proof computed the signed root and
/// verified (the `bundle` fuzz target's finding): refused, with or without a signed entry
/// timestamp beside it, for keyless signatures and attestations of the public-good root and
/// for a key whose log is required, each still verifying with its own size.
#[test]
fn an_inclusion_proof_counts_only_for_the_tree_size_its_checkpoint_signs() {
    let attest = "github-attest-demo-provenance";
    let attest_digest = "sha256:49a3aa6075e0f49f82843e74b5baa614ad2a588e6675612bf108a0a008c5ac25";
    let attester = kubewarden_identity(
        Matcher::exact(
            "https://github.com/github/artifact-attestations-workflows/.github/workflows/attest.yml@09b495c3f12c7881b3cc17209a327792065c1a1d",
        ),
        Matcher::exact(GITHUB_ISSUER),
    );
    let mock_key = required(mock_root());
    let cases: [(Vec<u8>, &str, &NamedKey, u64); 3] = [
        (
            read("kubewarden-controller-v1.34.0-keyless/bundle.sigstore.json"),
            KUBEWARDEN_DIGEST,
            &kubewarden_signer(),
            1139201557,
        ),
        (
            read(&format!("{attest}/bundle.sigstore.json")),
            attest_digest,
            &attester,
            92601055,
        ),
        (
            read("made-with-sigstore-js/dsse-key-rekor.sigstore.json"),
            &digest(),
            &mock_key,
            1,
        ),
    ];
    for (bytes, digest, key, size) in &cases {
        let verify = |bytes: &[u8]| check_with(bytes, digest, &[key], &Predicate::Any);
        assert!(verify(bytes).is_ok(), "{}: as signed", key.identity());
        for promise in [true, false] {
            for other in [size - 1, size + 1, size * 2, 1 << 40] {
                let verdict = verify(&with_proof_size(bytes, other, promise));
                assert!(
                    matches!(verdict, Err(Rejection::NoLogEntry { .. })),
                    "{}: tree size {other} (promise kept: {promise}): {verdict:?}",
                    key.identity()
                );
            }
        }
    }
    let verdict = check(
        &with_proof_size(&cases[0].0, 1139201556, false),
        KUBEWARDEN_DIGEST,
        &[&kubewarden_signer()],
    );
    let Err(Rejection::NoLogEntry { why, .. }) = verdict else {
        panic!("{verdict:?}");
    };
    assert_eq!(
        why,
        "the inclusion proof of log entry 0 is for a tree of 1139201556 entries, and its \
         checkpoint signs a tree of 1139201557"
    );
}

mod limits;
