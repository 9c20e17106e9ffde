//! What the webhook benches share: a real registry with a signed image, and the webhook
//! with its verdict for that image already cached (the steady state of a busy cluster).

use std::sync::Arc;

use image_policy::policy::{PolicyState, Snapshot};
use image_policy::verify::{RegistryConfig, Verifier, VerifyConfig};
use image_policy::webhook::Webhook;
use image_policy::webhook::admit::Settings;
use image_policy::webhook::credentials::Anonymous;
use image_policy_crd::ClusterImagePolicy;
use image_policy_testsupport::cosign::{Pusher, public_key_pem};
use image_policy_testsupport::registry::{Registry, RegistryOptions};
use sigstore::crypto::SigningScheme;
use tokio::sync::watch;

/// The webhook, a review of a Pod whose image it has verified and cached, and what must stay
/// alive while it serves.
pub struct Signed {
    pub webhook: Webhook,
    /// An AdmissionReview (CREATE of a one-container Pod) as the API server sends it.
    pub body: Vec<u8>,
    pub _registry: Registry,
    pub _policy: watch::Sender<PolicyState>,
}

/// Pushes and signs `load/app:v1`, compiles a policy for `<registry>/load/*` with its key,
/// and warms the webhook's caches with one review.
pub async fn signed_webhook() -> Signed {
    let registry = Registry::start(RegistryOptions::default());
    let pusher = Pusher::new(&registry);
    let signer = SigningScheme::ECDSA_P256_SHA256_ASN1
        .create_signer()
        .expect("signer");
    let pem = public_key_pem(&signer);
    let digest = pusher.push_image("load/app", "v1").await;
    pusher.sign("load/app", &digest, &signer).await;
    let host = registry.host();

    let policy: ClusterImagePolicy = serde_json::from_value(serde_json::json!({
        "apiVersion": "signing.apps.tanzu.vmware.com/v1beta1", "kind": "ClusterImagePolicy",
        "metadata": {"name": "image-policy"},
        "spec": {"verification": {"keys": [{"name": "k", "publicKey": pem}],
            "images": [{"namePattern": format!("{host}/load/*"), "keys": [{"name": "k"}]}]}}
    }))
    .expect("policy");
    let snapshot = Arc::new(Snapshot::compile(&policy).expect("compiles"));
    let (policy, rx) = watch::channel(PolicyState::Active(snapshot));
    let config = VerifyConfig {
        registry: RegistryConfig {
            extra_roots_pem: vec![registry.ca_pem()],
            ..RegistryConfig::default()
        },
        ..VerifyConfig::default()
    };
    let verifier = Verifier::new(config).expect("verifier");
    let webhook = Webhook::new(rx, verifier, Arc::new(Anonymous), Settings::default());

    let fixture = std::fs::read(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/data/admission/connaisseur/02_pod.json"
    ))
    .expect("fixture");
    let mut review: serde_json::Value = serde_json::from_slice(&fixture).expect("json");
    review["request"]["object"]["spec"]["containers"][0]["image"] =
        serde_json::json!(format!("{host}/load/app:v1"));
    let body = serde_json::to_vec(&review).expect("body");
    let warm = webhook.handle(&body).await;
    assert!(
        String::from_utf8_lossy(&warm.body()).contains("\"allowed\":true"),
        "{}",
        String::from_utf8_lossy(&warm.body())
    );
    Signed {
        webhook,
        body,
        _registry: registry,
        _policy: policy,
    }
}
