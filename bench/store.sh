#!/usr/bin/env bash
# bench/store.sh - what the store costs (docs/store.md), as ratios measured
# in one run on this machine:
#
# 1. A Lua rcpt handler doing one upesi.kv.incr per recipient, against the
#    same handler without the incr (returning CONT), one worker, reused
#    connections (smtp-source -d), queue_discard: with store = lmdb (the
#    default) and with store = redis (a redis-server started here on a free
#    loopback port, persisting nothing).  Targets: lmdb >= 0.9, redis >= 0.8.
# 2. A batch get of 500 keys (store_mget, the store_bench test plugin):
#    calls per second through upesi with lmdb and with redis, beside
#    redis-benchmark running the same MGET of the same 500 keys (the
#    engine's own ceiling), DEPTH calls in flight for both.
#
# The three servers of (1) alternate run by run so that noise on this
# shared machine hits all alike; medians of RUNS.
#
# Environment: RUNS (5), MESSAGES (5000), SESSIONS (20), CALLS (2000),
# DEPTH (1), OUT (append a result line; default bench/out/store.txt).
# Fails: exits non-zero when a tool is missing, a server does not start,
# smtp-source reports an error or the handler refused mail; every process
# it started is stopped.
source "$(dirname "$0")/lib.sh"

RUNS=${RUNS:-5}
MESSAGES=${MESSAGES:-5000}
SESSIONS=${SESSIONS:-20}
CALLS=${CALLS:-2000}
DEPTH=${DEPTH:-1}
OUT=${OUT:-$ROOT/bench/out/store.txt}
for f in "$ROOT/plugins/lua.so" "$ROOT/plugins-test/plugins/store_bench.so" \
         /usr/bin/redis-server /usr/bin/redis-benchmark /usr/bin/redis-cli; do
    [[ -e $f ]] || { echo "bench/store.sh: missing $f (make deps-test test-build)" >&2; exit 1; }
done

# the plugin directory: the repository's plugins and the bench plugin
mkdir -p "$tmp/plugins"
ln -s "$ROOT"/plugins/*.so "$ROOT/plugins-test/plugins/store_bench.so" "$tmp/plugins/"

# redis-server on a free port, its own directory, persisting nothing
redis_port=$(free_port)
mkdir -p "$tmp/redis"
redis-server --port "$redis_port" --bind 127.0.0.1 --save '' --appendonly no \
    --dir "$tmp/redis" --logfile "$tmp/redis/redis.log" --daemonize no &
pids+=($!)
wait_listen "$redis_port" 15 || { echo "bench/store.sh: redis-server did not start" >&2; exit 1; }
redis_url="redis://127.0.0.1:$redis_port/0"

# start NAME STORE SCRIPT PLUGINS...: an upesi in $tmp/NAME
start() {
    local name=$1 store=$2 script=$3; shift 3
    local dir=$tmp/$name port
    port=$(free_port)
    mkdir -p "$dir/conf/lua" "$dir/spool"
    cat >"$dir/conf/smtp.ini" <<EOF
; bench/store.sh ($name)
listen = 127.0.0.1:$port
hostname = bench.example.com
local_domains = example.com
spool_dir = $dir/spool
control_socket = $dir/upesi.sock
plugin_dir = $tmp/plugins
max_sessions = 1000
error_limit = 20
store = $store
EOF
    printf '%s\n' "$@" >"$dir/conf/plugins"
    echo 'scripts = rule.lua' >"$dir/conf/lua.ini"
    printf '%s\n' "$script" >"$dir/conf/lua/rule.lua"
    "$UPESI" -c "$dir/conf" -t >"$dir/check.log" 2>&1 || { echo "bench/store.sh: upesi -t failed ($name)" >&2; cat "$dir/check.log" >&2; exit 1; }
    "$UPESI" -c "$dir/conf" >"$dir/upesi.log" 2>&1 &
    pids+=($!)
    echo "$!" >"$dir/pid"
    echo "$port" >"$dir/port"
    wait_listen "$port" 15 || { echo "bench/store.sh: upesi ($name) did not start" >&2; tail -n 20 "$dir/upesi.log" >&2; exit 1; }
}

cont='upesi.hook("rcpt", function(conn, txn, rcpt) return upesi.CONT end)'
incr='upesi.hook("rcpt", function(conn, txn, rcpt)
  local n, err = upesi.kv.incr("rcpt:" .. rcpt, 1, 3600)
  if not n then return upesi.DENYSOFT, "store: " .. err end
  return upesi.CONT
end)'

# -- 1. one incr per recipient -------------------------------------------------
start base "lmdb:store" "$cont" lua queue_discard
start lmdb "lmdb:store" "$incr" lua queue_discard
start redis "$redis_url" "$incr" lua queue_discard

run() { # NAME: msg/s of one smtp-source -d run
    source_rate "$(cat "$tmp/$1/port")" "$tmp/source.log" -s "$SESSIONS" -d -l 1024
}

# ticks NAME: CPU clock ticks (user + system) used so far by NAME's workers
ticks() {
    local w sum=0
    for w in $(pgrep -P "$(cat "$tmp/$1/pid")"); do
        sum=$((sum + $(awk '{ print $14 + $15 }' "/proc/$w/stat")))
    done
    echo "$sum"
}

declare -A rates cpu
names=(base lmdb redis)
for n in "${names[@]}"; do MESSAGES=$((SESSIONS * 10)) run "$n" >/dev/null; done
for ((i = 1; i <= RUNS; i++)); do
    line="  run $i:"
    for ((j = 0; j < 3; j++)); do       # the order rotates run by run
        n=${names[$(((i + j) % 3))]}
        t0=$(ticks "$n")
        r=$(run "$n")
        cpu[$n]=$(( ${cpu[$n]:-0} + $(ticks "$n") - t0 ))
        rates[$n]+="$r "
        line+=" $n $r msg/s"
    done
    echo "$line"
done
for n in "${names[@]}"; do
    kill -0 "$(cat "$tmp/$n/pid")" 2>/dev/null || { echo "bench/store.sh: upesi ($n) died" >&2; tail -n 20 "$tmp/$n/upesi.log" >&2; exit 1; }
    if grep -q 'deferred\|store: .*failed' "$tmp/$n/upesi.log"; then
        echo "bench/store.sh: the handler of $n deferred mail:" >&2; grep 'deferred\|store' "$tmp/$n/upesi.log" | tail -5 >&2; exit 1
    fi
done
counted=$(redis-cli -p "$redis_port" GET 'lua:rcpt:bob@example.com')
[[ ${counted:-0} -gt 0 ]] || { echo "bench/store.sh: nothing counted in Redis" >&2; exit 1; }

declare -A med
for n in "${names[@]}"; do med[$n]=$(tr ' ' '\n' <<<"${rates[$n]}" | grep . | median); done
ratio() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.2f", a / b }'; }
r_lmdb=$(ratio "${med[lmdb]}" "${med[base]}")
r_redis=$(ratio "${med[redis]}" "${med[base]}")
# CPU of the worker per message, base / with the store (under 1: what the
# store costs the worker; Redis's own CPU is not in it)
c_lmdb=$(ratio "${cpu[base]}" "${cpu[lmdb]}")
c_redis=$(ratio "${cpu[base]}" "${cpu[redis]}")
for n in "${names[@]}"; do kill -TERM "$(cat "$tmp/$n/pid")"; done

# -- 2. a batch get of 500 keys --------------------------------------------------
batch() { # NAME STORE: calls/s of store_bench
    local name=$1 store=$2
    UPESI_STORE_BENCH_CALLS=$CALLS UPESI_STORE_BENCH_KEYS=500 UPESI_STORE_BENCH_DEPTH=$DEPTH \
        start "$name" "$store" "$cont" store_bench queue_discard
    local end=$((SECONDS + 300)) got=
    while (( SECONDS < end )); do
        got=$(sed -n 's/.*store_bench: .* \([0-9]*\) calls\/s.*/\1/p' "$tmp/$name/upesi.log")
        [[ -n $got ]] && break
        grep -q 'store_bench: failed' "$tmp/$name/upesi.log" && break
        sleep 0.1
    done
    kill -TERM "$(cat "$tmp/$name/pid")"
    [[ -n $got ]] || { echo "bench/store.sh: store_bench ($name) gave no figure" >&2; tail -n 20 "$tmp/$name/upesi.log" >&2; exit 1; }
    echo "$got"
}
keys=()
for ((k = 0; k < 500; k++)); do keys+=("store_bench:tok$k"); done
declare -A bat
for ((i = 1; i <= 3; i++)); do
    bat[lmdb]+="$(batch "blmdb$i" "lmdb:store") "
    bat[redis]+="$(batch "bredis$i" "$redis_url") "
    # the same MGET of the same 500 keys the plugin filled
    rb=$(redis-benchmark -h 127.0.0.1 -p "$redis_port" -c "$DEPTH" -n "$CALLS" -q MGET "${keys[@]}" 2>/dev/null |
         tr '\r' '\n' | sed -n 's/.*: \([0-9.]*\) requests per second.*/\1/p' | tail -1)
    bat[bench]+="${rb%.*} "
done
for n in lmdb redis bench; do bat[$n]=$(tr ' ' '\n' <<<"${bat[$n]}" | grep . | median); done

printf '\nupesi %s, %s cores\n' "$(rev)" "$(nproc)"
printf 'one upesi.kv.incr per recipient (1 worker, smtp-source -s %d -d -m %d -l 1024, median of %d):\n' "$SESSIONS" "$MESSAGES" "$RUNS"
printf '  %-28s %10s msg/s\n' "Lua rcpt CONT (no store)" "${med[base]}"
printf '  %-28s %10s msg/s  ratio %s (target >= 0.9), worker CPU ratio %s\n' "Lua rcpt kv.incr, lmdb" "${med[lmdb]}" "$r_lmdb" "$c_lmdb"
printf '  %-28s %10s msg/s  ratio %s (target >= 0.8), worker CPU ratio %s\n' "Lua rcpt kv.incr, redis" "${med[redis]}" "$r_redis" "$c_redis"
printf 'a batch get of 500 keys (%d calls, %d in flight, median of 3):\n' "$CALLS" "$DEPTH"
printf '  %-28s %10s calls/s\n' "upesi store_mget, lmdb" "${bat[lmdb]}"
printf '  %-28s %10s calls/s  (%s of redis-benchmark)\n' "upesi store_mget, redis" "${bat[redis]}" "$(ratio "${bat[redis]}" "${bat[bench]}")"
printf '  %-28s %10s calls/s\n' "redis-benchmark MGET" "${bat[bench]}"
mkdir -p "$(dirname "$OUT")"
echo "$(date -u +%Y-%m-%dT%H:%M:%SZ) $(rev) incr.lmdb=$r_lmdb incr.redis=$r_redis cpu.lmdb=$c_lmdb cpu.redis=$c_redis mget500.lmdb=${bat[lmdb]} mget500.redis=${bat[redis]} mget500.redis_benchmark=${bat[bench]} sessions=$SESSIONS messages=$MESSAGES runs=$RUNS depth=$DEPTH" >>"$OUT"
echo "(appended to ${OUT#$ROOT/})"
