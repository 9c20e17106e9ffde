#!/usr/bin/env bash
# hack/bench.sh - the cost of an admission, as deployed: `webhook_load` (operator/benches),
# after installing what it runs when missing (a second run installs nothing).
#
#   hack/bench.sh            both tables: server CPU per request under wrk, then instructions
#                            and allocations per cached review under valgrind's callgrind
#   hack/bench.sh callgrind  the second table alone (repeatable on a busy machine)
#   hack/bench.sh wrk        the first alone
#
# wrk and valgrind are Debian's packages; the registry the bench signs an image in is
# hack/registry.sh's.
set -euo pipefail
cd "$(dirname "$0")/.."

need=()
command -v wrk >/dev/null || need+=(wrk)
command -v valgrind >/dev/null || need+=(valgrind)
if ((${#need[@]})); then
  echo "[bench] installing ${need[*]}" >&2
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${need[@]}"
fi
hack/registry.sh install

case "${1:-}" in
  "") unset WEBHOOK_LOAD ;;
  callgrind | wrk) export WEBHOOK_LOAD="$1" ;;
  *) echo "usage: hack/bench.sh [callgrind|wrk]" >&2; exit 2 ;;
esac
# The registry's access log goes to stderr; the tables to stdout.
exec cargo bench --locked -p image-policy --bench webhook_load 2> >(grep -v -e '^127\.0\.0\.1 - ' -e '^time=' >&2)
