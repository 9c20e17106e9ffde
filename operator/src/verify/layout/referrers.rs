//! Sigstore bundles attached as OCI 1.1 referrers of the image, as cosign v3 and GitHub's
//! attestations write them.
//!
//! The referrers of `repo@digest` are listed by the registry's referrers API where it has one
//! (only a 200 with an OCI index counts), else by the referrers tag schema: an OCI index at tag
//! `sha256-<hex>`. Entries are taken whatever their `artifactType` says (cosign up to v3.0.6
//! typed them `application/vnd.oci.empty.v1+json`), cosign's signatures first. An entry counts
//! only when its manifest's `subject` is the image digest and it has exactly one layer, a
//! bundle; the bundle is then checked by [`crate::verify::bundle`]. Bounded as the legacy
//! layout is: at most [`MAX_REFERRERS`] entries, manifests and bundles under their limits,
//! and an entry that cannot be read counts as one bundle that does not verify.

use bytes::Bytes;
use oci_client::manifest::OciImageManifest;
use serde::Deserialize;

use super::{Lookup, digest_tag};
use crate::verify::bundle::{self, COSIGN_SIGN_PREDICATE};
use crate::verify::findings::{Findings, Seen};
use crate::verify::registry::{
    Referrers, RegistryError, Repository, is_sha256_digest, sha256_digest,
};
use crate::verify::verdict::Rejection;

/// At most this many referrers are examined; more is a registry trying to make admission slow.
pub const MAX_REFERRERS: usize = 32;

/// The media types of a bundle layer, v0.3 first.
pub const BUNDLE_MEDIA_TYPES: [&str; 4] = [
    "application/vnd.dev.sigstore.bundle.v0.3+json",
    "application/vnd.dev.sigstore.bundle+json;version=0.3",
    "application/vnd.dev.sigstore.bundle+json;version=0.2",
    "application/vnd.dev.sigstore.bundle+json;version=0.1",
];

/// The annotation cosign puts on a bundle's referrer: the statement's predicate type.
const PREDICATE_ANNOTATION: &str = "dev.sigstore.bundle.predicateType";

/// The media type of an OCI image manifest, which every bundle referrer is.
const OCI_MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";

/// An OCI index, as far as referrers go.
#[derive(Deserialize)]
struct Index {
    #[serde(default)]
    manifests: Vec<Entry>,
}

#[derive(Deserialize)]
struct Entry {
    #[serde(rename = "mediaType", default)]
    media_type: String,
    digest: String,
    #[serde(rename = "artifactType", default)]
    artifact_type: Option<String>,
    #[serde(default)]
    annotations: std::collections::BTreeMap<String, String>,
}

impl Entry {
    /// Cosign's signatures first, then other bundles, then anything else.
    fn rank(&self) -> u8 {
        let bundle = self
            .artifact_type
            .as_deref()
            .is_some_and(|t| BUNDLE_MEDIA_TYPES.contains(&t));
        match self
            .annotations
            .get(PREDICATE_ANNOTATION)
            .map(String::as_str)
        {
            Some(COSIGN_SIGN_PREDICATE) => 0,
            None if bundle => 1,
            None => 2,
            Some(_) => 3,
        }
    }
}

/// Reads and checks the bundles that refer to `repo@digest`.
pub async fn check(lookup: Lookup<'_>) -> Result<Findings, RegistryError> {
    let Some(index) = index(lookup).await? else {
        return Ok(Findings::not_signed());
    };
    let repo = lookup.repo;
    let candidates = candidates(&index).map_err(|e| RegistryError::BadResponse {
        host: repo.host.clone(),
        detail: format!("a referrers index that is not one ({e})"),
    })?;
    let mut seen = Seen::default();
    for digest in candidates {
        match candidate(lookup, &digest).await? {
            Some(Ok(key)) => {
                return Ok(Findings::Verified {
                    fingerprint: key.into(),
                });
            }
            Some(Err(rejection)) => seen.add(rejection),
            None => {}
        }
    }
    Ok(Findings::Unverified(seen))
}

/// The referrers index of `repo@digest`: the referrers API's answer, or, where the registry
/// has none, the index at the digest's tag (the referrers tag schema); `None` when there is
/// none.
pub async fn index(lookup: Lookup<'_>) -> Result<Option<Bytes>, RegistryError> {
    let Some(tag) = digest_tag(lookup.digest) else {
        return Ok(None);
    };
    Ok(match lookup.referrers().await? {
        Referrers::Index(bytes) => Some(bytes),
        Referrers::Unsupported => lookup.manifest(&tag).await?.map(|m| m.bytes),
    })
}

/// The manifest digests of an index's referrers, each with the predicate type its entry is
/// annotated with (cosign's annotation, which registries with the referrers API pull up from
/// the manifest), in index order: image manifests with a digest that is safe to put in a URL.
pub fn annotated(index: &[u8]) -> Result<Vec<(String, Option<String>)>, serde_json::Error> {
    let index: Index = serde_json::from_slice(index)?;
    Ok(index
        .manifests
        .into_iter()
        .filter(|e| e.media_type == OCI_MANIFEST && is_sha256_digest(&e.digest))
        .map(|mut e| {
            let predicate_type = e.annotations.remove(PREDICATE_ANNOTATION);
            (e.digest, predicate_type)
        })
        .collect())
}

/// The manifest digests of an index's referrers worth fetching, cosign's signatures first, at
/// most [`MAX_REFERRERS`]: image manifests with a digest that is safe to put in a URL.
pub fn candidates(index: &[u8]) -> Result<Vec<String>, serde_json::Error> {
    let index: Index = serde_json::from_slice(index)?;
    let mut entries: Vec<Entry> = index
        .manifests
        .into_iter()
        .filter(|e| e.media_type == OCI_MANIFEST && is_sha256_digest(&e.digest))
        .collect();
    entries.sort_by_key(Entry::rank);
    Ok(entries
        .into_iter()
        .take(MAX_REFERRERS)
        .map(|e| e.digest)
        .collect())
}

/// What the bundle of one referrer says (the identity of its signer, or why it does not
/// count); `None` when it is not a bundle of this image ([`bundle_of`]).
async fn candidate(
    lookup: Lookup<'_>,
    manifest_digest: &str,
) -> Result<Option<Result<String, Rejection>>, RegistryError> {
    let bundle = bundle_of(lookup, manifest_digest).await?;
    Ok(bundle.map(|bundle| bundle::check(&bundle, lookup.digest, lookup.keys)))
}

/// The bundle of one referrer; `None`, with a log line, when it is not a bundle of this image
/// (its manifest is missing, not its digest, not a manifest, of another subject, or without
/// exactly one bundle layer).
pub async fn bundle_of(
    lookup: Lookup<'_>,
    manifest_digest: &str,
) -> Result<Option<Bytes>, RegistryError> {
    let Lookup {
        registry,
        repo,
        digest,
        ..
    } = lookup;
    let skipped = |reason: &str| {
        skip(repo, manifest_digest, reason);
        Ok(None)
    };
    let Some(manifest) = lookup.manifest(manifest_digest).await? else {
        return skipped("the manifest is missing");
    };
    if sha256_digest(&manifest.bytes) != manifest_digest {
        return skipped("the manifest does not have its digest");
    }
    let Ok(manifest) = serde_json::from_slice::<OciImageManifest>(&manifest.bytes) else {
        return skipped("not an image manifest");
    };
    if manifest.subject.as_ref().map(|s| s.digest.as_str()) != Some(digest) {
        return skipped("its subject is not the image");
    }
    let [layer] = manifest.layers.as_slice() else {
        return skipped("it has not exactly one layer");
    };
    if !BUNDLE_MEDIA_TYPES.contains(&layer.media_type.as_str()) {
        return skipped("its layer is not a Sigstore bundle");
    }
    if !is_sha256_digest(&layer.digest)
        || usize::try_from(layer.size).is_ok_and(|size| size > registry.max_payload_bytes())
    {
        return skipped("its bundle's digest or size is out of bounds");
    }
    match lookup.blob(&layer.digest).await {
        Ok(Some(bundle)) => Ok(Some(bundle)),
        Ok(None) => skipped("the bundle blob is missing"),
        Err(RegistryError::BadResponse { detail, .. }) => skipped(&detail),
        Err(e) => Err(e),
    }
}

fn skip(repo: &Repository, manifest: &str, reason: &str) {
    let referrer: String = manifest.chars().take(80).collect();
    tracing::info!(target: "image-policy.verify", repository = %repo, %referrer, reason, "Referrer skipped");
}
