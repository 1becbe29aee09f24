#!/usr/bin/env bash
# Fuzzes the request validation layer briefly (cargo fuzz, nightly Rust).
# The same checks also run on stable in `cargo test`
# (api::fuzzing::tests); this adds coverage-guided exploration.
# Fails when the nightly toolchain or cargo-fuzz cannot be installed.
# Skipping is an explicit opt-in: APPROVALD_SKIP_FUZZ=1 (./scripts/test
# then says so in its closing line).
set -euo pipefail
. "$(dirname "$0")/../lib.sh"
cd "$ROOT/fuzz"

if [ "${APPROVALD_SKIP_FUZZ:-}" = 1 ]; then
  echo "SKIPPED fuzzing: APPROVALD_SKIP_FUZZ=1" >&2
  exit 0
fi
seconds="${APPROVALD_FUZZ_SECONDS:-30}"
if ! rustup run nightly rustc --version >/dev/null 2>&1; then
  log "installing the nightly toolchain (cargo fuzz needs it)"
  if ! rustup toolchain install nightly --profile minimal >/dev/null; then
    echo "FAILED: the nightly Rust toolchain cannot be installed, so the validation layer cannot be fuzzed." >&2
    echo "To run every other test anyway, set APPROVALD_SKIP_FUZZ=1 (the closing line then reports it)." >&2
    exit 1
  fi
fi
if ! command -v cargo-fuzz >/dev/null 2>&1; then
  log "installing cargo-fuzz"
  cargo install cargo-fuzz --locked --quiet
fi
log "cargo fuzz run validate for ${seconds}s"
cargo +nightly fuzz run validate -- -max_total_time="$seconds" 2>&1 | tail -n 3
