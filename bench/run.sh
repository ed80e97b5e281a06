#!/usr/bin/env bash
# sluice vs HAProxy (mode tcp): the same upstream, the same load, one table.
#
# Debian packages this script installs (apt-get install -y):
#   haproxy valgrind strace linux-perf gcc make cmake pkg-config libevent-dev
#   libssl-dev libyaml-dev iproute2 procps
#
#   bash bench/run.sh            # the full run, about 2-3 minutes on 2 cores (bounded: < 10)
#   QUICK=1 bash bench/run.sh    # smaller run, under a minute
#
# Benchmarks (see bench/README.md):
#   1. raw pass-through of BYTES: MB/s and proxy CPU seconds per GiB
#   2. length-framed request/response, CLIENTS clients; sluice pools them over
#      4 upstream connections, HAProxy forwards 1:1: instructions per request
#      (callgrind), syscalls per request (strace; and perf's syscall
#      tracepoint in the timed run), upstream connections, and req/s, p50, p99
#   3. RSS bytes per idle client connection (IDLE_CONNS clients on a line listener)
#
# Knobs (environment):
#   QUICK=1          smaller defaults for everything below
#   BYTES            bytes pushed per raw run (default 1 GiB; QUICK 256 MiB)
#   RAW_REPS         raw runs per proxy, the median is reported (default 5; QUICK 1)
#   CLIENTS          clients in benchmark 2 (default 1000)
#   DEPTH            requests each client keeps in flight (default 4)
#   PAYLOAD          bytes after the 4-byte length prefix (default 32)
#   INSTR_REQS       measured requests under callgrind and strace (default 20000; QUICK 10000)
#   PLAIN_REQS       requests of the plain (timed) run (default 1000000; QUICK 100000)
#   LEN_REPS         runs of each benchmark-2 measurement, the median is reported (default 3; QUICK 1)
#   IDLE_CONNS       idle clients in benchmark 3 (default 9000)
#   ONLY             any of "raw len idle" (default: all three)
#   PROXIES          any of "sluice haproxy" (default: both)
#   SKIP_BUILD=1     use build-bench/sluice as it is
#   WORKDIR          where configs, logs and raw outputs go (default: a new /tmp/sluice-bench.*)
#
# Ports used: 127.0.0.1:30001-30003 (upstreams), 30009-30012 (sluice), 30020-30022 (HAProxy).
# Every process this script starts is stopped by its PID, on exit too.
set -uo pipefail

HERE=$(cd "$(dirname "$0")" && pwd)
ROOT=$(cd "$HERE/.." && pwd)

QUICK=${QUICK:-0}
if [ "$QUICK" = 1 ]; then
    BYTES=${BYTES:-268435456}
    RAW_REPS=${RAW_REPS:-1}
    INSTR_REQS=${INSTR_REQS:-10000}
    PLAIN_REQS=${PLAIN_REQS:-100000}
    LEN_REPS=${LEN_REPS:-1}
else
    BYTES=${BYTES:-1073741824}
    RAW_REPS=${RAW_REPS:-5}
    INSTR_REQS=${INSTR_REQS:-20000}
    PLAIN_REQS=${PLAIN_REQS:-1000000}
    LEN_REPS=${LEN_REPS:-3}
fi
CLIENTS=${CLIENTS:-1000}
DEPTH=${DEPTH:-4}
PAYLOAD=${PAYLOAD:-32}
IDLE_CONNS=${IDLE_CONNS:-9000}
ONLY=${ONLY:-raw len idle}
PROXIES=${PROXIES:-sluice haproxy}
SKIP_BUILD=${SKIP_BUILD:-0}
WORKDIR=${WORKDIR:-$(mktemp -d /tmp/sluice-bench.XXXXXX)}
mkdir -p "$WORKDIR"

P_SINK=30001 P_ECHO_LEN=30002 P_ECHO_LINE=30003
P_SL_ADMIN=30009 P_SL_RAW=30010 P_SL_LEN=30011 P_SL_LINE=30012
P_HA_RAW=30020 P_HA_LEN=30021 P_HA_LINE=30022
ALL_PORTS="$P_SINK $P_ECHO_LEN $P_ECHO_LINE $P_SL_ADMIN $P_SL_RAW $P_SL_LEN $P_SL_LINE $P_HA_RAW $P_HA_LEN $P_HA_LINE"

SLUICE=$ROOT/build-bench/sluice
BT=$WORKDIR/benchtool
CLK_TCK=$(getconf CLK_TCK)
PER_INSTR=$(( (INSTR_REQS + CLIENTS - 1) / CLIENTS ))
PER_PLAIN=$(( (PLAIN_REQS + CLIENTS - 1) / CLIENTS ))

declare -A R          # results: R[metric.proxy]
declare -a PIDS=()    # every process started here, stopped by PID
declare -a PROBLEMS=()
# shellcheck source=bench/lib.sh
. "$HERE/lib.sh"


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
}
trap cleanup EXIT
trap 'exit 130' INT TERM



rss_kb() { awk '/^VmRSS:/ { print $2 }' "/proc/$1/status"; }
nfds() { ls "/proc/$1/fd" | wc -l; }
kv() { grep -o "\<$2=[^ ]*" "$1" 2>/dev/null | tail -1 | cut -d= -f2; } # kv FILE KEY
spread() { tr ' ' '\n' | grep -v '^$' | sort -g | awk 'NR == 1 { lo = $1 } { hi = $1 } END { if (NR > 1) printf "%s..%s", lo, hi }'; }

# ---------------------------------------------------------------- setup

setup() {
    local pkgs=(haproxy valgrind strace linux-perf gcc make cmake pkg-config libevent-dev libssl-dev libyaml-dev iproute2 procps)
    export DEBIAN_FRONTEND=noninteractive
    log "installing: ${pkgs[*]}"
    if ! apt-get install -y -qq --no-install-recommends "${pkgs[@]}" >"$WORKDIR/apt.log" 2>&1; then
        apt-get update -qq >>"$WORKDIR/apt.log" 2>&1
        apt-get install -y -qq --no-install-recommends "${pkgs[@]}" >>"$WORKDIR/apt.log" 2>&1 ||
            { cat "$WORKDIR/apt.log" >&2; echo "apt-get install failed" >&2; exit 1; }
    fi
    if [ "$SKIP_BUILD" != 1 ]; then
        log "building sluice in build-bench (RelWithDebInfo)"
        (cd "$ROOT" && cmake -S . -B build-bench -DCMAKE_BUILD_TYPE=RelWithDebInfo >"$WORKDIR/build.log" 2>&1 &&
            cmake --build build-bench -j"$(nproc)" --target sluice >>"$WORKDIR/build.log" 2>&1) ||
            { tail -30 "$WORKDIR/build.log" >&2; echo "sluice build failed" >&2; exit 1; }
    fi
    [ -x "$SLUICE" ] || { echo "no $SLUICE" >&2; exit 1; }
    cc -O2 -Wall -Wextra -o "$BT" "$HERE/benchtool.c" || { echo "benchtool build failed" >&2; exit 1; }
    ulimit -n 20000 2>/dev/null || ulimit -n "$(ulimit -Hn)"
    local p
    for p in $ALL_PORTS; do
        if [ -n "$(ss -Hltn "sport = :$p")" ]; then
            echo "port 127.0.0.1:$p is in use; this script needs $ALL_PORTS" >&2
            exit 1
        fi
    done
    SLUICE_REV=$(cd "$ROOT" && git rev-parse --short HEAD 2>/dev/null)$(cd "$ROOT" && git diff --quiet HEAD 2>/dev/null || echo "+dirty")
    HAPROXY_VER=$(haproxy -v | awk 'NR == 1 { print $3 }')
    HAVE_PERF=0 # perf counts syscalls at a tracepoint; a kernel without perf events skips that row
    perf stat -x, -e raw_syscalls:sys_enter -o /dev/null -- true >/dev/null 2>&1 && HAVE_PERF=1
}

# ---------------------------------------------------------------- configs

sluice_conf() { # sluice_conf raw|len|idle FILE
    local kind=$1 f=$2
    cat >"$f" <<EOF
workers: 1
log: { level: info, format: text }
admin: { bind: 127.0.0.1:$P_SL_ADMIN }
EOF
    case $kind in
    raw)
        cat >>"$f" <<EOF
listeners:
  - name: raw
    bind: 127.0.0.1:$P_SL_RAW
    codec: raw
    cluster: sink
clusters:
  - name: sink
    servers: [{ address: 127.0.0.1:$P_SINK }]
    pool: { min_idle: 0 }
EOF
        ;;
    len)
        # Deadlines raised so that the 20-50x slowdown under valgrind cannot fire them.
        cat >>"$f" <<EOF
listeners:
  - name: len
    bind: 127.0.0.1:$P_SL_LEN
    codec: { type: length, field_size: 4 }
    cluster: echo
    max_clients: 20000
    timeouts: { idle: 600s, read: 60s, request: 120s }
clusters:
  - name: echo
    servers: [{ address: 127.0.0.1:$P_ECHO_LEN }]
    pool: { max_connections: 4, max_pipeline: 256, queue: { max: 1000000, timeout: 60s } }
    timeouts: { connect: 5s, read: 60s, write: 60s }
EOF
        ;;
    idle)
        cat >>"$f" <<EOF
listeners:
  - name: line
    bind: 127.0.0.1:$P_SL_LINE
    codec: line
    cluster: echo
    max_clients: 20000
    timeouts: { idle: 600s }
clusters:
  - name: echo
    servers: [{ address: 127.0.0.1:$P_ECHO_LINE }]
    pool: { max_connections: 4 }
EOF
        ;;
    esac
}

haproxy_conf() { # haproxy_conf raw|len|idle FILE
    local kind=$1 f=$2 port upstream maxconn=4000
    case $kind in
    raw) port=$P_HA_RAW upstream=$P_SINK ;;
    len) port=$P_HA_LEN upstream=$P_ECHO_LEN ;;
    idle) port=$P_HA_LINE upstream=$P_ECHO_LINE maxconn=9900 ;; # 2 fds per client: 19,814 < 20,000
    esac
    cat >"$f" <<EOF
global
    nbthread 1
    maxconn $maxconn
defaults
    mode tcp
    maxconn $maxconn
    timeout connect 5s
    timeout client 10m
    timeout server 10m
frontend f_$kind
    bind 127.0.0.1:$port
    default_backend b_$kind
backend b_$kind
    server s1 127.0.0.1:$upstream
EOF
}

proxy_port() { # proxy_port PROXY KIND
    case $1.$2 in
    sluice.raw) echo $P_SL_RAW ;; sluice.len) echo $P_SL_LEN ;; sluice.idle) echo $P_SL_LINE ;;
    haproxy.raw) echo $P_HA_RAW ;; haproxy.len) echo $P_HA_LEN ;; haproxy.idle) echo $P_HA_LINE ;;
    esac
}

# start_proxy PROXY KIND TAG [WRAPPER...]: sets PROXY_PID; logs in $WORKDIR/TAG.err
start_proxy() {
    local proxy=$1 kind=$2 tag=$3 conf
    shift 3
    if [ "$proxy" = sluice ]; then
        conf=$WORKDIR/sluice-$kind.yaml
        sluice_conf "$kind" "$conf"
        start "$tag" "$@" "$SLUICE" -c "$conf"
    else
        conf=$WORKDIR/haproxy-$kind.cfg
        haproxy_conf "$kind" "$conf"
        start "$tag" "$@" haproxy -db -f "$conf"
    fi
    PROXY_PID=$LAST_PID
    if ! wait_listen "$(proxy_port "$proxy" "$kind")" "$PROXY_PID" 120; then
        problem "$proxy ($tag) did not start listening; log: $(tail -3 "$WORKDIR/$tag.err" | tr '\n' ' ')"
        stop "$PROXY_PID"
        return 1
    fi
    sleep 0.5 # warm pool connections, if any
}

# stop_proxy PROXY TAG: stop it and note anything odd it logged or how it ended.
stop_proxy() {
    local proxy=$1 tag=$2 rc
    if ! alive "$PROXY_PID"; then
        wait "$PROXY_PID" 2>/dev/null
        problem "$proxy ($tag) exited during the run (status $?); log tail: $(tail -3 "$WORKDIR/$tag.err" | tr '\n' ' ')"
        return
    fi
    stop "$PROXY_PID" TERM
    rc=$?
    if [ "$rc" != 0 ] && [ "$proxy" = sluice ]; then
        problem "sluice ($tag) exited with status $rc on SIGTERM; log tail: $(tail -3 "$WORKDIR/$tag.err" | tr '\n' ' ')"
    fi
    if [ "$proxy" = sluice ] && grep -Eq '^[^ ]+ +(warn|error) ' "$WORKDIR/$tag.err"; then
        problem "sluice ($tag) logged $(grep -Ec '^[^ ]+ +(warn|error) ' "$WORKDIR/$tag.err") warn/error lines, first: $(grep -Em1 '^[^ ]+ +(warn|error) ' "$WORKDIR/$tag.err")"
    fi
}

# start_upstream KIND TAG: a fresh upstream for one run (so its counters are that run's). Sets UP_PID, UP_STATS.
start_upstream() {
    local kind=$1 tag=$2 port mode=echo
    case $kind in raw) port=$P_SINK mode=sink ;; len) port=$P_ECHO_LEN ;; idle) port=$P_ECHO_LINE ;; esac
    UP_STATS=$WORKDIR/$tag.upstream.stats
    start "$tag.upstream" "$BT" server "$port" "$mode" "$UP_STATS" 1800
    UP_PID=$LAST_PID
    wait_for "$WORKDIR/$tag.upstream.out" '^ready' "$UP_PID" 10 || { problem "upstream for $tag did not start"; return 1; }
}

# ---------------------------------------------------------------- 1. raw

bench_raw() {
    local proxy=$1
    local tag=raw-$proxy rep t0 t1 mbs=() cpus=()
    log "raw: $proxy, $RAW_REPS x $BYTES bytes"
    start_upstream raw "$tag" || return
    start_proxy "$proxy" raw "$tag" || { stop "$UP_PID"; return; }
    for ((rep = 1; rep <= RAW_REPS; rep++)); do
        t0=$(cpu_ticks "$PROXY_PID")
        if ! timeout 300 "$BT" source 127.0.0.1 "$(proxy_port "$proxy" raw)" "$BYTES" 290 \
            >"$WORKDIR/$tag.source.$rep" 2>&1; then
            problem "raw through $proxy, run $rep: $(tr '\n' ' ' <"$WORKDIR/$tag.source.$rep")"
            continue
        fi
        t1=$(cpu_ticks "$PROXY_PID")
        mbs+=("$(kv "$WORKDIR/$tag.source.$rep" mb_per_s)")
        cpus+=("$(calc "($t1 - $t0) / $CLK_TCK / ($BYTES / 1073741824)")")
        log "  run $rep: $(cat "$WORKDIR/$tag.source.$rep"), proxy cpu ${cpus[-1]} s/GiB"
    done
    stop_proxy "$proxy" "$tag"
    stop "$UP_PID"
    [ ${#mbs[@]} -gt 0 ] || return
    R[raw_mbs.$proxy]=$(echo "${mbs[*]}" | median)
    R[raw_cpu.$proxy]=$(echo "${cpus[*]}" | median)
    R[raw_mbs.$proxy.runs]=$(echo "${mbs[*]}" | spread)
    R[raw_cpu.$proxy.runs]=$(echo "${cpus[*]}" | spread)
}

bench_raw_direct() {
    local tag=raw-direct rep mbs=()
    start_upstream raw "$tag" || return
    for ((rep = 1; rep <= RAW_REPS; rep++)); do
        timeout 300 "$BT" source 127.0.0.1 "$P_SINK" "$BYTES" 290 >"$WORKDIR/$tag.source.$rep" 2>&1 &&
            mbs+=("$(kv "$WORKDIR/$tag.source.$rep" mb_per_s)")
    done
    stop "$UP_PID"
    [ ${#mbs[@]} -gt 0 ] && R[raw_mbs.direct]=$(echo "${mbs[*]}" | median)
    log "raw: no proxy: ${R[raw_mbs.direct]:-?} MB/s"
}

# ---------------------------------------------------------------- 2. length-framed

# run_load_paused TAG PORT PER BEFORE_CMD AFTER_CMD: warm up, run BEFORE_CMD, measure, run AFTER_CMD.
run_load_paused() {
    local tag=$1 port=$2 per=$3 before=$4 after=$5 ctl lpid rc=0
    ctl=$WORKDIR/$tag.ctl
    rm -f "$ctl"
    mkfifo "$ctl"
    "$BT" load 127.0.0.1 "$port" "$CLIENTS" "$per" "$DEPTH" "$PAYLOAD" 900 1 \
        <"$ctl" >"$WORKDIR/$tag.load" 2>"$WORKDIR/$tag.load.err" &
    lpid=$!
    PIDS+=("$lpid")
    exec {CTL}>"$ctl"
    if ! wait_for "$WORKDIR/$tag.load" '^warm' "$lpid" 600; then
        problem "$tag: the warm-up did not finish: $(tr '\n' ' ' <"$WORKDIR/$tag.load.err")"
        rc=1
    else
        eval "$before" || rc=1
        echo go >&"$CTL"
        if ! wait_for "$WORKDIR/$tag.load" '^done' "$lpid" 900; then
            problem "$tag: the measured phase did not finish: $(tr '\n' ' ' <"$WORKDIR/$tag.load.err")"
            rc=1
        else
            eval "$after" || rc=1
        fi
        echo go >&"$CTL" 2>/dev/null
    fi
    exec {CTL}>&-
    stop "$lpid" || true
    rm -f "$ctl"
    if [ "$(kv "$WORKDIR/$tag.load" errors)" != 0 ] || [ -s "$WORKDIR/$tag.load.err" ]; then
        problem "$tag: load errors: $(kv "$WORKDIR/$tag.load" errors) $(head -3 "$WORKDIR/$tag.load.err" | tr '\n' ' ')"
        rc=1
    fi
    return $rc
}

bench_len_plain() {
    local proxy=$1
    local tag=len-plain-$proxy-$REP port
    port=$(proxy_port "$proxy" len)
    log "len: $proxy plain run, $CLIENTS clients x $PER_PLAIN requests, depth $DEPTH"
    start_upstream len "$tag" || return
    start_proxy "$proxy" len "$tag" || { stop "$UP_PID"; return; }
    # The measured phase only: proxy CPU ticks, and syscalls counted in the
    # kernel (perf's raw_syscalls tracepoint: no PMU needed, no strace slowdown).
    T0="" T1="" PERF_PID=""
    # shellcheck disable=SC2016
    run_load_paused "$tag" "$port" "$PER_PLAIN" \
        'T0=$(cpu_ticks "$PROXY_PID"); if [ "$HAVE_PERF" = 1 ]; then start "$tag.perf" perf stat -x, -e raw_syscalls:sys_enter -o "$WORKDIR/$tag.perf.out" -p "$PROXY_PID"; PERF_PID=$LAST_PID; sleep 0.3; fi' \
        'T1=$(cpu_ticks "$PROXY_PID"); [ -z "$PERF_PID" ] || stop "$PERF_PID" INT; true'
    [ -n "$PERF_PID" ] && alive "$PERF_PID" && stop "$PERF_PID" INT
    log "  $(head -1 "$WORKDIR/$tag.load" | grep -v '^warm')$(grep '^requests' "$WORKDIR/$tag.load")"
    stop_proxy "$proxy" "$tag"
    stop "$UP_PID"
    if [ "$proxy" = sluice ]; then
        R[len_queued.sluice]="$(kv "$WORKDIR/$tag.err" requests) requests, $(kv "$WORKDIR/$tag.err" queued) waited in the queue for a pipeline slot, $(kv "$WORKDIR/$tag.err" conns_opened) connections opened"
    fi
    R[len_rps.$proxy]=$(kv "$WORKDIR/$tag.load" req_per_s)
    R[len_p50.$proxy]=$(kv "$WORKDIR/$tag.load" p50_ms)
    R[len_p99.$proxy]=$(kv "$WORKDIR/$tag.load" p99_ms)
    R[len_conns.$proxy]=$(kv "$UP_STATS" accepted)
    R[len_maxopen.$proxy]=$(kv "$UP_STATS" max_open)
    local req calls
    req=$(kv "$WORKDIR/$tag.load" requests)
    if [ -n "$req" ] && [ "$req" -gt 0 ] && [ -n "$T0" ] && [ -n "$T1" ]; then
        R[len_cpuus.$proxy]=$(calc "($T1 - $T0) / $CLK_TCK * 1e6 / $req")
        calls=$(awk -F, '$3 ~ /raw_syscalls:sys_enter/ { print $1 }' "$WORKDIR/$tag.perf.out" 2>/dev/null)
        [[ "$calls" =~ ^[0-9]+$ ]] && R[len_perfsys.$proxy]=$(calc "$calls / $req")
    fi
}

bench_len_callgrind() {
    local proxy=$1
    local tag=len-callgrind-$proxy-$REP port out
    port=$(proxy_port "$proxy" len)
    out=$WORKDIR/$tag.callgrind
    rm -f "$out"*
    log "len: $proxy under callgrind, $CLIENTS clients x $PER_INSTR requests"
    start_upstream len "$tag" || return
    start_proxy "$proxy" len "$tag" valgrind --tool=callgrind --callgrind-out-file="$out" || { stop "$UP_PID"; return; }
    if run_load_paused "$tag" "$port" "$PER_INSTR" \
        "callgrind_control -z $PROXY_PID >>$WORKDIR/$tag.ctl.log 2>&1" \
        "callgrind_control -d $PROXY_PID >>$WORKDIR/$tag.ctl.log 2>&1"; then
        local dump ir req
        dump=$(grep -l '^desc: Trigger: .*[Dd]ump' "$out"* 2>/dev/null | head -1)
        ir=$([ -n "$dump" ] && awk '/^summary:/ { print $2 }' "$dump")
        req=$(kv "$WORKDIR/$tag.load" requests)
        if [ -n "$ir" ] && [ "${req:-0}" -gt 0 ]; then
            R[len_ir.$proxy]=$(calc "$ir / $req")
            log "  $ir Ir / $req requests = ${R[len_ir.$proxy]}"
        else
            problem "$tag: no callgrind dump ($(tr '\n' ' ' <"$WORKDIR/$tag.ctl.log"))"
        fi
    fi
    stop_proxy "$proxy" "$tag"
    stop "$UP_PID"
}

bench_len_strace() {
    local proxy=$1
    local tag=len-strace-$proxy-$REP port
    port=$(proxy_port "$proxy" len)
    log "len: $proxy under strace -f -c, $CLIENTS clients x $PER_INSTR requests"
    start_upstream len "$tag" || return
    start_proxy "$proxy" len "$tag" || { stop "$UP_PID"; return; }
    STRACE_PID=""
    # shellcheck disable=SC2016
    if run_load_paused "$tag" "$port" "$PER_INSTR" \
        'start "$tag.strace" strace -f -c -o "$WORKDIR/$tag.strace.out" -p "$PROXY_PID"; STRACE_PID=$LAST_PID; wait_for "$WORKDIR/$tag.strace.err" "attached" "$STRACE_PID" 10 && sleep 0.5' \
        'stop "$STRACE_PID" INT; true'; then
        local calls req
        calls=$(awk '$NF == "total" { print $4 }' "$WORKDIR/$tag.strace.out")
        req=$(kv "$WORKDIR/$tag.load" requests)
        if [ -n "$calls" ] && [ "${req:-0}" -gt 0 ]; then
            R[len_sys.$proxy]=$(calc "$calls / $req")
            R[len_systop.$proxy]=$(awk 'NR > 2 && $NF != "total" && $1 !~ /^-/ { print $NF "=" $4 }' "$WORKDIR/$tag.strace.out" |
                sort -t= -k2 -rn | head -4 | tr '\n' ' ')
            log "  $calls syscalls / $req requests = ${R[len_sys.$proxy]} (${R[len_systop.$proxy]})"
        else
            problem "$tag: no strace summary ($(tail -2 "$WORKDIR/$tag.strace.err" | tr '\n' ' '))"
        fi
    fi
    [ -n "$STRACE_PID" ] && alive "$STRACE_PID" && stop "$STRACE_PID" INT
    stop_proxy "$proxy" "$tag"
    stop "$UP_PID"
}

# repeat N FUNC PROXY KEY...: run FUNC PROXY N times (REP=1..N); each KEY gets the median
# of the runs that produced it, and KEY.PROXY.runs all of them.
repeat() {
    local n=$1 fn=$2 proxy=$3 i k
    shift 3
    local -A vals=()
    for ((i = 1; i <= n; i++)); do
        for k in "$@"; do unset "R[$k.$proxy]"; done
        REP=$i "$fn" "$proxy"
        for k in "$@"; do
            [ -n "${R[$k.$proxy]:-}" ] && vals[$k]+="${R[$k.$proxy]} "
        done
    done
    for k in "$@"; do
        R[$k.$proxy]=$(echo "${vals[$k]:-}" | median)
        R[$k.$proxy.runs]=$(echo "${vals[$k]:-}" | spread)
    done
}

# ---------------------------------------------------------------- 3. idle RSS

bench_idle() {
    local proxy=$1
    local tag=idle-$proxy port rss0 rss1 fd0 fd1 ctl ipid i prev=-1 cur want
    port=$(proxy_port "$proxy" idle)
    want=$IDLE_CONNS # new fds to wait for: one per client, and HAProxy also connects each upstream
    [ "$proxy" = haproxy ] && want=$((2 * IDLE_CONNS))
    log "idle: $proxy, $IDLE_CONNS idle clients"
    start_upstream idle "$tag" || return
    start_proxy "$proxy" idle "$tag" || { stop "$UP_PID"; return; }
    sleep 1
    rss0=$(rss_kb "$PROXY_PID")
    fd0=$(nfds "$PROXY_PID")
    ctl=$WORKDIR/$tag.ctl
    rm -f "$ctl"
    mkfifo "$ctl"
    "$BT" idle 127.0.0.1 "$port" "$IDLE_CONNS" 300 <"$ctl" >"$WORKDIR/$tag.idle" 2>"$WORKDIR/$tag.idle.err" &
    ipid=$!
    PIDS+=("$ipid")
    exec {CTL}>"$ctl"
    if wait_for "$WORKDIR/$tag.idle" '^open' "$ipid" 240; then
        # until the proxy has accepted them all: its fd count stops growing
        for ((i = 0; i < 600; i++)); do
            cur=$(nfds "$PROXY_PID" 2>/dev/null || echo 0)
            [ "$cur" -ge $((fd0 + want)) ] && [ "$cur" = "$prev" ] && break
            prev=$cur
            sleep 0.2
        done
        sleep 1
        rss1=$(rss_kb "$PROXY_PID")
        fd1=$(nfds "$PROXY_PID")
        if [ "$fd1" -lt $((fd0 + want)) ]; then
            problem "$tag: $proxy holds $((fd1 - fd0)) new fds for $IDLE_CONNS idle clients"
        fi
        R[idle_rss.$proxy]=$(calc "($rss1 - $rss0) * 1024 / $IDLE_CONNS")
        R[idle_fds.$proxy]=$(calc "($fd1 - $fd0) / $IDLE_CONNS")
        R[idle_up.$proxy]=$(kv "$UP_STATS" max_open)
        log "  RSS ${rss0} kB -> ${rss1} kB, fds $fd0 -> $fd1: ${R[idle_rss.$proxy]} bytes/client"
    else
        problem "$tag: the idle clients did not connect: $(tr '\n' ' ' <"$WORKDIR/$tag.idle.err")"
    fi
    exec {CTL}>&-
    stop "$ipid" || true
    rm -f "$ctl"
    stop_proxy "$proxy" "$tag"
    stop "$UP_PID"
}

# ---------------------------------------------------------------- table

fmt() { # fmt VALUE DECIMALS
    [ -z "${1:-}" ] && { printf 'n/a'; return; }
    awk -v v="$1" -v d="$2" 'BEGIN { s = sprintf("%.*f", d, v); n = split(s, p, "."); i = p[1]; neg = (i ~ /^-/); if (neg) i = substr(i, 2); o = ""; while (length(i) > 3) { o = "," substr(i, length(i) - 2) o; i = substr(i, 1, length(i) - 3) } o = i o; if (neg) o = "-" o; if (n > 1) o = o "." p[2]; printf "%s", o }'
}

row() { # row LABEL KEY DECIMALS
    local a=${R[$2.sluice]:-} b=${R[$2.haproxy]:-} ratio=n/a
    if [ -n "$a" ] && [ -n "$b" ] && awk -v b="$b" 'BEGIN { exit !(b != 0) }'; then
        ratio=$(awk -v a="$a" -v b="$b" 'BEGIN { printf "%.3g", a / b }')
    fi
    printf '%-46s %14s %14s %10s\n' "$1" "$(fmt "$a" "$3")" "$(fmt "$b" "$3")" "$ratio"
}

report() {
    local line
    echo
    echo "sluice $SLUICE_REV vs HAProxy $HAPROXY_VER (mode tcp, nbthread 1; sluice workers: 1)"
    echo "$(date -u '+%Y-%m-%d %H:%M UTC'), $(uname -r), $(nproc) CPUs, $(awk '/MemTotal/ { printf "%.0f GiB", $2 / 1048576 }' /proc/meminfo)"
    echo "raw: BYTES=$BYTES x $RAW_REPS (median); len: $CLIENTS clients, depth $DEPTH, ${PAYLOAD}-byte payload," \
        "instrumented $((PER_INSTR * CLIENTS)) requests, timed $((PER_PLAIN * CLIENTS)), $LEN_REPS runs each (median);" \
        "idle: $IDLE_CONNS clients"
    echo
    printf '%-46s %14s %14s %10s\n' "metric" "sluice" "haproxy" "sluice/ha"
    printf '%-46s %14s %14s %10s\n' "----------------------------------------------" "--------------" "--------------" "----------"
    echo "stable (counts)"
    row "(2) instructions per request (callgrind Ir)" len_ir 0
    row "(2) syscalls per request (strace -f -c)" len_sys 2
    row "(2) syscalls per request (perf, timed run)" len_perfsys 2
    row "(2) upstream connections opened" len_conns 0
    row "(2) upstream connections open at most" len_maxopen 0
    row "(3) RSS bytes per idle client" idle_rss 0
    row "(3) proxy fds per idle client" idle_fds 2
    row "(3) upstream connections for idle clients" idle_up 0
    row "(1) proxy CPU seconds per GiB relayed" raw_cpu 3
    echo "wall clock (2 cores shared by load, proxy and upstream: noisy)"
    row "(1) raw throughput, MB/s" raw_mbs 0
    row "(2) requests per second" len_rps 0
    row "(2) p50 latency, ms" len_p50 2
    row "(2) p99 latency, ms" len_p99 2
    row "(2) proxy CPU microseconds per request" len_cpuus 2
    echo
    [ -n "${R[raw_mbs.direct]:-}" ] && echo "(1) without a proxy (client straight to the sink): $(fmt "${R[raw_mbs.direct]}" 0) MB/s"
    local k p ranges=""
    for k in raw_mbs raw_cpu len_ir len_sys len_perfsys len_rps len_p50 len_p99; do
        for p in sluice haproxy; do
            [ -n "${R[$k.$p.runs]:-}" ] && ranges+=$(printf '  %-12s %-8s %s' "$k" "$p" "${R[$k.$p.runs]}")$'\n'
        done
    done
    [ -n "$ranges" ] && printf 'ranges over runs (min..max; the table shows medians):\n%s' "$ranges"
    [ -n "${R[len_queued.sluice]:-}" ] && echo "(2) sluice pool (timed run): ${R[len_queued.sluice]}"
    [ -n "${R[len_systop.sluice]:-}" ] && echo "(2) sluice top syscalls: ${R[len_systop.sluice]}"
    [ -n "${R[len_systop.haproxy]:-}" ] && echo "(2) haproxy top syscalls: ${R[len_systop.haproxy]}"
    if [ ${#PROBLEMS[@]} -gt 0 ]; then
        echo
        echo "problems:"
        for line in "${PROBLEMS[@]}"; do echo "  - $line"; done
    fi
    echo
    echo "logs, configs and raw outputs: $WORKDIR"
}

# ---------------------------------------------------------------- main

setup
log "workdir $WORKDIR; sluice $SLUICE_REV; haproxy $HAPROXY_VER"
START=$SECONDS
for b in $ONLY; do
    case $b in
    raw)
        bench_raw_direct
        for p in $PROXIES; do bench_raw "$p"; done
        ;;
    len)
        for p in $PROXIES; do repeat "$LEN_REPS" bench_len_callgrind "$p" len_ir; done
        for p in $PROXIES; do repeat "$LEN_REPS" bench_len_strace "$p" len_sys; done
        for p in $PROXIES; do
            repeat "$LEN_REPS" bench_len_plain "$p" len_rps len_p50 len_p99 len_conns len_maxopen len_cpuus len_perfsys
        done
        ;;
    idle)
        for p in $PROXIES; do bench_idle "$p"; done
        ;;
    *) echo "unknown benchmark '$b' in ONLY (raw, len, idle)" >&2 ;;
    esac
done
report | tee "$WORKDIR/results.txt"
log "done in $((SECONDS - START)) s"
