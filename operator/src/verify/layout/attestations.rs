//! Where producers put attestations of an image digest (docs/contract.md §3, attestations):
//! Sigstore bundles among its OCI referrers (cosign v3's `cosign attest`, GitHub's
//! attestations as `@sigstore/oci` attaches them; the referrers API or the tag schema, read as
//! for signatures, [`referrers`]), and cosign's legacy tag `sha256-<hex>.att`, whose layers are
//! DSSE envelopes. The tag is read for a predicate type only when the referrers hold none of
//! it that counts: a producer writes one layout, and cosign v3 replaced the tag by referrers.
//!
//! Every statement of a wanted type that verifies is kept (which one counts is decided later,
//! [`crate::verify::attestation::newest`]); the referrers that cannot be of a wanted type by
//! their annotation are not fetched. Bounded as signatures are: at most
//! [`referrers::MAX_REFERRERS`] referrers and [`MAX_LAYERS`] layers, each under the payload
//! limit.

use std::collections::BTreeMap;

use oci_client::manifest::OciImageManifest;

use super::{Lookup, digest_tag, referrers};
use crate::verify::attestation::{Found, Query};
use crate::verify::bundle::Predicate;
use crate::verify::bundle::attested::{Attested, check_attestation, check_legacy_attestation};
use crate::verify::registry::{RegistryError, is_sha256_digest};
use crate::verify::verdict::Rejection;

/// The media type of a layer of cosign's `.att` tag: a DSSE envelope.
pub const DSSE_MEDIA_TYPE: &str = "application/vnd.dsse.envelope.v1+json";

/// The annotation cosign puts on a layer of its `.att` tag: the statement's predicate type.
const LAYER_PREDICATE_ANNOTATION: &str = "predicateType";

/// At most this many layers of the `.att` tag are examined.
pub const MAX_LAYERS: usize = 32;

/// The attestations of `lookup`'s digest for each of `queries`, in order.
pub async fn find(lookup: Lookup<'_>, queries: &[Query<'_>]) -> Result<Vec<Found>, RegistryError> {
    let mut found = vec![Found::default(); queries.len()];
    if queries.is_empty() {
        return Ok(found);
    }
    from_referrers(lookup, queries, &mut found).await?;
    let rest: Vec<usize> = (0..queries.len())
        .filter(|&i| found.get(i).is_some_and(|f| f.attested.is_empty()))
        .collect();
    if !rest.is_empty() {
        from_tag(lookup, queries, &rest, &mut found).await?;
    }
    Ok(found)
}

/// What the referrers hold for `queries`: annotated with a wanted type first, then those
/// without an annotation (the tag schema's index that cosign writes has none).
async fn from_referrers(
    lookup: Lookup<'_>,
    queries: &[Query<'_>],
    found: &mut [Found],
) -> Result<(), RegistryError> {
    let Some(index) = referrers::index(lookup).await? else {
        return Ok(());
    };
    let entries = referrers::annotated(&index).map_err(|e| RegistryError::BadResponse {
        host: lookup.repo.host.clone(),
        detail: format!("a referrers index that is not one ({e})"),
    })?;
    let wanted = |annotation: &Option<String>| match annotation {
        Some(t) => queries.iter().any(|q| q.predicate_type == t),
        None => true,
    };
    let mut chosen: Vec<_> = entries.into_iter().filter(|(_, a)| wanted(a)).collect();
    chosen.sort_by_key(|(_, annotation)| annotation.is_none());
    for (manifest, _) in chosen.into_iter().take(referrers::MAX_REFERRERS) {
        let Some(bundle) = referrers::bundle_of(lookup, &manifest).await? else {
            continue;
        };
        for (query, found) in queries.iter().zip(found.iter_mut()) {
            let predicate = Predicate::Exactly(query.predicate_type.to_owned());
            record(
                found,
                check_attestation(&bundle, lookup.digest, &predicate, &query.signers),
            );
        }
    }
    Ok(())
}

/// What cosign's `.att` tag holds for the queries `rest` (indices into `queries`).
async fn from_tag(
    lookup: Lookup<'_>,
    queries: &[Query<'_>],
    rest: &[usize],
    found: &mut [Found],
) -> Result<(), RegistryError> {
    let Some(tag) = digest_tag(lookup.digest).map(|tag| tag + ".att") else {
        return Ok(());
    };
    let Some(manifest) = lookup.manifest(&tag).await? else {
        return Ok(());
    };
    let manifest: OciImageManifest =
        serde_json::from_slice(&manifest.bytes).map_err(|e| RegistryError::BadResponse {
            host: lookup.repo.host.clone(),
            detail: format!("an attestation manifest that is not one ({e})"),
        })?;
    let layers = manifest
        .layers
        .iter()
        .filter(|l| l.media_type == DSSE_MEDIA_TYPE)
        .take(MAX_LAYERS);
    for layer in layers {
        let empty = BTreeMap::new();
        let annotations = layer.annotations.as_ref().unwrap_or(&empty);
        let annotated = annotations.get(LAYER_PREDICATE_ANNOTATION);
        let wanted: Vec<usize> = rest
            .iter()
            .copied()
            .filter(|&i| {
                let query = queries.get(i);
                annotated.is_none_or(|t| query.is_some_and(|q| q.predicate_type == t))
            })
            .collect();
        if wanted.is_empty() {
            continue;
        }
        let Some(envelope) = envelope(lookup, layer).await? else {
            continue;
        };
        for i in wanted {
            let (Some(query), Some(found)) = (queries.get(i), found.get_mut(i)) else {
                continue;
            };
            let predicate = Predicate::Exactly(query.predicate_type.to_owned());
            record(
                found,
                check_legacy_attestation(
                    &envelope,
                    annotations,
                    lookup.digest,
                    &predicate,
                    &query.signers,
                ),
            );
        }
    }
    Ok(())
}

/// The DSSE envelope of one `.att` layer; `None`, with a log line, when it cannot be read (a
/// digest or size out of bounds, a blob missing or not its digest).
async fn envelope(
    lookup: Lookup<'_>,
    layer: &oci_client::manifest::OciDescriptor,
) -> Result<Option<bytes::Bytes>, RegistryError> {
    let skipped = |reason: &str| {
        let layer: String = layer.digest.chars().take(80).collect();
        tracing::info!(target: "image-policy.verify", repository = %lookup.repo, %layer, reason, "Attestation layer skipped");
        Ok(None)
    };
    if !is_sha256_digest(&layer.digest)
        || usize::try_from(layer.size).is_ok_and(|s| s > lookup.registry.max_payload_bytes())
    {
        return skipped("its digest or size is out of bounds");
    }
    match lookup.blob(&layer.digest).await {
        Ok(Some(blob)) => Ok(Some(blob)),
        Ok(None) => skipped("the blob is missing"),
        Err(RegistryError::BadResponse { detail, .. }) => skipped(&detail),
        Err(e) => Err(e),
    }
}

/// Counts one bundle or layer for a query: kept when it verifies, seen when it is of the type
/// and does not count, ignored when it is not of the type.
fn record(found: &mut Found, checked: Result<Option<Attested>, Rejection>) {
    match checked {
        Ok(Some(attested)) => found.attested.push(attested),
        Ok(None) => {}
        Err(rejection) => found.seen.add(rejection),
    }
}
