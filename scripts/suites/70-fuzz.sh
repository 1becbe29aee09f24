#!/usr/bin/env bash
# Fuzzes the request validation layer briefly (cargo fuzz, nightly Rust).
# The same checks also run on stable in `cargo test`
# (api::fuzzing::tests); this adds coverage-guided exploration.
set -euo pipefail
. "$(dirname "$0")/../lib.sh"
cd "$ROOT/fuzz"

seconds="${APPROVALD_FUZZ_SECONDS:-30}"
if ! rustup run nightly rustc --version >/dev/null 2>&1; then
  log "installing the nightly toolchain (cargo fuzz needs it)"
  if ! rustup toolchain install nightly --profile minimal >/dev/null 2>&1; then
    echo "SKIPPED fuzzing: the nightly Rust toolchain cannot be installed on this machine" >&2
    exit 0
  fi
fi
if ! command -v cargo-fuzz >/dev/null 2>&1; then
  log "installing cargo-fuzz"
  cargo install cargo-fuzz --locked --quiet
fi
log "cargo fuzz run validate for ${seconds}s"
cargo +nightly fuzz run validate -- -max_total_time="$seconds" 2>&1 | tail -n 3
