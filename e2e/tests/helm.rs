//! The chart installed with real Helm (hack/helm/helm.py on helm-python-sdk) on the real API
//! server, in its development mode (`webhook.url`): the operator runs outside the cluster as
//! the chart's own ServiceAccount, so that operating works with exactly the chart's RBAC, and
//! taking one rule away visibly breaks it. Then the seed's checks through that installation,
//! an upgrade that changes `allowUnmatchedImages`, and an uninstall that leaves only the CRD.
//! Also the install the chart's README shows: into its own namespace, `--create-namespace`,
//! default values.

// A test crate: its helpers fail the test loudly by design.
#![allow(
    clippy::expect_used,
    clippy::unwrap_used,
    clippy::indexing_slicing,
    clippy::panic
)]

use std::path::Path;
use std::time::{Duration, Instant};

use base64::Engine as _;
use image_policy_e2e::cluster::{
    Operator, WEBHOOK_NAME, free_port, namespace, policy_yaml, said, serving_cert,
};
use image_policy_e2e::helm::{
    CHART_NS, CONFIG, CRD, Cleanup, Helm, MANAGER, MUTATING_CONFIG, RELEASE, RELEASE_NS, can_i,
    clean_slate, exists, get_json, get_json_managed, release_values, service_account_kubeconfig,
};
use image_policy_e2e::{eventually, kubectl};
use image_policy_testsupport::cosign::Pusher;
use image_policy_testsupport::producers::Cosign;
use image_policy_testsupport::registry::{Registry, RegistryOptions};
use serde_json::Value;

/// Where this test's workloads go.
const TEST_NS: &str = "helm-e2e";
/// A fixed lease identity: a restarted operator holds the status lease at once.
const POD_NAME: &str = "ip-helm-e2e";

/// The operator, run outside the cluster as the chart's ServiceAccount.
fn start_operator(
    dir: &Path,
    kubeconfig: &Path,
    port: u16,
    registry_ca: &Path,
    allow: bool,
) -> Operator {
    let (cert, key) = serving_cert(dir);
    let mut args = vec![
        "--namespace",
        CHART_NS,
        "--tls-cert-file",
        cert.to_str().unwrap(),
        "--tls-key-file",
        key.to_str().unwrap(),
        "--ca-file",
        registry_ca.to_str().unwrap(),
    ];
    if allow {
        args.push("--allow-unmatched-images");
    }
    Operator::start(dir, POD_NAME, port, Some(kubeconfig), &args).0
}

fn ready_and_keys() -> (String, i64, i64, i64) {
    let policy = get_json(&["clusterimagepolicy", "image-policy"]);
    let ready = policy["status"]["conditions"]
        .as_array()
        .and_then(|c| c.iter().find(|c| c["type"] == "Ready"))
        .cloned()
        .unwrap_or(Value::Null);
    (
        ready["status"].as_str().unwrap_or("").to_owned(),
        ready["observedGeneration"].as_i64().unwrap_or(0),
        policy["metadata"]["generation"].as_i64().unwrap_or(0),
        policy["status"]["keys"].as_i64().unwrap_or(0),
    )
}

#[tokio::test(flavor = "multi_thread")]
async fn the_chart_installs_operates_with_its_rbac_upgrades_and_uninstalls() {
    let started = Instant::now();
    let registry = Registry::start(RegistryOptions::default());
    let pusher = Pusher::new(&registry);
    let demo = Cosign::new(&registry).push_demo(&pusher).await;
    let (key_a, key_b) = (demo.key, demo.other_key);
    let host = registry.host();
    let (pem_a, pem_b) = (key_a.public_pem, key_b.public_pem);

    let helm = Helm::new();
    clean_slate(&helm);
    let cleanup = Cleanup {
        helm: &helm,
        namespace: TEST_NS,
        extra: &[&[
            "-n",
            "kube-system",
            "delete",
            "pod",
            "helm-e2e-bb",
            "--ignore-not-found",
        ]],
    };

    // Install, in development mode: the webhook calls the operator outside the cluster.
    let dir = tempfile::tempdir().expect("dir");
    let port = free_port();
    let url = format!("https://127.0.0.1:{port}/signing-policy-check");
    let ca = std::fs::read(std::env::var("IMAGE_POLICY_CA_CERT").expect("IMAGE_POLICY_CA_CERT"))
        .expect("CA");
    let bundle = base64::engine::general_purpose::STANDARD.encode(ca);
    let values = dir.path().join("values.yaml");
    std::fs::write(
        &values,
        format!("webhook:\n  url: {url}\n  caBundle: {bundle}\n"),
    )
    .expect("values");
    let out = helm.deploy("install", &values, &[]);
    eprintln!("[helm e2e] {}", out.trim());
    assert!(out.contains("revision 1"), "{out}");
    assert_eq!(release_values(1)["webhook"]["url"], url.as_str());

    // The installed webhook configuration: routed to the URL, and never intercepting
    // kube-system or the chart's namespace, by the protected label and by the request's
    // namespace.
    let config = get_json(&["validatingwebhookconfiguration", CONFIG]);
    let webhooks = config["webhooks"].as_array().expect("webhooks");
    assert_eq!(webhooks.len(), 1, "{config}");
    let webhook = &webhooks[0];
    assert_eq!(webhook["name"], WEBHOOK_NAME);
    assert_eq!(webhook["clientConfig"]["url"], url.as_str());
    assert_eq!(webhook["failurePolicy"], "Fail");
    let expressions = webhook["namespaceSelector"]["matchExpressions"]
        .as_array()
        .expect("matchExpressions");
    let excluded = expressions
        .iter()
        .find(|e| e["key"] == "kubernetes.io/metadata.name" && e["operator"] == "NotIn")
        .unwrap_or_else(|| panic!("no NotIn on the namespace name: {expressions:?}"));
    for ns in ["kube-system", CHART_NS] {
        assert!(
            excluded["values"]
                .as_array()
                .unwrap()
                .iter()
                .any(|v| v == ns),
            "{ns} is intercepted: {excluded}"
        );
    }
    assert!(webhook["namespaceSelector"]["matchLabels"].is_null());
    assert_eq!(
        webhook["matchConditions"][0]["expression"],
        "!has(request.namespace) || !(request.namespace in ['kube-system', 'image-policy-system'])"
    );
    let chart_ns = get_json(&["namespace", CHART_NS]);
    assert_eq!(
        chart_ns["metadata"]["labels"]["kubernetes.io/metadata.name"],
        CHART_NS
    );

    // The operator as the chart's ServiceAccount, with nothing but the chart's RBAC.
    let kubeconfig = service_account_kubeconfig(dir.path());
    assert_eq!(
        can_i(
            &kubeconfig,
            &[
                "patch",
                "clusterimagepolicies.signing.apps.tanzu.vmware.com",
                "--subresource=status"
            ]
        ),
        "yes"
    );
    // The check of what already runs lists Pods, ReplicaSets and Jobs, and reads nothing
    // else of them; Events are created and patched (their series), never read or deleted.
    for (verb, resource, granted) in [
        ("list", "pods", "yes"),
        ("watch", "pods", "no"),
        ("get", "pods", "no"),
        ("list", "replicasets.apps", "yes"),
        ("get", "replicasets.apps", "no"),
        ("list", "jobs.batch", "yes"),
        ("create", "events.events.k8s.io", "yes"),
        ("patch", "events.events.k8s.io", "yes"),
        ("list", "events.events.k8s.io", "no"),
        ("delete", "events.events.k8s.io", "no"),
    ] {
        for namespace in ["kube-system", "default"] {
            assert_eq!(
                can_i(&kubeconfig, &[verb, resource, "-n", namespace]),
                granted,
                "{verb} {resource} in {namespace}"
            );
        }
    }
    assert_eq!(
        can_i(
            &kubeconfig,
            &[
                "delete",
                "clusterimagepolicies.signing.apps.tanzu.vmware.com"
            ]
        ),
        "no"
    );
    let operator = start_operator(dir.path(), &kubeconfig, port, &registry.ca_path(), false);

    for ns in [TEST_NS, "kube-system", "excluded"] {
        namespace(ns);
    }
    let apply_policy = |keys: &[(&str, &str)], pattern: &[&str]| {
        kubectl(
            &["apply", "-f", "-"],
            Some(&policy_yaml("image-policy", &host, keys, pattern)),
        )
        .expect_ok("apply the policy");
    };
    eventually(
        Duration::from_secs(30),
        "the webhook admits the policy",
        || {
            let run = kubectl(
                &["apply", "-f", "-"],
                Some(&policy_yaml(
                    "image-policy",
                    &host,
                    &[("k", &pem_a)],
                    &["k"],
                )),
            );
            run.ok.then_some(())
        },
    );

    // The seed's checks through the installation.
    let image = format!("{host}/demo/signed:v1");
    let run = eventually(Duration::from_secs(30), "the policy is enforced", || {
        let run = kubectl(
            &[
                "-n",
                TEST_NS,
                "run",
                "x",
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
            .contains("Image policy enforcement was not applied"))
        .then_some(run)
    });
    assert_eq!(said(&run), "pod/x created\n");

    let fail = format!("{host}/demo/other-key:v1");
    let run = kubectl(
        &[
            "-n",
            TEST_NS,
            "run",
            "y",
            &format!("--image={fail}"),
            "--restart=Never",
        ],
        None,
    );
    assert!(!run.ok, "{}", said(&run));
    assert_eq!(
        run.stderr,
        format!(
            "Error from server (The image: {fail} is not signed.): admission webhook \"{WEBHOOK_NAME}\" denied the request: The image: {fail} is not signed.\n"
        )
    );

    let unmatched = "Could not verify against any image policies for container image: busybox.";
    let run = kubectl(
        &[
            "-n",
            TEST_NS,
            "run",
            "bb",
            "--image=busybox",
            "--restart=Never",
        ],
        None,
    );
    assert!(!run.ok, "{}", said(&run));
    assert_eq!(
        run.stderr,
        format!(
            "Error from server ({unmatched}): admission webhook \"{WEBHOOK_NAME}\" denied the request: {unmatched}\n"
        )
    );

    // The excluded namespaces are not intercepted at all, even for an unmatched image.
    let run = kubectl(
        &[
            "-n",
            "kube-system",
            "run",
            "helm-e2e-bb",
            "--image=busybox",
            "--restart=Never",
        ],
        None,
    );
    assert_eq!(said(&run), "pod/helm-e2e-bb created\n");

    // The status is written as the chart's ServiceAccount (status patch and its Lease).
    eventually(Duration::from_secs(30), "READY True", || {
        let (ready, observed, generation, _) = ready_and_keys();
        (ready == "True" && observed == generation).then_some(())
    });
    let table = kubectl(&["get", "clusterimagepolicies"], None).expect_ok("get policies");
    eprintln!("[helm e2e] {table}");
    assert!(
        table
            .lines()
            .any(|l| l.split_whitespace().take(2).eq(["image-policy", "True"])),
        "{table}"
    );
    let lease = get_json(&["-n", CHART_NS, "lease", "image-policy-controller"]);
    assert_eq!(lease["spec"]["holderIdentity"], POD_NAME);

    // Upgrade: allowUnmatchedImages=true. In development mode the chart installs no
    // Deployment, so the value reaches the operator through the release: it is restarted
    // with the flag as the release now holds it.
    let out = helm.deploy("upgrade", &values, &["allowUnmatchedImages=true"]);
    eprintln!("[helm e2e] {}", out.trim());
    assert!(out.contains("revision 2"), "{out}");
    let allow = release_values(2)["allowUnmatchedImages"] == true;
    assert!(allow, "the release does not hold allowUnmatchedImages=true");
    drop(operator);
    let operator = start_operator(dir.path(), &kubeconfig, port, &registry.ca_path(), allow);
    let run = eventually(Duration::from_secs(30), "busybox admitted", || {
        let run = kubectl(
            &[
                "-n",
                TEST_NS,
                "run",
                "bb",
                "--image=busybox",
                "--restart=Never",
            ],
            None,
        );
        run.ok.then_some(run)
    });
    assert_eq!(
        said(&run),
        "Warning: busybox did not match any image policies. Container will be created as AllowUnmatchedImages flag is true.\npod/bb created\n"
    );

    // The RBAC is needed: without the status rule, a policy change is not reported. The
    // rule is taken away as a chart without it would: a server-side apply by Helm's own
    // field manager (a plain `kubectl patch` would make the next upgrade conflict).
    let role = get_json_managed(&format!(
        "/apis/rbac.authorization.k8s.io/v1/clusterroles/{MANAGER}"
    ));
    let manager = role["metadata"]["managedFields"]
        .as_array()
        .expect("managedFields")
        .iter()
        .find(|f| f["operation"] == "Apply")
        .expect("Helm's server-side apply")["manager"]
        .as_str()
        .expect("manager")
        .to_owned();
    let mut rules = role["rules"].as_array().expect("rules").clone();
    let index = rules
        .iter()
        .position(|r| r["resources"] == serde_json::json!(["clusterimagepolicies/status"]))
        .expect("the status rule");
    rules.remove(index);
    let reduced = serde_json::json!({
        "apiVersion": "rbac.authorization.k8s.io/v1",
        "kind": "ClusterRole",
        "metadata": {"name": MANAGER, "labels": role["metadata"]["labels"]},
        "rules": rules,
    });
    kubectl(
        &[
            "apply",
            "--server-side",
            &format!("--field-manager={manager}"),
            "-f",
            "-",
        ],
        Some(&reduced.to_string()),
    )
    .expect_ok("drop the status rule");
    eventually(Duration::from_secs(10), "the rule is gone", || {
        (can_i(
            &kubeconfig,
            &[
                "patch",
                "clusterimagepolicies.signing.apps.tanzu.vmware.com",
                "--subresource=status",
            ],
        ) == "no")
            .then_some(())
    });
    let before = operator.log().len();
    apply_policy(&[("k", &pem_a), ("k2", &pem_b)], &["k", "k2"]);
    let denied_since = Instant::now();
    while denied_since.elapsed() < Duration::from_secs(10) {
        let (_, observed, generation, keys) = ready_and_keys();
        assert!(
            observed < generation && keys == 1,
            "the status was written without the status rule (keys {keys}, generation {generation}, observed {observed})"
        );
        std::thread::sleep(Duration::from_millis(500));
    }
    let log = operator.log();
    let new_lines = &log[before..];
    assert!(
        new_lines
            .lines()
            .any(|l| l.contains("Status not updated")
                && (l.contains("403") || l.contains("forbidden"))),
        "no 403 in the operator's log:\n{new_lines}"
    );

    // An upgrade with the same values restores the rule; the pending status is then written.
    let out = helm.deploy("upgrade", &values, &["allowUnmatchedImages=true"]);
    eprintln!("[helm e2e] {}", out.trim());
    assert_eq!(
        can_i(
            &kubeconfig,
            &[
                "patch",
                "clusterimagepolicies.signing.apps.tanzu.vmware.com",
                "--subresource=status"
            ]
        ),
        "yes",
        "helm upgrade did not restore the ClusterRole: {}",
        get_json(&["clusterrole", MANAGER])
    );
    eventually(
        Duration::from_secs(30),
        "the status is written again",
        || {
            let (ready, observed, generation, keys) = ready_and_keys();
            (ready == "True" && observed == generation && keys == 2).then_some(())
        },
    );

    // Uninstall: nothing of the chart's is left but the CRD.
    let out = helm.uninstall().expect_ok("helm.py uninstall");
    eprintln!("[helm e2e] {}", out.trim());
    for kind in [
        "validatingwebhookconfiguration",
        "clusterrole",
        "clusterrolebinding",
    ] {
        let name = if kind == "validatingwebhookconfiguration" {
            CONFIG
        } else {
            MANAGER
        };
        assert!(!exists(&[kind, name]), "{kind} {name} is left");
    }
    for kind in ["serviceaccount", "role", "rolebinding"] {
        assert!(
            !exists(&["-n", CHART_NS, kind, MANAGER]),
            "{kind} {MANAGER} is left"
        );
    }
    let gone = !exists(&["namespace", CHART_NS])
        || get_json(&["namespace", CHART_NS])["status"]["phase"] == "Terminating";
    assert!(gone, "the chart's namespace is left");
    let releases = kubectl(
        &[
            "-n",
            RELEASE_NS,
            "get",
            "secrets",
            "-l",
            &format!("owner=helm,name={RELEASE}"),
            "-o",
            "name",
        ],
        None,
    )
    .expect_ok("release secrets");
    assert_eq!(releases.trim(), "", "the release's records are left");
    assert!(exists(&["crd", CRD]), "the CRD went with the release");

    drop(operator);
    drop(cleanup);
    eprintln!("[helm e2e] passed in {:?}", started.elapsed());
}

/// The chart's Service reaches the operator through this EndpointSlice of the test's.
const ENDPOINTS: &str = "image-policy-e2e-endpoint";

/// This machine's first global IPv4 address: an endpoint may not be a loopback one.
fn host_ip() -> String {
    let out = std::process::Command::new("ip")
        .args(["-4", "-o", "addr", "show", "scope", "global"])
        .output()
        .expect("ip");
    let text = String::from_utf8_lossy(&out.stdout);
    text.split_whitespace()
        .skip_while(|w| *w != "inet")
        .nth(1)
        .and_then(|cidr| cidr.split('/').next())
        .unwrap_or_else(|| panic!("no global IPv4 address on this machine: {text}"))
        .to_owned()
}

/// The operator as the chart's Deployment runs it: its container's arguments, its
/// ServiceAccount, the serving certificate Helm made (the Secret the Pod mounts), on this
/// machine's address; only the registry's CA is added (a registry a cluster pulls from would
/// not need it). The chart's Service gets it as its endpoint, as the endpoints controller
/// would give it the Pod: the API server calls a webhook's Service at its endpoints
/// (hack/cluster-up.sh: --enable-aggregator-routing, there is no kube-proxy here).
fn run_as_the_deployment(dir: &Path, registry_ca: &Path) -> Operator {
    let deployment = get_json(&["-n", CHART_NS, "deployment", MANAGER]);
    let container = &deployment["spec"]["template"]["spec"]["containers"][0];
    let mounted = "/etc/image-policy/tls";
    let mount = container["volumeMounts"]
        .as_array()
        .expect("volumeMounts")
        .iter()
        .find(|m| m["name"] == "tls")
        .expect("the tls mount");
    assert_eq!(mount["mountPath"], mounted);
    let secret = get_json(&["-n", CHART_NS, "secret", "image-policy-webhook-tls"]);
    let tls = dir.join("tls");
    std::fs::create_dir_all(&tls).expect("tls dir");
    for file in ["tls.crt", "tls.key"] {
        let bytes = base64::engine::general_purpose::STANDARD
            .decode(secret["data"][file].as_str().expect(file))
            .expect("base64");
        std::fs::write(tls.join(file), bytes).expect("write");
    }
    let tls = tls.to_str().unwrap();
    let mut args: Vec<String> = container["args"]
        .as_array()
        .expect("args")
        .iter()
        .map(|a| a.as_str().expect("arg").replace(mounted, tls))
        .filter(|a| !a.starts_with("--webhook-addr=") && !a.starts_with("--metrics-addr="))
        .collect();
    // The subcommand, which Operator::start_at gives with the two addresses.
    assert_eq!(args.first().map(String::as_str), Some("run"), "{args:?}");
    args.remove(0);
    eprintln!("[helm e2e] the Deployment's arguments: {args:?}");
    args.push(format!("--ca-file={}", registry_ca.display()));
    let ip = host_ip();
    let port = free_port();
    let kubeconfig = service_account_kubeconfig(dir);
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let (operator, _) = Operator::start_at(
        dir,
        POD_NAME,
        (&format!("{ip}:{port}"), free_port()),
        Some(&kubeconfig),
        &args,
        &[],
    );
    let endpoints = format!(
        "apiVersion: discovery.k8s.io/v1\nkind: EndpointSlice\nmetadata:\n  name: {ENDPOINTS}\n  namespace: {CHART_NS}\n\
         \x20 labels:\n    kubernetes.io/service-name: image-policy-webhook-service\naddressType: IPv4\n\
         ports:\n- {{name: webhook, port: {port}, protocol: TCP}}\n\
         endpoints:\n- addresses: [\"{ip}\"]\n  conditions: {{ready: true}}\n"
    );
    kubectl(&["apply", "-f", "-"], Some(&endpoints)).expect_ok("the Service's endpoint");
    operator
}

/// The README's install: `helm install ... -n image-policy-system --create-namespace` with the
/// default values. Helm creates the namespace after rendering; the API server labels it
/// `kubernetes.io/metadata.name`, which the webhooks exclude by selector (and by their
/// matchConditions), so the operator's own Pods are created (by kube-controller-manager,
/// through admission) while no operator serves yet. No kubelet runs them here: the operator
/// runs beside the control plane as the Deployment would, behind the chart's Service. A signed
/// Pod is admitted and pinned to its digest, one signed by another key is refused in the
/// original's words, and `helm uninstall` leaves the CRD and the namespace Helm made, and
/// nothing else of the chart's.
#[tokio::test(flavor = "multi_thread")]
async fn the_chart_installs_into_its_own_namespace_with_default_values() {
    let registry = Registry::start(RegistryOptions::default());
    let demo = Cosign::new(&registry)
        .push_demo(&Pusher::new(&registry))
        .await;
    let host = registry.host();
    let helm = Helm::in_namespace(CHART_NS);
    clean_slate(&helm);
    let cleanup = Cleanup {
        helm: &helm,
        namespace: TEST_NS,
        extra: &[&[
            "-n",
            CHART_NS,
            "delete",
            "endpointslice",
            ENDPOINTS,
            "--ignore-not-found",
        ]],
    };

    let out = helm
        .install_creating_namespace()
        .expect_ok("helm.py install -n image-policy-system --create-namespace");
    eprintln!("[helm e2e] {}", out.trim());
    assert!(
        out.contains(&format!("release {RELEASE} in {CHART_NS}: revision 1")),
        "{out}"
    );
    let chart_ns = get_json(&["namespace", CHART_NS]);
    assert_eq!(
        chart_ns["metadata"]["labels"]["kubernetes.io/metadata.name"], CHART_NS,
        "labelled by the API server"
    );
    assert!(
        chart_ns["metadata"]["annotations"]["meta.helm.sh/release-name"].is_null(),
        "the release took over the namespace: {chart_ns}"
    );
    assert!(exists(&["-n", CHART_NS, "deployment", MANAGER]));
    assert!(exists(&["mutatingwebhookconfiguration", MUTATING_CONFIG]));
    let webhook = &get_json(&["validatingwebhookconfiguration", CONFIG])["webhooks"][0];
    assert_eq!(webhook["clientConfig"]["service"]["namespace"], CHART_NS);
    // Not refused by a webhook that has no endpoint yet: its own namespace is excluded.
    eventually(
        Duration::from_secs(60),
        "the operator's Pods are created",
        || {
            let pods = kubectl(
                &[
                    "-n",
                    CHART_NS,
                    "get",
                    "pods",
                    "-l",
                    "app.kubernetes.io/name=image-policy-webhook",
                    "-o",
                    "name",
                ],
                None,
            )
            .expect_ok("pods");
            (!pods.trim().is_empty()).then_some(())
        },
    );

    // The operator behind the chart's Service, and the seed's policy.
    let dir = tempfile::tempdir().expect("dir");
    let operator = run_as_the_deployment(dir.path(), &registry.ca_path());
    namespace(TEST_NS);
    let policy = policy_yaml(
        "image-policy",
        &host,
        &[("k", &demo.key.public_pem)],
        &["k"],
    );
    eventually(
        Duration::from_secs(30),
        "the webhook admits the policy",
        || {
            kubectl(&["apply", "-f", "-"], Some(&policy))
                .ok
                .then_some(())
        },
    );
    let signed = format!("{host}/demo/signed:v1");
    let run = eventually(Duration::from_secs(30), "the policy is enforced", || {
        let run = kubectl(
            &[
                "-n",
                TEST_NS,
                "run",
                "signed",
                &format!("--image={signed}"),
                "--restart=Never",
            ],
            None,
        );
        (!run
            .stderr
            .contains("Image policy enforcement was not applied"))
        .then_some(run)
    });
    assert_eq!(said(&run), "pod/signed created\n");
    let image = kubectl(
        &[
            "-n",
            TEST_NS,
            "get",
            "pod",
            "signed",
            "-o",
            "jsonpath={.spec.containers[0].image}",
        ],
        None,
    )
    .expect_ok("the pod's image");
    assert!(
        image.starts_with(&format!("{signed}@sha256:")),
        "not pinned by the chart's mutating webhook: {image}"
    );
    let other = format!("{host}/demo/other-key:v1");
    let run = kubectl(
        &[
            "-n",
            TEST_NS,
            "run",
            "other",
            &format!("--image={other}"),
            "--restart=Never",
        ],
        None,
    );
    assert_eq!(
        run.stderr,
        format!(
            "Error from server (The image: {other} is not signed.): admission webhook \"{WEBHOOK_NAME}\" denied the request: The image: {other} is not signed.\n"
        )
    );
    let _ = kubectl(&["delete", "clusterimagepolicy", "image-policy"], None);

    helm.uninstall().expect_ok("helm.py uninstall");
    for (kind, name) in [
        ("validatingwebhookconfiguration", CONFIG),
        ("mutatingwebhookconfiguration", MUTATING_CONFIG),
        ("clusterrole", MANAGER),
        ("clusterrolebinding", MANAGER),
    ] {
        assert!(!exists(&[kind, name]), "{kind} {name} is left");
    }
    let left = kubectl(
        &[
            "-n",
            CHART_NS,
            "get",
            "deployments,services,serviceaccounts,roles,rolebindings,secrets,configmaps,resourcequotas",
            "-l",
            &format!("app.kubernetes.io/instance={RELEASE}"),
            "-o",
            "name",
        ],
        None,
    )
    .expect_ok("the chart's objects");
    assert_eq!(left.trim(), "", "left in {CHART_NS}");
    let releases = kubectl(
        &[
            "-n",
            CHART_NS,
            "get",
            "secrets",
            "-l",
            "owner=helm",
            "-o",
            "name",
        ],
        None,
    )
    .expect_ok("release secrets");
    assert_eq!(releases.trim(), "", "the release's records are left");
    assert!(exists(&["crd", CRD]), "the CRD went with the release");
    assert_eq!(
        get_json(&["namespace", CHART_NS])["status"]["phase"],
        "Active",
        "the namespace is not the release's to delete"
    );
    drop(operator);
    drop(cleanup);
}
