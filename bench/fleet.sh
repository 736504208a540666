#!/usr/bin/env bash
# fleet.sh - the cost of the controls that remember (issue 19): the
# message rate of the default chain plus greylist (the client's network
# already passed), limit and karma, as a ratio to the default chain alone;
# with the lmdb store and with a Redis on loopback.
#
#   bench/fleet.sh [RUNS]          default 3; needs ./upesi, plugins built,
#                                  redis-server for the Redis half
#
# Three servers, one worker each, log_level = warning, queue_discard in
# place of queue_spool (no disk in the way):
#   base   the default chain (bench/lib.sh default_chain)
#   lmdb   limit first, greylist before relay, karma last, store = lmdb
#   redis  the same chain, store = redis://127.0.0.1:PORT (redis-server
#          started here, persisting nothing)
# limit has conf/limit.ini's rules with limits no run reaches
# (concurrency, rate, messages and recipients per IP and per user, AUTH
# failures): a connection costs two store_incr and a store_expire (and a
# store_incr at disconnect), a message one store_incr at MAIL and one at
# RCPT.  greylist has delay = 1 s and the loopback network is made to pass
# before the runs: the worker's pass_cache answers its recipients, no
# store call.  karma keeps conf/karma.ini: one store_mget of 20 keys (10
# slots, IP and network) per connection (clean sessions score nothing: no
# write).  With Redis a reused connection's message is two round trips
# (MAIL, RCPT), a new connection's four (connect: limit, then karma).
# smtp-source sends MESSAGES (default 2000) 1 KB messages over SESSIONS
# (default 10) sessions, a new connection per message and then reused
# connections (-d); the runs alternate between the servers, and the median
# rates and the ratios are printed.  Targets: lmdb >= 0.8, redis >= 0.7.
# Fails: exits 1 if a server does not start or smtp-source fails.
source "$(dirname "$0")/lib.sh"
RUNS=${1:-3}
MESSAGES=${MESSAGES:-2000}
SESSIONS=${SESSIONS:-10}

REDIS=/usr/bin/redis-server
have_redis=0
[[ -x $REDIS ]] && have_redis=1

chain() {       # the default chain with the three plugins in their places
    echo limit
    local p
    for p in $(default_chain); do
        [[ $p == relay ]] && echo greylist
        [[ $p == queue_discard ]] && echo karma
        echo "$p"
    done
}

prepare() {     # prepare NAME: the repository's plugin settings, and ours
    local dir=$tmp/$1/conf f
    mkdir -p "$dir"
    for f in "$ROOT"/conf/*; do
        case ${f##*/} in smtp.ini|plugins) continue ;; esac
        cp -r "$f" "$dir/"
    done
    printf 'delay = 1\n' > "$dir/greylist.ini"
    # conf/limit.ini's rules, with limits no run reaches
    sed -e 's|^concurrency = .*|concurrency = 100000|' \
        -e 's|^\([a-z_]*_per_[a-z]*\) = [1-9][0-9]*/|\1 = 100000000/|' \
        "$ROOT/conf/limit.ini" > "$dir/limit.ini"
}

# the loopback network passes greylisting: a first attempt, the delay, a
# second (python3's smtplib, as the tests use)
pass_greylist() {
    python3 - "$1" <<'EOF'
import smtplib, sys, time
port = int(sys.argv[1])
for attempt in range(2):
    s = smtplib.SMTP("127.0.0.1", port, local_hostname="client.example.org")
    s.ehlo()
    mcode, mtext = s.mail("sender@example.org")
    if mcode != 250:
        sys.exit("MAIL FROM refused: %d %s" % (mcode, mtext))
    code, _ = s.rcpt("bob@example.com")
    s.quit()
    if code == 250:
        sys.exit(0)
    time.sleep(1.2)
sys.exit("greylisting did not pass: %d" % code)
EOF
}

names=(base lmdb)
ports=()
spids=()        # the processes whose CPU a server costs (space separated)
port=$(free_port)
start_upesi base "$port" default "workers = 1" "log_level = warning"
ports+=("$port"); spids+=("$UPESI_PID")
prepare lmdb
port=$(free_port)
start_upesi lmdb "$port" "$(chain | tr '\n' ' ')" "workers = 1" "log_level = warning" "store = lmdb:store"
ports+=("$port"); spids+=("$UPESI_PID")
if (( have_redis )); then
    rport=$(free_port)
    mkdir -p "$tmp/redis-data"
    "$REDIS" --port "$rport" --bind 127.0.0.1 --save '' --appendonly no \
        --dir "$tmp/redis-data" --logfile "$tmp/redis-data/redis.log" &
    rpid=$!
    pids+=("$rpid")
    wait_listen "$rport" 10 || { echo "bench: redis-server did not start" >&2; exit 1; }
    prepare redis
    port=$(free_port)
    start_upesi redis "$port" "$(chain | tr '\n' ' ')" "workers = 1" "log_level = warning" \
        "store = redis://127.0.0.1:$rport/0"
    ports+=("$port"); spids+=("$UPESI_PID $rpid")
    names+=(redis)
else
    echo "bench: no redis-server: the Redis half is skipped" >&2
fi
for ((k = 1; k < ${#ports[@]}; k++)); do pass_greylist "${ports[$k]}"; done

run() {         # run PORT [-d]: msg/s of one smtp-source run
    local port=$1; shift
    source_rate "$port" "$tmp/source.log" -s "$SESSIONS" -l 1024 "$@"
}

cpu_of() {      # cpu_of "PID ...": their CPU time (and their children's), ns
    local p t=0
    for p in $1; do t=$((t + $(cpu_ns "$p"))); done
    echo "$t"
}

results=()
for mode in new reused; do
    opt=()
    [[ $mode == reused ]] && opt=(-d)
    MESSAGES_SAVED=$MESSAGES
    MESSAGES=$((SESSIONS * 20))
    for p in "${ports[@]}"; do run "$p" "${opt[@]}" >/dev/null; done     # warm-up
    MESSAGES=$MESSAGES_SAVED
    declare -A rates=() cpus=()
    rcpus=""
    for ((i = 1; i <= RUNS; i++)); do
        line="  $mode connections, run $i:"
        for ((k = 0; k < ${#ports[@]}; k++)); do
            c0=$(cpu_of "${spids[$k]}")
            [[ ${names[$k]} == redis ]] && r0=$(cpu_ns "$rpid")
            r=$(run "${ports[$k]}" "${opt[@]}")
            c1=$(cpu_of "${spids[$k]}")
            us=$(awk -v a="$c0" -v b="$c1" -v n="$MESSAGES" 'BEGIN { printf "%.0f", (b - a) / n / 1000 }')
            if [[ ${names[$k]} == redis ]]; then
                rcpu=$(awk -v a="$r0" -v b="$(cpu_ns "$rpid")" -v n="$MESSAGES" 'BEGIN { printf "%.0f", (b - a) / n / 1000 }')
                rcpus+="$rcpu "
            fi
            rates[${names[$k]}]+="$r "
            cpus[${names[$k]}]+="$us "
            line+=$(printf ' %s %6s msg/s %4s us/msg' "${names[$k]}" "$r" "$us")
        done
        echo "$line"
    done
    base=$(printf '%s\n' ${rates[base]} | median)
    basecpu=$(printf '%s\n' ${cpus[base]} | median)
    printf '\nfleet %s: %s connections, smtp-source -s %d -m %d, 1 KB, median of %d runs\n' \
        "$(rev)" "$mode" "$SESSIONS" "$MESSAGES" "$RUNS"
    printf '  default chain %s msg/s, server CPU %s us/msg\n' "$base" "$basecpu"
    for ((k = 1; k < ${#ports[@]}; k++)); do
        n=${names[$k]}
        m=$(printf '%s\n' ${rates[$n]} | median)
        mc=$(printf '%s\n' ${cpus[$n]} | median)
        target=0.8; [[ $n == redis ]] && target=0.7
        rr=$(awk -v a="$m" -v b="$base" 'BEGIN { printf "%.2f", (b > 0 ? a / b : 0) }')
        cr=$(awk -v a="$basecpu" -v b="$mc" 'BEGIN { printf "%.2f", (b > 0 ? a / b : 0) }')
        printf '  + greylist limit karma, %-5s %6s msg/s: rate ratio %s (target >= %s); CPU %s us/msg (redis-server included): CPU ratio chain/this %s\n' \
            "$n" "$m" "$rr" "$target" "$mc" "$cr"
        results+=("target fleet $n $mode connections: rate ratio $rr, CPU ratio $cr (>= $target)")
    done
    if (( have_redis )); then
        printf '  of the redis variant'"'"'s CPU, redis-server: %s us/msg\n' "$(printf '%s\n' $rcpus | median)"
    fi
    unset rates cpus
done
echo
printf '%s\n' "${results[@]}"
