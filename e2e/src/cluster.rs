//! The pieces of a working installation on the local control plane, shared by the e2e tests
//! and `make up`'s demo: a serving certificate signed by the cluster's CA, `image-policy
//! run` as a child process, the webhook registered by URL, and policy manifests.

// A test harness: a failed step must stop with its reason.
#![allow(clippy::expect_used, clippy::unwrap_used, clippy::panic)]

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use base64::Engine as _;
use sigstore::crypto::SigStoreSigner;

use crate::{Run, eventually, image_policy_bin, kubectl};

/// The webhook's name, as the seed's transcript prints it.
pub const WEBHOOK_NAME: &str = "image-policy-webhook.signing.apps.tanzu.com";

/// The operator process, stopped when dropped; its log is printed if the test fails.
pub struct Operator {
    child: Child,
    log: PathBuf,
    metrics: u16,
}

impl Operator {
    /// Starts `image-policy run` as replica `pod` (its `POD_NAME`, the status Lease's
    /// identity), serving the webhook on 127.0.0.1:`port` and health on a free port, with the
    /// further `args` (certificate, namespace, registry CAs...) and, when given, its own
    /// `kubeconfig`. Returns once `/readyz` answers 200, with the time that took.
    pub fn start(
        dir: &Path,
        pod: &str,
        port: u16,
        kubeconfig: Option<&Path>,
        args: &[&str],
    ) -> (Operator, Duration) {
        Operator::start_in(dir, pod, (port, free_port()), kubeconfig, args, &[])
    }

    /// [`Operator::start`] with the health port given, run through `prefix` (a command that
    /// runs the rest of its arguments, such as a network namespace's).
    pub fn start_in(
        dir: &Path,
        pod: &str,
        (port, metrics): (u16, u16),
        kubeconfig: Option<&Path>,
        args: &[&str],
        prefix: &[&str],
    ) -> (Operator, Duration) {
        let webhook = format!("127.0.0.1:{port}");
        Operator::start_at(dir, pod, (&webhook, metrics), kubeconfig, args, prefix)
    }

    /// [`Operator::start_in`] serving the webhook on `webhook` (an address and port).
    pub fn start_at(
        dir: &Path,
        pod: &str,
        (webhook, metrics): (&str, u16),
        kubeconfig: Option<&Path>,
        args: &[&str],
        prefix: &[&str],
    ) -> (Operator, Duration) {
        // One log per replica; a restarted one appends to it.
        let log = dir.join(format!("operator-{pod}.log"));
        let log_file = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&log)
            .expect("log");
        let bin = image_policy_bin();
        let mut command = match prefix.split_first() {
            Some((first, rest)) => {
                let mut command = Command::new(first);
                command.args(rest).arg(&bin);
                command
            }
            None => Command::new(&bin),
        };
        command
            .env("POD_NAME", pod)
            .args(["run", "--webhook-addr", webhook])
            .args(["--metrics-addr", &format!("127.0.0.1:{metrics}")])
            .args(args)
            .stdout(Stdio::null())
            .stderr(log_file);
        if let Some(kubeconfig) = kubeconfig {
            command.env("KUBECONFIG", kubeconfig);
        }
        let started = Instant::now();
        let child = command.spawn().expect("start image-policy run");
        let operator = Operator {
            child,
            log,
            metrics,
        };
        eventually(Duration::from_secs(30), "the operator is ready", || {
            crate::http_ok(metrics, "/readyz").then_some(())
        });
        (operator, started.elapsed())
    }

    /// Its process id.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// What `/metrics` says.
    pub fn metrics(&self) -> String {
        crate::http_get(self.metrics, "/metrics").unwrap_or_default()
    }

    /// Whether `/readyz` answers 200.
    pub fn ready(&self) -> bool {
        crate::http_ok(self.metrics, "/readyz")
    }

    /// Sends SIGTERM, as the kubelet does to stop a Pod.
    pub fn terminate(&self) {
        // bash's builtin kill: /bin/kill (procps) is not on every fresh machine.
        let pid = self.child.id().to_string();
        let status = Command::new("bash")
            .args(["-c", "kill -TERM \"$1\"", "kill", &pid])
            .status()
            .expect("bash");
        assert!(status.success(), "kill -TERM {pid}");
    }

    /// Waits at most `limit` for the process to exit; its exit code (`None`: killed by a
    /// signal), or `Err` with the time waited if it is still running.
    pub fn wait_exit(&mut self, limit: Duration) -> Result<Option<i32>, Duration> {
        let started = Instant::now();
        while started.elapsed() < limit {
            if let Ok(Some(status)) = self.child.try_wait() {
                return Ok(status.code());
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        Err(started.elapsed())
    }

    /// What it (and earlier runs of the same replica) logged so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }
}

impl Drop for Operator {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        if std::thread::panicking() {
            let log = self.log();
            let tail: Vec<&str> = log.lines().rev().take(40).collect();
            eprintln!(
                "operator log (last lines, newest first):\n{}",
                tail.join("\n")
            );
        }
    }
}

/// A port on 127.0.0.1 that was free a moment ago.
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .expect("bind")
        .local_addr()
        .expect("addr")
        .port()
}

/// Runs `openssl ARGS`; a failure stops the test with openssl's words.
pub fn openssl(args: &[&str]) {
    let out = Command::new("openssl")
        .args(args)
        .output()
        .expect("openssl");
    assert!(
        out.status.success(),
        "openssl {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// A serving certificate for 127.0.0.1 signed by the cluster's CA, which the API server trusts.
pub fn serving_cert(dir: &Path) -> (PathBuf, PathBuf) {
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

/// Starts `image-policy run` on free ports with a serving certificate of the cluster's CA,
/// trusting `registry_ca`; returns once `/readyz` answers, with the webhook's port.
pub fn start_operator(dir: &Path, registry_ca: &Path, allow_unmatched: bool) -> (Operator, u16) {
    let flags: &[&str] = if allow_unmatched {
        &["--allow-unmatched-images"]
    } else {
        &[]
    };
    start_operator_with(dir, registry_ca, flags)
}

/// [`start_operator`] with further flags of `image-policy run`.
pub fn start_operator_with(dir: &Path, registry_ca: &Path, flags: &[&str]) -> (Operator, u16) {
    let (cert, key) = serving_cert(dir);
    let port = free_port();
    let mut args = vec![
        "--tls-cert-file",
        cert.to_str().unwrap(),
        "--tls-key-file",
        key.to_str().unwrap(),
        "--ca-file",
        registry_ca.to_str().unwrap(),
    ];
    args.extend_from_slice(flags);
    // One identity for every operator started here, one after another: the next one holds
    // the status Lease at once instead of waiting out the last one's.
    let (operator, _) = Operator::start(dir, "image-policy-local", port, None, &args);
    (operator, port)
}

/// The namespaces the chart's webhooks never intercept (with its default values), excluded as
/// the chart excludes them: by the label the API server protects, and by `matchConditions` on
/// the request's namespace.
const NAMESPACE_SELECTOR: &str = "  namespaceSelector:\n    matchExpressions:\n    - {key: kubernetes.io/metadata.name, operator: NotIn, values: [kube-system, image-policy-system]}\n";
const MATCH_CONDITIONS: &str = "  matchConditions:\n  - name: not-an-excluded-namespace\n    expression: \"!has(request.namespace) || !(request.namespace in ['kube-system', 'image-policy-system'])\"\n";

/// Registers the ValidatingWebhookConfiguration by URL, as the chart does by Service.
pub fn register_webhook(port: u16) {
    register_webhook_excluding(port, true);
}

/// [`register_webhook`], with the chart's namespaceSelector only when `selector`: without it,
/// its `matchConditions` alone exclude the chart's namespaces.
pub fn register_webhook_excluding(port: u16, selector: bool) {
    let ca = std::fs::read(std::env::var("IMAGE_POLICY_CA_CERT").unwrap()).expect("ca");
    let bundle = base64::engine::general_purpose::STANDARD.encode(ca);
    let rule = |groups: &str, versions: &str, resources: &str| {
        format!(
            "  - apiGroups: [{groups}]\n    apiVersions: [{versions}]\n    operations: [CREATE, UPDATE]\n    resources: [{resources}]\n"
        )
    };
    let selector = if selector { NAMESPACE_SELECTOR } else { "" };
    let config = format!(
        "apiVersion: admissionregistration.k8s.io/v1\nkind: ValidatingWebhookConfiguration\nmetadata:\n  name: {WEBHOOK_NAME}\n\
         webhooks:\n- name: {WEBHOOK_NAME}\n  admissionReviewVersions: [v1, v1beta1]\n  sideEffects: None\n  failurePolicy: Fail\n  timeoutSeconds: 10\n\
         \x20 clientConfig:\n    url: https://127.0.0.1:{port}/signing-policy-check\n    caBundle: {bundle}\n\
         {selector}{MATCH_CONDITIONS}\
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
    // A pinning webhook another test left would point at its stopped operator.
    unregister_pin_webhook();
}

/// Registers the MutatingWebhookConfiguration of `/pin-digests` by URL, as the chart does by
/// Service (Pods only, pinDigests=pods), with the validating webhook's name as the chart's.
pub fn register_pin_webhook(port: u16) {
    let ca = std::fs::read(std::env::var("IMAGE_POLICY_CA_CERT").unwrap()).expect("ca");
    let bundle = base64::engine::general_purpose::STANDARD.encode(ca);
    let config = format!(
        "apiVersion: admissionregistration.k8s.io/v1\nkind: MutatingWebhookConfiguration\nmetadata:\n  name: {WEBHOOK_NAME}\n\
         webhooks:\n- name: {WEBHOOK_NAME}\n  admissionReviewVersions: [v1, v1beta1]\n  sideEffects: None\n  failurePolicy: Fail\n  timeoutSeconds: 10\n\
         \x20 reinvocationPolicy: IfNeeded\n\
         \x20 clientConfig:\n    url: https://127.0.0.1:{port}/pin-digests\n    caBundle: {bundle}\n\
         {NAMESPACE_SELECTOR}{MATCH_CONDITIONS}\
         \x20 rules:\n  - apiGroups: [\"\"]\n    apiVersions: [v1]\n    operations: [CREATE, UPDATE]\n    resources: [pods, pods/ephemeralcontainers]\n"
    );
    kubectl(&["apply", "-f", "-"], Some(&config)).expect_ok("register the pinning webhook");
}

/// Removes the MutatingWebhookConfiguration of [`register_pin_webhook`], if any.
pub fn unregister_pin_webhook() {
    kubectl(
        &[
            "delete",
            "mutatingwebhookconfiguration",
            WEBHOOK_NAME,
            "--ignore-not-found",
        ],
        None,
    )
    .expect_ok("remove the pinning webhook");
}

/// Removes both webhook configurations of [`register_webhook`] and [`register_pin_webhook`],
/// if any: left behind, they point at a stopped operator and, failing closed, refuse what a
/// later test creates (ClusterImagePolicies included).
pub fn unregister_webhooks() {
    kubectl(
        &[
            "delete",
            "validatingwebhookconfiguration",
            WEBHOOK_NAME,
            "--ignore-not-found",
        ],
        None,
    )
    .expect_ok("remove the validating webhook");
    unregister_pin_webhook();
}

/// A ClusterImagePolicy for `registry_host/demo/*` with `keys`, of which the entry names
/// `pattern_keys`; `kube-system` and `excluded` are excluded.
pub fn policy_yaml(
    name: &str,
    registry_host: &str,
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
        registry_host,
        refs.join(", ")
    )
}

/// `policy` (as [`policy_yaml`] writes it) with `spec.verification.mode` set to `mode`.
pub fn with_mode(policy: &str, mode: &str) -> String {
    policy.replacen(
        "  verification:\n",
        &format!("  verification:\n    mode: {mode}\n"),
        1,
    )
}

/// `kubectl ARGS -o jsonpath=PATH`, which must succeed.
pub fn jsonpath(args: &[&str], path: &str) -> String {
    let output = format!("jsonpath={path}");
    kubectl(&[args, &["-o", &output]].concat(), None).expect_ok(path)
}

/// The public key of a signer, as PEM.
pub fn pem_of(signer: &SigStoreSigner) -> String {
    signer
        .to_sigstore_keypair()
        .expect("pair")
        .public_key_to_pem()
        .expect("pem")
}

/// kubectl's whole answer, both streams, as a user sees it.
pub fn said(run: &Run) -> String {
    format!("{}{}", run.stderr, run.stdout)
}

/// Creates a namespace, if needed. The API server labels it `kubernetes.io/metadata.name` with
/// its name, which the webhook's namespaceSelector reads.
pub fn namespace(name: &str) {
    let run = kubectl(&["create", "namespace", name], None);
    assert!(
        run.ok || run.stderr.contains("AlreadyExists"),
        "create namespace {name}: {}",
        said(&run)
    );
}

/// Applies the CRD that `image-policy crd` prints and waits until the API serves it.
pub fn install_crd() {
    let crd = crate::image_policy(&["crd"]).expect_ok("image-policy crd");
    kubectl(&["apply", "-f", "-"], Some(&crd)).expect_ok("apply the CRD");
    kubectl(
        &[
            "wait",
            "--for=condition=Established",
            "--timeout=60s",
            "crd/clusterimagepolicies.signing.apps.tanzu.vmware.com",
        ],
        None,
    )
    .expect_ok("CRD established");
}
