//! Workloads and the images they run: the pod spec of each kind SPEC §2 intercepts.
//!
//! Objects are read as JSON values rather than typed structs so that an object with fields
//! this version does not know, or a broken one, still yields its images or a clear error,
//! and so that one code path serves admission requests and manifest files alike.

use serde_json::Value;

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
    let Some(path) = pod_spec_path(kind) else {
        return Ok(None);
    };
    let spec = path.iter().try_fold(object, |v, field| v.get(field));
    let Some(spec) = spec.filter(|s| s.is_object()) else {
        return Err(WorkloadError::NoPodSpec {
            kind: kind.to_owned(),
            path: dotted(path),
        });
    };
    pod_spec_images(spec).map(Some)
}

/// The images of a pod spec, init containers first.
pub fn pod_spec_images(spec: &Value) -> Result<Vec<ContainerImage>, WorkloadError> {
    let mut out = Vec::new();
    for list in ContainerList::ALL {
        let containers = match spec.get(list.field()) {
            None | Some(Value::Null) => continue,
            Some(Value::Array(items)) => items,
            Some(_) => return Err(WorkloadError::NotAList(list.field())),
        };
        for (index, container) in containers.iter().enumerate() {
            let image = container
                .get("image")
                .and_then(Value::as_str)
                .filter(|i| !i.is_empty());
            let image = image.ok_or(WorkloadError::NoImage {
                list: list.field(),
                index,
            })?;
            let name = container
                .get("name")
                .and_then(Value::as_str)
                .unwrap_or_default();
            out.push(ContainerImage {
                list,
                name: name.to_owned(),
                image: image.to_owned(),
            });
        }
    }
    Ok(out)
}

/// The `imagePullSecrets` names of a pod spec.
pub fn pull_secret_names(spec: &Value) -> Vec<String> {
    let Some(Value::Array(items)) = spec.get("imagePullSecrets") else {
        return Vec::new();
    };
    items
        .iter()
        .filter_map(|s| s.get("name")?.as_str())
        .filter(|n| !n.is_empty())
        .map(str::to_owned)
        .collect()
}

/// The pod spec of an object of `kind`, if it has one.
pub fn pod_spec<'a>(kind: &str, object: &'a Value) -> Option<&'a Value> {
    pod_spec_path(kind)?
        .iter()
        .try_fold(object, |v, field| v.get(field))
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
        for kind in [
            "Pod",
            "Deployment",
            "StatefulSet",
            "DaemonSet",
            "ReplicaSet",
            "ReplicationController",
            "Job",
            "CronJob",
        ] {
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
        let images = pod_spec_images(&spec).expect("images");
        assert_eq!(
            images[1],
            ContainerImage {
                list: ContainerList::EphemeralContainers,
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
        assert_eq!(pull_secret_names(&spec), ["a", "b"]);
        assert!(pull_secret_names(&json!({"imagePullSecrets": 3})).is_empty());
    }
}
