//! `image-policy audit`: which running workloads a policy file would refuse, and why, before
//! it is applied. It reads the cluster of the kubeconfig (the usual places: `$KUBECONFIG`,
//! `~/.kube/config`, or in-cluster) and changes nothing in it; images are decided as the
//! webhook decides them (registry credentials from the cluster's pull secrets, as far as the
//! kubeconfig's user may read them).
//!
//! The trusted roots the policy names are read from their ConfigMaps in `--namespace`, as the
//! operator reads them; `--trusted-root NAME=FILE` reads one from a file instead.
//!
//! Exits 0 when no workload would be refused, 1 when some would, 2 when the input cannot be
//! used (the policy file, the flags, or a cluster that cannot be read).

use std::io::Write;
use std::sync::Arc;
use std::time::Duration;

use image_policy_crd::ClusterImagePolicy;
use k8s_openapi::api::core::v1::ConfigMap;
use kube::Api;
use tokio::sync::watch;

use super::decision::DecisionArgs;
use super::error::CliError;
use super::input::{compile_policy, read_policy, root_documents};
use super::output::Output;
use super::policy_file::PolicyArgs;
use crate::audit::{Pace, Report, WorkloadRefusal, check, workloads};
use crate::policy::dns::is_dns_subdomain;
use crate::policy::{Documents, PolicyState};
use crate::webhook::Webhook;
use crate::webhook::credentials::KubeCredentials;

/// Arguments of `image-policy audit`.
#[derive(Debug, clap::Args)]
pub struct AuditArgs {
    #[command(flatten)]
    policy: PolicyArgs,
    #[command(flatten)]
    decision: DecisionArgs,
    /// The operator's namespace, home of the image-policy-registry-credentials account.
    #[arg(long, default_value = "image-policy-system")]
    namespace: String,
    #[command(flatten)]
    scope: Scope,
    /// At most this many images decided a second (0: no limit).
    #[arg(long, value_name = "N", default_value_t = 20)]
    rate: u32,
    /// Output format.
    #[arg(long, short = 'o', value_enum, default_value_t = Output::Text)]
    output: Output,
}

/// The namespaces whose workloads are never checked, besides those the policy excludes.
#[derive(Debug, Clone, clap::Args)]
pub struct Scope {
    /// A namespace the webhook never intercepts (repeatable): its workloads are not checked.
    /// The chart passes kube-system, its own namespace and webhook.excludedNamespaces.
    #[arg(
        long = "unchecked-namespace",
        value_name = "NAMESPACE",
        default_values_t = ["kube-system".to_owned(), "image-policy-system".to_owned()]
    )]
    pub namespaces: Vec<String>,
}

/// What `--output json` prints.
#[derive(Debug, serde::Serialize)]
#[serde(rename_all = "camelCase")]
struct Printed<'a> {
    policy: String,
    #[serde(flatten)]
    report: &'a Report,
}

/// Runs `audit`; `Ok(true)` when no workload would be refused.
pub fn run(args: &AuditArgs, out: &mut impl Write) -> Result<bool, CliError> {
    // The file first: an unusable one is refused before the cluster is asked anything.
    let policy = read_policy(&args.policy)?;
    let files = root_documents(&policy, &args.decision.trusted_root)?;
    let verifier = args.decision.verifier()?;
    let cluster = |detail: String| CliError::Input {
        path: "the cluster".into(),
        detail,
    };
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .map_err(|e| cluster(e.to_string()))?;
    let report = runtime.block_on(async {
        let client = kube::Client::try_default()
            .await
            .map_err(|e| cluster(format!("kubeconfig: {e}")))?;
        // The trusted roots as the operator reads them, from ConfigMaps of its namespace;
        // those given as files take their place.
        let mut documents = cluster_roots(&client, &args.namespace, &policy)
            .await
            .map_err(|e| cluster(e.to_string()))?;
        documents.extend(files);
        let snapshot = Arc::new(compile_policy(&args.policy, &policy, &documents)?);
        let workloads = workloads::list(&client)
            .await
            .map_err(|e| cluster(e.to_string()))?;
        let (_policy, rx) = watch::channel(PolicyState::Active(snapshot.clone()));
        // Read once: nothing is cached across runs of a command.
        let credentials = KubeCredentials::new(client, args.namespace.clone(), Duration::MAX);
        let settings = args.decision.settings();
        let webhook = Webhook::new(rx, verifier, Arc::new(credentials), settings);
        let mut pace = Pace::per_second(args.rate);
        let admission = webhook.admission();
        let unchecked = &args.scope.namespaces;
        Ok::<_, CliError>(check(admission, &snapshot, &workloads, unchecked, &mut pace).await)
    })?;
    match args.output {
        Output::Json => {
            let printed = Printed {
                policy: args.policy.file.display().to_string(),
                report: &report,
            };
            serde_json::to_writer_pretty(&mut *out, &printed).map_err(std::io::Error::from)?;
            writeln!(out)?;
        }
        Output::Text => write_text(out, &report)?,
    }
    Ok(report.refused.is_empty())
}

/// The data of the ConfigMaps in `namespace` that the policy's trusted roots name, as the
/// operator's reflector holds them: one without data is an empty map, one that does not exist
/// is left out (its keys then verify nothing, as in the cluster). A name that is no ConfigMap
/// name is not asked for: compiling the policy names its field.
async fn cluster_roots(
    client: &kube::Client,
    namespace: &str,
    policy: &ClusterImagePolicy,
) -> Result<Documents, RootUnread> {
    let maps: Api<ConfigMap> = Api::namespaced(client.clone(), namespace);
    let mut documents = Documents::new();
    for root in &policy.spec.verification.trusted_roots {
        let name = &root.config_map_ref.name;
        if documents.contains_key(name) || !is_dns_subdomain(name) {
            continue;
        }
        let map = maps.get_opt(name).await.map_err(|source| RootUnread {
            namespace: namespace.to_owned(),
            name: name.clone(),
            source,
        })?;
        if let Some(map) = map {
            documents.insert(name.clone(), map.data.unwrap_or_default());
        }
    }
    Ok(documents)
}

/// A trusted root's ConfigMap that the cluster did not give (not for want of it: one that does
/// not exist is no error).
#[derive(Debug, thiserror::Error)]
#[error("reading ConfigMap {namespace}/{name}: {source}")]
struct RootUnread {
    namespace: String,
    name: String,
    source: kube::Error,
}

fn write_text(out: &mut impl Write, report: &Report) -> std::io::Result<()> {
    for refused in &report.refused {
        write_refused(out, refused)?;
    }
    writeln!(
        out,
        "{} of {} workloads would be refused.",
        report.refused_workloads, report.workloads
    )
}

fn write_refused(out: &mut impl Write, refused: &WorkloadRefusal) -> std::io::Result<()> {
    let mode = if refused.warn_mode {
        " (Warn mode: admitted with a warning)"
    } else {
        ""
    };
    writeln!(
        out,
        "{}/{} {} {}: {}{mode}\n  {}",
        refused.namespace,
        refused.kind,
        refused.name,
        refused.image,
        refused.reason,
        refused.message
    )
}

#[cfg(test)]
mod tests {
    #![allow(clippy::expect_used)]

    use std::sync::Mutex;

    use super::*;

    /// An API server whose every ConfigMap exists, without data; the paths asked are kept.
    fn api_server() -> (kube::Client, Arc<Mutex<Vec<String>>>) {
        let asked = Arc::new(Mutex::new(Vec::new()));
        let seen = asked.clone();
        let service = tower::service_fn(move |request: http::Request<kube::client::Body>| {
            let path = request.uri().path().to_owned();
            let name = path.rsplit('/').next().unwrap_or_default().to_owned();
            seen.lock().expect("lock").push(path);
            let map = format!(
                r#"{{"apiVersion":"v1","kind":"ConfigMap","metadata":{{"name":"{name}","namespace":"ns"}}}}"#
            );
            let response = http::Response::new(kube::client::Body::from(map.into_bytes()));
            async move { Ok::<_, std::convert::Infallible>(response) }
        });
        (kube::Client::new(service, "default"), asked)
    }

    #[tokio::test]
    async fn roots_are_read_as_the_operator_holds_them_and_bad_names_are_not_asked_for() {
        let policy: ClusterImagePolicy = serde_json::from_value(serde_json::json!({
            "apiVersion": "signing.apps.tanzu.vmware.com/v1beta1",
            "kind": "ClusterImagePolicy",
            "metadata": {"name": "image-policy"},
            "spec": {"verification": {
                "trustedRoots": [
                    {"name": "a", "configMapRef": {"name": "empty"}},
                    {"name": "b", "configMapRef": {"name": "empty"}},
                    {"name": "c", "configMapRef": {"name": "../secrets/x"}}],
                "keys": [], "images": []}}
        }))
        .expect("policy");
        let (client, asked) = api_server();
        let documents = cluster_roots(&client, "ns", &policy).await.expect("read");
        // A ConfigMap without data is there, empty: "has no key", as the operator says.
        assert_eq!(documents.get("empty"), Some(&Default::default()));
        assert_eq!(documents.len(), 1);
        assert_eq!(
            *asked.lock().expect("lock"),
            ["/api/v1/namespaces/ns/configmaps/empty"],
            "each name once, and no request for a name that is no ConfigMap name"
        );
    }
}
