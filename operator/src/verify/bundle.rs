//! What one Sigstore bundle says about an image digest, for the policy's keys.
//!
//! cosign v3 signs an image with a bundle (v0.1 to v0.3) holding either a DSSE envelope of an
//! in-toto statement (`predicateType https://sigstore.dev/cosign/sign/v1`, subject the image
//! digest) or a message signature over the digest. A bundle counts as a signature of the
//! image when:
//! - its DSSE payload type is in-toto, its statement has a subject whose `sha256` is the
//!   image digest, its predicate type is cosign's signature one (an attestation: provenance,
//!   an SBOM, any other predicate, is not a signature and never admits an image), and its one
//!   signature verifies over the DSSE pre-authentication encoding of the exact payload bytes
//!   (never re-serialized); or its message signature's digest is the image digest (SHA-256)
//!   and the signature verifies over it;
//! - with a key whose `transparencyLog` is `Required`, the bundle also verifies in full
//!   against the key's trusted root with Sigstore's verifier: its Rekor entry (signed entry
//!   timestamp, or inclusion proof with a signed checkpoint), an entry body that matches the
//!   signature, and any RFC 3161 timestamp.
//!
//! Parsing, the DSSE encoding, signature schemes and the log checks are `sigstore-verify`'s.

use serde::Deserialize;
use sigstore_verify::PublicKeyVerificationPolicy;
use sigstore_verify::crypto::{KeyAlgorithm, verify_signature, verify_signature_prehashed};
use sigstore_verify::types::{
    Bundle, DerPublicKey, DsseEnvelope, HashAlgorithm, MessageSignature, Sha256Hash,
    SignatureContent,
};

use crate::policy::{NamedKey, Transparency};

/// The DSSE payload type of an in-toto statement.
pub const IN_TOTO_PAYLOAD_TYPE: &str = "application/vnd.in-toto+json";

/// The predicate type of the statement `cosign sign` (v3) signs.
pub const COSIGN_SIGN_PREDICATE: &str = "https://sigstore.dev/cosign/sign/v1";

/// What a bundle says of a digest.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BundleVerdict {
    /// A signature of the digest that the key with this identity ([`NamedKey::identity`])
    /// verifies, with its log entry when the key requires one.
    Verified {
        /// The key's identity.
        key: String,
    },
    /// A signature of another digest.
    OtherDigest,
    /// A statement about the digest with another predicate: an attestation.
    Attestation {
        /// Its predicate type, cut to 200 characters.
        predicate_type: String,
    },
    /// A signature of the digest that no key verifies.
    NoKeyVerifies,
    /// A key verifies the signature, but the bundle's log entry does not verify against the
    /// key's trusted root (or it has none).
    NoLogEntry {
        /// The root's name.
        root: String,
        /// Why, as Sigstore's verifier says it.
        why: String,
    },
    /// A key verifies the signature, but its trusted root cannot be used.
    RootUnavailable {
        /// The root's name.
        root: String,
        /// Why.
        why: String,
    },
    /// Not a bundle this verifier can read.
    Unreadable(String),
}

/// Checks the bundle `bytes` against `digest` (`sha256:<hex>`) and `keys`.
pub fn check(bytes: &[u8], digest: &str, keys: &[&NamedKey]) -> BundleVerdict {
    let Some(hash) = digest
        .strip_prefix("sha256:")
        .and_then(|hex| Sha256Hash::from_hex(hex).ok())
    else {
        return BundleVerdict::OtherDigest;
    };
    let bundle = match std::str::from_utf8(bytes)
        .map_err(|e| e.to_string())
        .and_then(|text| Bundle::from_json(text).map_err(|e| e.to_string()))
    {
        Ok(bundle) => bundle,
        Err(e) => return BundleVerdict::Unreadable(cut(&e)),
    };
    let signed_by = match &bundle.content {
        SignatureContent::DsseEnvelope(envelope) => match statement(envelope, &hash) {
            Err(verdict) => return verdict,
            Ok(()) => keys.iter().find(|k| verifies_envelope(k, envelope)),
        },
        SignatureContent::MessageSignature(message) => {
            if !names_digest(message, &hash) {
                return BundleVerdict::OtherDigest;
            }
            keys.iter().find(|k| verifies_message(k, message, &hash))
        }
        _ => return BundleVerdict::Unreadable("a bundle of an unknown content".to_owned()),
    };
    let Some(key) = signed_by else {
        return BundleVerdict::NoKeyVerifies;
    };
    match &key.transparency {
        Transparency::Optional => BundleVerdict::Verified {
            key: key.identity(),
        },
        Transparency::Required(root) => {
            let verifier = match root.verifier() {
                Ok(verifier) => verifier,
                Err(why) => {
                    return BundleVerdict::RootUnavailable {
                        root: root.name().to_owned(),
                        why: why.to_owned(),
                    };
                }
            };
            let policy = PublicKeyVerificationPolicy::new(der(key));
            match verifier.verify(hash, &bundle, &policy) {
                Ok(_) => BundleVerdict::Verified {
                    key: key.identity(),
                },
                Err(e) => BundleVerdict::NoLogEntry {
                    root: root.name().to_owned(),
                    why: cut(&e.to_string()),
                },
            }
        }
    }
}

/// The few fields of an in-toto statement that decide.
#[derive(Deserialize)]
struct Statement {
    #[serde(rename = "predicateType")]
    predicate_type: String,
    #[serde(default)]
    subject: Vec<Subject>,
}

#[derive(Deserialize)]
struct Subject {
    #[serde(default)]
    digest: std::collections::BTreeMap<String, String>,
}

/// `Ok` when the envelope is cosign's signature statement about `hash`.
fn statement(envelope: &DsseEnvelope, hash: &Sha256Hash) -> Result<(), BundleVerdict> {
    if envelope.payload_type != IN_TOTO_PAYLOAD_TYPE {
        return Err(BundleVerdict::Unreadable(format!(
            "a DSSE payload of type {:?}, not an in-toto statement",
            cut(&envelope.payload_type)
        )));
    }
    let statement: Statement =
        serde_json::from_slice(envelope.payload.as_bytes()).map_err(|e| {
            BundleVerdict::Unreadable(format!("an in-toto statement that is not one ({e})"))
        })?;
    let hex = hash.to_hex();
    let about = statement.subject.iter().any(|s| {
        s.digest
            .get("sha256")
            .is_some_and(|d| d.eq_ignore_ascii_case(&hex))
    });
    if !about {
        return Err(BundleVerdict::OtherDigest);
    }
    if statement.predicate_type != COSIGN_SIGN_PREDICATE {
        return Err(BundleVerdict::Attestation {
            predicate_type: cut(&statement.predicate_type),
        });
    }
    Ok(())
}

fn names_digest(message: &MessageSignature, hash: &Sha256Hash) -> bool {
    message.message_digest.as_ref().is_some_and(|d| {
        d.algorithm == HashAlgorithm::Sha2256 && d.digest.as_bytes() == hash.as_bytes()
    })
}

fn der(key: &NamedKey) -> DerPublicKey {
    DerPublicKey::from_bytes(key.key.spki())
}

fn verifies_envelope(key: &NamedKey, envelope: &DsseEnvelope) -> bool {
    let der = der(key);
    let Ok(algorithm) = KeyAlgorithm::from_spki(&der) else {
        return false;
    };
    let scheme = algorithm.default_signing_scheme();
    verify_signature(&der, &envelope.pae(), &envelope.signature.sig, scheme).is_ok()
}

fn verifies_message(key: &NamedKey, message: &MessageSignature, hash: &Sha256Hash) -> bool {
    let der = der(key);
    let Ok(algorithm) = KeyAlgorithm::from_spki(&der) else {
        return false;
    };
    // The signature is over the artifact, whose SHA-256 is all there is: ECDSA and RSA over
    // SHA-256 verify from it (Ed25519 signs the message itself, and cannot).
    let Ok(scheme) = algorithm.resolve_signing_scheme(HashAlgorithm::Sha2256) else {
        return false;
    };
    scheme.supports_prehashed()
        && verify_signature_prehashed(&der, hash.as_bytes(), &message.signature, scheme).is_ok()
}

/// At most 200 characters of `text`: what a registry wrote goes into messages only cut.
fn cut(text: &str) -> String {
    text.chars().take(200).collect()
}

#[cfg(test)]
mod tests;
