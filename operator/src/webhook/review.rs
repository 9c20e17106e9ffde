//! The wire format: an AdmissionReview in ([`Request`]), an AdmissionReview out
//! ([`Response`]). What is decided is [`super::admit`]'s.
//!
//! Requests are read in `admission.k8s.io/v1` or `v1beta1`, and answered in the version they
//! came in. A body is read in one pass for the fields that decide, as a JSON value would read
//! them (see [`crate::lenient`]): the object is not built, only its images, pull secrets and
//! service account are kept (see [`Object`]), and of its metadata what an Event names (its
//! `generateName` and its controller, see [`ControllerRef`]). A body that is not a well-formed review is an
//! error for the HTTP layer to answer with 400: the API server then applies the webhook's
//! failure policy (Fail), so a broken request can never be admitted by accident.

use std::borrow::Cow;
use std::collections::HashSet;

use base64::Engine as _;
use serde::Serialize;
use serde::de::{MapAccess, SeqAccess};
use serde_json::Value;

use super::decision::Decision;
use crate::lenient::{Flag, Lenient, Read, Text, each_field, next_value};
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
    /// The object's `metadata.generateName` (empty when it has none).
    pub generate_name: String,
    /// The object's controller: its `metadata.ownerReferences` entry with `controller: true`.
    pub controller: Option<ControllerRef>,
    /// What decides in the object as it would be stored.
    pub object: Object,
    /// What decides in the object before an UPDATE.
    pub old_object: Option<Object>,
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
    object: Subject,
    /// `None` when missing or `null`.
    old_object: Option<Object>,
}

/// `request.object`: what decides in it, and what an Event names from its `metadata`.
#[derive(Default)]
struct Subject {
    object: Object,
    metadata: Metadata,
}

/// `metadata`'s `generateName` and controller.
#[derive(Default)]
struct Metadata {
    generate_name: Option<String>,
    controller: Option<ControllerRef>,
}

/// `metadata.ownerReferences`: its first entry with `controller: true`, if complete.
struct Controller(Option<ControllerRef>);

/// One `ownerReferences` entry, as written.
#[derive(Default)]
struct OwnerReference {
    api_version: Option<String>,
    kind: Option<String>,
    name: Option<String>,
    uid: Option<String>,
    controller: bool,
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

impl<'de> Lenient<'de> for Subject {
    fn other() -> Self {
        Subject::default()
    }

    fn map<A: MapAccess<'de>>(map: A) -> Result<Self, A::Error> {
        let mut object = Object::empty_object();
        let mut metadata = Metadata::default();
        each_field(map, |key, map| {
            if key == "metadata" {
                metadata = next_value(map)?;
                return Ok(true);
            }
            object.read_field(key, map)
        })?;
        Ok(Subject { object, metadata })
    }
}

impl<'de> Lenient<'de> for Metadata {
    fn other() -> Self {
        Metadata::default()
    }

    fn map<A: MapAccess<'de>>(map: A) -> Result<Self, A::Error> {
        let mut metadata = Metadata::default();
        each_field(map, |key, map| {
            match key {
                "generateName" => metadata.generate_name = next_value::<_, Text>(map)?.into_owned(),
                "ownerReferences" => metadata.controller = next_value::<_, Controller>(map)?.0,
                _ => return Ok(false),
            }
            Ok(true)
        })?;
        Ok(metadata)
    }
}

impl<'de> Lenient<'de> for Controller {
    fn other() -> Self {
        Controller(None)
    }

    fn seq<A: SeqAccess<'de>>(mut seq: A) -> Result<Self, A::Error> {
        let mut controller = None;
        while let Some(Read(reference)) = seq.next_element::<Read<OwnerReference>>()? {
            if controller.is_none() && reference.controller {
                controller = reference.complete();
            }
        }
        Ok(Controller(controller))
    }
}

impl<'de> Lenient<'de> for OwnerReference {
    fn other() -> Self {
        OwnerReference::default()
    }

    fn map<A: MapAccess<'de>>(map: A) -> Result<Self, A::Error> {
        let mut reference = OwnerReference::default();
        let text = |map: &mut A| next_value::<_, Text>(map).map(Text::into_owned);
        each_field(map, |key, map| {
            match key {
                "apiVersion" => reference.api_version = text(map)?,
                "kind" => reference.kind = text(map)?,
                "name" => reference.name = text(map)?,
                "uid" => reference.uid = text(map)?,
                "controller" => reference.controller = next_value::<_, Flag>(map)?.0 == Some(true),
                _ => return Ok(false),
            }
            Ok(true)
        })?;
        Ok(reference)
    }
}

impl OwnerReference {
    /// The reference, when every field of it is a non-empty string.
    fn complete(self) -> Option<ControllerRef> {
        let field = |f: Option<String>| f.filter(|f| !f.is_empty());
        Some(ControllerRef {
            api_version: field(self.api_version)?,
            kind: field(self.kind)?,
            name: field(self.name)?,
            uid: field(self.uid)?,
        })
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
            generate_name: request.object.metadata.generate_name.unwrap_or_default(),
            controller: request.object.metadata.controller,
            object: request.object.object,
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

    /// Every container image of the object with the JSON pointer of its `image` field
    /// (RFC 6901), for a patch; empty when the request has no pod spec this webhook reads.
    pub fn image_fields(&self) -> Vec<(String, String)> {
        let (base, images) = match self.sub_resource.as_deref() {
            None => {
                let Some(path) = crate::workload::pod_spec_path(&self.kind) else {
                    return Vec::new();
                };
                let images = self.object.images_of(&self.kind).ok().flatten();
                (format!("/{}", path.join("/")), images.unwrap_or_default())
            }
            Some("ephemeralcontainers") => {
                let base = if self.object.has_spec() { "/spec" } else { "" };
                let images = self.object.spec_or_self().pod_spec_images().ok();
                (base.to_owned(), images.unwrap_or_default())
            }
            Some(_) => return Vec::new(),
        };
        images
            .into_iter()
            .map(|c| {
                let pointer = format!("{base}/{}/{}/image", c.list.field(), c.index);
                (pointer, c.image)
            })
            .collect()
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

/// An AdmissionResponse, in the shape of kube's `AdmissionResponse`: allowed or denied with
/// a message, warnings, and a JSON patch for a mutating webhook.
#[derive(Debug, Clone, Copy)]
pub struct Response<'a> {
    allowed: bool,
    message: Option<&'a str>,
    warnings: &'a [String],
    patch: Option<&'a [u8]>,
}

impl<'a> Response<'a> {
    /// Admitted.
    pub fn allow() -> Self {
        Response {
            allowed: true,
            message: None,
            warnings: &[],
            patch: None,
        }
    }

    /// Refused with `message`.
    pub fn deny(message: &'a str) -> Self {
        Response {
            allowed: false,
            message: Some(message),
            ..Response::allow()
        }
    }

    /// The response of a decision: its verdict, its denial and its warnings.
    pub fn of(decision: &'a Decision) -> Self {
        Response {
            allowed: decision.allowed,
            message: decision.message.as_deref(),
            warnings: &decision.warnings,
            patch: None,
        }
    }

    /// With these warnings, which `kubectl` prints as `Warning: <text>`.
    pub fn with_warnings(self, warnings: &'a [String]) -> Self {
        Response { warnings, ..self }
    }

    /// With a JSON patch (RFC 6902) of the object.
    pub fn with_patch(self, patch: &'a [u8]) -> Self {
        Response {
            patch: Some(patch),
            ..self
        }
    }

    /// The AdmissionReview body answering `request`, in its version: serialized straight
    /// from borrowed fields, with its keys in the order a JSON value's map writes them.
    pub fn to_body(&self, request: &Request) -> Vec<u8> {
        #[derive(Serialize)]
        struct Review<'a> {
            #[serde(rename = "apiVersion")]
            api_version: &'static str,
            kind: &'static str,
            response: Body<'a>,
        }

        #[derive(Serialize)]
        struct Body<'a> {
            allowed: bool,
            #[serde(skip_serializing_if = "Option::is_none")]
            patch: Option<String>,
            #[serde(rename = "patchType", skip_serializing_if = "Option::is_none")]
            patch_type: Option<&'static str>,
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

        // kubectl prints `Error from server (<reason>): <message>`; the original's users read
        // the denial in both places.
        let status = self.message.map(|message| Status {
            code: 403,
            message,
            reason: message,
            status: "Failure",
        });
        let patch = self
            .patch
            .map(|p| base64::engine::general_purpose::STANDARD.encode(p));
        let review = Review {
            api_version: request.version.as_str(),
            kind: "AdmissionReview",
            response: Body {
                allowed: self.allowed,
                patch_type: patch.as_ref().map(|_| "JSONPatch"),
                patch,
                status,
                uid: &request.uid,
                warnings: self.warnings,
            },
        };
        // Serializing borrowed strings and numbers into a Vec cannot fail.
        serde_json::to_vec(&review).unwrap_or_default()
    }
}

#[cfg(test)]
mod tests;
