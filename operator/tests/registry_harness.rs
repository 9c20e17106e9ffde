//! Proves the registry harness in `testsupport/`: a real registry over TLS, images, indexes and
//! cosign signatures pushed to it, every request visible in its access log, and the
//! imitation of cosign laying out a signature byte for byte as the real cosign does.

use std::net::TcpStream;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use reqwest::StatusCode;
use reqwest::header::{ACCEPT, WWW_AUTHENTICATE};
use sigstore::crypto::{CosignVerificationKey, Signature, SigningScheme};

use image_policy_testsupport::cosign::{
    self, OCI_CONFIG, OCI_INDEX, OCI_MANIFEST, Pusher, SIGNATURE_ANNOTATION, SIMPLE_SIGNING,
};
use image_policy_testsupport::producers::{Cosign, Signing};
use image_policy_testsupport::registry::{LoggedRequest, Registry, RegistryOptions};

fn logged(method: &str, path: &str, status: u16) -> LoggedRequest {
    LoggedRequest {
        method: method.to_owned(),
        path: path.to_owned(),
        query: None,
        status,
    }
}

#[tokio::test]
async fn serves_pushed_images_and_signatures_over_tls() {
    let registry = Registry::start(RegistryOptions::default());
    let pusher = Pusher::new(&registry);
    let image = pusher.push_image("team/app", "v1").await;
    let (index, platforms) = pusher.push_index("team/multi", "v1").await;
    let signer = SigningScheme::ECDSA_P256_SHA256_ASN1
        .create_signer()
        .unwrap();
    let payload = pusher.sign("team/app", &image, &signer).await;
    registry.clear_requests();
    let http = registry.https_client();

    let head = http
        .head(registry.url("/v2/team/app/manifests/v1"))
        .header(ACCEPT, OCI_MANIFEST)
        .send()
        .await
        .unwrap();
    assert_eq!(head.status(), StatusCode::OK);
    assert_eq!(head.headers()["docker-content-digest"], image.as_str());

    let head = http
        .head(registry.url("/v2/team/multi/manifests/v1"))
        .header(ACCEPT, OCI_INDEX)
        .send()
        .await
        .unwrap();
    assert_eq!(head.headers()["docker-content-digest"], index.as_str());
    let index_body = http
        .get(registry.url(&format!("/v2/team/multi/manifests/{index}")))
        .header(ACCEPT, OCI_INDEX)
        .send()
        .await
        .unwrap()
        .bytes()
        .await
        .unwrap();
    let index_json: serde_json::Value = serde_json::from_slice(&index_body).unwrap();
    let listed: Vec<&str> = index_json["manifests"]
        .as_array()
        .unwrap()
        .iter()
        .map(|entry| entry["digest"].as_str().unwrap())
        .collect();
    assert_eq!(listed, platforms);
    assert_ne!(platforms[0], platforms[1]);

    let sig_path = format!("/v2/team/app/manifests/{}", cosign::signature_tag(&image));
    let sig_manifest: cosign::Manifest = http
        .get(registry.url(&sig_path))
        .header(ACCEPT, OCI_MANIFEST)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(sig_manifest.config.media_type, OCI_CONFIG);
    let [layer] = sig_manifest.layers.as_slice() else {
        panic!("one signature layer expected: {sig_manifest:?}");
    };
    assert_eq!(layer.media_type, SIMPLE_SIGNING);
    let blob_path = format!("/v2/team/app/blobs/{}", layer.digest);
    let blob = http
        .get(registry.url(&blob_path))
        .send()
        .await
        .unwrap()
        .bytes()
        .await
        .unwrap();
    assert_eq!(blob, payload);
    let expected_payload =
        cosign::simple_signing_payload(&format!("{}/team/app", registry.host()), &image);
    assert_eq!(payload, expected_payload);
    let annotation = &layer.annotations.as_ref().unwrap()[SIGNATURE_ANNOTATION];
    let key = CosignVerificationKey::from_sigstore_signer(&signer).unwrap();
    key.verify_signature(Signature::Base64Encoded(annotation.as_bytes()), &blob)
        .unwrap();

    assert_eq!(
        registry.requests(),
        [
            logged("HEAD", "/v2/team/app/manifests/v1", 200),
            logged("HEAD", "/v2/team/multi/manifests/v1", 200),
            logged("GET", &format!("/v2/team/multi/manifests/{index}"), 200),
            logged("GET", &sig_path, 200),
            logged("GET", &blob_path, 200),
        ]
    );
}

#[tokio::test]
async fn access_log_shows_misses_and_clears() {
    let registry = Registry::start(RegistryOptions::default());
    assert_eq!(registry.requests(), [], "the readiness probe is not listed");
    let http = registry.https_client();
    let missing = registry.url("/v2/team/app/manifests/missing?probe=1");
    assert_eq!(
        http.head(&missing).send().await.unwrap().status(),
        StatusCode::NOT_FOUND
    );
    let expected = LoggedRequest {
        query: Some("probe=1".to_owned()),
        ..logged("HEAD", "/v2/team/app/manifests/missing", 404)
    };
    assert_eq!(registry.requests(), [expected]);

    registry.clear_requests();
    assert_eq!(registry.requests(), []);
    http.get(registry.url("/v2/")).send().await.unwrap();
    assert_eq!(registry.requests(), [logged("GET", "/v2/", 200)]);
}

#[tokio::test]
async fn basic_auth_rejects_anonymous_and_admits_the_user() {
    let credentials = ("alice".to_owned(), "s3cret pass".to_owned());
    let registry = Registry::start(RegistryOptions {
        basic_auth: Some(credentials.clone()),
        ..RegistryOptions::default()
    });
    let image = Pusher::new(&registry).push_image("private/app", "v1").await;
    registry.clear_requests();
    let http = registry.https_client();
    let manifest = registry.url("/v2/private/app/manifests/v1");

    let anonymous = http
        .get(&manifest)
        .header(ACCEPT, OCI_MANIFEST)
        .send()
        .await
        .unwrap();
    assert_eq!(anonymous.status(), StatusCode::UNAUTHORIZED);
    let challenge = anonymous.headers()[WWW_AUTHENTICATE].to_str().unwrap();
    assert!(challenge.starts_with("Basic realm="), "{challenge}");
    let wrong = http
        .get(&manifest)
        .basic_auth("alice", Some("wrong"))
        .send()
        .await
        .unwrap();
    assert_eq!(wrong.status(), StatusCode::UNAUTHORIZED);
    let user = http
        .get(&manifest)
        .header(ACCEPT, OCI_MANIFEST)
        .basic_auth(&credentials.0, Some(&credentials.1))
        .send()
        .await
        .unwrap();
    assert_eq!(user.status(), StatusCode::OK);
    assert_eq!(user.headers()["docker-content-digest"], image.as_str());

    let path = "/v2/private/app/manifests/v1";
    assert_eq!(
        registry.requests(),
        [
            logged("GET", path, 401),
            logged("GET", path, 401),
            logged("GET", path, 200)
        ]
    );
}

#[tokio::test]
async fn signing_twice_extends_the_sig_manifest_and_retag_moves_a_tag() {
    let registry = Registry::start(RegistryOptions::default());
    let pusher = Pusher::new(&registry);
    let first = pusher.push_image("app", "latest").await;
    let second = pusher.push_image("app", "next").await;
    assert_ne!(first, second);

    let alice = SigningScheme::ECDSA_P256_SHA256_ASN1
        .create_signer()
        .unwrap();
    let bob = SigningScheme::ECDSA_P256_SHA256_ASN1
        .create_signer()
        .unwrap();
    pusher.sign("app", &first, &alice).await;
    pusher.sign("app", &first, &bob).await;
    pusher
        .push_signature_layer("app", &first, b"not a payload", "bm90IGEgc2lnbmF0dXJl")
        .await;
    let manifest = pusher.signature_manifest("app", &first).await.unwrap();
    assert_eq!(manifest.layers.len(), 3);
    assert_eq!(
        manifest.layers[2].digest,
        cosign::sha256_digest(b"not a payload")
    );
    assert!(pusher.signature_manifest("app", &second).await.is_none());

    pusher.retag("app", "latest", &second).await;
    let head = registry
        .https_client()
        .head(registry.url("/v2/app/manifests/latest"))
        .header(ACCEPT, OCI_MANIFEST)
        .send()
        .await
        .unwrap();
    assert_eq!(head.headers()["docker-content-digest"], second.as_str());
}

#[tokio::test]
async fn the_imitation_lays_out_a_signature_as_the_real_cosign_does() {
    // What makes the imitation's faults faithful: for one digest, the real cosign's `.sig`
    // manifest, its config and its payload, and the imitation's, are the same bytes but for
    // the signature itself.
    let registry = Registry::start(RegistryOptions::default());
    let pusher = Pusher::new(&registry);
    let cosign = Cosign::new(&registry);
    let digest = pusher.push_image("same/app", "v1").await;
    let http = registry.https_client();
    let tag = format!("/v2/same/app/manifests/{}", cosign::signature_tag(&digest));
    let get = |path: String, accept: &'static str| {
        let request = http.get(registry.url(&path)).header(ACCEPT, accept);
        async move {
            let response = request.send().await.unwrap().error_for_status().unwrap();
            response.bytes().await.unwrap().to_vec()
        }
    };
    // The `.sig` manifest, its config and its one payload, then the manifest is deleted.
    let read = || async {
        let manifest = get(tag.clone(), OCI_MANIFEST).await;
        let parsed: serde_json::Value = serde_json::from_slice(&manifest).unwrap();
        let blob = |descriptor: &serde_json::Value| {
            let digest = descriptor["digest"].as_str().unwrap().to_owned();
            get(format!("/v2/same/app/blobs/{digest}"), "*/*")
        };
        let config = blob(&parsed["config"]).await;
        let payload = blob(&parsed["layers"][0]).await;
        let deleted = http
            .delete(registry.url(&format!(
                "/v2/same/app/manifests/{}",
                cosign::sha256_digest(&manifest)
            )))
            .send()
            .await
            .unwrap();
        assert_eq!(deleted.status(), StatusCode::ACCEPTED);
        (parsed, config, payload)
    };

    let key = cosign.generate_key();
    cosign.sign(
        &format!("{}/same/app@{digest}", registry.host()),
        &key,
        Signing::LEGACY_TAG,
    );
    let (mut real, real_config, real_payload) = read().await;
    let signer = SigningScheme::ECDSA_P256_SHA256_ASN1
        .create_signer()
        .unwrap();
    pusher.sign("same/app", &digest, &signer).await;
    let (mut imitated, imitated_config, imitated_payload) = read().await;

    assert_eq!(
        String::from_utf8_lossy(&imitated_payload),
        String::from_utf8_lossy(&real_payload)
    );
    assert_eq!(
        String::from_utf8_lossy(&imitated_config),
        String::from_utf8_lossy(&real_config)
    );
    for manifest in [&mut real, &mut imitated] {
        let annotations = manifest["layers"][0]["annotations"]
            .as_object_mut()
            .unwrap();
        assert!(
            annotations.remove(SIGNATURE_ANNOTATION).is_some(),
            "{annotations:?}"
        );
    }
    assert_eq!(imitated, real);
}

#[test]
fn simple_signing_payload_is_cosigns_bytes() {
    let cases: Vec<_> = cosign::real_signatures()
        .into_iter()
        .filter(|case| case.payload.ends_with(br#""optional":null}"#))
        .collect();
    assert!(
        cases.len() >= 2,
        "the real payloads with optional=null are the oracle"
    );
    for case in cases {
        let payload = cosign::simple_signing_payload(&case.docker_reference, &case.image_digest);
        assert_eq!(
            String::from_utf8(payload).unwrap(),
            String::from_utf8(case.payload).unwrap()
        );
    }
}

#[tokio::test]
async fn real_cosign_signatures_push_as_sig_manifests() {
    let registry = Registry::start(RegistryOptions::default());
    let pusher = Pusher::new(&registry);
    let cases = cosign::real_signatures();
    assert_eq!(cases.len(), 3);
    for case in &cases {
        let repository = format!("real/{}", case.id);
        pusher
            .push_signature_layer(
                &repository,
                &case.image_digest,
                &case.payload,
                &case.signature_b64,
            )
            .await;

        let manifest = pusher
            .signature_manifest(&repository, &case.image_digest)
            .await
            .unwrap();
        let [layer] = manifest.layers.as_slice() else {
            panic!("{manifest:?}")
        };
        assert_eq!(layer.digest, case.payload_sha256);
        assert_eq!(layer.size, case.payload.len() as u64);
        let annotation = &layer.annotations.as_ref().unwrap()[SIGNATURE_ANNOTATION];
        assert_eq!(annotation, &case.signature_b64);
        let key = CosignVerificationKey::try_from_pem(&case.key_pem).unwrap();
        let signature = STANDARD.decode(annotation).unwrap();
        key.verify_signature(Signature::Raw(&signature), &case.payload)
            .unwrap();
    }

    // The .sig manifest cosign itself pushed for the Connaisseur case: ours must match it
    // (config blob digest and size included), or the layout is not cosign's.
    let original = cosign::real_signatures_dir().join(
        "connaisseur-manifests/sha256-071bf7a986f1ca9cb2a1f0bc8392822a7777f90d58f2d2c6f271913e08de7c81.sig.json",
    );
    let original: cosign::Manifest =
        serde_json::from_slice(&std::fs::read(original).unwrap()).unwrap();
    let connaisseur = cases
        .iter()
        .find(|case| case.id.starts_with("connaisseur"))
        .unwrap();
    let ours = pusher
        .signature_manifest(
            &format!("real/{}", connaisseur.id),
            &connaisseur.image_digest,
        )
        .await
        .unwrap();
    assert_eq!(ours, original);
}

#[test]
fn drop_stops_the_registry_and_removes_its_files() {
    let registry = Registry::start(RegistryOptions::default());
    let ca = registry.ca_path();
    let host = registry.host();
    assert!(ca.exists());
    drop(registry);
    assert!(!ca.exists());
    assert!(
        TcpStream::connect(&host).is_err(),
        "{host} still accepts connections"
    );
}
