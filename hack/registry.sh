#!/usr/bin/env bash
# hack/registry.sh - the real OCI registry the verifier's tests run against.
#
# Usage:
#   hack/registry.sh install   install Debian's docker-registry (CNCF distribution 2.8) and
#                              htpasswd (apache2-utils) when missing; idempotent, instant when present
#   hack/registry.sh start     start a TLS registry on 127.0.0.1 for manual use; prints the CA path
#   hack/registry.sh stop      stop the registry that `start` started
#
# The Rust tests (testsupport/src/registry.rs) do not use start/stop: each test spawns its own
# registry (this one, or olareg from hack/sigstore/install.sh) on a free port with its own CA.
# They never apt-get themselves, so the Makefile runs `install` first.
#
# Environment for start/stop (all optional):
#   IMAGE_POLICY_REGISTRY_STATE  state dir: certs, config, data, logs, pid (/tmp/image-policy-registry)
#   IMAGE_POLICY_REGISTRY_PORT   https port on 127.0.0.1 (5443)
#   IMAGE_POLICY_REGISTRY_USER / IMAGE_POLICY_REGISTRY_PASSWORD
#                                when both are set, the registry requires basic auth

set -euo pipefail

log() { echo "[registry] $*" >&2; }
die() { log "ERROR: $*"; exit 1; }

STATE="${IMAGE_POLICY_REGISTRY_STATE:-/tmp/image-policy-registry}"
PORT="${IMAGE_POLICY_REGISTRY_PORT:-5443}"
REGISTRY_BIN=/usr/bin/docker-registry

install_deps() {
  local need=()
  [[ -x "$REGISTRY_BIN" ]] || need+=(docker-registry)
  # bcrypt for the htpasswd file: the registry accepts nothing else.
  command -v htpasswd >/dev/null || need+=(apache2-utils)
  command -v openssl >/dev/null || need+=(openssl)
  ((${#need[@]})) || return 0
  log "installing ${need[*]}"
  apt-get update -qq
  # --no-install-recommends: the package recommends nothing we use. Debian's postinst may try
  # to start the system service; without systemd (containers, CI) that is a no-op, and the
  # tests never use that instance (it would listen on :5000).
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
}

# A throwaway CA and a server certificate for 127.0.0.1 and localhost, signed by it.
# Explicit extension files: the system openssl.cnf would make a `req -x509` certificate a CA,
# and rustls refuses a CA certificate as a server's.
make_certs() {
  local dir="$STATE/certs"
  [[ -s "$dir/server.pem" ]] && return 0
  mkdir -p "$dir"
  openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out "$dir/ca.key" 2>/dev/null
  openssl req -x509 -new -key "$dir/ca.key" -out "$dir/ca.pem" -days 30 \
    -subj "/CN=image-policy registry test CA" \
    -addext "basicConstraints=critical,CA:TRUE" -addext "keyUsage=critical,keyCertSign,cRLSign"
  openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out "$dir/server.key" 2>/dev/null
  openssl req -new -key "$dir/server.key" -out "$dir/server.csr" -subj "/CN=localhost"
  cat >"$dir/server.ext" <<'EOF'
basicConstraints = critical,CA:FALSE
keyUsage = critical,digitalSignature
extendedKeyUsage = serverAuth
subjectAltName = IP:127.0.0.1,DNS:localhost
EOF
  openssl x509 -req -in "$dir/server.csr" -CA "$dir/ca.pem" -CAkey "$dir/ca.key" \
    -CAcreateserial -CAserial "$dir/ca.srl" -days 30 -extfile "$dir/server.ext" \
    -out "$dir/server.pem" 2>/dev/null
}

write_config() {
  local auth=""
  if [[ -n "${IMAGE_POLICY_REGISTRY_USER:-}" && -n "${IMAGE_POLICY_REGISTRY_PASSWORD:-}" ]]; then
    htpasswd -Bbn "$IMAGE_POLICY_REGISTRY_USER" "$IMAGE_POLICY_REGISTRY_PASSWORD" >"$STATE/htpasswd"
    auth="auth:
  htpasswd:
    realm: image-policy-test
    path: $STATE/htpasswd"
  fi
  # Same shape as the one the Rust harness writes: access log on stdout, deletes allowed (to
  # move tags), no notifications, no proxy, no cache (so deletes are seen at once).
  cat >"$STATE/config.yml" <<EOF
version: 0.1
log:
  level: info
  accesslog:
    disabled: false
storage:
  filesystem:
    rootdirectory: $STATE/data
  delete:
    enabled: true
  maintenance:
    uploadpurging:
      enabled: false
http:
  addr: 127.0.0.1:$PORT
  secret: $(openssl rand -hex 16)
  tls:
    certificate: $STATE/certs/server.pem
    key: $STATE/certs/server.key
$auth
EOF
}

running_pid() {
  local pid
  pid="$(cat "$STATE/registry.pid" 2>/dev/null)" || return 1
  kill -0 "$pid" 2>/dev/null || return 1
  echo "$pid"
}

start() {
  [[ -x "$REGISTRY_BIN" ]] || die "$REGISTRY_BIN is missing: run hack/registry.sh install"
  if pid="$(running_pid)"; then
    log "already running (pid $pid)"
  else
    mkdir -p "$STATE/data"
    make_certs
    write_config
    # The access log (Apache combined format) goes to stdout, the server log to stderr.
    "$REGISTRY_BIN" serve "$STATE/config.yml" >"$STATE/access.log" 2>"$STATE/registry.log" &
    echo $! >"$STATE/registry.pid"
    for _ in $(seq 100); do
      # The registry opens its listener once it is ready to serve; bash's /dev/tcp needs no curl.
      if (exec 3<>"/dev/tcp/127.0.0.1/$PORT") 2>/dev/null; then
        break
      fi
      running_pid >/dev/null || die "registry exited: $(tail -5 "$STATE/registry.log")"
      sleep 0.1
    done
  fi
  log "listening on https://127.0.0.1:$PORT (logs in $STATE)"
  echo "$STATE/certs/ca.pem"
}

stop() {
  local pid
  if pid="$(running_pid)"; then
    kill "$pid"
    log "stopped pid $pid"
  fi
  rm -f "$STATE/registry.pid"
}

case "${1:-}" in
  install) install_deps ;;
  start) start ;;
  stop) stop ;;
  *) sed -n '2,18p' "$0"; exit 2 ;;
esac
