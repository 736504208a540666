#!/usr/bin/env bash
# bench/bigmsg.sh - one 10 MB message: DATA throughput, and the worker's
# memory while it passes (issue 10: RSS must not grow by more than 1 MB;
# the message store spills to disk past 128 KiB).
#
# One upesi worker with queue_discard (the message still goes through the
# data reader and the message store, spill file included) and smtp-sink
# as the reference.  smtp-source sends one message of BIG_BYTES (default
# 10 MiB) body per run, RUNS_BIG runs each, alternating; the rate is
# MB/s of message body (median).  The worker's VmRSS is read after a
# warm-up (a small message, then one big one, so that buffers the first
# big message touches once are counted as the baseline, not as growth),
# its peak reset (/proc/PID/clear_refs 5), and after the runs both VmRSS
# and VmHWM (the peak) are compared with the baseline.
#
# Prints a table and one `target` line; exits 1 on a failed run.
source "$(dirname "$0")/lib.sh"
RUNS_BIG=${RUNS_BIG:-3}
BIG_BYTES=${BIG_BYTES:-10485760}
[[ -x $SINK ]] || { echo "bench: missing $SINK (make deps-test)" >&2; exit 1; }

sink_port=$(free_port)
sink_user=(); [[ $(id -u) == 0 ]] && sink_user=(-u nobody)
"$SINK" "${sink_user[@]}" "127.0.0.1:$sink_port" 64 >"$tmp/sink.log" 2>&1 &
pids+=($!)
wait_listen "$sink_port" 10 || { echo "bench: smtp-sink did not start" >&2; exit 1; }
port=$(free_port)
start_upesi big "$port" queue_discard "workers = 1" "max_message_size = $((BIG_BYTES * 2))"
sleep 0.3
worker=$(worker_pids "$UPESI_PID" | head -n 1)
[[ -n $worker ]] || { echo "bench: no upesi worker found" >&2; exit 1; }

# mbps PORT: MB/s of one BIG_BYTES message
mbps() {
    # source_rate gives messages/s with 0 decimals: time it here instead
    local t0 t1
    t0=$(date +%s.%N)
    MESSAGES=1 source_rate "$1" "$tmp/source.log" -s 1 -l "$BIG_BYTES" >/dev/null
    t1=$(date +%s.%N)
    awk -v b="$BIG_BYTES" -v a="$t0" -v c="$t1" 'BEGIN { printf "%.1f\n", b / 1048576 / (c - a) }'
}

MESSAGES=1 source_rate "$port" "$tmp/source.log" -s 1 -l 1024 >/dev/null
MESSAGES=1 source_rate "$port" "$tmp/source.log" -s 1 -l "$BIG_BYTES" >/dev/null
rss0=$(rss_kb "$worker")
echo 5 >"/proc/$worker/clear_refs" 2>/dev/null || echo "bench: cannot reset the peak (clear_refs); VmHWM is the peak since start" >&2

declare -A rates
for ((i = 1; i <= RUNS_BIG; i++)); do
    s=$(mbps "$sink_port")
    u=$(mbps "$port")
    rates[sink]+="$s "
    rates[upesi]+="$u "
    printf '  10 MB run %d: smtp-sink %6s MB/s   upesi %6s MB/s\n' "$i" "$s" "$u"
done
rss1=$(rss_kb "$worker")
hwm=$(hwm_kb "$worker")
ms=$(tr ' ' '\n' <<<"${rates[sink]}" | grep . | sort -n | awk '{ v[NR] = $1 } END { print v[int((NR + 1) / 2)] }')
mu=$(tr ' ' '\n' <<<"${rates[upesi]}" | grep . | sort -n | awk '{ v[NR] = $1 } END { print v[int((NR + 1) / 2)] }')
grow=$((hwm - rss0))
printf '\none %d-byte message, median of %d runs (both servers take every byte off the wire; upesi also unstuffs and stores it, spilling to disk)\n' "$BIG_BYTES" "$RUNS_BIG"
printf '  smtp-sink %6s MB/s   upesi %6s MB/s   ratio %s\n' "$ms" "$mu" "$(awk -v u="$mu" -v s="$ms" 'BEGIN { printf "%.2f", u / s }')"
printf '  worker VmRSS %d KiB before, %d KiB after %d messages; peak (VmHWM) %d KiB: grew %d KiB at most\n' \
    "$rss0" "$rss1" "$RUNS_BIG" "$hwm" "$grow"
awk -v g="$grow" 'BEGIN { printf "target bigmsg-rss growth %d KiB <= 1024 KiB: %s\n", g, (g <= 1024 ? "met" : "MISSED") }'
