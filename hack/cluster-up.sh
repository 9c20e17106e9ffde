#!/usr/bin/env bash
# hack/cluster-up.sh - start a real, local Kubernetes control plane (etcd +
# kube-apiserver + kube-controller-manager) on 127.0.0.1, of the release that
# hack/k8s/go.mod pins (1.37).
#
# There is no kubelet and no node: Pods are accepted by the API server and
# stay Pending, which is all an admission-webhook test needs.
#
# Binaries, etcd and the kubectl of the same release included, come from
# hack/k8s-build.sh (built once from Go modules and cached outside the
# checkout).
#
# Everything lives in the state dir (default /tmp/image-policy-cluster):
#   certs/        CA, serving/client certs, service-account key pair
#   etcd/         etcd data
#   logs/         etcd.log, kube-apiserver.log, kube-controller-manager.log
#   pids/         <component>.pid
#   kubeconfig    admin kubeconfig (O=system:masters), certs embedded
#   env           shell snippet: KUBECONFIG, PATH (the release's kubectl
#                 first), CA paths, ports (source it)
#
# Environment (all optional):
#   IMAGE_POLICY_STATE           state dir            (/tmp/image-policy-cluster)
#   IMAGE_POLICY_CACHE           build cache root     (/var/cache/image-policy)
#   IMAGE_POLICY_ETCD_PORT       etcd client port     (2379)
#   IMAGE_POLICY_ETCD_PEER_PORT  etcd peer port       (2380)
#   IMAGE_POLICY_APISERVER_PORT  apiserver https port (6443)
#   IMAGE_POLICY_KCM_PORT        controller-manager https (health) port (10257)
#   IMAGE_POLICY_UP_TIMEOUT      seconds to wait for readiness (90)
#
# Idempotent: if the cluster in the state dir is already up and ready, it
# only prints the export line and exits 0.  If it is half up (some process
# died), the survivors are stopped and everything is started again; certs
# and etcd data in the state dir are reused (use cluster-down.sh --purge
# for a clean slate).

set -euo pipefail

log() { echo "[cluster-up] $*" >&2; }
die() { log "ERROR: $*"; exit 1; }

HACK_DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
STATE="${IMAGE_POLICY_STATE:-/tmp/image-policy-cluster}"
ETCD_PORT="${IMAGE_POLICY_ETCD_PORT:-2379}"
ETCD_PEER_PORT="${IMAGE_POLICY_ETCD_PEER_PORT:-2380}"
APISERVER_PORT="${IMAGE_POLICY_APISERVER_PORT:-6443}"
KCM_PORT="${IMAGE_POLICY_KCM_PORT:-10257}"
TIMEOUT="${IMAGE_POLICY_UP_TIMEOUT:-90}"
SERVICE_CIDR=10.0.0.0/24
SERVICE_IP=10.0.0.1   # first IP of SERVICE_CIDR: the `kubernetes` Service

CERTS="${STATE}/certs"
LOGS="${STATE}/logs"
PIDS="${STATE}/pids"
KUBECONFIG_FILE="${STATE}/kubeconfig"
KCM_KUBECONFIG="${STATE}/kube-controller-manager.kubeconfig"
COMPONENTS=(etcd kube-apiserver kube-controller-manager)

# The binaries (fast when cached: the script checks them and builds nothing).
BIN_DIR=$("${HACK_DIR}/k8s-build.sh" | tail -n1)
[[ -x "${BIN_DIR}/kube-apiserver" ]] || die "hack/k8s-build.sh printed no bin directory"
# For our own checks we use the kubectl of the same release (no version skew);
# override with KUBECTL=... if wanted.
KUBECTL="${KUBECTL:-${BIN_DIR}/kubectl}"
kc() { "$KUBECTL" --kubeconfig "$KUBECONFIG_FILE" --request-timeout=5s "$@"; }

print_result() {
  log "cluster is up: https://127.0.0.1:${APISERVER_PORT} (state: ${STATE})"
  log "CA certificate: ${CERTS}/ca.crt (key: ${CERTS}/ca.key); env file: ${STATE}/env"
  echo "export KUBECONFIG=${KUBECONFIG_FILE}"
  echo "export PATH=${BIN_DIR}:\$PATH"
}

# pid from a pid file if that process is alive and is one of ours (its
# command line mentions our state dir), else nothing.
live_pid() {
  local f="${PIDS}/$1.pid" pid
  [[ -f "$f" ]] || return 1
  pid=$(<"$f")
  [[ "$pid" =~ ^[0-9]+$ ]] || return 1
  [[ -r "/proc/${pid}/cmdline" ]] || return 1
  { tr '\0' ' ' <"/proc/${pid}/cmdline"; } 2>/dev/null | grep -qF -- "$STATE" || return 1
  echo "$pid"
}

all_running() {
  local c
  for c in "${COMPONENTS[@]}"; do live_pid "$c" >/dev/null || return 1; done
}

# True if something accepts TCP connections on 127.0.0.1:$1 (bash /dev/tcp,
# so no extra tools such as ss/nc/curl are needed).
port_busy() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

# Tiny HTTP GET over /dev/tcp (plain http; used for etcd's /health).
http_get() {
  local port=$1 path=$2
  (
    exec 3<>"/dev/tcp/127.0.0.1/${port}" || exit 1
    printf 'GET %s HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n' "$path" >&3
    timeout 5 cat <&3
  ) 2>/dev/null
}

show_logs() {
  local c
  for c in "${COMPONENTS[@]}"; do
    if [[ -f "${LOGS}/${c}.log" ]]; then
      log "----- last 25 lines of ${LOGS}/${c}.log -----"
      tail -n 25 "${LOGS}/${c}.log" >&2 || true
    fi
  done
}

fail() {
  log "ERROR: $*"
  show_logs
  log "stopping what was started (state and logs kept in ${STATE})"
  IMAGE_POLICY_STATE="$STATE" "${HACK_DIR}/cluster-down.sh" >&2 || true
  exit 1
}

# wait_until <description> <command...>: poll every 0.5 s until the command
# succeeds or the overall deadline (TIMEOUT seconds after start) passes.
wait_until() {
  local desc=$1; shift
  log "waiting for ${desc}"
  until "$@" >/dev/null 2>&1; do
    # bail out early if a component died, instead of waiting for the timeout
    local c
    for c in "${STARTED[@]}"; do
      live_pid "$c" >/dev/null || fail "${c} exited while waiting for ${desc}"
    done
    (( $(date +%s) < DEADLINE )) || fail "timed out after ${TIMEOUT}s waiting for ${desc}"
    sleep 0.5
  done
}

# Start "$@" detached (own session, so it survives the caller's shell/job
# control and Ctrl-C), logging to logs/<name>.log and recording the real pid
# (the inner shell writes its own $$ and then exec's the binary, so the pid is
# right even if setsid had to fork).
start_bg() {
  local name=$1; shift
  log "starting ${name} (log: ${LOGS}/${name}.log)"
  # shellcheck disable=SC2016  # $$ and $@ must expand in the inner shell
  setsid bash -c 'echo $$ >"$1"; shift; exec "$@"' _ "${PIDS}/${name}.pid" "$@" \
    </dev/null >>"${LOGS}/${name}.log" 2>&1 &
  # wait for the pid file so live_pid works right away
  for _ in $(seq 1 50); do [[ -s "${PIDS}/${name}.pid" ]] && break; sleep 0.1; done
  STARTED+=("$name")
}

# ---------------------------------------------------------------------------
# 0. Already up?
# ---------------------------------------------------------------------------
if all_running && kc get --raw /readyz >/dev/null 2>&1; then
  log "already up"
  print_result
  exit 0
fi

# ---------------------------------------------------------------------------
# 1. Half up?
# ---------------------------------------------------------------------------
command -v openssl >/dev/null || die "openssl not found"

# Half up from an earlier run?  Stop the leftovers first.
for c in "${COMPONENTS[@]}"; do
  if live_pid "$c" >/dev/null; then
    log "found a partially running cluster in ${STATE}; restarting it"
    IMAGE_POLICY_STATE="$STATE" "${HACK_DIR}/cluster-down.sh" >&2
    break
  fi
done

for p in "$ETCD_PORT" "$ETCD_PEER_PORT" "$APISERVER_PORT" "$KCM_PORT"; do
  port_busy "$p" && die "port 127.0.0.1:${p} is already in use (another cluster or a system etcd?); set IMAGE_POLICY_*_PORT to free ports"
done

mkdir -p "$CERTS" "$LOGS" "$PIDS" "${STATE}/etcd"
chmod 700 "$STATE" "$CERTS" "${STATE}/etcd"

# ---------------------------------------------------------------------------
# 2. Certificates (generated once per state dir, then reused)
# ---------------------------------------------------------------------------
# A dedicated openssl config, so the distribution's default extensions do
# not interfere and every cert gets exactly the extensions it needs.
# Go ignores the CN for host names (since 1.15), so the serving cert MUST
# carry SANs.
write_openssl_cnf() {
  cat >"${CERTS}/openssl.cnf" <<EOF
[req]
distinguished_name = dn
prompt = no
[dn]
CN = unused
[v3_ca]
basicConstraints = critical,CA:TRUE
keyUsage = critical,keyCertSign,cRLSign,digitalSignature
subjectKeyIdentifier = hash
[server]
basicConstraints = critical,CA:FALSE
keyUsage = critical,digitalSignature,keyEncipherment
extendedKeyUsage = serverAuth
subjectAltName = DNS:localhost,DNS:kubernetes,DNS:kubernetes.default,DNS:kubernetes.default.svc,DNS:kubernetes.default.svc.cluster.local,IP:127.0.0.1,IP:${SERVICE_IP}
[client]
basicConstraints = critical,CA:FALSE
keyUsage = critical,digitalSignature,keyEncipherment
extendedKeyUsage = clientAuth
EOF
}

# new_cert <name> <subject> <extensions-section>: key + cert signed by our CA
new_cert() {
  local name=$1 subj=$2 ext=$3
  openssl genrsa -out "${CERTS}/${name}.key" 2048 2>/dev/null
  openssl req -new -key "${CERTS}/${name}.key" -subj "$subj" \
    -config "${CERTS}/openssl.cnf" -out "${CERTS}/${name}.csr"
  openssl x509 -req -in "${CERTS}/${name}.csr" -CA "${CERTS}/ca.crt" -CAkey "${CERTS}/ca.key" \
    -CAcreateserial -days 3650 -sha256 -extfile "${CERTS}/openssl.cnf" -extensions "$ext" \
    -out "${CERTS}/${name}.crt" 2>/dev/null
  rm -f "${CERTS}/${name}.csr"
}

if [[ ! -s "${CERTS}/done" ]]; then
  log "generating certificates in ${CERTS}"
  ( umask 077
    write_openssl_cnf
    # Cluster CA: signs everything, is the client CA of the apiserver, the
    # root CA handed to pods, and the CSR signer of the controller-manager.
    openssl genrsa -out "${CERTS}/ca.key" 2048 2>/dev/null
    openssl req -x509 -new -key "${CERTS}/ca.key" -subj "/CN=image-policy-local-ca" -days 3650 -sha256 \
      -config "${CERTS}/openssl.cnf" -extensions v3_ca -out "${CERTS}/ca.crt"
    new_cert apiserver "/CN=kube-apiserver" server
    # O=system:masters: full access via the built-in cluster-admin binding
    new_cert admin "/O=system:masters/CN=admin" client
    # The user name RBAC's bootstrap policy grants the controller-manager role to
    new_cert kube-controller-manager "/CN=system:kube-controller-manager" client
    # Service-account token signing key pair: the apiserver signs TokenRequest
    # (projected) tokens with the private key and verifies with the public
    # one; kcm signs the tokens of Secrets of type service-account-token.
    openssl genrsa -out "${CERTS}/sa.key" 2048 2>/dev/null
    openssl rsa -in "${CERTS}/sa.key" -pubout -out "${CERTS}/sa.pub" 2>/dev/null
  )
  chmod 644 "${CERTS}/ca.crt"   # public; handy for webhook caBundle etc.
  date -u +%FT%TZ >"${CERTS}/done"
else
  log "reusing certificates in ${CERTS}"
fi

# write_kubeconfig <file> <user> <cert-name>: certs embedded, so the file is
# self-contained (can be copied or mounted elsewhere).
write_kubeconfig() {
  local file=$1 user=$2 cert=$3
  ( umask 077
    cat >"$file" <<EOF
apiVersion: v1
kind: Config
clusters:
- name: image-policy-local
  cluster:
    server: https://127.0.0.1:${APISERVER_PORT}
    certificate-authority-data: $(base64 -w0 "${CERTS}/ca.crt")
users:
- name: ${user}
  user:
    client-certificate-data: $(base64 -w0 "${CERTS}/${cert}.crt")
    client-key-data: $(base64 -w0 "${CERTS}/${cert}.key")
contexts:
- name: image-policy-local
  context:
    cluster: image-policy-local
    user: ${user}
current-context: image-policy-local
EOF
  )
}
# Always rewritten: the apiserver port may have changed since the last run.
write_kubeconfig "$KUBECONFIG_FILE" admin admin
write_kubeconfig "$KCM_KUBECONFIG" kube-controller-manager kube-controller-manager

cat >"${STATE}/env" <<EOF
# Generated by hack/cluster-up.sh; source this file.
export KUBECONFIG=${KUBECONFIG_FILE}
# kubectl (and etcd, kube-apiserver) of the control plane's own release first.
export PATH=${BIN_DIR}:\$PATH
export IMAGE_POLICY_K8S_BIN=${BIN_DIR}
export IMAGE_POLICY_APISERVER=https://127.0.0.1:${APISERVER_PORT}
export IMAGE_POLICY_CA_CERT=${CERTS}/ca.crt
export IMAGE_POLICY_CA_KEY=${CERTS}/ca.key
export IMAGE_POLICY_ETCD=http://127.0.0.1:${ETCD_PORT}
EOF

# ---------------------------------------------------------------------------
# 3. Processes
# ---------------------------------------------------------------------------
STARTED=()
START_TS=$(date +%s)
DEADLINE=$(( START_TS + TIMEOUT ))
: >"${LOGS}/etcd.log"; : >"${LOGS}/kube-apiserver.log"; : >"${LOGS}/kube-controller-manager.log"

# etcd: single member, plain http on loopback only (nothing else can reach it).
start_bg etcd "${BIN_DIR}/etcd" \
  --name image-policy \
  --data-dir "${STATE}/etcd" \
  --listen-client-urls "http://127.0.0.1:${ETCD_PORT}" \
  --advertise-client-urls "http://127.0.0.1:${ETCD_PORT}" \
  --listen-peer-urls "http://127.0.0.1:${ETCD_PEER_PORT}" \
  --initial-advertise-peer-urls "http://127.0.0.1:${ETCD_PEER_PORT}" \
  --initial-cluster "image-policy=http://127.0.0.1:${ETCD_PEER_PORT}" \
  --initial-cluster-state new
etcd_healthy() { http_get "$ETCD_PORT" /health | grep -q '"health":"true"'; }
wait_until "etcd /health" etcd_healthy

# kube-apiserver.
#  - the admission plugins on by default, listed with both admission-webhook
#    plugins (also default) so nobody "optimises" them away: the project's
#    webhook is called via clientConfig.url https://127.0.0.1:PORT/...
#    ValidatingAdmissionPolicy (GA since 1.30) is on by default too.
#  - the three --service-account-* flags are required for TokenRequest and
#    for verifying service-account tokens.
#  - no feature gates: what the suite relies on is on by default in 1.37
#    (matchConditions, CEL rules in CRDs, field validation, sidecar
#    containers, ephemeral containers, image volumes).
#  - there is no insecure HTTP port to turn off any more (gone in 1.24).
#  - --endpoint-reconciler-type=none: the apiserver advertises 127.0.0.1, which
#    current releases refuse as an endpoint of the `kubernetes` Service; no Pod
#    runs here to call that Service, so it gets no endpoints.
#  - --enable-aggregator-routing: a webhook configured by Service (the chart's)
#    is called at the Service's endpoints, not at its ClusterIP, which leads
#    nowhere without kube-proxy; the e2e suite gives the chart's Service an
#    endpoint of its own (e2e/tests/helm.rs).
start_bg kube-apiserver "${BIN_DIR}/kube-apiserver" \
  --advertise-address=127.0.0.1 \
  --bind-address=127.0.0.1 \
  --secure-port="${APISERVER_PORT}" \
  --etcd-servers="http://127.0.0.1:${ETCD_PORT}" \
  --cert-dir="${CERTS}/apiserver-generated" \
  --tls-cert-file="${CERTS}/apiserver.crt" \
  --tls-private-key-file="${CERTS}/apiserver.key" \
  --client-ca-file="${CERTS}/ca.crt" \
  --authorization-mode=Node,RBAC \
  --enable-admission-plugins=NamespaceLifecycle,LimitRanger,ServiceAccount,NodeRestriction,MutatingAdmissionWebhook,ValidatingAdmissionWebhook,ResourceQuota \
  --service-cluster-ip-range="${SERVICE_CIDR}" \
  --service-account-key-file="${CERTS}/sa.pub" \
  --service-account-signing-key-file="${CERTS}/sa.key" \
  --service-account-issuer=https://kubernetes.default.svc.cluster.local \
  --allow-privileged=true \
  --endpoint-reconciler-type=none \
  --enable-aggregator-routing=true \
  --profiling=false \
  --v=1

apiserver_ready() { kc get --raw /readyz; }
wait_until "kube-apiserver /readyz" apiserver_ready

# kube-controller-manager.
#  - the serviceaccount controller creates the `default` SA in each
#    namespace, which the ServiceAccount admission plugin requires before it
#    lets a Pod in; the root-ca-cert-publisher (--root-ca-file) writes the
#    kube-root-ca.crt ConfigMap that Pods' projected token volumes name.
#  - --use-service-account-credentials: each controller uses its own SA.
#  - --leader-elect=false: single instance, starts working immediately.
#  - health is on the secure port only (the insecure one is gone since 1.24).
start_bg kube-controller-manager "${BIN_DIR}/kube-controller-manager" \
  --kubeconfig="${KCM_KUBECONFIG}" \
  --authentication-kubeconfig="${KCM_KUBECONFIG}" \
  --authorization-kubeconfig="${KCM_KUBECONFIG}" \
  --bind-address=127.0.0.1 \
  --secure-port="${KCM_PORT}" \
  --cert-dir="${CERTS}/kcm-generated" \
  --controllers='*' \
  --use-service-account-credentials=true \
  --service-account-private-key-file="${CERTS}/sa.key" \
  --root-ca-file="${CERTS}/ca.crt" \
  --cluster-signing-cert-file="${CERTS}/ca.crt" \
  --cluster-signing-key-file="${CERTS}/ca.key" \
  --service-cluster-ip-range="${SERVICE_CIDR}" \
  --allocate-node-cidrs=false \
  --leader-elect=false \
  --profiling=false \
  --v=1

# The `default` ServiceAccount exists: the serviceaccount controller works,
# so Pods can be created. (Since 1.24 no token Secret comes with it: Pods get
# a projected token from the TokenRequest API.)
default_sa_ready() { kc -n default get serviceaccount default; }
wait_until "ServiceAccount default/default" default_sa_ready

log "control plane ready in $(( $(date +%s) - START_TS ))s"
print_result
