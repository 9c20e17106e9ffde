//! The `ClusterImagePolicy` API: `signing.apps.tanzu.vmware.com/v1beta1`.
//!
//! These types are the wire contract of the original Image Policy Webhook and stay
//! byte-compatible with it: field names, nesting and the group/version/kind are those of
//! the original's documentation. Validation that the schema cannot express (PEM keys,
//! key references, name patterns) lives in the operator's policy compiler, which reports
//! every problem with its field path and one of the [`Reason`]s below.
//!
//! What the schema can express, it also refuses at apply time, at the field path the compiler
//! reports, so that `kubectl apply` says it before the webhook is asked (e2e/tests/current.rs
//! compares the two): a key with both or neither of `publicKey` and `keyless`, and a keyless
//! identity with both or neither of a value and its expression (CEL rules,
//! `x-kubernetes-validations`), and two keys of one name (`keys` is a list keyed by name). The
//! compiler still checks all of it: a policy it reads from a file, or stored before the CRD
//! had the rules, meets no API server.

mod attestation;

pub use attestation::{Attestation, AttestationCondition};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, Time};
use kube::CustomResource;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// The only name under which a `ClusterImagePolicy` is enforced.
pub const POLICY_NAME: &str = "image-policy";

/// The API group of [`ClusterImagePolicy`].
pub const GROUP: &str = "signing.apps.tanzu.vmware.com";

/// The one condition type this API reports.
pub const CONDITION_READY: &str = "Ready";

/// The cluster's image signing policy: which images must be signed, and by which keys.
// Each printcolumn repeats `type_`, which clippy takes for a duplicated attribute.
#[allow(clippy::duplicated_attributes)]
#[derive(CustomResource, Deserialize, Serialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[kube(
    group = "signing.apps.tanzu.vmware.com",
    version = "v1beta1",
    kind = "ClusterImagePolicy",
    plural = "clusterimagepolicies",
    singular = "clusterimagepolicy",
    status = "ClusterImagePolicyStatus",
    doc = "ClusterImagePolicy admits container images only when one of the listed keys verifies their cosign signature. Only the policy named image-policy is enforced.",
    printcolumn(
        name = "Ready",
        type_ = "string",
        json_path = ".status.conditions[?(@.type==\"Ready\")].status"
    ),
    printcolumn(
        name = "Reason",
        type_ = "string",
        json_path = ".status.conditions[?(@.type==\"Ready\")].reason"
    ),
    printcolumn(name = "Keys", type_ = "integer", json_path = ".status.keys"),
    printcolumn(name = "Patterns", type_ = "integer", json_path = ".status.patterns"),
    printcolumn(
        name = "Refused",
        type_ = "integer",
        json_path = ".status.running.refusedWorkloads"
    ),
    printcolumn(
        name = "Age",
        type_ = "date",
        json_path = ".metadata.creationTimestamp"
    )
)]
#[serde(rename_all = "camelCase")]
pub struct ClusterImagePolicySpec {
    /// What is verified, with which keys, and where not.
    pub verification: Verification,
}

// String fields carry no schema default: Kubernetes 1.20 refuses `default: ''` in a CRD
// ("must be of type string: null"), so they are required by the schema instead, and the
// policy compiler still refuses them empty.

/// The body of a policy.
#[derive(Deserialize, Serialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct Verification {
    /// Resources that are never checked.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub exclude: Option<Exclude>,
    /// Public keys complementary to the private keys that signed the images; key names are
    /// unique.
    #[serde(default)]
    #[schemars(extend("x-kubernetes-list-type" = "map", "x-kubernetes-list-map-keys" = ["name"]))]
    pub keys: Vec<Key>,
    /// Image name patterns and the keys that must verify images matching them.
    #[serde(default)]
    pub images: Vec<ImageEntry>,
    /// Sigstore trusted roots (trusted_root.json documents) besides the built-in Sigstore
    /// public-good one, by name, for keys whose signatures must be in a transparency log.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub trusted_roots: Vec<TrustedRoot>,
    /// Enforce (the default) or Warn, for every entry that sets no mode of its own and for
    /// images that no entry matches. Kept as written, so that the policy compiler can refuse
    /// an unknown value with its field path; the CRD describes it with [`Mode`]'s
    /// documentation (kube keeps an optional enum's description, not the field's).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(with = "Option<Mode>")]
    pub mode: Option<String>,
}

/// Resources excluded from verification.
#[derive(Deserialize, Serialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct Exclude {
    /// The excluded resources, by kind of selector.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resources: Option<ExcludedResources>,
}

/// Excluded resources.
#[derive(Deserialize, Serialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ExcludedResources {
    /// Namespaces where the policy is not enforced, such as `kube-system`.
    #[serde(default)]
    pub namespaces: Vec<String>,
}

/// A named signer: a public key, or a keyless identity (exactly one of the two).
// The rules' paths and reasons are the compiler's (operator/src/policy/signer.rs): both is
// InvalidIdentity at keyless, neither InvalidKey at publicKey.
#[derive(Deserialize, Serialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
#[schemars(extend("x-kubernetes-validations" = [
    {
        "rule": "!(has(self.publicKey) && has(self.keyless))",
        "fieldPath": ".keyless",
        "reason": "FieldValueForbidden",
        "message": "a key has both a publicKey and a keyless identity; give one",
    },
    {
        "rule": "has(self.publicKey) || has(self.keyless)",
        "fieldPath": ".publicKey",
        "reason": "FieldValueRequired",
        "message": "a key needs a publicKey or a keyless identity",
    },
]))]
pub struct Key {
    /// The name that image entries use to refer to this key; unique within the policy.
    pub name: String,
    /// A PEM `PUBLIC KEY` block: ECDSA P-256 or P-384, RSA of 2048 bits or more, or Ed25519.
    /// Exactly one of publicKey and keyless.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub public_key: Option<String>,
    /// A keyless signer: the workload identity named by a short-lived certificate of a Fulcio
    /// of the trusted root (cosign sign without a key, as in GitHub Actions). Exactly one of
    /// publicKey and keyless.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub keyless: Option<Keyless>,
    /// Whether a signature counts only with a transparency log entry. The CRD describes this
    /// field with [`TransparencyLog`]'s documentation, which gives the defaults: kube's schema
    /// for an `Option` of an enum keeps the enum's description, not the field's.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub transparency_log: Option<TransparencyLog>,
    /// The name of the trusted root (spec.verification.trustedRoots) that verifies this key's
    /// log entries, and a keyless signer's certificates and timestamps; the built-in Sigstore
    /// public-good root (sigstore-public-good) when empty.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub trusted_root: Option<String>,
}

/// A keyless identity: the certificate's OIDC issuer and subject (its URI or email SAN), each
/// given exactly or as a regular expression that must match all of it.
// The rules are the compiler's (operator/src/policy/identity.rs), at its paths: both forms
// given is one problem, at the value; neither given non-empty is one problem, at the value.
#[derive(Deserialize, Serialize, Clone, Debug, Default, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
#[schemars(extend("x-kubernetes-validations" = [
    {
        "rule": "!(has(self.issuer) && has(self.issuerRegExp))",
        "fieldPath": ".issuer",
        "reason": "FieldValueForbidden",
        "message": "give issuer or its regular expression, not both",
    },
    {
        "rule": "(has(self.issuer) && has(self.issuerRegExp)) || (has(self.issuer) && self.issuer != '') || (has(self.issuerRegExp) && self.issuerRegExp != '')",
        "fieldPath": ".issuer",
        "reason": "FieldValueRequired",
        "message": "a keyless identity needs its issuer (or issuerRegExp)",
    },
    {
        "rule": "!(has(self.subject) && has(self.subjectRegExp))",
        "fieldPath": ".subject",
        "reason": "FieldValueForbidden",
        "message": "give subject or its regular expression, not both",
    },
    {
        "rule": "(has(self.subject) && has(self.subjectRegExp)) || (has(self.subject) && self.subject != '') || (has(self.subjectRegExp) && self.subjectRegExp != '')",
        "fieldPath": ".subject",
        "reason": "FieldValueRequired",
        "message": "a keyless identity needs its subject (or subjectRegExp)",
    },
]))]
pub struct Keyless {
    /// The OIDC issuer, exactly, such as https://token.actions.githubusercontent.com. Exactly
    /// one of issuer and issuerRegExp.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub issuer: Option<String>,
    /// A regular expression (RE2 syntax) that the whole issuer must match. Exactly one of
    /// issuer and issuerRegExp.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub issuer_reg_exp: Option<String>,
    /// The subject, exactly: a URI such as
    /// https://github.com/ORG/REPO/.github/workflows/release.yml@refs/tags/v1.0.0, or an email.
    /// Exactly one of subject and subjectRegExp.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub subject: Option<String>,
    /// A regular expression (RE2 syntax) that the whole subject must match, as if between ^
    /// and $, such as https://github.com/ORG/REPO/\.github/workflows/release\.yml@refs/tags/.*
    /// Exactly one of subject and subjectRegExp.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub subject_reg_exp: Option<String>,
}

/// Whether a signature counts only with a transparency log entry that verifies against the
/// trusted root: Required, or Optional. For a publicKey, Optional is the default (the
/// original's behaviour). For keyless, Required is the default, and Optional accepts an RFC
/// 3161 timestamp of the trusted root's timestamp authority as the signing time.
#[derive(Deserialize, Serialize, Clone, Copy, Debug, Default, PartialEq, Eq, JsonSchema)]
pub enum TransparencyLog {
    /// The signature's Rekor entry must verify against the trusted root: its signed entry
    /// timestamp, or its inclusion proof with a signed checkpoint, and an entry body that
    /// matches the signature (a bundle's entry, or the one a legacy cosign signature carries
    /// in its annotations).
    Required,
    /// A signature that the key verifies counts with or without a log entry.
    #[default]
    Optional,
}

/// The built-in trusted root's name: Sigstore's public-good instance (Fulcio, Rekor, CT logs
/// and timestamp authority), embedded in the operator.
pub const PUBLIC_GOOD_TRUSTED_ROOT: &str = "sigstore-public-good";

/// A Sigstore trusted root, read from a ConfigMap in the operator's namespace.
#[derive(Deserialize, Serialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct TrustedRoot {
    /// The name keys refer to it by; unique, and not sigstore-public-good (the built-in one).
    pub name: String,
    /// The ConfigMap, in the operator's namespace, that holds the trusted_root.json document.
    pub config_map_ref: ConfigMapKeyRef,
}

/// A key of a ConfigMap in the operator's namespace.
#[derive(Deserialize, Serialize, Clone, Debug, Default, PartialEq, Eq, Hash, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ConfigMapKeyRef {
    /// The ConfigMap's name.
    pub name: String,
    /// The key that holds the document; trusted_root.json when empty.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub key: Option<String>,
}

/// Images matching a name pattern, and the keys of which any one must verify them.
#[derive(Deserialize, Serialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ImageEntry {
    /// An image name pattern; `*` matches any run of characters, and a pattern without a
    /// tag matches any tag and any digest.
    pub name_pattern: String,
    /// The keys, by name, of which any one must verify a matching image's signature.
    #[serde(default)]
    pub keys: Vec<KeyRef>,
    /// Registry credentials for images matching this pattern.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub secret_ref: Option<SecretRef>,
    /// Enforce or Warn for the images this entry matches, in place of spec.verification.mode;
    /// described in the CRD by [`Mode`]'s documentation, as `Verification::mode` is.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(with = "Option<Mode>")]
    pub mode: Option<String>,
    /// Attestations that every matching image must also carry. An entry may require
    /// attestations and name no keys: its images are then admitted by their attestations
    /// alone, each signed by the keys it names.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub attestations: Vec<Attestation>,
}

/// What is done with an image the policy would refuse: Enforce (the default, and what a
/// policy without a mode means, as in the original) refuses it; Warn admits it with a
/// warning that carries the refusal's words, so that a policy can be tried on a running
/// cluster before it is enforced. Set on spec.verification, it applies to every entry that
/// sets none and to images that no entry matches; set on an images[] entry, it applies to
/// the images that entry matches. An image that several entries match is admitted with a
/// warning only when every one of them is in Warn. Nothing else changes: images are verified
/// as in Enforce, and an image in Warn that fails is never pinned to a digest.
#[derive(Deserialize, Serialize, Clone, Copy, Debug, Default, PartialEq, Eq, Hash, JsonSchema)]
pub enum Mode {
    /// An image the policy would refuse is refused.
    #[default]
    Enforce,
    /// An image the policy would refuse is admitted, with a warning that says why it would be
    /// refused.
    Warn,
}

impl Mode {
    /// Every mode, in declaration order.
    pub const ALL: [Mode; 2] = [Mode::Enforce, Mode::Warn];

    /// The mode as written in a policy.
    pub fn as_str(self) -> &'static str {
        match self {
            Mode::Enforce => "Enforce",
            Mode::Warn => "Warn",
        }
    }

    /// The mode a policy writes as `text` (exactly, as the CRD's enum does), if any.
    pub fn parse(text: &str) -> Option<Mode> {
        Mode::ALL.into_iter().find(|m| m.as_str() == text)
    }
}

impl std::fmt::Display for Mode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A reference to a key of `spec.verification.keys`.
#[derive(Deserialize, Serialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct KeyRef {
    /// The name of the key.
    pub name: String,
}

/// A reference to a registry credential Secret (`kubernetes.io/dockerconfigjson` or
/// `kubernetes.io/dockercfg`).
#[derive(Deserialize, Serialize, Clone, Debug, Default, PartialEq, Eq, Hash, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct SecretRef {
    /// The Secret's name.
    pub name: String,
    /// The Secret's namespace; the operator's own namespace when empty.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub namespace: Option<String>,
}

/// What the operator last observed of the policy.
#[derive(Deserialize, Serialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ClusterImagePolicyStatus {
    /// The `Ready` condition: whether the policy is enforced as written, and why not. A map
    /// keyed by `type`, so that a condition another writer applies (server-side apply, its own
    /// field manager) is merged with the operator's, not replaced.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(extend("x-kubernetes-list-type" = "map", "x-kubernetes-list-map-keys" = ["type"]))]
    pub conditions: Vec<Condition>,
    /// The number of keys in the enforced policy.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub keys: Option<i64>,
    /// The number of image name patterns in the enforced policy.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub patterns: Option<i64>,
    /// What the last check of the workloads already running found: which of them the policy
    /// in force would refuse now. Written by the replica holding the lease, after each policy
    /// change and every resync period.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub running: Option<RunningCheck>,
}

/// The workloads already running, checked against the policy in force.
#[derive(Deserialize, Serialize, Clone, Debug, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct RunningCheck {
    /// When the check ended.
    pub last_checked: Time,
    /// The generation of the policy checked against.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<i64>,
    /// How many workloads were checked: their Pods grouped by owner (a Deployment's Pods are
    /// one workload), outside the excluded namespaces.
    pub workloads: i64,
    /// How many of them run an image the policy would refuse now (in Warn mode: would refuse
    /// if it were enforced).
    pub refused_workloads: i64,
    /// The first 20 images refused, by namespace, kind and name.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub refused: Vec<RefusedImage>,
}

/// A running workload's image that the policy would refuse now.
#[derive(Deserialize, Serialize, Clone, Debug, Default, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct RefusedImage {
    /// The workload's namespace.
    pub namespace: String,
    /// The workload's kind: the top owner of its Pods (Deployment, StatefulSet, DaemonSet,
    /// CronJob, Job, ReplicaSet, ...), or Pod for a Pod that no controller owns.
    pub kind: String,
    /// The workload's name.
    pub name: String,
    /// The image, as written in the pod spec.
    pub image: String,
    /// Why it would be refused: the decision's reason, as in the webhook's metrics.
    pub reason: String,
    /// The denial, word for word as the webhook would answer it.
    pub message: String,
}

/// The reasons of the `Ready` condition.
///
/// They double as metric labels and as the classification of compile problems, so the set
/// is closed and each reason's text is fixed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Reason {
    /// The policy compiled and is enforced.
    PolicyActive,
    /// The policy is not named `image-policy`, so it is never enforced.
    InvalidName,
    /// A public key does not parse, is of an unsupported kind, or its name is missing or
    /// duplicated.
    InvalidKey,
    /// An image entry names a key that is not defined.
    UnknownKey,
    /// An image entry names no key at all, so no image it matches could ever be admitted.
    MissingKeys,
    /// A name pattern is empty or malformed.
    InvalidPattern,
    /// A `secretRef` lacks a name or names an invalid namespace.
    InvalidSecretRef,
    /// An excluded namespace is not a valid namespace name.
    InvalidNamespace,
    /// A `secretRef` names a Secret that does not exist.
    SecretNotFound,
    /// A key names a trusted root that the policy does not define, or a trusted root's name
    /// is missing, repeated or the built-in one's.
    UnknownTrustedRoot,
    /// A trusted root's ConfigMap does not exist, or does not hold a trusted_root.json
    /// document the operator can use: the keys that need it verify nothing.
    TrustedRootUnavailable,
    /// A key has both or neither of publicKey and keyless, or a keyless identity has both or
    /// neither of an exact value and a regular expression, or a regular expression that does
    /// not compile.
    InvalidIdentity,
    /// A mode is neither Enforce nor Warn.
    InvalidMode,
    /// A required attestation has no name, a name used twice in its entry, or no predicate
    /// type.
    InvalidAttestation,
    /// A condition of a required attestation does not compile (its syntax, a name that is no
    /// variable, its length), or its message is too long.
    InvalidCondition,
}

impl Reason {
    /// Every reason, in declaration order.
    pub const ALL: [Reason; 15] = [
        Reason::PolicyActive,
        Reason::InvalidName,
        Reason::InvalidKey,
        Reason::UnknownKey,
        Reason::MissingKeys,
        Reason::InvalidPattern,
        Reason::InvalidSecretRef,
        Reason::InvalidNamespace,
        Reason::SecretNotFound,
        Reason::UnknownTrustedRoot,
        Reason::TrustedRootUnavailable,
        Reason::InvalidIdentity,
        Reason::InvalidMode,
        Reason::InvalidAttestation,
        Reason::InvalidCondition,
    ];

    /// The reason as written in a condition: CamelCase, stable.
    pub fn as_str(self) -> &'static str {
        match self {
            Reason::PolicyActive => "PolicyActive",
            Reason::InvalidName => "InvalidName",
            Reason::InvalidKey => "InvalidKey",
            Reason::UnknownKey => "UnknownKey",
            Reason::MissingKeys => "MissingKeys",
            Reason::InvalidPattern => "InvalidPattern",
            Reason::InvalidSecretRef => "InvalidSecretRef",
            Reason::InvalidNamespace => "InvalidNamespace",
            Reason::SecretNotFound => "SecretNotFound",
            Reason::UnknownTrustedRoot => "UnknownTrustedRoot",
            Reason::TrustedRootUnavailable => "TrustedRootUnavailable",
            Reason::InvalidIdentity => "InvalidIdentity",
            Reason::InvalidMode => "InvalidMode",
            Reason::InvalidAttestation => "InvalidAttestation",
            Reason::InvalidCondition => "InvalidCondition",
        }
    }
}

impl std::fmt::Display for Reason {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

#[cfg(test)]
mod tests;
