#!/usr/bin/env bash
# hack/k8s-build.sh - build a real Kubernetes 1.20.2 control plane
# (kube-apiserver, kube-controller-manager, and a matching kubectl) from
# Debian's `kubernetes` source package, offline except for Debian's apt
# archive.
#
# Why this way: the machine can only reach Debian's apt archive (plus PyPI,
# crates.io and npm).  Debian's source package ships the complete upstream
# tree including vendor/, so with Debian's golang-go we can build the real
# binaries without GitHub, dl.k8s.io or the Go module proxy.
#
# Results are cached OUTSIDE the git checkout:
#   ${IMAGE_POLICY_CACHE:-/var/cache/image-policy}/k8s-1.20.2/
#     bin/        kube-apiserver, kube-controller-manager, kubectl
#     src/        the unpacked Debian source (and its _output/, which also
#                 holds the Go build cache - see GOCACHE below)
# A second run only verifies that the cached binaries exist and run.
#
# Environment:
#   IMAGE_POLICY_CACHE   cache root (default /var/cache/image-policy)
#   K8S_BUILD_FORCE=1    rebuild even if the cached binaries are fine
#
# Prints nothing secret; safe to run repeatedly (idempotent).

set -euo pipefail

log() { echo "[k8s-build] $*" >&2; }
die() { log "ERROR: $*"; exit 1; }

K8S_VERSION=1.20.2
CACHE_ROOT="${IMAGE_POLICY_CACHE:-/var/cache/image-policy}"
K8S_DIR="${CACHE_ROOT}/k8s-${K8S_VERSION}"
BIN_DIR="${K8S_DIR}/bin"
SRC_PARENT="${K8S_DIR}/src"
# Binaries we build from the Kubernetes tree (cmd/<name>).
BINARIES=(kube-apiserver kube-controller-manager kubectl)
# Debian packages needed at cluster runtime (also by cluster-up.sh).
RUNTIME_PKGS=(etcd-server openssl ca-certificates)
# Debian packages needed only to fetch and build the source.
# golang-github-modern-go-reflect2-dev: a Go-1.18+-compatible reflect2 (see
# patch_vendor below).
BUILD_PKGS=(dpkg-dev golang-go rsync jq make golang-github-modern-go-reflect2-dev)
# Recipe id, stored next to the binaries: bump it whenever the way we build
# changes, so that binaries cached by an older recipe get rebuilt.
BUILD_RECIPE="k8s-${K8S_VERSION} debian-src go-sys reflect2-1.0.2 v2"
# Our own deb-src entry (only added if no deb-src for kubernetes is known).
DEB_SRC_FILE=/etc/apt/sources.list.d/image-policy-deb-src.sources

[[ $(id -u) -eq 0 ]] || die "must run as root (installs Debian packages)"
mkdir -p "$K8S_DIR"

# ---------------------------------------------------------------------------
# Package helpers
# ---------------------------------------------------------------------------

# Print the packages from "$@" that are not installed.  Uses dpkg-query only,
# so the fast path never touches the network or the apt lock.
missing_pkgs() {
  local p
  for p in "$@"; do
    if [[ "$(dpkg-query -W -f='${Status}' "$p" 2>/dev/null || true)" != "install ok installed" ]]; then
      echo "$p"
    fi
  done
}

APT_UPDATED=0
apt_update_once() {
  if [[ $APT_UPDATED -eq 0 ]]; then
    log "apt-get update"
    apt-get update -qq >&2
    APT_UPDATED=1
  fi
}

ensure_pkgs() {
  local missing
  missing=$(missing_pkgs "$@")
  if [[ -z "$missing" ]]; then
    log "packages already installed: $*"
    return 0
  fi
  # shellcheck disable=SC2086  # word splitting of the package list is intended
  log "installing: $(tr "\n" " " <<<"$missing")"
  apt_update_once
  # etcd-server's postinst would start a system etcd on 2379 on a systemd
  # host; we run our own etcd, so tell invoke-rc.d not to start services
  # during this install when no policy exists yet (a container usually has
  # one already).  The file is removed again right after.
  local policy_created=0
  if [[ ! -e /usr/sbin/policy-rc.d ]]; then
    printf '#!/bin/sh\nexit 101\n' >/usr/sbin/policy-rc.d
    chmod +x /usr/sbin/policy-rc.d
    policy_created=1
  fi
  # shellcheck disable=SC2086
  if ! DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends $missing >"${K8S_DIR}/apt.log" 2>&1; then
    [[ $policy_created -eq 1 ]] && rm -f /usr/sbin/policy-rc.d
    tail -n 20 "${K8S_DIR}/apt.log" >&2
    die "apt-get install failed (log: ${K8S_DIR}/apt.log)"
  fi
  [[ $policy_created -eq 1 ]] && rm -f /usr/sbin/policy-rc.d
  return 0
}

# The binaries are usable when each exists and answers --version.
binaries_ok() {
  local b
  [[ "$(cat "${BIN_DIR}/.recipe" 2>/dev/null || true)" == "$BUILD_RECIPE" ]] || return 1
  for b in "${BINARIES[@]}"; do
    [[ -x "${BIN_DIR}/${b}" ]] || return 1
  done
  "${BIN_DIR}/kube-apiserver" --version >/dev/null 2>&1 || return 1
  "${BIN_DIR}/kube-controller-manager" --version >/dev/null 2>&1 || return 1
  "${BIN_DIR}/kubectl" version --client >/dev/null 2>&1 || return 1
}

print_versions() {
  log "kube-apiserver:          $("${BIN_DIR}/kube-apiserver" --version)"
  log "kube-controller-manager: $("${BIN_DIR}/kube-controller-manager" --version)"
  log "kubectl (cached):        $("${BIN_DIR}/kubectl" version --client --short 2>/dev/null || "${BIN_DIR}/kubectl" version --client)"
  log "etcd:                    $(etcd --version | head -n1)"
}

# ---------------------------------------------------------------------------
# Fast path
# ---------------------------------------------------------------------------
ensure_pkgs "${RUNTIME_PKGS[@]}"

if [[ "${K8S_BUILD_FORCE:-0}" != 1 ]] && binaries_ok; then
  log "cached binaries found in ${BIN_DIR}; skipping build"
  print_versions
  exit 0
fi

# ---------------------------------------------------------------------------
# Slow path: fetch the Debian source package and build
# ---------------------------------------------------------------------------
# Serialise concurrent builds (e.g. two cluster-up.sh started in parallel):
# the second waits here, then finds the first one's binaries.
exec 9>"${K8S_DIR}/.build.lock"
if ! flock -n 9; then
  log "another k8s-build.sh is building; waiting for it"
  flock 9
  if binaries_ok; then
    log "the other build produced the binaries; done"
    print_versions
    exit 0
  fi
fi

START=$(date +%s)
ensure_pkgs "${BUILD_PKGS[@]}"

# Make sure apt knows a `kubernetes` source package.  Debian 12 (bookworm)
# main carries kubernetes 1.20.5+really1.20.2-1.1+deb12u1 (built with Go
# 1.19 by Debian itself); bullseye has 1.20.5+really1.20.2-1.  We add a
# deb-src entry for the running release's suite, with bullseye as fallback.
# First non-security Debian mirror URI from the active (uncommented) apt
# sources, in either deb822 (URIs:) or one-line (deb URI suite ...) format.
find_debian_mirror() {
  {
    sed -nE 's/^URIs:[[:space:]]*//p' /etc/apt/sources.list.d/*.sources 2>/dev/null | tr ' ' '\n'
    sed -nE 's/^deb(-src)?[[:space:]]+(\[[^]]*\][[:space:]]+)?([^[:space:]]+).*/\3/p' \
      /etc/apt/sources.list /etc/apt/sources.list.d/*.list 2>/dev/null
  } | grep -E '^https?://.*/debian/?$' | grep -v -- '-security' | head -n1 || true
}

have_kube_src() { apt-cache showsrc kubernetes 2>/dev/null | grep -q '^Package: kubernetes$'; }

if ! have_kube_src; then
  # Reuse the mirror the machine already uses for binaries (deb.debian.org
  # by default); the suite comes from /etc/os-release.
  # shellcheck source=/dev/null
  . /etc/os-release
  suite="${VERSION_CODENAME:-bookworm}"
  mirror=$(find_debian_mirror)
  mirror="${mirror:-http://deb.debian.org/debian}"
  for try_suite in "$suite" bullseye; do
    log "adding deb-src ${mirror} ${try_suite} main (${DEB_SRC_FILE})"
    cat >"$DEB_SRC_FILE" <<EOF
# Added by image-policy hack/k8s-build.sh: source of Debian's kubernetes
# package, used to build kube-apiserver/kube-controller-manager locally.
Types: deb-src
URIs: ${mirror}
Suites: ${try_suite}
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg
EOF
    log "apt-get update (for deb-src)"
    apt-get update -qq >&2
    if have_kube_src; then break; fi
  done
  if ! have_kube_src; then
    rm -f "$DEB_SRC_FILE"   # do not leave a useless source entry behind
    die "no 'kubernetes' source package found in ${suite} or bullseye deb-src"
  fi
fi

# Pick the newest 1.20.2-based source version apt offers.
SRC_VERSION=$(apt-cache showsrc kubernetes | awk '/^Version:/{print $2}' | grep 'really1\.20\.2\|^1\.20\.2' | sort -V | tail -n1)
[[ -n "$SRC_VERSION" ]] || die "apt has a kubernetes source package, but none based on ${K8S_VERSION}"
log "using Debian source kubernetes=${SRC_VERSION}"

mkdir -p "$SRC_PARENT" "$BIN_DIR"
# Upstream version without the Debian revision, e.g. 1.20.5+really1.20.2
UPSTREAM_VER="${SRC_VERSION%-*}"
SRC_DIR="${SRC_PARENT}/kubernetes-${UPSTREAM_VER}"
if [[ ! -f "${SRC_DIR}/build/root/Makefile" ]]; then
  rm -rf "$SRC_DIR"
  log "apt-get source kubernetes=${SRC_VERSION} (into ${SRC_PARENT})"
  # apt-get source also applies Debian's patches (dpkg-source -x).  The
  # download runs as root on purpose: the cache dir is not writable by the
  # _apt sandbox user (apt would warn and fall back to root anyway).
  (cd "$SRC_PARENT" && apt-get source -qq -o APT::Sandbox::User=root "kubernetes=${SRC_VERSION}" >&2)
  [[ -f "${SRC_DIR}/build/root/Makefile" ]] || die "unpacked source not found at ${SRC_DIR}"
else
  log "source already unpacked at ${SRC_DIR}"
fi

# Go 1.18+ compatibility fix.
# Kubernetes 1.20 vendors github.com/modern-go/reflect2 v1.0.1, which
# links against runtime internals (mapiterinit) whose signature changed in
# Go 1.18.  Built with Debian's Go 1.19, the apiserver then dies with
# "unexpected fault address ... fatal error: fault" inside
# reflect2.UnsafeIterate as soon as it serialises a map via json-iterator
# (e.g. on the first create of a custom resource).  reflect2 v1.0.2 fixes
# this (upstream Kubernetes did the same bump in its Go 1.18 backports), and
# Debian ships exactly that version as golang-github-modern-go-reflect2-dev,
# so we swap the vendored copy for it.  json-iterator v1.1.10 works with
# reflect2 v1.0.2 unchanged.  In GOPATH mode vendor/modules.txt is unused.
patch_vendor() {
  local vend="${SRC_DIR}/vendor/github.com/modern-go/reflect2"
  local deb=/usr/share/gocode/src/github.com/modern-go/reflect2
  local marker="${SRC_DIR}/.image-policy-reflect2-patched"
  [[ -f "$marker" ]] && { log "vendor patch (reflect2 1.0.2) already applied"; return 0; }
  [[ -f "${deb}/go_above_118.go" ]] || die "${deb} does not look like reflect2 >= 1.0.2"
  log "patching vendor/: github.com/modern-go/reflect2 v1.0.1 -> Debian's v1.0.2 (Go 1.18+ fix)"
  rm -f "${vend}"/*.go "${vend}"/*.s
  local f
  for f in "${deb}"/*.go; do
    [[ "$f" == *_test.go ]] || cp "$f" "${vend}/"
  done
  touch "$marker"
}
patch_vendor

# Build environment, mirroring debian/rules of the package:
#  - GOPATH mode: the tree must live at $GOPATH/src/k8s.io/kubernetes; the
#    upstream hack/lib/init.sh itself exports GO111MODULE=off and
#    hack/lib/golang.sh creates its own GOPATH under _output/local/go.  We
#    add the .go symlink too, exactly as debian/rules does.
#  - CGO_ENABLED=0: static binaries, no C toolchain needed.
#  - GOFLAGS='': a user-set GOFLAGS (e.g. -mod=...) breaks GOPATH mode.
#  - GOPROXY=off: guarantee that nothing is fetched from the network.
#  - GOCACHE/HOME in the cache dir: nothing is written into the checkout or
#    $HOME.  (golang.sh overrides GOCACHE to _output/local/go/cache inside
#    the source tree, which is in the cache dir as well.)
#  - The version (v1.20.2, commit faecb196...) is baked into the source
#    tarball's hack/lib/version.sh ("git archive" export), so no .git needed.
mkdir -p "${SRC_DIR}/.go/src/k8s.io" "${K8S_DIR}/home" "${K8S_DIR}/go-cache"
[[ -L "${SRC_DIR}/.go/src/k8s.io/kubernetes" ]] || ln -s ../../.. "${SRC_DIR}/.go/src/k8s.io/kubernetes"

export GOPATH="${SRC_DIR}/.go"
export GO111MODULE=off
export CGO_ENABLED=0
export GOFLAGS=
export GOPROXY=off
export GOSUMDB=off
export GOCACHE="${K8S_DIR}/go-cache"
export HOME="${K8S_DIR}/home"
export PATH="/usr/lib/go/bin:${PATH}"
log "go: $(go version)"

WHAT=""
for b in "${BINARIES[@]}"; do WHAT+="cmd/${b} "; done
WHAT="${WHAT% }"
log "make WHAT=\"${WHAT}\" (takes several minutes on a cold cache; log: ${K8S_DIR}/build.log)"
if ! (cd "$SRC_DIR" && make WHAT="$WHAT") >"${K8S_DIR}/build.log" 2>&1; then
  tail -n 40 "${K8S_DIR}/build.log" >&2
  die "build failed (full log: ${K8S_DIR}/build.log)"
fi

for b in "${BINARIES[@]}"; do
  out="${SRC_DIR}/_output/bin/${b}"
  [[ -x "$out" ]] || die "build did not produce ${out}"
  # install to a temp name then rename, so a half-copied binary never looks valid
  install -m 0755 "$out" "${BIN_DIR}/.${b}.tmp"
  mv -f "${BIN_DIR}/.${b}.tmp" "${BIN_DIR}/${b}"
done

echo "$BUILD_RECIPE" >"${BIN_DIR}/.recipe"
binaries_ok || die "built binaries do not run"
log "build finished in $(( $(date +%s) - START ))s; binaries in ${BIN_DIR}"
print_versions
