//! cosign v3's signatures through a real API server: images in olareg (the OCI 1.1 referrers
//! API) signed and attached by the real cosign (v3.1.3, its default bundle format), a policy
//! with keys and a key that requires a transparency log entry from a trusted root in a
//! ConfigMap (a real Rekor v2 and timestamp authority, `testsupport::local_sigstore`), and
//! kubectl printing what the webhook decided (#11, #25).

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
use image_policy_testsupport::local_sigstore::LocalSigstore;
use image_policy_testsupport::producers::{Cosign, Format, Mode, Signing, attached_bundle};
use image_policy_testsupport::registry::{Registry, RegistryKind, RegistryOptions};

const ROOT_CONFIG_MAP: &str = "sigstore-local-root";

fn indented(pem: &str) -> String {
    pem.lines().map(|l| format!("        {l}\n")).collect()
}

fn run_pod(name: &str, image: &str) -> image_policy_e2e::Run {
    kubectl(
        &["run", name, &format!("--image={image}"), "--restart=Never"],
        None,
    )
}

fn denied(image: &str, why: &str) -> String {
    format!(
        "Error from server (The image: {image} is not signed. {why}): admission webhook \"{WEBHOOK_NAME}\" denied the request: The image: {image} is not signed. {why}\n"
    )
}

#[tokio::test(flavor = "multi_thread")]
async fn cosign_v3_bundles_are_found_and_verified_behind_the_api_server() {
    let registry = Registry::start(RegistryOptions {
        kind: RegistryKind::Olareg,
        ..RegistryOptions::default()
    });
    let pusher = Pusher::new(&registry);
    let cosign = Cosign::new(&registry);
    let host = registry.host();
    let sigstore = LocalSigstore::start();
    let (key, legacy, logged_key) = (
        cosign.generate_key(),
        cosign.generate_key(),
        cosign.generate_key(),
    );
    let image_at = |repository: &str, digest: &str| format!("{host}/{repository}@{digest}");

    let signed = pusher.push_image("v3/signed", "v1").await;
    cosign.sign(&image_at("v3/signed", &signed), &key, Signing::BUNDLE);
    let legacy_only = pusher.push_image("v3/legacy", "v1").await;
    cosign.sign(
        &image_at("v3/legacy", &legacy_only),
        &legacy,
        Signing::LEGACY_TAG,
    );
    let other = pusher.push_image("v3/other-key", "v1").await;
    cosign.sign(
        &image_at("v3/other-key", &other),
        &cosign.generate_key(),
        Signing::BUNDLE,
    );
    let attested = pusher.push_image("v3/attested", "v1").await;
    let slsa = "https://slsa.dev/provenance/v1";
    cosign.attest(
        &image_at("v3/attested", &attested),
        &key,
        "slsaprovenance1",
        &serde_json::json!({"buildDefinition": {"buildType": "https://example.com/build/v1"}}),
        Signing::new(Format::Bundle, Mode::Oci11),
    );
    // A replay, which cosign never writes: the real bundle of `v3/signed` attached to another
    // image by the imitation of cosign's referrer layout.
    let copied = pusher.push_image("v3/copied", "v1").await;
    let replayed = attached_bundle(&registry, "v3/signed", &signed).await;
    pusher
        .attach_referrer("v3/copied", &copied, &replayed)
        .await;
    pusher.push_image("v3/unsigned", "v1").await;
    // Logged in the real Rekor v2 and timestamped; and the same key, unlogged.
    let logged = pusher.push_image("tlog/logged", "v1").await;
    cosign.sign(
        &image_at("tlog/logged", &logged),
        &logged_key,
        Signing {
            sigstore: Some(&sigstore),
            ..Signing::BUNDLE
        },
    );
    let unlogged = pusher.push_image("tlog/unlogged", "v1").await;
    cosign.sign(
        &image_at("tlog/unlogged", &unlogged),
        &logged_key,
        Signing::BUNDLE,
    );

    install_crd();
    for ns in ["default", "kube-system", "image-policy-system"] {
        namespace(ns);
    }
    let _ = kubectl(&["delete", "clusterimagepolicy", "--all"], None);
    let _ = kubectl(
        &[
            "-n",
            "image-policy-system",
            "delete",
            "configmap",
            ROOT_CONFIG_MAP,
            "--ignore-not-found",
        ],
        None,
    );
    kubectl(
        &[
            "-n",
            "image-policy-system",
            "create",
            "configmap",
            ROOT_CONFIG_MAP,
            &format!(
                "--from-file=trusted_root.json={}",
                sigstore.trusted_root_path().display()
            ),
        ],
        None,
    )
    .expect_ok("the trusted root's ConfigMap");

    let dir = tempfile::tempdir().expect("dir");
    let (operator, port) = start_operator(dir.path(), &registry.ca_path(), false);
    register_webhook(port);
    let policy = format!(
        concat!(
            "apiVersion: signing.apps.tanzu.vmware.com/v1beta1\nkind: ClusterImagePolicy\n",
            "metadata:\n  name: image-policy\nspec:\n  verification:\n",
            "    exclude:\n      resources:\n        namespaces: [kube-system]\n",
            "    trustedRoots:\n    - name: local\n      configMapRef:\n        name: {root}\n",
            "    keys:\n",
            "    - name: v3-key\n      publicKey: |\n{v3}",
            "    - name: legacy-key\n      publicKey: |\n{legacy}",
            "    - name: logged-key\n      transparencyLog: Required\n      trustedRoot: local\n      publicKey: |\n{logged}",
            "    images:\n",
            "    - namePattern: {host}/v3/*\n      keys: [{{name: v3-key}}, {{name: legacy-key}}]\n",
            "    - namePattern: {host}/tlog/*\n      keys: [{{name: logged-key}}]\n",
        ),
        root = ROOT_CONFIG_MAP,
        v3 = indented(&key.public_pem),
        legacy = indented(&legacy.public_pem),
        logged = indented(&logged_key.public_pem),
        host = host,
    );
    kubectl(&["apply", "-f", "-"], Some(&policy)).expect_ok("apply the policy");
    let ready = || {
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
        (ready() == "PolicyActive").then_some(())
    });

    // By tag and by digest.
    let image = format!("{host}/v3/signed:v1");
    let run = eventually(Duration::from_secs(30), "the policy is enforced", || {
        let run = run_pod("v3-tag", &image);
        (!run.stderr.contains("not found. Image policy enforcement")).then_some(run)
    });
    assert_eq!(said(&run), "pod/v3-tag created\n");
    let by_digest = format!("{host}/v3/signed@{signed}");
    assert_eq!(
        said(&run_pod("v3-digest", &by_digest)),
        "pod/v3-digest created\n"
    );
    // A legacy signature of the other key of the same entry admits too ("any of").
    let legacy_image = format!("{host}/v3/legacy:v1");
    assert_eq!(
        said(&run_pod("v3-legacy", &legacy_image)),
        "pod/v3-legacy created\n"
    );

    // Refused, each with the sentence that says why.
    let unsigned = format!("{host}/v3/unsigned:v1");
    let run = run_pod("v3-unsigned", &unsigned);
    assert!(!run.ok);
    assert!(
        run.stderr.contains(&format!(
            "The image: {unsigned} is not signed. No signature was found for sha256:"
        )),
        "{}",
        said(&run)
    );
    for (name, image, why) in [
        (
            "v3-other",
            format!("{host}/v3/other-key:v1"),
            "Its Sigstore bundle is signed by none of the keys of the policy.".to_owned(),
        ),
        (
            "v3-attested",
            format!("{host}/v3/attested:v1"),
            format!(
                "It carries only attestations ({slsa}), and an attestation is not a signature."
            ),
        ),
        (
            "v3-copied",
            format!("{host}/v3/copied@{copied}"),
            "Its signatures are for other images, not for its digest.".to_owned(),
        ),
    ] {
        let run = run_pod(name, &image);
        assert!(!run.ok, "{name}: {}", said(&run));
        assert_eq!(run.stderr, denied(&image, &why), "{name}");
    }

    // The transparency log: required, against the trusted root of the ConfigMap.
    let logged_image = format!("{host}/tlog/logged:v1");
    assert_eq!(
        said(&run_pod("tlog-logged", &logged_image)),
        "pod/tlog-logged created\n"
    );
    let unlogged_image = format!("{host}/tlog/unlogged:v1");
    let run = run_pod("tlog-unlogged", &unlogged_image);
    assert!(!run.ok);
    assert!(
        run.stderr.contains(&format!(
            "The image: {unlogged_image} is not signed. Its signature has no transparency log entry that verifies against the trusted root local:"
        )),
        "{}",
        said(&run)
    );

    // The ConfigMap gone: the key that needs the root admits nothing, and the status says so.
    kubectl(
        &[
            "-n",
            "image-policy-system",
            "delete",
            "configmap",
            ROOT_CONFIG_MAP,
        ],
        None,
    )
    .expect_ok("delete the trusted root");
    eventually(Duration::from_secs(30), "the status names the root", || {
        (ready() == "TrustedRootUnavailable").then_some(())
    });
    let message = kubectl(
        &[
            "get",
            "clusterimagepolicy",
            "image-policy",
            "-o",
            "jsonpath={.status.conditions[0].message}",
        ],
        None,
    )
    .stdout;
    assert!(
        message.contains(
            "trusted root \"local\" cannot be used: ConfigMap sigstore-local-root was not found"
        ),
        "{message}"
    );
    let run = run_pod("tlog-gone", &logged_image);
    assert!(!run.ok, "{}", said(&run));
    assert!(
        run.stderr
            .contains("The trusted root local that its key requires cannot be used"),
        "{}",
        said(&run)
    );
    // The other keys still work.
    assert_eq!(said(&run_pod("v3-again", &image)), "pod/v3-again created\n");

    for pod in [
        "v3-tag",
        "v3-digest",
        "v3-legacy",
        "tlog-logged",
        "v3-again",
    ] {
        let _ = kubectl(&["delete", "pod", pod, "--wait=false"], None);
    }
    let _ = kubectl(&["delete", "clusterimagepolicy", "image-policy"], None);
    drop(operator);
    drop(sigstore);
}
