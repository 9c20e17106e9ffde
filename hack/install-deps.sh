#!/usr/bin/env bash
# Installs what building and testing need on a fresh Debian machine, and nothing when it is
# already there. The Rust toolchain (with rustfmt and clippy) comes with the machine.
set -euo pipefail

need=()
command -v cc >/dev/null || need+=(gcc)
command -v make >/dev/null || need+=(make)
command -v openssl >/dev/null || need+=(openssl)
command -v python3 >/dev/null || need+=(python3)
# The e2e suite's air-gapped operator: its only ports are forwarded over Unix sockets.
command -v socat >/dev/null || need+=(socat)
command -v unshare >/dev/null || need+=(util-linux)
# The e2e suite posts reviews straight to the webhook while the API server is stopped.
command -v curl >/dev/null || need+=(curl)
if ((${#need[@]})); then
  echo "[deps] installing ${need[*]}"
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${need[@]}"
fi
# No kubectl or etcd from Debian: the ones the tests and `make up` use are of the control
# plane's own release, built from Go modules by hack/k8s-build.sh (cluster-up.sh runs it).
command -v go >/dev/null || { echo "[deps] go is missing: this project's machines come with Go 1.26" >&2; exit 1; }
for tool in cargo rustfmt cargo-clippy; do
  command -v "$tool" >/dev/null || { echo "[deps] $tool is missing: install the Rust toolchain (rustup) first" >&2; exit 1; }
done

# The real OCI registry (and htpasswd) that the verifier's tests run against.
"$(dirname "$0")/registry.sh" install

# Sigstore's JavaScript producers (pinned: hack/sigstore-js/package-lock.json), which the
# bundle tests verify against.
"$(dirname "$0")/sigstore-js/install.sh"
# The real cosign, Rekor v2, timestamp authority and referrers registry (Go modules pinned by
# hack/sigstore/go.sum) are built by `make sigstore` (hack/sigstore/install.sh), a phase of its
# own in CI so that their build time shows; `make up`, hack/e2e.sh and the tests build them
# when missing.
