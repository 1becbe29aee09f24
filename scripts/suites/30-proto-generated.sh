# The API guard: the committed SDK code is exactly what buf.gen.yaml generates
# from proto/ today, and proto/ makes no breaking change against the released
# baseline image (proto/baseline.binpb, made with `buf build -o`).
set -euo pipefail
. "$(dirname "$0")/../lib.sh"
cd "$ROOT"

out="$(mktemp -d)"
trap 'rm -rf "$out"' EXIT
log "regenerating the SDK code into $out"
scripts/generate "$out"
status=0
for dir in sdk/python/src/approval sdk/typescript/src/gen sdk/go/approval; do
  if ! diff -r -x __pycache__ "$out/$dir" "$dir"; then
    echo "FAILED: $dir differs from what scripts/generate produces; run scripts/generate and commit" >&2
    status=1
  fi
done
[ $status -eq 0 ] || exit 1
echo "generated code is up to date"

log "buf breaking against proto/baseline.binpb"
tools/node_modules/.bin/buf breaking --against proto/baseline.binpb
echo "no breaking change"
