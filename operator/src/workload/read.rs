//! The reading of an [`Object`]: each field a rule of [`super`] reads, as a JSON value would
//! read it ([`crate::lenient`]), in one pass and without building the object.

use std::borrow::Cow;

use serde::Deserialize;
use serde::de::{MapAccess, SeqAccess};
use serde_json::Value;

use super::{Container, Containers, ImageVolume, Object, Volumes};
use crate::lenient::{Lenient, Read, Text, each_field, next_value};

impl Object {
    /// The same reading of a JSON value already built (a manifest's document).
    pub fn from_value(value: &Value) -> Self {
        // Lenient reading has no error of its own, and a value is well-formed already; were
        // it to fail, an empty object has no pod spec, which is an error, never an admission.
        Read::<Object>::deserialize(value)
            .map(|Read(object)| object)
            .unwrap_or_default()
    }

    /// Reads an object's fields into a new level, offering each key first to `other`, a
    /// reader of the same object that keeps more fields (an admission request's `metadata`,
    /// say): it reads the value of a key it keeps and says so, as [`each_field`] expects.
    pub(crate) fn read_with<'de, A: MapAccess<'de>>(
        map: A,
        mut other: impl FnMut(&str, &mut A) -> Result<bool, A::Error>,
    ) -> Result<Object, A::Error> {
        let mut object = Object {
            is_object: true,
            ..Object::default()
        };
        each_field(map, |key, map| {
            Ok(other(key, map)? || object.read_field(key, map)?)
        })?;
        Ok(object)
    }

    /// Reads the value of `key` into this level when it is a field kept here, and says
    /// whether it did; `false` leaves the value to be read through.
    fn read_field<'de, A: MapAccess<'de>>(
        &mut self,
        key: &str,
        map: &mut A,
    ) -> Result<bool, A::Error> {
        let child = |map: &mut A| next_value::<_, Object>(map).map(Box::new).map(Some);
        match key {
            "containers" => self.containers = next_value(map)?,
            "initContainers" => self.init_containers = next_value(map)?,
            "ephemeralContainers" => self.ephemeral_containers = next_value(map)?,
            "volumes" => self.volumes = next_value(map)?,
            "imagePullSecrets" => self.pull_secrets = next_value::<_, PullSecrets>(map)?.0,
            "serviceAccountName" => {
                self.service_account_name = next_value::<_, Text>(map)?.into_owned();
            }
            "spec" => self.spec = child(map)?,
            "template" => self.template = child(map)?,
            "jobTemplate" => self.job_template = child(map)?,
            _ => return Ok(false),
        }
        Ok(true)
    }
}

impl<'de> Lenient<'de> for Object {
    fn other() -> Self {
        Object::default()
    }

    fn map<A: MapAccess<'de>>(map: A) -> Result<Self, A::Error> {
        Object::read_with(map, |_, _| Ok(false))
    }
}

impl<'de> Lenient<'de> for Containers {
    fn other() -> Self {
        Containers::NotAList
    }

    fn null() -> Self {
        Containers::Absent
    }

    fn seq<A: SeqAccess<'de>>(mut seq: A) -> Result<Self, A::Error> {
        let mut items = Vec::new();
        while let Some(Read(container)) = seq.next_element::<Read<Container>>()? {
            items.push(container);
        }
        Ok(Containers::Items(items))
    }
}

impl<'de> Lenient<'de> for Container {
    fn other() -> Self {
        Container::default()
    }

    fn map<A: MapAccess<'de>>(map: A) -> Result<Self, A::Error> {
        let mut container = Container::default();
        each_field(map, |key, map| {
            match key {
                "name" => container.name = next_value::<_, Text>(map)?.into_string(),
                "image" => {
                    let image = next_value::<_, Text>(map)?.0;
                    container.image = image.filter(|i| !i.is_empty()).map(Cow::into_owned);
                }
                _ => return Ok(false),
            }
            Ok(true)
        })?;
        Ok(container)
    }
}

impl<'de> Lenient<'de> for Volumes {
    fn other() -> Self {
        Volumes::NotAList
    }

    fn null() -> Self {
        Volumes::Absent
    }

    fn seq<A: SeqAccess<'de>>(mut seq: A) -> Result<Self, A::Error> {
        let mut items = Vec::new();
        let mut index = 0;
        while let Some(Read(Volume { name, image })) = seq.next_element::<Read<Volume>>()? {
            if let Some(VolumeImage(reference)) = image {
                items.push(ImageVolume {
                    index,
                    name,
                    reference,
                });
            }
            index += 1;
        }
        Ok(Volumes::Items(items))
    }
}

/// One item of `volumes`: its `name`, and its `image` unless missing or `null` (a volume of
/// another type).
#[derive(Default)]
struct Volume {
    name: String,
    image: Option<VolumeImage>,
}

/// A volume's `image`: its `reference` when a non-empty string. Anything but an object is
/// an image volume without one (an error for the caller), never a volume of another type:
/// what is not `null` there is read as the API server would pull it, or refused.
struct VolumeImage(Option<String>);

impl<'de> Lenient<'de> for Volume {
    fn other() -> Self {
        Volume::default()
    }

    fn map<A: MapAccess<'de>>(map: A) -> Result<Self, A::Error> {
        let mut volume = Volume::default();
        each_field(map, |key, map| {
            match key {
                "name" => volume.name = next_value::<_, Text>(map)?.into_string(),
                "image" => volume.image = next_value::<_, Option<VolumeImage>>(map)?,
                _ => return Ok(false),
            }
            Ok(true)
        })?;
        Ok(volume)
    }
}

impl<'de> Lenient<'de> for Option<VolumeImage> {
    fn other() -> Self {
        Some(VolumeImage(None))
    }

    fn null() -> Self {
        None
    }

    fn map<A: MapAccess<'de>>(map: A) -> Result<Self, A::Error> {
        let mut reference = None;
        each_field(map, |key, map| {
            if key != "reference" {
                return Ok(false);
            }
            let text = next_value::<_, Text>(map)?.0;
            reference = text.filter(|r| !r.is_empty()).map(Cow::into_owned);
            Ok(true)
        })?;
        Ok(Some(VolumeImage(reference)))
    }
}

/// The non-empty `name`s of a list of references (each read for its `name` as a container
/// is); empty for anything but a list.
struct PullSecrets(Vec<String>);

impl<'de> Lenient<'de> for PullSecrets {
    fn other() -> Self {
        PullSecrets(Vec::new())
    }

    fn seq<A: SeqAccess<'de>>(mut seq: A) -> Result<Self, A::Error> {
        let mut names = Vec::new();
        while let Some(Read(reference)) = seq.next_element::<Read<Container>>()? {
            if !reference.name.is_empty() {
                names.push(reference.name);
            }
        }
        Ok(PullSecrets(names))
    }
}
