//! The status reconciler: a kube-runtime `Controller` over every `ClusterImagePolicy`, which
//! writes each one's status (see [`super::status`]) with server-side apply on the status
//! subresource, while this replica holds the lease.
//!
//! It never touches what admissions read: for `image-policy` it reads the publisher's
//! [`PolicyState`] to say what is enforced, and every policy is reconciled again whenever
//! the publisher publishes, so the message catches up with the snapshot. A status is written only when it
//! differs from the stored one: a write bumps the `resourceVersion`, which triggers the
//! watch, whose reconcile then finds nothing to do.
//!
//! Secrets named by `secretRef`s are checked with a GET each (the same permission the
//! credential lookup needs, rather than a cluster-wide list/watch of Secrets): a policy with
//! a missing Secret is looked at again every [`MISSING_SECRET_RECHECK`], one with Secrets
//! every [`SECRET_RECHECK`], so that creating or deleting a Secret shows within that time.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use futures::{Stream, StreamExt};
use image_policy_crd::{ClusterImagePolicy, ClusterImagePolicyStatus, POLICY_NAME};
use k8s_openapi::api::core::v1::Secret;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use k8s_openapi::jiff::Timestamp;
use kube::api::{Patch, PatchParams};
use kube::runtime::controller::{Action, Controller};
use kube::runtime::watcher;
use kube::{Api, Client, Resource, ResourceExt};
use tokio::sync::watch;

use super::status::{self, SecretUse};
use crate::policy::{PolicyState, Problem, Problems, Rejected, Snapshot, Version};

/// The field manager of status writes.
pub const FIELD_MANAGER: &str = "image-policy";
/// How soon a policy naming a missing Secret is looked at again.
pub const MISSING_SECRET_RECHECK: Duration = Duration::from_secs(10);
/// How soon a policy naming Secrets that exist is looked at again.
pub const SECRET_RECHECK: Duration = Duration::from_secs(60);
/// How soon a failed reconcile is retried.
const RETRY: Duration = Duration::from_secs(5);

/// Why a status could not be brought up to date.
#[derive(Debug, thiserror::Error)]
pub enum StatusError {
    /// A Secret named by a `secretRef` could not be read (other than "not found").
    #[error("reading Secret {namespace}/{name}: {source}")]
    ReadSecret {
        /// Its namespace.
        namespace: String,
        /// Its name.
        name: String,
        /// The API error.
        source: kube::Error,
    },
    /// The status subresource could not be written.
    #[error("writing the status: {0}")]
    Write(#[source] kube::Error),
}

struct Context {
    client: Client,
    state: watch::Receiver<PolicyState>,
    leading: watch::Receiver<bool>,
    namespace: String,
}

/// Reconciles the status of every policy until the process ends.
pub async fn run(
    client: Client,
    state: watch::Receiver<PolicyState>,
    leading: watch::Receiver<bool>,
    namespace: String,
) {
    let api: Api<ClusterImagePolicy> = Api::all(client.clone());
    // Every policy, not only image-policy: `reconcile_on` (one object) is an unstable
    // kube-runtime feature, and there are few policies.
    let published = changes(state.clone());
    let mut leading_changes = leading.clone();
    let elected = changes(leading.clone()).filter(move |()| {
        let leads = *leading_changes.borrow_and_update();
        std::future::ready(leads)
    });
    let context = Arc::new(Context {
        client,
        state,
        leading,
        namespace,
    });
    Controller::new(api, watcher::Config::default())
        .reconcile_all_on(futures::stream::select(published, elected))
        .run(reconcile, retry, context)
        .for_each(|result| async move {
            if let Err(e) = result {
                tracing::debug!(target: "image-policy.controller", error = %e, "Status reconcile ended in error");
            }
        })
        .await;
}

/// One item per change of `rx`'s value.
fn changes<T: Send + Sync + 'static>(rx: watch::Receiver<T>) -> impl Stream<Item = ()> + Send {
    futures::stream::unfold(rx, |mut rx| async move {
        rx.changed().await.ok()?;
        Some(((), rx))
    })
}

async fn reconcile(
    policy: Arc<ClusterImagePolicy>,
    ctx: Arc<Context>,
) -> Result<Action, StatusError> {
    if !*ctx.leading.borrow() {
        // Leadership triggers a reconcile of every policy when it comes.
        return Ok(Action::await_change());
    }
    let name = policy.name_any();
    let Some(compiled) = Compiled::of(&policy, &ctx.state.borrow()) else {
        // The publisher has not caught up with this object yet (or this reconcile has not
        // caught up with the publisher): its next publication, or the object's next event,
        // triggers this reconcile again.
        return Ok(Action::await_change());
    };
    let (compiled, enforced) = compiled.view();
    let uses = match compiled {
        Ok(snapshot) => status::secret_uses(snapshot, &ctx.namespace),
        Err(_) => Vec::new(),
    };
    let missing = missing_secrets(&ctx.client, &uses).await?;
    let assessment = status::assess(&policy, compiled, enforced, &missing);
    let desired = status::status(&policy, assessment, now());
    if !status::is_current(policy.status.as_ref(), &desired) {
        write(&ctx.client, &name, &desired).await?;
    }
    Ok(match (uses.is_empty(), missing.is_empty()) {
        (true, _) => Action::await_change(),
        (false, true) => Action::requeue(SECRET_RECHECK),
        (false, false) => Action::requeue(MISSING_SECRET_RECHECK),
    })
}

/// What the status of one policy is assessed from.
enum Compiled {
    /// `image-policy`, compiled by the publisher and in force.
    Active(Arc<Snapshot>),
    /// `image-policy`, which the publisher could not compile.
    Rejected(Arc<Rejected>),
    /// A policy of another name, compiled here: it is never enforced.
    Other(Box<Result<Snapshot, Problems>>),
}

impl Compiled {
    /// `image-policy` as the publisher compiled this very version of it (`None` before it
    /// has), or any other policy compiled now.
    fn of(policy: &ClusterImagePolicy, state: &PolicyState) -> Option<Self> {
        if policy.name_any() != POLICY_NAME {
            return Some(Compiled::Other(Box::new(Snapshot::compile(policy))));
        }
        if state.version() != Some(&Version::of(policy)) {
            return None;
        }
        match state {
            PolicyState::Active(snapshot) => Some(Compiled::Active(snapshot.clone())),
            PolicyState::Invalid(rejected) => Some(Compiled::Rejected(rejected.clone())),
            PolicyState::Loading | PolicyState::Absent => None,
        }
    }

    /// The policy compiled, and what is enforced for it.
    fn view(&self) -> (Result<&Snapshot, &Problems>, Option<&Snapshot>) {
        match self {
            Compiled::Active(snapshot) => (Ok(snapshot), Some(snapshot)),
            Compiled::Rejected(rejected) => (Err(&rejected.problems), rejected.enforced.as_deref()),
            Compiled::Other(compiled) => (compiled.as_ref().as_ref(), None),
        }
    }
}

fn retry(policy: Arc<ClusterImagePolicy>, error: &StatusError, _: Arc<Context>) -> Action {
    tracing::warn!(target: "image-policy.controller", object = %policy.name_any(), error = %error, "Status not updated; retrying");
    Action::requeue(RETRY)
}

/// The problems of the Secrets in `uses` that do not exist, each Secret read once.
async fn missing_secrets(client: &Client, uses: &[SecretUse]) -> Result<Vec<Problem>, StatusError> {
    let mut exists: HashMap<(&str, &str), bool> = HashMap::new();
    let mut missing = Vec::new();
    for secret in uses {
        let key = (secret.namespace.as_str(), secret.name.as_str());
        let found = match exists.get(&key) {
            Some(found) => *found,
            None => {
                let api: Api<Secret> = Api::namespaced(client.clone(), &secret.namespace);
                let found = api
                    .get_metadata_opt(&secret.name)
                    .await
                    .map_err(|source| StatusError::ReadSecret {
                        namespace: secret.namespace.clone(),
                        name: secret.name.clone(),
                        source,
                    })?
                    .is_some();
                exists.insert(key, found);
                found
            }
        };
        if !found {
            missing.push(secret.not_found());
        }
    }
    Ok(missing)
}

/// Applies `status` to the policy's status subresource, owning it as [`FIELD_MANAGER`].
async fn write(
    client: &Client,
    name: &str,
    status: &ClusterImagePolicyStatus,
) -> Result<(), StatusError> {
    apply_status(client, name, FIELD_MANAGER, status)
        .await
        .map_err(StatusError::Write)?;
    if let Some(ready) = status::ready_condition(Some(status)) {
        tracing::info!(target: "image-policy.controller", object = %name, ready = %ready.status, reason = %ready.reason, "Status written");
    }
    Ok(())
}

/// Applies `status` (the fields of the status it owns) to the status subresource of the
/// policy `name`, with server-side apply as `manager`: the fields other managers own stay.
pub(crate) async fn apply_status(
    client: &Client,
    name: &str,
    manager: &str,
    status: &impl serde::Serialize,
) -> Result<(), kube::Error> {
    let api: Api<ClusterImagePolicy> = Api::all(client.clone());
    let patch = serde_json::json!({
        "apiVersion": ClusterImagePolicy::api_version(&()),
        "kind": ClusterImagePolicy::kind(&()),
        "status": status,
    });
    let params = PatchParams::apply(manager).force();
    api.patch_status(name, &params, &Patch::Apply(&patch))
        .await
        .map(|_| ())
}

/// Now, to the second: the precision a `metav1.Time` is stored with.
pub(crate) fn now() -> Time {
    let now = Timestamp::now();
    Time(Timestamp::from_second(now.as_second()).unwrap_or(now))
}
