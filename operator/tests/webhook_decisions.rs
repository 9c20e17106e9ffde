//! The webhook over a real TLS connection (a rustls client), with the real registry behind it
//! and images signed by the real cosign:
//! each decision docs/contract.md §2 lists, as the API server would receive it.

// A test crate: its helpers fail the test loudly by design.
#![allow(
    clippy::expect_used,
    clippy::unwrap_used,
    clippy::indexing_slicing,
    clippy::panic
)]

use std::sync::Arc;

use image_policy::policy::PolicyState;
use image_policy::policy::Snapshot;
use image_policy::server::{ServerConfig, serve_on};
use image_policy::telemetry::Metrics;
use image_policy::verify::{RegistryConfig, Verifier, VerifyConfig};
use image_policy::webhook::Webhook;
use image_policy::webhook::admit::Settings;
use image_policy::webhook::credentials::Anonymous;
use image_policy::webhook::http::Routes;
use image_policy_crd::ClusterImagePolicy;
use image_policy_testsupport::cosign::Pusher;
use image_policy_testsupport::producers::{Cosign, Signing};
use image_policy_testsupport::registry::{Registry, RegistryOptions};
use serde_json::{Value, json};
use tokio::net::TcpListener;
use tokio::sync::watch;

struct Harness {
    client: reqwest::Client,
    url: String,
    _dir: tempfile::TempDir,
}

impl Harness {
    async fn start(registry: &Registry, policy: PolicyState, allow_unmatched_images: bool) -> Self {
        let dir = tempfile::tempdir().expect("dir");
        let (cert, key) = image_policy_testsupport::tls::self_signed(dir.path());
        // The receiver keeps the last value when the sender is gone: no controller here.
        let (_, rx) = watch::channel(policy);
        let config = VerifyConfig {
            registry: RegistryConfig {
                extra_roots_pem: vec![registry.ca_pem()],
                ..RegistryConfig::default()
            },
            ..VerifyConfig::default()
        };
        let webhook = Webhook::new(
            rx,
            Verifier::new(config).expect("verifier"),
            Arc::new(Anonymous),
            Settings {
                allow_unmatched_images,
            },
        );
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let port = listener.local_addr().expect("addr").port();
        let routes = Arc::new(Routes::new(webhook, Metrics::new()));
        tokio::spawn(serve_on(
            listener,
            ServerConfig::new(&cert, &key),
            routes,
            std::future::pending(),
        ));
        let ca = reqwest::Certificate::from_pem(&std::fs::read(&cert).expect("cert")).expect("pem");
        let client = reqwest::Client::builder()
            .tls_certs_only([ca])
            .build()
            .expect("client");
        Harness {
            client,
            url: format!("https://127.0.0.1:{port}/signing-policy-check"),
            _dir: dir,
        }
    }

    /// Posts a review; returns its `response`.
    async fn review(&self, body: &Value) -> Value {
        let answer = self
            .client
            .post(&self.url)
            .json(body)
            .send()
            .await
            .expect("post");
        assert_eq!(answer.status(), 200);
        let review: Value = answer.json().await.expect("json");
        review["response"].clone()
    }
}

fn pod(namespace: &str, spec: Value) -> Value {
    json!({"apiVersion": "admission.k8s.io/v1", "kind": "AdmissionReview", "request": {
        "uid": "u-1", "kind": {"group": "", "version": "v1", "kind": "Pod"},
        "resource": {"group": "", "version": "v1", "resource": "pods"},
        "namespace": namespace, "name": "p", "operation": "CREATE",
        "object": {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "p", "namespace": namespace}, "spec": spec}}})
}

fn containers(images: &[&str]) -> Value {
    json!(
        images
            .iter()
            .enumerate()
            .map(|(i, image)| json!({"name": format!("c{i}"), "image": image}))
            .collect::<Vec<_>>()
    )
}

fn policy(host: &str, pem: &str) -> PolicyState {
    let policy: ClusterImagePolicy = serde_json::from_value(json!({
        "apiVersion": "signing.apps.tanzu.vmware.com/v1beta1", "kind": "ClusterImagePolicy",
        "metadata": {"name": "image-policy"},
        "spec": {"verification": {
            "exclude": {"resources": {"namespaces": ["excluded"]}},
            "keys": [{"name": "k", "publicKey": pem}],
            "images": [{"namePattern": format!("{host}/app/*"), "keys": [{"name": "k"}]}]}}
    }))
    .expect("policy");
    PolicyState::Active(Arc::new(Snapshot::compile(&policy).expect("compiles")))
}

#[tokio::test(flavor = "multi_thread")]
async fn each_decision_over_tls_with_the_registry_behind() {
    let registry = Registry::start(RegistryOptions::default());
    let pusher = Pusher::new(&registry);
    let cosign = Cosign::new(&registry);
    let (signer, stranger) = (cosign.generate_key(), cosign.generate_key());
    let pem = signer.public_pem.clone();
    let host = registry.host();
    let signed_digest = pusher.push_image("app/signed", "v1").await;
    let by_digest = format!("{host}/app/signed@{signed_digest}");
    cosign.sign(&by_digest, &signer, Signing::LEGACY_TAG);
    let other_digest = pusher.push_image("app/other", "v1").await;
    let by_digest = format!("{host}/app/other@{other_digest}");
    cosign.sign(&by_digest, &stranger, Signing::LEGACY_TAG);
    pusher.push_image("app/unsigned", "v1").await;
    let (signed, other, unsigned) = (
        format!("{host}/app/signed:v1"),
        format!("{host}/app/other:v1"),
        format!("{host}/app/unsigned:v1"),
    );

    let strict = Harness::start(&registry, policy(&host, &pem), false).await;
    let lenient = Harness::start(&registry, policy(&host, &pem), true).await;
    let none = Harness::start(&registry, PolicyState::Absent, false).await;

    // Signed: admitted, no warning.
    let r = strict
        .review(&pod(
            "default",
            json!({"containers": containers(&[&signed])}),
        ))
        .await;
    assert_eq!(r["allowed"], true, "{r}");
    assert!(r.get("warnings").is_none(), "{r}");

    // Unsigned, and signed by another key: denied with the seed's words.
    let r = strict
        .review(&pod(
            "default",
            json!({"containers": containers(&[&unsigned])}),
        ))
        .await;
    assert_eq!(r["allowed"], false);
    assert!(
        r["status"]["message"]
            .as_str()
            .unwrap()
            .starts_with(&format!(
                "The image: {unsigned} is not signed. No signature"
            ))
    );
    let r = strict
        .review(&pod(
            "default",
            json!({"containers": containers(&[&other])}),
        ))
        .await;
    assert_eq!(
        r["status"]["message"],
        format!("The image: {other} is not signed.")
    );
    assert_eq!(r["status"]["reason"], r["status"]["message"]);
    assert_eq!(r["status"]["code"], 403);

    // Unmatched, with the flag off and on.
    let r = strict
        .review(&pod(
            "default",
            json!({"containers": containers(&["busybox"])}),
        ))
        .await;
    assert_eq!(
        r["status"]["message"],
        "Could not verify against any image policies for container image: busybox."
    );
    let r = lenient
        .review(&pod(
            "default",
            json!({"containers": containers(&["busybox", &signed])}),
        ))
        .await;
    assert_eq!(r["allowed"], true);
    assert_eq!(
        r["warnings"],
        json!([
            "busybox did not match any image policies. Container will be created as AllowUnmatchedImages flag is true."
        ])
    );

    // No policy; an excluded namespace.
    let r = none
        .review(&pod(
            "default",
            json!({"containers": containers(&[&unsigned])}),
        ))
        .await;
    assert_eq!(r["allowed"], true);
    assert_eq!(
        r["warnings"],
        json!([
            "clusterimagepolicies.signing.apps.tanzu.vmware.com \"image-policy\" not found. Image policy enforcement was not applied."
        ])
    );
    let r = strict
        .review(&pod(
            "excluded",
            json!({"containers": containers(&[&unsigned])}),
        ))
        .await;
    assert_eq!(r["allowed"], true);

    // An unsigned init container next to a signed one; every failing image is named.
    let spec = json!({"initContainers": containers(&[&unsigned]), "containers": containers(&[&signed, &other])});
    let r = strict.review(&pod("default", spec)).await;
    let message = r["status"]["message"].as_str().unwrap();
    assert!(
        message.contains(&format!("The image: {unsigned} is not signed.")),
        "{message}"
    );
    assert!(
        message.contains(&format!("The image: {other} is not signed.")),
        "{message}"
    );
    assert!(!message.contains(&signed), "{message}");

    // An ephemeral container added by pods/ephemeralcontainers (kubectl debug).
    let mut debug = pod(
        "default",
        json!({"containers": containers(&[&signed]),
        "ephemeralContainers": [{"name": "debugger", "image": unsigned}]}),
    );
    debug["request"]["subResource"] = json!("ephemeralcontainers");
    debug["request"]["operation"] = json!("UPDATE");
    debug["request"]["oldObject"] =
        json!({"kind": "Pod", "spec": {"containers": containers(&[&signed])}});
    let r = strict.review(&debug).await;
    assert_eq!(r["allowed"], false, "{r}");
    assert!(r["status"]["message"].as_str().unwrap().contains(&unsigned));

    // A Deployment whose template is not signed, answered in v1beta1 as it came.
    let deployment = json!({"apiVersion": "admission.k8s.io/v1beta1", "kind": "AdmissionReview", "request": {
        "uid": "u-2", "kind": {"group": "apps", "version": "v1", "kind": "Deployment"},
        "resource": {"group": "apps", "version": "v1", "resource": "deployments"},
        "namespace": "default", "name": "web", "operation": "CREATE",
        "object": {"kind": "Deployment", "spec": {"template": {"spec": {"containers": containers(&[&unsigned])}}}}}});
    let answer = strict
        .client
        .post(&strict.url)
        .json(&deployment)
        .send()
        .await
        .expect("post");
    let review: Value = answer.json().await.expect("json");
    assert_eq!(review["apiVersion"], "admission.k8s.io/v1beta1");
    assert_eq!(review["response"]["uid"], "u-2");
    assert_eq!(review["response"]["allowed"], false);

    // Not an AdmissionReview: 400, never an allow.
    let answer = strict
        .client
        .post(&strict.url)
        .body("{\"kind\": \"Pod\"}")
        .send()
        .await
        .expect("post");
    assert_eq!(answer.status(), 400);
}
