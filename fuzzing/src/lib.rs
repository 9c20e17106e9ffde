//! The bodies of image-policy's fuzz targets, as ordinary code.
//!
//! Each target is a function of a byte string that returns when the input is handled as the
//! product must handle it, and panics when a property fails: a panic, a wrong answer, or two
//! readings of one input that disagree. libFuzzer runs them through the cargo-fuzz project in
//! `fuzz/` (`make fuzz`), which adds nothing but `fuzz_target!`; this crate's tests replay the
//! committed corpora (`fuzz/corpus/<target>/`) and the inputs of past findings
//! (`fuzz/regressions/<target>/`) through the same functions in `make test`, without
//! libFuzzer or a nightly flag.
//!
//! Inputs made of several parts separate them with a NUL byte (see [`parts`]), which none of
//! the formats read here can hold, so that a seed stays readable and a mutation can move a
//! boundary.

// A failed property is a panic, by design: it is how libFuzzer and the replay learn of it.
#![allow(clippy::panic)]

pub mod bundle;
pub mod docker_config;
pub mod exchange;
pub mod identity;
pub mod manifest;
pub mod names;
pub mod policy;
pub mod registry;
pub mod review;

mod edits;

/// The body of a target.
pub type Target = fn(&[u8]);

/// Every target, by the name of its corpus directory under `fuzz/corpus/` and of its
/// `fuzz/fuzz_targets/<name>.rs`.
pub const TARGETS: [(&str, Target); 9] = [
    ("review", review::run),
    ("names", names::run),
    ("policy", policy::run),
    ("identity", identity::run),
    ("registry", registry::run),
    ("exchange", exchange::run),
    ("bundle", bundle::run),
    ("docker_config", docker_config::run),
    ("manifest", manifest::run),
];

/// The NUL-separated parts of an input, as text (invalid UTF-8 replaced: every reader here
/// takes text, and a replacement character is as hostile a character as any).
pub fn parts(data: &[u8]) -> Vec<String> {
    data.split(|b| *b == 0)
        .map(|part| String::from_utf8_lossy(part).into_owned())
        .collect()
}

/// The first byte of an input, to choose a mode, and the rest.
pub fn mode(data: &[u8]) -> (u8, &[u8]) {
    match data.split_first() {
        Some((first, rest)) => (*first, rest),
        None => (0, data),
    }
}
