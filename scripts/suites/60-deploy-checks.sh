#!/usr/bin/env bash
# Deploy checks (issues 6, 13, 16): the Helm chart lints, its values schema
# and its own checks refuse wrong values, it renders with the default values
# and with the examples (deploy/helm/examples: production, minimal, policies,
# and webhooks and redis-cluster layered over production) for every Kubernetes version
# from 1.28 to the newest kubernetes-validate ships, each rendering passes
# `kubernetes-validate --strict` for its version and checkov (skips justified
# in deploy/checkov/), deploy/Dockerfile passes checkov's static checks (it
# cannot be built here: no Docker engine), and deploy/kubernetes/approvald.yaml
# is up to date. The security values (auth on by default, TLS with a plaintext
# health port for the probes, mutual TLS, secrets as mounted files), the
# configuration file (policies with auth off, webhooks and their secrets, the
# older auth.* values) and the Redis Cluster values are checked in the
# renderings too.
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

# Each values set: the -f flags that make it.
EX=deploy/helm/examples
NAMES=(default production minimal policies webhooks redis-cluster)
declare -A VALUES=([default]="" [production]="-f $EX/production.yaml" [minimal]="-f $EX/minimal.yaml"
  [policies]="-f $EX/policies.yaml" [webhooks]="-f $EX/production.yaml -f $EX/webhooks.yaml"
  [redis-cluster]="-f $EX/production.yaml -f $EX/redis-cluster.yaml")
values_flags() { echo "${VALUES[$1]}"; }

log "helm lint --strict (${NAMES[*]})"
for name in "${NAMES[@]}"; do
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
open port without auth nor the insecure flag|--set auth.enabled=false
auth without a Secret nor inline config|--set auth.existingSecret=
TLS without its Secret|--set tls.enabled=true
mutual TLS without TLS|--set tls.clientCASecret=approvald-client-ca
health port on the gRPC port|--set tls.enabled=true --set tls.existingSecret=approvald-tls --set ports.health=50051
negative rate limit|--set config.rateLimit=-1
unknown tls key|--set tls.cert=server.pem
grace period shorter than pause + shutdown grace|--set terminationGracePeriodSeconds=12
any-origin CORS without auth|-f deploy/helm/examples/minimal.yaml --set config.corsOrigins=*
two configuration files: configFile inline and existingSecret|-f deploy/helm/examples/policies.yaml --set configFile.existingSecret=approvald-config
two configuration files: configFile and auth.config|--set configFile.existingSecret=approvald-config --set-string auth.config=#x
inline configuration file not TOML|-f deploy/helm/examples/policies.yaml --set-file configFile.inline=deploy/tests/config/broken.toml
policies-only file with auth.enabled (approvald would run without auth)|-f deploy/helm/examples/policies.yaml --set auth.enabled=true
file with [[tokens]] and auth.enabled=false (approvald would turn auth on)|-f deploy/helm/examples/policies.yaml --set-file configFile.inline=deploy/tests/config/tokens.toml
webhooks while egress lets none out|--set webhooks.secrets[0].name=bot --set webhooks.secrets[0].existingSecret=approvald-webhook-bot --set webhooks.secrets[0].key=whsec
webhooks in the inline file while egress lets none out|-f deploy/helm/examples/policies.yaml --set-file configFile.inline=deploy/tests/config/webhook-slack.toml
webhook secret_file the chart does not mount|-f deploy/helm/examples/policies.yaml --set-file configFile.inline=deploy/tests/config/webhook-unmounted.toml --set networkPolicy.egress.webhookPorts={443}
webhook secret name given twice|--set webhooks.secrets[0].name=bot --set webhooks.secrets[0].existingSecret=a --set webhooks.secrets[0].key=k --set webhooks.secrets[1].name=bot --set webhooks.secrets[1].existingSecret=b --set webhooks.secrets[1].key=k --set networkPolicy.egress.webhookPorts={443}
webhook secret name not a DNS label|--set webhooks.secrets[0].name=Bot_1 --set webhooks.secrets[0].existingSecret=a --set webhooks.secrets[0].key=k --set networkPolicy.egress.webhookPorts={443}
configuration file mounted on the webhooks folder|--set configFile.existingSecret=approvald-config --set configFile.mountPath=/etc/approvald/webhooks
CASES
echo "refused $refused wrong values, each with a message" >&2

log "helm template x kubernetes-validate --strict, ${#VERSIONS[@]} versions x ${#NAMES[@]} values sets"
validated=0
for v in "${VERSIONS[@]}"; do
  for name in "${NAMES[@]}"; do
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

# `pod FILE EXPR` prints the Python expression EXPR evaluated on the approvald
# container `c`, its pod `spec`, the rendered documents `docs` and shorthands:
# `env` (the container's env values), `cm` (its ConfigMap's data), `svc` (the
# approvald Service), `probe_ports` (the three probes' ports), `secret_volumes`
# (volume -> Secret), `mounts` (volume -> mountPath), `secrets` (the rendered
# Secrets' data), `np` (approvald's NetworkPolicy).
pod() {
  "$DEPLOY_PY" - "$@" <<'PY'
import base64, sys, yaml
docs = [d for d in yaml.safe_load_all(open(sys.argv[1])) if d]
[dep] = [d for d in docs if d["kind"] == "Deployment"]
spec = dep["spec"]["template"]["spec"]
[c] = [x for x in spec["containers"] if x["name"] == "approvald"]
ns = {
    "c": c, "spec": spec, "docs": docs, "dep": dep,
    "env": {e["name"]: e.get("value") for e in c.get("env", [])},
    "cm": next(d for d in docs if d["kind"] == "ConfigMap" and "APPROVALD_LISTEN" in d.get("data", {}))["data"],
    "svc": next(d for d in docs if d["kind"] == "Service" and d["metadata"]["name"] == dep["metadata"]["name"]),
    "probe_ports": {c[k]["grpc"]["port"] for k in ("startupProbe", "readinessProbe", "livenessProbe")},
    "secret_volumes": {v["name"]: v["secret"]["secretName"] for v in spec.get("volumes", []) if "secret" in v},
    "mounts": {m["name"]: m["mountPath"] for m in c.get("volumeMounts", [])},
    "secrets": {d["metadata"]["name"]: {k: base64.b64decode(v).decode() for k, v in (d.get("data") or {}).items()}
                for d in docs if d["kind"] == "Secret"},
    "np": next((d for d in docs if d["kind"] == "NetworkPolicy" and d["metadata"]["name"] == dep["metadata"]["name"]), None),
}
print(eval(sys.argv[2], ns))
PY
}
expect() { # expect FILE WHAT EXPR: EXPR must be True
  [ "$(pod "$1" "$3")" = True ] || fail "$(basename "$1"): $2"
  echo "  ok: $(basename "$1"): $2" >&2
}

log "security values: defaults (auth on), inline auth.config, TLS, mutual TLS, evaluation"
D="$OUT/default-$NEWEST.yaml" P="$OUT/production-$NEWEST.yaml" M="$OUT/minimal-$NEWEST.yaml"
expect "$D" "auth on by default, auth.toml from Secret approvald-auth, no insecure flag" \
  "env.get('APPROVALD_AUTH_CONFIG') == '/etc/approvald/auth/auth.toml' and secret_volumes.get('auth') == 'approvald-auth' and 'APPROVALD_INSECURE_ALLOW_UNAUTHENTICATED' not in cm"
expect "$D" "no secret in the environment: the Redis URL is a mounted file; every mount read-only" \
  "env.get('APPROVALD_REDIS_URL_FILE') == '/etc/approvald/redis/url' and secret_volumes.get('redis-url') == 'approvald-redis' and not any('valueFrom' in e for e in c['env']) and all(m.get('readOnly') for m in c['volumeMounts'])"
expect "$D" "no TLS: probes on the gRPC port, no health port, appProtocol grpc" \
  "probe_ports == {50051} and 'APPROVALD_HEALTH_LISTEN' not in cm and 'APPROVALD_TLS_CERT_FILE' not in env and svc['spec']['ports'][0]['appProtocol'] == 'grpc'"
expect "$D" "the limits are in the ConfigMap" \
  "all(k in cm for k in ('APPROVALD_RATE_LIMIT', 'APPROVALD_RATE_LIMIT_BURST', 'APPROVALD_MAX_OPEN_PER_REQUESTER', 'APPROVALD_MAX_WATCHERS_PER_PRINCIPAL', 'APPROVALD_MAX_CONNECTIONS'))"
expect "$M" "evaluation values: insecure flag explicit, no auth, bundled Redis URL (no password) as a value" \
  "cm.get('APPROVALD_INSECURE_ALLOW_UNAUTHENTICATED') == 'true' and 'APPROVALD_AUTH_CONFIG' not in env and env.get('APPROVALD_REDIS_URL', '').startswith('redis://')"
expect "$P" "production: auth from Secret, TLS from Secret approvald-tls, probes on the plaintext health port 8081" \
  "probe_ports == {8081} and cm['APPROVALD_HEALTH_LISTEN'] == '0.0.0.0:8081' and env['APPROVALD_TLS_CERT_FILE'] == '/etc/approvald/tls/tls.crt' and env['APPROVALD_TLS_KEY_FILE'] == '/etc/approvald/tls/tls.key' and secret_volumes.get('tls') == 'approvald-tls' and secret_volumes.get('auth') == 'approvald-auth' and {'name': 'health', 'containerPort': 8081, 'protocol': 'TCP'} in c['ports']"
expect "$P" "production: gRPC Service port appProtocol https, the NetworkPolicy opens the health port" \
  "svc['spec']['ports'][0]['appProtocol'] == 'https' and any(r['ports'][0]['port'] == 'health' for r in next(d for d in docs if d['kind'] == 'NetworkPolicy')['spec']['ingress'])"

render "$NEWEST.0" --set-string auth.config='# auth configuration' >"$OUT/auth.yaml"
render "$NEWEST.0" -f deploy/helm/examples/production.yaml --set tls.clientCASecret=approvald-client-ca >"$OUT/mtls.yaml"
for f in auth mtls; do
  "$DEPLOY_PY" -m kubernetes_validate --strict --quiet -k "$NEWEST.0" "$OUT/$f.yaml" >"$OUT/kv.txt" 2>&1 \
    || { cat "$OUT/kv.txt" >&2; fail "$f rendering does not validate"; }
  grep -v "kind ServiceMonitor with api version monitoring.coreos.com/v1" "$OUT/kv.txt" >&2 || true
done
expect "$OUT/auth.yaml" "inline auth.config: the chart's own Secret, mounted; its checksum rolls the pods" \
  "secret_volumes.get('auth') == 'approvald-auth' and any(d['kind'] == 'Secret' and d['metadata']['name'] == 'approvald-auth' for d in docs) and 'checksum/auth' in dep['spec']['template']['metadata']['annotations']"
expect "$OUT/mtls.yaml" "mutual TLS: client CA mounted read-only, APPROVALD_TLS_CLIENT_CA_FILE" \
  "env.get('APPROVALD_TLS_CLIENT_CA_FILE') == '/etc/approvald/client-ca/ca.crt' and secret_volumes.get('client-ca') == 'approvald-client-ca'"

log "the configuration file (policies, webhooks), the older auth.* values, Redis Cluster"
W="$OUT/webhooks-$NEWEST.yaml" C="$OUT/redis-cluster-$NEWEST.yaml" PO="$OUT/policies-$NEWEST.yaml"
expect "$PO" "policies-only file, auth off: APPROVALD_CONFIG, the inline file in the chart's Secret, no auth file, insecure flag explicit, no any-origin CORS" \
  "env.get('APPROVALD_CONFIG') == '/etc/approvald/config/config.toml' and secret_volumes.get('config') == 'approvald-config' and '[[policies]]' in secrets['approvald-config']['config.toml'] and 'APPROVALD_AUTH_CONFIG' not in env and 'auth' not in secret_volumes and cm.get('APPROVALD_INSECURE_ALLOW_UNAUTHENTICATED') == 'true' and 'APPROVALD_CORS_ORIGINS' not in cm and all(m.get('readOnly') for m in c['volumeMounts'])"
expect "$PO" "a policy edit reaches the pods by approvald's reload, not a rollout (no checksum of the file)" \
  "not any(k.startswith('checksum/') and k != 'checksum/config' for k in dep['spec']['template']['metadata']['annotations'])"
expect "$W" "webhooks over production: the file from Secret approvald-config (auth.existingSecret unused), auth on, the webhook secret read-only at /etc/approvald/webhooks/release-bot" \
  "env.get('APPROVALD_CONFIG') == '/etc/approvald/config/config.toml' and secret_volumes.get('config') == 'approvald-config' and 'auth' not in secret_volumes and 'APPROVALD_AUTH_CONFIG' not in env and 'APPROVALD_INSECURE_ALLOW_UNAUTHENTICATED' not in cm and secret_volumes.get('webhook-release-bot') == 'approvald-webhook-release-bot' and mounts['webhook-release-bot'] == '/etc/approvald/webhooks/release-bot' and all(m.get('readOnly') for m in c['volumeMounts'])"
expect "$W" "webhooks: egress to the receivers on 443 (internet, not private ranges) beside DNS and Redis" \
  "len(np['spec']['egress']) == 3 and np['spec']['egress'][2]['ports'] == [{'port': 443, 'protocol': 'TCP'}] and np['spec']['egress'][2]['to'][0]['ipBlock']['cidr'] == '0.0.0.0/0' and '10.0.0.0/8' in np['spec']['egress'][2]['to'][0]['ipBlock']['except']"
expect "$D" "defaults: no webhook egress; the older auth.* values unchanged (APPROVALD_AUTH_CONFIG, no configuration-file volume); one partition (no APPROVALD_REDIS_PARTITIONS)" \
  "len(np['spec']['egress']) == 2 and 'config' not in secret_volumes and 'APPROVALD_CONFIG' not in env and 'APPROVALD_REDIS_PARTITIONS' not in cm"
expect "$C" "Redis Cluster: URL from Secret approvald-redis as a file, WAIT for 1 replica within 500ms (under the 1s Redis timeout), three partitions, egress to the cluster's pods on the client port only (no bus port)" \
  "env.get('APPROVALD_REDIS_URL_FILE') == '/etc/approvald/redis/url' and secret_volumes.get('redis-url') == 'approvald-redis' and cm['APPROVALD_REDIS_PARTITIONS'] == '3' and cm['APPROVALD_REDIS_WAIT_REPLICAS'] == '1' and cm['APPROVALD_REDIS_WAIT_TIMEOUT'] == '500ms' and cm['APPROVALD_REDIS_TIMEOUT'] == '1s' and [r['ports'] for r in np['spec']['egress'] if r.get('to')] == [[{'port': 6379, 'protocol': 'TCP'}]] and np['spec']['egress'][1]['to'][0]['podSelector']['matchLabels'] == {'app.kubernetes.io/name': 'redis-cluster'}"

render "$NEWEST.0" --set-file configFile.inline=deploy/tests/config/webhooks.toml \
  --set 'webhooks.secrets[0].name=release-bot' --set 'webhooks.secrets[0].existingSecret=approvald-webhook-release-bot' --set 'webhooks.secrets[0].key=whsec' \
  --set 'webhooks.secrets[1].name=ops' --set 'webhooks.secrets[1].existingSecret=approvald-webhook-ops' --set 'webhooks.secrets[1].key=whsec' \
  --set 'networkPolicy.egress.webhookPorts={443}' >"$OUT/inline-webhooks.yaml"
"$DEPLOY_PY" -m kubernetes_validate --strict --quiet -k "$NEWEST.0" "$OUT/inline-webhooks.yaml" >"$OUT/kv.txt" 2>&1 \
  || { cat "$OUT/kv.txt" >&2; fail "inline-webhooks rendering does not validate"; }
expect "$OUT/inline-webhooks.yaml" "inline file with [[tokens]] and webhooks (absolute and relative secret_file) on mounted secrets: auth on, each secret in its folder, any-port-443 egress" \
  "secret_volumes.get('config') == 'approvald-config' and 'APPROVALD_INSECURE_ALLOW_UNAUTHENTICATED' not in cm and mounts['webhook-release-bot'] == '/etc/approvald/webhooks/release-bot' and mounts['webhook-ops'] == '/etc/approvald/webhooks/ops' and np['spec']['egress'][2] == {'ports': [{'port': 443, 'protocol': 'TCP'}]}"
render "$NEWEST.0" --set auth.existingSecret=my-auth --set auth.secretKey=approvald.toml --set auth.mountPath=/etc/approvald/custom >"$OUT/legacy-auth.yaml"
expect "$OUT/legacy-auth.yaml" "upgrade path: auth.existingSecret / secretKey / mountPath still make the configuration file" \
  "env.get('APPROVALD_AUTH_CONFIG') == '/etc/approvald/custom/approvald.toml' and secret_volumes.get('auth') == 'my-auth' and mounts['auth'] == '/etc/approvald/custom'"

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
cp deploy/kubernetes/approvald.yaml "$OUT/auth.yaml" "$OUT/default-$NEWEST.yaml" "$OUT/minimal-$NEWEST.yaml" "$OUT/minimal-1.28.yaml" \
  "$OUT/policies-$NEWEST.yaml" "$OUT/inline-webhooks.yaml" "$OUT/checkov-defaults/"
cp "$OUT/production-$NEWEST.yaml" "$OUT/production-1.28.yaml" "$OUT/mtls.yaml" "$OUT/webhooks-$NEWEST.yaml" \
  "$OUT/redis-cluster-$NEWEST.yaml" "$OUT/checkov-production/"
"$DEPLOY_PY" -m checkov.main --config-file deploy/checkov/defaults.yaml -d "$OUT/checkov-defaults" >&2 \
  || fail "checkov: default and minimal renderings"
"$DEPLOY_PY" -m checkov.main --config-file deploy/checkov/production.yaml -d "$OUT/checkov-production" >&2 \
  || fail "checkov: production rendering"
"$DEPLOY_PY" -m checkov.main --config-file deploy/checkov/dockerfile.yaml -f deploy/Dockerfile >&2 \
  || fail "checkov: deploy/Dockerfile"

log "deploy checks passed"
