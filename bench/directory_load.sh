#!/usr/bin/env bash
# directory_load.sh - how long the directory plugin takes to load a large
# directory (issue 5: 100,000 entries in well under a second).
#
#   bench/directory_load.sh [ENTRIES]     default 100000; needs ./upesi and
#                                         plugins/directory.so built
#
# Generates ENTRIES entries (95% persons with a short name and an alias,
# 5% groups of 20 members each, a few deliberately ambiguous short names),
# then times `upesi -c DIR -t` with that directory against the same check
# with a one-line directory, three runs each, and prints the median of
# each, their difference (the cost of the directory) and the plugin's own
# "loaded in N ms" log line.  Exits 1 when the directory costs a second or
# more.  The ratio to the one-line check is printed too, for the bench log.
set -euo pipefail
cd "$(dirname "$0")/.."
entries=${1:-100000}
upesi=./upesi
[ -x "$upesi" ] || { echo "build ./upesi first (make)" >&2; exit 2; }
[ -f plugins/directory.so ] || { echo "build plugins/directory.so first" >&2; exit 2; }

tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

make_conf() {           # make_conf DIR
    mkdir -p "$1"
    cat > "$1/smtp.ini" <<EOF
listen = 127.0.0.1:2525
hostname = bench.example.com
local_domains = example.com
spool_dir = $tmp/spool
control_socket = $tmp/upesi.sock
plugin_dir = $PWD/plugins
EOF
    echo directory > "$1/plugins"
    echo "file = directory" > "$1/directory.ini"
}

make_conf "$tmp/big"
make_conf "$tmp/small"
echo 'person "Bob Example" address=bob@example.com short=bob' > "$tmp/small/directory"

awk -v n="$entries" 'BEGIN {
    groups = int(n / 20); persons = n - groups;
    for (i = 0; i < persons; i++) {
        short = (i % 1000 == 999) ? "dup" int(i / 5000) : "u" i;
        printf "person \"User Number %d\" address=user%d@example.com short=%s alias=alias%d@example.com\n", i, i, short, i;
    }
    for (g = 0; g < groups; g++) {
        printf "group list%d@example.com members=", g;
        for (m = 0; m < 20; m++)
            printf "%su%d", (m ? "," : ""), ((x = (g * 20 + m) % persons) % 1000 == 999 ? x - 1 : x);
        printf "\n";
    }
}' > "$tmp/big/directory"
echo "directory: $(wc -l < "$tmp/big/directory") lines, $(du -h "$tmp/big/directory" | cut -f1)"

time_check() {          # time_check DIR -> milliseconds
    local t0 t1
    t0=$(date +%s%N)
    "$upesi" -c "$1" -t > "$tmp/out" 2>&1 || { cat "$tmp/out" >&2; exit 1; }
    t1=$(date +%s%N)
    echo $(( (t1 - t0) / 1000000 ))
}
median() { printf '%s\n' "$@" | sort -n | sed -n "$(( ($# + 1) / 2 ))p"; }

big=() small=()
for run in 1 2 3; do
    small+=("$(time_check "$tmp/small")")
    big+=("$(time_check "$tmp/big")")
done
mb=$(median "${big[@]}")
ms=$(median "${small[@]}")
"$upesi" -c "$tmp/big" -t 2>&1 | grep -o 'directory: .*loaded in [0-9.]* ms' || true
cost=$(( mb - ms ))
echo "upesi -t: one-line directory ${ms} ms, ${entries} entries ${mb} ms (runs: ${big[*]})"
echo "directory load cost: ${cost} ms; ratio big/small: $(awk -v a="$mb" -v b="$ms" 'BEGIN { printf "%.2f", (b > 0 ? a / b : 0) }')"
if [ "$cost" -ge 1000 ]; then
    echo "FAIL: ${entries} entries took a second or more" >&2
    exit 1
fi
echo "ok: under a second"
