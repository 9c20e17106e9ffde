//! What a current API server adds, shown on the real one (the release hack/k8s/go.mod pins):
//! the namespace exclusion that no label can fake, sidecar and ephemeral containers, field
//! validation and the CRD's own rules at apply time, and a ValidatingAdmissionPolicy beside
//! the webhook. (The Events of the cluster-scoped policy, shown by `kubectl describe
//! clusterimagepolicy`, are in events.rs.)

// A test crate: its helpers fail the test loudly by design.
#![allow(
    clippy::expect_used,
    clippy::unwrap_used,
    clippy::indexing_slicing,
    clippy::panic
)]

use std::collections::BTreeSet;
use std::time::Duration;

use image_policy_e2e::cluster::{
    Operator, WEBHOOK_NAME, install_crd, jsonpath, namespace, pem_of, policy_yaml,
    register_webhook, register_webhook_excluding, said, start_operator, unregister_webhooks,
};
use image_policy_e2e::{Run, eventually, image_policy, kubectl};
use image_policy_testsupport::cosign::Pusher;
use image_policy_testsupport::producers::Cosign;
use image_policy_testsupport::registry::{Registry, RegistryOptions};
use sigstore::crypto::SigningScheme;

/// What every test here starts from: a registry with the demo images, the operator as the
/// webhook (unmatched images refused), and the seed's policy for the registry in force.
struct Setup {
    registry: Registry,
    operator: Operator,
    port: u16,
    _dir: tempfile::TempDir,
}

impl Setup {
    async fn new(namespaces: &[&str]) -> Setup {
        let registry = Registry::start(RegistryOptions::default());
        let demo = Cosign::new(&registry)
            .push_demo(&Pusher::new(&registry))
            .await;
        install_crd();
        for ns in ["default", "kube-system", "image-policy-system"]
            .iter()
            .chain(namespaces)
        {
            namespace(ns);
        }
        let _ = kubectl(&["delete", "clusterimagepolicy", "--all"], None);
        let dir = tempfile::tempdir().expect("dir");
        let (operator, port) = start_operator(dir.path(), &registry.ca_path(), false);
        register_webhook(port);
        let policy = policy_yaml(
            "image-policy",
            &registry.host(),
            &[("first-key", &demo.key.public_pem)],
            &["first-key"],
        );
        eventually(Duration::from_secs(30), "the policy is accepted", || {
            kubectl(&["apply", "-f", "-"], Some(&policy))
                .ok
                .then_some(())
        });
        let setup = Setup {
            registry,
            operator,
            port,
            _dir: dir,
        };
        // Enforced: an image signed by another key is refused.
        eventually(Duration::from_secs(30), "the policy is enforced", || {
            let run = kubectl(
                &[
                    "run",
                    "probe",
                    &format!("--image={}", setup.other()),
                    "--dry-run=server",
                ],
                None,
            );
            run.stderr.contains("is not signed.").then_some(())
        });
        setup
    }

    /// The image the policy's key signed.
    fn signed(&self) -> String {
        format!("{}/demo/signed:v1", self.registry.host())
    }

    /// An image signed by another key: refused with the original's words alone.
    fn other(&self) -> String {
        format!("{}/demo/other-key:v1", self.registry.host())
    }
}

impl Drop for Setup {
    fn drop(&mut self) {
        let _ = kubectl(&["delete", "clusterimagepolicy", "--all"], None);
        unregister_webhooks();
    }
}

/// The original's denial of `image`, as kubectl prints it.
fn not_signed(image: &str) -> String {
    format!(
        "Error from server (The image: {image} is not signed.): admission webhook \"{WEBHOOK_NAME}\" denied the request: The image: {image} is not signed.\n"
    )
}

/// `kubectl -n NS run NAME --image=IMAGE --restart=Never ARGS...`.
fn run_pod(ns: &str, name: &str, image: &str, args: &[&str]) -> Run {
    let image = format!("--image={image}");
    let mut all = vec!["-n", ns, "run", name, &image, "--restart=Never"];
    all.extend(args);
    kubectl(&all, None)
}

/// The API server's own version and kubectl's, both the pinned release.
#[test]
fn the_suite_runs_on_the_pinned_release() {
    let go_mod =
        std::fs::read_to_string(format!("{}/../hack/k8s/go.mod", env!("CARGO_MANIFEST_DIR")))
            .expect("hack/k8s/go.mod");
    let pinned = go_mod
        .lines()
        .find_map(|l| l.trim().strip_prefix("k8s.io/kubernetes "))
        .expect("k8s.io/kubernetes in hack/k8s/go.mod")
        .trim()
        .to_owned();
    let versions: serde_json::Value = serde_json::from_str(
        &kubectl(&["version", "-o", "json"], None).expect_ok("kubectl version"),
    )
    .expect("JSON");
    eprintln!("pinned {pinned}; kubectl version: {versions}");
    assert_eq!(versions["clientVersion"]["gitVersion"], pinned.as_str());
    assert_eq!(versions["serverVersion"]["gitVersion"], pinned.as_str());
}

/// The chart's exclusion of kube-system and its own namespace cannot be had by a label: the
/// API server keeps a namespace's `kubernetes.io/metadata.name` its name whatever it is asked
/// to set, one labelled otherwise like kube-system is checked, and `matchConditions` on the
/// request's namespace exclude the chart's namespaces without any selector.
#[tokio::test(flavor = "multi_thread")]
async fn a_namespace_labelled_to_look_like_kube_system_is_still_checked() {
    const NS: &str = "lookalike-e2e";
    let setup = Setup::new(&[NS]).await;

    // The protected label cannot be set to another name: the API server puts the name back.
    let relabel = kubectl(
        &[
            "label",
            "--overwrite",
            "namespace",
            NS,
            "kubernetes.io/metadata.name=kube-system",
        ],
        None,
    );
    eprintln!("label as kube-system: {}", said(&relabel));
    assert_eq!(
        jsonpath(
            &["get", "namespace", NS],
            "{.metadata.labels.kubernetes\\.io/metadata\\.name}"
        ),
        NS
    );
    // Every other label kube-system might carry: still checked.
    kubectl(
        &[
            "label",
            "--overwrite",
            "namespace",
            NS,
            "name=kube-system",
            "kubernetes.io/cluster-service=true",
        ],
        None,
    )
    .expect_ok("label the namespace");
    let other = setup.other();
    let run = run_pod(NS, "refused", &other, &[]);
    assert_eq!(run.stderr, not_signed(&other), "{}", said(&run));
    // kube-system itself is never intercepted.
    let run = run_pod("kube-system", "lookalike-e2e", &other, &[]);
    assert_eq!(said(&run), "pod/lookalike-e2e created\n");
    let _ = kubectl(
        &["-n", "kube-system", "delete", "pod", "lookalike-e2e"],
        None,
    );

    // matchConditions alone: image-policy-system is excluded by the request's namespace
    // (the policy itself does not exclude it, so the webhook would refuse there). The
    // configuration with the selector goes first; the one without is in force once the
    // lookalike namespace is refused again.
    unregister_webhooks();
    eventually(Duration::from_secs(30), "no webhook in force", || {
        run_pod(NS, "unchecked", &other, &["--dry-run=server"])
            .ok
            .then_some(())
    });
    register_webhook_excluding(setup.port, false);
    let selector = jsonpath(
        &["get", "validatingwebhookconfiguration", WEBHOOK_NAME],
        "{.webhooks[0].namespaceSelector}",
    );
    assert!(
        selector == "{}" || selector.is_empty(),
        "a selector is left: {selector}"
    );
    let run = eventually(
        Duration::from_secs(30),
        "the configuration without a selector in force",
        || {
            let run = run_pod(NS, "refused-again", &other, &["--dry-run=server"]);
            (!run.ok).then_some(run)
        },
    );
    assert_eq!(run.stderr, not_signed(&other));
    let run = run_pod("image-policy-system", "lookalike-e2e", &other, &[]);
    assert_eq!(said(&run), "pod/lookalike-e2e created\n");
    assert!(
        !setup
            .operator
            .log()
            .contains("image-policy-system is excluded"),
        "the request reached the operator"
    );
    let _ = kubectl(
        &[
            "-n",
            "image-policy-system",
            "delete",
            "pod",
            "lookalike-e2e",
        ],
        None,
    );
    let _ = kubectl(&["delete", "namespace", NS, "--wait=false"], None);
}

/// A sidecar (an init container with `restartPolicy: Always`) and an ephemeral container
/// added by `kubectl debug` (the `pods/ephemeralcontainers` subresource) are checked like any
/// container: refused with the original's words when not signed by the policy's key.
#[tokio::test(flavor = "multi_thread")]
async fn sidecar_and_ephemeral_containers_are_checked() {
    const NS: &str = "sidecars-e2e";
    let setup = Setup::new(&[NS]).await;
    let (signed, other) = (setup.signed(), setup.other());
    let sidecar = |image: &str| {
        format!(
            "--overrides={{\"spec\":{{\"initContainers\":[{{\"name\":\"log\",\"image\":\"{image}\",\"restartPolicy\":\"Always\"}}]}}}}"
        )
    };

    let run = run_pod(NS, "bad-sidecar", &signed, &[&sidecar(&other)]);
    assert_eq!(run.stderr, not_signed(&other), "{}", said(&run));
    let run = run_pod(NS, "sidecar", &signed, &[&sidecar(&signed)]);
    assert_eq!(said(&run), "pod/sidecar created\n");
    // The API server kept it as a sidecar.
    assert_eq!(
        jsonpath(
            &["-n", NS, "get", "pod", "sidecar"],
            "{.spec.initContainers[0].restartPolicy}"
        ),
        "Always"
    );

    // kubectl debug adds an ephemeral container through pods/ephemeralcontainers.
    let debug = |image: &str, container: &str| {
        kubectl(
            &[
                "-n",
                NS,
                "debug",
                "sidecar",
                &format!("--image={image}"),
                &format!("--container={container}"),
                "--",
                "sleep",
                "1",
            ],
            None,
        )
    };
    let run = debug(&other, "refused");
    eprintln!("kubectl debug with {other}: {}", said(&run));
    assert!(!run.ok, "{}", said(&run));
    assert!(
        run.stderr.contains(&format!(
            "admission webhook \"{WEBHOOK_NAME}\" denied the request: The image: {other} is not signed.\n"
        )),
        "{}",
        said(&run)
    );
    let ephemeral = |what: &str| {
        jsonpath(
            &["-n", NS, "get", "pod", "sidecar"],
            &format!("{{.spec.ephemeralContainers[*].{what}}}"),
        )
    };
    assert_eq!(ephemeral("name"), "");
    let run = debug(&signed, "debugger");
    assert!(run.ok, "{}", said(&run));
    assert_eq!(ephemeral("name"), "debugger");
    assert_eq!(ephemeral("image"), signed);
    let metrics = setup.operator.metrics();
    assert!(
        metrics
            .lines()
            .any(|l| l.starts_with("image_policy_admission_requests_total{")
                && l.contains("kind=\"Pod\"")
                && l.contains("decision=\"denied\"")),
        "{metrics}"
    );
    let _ = kubectl(&["delete", "namespace", NS, "--wait=false"], None);
}

/// The field paths of every problem in `text` (lines `PATH: ...`), as the compiler (`image-policy
/// match`: `  PATH: message (Reason)`) and the API server (`* PATH: Reason: message`) list
/// them.
fn paths(text: &str) -> BTreeSet<String> {
    text.lines()
        .filter_map(|l| {
            let l = l.trim_start_matches(['*', ' ']);
            l.starts_with("spec.")
                .then(|| l.split_once(": ").map(|(path, _)| path.to_owned()))
                .flatten()
        })
        .collect()
}

/// `kubectl apply --dry-run=server` warns of unknown fields (or refuses them, strict), at the
/// path `image-policy match` warns of; the CRD's schema and CEL rules refuse at apply time a
/// key with both or neither of publicKey and keyless, an identity with both or neither of a
/// value and its expression, and two keys of one name, at the paths the compiler reports.
#[test]
fn field_validation_and_the_crds_rules_refuse_at_apply_time_with_the_compilers_paths() {
    install_crd();
    let _ = kubectl(&["delete", "clusterimagepolicy", "--all"], None);
    // No webhook: what is refused here, the API server refuses by itself.
    unregister_webhooks();
    let dir = tempfile::tempdir().expect("dir");
    let file = dir.path().join("policy.yaml");
    let signer = SigningScheme::ECDSA_P256_SHA256_ASN1
        .create_signer()
        .expect("signer");
    let pem = pem_of(&signer);
    let indented: String = pem.lines().map(|l| format!("        {l}\n")).collect();
    let header = "apiVersion: signing.apps.tanzu.vmware.com/v1beta1\nkind: ClusterImagePolicy\n\
                  metadata:\n  name: image-policy\nspec:\n  verification:\n";

    // An unknown field: a warning with --validate=warn, a refusal by default (strict).
    let typo = format!(
        "{header}    keys:\n    - name: k\n      publicKey: |\n{indented}    images:\n\
         \x20   - namePattern: registry.example.org/*\n      keys: [{{name: k}}]\n\
         \x20     secretref: {{name: creds}}\n"
    );
    std::fs::write(&file, &typo).expect("write");
    let cli = image_policy(&["match", "--policy", file.to_str().unwrap(), "x/y"]);
    eprintln!("image-policy match: {}", said(&cli));
    assert!(
        cli.stderr
            .contains("spec.verification.images[0].secretref: unknown field"),
        "{}",
        said(&cli)
    );
    let warned = eventually(
        Duration::from_secs(30),
        "the API server serves the CRD",
        || {
            let run = kubectl(
                &["apply", "--dry-run=server", "--validate=warn", "-f", "-"],
                Some(&typo),
            );
            run.ok.then_some(run)
        },
    );
    assert!(
        warned
            .stderr
            .contains("Warning: unknown field \"spec.verification.images[0].secretref\""),
        "{}",
        said(&warned)
    );
    let strict = kubectl(&["apply", "--dry-run=server", "-f", "-"], Some(&typo));
    assert!(
        !strict.ok
            && strict
                .stderr
                .contains("unknown field \"spec.verification.images[0].secretref\""),
        "{}",
        said(&strict)
    );
    assert!(!kubectl(&["get", "clusterimagepolicy", "image-policy"], None).ok);

    // Every rule the CRD shares with the compiler, broken once.
    let bad = format!(
        "{header}    keys:\n\
         \x20   - name: both\n      publicKey: |\n{indented}      keyless: {{issuer: https://issuer.example, subject: me@example.org}}\n\
         \x20   - name: neither\n\
         \x20   - name: both\n      keyless: {{issuer: https://issuer.example, issuerRegExp: 'https://.*', subject: ''}}\n\
         \x20   images:\n    - namePattern: registry.example.org/*\n      keys: [{{name: both}}]\n"
    );
    std::fs::write(&file, &bad).expect("write");
    let compiled = image_policy(&["match", "--policy", file.to_str().unwrap(), "x/y"]);
    eprintln!("image-policy match: {}", said(&compiled));
    assert!(!compiled.ok);
    let applied = kubectl(&["apply", "--dry-run=server", "-f", "-"], Some(&bad));
    eprintln!("kubectl apply --dry-run=server: {}", said(&applied));
    assert!(!applied.ok);
    let by_compiler = paths(&compiled.stderr);
    let by_server = paths(&applied.stderr);
    let expected: BTreeSet<String> = [
        "spec.verification.keys[0].keyless",
        "spec.verification.keys[1].publicKey",
        "spec.verification.keys[2].name",
        "spec.verification.keys[2].keyless.issuer",
        "spec.verification.keys[2].keyless.subject",
    ]
    .into_iter()
    .map(String::from)
    .collect();
    assert_eq!(by_compiler, expected, "{}", compiled.stderr);
    // The duplicate is refused by the list's key (x-kubernetes-list-map-keys: name), which the
    // API server reports at the entry, keys[2], the compiler at the entry's name; the rest at
    // the same paths.
    let server_as_compiler: BTreeSet<String> = by_server
        .iter()
        .map(|p| {
            if p == "spec.verification.keys[2]" {
                format!("{p}.name")
            } else {
                p.clone()
            }
        })
        .collect();
    assert_eq!(server_as_compiler, expected, "{}", applied.stderr);
    assert!(
        applied
            .stderr
            .contains("spec.verification.keys[2]: Duplicate value"),
        "{}",
        applied.stderr
    );
    // The rules leave a good policy alone.
    let good = format!(
        "{header}    keys:\n    - name: k\n      publicKey: |\n{indented}\
         \x20   - name: ci\n      keyless: {{issuer: https://token.actions.githubusercontent.com, subjectRegExp: 'https://github.com/org/.*'}}\n\
         \x20   images:\n    - namePattern: registry.example.org/*\n      keys: [{{name: k}}, {{name: ci}}]\n"
    );
    kubectl(&["apply", "--dry-run=server", "-f", "-"], Some(&good)).expect_ok("a good policy");
}

/// A ValidatingAdmissionPolicy and the webhook on one API server: each refuses what it
/// refuses, in its own words, and admits the rest; neither changes the other's decisions.
#[tokio::test(flavor = "multi_thread")]
async fn a_validating_admission_policy_and_the_webhook_do_not_interfere() {
    const NS: &str = "vap-e2e";
    let setup = Setup::new(&[NS]).await;
    let vap = format!(
        "apiVersion: admissionregistration.k8s.io/v1\nkind: ValidatingAdmissionPolicy\n\
         metadata:\n  name: require-team\nspec:\n  failurePolicy: Fail\n  matchConstraints:\n\
         \x20   resourceRules:\n    - apiGroups: ['']\n      apiVersions: [v1]\n      operations: [CREATE]\n      resources: [pods]\n\
         \x20 validations:\n  - expression: \"has(object.metadata.labels) && 'team' in object.metadata.labels\"\n\
         \x20   message: every Pod needs a team label\n\
         ---\napiVersion: admissionregistration.k8s.io/v1\nkind: ValidatingAdmissionPolicyBinding\n\
         metadata:\n  name: require-team\nspec:\n  policyName: require-team\n  validationActions: [Deny]\n\
         \x20 matchResources:\n    namespaceSelector:\n      matchLabels:\n        kubernetes.io/metadata.name: {NS}\n"
    );
    kubectl(&["apply", "-f", "-"], Some(&vap)).expect_ok("apply the ValidatingAdmissionPolicy");
    let (signed, other) = (setup.signed(), setup.other());
    // In force once a dry run is refused (a real create before then would be admitted).
    eventually(
        Duration::from_secs(60),
        "the ValidatingAdmissionPolicy in force",
        || {
            let run = run_pod(NS, "no-team", &signed, &["--dry-run=server"]);
            (!run.ok).then_some(())
        },
    );
    let by_vap = run_pod(NS, "no-team", &signed, &[]);
    eprintln!("signed, no team: {}", said(&by_vap));
    assert!(
        by_vap.stderr.contains(
            "ValidatingAdmissionPolicy 'require-team' with binding 'require-team' denied request: every Pod needs a team label"
        ),
        "{}",
        said(&by_vap)
    );
    assert!(!by_vap.stderr.contains(WEBHOOK_NAME));
    // Signed, with a team: both admit.
    let run = run_pod(NS, "team", &signed, &["--labels=team=a"]);
    assert_eq!(said(&run), "pod/team created\n");
    // Not signed, with a team: the webhook refuses, word for word.
    let run = run_pod(NS, "unsigned", &other, &["--labels=team=a"]);
    assert_eq!(run.stderr, not_signed(&other));
    // Neither: refused (the first to refuse answers).
    assert!(!run_pod(NS, "neither", &other, &[]).ok);
    // Outside the binding's namespace only the webhook decides.
    let run = run_pod("default", "vap-e2e-no-team", &signed, &[]);
    assert_eq!(said(&run), "pod/vap-e2e-no-team created\n");
    let _ = kubectl(&["delete", "pod", "vap-e2e-no-team"], None);
    kubectl(&["delete", "-f", "-"], Some(&vap)).expect_ok("delete the policy");
    let _ = kubectl(&["delete", "namespace", NS, "--wait=false"], None);
}
