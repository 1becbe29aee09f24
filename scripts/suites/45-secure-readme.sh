# The README's "Secure setup end to end" (sdk/tests/secure_readme.sh): two
# tokens, approvald with --auth-config, a Python agent with a token, alice
# approving with approvalctl, and the refusals. Loopback only, in a temporary
# folder, bounded to five minutes.
set -euo pipefail
. "$(dirname "$0")/../lib.sh"

[ -n "${APPROVALD_BIN:-}" ] || build_approvald
if [ -z "${APPROVALCTL_BIN:-}" ]; then
  (cd "$ROOT" && cargo build --locked -q -p approval-client --bin approvalctl)
  APPROVALCTL_BIN="$ROOT/target/debug/approvalctl"
fi
export APPROVALD_BIN APPROVALCTL_BIN

# The Python SDK, in the virtualenv the Python suite uses.
python3 -c 'import ensurepip' 2>/dev/null || need_apt python3-venv
venv="$ROOT/sdk/python/.venv"
[ -x "$venv/bin/python" ] || python3 -m venv "$venv"
log "pip install sdk/python"
"$venv/bin/pip" install -q --upgrade "$ROOT/sdk/python"
export PYTHON="$venv/bin/python"

log "secure setup end to end (sdk/tests/secure_readme.sh)"
timeout 300 bash "$ROOT/sdk/tests/secure_readme.sh"
