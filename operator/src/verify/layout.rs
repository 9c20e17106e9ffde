//! Where signatures are stored for an image digest, one layout per file.
//!
//! A layout reads the signatures of `repo@digest` in its place and checks them with the keys,
//! returning [`Findings`]. The verifier asks each layout of [`Layout::ALL`] in turn until one
//! finds a signature that verifies; a new layout is one more file here, one more variant and
//! one more match arm in [`Layout::check`]. Required attestations are looked for afterwards,
//! in the places producers put them ([`attestations`]), through the same [`Memo`]: what the
//! signature's lookup read is not asked for again.

pub mod attestations;
pub mod legacy;
pub mod referrers;

use std::collections::HashMap;
use std::sync::Mutex;

use bytes::Bytes;

use super::credentials::Credential;
use super::findings::Findings;
use super::registry::{Manifest, Referrers, Registry, RegistryError, Repository, is_sha256_digest};
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
    /// What this lookup already read.
    pub memo: &'a Memo,
}

/// What one verification read from the registry, by what it asked: each manifest, blob and
/// referrers listing is asked for once, however many places look at it (the signature, then
/// the attestations). Answers only; an error is not kept.
#[derive(Default)]
pub struct Memo {
    read: Mutex<HashMap<String, Read>>,
}

#[derive(Clone)]
enum Read {
    Manifest(Option<Manifest>),
    Blob(Option<Bytes>),
    Referrers(Referrers),
}

impl Memo {
    fn get(&self, key: &str) -> Option<Read> {
        self.read
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .get(key)
            .cloned()
    }

    fn put(&self, key: String, read: Read) {
        self.read
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .insert(key, read);
    }
}

impl Lookup<'_> {
    /// The manifest of the image's repository at `reference` (a tag or a digest), read with
    /// the lookup's credential; `None` when absent.
    async fn manifest(&self, reference: &str) -> Result<Option<Manifest>, RegistryError> {
        let fetch = self
            .registry
            .manifest(self.repo, reference, self.credential);
        self.memoized(
            format!("manifest {reference}"),
            fetch,
            Read::Manifest,
            |read| match read {
                Read::Manifest(manifest) => Some(manifest),
                _ => None,
            },
        )
        .await
    }

    /// The blob `digest` of the image's repository; `None` when absent.
    async fn blob(&self, digest: &str) -> Result<Option<Bytes>, RegistryError> {
        let fetch = self.registry.blob(self.repo, digest, self.credential);
        self.memoized(
            format!("blob {digest}"),
            fetch,
            Read::Blob,
            |read| match read {
                Read::Blob(blob) => Some(blob),
                _ => None,
            },
        )
        .await
    }

    /// The referrers of the image's digest ([`Registry::referrers`]).
    async fn referrers(&self) -> Result<Referrers, RegistryError> {
        let fetch = self
            .registry
            .referrers(self.repo, self.digest, self.credential);
        self.memoized(
            "referrers".to_owned(),
            fetch,
            Read::Referrers,
            |read| match read {
                Read::Referrers(referrers) => Some(referrers),
                _ => None,
            },
        )
        .await
    }

    /// What the memo keeps under `key`, or else what `fetch` answers, kept (an error is not).
    /// `fetch` is only polled, so only sent, when the memo has nothing.
    async fn memoized<T: Clone>(
        &self,
        key: String,
        fetch: impl Future<Output = Result<T, RegistryError>>,
        keep: fn(T) -> Read,
        kept: fn(Read) -> Option<T>,
    ) -> Result<T, RegistryError> {
        if let Some(answer) = self.memo.get(&key).and_then(kept) {
            return Ok(answer);
        }
        let answer = fetch.await?;
        self.memo.put(key, keep(answer.clone()));
        Ok(answer)
    }
}

/// `sha256-<hex>` of a digest `sha256:<hex>`: the tag of its referrers in the referrers tag
/// schema, and the stem of cosign's signature tag; `None` for anything but a SHA-256 digest
/// ([`is_sha256_digest`]), which neither layout names and which must never reach a URL.
pub fn digest_tag(digest: &str) -> Option<String> {
    let hex = digest
        .strip_prefix("sha256:")
        .filter(|_| is_sha256_digest(digest))?;
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
