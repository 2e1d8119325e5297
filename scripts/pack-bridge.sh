#!/usr/bin/env bash
# Packs the bridge for npm into DEST (default target/npm): memcache-bridge-linux-x64 with the
# release binary of this machine (cargo build --release -p memcache-bridge, done by
# scripts/test.sh) and the memcache-bridge launcher that picks it through optionalDependencies.
# Prints the two tarballs' paths. Both versions must equal bridge/Cargo.toml's.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$(pwd)
DEST=${1:-$ROOT/target/npm}
BIN=${MEMCACHE_BRIDGE_BIN:-${CARGO_TARGET_DIR:-$ROOT/target}/release/memcache-bridge}

if [ "$(uname -s) $(uname -m)" != "Linux x86_64" ]; then
  echo "pack-bridge: the platform package is linux-x64; this machine is $(uname -s) $(uname -m)" >&2
  exit 1
fi
if [ ! -x "$BIN" ]; then
  echo "pack-bridge: $BIN is not built: cargo build --release -p memcache-bridge" >&2
  exit 1
fi
version=$(awk -F'"' '/^version = / { print $2; exit }' bridge/Cargo.toml)
for pkg in npm/memcache-bridge npm/memcache-bridge-linux-x64; do
  v=$(node -p "require('./$pkg/package.json').version")
  if [ "$v" != "$version" ]; then
    echo "pack-bridge: $pkg is at $v, bridge/Cargo.toml at $version" >&2
    exit 1
  fi
done
dep=$(node -p "require('./npm/memcache-bridge/package.json').optionalDependencies['memcache-bridge-linux-x64']")
if [ "$dep" != "$version" ]; then
  echo "pack-bridge: the launcher wants memcache-bridge-linux-x64 $dep, not $version" >&2
  exit 1
fi

mkdir -p npm/memcache-bridge-linux-x64/bin "$DEST"
install -m 0755 "$BIN" npm/memcache-bridge-linux-x64/bin/memcache-bridge
for pkg in npm/memcache-bridge-linux-x64 npm/memcache-bridge; do
  (cd "$pkg" && npm pack --silent --pack-destination "$DEST" >/dev/null)
done
echo "$DEST/memcache-bridge-linux-x64-$version.tgz"
echo "$DEST/memcache-bridge-$version.tgz"
