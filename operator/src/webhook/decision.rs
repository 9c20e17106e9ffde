//! What was decided: per image an [`Outcome`], per request a [`Decision`], each with a
//! [`Reason`] from a closed set (the `reason` label of the admission metric and log line).

use image_policy_crd::Mode;

use super::words;
use crate::verify::FailureKind;

/// Why a request or an image was decided as it was.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Reason {
    /// Every checked image verified.
    Verified,
    /// An image matched no pattern (denied, or admitted with a warning).
    Unmatched,
    /// No `ClusterImagePolicy` named `image-policy` exists.
    NoPolicy,
    /// The request's namespace is excluded.
    Excluded,
    /// A request this webhook does not decide (another kind, operation or subresource, or
    /// an update that adds no image).
    NotChecked,
    /// The policy is not known yet.
    PolicyLoading,
    /// The policy does not compile and no valid version is in force.
    PolicyInvalid,
    /// A `ClusterImagePolicy` sent for validation is refused.
    InvalidPolicy,
    /// An image failed verification so.
    Failed(FailureKind),
}

impl Reason {
    /// The label: CamelCase, stable.
    pub fn as_str(self) -> &'static str {
        match self {
            Reason::Verified => "Verified",
            Reason::Unmatched => "Unmatched",
            Reason::NoPolicy => "NoPolicy",
            Reason::Excluded => "Excluded",
            Reason::NotChecked => "NotChecked",
            Reason::PolicyLoading => "PolicyLoading",
            Reason::PolicyInvalid => "PolicyInvalid",
            Reason::InvalidPolicy => "InvalidPolicy",
            Reason::Failed(kind) => kind.as_str(),
        }
    }
}

impl PartialEq<&str> for Reason {
    fn eq(&self, other: &&str) -> bool {
        self.as_str() == *other
    }
}

impl std::fmt::Display for Reason {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// What happened to one image.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// Verified, and admitted.
    Admitted {
        /// The digest verified.
        digest: String,
        /// The key that verified it.
        key: String,
    },
    /// Admitted without verification, with this warning.
    Warned(String),
    /// Refused, with this message.
    Denied {
        /// The message, as the user reads it.
        message: String,
        /// Its reason label (the metric's, the log line's and the Event's).
        reason: Reason,
    },
    /// Admitted although the policy would refuse it, because its mode is Warn: the denial
    /// becomes a warning.
    Waived {
        /// The denial's message, word for word.
        message: String,
        /// The denial's reason.
        reason: Reason,
    },
}

impl Outcome {
    /// Whether the image may run.
    pub fn admitted(&self) -> bool {
        !matches!(self, Outcome::Denied { .. })
    }

    /// The reason: `Verified`, `Unmatched`, or the denial's (waived or not).
    pub fn reason(&self) -> Reason {
        match self {
            Outcome::Admitted { .. } => Reason::Verified,
            Outcome::Warned(_) => Reason::Unmatched,
            Outcome::Denied { reason, .. } | Outcome::Waived { reason, .. } => *reason,
        }
    }

    /// The outcome under `mode`: in Warn a denial is waived; anything else is as it was.
    pub fn under(self, mode: Mode) -> Outcome {
        match (mode, self) {
            (Mode::Warn, Outcome::Denied { message, reason }) => {
                Outcome::Waived { message, reason }
            }
            (_, outcome) => outcome,
        }
    }
}

/// The decision for one request, before it is written back.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Decision {
    /// Whether the request is admitted (Warn-mode waivers included: see [`Decision::waived`]).
    pub allowed: bool,
    /// The denial message (every failing image), when denied.
    pub message: Option<String>,
    /// Warnings for the user.
    pub warnings: Vec<String>,
    /// A line for the log, when the decision deserves one beyond the verdict.
    pub note: Option<String>,
    /// Why: `Verified`, `NoPolicy`, `Excluded`, `NotChecked`, `Unmatched`, or the first
    /// denial's.
    pub reason: Reason,
    /// Every image decided, with its outcome.
    pub outcomes: Vec<(String, Outcome)>,
}

impl Decision {
    /// Whether the request is admitted only because of Warn mode: admitted, with an image
    /// that the policy would have refused.
    pub fn waived(&self) -> bool {
        self.allowed
            && self
                .outcomes
                .iter()
                .any(|(_, o)| matches!(o, Outcome::Waived { .. }))
    }

    /// The denial that Warn mode waived, naming every waived image in order, as an
    /// enforced denial names every refused one; `None` when nothing was waived.
    pub fn waived_denial(&self) -> Option<String> {
        let messages: Vec<&str> = self
            .outcomes
            .iter()
            .filter_map(|(_, o)| match o {
                Outcome::Waived { message, .. } => Some(message.as_str()),
                _ => None,
            })
            .collect();
        (!messages.is_empty()).then(|| messages.join(" "))
    }

    /// Admitted for `reason`, with nothing to say.
    pub fn allow(reason: Reason) -> Self {
        Decision {
            allowed: true,
            message: None,
            warnings: Vec::new(),
            note: None,
            reason,
            outcomes: Vec::new(),
        }
    }

    /// Admitted without a look: a request this webhook does not decide.
    pub fn untouched() -> Self {
        Self::allow(Reason::NotChecked)
    }

    /// Refused with one message.
    pub fn denied(reason: Reason, message: String) -> Self {
        Decision {
            allowed: false,
            message: Some(message),
            ..Self::allow(reason)
        }
    }

    /// The decision of a request from the outcomes of its images: admitted when every
    /// image is; the denial names every refused image in order, the warnings every warned
    /// or waived one, in order, and the reason is the first denial's (else the first waived
    /// denial's, else `Unmatched` for a warning, else `Verified`).
    pub fn of(outcomes: Vec<(String, Outcome)>) -> Self {
        let mut warnings = Vec::new();
        let mut denials = Vec::new();
        let (mut denied, mut waived, mut warned) = (None, None, false);
        for (_, outcome) in &outcomes {
            match outcome {
                Outcome::Admitted { .. } => {}
                Outcome::Warned(warning) => {
                    warnings.push(warning.clone());
                    warned = true;
                }
                Outcome::Denied { message, reason } => {
                    denied = denied.or(Some(*reason));
                    denials.push(message.clone());
                }
                Outcome::Waived { message, reason } => {
                    waived = waived.or(Some(*reason));
                    warnings.push(words::waived(message));
                }
            }
        }
        let fallback = if warned {
            Reason::Unmatched
        } else {
            Reason::Verified
        };
        let reason = denied.or(waived).unwrap_or(fallback);
        let allowed = denials.is_empty();
        Decision {
            allowed,
            message: (!allowed).then(|| denials.join(" ")),
            warnings,
            note: None,
            reason,
            outcomes,
        }
    }
}

#[cfg(test)]
mod tests {
    use strum::VariantArray as _;

    use super::*;

    #[test]
    fn every_image_counts_and_the_first_denial_gives_the_reason() {
        let denied = |message: &str, kind| Outcome::Denied {
            message: message.to_owned(),
            reason: Reason::Failed(kind),
        };
        let decision = Decision::of(vec![
            ("a".into(), Outcome::Warned("w".into())),
            ("b".into(), denied("B.", FailureKind::NotSigned)),
            ("c".into(), denied("C.", FailureKind::Timeout)),
        ]);
        assert!(!decision.allowed);
        assert_eq!(decision.message.as_deref(), Some("B. C."));
        assert_eq!(decision.warnings, ["w"]);
        assert_eq!(decision.reason, "NotSigned");
        let warned = Decision::of(vec![("a".into(), Outcome::Warned("w".into()))]);
        assert!(warned.allowed && warned.reason == Reason::Unmatched);
        assert_eq!(Decision::of(Vec::new()).reason, Reason::Verified);
        let refused = Decision::denied(Reason::PolicyLoading, "m".into());
        assert!(!refused.allowed && refused.message.as_deref() == Some("m"));
    }

    #[test]
    fn in_warn_a_denial_is_waived_into_a_warning_with_its_words() {
        let denied = |image: &str| Outcome::Denied {
            message: format!("The image: {image} is not signed."),
            reason: Reason::Failed(FailureKind::NotSigned),
        };
        let verified = Outcome::Admitted {
            digest: "sha256:d".into(),
            key: "k".into(),
        };
        assert_eq!(verified.clone().under(Mode::Warn), verified);
        assert_eq!(denied("a").under(Mode::Enforce), denied("a"));
        let waived = denied("a").under(Mode::Warn);
        assert!(waived.admitted());
        assert_eq!(waived.reason(), "NotSigned");
        let decision = Decision::of(vec![
            ("v".into(), verified.clone()),
            ("u".into(), Outcome::Warned("busybox did not match.".into())),
            ("a".into(), waived.clone()),
        ]);
        assert!(decision.allowed && decision.waived());
        assert_eq!(decision.message, None);
        assert_eq!(
            decision.waived_denial().as_deref(),
            Some("The image: a is not signed.")
        );
        assert_eq!(decision.reason, "NotSigned", "the waived denial's reason");
        assert_eq!(
            decision.warnings,
            [
                "busybox did not match.".to_owned(),
                words::waived("The image: a is not signed."),
            ]
        );
        // One image refused in Enforce refuses the request; the waived one still warns.
        let mixed = Decision::of(vec![("a".into(), waived), ("b".into(), denied("b"))]);
        assert!(!mixed.allowed && !mixed.waived());
        assert_eq!(
            mixed.message.as_deref(),
            Some("The image: b is not signed.")
        );
        assert_eq!(mixed.warnings.len(), 1);
        // Nothing waived: no extra warning, as in Enforce.
        let clean = Decision::of(vec![("v".into(), verified)]);
        assert!(clean.allowed && !clean.waived() && clean.warnings.is_empty());
        assert_eq!(clean.waived_denial(), None);
    }

    #[test]
    fn reasons_are_distinct_camel_case() {
        let mut all = vec![
            Reason::Verified,
            Reason::Unmatched,
            Reason::NoPolicy,
            Reason::Excluded,
            Reason::NotChecked,
            Reason::PolicyLoading,
            Reason::PolicyInvalid,
            Reason::InvalidPolicy,
        ];
        all.extend(FailureKind::VARIANTS.iter().copied().map(Reason::Failed));
        let names: std::collections::HashSet<_> = all.iter().map(|r| r.as_str()).collect();
        assert_eq!(names.len(), all.len());
        assert!(
            names
                .iter()
                .all(|n| n.chars().all(|c| c.is_ascii_alphabetic()))
        );
    }
}
