//! Compiling a policy file (YAML or JSON) into a snapshot: keys, keyless identities, trusted
//! roots, modes, patterns, exclusions.
//!
//! Input: NUL-separated parts: the policy file, then the `trusted_root.json` documents of the
//! trusted roots it declares, in order (each put in the ConfigMap and key its root names).
//!
//! Properties: the policy read from YAML and the same policy written as JSON and read back
//! compile alike (the same problems, or snapshots alike); compiling twice gives the same
//! answer; what compiles can match images.

use image_policy::cli::policy_file::unknown_fields;
use image_policy::cli::yaml;
use image_policy::policy::trust::{DEFAULT_DOCUMENT_KEY, Documents};
use image_policy::policy::{ImageName, Snapshot};
use image_policy_crd::ClusterImagePolicy;

/// Images each compiled policy is asked about.
const IMAGES: [&str; 5] = [
    "busybox",
    "registry.example.org/myproject/my-image:mytag",
    "ghcr.io/org/app@sha256:ffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff",
    "[::1]:5000/app:v1",
    "127.0.0.1:5000/app",
];

/// The target.
pub fn run(data: &[u8]) {
    let parts = crate::parts(data);
    let Some((text, roots)) = parts.split_first() else {
        return;
    };
    // Read as `match`, `check` and `audit` read a policy file: one document, by the reader
    // of the commands (kubectl's reading, within the limits of the contract's §8).
    let Ok(mut read) = yaml::documents(text) else {
        return;
    };
    read.retain(|d| !d.is_null());
    let [value] = read.as_slice() else {
        return;
    };
    let _ = unknown_fields(value);
    let Ok(policy) = serde_yaml::from_value::<ClusterImagePolicy>(value.clone()) else {
        return;
    };
    let documents = documents(&policy, roots);
    let compiled = outcome(&policy, &documents);
    assert_eq!(compiled, outcome(&policy, &documents), "compiled twice");
    // The same policy as JSON, as the API server would hand it to the controller.
    let json = serde_json::to_vec(&policy).unwrap_or_else(|e| panic!("to JSON: {e}"));
    let read: ClusterImagePolicy =
        serde_json::from_slice(&json).unwrap_or_else(|e| panic!("JSON of a policy: {e}"));
    assert_eq!(compiled, outcome(&read, &documents), "as JSON");
}

/// The documents of the policy's declared roots, from the input's parts.
fn documents(policy: &ClusterImagePolicy, roots: &[String]) -> Documents {
    let mut documents = Documents::new();
    for (root, document) in policy.spec.verification.trusted_roots.iter().zip(roots) {
        let key = root
            .config_map_ref
            .key
            .clone()
            .unwrap_or_else(|| DEFAULT_DOCUMENT_KEY.to_owned());
        documents
            .entry(root.config_map_ref.name.clone())
            .or_default()
            .insert(key, document.clone());
    }
    documents
}

/// What compiling says, comparably: the problems, or what the snapshot decides of
/// [`IMAGES`] and how many entries and keys it has.
fn outcome(policy: &ClusterImagePolicy, documents: &Documents) -> Result<String, String> {
    let snapshot = Snapshot::compile_with(policy, documents).map_err(|p| p.to_string())?;
    let keys: Vec<String> = snapshot.keys().iter().map(|k| k.identity()).collect();
    let unavailable: Vec<String> = snapshot
        .unavailable_roots()
        .iter()
        .map(ToString::to_string)
        .collect();
    let mut summary = format!(
        "{} entries, keys {keys:?}, unavailable {unavailable:?}, mode {:?}",
        snapshot.entries().len(),
        snapshot.mode()
    );
    for written in IMAGES {
        let image = ImageName::parse(written).unwrap_or_else(|e| panic!("{written}: {e}"));
        let matched = snapshot.matching(&image);
        let entries: Vec<String> = matched
            .iter()
            .map(|entry| format!("{}:{:?}", entry.index, entry.key_ids))
            .collect();
        let mode = snapshot.mode_of(&matched);
        summary.push_str(&format!("\n{written}: {entries:?} {mode:?}"));
    }
    Ok(summary)
}
