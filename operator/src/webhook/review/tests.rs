use super::*;

/// Real AdmissionReview bodies (operator/tests/data/admission, see its README).
fn fixture(file: &str) -> Request {
    let path = format!("{}/tests/data/admission/{file}", env!("CARGO_MANIFEST_DIR"));
    let body = std::fs::read(&path).unwrap_or_else(|e| panic!("{path}: {e}"));
    Request::parse(&body).unwrap_or_else(|e| panic!("{path}: {e}"))
}

fn controller(api_version: &str, kind: &str, name: &str, uid: &str) -> Option<ControllerRef> {
    Some(ControllerRef {
        api_version: api_version.into(),
        kind: kind.into(),
        name: name.into(),
        uid: uid.into(),
    })
}

#[test]
fn a_controllers_pod_names_its_replicaset_and_its_generate_name() {
    let pod = fixture("connaisseur/02_pod.json");
    assert_eq!(pod.name, "", "not named yet");
    assert_eq!(pod.generate_name, "charlie-deployment-76fbf58b7d-");
    assert_eq!(
        pod.controller,
        controller(
            "apps/v1",
            "ReplicaSet",
            "charlie-deployment-76fbf58b7d",
            "090d26f8-1812-11ea-b3fc-02897404852e"
        )
    );
    // The images are read as before, beside the metadata.
    assert_eq!(
        pod.images_to_check().unwrap().unwrap(),
        [
            "securesystemsengineering/charlie-image@sha256:91ac9b26df583762234c1cdb2fc930364754ccc59bc752a2bfe298d2ea68f9ff"
        ]
    );
}

#[test]
fn a_replicaset_names_its_deployment_and_an_object_without_owner_none() {
    let replicaset = fixture("connaisseur/03_replicaset.json");
    assert_eq!(replicaset.generate_name, "");
    assert_eq!(
        replicaset.controller,
        controller(
            "apps/v1",
            "Deployment",
            "charlie-deployment",
            "3a3a7b38-5512-4a85-94bb-3562269e0a6a"
        )
    );
    let deployment = fixture("connaisseur/01_deployment.json");
    assert_eq!(deployment.controller, None);
    assert_eq!(deployment.generate_name, "");
}

#[test]
fn a_dry_run_is_read() {
    let dry_run = fixture("other/kube-review_pod_dryrun_with_kyverno_response.json");
    assert!(dry_run.dry_run);
    assert!(!fixture("connaisseur/02_pod.json").dry_run);
}

/// A Pod review whose `metadata` is `metadata`.
fn with_metadata(metadata: &str) -> Request {
    let body = format!(
        r#"{{"apiVersion": "admission.k8s.io/v1", "kind": "AdmissionReview", "request": {{
            "uid": "u", "kind": {{"kind": "Pod"}}, "operation": "CREATE", "namespace": "n",
            "object": {{"metadata": {metadata}, "spec": {{"containers": [{{"name": "a", "image": "a:1"}}]}}}}
        }}}}"#
    );
    Request::parse(body.as_bytes()).unwrap()
}

#[test]
fn only_a_complete_controller_reference_counts() {
    let owner = |controller: &str, uid: &str| {
        format!(
            r#"{{"apiVersion": "batch/v1", "kind": "Job", "name": "j", "uid": "{uid}", "controller": {controller}}}"#
        )
    };
    let job = controller("batch/v1", "Job", "j", "1");
    let read = |refs: &str| with_metadata(&format!(r#"{{"ownerReferences": {refs}}}"#)).controller;
    assert_eq!(read(&format!("[{}]", owner("true", "1"))), job);
    // The controller among other owners, whatever its place.
    assert_eq!(
        read(&format!(
            "[{}, {}]",
            owner("false", "2"),
            owner("true", "1")
        )),
        job
    );
    // The first controller only (the API server allows one).
    assert_eq!(
        read(&format!("[{}, {}]", owner("true", "1"), owner("true", "2"))),
        job
    );
    for none in [
        format!("[{}]", owner("false", "1")),
        format!("[{}]", owner("\"true\"", "1")),
        format!("[{}]", owner("null", "1")),
        format!("[{}]", owner("true", "")),
        r#"[{"apiVersion": "batch/v1", "kind": "Job", "uid": "1", "controller": true}]"#.into(),
        r#"[{"apiVersion": "batch/v1", "kind": "Job", "name": 5, "uid": "1", "controller": true}]"#
            .into(),
        "[]".into(),
        "null".into(),
        r#"{"controller": true}"#.into(),
        "[3, \"x\", null]".into(),
    ] {
        assert_eq!(read(&none), None, "{none}");
    }
    assert_eq!(with_metadata("\"not an object\"").controller, None);
    let named = with_metadata(r#"{"generateName": "web-", "name": "ignored-here"}"#);
    assert_eq!(named.generate_name, "web-");
    assert_eq!(with_metadata(r#"{"generateName": 7}"#).generate_name, "");
    // The object's images are unaffected by its metadata, whatever it holds.
    assert_eq!(
        with_metadata(r#"{"containers": [{"name": "x", "image": "x:9"}]}"#)
            .images_to_check()
            .unwrap()
            .unwrap(),
        ["a:1"]
    );
}
