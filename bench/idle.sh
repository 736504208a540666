#!/usr/bin/env bash
# bench/idle.sh - memory per idle session and the greeting time of a new
# client while they are held (issue 10: <= 8 KiB per idle plaintext
# session).
#
# One upesi worker (the default chain without DNS plugins, queue_discard
# for queue_spool, max_sessions raised; PLUGINS sets another), IDLE
# (default 10000) clients connected at once, each greeted and then silent.  The
# worker's VmRSS (/proc/PID/status) is read after a warm-up session and
# again with all sessions open; the difference over IDLE is the cost of an
# idle session in user memory (kernel socket buffers are not in VmRSS).
# The greeting time of a new client is timed before and meanwhile (median
# of 7).  Needs `ulimit -n` of IDLE + some for both sides: the script
# raises the soft limit to the hard one.
#
# Prints a table and one `target ...` line; exits 1 when a tool is missing,
# the server does not start, or a client gets no greeting.
source "$(dirname "$0")/lib.sh"
IDLE=${IDLE:-10000}
command -v python3 >/dev/null || { echo "bench: python3 missing (the idle clients)" >&2; exit 1; }
ulimit -n "$(ulimit -Hn)"
(( $(ulimit -n) > IDLE + 200 )) || { echo "bench: ulimit -n $(ulimit -n) too low for $IDLE sessions" >&2; exit 1; }

port=$(free_port)
start_upesi idle "$port" "${PLUGINS:-default}" "workers = 1" "max_sessions = $((IDLE + 100))" "log_level = notice"
sleep 0.5
worker=$(worker_pids "$UPESI_PID" | head -n 1)
[[ -n $worker ]] || { echo "bench: no upesi worker found" >&2; exit 1; }

python3 "$ROOT/bench/idle_clients.py" "$port" "$IDLE" "$worker" >"$tmp/idle.out"
declare -A r
while IFS='=' read -r k v; do r[$k]=$v; done <"$tmp/idle.out"

per=${r[rss_per_session_bytes]}
printf '\nidle sessions: %d plaintext sessions held by one upesi worker (opened in %ss)\n' "${r[sessions]}" "${r[open_seconds]}"
printf '  worker VmRSS          %8s KiB before, %8s KiB with the sessions, %s KiB after they closed\n' \
    "${r[rss_before_kb]}" "${r[rss_after_kb]}" "${r[rss_after_close_kb]}"
printf '  per idle session      %8s bytes (%.1f KiB)\n' "$per" "$(awk -v b="$per" 'BEGIN { print b / 1024 }')"
printf '  greeting of a new client: %s ms with no session open, %s ms with %d open\n' \
    "${r[greeting_ms_idle_server]}" "${r[greeting_ms_with_sessions]}" "${r[sessions]}"
awk -v b="$per" 'BEGIN { k = b / 1024; printf "target idle-session-rss %.1f KiB <= 8 KiB: %s\n", k, (k <= 8 ? "met" : "MISSED") }'
