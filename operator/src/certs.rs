//! `certificates.mode=operator`: the operator makes its own CA and serving certificate, keeps
//! them in a Secret, keeps the webhook configuration's `caBundle` in step, and rotates them
//! before they expire without a moment in which the API server distrusts what is served.
//!
//! Every replica runs the same loop ([`manage`]): read the Secret and serve its certificate;
//! then, on the holder of the controller's lease only, read the webhook configuration and take
//! the steps [`plan`](mod@plan) decides. One writer keeps a replica that read the Secret a
//! moment before a renewal from publishing the bundle of before it; writes are also
//! optimistic (the `resourceVersion` read), so a lease changing hands mid-pass cannot undo a
//! newer write. See [`plan`](mod@plan) for the steps of a rotation and the Secret's keys,
//! [`issue`] for the certificates themselves.
//!
//! The certificate's names follow the webhook configuration: `<service>.<namespace>.svc`
//! (and `.svc.cluster.local`) for a `service` client config, the host of a `url`, plus the
//! names given with `--tls-extra-name`. If they change, a new certificate is issued at once.

pub mod issue;
pub mod plan;

use std::collections::BTreeSet;
use std::net::IpAddr;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use k8s_openapi::ByteString;
use k8s_openapi::api::admissionregistration::v1::{
    MutatingWebhookConfiguration, ValidatingWebhookConfiguration, WebhookClientConfig,
};
use k8s_openapi::api::core::v1::Secret;
use kube::api::{ObjectMeta, PostParams};
use kube::{Api, Client};
use tokio::sync::watch;

use self::plan::{Ca, Lifetimes, Pair, Step, Stored, issued, keys, plan, switched, tidied};
use crate::duration::parse_duration;
use crate::server::ProvidedCert;

const LOG_TARGET: &str = "image-policy.certificates";

/// How long before `not_before` of a new certificate its validity starts: the API server's
/// clock may be a little behind ours.
const BACKDATE: Duration = Duration::from_secs(60);

/// The most steps one pass takes (a full rotation needs three before its publication).
const MAX_STEPS: usize = 6;

/// The flags of `image-policy run` for `certificates.mode=operator`.
#[derive(Debug, Clone, clap::Args)]
pub struct CertArgs {
    /// Manage the serving certificate in this Secret (in --namespace) instead of reading
    /// files: make a CA and certificate, keep --webhook-configuration's caBundle in step and
    /// rotate before expiry.
    #[arg(long, value_name = "NAME", conflicts_with_all = ["tls_cert_file", "tls_key_file"], requires = "webhook_configuration")]
    pub tls_secret: Option<String>,
    /// The ValidatingWebhookConfiguration whose caBundle follows the managed certificate.
    #[arg(long, value_name = "NAME", requires = "tls_secret")]
    pub webhook_configuration: Option<String>,
    /// The MutatingWebhookConfiguration (of /pin-digests) whose caBundle follows it too.
    #[arg(long, value_name = "NAME", requires = "tls_secret")]
    pub mutating_webhook_configuration: Option<String>,
    /// A further DNS name or IP address for the managed certificate (repeatable).
    #[arg(long = "tls-extra-name", value_name = "NAME")]
    pub extra_names: Vec<String>,
    /// How long a managed certificate (and its CA) is valid.
    #[arg(long, value_name = "DURATION", default_value = "8760h", value_parser = parse_duration)]
    pub tls_validity: Duration,
    /// How long before expiry the managed certificate is renewed (at most two thirds of the
    /// validity).
    #[arg(long, value_name = "DURATION", default_value = "720h", value_parser = parse_duration)]
    pub tls_renew_before: Duration,
    /// How often the Secret and the webhook configuration are looked at.
    #[arg(long, value_name = "DURATION", default_value = "1m", value_parser = parse_duration)]
    pub tls_check_interval: Duration,
}

/// What the certificate manager works with.
#[derive(Debug, Clone)]
pub struct CertSettings {
    /// The Secret's namespace (the operator's).
    pub namespace: String,
    /// The name of the Secret that keeps the CA and the serving certificate.
    pub secret: String,
    /// The name of the ValidatingWebhookConfiguration whose caBundle follows the CA.
    pub webhook_configuration: String,
    /// The MutatingWebhookConfiguration, when there is one.
    pub mutating_webhook_configuration: Option<String>,
    /// Names beyond those of the webhook configuration.
    pub extra_names: Vec<String>,
    /// Validity and renewal.
    pub lifetimes: Lifetimes,
    /// The time between passes.
    pub interval: Duration,
}

impl CertArgs {
    /// The settings, when a Secret is to be managed; an error for lifetimes that could only
    /// make the manager spin (a check interval under a second, a validity under ten seconds).
    pub fn settings(&self, namespace: &str) -> Result<Option<CertSettings>, SettingsError> {
        let (Some(secret), Some(webhook_configuration)) =
            (&self.tls_secret, &self.webhook_configuration)
        else {
            return Ok(None);
        };
        if self.tls_check_interval < Duration::from_secs(1) {
            return Err(SettingsError::CheckInterval);
        }
        if self.tls_validity < Duration::from_secs(10) {
            return Err(SettingsError::Validity);
        }
        Ok(Some(CertSettings {
            namespace: namespace.to_owned(),
            secret: secret.clone(),
            webhook_configuration: webhook_configuration.clone(),
            mutating_webhook_configuration: self.mutating_webhook_configuration.clone(),
            // Written as the certificate reads them back, or they would never match.
            extra_names: self.extra_names.iter().map(|n| canonical_host(n)).collect(),
            lifetimes: Lifetimes {
                validity: self.tls_validity,
                renew_before: self.tls_renew_before,
            },
            interval: self.tls_check_interval,
        }))
    }
}

/// Why the certificate flags cannot be used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SettingsError {
    /// A check interval that would make the manager spin.
    #[error("--tls-check-interval must be at least 1s")]
    CheckInterval,
    /// A validity that would make the manager renew all the time.
    #[error("--tls-validity must be at least 10s")]
    Validity,
}

/// The webhook configurations whose `caBundle` follows the certificate: the validating one,
/// and the mutating one of `/pin-digests` when there is one.
pub struct Configs {
    validating: ValidatingWebhookConfiguration,
    mutating: Option<MutatingWebhookConfiguration>,
}

impl Configs {
    /// The client configs of every webhook of both.
    fn clients(&self) -> impl Iterator<Item = &WebhookClientConfig> {
        let validating = self
            .validating
            .webhooks
            .iter()
            .flatten()
            .map(|w| &w.client_config);
        let mutating = self
            .mutating
            .iter()
            .flat_map(|c| c.webhooks.iter().flatten())
            .map(|w| &w.client_config);
        validating.chain(mutating)
    }

    /// The `caBundle` of each webhook, as text.
    fn published_bundles(&self) -> Vec<String> {
        self.clients()
            .map(|c| {
                c.ca_bundle
                    .as_ref()
                    .map(|b| String::from_utf8_lossy(&b.0).into_owned())
                    .unwrap_or_default()
            })
            .collect()
    }

    /// The names the API server uses to reach the webhooks.
    fn names(&self) -> BTreeSet<String> {
        names_of(self.clients())
    }

    /// Sets every webhook's `caBundle` to `bundle`.
    fn set_bundle(&mut self, bundle: &ByteString) {
        let validating = self
            .validating
            .webhooks
            .iter_mut()
            .flatten()
            .map(|w| &mut w.client_config);
        let mutating = self
            .mutating
            .iter_mut()
            .flat_map(|c| c.webhooks.iter_mut().flatten())
            .map(|w| &mut w.client_config);
        for client in validating.chain(mutating) {
            client.ca_bundle = Some(bundle.clone());
        }
    }
}

/// Why a pass stopped early; the next pass tries again.
#[derive(Debug, thiserror::Error)]
pub enum PassError {
    /// The API refused or failed a read or write.
    #[error("{what}: {source}")]
    Api {
        /// What was being done.
        what: String,
        /// The client's error.
        #[source]
        source: kube::Error,
    },
    /// A webhook configuration does not exist, or has no webhook.
    #[error("{0} not found or without webhooks")]
    NoWebhook(String),
    /// A certificate could not be made.
    #[error(transparent)]
    Issue(#[from] issue::IssueError),
}

/// Serves the certificate in `settings.secret` through `provided` (`serving` turns true once
/// one is served) and, while `leading` says this replica holds the lease, keeps it valid and
/// trusted. Runs forever.
pub async fn manage(
    client: Client,
    settings: CertSettings,
    provided: Arc<ProvidedCert>,
    mut leading: watch::Receiver<bool>,
    serving: watch::Sender<bool>,
) {
    let manager = Manager {
        secrets: Api::namespaced(client.clone(), &settings.namespace),
        configs: Api::all(client.clone()),
        mutating: Api::all(client),
        settings,
        provided,
        serving,
    };
    tracing::info!(target: LOG_TARGET, secret = %manager.secret_name(), webhook_configuration = %manager.settings.webhook_configuration, "Managing the webhook's serving certificate");
    loop {
        let lead = *leading.borrow_and_update();
        let retry = match manager.pass(lead).await {
            Ok(()) => manager.settings.interval,
            Err(PassError::Api { source, .. }) if is_conflict(&source) => {
                // Another writer was faster: start again from what it wrote.
                Duration::from_secs(1)
            }
            Err(e) => {
                let error = &e as &dyn std::error::Error;
                tracing::warn!(target: LOG_TARGET, secret = %manager.secret_name(), error, "Certificate pass failed, retrying");
                manager.settings.interval.min(Duration::from_secs(5))
            }
        };
        // Until a certificate is served, look often; a new leader starts at once.
        let retry = if *manager.serving.borrow() {
            retry
        } else {
            retry.min(Duration::from_secs(1))
        };
        tokio::select! {
            () = tokio::time::sleep(retry) => {}
            Ok(()) = leading.changed() => {}
        }
    }
}

fn is_conflict(e: &kube::Error) -> bool {
    matches!(e, kube::Error::Api(status) if status.is_conflict())
}

struct Manager {
    secrets: Api<Secret>,
    configs: Api<ValidatingWebhookConfiguration>,
    mutating: Api<MutatingWebhookConfiguration>,
    settings: CertSettings,
    provided: Arc<ProvidedCert>,
    serving: watch::Sender<bool>,
}

impl Manager {
    fn secret_name(&self) -> String {
        format!("{}/{}", self.settings.namespace, self.settings.secret)
    }

    /// Serves what the Secret holds; then, when `lead`, steps until there is nothing to do,
    /// or until a new bundle was published (the API server is given until the next pass to
    /// see it).
    async fn pass(&self, lead: bool) -> Result<(), PassError> {
        for _ in 0..MAX_STEPS {
            let secret = self.secret(lead).await?;
            let (stored, problems) = Stored::read(|key| {
                secret
                    .data
                    .as_ref()
                    .and_then(|d| d.get(key))
                    .map(|b| b.0.clone())
            });
            for problem in problems {
                tracing::warn!(target: LOG_TARGET, secret = %self.secret_name(), %problem, "Unusable certificate data, replacing it");
            }
            self.serve(&stored);
            if !lead {
                return Ok(());
            }
            let mut config = self.webhook_configurations().await?;
            let mut names = config.names();
            names.extend(self.settings.extra_names.iter().cloned());
            let published = config.published_bundles();
            let now = SystemTime::now();
            let step = plan(&stored, &published, &names, now, self.settings.lifetimes);
            let next = match step {
                Step::Idle => return Ok(()),
                Step::Publish => return self.publish(&mut config, &stored).await,
                Step::Issue { immediate } => {
                    let (ca, pair) = self.issue(&names, now)?;
                    let names = names.iter().cloned().collect::<Vec<_>>().join(",");
                    let not_after = chrono::DateTime::<chrono::Utc>::from(pair.info.not_after)
                        .to_rfc3339_opts(chrono::SecondsFormat::Secs, true);
                    tracing::info!(target: LOG_TARGET, secret = %self.secret_name(), %names, %not_after, serve_at_once = immediate, "Issued a new CA and serving certificate");
                    issued(&stored, immediate, ca, pair)
                }
                Step::Switch => {
                    tracing::info!(target: LOG_TARGET, secret = %self.secret_name(), "Serving the renewed certificate");
                    switched(&stored)
                }
                Step::Tidy => tidied(&stored, now),
            };
            self.write(secret, &next).await?;
        }
        Ok(())
    }

    /// The webhook configurations whose `caBundle` follows the certificate; an error when one
    /// is missing or has no webhook.
    async fn webhook_configurations(&self) -> Result<Configs, PassError> {
        let validating = read_config(&self.configs, &self.settings.webhook_configuration).await?;
        let mutating = match &self.settings.mutating_webhook_configuration {
            Some(name) => Some(read_config(&self.mutating, name).await?),
            None => None,
        };
        Ok(Configs {
            validating,
            mutating,
        })
    }

    /// Writes the stored CA bundle into every webhook of `configs`.
    async fn publish(&self, configs: &mut Configs, stored: &Stored) -> Result<(), PassError> {
        let bundle = ByteString(stored.bundle_pem().into_bytes());
        configs.set_bundle(&bundle);
        let name = &self.settings.webhook_configuration;
        write_config(&self.configs, name, &configs.validating).await?;
        if let (Some(name), Some(mutating)) = (
            &self.settings.mutating_webhook_configuration,
            &configs.mutating,
        ) {
            write_config(&self.mutating, name, mutating).await?;
        }
        let cas = stored.bundle.len();
        tracing::info!(target: LOG_TARGET, webhook_configuration = %name, mutating_webhook_configuration = self.settings.mutating_webhook_configuration.as_deref(), cas, "Published the CA bundle");
        Ok(())
    }

    /// The Secret; created empty when missing and `lead` (the chart creates it, a
    /// development setup may not).
    async fn secret(&self, lead: bool) -> Result<Secret, PassError> {
        let name = &self.settings.secret;
        let api = |what: &str, source| PassError::Api {
            what: format!("{what} Secret {}", self.secret_name()),
            source,
        };
        if let Some(secret) = self
            .secrets
            .get_opt(name)
            .await
            .map_err(|e| api("reading", e))?
        {
            return Ok(secret);
        }
        if !lead {
            return Ok(Secret::default());
        }
        let empty = Secret {
            metadata: ObjectMeta {
                name: Some(name.clone()),
                ..ObjectMeta::default()
            },
            type_: Some("kubernetes.io/tls".to_owned()),
            data: Some(
                [keys::CERT, keys::KEY]
                    .into_iter()
                    .map(|k| (k.to_owned(), ByteString(Vec::new())))
                    .collect(),
            ),
            ..Secret::default()
        };
        self.secrets
            .create(&PostParams::default(), &empty)
            .await
            .map_err(|e| api("creating", e))
    }

    /// Replaces the Secret's certificate keys, as of the `resourceVersion` read: a concurrent
    /// writer makes this one conflict, and the next pass starts from what it wrote.
    async fn write(&self, mut secret: Secret, stored: &Stored) -> Result<(), PassError> {
        let data = secret.data.get_or_insert_with(Default::default);
        for key in [keys::NEXT_CERT, keys::NEXT_KEY] {
            data.remove(key);
        }
        for (key, value) in stored.data() {
            data.insert(key.to_owned(), ByteString(value.into_bytes()));
        }
        self.secrets
            .replace(&self.settings.secret, &PostParams::default(), &secret)
            .await
            .map(drop)
            .map_err(|source| PassError::Api {
                what: format!("updating Secret {}", self.secret_name()),
                source,
            })
    }

    fn issue(&self, names: &BTreeSet<String>, now: SystemTime) -> Result<(Ca, Pair), PassError> {
        let from = now.checked_sub(BACKDATE).unwrap_or(now);
        let made = issue::issue(names, from, now + self.settings.lifetimes.validity)?;
        Ok(made.into_parts())
    }

    /// Serves the Secret's certificate, if it holds a usable one.
    fn serve(&self, stored: &Stored) {
        let Some(serving) = &stored.serving else {
            return;
        };
        match self.provided.set_pem(
            serving.cert.as_bytes(),
            serving.key.as_bytes(),
            &format!("Secret {}", self.secret_name()),
        ) {
            Ok(true) => {
                tracing::info!(target: LOG_TARGET, secret = %self.secret_name(), "Serving the certificate of the Secret");
                self.serving.send_replace(true);
            }
            Ok(false) => {}
            Err(e) => {
                let error = &e as &dyn std::error::Error;
                tracing::warn!(target: LOG_TARGET, error, "Cannot serve the certificate of the Secret");
            }
        }
    }
}

/// A host as a certificate's subjectAltName reads back: an IP address in its canonical form
/// (without brackets), a DNS name in lower case.
fn canonical_host(host: &str) -> String {
    let host = host.trim_start_matches('[').trim_end_matches(']');
    match host.parse::<IpAddr>() {
        Ok(ip) => ip.to_string(),
        Err(_) => host.to_ascii_lowercase(),
    }
}

/// A webhook configuration of kind `K`; an error when it is missing or has no webhook.
async fn read_config<K>(api: &Api<K>, name: &str) -> Result<K, PassError>
where
    K: kube::Resource<DynamicType = ()>
        + Clone
        + serde::de::DeserializeOwned
        + std::fmt::Debug
        + HasWebhooks,
{
    let kind = K::kind(&()).into_owned();
    api.get_opt(name)
        .await
        .map_err(|source| PassError::Api {
            what: format!("reading {kind} {name}"),
            source,
        })?
        .filter(HasWebhooks::has_webhooks)
        .ok_or_else(|| PassError::NoWebhook(format!("{kind} {name}")))
}

/// Replaces the webhook configuration `name` with `config`.
async fn write_config<K>(api: &Api<K>, name: &str, config: &K) -> Result<(), PassError>
where
    K: kube::Resource<DynamicType = ()>
        + Clone
        + serde::de::DeserializeOwned
        + serde::Serialize
        + std::fmt::Debug,
{
    let kind = K::kind(&()).into_owned();
    api.replace(name, &PostParams::default(), config)
        .await
        .map_err(|source| PassError::Api {
            what: format!("updating the caBundle of {kind} {name}"),
            source,
        })?;
    Ok(())
}

/// A webhook configuration that may list no webhook.
trait HasWebhooks {
    fn has_webhooks(&self) -> bool;
}

impl HasWebhooks for ValidatingWebhookConfiguration {
    fn has_webhooks(&self) -> bool {
        self.webhooks.as_ref().is_some_and(|w| !w.is_empty())
    }
}

impl HasWebhooks for MutatingWebhookConfiguration {
    fn has_webhooks(&self) -> bool {
        self.webhooks.as_ref().is_some_and(|w| !w.is_empty())
    }
}

/// The names the API server uses to reach the webhooks of these client configs.
pub fn names_of<'a>(clients: impl Iterator<Item = &'a WebhookClientConfig>) -> BTreeSet<String> {
    let mut names = BTreeSet::new();
    for client in clients {
        if let Some(service) = &client.service {
            let base = format!("{}.{}.svc", service.name, service.namespace);
            names.insert(format!("{base}.cluster.local"));
            names.insert(base);
        }
        if let Some(host) = client
            .url
            .as_deref()
            .and_then(|u| u.parse::<http::Uri>().ok())
            .and_then(|u| u.host().map(str::to_owned))
        {
            names.insert(canonical_host(&host));
        }
    }
    names
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    fn config(json: serde_json::Value) -> ValidatingWebhookConfiguration {
        serde_json::from_value(json).unwrap()
    }

    #[test]
    fn names_follow_the_client_configs() {
        let c = config(serde_json::json!({
            "metadata": {"name": "c"},
            "webhooks": [
                {"name": "a.x", "sideEffects": "None", "admissionReviewVersions": ["v1"],
                 "clientConfig": {"service": {"name": "svc", "namespace": "ns"}}},
                {"name": "b.x", "sideEffects": "None", "admissionReviewVersions": ["v1"],
                 "clientConfig": {"url": "https://127.0.0.1:8443/signing-policy-check"}},
                {"name": "c.x", "sideEffects": "None", "admissionReviewVersions": ["v1"],
                 "clientConfig": {"url": "https://[::1]:8443/x"}},
                {"name": "d.x", "sideEffects": "None", "admissionReviewVersions": ["v1"],
                 "clientConfig": {"url": "https://Webhook.Example:8443/x"}},
            ]
        }));
        assert_eq!(canonical_host("2001:DB8::0001"), "2001:db8::1");
        let configs = Configs {
            validating: c,
            mutating: Some(serde_json::from_value(serde_json::json!({
                "metadata": {"name": "m"},
                "webhooks": [{"name": "p.x", "sideEffects": "None", "admissionReviewVersions": ["v1"],
                    "clientConfig": {"service": {"name": "svc", "namespace": "ns", "path": "/pin-digests"},
                        "caBundle": "YQ=="}}]
            })).unwrap()),
        };
        assert_eq!(configs.published_bundles(), ["", "", "", "", "a"]);
        let mut written = configs;
        written.set_bundle(&ByteString(b"b".to_vec()));
        assert_eq!(written.published_bundles(), ["b"; 5]);
        let names: Vec<String> = written.names().into_iter().collect();
        assert_eq!(
            names,
            [
                "127.0.0.1",
                "::1",
                "svc.ns.svc",
                "svc.ns.svc.cluster.local",
                "webhook.example"
            ]
        );
    }
}
