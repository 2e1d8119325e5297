#!/usr/bin/env bash
# The demo: two memcached servers, a few keys written by the real python-memcached (the
# seed's top5films rows among them), and memcache-bridge serving the dashboard for both.
# Prints the dashboard's URL and runs until Ctrl-C or SIGTERM, then stops everything it
# started, by pid.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$(pwd)

say() { printf '[demo] %s\n' "$*"; }

scripts/setup.sh

say "building memcache-bridge (release), the wasm engine and the dashboard"
cargo build -q --release -p memcache-bridge
scripts/build-wasm.sh
scripts/build-www.sh
BRIDGE="${CARGO_TARGET_DIR:-$ROOT/target}/release/memcache-bridge"

# Every process started below, stopped by pid on the way out (normal or not).
PIDS=()
stop_all() {
  trap - INT TERM EXIT
  if [ ${#PIDS[@]} -gt 0 ]; then
    say "stopping pids ${PIDS[*]}"
    kill -TERM "${PIDS[@]}" 2>/dev/null || true
    wait "${PIDS[@]}" 2>/dev/null || true
  fi
}
trap stop_all EXIT
trap 'stop_all; exit 130' INT
trap 'stop_all; exit 143' TERM

# A loopback port nobody listens on right now (the OS picks it when we bind port 0).
free_port() {
  python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

# Waits until something accepts TCP connections on 127.0.0.1:$1 (at most 10 s).
wait_for_port() {
  for _ in $(seq 100); do
    if python3 -c 'import socket, sys; socket.create_connection(("127.0.0.1", int(sys.argv[1])), 0.2)' "$1" 2>/dev/null; then
      return 0
    fi
    sleep 0.1
  done
  echo "demo: nothing listens on 127.0.0.1:$1 after 10 s" >&2
  return 1
}

# memcached refuses to run as root unless told which user to be.
MEMCACHED_USER=()
[ "$(id -u)" -eq 0 ] && MEMCACHED_USER=(-u root)

SERVERS=()
for _ in 1 2; do
  port=$(free_port)
  memcached -U 0 -l 127.0.0.1 -p "$port" "${MEMCACHED_USER[@]}" &
  PIDS+=($!)
  wait_for_port "$port"
  SERVERS+=("127.0.0.1:$port")
done
say "memcached on ${SERVERS[*]}"

SEEDED=$(.venv/bin/python tests/browser/seed.py "${SERVERS[@]}")
say "python-memcached stored $(wc -l <<<"$SEEDED") keys; top5films (pickled, as python-memcached does by default) is on $(awk '$1 == "top5films" { print $2 }' <<<"$SEEDED")"

BRIDGE_PORT=$(free_port)
UPSTREAMS=()
for server in "${SERVERS[@]}"; do UPSTREAMS+=(--upstream "$server"); done
"$BRIDGE" --listen "127.0.0.1:$BRIDGE_PORT" --www www "${UPSTREAMS[@]}" &
BRIDGE_PID=$!
PIDS+=("$BRIDGE_PID")
wait_for_port "$BRIDGE_PORT"

say "dashboard: http://127.0.0.1:$BRIDGE_PORT/"
say "press Ctrl-C to stop memcached and the bridge"
# Runs until the bridge exits or a signal arrives (the traps stop everything).
wait "$BRIDGE_PID"
