# Shared helpers for scripts/test and the suites in scripts/suites/.
# Source it: `. "$(dirname "$0")/lib.sh"`.

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
export ROOT

log() { printf '\n==> %s\n' "$*" >&2; }

# Installs Debian packages that are missing (root on a fresh machine), or
# says exactly what to run.
need_apt() {
  local missing=()
  for pkg in "$@"; do
    dpkg -s "$pkg" >/dev/null 2>&1 || missing+=("$pkg")
  done
  [ ${#missing[@]} -eq 0 ] && return 0
  if [ "$(id -u)" = 0 ]; then
    log "installing ${missing[*]}"
    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >/dev/null
  elif command -v sudo >/dev/null; then
    sudo apt-get update -qq && sudo DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >/dev/null
  else
    echo "missing packages: ${missing[*]}; install them with: apt-get install -y ${missing[*]}" >&2
    return 1
  fi
}

# redis-server on PATH (the Rust tests start their own on free ports).
need_redis() {
  command -v redis-server >/dev/null 2>&1 || need_apt redis-server
  # The Redis Cluster fixture runs `redis-cli --cluster create`.
  command -v redis-cli >/dev/null 2>&1 || need_apt redis-tools
}

# Builds approvald (debug) and exports APPROVALD_BIN for the suites.
build_approvald() {
  (cd "$ROOT" && cargo build --locked -q -p approvald --bin approvald)
  export APPROVALD_BIN="$ROOT/target/debug/approvald"
}

# The pinned build tooling in tools/ (buf, protoc-gen-es), installed once
# per pin: each install leaves a copy of the lock it installed, and a changed
# pin reinstalls. Then `$ROOT/tools/node_modules/.bin/buf` is there.
need_node_tools() {
  local tools="$ROOT/tools"
  if ! cmp -s "$tools/package-lock.json" "$tools/node_modules/.installed-lock.json"; then
    log "installing buf and protoc-gen-es (npm ci in tools/)"
    (cd "$tools" && npm ci --no-audit --no-fund --silent)
    cp "$tools/package-lock.json" "$tools/node_modules/.installed-lock.json"
  fi
}
