//! The YAML and JSON files of the commands (policy files, `-f` manifests) read as kubectl reads
//! them, within the limits of docs/contract.md §8.
//!
//! kubectl (`k8s.io/apimachinery`'s YAML-or-JSON decoder) reads a file whose first character
//! that is not a space is `{` as a stream of JSON values, and anything else as YAML documents,
//! each turned into JSON by sigs.k8s.io/yaml over go-yaml v2. What go-yaml v2 does and serde_yaml
//! does not is done here, as the documents are built:
//! - a merge key (`<<`) merges a mapping, or a sequence of mappings (the first of them wins
//!   over the later ones), into the mapping that holds it, in the order written: what it
//!   merges replaces the keys written before it, and keys written after it replace what it
//!   merged; a merged mapping's own merge keys are merged first. serde_yaml's `apply_merge`
//!   differs (keys written always win, a merged mapping's merge keys stay), so it is not used;
//! - a key written twice takes the last value, as go-yaml's non-strict decoding does;
//! - a number or boolean key is a string, as sigs.k8s.io/yaml writes it; a null, sequence or
//!   mapping key is refused, as it refuses them;
//! - a tag (`!x`) is read as the node it tags, as go-yaml reads a tag it does not know.
//!
//! serde_yaml cannot tell a quoted `"<<"` key from a plain one, which go-yaml does not merge:
//! both merge here, so a manifest is read with at least what kubectl creates from it.
//!
//! The limits, each enforced before the work it bounds:
//! - collections nest at most [`MAX_DEPTH`] deep: flow collections are counted by a linear pass
//!   before libyaml reads the text ([`depth`]), block nesting by serde_yaml's own recursion
//!   limit (also 128) as it reads; a JSON stream is read by serde_json up to its own limit
//!   (127 levels), and one nested deeper is read as the YAML it also is, up to 128;
//! - a YAML document expands to at most [`MAX_NODES`] values, every alias counting what it
//!   repeats (billion laughs), and follows at most 100 aliases per event it holds
//!   (serde_yaml's repetition limit). JSON has no aliases: its values are bounded by the size
//!   of the file.

mod depth;

use std::cell::Cell;
use std::fmt;

use serde::de::{self, DeserializeSeed, EnumAccess, MapAccess, SeqAccess, VariantAccess, Visitor};
use serde_yaml::{Mapping, Number, Value};

/// How deep collections may nest in a YAML or JSON file: serde_yaml's own recursion limit,
/// which the pass over flow collections applies before libyaml reads them.
pub const MAX_DEPTH: u32 = 128;

/// How many values (scalars, sequences, mappings, keys) a YAML document may expand to, its
/// aliases expanded.
pub const MAX_NODES: usize = 1_000_000;

/// Why a YAML or JSON file cannot be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum YamlError {
    /// Collections nest deeper than [`MAX_DEPTH`].
    #[error(
        "collections nest deeper than {MAX_DEPTH} levels, the limit of a YAML or JSON file \
         (at line {line}, column {column})"
    )]
    TooDeep {
        /// The 1-based line where the limit is passed.
        line: usize,
        /// The 1-based column where the limit is passed.
        column: usize,
    },
    /// A document expands to more than [`MAX_NODES`] values.
    #[error(
        "document {document} expands to more than {MAX_NODES} values with its aliases, the \
         limit of a YAML document"
    )]
    TooManyValues {
        /// The 1-based document.
        document: usize,
    },
    /// A document follows its aliases more than serde_yaml allows.
    #[error(
        "document {document} follows its aliases more than 100 times per event it holds, the \
         limit of aliases in a YAML document"
    )]
    TooManyAliases {
        /// The 1-based document.
        document: usize,
    },
    /// A document is not YAML, or not what kubectl reads.
    #[error("document {document}: {detail}")]
    Unreadable {
        /// The 1-based document.
        document: usize,
        /// What the parser said, with its position.
        detail: String,
    },
}

/// Every document of `text` (empty ones are `Null`), read as kubectl reads a file: a stream of
/// JSON values when it starts with `{` and is one, else YAML documents.
pub fn documents(text: &str) -> Result<Vec<Value>, YamlError> {
    if text.trim_start().starts_with('{') {
        let stream = serde_json::Deserializer::from_str(text).into_iter::<serde_json::Value>();
        if let Ok(values) = stream.collect::<Result<Vec<_>, _>>() {
            return Ok(values.iter().map(from_json).collect());
        }
    }
    depth::check(text.as_bytes(), MAX_DEPTH).map_err(|at| YamlError::TooDeep {
        line: at.line,
        column: at.column,
    })?;
    let mut out = Vec::new();
    for (n, document) in serde_yaml::Deserializer::from_str(text).enumerate() {
        let budget = Budget {
            left: Cell::new(MAX_NODES),
            spent: Cell::new(false),
        };
        let value = Node { budget: &budget }
            .deserialize(document)
            .map_err(|e| classify(&e, n + 1, &budget))?;
        out.push(value);
    }
    Ok(out)
}

/// A JSON value as a YAML one (keys are strings already).
fn from_json(value: &serde_json::Value) -> Value {
    serde_yaml::to_value(value).unwrap_or(Value::Null)
}

/// The [`YamlError`] of serde_yaml's `error` in document `document`.
fn classify(error: &serde_yaml::Error, document: usize, budget: &Budget) -> YamlError {
    let text = error.to_string();
    if budget.spent.get() {
        YamlError::TooManyValues { document }
    } else if text.starts_with("recursion limit exceeded") {
        let at = error.location();
        YamlError::TooDeep {
            line: at.as_ref().map_or(0, |l| l.line()),
            column: at.as_ref().map_or(0, |l| l.column()),
        }
    } else if text.starts_with("repetition limit exceeded") {
        YamlError::TooManyAliases { document }
    } else {
        YamlError::Unreadable {
            document,
            detail: text,
        }
    }
}

/// The values a document may still expand to.
struct Budget {
    left: Cell<usize>,
    /// Set when the budget ran out, so that the error serde_yaml wraps can be told.
    spent: Cell<bool>,
}

impl Budget {
    fn take<E: de::Error>(&self) -> Result<(), E> {
        match self.left.get().checked_sub(1) {
            Some(left) => {
                self.left.set(left);
                Ok(())
            }
            None => {
                self.spent.set(true);
                Err(E::custom("too many values"))
            }
        }
    }
}

/// Reads one node as go-yaml v2 and sigs.k8s.io/yaml would, within a [`Budget`].
#[derive(Clone, Copy)]
struct Node<'a> {
    budget: &'a Budget,
}

impl<'de> DeserializeSeed<'de> for Node<'_> {
    type Value = Value;

    fn deserialize<D: de::Deserializer<'de>>(self, deserializer: D) -> Result<Value, D::Error> {
        deserializer.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for Node<'_> {
    type Value = Value;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a YAML node")
    }

    fn visit_bool<E: de::Error>(self, v: bool) -> Result<Value, E> {
        self.budget.take()?;
        Ok(Value::Bool(v))
    }

    fn visit_i64<E: de::Error>(self, v: i64) -> Result<Value, E> {
        self.budget.take()?;
        Ok(Value::Number(v.into()))
    }

    fn visit_u64<E: de::Error>(self, v: u64) -> Result<Value, E> {
        self.budget.take()?;
        Ok(Value::Number(v.into()))
    }

    fn visit_i128<E: de::Error>(self, v: i128) -> Result<Value, E> {
        // Beyond 64 bits, as Go's JSON reads a number: a float.
        #[allow(clippy::cast_precision_loss)]
        self.visit_f64(v as f64)
    }

    fn visit_u128<E: de::Error>(self, v: u128) -> Result<Value, E> {
        #[allow(clippy::cast_precision_loss)]
        self.visit_f64(v as f64)
    }

    fn visit_f64<E: de::Error>(self, v: f64) -> Result<Value, E> {
        self.budget.take()?;
        Ok(Value::Number(Number::from(v)))
    }

    fn visit_str<E: de::Error>(self, v: &str) -> Result<Value, E> {
        self.visit_string(v.to_owned())
    }

    fn visit_string<E: de::Error>(self, v: String) -> Result<Value, E> {
        self.budget.take()?;
        Ok(Value::String(v))
    }

    fn visit_unit<E: de::Error>(self) -> Result<Value, E> {
        self.budget.take()?;
        Ok(Value::Null)
    }

    fn visit_none<E: de::Error>(self) -> Result<Value, E> {
        self.visit_unit()
    }

    fn visit_some<D: de::Deserializer<'de>>(self, deserializer: D) -> Result<Value, D::Error> {
        self.deserialize(deserializer)
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Value, A::Error> {
        self.budget.take()?;
        let mut out = Vec::new();
        while let Some(value) = seq.next_element_seed(self)? {
            out.push(value);
        }
        Ok(Value::Sequence(out))
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Value, A::Error> {
        self.budget.take()?;
        let mut out = Mapping::new();
        while let Some(key) = map.next_key_seed(Key {
            budget: self.budget,
        })? {
            let value = map.next_value_seed(self)?;
            if key == "<<" {
                merge(&mut out, value).map_err(de::Error::custom)?;
            } else {
                // A key written twice: the last value, its place the first.
                out.insert(Value::String(key), value);
            }
        }
        Ok(Value::Mapping(out))
    }

    fn visit_enum<A: EnumAccess<'de>>(self, data: A) -> Result<Value, A::Error> {
        // serde_yaml's shape of a tagged node: the tag, then the node.
        let (_, node): (de::IgnoredAny, _) = data.variant()?;
        node.newtype_variant_seed(self)
    }
}

/// Merges the value of a merge key into `out` as go-yaml v2 does: a mapping's keys replace
/// those already there; of a sequence of mappings, the first wins.
fn merge(out: &mut Mapping, value: Value) -> Result<(), &'static str> {
    const WANT: &str = "a merge key (<<) takes a mapping or a sequence of mappings";
    let mappings = match value {
        Value::Mapping(mapping) => vec![mapping],
        Value::Sequence(items) => {
            let mut mappings = items
                .into_iter()
                .map(|item| match item {
                    Value::Mapping(mapping) => Ok(mapping),
                    _ => Err(WANT),
                })
                .collect::<Result<Vec<_>, _>>()?;
            mappings.reverse();
            mappings
        }
        _ => return Err(WANT),
    };
    for (key, value) in mappings.into_iter().flatten() {
        out.insert(key, value);
    }
    Ok(())
}

/// Reads a mapping key as sigs.k8s.io/yaml writes it into JSON: a string, a number or boolean
/// as its text; nothing else.
#[derive(Clone, Copy)]
struct Key<'a> {
    budget: &'a Budget,
}

const KEY: &str = "a mapping key must be a string, a number or a boolean, as kubectl reads keys";

impl<'de> DeserializeSeed<'de> for Key<'_> {
    type Value = String;

    fn deserialize<D: de::Deserializer<'de>>(self, deserializer: D) -> Result<String, D::Error> {
        deserializer.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for Key<'_> {
    type Value = String;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(KEY)
    }

    fn visit_bool<E: de::Error>(self, v: bool) -> Result<String, E> {
        self.visit_string(v.to_string())
    }

    fn visit_i64<E: de::Error>(self, v: i64) -> Result<String, E> {
        self.visit_string(v.to_string())
    }

    fn visit_u64<E: de::Error>(self, v: u64) -> Result<String, E> {
        self.visit_string(v.to_string())
    }

    fn visit_f64<E: de::Error>(self, v: f64) -> Result<String, E> {
        self.visit_string(v.to_string())
    }

    fn visit_str<E: de::Error>(self, v: &str) -> Result<String, E> {
        self.visit_string(v.to_owned())
    }

    fn visit_string<E: de::Error>(self, v: String) -> Result<String, E> {
        self.budget.take()?;
        Ok(v)
    }

    fn visit_unit<E: de::Error>(self) -> Result<String, E> {
        Err(E::custom(KEY))
    }

    fn visit_seq<A: SeqAccess<'de>>(self, _: A) -> Result<String, A::Error> {
        Err(de::Error::custom(KEY))
    }

    fn visit_map<A: MapAccess<'de>>(self, _: A) -> Result<String, A::Error> {
        Err(de::Error::custom(KEY))
    }

    fn visit_enum<A: EnumAccess<'de>>(self, data: A) -> Result<String, A::Error> {
        let (_, node): (de::IgnoredAny, _) = data.variant()?;
        node.newtype_variant_seed(self)
    }
}

#[cfg(test)]
mod tests;
