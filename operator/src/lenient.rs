//! Reading the few values of a JSON body that decide, and skipping the rest unvisited.
//!
//! Admission reviews are decided by a handful of fields in a body that is mostly other things
//! (labels, annotations, `managedFields`, `status`, `userInfo`, the containers' ports and
//! mounts). A [`Lenient`] type takes from the JSON only the shape it expects and is its
//! "absent" value for anything else, exactly as `value.get(..).and_then(Value::as_str)` would
//! be, so that a field of the wrong type is never an error of its own. A key given twice
//! counts once, with its last value, as in a `Value`'s map.
//!
//! The body is read in place by a [`Reader`] (`reader.rs`), one token after another. All of
//! it must be UTF-8 and JSON in its grammar, nested no deeper than [`NESTING_LIMIT`]: a
//! truncated body, a missing or extra comma or colon, unbalanced brackets, a key that is not
//! a string, a control character or an unknown escape in a string, a malformed number or
//! literal, anything after the value is refused wherever it is. A string a field reads is
//! unescaped and must not hold a lone surrogate, as a `serde_json::Value` requires. What no
//! field reads is skipped without being decoded, so what only a `Value` refuses inside a value
//! it would build (a number beyond `f64`, a lone surrogate escape) is not looked for there
//! (docs/contract.md §2); no number is read as one (no field that decides is a number).
//!
//! Why a reader of our own where serde_json or sonic-rs would read through serde, measured
//! with callgrind on the 1.9 KB Pod review of `webhook_load` (`Request::parse`, instructions
//! per review): serde_json reading every value as before, 43.2k; serde_json skipping what no
//! field reads with `IgnoredAny`, 40.3k; the same with a borrowed `RawValue`, 41.9k; sonic-rs
//! 0.5 through the same serde types with `IgnoredAny`, 42.5k. Through serde, each key read
//! costs a visitor's round trip, and serde_json scans every string, skipped or not, eight
//! bytes at a time after a per-string setup that dominates short strings; sonic-rs's skip is
//! no cheaper on a body of short strings, and takes any four characters after `\u`. This
//! reader: 30.8k. None of them alone reaches the goal of the cost of a decision (#27), but
//! this one comes nearest, and the rest of the cost is ours (`webhook_load`).

mod reader;

use std::borrow::Cow;

pub use reader::{JsonError, Reader};

/// How deep arrays and objects may nest: as deep as serde_json reads a value, whose limit of
/// 128 is the first depth it refuses. Reading a level that is kept recurses, so a bound is
/// needed; skipping does not.
pub const NESTING_LIMIT: usize = 127;

/// A type read from any JSON value: what it expects, or its value for anything else. Whatever
/// it does not take, the reader skips.
pub trait Lenient<'a>: Sized {
    /// Whether a string here is read ([`Lenient::text`]); else it is skipped.
    const TEXT: bool = false;

    /// Any value of another type than expected, `null` included unless [`Lenient::null`]
    /// says otherwise.
    fn other() -> Self;

    /// `null`.
    fn null() -> Self {
        Self::other()
    }

    /// A string, when [`Lenient::TEXT`].
    fn text(_: Cow<'a, str>) -> Self {
        Self::other()
    }

    /// `true` or `false`.
    fn flag(_: bool) -> Self {
        Self::other()
    }

    /// An object, at the reader's next byte: read with [`Reader::object`].
    fn map(reader: &mut Reader<'a>) -> Result<Self, JsonError> {
        reader.skip()?;
        Ok(Self::other())
    }

    /// An array, at the reader's next byte: read with [`Reader::array`].
    fn seq(reader: &mut Reader<'a>) -> Result<Self, JsonError> {
        reader.skip()?;
        Ok(Self::other())
    }
}

/// The reader's next value, read as `T`.
pub fn read<'a, T: Lenient<'a>>(reader: &mut Reader<'a>) -> Result<T, JsonError> {
    match reader.peek()? {
        b'{' => T::map(reader),
        b'[' => T::seq(reader),
        b'"' if T::TEXT => reader.string().map(T::text),
        b't' | b'f' => reader.boolean().map(T::flag),
        b'n' => reader.null().map(|()| T::null()),
        _ => {
            reader.skip()?;
            Ok(T::other())
        }
    }
}

/// A whole body read as `T`: one value, then nothing but whitespace.
pub fn read_body<'a, T: Lenient<'a>>(body: &'a [u8]) -> Result<T, JsonError> {
    let mut reader = Reader::new(body)?;
    let value = read(&mut reader)?;
    reader.end()?;
    Ok(value)
}

/// A string, or `None` for anything else: `value.as_str()`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Text<'a>(pub Option<Cow<'a, str>>);

impl<'a> Lenient<'a> for Text<'a> {
    const TEXT: bool = true;

    fn other() -> Self {
        Text(None)
    }

    fn text(text: Cow<'a, str>) -> Self {
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

#[cfg(test)]
mod tests;
