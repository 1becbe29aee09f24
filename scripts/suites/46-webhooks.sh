# Webhook signatures as receivers check them: the Rust end-to-end test that
# sends real webhooks hands what its receiver got to Python's
# `standardwebhooks` library (the Standard Webhooks reference), which must
# verify every message and refuse a tampered one.
set -euo pipefail
. "$(dirname "$0")/../lib.sh"
cd "$ROOT"

python3 -c 'import ensurepip' 2>/dev/null || need_apt python3-venv
venv="$ROOT/target/webhooks-venv"
[ -x "$venv/bin/python" ] || python3 -m venv "$venv"
log "pip install standardwebhooks (target/webhooks-venv)"
"$venv/bin/pip" install -q -r tests/webhooks-requirements.txt
log "cargo test: webhook signatures verified by Python's standardwebhooks"
APPROVALD_WEBHOOK_PYTHON="$venv/bin/python" cargo test --locked -p approval-tests --test webhooks \
  -- --ignored --exact signatures_verify_with_pythons_standard_webhooks_library
