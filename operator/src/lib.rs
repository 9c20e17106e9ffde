//! image-policy: a Kubernetes operator that admits a container image only when a trusted key
//! has signed it with cosign.
//!
//! [`policy`] is the pure engine (references, patterns, keys, compiled snapshots); [`cli`]
//! is the command line on top of it.

pub mod cli;
pub mod policy;
