#!/usr/bin/env bash
# `make down`: stops what `make up` started (the demo, with its registry and operator, then
# the control plane).
set -euo pipefail
cd "$(dirname "$0")/.."
demo="${IMAGE_POLICY_DEMO_DIR:-/tmp/image-policy-demo}"
if [[ -f "${demo}/demo.pid" ]]; then
  pid=$(cat "${demo}/demo.pid")
  kill "$pid" 2>/dev/null || true
  # The demo unregisters the webhook and stops the operator gracefully (it releases its
  # lease): wait for that while the API server is still up, 30 s at most.
  for _ in $(seq 150); do
    kill -0 "$pid" 2>/dev/null || break
    sleep 0.2
  done
  rm -f "${demo}/demo.pid" "${demo}/ready"
fi
hack/cluster-down.sh "$@"
