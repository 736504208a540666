#!/usr/bin/env bash
# bench/tls.sh - what TLS costs upesi (issue 3): messages per second with a
# new connection per message over STARTTLS and over implicit TLS, as a
# ratio to plain text; the same for returning clients that resume their
# TLS session (issue 22: a TLS 1.3 ticket), and what their handshake costs
# the server as a ratio to a full one; and the memory of an idle TLS
# session.
#
# The driver is one Perl script (below) with Net::SSLeay, the TLS binding
# swaks uses: SESSIONS forked clients, each sending its share of MESSAGES,
# one connection per message: greeting, EHLO, [STARTTLS, handshake, EHLO,]
# MAIL, RCPT, DATA, a 1 KiB message, QUIT.  The same driver serves every
# mode, so its own cost is the same in each; the TLS handshake costs the
# client as much as the server and both run on this machine, so the ratio
# is the cost of TLS to the pair, an upper bound for the server alone;
# so the worker's own CPU time per message is printed too (from
# /proc/PID/stat), which does not depend on the client's share.
# Returning clients (modes starttls-r, smtps-r): each client keeps the
# session of its last connection (SSL_get1_session after QUIT, when the
# ticket has arrived) and offers it on the next (SSL_set_session); the
# driver counts the handshakes the server resumed and fails if fewer than
# all but each client's first were.  Handshake cost = the server's CPU
# time per message minus that of plain text; printed for full and resumed
# handshakes, and their ratio.
# The server: one worker, queue_discard (no disk), a 2048-bit RSA
# certificate (KEY=ecdsa: P-256), the default ciphers (TLS 1.3, X25519).  Modes alternate run
# by run (plain, starttls, smtps, ...) so that noise hits each alike;
# printed: the median of RUNS.
#
# Idle memory: IDLE TLS sessions are opened (handshake done, EHLO
# answered) and held; the worker's VmRSS before and after, over IDLE, is
# the cost of one idle TLS session (user memory; kernel socket buffers are
# not in VmRSS).  The same for plain-text sessions, for comparison.
#
# Environment: RUNS (3), MESSAGES (1000), SESSIONS (4), IDLE (1000),
# KEY (rsa: a 2048-bit RSA certificate; ecdsa: P-256), OUT (append a result line; default bench/out/results.txt).
# Fails: exits 1 when a tool is missing, the server does not start, or a
# client sees an unexpected reply.
source "$(dirname "$0")/lib.sh"
RUNS=${RUNS:-3}
MESSAGES=${MESSAGES:-1000}
SESSIONS=${SESSIONS:-4}
IDLE=${IDLE:-1000}
KEY=${KEY:-rsa}
OUT=${OUT:-$ROOT/bench/out/results.txt}
perl -MNet::SSLeay -e1 2>/dev/null || { echo "bench: Net::SSLeay missing (apt-get install libnet-ssleay-perl)" >&2; exit 1; }
ulimit -n "$(ulimit -Hn)"

case $KEY in
    rsa) newkey=(-newkey rsa:2048) ;;
    ecdsa) newkey=(-newkey ec -pkeyopt ec_paramgen_curve:prime256v1) ;;
    *) echo "bench: KEY is rsa or ecdsa" >&2; exit 1 ;;
esac
openssl req -x509 "${newkey[@]}" -nodes -days 2 -subj /CN=bench.example.com \
    -keyout "$tmp/key.pem" -out "$tmp/cert.pem" >"$tmp/req.log" 2>&1 ||
    { echo "bench: openssl req failed" >&2; cat "$tmp/req.log" >&2; exit 1; }

cat >"$tmp/driver.pl" <<'PERL'
# driver.pl MODE PORT COUNT SESSIONS   (MODE: plain, starttls, smtps,
#   starttls-r, smtps-r: resuming)
#   prints "messages seconds"
# driver.pl idle MODE PORT N READY_FILE: open N sessions, touch READY_FILE,
#   hold them until stdin closes.
use strict;
use warnings;
use IO::Socket::IP;
use Net::SSLeay;
use Time::HiRes qw(time);
Net::SSLeay::load_error_strings();
Net::SSLeay::SSLeay_add_ssl_algorithms();
Net::SSLeay::randomize();
my $ctx = Net::SSLeay::CTX_new() or die "CTX_new";
Net::SSLeay::CTX_set_verify($ctx, 0);

sub conn {
    my ($port) = @_;
    my $s = IO::Socket::IP->new(PeerHost => '127.0.0.1', PeerPort => $port)
        or die "connect: $@";
    return { sock => $s, buf => '' };
}
sub rd {        # one reply, plain or TLS
    my ($c) = @_;
    while ($c->{buf} !~ /(?:\A|\n)\d{3} [^\n]*\n/) {
        my $d;
        if ($c->{ssl}) { $d = Net::SSLeay::read($c->{ssl}) }
        else { sysread($c->{sock}, $d, 65536) }
        die "connection closed" unless defined $d && length $d;
        $c->{buf} .= $d;
    }
    my $r = $c->{buf};
    $c->{buf} = '';
    return $r;
}
sub wr {
    my ($c, $data) = @_;
    if ($c->{ssl}) { Net::SSLeay::ssl_write_all($c->{ssl}, $data) or die "write" }
    else { syswrite($c->{sock}, $data) == length $data or die "write" }
}
sub expect {
    my ($c, $send, $code) = @_;
    wr($c, $send) if defined $send;
    my $r = rd($c);
    die "expected $code, got: $r" unless $r =~ /(?:\A|\n)$code /;
}
my ($saved, $reused) = (undef, 0);  # resuming modes: the last session
sub tls {
    my ($c, $resume) = @_;
    my $ssl = Net::SSLeay::new($ctx);
    Net::SSLeay::set_fd($ssl, fileno($c->{sock}));
    Net::SSLeay::set_session($ssl, $saved) if $resume && $saved;
    Net::SSLeay::connect($ssl) == 1 or die "handshake failed";
    $reused++ if Net::SSLeay::session_reused($ssl);
    $c->{ssl} = $ssl;
    $c->{resume} = $resume;
}
sub session {   # up to the point where MAIL may come
    my ($mode, $port) = @_;
    my $c = conn($port);
    my $resume = $mode =~ s/-r\z//;
    tls($c, $resume) if $mode eq 'smtps';
    expect($c, undef, 220);
    expect($c, "EHLO bench.client\r\n", 250);
    if ($mode eq 'starttls') {
        expect($c, "STARTTLS\r\n", 220);
        tls($c, $resume);
        expect($c, "EHLO bench.client\r\n", 250);
    }
    return $c;
}
sub done {
    my ($c) = @_;
    # close_notify, as a client should (and OpenSSL marks the session of
    # a connection freed without it as not resumable)
    Net::SSLeay::shutdown($c->{ssl}) if $c->{ssl};
    if ($c->{ssl} && $c->{resume}) {    # the ticket came with the replies
        Net::SSLeay::SESSION_free($saved) if $saved;
        $saved = Net::SSLeay::get1_session($c->{ssl});
    }
    Net::SSLeay::free($c->{ssl}) if $c->{ssl};
    close $c->{sock};
}

my $body = "Subject: bench\r\n\r\n" . ("x" x 70 . "\r\n") x 14;
if ($ARGV[0] eq 'idle') {
    my (undef, $mode, $port, $n, $ready) = @ARGV;
    my @held = map { session($mode, $port) } 1 .. $n;
    open my $fh, '>', $ready or die; close $fh;
    1 while <STDIN>;
    done($_) for @held;
    exit 0;
}
my ($mode, $port, $count, $sessions) = @ARGV;
my $t0 = time;
my @kids;
for my $k (1 .. $sessions) {
    my $share = int($count / $sessions) + ($k <= $count % $sessions ? 1 : 0);
    my $pid = fork // die "fork";
    if ($pid == 0) {
        for (1 .. $share) {
            my $c = session($mode, $port);
            expect($c, "MAIL FROM:<a\@bench.example>\r\n", 250);
            expect($c, "RCPT TO:<b\@example.com>\r\n", 250);
            expect($c, "DATA\r\n", 354);
            expect($c, "$body.\r\n", 250);
            expect($c, "QUIT\r\n", 221);
            done($c);
        }
        # resuming: every handshake but the first must have resumed
        exit 3 if $mode =~ /-r\z/ && $reused < $share - 1;
        exit 0;
    }
    push @kids, $pid;
}
my $fail = 0;
for (@kids) { waitpid($_, 0); $fail ||= $? }
die "a client saw handshakes that did not resume\n" if $fail == 3 << 8;
die "a client failed\n" if $fail;
printf "%d %.3f\n", $count, time - $t0;
PERL

port=$(free_port)
smtps=$(free_port)
start_upesi tls "$port" queue_discard "workers = 1" "log_level = warning" \
    "max_sessions = $((IDLE * 2 + 100))" "tls_cert = $tmp/cert.pem" \
    "tls_key = $tmp/key.pem" "smtps_listen = 127.0.0.1:$smtps"
worker=$(worker_pids "$UPESI_PID" | head -n 1)
[[ -n $worker ]] || { echo "bench: no upesi worker found" >&2; exit 1; }

# the worker's CPU time (user + system) in clock ticks
cpu_ticks() { awk '{ print $14 + $15 }' "/proc/$1/stat"; }
rate() { # mode port
    local out t0
    t0=$(cpu_ticks "$worker")
    out=$(perl "$tmp/driver.pl" "$1" "$2" "$MESSAGES" "$SESSIONS") || {
        echo "bench: driver ($1) failed" >&2; exit 1; }
    echo "$1 $(( $(cpu_ticks "$worker") - t0 ))" >>"$tmp/ticks"  # (a subshell)
    awk '{ printf "%.1f\n", $1 / $2 }' <<<"$out"
}

perl "$tmp/driver.pl" starttls "$port" 20 2 >/dev/null    # warm-up
declare -a plain starttls implicit starttls_r implicit_r
for ((i = 0; i < RUNS; i++)); do
    plain+=("$(rate plain "$port")")
    starttls+=("$(rate starttls "$port")")
    starttls_r+=("$(rate starttls-r "$port")")
    implicit+=("$(rate smtps "$smtps")")
    implicit_r+=("$(rate smtps-r "$smtps")")
done
mp=$(printf '%s\n' "${plain[@]}" | median)
ms=$(printf '%s\n' "${starttls[@]}" | median)
mi=$(printf '%s\n' "${implicit[@]}" | median)
msr=$(printf '%s\n' "${starttls_r[@]}" | median)
mir=$(printf '%s\n' "${implicit_r[@]}" | median)
hz=$(getconf CLK_TCK)
cpu_ms() { awk -v m="$1" -v hz="$hz" -v n="$((MESSAGES * RUNS))" '$1 == m { t += $2 } END { printf "%.2f", t * 1000 / hz / n }' "$tmp/ticks"; }

idle_cost() { # mode port -> KiB per session
    local before after ready=$tmp/ready.$1
    before=$(rss_kb "$worker")
    exec {hold}> >(perl "$tmp/driver.pl" idle "$1" "$2" "$IDLE" "$ready")
    local end=$((SECONDS + 120))
    while [[ ! -e $ready ]] && (( SECONDS < end )); do sleep 0.2; done
    [[ -e $ready ]] || { echo "bench: idle clients ($1) did not connect" >&2; exit 1; }
    sleep 0.5
    after=$(rss_kb "$worker")
    exec {hold}>&-
    sleep 1
    awk -v a="$after" -v b="$before" -v n="$IDLE" 'BEGIN { printf "%.1f\n", (a - b) / n }'
}
idle_plain=$(idle_cost plain "$port")
idle_tls=$(idle_cost starttls "$port")

printf '%-34s %12s %8s %14s\n' "mode (new connection per message)" "messages/s" "ratio" "server CPU ms"
printf '%-34s %12s %8s %14s\n' "plain text" "$mp" "1.00" "$(cpu_ms plain)"
printf '%-34s %12s %8s %14s\n' "STARTTLS (TLS 1.3)" "$ms" "$(awk -v a="$ms" -v b="$mp" 'BEGIN { printf "%.2f", a / b }')" "$(cpu_ms starttls)"
printf '%-34s %12s %8s %14s\n' "implicit TLS (smtps_listen)" "$mi" "$(awk -v a="$mi" -v b="$mp" 'BEGIN { printf "%.2f", a / b }')" "$(cpu_ms smtps)"
printf '%-34s %12s %8s %14s\n' "STARTTLS, resumed (TLS 1.3 ticket)" "$msr" "$(awk -v a="$msr" -v b="$mp" 'BEGIN { printf "%.2f", a / b }')" "$(cpu_ms starttls-r)"
printf '%-34s %12s %8s %14s\n' "implicit TLS, resumed" "$mir" "$(awk -v a="$mir" -v b="$mp" 'BEGIN { printf "%.2f", a / b }')" "$(cpu_ms smtps-r)"
# the handshake's share of the server's CPU: TLS mode minus plain text
hs() { awk -v t="$(cpu_ms "$1")" -v p="$(cpu_ms plain)" 'BEGIN { printf "%.2f", t - p }'; }
hs_ratio() { awk -v r="$(hs "$1")" -v f="$(hs "$2")" 'BEGIN { if (f > 0) printf "%.2f", r / f; else print "n/a" }'; }
printf 'server CPU ms per handshake (TLS minus plain): STARTTLS full %s, resumed %s (ratio %s); implicit full %s, resumed %s (ratio %s)\n' \
    "$(hs starttls)" "$(hs starttls-r)" "$(hs_ratio starttls-r starttls)" \
    "$(hs smtps)" "$(hs smtps-r)" "$(hs_ratio smtps-r smtps)"
printf '%-34s %12s\n' "idle session, plain text (KiB)" "$idle_plain"
printf '%-34s %12s\n' "idle session, TLS (KiB)" "$idle_tls"
printf '(KEY=%s RUNS=%s MESSAGES=%s SESSIONS=%s IDLE=%s; runs: plain %s / starttls %s / smtps %s / starttls-r %s / smtps-r %s)\n' \
    "$KEY" "$RUNS" "$MESSAGES" "$SESSIONS" "$IDLE" "${plain[*]}" "${starttls[*]}" "${implicit[*]}" \
    "${starttls_r[*]}" "${implicit_r[*]}"
mkdir -p "$(dirname "$OUT")"
printf '%s tls(%s): plain=%s starttls=%s smtps=%s starttls_resumed=%s smtps_resumed=%s ratio_starttls=%s handshake_cpu_resumed_over_full=%s idle_plain_kib=%s idle_tls_kib=%s\n' \
    "$(date -u +%FT%TZ)" "$KEY" "$mp" "$ms" "$mi" "$msr" "$mir" \
    "$(awk -v a="$ms" -v b="$mp" 'BEGIN { printf "%.2f", a / b }')" \
    "$(hs_ratio starttls-r starttls)" \
    "$idle_plain" "$idle_tls" >>"$OUT"
