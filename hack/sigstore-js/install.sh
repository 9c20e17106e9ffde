#!/usr/bin/env bash
# Installs the pinned Sigstore producers of package-lock.json into hack/sigstore-js/node_modules
# (npm ci), once: a second run with the same lock does nothing. Needs Node 20 and npm, which the
# machine has; the packages come from the npm registry.
set -euo pipefail
cd "$(dirname "$0")"
command -v node >/dev/null || { echo "[sigstore-js] node is missing: install Node.js 20" >&2; exit 1; }
stamp=node_modules/.image-policy-lock
if [[ -f "$stamp" ]] && cmp -s package-lock.json "$stamp"; then
  exit 0
fi
echo "[sigstore-js] npm ci (@sigstore/sign, @sigstore/oci, @sigstore/mock, pinned)" >&2
npm ci --no-audit --no-fund --engine-strict --loglevel=error >&2
cp package-lock.json "$stamp"
