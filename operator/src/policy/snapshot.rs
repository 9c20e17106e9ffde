//! Compiling a `ClusterImagePolicy` into the immutable [`Snapshot`] that admission reads.
//!
//! Compilation either succeeds whole or reports every problem at once, each with its field
//! path and condition reason, so that one `kubectl apply` shows the author all there is to
//! fix. Matching is the admission hot path: patterns are indexed by the registry (first
//! path component) they fix, so an image is only compared with the patterns that could
//! match it plus those that start with a wildcard.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;

use image_policy_crd::{
    ClusterImagePolicy, ClusterImagePolicySpec, Mode, POLICY_NAME, Reason, SecretRef,
};
use kube::ResourceExt;

use super::attestation::{self, Need, Requirement, Scope};
use super::dns::{is_dns_label, is_dns_subdomain};
use super::pattern::{ImageName, NamePattern};
use super::problem::{Problem, Problems};
use super::signer::{NamedKey, compile_keys};
use super::trust::{Documents, compile_roots, unavailable};

/// A compiled, immutable policy.
#[derive(Debug)]
pub struct Snapshot {
    version: Version,
    /// `spec.verification.mode`: of the entries that set none, and of unmatched images.
    mode: Mode,
    excluded_namespaces: HashSet<String>,
    keys: Vec<NamedKey>,
    entries: Vec<Entry>,
    by_first_component: HashMap<String, Vec<usize>>,
    unindexed: Vec<usize>,
    /// The trusted roots keys need that cannot be used (their ConfigMap is missing, say).
    unavailable_roots: Vec<Problem>,
}

/// Which version of a policy object something was made from: its `metadata.uid` and
/// `metadata.generation`, when known.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Version {
    /// `metadata.uid`: a policy deleted and created again is another object.
    pub uid: Option<String>,
    /// `metadata.generation`: bumped by every change of the spec.
    pub generation: Option<i64>,
}

impl Version {
    /// The version of `policy`.
    pub fn of(policy: &ClusterImagePolicy) -> Self {
        Version {
            uid: policy.metadata.uid.clone(),
            generation: policy.metadata.generation,
        }
    }
}

/// One `spec.verification.images[]` entry, compiled.
#[derive(Debug, Clone)]
pub struct Entry {
    /// Its position in `spec.verification.images`.
    pub index: usize,
    /// Its compiled `namePattern`.
    pub pattern: NamePattern,
    /// Indices into [`Snapshot::keys`], in the order the entry names them, without repeats.
    pub key_ids: Vec<usize>,
    /// Its registry credential, as written.
    pub secret_ref: Option<SecretRef>,
    /// Its mode: its own, else `spec.verification.mode`, else Enforce.
    pub mode: Mode,
    /// The attestations it requires, in order.
    pub attestations: Vec<Requirement>,
}

impl Snapshot {
    /// Compiles a policy object, including the check of its name, with no trusted root read
    /// from a ConfigMap (see [`Snapshot::compile_with`]).
    pub fn compile(policy: &ClusterImagePolicy) -> Result<Self, Problems> {
        Self::compile_with(policy, &Documents::new())
    }

    /// Compiles a policy object, reading its trusted roots from `documents`.
    pub fn compile_with(
        policy: &ClusterImagePolicy,
        documents: &Documents,
    ) -> Result<Self, Problems> {
        let mut problems = Vec::new();
        let name = policy.name_any();
        if name != POLICY_NAME {
            problems.push(Problem::new(
                Reason::InvalidName,
                "metadata.name",
                format!("the policy is named {name:?}; only a ClusterImagePolicy named \"{POLICY_NAME}\" is enforced"),
            ));
        }
        let snapshot = Self::compile_spec_with(&policy.spec, documents).map_err(|p| {
            problems.extend(p.0);
        });
        match snapshot {
            Ok(s) if problems.is_empty() => Ok(Snapshot {
                version: Version::of(policy),
                ..s
            }),
            _ => Err(Problems(problems)),
        }
    }

    /// Compiles a policy's spec alone.
    pub fn compile_spec(spec: &ClusterImagePolicySpec) -> Result<Self, Problems> {
        Self::compile_spec_with(spec, &Documents::new())
    }

    /// Compiles a policy's spec alone, reading its trusted roots from `documents`.
    pub fn compile_spec_with(
        spec: &ClusterImagePolicySpec,
        documents: &Documents,
    ) -> Result<Self, Problems> {
        let mut problems = Vec::new();
        let v = &spec.verification;
        let excluded = v
            .exclude
            .iter()
            .filter_map(|e| e.resources.as_ref())
            .flat_map(|r| &r.namespaces);
        let mut excluded_namespaces = HashSet::new();
        for (i, ns) in excluded.enumerate() {
            if !is_dns_label(ns) {
                problems.push(Problem::new(
                    Reason::InvalidNamespace,
                    format!("spec.verification.exclude.resources.namespaces[{i}]"),
                    format!("{ns:?} is not a namespace name (lowercase letters, digits and '-', at most 63)"),
                ));
            }
            excluded_namespaces.insert(ns.clone());
        }
        let mode = compile_mode(v.mode.as_deref(), "spec.verification.mode", &mut problems)
            .unwrap_or_default();
        let roots = compile_roots(spec, documents, &mut problems);
        let keys = compile_keys(spec, &roots, &mut problems);
        let entries = compile_entries(spec, &keys, mode, &mut problems);
        if !problems.is_empty() {
            return Err(Problems(problems));
        }
        let keys: Vec<NamedKey> = keys.into_iter().flatten().collect();
        let unavailable_roots = unavailable(spec, &keys);
        let (by_first_component, unindexed) = index(&entries);
        Ok(Snapshot {
            version: Version::default(),
            mode,
            excluded_namespaces,
            keys,
            entries,
            by_first_component,
            unindexed,
            unavailable_roots,
        })
    }

    /// The `metadata.generation` compiled, when known.
    pub fn generation(&self) -> Option<i64> {
        self.version.generation
    }

    /// The version of the policy object compiled.
    pub fn version(&self) -> &Version {
        &self.version
    }

    /// `spec.verification.mode`: the mode of an image that matches no entry, or that is no
    /// image reference at all.
    pub fn mode(&self) -> Mode {
        self.mode
    }

    /// The mode of an image whose matched entries are `entries`: Warn only when every one of
    /// them is in Warn (docs/contract.md §2, fail closed: one entry in Enforce enforces), and
    /// the policy's own mode when there are none.
    pub fn mode_of(&self, entries: &[&Entry]) -> Mode {
        if entries.is_empty() {
            return self.mode;
        }
        if entries.iter().all(|e| e.mode == Mode::Warn) {
            Mode::Warn
        } else {
            Mode::Enforce
        }
    }

    /// Whether the policy is never applied in `namespace`.
    pub fn is_excluded(&self, namespace: &str) -> bool {
        self.excluded_namespaces.contains(namespace)
    }

    /// The policy's keys, in the policy's order.
    pub fn keys(&self) -> &[NamedKey] {
        &self.keys
    }

    /// One problem for each trusted root that keys need and that cannot be used: the policy
    /// is enforced, and those keys verify nothing until it can.
    pub fn unavailable_roots(&self) -> &[Problem] {
        &self.unavailable_roots
    }

    /// The compiled image entries, in the policy's order.
    pub fn entries(&self) -> &[Entry] {
        &self.entries
    }

    /// The entries whose pattern matches the image, in the policy's order.
    pub fn matching(&self, image: &ImageName) -> Vec<&Entry> {
        let mut candidates: Vec<usize> = self.unindexed.clone();
        let mut seen_first = Vec::new();
        for first in image.first_components() {
            if seen_first.contains(&first) {
                continue;
            }
            seen_first.push(first);
            if let Some(ids) = self.by_first_component.get(first) {
                candidates.extend_from_slice(ids);
            }
        }
        candidates.sort_unstable();
        candidates.dedup();
        candidates
            .into_iter()
            .filter_map(|i| self.entries.get(i))
            .filter(|e| e.pattern.matches(image))
            .collect()
    }

    /// The keys of an entry.
    pub fn keys_of<'a>(&'a self, entry: &'a Entry) -> impl Iterator<Item = &'a NamedKey> + 'a {
        entry.key_ids.iter().filter_map(|&i| self.keys.get(i))
    }

    /// Every attestation that `entries` (an image's matched entries) require, in the order of
    /// the entries, each with its signers: an image must carry all of them, whichever entry
    /// requires them (docs/contract.md §2), while any key of any entry signs it.
    pub fn attestations_of<'a>(&'a self, entries: &[&'a Entry]) -> Vec<Need<'a>> {
        entries
            .iter()
            .flat_map(|e| &e.attestations)
            .map(|requirement| Need {
                requirement,
                signers: requirement
                    .key_ids
                    .iter()
                    .filter_map(|&i| self.keys.get(i))
                    .collect(),
            })
            .collect()
    }

    /// When `entries` (an image's matched entries) name different keys, every key of them,
    /// each once, in the order of the entries: any one of them admits the image ("any of"),
    /// so a broad entry's key admits the images of a narrower entry too. `None` when they all
    /// name the same keys.
    pub fn any_of<'a>(&'a self, entries: &[&'a Entry]) -> Option<Vec<&'a NamedKey>> {
        let mut sets = entries.iter().map(|e| {
            let mut ids = e.key_ids.clone();
            ids.sort_unstable();
            ids
        });
        let first = sets.next()?;
        if sets.all(|ids| ids == first) {
            return None;
        }
        let mut ids: Vec<usize> = Vec::new();
        for id in entries.iter().flat_map(|e| e.key_ids.iter().copied()) {
            if !ids.contains(&id) {
                ids.push(id);
            }
        }
        Some(ids.into_iter().filter_map(|i| self.keys.get(i)).collect())
    }
}

/// The shared form in which snapshots are published.
pub type SharedSnapshot = Arc<Snapshot>;

fn compile_entries(
    spec: &ClusterImagePolicySpec,
    keys: &[Option<NamedKey>],
    default_mode: Mode,
    problems: &mut Vec<Problem>,
) -> Vec<Entry> {
    let position = |name: &str| {
        keys.iter()
            .position(|k| k.as_ref().is_some_and(|k| k.name == name))
    };
    let defined = |name: &str| spec.verification.keys.iter().any(|k| k.name == name);
    let mut entries = Vec::new();
    for (i, image) in spec.verification.images.iter().enumerate() {
        let path = format!("spec.verification.images[{i}]");
        let pattern = NamePattern::parse(&image.name_pattern).map_err(|e| {
            problems.push(Problem::new(
                Reason::InvalidPattern,
                format!("{path}.namePattern"),
                format!("{:?}: {e}", image.name_pattern),
            ));
        });
        // An entry that requires attestations may name no key: its images are admitted by
        // their attestations (docs/contract.md §1).
        if image.keys.is_empty() && image.attestations.is_empty() {
            problems.push(Problem::new(
                Reason::MissingKeys,
                format!("{path}.keys"),
                "the entry names no key, so no image it matches could ever be admitted",
            ));
        }
        let mut key_ids = Vec::new();
        for (j, key_ref) in image.keys.iter().enumerate() {
            match position(&key_ref.name) {
                Some(id) if !key_ids.contains(&id) => key_ids.push(id),
                Some(_) => {}
                // A defined key that failed to parse is reported once, at the key.
                None if defined(&key_ref.name) && !key_ref.name.is_empty() => {}
                None => problems.push(Problem::new(
                    Reason::UnknownKey,
                    format!("{path}.keys[{j}].name"),
                    format!("no key named {:?} in spec.verification.keys", key_ref.name),
                )),
            }
        }
        if let Some(secret) = &image.secret_ref {
            check_secret_ref(secret, &format!("{path}.secretRef"), problems);
        }
        let mode = compile_mode(image.mode.as_deref(), &format!("{path}.mode"), problems);
        let scope = Scope {
            path: &path,
            entry_keys: &key_ids,
            entry_writes_keys: !image.keys.is_empty(),
            position: &position,
            defined: &defined,
        };
        let attestations = attestation::compile(image, &scope, problems);
        if let Ok(pattern) = pattern {
            entries.push(Entry {
                index: i,
                pattern,
                key_ids,
                secret_ref: image.secret_ref.clone(),
                mode: mode.unwrap_or(default_mode),
                attestations,
            });
        }
    }
    entries
}

/// A mode as written at `path`: `None` when none is written (so the default applies), and
/// Enforce, with a problem, for a value that is no mode. The CRD's enum refuses such a value
/// already; a policy file given to `image-policy check`, or a CRD installed without its
/// schema, reaches this.
fn compile_mode(written: Option<&str>, path: &str, problems: &mut Vec<Problem>) -> Option<Mode> {
    let written = written?;
    let mode = Mode::parse(written);
    if mode.is_none() {
        problems.push(Problem::new(
            Reason::InvalidMode,
            path,
            format!("{written:?} is not a mode; write Enforce or Warn (Enforce when omitted)"),
        ));
    }
    Some(mode.unwrap_or_default())
}

fn check_secret_ref(secret: &SecretRef, path: &str, problems: &mut Vec<Problem>) {
    if secret.name.is_empty() {
        problems.push(Problem::new(
            Reason::InvalidSecretRef,
            format!("{path}.name"),
            "the secretRef has no name",
        ));
    } else if !is_dns_subdomain(&secret.name) {
        problems.push(Problem::new(
            Reason::InvalidSecretRef,
            format!("{path}.name"),
            format!("{:?} is not a Secret name", secret.name),
        ));
    }
    if let Some(ns) = secret.namespace.as_deref().filter(|ns| !is_dns_label(ns)) {
        problems.push(Problem::new(
            Reason::InvalidSecretRef,
            format!("{path}.namespace"),
            format!("{ns:?} is not a namespace name"),
        ));
    }
}

fn index(entries: &[Entry]) -> (HashMap<String, Vec<usize>>, Vec<usize>) {
    let mut by_first: HashMap<String, Vec<usize>> = HashMap::new();
    let mut unindexed = Vec::new();
    for (i, entry) in entries.iter().enumerate() {
        match entry.pattern.fixed_first_component() {
            Some(first) => by_first.entry(first.to_owned()).or_default().push(i),
            None => unindexed.push(i),
        }
    }
    (by_first, unindexed)
}

#[cfg(test)]
mod tests;
