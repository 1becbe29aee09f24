#!/usr/bin/env bash
# Deploy checks (issue 6): the Helm chart lints, its values schema refuses
# wrong values, it renders with the default values and with
# deploy/helm/examples/{production,minimal}.yaml for every Kubernetes version
# from 1.28 to the newest kubernetes-validate ships, each rendering passes
# `kubernetes-validate --strict` for its version and checkov (skips justified
# in deploy/checkov/), deploy/Dockerfile passes checkov's static checks (it
# cannot be built here: no Docker engine), and deploy/kubernetes/approvald.yaml
# is up to date.
# Installs helm (from its Go module) and a Python virtualenv once, cached.
set -euo pipefail
. "$(dirname "$0")/../lib.sh"
. "$ROOT/deploy/tests/tools.sh"
cd "$ROOT"
need_helm
need_deploy_python

CHART=deploy/helm/approvald
OUT="$(mktemp -d)"
trap 'rm -rf "$OUT"' EXIT
fail() { echo "FAIL: $*" >&2; exit 1; }

# Every Kubernetes version kubernetes-validate ships, from MIN_KUBE_VERSION on.
mapfile -t VERSIONS < <("$DEPLOY_PY" - "$MIN_KUBE_VERSION" <<'PY'
import os, re, sys, kubernetes_validate
lo = tuple(map(int, sys.argv[1].split(".")))
d = os.path.join(os.path.dirname(kubernetes_validate.__file__), "kubernetes-json-schema")
vs = {tuple(map(int, m.groups())) for m in (re.match(r"v(\d+)\.(\d+)\.0-local-strict$", n) for n in os.listdir(d)) if m}
print("\n".join(f"{a}.{b}" for a, b in sorted(v for v in vs if v >= lo)))
PY
)
[ "${#VERSIONS[@]}" -ge 2 ] || fail "kubernetes-validate ships no schemas from $MIN_KUBE_VERSION on"
NEWEST="${VERSIONS[-1]}"
log "Kubernetes versions: ${VERSIONS[*]}"

declare -A VALUES=([default]="" [production]=deploy/helm/examples/production.yaml [minimal]=deploy/helm/examples/minimal.yaml)
values_flags() { [ -n "${VALUES[$1]}" ] && echo "-f ${VALUES[$1]}" || true; }

log "helm lint --strict (default, production, minimal)"
for name in default production minimal; do
  # shellcheck disable=SC2046
  "$HELM" lint "$CHART" --strict --quiet --kube-version "$NEWEST.0" $(values_flags "$name") >"$OUT/lint.txt" 2>&1 \
    || { cat "$OUT/lint.txt" >&2; fail "helm lint ($name values)"; }
done

log "values.schema.json and the chart's own checks refuse wrong values"
refused=0
while IFS='|' read -r why flags; do
  # shellcheck disable=SC2086
  if render "$NEWEST.0" $flags >/dev/null 2>"$OUT/err.txt"; then
    fail "accepted: $why ($flags)"
  fi
  printf '  refused %s (%s): %s\n' "$why" "$flags" "$(grep -v -e '^$' -e 'Use --debug' "$OUT/err.txt" | tail -1 | cut -c1-160)" >&2
  refused=$((refused + 1))
done <<'CASES'
unknown top-level key|--set replicas=3
replicaCount not a number|--set replicaCount=three
replicaCount zero|--set replicaCount=0
unknown log format|--set config.logFormat=xml
duration without a unit|--set-string config.retention=7
digest not sha256|--set image.digest=latest
unknown preStop mode|--set preStop.mode=exec
no Redis at all|--set redis.existingSecret=
open port without auth nor the insecure flag|--set insecureAllowUnauthenticated=false
grace period shorter than pause + shutdown grace|--set terminationGracePeriodSeconds=12
CASES
echo "refused $refused wrong values, each with a message" >&2

log "helm template x kubernetes-validate --strict, ${#VERSIONS[@]} versions x 3 values files"
validated=0
for v in "${VERSIONS[@]}"; do
  for name in default production minimal; do
    file="$OUT/$name-$v.yaml"
    # shellcheck disable=SC2046
    render "$v.0" $(values_flags "$name") >"$file"
    "$DEPLOY_PY" -m kubernetes_validate --strict --quiet -k "$v.0" "$file" >"$OUT/kv.txt" 2>&1 \
      || { cat "$OUT/kv.txt" >&2; fail "kubernetes-validate $v ($name values)"; }
    # Objects without a schema are only warned about: allow the one CRD.
    if grep -v "kind ServiceMonitor with api version monitoring.coreos.com/v1" "$OUT/kv.txt" | grep -q .; then
      cat "$OUT/kv.txt" >&2; fail "kubernetes-validate $v ($name values) warned"
    fi
    validated=$((validated + 1))
  done
  # The pause before SIGTERM uses the `sleep` handler where the cluster has it.
  if [ "$(printf '%s\n' "$v" 1.30 | sort -V | head -1)" = 1.30 ]; then
    grep -q 'sleep:' "$OUT/default-$v.yaml" || fail "no preStop sleep for Kubernetes $v"
  else
    ! grep -q 'sleep:' "$OUT/default-$v.yaml" || fail "preStop sleep rendered for Kubernetes $v, which lacks it"
  fi
done
echo "validated $validated renderings" >&2

log "the auth seam: auth.enabled mounts the auth Secret and drops the insecure flag"
render "$NEWEST.0" --set auth.enabled=true --set-string auth.config='# auth configuration' >"$OUT/auth.yaml"
"$DEPLOY_PY" -m kubernetes_validate --strict --quiet -k "$NEWEST.0" "$OUT/auth.yaml" >&2 || fail "auth rendering does not validate"
grep -q 'APPROVALD_AUTH_CONFIG' "$OUT/auth.yaml" || fail "auth.enabled: no APPROVALD_AUTH_CONFIG"
! grep -q 'APPROVALD_INSECURE_ALLOW_UNAUTHENTICATED' "$OUT/auth.yaml" || fail "auth.enabled: still insecure"

log "deploy/kubernetes/approvald.yaml is what deploy/render.sh renders"
bash deploy/render.sh --stdout >"$OUT/approvald.yaml"
diff -u deploy/kubernetes/approvald.yaml "$OUT/approvald.yaml" >&2 \
  || fail "deploy/kubernetes/approvald.yaml is stale: run deploy/render.sh"
for v in "${VERSIONS[@]}"; do
  [ "$(printf '%s\n' "$v" "${MANIFEST_KUBE_VERSION%.0}" | sort -V | head -1)" = "${MANIFEST_KUBE_VERSION%.0}" ] || continue
  "$DEPLOY_PY" -m kubernetes_validate --strict --quiet -k "$v.0" deploy/kubernetes/approvald.yaml >&2 \
    || fail "deploy/kubernetes/approvald.yaml does not validate for Kubernetes $v"
done

log "checkov (deploy/checkov/*.yaml says why each skipped check does not apply)"
mkdir -p "$OUT/checkov-defaults" "$OUT/checkov-production"
cp deploy/kubernetes/approvald.yaml "$OUT/auth.yaml" "$OUT/default-$NEWEST.yaml" "$OUT/minimal-$NEWEST.yaml" "$OUT/minimal-1.28.yaml" "$OUT/checkov-defaults/"
cp "$OUT/production-$NEWEST.yaml" "$OUT/production-1.28.yaml" "$OUT/checkov-production/"
"$DEPLOY_PY" -m checkov.main --config-file deploy/checkov/defaults.yaml -d "$OUT/checkov-defaults" >&2 \
  || fail "checkov: default and minimal renderings"
"$DEPLOY_PY" -m checkov.main --config-file deploy/checkov/production.yaml -d "$OUT/checkov-production" >&2 \
  || fail "checkov: production rendering"
"$DEPLOY_PY" -m checkov.main --config-file deploy/checkov/dockerfile.yaml -f deploy/Dockerfile >&2 \
  || fail "checkov: deploy/Dockerfile"

log "deploy checks passed"
