//! Required attestations through a real API server (#26): a policy requiring SLSA provenance
//! built from one repository, images signed and attested by the real cosign (v3.1.3, `cosign
//! attest --type slsaprovenance1`) in the real registry, and kubectl printing what the webhook
//! decided for Deployments: one whose image lacks the provenance is refused with the words of
//! docs/contract.md §3 (attestations), one whose provenance fails the condition is refused
//! with the condition's message, one with it is admitted.

// A test crate: its helpers fail the test loudly by design.
#![allow(
    clippy::expect_used,
    clippy::unwrap_used,
    clippy::indexing_slicing,
    clippy::panic
)]

use std::time::Duration;

use image_policy_e2e::cluster::{
    WEBHOOK_NAME, install_crd, namespace, register_webhook, said, start_operator,
};
use image_policy_e2e::{eventually, kubectl};
use image_policy_testsupport::cosign::Pusher;
use image_policy_testsupport::producers::{Cosign, Format, Mode, Signing};
use image_policy_testsupport::registry::{Registry, RegistryOptions};

const SLSA: &str = "https://slsa.dev/provenance/v1";

fn indented(pem: &str) -> String {
    pem.lines().map(|l| format!("        {l}\n")).collect()
}

/// An SLSA provenance v1 predicate of a build of `repository` on a GitHub-hosted runner.
fn provenance(repository: &str) -> serde_json::Value {
    serde_json::json!({
        "buildDefinition": {
            "buildType": "https://actions.github.io/buildtypes/workflow/v1",
            "externalParameters": {"workflow": {
                "repository": format!("https://github.com/{repository}"),
                "path": ".github/workflows/release.yml", "ref": "refs/tags/v1.0.0"}},
        },
        "runDetails": {"builder": {"id": "https://github.com/actions/runner/github-hosted"}},
    })
}

fn deployment(name: &str, image: &str) -> String {
    format!(
        "apiVersion: apps/v1\nkind: Deployment\nmetadata:\n  name: {name}\n  namespace: default\n\
         spec:\n  replicas: 0\n  selector:\n    matchLabels: {{app: {name}}}\n  template:\n\
         \x20   metadata:\n      labels: {{app: {name}}}\n    spec:\n      containers:\n\
         \x20     - name: app\n        image: {image}\n"
    )
}

#[tokio::test(flavor = "multi_thread")]
async fn a_deployment_needs_the_provenance_its_policy_requires() {
    let registry = Registry::start(RegistryOptions::default());
    let pusher = Pusher::new(&registry);
    let cosign = Cosign::new(&registry);
    let host = registry.host();
    let release = cosign.generate_key();
    let bundle = Signing::new(Format::Bundle, Mode::Legacy);

    let built = pusher.push_image("attested/built", "v1").await;
    let built = format!("{host}/attested/built@{built}");
    cosign.sign(&built, &release, bundle);
    cosign.attest(
        &built,
        &release,
        "slsaprovenance1",
        &provenance("acme/app"),
        bundle,
    );
    let forked = pusher.push_image("attested/forked", "v1").await;
    let forked = format!("{host}/attested/forked@{forked}");
    cosign.sign(&forked, &release, bundle);
    cosign.attest(
        &forked,
        &release,
        "slsaprovenance1",
        &provenance("evil/app"),
        bundle,
    );
    let bare = pusher.push_image("attested/bare", "v1").await;
    let bare_digest = bare.clone();
    let bare = format!("{host}/attested/bare@{bare}");
    cosign.sign(&bare, &release, bundle);

    install_crd();
    for ns in ["default", "kube-system", "image-policy-system"] {
        namespace(ns);
    }
    let _ = kubectl(&["delete", "clusterimagepolicy", "--all"], None);
    let dir = tempfile::tempdir().expect("dir");
    let (_operator, port) = start_operator(dir.path(), &registry.ca_path(), false);
    register_webhook(port);
    let policy = format!(
        concat!(
            "apiVersion: signing.apps.tanzu.vmware.com/v1beta1\nkind: ClusterImagePolicy\n",
            "metadata:\n  name: image-policy\nspec:\n  verification:\n",
            "    exclude:\n      resources:\n        namespaces: [kube-system]\n",
            "    keys:\n    - name: release-key\n      publicKey: |\n{pem}",
            "    images:\n    - namePattern: {host}/attested/*\n",
            "      keys: [{{name: release-key}}]\n",
            "      attestations:\n      - name: built-by-ci\n        predicateType: {slsa}\n",
            "        conditions:\n",
            "        - expression: predicate.buildDefinition.externalParameters.workflow.repository == \"https://github.com/acme/app\"\n",
            "          message: built from acme/app\n",
        ),
        pem = indented(&release.public_pem),
        host = host,
        slsa = SLSA,
    );
    // `kubectl explain` shows the new fields with their documentation.
    let explain = kubectl(
        &[
            "explain",
            "clusterimagepolicy.spec.verification.images.attestations",
        ],
        None,
    );
    assert!(
        explain.stdout.contains("predicateType") && explain.stdout.contains("conditions"),
        "{}",
        said(&explain)
    );
    kubectl(&["apply", "-f", "-"], Some(&policy)).expect_ok("apply the policy");
    let reason = || {
        kubectl(
            &[
                "get",
                "clusterimagepolicy",
                "image-policy",
                "-o",
                "jsonpath={.status.conditions[0].reason}",
            ],
            None,
        )
        .stdout
    };
    eventually(Duration::from_secs(30), "the policy is active", || {
        (reason() == "PolicyActive").then_some(())
    });

    // Signed, without provenance: refused, saying which attestation is missing.
    let hex = bare_digest.trim_start_matches("sha256:");
    let missing = format!(
        "The image: {bare} does not have the attestation \"built-by-ci\" ({SLSA}) its policy \
         requires. None of that type was found for {bare_digest}: none among its OCI referrers \
         (the referrers API or the tag sha256-{hex}), nor at its cosign attestation tag \
         sha256-{hex}.att."
    );
    let run = eventually(Duration::from_secs(30), "the policy is enforced", || {
        let run = kubectl(&["apply", "-f", "-"], Some(&deployment("bare", &bare)));
        (!run.ok).then_some(run)
    });
    assert!(
        run.stderr.contains(&format!(
            "admission webhook \"{WEBHOOK_NAME}\" denied the request: {missing}"
        )),
        "{}",
        said(&run)
    );

    // Provenance from another repository: refused with the condition's message.
    let run = kubectl(&["apply", "-f", "-"], Some(&deployment("forked", &forked)));
    assert!(!run.ok, "{}", said(&run));
    assert!(
        run.stderr.contains(&format!(
            "denied the request: The image: {forked} does not meet the conditions of its \
             attestation \"built-by-ci\" ({SLSA}): built from acme/app."
        )),
        "{}",
        said(&run)
    );

    // With it: admitted.
    let run = kubectl(&["apply", "-f", "-"], Some(&deployment("built", &built)));
    assert_eq!(said(&run), "deployment.apps/built created\n");

    // An expression that does not compile: the policy is refused with its field path.
    let broken = policy.replace(
        "== \"https://github.com/acme/app\"",
        "== \"https://github.com/acme/app\" &&",
    );
    let run = kubectl(&["apply", "-f", "-"], Some(&broken));
    assert!(
        !run.ok
            && run
                .stderr
                .contains("spec.verification.images[0].attestations[0].conditions[0].expression"),
        "{}",
        said(&run)
    );
    let _ = kubectl(
        &["delete", "deployment", "built", "--ignore-not-found"],
        None,
    );
}
