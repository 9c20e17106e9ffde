use image_policy_crd::{
    ClusterImagePolicySpec, ConfigMapKeyRef, Exclude, ExcludedResources, ImageEntry, Key, KeyRef,
    Keyless, SecretRef, TransparencyLog, TrustedRoot, Verification,
};

use super::*;

/// The paths of the fields that the CRD does not know, with their suggestions.
fn unknown(yaml: &str) -> Vec<String> {
    let manifest: Value = serde_yaml::from_str(yaml).expect("yaml");
    unknown_fields(&manifest)
        .iter()
        .map(ToString::to_string)
        .collect()
}

pub(crate) fn repo_file(path: &str) -> String {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join(path);
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

const HEADER: &str = "\
apiVersion: signing.apps.tanzu.vmware.com/v1beta1
kind: ClusterImagePolicy
metadata:
  name: image-policy
";

/// One typo at each depth that a policy has.
const TYPOS: &str = "\
spec:
  verification:
    exclude:
      resources:
        namespace: [kube-system]
    allowUnmatchedImages: true
    keys:
    - name: release
      publicKey: PEM
    - name: ci
      keyless:
        issuer: https://token.actions.githubusercontent.com
        subjectRegex: https://github.com/acme/.*
      secretref: {name: pull}
    images:
    - namePattern: registry.example.org/*
      keys: [{name: release}, {nme: ci}]
      secretRef: {name: pull, namespce: registry}
    - namepattern: registry.example.org/payments/*
      keys: [{name: ci}]
    trustedRoots:
    - name: corp
      configMapRef: {name: corp-root, Key: trusted_root.json}
  verifcation: {}
extra: true
";

#[test]
fn typos_are_found_at_every_depth_in_the_order_of_the_file() {
    assert_eq!(
        unknown(&format!("{HEADER}{TYPOS}")),
        [
            "spec.verification.exclude.resources.namespace: unknown field (did you mean namespaces?)",
            "spec.verification.allowUnmatchedImages: unknown field",
            "spec.verification.keys[1].keyless.subjectRegex: unknown field (did you mean subjectRegExp?)",
            "spec.verification.keys[1].secretref: unknown field",
            "spec.verification.images[0].keys[1].nme: unknown field (did you mean name?)",
            "spec.verification.images[0].secretRef.namespce: unknown field (did you mean namespace?)",
            "spec.verification.images[1].namepattern: unknown field (did you mean namePattern?)",
            "spec.verification.trustedRoots[0].configMapRef.Key: unknown field (did you mean key?)",
            "spec.verifcation: unknown field (did you mean verification?)",
            "extra: unknown field",
        ]
    );
}

#[test]
fn a_field_known_elsewhere_is_unknown_where_it_is_written() {
    let yaml = format!(
        "{HEADER}spec:\n  verification:\n    keys:\n    - name: k\n      secretRef: {{name: pull}}\n"
    );
    assert_eq!(
        unknown(&yaml),
        ["spec.verification.keys[0].secretRef: unknown field"]
    );
}

#[test]
fn metadata_is_left_to_the_api_server() {
    let yaml = "\
apiVersion: signing.apps.tanzu.vmware.com/v1beta1
kind: ClusterImagePolicy
metadata:
  name: image-policy
  labels: {team: platform}
  annotations: {note: reviewed}
  finalizers: [example.org/keep]
spec:
  verification: {}
status:
  keys: 1
";
    assert_eq!(unknown(yaml), Vec::<String>::new());
}

#[test]
fn a_policy_with_every_field_set_has_no_unknown_field() {
    // Serialized from the API types: the schema and the parser name the same fields.
    let key = |keyless: Option<Keyless>| Key {
        name: "k".into(),
        public_key: Some("PEM".into()),
        keyless,
        transparency_log: Some(TransparencyLog::Required),
        trusted_root: Some("corp".into()),
    };
    let mut policy = ClusterImagePolicy::new(
        "image-policy",
        ClusterImagePolicySpec {
            verification: Verification {
                exclude: Some(Exclude {
                    resources: Some(ExcludedResources {
                        namespaces: vec!["kube-system".into()],
                    }),
                }),
                keys: vec![
                    key(None),
                    key(Some(Keyless {
                        issuer: Some("i".into()),
                        issuer_reg_exp: Some("i".into()),
                        subject: Some("s".into()),
                        subject_reg_exp: Some("s".into()),
                    })),
                ],
                images: vec![ImageEntry {
                    name_pattern: "*".into(),
                    keys: vec![KeyRef { name: "k".into() }],
                    secret_ref: Some(SecretRef {
                        name: "pull".into(),
                        namespace: Some("ns".into()),
                    }),
                    mode: Some("Warn".into()),
                    attestations: Vec::new(),
                }],
                trusted_roots: vec![TrustedRoot {
                    name: "corp".into(),
                    config_map_ref: ConfigMapKeyRef {
                        name: "corp-root".into(),
                        key: Some("trusted_root.json".into()),
                    },
                }],
                mode: Some("Enforce".into()),
            },
        },
    );
    policy.status = Some(image_policy_crd::ClusterImagePolicyStatus {
        conditions: Vec::new(),
        keys: Some(2),
        patterns: Some(1),
        running: None,
    });
    let manifest = serde_yaml::to_value(&policy).expect("serializes");
    assert!(
        manifest
            .get("spec")
            .and_then(|s| s.get("verification"))
            .is_some(),
        "{manifest:?}"
    );
    assert_eq!(unknown_fields(&manifest), Vec::new());
}

#[test]
fn the_test_policies_have_no_unknown_field() {
    for file in [
        "seed-quickstart.yaml",
        "seed-table.yaml",
        "broad-and-narrow.yaml",
        "warn.yaml",
    ] {
        let text = repo_file(&format!("tests/data/policies/{file}"));
        assert_eq!(unknown(&text), Vec::<String>::new(), "{file}");
    }
}

#[test]
fn the_seed_documentation_examples_have_no_unknown_field() {
    // The third example of VMware Tanzu's Image Policy Webhook documentation (its first is
    // the README's, its second tests/data/policies/seed-quickstart.yaml), as written there.
    let with_secret = format!(
        "{HEADER}\
spec:
  verification:
    exclude:
      resources:
        namespaces:
        - kube-system
    keys:
    - name: first-key
      publicKey: |
        -----BEGIN PUBLIC KEY-----
        ...
        -----END PUBLIC KEY-----
    images:
    - namePattern: registry.example.org/myproject/*
      # Your secret reference must be included here
      secretRef:
        name: your-secret
        namespace: your-namespace
      keys:
      - name: first-key
"
    );
    assert_eq!(unknown(&with_secret), Vec::<String>::new());
}

/// The YAML blocks of a Markdown file that are policies or parts of one: whole manifests, a
/// `spec:`, or a piece of `spec.verification` (indented by four spaces).
fn policy_blocks(markdown: &str) -> Vec<String> {
    let mut blocks = Vec::new();
    let mut lines = markdown.lines();
    while let Some(line) = lines.next() {
        if line.trim() != "```yaml" {
            continue;
        }
        let block: Vec<&str> = lines.by_ref().take_while(|l| l.trim() != "```").collect();
        let block = block.join("\n") + "\n";
        if block.starts_with("apiVersion:") || block.starts_with("spec:") {
            blocks.push(block);
        } else if block.starts_with("    ") {
            blocks.push(format!("spec:\n  verification:\n{block}"));
        }
    }
    blocks
}

#[test]
fn the_policy_examples_of_the_docs_have_no_unknown_field() {
    let mut checked = 0;
    for file in ["../README.md", "../charts/image-policy-webhook/README.md"] {
        for block in policy_blocks(&repo_file(file)) {
            assert_eq!(unknown(&block), Vec::<String>::new(), "{file}:\n{block}");
            checked += 1;
        }
    }
    // The README's policy, its broad-and-narrow piece, trusted roots, keyless, and the chart's
    // trusted root: a test that found no block would prove nothing.
    assert!(checked >= 5, "only {checked} policy examples found");
}

#[test]
fn schemas_that_keep_unknown_fields_or_are_maps_are_respected() {
    let schema: JSONSchemaProps = serde_json::from_value(serde_json::json!({
        "type": "object",
        "properties": {
            "free": {
                "type": "object",
                "x-kubernetes-preserve-unknown-fields": true,
                "properties": {"pinned": {"type": "object", "properties": {"a": {"type": "string"}}}}
            },
            "labels": {"type": "object", "additionalProperties": {"type": "string"}},
            "ports": {
                "type": "object",
                "additionalProperties": {"type": "object", "properties": {"port": {"type": "integer"}}}
            },
            "anything": {"type": "object", "additionalProperties": true},
            "template": {
                "type": "object",
                "x-kubernetes-embedded-resource": true,
                "properties": {"spec": {"type": "object", "properties": {}}}
            },
            "count": {"type": "integer"},
            "list": {"type": "array", "items": {"type": "object", "properties": {"a": {"type": "string"}}}}
        }
    }))
    .expect("schema");
    let value: Value = serde_yaml::from_str(
        "\
free: {whatever: 1, pinned: {a: x, b: y}}
labels: {any: thing}
ports: {http: {port: 80, prot: TCP}}
anything: {x: {y: z}}
template: {apiVersion: v1, kind: Pod, metadata: {name: x}, spec: {}, extra: 1}
count: {not: an integer}
list: [{a: x}, {b: y}]
\"a.b\": 1
2: two
apiVersion: v1
",
    )
    .expect("yaml");
    let mut found = Vec::new();
    unknown_in(&schema, &value, "", false, &mut found);
    let paths: Vec<&str> = found.iter().map(|f| f.path.as_str()).collect();
    assert_eq!(
        paths,
        [
            "free.pinned.b",
            "ports.http.prot",
            "template.extra",
            "list[1].b",
            "[\"a.b\"]",
            "2",
            "apiVersion"
        ]
    );
}

#[test]
fn suggestions_are_near_names_only() {
    assert_eq!(distance("namepattern", "namepattern"), 0);
    assert_eq!(distance("kes", "keys"), 1);
    assert_eq!(distance("prot", "port"), 2);
    assert_eq!(distance("", "abc"), 3);
    let known: BTreeMap<String, JSONSchemaProps> = ["name", "publicKey", "keyless"]
        .into_iter()
        .map(|k| (k.to_owned(), JSONSchemaProps::default()))
        .collect();
    assert_eq!(
        nearest("PUBLICKEY", Some(&known)).as_deref(),
        Some("publicKey")
    );
    assert_eq!(nearest("keyles", Some(&known)).as_deref(), Some("keyless"));
    assert_eq!(
        nearest("nm", Some(&known)),
        None,
        "two edits of two letters"
    );
    assert_eq!(nearest("secretRef", Some(&known)), None);
    assert_eq!(nearest("name", None), None);
}

/// A policy that `match` and `check` can use, with two fields the API server drops.
pub(crate) fn dropped_secret_refs() -> String {
    let quickstart = repo_file("tests/data/policies/seed-quickstart.yaml");
    let with_typos = quickstart
        .replace(
            "    keys:\n    - name: cosign-key\n",
            "    keys:\n    - name: cosign-key\n      secretref: {name: pull}\n",
        )
        .replace(
            "    - namePattern: gcr.io/projectsigstore/cosign*\n",
            "    - namePattern: gcr.io/projectsigstore/cosign*\n      secretref: {name: pull}\n",
        );
    assert_eq!(with_typos.matches("secretref").count(), 2, "{with_typos}");
    with_typos
}
