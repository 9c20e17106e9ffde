//! What one Sigstore bundle says about an image digest, for the policy's signers.
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
//! - for a key, its signature verifies with the key; with `transparencyLog: Required`, the
//!   bundle also verifies in full against the key's trusted root with Sigstore's verifier:
//!   its Rekor entry (signed entry timestamp, or inclusion proof with a signed checkpoint), an
//!   entry body that matches the signature, and any RFC 3161 timestamp;
//! - for a keyless identity ([`keyless`]), the bundle verifies in full against the identity's
//!   trusted root, and its certificate names the identity.
//!
//! cosign's legacy signature layers are judged here too ([`check_legacy`]): their
//! certificate, chain, Rekor bundle and timestamp annotations are the same evidence in
//! another shape ([`legacy`]).
//!
//! Parsing, the DSSE encoding, signature schemes, certificate chains, SCTs and the log and
//! timestamp checks are `sigstore-verify`'s.

pub mod attested;
mod keyless;
pub mod legacy;

use std::cell::OnceCell;
use std::collections::BTreeMap;

use serde::Deserialize;
use sigstore_verify::PublicKeyVerificationPolicy;
use sigstore_verify::crypto::{KeyAlgorithm, verify_signature, verify_signature_prehashed};
use sigstore_verify::types::{
    Bundle, DerPublicKey, DsseEnvelope, HashAlgorithm, MessageSignature, Sha256Hash,
    SignatureContent, VerificationMaterialContent,
};

use self::legacy::AnnotationError;
use super::verdict::{Format, Rejection};
use crate::policy::trust::MAX_CHAIN;
use crate::policy::{NamedKey, PublicKey, Signer, Transparency};

/// The DSSE payload type of an in-toto statement.
pub const IN_TOTO_PAYLOAD_TYPE: &str = "application/vnd.in-toto+json";

/// The predicate type of the statement `cosign sign` (v3) signs.
pub const COSIGN_SIGN_PREDICATE: &str = "https://sigstore.dev/cosign/sign/v1";

/// What a signature is over.
#[derive(Clone, Copy)]
enum Signed<'a> {
    /// The image digest (a bundle of the referrers, already checked to be about it).
    Digest(&'a Sha256Hash),
    /// The exact payload bytes of a legacy layer, and its base64 signature.
    Payload {
        bytes: &'a [u8],
        signature_b64: &'a str,
    },
}

impl Signed<'_> {
    /// The format of a signature over this.
    fn format(self) -> Format {
        match self {
            Signed::Digest(_) => Format::Bundle,
            Signed::Payload { .. } => Format::Legacy,
        }
    }

    /// A signature of this that no signer verifies.
    fn no_key_verifies(self) -> Rejection {
        Rejection::NoKeyVerifies(self.format())
    }

    /// A signature of this that cannot be read, and why.
    fn unreadable(self, why: &str) -> Rejection {
        Rejection::Unreadable {
            format: self.format(),
            why: cut(why),
        }
    }
}

/// The bundle of a signature: given (the referrers), or made from a legacy layer's
/// annotations the first time a signer needs it, so that a key without a log requirement
/// never reads them, as before bundles were read.
struct Evidence<'a> {
    given: Option<&'a Bundle>,
    annotations: Option<&'a BTreeMap<String, String>>,
    made: OnceCell<Result<Option<Bundle>, AnnotationError>>,
}

impl Evidence<'_> {
    /// The bundle, `None` when the signature carries no evidence beyond itself, or why its
    /// annotations cannot be read.
    fn bundle(&self, signed: Signed<'_>) -> Result<Option<&Bundle>, &AnnotationError> {
        if let Some(bundle) = self.given {
            return Ok(Some(bundle));
        }
        let (
            Some(annotations),
            Signed::Payload {
                bytes,
                signature_b64,
            },
        ) = (self.annotations, signed)
        else {
            return Ok(None);
        };
        self.made
            .get_or_init(|| legacy::bundle(bytes, signature_b64, annotations))
            .as_ref()
            .map(Option::as_ref)
    }
}

/// Which in-toto statements count as signatures.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Predicate {
    /// Only cosign's signature statement: what admission accepts.
    Signature,
    /// Statements of this predicate type only (to inspect an attestation offline).
    Exactly(String),
    /// Any statement (to inspect attestations offline).
    Any,
}

impl Predicate {
    fn accepts(&self, predicate_type: &str) -> bool {
        match self {
            Predicate::Signature => predicate_type == COSIGN_SIGN_PREDICATE,
            Predicate::Exactly(expected) => predicate_type == expected,
            Predicate::Any => true,
        }
    }
}

/// Checks the bundle `bytes` against `digest` (`sha256:<hex>`) and `keys`, as admission does:
/// the identity ([`NamedKey::identity`]) of a signer that verifies it, or why none does.
pub fn check(bytes: &[u8], digest: &str, keys: &[&NamedKey]) -> Result<String, Rejection> {
    check_with(bytes, digest, keys, &Predicate::Signature)
}

/// Checks the bundle `bytes` against `digest` and `keys`, with the statements `predicate`
/// accepts counting as signatures.
pub fn check_with(
    bytes: &[u8],
    digest: &str,
    keys: &[&NamedKey],
    predicate: &Predicate,
) -> Result<String, Rejection> {
    let (hash, bundle) = read(bytes, digest)?;
    let signed = Signed::Digest(&hash);
    match &bundle.content {
        SignatureContent::DsseEnvelope(envelope) => statement(envelope, &hash, predicate)?,
        SignatureContent::MessageSignature(message) => {
            if !names_digest(message, &hash) {
                return Err(Rejection::OtherDigest);
            }
        }
        _ => return Err(signed.unreadable("a bundle of an unknown content")),
    }
    let evidence = Evidence {
        given: Some(&bundle),
        annotations: None,
        made: OnceCell::new(),
    };
    judge(&evidence, signed, keys).map(|vouched| vouched.identity)
}

/// The bundle `bytes` parsed, and the hash of `digest` (`sha256:<hex>`) it must be about.
fn read(bytes: &[u8], digest: &str) -> Result<(Sha256Hash, Bundle), Rejection> {
    let Some(hash) = digest
        .strip_prefix("sha256:")
        .and_then(|hex| Sha256Hash::from_hex(hex).ok())
    else {
        return Err(Rejection::OtherDigest);
    };
    let signed = Signed::Digest(&hash);
    let text = std::str::from_utf8(bytes).map_err(|e| signed.unreadable(&e.to_string()))?;
    let bundle = Bundle::from_json(text).map_err(|e| signed.unreadable(&e.to_string()))?;
    within_limits(&bundle).map_err(|why| signed.unreadable(&why.to_string()))?;
    Ok((hash, bundle))
}

/// The most transparency log entries, and the most RFC 3161 timestamps, a bundle may carry:
/// Sigstore's verifier checks every one of them (cosign writes one of each at most).
pub const MAX_BUNDLE_EVIDENCE: usize = 8;

/// `Ok` when the bundle's certificate chain holds at most [`MAX_CHAIN`] certificates and it
/// carries at most [`MAX_BUNDLE_EVIDENCE`] log entries and timestamps: checked before any of
/// them is verified (the bundle's size, at most the payload limit, bounds its parsing).
fn within_limits(bundle: &Bundle) -> Result<(), EvidenceError> {
    let material = &bundle.verification_material;
    let chain = match &material.content {
        VerificationMaterialContent::X509CertificateChain { certificates } => certificates.len(),
        _ => 0,
    };
    let timestamps = material
        .timestamp_verification_data
        .rfc3161_timestamps
        .len();
    for (what, count, limit) in [
        ("certificates in its chain", chain, MAX_CHAIN),
        (
            "transparency log entries",
            material.tlog_entries.len(),
            MAX_BUNDLE_EVIDENCE,
        ),
        ("RFC 3161 timestamps", timestamps, MAX_BUNDLE_EVIDENCE),
    ] {
        if count > limit {
            return Err(EvidenceError::TooMany { what, count, limit });
        }
    }
    Ok(())
}

/// Checks one legacy signature layer whose payload (`payload`, already checked to name the
/// image's digest) carries `signature_b64` and `annotations`, against `keys`: the identity of
/// a signer that verifies it, or why none does.
pub fn check_legacy(
    payload: &[u8],
    signature_b64: &str,
    annotations: &BTreeMap<String, String>,
    keys: &[&NamedKey],
) -> Result<String, Rejection> {
    let evidence = Evidence {
        given: None,
        annotations: Some(annotations),
        made: OnceCell::new(),
    };
    let signed = Signed::Payload {
        bytes: payload,
        signature_b64,
    };
    judge(&evidence, signed, keys).map(|vouched| vouched.identity)
}

/// The signer of a signature, as verified.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Vouched {
    /// The signer's identity ([`NamedKey::identity`]).
    pub identity: String,
    /// Keyless: the certificate's subject (URI or email SAN) and OIDC issuer.
    pub certificate: Option<(String, String)>,
    /// The signing time that was verified, in seconds since the Unix epoch: the earliest time
    /// a verified Rekor entry or RFC 3161 timestamp of the signer's trusted root proves the
    /// signature existed at. `None` when the signer's check verified none (a key whose log is
    /// `Optional` reads no log and no timestamp).
    pub time: Option<i64>,
}

/// The first signer that verifies `signed`, or the rejection that says most
/// ([`Rejection::among_signers`]).
fn judge(
    evidence: &Evidence<'_>,
    signed: Signed<'_>,
    keys: &[&NamedKey],
) -> Result<Vouched, Rejection> {
    let mut best = signed.no_key_verifies();
    let mut keyless = keyless::Results::default();
    for key in keys {
        let verdict = match &key.signer {
            Signer::Key(public) => by_key(key, public, evidence, signed).map(|time| (None, time)),
            Signer::Keyless(identity) => match evidence.bundle(signed) {
                Ok(Some(bundle)) => keyless
                    .judge(identity, &key.transparency, bundle, signed)
                    .map(|c| (Some((c.subject, c.issuer)), c.time)),
                // No certificate: not a keyless signature.
                Ok(None) => Err(signed.no_key_verifies()),
                Err(why) => Err(signed.unreadable(&why.to_string())),
            },
        };
        match verdict {
            Ok((certificate, time)) => {
                return Ok(Vouched {
                    identity: key.identity(),
                    certificate,
                    time,
                });
            }
            Err(rejection) if rejection.among_signers() < best.among_signers() => {
                best = rejection;
            }
            Err(_) => {}
        }
    }
    Err(best)
}

/// Whether one key verifies `signed`, with its log entry when it requires one: the signing
/// time that check verified, if any.
fn by_key(
    key: &NamedKey,
    public: &PublicKey,
    evidence: &Evidence<'_>,
    signed: Signed<'_>,
) -> Result<Option<i64>, Rejection> {
    let verifies = match (signed, evidence.given.map(|b| &b.content)) {
        (
            Signed::Payload {
                bytes,
                signature_b64,
            },
            _,
        ) => public.verifies(bytes, signature_b64),
        (Signed::Digest(_), Some(SignatureContent::DsseEnvelope(envelope))) => {
            verifies_envelope(public, envelope)
        }
        (Signed::Digest(hash), Some(SignatureContent::MessageSignature(message))) => {
            verifies_message(public, message, hash)
        }
        _ => false,
    };
    if !verifies {
        return Err(signed.no_key_verifies());
    }
    let Transparency::Required(root) = &key.transparency else {
        return Ok(None);
    };
    let verifier = root.verifier().map_err(|why| Rejection::RootUnavailable {
        root: root.name().to_owned(),
        why: why.to_string(),
    })?;
    let no_entry = |why: String| Rejection::NoLogEntry {
        root: root.name().to_owned(),
        why: cut(&why),
    };
    let bundle = match evidence.bundle(signed) {
        Ok(Some(bundle)) => bundle,
        Ok(None) => {
            return Err(no_entry(
                "the signature carries no transparency log entry".into(),
            ));
        }
        Err(why) => {
            return Err(no_entry(format!(
                "its log annotations cannot be read: {why}"
            )));
        }
    };
    proofs_state_their_checkpoints(bundle).map_err(|e| no_entry(e.to_string()))?;
    let policy = PublicKeyVerificationPolicy::new(der(public));
    let verified = match signed {
        Signed::Digest(hash) => verifier.verify(*hash, bundle, &policy),
        Signed::Payload { bytes, .. } => verifier.verify(bytes, bundle, &policy),
    };
    verified
        .map(|result| signing_time(&result))
        .map_err(|e| no_entry(e.to_string()))
}

/// Refuses a bundle with a log entry whose inclusion proof does not state what its
/// checkpoint signs: the proof's `treeSize` and `rootHash` must be the size and root hash in
/// the checkpoint's text. sigstore-verify 0.15 compares a Rekor v1 proof's root hash with its
/// checkpoint's but not its tree size (so a size that shapes the same audit path, one off the
/// real one, verified), and for Rekor v2 reads both from the checkpoint and neither from the
/// proof. A proof without a checkpoint is left to sigstore-verify, which refuses it.
fn proofs_state_their_checkpoints(bundle: &Bundle) -> Result<(), EvidenceError> {
    let entries = &bundle.verification_material.tlog_entries;
    for (n, entry) in entries.iter().enumerate() {
        let Some(proof) = &entry.inclusion_proof else {
            continue;
        };
        let Some(checkpoint) = proof.checkpoint.checkpoint() else {
            continue;
        };
        if proof.tree_size != checkpoint.tree_size() {
            return Err(EvidenceError::TreeSize {
                entry: n,
                proof: proof.tree_size,
                checkpoint: checkpoint.tree_size(),
            });
        }
        if proof.root_hash.as_bytes() != checkpoint.root_hash().as_bytes() {
            return Err(EvidenceError::RootHash { entry: n });
        }
    }
    Ok(())
}

/// What is wrong with a bundle's evidence before it is verified: the words of its rejection.
#[derive(Debug, thiserror::Error)]
pub(super) enum EvidenceError {
    /// More of something than a bundle may carry.
    #[error("a bundle with {count} {what}, more than {limit}, the limit of a bundle")]
    TooMany {
        what: &'static str,
        count: usize,
        limit: usize,
    },
    /// An inclusion proof for another tree than its checkpoint's.
    #[error(
        "the inclusion proof of log entry {entry} is for a tree of {proof} entries, and its \
         checkpoint signs a tree of {checkpoint}"
    )]
    TreeSize {
        entry: usize,
        proof: u64,
        checkpoint: u64,
    },
    /// An inclusion proof whose root hash its checkpoint does not sign.
    #[error(
        "the inclusion proof of log entry {entry} states a root hash its checkpoint does not sign"
    )]
    RootHash { entry: usize },
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

/// `Ok` when the envelope is a statement about `hash` that `predicate` accepts.
fn statement(
    envelope: &DsseEnvelope,
    hash: &Sha256Hash,
    predicate: &Predicate,
) -> Result<(), Rejection> {
    let unreadable = |why: String| Rejection::Unreadable {
        format: Format::Bundle,
        why,
    };
    if envelope.payload_type != IN_TOTO_PAYLOAD_TYPE {
        return Err(unreadable(format!(
            "a DSSE payload of type {:?}, not an in-toto statement",
            cut(&envelope.payload_type)
        )));
    }
    let statement: Statement = serde_json::from_slice(envelope.payload.as_bytes())
        .map_err(|e| unreadable(format!("an in-toto statement that is not one ({e})")))?;
    let hex = hash.to_hex();
    let about = statement.subject.iter().any(|s| {
        s.digest
            .get("sha256")
            .is_some_and(|d| d.eq_ignore_ascii_case(&hex))
    });
    if !about {
        return Err(Rejection::OtherDigest);
    }
    if !predicate.accepts(&statement.predicate_type) {
        return Err(Rejection::Attestation {
            predicate_type: cut(&statement.predicate_type),
        });
    }
    Ok(())
}

/// The earliest time Sigstore's verifier verified (a Rekor v1 integrated time, an RFC 3161
/// timestamp), in seconds since the Unix epoch: the signature existed then.
fn signing_time(result: &sigstore_verify::VerificationResult) -> Option<i64> {
    result
        .verified_timestamps()
        .iter()
        .chain(result.integrated_time().as_ref())
        .map(|t| t.as_second())
        .min()
}

fn names_digest(message: &MessageSignature, hash: &Sha256Hash) -> bool {
    message.message_digest.as_ref().is_some_and(|d| {
        d.algorithm == HashAlgorithm::Sha2256 && d.digest.as_bytes() == hash.as_bytes()
    })
}

fn der(key: &PublicKey) -> DerPublicKey {
    DerPublicKey::from_bytes(key.spki())
}

fn verifies_envelope(key: &PublicKey, envelope: &DsseEnvelope) -> bool {
    let der = der(key);
    let Ok(algorithm) = KeyAlgorithm::from_spki(&der) else {
        return false;
    };
    let scheme = algorithm.default_signing_scheme();
    verify_signature(&der, &envelope.pae(), &envelope.signature.sig, scheme).is_ok()
}

fn verifies_message(key: &PublicKey, message: &MessageSignature, hash: &Sha256Hash) -> bool {
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
