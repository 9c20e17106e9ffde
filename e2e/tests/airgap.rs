//! An air-gapped start (#12): `image-policy run` in a network namespace of its own, with no
//! route to anything (no DNS, no internet, no Sigstore service), only the API server and the
//! registry forwarded to it over Unix sockets, starts, becomes ready and verifies a keyless
//! signature from the built-in public-good root: the real cosign v3 bundle of
//! kubewarden-controller v1.34.0 (from GitHub Actions, public-good Fulcio and Rekor), attached
//! as cosign attaches it to its digest in the local registry.

// A test crate: its helpers fail the test loudly by design.
#![allow(
    clippy::expect_used,
    clippy::unwrap_used,
    clippy::indexing_slicing,
    clippy::panic
)]

use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use image_policy_e2e::cluster::{
    Operator, WEBHOOK_NAME, free_port, install_crd, namespace, register_webhook, said, serving_cert,
};
use image_policy_e2e::{eventually, kubectl};
use image_policy_testsupport::cosign::Pusher;
use image_policy_testsupport::registry::{Registry, RegistryOptions};

const DIGEST: &str = "sha256:c811d58de79c92f03214e63aa339484e488d694ae8a6283b5f3f17a9faf50172";
const SUBJECT: &str = "https://github.com/kubewarden/kubewarden-controller/.github/workflows/release.yml@refs/tags/v1.34.0";
const GITHUB: &str = "https://token.actions.githubusercontent.com";

/// A socat forwarder outside the namespace, stopped when dropped.
struct Forward(Child);

impl Forward {
    fn start(from: &str, to: &str) -> Forward {
        let child = Command::new("socat")
            .args([from, to])
            .stdout(Stdio::null())
            // Each poll of a port before the operator listens is a logged refusal.
            .stderr(Stdio::null())
            .spawn()
            .expect("socat (hack/install-deps.sh installs it)");
        Forward(child)
    }
}

impl Drop for Forward {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn tcp_listen(port: u16) -> String {
    format!("TCP-LISTEN:{port},bind=127.0.0.1,fork,reuseaddr")
}

fn unix(kind: &str, dir: &Path, name: &str) -> String {
    format!("{kind}:{}", dir.join(name).display())
}

#[test]
fn an_air_gapped_operator_starts_and_verifies_keyless_from_the_built_in_root() {
    let registry = Registry::start(RegistryOptions {
        plain_http: true,
        ..RegistryOptions::default()
    });
    let host = registry.host();
    let bundle = image_policy_e2e::operator_data(
        "bundles/kubewarden-controller-v1.34.0-keyless/bundle.sigstore.json",
    );
    let runtime = tokio::runtime::Runtime::new().unwrap();
    // The imitation of cosign's referrer layout attaches the bundle: it is the real cosign's
    // (signed on GitHub Actions against public-good), for an image whose bytes are not in this
    // registry, which cosign cannot sign or attach to.
    runtime.block_on(async {
        let pusher = Pusher::new(&registry);
        for repository in [
            "kubewarden/kubewarden-controller",
            "mirror/kubewarden-controller",
        ] {
            pusher
                .attach_referrer(repository, DIGEST, bundle.as_bytes())
                .await;
        }
    });

    install_crd();
    for ns in ["default", "kube-system", "image-policy-system"] {
        namespace(ns);
    }
    let _ = kubectl(&["delete", "clusterimagepolicy", "--all"], None);

    // The ports the operator may reach (the API server, the registry) and those it serves
    // (the webhook, health), each forwarded through a Unix socket in `dir`.
    let server = kubectl(
        &[
            "config",
            "view",
            "--minify",
            "-o",
            "jsonpath={.clusters[0].cluster.server}",
        ],
        None,
    )
    .expect_ok("the API server's URL");
    let api_port: u16 = server.rsplit(':').next().unwrap().trim().parse().unwrap();
    let registry_port: u16 = host.rsplit(':').next().unwrap().parse().unwrap();
    let (port, metrics) = (free_port(), free_port());
    let dir = tempfile::tempdir().expect("dir");
    let d = dir.path();
    let _outside = [
        Forward::start(
            &format!("{},fork", unix("UNIX-LISTEN", d, "api.sock")),
            &format!("TCP:127.0.0.1:{api_port}"),
        ),
        Forward::start(
            &format!("{},fork", unix("UNIX-LISTEN", d, "registry.sock")),
            &format!("TCP:127.0.0.1:{registry_port}"),
        ),
        Forward::start(&tcp_listen(port), &unix("UNIX-CONNECT", d, "webhook.sock")),
        Forward::start(
            &tcp_listen(metrics),
            &unix("UNIX-CONNECT", d, "metrics.sock"),
        ),
    ];
    // Inside: a new network namespace (only a loopback, nothing routed) and a new PID
    // namespace, so that the forwarders inside die with the operator.
    let inside = format!(
        "set -e; ip link set lo up; \
         if getent hosts rekor.sigstore.dev; then echo 'not air-gapped' >&2; exit 1; fi; \
         socat {} {} 2>/dev/null & socat {} {} 2>/dev/null & \
         socat {},fork TCP:127.0.0.1:{port} 2>/dev/null & \
         socat {},fork TCP:127.0.0.1:{metrics} 2>/dev/null & \
         exec \"$@\"",
        tcp_listen(api_port),
        unix("UNIX-CONNECT", d, "api.sock"),
        tcp_listen(registry_port),
        unix("UNIX-CONNECT", d, "registry.sock"),
        unix("UNIX-LISTEN", d, "webhook.sock"),
        unix("UNIX-LISTEN", d, "metrics.sock"),
    );
    let (cert, key) = serving_cert(d);
    let (operator, started) = Operator::start_in(
        d,
        "image-policy-local",
        (port, metrics),
        None,
        &[
            "--tls-cert-file",
            cert.to_str().unwrap(),
            "--tls-key-file",
            key.to_str().unwrap(),
            "--insecure-registry",
            &host,
        ],
        &[
            "unshare",
            "--net",
            "--pid",
            "--fork",
            "--kill-child",
            "bash",
            "-c",
            &inside,
            "air-gapped",
        ],
    );
    println!("the air-gapped operator was ready in {started:?}");
    register_webhook(port);

    let policy = format!(
        concat!(
            "apiVersion: signing.apps.tanzu.vmware.com/v1beta1\nkind: ClusterImagePolicy\n",
            "metadata:\n  name: image-policy\nspec:\n  verification:\n",
            "    exclude:\n      resources:\n        namespaces: [kube-system]\n",
            "    keys:\n",
            "    - name: kubewarden-release\n      keyless:\n",
            "        issuer: {github}\n        subject: {subject}\n",
            "    - name: older-release\n      keyless:\n",
            "        issuer: {github}\n        subject: {older}\n",
            "    images:\n",
            "    - namePattern: {host}/kubewarden/*\n      keys: [{{name: kubewarden-release}}]\n",
            "    - namePattern: {host}/mirror/*\n      keys: [{{name: older-release}}]\n",
        ),
        github = GITHUB,
        subject = SUBJECT,
        older = SUBJECT.replace("v1.34.0", "v1.33.0"),
        host = host,
    );
    kubectl(&["apply", "-f", "-"], Some(&policy)).expect_ok("apply the policy");
    let image = format!("{host}/kubewarden/kubewarden-controller@{DIGEST}");
    let run = eventually(Duration::from_secs(30), "the policy is enforced", || {
        let run = kubectl(
            &[
                "run",
                "airgapped",
                &format!("--image={image}"),
                "--restart=Never",
            ],
            None,
        );
        (!run.stderr.contains("not found. Image policy enforcement")).then_some(run)
    });
    assert_eq!(said(&run), "pod/airgapped created\n");
    let mirror = format!("{host}/mirror/kubewarden-controller@{DIGEST}");
    let run = kubectl(
        &[
            "run",
            "airgapped-older",
            &format!("--image={mirror}"),
            "--restart=Never",
        ],
        None,
    );
    let why = format!(
        "Its signature's certificate names the subject {SUBJECT} of the issuer {GITHUB}, which no identity of the policy matches."
    );
    assert_eq!(
        run.stderr,
        format!(
            "Error from server (The image: {mirror} is not signed. {why}): admission webhook \"{WEBHOOK_NAME}\" denied the request: The image: {mirror} is not signed. {why}\n"
        )
    );
    assert!(operator.ready());

    let _ = kubectl(&["delete", "pod", "airgapped", "--wait=false"], None);
    let _ = kubectl(&["delete", "clusterimagepolicy", "image-policy"], None);
    drop(operator);
}
