//! Registry credentials for the images of one object, in docs/contract.md §4's order:
//! 1. the `imagePullSecrets` of the object being admitted;
//! 2. the `imagePullSecrets` of its service account (`default` when unset), same namespace;
//! 3. the matched entries' `secretRef`;
//! 4. the `imagePullSecrets` of service account `image-policy-registry-credentials` in the
//!    operator's namespace.
//!
//! A [`CredentialSource`] reads the docker configs of all of them once per object
//! ([`Sources`]); each image then takes the credentials that cover its registry from the
//! sources that apply to it. [`KubeCredentials`] reads them through the API server once and
//! then serves the last known answer at once, refreshing it in the background every few
//! seconds (`fresh.rs`): a burst of Pods is not a burst of API calls, and a slow or frozen API
//! server does not slow admissions that use credentials read before. A missing Secret or
//! service account is skipped with a log line; a Secret that is not a docker config is
//! skipped the same way. Nothing read here is ever logged but names.

use std::collections::HashSet;
use std::sync::Arc;
use std::time::Duration;

use futures::future::BoxFuture;
use image_policy_crd::SecretRef;
use k8s_openapi::api::core::v1::{Secret, ServiceAccount};
use kube::{Api, Client};

use super::review::Request;
use crate::policy::{Entry, ImageName};
use crate::verify::{Credential, DockerConfig};
use crate::workload::Object;

mod fresh;
use fresh::Fresh;

/// The service account whose pull secrets are the last source.
pub const FALLBACK_SERVICE_ACCOUNT: &str = "image-policy-registry-credentials";

/// The object whose images are verified, as far as its credentials go.
#[derive(Debug, Clone, Copy)]
pub struct Owner<'a> {
    /// Its namespace.
    pub namespace: &'a str,
    /// Its pod spec, when it has one.
    pub pod_spec: Option<&'a Object>,
}

impl<'a> Owner<'a> {
    /// The object of an admission request.
    pub fn of(request: &'a Request) -> Self {
        Owner {
            namespace: &request.namespace,
            pod_spec: request.change().pod_spec(),
        }
    }

    /// No object: credentials come from elsewhere (`image-policy check`).
    pub fn none() -> Self {
        Owner {
            namespace: "",
            pod_spec: None,
        }
    }

    /// The object's own sources (the first two): the `imagePullSecrets` names of its pod
    /// spec and its service account (`default` when unset); `None` without a pod spec.
    pub fn sources(&self) -> Option<(&'a [String], &'a str)> {
        let spec = self.pod_spec?;
        let account = spec
            .service_account_name()
            .filter(|s| !s.is_empty())
            .unwrap_or("default");
        Some((spec.pull_secret_names(), account))
    }
}

/// A Secret, by namespace and name.
type SecretId = (String, String);

/// The docker configs of one object's credential sources, read once.
#[derive(Debug, Default)]
pub struct Sources {
    /// The object's own pull secrets, then its service account's, in order.
    own: Vec<(SecretId, Arc<DockerConfig>)>,
    /// The entries' `secretRef`s, by reference.
    refs: Vec<(SecretRef, SecretId, Arc<DockerConfig>)>,
    /// The fallback service account's pull secrets.
    fallback: Vec<(SecretId, Arc<DockerConfig>)>,
}

impl Sources {
    /// One docker config, for an object of no cluster (`image-policy check`).
    pub fn config(config: DockerConfig) -> Self {
        Sources {
            own: vec![((String::new(), String::new()), Arc::new(config))],
            ..Sources::default()
        }
    }

    /// The credentials to try for `image`, matched by `entries`: from each source that
    /// applies, in order, each Secret once, each credential once.
    pub fn for_image(&self, image: &ImageName, entries: &[&Entry]) -> Vec<Credential> {
        let entry_refs = entries.iter().filter_map(|e| e.secret_ref.as_ref());
        let refs = entry_refs.flat_map(|secret| {
            self.refs
                .iter()
                .filter(move |(r, _, _)| r == secret)
                .map(|(_, id, config)| (id, config))
        });
        let ordered = self
            .own
            .iter()
            .map(|(id, config)| (id, config))
            .chain(refs)
            .chain(self.fallback.iter().map(|(id, config)| (id, config)));
        let mut seen = HashSet::new();
        let mut out: Vec<Credential> = Vec::new();
        for (id, config) in ordered {
            if !seen.insert(id) {
                continue;
            }
            for credential in config.lookup(image.registry(), image.repository()) {
                if !out.contains(credential) {
                    out.push(credential.clone());
                }
            }
        }
        out
    }
}

/// Where credentials come from; how they are found is the implementation's.
pub trait CredentialSource: Send + Sync {
    /// The sources of `owner`'s images, with those of the `secretRef`s of the entries they
    /// matched.
    fn gather<'a>(
        &'a self,
        owner: Owner<'a>,
        secret_refs: &'a [&'a SecretRef],
    ) -> BoxFuture<'a, Sources>;
}

/// No credentials at all: anonymous access only.
pub struct Anonymous;

impl CredentialSource for Anonymous {
    fn gather<'a>(&'a self, _: Owner<'a>, _: &'a [&'a SecretRef]) -> BoxFuture<'a, Sources> {
        Box::pin(async { Sources::default() })
    }
}

/// Credentials read from Secrets and ServiceAccounts through a kube client.
pub struct KubeCredentials {
    client: Client,
    operator_namespace: String,
    secrets: Fresh<SecretId, Option<Arc<DockerConfig>>>,
    accounts: Fresh<SecretId, Arc<Vec<String>>>,
}

/// How long a background refresh of one Secret or service account may take.
const REFRESH_BUDGET: Duration = Duration::from_secs(5);

/// Entries unused this long are dropped (a namespace deleted, a Pod that no longer runs).
const IDLE: Duration = Duration::from_secs(3600);

impl KubeCredentials {
    /// A source reading with `client`; `operator_namespace` holds the fallback account. What
    /// it read is refreshed when older than `refresh_after`.
    pub fn new(client: Client, operator_namespace: String, refresh_after: Duration) -> Self {
        KubeCredentials {
            client,
            operator_namespace,
            secrets: Fresh::new(10_000, refresh_after, REFRESH_BUDGET, IDLE),
            accounts: Fresh::new(10_000, refresh_after, REFRESH_BUDGET, IDLE),
        }
    }

    /// The docker config of one Secret; `None` when it is absent or not a docker config.
    async fn secret(&self, namespace: &str, name: &str) -> Option<Arc<DockerConfig>> {
        let key = (namespace.to_owned(), name.to_owned());
        let read = || read_secret(self.client.clone(), namespace.to_owned(), name.to_owned());
        self.secrets.get(key, read).await.flatten()
    }

    /// The pull secret names of one service account; empty when it is absent.
    async fn account(&self, namespace: &str, name: &str) -> Arc<Vec<String>> {
        let key = (namespace.to_owned(), name.to_owned());
        let read = || read_account(self.client.clone(), namespace.to_owned(), name.to_owned());
        self.accounts.get(key, read).await.unwrap_or_default()
    }

    /// The docker configs of `ids`, in order, each Secret read once.
    async fn configs(&self, ids: Vec<SecretId>) -> Vec<(SecretId, Arc<DockerConfig>)> {
        let mut out = Vec::with_capacity(ids.len());
        for (namespace, name) in dedup(ids) {
            if let Some(config) = self.secret(&namespace, &name).await {
                out.push(((namespace, name), config));
            }
        }
        out
    }

    async fn read(&self, owner: Owner<'_>, secret_refs: &[&SecretRef]) -> Sources {
        let namespace = owner.namespace;
        let mut own: Vec<SecretId> = Vec::new();
        if let Some((pull_secrets, account)) = owner.sources() {
            own.extend(
                pull_secrets
                    .iter()
                    .map(|n| (namespace.to_owned(), n.clone())),
            );
            let names = self.account(namespace, account).await;
            own.extend(names.iter().map(|n| (namespace.to_owned(), n.clone())));
        }
        let own = self.configs(own).await;
        let mut refs = Vec::new();
        for secret in secret_refs {
            let ns = secret
                .namespace
                .clone()
                .unwrap_or_else(|| self.operator_namespace.clone());
            let id = (ns, secret.name.clone());
            if let Some(config) = self.secret(&id.0, &id.1).await {
                refs.push(((*secret).clone(), id, config));
            }
        }
        let fallback = self
            .account(&self.operator_namespace, FALLBACK_SERVICE_ACCOUNT)
            .await;
        let fallback = fallback
            .iter()
            .map(|n| (self.operator_namespace.clone(), n.clone()))
            .collect();
        let fallback = self.configs(fallback).await;
        Sources {
            own,
            refs,
            fallback,
        }
    }
}

/// One read of a Secret: its docker config, `None` when it is absent or not a docker config
/// (an answer, kept), `Err` when the API server did not answer (not kept).
async fn read_secret(
    client: Client,
    namespace: String,
    name: String,
) -> Result<Option<Arc<DockerConfig>>, ()> {
    let api: Api<Secret> = Api::namespaced(client, &namespace);
    let secret = match api.get_opt(&name).await {
        Ok(Some(secret)) => secret,
        Ok(None) => {
            tracing::info!(target: "image-policy.credentials", %namespace, secret = %name, "Pull secret not found, skipped");
            return Ok(None);
        }
        Err(e) => {
            tracing::warn!(target: "image-policy.credentials", %namespace, secret = %name, error = %e, "Pull secret unreadable, skipped");
            return Err(());
        }
    };
    let data = secret
        .data
        .unwrap_or_default()
        .into_iter()
        .map(|(k, v)| (k, v.0))
        .collect();
    let kind = secret.type_.unwrap_or_default();
    match DockerConfig::from_secret(&kind, &data) {
        Ok(config) => Ok(Some(Arc::new(config))),
        Err(e) => {
            tracing::warn!(target: "image-policy.credentials", %namespace, secret = %name, error = %e, "Pull secret is not a docker config, skipped");
            Ok(None)
        }
    }
}

/// One read of a service account: its pull secret names, empty when it is absent.
async fn read_account(
    client: Client,
    namespace: String,
    name: String,
) -> Result<Arc<Vec<String>>, ()> {
    let api: Api<ServiceAccount> = Api::namespaced(client, &namespace);
    match api.get_opt(&name).await {
        Ok(Some(account)) => Ok(Arc::new(
            account
                .image_pull_secrets
                .unwrap_or_default()
                .into_iter()
                .map(|r| r.name)
                .collect(),
        )),
        Ok(None) => {
            tracing::info!(target: "image-policy.credentials", %namespace, service_account = %name, "Service account not found, skipped");
            Ok(Arc::new(Vec::new()))
        }
        Err(e) => {
            tracing::warn!(target: "image-policy.credentials", %namespace, service_account = %name, error = %e, "Service account unreadable, skipped");
            Err(())
        }
    }
}

/// The sources in their order, each once. Linear: the object's `imagePullSecrets` are the
/// client's to make long (a 3 MiB body holds 170,000 names), and this runs without a yield.
fn dedup(sources: Vec<SecretId>) -> Vec<SecretId> {
    let mut seen = HashSet::with_capacity(sources.len());
    sources
        .into_iter()
        .filter(|source| seen.insert(source.clone()))
        .collect()
}

impl CredentialSource for KubeCredentials {
    fn gather<'a>(
        &'a self,
        owner: Owner<'a>,
        secret_refs: &'a [&'a SecretRef],
    ) -> BoxFuture<'a, Sources> {
        Box::pin(self.read(owner, secret_refs))
    }
}
