#!/usr/bin/env bash
# The Helm chart's tests, with real Helm: PyPI's helm-python-sdk (Helm v4's Go SDK, no helm
# binary) in a venv kept outside the checkout, created on first use. Lints the chart and
# renders it through hack/helm/helm.py (the CLI that make and the e2e suite use), then
# check_render.py asserts what the renders hold and that bad values are refused at install.
# Prints `N passed, N failed` last; exits non-zero on any failure.
#
# Environment: IMAGE_POLICY_CACHE (default /var/cache/image-policy) holds helm-venv/.
set -euo pipefail
cd "$(dirname "$0")/../.."
# check_render.py prints the time taken, counted from here, before its summary line.
export CHART_TEST_STARTED_NS=$(date +%s%N)

# shellcheck source=hack/helm/venv.sh
export PYTHONDONTWRITEBYTECODE=1  # no __pycache__ in the checkout
source hack/helm/venv.sh
helm_venv

chart=charts/image-policy-webhook
everything=hack/helm/values-everything.yaml
out=$(mktemp -d)
trap 'rm -rf "$out"' EXIT

"$HELM_PY" hack/helm/helm.py lint "$chart"
"$HELM_PY" hack/helm/helm.py lint "$chart" -f "$everything"
"$HELM_PY" hack/helm/helm.py render "$chart" >"$out/default.yaml"
# As `helm install -n image-policy-system --create-namespace` renders it: no Namespace object.
"$HELM_PY" hack/helm/helm.py render "$chart" -n image-policy-system >"$out/own-namespace.yaml"
"$HELM_PY" hack/helm/helm.py render "$chart" -f "$everything" >"$out/everything.yaml"
"$HELM_PY" hack/helm/helm.py render "$chart" -f "$everything" --set certManager.enabled=true >"$out/cert-manager.yaml"
"$HELM_PY" hack/helm/helm.py render "$chart" -f "$everything" \
  --set webhook.url=https://127.0.0.1:9443/signing-policy-check --set certificates.mode=helm >"$out/url.yaml"
"$HELM_PY" hack/helm/helm.py render "$chart" -f "$everything" \
  --set webhook.url=https://127.0.0.1:9443/signing-policy-check >"$out/url-operator.yaml"
for f in "$out"/*.yaml; do
  echo "[chart] rendered $(basename "$f" .yaml): $(grep -c '^kind:' "$f") objects"
done

PYTHONDONTWRITEBYTECODE=1 "$HELM_PY" hack/helm/check_render.py
