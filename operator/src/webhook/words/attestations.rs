//! The words of a denial for a required attestation (docs/contract.md §3, attestations): the
//! image named as the original's sentences name it, the attestation by its name and predicate
//! type, and never "not signed", since the image may well be signed.

use super::rejected;
use crate::verify::{FailedCondition, MissingAttestation, Rejection};

/// `The image: <image> does not have the attestation "<name>" (<type>) its policy requires.`,
/// and why.
pub(super) fn missing(image: &str, missing: &MissingAttestation) -> String {
    let MissingAttestation {
        name,
        predicate_type,
        ..
    } = missing;
    format!(
        "The image: {image} does not have the attestation {name:?} ({predicate_type}) its policy requires. {}",
        why_missing(missing)
    )
}

/// Why a required attestation is missing: none of its type was found, or those found do not
/// count.
pub(super) fn why_missing(missing: &MissingAttestation) -> String {
    let digest = &missing.digest;
    let hex = digest.strip_prefix("sha256:").unwrap_or(digest);
    match &missing.rejection {
        None => format!(
            "None of that type was found for {digest}: none among its OCI referrers (the referrers API or the tag sha256-{hex}), nor at its cosign attestation tag sha256-{hex}.att."
        ),
        Some(Rejection::NoKeyVerifies(_) | Rejection::Unreadable { .. }) => {
            "Those of that type are signed by none of its keys.".into()
        }
        Some(Rejection::OtherDigest) => {
            "Those of that type are for other images, not for its digest.".into()
        }
        Some(Rejection::IdentityMismatch { subject, issuer }) => format!(
            "Those of that type are signed by a certificate of the subject {subject} of the issuer {issuer}, which none of its identities matches."
        ),
        // What stops a signer is said as for a signature: its trusted root, log, certificate
        // or signing time.
        Some(other) => rejected(other).unwrap_or_default(),
    }
}

/// `The image: <image> does not meet the conditions of its attestation "<name>" (<type>):
/// <detail>.`
pub(super) fn failed(image: &str, failed: &FailedCondition) -> String {
    let FailedCondition {
        name,
        predicate_type,
        ..
    } = failed;
    format!(
        "The image: {image} does not meet the conditions of its attestation {name:?} ({predicate_type}): {}.",
        detail(failed)
    )
}

/// What a denial for a condition that is not met says after its colon: the condition's
/// message, or that its expression is false; with why when it could not be evaluated.
pub(super) fn detail(failed: &FailedCondition) -> String {
    let FailedCondition {
        expression,
        message,
        error,
        ..
    } = failed;
    let message = message.as_deref().map(|m| m.trim_end_matches('.'));
    match (message, error) {
        (Some(message), None) => message.to_owned(),
        (None, None) => format!("the condition {expression} is false"),
        (Some(message), Some(why)) => {
            format!("{message} (its condition {expression} could not be evaluated: {why})")
        }
        (None, Some(why)) => format!("the condition {expression} could not be evaluated: {why}"),
    }
}

#[cfg(test)]
mod tests {
    use super::super::{denial, explanation};
    use super::*;
    use crate::policy::condition::EvaluationError;
    use crate::verify::{Failure, Format};

    /// docs/contract.md §3, attestations: an image signed but lacking an attestation, or whose
    /// attestation fails a condition, is never said not to be signed, and the words name the
    /// attestation and the condition's message.
    #[test]
    fn an_attestation_denial_names_it() {
        let digest = format!("sha256:{}", "ab".repeat(32));
        let hex = "ab".repeat(32);
        let missing = |rejection| {
            Failure::AttestationMissing(Box::new(MissingAttestation {
                name: "built-by-ci".into(),
                predicate_type: "https://slsa.dev/provenance/v1".into(),
                digest: digest.clone(),
                rejection,
            }))
        };
        let first = "The image: r/a:1 does not have the attestation \"built-by-ci\" \
                     (https://slsa.dev/provenance/v1) its policy requires.";
        let cases = [
            (
                missing(None),
                format!(
                    "{first} None of that type was found for {digest}: none among its OCI \
                     referrers (the referrers API or the tag sha256-{hex}), nor at its cosign \
                     attestation tag sha256-{hex}.att."
                ),
            ),
            (
                missing(Some(Rejection::NoKeyVerifies(Format::Bundle))),
                format!("{first} Those of that type are signed by none of its keys."),
            ),
            (
                missing(Some(Rejection::OtherDigest)),
                format!("{first} Those of that type are for other images, not for its digest."),
            ),
            (
                missing(Some(Rejection::IdentityMismatch {
                    subject: "https://github.com/evil/app/.github/workflows/x.yml@refs/heads/main"
                        .into(),
                    issuer: "https://token.actions.githubusercontent.com".into(),
                })),
                format!(
                    "{first} Those of that type are signed by a certificate of the subject \
                     https://github.com/evil/app/.github/workflows/x.yml@refs/heads/main of the \
                     issuer https://token.actions.githubusercontent.com, which none of its \
                     identities matches."
                ),
            ),
            (
                missing(Some(Rejection::NoLogEntry {
                    root: "corp".into(),
                    why: "no entry".into(),
                })),
                format!(
                    "{first} Its signature has no transparency log entry that verifies against \
                     the trusted root corp: no entry."
                ),
            ),
        ];
        for (failure, expected) in cases {
            assert_eq!(denial("r/a:1", &failure), expected);
            assert_eq!(failure.label(), "AttestationMissing");
        }
        let failed = |message: Option<&str>, error| {
            Failure::ConditionFailed(Box::new(FailedCondition {
                name: "built-by-ci".into(),
                predicate_type: "https://slsa.dev/provenance/v1".into(),
                expression: "predicate.repo == \"x\"".into(),
                message: message.map(str::to_owned),
                error,
            }))
        };
        let first = "The image: r/a:1 does not meet the conditions of its attestation \
                     \"built-by-ci\" (https://slsa.dev/provenance/v1):";
        let no_such_key = || Some(EvaluationError::Failed("No such key: repo".into()));
        let cases = [
            (
                failed(Some("built from example/app"), None),
                format!("{first} built from example/app."),
            ),
            (
                failed(Some("built from example/app."), None),
                format!("{first} built from example/app."),
            ),
            (
                failed(None, None),
                format!("{first} the condition predicate.repo == \"x\" is false."),
            ),
            (
                failed(Some("built from example/app"), no_such_key()),
                format!(
                    "{first} built from example/app (its condition predicate.repo == \"x\" could \
                     not be evaluated: No such key: repo)."
                ),
            ),
            (
                failed(None, Some(EvaluationError::TimedOut)),
                format!(
                    "{first} the condition predicate.repo == \"x\" could not be evaluated: it \
                     did not finish in time."
                ),
            ),
        ];
        for (failure, expected) in cases {
            assert_eq!(denial("r/a:1", &failure), expected);
            assert!(!denial("r/a:1", &failure).contains("not signed"));
            assert_eq!(failure.label(), "ConditionFailed");
        }
        assert_eq!(
            explanation(&failed(Some("built from example/app"), None)).as_deref(),
            Some("Built from example/app.")
        );
    }
}
