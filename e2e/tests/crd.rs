//! The ClusterImagePolicy API on a real kube-apiserver: the generated CRD is accepted, the
//! seed's policy is stored, and `kubectl get` prints the documented columns.

use std::time::Duration;

use image_policy_e2e::{eventually, image_policy, kubectl, operator_data};

const CRD: &str = "clusterimagepolicies.signing.apps.tanzu.vmware.com";

fn install_crd() {
    let crd = image_policy(&["crd"]).expect_ok("image-policy crd");
    kubectl(&["apply", "--dry-run=client", "-f", "-"], Some(&crd))
        .expect_ok("client dry-run of the CRD");
    kubectl(&["apply", "--dry-run=server", "-f", "-"], Some(&crd))
        .expect_ok("server dry-run of the CRD");
    kubectl(&["apply", "-f", "-"], Some(&crd)).expect_ok("apply the CRD");
    kubectl(
        &[
            "wait",
            "--for=condition=Established",
            "--timeout=60s",
            &format!("crd/{CRD}"),
        ],
        None,
    )
    .expect_ok("CRD established");
}

#[test]
fn the_crd_is_served_and_prints_the_documented_columns() {
    install_crd();
    let policy = operator_data("policies/seed-quickstart.yaml");
    // Discovery of a new CRD can lag its Established condition by a moment.
    eventually(Duration::from_secs(30), "apply the seed policy", || {
        kubectl(&["apply", "-f", "-"], Some(&policy))
            .ok
            .then_some(())
    });
    let table = kubectl(&["get", "clusterimagepolicies"], None).expect_ok("kubectl get");
    let header: Vec<&str> = table
        .lines()
        .next()
        .unwrap_or_default()
        .split_whitespace()
        .collect();
    assert_eq!(
        header,
        [
            "NAME", "READY", "REASON", "KEYS", "PATTERNS", "REFUSED", "AGE"
        ],
        "{table}"
    );
    assert!(
        table
            .lines()
            .nth(1)
            .is_some_and(|l| l.starts_with("image-policy ")),
        "{table}"
    );

    let stored = kubectl(
        &["get", "clusterimagepolicy", "image-policy", "-o", "json"],
        None,
    )
    .expect_ok("get -o json");
    let stored: serde_json::Value = serde_json::from_str(&stored).expect("json");
    let verification = &stored["spec"]["verification"];
    assert_eq!(
        verification["images"][0]["namePattern"],
        "gcr.io/projectsigstore/cosign*"
    );
    assert_eq!(
        verification["exclude"]["resources"]["namespaces"][0],
        "kube-system"
    );
    assert!(
        verification["keys"][0]["publicKey"]
            .as_str()
            .is_some_and(|k| k.contains("BEGIN PUBLIC KEY"))
    );
    kubectl(&["delete", "clusterimagepolicy", "image-policy"], None).expect_ok("delete");
}

#[test]
fn the_schema_refuses_what_is_not_a_policy() {
    install_crd();
    let wrong = "apiVersion: signing.apps.tanzu.vmware.com/v1beta1\nkind: ClusterImagePolicy\n\
                 metadata: {name: schema-check}\nspec:\n  verification:\n    keys: \"not a list\"\n";
    let run = eventually(
        Duration::from_secs(30),
        "the API server answers for the new kind",
        || {
            let run = kubectl(&["apply", "--dry-run=server", "-f", "-"], Some(wrong));
            (!run.stderr.contains("no matches for kind")).then_some(run)
        },
    );
    assert!(!run.ok, "a string where keys belong must be refused");
    assert!(
        run.stderr.contains("spec.verification.keys"),
        "{}",
        run.stderr
    );
}

/// The fields added since the original are documented where a platform engineer looks first.
#[test]
fn kubectl_explain_documents_the_added_fields() {
    install_crd();
    for (field, words) in [
        (
            "clusterimagepolicy.spec.verification.trustedRoots",
            "trusted_root.json",
        ),
        (
            "clusterimagepolicy.spec.verification.trustedRoots.configMapRef",
            "operator's namespace",
        ),
        (
            "clusterimagepolicy.spec.verification.keys.transparencyLog",
            "transparency log",
        ),
        (
            "clusterimagepolicy.spec.verification.keys.trustedRoot",
            "public-good",
        ),
    ] {
        // The API server publishes a new CRD's schema a moment after it is established.
        let text = eventually(Duration::from_secs(60), field, || {
            let run = kubectl(&["explain", field], None);
            run.ok.then_some(run.stdout)
        });
        assert!(text.contains(words), "{field}: {text}");
    }
}
