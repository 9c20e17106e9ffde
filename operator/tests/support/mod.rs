//! Shared by the integration tests: a real OCI registry process on 127.0.0.1 (TLS, optional
//! basic auth, every request observable) and helpers that push images and cosign signatures.
//!
//! Each test file that needs it says `mod support;`.

// Test code: a failed setup step must stop the test with its reason, and this module is
// compiled into test crates only, outside the `#[test]` functions clippy.toml already covers.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]
// Each test crate uses a different part of the harness.
#![allow(dead_code)]

pub mod cosign;
pub mod registry;
pub mod tls;
