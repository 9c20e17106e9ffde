#!/usr/bin/env bash
# hack/cluster-down.sh - stop the local control plane started by
# hack/cluster-up.sh.
#
# Usage: hack/cluster-down.sh [--purge]
#   --purge   also delete the state dir (certs, etcd data, logs, kubeconfig)
#
# Processes are found by their pid files first.  Afterwards we make sure none
# remain by looking for etcd / kube-apiserver / kube-controller-manager
# processes whose command line mentions OUR state dir (so a cluster using
# another state dir, or unrelated processes, are never touched).
#
# Environment: IMAGE_POLICY_STATE (default /tmp/image-policy-cluster)

set -euo pipefail

log() { echo "[cluster-down] $*" >&2; }

STATE="${IMAGE_POLICY_STATE:-/tmp/image-policy-cluster}"
PURGE=0
for arg in "$@"; do
  case "$arg" in
    --purge) PURGE=1 ;;
    -h|--help) sed -n '2,13p' "$0"; exit 0 ;;
    *) log "unknown argument: $arg"; exit 2 ;;
  esac
done

# Stop order: controller-manager first, etcd last (the apiserver needs etcd
# for a clean shutdown).
COMPONENTS=(kube-controller-manager kube-apiserver etcd)

# Is <pid> one of our processes: alive, and its command line names our state dir?
ours() {
  local pid=$1
  [[ -r "/proc/${pid}/cmdline" ]] || return 1
  { tr '\0' ' ' <"/proc/${pid}/cmdline"; } 2>/dev/null | grep -qF -- "$STATE"
}

# stop_pid <pid> <name>: SIGTERM, wait up to 10 s, then SIGKILL.
stop_pid() {
  local pid=$1 name=$2
  ours "$pid" || return 0
  log "stopping ${name} (pid ${pid})"
  kill -TERM "$pid" 2>/dev/null || true
  for _ in $(seq 1 100); do
    ours "$pid" || return 0
    sleep 0.1
  done
  log "${name} (pid ${pid}) did not exit after 10s; sending SIGKILL"
  kill -KILL "$pid" 2>/dev/null || true
  sleep 0.2
}

# Leftover processes of our cluster not covered by a pid file.  Matches the
# exact executable name (argv[0] basename) plus our state dir in the args.
leftovers() {
  local c=$1 d pid argv0
  for d in /proc/[0-9]*; do
    pid=${d#/proc/}
    [[ "$pid" == "$$" ]] && continue
    argv0=$( { tr '\0' '\n' <"${d}/cmdline" | head -n1; } 2>/dev/null) || continue
    [[ "$(basename -- "${argv0:-/}")" == "$c" ]] || continue
    ours "$pid" && echo "$pid"
  done
  return 0
}

if [[ ! -d "$STATE" ]]; then
  log "no state dir ${STATE}; nothing to stop"
else
  for c in "${COMPONENTS[@]}"; do
    f="${STATE}/pids/${c}.pid"
    if [[ -f "$f" ]]; then
      pid=$(<"$f")
      [[ "$pid" =~ ^[0-9]+$ ]] && stop_pid "$pid" "$c"
      rm -f "$f"
    fi
  done
  for c in "${COMPONENTS[@]}"; do
    for pid in $(leftovers "$c"); do
      log "found leftover ${c} process"
      stop_pid "$pid" "$c"
    done
  done
  log "stopped"
fi

if [[ $PURGE -eq 1 && -d "$STATE" ]]; then
  # Safety net against an accidental IMAGE_POLICY_STATE=/ or similar.
  case "$(realpath -m "$STATE")" in
    /|/tmp|/var|/root|/home|/usr|/etc) log "refusing to delete ${STATE}"; exit 1 ;;
  esac
  log "removing ${STATE}"
  rm -rf -- "$STATE"
fi
