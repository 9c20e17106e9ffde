//! The chart installed with real Helm: hack/helm/helm.py (helm-python-sdk, Helm v4's Go SDK)
//! against the test cluster, the release's stored values, and the chart's ServiceAccount as a
//! kubeconfig of its own, so that an operator run outside the cluster has exactly the
//! chart's RBAC.

// A test harness: a failed step must stop with its reason.
#![allow(
    clippy::expect_used,
    clippy::unwrap_used,
    clippy::indexing_slicing,
    clippy::panic
)]

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use serde_json::Value;

use crate::cluster::{WEBHOOK_NAME, said};
use crate::{Run, eventually, kubectl};

/// The release's name.
pub const RELEASE: &str = "ip-e2e";
/// The release's namespace in most tests: another than the chart's, which the chart then
/// creates (labelled) and deletes with the release.
pub const RELEASE_NS: &str = "default";
/// The chart's namespace (docs/contract.md §5).
pub const CHART_NS: &str = "image-policy-system";
/// The chart's ServiceAccount, ClusterRole, Role and Deployment (docs/contract.md §5).
pub const MANAGER: &str = "image-policy-controller-manager";
/// The chart's ValidatingWebhookConfiguration (docs/contract.md §5).
pub const CONFIG: &str = "image-policy-validating-webhook-configuration";
/// The chart's MutatingWebhookConfiguration (pinDigests).
pub const MUTATING_CONFIG: &str = "image-policy-mutating-webhook-configuration";
/// The CRD, which the chart installs from `crds/`.
pub const CRD: &str = "clusterimagepolicies.signing.apps.tanzu.vmware.com";

/// The repository's root.
pub fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .unwrap()
        .to_path_buf()
}

/// The venv's python with helm-python-sdk, made (or checked) as hack/helm/test-chart.sh does.
pub fn helm_python() -> String {
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

/// `helm.py ARGS` from the repository's root, against the test cluster, for the release
/// [`RELEASE`] in one namespace.
pub struct Helm {
    python: String,
    namespace: &'static str,
}

impl Helm {
    /// Helm through the venv of hack/helm/venv.sh (made on first use), for the release in
    /// [`RELEASE_NS`].
    #[allow(clippy::new_without_default)]
    pub fn new() -> Helm {
        Helm::in_namespace(RELEASE_NS)
    }

    /// The same, for the release in `namespace`.
    pub fn in_namespace(namespace: &'static str) -> Helm {
        Helm {
            python: helm_python(),
            namespace,
        }
    }

    /// `helm.py ARGS`.
    pub fn run(&self, args: &[&str]) -> Run {
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
    pub fn deploy(&self, verb: &str, values: &Path, sets: &[&str]) -> String {
        self.deploy_as_given(verb, values, sets)
            .expect_ok(&format!("helm.py {verb}"))
    }

    /// `install` or `upgrade` exactly as given, whatever it answers.
    pub fn deploy_as_given(&self, verb: &str, values: &Path, sets: &[&str]) -> Run {
        let kubeconfig = std::env::var("KUBECONFIG").expect("KUBECONFIG");
        let mut args = vec![
            verb,
            RELEASE,
            "charts/image-policy-webhook",
            "-n",
            self.namespace,
            "--kubeconfig",
            &kubeconfig,
            "-f",
            values.to_str().unwrap(),
        ];
        for set in sets {
            args.extend(["--set", set]);
        }
        self.run(&args)
    }

    /// `install -n <namespace> --create-namespace` with the chart's default values, whatever
    /// it answers: the README's command.
    pub fn install_creating_namespace(&self) -> Run {
        let kubeconfig = std::env::var("KUBECONFIG").expect("KUBECONFIG");
        self.run(&[
            "install",
            RELEASE,
            "charts/image-policy-webhook",
            "-n",
            self.namespace,
            "--create-namespace",
            "--kubeconfig",
            &kubeconfig,
        ])
    }

    /// `uninstall --wait` of the release.
    pub fn uninstall(&self) -> Run {
        let kubeconfig = std::env::var("KUBECONFIG").expect("KUBECONFIG");
        self.run(&[
            "uninstall",
            RELEASE,
            "-n",
            self.namespace,
            "--kubeconfig",
            &kubeconfig,
            "--wait",
        ])
    }
}

/// The values the release in [`RELEASE_NS`] holds (Helm's storage: a Secret with the release,
/// base64 of gzipped JSON, base64-encoded once more by the API).
pub fn release_values(revision: u32) -> Value {
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

/// `kubectl get ARGS -o json`, parsed.
pub fn get_json(args: &[&str]) -> Value {
    let mut all = vec!["get"];
    all.extend(args);
    all.extend(["-o", "json"]);
    let text = kubectl(&all, None).expect_ok(&format!("kubectl {all:?}"));
    serde_json::from_str(&text).expect("JSON")
}

/// The object at `api_path` of the API server, `managedFields` included.
pub fn get_json_managed(api_path: &str) -> Value {
    // The raw API always includes managedFields.
    let text = kubectl(&["get", "--raw", api_path], None).expect_ok(&format!("GET {api_path}"));
    serde_json::from_str(&text).expect("JSON")
}

/// Whether `kubectl get ARGS` finds the object (any other failure fails the test).
pub fn exists(args: &[&str]) -> bool {
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

/// A token of the chart's ServiceAccount (the TokenRequest API: `kubectl create token`) in a
/// kubeconfig with the admin kubeconfig's server and CA.
pub fn service_account_kubeconfig(dir: &Path) -> PathBuf {
    let token = eventually(
        Duration::from_secs(30),
        "a token of the chart's ServiceAccount",
        || {
            let run = kubectl(
                &["-n", CHART_NS, "create", "token", MANAGER, "--duration=2h"],
                None,
            );
            run.ok.then(|| run.stdout.trim().to_owned())
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

/// `kubectl auth can-i ARGS` as the user of `kubeconfig`: "yes" or "no".
pub fn can_i(kubeconfig: &Path, args: &[&str]) -> String {
    let mut all = vec![
        "--kubeconfig",
        kubeconfig.to_str().unwrap(),
        "auth",
        "can-i",
    ];
    all.extend(args);
    kubectl(&all, None).stdout.trim().to_owned()
}

/// A clean slate for a test that installs the chart: no release, no webhook configuration of
/// another test's (which would intercept this one's objects), the CRD installed, no policy,
/// and the chart's namespace gone.
pub fn clean_slate(helm: &Helm) {
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
    let _ = kubectl(
        &[
            "delete",
            "mutatingwebhookconfiguration",
            MUTATING_CONFIG,
            "--ignore-not-found",
        ],
        None,
    );
    crate::cluster::install_crd();
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
}

/// Removes what a chart test made, however it ends (drop it after the operators): the
/// release, the webhook configuration, the policies, the test's namespace and the chart's.
pub struct Cleanup<'a> {
    /// Helm, to uninstall the release.
    pub helm: &'a Helm,
    /// The test's own namespace.
    pub namespace: &'a str,
    /// Further `kubectl` commands to run first.
    pub extra: &'a [&'a [&'a str]],
}

impl Drop for Cleanup<'_> {
    fn drop(&mut self) {
        for args in self.extra {
            let _ = kubectl(args, None);
        }
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
                "delete",
                "namespace",
                self.namespace,
                CHART_NS,
                "--ignore-not-found",
                "--timeout=90s",
            ],
            None,
        );
    }
}
