//! Replays every committed corpus (`fuzz/corpus/<target>/`) and the input of every past
//! finding (`fuzz/regressions/<target>/`) through its target, as `make test` runs it: a
//! regression fails here, without libFuzzer.

// A test crate: it fails loudly by design.
#![allow(clippy::expect_used, clippy::panic)]

use std::path::{Path, PathBuf};

use image_policy_fuzzing::TARGETS;

/// The fuzz directory of the workspace.
fn fuzz_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("workspace")
        .join("fuzz")
}

/// The files of `dir`, sorted; none when it does not exist.
fn inputs(dir: &Path) -> Vec<PathBuf> {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return Vec::new();
    };
    let mut files: Vec<PathBuf> = entries
        .map(|e| e.expect("entry").path())
        .filter(|p| p.is_file())
        .collect();
    files.sort();
    files
}

/// Runs each target on each of its inputs in `kind` (corpus or regressions); how many.
/// Every input is run, and every one that fails is named.
fn replay(kind: &str) -> usize {
    let mut replayed = 0;
    let mut failed = Vec::new();
    for (name, target) in TARGETS {
        for file in inputs(&fuzz_dir().join(kind).join(name)) {
            let data = std::fs::read(&file).expect("read");
            if std::panic::catch_unwind(|| target(&data)).is_err() {
                failed.push(format!("{name}: {}", file.display()));
            }
            replayed += 1;
        }
    }
    assert!(failed.is_empty(), "failing inputs:\n{}", failed.join("\n"));
    replayed
}

#[test]
fn every_corpus_replays() {
    for (name, _) in TARGETS {
        assert!(
            !inputs(&fuzz_dir().join("corpus").join(name)).is_empty(),
            "{name} has no committed corpus"
        );
        assert!(
            fuzz_dir()
                .join("fuzz_targets")
                .join(format!("{name}.rs"))
                .is_file(),
            "{name} has no fuzz target"
        );
    }
    assert!(replay("corpus") > 0);
}

#[test]
fn every_past_finding_stays_fixed() {
    replay("regressions");
}
