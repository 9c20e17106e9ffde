use image_policy_crd::{
    ClusterImagePolicy, ClusterImagePolicySpec, ImageEntry, Key, KeyRef, Keyless,
    PUBLIC_GOOD_TRUSTED_ROOT, Reason, SecretRef, Verification,
};
use proptest::prelude::*;

use super::*;
use crate::policy::{Signer, Transparency};

mod modes;

fn policy_file(name: &str) -> ClusterImagePolicy {
    let path = format!("{}/tests/data/policies/{name}", env!("CARGO_MANIFEST_DIR"));
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{path}: {e}"));
    serde_yaml::from_str(&text).unwrap_or_else(|e| panic!("{path}: {e}"))
}

fn key_pem(file: &str) -> String {
    let path = format!("{}/tests/data/keys/{file}", env!("CARGO_MANIFEST_DIR"));
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{path}: {e}"))
}

fn entry(pattern: &str, keys: &[&str]) -> ImageEntry {
    ImageEntry {
        name_pattern: pattern.into(),
        keys: keys.iter().map(|k| KeyRef { name: (*k).into() }).collect(),
        secret_ref: None,
        mode: None,
        attestations: Vec::new(),
    }
}

fn spec(keys: Vec<Key>, images: Vec<ImageEntry>) -> ClusterImagePolicySpec {
    ClusterImagePolicySpec {
        verification: Verification {
            exclude: None,
            keys,
            images,
            ..Verification::default()
        },
    }
}

fn key(name: &str, file: &str) -> Key {
    Key {
        name: name.into(),
        public_key: Some(key_pem(file)),
        ..Key::default()
    }
}

fn github(subject: &str) -> Keyless {
    Keyless {
        issuer: Some("https://token.actions.githubusercontent.com".into()),
        subject: Some(subject.into()),
        ..Keyless::default()
    }
}

fn keyless(identity: Keyless) -> Key {
    Key {
        name: "id".into(),
        keyless: Some(identity),
        ..Key::default()
    }
}

#[test]
fn a_keyless_identity_needs_a_log_unless_it_says_optional() {
    let compiled = |key: Key| {
        let snapshot = Snapshot::compile_spec(&spec(vec![key], vec![entry("a/b", &["id"])]))
            .expect("compiles");
        let key = &snapshot.keys()[0];
        let Signer::Keyless(identity) = &key.signer else {
            panic!("keyless")
        };
        assert_eq!(identity.root().name(), PUBLIC_GOOD_TRUSTED_ROOT);
        let issuer = "https://token.actions.githubusercontent.com";
        (
            matches!(key.transparency, Transparency::Required(_)),
            key.identity(),
            identity.matches("s", issuer) && !identity.matches("s2", issuer),
        )
    };
    let (required, default_identity, matches) = compiled(keyless(github("s")));
    assert!(required && matches);
    let (required, optional_identity, _) = compiled(Key {
        transparency_log: Some(image_policy_crd::TransparencyLog::Optional),
        ..keyless(github("s"))
    });
    assert!(!required);
    assert_ne!(
        default_identity, optional_identity,
        "verdicts are cached apart"
    );
    let (_, other_subject, _) = compiled(keyless(github("s2")));
    assert_ne!(default_identity, other_subject);
}

/// Each problem's reason and field path, in order.
fn reasons_and_paths(problems: &Problems) -> Vec<(Reason, &str)> {
    problems
        .0
        .iter()
        .map(|p| (p.reason, p.path.as_str()))
        .collect()
}

fn matched_indices(snapshot: &Snapshot, image: &str) -> Vec<usize> {
    let image = ImageName::parse(image).unwrap_or_else(|e| panic!("{image}: {e}"));
    snapshot.matching(&image).iter().map(|e| e.index).collect()
}

#[test]
fn the_seed_quickstart_policy_compiles() {
    let snapshot = Snapshot::compile(&policy_file("seed-quickstart.yaml")).expect("compiles");
    assert!(snapshot.is_excluded("kube-system"));
    assert!(!snapshot.is_excluded("default"));
    assert_eq!(
        matched_indices(&snapshot, "gcr.io/projectsigstore/cosign:v1.2.1"),
        [0]
    );
    assert_eq!(
        matched_indices(&snapshot, "gcr.io/projectsigstore/cosign:v0.3.0"),
        [0]
    );
    assert!(matched_indices(&snapshot, "busybox").is_empty());
    let entry = &snapshot.entries()[0];
    let keys: Vec<_> = snapshot.keys_of(entry).map(|k| k.name.as_str()).collect();
    assert_eq!(keys, ["cosign-key"]);
}

#[test]
fn the_seed_table_policy_matches_row_by_row() {
    let snapshot = Snapshot::compile(&policy_file("seed-table.yaml")).expect("compiles");
    let cases: &[(&str, &[usize])] = &[
        (
            "registry.example.org/myproject/my-image:mytag",
            &[0, 1, 2, 3, 4, 5, 6, 7],
        ),
        (
            "registry.example.org/myproject/my-image:other-tag",
            &[1, 2, 3, 5, 6, 7],
        ),
        (
            "registry.example.org/myproject/anotherimage:anothertag",
            &[3, 6, 7],
        ),
        (
            "registry.example.org/anotherproject/my-image:mytag",
            &[4, 5, 6, 7],
        ),
        (
            "registry.example.org/anotherproject/anotherimage:anothertag",
            &[6, 7],
        ),
        ("my-registry.example.org/myproject/my-image:mytag", &[7]),
        ("registry.io/project/image:tag", &[]),
        ("busybox", &[]),
    ];
    for (image, expected) in cases {
        assert_eq!(matched_indices(&snapshot, image), *expected, "{image}");
    }
    let last = &snapshot.entries()[7];
    assert_eq!(
        last.secret_ref.as_ref().map(|s| s.name.as_str()),
        Some("example-org-pull")
    );
    assert_eq!(snapshot.keys_of(&snapshot.entries()[4]).count(), 2);
}

#[test]
fn a_policy_with_another_name_is_invalid_name() {
    let mut policy = policy_file("seed-quickstart.yaml");
    policy.metadata.name = Some("my-policy".into());
    let problems = Snapshot::compile(&policy).expect_err("wrong name");
    assert_eq!(problems.reason(), Reason::InvalidName);
    assert_eq!(problems.0.len(), 1);
    assert_eq!(problems.0[0].path, "metadata.name");
    assert!(
        problems.0[0].message.contains("\"my-policy\""),
        "{}",
        problems.0[0].message
    );
}

#[test]
fn each_invalid_case_has_its_reason_and_path() {
    let good = || key("k", "p256.pub");
    let cases: Vec<(ClusterImagePolicySpec, Reason, &str, &str)> = vec![
        (
            spec(
                vec![Key {
                    name: "k".into(),
                    public_key: Some("nope".into()),
                    ..Key::default()
                }],
                vec![entry("a/b", &["k"])],
            ),
            Reason::InvalidKey,
            "spec.verification.keys[0].publicKey",
            "key \"k\": not a PEM public key",
        ),
        (
            spec(vec![key("k", "rsa1024.pub")], vec![entry("a/b", &["k"])]),
            Reason::InvalidKey,
            "spec.verification.keys[0].publicKey",
            "the RSA key is too weak",
        ),
        (
            spec(
                vec![good(), key("k", "p384.pub")],
                vec![entry("a/b", &["k"])],
            ),
            Reason::InvalidKey,
            "spec.verification.keys[1].name",
            "duplicate key name \"k\" (also spec.verification.keys[0])",
        ),
        (
            spec(vec![key("", "p256.pub")], vec![]),
            Reason::InvalidKey,
            "spec.verification.keys[0].name",
            "no name",
        ),
        (
            spec(vec![good()], vec![entry("a/b", &["k", "missing"])]),
            Reason::UnknownKey,
            "spec.verification.images[0].keys[1].name",
            "no key named \"missing\"",
        ),
        (
            spec(vec![good()], vec![entry("a/b", &[])]),
            Reason::MissingKeys,
            "spec.verification.images[0].keys",
            "names no key",
        ),
        (
            spec(vec![good()], vec![entry("", &["k"])]),
            Reason::InvalidPattern,
            "spec.verification.images[0].namePattern",
            "empty",
        ),
        (
            spec(
                vec![good()],
                vec![entry("registry.example.org/a b", &["k"])],
            ),
            Reason::InvalidPattern,
            "spec.verification.images[0].namePattern",
            "character ' '",
        ),
        (
            spec(
                vec![good()],
                vec![ImageEntry {
                    secret_ref: Some(SecretRef {
                        name: String::new(),
                        namespace: Some("ns".into()),
                    }),
                    ..entry("a/b", &["k"])
                }],
            ),
            Reason::InvalidSecretRef,
            "spec.verification.images[0].secretRef.name",
            "no name",
        ),
        (
            spec(
                vec![good()],
                vec![ImageEntry {
                    secret_ref: Some(SecretRef {
                        name: "s".into(),
                        namespace: Some("Bad_NS".into()),
                    }),
                    ..entry("a/b", &["k"])
                }],
            ),
            Reason::InvalidSecretRef,
            "spec.verification.images[0].secretRef.namespace",
            "not a namespace name",
        ),
        (
            ClusterImagePolicySpec {
                verification: Verification {
                    exclude: Some(image_policy_crd::Exclude {
                        resources: Some(image_policy_crd::ExcludedResources {
                            namespaces: vec!["kube-system".into(), String::new()],
                        }),
                    }),
                    keys: vec![good()],
                    images: vec![],
                    ..Verification::default()
                },
            },
            Reason::InvalidNamespace,
            "spec.verification.exclude.resources.namespaces[1]",
            "not a namespace name",
        ),
        (
            spec(
                vec![Key {
                    name: "k".into(),
                    ..Key::default()
                }],
                vec![entry("a/b", &["k"])],
            ),
            Reason::InvalidKey,
            "spec.verification.keys[0].publicKey",
            "has neither a publicKey nor a keyless identity",
        ),
        (
            spec(
                vec![Key {
                    keyless: Some(github("s")),
                    ..good()
                }],
                vec![entry("a/b", &["k"])],
            ),
            Reason::InvalidIdentity,
            "spec.verification.keys[0].keyless",
            "has both a publicKey and a keyless identity",
        ),
        (
            spec(
                vec![keyless(Keyless {
                    subject: None,
                    subject_reg_exp: Some("https://github.com/(org".into()),
                    ..github("s")
                })],
                vec![entry("a/b", &["id"])],
            ),
            Reason::InvalidIdentity,
            "spec.verification.keys[0].keyless.subjectRegExp",
            "is not a regular expression",
        ),
        (
            spec(
                vec![keyless(Keyless {
                    issuer: None,
                    ..github("s")
                })],
                vec![entry("a/b", &["id"])],
            ),
            Reason::InvalidIdentity,
            "spec.verification.keys[0].keyless.issuer",
            "needs its issuer (or issuerRegExp)",
        ),
        (
            spec(
                vec![Key {
                    trusted_root: Some("corp".into()),
                    ..keyless(github("s"))
                }],
                vec![entry("a/b", &["id"])],
            ),
            Reason::UnknownTrustedRoot,
            "spec.verification.keys[0].trustedRoot",
            "no trusted root named \"corp\"",
        ),
        (
            ClusterImagePolicySpec {
                verification: Verification {
                    mode: Some("Audit".into()),
                    ..spec(vec![good()], vec![entry("a/b", &["k"])]).verification
                },
            },
            Reason::InvalidMode,
            "spec.verification.mode",
            "\"Audit\" is not a mode; write Enforce or Warn",
        ),
        (
            spec(
                vec![good()],
                vec![
                    entry("a/b", &["k"]),
                    ImageEntry {
                        // The CRD's enum is exact, and so is the compiler.
                        mode: Some("warn".into()),
                        ..entry("a/c", &["k"])
                    },
                ],
            ),
            Reason::InvalidMode,
            "spec.verification.images[1].mode",
            "\"warn\" is not a mode",
        ),
    ];
    for (spec, reason, path, words) in cases {
        let problems = Snapshot::compile_spec(&spec).expect_err(path);
        assert_eq!(problems.0.len(), 1, "{problems}");
        let problem = &problems.0[0];
        assert_eq!(
            (problem.reason, problem.path.as_str()),
            (reason, path),
            "{problem}"
        );
        assert!(
            problem.message.contains(words),
            "{path}: {}",
            problem.message
        );
    }
}

#[test]
fn every_problem_is_reported_at_once() {
    let spec = spec(
        vec![
            Key {
                name: "bad".into(),
                public_key: Some("-----BEGIN PUBLIC KEY-----\n".into()),
                ..Key::default()
            },
            key("ok", "p256.pub"),
        ],
        vec![
            entry("*", &["bad"]),
            entry("", &["ghost"]),
            entry("x:", &[]),
        ],
    );
    let problems = Snapshot::compile_spec(&spec).expect_err("invalid");
    assert_eq!(
        reasons_and_paths(&problems),
        [
            (Reason::InvalidKey, "spec.verification.keys[0].publicKey"),
            (
                Reason::InvalidPattern,
                "spec.verification.images[1].namePattern"
            ),
            (
                Reason::UnknownKey,
                "spec.verification.images[1].keys[0].name"
            ),
            (
                Reason::InvalidPattern,
                "spec.verification.images[2].namePattern"
            ),
            (Reason::MissingKeys, "spec.verification.images[2].keys"),
        ]
    );
    assert_eq!(problems.reason(), Reason::InvalidKey);
    let text = problems.to_string();
    for problem in &problems.0 {
        assert!(text.contains(&problem.to_string()), "{problem} in {text}");
    }
}

#[test]
fn repeated_key_references_count_once() {
    let snapshot = Snapshot::compile_spec(&spec(
        vec![key("k", "p256.pub")],
        vec![entry("a/*", &["k", "k"])],
    ))
    .expect("ok");
    assert_eq!(snapshot.entries()[0].key_ids, [0]);
}

#[test]
fn an_empty_policy_matches_nothing() {
    let snapshot =
        Snapshot::compile_spec(&ClusterImagePolicySpec::default()).expect("empty is valid");
    assert!(matched_indices(&snapshot, "busybox").is_empty());
}

fn pattern_strategy() -> impl Strategy<Value = String> {
    let components = "* docker.io index.docker.io registry.example.org localhost:5000 library \
                      busybox my* *.example.org app team x";
    written(components, vec!["latest", "v*", "*", "1.0"])
}

fn image_strategy() -> impl Strategy<Value = String> {
    let components = "docker.io index.docker.io registry.example.org my.example.org \
                      localhost:5000 library busybox myapp app team x Registry.Example.org";
    written(components, vec!["latest", "v1", "1.0"])
}

/// One to three of `components` (separated by white space) joined by `/`, with one of `tags`
/// or none.
fn written(components: &'static str, tags: Vec<&'static str>) -> impl Strategy<Value = String> {
    let components: Vec<&str> = components.split_whitespace().collect();
    (
        prop::collection::vec(prop::sample::select(components), 1..4),
        prop::option::of(prop::sample::select(tags)),
    )
        .prop_map(|(parts, tag)| {
            let mut p = parts.join("/");
            if let Some(t) = tag {
                p.push(':');
                p.push_str(t);
            }
            p
        })
}

proptest! {
    /// The index is only a shortcut: it finds exactly what comparing every pattern finds.
    #[test]
    fn the_index_finds_what_a_full_scan_finds(
        patterns in prop::collection::vec(pattern_strategy(), 1..30),
        images in prop::collection::vec(image_strategy(), 1..10),
    ) {
        let entries: Vec<ImageEntry> = patterns.iter().map(|p| entry(p, &["k"])).collect();
        let snapshot = Snapshot::compile_spec(&spec(vec![key("k", "p256.pub")], entries))
            .map_err(|e| TestCaseError::fail(e.to_string()))?;
        for written in &images {
            let Ok(image) = ImageName::parse(written) else { continue };
            let indexed: Vec<usize> = snapshot.matching(&image).iter().map(|e| e.index).collect();
            let scanned: Vec<usize> = snapshot
                .entries()
                .iter()
                .filter(|e| e.pattern.matches(&image))
                .map(|e| e.index)
                .collect();
            prop_assert_eq!(indexed, scanned, "{}", written);
        }
    }
}

mod trusted_roots {
    use image_policy_crd::{ConfigMapKeyRef, TransparencyLog, TrustedRoot};

    use super::*;
    use crate::policy::{Documents, Transparency};

    fn logged(name: &str, root: Option<&str>) -> Key {
        Key {
            transparency_log: Some(TransparencyLog::Required),
            trusted_root: root.map(str::to_owned),
            ..key(name, "p256.pub")
        }
    }

    fn root(name: &str, config_map: &str) -> TrustedRoot {
        TrustedRoot {
            name: name.into(),
            config_map_ref: ConfigMapKeyRef {
                name: config_map.into(),
                key: None,
            },
        }
    }

    fn with_roots(keys: Vec<Key>, roots: Vec<TrustedRoot>) -> ClusterImagePolicySpec {
        let mut spec = spec(keys, vec![entry("registry.example.org/*", &["k"])]);
        spec.verification.trusted_roots = roots;
        spec
    }

    fn documents(config_map: &str, document: &str) -> Documents {
        Documents::from([(
            config_map.to_owned(),
            [("trusted_root.json".to_owned(), document.to_owned())].into(),
        )])
    }

    #[test]
    fn a_required_log_without_a_root_is_the_built_in_public_good_one() {
        let snapshot =
            Snapshot::compile_spec(&with_roots(vec![logged("k", None)], vec![])).expect("compiles");
        let Transparency::Required(root) = &snapshot.keys()[0].transparency else {
            panic!("required")
        };
        assert_eq!(root.name(), "sigstore-public-good");
        assert!(root.verifier().is_ok());
        assert!(snapshot.unavailable_roots().is_empty());
        // The identity of a verdict changes with the requirement.
        let optional = Snapshot::compile_spec(&with_roots(vec![key("k", "p256.pub")], vec![]))
            .expect("compiles");
        assert_ne!(optional.keys()[0].identity(), snapshot.keys()[0].identity());
    }

    #[test]
    fn roots_are_named_once_and_referred_to_by_name() {
        let cases = [
            (
                with_roots(vec![logged("k", Some("nope"))], vec![]),
                "spec.verification.keys[0].trustedRoot",
                "no trusted root named \"nope\"",
            ),
            (
                with_roots(vec![key("k", "p256.pub")], vec![root("", "cm")]),
                "spec.verification.trustedRoots[0].name",
                "has no name",
            ),
            (
                with_roots(
                    vec![key("k", "p256.pub")],
                    vec![root("sigstore-public-good", "cm")],
                ),
                "spec.verification.trustedRoots[0].name",
                "built-in",
            ),
            (
                with_roots(
                    vec![key("k", "p256.pub")],
                    vec![root("a", "cm"), root("a", "cm2")],
                ),
                "spec.verification.trustedRoots[1].name",
                "duplicate trusted root name",
            ),
            (
                with_roots(vec![key("k", "p256.pub")], vec![root("a", "Not_A_Name")]),
                "spec.verification.trustedRoots[0].configMapRef.name",
                "not a ConfigMap name",
            ),
        ];
        for (spec, path, words) in cases {
            let problems = Snapshot::compile_spec(&spec).expect_err(path);
            let problem = problems
                .0
                .iter()
                .find(|p| p.path == path)
                .unwrap_or_else(|| panic!("{path} in {problems}"));
            assert_eq!(problem.reason, Reason::UnknownTrustedRoot, "{problem}");
            assert!(problem.message.contains(words), "{problem}");
        }
    }

    #[test]
    fn a_root_that_cannot_be_read_leaves_the_policy_enforced_and_says_why() {
        let spec = with_roots(
            vec![logged("k", Some("private"))],
            vec![root("private", "roots")],
        );
        let missing = Snapshot::compile_spec(&spec).expect("compiles");
        let problems = missing.unavailable_roots();
        assert_eq!(problems.len(), 1);
        assert_eq!(problems[0].reason, Reason::TrustedRootUnavailable);
        assert_eq!(problems[0].path, "spec.verification.trustedRoots[0]");
        assert!(
            problems[0]
                .message
                .contains("ConfigMap roots was not found"),
            "{}",
            problems[0]
        );
        let broken =
            Snapshot::compile_spec_with(&spec, &documents("roots", "{not json")).expect("compiles");
        assert!(
            broken.unavailable_roots()[0]
                .message
                .contains("not a trusted_root.json document"),
            "{}",
            broken.unavailable_roots()[0]
        );
        let document = sigstore_verify::trust_root::SIGSTORE_PRODUCTION_TRUSTED_ROOT;
        let good =
            Snapshot::compile_spec_with(&spec, &documents("roots", document)).expect("compiles");
        assert!(good.unavailable_roots().is_empty());
        let Transparency::Required(root) = &good.keys()[0].transparency else {
            panic!("required")
        };
        assert!(root.verifier().is_ok() && root.name() == "private");
        // Another document is another identity for the verdicts that used the root.
        assert_ne!(good.keys()[0].identity(), missing.keys()[0].identity());
    }
}
