//! The controller: watches the `ClusterImagePolicy` named `image-policy` and publishes the
//! policy state that every admission reads, and writes the status of every policy.
//!
//! The watch of `image-policy` feeds [`Publisher::step`] (`crate::policy::state`, where the
//! rules of what is enforced live) and sends what it returns: that is the only writer of the
//! state, on every replica. The status reconciler ([`reconcile`], with the pure rules in
//! [`status`]) reads that state and writes status only on the replica that holds the
//! [`lease`].

use futures::{StreamExt, TryStreamExt};
use image_policy_crd::{ClusterImagePolicy, POLICY_NAME};
use kube::runtime::WatchStreamExt;
use kube::runtime::watcher;
use kube::{Api, Client};
use tokio::sync::watch;

use crate::policy::{PolicyState, Publisher};

pub mod lease;
pub mod reconcile;
pub mod status;

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
        let Some(next) = publisher.step(event) else {
            continue;
        };
        if let PolicyState::Invalid(rejected) = &next {
            tracing::error!(
                target: "image-policy.controller",
                object = POLICY_NAME,
                error = %rejected.problems,
                kept_last_valid = rejected.enforced.is_some(),
                "ClusterImagePolicy is invalid"
            );
        }
        tracing::info!(target: "image-policy.controller", object = POLICY_NAME, state = next.label(), "Policy published");
        state.send_replace(next);
    }
}
