//! The mutating webhook (`/pin-digests`, #13) against the real registry, with images signed
//! by the real cosign (its `.sig` tag): which images are
//! rewritten to their verified digest, what is left alone (and costs no request), that it
//! refuses what validation refuses with the same words, and that validation after it is a
//! cache hit. A registry that answers a tag's HEAD with one digest and serves other bytes by
//! tag is a stub, since the real one cannot be made to lie.

// A test crate: its helpers fail the test loudly by design.
#![allow(
    clippy::expect_used,
    clippy::unwrap_used,
    clippy::indexing_slicing,
    clippy::panic
)]

use std::sync::Arc;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use image_policy::policy::{PolicyState, Snapshot};
use image_policy::verify::{RegistryConfig, Verifier, VerifyConfig};
use image_policy::webhook::Webhook;
use image_policy::webhook::admit::Settings;
use image_policy::webhook::credentials::Anonymous;
use image_policy::webhook::pin::Pinning;
use image_policy_crd::ClusterImagePolicy;
use image_policy_testsupport::cosign::{
    OCI_MANIFEST, Pusher, public_key_pem, sha256_digest, signature_tag, simple_signing_payload,
};
use image_policy_testsupport::producers::{Cosign, Signing};
use image_policy_testsupport::registry::{Registry, RegistryOptions};
use image_policy_testsupport::stub::Stub;
use serde_json::{Value, json};
use sigstore::crypto::{SigStoreSigner, SigningScheme};
use tokio::sync::watch;

fn signer() -> SigStoreSigner {
    SigningScheme::ECDSA_P256_SHA256_ASN1
        .create_signer()
        .expect("signer")
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

fn webhook(config: RegistryConfig, policy: PolicyState, pinning: Pinning) -> Webhook {
    let (_, rx) = watch::channel(policy);
    let verifier = Verifier::new(VerifyConfig {
        registry: config,
        ..VerifyConfig::default()
    })
    .expect("verifier");
    Webhook::new(
        rx,
        verifier,
        Arc::new(Anonymous),
        Settings {
            allow_unmatched_images: true,
        },
    )
    .with_pinning(pinning)
}

fn review(namespace: &str, kind: &str, sub_resource: Option<&str>, object: Value) -> Value {
    let mut request = json!({
        "uid": "u-1", "kind": {"group": "", "version": "v1", "kind": kind},
        "resource": {"group": "", "version": "v1", "resource": "pods"},
        "namespace": namespace, "name": "p", "operation": "CREATE", "object": object});
    if let Some(sub) = sub_resource {
        request["subResource"] = sub.into();
    }
    json!({"apiVersion": "admission.k8s.io/v1", "kind": "AdmissionReview", "request": request})
}

fn pod(spec: Value) -> Value {
    json!({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "p"}, "spec": spec})
}

/// The response of a review body.
fn response(answer: &image_policy::webhook::Answer) -> Value {
    assert_eq!(
        answer.status(),
        200,
        "{}",
        String::from_utf8_lossy(&answer.body())
    );
    let review: Value = serde_json::from_slice(&answer.body()).unwrap();
    review["response"].clone()
}

/// The JSON patch of a response, decoded; empty when there is none.
fn patch(response: &Value) -> Vec<Value> {
    match response["patch"].as_str() {
        None => Vec::new(),
        Some(b64) => {
            assert_eq!(response["patchType"], "JSONPatch");
            serde_json::from_slice(&STANDARD.decode(b64).unwrap()).unwrap()
        }
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

#[tokio::test(flavor = "multi_thread")]
async fn verified_images_of_a_pod_are_pinned_and_the_rest_left_alone() {
    let registry = Registry::start(RegistryOptions::default());
    let pusher = Pusher::new(&registry);
    let host = registry.host();
    let cosign = Cosign::new(&registry);
    let key = cosign.generate_key();
    let signed = pusher.push_image("app/signed", "v1").await;
    cosign.sign(
        &format!("{host}/app/signed@{signed}"),
        &key,
        Signing::LEGACY_TAG,
    );
    let tools = pusher.push_image("app/tools", "v2").await;
    cosign.sign(
        &format!("{host}/app/tools@{tools}"),
        &key,
        Signing::LEGACY_TAG,
    );
    pusher.push_image("app/unsigned", "v1").await;
    let config = RegistryConfig {
        extra_roots_pem: vec![registry.ca_pem()],
        ..RegistryConfig::default()
    };
    let pinning = webhook(
        config.clone(),
        policy(&host, &key.public_pem),
        Pinning::Pods,
    );

    let image = format!("{host}/app/signed:v1");
    let by_digest = format!("{host}/app/tools@{tools}");
    let spec = json!({
        "initContainers": [{"name": "init", "image": format!("{host}/app/tools:v2")}],
        "containers": [
            {"name": "app", "image": image},
            {"name": "sidecar", "image": by_digest},
            {"name": "other", "image": "busybox:1.36"},
        ],
        "ephemeralContainers": [{"name": "debug", "image": image}],
    });
    let object = pod(spec);
    let body = serde_json::to_vec(&review("default", "Pod", None, object.clone())).unwrap();
    registry.clear_requests();
    let answer = pinning.pin(&body).await;
    let r = response(&answer);
    assert_eq!(r["allowed"], true, "{r}");
    assert!(r.get("warnings").is_none(), "left to validation: {r}");
    assert_eq!(
        patch(&r),
        [
            json!({"op": "replace", "path": "/spec/initContainers/0/image", "value": format!("{host}/app/tools:v2@{tools}")}),
            json!({"op": "replace", "path": "/spec/containers/0/image", "value": format!("{image}@{signed}")}),
            json!({"op": "replace", "path": "/spec/ephemeralContainers/0/image", "value": format!("{image}@{signed}")}),
        ]
    );
    // Cold: 3 requests per tag (HEAD, signature manifest, payload); the sidecar written with
    // the init container's digest shares its verification.
    assert_eq!(
        registry.requests().len(),
        3 + 3,
        "{:#?}",
        registry.requests()
    );

    // Validation after it: the digests written are verdict-cache hits, no request at all.
    let pinned = apply(object, &patch(&r));
    registry.clear_requests();
    let validated = pinning
        .handle(&serde_json::to_vec(&review("default", "Pod", None, pinned.clone())).unwrap())
        .await;
    assert_eq!(response(&validated)["allowed"], true);
    assert_eq!(registry.requests().len(), 0, "{:#?}", registry.requests());

    // A second pass changes nothing: every covered image has its digest.
    let again = pinning
        .pin(&serde_json::to_vec(&review("default", "Pod", None, pinned)).unwrap())
        .await;
    assert!(patch(&response(&again)).is_empty());
    assert!(again.pins().is_empty());

    // Refused as validation refuses it, with the same words, and nothing pinned.
    let unsigned = pod(json!({"containers": [
        {"name": "a", "image": image},
        {"name": "b", "image": format!("{host}/app/unsigned:v1")},
    ]}));
    let body = serde_json::to_vec(&review("default", "Pod", None, unsigned)).unwrap();
    let (mutated, validated) = (pinning.pin(&body).await, pinning.handle(&body).await);
    let (mutated, validated) = (response(&mutated), response(&validated));
    assert_eq!(mutated["allowed"], false);
    assert_eq!(mutated["status"], validated["status"]);
    assert!(patch(&mutated).is_empty());

    // An excluded namespace: no patch, no request.
    registry.clear_requests();
    let other =
        pod(json!({"containers": [{"name": "a", "image": format!("{host}/app/unsigned:v1")}]}));
    let excluded = pinning
        .pin(&serde_json::to_vec(&review("excluded", "Pod", None, other.clone())).unwrap())
        .await;
    let r = response(&excluded);
    assert_eq!(r["allowed"], true);
    assert!(patch(&r).is_empty());
    assert_eq!(registry.requests().len(), 0);
    // Unmatched: no patch, no request.
    let unmatched = pod(json!({"containers": [{"name": "a", "image": "busybox"}]}));
    let r = response(
        &pinning
            .pin(&serde_json::to_vec(&review("default", "Pod", None, unmatched)).unwrap())
            .await,
    );
    assert!(patch(&r).is_empty());
    assert_eq!(registry.requests().len(), 0);

    // A Deployment's template: left as written by default, pinned with Pinning::Workloads.
    let deployment = json!({"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "d"},
        "spec": {"template": {"spec": {"containers": [{"name": "a", "image": image}]}}}});
    let body = serde_json::to_vec(&review("default", "Deployment", None, deployment)).unwrap();
    let r = response(&pinning.pin(&body).await);
    assert!(patch(&r).is_empty());
    assert_eq!(
        registry.requests().len(),
        0,
        "a template is not even verified"
    );
    let workloads = webhook(
        config.clone(),
        policy(&host, &key.public_pem),
        Pinning::Workloads,
    );
    let r = response(&workloads.pin(&body).await);
    assert_eq!(
        patch(&r),
        [
            json!({"op": "replace", "path": "/spec/template/spec/containers/0/image", "value": format!("{image}@{signed}")})
        ]
    );
    // Off: nothing.
    let off = webhook(config, policy(&host, &key.public_pem), Pinning::Off);
    assert!(patch(&response(&off.pin(&body).await)).is_empty());

    // kubectl debug: the object of the pods/ephemeralcontainers subresource is the Pod.
    let debugged = json!({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "p"},
        "spec": {"containers": [{"name": "app", "image": format!("{image}@{signed}")}],
            "ephemeralContainers": [{"name": "debug", "image": image}]}});
    let body = serde_json::to_vec(&review(
        "default",
        "Pod",
        Some("ephemeralcontainers"),
        debugged,
    ))
    .unwrap();
    let r = response(&pinning.pin(&body).await);
    assert_eq!(
        patch(&r),
        [
            json!({"op": "replace", "path": "/spec/ephemeralContainers/0/image", "value": format!("{image}@{signed}")})
        ]
    );
}

#[tokio::test]
async fn a_registry_that_serves_other_bytes_by_tag_gets_the_signed_digest_pinned() {
    let stub = Stub::start().await;
    // Imitation: the stub lies about a tag, and the real cosign cannot push to it.
    let key = signer();
    let host = stub.host();
    // HEAD app:v1 says the signed manifest's digest ...
    let signed = br#"{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json","config":{"mediaType":"application/vnd.oci.image.config.v1+json","digest":"sha256:44136fa355b3678a1146ad16f7e8649e94fb4fc21fe77e8310c060f61caaff8a","size":2},"layers":[]}"#;
    let digest = stub.manifest("app/lying", "v1", OCI_MANIFEST, signed);
    // ... and GET app:v1 serves other bytes, which is what a node pulling by tag would run.
    stub.route(
        "GET",
        "/v2/app/lying/manifests/v1",
        image_policy_testsupport::stub::Reply::ok(OCI_MANIFEST, b"{\"other\": true}".to_vec()),
    );
    let payload = simple_signing_payload(&format!("{host}/app/lying"), &digest);
    let signature = STANDARD.encode(key.sign(&payload).expect("sign"));
    let payload_digest = sha256_digest(&payload);
    stub.blob("app/lying", &payload_digest, &payload);
    let sig = json!({"schemaVersion": 2, "mediaType": OCI_MANIFEST,
        "config": {"mediaType": "application/vnd.oci.image.config.v1+json", "digest": sha256_digest(b"{}"), "size": 2},
        "layers": [{"mediaType": "application/vnd.dev.cosign.simplesigning.v1+json",
            "digest": payload_digest, "size": payload.len(),
            "annotations": {"dev.cosignproject.cosign/signature": signature}}]});
    stub.manifest(
        "app/lying",
        &signature_tag(&digest),
        OCI_MANIFEST,
        &serde_json::to_vec(&sig).unwrap(),
    );
    let config = RegistryConfig {
        insecure_registries: [host.clone()].into(),
        ..RegistryConfig::default()
    };
    let pinning = webhook(config, policy(&host, &public_key_pem(&key)), Pinning::Pods);
    let image = format!("{host}/app/lying:v1");
    let object = pod(json!({"containers": [{"name": "a", "image": image}]}));
    let r = response(
        &pinning
            .pin(&serde_json::to_vec(&review("default", "Pod", None, object)).unwrap())
            .await,
    );
    assert_eq!(
        patch(&r),
        [
            json!({"op": "replace", "path": "/spec/containers/0/image", "value": format!("{image}@{digest}")})
        ]
    );
}
