//! The product end to end: a real kube-apiserver calls `image-policy run` as a validating
//! webhook registered by URL, with a real registry holding signed and unsigned images, and
//! `kubectl` prints what the original's documentation shows, word for word.

// A test crate: its helpers fail the test loudly by design.
#![allow(
    clippy::expect_used,
    clippy::unwrap_used,
    clippy::indexing_slicing,
    clippy::panic
)]

use std::time::Duration;

use image_policy_e2e::cluster::{
    WEBHOOK_NAME, namespace, policy_yaml, register_webhook, said, start_operator,
};
use image_policy_e2e::{eventually, kubectl};
use image_policy_testsupport::cosign::Pusher;
use image_policy_testsupport::producers::Cosign;
use image_policy_testsupport::registry::{Registry, RegistryOptions};

#[tokio::test(flavor = "multi_thread")]
async fn the_seed_transcripts_and_the_policy_lifecycle() {
    let registry = Registry::start(RegistryOptions::default());
    let pusher = Pusher::new(&registry);
    // Signed by the real cosign, in the `.sig` layout of the seed's transcript.
    let demo = Cosign::new(&registry).push_demo(&pusher).await;
    let (first, other) = (demo.key, demo.other_key);
    let host = registry.host();

    image_policy_e2e::cluster::install_crd();
    for ns in ["default", "kube-system", "excluded", "image-policy-system"] {
        namespace(ns);
    }
    let _ = kubectl(&["delete", "clusterimagepolicy", "--all"], None);

    let dir = tempfile::tempdir().expect("dir");
    let (operator, port) = start_operator(dir.path(), &registry.ca_path(), true);
    register_webhook(port);

    // No policy: admitted, with the original's warning.
    let run = eventually(Duration::from_secs(30), "the webhook is called", || {
        let run = kubectl(
            &["run", "nopolicy", "--image=busybox", "--restart=Never"],
            None,
        );
        run.stderr.contains("Warning:").then_some(run)
    });
    assert_eq!(
        said(&run),
        "Warning: clusterimagepolicies.signing.apps.tanzu.vmware.com \"image-policy\" not found. Image policy enforcement was not applied.\npod/nopolicy created\n"
    );

    // A policy with another name is refused on create; so is an invalid key, with its path.
    let first_pem = first.public_pem.clone();
    let wrong_name = kubectl(
        &["apply", "-f", "-"],
        Some(&policy_yaml(
            "my-policy",
            &host,
            &[("first-key", &first_pem)],
            &["first-key"],
        )),
    );
    assert!(
        !wrong_name.ok && wrong_name.stderr.contains("metadata.name"),
        "{}",
        said(&wrong_name)
    );
    let bad_key = kubectl(
        &["apply", "-f", "-"],
        Some(&policy_yaml(
            "image-policy",
            &host,
            &[("first-key", "not a key")],
            &["first-key"],
        )),
    );
    assert!(
        !bad_key.ok
            && bad_key
                .stderr
                .contains("spec.verification.keys[0].publicKey"),
        "{}",
        said(&bad_key)
    );

    // The seed's policy, for this registry.
    kubectl(
        &["apply", "-f", "-"],
        Some(&policy_yaml(
            "image-policy",
            &host,
            &[("first-key", &first_pem)],
            &["first-key"],
        )),
    )
    .expect_ok("apply the policy");

    // The seed's three checks, word for word.
    let image = format!("{host}/demo/signed:v1");
    let run = eventually(Duration::from_secs(30), "the policy is enforced", || {
        let run = kubectl(
            &[
                "run",
                "cosign",
                &format!("--image={image}"),
                "--restart=Never",
                "--command",
                "--",
                "sleep",
                "900",
            ],
            None,
        );
        (!run
            .stderr
            .contains("not found. Image policy enforcement was not applied"))
        .then_some(run)
    });
    assert_eq!(said(&run), "pod/cosign created\n");

    let run = kubectl(&["run", "bb", "--image=busybox", "--restart=Never"], None);
    assert_eq!(
        said(&run),
        "Warning: busybox did not match any image policies. Container will be created as AllowUnmatchedImages flag is true.\npod/bb created\n"
    );

    let fail = format!("{host}/demo/other-key:v1");
    let run = kubectl(
        &[
            "run",
            "cosign-fail",
            &format!("--image={fail}"),
            "--command",
            "--",
            "sleep",
            "900",
        ],
        None,
    );
    assert!(!run.ok);
    assert_eq!(
        run.stderr,
        format!(
            "Error from server (The image: {fail} is not signed.): admission webhook \"{WEBHOOK_NAME}\" denied the request: The image: {fail} is not signed.\n"
        )
    );

    // A Deployment whose template is unsigned is refused at creation.
    let unsigned = format!("{host}/demo/unsigned:v1");
    let run = kubectl(
        &[
            "create",
            "deployment",
            "web",
            &format!("--image={unsigned}"),
        ],
        None,
    );
    assert!(!run.ok, "{}", said(&run));
    assert!(
        run.stderr.contains(&format!(
            "The image: {unsigned} is not signed. No signature was found for sha256:"
        )),
        "{}",
        said(&run)
    );

    // Spelling an image differently never escapes the policy (#16): a leading zero in the
    // registry's port reaches the same registry, and is checked there.
    let port = host.rsplit(':').next().expect("port");
    let zero = format!("127.0.0.1:0{port}/demo/unsigned:v1");
    let run = kubectl(
        &["run", "zero", &format!("--image={zero}"), "--restart=Never"],
        None,
    );
    assert!(!run.ok, "{}", said(&run));
    assert!(
        run.stderr.contains(&format!(
            "The image: {zero} is not signed. No signature was found for sha256:"
        )),
        "{}",
        said(&run)
    );
    // Docker Hub under each of its names, and with the default port written out: with a
    // pattern for docker.io, each is checked (and, with no network here, unreachable), none
    // is let through as unmatched.
    let with_hub = policy_yaml(
        "image-policy",
        &host,
        &[("first-key", &first_pem)],
        &["first-key"],
    ) + "    - namePattern: docker.io/library/*\n      keys: [{name: first-key}]\n";
    kubectl(&["apply", "-f", "-"], Some(&with_hub)).expect_ok("add a Docker Hub pattern");
    for (n, spelling) in [
        "registry.hub.docker.com/library/busybox",
        "docker.io:443/library/busybox",
        "registry-1.docker.io:443/library/busybox",
        "index.docker.io:0443/busybox",
    ]
    .into_iter()
    .enumerate()
    {
        let name = format!("hub-{n}");
        let run = eventually(
            Duration::from_secs(15),
            "the Docker Hub pattern is enforced",
            || {
                // A server-side dry run goes through admission and creates nothing.
                let run = kubectl(
                    &[
                        "run",
                        &name,
                        &format!("--image={spelling}"),
                        "--restart=Never",
                        "--dry-run=server",
                    ],
                    None,
                );
                (!run.stderr.contains("did not match any image policies")).then_some(run)
            },
        );
        assert!(!run.ok, "{spelling}: {}", said(&run));
        assert!(
            run.stderr
                .contains(&format!("The image: {spelling} is not signed.")),
            "{spelling}: {}",
            said(&run)
        );
    }
    kubectl(
        &["apply", "-f", "-"],
        Some(&policy_yaml(
            "image-policy",
            &host,
            &[("first-key", &first_pem)],
            &["first-key"],
        )),
    )
    .expect_ok("the seed's policy again");

    // An excluded namespace is not checked.
    let run = kubectl(
        &[
            "-n",
            "excluded",
            "run",
            "free",
            &format!("--image={unsigned}"),
            "--restart=Never",
        ],
        None,
    );
    assert_eq!(said(&run), "pod/free created\n");

    // Editing the policy changes decisions without a restart: trust the other key too.
    let other_pem = other.public_pem.clone();
    kubectl(
        &["apply", "-f", "-"],
        Some(&policy_yaml(
            "image-policy",
            &host,
            &[("first-key", &first_pem), ("other-key", &other_pem)],
            &["first-key", "other-key"],
        )),
    )
    .expect_ok("edit the policy");
    eventually(Duration::from_secs(15), "the new key is trusted", || {
        let run = kubectl(
            &[
                "run",
                "cosign-ok",
                &format!("--image={fail}"),
                "--restart=Never",
                "--command",
                "--",
                "sleep",
                "900",
            ],
            None,
        );
        (said(&run) == "pod/cosign-ok created\n").then_some(())
    });

    // Removing the pattern (here: pointing it elsewhere) leaves the image unmatched, which
    // --allow-unmatched-images admits with its warning, again without a restart.
    let elsewhere = policy_yaml(
        "image-policy",
        "registry.invalid",
        &[("first-key", &first_pem)],
        &["first-key"],
    );
    kubectl(&["apply", "-f", "-"], Some(&elsewhere)).expect_ok("remove the pattern");
    eventually(Duration::from_secs(15), "the pattern is gone", || {
        let name = format!("unmatched-{}", rand_suffix());
        let run = kubectl(
            &[
                "run",
                &name,
                &format!("--image={unsigned}"),
                "--restart=Never",
            ],
            None,
        );
        said(&run)
            .starts_with(&format!(
                "Warning: {unsigned} did not match any image policies."
            ))
            .then_some(())
    });

    // Deleting the policy returns to admitting with the warning.
    kubectl(&["delete", "clusterimagepolicy", "image-policy"], None).expect_ok("delete the policy");
    eventually(Duration::from_secs(15), "no policy again", || {
        let run = kubectl(
            &[
                "run",
                &format!("again-{}", rand_suffix()),
                &format!("--image={unsigned}"),
                "--restart=Never",
            ],
            None,
        );
        run.stderr
            .contains("\"image-policy\" not found")
            .then_some(())
    });

    // SIGTERM: not ready at once, admissions still answered during --shutdown-delay (5 s)
    // while the API server stops sending them, then a clean exit; after that, fail closed.
    let mut operator = operator;
    let dry_run = |name: &str| {
        kubectl(
            &[
                "run",
                name,
                &format!("--image={image}"),
                "--restart=Never",
                "--dry-run=server",
            ],
            None,
        )
    };
    let terminated = std::time::Instant::now();
    operator.terminate();
    eventually(Duration::from_secs(2), "/readyz says 503", || {
        (!operator.ready()).then_some(())
    });
    // No policy now: the warning shows that the webhook itself answered.
    let run = dry_run("draining");
    assert_eq!(
        said(&run),
        "Warning: clusterimagepolicies.signing.apps.tanzu.vmware.com \"image-policy\" not found. Image policy enforcement was not applied.\npod/draining created (server dry run)\n"
    );
    assert!(
        terminated.elapsed() < Duration::from_secs(5),
        "the admission came after the delay"
    );
    let exit = operator.wait_exit(Duration::from_secs(20));
    eprintln!(
        "operator exited {exit:?} {:?} after SIGTERM",
        terminated.elapsed()
    );
    assert_eq!(exit, Ok(Some(0)), "exit after SIGTERM");
    assert!(
        terminated.elapsed() >= Duration::from_secs(5),
        "no drain delay"
    );
    let run = dry_run("stopped");
    assert!(
        !run.ok && run.stderr.contains("failed calling webhook"),
        "admitted without a webhook: {}",
        said(&run)
    );

    kubectl(
        &["delete", "validatingwebhookconfiguration", WEBHOOK_NAME],
        None,
    )
    .expect_ok("unregister");
    drop(operator);
}

fn rand_suffix() -> u32 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.subsec_nanos())
        .unwrap_or(0)
}
