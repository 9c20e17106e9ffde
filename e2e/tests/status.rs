//! Status conditions on a real kube-apiserver: `image-policy run` (no webhook registered)
//! writes each ClusterImagePolicy's `Ready` condition and counts, which `kubectl get
//! clusterimagepolicies` prints; a condition that another field manager applies to the status
//! is kept when the operator writes its own; an invalid edit says that the last valid version
//! is still enforced; a missing `secretRef` Secret shows until it is created; and a killed
//! operator is ready again within seconds while a new replica takes the status lease over.

// A test crate: its helpers fail the test loudly by design.
#![allow(
    clippy::expect_used,
    clippy::unwrap_used,
    clippy::indexing_slicing,
    clippy::panic
)]

use std::path::Path;
use std::time::{Duration, Instant};

use image_policy_e2e::cluster::{Operator, free_port, openssl};
use image_policy_e2e::{eventually, kubectl};
use serde_json::Value;

/// The operator's namespace in this test: its own, so that a lease left by another test's
/// operator does not delay the first status writes.
const NAMESPACE: &str = "image-policy-status-e2e";
const POLICIES: [&str; 2] = ["image-policy", "other"];
/// Status is written within a second or two; this leaves room for a slow CI machine.
const SOON: Duration = Duration::from_secs(20);
/// A new replica takes the lease over once the old holder's 15 s lease has run out.
const TAKEOVER: Duration = Duration::from_secs(45);

/// Starts `image-policy run` as replica `pod` with the test's certificate, and returns it
/// with the time it took until `/readyz` answered 200.
fn start(dir: &Path, pod: &str) -> (Operator, Duration) {
    let (cert, key) = (dir.join("tls.crt"), dir.join("tls.key"));
    let args = [
        "--namespace",
        NAMESPACE,
        "--tls-cert-file",
        cert.to_str().unwrap(),
        "--tls-key-file",
        key.to_str().unwrap(),
    ];
    Operator::start(dir, pod, free_port(), None, &args)
}

/// Deletes what the test created, however it ends.
struct Cleanup;

impl Drop for Cleanup {
    fn drop(&mut self) {
        for name in POLICIES {
            let _ = kubectl(
                &["delete", "clusterimagepolicy", name, "--ignore-not-found"],
                None,
            );
        }
        let _ = kubectl(
            &[
                "delete",
                "namespace",
                NAMESPACE,
                "--ignore-not-found",
                "--wait=false",
            ],
            None,
        );
    }
}

/// A throwaway self-signed serving pair (no webhook is registered, so nobody checks it) and
/// a P-256 public key for the policy.
fn generate_keys(dir: &Path) -> String {
    let path = |name: &str| dir.join(name).to_str().unwrap().to_owned();
    openssl(&[
        "req",
        "-x509",
        "-newkey",
        "ec",
        "-pkeyopt",
        "ec_paramgen_curve:prime256v1",
        "-nodes",
        "-keyout",
        &path("tls.key"),
        "-out",
        &path("tls.crt"),
        "-days",
        "1",
        "-subj",
        "/CN=127.0.0.1",
    ]);
    openssl(&[
        "ecparam",
        "-name",
        "prime256v1",
        "-genkey",
        "-noout",
        "-out",
        &path("cosign.key"),
    ]);
    openssl(&[
        "ec",
        "-in",
        &path("cosign.key"),
        "-pubout",
        "-out",
        &path("cosign.pub"),
    ]);
    std::fs::read_to_string(dir.join("cosign.pub")).expect("public key")
}

/// A policy with one key and one pattern per entry of `patterns` (each with an optional
/// `secretRef` name in [`NAMESPACE`]).
fn policy(name: &str, public_key: &str, patterns: &[(&str, Option<&str>)]) -> String {
    let key: String = public_key
        .lines()
        .map(|l| format!("        {l}\n"))
        .collect();
    let images: String = patterns
        .iter()
        .map(|(pattern, secret)| {
            let secret = secret.map_or(String::new(), |s| {
                format!("      secretRef: {{name: {s}, namespace: {NAMESPACE}}}\n")
            });
            format!("    - namePattern: {pattern}\n      keys: [{{name: first-key}}]\n{secret}")
        })
        .collect();
    format!(
        "apiVersion: signing.apps.tanzu.vmware.com/v1beta1\nkind: ClusterImagePolicy\nmetadata:\n  name: {name}\n\
         spec:\n  verification:\n    keys:\n    - name: first-key\n      publicKey: |\n{key}    images:\n{images}"
    )
}

fn apply(yaml: &str) {
    // Discovery of a freshly established CRD can lag by a moment.
    let mut last = String::new();
    let started = Instant::now();
    while started.elapsed() < SOON * 3 {
        let run = kubectl(&["apply", "-f", "-"], Some(yaml));
        if run.ok {
            return;
        }
        last = run.stderr;
        std::thread::sleep(Duration::from_millis(200));
    }
    panic!(
        "kubectl apply the policy: not within {:?}: {last}",
        SOON * 3
    );
}

/// The policy as stored.
fn stored(name: &str) -> Value {
    let json = kubectl(&["get", "clusterimagepolicy", name, "-o", "json"], None)
        .expect_ok("kubectl get -o json");
    serde_json::from_str(&json).expect("policy JSON")
}

/// `kubectl get clusterimagepolicy NAME`'s columns READY, REASON, KEYS and PATTERNS.
fn columns(name: &str) -> Vec<String> {
    let row = kubectl(&["get", "clusterimagepolicy", name, "--no-headers"], None)
        .expect_ok("kubectl get");
    row.split_whitespace()
        .skip(1)
        .take(4)
        .map(str::to_owned)
        .collect()
}

/// Waits until the row reads `expected` and the status has observed the current
/// generation; returns the stored policy.
fn wait_for(name: &str, expected: [&str; 4], limit: Duration) -> Value {
    eventually(limit, &format!("{name} shows {expected:?}"), || {
        // The columns kubectl prints, and the same values in the object returned (one read
        // each: a status write between them must not pair one state's columns with another's
        // message).
        let printed = columns(name) == expected;
        let policy = stored(name);
        let field = |name: &str| ready(&policy).and_then(|c| c.get(name));
        let text = |value: Option<&Value>| match value {
            Some(Value::String(s)) => s.clone(),
            Some(other) => other.to_string(),
            None => String::new(),
        };
        let in_object = [
            text(field("status")),
            text(field("reason")),
            text(policy.pointer("/status/keys")),
            text(policy.pointer("/status/patterns")),
        ] == expected;
        let observed = field("observedGeneration");
        let current = printed && in_object && observed == policy.pointer("/metadata/generation");
        current.then_some(policy)
    })
}

/// The status condition of type `kind`.
fn condition<'a>(policy: &'a Value, kind: &str) -> Option<&'a Value> {
    policy
        .pointer("/status/conditions")?
        .as_array()?
        .iter()
        .find(|c| c["type"] == kind)
}

/// The operator's condition, wherever it is in the list.
fn ready(policy: &Value) -> Option<&Value> {
    condition(policy, "Ready")
}

fn message(policy: &Value) -> &str {
    ready(policy)
        .and_then(|c| c["message"].as_str())
        .unwrap_or_default()
}

fn transition_time(policy: &Value) -> String {
    ready(policy)
        .and_then(|c| c["lastTransitionTime"].as_str())
        .expect("lastTransitionTime")
        .to_owned()
}

/// Another writer's condition, applied to the status subresource with its own field manager.
const AUDITED: &str = r#"apiVersion: signing.apps.tanzu.vmware.com/v1beta1
kind: ClusterImagePolicy
metadata:
  name: image-policy
status:
  conditions:
  - type: Audited
    status: "True"
    reason: Reviewed
    message: reviewed by the e2e auditor
    lastTransitionTime: "2024-01-01T00:00:00Z"
"#;

/// With `image-policy` active, applies [`AUDITED`] as the field manager `e2e-auditor`: the
/// operator does not write its status because of it, and keeps it when it writes Ready for
/// a second pattern. Returns the policy as the operator wrote it.
fn another_writers_condition_is_kept(operator: &Operator, key: &str) -> Value {
    let writes = || operator.log().matches("Status written").count();
    let before = writes();
    kubectl(
        &[
            "apply",
            "--server-side",
            "--field-manager=e2e-auditor",
            "--subresource=status",
            "-f",
            "-",
        ],
        Some(AUDITED),
    )
    .expect_ok("apply the Audited condition");
    let applied = stored("image-policy");
    assert!(condition(&applied, "Audited").is_some(), "{applied}");
    // Time for the watch event and a reconcile that finds Ready as it should be.
    std::thread::sleep(Duration::from_secs(2));
    assert_eq!(writes(), before, "status written again for Audited alone");

    // A second pattern: Ready's message changes, and the operator applies its status again.
    apply(&policy(
        "image-policy",
        key,
        &[
            ("registry.example.org/*", None),
            ("other.example.org/*", None),
        ],
    ));
    let written = wait_for("image-policy", ["True", "PolicyActive", "1", "2"], SOON);
    assert_eq!(message(&written), "Enforcing 1 key and 2 patterns");
    let audited = condition(&written, "Audited");
    assert_eq!(
        audited.map(|c| (&c["status"], &c["reason"])),
        Some((&"True".into(), &"Reviewed".into())),
        "{written}"
    );
    written
}

#[test]
fn status_conditions_follow_the_policies_and_survive_a_restart() {
    image_policy_e2e::cluster::install_crd();
    // No webhook runs here: one an earlier test left would refuse the policies themselves.
    image_policy_e2e::cluster::unregister_webhooks();
    let dir = tempfile::tempdir().expect("tempdir");
    let key = generate_keys(dir.path());
    let _cleanup = Cleanup;
    for name in POLICIES {
        kubectl(
            &["delete", "clusterimagepolicy", name, "--ignore-not-found"],
            None,
        )
        .expect_ok("delete a leftover policy");
    }
    // A namespace left Terminating by an earlier run must be gone before it is made again.
    eventually(Duration::from_secs(60), "the namespace is active", || {
        let _ = kubectl(&["create", "namespace", NAMESPACE], None);
        let phase = kubectl(
            &[
                "get",
                "namespace",
                NAMESPACE,
                "-o",
                "jsonpath={.status.phase}",
            ],
            None,
        );
        (phase.stdout == "Active").then_some(())
    });

    let (operator, first_ready) = start(dir.path(), "status-e2e-a");
    eprintln!("operator ready (first start) after {first_ready:?}");

    // A valid policy: active, with its counts.
    let started = Instant::now();
    apply(&policy(
        "image-policy",
        &key,
        &[("registry.example.org/*", None)],
    ));
    let active = wait_for("image-policy", ["True", "PolicyActive", "1", "1"], SOON);
    eprintln!("PolicyActive shown after {:?}", started.elapsed());
    assert_eq!(message(&active), "Enforcing 1 key and 1 pattern");
    let active = another_writers_condition_is_kept(&operator, &key);
    let valid_generation = active["metadata"]["generation"]
        .as_i64()
        .expect("generation");

    // Another name: never enforced.
    apply(&policy("other", &key, &[("registry.example.org/*", None)]));
    let other = wait_for("other", ["False", "InvalidName", "0", "0"], SOON);
    assert!(
        message(&other).contains("only a ClusterImagePolicy named \"image-policy\" is enforced"),
        "{}",
        message(&other)
    );

    // A broken key: every problem with its field path, and the last valid version enforced.
    let broken = policy(
        "image-policy",
        "not a key",
        &[("registry.example.org/*", None)],
    );
    apply(&broken);
    let invalid = wait_for("image-policy", ["False", "InvalidKey", "1", "2"], SOON);
    let text = message(&invalid);
    assert!(
        text.starts_with("spec.verification.keys[0].publicKey: "),
        "{text}"
    );
    assert!(
        text.ends_with(&format!(
            "; the last valid version (generation {valid_generation}) is still enforced"
        )),
        "{text}"
    );
    let went_false = transition_time(&invalid);
    assert!(went_false >= transition_time(&active));

    // Broken differently, same reason: a new message, but no transition.
    apply(&policy(
        "image-policy",
        "still not a key",
        &[("registry.example.org/*", None)],
    ));
    let generation = invalid["metadata"]["generation"].as_i64().unwrap() + 1;
    let again = eventually(SOON, "the new generation is observed", || {
        let p = stored("image-policy");
        let observed = ready(&p).and_then(|c| c.get("observedGeneration"));
        (observed == Some(&generation.into())).then_some(p)
    });
    assert_eq!(transition_time(&again), went_false, "{again}");

    // Killed and replaced by a new replica: admissions are served again within seconds
    // from the current policy; the status lease is taken over once it runs out, and the new
    // leader reports that nothing valid is enforced (it never saw a valid version).
    drop(operator);
    let killed = Instant::now();
    let (operator, ready) = start(dir.path(), "status-e2e-b");
    eprintln!("operator ready after a restart in {ready:?} (/readyz 200)");
    let restarted = wait_for("image-policy", ["False", "InvalidKey", "0", "0"], TAKEOVER);
    eprintln!(
        "status rewritten by the new leader {:?} after the kill",
        killed.elapsed()
    );
    assert!(
        message(&restarted).ends_with(
            "; no valid version is enforced, so every workload is denied until the policy is fixed"
        ),
        "{}",
        message(&restarted)
    );
    assert!(condition(&restarted, "Audited").is_some(), "{restarted}");
    assert_eq!(columns("other"), ["False", "InvalidName", "0", "0"]);

    // Fixed, with a pattern whose secretRef names a missing Secret: enforced, but reported.
    let with_secret = policy(
        "image-policy",
        &key,
        &[
            ("registry.example.org/*", None),
            ("private.example.org/*", Some("pull-secret")),
        ],
    );
    apply(&with_secret);
    let missing = wait_for("image-policy", ["False", "SecretNotFound", "1", "2"], SOON);
    assert!(
        message(&missing).starts_with(&format!(
            "spec.verification.images[1].secretRef: Secret {NAMESPACE}/pull-secret does not exist"
        )),
        "{}",
        message(&missing)
    );
    let created = Instant::now();
    kubectl(
        &[
            "-n",
            NAMESPACE,
            "create",
            "secret",
            "docker-registry",
            "pull-secret",
            "--docker-server=private.example.org",
            "--docker-username=u",
            "--docker-password=p",
        ],
        None,
    )
    .expect_ok("create the Secret");
    wait_for("image-policy", ["True", "PolicyActive", "1", "2"], SOON);
    eprintln!(
        "SecretNotFound cleared {:?} after the Secret was created",
        created.elapsed()
    );

    // Stopped with SIGTERM, it releases the lease: the next replica takes it at its next
    // look instead of waiting the lease out.
    let mut operator = operator;
    operator.terminate();
    assert_eq!(
        operator.wait_exit(Duration::from_secs(20)),
        Ok(Some(0)),
        "exit after SIGTERM"
    );
    assert_eq!(lease_holder(), "", "the lease was not released");
    let released = Instant::now();
    let (operator, _) = start(dir.path(), "status-e2e-c");
    eventually(
        LEASE_RENEW_AND_START,
        "the next replica takes the lease",
        || (lease_holder() == "status-e2e-c").then_some(()),
    );
    let taken = released.elapsed();
    eprintln!("lease taken over {taken:?} after a graceful stop (15 s after a kill)");
    drop(operator);
}

/// A released lease is taken at the candidate's first look: at start, then every 5 s.
const LEASE_RENEW_AND_START: Duration = Duration::from_secs(10);

fn lease_holder() -> String {
    kubectl(
        &[
            "-n",
            NAMESPACE,
            "get",
            "lease",
            "image-policy-controller",
            "-o",
            "jsonpath={.spec.holderIdentity}",
        ],
        None,
    )
    .expect_ok("the lease")
}
