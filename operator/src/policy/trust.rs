//! Sigstore trusted roots (`trusted_root.json`: Rekor logs, Fulcio CAs, CT logs, timestamp
//! authorities) as keys use them, and whether a key's bundle signatures need a transparency
//! log entry.
//!
//! The Sigstore public-good root is built in (Sigstore's own copy, shipped with
//! `sigstore-verify`), so it works air-gapped with nothing fetched at start. Others come from
//! ConfigMaps in the operator's namespace, which the controller reads and hands to
//! [`super::Snapshot::compile_with`]; a root that cannot be read is kept as the reason why,
//! and the keys that need it verify nothing (fail closed).

use std::collections::{BTreeMap, HashMap, HashSet};
use std::fmt;
use std::sync::{Arc, OnceLock};

use image_policy_crd::{ClusterImagePolicySpec, PUBLIC_GOOD_TRUSTED_ROOT, Reason};
use sigstore_verify::trust_root::{SIGSTORE_PRODUCTION_TRUSTED_ROOT, TrustedRoot};

use super::dns::is_dns_subdomain;
use super::problem::Problem;
use super::signer::NamedKey;

/// The key of a trusted root's ConfigMap that holds the document when its reference names none.
pub const DEFAULT_DOCUMENT_KEY: &str = "trusted_root.json";

/// The largest trusted_root.json accepted (the public-good one is 7 KiB).
pub const MAX_DOCUMENT_BYTES: usize = 1 << 20;

/// The most certificates a chain may hold: the chain of each authority of a trusted root, the
/// signing certificate's chain in a bundle or in cosign's annotations. Sigstore's hold two or
/// three (the leaf or CA, an intermediate, the root).
pub const MAX_CHAIN: usize = 8;

/// The most authorities of each kind a trusted root may list (Fulcio CAs, timestamp
/// authorities, Rekor logs, CT logs): a signature is checked against them in turn. The
/// public-good root lists at most 4 of a kind.
pub const MAX_AUTHORITIES: usize = 32;

/// The data of the ConfigMaps a policy's trusted roots may be read from, by ConfigMap name and
/// key: what the controller has seen in its namespace.
pub type Documents = BTreeMap<String, BTreeMap<String, String>>;

/// Why a trusted root cannot verify anything. The words reach the denials of the images its
/// keys sign ("The trusted root corp that its key requires cannot be used: ...") and the
/// policy's status.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RootError {
    /// The document is over [`MAX_DOCUMENT_BYTES`].
    #[error("it is larger than {MAX_DOCUMENT_BYTES} bytes")]
    TooLarge,
    /// The document does not parse as a trusted_root.json.
    #[error("it is not a trusted_root.json document: {0}")]
    NotADocument(String),
    /// The document lists more authorities of a kind than [`MAX_AUTHORITIES`], or an
    /// authority's chain holds more certificates than [`MAX_CHAIN`].
    #[error("it lists {count} {what}, more than {limit}, the limit of a trusted root")]
    OverLimit {
        /// What it has too many of: `certificate authorities`, `certificates in the chain of
        /// timestamp authority 2`...
        what: String,
        /// How many it has.
        count: usize,
        /// The limit.
        limit: usize,
    },
    /// Sigstore's verifier refuses what the document holds.
    #[error("it cannot be used: {0}")]
    Unusable(String),
    /// The ConfigMap the policy names has no such key.
    #[error("ConfigMap {config_map} has no key {key:?}")]
    NoKey {
        /// The ConfigMap's name.
        config_map: String,
        /// The key looked for.
        key: String,
    },
    /// The ConfigMap the policy names is not in the operator's namespace.
    #[error("ConfigMap {0} was not found in the operator's namespace")]
    NoConfigMap(String),
}

/// A trusted root, ready to verify bundles, or the reason it cannot.
pub struct TrustRoot {
    name: String,
    /// The SHA-256 of the document, hex: in the identity of every verdict that used it.
    digest: String,
    verifier: Result<sigstore_verify::Verifier, RootError>,
    /// Whether it lists CT logs: a certificate's SCT is verified only then.
    ct_logs: bool,
}

impl TrustRoot {
    /// The built-in Sigstore public-good root, parsed once per process.
    pub fn public_good() -> Arc<TrustRoot> {
        static ROOT: OnceLock<Arc<TrustRoot>> = OnceLock::new();
        ROOT.get_or_init(|| {
            Arc::new(TrustRoot::parse(
                PUBLIC_GOOD_TRUSTED_ROOT,
                SIGSTORE_PRODUCTION_TRUSTED_ROOT,
            ))
        })
        .clone()
    }

    /// A root read from `document` (a trusted_root.json); one that does not parse keeps why.
    pub fn parse(name: &str, document: &str) -> TrustRoot {
        let mut ct_logs = false;
        let verifier = if document.len() > MAX_DOCUMENT_BYTES {
            Err(RootError::TooLarge)
        } else {
            TrustedRoot::from_json(document)
                .map_err(|e| RootError::NotADocument(e.to_string()))
                .and_then(|root| within_limits(&root).map(|()| root))
                .and_then(|root| {
                    ct_logs = !root.ctlogs.is_empty();
                    sigstore_verify::Verifier::new(&root)
                        .map_err(|e| RootError::Unusable(e.to_string()))
                })
        };
        TrustRoot {
            name: name.to_owned(),
            digest: super::keys::sha256_hex(document.as_bytes()),
            verifier,
            ct_logs,
        }
    }

    /// A root that cannot be used, and why.
    pub fn unavailable(name: &str, why: RootError) -> TrustRoot {
        TrustRoot {
            name: name.to_owned(),
            digest: String::new(),
            verifier: Err(why),
            ct_logs: false,
        }
    }

    /// The root's name in the policy.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The verifier, or why there is none.
    pub fn verifier(&self) -> Result<&sigstore_verify::Verifier, &RootError> {
        self.verifier.as_ref()
    }

    /// Whether it lists CT logs, so that certificates' SCTs are verified.
    pub fn has_ct_logs(&self) -> bool {
        self.ct_logs
    }

    /// What identifies this root's content: its name and document digest.
    pub fn identity(&self) -> String {
        format!("{}@{}", self.name, self.digest)
    }
}

/// `Ok` when `root` lists at most [`MAX_AUTHORITIES`] of each kind and each chain holds at
/// most [`MAX_CHAIN`] certificates: checked before Sigstore's verifier is made of it.
fn within_limits(root: &TrustedRoot) -> Result<(), RootError> {
    let over = |what: String, count: usize, limit: usize| {
        (count > limit).then_some(RootError::OverLimit { what, count, limit })
    };
    let counts = [
        (
            "certificate authorities",
            root.certificate_authorities.len(),
        ),
        ("timestamp authorities", root.timestamp_authorities.len()),
        ("transparency logs", root.tlogs.len()),
        ("CT logs", root.ctlogs.len()),
    ];
    let chains = root
        .certificate_authorities
        .iter()
        .map(|ca| ("certificate authority", &ca.cert_chain))
        .enumerate()
        .chain(
            root.timestamp_authorities
                .iter()
                .map(|tsa| ("timestamp authority", &tsa.cert_chain))
                .enumerate(),
        )
        .map(|(i, (kind, chain))| {
            (
                format!("certificates in the chain of {kind} {}", i + 1),
                chain.certificates.len(),
            )
        });
    let found = counts
        .into_iter()
        .find_map(|(what, count)| over(what.to_owned(), count, MAX_AUTHORITIES))
        .or_else(|| {
            chains
                .into_iter()
                .find_map(|(what, count)| over(what, count, MAX_CHAIN))
        });
    match found {
        Some(error) => Err(error),
        None => Ok(()),
    }
}

impl fmt::Debug for TrustRoot {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TrustRoot")
            .field("name", &self.name)
            .field("usable", &self.verifier.is_ok())
            .finish_non_exhaustive()
    }
}

/// Whether a key's bundle signatures must be in a transparency log, and which root's logs.
#[derive(Debug, Clone, Default)]
pub enum Transparency {
    /// A signature the key verifies counts with or without a log entry.
    #[default]
    Optional,
    /// The bundle's log entry must verify against this root.
    Required(Arc<TrustRoot>),
}

impl Transparency {
    /// What identifies this requirement, for cache keys: `` or `tlog:<root identity>`.
    pub fn identity(&self) -> String {
        match self {
            Transparency::Optional => String::new(),
            Transparency::Required(root) => format!("tlog:{}", root.identity()),
        }
    }
}

/// The trusted roots of `spec.verification.trustedRoots`, by name, read from `documents`.
pub(super) fn compile_roots(
    spec: &ClusterImagePolicySpec,
    documents: &Documents,
    problems: &mut Vec<Problem>,
) -> HashMap<String, Arc<TrustRoot>> {
    let mut roots = HashMap::new();
    for (i, root) in spec.verification.trusted_roots.iter().enumerate() {
        let path = format!("spec.verification.trustedRoots[{i}]");
        let name = &root.name;
        let problem = if name.is_empty() {
            Some("the trusted root has no name".to_owned())
        } else if name == PUBLIC_GOOD_TRUSTED_ROOT {
            Some(format!(
                "{name:?} is the built-in Sigstore public-good root; give this one another name"
            ))
        } else if roots.contains_key(name) {
            Some(format!("duplicate trusted root name {name:?}"))
        } else {
            None
        };
        if let Some(message) = problem {
            problems.push(Problem::new(
                Reason::UnknownTrustedRoot,
                format!("{path}.name"),
                message,
            ));
            continue;
        }
        let reference = &root.config_map_ref;
        if !is_dns_subdomain(&reference.name) {
            problems.push(Problem::new(
                Reason::UnknownTrustedRoot,
                format!("{path}.configMapRef.name"),
                format!("{:?} is not a ConfigMap name", reference.name),
            ));
            continue;
        }
        let key = reference.key.as_deref().unwrap_or(DEFAULT_DOCUMENT_KEY);
        let root = match documents.get(&reference.name).map(|data| data.get(key)) {
            Some(Some(document)) => TrustRoot::parse(name, document),
            Some(None) => TrustRoot::unavailable(
                name,
                RootError::NoKey {
                    config_map: reference.name.clone(),
                    key: key.to_owned(),
                },
            ),
            None => TrustRoot::unavailable(name, RootError::NoConfigMap(reference.name.clone())),
        };
        roots.insert(name.clone(), Arc::new(root));
    }
    roots
}

/// The problems of the roots that keys need and cannot use, each root once.
pub(super) fn unavailable(spec: &ClusterImagePolicySpec, keys: &[NamedKey]) -> Vec<Problem> {
    let mut seen = HashSet::new();
    let mut out = Vec::new();
    for key in keys {
        let Some(root) = key.root() else {
            continue;
        };
        let Err(why) = root.verifier() else {
            continue;
        };
        if !seen.insert(root.name().to_owned()) {
            continue;
        }
        let index = spec
            .verification
            .trusted_roots
            .iter()
            .position(|r| r.name == root.name())
            .unwrap_or_default();
        out.push(Problem::new(
            Reason::TrustedRootUnavailable,
            format!("spec.verification.trustedRoots[{index}]"),
            format!(
                "trusted root {:?} cannot be used: {why}; the keys that need it verify nothing",
                root.name()
            ),
        ));
    }
    out
}

#[cfg(test)]
mod tests;
