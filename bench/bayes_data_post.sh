#!/usr/bin/env bash
# bayes_data_post.sh - what the bayes filter costs a server (issue 18):
# the message rate of upesi with `bayes queue_discard` as a ratio to the
# same server with `queue_discard` alone.  Target: >= 0.7.
#
#   bench/bayes_data_post.sh [RUNS]     default 3; needs ./upesi, plugins built
#
# The bayes server's store is first taught LEARN (default 300) spam and
# 300 ham messages made of paragraphs of two texts on every Debian system
# (/usr/share/common-licenses: GPL-3 as ham, the other licences as spam),
# so its counts are a real B-tree and not a toy.  Then Postfix's
# smtp-source sends MESSAGES (default 2000) copies of one multipart/
# alternative message of about 8 KB (a text part and an HTML part with
# links), pre-formatted with -F, over SESSIONS (default 10) reused
# connections (-d), one worker, log_level = warning; every message is
# parsed, tokenized, looked up and judged (min_learns is met).  The runs
# alternate between the servers; the median rates and their ratio are
# printed, and beside them the CPU time the server (all its processes)
# spent per message, whose ratio is what the rate ratio would be on a
# machine where the server has the CPU to itself (on a loaded machine the
# wall-clock rates are noisy).
# Fails: exits 1 if a server does not start, learning fails, or
# smtp-source fails.
source "$(dirname "$0")/lib.sh"
RUNS=${1:-3}
MESSAGES=${MESSAGES:-2000}
SESSIONS=${SESSIONS:-10}
LEARN=${LEARN:-300}
LIC=/usr/share/common-licenses

# paragraphs of a text, one a line
paragraphs() { awk 'BEGIN { RS = "" } { gsub(/\n/, " "); print }' "$@"; }
paragraphs "$LIC/GPL-3" >"$tmp/ham.par"
paragraphs "$LIC/Apache-2.0" "$LIC/MPL-2.0" "$LIC/Artistic" >"$tmp/spam.par"

# make_msgs KIND N DIR: N messages of 4 random paragraphs each
make_msgs() {
    mkdir -p "$3"
    awk -v kind="$1" -v n="$2" -v dir="$3" 'BEGIN { srand(18) }
        { p[NR] = $0 }
        END {
            for (i = 1; i <= n; i++) {
                f = dir "/" i ".eml"
                printf "From: %s%d@%s.example\nTo: bob@example.com\n", kind, i, kind > f
                printf "Subject: %s\nMessage-ID: <%s.%d@bench>\n\n", substr(p[int(rand() * NR) + 1], 1, 60), kind, i > f
                for (k = 0; k < 4; k++) print p[int(rand() * NR) + 1] "\n" > f
                close(f)
            }
        }' "$tmp/$1.par"
}
make_msgs ham "$LEARN" "$tmp/learn/ham"
make_msgs spam "$LEARN" "$tmp/learn/spam"

# the message sent: text and HTML alternatives from the spam texts
{
    printf 'From: Offers <news@offers.example>\r\nTo: bob@example.com\r\n'
    printf 'Subject: Your licence offer, act now\r\nMIME-Version: 1.0\r\n'
    printf 'Content-Type: multipart/alternative; boundary="b1"\r\n\r\n'
    printf -- '--b1\r\nContent-Type: text/plain; charset=utf-8\r\n\r\n'
    sed -n '1,6p' "$tmp/spam.par" | fold -w 76 -s | sed 's/$/\r/'
    printf -- '\r\n--b1\r\nContent-Type: text/html; charset=utf-8\r\n\r\n<html><body>'
    sed -n '7,10p' "$tmp/spam.par" | fold -w 76 -s |
        awk '{ printf "<p>%s <a href=\"http://www%d.offers.example/x\">more</a></p>\r\n", $0, NR }'
    printf '</body></html>\r\n--b1--\r\n'
} >"$tmp/message.eml"

mkdir -p "$tmp/bayes/conf"
echo "min_learns = 100" >"$tmp/bayes/conf/bayes.ini"
ports=() sups=()
for name in plain bayes; do
    port=$(free_port)
    plugins="queue_discard"
    [[ $name == bayes ]] && plugins="bayes queue_discard"
    start_upesi "$name" "$port" "$plugins" "workers = 1" "log_level = warning"
    ports+=("$port") sups+=("$UPESI_PID")
done
for kind in spam ham; do
    "$UPESI" -c "$tmp/bayes/conf" bayes learn "$kind" "$tmp/learn/$kind" \
        >"$tmp/learn.log" 2>&1 || {
        echo "bench: bayes learn $kind failed" >&2; cat "$tmp/learn.log" >&2; exit 1; }
done
"$UPESI" -c "$tmp/bayes/conf" bayes stats | sed 's/^/  store: /'
verdict=$("$UPESI" -c "$tmp/bayes/conf" bayes classify "$tmp/message.eml")
echo "  the message: $verdict ($(wc -c <"$tmp/message.eml") bytes)"

run() {         # run PORT: msg/s of one smtp-source run
    source_rate "$1" "$tmp/source.log" -s "$SESSIONS" -d -F "$tmp/message.eml"
}
# run_cpu INDEX: "rate cpu-us-per-message" of one run against server INDEX
run_cpu() {
    local c0 c1 rate
    c0=$(cpu_ns "${sups[$1]}")
    rate=$(run "${ports[$1]}")
    c1=$(cpu_ns "${sups[$1]}")
    echo "$rate $(awk -v a="$c0" -v b="$c1" -v n="$MESSAGES" 'BEGIN { printf "%.0f", (b - a) / n / 1000 }')"
}

MESSAGES_SAVED=$MESSAGES
MESSAGES=$((SESSIONS * 20))
run "${ports[0]}" >/dev/null; run "${ports[1]}" >/dev/null     # warm-up
MESSAGES=$MESSAGES_SAVED
plain=() judged=() cplain=() cjudged=()
for ((i = 1; i <= RUNS; i++)); do
    read -r p cp <<<"$(run_cpu 0)"
    read -r b cb <<<"$(run_cpu 1)"
    plain+=("$p"); judged+=("$b"); cplain+=("$cp"); cjudged+=("$cb")
    printf '  run %d: without bayes %6s msg/s %5s us CPU/msg   with bayes %6s msg/s %5s us CPU/msg\n' \
        "$i" "$p" "$cp" "$b" "$cb"
done
# every message judged, none left without a verdict
"$UPESI" -c "$tmp/bayes/conf" stat SMTP.Bayes | sed 's/^/  /'
mp=$(printf '%s\n' "${plain[@]}" | median)
mb=$(printf '%s\n' "${judged[@]}" | median)
cp=$(printf '%s\n' "${cplain[@]}" | median)
cb=$(printf '%s\n' "${cjudged[@]}" | median)
printf '\nbayes %s: data_post verdicts, %s-byte message, smtp-source -d -s %d -m %d, median of %d runs\n' \
    "$(rev)" "$(wc -c <"$tmp/message.eml")" "$SESSIONS" "$MESSAGES" "$RUNS"
printf '  without bayes %s msg/s, with bayes %s msg/s: ratio %s (target >= 0.7)\n' "$mp" "$mb" \
    "$(awk -v a="$mb" -v b="$mp" 'BEGIN { printf "%.2f", (b > 0 ? a / b : 0) }')"
printf '  server CPU per message: without %s us, with %s us: ratio %s\n' "$cp" "$cb" \
    "$(awk -v a="$cp" -v b="$cb" 'BEGIN { printf "%.2f", (b > 0 ? a / b : 0) }')"
