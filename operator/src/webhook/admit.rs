//! The decision for one request (docs/contract.md §2), from the policy in force, the
//! verifier and the credentials, within the time budgets. The webhook and `image-policy
//! check` both decide here.
//!
//! For a workload request: the policy state first (absent, loading, invalid), then the
//! namespace, then each image is read against the snapshot ([`classify`]: invalid, unmatched
//! or matched) before any registry is asked; the credential sources of the object are read
//! once for all its matched images, and the matched images are verified, a few at a time, in
//! order. Each image's outcome is then read under its mode ([`Snapshot::mode_of`]): in Warn a
//! denial is waived into a warning. The words are [`super::words`]'.

use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt as _;
use image_policy_crd::{ClusterImagePolicy, SecretRef};
use tokio::sync::watch;

use super::credentials::{CredentialSource, Owner, Sources};
use super::decision::{Decision, Outcome, Reason};
use super::review::{Request, ReviewError};
use super::words;
use crate::policy::{Entry, ImageName, NamedKey, PolicyState, ReferenceError, Snapshot};
use crate::verify::{Failure, FailureKind, Verdict, Verifier};

/// The bound on reading an object's registry credentials through the API server.
pub const CREDENTIALS_BUDGET: Duration = Duration::from_secs(2);

/// How many images of one request are verified at once. Enough for any real pod (a few
/// containers); a request that lists thousands is answered within the server's request
/// timeout or not at all (then refused: failurePolicy Fail), without a burst of registry and
/// API traffic.
pub const VERIFY_CONCURRENCY: usize = 16;

/// Settings of the decision that come from the command line.
#[derive(Debug, Clone, Copy, Default)]
pub struct Settings {
    /// Admit unmatched images with a warning.
    pub allow_unmatched_images: bool,
}

/// Decides requests: one per process, shared by every review (made by
/// [`super::Webhook::new`]).
pub struct Admission {
    pub(super) policy: watch::Receiver<PolicyState>,
    pub(super) verifier: Verifier,
    pub(super) credentials: Arc<dyn CredentialSource>,
    pub(super) settings: Settings,
    /// Image strings already parsed ([`Admission::image_name`]).
    pub(super) names: moka::sync::Cache<String, Arc<ImageName>>,
}

/// How many parsed image strings are kept. A cluster runs far fewer distinct ones; a flood
/// of new strings only evicts the least used, and costs each one parse, as without a cache.
pub const NAME_CACHE_CAPACITY: u64 = 4_096;

/// An image read against a snapshot, before any registry is asked.
#[derive(Debug)]
pub enum Classified<'a> {
    /// Decided already: an invalid reference, or an unmatched image.
    Decided(Outcome),
    /// Matched: to be verified with these entries' keys.
    Matched {
        /// The parsed image.
        image: Arc<ImageName>,
        /// The entries it matched, in policy order.
        entries: Vec<&'a Entry>,
    },
}

impl Admission {
    /// What decides, with an empty cache of parsed image strings.
    pub(super) fn new(
        policy: watch::Receiver<PolicyState>,
        verifier: Verifier,
        credentials: Arc<dyn CredentialSource>,
        settings: Settings,
    ) -> Self {
        Admission {
            policy,
            verifier,
            credentials,
            settings,
            names: moka::sync::Cache::new(NAME_CACHE_CAPACITY),
        }
    }

    /// `written` parsed as an image name, once per string while it is in use: parsing
    /// depends only on the string and on which registries are reached over plain HTTP,
    /// which is fixed for the process. Strings that are no image reference are parsed again
    /// each time (for their error).
    fn image_name(&self, written: &str) -> Result<Arc<ImageName>, ReferenceError> {
        if let Some(image) = self.names.get(written) {
            return Ok(image);
        }
        let plain = self.verifier.registry().plain_http();
        let image = Arc::new(ImageName::parse_with(written, plain)?);
        self.names.insert(written.to_owned(), Arc::clone(&image));
        Ok(image)
    }

    /// The decision for a request: a policy sent for validation, a workload, or something
    /// this webhook does not decide.
    pub async fn decide(&self, request: &Request, body: &[u8]) -> Result<Decision, ReviewError> {
        if request.kind == "ClusterImagePolicy" {
            return Ok(validate_policy(request, body));
        }
        let Some(images) = request.images_to_check()? else {
            return Ok(Decision::untouched());
        };
        // One consistent policy for the whole request, without holding the channel's lock.
        let policy = self.policy.borrow().clone();
        let snapshot = match (&policy, policy.enforced()) {
            (_, Some(snapshot)) => snapshot,
            (PolicyState::Absent, None) => {
                let mut decision = Decision::allow(Reason::NoPolicy);
                decision.warnings.push(words::NO_POLICY_WARNING.to_owned());
                return Ok(decision);
            }
            (PolicyState::Invalid(rejected), None) => {
                let message = words::policy_invalid(&rejected.problems);
                return Ok(Decision::denied(Reason::PolicyInvalid, message));
            }
            (_, None) => {
                let message = words::POLICY_LOADING.to_owned();
                return Ok(Decision::denied(Reason::PolicyLoading, message));
            }
        };
        if snapshot.is_excluded(&request.namespace) {
            let mut decision = Decision::allow(Reason::Excluded);
            decision.note = Some(words::excluded(&request.namespace));
            return Ok(decision);
        }
        if images.is_empty() {
            return Ok(Decision::untouched());
        }
        let owner = Owner::of(request);
        let mut outcomes = self.judge(snapshot, owner, images).await;
        // Image volumes are looked up for a refusal only: an admission says nothing of them.
        if outcomes.iter().any(|(_, o)| refuses(o)) {
            let volumes = request.change().image_volumes();
            outcomes = outcomes
                .into_iter()
                .map(|(image, o)| {
                    let o = mounted_as(o, volumes.mounting(&image));
                    (image, o)
                })
                .collect();
        }
        Ok(Decision::of(outcomes))
    }

    /// The outcome of each image of one object under `snapshot`, in order.
    pub async fn judge(
        &self,
        snapshot: &Snapshot,
        owner: Owner<'_>,
        images: Vec<String>,
    ) -> Vec<(String, Outcome)> {
        let allow_unmatched = self.settings.allow_unmatched_images;
        let classified: Vec<_> = images
            .iter()
            .map(|written| classify(snapshot, written, self.image_name(written), allow_unmatched))
            .collect();
        let sources = self.sources(owner, &classified).await;
        // Most objects run one image: verified as it is, without a stream to order one.
        let mut pairs = images.into_iter().zip(classified);
        if pairs.len() == 1
            && let Some((written, classified)) = pairs.next()
        {
            return vec![self.outcome(snapshot, &sources, written, classified).await];
        }
        // At most VERIFY_CONCURRENCY images at once, in order: a body can list thousands.
        // Collected first: a lazy `map` here trips the compiler's `Send` check of the future.
        let checks: Vec<_> = pairs
            .map(|(written, classified)| self.outcome(snapshot, &sources, written, classified))
            .collect();
        futures::stream::iter(checks)
            .buffered(VERIFY_CONCURRENCY)
            .collect()
            .await
    }

    /// The outcome of one image, verified with its entries' keys and attestations when it
    /// matched some.
    async fn outcome(
        &self,
        snapshot: &Snapshot,
        sources: &Sources,
        written: String,
        classified: Classified<'_>,
    ) -> (String, Outcome) {
        let outcome = match classified {
            Classified::Decided(outcome) => outcome,
            Classified::Matched { image, entries } => {
                let credentials = sources.for_image(&image, &entries);
                let keys = keys_of(snapshot, &entries);
                let needs = snapshot.attestations_of(&entries);
                let verdict = self
                    .verifier
                    .verify_with(&image, &keys, &needs, &credentials)
                    .await;
                outcome_of(&written, verdict).under(snapshot.mode_of(&entries))
            }
        };
        (written, outcome)
    }

    /// The outcome of `written` under `snapshot` when its verification failed with `failure`
    /// before it was made (the running check's bound passed): decided as ever when it needs
    /// no registry (unmatched, no reference); else that failure's denial, under its entries'
    /// mode.
    pub fn unverified(&self, snapshot: &Snapshot, written: &str, failure: &Failure) -> Outcome {
        let allow_unmatched = self.settings.allow_unmatched_images;
        match classify(snapshot, written, self.image_name(written), allow_unmatched) {
            Classified::Decided(outcome) => outcome,
            Classified::Matched { entries, .. } => {
                let verdict = Verdict::Denied(failure.clone());
                outcome_of(written, verdict).under(snapshot.mode_of(&entries))
            }
        }
    }

    /// The credential sources of `owner` and of the entries its images matched, read once
    /// and within [`CREDENTIALS_BUDGET`]: an API server slow to answer for Secrets must not
    /// eat the verification's budget, so past it the images are verified anonymously.
    async fn sources(&self, owner: Owner<'_>, classified: &[Classified<'_>]) -> Sources {
        let mut refs: Vec<&SecretRef> = Vec::new();
        let matched = classified.iter().filter_map(|c| match c {
            Classified::Matched { entries, .. } => Some(entries),
            Classified::Decided(_) => None,
        });
        let mut any = false;
        for entries in matched {
            any = true;
            for secret in entries.iter().filter_map(|e| e.secret_ref.as_ref()) {
                if !refs.contains(&secret) {
                    refs.push(secret);
                }
            }
        }
        if !any {
            return Sources::default();
        }
        let gather = self.credentials.gather(owner, &refs);
        tokio::time::timeout(CREDENTIALS_BUDGET, gather)
            .await
            .unwrap_or_else(|_| {
                tracing::warn!(target: "image-policy.credentials", "Reading pull secrets timed out; trying anonymous access");
                Sources::default()
            })
    }
}

/// Reads an image, as `written` and `parsed` from that, against a snapshot: matched, and
/// settled when it matches nothing or is no image reference, under the policy's own mode
/// (`spec.verification.mode`).
pub fn classify<'a>(
    snapshot: &'a Snapshot,
    written: &str,
    parsed: Result<Arc<ImageName>, ReferenceError>,
    allow_unmatched: bool,
) -> Classified<'a> {
    let image = match parsed {
        Ok(image) => image,
        Err(e) => {
            let denied = Outcome::Denied {
                message: words::invalid_reference_denial(written, &e.to_string()),
                reason: Reason::Failed(FailureKind::InvalidReference),
            };
            return Classified::Decided(denied.under(snapshot.mode()));
        }
    };
    let entries = snapshot.matching(&image);
    if !entries.is_empty() {
        return Classified::Matched { image, entries };
    }
    Classified::Decided(if allow_unmatched {
        Outcome::Warned(words::unmatched_warning(written))
    } else {
        let denied = Outcome::Denied {
            message: words::unmatched_denial(written),
            reason: Reason::Unmatched,
        };
        denied.under(snapshot.mode())
    })
}

/// The outcome of an image that the image volumes `volumes` mount: a denial, waived in Warn
/// mode or not, says which after its own words (docs/contract.md §2), so that a user knows
/// where to look. Anything else, and an image that no volume mounts, is as it was. Applied
/// to each object's images after they are decided, since the same image is mounted by other
/// volumes in another object (the running check decides it once for both).
pub fn mounted_as(outcome: Outcome, volumes: &[String]) -> Outcome {
    if volumes.is_empty() {
        return outcome;
    }
    match outcome {
        Outcome::Denied { message, reason } => Outcome::Denied {
            message: words::mounted_as(&message, volumes),
            reason,
        },
        Outcome::Waived { message, reason } => Outcome::Waived {
            message: words::mounted_as(&message, volumes),
            reason,
        },
        other @ (Outcome::Admitted { .. } | Outcome::Warned(_)) => other,
    }
}

/// Whether an outcome is a denial, waived in Warn mode or not.
fn refuses(outcome: &Outcome) -> bool {
    matches!(outcome, Outcome::Denied { .. } | Outcome::Waived { .. })
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

fn outcome_of(written: &str, verdict: Verdict) -> Outcome {
    match verdict {
        Verdict::Verified { digest, key } => Outcome::Admitted { digest, key },
        Verdict::Denied(failure) => Outcome::Denied {
            message: words::denial(written, &failure),
            reason: Reason::Failed(failure.label()),
        },
    }
}

/// Refuses a `ClusterImagePolicy` with another name or one that does not compile, listing
/// every problem with its field path. The only review that reads its object whole, from
/// `body` again: policies are few and rarely changed.
fn validate_policy(request: &Request, body: &[u8]) -> Decision {
    if !matches!(request.operation.as_str(), "CREATE" | "UPDATE") {
        return Decision::untouched();
    }
    match policy_problems(body) {
        None => Decision::untouched(),
        Some(problems) => Decision::denied(
            Reason::InvalidPolicy,
            words::invalid_policy(&request.name, &problems),
        ),
    }
}

/// What is wrong with the policy in `body`, as its refusal says it; `None` when it compiles.
fn policy_problems(body: &[u8]) -> Option<String> {
    let object = match Request::object_value(body) {
        Ok(object) => object,
        Err(e) => return Some(e.to_string()),
    };
    let policy = match serde_json::from_value::<ClusterImagePolicy>(object) {
        Ok(policy) => policy,
        Err(e) => return Some(e.to_string()),
    };
    Snapshot::compile(&policy)
        .err()
        .map(|problems| problems.to_string())
}

#[cfg(test)]
mod tests {
    #![allow(clippy::expect_used, clippy::panic)]

    use super::*;
    use crate::verify::VerifyConfig;
    use crate::webhook::credentials::Anonymous;

    const P256: &str = include_str!("../../tests/data/keys/p256.pub");

    fn snapshot(pattern: &str) -> Snapshot {
        let policy: ClusterImagePolicy = serde_json::from_value(serde_json::json!({
            "apiVersion": "signing.apps.tanzu.vmware.com/v1beta1",
            "kind": "ClusterImagePolicy",
            "metadata": {"name": "image-policy"},
            "spec": {"verification": {
                "keys": [{"name": "k", "publicKey": P256}],
                "images": [{"namePattern": pattern, "keys": [{"name": "k"}]}]}}
        }))
        .expect("policy");
        Snapshot::compile(&policy).expect("compiles")
    }

    fn admission() -> Admission {
        let (_, rx) = watch::channel(PolicyState::Absent);
        let verifier = Verifier::new(VerifyConfig::default()).expect("verifier");
        Admission::new(rx, verifier, Arc::new(Anonymous), Settings::default())
    }

    #[test]
    fn an_image_string_is_parsed_once_and_matched_against_each_policy_anew() {
        let admission = admission();
        let written = "r.example/app/web:1";
        let first = admission.image_name(written).expect("parses");
        let again = admission.image_name(written).expect("parses");
        assert!(
            Arc::ptr_eq(&first, &again),
            "the second reading is the cached one"
        );

        // What was cached is the name, not what a policy made of it.
        let matching = snapshot("r.example/app/*");
        let other = snapshot("r.example/other/*");
        let classify = |snapshot| classify(snapshot, written, admission.image_name(written), false);
        assert!(matches!(classify(&matching), Classified::Matched { .. }));
        let Classified::Decided(Outcome::Denied { reason, .. }) = classify(&other) else {
            panic!("unmatched under the other policy");
        };
        assert_eq!(reason, Reason::Unmatched);
    }

    #[test]
    fn a_string_that_is_no_reference_is_refused_each_time_and_not_kept() {
        let admission = admission();
        for _ in 0..2 {
            assert!(admission.image_name("r.example/App:1").is_err());
        }
        assert!(!admission.names.contains_key("r.example/App:1"));
    }
}
