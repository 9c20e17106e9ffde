//! Where signatures are stored for an image digest, one layout per file.
//!
//! A layout reads the signatures of `repo@digest` in its place and checks them with the keys,
//! returning [`Findings`]. The verifier asks each layout of [`Layout::ALL`] in turn until one
//! finds a signature that verifies; a new layout is one more file here, one more variant and
//! one more match arm in [`Layout::check`].

pub mod legacy;
pub mod referrers;

use super::credentials::Credential;
use super::findings::Findings;
use super::registry::{Manifest, Registry, RegistryError, Repository};
use crate::policy::NamedKey;

/// What a layout is asked about: the signatures of `repo@digest`, checked with `keys`, read
/// with `credential` (anonymous when `None`).
#[derive(Clone, Copy)]
pub struct Lookup<'a> {
    /// The registry client.
    pub registry: &'a Registry,
    /// The image's repository.
    pub repo: &'a Repository,
    /// The image's digest.
    pub digest: &'a str,
    /// The keys of the image's matched entries.
    pub keys: &'a [&'a NamedKey],
    /// The credential to read with.
    pub credential: Option<&'a Credential>,
}

impl Lookup<'_> {
    /// The manifest of the image's repository at `reference` (a tag or a digest), read with
    /// the lookup's credential; `None` when absent.
    async fn manifest(&self, reference: &str) -> Result<Option<Manifest>, RegistryError> {
        self.registry
            .manifest(self.repo, reference, self.credential)
            .await
    }
}

/// `sha256-<hex>` of a digest `sha256:<hex>`: the tag of its referrers in the referrers tag
/// schema, and the stem of cosign's signature tag; `None` for a digest of another algorithm,
/// which neither layout names.
pub fn digest_tag(digest: &str) -> Option<String> {
    let hex = digest.strip_prefix("sha256:")?;
    Some(format!("sha256-{hex}"))
}

/// A place where signatures of an image are stored.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Layout {
    /// Cosign's simple-signing layers in the manifest tagged `sha256-<hex>.sig`.
    LegacyTag,
    /// Sigstore bundles attached as OCI referrers (the referrers API, or its tag schema).
    Referrers,
}

impl Layout {
    /// Every layout, in the order they are asked: an image signed the legacy way costs no
    /// request for the newer layout.
    pub const ALL: [Layout; 2] = [Layout::LegacyTag, Layout::Referrers];

    /// Reads and checks the signatures stored in this layout.
    pub async fn check(self, lookup: Lookup<'_>) -> Result<Findings, RegistryError> {
        match self {
            Layout::LegacyTag => legacy::check(lookup).await,
            Layout::Referrers => referrers::check(lookup).await,
        }
    }
}
