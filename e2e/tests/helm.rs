//! The chart installed with real Helm (hack/helm/helm.py on helm-python-sdk) on the real API
//! server, in its development mode (`webhook.url`): the operator runs outside the cluster as
//! the chart's own ServiceAccount, so that operating works with exactly the chart's RBAC, and
//! taking one rule away visibly breaks it. Then the seed's checks through that installation,
//! an upgrade that changes `allowUnmatchedImages`, and an uninstall that leaves only the CRD.

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
use std::time::{Duration, Instant};

use base64::Engine as _;
use image_policy_e2e::cluster::{
    WEBHOOK_NAME, free_port, namespace, pem_of, policy_yaml, said, serving_cert,
};
use image_policy_e2e::{Run, eventually, http_ok, image_policy_bin, kubectl};
use serde_json::Value;
use support::cosign::Pusher;
use support::registry::{Registry, RegistryOptions};

/// The release, in a namespace of its own choosing (the chart refuses to create its
/// deploymentNamespace when the release lives there).
const RELEASE: &str = "ip-e2e";
const RELEASE_NS: &str = "default";
/// The chart's fixed names (SPEC §5).
const CHART_NS: &str = "image-policy-system";
const MANAGER: &str = "image-policy-controller-manager";
const CONFIG: &str = "image-policy-validating-webhook-configuration";
const CRD: &str = "clusterimagepolicies.signing.apps.tanzu.vmware.com";
/// Where this test's workloads go.
const TEST_NS: &str = "helm-e2e";
/// A fixed lease identity: a restarted operator holds the status lease at once.
const POD_NAME: &str = "ip-helm-e2e";

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .unwrap()
        .to_path_buf()
}

/// The venv's python with helm-python-sdk, made (or checked) as hack/helm/test-chart.sh does.
fn helm_python() -> String {
    let out = Command::new("bash")
        .args([
            "-c",
            "source hack/helm/venv.sh >&2 && helm_venv >&2 && printf %s \"$HELM_PY\"",
        ])
        .current_dir(repo())
        .output()
        .expect("bash");
    assert!(
        out.status.success(),
        "hack/helm/venv.sh: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).expect("utf-8")
}

/// `helm.py ARGS` from the repository's root, against the test cluster.
struct Helm {
    python: String,
}

impl Helm {
    fn run(&self, args: &[&str]) -> Run {
        let out = Command::new(&self.python)
            .arg("hack/helm/helm.py")
            .args(args)
            .current_dir(repo())
            .env("PYTHONDONTWRITEBYTECODE", "1")
            .output()
            .expect("helm.py");
        Run {
            ok: out.status.success(),
            stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
        }
    }

    /// `install` or `upgrade` of the release with the values file and `--set` expressions.
    fn deploy(&self, verb: &str, values: &Path, sets: &[&str]) -> String {
        let kubeconfig = std::env::var("KUBECONFIG").expect("KUBECONFIG");
        let mut args = vec![
            verb,
            RELEASE,
            "charts/image-policy-webhook",
            "-n",
            RELEASE_NS,
            "--kubeconfig",
            &kubeconfig,
            "-f",
            values.to_str().unwrap(),
        ];
        for set in sets {
            args.extend(["--set", set]);
        }
        self.run(&args).expect_ok(&format!("helm.py {verb}"))
    }

    fn uninstall(&self) -> Run {
        let kubeconfig = std::env::var("KUBECONFIG").expect("KUBECONFIG");
        self.run(&[
            "uninstall",
            RELEASE,
            "-n",
            RELEASE_NS,
            "--kubeconfig",
            &kubeconfig,
            "--wait",
        ])
    }
}

/// The values the release holds (Helm's storage: a Secret with the release, base64 of
/// gzipped JSON, base64-encoded once more by the API).
fn release_values(revision: u32) -> Value {
    let kubeconfig = std::env::var("KUBECONFIG").expect("KUBECONFIG");
    let script = format!(
        "kubectl -n {RELEASE_NS} get secret sh.helm.release.v1.{RELEASE}.v{revision} \
         -o jsonpath='{{.data.release}}' | base64 -d | base64 -d | gunzip"
    );
    let out = Command::new("bash")
        .args(["-o", "pipefail", "-c", &script])
        .env("KUBECONFIG", kubeconfig)
        .output()
        .expect("bash");
    assert!(
        out.status.success(),
        "reading release v{revision}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let release: Value = serde_json::from_slice(&out.stdout).expect("release JSON");
    release["config"].clone()
}

/// The operator, run outside the cluster with a kubeconfig of its own; stopped when dropped,
/// its log printed if the test fails.
struct Operator {
    child: Child,
    log: PathBuf,
}

impl Operator {
    fn start(dir: &Path, kubeconfig: &Path, port: u16, registry_ca: &Path, allow: bool) -> Self {
        let (cert, key) = serving_cert(dir);
        let metrics = free_port();
        let log = dir.join(format!(
            "operator-{}.log",
            if allow { "allow" } else { "deny" }
        ));
        let mut command = Command::new(image_policy_bin());
        command
            .args(["run", "--namespace", CHART_NS])
            .args(["--webhook-addr", &format!("127.0.0.1:{port}")])
            .args(["--metrics-addr", &format!("127.0.0.1:{metrics}")])
            .args(["--tls-cert-file", cert.to_str().unwrap()])
            .args(["--tls-key-file", key.to_str().unwrap()])
            .args(["--ca-file", registry_ca.to_str().unwrap()])
            .env("KUBECONFIG", kubeconfig)
            .env("POD_NAME", POD_NAME)
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&log).expect("log"));
        if allow {
            command.arg("--allow-unmatched-images");
        }
        let child = command.spawn().expect("start image-policy run");
        let operator = Operator { child, log };
        eventually(Duration::from_secs(30), "the operator is ready", || {
            http_ok(metrics, "/readyz").then_some(())
        });
        operator
    }

    fn log(&self) -> String {
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

/// Removes what the test made, however it ends (dropped after the operators).
struct Cleanup<'a> {
    helm: &'a Helm,
}

impl Drop for Cleanup<'_> {
    fn drop(&mut self) {
        let _ = self.helm.uninstall();
        let _ = kubectl(
            &[
                "delete",
                "validatingwebhookconfiguration",
                CONFIG,
                "--ignore-not-found",
            ],
            None,
        );
        let _ = kubectl(&["delete", "clusterimagepolicy", "--all"], None);
        let _ = kubectl(
            &[
                "-n",
                "kube-system",
                "delete",
                "pod",
                "helm-e2e-bb",
                "--ignore-not-found",
            ],
            None,
        );
        let _ = kubectl(
            &[
                "delete",
                "namespace",
                TEST_NS,
                CHART_NS,
                "--ignore-not-found",
                "--timeout=90s",
            ],
            None,
        );
    }
}

fn get_json(args: &[&str]) -> Value {
    let mut all = vec!["get"];
    all.extend(args);
    all.extend(["-o", "json"]);
    let text = kubectl(&all, None).expect_ok(&format!("kubectl {all:?}"));
    serde_json::from_str(&text).expect("JSON")
}

fn get_json_managed(args: &[&str]) -> Value {
    let mut all = vec!["get"];
    all.extend(args);
    all.extend(["-o", "json", "--show-managed-fields"]);
    let text = kubectl(&all, None).expect_ok(&format!("kubectl {all:?}"));
    serde_json::from_str(&text).expect("JSON")
}

fn exists(args: &[&str]) -> bool {
    let mut all = vec!["get"];
    all.extend(args);
    let run = kubectl(&all, None);
    assert!(
        run.ok || run.stderr.contains("NotFound") || run.stderr.contains("not found"),
        "kubectl {all:?}: {}",
        said(&run)
    );
    run.ok
}

/// The chart's ServiceAccount token (from the Secret the token controller creates on 1.20)
/// in a kubeconfig with the admin kubeconfig's server and CA.
fn service_account_kubeconfig(dir: &Path) -> PathBuf {
    let token = eventually(
        Duration::from_secs(30),
        "the ServiceAccount's token Secret",
        || {
            let secrets = get_json(&["-n", CHART_NS, "secrets"]);
            secrets["items"].as_array()?.iter().find_map(|s| {
                let for_manager = s["type"] == "kubernetes.io/service-account-token"
                    && s["metadata"]["annotations"]["kubernetes.io/service-account.name"]
                        == MANAGER;
                let token = s["data"]["token"].as_str()?;
                for_manager.then(|| {
                    let bytes = base64::engine::general_purpose::STANDARD
                        .decode(token)
                        .expect("token base64");
                    String::from_utf8(bytes).expect("token utf-8")
                })
            })
        },
    );
    let admin: Value = serde_json::from_str(
        &kubectl(&["config", "view", "--raw", "-o", "json"], None).expect_ok("config view"),
    )
    .expect("kubeconfig JSON");
    let context = admin["current-context"].as_str().expect("current-context");
    let cluster_name = admin["contexts"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["name"] == context)
        .expect("context")["context"]["cluster"]
        .clone();
    let cluster = admin["clusters"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["name"] == cluster_name)
        .expect("cluster")["cluster"]
        .clone();
    let config = serde_json::json!({
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [{"name": "local", "cluster": cluster}],
        "users": [{"name": MANAGER, "user": {"token": token}}],
        "contexts": [{"name": MANAGER, "context": {"cluster": "local", "user": MANAGER}}],
        "current-context": MANAGER,
    });
    let path = dir.join("manager.kubeconfig");
    std::fs::write(&path, config.to_string()).expect("write kubeconfig");
    path
}

fn can_i(kubeconfig: &Path, args: &[&str]) -> String {
    let mut all = vec![
        "--kubeconfig",
        kubeconfig.to_str().unwrap(),
        "auth",
        "can-i",
    ];
    all.extend(args);
    kubectl(&all, None).stdout.trim().to_owned()
}

fn ready_and_keys() -> (String, i64, i64, i64) {
    let policy = get_json(&["clusterimagepolicy", "image-policy"]);
    let ready = policy["status"]["conditions"]
        .as_array()
        .and_then(|c| c.iter().find(|c| c["type"] == "Ready"))
        .cloned()
        .unwrap_or(Value::Null);
    (
        ready["status"].as_str().unwrap_or("").to_owned(),
        ready["observedGeneration"].as_i64().unwrap_or(0),
        policy["metadata"]["generation"].as_i64().unwrap_or(0),
        policy["status"]["keys"].as_i64().unwrap_or(0),
    )
}

#[tokio::test(flavor = "multi_thread")]
async fn the_chart_installs_operates_with_its_rbac_upgrades_and_uninstalls() {
    let started = Instant::now();
    let registry = Registry::start(RegistryOptions::default());
    let pusher = Pusher::new(&registry);
    let demo = pusher.push_demo().await;
    let (key_a, key_b) = (demo.key, demo.other_key);
    let host = registry.host();
    let (pem_a, pem_b) = (pem_of(&key_a), pem_of(&key_b));

    let helm = Helm {
        python: helm_python(),
    };
    // A clean slate: another test's webhook, policies or namespace (not Helm's) would clash.
    let _ = helm.uninstall();
    for config in [WEBHOOK_NAME, CONFIG] {
        let _ = kubectl(
            &[
                "delete",
                "validatingwebhookconfiguration",
                config,
                "--ignore-not-found",
            ],
            None,
        );
    }
    image_policy_e2e::cluster::install_crd();
    let _ = kubectl(&["delete", "clusterimagepolicy", "--all"], None);
    kubectl(
        &[
            "delete",
            "namespace",
            CHART_NS,
            "--ignore-not-found",
            "--timeout=90s",
        ],
        None,
    )
    .expect_ok("remove a namespace left by other tests");
    let cleanup = Cleanup { helm: &helm };

    // Install, in development mode: the webhook calls the operator outside the cluster.
    let dir = tempfile::tempdir().expect("dir");
    let port = free_port();
    let url = format!("https://127.0.0.1:{port}/signing-policy-check");
    let ca = std::fs::read(std::env::var("IMAGE_POLICY_CA_CERT").expect("IMAGE_POLICY_CA_CERT"))
        .expect("CA");
    let bundle = base64::engine::general_purpose::STANDARD.encode(ca);
    let values = dir.path().join("values.yaml");
    std::fs::write(
        &values,
        format!("webhook:\n  url: {url}\n  caBundle: {bundle}\n"),
    )
    .expect("values");
    let out = helm.deploy("install", &values, &[]);
    eprintln!("[helm e2e] {}", out.trim());
    assert!(out.contains("revision 1"), "{out}");
    assert_eq!(release_values(1)["webhook"]["url"], url.as_str());

    // The installed webhook configuration: routed to the URL, and never intercepting
    // kube-system or the chart's namespace.
    let config = get_json(&["validatingwebhookconfiguration", CONFIG]);
    let webhooks = config["webhooks"].as_array().expect("webhooks");
    assert_eq!(webhooks.len(), 1, "{config}");
    let webhook = &webhooks[0];
    assert_eq!(webhook["name"], WEBHOOK_NAME);
    assert_eq!(webhook["clientConfig"]["url"], url.as_str());
    assert_eq!(webhook["failurePolicy"], "Fail");
    let expressions = webhook["namespaceSelector"]["matchExpressions"]
        .as_array()
        .expect("matchExpressions");
    let excluded = expressions
        .iter()
        .find(|e| e["key"] == "kubernetes.io/metadata.name" && e["operator"] == "NotIn")
        .unwrap_or_else(|| panic!("no NotIn on the namespace name: {expressions:?}"));
    for ns in ["kube-system", CHART_NS] {
        assert!(
            excluded["values"]
                .as_array()
                .unwrap()
                .iter()
                .any(|v| v == ns),
            "{ns} is intercepted: {excluded}"
        );
    }
    assert!(webhook["namespaceSelector"]["matchLabels"].is_null());
    let chart_ns = get_json(&["namespace", CHART_NS]);
    assert_eq!(
        chart_ns["metadata"]["labels"]["kubernetes.io/metadata.name"],
        CHART_NS
    );

    // The operator as the chart's ServiceAccount, with nothing but the chart's RBAC.
    let kubeconfig = service_account_kubeconfig(dir.path());
    assert_eq!(
        can_i(
            &kubeconfig,
            &[
                "patch",
                "clusterimagepolicies.signing.apps.tanzu.vmware.com",
                "--subresource=status"
            ]
        ),
        "yes"
    );
    assert_eq!(can_i(&kubeconfig, &["list", "pods"]), "no");
    assert_eq!(
        can_i(
            &kubeconfig,
            &[
                "delete",
                "clusterimagepolicies.signing.apps.tanzu.vmware.com"
            ]
        ),
        "no"
    );
    let operator = Operator::start(dir.path(), &kubeconfig, port, &registry.ca_path(), false);

    for ns in [TEST_NS, "kube-system", "excluded"] {
        namespace(ns);
    }
    let apply_policy = |keys: &[(&str, &str)], pattern: &[&str]| {
        kubectl(
            &["apply", "-f", "-"],
            Some(&policy_yaml("image-policy", &host, keys, pattern)),
        )
        .expect_ok("apply the policy");
    };
    eventually(
        Duration::from_secs(30),
        "the webhook admits the policy",
        || {
            let run = kubectl(
                &["apply", "-f", "-"],
                Some(&policy_yaml(
                    "image-policy",
                    &host,
                    &[("k", &pem_a)],
                    &["k"],
                )),
            );
            run.ok.then_some(())
        },
    );

    // The seed's checks through the installation.
    let image = format!("{host}/demo/signed:v1");
    let run = eventually(Duration::from_secs(30), "the policy is enforced", || {
        let run = kubectl(
            &[
                "-n",
                TEST_NS,
                "run",
                "x",
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
            .contains("Image policy enforcement was not applied"))
        .then_some(run)
    });
    assert_eq!(said(&run), "pod/x created\n");

    let fail = format!("{host}/demo/other-key:v1");
    let run = kubectl(
        &[
            "-n",
            TEST_NS,
            "run",
            "y",
            &format!("--image={fail}"),
            "--restart=Never",
        ],
        None,
    );
    assert!(!run.ok, "{}", said(&run));
    assert_eq!(
        run.stderr,
        format!(
            "Error from server (The image: {fail} is not signed.): admission webhook \"{WEBHOOK_NAME}\" denied the request: The image: {fail} is not signed.\n"
        )
    );

    let unmatched = "Could not verify against any image policies for container image: busybox.";
    let run = kubectl(
        &[
            "-n",
            TEST_NS,
            "run",
            "bb",
            "--image=busybox",
            "--restart=Never",
        ],
        None,
    );
    assert!(!run.ok, "{}", said(&run));
    assert_eq!(
        run.stderr,
        format!(
            "Error from server ({unmatched}): admission webhook \"{WEBHOOK_NAME}\" denied the request: {unmatched}\n"
        )
    );

    // The excluded namespaces are not intercepted at all, even for an unmatched image.
    let run = kubectl(
        &[
            "-n",
            "kube-system",
            "run",
            "helm-e2e-bb",
            "--image=busybox",
            "--restart=Never",
        ],
        None,
    );
    assert_eq!(said(&run), "pod/helm-e2e-bb created\n");

    // The status is written as the chart's ServiceAccount (status patch and its Lease).
    eventually(Duration::from_secs(30), "READY True", || {
        let (ready, observed, generation, _) = ready_and_keys();
        (ready == "True" && observed == generation).then_some(())
    });
    let table = kubectl(&["get", "clusterimagepolicies"], None).expect_ok("get policies");
    eprintln!("[helm e2e] {table}");
    assert!(
        table
            .lines()
            .any(|l| l.split_whitespace().take(2).eq(["image-policy", "True"])),
        "{table}"
    );
    let lease = get_json(&["-n", CHART_NS, "lease", "image-policy-controller"]);
    assert_eq!(lease["spec"]["holderIdentity"], POD_NAME);

    // Upgrade: allowUnmatchedImages=true. In development mode the chart installs no
    // Deployment, so the value reaches the operator through the release: it is restarted
    // with the flag as the release now holds it.
    let out = helm.deploy("upgrade", &values, &["allowUnmatchedImages=true"]);
    eprintln!("[helm e2e] {}", out.trim());
    assert!(out.contains("revision 2"), "{out}");
    let allow = release_values(2)["allowUnmatchedImages"] == true;
    assert!(allow, "the release does not hold allowUnmatchedImages=true");
    drop(operator);
    let operator = Operator::start(dir.path(), &kubeconfig, port, &registry.ca_path(), allow);
    let run = eventually(Duration::from_secs(30), "busybox admitted", || {
        let run = kubectl(
            &[
                "-n",
                TEST_NS,
                "run",
                "bb",
                "--image=busybox",
                "--restart=Never",
            ],
            None,
        );
        run.ok.then_some(run)
    });
    assert_eq!(
        said(&run),
        "Warning: busybox did not match any image policies. Container will be created as AllowUnmatchedImages flag is true.\npod/bb created\n"
    );

    // The RBAC is needed: without the status rule, a policy change is not reported. The
    // rule is taken away as a chart without it would: a server-side apply by Helm's own
    // field manager (a plain `kubectl patch` would make the next upgrade conflict).
    let role = get_json_managed(&["clusterrole", MANAGER]);
    let manager = role["metadata"]["managedFields"]
        .as_array()
        .expect("managedFields")
        .iter()
        .find(|f| f["operation"] == "Apply")
        .expect("Helm's server-side apply")["manager"]
        .as_str()
        .expect("manager")
        .to_owned();
    let mut rules = role["rules"].as_array().expect("rules").clone();
    let index = rules
        .iter()
        .position(|r| r["resources"] == serde_json::json!(["clusterimagepolicies/status"]))
        .expect("the status rule");
    rules.remove(index);
    let reduced = serde_json::json!({
        "apiVersion": "rbac.authorization.k8s.io/v1",
        "kind": "ClusterRole",
        "metadata": {"name": MANAGER, "labels": role["metadata"]["labels"]},
        "rules": rules,
    });
    kubectl(
        &[
            "apply",
            "--server-side",
            &format!("--field-manager={manager}"),
            "-f",
            "-",
        ],
        Some(&reduced.to_string()),
    )
    .expect_ok("drop the status rule");
    eventually(Duration::from_secs(10), "the rule is gone", || {
        (can_i(
            &kubeconfig,
            &[
                "patch",
                "clusterimagepolicies.signing.apps.tanzu.vmware.com",
                "--subresource=status",
            ],
        ) == "no")
            .then_some(())
    });
    let before = operator.log().len();
    apply_policy(&[("k", &pem_a), ("k2", &pem_b)], &["k", "k2"]);
    let denied_since = Instant::now();
    while denied_since.elapsed() < Duration::from_secs(10) {
        let (_, observed, generation, keys) = ready_and_keys();
        assert!(
            observed < generation && keys == 1,
            "the status was written without the status rule (keys {keys}, generation {generation}, observed {observed})"
        );
        std::thread::sleep(Duration::from_millis(500));
    }
    let log = operator.log();
    let new_lines = &log[before..];
    assert!(
        new_lines
            .lines()
            .any(|l| l.contains("Status not updated")
                && (l.contains("403") || l.contains("forbidden"))),
        "no 403 in the operator's log:\n{new_lines}"
    );

    // An upgrade with the same values restores the rule; the pending status is then written.
    let out = helm.deploy("upgrade", &values, &["allowUnmatchedImages=true"]);
    eprintln!("[helm e2e] {}", out.trim());
    assert_eq!(
        can_i(
            &kubeconfig,
            &[
                "patch",
                "clusterimagepolicies.signing.apps.tanzu.vmware.com",
                "--subresource=status"
            ]
        ),
        "yes",
        "helm upgrade did not restore the ClusterRole: {}",
        get_json(&["clusterrole", MANAGER])
    );
    eventually(
        Duration::from_secs(30),
        "the status is written again",
        || {
            let (ready, observed, generation, keys) = ready_and_keys();
            (ready == "True" && observed == generation && keys == 2).then_some(())
        },
    );

    // Uninstall: nothing of the chart's is left but the CRD.
    let out = helm.uninstall().expect_ok("helm.py uninstall");
    eprintln!("[helm e2e] {}", out.trim());
    for kind in [
        "validatingwebhookconfiguration",
        "clusterrole",
        "clusterrolebinding",
    ] {
        let name = if kind == "validatingwebhookconfiguration" {
            CONFIG
        } else {
            MANAGER
        };
        assert!(!exists(&[kind, name]), "{kind} {name} is left");
    }
    for kind in ["serviceaccount", "role", "rolebinding"] {
        assert!(
            !exists(&["-n", CHART_NS, kind, MANAGER]),
            "{kind} {MANAGER} is left"
        );
    }
    let gone = !exists(&["namespace", CHART_NS])
        || get_json(&["namespace", CHART_NS])["status"]["phase"] == "Terminating";
    assert!(gone, "the chart's namespace is left");
    let releases = kubectl(
        &[
            "-n",
            RELEASE_NS,
            "get",
            "secrets",
            "-l",
            &format!("owner=helm,name={RELEASE}"),
            "-o",
            "name",
        ],
        None,
    )
    .expect_ok("release secrets");
    assert_eq!(releases.trim(), "", "the release's records are left");
    assert!(exists(&["crd", CRD]), "the CRD went with the release");

    drop(operator);
    drop(cleanup);
    eprintln!("[helm e2e] passed in {:?}", started.elapsed());
}
