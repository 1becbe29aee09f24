# The web inbox (ui/): the committed bundle in ui/dist (embedded in approvald)
# is exactly what the pinned esbuild builds from ui/src, then the browser
# tests: headless Chromium from Debian (never a browser download) driven by
# playwright-core, against two approvald replicas on one Redis and one on the
# memory store with authentication on.
set -euo pipefail
. "$(dirname "$0")/../lib.sh"

need_apt chromium
need_redis
command -v npm >/dev/null || { echo "npm is missing: install Node 20" >&2; exit 1; }

cd "$ROOT/ui"
if ! cmp -s package-lock.json node_modules/.installed-lock.json; then
  log "npm ci (ui)"
  npm ci --no-audit --no-fund --silent
  cp package-lock.json node_modules/.installed-lock.json
fi
log "ui/dist matches ui/src (npm run check)"
npm run --silent check

build_approvald
log "browser tests (ui/test)"
cd "$ROOT/ui"
CHROMIUM=/usr/bin/chromium npm test --silent
