# The cross-language test, against two approvald replicas on one Redis: a
# Python agent requests and blocks (sdk/python), a Go responder approves
# (sdk/go), a TypeScript watcher sees the approval added and resolved
# (sdk/typescript), and a Java reader gets the result by id (sdk/java). The
# participants are the small programs in sdk/tests/cross/.
set -euo pipefail
. "$(dirname "$0")/../lib.sh"
. "$ROOT/sdk/tests/cluster.sh"
CROSS="$ROOT/sdk/tests/cross"
BUILD="$CROSS/build"

# Each SDK installed as its own suite installs it (40, 41, 42, 43).
command -v go >/dev/null || { echo "go is missing: install Go 1.26" >&2; exit 1; }
command -v npm >/dev/null || { echo "npm is missing: install Node 20" >&2; exit 1; }
command -v javac >/dev/null || need_apt openjdk-17-jdk-headless
command -v mvn >/dev/null || need_apt maven
python3 -c 'import ensurepip' 2>/dev/null || need_apt python3-venv
venv="$ROOT/sdk/python/.venv"
[ -x "$venv/bin/python" ] || python3 -m venv "$venv"
log "pip install sdk/python"
"$venv/bin/pip" install -q --upgrade "$ROOT/sdk/python"
cd "$ROOT/sdk/typescript"
if ! cmp -s package-lock.json node_modules/.installed-lock.json; then
  log "npm ci (sdk/typescript)"
  npm ci --no-audit --no-fund --silent
  cp package-lock.json node_modules/.installed-lock.json
fi
log "tsc (sdk/typescript)"
npm run --silent build

log "building the participants (sdk/tests/cross/build)"
rm -rf "$BUILD"
mkdir -p "$BUILD" "$CROSS/node_modules/@approvald"
# The watcher imports the TypeScript SDK by its package name, as users do.
ln -sfn "$ROOT/sdk/typescript" "$CROSS/node_modules/@approvald/client"
"$ROOT/sdk/typescript/node_modules/.bin/tsc" --strict --target ES2022 --module NodeNext \
  --moduleResolution NodeNext --skipLibCheck --types node \
  --typeRoots "$ROOT/sdk/typescript/node_modules/@types" --outDir "$BUILD" "$CROSS/watcher.mts"
(cd "$CROSS/responder" && go vet ./... && go build -o "$BUILD/responder" .)
(cd "$ROOT/sdk/java" && mvn -B -q -ntp -DskipTests package dependency:build-classpath \
  -Dmdep.includeScope=runtime -Dmdep.outputFile="$BUILD/java.classpath")
java_classpath="$ROOT/sdk/java/target/classes:$(cat "$BUILD/java.classpath")"

start_cluster
PARTICIPANTS=()
stop_all() {
  local pid
  for pid in "${PARTICIPANTS[@]}"; do kill "$pid" 2>/dev/null || true; done
  stop_cluster
}
trap stop_all EXIT
out="$(mktemp -d "$CLUSTER_DIR/cross.XXXX")"
kind="cross.$RANDOM$RANDOM"
responder="go-responder-$RANDOM"

# fail WHAT: says what went wrong, with every participant's output.
fail() {
  echo "FAILED: $*" >&2
  for f in "$out"/*; do echo "--- $(basename "$f"):" >&2; cat "$f" >&2; done
  exit 1
}

# wait_for_line FILE PATTERN: until FILE has a line matching PATTERN (30 s at most).
wait_for_line() {
  local i
  for i in $(seq 1 300); do
    grep -qE "$2" "$1" 2>/dev/null && return 0
    sleep 0.1
  done
  return 1
}

log "TypeScript watcher on $APPROVALD_ADDR_B"
timeout 120 node "$BUILD/watcher.mjs" "http://$APPROVALD_ADDR_B" "$kind" >"$out/watcher" 2>&1 &
watcher=$!
PARTICIPANTS+=("$watcher")
wait_for_line "$out/watcher" '^synced$' || fail "the watcher did not sync"

log "Python agent on $APPROVALD_ADDR_A requests $kind and blocks"
timeout 120 "$venv/bin/python" "$CROSS/agent.py" "$APPROVALD_ADDR_A" "$kind" >"$out/agent" 2>&1 &
agent=$!
PARTICIPANTS+=("$agent")
wait_for_line "$out/watcher" '^added ' || fail "the watcher did not see the approval added"
kill -0 "$agent" 2>/dev/null || fail "the agent returned before a decision"

log "Go responder on $APPROVALD_ADDR_B approves"
id="$(timeout 60 "$BUILD/responder" "$APPROVALD_ADDR_B" "$kind" "$responder" 2>"$out/responder")" ||
  fail "the responder failed"

log "the agent returns approved"
wait "$agent" || fail "the agent did not return approved (exit $?)"
[ "$(cat "$out/agent")" = "$id APPROVED $responder" ] ||
  fail "the agent printed '$(cat "$out/agent")', not '$id APPROVED $responder'"

log "the watcher saw the approval added and resolved"
wait "$watcher" || fail "the watcher failed (exit $?)"
grep -qx "added $id" "$out/watcher" || fail "the watcher did not see $id added"
grep -qx "resolved $id APPROVED $responder" "$out/watcher" ||
  fail "the watcher did not see $id resolved as APPROVED by $responder"

log "Java reader on $APPROVALD_ADDR_A reads $id"
read_back="$(timeout 60 java -cp "$java_classpath" "$CROSS/Reader.java" "$APPROVALD_ADDR_A" "$id" 2>"$out/reader")" ||
  fail "the reader failed"
[ "$read_back" = "APPROVED $responder" ] || fail "the reader read '$read_back', not 'APPROVED $responder'"

echo "cross-language: 1 passed, 0 failed"
