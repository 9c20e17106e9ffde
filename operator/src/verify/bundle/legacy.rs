//! cosign's legacy signature layer (v1, v2) as the Sigstore bundle it amounts to.
//!
//! A layer of the `sha256-<hex>.sig` manifest signs its simple-signing payload; keyless, it
//! also carries the Fulcio certificate and its chain (PEM), the Rekor entry of the signature
//! (`dev.sigstore.cosign/bundle`: the signed entry timestamp over the entry's body, integrated
//! time, index and log ID), and, when cosign was given a timestamp authority, an RFC 3161
//! timestamp. That is exactly a v0.1 bundle's evidence: a message signature over the payload,
//! an X.509 chain, a tlog entry with its inclusion promise and the timestamps. Made into one,
//! it is verified by Sigstore's verifier like any bundle, so both layouts are checked by the
//! same code. A layer without a Rekor entry (`cosign sign --tlog-upload=false` with a timestamp
//! authority) is a v0.2 bundle instead: v0.1 requires an inclusion promise, and such a
//! signature counts where its signer's log is optional (docs/contract.md §3).

use std::collections::BTreeMap;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use serde::Deserialize;
use sigstore_verify::types::Bundle;

use crate::policy::trust::MAX_CHAIN;

/// The annotation holding the signing certificate (PEM).
pub const CERTIFICATE_ANNOTATION: &str = "dev.sigstore.cosign/certificate";
/// The annotation holding the certificate's chain (PEM, intermediates then root).
pub const CHAIN_ANNOTATION: &str = "dev.sigstore.cosign/chain";
/// The annotation holding the Rekor entry (cosign's "bundle", not a Sigstore bundle).
pub const REKOR_ANNOTATION: &str = "dev.sigstore.cosign/bundle";
/// The annotation holding an RFC 3161 timestamp of the signature.
pub const TIMESTAMP_ANNOTATION: &str = "dev.sigstore.cosign/rfc3161timestamp";

/// cosign's Rekor annotation.
#[derive(Deserialize)]
struct RekorEntry {
    #[serde(rename = "SignedEntryTimestamp")]
    signed_entry_timestamp: String,
    #[serde(rename = "Payload")]
    payload: RekorPayload,
}

#[derive(Deserialize)]
struct RekorPayload {
    /// The entry's canonicalized body, base64.
    body: String,
    #[serde(rename = "integratedTime")]
    integrated_time: i64,
    #[serde(rename = "logIndex")]
    log_index: i64,
    /// The log's ID, hex.
    #[serde(rename = "logID")]
    log_id: String,
}

/// The kind of a Rekor entry body.
#[derive(Deserialize)]
struct Body {
    kind: String,
    #[serde(rename = "apiVersion")]
    api_version: String,
}

/// cosign's timestamp annotation.
#[derive(Deserialize)]
struct Timestamp {
    #[serde(rename = "SignedRFC3161Timestamp")]
    signed: String,
}

/// Why a layer's annotations do not make a bundle. The words end up in a denial's second
/// sentence ("its log annotations cannot be read: ..."), so each names the annotation.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AnnotationError {
    /// The certificate or its chain is not PEM.
    #[error("its {annotation} annotation is not PEM ({detail})")]
    NotPem {
        /// [`CERTIFICATE_ANNOTATION`] or [`CHAIN_ANNOTATION`].
        annotation: &'static str,
        /// The PEM parser's complaint.
        detail: String,
    },
    /// No certificate, or more than [`MAX_CHAIN`] (with the chain).
    #[error(
        "its {CERTIFICATE_ANNOTATION} and {CHAIN_ANNOTATION} annotations hold {0} \
         certificates: one at least, and at most {MAX_CHAIN}, the limit of a chain"
    )]
    Certificates(usize),
    /// The Rekor entry is not JSON of cosign's shape, its body not base64 JSON, or its log ID
    /// not hex.
    #[error("its {REKOR_ANNOTATION} annotation is not one ({0})")]
    RekorEntry(String),
    /// The timestamp is not JSON of cosign's shape.
    #[error("its {TIMESTAMP_ANNOTATION} annotation is not one ({0})")]
    Timestamp(String),
    /// Sigstore's parser refuses the bundle the annotations make.
    #[error("its annotations do not make a Sigstore bundle ({0})")]
    NotABundle(String),
}

/// The bundle of the layer whose `payload` carries `signature_b64` and `annotations`; `None`
/// when it carries neither a certificate, a log entry nor a timestamp (a key's signature
/// alone), or why the annotations cannot be read.
pub fn bundle(
    payload: &[u8],
    signature_b64: &str,
    annotations: &BTreeMap<String, String>,
) -> Result<Option<Bundle>, AnnotationError> {
    let certificate = annotations.get(CERTIFICATE_ANNOTATION);
    let rekor = annotations.get(REKOR_ANNOTATION);
    let timestamp = annotations.get(TIMESTAMP_ANNOTATION);
    if certificate.is_none() && rekor.is_none() && timestamp.is_none() {
        return Ok(None);
    }
    let verification = material(annotations)?;
    let digest = aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, payload);
    let json = serde_json::json!({
        "mediaType": media_type(annotations),
        "verificationMaterial": verification,
        "messageSignature": {
            "messageDigest": { "algorithm": "SHA2_256", "digest": STANDARD.encode(digest) },
            "signature": signature_b64,
        },
    });
    Bundle::from_json(&json.to_string())
        .map(Some)
        .map_err(|e| AnnotationError::NotABundle(e.to_string()))
}

/// The DSSE envelope of a layer of cosign's legacy attestation tag (`sha256-<hex>.att`), with
/// what its annotations carry (a certificate, a Rekor entry, a timestamp; none for a key's
/// signature alone), as the v0.1 bundle it amounts to.
pub fn dsse_bundle(
    envelope: &[u8],
    annotations: &BTreeMap<String, String>,
) -> Result<Bundle, AnnotationError> {
    let envelope: serde_json::Value = serde_json::from_slice(envelope)
        .map_err(|e| AnnotationError::NotABundle(format!("its DSSE envelope is not JSON ({e})")))?;
    let json = serde_json::json!({
        "mediaType": media_type(annotations),
        "verificationMaterial": material(annotations)?,
        "dsseEnvelope": envelope,
    });
    Bundle::from_json(&json.to_string()).map_err(|e| AnnotationError::NotABundle(e.to_string()))
}

/// The bundle version a layer's evidence makes: v0.1 with a Rekor entry (its inclusion
/// promise), v0.2 without one (a timestamp alone, which v0.1 does not allow).
fn media_type(annotations: &BTreeMap<String, String>) -> &'static str {
    if annotations.contains_key(REKOR_ANNOTATION) {
        "application/vnd.dev.sigstore.bundle+json;version=0.1"
    } else {
        "application/vnd.dev.sigstore.bundle+json;version=0.2"
    }
}

/// A bundle's verification material from a layer's annotations: its certificate and chain
/// (else a public key, unnamed), its Rekor entry and its timestamp.
fn material(
    annotations: &BTreeMap<String, String>,
) -> Result<serde_json::Map<String, serde_json::Value>, AnnotationError> {
    let mut verification = serde_json::Map::new();
    match annotations.get(CERTIFICATE_ANNOTATION) {
        Some(leaf) => {
            let chain = annotations.get(CHAIN_ANNOTATION).map_or("", String::as_str);
            let certificates = certificates(leaf, chain)?;
            verification.insert(
                "x509CertificateChain".into(),
                serde_json::json!({ "certificates": certificates }),
            );
        }
        None => {
            verification.insert("publicKey".into(), serde_json::json!({ "hint": "" }));
        }
    }
    let entries = match annotations.get(REKOR_ANNOTATION) {
        Some(rekor) => vec![tlog_entry(rekor)?],
        None => Vec::new(),
    };
    verification.insert("tlogEntries".into(), entries.into());
    if let Some(timestamp) = annotations.get(TIMESTAMP_ANNOTATION) {
        let timestamp: Timestamp = serde_json::from_str(timestamp)
            .map_err(|e| AnnotationError::Timestamp(e.to_string()))?;
        verification.insert(
            "timestampVerificationData".into(),
            serde_json::json!({ "rfc3161Timestamps": [{ "signedTimestamp": timestamp.signed }] }),
        );
    }
    Ok(verification)
}

/// The DER certificates of `leaf` and `chain` (PEM), leaf first, as bundle JSON.
fn certificates(leaf: &str, chain: &str) -> Result<Vec<serde_json::Value>, AnnotationError> {
    let mut out = Vec::new();
    for (annotation, text) in [(CERTIFICATE_ANNOTATION, leaf), (CHAIN_ANNOTATION, chain)] {
        let blocks = pem::parse_many(text).map_err(|e| AnnotationError::NotPem {
            annotation,
            detail: e.to_string(),
        })?;
        for block in blocks.iter().filter(|b| b.tag() == "CERTIFICATE") {
            out.push(serde_json::json!({ "rawBytes": STANDARD.encode(block.contents()) }));
        }
    }
    if out.is_empty() || out.len() > MAX_CHAIN {
        return Err(AnnotationError::Certificates(out.len()));
    }
    Ok(out)
}

/// The tlog entry of cosign's Rekor annotation, as bundle JSON.
fn tlog_entry(annotation: &str) -> Result<serde_json::Value, AnnotationError> {
    let unreadable = |e: &dyn std::fmt::Display| AnnotationError::RekorEntry(e.to_string());
    let entry: RekorEntry = serde_json::from_str(annotation).map_err(|e| unreadable(&e))?;
    let body = STANDARD
        .decode(&entry.payload.body)
        .map_err(|e| unreadable(&e))?;
    let kind: Body = serde_json::from_slice(&body).map_err(|e| unreadable(&e))?;
    let log_id = from_hex(&entry.payload.log_id).ok_or_else(|| unreadable(&"not hex"))?;
    Ok(serde_json::json!({
        "logIndex": entry.payload.log_index.to_string(),
        "logId": { "keyId": STANDARD.encode(log_id) },
        "kindVersion": { "kind": kind.kind, "version": kind.api_version },
        "integratedTime": entry.payload.integrated_time.to_string(),
        "inclusionPromise": { "signedEntryTimestamp": entry.signed_entry_timestamp },
        "canonicalizedBody": entry.payload.body,
    }))
}

/// The bytes of lower- or upper-case hex; `None` when it is not hex.
fn from_hex(hex: &str) -> Option<Vec<u8>> {
    if !hex.len().is_multiple_of(2) || !hex.bytes().all(|b| b.is_ascii_hexdigit()) {
        return None;
    }
    (0..hex.len())
        .step_by(2)
        .map(|i| {
            hex.get(i..i + 2)
                .and_then(|pair| u8::from_str_radix(pair, 16).ok())
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_key_signature_alone_is_no_bundle() {
        assert!(matches!(bundle(b"{}", "c2ln", &BTreeMap::new()), Ok(None)));
    }

    #[test]
    fn unreadable_annotations_say_which() {
        let with = |name: &str, value: &str| {
            let annotations = BTreeMap::from([(name.to_owned(), value.to_owned())]);
            bundle(b"{}", "c2ln", &annotations)
                .err()
                .map(|e| e.to_string())
                .unwrap_or_default()
        };
        assert!(with(CERTIFICATE_ANNOTATION, "nope").contains(CERTIFICATE_ANNOTATION));
        assert!(with(REKOR_ANNOTATION, "{}").contains(REKOR_ANNOTATION));
        assert!(with(TIMESTAMP_ANNOTATION, "[]").contains(TIMESTAMP_ANNOTATION));
        let rekor = r#"{"SignedEntryTimestamp":"c2V0","Payload":{"body":"e30=","integratedTime":1,"logIndex":1,"logID":"zz"}}"#;
        assert!(with(REKOR_ANNOTATION, rekor).contains(REKOR_ANNOTATION));
    }

    #[test]
    fn hex() {
        assert_eq!(from_hex("00ffA0"), Some(vec![0, 255, 160]));
        assert!(from_hex("0").is_none() && from_hex("zz").is_none() && from_hex("é0").is_none());
    }
}
