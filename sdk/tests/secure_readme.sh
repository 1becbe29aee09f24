#!/usr/bin/env bash
# The README's "Secure setup end to end", step by step: two tokens, an
# auth.toml, approvald with --auth-config, a Python agent asking with
# ApprovalGate(..., token=BOT_TOKEN), a human (alice) approving with
# approvalctl, and the refusals the section shows. Run by
# scripts/suites/45-secure-readme.sh.
#
# The commands are the README's, but for: a free port instead of 50051 (and
# --metrics-listen on another), approvald and the agent started in the
# background, and the approval id read from `approvalctl -o json list`.
#
# Needs: APPROVALD_BIN and APPROVALCTL_BIN (built binaries), PYTHON (a Python
# with the SDK installed). Everything lives in a temporary folder, removed at
# exit with the processes this script started.
set -euo pipefail

: "${APPROVALD_BIN:?}" "${APPROVALCTL_BIN:?}" "${PYTHON:?}"
WORK="$(mktemp -d)"
PIDS=()
cleanup() {
  local pid
  for pid in "${PIDS[@]}"; do kill "$pid" 2>/dev/null || true; done
  for pid in "${PIDS[@]}"; do wait "$pid" 2>/dev/null || true; done
  rm -rf "$WORK"
}
trap cleanup EXIT
fail() {
  echo "secure_readme: $*" >&2
  for f in "$WORK"/*.log "$WORK"/*.out; do
    [ -f "$f" ] && { echo "--- $f" >&2; cat "$f" >&2; }
  done
  exit 1
}
step() { printf '\n--> %s\n' "$*" >&2; }

# The README calls them by name, as if installed.
BIN="$WORK/bin"
mkdir -p "$BIN"
ln -s "$APPROVALD_BIN" "$BIN/approvald"
ln -s "$APPROVALCTL_BIN" "$BIN/approvalctl"
export PATH="$BIN:$PATH"
cd "$WORK"

free_port() {
  "$PYTHON" -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1]); s.close()'
}
PORT="$(free_port)"
export APPROVAL_SERVER="http://127.0.0.1:$PORT"   # approvalctl's address
unset APPROVAL_TOKEN APPROVAL_RESPONDER
# approvalctl approve names the responder $USER by default (the server
# ignores it with authentication on, but approvalctl wants one); a login
# shell has USER, a container may not.
export USER="${USER:-$(id -un)}"

step "1. a token for each principal, and the authentication file"
umask 077
approvald new-token > bot.token
approvald new-token > alice.token
cat > auth.toml <<EOF
[[tokens]]
principal = "release-bot"
roles = ["requester"]
sha256 = "$(sed -n 's/^sha256: *//p' bot.token)"

[[tokens]]
principal = "alice"
roles = ["approver:deploy:*"]
sha256 = "$(sed -n 's/^sha256: *//p' alice.token)"
EOF
export BOT_TOKEN="$(sed -n 's/^token: *//p' bot.token)"
export ALICE_TOKEN="$(sed -n 's/^token: *//p' alice.token)"
[ -n "$BOT_TOKEN" ] && [ -n "$ALICE_TOKEN" ] || fail "approvald new-token printed no token"
grep -q "$BOT_TOKEN" auth.toml && fail "auth.toml holds a usable token"

step "2. approvald with authentication on (127.0.0.1:$PORT)"
approvald --auth-config auth.toml --listen "127.0.0.1:$PORT" \
  --metrics-listen "127.0.0.1:$(free_port)" > approvald.log 2>&1 &
PIDS+=($!)
for _ in $(seq 1 150); do
  grep -qs "approvald listening" approvald.log && break
  kill -0 "${PIDS[0]}" 2>/dev/null || fail "approvald exited"
  sleep 0.2
done
grep -q "approvald listening" approvald.log || fail "approvald did not start within 30 s"

step "3. the agent asks and waits (Python SDK, token=BOT_TOKEN)"
cat > agent.py <<'PY'
import os
from approvald import ApprovalGate

gate = ApprovalGate("127.0.0.1:50051", agent_id="release-bot", token=os.environ["BOT_TOKEN"])
approval = gate.request_approval("deploy:production", context={"version": "2.4.1"}, timeout=600)
print(f"approved={approval.approved} by {approval.responder}: {approval.reason}")
PY
sed -i "s/127.0.0.1:50051/127.0.0.1:$PORT/" agent.py
timeout 120 "$PYTHON" agent.py > agent.out 2> agent.log &
AGENT=$!
PIDS+=($AGENT)

step "4. alice sees the request and approves it with approvalctl"
export APPROVAL_TOKEN="$ALICE_TOKEN"
pending_id() {
  approvalctl -o json list --status pending --type 'deploy:*' |
    "$PYTHON" -c 'import json, sys; rows = json.load(sys.stdin); print(rows[0]["id"] if rows else "")'
}
ID=""
for _ in $(seq 1 150); do
  ID="$(pending_id)" || fail "approvalctl list failed"
  [ -n "$ID" ] && break
  sleep 0.2
done
[ -n "$ID" ] || fail "the agent's request never showed up as pending"
approvalctl list --status pending >&2
approvalctl -o json get "$ID" > pending.out
grep -q '"requester": "release-bot"' pending.out || fail "the requester is not the bot's principal"

step "5. what is refused"
# No token: UNAUTHENTICATED (exit code 8).
set +e
APPROVAL_TOKEN= approvalctl list > refused.out 2>&1; code=$?
set -e
[ "$code" = 8 ] && grep -q "no credentials" refused.out ||
  fail "a call without a token was not refused as UNAUTHENTICATED (exit $code)"
# The bot may not decide (its own) request: PERMISSION_DENIED (exit code 8).
set +e
APPROVAL_TOKEN="$BOT_TOKEN" approvalctl approve "$ID" > refused.out 2>&1; code=$?
set -e
[ "$code" = 8 ] && grep -q "permission denied" refused.out ||
  fail "the bot approving its own request was not refused as PERMISSION_DENIED (exit $code)"

approvalctl approve "$ID" --reason "release notes checked" >&2 || fail "alice could not approve"

step "the agent returns with alice's decision"
wait "$AGENT" || fail "the agent failed"
expected="approved=True by alice: release notes checked"
[ "$(cat agent.out)" = "$expected" ] || fail "the agent printed '$(cat agent.out)', not '$expected'"
approvalctl -o json get "$ID" > decided.out
grep -q '"requester": "release-bot"' decided.out && grep -q '"decided_by": "alice"' decided.out ||
  fail "the approval does not record release-bot as requester and alice as decider"
echo "secure setup end to end: OK" >&2
