//! image-policy: a Kubernetes operator that admits a container image only when a trusted key
//! has signed it.
//!
//! [`policy`] is the pure engine (references, patterns, keys, compiled snapshots and the
//! state that is enforced); [`verify`] finds and checks signatures in registries;
//! [`webhook`] turns both into decisions and words (docs/contract.md §2); [`workload`] finds
//! the images of Pods and workloads; [`controller`] publishes the policy and writes its
//! status; [`audit`] checks what already runs; [`certs`] issues the webhook's own
//! certificate; [`server`] and [`telemetry`] are the infrastructure; [`cli`] is the command
//! line on top, every subcommand in it. `docs/architecture.md` maps the folders.

pub mod audit;
pub mod certs;
pub mod cli;
pub mod controller;
pub mod duration;
pub mod lenient;
pub mod policy;
pub mod server;
pub mod telemetry;
pub mod verify;
pub mod webhook;
pub mod workload;
