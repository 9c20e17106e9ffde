use std::path::{Path, PathBuf};
use std::process::ExitCode;

use super::policy_file::tests::{dropped_secret_refs, repo_file};
use super::*;

fn data(path: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/data")
        .join(path)
}

fn run(args: &[&str]) -> (Result<(), CliError>, String) {
    let cli = Cli::try_parse_from(std::iter::once("image-policy").chain(args.iter().copied()))
        .expect("args");
    let mut out = Vec::new();
    let result = match cli.command {
        Command::Crd => crd::run(&mut out),
        Command::Match(a) => matching::run(&a, &mut out),
        Command::Check(_) | Command::Audit(_) | Command::VerifyBundle(_) | Command::Run(_) => {
            unreachable!("tested on their own")
        }
    };
    (result, String::from_utf8(out).expect("utf8"))
}

/// What `match --policy tests/data/policies/<file> <flags> <images>` prints; it must answer.
fn matched(file: &str, flags: &[&str], images: &[&str]) -> String {
    let policy = data(&format!("policies/{file}"));
    let policy = policy.to_str().expect("path");
    let (result, out) = run(&[&["match", "--policy", policy][..], flags, images].concat());
    result.expect("answers");
    out
}

#[test]
fn the_checked_in_crd_is_the_generated_one() {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../charts/image-policy-webhook/crds/clusterimagepolicies.signing.apps.tanzu.vmware.com.yaml");
    let checked_in =
        std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    assert!(
        checked_in == crd::crd_yaml(),
        "{} has drifted from `image-policy crd`; regenerate it with `make crd`",
        path.display()
    );
}

#[test]
fn match_answers_the_seed_quickstart() {
    let images = ["gcr.io/projectsigstore/cosign:v1.2.1", "busybox", "Bad@@"];
    let out = matched("seed-quickstart.yaml", &[], &images);
    let expected = "\
gcr.io/projectsigstore/cosign:v1.2.1
  images[0] gcr.io/projectsigstore/cosign* keys: cosign-key
busybox (docker.io/library/busybox:latest)
  matches no entry: denied, or admitted with a warning when allowUnmatchedImages is true
Bad@@
";
    assert!(out.starts_with(expected), "{out}");
    assert!(
        out.lines().nth(5).is_some_and(|l| l.ends_with(": denied")),
        "{out}"
    );
}

#[test]
fn match_json_names_entries_keys_and_secrets() {
    let out = matched(
        "seed-table.yaml",
        &["-o", "json", "--namespace", "kube-system"],
        &["my-registry.example.org/myproject/my-image:mytag"],
    );
    let json: serde_json::Value = serde_json::from_str(&out).expect("json");
    assert_eq!(
        json,
        serde_json::json!([{
            "image": "my-registry.example.org/myproject/my-image:mytag",
            "canonical": "my-registry.example.org/myproject/my-image:mytag",
            "excludedNamespace": "kube-system",
            "matches": [{
                "entry": 7,
                "pattern": "*.example.org/*",
                "keys": ["second-key"],
                "secretRef": "image-policy-system/example-org-pull"
            }],
            "mode": "Enforce"
        }])
    );
}

#[test]
fn match_names_the_attestations_each_image_needs() {
    let images = [
        "registry.example.org/myproject/app:1",
        "ghcr.io/example/app:1",
    ];
    let out = matched("attestations.yaml", &[], &images);
    assert_eq!(
        out,
        r#"registry.example.org/myproject/app:1
  images[0] registry.example.org/myproject/* keys: release-key
    requires the attestation "built-by-ci" (https://slsa.dev/provenance/v1) signed by github-actions
      where predicate.buildDefinition.externalParameters.workflow.repository == "https://github.com/example/app"
    requires the attestation "scanned" (https://cosign.sigstore.dev/attestation/vuln/v1) signed by release-key
      where timestamp(predicate.metadata.scanFinishedOn) > now - duration("168h")
ghcr.io/example/app:1
  images[1] ghcr.io/example/* keys: none (admitted by its attestations)
    requires the attestation "built-by-ci" (https://slsa.dev/provenance/v1) signed by github-actions
"#
    );
    let json: serde_json::Value =
        serde_json::from_str(&matched("attestations.yaml", &["-o", "json"], &images[1..]))
            .expect("json");
    assert_eq!(
        json[0]["matches"][0]["attestations"],
        serde_json::json!([{
            "name": "built-by-ci",
            "predicateType": "https://slsa.dev/provenance/v1",
            "keys": ["github-actions"],
            "conditions": [],
        }])
    );
    // An entry without attestations prints as it did.
    let plain = matched("warn.yaml", &["-o", "json"], &["registry.example.org/a:1"]);
    assert!(!plain.contains("attestations"), "{plain}");
}

#[test]
fn match_says_which_images_are_in_warn_mode() {
    let images = [
        "registry.example.org/web:v1",
        "registry.example.org/payments/api:v2",
        "busybox",
        "Bad@@",
    ];
    let out = matched("warn.yaml", &[], &images);
    let expected = "\
registry.example.org/web:v1
  images[0] registry.example.org/* keys: broad-key
  Warn mode: if it does not verify, it is admitted with a warning
registry.example.org/payments/api:v2
  images[0] registry.example.org/* keys: broad-key
  images[1] registry.example.org/payments/* keys: broad-key
busybox (docker.io/library/busybox:latest)
  matches no entry: admitted with a warning (Warn mode), or with the original's warning when allowUnmatchedImages is true
Bad@@
";
    assert!(out.starts_with(expected), "{out}");
    assert!(
        out.lines()
            .nth(9)
            .is_some_and(|l| l.ends_with(": admitted with a warning (Warn mode)")),
        "{out}"
    );
    let json = matched("warn.yaml", &["-o", "json"], &images[..2]);
    let json: serde_json::Value = serde_json::from_str(&json).expect("json");
    assert_eq!(json[0]["mode"], "Warn", "{json}");
    assert_eq!(
        json[1]["mode"], "Enforce",
        "an entry in Enforce matched: {json}"
    );
}

#[test]
fn a_broad_entry_beside_a_narrow_one_is_said() {
    let images = [
        "registry.example.org/payments/api:v2",
        "registry.example.org/payments/ledger:v1",
        "registry.example.org/web:v1",
    ];
    let out = matched("broad-and-narrow.yaml", &[], &images);
    let expected = "\
registry.example.org/payments/api:v2
  images[0] registry.example.org/* keys: broad-key
  images[1] registry.example.org/payments/* keys: strict-key
  any of these keys admits it: broad-key, strict-key (its matched entries name different keys)
registry.example.org/payments/ledger:v1
  images[0] registry.example.org/* keys: broad-key
  images[1] registry.example.org/payments/* keys: strict-key
  images[2] registry.example.org/payments/ledger keys: strict-key
  any of these keys admits it: broad-key, strict-key (its matched entries name different keys)
registry.example.org/web:v1
  images[0] registry.example.org/* keys: broad-key
";
    assert_eq!(out, expected);
    let out = matched("broad-and-narrow.yaml", &["-o", "json"], &images);
    let json: serde_json::Value = serde_json::from_str(&out).expect("json");
    assert_eq!(
        json[0]["anyOf"],
        serde_json::json!(["broad-key", "strict-key"])
    );
    assert_eq!(
        json[1]["anyOf"],
        serde_json::json!(["broad-key", "strict-key"])
    );
    assert!(json[2].get("anyOf").is_none(), "{}", json[2]);
}

#[test]
fn an_invalid_policy_lists_every_problem_with_its_path() {
    let dir = std::env::temp_dir().join(format!("image-policy-cli-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("dir");
    let file = dir.join("bad.yaml");
    std::fs::write(
        &file,
        "apiVersion: signing.apps.tanzu.vmware.com/v1beta1\nkind: ClusterImagePolicy\nmetadata: {name: other}\n\
         spec:\n  verification:\n    keys: [{name: k, publicKey: nope}]\n    images: [{namePattern: '', keys: [{name: x}]}]\n",
    )
    .expect("write");
    let (result, _) = run(&["match", "--policy", file.to_str().expect("path"), "busybox"]);
    let message = result.expect_err("invalid").to_string();
    for words in [
        "metadata.name: the policy is named \"other\"",
        "spec.verification.keys[0].publicKey: key \"k\": not a PEM public key",
        "spec.verification.images[0].namePattern: \"\": the pattern is empty",
        "spec.verification.images[0].keys[0].name: no key named \"x\"",
        "(InvalidName)",
        "(UnknownKey)",
    ] {
        assert!(message.contains(words), "{words} in:\n{message}");
    }
    std::fs::remove_dir_all(&dir).ok();
}

#[test]
fn unreadable_and_foreign_files_are_clear_errors() {
    let (result, _) = run(&["match", "--policy", "/nonexistent/policy.yaml", "busybox"]);
    assert!(matches!(result, Err(CliError::Read { .. })));
    let pod = data("policies/not-a-policy.yaml");
    let (result, _) = run(&["match", "--policy", pod.to_str().expect("path"), "busybox"]);
    let message = result.expect_err("a Pod").to_string();
    assert!(
        message.contains(
            "found v1/Pod, expected signing.apps.tanzu.vmware.com/v1beta1/ClusterImagePolicy"
        ),
        "{message}"
    );
}

/// `args` parsed as the command line, and the file they name written with `policy`.
fn command(dir: &tempfile::TempDir, policy: &str, args: &[&str]) -> Cli {
    let file = dir.path().join("policy.yaml");
    std::fs::write(&file, policy).expect("write");
    let file = file.to_str().expect("path");
    let args = args.iter().map(|&a| if a == "FILE" { file } else { a });
    Cli::try_parse_from(std::iter::once("image-policy").chain(args)).expect("args")
}

#[test]
fn match_and_check_answer_without_the_dropped_fields() {
    let dir = tempfile::tempdir().expect("dir");
    let policy = dropped_secret_refs();
    let image = "gcr.io/projectsigstore/cosign:v1.2.1";
    let cli = command(&dir, &policy, &["match", "--policy", "FILE", image]);
    let Command::Match(args) = cli.command else {
        unreachable!("match")
    };
    let mut out = Vec::new();
    matching::run(&args, &mut out).expect("answers");
    let out = String::from_utf8(out).expect("utf8");
    assert!(
        out.contains("images[0] gcr.io/projectsigstore/cosign* keys: cosign-key\n"),
        "no secretRef, as in the cluster: {out}"
    );
    // An image that matches no entry is denied without asking a registry.
    let cli = command(&dir, &policy, &["check", "--policy", "FILE", "busybox"]);
    let Command::Check(args) = cli.command else {
        unreachable!("check")
    };
    let mut out = Vec::new();
    let admitted = check::run(&args, &mut out).expect("answers");
    assert!(!admitted, "{}", String::from_utf8_lossy(&out));
}

#[test]
fn match_and_check_refuse_unknown_fields_with_strict_as_unusable_input() {
    let dir = tempfile::tempdir().expect("dir");
    let policy = dropped_secret_refs();
    for args in [
        &["match", "--strict", "--policy", "FILE", "busybox"][..],
        &["check", "--policy", "FILE", "--strict", "busybox"],
    ] {
        let cli = command(&dir, &policy, args);
        assert_eq!(cli.run(), ExitCode::from(2), "{args:?}");
    }
    let quickstart = repo_file("tests/data/policies/seed-quickstart.yaml");
    let cli = command(
        &dir,
        &quickstart,
        &["match", "--strict", "--policy", "FILE", "x"],
    );
    let Command::Match(args) = cli.command else {
        unreachable!("match")
    };
    matching::run(&args, &mut Vec::new()).expect("a clean policy passes --strict");
}

#[test]
fn a_trusted_root_that_is_not_name_file_is_refused_with_the_value() {
    let parse = |value: &str| {
        Cli::try_parse_from([
            "image-policy",
            "check",
            "--policy",
            "p.yaml",
            "--trusted-root",
            value,
            "busybox",
        ])
    };
    for bad in ["corp", "=root.json", "corp="] {
        let error = parse(bad).expect_err(bad).to_string();
        assert!(
            error.contains(&format!("{bad:?} is not NAME=FILE")),
            "{error}"
        );
    }
    assert!(parse("corp=root.json").is_ok());
}
