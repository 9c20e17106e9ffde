#!/usr/bin/env bash
# `make up`: a local control plane with the operator admitting for real, ready for kubectl:
# the ClusterImagePolicy API, a TLS registry on 127.0.0.1 with a signed, an other-key and an
# unsigned demo image (signed by the real cosign), `image-policy run` registered as the validating webhook by URL under the
# seed's name, and a policy to apply. Prints what to export and the seed's three checks.
set -euo pipefail
cd "$(dirname "$0")/.."

hack/install-deps.sh
# The demo's images are signed by the real cosign (built from Go modules; nothing the second
# time).
hack/sigstore/install.sh
hack/cluster-up.sh
state="${IMAGE_POLICY_STATE:-/tmp/image-policy-cluster}"
# KUBECONFIG, and PATH with the control plane's own kubectl first.
# shellcheck disable=SC1091
source "${state}/env"
release=$(kube-apiserver --version)   # "Kubernetes v1.37.2"

cargo build --locked -p image-policy -p image-policy-e2e --bins
target="${CARGO_TARGET_DIR:-${PWD}/target}/debug"
export IMAGE_POLICY_BIN="${target}/image-policy"
export IMAGE_POLICY_DEMO_DIR="${IMAGE_POLICY_DEMO_DIR:-/tmp/image-policy-demo}"
mkdir -p "${IMAGE_POLICY_DEMO_DIR}"

# One demo at a time: a previous one is stopped first.
if [[ -f "${IMAGE_POLICY_DEMO_DIR}/demo.pid" ]]; then
  kill "$(cat "${IMAGE_POLICY_DEMO_DIR}/demo.pid")" 2>/dev/null || true
  sleep 1
fi
rm -f "${IMAGE_POLICY_DEMO_DIR}/ready"
nohup "${target}/image-policy-demo" >"${IMAGE_POLICY_DEMO_DIR}/demo.log" 2>&1 &
echo $! >"${IMAGE_POLICY_DEMO_DIR}/demo.pid"
for _ in $(seq 1 120); do
  [[ -f "${IMAGE_POLICY_DEMO_DIR}/ready" ]] && break
  if ! kill -0 "$(cat "${IMAGE_POLICY_DEMO_DIR}/demo.pid")" 2>/dev/null; then
    echo "[up] the demo stopped; its log:" >&2
    tail -40 "${IMAGE_POLICY_DEMO_DIR}/demo.log" >&2
    exit 1
  fi
  sleep 0.5
done
[[ -f "${IMAGE_POLICY_DEMO_DIR}/ready" ]] || { echo "[up] the demo did not get ready" >&2; exit 1; }

cat <<MSG

image-policy is up: a ${release} control plane on 127.0.0.1, a registry with demo images,
and the operator as its validating webhook (log: ${IMAGE_POLICY_DEMO_DIR}/operator-image-policy-local.log).
Export these, so that kubectl is that release's and talks to it:

  export KUBECONFIG=${KUBECONFIG}
  export PATH=${IMAGE_POLICY_K8S_BIN}:\$PATH

Apply the policy, then try the original documentation's three checks:
$(sed 's/^/  /' "${IMAGE_POLICY_DEMO_DIR}/ready")

  kubectl get clusterimagepolicies

Stop everything with: make down
MSG
