//! Image volumes (`spec.volumes[].image.reference`, #24) through the webhook's handler, its
//! routes and `image-policy check`, with real AdmissionReview bodies and the real registry
//! behind: an image mounted as a volume is an image the kubelet pulls, so it is matched,
//! verified, refused, waived in Warn mode and pinned exactly as a container's, in a Pod and in
//! every workload kind's template; a refusal says which volume mounts it.

// A test crate: its helpers fail the test loudly by design.
#![allow(
    clippy::expect_used,
    clippy::unwrap_used,
    clippy::indexing_slicing,
    clippy::panic
)]

use std::io;
use std::sync::{Arc, Mutex};

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use bytes::Bytes;
use futures::future::BoxFuture;
use image_policy::policy::{PolicyState, Snapshot};
use image_policy::server::Handler as _;
use image_policy::telemetry::Metrics;
use image_policy::telemetry::logs::json_layer;
use image_policy::verify::{DockerConfig, RegistryConfig, Verifier, VerifyConfig};
use image_policy::webhook::admit::Settings;
use image_policy::webhook::credentials::{Anonymous, CredentialSource, Owner, Sources};
use image_policy::webhook::events::{EventSink, Record};
use image_policy::webhook::http::{ADMISSION_PATH, Routes};
use image_policy::webhook::pin::Pinning;
use image_policy::webhook::{Answer, Webhook};
use image_policy_crd::{ClusterImagePolicy, SecretRef};
use image_policy_testsupport::cosign::Pusher;
use image_policy_testsupport::producers::{Cosign, Signing};
use image_policy_testsupport::registry::{Registry, RegistryOptions};
use serde_json::{Value, json};
use tokio::sync::watch;
use tracing_subscriber::fmt::MakeWriter;
use tracing_subscriber::layer::SubscriberExt as _;

/// A policy of one entry, `<host>/app/*` with the key `pem`, in `mode`.
fn policy(host: &str, pem: &str, mode: &str) -> PolicyState {
    let policy: ClusterImagePolicy = serde_json::from_value(json!({
        "apiVersion": "signing.apps.tanzu.vmware.com/v1beta1", "kind": "ClusterImagePolicy",
        "metadata": {"name": "image-policy", "uid": "policy-uid"},
        "spec": {"verification": {
            "mode": mode,
            "keys": [{"name": "k", "publicKey": pem}],
            "images": [{"namePattern": format!("{host}/app/*"), "keys": [{"name": "k"}]}]}}
    }))
    .expect("policy");
    PolicyState::Active(Arc::new(Snapshot::compile(&policy).expect("compiles")))
}

fn verifier(registry: &Registry) -> Verifier {
    Verifier::new(VerifyConfig {
        registry: RegistryConfig {
            extra_roots_pem: vec![registry.ca_pem()],
            ..RegistryConfig::default()
        },
        ..VerifyConfig::default()
    })
    .expect("verifier")
}

/// A webhook on `policy` with the registry of `registry` trusted.
fn webhook(
    registry: &Registry,
    policy: PolicyState,
    credentials: Arc<dyn CredentialSource>,
    allow_unmatched_images: bool,
    pinning: Pinning,
) -> Webhook {
    let (_, rx) = watch::channel(policy);
    let settings = Settings {
        allow_unmatched_images,
    };
    Webhook::new(rx, verifier(registry), credentials, settings).with_pinning(pinning)
}

/// A pod spec running `container` with a ConfigMap volume and the image volume `models`
/// mounting `reference` (`pullPolicy: IfNotPresent`).
fn spec(container: &str, reference: &str) -> Value {
    json!({
        "containers": [{"name": "app", "image": container,
            "volumeMounts": [{"name": "models", "mountPath": "/models"}]}],
        "volumes": [
            {"name": "config", "configMap": {"name": "settings"}},
            {"name": "models", "image": {"reference": reference, "pullPolicy": "IfNotPresent"}},
        ],
    })
}

/// An object of `kind` with `spec` as its pod spec, as `kubectl apply` sends it.
fn object(kind: &str, spec: Value) -> Value {
    let (api_version, spec) = match kind {
        "Pod" => ("v1", spec),
        "Deployment" => (
            "apps/v1",
            json!({"selector": {"matchLabels": {"app": "w"}},
                "template": {"metadata": {"labels": {"app": "w"}}, "spec": spec}}),
        ),
        "CronJob" => (
            "batch/v1",
            json!({"schedule": "@hourly", "jobTemplate": {"spec": {"template": {"spec": spec}}}}),
        ),
        other => panic!("no {other} here"),
    };
    json!({"apiVersion": api_version, "kind": kind, "metadata": {"name": "w", "namespace": "default"}, "spec": spec})
}

/// The AdmissionReview of a CREATE of `object`.
fn review(object: &Value) -> Vec<u8> {
    let kind = object["kind"].as_str().unwrap();
    let (group, version, resource) = match kind {
        "Pod" => ("", "v1", "pods"),
        "Deployment" => ("apps", "v1", "deployments"),
        "CronJob" => ("batch", "v1", "cronjobs"),
        other => panic!("no {other} here"),
    };
    serde_json::to_vec(&json!({"apiVersion": "admission.k8s.io/v1", "kind": "AdmissionReview",
        "request": {
            "uid": "u-1", "kind": {"group": group, "version": version, "kind": kind},
            "resource": {"group": group, "version": version, "resource": resource},
            "requestKind": {"group": group, "version": version, "kind": kind},
            "namespace": "default", "name": "w", "operation": "CREATE",
            "userInfo": {"username": "kubernetes-admin", "groups": ["system:masters", "system:authenticated"]},
            "object": object, "oldObject": null, "dryRun": false,
            "options": {"apiVersion": "meta.k8s.io/v1", "kind": "CreateOptions", "fieldManager": "kubectl-client-side-apply"}}}))
    .unwrap()
}

/// The response of an answer, which must be a decided review.
fn response(answer: &Answer) -> Value {
    assert_eq!(
        answer.status(),
        200,
        "{}",
        String::from_utf8_lossy(&answer.body())
    );
    serde_json::from_slice::<Value>(&answer.body()).unwrap()["response"].clone()
}

/// The JSON patch of a response, decoded; empty when there is none.
fn patch(response: &Value) -> Vec<Value> {
    match response["patch"].as_str() {
        None => Vec::new(),
        Some(b64) => serde_json::from_slice(&STANDARD.decode(b64).unwrap()).unwrap(),
    }
}

/// `object` with the `replace` operations of `patch` applied.
fn apply(mut object: Value, patch: &[Value]) -> Value {
    for op in patch {
        assert_eq!(op["op"], "replace");
        let pointer = op["path"].as_str().unwrap();
        *object.pointer_mut(pointer).expect(pointer) = op["value"].clone();
    }
    object
}

/// The JSON pointer of the pod spec of an object of `kind`.
fn spec_at(kind: &str) -> &'static str {
    match kind {
        "Pod" => "/spec",
        "Deployment" => "/spec/template/spec",
        _ => "/spec/jobTemplate/spec/template/spec",
    }
}

/// What a refusal of the unsigned `image` of digest `digest` says: the original's sentence,
/// why, and the volume.
fn unsigned_volume(image: &str, digest: &str) -> String {
    let hex = digest.strip_prefix("sha256:").unwrap();
    format!(
        "The image: {image} is not signed. No signature was found for {digest}: none at its \
         cosign signature tag sha256-{hex}.sig, nor among its OCI referrers (the referrers API \
         or the tag sha256-{hex}). It is mounted as the image volume \"models\"."
    )
}

/// The images of the registry: `app/signed:v1` and `app/weights:v1` signed with the key by
/// the real cosign (its `.sig` layout),
/// `app/models:v1` unsigned.
struct Images {
    host: String,
    pem: String,
    signed: String,
    signed_digest: String,
    weights: String,
    weights_digest: String,
    models: String,
    models_digest: String,
}

async fn push(registry: &Registry) -> Images {
    let pusher = Pusher::new(registry);
    let cosign = Cosign::new(registry);
    let key = cosign.generate_key();
    let host = registry.host();
    let signed_digest = pusher.push_image("app/signed", "v1").await;
    let weights_digest = pusher.push_image("app/weights", "v1").await;
    for (repository, digest) in [
        ("app/signed", &signed_digest),
        ("app/weights", &weights_digest),
    ] {
        let image = format!("{host}/{repository}@{digest}");
        cosign.sign(&image, &key, Signing::LEGACY_TAG);
    }
    let models_digest = pusher.push_image("app/models", "v1").await;
    Images {
        pem: key.public_pem.clone(),
        signed: format!("{host}/app/signed:v1"),
        signed_digest,
        weights: format!("{host}/app/weights:v1"),
        weights_digest,
        models: format!("{host}/app/models:v1"),
        models_digest,
        host,
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn an_unsigned_image_volume_is_refused_in_a_pod_a_deployment_and_a_cronjob() {
    let registry = Registry::start(RegistryOptions::default());
    let i = push(&registry).await;
    let hook = webhook(
        &registry,
        policy(&i.host, &i.pem, "Enforce"),
        Arc::new(Anonymous),
        false,
        Pinning::Workloads,
    );
    let expected = unsigned_volume(&i.models, &i.models_digest);
    for kind in ["Pod", "Deployment", "CronJob"] {
        // A signed container beside it changes nothing: every image a Pod pulls counts.
        let body = review(&object(kind, spec(&i.signed, &i.models)));
        let answer = hook.handle(&body).await;
        let r = response(&answer);
        assert_eq!(r["allowed"], false, "{kind}: {r}");
        assert_eq!(r["status"]["code"], 403, "{kind}");
        assert_eq!(r["status"]["message"], expected.as_str(), "{kind}");
        assert_eq!(r["status"]["reason"], expected.as_str(), "{kind}");
        // Its Events name the image the decision found, and say the same words.
        let (request, decision) = answer.into_decision().unwrap();
        let record = Record::of(&request, &body, &decision).expect("a refusal is recorded");
        assert_eq!(record.images, [i.models.as_str()], "{kind}");
        assert_eq!(record.message, expected, "{kind}");
        assert_eq!(record.reason, "NotSigned");
        // The mutating webhook refuses it with the same words, and pins nothing.
        let mutated = hook.pin(&body).await;
        assert!(mutated.pins().is_empty(), "{kind}");
        let mutated = response(&mutated);
        assert_eq!(mutated["allowed"], false, "{kind}");
        assert_eq!(mutated["status"], r["status"], "{kind}");
        assert!(patch(&mutated).is_empty(), "{kind}");
    }
    // An unsigned container beside it: both refused, in order, the volume's saying so.
    let body = review(&object("Pod", spec(&i.models, &i.models)));
    let r = response(&hook.handle(&body).await);
    assert_eq!(
        r["status"]["message"],
        expected.as_str(),
        "one image, decided once: its refusal says the volume mounts it"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn the_log_line_metrics_and_events_of_a_refused_image_volume() {
    let registry = Registry::start(RegistryOptions::default());
    let i = push(&registry).await;
    let hook = webhook(
        &registry,
        policy(&i.host, &i.pem, "Enforce"),
        Arc::new(Anonymous),
        false,
        Pinning::Pods,
    );
    let metrics = Metrics::new();
    let (sink, mut records) = EventSink::new(8, metrics.clone());
    let routes = Routes::new(hook, metrics.clone()).with_events(sink);
    let logs = Buffer::default();
    let subscriber = tracing_subscriber::registry().with(json_layer(logs.clone()));
    let _logging = tracing::subscriber::set_default(subscriber);

    let body = review(&object("Pod", spec(&i.signed, &i.models)));
    let request = http::Request::post(ADMISSION_PATH)
        .body(Bytes::from(body))
        .unwrap();
    assert_eq!(routes.handle(request).await.status(), 200);

    let lines = logs.admissions();
    let denied = lines
        .iter()
        .find(|l| l["msg"] == "Denied")
        .expect("a Denied line");
    assert_eq!(
        denied["images"],
        format!("{:?}", [&i.signed, &i.models]),
        "every image decided, the volume's too"
    );
    assert_eq!(
        denied["error"],
        unsigned_volume(&i.models, &i.models_digest)
    );
    assert_eq!(denied["reason"], "NotSigned");
    let text = metrics.encode().unwrap();
    assert!(
        text.contains("image_policy_admission_requests_total{kind=\"Pod\",operation=\"CREATE\",decision=\"denied\",reason=\"NotSigned\"} 1"),
        "{text}"
    );
    let record = records.try_recv().expect("an Event is queued");
    assert_eq!(record.images, [i.models.as_str()]);
    assert_eq!(record.policy_uid.as_deref(), Some("policy-uid"));
}

#[tokio::test(flavor = "multi_thread")]
async fn a_signed_image_volume_is_admitted_and_pinned_with_its_pull_policy_untouched() {
    let registry = Registry::start(RegistryOptions::default());
    let i = push(&registry).await;
    let hook = webhook(
        &registry,
        policy(&i.host, &i.pem, "Enforce"),
        Arc::new(Anonymous),
        false,
        Pinning::Workloads,
    );
    for kind in ["Pod", "Deployment", "CronJob"] {
        let object = object(kind, spec(&i.signed, &i.weights));
        let body = review(&object);
        let r = response(&hook.handle(&body).await);
        assert_eq!(r["allowed"], true, "{kind}: {r}");
        assert!(r.get("warnings").is_none(), "{kind}: {r}");

        let answer = hook.pin(&body).await;
        assert_eq!(answer.pins().len(), 2, "{kind}");
        let r = response(&answer);
        assert_eq!(r["allowed"], true, "{kind}: {r}");
        let at = spec_at(kind);
        assert_eq!(
            patch(&r),
            [
                json!({"op": "replace", "path": format!("{at}/containers/0/image"),
                    "value": format!("{}@{}", i.signed, i.signed_digest)}),
                json!({"op": "replace", "path": format!("{at}/volumes/1/image/reference"),
                    "value": format!("{}@{}", i.weights, i.weights_digest)}),
            ],
            "{kind}"
        );
        // Only the reference changes: the pull policy and the other volume stay as written.
        let pinned = apply(object.clone(), &patch(&r));
        let mut expected = object.clone();
        *expected
            .pointer_mut(&format!("{at}/containers/0/image"))
            .unwrap() = json!(format!("{}@{}", i.signed, i.signed_digest));
        *expected
            .pointer_mut(&format!("{at}/volumes/1/image"))
            .unwrap() = json!({"reference": format!("{}@{}", i.weights, i.weights_digest), "pullPolicy": "IfNotPresent"});
        assert_eq!(pinned, expected, "{kind}");

        // Validation after it verifies the digests written: verdict-cache hits, no request.
        registry.clear_requests();
        let r = response(&hook.handle(&review(&pinned)).await);
        assert_eq!(r["allowed"], true, "{kind}: {r}");
        assert_eq!(registry.requests().len(), 0, "{:#?}", registry.requests());
        // Pinned already: nothing more to rewrite.
        assert!(patch(&response(&hook.pin(&review(&pinned)).await)).is_empty());
    }
    // With the default pinning, a Deployment's template stays as written; a Pod is pinned.
    let pods = webhook(
        &registry,
        policy(&i.host, &i.pem, "Enforce"),
        Arc::new(Anonymous),
        false,
        Pinning::Pods,
    );
    let deployment = review(&object("Deployment", spec(&i.signed, &i.weights)));
    assert!(patch(&response(&pods.pin(&deployment).await)).is_empty());
    let pod = review(&object("Pod", spec(&i.signed, &i.weights)));
    assert_eq!(patch(&response(&pods.pin(&pod).await)).len(), 2);
}

#[tokio::test(flavor = "multi_thread")]
async fn in_warn_mode_an_unsigned_image_volume_is_admitted_with_the_warning_and_not_pinned() {
    let registry = Registry::start(RegistryOptions::default());
    let i = push(&registry).await;
    let hook = webhook(
        &registry,
        policy(&i.host, &i.pem, "Warn"),
        Arc::new(Anonymous),
        false,
        Pinning::Workloads,
    );
    let warning = format!(
        "{} Container will be created as the image policy is in Warn mode.",
        unsigned_volume(&i.models, &i.models_digest)
    );
    for kind in ["Pod", "Deployment", "CronJob"] {
        let body = review(&object(kind, spec(&i.signed, &i.models)));
        let r = response(&hook.handle(&body).await);
        assert_eq!(r["allowed"], true, "{kind}: {r}");
        assert_eq!(r["warnings"], json!([warning]), "{kind}");
        // The signed container is pinned; the waived volume, never verified, is not.
        let r = response(&hook.pin(&body).await);
        assert_eq!(r["allowed"], true, "{kind}: {r}");
        let paths: Vec<String> = patch(&r)
            .iter()
            .map(|op| op["path"].as_str().unwrap().to_owned())
            .collect();
        assert_eq!(
            paths,
            [format!("{}/containers/0/image", spec_at(kind))],
            "{kind}"
        );
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn an_unmatched_image_volume_follows_allow_unmatched_images() {
    let registry = Registry::start(RegistryOptions::default());
    let i = push(&registry).await;
    let unmatched = "docker.io/library/alpine:3.20";
    let allowing = webhook(
        &registry,
        policy(&i.host, &i.pem, "Enforce"),
        Arc::new(Anonymous),
        true,
        Pinning::Workloads,
    );
    let refusing = webhook(
        &registry,
        policy(&i.host, &i.pem, "Enforce"),
        Arc::new(Anonymous),
        false,
        Pinning::Workloads,
    );
    for kind in ["Pod", "Deployment", "CronJob"] {
        let body = review(&object(kind, spec(&i.signed, unmatched)));
        registry.clear_requests();
        let r = response(&allowing.handle(&body).await);
        assert_eq!(r["allowed"], true, "{kind}: {r}");
        assert_eq!(
            r["warnings"],
            json!([format!(
                "{unmatched} did not match any image policies. Container will be created as AllowUnmatchedImages flag is true."
            )]),
            "the original's warning, word for word: {kind}"
        );
        let pinned = patch(&response(&allowing.pin(&body).await));
        assert_eq!(pinned.len(), 1, "the container only: {pinned:?}");
        let r = response(&refusing.handle(&body).await);
        assert_eq!(r["allowed"], false, "{kind}: {r}");
        assert_eq!(
            r["status"]["message"],
            format!(
                "Could not verify against any image policies for container image: {unmatched}. It is mounted as the image volume \"models\"."
            ),
            "{kind}"
        );
    }
}

/// The docker config of the registry's user, given for the Pods that name the pull secret
/// `regcred` only: how the cluster's credentials reach an image volume's verification.
struct PullSecret(DockerConfig);

impl CredentialSource for PullSecret {
    fn gather<'a>(&'a self, owner: Owner<'a>, _: &'a [&'a SecretRef]) -> BoxFuture<'a, Sources> {
        let named = owner
            .sources()
            .is_some_and(|(secrets, _)| secrets.iter().any(|s| s == "regcred"));
        let sources = if named {
            Sources::config(self.0.clone())
        } else {
            Sources::default()
        };
        Box::pin(async move { sources })
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn an_image_volume_is_verified_with_the_pods_pull_secrets() {
    let registry = Registry::start(RegistryOptions {
        basic_auth: Some(("alice".into(), "right-password".into())),
        ..RegistryOptions::default()
    });
    let i = push(&registry).await;
    let auth = STANDARD.encode("alice:right-password");
    let config = DockerConfig::from_json(
        json!({"auths": {&i.host: {"auth": auth}}})
            .to_string()
            .as_bytes(),
    )
    .unwrap();
    let hook = webhook(
        &registry,
        policy(&i.host, &i.pem, "Enforce"),
        Arc::new(PullSecret(config)),
        false,
        Pinning::Pods,
    );
    // Only the volume is in the private registry's policy: the container is signed too.
    let mut with_secret = spec(&i.signed, &i.weights);
    let r = response(
        &hook
            .handle(&review(&object("Pod", with_secret.clone())))
            .await,
    );
    assert_eq!(r["allowed"], false, "{r}");
    assert!(
        r["status"]["message"].as_str().unwrap().contains(&format!(
            "The image: {} is not signed. The registry {} refused the credentials. It is mounted as the image volume \"models\".",
            i.weights, i.host
        )),
        "{r}"
    );
    with_secret["imagePullSecrets"] = json!([{"name": "regcred"}]);
    let r = response(&hook.handle(&review(&object("Pod", with_secret))).await);
    assert_eq!(r["allowed"], true, "{r}");
}

#[tokio::test(flavor = "multi_thread")]
async fn kubectl_debug_checks_the_container_it_adds_not_the_volumes_admitted_before() {
    let registry = Registry::start(RegistryOptions::default());
    let i = push(&registry).await;
    let hook = webhook(
        &registry,
        policy(&i.host, &i.pem, "Enforce"),
        Arc::new(Anonymous),
        false,
        Pinning::Pods,
    );
    // A Pod that runs already (admitted before the policy), debugged with `kubectl debug`:
    // the API server sends the Pod with its new ephemeral container, and the Pod before.
    let old = object("Pod", spec(&i.signed, &i.models));
    let debug = |image: &str| {
        let mut new = old.clone();
        new["spec"]["ephemeralContainers"] = json!([{"name": "debugger", "image": image}]);
        let mut review: Value = serde_json::from_slice(&review(&new)).unwrap();
        review["request"]["subResource"] = "ephemeralcontainers".into();
        review["request"]["operation"] = "UPDATE".into();
        review["request"]["oldObject"] = old.clone();
        serde_json::to_vec(&review).unwrap()
    };
    let r = response(&hook.handle(&debug(&i.signed)).await);
    assert_eq!(r["allowed"], true, "{r}");
    let r = response(
        &hook
            .handle(&debug(&format!("{}/app/tools:v1", i.host)))
            .await,
    );
    assert_eq!(r["allowed"], false, "{r}");
    let message = r["status"]["message"].as_str().unwrap();
    assert!(
        message.starts_with(&format!(
            "The image: {}/app/tools:v1 is not signed.",
            i.host
        )) && !message.contains(&i.models),
        "{message}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn check_and_match_of_a_manifest_say_what_the_webhook_says() {
    let registry = Registry::start(RegistryOptions::default());
    let i = push(&registry).await;
    let hook = webhook(
        &registry,
        policy(&i.host, &i.pem, "Enforce"),
        Arc::new(Anonymous),
        false,
        Pinning::Pods,
    );
    let pod = object("Pod", spec(&i.signed, &i.models));
    let deployment = object("Deployment", spec(&i.signed, &i.weights));
    let webhook_says = response(&hook.handle(&review(&pod)).await);
    assert_eq!(webhook_says["allowed"], false);
    assert_eq!(
        response(&hook.handle(&review(&deployment)).await)["allowed"],
        true
    );

    let dir = tempfile::tempdir().unwrap();
    let manifest = dir.path().join("manifest.yaml");
    std::fs::write(
        &manifest,
        format!(
            "{}\n---\n{}\n",
            serde_yaml::to_string(&pod).unwrap(),
            serde_yaml::to_string(&deployment).unwrap()
        ),
    )
    .unwrap();
    let policy = dir.path().join("policy.yaml");
    let indented: String = i.pem.lines().map(|l| format!("        {l}\n")).collect();
    std::fs::write(
        &policy,
        format!(
            "apiVersion: signing.apps.tanzu.vmware.com/v1beta1\nkind: ClusterImagePolicy\n\
             metadata:\n  name: image-policy\nspec:\n  verification:\n    keys:\n\
             \x20   - name: k\n      publicKey: |\n{indented}    images:\n\
             \x20   - namePattern: {}/app/*\n      keys: [{{name: k}}]\n",
            i.host
        ),
    )
    .unwrap();
    let run = |args: &[&str]| {
        let out = std::process::Command::new(env!("CARGO_BIN_EXE_image-policy"))
            .args(args)
            .args(["--policy", policy.to_str().unwrap()])
            .args(["-f", manifest.to_str().unwrap()])
            .output()
            .expect("run");
        (
            out.status.code(),
            String::from_utf8_lossy(&out.stdout).into_owned(),
        )
    };
    let ca = registry.ca_path();
    let (code, out) = run(&["check", "--ca-file", ca.to_str().unwrap(), "-o", "json"]);
    assert_eq!(code, Some(1), "something would be refused: {out}");
    let reports: Value = serde_json::from_str(&out).expect("json");
    let rows: Vec<(&str, &str, bool, &Value)> = reports
        .as_array()
        .unwrap()
        .iter()
        .map(|r| {
            (
                r["workload"].as_str().unwrap(),
                r["image"].as_str().unwrap(),
                r["admitted"].as_bool().unwrap(),
                &r["imageVolumes"],
            )
        })
        .collect();
    assert_eq!(
        rows,
        [
            ("Pod/w", i.signed.as_str(), true, &Value::Null),
            ("Pod/w", i.models.as_str(), false, &json!(["models"])),
            ("Deployment/w", i.signed.as_str(), true, &Value::Null),
            ("Deployment/w", i.weights.as_str(), true, &json!(["models"])),
        ]
    );
    assert_eq!(
        reports[1]["message"], webhook_says["status"]["message"],
        "the webhook's words"
    );
    assert_eq!(reports[3]["digest"], i.weights_digest.as_str());

    let (code, out) = run(&["match"]);
    assert_eq!(code, Some(0), "{out}");
    assert!(
        out.contains(&format!(
            "Pod/w image volume \"models\": {}\n  images[0] {}/app/* keys: k\n",
            i.models, i.host
        )),
        "{out}"
    );
    assert!(
        out.contains(&format!("Pod/w container \"app\": {}\n", i.signed)),
        "{out}"
    );
}

/// A writer that keeps what the JSON log layer writes.
#[derive(Clone, Default)]
struct Buffer(Arc<Mutex<Vec<u8>>>);

impl io::Write for Buffer {
    fn write(&mut self, bytes: &[u8]) -> io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(bytes);
        Ok(bytes.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

impl<'a> MakeWriter<'a> for Buffer {
    type Writer = Buffer;

    fn make_writer(&'a self) -> Self::Writer {
        self.clone()
    }
}

impl Buffer {
    /// The admission log lines written so far, parsed.
    fn admissions(&self) -> Vec<Value> {
        let text = String::from_utf8(self.0.lock().unwrap().clone()).unwrap();
        text.lines()
            .map(|l| serde_json::from_str::<Value>(l).unwrap())
            .filter(|l| l["logger"] == "image-policy.webhook")
            .collect()
    }
}
