"""A stand-in for the few reads a server-side `helm install --dry-run` makes, so that
check_render.py can run the chart's `lookup`s (which `helm template` and client-side dry runs
skip) without a cluster: /version, discovery of the kinds the chart renders with its default
values, Namespaces by name, and 404 for anything else. It serves plain HTTP on an ephemeral
port of 127.0.0.1, holds no state but the namespaces it is given, and accepts no writes (a
dry run makes none).
"""

from __future__ import annotations

import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import urlsplit

# (resource, kind, namespaced) by group/version; policy/v1beta1 as on Kubernetes 1.20.
RESOURCES = {
    "v1": [("namespaces", "Namespace", False), ("secrets", "Secret", True),
           ("serviceaccounts", "ServiceAccount", True), ("services", "Service", True),
           ("configmaps", "ConfigMap", True), ("resourcequotas", "ResourceQuota", True)],
    "apps/v1": [("deployments", "Deployment", True)],
    "rbac.authorization.k8s.io/v1": [("clusterroles", "ClusterRole", False),
                                     ("clusterrolebindings", "ClusterRoleBinding", False),
                                     ("roles", "Role", True), ("rolebindings", "RoleBinding", True)],
    "admissionregistration.k8s.io/v1": [
        ("validatingwebhookconfigurations", "ValidatingWebhookConfiguration", False),
        ("mutatingwebhookconfigurations", "MutatingWebhookConfiguration", False)],
    "policy/v1beta1": [("poddisruptionbudgets", "PodDisruptionBudget", True)],
}
NOT_FOUND = {"kind": "Status", "apiVersion": "v1", "status": "Failure", "reason": "NotFound",
             "code": 404, "message": "not found"}


class StubApiServer:
    """Answers as an API server of `version` whose namespaces are `namespaces` (name to labels);
    kube-system is always there. A context manager: serving from enter to exit."""

    def __init__(self, version: str, namespaces: dict[str, dict[str, str]]) -> None:
        self.version = version
        self.namespaces = {"kube-system": {}, **namespaces}
        self.server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())

    def __enter__(self) -> StubApiServer:
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        return self

    def __exit__(self, *_: object) -> None:
        self.server.shutdown()
        self.server.server_close()

    def kubeconfig(self) -> str:
        port = self.server.server_address[1]
        return (
            "apiVersion: v1\nkind: Config\ncurrent-context: stub\n"
            f"clusters: [{{name: stub, cluster: {{server: 'http://127.0.0.1:{port}'}}}}]\n"
            "users: [{name: stub, user: {token: stub}}]\n"
            "contexts: [{name: stub, context: {cluster: stub, user: stub}}]\n"
        )

    def answer(self, path: str) -> tuple[int, dict[str, Any]]:
        major, minor = self.version.lstrip("v").split(".")[:2]
        if path == "/version":
            return 200, {"major": major, "minor": minor, "gitVersion": self.version}
        if path == "/api":
            return 200, {"kind": "APIVersions", "versions": ["v1"], "serverAddressByClientCIDRs": []}
        if path == "/apis":
            groups = []
            for gv in RESOURCES:
                if "/" in gv:
                    group, version = gv.split("/")
                    entry = {"groupVersion": gv, "version": version}
                    groups.append({"name": group, "versions": [entry], "preferredVersion": entry})
            return 200, {"kind": "APIGroupList", "apiVersion": "v1", "groups": groups}
        gv = path.removeprefix("/api/").removeprefix("/apis/")
        if gv in RESOURCES:
            resources = [{"name": name, "singularName": "", "namespaced": namespaced, "kind": kind,
                          "verbs": ["get", "list", "create", "update", "patch", "delete"]}
                         for name, kind, namespaced in RESOURCES[gv]]
            return 200, {"kind": "APIResourceList", "apiVersion": "v1", "groupVersion": gv,
                         "resources": resources}
        name = path.removeprefix("/api/v1/namespaces/")
        if name in self.namespaces:
            return 200, {"apiVersion": "v1", "kind": "Namespace",
                         "metadata": {"name": name, "labels": self.namespaces[name]}}
        return 404, NOT_FOUND

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        stub = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:  # noqa: N802 (http.server's name)
                status, body = stub.answer(urlsplit(self.path).path)
                data = json.dumps(body).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def log_message(self, *_: object) -> None:
                pass

        return Handler
