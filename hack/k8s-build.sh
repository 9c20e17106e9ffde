#!/usr/bin/env bash
# hack/k8s-build.sh - the control plane the e2e suite and `make up` run on: the real
# kube-apiserver, kube-controller-manager and kubectl of one Kubernetes release, and the etcd
# that release is tested with, built from Go modules (hack/k8s/go.mod, pinned by its go.sum).
#
# The release is the one hack/k8s/go.mod requires; the binaries are kept outside the checkout,
# keyed by it, in $(go_tool_dir k8s VERSION) (hack/go/env.sh), next to a stamp of what built
# them (go.mod, go.sum, flags). A second run checks that they exist and answer --version, and
# builds nothing. The bin directory is printed on stdout (the last line); the rest goes to
# stderr.
#
# Environment:
#   IMAGE_POLICY_CACHE   cache root (default /var/cache/image-policy; hack/go/env.sh)
#   K8S_BUILD_FORCE=1    rebuild even if the binaries are there

set -euo pipefail

log() { echo "[k8s-build] $*" >&2; }
die() { log "ERROR: $*"; exit 1; }

HACK_DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
MODULE_DIR="${HACK_DIR}/k8s"
# shellcheck source=go/env.sh
source "${HACK_DIR}/go/env.sh"

# One home for the versions: the module's own requirements.
required() { awk -v m="$1" '$1 == m { print $2 }' "${MODULE_DIR}/go.mod"; }
K8S_TAG=$(required k8s.io/kubernetes)      # v1.37.2
ETCD_TAG=$(required go.etcd.io/etcd/server/v3)
[[ -n "$K8S_TAG" && -n "$ETCD_TAG" ]] || die "hack/k8s/go.mod names no k8s.io/kubernetes or etcd"
K8S_VERSION=${K8S_TAG#v}
BIN_DIR=$(go_tool_dir k8s "$K8S_VERSION")
BINARIES=(kube-apiserver kube-controller-manager kubectl etcd)

# What Kubernetes' own build passes (hack/lib/golang.sh and hack/lib/version.sh of the
# release): the tags of a release build, and the version stamped where `--version` and
# `kubectl version` read it. buildDate is the tag's time on the module proxy, so that two builds
# of the same release are the same bytes.
TAGS=selinux,notest,grpcnotrace
release_time() {
  local info="${GOMODCACHE}/cache/download/k8s.io/kubernetes/@v/${K8S_TAG}.info"
  sed -nE 's/.*"Time":"([^"]+)".*/\1/p' "$info" 2>/dev/null | sed -E 's/\.[0-9]+Z$/Z/'
}
ldflags() {
  local minor=${K8S_VERSION#*.}
  minor=${minor%%.*}
  local flags="-s -w" pkg key val
  for pkg in k8s.io/component-base/version k8s.io/client-go/pkg/version; do
    for key in gitVersion gitMajor gitMinor gitTreeState buildDate; do
      case "$key" in
        gitVersion) val=$K8S_TAG ;;
        gitMajor) val=${K8S_VERSION%%.*} ;;
        gitMinor) val=$minor ;;
        gitTreeState) val=clean ;;
        buildDate) val=$(release_time) ;;
      esac
      flags+=" -X ${pkg}.${key}=${val}"
    done
  done
  echo "$flags"
}

# The stamp: what built the binaries. A change of the pins or of the flags rebuilds them.
stamp() {
  { cat "${MODULE_DIR}/go.mod" "${MODULE_DIR}/go.sum" "${MODULE_DIR}/etcd/main.go"
    echo "$TAGS"; go version; } | sha256sum | cut -d' ' -f1
}

binaries_ok() {
  local b
  [[ "$(cat "${BIN_DIR}/.stamp" 2>/dev/null || true)" == "$(stamp)" ]] || return 1
  for b in "${BINARIES[@]}"; do [[ -x "${BIN_DIR}/${b}" ]] || return 1; done
  # Each answer read whole (a `| grep -q` would stop reading early, and under pipefail the
  # writer's SIGPIPE would count as a failure).
  [[ "$("${BIN_DIR}/kube-apiserver" --version 2>/dev/null)" == "Kubernetes ${K8S_TAG}" ]] || return 1
  [[ "$("${BIN_DIR}/kube-controller-manager" --version 2>/dev/null)" == "Kubernetes ${K8S_TAG}" ]] || return 1
  [[ "$("${BIN_DIR}/kubectl" version --client 2>/dev/null)" == *"Client Version: ${K8S_TAG}"* ]] || return 1
  [[ "$("${BIN_DIR}/etcd" --version 2>/dev/null)" == *"etcd Version: ${ETCD_TAG#v}"* ]] || return 1
}

print_versions() {
  log "kube-apiserver:          $("${BIN_DIR}/kube-apiserver" --version)"
  log "kube-controller-manager: $("${BIN_DIR}/kube-controller-manager" --version)"
  local kubectl etcd
  kubectl=$("${BIN_DIR}/kubectl" version --client)
  etcd=$("${BIN_DIR}/etcd" --version)
  log "kubectl:                 ${kubectl%%$'\n'*}"
  log "etcd:                    ${etcd%%$'\n'*}"
}

mkdir -p "$BIN_DIR"
if [[ "${K8S_BUILD_FORCE:-0}" != 1 ]] && binaries_ok; then
  log "Kubernetes ${K8S_TAG} and etcd ${ETCD_TAG} already built in ${BIN_DIR}"
  print_versions
  echo "$BIN_DIR"
  exit 0
fi

# Two builds at once (two cluster-up.sh): the second waits, then finds the first one's binaries.
exec 9>"${BIN_DIR}/.build.lock"
if ! flock -n 9; then
  log "another k8s-build.sh is building; waiting for it"
  flock 9
  if binaries_ok; then
    print_versions
    echo "$BIN_DIR"
    exit 0
  fi
fi

cd "$MODULE_DIR"
started=$(date +%s)
PACKAGES=(k8s.io/kubernetes/cmd/kube-apiserver k8s.io/kubernetes/cmd/kube-controller-manager
  k8s.io/kubernetes/cmd/kubectl ./etcd)
# Listing the packages downloads the modules they need (and only those), checked against go.sum.
log "downloading the modules that the four commands need (hack/k8s/go.sum pins them)"
go list -deps -tags "$TAGS" "${PACKAGES[@]}" >/dev/null
log "modules ready in $(($(date +%s) - started))s"

# One `go build` for the four commands, so that the packages they share compile once.
built=$(date +%s)
out=$(mktemp -d "${BIN_DIR}/.build.XXXXXX")
trap 'rm -rf "$out"' EXIT   # a failed build leaves nothing half made
log "go build ${BINARIES[*]} of Kubernetes ${K8S_TAG} and etcd ${ETCD_TAG} (a cold build takes minutes)"
go build -tags "$TAGS" -ldflags "$(ldflags)" -o "${out}/" "${PACKAGES[@]}"
for b in "${BINARIES[@]}"; do
  [[ -x "${out}/${b}" ]] || die "go build made no ${b}"
  mv -f "${out}/${b}" "${BIN_DIR}/${b}"
done
stamp >"${BIN_DIR}/.stamp"
binaries_ok || die "the binaries built in ${BIN_DIR} do not answer --version as ${K8S_TAG}"
log "go build took $(($(date +%s) - built))s; binaries in ${BIN_DIR}"
print_versions
echo "$BIN_DIR"
