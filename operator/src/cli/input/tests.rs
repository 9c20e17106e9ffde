use super::*;
use crate::cli::policy_file::tests::{dropped_secret_refs, repo_file};

/// The one document of `text`, as a policy file is read.
fn manifest(text: &str) -> serde_yaml::Value {
    let mut documents = yaml::documents(text).expect("yaml");
    assert_eq!(documents.len(), 1);
    documents.remove(0)
}

const DROPPED_WARNINGS: &str = "\
warning: p.yaml: spec.verification.keys[0].secretref: unknown field; the API server drops it
warning: p.yaml: spec.verification.images[0].secretref: unknown field (did you mean secretRef?); the API server drops it
";

#[test]
fn each_unknown_field_is_warned_of_with_its_path() {
    let mut warnings = String::new();
    let warn = |line: String| warnings.push_str(&(line + "\n"));
    screen_with(
        Path::new("p.yaml"),
        &manifest(&dropped_secret_refs()),
        false,
        warn,
    )
    .expect("only warned");
    assert_eq!(warnings, DROPPED_WARNINGS);
}

#[test]
fn strict_refuses_the_file_and_lists_every_unknown_field() {
    let mut warnings = Vec::new();
    let warn = |line| warnings.push(line);
    let error = screen_with(
        Path::new("p.yaml"),
        &manifest(&dropped_secret_refs()),
        true,
        warn,
    )
    .expect_err("refused");
    assert!(matches!(error, CliError::Strict(_)), "{error:?}");
    assert_eq!(
        error.to_string(),
        "\
p.yaml: --strict refuses fields that the CRD does not know, which the API server drops:
  spec.verification.keys[0].secretref: unknown field
  spec.verification.images[0].secretref: unknown field (did you mean secretRef?)"
    );
    assert!(warnings.is_empty(), "the error says it all");
}

#[test]
fn a_clean_policy_is_neither_warned_of_nor_refused() {
    let text = repo_file("tests/data/policies/seed-table.yaml");
    for strict in [false, true] {
        let mut warnings = Vec::new();
        screen_with(Path::new("p.yaml"), &manifest(&text), strict, |line| {
            warnings.push(line)
        })
        .expect("clean");
        assert!(warnings.is_empty(), "{warnings:?}");
    }
}

fn policy_args(text: &str, strict: bool) -> (tempfile::TempDir, PolicyArgs) {
    let dir = tempfile::tempdir().expect("dir");
    let file = dir.path().join("p.yaml");
    std::fs::write(&file, text).expect("write");
    let args = PolicyArgs { file, strict };
    (dir, args)
}

/// A policy file is read as kubectl reads it: the entries a merge key brings in are the
/// policy's (not unknown fields named `<<`), in YAML and in JSON.
#[test]
fn a_policy_file_is_read_with_its_merge_keys() {
    let text = repo_file("tests/data/policies/seed-table.yaml");
    let plain = read_policy(&policy_args(&text, true).1).expect("plain");
    let merged = text.replacen("spec:\n", "base: &spec\n", 1) + "spec:\n  <<: *spec\n";
    // `base`, which holds the anchor, is a field the CRD does not know: warned of.
    let read = read_policy(&policy_args(&merged, false).1).expect("merged");
    assert_eq!(read.spec, plain.spec);
    let json =
        serde_json::to_string(&serde_yaml::from_str::<serde_json::Value>(&text).unwrap()).unwrap();
    assert_eq!(
        read_policy(&policy_args(&json, true).1).expect("json").spec,
        plain.spec
    );
}

#[test]
fn a_policy_file_holds_one_document() {
    let text = repo_file("tests/data/policies/seed-table.yaml");
    for (file, expected) in [
        (String::new(), "the file holds no document"),
        ("---\n---\n".to_owned(), "the file holds no document"),
        (
            format!("{text}---\n{text}"),
            "the file holds 2 documents, and a policy file holds one",
        ),
    ] {
        let error = read_policy(&policy_args(&file, true).1).expect_err("refused");
        assert!(error.to_string().ends_with(expected), "{error}");
    }
}

#[test]
fn a_file_is_read_up_to_its_limit() {
    let dir = tempfile::tempdir().expect("dir");
    let file = dir.path().join("big");
    let limit = usize::try_from(MAX_FILE_BYTES).expect("limit");
    std::fs::write(&file, vec![b'a'; limit]).expect("write");
    assert_eq!(read_file(&file).expect("at the limit").len(), limit);
    std::fs::write(&file, vec![b'a'; limit + 1]).expect("write");
    let error = read_file(&file).expect_err("past the limit");
    assert!(
        error
            .to_string()
            .ends_with(": larger than 16 MiB, the limit of a file read"),
        "{error}"
    );
}
