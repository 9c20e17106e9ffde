//! The attestations an image entry requires (`spec.verification.images[].attestations[]`),
//! compiled with every problem and its field path: a name unique in its entry, a predicate
//! type, signers that the policy defines, and conditions that compile
//! ([`super::condition`]).

use std::sync::Arc;

use image_policy_crd::{Attestation, ImageEntry, Reason};

use super::condition::Condition;
use super::problem::Problem;
use super::signer::NamedKey;

/// The longest message a condition may give, in characters: it ends up in a denial.
pub const MAX_MESSAGE_CHARS: usize = 512;

/// One required attestation, compiled.
#[derive(Debug, Clone)]
pub struct Requirement {
    /// Its name, unique in its entry.
    pub name: String,
    /// The predicate type its statements must have, exactly.
    pub predicate_type: String,
    /// Its signers: indices into [`super::Snapshot::keys`], its own or else its entry's, in
    /// order, without repeats.
    pub key_ids: Vec<usize>,
    /// Its conditions, in order.
    pub conditions: Arc<[Condition]>,
    /// Its field path, `spec.verification.images[i].attestations[j]`.
    pub path: String,
}

/// A required attestation of an image, with its signers: what the verifier looks for.
#[derive(Debug, Clone)]
pub struct Need<'a> {
    /// The requirement, as compiled.
    pub requirement: &'a Requirement,
    /// Its signers, any one of which must have signed the attestation.
    pub signers: Vec<&'a NamedKey>,
}

/// What an entry's attestations are compiled with: where the entry is, and the policy's keys.
pub(super) struct Scope<'a> {
    /// The entry's field path.
    pub path: &'a str,
    /// The entry's own signers.
    pub entry_keys: &'a [usize],
    /// Whether the entry writes any key, compiled or not.
    pub entry_writes_keys: bool,
    /// The index of the compiled key of that name, if it compiled.
    pub position: &'a dyn Fn(&str) -> Option<usize>,
    /// Whether a key of that name is written in the policy (compiled or not).
    pub defined: &'a dyn Fn(&str) -> bool,
}

/// The attestations `image` requires; every problem is added to `problems`.
pub(super) fn compile(
    image: &ImageEntry,
    scope: &Scope<'_>,
    problems: &mut Vec<Problem>,
) -> Vec<Requirement> {
    let mut out = Vec::new();
    for (j, attestation) in image.attestations.iter().enumerate() {
        let path = format!("{}.attestations[{j}]", scope.path);
        let mut problem = |reason, field: &str, message: String| {
            problems.push(Problem::new(reason, format!("{path}.{field}"), message));
        };
        if attestation.name.is_empty() {
            problem(
                Reason::InvalidAttestation,
                "name",
                "the attestation has no name".into(),
            );
        } else if let Some(first) = image
            .attestations
            .iter()
            .position(|a| a.name == attestation.name)
            .filter(|&first| first < j)
        {
            problem(
                Reason::InvalidAttestation,
                "name",
                format!(
                    "duplicate attestation name {:?} (also {}.attestations[{first}])",
                    attestation.name, scope.path
                ),
            );
        }
        if attestation.predicate_type.trim().is_empty() {
            problem(
                Reason::InvalidAttestation,
                "predicateType",
                "the attestation has no predicateType".into(),
            );
        }
        let key_ids = signers(attestation, scope, &path, problems);
        let conditions = conditions(attestation, &path, problems);
        out.push(Requirement {
            name: attestation.name.clone(),
            predicate_type: attestation.predicate_type.clone(),
            key_ids,
            conditions: conditions.into(),
            path,
        });
    }
    out
}

/// The signers of an attestation at `path`: its own keys, or its entry's when it names none.
fn signers(
    attestation: &Attestation,
    scope: &Scope<'_>,
    path: &str,
    problems: &mut Vec<Problem>,
) -> Vec<usize> {
    if attestation.keys.is_empty() {
        // An entry whose keys are written but do not compile has its problems at them.
        if !scope.entry_writes_keys {
            problems.push(Problem::new(
                Reason::MissingKeys,
                format!("{path}.keys"),
                "neither the attestation nor its entry names a key, so no attestation could ever count",
            ));
        }
        return scope.entry_keys.to_vec();
    }
    let mut ids = Vec::new();
    for (k, key_ref) in attestation.keys.iter().enumerate() {
        match (scope.position)(&key_ref.name) {
            Some(id) if !ids.contains(&id) => ids.push(id),
            Some(_) => {}
            // A defined key that failed to compile is reported once, at the key.
            None if (scope.defined)(&key_ref.name) && !key_ref.name.is_empty() => {}
            None => problems.push(Problem::new(
                Reason::UnknownKey,
                format!("{path}.keys[{k}].name"),
                format!("no key named {:?} in spec.verification.keys", key_ref.name),
            )),
        }
    }
    ids
}

/// The conditions of an attestation at `path` that compile.
fn conditions(
    attestation: &Attestation,
    path: &str,
    problems: &mut Vec<Problem>,
) -> Vec<Condition> {
    let mut out = Vec::new();
    for (k, condition) in attestation.conditions.iter().enumerate() {
        let at = format!("{path}.conditions[{k}]");
        let message = condition.message.as_deref();
        if message.is_some_and(|m| m.chars().count() > MAX_MESSAGE_CHARS) {
            problems.push(Problem::new(
                Reason::InvalidCondition,
                format!("{at}.message"),
                format!("the message is longer than {MAX_MESSAGE_CHARS} characters"),
            ));
        }
        match Condition::compile(&condition.expression, message) {
            Ok(compiled) => out.push(compiled),
            Err(e) => problems.push(Problem::new(
                Reason::InvalidCondition,
                format!("{at}.expression"),
                e.to_string(),
            )),
        }
    }
    out
}

#[cfg(test)]
mod tests;
