#!/usr/bin/env bash
# bench/peers.sh - upesi against Postfix's smtp-sink and Haraka 3.x, all
# driven by Postfix's smtp-source (DESIGN.md section 10).  bench/run calls
# it; it runs alone too.
#
# smtp-sink is an SMTP server that does nothing: the practical ceiling on
# this machine.  Haraka runs rcpt_to.in_host_list and queue/discard;
# upesi runs the default chain (conf/plugins and its conf/*.ini) without
# the DNS plugins and with queue_discard for queue_spool (PLUGINS="..."
# sets another chain, e.g. PLUGINS=queue_discard for the host alone).  Each gets as many processes as
# upesi has workers (WORKERS): smtp-sink is one process whatever;
# Haraka's `nodes` (node's cluster, with NODE_CLUSTER_SCHED_POLICY=none
# so that its workers accept from the shared socket as upesi's do rather
# than through the master).  Two scenarios, SESSIONS parallel sessions:
#   new    a new connection per message
#   reuse  smtp-source -d: messages over the same connections
# Servers alternate run by run (sink, upesi, Haraka, sink, ...) after one
# untimed warm-up each (Haraka's JIT needs it), so that noise on this
# shared machine hits all alike.  Printed: messages per second (median of
# RUNS) and the ratios upesi/smtp-sink and upesi/Haraka, and one `target`
# line per scenario (issue 10, one worker: >= 0.8 x smtp-sink, >= 5 x
# Haraka).  Under each scenario, the CPU time each server used per
# message (all its processes and threads, /proc/PID/task/*/schedstat;
# median of RUNS) and the same ratios on it (peer's CPU / upesi's: above 1, upesi
# needs less): on a loaded machine the rates swing by 2x from run to run,
# the CPU per message much less, so that line says more about upesi
# itself.  The client's CPU is in neither.  With WORKERS > 1, each upesi
# worker's share of the workers' CPU time over all runs: how evenly the
# connections were spread over them.
#
# Haraka is installed from the npm registry (`npm install Haraka@3`) into
# HARAKA_DIR (default bench/out/haraka, not in git) the first time, and
# reused while it is a 3.x; NO_HARAKA=1 leaves it out.  Logging: upesi at
# its default (info: a line at connect, queue and disconnect), Haraka at
# notice (five lines a message; its default, info, writes a dozen), both
# to a file; smtp-sink logs nothing.
#
# Environment: RUNS (5), MESSAGES (5000), SESSIONS (20), WORKERS (1),
# PLUGINS, HARAKA_DIR, NO_HARAKA, OUT (append a result line to this file; default
# bench/out/results.txt).
# Fails: exits non-zero when a tool is missing, a server does not start,
# or smtp-source reports an error; every process it started is stopped.
source "$(dirname "$0")/lib.sh"

RUNS=${RUNS:-5}
MESSAGES=${MESSAGES:-5000}
SESSIONS=${SESSIONS:-20}
WORKERS=${WORKERS:-1}
OUT=${OUT:-$ROOT/bench/out/results.txt}
HARAKA_DIR=${HARAKA_DIR:-$ROOT/bench/out/haraka}
NO_HARAKA=${NO_HARAKA:-}
[[ -x $SINK ]] || { echo "bench: missing $SINK (make deps-test)" >&2; exit 1; }

# -- the servers ------------------------------------------------------------
sink_port=$(free_port)
sink_user=(); [[ $(id -u) == 0 ]] && sink_user=(-u nobody)
"$SINK" "${sink_user[@]}" -m 1024 "127.0.0.1:$sink_port" 1024 >"$tmp/sink.log" 2>&1 &
pids+=($!)
wait_listen "$sink_port" 10 || { echo "bench: smtp-sink did not start" >&2; cat "$tmp/sink.log" >&2; exit 1; }

upesi_port=$(free_port)
PLUGINS=${PLUGINS:-default}
start_upesi peers "$upesi_port" "$PLUGINS" "workers = $WORKERS" "max_sessions = 1000"
chain=$(tr '\n' ' ' <"$tmp/peers/conf/plugins")
upesi_pid=$UPESI_PID

servers=(sink upesi)
declare -A port=([sink]=$sink_port [upesi]=$upesi_port)
declare -A spid=([sink]=${pids[0]} [upesi]=$upesi_pid)
declare -A label=([sink]=smtp-sink [upesi]=upesi [haraka]=Haraka)

if [[ -z $NO_HARAKA ]]; then
    haraka=$HARAKA_DIR/node_modules/.bin/haraka
    if [[ ! -x $haraka ]] || ! grep -q '"version": "3\.' "$HARAKA_DIR/node_modules/Haraka/package.json" 2>/dev/null; then
        command -v npm >/dev/null || { echo "bench: npm missing (apt-get install npm), or NO_HARAKA=1" >&2; exit 1; }
        echo "bench: installing Haraka 3.x from the npm registry into ${HARAKA_DIR#$ROOT/}" >&2
        mkdir -p "$HARAKA_DIR"
        (cd "$HARAKA_DIR" && npm install --no-audit --no-fund --no-save Haraka@3 >"$HARAKA_DIR/npm.log" 2>&1) || {
            echo "bench: npm install Haraka@3 failed:" >&2; tail -n 20 "$HARAKA_DIR/npm.log" >&2; exit 1; }
    fi
    haraka_version=$(sed -n 's/^ *"version": "\(.*\)",/\1/p' "$HARAKA_DIR/node_modules/Haraka/package.json" | head -n 1)
    haraka_port=$(free_port)
    hdir=$tmp/haraka
    "$haraka" -i "$hdir" >"$tmp/haraka-init.log" 2>&1 || {
        echo "bench: haraka -i failed" >&2; cat "$tmp/haraka-init.log" >&2; exit 1; }
    printf 'rcpt_to.in_host_list\nqueue/discard\n' >"$hdir/config/plugins"
    echo example.com >"$hdir/config/host_list"
    echo bench.example.com >"$hdir/config/me"
    printf 'listen=127.0.0.1:%s\nnodes=%s\n' "$haraka_port" "$WORKERS" >"$hdir/config/smtp.ini"
    printf '[main]\nlevel=notice\n' >"$hdir/config/log.ini"
    # queue/discard only discards when told to; the scheduling policy lets
    # cluster workers accept for themselves (the default: the master does)
    YES_REALLY_DO_DISCARD=1 NODE_CLUSTER_SCHED_POLICY=none \
        "$haraka" -c "$hdir" >"$tmp/haraka.log" 2>&1 &
    pids+=($!)
    haraka_pid=$!
    wait_listen "$haraka_port" 60 || { echo "bench: Haraka did not start" >&2; tail -n 20 "$tmp/haraka.log" >&2; exit 1; }
    servers+=(haraka)
    port[haraka]=$haraka_port
    spid[haraka]=$haraka_pid
fi

# -- the runs ---------------------------------------------------------------
# CPU time of each server (all its processes) per message, in µs: far
# less moved by other load on the machine than the rates are
declare -A rates cpu
# with several workers, how evenly the kernel spreads the connections over
# them: each worker's share of the workers' CPU time over all runs
declare -A wcpu0=()
for w in $(worker_pids "$upesi_pid"); do wcpu0[$w]=$(cpu_ns "$w"); done
for scenario in new reuse; do
    flag=(); [[ $scenario == reuse ]] && flag=(-d)
    for srv in "${servers[@]}"; do      # one untimed warm-up each
        MESSAGES=$((SESSIONS * 20)) source_rate "${port[$srv]}" "$tmp/source.log" \
            -s "$SESSIONS" -l 1024 "${flag[@]}" >/dev/null
    done
    for ((i = 1; i <= RUNS; i++)); do
        line=$(printf '  %-5s run %d:' "$scenario" "$i")
        for srv in "${servers[@]}"; do
            c0=$(cpu_ns "${spid[$srv]}")
            r=$(source_rate "${port[$srv]}" "$tmp/source.log" -s "$SESSIONS" -l 1024 "${flag[@]}")
            c1=$(cpu_ns "${spid[$srv]}")
            rates[$scenario.$srv]+="$r "
            cpu[$scenario.$srv]+="$(( (c1 - c0) / 1000 / MESSAGES )) "
            line+=$(printf '  %s %7s' "${label[$srv]}" "$r")
        done
        echo "$line msg/s"
    done
done

kill -0 "$upesi_pid" 2>/dev/null || { echo "bench: upesi died during the run" >&2; tail -n 20 "$tmp/peers/upesi.log" >&2; exit 1; }
if [[ -n ${haraka_pid:-} ]] && grep -q 'CRIT' "$tmp/haraka.log"; then
    echo "bench: Haraka logged a CRIT (its figures are suspect):" >&2
    grep CRIT "$tmp/haraka.log" | head -n 5 >&2
fi

printf '\nupesi %s (%d worker%s) vs Postfix smtp-sink%s; smtp-source -s %d -m %d -l 1024, median of %d runs, %s cores\n' \
    "$(rev)" "$WORKERS" "$([[ $WORKERS == 1 ]] || echo s)" \
    "$([[ -n ${haraka_pid:-} ]] && echo " and Haraka $haraka_version (nodes=$WORKERS)")" \
    "$SESSIONS" "$MESSAGES" "$RUNS" "$(nproc)"
printf 'upesi plugins: %s\n' "$chain"
printf '%-28s %12s %12s %12s %10s %10s\n' scenario smtp-sink upesi Haraka upesi/sink upesi/Haraka
result="$(date -u +%Y-%m-%dT%H:%M:%SZ) $(rev) workers=$WORKERS"
targets=()
for scenario in new reuse; do
    declare -A med=()
    for srv in "${servers[@]}"; do
        med[$srv]=$(tr ' ' '\n' <<<"${rates[$scenario.$srv]}" | grep . | median)
    done
    rs=$(awk -v u="${med[upesi]}" -v s="${med[sink]}" 'BEGIN { printf "%.2f", u / s }')
    rh=-; h=-
    if [[ -n ${med[haraka]:-} ]]; then
        h="${med[haraka]} msg/s"
        rh=$(awk -v u="${med[upesi]}" -v s="${med[haraka]}" 'BEGIN { printf "%.2f", u / s }')
    fi
    name="new connection per message"; [[ $scenario == reuse ]] && name="connection reuse (-d)"
    printf '%-28s %12s %12s %12s %10s %10s\n' "$name" "${med[sink]} msg/s" "${med[upesi]} msg/s" "$h" "$rs" "$rh"
    declare -A us=()
    for srv in "${servers[@]}"; do
        us[$srv]=$(tr ' ' '\n' <<<"${cpu[$scenario.$srv]}" | grep . | median)
    done
    cs=$(awk -v u="${us[upesi]}" -v s="${us[sink]}" 'BEGIN { printf "%.2f", (u ? s / u : 0) }')
    ch=-
    [[ -n ${us[haraka]:-} ]] && ch=$(awk -v u="${us[upesi]}" -v s="${us[haraka]}" 'BEGIN { printf "%.2f", (u ? s / u : 0) }')
    printf '%-28s %12s %12s %12s %10s %10s\n' "  server CPU per message" "${us[sink]} µs" "${us[upesi]} µs" \
        "$([[ -n ${us[haraka]:-} ]] && echo "${us[haraka]} µs" || echo -)" "$cs" "$ch"
    result+=" $scenario=$rs haraka_$scenario=$rh cpu_$scenario=$cs cpu_haraka_$scenario=$ch"
    targets+=("$(awk -v s="$scenario" -v r="$rs" -v h="$rh" -v w="$WORKERS" 'BEGIN {
        ok = r >= 0.8 && (h == "-" || h >= 5)
        printf "target peers-%s upesi/smtp-sink %s >= 0.8, upesi/Haraka %s >= 5 (workers=%s): %s\n",
               s, r, h, w, (w != 1 ? "(targets are for one worker)" : ok ? "met" : "MISSED") }')")
done
if (( WORKERS > 1 )); then
    shares=$(for w in "${!wcpu0[@]}"; do
                 c=$(cpu_ns "$w" 2>/dev/null || echo 0); echo $(( c - ${wcpu0[$w]} ))
             done | sort -rn | awk '{ v[NR] = $1; t += $1 }
                 END { for (i = 1; i <= NR; i++) printf "%s%.0f%%", (i > 1 ? " / " : ""), (t ? 100 * v[i] / t : 0) }')
    printf 'upesi workers'"'"' shares of their CPU time (busiest first): %s\n' "$shares"
    result+=" worker_shares=${shares// /}"
fi
printf '%s\n' "${targets[@]}"
mkdir -p "$(dirname "$OUT")"
echo "$result sessions=$SESSIONS messages=$MESSAGES runs=$RUNS" >>"$OUT"
