#!/usr/bin/env bash
# bench/spool.sh - queue_spool's group commit: message rate with 1 sender
# and with 50 concurrent senders (issue 10: 50 >= 10 x 1).
#
# One upesi worker with queue_spool (fsync on, the default: a 250 means
# the message and its directory entry are on disk).  With one sender every
# message waits for its own fsyncs; with 50, the messages that arrive
# while a batch commits share the next batch's directory fsync, so the
# rate should grow with the senders while the disk is the limit.  The
# spool lives in bench/out/ (the repository's filesystem, a real disk
# here; a tmpfs would make fsync free and the figure meaningless): SPOOL
# overrides.  Runs alternate (1, 50, 1, 50 ...); medians of RUNS_SPOOL.
#
# Environment: RUNS_SPOOL (3), MESSAGES_1 (300), MESSAGES_50 (3000),
# SPOOL (directory for the spool).
# Prints a table and one `target` line; exits 1 on a failed run.
source "$(dirname "$0")/lib.sh"
RUNS_SPOOL=${RUNS_SPOOL:-3}
MESSAGES_1=${MESSAGES_1:-300}
MESSAGES_50=${MESSAGES_50:-3000}
SPOOL=${SPOOL:-$ROOT/bench/out/spool.$$}
[[ -f $ROOT/plugins/queue_spool.so ]] || { echo "bench: missing plugins/queue_spool.so (make)" >&2; exit 1; }
mkdir -p "$SPOOL"
trap 'bench_cleanup; rm -rf "$SPOOL"' EXIT

port=$(free_port)
start_upesi spool "$port" queue_spool "workers = 1" "max_sessions = 1000" "spool_dir = $SPOOL"
fs=$(df -PT "$SPOOL" | awk 'NR == 2 { print $2 }')

declare -A rates
for ((i = 0; i <= RUNS_SPOOL; i++)); do     # run 0: untimed warm-up
    for senders in 1 50; do
        n=$MESSAGES_1; [[ $senders == 50 ]] && n=$MESSAGES_50
        (( i == 0 )) && n=$((senders * 4))
        r=$(MESSAGES=$n source_rate "$port" "$tmp/source.log" -s "$senders" -l 1024)
        find "$SPOOL/queue" -type f -delete 2>/dev/null || true
        (( i == 0 )) && continue
        rates[$senders]+="$r "
        printf '  spool run %d: %2d sender%s %7s msg/s\n' "$i" "$senders" "$([[ $senders == 1 ]] || echo s)" "$r"
    done
done
m1=$(tr ' ' '\n' <<<"${rates[1]}" | grep . | median)
m50=$(tr ' ' '\n' <<<"${rates[50]}" | grep . | median)
ratio=$(awk -v a="$m50" -v b="$m1" 'BEGIN { printf "%.1f", a / b }')
printf '\nqueue_spool (fsync on, spool on %s), 1 KB messages, median of %d runs\n' "$fs" "$RUNS_SPOOL"
printf '  1 sender   %7s msg/s\n  50 senders %7s msg/s   (%s x)\n' "$m1" "$m50" "$ratio"
awk -v r="$ratio" 'BEGIN { printf "target spool-group-commit 50 senders / 1 sender %s >= 10: %s\n", r, (r >= 10 ? "met" : "MISSED") }'
