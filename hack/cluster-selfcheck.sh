#!/usr/bin/env bash
# hack/cluster-selfcheck.sh - smoke test of hack/cluster-up.sh / cluster-down.sh.
#
#   cluster-up (fresh state) -> namespaces, ServiceAccount, Pod (Pending),
#   api-resources, CRD (server dry-run + real) and a custom resource,
#   a ValidatingWebhookConfiguration with clientConfig.url=https://127.0.0.1:PORT
#   served by a tiny python3 webhook -> cluster-down -> cluster-up again
#   (cached, fast) -> cluster-down --purge.
#
# Uses its own state dir and non-default ports unless overridden, so it does
# not disturb a cluster that is already running with the defaults.
# Requires python3 for the webhook part (skipped if missing).

set -euo pipefail

log() { echo "[selfcheck] $*" >&2; }
HACK_DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"

export IMAGE_POLICY_STATE="${IMAGE_POLICY_STATE:-/tmp/image-policy-selfcheck}"
export IMAGE_POLICY_ETCD_PORT="${IMAGE_POLICY_ETCD_PORT:-22379}"
export IMAGE_POLICY_ETCD_PEER_PORT="${IMAGE_POLICY_ETCD_PEER_PORT:-22380}"
export IMAGE_POLICY_APISERVER_PORT="${IMAGE_POLICY_APISERVER_PORT:-16443}"
export IMAGE_POLICY_KCM_PORT="${IMAGE_POLICY_KCM_PORT:-20257}"
WEBHOOK_PORT="${SELFCHECK_WEBHOOK_PORT:-18443}"
export KUBECONFIG="${IMAGE_POLICY_STATE}/kubeconfig"
# The kubectl to test with: the control plane's own release (cluster-up.sh's env file puts it
# first on PATH), unless KUBECTL names another.
k() { "${KUBECTL:-kubectl}" "$@"; }

WEBHOOK_PID=""
cleanup() {
  if [[ -n "$WEBHOOK_PID" ]]; then kill "$WEBHOOK_PID" 2>/dev/null || true; fi
  "${HACK_DIR}/cluster-down.sh" --purge || true
}
trap cleanup EXIT

"${HACK_DIR}/cluster-down.sh" --purge   # start from a clean slate

t0=$(date +%s)
"${HACK_DIR}/cluster-up.sh"
log "cluster-up #1 took $(( $(date +%s) - t0 ))s"
# shellcheck disable=SC1091
source "${IMAGE_POLICY_STATE}/env"

log "kubectl: $(command -v "${KUBECTL:-kubectl}")"
k version
k get ns
k create ns x
for _ in $(seq 1 60); do
  k -n x get sa default >/dev/null 2>&1 && break
  sleep 0.5
done
k -n x get sa default
k -n x run p --image=busybox --restart=Never
phase=$(k -n x get pod p -o jsonpath='{.status.phase}')
[[ "$phase" == Pending ]] || { log "FAIL: pod phase is '$phase', expected Pending"; exit 1; }
log "pod x/p created, phase=$phase"
# (no direct pipe into head: with pipefail, SIGPIPE would fail the script)
resources=$(k api-resources)
head -n 10 <<<"$resources"

crd=$(mktemp)
cat >"$crd" <<'EOF'
apiVersion: apiextensions.k8s.io/v1
kind: CustomResourceDefinition
metadata:
  name: widgets.selfcheck.example.com
spec:
  group: selfcheck.example.com
  names: {kind: Widget, plural: widgets, singular: widget}
  scope: Namespaced
  versions:
  - name: v1
    served: true
    storage: true
    schema:
      openAPIV3Schema:
        type: object
        properties:
          spec:
            type: object
            properties:
              image: {type: string}
EOF
k apply --dry-run=server -f "$crd"
k apply -f "$crd"
k wait --for=condition=Established crd/widgets.selfcheck.example.com --timeout=30s
printf 'apiVersion: selfcheck.example.com/v1\nkind: Widget\nmetadata: {name: w, namespace: x, labels: {a: b}}\nspec: {image: busybox}\n' | k apply -f -
k -n x get widgets
rm -f "$crd"

if command -v python3 >/dev/null; then
  log "webhook check: apiserver -> https://127.0.0.1:${WEBHOOK_PORT}/validate"
  wh="${IMAGE_POLICY_STATE}/selfcheck-webhook"
  mkdir -p "$wh"
  certs="${IMAGE_POLICY_STATE}/certs"
  # Serving cert for the webhook, signed by the cluster CA; SAN IP 127.0.0.1
  # is mandatory (Go >= 1.15 ignores the CN).
  openssl genrsa -out "$wh/tls.key" 2048 2>/dev/null
  openssl req -new -key "$wh/tls.key" -subj /CN=127.0.0.1 -out "$wh/tls.csr" 2>/dev/null
  printf 'subjectAltName=IP:127.0.0.1\nextendedKeyUsage=serverAuth\n' >"$wh/ext.cnf"
  openssl x509 -req -in "$wh/tls.csr" -CA "$certs/ca.crt" -CAkey "$certs/ca.key" -CAcreateserial \
    -days 1 -sha256 -extfile "$wh/ext.cnf" -out "$wh/tls.crt" 2>/dev/null
  cat >"$wh/server.py" <<'EOF'
import http.server, json, ssl, sys
class H(http.server.BaseHTTPRequestHandler):
    def do_POST(self):
        review = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        req = review["request"]
        labels = req["object"]["metadata"].get("labels") or {}
        allowed = labels.get("deny") != "yes"
        resp = {"apiVersion": "admission.k8s.io/v1", "kind": "AdmissionReview",
                "response": {"uid": req["uid"], "allowed": allowed}}
        if not allowed:
            resp["response"]["status"] = {"code": 403, "message": "denied by selfcheck webhook"}
        body = json.dumps(resp).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)
srv = http.server.HTTPServer(("127.0.0.1", int(sys.argv[1])), H)
ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
ctx.load_cert_chain(sys.argv[2], sys.argv[3])
srv.socket = ctx.wrap_socket(srv.socket, server_side=True)
srv.serve_forever()
EOF
  python3 "$wh/server.py" "$WEBHOOK_PORT" "$wh/tls.crt" "$wh/tls.key" >"$wh/server.log" 2>&1 &
  WEBHOOK_PID=$!
  sleep 1
  cat <<EOF | k apply -f -
apiVersion: admissionregistration.k8s.io/v1
kind: ValidatingWebhookConfiguration
metadata: {name: selfcheck}
webhooks:
- name: selfcheck.example.com
  admissionReviewVersions: [v1]
  sideEffects: None
  failurePolicy: Fail
  namespaceSelector: {matchLabels: {selfcheck: "on"}}
  rules:
  - {apiGroups: [""], apiVersions: [v1], operations: [CREATE], resources: [pods]}
  clientConfig:
    url: https://127.0.0.1:${WEBHOOK_PORT}/validate
    caBundle: $(base64 -w0 "$certs/ca.crt")
EOF
  k label ns x selfcheck=on
  sleep 1   # let the apiserver pick up the new webhook configuration
  k -n x run allowed --image=busybox --restart=Never
  if out=$(k -n x run denied --image=busybox --restart=Never --labels=deny=yes 2>&1); then
    log "FAIL: webhook did not deny: $out"; exit 1
  fi
  echo "$out" | grep -q 'denied by selfcheck webhook' || { log "FAIL: unexpected error: $out"; exit 1; }
  log "webhook denied as expected: $out"
  kill "$WEBHOOK_PID"; WEBHOOK_PID=""
else
  log "python3 not found: skipping the webhook check"
fi

"${HACK_DIR}/cluster-down.sh"
t0=$(date +%s)
"${HACK_DIR}/cluster-up.sh"
log "cluster-up #2 (cached binaries, existing state) took $(( $(date +%s) - t0 ))s"
t0=$(date +%s)
"${HACK_DIR}/cluster-up.sh"
log "cluster-up #3 (already up) took $(( $(date +%s) - t0 ))s"
k -n x get pods,widgets
log "ALL OK"
