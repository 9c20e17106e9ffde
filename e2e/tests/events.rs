//! Events through a real API server (#14): a Deployment with an unsigned image under Warn has
//! its Pods created by kube-controller-manager through admission (no kubelet: they stay
//! Pending), and `kubectl describe` of the policy and of the ReplicaSet shows an
//! `AdmittedInWarnMode` Event with the denial's words; once the policy says Enforce, the
//! Deployment's new Pod is refused, and both show a `Refused` Event with the denial's words.

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

/// The namespace of the Deployment, the test's own.
const NS: &str = "events-e2e";

/// The Events section of `kubectl describe KIND NAME` (in NS for a namespaced kind), once it
/// has a line with every one of `words`; printed, for the record of the run.
fn described(kind: &str, name: &str, words: &[&str]) -> String {
    let what = format!("kubectl describe {kind} {name} showing {words:?}");
    let events = eventually(Duration::from_secs(60), &what, || {
        let described = kubectl(&["describe", "-n", NS, kind, name], None);
        let text = said(&described);
        let events = text.split_once("Events:")?.1.to_owned();
        events
            .lines()
            .any(|line| words.iter().all(|w| line.contains(w)))
            .then_some(events)
    });
    eprintln!("kubectl describe {kind} {name}\nEvents:{events}");
    events
}

#[tokio::test(flavor = "multi_thread")]
async fn refusals_and_warn_mode_admissions_are_events_on_the_policy_and_the_replicaset() {
    let registry = Registry::start(RegistryOptions::default());
    let pusher = Pusher::new(&registry);
    let host = registry.host();
    let signer = SigningScheme::ECDSA_P256_SHA256_ASN1
        .create_signer()
        .unwrap();
    pusher.push_image("demo/unsigned", "v1").await;

    install_crd();
    for ns in [
        "default",
        "kube-system",
        "excluded",
        "image-policy-system",
        NS,
    ] {
        namespace(ns);
    }
    let _ = kubectl(&["delete", "clusterimagepolicy", "--all"], None);
    let _ = kubectl(
        &[
            "delete",
            "-n",
            NS,
            "deployment",
            "evented",
            "--ignore-not-found",
        ],
        None,
    );
    let dir = tempfile::tempdir().expect("dir");
    let (operator, port) = start_operator(dir.path(), &registry.ca_path(), false);
    register_webhook(port);
    register_pin_webhook(port);
    let enforce = policy_yaml("image-policy", &host, &[("k", &pem_of(&signer))], &["k"]);
    kubectl(&["apply", "-f", "-"], Some(&with_mode(&enforce, "Warn")))
        .expect_ok("apply the policy in Warn");
    eventually(Duration::from_secs(30), "Warn mode in force", || {
        jsonpath(
            &["get", "clusterimagepolicy", "image-policy"],
            "{.status.conditions[?(@.type==\"Ready\")].message}",
        )
        .contains("Warn mode")
        .then_some(())
    });

    // Under Warn: the Deployment, its ReplicaSet and its Pod are created, each with a warning.
    let unsigned = format!("{host}/demo/unsigned:v1");
    let denial = format!("The image: {unsigned} is not signed. No signature was found for sha256:");
    let created = kubectl(
        &[
            "create",
            "deployment",
            "-n",
            NS,
            "evented",
            &format!("--image={unsigned}"),
        ],
        None,
    );
    assert!(created.ok, "{}", said(&created));
    eventually(Duration::from_secs(60), "the deployment's pod", || {
        let pods = jsonpath(
            &["get", "pods", "-n", NS, "-l", "app=evented"],
            "{.items[*].metadata.name}",
        );
        (!pods.is_empty()).then_some(())
    });
    let replicaset = jsonpath(
        &["get", "replicasets", "-n", NS, "-l", "app=evented"],
        "{.items[0].metadata.name}",
    );
    // Validation sees the Pod with the name generated for it, the mutating webhook before.
    let pod = format!("Pod {NS}/{replicaset}-");
    let warned = [
        "AdmittedInWarnMode",
        &format!("Admitted {pod}"),
        &format!(" with image {unsigned} in Warn mode (NotSigned): {denial}"),
    ];
    described("replicaset", &replicaset, &warned);
    described("clusterimagepolicy", "image-policy", &warned);
    // The ReplicaSet's own admission is the Deployment's Event.
    described(
        "deployment",
        "evented",
        &[
            "AdmittedInWarnMode",
            &format!("Admitted ReplicaSet {NS}/{replicaset} with image {unsigned} in Warn mode"),
        ],
    );

    // Enforce (the mode removed): the Deployment's new Pod is refused.
    kubectl(&["apply", "-f", "-"], Some(&enforce)).expect_ok("apply the policy in Enforce");
    eventually(Duration::from_secs(30), "Enforce in force", || {
        let message = jsonpath(
            &["get", "clusterimagepolicy", "image-policy"],
            "{.status.conditions[?(@.type==\"Ready\")].message}",
        );
        (message == "Enforcing 1 key and 1 pattern").then_some(())
    });
    kubectl(
        &["scale", "-n", NS, "deployment", "evented", "--replicas=2"],
        None,
    )
    .expect_ok("scale up");
    let refused = [
        "Refused",
        &format!("Refused {pod}"),
        &format!(" with image {unsigned} (NotSigned): {denial}"),
    ];
    let on_replicaset = described("replicaset", &replicaset, &refused);
    assert!(
        !on_replicaset
            .lines()
            .any(|l| l.contains("Refused") && l.contains("Warn mode")),
        "{on_replicaset}"
    );
    described("clusterimagepolicy", "image-policy", &refused);
    let pods = jsonpath(
        &["get", "pods", "-n", NS, "-l", "app=evented"],
        "{.items[*].metadata.name}",
    );
    assert_eq!(pods.split_whitespace().count(), 1, "{pods}");

    // The policy's Events are kept in default, where kube-runtime's recorder puts those of a
    // cluster-scoped object and a current API server accepts them, by image-policy; none in
    // kube-system, where they were kept for Kubernetes before 1.21.
    let in_namespace = |namespace: &str| {
        jsonpath(
            &[
                "get",
                "events",
                "-n",
                namespace,
                "--field-selector",
                "involvedObject.kind=ClusterImagePolicy",
            ],
            "{.items[*].reportingComponent}",
        )
    };
    assert_eq!(in_namespace("kube-system"), "");
    let controllers = in_namespace("default");
    assert!(
        !controllers.is_empty() && controllers.split_whitespace().all(|c| c == "image-policy"),
        "{controllers}"
    );
    // Every Event was published.
    let metrics = operator.metrics();
    assert!(
        !metrics.contains("image_policy_events_dropped_total"),
        "{metrics}"
    );

    let _ = kubectl(&["delete", "-n", NS, "deployment", "evented"], None);
    let _ = kubectl(&["delete", "clusterimagepolicy", "image-policy"], None);
    unregister_webhooks();
    drop(operator);
}
