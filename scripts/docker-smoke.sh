#!/usr/bin/env bash
# The container deployment end to end, with real traffic: build docker/Dockerfile and
# docker/redis.Dockerfile, run Redis and sluice as its sidecar (--network container:REDIS),
# talk to Redis through sluice from the host (redis-cli, redis-benchmark), check the
# HEALTHCHECK and `sluice healthcheck`, reload with SIGHUP, check that `docker stop` drains an
# in-flight request and exits 0, then run docker/compose.yaml up and down.
#
# Needs root (docker-setup.sh installs and starts Docker from Debian's packages) and
# redis-tools and python3 on the host (scripts/deps.sh). Every check runs and is reported;
# the exit status is 1 when any failed. Everything it starts is removed on exit.
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/.." && pwd)
setup="$here/../../shared/tools/docker-setup.sh"
if [ ! -f "$setup" ]; then
  echo "docker-smoke: $setup not found (expected ../shared/tools/ next to the project)" >&2
  exit 2
fi
for tool in redis-cli redis-benchmark python3 timeout; do
  command -v "$tool" > /dev/null || { echo "docker-smoke: $tool not found; run scripts/deps.sh" >&2; exit 2; }
done

id=$$
img=sluice-smoke:$id
redis_img=sluice-smoke-redis:$id
redis_ctr=sluice-smoke-redis-$id
sluice_ctr=sluice-smoke-$id
project=sluicesmoke$id
work=$(mktemp -d "${TMPDIR:-/tmp}/docker-smoke.XXXXXX")
compose_images=()

cleanup() {
  set +e
  docker rm -f "$sluice_ctr" "$redis_ctr" > /dev/null 2>&1
  if [ -n "${compose_port:-}" ]; then
    SLUICE_PORT=$compose_port timeout 60 docker compose -p "$project" -f "$root/docker/compose.yaml" \
      down -v > /dev/null 2>&1
  fi
  docker image rm "$img" "$redis_img" "${compose_images[@]}" > /dev/null 2>&1
  rm -rf "$work"
}
trap cleanup EXIT

failed=()
passed=0
check() { # check NAME CMD...: run CMD, report PASS or FAIL, go on either way
  local name=$1
  shift
  if "$@"; then
    echo "docker-smoke: PASS $name"
    passed=$((passed + 1))
  else
    echo "docker-smoke: FAIL $name" >&2
    failed+=("$name")
  fi
}
elapsed() { awk -v a="$1" -v b="$(date +%s.%N)" 'BEGIN { printf "%.1fs", b - a }'; }
free_port() { python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }

echo "== docker-setup.sh up"
t0=$(date +%s.%N)
timeout 900 bash "$setup" up
echo "docker-smoke: docker ready in $(elapsed "$t0")"

echo "== build the images"
t0=$(date +%s.%N)
build() { # build LOG DOCKERFILE TAG
  timeout 900 docker build -f "$root/$2" -t "$3" "$root" > "$work/$1" 2>&1 ||
    { tail -40 "$work/$1" >&2; echo "docker-smoke: docker build -f $2 failed" >&2; exit 1; }
}
build build.log docker/Dockerfile "$img"
build redis-build.log docker/redis.Dockerfile "$redis_img"
echo "docker-smoke: images built in $(elapsed "$t0"); $(docker image ls --format '{{.Repository}}:{{.Tag}} {{.Size}}' "$img")"

echo "== redis, and sluice in its network namespace"
# The namespace owner publishes sluice's listener, on an ephemeral loopback port.
docker run -d --name "$redis_ctr" -p 127.0.0.1::6380 "$redis_img" > /dev/null
docker run -d --name "$sluice_ctr" --network "container:$redis_ctr" \
  --health-interval 1s --health-timeout 3s --health-retries 3 --health-start-period 2s "$img" > /dev/null
port=$(docker port "$redis_ctr" 6380/tcp | sed -n 's/^127\.0\.0\.1:\([0-9]*\)$/\1/p' | head -1)
[ -n "$port" ] || { echo "docker-smoke: no published port" >&2; exit 1; }
cli() { timeout 10 redis-cli -p "$port" "$@"; }

ready() {
  local _
  for _ in $(seq 1 100); do
    [ "$(cli ping 2>/dev/null)" = PONG ] && return 0
    sleep 0.1
  done
  docker logs "$sluice_ctr" >&2
  return 1
}
check "sluice answers PING through the published port" ready

set_get() { [ "$(cli set smoke:k v1)" = OK ] && [ "$(cli get smoke:k)" = v1 ]; }
check "SET then GET through sluice" set_get

bench() {
  local out
  out=$(timeout 60 redis-benchmark -p "$port" -n 2000 -c 20 -q -t set,get,incr,lpush 2>&1) || return 1
  echo "$out" | tr '\r' '\n' | grep 'requests per second' | sed 's/^/    /'
  [ "$(echo "$out" | tr '\r' '\n' | grep -c 'requests per second')" -eq 4 ]
}
check "redis-benchmark -n 2000 (set, get, incr, lpush) through sluice" bench

runs_as_non_root() { [ "$(docker exec "$sluice_ctr" id -u)" = 10001 ]; }
check "sluice runs as uid 10001" runs_as_non_root

pid1() { [ "$(docker exec "$sluice_ctr" cat /proc/1/comm)" = sluice ]; }
check "sluice is PID 1" pid1

# Needs the admin endpoint (/healthz on admin.bind).
exec_healthcheck() { timeout 10 docker exec "$sluice_ctr" sluice healthcheck; }
check "docker exec sluice healthcheck exits 0" exec_healthcheck

health_status() { docker inspect --format '{{.State.Health.Status}}' "$sluice_ctr"; }
healthy() {
  local _ s
  for _ in $(seq 1 30); do
    s=$(health_status)
    [ "$s" = healthy ] && return 0
    [ "$s" = unhealthy ] && break
    sleep 0.5
  done
  echo "    health: $(health_status); last probe: $(docker inspect --format \
    '{{with .State.Health}}{{range .Log}}{{.Output}}{{end}}{{end}}' "$sluice_ctr" | grep -v '^$' | tail -1)" >&2
  return 1
}
check "HEALTHCHECK reports healthy" healthy

reload() {
  docker kill -s HUP "$sluice_ctr" > /dev/null || return 1
  local _
  for _ in $(seq 1 50); do
    docker logs "$sluice_ctr" 2>&1 | grep -q 'reloaded' && break
    sleep 0.1
  done
  docker logs "$sluice_ctr" 2>&1 | grep -q 'reloaded' &&
    [ "$(docker inspect --format '{{.State.Running}}' "$sluice_ctr")" = true ] &&
    [ "$(cli get smoke:k)" = v1 ]
}
check "docker kill -s HUP reloads and keeps serving" reload

# A request in flight when docker stop comes: BLPOP waits 2s for its nil reply.
# Needs the drain on SIGTERM.
blpop_out="$work/blpop"
(
  rc=0
  timeout 20 redis-cli --no-raw -p "$port" BLPOP smoke:nokey 2 > "$blpop_out" 2>&1 || rc=$?
  echo "rc=$rc" >> "$blpop_out"
) &
blpop_pid=$!
sleep 0.5
t0=$(date +%s.%N)
timeout 30 docker stop -t 15 "$sluice_ctr" > /dev/null
echo "docker-smoke: docker stop took $(elapsed "$t0")"
wait "$blpop_pid" || true
sed 's/^/    blpop: /' "$blpop_out"
inflight_answered() { grep -qx '(nil)' "$blpop_out" && grep -qx 'rc=0' "$blpop_out"; }
check "docker stop lets the in-flight BLPOP get its reply" inflight_answered
exit_0() { [ "$(docker inspect --format '{{.State.ExitCode}}' "$sluice_ctr")" = 0 ]; }
check "sluice exits 0 on docker stop" exit_0
docker rm -f "$sluice_ctr" "$redis_ctr" > /dev/null

echo "== docker compose -f docker/compose.yaml"
for i in sluice:local sluice-example/redis:local; do
  docker image inspect "$i" > /dev/null 2>&1 || compose_images+=("$i")
done
compose_port=$(free_port)
compose_up() {
  local rc=0
  SLUICE_PORT=$compose_port timeout 600 docker compose -p "$project" -f "$root/docker/compose.yaml" \
    up --no-color --build --abort-on-container-exit --exit-code-from client > "$work/compose.log" 2>&1 || rc=$?
  grep -E '^client[-_]1 +\| ' "$work/compose.log" | sed 's/^/    /' || true
  [ $rc -eq 0 ] || { tail -30 "$work/compose.log" >&2; return 1; }
  grep -q 'hello through sluice' "$work/compose.log" &&
    [ "$(grep -c 'requests per second' "$work/compose.log")" -ge 4 ]
}
check "compose up: client traffic through the sidecar, then everything stops" compose_up
compose_down() {
  SLUICE_PORT=$compose_port timeout 60 docker compose -p "$project" -f "$root/docker/compose.yaml" \
    down -v > /dev/null 2>&1 && [ -z "$(docker ps -aq --filter "label=com.docker.compose.project=$project")" ]
}
check "compose down removes its containers" compose_down
compose_port=""

echo "docker-smoke: $passed passed, ${#failed[@]} failed"
for name in "${failed[@]}"; do
  echo "docker-smoke:   failed: $name" >&2
done
[ ${#failed[@]} -eq 0 ]
