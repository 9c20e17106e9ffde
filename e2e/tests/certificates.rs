//! `certificates.mode=operator` on the real API server: the chart installed with real Helm
//! creates the TLS Secret empty; the operator, run outside the cluster as the chart's own
//! ServiceAccount, makes its CA and certificate, publishes the CA in the webhook
//! configuration's `caBundle`, and rotates both several times while admissions go on, with
//! no failed admission and no moment in which a new connection is served a certificate the
//! published bundle does not trust. Lifetimes are shortened to seconds with the operator's
//! own flags (`--tls-validity 30s --tls-renew-before 20s`).

// A test crate: its helpers fail the test loudly by design.
#![allow(
    clippy::expect_used,
    clippy::unwrap_used,
    clippy::indexing_slicing,
    clippy::panic
)]

use std::collections::BTreeSet;
use std::net::TcpStream;
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use base64::Engine as _;
use image_policy_e2e::cluster::{Operator, WEBHOOK_NAME, free_port, namespace, policy_yaml, said};
use image_policy_e2e::helm::{
    CHART_NS, CONFIG, Cleanup, Helm, MUTATING_CONFIG, can_i, clean_slate, get_json,
    service_account_kubeconfig,
};
use image_policy_e2e::{eventually, kubectl};
use image_policy_testsupport::cosign::Pusher;
use image_policy_testsupport::producers::Cosign;
use image_policy_testsupport::registry::{Registry, RegistryOptions};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, ServerName};
use serde_json::Value;

const TEST_NS: &str = "certs-e2e";
const TLS_SECRET: &str = "image-policy-webhook-tls";
/// The first replica, which takes the lease and so writes; the second only reads and serves.
const POD_NAME: &str = "ip-certs-e2e";
const SECOND_POD: &str = "ip-certs-e2e-b";
/// How long the test watches rotations: at least three with these lifetimes.
const WATCH: Duration = Duration::from_secs(45);

fn start_operator(
    dir: &Path,
    pod: &str,
    kubeconfig: &Path,
    port: u16,
    registry_ca: &Path,
) -> Operator {
    let args = [
        "--namespace",
        CHART_NS,
        "--tls-secret",
        TLS_SECRET,
        "--webhook-configuration",
        CONFIG,
        // As the chart's Deployment does: the pinning webhook's caBundle follows too.
        "--mutating-webhook-configuration",
        MUTATING_CONFIG,
        "--tls-validity",
        "30s",
        "--tls-renew-before",
        "20s",
        "--tls-check-interval",
        "2s",
        "--ca-file",
        registry_ca.to_str().unwrap(),
    ];
    Operator::start(dir, pod, port, Some(kubeconfig), &args).0
}

fn decode(field: &Value) -> Vec<u8> {
    base64::engine::general_purpose::STANDARD
        .decode(field.as_str().unwrap_or(""))
        .expect("base64")
}

/// The webhook configuration's `caBundle` (PEM).
fn published_bundle() -> Vec<u8> {
    let config = get_json(&["validatingwebhookconfiguration", CONFIG]);
    decode(&config["webhooks"][0]["clientConfig"]["caBundle"])
}

/// The pinning webhook's `caBundle` (PEM), which the operator keeps equal to the first.
fn published_pin_bundle() -> Vec<u8> {
    let config = get_json(&["mutatingwebhookconfiguration", MUTATING_CONFIG]);
    decode(&config["webhooks"][0]["clientConfig"]["caBundle"])
}

/// A new TLS connection to the webhook, trusting exactly `bundle` as the API server does:
/// the served leaf, or why the handshake failed.
fn served_leaf(port: u16, bundle: &[u8]) -> Result<Vec<u8>, String> {
    let mut roots = rustls::RootCertStore::empty();
    for cert in CertificateDer::pem_slice_iter(bundle) {
        roots
            .add(cert.map_err(|e| e.to_string())?)
            .map_err(|e| e.to_string())?;
    }
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| e.to_string())?
        .with_root_certificates(roots)
        .with_no_client_auth();
    let name = ServerName::try_from("127.0.0.1").expect("name");
    let mut tls =
        rustls::ClientConnection::new(Arc::new(config), name).map_err(|e| e.to_string())?;
    let mut tcp = TcpStream::connect(("127.0.0.1", port)).map_err(|e| e.to_string())?;
    tcp.set_read_timeout(Some(Duration::from_secs(5)))
        .map_err(|e| e.to_string())?;
    while tls.is_handshaking() {
        tls.complete_io(&mut tcp).map_err(|e| e.to_string())?;
    }
    let leaf = tls
        .peer_certificates()
        .and_then(|c| c.first())
        .ok_or("no certificate served")?;
    Ok(leaf.to_vec())
}

/// The Secret's `tls.crt`, as DER.
fn stored_leaf() -> Option<Vec<u8>> {
    let secret = get_json(&["-n", CHART_NS, "secret", TLS_SECRET]);
    let pem = decode(&secret["data"]["tls.crt"]);
    CertificateDer::from_pem_slice(&pem)
        .ok()
        .map(|c| c.to_vec())
}

fn run_pod(name: &str, image: &str, dry_run: bool) -> image_policy_e2e::Run {
    let mut args = vec![
        "-n".to_owned(),
        TEST_NS.to_owned(),
        "run".to_owned(),
        name.to_owned(),
        format!("--image={image}"),
        "--restart=Never".to_owned(),
    ];
    if dry_run {
        args.push("--dry-run=server".to_owned());
    }
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    kubectl(&args, None)
}

#[tokio::test(flavor = "multi_thread")]
async fn the_operator_issues_publishes_and_rotates_its_certificate_without_downtime() {
    let started = Instant::now();
    let registry = Registry::start(RegistryOptions::default());
    let pusher = Pusher::new(&registry);
    let demo = Cosign::new(&registry).push_demo(&pusher).await;
    let host = registry.host();

    let helm = Helm::new();
    clean_slate(&helm);
    let cleanup = Cleanup {
        helm: &helm,
        namespace: TEST_NS,
        extra: &[],
    };

    // Install with certificates.mode=operator, the operator outside the cluster.
    let dir = tempfile::tempdir().expect("dir");
    let port = free_port();
    let url = format!("https://127.0.0.1:{port}/signing-policy-check");
    let values = dir.path().join("values.yaml");
    std::fs::write(
        &values,
        format!("certificates:\n  mode: operator\nwebhook:\n  url: {url}\n"),
    )
    .expect("values");
    let out = helm.deploy("install", &values, &[]);
    eprintln!("[certs e2e] {}", out.trim());
    let secret = get_json(&["-n", CHART_NS, "secret", TLS_SECRET]);
    assert_eq!(secret["type"], "kubernetes.io/tls");
    assert_eq!(stored_leaf(), None, "the chart creates the Secret empty");
    assert!(
        published_bundle().is_empty(),
        "no caBundle before the operator"
    );

    // Exactly the grants it needs: this Secret and this webhook configuration, no others.
    let kubeconfig = service_account_kubeconfig(dir.path());
    let tls_secret = format!("secrets/{TLS_SECRET}");
    let config = format!("validatingwebhookconfigurations.admissionregistration.k8s.io/{CONFIG}");
    for (args, expected) in [
        (vec!["update", &tls_secret, "-n", CHART_NS], "yes"),
        (vec!["update", "secrets/other", "-n", CHART_NS], "no"),
        (vec!["create", "secrets", "-n", CHART_NS], "no"),
        (vec!["update", &config], "yes"),
        (
            vec![
                "update",
                &format!(
                    "mutatingwebhookconfigurations.admissionregistration.k8s.io/{MUTATING_CONFIG}"
                ),
            ],
            "yes",
        ),
        (
            vec![
                "update",
                "validatingwebhookconfigurations.admissionregistration.k8s.io/other",
            ],
            "no",
        ),
    ] {
        assert_eq!(can_i(&kubeconfig, &args), expected, "can-i {args:?}");
    }

    let operator = start_operator(dir.path(), POD_NAME, &kubeconfig, port, &registry.ca_path());
    // A second replica, not registered with the API server: it serves what the first writes.
    let port_b = free_port();
    let second = start_operator(
        dir.path(),
        SECOND_POD,
        &kubeconfig,
        port_b,
        &registry.ca_path(),
    );
    // Ready means serving: the Secret holds the certificate, and caBundle its CA.
    let first = stored_leaf().expect("a certificate in the Secret once ready");
    let bundle = eventually(Duration::from_secs(20), "the CA is published", || {
        Some(published_bundle()).filter(|b| !b.is_empty())
    });
    assert_eq!(served_leaf(port, &bundle), Ok(first.clone()));
    assert_eq!(served_leaf(port_b, &bundle), Ok(first.clone()));
    assert_eq!(
        published_pin_bundle(),
        bundle,
        "both webhooks trust the same CAs"
    );
    let secret = get_json(&["-n", CHART_NS, "secret", TLS_SECRET]);
    assert_eq!(decode(&secret["data"]["ca.crt"]), bundle);
    // Its expiry is a metric, about 30 s from now.
    let metrics = operator.metrics();
    let expiry: u64 = metrics
        .lines()
        .find_map(|l| l.strip_prefix("image_policy_serving_certificate_expiry_timestamp_seconds "))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or_else(|| panic!("no expiry metric in:\n{metrics}"));
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    assert!(
        (now + 5..=now + 31).contains(&expiry),
        "expiry {expiry}, now {now}"
    );

    // The seed's checks through the operator's own certificate.
    namespace(TEST_NS);
    kubectl(
        &["apply", "-f", "-"],
        Some(&policy_yaml(
            "image-policy",
            &host,
            &[("k", &demo.key.public_pem)],
            &["k"],
        )),
    )
    .expect_ok("apply the policy");
    let image = format!("{host}/demo/signed:v1");
    let run = eventually(Duration::from_secs(30), "the policy is enforced", || {
        let run = run_pod("signed", &image, false);
        (!run
            .stderr
            .contains("Image policy enforcement was not applied"))
        .then_some(run)
    });
    assert_eq!(said(&run), "pod/signed created\n");
    let fail = format!("{host}/demo/other-key:v1");
    let run = run_pod("other", &fail, false);
    assert_eq!(
        run.stderr,
        format!(
            "Error from server (The image: {fail} is not signed.): admission webhook \"{WEBHOOK_NAME}\" denied the request: The image: {fail} is not signed.\n"
        )
    );

    // Rotations under load: every half second an admission through the API server, and new
    // connections of our own to both replicas, trusting exactly the published bundle.
    let mut served = BTreeSet::from([first.clone()]);
    let mut bundles = BTreeSet::from([bundle]);
    let (mut admissions, mut probes) = (0, 0);
    let watch_started = Instant::now();
    while watch_started.elapsed() < WATCH {
        let run = run_pod(&format!("dry-{admissions}"), &image, true);
        assert_eq!(
            said(&run),
            format!("pod/dry-{admissions} created (server dry run)\n"),
            "an admission failed during a rotation"
        );
        admissions += 1;
        let bundle = published_bundle();
        for (replica, port) in [(POD_NAME, port), (SECOND_POD, port_b)] {
            let leaf = served_leaf(port, &bundle).unwrap_or_else(|e| {
                panic!(
                    "a new connection to {replica} is not trusted by the published bundle after {:?}: {e}",
                    watch_started.elapsed()
                )
            });
            probes += 1;
            served.insert(leaf);
        }
        bundles.insert(bundle);
        std::thread::sleep(Duration::from_millis(500));
    }
    eprintln!(
        "[certs e2e] {} certificates and {} bundles in {WATCH:?}: {admissions} admissions and {probes} new connections to 2 replicas, none failed",
        served.len(),
        bundles.len()
    );
    assert!(
        served.len() >= 3,
        "only {} certificates served in {WATCH:?}",
        served.len()
    );
    let (log, log_b) = (operator.log(), second.log());
    for line in [
        "Issued a new CA and serving certificate",
        "Published the CA bundle",
        "Serving the renewed certificate",
    ] {
        assert!(log.contains(line), "no {line:?} in the lease holder's log");
        assert!(
            !log_b.contains(line),
            "{line:?} by the replica without the lease"
        );
    }
    assert!(
        log_b
            .matches("Serving the certificate of the Secret")
            .count()
            >= 3,
        "the second replica did not follow the renewals"
    );
    drop(second);

    // A restarted operator makes the API server connect anew: it trusts what is served now.
    drop(operator);
    let operator = start_operator(dir.path(), POD_NAME, &kubeconfig, port, &registry.ca_path());
    let run = eventually(
        Duration::from_secs(20),
        "an admission after the restart",
        || {
            let run = run_pod("after-restart", &image, false);
            run.ok.then_some(run)
        },
    );
    assert_eq!(said(&run), "pod/after-restart created\n");

    // `helm upgrade` keeps what the operator wrote (the chart renders the live Secret and
    // caBundle back), and the two stay in step.
    let out = helm.deploy("upgrade", &values, &[]);
    eprintln!("[certs e2e] {}", out.trim());
    assert!(stored_leaf().is_some(), "helm upgrade emptied the Secret");
    eventually(
        Duration::from_secs(20),
        "caBundle is the Secret's ca.crt",
        || {
            let secret = get_json(&["-n", CHART_NS, "secret", TLS_SECRET]);
            let ca = decode(&secret["data"]["ca.crt"]);
            (ca == published_bundle() && ca == published_pin_bundle()).then_some(())
        },
    );
    let run = eventually(
        Duration::from_secs(20),
        "an admission after the upgrade",
        || {
            let run = run_pod("after-upgrade", &image, false);
            run.ok.then_some(run)
        },
    );
    assert_eq!(said(&run), "pod/after-upgrade created\n");

    drop(operator);
    drop(cleanup);
    eprintln!("[certs e2e] passed in {:?}", started.elapsed());
}
