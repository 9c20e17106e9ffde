//! Registry credentials gathered through the API server, in SPEC §4's order:
//! 1. the `imagePullSecrets` of the object being admitted;
//! 2. the `imagePullSecrets` of its service account (`default` when unset), same namespace;
//! 3. the matched entries' `secretRef`;
//! 4. the `imagePullSecrets` of service account `image-policy-registry-credentials` in the
//!    operator's namespace.
//!
//! Reads are cached for a few seconds so that a burst of Pods is not a burst of API calls. A
//! missing Secret or service account is skipped with a log line; a Secret that is not a
//! docker config is skipped the same way. Nothing read here is ever logged but names.

use std::collections::HashSet;
use std::sync::Arc;
use std::time::Duration;

use futures::future::BoxFuture;
use k8s_openapi::api::core::v1::{Secret, ServiceAccount};
use kube::{Api, Client};
use moka::future::Cache;

use super::review::{CredentialSource, Request};
use crate::policy::{Entry, ImageName};
use crate::verify::{Credential, DockerConfig};

/// The service account whose pull secrets are the last source.
pub const FALLBACK_SERVICE_ACCOUNT: &str = "image-policy-registry-credentials";

type Key = (String, String);

/// Credentials read from Secrets and ServiceAccounts through a kube client.
pub struct KubeCredentials {
    client: Client,
    operator_namespace: String,
    secrets: Cache<Key, Option<Arc<DockerConfig>>>,
    accounts: Cache<Key, Arc<Vec<String>>>,
}

impl KubeCredentials {
    /// A source reading with `client`; `operator_namespace` holds the fallback account.
    pub fn new(client: Client, operator_namespace: String, ttl: Duration) -> Self {
        KubeCredentials {
            client,
            operator_namespace,
            secrets: Cache::builder()
                .max_capacity(10_000)
                .time_to_live(ttl)
                .build(),
            accounts: Cache::builder()
                .max_capacity(10_000)
                .time_to_live(ttl)
                .build(),
        }
    }

    /// The docker config of one Secret; `None` when it is absent or not a docker config.
    async fn secret(&self, namespace: &str, name: &str) -> Option<Arc<DockerConfig>> {
        let key = (namespace.to_owned(), name.to_owned());
        let api: Api<Secret> = Api::namespaced(self.client.clone(), namespace);
        // An answer is cached, absence included; a failed read is not, so the next request
        // asks again instead of going without this credential for the cache's lifetime.
        let read = self
            .secrets
            .try_get_with(key, async move {
                let secret = match api.get_opt(name).await {
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
                let data = secret.data.unwrap_or_default().into_iter().map(|(k, v)| (k, v.0)).collect();
                let kind = secret.type_.unwrap_or_default();
                match DockerConfig::from_secret(&kind, &data) {
                    Ok(config) => Ok(Some(Arc::new(config))),
                    Err(e) => {
                        tracing::warn!(target: "image-policy.credentials", %namespace, secret = %name, error = %e, "Pull secret is not a docker config, skipped");
                        Ok(None)
                    }
                }
            })
            .await;
        read.ok().flatten()
    }

    /// The pull secret names of one service account; empty when it is absent.
    async fn account(&self, namespace: &str, name: &str) -> Arc<Vec<String>> {
        let key = (namespace.to_owned(), name.to_owned());
        let api: Api<ServiceAccount> = Api::namespaced(self.client.clone(), namespace);
        let read = self
            .accounts
            .try_get_with(key, async move {
                match api.get_opt(name).await {
                    Ok(Some(account)) => Ok(Arc::new(
                        account.image_pull_secrets.unwrap_or_default().into_iter().map(|r| r.name).collect(),
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
            })
            .await;
        read.unwrap_or_default()
    }

    async fn gather(
        &self,
        request: &Request,
        image: &ImageName,
        entries: &[&Entry],
    ) -> Vec<Credential> {
        let namespace = request.namespace.as_str();
        let mut sources: Vec<(String, String)> = Vec::new();
        if let Some((pull_secrets, account)) = object_sources(request) {
            sources.extend(pull_secrets.into_iter().map(|n| (namespace.to_owned(), n)));
            let names = self.account(namespace, account).await;
            sources.extend(names.iter().map(|n| (namespace.to_owned(), n.clone())));
        }
        for entry in entries {
            if let Some(secret) = &entry.secret_ref {
                let ns = secret
                    .namespace
                    .clone()
                    .unwrap_or_else(|| self.operator_namespace.clone());
                sources.push((ns, secret.name.clone()));
            }
        }
        let fallback = self
            .account(&self.operator_namespace, FALLBACK_SERVICE_ACCOUNT)
            .await;
        sources.extend(
            fallback
                .iter()
                .map(|n| (self.operator_namespace.clone(), n.clone())),
        );

        let reference = image.reference();
        let mut out: Vec<Credential> = Vec::new();
        for (ns, name) in dedup(sources) {
            if let Some(config) = self.secret(&ns, &name).await {
                for credential in config.lookup(reference.domain(), reference.path()) {
                    if !out.contains(credential) {
                        out.push(credential.clone());
                    }
                }
            }
        }
        out
    }
}

/// The object's own sources (SPEC §4's first two): the `imagePullSecrets` names of its pod
/// spec and its service account (`default` when unset); `None` when it has no pod spec.
pub fn object_sources(request: &Request) -> Option<(Vec<String>, &str)> {
    let spec = request.pod_spec()?;
    let account = spec
        .service_account_name()
        .filter(|s| !s.is_empty())
        .unwrap_or("default");
    Some((spec.pull_secret_names().to_vec(), account))
}

/// The sources in their order, each once. Linear: the object's `imagePullSecrets` are the
/// client's to make long (a 3 MiB body holds 170,000 names), and this runs without a yield.
fn dedup(sources: Vec<(String, String)>) -> Vec<(String, String)> {
    let mut seen = HashSet::with_capacity(sources.len());
    sources
        .into_iter()
        .filter(|source| seen.insert(source.clone()))
        .collect()
}

impl CredentialSource for KubeCredentials {
    fn credentials<'a>(
        &'a self,
        request: &'a Request,
        image: &'a ImageName,
        entries: &'a [&'a Entry],
    ) -> BoxFuture<'a, Vec<Credential>> {
        Box::pin(self.gather(request, image, entries))
    }
}
