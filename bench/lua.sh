#!/usr/bin/env bash
# bench/lua.sh - what a Lua rule costs: upesi with a Lua rcpt handler that
# returns upesi.CONT against upesi without the lua plugin, both with
# queue_discard, driven by Postfix's smtp-source.  Target: ratio >= 0.9.
#
# Scenarios, SESSIONS parallel sessions each:
#   new      a new connection per message, 1 recipient
#   reuse    smtp-source -d: messages over the same connections
#   rcpt10   -d and 10 recipients per message: the handler runs 10 times
# The two servers alternate run by run so that noise on this shared machine
# hits both alike.  Printed: messages per second (median of RUNS) and the
# ratio lua/plain, and the ratio of the workers' CPU time per message
# (plain/lua: under 1 is what Lua costs), which the noise of other
# processes on the machine moves far less than the rates.  See
# bench/README.md and docs/lua.md.
#
# Environment: RUNS (default 5), MESSAGES (5000), SESSIONS (20),
# OUT (append a result line; default bench/out/lua.txt).
# Fails: exits non-zero when a tool is missing, a server does not start, or
# smtp-source reports an error; every process it started is stopped.
source "$(dirname "$0")/lib.sh"

RUNS=${RUNS:-5}
MESSAGES=${MESSAGES:-5000}
SESSIONS=${SESSIONS:-20}
OUT=${OUT:-$ROOT/bench/out/lua.txt}
[[ -f $ROOT/plugins/lua.so ]] || { echo "bench/lua.sh: missing plugins/lua.so (make all)" >&2; exit 1; }

# start NAME PLUGINS...: an upesi in $tmp/NAME, its port in $tmp/NAME/port
# and its pid in $tmp/NAME/pid
start() {
    local name=$1; shift
    local dir=$tmp/$name port
    port=$(free_port)
    mkdir -p "$dir/conf/lua" "$dir/spool"
    cat >"$dir/conf/smtp.ini" <<EOF
; bench/lua.sh ($name)
listen = 127.0.0.1:$port
hostname = bench.example.com
local_domains = example.com
spool_dir = $dir/spool
control_socket = $dir/upesi.sock
plugin_dir = $ROOT/plugins
max_sessions = 1000
error_limit = 20
EOF
    printf '%s\n' "$@" >"$dir/conf/plugins"
    echo 'scripts = cont.lua' >"$dir/conf/lua.ini"
    cat >"$dir/conf/lua/cont.lua" <<'EOF'
upesi.hook("rcpt", function(conn, txn, rcpt)
  return upesi.CONT
end)
EOF
    "$UPESI" -c "$dir/conf" -t >"$dir/check.log" 2>&1 || { echo "bench/lua.sh: upesi -t failed ($name)" >&2; cat "$dir/check.log" >&2; exit 1; }
    "$UPESI" -c "$dir/conf" >"$dir/upesi.log" 2>&1 &
    pids+=($!)
    echo "$!" >"$dir/pid"
    echo "$port" >"$dir/port"
    wait_listen "$port" 15 || { echo "bench/lua.sh: upesi ($name) did not start" >&2; tail -n 20 "$dir/upesi.log" >&2; exit 1; }
}

start plain queue_discard
start lua lua queue_discard
plain_port=$(cat "$tmp/plain/port")
lua_port=$(cat "$tmp/lua/port")

# ticks NAME: CPU clock ticks (user + system) used so far by NAME's workers
ticks() {
    local w sum=0
    for w in $(pgrep -P "$(cat "$tmp/$1/pid")"); do
        sum=$((sum + $(awk '{ print $14 + $15 }' "/proc/$w/stat")))
    done
    echo "$sum"
}

# run PORT [smtp-source flags]: messages per second of one smtp-source run
run() {
    local port=$1; shift
    local t0 t1
    t0=$(date +%s.%N)
    if ! timeout 300 "$SOURCE" -s "$SESSIONS" -m "$MESSAGES" "$@" \
            -M client.example.org -f sender@example.org -t bob@example.com \
            -S bench -l 1024 "127.0.0.1:$port" >"$tmp/source.log" 2>&1; then
        echo "bench/lua.sh: smtp-source against port $port failed:" >&2
        tail -n 20 "$tmp/source.log" >&2
        exit 1
    fi
    t1=$(date +%s.%N)
    awk -v n="$MESSAGES" -v a="$t0" -v b="$t1" 'BEGIN { printf "%.0f\n", n / (b - a) }'
}


declare -A rates cpu
scenarios=(new reuse rcpt10)
for scenario in "${scenarios[@]}"; do
    flag=()
    case $scenario in
    reuse) flag=(-d) ;;
    rcpt10) flag=(-d -r 10) ;;
    esac
    MESSAGES=$((SESSIONS * 10)) run "$plain_port" "${flag[@]}" >/dev/null
    MESSAGES=$((SESSIONS * 10)) run "$lua_port" "${flag[@]}" >/dev/null
    for ((i = 1; i <= RUNS; i++)); do
        pt0=$(ticks plain); lt0=$(ticks lua)
        if (( i % 2 )); then
            p=$(run "$plain_port" "${flag[@]}"); l=$(run "$lua_port" "${flag[@]}")
        else
            l=$(run "$lua_port" "${flag[@]}"); p=$(run "$plain_port" "${flag[@]}")
        fi
        cpu[$scenario.plain]=$(( ${cpu[$scenario.plain]:-0} + $(ticks plain) - pt0 ))
        cpu[$scenario.lua]=$(( ${cpu[$scenario.lua]:-0} + $(ticks lua) - lt0 ))
        rates[$scenario.plain]+="$p "
        rates[$scenario.lua]+="$l "
        printf '  %-6s run %d: no lua %7s msg/s   lua rcpt CONT %7s msg/s\n' "$scenario" "$i" "$p" "$l"
    done
done

for pid in "${pids[@]}"; do
    kill -0 "$pid" 2>/dev/null || { echo "bench/lua.sh: an upesi died during the run" >&2; tail -n 20 "$tmp"/*/upesi.log >&2; exit 1; }
done
grep -q 'lua' "$tmp/lua/conf/plugins"
calls=$(grep -c 'deferred by lua\|rejected by lua' "$tmp/lua/upesi.log" || true)
[[ $calls == 0 ]] || { echo "bench/lua.sh: the Lua handler refused something ($calls)" >&2; exit 1; }

printf '\nupesi %s: Lua rcpt handler returning CONT vs no lua plugin; smtp-source -s %d -m %d -l 1024, median of %d runs, %s\n' \
    "$(rev)" "$SESSIONS" "$MESSAGES" "$RUNS" "$(nproc) cores"
printf '%-34s %12s %12s %8s %10s\n' scenario "no lua" "lua" ratio "cpu ratio"
line="$(date -u +%Y-%m-%dT%H:%M:%SZ) $(rev)"
for scenario in "${scenarios[@]}"; do
    p=$(tr ' ' '\n' <<<"${rates[$scenario.plain]}" | grep . | median)
    l=$(tr ' ' '\n' <<<"${rates[$scenario.lua]}" | grep . | median)
    ratio=$(awk -v l="$l" -v p="$p" 'BEGIN { printf "%.2f", l / p }')
    cratio=$(awk -v l="${cpu[$scenario.lua]}" -v p="${cpu[$scenario.plain]}" 'BEGIN { printf "%.2f", l ? p / l : 0 }')
    case $scenario in
    new) label="new connection per message" ;;
    reuse) label="connection reuse (-d)" ;;
    rcpt10) label="reuse, 10 recipients (-d -r 10)" ;;
    esac
    printf '%-34s %12s %12s %8s %10s\n' "$label" "$p msg/s" "$l msg/s" "$ratio" "$cratio"
    line+=" $scenario=$ratio cpu.$scenario=$cratio"
done
mkdir -p "$(dirname "$OUT")"
echo "$line sessions=$SESSIONS messages=$MESSAGES runs=$RUNS" >>"$OUT"
echo "(ratios appended to ${OUT#$ROOT/})"
