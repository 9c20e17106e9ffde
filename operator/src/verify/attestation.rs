//! Required attestations (docs/contract.md §3, attestations): what the registry holds of each
//! predicate type an image needs ([`Found`], cached with the signature's verdict), which of
//! those count (the newest, [`newest`]), and whether they meet their conditions, evaluated at
//! each decision so that `now` is now ([`judge`]).

use std::sync::Arc;
use std::time::Instant;

use bytes::Bytes;

use super::bundle::attested::Attested;
use super::findings::Seen;
use super::verdict::{FailedCondition, Failure, MissingAttestation};
use crate::policy::condition::{
    Condition, EvaluationError, Limits, SignerFacts, Variables, on_large_stack,
};
use crate::policy::{NamedKey, Need, Signer};

/// What is looked for in the registry: statements of one predicate type signed by one of
/// `signers`. Needs of one type and the same signers share one query.
#[derive(Debug, Clone)]
pub struct Query<'a> {
    /// The predicate type, exactly.
    pub predicate_type: &'a str,
    /// The signers, any of them.
    pub signers: Vec<&'a NamedKey>,
}

/// What was found for one [`Query`]: every statement that verifies, and what did not count.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Found {
    /// The statements of the type, about the digest, that a signer verifies.
    pub attested: Vec<Attested>,
    /// Those of the type that do not count, and why.
    pub seen: Seen,
}

impl Found {
    /// The bytes of statements it keeps: what the verdict cache weighs.
    pub fn bytes(&self) -> usize {
        self.attested.iter().map(|a| a.statement.len()).sum()
    }
}

/// The queries of `needs`, and for each need the index of its query.
pub fn queries<'a>(needs: &[Need<'a>]) -> (Vec<Query<'a>>, Vec<usize>) {
    let mut queries: Vec<Query<'a>> = Vec::new();
    let mut of_need = Vec::with_capacity(needs.len());
    for need in needs {
        let same = |q: &Query<'_>| {
            q.predicate_type == need.requirement.predicate_type
                && q.signers.len() == need.signers.len()
                && q.signers
                    .iter()
                    .zip(&need.signers)
                    .all(|(a, b)| std::ptr::eq(*a, *b))
        };
        let index = match queries.iter().position(same) {
            Some(index) => index,
            None => {
                queries.push(Query {
                    predicate_type: &need.requirement.predicate_type,
                    signers: need.signers.clone(),
                });
                queries.len() - 1
            }
        };
        of_need.push(index);
    }
    (queries, of_need)
}

/// What a verdict for `queries` depends on: each predicate type with its signers' identities.
pub fn fingerprint(queries: &[Query<'_>]) -> String {
    let mut out = String::new();
    for query in queries {
        out.push_str(query.predicate_type);
        for signer in &query.signers {
            out.push('|');
            out.push_str(&signer.identity());
        }
        out.push(';');
    }
    out
}

/// The attestations that count among those found: the newest by verified signing time. One
/// without a verified time is older than any with one; when the newest cannot be told apart
/// (equal times, or none has a time), all of those tied count, and each must meet the
/// conditions (fail closed): an old attestation that passes never hides a newer one that fails.
pub fn newest(found: &Found) -> Vec<&Attested> {
    let latest = found.attested.iter().map(|a| a.vouched.time).max();
    match latest {
        None => Vec::new(),
        Some(latest) => found
            .attested
            .iter()
            .filter(|a| a.vouched.time == latest)
            .collect(),
    }
}

/// Whether the image (`image` as written, at `digest`) meets `needs`, from what was found
/// for their queries (`found`, by [`queries`]' index), evaluated at `now` before `deadline`:
/// the name of the signer of the first need's attestation, or the first need that fails.
/// Conditions run on a blocking thread with a large stack ([`on_large_stack`]).
pub async fn judge(
    needs: &[Need<'_>],
    found: &[Found],
    of_need: &[usize],
    (image, digest): (&str, &str),
    deadline: Instant,
) -> Result<Option<String>, Failure> {
    let mut jobs = Vec::with_capacity(needs.len());
    for (need, &query) in needs.iter().zip(of_need) {
        let found = found.get(query).cloned().unwrap_or_default();
        let counted = newest(&found);
        if counted.is_empty() {
            return Err(Failure::AttestationMissing(Box::new(MissingAttestation {
                name: need.requirement.name.clone(),
                predicate_type: need.requirement.predicate_type.clone(),
                digest: digest.to_owned(),
                rejection: found.seen.most_telling(),
            })));
        }
        let statements = counted
            .into_iter()
            .map(|a| (a.statement.clone(), facts(a, &need.signers)))
            .collect();
        jobs.push(Job {
            name: need.requirement.name.clone(),
            predicate_type: need.requirement.predicate_type.clone(),
            conditions: Arc::clone(&need.requirement.conditions),
            statements,
        });
    }
    let first_signer = jobs
        .first()
        .and_then(|job| job.statements.first())
        .map(|(_, facts)| facts.name().to_owned());
    let first = jobs
        .first()
        .map(|job| (job.name.clone(), job.predicate_type.clone()))
        .unwrap_or_default();
    let (image, digest) = (image.to_owned(), digest.to_owned());
    let now = chrono::Utc::now();
    let evaluate = move || {
        on_large_stack(|| {
            jobs.iter()
                .try_for_each(|job| job.evaluate((&image, &digest), now, deadline))
        })
    };
    // No thread to evaluate on: the first attestation's conditions are not met.
    let failure = |why: String| {
        Failure::ConditionFailed(Box::new(FailedCondition {
            name: first.0.clone(),
            predicate_type: first.1.clone(),
            expression: String::new(),
            message: None,
            error: Some(EvaluationError::Failed(why)),
        }))
    };
    match tokio::task::spawn_blocking(evaluate).await {
        Ok(Ok(Ok(()))) => Ok(first_signer),
        Ok(Ok(Err(failure))) => Err(failure),
        Ok(Err(why)) => Err(failure(why.to_string())),
        Err(why) => Err(failure(why.to_string())),
    }
}

/// The conditions of one need, and the statements they are evaluated on.
struct Job {
    name: String,
    predicate_type: String,
    conditions: Arc<[Condition]>,
    statements: Vec<(Bytes, SignerFacts)>,
}

impl Job {
    /// The first condition that a statement makes false or cannot evaluate, as a failure.
    fn evaluate(
        &self,
        image: (&str, &str),
        now: chrono::DateTime<chrono::Utc>,
        deadline: Instant,
    ) -> Result<(), Failure> {
        for (statement, signer) in &self.statements {
            let parsed = serde_json::from_slice::<serde_json::Value>(statement);
            for condition in self.conditions.iter() {
                let holds = match &parsed {
                    Ok(json) => {
                        let variables = Variables::new(json, image, signer, now);
                        condition.evaluate(&variables, Limits::ADMISSION, deadline)
                    }
                    // Parsed once already when its signature was checked.
                    Err(e) => Err(EvaluationError::Failed(e.to_string())),
                };
                if holds != Ok(true) {
                    return Err(Failure::ConditionFailed(Box::new(FailedCondition {
                        name: self.name.clone(),
                        predicate_type: self.predicate_type.clone(),
                        expression: cut(&condition.expression),
                        message: condition.message.clone(),
                        error: holds.err(),
                    })));
                }
            }
        }
        Ok(())
    }
}

/// Who signed `attested`, among `signers`, as the `signer` variable shows it.
fn facts(attested: &Attested, signers: &[&NamedKey]) -> SignerFacts {
    let signer = signers
        .iter()
        .find(|k| k.identity() == attested.vouched.identity);
    let name = signer.map(|k| k.name.clone()).unwrap_or_default();
    match (&attested.vouched.certificate, signer.map(|k| &k.signer)) {
        (Some((subject, issuer)), Some(Signer::Keyless(_)) | None) => SignerFacts::Keyless {
            name,
            issuer: issuer.clone(),
            subject: subject.clone(),
        },
        _ => SignerFacts::Key { name },
    }
}

/// At most 200 characters of `text`.
fn cut(text: &str) -> String {
    text.chars().take(200).collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::verify::bundle::Vouched;

    fn attested(name: &str, time: Option<i64>) -> Attested {
        Attested {
            vouched: Vouched {
                identity: name.into(),
                certificate: None,
                time,
            },
            statement: Bytes::from(name.to_owned()),
        }
    }

    fn newest_of(times: &[Option<i64>]) -> Vec<String> {
        let found = Found {
            attested: times
                .iter()
                .enumerate()
                .map(|(i, t)| attested(&format!("a{i}"), *t))
                .collect(),
            seen: Seen::default(),
        };
        newest(&found)
            .into_iter()
            .map(|a| a.vouched.identity.clone())
            .collect()
    }

    #[test]
    fn the_newest_by_verified_time_counts_and_ties_all_count() {
        assert_eq!(newest_of(&[Some(1), Some(3), Some(2)]), ["a1"]);
        // One without a verified time is older than any with one.
        assert_eq!(newest_of(&[None, Some(1), None]), ["a1"]);
        // Ties cannot be told apart: each counts.
        assert_eq!(newest_of(&[Some(2), Some(1), Some(2)]), ["a0", "a2"]);
        assert_eq!(newest_of(&[None, None]), ["a0", "a1"]);
        assert!(newest_of(&[]).is_empty());
    }
}
