//! Keyless signatures through a real API server (#12, #25): a policy whose keys are workload
//! identities, with a trusted root from a ConfigMap, and images in the real registry signed
//! keyless in both layouts, kubectl printing what the webhook decided. cosign v3's bundles are
//! signed by the real cosign (v3.1.3) with a certificate of `@sigstore/mock`'s Fulcio, logged
//! in a real Rekor v2 and timestamped by a real timestamp authority
//! (`testsupport::local_sigstore`). cosign v1/v2's legacy layer is laid out by the imitation
//! from `@sigstore/sign`'s signature and Rekor v1 entry of the mock: cosign v3.1.3 writes no
//! keyless legacy layer with a log entry here (Rekor v2 takes none, and it panics on the mock
//! Rekor v1's answer). One trusted root names them all, as Sigstore's public-good root names
//! its Rekor v1 and v2.

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
use image_policy_e2e::{eventually, image_policy, kubectl};
use image_policy_testsupport::cosign::Pusher;
use image_policy_testsupport::local_sigstore::LocalSigstore;
use image_policy_testsupport::producers::{Cosign, Format, identity_token};
use image_policy_testsupport::registry::{Registry, RegistryOptions};
use image_policy_testsupport::sigstore_js::{self, Layout, Mocks};

const ROOT_CONFIG_MAP: &str = "sigstore-keyless-root";
const GITHUB: &str = "https://token.actions.githubusercontent.com";
const RELEASE: &str = "https://github.com/acme/app/.github/workflows/release.yml@refs/tags/v1.0.0";
const NIGHTLY: &str = "https://github.com/acme/app/.github/workflows/nightly.yml@refs/heads/main";
const TOOLS: &str = "https://github.com/acme/tools/.github/workflows/release.yml@refs/tags/v2.1.0";

fn run_pod(name: &str, image: &str) -> image_policy_e2e::Run {
    kubectl(
        &["run", name, &format!("--image={image}"), "--restart=Never"],
        None,
    )
}

fn denied(image: &str, why: &str) -> String {
    format!(
        "Error from server (The image: {image} is not signed. {why}): admission webhook \"{WEBHOOK_NAME}\" denied the request: The image: {image} is not signed. {why}\n"
    )
}

#[tokio::test(flavor = "multi_thread")]
async fn keyless_identities_admit_what_their_workflows_signed() {
    let registry = Registry::start(RegistryOptions::default());
    let pusher = Pusher::new(&registry);
    let cosign = Cosign::new(&registry);
    let host = registry.host();
    let mocks = Mocks::start();
    let sigstore = LocalSigstore::start_with_fulcio(&mocks);
    let keyless = |repository: &'static str, subject: &'static str, layout: Layout| {
        let (pusher, cosign, mocks, sigstore) = (&pusher, &cosign, &mocks, &sigstore);
        async move {
            let digest = pusher.push_image(repository, "v1").await;
            match layout {
                Layout::Bundle => {
                    let image = format!("{}/{repository}@{digest}", pusher.host());
                    let token = identity_token(subject, GITHUB);
                    cosign.sign_keyless(&image, &token, Format::Bundle, sigstore);
                }
                // The imitation: see the module's comment.
                Layout::Legacy => {
                    sigstore_js::sign_keyless(
                        pusher,
                        repository,
                        &digest,
                        mocks,
                        (subject, GITHUB),
                        layout,
                        |_| {},
                    )
                    .await;
                }
            }
            digest
        }
    };
    let bundle = keyless("app/bundle", RELEASE, Layout::Bundle).await;
    keyless("app/legacy", RELEASE, Layout::Legacy).await;
    keyless("app/nightly", NIGHTLY, Layout::Bundle).await;
    keyless("tools/cli", TOOLS, Layout::Legacy).await;
    keyless("tools/lib", NIGHTLY, Layout::Legacy).await;

    install_crd();
    for ns in ["default", "kube-system", "image-policy-system"] {
        namespace(ns);
    }
    let _ = kubectl(&["delete", "clusterimagepolicy", "--all"], None);
    let _ = kubectl(
        &[
            "-n",
            "image-policy-system",
            "delete",
            "configmap",
            ROOT_CONFIG_MAP,
            "--ignore-not-found",
        ],
        None,
    );
    kubectl(
        &[
            "-n",
            "image-policy-system",
            "create",
            "configmap",
            ROOT_CONFIG_MAP,
            &format!(
                "--from-file=trusted_root.json={}",
                sigstore.trusted_root_path().display()
            ),
        ],
        None,
    )
    .expect_ok("the trusted root's ConfigMap");

    let dir = tempfile::tempdir().expect("dir");
    let (operator, port) = start_operator(dir.path(), &registry.ca_path(), false);
    register_webhook(port);
    // The release workflow of acme/app exactly; any release tag of any acme repository.
    let policy = format!(
        concat!(
            "apiVersion: signing.apps.tanzu.vmware.com/v1beta1\nkind: ClusterImagePolicy\n",
            "metadata:\n  name: image-policy\nspec:\n  verification:\n",
            "    exclude:\n      resources:\n        namespaces: [kube-system]\n",
            "    trustedRoots:\n    - name: local\n      configMapRef:\n        name: {root}\n",
            "    keys:\n",
            "    - name: app-release\n      trustedRoot: local\n      keyless:\n",
            "        issuer: {github}\n        subject: {release}\n",
            "    - name: acme-releases\n      trustedRoot: local\n      keyless:\n",
            "        issuer: {github}\n",
            "        subjectRegExp: 'https://github\\.com/acme/[^/]+/\\.github/workflows/release\\.yml@refs/tags/v.*'\n",
            "    images:\n",
            "    - namePattern: {host}/app/*\n      keys: [{{name: app-release}}]\n",
            "    - namePattern: {host}/tools/*\n      keys: [{{name: acme-releases}}]\n",
        ),
        root = ROOT_CONFIG_MAP,
        github = GITHUB,
        release = RELEASE,
        host = host,
    );
    kubectl(&["apply", "-f", "-"], Some(&policy)).expect_ok("apply the policy");
    let status = |path: &str| {
        kubectl(
            &[
                "get",
                "clusterimagepolicy",
                "image-policy",
                "-o",
                &format!("jsonpath={{{path}}}"),
            ],
            None,
        )
        .stdout
    };
    eventually(Duration::from_secs(30), "the policy is active", || {
        (status(".status.conditions[0].reason") == "PolicyActive").then_some(())
    });
    // Identities are counted with keys.
    assert_eq!(status(".status.keys"), "2");

    let image = format!("{host}/app/bundle:v1");
    let run = eventually(Duration::from_secs(30), "the policy is enforced", || {
        let run = run_pod("keyless-bundle", &image);
        (!run.stderr.contains("not found. Image policy enforcement")).then_some(run)
    });
    assert_eq!(said(&run), "pod/keyless-bundle created\n");
    for (pod, image) in [
        ("keyless-digest", format!("{host}/app/bundle@{bundle}")),
        ("keyless-legacy", format!("{host}/app/legacy:v1")),
        ("keyless-regexp", format!("{host}/tools/cli:v1")),
    ] {
        assert_eq!(said(&run_pod(pod, &image)), format!("pod/{pod} created\n"));
    }
    // Signed, by a certificate of the trusted Fulcio, for another workflow: refused, naming
    // the certificate's identity.
    for (pod, image) in [
        ("keyless-nightly", format!("{host}/app/nightly:v1")),
        ("keyless-tools-nightly", format!("{host}/tools/lib:v1")),
    ] {
        let run = run_pod(pod, &image);
        assert!(!run.ok, "{pod}: {}", said(&run));
        assert_eq!(
            run.stderr,
            denied(
                &image,
                &format!(
                    "Its signature's certificate names the subject {NIGHTLY} of the issuer {GITHUB}, which no identity of the policy matches."
                )
            ),
            "{pod}"
        );
    }

    // image-policy audit of the same policy file reads the trusted root from its ConfigMap,
    // as the operator does: the keyless Pods just admitted are not refused, and the two
    // refused ones were never created.
    let file = dir.path().join("keyless-policy.yaml");
    std::fs::write(&file, &policy).expect("policy file");
    let audit = image_policy(&[
        "audit",
        "--policy",
        file.to_str().unwrap(),
        "--ca-file",
        registry.ca_path().to_str().unwrap(),
        "-o",
        "json",
    ]);
    let report: serde_json::Value =
        serde_json::from_str(&audit.stdout).unwrap_or_else(|e| panic!("{e}: {}", said(&audit)));
    let refused: Vec<&str> = report["refused"]
        .as_array()
        .expect("refused")
        .iter()
        .filter_map(|r| r["name"].as_str())
        .collect();
    for pod in [
        "keyless-bundle",
        "keyless-digest",
        "keyless-legacy",
        "keyless-regexp",
    ] {
        assert!(!refused.contains(&pod), "{pod} refused: {}", said(&audit));
    }
    assert!(
        report["workloads"].as_u64().unwrap() >= 4,
        "{}",
        said(&audit)
    );

    // The trusted root gone: the identities verify nothing, and the status says so.
    kubectl(
        &[
            "-n",
            "image-policy-system",
            "delete",
            "configmap",
            ROOT_CONFIG_MAP,
        ],
        None,
    )
    .expect_ok("delete the trusted root");
    eventually(Duration::from_secs(30), "the status names the root", || {
        (status(".status.conditions[0].reason") == "TrustedRootUnavailable").then_some(())
    });
    let run = run_pod("keyless-gone", &image);
    assert!(!run.ok, "{}", said(&run));
    assert!(
        run.stderr
            .contains("The trusted root local that its key requires cannot be used"),
        "{}",
        said(&run)
    );

    for pod in [
        "keyless-bundle",
        "keyless-digest",
        "keyless-legacy",
        "keyless-regexp",
    ] {
        let _ = kubectl(&["delete", "pod", pod, "--wait=false"], None);
    }
    let _ = kubectl(&["delete", "clusterimagepolicy", "image-policy"], None);
    drop(operator);
    drop(sigstore);
}
