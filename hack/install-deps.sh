#!/usr/bin/env bash
# Installs what building and testing need on a fresh Debian machine, and nothing when it is
# already there. The Rust toolchain (with rustfmt and clippy) comes with the machine.
set -euo pipefail

need=()
command -v cc >/dev/null || need+=(gcc)
command -v make >/dev/null || need+=(make)
command -v kubectl >/dev/null || need+=(kubectl)
command -v openssl >/dev/null || need+=(openssl)
if ((${#need[@]})); then
  echo "[deps] installing ${need[*]}"
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${need[@]}"
fi
for tool in cargo rustfmt cargo-clippy; do
  command -v "$tool" >/dev/null || { echo "[deps] $tool is missing: install the Rust toolchain (rustup) first" >&2; exit 1; }
done

# The real OCI registry (and htpasswd) that the verifier's tests run against.
"$(dirname "$0")/registry.sh" install
