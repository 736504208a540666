#!/usr/bin/env bash
# mail_rules.sh - the cost of server mail rules (issue 6): the message
# rate of upesi with 1,000 rules against a 10 KB message, as a ratio to
# the same server with an empty rule set.
#
#   bench/mail_rules.sh [RUNS]     default 3; needs ./upesi, plugins built
#
# Two servers, both `mail_rules queue_discard` (no disk in the way), one
# worker, log_level = warning: "empty" has a rules file without rules,
# "rules" has 1,000 rules none of which match, so that every message is
# parsed with GMime once and every rule is evaluated: subject, body (the
# decoded text), header, sender, to, attachment_name, size and
# recipient_count conditions, mixed with and/or/not.  Postfix's
# smtp-source sends MESSAGES (default 2000) 10 KB messages over SESSIONS
# (default 10) reused connections (-d); the runs alternate between the
# servers, and the median rates and their ratio are printed.
# Fails: exits 1 if a server does not start or smtp-source fails.
source "$(dirname "$0")/lib.sh"
RUNS=${1:-3}
MESSAGES=${MESSAGES:-2000}
SESSIONS=${SESSIONS:-10}
NRULES=${NRULES:-1000}

prepare() {     # prepare NAME RULES-FILE-CONTENT-GENERATOR
    mkdir -p "$tmp/$1/conf"
    echo "file = rules" > "$tmp/$1/conf/mail_rules.ini"
}
prepare empty
echo "# no rules" > "$tmp/empty/conf/rules"
prepare rules
awk -v n="$NRULES" 'BEGIN {
    for (i = 0; i < n; i++) {
        printf "rule \"r%d\"\n", i;
        k = i % 8;
        if (k == 0) printf "  when subject contains \"offer-%d\"\n", i;
        else if (k == 1) printf "  when body contains \"needle-%d\" and size > 1K\n", i;
        else if (k == 2) printf "  when header \"X-Campaign\" is \"c%d\"\n", i;
        else if (k == 3) printf "  when sender is \"user%d@example.net\" or internet_domain is \"d%d.example\"\n", i, i;
        else if (k == 4) printf "  when to contains \"list-%d@\" and not recipient_count > 100\n", i;
        else if (k == 5) printf "  when attachment_name contains \".x%d\"\n", i;
        else if (k == 6) printf "  when (body_or_subject contains \"promo-%d\" or size > 50M) and all\n", i;
        else printf "  when any_recipient is \"trap%d@example.com\"\n", i;
        printf "  unless sender is \"boss@example.com\"\n  do tag \"X-Rule: r%d\"\n\n", i;
    }
}' > "$tmp/rules/conf/rules"

ports=()
for name in empty rules; do
    port=$(free_port)
    start_upesi "$name" "$port" "mail_rules queue_discard" "workers = 1" "log_level = warning"
    ports+=("$port")
done

run() {         # run PORT: msg/s of one smtp-source run
    source_rate "$1" "$tmp/source.log" -s "$SESSIONS" -d -l 10240
}

MESSAGES_SAVED=$MESSAGES
MESSAGES=$((SESSIONS * 20))
run "${ports[0]}" >/dev/null; run "${ports[1]}" >/dev/null     # warm-up
MESSAGES=$MESSAGES_SAVED
empty=() rules=()
for ((i = 1; i <= RUNS; i++)); do
    e=$(run "${ports[0]}")
    r=$(run "${ports[1]}")
    empty+=("$e"); rules+=("$r")
    printf '  run %d: empty rule set %6s msg/s   %d rules %6s msg/s\n' "$i" "$e" "$NRULES" "$r"
done
me=$(printf '%s\n' "${empty[@]}" | median)
mr=$(printf '%s\n' "${rules[@]}" | median)
printf '\nmail_rules %s: %d rules vs none, 10 KB messages, smtp-source -d -s %d -m %d, median of %d runs\n' \
    "$(rev)" "$NRULES" "$SESSIONS" "$MESSAGES" "$RUNS"
printf '  empty rule set %s msg/s, %d rules %s msg/s: ratio %s\n' "$me" "$NRULES" "$mr" \
    "$(awk -v a="$mr" -v b="$me" 'BEGIN { printf "%.2f", (b > 0 ? a / b : 0) }')"
