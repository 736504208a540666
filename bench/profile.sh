#!/usr/bin/env bash
# bench/profile.sh - instructions per message in the upesi worker, counted
# by valgrind's callgrind (deterministic: load on the machine does not
# change the count, so before/after figures of a change are comparable
# where a msg/s figure is not).  perf's hardware counters are not
# available on the machines this project runs on (`perf stat -e
# instructions true` says "not supported"); where they are, perf record
# on the worker gives the same picture faster.
#
#   bench/profile.sh [new|reuse ...]   MESSAGES (default 2000) per run,
#                                      TAG names the kept dumps, UPESI the
#                                      binary, PLUGINS the chain
#
# For each scenario, one upesi worker (PLUGINS: default, the default chain
# without DNS plugins and with queue_discard; queue_discard alone measures
# the host)
# runs under callgrind twice: once with 1 message, once with 1 + MESSAGES
# 1 KB messages from smtp-source (5 sessions; a new connection per
# message, or -d reuse); the worker writes its counts when it exits (a
# forked child is out of callgrind_control's reach).  Instructions per
# message = the difference / MESSAGES, so start-up and shutdown cancel
# out.  Prints that and the top functions of the long run (inclusive and
# self); the dumps stay in bench/out/profile/ for callgrind_annotate.
source "$(dirname "$0")/lib.sh"
command -v valgrind >/dev/null || { echo "bench: valgrind missing (apt-get install valgrind)" >&2; exit 1; }
scenarios=${*:-new reuse}
N=${MESSAGES:-2000}
PLUGINS=${PLUGINS:-default}
outdir=$ROOT/bench/out/profile
mkdir -p "$outdir"
UPESI_REAL=$UPESI

# worker_instructions SCENARIO COUNT: run COUNT messages, print the
# worker's dump file
profile_run() {
    local scenario=$1 count=$2 flag=() port worker
    [[ $scenario == reuse ]] && flag=(-d)
    port=$(free_port)
    UPESI=$tmp/valgrind-upesi
    cat >"$UPESI" <<W
#!/bin/sh
exec valgrind -q --tool=callgrind --callgrind-out-file=$tmp/cg.%p "$UPESI_REAL" "\$@"
W
    chmod +x "$UPESI"
    start_upesi "prof-$scenario-$count" "$port" "$PLUGINS" "workers = 1" "max_sessions = 1000"
    UPESI=$UPESI_REAL
    worker=
    for _ in $(seq 100); do worker=$(worker_pids "$UPESI_PID" | head -n 1); [[ -n $worker ]] && break; sleep 0.1; done
    [[ -n $worker ]] || { echo "bench: no worker under valgrind" >&2; exit 1; }
    MESSAGES=$count source_rate "$port" "$tmp/prof.log" -s 5 -l 1024 "${flag[@]}" >/dev/null
    kill -TERM "$UPESI_PID"
    for _ in $(seq 100); do kill -0 "$UPESI_PID" 2>/dev/null || break; sleep 0.1; done
    [[ -s $tmp/cg.$worker ]] || { echo "bench: no callgrind dump for worker $worker" >&2; exit 1; }
    echo "$tmp/cg.$worker"
}

total_ir() { callgrind_annotate "$1" 2>/dev/null | awk '/PROGRAM TOTALS/ && !f { gsub(",", "", $1); print $1; f = 1 }'; }
# top N FILE [callgrind_annotate options]: the function table, cut
top() {
    local n=$1 file=$2; shift 2
    callgrind_annotate "$@" "$file" 2>/dev/null |
        awk -v n="$n" '/^-+$/ { sep++; next } sep >= 3 && NF && shown < n { print; shown++ }'
}

for scenario in $scenarios; do
    short=$(profile_run "$scenario" 1)
    long=$(profile_run "$scenario" $((N + 1)))
    cp "$long" "$outdir/callgrind.$scenario${TAG:+.$TAG}"
    a=$(total_ir "$short"); b=$(total_ir "$long")
    printf '\n%s: %d instructions per message in the worker (%s - %s over %d messages; %s; plugins: %s)\n' \
        "$scenario" "$(( (b - a) / N ))" "$b" "$a" "$N" "$(rev)" "$(tr '\n' ' ' <"$tmp/prof-$scenario-1/conf/plugins")"
    echo "top functions, inclusive:"
    top 30 "$long" --inclusive=yes
    echo "top functions, self:"
    top 30 "$long"
done
echo "(dumps in ${outdir#$ROOT/}/: callgrind_annotate --inclusive=yes bench/out/profile/callgrind.new)"
