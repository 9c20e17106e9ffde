//! Registry credentials through a real API server (docs/contract.md §4): a private registry (htpasswd
//! basic auth) whose signatures are readable only with a credential, found in each of the four
//! places alone, and a wrong credential early in the chain giving way to a right one later.

// A test crate: its helpers fail the test loudly by design.
#![allow(
    clippy::expect_used,
    clippy::unwrap_used,
    clippy::indexing_slicing,
    clippy::panic
)]

use std::time::Duration;

use image_policy_e2e::cluster::{
    WEBHOOK_NAME, namespace, pem_of, register_webhook, said, start_operator,
};
use image_policy_e2e::{eventually, kubectl};
use image_policy_testsupport::cosign::Pusher;
use image_policy_testsupport::registry::{Registry, RegistryOptions};
use sigstore::crypto::SigningScheme;

const USER: &str = "alice";
const PASSWORD: &str = "right-password";

fn docker_secret(ns: &str, name: &str, server: &str, password: &str) {
    let _ = kubectl(&["-n", ns, "delete", "secret", name], None);
    kubectl(
        &[
            "-n",
            ns,
            "create",
            "secret",
            "docker-registry",
            name,
            &format!("--docker-server={server}"),
            &format!("--docker-username={USER}"),
            &format!("--docker-password={password}"),
        ],
        None,
    )
    .expect_ok("create a pull secret");
}

fn service_account_pulls(ns: &str, account: &str, secret: &str) {
    let _ = kubectl(&["-n", ns, "create", "serviceaccount", account], None);
    let patch = format!("{{\"imagePullSecrets\": [{{\"name\": \"{secret}\"}}]}}");
    kubectl(
        &["-n", ns, "patch", "serviceaccount", account, "-p", &patch],
        None,
    )
    .expect_ok("patch the service account");
}

fn run_pod(ns: &str, name: &str, image: &str, pull_secret: Option<&str>) -> String {
    let mut args = vec!["-n", ns, "run", name, "--image", image, "--restart=Never"];
    let overrides;
    if let Some(secret) = pull_secret {
        overrides = format!(
            "--overrides={{\"spec\": {{\"imagePullSecrets\": [{{\"name\": \"{secret}\"}}]}}}}"
        );
        args.push(&overrides);
    }
    said(&kubectl(&args, None))
}

#[tokio::test(flavor = "multi_thread")]
async fn each_credential_source_alone_and_a_wrong_one_giving_way() {
    let registry = Registry::start(RegistryOptions {
        basic_auth: Some((USER.into(), PASSWORD.into())),
        ..RegistryOptions::default()
    });
    let pusher = Pusher::new(&registry);
    let signer = SigningScheme::ECDSA_P256_SHA256_ASN1
        .create_signer()
        .expect("signer");
    for repo in ["private/app", "private-ref/app"] {
        let digest = pusher.push_image(repo, "v1").await;
        pusher.sign(repo, &digest, &signer).await;
    }
    let host = registry.host();
    let (image, ref_image) = (
        format!("{host}/private/app:v1"),
        format!("{host}/private-ref/app:v1"),
    );

    image_policy_e2e::cluster::install_crd();
    let spaces = [
        "image-policy-system",
        "cred-none",
        "cred-pod",
        "cred-sa",
        "cred-ref",
        "cred-fallback",
        "cred-chain",
        "cred-secrets",
    ];
    for ns in spaces {
        namespace(ns);
    }
    let dir = tempfile::tempdir().expect("dir");
    let (operator, port) = start_operator(dir.path(), &registry.ca_path(), false);
    register_webhook(port);

    let pem: String = pem_of(&signer)
        .lines()
        .map(|l| format!("        {l}\n"))
        .collect();
    let policy = format!(
        "apiVersion: signing.apps.tanzu.vmware.com/v1beta1\nkind: ClusterImagePolicy\nmetadata:\n  name: image-policy\nspec:\n  verification:\n\
         \x20   exclude:\n      resources:\n        namespaces: [kube-system]\n    keys:\n    - name: k\n      publicKey: |\n{pem}\
         \x20   images:\n    - namePattern: {host}/private/*\n      keys: [{{name: k}}]\n\
         \x20   - namePattern: {host}/private-ref/*\n      keys: [{{name: k}}]\n      secretRef: {{name: ref-cred, namespace: cred-secrets}}\n"
    );
    kubectl(&["apply", "-f", "-"], Some(&policy)).expect_ok("policy");

    // Without any credential the registry refuses, and the denial says so.
    let out = eventually(Duration::from_secs(30), "the policy is enforced", || {
        let out = run_pod("cred-none", "p", &image, None);
        out.contains("Error from server").then_some(out)
    });
    assert!(
        out.contains(&format!(
            "The image: {image} is not signed. The registry {host} refused the credentials."
        )),
        "{out}"
    );
    assert!(!out.contains(PASSWORD), "{out}");

    // 1. The Pod's own imagePullSecrets.
    docker_secret("cred-pod", "regcred", &host, PASSWORD);
    assert_eq!(
        run_pod("cred-pod", "p", &image, Some("regcred")),
        "pod/p created\n"
    );

    // 2. Its service account's (default).
    docker_secret("cred-sa", "regcred", &host, PASSWORD);
    service_account_pulls("cred-sa", "default", "regcred");
    assert_eq!(run_pod("cred-sa", "p", &image, None), "pod/p created\n");

    // 3. The matched entry's secretRef.
    docker_secret("cred-secrets", "ref-cred", &host, PASSWORD);
    assert_eq!(
        run_pod("cred-ref", "p", &ref_image, None),
        "pod/p created\n"
    );
    assert!(
        run_pod("cred-ref", "q", &image, None).contains("refused the credentials"),
        "no secretRef on that entry"
    );

    // 4. The image-policy-registry-credentials service account in the operator's namespace.
    docker_secret("image-policy-system", "fallback-cred", &host, PASSWORD);
    service_account_pulls(
        "image-policy-system",
        "image-policy-registry-credentials",
        "fallback-cred",
    );
    let out = eventually(
        Duration::from_secs(20),
        "the fallback account is read",
        || {
            let out = run_pod(
                "cred-fallback",
                &format!("p{}", std::process::id() % 1000),
                &image,
                None,
            );
            out.contains("created").then_some(out)
        },
    );
    assert!(out.ends_with("created\n"), "{out}");

    // A wrong credential first (the Pod's) and a right one later (the fallback) still admits:
    // the original stopped at the first; docs/contract.md §4 moves on.
    docker_secret("cred-chain", "wrong", &host, "wrong-password");
    assert_eq!(
        run_pod("cred-chain", "p", &image, Some("wrong")),
        "pod/p created\n"
    );

    kubectl(&["delete", "clusterimagepolicy", "image-policy"], None).expect_ok("delete the policy");
    kubectl(
        &["delete", "validatingwebhookconfiguration", WEBHOOK_NAME],
        None,
    )
    .expect_ok("unregister");
    for ns in spaces.iter().filter(|ns| **ns != "image-policy-system") {
        let _ = kubectl(&["delete", "namespace", ns, "--wait=false"], None);
    }
    let _ = kubectl(
        &[
            "-n",
            "image-policy-system",
            "delete",
            "serviceaccount",
            "image-policy-registry-credentials",
        ],
        None,
    );
    drop(operator);
}
