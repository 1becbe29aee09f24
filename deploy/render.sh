#!/usr/bin/env bash
# Regenerates deploy/kubernetes/approvald.yaml from the Helm chart with its
# default values. Run it after changing the chart; CI fails while the
# committed file differs from this output (scripts/suites/60-deploy-checks.sh).
#   deploy/render.sh           rewrite the file
#   deploy/render.sh --stdout  print it instead
set -euo pipefail
. "$(dirname "$0")/../scripts/lib.sh"
. "$ROOT/deploy/tests/tools.sh"
need_helm

manifest() {
  cat <<HEADER
# approvald: plain Kubernetes manifest for \`kubectl apply\`.
# GENERATED from deploy/helm/approvald with its default values by
# deploy/render.sh (helm $HELM_VERSION, --kube-version $MANIFEST_KUBE_VERSION): do not edit.
#
# Needs Kubernetes >= ${MANIFEST_KUBE_VERSION%.0} (the preStop \`sleep\` handler); for 1.28 and 1.29 use
# the Helm chart, which leaves the pause out there. Authentication is ON: every
# call needs a token (or JWT, or client certificate) from auth.toml (SECURITY.md).
# TLS is off (use the chart's tls.* values for it). Before applying it:
#   kubectl create namespace approvald
#   kubectl -n approvald create secret generic approvald-redis --from-literal=url=redis://HOST:6379
#   approvald new-token    # the token goes to a client, its sha256 into auth.toml
#   kubectl -n approvald create secret generic approvald-auth --from-file=auth.toml
#   kubectl apply -f deploy/kubernetes/approvald.yaml
# See deploy/README.md.
HEADER
  render "$MANIFEST_KUBE_VERSION"
}

if [ "${1:-}" = --stdout ]; then
  manifest
else
  manifest > "$ROOT/deploy/kubernetes/approvald.yaml"
  echo "wrote deploy/kubernetes/approvald.yaml" >&2
fi
