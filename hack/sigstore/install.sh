#!/usr/bin/env bash
# hack/sigstore/install.sh (`make sigstore`) - the real Sigstore producers and servers the
# registry and e2e tests run, built from the Go modules pinned by hack/sigstore/go.mod, go.sum:
#
#   cosign          github.com/sigstore/cosign/v3/cmd/cosign
#   rekor-server    github.com/sigstore/rekor-tiles/v2/cmd/rekor-server/posix (Rekor v2 on
#                   Tessera's POSIX storage; the cloud drivers are other mains, not linked)
#   timestamp-server ./cmd/timestamp-server: the timestamp authority of
#                   github.com/sigstore/timestamp-authority/v2 behind a main of ours that
#                   listens on loopback only (see its comment for why)
#   olareg          github.com/olareg/olareg/cmd/olareg (an OCI registry with the OCI 1.1
#                   referrers API, artifactType filtering and OCI-Filters-Applied)
#
# Usage:
#   hack/sigstore/install.sh           build what is missing or stale; a second run does nothing
#   hack/sigstore/install.sh bin NAME  print the path of NAME's binary (building it if needed)
#
# Each binary lives in $(go_tool_dir NAME VERSION) (hack/go/env.sh), outside the checkout, with
# the hash of go.sum it was built from beside it: a change of pins rebuilds, nothing else does.
# Everything missing is built by one `go build` (the packages share most of their graph), with
# -ldflags '-s -w' (no symbol tables: smaller, faster to link).
set -euo pipefail

here="$(cd "$(dirname "$0")" && pwd)"
# shellcheck source=../go/env.sh
source "$here/../go/env.sh"

# name  module  package  (the binary is named NAME whatever its package directory is called)
TOOLS=(
  "cosign github.com/sigstore/cosign/v3 github.com/sigstore/cosign/v3/cmd/cosign"
  "rekor-server github.com/sigstore/rekor-tiles/v2 github.com/sigstore/rekor-tiles/v2/cmd/rekor-server/posix"
  "timestamp-server github.com/sigstore/timestamp-authority/v2 ./cmd/timestamp-server"
  "olareg github.com/olareg/olareg github.com/olareg/olareg/cmd/olareg"
)

log() { echo "[sigstore] $*" >&2; }

# The version go.mod pins for a module (its require line; no go command needed).
version_of() {
  local v
  v="$(awk -v m="$1" '$1 == m { print $2; exit } $1 == "require" && $2 == m { print $3; exit }' "$here/go.mod")"
  [[ -n "$v" ]] || { log "ERROR: $1 is not in hack/sigstore/go.mod"; exit 1; }
  echo "$v"
}

sum_hash() { sha256sum "$here/go.sum" | cut -c1-64; }

# NAME -> "dir module package"; nothing (and status 1) for a name that is not a tool.
lookup() {
  local entry name module package version
  for entry in "${TOOLS[@]}"; do
    read -r name module package <<<"$entry"
    if [[ "$name" == "$1" ]]; then
      version="$(version_of "$module")"
      echo "$(go_tool_dir "$name" "$version") $module $package"
      return 0
    fi
  done
  return 1
}

is_current() { # DIR NAME
  [[ -x "$1/$2" ]] && [[ "$(cat "$1/.go.sum.sha256" 2>/dev/null)" == "$(sum_hash)" ]]
}

install() {
  local entry name module package dir version missing=() packages=()
  for entry in "${TOOLS[@]}"; do
    read -r name module package <<<"$entry"
    version="$(version_of "$module")"
    dir="$(go_tool_dir "$name" "$version")"
    is_current "$dir" "$name" && continue
    missing+=("$name")
    packages+=("$package")
  done
  ((${#missing[@]})) || return 0

  command -v go >/dev/null || { log "ERROR: go is missing (this project's machines come with Go 1.26)"; exit 1; }
  local start
  staging="$(mktemp -d "${IMAGE_POLICY_CACHE}/sigstore-build.XXXXXX")"
  trap 'rm -rf "${staging:-}"' EXIT
  log "building ${missing[*]} (go build, pinned by hack/sigstore/go.sum)"
  start=$SECONDS
  (cd "$here" && go build -ldflags '-s -w' -o "$staging/" "${packages[@]}")
  log "built ${missing[*]} in $((SECONDS - start)) s"
  local hash i
  hash="$(sum_hash)"
  for i in "${!missing[@]}"; do
    name="${missing[$i]}"
    read -r dir module package <<<"$(lookup "$name")"
    mkdir -p "$dir"
    # go build names a binary after its package directory (rekor's is "posix").
    mv -f "$staging/$(basename "$package")" "$dir/$name"
    echo "$hash" >"$dir/.go.sum.sha256"
    log "$name $(version_of "$module") -> $dir/$name"
  done
}

case "${1:-}" in
  "") mkdir -p "$IMAGE_POLICY_CACHE"; install ;;
  bin)
    [[ -n "${2:-}" ]] || { sed -n '2,21p' "$0"; exit 2; }
    found="$(lookup "$2")" || {
      log "ERROR: no tool named $2 (one of: cosign rekor-server timestamp-server olareg)"
      exit 2
    }
    read -r dir _ _ <<<"$found"
    if ! is_current "$dir" "$2"; then
      mkdir -p "$IMAGE_POLICY_CACHE"
      install
    fi
    echo "$dir/$2"
    ;;
  *) sed -n '2,21p' "$0"; exit 2 ;;
esac
