//! The manifests of `check -f` and `match -f` (YAML documents or a JSON stream, merge keys,
//! aliases, lists and their items), read as kubectl reads them within the limits of the
//! contract's §8; and the YAML reader under them, which reads policy files too.
//!
//! Input: the manifest's text.
//!
//! Properties: reading ends (the flow nesting is counted before libyaml reads the text, what
//! aliases expand to is counted as it is built); documents read from YAML and written back as
//! a JSON stream read back the same; a manifest's workloads are the same when its documents
//! are written as a JSON stream.

use image_policy::cli::manifest::workloads_in;
use image_policy::cli::yaml::documents;

/// The target.
pub fn run(data: &[u8]) {
    let text = String::from_utf8_lossy(data);
    let read = workloads_in(&text);
    let Ok(documents) = documents(&text) else {
        assert!(read.is_err(), "workloads of documents that cannot be read");
        return;
    };
    // What JSON cannot write (an infinite or NaN number) is left out of the comparison.
    if has_non_finite(&documents) {
        return;
    }
    let Ok(json) = documents
        .iter()
        .filter(|d| !d.is_null())
        .map(serde_json::to_string)
        .collect::<Result<Vec<_>, _>>()
    else {
        return;
    };
    // A JSON stream is one only when it starts with an object.
    if !json.first().is_some_and(|j| j.starts_with('{')) {
        return;
    }
    let stream = json.join("\n");
    let again: Vec<_> = documents_of(&stream);
    let written: Vec<_> = documents.into_iter().filter(|d| !d.is_null()).collect();
    assert_eq!(again, written, "documents read back from JSON:\n{stream}");
    let as_json = workloads_in(&stream).map(|w| {
        w.into_iter()
            .map(|(workload, images)| (workload, images.into_iter().map(|i| i.image).collect()))
            .collect::<Vec<(String, Vec<String>)>>()
    });
    let as_written = read.map(|w| {
        w.into_iter()
            .map(|(workload, images)| (workload, images.into_iter().map(|i| i.image).collect()))
            .collect::<Vec<(String, Vec<String>)>>()
    });
    assert_eq!(
        as_json.ok(),
        as_written.ok(),
        "workloads of the JSON stream"
    );
}

/// The documents of `text`, which must read.
fn documents_of(text: &str) -> Vec<serde_yaml::Value> {
    documents(text).unwrap_or_else(|e| panic!("{e}:\n{text}"))
}

/// Whether a number of `documents` is infinite or NaN, which JSON writes as null.
fn has_non_finite(documents: &[serde_yaml::Value]) -> bool {
    fn walk(value: &serde_yaml::Value) -> bool {
        match value {
            serde_yaml::Value::Number(n) => n.as_f64().is_some_and(|f| !f.is_finite()),
            serde_yaml::Value::Sequence(items) => items.iter().any(walk),
            serde_yaml::Value::Mapping(map) => map.values().any(walk),
            serde_yaml::Value::Tagged(tagged) => walk(&tagged.value),
            _ => false,
        }
    }
    documents.iter().any(walk)
}
