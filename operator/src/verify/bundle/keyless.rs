//! Keyless signatures: a bundle verified in full against an identity's trusted root, then its
//! certificate's identity matched.
//!
//! Sigstore's verifier checks, offline: the certificate chains to a Fulcio CA of the root that
//! was valid at the signing time, with the code-signing usage; the signing time comes from a
//! Rekor entry (its integrated time under a verified signed entry timestamp) or from an RFC
//! 3161 timestamp of an authority of the root, never from the payload; the certificate was
//! valid at that time; its embedded SCT verifies when the root has CT logs; the log entry
//! verifies (inclusion proof and checkpoint, or signed entry timestamp) and matches the
//! signature; the signature covers the artifact. What is left here is the identity: the
//! certificate's subject (its URI or email SAN) and OIDC issuer, which the verifier reads
//! from the verified certificate, matched with the policy's.

use std::sync::Arc;

use sigstore_verify::bundle::Error as BundleError;
use sigstore_verify::types::Bundle;
use sigstore_verify::{CertificateError, Error, VerificationPolicy};

use super::{Signed, cut};
use crate::policy::{Identity, Transparency, TrustRoot};
use crate::verify::verdict::Rejection;

/// A verified certificate's identity, and the signing time verified with it.
#[derive(Clone)]
pub(super) struct Certified {
    /// The certificate's subject (URI or email SAN).
    pub(super) subject: String,
    /// The certificate's OIDC issuer.
    pub(super) issuer: String,
    /// The earliest verified time, in seconds since the Unix epoch.
    pub(super) time: Option<i64>,
}

/// The verifications of one signature, by trusted root and log requirement: identities of the
/// same root share one.
#[derive(Default)]
pub(super) struct Results {
    done: Vec<(Arc<TrustRoot>, bool, Result<Certified, Rejection>)>,
}

impl Results {
    /// Whether `identity` signed `bundle` (its certificate's identity and the verified time),
    /// or why not.
    pub(super) fn judge(
        &mut self,
        identity: &Identity,
        transparency: &Transparency,
        bundle: &Bundle,
        signed: Signed<'_>,
    ) -> Result<Certified, Rejection> {
        let log = matches!(transparency, Transparency::Required(_));
        let root = identity.root();
        let position = self
            .done
            .iter()
            .position(|(r, l, _)| Arc::ptr_eq(r, root) && *l == log);
        let result = match position.and_then(|i| self.done.get(i)) {
            Some((_, _, result)) => result.clone(),
            None => {
                let result = certify(root, log, bundle, signed);
                self.done.push((root.clone(), log, result.clone()));
                result
            }
        };
        match result {
            Ok(certified) if identity.matches(&certified.subject, &certified.issuer) => {
                Ok(certified)
            }
            Ok(certified) => Err(Rejection::IdentityMismatch {
                subject: cut(&certified.subject),
                issuer: cut(&certified.issuer),
            }),
            Err(rejection) => Err(rejection),
        }
    }
}

/// Verifies `bundle` in full against `root`, with a log entry when `log`; the certificate's
/// identity, or why not.
fn certify(
    root: &TrustRoot,
    log: bool,
    bundle: &Bundle,
    signed: Signed<'_>,
) -> Result<Certified, Rejection> {
    let name = root.name();
    let verifier = root.verifier().map_err(|why| Rejection::RootUnavailable {
        root: name.to_owned(),
        why: why.to_string(),
    })?;
    let mut policy = VerificationPolicy::any_identity();
    if !root.has_ct_logs() {
        policy = policy.skip_sct();
    }
    if log {
        super::proofs_state_their_checkpoints(bundle).map_err(|why| Rejection::NoLogEntry {
            root: name.to_owned(),
            why: cut(&why.to_string()),
        })?;
    } else {
        // A signing time is still required: a timestamp of the root's authority.
        policy = policy.skip_tlog_unsafe();
    }
    let result = match signed {
        Signed::Digest(hash) => verifier.verify(*hash, bundle, &policy),
        Signed::Payload { bytes, .. } => verifier.verify(bytes, bundle, &policy),
    }
    .map_err(|e| classify(e, name, signed))?;
    let untrusted = |why: &str| Rejection::UntrustedCertificate {
        root: name.to_owned(),
        why: why.to_owned(),
    };
    if !result.certificate_verified() {
        return Err(untrusted("the signature has no certificate"));
    }
    let subject = result
        .identity()
        .map(|san| san.as_str().to_owned())
        .ok_or_else(|| untrusted("the certificate names no URI or email subject"))?;
    let issuer = result
        .issuer()
        .map(str::to_owned)
        .ok_or_else(|| untrusted("the certificate names no OIDC issuer"))?;
    Ok(Certified {
        subject,
        issuer,
        time: super::signing_time(&result),
    })
}

/// What an error of Sigstore's verifier about `signed` means for admission.
fn classify(error: Error, root: &str, signed: Signed<'_>) -> Rejection {
    let text = error.to_string();
    let why = cut(&text);
    let root = root.to_owned();
    match error {
        Error::Certificate(CertificateError::Malformed(_)) => signed.unreadable(&text),
        Error::Certificate(_) | Error::TrustedCertificate(_) => {
            Rejection::UntrustedCertificate { root, why }
        }
        Error::Timestamp(_) | Error::Bundle(BundleError::MissingSigningTimeEvidence) => {
            Rejection::NoSigningTime { root, why }
        }
        Error::TransparencyLog(_)
        | Error::Bundle(
            BundleError::MissingInclusionPromise(_)
            | BundleError::MissingInclusionProof(_)
            | BundleError::MissingCheckpoint
            | BundleError::LogIndexOutOfRange { .. }
            | BundleError::CheckpointRootMismatch,
        ) => Rejection::NoLogEntry { root, why },
        Error::Bundle(_) | Error::InvalidBundle(_) | Error::Types(_) => signed.unreadable(&text),
        Error::ArtifactMismatch(_) => Rejection::OtherDigest,
        // A signature the certificate's key does not verify; a bundle with a public key, not
        // a certificate (a key's signature); anything else the verifier refuses.
        _ => signed.no_key_verifies(),
    }
}
