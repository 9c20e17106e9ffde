//! Warn mode through a real API server (#14): with `spec.verification.mode: Warn`, an
//! unsigned image is admitted with kubectl's `Warning:` line carrying the denial's words, a
//! Deployment's Pods are created by kube-controller-manager through admission (no kubelet:
//! they stay Pending), and nothing unverified is pinned; the CRD refuses an unknown mode; and
//! once the policy says Enforce again, new Pods are refused, those of the Deployment too.

// A test crate: its helpers fail the test loudly by design.
#![allow(
    clippy::expect_used,
    clippy::unwrap_used,
    clippy::indexing_slicing,
    clippy::panic
)]

use std::time::Duration;

use image_policy_e2e::cluster::{
    install_crd, jsonpath, namespace, pem_of, policy_yaml, register_pin_webhook, register_webhook,
    said, start_operator, unregister_webhooks, with_mode,
};
use image_policy_e2e::{eventually, kubectl};
use image_policy_testsupport::cosign::Pusher;
use image_policy_testsupport::registry::{Registry, RegistryOptions};
use sigstore::crypto::SigningScheme;

/// The sentence Warn mode adds after the denial's words.
const WARN_MODE: &str = "Container will be created as the image policy is in Warn mode.";

#[tokio::test(flavor = "multi_thread")]
async fn warn_admits_with_the_denials_words_and_enforce_refuses_again() {
    let registry = Registry::start(RegistryOptions::default());
    let pusher = Pusher::new(&registry);
    let host = registry.host();
    let signer = SigningScheme::ECDSA_P256_SHA256_ASN1
        .create_signer()
        .unwrap();
    pusher.push_image("demo/unsigned", "v1").await;

    install_crd();
    for ns in ["default", "kube-system", "excluded", "image-policy-system"] {
        namespace(ns);
    }
    let _ = kubectl(&["delete", "clusterimagepolicy", "--all"], None);
    let _ = kubectl(
        &["delete", "deployment", "warned", "--ignore-not-found"],
        None,
    );
    for pod in ["warn-run", "warn-enforced"] {
        let _ = kubectl(&["delete", "pod", pod, "--ignore-not-found"], None);
    }
    let dir = tempfile::tempdir().expect("dir");
    let (operator, port) = start_operator(dir.path(), &registry.ca_path(), false);
    register_webhook(port);
    register_pin_webhook(port);
    let enforce = policy_yaml("image-policy", &host, &[("k", &pem_of(&signer))], &["k"]);

    // The schema refuses a mode that is neither Enforce nor Warn, before any webhook.
    let audit = kubectl(&["apply", "-f", "-"], Some(&with_mode(&enforce, "Audit")));
    assert!(!audit.ok, "{}", said(&audit));
    assert!(
        audit.stderr.contains("mode") && audit.stderr.contains("Audit"),
        "{}",
        said(&audit)
    );

    let warn = with_mode(&enforce, "Warn");
    kubectl(&["apply", "-f", "-"], Some(&warn)).expect_ok("apply the policy in Warn");
    let message = eventually(Duration::from_secs(30), "the Ready message", || {
        let message = jsonpath(
            &["get", "clusterimagepolicy", "image-policy"],
            "{.status.conditions[?(@.type==\"Ready\")].message}",
        );
        message.contains("Warn mode").then_some(message)
    });
    assert_eq!(
        message,
        "Enforcing 1 key and 1 pattern; Warn mode (a refusal is admitted with a warning) for every image"
    );

    // kubectl run: created, and kubectl prints the denial's words as a warning.
    let unsigned = format!("{host}/demo/unsigned:v1");
    let denial = format!("The image: {unsigned} is not signed. No signature was found for sha256:");
    let run = eventually(Duration::from_secs(30), "the policy is in force", || {
        let run = kubectl(
            &[
                "run",
                "warn-run",
                &format!("--image={unsigned}"),
                "--restart=Never",
            ],
            None,
        );
        (!run.stderr.contains("not found. Image policy enforcement")).then_some(run)
    });
    assert!(run.ok, "{}", said(&run));
    assert!(
        run.stderr.contains(&format!("Warning: {denial}")) && run.stderr.contains(WARN_MODE),
        "{}",
        said(&run)
    );
    assert_eq!(run.stdout, "pod/warn-run created\n");
    // Not verified, so not pinned: the image is as written.
    assert_eq!(
        jsonpath(&["get", "pod", "warn-run"], "{.spec.containers[0].image}"),
        unsigned
    );

    // A Deployment: kube-controller-manager creates its Pod through admission.
    let created = kubectl(
        &[
            "create",
            "deployment",
            "warned",
            &format!("--image={unsigned}"),
        ],
        None,
    );
    assert!(created.ok, "{}", said(&created));
    assert!(created.stderr.contains(WARN_MODE), "{}", said(&created));
    let pods = eventually(Duration::from_secs(60), "the deployment's pod", || {
        let images = jsonpath(
            &["get", "pods", "-l", "app=warned"],
            "{.items[*].spec.containers[0].image}",
        );
        (!images.is_empty()).then_some(images)
    });
    assert_eq!(pods, unsigned);

    // Enforce again (the mode removed: what a policy without one means).
    kubectl(&["apply", "-f", "-"], Some(&enforce)).expect_ok("apply the policy in Enforce");
    let refused = eventually(Duration::from_secs(30), "Enforce is in force", || {
        let run = kubectl(
            &[
                "run",
                "warn-enforced",
                &format!("--image={unsigned}"),
                "--restart=Never",
            ],
            None,
        );
        if run.ok {
            let _ = kubectl(&["delete", "pod", "warn-enforced", "--wait=false"], None);
            return None;
        }
        Some(run)
    });
    assert!(
        refused.stderr.contains(&format!(
            "admission webhook \"image-policy-webhook.signing.apps.tanzu.com\" denied the request: {denial}"
        )) && !refused.stderr.contains(WARN_MODE),
        "{}",
        said(&refused)
    );
    assert_eq!(
        jsonpath(
            &["get", "clusterimagepolicy", "image-policy"],
            "{.status.conditions[?(@.type==\"Ready\")].message}",
        ),
        "Enforcing 1 key and 1 pattern"
    );

    // A new Pod of the Deployment is refused too: its ReplicaSet says why, and the Pod
    // admitted under Warn stays the only one.
    kubectl(&["scale", "deployment", "warned", "--replicas=2"], None).expect_ok("scale up");
    let failure = eventually(Duration::from_secs(60), "the replica failure", || {
        let failure = jsonpath(
            &["get", "replicasets", "-l", "app=warned"],
            "{.items[*].status.conditions[?(@.type==\"ReplicaFailure\")].message}",
        );
        (!failure.is_empty()).then_some(failure)
    });
    assert!(failure.contains(&denial), "{failure}");
    assert!(!failure.contains(WARN_MODE), "{failure}");
    let pods = jsonpath(
        &["get", "pods", "-l", "app=warned"],
        "{.items[*].metadata.name}",
    );
    assert_eq!(pods.split_whitespace().count(), 1, "{pods}");

    let _ = kubectl(&["delete", "deployment", "warned"], None);
    let _ = kubectl(&["delete", "pod", "warn-run", "--wait=false"], None);
    let _ = kubectl(&["delete", "clusterimagepolicy", "image-policy"], None);
    unregister_webhooks();
    drop(operator);
}
