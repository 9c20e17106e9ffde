# Sourced: `helm_venv` makes sure the helm-python-sdk venv exists (fast when it does) and sets
# HELM_PY to its python. Pinned, so every machine runs the same Helm (v4.2.3 in 0.2.2).
HELM_PYTHON_SDK_VERSION=0.2.2
HELM_VENV="${IMAGE_POLICY_CACHE:-/var/cache/image-policy}/helm-venv"
HELM_PY="${HELM_VENV}/bin/python"

helm_venv() {
  if [[ -x "$HELM_PY" ]] &&
    "$HELM_PY" -c "import importlib.metadata as m, sys; sys.exit(m.version('helm-python-sdk') != '${HELM_PYTHON_SDK_VERSION}')" 2>/dev/null; then
    return 0
  fi
  echo "[helm] installing helm-python-sdk ${HELM_PYTHON_SDK_VERSION} into ${HELM_VENV}" >&2
  mkdir -p "$(dirname "$HELM_VENV")"
  if ! python3 -m venv "$HELM_VENV"; then
    # Debian's python3 keeps venv (ensurepip) in a package of its own.
    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq python3-venv
    python3 -m venv --clear "$HELM_VENV"
  fi
  "$HELM_VENV/bin/pip" install --quiet --disable-pip-version-check "helm-python-sdk==${HELM_PYTHON_SDK_VERSION}"
}
