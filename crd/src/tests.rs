//! The API's identity, field names and schema, as the original defined them.

use kube::{CustomResourceExt, Resource};

use super::*;

#[test]
fn api_identity_is_the_originals() {
    let crd = ClusterImagePolicy::crd();
    assert_eq!(
        crd.metadata.name.as_deref(),
        Some("clusterimagepolicies.signing.apps.tanzu.vmware.com")
    );
    assert_eq!(crd.spec.group, GROUP);
    assert_eq!(crd.spec.scope, "Cluster");
    assert_eq!(crd.spec.names.kind, "ClusterImagePolicy");
    assert_eq!(
        ClusterImagePolicy::api_version(&()),
        "signing.apps.tanzu.vmware.com/v1beta1"
    );
    let version = &crd.spec.versions[0];
    assert_eq!(version.name, "v1beta1");
    let status = version
        .subresources
        .as_ref()
        .and_then(|s| s.status.as_ref());
    assert!(status.is_some(), "status subresource");
    let columns: Vec<_> = version
        .additional_printer_columns
        .iter()
        .flatten()
        .map(|c| c.name.to_uppercase())
        .collect();
    // REFUSED: how many running workloads the policy would refuse now (status.running).
    assert_eq!(
        columns,
        ["READY", "REASON", "KEYS", "PATTERNS", "REFUSED", "AGE"]
    );
}

#[test]
fn the_seed_example_deserializes_with_its_field_names() {
    let yaml = r#"
apiVersion: signing.apps.tanzu.vmware.com/v1beta1
kind: ClusterImagePolicy
metadata:
  name: image-policy
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
      keys:
      - name: first-key
    - namePattern: registry.example.org/authproject/*
      secretRef:
        name: secret-name
        namespace: namespace-name
      keys:
      - name: first-key
"#;
    let policy: ClusterImagePolicy = serde_yaml::from_str(yaml).expect("seed example");
    let v = &policy.spec.verification;
    let excluded = v.exclude.as_ref().and_then(|e| e.resources.as_ref());
    assert_eq!(
        excluded.map(|r| r.namespaces.clone()),
        Some(vec!["kube-system".into()])
    );
    assert_eq!(v.keys[0].name, "first-key");
    assert!(
        v.keys[0]
            .public_key
            .as_deref()
            .is_some_and(|k| k.starts_with("-----BEGIN PUBLIC KEY-----\n"))
    );
    assert_eq!(
        v.images[1].name_pattern,
        "registry.example.org/authproject/*"
    );
    assert_eq!(
        v.images[1].secret_ref,
        Some(SecretRef {
            name: "secret-name".into(),
            namespace: Some("namespace-name".into())
        })
    );
    let back = serde_json::to_value(&policy.spec).expect("serialize");
    assert!(back["verification"]["images"][1]["secretRef"]["namespace"].is_string());
    assert!(back["verification"]["keys"][0]["publicKey"].is_string());
}

#[test]
fn modes_are_read_as_written_and_absent_means_none() {
    let yaml = r#"
verification:
  mode: Warn
  images:
  - namePattern: a/*
    keys: [{name: k}]
    mode: Enforce
  - namePattern: b/*
    keys: [{name: k}]
  - namePattern: c/*
    keys: [{name: k}]
    mode: Audit
"#;
    let spec: ClusterImagePolicySpec = serde_yaml::from_str(yaml).expect("spec");
    let v = &spec.verification;
    assert_eq!(v.mode.as_deref(), Some("Warn"));
    let modes: Vec<_> = v.images.iter().map(|i| i.mode.as_deref()).collect();
    // An unknown value is kept for the policy compiler to refuse with its path.
    assert_eq!(modes, [Some("Enforce"), None, Some("Audit")]);
    assert_eq!(
        modes
            .iter()
            .map(|m| m.and_then(Mode::parse))
            .collect::<Vec<_>>(),
        [Some(Mode::Enforce), None, None]
    );
    assert_eq!(Mode::default(), Mode::Enforce);
    let back = serde_json::to_value(&spec).expect("serialize");
    assert!(back["verification"]["images"][1].get("mode").is_none());
    assert_eq!(Mode::parse("warn"), None, "exact, as the CRD's enum");
}

#[test]
fn reasons_are_distinct_camel_case() {
    let names: std::collections::BTreeSet<_> = Reason::ALL.iter().map(|r| r.as_str()).collect();
    assert_eq!(names.len(), Reason::ALL.len());
    for name in names {
        assert!(
            name.chars().next().is_some_and(|c| c.is_ascii_uppercase()),
            "{name}"
        );
        assert!(name.chars().all(|c| c.is_ascii_alphanumeric()), "{name}");
    }
}
