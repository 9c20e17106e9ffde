//! The decision for each image (SPEC §2), shared by the webhook and `image-policy check`, and
//! the exact words users see.

use crate::policy::{Entry, ImageName, NamedKey, Snapshot};
use crate::verify::{Credential, Failure, Verdict, Verifier, denial_message};

/// The warning when no policy exists (exact, from the original).
pub const NO_POLICY_WARNING: &str = "clusterimagepolicies.signing.apps.tanzu.vmware.com \"image-policy\" not found. Image policy enforcement was not applied.";

/// The log line for an excluded namespace (exact, from the original).
pub fn excluded_message(namespace: &str) -> String {
    format!("{namespace} is excluded. The ImagePolicy will not be applied.")
}

/// The warning for an unmatched image admitted by `allowUnmatchedImages` (exact).
pub fn unmatched_warning(image: &str) -> String {
    format!(
        "{image} did not match any image policies. Container will be created as AllowUnmatchedImages flag is true."
    )
}

/// The denial of an unmatched image (exact).
pub fn unmatched_denial(image: &str) -> String {
    format!("Could not verify against any image policies for container image: {image}.")
}

/// The denial of an image string that is not an image reference.
pub fn invalid_reference_denial(image: &str, error: &str) -> String {
    format!("The image: {image} is not a valid image reference: {error}.")
}

/// What happened to one image.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// Verified.
    Admitted {
        /// The digest verified.
        digest: String,
        /// The key that verified it.
        key: String,
    },
    /// Admitted without verification, with this warning.
    Warned(String),
    /// Refused, with this message and a fixed label for metrics.
    Denied {
        /// The message, as the user reads it.
        message: String,
        /// The fixed reason label.
        label: &'static str,
    },
}

impl Outcome {
    /// Whether the image may run.
    pub fn admitted(&self) -> bool {
        !matches!(self, Outcome::Denied { .. })
    }

    /// The fixed label: `Verified`, `Unmatched`, or the denial's.
    pub fn label(&self) -> &'static str {
        match self {
            Outcome::Admitted { .. } => "Verified",
            Outcome::Warned(_) => "Unmatched",
            Outcome::Denied { label, .. } => label,
        }
    }
}

/// An image read against a snapshot, before any registry is asked.
#[derive(Debug)]
pub enum Classified<'a> {
    /// Decided already: an invalid reference, or an unmatched image.
    Decided(Outcome),
    /// Matched: to be verified with these entries' keys.
    Matched {
        /// The parsed image.
        image: ImageName,
        /// The entries it matched, in policy order.
        entries: Vec<&'a Entry>,
    },
}

/// Steps 3's first half: parse, match, and settle unmatched images.
pub fn classify<'a>(
    snapshot: &'a Snapshot,
    written: &str,
    allow_unmatched: bool,
) -> Classified<'a> {
    let image = match ImageName::parse(written) {
        Ok(image) => image,
        Err(e) => {
            return Classified::Decided(Outcome::Denied {
                message: invalid_reference_denial(written, &e.to_string()),
                label: "InvalidReference",
            });
        }
    };
    let entries = snapshot.matching(&image);
    if !entries.is_empty() {
        return Classified::Matched { image, entries };
    }
    Classified::Decided(if allow_unmatched {
        Outcome::Warned(unmatched_warning(written))
    } else {
        Outcome::Denied {
            message: unmatched_denial(written),
            label: "Unmatched",
        }
    })
}

/// The keys of all matched entries, each once ("any key of any matched entry").
pub fn keys_of<'a>(snapshot: &'a Snapshot, entries: &[&'a Entry]) -> Vec<&'a NamedKey> {
    let mut keys: Vec<&NamedKey> = Vec::new();
    for key in entries.iter().flat_map(|e| snapshot.keys_of(e)) {
        if !keys.iter().any(|k| std::ptr::eq(*k, key)) {
            keys.push(key);
        }
    }
    keys
}

/// Step 3's second half: verify a matched image.
pub async fn verify_matched(
    verifier: &Verifier,
    snapshot: &Snapshot,
    written: &str,
    image: &ImageName,
    entries: &[&Entry],
    credentials: &[Credential],
) -> Outcome {
    let keys = keys_of(snapshot, entries);
    match verifier.verify(image, &keys, credentials).await {
        Verdict::Verified { digest, key } => Outcome::Admitted { digest, key },
        Verdict::Denied(failure) => denied(written, &failure),
    }
}

fn denied(written: &str, failure: &Failure) -> Outcome {
    Outcome::Denied {
        message: denial_message(written, failure),
        label: failure.label(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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
            excluded_message("kube-system"),
            "kube-system is excluded. The ImagePolicy will not be applied."
        );
        let mismatch = Failure::SignatureMismatch {
            only_other_digests: false,
        };
        assert_eq!(
            denial_message("gcr.io/projectsigstore/cosign:v0.3.0", &mismatch),
            "The image: gcr.io/projectsigstore/cosign:v0.3.0 is not signed."
        );
    }
}
