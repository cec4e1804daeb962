#!/usr/bin/env bash
# Starts the built service on its embedded defaults (demo tenant, memory store
# and PMS) on a free port, runs tests/schemathesis/run.sh against it, stops it.
#   tests/schemathesis/ci.sh [MAX_EXAMPLES]   (default 100 per operation)
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
root="$(cd "$here/../.." && pwd)"
bin="$root/target/debug/chargebridge"
[ -x "$bin" ] || (cd "$root" && cargo build --quiet)
port="$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')"
log="$(mktemp)"
CHARGEBRIDGE__SERVER__LISTEN="127.0.0.1:$port" "$bin" serve >"$log" 2>&1 &
pid=$!
trap 'kill "$pid" 2>/dev/null || true; wait "$pid" 2>/dev/null || true; rm -f "$log"' EXIT
for _ in $(seq 1 100); do
  curl -fsS "http://127.0.0.1:$port/healthz" >/dev/null 2>&1 && break
  sleep 0.1
done
curl -fsS "http://127.0.0.1:$port/healthz" >/dev/null || { cat "$log"; exit 1; }
timeout 600 "$here/run.sh" "http://127.0.0.1:$port" "${1:-100}"
