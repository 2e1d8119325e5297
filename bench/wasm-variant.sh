#!/usr/bin/env bash
# Builds a copy of the npm package memcache-wasm (client-wasm/js as it is now, and the engine
# compiled at the opt-level given) into OUT, for before/after comparisons with
#   MEMCACHE_WASM_PACKAGE=OUT node bench/run.mjs --no-build ...   (or bench/profile.mjs)
# without touching client-wasm/pkg. OUT should sit inside the repository, so that the copy
# finds the root node_modules (ws).
#   usage: bench/wasm-variant.sh OUT [OPT_LEVEL (default z, as scripts/build-wasm.sh)] [SRC]
# SRC (default client-wasm) is the package folder whose js/ and src/ are built. wasm-opt runs
# with -Oz (-O3 for opt-level 2 or 3, -Os for s) unless WASM_OPT_FLAG says otherwise.
set -euo pipefail
cd "$(dirname "$0")/.."
OUT=${1:?usage: bench/wasm-variant.sh OUT [OPT_LEVEL] [SRC]}
LEVEL=${2:-z}
SRC=${3:-client-wasm}
TARGET_DIR=${CARGO_TARGET_DIR:-$PWD/target}

rm -rf "$OUT"
mkdir -p "$OUT/pkg"
cp -r "$SRC/js" "$SRC/package.json" "$OUT/"
CARGO_PROFILE_WASM_OPT_LEVEL=$LEVEL cargo build -q --profile wasm --target wasm32-unknown-unknown \
  --manifest-path "$SRC/Cargo.toml"
WASM="$TARGET_DIR/wasm32-unknown-unknown/wasm/memcache_wasm.wasm"
INPUT="$WASM"
if command -v wasm-opt >/dev/null 2>&1; then
  # the same flags as scripts/build-wasm.sh; -O3 instead of -Oz when building for speed
  flag=-Oz
  case "$LEVEL" in 2 | 3) flag=-O3 ;; s) flag=-Os ;; esac
  flag=${WASM_OPT_FLAG:-$flag}
  wasm-opt "$flag" --enable-bulk-memory --enable-nontrapping-float-to-int --enable-sign-ext \
    --enable-mutable-globals --enable-reference-types "$WASM" -o "$OUT/pkg/engine.opt.wasm"
  INPUT="$OUT/pkg/engine.opt.wasm"
fi
wasm-bindgen --target web --remove-name-section --remove-producers-section \
  --out-dir "$OUT/pkg" --out-name memcache_wasm "$INPUT"
rm -f "$OUT/pkg/engine.opt.wasm" "$OUT/pkg/package.json" "$OUT/pkg/.gitignore"
raw=$(wc -c < "$OUT/pkg/memcache_wasm_bg.wasm")
gz=$(gzip -9 -c "$OUT/pkg/memcache_wasm_bg.wasm" | wc -c)
echo "wasm-variant: $OUT opt-level $LEVEL: $raw bytes, $gz gzipped"
