//! image-policy: a Kubernetes operator that admits a container image only when a trusted key
//! has signed it with cosign.
//!
//! [`policy`] is the pure engine (references, patterns, keys, compiled snapshots);
//! [`verify`] checks cosign signatures in registries; [`decide`] turns both into SPEC §2's
//! decisions and words; [`workload`] finds the images of Pods and workloads; [`cli`] and
//! [`check`] are the command line on top.

pub mod certs;
pub mod check;
pub mod cli;
pub mod controller;
pub mod decide;
pub mod lenient;
pub mod policy;
pub mod run;
pub mod telemetry;
pub mod verify;
pub mod webhook;
pub mod workload;
