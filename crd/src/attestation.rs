//! Required attestations (additive): what an image entry may require besides a signature,
//! each a signed in-toto statement of a predicate type, with conditions in CEL.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::KeyRef;

/// An attestation that every image the entry matches must carry: a signed in-toto statement
/// (SLSA provenance, a vulnerability scan, an SBOM) about the image's digest, whose predicate
/// type is predicateType, signed by one of keys, and for which every condition is true. Of the
/// attestations of that type that verify, only the newest counts (by its verified signing
/// time: a transparency log entry or an RFC 3161 timestamp of the signer's trusted root);
/// when several cannot be told apart, each of them must satisfy the conditions.
#[derive(Deserialize, Serialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct Attestation {
    /// The attestation's name, unique within its entry: denials and `image-policy match` name
    /// it.
    pub name: String,
    /// The in-toto predicate type, exactly, such as https://slsa.dev/provenance/v1 (what
    /// cosign attest --type slsaprovenance1 and GitHub's attest-build-provenance write),
    /// https://cosign.sigstore.dev/attestation/vuln/v1 or https://spdx.dev/Document.
    pub predicate_type: String,
    /// The keys or keyless identities (names of spec.verification.keys), of which any one must
    /// have signed the attestation. The entry's own keys when empty; an entry without keys
    /// must name them here.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub keys: Vec<KeyRef>,
    /// Conditions on the attestation, every one of which must be true. An image whose
    /// attestation makes one false, or fail to evaluate, is refused with its message.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub conditions: Vec<AttestationCondition>,
}

/// A condition on an attestation: a CEL expression that must evaluate to true.
#[derive(Deserialize, Serialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct AttestationCondition {
    /// A CEL expression (the language of Kubernetes' validation rules), at most 4096 bytes,
    /// over the variables predicate (the statement's predicate), predicateType, subject (the
    /// statement's subjects), image (reference and digest), signer (name; issuer and subject
    /// for a keyless identity) and now (a timestamp), such as
    /// predicate.buildDefinition.externalParameters.workflow.repository ==
    /// "https://github.com/example/app", or timestamp(predicate.metadata.scanFinishedOn) > now
    /// - duration("168h").
    pub expression: String,
    /// What a denial says when the condition is false, such as "built from example/app"; the
    /// expression when empty.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
}
