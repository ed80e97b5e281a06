# Shared by bench/run.sh and bench/redis.sh: process control and small numeric helpers.
# The caller defines WORKDIR, PIDS=() and PROBLEMS=() before sourcing this file.

log() { printf '%s  %s\n' "$(date -u +%H:%M:%S)" "$*" >&2; }

problem() { PROBLEMS+=("$*"); log "PROBLEM: $*"; }

# start NAME CMD...: run CMD in the background, output in $WORKDIR/NAME.{out,err}; sets LAST_PID.
start() {
    local name=$1
    shift
    "$@" >"$WORKDIR/$name.out" 2>"$WORKDIR/$name.err" &
    LAST_PID=$!
    PIDS+=("$LAST_PID")
}

alive() { kill -0 "$1" 2>/dev/null; }

# stop PID [SIGNAL]: signal it, wait up to 20 s, then SIGKILL. Returns its exit status.
stop() {
    local pid=$1 sig=${2:-TERM} i rc
    if alive "$pid"; then
        kill -"$sig" "$pid" 2>/dev/null
        for ((i = 0; i < 200; i++)); do
            alive "$pid" || break
            sleep 0.1
        done
        if alive "$pid"; then
            log "pid $pid ignored SIG$sig for 20 s; SIGKILL"
            kill -KILL "$pid" 2>/dev/null
        fi
    fi
    wait "$pid" 2>/dev/null
    rc=$?
    local keep=() p
    for p in "${PIDS[@]}"; do
        [ "$p" = "$pid" ] || keep+=("$p")
    done
    PIDS=("${keep[@]}")
    return $rc
}

# wait_for FILE REGEX PID TIMEOUT_S: until FILE has a line matching REGEX.
wait_for() {
    local file=$1 re=$2 pid=$3 t=$4 i
    for ((i = 0; i < t * 10; i++)); do
        grep -Eq "$re" "$file" 2>/dev/null && return 0
        alive "$pid" || { grep -Eq "$re" "$file" 2>/dev/null && return 0; return 1; }
        sleep 0.1
    done
    return 1
}

# wait_listen PORT PID TIMEOUT_S: until something listens on 127.0.0.1:PORT.
wait_listen() {
    local port=$1 pid=$2 t=$3 i
    for ((i = 0; i < t * 10; i++)); do
        [ -n "$(ss -Hltn "sport = :$port")" ] && return 0
        alive "$pid" || return 1
        sleep 0.1
    done
    return 1
}

cpu_ticks() { # utime + stime of the whole process (all threads), in clock ticks
    awk '{ sub(/^.*\) /, ""); print $12 + $13 }' "/proc/$1/stat" 2>/dev/null
}

calc() { awk "BEGIN { printf \"%.6f\", $1 }"; }

median() { tr ' ' '\n' | grep -v '^$' | sort -g | awk '{ a[NR] = $1 } END { if (NR) print a[int((NR + 1) / 2)] }'; }
