use image_policy_crd::{ClusterImagePolicySpec, Reason};

use crate::policy::{Problem, Snapshot};

const P256: &str = include_str!("../../../tests/data/keys/p256.pub");

/// A policy with the keys `release` (a key) and `github-actions` (a keyless identity), and
/// `images` as YAML.
fn spec(images: &str) -> ClusterImagePolicySpec {
    let indented: String = P256.lines().map(|l| format!("        {l}\n")).collect();
    let yaml = format!(
        r#"
verification:
  keys:
  - name: release
    publicKey: |
{indented}
  - name: github-actions
    keyless:
      issuer: https://token.actions.githubusercontent.com
      subjectRegExp: https://github.com/example/app/.*
  images:
{images}"#
    );
    serde_yaml::from_str(&yaml).unwrap_or_else(|e| panic!("{e}:\n{yaml}"))
}

fn problems(images: &str) -> Vec<Problem> {
    Snapshot::compile_spec(&spec(images))
        .err()
        .map(|p| p.0)
        .unwrap_or_default()
}

fn paths(problems: &[Problem]) -> Vec<(Reason, &str)> {
    problems
        .iter()
        .map(|p| (p.reason, p.path.as_str()))
        .collect()
}

#[test]
fn the_issues_example_compiles_with_its_signers_and_conditions() {
    let snapshot = Snapshot::compile_spec(&spec(
        r#"
  - namePattern: registry.example.org/myproject/*
    keys: [{name: release}]
    attestations:
    - name: built-by-ci
      predicateType: https://slsa.dev/provenance/v1
      keys: [{name: github-actions}]
      conditions:
      - expression: predicate.buildDefinition.externalParameters.workflow.repository == "https://github.com/example/app"
        message: built from example/app
    - name: scanned
      predicateType: https://cosign.sigstore.dev/attestation/vuln/v1
      conditions:
      - expression: timestamp(predicate.metadata.scanFinishedOn) > now - duration("168h")
"#,
    ))
    .expect("compiles");
    let entry = &snapshot.entries()[0];
    let names: Vec<_> = snapshot.keys_of(entry).map(|k| k.name.as_str()).collect();
    assert_eq!(names, ["release"]);
    let needs = snapshot.attestations_of(&[entry]);
    let summary: Vec<_> = needs
        .iter()
        .map(|n| {
            let signers: Vec<_> = n.signers.iter().map(|k| k.name.as_str()).collect();
            (
                n.requirement.name.as_str(),
                signers,
                n.requirement.conditions.len(),
            )
        })
        .collect();
    assert_eq!(
        summary,
        [
            ("built-by-ci", vec!["github-actions"], 1),
            // Its entry's keys, when it names none.
            ("scanned", vec!["release"], 1),
        ]
    );
    let built = &needs[0].requirement;
    assert_eq!(built.predicate_type, "https://slsa.dev/provenance/v1");
    assert_eq!(
        built.conditions[0].message.as_deref(),
        Some("built from example/app")
    );
    assert_eq!(built.path, "spec.verification.images[0].attestations[0]");
}

#[test]
fn an_entry_without_keys_may_require_attestations_that_name_their_signers() {
    let only_attestations = r#"
  - namePattern: ghcr.io/example/*
    attestations:
    - name: built-by-ci
      predicateType: https://slsa.dev/provenance/v1
      keys: [{name: github-actions}]
"#;
    let snapshot = Snapshot::compile_spec(&spec(only_attestations)).expect("compiles");
    assert_eq!(snapshot.keys_of(&snapshot.entries()[0]).count(), 0);
    // Neither keys nor attestations: what the original refused, refused the same.
    assert_eq!(
        paths(&problems("  - namePattern: ghcr.io/example/*\n")),
        [(Reason::MissingKeys, "spec.verification.images[0].keys")]
    );
    // Attestations with no signers anywhere.
    let unsigned = r#"
  - namePattern: ghcr.io/example/*
    attestations:
    - name: built-by-ci
      predicateType: https://slsa.dev/provenance/v1
"#;
    assert_eq!(
        paths(&problems(unsigned)),
        [(
            Reason::MissingKeys,
            "spec.verification.images[0].attestations[0].keys"
        )]
    );
}

#[test]
fn every_problem_of_an_attestation_has_its_field_path() {
    let found = problems(
        r#"
  - namePattern: ghcr.io/example/*
    keys: [{name: release}]
    attestations:
    - name: ""
      predicateType: https://slsa.dev/provenance/v1
    - name: scan
      predicateType: " "
      keys: [{name: nobody}]
    - name: scan
      predicateType: https://cosign.sigstore.dev/attestation/vuln/v1
      conditions:
      - expression: predicate.ok == true
      - expression: predicat.ok == true
      - expression: "predicate.ok =="
      - expression: predicate.ok
        message: MESSAGE
"#
        .replace("MESSAGE", &"m".repeat(513))
        .as_str(),
    );
    assert_eq!(
        paths(&found),
        [
            (
                Reason::InvalidAttestation,
                "spec.verification.images[0].attestations[0].name"
            ),
            (
                Reason::InvalidAttestation,
                "spec.verification.images[0].attestations[1].predicateType"
            ),
            (
                Reason::UnknownKey,
                "spec.verification.images[0].attestations[1].keys[0].name"
            ),
            (
                Reason::InvalidAttestation,
                "spec.verification.images[0].attestations[2].name"
            ),
            (
                Reason::InvalidCondition,
                "spec.verification.images[0].attestations[2].conditions[1].expression"
            ),
            (
                Reason::InvalidCondition,
                "spec.verification.images[0].attestations[2].conditions[2].expression"
            ),
            (
                Reason::InvalidCondition,
                "spec.verification.images[0].attestations[2].conditions[3].message"
            ),
        ]
    );
    let words: Vec<_> = found.iter().map(ToString::to_string).collect();
    assert!(
        words[3].contains(
            "duplicate attestation name \"scan\" (also spec.verification.images[0].attestations[1])"
        ),
        "{}",
        words[3]
    );
    assert!(
        words[4].contains("\"predicat\", which is not a variable"),
        "{}",
        words[4]
    );
    assert!(words[5].contains("not valid CEL"), "{}", words[5]);
}

#[test]
fn a_policy_without_attestations_reads_as_it_did() {
    let yaml = "  - namePattern: ghcr.io/example/*\n    keys: [{name: release}]\n";
    let snapshot = Snapshot::compile_spec(&spec(yaml)).expect("compiles");
    assert!(snapshot.entries()[0].attestations.is_empty());
    assert!(
        snapshot
            .attestations_of(&[&snapshot.entries()[0]])
            .is_empty()
    );
    let back = serde_json::to_value(spec(yaml)).expect("json");
    assert!(
        back["verification"]["images"][0]
            .get("attestations")
            .is_none()
    );
}
