//! What the commands read: the policy file, compiled with the trusted roots it names
//! (`match`, `check`, `audit`), and any other file as bytes or as text, at most
//! [`MAX_FILE_BYTES`]. Every failure is a [`CliError`] naming the file.

use std::io::Read;
use std::path::{Path, PathBuf};

use image_policy_crd::ClusterImagePolicy;
use kube::Resource;

use super::error::CliError;
use super::policy_file::{self, PolicyArgs, Refusal};
use super::yaml;
use crate::policy::{DEFAULT_DOCUMENT_KEY, Documents, Snapshot};

/// Reads and compiles a policy manifest, warning of fields the CRD does not know.
pub(super) fn load_policy(policy: &PolicyArgs) -> Result<Snapshot, CliError> {
    load_policy_with(policy, &[])
}

/// Reads and compiles a policy file as [`load_policy`] does, with the trusted roots that its
/// `spec.verification.trustedRoots` name read from files instead of ConfigMaps: `roots` pairs
/// a root's name with the file of its `trusted_root.json`. A name the policy does not declare
/// is an input error, so that a typo cannot leave a root unread unnoticed.
pub(super) fn load_policy_with(
    policy: &PolicyArgs,
    roots: &[(String, PathBuf)],
) -> Result<Snapshot, CliError> {
    let read = read_policy(policy)?;
    let documents = root_documents(&read, roots)?;
    compile_policy(policy, &read, &documents)
}

/// Compiles a policy read from `policy`'s file, with its trusted roots' documents; the
/// problems are an error naming the file.
pub(super) fn compile_policy(
    policy: &PolicyArgs,
    read: &ClusterImagePolicy,
    documents: &Documents,
) -> Result<Snapshot, CliError> {
    Snapshot::compile_with(read, documents).map_err(|problems| CliError::Invalid {
        path: policy.file.clone(),
        problems,
    })
}

/// Reads a policy file: a ClusterImagePolicy manifest (one YAML or JSON document, read as
/// kubectl reads it: [`yaml::documents`]), warning of (or with `--strict` refusing) the fields
/// the CRD does not know.
pub(super) fn read_policy(policy: &PolicyArgs) -> Result<ClusterImagePolicy, CliError> {
    let path = policy.file.as_path();
    let text = read_text(path)?;
    let parse_error = |detail: String| CliError::Parse {
        path: path.into(),
        detail,
    };
    let mut documents: Vec<serde_yaml::Value> = yaml::documents(&text)
        .map_err(|e| parse_error(e.to_string()))?
        .into_iter()
        .filter(|document| !document.is_null())
        .collect();
    let manifest = match (documents.pop(), documents.is_empty()) {
        (Some(manifest), true) => manifest,
        (None, _) => return Err(parse_error("the file holds no document".into())),
        (Some(_), false) => {
            return Err(parse_error(format!(
                "the file holds {} documents, and a policy file holds one",
                documents.len() + 1
            )));
        }
    };
    // The kind first, so that a Deployment given by mistake is named as such rather than
    // reported as a ClusterImagePolicy with missing fields.
    let types: kube::core::TypeMeta =
        serde_yaml::from_value(manifest.clone()).map_err(|e| parse_error(e.to_string()))?;
    let expected = (
        ClusterImagePolicy::api_version(&()),
        ClusterImagePolicy::kind(&()),
    );
    if (types.api_version.as_str(), types.kind.as_str()) != (&*expected.0, &*expected.1) {
        return Err(parse_error(format!(
            "found {}/{}, expected {}/{}",
            types.api_version, types.kind, expected.0, expected.1
        )));
    }
    screen(path, &manifest, policy.strict)?;
    serde_yaml::from_value(manifest).map_err(|e| parse_error(e.to_string()))
}

/// Looks in `manifest`, the policy file `file` as read, for fields that the CRD does not
/// know: with `strict` refuses the file when there is any, without it warns of each on
/// standard error.
fn screen(file: &Path, manifest: &serde_yaml::Value, strict: bool) -> Result<(), CliError> {
    screen_with(file, manifest, strict, |line| eprintln!("{line}"))
}

/// [`screen`], with each warning line given to `warn`.
fn screen_with(
    file: &Path,
    manifest: &serde_yaml::Value,
    strict: bool,
    mut warn: impl FnMut(String),
) -> Result<(), CliError> {
    let fields = policy_file::unknown_fields(manifest);
    if strict && !fields.is_empty() {
        return Err(Refusal {
            path: file.into(),
            fields,
        }
        .into());
    }
    for field in &fields {
        warn(field.warning(file));
    }
    Ok(())
}

/// The ConfigMap data the policy's trusted roots would be read from, made of `roots`' files.
pub(super) fn root_documents(
    policy: &ClusterImagePolicy,
    roots: &[(String, PathBuf)],
) -> Result<Documents, CliError> {
    let declared = &policy.spec.verification.trusted_roots;
    let mut documents = Documents::new();
    for (name, file) in roots {
        let Some(root) = declared.iter().find(|r| &r.name == name) else {
            let names: Vec<&str> = declared.iter().map(|r| r.name.as_str()).collect();
            return Err(CliError::Input {
                path: file.clone(),
                detail: format!(
                    "--trusted-root {name}: the policy declares no trusted root of that name \
                     (it declares: {})",
                    if names.is_empty() {
                        "none".to_owned()
                    } else {
                        names.join(", ")
                    }
                ),
            });
        };
        let key = root
            .config_map_ref
            .key
            .clone()
            .unwrap_or_else(|| DEFAULT_DOCUMENT_KEY.to_owned());
        documents
            .entry(root.config_map_ref.name.clone())
            .or_default()
            .insert(key, read_text(file)?);
    }
    Ok(documents)
}

/// The most bytes a command reads from one file (a policy, a manifest, a bundle, a key, a
/// trusted root, a docker config): 16 MiB, read no further.
pub const MAX_FILE_BYTES: u64 = 16 * 1024 * 1024;

/// A file's bytes, at most [`MAX_FILE_BYTES`].
pub(super) fn read_file(path: &Path) -> Result<Vec<u8>, CliError> {
    let read_error = |source| CliError::Read {
        path: path.into(),
        source,
    };
    let file = std::fs::File::open(path).map_err(read_error)?;
    let mut bytes = Vec::new();
    file.take(MAX_FILE_BYTES + 1)
        .read_to_end(&mut bytes)
        .map_err(read_error)?;
    if bytes.len() as u64 > MAX_FILE_BYTES {
        return Err(CliError::Input {
            path: path.into(),
            detail: format!(
                "larger than {} MiB, the limit of a file read",
                MAX_FILE_BYTES / 1024 / 1024
            ),
        });
    }
    Ok(bytes)
}

/// A file that must be UTF-8 text, at most [`MAX_FILE_BYTES`].
pub(super) fn read_text(path: &Path) -> Result<String, CliError> {
    String::from_utf8(read_file(path)?).map_err(|_| CliError::Input {
        path: path.into(),
        detail: "not UTF-8 text".into(),
    })
}

#[cfg(test)]
mod tests;
