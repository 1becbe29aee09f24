# The Python SDK (sdk/python): installed from its folder into a virtualenv,
# then its pytest suite (including the README's examples) against live
# replicas on one Redis.
set -euo pipefail
. "$(dirname "$0")/../lib.sh"
. "$ROOT/sdk/tests/cluster.sh"

# The auth tests make TLS certificates with openssl.
command -v openssl >/dev/null || need_apt openssl

python3 -c 'import ensurepip' 2>/dev/null || need_apt python3-venv
venv="$ROOT/sdk/python/.venv"
[ -x "$venv/bin/python" ] || python3 -m venv "$venv"
log "pip install sdk/python[test]"
"$venv/bin/pip" install -q --upgrade "$ROOT/sdk/python[test]"
# The reference for tests/test_attune_differential.py: attune-ai's own
# ApprovalGate, on a Redis of the test's own (pinned: the README's
# "Switching from attune-ai" describes this version).
log "pip install attune-ai==16.4.0 (the differential test's reference)"
"$venv/bin/pip" install -q "attune-ai==16.4.0" "redis==8.1.0"

start_cluster
start_traced_replica
cd "$ROOT/sdk/python"
"$venv/bin/python" -m pytest -q -p no:cacheprovider "$@"
