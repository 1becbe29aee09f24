"""Checks the Grafana dashboard and the alert rules against a live approvald.

    python observability_check.py APPROVALD_BIN APPROVALCTL_BIN RENDERED_RULE.yaml OUT_DIR

1. Starts approvald (in-memory store, loopback, free ports), makes one
   approval expire with `approvalctl request --timeout 1s` (so the
   per-outcome family has a sample), and scrapes its /metrics.
2. deploy/grafana/approvald.json parses, has unique panel ids, a datasource
   variable, and every panel's every target has an expr naming at least one
   approvald metric; every approvald_* name in the dashboard and in the rules
   is a sample name of the live scrape (no invented metric).
3. The PrometheusRule the chart renders (RENDERED_RULE.yaml, with
   prometheusRule.runbookBaseUrl=https://example.invalid/tree) holds exactly
   the rules of deploy/helm/approvald/files/approvald-rules.yaml, runbook
   links prefixed; each runbook anchor exists as a heading in deploy/README.md.
4. Writes OUT_DIR/dashboard-rules.yaml (every dashboard expr as a recording
   rule, variables substituted) and OUT_DIR/rendered-rules.yaml (the rendered
   spec) for `promtool check rules`, which checks their PromQL.
Exits non-zero with the reason on the first failure.
"""

import json
import os
import re
import subprocess
import sys
import tempfile
import time
import urllib.request

import yaml

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
DASHBOARD = os.path.join(ROOT, "deploy/grafana/approvald.json")
RULES = os.path.join(ROOT, "deploy/helm/approvald/files/approvald-rules.yaml")
README = os.path.join(ROOT, "deploy/README.md")
METRIC = re.compile(r"\b(approvald_[a-z_]+)\b")
BASE = "https://example.invalid/tree"


def fail(msg):
    print(f"FAIL: {msg}", file=sys.stderr)
    sys.exit(1)


def scrape(approvald, approvalctl):
    env = {"PATH": os.environ.get("PATH", ""), "APPROVALD_LOG_FORMAT": "json"}
    log = tempfile.TemporaryFile()
    proc = subprocess.Popen(
        [approvald, "--listen", "127.0.0.1:0", "--metrics-listen", "127.0.0.1:0",
         "--insecure-allow-unauthenticated"],
        stdout=log, stderr=subprocess.STDOUT, env=env)
    try:
        ports = None
        deadline = time.monotonic() + 60
        while ports is None and time.monotonic() < deadline:
            if proc.poll() is not None:
                log.seek(0)
                fail(f"approvald exited: {log.read().decode()}")
            log.seek(0)
            for line in log.read().decode().splitlines():
                try:
                    fields = json.loads(line).get("fields", {})
                except ValueError:
                    continue
                if fields.get("message") == "approvald listening":
                    ports = (fields["port"], fields["metrics_port"])
            time.sleep(0.1)
        if ports is None:
            fail("approvald did not say where it listens within 60 s")
        grpc_port, metrics_port = ports
        r = subprocess.run(
            [approvalctl, "--server", f"http://127.0.0.1:{grpc_port}", "request",
             "--type", "observability:check", "--timeout", "1s"],
            capture_output=True, timeout=60, env={"PATH": os.environ.get("PATH", "")})
        if r.returncode != 2:
            fail(f"approvalctl request --timeout 1s: exit {r.returncode}, not 2 (expired): {r.stderr.decode()}")
        with urllib.request.urlopen(f"http://127.0.0.1:{metrics_port}/metrics", timeout=10) as resp:
            text = resp.read().decode()
    finally:
        proc.terminate()
        proc.wait(timeout=30)
    names = {line.split("{")[0].split(" ")[0] for line in text.splitlines() if line and not line.startswith("#")}
    if 'approvald_approvals_finished_total{outcome="expired"} 1' not in text:
        fail(f"the expired approval is not counted in the scrape:\n{text}")
    return names


def main():
    approvald, approvalctl, rendered, out = sys.argv[1:5]
    live = scrape(approvald, approvalctl)
    print(f"live /metrics sample names: {' '.join(sorted(live))}", file=sys.stderr)

    dash = json.load(open(DASHBOARD))
    panels = dash.get("panels") or fail("dashboard has no panels")
    ids = [p["id"] for p in panels]
    if len(ids) != len(set(ids)):
        fail(f"duplicate panel ids: {ids}")
    variables = {v["name"]: v for v in dash["templating"]["list"]}
    if variables.get("datasource", {}).get("type") != "datasource":
        fail("no datasource variable")
    exprs = []
    for p in panels:
        if p["type"] == "row":
            continue
        if not p.get("targets"):
            fail(f"panel {p['title']!r} has no targets")
        if p["datasource"]["uid"] != "${datasource}":
            fail(f"panel {p['title']!r} does not use the datasource variable")
        for t in p["targets"]:
            e = t.get("expr") or fail(f"panel {p['title']!r} target {t.get('refId')} has no expr")
            if not METRIC.search(e):
                fail(f"panel {p['title']!r}: {e!r} names no approvald metric")
            exprs.append((p["title"], e))
    exprs += [(f"variable {v['name']}", v["definition"]) for v in variables.values() if v["type"] == "query"]

    rules = yaml.safe_load(open(RULES))
    rule_exprs = [(r["alert"], r["expr"]) for g in rules["groups"] for r in g["rules"]]
    unknown = [(where, m) for where, e in exprs + rule_exprs for m in METRIC.findall(e) if m not in live]
    if unknown:
        fail(f"names not in approvald's /metrics: {unknown}")
    print(f"ok: {len(exprs)} dashboard queries and {len(rule_exprs)} alert expressions name only live metrics", file=sys.stderr)

    # Every dashboard query's PromQL, as recording rules for promtool.
    def concrete(e):
        return e.replace("$namespace", ".*")
    recording = {"groups": [{"name": "dashboard", "rules": [
        {"record": f"dashboard:query_{i}", "expr": concrete(e)} for i, (_, e) in enumerate(exprs)
        if not e.startswith("label_values(")]}]}
    with open(os.path.join(out, "dashboard-rules.yaml"), "w") as f:
        yaml.safe_dump(recording, f)

    # The chart's PrometheusRule is the checked rule file, links prefixed.
    docs = [d for d in yaml.safe_load_all(open(rendered)) if d]
    [rule] = [d for d in docs if d["kind"] == "PrometheusRule"] or [None]
    if rule is None:
        fail("the rendering has no PrometheusRule")
    expected = json.loads(json.dumps(rules))
    for g in expected["groups"]:
        for r in g["rules"]:
            r["annotations"]["runbook_url"] = f"{BASE}/{r['annotations']['runbook_url']}"
    if rule["spec"] != expected:
        fail("the rendered PrometheusRule differs from files/approvald-rules.yaml")
    with open(os.path.join(out, "rendered-rules.yaml"), "w") as f:
        yaml.safe_dump(rule["spec"], f)

    # Every runbook link lands on a heading of deploy/README.md.
    anchors = set()
    for line in open(README):
        if line.startswith("#"):
            title = line.lstrip("#").strip().lower()
            anchors.add(re.sub(r"[^a-z0-9 _-]", "", title).replace(" ", "-"))
    for g in rules["groups"]:
        for r in g["rules"]:
            link = r["annotations"]["runbook_url"]
            if not link.startswith("deploy/README.md#") or link.split("#", 1)[1] not in anchors:
                fail(f"{r['alert']}: runbook link {link} is not a heading of deploy/README.md")
    print("ok: rendered PrometheusRule matches the rule file; every runbook link resolves", file=sys.stderr)


if __name__ == "__main__":
    main()
