//! The policy engine: pure functions from a `ClusterImagePolicy` to decisions about names.
//!
//! Nothing here does I/O. [`reference`] parses image references, [`pattern`] matches
//! `namePattern`s against every spelling of an image, [`keys`] turns PEM into verifiers,
//! and [`snapshot`] compiles a whole policy into the immutable [`Snapshot`] that every
//! admission request reads.

pub mod keys;
pub mod pattern;
pub mod reference;
pub mod snapshot;

pub use keys::{KeyAlgorithm, KeyError, PublicKey};
pub use pattern::{ImageName, NamePattern, PatternError};
pub use reference::{Reference, ReferenceError};
pub use snapshot::{Entry, NamedKey, Problem, Problems, SharedSnapshot, Snapshot};
