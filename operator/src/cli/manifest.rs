//! The manifests of `check -f` and `match -f`, read as `kubectl apply -f` and `kubectl create
//! -f` read them (cli-runtime's resource builder over the YAML-or-JSON decoder), so that a
//! check sees every object the cluster would be asked to create, or refuses the file.
//!
//! - The file is a stream of JSON values or of YAML documents, with merge keys, aliases and
//!   the limits of [`super::yaml`]. An empty document, or `null`, is skipped.
//! - A document that is not an object, or has no `kind`, is refused: kubectl refuses it.
//! - A document with an `items` field is a list, whatever its kind (`List`, `v1/List`, `PodList`,
//!   any `<Kind>List`), as kubectl's decoder reads it: it stands for its items, and an item with
//!   neither `kind` nor `apiVersion` gets the list's kind without `List` and the list's
//!   `apiVersion`. An item that is a list itself (its `items` a sequence) stands for its own
//!   items, which get nothing from it, in the order kubectl's `FlattenListVisitor` visits them.
//!   `items` that is neither a sequence nor null, an item that is not an object, and an object
//!   without `kind` are refused.

use std::path::{Path, PathBuf};

use serde_json::{Map, Value};

use super::error::CliError;
use super::input::read_text;
use super::yaml::{self, YamlError};
use crate::workload::{ContainerImage, WorkloadError, images_of};

/// What `check` and `match` decide about: images given as arguments, or the images of the
/// Pods and workloads of a manifest (`-f`).
#[derive(clap::Args, Debug, Clone)]
pub struct Subjects {
    /// Read the images of the Pods and workloads of this manifest instead of images:
    /// containers' and image volumes', from YAML documents or JSON read as `kubectl apply -f`
    /// reads them (merge keys, lists and their items).
    #[arg(
        short = 'f',
        long = "filename",
        value_name = "MANIFEST.yaml",
        conflicts_with = "images"
    )]
    pub manifest: Option<PathBuf>,
    /// Images as written in a pod spec.
    #[arg(value_name = "IMAGE", required_unless_present = "manifest")]
    pub images: Vec<String>,
}

/// Why a manifest cannot be read as kubectl reads it; `at` says where (`document 2`,
/// `document 1: item 0`).
#[derive(Debug, thiserror::Error)]
pub enum ManifestError {
    /// Not a stream of YAML documents or JSON values within the limits of [`super::yaml`].
    #[error(transparent)]
    Yaml(#[from] YamlError),
    /// A document YAML reads that JSON cannot hold.
    #[error("{at}: {detail}")]
    NotJson {
        /// Where.
        at: String,
        /// serde_json's words.
        detail: String,
    },
    /// A document or item that is not an object.
    #[error("{at} is not an object")]
    NotAnObject {
        /// Where.
        at: String,
    },
    /// An object without a kind.
    #[error("{at} has no kind, which kubectl refuses")]
    NoKind {
        /// Where.
        at: String,
    },
    /// A list whose `items` are neither a sequence nor null.
    #[error("{at}: its items are not a list")]
    ItemsNotAList {
        /// Where.
        at: String,
    },
    /// A workload whose images cannot be read.
    #[error("{workload}: {source}")]
    Workload {
        /// `Kind/name`.
        workload: String,
        /// Why.
        source: WorkloadError,
    },
    /// Nothing in it names an image.
    #[error("no Pod or workload with containers found")]
    NoWorkload,
}

/// Every Pod and workload of the manifest at `path` (`Kind/name`) with its images
/// (containers' and image volumes'), as the webhook reads them; an error when there is none.
pub(super) fn workloads(path: &Path) -> Result<Vec<(String, Vec<ContainerImage>)>, CliError> {
    workloads_in(&read_text(path)?).map_err(|e| CliError::Input {
        path: path.into(),
        detail: e.to_string(),
    })
}

/// [`workloads`] of a manifest's text; the error says what is wrong and where.
pub fn workloads_in(text: &str) -> Result<Vec<(String, Vec<ContainerImage>)>, ManifestError> {
    let documents = yaml::documents(text)?;
    let mut out = Vec::new();
    for object in objects(documents)? {
        let kind = text_at(&object, "kind");
        let name = object
            .get("metadata")
            .map_or("", |metadata| text_at(metadata, "name"));
        let name = if name.is_empty() { "<unnamed>" } else { name };
        let workload = format!("{kind}/{name}");
        let images = images_of(kind, &object).map_err(|source| ManifestError::Workload {
            workload: workload.clone(),
            source,
        })?;
        match images {
            Some(images) if !images.is_empty() => out.push((workload, images)),
            _ => {}
        }
    }
    if out.is_empty() {
        return Err(ManifestError::NoWorkload);
    }
    Ok(out)
}

/// The objects kubectl would send for `documents`, lists flattened, in kubectl's order.
fn objects(documents: Vec<serde_yaml::Value>) -> Result<Vec<Value>, ManifestError> {
    let mut out = Vec::new();
    for (n, document) in documents.into_iter().enumerate() {
        let place = format!("document {}", n + 1);
        let document = serde_json::to_value(document).map_err(|e| ManifestError::NotJson {
            at: place.clone(),
            detail: e.to_string(),
        })?;
        let object = match document {
            Value::Null => continue,
            Value::Object(object) => object,
            _ => return Err(ManifestError::NotAnObject { at: place }),
        };
        if text_at_map(&object, "kind").is_empty() {
            return Err(ManifestError::NoKind { at: place });
        }
        if !object.contains_key("items") {
            out.push(Value::Object(object));
            continue;
        }
        flatten(&place, object, &mut out)?;
    }
    Ok(out)
}

/// Adds to `out` the objects of the list `list` (the `place`th document), as kubectl's
/// decoder and `FlattenListVisitor` make them.
fn flatten(
    place: &str,
    mut list: Map<String, Value>,
    out: &mut Vec<Value>,
) -> Result<(), ManifestError> {
    let kind = text_at_map(&list, "kind");
    let item_kind = kind.strip_suffix("List").unwrap_or(kind).to_owned();
    let api_version = list.get("apiVersion").cloned();
    let items = match list.remove("items") {
        Some(Value::Array(items)) => items,
        Some(Value::Null) => Vec::new(),
        _ => {
            return Err(ManifestError::ItemsNotAList {
                at: place.to_owned(),
            });
        }
    };
    // Breadth first, as kubectl visits them: the items of a list that is an item come after
    // the other items of its list.
    let mut queue: Vec<(String, Value)> = Vec::new();
    for (i, item) in items.into_iter().enumerate() {
        let Value::Object(mut item) = item else {
            return Err(ManifestError::NotAnObject {
                at: format!("{place}: item {i}"),
            });
        };
        if text_at_map(&item, "kind").is_empty() && text_at_map(&item, "apiVersion").is_empty() {
            item.insert("kind".into(), Value::String(item_kind.clone()));
            if let Some(version) = &api_version {
                item.insert("apiVersion".into(), version.clone());
            }
        }
        queue.push((format!("{place}: item {i}"), Value::Object(item)));
    }
    let mut next = 0;
    while let Some((at, mut item)) = queue.get_mut(next).map(std::mem::take) {
        next += 1;
        if let Some(Value::Array(items)) = item.get_mut("items") {
            for (i, nested) in std::mem::take(items).into_iter().enumerate() {
                if !nested.is_object() {
                    return Err(ManifestError::NotAnObject {
                        at: format!("{at}: item {i}"),
                    });
                }
                queue.push((format!("{at}: item {i}"), nested));
            }
            continue;
        }
        if text_at(&item, "kind").is_empty() {
            return Err(ManifestError::NoKind { at });
        }
        out.push(item);
    }
    Ok(())
}

/// The string at `field` of an object, empty when missing or not a string.
fn text_at<'a>(object: &'a Value, field: &str) -> &'a str {
    object
        .get(field)
        .and_then(Value::as_str)
        .unwrap_or_default()
}

/// [`text_at`] of a map.
fn text_at_map<'a>(object: &'a Map<String, Value>, field: &str) -> &'a str {
    object
        .get(field)
        .and_then(Value::as_str)
        .unwrap_or_default()
}

#[cfg(test)]
mod tests;
