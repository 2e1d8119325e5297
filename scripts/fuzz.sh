#!/usr/bin/env bash
# Fuzzes the parsers that read bytes from the other side, each for SECONDS on nightly Rust:
#   response  memcache-wasm's response parser (client-wasm/fuzz)
#   scanner   memcache-bridge's command scanner (bridge/fuzz)
#   frames    memcache-bridge's WebSocket frame reader (bridge/fuzz)
#   meta      memcache-wasm's meta protocol reply parser (client-wasm/fuzz)
# Usage: scripts/fuzz.sh [SECONDS] [TARGET...]   (default 60 s; every target)
#
# Seeds are kept in the repository (<crate>/fuzz/seeds/TARGET, small); what libFuzzer finds
# grows a working corpus under target/fuzz/corpus, so runs keep their progress on a machine
# and leave the tree clean. The stage fails only on a finding (a crash, a hang over 60 s
# for one input, running out of memory): the input is then written under
# target/fuzz/artifacts/TARGET and named in the output. A nightly toolchain or cargo-fuzz
# that cannot be installed, or a nightly that cannot build, is reported and skipped
# (FUZZ_REQUIRED=1 makes those failures too).
set -uo pipefail
cd "$(dirname "$0")/.."
ROOT=$(pwd)

SECONDS_TO_RUN=${1:-60}
case "$SECONDS_TO_RUN" in
  '' | *[!0-9]*) echo "usage: scripts/fuzz.sh [SECONDS] [TARGET...]" >&2; exit 2 ;;
esac
shift $(( $# > 0 ? 1 : 0 ))
TARGETS=("$@")
[ ${#TARGETS[@]} -gt 0 ] || TARGETS=(response scanner frames meta)

say() { printf '[fuzz] %s\n' "$*"; }
skip() {
  say "SKIPPED: $*"
  if [ "${FUZZ_REQUIRED:-0}" = 1 ]; then exit 1; fi
  exit 0
}

if ! rustup toolchain list | grep -q '^nightly'; then
  say "rustup toolchain install nightly"
  rustup toolchain install nightly --profile minimal || skip "cannot install the nightly toolchain"
fi
if ! cargo fuzz --version >/dev/null 2>&1; then
  say "cargo install cargo-fuzz (a few minutes, once)"
  cargo install -q cargo-fuzz || skip "cannot install cargo-fuzz"
fi

# A target dir of its own: sanitizer builds on nightly share nothing with normal builds.
TARGET_DIR="${CARGO_TARGET_DIR:-$ROOT/target}/fuzz"
status=0
for target in "${TARGETS[@]}"; do
  case "$target" in
    response) crate=client-wasm dict=fuzz/response.dict max_len=4096 ;;
    scanner) crate=bridge dict=fuzz/scanner.dict max_len=4096 ;;
    frames) crate=bridge dict="" max_len=4096 ;;
    meta) crate=client-wasm dict=fuzz/meta.dict max_len=4096 ;;
    *) echo "fuzz: unknown target $target (response, scanner, frames, meta)" >&2; exit 2 ;;
  esac
  corpus="$TARGET_DIR/corpus/$target"
  artifacts="$TARGET_DIR/artifacts/$target"
  mkdir -p "$corpus" "$artifacts"
  say "$target: building ($crate/fuzz)"
  if ! (cd "$crate" && cargo +nightly fuzz build -s address --target-dir "$TARGET_DIR" "$target"); then
    skip "the nightly toolchain cannot build the $target target (stable builds and tests it)"
  fi
  say "$target: fuzzing for ${SECONDS_TO_RUN} s"
  log=$(mktemp)
  (cd "$crate" && cargo +nightly fuzz run -s address --target-dir "$TARGET_DIR" "$target" \
      "$corpus" "fuzz/seeds/$target" -- \
      -max_total_time="$SECONDS_TO_RUN" -max_len="$max_len" ${dict:+-dict="$dict"} \
      -timeout=60 -rss_limit_mb=4096 -artifact_prefix="$artifacts/" -print_final_stats=1) \
      >"$log" 2>&1
  rc=$?
  if grep -q 'Test unit written to' "$log"; then
    tail -n 60 "$log"
    say "$target: FOUND A FAILURE (input above, under $artifacts; reproduce with: cd $crate && cargo +nightly fuzz run $target <file>)"
    status=1
  elif [ $rc -ne 0 ]; then
    tail -n 20 "$log"
    say "$target: the fuzzer exited with status $rc without a finding; not counted as a failure"
  else
    say "$target: no failure ($(grep -Eo 'stat::number_of_executed_units: *[0-9]+' "$log" | grep -Eo '[0-9]+$' || echo '?') inputs run; corpus $(ls "$corpus" | wc -l) files)"
  fi
  rm -f "$log"
done
exit $status
