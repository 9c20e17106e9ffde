//! Attestations: in-toto statements of a predicate type about an image digest, signed by one
//! of an attestation's signers (docs/contract.md §3, attestations). A statement is checked
//! exactly as a signature statement is ([`super::statement`], [`super::judge`]): its subject
//! names the digest, its one DSSE signature verifies over the exact payload bytes with a
//! signer's key or keyless identity, with the log and timestamp checks its signer asks for.
//! What is kept is the statement as signed, its signer and the signing time verified.

use std::cell::OnceCell;
use std::collections::BTreeMap;

use bytes::Bytes;
use sigstore_verify::types::{Bundle, DsseEnvelope, SignatureContent};

use super::{
    Evidence, IN_TOTO_PAYLOAD_TYPE, Predicate, Signed, Vouched, judge, legacy, read, statement,
};
use crate::policy::NamedKey;
use crate::verify::verdict::{Format, Rejection};

/// A verified attestation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Attested {
    /// Who signed it, and when that was verified.
    pub vouched: Vouched,
    /// The in-toto statement, exactly as signed (the DSSE payload).
    pub statement: Bytes,
}

/// Checks the bundle `bytes` as an attestation of `digest` whose statement `predicate`
/// accepts, signed by one of `signers`: `Ok(None)` when it holds no in-toto statement that
/// `predicate` accepts (a message signature, a statement of another type), which is not an
/// attestation of that type at all.
pub fn check_attestation(
    bytes: &[u8],
    digest: &str,
    predicate: &Predicate,
    signers: &[&NamedKey],
) -> Result<Option<Attested>, Rejection> {
    let (hash, bundle) = read(bytes, digest)?;
    attested(&bundle, &hash, predicate, signers)
}

/// Checks one layer of cosign's legacy attestation tag (`sha256-<hex>.att`): `envelope` is
/// its DSSE envelope (the layer's blob) and `annotations` its certificate, chain, Rekor entry
/// and timestamp, when it has them, which make it the bundle it amounts to
/// ([`legacy::dsse_bundle`]).
pub fn check_legacy_attestation(
    envelope: &[u8],
    annotations: &BTreeMap<String, String>,
    digest: &str,
    predicate: &Predicate,
    signers: &[&NamedKey],
) -> Result<Option<Attested>, Rejection> {
    let unreadable = |why: String| Rejection::Unreadable {
        format: Format::Legacy,
        why: super::cut(&why),
    };
    let bundle =
        legacy::dsse_bundle(envelope, annotations).map_err(|e| unreadable(e.to_string()))?;
    let Some(hash) = digest
        .strip_prefix("sha256:")
        .and_then(|hex| sigstore_verify::types::Sha256Hash::from_hex(hex).ok())
    else {
        return Err(Rejection::OtherDigest);
    };
    attested(&bundle, &hash, predicate, signers)
}

fn attested(
    bundle: &Bundle,
    hash: &sigstore_verify::types::Sha256Hash,
    predicate: &Predicate,
    signers: &[&NamedKey],
) -> Result<Option<Attested>, Rejection> {
    let signed = Signed::Digest(hash);
    let SignatureContent::DsseEnvelope(envelope) = &bundle.content else {
        return Ok(None);
    };
    // Its type first: a statement of another type about another digest is not one of this
    // type that is for another image.
    if !of_type(envelope, predicate) {
        return Ok(None);
    }
    statement(envelope, hash, predicate)?;
    let evidence = Evidence {
        given: Some(bundle),
        annotations: None,
        made: OnceCell::new(),
    };
    let vouched = judge(&evidence, signed, signers)?;
    Ok(Some(Attested {
        vouched,
        statement: Bytes::copy_from_slice(envelope.payload.as_bytes()),
    }))
}

/// Whether `envelope` holds an in-toto statement whose predicate type `predicate` accepts.
fn of_type(envelope: &DsseEnvelope, predicate: &Predicate) -> bool {
    #[derive(serde::Deserialize)]
    struct Typed {
        #[serde(rename = "predicateType")]
        predicate_type: String,
    }
    envelope.payload_type == IN_TOTO_PAYLOAD_TYPE
        && serde_json::from_slice::<Typed>(envelope.payload.as_bytes())
            .is_ok_and(|t| predicate.accepts(&t.predicate_type))
}
