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
use k8s_openapi::api::core::v1::ConfigMap;
use kube::runtime::{WatchStreamExt, reflector, watcher};
use kube::{Api, Client};
use tokio::sync::watch;

use crate::policy::{Documents, PolicyState, Publisher};

pub mod lease;
pub mod reconcile;
pub mod running;
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
                watch_policy(client.clone(), state, namespace.clone()),
                reconcile::run(client, policies, leading_rx, namespace),
            )
        } => {}
        () = lease => {}
    }
}

/// Watches the policy, and the ConfigMaps of `namespace` that trusted roots are read from,
/// and publishes its state until the watches end (they do not, short of the process ending:
/// the watchers retry with backoff). Nothing is published before the ConfigMaps were listed,
/// so that a trusted root is never taken for missing while they load.
async fn watch_policy(client: Client, state: watch::Sender<PolicyState>, namespace: String) {
    let api: Api<ClusterImagePolicy> = Api::all(client.clone());
    let config = watcher::Config::default().fields(&format!("metadata.name={POLICY_NAME}"));
    let mut publisher = Publisher::default();
    let mut policies = watcher::watcher(api, config).default_backoff().boxed();
    let maps: Api<ConfigMap> = Api::namespaced(client, &namespace);
    let (store, writer) = reflector::store();
    let mut maps = reflector::reflector(writer, watcher::watcher(maps, watcher::Config::default()))
        .default_backoff()
        .boxed();
    let mut maps_listed = false;
    let mut pending: Option<PolicyState> = None;
    loop {
        let next = tokio::select! {
            event = policies.try_next() => match event {
                Ok(Some(event)) => publisher.step(event),
                Ok(None) => return,
                Err(e) => {
                    tracing::warn!(target: "image-policy.controller", error = %e, "Watching ClusterImagePolicy failed; retrying");
                    continue;
                }
            },
            event = maps.try_next() => match event {
                Ok(Some(watcher::Event::InitDone)) => {
                    maps_listed = true;
                    publisher.documents(documents(&store)).or(pending.take())
                }
                Ok(Some(watcher::Event::Init | watcher::Event::InitApply(_))) => None,
                Ok(Some(_)) if maps_listed => publisher.documents(documents(&store)),
                Ok(Some(_)) => None,
                Ok(None) => return,
                Err(e) => {
                    tracing::warn!(target: "image-policy.controller", error = %e, %namespace, "Watching ConfigMaps failed; retrying");
                    continue;
                }
            },
        };
        let Some(next) = next else {
            continue;
        };
        if !maps_listed {
            pending = Some(next);
            continue;
        }
        publish_state(&state, next);
    }
}

/// The data of the ConfigMaps in `store`, by name.
fn documents(store: &reflector::Store<ConfigMap>) -> Documents {
    store
        .state()
        .iter()
        .filter_map(|map| {
            Some((
                map.metadata.name.clone()?,
                map.data.clone().unwrap_or_default(),
            ))
        })
        .collect()
}

fn publish_state(state: &watch::Sender<PolicyState>, next: PolicyState) {
    if let PolicyState::Invalid(rejected) = &next {
        tracing::error!(
            target: "image-policy.controller",
            object = POLICY_NAME,
            error = %rejected.problems,
            kept_last_valid = rejected.enforced.is_some(),
            "ClusterImagePolicy is invalid"
        );
    }
    if let Some(snapshot) = next.enforced() {
        for problem in snapshot.unavailable_roots() {
            tracing::error!(target: "image-policy.controller", object = POLICY_NAME, error = %problem, "Trusted root unavailable");
        }
    }
    tracing::info!(target: "image-policy.controller", object = POLICY_NAME, state = next.label(), "Policy published");
    state.send_replace(next);
}
