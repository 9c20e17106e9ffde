use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use futures::future::BoxFuture;
use image_policy_crd::{ClusterImagePolicy, SecretRef};
use k8s_openapi::api::core::v1::Pod;
use tokio::sync::watch;

use super::workloads::{Owners, RunningPod, group, running_pod};
use super::*;
use crate::policy::PolicyState;
use crate::verify::{Verifier, VerifyConfig};
use crate::webhook::Webhook;
use crate::webhook::admit::Settings;
use crate::webhook::credentials::{CredentialSource, Sources as CredentialSources};

const P256: &str = include_str!("../../tests/data/keys/p256.pub");

fn pod(namespace: &str, name: &str, owner: Option<(&str, &str)>, images: &[&str]) -> Pod {
    let containers: Vec<_> = images
        .iter()
        .enumerate()
        .map(|(i, image)| serde_json::json!({"name": format!("c{i}"), "image": image}))
        .collect();
    let mut metadata = serde_json::json!({"namespace": namespace, "name": name});
    if let Some((kind, owner)) = owner {
        metadata["ownerReferences"] = serde_json::json!([
            {"apiVersion": "v1", "kind": "Other", "name": "not-the-controller", "uid": "u0"},
            {"apiVersion": "apps/v1", "kind": kind, "name": owner, "uid": "u1", "controller": true}
        ]);
    }
    serde_json::from_value(serde_json::json!({
        "apiVersion": "v1", "kind": "Pod", "metadata": metadata,
        "spec": {"containers": containers, "serviceAccountName": "builder"},
        "status": {"phase": "Pending"}
    }))
    .expect("pod")
}

fn running(pods: &[Pod]) -> Vec<RunningPod> {
    pods.iter().filter_map(running_pod).collect()
}

fn owners(entries: &[(&str, &str, &str, &str, &str)]) -> Owners {
    entries
        .iter()
        .map(|(ns, kind, name, owner_kind, owner)| {
            (
                ((*ns).to_owned(), (*kind).to_owned(), (*name).to_owned()),
                ((*owner_kind).to_owned(), (*owner).to_owned()),
            )
        })
        .collect()
}

fn names(workloads: &[Workload]) -> Vec<(String, String, String, Vec<String>, usize)> {
    workloads
        .iter()
        .map(|w| {
            (
                w.namespace.clone(),
                w.kind.clone(),
                w.name.clone(),
                w.images.clone(),
                w.pods,
            )
        })
        .collect()
}

fn row(
    ns: &str,
    kind: &str,
    name: &str,
    images: &[&str],
    pods: usize,
) -> (String, String, String, Vec<String>, usize) {
    (
        ns.to_owned(),
        kind.to_owned(),
        name.to_owned(),
        images.iter().map(|i| (*i).to_owned()).collect(),
        pods,
    )
}

#[test]
fn pods_are_grouped_by_the_top_owner_of_their_controller() {
    let pods = running(&[
        pod(
            "shop",
            "web-a-1",
            Some(("ReplicaSet", "web-a")),
            &["r/web:1"],
        ),
        pod(
            "shop",
            "web-a-2",
            Some(("ReplicaSet", "web-a")),
            &["r/web:1"],
        ),
        // A rollout: the Deployment's new ReplicaSet runs another image.
        pod(
            "shop",
            "web-b-1",
            Some(("ReplicaSet", "web-b")),
            &["r/web:2", "r/web:1"],
        ),
        pod("shop", "db-0", Some(("StatefulSet", "db")), &["r/db:1"]),
        pod(
            "shop",
            "nightly-1-x",
            Some(("Job", "nightly-1")),
            &["r/job:1"],
        ),
        pod("shop", "loose", None, &["r/loose:1"]),
        // An orphaned ReplicaSet is its own workload.
        pod("other", "rs-1", Some(("ReplicaSet", "rs")), &["r/web:1"]),
    ]);
    let owners = owners(&[
        ("shop", "ReplicaSet", "web-a", "Deployment", "web"),
        ("shop", "ReplicaSet", "web-b", "Deployment", "web"),
        ("shop", "Job", "nightly-1", "CronJob", "nightly"),
        // The same names in another namespace are other objects.
        ("elsewhere", "ReplicaSet", "rs", "Deployment", "x"),
    ]);
    assert_eq!(
        names(&group(pods, &owners)),
        vec![
            row("other", "ReplicaSet", "rs", &["r/web:1"], 1),
            row("shop", "CronJob", "nightly", &["r/job:1"], 1),
            row("shop", "Deployment", "web", &["r/web:1", "r/web:2"], 3),
            row("shop", "Pod", "loose", &["r/loose:1"], 1),
            row("shop", "StatefulSet", "db", &["r/db:1"], 1),
        ]
    );
}

#[test]
fn pods_that_ended_or_are_being_deleted_do_not_run() {
    let mut done = pod("ns", "done", None, &["r/a:1"]);
    done.status.as_mut().expect("status").phase = Some("Succeeded".into());
    let mut failed = pod("ns", "failed", None, &["r/a:1"]);
    failed.status.as_mut().expect("status").phase = Some("Failed".into());
    let mut deleting = pod("ns", "deleting", None, &["r/a:1"]);
    deleting.metadata.deletion_timestamp = Some(crate::controller::reconcile::now());
    let runs = pod("ns", "runs", None, &["r/a:1"]);
    let kept: Vec<String> = running(&[done, failed, deleting, runs])
        .into_iter()
        .map(|p| p.name)
        .collect();
    assert_eq!(kept, ["runs"]);
}

#[test]
fn the_first_pod_gives_the_credential_sources() {
    let workloads = group(running(&[pod("ns", "p", None, &["r/a:1"])]), &Owners::new());
    assert_eq!(
        workloads[0].sources(),
        ("ns".to_owned(), Some("builder".to_owned()), Vec::new())
    );
}

/// Counts the reads of credential sources: one per workload decided.
#[derive(Default)]
struct Counting(AtomicUsize);

impl CredentialSource for Counting {
    fn gather<'a>(
        &'a self,
        _: Owner<'a>,
        _: &'a [&'a SecretRef],
    ) -> BoxFuture<'a, CredentialSources> {
        self.0.fetch_add(1, Ordering::SeqCst);
        Box::pin(async { CredentialSources::default() })
    }
}

/// A policy matching `127.0.0.1:1/*` (where nothing listens: verification fails at once),
/// with `mode`, excluding the namespace `excluded`.
fn snapshot(mode: &str) -> Snapshot {
    let policy: ClusterImagePolicy = serde_json::from_value(serde_json::json!({
        "apiVersion": "signing.apps.tanzu.vmware.com/v1beta1",
        "kind": "ClusterImagePolicy",
        "metadata": {"name": "image-policy", "generation": 3},
        "spec": {"verification": {
            "mode": mode,
            "exclude": {"resources": {"namespaces": ["excluded"]}},
            "keys": [{"name": "k", "publicKey": P256}],
            "images": [{"namePattern": "127.0.0.1:1/*", "keys": [{"name": "k"}]}]}}
    }))
    .expect("policy");
    Snapshot::compile(&policy).expect("compiles")
}

async fn audit(snapshot: Snapshot, pods: &[Pod]) -> (Report, usize) {
    let snapshot = Arc::new(snapshot);
    let (_tx, rx) = watch::channel(PolicyState::Active(snapshot.clone()));
    let config = VerifyConfig {
        budget: std::time::Duration::from_secs(2),
        ..VerifyConfig::default()
    };
    let verifier = Verifier::new(config).expect("verifier");
    let counting = Arc::new(Counting::default());
    let webhook = Webhook::new(rx, verifier, counting.clone(), Settings::default());
    let workloads = group(running(pods), &Owners::new());
    let unchecked = vec!["kube-system".to_owned()];
    let report = check(
        webhook.admission(),
        &snapshot,
        &workloads,
        &unchecked,
        &mut Pace::per_second(0),
    )
    .await;
    (report, counting.0.load(Ordering::SeqCst))
}

#[tokio::test]
async fn each_image_is_decided_once_per_credential_sources_and_every_refusal_is_reported() {
    let pods = [
        pod(
            "a",
            "one",
            Some(("StatefulSet", "one")),
            &["127.0.0.1:1/app:1", "docker.io/other:1"],
        ),
        pod(
            "a",
            "two",
            Some(("StatefulSet", "two")),
            &["127.0.0.1:1/app:1"],
        ),
        pod(
            "b",
            "three",
            Some(("StatefulSet", "three")),
            &["127.0.0.1:1/app:1"],
        ),
        pod("excluded", "four", None, &["127.0.0.1:1/app:1"]),
        pod("kube-system", "five", None, &["127.0.0.1:1/app:1"]),
    ];
    let (report, gathered) = audit(snapshot("Enforce"), &pods).await;
    // Namespace a decides the image once (for `one`), b once more: other sources.
    assert_eq!(gathered, 2);
    assert_eq!(report.workloads, 3);
    assert_eq!(report.refused_workloads, 3);
    let rows: Vec<_> = report
        .refused
        .iter()
        .map(|r| {
            (
                r.namespace.as_str(),
                r.name.as_str(),
                r.image.as_str(),
                r.reason,
                r.warn_mode,
            )
        })
        .collect();
    assert_eq!(
        rows,
        [
            ("a", "one", "127.0.0.1:1/app:1", "Unreachable", false),
            ("a", "one", "docker.io/other:1", "Unmatched", false),
            ("a", "two", "127.0.0.1:1/app:1", "Unreachable", false),
            ("b", "three", "127.0.0.1:1/app:1", "Unreachable", false),
        ]
    );
    assert!(
        report.refused[1].message.contains("docker.io/other:1"),
        "{}",
        report.refused[1].message
    );
}

#[tokio::test]
async fn an_image_volume_is_checked_and_its_refusal_names_the_volume_of_its_workload() {
    // The running check reads a Pod as the API server serves it (k8s-openapi's Pod).
    let mut mounting = pod("a", "mounting", None, &["docker.io/app:1"]);
    let volumes = serde_json::json!([
        {"name": "config", "configMap": {"name": "c"}},
        {"name": "models", "image": {"reference": "127.0.0.1:1/models:1", "pullPolicy": "Always"}},
    ]);
    mounting.spec.as_mut().expect("spec").volumes =
        Some(serde_json::from_value(volumes).expect("volumes"));
    // The same image run as a container elsewhere: decided once, said for each workload.
    let running = pod("a", "running", None, &["127.0.0.1:1/models:1"]);
    let (report, _) = audit(snapshot("Enforce"), &[mounting, running]).await;
    let rows: Vec<_> = report
        .refused
        .iter()
        .map(|r| (r.name.as_str(), r.image.as_str(), r.reason))
        .collect();
    assert_eq!(
        rows,
        [
            ("mounting", "docker.io/app:1", "Unmatched"),
            ("mounting", "127.0.0.1:1/models:1", "Unreachable"),
            ("running", "127.0.0.1:1/models:1", "Unreachable"),
        ]
    );
    let mounted = &report.refused[1].message;
    assert!(
        mounted.starts_with("The image: 127.0.0.1:1/models:1 is not signed. ")
            && mounted.ends_with(" It is mounted as the image volume \"models\"."),
        "{mounted}"
    );
    let run = &report.refused[2].message;
    assert!(!run.contains("image volume"), "{run}");
    assert!(!report.refused[0].message.contains("image volume"));
}

#[tokio::test]
async fn in_warn_mode_what_would_be_refused_is_reported_as_such() {
    let pods = [pod("a", "one", None, &["docker.io/other:1"])];
    let (report, _) = audit(snapshot("Warn"), &pods).await;
    assert_eq!(report.refused_workloads, 1);
    assert!(report.refused[0].warn_mode);
    assert_eq!(report.refused[0].reason, "Unmatched");
}

#[tokio::test]
async fn a_cluster_where_everything_is_excluded_has_nothing_refused() {
    let pods = [pod("excluded", "one", None, &["docker.io/other:1"])];
    let (report, gathered) = audit(snapshot("Enforce"), &pods).await;
    assert_eq!((report, gathered), (Report::default(), 0));
}

#[test]
fn the_status_lists_the_first_twenty_refusals_and_counts_them_all() {
    let refused = WorkloadRefusal {
        namespace: "ns".into(),
        kind: "Deployment".into(),
        name: "web".into(),
        image: "r/web:1".into(),
        reason: "NotSigned",
        message: "words".into(),
        warn_mode: false,
    };
    let report = Report {
        workloads: 40,
        refused_workloads: 25,
        refused: vec![refused; 25],
        timed_out: 0,
    };
    let now = crate::controller::reconcile::now();
    let status = crate::controller::running::running_status(&report, Some(4), now.clone());
    assert_eq!(status.refused.len(), LISTED);
    assert_eq!((status.workloads, status.refused_workloads), (40, 25));
    assert_eq!(
        (status.observed_generation, status.last_checked),
        (Some(4), now)
    );
    assert_eq!(status.refused[0].message, "words");
}

#[tokio::test]
async fn any_rate_paces_without_a_panic() {
    for rate in [0, 1, 1_000_000, 1_000_000_001, u32::MAX] {
        let mut pace = Pace::per_second(rate);
        pace.wait().await;
        pace.wait().await;
    }
}

/// An API server that answers every list with one more page, forever.
fn endless_api_server() -> (kube::Client, Arc<AtomicUsize>) {
    let asked = Arc::new(AtomicUsize::new(0));
    let counter = asked.clone();
    let service = tower::service_fn(move |_: http::Request<kube::client::Body>| {
        counter.fetch_add(1, Ordering::SeqCst);
        let page =
            r#"{"apiVersion":"v1","kind":"List","metadata":{"continue":"again"},"items":[]}"#;
        let response = http::Response::new(kube::client::Body::from(page.as_bytes().to_vec()));
        async move { Ok::<_, std::convert::Infallible>(response) }
    });
    (kube::Client::new(service, "default"), asked)
}

#[tokio::test]
async fn an_api_server_with_pages_without_end_is_an_error_not_a_loop() {
    let (client, asked) = endless_api_server();
    let error = super::workloads::list(&client).await.expect_err("endless");
    assert!(error.to_string().contains("still more after"), "{error}");
    assert_eq!(
        asked.load(Ordering::SeqCst),
        20_000,
        "the ReplicaSets' pages, then it stops"
    );
}

/// Holds each read of credential sources for a while, and keeps the most held at once: how
/// many decisions run side by side.
#[derive(Default)]
struct Overlapping {
    now: AtomicUsize,
    most: AtomicUsize,
}

impl CredentialSource for Overlapping {
    fn gather<'a>(
        &'a self,
        _: Owner<'a>,
        _: &'a [&'a SecretRef],
    ) -> BoxFuture<'a, CredentialSources> {
        Box::pin(async {
            let now = self.now.fetch_add(1, Ordering::SeqCst) + 1;
            self.most.fetch_max(now, Ordering::SeqCst);
            tokio::time::sleep(std::time::Duration::from_millis(20)).await;
            self.now.fetch_sub(1, Ordering::SeqCst);
            CredentialSources::default()
        })
    }
}

#[tokio::test]
async fn a_check_decides_side_by_side_within_its_concurrency_and_waits_for_each() {
    let snapshot = Arc::new(snapshot("Enforce"));
    let (_tx, rx) = watch::channel(PolicyState::Active(snapshot.clone()));
    let verifier = Verifier::new(VerifyConfig::default()).expect("verifier");
    let overlapping = Arc::new(Overlapping::default());
    let webhook = Webhook::new(rx, verifier, overlapping.clone(), Settings::default());
    let pods: Vec<Pod> = (0..12)
        .map(|i| {
            pod(
                "a",
                &format!("p{i}"),
                None,
                &[&format!("127.0.0.1:1/app-{i}:1")],
            )
        })
        .collect();
    let workloads = group(running(&pods), &Owners::new());
    let limits = Limits {
        concurrency: 3,
        timeout: std::time::Duration::from_secs(60),
    };
    let report = check_within(
        webhook.admission(),
        &snapshot,
        &workloads,
        &[],
        &mut Pace::per_second(0),
        limits,
    )
    .await;
    assert_eq!(
        overlapping.most.load(Ordering::SeqCst),
        3,
        "three at a time"
    );
    // Each decided, none cut short by the bound: refused as unreachable, not timed out.
    assert_eq!((report.workloads, report.refused_workloads), (12, 12));
    assert_eq!(report.timed_out, 0);
    assert!(report.refused.iter().all(|r| r.reason != "Timeout"));
}
