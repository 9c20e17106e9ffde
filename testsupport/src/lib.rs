//! Shared by image-policy's tests, benches and end-to-end suite: a real OCI registry process
//! on 127.0.0.1 (TLS, optional basic auth, every request observable), helpers that push
//! images and cosign signatures, and the real producers and servers (cosign, Rekor v2, a
//! timestamp authority) built from Go modules.

// Test code: a failed setup step must stop the test with its reason; this crate is only ever
// a dev-dependency, outside the `#[test]` functions clippy.toml already covers.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

pub mod cosign;
pub mod local_sigstore;
pub mod producers;
pub mod registry;
pub mod sigstore_js;
pub mod stub;
pub mod tls;
