//! The signers of a policy (`spec.verification.keys[]`): a public key or a keyless identity,
//! with the transparency log its signatures need, compiled with every problem and its field
//! path.

use std::collections::HashMap;
use std::sync::Arc;

use image_policy_crd::{
    ClusterImagePolicySpec, Key, PUBLIC_GOOD_TRUSTED_ROOT, Reason, TransparencyLog,
};

use super::identity::Identity;
use super::keys::PublicKey;
use super::problem::Problem;
use super::trust::{Transparency, TrustRoot};

/// A signer of the policy (`spec.verification.keys[]`) with its name.
#[derive(Debug, Clone)]
pub struct NamedKey {
    /// `spec.verification.keys[].name`.
    pub name: String,
    /// A public key, or a keyless identity.
    pub signer: Signer,
    /// Whether its signatures need a transparency log entry.
    pub transparency: Transparency,
}

/// Who signs: the holder of a key, or a workload identity certified by a Fulcio.
#[derive(Debug, Clone)]
pub enum Signer {
    /// `publicKey`.
    Key(PublicKey),
    /// `keyless`.
    Keyless(Arc<Identity>),
}

impl NamedKey {
    /// A key whose signatures need no transparency log.
    pub fn new(name: impl Into<String>, key: PublicKey) -> Self {
        NamedKey {
            name: name.into(),
            signer: Signer::Key(key),
            transparency: Transparency::Optional,
        }
    }

    /// A keyless identity whose signatures need a log entry of its root.
    pub fn keyless(name: impl Into<String>, identity: Identity) -> Self {
        let root = identity.root().clone();
        NamedKey {
            name: name.into(),
            signer: Signer::Keyless(Arc::new(identity)),
            transparency: Transparency::Required(root),
        }
    }

    /// The public key, when it is one.
    pub fn public_key(&self) -> Option<&PublicKey> {
        match &self.signer {
            Signer::Key(key) => Some(key),
            Signer::Keyless(_) => None,
        }
    }

    /// The trusted root its signatures are checked against, when they need one.
    pub fn root(&self) -> Option<&Arc<TrustRoot>> {
        match (&self.signer, &self.transparency) {
            (Signer::Keyless(identity), _) => Some(identity.root()),
            (Signer::Key(_), Transparency::Required(root)) => Some(root),
            (Signer::Key(_), Transparency::Optional) => None,
        }
    }

    /// What a verdict checked with this signer depends on: the key or the identity (with its
    /// root's content), and the log requirement with its root's content.
    pub fn identity(&self) -> String {
        let signer = match &self.signer {
            Signer::Key(key) => key.fingerprint().to_owned(),
            Signer::Keyless(identity) => identity.fingerprint().to_owned(),
        };
        let transparency = self.transparency.identity();
        if transparency.is_empty() {
            signer
        } else {
            format!("{signer}+{transparency}")
        }
    }
}

/// The signers of `spec.verification.keys`, in order, `None` for each that does not compile;
/// every problem (with its field path) is added to `problems`.
pub(super) fn compile_keys(
    spec: &ClusterImagePolicySpec,
    roots: &HashMap<String, Arc<TrustRoot>>,
    problems: &mut Vec<Problem>,
) -> Vec<Option<NamedKey>> {
    let mut first_of_name: HashMap<&str, usize> = HashMap::new();
    let mut out = Vec::new();
    for (i, key) in spec.verification.keys.iter().enumerate() {
        let path = format!("spec.verification.keys[{i}]");
        if key.name.is_empty() {
            problems.push(Problem::new(
                Reason::InvalidKey,
                format!("{path}.name"),
                "the key has no name",
            ));
        } else if let Some(first) = first_of_name.insert(&key.name, i) {
            first_of_name.insert(&key.name, first);
            problems.push(Problem::new(
                Reason::InvalidKey,
                format!("{path}.name"),
                format!(
                    "duplicate key name {:?} (also spec.verification.keys[{first}])",
                    key.name
                ),
            ));
        }
        let root = match key.trusted_root.as_deref() {
            None | Some(PUBLIC_GOOD_TRUSTED_ROOT) => Some(TrustRoot::public_good()),
            Some(name) => {
                let root = roots.get(name).cloned();
                if root.is_none() {
                    problems.push(unknown_root(&path, name, spec));
                }
                root
            }
        };
        let signer = signer(key, root.clone(), &path, problems);
        // A key's signatures need a log only when it says so; a keyless identity's unless it
        // says Optional (a timestamp of the root's authority then proves the signing time).
        let required = matches!(
            (&signer, key.transparency_log),
            (_, Some(TransparencyLog::Required)) | (Some(Signer::Keyless(_)), None)
        );
        let transparency = match (root, required) {
            (Some(root), true) => Transparency::Required(root),
            _ => Transparency::Optional,
        };
        out.push(signer.map(|signer| NamedKey {
            name: key.name.clone(),
            signer,
            transparency,
        }));
    }
    out
}

/// The signer of one `keys[]` entry at `path`: exactly one of its public key and its keyless
/// identity (of `root`, when that is known).
fn signer(
    key: &Key,
    root: Option<Arc<TrustRoot>>,
    path: &str,
    problems: &mut Vec<Problem>,
) -> Option<Signer> {
    let mut refuse = |reason, field: &str, message: String| {
        problems.push(Problem::new(reason, format!("{path}.{field}"), message));
        None
    };
    match (&key.public_key, &key.keyless) {
        (Some(pem), None) => match PublicKey::from_pem(pem) {
            Ok(parsed) => Some(Signer::Key(parsed)),
            Err(e) => refuse(
                Reason::InvalidKey,
                "publicKey",
                format!("key {:?}: {e}", key.name),
            ),
        },
        (None, Some(keyless)) => {
            let identity = root.and_then(|root| {
                Identity::compile(keyless, root, &format!("{path}.keyless"), problems)
            });
            identity.map(|i| Signer::Keyless(Arc::new(i)))
        }
        (Some(_), Some(_)) => refuse(
            Reason::InvalidIdentity,
            "keyless",
            format!(
                "key {:?} has both a publicKey and a keyless identity; give one",
                key.name
            ),
        ),
        (None, None) => refuse(
            Reason::InvalidKey,
            "publicKey",
            format!(
                "key {:?} has neither a publicKey nor a keyless identity",
                key.name
            ),
        ),
    }
}

fn unknown_root(path: &str, name: &str, spec: &ClusterImagePolicySpec) -> Problem {
    // A root that is defined but was refused is reported once, at the root.
    let defined = spec
        .verification
        .trusted_roots
        .iter()
        .any(|r| r.name == name);
    let message = if defined {
        format!("trusted root {name:?} is not usable (see spec.verification.trustedRoots)")
    } else {
        format!(
            "no trusted root named {name:?} in spec.verification.trustedRoots (the built-in one is {PUBLIC_GOOD_TRUSTED_ROOT:?})"
        )
    };
    Problem::new(
        Reason::UnknownTrustedRoot,
        format!("{path}.trustedRoot"),
        message,
    )
}
