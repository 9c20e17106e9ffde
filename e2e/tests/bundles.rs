//! cosign v3's signatures through a real API server: images in the real registry signed and
//! attached by Sigstore's own producers (@sigstore/sign, @sigstore/oci), a policy with keys
//! and a key that requires a transparency log entry from a trusted root in a ConfigMap
//! (@sigstore/mock's Rekor), and kubectl printing what the webhook decided (#11).

// A test crate: its helpers fail the test loudly by design.
#![allow(
    clippy::expect_used,
    clippy::unwrap_used,
    clippy::indexing_slicing,
    clippy::panic
)]

use std::time::Duration;

use image_policy_e2e::cluster::{
    Operator, WEBHOOK_NAME, free_port, install_crd, namespace, register_webhook, said, serving_cert,
};
use image_policy_e2e::{eventually, kubectl};
use image_policy_testsupport::cosign::{Pusher, public_key_pem};
use image_policy_testsupport::registry::{Registry, RegistryOptions};
use image_policy_testsupport::sigstore_js::{self, Key, Mocks};

const ROOT_CONFIG_MAP: &str = "sigstore-mock-root";

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
        plain_http: true,
        ..RegistryOptions::default()
    });
    let pusher = Pusher::new(&registry);
    let host = registry.host();
    let mocks = Mocks::start();
    let (key, logged_key) = (Key::new(), Key::new());
    let sign = |digest: &str, key: &Key, extra: &[&str]| {
        let mut args = vec!["--digest", digest, "--key", key.path()];
        args.extend_from_slice(extra);
        sigstore_js::sign(&args)
    };
    let attach = |repository: &str, digest: &str, bundle: &[u8], extra: &[&str]| {
        sigstore_js::attach(&format!("{host}/{repository}"), digest, bundle, extra);
    };

    let signed = pusher.push_image("v3/signed", "v1").await;
    attach("v3/signed", &signed, &sign(&signed, &key, &[]), &[]);
    let legacy = sigstore::crypto::SigningScheme::ECDSA_P256_SHA256_ASN1
        .create_signer()
        .unwrap();
    let legacy_only = pusher.push_image("v3/legacy", "v1").await;
    pusher.sign("v3/legacy", &legacy_only, &legacy).await;
    let other = pusher.push_image("v3/other-key", "v1").await;
    attach("v3/other-key", &other, &sign(&other, &Key::new(), &[]), &[]);
    let attested = pusher.push_image("v3/attested", "v1").await;
    let slsa = "https://slsa.dev/provenance/v1";
    let provenance = sign(&attested, &key, &["--predicate-type", slsa]);
    attach(
        "v3/attested",
        &attested,
        &provenance,
        &["--predicate-type", slsa],
    );
    let copied = pusher.push_image("v3/copied", "v1").await;
    attach("v3/copied", &copied, &sign(&signed, &key, &[]), &[]);
    pusher.push_image("v3/unsigned", "v1").await;
    let logged = pusher.push_image("tlog/logged", "v1").await;
    let rekor = ["--rekor", mocks.rekor.as_str()];
    attach(
        "tlog/logged",
        &logged,
        &sign(&logged, &logged_key, &rekor),
        &[],
    );
    let unlogged = pusher.push_image("tlog/unlogged", "v1").await;
    attach(
        "tlog/unlogged",
        &unlogged,
        &sign(&unlogged, &logged_key, &[]),
        &[],
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
                mocks.trusted_root_path().display()
            ),
        ],
        None,
    )
    .expect_ok("the trusted root's ConfigMap");

    let dir = tempfile::tempdir().expect("dir");
    let (cert, tls_key) = serving_cert(dir.path());
    let port = free_port();
    let (operator, _) = Operator::start(
        dir.path(),
        "image-policy-local",
        port,
        None,
        &[
            "--tls-cert-file",
            cert.to_str().unwrap(),
            "--tls-key-file",
            tls_key.to_str().unwrap(),
            "--insecure-registry",
            &host,
        ],
    );
    register_webhook(port);
    let policy = format!(
        concat!(
            "apiVersion: signing.apps.tanzu.vmware.com/v1beta1\nkind: ClusterImagePolicy\n",
            "metadata:\n  name: image-policy\nspec:\n  verification:\n",
            "    exclude:\n      resources:\n        namespaces: [kube-system]\n",
            "    trustedRoots:\n    - name: mock\n      configMapRef:\n        name: {root}\n",
            "    keys:\n",
            "    - name: v3-key\n      publicKey: |\n{v3}",
            "    - name: legacy-key\n      publicKey: |\n{legacy}",
            "    - name: logged-key\n      transparencyLog: Required\n      trustedRoot: mock\n      publicKey: |\n{logged}",
            "    images:\n",
            "    - namePattern: {host}/v3/*\n      keys: [{{name: v3-key}}, {{name: legacy-key}}]\n",
            "    - namePattern: {host}/tlog/*\n      keys: [{{name: logged-key}}]\n",
        ),
        root = ROOT_CONFIG_MAP,
        v3 = indented(&key.public_pem),
        legacy = indented(&public_key_pem(&legacy)),
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
    let hex = |d: &str| d.trim_start_matches("sha256:").to_owned();
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
    let _ = hex;

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
            "The image: {unlogged_image} is not signed. Its signature has no transparency log entry that verifies against the trusted root mock:"
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
            "trusted root \"mock\" cannot be used: ConfigMap sigstore-mock-root was not found"
        ),
        "{message}"
    );
    let run = run_pod("tlog-gone", &logged_image);
    assert!(!run.ok, "{}", said(&run));
    assert!(
        run.stderr
            .contains("The trusted root mock that its key requires cannot be used"),
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
}
