//! Reading an AdmissionReview and finding its images: [`Request::parse`], the image rules of
//! every kind (the object's own kind, then each kind with a pod spec and the ephemeral
//! containers subresource in turn), the JSON pointers a patch writes, and each image matched
//! against a policy.
//!
//! Properties: the images found are those an independent walk of the same body as a JSON
//! value finds, in the same order; every pointer of [`Request::image_fields`] leads to its
//! image in the body; an image that parses matches the same entries as its canonical form.

use std::sync::OnceLock;

use image_policy::policy::{ImageName, Snapshot};
use image_policy::webhook::review::Request;
use image_policy::workload::KINDS;
use serde_json::Value;

/// The original documentation's table as a policy (operator/tests/data/policies).
const POLICY: &str = include_str!("../../operator/tests/data/policies/seed-table.yaml");

/// The policy every image is matched against.
fn snapshot() -> &'static Snapshot {
    static SNAPSHOT: OnceLock<Snapshot> = OnceLock::new();
    SNAPSHOT.get_or_init(|| {
        let policy = serde_yaml::from_str(POLICY).unwrap_or_else(|e| panic!("seed-table: {e}"));
        Snapshot::compile(&policy).unwrap_or_else(|e| panic!("seed-table: {e}"))
    })
}

/// The target.
pub fn run(data: &[u8]) {
    let Ok(request) = Request::parse(data) else {
        return;
    };
    let body: Option<Value> = serde_json::from_slice(data).ok();
    let object = body
        .as_ref()
        .and_then(|b| b.get("request"))
        .and_then(|r| r.get("object"));
    let kinds = std::iter::once(request.kind.clone()).chain(KINDS.iter().map(|k| (*k).to_owned()));
    for kind in kinds {
        for sub_resource in [None, Some("ephemeralcontainers")] {
            let mut as_kind = request.clone();
            as_kind.kind.clone_from(&kind);
            as_kind.sub_resource = sub_resource.map(str::to_owned);
            check(&as_kind, object);
        }
    }
}

/// One reading of the request.
fn check(request: &Request, object: Option<&Value>) {
    // The request's own images were found when it was read; as another kind, they are the
    // change's.
    let change = request.change();
    let images = change.images_to_check();
    let fields = change.image_fields();
    let _ = change.pod_spec();
    if let Some(object) = object {
        for (pointer, image) in &fields {
            let found = object.pointer(pointer).and_then(Value::as_str);
            assert_eq!(found, Some(image.as_str()), "{pointer}");
        }
        if let Ok(Some(found)) = &images
            && request.operation == "CREATE"
        {
            let expected = walk(object, &request.kind, request.sub_resource.as_deref());
            let mut unique = Vec::new();
            for image in expected.into_iter().flatten() {
                if !unique.contains(&image) {
                    unique.push(image);
                }
            }
            assert_eq!(
                found, &unique,
                "{} {:?}",
                request.kind, request.sub_resource
            );
        }
    }
    if let Ok(Some(images)) = images {
        for image in images {
            match_image(&image);
        }
    }
}

/// Matches an image and its canonical form against the policy: the same entries.
fn match_image(written: &str) {
    let Ok(image) = ImageName::parse(written) else {
        return;
    };
    let entries: Vec<usize> = snapshot()
        .matching(&image)
        .iter()
        .map(|e| e.index)
        .collect();
    let canonical = image.canonical();
    let again = ImageName::parse(&canonical)
        .unwrap_or_else(|e| panic!("{written}: canonical {canonical} does not parse: {e}"));
    let again: Vec<usize> = snapshot()
        .matching(&again)
        .iter()
        .map(|e| e.index)
        .collect();
    assert_eq!(entries, again, "{written} and {canonical}");
}

/// The images of `object` read as a JSON value, independently of the product's reader:
/// `None` where the product must refuse (no pod spec, a list that is not a list, a container
/// without a non-empty image).
fn walk(object: &Value, kind: &str, sub_resource: Option<&str>) -> Option<Vec<String>> {
    let spec = match sub_resource {
        None => {
            let path = image_policy::workload::pod_spec_path(kind)?;
            path.iter()
                .try_fold(object, |value, field| value.get(field))?
        }
        Some(_) => object.get("spec").unwrap_or(object),
    };
    if sub_resource.is_none() && !spec.is_object() {
        return None;
    }
    let mut images = Vec::new();
    for list in ["initContainers", "containers", "ephemeralContainers"] {
        match spec.get(list) {
            None | Some(Value::Null) => {}
            Some(Value::Array(items)) => {
                for item in items {
                    match item.get("image").and_then(Value::as_str) {
                        Some(image) if !image.is_empty() => images.push(image.to_owned()),
                        _ => return None,
                    }
                }
            }
            Some(_) => return None,
        }
    }
    Some(images)
}
