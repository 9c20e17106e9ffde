//! cosign's legacy signature layer (v1, v2) as the Sigstore bundle it amounts to.
//!
//! A layer of the `sha256-<hex>.sig` manifest signs its simple-signing payload; keyless, it
//! also carries the Fulcio certificate and its chain (PEM), the Rekor entry of the signature
//! (`dev.sigstore.cosign/bundle`: the signed entry timestamp over the entry's body, integrated
//! time, index and log ID), and, when cosign was given a timestamp authority, an RFC 3161
//! timestamp. That is exactly a v0.1 bundle's evidence: a message signature over the payload,
//! an X.509 chain, a tlog entry with its inclusion promise and the timestamps. Made into one,
//! it is verified by Sigstore's verifier like any bundle, so both layouts are checked by the
//! same code.

use std::collections::BTreeMap;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use serde::Deserialize;
use sigstore_verify::types::Bundle;

use crate::verify::registry::sha256_digest;

/// The annotation holding the signing certificate (PEM).
pub const CERTIFICATE_ANNOTATION: &str = "dev.sigstore.cosign/certificate";
/// The annotation holding the certificate's chain (PEM, intermediates then root).
pub const CHAIN_ANNOTATION: &str = "dev.sigstore.cosign/chain";
/// The annotation holding the Rekor entry (cosign's "bundle", not a Sigstore bundle).
pub const REKOR_ANNOTATION: &str = "dev.sigstore.cosign/bundle";
/// The annotation holding an RFC 3161 timestamp of the signature.
pub const TIMESTAMP_ANNOTATION: &str = "dev.sigstore.cosign/rfc3161timestamp";

/// At most this many certificates are read from a certificate and its chain.
const MAX_CERTIFICATES: usize = 8;

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

/// The bundle of the layer whose `payload` carries `signature_b64` and `annotations`; `None`
/// when it carries neither a certificate, a log entry nor a timestamp (a key's signature
/// alone), or why the annotations cannot be read.
pub fn bundle(
    payload: &[u8],
    signature_b64: &str,
    annotations: &BTreeMap<String, String>,
) -> Result<Option<Bundle>, String> {
    let certificate = annotations.get(CERTIFICATE_ANNOTATION);
    let rekor = annotations.get(REKOR_ANNOTATION);
    let timestamp = annotations.get(TIMESTAMP_ANNOTATION);
    if certificate.is_none() && rekor.is_none() && timestamp.is_none() {
        return Ok(None);
    }
    let mut verification = serde_json::Map::new();
    match certificate {
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
    let entries = match rekor {
        Some(rekor) => vec![tlog_entry(rekor)?],
        None => Vec::new(),
    };
    verification.insert("tlogEntries".into(), entries.into());
    if let Some(timestamp) = timestamp {
        let timestamp: Timestamp = serde_json::from_str(timestamp)
            .map_err(|e| format!("its {TIMESTAMP_ANNOTATION} annotation is not one ({e})"))?;
        verification.insert(
            "timestampVerificationData".into(),
            serde_json::json!({ "rfc3161Timestamps": [{ "signedTimestamp": timestamp.signed }] }),
        );
    }
    let digest = sha256_digest(payload);
    let hex = digest.trim_start_matches("sha256:");
    let json = serde_json::json!({
        "mediaType": "application/vnd.dev.sigstore.bundle+json;version=0.1",
        "verificationMaterial": verification,
        "messageSignature": {
            "messageDigest": { "algorithm": "SHA2_256", "digest": STANDARD.encode(from_hex(hex)?) },
            "signature": signature_b64,
        },
    });
    Bundle::from_json(&json.to_string())
        .map(Some)
        .map_err(|e| format!("its annotations do not make a Sigstore bundle ({e})"))
}

/// The DER certificates of `leaf` and `chain` (PEM), leaf first, as bundle JSON.
fn certificates(leaf: &str, chain: &str) -> Result<Vec<serde_json::Value>, String> {
    let mut out = Vec::new();
    for (name, text) in [(CERTIFICATE_ANNOTATION, leaf), (CHAIN_ANNOTATION, chain)] {
        let blocks =
            pem::parse_many(text).map_err(|e| format!("its {name} annotation is not PEM ({e})"))?;
        for block in blocks.iter().filter(|b| b.tag() == "CERTIFICATE") {
            out.push(serde_json::json!({ "rawBytes": STANDARD.encode(block.contents()) }));
        }
    }
    if out.is_empty() || out.len() > MAX_CERTIFICATES {
        return Err(format!(
            "its {CERTIFICATE_ANNOTATION} and {CHAIN_ANNOTATION} annotations hold {} certificates",
            out.len()
        ));
    }
    Ok(out)
}

/// The tlog entry of cosign's Rekor annotation, as bundle JSON.
fn tlog_entry(annotation: &str) -> Result<serde_json::Value, String> {
    let unreadable = |e: String| format!("its {REKOR_ANNOTATION} annotation is not one ({e})");
    let entry: RekorEntry =
        serde_json::from_str(annotation).map_err(|e| unreadable(e.to_string()))?;
    let body = STANDARD
        .decode(&entry.payload.body)
        .map_err(|e| unreadable(e.to_string()))?;
    let kind: Body = serde_json::from_slice(&body).map_err(|e| unreadable(e.to_string()))?;
    Ok(serde_json::json!({
        "logIndex": entry.payload.log_index.to_string(),
        "logId": { "keyId": STANDARD.encode(from_hex(&entry.payload.log_id).map_err(unreadable)?) },
        "kindVersion": { "kind": kind.kind, "version": kind.api_version },
        "integratedTime": entry.payload.integrated_time.to_string(),
        "inclusionPromise": { "signedEntryTimestamp": entry.signed_entry_timestamp },
        "canonicalizedBody": entry.payload.body,
    }))
}

/// The bytes of lower- or upper-case hex.
fn from_hex(hex: &str) -> Result<Vec<u8>, String> {
    if !hex.len().is_multiple_of(2) || !hex.bytes().all(|b| b.is_ascii_hexdigit()) {
        return Err("not hex".to_owned());
    }
    (0..hex.len())
        .step_by(2)
        .map(|i| {
            hex.get(i..i + 2)
                .and_then(|pair| u8::from_str_radix(pair, 16).ok())
                .ok_or_else(|| "not hex".to_owned())
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
        assert_eq!(from_hex("00ffA0"), Ok(vec![0, 255, 160]));
        assert!(from_hex("0").is_err() && from_hex("zz").is_err() && from_hex("é0").is_err());
    }
}
