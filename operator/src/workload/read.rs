//! The reading of an [`Object`]: each field a rule of [`super`] reads, as a JSON value would
//! read it, in one pass, without building the object, the other fields skipped
//! ([`crate::lenient`]).

use std::borrow::Cow;

use serde_json::Value;

use super::{Container, Containers, ImageVolume, Object, Volumes};
use crate::lenient::{JsonError, Lenient, Reader, Text, read, read_body};

impl Object {
    /// The same reading of a JSON value already built (a manifest's document, a Pod's spec).
    pub fn from_value(value: &Value) -> Self {
        // A value written out is JSON, nested no deeper than serde_json reads; were it not,
        // an empty object has no pod spec, which is an error, never an admission.
        serde_json::to_vec(value)
            .ok()
            .and_then(|json| read_body(&json).ok())
            .unwrap_or_default()
    }

    /// Reads an object's fields into a new level, offering each key first to `other`, a
    /// reader of the same object that keeps more fields (an admission request's `metadata`,
    /// say): it reads the value of a key it keeps and says so, as [`Reader::object`] expects.
    pub(crate) fn read_with<'a>(
        reader: &mut Reader<'a>,
        mut other: impl FnMut(&[u8], &mut Reader<'a>) -> Result<bool, JsonError>,
    ) -> Result<Object, JsonError> {
        let mut object = Object {
            is_object: true,
            ..Object::default()
        };
        reader.object(|reader, key| Ok(other(key, reader)? || object.read_field(key, reader)?))?;
        Ok(object)
    }

    /// Reads the value of `key` into this level when it is a field kept here, and says
    /// whether it did; `false` leaves the value to be read through.
    fn read_field(&mut self, key: &[u8], reader: &mut Reader<'_>) -> Result<bool, JsonError> {
        let child = |reader: &mut Reader<'_>| read::<Object>(reader).map(Box::new).map(Some);
        match key {
            b"containers" => self.containers = read(reader)?,
            b"initContainers" => self.init_containers = read(reader)?,
            b"ephemeralContainers" => self.ephemeral_containers = read(reader)?,
            b"volumes" => self.volumes = read(reader)?,
            b"imagePullSecrets" => self.pull_secrets = read::<PullSecrets>(reader)?.0,
            b"serviceAccountName" => {
                self.service_account_name = read::<Text>(reader)?.into_owned();
            }
            b"spec" => self.spec = child(reader)?,
            b"template" => self.template = child(reader)?,
            b"jobTemplate" => self.job_template = child(reader)?,
            _ => return Ok(false),
        }
        Ok(true)
    }
}

impl<'a> Lenient<'a> for Object {
    fn other() -> Self {
        Object::default()
    }

    fn map(reader: &mut Reader<'a>) -> Result<Self, JsonError> {
        Object::read_with(reader, |_, _| Ok(false))
    }
}

impl<'a> Lenient<'a> for Containers {
    fn other() -> Self {
        Containers::NotAList
    }

    fn null() -> Self {
        Containers::Absent
    }

    fn seq(reader: &mut Reader<'a>) -> Result<Self, JsonError> {
        let mut items = Vec::new();
        reader.array(|reader| {
            items.push(read::<Container>(reader)?);
            Ok(())
        })?;
        Ok(Containers::Items(items))
    }
}

impl<'a> Lenient<'a> for Container {
    fn other() -> Self {
        Container::default()
    }

    fn map(reader: &mut Reader<'a>) -> Result<Self, JsonError> {
        let mut container = Container::default();
        reader.object(|reader, key| {
            match key {
                b"name" => container.name = read::<Text>(reader)?.into_string(),
                b"image" => {
                    let image = read::<Text>(reader)?.0;
                    container.image = image.filter(|i| !i.is_empty()).map(Cow::into_owned);
                }
                _ => return Ok(false),
            }
            Ok(true)
        })?;
        Ok(container)
    }
}

impl<'a> Lenient<'a> for Volumes {
    fn other() -> Self {
        Volumes::NotAList
    }

    fn null() -> Self {
        Volumes::Absent
    }

    fn seq(reader: &mut Reader<'a>) -> Result<Self, JsonError> {
        let mut items = Vec::new();
        let mut index = 0;
        reader.array(|reader| {
            let Volume { name, image } = read(reader)?;
            // Only an image volume's name is kept (owned): most volumes are of other types.
            if let Some(VolumeImage(reference)) = image {
                items.push(ImageVolume {
                    index,
                    name: name.into_owned(),
                    reference,
                });
            }
            index += 1;
            Ok(())
        })?;
        Ok(Volumes::Items(items))
    }
}

/// One item of `volumes`: its `name`, and its `image` unless missing or `null` (a volume of
/// another type).
#[derive(Default)]
struct Volume<'a> {
    name: Cow<'a, str>,
    image: Option<VolumeImage>,
}

/// A volume's `image`: its `reference` when a non-empty string. Anything but an object is
/// an image volume without one (an error for the caller), never a volume of another type:
/// what is not `null` there is read as the API server would pull it, or refused.
struct VolumeImage(Option<String>);

impl<'a> Lenient<'a> for Volume<'a> {
    fn other() -> Self {
        Volume::default()
    }

    fn map(reader: &mut Reader<'a>) -> Result<Self, JsonError> {
        let mut volume = Volume::default();
        reader.object(|reader, key| {
            match key {
                b"name" => volume.name = read::<Text>(reader)?.0.unwrap_or_default(),
                b"image" => volume.image = read::<Option<VolumeImage>>(reader)?,
                _ => return Ok(false),
            }
            Ok(true)
        })?;
        Ok(volume)
    }
}

impl<'a> Lenient<'a> for Option<VolumeImage> {
    fn other() -> Self {
        Some(VolumeImage(None))
    }

    fn null() -> Self {
        None
    }

    fn map(reader: &mut Reader<'a>) -> Result<Self, JsonError> {
        let mut reference = None;
        reader.object(|reader, key| {
            if key != b"reference" {
                return Ok(false);
            }
            let text = read::<Text>(reader)?.0;
            reference = text.filter(|r| !r.is_empty()).map(Cow::into_owned);
            Ok(true)
        })?;
        Ok(Some(VolumeImage(reference)))
    }
}

/// The non-empty `name`s of a list of references (each read for its `name` as a container
/// is); empty for anything but a list.
struct PullSecrets(Vec<String>);

impl<'a> Lenient<'a> for PullSecrets {
    fn other() -> Self {
        PullSecrets(Vec::new())
    }

    fn seq(reader: &mut Reader<'a>) -> Result<Self, JsonError> {
        let mut names = Vec::new();
        reader.array(|reader| {
            let reference = read::<Container>(reader)?;
            if !reference.name.is_empty() {
                names.push(reference.name);
            }
            Ok(())
        })?;
        Ok(PullSecrets(names))
    }
}
