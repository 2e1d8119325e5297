#!/usr/bin/env bash
# Copies the browser build of memcache-wasm (client-wasm/js and the wasm-bindgen output in
# client-wasm/pkg) into www/vendor/memcache-wasm/, so the bridge serves the dashboard and the
# package from one origin: no CDN, works offline on a LAN. www/vendor is git-ignored.
set -euo pipefail
cd "$(dirname "$0")/.."

if [ ! -f client-wasm/pkg/memcache_wasm_bg.wasm ] || [ ! -f client-wasm/pkg/memcache_wasm.js ]; then
  echo "build-www: client-wasm/pkg has no wasm build; run scripts/build-wasm.sh first" >&2
  exit 1
fi

VENDOR=www/vendor/memcache-wasm
rm -rf "$VENDOR"
mkdir -p "$VENDOR"
# The package's relative layout is kept (js/browser.js imports ../pkg/memcache_wasm.js).
# Node-only entry points are copied too; the page never imports them.
cp -R client-wasm/js "$VENDOR/js"
cp -R client-wasm/pkg "$VENDOR/pkg"
echo "build-www: $VENDOR ($(du -sh "$VENDOR" | cut -f1))"
