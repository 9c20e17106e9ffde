//! What the signatures of one digest say, whatever layout they were found in: the value of
//! the verdict cache.

use std::sync::Arc;

use super::bundle::BundleVerdict;

/// What the signatures of one digest say.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Findings {
    /// A signature over this digest verifies with the key of this identity
    /// ([`crate::policy::NamedKey::identity`]). The key's name is looked up when the verdict is
    /// read, so a key renamed in the policy is named as it is now.
    Verified {
        /// The key's identity.
        fingerprint: Arc<str>,
    },
    /// Nothing verifies: where it was looked for, and what was found.
    Unverified(Box<Seen>),
}

/// What was found of a digest's signatures when none verifies.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Seen {
    /// Signatures (legacy or bundles) of another digest: copied from another image.
    pub other_digest: usize,
    /// Legacy signature layers no key verifies, or that cannot be read.
    pub bad_signature: usize,
    /// Bundles of this digest whose signature no key verifies, or that cannot be read.
    pub bad_bundle: usize,
    /// The predicate type of an attestation of this digest, when one was found.
    pub attestation: Option<String>,
    /// A bundle a key verifies whose required log entry does not: the root and why.
    pub no_log_entry: Option<(String, String)>,
    /// A bundle a key verifies whose required trusted root cannot be used: the root and why.
    pub root_unavailable: Option<(String, String)>,
    /// A keyless signature whose certificate does not chain to its root: the root and why.
    pub untrusted_certificate: Option<(String, String)>,
    /// A keyless signature of a valid certificate of another identity: its subject and issuer.
    pub identity_mismatch: Option<(String, String)>,
    /// A keyless signature with no verified signing time: the root and why.
    pub no_signing_time: Option<(String, String)>,
}

impl Seen {
    /// Whether anything was found.
    pub fn found_any(&self) -> bool {
        self.other_digest > 0
            || self.bad_signature > 0
            || self.bad_bundle > 0
            || self.attestation.is_some()
            || self.no_log_entry.is_some()
            || self.root_unavailable.is_some()
            || self.untrusted_certificate.is_some()
            || self.identity_mismatch.is_some()
            || self.no_signing_time.is_some()
    }

    /// Counts one bundle that did not verify.
    pub fn bundle(&mut self, verdict: BundleVerdict) {
        if let BundleVerdict::NoKeyVerifies | BundleVerdict::Unreadable(_) = verdict {
            self.bad_bundle += 1;
        } else {
            self.specific(verdict);
        }
    }

    /// Counts one legacy signature layer that did not verify: one no signer verifies (or
    /// whose annotations cannot be read) is a bad signature, the original's case.
    pub fn legacy(&mut self, verdict: BundleVerdict) {
        if let BundleVerdict::NoKeyVerifies | BundleVerdict::Unreadable(_) = verdict {
            self.bad_signature += 1;
        } else {
            self.specific(verdict);
        }
    }

    /// Keeps the first of each telling verdict.
    fn specific(&mut self, verdict: BundleVerdict) {
        match verdict {
            BundleVerdict::Verified { .. }
            | BundleVerdict::NoKeyVerifies
            | BundleVerdict::Unreadable(_) => {}
            BundleVerdict::OtherDigest => self.other_digest += 1,
            BundleVerdict::Attestation { predicate_type } => {
                self.attestation.get_or_insert(predicate_type);
            }
            BundleVerdict::NoLogEntry { root, why } => {
                self.no_log_entry.get_or_insert((root, why));
            }
            BundleVerdict::RootUnavailable { root, why } => {
                self.root_unavailable.get_or_insert((root, why));
            }
            BundleVerdict::UntrustedCertificate { root, why } => {
                self.untrusted_certificate.get_or_insert((root, why));
            }
            BundleVerdict::IdentityMismatch { subject, issuer } => {
                self.identity_mismatch.get_or_insert((subject, issuer));
            }
            BundleVerdict::NoSigningTime { root, why } => {
                self.no_signing_time.get_or_insert((root, why));
            }
        }
    }
}

impl Findings {
    /// No signature at all.
    pub fn not_signed() -> Self {
        Findings::Unverified(Box::default())
    }

    /// The findings of two places looked in, for one digest: a verified signature wins, and
    /// what did not verify is counted together.
    pub fn and(self, other: Findings) -> Findings {
        match (self, other) {
            (verified @ Findings::Verified { .. }, _)
            | (_, verified @ Findings::Verified { .. }) => verified,
            (Findings::Unverified(a), Findings::Unverified(b)) => {
                Findings::Unverified(Box::new(Seen {
                    other_digest: a.other_digest + b.other_digest,
                    bad_signature: a.bad_signature + b.bad_signature,
                    bad_bundle: a.bad_bundle + b.bad_bundle,
                    attestation: a.attestation.or(b.attestation),
                    no_log_entry: a.no_log_entry.or(b.no_log_entry),
                    root_unavailable: a.root_unavailable.or(b.root_unavailable),
                    untrusted_certificate: a.untrusted_certificate.or(b.untrusted_certificate),
                    identity_mismatch: a.identity_mismatch.or(b.identity_mismatch),
                    no_signing_time: a.no_signing_time.or(b.no_signing_time),
                }))
            }
        }
    }

    /// Whether a signature verified: looking further cannot change the verdict.
    pub fn is_verified(&self) -> bool {
        matches!(self, Findings::Verified { .. })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_verified_signature_wins_and_failures_add_up() {
        let verified = || Findings::Verified {
            fingerprint: Arc::from("k"),
        };
        let none = |o, b| {
            Findings::Unverified(Box::new(Seen {
                other_digest: o,
                bad_signature: b,
                ..Seen::default()
            }))
        };
        assert_eq!(Findings::not_signed().and(verified()), verified());
        assert_eq!(none(1, 0).and(verified()), verified());
        assert_eq!(verified().and(none(1, 0)), verified());
        let both = Findings::not_signed().and(Findings::not_signed());
        assert!(matches!(&both, Findings::Unverified(seen) if !seen.found_any()));
        let Findings::Unverified(sum) = none(1, 2).and(none(3, 4)) else {
            panic!("unverified")
        };
        assert_eq!((sum.other_digest, sum.bad_signature), (4, 6));
        let mut seen = Seen::default();
        seen.bundle(BundleVerdict::Attestation {
            predicate_type: "https://slsa.dev/provenance/v1".into(),
        });
        seen.bundle(BundleVerdict::NoKeyVerifies);
        assert!(seen.found_any() && seen.bad_bundle == 1);
        assert_eq!(
            seen.attestation.as_deref(),
            Some("https://slsa.dev/provenance/v1")
        );
    }
}
