//! Every sentence a user reads from an admission: denials, warnings and their second
//! sentences, and the log line of an excluded namespace. The messages of the original, VMware
//! Tanzu's Image Policy Webhook, are matched byte for byte (docs/contract.md §2); the tests
//! below pin them.

mod attestations;

use crate::policy::Problems;
use crate::verify::{Failure, Format, Rejection};

/// The warning when no policy exists (exact: the original Image Policy Webhook's).
pub const NO_POLICY_WARNING: &str = "clusterimagepolicies.signing.apps.tanzu.vmware.com \"image-policy\" not found. Image policy enforcement was not applied.";

/// The denial of every image while the policy is not loaded yet.
pub const POLICY_LOADING: &str = "The image policy is not loaded yet; try again in a moment.";

/// The log line for an excluded namespace (exact: the original Image Policy Webhook's).
pub fn excluded(namespace: &str) -> String {
    format!("{namespace} is excluded. The ImagePolicy will not be applied.")
}

/// The warning for an unmatched image admitted by `allowUnmatchedImages` (exact).
pub fn unmatched_warning(image: &str) -> String {
    format!(
        "{image} did not match any image policies. Container will be created as AllowUnmatchedImages flag is true."
    )
}

/// The warning for an image admitted in Warn mode although the policy would refuse it: the
/// denial word for word, then why it is admitted all the same (in the manner of the original
/// Image Policy Webhook's [`unmatched_warning`]), so that a search for the denial finds its
/// warning too.
pub fn waived(denial: &str) -> String {
    format!("{denial} Container will be created as the image policy is in Warn mode.")
}

/// The denial of an unmatched image (exact).
pub fn unmatched_denial(image: &str) -> String {
    format!("Could not verify against any image policies for container image: {image}.")
}

/// The denial of an image string that is not an image reference.
pub fn invalid_reference_denial(image: &str, error: &str) -> String {
    format!("The image: {image} is not a valid image reference: {error}.")
}

/// The denial of an image that did not verify (docs/contract.md §2): for a signature, the
/// original Image Policy Webhook's sentence and the second one that says why ([`not_signed`]);
/// for an attestation its policy requires, a sentence that names it, so that an image signed
/// but lacking one never reads as not signed (docs/contract.md §3, attestations).
pub fn denial(image: &str, failure: &Failure) -> String {
    match failure {
        Failure::AttestationMissing(missing) => attestations::missing(image, missing),
        Failure::ConditionFailed(failed) => attestations::failed(image, failed),
        _ => not_signed(image, failure),
    }
}

/// The denial of an image whose signature did not verify: the original Image Policy
/// Webhook's sentence, and the second sentence that says why when there is one.
pub fn not_signed(image: &str, failure: &Failure) -> String {
    match explanation(failure) {
        Some(why) => format!("The image: {image} is not signed. {why}"),
        None => format!("The image: {image} is not signed."),
    }
}

/// The sentence that follows a denial's first one, if any: `The image: <image> is not
/// signed.`, or, for a required attestation, `... does not have the attestation ...`. For a
/// condition that is not met, what its denial says after the colon, as a sentence.
pub fn explanation(failure: &Failure) -> Option<String> {
    Some(match failure {
        Failure::ImageNotFound => "The image was not found in its registry.".into(),
        Failure::NotSigned { digest } => {
            let hex = digest.strip_prefix("sha256:").unwrap_or(digest);
            format!(
                "No signature was found for {digest}: none at its cosign signature tag sha256-{hex}.sig, nor among its OCI referrers (the referrers API or the tag sha256-{hex})."
            )
        }
        Failure::Rejected(rejection) => return rejected(rejection),
        Failure::Unauthorized { host } => {
            format!("The registry {host} refused the credentials.")
        }
        Failure::Unreachable(e) => sentence(&e.to_string()),
        Failure::TimedOut { budget } => {
            format!("Verification timed out after {}s.", budget.as_secs_f32())
        }
        Failure::AttestationMissing(missing) => attestations::why_missing(missing),
        Failure::ConditionFailed(failed) => sentence(&attestations::detail(failed)),
    })
}

/// The sentence that says why the signatures found do not count, if any.
///
/// A legacy signature that no key verifies has none: that is the case the original Image
/// Policy Webhook's documentation shows, whose words users match exactly (docs/contract.md
/// §2). One that cannot be read is said as one no key verifies.
fn rejected(rejection: &Rejection) -> Option<String> {
    Some(match rejection {
        Rejection::NoKeyVerifies(Format::Legacy)
        | Rejection::Unreadable {
            format: Format::Legacy,
            ..
        } => return None,
        Rejection::NoKeyVerifies(Format::Bundle)
        | Rejection::Unreadable {
            format: Format::Bundle,
            ..
        } => "Its Sigstore bundle is signed by none of the keys of the policy.".into(),
        Rejection::OtherDigest => "Its signatures are for other images, not for its digest.".into(),
        Rejection::Attestation { predicate_type } => format!(
            "It carries only attestations ({predicate_type}), and an attestation is not a signature."
        ),
        Rejection::NoLogEntry { root, why } => format!(
            "Its signature has no transparency log entry that verifies against the trusted root {root}: {}.",
            why.trim_end_matches('.')
        ),
        Rejection::RootUnavailable { root, why } => format!(
            "The trusted root {root} that its key requires cannot be used: {}.",
            why.trim_end_matches('.')
        ),
        Rejection::UntrustedCertificate { root, why } => format!(
            "Its signature's certificate does not chain to a certificate authority of the trusted root {root} valid at the signing time: {}.",
            why.trim_end_matches('.')
        ),
        Rejection::IdentityMismatch { subject, issuer } => format!(
            "Its signature's certificate names the subject {subject} of the issuer {issuer}, which no identity of the policy matches."
        ),
        Rejection::NoSigningTime { root, why } => format!(
            "Its signature has no proof of its signing time (a transparency log entry or a timestamp) that verifies against the trusted root {root}: {}.",
            why.trim_end_matches('.')
        ),
    })
}

/// A denial of an image that image volumes mount (`volumes[].image.reference`), and the
/// sentence that says which, after the denial's own words: the original's sentence about the
/// image is kept, and a user is told where to look, since a volume's image is written nowhere
/// near a container's (docs/contract.md §2).
pub fn mounted_as(denial: &str, volumes: &[String]) -> String {
    let quoted: Vec<String> = volumes.iter().map(|v| format!("{v:?}")).collect();
    match quoted.as_slice() {
        [] => denial.to_owned(),
        [one] => format!("{denial} It is mounted as the image volume {one}."),
        several => format!(
            "{denial} It is mounted as the image volumes {}.",
            several.join(", ")
        ),
    }
}

/// The denial of every image while the policy does not compile and nothing valid is in force.
pub fn policy_invalid(problems: &Problems) -> String {
    format!(
        "The ClusterImagePolicy image-policy is invalid, so no image can be verified: {problems}"
    )
}

/// The refusal of a `ClusterImagePolicy` sent for validation.
pub fn invalid_policy(name: &str, problems: &str) -> String {
    format!("ClusterImagePolicy {name:?} is invalid: {problems}")
}

/// The reason of the Event recorded for an object refused (docs/contract.md §6).
pub const REFUSED_EVENT: &str = "Refused";

/// The reason of the Event recorded for an object admitted only because of Warn mode.
pub const WARNED_EVENT: &str = "AdmittedInWarnMode";

/// The action of both Events: what the webhook did to the object.
pub const EVENT_ACTION: &str = "Admission";

/// The note of an Event: the object (`<kind> <namespace>/<name>`, its `generateName` when it
/// has no name yet, as the API server's own errors name it), the images refused (or waived),
/// the reason label, and the denial word for word, so that a search for the denial finds
/// its Event too.
pub fn event_note(
    refused: bool,
    object: &str,
    images: &[String],
    reason: &str,
    denial: &str,
) -> String {
    let with = match images {
        [] => String::new(),
        [image] => format!(" with image {image}"),
        images => format!(" with images {}", images.join(", ")),
    };
    if refused {
        format!("Refused {object}{with} ({reason}): {denial}")
    } else {
        format!("Admitted {object}{with} in Warn mode ({reason}): {denial}")
    }
}

/// An object as an Event's note names it: `<kind> <namespace>/<name>`.
pub fn event_object(kind: &str, namespace: &str, name: &str) -> String {
    match (namespace, name) {
        ("", name) => format!("{kind} {name}"),
        (namespace, "") => format!("{kind} in namespace {namespace}"),
        (namespace, name) => format!("{kind} {namespace}/{name}"),
    }
}

/// `text` as a sentence: its first letter upper-case, one full stop at its end.
fn sentence(text: &str) -> String {
    let mut out = String::with_capacity(text.len() + 1);
    let mut chars = text.chars();
    if let Some(first) = chars.next() {
        out.extend(first.to_uppercase());
    }
    out.push_str(chars.as_str().trim_end_matches('.'));
    out.push('.');
    out
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;
    use crate::verify::RegistryError;

    #[test]
    fn the_originals_words() {
        assert_eq!(
            NO_POLICY_WARNING,
            "clusterimagepolicies.signing.apps.tanzu.vmware.com \"image-policy\" not found. Image policy enforcement was not applied."
        );
        assert_eq!(
            unmatched_warning("busybox"),
            "busybox did not match any image policies. Container will be created as AllowUnmatchedImages flag is true."
        );
        assert_eq!(
            unmatched_denial("busybox"),
            "Could not verify against any image policies for container image: busybox."
        );
        assert_eq!(
            excluded("kube-system"),
            "kube-system is excluded. The ImagePolicy will not be applied."
        );
        let mismatch = Failure::Rejected(Rejection::NoKeyVerifies(Format::Legacy));
        assert_eq!(
            not_signed("gcr.io/projectsigstore/cosign:v0.3.0", &mismatch),
            "The image: gcr.io/projectsigstore/cosign:v0.3.0 is not signed."
        );
    }

    #[test]
    fn a_waived_denial_keeps_its_words_and_says_why_it_is_admitted() {
        let denial = not_signed(
            "r/a:1",
            &Failure::Rejected(Rejection::NoKeyVerifies(Format::Legacy)),
        );
        assert_eq!(
            waived(&denial),
            "The image: r/a:1 is not signed. Container will be created as the image policy is in Warn mode."
        );
        assert_eq!(
            waived(&unmatched_denial("busybox")),
            "Could not verify against any image policies for container image: busybox. Container will be created as the image policy is in Warn mode."
        );
    }

    #[test]
    fn an_image_volumes_denial_keeps_the_originals_words_and_names_the_volumes() {
        let denial = not_signed(
            "r/models:1",
            &Failure::Rejected(Rejection::NoKeyVerifies(Format::Legacy)),
        );
        assert_eq!(
            mounted_as(&denial, &["models".into()]),
            "The image: r/models:1 is not signed. It is mounted as the image volume \"models\"."
        );
        assert_eq!(
            mounted_as(&unmatched_denial("busybox"), &["a".into(), "b".into()]),
            "Could not verify against any image policies for container image: busybox. It is mounted as the image volumes \"a\", \"b\"."
        );
        assert_eq!(mounted_as(&denial, &[]), denial);
        // In Warn mode, the denial with its volume, word for word, then why it is admitted.
        assert_eq!(
            waived(&mounted_as(&denial, &["models".into()])),
            "The image: r/models:1 is not signed. It is mounted as the image volume \"models\". Container will be created as the image policy is in Warn mode."
        );
        // A name is quoted with its escapes: it cannot end the sentence early.
        assert_eq!(
            mounted_as("D.", &["a\". Fine".into()]),
            "D. It is mounted as the image volume \"a\\\". Fine\"."
        );
    }

    #[test]
    fn second_sentences_say_why() {
        let unreachable = Failure::Unreachable(RegistryError::Unreachable {
            host: "r".into(),
            detail: "connection refused".into(),
        });
        assert_eq!(
            not_signed("r/a:1", &unreachable),
            "The image: r/a:1 is not signed. The registry r is unreachable: connection refused."
        );
        let timed_out = Failure::TimedOut {
            budget: Duration::from_millis(8500),
        };
        assert_eq!(
            explanation(&timed_out).as_deref(),
            Some("Verification timed out after 8.5s.")
        );
    }

    /// Every failure of a signature lookup, in the words a user reads. The matches have no
    /// wildcard, so that a new failure cannot be added without its sentence here.
    #[test]
    fn every_failure_has_its_words() {
        let digest = format!("sha256:{}", "ab".repeat(32));
        let hex = "ab".repeat(32);
        let rejections = [
            Rejection::OtherDigest,
            Rejection::NoKeyVerifies(Format::Legacy),
            Rejection::Unreadable {
                format: Format::Legacy,
                why: "w".into(),
            },
            Rejection::NoKeyVerifies(Format::Bundle),
            Rejection::Unreadable {
                format: Format::Bundle,
                why: "w".into(),
            },
            Rejection::Attestation {
                predicate_type: "https://slsa.dev/provenance/v1".into(),
            },
            Rejection::NoLogEntry {
                root: "sigstore-public-good".into(),
                why: "the bundle has no transparency log entry.".into(),
            },
            Rejection::RootUnavailable {
                root: "corp".into(),
                why: "ConfigMap corp-root has no key \"trusted_root.json\"".into(),
            },
            Rejection::UntrustedCertificate {
                root: "corp".into(),
                why: "no trusted certificate authority is valid at 2026-01-01T00:00:00Z".into(),
            },
            Rejection::IdentityMismatch {
                subject: "https://github.com/o/r/.github/workflows/x.yml@refs/heads/main".into(),
                issuer: "https://token.actions.githubusercontent.com".into(),
            },
            Rejection::NoSigningTime {
                root: "corp".into(),
                why: "no verified timestamp: none".into(),
            },
        ];
        let cases = [
            Failure::ImageNotFound,
            Failure::NotSigned {
                digest: digest.clone(),
            },
            Failure::Unauthorized { host: "r".into() },
            Failure::TimedOut {
                budget: Duration::from_secs(8),
            },
        ]
        .into_iter()
        .chain(rejections.into_iter().map(Failure::Rejected));
        for failure in cases {
            let expected: Option<String> = match &failure {
                Failure::ImageNotFound => Some("The image was not found in its registry.".into()),
                Failure::NotSigned { .. } => Some(format!(
                    "No signature was found for {digest}: none at its cosign signature tag \
                     sha256-{hex}.sig, nor among its OCI referrers (the referrers API or the tag \
                     sha256-{hex})."
                )),
                Failure::Rejected(rejection) => match rejection {
                    Rejection::OtherDigest => {
                        Some("Its signatures are for other images, not for its digest.".into())
                    }
                    // The original Image Policy Webhook's case: its sentence alone.
                    Rejection::NoKeyVerifies(Format::Legacy)
                    | Rejection::Unreadable {
                        format: Format::Legacy,
                        ..
                    } => None,
                    Rejection::NoKeyVerifies(Format::Bundle)
                    | Rejection::Unreadable {
                        format: Format::Bundle,
                        ..
                    } => Some(
                        "Its Sigstore bundle is signed by none of the keys of the policy.".into(),
                    ),
                    Rejection::Attestation { .. } => Some(
                        "It carries only attestations (https://slsa.dev/provenance/v1), and an \
                         attestation is not a signature."
                            .into(),
                    ),
                    Rejection::NoLogEntry { .. } => Some(
                        "Its signature has no transparency log entry that verifies against the \
                         trusted root sigstore-public-good: the bundle has no transparency log \
                         entry."
                            .into(),
                    ),
                    Rejection::RootUnavailable { .. } => Some(
                        "The trusted root corp that its key requires cannot be used: ConfigMap \
                         corp-root has no key \"trusted_root.json\"."
                            .into(),
                    ),
                    Rejection::UntrustedCertificate { .. } => Some(
                        "Its signature's certificate does not chain to a certificate authority \
                         of the trusted root corp valid at the signing time: no trusted \
                         certificate authority is valid at 2026-01-01T00:00:00Z."
                            .into(),
                    ),
                    Rejection::IdentityMismatch { .. } => Some(
                        "Its signature's certificate names the subject \
                         https://github.com/o/r/.github/workflows/x.yml@refs/heads/main of the \
                         issuer https://token.actions.githubusercontent.com, which no identity \
                         of the policy matches."
                            .into(),
                    ),
                    Rejection::NoSigningTime { .. } => Some(
                        "Its signature has no proof of its signing time (a transparency log \
                         entry or a timestamp) that verifies against the trusted root corp: no \
                         verified timestamp: none."
                            .into(),
                    ),
                },
                Failure::Unauthorized { .. } => {
                    Some("The registry r refused the credentials.".into())
                }
                Failure::Unreachable(_) => unreachable!("tested above"),
                Failure::TimedOut { .. } => Some("Verification timed out after 8s.".into()),
                Failure::AttestationMissing(_) | Failure::ConditionFailed(_) => {
                    unreachable!("tested in attestations::tests")
                }
            };
            assert_eq!(explanation(&failure), expected, "{failure:?}");
            assert_eq!(denial("r/a:1", &failure), not_signed("r/a:1", &failure));
            let full = not_signed("r/a:1", &failure);
            assert!(
                full.starts_with("The image: r/a:1 is not signed."),
                "{full}"
            );
        }
    }

    #[test]
    fn an_events_note_names_the_object_the_images_and_the_denial() {
        let pod = event_object("Pod", "team-a", "web-7d9c5b-");
        assert_eq!(pod, "Pod team-a/web-7d9c5b-");
        assert_eq!(event_object("Pod", "team-a", ""), "Pod in namespace team-a");
        let denial = "The image: r/a:1 is not signed.";
        assert_eq!(
            event_note(true, &pod, &["r/a:1".into()], "NotSigned", denial),
            "Refused Pod team-a/web-7d9c5b- with image r/a:1 (NotSigned): The image: r/a:1 is not signed."
        );
        assert_eq!(
            event_note(
                false,
                &pod,
                &["r/a:1".into(), "r/b:2".into()],
                "Unmatched",
                denial
            ),
            "Admitted Pod team-a/web-7d9c5b- with images r/a:1, r/b:2 in Warn mode (Unmatched): The image: r/a:1 is not signed."
        );
        assert_eq!(
            event_note(true, &pod, &[], "PolicyLoading", POLICY_LOADING),
            "Refused Pod team-a/web-7d9c5b- (PolicyLoading): The image policy is not loaded yet; try again in a moment."
        );
    }

    #[test]
    fn sentences_are_capitalised_and_stopped_once() {
        assert_eq!(sentence(""), ".");
        assert_eq!(sentence("é."), "É.");
        assert_eq!(sentence("refused..."), "Refused.");
    }
}
