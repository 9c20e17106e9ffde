//! Every AdmissionReview of the conformance data through the webhook's handler: the right
//! answer for each, in the version it came in, and a clear 400 for the broken ones.

// A test crate: its helpers fail the test loudly by design.
#![allow(
    clippy::expect_used,
    clippy::unwrap_used,
    clippy::indexing_slicing,
    clippy::panic
)]

use std::path::PathBuf;
use std::sync::Arc;

use image_policy::policy::PolicyState;
use image_policy::policy::Snapshot;
use image_policy::verify::{Verifier, VerifyConfig};
use image_policy::webhook::Webhook;
use image_policy::webhook::admit::Settings;
use image_policy::webhook::credentials::Anonymous;
use image_policy::webhook::words::NO_POLICY_WARNING;
use image_policy_crd::ClusterImagePolicy;
use serde_json::{Value, json};
use tokio::sync::watch;

fn data() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/data/admission")
}

fn fixture(file: &str) -> Vec<u8> {
    std::fs::read(data().join(file)).unwrap_or_else(|e| panic!("{file}: {e}"))
}

/// The index entry of one fixture file.
fn entry(file: &str) -> Value {
    index()
        .into_iter()
        .find(|e| e["file"] == file)
        .unwrap_or_else(|| panic!("{file} is not in index.json"))
}

fn index() -> Vec<Value> {
    let index: Value = serde_json::from_slice(&fixture("index.json")).expect("index");
    index["files"].as_array().expect("files").clone()
}

fn webhook(policy: PolicyState, allow_unmatched_images: bool) -> Webhook {
    let (_tx, rx) = watch::channel(policy);
    let verifier = Verifier::new(VerifyConfig::default()).expect("verifier");
    Webhook::new(
        rx,
        verifier,
        Arc::new(Anonymous),
        Settings {
            allow_unmatched_images,
        },
    )
}

/// A policy whose one pattern matches none of the fixtures' images, excluding `excluded`.
fn policy(excluded: &[&str]) -> PolicyState {
    let key = std::fs::read_to_string(
        PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/data/keys/p256.pub"),
    )
    .expect("key");
    let policy: ClusterImagePolicy = serde_json::from_value(json!({
        "apiVersion": "signing.apps.tanzu.vmware.com/v1beta1",
        "kind": "ClusterImagePolicy",
        "metadata": {"name": "image-policy"},
        "spec": {"verification": {
            "exclude": {"resources": {"namespaces": excluded}},
            "keys": [{"name": "k", "publicKey": key}],
            "images": [{"namePattern": "registry.invalid/nothing/*", "keys": [{"name": "k"}]}]
        }}
    }))
    .expect("policy");
    PolicyState::Active(Arc::new(Snapshot::compile(&policy).expect("compiles")))
}

fn images_of(entry: &Value) -> Vec<String> {
    ["initContainers", "containers", "ephemeralContainers"]
        .iter()
        .flat_map(|f| entry[f].as_array().cloned().unwrap_or_default())
        .filter_map(|i| i.as_str().map(str::to_owned))
        .collect()
}

/// A bare AdmissionRequest (kubewarden's fixtures) in a v1 envelope, as the API server sends it.
fn body_of(entry: &Value) -> Vec<u8> {
    let file = entry["file"].as_str().expect("file");
    let raw = fixture(file);
    if entry["wrapped"] == json!(false) {
        let request: Value = serde_json::from_slice(&raw).expect("json");
        return serde_json::to_vec(&json!({"apiVersion": "admission.k8s.io/v1", "kind": "AdmissionReview", "request": request}))
            .expect("body");
    }
    raw
}

use image_policy::workload::KINDS as WORKLOADS;

#[tokio::test]
async fn every_fixture_without_a_policy() {
    let webhook = webhook(PolicyState::Absent, false);
    let mut answered = 0;
    for entry in index() {
        let file = entry["file"].as_str().expect("file").to_owned();
        let answer = webhook.handle(&body_of(&entry)).await;
        let kind = entry["kind"].as_str().unwrap_or_default();
        let is_request = entry.get("uid").is_some() && !kind.is_empty();
        // 12 is a Pod without a spec: its images cannot be read, which is no reason to admit it.
        let broken_workload = WORKLOADS.contains(&kind) && images_of(&entry).is_empty();
        if !is_request || broken_workload {
            // 12, 21, 25, 26 (broken) and the reference responses (no request): a 400 that says why.
            assert_eq!(answer.status(), 400, "{file}");
            let text = String::from_utf8(answer.into_body()).expect("utf8");
            assert!(
                (text.contains("not") || text.contains("no pod spec")) && text.len() < 300,
                "{file}: {text}"
            );
            continue;
        }
        answered += 1;
        assert_eq!(
            answer.status(),
            200,
            "{file}: {}",
            String::from_utf8_lossy(&answer.body())
        );
        let review: Value = serde_json::from_slice(&answer.body()).expect("json");
        let version = entry["apiVersion"]
            .as_str()
            .unwrap_or("admission.k8s.io/v1");
        assert_eq!(review["apiVersion"], version, "{file}");
        assert_eq!(review["kind"], "AdmissionReview", "{file}");
        assert_eq!(review["response"]["uid"], entry["uid"], "{file}");
        assert_eq!(review["response"]["allowed"], true, "{file}");
        let kind = entry["kind"].as_str().expect("kind");
        let checks_images = WORKLOADS.contains(&kind) && !images_of(&entry).is_empty();
        let (_, decision) = answer.into_decision().expect("decision");
        if checks_images && decision.reason != "NotChecked" {
            assert_eq!(
                review["response"]["warnings"],
                json!([NO_POLICY_WARNING]),
                "{file}"
            );
        } else {
            assert!(review["response"].get("warnings").is_none(), "{file}");
        }
    }
    assert!(answered >= 35, "{answered}");
}

#[tokio::test]
async fn unmatched_images_are_denied_every_one_by_name() {
    let webhook = webhook(policy(&[]), false);
    for entry in index().iter().filter(|e| e.get("uid").is_some()) {
        let file = entry["file"].as_str().expect("file");
        let kind = entry["kind"].as_str().unwrap_or_default();
        if !WORKLOADS.contains(&kind)
            || images_of(entry).is_empty()
            || entry["operation"] == "UPDATE"
        {
            continue;
        }
        let answer = webhook.handle(&body_of(entry)).await;
        let review: Value = serde_json::from_slice(&answer.body()).expect("json");
        let response = &review["response"];
        assert_eq!(response["allowed"], false, "{file}");
        let mut images = images_of(entry);
        images.dedup();
        let expected: Vec<String> = images
            .iter()
            .map(|i| {
                format!("Could not verify against any image policies for container image: {i}.")
            })
            .collect();
        let message = response["status"]["message"].as_str().expect("message");
        for sentence in &expected {
            assert!(message.contains(sentence.as_str()), "{file}: {message}");
        }
        assert_eq!(response["status"]["code"], 403, "{file}");
        assert_eq!(
            response["status"]["reason"], response["status"]["message"],
            "{file}"
        );
    }
}

#[tokio::test]
async fn unmatched_images_are_warned_with_the_flag() {
    let webhook = webhook(policy(&[]), true);
    let entry = entry("connaisseur/09_dply_multi_image.json");
    let answer = webhook.handle(&body_of(&entry)).await;
    let review: Value = serde_json::from_slice(&answer.body()).expect("json");
    assert_eq!(review["response"]["allowed"], true);
    assert_eq!(
        review["response"]["warnings"],
        json!([
            "busybox:1.32 did not match any image policies. Container will be created as AllowUnmatchedImages flag is true.",
            "redis:alpine did not match any image policies. Container will be created as AllowUnmatchedImages flag is true.",
            "mysql:8 did not match any image policies. Container will be created as AllowUnmatchedImages flag is true."
        ])
    );
}

#[tokio::test]
async fn an_excluded_namespace_is_admitted_with_a_log_line() {
    let webhook = webhook(policy(&["test-connaisseur"]), false);
    let entry = entry("connaisseur/17_deny_me_pod.json");
    let answer = webhook.handle(&body_of(&entry)).await;
    let (_, decision) = answer.into_decision().expect("decision");
    assert!(decision.allowed);
    assert_eq!(
        decision.note.as_deref(),
        Some("test-connaisseur is excluded. The ImagePolicy will not be applied.")
    );
}

#[tokio::test]
async fn an_update_that_changes_no_image_is_not_checked() {
    let webhook = webhook(policy(&[]), false);
    let entry = entry("connaisseur/10_update.json");
    let answer = webhook.handle(&body_of(&entry)).await;
    let (_, decision) = answer.into_decision().expect("decision");
    assert!(decision.allowed, "{decision:?}");
    assert_eq!(decision.reason, "NotChecked");
    // The same body with a new image in the object is checked, and only that image.
    let mut review: Value = serde_json::from_slice(&body_of(&entry)).expect("json");
    review["request"]["object"]["spec"]["template"]["spec"]["containers"][0]["image"] =
        json!("redis:new");
    let answer = webhook
        .handle(&serde_json::to_vec(&review).expect("body"))
        .await;
    let (_, decision) = answer.into_decision().expect("decision");
    assert_eq!(
        decision.message.as_deref(),
        Some("Could not verify against any image policies for container image: redis:new.")
    );
}

#[tokio::test]
async fn init_ephemeral_and_dry_run_are_checked_like_the_rest() {
    let webhook = webhook(policy(&[]), false);
    for (file, image) in [
        ("connaisseur/19_pod_initcontainer.json", "nginx"),
        ("connaisseur/20_pod_ephemeralcontainer.json", "nginx"),
        (
            "other/kube-review_pod_dryrun_with_kyverno_response.json",
            "curlimages/curl",
        ),
    ] {
        let entry = entry(file);
        let (_, decision) = webhook
            .handle(&body_of(&entry))
            .await
            .into_decision()
            .expect("decision");
        assert!(!decision.allowed, "{file}");
        let sentence =
            format!("Could not verify against any image policies for container image: {image}.");
        assert!(
            decision
                .message
                .as_deref()
                .is_some_and(|m| m.contains(&sentence)),
            "{file}: {decision:?}"
        );
    }
    // kubectl debug: the object of the pods/ephemeralcontainers subresource is the Pod.
    let debug = |object: serde_json::Value, old: serde_json::Value| {
        json!({"apiVersion": "admission.k8s.io/v1", "kind": "AdmissionReview", "request": {
            "uid": "e1", "kind": {"group": "", "version": "v1", "kind": "Pod"},
            "resource": {"group": "", "version": "v1", "resource": "pods"}, "subResource": "ephemeralcontainers",
            "namespace": "default", "name": "p", "operation": "UPDATE",
            "object": object, "oldObject": old}})
    };
    let pod = json!({"kind": "Pod", "spec": {"containers": [],
        "ephemeralContainers": [{"name": "debug", "image": "debugger:1"}]}});
    let before = json!({"kind": "Pod", "spec": {"containers": []}});
    let (_, decision) = webhook
        .handle(&serde_json::to_vec(&debug(pod, before)).unwrap())
        .await
        .into_decision()
        .expect("decision");
    assert_eq!(
        decision.message.as_deref(),
        Some("Could not verify against any image policies for container image: debugger:1.")
    );
    // The EphemeralContainers object of Kubernetes 1.20 and 1.21 has no pod spec: refused,
    // never read as a change without images.
    let old_shape = json!({"kind": "EphemeralContainers", "ephemeralContainers": [{"name": "debug", "image": "debugger:1"}]});
    let answer = webhook
        .handle(&serde_json::to_vec(&debug(old_shape.clone(), old_shape)).unwrap())
        .await;
    assert!(
        answer
            .into_decision()
            .is_none_or(|(_, decision)| !decision.allowed),
        "admitted without a pod spec"
    );
}

#[tokio::test]
async fn without_a_valid_policy_every_image_is_refused() {
    let entry = entry("connaisseur/02_pod.json");
    let broken: ClusterImagePolicy = serde_json::from_value(json!({
        "apiVersion": "signing.apps.tanzu.vmware.com/v1beta1", "kind": "ClusterImagePolicy",
        "metadata": {"name": "image-policy"},
        "spec": {"verification": {"keys": [{"name": "k", "publicKey": "..."}],
            "images": [{"namePattern": "*", "keys": [{"name": "k"}]}]}}
    }))
    .expect("policy");
    let problems = Snapshot::compile(&broken).expect_err("invalid");
    for state in [PolicyState::invalid(problems), PolicyState::Loading] {
        let webhook = webhook(state, true);
        let (_, decision) = webhook
            .handle(&body_of(&entry))
            .await
            .into_decision()
            .expect("decision");
        assert!(!decision.allowed, "{decision:?}");
    }
}

#[tokio::test]
async fn a_policy_is_validated_on_its_way_in() {
    let webhook = webhook(PolicyState::Absent, false);
    let review = |name: &str, key: &str| {
        json!({"apiVersion": "admission.k8s.io/v1", "kind": "AdmissionReview", "request": {
            "uid": "p1", "kind": {"group": "signing.apps.tanzu.vmware.com", "version": "v1beta1", "kind": "ClusterImagePolicy"},
            "resource": {"group": "signing.apps.tanzu.vmware.com", "version": "v1beta1", "resource": "clusterimagepolicies"},
            "name": name, "operation": "CREATE",
            "object": {"apiVersion": "signing.apps.tanzu.vmware.com/v1beta1", "kind": "ClusterImagePolicy",
                "metadata": {"name": name},
                "spec": {"verification": {"keys": [{"name": "k", "publicKey": key}],
                    "images": [{"namePattern": "registry.example.org/*", "keys": [{"name": "k"}]}]}}}}})
    };
    let good = std::fs::read_to_string(
        PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/data/keys/p256.pub"),
    )
    .unwrap();
    let (_, decision) = webhook
        .handle(&serde_json::to_vec(&review("image-policy", &good)).unwrap())
        .await
        .into_decision()
        .unwrap();
    assert!(decision.allowed, "{decision:?}");
    let (_, decision) = webhook
        .handle(&serde_json::to_vec(&review("other", &good)).unwrap())
        .await
        .into_decision()
        .unwrap();
    assert!(
        decision
            .message
            .as_deref()
            .is_some_and(|m| m.contains("metadata.name")),
        "{decision:?}"
    );
    let (_, decision) = webhook
        .handle(&serde_json::to_vec(&review("image-policy", "junk")).unwrap())
        .await
        .into_decision()
        .unwrap();
    assert!(
        decision
            .message
            .as_deref()
            .is_some_and(|m| m.contains("spec.verification.keys[0].publicKey")),
        "{decision:?}"
    );
}

#[tokio::test]
async fn arbitrary_bodies_never_panic_and_never_allow_a_workload_by_accident() {
    let webhook = webhook(policy(&[]), false);
    let pod = fixture("connaisseur/02_pod.json");
    // IMAGE_POLICY_FUZZ_ROUNDS=1000000 for a long run; 3,000 in the ordinary suite.
    let rounds: u64 = std::env::var("IMAGE_POLICY_FUZZ_ROUNDS")
        .ok()
        .and_then(|r| r.parse().ok())
        .unwrap_or(3000);
    let mut state = 0x9e3779b97f4a7c15u64;
    for round in 0..rounds {
        xorshift(&mut state);
        let mut body = pod.clone();
        for _ in 0..(1 + state % 8) {
            xorshift(&mut state);
            if body.is_empty() {
                break;
            }
            let at = (state as usize) % body.len();
            match state % 3 {
                0 => body[at] = (state >> 8) as u8,
                1 => {
                    body.remove(at);
                }
                _ => body.truncate(at.max(1)),
            }
        }
        let answer = webhook.handle(&body).await;
        if answer.status() == 200 {
            let review: Value = serde_json::from_slice(&answer.body()).expect("json");
            let (request, decision) = answer.into_decision().expect("decision");
            // A Pod that still parses with its image must be denied (its image matches nothing).
            // The body read as a JSON value says whether it has one.
            let has_image = serde_json::from_slice::<Value>(&body).is_ok_and(|v| {
                v.pointer("/request/object/spec/containers/0/image")
                    .is_some_and(Value::is_string)
            });
            if request.kind == "Pod"
                && request.operation == "CREATE"
                && has_image
                && request.namespace == "test-connaisseur"
            {
                assert_eq!(
                    review["response"]["allowed"], false,
                    "round {round}: {decision:?}"
                );
            }
        }
    }
}

fn xorshift(state: &mut u64) {
    *state ^= *state << 13;
    *state ^= *state >> 7;
    *state ^= *state << 17;
}

/// A credential source whose API server never answers.
struct Stalled;

impl image_policy::webhook::credentials::CredentialSource for Stalled {
    fn gather<'a>(
        &'a self,
        _: image_policy::webhook::credentials::Owner<'a>,
        _: &'a [&'a image_policy_crd::SecretRef],
    ) -> futures::future::BoxFuture<'a, image_policy::webhook::credentials::Sources> {
        Box::pin(std::future::pending())
    }
}

#[tokio::test]
async fn a_stalled_credential_source_does_not_hang_the_review() {
    let key = std::fs::read_to_string(
        PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/data/keys/p256.pub"),
    )
    .expect("key");
    // Nothing listens on port 1: once the credentials are given up, the registry is unreachable.
    let policy: ClusterImagePolicy = serde_json::from_value(json!({
        "apiVersion": "signing.apps.tanzu.vmware.com/v1beta1", "kind": "ClusterImagePolicy",
        "metadata": {"name": "image-policy"},
        "spec": {"verification": {"keys": [{"name": "k", "publicKey": key}],
            "images": [{"namePattern": "127.0.0.1:1/*", "keys": [{"name": "k"}]}]}}
    }))
    .expect("policy");
    let state = PolicyState::Active(Arc::new(Snapshot::compile(&policy).expect("compiles")));
    let (_tx, rx) = watch::channel(state);
    let verifier = Verifier::new(VerifyConfig::default()).expect("verifier");
    let webhook = Webhook::new(rx, verifier, Arc::new(Stalled), Settings::default());
    let mut review: Value =
        serde_json::from_slice(&body_of(&entry("connaisseur/02_pod.json"))).expect("json");
    review["request"]["object"]["spec"]["containers"][0]["image"] = json!("127.0.0.1:1/app:v1");
    let start = std::time::Instant::now();
    let answer = webhook
        .handle(&serde_json::to_vec(&review).expect("body"))
        .await;
    let (_, decision) = answer.into_decision().expect("decision");
    assert!(!decision.allowed, "{decision:?}");
    assert_eq!(decision.reason, "Unreachable", "{decision:?}");
    assert!(
        start.elapsed() < std::time::Duration::from_secs(6),
        "{:?}",
        start.elapsed()
    );
}
