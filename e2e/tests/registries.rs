//! The same images, signed by the real cosign (v3.1.3, `hack/sigstore`) in every layout it
//! writes, on both registries the tests run: olareg, which answers the OCI 1.1 referrers API
//! as GHCR, ECR, ACR, Harbor and Quay do, and CNCF distribution 2.8, which has none (cosign
//! and the verifier then use the referrers tag schema). Through a real API server: each image
//! admitted with the key or identity that signed it and refused with any other, in the words
//! of docs/contract.md §2, and the registry requests each costs the operator the first time it
//! sees it, read from the registry's own log (#25). Multi-platform images are decided as
//! docs/contract.md §3 says: by the digest the image string names or its tag resolves to.

// A test crate: its helpers fail the test loudly by design.
#![allow(
    clippy::expect_used,
    clippy::unwrap_used,
    clippy::indexing_slicing,
    clippy::panic
)]

use std::time::Duration;

use image_policy_e2e::cluster::{
    WEBHOOK_NAME, install_crd, namespace, register_webhook, said, start_operator,
};
use image_policy_e2e::{Run, eventually, kubectl};
use image_policy_testsupport::cosign::Pusher;
use image_policy_testsupport::local_sigstore::LocalSigstore;
use image_policy_testsupport::producers::{Cosign, Format, Mode, Signing, identity_token};
use image_policy_testsupport::registry::{Registry, RegistryKind, RegistryOptions};
use image_policy_testsupport::sigstore_js::Mocks;

const ROOT_CONFIG_MAP: &str = "sigstore-registries-root";
const GITHUB: &str = "https://token.actions.githubusercontent.com";
const RELEASE: &str = "https://github.com/acme/app/.github/workflows/release.yml@refs/tags/v1.0.0";
const OTHER: &str = "https://github.com/acme/other/.github/workflows/release.yml@refs/tags/v1.0.0";
const SLSA: &str = "https://slsa.dev/provenance/v1";

/// How an image of the matrix was made.
#[derive(Clone, Copy, Debug)]
enum Made {
    /// `cosign sign --key` in this format and referrers mode.
    Key(Format, Mode),
    /// `cosign sign --identity-token` (a bundle: cosign v3.1.3 logs no legacy signature in
    /// Rekor v2), logged in the real Rekor v2 and timestamped.
    Keyless,
    /// `cosign attest --key` in this format, and no signature.
    Attested(Format),
    /// Pushed, and nothing else.
    Unsigned,
}

/// One single-platform image: its repository, how it was made, and the registry requests its
/// first admission costs the operator on olareg and on distribution.
struct Case {
    repository: &'static str,
    made: Made,
    olareg: usize,
    distribution: usize,
}

/// In the order they are first admitted: the operator learns once that distribution has no
/// referrers API (the API's 404, at the first image looked for among referrers), and never
/// asks again (docs/contract.md §3), so only that image pays for it.
const CASES: [Case; 8] = [
    // The `.sig` manifest and its payload blob.
    Case {
        repository: "key/legacy-tag",
        made: Made::Key(Format::Legacy, Mode::Legacy),
        olareg: 2,
        distribution: 2,
    },
    // The `.sig` 404, the referrers (the API's list on olareg; the API's 404, once, and the
    // tag schema's index on distribution), the referrer's manifest, its payload.
    Case {
        repository: "key/legacy-referrer",
        made: Made::Key(Format::Legacy, Mode::Oci11),
        olareg: 4,
        distribution: 5,
    },
    // The same with a bundle blob, the API's 404 no longer asked.
    Case {
        repository: "key/bundle-tag",
        made: Made::Key(Format::Bundle, Mode::Legacy),
        olareg: 4,
        distribution: 4,
    },
    Case {
        repository: "key/bundle-referrer",
        made: Made::Key(Format::Bundle, Mode::Oci11),
        olareg: 4,
        distribution: 4,
    },
    // The log entry and timestamp are in the bundle: nothing more is fetched.
    Case {
        repository: "keyless/bundle",
        made: Made::Keyless,
        olareg: 4,
        distribution: 4,
    },
    // The `.sig` 404 and an empty list of referrers: the `.att` tag is not a place
    // signatures are looked for.
    Case {
        repository: "key/attested-att",
        made: Made::Attested(Format::Legacy),
        olareg: 2,
        distribution: 2,
    },
    // The bundle is read and verified, to say what it is.
    Case {
        repository: "key/attested-bundle",
        made: Made::Attested(Format::Bundle),
        olareg: 4,
        distribution: 4,
    },
    Case {
        repository: "key/unsigned",
        made: Made::Unsigned,
        olareg: 2,
        distribution: 2,
    },
];

fn dry_run(name: &str, image: &str) -> Run {
    kubectl(
        &[
            "run",
            name,
            &format!("--image={image}"),
            "--restart=Never",
            "--dry-run=server",
        ],
        None,
    )
}

fn admitted(name: &str) -> String {
    format!("pod/{name} created (server dry run)\n")
}

/// What kubectl prints for a refusal: the original's sentence, and the one that says why.
fn denied(image: &str, why: Option<&str>) -> String {
    let message = match why {
        Some(why) => format!("The image: {image} is not signed. {why}"),
        None => format!("The image: {image} is not signed."),
    };
    format!(
        "Error from server ({message}): admission webhook \"{WEBHOOK_NAME}\" denied the request: {message}\n"
    )
}

fn not_found(digest: &str) -> String {
    let hex = digest.trim_start_matches("sha256:");
    format!(
        "No signature was found for {digest}: none at its cosign signature tag sha256-{hex}.sig, nor among its OCI referrers (the referrers API or the tag sha256-{hex})."
    )
}

/// Why a signature of `made` is refused by the policy that trusts other signers.
fn other_signer(made: Made) -> Option<String> {
    match made {
        Made::Key(Format::Legacy, _) => None,
        Made::Key(Format::Bundle, _) => {
            Some("Its Sigstore bundle is signed by none of the keys of the policy.".into())
        }
        Made::Keyless => Some(format!(
            "Its signature's certificate names the subject {RELEASE} of the issuer {GITHUB}, which no identity of the policy matches."
        )),
        Made::Attested(_) | Made::Unsigned => unreachable!("not signed"),
    }
}

fn indented(pem: &str) -> String {
    pem.lines().map(|l| format!("        {l}\n")).collect()
}

/// The policy: `key/*` by the key `key_pem`, `keyless/*` by the release workflow `subject`.
fn policy(host: &str, key_pem: &str, subject: &str) -> String {
    format!(
        concat!(
            "apiVersion: signing.apps.tanzu.vmware.com/v1beta1\nkind: ClusterImagePolicy\n",
            "metadata:\n  name: image-policy\nspec:\n  verification:\n",
            "    exclude:\n      resources:\n        namespaces: [kube-system]\n",
            "    trustedRoots:\n    - name: local\n      configMapRef:\n        name: {root}\n",
            "    keys:\n",
            "    - name: release\n      publicKey: |\n{pem}",
            "    - name: workflow\n      trustedRoot: local\n      keyless:\n",
            "        issuer: {github}\n        subject: {subject}\n",
            "    images:\n",
            "    - namePattern: {host}/key/*\n      keys: [{{name: release}}]\n",
            "    - namePattern: {host}/keyless/*\n      keys: [{{name: workflow}}]\n",
        ),
        root = ROOT_CONFIG_MAP,
        pem = indented(key_pem),
        github = GITHUB,
        subject = subject,
        host = host,
    )
}

/// A multi-platform image (an index of linux/amd64 and linux/arm64) signed in `format`.
struct Platforms {
    repository: String,
    format: Format,
    index: String,
    platforms: Vec<String>,
    /// Signed at the index digest (`cosign sign IMAGE@<index>`), or each platform at its own.
    at_index: bool,
}

#[tokio::test(flavor = "multi_thread")]
async fn real_cosign_signatures_on_olareg_admit_their_signer_only_at_the_least_cost() {
    signatures_on(RegistryKind::Olareg).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn real_cosign_signatures_on_distribution_admit_their_signer_only_at_the_least_cost() {
    signatures_on(RegistryKind::Distribution).await;
}

async fn signatures_on(kind: RegistryKind) {
    let registry = Registry::start(RegistryOptions {
        kind,
        ..RegistryOptions::default()
    });
    let pusher = Pusher::new(&registry);
    let cosign = Cosign::new(&registry);
    let host = registry.host();
    let mocks = Mocks::start();
    let sigstore = LocalSigstore::start_with_fulcio(&mocks);
    let (key, other) = (cosign.generate_key(), cosign.generate_key());
    let at = |repository: &str, digest: &str| format!("{host}/{repository}@{digest}");

    let mut digests = Vec::new();
    for case in &CASES {
        let digest = pusher.push_image(case.repository, "v1").await;
        let image = at(case.repository, &digest);
        match case.made {
            Made::Key(format, mode) => {
                cosign.sign(&image, &key, Signing::new(format, mode));
            }
            Made::Keyless => {
                let token = identity_token(RELEASE, GITHUB);
                cosign.sign_keyless(&image, &token, Format::Bundle, &sigstore);
            }
            Made::Attested(format) => {
                let predicate = serde_json::json!({
                    "buildDefinition": {"buildType": "https://example.com/build/v1"},
                });
                let how = Signing::new(format, Mode::Legacy);
                cosign.attest(&image, &key, "slsaprovenance1", &predicate, how);
            }
            Made::Unsigned => {}
        }
        digests.push(digest);
    }
    let mut indexes = Vec::new();
    for format in [Format::Legacy, Format::Bundle] {
        for at_index in [true, false] {
            let which = if at_index { "index" } else { "platforms" };
            let repository = format!("key/{which}-{format:?}").to_lowercase();
            let (index, platforms) = pusher.push_index(&repository, "v1").await;
            let signed = if at_index {
                vec![index.clone()]
            } else {
                platforms.clone()
            };
            for digest in &signed {
                let how = Signing::new(format, Mode::Legacy);
                cosign.sign(&at(&repository, digest), &key, how);
            }
            indexes.push(Platforms {
                repository,
                format,
                index,
                platforms,
                at_index,
            });
        }
    }

    install_crd();
    for ns in ["default", "kube-system", "image-policy-system"] {
        namespace(ns);
    }
    let _ = kubectl(&["delete", "clusterimagepolicy", "--all"], None);
    let system = ["-n", "image-policy-system"];
    let _ = kubectl(
        &[
            &system[..],
            &["delete", "configmap", ROOT_CONFIG_MAP, "--ignore-not-found"],
        ]
        .concat(),
        None,
    );
    let from_file = format!(
        "--from-file=trusted_root.json={}",
        sigstore.trusted_root_path().display()
    );
    kubectl(
        &[
            &system[..],
            &["create", "configmap", ROOT_CONFIG_MAP, &from_file],
        ]
        .concat(),
        None,
    )
    .expect_ok("the trusted root's ConfigMap");
    let dir = tempfile::tempdir().expect("dir");
    let (operator, port) = start_operator(dir.path(), &registry.ca_path(), false);
    register_webhook(port);

    // The signers of every image: the key and the release workflow. An unmatched image
    // (which costs no registry request) shows when the policy is in force.
    kubectl(
        &["apply", "-f", "-"],
        Some(&policy(&host, &key.public_pem, RELEASE)),
    )
    .expect_ok("apply the policy");
    eventually(Duration::from_secs(30), "the policy is enforced", || {
        let run = dry_run("unmatched", "busybox");
        run.stderr
            .contains("Could not verify against any image policies")
            .then_some(())
    });

    registry.clear_requests();
    let mut costs = Vec::new();
    for (case, digest) in CASES.iter().zip(&digests) {
        let image = at(case.repository, digest);
        let run = dry_run("matrix", &image);
        let requests = registry.requests();
        match case.made {
            Made::Key(..) | Made::Keyless => {
                assert_eq!(said(&run), admitted("matrix"), "{kind:?}, {image}");
            }
            Made::Attested(Format::Bundle) => {
                let why = format!(
                    "It carries only attestations ({SLSA}), and an attestation is not a signature."
                );
                assert_eq!(run.stderr, denied(&image, Some(&why)), "{kind:?}");
            }
            Made::Attested(Format::Legacy) | Made::Unsigned => {
                let why = not_found(digest);
                assert_eq!(run.stderr, denied(&image, Some(&why)), "{kind:?}");
            }
        }
        let expected = match kind {
            RegistryKind::Olareg => case.olareg,
            RegistryKind::Distribution => case.distribution,
        };
        let lines: Vec<String> = requests
            .iter()
            .map(|r| format!("{} {} {}", r.method, r.path, r.status))
            .collect();
        assert_eq!(
            requests.len(),
            expected,
            "{kind:?}, {}: {lines:#?}",
            case.repository
        );
        costs.push(format!("{}: {}", case.repository, requests.len()));
        registry.clear_requests();

        // By tag: decided alike, for the tag's HEAD alone (the digest's verdict is cached).
        let by_tag = format!("{host}/{}:v1", case.repository);
        let run = dry_run("matrix-tag", &by_tag);
        assert_eq!(
            run.ok,
            matches!(case.made, Made::Key(..) | Made::Keyless),
            "{kind:?}, {by_tag}: {}",
            said(&run)
        );
        assert_eq!(registry.requests().len(), 1, "{kind:?}, {by_tag}");
        registry.clear_requests();
    }

    // docs/contract.md §3, multi-platform images: the index is run by its tag, a platform by
    // its own digest, and each is admitted only by a signature of that digest.
    for image in &indexes {
        let tag = format!("{host}/{}:v1", image.repository);
        let run = dry_run("index", &tag);
        if image.at_index {
            assert_eq!(said(&run), admitted("index"), "{kind:?}, {tag}");
        } else {
            assert_eq!(
                run.stderr,
                denied(&tag, Some(&not_found(&image.index))),
                "{kind:?}"
            );
        }
        // The tag's HEAD, then as for any digest: the `.sig` manifest and its payload, or
        // the `.sig` 404, the referrers, the referrer's manifest and its bundle; unsigned,
        // the `.sig` 404 and the referrers (the API already known on either registry).
        let cost = registry.requests().len();
        let expected = match (image.at_index, image.format) {
            (true, Format::Legacy) => 3,
            (true, Format::Bundle) => 5,
            (false, _) => 3,
        };
        assert_eq!(cost, expected, "{kind:?}, {tag}");
        let signed = if image.at_index {
            "signed at the index"
        } else {
            "signed per platform"
        };
        costs.push(format!("{} by tag ({signed}): {cost}", image.repository));
        registry.clear_requests();
        for platform in &image.platforms {
            let by_digest = at(&image.repository, platform);
            let run = dry_run("platform", &by_digest);
            if image.at_index {
                assert_eq!(
                    run.stderr,
                    denied(&by_digest, Some(&not_found(platform))),
                    "{kind:?}"
                );
            } else {
                assert_eq!(said(&run), admitted("platform"), "{kind:?}, {by_digest}");
            }
        }
        registry.clear_requests();
    }
    for cost in &costs {
        eprintln!("cold requests, {kind:?}, {cost}");
    }

    // Another key and another workflow: every signature is refused, as one that does not
    // verify, with the sentence of its layout.
    kubectl(
        &["apply", "-f", "-"],
        Some(&policy(&host, &other.public_pem, OTHER)),
    )
    .expect_ok("apply the policy of other signers");
    let first = at(CASES[0].repository, &digests[0]);
    eventually(Duration::from_secs(30), "the other key is enforced", || {
        (!dry_run("matrix", &first).ok).then_some(())
    });
    for (case, digest) in CASES.iter().zip(&digests) {
        if matches!(case.made, Made::Attested(_) | Made::Unsigned) {
            continue;
        }
        let image = at(case.repository, digest);
        let run = dry_run("matrix", &image);
        let why = other_signer(case.made);
        assert_eq!(run.stderr, denied(&image, why.as_deref()), "{kind:?}");
    }
    for image in &indexes {
        let signed: Vec<String> = if image.at_index {
            vec![format!("{host}/{}:v1", image.repository)]
        } else {
            image
                .platforms
                .iter()
                .map(|platform| at(&image.repository, platform))
                .collect()
        };
        for reference in signed {
            let run = dry_run("index", &reference);
            let why = other_signer(Made::Key(image.format, Mode::Legacy));
            assert_eq!(run.stderr, denied(&reference, why.as_deref()), "{kind:?}");
        }
    }

    let _ = kubectl(&["delete", "clusterimagepolicy", "image-policy"], None);
    let _ = kubectl(
        &[
            &system[..],
            &["delete", "configmap", ROOT_CONFIG_MAP, "--ignore-not-found"],
        ]
        .concat(),
        None,
    );
    drop(operator);
    drop(sigstore);
}
