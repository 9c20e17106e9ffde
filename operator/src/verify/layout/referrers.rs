//! Signatures attached as OCI 1.1 referrers of the image: cosign v3's Sigstore bundles,
//! GitHub's attestations, and cosign's legacy signatures when it attaches them as referrers
//! (`--new-bundle-format=false --registry-referrers-mode=oci-1-1`).
//!
//! The referrers of `repo@digest` are listed by the registry's referrers API where it has one
//! (only a 200 with an OCI index counts; `"manifests": null`, which olareg answers for a digest
//! without referrers, lists none), else by the referrers tag schema: an OCI index at tag
//! `sha256-<hex>`. The listing is asked for whole, without an `artifactType` filter
//! (docs/contract.md §3 says why). Entries are taken whatever their `artifactType` says
//! (cosign up to v3.0.6 typed its bundles `application/vnd.oci.empty.v1+json`).
//!
//! Signatures are read before attestations, whatever the order of the index, without a request
//! more than it takes: an entry the index says is a signature ([`Kind`]) is read first; then
//! the manifests of the entries the index says nothing of (the tag schema's index that cosign
//! writes carries no annotations) are all read, a few at a time, before any of their content,
//! so that the signatures among them go first and an image costs the same requests whatever
//! order the index lists them in; attestations come last, read only to say so when nothing
//! verifies.
//!
//! An entry counts only when its manifest's `subject` is the image digest and it holds either
//! exactly one Sigstore bundle layer, checked by [`crate::verify::bundle`], or, typed as
//! cosign's signature artifact, simple-signing layers checked one by one as the `.sig` tag's
//! are ([`super::legacy::check_layers`]). Bounded as the legacy layout is: at most
//! [`MAX_REFERRERS`] entries, manifests and bundles under their limits, and an entry that
//! cannot be read is skipped with a log line.

use std::collections::BTreeMap;

use bytes::Bytes;
use futures::{StreamExt as _, TryStreamExt as _};
use oci_client::manifest::OciImageManifest;
use serde::Deserialize;

use super::{Lookup, digest_tag, legacy};
use crate::verify::bundle::{self, COSIGN_SIGN_PREDICATE};
use crate::verify::findings::{Findings, Seen};
use crate::verify::registry::{
    Referrers, RegistryError, Repository, is_sha256_digest, sha256_digest,
};

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

/// The `artifactType` (and config media type) of the referrer cosign writes for a signature
/// in its legacy format: simple-signing layers, as in the `.sig` tag.
pub const COSIGN_SIGNATURE_ARTIFACT: &str = "application/vnd.dev.cosign.artifact.sig.v1+json";

/// The media type of an OCI image manifest, which every referrer read is.
const OCI_MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";

/// The manifests of the entries an index says nothing of are read this many at a time.
const CONCURRENT_MANIFESTS: usize = 4;

/// An OCI index, as far as referrers go.
#[derive(Deserialize)]
struct Index {
    /// `null` (olareg's answer for a digest without referrers) lists none, as absent does.
    #[serde(default)]
    manifests: Option<Vec<Entry>>,
}

#[derive(Deserialize)]
struct Entry {
    #[serde(rename = "mediaType", default)]
    media_type: String,
    digest: String,
    #[serde(rename = "artifactType", default)]
    artifact_type: Option<String>,
    #[serde(default)]
    annotations: Option<BTreeMap<String, String>>,
}

impl Entry {
    fn kind(&self) -> Kind {
        Kind::of(self.artifact_type.as_deref(), self.annotations.as_ref())
    }
}

/// What a referrer says it is, by its `artifactType` and cosign's predicate annotation: in its
/// index entry (registries with the referrers API copy the manifest's annotations there) or
/// its manifest. In the order referrers are read.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
enum Kind {
    /// cosign's signature artifact, or a bundle of cosign's signing predicate.
    Signature,
    /// A Sigstore bundle that does not say what it holds.
    Bundle,
    /// Anything else that does not say.
    Unsaid,
    /// A bundle of another predicate: an attestation, never a signature.
    Attestation,
}

impl Kind {
    fn of(artifact_type: Option<&str>, annotations: Option<&BTreeMap<String, String>>) -> Kind {
        if artifact_type == Some(COSIGN_SIGNATURE_ARTIFACT) {
            return Kind::Signature;
        }
        let predicate = annotations.and_then(|a| a.get(PREDICATE_ANNOTATION));
        match predicate.map(String::as_str) {
            Some(COSIGN_SIGN_PREDICATE) => Kind::Signature,
            Some(_) => Kind::Attestation,
            None if artifact_type.is_some_and(|t| BUNDLE_MEDIA_TYPES.contains(&t)) => Kind::Bundle,
            None => Kind::Unsaid,
        }
    }

    /// Whether the kind is known without reading the manifest.
    fn is_said(self) -> bool {
        matches!(self, Kind::Signature | Kind::Attestation)
    }
}

/// A referrer's manifest, read and found to be about the image.
struct Referrer {
    digest: String,
    manifest: OciImageManifest,
}

impl Referrer {
    /// The manifest's artifact type: its `artifactType`, else its config's media type (as the
    /// referrers API reports it).
    fn artifact_type(&self) -> &str {
        self.manifest
            .artifact_type
            .as_deref()
            .unwrap_or(&self.manifest.config.media_type)
    }

    fn kind(&self) -> Kind {
        Kind::of(
            Some(self.artifact_type()),
            self.manifest.annotations.as_ref(),
        )
    }
}

/// Reads and checks the signatures that refer to `repo@digest`.
pub async fn check(lookup: Lookup<'_>) -> Result<Findings, RegistryError> {
    let Some(index) = index(lookup).await? else {
        return Ok(Findings::not_signed());
    };
    let entries = entries(&index).map_err(|e| not_an_index(lookup, &e))?;
    in_order(lookup, entries).await
}

/// The referrers index of `repo@digest`: the referrers API's answer, or, where the registry
/// has none, the index at the digest's tag (the referrers tag schema); `None` when there is
/// none. Read through the lookup's [`super::Memo`], so the signatures and the attestations of
/// one verification list the referrers once.
pub async fn index(lookup: Lookup<'_>) -> Result<Option<Bytes>, RegistryError> {
    let Some(tag) = digest_tag(lookup.digest) else {
        return Ok(None);
    };
    Ok(match lookup.referrers().await? {
        Referrers::Index(bytes) => Some(bytes),
        Referrers::Unsupported => lookup.manifest(&tag).await?.map(|m| m.bytes),
    })
}

/// The error of an index that does not read as one.
pub fn not_an_index(lookup: Lookup<'_>, error: &serde_json::Error) -> RegistryError {
    RegistryError::BadResponse {
        host: lookup.repo.host.clone(),
        detail: format!("a referrers index that is not one ({error})"),
    }
}

/// What the referrers say, read until one verifies: the signatures the index names, then the
/// entries it says nothing of (all their manifests first, so that the signatures among them
/// go first), then the attestations.
async fn in_order(lookup: Lookup<'_>, entries: Vec<Entry>) -> Result<Findings, RegistryError> {
    let (said, unsaid): (Vec<Entry>, Vec<Entry>) =
        entries.into_iter().partition(|e| e.kind().is_said());
    let signatures = said.iter().filter(|e| e.kind() == Kind::Signature);
    let mut findings = judge_each(lookup, signatures, Findings::not_signed()).await?;
    if findings.is_verified() {
        return Ok(findings);
    }
    // The futures are made before the stream: a closure in it would not be `Send` for every
    // lifetime, which the webhook's spawned futures need.
    let reads: Vec<_> = unsaid.iter().map(|e| read(lookup, &e.digest)).collect();
    let mut read_unsaid: Vec<Referrer> = futures::stream::iter(reads)
        .buffered(CONCURRENT_MANIFESTS)
        .try_collect::<Vec<_>>()
        .await?
        .into_iter()
        .flatten()
        .collect();
    // Stable: entries of one kind keep the index's order.
    read_unsaid.sort_by_key(Referrer::kind);
    for referrer in &read_unsaid {
        findings = findings.and(judge(lookup, referrer).await?);
        if findings.is_verified() {
            return Ok(findings);
        }
    }
    let attestations = said.iter().filter(|e| e.kind() == Kind::Attestation);
    judge_each(lookup, attestations, findings).await
}

/// `findings` and what `entries` say, read one by one until one verifies.
async fn judge_each(
    lookup: Lookup<'_>,
    entries: impl Iterator<Item = &Entry>,
    mut findings: Findings,
) -> Result<Findings, RegistryError> {
    for entry in entries {
        if let Some(referrer) = read(lookup, &entry.digest).await? {
            findings = findings.and(judge(lookup, &referrer).await?);
            if findings.is_verified() {
                break;
            }
        }
    }
    Ok(findings)
}

/// The manifest digests of an index's referrers worth fetching, in the order the index alone
/// ranks them (signatures first, attestations last), at most [`MAX_REFERRERS`]: image
/// manifests with a digest that is safe to put in a URL.
pub fn candidates(index: &[u8]) -> Result<Vec<String>, serde_json::Error> {
    Ok(entries(index)?.into_iter().map(|e| e.digest).collect())
}

/// The entries of [`candidates`].
fn entries(index: &[u8]) -> Result<Vec<Entry>, serde_json::Error> {
    let index: Index = serde_json::from_slice(index)?;
    let mut entries: Vec<Entry> = index
        .manifests
        .unwrap_or_default()
        .into_iter()
        .filter(|e| e.media_type == OCI_MANIFEST && is_sha256_digest(&e.digest))
        .collect();
    entries.sort_by_key(Entry::kind);
    entries.truncate(MAX_REFERRERS);
    Ok(entries)
}

/// The manifest digests of an index's referrers, each with the predicate type its entry is
/// annotated with (cosign's annotation, which registries with the referrers API pull up from
/// the manifest), in index order: image manifests with a digest that is safe to put in a URL.
pub fn annotated(index: &[u8]) -> Result<Vec<(String, Option<String>)>, serde_json::Error> {
    let index: Index = serde_json::from_slice(index)?;
    Ok(index
        .manifests
        .unwrap_or_default()
        .into_iter()
        .filter(|e| e.media_type == OCI_MANIFEST && is_sha256_digest(&e.digest))
        .map(|e| {
            let predicate_type = e
                .annotations
                .and_then(|mut a| a.remove(PREDICATE_ANNOTATION));
            (e.digest, predicate_type)
        })
        .collect())
}

/// The manifest of one referrer; `None`, with a log line, when it is not a referrer of this
/// image (missing, not its digest, not an image manifest, or of another subject).
async fn read(
    lookup: Lookup<'_>,
    manifest_digest: &str,
) -> Result<Option<Referrer>, RegistryError> {
    let skipped = |reason: &str| {
        skip(lookup.repo, manifest_digest, reason);
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
    if manifest.subject.as_ref().map(|s| s.digest.as_str()) != Some(lookup.digest) {
        return skipped("its subject is not the image");
    }
    Ok(Some(Referrer {
        digest: manifest_digest.to_owned(),
        manifest,
    }))
}

/// What one referrer of the image says: cosign's simple-signing layers are checked as the
/// `.sig` tag's are; anything else counts only with exactly one bundle layer (else it is
/// skipped, with a log line, and says nothing).
async fn judge(lookup: Lookup<'_>, referrer: &Referrer) -> Result<Findings, RegistryError> {
    if referrer.artifact_type() == COSIGN_SIGNATURE_ARTIFACT {
        return legacy::check_layers(lookup, &referrer.manifest.layers).await;
    }
    let Some(bundle) = bundle_layer(lookup, referrer).await? else {
        return Ok(Findings::not_signed());
    };
    Ok(match bundle::check(&bundle, lookup.digest, lookup.keys) {
        Ok(key) => Findings::Verified {
            fingerprint: key.into(),
        },
        Err(rejection) => {
            let mut seen = Seen::default();
            seen.add(rejection);
            Findings::Unverified(seen)
        }
    })
}

/// The bundle of one referrer of the image (an attestation's, say); `None`, with a log line,
/// when it is not a bundle of this image ([`read`], [`bundle_layer`]). cosign's legacy
/// signature referrers hold no bundle and are passed over without one.
pub async fn bundle_of(
    lookup: Lookup<'_>,
    manifest_digest: &str,
) -> Result<Option<Bytes>, RegistryError> {
    match read(lookup, manifest_digest).await? {
        Some(referrer) if referrer.artifact_type() != COSIGN_SIGNATURE_ARTIFACT => {
            bundle_layer(lookup, &referrer).await
        }
        _ => Ok(None),
    }
}

/// The one Sigstore bundle layer of a referrer, read; `None`, with a log line, when it has not
/// exactly one, or it is out of bounds or missing.
async fn bundle_layer(
    lookup: Lookup<'_>,
    referrer: &Referrer,
) -> Result<Option<Bytes>, RegistryError> {
    let skipped = |reason: &str| {
        skip(lookup.repo, &referrer.digest, reason);
        Ok(None)
    };
    let [layer] = referrer.manifest.layers.as_slice() else {
        return skipped("it has not exactly one layer");
    };
    if !BUNDLE_MEDIA_TYPES.contains(&layer.media_type.as_str()) {
        return skipped("its layer is not a Sigstore bundle");
    }
    if !is_sha256_digest(&layer.digest)
        || usize::try_from(layer.size).is_ok_and(|size| size > lookup.registry.max_payload_bytes())
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

#[cfg(test)]
mod tests {
    use super::*;

    fn digest(i: u8) -> String {
        format!("sha256:{i:064x}")
    }

    #[test]
    fn null_or_absent_manifests_list_no_referrers() {
        assert!(
            candidates(br#"{"schemaVersion":2,"manifests":null}"#)
                .unwrap()
                .is_empty()
        );
        assert!(candidates(br#"{"schemaVersion":2}"#).unwrap().is_empty());
        assert!(candidates(br#"{"manifests":{}}"#).is_err());
        assert!(candidates(b"null").is_err());
    }

    /// What the index says ranks the entries: cosign's signatures (either format) first, then
    /// bundles and others that do not say, attestations last; entries of one rank keep the
    /// index's order.
    #[test]
    fn the_index_ranks_signatures_first_and_attestations_last() {
        let entry = |i: u8, artifact_type: &str, predicate: Option<&str>| {
            let mut entry = serde_json::json!({
                "mediaType": OCI_MANIFEST, "digest": digest(i), "size": 1,
                "artifactType": artifact_type,
            });
            if let Some(predicate) = predicate {
                entry["annotations"] = serde_json::json!({ PREDICATE_ANNOTATION: predicate });
            }
            entry
        };
        let bundle = BUNDLE_MEDIA_TYPES[0];
        let index = serde_json::json!({"manifests": [
            entry(1, bundle, Some("https://slsa.dev/provenance/v1")),
            entry(2, "application/vnd.oci.empty.v1+json", None),
            entry(3, bundle, None),
            entry(4, COSIGN_SIGNATURE_ARTIFACT, None),
            entry(5, bundle, Some(COSIGN_SIGN_PREDICATE)),
            entry(6, bundle, None),
        ]});
        let ranked = candidates(&serde_json::to_vec(&index).unwrap()).unwrap();
        let expected: Vec<String> = [4, 5, 3, 6, 2, 1].into_iter().map(digest).collect();
        assert_eq!(ranked, expected);
    }

    #[test]
    fn a_manifest_says_what_it_is_by_its_type_or_its_config() {
        let kind = |manifest: serde_json::Value| {
            Referrer {
                digest: digest(0),
                manifest: serde_json::from_value(manifest).unwrap(),
            }
            .kind()
        };
        let config = |media_type: &str| serde_json::json!({"mediaType": media_type, "digest": digest(9), "size": 2});
        // cosign's legacy signature as a referrer: typed by its config alone is enough.
        let legacy = serde_json::json!({
            "schemaVersion": 2, "config": config(COSIGN_SIGNATURE_ARTIFACT), "layers": [],
        });
        assert_eq!(kind(legacy), Kind::Signature);
        let bundle = |predicate: &str| {
            serde_json::json!({
                "schemaVersion": 2, "artifactType": BUNDLE_MEDIA_TYPES[0],
                "config": config("application/vnd.oci.empty.v1+json"), "layers": [],
                "annotations": { PREDICATE_ANNOTATION: predicate },
            })
        };
        assert_eq!(kind(bundle(COSIGN_SIGN_PREDICATE)), Kind::Signature);
        assert_eq!(
            kind(bundle("https://slsa.dev/provenance/v1")),
            Kind::Attestation
        );
    }
}
