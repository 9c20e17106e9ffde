//! What already runs: the workloads of the cluster checked against a policy, as the webhook
//! would decide them now (docs/contract.md §7). The controller does it after each policy
//! change and every resync period ([`crate::controller::running`]); `image-policy audit`
//! does it once for a policy file ([`crate::cli::audit`]).
//!
//! Pods are grouped by the workload that owns them ([`workloads`]): a Deployment's hundred
//! Pods with one image are one workload, decided once. Each image is decided through
//! [`Admission::judge`], so through the verifier's caches: an image already verified (by an
//! admission or by the workload before) costs no registry request. Within one check, an image
//! decided for one workload is not decided again for another with the same credential
//! sources, and the images that are decided are paced ([`Pace`]), so that a cluster of
//! 10,000 Pods does not become a burst of registry requests.

pub mod workloads;

use std::collections::HashMap;
use std::time::Duration;

use image_policy_crd::RefusedImage;
use serde::Serialize;

use crate::policy::Snapshot;
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
/// excludes and those in `unchecked`.
pub async fn check(
    admission: &Admission,
    snapshot: &Snapshot,
    workloads: &[Workload],
    unchecked: &[String],
    pace: &mut Pace,
) -> Report {
    let mut decided: HashMap<(String, Sources), Outcome> = HashMap::new();
    let mut report = Report::default();
    for workload in workloads {
        if snapshot.is_excluded(&workload.namespace) || unchecked.contains(&workload.namespace) {
            continue;
        }
        report.workloads += 1;
        let sources = workload.sources();
        let new: Vec<String> = workload
            .images
            .iter()
            .filter(|image| !decided.contains_key(&((*image).clone(), sources.clone())))
            .cloned()
            .collect();
        if !new.is_empty() {
            pace.wait().await;
            let owner = Owner {
                namespace: &workload.namespace,
                pod_spec: workload.pod_spec(),
            };
            for (image, outcome) in admission.judge(snapshot, owner, new).await {
                decided.insert((image, sources.clone()), outcome);
            }
        }
        let before = report.refused.len();
        for image in &workload.images {
            if let Some(refused) = decided
                .get(&(image.clone(), sources.clone()))
                .and_then(|outcome| refusal(workload, image, outcome))
            {
                report.refused.push(refused);
            }
        }
        if report.refused.len() > before {
            report.refused_workloads += 1;
        }
    }
    report
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
