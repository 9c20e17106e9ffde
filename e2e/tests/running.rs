//! What already runs (#14), through a real API server and kube-controller-manager: the lease
//! holder checks the running workloads against the policy into `status.running`, at once
//! after a policy change and every resync period; 1,000 Pods of 10 Deployments with 3
//! distinct images cost one verification per image; and `image-policy audit` names exactly
//! the workloads a new policy file would refuse, changing nothing.

// A test crate: its helpers fail the test loudly by design.
#![allow(
    clippy::expect_used,
    clippy::unwrap_used,
    clippy::indexing_slicing,
    clippy::panic
)]

use std::collections::{BTreeSet, HashMap};
use std::process::Command;
use std::time::{Duration, Instant};

use image_policy_e2e::cluster::{
    install_crd, namespace, policy_yaml, register_webhook, start_operator_with, unregister_webhooks,
};
use image_policy_e2e::{Run, eventually, image_policy_bin, kubectl};
use image_policy_testsupport::cosign::Pusher;
use image_policy_testsupport::producers::{Cosign, Signing};
use image_policy_testsupport::registry::{Registry, RegistryOptions};
use serde_json::Value;

/// The namespace of this test's workloads; every other one is left out of the check.
const NS: &str = "running";
/// The repositories of the three signed images.
const REPOSITORIES: [&str; 3] = ["demo/app-a", "demo/app-b", "demo/app-c"];
const DEPLOYMENTS: usize = 10;
const REPLICAS: usize = 100;

/// `status.running` of the policy, once it has one.
fn running() -> Option<Value> {
    let run = kubectl(
        &["get", "clusterimagepolicy", "image-policy", "-o", "json"],
        None,
    );
    let policy: Value = serde_json::from_str(&run.stdout).ok()?;
    policy.pointer("/status/running").cloned()
}

/// `(kind, name, image)` of each refused image of `running` in this test's namespace.
fn refused(running: &Value) -> BTreeSet<(String, String, String)> {
    running["refused"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|r| r["namespace"] == NS)
        .map(|r| {
            let text = |f: &str| r[f].as_str().unwrap_or_default().to_owned();
            (text("kind"), text("name"), text("image"))
        })
        .collect()
}

/// Waits until `status.running` satisfies `check`, checked after `since`.
fn running_until(what: &str, limit: Duration, check: impl Fn(&Value) -> bool) -> Value {
    eventually(limit, what, || running().filter(|r| check(r)))
}

fn deployment_image(host: &str, i: usize) -> String {
    format!("{host}/{}:v1", REPOSITORIES[i % REPOSITORIES.len()])
}

/// `(Deployment, name, image)` of the test's Deployments whose index passes `keep`.
fn deployments(host: &str, keep: impl Fn(usize) -> bool) -> BTreeSet<(String, String, String)> {
    (0..DEPLOYMENTS)
        .filter(|i| keep(*i))
        .map(|i| {
            (
                "Deployment".to_owned(),
                format!("app-{i}"),
                deployment_image(host, i),
            )
        })
        .collect()
}

/// `kubectl create deployment` in the test's namespace.
fn create_deployment(name: &str, image: &str, replicas: usize) -> Run {
    let (image, replicas) = (format!("--image={image}"), format!("--replicas={replicas}"));
    let args = ["create", "deployment", name, &image, &replicas, "-n", NS];
    kubectl(&args, None)
}

/// The names of the Pods of the Deployment `sneaked`.
fn sneaked_pods() -> String {
    let args = ["get", "pods", "-n", NS, "-l", "app=sneaked", "-o", "name"];
    kubectl(&args, None).stdout
}

/// The policy's `metadata.generation`.
fn generation() -> String {
    let path = "jsonpath={.metadata.generation}";
    kubectl(
        &["get", "clusterimagepolicy", "image-policy", "-o", path],
        None,
    )
    .expect_ok("generation")
}

/// The peak resident set of process `pid`, in KiB.
fn peak_rss_kib(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).expect("status");
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches(" kB").trim().parse().ok())
        .expect("VmHWM")
}

/// Runs `image-policy audit` with `args`: its exit code and standard output.
fn audit(args: &[&str]) -> (Option<i32>, String, String) {
    let output = Command::new(image_policy_bin())
        .arg("audit")
        .args(args)
        .output()
        .expect("image-policy audit");
    (
        output.status.code(),
        String::from_utf8_lossy(&output.stdout).into_owned(),
        String::from_utf8_lossy(&output.stderr).into_owned(),
    )
}

#[tokio::test(flavor = "multi_thread")]
async fn running_workloads_are_checked_after_changes_and_every_resync_and_audited() {
    let registry = Registry::start(RegistryOptions::default());
    let pusher = Pusher::new(&registry);
    let host = registry.host();
    // Signed by the real cosign, in its `.sig` layout.
    let cosign = Cosign::new(&registry);
    let (k1, k2) = (cosign.generate_key(), cosign.generate_key());
    for repository in REPOSITORIES {
        let digest = pusher.push_image(repository, "v1").await;
        let image = format!("{host}/{repository}@{digest}");
        cosign.sign(&image, &k1, Signing::LEGACY_TAG);
    }
    pusher.push_image("demo/unsigned", "v1").await;

    install_crd();
    for ns in ["default", "kube-system", "image-policy-system"] {
        namespace(ns);
    }
    let _ = kubectl(&["delete", "clusterimagepolicy", "--all"], None);
    let _ = kubectl(&["delete", "deployments", "--all", "-n", NS], None);
    namespace(NS);
    // Other suites leave Pods behind: only this test's namespace is checked.
    let all = kubectl(
        &[
            "get",
            "namespaces",
            "-o",
            "jsonpath={.items[*].metadata.name}",
        ],
        None,
    )
    .expect_ok("namespaces");
    let mut flags = vec!["--resync-period", "5s"];
    let others: Vec<String> = all
        .split_whitespace()
        .filter(|ns| *ns != NS)
        .map(|ns| format!("--unchecked-namespace={ns}"))
        .collect();
    flags.extend(others.iter().map(String::as_str));

    let dir = tempfile::tempdir().expect("dir");
    let ca = registry.ca_path();
    let (operator, port) = start_operator_with(dir.path(), &ca, &flags);
    register_webhook(port);
    let keys = [("k1", k1.public_pem.clone()), ("k2", k2.public_pem.clone())];
    let keys: Vec<(&str, &str)> = keys.iter().map(|(n, p)| (*n, p.as_str())).collect();
    let trusting_k1 = policy_yaml("image-policy", &host, &keys, &["k1"]);
    kubectl(&["apply", "-f", "-"], Some(&trusting_k1)).expect_ok("apply the policy");

    // 10 Deployments of 100 Pods, 3 distinct images: kube-controller-manager creates the
    // Pods through admission.
    eventually(Duration::from_secs(30), "the policy is in force", || {
        create_deployment("app-0", &deployment_image(&host, 0), REPLICAS)
            .ok
            .then_some(())
    });
    for i in 1..DEPLOYMENTS {
        create_deployment(&format!("app-{i}"), &deployment_image(&host, i), REPLICAS)
            .expect_ok("create a deployment");
    }
    let started = Instant::now();
    eventually(Duration::from_secs(300), "1,000 Pods", || {
        let names = kubectl(&["get", "pods", "-n", NS, "-o", "name"], None).stdout;
        (names.lines().count() == DEPLOYMENTS * REPLICAS).then_some(())
    });
    eprintln!(
        "kube-controller-manager created {} Pods through admission in {:?}",
        DEPLOYMENTS * REPLICAS,
        started.elapsed()
    );
    running_until("the 10 workloads checked", Duration::from_secs(60), |r| {
        r["workloads"] == DEPLOYMENTS && r["refusedWorkloads"] == 0
    });

    // The cost: a new operator, with empty caches, checks the 1,000 Pods at once.
    let checks_logged = |log: &str| log.matches("Running workloads checked").count();
    let before = checks_logged(&operator.log());
    drop(operator);
    registry.clear_requests();
    let (operator, port) = start_operator_with(dir.path(), &ca, &flags);
    register_webhook(port);
    eventually(
        Duration::from_secs(60),
        "the restarted operator's check",
        || (checks_logged(&operator.log()) > before).then_some(()),
    );
    let requests = registry.requests();
    let mut seen: HashMap<(String, String), usize> = HashMap::new();
    for r in requests.iter().filter(|r| r.path != "/v2/") {
        *seen.entry((r.method.clone(), r.path.clone())).or_default() += 1;
    }
    let repeated: Vec<_> = seen.iter().filter(|(_, n)| **n > 1).collect();
    assert!(
        repeated.is_empty(),
        "asked twice: {repeated:?} of {requests:?}"
    );
    let repositories: BTreeSet<&str> = REPOSITORIES
        .iter()
        .copied()
        .filter(|repo| {
            seen.keys()
                .any(|(_, p)| p.starts_with(&format!("/v2/{repo}/")))
        })
        .collect();
    assert_eq!(repositories.len(), REPOSITORIES.len(), "{requests:?}");
    let peak = peak_rss_kib(operator.pid());
    eprintln!(
        "checking {} Pods of {DEPLOYMENTS} Deployments, 3 images, cold caches: {} registry requests, each path once; operator peak RSS {:.1} MiB",
        DEPLOYMENTS * REPLICAS,
        requests.len(),
        peak as f64 / 1024.0
    );
    assert!(peak < 64 * 1024, "peak RSS {peak} KiB");
    let table = kubectl(&["get", "clusterimagepolicies"], None).expect_ok("get");
    assert!(table.lines().next().unwrap().contains("REFUSED"), "{table}");

    // The key removed from the entry: every workload would be refused now, and the status
    // names them all.
    let trusting_k2 = policy_yaml("image-policy", &host, &keys, &["k2"]);
    kubectl(&["apply", "-f", "-"], Some(&trusting_k2)).expect_ok("apply without k1");
    let found = running_until("the 10 workloads refused", Duration::from_secs(30), |r| {
        r["refusedWorkloads"] == DEPLOYMENTS
    });
    let all_deployments = deployments(&host, |_| true);
    assert_eq!(refused(&found), all_deployments, "{found}");
    assert!(
        found["refused"][0]["message"]
            .as_str()
            .unwrap()
            .contains("is not signed"),
        "{found}"
    );
    let metrics = operator.metrics();
    assert!(
        metrics.contains(&format!(
            "image_policy_running_refused_workloads {DEPLOYMENTS}\n"
        )),
        "{metrics}"
    );
    let table = kubectl(&["get", "clusterimagepolicies"], None).expect_ok("get");
    let row = table.lines().nth(1).unwrap();
    assert!(row.split_whitespace().any(|c| c == "10"), "{table}");

    // Restored: nothing is refused any more.
    kubectl(&["apply", "-f", "-"], Some(&trusting_k1)).expect_ok("apply with k1 again");
    running_until("nothing refused", Duration::from_secs(30), |r| {
        r["refusedWorkloads"] == 0
    });

    // A Deployment whose Pod got in while the webhook was away: the policy is unchanged, so
    // only the resync finds it, within its period.
    unregister_webhooks();
    let unsigned = format!("{host}/demo/unsigned:v1");
    create_deployment("sneaked", &unsigned, 1).expect_ok("create while no webhook");
    eventually(Duration::from_secs(60), "the sneaked Pod", || {
        (!sneaked_pods().is_empty()).then_some(())
    });
    register_webhook(port);
    let registered = Instant::now();
    let sneaked: BTreeSet<_> = [(
        "Deployment".to_owned(),
        "sneaked".to_owned(),
        unsigned.clone(),
    )]
    .into_iter()
    .collect();
    running_until("the sneaked workload", Duration::from_secs(30), |r| {
        refused(r) == sneaked
    });
    eprintln!("found by the resync {:?} after", registered.elapsed());

    // image-policy audit: what a new policy file would refuse, exactly, and nothing changed.
    let file = |name: &str, text: &str| {
        let path = dir.path().join(name);
        std::fs::write(&path, text).expect("write");
        path.to_str().unwrap().to_owned()
    };
    let only_a = trusting_k2.replacen(
        "    images:\n",
        &format!(
            "    images:\n    - namePattern: {host}/demo/app-a*\n      keys: [{{name: k1}}]\n"
        ),
        1,
    );
    let new = file("new.yaml", &only_a);
    let ca_file = ca.to_str().unwrap();
    let mut args = vec!["--policy", new.as_str(), "--ca-file", ca_file, "-o", "json"];
    args.extend(others.iter().map(String::as_str));
    let before = generation();
    let (code, out, err) = audit(&args);
    assert_eq!(code, Some(1), "{out}\n{err}");
    let report: Value = serde_json::from_str(&out).expect("json");
    // app-a (every third Deployment) is still trusted with k1.
    let mut expected = deployments(&host, |i| i % 3 != 0);
    expected.extend(sneaked.iter().cloned());
    assert_eq!(refused(&report), expected, "{out}");
    assert_eq!(report["refusedWorkloads"], expected.len(), "{out}");
    assert_eq!(report["workloads"], DEPLOYMENTS + 1, "{out}");
    assert_eq!(generation(), before, "audit changed the policy");

    // The policy in force, once the sneaked Deployment is gone: nothing, exit 0; in text.
    kubectl(&["delete", "deployment", "sneaked", "-n", NS], None).expect_ok("delete sneaked");
    eventually(Duration::from_secs(60), "the sneaked Pod gone", || {
        sneaked_pods().is_empty().then_some(())
    });
    let current = file("current.yaml", &trusting_k1);
    let mut args = vec!["--policy", current.as_str(), "--ca-file", ca_file];
    args.extend(others.iter().map(String::as_str));
    let (code, out, err) = audit(&args);
    assert_eq!(code, Some(0), "{out}\n{err}");
    assert_eq!(
        out,
        format!("0 of {DEPLOYMENTS} workloads would be refused.\n")
    );
    // Unusable input: 2, with the reason.
    let broken = file("broken.yaml", "kind: ClusterImagePolicy\nspec: [\n");
    let (code, _, err) = audit(&["--policy", &broken]);
    assert_eq!(code, Some(2), "{err}");
    assert!(err.contains("broken.yaml"), "{err}");

    unregister_webhooks();
    let _ = kubectl(&["delete", "clusterimagepolicy", "image-policy"], None);
    let _ = kubectl(&["delete", "namespace", NS, "--wait=false"], None);
    drop(operator);
}
