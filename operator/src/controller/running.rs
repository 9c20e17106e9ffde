//! What already runs, in the policy's status: while this replica holds the lease, the
//! running workloads are checked against the policy in force ([`crate::audit`]) at once after
//! each publication and every resync period, and the result is applied to
//! `status.running` under its own field manager, so that it never takes the `Ready`
//! condition's fields from the status reconciler (or theirs from it).
//!
//! A check that cannot list the workloads writes nothing (the last result stays, with its
//! `lastChecked`) and is tried again after [`RETRY`]. Losing the lease stops a check at once.

use std::time::Duration;

use image_policy_crd::{POLICY_NAME, RunningCheck};
use kube::Client;
use tokio::sync::watch;

use crate::audit::{self, LISTED, Limits, Pace, Report};
use crate::policy::{PolicyState, Snapshot};
use crate::telemetry::Metrics;
use crate::webhook::Webhook;

/// The field manager of `status.running`.
pub const FIELD_MANAGER: &str = "image-policy-running";
/// How soon a check that could not list the workloads is tried again.
pub const RETRY: Duration = Duration::from_secs(30);

/// How the running workloads are checked.
#[derive(Debug, Clone)]
pub struct RunningSettings {
    /// How often, besides after each policy change.
    pub resync: Duration,
    /// At most this many images decided a second.
    pub rate: u32,
    /// How many images are decided at once, and the bound on a whole check.
    pub limits: Limits,
    /// Namespaces never checked (the webhook does not intercept them).
    pub unchecked: Vec<String>,
    /// Where the last check's counts are recorded.
    pub metrics: Metrics,
}

/// Checks the running workloads until the state's sender is gone.
pub async fn run(
    client: Client,
    webhook: Webhook,
    mut state: watch::Receiver<PolicyState>,
    mut leading: watch::Receiver<bool>,
    settings: RunningSettings,
) {
    loop {
        if !*leading.borrow() {
            // Another replica checks: this one's last counts are not current.
            settings.metrics.running_unknown();
        }
        if leading.wait_for(|leads| *leads).await.is_err() {
            return;
        }
        let snapshot = state.borrow_and_update().enforced().cloned();
        let wait = match snapshot {
            None => None,
            Some(snapshot) => tokio::select! {
                checked = check_and_write(&client, &webhook, &snapshot, &settings) => Some(
                    if checked { settings.resync } else { RETRY }
                ),
                _ = leading.wait_for(|leads| !*leads) => continue,
            },
        };
        let resync = async {
            match wait {
                Some(wait) => tokio::time::sleep(wait).await,
                None => std::future::pending().await,
            }
        };
        tokio::select! {
            changed = state.changed() => if changed.is_err() { return },
            () = resync => {}
            _ = leading.wait_for(|leads| !*leads) => {}
        }
    }
}

/// One check, written to the status; `false` when the workloads could not be listed.
async fn check_and_write(
    client: &Client,
    webhook: &Webhook,
    snapshot: &Snapshot,
    settings: &RunningSettings,
) -> bool {
    let workloads = match audit::workloads::list(client).await {
        Ok(workloads) => workloads,
        Err(e) => {
            tracing::warn!(target: "image-policy.running", error = %e, "Running workloads not checked; retrying");
            return false;
        }
    };
    let mut pace = Pace::per_second(settings.rate);
    let report = audit::check_within(
        webhook.admission(),
        snapshot,
        &workloads,
        &settings.unchecked,
        &mut pace,
        settings.limits,
    )
    .await;
    tracing::info!(
        target: "image-policy.running",
        workloads = report.workloads,
        refused_workloads = report.refused_workloads,
        refused_images = report.refused.len(),
        timed_out = report.timed_out,
        "Running workloads checked"
    );
    settings
        .metrics
        .running(report.workloads, report.refused_workloads);
    let status = running_status(
        &report,
        snapshot.version().generation,
        super::reconcile::now(),
    );
    if let Err(e) = write(client, &status).await {
        // Not found: the policy was deleted meanwhile, and there is nothing to write to.
        tracing::warn!(target: "image-policy.running", error = %e, "Running workloads checked, status not written");
    }
    true
}

/// The status of `report`, listing its first [`LISTED`] refused images.
pub fn running_status(
    report: &Report,
    generation: Option<i64>,
    now: k8s_openapi::apimachinery::pkg::apis::meta::v1::Time,
) -> RunningCheck {
    RunningCheck {
        last_checked: now,
        observed_generation: generation,
        workloads: i64::try_from(report.workloads).unwrap_or(i64::MAX),
        refused_workloads: i64::try_from(report.refused_workloads).unwrap_or(i64::MAX),
        refused: report
            .refused
            .iter()
            .take(LISTED)
            .map(audit::WorkloadRefusal::to_status)
            .collect(),
    }
}

async fn write(client: &Client, running: &RunningCheck) -> Result<(), kube::Error> {
    let status = serde_json::json!({ "running": running });
    super::reconcile::apply_status(client, POLICY_NAME, FIELD_MANAGER, &status).await
}
