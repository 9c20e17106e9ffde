//! libFuzzer's entry to `image_policy_fuzzing::manifest`: the body lives there, so that
//! `make test` replays this target's corpus without libFuzzer.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| image_policy_fuzzing::manifest::run(data));
