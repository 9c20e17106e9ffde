//! Sigstore bundles end to end through verification, against fixed keys and trusted roots:
//! the real cosign v3 keyless bundle of kubewarden-controller (Sigstore's public-good root,
//! its identity), and bundles made by npm's `@sigstore/sign` for one P-256 key, with and
//! without a log entry in `@sigstore/mock`'s Rekor (its trusted root).
//!
//! Input: a byte that picks the case, a byte that picks how the rest is read: as the bundle
//! itself (libFuzzer's byte mutations of a seed), or as a program of structure-aware edits of
//! the case's bundle ([`crate::edits`]: JSON nodes, the bytes inside base64, the DSSE payload
//! as JSON, certificates as DER).
//!
//! Property: nothing but the original verifies. A bundle that verifies must say what the
//! case's bundle says in everything that the verification is meant to bind: the signed
//! content (DSSE payload, type and signatures, or message digest and signature) and, where
//! the case needs them, its log entries (as a set: index, log, time, promise, proof, body; a
//! field left out has its protobuf default) and its certificate. Fields it never reads may
//! differ (the log entry of a key that needs none, `kindVersion`, a `keyid` hint, the name on
//! a checkpoint's signature line, the order or spelling of JSON and base64).

use std::sync::{Arc, OnceLock};

use image_policy::policy::{Identity, Matcher, NamedKey, PublicKey, Transparency, TrustRoot};
use image_policy::verify::RegistryConfig;
use image_policy::verify::bundle::{Predicate, check_with};
use image_policy::verify::verdict::Rejection;
use serde_json::{Map, Value};

use crate::edits::{apply, lenient_base64};

macro_rules! data {
    ($path:literal) => {
        include_str!(concat!("../../operator/tests/data/bundles/", $path))
    };
}

/// What a case's verification binds beyond the signed content.
#[derive(Clone, Copy)]
struct Binds {
    log: bool,
    certificate: bool,
}

/// One bundle, and what verifies it.
struct Case {
    bundle: &'static str,
    digest: String,
    keys: Vec<NamedKey>,
    predicate: Predicate,
    binds: Binds,
    /// What the bundle says, to compare with.
    says: Value,
}

/// The cases, built once.
fn cases() -> &'static [Case] {
    static CASES: OnceLock<Vec<Case>> = OnceLock::new();
    CASES.get_or_init(|| {
        let made = data!("made-with-sigstore-js/digest").trim().to_owned();
        let signer = || {
            let key = PublicKey::from_pem(data!("made-with-sigstore-js/signer.pub.pem"))
                .unwrap_or_else(|e| panic!("signer.pub.pem: {e}"));
            NamedKey::new("signer", key)
        };
        let mock_root = Arc::new(TrustRoot::parse(
            "mock",
            data!("made-with-sigstore-js/trusted_root.json"),
        ));
        let logged = NamedKey {
            transparency: Transparency::Required(mock_root),
            ..signer()
        };
        let kubewarden = NamedKey::keyless(
            "kubewarden",
            Identity::new(
                Matcher::exact(
                    "https://github.com/kubewarden/kubewarden-controller/.github/workflows/release.yml@refs/tags/v1.34.0",
                ),
                Matcher::exact("https://token.actions.githubusercontent.com"),
                TrustRoot::public_good(),
            ),
        );
        let keyed = Binds {
            log: false,
            certificate: false,
        };
        let cases = [
            (data!("made-with-sigstore-js/dsse-key.sigstore.json"), made.clone(), signer(), Predicate::Signature, keyed),
            (
                data!("made-with-sigstore-js/dsse-key-rekor.sigstore.json"),
                made.clone(),
                logged,
                Predicate::Signature,
                Binds { log: true, certificate: false },
            ),
            (
                data!("kubewarden-controller-v1.34.0-keyless/bundle.sigstore.json"),
                "sha256:c811d58de79c92f03214e63aa339484e488d694ae8a6283b5f3f17a9faf50172".to_owned(),
                kubewarden,
                Predicate::Signature,
                Binds { log: true, certificate: true },
            ),
            (data!("made-with-sigstore-js/attestation-key.sigstore.json"), made, signer(), Predicate::Any, keyed),
        ];
        cases
            .into_iter()
            .map(|(bundle, digest, key, predicate, binds)| {
                let value: Value = serde_json::from_str(bundle).unwrap_or_else(|e| panic!("seed: {e}"));
                let says = says(&value, binds).unwrap_or_else(|| panic!("seed: unreadable"));
                let case = Case { bundle, digest, keys: vec![key], predicate, binds, says };
                let verdict = case.check(bundle.as_bytes());
                assert!(verdict.is_ok(), "seed: {verdict:?}");
                case
            })
            .collect()
    })
}

impl Case {
    fn check(&self, bytes: &[u8]) -> Result<String, Rejection> {
        let keys: Vec<&NamedKey> = self.keys.iter().collect();
        check_with(bytes, &self.digest, &keys, &self.predicate)
    }
}

/// The target.
pub fn run(data: &[u8]) {
    let (which, rest) = crate::mode(data);
    let (how, rest) = crate::mode(rest);
    let cases = cases();
    let Some(case) = cases.get(usize::from(which) % cases.len()) else {
        return;
    };
    let bytes = if how % 2 == 0 {
        rest.to_vec()
    } else {
        let mut document: Value = serde_json::from_str(case.bundle).unwrap_or(Value::Null);
        apply(&mut document, rest);
        if how % 4 == 1 {
            serde_json::to_vec(&document)
        } else {
            serde_json::to_vec_pretty(&document)
        }
        .unwrap_or_default()
    };
    // What the registry refuses to read is never verified (see edits::MAX_DOCUMENT).
    if bytes.len() > RegistryConfig::default().max_payload_bytes {
        return;
    }
    if case.check(&bytes).is_ok() {
        let value: Option<Value> = serde_json::from_slice(&bytes).ok();
        let mut said = value.as_ref().and_then(|v| says(v, case.binds));
        let mut expected = case.says.clone();
        if said.as_ref().is_some_and(has_entry_without_promise) {
            // Without its signed entry timestamp, an entry is proven by its inclusion proof
            // alone, which binds neither its time nor its index (the time of signing then
            // comes from a timestamp, or nothing verifies: see the tests).
            said = said.as_ref().map(without_promise);
            expected = without_promise(&expected);
        }
        assert!(
            said.as_ref() == Some(&expected),
            "another bundle verified:\n{}\nit says {said:#?}",
            String::from_utf8_lossy(&bytes)
        );
    }
}

/// Whether `bytes` is a bundle that says what the bundles made for the signer's key say, in
/// what a key with no log requirement binds: their signed content.
pub(crate) fn is_made_signature(bytes: &[u8]) -> bool {
    let content = Binds {
        log: false,
        certificate: false,
    };
    let Some(said) = serde_json::from_slice::<Value>(bytes)
        .ok()
        .and_then(|v| says(&v, content))
    else {
        return false;
    };
    cases()
        .iter()
        .take(2)
        .filter_map(|case| says(&serde_json::from_str(case.bundle).ok()?, content))
        .any(|made| made == said)
}

/// What a bundle says that its verification binds, in a form where equal means the same:
/// base64 as the bytes it holds (hex), numbers as numbers.
fn says(bundle: &Value, binds: Binds) -> Option<Value> {
    let mut out = Map::new();
    if let Some(dsse) = bundle.get("dsseEnvelope") {
        let signatures: Option<Vec<Value>> = dsse
            .get("signatures")?
            .as_array()?
            .iter()
            .map(|s| bytes(s.get("sig")?))
            .collect();
        out.insert(
            "dsse".into(),
            serde_json::json!({
                "payload": bytes(dsse.get("payload")?)?,
                "payloadType": dsse.get("payloadType")?,
                "signatures": signatures?,
            }),
        );
    }
    if let Some(message) = bundle.get("messageSignature") {
        out.insert(
            "message".into(),
            serde_json::json!({
                "algorithm": message.pointer("/messageDigest/algorithm"),
                "digest": message.pointer("/messageDigest/digest").and_then(bytes),
                "signature": message.get("signature").and_then(bytes),
            }),
        );
    }
    let material = bundle.get("verificationMaterial");
    if binds.log {
        let entries = material?.get("tlogEntries")?.as_array()?;
        // A set: an entry given twice is the same evidence.
        let mut entries: Vec<Value> = entries.iter().map(entry).collect::<Option<_>>()?;
        entries.sort_by_key(Value::to_string);
        entries.dedup();
        out.insert("log".into(), Value::Array(entries));
    }
    if binds.certificate {
        let material = material?;
        // The leaf: what chains to the root's CAs is decided with the root's own
        // certificates, whatever else a chain in the bundle holds.
        let leaf = match material.pointer("/certificate/rawBytes") {
            Some(raw) => bytes(raw)?,
            None => bytes(material.pointer("/x509CertificateChain/certificates/0/rawBytes")?)?,
        };
        out.insert("certificate".into(), leaf);
    }
    Some(Value::Object(out))
}

/// What a log entry says that is bound: all but `kindVersion`. A field left out has its
/// protobuf default (0, no bytes, an empty list), as protobuf's JSON reads it.
fn entry(entry: &Value) -> Option<Value> {
    let field = |path: &str| entry.pointer(path);
    let proof = field("/inclusionProof").map(|proof| {
        serde_json::json!({
            "logIndex": number_or_zero(proof.get("logIndex")),
            "rootHash": bytes_or_none(proof.get("rootHash")),
            "treeSize": number_or_zero(proof.get("treeSize")),
            "hashes": proof.get("hashes").map_or(Some(Vec::new()), |h| {
                h.as_array().map(|h| h.iter().map(bytes).collect::<Vec<_>>())
            }),
            "checkpoint": proof
                .pointer("/checkpoint/envelope")
                .and_then(Value::as_str)
                .map(checkpoint),
        })
    });
    Some(serde_json::json!({
        "logIndex": number_or_zero(field("/logIndex")),
        "logId": bytes_or_none(field("/logId/keyId")),
        "integratedTime": number_or_zero(field("/integratedTime")),
        "promise": bytes_or_none(field("/inclusionPromise/signedEntryTimestamp")),
        "proof": proof,
        "body": bytes_or_none(field("/canonicalizedBody")),
    }))
}

/// Whether a log entry of what a bundle says has no signed entry timestamp.
fn has_entry_without_promise(said: &Value) -> bool {
    said.get("log")
        .and_then(Value::as_array)
        .is_some_and(|entries| {
            entries
                .iter()
                .any(|e| e.get("promise") == Some(&Value::from("")))
        })
}

/// What a bundle says, without what only a signed entry timestamp binds: an entry's time,
/// index and promise.
fn without_promise(said: &Value) -> Value {
    let mut said = said.clone();
    if let Some(entries) = said.get_mut("log").and_then(Value::as_array_mut) {
        for entry in entries.iter_mut().filter_map(Value::as_object_mut) {
            for field in ["promise", "integratedTime", "logIndex"] {
                entry.remove(field);
            }
        }
        entries.sort_by_key(Value::to_string);
        entries.dedup();
    }
    said
}

/// What a checkpoint (a signed note) says: its text, and each signature's key hash and
/// bytes. The name on a signature line is a label the signature does not cover: verifiers
/// find the key by its hash (C2SP signed-note).
fn checkpoint(envelope: &str) -> Value {
    let (text, signatures) = envelope.split_once("\n\n").unwrap_or((envelope, ""));
    let mut signatures: Vec<String> = signatures
        .lines()
        .map(|line| {
            let signed = line.rsplit(' ').next().unwrap_or_default();
            lenient_base64(signed).map_or_else(|| line.to_owned(), |b| hex(&b))
        })
        .collect();
    signatures.sort();
    signatures.dedup();
    serde_json::json!({ "text": text, "signatures": signatures })
}

/// A number, 0 when left out.
fn number_or_zero(value: Option<&Value>) -> Option<Value> {
    value.map_or(Some(Value::from("0")), number)
}

/// The bytes of a base64 string, none when left out.
fn bytes_or_none(value: Option<&Value>) -> Option<Value> {
    value.map_or(Some(Value::from("")), bytes)
}

/// The bytes of a base64 string, as hex.
fn bytes(value: &Value) -> Option<Value> {
    Some(Value::String(hex(&lenient_base64(value.as_str()?)?)))
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// A number written as a JSON number or a string (protobuf's JSON writes 64-bit integers as
/// strings), as its value.
fn number(value: &Value) -> Option<Value> {
    let text = match value {
        Value::String(s) => s.clone(),
        Value::Number(n) => n.to_string(),
        _ => return None,
    };
    text.parse::<i128>()
        .ok()
        .map(|n| Value::String(n.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The property reads an entry without its signed entry timestamp as binding no time:
    /// sound only because a keyless signature then needs a timestamp to verify.
    #[test]
    fn without_a_promise_the_time_of_signing_comes_from_a_timestamp_or_nothing_verifies() {
        let case = cases().get(2).expect("the keyless case");
        let edited = |timestamps: bool, shift: i64| {
            let mut bundle: Value = serde_json::from_str(case.bundle).expect("seed");
            let material = bundle
                .get_mut("verificationMaterial")
                .and_then(Value::as_object_mut)
                .expect("material");
            if !timestamps {
                material.remove("timestampVerificationData");
            }
            let entry = material
                .get_mut("tlogEntries")
                .and_then(|e| e.get_mut(0))
                .and_then(Value::as_object_mut)
                .expect("entry");
            entry.remove("inclusionPromise");
            let time: i64 = entry
                .get("integratedTime")
                .and_then(Value::as_str)
                .and_then(|t| t.parse().ok())
                .expect("time");
            entry.insert(
                "integratedTime".into(),
                Value::from((time + shift).to_string()),
            );
            case.check(&serde_json::to_vec(&bundle).expect("bytes"))
        };
        for shift in [0, 3600, -86400 * 365] {
            assert!(edited(true, shift).is_ok());
            assert!(
                matches!(edited(false, shift), Err(Rejection::NoSigningTime { .. })),
                "{shift}"
            );
        }
    }
}
