#!/usr/bin/env bash
# Fuzzes memcache-wasm's response parser (client-wasm/fuzz, target `response`) for a
# number of seconds on nightly Rust, installing cargo-fuzz first if it is missing.
# Usage: scripts/fuzz.sh [SECONDS]   (default 60). Crashes land in client-wasm/fuzz/artifacts.
set -euo pipefail
cd "$(dirname "$0")/.."

SECONDS_TO_RUN=${1:-60}
case "$SECONDS_TO_RUN" in
  '' | *[!0-9]*) echo "usage: scripts/fuzz.sh [SECONDS]" >&2; exit 2 ;;
esac

if ! rustup toolchain list | grep -q '^nightly'; then
  echo "[fuzz] rustup toolchain install nightly"
  rustup toolchain install nightly --profile minimal
fi
if ! cargo fuzz --version >/dev/null 2>&1; then
  echo "[fuzz] cargo install cargo-fuzz (a few minutes, once)"
  cargo install -q cargo-fuzz
fi

# A target dir of its own: sanitizer builds on nightly share nothing with normal builds.
TARGET_DIR="${CARGO_TARGET_DIR:-$PWD/target}/fuzz"
cd client-wasm
mkdir -p fuzz/corpus/response
exec cargo +nightly fuzz run --target-dir "$TARGET_DIR" response -- \
  -max_total_time="$SECONDS_TO_RUN" -dict=fuzz/response.dict -max_len=4096
