//! The status of a `ClusterImagePolicy`: its `Ready` condition and counts, computed from the
//! object and from what the publisher enforces. Pure: the reconciler does the reading and the
//! writing.
//!
//! - `image-policy` that compiles: `True/PolicyActive`, "Enforcing N keys and M patterns",
//!   followed, when any of it is in Warn mode, by the images for which a refusal is only a
//!   warning;
//!   when a `secretRef` names a Secret that does not exist, `False/SecretNotFound` although
//!   the policy *is* enforced (a missing credential only matters for private registries, and
//!   the other credential sources are still tried), and the message says both.
//! - another name: `False/InvalidName` with every problem; never enforced.
//! - `image-policy` that does not compile: `False/<first problem's reason>` with every
//!   problem, and what is enforced instead: the last valid version (by generation), or
//!   nothing, in which case every workload is denied.
//!
//! `status.keys` and `status.patterns` count what is *enforced* because of this object (the
//! CRD documents them as "in the enforced policy"): the compiled policy, the last valid one
//! that an invalid edit left in force, or 0 when nothing of it is enforced.

use image_policy_crd::{
    CONDITION_READY, ClusterImagePolicy, ClusterImagePolicyStatus, Mode, POLICY_NAME, Reason,
};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, Time};
use kube::ResourceExt;

use crate::policy::{Problem, Problems, Snapshot};

/// The longest message a `metav1.Condition` accepts.
const MAX_MESSAGE_BYTES: usize = 32_768;

/// A Secret that a `secretRef` of the policy names.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct SecretUse {
    /// The field path of the `secretRef`.
    pub path: String,
    /// The Secret's namespace (the operator's own when the reference names none).
    pub namespace: String,
    /// The Secret's name.
    pub name: String,
}

impl SecretUse {
    /// The problem to report when the Secret does not exist.
    pub fn not_found(&self) -> Problem {
        Problem {
            reason: Reason::SecretNotFound,
            path: self.path.clone(),
            message: format!(
                "Secret {}/{} does not exist; create it or fix the reference",
                self.namespace, self.name
            ),
        }
    }
}

/// The Secrets that a compiled policy's entries refer to, in the policy's order.
pub fn secret_uses(snapshot: &Snapshot, operator_namespace: &str) -> Vec<SecretUse> {
    snapshot
        .entries()
        .iter()
        .filter_map(|entry| {
            let secret = entry.secret_ref.as_ref()?;
            Some(SecretUse {
                path: format!("spec.verification.images[{}].secretRef", entry.index),
                namespace: secret
                    .namespace
                    .clone()
                    .filter(|ns| !ns.is_empty())
                    .unwrap_or_else(|| operator_namespace.to_owned()),
                name: secret.name.clone(),
            })
        })
        .collect()
}

/// What the `Ready` condition and the counts say, before times and generations.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Assessment {
    /// The condition's status.
    pub ready: bool,
    /// The condition's reason.
    pub reason: Reason,
    /// The condition's message.
    pub message: String,
    /// `status.keys`.
    pub keys: usize,
    /// `status.patterns`.
    pub patterns: usize,
}

/// Assesses `policy`, compiled as `compiled`.
///
/// `enforced` is what the publisher enforces for `image-policy` (`None`: nothing valid), and
/// is only consulted when `compiled` failed; `missing_secrets` are the problems of Secrets
/// that the compiled policy names and that do not exist.
pub fn assess(
    policy: &ClusterImagePolicy,
    compiled: Result<&Snapshot, &Problems>,
    enforced: Option<&Snapshot>,
    missing_secrets: &[Problem],
) -> Assessment {
    match compiled {
        Ok(snapshot) => {
            let (keys, patterns) = counts(snapshot);
            let enforcing = enforcing(keys, patterns) + &warn_scope(snapshot);
            let roots = snapshot.unavailable_roots();
            if missing_secrets.is_empty() && roots.is_empty() {
                return Assessment {
                    ready: true,
                    reason: Reason::PolicyActive,
                    message: enforcing,
                    keys,
                    patterns,
                };
            }
            // A trusted root that cannot be used is worse than a missing Secret: the keys that
            // need it admit nothing. Its reason comes first.
            let (reason, consequence) = if roots.is_empty() {
                (
                    Reason::SecretNotFound,
                    "images that need these registry credentials are verified with the other credential sources",
                )
            } else {
                (
                    Reason::TrustedRootUnavailable,
                    "the keys that need an unavailable trusted root verify no image until it can be read",
                )
            };
            let problems = Problems(roots.iter().chain(missing_secrets).cloned().collect());
            Assessment {
                ready: false,
                reason,
                message: format!(
                    "{problems}; the policy is enforced all the same ({}): {consequence}",
                    lowercase_first(&enforcing)
                ),
                keys,
                patterns,
            }
        }
        Err(problems) if policy.name_any() != POLICY_NAME => Assessment {
            ready: false,
            reason: problems.reason(),
            message: problems.to_string(),
            keys: 0,
            patterns: 0,
        },
        Err(problems) => {
            let (message, (keys, patterns)) = match enforced {
                Some(last) => {
                    let version = match last.generation() {
                        Some(g) => format!("the last valid version (generation {g})"),
                        None => "the last valid version".to_owned(),
                    };
                    (
                        format!("{problems}; {version} is still enforced"),
                        counts(last),
                    )
                }
                None => (
                    format!(
                        "{problems}; no valid version is enforced, so every workload is denied until the policy is fixed"
                    ),
                    (0, 0),
                ),
            };
            Assessment {
                ready: false,
                reason: problems.reason(),
                message,
                keys,
                patterns,
            }
        }
    }
}

/// The status to write for `policy`, given its assessment at `now`.
///
/// The condition's `lastTransitionTime` is the previous `Ready` condition's when its status
/// and reason are unchanged (a new message alone is not a transition), else `now`.
pub fn status(
    policy: &ClusterImagePolicy,
    assessment: Assessment,
    now: Time,
) -> ClusterImagePolicyStatus {
    let previous = ready_condition(policy.status.as_ref());
    let status = if assessment.ready { "True" } else { "False" };
    let reason = assessment.reason.as_str();
    let last_transition_time = match previous {
        Some(p) if p.status == status && p.reason == reason => p.last_transition_time.clone(),
        _ => now,
    };
    ClusterImagePolicyStatus {
        conditions: vec![Condition {
            type_: CONDITION_READY.to_owned(),
            status: status.to_owned(),
            reason: reason.to_owned(),
            message: truncate(assessment.message),
            observed_generation: policy.metadata.generation,
            last_transition_time,
        }],
        keys: Some(as_count(assessment.keys)),
        patterns: Some(as_count(assessment.patterns)),
        // Written by the check of the running workloads, under its own field manager.
        running: None,
    }
}

/// Whether `current` already says what `desired` says, in the fields this operator owns (the
/// `Ready` condition and the counts); another writer's conditions are left out of it.
pub fn is_current(
    current: Option<&ClusterImagePolicyStatus>,
    desired: &ClusterImagePolicyStatus,
) -> bool {
    let Some(current) = current else {
        return false;
    };
    ready_condition(Some(current)) == ready_condition(Some(desired))
        && current.keys == desired.keys
        && current.patterns == desired.patterns
}

/// The `Ready` condition of a status, if any.
pub fn ready_condition(status: Option<&ClusterImagePolicyStatus>) -> Option<&Condition> {
    status?
        .conditions
        .iter()
        .find(|c| c.type_ == CONDITION_READY)
}

fn counts(snapshot: &Snapshot) -> (usize, usize) {
    (snapshot.keys().len(), snapshot.entries().len())
}

fn enforcing(keys: usize, patterns: usize) -> String {
    let plural = |n: usize, word: &str| {
        if n == 1 {
            format!("{n} {word}")
        } else {
            format!("{n} {word}s")
        }
    };
    format!(
        "Enforcing {} and {}",
        plural(keys, "key"),
        plural(patterns, "pattern")
    )
}

/// Where Warn mode applies, as the `Ready` message's tail: nothing for a policy that is
/// enforced throughout (its message is what it was before modes existed), else which images
/// a refusal is only a warning for (docs/contract.md §2: one entry in Enforce enforces).
fn warn_scope(snapshot: &Snapshot) -> String {
    let listed = |mode: Mode| {
        let indices: Vec<String> = snapshot
            .entries()
            .iter()
            .filter(|e| e.mode == mode)
            .map(|e| format!("images[{}]", e.index))
            .collect();
        indices.join(", ")
    };
    let head = "; Warn mode (a refusal is admitted with a warning) for";
    let (warned, enforced) = (listed(Mode::Warn), listed(Mode::Enforce));
    match (snapshot.mode(), warned.is_empty(), enforced.is_empty()) {
        (Mode::Warn, _, true) => format!("{head} every image"),
        (Mode::Warn, _, false) => {
            format!("{head} every image that no entry in Enforce ({enforced}) matches")
        }
        (Mode::Enforce, true, _) => String::new(),
        (Mode::Enforce, false, _) => {
            format!("{head} the images of {warned} that no entry in Enforce matches")
        }
    }
}

fn lowercase_first(s: &str) -> String {
    let mut chars = s.chars();
    match chars.next() {
        Some(first) => first.to_lowercase().chain(chars).collect(),
        None => String::new(),
    }
}

fn as_count(n: usize) -> i64 {
    i64::try_from(n).unwrap_or(i64::MAX)
}

fn truncate(mut message: String) -> String {
    if message.len() > MAX_MESSAGE_BYTES {
        let mut end = MAX_MESSAGE_BYTES - 3;
        while !message.is_char_boundary(end) {
            end -= 1;
        }
        message.truncate(end);
        message.push_str("...");
    }
    message
}

#[cfg(test)]
mod tests;
