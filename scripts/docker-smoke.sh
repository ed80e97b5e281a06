#!/usr/bin/env bash
# The container deployment end to end, with real traffic: build docker/Dockerfile and
# docker/redis.Dockerfile, run Redis and sluice as its sidecar (--network container:REDIS) with
# its configuration directory mounted from the host, talk to Redis through sluice from the host
# (redis-cli, redis-benchmark), check the HEALTHCHECK and `sluice healthcheck`, edit the mounted
# file with sed -i and reload with SIGHUP (the new configuration must apply), check that
# `docker stop` drains an in-flight request and exits 0, then run docker/compose.yaml up and down.
#
#   bash scripts/docker-smoke.sh [SETUP]
#
# Needs a running Docker engine with the compose CLI (`docker compose`, or Debian's
# docker-compose), and redis-tools and python3 on the host (scripts/deps.sh). SETUP (or
# $DOCKER_SETUP), when given, is a script run first as `SETUP up` to bring such an engine up;
# without one the engine must be running already (Debian: apt-get install docker.io
# docker-compose). Every check runs and is reported; the exit status is 1 when any failed,
# 2 when it cannot start. Everything it starts is removed on exit.
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/.." && pwd)
setup=${1:-${DOCKER_SETUP:-}}
if [ -n "$setup" ] && [ ! -f "$setup" ]; then
  echo "docker-smoke: $setup: no such setup script" >&2
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
    SLUICE_PORT=$compose_port timeout 60 "${compose[@]}" -p "$project" -f "$root/docker/compose.yaml" \
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

if [ -n "$setup" ]; then
  echo "== $setup up"
  t0=$(date +%s.%N)
  timeout 900 bash "$setup" up
  echo "docker-smoke: docker ready in $(elapsed "$t0")"
fi
docker info > /dev/null 2>&1 || {
  echo "docker-smoke: no Docker engine answers; start one, or pass a setup script" >&2
  exit 2
}
# The compose v2 CLI plugin, else Debian's docker-compose (v1): compose.yaml works with both.
if docker compose version > /dev/null 2>&1; then
  compose=(docker compose)
elif command -v docker-compose > /dev/null; then
  compose=(docker-compose)
else
  echo "docker-smoke: neither 'docker compose' nor docker-compose found" >&2
  exit 2
fi

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
# sluice's configuration directory, mounted as the README says: a copy of docker/sluice.yaml in a
# directory of its own (a file replaced by an editor or sed -i is a new inode, which a
# single-file bind mount would never show). Readable by the container's uid 10001.
conf="$work/conf"
mkdir -m 755 "$conf"
install -m 644 "$root/docker/sluice.yaml" "$conf/sluice.yaml"
docker run -d --name "$redis_ctr" -p 127.0.0.1::6380 "$redis_img" > /dev/null
docker run -d --name "$sluice_ctr" --network "container:$redis_ctr" -v "$conf:/etc/sluice:ro" \
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

# Edit the mounted file in place (sed -i writes a new file and renames it over the old one),
# SIGHUP, and see the new configuration in force: with stateful: reject a SELECT of another db
# is refused; back to pin, it works again.
generation_served() { # generation_served N: wait until every worker serves generation N
  local _
  for _ in $(seq 1 50); do
    docker logs "$sluice_ctr" 2>&1 | grep -q "generation $1: every worker serves it" && return 0
    sleep 0.1
  done
  docker logs "$sluice_ctr" 2>&1 | tail -20 | sed 's/^/    sluice: /' >&2
  return 1
}
reload_to() { # reload_to FROM TO GENERATION
  sed -i "s/stateful: $1/stateful: $2/" "$conf/sluice.yaml" &&
    grep -q "stateful: $2" "$conf/sluice.yaml" &&
    docker kill -s HUP "$sluice_ctr" > /dev/null &&
    generation_served "$3"
}
reload_applies() {
  [ "$(cli select 1)" = OK ] || { echo "    SELECT 1 before the reload: $(cli select 1)" >&2; return 1; }
  reload_to pin reject 2 || return 1
  local refused
  refused=$(cli select 1)
  case "$refused" in
    *ERR*) echo "    after the reload, SELECT 1: $refused" ;;
    *) echo "    SELECT 1 still answered '$refused' after the reload: the old file was read" >&2; return 1 ;;
  esac
  reload_to reject pin 3 &&
    [ "$(cli select 1)" = OK ] &&
    [ "$(docker inspect --format '{{.State.Running}}' "$sluice_ctr")" = true ] &&
    [ "$(cli get smoke:k)" = v1 ]
}
check "sed -i on the mounted directory's file, docker kill -s HUP: the new config applies" reload_applies

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
  SLUICE_PORT=$compose_port timeout 600 "${compose[@]}" -p "$project" -f "$root/docker/compose.yaml" \
    up --no-color --build --abort-on-container-exit --exit-code-from client > "$work/compose.log" 2>&1 || rc=$?
  grep -E '^client[-_]1 +\| ' "$work/compose.log" | sed 's/^/    /' || true
  [ $rc -eq 0 ] || { tail -30 "$work/compose.log" >&2; return 1; }
  grep -q 'hello through sluice' "$work/compose.log" &&
    [ "$(grep -c 'requests per second' "$work/compose.log")" -ge 4 ]
}
check "compose up: client traffic through the sidecar, then everything stops" compose_up
compose_down() {
  SLUICE_PORT=$compose_port timeout 60 "${compose[@]}" -p "$project" -f "$root/docker/compose.yaml" \
    down -v > /dev/null 2>&1 && [ -z "$(docker ps -aq --filter "label=com.docker.compose.project=$project")" ]
}
check "compose down removes its containers" compose_down
compose_port=""

echo "docker-smoke: $passed passed, ${#failed[@]} failed"
for name in "${failed[@]}"; do
  echo "docker-smoke:   failed: $name" >&2
done
[ ${#failed[@]} -eq 0 ]
