//! `make up`'s demo: on the local control plane (KUBECONFIG and the cluster CA from
//! `hack/cluster-up.sh`'s env file), a TLS registry on 127.0.0.1 holding an image signed with
//! a demo key, one signed with another key and an unsigned one; `image-policy run` as the
//! webhook, registered by URL under the seed's name, with its pinning webhook; and a
//! ready-to-apply policy. It writes
//! what to try into `$IMAGE_POLICY_DEMO_DIR/ready` and stays up, with everything it started,
//! until SIGTERM (`make down`).

#![allow(
    clippy::expect_used,
    clippy::unwrap_used,
    clippy::panic,
    clippy::indexing_slicing
)]

use std::path::PathBuf;

use image_policy_e2e::cluster::{
    namespace, policy_yaml, register_pin_webhook, register_webhook, start_operator,
    unregister_pin_webhook,
};
use image_policy_e2e::kubectl;
use image_policy_testsupport::cosign::Pusher;
use image_policy_testsupport::producers::Cosign;
use image_policy_testsupport::registry::{Registry, RegistryOptions};

#[tokio::main]
async fn main() {
    let dir = PathBuf::from(
        std::env::var("IMAGE_POLICY_DEMO_DIR").unwrap_or_else(|_| "/tmp/image-policy-demo".into()),
    );
    std::fs::create_dir_all(&dir).expect("demo dir");
    let _ = std::fs::remove_file(dir.join("ready"));

    let registry = Registry::start(RegistryOptions::default());
    let pusher = Pusher::new(&registry);
    // Signed by the real cosign (hack/sigstore/install.sh builds it), in the `.sig` layout
    // of the seed's transcript.
    let demo = Cosign::new(&registry).push_demo(&pusher).await.key;
    let host = registry.host();

    image_policy_e2e::cluster::install_crd();
    for ns in ["default", "kube-system", "excluded", "image-policy-system"] {
        namespace(ns);
    }
    let (operator, port) = start_operator(&dir, &registry.ca_path(), true);
    register_webhook(port);
    register_pin_webhook(port);

    let pem = demo.public_pem.clone();
    std::fs::write(dir.join("demo-key.pub"), &pem).expect("key");
    let policy = dir.join("policy.yaml");
    std::fs::write(
        &policy,
        policy_yaml("image-policy", &host, &[("demo-key", &pem)], &["demo-key"]),
    )
    .expect("policy");
    let ready = format!(
        "kubectl apply -f {policy}\n\
         kubectl run cosign --image={host}/demo/signed:v1 --restart=Never --command -- sleep 900\n\
         kubectl run bb --image=busybox --restart=Never\n\
         kubectl run cosign-fail --image={host}/demo/other-key:v1 --command -- sleep 900\n\
         kubectl get pod cosign -o jsonpath='{{.spec.containers[0].image}}'   # pinned to its digest\n",
        policy = policy.display()
    );
    std::fs::write(dir.join("ready"), ready).expect("ready");

    let mut term =
        tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()).expect("signal");
    tokio::select! {
        _ = term.recv() => {}
        _ = tokio::signal::ctrl_c() => {}
    }
    let _ = kubectl(
        &[
            "delete",
            "validatingwebhookconfiguration",
            image_policy_e2e::cluster::WEBHOOK_NAME,
        ],
        None,
    );
    unregister_pin_webhook();
    // A graceful stop: the operator releases its lease for the next `make up`.
    let mut operator = operator;
    operator.terminate();
    let _ = operator.wait_exit(std::time::Duration::from_secs(25));
    drop(operator);
    drop(registry);
}
