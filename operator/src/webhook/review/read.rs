//! The readers of an AdmissionReview body: one pass over it that keeps the fields that decide
//! (see [`super::Request`]), each read as a JSON value would read it ([`crate::lenient`]).
//! The object's pod spec is read by [`Object`]; its `metadata` for what an Event names.

use std::borrow::Cow;

use serde::de::{MapAccess, SeqAccess};

use super::ControllerRef;
use crate::lenient::{Flag, Lenient, Read, Text, each_field, next_value};
use crate::workload::Object;

/// The envelope: `{"apiVersion", "kind", "request"}`.
#[derive(Default)]
pub(super) struct Review<'de> {
    pub(super) is_object: bool,
    pub(super) api_version: Option<Cow<'de, str>>,
    pub(super) kind: Option<Cow<'de, str>>,
    pub(super) request: Fields<'de>,
}

/// `request`'s fields.
#[derive(Default)]
pub(super) struct Fields<'de> {
    pub(super) is_object: bool,
    pub(super) uid: Option<Cow<'de, str>>,
    /// `kind.kind`.
    pub(super) kind: Option<Cow<'de, str>>,
    pub(super) sub_resource: Option<Cow<'de, str>>,
    pub(super) operation: Option<Cow<'de, str>>,
    pub(super) namespace: Option<Cow<'de, str>>,
    pub(super) name: Option<Cow<'de, str>>,
    pub(super) dry_run: Option<bool>,
    pub(super) object: Subject,
    /// `None` when missing or `null`.
    pub(super) old_object: Option<Object>,
}

/// `request.object`: what decides in it, and what an Event names from its `metadata`.
#[derive(Default)]
pub(super) struct Subject {
    pub(super) object: Object,
    pub(super) metadata: Metadata,
}

/// `metadata`'s `generateName` and controller.
#[derive(Default)]
pub(super) struct Metadata {
    pub(super) generate_name: Option<String>,
    pub(super) controller: Option<ControllerRef>,
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
        let mut metadata = Metadata::default();
        let object = Object::read_with(map, |key, map| {
            if key != "metadata" {
                return Ok(false);
            }
            metadata = next_value(map)?;
            Ok(true)
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
