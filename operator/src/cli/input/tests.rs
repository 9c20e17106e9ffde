use super::*;
use crate::cli::policy_file::tests::{dropped_secret_refs, repo_file};

const DROPPED_WARNINGS: &str = "\
warning: p.yaml: spec.verification.keys[0].secretref: unknown field; the API server drops it
warning: p.yaml: spec.verification.images[0].secretref: unknown field (did you mean secretRef?); the API server drops it
";

#[test]
fn each_unknown_field_is_warned_of_with_its_path() {
    let mut warnings = String::new();
    let warn = |line: String| warnings.push_str(&(line + "\n"));
    screen_with(Path::new("p.yaml"), &dropped_secret_refs(), false, warn).expect("only warned");
    assert_eq!(warnings, DROPPED_WARNINGS);
}

#[test]
fn strict_refuses_the_file_and_lists_every_unknown_field() {
    let mut warnings = Vec::new();
    let warn = |line| warnings.push(line);
    let error =
        screen_with(Path::new("p.yaml"), &dropped_secret_refs(), true, warn).expect_err("refused");
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
        screen_with(Path::new("p.yaml"), &text, strict, |line| {
            warnings.push(line)
        })
        .expect("clean");
        assert!(warnings.is_empty(), "{warnings:?}");
    }
}
