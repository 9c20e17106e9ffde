#!/usr/bin/env bash
# `make up`: a local control plane with the ClusterImagePolicy API installed, for trying the
# product by hand. Prints what to export and commands to try.
set -euo pipefail
cd "$(dirname "$0")/.."

hack/install-deps.sh
hack/cluster-up.sh
state="${IMAGE_POLICY_STATE:-/tmp/image-policy-cluster}"
export KUBECONFIG="${state}/kubeconfig"

cargo build --locked -p image-policy
bin="${CARGO_TARGET_DIR:-${PWD}/target}/debug/image-policy"
"${bin}" crd | kubectl apply -f -
kubectl wait --for=condition=Established --timeout=60s crd/clusterimagepolicies.signing.apps.tanzu.vmware.com

cat <<MSG

The control plane is up with the ClusterImagePolicy API installed.

  export KUBECONFIG=${KUBECONFIG}

Try:
  kubectl apply -f operator/tests/data/policies/seed-quickstart.yaml
  kubectl get clusterimagepolicies
  ${bin} match --policy operator/tests/data/policies/seed-quickstart.yaml gcr.io/projectsigstore/cosign:v1.2.1 busybox

Stop it with: make down
MSG
