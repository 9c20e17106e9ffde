//! Reading JSON as a [`serde_json::Value`] would be read, without building one.
//!
//! Admission reviews are decided by a handful of fields in a body that is mostly object. A
//! [`Lenient`] type takes from the JSON only the shape it expects and is its "absent" value
//! for anything else, exactly as `value.get(..).and_then(Value::as_str)` would be, so that a
//! field of the wrong type is never an error of its own. Everything else is still read
//! through (not skipped over): the same bodies are well-formed JSON as for `Value`, with the
//! same errors for bad escapes, invalid UTF-8, numbers out of range or nesting too deep. A key
//! given twice counts once, with its last value, as in a `Value`'s map.

use std::borrow::Cow;
use std::fmt;
use std::marker::PhantomData;

use serde::de::{self, Deserialize, Deserializer, MapAccess, SeqAccess, Visitor};

/// A type read from any JSON value: what it expects, or its value for anything else. Whatever
/// it does not take, it reads through with [`skip_map`] and [`skip_seq`].
pub trait Lenient<'de>: Sized {
    /// Any value of another type than expected, `null` included unless [`Lenient::null`]
    /// says otherwise.
    fn other() -> Self;

    /// `null`.
    fn null() -> Self {
        Self::other()
    }

    /// A string.
    fn text(_: Cow<'de, str>) -> Self {
        Self::other()
    }

    /// `true` or `false`.
    fn flag(_: bool) -> Self {
        Self::other()
    }

    /// An object, read entry by entry.
    fn map<A: MapAccess<'de>>(map: A) -> Result<Self, A::Error> {
        skip_map(map)?;
        Ok(Self::other())
    }

    /// An array, read item by item.
    fn seq<A: SeqAccess<'de>>(seq: A) -> Result<Self, A::Error> {
        skip_seq(seq)?;
        Ok(Self::other())
    }
}

/// A [`Lenient`] value as a `Deserialize` one: `Read::<T>::deserialize(..)?.0`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Read<T>(pub T);

impl<'de, T: Lenient<'de>> Deserialize<'de> for Read<T> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer
            .deserialize_any(LenientVisitor(PhantomData))
            .map(Read)
    }
}

struct LenientVisitor<T>(PhantomData<T>);

impl<'de, T: Lenient<'de>> Visitor<'de> for LenientVisitor<T> {
    type Value = T;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("any JSON value")
    }

    fn visit_bool<E: de::Error>(self, v: bool) -> Result<T, E> {
        Ok(T::flag(v))
    }

    fn visit_i64<E: de::Error>(self, _: i64) -> Result<T, E> {
        Ok(T::other())
    }

    fn visit_u64<E: de::Error>(self, _: u64) -> Result<T, E> {
        Ok(T::other())
    }

    fn visit_f64<E: de::Error>(self, _: f64) -> Result<T, E> {
        Ok(T::other())
    }

    fn visit_borrowed_str<E: de::Error>(self, v: &'de str) -> Result<T, E> {
        Ok(T::text(Cow::Borrowed(v)))
    }

    fn visit_str<E: de::Error>(self, v: &str) -> Result<T, E> {
        Ok(T::text(Cow::Owned(v.to_owned())))
    }

    fn visit_string<E: de::Error>(self, v: String) -> Result<T, E> {
        Ok(T::text(Cow::Owned(v)))
    }

    fn visit_bytes<E: de::Error>(self, _: &[u8]) -> Result<T, E> {
        Ok(T::other())
    }

    fn visit_unit<E: de::Error>(self) -> Result<T, E> {
        Ok(T::null())
    }

    fn visit_none<E: de::Error>(self) -> Result<T, E> {
        Ok(T::null())
    }

    fn visit_some<D: Deserializer<'de>>(self, deserializer: D) -> Result<T, D::Error> {
        Read::deserialize(deserializer).map(|Read(v)| v)
    }

    fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<T, A::Error> {
        T::map(map)
    }

    fn visit_seq<A: SeqAccess<'de>>(self, seq: A) -> Result<T, A::Error> {
        T::seq(seq)
    }
}

/// Any value, read through and dropped.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Skip;

impl Lenient<'_> for Skip {
    fn other() -> Self {
        Skip
    }
}

/// Reads the rest of an object through.
pub fn skip_map<'de, A: MapAccess<'de>>(mut map: A) -> Result<(), A::Error> {
    while map.next_entry::<Read<Skip>, Read<Skip>>()?.is_some() {}
    Ok(())
}

/// Reads the rest of an array through.
pub fn skip_seq<'de, A: SeqAccess<'de>>(mut seq: A) -> Result<(), A::Error> {
    while seq.next_element::<Read<Skip>>()?.is_some() {}
    Ok(())
}

/// A string, or `None` for anything else: `value.as_str()`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Text<'de>(pub Option<Cow<'de, str>>);

impl<'de> Lenient<'de> for Text<'de> {
    fn other() -> Self {
        Text(None)
    }

    fn text(text: Cow<'de, str>) -> Self {
        Text(Some(text))
    }
}

impl Text<'_> {
    /// The string owned, or empty: `value.as_str().unwrap_or_default().to_owned()`.
    pub fn into_string(self) -> String {
        self.0.map(Cow::into_owned).unwrap_or_default()
    }

    /// The string owned, if it was one.
    pub fn into_owned(self) -> Option<String> {
        self.0.map(Cow::into_owned)
    }
}

/// A boolean, or `None` for anything else: `value.as_bool()`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Flag(pub Option<bool>);

impl Lenient<'_> for Flag {
    fn other() -> Self {
        Flag(None)
    }

    fn flag(flag: bool) -> Self {
        Flag(Some(flag))
    }
}

/// Reads an object's entries: `field(key, map)` reads the value of a key it knows and
/// returns `true`, or returns `false` for the value to be read through. Keys come unescaped.
pub fn each_field<'de, A: MapAccess<'de>>(
    mut map: A,
    mut field: impl FnMut(&str, &mut A) -> Result<bool, A::Error>,
) -> Result<(), A::Error> {
    // Keys are strings in JSON; anything else would be a key no field is named.
    while let Some(Read(Text(key))) = map.next_key::<Read<Text<'de>>>()? {
        if !field(key.as_deref().unwrap_or_default(), &mut map)? {
            map.next_value::<Read<Skip>>()?;
        }
    }
    Ok(())
}

/// The next value of an object, read as `T`.
pub fn next_value<'de, A: MapAccess<'de>, T: Lenient<'de>>(map: &mut A) -> Result<T, A::Error> {
    map.next_value::<Read<T>>().map(|Read(v)| v)
}

#[cfg(test)]
mod tests {
    use serde_json::Value;

    use super::*;

    /// A string field `a` and a bool field `b` of an object, as `Value` reads them.
    #[derive(Debug, PartialEq, Eq)]
    struct Ab {
        a: Option<String>,
        b: Option<bool>,
    }

    impl<'de> Lenient<'de> for Ab {
        fn other() -> Self {
            Ab { a: None, b: None }
        }

        fn map<A: MapAccess<'de>>(map: A) -> Result<Self, A::Error> {
            let mut out = Ab::other();
            each_field(map, |key, map| {
                match key {
                    "a" => out.a = next_value::<_, Text>(map)?.into_owned(),
                    "b" => out.b = next_value::<_, Flag>(map)?.0,
                    _ => return Ok(false),
                }
                Ok(true)
            })?;
            Ok(out)
        }
    }

    fn by_value(json: &str) -> serde_json::Result<Ab> {
        let value: Value = serde_json::from_str(json)?;
        Ok(Ab {
            a: value.get("a").and_then(Value::as_str).map(str::to_owned),
            b: value.get("b").and_then(Value::as_bool),
        })
    }

    fn lenient(json: &str) -> serde_json::Result<Ab> {
        serde_json::from_str::<Read<Ab>>(json).map(|Read(ab)| ab)
    }

    #[test]
    fn reads_as_a_value_does() {
        let deep = format!("{{\"x\": {}{}}}", "[".repeat(130), "]".repeat(130));
        for json in [
            r#"{"a": "x", "b": true}"#,
            r#"{"a": 5, "b": "true"}"#,
            r#"{"a": "x", "a": null, "b": false, "b": true}"#,
            r#"{"a": null, "a": "last"}"#,
            r#"{"\u0061": "escaped key", "z": {"a": "nested, not ours"}}"#,
            r#"{"a": "\ud83d\ude00", "n": [1, -2, 3.5e10, 123456789012345678901234567890]}"#,
            r#"[{"a": "x"}]"#,
            r#""a""#,
            "null",
            // Errors, with the same message as for a Value.
            r#"{"a": "x", "n": 1e400}"#,
            r#"{"a": "x", "s": "\ud800"}"#,
            r#"{"a": "x", "s": "\q"}"#,
            r#"{"a": "x"} trailing"#,
            r#"{"a": "x", }"#,
            &deep,
        ] {
            // The errors compared by their message, the part a user reads.
            assert_eq!(
                lenient(json).map_err(|e| e.to_string()),
                by_value(json).map_err(|e| e.to_string()),
                "{json}"
            );
        }
        let invalid_utf8 = b"{\"a\": \"x\", \"s\": \"\xff\"}";
        assert_eq!(
            serde_json::from_slice::<Read<Ab>>(invalid_utf8)
                .map_err(|e| e.to_string())
                .map(|Read(ab)| ab),
            serde_json::from_slice::<Value>(invalid_utf8)
                .map_err(|e| e.to_string())
                .map(|_| Ab::other())
        );
    }
}
