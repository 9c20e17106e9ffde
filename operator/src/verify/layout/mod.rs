//! Where signatures are stored for an image digest, one layout per file.
//!
//! A layout reads the signatures of `repo@digest` in its place and checks them with the keys,
//! returning [`Findings`]. The verifier asks each layout of [`Layout::ALL`] in turn until one
//! finds a signature that verifies; a new layout is one more file here, one more variant and
//! one more match arm in [`Layout::check`].

pub mod legacy;

use super::credentials::Credential;
use super::findings::Findings;
use super::registry::{Registry, RegistryError, Repository};
use crate::policy::NamedKey;

/// A place where signatures of an image are stored.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Layout {
    /// Cosign's simple-signing layers in the manifest tagged `sha256-<hex>.sig`.
    LegacyTag,
}

impl Layout {
    /// Every layout, in the order they are asked.
    pub const ALL: [Layout; 1] = [Layout::LegacyTag];

    /// Reads and checks the signatures of `repo@digest` stored in this layout.
    pub async fn check(
        self,
        registry: &Registry,
        repo: &Repository,
        digest: &str,
        keys: &[&NamedKey],
        credential: Option<&Credential>,
    ) -> Result<Findings, RegistryError> {
        match self {
            Layout::LegacyTag => legacy::check(registry, repo, digest, keys, credential).await,
        }
    }
}
