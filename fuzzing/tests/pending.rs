//! Findings in code this crate's author did not own when they were found: each test states
//! the fix expected, and is ignored until it is made (`cargo test -p image-policy-fuzzing
//! --test pending -- --ignored` shows them failing).

// A test crate: it fails loudly by design.
#![allow(clippy::expect_used)]

use image_policy::policy::ImageName;
use image_policy::verify::DockerConfig;

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
