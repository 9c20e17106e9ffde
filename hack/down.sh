#!/usr/bin/env bash
# `make down`: stops what `make up` started (the demo, with its registry and operator, then
# the control plane).
set -euo pipefail
cd "$(dirname "$0")/.."
demo="${IMAGE_POLICY_DEMO_DIR:-/tmp/image-policy-demo}"
if [[ -f "${demo}/demo.pid" ]]; then
  kill "$(cat "${demo}/demo.pid")" 2>/dev/null || true
  rm -f "${demo}/demo.pid" "${demo}/ready"
fi
hack/cluster-down.sh "$@"
