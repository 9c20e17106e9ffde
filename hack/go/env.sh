#!/usr/bin/env bash
# hack/go/env.sh - the one Go environment of every tool this project builds from Go modules
# (the control plane, etcd, cosign, the registries, Rekor v2, the timestamp authority).
# Source it: `source hack/go/env.sh`.
#
# - The module cache and the build cache live outside the checkout, under the project's cache
#   root, so a second build is a cache hit and the checkout never holds Go source.
# - GOTOOLCHAIN=local: the machine's own Go builds everything. A module that asked for a newer
#   toolchain fails to build instead of downloading one silently.
# - GOFLAGS=-mod=readonly: go.mod and go.sum are the pins; a build never rewrites them.
# - go_tool_dir NAME VERSION: where the binaries of one tool at one version are kept.

IMAGE_POLICY_CACHE="${IMAGE_POLICY_CACHE:-/var/cache/image-policy}"
export IMAGE_POLICY_CACHE
export GOMODCACHE="${IMAGE_POLICY_CACHE}/go/mod"
export GOCACHE="${IMAGE_POLICY_CACHE}/go/build"
export GOTOOLCHAIN=local
export GOFLAGS="-mod=readonly -trimpath"
export CGO_ENABLED="${CGO_ENABLED:-0}"

go_tool_dir() {
  echo "${IMAGE_POLICY_CACHE}/$1-$2/bin"
}

command -v go >/dev/null || {
  echo "[go] the go command is missing: this project's machines come with Go 1.26" >&2
  return 1 2>/dev/null || exit 1
}
