#!/usr/bin/env bash
# Redis (RESP): redis-server direct vs sluice vs nutcracker (twemproxy) vs HAProxy (mode tcp),
# one redis-server upstream, the same redis-benchmark load, one report.
#
# Debian packages this script installs (apt-get install -y):
#   redis-server redis-tools nutcracker haproxy valgrind strace python3 iproute2 procps
#   gcc make cmake pkg-config libevent-dev libssl-dev libyaml-dev   (to build sluice)
#
#   bash bench/redis.sh                          # full run, about 4 minutes on 2 cores
#   QUICK=1 bash bench/redis.sh                  # about 80 seconds
#   REPS=3 bash bench/redis.sh                   # timed blocks 3 times, medians: about 8 minutes
#   PROXIES=direct,nutcracker,haproxy bash bench/redis.sh
#
# What it measures (see bench/README.md, "Redis (RESP)"):
#   check     every target answers a pipelined, multi-client command mix exactly as expected
#   callgrind instructions per request of the proxy process (the redis-server for "direct"):
#             redis-benchmark -c 50 -t set,get -n INSTR_REQS, callgrind_control -z before, -d after
#   strace    syscalls per request, same workload, strace -f -c attached to the running process
#   timed     redis-benchmark --csv, tests get,set,incr,lpush,mset (10 keys) and MGET of 10 keys,
#             for every CLIENTS value, with and without -P PIPELINE (one "block" each, a fresh
#             proxy on a flushed redis, targets back to back): req/s, p50, p99 and the ratio of
#             req/s to redis-server direct in this run; proxy and redis CPU per request; CPU
#             the rest of the machine used meanwhile; upstream connections (ESTABLISHED to the
#             redis port, ss -tn, owner checked with ss -tnp) and connections redis accepted;
#             afterwards, that no INCR or LPUSH was lost or doubled (sums read from redis)
#
# Knobs (environment):
#   QUICK=1        smaller defaults for the request counts below
#   REQS           -n of each test without pipelining (default 50000; QUICK 5000)
#   PIPE_REQS      -n of each test with -P PIPELINE (default 200000; QUICK 30000)
#   INSTR_REQS     -n of each of the two tests (set, get) under callgrind and strace
#                  (default 20000; QUICK 4000)
#   CLIENTS        redis-benchmark -c values (default "50 500")
#   PIPELINE       the -P value of the pipelined runs (default 16)
#   KEYSPACE       redis-benchmark -r (default 100000)
#   REPS           rounds of the timed blocks; the report shows medians (default 1)
#   PROXIES        any of "direct sluice nutcracker haproxy", spaces or commas (default: all four)
#   ONLY           any of "check callgrind strace timed" (default: all four)
#   NC_SERVER_CONNECTIONS  nutcracker server_connections (default 1, twemproxy's default: with more,
#                  nutcracker spreads one client's pipeline over several connections and the
#                  check below sees commands run out of order)
#   SKIP_BUILD=1   use build-bench-resp/sluice as it is
#   WORKDIR        where configs, logs and raw outputs go, kept (default: a new
#                  /tmp/sluice-redis-bench.*, removed at exit unless KEEP=1 or a problem was seen)
#   KEEP=1         keep the default WORKDIR
#
# Ports used: 127.0.0.1:31001 (redis-server), 31010-31011 (sluice, its admin), 31020-31021
# (nutcracker, its stats), 31025 (HAProxy). Every process this script starts is stopped by its
# PID, on exit too.
set -uo pipefail

HERE=$(cd "$(dirname "$0")" && pwd)
ROOT=$(cd "$HERE/.." && pwd)

QUICK=${QUICK:-0}
if [ "$QUICK" = 1 ]; then
    REQS=${REQS:-5000}
    PIPE_REQS=${PIPE_REQS:-30000}
    INSTR_REQS=${INSTR_REQS:-4000}
    CHECK_CLIENTS=100 CHECK_BATCHES=5
else
    REQS=${REQS:-50000}
    PIPE_REQS=${PIPE_REQS:-200000}
    INSTR_REQS=${INSTR_REQS:-20000}
    CHECK_CLIENTS=200 CHECK_BATCHES=10
fi
CLIENTS=${CLIENTS:-50 500}
PIPELINE=${PIPELINE:-16}
KEYSPACE=${KEYSPACE:-100000}
REPS=${REPS:-1}
PROXIES=${PROXIES:-direct sluice nutcracker haproxy}
PROXIES=${PROXIES//,/ }
ONLY=${ONLY:-check callgrind strace timed}
ONLY=${ONLY//,/ }
NC_SERVER_CONNECTIONS=${NC_SERVER_CONNECTIONS:-1}
SKIP_BUILD=${SKIP_BUILD:-0}
KEEP=${KEEP:-0}
if [ -n "${WORKDIR:-}" ]; then
    OWN_WORKDIR=0
else
    WORKDIR=$(mktemp -d /tmp/sluice-redis-bench.XXXXXX)
    OWN_WORKDIR=1
fi
mkdir -p "$WORKDIR"

P_REDIS=31001 P_SLUICE=31010 P_SL_ADMIN=31011 P_NC=31020 P_NC_STATS=31021 P_HA=31025
ALL_PORTS="$P_REDIS $P_SLUICE $P_SL_ADMIN $P_NC $P_NC_STATS $P_HA"
TESTS=get,set,incr,lpush,mset            # redis-benchmark -t; MGET of 10 keys runs as a custom command
ROWS="GET SET INCR LPUSH MSET_10 MGET_10" # report order
BENCH_TIMEOUT=300                         # seconds, any one redis-benchmark invocation
INSTR_TIMEOUT=900                         # seconds, the workload under callgrind

SLUICE=$ROOT/build-bench-resp/sluice
CLK_TCK=$(getconf CLK_TCK)
NCPU=$(nproc)

declare -A R          # results: R[metric.target] or R[metric.cfg.test.target]
declare -a PIDS=()    # every process started here, stopped by PID
declare -a PROBLEMS=()
# shellcheck source=bench/lib.sh
. "$HERE/lib.sh"
REDIS_PID=""

want() { [[ " $ONLY " == *" $1 "* ]]; }

# ---------------------------------------------------------------- processes




cleanup() {
    local pid
    for pid in "${PIDS[@]}"; do
        [ -n "$pid" ] && kill -TERM "$pid" 2>/dev/null
    done
    sleep 0.5
    for pid in "${PIDS[@]}"; do
        [ -n "$pid" ] && alive "$pid" && kill -KILL "$pid" 2>/dev/null
    done
    wait 2>/dev/null
    if [ "$OWN_WORKDIR" = 1 ] && [ "$KEEP" != 1 ] && [ ${#PROBLEMS[@]} -eq 0 ]; then
        rm -rf "$WORKDIR"
    elif [ "$OWN_WORKDIR" = 1 ]; then
        log "kept $WORKDIR"
    fi
}
trap cleanup EXIT
trap 'exit 130' INT TERM
trap '' PIPE # a closed reader (| head) must not kill the script before it stops what it started



busy_ticks() { # all CPUs: user + nice + system + irq + softirq + steal, in clock ticks
    awk '$1 == "cpu" { print $2 + $3 + $4 + $7 + $8 + $9 }' /proc/stat
}
rcli() { timeout 60 redis-cli -h 127.0.0.1 -p "$P_REDIS" "$@"; } # straight to the redis-server
info_field() { rcli info "$1" | tr -d '\r' | awk -F: -v k="$2" '$1 == k { print $2 }'; }

# ---------------------------------------------------------------- setup

setup() {
    local pkgs=(redis-server redis-tools nutcracker haproxy valgrind strace python3 iproute2 procps)
    [ "$SKIP_BUILD" != 1 ] && pkgs+=(gcc make cmake pkg-config libevent-dev libssl-dev libyaml-dev)
    export DEBIAN_FRONTEND=noninteractive
    log "installing: ${pkgs[*]}"
    if ! apt-get install -y -qq --no-install-recommends "${pkgs[@]}" >"$WORKDIR/apt.log" 2>&1; then
        apt-get update -qq >>"$WORKDIR/apt.log" 2>&1
        apt-get install -y -qq --no-install-recommends "${pkgs[@]}" >>"$WORKDIR/apt.log" 2>&1 ||
            { cat "$WORKDIR/apt.log" >&2; echo "apt-get install failed" >&2; exit 1; }
    fi
    if [[ " $PROXIES " == *" sluice "* ]]; then
        local built=1
        if [ "$SKIP_BUILD" != 1 ]; then
            log "building sluice in build-bench-resp (RelWithDebInfo)"
            (cd "$ROOT" && cmake -S . -B build-bench-resp -DCMAKE_BUILD_TYPE=RelWithDebInfo >"$WORKDIR/build.log" 2>&1 &&
                cmake --build build-bench-resp -j"$(nproc)" --target sluice >>"$WORKDIR/build.log" 2>&1) ||
                { built=0; tail -30 "$WORKDIR/build.log" >&2; problem "sluice build failed (log: $WORKDIR/build.log); sluice left out"; }
        elif [ ! -x "$SLUICE" ]; then
            built=0
            problem "no $SLUICE (SKIP_BUILD=1); sluice left out"
        fi
        [ "$built" = 1 ] || PROXIES=$(echo " $PROXIES " | sed 's/ sluice / /')
    fi
    ulimit -n 20000 2>/dev/null || ulimit -n "$(ulimit -Hn)"
    local p
    for p in $ALL_PORTS; do
        if [ -n "$(ss -Hltn "sport = :$p")" ]; then
            echo "port 127.0.0.1:$p is in use; this script needs $ALL_PORTS" >&2
            exit 1
        fi
    done
    SLUICE_REV=$(cd "$ROOT" && git rev-parse --short HEAD 2>/dev/null)$(cd "$ROOT" && git diff --quiet HEAD 2>/dev/null || echo "+dirty")
    REDIS_VER=$(redis-server --version | grep -o 'v=[^ ]*' | cut -d= -f2)
    NC_VER=$(nutcracker --version 2>&1 | awk 'NR == 1 { print $NF }')
    HAPROXY_VER=$(haproxy -v | awk 'NR == 1 { print $3 }')
    BENCH_VER=$(redis-benchmark --version | awk '{ print $2 }')
}

# ---------------------------------------------------------------- configs

write_configs() {
    # Deadlines and the queue are raised so that valgrind's 20-50x slowdown cannot fire them;
    # they do not change the per-request code path.
    cat >"$WORKDIR/sluice.yaml" <<EOF
workers: 1
log: { level: info, format: text }
admin: { bind: 127.0.0.1:$P_SL_ADMIN }
listeners:
  - name: redis
    bind: 127.0.0.1:$P_SLUICE
    codec: resp
    cluster: redis
    max_clients: 20000
    timeouts: { idle: 600s, read: 60s, request: 120s }
clusters:
  - name: redis
    balance: round_robin
    servers: [{ address: 127.0.0.1:$P_REDIS }]
    pool: { max_connections: 4, queue: { max: 1000000, timeout: 60s } }
    timeouts: { connect: 5s, read: 60s, write: 60s }
EOF
    cat >"$WORKDIR/nutcracker.yml" <<EOF
bench:
  listen: 127.0.0.1:$P_NC
  hash: fnv1a_64
  distribution: ketama
  redis: true
  auto_eject_hosts: false
  server_connections: $NC_SERVER_CONNECTIONS
  timeout: 60000
  servers:
    - 127.0.0.1:$P_REDIS:1
EOF
    cat >"$WORKDIR/haproxy.cfg" <<EOF
global
    nbthread 1
    maxconn 4000
defaults
    mode tcp
    maxconn 4000
    timeout connect 5s
    timeout client 10m
    timeout server 10m
frontend f_redis
    bind 127.0.0.1:$P_HA
    default_backend b_redis
backend b_redis
    server r1 127.0.0.1:$P_REDIS
EOF
}

target_port() {
    case $1 in
    direct) echo $P_REDIS ;; sluice) echo $P_SLUICE ;; nutcracker) echo $P_NC ;; haproxy) echo $P_HA ;;
    esac
}

# check_configs: each proxy's own config check; a proxy that refuses its config leaves the run.
check_configs() {
    local t keep=() out rc
    for t in $PROXIES; do
        rc=0 out=""
        case $t in
        sluice) out=$("$SLUICE" -t -c "$WORKDIR/sluice.yaml" 2>&1) || rc=$? ;;
        nutcracker) out=$(nutcracker -t -c "$WORKDIR/nutcracker.yml" 2>&1) || rc=$? ;;
        haproxy) out=$(haproxy -c -f "$WORKDIR/haproxy.cfg" 2>&1) || rc=$? ;;
        direct) ;;
        *) problem "unknown target '$t' in PROXIES (direct, sluice, nutcracker, haproxy)"; continue ;;
        esac
        if [ "$rc" != 0 ]; then
            problem "$t refuses its config: $(echo "$out" | tr '\n' ' ')"
            continue
        fi
        keep+=("$t")
    done
    TARGETS="${keep[*]}"
}

# start_redis TAG [WRAPPER...]: the upstream redis-server on P_REDIS; sets REDIS_PID.
start_redis() {
    local tag=$1
    shift
    mkdir -p "$WORKDIR/redis-data"
    start "$tag" "$@" redis-server --port "$P_REDIS" --bind 127.0.0.1 --protected-mode no \
        --save '' --appendonly no --dir "$WORKDIR/redis-data" --maxclients 10000 --loglevel notice
    REDIS_PID=$LAST_PID
    if ! wait_listen "$P_REDIS" "$REDIS_PID" 120; then
        echo "redis-server did not start: $(tail -5 "$WORKDIR/$tag.out" "$WORKDIR/$tag.err")" >&2
        exit 1
    fi
}

# start_target TARGET TAG [WRAPPER...]: start a proxy (or, for direct, nothing); sets PID_OF.
start_target() {
    local t=$1 tag=$2
    shift 2
    case $t in
    direct) PID_OF=$REDIS_PID; return 0 ;;
    sluice) start "$tag" "$@" "$SLUICE" -c "$WORKDIR/sluice.yaml" ;;
    nutcracker) start "$tag" "$@" nutcracker -c "$WORKDIR/nutcracker.yml" -s "$P_NC_STATS" -a 127.0.0.1 \
        -o "$WORKDIR/$tag.log" ;;
    haproxy) start "$tag" "$@" haproxy -db -f "$WORKDIR/haproxy.cfg" ;;
    esac
    PID_OF=$LAST_PID
    if ! wait_listen "$(target_port "$t")" "$PID_OF" 120; then
        problem "$t ($tag) did not start listening; log: $(tail -3 "$WORKDIR/$tag.err" | tr '\n' ' ')"
        stop "$PID_OF"
        return 1
    fi
    [ "$t" = sluice ] && ! wait_for "$WORKDIR/$tag.err" 'serving' "$PID_OF" 60 &&
        problem "sluice ($tag) listens but never logged 'serving'"
    sleep 0.5 # warm pool connections, if any
}

# stop_target TARGET TAG: stop it (not the redis-server of direct) and note anything odd.
stop_target() {
    local t=$1 tag=$2 rc
    [ "$t" = direct ] && return
    if ! alive "$PID_OF"; then
        wait "$PID_OF" 2>/dev/null
        problem "$t ($tag) exited during the run (status $?); log tail: $(tail -3 "$WORKDIR/$tag.err" | tr '\n' ' ')"
        return
    fi
    stop "$PID_OF" TERM
    rc=$?
    if [ "$t" = sluice ]; then
        [ "$rc" != 0 ] && problem "sluice ($tag) exited with status $rc on SIGTERM; log tail: $(tail -3 "$WORKDIR/$tag.err" | tr '\n' ' ')"
        if grep -Eq '^[^ ]+ +(warn|error) ' "$WORKDIR/$tag.err"; then
            problem "sluice ($tag) logged $(grep -Ec '^[^ ]+ +(warn|error) ' "$WORKDIR/$tag.err") warn/error lines, first: $(grep -Em1 '^[^ ]+ +(warn|error) ' "$WORKDIR/$tag.err")"
        fi
        local f
        f=$(grep -o 'failed_upstream=[0-9]* failed_timeout=[0-9]* failed_queue=[0-9]*' "$WORKDIR/$tag.err" | tail -1)
        [ -n "$f" ] && [ "$f" != "failed_upstream=0 failed_timeout=0 failed_queue=0" ] && problem "sluice ($tag) stats: $f"
    fi
}

# bench TAG PORT ARGS...: one bounded redis-benchmark --csv; fails on its error or a timeout.
bench() {
    local tag=$1 port=$2 rc
    shift 2
    local TIMEFORMAT='%3U %3S' # bash's time: the benchmark's own user and system CPU seconds
    { time timeout "$BENCH_TIMEOUT" redis-benchmark -h 127.0.0.1 -p "$port" -r "$KEYSPACE" --csv "$@" \
        >"$WORKDIR/$tag.csv" 2>"$WORKDIR/$tag.csv.err" </dev/null; } 2>"$WORKDIR/$tag.time"
    rc=$?
    BENCH_CPU=$(awk -v b="${BENCH_CPU:-0}" '{ b += $1 + $2 } END { printf "%.3f", b }' "$WORKDIR/$tag.time" 2>/dev/null)
    if [ $rc != 0 ]; then
        problem "$tag: redis-benchmark -p $port $* exited $rc: $(grep -v '^"' "$WORKDIR/$tag.csv" | tail -2 | tr '\n' ' ') $(tail -2 "$WORKDIR/$tag.csv.err" | tr '\n' ' ')"
    fi
    return $rc
}

MGET10=(MGET key:__rand_int__ key:__rand_int__ key:__rand_int__ key:__rand_int__ key:__rand_int__
    key:__rand_int__ key:__rand_int__ key:__rand_int__ key:__rand_int__ key:__rand_int__)

# ---------------------------------------------------------------- check

# A pipelined, multi-client command mix with a private key space per client, each reply
# compared with what Redis must answer. Exit 0 and "ok ..." or exit 1 and the first mismatches.
CHECKER='
import socket, sys, threading, random
host, port, nclients, batches, depth = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4]), int(sys.argv[5])
def enc(*a):
    a = [x if isinstance(x, bytes) else str(x).encode() for x in a]
    return b"*%d\r\n" % len(a) + b"".join(b"$%d\r\n%s\r\n" % (len(x), x) for x in a)
class Conn:
    def __init__(s):
        s.s = socket.create_connection((host, port), timeout=60); s.b = b""
    def line(s):
        while b"\r\n" not in s.b:
            d = s.s.recv(65536)
            if not d: raise EOFError("connection closed by the proxy")
            s.b += d
        l, s.b = s.b.split(b"\r\n", 1); return l
    def exact(s, n):
        while len(s.b) < n + 2:
            d = s.s.recv(65536)
            if not d: raise EOFError("connection closed by the proxy")
            s.b += d
        v, s.b = s.b[:n], s.b[n + 2:]; return v
    def reply(s):
        l = s.line(); t, r = l[:1], l[1:]
        if t == b"+": return r.decode()
        if t == b"-": return "ERR:" + r.decode().split()[0]
        if t == b":": return int(r)
        if t == b"$": return None if int(r) < 0 else s.exact(int(r))
        if t == b"*": return None if int(r) < 0 else [s.reply() for _ in range(int(r))]
        raise ValueError("bad reply line %r" % l)
def short(v):
    r = repr(v); return r if len(r) < 100 else r[:100] + "..."
bad, done, lock = [], [0], threading.Lock()
def client(i):
    rnd = random.Random(i); pre = b"chk:%d:" % i; kv, ctr, lst = {}, {}, {}
    try:
        c = Conn()
        for b in range(batches):
            out, exp = [], []
            for j in range(depth):
                op = rnd.randrange(8); k = pre + b"k%d" % rnd.randrange(20)
                if op == 0:
                    v = b"v%d-%d" % (b, j) * rnd.choice((1, 1, 1, 500)); kv[k] = v; out.append(enc("SET", k, v)); exp.append("OK")
                elif op == 1: out.append(enc("GET", k)); exp.append(kv.get(k))
                elif op == 2:
                    ck = pre + b"c%d" % rnd.randrange(5); ctr[ck] = ctr.get(ck, 0) + 1; out.append(enc("INCR", ck)); exp.append(ctr[ck])
                elif op == 3:
                    ks = [pre + b"k%d" % rnd.randrange(25) for _ in range(10)]; out.append(enc("MGET", *ks)); exp.append([kv.get(x) for x in ks])
                elif op == 4:
                    lk = pre + b"l"; lst[lk] = lst.get(lk, 0) + 1; out.append(enc("LPUSH", lk, b"%d" % j)); exp.append(lst[lk])
                elif op == 5:
                    ks = [pre + b"k%d" % rnd.randrange(20) for _ in range(3)]; vs = [b"m%d" % rnd.randrange(1000) for _ in ks]
                    for x, y in zip(ks, vs): kv[x] = y
                    out.append(enc("MSET", *[z for p in zip(ks, vs) for z in p])); exp.append("OK")
                elif op == 6:
                    kv[pre + b"s"] = b"x"; out.append(enc("SET", pre + b"s", "x")); exp.append("OK")
                    out.append(enc("INCR", pre + b"s")); exp.append("ERR:ERR")
                else: out.append(enc("PING")); exp.append("PONG")
            c.s.sendall(b"".join(out))
            for n, e in enumerate(exp):
                got = c.reply()
                if got != e:
                    with lock: bad.append("client %d batch %d reply %d (%s): expected %s, got %s" % (i, b, n, out[n].split(b"\r\n")[2].decode(), short(e), short(got)))
                    return
            with lock: done[0] += len(exp)
    except Exception as ex:
        with lock: bad.append("client %d: %s: %s" % (i, type(ex).__name__, ex))
ts = [threading.Thread(target=client, args=(i,)) for i in range(nclients)]
[t.start() for t in ts]; [t.join() for t in ts]
if bad:
    print("FAILED: %d of %d clients, %d replies right; first: %s" % (len(bad), nclients, done[0], " | ".join(bad[:3]))); sys.exit(1)
print("ok: %d clients, %d replies, all as expected" % (nclients, done[0]))
'

check_target() {
    local t=$1 tag=check-$1 out
    start_target "$t" "$tag" || return
    log "check: $t, $CHECK_CLIENTS clients x $CHECK_BATCHES pipelined batches of 32 commands"
    rcli flushall >/dev/null
    if out=$(timeout 300 python3 -c "$CHECKER" 127.0.0.1 "$(target_port "$t")" "$CHECK_CLIENTS" "$CHECK_BATCHES" 32 2>&1); then
        R[check.$t]=ok
        log "  $out"
    else
        R[check.$t]=FAILED
        problem "check through $t: $out"
    fi
    stop_target "$t" "$tag"
}

# ---------------------------------------------------------------- callgrind

bench_callgrind() {
    local t=$1 tag=callgrind-$1 out dump ir req
    out=$WORKDIR/$tag.callgrind
    rm -f "$out"*
    log "callgrind: $t, redis-benchmark -c 50 -t set,get -n $INSTR_REQS"
    if [ "$t" = direct ]; then # the redis-server itself under callgrind, for scale
        stop "$REDIS_PID"
        start_redis "$tag" valgrind --tool=callgrind --callgrind-out-file="$out"
        PID_OF=$REDIS_PID
    else
        start_target "$t" "$tag" valgrind --tool=callgrind --callgrind-out-file="$out" || return
    fi
    if callgrind_control -z "$PID_OF" >>"$WORKDIR/$tag.ctl.log" 2>&1; then
        local t0=$SECONDS
        BENCH_TIMEOUT=$INSTR_TIMEOUT bench "$tag" "$(target_port "$t")" -c 50 -n "$INSTR_REQS" -t set,get &&
            callgrind_control -d "$PID_OF" >>"$WORKDIR/$tag.ctl.log" 2>&1
        dump=$(grep -l '^desc: Trigger: .*[Dd]ump' "$out"* 2>/dev/null | head -1)
        ir=$([ -n "$dump" ] && awk '/^summary:/ { print $2 }' "$dump")
        req=$((2 * INSTR_REQS))
        if [ -n "$ir" ]; then
            R[ir.$t]=$(calc "$ir / $req")
            log "  $ir Ir / $req requests = ${R[ir.$t]} ($((SECONDS - t0)) s)"
        else
            problem "$tag: no callgrind dump ($(tr '\n' ' ' <"$WORKDIR/$tag.ctl.log"))"
        fi
    else
        problem "$tag: callgrind_control -z failed: $(tr '\n' ' ' <"$WORKDIR/$tag.ctl.log")"
    fi
    if [ "$t" = direct ]; then
        stop "$REDIS_PID"
        start_redis redis
    else
        stop_target "$t" "$tag"
    fi
}

# ---------------------------------------------------------------- strace

bench_strace() {
    local t=$1 tag=strace-$1 spid calls c0 c1
    log "strace: $t, redis-benchmark -c 50 -t set,get -n $INSTR_REQS"
    start_target "$t" "$tag" || return
    start "$tag.strace" strace -f -c -o "$WORKDIR/$tag.strace.out" -p "$PID_OF"
    spid=$LAST_PID
    if wait_for "$WORKDIR/$tag.strace.err" "attached" "$spid" 10; then
        sleep 0.5
        c0=$(info_field stats total_commands_processed)
        bench "$tag" "$(target_port "$t")" -c 50 -n "$INSTR_REQS" -t set,get
        c1=$(info_field stats total_commands_processed)
        stop "$spid" INT
        calls=$(awk '$NF == "total" { print $4 }' "$WORKDIR/$tag.strace.out")
        if [ -n "$calls" ]; then
            R[sys.$t]=$(calc "$calls / (2 * $INSTR_REQS)")
            R[systop.$t]=$(awk 'NR > 2 && $NF != "total" && $1 !~ /^-/ { print $NF "=" $4 }' "$WORKDIR/$tag.strace.out" |
                sort -t= -k2 -rn | head -4 | tr '\n' ' ')
            log "  $calls syscalls / $((2 * INSTR_REQS)) requests = ${R[sys.$t]} (${R[systop.$t]})"
        else
            problem "$tag: no strace summary ($(tail -2 "$WORKDIR/$tag.strace.err" | tr '\n' ' '))"
        fi
        # commands redis ran per client request (the INFO that reads c1 is one of them)
        [ -n "$c0" ] && [ -n "$c1" ] && R[upcmd.$t]=$(calc "($c1 - $c0 - 1) / (2 * $INSTR_REQS)")
    else
        problem "$tag: strace did not attach: $(tail -2 "$WORKDIR/$tag.strace.err" | tr '\n' ' ')"
    fi
    alive "$spid" && stop "$spid" INT
    stop_target "$t" "$tag"
}

# ---------------------------------------------------------------- timed

# sample_conns PID: every 0.2 s, "N - -": N ESTABLISHED connections to the redis port (ss over
# netlink, cheap); every 10th sample "N O F" instead (ss -p walks /proc, costly): O of them owned
# by PID, F owned by another process. A socket opened between ss's walk of /proc and its netlink
# dump has no owner shown, so N - O - F is unknown, not foreign. During a proxy's block nothing
# else connects to the redis port, so F must be 0.
sample_conns() {
    local pid=$1 i=0 out
    while :; do
        if ((i++ % 10 == 5)); then
            out=$(ss -Htnp state established "( dport = :$P_REDIS )")
            echo "$(grep -c . <<<"$out") $(grep -c "pid=$pid," <<<"$out") $(grep 'users:' <<<"$out" | grep -vc "pid=$pid,")"
        else
            echo "$(ss -Htn state established "( dport = :$P_REDIS )" | grep -c .) - -"
        fi
        sleep 0.2
    done
}

# add KEY VALUE: one more run's value of KEY (finalised into R[KEY] by finalise)
declare -A L
add() { [ -n "${2:-}" ] && L[$1]+="$2 "; }
maxof() { tr ' ' '\n' | grep -v '^$' | sort -g | tail -1; }
finalise() {
    local k
    for k in "${!L[@]}"; do
        case $k in
        conns.* | other.*) R[$k]=$(echo "${L[$k]}" | maxof) ;;
        *) R[$k]=$(echo "${L[$k]}" | median) ;;
        esac
    done
}

# bench_block TARGET CLIENTS PIPELINE REP: a fresh proxy (or redis direct) on a flushed redis,
# all six tests at one -c/-P, then the write check; values go to L[...] for the medians.
bench_block() {
    local t=$1 c=$2 p=$3 rep=$4 cfg n tag port spid ok=1 p0 p1 pt=0 r0 r1 s0 s1 w0 w1 conns0 conns1 args incr llen
    cfg=c$c n=$REQS args=(-c "$c" -n "$REQS")
    [ "$p" != 1 ] && cfg=c${c}p$p n=$PIPE_REQS args=(-c "$c" -n "$PIPE_REQS" -P "$p")
    tag=timed-$t.$cfg.$rep
    rcli flushall >/dev/null
    conns0=$(info_field stats total_connections_received) # before the proxy starts: warm connections count
    start_target "$t" "$tag" || return
    port=$(target_port "$t")
    spid=""
    if [ "$t" != direct ]; then
        sample_conns "$PID_OF" >"$WORKDIR/$tag.conns" 2>/dev/null &
        spid=$!
        PIDS+=("$spid")
    fi
    p0=$(cpu_ticks "$PID_OF") r0=$(cpu_ticks "$REDIS_PID") s0=$(busy_ticks) w0=$(date +%s.%N)
    BENCH_CPU=0
    bench "$tag" "$port" "${args[@]}" -t "$TESTS" || ok=0
    bench "$tag.mget" "$port" "${args[@]}" "${MGET10[@]}" || ok=0
    p1=$(cpu_ticks "$PID_OF") r1=$(cpu_ticks "$REDIS_PID") s1=$(busy_ticks) w1=$(date +%s.%N)
    [ -n "$spid" ] && stop "$spid" TERM
    conns1=$(info_field stats total_connections_received)
    stop_target "$t" "$tag"

    local name rps p50 p99
    while IFS=$'\t' read -r name rps p50 p99; do
        case $name in MSET*) name=MSET_10 ;; MGET*) name=MGET_10 ;; esac
        add "rps.$cfg.$name.$t" "$rps"
        add "p50.$cfg.$name.$t" "$p50"
        add "p99.$cfg.$name.$t" "$p99"
    done < <(awk -F'","' '/^"/ && !/^"test"/ { sub(/^"/, "", $1); print $1 "\t" $2 "\t" $5 "\t" $7 }' \
        "$WORKDIR/$tag.csv" "$WORKDIR/$tag.mget.csv")
    if [ "$ok" = 1 ] && [ -n "$p0" ] && [ -n "$p1" ] && [ -n "$r0" ] && [ -n "$r1" ]; then
        [ "$t" != direct ] && pt=$((p1 - p0)) && add "cpu.$cfg.$t" "$(calc "$pt / $CLK_TCK * 1e6 / (6 * $n)")"
        add "rcpu.$cfg.$t" "$(calc "($r1 - $r0) / $CLK_TCK * 1e6 / (6 * $n)")"
        # what the rest of the machine used meanwhile: all busy CPU less proxy, redis, benchmark
        add "other.$cfg.$t" "$(calc "100 * (($s1 - $s0 - ($r1 - $r0) - $pt) / $CLK_TCK - $BENCH_CPU) / (($w1 - $w0) * $NCPU)")"
    fi
    # connections redis accepted from just before the proxy started to the end (less the INFO's own)
    [ -n "$conns0" ] && [ -n "$conns1" ] && add "opened.$cfg.$t" $((conns1 - conns0 - 1))
    if [ -n "$spid" ]; then
        add "conns.$cfg.$t" "$(awk '$1 > m { m = $1 } END { print m + 0 }' "$WORKDIR/$tag.conns")"
        awk '$3 != "-" && $3 > 0 { exit 1 }' "$WORKDIR/$tag.conns" ||
            problem "$tag: connections to the redis port owned by another process than $t (pid $PID_OF): $(awk '$3 != "-" && $3 > 0' "$WORKDIR/$tag.conns" | head -3 | tr '\n' ' ') (all, $t's, others'; $WORKDIR/$tag.conns)"
    fi
    # No INCR or LPUSH lost or doubled: each INCR adds 1 to one counter:* key, each LPUSH one
    # element to mylist, and redis-benchmark sends exactly -n of each.
    # shellcheck disable=SC2016
    incr=$(rcli eval 'local s = 0 for _, k in ipairs(redis.call("keys", "counter:*")) do s = s + tonumber(redis.call("get", k)) end return s' 0)
    llen=$(rcli llen mylist)
    if [ "$incr" = "$n" ] && [ "$llen" = "$n" ]; then
        WRITES_OK[$t]=$((${WRITES_OK[$t]:-0} + 1))
    else
        WRITES_BAD[$t]=$((${WRITES_BAD[$t]:-0} + 1))
        problem "$tag: after $n INCR and $n LPUSH requests redis holds counter sum $incr and list length $llen (a failed benchmark run counts too)"
    fi
    if [ "$t" = sluice ]; then
        R[sluice_stats]=$(grep -o 'conns_opened=.*' "$WORKDIR/$tag.err" | tail -1)
    fi
    log "  $t $cfg: $(awk -F'","' '/^"/ && !/^"test"/ { sub(/^"/, "", $1); sub(/ .*/, "", $1); printf "%s %.0f  ", $1, $2 }' \
        "$WORKDIR/$tag.csv" "$WORKDIR/$tag.mget.csv")${spid:+upstream conns max $(awk '$1 > m { m = $1 } END { print m + 0 }' "$WORKDIR/$tag.conns")}"
}
declare -A WRITES_OK WRITES_BAD

# bench_timed: every block, REPS rounds; in each round, each -c/-P block runs for every target
# back to back, so that the targets of one block are measured minutes apart at most.
bench_timed() {
    local rep c p t
    for ((rep = 1; rep <= REPS; rep++)); do
        for c in $CLIENTS; do
            for p in 1 "$PIPELINE"; do
                log "timed: round $rep/$REPS, -c $c$([ "$p" != 1 ] && echo " -P $p")"
                for t in $TARGETS; do bench_block "$t" "$c" "$p" "$rep"; done
            done
        done
    done
    finalise
}

# ---------------------------------------------------------------- report

fmt() { # fmt VALUE DECIMALS
    [ -z "${1:-}" ] && { printf -- '-'; return; }
    awk -v v="$1" -v d="$2" 'BEGIN { s = sprintf("%.*f", d, v); n = split(s, p, "."); i = p[1]; neg = (i ~ /^-/); if (neg) i = substr(i, 2); o = ""; while (length(i) > 3) { o = "," substr(i, length(i) - 2) o; i = substr(i, 1, length(i) - 3) } o = i o; if (neg) o = "-" o; if (n > 1) o = o "." p[2]; printf "%s", o }'
}
ratio() { # ratio A B -> A/B with 2 decimals, or -
    if [ -n "${1:-}" ] && [ -n "${2:-}" ] && awk -v b="$2" 'BEGIN { exit !(b > 0) }'; then
        awk -v a="$1" -v b="$2" 'BEGIN { printf "%.2f", a / b }'
    else
        printf -- '-'
    fi
}

srow() { # srow LABEL KEY DECIMALS: one value per target
    local t line
    line=$(printf '%-52s' "$1")
    for t in $TARGETS; do line+=$(printf ' %12s' "$(fmt "${R[$2.$t]:-}" "$3")"); done
    echo "$line"
}

report() {
    local t c p cfg test line head n
    echo
    echo "Redis (RESP) through proxies: redis-server $REDIS_VER direct, sluice $SLUICE_REV (workers 1, max_connections 4),"
    echo "nutcracker $NC_VER (server_connections $NC_SERVER_CONNECTIONS), HAProxy $HAPROXY_VER (mode tcp, nbthread 1); redis-benchmark $BENCH_VER"
    echo "$(date -u '+%Y-%m-%d %H:%M UTC'), $(uname -r), $(nproc) CPUs shared by redis-benchmark, proxy and redis-server"
    echo "-n per test: $REQS (no pipelining), $PIPE_REQS (-P $PIPELINE); -r $KEYSPACE; callgrind/strace: -c 50 -t set,get -n $INSTR_REQS"
    echo "timed blocks: $REPS round(s), each block a fresh proxy on a flushed redis; medians over rounds (max for conns and unattributed CPU)"
    if want timed; then
        for c in $CLIENTS; do
            for p in 1 "$PIPELINE"; do
                cfg=c$c
                n=$REQS
                [ "$p" != 1 ] && cfg=c${c}p$p n=$PIPE_REQS
                echo
                head="-c $c$([ "$p" != 1 ] && echo " -P $p"), -n $n"
                line=$(printf '%-26s' "$head")
                for t in $TARGETS; do line+=$(printf ' | %-31s' "$t"); done
                echo "$line"
                line=$(printf '%-26s' "test")
                for t in $TARGETS; do line+=$(printf ' | %9s %5s %7s %7s' "req/s" "x dir" "p50 ms" "p99 ms"); done
                echo "$line"
                for test in $ROWS; do
                    line=$(printf '%-26s' "$test")
                    for t in $TARGETS; do
                        line+=$(printf ' | %9s %5s %7s %7s' "$(fmt "${R[rps.$cfg.$test.$t]:-}" 0)" \
                            "$(ratio "${R[rps.$cfg.$test.$t]:-}" "${R[rps.$cfg.$test.direct]:-}")" \
                            "$(fmt "${R[p50.$cfg.$test.$t]:-}" 3)" "$(fmt "${R[p99.$cfg.$test.$t]:-}" 3)")
                    done
                    echo "$line"
                done
                line=$(printf '%-26s' "geomean x direct")
                for t in $TARGETS; do
                    local g
                    g=$(for test in $ROWS; do echo "${R[rps.$cfg.$test.$t]:-} ${R[rps.$cfg.$test.direct]:-}"; done |
                        awk 'NF == 2 && $2 > 0 { s += log($1 / $2); k++ } END { if (k) printf "%.2f", exp(s / k); else printf "-" }')
                    line+=$(printf ' | %9s %5s %7s %7s' "" "$g" "" "")
                done
                echo "$line"
                line=$(printf '%-26s' "proxy CPU us/request")
                for t in $TARGETS; do line+=$(printf ' | %9s %5s %7s %7s' "$(fmt "${R[cpu.$cfg.$t]:-}" 2)" "" "" ""); done
                echo "$line"
                line=$(printf '%-26s' "redis CPU us/request")
                for t in $TARGETS; do line+=$(printf ' | %9s %5s %7s %7s' "$(fmt "${R[rcpu.$cfg.$t]:-}" 2)" "" "" ""); done
                echo "$line"
                line=$(printf '%-26s' "unattributed CPU %")
                for t in $TARGETS; do line+=$(printf ' | %9s %5s %7s %7s' "$(fmt "${R[other.$cfg.$t]:-}" 1)" "" "" ""); done
                echo "$line"
                line=$(printf '%-26s' "upstream conns (max seen)")
                for t in $TARGETS; do
                    if [ "$t" = direct ]; then line+=$(printf ' | %9s %5s %7s %7s' "($c)" "" "" ""); else
                        line+=$(printf ' | %9s %5s %7s %7s' "$(fmt "${R[conns.$cfg.$t]:-}" 0)" "" "" ""); fi
                done
                echo "$line"
                line=$(printf '%-26s' "upstream conns opened")
                for t in $TARGETS; do line+=$(printf ' | %9s %5s %7s %7s' "$(fmt "${R[opened.$cfg.$t]:-}" 0)$([ "$t" = direct ] && echo "*")" "" "" ""); done
                echo "$line"
            done
        done
    fi
    echo
    line=$(printf '%-52s' "counts (stable), -c 50 -t set,get")
    for t in $TARGETS; do line+=$(printf ' %12s' "$t"); done
    echo "$line"
    srow "instructions per request (callgrind Ir)" ir 0
    srow "syscalls per request (strace -f -c)" sys 2
    srow "redis commands per client request" upcmd 3
    echo "(direct: the instructions and syscalls are redis-server's own; *: its connections are the benchmark's)"
    echo
    for t in $TARGETS; do
        [ -n "${R[systop.$t]:-}" ] && echo "top syscalls, $t: ${R[systop.$t]}"
    done
    for t in $TARGETS; do
        local w="not run"
        if [ -n "${WRITES_OK[$t]:-}${WRITES_BAD[$t]:-}" ]; then
            w="${WRITES_OK[$t]:-0} of $((${WRITES_OK[$t]:-0} + ${WRITES_BAD[$t]:-0})) blocks exact"
        fi
        echo "correctness, $t: pipelined check ${R[check.$t]:-not run}; INCR/LPUSH counts $w"
    done
    [ -n "${R[sluice_stats]:-}" ] && echo "sluice pool stats (its last timed block): ${R[sluice_stats]}"
    local l
    if [ ${#PROBLEMS[@]} -gt 0 ]; then
        echo
        echo "problems:"
        for l in "${PROBLEMS[@]}"; do echo "  - $l"; done
    fi
    echo
    echo "logs, configs and raw outputs: $WORKDIR$([ "$OWN_WORKDIR" = 1 ] && [ "$KEEP" != 1 ] && [ ${#PROBLEMS[@]} -eq 0 ] && echo " (removed at exit; KEEP=1 keeps it)")"
}

# ---------------------------------------------------------------- main

START=$SECONDS
setup
write_configs
check_configs
log "workdir $WORKDIR; targets: $TARGETS; sluice $SLUICE_REV"
start_redis redis
if want check; then for t in $TARGETS; do check_target "$t"; done; fi
if want callgrind; then for t in $TARGETS; do bench_callgrind "$t"; done; fi
if want strace; then for t in $TARGETS; do bench_strace "$t"; done; fi
if want timed; then bench_timed; fi
stop "$REDIS_PID"
report | tee "$WORKDIR/results.txt"
log "done in $((SECONDS - START)) s"
