//! The wire format: an AdmissionReview in ([`Request`]), an AdmissionReview out
//! ([`Response`], in `response.rs`). What is decided is [`super::admit`]'s; which images a
//! request must have checked is the image rules' ([`crate::workload`]).
//!
//! Requests are read in `admission.k8s.io/v1` or `v1beta1`, and answered in the version they
//! came in. A body is read in one pass for the fields that decide, each as a JSON value would
//! read it, and the rest is skipped unvisited (the readers are in `read.rs`, see
//! [`crate::lenient`]): the object is not built, only its images, pull secrets and service
//! account are kept (see [`Object`]). What an Event names of its metadata (its `generateName`
//! and its controller, see [`Metadata`]) is read from the body again by the few decisions
//! whose Events are recorded ([`Request::metadata`]), not kept by every review. The images it
//! must have checked are found once, as it is read, and serve admission and its Events alike.
//! A body that is not
//! a well-formed review is an error for the HTTP layer to answer with 400: the API server then
//! applies the webhook's failure policy (Fail), so a broken request can never be admitted by
//! accident. Well-formed means JSON in its whole grammar, nested no deeper than 127, and
//! valid in every string read; inside a value nothing reads, what only a JSON value refuses
//! (a number beyond `f64`, a lone surrogate escape, invalid UTF-8) is not looked for
//! (docs/contract.md §2).

use std::borrow::Cow;

use serde_json::Value;

mod read;
mod response;

use self::read::Review;
pub use self::response::Response;
use crate::lenient;
use crate::workload::{Change, Object, WorkloadError};

/// The two versions of the AdmissionReview API.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ApiVersion {
    /// `admission.k8s.io/v1`.
    V1,
    /// `admission.k8s.io/v1beta1`.
    V1Beta1,
}

impl ApiVersion {
    pub(crate) fn as_str(self) -> &'static str {
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
        /// The object's kind, such as `Deployment`.
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
    /// The images it must have checked, as [`Request::images_to_check`] gives them.
    images: Result<Option<Vec<String>>, WorkloadError>,
}

/// What an Event names of a review's object besides its kind and name, from its `metadata`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Metadata {
    /// `generateName` (empty when it has none, or it is not a string).
    pub generate_name: String,
    /// The object's controller: its `ownerReferences` entry with `controller: true`.
    pub controller: Option<ControllerRef>,
}

/// The object that controls another (`metadata.ownerReferences[]` with `controller: true`):
/// a Pod's ReplicaSet, a Job's CronJob. Only a complete reference is kept.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ControllerRef {
    /// `apiVersion`, such as `apps/v1`.
    pub api_version: String,
    /// `kind`, such as `ReplicaSet`.
    pub kind: String,
    /// `name`.
    pub name: String,
    /// `uid`.
    pub uid: String,
}

impl Request {
    /// Reads an AdmissionReview body.
    pub fn parse(body: &[u8]) -> Result<Self, ReviewError> {
        let review: Review =
            lenient::read_body(body).map_err(|e| ReviewError::NotJson(e.to_string()))?;
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
        let mut request = Request {
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
            images: Ok(None),
        };
        request.images = request.change().images_to_check();
        Ok(request)
    }

    /// `request.object.metadata` of an AdmissionReview body, read again, as an Event names the
    /// object: its strings decoded and checked as everything read is. Empty for a body where
    /// it cannot be read (which [`Request::parse`] refuses, or a value read there is invalid).
    pub fn metadata(body: &[u8]) -> Metadata {
        lenient::read_body::<read::InReview>(body)
            .map(|read::InReview(metadata)| metadata)
            .unwrap_or_default()
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

    /// What the request changes, for the image rules.
    pub fn change(&self) -> Change<'_> {
        Change {
            kind: &self.kind,
            sub_resource: self.sub_resource.as_deref(),
            operation: &self.operation,
            object: &self.object,
            old_object: self.old_object.as_ref(),
        }
    }

    /// The images this request must have checked ([`Change::images_to_check`]), found once
    /// when it was read: `None` when it is not a request this webhook decides; an error when
    /// its workload's images cannot be read.
    pub fn images_to_check(&self) -> Result<Option<Vec<String>>, ReviewError> {
        match &self.images {
            Ok(images) => Ok(images.clone()),
            Err(e) => Err(ReviewError::Workload {
                kind: self.kind.clone(),
                detail: e.to_string(),
            }),
        }
    }

    /// The same images, as far as they could be read: none for a request this webhook does
    /// not decide or whose workload cannot be read.
    pub fn checked_images(&self) -> &[String] {
        match &self.images {
            Ok(Some(images)) => images,
            Ok(None) | Err(_) => &[],
        }
    }
}

#[cfg(test)]
mod tests;
