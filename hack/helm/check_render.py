#!/usr/bin/env python3
"""Asserts what charts/image-policy-webhook renders, with real Helm (helm-python-sdk).

Renders the chart offline for the default values, for hack/helm/values-everything.yaml and
for its certManager and webhook.url variants, and installs it with a client-side dry run
(Helm's own install action, schema validation included) for values that must be refused. The
templates' lookups of the cluster run against the real API server in e2e/tests/helm.rs.
Each check prints PASS or FAIL with what it saw; the last line is `N passed, N failed`, and
the exit status is 1 when any check failed.

Run with the venv's python: hack/helm/test-chart.sh does.
"""

from __future__ import annotations

import base64
import json
import os
import re
import subprocess
import sys
import tempfile
import time
import traceback
from pathlib import Path
from typing import Any, Callable

import helm_python as helm

import helm as helm_cli  # hack/helm/helm.py, beside this file

ROOT = Path(__file__).resolve().parents[2]
# CHART_DIR: another copy of the chart (to see that a broken one fails these checks).
CHART = Path(os.environ.get("CHART_DIR") or ROOT / "charts" / "image-policy-webhook")
EVERYTHING = Path(__file__).resolve().parent / "values-everything.yaml"

MANAGER = "image-policy-controller-manager"
SERVICE = "image-policy-webhook-service"
WEBHOOK = "image-policy-webhook.signing.apps.tanzu.com"
WEBHOOK_CONFIG = "image-policy-validating-webhook-configuration"
MUTATING_CONFIG = "image-policy-mutating-webhook-configuration"
# The validating webhook's name: the seed's denial names it, whichever of the two refuses.
PIN_WEBHOOK = "image-policy-webhook.signing.apps.tanzu.com"
TLS_SECRET = "image-policy-webhook-tls"
DEV_URL = "https://127.0.0.1:9443/signing-policy-check"
# The Kubernetes release the end-to-end suite runs on (hack/k8s/go.mod): what the chart is
# rendered for, and the oldest its kubeVersion accepts.
KUBE_VERSION = next(line.split()[1] for line in (ROOT / "hack" / "k8s" / "go.mod").read_text().splitlines()
                    if line.strip().startswith("k8s.io/kubernetes "))
# A kubeconfig with no cluster: a client-side dry run never contacts one.
NO_CLUSTER = "apiVersion: v1\nkind: Config\nclusters: []\ncontexts: []\nusers: []\n"

EXPECTED_RULES = {
    # (group, version, resource) the webhook intercepts; docs/contract.md §2 plus the policy itself.
    ("", "v1", "pods"),
    ("", "v1", "pods/ephemeralcontainers"),
    ("", "v1", "replicationcontrollers"),
    ("apps", "v1", "deployments"),
    ("apps", "v1", "statefulsets"),
    ("apps", "v1", "daemonsets"),
    ("apps", "v1", "replicasets"),
    ("batch", "v1", "jobs"),
    ("batch", "v1", "cronjobs"),
    ("batch", "v1beta1", "cronjobs"),
    ("signing.apps.tanzu.vmware.com", "v1beta1", "clusterimagepolicies"),
}


# --- rendering ------------------------------------------------------------------------------


class Rendered:
    """The objects of one render, by kind and name."""

    def __init__(self, objects: list[dict[str, Any]]) -> None:
        self.objects = objects

    def all(self, kind: str) -> list[dict[str, Any]]:
        return [o for o in self.objects if o.get("kind") == kind]

    def get(self, kind: str, name: str, namespace: str | None = None) -> dict[str, Any] | None:
        for o in self.all(kind):
            meta = o.get("metadata") or {}
            if meta.get("name") == name and (namespace is None or meta.get("namespace") == namespace):
                return o
        return None

    def one(self, kind: str, name: str, namespace: str | None = None) -> dict[str, Any]:
        found = self.get(kind, name, namespace)
        assert found is not None, f"no {kind} {namespace or ''}/{name} rendered; have {self.names()}"
        return found

    def names(self) -> list[str]:
        return sorted(f"{o.get('kind')}/{(o.get('metadata') or {}).get('name')}" for o in self.objects)

    def container(self) -> dict[str, Any]:
        pod = self.one("Deployment", MANAGER)["spec"]["template"]["spec"]
        assert len(pod["containers"]) == 1, "expected one container"
        return pod["containers"][0]

    def webhook(self) -> dict[str, Any]:
        config = self.one("ValidatingWebhookConfiguration", WEBHOOK_CONFIG)
        hooks = config["webhooks"]
        assert [h["name"] for h in hooks] == [WEBHOOK], f"webhooks: {[h['name'] for h in hooks]}"
        return hooks[0]

    def rbac_rules(self) -> set[tuple[str, str, str, str, str, str]]:
        """(kind, namespace, group, resource, verb, resourceName) for every granted verb."""
        granted = set()
        for kind in ("ClusterRole", "Role"):
            for role in self.all(kind):
                ns = role["metadata"].get("namespace", "")
                for rule in role.get("rules") or []:
                    for group in rule.get("apiGroups") or []:
                        for resource in rule.get("resources") or []:
                            for verb in rule.get("verbs") or []:
                                for name in rule.get("resourceNames") or [""]:
                                    granted.add((kind, ns, group, resource, verb, name))
        return granted


def merge(base: dict[str, Any], override: dict[str, Any]) -> dict[str, Any]:
    for key, value in override.items():
        if isinstance(value, dict) and isinstance(base.get(key), dict):
            merge(base[key], value)
        else:
            base[key] = value
    return base


def values(*sets: str, file: Path | None = None) -> dict[str, Any]:
    result: dict[str, Any] = {}
    if file is not None:
        merge(result, helm.values_from_yaml(file.read_text()) or {})
    for expression in sets:
        merge(result, helm.parse_set_string(expression))
    return result


def parse_stream(text: str) -> list[dict[str, Any]]:
    objects = []
    for document in re.split(r"(?m)^---[ \t]*$", text):
        if not document.strip():
            continue
        parsed = helm.values_from_yaml(document)
        if parsed:
            objects.append(parsed)
    return objects


def render(vals: dict[str, Any], namespace: str = "default", kube_version: str = KUBE_VERSION) -> Rendered:
    """Offline render, after the schema check `helm install` does, for `kube_version` (the
    release the end-to-end suite runs on, unless told)."""
    with helm.Chart.load(CHART) as chart:
        chart.validate_schema(vals)
        manifests = helm_cli.render_chart(chart, vals, "image-policy", namespace, kube_version)
    objects = []
    for path, text in sorted(manifests.items()):
        if not path.endswith("NOTES.txt"):
            objects.extend(parse_stream(text))
    return Rendered(objects)


def dry_run_install(vals: dict[str, Any], namespace: str = "default",
                    kube_version: str | None = KUBE_VERSION) -> dict[str, Any]:
    """Helm's install action, client-side: the chart's kubeVersion, schema, templates and fail()
    all run, for `kube_version` (as `helm install --dry-run --kube-version`), or the SDK's
    default when None. helm-python-sdk's install() takes no kube version, but the native call
    it makes does (the `kube_version` install option of its C ABI)."""
    from helm_python import _native

    options = {"namespace": namespace, "dry_run": "client"}
    if kube_version is not None:
        options["kube_version"] = kube_version
    with helm.Config(namespace=namespace, kubeconfig_content=NO_CLUSTER) as cfg, \
            helm.Chart.load(CHART) as chart:
        payload = _native.call_string("helm_install", cfg._raw(), cfg._context_arg(None), chart._raw(), None,
                                      "image-policy", json.dumps(vals), json.dumps(options))
    return json.loads(payload)


def install_error(vals: dict[str, Any], namespace: str = "default") -> str:
    try:
        dry_run_install(vals, namespace)
    except helm.HelmError as error:
        return str(error)
    raise AssertionError(f"install of {vals} succeeded; expected it to be refused")


# --- the harness ----------------------------------------------------------------------------

RESULTS = {"passed": 0, "failed": 0}


def check(name: str, body: Callable[[], None]) -> None:
    try:
        body()
    except Exception as error:  # a check that cannot run has failed, whatever the reason
        RESULTS["failed"] += 1
        detail = str(error) if isinstance(error, AssertionError) else traceback.format_exc(limit=3)
        print(f"FAIL {name}: {detail}")
    else:
        RESULTS["passed"] += 1
        print(f"PASS {name}")


def expect_eq(actual: Any, expected: Any, what: str) -> None:
    assert actual == expected, f"{what}: got {actual!r}, want {expected!r}"


# --- checks ---------------------------------------------------------------------------------


def check_lint() -> None:
    for label, vals in (("defaults", {}), ("everything", values(file=EVERYTHING))):

        def run(vals: dict[str, Any] = vals) -> None:
            report = helm.lint(CHART, vals, namespace="default")
            bad = [m for m in report.get("messages") or [] if m.get("severity", 0) >= 2]
            assert report.get("total_charts_linted") == 1, f"linted: {report}"
            assert not report.get("errors") and not bad, f"lint findings: {report}"

        check(f"lint with {label} values has no warning or error", run)


def check_names(r: Rendered, ns: str) -> None:
    def deployment() -> None:
        d = r.one("Deployment", MANAGER, ns)
        expect_eq(d["spec"]["template"]["spec"]["serviceAccountName"], MANAGER, "serviceAccountName")
        r.one("ServiceAccount", MANAGER, ns)

    def service() -> None:
        s = r.one("Service", SERVICE, ns)
        ports = {p["name"]: p for p in s["spec"]["ports"]}
        expect_eq((ports["webhook"]["port"], ports["webhook"]["targetPort"]), (443, "webhook"), "webhook port")
        container_ports = {p["name"]: p["containerPort"] for p in r.container()["ports"]}
        expect_eq(container_ports, {"webhook": 8443, "metrics": 8080}, "container ports")
        selector = s["spec"]["selector"]
        pod_labels = r.one("Deployment", MANAGER)["spec"]["template"]["metadata"]["labels"]
        assert all(pod_labels.get(k) == v for k, v in selector.items()), f"{selector} vs {pod_labels}"

    def namespaces() -> None:
        for o in r.objects:
            kind = o["kind"]
            if kind in ("Namespace", "ClusterRole", "ClusterRoleBinding", "ValidatingWebhookConfiguration",
                        "MutatingWebhookConfiguration"):
                continue
            if kind in ("Role", "RoleBinding") and o["metadata"]["name"] == "image-policy-read-secrets":
                continue
            expect_eq(o["metadata"].get("namespace"), ns, f"{kind}/{o['metadata']['name']} namespace")

    check(f"[{ns}] Deployment and ServiceAccount {MANAGER}", deployment)
    check(f"[{ns}] Service {SERVICE}:443 -> container port 8443", service)
    check(f"[{ns}] every namespaced object is in {ns}", namespaces)


def check_webhook(r: Rendered, ns: str, timeout: int, extra_excluded: tuple[str, ...] = ()) -> None:
    def settings() -> None:
        h = r.webhook()
        expect_eq(h["failurePolicy"], "Fail", "failurePolicy")
        expect_eq(h["sideEffects"], "None", "sideEffects")
        expect_eq(h["timeoutSeconds"], timeout, "timeoutSeconds")
        expect_eq(h["admissionReviewVersions"], ["v1", "v1beta1"], "admissionReviewVersions")
        expect_eq(h.get("matchPolicy"), "Equivalent", "matchPolicy")

    def rules() -> None:
        h = r.webhook()
        seen = set()
        for rule in h["rules"]:
            expect_eq(sorted(rule["operations"]), ["CREATE", "UPDATE"], f"operations of {rule}")
            for g in rule["apiGroups"]:
                for v in rule["apiVersions"]:
                    for res in rule["resources"]:
                        seen.add((g, v, res))
        assert "*" not in str(h["rules"]), "wildcard in rules"
        expect_eq(seen, EXPECTED_RULES, "intercepted (group, version, resource)")

    def selector() -> None:
        h = r.webhook()
        expressions = h["namespaceSelector"]["matchExpressions"]
        assert "matchLabels" not in h["namespaceSelector"], "unexpected matchLabels"
        expect_eq(len(expressions), 1, "matchExpressions")
        e = expressions[0]
        expect_eq((e["key"], e["operator"]), ("kubernetes.io/metadata.name", "NotIn"), "expression")
        want = ["kube-system", ns, *[x for x in extra_excluded if x not in ("kube-system", ns)]]
        expect_eq(e["values"], want, "excluded namespaces")

    check(f"[{ns}] webhook {WEBHOOK}: Fail, None, {timeout}s, v1+v1beta1", settings)
    check(f"[{ns}] webhook rules: every kind of docs/contract.md §2, ephemeral containers, the policy", rules)
    check(f"[{ns}] namespaceSelector excludes kube-system and {ns}", selector)


def check_service_client(r: Rendered, ns: str) -> None:
    def client() -> None:
        cc = r.webhook()["clientConfig"]
        expect_eq(
            cc.get("service"),
            {"name": SERVICE, "namespace": ns, "path": "/signing-policy-check", "port": 443},
            "clientConfig.service",
        )
        assert "url" not in cc, "clientConfig.url set"

    check(f"[{ns}] clientConfig: Service {SERVICE}, path /signing-policy-check", client)


def rbac_expected(ns: str, *, operator_certs: bool, secret_namespaces: tuple[str, ...] = (),
                  pinning: bool = True, events: bool = True) -> set:
    cip = "signing.apps.tanzu.vmware.com"
    rules = set()
    if events:
        # The recorder creates an Event, then patches its series; in any namespace.
        for verb in ("create", "patch"):
            rules.add(("ClusterRole", "", "events.k8s.io", "events", verb, ""))
    for verb in ("get", "list", "watch"):
        rules.add(("ClusterRole", "", cip, "clusterimagepolicies", verb, ""))
        rules.add(("ClusterRole", "", "", "serviceaccounts", verb, ""))
        if secret_namespaces:
            for target in dict.fromkeys((*secret_namespaces, ns)):
                rules.add(("Role", target, "", "secrets", verb, ""))
        else:
            rules.add(("ClusterRole", "", "", "secrets", verb, ""))
    for verb in ("get", "patch", "update"):
        rules.add(("ClusterRole", "", cip, "clusterimagepolicies/status", verb, ""))
    # The check of what already runs: list only.
    rules.add(("ClusterRole", "", "", "pods", "list", ""))
    rules.add(("ClusterRole", "", "apps", "replicasets", "list", ""))
    rules.add(("ClusterRole", "", "batch", "jobs", "list", ""))
    for verb in ("get", "create", "update"):
        rules.add(("Role", ns, "coordination.k8s.io", "leases", verb, ""))
    for verb in ("get", "list", "watch"):
        rules.add(("Role", ns, "", "configmaps", verb, ""))
    if operator_certs:
        for verb in ("get", "update"):
            rules.add(("ClusterRole", "", "admissionregistration.k8s.io",
                       "validatingwebhookconfigurations", verb, WEBHOOK_CONFIG))
            if pinning:
                rules.add(("ClusterRole", "", "admissionregistration.k8s.io",
                           "mutatingwebhookconfigurations", verb, MUTATING_CONFIG))
            rules.add(("Role", ns, "", "secrets", verb, TLS_SECRET))
    return rules


def check_rbac(r: Rendered, ns: str, expected: set, label: str) -> None:
    def exact() -> None:
        granted = r.rbac_rules()
        assert not any("*" in field for rule in granted for field in rule), "wildcard granted"
        missing, extra = expected - granted, granted - expected
        assert not missing and not extra, f"missing {sorted(missing)}; extra {sorted(extra)}"

    def bindings() -> None:
        for kind, role_kind in (("ClusterRoleBinding", "ClusterRole"), ("RoleBinding", "Role")):
            for b in r.all(kind):
                expect_eq(b["subjects"], [{"kind": "ServiceAccount", "name": MANAGER, "namespace": ns}],
                          f"{kind}/{b['metadata']['name']} subjects")
                target_ns = b["metadata"].get("namespace")
                r.one(role_kind, b["roleRef"]["name"], target_ns)
        assert r.all("ClusterRoleBinding") and r.all("RoleBinding"), "bindings missing"

    check(f"[{ns}] RBAC is exactly the operator's needs ({label})", exact)
    check(f"[{ns}] every binding binds {MANAGER} to a rendered role", bindings)


def check_security(r: Rendered) -> None:
    def body() -> None:
        pod = r.one("Deployment", MANAGER)["spec"]["template"]["spec"]
        sc = r.container()["securityContext"]
        expect_eq(sc.get("runAsNonRoot"), True, "runAsNonRoot")
        expect_eq(sc.get("readOnlyRootFilesystem"), True, "readOnlyRootFilesystem")
        expect_eq(sc.get("allowPrivilegeEscalation"), False, "allowPrivilegeEscalation")
        expect_eq(sc.get("capabilities"), {"drop": ["ALL"]}, "capabilities")
        expect_eq(sc.get("seccompProfile"), {"type": "RuntimeDefault"}, "container seccompProfile")
        expect_eq(pod["securityContext"].get("runAsNonRoot"), True, "pod runAsNonRoot")
        expect_eq(pod["securityContext"].get("seccompProfile"), {"type": "RuntimeDefault"}, "pod seccomp")
        assert not pod.get("hostNetwork") and not pod.get("hostPID"), "host namespaces"

    check("securityContext: non-root, read-only root, no escalation, no capabilities, seccomp", body)


def check_probes_and_resources(r: Rendered, resources: dict[str, Any]) -> None:
    def body() -> None:
        c = r.container()
        expect_eq((c["livenessProbe"]["httpGet"]["path"], c["livenessProbe"]["httpGet"]["port"]),
                  ("/healthz", "metrics"), "liveness")
        expect_eq((c["readinessProbe"]["httpGet"]["path"], c["readinessProbe"]["httpGet"]["port"]),
                  ("/readyz", "metrics"), "readiness")
        expect_eq(c["resources"], resources, "resources")

    check("probes on /healthz and /readyz (port 8080); resources", body)


def check_quota(r: Rendered, ns: str, pods: int) -> None:
    def body() -> None:
        quota = r.one("ResourceQuota", "image-policy-critical-pods", ns)
        expect_eq(quota["spec"]["hard"], {"pods": str(pods)}, "hard")
        expect_eq(quota["spec"]["scopeSelector"]["matchExpressions"],
                  [{"scopeName": "PriorityClass", "operator": "In", "values": ["system-cluster-critical"]}],
                  "scopeSelector")
        pod = r.one("Deployment", MANAGER)["spec"]["template"]["spec"]
        expect_eq(pod.get("priorityClassName"), "system-cluster-critical", "priorityClassName")

    check(f"[{ns}] ResourceQuota pods={pods} scoped to PriorityClass system-cluster-critical", body)


def check_pdb(r: Rendered, replicas: int) -> None:
    def body() -> None:
        expect_eq(r.one("Deployment", MANAGER)["spec"]["replicas"], replicas, "replicas")
        pdbs = r.all("PodDisruptionBudget")
        if replicas > 1:
            expect_eq(len(pdbs), 1, "PodDisruptionBudgets")
            expect_eq(pdbs[0]["spec"]["minAvailable"], 1, "minAvailable")
            labels = r.one("Deployment", MANAGER)["spec"]["selector"]["matchLabels"]
            expect_eq(pdbs[0]["spec"]["selector"]["matchLabels"], labels, "PDB selector")
        else:
            expect_eq(pdbs, [], "PodDisruptionBudgets")

    check(f"replicas={replicas}: PodDisruptionBudget {'minAvailable 1' if replicas > 1 else 'absent'}", body)


def openssl(*args: str, data: bytes | None = None) -> str:
    done = subprocess.run(["openssl", *args], input=data, capture_output=True, check=False)
    assert done.returncode == 0, f"openssl {' '.join(args)}: {done.stderr.decode().strip()}"
    return done.stdout.decode()


def check_helm_certificate(r: Rendered, ns: str) -> None:
    def body() -> None:
        secret = r.one("Secret", TLS_SECRET, ns)
        expect_eq(secret["type"], "kubernetes.io/tls", "type")
        data = {k: base64.b64decode(v) for k, v in secret["data"].items()}
        ca_bundle = r.webhook()["clientConfig"]["caBundle"]
        expect_eq(ca_bundle, secret["data"]["ca.crt"], "caBundle vs the Secret's ca.crt")
        with tempfile.TemporaryDirectory() as tmp:
            ca, crt = Path(tmp, "ca.crt"), Path(tmp, "tls.crt")
            ca.write_bytes(data["ca.crt"])
            crt.write_bytes(data["tls.crt"])
            openssl("verify", "-CAfile", str(ca), str(crt))
            sans = openssl("x509", "-in", str(crt), "-noout", "-ext", "subjectAltName")
            assert f"DNS:{SERVICE}.{ns}.svc" in sans, f"SANs: {sans}"
        # P-256 keys: a handshake costs an ECDSA signature, not an RSA one.
        for name in ("ca.crt", "tls.crt"):
            text = openssl("x509", "-noout", "-text", data=data[name])
            assert "id-ecPublicKey" in text and "prime256v1" in text, f"{name} key: {text[:400]}"
        # The key matches the certificate.
        pub_cert = openssl("x509", "-noout", "-pubkey", data=data["tls.crt"])
        pub_key = openssl("pkey", "-pubout", data=data["tls.key"])
        expect_eq(pub_key, pub_cert, "public key of tls.key vs tls.crt")
        ann = secret["metadata"]["annotations"]
        for key in ("hosts", "not-after"):
            assert f"image-policy.signing.apps.tanzu.vmware.com/{key}" in ann, f"annotation {key}"

    check(f"[{ns}] certificates.mode=helm: the Secret's certificate verifies with caBundle", body)


def check_defaults() -> None:
    ns = "image-policy-system"
    r = render({})
    check_names(r, ns)
    check_webhook(r, ns, timeout=10)
    check_service_client(r, ns)
    check_rbac(r, ns, rbac_expected(ns, operator_certs=False), "defaults")
    check_security(r)
    check_probes_and_resources(r, {"requests": {"cpu": "100m", "memory": "50Mi"},
                                   "limits": {"cpu": "200m", "memory": "256Mi"}})
    check_quota(r, ns, 5)
    check_pdb(r, 1)
    check_pdb(render(values("replicas=3")), 3)
    check_helm_certificate(r, ns)

    def args() -> None:
        a = r.container()["args"]
        expect_eq(a[0], "run", "subcommand")
        for flag in ("--tls-cert-file=/etc/image-policy/tls/tls.crt",
                     "--tls-key-file=/etc/image-policy/tls/tls.key",
                     f"--namespace={ns}", "--log-level=info", "--webhook-addr=0.0.0.0:8443",
                     "--metrics-addr=0.0.0.0:8080", "--max-connections=1024",
                     "--resync-period=10m", "--running-check-rate=20",
                     "--running-check-concurrency=8", "--running-check-timeout=10m",
                     "--unchecked-namespace=kube-system", "--events=true"):
            assert flag in a, f"{flag} not in {a}"
        excluded = render(values("webhook.excludedNamespaces={tools,kube-system}")).container()["args"]
        expect_eq([x for x in excluded if x.startswith("--unchecked-namespace=")],
                  ["--unchecked-namespace=kube-system", "--unchecked-namespace=tools"],
                  "unchecked namespaces: kube-system and webhook.excludedNamespaces, once each")
        assert "--allow-unmatched-images" not in a, "allowUnmatchedImages is false by default"
        assert "--allow-redirects-to-loopback" not in a, "no redirect to loopback by default"
        env = {e["name"]: e for e in r.container()["env"]}
        expect_eq(env["POD_IP"]["valueFrom"], {"fieldRef": {"fieldPath": "status.podIP"}}, "POD_IP")
        assert not any(x.startswith(("--ca-file", "--insecure-registry")) for x in a), a
        on = render(values("allowUnmatchedImages=true")).container()["args"]
        assert "--allow-unmatched-images" in on, f"--allow-unmatched-images not in {on}"
        off = render(values("events.enabled=false")).container()["args"]
        assert "--events=false" in off and "--events=true" not in off, off

    def namespace_object() -> None:
        # The API server labels it kubernetes.io/metadata.name itself.
        n = r.one("Namespace", ns)
        assert "kubernetes.io/metadata.name" not in n["metadata"]["labels"], n["metadata"]["labels"]
        off = render(values("createNamespace=false"))
        expect_eq(off.all("Namespace"), [], "Namespace with createNamespace=false")

    def no_cert_manager() -> None:
        assert not r.all("Certificate") and not r.all("Issuer"), "cert-manager objects by default"
        assert "annotations" not in r.one("ValidatingWebhookConfiguration", WEBHOOK_CONFIG)["metadata"]

    def install_path() -> None:
        release = dry_run_install({})
        on_install = Rendered(parse_stream(release["manifest"]))
        expect_eq(on_install.names(), r.names(), "objects of `helm install` vs render")

    check("defaults: args of `image-policy run`; allowUnmatchedImages and events.enabled reach it", args)
    check(f"defaults: Namespace {ns} created (createNamespace)", namespace_object)
    check("defaults: no cert-manager objects", no_cert_manager)
    check("defaults: `helm install` (client dry run) renders the same objects", install_path)


def check_everything() -> None:
    ns = "signing-system"
    base = values(file=EVERYTHING)
    r = render(base)
    check_names(r, ns)
    check_webhook(r, ns, timeout=15, extra_excluded=("cert-manager", "kube-system"))
    check_service_client(r, ns)
    check_rbac(r, ns, rbac_expected(ns, operator_certs=True, secret_namespaces=("team-a", "team-b"),
                                    events=False),
               "operator certificates, secretNamespaces, no events")
    check_security(r)
    check_probes_and_resources(r, base["resources"])
    check_quota(r, ns, 8)
    check_pdb(r, 3)

    def args() -> None:
        a = r.container()["args"]
        for flag in ("--allow-unmatched-images", "--log-level=debug", f"--namespace={ns}",
                     "--ca-file=/etc/image-policy/ca/secret-0/ca.crt",
                     "--ca-file=/etc/image-policy/ca/secret-1/ca.crt",
                     "--ca-file=/etc/image-policy/ca/values/ca-0.crt",
                     "--insecure-registry=registry.local:5000", "--insecure-registry=localhost",
                     "--allow-redirects-to-loopback", "--max-connections=2048",
                     "--verify-timeout=6s", "--digest-cache-ttl=15s", "--verified-cache-ttl=5m",
                     "--rejected-cache-ttl=20s", "--cache-size=5000",
                     "--some-future-flag=30s", "--events=false",
                     f"--tls-secret={TLS_SECRET}", f"--webhook-configuration={WEBHOOK_CONFIG}",
                     f"--mutating-webhook-configuration={MUTATING_CONFIG}", "--pin-digests=pods",
                     "--tls-validity=2160h", "--tls-renew-before=360h"):
            assert flag in a, f"{flag} not in {a}"
        assert not any(f.startswith("--tls-cert-file") for f in a), "certificate files in operator mode"

    def custom_cas() -> None:
        pod = r.one("Deployment", MANAGER)["spec"]["template"]["spec"]
        volumes = {v["name"]: v for v in pod["volumes"]}
        expect_eq(volumes["ca-secret-0"]["secret"], {"secretName": "registry-ca",
                  "items": [{"key": "ca.crt", "path": "ca.crt"}]}, "ca-secret-0")
        expect_eq(volumes["ca-secret-1"]["secret"], {"secretName": "other-registry-ca",
                  "items": [{"key": "root.pem", "path": "ca.crt"}]}, "ca-secret-1")
        expect_eq(volumes["ca-values"]["configMap"]["name"], "image-policy-custom-cas", "ca-values")
        mounts = {m["name"]: m["mountPath"] for m in r.container()["volumeMounts"]}
        expect_eq(mounts["ca-values"], "/etc/image-policy/ca/values", "mount")
        cm = r.one("ConfigMap", "image-policy-custom-cas", ns)
        expect_eq(cm["data"]["ca-0.crt"].strip(), base["customCas"][0].strip(), "ConfigMap PEM")
        openssl("x509", "-noout", data=cm["data"]["ca-0.crt"].encode())

    def pod_settings() -> None:
        d = r.one("Deployment", MANAGER)
        pod = d["spec"]["template"]
        c = r.container()
        expect_eq(c["image"], "registry.example.org/platform/image-policy@" + base["image"]["digest"], "image")
        expect_eq(c["imagePullPolicy"], "Always", "pullPolicy")
        expect_eq(pod["spec"]["imagePullSecrets"], [{"name": "platform-pull"}], "imagePullSecrets")
        expect_eq(r.one("ServiceAccount", MANAGER)["imagePullSecrets"], [{"name": "platform-pull"}], "SA")
        expect_eq(pod["spec"]["nodeSelector"], base["nodeSelector"], "nodeSelector")
        expect_eq(pod["spec"]["tolerations"], base["tolerations"], "tolerations")
        expect_eq(pod["spec"]["affinity"], base["affinity"], "affinity")
        expect_eq(pod["spec"]["securityContext"], base["podSecurityContext"], "podSecurityContext")
        expect_eq(pod["metadata"]["labels"]["team"], "platform", "podLabels")
        expect_eq(pod["metadata"]["labels"]["app.kubernetes.io/name"], "image-policy-webhook",
                  "chart label wins over podLabels")
        assert base["podAnnotations"].items() <= pod["metadata"]["annotations"].items(), "podAnnotations"

    def operator_secret() -> None:
        secret = r.one("Secret", TLS_SECRET, ns)
        expect_eq(secret["type"], "kubernetes.io/tls", "type")
        expect_eq(secret["data"], {"tls.crt": "", "tls.key": ""}, "empty Secret for the operator")
        assert "caBundle" not in r.webhook()["clientConfig"], "caBundle is the operator's to fill"
        pod = r.one("Deployment", MANAGER)["spec"]["template"]["spec"]
        assert "tls" not in {v["name"] for v in pod["volumes"]}, "the Secret is read through the API"
        # With nothing else to mount, the Pod has no volumes at all.
        bare = render(values("certificates.mode=operator")).one("Deployment", MANAGER)
        assert "volumes" not in bare["spec"]["template"]["spec"], bare["spec"]["template"]["spec"]

    def operator_outside() -> None:
        # webhook.url with certificates.mode=operator: the operator outside the cluster
        # manages its certificate; the chart creates the Secret and grants what it needs.
        dev = render(merge(values(file=EVERYTHING), values(f"webhook.url={DEV_URL}")))
        expect_eq(dev.webhook()["clientConfig"], {"url": DEV_URL}, "clientConfig")
        expect_eq(dev.one("Secret", TLS_SECRET, ns)["data"], {"tls.crt": "", "tls.key": ""}, "Secret")
        assert dev.get("Deployment", MANAGER) is None, "Deployment rendered in url mode"
        check_rbac_granted = dev.rbac_rules()
        expected = rbac_expected(ns, operator_certs=True, secret_namespaces=("team-a", "team-b"),
                                 events=False)
        expect_eq(check_rbac_granted, expected, "RBAC")

    check("everything: every setting reaches `image-policy run`", args)
    check("everything: customCaSecrets and customCas mounted as --ca-file", custom_cas)
    check("everything: image, pull secrets, scheduling, pod security, labels", pod_settings)
    check("everything: certificates.mode=operator creates the TLS Secret empty", operator_secret)
    check("everything: webhook.url with certificates.mode=operator keeps the Secret and RBAC",
          operator_outside)

    def cert_manager() -> None:
        cm = render(merge(values(file=EVERYTHING), values("certManager.enabled=true")))
        cert = cm.one("Certificate", "image-policy-webhook-cert", ns)
        expect_eq(cert["spec"]["secretName"], TLS_SECRET, "secretName")
        expect_eq(cert["spec"]["issuerRef"], base["certManager"]["issuerRef"], "issuerRef")
        expect_eq((cert["spec"]["duration"], cert["spec"]["renewBefore"]), ("720h", "240h"), "durations")
        assert f"{SERVICE}.{ns}.svc" in cert["spec"]["dnsNames"], cert["spec"]["dnsNames"]
        assert not cm.all("Issuer"), "issuerRef given: no Issuer of the chart's"
        vwc = cm.one("ValidatingWebhookConfiguration", WEBHOOK_CONFIG)
        expect_eq(vwc["metadata"]["annotations"], {"cert-manager.io/inject-ca-from":
                  f"{ns}/image-policy-webhook-cert"}, "annotations")
        assert "caBundle" not in vwc["webhooks"][0]["clientConfig"], "caBundle is injected"
        assert cm.get("Secret", TLS_SECRET) is None, "cert-manager writes the TLS Secret"
        granted = cm.rbac_rules()
        assert not any(rule[3] == "validatingwebhookconfigurations" for rule in granted), granted
        # Without an issuerRef the chart brings its own CA chain.
        own = render(values("certManager.enabled=true"))
        own.one("Issuer", "image-policy-selfsigned", "image-policy-system")
        own.one("Issuer", "image-policy-ca", "image-policy-system")
        expect_eq(own.one("Certificate", "image-policy-ca")["spec"]["isCA"], True, "isCA")
        expect_eq(own.one("Certificate", "image-policy-webhook-cert")["spec"]["issuerRef"]["name"],
                  "image-policy-ca", "issuer")

    def url_mode() -> None:
        bundle = base64.b64encode(base["customCas"][0].encode()).decode()
        dev = render(merge(values(file=EVERYTHING), values(f"webhook.url={DEV_URL}",
                                                           f"webhook.caBundle={bundle}",
                                                           "certificates.mode=helm")))
        cc = dev.webhook()["clientConfig"]
        expect_eq(cc, {"url": DEV_URL, "caBundle": bundle}, "clientConfig")
        for kind, name in (("Deployment", MANAGER), ("Service", SERVICE), ("Secret", TLS_SECRET)):
            assert dev.get(kind, name) is None, f"{kind}/{name} rendered in url mode"
        assert not dev.all("PodDisruptionBudget") and not dev.all("Certificate"), dev.names()
        dev.one("ServiceAccount", MANAGER, ns)
        check_rbac_same = rbac_expected(ns, operator_certs=False, secret_namespaces=("team-a", "team-b"),
                                        events=False)
        expect_eq(dev.rbac_rules(), check_rbac_same, "RBAC in url mode")
        h = dev.webhook()
        expect_eq(h["namespaceSelector"]["matchExpressions"][0]["values"],
                  ["kube-system", ns, "cert-manager"], "excluded namespaces in url mode")

    check("everything + certManager.enabled: Certificate and CA injection", cert_manager)
    check("everything + webhook.url: clientConfig.url, no in-cluster server", url_mode)


def check_pinning() -> None:
    """The mutating webhook of pinDigests: beside the validating one, with its selector, timeout
    and trust, called for Pods (and templates with workloads), absent with off."""
    r = render({})

    def pin_hook(rendered: Rendered) -> dict[str, Any]:
        config = rendered.one("MutatingWebhookConfiguration", MUTATING_CONFIG)
        hooks = config["webhooks"]
        assert [h["name"] for h in hooks] == [PIN_WEBHOOK], f"webhooks: {[h['name'] for h in hooks]}"
        return hooks[0]

    def defaults() -> None:
        hook, validating = pin_hook(r), r.webhook()
        expect_eq(hook["clientConfig"]["service"]["path"], "/pin-digests", "path")
        for key in ("namespaceSelector", "timeoutSeconds", "failurePolicy", "matchPolicy",
                    "sideEffects", "admissionReviewVersions"):
            expect_eq(hook[key], validating[key], key)
        expect_eq(hook["clientConfig"]["caBundle"], validating["clientConfig"]["caBundle"], "caBundle")
        expect_eq(hook["reinvocationPolicy"], "IfNeeded", "reinvocationPolicy")
        expect_eq([rule["resources"] for rule in hook["rules"]], [["pods", "pods/ephemeralcontainers"]],
                  "Pods only")
        assert "--pin-digests=pods" in r.container()["args"], r.container()["args"]

    def workloads() -> None:
        w = render(values("pinDigests=workloads"))
        resources = [res for rule in pin_hook(w)["rules"] for res in rule["resources"]]
        for res in ("pods", "deployments", "statefulsets", "daemonsets", "replicasets", "jobs",
                    "cronjobs", "replicationcontrollers"):
            assert res in resources, f"{res} not in {resources}"
        assert "--pin-digests=workloads" in w.container()["args"]

    def off() -> None:
        o = render(values("pinDigests=off", "certificates.mode=operator"))
        assert o.get("MutatingWebhookConfiguration", MUTATING_CONFIG) is None, o.names()
        a = o.container()["args"]
        assert "--pin-digests=off" in a and not any(x.startswith("--mutating-webhook") for x in a), a
        ns = "image-policy-system"
        check_rbac(o, ns, rbac_expected(ns, operator_certs=True, pinning=False), "pinDigests=off")

    def url() -> None:
        dev = render(values(f"webhook.url={DEV_URL}", "certificates.mode=helm"))
        expect_eq(pin_hook(dev)["clientConfig"]["url"], DEV_URL.replace("/signing-policy-check", "/pin-digests"),
                  "pin url")

    def cert_manager() -> None:
        cm = render(values("certManager.enabled=true"))
        config = cm.one("MutatingWebhookConfiguration", MUTATING_CONFIG)
        expect_eq(config["metadata"]["annotations"], {"cert-manager.io/inject-ca-from":
                  "image-policy-system/image-policy-webhook-cert"}, "annotations")

    check("pinDigests: a mutating webhook beside the validating one, for Pods", defaults)
    check("pinDigests=workloads: the templates of every workload kind too", workloads)
    check("pinDigests=off: no mutating webhook, flag or RBAC", off)
    check("pinDigests with webhook.url: the URL's path is /pin-digests", url)
    check("pinDigests with cert-manager: its CA injected", cert_manager)


def check_namespace_modes() -> None:
    """`helm install -n image-policy-system --create-namespace` with default values: the
    release's namespace exists before the chart, which must not create it; from another
    release namespace the chart creates it (the API server labels it)."""
    ns = "image-policy-system"

    def own() -> None:
        r = render({}, namespace=ns)
        expect_eq(r.all("Namespace"), [], "Namespace objects in the release's own namespace")
        r.one("Deployment", MANAGER, ns)
        expect_eq(r.webhook()["namespaceSelector"]["matchExpressions"][0]["values"], ["kube-system", ns],
                  "excluded namespaces")
        release = dry_run_install({}, namespace=ns)
        on_install = Rendered(parse_stream(release["manifest"]))
        expect_eq(on_install.names(), r.names(), "objects of `helm install -n image-policy-system`")
        notes = release.get("notes") or ""
        assert "is the release's own namespace" in notes, notes

    def other() -> None:
        for release_ns in ("default", "platform"):
            render({}, namespace=release_ns).one("Namespace", ns)
        moved = render(values("deploymentNamespace=platform"), namespace="platform")
        expect_eq(moved.all("Namespace"), [], "Namespace when deploymentNamespace is the release's")
        moved.one("Deployment", MANAGER, "platform")

    check(f"release in {ns}, default values: no Namespace object, no error", own)
    check(f"release elsewhere: Namespace {ns} created; none when it is the release's", other)


def selector_matches(selector: dict[str, Any], labels: dict[str, str]) -> bool:
    return all(labels.get(k) == v for k, v in selector.items())


def check_spreading() -> None:
    """With replicas > 1, preferred anti-affinity on hostname and a spread over zones on the
    selector labels, unless affinity / topologySpreadConstraints are set."""

    def pod_spec(rendered: Rendered) -> dict[str, Any]:
        return rendered.one("Deployment", MANAGER)["spec"]["template"]["spec"]

    def one_replica() -> None:
        spec = pod_spec(render({}))
        assert "affinity" not in spec and "topologySpreadConstraints" not in spec, spec

    def replicas() -> None:
        r = render(values("replicas=3"))
        spec = pod_spec(r)
        pod_labels = r.one("Deployment", MANAGER)["spec"]["template"]["metadata"]["labels"]
        matched = r.one("Deployment", MANAGER)["spec"]["selector"]["matchLabels"]
        terms = spec["affinity"]["podAntiAffinity"]["preferredDuringSchedulingIgnoredDuringExecution"]
        expect_eq(len(terms), 1, "anti-affinity terms")
        expect_eq(terms[0]["podAffinityTerm"]["topologyKey"], "kubernetes.io/hostname", "topologyKey")
        expect_eq(terms[0]["podAffinityTerm"]["labelSelector"], {"matchLabels": matched}, "anti-affinity selector")
        assert "requiredDuringSchedulingIgnoredDuringExecution" not in spec["affinity"]["podAntiAffinity"]
        expect_eq(spec["topologySpreadConstraints"], [{
            "maxSkew": 1, "topologyKey": "topology.kubernetes.io/zone", "whenUnsatisfiable": "ScheduleAnyway",
            "labelSelector": {"matchLabels": matched}}], "topologySpreadConstraints")
        assert selector_matches(matched, pod_labels), f"{matched} vs {pod_labels}"

    def overridden() -> None:
        base = values(file=EVERYTHING)
        spec = pod_spec(render(base))
        expect_eq(spec["affinity"], base["affinity"], "affinity")
        expect_eq(spec["topologySpreadConstraints"], base["topologySpreadConstraints"], "topologySpreadConstraints")

    check("replicas=1: no affinity or topologySpreadConstraints", one_replica)
    check("replicas=3: preferred anti-affinity on hostname, zone spread ScheduleAnyway", replicas)
    check("affinity and topologySpreadConstraints set: they replace the defaults", overridden)


METRICS_RS = ROOT / "operator" / "src" / "telemetry" / "metrics.rs"
OPERATOR_SRC = ROOT / "operator" / "src"


def check_metrics_objects() -> None:
    """ServiceMonitor and PrometheusRule: off by default, aimed at the Service's metrics port,
    and alerting on metric names, labels and label values the operator really exposes."""
    ns = "signing-system"
    base = values(file=EVERYTHING)
    r = render(base)

    def off() -> None:
        d = render({})
        for kind in ("ServiceMonitor", "PrometheusRule", "NetworkPolicy"):
            expect_eq(d.all(kind), [], f"{kind} by default")
        dev = render(merge(values(file=EVERYTHING), values(f"webhook.url={DEV_URL}")))
        for kind in ("ServiceMonitor", "PrometheusRule", "NetworkPolicy"):
            expect_eq(dev.all(kind), [], f"{kind} with webhook.url")

    def service_monitor() -> None:
        sm = r.one("ServiceMonitor", MANAGER, ns)
        expect_eq(sm["apiVersion"], "monitoring.coreos.com/v1", "apiVersion")
        service = r.one("Service", SERVICE, ns)
        assert selector_matches(sm["spec"]["selector"]["matchLabels"], service["metadata"]["labels"]), sm
        expect_eq(sm["spec"]["namespaceSelector"], {"matchNames": [ns]}, "namespaceSelector")
        expect_eq(sm["spec"]["endpoints"], [{"port": "metrics", "path": "/metrics", "scheme": "http",
                                             "interval": "15s"}], "endpoints")
        port = {p["name"]: p for p in service["spec"]["ports"]}["metrics"]
        container_ports = {p["name"]: p["containerPort"] for p in r.container()["ports"]}
        expect_eq((port["targetPort"], container_ports[port["targetPort"]]), ("metrics", 8080), "metrics port")
        assert "--metrics-addr=0.0.0.0:8080" in r.container()["args"], "metrics served on 8080"
        labels = sm["metadata"]["labels"]
        expect_eq(labels.get("release"), "kube-prometheus-stack", "extra label")
        expect_eq(labels.get("app.kubernetes.io/name"), "image-policy-webhook", "chart label wins")
        bare = render(values("metrics.serviceMonitor.enabled=true", "metrics.serviceMonitor.interval="))
        assert "interval" not in bare.one("ServiceMonitor", MANAGER)["spec"]["endpoints"][0], "empty interval"

    def rules(rendered: Rendered) -> dict[tuple[str, str], dict[str, Any]]:
        rule = rendered.one("PrometheusRule", "image-policy")
        found = {}
        for group in rule["spec"]["groups"]:
            for alert in group["rules"]:
                found[(alert["alert"], alert["labels"]["severity"])] = alert
        return found

    def alerts() -> None:
        rule = r.one("PrometheusRule", "image-policy", ns)
        expect_eq(rule["metadata"]["labels"].get("role"), "alert-rules", "extra label")
        expect_eq(sorted(rules(r)), [("ImagePolicyCertificateExpiresSoon", "critical"),
                                     ("ImagePolicyCertificateExpiresSoon", "warning"),
                                     ("ImagePolicyHighDenialRate", "warning"),
                                     ("ImagePolicyRegistryErrors", "warning"),
                                     ("ImagePolicyRunningWorkloadsRefused", "warning")], "alerts")
        for alert in rules(r).values():
            description = alert["annotations"]["description"]
            assert "{{ $value" in description, f"Prometheus templating lost: {description}"

    def real_names() -> None:
        source = METRICS_RS.read_text()
        literals = set()
        for path in OPERATOR_SRC.rglob("*.rs"):
            literals.update(re.findall(r'"([A-Za-z_]+)"', path.read_text()))
        for alert in rules(r).values():
            expr = alert["expr"]
            for metric in re.findall(r"\bimage_policy_[a-z_]+", expr):
                name = metric.removeprefix("image_policy_")
                base_name = name.removesuffix("_total")
                assert f'"{name}"' in source or (base_name != name and f'"{base_name}"' in source), (
                    f"{metric} is not registered in {METRICS_RS.relative_to(ROOT)}")
            for label, value in re.findall(r'(\w+)[!=]~?"([^"]*)"', expr):
                assert re.search(rf"\b{label}: &'static str", source), f"label {label} not in metrics.rs"
                for one in value.split("|"):
                    assert one in literals, f"{label}={one!r} is no label value in operator/src"

    def thresholds() -> None:
        def bounds(rendered: Rendered) -> tuple[int, int]:
            found = rules(rendered)
            pick = lambda sev: int(re.search(r"< (\d+)", found[("ImagePolicyCertificateExpiresSoon", sev)]["expr"])[1])
            return pick("warning"), pick("critical")

        on = "metrics.prometheusRule.enabled=true"
        expect_eq(bounds(render(values(on))), (45 * 86400, 45 * 86400 // 2), "helm mode, 90 days")
        expect_eq(bounds(r), (180 * 3600, 90 * 3600), "operator mode, renewBefore 360h")
        cm = render(merge(values(file=EVERYTHING), values("certManager.enabled=true")))
        expect_eq(bounds(cm), (120 * 3600, 60 * 3600), "cert-manager, renewBefore 240h")
        compound = render(values(on, "certManager.enabled=true", "certManager.renewBefore=1h30m"))
        expect_eq(bounds(compound), (2700, 1350), "cert-manager, renewBefore 1h30m")
        how = rules(cm)[("ImagePolicyCertificateExpiresSoon", "warning")]["annotations"]["description"]
        assert f"kubectl -n {ns} describe certificate image-policy-webhook-cert" in how, how
        how = rules(render(values(on)))[("ImagePolicyCertificateExpiresSoon", "warning")]["annotations"]
        assert "`helm upgrade`" in how["description"], how

    check("metrics objects and NetworkPolicy: none by default, none with webhook.url", off)
    check("ServiceMonitor: the Service's metrics port (8080), interval, labels", service_monitor)
    check("PrometheusRule: certificate, denial and registry alerts, Prometheus templating kept", alerts)
    check("PrometheusRule: metric names, labels and values exist in operator/src", real_names)
    check("PrometheusRule: certificate thresholds follow each mode's renewal margin", thresholds)


def check_network_policy() -> None:
    ns = "signing-system"
    base = values(file=EVERYTHING)
    r = render(base)

    def ports(rule: dict[str, Any]) -> list[tuple[int, str]]:
        return [(p["port"], p["protocol"]) for p in rule["ports"]]

    def everything() -> None:
        np = r.one("NetworkPolicy", MANAGER, ns)
        deployment = r.one("Deployment", MANAGER)
        expect_eq(np["spec"]["podSelector"], {"matchLabels": deployment["spec"]["selector"]["matchLabels"]},
                  "podSelector")
        expect_eq(np["spec"]["policyTypes"], ["Ingress"], "policyTypes: egress unrestricted")
        assert "egress" not in np["spec"], np["spec"]
        webhook, metrics = np["spec"]["ingress"]
        container_ports = {p["name"]: p["containerPort"] for p in r.container()["ports"]}
        expect_eq(ports(webhook), [(container_ports["webhook"], "TCP")], "webhook port")
        expect_eq(webhook["from"], [{"ipBlock": {"cidr": "10.0.0.0/24"}}, {"ipBlock": {"cidr": "fd00::/64"}},
                                    {"namespaceSelector": base["networkPolicy"]["webhook"]["namespaceSelector"]}],
                  "webhook sources")
        expect_eq(ports(metrics), [(container_ports["metrics"], "TCP")], "metrics port")
        expect_eq(metrics["from"], [{"namespaceSelector": base["networkPolicy"]["metrics"]["namespaceSelector"]}],
                  "metrics sources")

    def defaults() -> None:
        np = render(values("networkPolicy.enabled=true")).one("NetworkPolicy", MANAGER, "image-policy-system")
        expect_eq(np["spec"]["ingress"], [{"ports": [{"port": 8443, "protocol": "TCP"}]}],
                  "the webhook port from anywhere, the metrics port from no Pod")

    check("NetworkPolicy: ingress to 8443 from ipBlocks and namespaces, 8080 from monitoring; no egress rule",
          everything)
    check("NetworkPolicy with defaults: 8443 open to any source (the API server), 8080 closed to Pods",
          defaults)


def check_refusals() -> None:
    cases = [
        ("replicas: \"three\"", values("replicas=three"), "at '/replicas': got string, want integer"),
        ("allowUnmatchedImages: \"yes\"", values("allowUnmatchedImages=yes"),
         "at '/allowUnmatchedImages': got string, want boolean"),
        ("unknown top-level key", values("replica=3"), "additional properties 'replica' not allowed"),
        ("unknown nested key", values("webhook.timeout=5"), "additional properties 'timeout' not allowed"),
        ("customCas entry not PEM", {"customCas": ["not a certificate"]}, "at '/customCas/0'"),
        ("timeoutSeconds above 30", values("webhook.timeoutSeconds=31"), "at '/webhook/timeoutSeconds'"),
        ("webhook.url with http://", values("webhook.url=http://127.0.0.1:9443/x"), "at '/webhook/url'"),
        ("maxConnections: 0", values("maxConnections=0"), "at '/maxConnections'"),
        ("events.enabled: \"yes\"", values("events.enabled=yes"),
         "at '/events/enabled': got string, want boolean"),
        ("pinDigests typo", values("pinDigests=templates"),
         "at '/pinDigests': value must be one of 'pods', 'workloads', 'off'"),
        ("certificates.mode typo", values("certificates.mode=operater"),
         "at '/certificates/mode': value must be one of 'helm', 'operator'"),
        ("an operator validity in days", values("certificates.operator.validity=365d"),
         "at '/certificates/operator/validity'"),
        ("webhook.url with certManager", values(f"webhook.url={DEV_URL}", "certManager.enabled=true"),
         "webhook.url and certManager.enabled exclude each other"),
        ("quota too small for replicas", values("replicas=5", "quota.podNumber=5"),
         "quota.podNumber (5) must be at least replicas + 1 (6)"),
        ("an ipBlock that is no CIDR", values("networkPolicy.webhook.ipBlocks={10.0.0.1}"),
         "at '/networkPolicy/webhook/ipBlocks/0'"),
        ("a namespaceSelector with a typo", values("networkPolicy.metrics.namespaceSelector.matchLabel.a=b"),
         "additional properties 'matchLabel' not allowed"),
        ("networkPolicy.egress (not a value)", values("networkPolicy.egress=true"),
         "additional properties 'egress' not allowed"),
        ("serviceMonitor.enabled: \"yes\"", values("metrics.serviceMonitor.enabled=yes"),
         "at '/metrics/serviceMonitor/enabled': got string, want boolean"),
        ("a scrape interval without unit", values("metrics.serviceMonitor.interval=30"),
         "at '/metrics/serviceMonitor/interval'"),
        ("topologySpreadConstraints not a list", values("topologySpreadConstraints=zone"),
         "at '/topologySpreadConstraints': got string, want array"),
        ("validity not above renewal", values("certificates.helm.validityDays=30",
                                              "certificates.helm.renewBeforeDays=30"),
         "certificates.helm.validityDays (30) must be greater than"),
    ]
    for label, vals, message in cases:

        def body(vals: dict[str, Any] = vals, message: str = message) -> None:
            error = install_error(vals)
            assert message in error, f"message {message!r} not in {error!r}"

        check(f"install refuses {label}", body)



def check_kube_versions() -> None:
    """Excluded namespaces by what cannot be spoofed, matchConditions on request.namespace and
    the protected label, in both webhooks, on the release the end-to-end suite runs on; older
    releases refused by the chart's kubeVersion, as `helm install` refuses them."""
    extra = values("webhook.excludedNamespaces={cert-manager}")
    expected = "!has(request.namespace) || !(request.namespace in ['kube-system', 'image-policy-system', 'cert-manager'])"

    def current() -> None:
        r = render(extra)
        hooks = [hook for kind in ("ValidatingWebhookConfiguration", "MutatingWebhookConfiguration")
                 for config in r.all(kind) for hook in config["webhooks"]]
        expect_eq(len(hooks), 2, "webhooks")
        for hook in hooks:
            expect_eq(hook.get("matchConditions"),
                      [{"name": "not-an-excluded-namespace", "expression": expected}], "matchConditions")
            expect_eq(hook["namespaceSelector"]["matchExpressions"],
                      [{"key": "kubernetes.io/metadata.name", "operator": "NotIn",
                        "values": ["kube-system", "image-policy-system", "cert-manager"]}], "namespaceSelector")
        dry_run_install(extra)

    def older(version: str | None) -> None:
        try:
            dry_run_install({}, kube_version=version)
        except helm.HelmError as error:
            message = str(error)
            assert "chart requires kubeVersion: >=1.37.0-0 which is incompatible with Kubernetes" in message, message
        else:
            raise AssertionError(f"installed on Kubernetes {version}")

    def removed_value() -> None:
        # The acknowledgement that Kubernetes before 1.21 needed is gone with those versions.
        error = install_error(values("webhook.acceptSpoofableNamespaceSelector=true"))
        assert "acceptSpoofableNamespaceSelector" in error, error

    check(f"Kubernetes {KUBE_VERSION}: matchConditions and the protected label, both webhooks", current)
    for version in ("v1.36.3", "v1.20.2"):
        check(f"Kubernetes {version}: refused by kubeVersion", lambda v=version: older(v))
    # helm template and client dry runs without --kube-version assume the SDK's own default
    # (1.36 for helm-python-sdk's Helm): they need --kube-version for this chart.
    check("no --kube-version, the SDK's default (older): refused by kubeVersion", lambda: older(None))
    check("webhook.acceptSpoofableNamespaceSelector is no value any more", removed_value)


def main() -> int:
    check_lint()
    check_kube_versions()
    check_defaults()
    check_everything()
    check_pinning()
    check_namespace_modes()
    check_spreading()
    check_metrics_objects()
    check_network_policy()
    check_refusals()
    started = os.environ.get("CHART_TEST_STARTED_NS")
    elapsed = (time.time_ns() - int(started)) / 1e9 if started else time.process_time()
    print(f"took {elapsed:.1f}s")
    print(f"{RESULTS['passed']} passed, {RESULTS['failed']} failed")
    return 1 if RESULTS["failed"] else 0


if __name__ == "__main__":
    sys.exit(main())
