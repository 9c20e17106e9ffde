//! AdmissionReview in, AdmissionReview out: SPEC §2's decision for one request.
//!
//! Requests are read in `admission.k8s.io/v1` or `v1beta1`, and answered in the version they
//! came in. A body is read in one pass for the fields that decide, as a JSON value would read
//! them (see [`crate::lenient`]): the object is not built, only its images, pull secrets and
//! service account are kept (see [`Object`]). A body that is not a well-formed review is an
//! error for the HTTP layer to answer with 400: the API server then applies the webhook's
//! failure policy (Fail), so a broken request can never be admitted by accident.

use std::borrow::Cow;
use std::collections::HashSet;

use futures::StreamExt as _;
use serde::Serialize;
use serde::de::MapAccess;
use serde_json::Value;

use crate::decide::{
    Classified, NO_POLICY_WARNING, Outcome, classify, excluded_message, verify_matched,
};
use crate::lenient::{Flag, Lenient, Read, Text, each_field, next_value};
use crate::policy::{Entry, ImageName, Snapshot};
use crate::verify::{Credential, Verifier};
use crate::workload::{ContainerImage, Object};

/// The two versions of the AdmissionReview API.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ApiVersion {
    /// `admission.k8s.io/v1`.
    V1,
    /// `admission.k8s.io/v1beta1`.
    V1Beta1,
}

impl ApiVersion {
    fn as_str(self) -> &'static str {
        match self {
            ApiVersion::V1 => "admission.k8s.io/v1",
            ApiVersion::V1Beta1 => "admission.k8s.io/v1beta1",
        }
    }
}

/// Why a body is not an admission review. The message goes back in the 400 response.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ReviewError {
    /// Not JSON at all.
    #[error("the body is not JSON: {0}")]
    NotJson(String),
    /// JSON, but not an AdmissionReview request.
    #[error("not an AdmissionReview request: {0}")]
    Malformed(&'static str),
    /// An AdmissionReview of a version this webhook does not speak.
    #[error(
        "unsupported AdmissionReview apiVersion {0:?}; admission.k8s.io/v1 and v1beta1 are supported"
    )]
    Version(String),
    /// A workload whose images cannot be read.
    #[error("cannot read the images of {kind}: {detail}")]
    Workload {
        /// The kind.
        kind: String,
        /// What is wrong.
        detail: String,
    },
}

/// The parts of an admission request that decide.
#[derive(Debug, Clone)]
pub struct Request {
    /// The version to answer in.
    pub version: ApiVersion,
    /// Copied into the response.
    pub uid: String,
    /// `request.kind.kind`.
    pub kind: String,
    /// `request.subResource`, if any.
    pub sub_resource: Option<String>,
    /// `CREATE`, `UPDATE`, ...
    pub operation: String,
    /// The request's namespace (empty for cluster-scoped objects).
    pub namespace: String,
    /// The object's name (may be empty on CREATE with generateName).
    pub name: String,
    /// Whether this is a dry run; decided the same way.
    pub dry_run: bool,
    /// What decides in the object as it would be stored.
    pub object: Object,
    /// What decides in the object before an UPDATE.
    pub old_object: Option<Object>,
}

/// The envelope: `{"apiVersion", "kind", "request"}`.
#[derive(Default)]
struct Review<'de> {
    is_object: bool,
    api_version: Option<Cow<'de, str>>,
    kind: Option<Cow<'de, str>>,
    request: Fields<'de>,
}

/// `request`'s fields.
#[derive(Default)]
struct Fields<'de> {
    is_object: bool,
    uid: Option<Cow<'de, str>>,
    /// `kind.kind`.
    kind: Option<Cow<'de, str>>,
    sub_resource: Option<Cow<'de, str>>,
    operation: Option<Cow<'de, str>>,
    namespace: Option<Cow<'de, str>>,
    name: Option<Cow<'de, str>>,
    dry_run: Option<bool>,
    object: Object,
    /// `None` when missing or `null`.
    old_object: Option<Object>,
}

/// `request.kind`'s `kind`.
struct KindOf<'de>(Option<Cow<'de, str>>);

/// `request.oldObject`: `None` when `null`.
struct OldObject(Option<Object>);

impl<'de> Lenient<'de> for Review<'de> {
    fn other() -> Self {
        Review::default()
    }

    fn map<A: MapAccess<'de>>(map: A) -> Result<Self, A::Error> {
        let mut review = Review {
            is_object: true,
            ..Review::default()
        };
        each_field(map, |key, map| {
            match key {
                "apiVersion" => review.api_version = next_value::<_, Text>(map)?.0,
                "kind" => review.kind = next_value::<_, Text>(map)?.0,
                "request" => review.request = next_value(map)?,
                _ => return Ok(false),
            }
            Ok(true)
        })?;
        Ok(review)
    }
}

impl<'de> Lenient<'de> for Fields<'de> {
    fn other() -> Self {
        Fields::default()
    }

    fn map<A: MapAccess<'de>>(map: A) -> Result<Self, A::Error> {
        let mut fields = Fields {
            is_object: true,
            ..Fields::default()
        };
        let text = |map: &mut A| next_value::<_, Text>(map).map(|t| t.0);
        each_field(map, |key, map| {
            match key {
                "uid" => fields.uid = text(map)?,
                "kind" => fields.kind = next_value::<_, KindOf>(map)?.0,
                "subResource" => fields.sub_resource = text(map)?,
                "operation" => fields.operation = text(map)?,
                "namespace" => fields.namespace = text(map)?,
                "name" => fields.name = text(map)?,
                "dryRun" => fields.dry_run = next_value::<_, Flag>(map)?.0,
                "object" => fields.object = next_value(map)?,
                "oldObject" => fields.old_object = next_value::<_, OldObject>(map)?.0,
                _ => return Ok(false),
            }
            Ok(true)
        })?;
        Ok(fields)
    }
}

impl<'de> Lenient<'de> for KindOf<'de> {
    fn other() -> Self {
        KindOf(None)
    }

    fn map<A: MapAccess<'de>>(map: A) -> Result<Self, A::Error> {
        let mut kind = None;
        each_field(map, |key, map| {
            if key != "kind" {
                return Ok(false);
            }
            kind = next_value::<_, Text>(map)?.0;
            Ok(true)
        })?;
        Ok(KindOf(kind))
    }
}

impl<'de> Lenient<'de> for OldObject {
    fn other() -> Self {
        OldObject(Some(Object::default()))
    }

    fn null() -> Self {
        OldObject(None)
    }

    fn map<A: MapAccess<'de>>(map: A) -> Result<Self, A::Error> {
        Object::map(map).map(|object| OldObject(Some(object)))
    }
}

impl Request {
    /// Reads an AdmissionReview body.
    pub fn parse(body: &[u8]) -> Result<Self, ReviewError> {
        let read = match std::str::from_utf8(body) {
            // Checked once as a whole, the body's strings need no UTF-8 check of their own.
            Ok(text) => serde_json::from_str::<Read<Review>>(text),
            // Read as bytes, for the same error at the same place as any other reading.
            Err(_) => serde_json::from_slice::<Read<Review>>(body),
        };
        let Read(review) = read.map_err(|e| ReviewError::NotJson(e.to_string()))?;
        if !review.is_object {
            return Err(ReviewError::Malformed("the body is not a JSON object"));
        }
        let version = match review.api_version.as_deref() {
            Some("admission.k8s.io/v1") => ApiVersion::V1,
            Some("admission.k8s.io/v1beta1") => ApiVersion::V1Beta1,
            Some(other) => return Err(ReviewError::Version(other.chars().take(64).collect())),
            None => return Err(ReviewError::Malformed("apiVersion is missing")),
        };
        if review.kind.as_deref() != Some("AdmissionReview") {
            return Err(ReviewError::Malformed("kind is not AdmissionReview"));
        }
        let request = review.request;
        if !request.is_object {
            return Err(ReviewError::Malformed("request is missing"));
        }
        let text = |field: Option<Cow<str>>| field.map(Cow::into_owned).unwrap_or_default();
        let uid = text(request.uid);
        if uid.is_empty() {
            return Err(ReviewError::Malformed("request.uid is missing"));
        }
        let kind = text(request.kind);
        if kind.is_empty() {
            return Err(ReviewError::Malformed("request.kind is missing"));
        }
        let operation = text(request.operation);
        if operation.is_empty() {
            return Err(ReviewError::Malformed("request.operation is missing"));
        }
        Ok(Request {
            version,
            uid,
            kind,
            sub_resource: request.sub_resource.map(Cow::into_owned),
            operation,
            namespace: text(request.namespace),
            name: text(request.name),
            dry_run: request.dry_run.unwrap_or(false),
            object: request.object,
            old_object: request.old_object,
        })
    }

    /// `request.object` of an AdmissionReview body as a whole JSON value (`null` when it has
    /// none), for the rare review that needs all of it: a policy sent for validation.
    pub fn object_value(body: &[u8]) -> Result<Value, ReviewError> {
        let mut review: Value =
            serde_json::from_slice(body).map_err(|e| ReviewError::NotJson(e.to_string()))?;
        Ok(review
            .get_mut("request")
            .and_then(|r| r.get_mut("object"))
            .map(Value::take)
            .unwrap_or(Value::Null))
    }

    /// The images this request must have checked: `None` when it is not a request this
    /// webhook decides (another kind, another operation, another subresource).
    pub fn images_to_check(&self) -> Result<Option<Vec<String>>, ReviewError> {
        if !matches!(self.operation.as_str(), "CREATE" | "UPDATE") {
            return Ok(None);
        }
        let images = match self.sub_resource.as_deref() {
            None => match self
                .object
                .images_of(&self.kind)
                .map_err(|e| self.workload_error(e))?
            {
                Some(images) => images,
                None => return Ok(None),
            },
            // `kubectl debug`: the object is a Pod (1.22+) or an EphemeralContainers (1.20-21).
            Some("ephemeralcontainers") => self
                .object
                .spec_or_self()
                .pod_spec_images()
                .map_err(|e| self.workload_error(e))?,
            Some(_) => return Ok(None),
        };
        let before: HashSet<String> = match &self.old_object {
            Some(old) if self.operation == "UPDATE" => {
                old_images(&self.kind, self.sub_resource.as_deref(), old)
            }
            _ => HashSet::new(),
        };
        let mut seen = HashSet::new();
        let fresh = images
            .into_iter()
            .map(|ContainerImage { image, .. }| image)
            .filter(|i| !before.contains(i) && seen.insert(i.clone()))
            .collect();
        Ok(Some(fresh))
    }

    /// The pod spec whose pull secrets and service account go with this request's images: the
    /// object's at its kind's path, or for a subresource its `spec` (or itself).
    pub fn pod_spec(&self) -> Option<&Object> {
        self.object.pod_spec(&self.kind).or_else(|| {
            self.sub_resource
                .is_some()
                .then(|| self.object.spec_or_self())
        })
    }

    fn workload_error(&self, e: crate::workload::WorkloadError) -> ReviewError {
        ReviewError::Workload {
            kind: self.kind.clone(),
            detail: e.to_string(),
        }
    }
}

/// Images already in the object before an UPDATE: admitted then, not checked again. An old
/// object that cannot be read counts as having none, so everything is checked.
fn old_images(kind: &str, sub_resource: Option<&str>, old: &Object) -> HashSet<String> {
    let images = match sub_resource {
        Some(_) => old.spec_or_self().pod_spec_images().ok(),
        None => old.images_of(kind).ok().flatten(),
    };
    images
        .unwrap_or_default()
        .into_iter()
        .map(|c| c.image)
        .collect()
}

/// What the webhook knows of the policy when a request arrives.
#[derive(Debug, Clone)]
pub enum PolicyState {
    /// Not yet known (the controller has not listed policies yet): fail closed.
    Loading,
    /// No `ClusterImagePolicy` named `image-policy` exists.
    Absent,
    /// The policy in force.
    Active(std::sync::Arc<Snapshot>),
    /// The policy exists but does not compile, and no valid version was seen before.
    Invalid(String),
}

/// Credentials for an image, in SPEC §4's order; how they are found is the caller's.
pub trait CredentialSource: Send + Sync {
    /// The credentials to try for `image` matched by `entries` in `request`.
    fn credentials<'a>(
        &'a self,
        request: &'a Request,
        image: &'a ImageName,
        entries: &'a [&'a Entry],
    ) -> futures::future::BoxFuture<'a, Vec<Credential>>;
}

/// No credentials at all: anonymous access only.
pub struct Anonymous;

impl CredentialSource for Anonymous {
    fn credentials<'a>(
        &'a self,
        _: &'a Request,
        _: &'a ImageName,
        _: &'a [&'a Entry],
    ) -> futures::future::BoxFuture<'a, Vec<Credential>> {
        Box::pin(async { Vec::new() })
    }
}

/// The decision for one request, before it is written back.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Decision {
    /// Admitted.
    pub allowed: bool,
    /// The denial message (every failing image), when denied.
    pub message: Option<String>,
    /// Warnings for the user.
    pub warnings: Vec<String>,
    /// A line for the log, when the decision deserves one beyond the verdict.
    pub note: Option<String>,
    /// The fixed label of the decision, for metrics: `Verified`, `NoPolicy`, `Excluded`,
    /// `NotChecked`, `Unmatched`, or the first denial's.
    pub reason: &'static str,
    /// Every image decided, with its outcome.
    pub outcomes: Vec<(String, Outcome)>,
}

impl Decision {
    fn allow(reason: &'static str) -> Self {
        Decision {
            allowed: true,
            message: None,
            warnings: Vec::new(),
            note: None,
            reason,
            outcomes: Vec::new(),
        }
    }

    /// Admitted without a look: a request this webhook does not decide.
    pub fn untouched() -> Self {
        Self::allow("NotChecked")
    }

    /// Refused with one message.
    pub fn denied(reason: &'static str, message: String) -> Self {
        Decision {
            allowed: false,
            message: Some(message),
            warnings: Vec::new(),
            note: None,
            reason,
            outcomes: Vec::new(),
        }
    }
}

/// Settings of the decision that come from the command line.
#[derive(Debug, Clone, Copy, Default)]
pub struct Settings {
    /// Admit unmatched images with a warning.
    pub allow_unmatched_images: bool,
}

/// The bound on gathering an image's registry credentials through the API server.
pub const CREDENTIALS_BUDGET: std::time::Duration = std::time::Duration::from_secs(2);

/// Decides a request (SPEC §2's order).
pub async fn decide(
    request: &Request,
    images: Vec<String>,
    policy: &PolicyState,
    verifier: &Verifier,
    credentials: &dyn CredentialSource,
    settings: Settings,
) -> Decision {
    let snapshot = match policy {
        PolicyState::Absent => {
            let mut decision = Decision::allow("NoPolicy");
            decision.warnings.push(NO_POLICY_WARNING.to_owned());
            return decision;
        }
        PolicyState::Loading => {
            return deny_all(
                "PolicyLoading",
                "The image policy is not loaded yet; try again in a moment.",
            );
        }
        PolicyState::Invalid(problems) => {
            let message = format!(
                "The ClusterImagePolicy image-policy is invalid, so no image can be verified: {problems}"
            );
            return deny_all("PolicyInvalid", &message);
        }
        PolicyState::Active(snapshot) => snapshot,
    };
    if snapshot.is_excluded(&request.namespace) {
        let mut decision = Decision::allow("Excluded");
        decision.note = Some(excluded_message(&request.namespace));
        return decision;
    }
    if images.is_empty() {
        return Decision::allow("NotChecked");
    }
    // At most VERIFY_CONCURRENCY images at once, in order: a body can list thousands.
    let checks: Vec<_> = images.iter().map(|written| async move {
        let outcome = match classify(snapshot, written, settings.allow_unmatched_images) {
            Classified::Decided(outcome) => outcome,
            Classified::Matched { image, entries } => {
                // An API server slow to answer for Secrets must not eat the verification's
                // budget: past this bound the image is verified with anonymous access only.
                let gather = credentials.credentials(request, &image, &entries);
                let found = tokio::time::timeout(CREDENTIALS_BUDGET, gather)
                    .await
                    .unwrap_or_else(|_| {
                        tracing::warn!(target: "image-policy.credentials", image = %written, "Reading pull secrets timed out; trying anonymous access");
                        Vec::new()
                    });
                verify_matched(verifier, snapshot, written, &image, &entries, &found).await
            }
        };
        (written.clone(), outcome)
    }).collect();
    let outcomes: Vec<_> = futures::stream::iter(checks)
        .buffered(VERIFY_CONCURRENCY)
        .collect()
        .await;
    summarize(outcomes)
}

/// How many images of one request are verified at once. Enough for any real pod (a few
/// containers); a request that lists thousands is answered within the server's request
/// timeout or not at all (then refused: failurePolicy Fail), without a burst of registry and
/// API traffic.
pub const VERIFY_CONCURRENCY: usize = 16;

fn deny_all(reason: &'static str, message: &str) -> Decision {
    Decision::denied(reason, message.to_owned())
}

fn summarize(outcomes: Vec<(String, Outcome)>) -> Decision {
    let mut warnings = Vec::new();
    let mut denials = Vec::new();
    let mut reason = "Verified";
    for (_, outcome) in &outcomes {
        match outcome {
            Outcome::Admitted { .. } => {}
            Outcome::Warned(warning) => {
                warnings.push(warning.clone());
                if denials.is_empty() {
                    reason = "Unmatched";
                }
            }
            Outcome::Denied { message, label } => {
                if denials.is_empty() {
                    reason = label;
                }
                denials.push(message.clone());
            }
        }
    }
    let allowed = denials.is_empty();
    let message = (!allowed).then(|| denials.join(" "));
    Decision {
        allowed,
        message,
        warnings,
        note: None,
        reason,
        outcomes,
    }
}

/// The AdmissionReview response body for a decision, in the request's version: serialized
/// straight from borrowed fields, with its keys in the order a JSON value's map wrote them.
pub fn response(request: &Request, decision: &Decision) -> Vec<u8> {
    #[derive(Serialize)]
    struct Review<'a> {
        #[serde(rename = "apiVersion")]
        api_version: &'static str,
        kind: &'static str,
        response: Response<'a>,
    }

    #[derive(Serialize)]
    struct Response<'a> {
        allowed: bool,
        #[serde(skip_serializing_if = "Option::is_none")]
        status: Option<Status<'a>>,
        uid: &'a str,
        #[serde(skip_serializing_if = "<[String]>::is_empty")]
        warnings: &'a [String],
    }

    #[derive(Serialize)]
    struct Status<'a> {
        code: u16,
        message: &'a str,
        reason: &'a str,
        status: &'static str,
    }

    // kubectl prints `Error from server (<reason>): <message>`; the original's users read the
    // denial in both places.
    let status = decision.message.as_deref().map(|message| Status {
        code: 403,
        message,
        reason: message,
        status: "Failure",
    });
    let review = Review {
        api_version: request.version.as_str(),
        kind: "AdmissionReview",
        response: Response {
            allowed: decision.allowed,
            status,
            uid: &request.uid,
            warnings: &decision.warnings,
        },
    };
    serde_json::to_vec(&review).unwrap_or_default()
}
