//! What verification concludes, from one signature up to one image: one vocabulary.
//!
//! - [`Rejection`]: why one signature (a legacy layer or a Sigstore bundle) does not count for
//!   an image digest. Each way is one variant, carrying what its sentence needs
//!   (`crate::webhook::words::explanation`). Its reason label ([`Rejection::label`]) and its
//!   place in the two rules that pick one rejection among several
//!   ([`Rejection::among_signers`], [`Rejection::among_signatures`]) are written here, next to
//!   it. The bundle check returns it, [`super::Seen`] keeps the first of each kind, and a
//!   [`Failure`] carries the one that says most.
//! - [`Failure`]: why an image is not admitted: a rejection, or a lookup that failed.
//! - [`Verdict`]: an image verified, or its failure.
//! - [`FailureKind`]: the closed set of reason labels (metrics, the log's `reason`, Events,
//!   the status of what already runs).
//!
//! A new way for a signature to fail is one variant of [`Rejection`] with its label and its
//! two places, one sentence in `words`, one test; a new way for an image to fail (a required
//! attestation missing, a condition false) is one variant of [`Failure`] with its label and
//! its sentence.

use std::time::Duration;

use super::findings::Seen;
use super::registry::RegistryError;
use crate::policy::condition::EvaluationError;

/// The answer for one image.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    /// A signature of `digest` verifies with `key`.
    Verified {
        /// The digest verified.
        digest: String,
        /// The policy key that verified it.
        key: String,
    },
    /// Not admitted, and why.
    Denied(Failure),
}

/// How a signature is stored, which decides what its rejection is called.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Format {
    /// A layer of cosign's legacy `sha256-<hex>.sig` manifest: a simple-signing payload and
    /// its annotations.
    Legacy,
    /// A Sigstore bundle (cosign v3, OCI referrers, or a file given to `verify-bundle`).
    Bundle,
}

/// Why one signature does not count for an image digest.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Rejection {
    /// No signer verifies the signature. In a legacy layer this is the case the original
    /// Image Policy Webhook knew, whose denial has no second sentence (docs/contract.md §2).
    NoKeyVerifies(Format),
    /// The signature cannot be read (its bundle, statement, certificate or annotations).
    /// Among signatures it counts as one no signer verifies ([`Rejection::counted`]);
    /// `image-policy verify-bundle` says why.
    Unreadable {
        /// The signature's format.
        format: Format,
        /// What cannot be read, cut to 200 characters.
        why: String,
    },
    /// A signature of another digest: copied from another image.
    OtherDigest,
    /// A statement about the digest with another predicate than cosign's signature one: an
    /// attestation, which is not a signature.
    Attestation {
        /// Its predicate type, cut to 200 characters.
        predicate_type: String,
    },
    /// A signer verifies the signature, but the transparency log entry it requires does not
    /// verify against the signer's trusted root (or there is none).
    NoLogEntry {
        /// The trusted root's name.
        root: String,
        /// Why, as Sigstore's verifier says it.
        why: String,
    },
    /// A signer verifies the signature, but the trusted root it requires cannot be used.
    RootUnavailable {
        /// The trusted root's name.
        root: String,
        /// Why the root cannot be used: unreadable, or its ConfigMap or key missing.
        why: String,
    },
    /// A keyless signature whose certificate does not chain to a certificate authority of the
    /// trusted root that was valid at the signing time (or the certificate itself was not
    /// valid then, or its SCT does not verify).
    UntrustedCertificate {
        /// The trusted root's name.
        root: String,
        /// Why, as Sigstore's verifier says it.
        why: String,
    },
    /// A keyless signature whose certificate, valid, names an identity of no signer.
    IdentityMismatch {
        /// The certificate's subject (URI or email SAN), cut to 200 characters.
        subject: String,
        /// The certificate's OIDC issuer, cut to 200 characters.
        issuer: String,
    },
    /// A keyless signature with no verified signing time: no log entry or timestamp that
    /// verifies against the trusted root.
    NoSigningTime {
        /// The trusted root's name.
        root: String,
        /// Why, as Sigstore's verifier says it.
        why: String,
    },
}

impl Rejection {
    /// The reason label of a denial that names this rejection.
    pub fn label(&self) -> FailureKind {
        match self {
            Rejection::NoKeyVerifies(_) | Rejection::Unreadable { .. } | Rejection::OtherDigest => {
                FailureKind::SignatureMismatch
            }
            Rejection::Attestation { .. } => FailureKind::AttestationOnly,
            Rejection::NoLogEntry { .. } => FailureKind::NoTransparencyLog,
            Rejection::RootUnavailable { .. } => FailureKind::TrustedRootUnavailable,
            Rejection::UntrustedCertificate { .. } => FailureKind::UntrustedCertificate,
            Rejection::IdentityMismatch { .. } => FailureKind::IdentityMismatch,
            Rejection::NoSigningTime { .. } => FailureKind::NoSigningTime,
        }
    }

    /// Among the signers of one signature, how much this rejection says of why none verifies
    /// it (lower says more): the signer whose check got furthest says the most, one no signer
    /// verifies the least. Spaced by ten, so that a new case takes its place without moving
    /// the others.
    pub fn among_signers(&self) -> u8 {
        match self {
            Rejection::RootUnavailable { .. } => 10,
            Rejection::NoLogEntry { .. } => 20,
            Rejection::IdentityMismatch { .. } => 30,
            Rejection::NoSigningTime { .. } => 40,
            Rejection::UntrustedCertificate { .. } => 50,
            Rejection::Attestation { .. } => 60,
            Rejection::OtherDigest => 70,
            Rejection::Unreadable { .. } => 80,
            Rejection::NoKeyVerifies(_) => 90,
        }
    }

    /// Among the signatures of one digest, which rejection the denial names (lower first): a
    /// legacy signature no key verifies first (the original Image Policy Webhook's own case
    /// and words), then what stops a signer (its trusted root, a keyless certificate of
    /// another identity, one that does not chain, no signing time, no log entry), a bundle no
    /// key verifies, an attestation, and signatures of other digests last. Two rejections in
    /// one place are of one kind: [`Seen`] keeps the first. Spaced by ten, as above.
    pub fn among_signatures(&self) -> u8 {
        match self {
            Rejection::NoKeyVerifies(Format::Legacy)
            | Rejection::Unreadable {
                format: Format::Legacy,
                ..
            } => 10,
            Rejection::RootUnavailable { .. } => 20,
            Rejection::IdentityMismatch { .. } => 30,
            Rejection::UntrustedCertificate { .. } => 40,
            Rejection::NoSigningTime { .. } => 50,
            Rejection::NoLogEntry { .. } => 60,
            Rejection::NoKeyVerifies(Format::Bundle)
            | Rejection::Unreadable {
                format: Format::Bundle,
                ..
            } => 70,
            Rejection::Attestation { .. } => 80,
            Rejection::OtherDigest => 90,
        }
    }

    /// The rejection as signatures are counted: one that cannot be read is one that no signer
    /// verifies, in its format (what it says of why is for `verify-bundle` alone).
    pub fn counted(self) -> Rejection {
        match self {
            Rejection::Unreadable { format, .. } => Rejection::NoKeyVerifies(format),
            other => other,
        }
    }
}

/// Why an image is not admitted. Each kind has its label ([`Failure::label`]) and its second
/// sentence (`crate::webhook::words`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Failure {
    /// The registry has no such tag or repository.
    ImageNotFound,
    /// No signature is stored for the image's digest.
    NotSigned {
        /// The digest looked up.
        digest: String,
    },
    /// Signatures of the digest exist and none counts: the rejection that says most of why
    /// ([`Rejection::among_signatures`]).
    Rejected(Rejection),
    /// Every credential, anonymous access included, was refused.
    Unauthorized {
        /// The registry's API host, `host[:port]` (Docker Hub's is `registry-1.docker.io`).
        host: String,
    },
    /// The registry could not be reached, or answered badly.
    Unreachable(RegistryError),
    /// The verification did not finish within its budget.
    TimedOut {
        /// The budget it was given (`--verify-timeout`).
        budget: Duration,
    },
    /// A required attestation of which nothing found for the digest counts.
    AttestationMissing(Box<MissingAttestation>),
    /// The newest attestation of a required type does not meet one of its conditions.
    ConditionFailed(Box<FailedCondition>),
}

/// A required attestation of which nothing found for the digest counts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MissingAttestation {
    /// The attestation's name in the policy.
    pub name: String,
    /// Its predicate type.
    pub predicate_type: String,
    /// The digest looked up.
    pub digest: String,
    /// Why the statements of its type that were found do not count (the rejection that says
    /// most); `None` when none was found.
    pub rejection: Option<Rejection>,
}

/// A condition of a required attestation that its newest attestation does not meet.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FailedCondition {
    /// The attestation's name in the policy.
    pub name: String,
    /// Its predicate type.
    pub predicate_type: String,
    /// The condition's expression, cut to 200 characters.
    pub expression: String,
    /// The condition's message, as written.
    pub message: Option<String>,
    /// Why it did not evaluate to true or false; `None` when it is false.
    pub error: Option<EvaluationError>,
}

impl Failure {
    /// The fixed label, for metrics and logs.
    pub fn label(&self) -> FailureKind {
        match self {
            Failure::ImageNotFound => FailureKind::ImageNotFound,
            Failure::NotSigned { .. } => FailureKind::NotSigned,
            Failure::Rejected(rejection) => rejection.label(),
            Failure::Unauthorized { .. } => FailureKind::Unauthorized,
            Failure::Unreachable(e) => e.kind(),
            Failure::TimedOut { .. } => FailureKind::Timeout,
            Failure::AttestationMissing(_) => FailureKind::AttestationMissing,
            Failure::ConditionFailed(_) => FailureKind::ConditionFailed,
        }
    }

    /// Why nothing verified `digest`, from what was seen of its signatures.
    pub fn of_seen(digest: String, seen: Seen) -> Failure {
        match seen.most_telling() {
            Some(rejection) => Failure::Rejected(rejection),
            None => Failure::NotSigned { digest },
        }
    }

    /// Why one signature checked alone (a bundle given to `verify-bundle`) does not admit
    /// its digest; `None` when a signer verifies it.
    pub fn of_bundle(checked: Result<String, Rejection>) -> Option<Failure> {
        checked
            .err()
            .map(|rejection| Failure::Rejected(rejection.counted()))
    }

    /// The failure of an image whose registry failed so.
    pub(super) fn of_registry(error: &RegistryError) -> Failure {
        match error {
            RegistryError::Unauthorized { host, .. } => {
                Failure::Unauthorized { host: host.clone() }
            }
            other => Failure::Unreachable(other.clone()),
        }
    }
}

/// The closed set of reason labels of [`Failure`]s, each its variant's name (CamelCase,
/// stable).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, strum::IntoStaticStr, strum::VariantArray)]
pub enum FailureKind {
    /// An image string that is no reference to an image in a registry (decided before any
    /// lookup).
    InvalidReference,
    /// [`Failure::ImageNotFound`].
    ImageNotFound,
    /// [`Failure::NotSigned`].
    NotSigned,
    /// A signature no key verifies, one that cannot be read, or signatures of other digests
    /// only.
    SignatureMismatch,
    /// [`Rejection::Attestation`].
    AttestationOnly,
    /// [`Rejection::NoLogEntry`].
    NoTransparencyLog,
    /// [`Rejection::RootUnavailable`].
    TrustedRootUnavailable,
    /// [`Rejection::UntrustedCertificate`].
    UntrustedCertificate,
    /// [`Rejection::IdentityMismatch`].
    IdentityMismatch,
    /// [`Rejection::NoSigningTime`].
    NoSigningTime,
    /// [`Failure::Unauthorized`].
    Unauthorized,
    /// No answer from the registry.
    Unreachable,
    /// A wrong answer from the registry.
    BadResponse,
    /// [`Failure::TimedOut`], or one exchange past its bound.
    Timeout,
    /// [`Failure::AttestationMissing`].
    AttestationMissing,
    /// [`Failure::ConditionFailed`].
    ConditionFailed,
}

impl FailureKind {
    /// The label: the variant's name.
    pub fn as_str(self) -> &'static str {
        self.into()
    }
}

impl PartialEq<&str> for FailureKind {
    fn eq(&self, other: &&str) -> bool {
        self.as_str() == *other
    }
}

#[cfg(test)]
mod tests {
    use strum::VariantArray as _;

    use super::*;

    fn root_why(root: &str) -> (String, String) {
        (root.to_owned(), "why".to_owned())
    }

    /// One rejection of each kind, in the order the denial prefers them.
    fn each_kind() -> Vec<Rejection> {
        let (root, why) = root_why("r");
        vec![
            Rejection::NoKeyVerifies(Format::Legacy),
            Rejection::RootUnavailable {
                root: root.clone(),
                why: why.clone(),
            },
            Rejection::IdentityMismatch {
                subject: "s".into(),
                issuer: "i".into(),
            },
            Rejection::UntrustedCertificate {
                root: root.clone(),
                why: why.clone(),
            },
            Rejection::NoSigningTime {
                root: root.clone(),
                why: why.clone(),
            },
            Rejection::NoLogEntry { root, why },
            Rejection::NoKeyVerifies(Format::Bundle),
            Rejection::Attestation {
                predicate_type: "https://slsa.dev/provenance/v1".into(),
            },
            Rejection::OtherDigest,
        ]
    }

    /// The denial names the first of these that was seen, whatever was seen besides: the
    /// original Image Policy Webhook's own case first, then what stops a signer, then
    /// bundles, attestations and other digests.
    #[test]
    fn among_signatures_the_order_is_pinned() {
        let kinds = each_kind();
        for (i, first) in kinds.iter().enumerate() {
            for later in &kinds[i + 1..] {
                for order in [[first, later], [later, first]] {
                    let mut seen = Seen::default();
                    order.into_iter().for_each(|r| seen.add(r.clone()));
                    assert_eq!(
                        Failure::of_seen("sha256:d".into(), seen),
                        Failure::Rejected(first.clone()),
                        "{first:?} over {later:?}"
                    );
                }
            }
        }
        let nothing = Failure::of_seen("sha256:d".into(), Seen::default());
        assert_eq!(
            nothing,
            Failure::NotSigned {
                digest: "sha256:d".into()
            }
        );
    }

    /// Among the signers of one signature, the one whose check got furthest is heard.
    #[test]
    fn among_signers_the_order_is_pinned() {
        let (root, why) = root_why("r");
        let order = [
            Rejection::RootUnavailable {
                root: root.clone(),
                why: why.clone(),
            },
            Rejection::NoLogEntry {
                root: root.clone(),
                why: why.clone(),
            },
            Rejection::IdentityMismatch {
                subject: "s".into(),
                issuer: "i".into(),
            },
            Rejection::NoSigningTime {
                root: root.clone(),
                why: why.clone(),
            },
            Rejection::UntrustedCertificate { root, why },
            Rejection::Attestation {
                predicate_type: "p".into(),
            },
            Rejection::OtherDigest,
            Rejection::Unreadable {
                format: Format::Bundle,
                why: "w".into(),
            },
            Rejection::NoKeyVerifies(Format::Bundle),
        ];
        let ranks: Vec<u8> = order.iter().map(Rejection::among_signers).collect();
        assert!(ranks.windows(2).all(|w| w[0] < w[1]), "{ranks:?}");
    }

    #[test]
    fn what_cannot_be_read_counts_as_what_no_signer_verifies() {
        for format in [Format::Legacy, Format::Bundle] {
            let unreadable = Rejection::Unreadable {
                format,
                why: "w".into(),
            };
            assert_eq!(
                unreadable.clone().counted(),
                Rejection::NoKeyVerifies(format)
            );
            assert_eq!(
                Failure::of_bundle(Err(unreadable)),
                Some(Failure::Rejected(Rejection::NoKeyVerifies(format)))
            );
        }
        assert_eq!(Failure::of_bundle(Ok("k".into())), None);
    }

    /// The labels are metric values and log fields that dashboards and alerts match: each is
    /// its variant's name, and this list pins them.
    #[test]
    fn labels_are_the_variants_names() {
        let labels: Vec<&str> = FailureKind::VARIANTS.iter().map(|k| k.as_str()).collect();
        assert_eq!(
            labels,
            [
                "InvalidReference",
                "ImageNotFound",
                "NotSigned",
                "SignatureMismatch",
                "AttestationOnly",
                "NoTransparencyLog",
                "TrustedRootUnavailable",
                "UntrustedCertificate",
                "IdentityMismatch",
                "NoSigningTime",
                "Unauthorized",
                "Unreachable",
                "BadResponse",
                "Timeout",
                "AttestationMissing",
                "ConditionFailed",
            ]
        );
    }
}
