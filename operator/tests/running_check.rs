//! The check of what already runs (docs/contract.md §7) side by side with admissions, against a
//! real registry and a registry that never answers: the check's decisions run a few at a time
//! within its bound, admissions never wait for it, and an admission that wants the image the
//! check is verifying waits for that verification instead of making its own.
//!
//! Needs `hack/registry.sh install`. No assertion on time: the bound is shown by the check's
//! outcome (every image of the hanging registry refused as timed out), and the admissions'
//! latency during it is printed, not asserted.

#![allow(
    clippy::expect_used,
    clippy::unwrap_used,
    clippy::panic,
    clippy::indexing_slicing
)]

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use image_policy::audit::workloads::{Owners, group, running_pod};
use image_policy::audit::{Limits, Pace, Workload, check_within};
use image_policy::policy::{PolicyState, Snapshot};
use image_policy::verify::{RegistryConfig, Verifier, VerifyConfig};
use image_policy::webhook::Webhook;
use image_policy::webhook::admit::Settings;
use image_policy::webhook::credentials::Anonymous;
use image_policy_crd::ClusterImagePolicy;
use image_policy_testsupport::cosign::{Pusher, public_key_pem};
use image_policy_testsupport::registry::{Registry, RegistryOptions};
use serde_json::{Value, json};
use sigstore::crypto::{SigStoreSigner, SigningScheme};
use tokio::io::AsyncWriteExt as _;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{Notify, watch};

/// A registry that accepts connections and never answers (nor closes them).
async fn hanging_registry() -> String {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let host = listener.local_addr().expect("addr").to_string();
    tokio::spawn(async move {
        let mut held = Vec::new();
        while let Ok((socket, _)) = listener.accept().await {
            held.push(socket);
        }
    });
    host
}

/// A TCP proxy to `upstream` that holds every connection until [`Gate::open`]: what it has
/// accepted says that a verification is under way and waiting.
struct Gate {
    host: String,
    accepted: Arc<AtomicUsize>,
    open: watch::Sender<bool>,
}

impl Gate {
    async fn to(upstream: String) -> Gate {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let host = listener.local_addr().expect("addr").to_string();
        let accepted = Arc::new(AtomicUsize::new(0));
        let (open, opened) = watch::channel(false);
        let counted = accepted.clone();
        tokio::spawn(async move {
            while let Ok((mut client, _)) = listener.accept().await {
                counted.fetch_add(1, Ordering::SeqCst);
                let (upstream, mut opened) = (upstream.clone(), opened.clone());
                tokio::spawn(async move {
                    if opened.wait_for(|open| *open).await.is_err() {
                        return;
                    }
                    let Ok(mut server) = TcpStream::connect(&upstream).await else {
                        let _ = client.shutdown().await;
                        return;
                    };
                    let _ = tokio::io::copy_bidirectional(&mut client, &mut server).await;
                });
            }
        });
        Gate {
            host,
            accepted,
            open,
        }
    }

    async fn wait_for_a_connection(&self) {
        while self.accepted.load(Ordering::SeqCst) == 0 {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }
}

/// A policy that every image of `hosts` must be signed by `signer`.
fn snapshot(signer: &SigStoreSigner, hosts: &[&str]) -> Arc<Snapshot> {
    let images: Vec<Value> = hosts
        .iter()
        .map(|host| json!({"namePattern": format!("{host}/*"), "keys": [{"name": "k"}]}))
        .collect();
    let policy: ClusterImagePolicy = serde_json::from_value(json!({
        "apiVersion": "signing.apps.tanzu.vmware.com/v1beta1", "kind": "ClusterImagePolicy",
        "metadata": {"name": "image-policy"},
        "spec": {"verification": {"keys": [{"name": "k", "publicKey": public_key_pem(signer)}],
            "images": images}}
    }))
    .expect("policy");
    Arc::new(Snapshot::compile(&policy).expect("compiles"))
}

/// The webhook deciding with `snapshot`, trusting the test registry's CA, each image's
/// verification bounded by `budget`.
fn webhook(registry: &Registry, snapshot: Arc<Snapshot>, budget: Duration) -> Webhook {
    let (policy, rx) = watch::channel(PolicyState::Active(snapshot));
    // The webhook reads the policy from this channel for as long as the test runs.
    std::mem::forget(policy);
    let config = VerifyConfig {
        registry: RegistryConfig {
            extra_roots_pem: vec![registry.ca_pem()],
            ..RegistryConfig::default()
        },
        budget,
        ..VerifyConfig::default()
    };
    let verifier = Verifier::new(config).expect("verifier");
    Webhook::new(rx, verifier, Arc::new(Anonymous), Settings::default())
}

/// One workload per image: a Pod of its own in namespace `ns-<i>`.
fn workloads(images: &[String]) -> Vec<Workload> {
    let pods: Vec<_> = images
        .iter()
        .enumerate()
        .map(|(i, image)| {
            serde_json::from_value(json!({
                "apiVersion": "v1", "kind": "Pod",
                "metadata": {"namespace": format!("ns-{i}"), "name": format!("p-{i}")},
                "spec": {"containers": [{"name": "c", "image": image}]},
                "status": {"phase": "Running"}
            }))
            .expect("pod")
        })
        .collect::<Vec<_>>();
    let running = pods.iter().filter_map(running_pod).collect();
    group(running, &Owners::new())
}

/// An AdmissionReview of a Pod running `image`.
fn review(uid: &str, image: &str) -> Vec<u8> {
    serde_json::to_vec(&json!({
        "apiVersion": "admission.k8s.io/v1", "kind": "AdmissionReview",
        "request": {"uid": uid, "kind": {"group": "", "version": "v1", "kind": "Pod"},
            "operation": "CREATE", "namespace": "shop",
            "object": {"kind": "Pod", "metadata": {"name": uid},
                "spec": {"containers": [{"name": "c", "image": image}]}}}
    }))
    .expect("review")
}

fn allowed(answer: &[u8]) -> bool {
    let review: Value = serde_json::from_slice(answer).expect("json");
    review["response"]["allowed"] == true
}

fn signer() -> SigStoreSigner {
    SigningScheme::ECDSA_P256_SHA256_ASN1
        .create_signer()
        .expect("signer")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_check_over_a_hanging_registry_ends_at_its_bound_while_admissions_are_answered() {
    let registry = Registry::start(RegistryOptions::default());
    let pusher = Pusher::new(&registry);
    let signer = signer();
    let digest = pusher.push_image("shop/web", "v1").await;
    pusher.sign("shop/web", &digest, &signer).await;
    let hanging = hanging_registry().await;
    let snapshot = snapshot(&signer, &[&hanging, &registry.host()]);
    // Each verification bounded at 2 s; the check at 3 s, four at a time: 100 images one
    // after another would take 200 s, four at a time 50 s.
    let webhook = webhook(&registry, snapshot.clone(), Duration::from_secs(2));
    let served = format!("{}/shop/web:v1", registry.host());
    assert!(allowed(
        &webhook.handle(&review("warm", &served)).await.body()
    ));
    // The same admissions without a check, for comparison.
    let mut alone = Vec::new();
    for i in 0..200 {
        let start = Instant::now();
        let answer = webhook.handle(&review(&format!("b-{i}"), &served)).await;
        alone.push(start.elapsed());
        assert!(allowed(&answer.body()));
        tokio::time::sleep(Duration::from_millis(5)).await;
    }

    let images: Vec<String> = (0..100).map(|i| format!("{hanging}/app-{i}:1")).collect();
    let workloads = workloads(&images);
    let limits = Limits {
        concurrency: 4,
        timeout: Duration::from_secs(3),
    };
    let done = Notify::new();
    let check = async {
        let report = check_within(
            webhook.admission(),
            &snapshot,
            &workloads,
            &[],
            &mut Pace::per_second(0),
            limits,
        )
        .await;
        done.notify_one();
        report
    };
    // Admissions of the signed image, one after another, for as long as the check runs.
    let admissions = async {
        let mut latencies = Vec::new();
        let mut finished = std::pin::pin!(done.notified());
        loop {
            let start = Instant::now();
            let uid = format!("a-{}", latencies.len());
            let answer = webhook.handle(&review(&uid, &served)).await;
            latencies.push(start.elapsed());
            assert!(allowed(&answer.body()), "{uid}");
            tokio::select! {
                () = &mut finished => break,
                () = tokio::time::sleep(Duration::from_millis(5)) => {}
            }
        }
        latencies
    };
    let started = Instant::now();
    let (report, mut latencies) = tokio::join!(check, admissions);
    let took = started.elapsed();

    // Ended by its bound: every image of the hanging registry is refused, as a verification
    // that timed out is, most of them never tried.
    assert_eq!(report.workloads, 100);
    assert_eq!(report.refused_workloads, 100);
    assert!(
        report.refused.iter().all(|r| r.reason == "Timeout"),
        "{:#?}",
        report.refused.first()
    );
    assert!(report.timed_out > 0, "the check's bound ended it");
    let tried = report
        .refused
        .iter()
        .filter(|r| r.message.contains("timed out after 2s"))
        .count();
    assert!(tried < 100, "{tried} verifications ran to their own budget");
    assert!(!latencies.is_empty());
    let p = |latencies: &mut Vec<Duration>, q: f64| {
        latencies.sort();
        latencies[((latencies.len() - 1) as f64 * q) as usize]
    };
    eprintln!(
        "running check over 100 images of a hanging registry, 4 at a time, bound 3 s: took \
         {took:?}, {tried} of them verified to their 2 s budget; {} admissions meanwhile: p50 \
         {:?}, p99 {:?}, max {:?}; {} admissions before, without a check: p50 {:?}, p99 {:?}, \
         max {:?}",
        latencies.len(),
        p(&mut latencies, 0.5),
        p(&mut latencies, 0.99),
        p(&mut latencies, 1.0),
        alone.len(),
        p(&mut alone, 0.5),
        p(&mut alone, 0.99),
        p(&mut alone, 1.0),
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_admission_while_the_check_verifies_the_same_image_makes_no_request_of_its_own() {
    let registry = Registry::start(RegistryOptions::default());
    let pusher = Pusher::new(&registry);
    let signer = signer();
    let digest = pusher.push_image("shop/new", "v1").await;
    pusher.sign("shop/new", &digest, &signer).await;
    // The registry behind a gate: the check's verification waits there until the admission
    // has come for the same image.
    let gate = Gate::to(registry.host()).await;
    let snapshot = snapshot(&signer, &[&gate.host]);
    let webhook = webhook(&registry, snapshot.clone(), Duration::from_secs(8));
    let image = format!("{}/shop/new:v1", gate.host);
    // The same image in three workloads of three namespaces: verified once.
    let workloads = workloads(&[image.clone(), image.clone(), image.clone()]);
    registry.clear_requests();

    let mut pace = Pace::per_second(0);
    let check = check_within(
        webhook.admission(),
        &snapshot,
        &workloads,
        &[],
        &mut pace,
        Limits::default(),
    );
    let admission = async {
        gate.wait_for_a_connection().await;
        let body = review("late", &image);
        let answer = webhook.handle(&body);
        let open = async {
            // Long enough for the admission to reach the verifier and wait on the check's
            // verification; were it slower, it would find the verdict cached, with the same
            // count of requests.
            tokio::time::sleep(Duration::from_millis(300)).await;
            gate.open.send_replace(true);
        };
        tokio::join!(answer, open).0
    };
    let (report, answer) = tokio::join!(check, admission);
    assert_eq!(report.workloads, 3);
    assert_eq!(report.refused, [], "verified");
    assert!(allowed(&answer.body()));
    // One round: the tag resolved, the signature's manifest and its layer.
    let requests: Vec<String> = registry
        .requests()
        .into_iter()
        .map(|r| format!("{} {} {}", r.method, r.path, r.status))
        .collect();
    assert_eq!(requests.len(), 3, "{requests:#?}");
}
