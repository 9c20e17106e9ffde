//! The limits of a bundle: what Sigstore's verifier would check one by one is counted first.

use serde_json::Value;

use super::*;

/// The kubewarden bundle, edited, checked against its own identity.
fn kubewarden(edit: impl Fn(&mut Value)) -> Result<String, Rejection> {
    let bytes = read("kubewarden-controller-v1.34.0-keyless/bundle.sigstore.json");
    let mut bundle: Value = serde_json::from_slice(&bytes).unwrap();
    edit(&mut bundle);
    check(
        &serde_json::to_vec(&bundle).unwrap(),
        KUBEWARDEN_DIGEST,
        &[&kubewarden_signer()],
    )
}

/// `list` (a JSON pointer) with its first element repeated `n` times.
fn repeat(bundle: &mut Value, list: &str, n: usize) {
    let list = bundle.pointer_mut(list).unwrap();
    let one = list[0].clone();
    *list = Value::Array(vec![one; n]);
}

fn is_over_the_limit(verdict: &Result<String, Rejection>, what: &str) -> bool {
    matches!(verdict, Err(Rejection::Unreadable { why, .. })
        if why == &format!("a bundle with 9 {what}, more than 8, the limit of a bundle"))
}

#[test]
fn a_bundle_carries_at_most_8_log_entries_and_8_timestamps() {
    for (list, what) in [
        (
            "/verificationMaterial/tlogEntries",
            "transparency log entries",
        ),
        (
            "/verificationMaterial/timestampVerificationData/rfc3161Timestamps",
            "RFC 3161 timestamps",
        ),
    ] {
        let at = kubewarden(|b| repeat(b, list, MAX_BUNDLE_EVIDENCE));
        assert!(at.is_ok(), "{what}: {at:?}");
        let past = kubewarden(|b| repeat(b, list, MAX_BUNDLE_EVIDENCE + 1));
        assert!(is_over_the_limit(&past, what), "{what}: {past:?}");
    }
}

/// A v0.1 or v0.2 bundle's chain: the leaf is what counts, and at most 8 certificates are
/// taken, whatever the rest is.
#[test]
fn a_bundle_chain_holds_at_most_8_certificates() {
    let chain = |n: usize| {
        kubewarden(move |b| {
            let material = b["verificationMaterial"].as_object_mut().unwrap();
            let leaf = material.remove("certificate").unwrap();
            material.insert(
                "x509CertificateChain".into(),
                serde_json::json!({ "certificates": vec![leaf; n] }),
            );
            b["mediaType"] = "application/vnd.dev.sigstore.bundle+json;version=0.2".into();
        })
    };
    let at = chain(MAX_CHAIN);
    assert!(
        !is_over_the_limit(&at, "certificates in its chain"),
        "at the limit: {at:?}"
    );
    let past = chain(MAX_CHAIN + 1);
    assert!(
        is_over_the_limit(&past, "certificates in its chain"),
        "{past:?}"
    );
}

/// cosign's certificate and chain annotations: one certificate at least, 8 at most.
#[test]
fn a_legacy_layer_carries_one_to_8_certificates() {
    let bytes = read("kubewarden-controller-v1.34.0-keyless/bundle.sigstore.json");
    let bundle: Value = serde_json::from_slice(&bytes).unwrap();
    let der = bundle
        .pointer("/verificationMaterial/certificate/rawBytes")
        .and_then(Value::as_str)
        .unwrap();
    let pem = format!("-----BEGIN CERTIFICATE-----\n{der}\n-----END CERTIFICATE-----\n");
    let annotations = |chain: usize| {
        BTreeMap::from([
            (legacy::CERTIFICATE_ANNOTATION.to_owned(), pem.clone()),
            (legacy::CHAIN_ANNOTATION.to_owned(), pem.repeat(chain)),
        ])
    };
    let made = |chain| legacy::bundle(b"{}", "c2ln", &annotations(chain));
    let at = made(MAX_CHAIN - 1);
    assert!(
        !matches!(at, Err(legacy::AnnotationError::Certificates(_))),
        "at the limit: {at:?}"
    );
    let past = made(MAX_CHAIN).expect_err("past the limit");
    assert_eq!(
        past.to_string(),
        "its dev.sigstore.cosign/certificate and dev.sigstore.cosign/chain annotations hold 9 \
         certificates: one at least, and at most 8, the limit of a chain"
    );
}

/// A referrers index of `n` signature entries.
fn index_of(n: usize) -> Vec<u8> {
    let manifests: Vec<Value> = (0..n)
        .map(|i| {
            serde_json::json!({"mediaType": "application/vnd.oci.image.manifest.v1+json",
                "digest": format!("sha256:{i:064x}"), "size": 10,
                "artifactType": "application/vnd.dev.sigstore.bundle.v0.3+json"})
        })
        .collect();
    serde_json::to_vec(&serde_json::json!({"schemaVersion": 2, "manifests": manifests})).unwrap()
}

/// At most 32 referrers are read: all of an index of 32, the first 32 of one of 33.
#[test]
fn at_most_32_referrers_are_read() {
    let at = candidates(&index_of(MAX_REFERRERS)).unwrap();
    assert_eq!(at.len(), MAX_REFERRERS);
    let past = candidates(&index_of(MAX_REFERRERS + 1)).unwrap();
    assert_eq!(past, at, "the 33rd is not read");
}
