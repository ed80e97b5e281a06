#!/usr/bin/env bash
# The README's run command: install, build, start a real upstream (socat from
# Debian, a newline echo server on 127.0.0.1:7101), start sluice on the
# shipped config/sluice.yaml, push traffic from many clients through it, and
# report what happened. Stops everything it started, by PID.
set -euo pipefail
cd "$(dirname "$0")/.."

bash scripts/deps.sh
cmake -S . -B build -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
cmake --build build -j"$(nproc)" >/dev/null

CLIENTS=${CLIENTS:-200}
REQUESTS=${REQUESTS:-200}
log=$(mktemp -t sluice-run.XXXXXX)
upstream_pid="" sluice_pid=""
cleanup() {
  [ -n "$sluice_pid" ] && kill "$sluice_pid" 2>/dev/null || true
  [ -n "$upstream_pid" ] && kill "$upstream_pid" 2>/dev/null || true
  wait 2>/dev/null || true
  rm -f "$log"
}
trap cleanup EXIT

wait_port() {
  for _ in $(seq 100); do
    if (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; then return 0; fi
    sleep 0.1
  done
  echo "nothing listens on 127.0.0.1:$1" >&2
  return 1
}

echo "== upstream: socat line echo on 127.0.0.1:7101 (one cat per connection)"
socat TCP-LISTEN:7101,bind=127.0.0.1,reuseaddr,fork EXEC:cat &
upstream_pid=$!
wait_port 7101

echo "== sluice on config/sluice.yaml (127.0.0.1:7100 -> pool -> 127.0.0.1:7101)"
./build/sluice -c config/sluice.yaml 2>"$log" &
sluice_pid=$!
for _ in $(seq 100); do grep -q "serving with" "$log" && break; sleep 0.1; done
grep -E "starting|serving" "$log" | sed 's/^/  /'
conns_before=$(ss -Htn state established '( dport = :7101 )' | wc -l)
echo "   warm upstream connections before any client: $conns_before"

echo "== $CLIENTS clients x $REQUESTS pipelined requests through sluice"
/usr/bin/python3 bench/loadgen.py --port 7100 --clients "$CLIENTS" --requests "$REQUESTS" --depth 10 \
  --seconds 120 | tr ' ' '\n' | sed 's/^/  /'
conns_during=$(ss -Htn state established '( dport = :7101 )' | wc -l)

echo "== the admin endpoint's view (GET 127.0.0.1:9901/metrics, /readyz)"
/usr/bin/python3 - <<'PY'
import urllib.request
with urllib.request.urlopen("http://127.0.0.1:9901/readyz", timeout=5) as r:
    print("  readyz:", r.status, r.read().decode().strip())
with urllib.request.urlopen("http://127.0.0.1:9901/metrics", timeout=5) as r:
    for line in r.read().decode().splitlines():
        if line.startswith(("sluice_requests_total", "sluice_upstream_connections_opened_total",
                            "sluice_request_duration_seconds_count", "sluice_frames_in_total",
                            "sluice_server_up")) and not line.endswith(" 0"):
            print("  " + line)
PY

kill -TERM "$sluice_pid"
wait "$sluice_pid" || true
sluice_pid=""
echo "== what sluice saw (its stats at stop)"
grep " stats: " "$log" | sed -E 's/^[^ ]+ +[a-z]+ +stats: //; s/^/  /'
echo "== upstream connections: $conns_before warm at start, $conns_during open after the load," \
  "for $CLIENTS clients (config: max_connections 4 per worker)"
