//! The generated CRD describes every field, for `kubectl explain`.

use image_policy_crd::ClusterImagePolicy;
use kube::CustomResourceExt;
use serde_json::Value;

/// Walks `schema` (at `path`), recording each property's path in `seen` and, when it has
/// no description, in `undescribed`.
fn walk(schema: &Value, path: &str, seen: &mut Vec<String>, undescribed: &mut Vec<String>) {
    if let Some(properties) = schema.get("properties").and_then(Value::as_object) {
        for (name, property) in properties {
            let path = format!("{path}.{name}");
            let description = property.get("description").and_then(Value::as_str);
            if description.is_none_or(|d| d.trim().is_empty()) {
                undescribed.push(path.clone());
            }
            walk(property, &path, seen, undescribed);
            seen.push(path);
        }
    }
    if let Some(items) = schema.get("items") {
        walk(items, &format!("{path}[]"), seen, undescribed);
    }
    if let Some(values) = schema.get("additionalProperties") {
        walk(values, &format!("{path}{{}}"), seen, undescribed);
    }
    for combinator in ["allOf", "anyOf", "oneOf"] {
        for branch in schema
            .get(combinator)
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
        {
            walk(branch, path, seen, undescribed);
        }
    }
}

/// The schema of the CRD's one version; `null` if it has none, which the tests report.
fn schema() -> Value {
    let crd = serde_json::to_value(ClusterImagePolicy::crd()).unwrap_or_default();
    crd.pointer("/spec/versions/0/schema/openAPIV3Schema")
        .cloned()
        .unwrap_or_default()
}

#[test]
fn every_field_of_the_crd_has_a_description() {
    let schema = schema();
    let (mut seen, mut undescribed) = (Vec::new(), Vec::new());
    walk(&schema, "", &mut seen, &mut undescribed);
    assert!(
        seen.iter()
            .any(|p| p == ".spec.verification.keys[].keyless.subjectRegExp")
            && seen.iter().any(|p| p == ".status.conditions[].type"),
        "the walk misses nested fields: {seen:?}"
    );
    assert!(
        undescribed.is_empty(),
        "fields without a description (add a doc comment): {undescribed:?}"
    );
}

#[test]
fn an_optional_enum_field_is_described_by_its_enum() {
    // kube gives an `Option` of an enum the enum's description in place of the field's, so
    // what `kubectl explain` must say of transparencyLog is in `TransparencyLog`'s doc.
    let schema = schema();
    let description = schema
        .pointer("/properties/spec/properties/verification/properties/keys/items/properties/transparencyLog/description")
        .and_then(Value::as_str)
        .unwrap_or_default();
    assert!(
        description.contains("For a publicKey, Optional is the default")
            && description.contains("For keyless, Required is the default"),
        "{description}"
    );
}

#[test]
fn both_modes_are_described_and_closed_by_the_enum() {
    // Kept as a string in the Rust type (so the compiler can name an unknown value's path),
    // the field is still the enum in the schema, refused by the API server when unknown.
    let schema = schema();
    let verification = "/properties/spec/properties/verification";
    for path in [
        format!("{verification}/properties/mode"),
        format!("{verification}/properties/images/items/properties/mode"),
    ] {
        let field = schema.pointer(&path).cloned().unwrap_or_default();
        let description = field["description"].as_str().unwrap_or_default();
        assert!(
            description.contains("Enforce (the default")
                && description.contains("only when every one of them is in Warn"),
            "{path}: {description}"
        );
        assert_eq!(
            field["enum"],
            serde_json::json!(["Enforce", "Warn"]),
            "{path}: {field}"
        );
        assert_eq!(field["type"], "string", "{path}: {field}");
    }
}
