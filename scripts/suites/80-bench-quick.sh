# The benchmark (bench/) in --quick mode: every scenario end to end with tiny
# counts, against a debug approvald, so the bench never rots. It checks that
# the bench runs, not how fast anything is (BENCHMARKS.md comes from a full
# release run: cargo run --release -p approvald-bench -- --report).
# The reference design (attune-ai from PyPI, in a venv under target/) runs
# when it can be installed; if not, the bench says why and skips it.
set -euo pipefail
. "$(dirname "$0")/../lib.sh"
cd "$ROOT"

need_redis
python3 -c 'import ensurepip' 2>/dev/null || need_apt python3-venv || true
[ -n "${APPROVALD_BIN:-}" ] || build_approvald

log "approvald-bench --quick"
cargo run --locked -q -p approvald-bench -- --quick --approvald "$APPROVALD_BIN"
