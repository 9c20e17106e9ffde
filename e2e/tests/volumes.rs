//! Every image a Pod pulls (#24), through a real API server: an image mounted as a volume
//! (`spec.volumes[].image.reference`) is refused by `kubectl apply` when it is not signed,
//! with the original's words and the volume's name; a signed one is created and stored pinned
//! to its digest, its pull policy as written; `kubectl debug` with an unsigned image is
//! refused; and an image volume that ran before the policy is named in `status.running`.

// A test crate: its helpers fail the test loudly by design.
#![allow(
    clippy::expect_used,
    clippy::unwrap_used,
    clippy::indexing_slicing,
    clippy::panic
)]

use std::time::Duration;

use image_policy_e2e::cluster::{
    install_crd, jsonpath, namespace, policy_yaml, register_pin_webhook, register_webhook, said,
    start_operator_with, unregister_webhooks,
};
use image_policy_e2e::{eventually, kubectl};
use image_policy_testsupport::cosign::Pusher;
use image_policy_testsupport::producers::{Cosign, Signing};
use image_policy_testsupport::registry::{Registry, RegistryOptions};
use serde_json::Value;

/// The namespace of this test's objects; the running check looks at it alone.
const NS: &str = "volumes";

/// A Pod named `name` running `container` with the image volume `models` of `reference`.
fn pod(name: &str, container: &str, reference: &str) -> String {
    format!(
        "apiVersion: v1\nkind: Pod\nmetadata:\n  name: {name}\n  namespace: {NS}\nspec:\n  restartPolicy: Never\n\
         \x20 containers:\n  - name: app\n    image: {container}\n    volumeMounts:\n    - name: models\n      mountPath: /models\n\
         \x20 volumes:\n  - name: config\n    emptyDir: {{}}\n\
         \x20 - name: models\n    image:\n      reference: {reference}\n      pullPolicy: IfNotPresent\n"
    )
}

/// A Deployment named `name` whose template runs `container` with the image volume `models`.
fn deployment(name: &str, container: &str, reference: &str) -> String {
    format!(
        "apiVersion: apps/v1\nkind: Deployment\nmetadata:\n  name: {name}\n  namespace: {NS}\nspec:\n\
         \x20 selector:\n    matchLabels: {{app: {name}}}\n  template:\n    metadata:\n      labels: {{app: {name}}}\n    spec:\n\
         \x20     containers:\n      - name: app\n        image: {container}\n\
         \x20     volumes:\n      - name: models\n        image:\n          reference: {reference}\n"
    )
}

/// What a refusal of the unsigned `image` of `digest` mounted as the volume `models` says.
fn refusal(image: &str, digest: &str) -> String {
    let hex = digest.strip_prefix("sha256:").unwrap();
    format!(
        "The image: {image} is not signed. No signature was found for {digest}: none at its \
         cosign signature tag sha256-{hex}.sig, nor among its OCI referrers (the referrers API \
         or the tag sha256-{hex}). It is mounted as the image volume \"models\"."
    )
}

/// `status.running` of the policy, once it has one.
fn running() -> Option<Value> {
    let run = kubectl(
        &["get", "clusterimagepolicy", "image-policy", "-o", "json"],
        None,
    );
    let policy: Value = serde_json::from_str(&run.stdout).ok()?;
    policy.pointer("/status/running").cloned()
}

#[tokio::test(flavor = "multi_thread")]
async fn image_volumes_and_kubectl_debug_are_checked_by_the_api_server() {
    let registry = Registry::start(RegistryOptions::default());
    let pusher = Pusher::new(&registry);
    let host = registry.host();
    // Signed by the real cosign, in its `.sig` layout.
    let cosign = Cosign::new(&registry);
    let signer = cosign.generate_key();
    let app_digest = pusher.push_image("demo/app", "v1").await;
    let weights_digest = pusher.push_image("demo/weights", "v1").await;
    for (repository, digest) in [("demo/app", &app_digest), ("demo/weights", &weights_digest)] {
        let image = format!("{host}/{repository}@{digest}");
        cosign.sign(&image, &signer, Signing::LEGACY_TAG);
    }
    let models_digest = pusher.push_image("demo/models", "v1").await;
    pusher.push_image("demo/tools", "v1").await;
    let (app, weights, models, tools) = (
        format!("{host}/demo/app:v1"),
        format!("{host}/demo/weights:v1"),
        format!("{host}/demo/models:v1"),
        format!("{host}/demo/tools:v1"),
    );

    install_crd();
    for ns in ["default", "kube-system", "excluded", "image-policy-system"] {
        namespace(ns);
    }
    let _ = kubectl(&["delete", "clusterimagepolicy", "--all"], None);
    let _ = kubectl(&["delete", "namespace", NS, "--ignore-not-found"], None);
    eventually(Duration::from_secs(60), "the old namespace is gone", || {
        let get = kubectl(&["get", "namespace", NS], None);
        (!get.ok).then_some(())
    });
    namespace(NS);
    // Other suites leave Pods behind: only this test's namespace is checked.
    let all = jsonpath(&["get", "namespaces"], "{.items[*].metadata.name}");
    let others: Vec<String> = all
        .split_whitespace()
        .filter(|ns| *ns != NS)
        .map(|ns| format!("--unchecked-namespace={ns}"))
        .collect();
    let mut flags = vec!["--resync-period", "5s"];
    flags.extend(others.iter().map(String::as_str));
    let dir = tempfile::tempdir().expect("dir");
    let (operator, port) = start_operator_with(dir.path(), &registry.ca_path(), &flags);
    register_webhook(port);
    register_pin_webhook(port);

    // Before any policy: an unsigned image volume is admitted with the original's warning.
    // (Waited for with server-side dry runs: they are decided as the real request, and
    // create nothing that a retry would find unchanged.)
    let before = pod("volumes-before", &app, &models);
    eventually(Duration::from_secs(30), "the webhook is called", || {
        let run = kubectl(&["apply", "--dry-run=server", "-f", "-"], Some(&before));
        run.stderr
            .contains("Image policy enforcement was not applied")
            .then_some(())
    });
    let run = kubectl(&["apply", "-f", "-"], Some(&before));
    assert!(
        said(&run).contains("pod/volumes-before created"),
        "{}",
        said(&run)
    );

    let policy = policy_yaml("image-policy", &host, &[("k", &signer.public_pem)], &["k"]);
    kubectl(&["apply", "-f", "-"], Some(&policy)).expect_ok("apply the policy");

    // An unsigned image volume beside a signed container: refused, and the volume named.
    let unsigned = pod("volumes-unsigned", &app, &models);
    eventually(Duration::from_secs(30), "the policy is enforced", || {
        let run = kubectl(&["apply", "--dry-run=server", "-f", "-"], Some(&unsigned));
        (!run.ok).then_some(())
    });
    let run = kubectl(&["apply", "-f", "-"], Some(&unsigned));
    assert!(!run.ok, "{}", said(&run));
    let expected = refusal(&models, &models_digest);
    assert!(
        run.stderr
            .contains(&format!("denied the request: {expected}")),
        "{}",
        said(&run)
    );
    let get = kubectl(&["get", "pod", "volumes-unsigned", "-n", NS], None);
    assert!(!get.ok, "not created: {}", said(&get));
    // A Deployment's template too.
    let run = kubectl(
        &["apply", "-f", "-"],
        Some(&deployment("volumes-unsigned", &app, &models)),
    );
    assert!(!run.ok, "{}", said(&run));
    assert!(run.stderr.contains(&expected), "{}", said(&run));

    // Signed: created, and stored with the digest verified; the pull policy as written.
    let signed = pod("volumes-signed", &app, &weights);
    let run = kubectl(&["apply", "-f", "-"], Some(&signed));
    assert_eq!(said(&run), "pod/volumes-signed created\n");
    let stored = |path: &str| jsonpath(&["get", "pod", "volumes-signed", "-n", NS], path);
    assert_eq!(
        stored("{.spec.volumes[1].image.reference}"),
        format!("{weights}@{weights_digest}")
    );
    assert_eq!(
        stored("{.spec.volumes[1].image.pullPolicy}"),
        "IfNotPresent"
    );
    assert_eq!(
        stored("{.spec.containers[0].image}"),
        format!("{app}@{app_digest}")
    );

    // kubectl debug (the pods/ephemeralcontainers subresource): an unsigned image is
    // refused; a signed one is added, pinned.
    let debug = |image: &str, name: &str| {
        let image = format!("--image={image}");
        let args = [
            "debug",
            "volumes-signed",
            "-n",
            NS,
            &image,
            "-c",
            name,
            "--attach=false",
        ];
        kubectl(&args, None)
    };
    let run = debug(&tools, "unsigned-debugger");
    assert!(!run.ok, "{}", said(&run));
    assert!(
        run.stderr
            .contains(&format!("The image: {tools} is not signed.")),
        "{}",
        said(&run)
    );
    let run = debug(&app, "debugger");
    assert!(run.ok, "{}", said(&run));
    assert_eq!(
        stored("{.spec.ephemeralContainers[*].name}"),
        "debugger",
        "the refused one was not added"
    );
    assert_eq!(
        stored("{.spec.ephemeralContainers[0].image}"),
        format!("{app}@{app_digest}")
    );

    // What ran before the policy: its image volume is refused in status.running, named.
    let running = eventually(
        Duration::from_secs(60),
        "status.running names the volume",
        || {
            running().filter(|r| {
                r["refused"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .any(|x| x["namespace"] == NS && x["name"] == "volumes-before")
            })
        },
    );
    let refused: Vec<&Value> = running["refused"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|r| r["namespace"] == NS)
        .collect();
    assert_eq!(refused.len(), 1, "{running}");
    assert_eq!(refused[0]["kind"], "Pod");
    assert_eq!(refused[0]["image"], models.as_str());
    assert_eq!(refused[0]["reason"], "NotSigned");
    assert_eq!(refused[0]["message"], expected.as_str());

    let _ = kubectl(&["delete", "namespace", NS, "--wait=false"], None);
    let _ = kubectl(&["delete", "clusterimagepolicy", "image-policy"], None);
    unregister_webhooks();
    drop(operator);
}
