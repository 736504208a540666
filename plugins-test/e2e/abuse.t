#!/usr/bin/perl
# abuse.t - hostile clients, end to end (issue 11):
#
#  1. slow sessions: 2,000 clients (UPESI_SLOW_SESSIONS to change; 5,000 is
#     the issue's figure, a manual run in docs/reliability.md) that send a
#     byte every 10 s.  Meanwhile a new client still gets its greeting
#     within 1 s, and with timeout_multiplier = 0.02 (5 min -> 6 s) every
#     slow session is dropped at its timeout with 421 4.4.2.
#  2. early talkers: with greeting_delay, clients that talk before the
#     greeting are detected, counted (SMTP.Sessions.EarlyTalker) and the
#     conn note early_talker tells plugins, which decide what to refuse.
#  3. a whole spam pipelined into one packet after a refused MAIL: the
#     commands are answered in order up to DATA; the content sent after
#     DATA before its reply makes the client an improper pipeliner (RFC
#     2920 3.1): 554 5.5.0 and closed, not one body line run as a command
#     (it used to be answered line by line until error_limit's 421).
#  4. SMTP smuggling probes that smuggling.t does not make: CRLF "." CR CR
#     LF, CRLF "." NUL CRLF, CRLF "." LF CRLF, CRLF "." SP CRLF, a stuffed
#     "..", fake ends sent a byte at a time, and the real end split over
#     three packets (which must end the data, and only at its last byte).
#  5. 2,000 random-byte sessions from the seeded generator
#     plugins-test/tools/random-sessions: no crash, no malformed reply, no
#     hung session, and the server serves normally afterwards (the 100,000
#     session run is manual: docs/reliability.md).
use strict;
use warnings;
use FindBin;
use lib "$FindBin::Bin/../lib";
use IO::Poll qw(POLLIN POLLOUT POLLERR POLLHUP);
use IO::Socket::IP;
use Errno qw(EINTR EAGAIN EWOULDBLOCK EINPROGRESS);
use Socket qw(PF_INET SOCK_STREAM IPPROTO_TCP TCP_NODELAY pack_sockaddr_in inet_aton);
use Test::More;
use Time::HiRes qw(time sleep);
use Upesi::Test;

my $N_SLOW = $ENV{UPESI_SLOW_SESSIONS} // ($SLOW > 1 ? 1000 : 2000);

# Room for the slow sessions: this process and the server it starts each
# hold one descriptor per session.  Raise the soft limit through the shell
# (core Perl has no setrlimit) by running this file again under it.
{
    my $want = $N_SLOW + 512;
    chomp(my $soft = `sh -c 'ulimit -n'`);
    if ($soft ne 'unlimited' && $soft < $want && !$ENV{UPESI_ABUSE_REEXEC}) {
        $ENV{UPESI_ABUSE_REEXEC} = 1;
        exec 'sh', '-c', 'ulimit -n "$0" 2>/dev/null || ulimit -n "$(ulimit -Hn)"; exec "$@"',
            $want, $^X, (map { "-I$_" } @INC), $0, @ARGV;
    }
    chomp($soft = `sh -c 'ulimit -n'`);
    if ($soft ne 'unlimited' && $soft < $want) {
        $N_SLOW = $soft - 512 > 100 ? $soft - 512 : 100;
        diag "open file limit $soft: $N_SLOW slow sessions only";
    }
}

need_built();
deadline(200);

# =============================================================================
# 1. slow sessions
# =============================================================================
{
    my $mult = 0.02;                          # the 5-minute timeout: 6 s
    my $timeout = 300 * $mult;
    my $srv = Upesi::Test->new(smtp => {
        max_sessions => $N_SLOW + 200, timeout_multiplier => $mult,
        local_domains => 'example.com' }, plugins => ['queue_spool']);
    $srv->start;

    # connect them all without waiting: non-blocking connects, then poll
    my $addr = pack_sockaddr_in($srv->port, inet_aton('127.0.0.1'));
    my (@slow, %by_fd);
    my $t_open = time;
    for my $i (1 .. $N_SLOW) {
        socket(my $s, PF_INET, SOCK_STREAM, 0) or die "socket: $!";
        $s->blocking(0);
        if (!connect($s, $addr) && $! != EINPROGRESS) {
            diag "connect $i: $!";
            last;
        }
        my $c = { s => $s, buf => '', state => 'connecting', i => $i };
        push @slow, $c;
        $by_fd{ fileno $s } = $c;
    }
    # the dance: greeting -> one byte; 421 -> closed.  A byte every 10 s.
    my $poll = IO::Poll->new;
    my $step = sub {
        my ($secs) = @_;
        $poll->remove($_) for $poll->handles;
        for my $c (@slow) {
            next if $c->{state} eq 'closed';
            $poll->mask($c->{s} => $c->{state} eq 'connecting' ? POLLOUT : POLLIN);
        }
        return unless $poll->handles;
        $poll->poll($secs);
        for my $h ($poll->handles) {
            my $ev = $poll->events($h) or next;
            my $c = $by_fd{ fileno $h };
            if ($c->{state} eq 'connecting') {
                $c->{state} = 'wait-greeting';
                next;
            }
            my $n = sysread($h, my $b, 4096);
            next if !defined $n && ($! == EINTR || $! == EAGAIN || $! == EWOULDBLOCK);
            if (!$n) {
                $c->{state} = 'closed';
                $c->{closed_at} = time;
                close $h;
                next;
            }
            $c->{buf} .= $b;
            if ($c->{state} eq 'wait-greeting' && $c->{buf} =~ /\A220 .*\n/) {
                $c->{state} = 'slow';
                $c->{greeted} = 1;
                $c->{buf} = '';
                syswrite($h, 'E');          # the first byte of "EHLO"
                $c->{last_byte} = time;
            }
        }
    };
    my $deadline = time + 30 * $SLOW;
    while (time < $deadline) {
        $step->(0.2);
        last unless grep { $_->{state} eq 'connecting' || $_->{state} eq 'wait-greeting' } @slow;
    }
    my $greeted = grep { $_->{greeted} } @slow;
    my $t_greeted = time - $t_open;
    is $greeted, $N_SLOW, "slow sessions: all $N_SLOW connected and greeted (in " .
        sprintf('%.1f s)', $t_greeted);

    # while they are all open: new clients are greeted at once
    my $st = $srv->stat('SMTP.Sessions.Current');
    cmp_ok $st->{'SMTP.Sessions.Current'} // 0, '>=', $N_SLOW,
        "SMTP.Sessions.Current >= $N_SLOW while they are open";
    my @lat;
    for (1 .. 8) {
        my $t0 = time;
        my $c = $srv->client(timeout => 5);
        push @lat, $c->greeting && $c->greeting->{code} == 220 ? time - $t0 : 99;
        $c->close;
        $step->(0.05);          # the slow ones get served meanwhile
    }
    my ($worst) = sort { $b <=> $a } @lat;
    cmp_ok $worst, '<', 1.0 * $SLOW, sprintf('slow sessions: 8 new clients each greeted within 1 s (worst %.3f s)', $worst);

    # a byte every 10 s: the server must drop them at their 6 s timeout
    my $next_byte = time + 10;
    my $end = time + ($timeout + 8) * $SLOW;
    while (time < $end) {
        $step->(0.25);
        if (time >= $next_byte) {
            for my $c (grep { $_->{state} eq 'slow' } @slow) {
                syswrite($c->{s}, 'H');
                $c->{last_byte} = time;
            }
            $next_byte += 10;
        }
        last unless grep { $_->{state} ne 'closed' } @slow;
    }
    my @closed = grep { $_->{state} eq 'closed' } @slow;
    is scalar(@closed), $N_SLOW, "slow sessions: the server closed all $N_SLOW";
    my $n421 = grep { $_->{buf} =~ /^421 4\.4\.2 /m } @closed;
    is $n421, scalar(@closed), 'slow sessions: each with 421 4.4.2 (timeout exceeded)';
    my @idle = map { $_->{closed_at} - $_->{last_byte} } @closed;
    my ($min) = sort { $a <=> $b } @idle;
    my ($max) = sort { $b <=> $a } @idle;
    cmp_ok $min // 0, '>=', $timeout - 0.5, sprintf('slow sessions: none dropped before its timeout (earliest %.1f s after its last byte)', $min // 0);
    cmp_ok $max // 99, '<', $timeout + 4 * $SLOW, sprintf('slow sessions: all dropped at their timeout (latest %.1f s after its last byte)', $max // 99);
    $st = $srv->stat('SMTP.Sessions.');
    cmp_ok $st->{'SMTP.Sessions.Timeout'} // 0, '>=', $N_SLOW, 'SMTP.Sessions.Timeout counts them';
    cmp_ok $st->{'SMTP.Sessions.Peak'} // 0, '>=', $N_SLOW, 'SMTP.Sessions.Peak saw them all';
    my $c = $srv->client;
    is $c->cmd('EHLO after.test')->{code}, 250, 'slow sessions: the server serves normally afterwards';
    $c->close;
    $srv->stop_ok('upesi (slow sessions)');
}

# =============================================================================
# 2. early talkers
# =============================================================================
{
    my $srv = Upesi::Test->new(
        smtp    => { greeting_delay => 1, local_domains => 'example.com' },
        plugins => ['tester', 'queue_spool'],
        ini     => { 'tester.ini' => "[mail]\nverdict = OK\nshow_note = early_talker\n" });
    $srv->start;
    my @hasty = map { $srv->client(greeting => 0) } 1 .. 5;
    $_->send_raw("EHLO hasty.test\r\n") for @hasty;
    my @calm = map { $srv->client(greeting => 0) } 1 .. 3;
    my $t0 = time;
    my @g = map { $_->read_reply(10) } @hasty, @calm;
    my $took = time - $t0;
    is scalar(grep { $_ && $_->{code} == 220 } @g), 8, 'early talkers: everyone still gets a greeting';
    cmp_ok $took, '>=', 0.8, 'early talkers: ... after greeting_delay';
    my @ehlo = map { $_->read_reply(5) } @hasty;
    is scalar(grep { $_ && $_->{code} == 250 } @ehlo), 5, 'early talkers: the early EHLO is answered after the greeting';
    $_->cmd('EHLO calm.test') for @calm;
    my @mail = map { $_->cmd('MAIL FROM:<a@client.test>') } @hasty, @calm;
    is scalar(grep { $_ && $_->{text} =~ /note early_talker=1/ } @mail[0 .. 4]), 5,
        'early talkers: plugins see the conn note early_talker = 1';
    is scalar(grep { $_ && $_->{text} =~ /note early_talker=\(none\)/ } @mail[5 .. 7]), 3,
        'early talkers: not set for clients that waited';
    my $st = $srv->stat('SMTP.Sessions.EarlyTalker');
    is $st->{'SMTP.Sessions.EarlyTalker'}, 5, 'SMTP.Sessions.EarlyTalker = 5';
    is scalar($srv->log_lines(qr/early talker: sent data before the greeting/)), 5,
        'early talkers: one log line each';
    $_->close for @hasty, @calm;
    $srv->stop_ok('upesi (early talkers)');
}

# =============================================================================
# 3. a spam pipelined into one packet after a refused MAIL
# =============================================================================
{
    my $limit = 10;
    my $srv = Upesi::Test->new(
        smtp    => { error_limit => $limit, local_domains => 'example.com', pipelining => 1 },
        plugins => ['tester', 'queue_spool'],
        ini     => { 'tester.ini' => "[mail]\nmatch = spammer\nverdict = DENY\ncode = 554\n"
                                   . "enhanced = 5.7.1\ntext = no thanks\n" });
    $srv->start;
    my $c = $srv->client;
    is $c->cmd('EHLO spam.test')->{code}, 250, 'spam: EHLO';
    my @body = ('From: "Best Deals" <spammer@bad.test>', 'To: <bob@example.com>',
                'Subject: You have won', 'MIME-Version: 1.0', '',
                map({ "Buy now, line $_ of the offer" } 1 .. 30), '.', 'QUIT');
    my @lines = ('MAIL FROM:<spammer@bad.test>', 'RCPT TO:<bob@example.com>', 'DATA', @body);
    $c->send_raw(join '', map { "$_\r\n" } @lines);
    my @r;
    while (my $r = $c->read_reply(5)) { push @r, $r }
    ok $c->closed(5), 'spam: the connection is closed';
    my @codes = map { $_->{code} } @r;
    is_deeply \@codes, [554, 503, 554], 'spam: MAIL refused, RCPT out of sequence, DATA refused, nothing more'
        or diag $c->{transcript};
    is $r[-1]{enhanced}, '5.5.0', 'spam: DATA: 554 5.5.0 (improper pipelining)';
    ok !grep({ $_ == 354 || $_ == 250 || $_ == 500 } @codes),
        'spam: nothing in it was accepted, no body line run as a command';
    my $st = $srv->stat('SMTP.');
    is $st->{'SMTP.Command.Invalid'}, 1, 'SMTP.Command.Invalid = 1';
    is $st->{'SMTP.Sessions.ImproperPipelining'}, 1, 'SMTP.Sessions.ImproperPipelining = 1';
    my @queued = $srv->spool;
    is scalar(@queued), 0, 'spam: nothing queued';
    $srv->stop_ok('upesi (pipelined spam)');
}

# =============================================================================
# 4. smuggling probes beyond smuggling.t
# =============================================================================
{
    my $srv = Upesi::Test->new(smtp => { pipelining => 1, local_domains => 'example.com' },
                               plugins => ['queue_spool']);
    $srv->start;
    my $smuggled = "MAIL FROM:<evil\@attacker.test>\r\nRCPT TO:<victim\@example.com>\r\n"
                 . "DATA\r\nSubject: smuggled\r\n\r\nsmuggled body";
    my $count = 0;
    my $open = sub {
        my $c = $srv->client;
        $c->cmd('EHLO client.test');
        $c->send_raw("MAIL FROM:<alice\@example.org>\r\nRCPT TO:<bob\@example.com>\r\nDATA\r\n");
        my @r = $c->read_replies(3);
        return ($c, join(',', map { $_->{code} } @r));
    };
    # name => [fake end, pieces: 0 = one write, 1 = a byte at a time]
    my @probes = (
        ['CRLF.CR CRLF',   "\r\n.\r\r\n", 0],
        ['CRLF.NUL CRLF',  "\r\n.\0\r\n", 0, 554],   # NUL: refused whole
        ['CRLF.LF CRLF',   "\r\n.\n\r\n", 0],
        ['CRLF.SP CRLF',   "\r\n. \r\n",  0],
        ['CRLF.. CRLF',    "\r\n..\r\n",  0],
        ['LF.LF, a byte at a time',   "\n.\n",   1],
        ['CR.CR, a byte at a time',   "\r.\r",   1],
        ['LF.CRLF, a byte at a time', "\n.\r\n", 1],
    );
    for my $p (@probes) {
        my ($name, $fake, $bytewise, $want) = @$p;
        $want //= 250;
        my ($c, $codes) = $open->();
        is $codes, '250,250,354', "$name: MAIL, RCPT, DATA";
        my $data = "Subject: probe $name\r\n\r\nfirst line" . $fake . $smuggled;
        if ($bytewise) {
            for my $ch (split //, $data) { $c->send_raw($ch); sleep 0.002 }
        } else {
            $c->send_raw($data);
        }
        my $early = $c->read_reply(0.5 * $SLOW);
        ok !$early, "$name: no reply before the real end of data"
            or diag "got: $early->{raw}";
        $c->send_raw("\r\n.\r\nQUIT\r\n");
        my @r = $c->read_replies(6, 5);
        is_deeply [map { $_->{code} } @r], [$want, 221],
            $want == 250 ? "$name: one message, then QUIT"
                         : "$name: the whole message refused ($want), then QUIT";
        $count++ if $want == 250;
        my @spool = $srv->wait_spool($count, 5);
        is scalar(@spool), $count, $want == 250 ? "$name: exactly one message queued"
                                                : "$name: nothing queued";
        ok !grep({ ($_->{env}{Sender} // '') eq 'evil@attacker.test' } @spool),
            "$name: no message from the smuggled sender";
    }
    # the real end, split in three packets: ends the data at its last byte
    {
        my ($c, $codes) = $open->();
        is $codes, '250,250,354', 'split CRLF.CRLF: MAIL, RCPT, DATA';
        $c->send_raw("Subject: split end\r\n\r\nbody\r");
        sleep 0.1;
        $c->send_raw("\n.");
        sleep 0.1;
        $c->send_raw("\r");
        my $early = $c->read_reply(0.5 * $SLOW);
        ok !$early, 'split CRLF.CRLF: no reply before the last byte';
        $c->send_raw("\n");
        my $r = $c->read_reply(5);
        is $r ? $r->{code} : 'none', 250, 'split CRLF.CRLF: the last byte ends the data: 250';
        $count++;
        my @spool = $srv->wait_spool($count, 5);
        my ($m) = grep { ($_->{message} // '') =~ /Subject: split end/ } @spool;
        my (undef, $body) = strip_received($m ? $m->{message} : '');
        is $body, "Subject: split end\r\n\r\nbody\r\n", 'split CRLF.CRLF: stored up to the marker';
        $c->cmd('QUIT');
    }
    $srv->stop_ok('upesi (smuggling probes)');
}

# =============================================================================
# 5. random-byte sessions from a seeded generator
# =============================================================================
{
    my $n = $ENV{UPESI_RANDOM_SESSIONS} // ($SLOW > 1 ? 800 : 2000);
    my $seed = $ENV{UPESI_RANDOM_SEED} // 11;
    my $srv = Upesi::Test->new(
        smtp    => { local_domains => 'example.com', max_sessions => 500,
                     workers => 2, timeout_multiplier => 0.05 },
        # the default plugin list, with its default settings
        plugins => [grep { length } map { s/#.*//r =~ s/^\s+|\s+$//gr }
                    split /\n/, slurp("$ROOT/conf/plugins") // '']);
    $srv->start;
    my ($rc, $out) = Upesi::Test::run_cmd(150, $^X, "$ROOT/plugins-test/tools/random-sessions",
        '--port', $srv->port, '--sessions', $n, '--seed', $seed,
        '--concurrency', 8, '--wait', 10 * $SLOW);
    is $rc, 0, "random sessions: $n sessions (seed $seed) all passed the generator's checks"
        or diag $out;
    note $out;
    my ($done) = $out =~ /done=(\d+)/;
    is $done, $n, "random sessions: all $n ran";
    my @crit = $srv->log_lines(qr/killed by signal|exited with status/);
    is scalar(@crit), 0, 'random sessions: no worker died' or diag join("\n", @crit);
    my $st = $srv->stat('');
    is $st->{'Upesi.Workers.Restarts'} // 0, 0, 'Upesi.Workers.Restarts = 0';
    is $st->{'SMTP.Sessions.Accepted'}, $n, "SMTP.Sessions.Accepted = $n";
    my $end = time + 10 * $SLOW;
    while (($st->{'SMTP.Sessions.Current'} // 0) != 0 && time < $end) {
        sleep 0.2;
        $st = $srv->stat('SMTP.Sessions.Current');
    }
    is $st->{'SMTP.Sessions.Current'}, 0, 'random sessions: every session was closed';
    my $r = $srv->swaks_send('--to', 'bob@example.com', '--from', 'after@client.test');
    is $r->{exit}, 0, 'random sessions: a normal message is accepted afterwards' or diag $r->{out};
    $srv->stop_ok('upesi (random sessions)');
}

done_testing;
