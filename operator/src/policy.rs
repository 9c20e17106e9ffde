//! The policy engine: pure functions from a `ClusterImagePolicy` to decisions about names.
//!
//! Nothing here does I/O. [`reference`](mod@reference) parses image references, [`hosts`] knows
//! which registry names are one registry, [`pattern`] matches `namePattern`s against every spelling
//! of an image, [`keys`] turns PEM into verifiers, [`snapshot`] compiles a whole policy into the
//! immutable [`Snapshot`] that every admission request reads, and [`state`] is what the controller
//! publishes of it. At the bottom, importing nothing from the others, [`problem`] is what compiling
//! a field can report and [`dns`] the names Kubernetes gives its objects.

pub mod attestation;
pub mod condition;
pub mod dns;
pub mod hosts;
pub mod identity;
pub mod keys;
pub mod pattern;
pub mod problem;
pub mod reference;
pub mod signer;
pub mod snapshot;
pub mod state;
pub mod trust;

pub use attestation::{Need, Requirement};
pub use identity::{Identity, Matcher};
pub use keys::{KeyAlgorithm, KeyError, PublicKey};
pub use pattern::{ImageName, NamePattern, PatternError};
pub use problem::{Problem, Problems};
pub use reference::{Reference, ReferenceError};
pub use signer::{NamedKey, Signer};
pub use snapshot::{Entry, SharedSnapshot, Snapshot, Version};
pub use state::{PolicyState, Publisher, Rejected};
pub use trust::{DEFAULT_DOCUMENT_KEY, Documents, Transparency, TrustRoot};
