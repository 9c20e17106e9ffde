#!/usr/bin/env bash
# The end-to-end suite: a real control plane of its own (separate state dir and ports, so a
# developer's `make up` cluster is left alone), the product's binary, then the e2e crate's
# tests driving kubectl against it. The control plane is torn down however the tests end.
# Arguments name test targets of e2e/tests to run (e.g. `hack/e2e.sh certificates helm`);
# none runs them all.
set -euo pipefail
cd "$(dirname "$0")/.."

export IMAGE_POLICY_STATE="${IMAGE_POLICY_E2E_STATE:-/tmp/image-policy-e2e}"
export IMAGE_POLICY_ETCD_PORT="${IMAGE_POLICY_E2E_ETCD_PORT:-2479}"
export IMAGE_POLICY_ETCD_PEER_PORT="${IMAGE_POLICY_E2E_ETCD_PEER_PORT:-2480}"
export IMAGE_POLICY_APISERVER_PORT="${IMAGE_POLICY_E2E_APISERVER_PORT:-6543}"
export IMAGE_POLICY_KCM_PORT="${IMAGE_POLICY_E2E_KCM_PORT:-10357}"

# The suite signs with the real cosign and runs olareg, Rekor v2 and the timestamp authority:
# built here if missing (CI builds them in a phase of their own before), nothing otherwise.
hack/sigstore/install.sh

# A clean slate: state left by an interrupted run must not decide this one.
hack/cluster-down.sh --purge >/dev/null 2>&1 || true
trap 'hack/cluster-down.sh --purge >/dev/null 2>&1 || true' EXIT

started=$(date +%s)
hack/cluster-up.sh
echo "[e2e] control plane up in $(( $(date +%s) - started ))s"

# KUBECONFIG, the control plane's own kubectl first on PATH (the tests run `kubectl`), and the
# cluster CA (which signs the webhook's serving certificate in the tests).
# shellcheck disable=SC1091
source "${IMAGE_POLICY_STATE}/env"
# The release on both sides, in the log: client and server.
kubectl version
cargo build --locked -p image-policy
export IMAGE_POLICY_BIN="${CARGO_TARGET_DIR:-${PWD}/target}/debug/image-policy"
targets=(--tests)
if [ "$#" -gt 0 ]; then
  targets=()
  for t in "$@"; do targets+=(--test "$t"); done
fi
cargo test --locked -p image-policy-e2e "${targets[@]}" -- --test-threads=1
