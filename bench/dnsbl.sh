#!/usr/bin/env bash
# bench/dnsbl.sh - what the DNS blacklists cost: message rate of upesi with
# dnsbl querying four zones served by a local dnsmasq, as a ratio to the
# same upesi without DNS plugins (issue 4: warm >= 0.9, cold >= 0.5).
#
# Three upesi servers run side by side, each with queue_discard:
#   base   no DNS plugin
#   warm   dnsbl, four zones, the answer cache on (a warm-up run fills it:
#          every later session is answered from the cache)
#   cold   dnsbl, four zones, dns_cache_size = 0: every session asks
#          dnsmasq for all four zones (identical lookups in flight at the
#          same instant still share one query; the script prints how many
#          queries each message really cost)
# Driven by Postfix's smtp-source, a new connection per message (DNSBL
# work is per connection), servers alternating run by run so that noise
# hits all alike (each round starts with a different one).  The client,
# 127.0.0.1, is listed in no zone (NXDOMAIN, the common case); the ratio is
# the point, not the absolute rate.
#
# Environment: RUNS (default 5), MESSAGES (3000), SESSIONS (20).
# Fails: exits non-zero when a tool is missing, a server does not start or
# smtp-source reports an error; every process it started is stopped.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD

RUNS=${RUNS:-5}
MESSAGES=${MESSAGES:-3000}
SESSIONS=${SESSIONS:-20}
SOURCE=/usr/sbin/smtp-source
DNSMASQ=/usr/sbin/dnsmasq
UPESI=${UPESI:-$ROOT/upesi}

for tool in "$SOURCE" "$DNSMASQ" "$UPESI" "$ROOT/plugins/queue_discard.so" \
            "$ROOT/plugins/dnsbl.so"; do
    [[ -x $tool || -f $tool ]] || { echo "dnsbl.sh: missing $tool (make deps-test all)" >&2; exit 1; }
done

tmp=$(mktemp -d /tmp/upesi-bench-dnsbl.XXXXXX)
pids=()
cleanup() {
    local pid
    for pid in "${pids[@]}"; do kill -TERM "$pid" 2>/dev/null || true; done
    sleep 0.2
    for pid in "${pids[@]}"; do kill -KILL "$pid" 2>/dev/null || true; done
    wait 2>/dev/null || true
    rm -rf "$tmp"
}
trap cleanup EXIT

free_port() { # tcp|udp
    perl -MIO::Socket::IP -e '
        my $s = IO::Socket::IP->new(LocalHost => "127.0.0.1", LocalPort => 0,
                                    Proto => $ARGV[0],
                                    ($ARGV[0] eq "tcp" ? (Listen => 1) : ()))
            or die "bind: $@";
        print $s->sockport, "\n";' "$1"
}

wait_bound() { # /proc/net/tcp|udp port seconds
    local file=$1 port=$2 end=$((SECONDS + $3)) hex
    hex=$(printf '0100007F:%04X' "$port")
    while (( SECONDS < end )); do
        awk -v a="$hex" '$2 == a { f = 1 } END { exit !f }' "$file" && return 0
        sleep 0.05
    done
    return 1
}

# -- dnsmasq: four zones; 127.0.0.1 is listed in none ------------------------
dns_port=$(free_port udp)
"$DNSMASQ" --keep-in-foreground --conf-file=/dev/null --no-resolv --no-hosts \
    --pid-file= --user=root --listen-address=127.0.0.1 --bind-interfaces \
    --port="$dns_port" --log-facility="$tmp/dnsmasq.log" --local-ttl=300 \
    --local=/test/ --address=/2.0.0.127.bl1.test/127.0.0.2 \
    >/dev/null 2>&1 &
pids+=($!)
wait_bound /proc/net/udp "$dns_port" 10 || { echo "dnsbl.sh: dnsmasq did not start" >&2; exit 1; }

# -- the servers ---------------------------------------------------------------
declare -A port spid
start_upesi() { # name plugins-lines extra-smtp-ini
    local name=$1 plugins=$2 extra=$3 dir=$tmp/$1
    port[$name]=$(free_port tcp)
    mkdir -p "$dir/spool"
    cat >"$dir/smtp.ini" <<EOF
listen = 127.0.0.1:${port[$name]}
hostname = bench.example.com
local_domains = example.com
spool_dir = $dir/spool
control_socket = $dir/upesi.sock
plugin_dir = $ROOT/plugins
max_sessions = 1000
dns_servers = 127.0.0.1:$dns_port
dns_timeout = 5
$extra
EOF
    printf '%s\n' $plugins >"$dir/plugins"
    printf 'zones = bl1.test, bl2.test, bl3.test, bl4.test\naction = reject\n' >"$dir/dnsbl.ini"
    "$UPESI" -c "$dir" -t >"$dir/check.log" 2>&1 || { echo "dnsbl.sh: upesi -t failed" >&2; cat "$dir/check.log" >&2; exit 1; }
    "$UPESI" -c "$dir" >"$dir/upesi.log" 2>&1 &
    pids+=($!)
    spid[$name]=$!
    wait_bound /proc/net/tcp "${port[$name]}" 15 || { echo "dnsbl.sh: upesi ($name) did not start" >&2; tail -n 20 "$dir/upesi.log" >&2; exit 1; }
}
start_upesi base "queue_discard" ""
start_upesi warm "dnsbl queue_discard" "dns_cache_size = 10000"
start_upesi cold "dnsbl queue_discard" "dns_cache_size = 0"

run() { # port -> messages per second
    local t0 t1
    t0=$(date +%s.%N)
    if ! timeout 300 "$SOURCE" -s "$SESSIONS" -m "$MESSAGES" \
            -M client.example.org -f sender@example.org -t bob@example.com \
            -S bench -l 1024 "127.0.0.1:$1" >"$tmp/source.log" 2>&1; then
        echo "dnsbl.sh: smtp-source against port $1 failed:" >&2
        tail -n 20 "$tmp/source.log" >&2
        exit 1
    fi
    t1=$(date +%s.%N)
    awk -v n="$MESSAGES" -v a="$t0" -v b="$t1" 'BEGIN { printf "%.0f\n", n / (b - a) }'
}
# CPU seconds (user + system) of a server's processes (supervisor and
# workers): steadier than rates on a shared machine
cpu_of() {
    local pid=$1 kids
    kids=$(pgrep -P "$pid" 2>/dev/null || true)
    for p in $pid $kids; do cat "/proc/$p/stat" 2>/dev/null; done |
        awk -v hz="$(getconf CLK_TCK)" '{ sub(/.*\) /, ""); t += $12 + $13 } END { printf "%.3f\n", t / hz }'
}
median() { sort -n | awk '{ v[NR] = $1 } END { if (NR % 2) print v[(NR + 1) / 2]; else printf "%.0f\n", (v[NR / 2] + v[NR / 2 + 1]) / 2 }'; }
stat_of() { # name counter
    "$UPESI" -c "$tmp/$1" stat "$2" 2>/dev/null | awk -v k="$2" '$1 == k { print $3 }'
}

for name in base warm cold; do  # untimed warm-up (fills the warm cache)
    MESSAGES=$((SESSIONS * 10)) run "${port[$name]}" >/dev/null
done
q0=$(stat_of cold Upesi.DNS.Queries); q0=${q0:-0}
declare -A rates cpu0
for name in base warm cold; do cpu0[$name]=$(cpu_of "${spid[$name]}"); done
order=(base warm cold)
for ((i = 1; i <= RUNS; i++)); do
    # each round starts with a different server: no one always goes first
    for ((k = 0; k < 3; k++)); do
        name=${order[$(( (i + k) % 3 ))]}
        r=$(run "${port[$name]}")
        rates[$name]+="$r "
        printf '  run %d %-5s %7s msg/s\n' "$i" "$name" "$r"
    done
done
q1=$(stat_of cold Upesi.DNS.Queries); q1=${q1:-0}
declare -A us
for name in base warm cold; do
    us[$name]=$(awk -v a="${cpu0[$name]}" -v b="$(cpu_of "${spid[$name]}")" \
        -v m="$((RUNS * MESSAGES))" 'BEGIN { printf "%.1f", (b - a) * 1e6 / m }')
done
hits=$(stat_of warm Upesi.DNS.CacheHits); hits=${hits:-0}

for name in base warm cold; do
    kill -0 "${pids[@]}" 2>/dev/null || { echo "dnsbl.sh: a server died" >&2; exit 1; }
done
b=$(tr ' ' '\n' <<<"${rates[base]}" | grep . | median)
w=$(tr ' ' '\n' <<<"${rates[warm]}" | grep . | median)
c=$(tr ' ' '\n' <<<"${rates[cold]}" | grep . | median)
printf '\ndnsbl, 4 zones on a local dnsmasq; smtp-source -s %d -m %d, new connection per message, median of %d runs, %s cores\n' \
    "$SESSIONS" "$MESSAGES" "$RUNS" "$(nproc)"
printf '%-34s %10s %8s\n' scenario rate ratio
printf '%-34s %10s %8s\n' "no DNS plugins" "$b msg/s" "1.00"
printf '%-34s %10s %8s   (target >= 0.9)\n' "dnsbl, warm cache" "$w msg/s" "$(awk -v a="$w" -v b="$b" 'BEGIN { printf "%.2f", a / b }')"
printf '%-34s %10s %8s   (target >= 0.5)\n' "dnsbl, no cache (cold)" "$c msg/s" "$(awk -v a="$c" -v b="$b" 'BEGIN { printf "%.2f", a / b }')"
printf 'cold: %s DNS queries for %d messages (%.2f per message; 4 = every zone asked every time)\n' \
    "$((q1 - q0))" "$((RUNS * MESSAGES))" "$(awk -v q="$((q1 - q0))" -v m="$((RUNS * MESSAGES))" 'BEGIN { printf "%.2f", q / m }')"
printf 'warm: %s answers from the cache\n' "$hits"
printf 'upesi CPU per message: base %s us, warm %s us, cold %s us (user + system)\n' \
    "${us[base]}" "${us[warm]}" "${us[cold]}"
