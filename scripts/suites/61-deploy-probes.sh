#!/usr/bin/env bash
# Probe test (issues 6, 13): starts approvald with exactly the container env
# of the rendered Deployment (deploy/kubernetes/approvald.yaml: auth on,
# plaintext; the production example: auth + TLS, probes on the plaintext
# health port; the same with mutual TLS; the minimal example: auth off, the
# bundled Redis; the policies example: the chart's configuration-file mount
# holding policies only, auth off, the policy in force; the webhooks example
# over production: the configuration file and webhook secrets from Secrets;
# the redis-cluster example over production, against a real local Redis
# Cluster of three primaries with a replica each: WAIT for one replica),
# with its Secret volumes mapped to local files (test Redis URL, an auth.toml
# or configuration file, webhook secrets, a self-signed certificate made
# with openssl), against a redis-server of its own, and runs the declared startup,
# readiness and liveness probes with a real grpc.health.v1 client: SERVING;
# Redis down -> readiness NOT_SERVING, liveness SERVING; SIGTERM -> NOT_SERVING,
# exit 0 within the shutdown grace. Details: deploy/tests/probe_test.py.
set -euo pipefail
. "$(dirname "$0")/../lib.sh"
. "$ROOT/deploy/tests/tools.sh"
cd "$ROOT"
need_redis
need_helm
need_deploy_python
[ -n "${APPROVALD_BIN:-}" ] || build_approvald

OUT="$(mktemp -d)"
trap 'rm -rf "$OUT"' EXIT
render "$MANIFEST_KUBE_VERSION" -f deploy/helm/examples/production.yaml >"$OUT/production.yaml"
render "$MANIFEST_KUBE_VERSION" -f deploy/helm/examples/production.yaml \
  --set tls.clientCASecret=approvald-client-ca >"$OUT/production-mtls.yaml"
render "$MANIFEST_KUBE_VERSION" -f deploy/helm/examples/minimal.yaml >"$OUT/minimal.yaml"
render "$MANIFEST_KUBE_VERSION" -f deploy/helm/examples/policies.yaml >"$OUT/policies.yaml"
render "$MANIFEST_KUBE_VERSION" -f deploy/helm/examples/production.yaml \
  -f deploy/helm/examples/webhooks.yaml >"$OUT/webhooks.yaml"

for manifest in deploy/kubernetes/approvald.yaml "$OUT/production.yaml" "$OUT/production-mtls.yaml" \
  "$OUT/minimal.yaml" "$OUT/policies.yaml" "$OUT/webhooks.yaml"; do
  log "probe test: $manifest"
  "$DEPLOY_PY" deploy/tests/probe_test.py "$manifest" "$APPROVALD_BIN"
done

render "$MANIFEST_KUBE_VERSION" -f deploy/helm/examples/production.yaml \
  -f deploy/helm/examples/redis-cluster.yaml >"$OUT/redis-cluster.yaml"
log "probe test: $OUT/redis-cluster.yaml, on a local Redis Cluster"
"$DEPLOY_PY" deploy/tests/probe_test.py "$OUT/redis-cluster.yaml" "$APPROVALD_BIN" --redis-cluster
