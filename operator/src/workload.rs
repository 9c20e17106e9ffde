//! Workloads and the images they run: the pod spec of each kind docs/contract.md §2 intercepts.
//!
//! An object is read into an [`Object`]: in one pass over its JSON and without building it,
//! the fields that decide (a pod spec's container lists, pull secrets and service account) at
//! every level where a kind keeps its pod spec. Fields are read as a JSON value reads them
//! (see [`crate::lenient`]): one of another type than expected counts as absent, so that an
//! object with fields this version does not know, or a broken one, still yields its images or
//! a clear error. Admission requests and manifest files (through [`Object::from_value`]) go
//! through this one reading.

use std::borrow::Cow;

use serde::Deserialize;
use serde::de::{MapAccess, SeqAccess};
use serde_json::Value;

use crate::lenient::{Lenient, Read, Text, each_field, next_value};

/// Which containers list an image came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ContainerList {
    /// `containers`.
    Containers,
    /// `initContainers`.
    InitContainers,
    /// `ephemeralContainers`.
    EphemeralContainers,
}

impl ContainerList {
    /// Every list, in the order images are reported.
    pub const ALL: [ContainerList; 3] = [
        ContainerList::InitContainers,
        ContainerList::Containers,
        ContainerList::EphemeralContainers,
    ];

    /// The field name in a pod spec.
    pub fn field(self) -> &'static str {
        match self {
            ContainerList::Containers => "containers",
            ContainerList::InitContainers => "initContainers",
            ContainerList::EphemeralContainers => "ephemeralContainers",
        }
    }
}

/// One container's image.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ContainerImage {
    /// The list it is in.
    pub list: ContainerList,
    /// Its position in that list.
    pub index: usize,
    /// The container's name.
    pub name: String,
    /// The image, exactly as written.
    pub image: String,
}

/// Why a workload's images cannot be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum WorkloadError {
    /// A kind whose pod spec is not where it should be.
    #[error("{kind} has no pod spec at {path}")]
    NoPodSpec {
        /// The kind.
        kind: String,
        /// Where it was looked for.
        path: &'static str,
    },
    /// A container without a string `image`.
    #[error("{list}[{index}] has no image")]
    NoImage {
        /// The list's field name.
        list: &'static str,
        /// The container's index.
        index: usize,
    },
    /// A containers field that is not a list.
    #[error("{0} is not a list")]
    NotAList(&'static str),
}

/// The kinds with a pod spec (docs/contract.md §2), each found by [`pod_spec_path`].
pub const KINDS: [&str; 8] = [
    "Pod",
    "Deployment",
    "StatefulSet",
    "DaemonSet",
    "ReplicaSet",
    "ReplicationController",
    "Job",
    "CronJob",
];

/// The path of the pod spec within an object of `kind`, for the kinds that have one.
pub fn pod_spec_path(kind: &str) -> Option<&'static [&'static str]> {
    Some(match kind {
        "Pod" => &["spec"],
        "Deployment"
        | "StatefulSet"
        | "DaemonSet"
        | "ReplicaSet"
        | "ReplicationController"
        | "Job" => &["spec", "template", "spec"],
        "CronJob" => &["spec", "jobTemplate", "spec", "template", "spec"],
        _ => return None,
    })
}

/// The images of an object of a kind with a pod spec; `Ok(None)` for other kinds.
pub fn images_of(kind: &str, object: &Value) -> Result<Option<Vec<ContainerImage>>, WorkloadError> {
    Object::from_value(object).images_of(kind)
}

/// What an object (or any JSON value) holds for admission: at each level, the fields of a pod
/// spec, and the levels below its `spec`, `template` and `jobTemplate` fields. A field given
/// twice counts with its last value.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Object {
    /// Whether the value was a JSON object.
    is_object: bool,
    init_containers: Containers,
    containers: Containers,
    ephemeral_containers: Containers,
    /// The non-empty `name`s of `imagePullSecrets`.
    pull_secrets: Vec<String>,
    /// `serviceAccountName`, when a string.
    service_account_name: Option<String>,
    spec: Option<Box<Object>>,
    template: Option<Box<Object>>,
    job_template: Option<Box<Object>>,
}

/// A containers field.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
enum Containers {
    /// Missing or `null`.
    #[default]
    Absent,
    /// Anything but a list.
    NotAList,
    /// A list.
    Items(Vec<Container>),
}

/// One item of a containers list.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
struct Container {
    /// `name`, or empty.
    name: String,
    /// `image`, when a non-empty string.
    image: Option<String>,
}

impl Object {
    /// The same reading of a JSON value already built (a manifest's document).
    pub fn from_value(value: &Value) -> Self {
        // Lenient reading has no error of its own, and a value is well-formed already; were
        // it to fail, an empty object has no pod spec, which is an error, never an admission.
        Read::<Object>::deserialize(value)
            .map(|Read(object)| object)
            .unwrap_or_default()
    }

    /// Whether the value was a JSON object.
    pub fn is_object(&self) -> bool {
        self.is_object
    }

    /// The value of `field`, for the fields read below this level.
    fn child(&self, field: &str) -> Option<&Object> {
        match field {
            "spec" => self.spec.as_deref(),
            "template" => self.template.as_deref(),
            "jobTemplate" => self.job_template.as_deref(),
            _ => None,
        }
    }

    /// Whether it has a `spec` field (of any type).
    pub fn has_spec(&self) -> bool {
        self.spec.is_some()
    }

    /// Its `spec` when it has one (of any type), itself otherwise: where a subresource's
    /// object keeps its pod spec (a Pod, or the EphemeralContainers of Kubernetes 1.20).
    pub fn spec_or_self(&self) -> &Object {
        self.spec.as_deref().unwrap_or(self)
    }

    /// The pod spec of an object of `kind`, if it has one (of any type).
    pub fn pod_spec(&self, kind: &str) -> Option<&Object> {
        pod_spec_path(kind)?
            .iter()
            .try_fold(self, |object, field| object.child(field))
    }

    /// The images of an object of a kind with a pod spec; `Ok(None)` for other kinds.
    pub fn images_of(&self, kind: &str) -> Result<Option<Vec<ContainerImage>>, WorkloadError> {
        let Some(path) = pod_spec_path(kind) else {
            return Ok(None);
        };
        let spec = path
            .iter()
            .try_fold(self, |object, field| object.child(field));
        let Some(spec) = spec.filter(|s| s.is_object) else {
            return Err(WorkloadError::NoPodSpec {
                kind: kind.to_owned(),
                path: dotted(path),
            });
        };
        spec.pod_spec_images().map(Some)
    }

    /// The images of this value read as a pod spec, init containers first.
    pub fn pod_spec_images(&self) -> Result<Vec<ContainerImage>, WorkloadError> {
        let mut out = Vec::new();
        for list in ContainerList::ALL {
            let containers = match self.list(list) {
                Containers::Absent => continue,
                Containers::Items(items) => items,
                Containers::NotAList => return Err(WorkloadError::NotAList(list.field())),
            };
            for (index, container) in containers.iter().enumerate() {
                let image = container.image.as_ref().ok_or(WorkloadError::NoImage {
                    list: list.field(),
                    index,
                })?;
                out.push(ContainerImage {
                    list,
                    index,
                    name: container.name.clone(),
                    image: image.clone(),
                });
            }
        }
        Ok(out)
    }

    /// The `imagePullSecrets` names of this value read as a pod spec.
    pub fn pull_secret_names(&self) -> &[String] {
        &self.pull_secrets
    }

    /// The `serviceAccountName` of this value read as a pod spec, when it is a string.
    pub fn service_account_name(&self) -> Option<&str> {
        self.service_account_name.as_deref()
    }

    fn list(&self, list: ContainerList) -> &Containers {
        match list {
            ContainerList::Containers => &self.containers,
            ContainerList::InitContainers => &self.init_containers,
            ContainerList::EphemeralContainers => &self.ephemeral_containers,
        }
    }
}

impl Object {
    /// A JSON object with no field read yet: where [`Object::read_field`] starts.
    pub(crate) fn empty_object() -> Self {
        Object {
            is_object: true,
            ..Object::default()
        }
    }

    /// Reads the value of `key` into this level when it is a field kept here, and says
    /// whether it did; `false` leaves the value for the caller to read (or read through),
    /// as [`each_field`] expects. For a reader of the same object that keeps more fields.
    pub(crate) fn read_field<'de, A: MapAccess<'de>>(
        &mut self,
        key: &str,
        map: &mut A,
    ) -> Result<bool, A::Error> {
        let child = |map: &mut A| next_value::<_, Object>(map).map(Box::new).map(Some);
        match key {
            "containers" => self.containers = next_value(map)?,
            "initContainers" => self.init_containers = next_value(map)?,
            "ephemeralContainers" => self.ephemeral_containers = next_value(map)?,
            "imagePullSecrets" => self.pull_secrets = next_value::<_, PullSecrets>(map)?.0,
            "serviceAccountName" => {
                self.service_account_name = next_value::<_, Text>(map)?.into_owned();
            }
            "spec" => self.spec = child(map)?,
            "template" => self.template = child(map)?,
            "jobTemplate" => self.job_template = child(map)?,
            _ => return Ok(false),
        }
        Ok(true)
    }
}

impl<'de> Lenient<'de> for Object {
    fn other() -> Self {
        Object::default()
    }

    fn map<A: MapAccess<'de>>(map: A) -> Result<Self, A::Error> {
        let mut object = Object::empty_object();
        each_field(map, |key, map| object.read_field(key, map))?;
        Ok(object)
    }
}

impl<'de> Lenient<'de> for Containers {
    fn other() -> Self {
        Containers::NotAList
    }

    fn null() -> Self {
        Containers::Absent
    }

    fn seq<A: SeqAccess<'de>>(mut seq: A) -> Result<Self, A::Error> {
        let mut items = Vec::new();
        while let Some(Read(container)) = seq.next_element::<Read<Container>>()? {
            items.push(container);
        }
        Ok(Containers::Items(items))
    }
}

impl<'de> Lenient<'de> for Container {
    fn other() -> Self {
        Container::default()
    }

    fn map<A: MapAccess<'de>>(map: A) -> Result<Self, A::Error> {
        let mut container = Container::default();
        each_field(map, |key, map| {
            match key {
                "name" => container.name = next_value::<_, Text>(map)?.into_string(),
                "image" => {
                    let image = next_value::<_, Text>(map)?.0;
                    container.image = image.filter(|i| !i.is_empty()).map(Cow::into_owned);
                }
                _ => return Ok(false),
            }
            Ok(true)
        })?;
        Ok(container)
    }
}

/// The non-empty `name`s of a list of references (each read for its `name` as a container
/// is); empty for anything but a list.
struct PullSecrets(Vec<String>);

impl<'de> Lenient<'de> for PullSecrets {
    fn other() -> Self {
        PullSecrets(Vec::new())
    }

    fn seq<A: SeqAccess<'de>>(mut seq: A) -> Result<Self, A::Error> {
        let mut names = Vec::new();
        while let Some(Read(reference)) = seq.next_element::<Read<Container>>()? {
            if !reference.name.is_empty() {
                names.push(reference.name);
            }
        }
        Ok(PullSecrets(names))
    }
}

fn dotted(path: &[&str]) -> &'static str {
    match path.len() {
        1 => "spec",
        3 => "spec.template.spec",
        _ => "spec.jobTemplate.spec.template.spec",
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn every_kind_finds_its_pod_spec() {
        let pod = json!({"containers": [{"name": "a", "image": "busybox"}], "initContainers": [{"name": "i", "image": "init:1"}]});
        let wrap = |path: &[&str]| {
            path.iter()
                .rev()
                .fold(pod.clone(), |inner, field| json!({ *field: inner }))
        };
        for kind in KINDS {
            let object = wrap(pod_spec_path(kind).expect(kind));
            let images = images_of(kind, &object).expect(kind).expect(kind);
            let written: Vec<_> = images.iter().map(|i| i.image.as_str()).collect();
            assert_eq!(written, ["init:1", "busybox"], "{kind}");
        }
        assert_eq!(images_of("Role", &json!({})), Ok(None));
    }

    #[test]
    fn ephemeral_containers_count() {
        let spec = json!({"containers": [{"name": "a", "image": "a"}], "ephemeralContainers": [{"name": "debug", "image": "debugger"}]});
        let images = Object::from_value(&spec).pod_spec_images().expect("images");
        assert_eq!(
            images[1],
            ContainerImage {
                list: ContainerList::EphemeralContainers,
                index: 0,
                name: "debug".into(),
                image: "debugger".into()
            }
        );
    }

    #[test]
    fn broken_objects_are_errors_not_silence() {
        assert!(matches!(
            images_of("Deployment", &json!({"spec": {}})),
            Err(WorkloadError::NoPodSpec { .. })
        ));
        assert!(matches!(
            images_of("Pod", &json!({"spec": {"containers": "x"}})),
            Err(WorkloadError::NotAList("containers"))
        ));
        assert!(matches!(
            images_of("Pod", &json!({"spec": {"containers": [{"name": "a"}]}})),
            Err(WorkloadError::NoImage {
                list: "containers",
                index: 0
            })
        ));
        assert!(matches!(
            images_of("Pod", &json!({"spec": {"containers": [{"image": 5}]}})),
            Err(WorkloadError::NoImage { .. })
        ));
    }

    #[test]
    fn pull_secrets() {
        let spec = json!({"imagePullSecrets": [{"name": "a"}, {}, {"name": ""}, {"name": "b"}]});
        assert_eq!(Object::from_value(&spec).pull_secret_names(), ["a", "b"]);
        let not_a_list = Object::from_value(&json!({"imagePullSecrets": 3}));
        assert!(not_a_list.pull_secret_names().is_empty());
    }
}
