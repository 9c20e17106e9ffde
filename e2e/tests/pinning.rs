//! Pinning through a real API server (#13): the mutating webhook (`/pin-digests`) and the
//! validating one registered as the chart registers them, the real registry behind, and
//! kube-controller-manager creating a Deployment's Pods through admission as in a real
//! cluster. What runs is what was verified: each Pod's image is written with the digest
//! verification accepted, a moved tag changes no existing Pod, and a new Pod gets the tag's
//! new digest only when it is signed.

// A test crate: its helpers fail the test loudly by design.
#![allow(
    clippy::expect_used,
    clippy::unwrap_used,
    clippy::indexing_slicing,
    clippy::panic
)]

use std::time::Duration;

use image_policy_e2e::cluster::{
    Operator, free_port, install_crd, namespace, policy_yaml, register_pin_webhook,
    register_webhook, said, serving_cert, unregister_webhooks,
};
use image_policy_e2e::{eventually, kubectl};
use image_policy_testsupport::cosign::Pusher;
use image_policy_testsupport::producers::{Cosign, Signing};
use image_policy_testsupport::registry::{Registry, RegistryOptions};

fn image_of(pod: &str, field: &str) -> String {
    kubectl(
        &[
            "get",
            "pod",
            pod,
            "-o",
            &format!("jsonpath={{.spec.{field}[0].image}}"),
        ],
        None,
    )
    .expect_ok("the pod's image")
}

#[tokio::test(flavor = "multi_thread")]
async fn what_runs_is_what_was_verified() {
    let registry = Registry::start(RegistryOptions::default());
    let pusher = Pusher::new(&registry);
    let host = registry.host();
    // Signed by the real cosign, in its `.sig` layout.
    let cosign = Cosign::new(&registry);
    let signer = cosign.generate_key();
    let sign = |repository: &str, digest: &str| {
        cosign.sign(
            &format!("{host}/{repository}@{digest}"),
            &signer,
            Signing::LEGACY_TAG,
        );
    };
    let first = pusher.push_image("demo/app", "v1").await;
    sign("demo/app", &first);
    let init = pusher.push_image("demo/init", "v1").await;
    sign("demo/init", &init);

    install_crd();
    for ns in ["default", "kube-system", "excluded", "image-policy-system"] {
        namespace(ns);
    }
    let _ = kubectl(&["delete", "clusterimagepolicy", "--all"], None);
    let _ = kubectl(
        &["delete", "deployment", "pinned", "--ignore-not-found"],
        None,
    );
    let dir = tempfile::tempdir().expect("dir");
    let (cert, key) = serving_cert(dir.path());
    let port = free_port();
    // A moved tag, and a signature added to a refused image, are seen within a second, not
    // the default 30.
    let (operator, _) = Operator::start(
        dir.path(),
        "image-policy-local",
        port,
        None,
        &[
            "--tls-cert-file",
            cert.to_str().unwrap(),
            "--tls-key-file",
            key.to_str().unwrap(),
            "--ca-file",
            registry.ca_path().to_str().unwrap(),
            "--digest-cache-ttl",
            "1s",
            "--rejected-cache-ttl",
            "1s",
            "--allow-unmatched-images",
        ],
    );
    register_webhook(port);
    register_pin_webhook(port);
    let policy = policy_yaml("image-policy", &host, &[("k", &signer.public_pem)], &["k"]);
    kubectl(&["apply", "-f", "-"], Some(&policy)).expect_ok("apply the policy");

    // kubectl run: the Pod stored runs the signed digest.
    let app = format!("{host}/demo/app:v1");
    let run = eventually(Duration::from_secs(30), "the policy is enforced", || {
        let run = kubectl(
            &[
                "run",
                "pinned-run",
                &format!("--image={app}"),
                "--restart=Never",
            ],
            None,
        );
        (!run.stderr.contains("not found. Image policy enforcement")).then_some(run)
    });
    assert_eq!(said(&run), "pod/pinned-run created\n");
    assert_eq!(
        image_of("pinned-run", "containers"),
        format!("{app}@{first}")
    );

    // Init containers too; an unmatched image and one written with a digest are left alone.
    let init_image = format!("{host}/demo/init:v1");
    let by_digest = format!("{host}/demo/init@{init}");
    let manifest = format!(
        "apiVersion: v1\nkind: Pod\nmetadata:\n  name: pinned-init\nspec:\n  restartPolicy: Never\n\
         \x20 initContainers:\n  - name: init\n    image: {init_image}\n\
         \x20 containers:\n  - name: app\n    image: {by_digest}\n  - name: other\n    image: busybox:1.36\n"
    );
    kubectl(&["apply", "-f", "-"], Some(&manifest)).expect_ok("a pod with an init container");
    assert_eq!(
        image_of("pinned-init", "initContainers"),
        format!("{init_image}@{init}")
    );
    let images = kubectl(
        &[
            "get",
            "pod",
            "pinned-init",
            "-o",
            "jsonpath={.spec.containers[*].image}",
        ],
        None,
    )
    .expect_ok("images");
    assert_eq!(images, format!("{by_digest} busybox:1.36"));

    // A Deployment: its template stays as written; the Pods kube-controller-manager creates
    // from it, through admission, are pinned.
    kubectl(
        &["create", "deployment", "pinned", &format!("--image={app}")],
        None,
    )
    .expect_ok("create the deployment");
    let pods = eventually(Duration::from_secs(60), "the deployment's pod", || {
        let run = kubectl(
            &[
                "get",
                "pods",
                "-l",
                "app=pinned",
                "-o",
                "jsonpath={.items[*].spec.containers[0].image}",
            ],
            None,
        );
        (run.ok && !run.stdout.is_empty()).then_some(run.stdout)
    });
    assert_eq!(pods, format!("{app}@{first}"));
    let template = kubectl(
        &[
            "get",
            "deployment",
            "pinned",
            "-o",
            "jsonpath={.spec.template.spec.containers[0].image}",
        ],
        None,
    )
    .expect_ok("template");
    assert_eq!(template, app, "no drift for GitOps tools");

    // The tag moved to an unsigned image: the Pods keep the verified digest, a new one is
    // refused; once the new image is signed, a new Pod gets the new digest.
    let second = pusher.push_image("demo/app", "v1").await;
    assert_ne!(second, first);
    std::thread::sleep(Duration::from_millis(1500));
    let run = kubectl(
        &[
            "run",
            "pinned-moved",
            &format!("--image={app}"),
            "--restart=Never",
        ],
        None,
    );
    assert!(!run.ok, "{}", said(&run));
    assert!(
        run.stderr
            .contains(&format!("The image: {app} is not signed.")),
        "{}",
        said(&run)
    );
    assert_eq!(
        image_of("pinned-run", "containers"),
        format!("{app}@{first}")
    );
    sign("demo/app", &second);
    std::thread::sleep(Duration::from_millis(1500));
    let run = kubectl(
        &[
            "run",
            "pinned-new",
            &format!("--image={app}"),
            "--restart=Never",
        ],
        None,
    );
    assert_eq!(said(&run), "pod/pinned-new created\n");
    assert_eq!(
        image_of("pinned-new", "containers"),
        format!("{app}@{second}")
    );
    assert_eq!(
        image_of("pinned-run", "containers"),
        format!("{app}@{first}")
    );

    // An excluded namespace: no patch, and not one registry request.
    registry.clear_requests();
    let run = kubectl(
        &[
            "-n",
            "excluded",
            "run",
            "pinned-excluded",
            &format!("--image={app}"),
            "--restart=Never",
        ],
        None,
    );
    assert_eq!(said(&run), "pod/pinned-excluded created\n");
    let excluded = kubectl(
        &[
            "-n",
            "excluded",
            "get",
            "pod",
            "pinned-excluded",
            "-o",
            "jsonpath={.spec.containers[0].image}",
        ],
        None,
    )
    .expect_ok("image");
    assert_eq!(excluded, app);
    // Unmatched: the same.
    let run = kubectl(
        &[
            "run",
            "pinned-unmatched",
            "--image=busybox:1.36",
            "--restart=Never",
        ],
        None,
    );
    assert!(run.ok, "{}", said(&run));
    assert_eq!(image_of("pinned-unmatched", "containers"), "busybox:1.36");
    assert_eq!(registry.requests(), Vec::new(), "no registry request");

    for pod in [
        "pinned-run",
        "pinned-init",
        "pinned-new",
        "pinned-unmatched",
    ] {
        let _ = kubectl(&["delete", "pod", pod, "--wait=false"], None);
    }
    let _ = kubectl(
        &[
            "-n",
            "excluded",
            "delete",
            "pod",
            "pinned-excluded",
            "--wait=false",
        ],
        None,
    );
    let _ = kubectl(&["delete", "deployment", "pinned"], None);
    let _ = kubectl(&["delete", "clusterimagepolicy", "image-policy"], None);
    unregister_webhooks();
    drop(operator);
}
