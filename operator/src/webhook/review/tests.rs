use super::*;

/// Real AdmissionReview bodies (operator/tests/data/admission, see its README).
fn fixture_body(file: &str) -> Vec<u8> {
    let path = format!("{}/tests/data/admission/{file}", env!("CARGO_MANIFEST_DIR"));
    std::fs::read(&path).unwrap_or_else(|e| panic!("{path}: {e}"))
}

fn fixture(file: &str) -> Request {
    Request::parse(&fixture_body(file)).unwrap_or_else(|e| panic!("{file}: {e}"))
}

/// What an Event names of a fixture's object, read again from its body.
fn metadata(file: &str) -> Metadata {
    Request::metadata(&fixture_body(file))
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
    let meta = metadata("connaisseur/02_pod.json");
    assert_eq!(meta.generate_name, "charlie-deployment-76fbf58b7d-");
    assert_eq!(
        meta.controller,
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
    let replicaset = metadata("connaisseur/03_replicaset.json");
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
    let deployment = metadata("connaisseur/01_deployment.json");
    assert_eq!(deployment, Metadata::default());
}

#[test]
fn a_dry_run_is_read() {
    let dry_run = fixture("other/kube-review_pod_dryrun_with_kyverno_response.json");
    assert!(dry_run.dry_run);
    assert!(!fixture("connaisseur/02_pod.json").dry_run);
}

/// A Pod review whose `metadata` is `metadata`: as read, and what an Event names of it.
fn with_metadata(metadata: &str) -> (Request, Metadata) {
    let body = format!(
        r#"{{"apiVersion": "admission.k8s.io/v1", "kind": "AdmissionReview", "request": {{
            "uid": "u", "kind": {{"kind": "Pod"}}, "operation": "CREATE", "namespace": "n",
            "object": {{"metadata": {metadata}, "spec": {{"containers": [{{"name": "a", "image": "a:1"}}]}}}}
        }}}}"#
    );
    let request = Request::parse(body.as_bytes()).unwrap();
    (request, Request::metadata(body.as_bytes()))
}

#[test]
fn only_a_complete_controller_reference_counts() {
    let owner = |controller: &str, uid: &str| {
        format!(
            r#"{{"apiVersion": "batch/v1", "kind": "Job", "name": "j", "uid": "{uid}", "controller": {controller}}}"#
        )
    };
    let job = controller("batch/v1", "Job", "j", "1");
    let read = |refs: &str| {
        with_metadata(&format!(r#"{{"ownerReferences": {refs}}}"#))
            .1
            .controller
    };
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
    assert_eq!(with_metadata("\"not an object\"").1.controller, None);
    let named = with_metadata(r#"{"generateName": "web-", "name": "ignored-here"}"#);
    assert_eq!(named.1.generate_name, "web-");
    assert_eq!(with_metadata(r#"{"generateName": 7}"#).1.generate_name, "");
    // The object's images are unaffected by its metadata, whatever it holds.
    assert_eq!(
        with_metadata(r#"{"containers": [{"name": "x", "image": "x:9"}]}"#)
            .0
            .images_to_check()
            .unwrap()
            .unwrap(),
        ["a:1"]
    );
}

/// A Pod review, `extra` added to its object's metadata (a value no field reads) and `image`
/// as its container's image (JSON text).
fn review_with(extra: &str, image: &str) -> Vec<u8> {
    format!(
        r#"{{"apiVersion": "admission.k8s.io/v1", "kind": "AdmissionReview", "request": {{
            "uid": "u", "kind": {{"kind": "Pod"}}, "operation": "CREATE", "namespace": "n",
            "object": {{"metadata": {{"name": "p", "extra": {extra}}},
                "spec": {{"containers": [{{"name": "a", "image": {image}}}]}}}}
        }}}}"#
    )
    .into_bytes()
}

fn not_json(body: &[u8]) -> bool {
    matches!(Request::parse(body), Err(ReviewError::NotJson(_)))
}

#[test]
fn a_body_broken_in_its_structure_is_refused_even_where_nothing_reads() {
    let good = review_with(r#"{"k": [1, "v"]}"#, r#""a:1""#);
    assert_eq!(
        Request::parse(&good).unwrap().images_to_check().unwrap(),
        Some(vec!["a:1".to_owned()])
    );
    for extra in [
        r#"{"k": [1, "v"}"#,
        r#"{"k": [1, "v"]]"#,
        r#"{"k": [1, "v",]}"#,
        r#"{"k": 1,}"#,
        r#"{"k" 1}"#,
        r#"{"k": 1 "l": 2}"#,
        r#"{"k": tru}"#,
        r#"{"k": 01}"#,
        r#"{"k": 1.e3}"#,
        r#"{"k": "\x"}"#,
        r#"{"k": "\u00g0"}"#,
        "{\"k\": \"a\nb\"}",
        r#"{"k": "unterminated}"#,
    ] {
        assert!(not_json(&review_with(extra, r#""a:1""#)), "{extra}");
    }
    // Cut anywhere, the body is not JSON.
    for cut in 1..good.len() - 1 {
        let cut = good.get(..cut).unwrap();
        assert!(not_json(cut), "{}", String::from_utf8_lossy(cut));
    }
    let mut trailing = good.clone();
    trailing.extend_from_slice(b" {}");
    assert!(not_json(&trailing));
}

#[test]
fn what_only_a_json_value_refuses_is_not_looked_at_in_values_nothing_reads() {
    for extra in [
        &br#""\ud800""#[..],
        br#"{"annotations": {"a": "\udc00 alone"}}"#,
        br#"[1e400, -1e999, 123456789012345678901234567890e300]"#,
        br#"{"\udc00": {"\ud800\ud800": [true, null, 0.5e-3]}}"#,
    ] {
        let text = std::str::from_utf8(extra).unwrap();
        let read = Request::parse(&review_with(text, r#""a:1""#)).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(
            read.images_to_check().unwrap(),
            Some(vec!["a:1".to_owned()])
        );
    }
    // Bytes that are not UTF-8 are not JSON (RFC 8259 §8.1), wherever they are.
    for extra in [
        &b"\"\xff\xfe invalid UTF-8\""[..],
        b"{\"k\xc0\": \"\xed\xa0\x80\"}",
    ] {
        assert!(
            not_json(&with_extra_bytes(extra)),
            "{}",
            String::from_utf8_lossy(extra)
        );
    }
}

/// [`review_with`] with `extra` as raw bytes.
fn with_extra_bytes(extra: &[u8]) -> Vec<u8> {
    let body = review_with("@", r#""a:1""#);
    let at = body.iter().position(|b| *b == b'@').unwrap();
    [body.get(..at).unwrap(), extra, body.get(at + 1..).unwrap()].concat()
}

#[test]
fn every_value_that_decides_is_still_validated() {
    // The image, as a container's: an escape decoded, a bad one refused.
    let escaped = Request::parse(&review_with("1", r#""a\u003a1""#)).unwrap();
    assert_eq!(escaped.checked_images(), ["a:1"]);
    for image in [r#""\ud800""#, r#""a\q""#, r#""\ud83d\u0041""#, "1e", "[1,]"] {
        assert!(not_json(&review_with("1", image)), "{image}");
    }
    // A value of another type than the field's is absent, as for a JSON value, and skipped
    // as a value nothing reads: a container without an image, which is refused as such.
    for image in ["1e400", r#"["\ud800"]"#, "null"] {
        let read = Request::parse(&review_with("1", image)).unwrap();
        assert!(read.images_to_check().is_err(), "{image}");
    }
    assert!(not_json(&with_image_bytes(b"\"a\xff:1\"")));
    // Each other field read: uid, kind, operation, namespace, name, generateName, an owner.
    let review = |field: &str| {
        format!(
            r#"{{"apiVersion": "admission.k8s.io/v1", "kind": "AdmissionReview", "request": {{
                "uid": "u", "kind": {{"kind": "Pod"}}, "operation": "CREATE", {field},
                "object": {{"spec": {{"containers": [{{"name": "a", "image": "a:1"}}]}}}}}}}}"#
        )
    };
    for field in [
        r#""namespace": "\ud800""#,
        r#""name": "\ud800""#,
        r#""subResource": "\ud800""#,
        r#""userInfo": {"username": "ok"}, "uid": "\udfff""#,
    ] {
        assert!(not_json(review(field).as_bytes()), "{field}");
    }
    // The same in a field nothing reads, or of another type than the field's, is no error.
    for field in [
        r#""resource": "\ud800""#,
        r#""subResource": 1e400"#,
        r#""dryRun": "\ud800""#,
    ] {
        assert!(Request::parse(review(field).as_bytes()).is_ok(), "{field}");
    }
    // What an Event names decides nothing: skipped by the review's reading, and read (and
    // refused, so named nowhere) only when an Event is recorded.
    for metadata in [
        r#"{"generateName": "\ud800"}"#,
        r#"{"ownerReferences": [{"kind": "\ud800"}]}"#,
        r#"{"ownerReferences": [{"controller": true, "kind": "\udc00"}]}"#,
    ] {
        let body = review_with("1", r#""a:1""#);
        let body = String::from_utf8(body)
            .unwrap()
            .replace(r#"{"name": "p", "extra": 1}"#, metadata);
        assert!(Request::parse(body.as_bytes()).is_ok(), "{metadata}");
        assert_eq!(Request::metadata(body.as_bytes()), Metadata::default());
    }
}

/// [`review_with`] with `image` as raw bytes.
fn with_image_bytes(image: &[u8]) -> Vec<u8> {
    let body = review_with("1", "@");
    let at = body.iter().position(|b| *b == b'@').unwrap();
    [body.get(..at).unwrap(), image, body.get(at + 1..).unwrap()].concat()
}

#[test]
fn a_body_nested_too_deep_is_refused_before_it_is_read() {
    let nested = |depth: usize| {
        let extra = format!("{}{}", "[".repeat(depth), "]".repeat(depth));
        review_with(&extra, r#""a:1""#)
    };
    // The extra value is at the fourth level: request, object, metadata.
    let deepest = crate::lenient::NESTING_LIMIT - 4;
    assert!(Request::parse(&nested(deepest)).is_ok());
    assert!(not_json(&nested(deepest + 1)));
    // Far deeper than any stack would take, refused all the same.
    let Err(error) = Request::parse(&nested(1_000_000)) else {
        panic!("deep");
    };
    assert!(
        error.to_string().contains("nested deeper than 127"),
        "{error}"
    );
}
