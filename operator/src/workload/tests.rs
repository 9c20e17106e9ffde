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
    // `kubectl debug`: a Pod since Kubernetes 1.22, an EphemeralContainers before.
    let debugged = json!({"spec": {"ephemeralContainers": [{"name": "d", "image": "debugger"}]}});
    assert_eq!(
        fields("Pod", Some("ephemeralcontainers"), debugged),
        [field("/spec/ephemeralContainers/0/image", "debugger")]
    );
    let before_1_22 = json!({"ephemeralContainers": [{"name": "d", "image": "debugger"}]});
    assert_eq!(
        fields(
            "EphemeralContainers",
            Some("ephemeralcontainers"),
            before_1_22
        ),
        [field("/ephemeralContainers/0/image", "debugger")]
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
