//! Cosign's legacy signatures (v1, v2) as stored in a registry (docs/contract.md §3).
//!
//! The signatures of `repo@sha256:<hex>` are the layers of the manifest tagged
//! `sha256-<hex>.sig` in the same repository. A layer counts when its simple-signing payload
//! names exactly that digest and its `dev.cosignproject.cosign/signature` annotation verifies
//! over the exact payload bytes with one of the keys, or, keyless, with the certificate its
//! annotations carry ([`crate::verify::bundle::legacy`]). The same layers in a referrer
//! (cosign's legacy format with `--registry-referrers-mode=oci-1-1`) are found by
//! [`super::referrers`] and checked here ([`check_layers`]). Key parsing and the signature check
//! are sigstore's; the payload is read here with the few fields that decide, since sigstore's
//! payload type sits behind its `cosign` feature, which brings Fulcio, Rekor and OAuth clients
//! (some 360 crates) that verification never uses.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use bytes::Bytes;
use oci_client::manifest::{OciDescriptor, OciImageManifest};
use serde::Deserialize;

use super::{Lookup, digest_tag};
use crate::verify::bundle;
use crate::verify::credentials::Credential;
use crate::verify::findings::{Findings, Seen};
use crate::verify::registry::{Registry, RegistryError, Repository, is_sha256_digest};
use crate::verify::verdict::{Format, Rejection};

/// The media type of a cosign simple-signing layer.
pub const SIMPLE_SIGNING_MEDIA_TYPE: &str = "application/vnd.dev.cosign.simplesigning.v1+json";
/// The annotation holding the base64 signature.
pub const SIGNATURE_ANNOTATION: &str = "dev.cosignproject.cosign/signature";
/// At most this many signature layers are examined; more is a registry trying to make
/// admission slow.
const MAX_SIGNATURE_LAYERS: usize = 32;

#[derive(Deserialize)]
struct Payload {
    critical: Critical,
}

#[derive(Deserialize)]
struct Critical {
    image: PayloadImage,
    #[serde(rename = "type")]
    kind: String,
}

#[derive(Deserialize)]
struct PayloadImage {
    #[serde(rename = "docker-manifest-digest")]
    digest: String,
}

/// The tag under which cosign stores the signatures of `digest`.
pub fn signature_tag(digest: &str) -> Option<String> {
    digest_tag(digest).map(|tag| tag + ".sig")
}

/// Reads and checks the signatures of `repo@digest` against `keys`.
pub async fn check(lookup: Lookup<'_>) -> Result<Findings, RegistryError> {
    let manifest = match signature_tag(lookup.digest) {
        Some(tag) => lookup.manifest(&tag).await?,
        None => None,
    };
    let Some(manifest) = manifest else {
        return Ok(Findings::not_signed());
    };
    let manifest: OciImageManifest =
        serde_json::from_slice(&manifest.bytes).map_err(|e| RegistryError::BadResponse {
            host: lookup.repo.host.clone(),
            detail: format!("a signature manifest that is not one ({e})"),
        })?;
    check_layers(lookup, &manifest.layers).await
}

/// Checks cosign's simple-signing layers against `keys`, wherever cosign put them: the
/// layers of the `.sig` manifest, or of a signature it attached as an OCI referrer (the
/// legacy format in `--registry-referrers-mode=oci-1-1`, [`super::referrers`]). The one
/// home of the per-layer rule: a layer counts when it is a simple-signing layer with a
/// signature annotation, its payload names `repo@digest` and the signature verifies; at
/// most [`MAX_SIGNATURE_LAYERS`] are read, each blob once however many layers name it.
pub(super) async fn check_layers(
    lookup: Lookup<'_>,
    layers: &[OciDescriptor],
) -> Result<Findings, RegistryError> {
    let Lookup {
        registry,
        repo,
        credential,
        ..
    } = lookup;
    let layers = layers
        .iter()
        .filter(|l| l.media_type == SIMPLE_SIGNING_MEDIA_TYPE)
        .filter_map(|l| {
            let annotations = l.annotations.as_ref()?;
            let signature = annotations.get(SIGNATURE_ANNOTATION)?;
            Some((l, signature.as_str(), annotations))
        });
    let mut seen = Seen::default();
    let mut read: HashMap<&str, Option<Bytes>> = HashMap::new();
    for (layer, signature, annotations) in layers.take(MAX_SIGNATURE_LAYERS) {
        let payload = match read.get(layer.digest.as_str()) {
            Some(payload) => payload.clone(),
            None => {
                let payload = payload_of(registry, repo, layer, credential).await?;
                read.insert(&layer.digest, payload.clone());
                payload
            }
        };
        match judge(lookup, payload.as_deref(), signature, annotations) {
            Ok(key) => {
                return Ok(Findings::Verified {
                    fingerprint: Arc::from(key),
                });
            }
            Err(rejection) => seen.add(rejection),
        }
    }
    Ok(Findings::Unverified(seen))
}

/// The identity of the signer of one layer, or why it does not count: its payload (`None`
/// when it could not be read: one bad signature, and the next one may verify) must name the
/// digest, and its signature verify.
fn judge(
    lookup: Lookup<'_>,
    payload: Option<&[u8]>,
    signature: &str,
    annotations: &BTreeMap<String, String>,
) -> Result<String, Rejection> {
    let no_key_verifies = Rejection::NoKeyVerifies(Format::Legacy);
    let Some(payload) = payload else {
        return Err(no_key_verifies);
    };
    match names_digest(payload, lookup.digest) {
        Some(true) => bundle::check_legacy(payload, signature, annotations, lookup.keys),
        Some(false) => Err(Rejection::OtherDigest),
        None => Err(no_key_verifies),
    }
}

/// The payload of one signature layer; `None`, with a log line, when the layer cannot be read:
/// a digest that is not a sha256 one, a size over the payload limit, a blob that is missing,
/// over the limit or not its digest. Only a failure of the registry itself (refused,
/// unreachable, too slow) is an error, since it would fail every other layer too.
async fn payload_of(
    registry: &Registry,
    repo: &Repository,
    layer: &OciDescriptor,
    credential: Option<&Credential>,
) -> Result<Option<Bytes>, RegistryError> {
    let skipped = |reason: &str| {
        let layer: String = layer.digest.chars().take(80).collect();
        tracing::info!(target: "image-policy.verify", repository = %repo, %layer, reason, "Signature layer skipped");
        Ok(None)
    };
    if !is_sha256_digest(&layer.digest) {
        return skipped("its digest is not sha256:<64 hex digits>");
    }
    if usize::try_from(layer.size).is_ok_and(|size| size > registry.max_payload_bytes()) {
        return skipped("its size is over the payload limit");
    }
    match registry.blob(repo, &layer.digest, credential).await {
        Ok(Some(payload)) => Ok(Some(payload)),
        Ok(None) => skipped("the blob is missing"),
        Err(RegistryError::BadResponse { detail, .. }) => skipped(&detail),
        Err(e) => Err(e),
    }
}

/// Whether a simple-signing payload is one and names `digest`; `None` when it is no payload.
fn names_digest(payload: &[u8], digest: &str) -> Option<bool> {
    let payload: Payload = serde_json::from_slice(payload).ok()?;
    if payload.critical.kind != "cosign container image signature" {
        return None;
    }
    Some(payload.critical.image.digest == digest)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_real_payloads_name_their_digest() {
        let base = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/data/signatures");
        let index: serde_json::Value =
            serde_json::from_slice(&std::fs::read(format!("{base}/index.json")).expect("index"))
                .expect("json");
        for case in index.as_array().expect("array") {
            let id = case["id"].as_str().expect("id");
            let digest = case["image_digest"].as_str().expect("digest");
            let payload = std::fs::read(format!("{base}/{id}/payload.json")).expect("payload");
            assert_eq!(names_digest(&payload, digest), Some(true), "{id}");
            let other = format!("sha256:{}", "0".repeat(64));
            assert_eq!(names_digest(&payload, &other), Some(false), "{id}");
        }
    }

    #[test]
    fn what_is_not_a_payload_is_not_read_as_one() {
        assert_eq!(names_digest(b"", "sha256:00"), None);
        assert_eq!(names_digest(b"{}", "sha256:00"), None);
        let wrong_type =
            br#"{"critical":{"image":{"docker-manifest-digest":"sha256:00"},"type":"other"}}"#;
        assert_eq!(names_digest(wrong_type, "sha256:00"), None);
    }

    #[test]
    fn signature_tags() {
        let hex = "a".repeat(64);
        assert_eq!(
            signature_tag(&format!("sha256:{hex}")).as_deref(),
            Some(format!("sha256-{hex}.sig").as_str())
        );
        // Only a SHA-256 digest names a tag: anything else never reaches a URL (found by the
        // `registry` fuzz target: a digest carrying a URL and control characters).
        for not_a_digest in [
            "sha512:abc".to_owned(),
            "sha256:abc".to_owned(),
            format!("sha256:{}", "A".repeat(64)),
            format!("sha256:{hex}a"),
            "sha256:ababa\u{1}https://registry.example.org/v2/\0http://[::ffff:a9fe:a9fe]/x"
                .to_owned(),
        ] {
            assert_eq!(signature_tag(&not_a_digest), None, "{not_a_digest:?}");
            assert_eq!(super::super::digest_tag(&not_a_digest), None);
        }
    }
}
