//! What already runs: the workloads of the cluster checked against a policy, as the webhook
//! would decide them now (docs/contract.md §7). The controller does it after each policy
//! change and every resync period ([`crate::controller::running`]); `image-policy audit`
//! does it once for a policy file ([`crate::cli::audit`]).
//!
//! Pods are grouped by the workload that owns them ([`workloads`]): a Deployment's hundred
//! Pods with one image are one workload, decided once. Each image is decided through
//! [`Admission::judge`], so through the verifier's caches: an image already verified (by an
//! admission or by the workload before) costs no registry request, and one being verified
//! for an admission (or for the check) is waited for, not verified again. Within one check,
//! an image decided for one workload is not decided again for another with the same
//! credential sources, and the images that are decided are paced ([`Pace`]), so that a
//! cluster of 10,000 Pods does not become a burst of registry requests.
//!
//! The decisions of a check run side by side ([`Limits`]): at most `concurrency` at once,
//! all within `timeout`, so that a registry that never answers holds a check no longer than
//! that. An image not decided by then is refused as a verification that timed out would be.
//! Admissions never wait for a check: its bound on concurrency is its own.

pub mod workloads;

use std::collections::HashMap;
use std::time::Duration;

use futures::StreamExt as _;
use futures::stream::FuturesUnordered;
use image_policy_crd::RefusedImage;
use serde::Serialize;

use crate::policy::Snapshot;
use crate::verify::Failure;
use crate::webhook::admit::{Admission, mounted_as};
use crate::webhook::credentials::Owner;
use crate::webhook::decision::Outcome;
pub use workloads::Workload;

/// How many refused images a status lists.
pub const LISTED: usize = 20;

/// What a check of the running workloads found.
#[derive(Debug, Default, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Report {
    /// The workloads checked (those of excluded namespaces are not).
    pub workloads: usize,
    /// How many of them run at least one image that would be refused.
    pub refused_workloads: usize,
    /// Every image refused, by workload, in the order of [`workloads::list`].
    pub refused: Vec<WorkloadRefusal>,
    /// How many decisions were not made within the check's [`Limits::timeout`] (each refused
    /// as a verification that timed out).
    #[serde(skip)]
    pub timed_out: usize,
}

/// How the decisions of a check run side by side.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// At most this many images decided at once.
    pub concurrency: usize,
    /// The bound on the whole check.
    pub timeout: Duration,
}

impl Default for Limits {
    /// Eight at once, within ten minutes (the default resync period).
    fn default() -> Self {
        Limits {
            concurrency: 8,
            timeout: Duration::from_secs(600),
        }
    }
}

/// One image of one workload that the policy would refuse now.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct WorkloadRefusal {
    /// The workload's namespace.
    pub namespace: String,
    /// Its kind (the top owner of its Pods).
    pub kind: String,
    /// Its name.
    pub name: String,
    /// The image as written.
    pub image: String,
    /// The decision's reason, as in the metrics.
    pub reason: &'static str,
    /// The denial's words.
    pub message: String,
    /// Whether the image's mode is Warn: it is admitted with a warning, and would be refused
    /// under Enforce.
    pub warn_mode: bool,
}

impl WorkloadRefusal {
    /// The status's form of it.
    pub fn to_status(&self) -> RefusedImage {
        RefusedImage {
            namespace: self.namespace.clone(),
            kind: self.kind.clone(),
            name: self.name.clone(),
            image: self.image.clone(),
            reason: self.reason.to_owned(),
            message: self.message.clone(),
        }
    }
}

/// At most one decision that may reach a registry per period: the first at once, the next
/// one period later.
#[derive(Debug)]
pub struct Pace {
    interval: Option<tokio::time::Interval>,
}

impl Pace {
    /// `per_second` decisions a second; 0 for no pacing. A rate above a million a second is
    /// a million: the period must not round down to zero, which `tokio::time::interval`
    /// refuses with a panic.
    pub fn per_second(per_second: u32) -> Self {
        let interval = (per_second > 0).then(|| {
            let period = (Duration::from_secs(1) / per_second).max(Duration::from_micros(1));
            let mut interval = tokio::time::interval(period);
            interval.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            interval
        });
        Pace { interval }
    }

    async fn wait(&mut self) {
        if let Some(interval) = &mut self.interval {
            interval.tick().await;
        }
    }
}

/// What an image's outcome depends on besides the image: the credential sources of its
/// workload (its namespace, service account and pull secrets).
type Sources = (String, Option<String>, Vec<String>);

/// Decides every image of `workloads` under `snapshot`, skipping the namespaces the policy
/// excludes and those in `unchecked`, within the default [`Limits`].
pub async fn check(
    admission: &Admission,
    snapshot: &Snapshot,
    workloads: &[Workload],
    unchecked: &[String],
    pace: &mut Pace,
) -> Report {
    check_within(
        admission,
        snapshot,
        workloads,
        unchecked,
        pace,
        Limits::default(),
    )
    .await
}

/// [`check`] within `limits`.
pub async fn check_within(
    admission: &Admission,
    snapshot: &Snapshot,
    workloads: &[Workload],
    unchecked: &[String],
    pace: &mut Pace,
    limits: Limits,
) -> Report {
    let checked: Vec<(&Workload, Sources)> = workloads
        .iter()
        .filter(|w| !snapshot.is_excluded(&w.namespace) && !unchecked.contains(&w.namespace))
        .map(|w| (w, w.sources()))
        .collect();
    // Each image once per credential sources, with the first workload that runs it.
    let mut wanted: Vec<((String, Sources), &Workload)> = Vec::new();
    let mut seen = std::collections::HashSet::new();
    for (workload, sources) in &checked {
        for image in &workload.images {
            let key = (image.clone(), sources.clone());
            if seen.insert(key.clone()) {
                wanted.push((key, workload));
            }
        }
    }
    let mut decided = HashMap::with_capacity(wanted.len());
    let deadline = tokio::time::Instant::now() + limits.timeout;
    let all = decide_all(admission, snapshot, wanted, pace, limits, &mut decided);
    let timed_out = tokio::time::timeout_at(deadline, all).await.is_err();
    let mut report = Report::default();
    let failure = Failure::TimedOut {
        budget: limits.timeout,
    };
    for (workload, sources) in checked {
        report.workloads += 1;
        let before = report.refused.len();
        for image in &workload.images {
            let outcome = match decided.get(&(image.clone(), sources.clone())) {
                Some(outcome) => outcome.clone(),
                None => {
                    report.timed_out += usize::from(timed_out);
                    admission.unverified(snapshot, image, &failure)
                }
            };
            if let Some(refused) = refusal(workload, image, &outcome) {
                report.refused.push(refused);
            }
        }
        if report.refused.len() > before {
            report.refused_workloads += 1;
        }
    }
    report
}

/// Decides each of `wanted` into `decided`, at most `limits.concurrency` at once, each
/// started at `pace`; what it decided stays in `decided` if it is dropped before the end.
async fn decide_all<'a>(
    admission: &'a Admission,
    snapshot: &'a Snapshot,
    wanted: Vec<((String, Sources), &'a Workload)>,
    pace: &mut Pace,
    limits: Limits,
    decided: &mut HashMap<(String, Sources), Outcome>,
) {
    let mut wanted = wanted.into_iter();
    let mut running = FuturesUnordered::new();
    loop {
        let room = running.len() < limits.concurrency.max(1);
        tokio::select! {
            biased;
            Some((key, outcome)) = running.next(), if !running.is_empty() => {
                if let Some(outcome) = outcome {
                    decided.insert(key, outcome);
                }
            }
            () = pace.wait(), if room && !wanted.as_slice().is_empty() => {
                let Some((key, workload)) = wanted.next() else { continue };
                running.push(async move {
                    let owner = Owner {
                        namespace: &workload.namespace,
                        pod_spec: workload.pod_spec(),
                    };
                    let judged = admission.judge(snapshot, owner, vec![key.0.clone()]).await;
                    // One image in, its outcome out.
                    let outcome = judged.into_iter().next().map(|(_, outcome)| outcome);
                    (key, outcome)
                });
            }
            else => return,
        }
    }
}

/// The refusal in `outcome`, if it is one (waived in Warn mode or not), in the words a review
/// of the workload would have: naming the image volumes of this workload that mount it.
fn refusal(workload: &Workload, image: &str, outcome: &Outcome) -> Option<WorkloadRefusal> {
    let outcome = mounted_as(outcome.clone(), workload.volumes.mounting(image));
    let (message, reason, warn_mode) = match outcome {
        Outcome::Denied { message, reason } => (message, reason, false),
        Outcome::Waived { message, reason } => (message, reason, true),
        Outcome::Admitted { .. } | Outcome::Warned(_) => return None,
    };
    Some(WorkloadRefusal {
        namespace: workload.namespace.clone(),
        kind: workload.kind.clone(),
        name: workload.name.clone(),
        image: image.to_owned(),
        reason: reason.as_str(),
        message,
        warn_mode,
    })
}

#[cfg(test)]
mod tests;
