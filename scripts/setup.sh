#!/usr/bin/env bash
# Installs what building, testing, the demo and the benchmarks need, and skips what is
# already there, so a second run takes seconds. Safe to run again at any time.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$(pwd)

say() { printf '[setup] %s\n' "$*"; }

# --- Debian packages: memcached for every test, chromium for the browser tests, and more -
need_apt=()
command -v memcached >/dev/null 2>&1 || need_apt+=(memcached)
[ -x /usr/bin/chromium ] || need_apt+=(chromium)
# libmemcached's own ketama, through Debian's python3-pylibmc: the reference our ketama is checked against.
/usr/bin/python3 -c 'import pylibmc' >/dev/null 2>&1 || need_apt+=(python3-pylibmc)
# binaryen's wasm-opt shrinks the npm package's .wasm (scripts/build-wasm.sh).
command -v wasm-opt >/dev/null 2>&1 || need_apt+=(binaryen)
# TLS (memcached -Z) certificates for the tests are made with openssl; twemproxy (nutcracker)
# is the sharding proxy the client is tested through.
command -v openssl >/dev/null 2>&1 || need_apt+=(openssl)
command -v nutcracker >/dev/null 2>&1 || need_apt+=(nutcracker)
if [ ${#need_apt[@]} -gt 0 ]; then
  say "apt-get install ${need_apt[*]}"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq "${need_apt[@]}" >/dev/null
fi

# --- Rust: the wasm target and a wasm-bindgen-cli equal to the crate's exact version --
if ! rustup target list --installed | grep -qx wasm32-unknown-unknown; then
  say "rustup target add wasm32-unknown-unknown"
  rustup target add wasm32-unknown-unknown
fi
WB_VERSION=$(awk '/^name = "wasm-bindgen"$/ { getline; gsub(/[^0-9.]/, ""); print; exit }' Cargo.lock)
if [ -z "$WB_VERSION" ]; then
  echo "setup: cannot read the wasm-bindgen version from Cargo.lock" >&2
  exit 1
fi
if ! wasm-bindgen --version 2>/dev/null | grep -q " $WB_VERSION\$"; then
  say "cargo install wasm-bindgen-cli --version $WB_VERSION (a few minutes, once)"
  cargo install -q wasm-bindgen-cli --version "$WB_VERSION"
fi

# --- Rust nightly and cargo-fuzz: the fuzz stage of scripts/test.sh (scripts/fuzz.sh) -----
# Not fatal: without them the fuzz stage reports itself skipped, and everything else runs.
if ! rustup toolchain list | grep -q '^nightly'; then
  say "rustup toolchain install nightly --profile minimal"
  rustup toolchain install nightly --profile minimal || say "WARNING: no nightly toolchain; the fuzz stage will be skipped"
fi
if ! cargo fuzz --version >/dev/null 2>&1; then
  say "cargo install cargo-fuzz (a few minutes, once)"
  cargo install -q cargo-fuzz || say "WARNING: cargo-fuzz did not install; the fuzz stage will be skipped"
fi

# --- Python: the real python-memcached (and websockify for the relay benchmark) -------
if [ ! -x .venv/bin/python ]; then
  say "python3 -m venv .venv"
  python3 -m venv .venv
fi
if ! .venv/bin/python -c 'import memcache, websockify' >/dev/null 2>&1 \
   || ! cmp -s tests/requirements.txt .venv/.requirements.installed; then
  say "pip install -r tests/requirements.txt"
  .venv/bin/pip install -q --disable-pip-version-check -r tests/requirements.txt
  cp tests/requirements.txt .venv/.requirements.installed
fi

# --- Node: test, browser and benchmark dependencies ----------------------------------
if [ ! -d node_modules ] || ! cmp -s package-lock.json node_modules/.package-lock.json.installed; then
  say "npm ci"
  npm ci --no-audit --no-fund --loglevel=error
  cp package-lock.json node_modules/.package-lock.json.installed
fi

say "ready (memcached $(memcached -V | awk '{print $2}'), wasm-bindgen $WB_VERSION, $(node --version))"
