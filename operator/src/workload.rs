//! The image rules: which images of a Pod or workload admission checks, and where each is
//! written. One home, used by admission, pinning, Events, `check` and the running check.
//!
//! - The kinds with a pod spec and where each keeps it ([`KINDS`], [`pod_spec_path`],
//!   docs/contract.md §2).
//! - The places of a pod spec that hold images ([`ContainerList`]: the field, the order
//!   images are reported in, the JSON pointer of each image), read by `Object::read_field`
//!   and listed by [`Object::pod_spec_images`]. A new place for an image is a variant there,
//!   its reading in `read_field`, and its items in `pod_spec_images`. The containers lists
//!   and the image volumes are all of them (docs/contract.md §2 lists every field of the Pod
//!   API that names an image, and why the others are not read).
//! - What a request changes ([`Change`]): the images it must have checked (those it adds),
//!   the pointer of each for a patch, the pod spec whose credentials go with them, and the
//!   image volumes that mount each ([`ImageVolumes`]), for a refusal to say so.
//!
//! An object is read into an [`Object`]: in one pass over its JSON and without building it,
//! the fields that decide (a pod spec's container lists, pull secrets and service account) at
//! every level where a kind keeps its pod spec. Fields are read as a JSON value reads them
//! (see [`crate::lenient`]): one of another type than expected counts as absent, so that an
//! object with fields this version does not know, or a broken one, still yields its images or
//! a clear error. Admission requests and manifest files (through [`Object::from_value`]) go
//! through this one reading.

use std::collections::{HashMap, HashSet};

use serde_json::Value;

mod read;

/// Which list of a pod spec an image came from: a containers list, or the image volumes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ContainerList {
    /// `containers`.
    Containers,
    /// `initContainers`.
    InitContainers,
    /// `ephemeralContainers`.
    EphemeralContainers,
    /// The image volumes among `volumes` (`volumes[].image.reference`, KEP-4639): the kubelet
    /// pulls such an image as it pulls a container's, and mounts its files into the Pod,
    /// where a container can run them.
    ImageVolumes,
}

impl ContainerList {
    /// Every list, in the order images are reported: the containers first, as before image
    /// volumes existed, so that a refusal of a Pod without them reads as it did.
    pub const ALL: [ContainerList; 4] = [
        ContainerList::InitContainers,
        ContainerList::Containers,
        ContainerList::EphemeralContainers,
        ContainerList::ImageVolumes,
    ];

    /// The field name in a pod spec.
    pub fn field(self) -> &'static str {
        match self {
            ContainerList::Containers => "containers",
            ContainerList::InitContainers => "initContainers",
            ContainerList::EphemeralContainers => "ephemeralContainers",
            ContainerList::ImageVolumes => "volumes",
        }
    }

    /// The JSON pointer of the image within an item of the list.
    fn image_pointer(self) -> &'static str {
        match self {
            ContainerList::ImageVolumes => "/image/reference",
            _ => "/image",
        }
    }
}

/// One image of a pod spec: a container's, or an image volume's.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ContainerImage {
    /// The list it is in.
    pub list: ContainerList,
    /// Its position in that list (for an image volume, in `volumes`).
    pub index: usize,
    /// The container's name, or the volume's.
    pub name: String,
    /// The image, exactly as written.
    pub image: String,
}

impl ContainerImage {
    /// The JSON pointer (RFC 6901) of its image field, below its pod spec's: a container's
    /// `image`, an image volume's `image/reference`.
    pub fn pointer(&self) -> String {
        format!(
            "/{}/{}{}",
            self.list.field(),
            self.index,
            self.list.image_pointer()
        )
    }
}

/// The image volumes of a pod spec by the image each mounts, so that a refusal of an image
/// can say which volumes mount it (docs/contract.md §2).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ImageVolumes(HashMap<String, Vec<String>>);

impl ImageVolumes {
    /// The image volumes among `images`.
    pub fn of(images: &[ContainerImage]) -> Self {
        let mut volumes = ImageVolumes::default();
        volumes.add(images);
        volumes
    }

    /// Adds the image volumes among `images` (another Pod's of the same workload, say), each
    /// name once per image.
    pub fn add(&mut self, images: &[ContainerImage]) {
        let mounts = images
            .iter()
            .filter(|i| i.list == ContainerList::ImageVolumes);
        for mount in mounts {
            let names = self.0.entry(mount.image.clone()).or_default();
            if !names.contains(&mount.name) {
                names.push(mount.name.clone());
            }
        }
    }

    /// The names of the image volumes that mount `image`, in order; none when only
    /// containers run it.
    pub fn mounting(&self, image: &str) -> &[String] {
        self.0.get(image).map(Vec::as_slice).unwrap_or_default()
    }
}

/// Why a workload's images cannot be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum WorkloadError {
    /// A kind whose pod spec is not where it should be.
    #[error("{kind} has no pod spec at {path}")]
    NoPodSpec {
        /// The kind, such as `Deployment`.
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
    /// An image volume without a string `reference`: fail closed, as for a container
    /// without an image, since the kubelet would pull whatever it is defaulted to.
    #[error("volumes[{index}].image has no reference")]
    NoReference {
        /// The volume's index in `volumes`.
        index: usize,
    },
    /// A containers or volumes field that is not a list.
    #[error("{0} is not a list")]
    NotAList(&'static str),
}

/// Up to how many images are told apart by looking through them, beyond which by a set.
const FEW: usize = 16;

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

/// What an admission request changes, as the image rules read it: the object's kind, the
/// request's subresource and operation, the object as it would be stored and, for an UPDATE,
/// as it was.
#[derive(Debug, Clone, Copy)]
pub struct Change<'a> {
    /// `request.kind.kind`.
    pub kind: &'a str,
    /// `request.subResource`, if any.
    pub sub_resource: Option<&'a str>,
    /// `CREATE`, `UPDATE`, ...
    pub operation: &'a str,
    /// The object as it would be stored.
    pub object: &'a Object,
    /// The object before an UPDATE, when the request has one.
    pub old_object: Option<&'a Object>,
}

impl<'a> Change<'a> {
    /// The images this change must have checked: every image of the object that the object
    /// before an UPDATE did not have, each once, in order. `None` when it is not a change
    /// this webhook decides (another kind, another operation, another subresource).
    pub fn images_to_check(&self) -> Result<Option<Vec<String>>, WorkloadError> {
        if !matches!(self.operation, "CREATE" | "UPDATE") {
            return Ok(None);
        }
        let Some(images) = self.images_in(self.object)? else {
            return Ok(None);
        };
        let before: HashSet<String> = match self.old_object {
            Some(old) if self.operation == "UPDATE" => self.old_images(old),
            _ => HashSet::new(),
        };
        // Each once: a look through the few images of a real pod, a set past that (a body can
        // list thousands).
        let mut fresh: Vec<String> = Vec::with_capacity(images.len());
        let mut seen = HashSet::new();
        for ContainerImage { image, .. } in images {
            let new = if fresh.len() < FEW {
                !fresh.contains(&image)
            } else {
                if seen.is_empty() {
                    seen.extend(fresh.iter().cloned());
                }
                seen.insert(image.clone())
            };
            if new && !before.contains(&image) {
                fresh.push(image);
            }
        }
        Ok(Some(fresh))
    }

    /// Every image of the object with the JSON pointer of its field (RFC 6901), for a patch;
    /// empty when the change has no pod spec this webhook reads, or an unreadable one.
    pub fn image_fields(&self) -> Vec<(String, String)> {
        let (Some(path), Ok(Some(images))) = (
            self.pod_spec_kind().and_then(pod_spec_path),
            self.images_in(self.object),
        ) else {
            return Vec::new();
        };
        let base = format!("/{}", path.join("/"));
        images
            .into_iter()
            .map(|c| (format!("{base}{}", c.pointer()), c.image))
            .collect()
    }

    /// The image volumes of the object by the image each mounts; none when the change has no
    /// pod spec this webhook reads, or an unreadable one.
    pub fn image_volumes(&self) -> ImageVolumes {
        match self.images_in(self.object) {
            Ok(Some(images)) => ImageVolumes::of(&images),
            Ok(None) | Err(_) => ImageVolumes::default(),
        }
    }

    /// The pod spec whose pull secrets and service account go with this change's images.
    pub fn pod_spec(&self) -> Option<&'a Object> {
        self.object.pod_spec(self.pod_spec_kind()?)
    }

    /// The kind whose pod spec this change's images are in: its own, or for `kubectl debug`'s
    /// `ephemeralcontainers` subresource, whose object is the Pod, a Pod's; `None` for another
    /// subresource, which adds no image.
    fn pod_spec_kind(&self) -> Option<&'a str> {
        match self.sub_resource {
            None => Some(self.kind),
            Some("ephemeralcontainers") => Some("Pod"),
            Some(_) => None,
        }
    }

    /// The images of `object` (this change's object, or the one before it); `Ok(None)` when
    /// this webhook reads no pod spec in such a change.
    fn images_in(&self, object: &Object) -> Result<Option<Vec<ContainerImage>>, WorkloadError> {
        match self.pod_spec_kind() {
            Some(kind) => object.images_of(kind),
            None => Ok(None),
        }
    }

    /// Images already in the object before an UPDATE: admitted then, not checked again. An
    /// old object that cannot be read counts as having none, so everything is checked.
    fn old_images(&self, old: &Object) -> HashSet<String> {
        let images = self.images_in(old).ok().flatten();
        images
            .unwrap_or_default()
            .into_iter()
            .map(|c| c.image)
            .collect()
    }
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
    /// The image volumes of `volumes`.
    volumes: Volumes,
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

/// A `volumes` field: only its image volumes are kept.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
enum Volumes {
    /// Missing or `null`.
    #[default]
    Absent,
    /// Anything but a list.
    NotAList,
    /// A list, of which these items are image volumes.
    Items(Vec<ImageVolume>),
}

/// An item of `volumes` with an `image` (of any type but `null`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
struct ImageVolume {
    /// Its position in `volumes`.
    index: usize,
    /// `name`, or empty.
    name: String,
    /// `image.reference`, when a non-empty string.
    reference: Option<String>,
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

    /// The images of this value read as a pod spec, in the order of [`ContainerList::ALL`]:
    /// init containers first, image volumes last.
    pub fn pod_spec_images(&self) -> Result<Vec<ContainerImage>, WorkloadError> {
        let mut out = Vec::new();
        for list in ContainerList::ALL {
            let containers = match list {
                ContainerList::InitContainers => &self.init_containers,
                ContainerList::Containers => &self.containers,
                ContainerList::EphemeralContainers => &self.ephemeral_containers,
                ContainerList::ImageVolumes => {
                    self.image_volume_images(&mut out)?;
                    continue;
                }
            };
            let containers = match containers {
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

    /// Adds the images of the image volumes of this value read as a pod spec to `out`.
    fn image_volume_images(&self, out: &mut Vec<ContainerImage>) -> Result<(), WorkloadError> {
        let volumes = match &self.volumes {
            Volumes::Absent => return Ok(()),
            Volumes::Items(items) => items,
            Volumes::NotAList => return Err(WorkloadError::NotAList("volumes")),
        };
        for volume in volumes {
            let index = volume.index;
            let reference = volume
                .reference
                .as_ref()
                .ok_or(WorkloadError::NoReference { index })?;
            out.push(ContainerImage {
                list: ContainerList::ImageVolumes,
                index,
                name: volume.name.clone(),
                image: reference.clone(),
            });
        }
        Ok(())
    }

    /// The `imagePullSecrets` names of this value read as a pod spec.
    pub fn pull_secret_names(&self) -> &[String] {
        &self.pull_secrets
    }

    /// The `serviceAccountName` of this value read as a pod spec, when it is a string.
    pub fn service_account_name(&self) -> Option<&str> {
        self.service_account_name.as_deref()
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
mod tests;
