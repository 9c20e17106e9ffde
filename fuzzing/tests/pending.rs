//! Findings in code this crate's author did not own when they were found: each test states
//! the fix expected, and is ignored until it is made (`cargo test -p image-policy-fuzzing
//! --test pending -- --ignored` shows them failing).

// A test crate: it fails loudly by design.
#![allow(clippy::expect_used)]

use image_policy::policy::{Identity, ImageName, Matcher, NamedKey, TrustRoot};
use image_policy::verify::DockerConfig;
use image_policy::verify::bundle::check;
use serde_json::Value;

/// A pull secret's registry key written as another spelling of the image's IP address: the
/// kubelet uses it for an image written that way, and the operator looks credentials up by
/// the image's registry as `policy::hosts` writes it (`[::1]:5000`), so the key must be read
/// the same way (`verify/credentials/key.rs`, `Host::parse`). Today the lookup finds nothing
/// and the image is checked without credentials: a denial (fail closed), not a bypass.
#[test]
#[ignore = "finding: verify/credentials/key.rs compares IP literals of pull secret keys as text"]
fn a_pull_secret_for_an_ip_address_applies_to_every_spelling_of_it() {
    for (key, image) in [
        ("[0:0::1]:5000", "[0:0::1]:5000/app:v1"),
        ("[::FFFF:7F00:1]:5000", "[::ffff:7f00:1]:5000/app:v1"),
        ("127.1:5000", "127.1:5000/app:v1"),
    ] {
        let json = format!(r#"{{"auths": {{"{key}": {{"auth": "dTpwdw=="}}}}}}"#);
        let config = DockerConfig::from_json(json.as_bytes()).expect("config");
        let image = ImageName::parse(image).expect("image");
        assert_eq!(
            config.lookup(image.registry(), image.repository()).len(),
            1,
            "{key} for {image:?}"
        );
    }
}

/// An inclusion proof whose tree size is not the size its checkpoint signs: sigstore-verify
/// 0.15 compares the proof's root hash with the checkpoint's but not its tree size, so a size
/// off by one that shapes the same audit path (here 1139201556 and 1139201558 for the real
/// 1139201557) verifies, with or without the signed entry timestamp. Not a forgery (the root
/// hash is the signed one, and the path proves the entry in that tree), but a proof that does
/// not say what its checkpoint signs should not count. Found by the `bundle` fuzz target. The fix, in `verify/bundle.rs` (or upstream): refuse a log entry
/// whose `inclusionProof.treeSize` differs from the size in its checkpoint's text.
#[test]
#[ignore = "finding: an inclusion proof's tree size is not compared with its checkpoint's"]
fn an_inclusion_proof_must_state_the_size_its_checkpoint_signs() {
    let text = include_str!(
        "../../operator/tests/data/bundles/kubewarden-controller-v1.34.0-keyless/bundle.sigstore.json"
    );
    let identity = NamedKey::keyless(
        "kubewarden",
        Identity::new(
            Matcher::exact(
                "https://github.com/kubewarden/kubewarden-controller/.github/workflows/release.yml@refs/tags/v1.34.0",
            ),
            Matcher::exact("https://token.actions.githubusercontent.com"),
            TrustRoot::public_good(),
        ),
    );
    let digest = "sha256:c811d58de79c92f03214e63aa339484e488d694ae8a6283b5f3f17a9faf50172";
    for size in ["1139201556", "1139201558"] {
        for keep_promise in [true, false] {
            let mut bundle: Value = serde_json::from_str(text).expect("bundle");
            let entry = bundle
                .pointer_mut("/verificationMaterial/tlogEntries/0")
                .and_then(Value::as_object_mut)
                .expect("entry");
            if !keep_promise {
                entry.remove("inclusionPromise");
            }
            if let Some(proof) = entry.get_mut("inclusionProof") {
                proof["treeSize"] = Value::from(size);
            }
            let bytes = serde_json::to_vec(&bundle).expect("bytes");
            let verdict = check(&bytes, digest, &[&identity]);
            assert!(
                verdict.is_err(),
                "tree size {size} (promise kept: {keep_promise}) verified"
            );
        }
    }
}
