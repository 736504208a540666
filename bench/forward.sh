#!/usr/bin/env bash
# bench/forward.sh - what forwarding costs: message rate of upesi with
# queue_forward (to Postfix's smtp-sink as the downstream) as a ratio to
# the same upesi with queue_discard.
#
# Three upesi servers side by side, driven by Postfix's smtp-source:
#   discard   queue_discard: the SMTP conversation alone
#   direct    queue_forward mode = direct: every message crosses a second
#             SMTP conversation (pooled connections) before the 250
#   spool     queue_forward mode = spool, fsync on: durable in the spool
#             before the 250, then delivered in the background (the rate
#             is the acceptance rate; the script waits for the queue to
#             drain before the next run)
# Servers alternate run by run so that noise hits all alike.  Printed:
# median messages per second and the ratios to discard.
#
# Environment: RUNS (default 3), MESSAGES (3000), SESSIONS (20), REUSE
# (1: smtp-source -d, connections reused; 0: one per message).
# Fails: exits 1 when a tool is missing, a server does not start or
# smtp-source fails; every process it started is stopped.
source "$(dirname "$0")/lib.sh"

RUNS=${RUNS:-3}
MESSAGES=${MESSAGES:-3000}
SESSIONS=${SESSIONS:-20}
REUSE=${REUSE:-1}
[[ -x $SINK && -f $ROOT/plugins/queue_forward.so ]] || {
    echo "forward.sh: missing $SINK or plugins/queue_forward.so" >&2; exit 1; }

sink_port=$(free_port)
user=(); [[ $(id -u) == 0 ]] && user=(-u nobody)
"$SINK" "${user[@]}" -m 512 "127.0.0.1:$sink_port" 512 >"$tmp/sink.log" 2>&1 &
pids+=($!)
wait_listen "$sink_port" 10 || { echo "forward.sh: smtp-sink did not start" >&2; exit 1; }

declare -A port
for name in discard direct spool; do
    port[$name]=$(free_port)
    mkdir -p "$tmp/$name/conf"
done
printf 'downstream = 127.0.0.1:%s\nmode = direct\npool_size = %s\n' \
    "$sink_port" "$((SESSIONS + 4))" >"$tmp/direct/conf/queue_forward.ini"
printf 'downstream = 127.0.0.1:%s\nmode = spool\npool_size = %s\nfsync = 1\nscan_interval = 1s\n' \
    "$sink_port" "$((SESSIONS + 4))" >"$tmp/spool/conf/queue_forward.ini"
start_upesi discard "${port[discard]}" queue_discard workers=1 max_sessions=1000
start_upesi direct "${port[direct]}" queue_forward workers=1 max_sessions=1000
start_upesi spool "${port[spool]}" queue_forward workers=1 max_sessions=1000

opts=(-s "$SESSIONS" -l 2048)
(( REUSE )) && opts+=(-d)

queue_empty() {
    local d=$tmp/spool/spool
    [[ -z $(ls -A "$d/queue" 2>/dev/null) ]] &&
        [[ -z $(find "$d/active" -type f 2>/dev/null | head -n 1) ]]
}

declare -A rates
for ((i = 0; i < RUNS; i++)); do
    for name in discard direct spool; do
        r=$(source_rate "${port[$name]}" "$tmp/source-$name.log" "${opts[@]}")
        rates[$name]+="$r "
        if [[ $name == spool ]]; then
            for _ in $(seq 1 600); do queue_empty && break; sleep 0.1; done
        fi
    done
done

med() { tr ' ' '\n' <<<"$1" | grep . | median; }
d=$(med "${rates[discard]}"); f=$(med "${rates[direct]}"); s=$(med "${rates[spool]}")
printf '\nqueue_forward: %d messages of 2 KB, %d sessions%s, median of %d runs (rev %s)\n' \
    "$MESSAGES" "$SESSIONS" "$( ((REUSE)) && echo ', connections reused (-d)')" "$RUNS" "$(rev)"
printf '  %-8s %8s msg/s\n' discard "$d" direct "$f" spool "$s"
awk -v d="$d" -v f="$f" -v s="$s" 'BEGIN {
    printf "  ratio direct/discard = %.2f\n  ratio spool/discard  = %.2f\n", f / d, s / d }'
grep -h "SMTP.Forward" <("$UPESI" -c "$tmp/direct/conf" stat SMTP.Forward) | sed 's/^/  direct: /'
grep -h "SMTP.Forward" <("$UPESI" -c "$tmp/spool/conf" stat SMTP.Forward) | sed 's/^/  spool:  /'
