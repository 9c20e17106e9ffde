//! The readers of an AdmissionReview body: one pass over it that keeps the fields that decide
//! (see [`super::Request`]), each read as a JSON value would read it, the rest skipped
//! ([`crate::lenient`]). The object's pod spec is read by [`Object`]. Its `metadata`, what an
//! Event names, is read in a second pass of its own ([`InReview`]), only for a decision whose
//! Events are recorded.

use std::borrow::Cow;

use super::{ControllerRef, Metadata};
use crate::lenient::{Flag, JsonError, Lenient, Reader, Text, read};
use crate::workload::Object;

/// The envelope: `{"apiVersion", "kind", "request"}`.
#[derive(Default)]
pub(super) struct Review<'a> {
    pub(super) is_object: bool,
    pub(super) api_version: Option<Cow<'a, str>>,
    pub(super) kind: Option<Cow<'a, str>>,
    pub(super) request: Fields<'a>,
}

/// `request`'s fields.
#[derive(Default)]
pub(super) struct Fields<'a> {
    pub(super) is_object: bool,
    pub(super) uid: Option<Cow<'a, str>>,
    /// `kind.kind`.
    pub(super) kind: Option<Cow<'a, str>>,
    pub(super) sub_resource: Option<Cow<'a, str>>,
    pub(super) operation: Option<Cow<'a, str>>,
    pub(super) namespace: Option<Cow<'a, str>>,
    pub(super) name: Option<Cow<'a, str>>,
    pub(super) dry_run: Option<bool>,
    pub(super) object: Object,
    /// `None` when missing or `null`.
    pub(super) old_object: Option<Object>,
}

/// `request.object.metadata` of a review: [`Metadata`], the rest of the body skipped.
pub(super) struct InReview(pub(super) Metadata);

/// `object.metadata` of `request`.
struct InRequest(Metadata);

/// `metadata` of `object`.
struct InObject(Metadata);

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
struct KindOf<'a>(Option<Cow<'a, str>>);

/// `request.oldObject`: `None` when `null`.
struct OldObject(Option<Object>);

impl<'a> Lenient<'a> for Review<'a> {
    fn other() -> Self {
        Review::default()
    }

    fn map(reader: &mut Reader<'a>) -> Result<Self, JsonError> {
        let mut review = Review {
            is_object: true,
            ..Review::default()
        };
        reader.object(|reader, key| {
            match key {
                b"apiVersion" => review.api_version = read::<Text>(reader)?.0,
                b"kind" => review.kind = read::<Text>(reader)?.0,
                b"request" => review.request = read(reader)?,
                _ => return Ok(false),
            }
            Ok(true)
        })?;
        Ok(review)
    }
}

impl<'a> Lenient<'a> for Fields<'a> {
    fn other() -> Self {
        Fields::default()
    }

    fn map(reader: &mut Reader<'a>) -> Result<Self, JsonError> {
        let mut fields = Fields {
            is_object: true,
            ..Fields::default()
        };
        let text = |reader: &mut Reader<'a>| read::<Text<'a>>(reader).map(|t| t.0);
        reader.object(|reader, key| {
            match key {
                b"uid" => fields.uid = text(reader)?,
                b"kind" => fields.kind = read::<KindOf>(reader)?.0,
                b"subResource" => fields.sub_resource = text(reader)?,
                b"operation" => fields.operation = text(reader)?,
                b"namespace" => fields.namespace = text(reader)?,
                b"name" => fields.name = text(reader)?,
                b"dryRun" => fields.dry_run = read::<Flag>(reader)?.0,
                b"object" => fields.object = read(reader)?,
                b"oldObject" => fields.old_object = read::<OldObject>(reader)?.0,
                _ => return Ok(false),
            }
            Ok(true)
        })?;
        Ok(fields)
    }
}

impl<'a> Lenient<'a> for InReview {
    fn other() -> Self {
        InReview(Metadata::default())
    }

    fn map(reader: &mut Reader<'a>) -> Result<Self, JsonError> {
        only::<InRequest>(reader, b"request").map(|InRequest(m)| InReview(m))
    }
}

impl<'a> Lenient<'a> for InRequest {
    fn other() -> Self {
        InRequest(Metadata::default())
    }

    fn map(reader: &mut Reader<'a>) -> Result<Self, JsonError> {
        only::<InObject>(reader, b"object").map(|InObject(m)| InRequest(m))
    }
}

impl<'a> Lenient<'a> for InObject {
    fn other() -> Self {
        InObject(Metadata::default())
    }

    fn map(reader: &mut Reader<'a>) -> Result<Self, JsonError> {
        only::<Metadata>(reader, b"metadata").map(InObject)
    }
}

/// The value of the key `name` in the object at the reader, read as `T` (the last one, as in
/// a JSON value's map); `T::other()` when it has none. Every other value is skipped.
fn only<'a, T: Lenient<'a>>(reader: &mut Reader<'a>, name: &[u8]) -> Result<T, JsonError> {
    let mut found = T::other();
    reader.object(|reader, key| {
        if key != name {
            return Ok(false);
        }
        found = read(reader)?;
        Ok(true)
    })?;
    Ok(found)
}

impl<'a> Lenient<'a> for Metadata {
    fn other() -> Self {
        Metadata::default()
    }

    fn map(reader: &mut Reader<'a>) -> Result<Self, JsonError> {
        let mut metadata = Metadata::default();
        reader.object(|reader, key| {
            match key {
                b"generateName" => metadata.generate_name = read::<Text>(reader)?.into_string(),
                b"ownerReferences" => metadata.controller = read::<Controller>(reader)?.0,
                _ => return Ok(false),
            }
            Ok(true)
        })?;
        Ok(metadata)
    }
}

impl<'a> Lenient<'a> for Controller {
    fn other() -> Self {
        Controller(None)
    }

    fn seq(reader: &mut Reader<'a>) -> Result<Self, JsonError> {
        let mut controller = None;
        reader.array(|reader| {
            let reference = read::<OwnerReference>(reader)?;
            if controller.is_none() && reference.controller {
                controller = reference.complete();
            }
            Ok(())
        })?;
        Ok(Controller(controller))
    }
}

impl<'a> Lenient<'a> for OwnerReference {
    fn other() -> Self {
        OwnerReference::default()
    }

    fn map(reader: &mut Reader<'a>) -> Result<Self, JsonError> {
        let mut reference = OwnerReference::default();
        let text = |reader: &mut Reader<'a>| read::<Text>(reader).map(Text::into_owned);
        reader.object(|reader, key| {
            match key {
                b"apiVersion" => reference.api_version = text(reader)?,
                b"kind" => reference.kind = text(reader)?,
                b"name" => reference.name = text(reader)?,
                b"uid" => reference.uid = text(reader)?,
                b"controller" => reference.controller = read::<Flag>(reader)?.0 == Some(true),
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

impl<'a> Lenient<'a> for KindOf<'a> {
    fn other() -> Self {
        KindOf(None)
    }

    fn map(reader: &mut Reader<'a>) -> Result<Self, JsonError> {
        let mut kind = None;
        reader.object(|reader, key| {
            if key != b"kind" {
                return Ok(false);
            }
            kind = read::<Text>(reader)?.0;
            Ok(true)
        })?;
        Ok(KindOf(kind))
    }
}

impl<'a> Lenient<'a> for OldObject {
    fn other() -> Self {
        OldObject(Some(Object::default()))
    }

    fn null() -> Self {
        OldObject(None)
    }

    fn map(reader: &mut Reader<'a>) -> Result<Self, JsonError> {
        Object::map(reader).map(|object| OldObject(Some(object)))
    }
}
