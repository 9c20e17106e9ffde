//! The policy file of `match`, `check` and `audit` as written: the fields of it that the
//! ClusterImagePolicy CRD does not know.
//!
//! serde ignores a field it does not know and the API server prunes it, so a typo such as
//! `secretref` or `namepattern` silently leaves an entry meaning something else. The fields
//! known are read from the CRD's own OpenAPI schema (the one `image-policy crd` prints), the
//! way the API server prunes, so that this check cannot disagree with the cluster.

use std::collections::BTreeMap;
use std::fmt;
use std::path::{Path, PathBuf};

use image_policy_crd::ClusterImagePolicy;
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::{
    JSONSchemaProps, JSONSchemaPropsOrArray, JSONSchemaPropsOrBool,
};
use kube::{CustomResourceExt, Resource};
use serde_yaml::{Mapping, Value};

/// The policy file of `match` and `check`, and how strictly it is read.
#[derive(Debug, clap::Args)]
pub struct PolicyArgs {
    /// A ClusterImagePolicy manifest (YAML or JSON).
    #[arg(long = "policy", value_name = "FILE")]
    pub file: PathBuf,
    /// Refuse the policy file when it has fields that the ClusterImagePolicy CRD does not know
    /// (which the API server drops), instead of warning of each.
    #[arg(long)]
    pub strict: bool,
}

/// A field of a manifest that its CRD's schema does not declare.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UnknownField {
    /// Where it is, such as `spec.verification.keys[0].secretref`.
    pub path: String,
    /// A field of the same object whose name is close enough to be what was meant.
    pub suggestion: Option<String>,
}

impl UnknownField {
    /// The line that warns of it in the file `file`.
    pub fn warning(&self, file: &Path) -> String {
        format!(
            "warning: {}: {self}; the API server drops it",
            file.display()
        )
    }
}

impl fmt::Display for UnknownField {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: unknown field", self.path)?;
        match &self.suggestion {
            Some(known) => write!(f, " (did you mean {known}?)"),
            None => Ok(()),
        }
    }
}

/// `--strict`, and a policy file with fields that the CRD does not know.
#[derive(Debug, thiserror::Error)]
#[error(
    "{}: --strict refuses fields that the CRD does not know, which the API server drops:\n{}",
    .path.display(),
    list(.fields)
)]
pub struct Refusal {
    /// The policy file refused.
    pub path: PathBuf,
    /// Every unknown field, in the order of the file.
    pub fields: Vec<UnknownField>,
}

fn list(fields: &[UnknownField]) -> String {
    let lines: Vec<String> = fields.iter().map(|f| format!("  {f}")).collect();
    lines.join("\n")
}

/// The fields of a ClusterImagePolicy manifest that its CRD does not know, in the order of the
/// manifest. `apiVersion`, `kind` and `metadata` are known, and `metadata` is not looked
/// into: the API server reads it as ObjectMeta, which this CRD does not describe.
pub fn unknown_fields(manifest: &Value) -> Vec<UnknownField> {
    let crd = ClusterImagePolicy::crd();
    let version = ClusterImagePolicy::version(&());
    let schema = crd
        .spec
        .versions
        .iter()
        .find(|v| v.name == *version)
        .and_then(|v| v.schema.as_ref()?.open_api_v3_schema.as_ref());
    let mut found = Vec::new();
    // The CRD is made from our own types, which always give it a schema; the tests that find
    // typos would fail without one.
    if let Some(schema) = schema {
        unknown_in(schema, manifest, "", true, &mut found);
    }
    found
}

/// The fields that a resource always has, whatever its schema says.
const RESOURCE_FIELDS: [&str; 3] = ["apiVersion", "kind", "metadata"];

/// Adds to `found` the fields of `value`, at `path`, that `schema` does not know. `resource`
/// says that `value` is a whole resource (the manifest, or an embedded one).
fn unknown_in(
    schema: &JSONSchemaProps,
    value: &Value,
    path: &str,
    resource: bool,
    found: &mut Vec<UnknownField>,
) {
    match value {
        Value::Mapping(map) => unknown_in_object(schema, map, path, resource, found),
        Value::Sequence(items) => {
            for (i, item) in items.iter().enumerate() {
                if let Some(items_schema) = item_schema(schema, i) {
                    let resource = items_schema.x_kubernetes_embedded_resource == Some(true);
                    unknown_in(items_schema, item, &format!("{path}[{i}]"), resource, found);
                }
            }
        }
        Value::Tagged(tagged) => unknown_in(schema, &tagged.value, path, resource, found),
        Value::Null | Value::Bool(_) | Value::Number(_) | Value::String(_) => {}
    }
}

fn unknown_in_object(
    schema: &JSONSchemaProps,
    map: &Mapping,
    path: &str,
    resource: bool,
    found: &mut Vec<UnknownField>,
) {
    let properties = schema.properties.as_ref();
    // A mapping where the schema wants no object is a type error, which the API server and
    // the policy's parser report on their own.
    if properties.is_none() && schema.type_.as_deref() != Some("object") {
        return;
    }
    // A map's values all have one schema; `true` lets them be anything.
    let (values, any_value) = match &schema.additional_properties {
        Some(JSONSchemaPropsOrBool::Schema(values)) => (Some(values.as_ref()), false),
        Some(JSONSchemaPropsOrBool::Bool(any)) => (None, *any),
        None => (None, false),
    };
    // Kept as written, unknown or not; the fields that the schema names are still pruned.
    let preserved = schema.x_kubernetes_preserve_unknown_fields == Some(true);
    for (key, child) in map {
        let name = key_name(key);
        if resource && RESOURCE_FIELDS.contains(&name.as_str()) {
            continue;
        }
        let child_path = join(path, &name);
        match properties.and_then(|p| p.get(&name)).or(values) {
            Some(child_schema) => {
                let embedded = child_schema.x_kubernetes_embedded_resource == Some(true);
                unknown_in(child_schema, child, &child_path, embedded, found);
            }
            None if any_value || preserved => {}
            None => found.push(UnknownField {
                path: child_path,
                suggestion: nearest(&name, properties),
            }),
        }
    }
}

/// The schema of an array's item `i`.
fn item_schema(schema: &JSONSchemaProps, i: usize) -> Option<&JSONSchemaProps> {
    match schema.items.as_ref()? {
        JSONSchemaPropsOrArray::Schema(items) => Some(items),
        JSONSchemaPropsOrArray::Schemas(each) => each.get(i),
    }
}

/// A mapping key as the API server sees it: sigs.k8s.io/yaml, which turns manifests into JSON
/// for kubectl and the API server, makes number and boolean keys strings.
fn key_name(key: &Value) -> String {
    match key {
        Value::String(s) => s.clone(),
        Value::Number(n) => n.to_string(),
        Value::Bool(b) => b.to_string(),
        other => serde_yaml::to_string(other)
            .map(|s| s.trim_end().to_owned())
            .unwrap_or_default(),
    }
}

/// `path.name`, or `path["name"]` when the name would make the path ambiguous.
fn join(path: &str, name: &str) -> String {
    let plain = !name.is_empty()
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-');
    match (plain, path.is_empty()) {
        (true, true) => name.to_owned(),
        (true, false) => format!("{path}.{name}"),
        (false, _) => format!("{path}[{name:?}]"),
    }
}

/// The known field whose name is nearest `name`, without regard to case, when it is near
/// enough to be a typo of it.
fn nearest(name: &str, known: Option<&BTreeMap<String, JSONSchemaProps>>) -> Option<String> {
    let name = name.to_lowercase();
    let length = name.chars().count();
    known?
        .keys()
        .map(|k| (distance(&name, &k.to_lowercase()), k))
        .filter(|&(d, _)| d <= 2 && 3 * d <= length)
        .min_by_key(|&(d, _)| d)
        .map(|(_, k)| k.clone())
}

/// The Levenshtein distance of `a` and `b`, in characters.
fn distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut previous: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut left = i + 1;
        let mut current = Vec::with_capacity(previous.len());
        current.push(left);
        for ((cb, diagonal), above) in b.iter().zip(&previous).zip(previous.iter().skip(1)) {
            left = (diagonal + usize::from(ca != *cb))
                .min(above + 1)
                .min(left + 1);
            current.push(left);
        }
        previous = current;
    }
    previous.last().copied().unwrap_or_default()
}

#[cfg(test)]
pub(super) mod tests;
