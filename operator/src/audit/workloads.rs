//! The workloads that run in the cluster: its Pods, grouped by the object that owns them.
//!
//! A Pod's workload is its controller (the owner reference marked `controller`), and that
//! controller's own controller when it has one: a Deployment's Pods are owned by ReplicaSets
//! the Deployment owns, a CronJob's by Jobs. ReplicaSets and Jobs are listed as metadata only
//! to find their owners; other kinds (StatefulSet, DaemonSet, ...) own their Pods directly. A
//! Pod that nothing controls is its own workload. Pods that have ended (`Succeeded`,
//! `Failed`) or are being deleted do not run, and are left out.
//!
//! The API server is read in pages, and each Pod is kept only as what decides (its images,
//! service account and pull secrets, through [`Object`]), so memory grows with the workloads,
//! not with the Pods.

use std::collections::HashMap;

use k8s_openapi::api::apps::v1::ReplicaSet;
use k8s_openapi::api::batch::v1::Job;
use k8s_openapi::api::core::v1::Pod;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, OwnerReference};
use kube::api::{ListParams, ObjectList};
use kube::{Api, Client};

use crate::workload::{ImageVolumes, Object};

/// How many objects one list request asks for: a page of Pods is held whole while it is read,
/// so a small one keeps the peak of memory low (a Pod made by a controller is a few KiB).
const PAGE: u32 = 100;

/// How many pages one list may take: 2,000,000 objects of [`PAGE`], far above any cluster. An
/// API server that answers every page with another continue token (a bug, or a proxy that
/// lies) is an error past it, not a loop without end.
const MAX_PAGES: usize = 20_000;

/// A workload: the Pods of one owner, with the images they run.
#[derive(Debug, Clone)]
pub struct Workload {
    /// Its namespace.
    pub namespace: String,
    /// Its kind: the top owner's, or `Pod`.
    pub kind: String,
    /// Its name.
    pub name: String,
    /// The images of its Pods, each once, in the order first seen.
    pub images: Vec<String>,
    /// The image volumes of its Pods by the image each mounts.
    pub volumes: ImageVolumes,
    /// How many of its Pods run.
    pub pods: usize,
    /// The first Pod, read as the webhook reads one: its pod spec gives the credential
    /// sources (service account, pull secrets) its images are verified with.
    pod: Object,
}

impl Workload {
    /// The pod spec of its first Pod.
    pub fn pod_spec(&self) -> Option<&Object> {
        self.pod.pod_spec("Pod")
    }

    /// What its images' outcomes depend on besides the images.
    pub(super) fn sources(&self) -> (String, Option<String>, Vec<String>) {
        let spec = self.pod_spec();
        (
            self.namespace.clone(),
            spec.and_then(|s| s.service_account_name().map(str::to_owned)),
            spec.map(|s| s.pull_secret_names().to_vec())
                .unwrap_or_default(),
        )
    }
}

/// A running Pod, as far as grouping needs it.
#[derive(Debug, Clone)]
pub struct RunningPod {
    /// Its namespace.
    pub namespace: String,
    /// Its name.
    pub name: String,
    /// Its controller: kind and name.
    pub controller: Option<(String, String)>,
    /// The Pod read as the webhook reads one.
    pub object: Object,
}

/// The controllers of ReplicaSets and Jobs: `(namespace, kind, name)` to `(kind, name)`.
pub type Owners = HashMap<(String, String, String), (String, String)>;

/// Why the workloads could not be listed.
#[derive(Debug, thiserror::Error)]
pub enum ListError {
    /// A list request failed.
    #[error("listing {what}: {source}")]
    List {
        /// What was listed.
        what: &'static str,
        /// The API error.
        source: kube::Error,
    },
    /// The API server kept answering with another page.
    #[error("listing {what}: still more after {MAX_PAGES} pages of {PAGE}")]
    Endless {
        /// What was listed.
        what: &'static str,
    },
}

/// The workloads that run in the cluster, sorted by namespace, kind and name.
pub async fn list(client: &Client) -> Result<Vec<Workload>, ListError> {
    let mut owners = Owners::new();
    let replica_sets: Api<ReplicaSet> = Api::all(client.clone());
    let jobs: Api<Job> = Api::all(client.clone());
    for (api_kind, metas) in [
        (
            "ReplicaSet",
            list_metadata(&replica_sets, "ReplicaSets").await?,
        ),
        ("Job", list_metadata(&jobs, "Jobs").await?),
    ] {
        for meta in metas {
            if let (Some(namespace), Some(name), Some((kind, owner))) = (
                meta.namespace,
                meta.name,
                controller_of(&meta.owner_references),
            ) {
                owners.insert((namespace, api_kind.to_owned(), name), (kind, owner));
            }
        }
    }
    let pods = list_pods(client).await?;
    Ok(group(pods, &owners))
}

/// The metadata of every object of `api`, page by page.
async fn list_metadata<K>(api: &Api<K>, what: &'static str) -> Result<Vec<ObjectMeta>, ListError>
where
    K: kube::Resource + Clone + serde::de::DeserializeOwned + std::fmt::Debug,
{
    let mut out = Vec::new();
    let mut params = ListParams::default().limit(PAGE);
    for _ in 0..MAX_PAGES {
        let page = api
            .list_metadata(&params)
            .await
            .map_err(|source| ListError::List { what, source })?;
        out.extend(page.items.into_iter().map(|item| item.metadata));
        match next_page(&page.metadata.continue_) {
            Some(token) => params = params.continue_token(token),
            None => return Ok(out),
        }
    }
    Err(ListError::Endless { what })
}

/// Every running Pod, page by page, each reduced to what decides.
async fn list_pods(client: &Client) -> Result<Vec<RunningPod>, ListError> {
    let api: Api<Pod> = Api::all(client.clone());
    let mut out = Vec::new();
    let mut params = ListParams::default().limit(PAGE);
    for _ in 0..MAX_PAGES {
        let page: ObjectList<Pod> = api.list(&params).await.map_err(|source| ListError::List {
            what: "Pods",
            source,
        })?;
        out.extend(page.items.iter().filter_map(running_pod));
        match next_page(&page.metadata.continue_) {
            Some(token) => params = params.continue_token(token),
            None => return Ok(out),
        }
    }
    Err(ListError::Endless { what: "Pods" })
}

fn next_page(token: &Option<String>) -> Option<&str> {
    token.as_deref().filter(|t| !t.is_empty())
}

/// `pod` as grouping needs it; `None` when it does not run (ended, or being deleted).
pub fn running_pod(pod: &Pod) -> Option<RunningPod> {
    let phase = pod.status.as_ref().and_then(|s| s.phase.as_deref());
    if matches!(phase, Some("Succeeded" | "Failed")) || pod.metadata.deletion_timestamp.is_some() {
        return None;
    }
    // Only the spec is read: the rest (status, managedFields) decides nothing.
    let value = serde_json::json!({ "spec": serde_json::to_value(pod.spec.as_ref()?).ok()? });
    Some(RunningPod {
        namespace: pod.metadata.namespace.clone()?,
        name: pod.metadata.name.clone()?,
        controller: controller_of(&pod.metadata.owner_references),
        object: Object::from_value(&value),
    })
}

/// The kind and name of the owner reference marked `controller`.
fn controller_of(references: &Option<Vec<OwnerReference>>) -> Option<(String, String)> {
    references
        .iter()
        .flatten()
        .find(|r| r.controller == Some(true))
        .map(|r| (r.kind.clone(), r.name.clone()))
}

/// `pods` grouped by workload (see the module's documentation), sorted by namespace, kind
/// and name. A Pod whose spec lists no readable image adds none.
pub fn group(pods: Vec<RunningPod>, owners: &Owners) -> Vec<Workload> {
    let mut workloads: HashMap<(String, String, String), Workload> = HashMap::new();
    for pod in pods {
        let (kind, name) = match pod.controller {
            Some((kind, name)) => owners
                .get(&(pod.namespace.clone(), kind.clone(), name.clone()))
                .cloned()
                .unwrap_or((kind, name)),
            None => ("Pod".to_owned(), pod.name),
        };
        let images = pod
            .object
            .pod_spec("Pod")
            .and_then(|spec| spec.pod_spec_images().ok())
            .unwrap_or_default();
        let key = (pod.namespace.clone(), kind.clone(), name.clone());
        let workload = workloads.entry(key).or_insert_with(|| Workload {
            namespace: pod.namespace,
            kind,
            name,
            images: Vec::new(),
            volumes: ImageVolumes::default(),
            pods: 0,
            pod: pod.object,
        });
        workload.pods += 1;
        workload.volumes.add(&images);
        for image in images {
            if !workload.images.contains(&image.image) {
                workload.images.push(image.image);
            }
        }
    }
    let mut out: Vec<Workload> = workloads.into_values().collect();
    out.sort_by(|a, b| (&a.namespace, &a.kind, &a.name).cmp(&(&b.namespace, &b.kind, &b.name)));
    out
}
