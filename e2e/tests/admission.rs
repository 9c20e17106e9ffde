//! The product end to end: a real kube-apiserver calls `image-policy run` as a validating
//! webhook registered by URL, with a real registry holding signed and unsigned images, and
//! `kubectl` prints what the original's documentation shows, word for word.

// A test crate: its helpers fail the test loudly by design.
#![allow(
    clippy::expect_used,
    clippy::unwrap_used,
    clippy::indexing_slicing,
    clippy::panic
)]

#[path = "../../operator/tests/support/mod.rs"]
mod support;

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use base64::Engine as _;
use image_policy_e2e::{Run, eventually, image_policy_bin, kubectl};
use sigstore::crypto::{SigStoreSigner, SigningScheme};
use support::cosign::Pusher;
use support::registry::{Registry, RegistryOptions};

const WEBHOOK_NAME: &str = "image-policy-webhook.signing.apps.tanzu.com";

/// The operator process, stopped when dropped; its log is printed if the test fails.
struct Operator {
    child: Child,
    log: PathBuf,
}

impl Drop for Operator {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        if std::thread::panicking() {
            let log = std::fs::read_to_string(&self.log).unwrap_or_default();
            let tail: Vec<&str> = log.lines().rev().take(40).collect();
            eprintln!(
                "operator log (last lines, newest first):\n{}",
                tail.join("\n")
            );
        }
    }
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .expect("bind")
        .local_addr()
        .expect("addr")
        .port()
}

/// A serving certificate for 127.0.0.1 signed by the cluster's CA, which the API server trusts.
fn serving_cert(dir: &Path) -> (PathBuf, PathBuf) {
    let ca = std::env::var("IMAGE_POLICY_CA_CERT").expect("IMAGE_POLICY_CA_CERT (hack/e2e.sh)");
    let ca_key = std::env::var("IMAGE_POLICY_CA_KEY").expect("IMAGE_POLICY_CA_KEY (hack/e2e.sh)");
    let (key, csr, cert, ext) = (
        dir.join("tls.key"),
        dir.join("tls.csr"),
        dir.join("tls.crt"),
        dir.join("ext.cnf"),
    );
    std::fs::write(
        &ext,
        "subjectAltName=IP:127.0.0.1,DNS:localhost\nbasicConstraints=CA:FALSE\n",
    )
    .expect("ext");
    let openssl = |args: &[&str]| {
        let out = Command::new("openssl")
            .args(args)
            .output()
            .expect("openssl");
        assert!(
            out.status.success(),
            "openssl {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    };
    let p = |p: &Path| p.to_str().unwrap().to_owned();
    openssl(&[
        "ecparam",
        "-name",
        "prime256v1",
        "-genkey",
        "-noout",
        "-out",
        &p(&key),
    ]);
    openssl(&[
        "req",
        "-new",
        "-key",
        &p(&key),
        "-subj",
        "/CN=127.0.0.1",
        "-out",
        &p(&csr),
    ]);
    openssl(&[
        "x509",
        "-req",
        "-in",
        &p(&csr),
        "-CA",
        &ca,
        "-CAkey",
        &ca_key,
        "-CAcreateserial",
        "-days",
        "2",
        "-extfile",
        &p(&ext),
        "-out",
        &p(&cert),
    ]);
    (cert, key)
}

fn start_operator(dir: &Path, registry: &Registry, allow_unmatched: bool) -> (Operator, u16) {
    let (cert, key) = serving_cert(dir);
    let (port, metrics) = (free_port(), free_port());
    let log = dir.join("operator.log");
    let mut command = Command::new(image_policy_bin());
    command
        .args([
            "run",
            "--webhook-addr",
            &format!("127.0.0.1:{port}"),
            "--metrics-addr",
            &format!("127.0.0.1:{metrics}"),
        ])
        .args([
            "--tls-cert-file",
            cert.to_str().unwrap(),
            "--tls-key-file",
            key.to_str().unwrap(),
        ])
        .args(["--ca-file", registry.ca_path().to_str().unwrap()])
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(&log).expect("log"));
    if allow_unmatched {
        command.arg("--allow-unmatched-images");
    }
    let child = command.spawn().expect("start image-policy run");
    let operator = Operator { child, log };
    eventually(Duration::from_secs(30), "the operator is ready", || {
        image_policy_e2e::http_ok(metrics, "/readyz").then_some(())
    });
    (operator, port)
}

fn register_webhook(port: u16) {
    let ca = std::fs::read(std::env::var("IMAGE_POLICY_CA_CERT").unwrap()).expect("ca");
    let bundle = base64::engine::general_purpose::STANDARD.encode(ca);
    let rule = |groups: &str, versions: &str, resources: &str| {
        format!(
            "  - apiGroups: [{groups}]\n    apiVersions: [{versions}]\n    operations: [CREATE, UPDATE]\n    resources: [{resources}]\n"
        )
    };
    let config = format!(
        "apiVersion: admissionregistration.k8s.io/v1\nkind: ValidatingWebhookConfiguration\nmetadata:\n  name: {WEBHOOK_NAME}\n\
         webhooks:\n- name: {WEBHOOK_NAME}\n  admissionReviewVersions: [v1, v1beta1]\n  sideEffects: None\n  failurePolicy: Fail\n  timeoutSeconds: 10\n\
         \x20 clientConfig:\n    url: https://127.0.0.1:{port}/signing-policy-check\n    caBundle: {bundle}\n\
         \x20 namespaceSelector:\n    matchExpressions:\n    - {{key: kubernetes.io/metadata.name, operator: NotIn, values: [kube-system, image-policy-system]}}\n\
         \x20 rules:\n{}{}{}{}",
        rule(
            "\"\"",
            "v1",
            "pods, pods/ephemeralcontainers, replicationcontrollers"
        ),
        rule(
            "apps",
            "v1",
            "deployments, statefulsets, daemonsets, replicasets"
        ),
        rule("batch", "v1, v1beta1", "jobs, cronjobs"),
        rule(
            "signing.apps.tanzu.vmware.com",
            "v1beta1",
            "clusterimagepolicies"
        ),
    );
    kubectl(&["apply", "-f", "-"], Some(&config)).expect_ok("register the webhook");
}

fn policy_yaml(
    name: &str,
    registry: &Registry,
    keys: &[(&str, &str)],
    pattern_keys: &[&str],
) -> String {
    let keys_yaml: String = keys
        .iter()
        .map(|(name, pem)| {
            let body: String = pem.lines().map(|l| format!("        {l}\n")).collect();
            format!("    - name: {name}\n      publicKey: |\n{body}")
        })
        .collect();
    let refs: Vec<String> = pattern_keys
        .iter()
        .map(|k| format!("{{name: {k}}}"))
        .collect();
    format!(
        "apiVersion: signing.apps.tanzu.vmware.com/v1beta1\nkind: ClusterImagePolicy\nmetadata:\n  name: {name}\nspec:\n  verification:\n\
         \x20   exclude:\n      resources:\n        namespaces: [kube-system, excluded]\n    keys:\n{keys_yaml}\
         \x20   images:\n    - namePattern: {}/demo/*\n      keys: [{}]\n",
        registry.host(),
        refs.join(", ")
    )
}

fn pem_of(signer: &SigStoreSigner) -> String {
    signer
        .to_sigstore_keypair()
        .expect("pair")
        .public_key_to_pem()
        .expect("pem")
}

/// kubectl's whole answer, both streams, as a user sees it.
fn said(run: &Run) -> String {
    format!("{}{}", run.stderr, run.stdout)
}

fn namespace(name: &str) {
    let _ = kubectl(&["create", "namespace", name], None);
    kubectl(
        &[
            "label",
            "--overwrite",
            "namespace",
            name,
            &format!("kubernetes.io/metadata.name={name}"),
        ],
        None,
    )
    .expect_ok("label namespace");
}

#[tokio::test(flavor = "multi_thread")]
async fn the_seed_transcripts_and_the_policy_lifecycle() {
    let registry = Registry::start(RegistryOptions::default());
    let pusher = Pusher::new(&registry);
    let first = SigningScheme::ECDSA_P256_SHA256_ASN1
        .create_signer()
        .expect("signer");
    let other = SigningScheme::ECDSA_P256_SHA256_ASN1
        .create_signer()
        .expect("signer");
    let signed = pusher.push_image("demo/signed", "v1").await;
    pusher.sign("demo/signed", &signed, &first).await;
    let by_other = pusher.push_image("demo/other-key", "v1").await;
    pusher.sign("demo/other-key", &by_other, &other).await;
    pusher.push_image("demo/unsigned", "v1").await;
    let host = registry.host();

    let crd = image_policy_e2e::image_policy(&["crd"]).expect_ok("crd");
    kubectl(&["apply", "-f", "-"], Some(&crd)).expect_ok("CRD");
    kubectl(
        &[
            "wait",
            "--for=condition=Established",
            "--timeout=60s",
            "crd/clusterimagepolicies.signing.apps.tanzu.vmware.com",
        ],
        None,
    )
    .expect_ok("established");
    for ns in ["default", "kube-system", "excluded", "image-policy-system"] {
        namespace(ns);
    }
    let _ = kubectl(&["delete", "clusterimagepolicy", "--all"], None);

    let dir = tempfile::tempdir().expect("dir");
    let (operator, port) = start_operator(dir.path(), &registry, true);
    register_webhook(port);

    // No policy: admitted, with the original's warning.
    let run = eventually(Duration::from_secs(30), "the webhook is called", || {
        let run = kubectl(
            &["run", "nopolicy", "--image=busybox", "--restart=Never"],
            None,
        );
        run.stderr.contains("Warning:").then_some(run)
    });
    assert_eq!(
        said(&run),
        "Warning: clusterimagepolicies.signing.apps.tanzu.vmware.com \"image-policy\" not found. Image policy enforcement was not applied.\npod/nopolicy created\n"
    );

    // A policy with another name is refused on create; so is an invalid key, with its path.
    let first_pem = pem_of(&first);
    let wrong_name = kubectl(
        &["apply", "-f", "-"],
        Some(&policy_yaml(
            "my-policy",
            &registry,
            &[("first-key", &first_pem)],
            &["first-key"],
        )),
    );
    assert!(
        !wrong_name.ok && wrong_name.stderr.contains("metadata.name"),
        "{}",
        said(&wrong_name)
    );
    let bad_key = kubectl(
        &["apply", "-f", "-"],
        Some(&policy_yaml(
            "image-policy",
            &registry,
            &[("first-key", "not a key")],
            &["first-key"],
        )),
    );
    assert!(
        !bad_key.ok
            && bad_key
                .stderr
                .contains("spec.verification.keys[0].publicKey"),
        "{}",
        said(&bad_key)
    );

    // The seed's policy, for this registry.
    kubectl(
        &["apply", "-f", "-"],
        Some(&policy_yaml(
            "image-policy",
            &registry,
            &[("first-key", &first_pem)],
            &["first-key"],
        )),
    )
    .expect_ok("apply the policy");

    // The seed's three checks, word for word.
    let image = format!("{host}/demo/signed:v1");
    let run = eventually(Duration::from_secs(30), "the policy is enforced", || {
        let run = kubectl(
            &[
                "run",
                "cosign",
                &format!("--image={image}"),
                "--restart=Never",
                "--command",
                "--",
                "sleep",
                "900",
            ],
            None,
        );
        (!run
            .stderr
            .contains("not found. Image policy enforcement was not applied"))
        .then_some(run)
    });
    assert_eq!(said(&run), "pod/cosign created\n");

    let run = kubectl(&["run", "bb", "--image=busybox", "--restart=Never"], None);
    assert_eq!(
        said(&run),
        "Warning: busybox did not match any image policies. Container will be created as AllowUnmatchedImages flag is true.\npod/bb created\n"
    );

    let fail = format!("{host}/demo/other-key:v1");
    let run = kubectl(
        &[
            "run",
            "cosign-fail",
            &format!("--image={fail}"),
            "--command",
            "--",
            "sleep",
            "900",
        ],
        None,
    );
    assert!(!run.ok);
    assert_eq!(
        run.stderr,
        format!(
            "Error from server (The image: {fail} is not signed.): admission webhook \"{WEBHOOK_NAME}\" denied the request: The image: {fail} is not signed.\n"
        )
    );

    // A Deployment whose template is unsigned is refused at creation.
    let unsigned = format!("{host}/demo/unsigned:v1");
    let run = kubectl(
        &[
            "create",
            "deployment",
            "web",
            &format!("--image={unsigned}"),
        ],
        None,
    );
    assert!(!run.ok, "{}", said(&run));
    assert!(
        run.stderr.contains(&format!(
            "The image: {unsigned} is not signed. No signature was found for sha256:"
        )),
        "{}",
        said(&run)
    );

    // An excluded namespace is not checked.
    let run = kubectl(
        &[
            "-n",
            "excluded",
            "run",
            "free",
            &format!("--image={unsigned}"),
            "--restart=Never",
        ],
        None,
    );
    assert_eq!(said(&run), "pod/free created\n");

    // Editing the policy changes decisions without a restart: trust the other key too.
    let other_pem = pem_of(&other);
    kubectl(
        &["apply", "-f", "-"],
        Some(&policy_yaml(
            "image-policy",
            &registry,
            &[("first-key", &first_pem), ("other-key", &other_pem)],
            &["first-key", "other-key"],
        )),
    )
    .expect_ok("edit the policy");
    eventually(Duration::from_secs(15), "the new key is trusted", || {
        let run = kubectl(
            &[
                "run",
                "cosign-ok",
                &format!("--image={fail}"),
                "--restart=Never",
                "--command",
                "--",
                "sleep",
                "900",
            ],
            None,
        );
        (said(&run) == "pod/cosign-ok created\n").then_some(())
    });

    // Deleting the policy returns to admitting with the warning.
    kubectl(&["delete", "clusterimagepolicy", "image-policy"], None).expect_ok("delete the policy");
    eventually(Duration::from_secs(15), "no policy again", || {
        let run = kubectl(
            &[
                "run",
                &format!("again-{}", rand_suffix()),
                &format!("--image={unsigned}"),
                "--restart=Never",
            ],
            None,
        );
        run.stderr
            .contains("\"image-policy\" not found")
            .then_some(())
    });

    kubectl(
        &["delete", "validatingwebhookconfiguration", WEBHOOK_NAME],
        None,
    )
    .expect_ok("unregister");
    drop(operator);
}

fn rand_suffix() -> u32 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.subsec_nanos())
        .unwrap_or(0)
}
