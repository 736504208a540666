# bench/lib.sh - shared by the bench scripts (sourced, not run).
#
# Gives: ROOT, tmp (a scratch dir removed at exit), pids (stopped at exit),
# free_port, wait_listen PORT SECS, start_upesi NAME PORT PLUGINS [KEY=VALUE
# ...] (a temp config under $tmp/NAME; sets UPESI_PID), worker_pids PID,
# tree_pids PID, cpu_ns PID, rss_kb PID, hwm_kb PID, median, rev,
# source_rate, and the tool paths SINK, SOURCE, UPESI.
# Fails: a missing tool or a server that does not start exits 1.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
ROOT=$PWD
SINK=/usr/sbin/smtp-sink
SOURCE=/usr/sbin/smtp-source
UPESI=${UPESI:-$ROOT/upesi}

for tool in "$SOURCE" "$UPESI" "$ROOT/plugins/queue_discard.so"; do
    [[ -x $tool || -f $tool ]] || { echo "bench: missing $tool (make deps-test all)" >&2; exit 1; }
done

tmp=$(mktemp -d /tmp/upesi-bench.XXXXXX)
pids=()
bench_cleanup() {
    local pid
    for pid in "${pids[@]}"; do kill -TERM "$pid" 2>/dev/null || true; done
    for _ in 1 2 3 4 5 6 7 8 9 10; do
        local alive=0
        for pid in "${pids[@]}"; do kill -0 "$pid" 2>/dev/null && alive=1; done
        (( alive )) || break
        sleep 0.2
    done
    for pid in "${pids[@]}"; do kill -KILL "$pid" 2>/dev/null || true; done
    wait 2>/dev/null || true
    rm -rf "$tmp"
}
trap bench_cleanup EXIT

free_port() {
    perl -MIO::Socket::IP -e '
        my $s = IO::Socket::IP->new(LocalHost => "127.0.0.1", LocalPort => 0,
                                    Listen => 1) or die "bind: $@";
        print $s->sockport, "\n";'
}

wait_listen() { # port deadline-seconds
    local port=$1 end=$((SECONDS + $2)) hex
    hex=$(printf '0100007F:%04X' "$port")
    while (( SECONDS < end )); do
        awk -v a="$hex" '$2 == a && $4 == "0A" { f = 1 } END { exit !f }' \
            /proc/net/tcp && return 0
        sleep 0.05
    done
    return 1
}

# The plugins that query DNS: left out of the benchmarks' chain (they would
# query the network; bench/dnsbl.sh measures what they cost).
DNS_PLUGINS="dnsbl dnswl connection_checks"

# default_chain: the default chain (conf/plugins) without the DNS plugins,
# queue_discard in place of queue_spool: what a default install does to a
# message, without the disk
default_chain() {
    local p
    for p in $(sed 's/#.*//' "$ROOT/conf/plugins"); do
        [[ " $DNS_PLUGINS " == *" $p "* ]] && continue
        [[ $p == queue_spool ]] && p=queue_discard
        echo "$p"
    done
}

# start_upesi NAME PORT "PLUGIN ..."|default [smtp.ini lines ...]
# A fresh config in $tmp/NAME (local_domains example.com, log to
# $tmp/NAME/upesi.log); UPESI_PID is the supervisor.  "default": the
# default chain (default_chain) with the repository's conf/ settings of
# those plugins (conf/*.ini and the files they name, e.g. the directory).
start_upesi() {
    local name=$1 port=$2 plugins=$3; shift 3
    local dir=$tmp/$name
    mkdir -p "$dir/conf" "$dir/spool"
    if [[ $plugins == default ]]; then
        local f
        for f in "$ROOT"/conf/*; do
            case ${f##*/} in smtp.ini|plugins) continue ;; esac
            cp -r "$f" "$dir/conf/"
        done
        plugins=$(default_chain | tr '\n' ' ')
    fi
    {
        echo "; bench: $name"
        echo "listen = 127.0.0.1:$port"
        echo "hostname = bench.example.com"
        echo "greeting = bench.example.com ESMTP upesi ready at %s"
        echo "local_domains = example.com"
        echo "spool_dir = $dir/spool"
        echo "control_socket = $dir/upesi.sock"
        echo "plugin_dir = $ROOT/plugins"
        echo "error_limit = 20"
        local kv
        for kv in "$@"; do echo "$kv"; done
    } >"$dir/conf/smtp.ini"
    tr ' ' '\n' <<<"$plugins" | grep . >"$dir/conf/plugins"
    "$UPESI" -c "$dir/conf" -t >"$dir/check.log" 2>&1 || {
        echo "bench: upesi -t ($name) failed" >&2; cat "$dir/check.log" >&2; exit 1; }
    "$UPESI" -c "$dir/conf" >"$dir/upesi.log" 2>&1 &
    UPESI_PID=$!
    pids+=("$UPESI_PID")
    wait_listen "$port" 15 || {
        echo "bench: upesi ($name) did not start" >&2; tail -n 20 "$dir/upesi.log" >&2; exit 1; }
}

# worker_pids PID: the children of a supervisor (one per line)
worker_pids() {
    local pid=$1 t
    for t in /proc/"$pid"/task/*/children; do cat "$t"; done 2>/dev/null | tr ' ' '\n' | grep .
}

# tree_pids PID: PID and all its descendants
tree_pids() {
    local pid=$1 child
    echo "$pid"
    for child in $(cat /proc/"$pid"/task/*/children 2>/dev/null); do tree_pids "$child"; done
}

# cpu_ns PID: CPU time of PID and its descendants, all their threads, in
# nanoseconds (/proc/PID/task/TID/schedstat, first field; threads that
# already exited are not counted)
cpu_ns() {
    local p
    for p in $(tree_pids "$1"); do cat /proc/"$p"/task/*/schedstat 2>/dev/null; done |
        awk '{ t += $1 } END { printf "%.0f\n", t }'
}

rss_kb() { awk '$1 == "VmRSS:" { print $2 }' "/proc/$1/status"; }
hwm_kb() { awk '$1 == "VmHWM:" { print $2 }' "/proc/$1/status"; }

median() { sort -n | awk '{ v[NR] = $1 } END { if (NR == 0) print 0; else if (NR % 2) print v[(NR + 1) / 2]; else printf "%.0f\n", (v[NR / 2] + v[NR / 2 + 1]) / 2 }'; }

rev() { git -C "$ROOT" rev-parse --short --verify -q HEAD 2>/dev/null || echo '(no commit)'; }

# source_rate PORT LOG [smtp-source options]: messages per second of one
# smtp-source run of $MESSAGES messages (exits 1 if smtp-source fails)
source_rate() {
    local port=$1 log=$2; shift 2
    local t0 t1
    t0=$(date +%s.%N)
    if ! timeout 600 "$SOURCE" -m "$MESSAGES" "$@" \
            -M client.example.org -f sender@example.org -t bob@example.com \
            -S bench "127.0.0.1:$port" >"$log" 2>&1; then
        echo "bench: smtp-source against port $port failed:" >&2
        tail -n 20 "$log" >&2
        exit 1
    fi
    t1=$(date +%s.%N)
    awk -v n="$MESSAGES" -v a="$t0" -v b="$t1" 'BEGIN { printf "%.0f\n", n / (b - a) }'
}
