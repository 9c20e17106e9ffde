//! `verify-bundle`'s identity flags take the expressions a policy's `subjectRegExp` and
//! `issuerRegExp` take, through the same compiler: one that escapes its anchors is refused
//! before anything is verified (docs/contract.md §1, §8).

// A test crate: its helpers fail the test loudly by design.
#![allow(clippy::expect_used)]

use std::process::Command;

const DATA: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/data/bundles");
/// The digest the real cosign v3 bundle of kubewarden-controller v1.34.0 signs.
const SIGNED: &str = "sha256:c811d58de79c92f03214e63aa339484e488d694ae8a6283b5f3f17a9faf50172";
const GITHUB: &str = "https://token.actions.githubusercontent.com";

/// `verify-bundle` of the kubewarden bundle with `identity`: exit code and output.
fn verify(identity: &[&str]) -> (Option<i32>, String) {
    let bundle = format!("{DATA}/kubewarden-controller-v1.34.0-keyless/bundle.sigstore.json");
    let out = Command::new(env!("CARGO_BIN_EXE_image-policy"))
        .args(["verify-bundle", "--bundle", &bundle, "--digest", SIGNED])
        .args(identity)
        .output()
        .expect("runs");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.code(), text)
}

#[test]
fn an_expression_that_escapes_its_anchors_is_refused() {
    // Wrapped unchecked as `^(?:…)$`, each of these matched the bundle's subject, which is
    // another repository's: the bundle verified.
    for (subject, reason) in [
        ("https://github.com/other/x)|(.*", "unopened group"),
        (").*(", "unopened group"),
        ("https://github.com/other/(.*", "unclosed group"),
        (
            "https://github.com/other/\\",
            "incomplete escape sequence, reached end of pattern prematurely",
        ),
        ("[https://github.com/other/", "unclosed character class"),
    ] {
        let (code, out) = verify(&[
            "--certificate-identity-regexp",
            subject,
            "--certificate-oidc-issuer",
            GITHUB,
        ]);
        assert_eq!(code, Some(2), "{subject}: {out}");
        assert!(
            out.contains(&format!(
                "{subject:?} is not a regular expression ({reason})"
            )),
            "{subject}: {out}"
        );
    }
    let (code, out) = verify(&[
        "--certificate-identity-regexp",
        "https://github\\.com/kubewarden/.*",
        "--certificate-oidc-issuer-regexp",
        "https://accounts.google.com)|(.*",
    ]);
    assert_eq!(code, Some(2), "{out}");
    assert!(out.contains("--certificate-oidc-issuer"), "{out}");
    // Too large once compiled: refused, naming the limit.
    let (code, out) = verify(&[
        "--certificate-identity-regexp",
        "(?:\\w{100}){100}",
        "--certificate-oidc-issuer",
        GITHUB,
    ]);
    assert_eq!(code, Some(2), "{out}");
    assert!(out.contains("over the limit of 1048576 bytes"), "{out}");
    // The same subject written as a valid expression for another repository: not verified.
    let (code, out) = verify(&[
        "--certificate-identity-regexp",
        "https://github\\.com/other/.*",
        "--certificate-oidc-issuer",
        GITHUB,
    ]);
    assert_eq!(code, Some(1), "{out}");
    // And for its own: verified.
    let (code, out) = verify(&[
        "--certificate-identity-regexp",
        "https://github\\.com/kubewarden/.*",
        "--certificate-oidc-issuer",
        GITHUB,
    ]);
    assert_eq!(code, Some(0), "{out}");
}
