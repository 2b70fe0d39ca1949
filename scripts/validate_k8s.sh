#!/usr/bin/env bash
# Render every kustomization under k8s/ (overlays dev and prod, monitoring) with
# `kubectl kustomize` and validate each rendering against the Kubernetes OpenAPI schema
# with `kubernetes-validate --strict` (unknown fields are errors). No cluster needed.
#
#   KUBE_VERSIONS="1.30.0 1.37.0" bash scripts/validate_k8s.sh
#
# Each rendering is validated against the oldest Kubernetes we support (1.30: the preStop
# `sleep` action is on by default from there; native gRPC probes need 1.24) and against
# the newest schema this kubernetes-validate ships (so removed APIs show up early).
set -euo pipefail

cd "$(dirname "$0")/.."
read -r -a KUBE_VERSIONS <<<"${KUBE_VERSIONS:-1.30.0 1.37.0}"
KUBERNETES_VALIDATE_PIN=${KUBERNETES_VALIDATE_PIN:-kubernetes-validate==1.37.0}
TARGETS=(k8s/overlays/dev k8s/overlays/prod k8s/monitoring)

log() { echo "validate-k8s: $*" >&2; }

if ! command -v kubectl >/dev/null; then
  log "kubectl is not installed (it renders the kustomizations)"
  exit 1
fi

validator=.venv/bin/kubernetes-validate
if [[ ! -x $validator ]]; then
  if command -v kubernetes-validate >/dev/null; then
    validator=$(command -v kubernetes-validate)
  elif [[ -x .venv/bin/pip ]]; then
    log "installing $KUBERNETES_VALIDATE_PIN into .venv"
    .venv/bin/pip install -q "$KUBERNETES_VALIDATE_PIN"
  else
    log "kubernetes-validate is not installed: pip install '$KUBERNETES_VALIDATE_PIN'"
    exit 1
  fi
fi

rendered=$(mktemp -d)
trap 'rm -rf "$rendered"' EXIT

status=0
for target in "${TARGETS[@]}"; do
  out="$rendered/$(echo "$target" | tr / _).yaml"
  if ! kubectl kustomize "$target" >"$out"; then
    log "FAIL $target: kubectl kustomize failed"
    status=1
    continue
  fi
  count=$(grep -c '^kind: ' "$out" || true)
  for version in "${KUBE_VERSIONS[@]}"; do
    if "$validator" --strict --quiet -k "$version" "$out"; then
      log "ok   $target ($count resources, Kubernetes $version, strict)"
    else
      log "FAIL $target: not valid for Kubernetes $version (above)"
      status=1
    fi
  done
done
exit $status
