//! The Events of admissions (docs/contract.md §6) through the webhook's routes, with real
//! AdmissionReview bodies: a refusal and a Warn-mode admission each queue one record, with
//! the policy's uid and the Pod's ReplicaSet; the mutating webhook queues what it refuses
//! and leaves what it admits to validation; dry runs, excluded namespaces and admissions
//! queue nothing; and a full queue drops records without slowing an answer.

// A test crate: its helpers fail the test loudly by design.
#![allow(
    clippy::expect_used,
    clippy::unwrap_used,
    clippy::indexing_slicing,
    clippy::panic
)]

use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use image_policy::policy::{PolicyState, Snapshot};
use image_policy::server::Handler as _;
use image_policy::telemetry::Metrics;
use image_policy::verify::{Verifier, VerifyConfig};
use image_policy::webhook::Webhook;
use image_policy::webhook::admit::Settings;
use image_policy::webhook::credentials::Anonymous;
use image_policy::webhook::events::{EventSink, Record};
use image_policy::webhook::http::{ADMISSION_PATH, PIN_PATH, Routes};
use image_policy::webhook::pin::Pinning;
use image_policy_crd::ClusterImagePolicy;
use serde_json::{Value, json};
use tokio::sync::{mpsc, watch};

/// The charlie image of the fixtures, which the policy's one pattern does not match.
const CHARLIE: &str = "securesystemsengineering/charlie-image@sha256:91ac9b26df583762234c1cdb2fc930364754ccc59bc752a2bfe298d2ea68f9ff";

fn fixture(file: &str) -> Vec<u8> {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/data/admission")
        .join(file);
    std::fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// A policy of uid `policy-uid` whose one pattern matches none of the fixtures' images, in
/// `mode`, excluding the namespace `excluded`.
fn policy(mode: &str) -> PolicyState {
    let key = std::fs::read_to_string(
        PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/data/keys/p256.pub"),
    )
    .expect("key");
    let policy: ClusterImagePolicy = serde_json::from_value(json!({
        "apiVersion": "signing.apps.tanzu.vmware.com/v1beta1",
        "kind": "ClusterImagePolicy",
        "metadata": {"name": "image-policy", "uid": "policy-uid"},
        "spec": {"verification": {
            "mode": mode,
            "exclude": {"resources": {"namespaces": ["excluded"]}},
            "keys": [{"name": "k", "publicKey": key}],
            "images": [{"namePattern": "registry.invalid/nothing/*", "keys": [{"name": "k"}]}]
        }}
    }))
    .expect("policy");
    PolicyState::Active(Arc::new(Snapshot::compile(&policy).expect("compiles")))
}

/// Routes on `policy` that queue Events into a queue of `capacity`, and that queue.
fn routes_on(policy: PolicyState, capacity: usize) -> (Routes, mpsc::Receiver<Record>, Metrics) {
    let (_, rx) = watch::channel(policy);
    let verifier = Verifier::new(VerifyConfig::default()).expect("verifier");
    let webhook = Webhook::new(rx, verifier, Arc::new(Anonymous), Settings::default())
        .with_pinning(Pinning::Pods);
    let metrics = Metrics::new();
    let (sink, records) = EventSink::new(capacity, metrics.clone());
    let routes = Routes::new(webhook, metrics.clone()).with_events(sink);
    (routes, records, metrics)
}

/// Posts `body` to `path`; returns whether it was admitted.
async fn post(routes: &Routes, path: &str, body: Vec<u8>) -> bool {
    let request = http::Request::post(path).body(Bytes::from(body)).unwrap();
    let answer = routes.handle(request).await;
    assert_eq!(answer.status(), 200);
    let review: Value = serde_json::from_slice(answer.body()).unwrap();
    review["response"]["allowed"].as_bool().unwrap()
}

/// Every record queued so far.
fn queued(records: &mut mpsc::Receiver<Record>) -> Vec<Record> {
    std::iter::from_fn(|| records.try_recv().ok()).collect()
}

/// The ReplicaSet's Pod of the fixtures, in `namespace`.
fn pod_in(namespace: &str) -> Vec<u8> {
    let mut review: Value = serde_json::from_slice(&fixture("connaisseur/02_pod.json")).unwrap();
    review["request"]["namespace"] = json!(namespace);
    serde_json::to_vec(&review).unwrap()
}

#[tokio::test]
async fn a_refused_pod_is_queued_once_with_the_policy_and_its_replicaset() {
    let (routes, mut records, _) = routes_on(policy("Enforce"), 16);
    let pod = fixture("connaisseur/02_pod.json");
    // The mutating webhook refuses first; validation, never called then, would do the same.
    assert!(!post(&routes, PIN_PATH, pod.clone()).await);
    assert!(!post(&routes, ADMISSION_PATH, pod).await);
    let records = queued(&mut records);
    assert_eq!(records.len(), 2, "{records:?}");
    let record = &records[0];
    assert_eq!(record, &records[1]);
    assert!(record.refused);
    assert_eq!(record.policy_uid.as_deref(), Some("policy-uid"));
    assert_eq!(
        record.controller.as_ref().map(|c| c.name.as_str()),
        Some("charlie-deployment-76fbf58b7d")
    );
    assert_eq!(record.images, [CHARLIE]);
    assert_eq!(
        record.note(),
        format!(
            "Refused Pod test-connaisseur/charlie-deployment-76fbf58b7d- with image {CHARLIE} \
             (Unmatched): Could not verify against any image policies for container image: \
             {CHARLIE}."
        )
    );
    let events = record.events();
    let about: Vec<_> = events
        .iter()
        .map(|(_, on)| on.kind.clone().unwrap())
        .collect();
    assert_eq!(about, ["ClusterImagePolicy", "ReplicaSet"]);
}

#[tokio::test]
async fn warn_mode_is_queued_by_validation_only() {
    let (routes, mut records, _) = routes_on(policy("Warn"), 16);
    let pod = fixture("connaisseur/02_pod.json");
    assert!(post(&routes, PIN_PATH, pod.clone()).await);
    assert!(queued(&mut records).is_empty(), "validation records it");
    assert!(post(&routes, ADMISSION_PATH, pod).await);
    let records = queued(&mut records);
    assert_eq!(records.len(), 1, "{records:?}");
    assert!(!records[0].refused);
    assert!(
        records[0].note().starts_with(
            "Admitted Pod test-connaisseur/charlie-deployment-76fbf58b7d- with image "
        ),
        "{}",
        records[0].note()
    );
}

#[tokio::test]
async fn dry_runs_exclusions_and_admissions_queue_nothing() {
    let (routes, mut records, _) = routes_on(policy("Enforce"), 16);
    let dry_run = fixture("other/kube-review_pod_dryrun_with_kyverno_response.json");
    assert!(!post(&routes, ADMISSION_PATH, dry_run).await, "refused");
    assert!(post(&routes, ADMISSION_PATH, pod_in("excluded")).await);
    let role = fixture("connaisseur/11_role.json");
    assert!(post(&routes, ADMISSION_PATH, role).await);
    assert!(queued(&mut records).is_empty());
    let (absent, mut records, _) = routes_on(PolicyState::Absent, 16);
    assert!(post(&absent, ADMISSION_PATH, pod_in("default")).await);
    assert!(queued(&mut records).is_empty());
}

#[tokio::test]
async fn a_full_queue_drops_records_and_answers_at_once() {
    let (routes, mut records, metrics) = routes_on(policy("Enforce"), 1);
    let started = Instant::now();
    for _ in 0..50 {
        assert!(!post(&routes, ADMISSION_PATH, pod_in("default")).await);
    }
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "{:?}",
        started.elapsed()
    );
    assert_eq!(queued(&mut records).len(), 1);
    let text = metrics.encode().unwrap();
    assert!(
        text.contains("image_policy_events_dropped_total{cause=\"queue_full\"} 49\n"),
        "{text}"
    );
}
