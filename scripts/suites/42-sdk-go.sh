# The Go SDK (sdk/go): go vet, then go test (including the README's example)
# against live replicas on one Redis.
set -euo pipefail
. "$(dirname "$0")/../lib.sh"
. "$ROOT/sdk/tests/cluster.sh"

# The auth tests make TLS certificates with openssl.
command -v openssl >/dev/null || need_apt openssl

command -v go >/dev/null || { echo "go is missing: install Go 1.26" >&2; exit 1; }
cd "$ROOT/sdk/go"
log "go vet ./... (sdk/go)"
go vet ./...
start_cluster
start_traced_replica
cd "$ROOT/sdk/go"
go test -count=1 "$@" ./...
