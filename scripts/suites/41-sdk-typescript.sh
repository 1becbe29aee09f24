# The TypeScript SDK (sdk/typescript): npm ci, tsc, then node's test runner
# against live replicas on one Redis, over gRPC (Node) and gRPC-Web.
set -euo pipefail
. "$(dirname "$0")/../lib.sh"
. "$ROOT/sdk/tests/cluster.sh"

# The auth tests make TLS certificates with openssl.
command -v openssl >/dev/null || need_apt openssl

command -v npm >/dev/null || { echo "npm is missing: install Node 20" >&2; exit 1; }
cd "$ROOT/sdk/typescript"
if ! cmp -s package-lock.json node_modules/.installed-lock.json; then
  log "npm ci (sdk/typescript)"
  npm ci --no-audit --no-fund --silent
  cp package-lock.json node_modules/.installed-lock.json
fi
log "tsc (sdk/typescript)"
npm run --silent build
start_cluster
start_traced_replica
cd "$ROOT/sdk/typescript"
node --test --test-concurrency=1 lib/test/*.test.js
