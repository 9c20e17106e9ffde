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

#[test]
fn a_change_says_where_each_image_is_written() {
    let fields = |kind, sub_resource, object: serde_json::Value| {
        let object = Object::from_value(&object);
        let change = Change {
            kind,
            sub_resource,
            operation: "CREATE",
            object: &object,
            old_object: None,
        };
        change.image_fields()
    };
    let field = |pointer: &str, image: &str| (pointer.to_owned(), image.to_owned());
    let pod = json!({"spec": {"initContainers": [{"name": "i", "image": "init:1"}], "containers": [{"name": "a", "image": "a:1"}]}});
    assert_eq!(
        fields("Pod", None, pod.clone()),
        [
            field("/spec/initContainers/0/image", "init:1"),
            field("/spec/containers/0/image", "a:1")
        ]
    );
    let deployment =
        json!({"spec": {"template": {"spec": {"containers": [{"name": "a", "image": "a:1"}]}}}});
    assert_eq!(
        fields("Deployment", None, deployment),
        [field("/spec/template/spec/containers/0/image", "a:1")]
    );
    // `kubectl debug`: the subresource's object is the Pod.
    let debugged = json!({"spec": {"ephemeralContainers": [{"name": "d", "image": "debugger"}]}});
    assert_eq!(
        fields("Pod", Some("ephemeralcontainers"), debugged),
        [field("/spec/ephemeralContainers/0/image", "debugger")]
    );
    assert!(fields("Pod", Some("status"), pod.clone()).is_empty());
    assert!(fields("Role", None, pod).is_empty());
}

#[test]
fn an_update_checks_only_the_images_it_adds() {
    let old = Object::from_value(&json!({"spec": {"containers": [{"name": "a", "image": "a:1"}]}}));
    let new = Object::from_value(&json!({"spec": {"containers": [
        {"name": "a", "image": "a:1"}, {"name": "b", "image": "b:1"}, {"name": "c", "image": "b:1"}]}}));
    let update = Change {
        kind: "Pod",
        sub_resource: None,
        operation: "UPDATE",
        object: &new,
        old_object: Some(&old),
    };
    assert_eq!(update.images_to_check(), Ok(Some(vec!["b:1".to_owned()])));
    let create = Change {
        operation: "CREATE",
        ..update
    };
    assert_eq!(
        create.images_to_check(),
        Ok(Some(vec!["a:1".to_owned(), "b:1".to_owned()]))
    );
    let delete = Change {
        operation: "DELETE",
        ..update
    };
    assert_eq!(delete.images_to_check(), Ok(None));
}

/// A pod spec with a container and the volumes `volumes`.
fn with_volumes(volumes: serde_json::Value) -> serde_json::Value {
    json!({"containers": [{"name": "app", "image": "r/app:1"}], "volumes": volumes})
}

#[test]
fn image_volumes_are_images_after_the_containers() {
    let spec = with_volumes(json!([
        {"name": "config", "configMap": {"name": "c"}},
        {"name": "models", "image": {"reference": "r/models:1", "pullPolicy": "IfNotPresent"}},
        {"name": "scratch", "emptyDir": {}, "image": null},
        {"name": "tools", "image": {"reference": "r/tools:2"}},
    ]));
    let images = Object::from_value(&spec).pod_spec_images().expect("images");
    let volume = |index, name: &str, image: &str| ContainerImage {
        list: ContainerList::ImageVolumes,
        index,
        name: name.into(),
        image: image.into(),
    };
    assert_eq!(
        images[1..],
        [
            volume(1, "models", "r/models:1"),
            volume(3, "tools", "r/tools:2")
        ]
    );
    assert_eq!(images[1].pointer(), "/volumes/1/image/reference");
    assert_eq!(images[0].pointer(), "/containers/0/image");
    let volumes = ImageVolumes::of(&images);
    assert_eq!(volumes.mounting("r/models:1"), ["models"]);
    assert!(volumes.mounting("r/app:1").is_empty(), "a container's");
}

#[test]
fn an_image_volume_without_a_reference_is_an_error_as_a_container_without_an_image() {
    for image in [
        json!({}),
        json!({"reference": ""}),
        json!({"reference": 5}),
        json!({"pullPolicy": "Always"}),
        json!("r/models:1"),
        json!(["r/models:1"]),
    ] {
        let spec = with_volumes(
            json!([{"name": "ok", "emptyDir": {}}, {"name": "models", "image": image}]),
        );
        assert_eq!(
            Object::from_value(&spec).pod_spec_images(),
            Err(WorkloadError::NoReference { index: 1 }),
            "{image}"
        );
    }
    assert_eq!(
        WorkloadError::NoReference { index: 1 }.to_string(),
        "volumes[1].image has no reference"
    );
    assert_eq!(
        Object::from_value(&with_volumes(json!({"models": {}}))).pod_spec_images(),
        Err(WorkloadError::NotAList("volumes"))
    );
    // No volumes, or none of them an image volume: the containers only.
    for volumes in [json!(null), json!([]), json!([3, "x", {"name": "n"}])] {
        let images = Object::from_value(&with_volumes(volumes)).pod_spec_images();
        assert_eq!(images.expect("images").len(), 1);
    }
}

#[test]
fn every_kind_finds_its_image_volumes_where_a_patch_can_reach_them() {
    let spec = with_volumes(json!([{"name": "models", "image": {"reference": "r/models:1"}}]));
    for kind in KINDS {
        let path = pod_spec_path(kind).expect(kind);
        let object = path
            .iter()
            .rev()
            .fold(spec.clone(), |inner, field| json!({ *field: inner }));
        let object = Object::from_value(&object);
        let change = Change {
            kind,
            sub_resource: None,
            operation: "CREATE",
            object: &object,
            old_object: None,
        };
        let pointer = format!("/{}/volumes/0/image/reference", path.join("/"));
        assert_eq!(
            change.image_fields()[1],
            (pointer, "r/models:1".to_owned()),
            "{kind}"
        );
        assert_eq!(
            change.images_to_check(),
            Ok(Some(vec!["r/app:1".to_owned(), "r/models:1".to_owned()])),
            "{kind}"
        );
        assert_eq!(change.image_volumes().mounting("r/models:1"), ["models"]);
    }
}

#[test]
fn an_update_checks_the_image_volumes_it_adds_or_changes_and_only_those() {
    let spec = |volumes| {
        Object::from_value(&json!({"spec": {"template": {"spec": with_volumes(volumes)}}}))
    };
    let old = spec(json!([{"name": "models", "image": {"reference": "r/models:1"}}]));
    let update = |new: &Object| {
        Change {
            kind: "Deployment",
            sub_resource: None,
            operation: "UPDATE",
            object: new,
            old_object: Some(&old),
        }
        .images_to_check()
    };
    let same = spec(
        json!([{"name": "models", "image": {"reference": "r/models:1", "pullPolicy": "Always"}}]),
    );
    assert_eq!(update(&same), Ok(Some(Vec::new())));
    let changed = spec(json!([{"name": "models", "image": {"reference": "r/models:2"}}]));
    assert_eq!(update(&changed), Ok(Some(vec!["r/models:2".to_owned()])));
    let added = spec(json!([
        {"name": "models", "image": {"reference": "r/models:1"}},
        {"name": "more", "image": {"reference": "r/more:1"}},
    ]));
    assert_eq!(update(&added), Ok(Some(vec!["r/more:1".to_owned()])));
    // An image the object ran already, now mounted as well, is not checked again: as for a
    // container's image moved to another container.
    let mounted = spec(json!([{"name": "app", "image": {"reference": "r/app:1"}}]));
    assert_eq!(update(&mounted), Ok(Some(Vec::new())));
}

#[test]
fn image_volumes_are_named_once_per_image() {
    let images = Object::from_value(&with_volumes(json!([
        {"name": "a", "image": {"reference": "r/m:1"}},
        {"name": "b", "image": {"reference": "r/m:1"}},
        {"name": "c", "image": {"reference": "r/app:1"}},
    ])))
    .pod_spec_images()
    .expect("images");
    let mut volumes = ImageVolumes::of(&images);
    assert_eq!(volumes.mounting("r/m:1"), ["a", "b"]);
    // Another Pod of the same workload adds nothing twice.
    volumes.add(&images);
    assert_eq!(volumes.mounting("r/m:1"), ["a", "b"]);
    assert_eq!(
        volumes.mounting("r/app:1"),
        ["c"],
        "a container's image, mounted too"
    );
}

/// `kubectl debug`'s subresource carries the Pod: an object without a pod spec there (the
/// `EphemeralContainers` object of Kubernetes 1.20 and 1.21, which this webhook no longer
/// reads) is an error, refused, never a change without images.
#[test]
fn the_ephemeral_containers_subresource_reads_a_pod() {
    let pod = Object::from_value(
        &json!({"spec": {"ephemeralContainers": [{"name": "d", "image": "debugger"}]}}),
    );
    let debug = Change {
        kind: "Pod",
        sub_resource: Some("ephemeralcontainers"),
        operation: "UPDATE",
        object: &pod,
        old_object: None,
    };
    assert_eq!(
        debug.images_to_check(),
        Ok(Some(vec!["debugger".to_owned()]))
    );
    assert!(debug.pod_spec().is_some());
    let before_1_22 =
        Object::from_value(&json!({"ephemeralContainers": [{"name": "d", "image": "debugger"}]}));
    let old_shape = Change {
        kind: "EphemeralContainers",
        object: &before_1_22,
        ..debug
    };
    assert!(matches!(
        old_shape.images_to_check(),
        Err(WorkloadError::NoPodSpec { .. })
    ));
    assert!(old_shape.image_fields().is_empty());
    let status = Change {
        sub_resource: Some("status"),
        ..debug
    };
    assert_eq!(status.images_to_check(), Ok(None));
}

#[test]
fn each_image_is_checked_once_in_order_however_many_the_pod_lists() {
    // Told apart by a look through a few, by a set past FEW: the same answer either way.
    for count in [3, FEW, FEW + 1, 5 * FEW] {
        let written: Vec<String> = (0..count).map(|i| format!("r/app:{}", i % 7)).collect();
        let containers: Vec<_> = written
            .iter()
            .chain(&written)
            .map(|image| json!({"name": "c", "image": image}))
            .collect();
        let object = Object::from_value(&json!({"spec": {"containers": containers}}));
        let old = Object::from_value(&json!({"spec": {"containers": [{"image": "r/app:3"}]}}));
        let change = |operation, old_object| Change {
            kind: "Pod",
            sub_resource: None,
            operation,
            object: &object,
            old_object,
        };
        let unique: Vec<String> = (0..count.min(7)).map(|i| format!("r/app:{i}")).collect();
        assert_eq!(
            change("CREATE", None).images_to_check(),
            Ok(Some(unique.clone()))
        );
        let fresh: Vec<String> = unique.into_iter().filter(|i| i != "r/app:3").collect();
        assert_eq!(
            change("UPDATE", Some(&old)).images_to_check(),
            Ok(Some(fresh)),
            "{count}"
        );
    }
}
