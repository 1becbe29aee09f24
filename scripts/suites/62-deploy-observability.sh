#!/usr/bin/env bash
# Dashboards and alerts (issue 17): the alert rules
# (deploy/helm/approvald/files/approvald-rules.yaml) pass `promtool check
# rules` and their unit tests (`promtool test rules
# deploy/prometheus/approvald-rules.test.yaml`); the chart renders them as a
# PrometheusRule when prometheusRule.enabled (identical rules, checked again
# by promtool, and valid for kubernetes-validate apart from the CRD);
# deploy/grafana/approvald.json parses, every query is valid PromQL
# (promtool) and names only metrics a live approvald exports (scraped after
# making an approval expire). Details: deploy/tests/observability_check.py.
# promtool comes from Debian's prometheus package (extracted, not installed:
# no service is started), cached with the other deploy tools.
set -euo pipefail
. "$(dirname "$0")/../lib.sh"
. "$ROOT/deploy/tests/tools.sh"
cd "$ROOT"
need_helm
need_deploy_python
need_promtool
[ -n "${APPROVALD_BIN:-}" ] || build_approvald
if [ -z "${APPROVALCTL_BIN:-}" ]; then
  cargo build --locked -q -p approval-client --bin approvalctl
  APPROVALCTL_BIN="$ROOT/target/debug/approvalctl"
fi

OUT="$(mktemp -d)"
trap 'rm -rf "$OUT"' EXIT
fail() { echo "FAIL: $*" >&2; exit 1; }

log "promtool check rules + test rules (alerts)"
"$PROMTOOL" check rules deploy/helm/approvald/files/approvald-rules.yaml >&2 || fail "promtool check rules"
"$PROMTOOL" test rules deploy/prometheus/approvald-rules.test.yaml >&2 || fail "promtool test rules"

log "PrometheusRule: off by default, rendered and valid when on"
render "$MANIFEST_KUBE_VERSION" >"$OUT/default.yaml"
! grep -q 'kind: PrometheusRule' "$OUT/default.yaml" || fail "PrometheusRule rendered with default values"
render "$MANIFEST_KUBE_VERSION" --set prometheusRule.enabled=true \
  --set prometheusRule.runbookBaseUrl=https://example.invalid/tree/ --set prometheusRule.labels.release=kps \
  >"$OUT/rule.yaml"
"$DEPLOY_PY" -m kubernetes_validate --strict --quiet -k "$MANIFEST_KUBE_VERSION" "$OUT/rule.yaml" >"$OUT/kv.txt" 2>&1 \
  || { cat "$OUT/kv.txt" >&2; fail "rendering with prometheusRule.enabled does not validate"; }
if grep -v "kind PrometheusRule with api version monitoring.coreos.com/v1" "$OUT/kv.txt" | grep -q .; then
  cat "$OUT/kv.txt" >&2; fail "kubernetes-validate warned on more than the PrometheusRule CRD"
fi

log "dashboard and rules against a live approvald's /metrics"
"$DEPLOY_PY" deploy/tests/observability_check.py "$APPROVALD_BIN" "$APPROVALCTL_BIN" "$OUT/rule.yaml" "$OUT"
"$PROMTOOL" check rules "$OUT/rendered-rules.yaml" >&2 || fail "promtool check rules (rendered PrometheusRule)"
"$PROMTOOL" check rules "$OUT/dashboard-rules.yaml" >&2 || fail "promtool: a dashboard query is not valid PromQL"

log "observability checks passed"
