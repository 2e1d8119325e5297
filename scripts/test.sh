#!/usr/bin/env bash
# Runs every test of the workspace, each against a real memcached that the tests start on
# loopback ports of their own. This is the command README.md names and .ci/run calls.
set -euo pipefail
cd "$(dirname "$0")/.."

stage() { printf '\n=== %s\n' "$*"; }

stage "setup"
scripts/setup.sh

stage "rust: format and lints"
cargo fmt --all --check
cargo clippy -q --workspace --all-targets -- -D warnings

stage "rust: unit, property and integration tests (core, interop with python-memcached, bridge)"
export MEMCACHE_WASM_PYTHON="$PWD/.venv/bin/python"
cargo test -q --workspace

stage "fuzz: the client's response parser and the bridge's command scanner, 60 s each; the bridge's frame reader and the client's meta reply parser, 30 s each (fails only on a finding)"
scripts/fuzz.sh 60 response scanner
scripts/fuzz.sh 30 frames
scripts/fuzz.sh 30 meta

stage "build: memcache-bridge (release), the wasm package, the dashboard's copy of it"
cargo build -q --release -p memcache-bridge
scripts/build-wasm.sh
scripts/build-www.sh

stage "node: the npm package memcache-wasm end to end (TCP, bridge, python-memcached interop, npm pack, attw/publint/tsc, the bridge through npx)"
node --test --test-timeout=120000 tests/node/

stage "browser: the dashboard, every bundler, CSP and the runnable docs in headless chromium against a real bridge and memcached"
node --test --test-timeout=180000 tests/browser/

stage "bench: smoke run, every contender and workload once with tiny counts, and TLS against TCP (the full runs are by hand: bench/README.md)"
node bench/run.mjs --smoke --no-build
node bench/tls.mjs --smoke
