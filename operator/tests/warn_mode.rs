//! Warn mode (docs/contract.md §2) through the webhook's routes, with the real registry
//! behind and images signed by the real cosign: what Enforce refuses is admitted with a warning that carries the denial word for
//! word, and recorded as such in the metric and the log line; what Enforce admits is admitted
//! as it was; an entry in Enforce keeps enforcing; nothing that failed is pinned; and
//! `image-policy check` says the same offline.

// A test crate: its helpers fail the test loudly by design.
#![allow(
    clippy::expect_used,
    clippy::unwrap_used,
    clippy::indexing_slicing,
    clippy::panic
)]

use std::io;
use std::sync::{Arc, Mutex};

use bytes::Bytes;
use image_policy::policy::{PolicyState, Snapshot};
use image_policy::server::Handler as _;
use image_policy::telemetry::Metrics;
use image_policy::telemetry::logs::json_layer;
use image_policy::verify::{RegistryConfig, Verifier, VerifyConfig};
use image_policy::webhook::Webhook;
use image_policy::webhook::admit::Settings;
use image_policy::webhook::credentials::Anonymous;
use image_policy::webhook::http::{ADMISSION_PATH, Routes};
use image_policy::webhook::pin::Pinning;
use image_policy_crd::ClusterImagePolicy;
use image_policy_testsupport::cosign::Pusher;
use image_policy_testsupport::producers::{Cosign, Signing};
use image_policy_testsupport::registry::{Registry, RegistryOptions};
use serde_json::{Value, json};
use tokio::sync::watch;
use tracing_subscriber::fmt::MakeWriter;
use tracing_subscriber::layer::SubscriberExt as _;

/// What kubectl prints after `Warning: ` for an image admitted in Warn mode.
fn waived(denial: &str) -> String {
    format!("{denial} Container will be created as the image policy is in Warn mode.")
}

fn policy(verification: Value) -> PolicyState {
    let policy: ClusterImagePolicy = serde_json::from_value(json!({
        "apiVersion": "signing.apps.tanzu.vmware.com/v1beta1", "kind": "ClusterImagePolicy",
        "metadata": {"name": "image-policy"}, "spec": {"verification": verification}}))
    .expect("policy");
    PolicyState::Active(Arc::new(Snapshot::compile(&policy).expect("compiles")))
}

/// The routes of a webhook on `policy`, and the metrics they record into.
fn routes(registry: &Registry, policy: PolicyState) -> (Routes, Metrics) {
    let (_, rx) = watch::channel(policy);
    let verifier = Verifier::new(VerifyConfig {
        registry: RegistryConfig {
            extra_roots_pem: vec![registry.ca_pem()],
            ..RegistryConfig::default()
        },
        ..VerifyConfig::default()
    })
    .expect("verifier");
    let webhook = Webhook::new(rx, verifier, Arc::new(Anonymous), Settings::default())
        .with_pinning(Pinning::Pods);
    let metrics = Metrics::new();
    (Routes::new(webhook, metrics.clone()), metrics)
}

fn review(images: &[&str]) -> Value {
    let containers: Vec<Value> = images
        .iter()
        .enumerate()
        .map(|(i, image)| json!({"name": format!("c{i}"), "image": image}))
        .collect();
    json!({"apiVersion": "admission.k8s.io/v1", "kind": "AdmissionReview", "request": {
        "uid": "u-1", "kind": {"group": "", "version": "v1", "kind": "Pod"},
        "resource": {"group": "", "version": "v1", "resource": "pods"},
        "namespace": "default", "name": "p", "operation": "CREATE",
        "object": {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "p"},
            "spec": {"containers": containers}}}})
}

/// Posts a review of a Pod with `images` to `path`; returns its `response`.
async fn post(routes: &Routes, path: &str, images: &[&str]) -> Value {
    let body = serde_json::to_vec(&review(images)).unwrap();
    let request = http::Request::post(path).body(Bytes::from(body)).unwrap();
    let answer = routes.handle(request).await;
    assert_eq!(answer.status(), 200);
    let review: Value = serde_json::from_slice(answer.body()).unwrap();
    review["response"].clone()
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

struct Images {
    host: String,
    pem: String,
    signed: String,
    signed_digest: String,
    other: String,
    unsigned: String,
    strict: String,
    new: String,
}

/// Images signed by the real cosign (its `.sig` tag): `app/signed` with the policy's key,
/// `app/other` with a stranger's.
async fn push(registry: &Registry) -> Images {
    let pusher = Pusher::new(registry);
    let cosign = Cosign::new(registry);
    let (key, stranger) = (cosign.generate_key(), cosign.generate_key());
    let host = registry.host();
    let signed_digest = pusher.push_image("app/signed", "v1").await;
    let signed = format!("{host}/app/signed@{signed_digest}");
    cosign.sign(&signed, &key, Signing::LEGACY_TAG);
    let other_digest = pusher.push_image("app/other", "v1").await;
    let other = format!("{host}/app/other@{other_digest}");
    cosign.sign(&other, &stranger, Signing::LEGACY_TAG);
    pusher.push_image("app/unsigned", "v1").await;
    pusher.push_image("app/strict/unsigned", "v1").await;
    pusher.push_image("new/unsigned", "v1").await;
    Images {
        pem: key.public_pem.clone(),
        signed: format!("{host}/app/signed:v1"),
        signed_digest,
        other: format!("{host}/app/other:v1"),
        unsigned: format!("{host}/app/unsigned:v1"),
        strict: format!("{host}/app/strict/unsigned:v1"),
        new: format!("{host}/new/unsigned:v1"),
        host,
    }
}

#[tokio::test]
async fn under_warn_a_would_be_denial_is_admitted_with_its_exact_words() {
    let registry = Registry::start(RegistryOptions::default());
    let i = push(&registry).await;
    let entries = json!([
        {"namePattern": format!("{}/app/*", i.host), "keys": [{"name": "k"}]},
        {"namePattern": format!("{}/app/strict/*", i.host), "keys": [{"name": "k"}], "mode": "Enforce"},
    ]);
    let keys = json!([{"name": "k", "publicKey": i.pem}]);
    let (enforce, _) = routes(&registry, policy(json!({"keys": keys, "images": entries})));
    let (warn, metrics) = routes(
        &registry,
        policy(json!({"mode": "Warn", "keys": keys, "images": entries})),
    );
    let logs = Buffer::default();
    let subscriber = tracing_subscriber::registry().with(json_layer(logs.clone()));
    let _logging = tracing::subscriber::set_default(subscriber);

    // Signed: admitted in both, and Warn adds no warning.
    let r = post(&warn, ADMISSION_PATH, &[&i.signed]).await;
    assert_eq!(r["allowed"], true, "{r}");
    assert!(r.get("warnings").is_none(), "{r}");

    // Each would-be denial: Enforce's message, word for word, as Warn's warning.
    for image in [&i.unsigned, &i.other, "busybox", "Bad@@"] {
        let refused = post(&enforce, ADMISSION_PATH, &[image]).await;
        assert_eq!(refused["allowed"], false, "{refused}");
        let denial = refused["status"]["message"].as_str().unwrap();
        let r = post(&warn, ADMISSION_PATH, &[image]).await;
        assert_eq!(r["allowed"], true, "{image}: {r}");
        assert!(
            r.get("status").is_none() || r["status"]["code"] != 403,
            "{r}"
        );
        assert_eq!(r["warnings"], json!([waived(denial)]), "{image}");
    }
    assert_eq!(
        post(&warn, ADMISSION_PATH, &[&i.other]).await["warnings"][0],
        waived(&format!("The image: {} is not signed.", i.other)),
        "the original's words, then Warn's sentence"
    );

    // An image that an entry in Enforce also matches is refused: one Enforce enforces.
    let r = post(&warn, ADMISSION_PATH, &[&i.strict]).await;
    assert_eq!(r["allowed"], false, "{r}");
    assert!(
        r["status"]["message"]
            .as_str()
            .unwrap()
            .starts_with(&format!("The image: {} is not signed.", i.strict)),
        "{r}"
    );

    // A signed and an unsigned image: the signed one is pinned, the unsigned one is not (it
    // has no verified digest), and the warning is left to validation.
    let r = post(&warn, "/pin-digests", &[&i.signed, &i.unsigned]).await;
    assert_eq!(r["allowed"], true, "{r}");
    assert!(r.get("warnings").is_none(), "{r}");
    let patch: Value = {
        use base64::Engine as _;
        let b64 = r["patch"].as_str().expect("a patch");
        serde_json::from_slice(
            &base64::engine::general_purpose::STANDARD
                .decode(b64)
                .unwrap(),
        )
        .unwrap()
    };
    assert_eq!(
        patch,
        json!([{"op": "replace", "path": "/spec/containers/0/image",
            "value": format!("{}@{}", i.signed, i.signed_digest)}])
    );

    // The metric: `warned`, with the reason of the denial it would have been.
    let text = metrics.encode().unwrap();
    let series = |decision: &str, reason: &str| {
        format!(
            "image_policy_admission_requests_total{{kind=\"Pod\",operation=\"CREATE\",decision=\"{decision}\",reason=\"{reason}\"}}"
        )
    };
    for (decision, reason) in [
        ("allowed", "Verified"),
        ("warned", "NotSigned"),
        ("warned", "SignatureMismatch"),
        ("warned", "Unmatched"),
        ("warned", "InvalidReference"),
        ("denied", "NotSigned"),
    ] {
        assert!(
            text.contains(&series(decision, reason)),
            "{decision} {reason}: {text}"
        );
    }

    // The log line: its own message, with the denial it would have been as `error`.
    let lines = logs.admissions();
    let warned: Vec<&Value> = lines
        .iter()
        .filter(|l| l["msg"] == "Admitted in Warn mode")
        .collect();
    let unsigned = warned
        .iter()
        .find(|l| {
            l["images"]
                .as_str()
                .unwrap_or_default()
                .contains("app/unsigned")
        })
        .expect("a line for the unsigned image");
    assert_eq!(unsigned["reason"], "NotSigned");
    assert!(
        unsigned["error"].as_str().unwrap().starts_with(&format!(
            "The image: {} is not signed. No signature",
            i.unsigned
        )),
        "{unsigned}"
    );
    assert!(
        lines
            .iter()
            .any(|l| l["msg"] == "Admitted" && l["reason"] == "Verified"),
        "{lines:?}"
    );
}

#[tokio::test]
async fn an_entry_in_warn_under_an_enforced_policy_warns_for_its_images_only() {
    let registry = Registry::start(RegistryOptions::default());
    let i = push(&registry).await;
    let (routes, _) = routes(
        &registry,
        policy(json!({
        "keys": [{"name": "k", "publicKey": i.pem}],
        "images": [
            {"namePattern": format!("{}/app/*", i.host), "keys": [{"name": "k"}]},
            {"namePattern": format!("{}/new/*", i.host), "keys": [{"name": "k"}], "mode": "Warn"},
        ]})),
    );
    let r = post(&routes, ADMISSION_PATH, &[&i.new]).await;
    assert_eq!(r["allowed"], true, "{r}");
    let warning = r["warnings"][0].as_str().unwrap();
    assert!(
        warning.starts_with(&format!("The image: {} is not signed. No signature", i.new))
            && warning.ends_with(" Container will be created as the image policy is in Warn mode."),
        "{warning}"
    );
    // The other entry, and unmatched images, are enforced as the policy says.
    let r = post(&routes, ADMISSION_PATH, &[&i.unsigned]).await;
    assert_eq!(r["allowed"], false, "{r}");
    let r = post(&routes, ADMISSION_PATH, &["busybox"]).await;
    assert_eq!(
        r["status"]["message"],
        "Could not verify against any image policies for container image: busybox."
    );
    // One image refused refuses the Pod; the warned one still says so.
    let r = post(&routes, ADMISSION_PATH, &[&i.new, &i.unsigned]).await;
    assert_eq!(r["allowed"], false, "{r}");
    assert_eq!(r["warnings"].as_array().map(Vec::len), Some(1), "{r}");
}

#[tokio::test]
async fn check_admits_a_warned_refusal_with_exit_status_0_and_says_so() {
    let registry = Registry::start(RegistryOptions::default());
    let i = push(&registry).await;
    let dir = tempfile::tempdir().expect("dir");
    let path = dir.path().join("policy.yaml");
    let indented: String = i.pem.lines().map(|l| format!("        {l}\n")).collect();
    std::fs::write(
        &path,
        format!(
            "apiVersion: signing.apps.tanzu.vmware.com/v1beta1\nkind: ClusterImagePolicy\n\
             metadata:\n  name: image-policy\nspec:\n  verification:\n    mode: Warn\n    keys:\n\
             \x20   - name: k\n      publicKey: |\n{indented}    images:\n\
             \x20   - namePattern: {}/app/*\n      keys: [{{name: k}}]\n",
            i.host
        ),
    )
    .expect("policy");
    let check = |args: &[&str]| {
        let out = std::process::Command::new(env!("CARGO_BIN_EXE_image-policy"))
            .args(["check", "--policy", path.to_str().unwrap()])
            .args(["--ca-file", registry.ca_path().to_str().unwrap()])
            .args(args)
            .output()
            .expect("run");
        (
            out.status.code(),
            String::from_utf8_lossy(&out.stdout).into_owned(),
        )
    };
    let (code, out) = check(&[&i.unsigned, "busybox", &i.signed]);
    assert_eq!(code, Some(0), "{out}");
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(lines.len(), 3, "{out}");
    assert!(
        lines[0].starts_with(&format!(
            "Warning: The image: {} is not signed. No signature",
            i.unsigned
        )) && lines[0].ends_with(" Container will be created as the image policy is in Warn mode."),
        "{out}"
    );
    assert_eq!(
        lines[1],
        format!(
            "Warning: {}",
            waived("Could not verify against any image policies for container image: busybox.")
        )
    );
    assert!(lines[2].starts_with("Admitted: "), "{out}");

    let (code, out) = check(&["-o", "json", &i.unsigned]);
    assert_eq!(code, Some(0), "{out}");
    let json: Value = serde_json::from_str(&out).expect("json");
    assert_eq!(json[0]["admitted"], true, "{json}");
    assert_eq!(json[0]["reason"], "NotSigned", "{json}");
    assert_eq!(json[0]["mode"], "Warn", "{json}");
}
