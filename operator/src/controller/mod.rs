//! The controller: watches the `ClusterImagePolicy` named `image-policy` and publishes the
//! policy state that every admission reads, and writes the status of every policy.
//!
//! The publisher ([`Publisher`], driven by [`publish`]'s watch of `image-policy`) is the only
//! writer of the state, on every replica. The status reconciler ([`reconcile`], with the
//! pure rules in [`status`]) reads that state and writes status only on the replica that
//! holds the [`lease`].
//!
//! A valid policy is compiled into a snapshot and published whole; an invalid one after a valid one keeps the last valid snapshot enforced
//! (it may have landed while the webhook was down); an invalid one with nothing valid before
//! it makes every matched and unmatched image be refused with the policy's problems, so that
//! a broken policy never silently admits.

use std::sync::Arc;

use futures::{StreamExt, TryStreamExt};
use image_policy_crd::{ClusterImagePolicy, POLICY_NAME};
use kube::runtime::WatchStreamExt;
use kube::runtime::watcher::{self, Event};
use kube::{Api, Client};
use tokio::sync::watch;

use crate::policy::Snapshot;
use crate::webhook::review::PolicyState;

pub mod lease;
pub mod reconcile;
pub mod status;

/// What the publisher remembers between events.
#[derive(Debug, Default)]
pub struct Publisher {
    last_valid: Option<Arc<Snapshot>>,
}

impl Publisher {
    /// The state for the policy as it now is (`None`: it does not exist).
    pub fn next(&mut self, policy: Option<&ClusterImagePolicy>) -> PolicyState {
        let Some(policy) = policy else {
            self.last_valid = None;
            return PolicyState::Absent;
        };
        match Snapshot::compile(policy) {
            Ok(snapshot) => {
                let snapshot = Arc::new(snapshot);
                self.last_valid = Some(snapshot.clone());
                PolicyState::Active(snapshot)
            }
            Err(problems) => {
                tracing::error!(
                    target: "image-policy.controller",
                    object = POLICY_NAME,
                    error = %problems,
                    kept_last_valid = self.last_valid.is_some(),
                    "ClusterImagePolicy is invalid"
                );
                match &self.last_valid {
                    Some(snapshot) => PolicyState::Active(snapshot.clone()),
                    None => PolicyState::Invalid(problems.to_string()),
                }
            }
        }
    }
}

/// Runs the controller until `stop` resolves: publishes the state of `image-policy` on
/// `state`, competes for the lease in `namespace` (also the namespace of `secretRef`s that
/// name none) and says on `leading` whether this replica holds it, and, while holding it,
/// writes every policy's status. On `stop` it releases the lease and returns.
pub async fn publish(
    client: Client,
    state: watch::Sender<PolicyState>,
    namespace: String,
    leading: watch::Sender<bool>,
    stop: impl std::future::Future<Output = ()>,
) {
    let leading_rx = leading.subscribe();
    let identity = lease::identity();
    tracing::info!(target: "image-policy.controller", %identity, %namespace, lease = lease::LEASE_NAME, "Starting controller");
    let policies = state.subscribe();
    let lease = lease::lead(client.clone(), namespace.clone(), identity, leading, stop);
    tokio::select! {
        ((), ()) = async {
            tokio::join!(
                watch_policy(client.clone(), state),
                reconcile::run(client, policies, leading_rx, namespace),
            )
        } => {}
        () = lease => {}
    }
}

/// Watches the policy and publishes its state until the watch ends (it does not, short of
/// the process ending: the watcher retries with backoff).
async fn watch_policy(client: Client, state: watch::Sender<PolicyState>) {
    let api: Api<ClusterImagePolicy> = Api::all(client);
    let config = watcher::Config::default().fields(&format!("metadata.name={POLICY_NAME}"));
    let mut publisher = Publisher::default();
    let mut pending: Option<Option<ClusterImagePolicy>> = None;
    // What was last published: `(uid, generation)` of the policy, `None` for no policy.
    let mut published: Option<Option<(Option<String>, Option<i64>)>> = None;
    let mut events = watcher::watcher(api, config).default_backoff().boxed();
    loop {
        let event = match events.try_next().await {
            Ok(Some(event)) => event,
            Ok(None) => return,
            Err(e) => {
                tracing::warn!(target: "image-policy.controller", error = %e, "Watching ClusterImagePolicy failed; retrying");
                continue;
            }
        };
        let current = match event {
            Event::Init => {
                pending = Some(None);
                continue;
            }
            Event::InitApply(policy) => {
                pending = Some(Some(policy));
                continue;
            }
            Event::InitDone => pending.take().flatten(),
            Event::Apply(policy) => Some(policy),
            Event::Delete(_) => None,
        };
        // A status write is an update too; the spec, and so the state, only changes with
        // the generation (or with a new object of the same name).
        let seen = current
            .as_ref()
            .map(|p| (p.metadata.uid.clone(), p.metadata.generation));
        if seen.as_ref().is_some_and(|(_, g)| g.is_some()) && published.as_ref() == Some(&seen) {
            continue;
        }
        published = Some(seen);
        let next = publisher.next(current.as_ref());
        tracing::info!(target: "image-policy.controller", object = POLICY_NAME, state = state_label(&next), "Policy published");
        state.send_replace(next);
    }
}

fn state_label(state: &PolicyState) -> &'static str {
    match state {
        PolicyState::Loading => "Loading",
        PolicyState::Absent => "Absent",
        PolicyState::Active(_) => "Active",
        PolicyState::Invalid(_) => "Invalid",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn policy(key: &str) -> ClusterImagePolicy {
        serde_json::from_value(serde_json::json!({
            "apiVersion": "signing.apps.tanzu.vmware.com/v1beta1",
            "kind": "ClusterImagePolicy",
            "metadata": {"name": "image-policy"},
            "spec": {"verification": {"keys": [{"name": "k", "publicKey": key}],
                "images": [{"namePattern": "registry.example.org/*", "keys": [{"name": "k"}]}]}}
        }))
        .expect("policy")
    }

    #[test]
    fn an_invalid_policy_keeps_the_last_valid_one_and_fails_closed_without_one() {
        let good = include_str!("../../tests/data/keys/p256.pub");
        let mut publisher = Publisher::default();
        assert!(
            matches!(publisher.next(Some(&policy("broken"))), PolicyState::Invalid(p) if p.contains("publicKey"))
        );
        let first = publisher.next(Some(&policy(good)));
        let PolicyState::Active(enforced) = first else {
            panic!("valid")
        };
        let PolicyState::Active(kept) = publisher.next(Some(&policy("broken"))) else {
            panic!("kept")
        };
        assert!(Arc::ptr_eq(&enforced, &kept));
        assert!(matches!(publisher.next(None), PolicyState::Absent));
        assert!(
            matches!(
                publisher.next(Some(&policy("broken"))),
                PolicyState::Invalid(_)
            ),
            "deletion forgets"
        );
    }
}
