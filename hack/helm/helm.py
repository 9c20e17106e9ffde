#!/usr/bin/env python3
"""A small `helm` for this repository, on PyPI's helm-python-sdk (Helm v4's Go SDK through
its C ABI): no helm binary is needed. Run it with the venv's python
(hack/helm/test-chart.sh creates it under ${IMAGE_POLICY_CACHE:-/var/cache/image-policy}).

  helm.py lint CHART [-f VALUES]... [--set K=V]... [--kube-version V]
  helm.py render CHART [-f VALUES]... [--set K=V]... [-n NS] [--release NAME] [--kube-version V]
  helm.py install RELEASE CHART -n NS --kubeconfig FILE [-f VALUES]... [--set K=V]... [--create-namespace] [--wait] [--timeout S]
  helm.py upgrade RELEASE CHART -n NS --kubeconfig FILE [-f VALUES]... [--set K=V]... [--wait] [--timeout S]
  helm.py uninstall RELEASE -n NS --kubeconfig FILE [--wait] [--timeout S]

As with helm, `upgrade` given no values at all reuses the previous release's values; pass
--reset-values to go back to the chart's defaults, or --reuse-values to build on the old ones.

Values compose as with helm: the -f files in order, then the --set expressions in order.
`render` prints the manifests as one YAML stream in a stable order (template path), and
validates the values against values.schema.json first, as `helm install` does; `lint` prints
its findings and fails on errors. `--kube-version` is the Kubernetes version the templates see
as .Capabilities.KubeVersion (as with `helm template --kube-version`); without it, the SDK's
default. Errors go to stderr with exit status 1.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

import helm_python as helm

SEVERITY = {0: "UNKNOWN", 1: "INFO", 2: "WARNING", 3: "ERROR"}


def merge(base: dict[str, Any], override: dict[str, Any]) -> dict[str, Any]:
    """Deep-merge override into base, as Helm coalesces -f files and --set expressions."""
    for key, value in override.items():
        if isinstance(value, dict) and isinstance(base.get(key), dict):
            merge(base[key], value)
        else:
            base[key] = value
    return base


def user_values(args: argparse.Namespace) -> dict[str, Any]:
    values: dict[str, Any] = {}
    for path in args.values or []:
        merge(values, helm.values_from_yaml(Path(path).read_text()) or {})
    for expression in args.set or []:
        merge(values, helm.parse_set_string(expression))
    return values


def render_stream(manifests: dict[str, str]) -> str:
    """One YAML stream; each document headed by `# Source:` like `helm template`."""
    documents = []
    for path in sorted(manifests):
        body = manifests[path].strip()
        if not body or path.endswith("NOTES.txt"):
            continue
        documents.append(f"---\n# Source: {path}\n{body}\n")
    return "".join(documents)


def render_chart(
    chart: helm.Chart,
    values: dict[str, Any],
    name: str,
    namespace: str,
    kube_version: str | None = None,
) -> dict[str, str]:
    """The templates rendered offline, as for an install; `kube_version` is what they see as
    .Capabilities.KubeVersion. helm-python-sdk's Chart.render takes no kube version, but the
    native call it makes does (the `kube_version` render option of its C ABI)."""
    if kube_version is None:
        return chart.render(values, name=name, namespace=namespace, is_install=True)
    from helm_python import _native

    options = {"name": name, "namespace": namespace, "is_install": True, "kube_version": kube_version}
    rendered = _native.call_string("helm_render", chart._raw(), json.dumps(values), json.dumps(options))
    return json.loads(rendered)


def cmd_lint(args: argparse.Namespace) -> int:
    report = helm.lint(
        args.chart,
        user_values(args),
        strict=args.strict,
        namespace=args.namespace,
        kube_version=args.kube_version,
    )
    for message in report.get("messages") or []:
        severity = SEVERITY.get(message.get("severity"), "?")
        print(f"[{severity}] {message.get('path')}: {message.get('error')}")
    errors = report.get("errors") or []
    for error in errors:
        print(f"[ERROR] {error}", file=sys.stderr)
    failed = errors or any(m.get("severity") == 3 for m in report.get("messages") or [])
    linted = report.get("total_charts_linted", 0)
    print(f"{linted} chart(s) linted, {'failed' if failed else 'no failures'}")
    return 1 if failed or linted == 0 else 0


def cmd_render(args: argparse.Namespace) -> int:
    values = user_values(args)
    with helm.Chart.load(args.chart) as chart:
        chart.validate_schema(values)
        manifests = render_chart(chart, values, args.release, args.namespace, args.kube_version)
    sys.stdout.write(render_stream(manifests))
    return 0


def config(args: argparse.Namespace) -> helm.Config:
    return helm.Config(kubeconfig_path=args.kubeconfig, namespace=args.namespace)


def print_release(release: dict[str, Any]) -> None:
    info = release.get("info") or {}
    status = release.get("status") or info.get("status")
    print(
        f"release {release.get('name')} in {release.get('namespace')}: "
        f"revision {release.get('revision', release.get('version'))}, {status}"
    )


def cmd_install(args: argparse.Namespace) -> int:
    with config(args) as cfg:
        release = cfg.install(
            args.chart,
            args.release,
            user_values(args),
            namespace=args.namespace,
            create_namespace=args.create_namespace,
            timeout=args.timeout,
            wait="watcher" if args.wait else None,
        )
    print_release(release)
    return 0


def cmd_upgrade(args: argparse.Namespace) -> int:
    with config(args) as cfg:
        release = cfg.upgrade(
            args.chart,
            args.release,
            user_values(args),
            namespace=args.namespace,
            timeout=args.timeout,
            wait="watcher" if args.wait else None,
            reset_values=args.reset_values,
            reuse_values=args.reuse_values,
        )
    print_release(release)
    return 0


def cmd_uninstall(args: argparse.Namespace) -> int:
    with config(args) as cfg:
        result = cfg.uninstall(
            args.release,
            timeout=args.timeout,
            wait="watcher" if args.wait else None,
        )
    print(f"release {args.release} uninstalled")
    if result.get("info"):
        print(result["info"])
    return 0


def parser() -> argparse.ArgumentParser:
    top = argparse.ArgumentParser(prog="helm.py", description=__doc__.split("\n\n")[0])
    sub = top.add_subparsers(dest="command", required=True)

    def values_flags(p: argparse.ArgumentParser) -> None:
        p.add_argument("-f", "--values", action="append", metavar="FILE", help="values file")
        p.add_argument("--set", action="append", metavar="K=V", help="a --set expression")

    def cluster_flags(p: argparse.ArgumentParser) -> None:
        p.add_argument("-n", "--namespace", required=True, help="the release's namespace")
        p.add_argument("--kubeconfig", required=True, metavar="FILE")
        p.add_argument("--timeout", type=int, default=120, metavar="SECONDS")
        p.add_argument("--wait", action="store_true", help="wait until the objects are ready")

    p = sub.add_parser("lint", help="lint a chart")
    p.add_argument("--kube-version", metavar="V", help="the Kubernetes version to lint for")
    p.add_argument("chart")
    p.add_argument("-n", "--namespace", default="default")
    p.add_argument("--strict", action="store_true", help="warnings fail too")
    values_flags(p)
    p.set_defaults(run=cmd_lint)

    p = sub.add_parser("render", help="render a chart to YAML on stdout (offline)")
    p.add_argument("--kube-version", metavar="V", help="the Kubernetes version to render for")
    p.add_argument("chart")
    p.add_argument("-n", "--namespace", default="default")
    p.add_argument("--release", default="image-policy", help="release name")
    values_flags(p)
    p.set_defaults(run=cmd_render)

    for name, run in (("install", cmd_install), ("upgrade", cmd_upgrade)):
        p = sub.add_parser(name, help=f"{name} a release")
        p.add_argument("release")
        p.add_argument("chart")
        values_flags(p)
        cluster_flags(p)
        if name == "install":
            p.add_argument("--create-namespace", action="store_true",
                           help="create the release's namespace if it does not exist (labelled name=NS)")
        if name == "upgrade":
            p.add_argument("--reset-values", action="store_true", help="start from the chart's defaults")
            p.add_argument("--reuse-values", action="store_true", help="start from the release's values")
        p.set_defaults(run=run)

    p = sub.add_parser("uninstall", help="uninstall a release")
    p.add_argument("release")
    cluster_flags(p)
    p.set_defaults(run=cmd_uninstall)
    return top


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    try:
        return int(args.run(args))
    except helm.HelmError as error:
        print(f"helm.py {args.command}: {type(error).__name__}: {error}", file=sys.stderr)
        return 1
    except OSError as error:
        print(f"helm.py {args.command}: {error}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
