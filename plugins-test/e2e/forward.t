#!/usr/bin/perl
# forward.t - queue_forward end to end, against real downstream servers:
# a second upesi (queue_spool, and the tester plugin for refusals: its
# spool shows exactly what arrived) and Postfix's smtp-sink (SMTP and
# LMTP, TCP and a unix socket).
#
#  direct mode: accepted (data byte-exact, dot-stuffing), refused 5xx and
#    4xx (the client sees the matching code; 4xx as 451 4.4.1), downstream
#    down (451 4.4.1), some recipients refused (250 + a DSN);
#  spool mode: down then up (`queue` lists it, `flush` retries it, it
#    arrives exactly once), null sender refused (kept in dead/), kill -9 of
#    the whole server during background delivery, then a restart:
#    delivered at least once, never lost.
use strict;
use warnings;
use FindBin;
use lib "$FindBin::Bin/../lib";
use Test::More;
use Time::HiRes qw(sleep time);
use Upesi::Test;
use Upesi::Forward qw(send_msg wait_for nspool ctl);
use File::Temp ();

need_built('plugins/queue_forward.so', 'plugins/queue_spool.so',
           'plugins-test/plugins/tester.so');
deadline(240);

my $SINK = '/usr/sbin/smtp-sink';

# -- the downstream: upesi + tester + queue_spool --------------------------
# tester refuses: RCPT containing "reject5" with 550 5.1.1, MAIL FROM
# containing "temp4" with 450 4.2.0, and delays data_post of subjects...
# no: a data_post delay for every message when slow => 1.
sub downstream {
    my (%o) = @_;
    my $tester = "[rcpt]\nmatch = reject5\nverdict = DENY\ncode = 550\n"
               . "enhanced = 5.1.1\ntext = no such user here\n"
               . "[mail]\nmatch = temp4\nverdict = DENYSOFT\ncode = 450\n"
               . "enhanced = 4.2.0\ntext = try again later\n";
    $tester .= "[data_post]\nverdict = CONT\ndelay_ms = $o{delay_ms}\n"
        if $o{delay_ms};
    return Upesi::Test->new(
        smtp    => { local_domains => 'example.com,example.org',
                     plugin_timeout => 30, workers => 1 },
        plugins => ['tester', 'queue_spool'],
        ini     => { 'tester.ini' => $tester,
                     'queue_spool.ini' => "fsync = 1\n" });
}

sub front {
    my ($ini, %smtp) = @_;
    return Upesi::Forward::front($ini, local_domains =>
                                 'example.com,example.org,lmtp.example',
                                 workers => 2, %smtp);
}

sub dir_files {
    my ($d) = @_;
    opendir my $dh, $d or return ();
    return grep { !/^\./ && -f "$d/$_" } readdir $dh;
}

sub queue_files {               # queue/ + active/*/ of a front
    my ($srv) = @_;
    my $s = $srv->spooldir;
    return (dir_files("$s/queue"), map { dir_files($_) } glob("$s/active/*"));
}

my $data = "From: Alice <alice\@example.org>\r\n"
         . "To: bob\@example.com\r\n"
         . "Subject: forward test\r\n"
         . "\r\n"
         . "line one\r\n"
         . ".a line that starts with a dot\r\n"
         . "..two dots\r\n"
         . ".\r\n"                                  # a lone dot line
         . "8bit: \xc3\xa9\xe2\x82\xac\r\n"
         . ('0123456789abcdef' x 8192) . "\r\n"     # past a 64 KiB chunk
         . "last line\r\n";

# ==========================================================================
# direct mode, a second upesi downstream

my $down = downstream();
$down->start;
my $fr = front("downstream = 127.0.0.1:" . $down->port . "\nmode = direct\n"
               . "retry_min = 1s\nscan_interval = 200ms\n");
$fr->start;

my $r = send_msg($fr, from => 'alice@example.org',
                 to => ['bob@example.com', 'carol@example.com'],
                 data => $data);
is($r && $r->{code}, 250, 'direct: 250 after the downstream took it')
    or diag($r ? $r->{raw} : 'no reply');
like($r ? $r->{text} : '', qr/said: 250/, 'direct: the 250 quotes the downstream');
my @got = $down->wait_spool(1, 10);
is(scalar @got, 1, 'the downstream has exactly one message');
is_deeply($got[0]{recipients}, ['bob@example.com', 'carol@example.com'],
          'both recipients, in order');
is($got[0]{env}{Sender}, 'alice@example.org', 'the sender');
ok(defined $got[0]{message} && length($got[0]{message}) >= length($data)
   && substr($got[0]{message}, -length $data) eq $data,
   'the data arrived byte-exact (dot-stuffed on the wire, unstuffed there)');
like($got[0]{message} // '', qr/\AReceived: from [^\r\n]*\r?\n(?:\s[^\r\n]*\r?\n)*Received: /,
     "two Received headers: the downstream's and ours");
unlink $_->{file} for @got;

# refused, 5xx: all recipients
$r = send_msg($fr, from => 'alice@example.org', to => ['reject5@example.com'],
              data => "Subject: x\r\n\r\nx\r\n");
is($r && $r->{code}, 550, 'direct: a 5xx RCPT refusal comes back as 550');
like($r ? $r->{text} : '', qr/^5\.1\.1 .*no such user/, '... with 5.1.1 and the text');

# refused, 4xx (MAIL)
$r = send_msg($fr, from => 'temp4@example.org', to => ['bob@example.com'],
              data => "Subject: x\r\n\r\nx\r\n");
is($r && $r->{code}, 451, 'direct: a 4xx refusal is 451 to the client');
like($r ? $r->{text} : '', qr/^4\.4\.1 .*450 4\.2\.0 try again later/,
     '... 4.4.1, quoting the downstream');
is(nspool($down), 0, 'nothing arrived for the refusals');

# some refused: 250, the good one delivered, a DSN to the sender
$r = send_msg($fr, from => 'alice@example.org',
              to => ['bob@example.com', 'reject5@example.com'],
              data => "Subject: partial\r\n\r\nx\r\n");
is($r && $r->{code}, 250, 'direct: one of two refused (5xx): 250');
ok(wait_for(10, sub { nspool($down) >= 2 }),
   'the message and the DSN arrived downstream');
my ($msg) = grep { ($_->{env}{Sender} // '') ne '<>' } $down->spool;
my ($dsn) = grep { ($_->{env}{Sender} // '') eq '<>' } $down->spool;
is_deeply($msg ? $msg->{recipients} : [], ['bob@example.com'],
          'the message went to the accepted recipient only');
is_deeply($dsn ? $dsn->{recipients} : [], ['alice@example.org'],
          'the DSN goes to the sender, from <>');
like($dsn ? $dsn->{message} : '', qr{multipart/report; report-type=delivery-status}s,
     'the DSN is a multipart/report');
like($dsn ? $dsn->{message} : '', qr{Final-Recipient: rfc822; reject5\@example\.com\r\nAction: failed\r\nStatus: 5\.1\.1}s,
     'per-recipient block: Final-Recipient, Action failed, Status 5.1.1');
like($dsn ? $dsn->{message} : '', qr{text/rfc822-headers.*Subject: partial}s,
     'the original headers are attached');
unlink $_->{file} for $down->spool;

# downstream down: 451 4.4.1
$down->stop;
$r = send_msg($fr, from => 'alice@example.org', to => ['bob@example.com'],
              data => "Subject: x\r\n\r\nx\r\n");
is($r && $r->{code}, 451, 'direct: downstream down: 451');
like($r ? $r->{text} : '', qr/^4\.4\.1 downstream 127\.0\.0\.1:\d+: connect/,
     '... 4.4.1 naming the downstream');
$fr->stop_ok('front (direct)');
$down->start;               # same port, for later

# ==========================================================================
# direct mode, Postfix's smtp-sink: SMTP on TCP, LMTP on a unix socket

SKIP: {
    skip "$SINK not installed", 6 unless -x $SINK;
    # smtp-sink drops to nobody as root: a directory it can write in
    my $tmp = File::Temp::tempdir('upesi-sink-XXXXXX', TMPDIR => 1,
                                  CLEANUP => !$ENV{UPESI_KEEP});
    chmod 0755, $tmp;
    mkdir "$tmp/sink"; chmod 0777, "$tmp/sink";
    my $port = free_port();
    my @user = $> == 0 ? ('-u', 'nobody') : ();
    my $sink = fork // die;
    if (!$sink) {
        open STDOUT, '>', '/dev/null'; open STDERR, '>', '/dev/null';
        { exec $SINK, @user, '-d', "$tmp/sink/%M.", "127.0.0.1:$port", 64 }
        POSIX::_exit(127);
    }
    my $lsock = "$tmp/sink/lmtp.sock";
    my $lsink = fork // die;
    if (!$lsink) {
        open STDOUT, '>', '/dev/null'; open STDERR, '>', '/dev/null';
        { exec $SINK, @user, '-L', "unix:$lsock", 64 }
        POSIX::_exit(127);
    }
    wait_for(5, sub { -S $lsock && Upesi::Test::_listening('127.0.0.1', $port) });
    my $f2 = front("downstream = 127.0.0.1:$port\nmode = direct\n"
                   . "route = lmtp.example lmtp:$lsock\n");
    $f2->start;
    my $ok = 0;
    for my $i (1 .. 5) {
        my $rr = send_msg($f2, from => 'alice@example.org',
                          to => ['bob@example.com'], data => $data);
        $ok++ if $rr && $rr->{code} == 250;
    }
    is($ok, 5, 'smtp-sink: 5 messages, 5 times 250');
    ok(wait_for(5, sub { scalar(grep { !/lmtp/ } dir_files("$tmp/sink")) >= 5 }),
       'smtp-sink captured them');
    my ($one) = grep { !/lmtp/ } dir_files("$tmp/sink");
    my $cap = slurp("$tmp/sink/$one") // '';
    like($cap, qr/X-Rcpt-Args: <bob\@example\.com>/, 'smtp-sink saw the recipient');
    my $conns = ($f2->stat('SMTP.Forward') // {})->{'SMTP.Forward.Connections'} // 99;
    ok($conns < 5, "connections are pooled ($conns for 5 messages)");
    my $rr = send_msg($f2, from => 'alice@example.org',
                      to => ['u1@lmtp.example', 'u2@lmtp.example'],
                      data => "Subject: lmtp\r\n\r\nx\r\n");
    is($rr && $rr->{code}, 250, 'LMTP over a unix socket (route): 250');
    like($rr ? $rr->{text} : '', qr/lmtp:\Q$lsock\E said: 250/, '... from the LMTP route');
    $f2->stop;
    kill 'TERM', $sink, $lsink;
    waitpid($_, 0) for $sink, $lsink;
}

# ==========================================================================
# spool mode: down, then up

my $down2 = downstream();           # not started yet: its port is free
my $fs = front("downstream = 127.0.0.1:" . $down2->port . "\nmode = spool\n"
               . "retry_min = 60s\nretry_max = 60s\nscan_interval = 200ms\n"
               . "null_sender_dsn = 0\n");
$fs->start;
$r = send_msg($fs, from => 'alice@example.org', to => ['bob@example.com'],
              data => "Subject: stored\r\n\r\nkeep me\r\n");
is($r && $r->{code}, 250, 'spool: 250 with the downstream down');
my ($qid) = ($r && $r->{text} =~ /queued as (\S+)/) ? ($1) : ('none');
# attempts: at least one (with two workers, the accepting worker and
# another's scan may each try the new message once: claims are exclusive,
# so never at the same time)
ok(wait_for(10, sub { ctl($fs, 'queue') =~ /^\Q$qid\E .*attempts=[1-9]/m }),
   'spool: the first attempt failed and `queue` says so');
my $q = ctl($fs, 'queue');
like($q, qr/^\Q$qid\E\s+age=\d+s\s+size=\d+\s+state=deferred\s+rcpts=1\s+from=<alice\@example\.org>\s+attempts=[1-9]\d*\s+next=\d+s\s+last_error=.*connect/m,
     '`queue`: id, age, size, state, recipients, sender, attempts, next, last error');
like($q, qr/^-- 1 message: 1 queued, 0 active, 0 held, 0 dead$/m, '`queue`: a total line');
$down2->start;
sleep 1;
is(nspool($down2), 0, 'not retried before its time (backoff)');
like(ctl($fs, 'flush'), qr/flush: 1 message/, '`flush` answers');
ok(wait_for(10, sub { nspool($down2) >= 1 && !queue_files($fs) }),
   'after flush: delivered, and the queue is empty');
sleep 0.5;
my @arr = $down2->spool;
is(scalar @arr, 1, 'it arrived exactly once');
like($arr[0] ? $arr[0]{message} : '', qr/keep me\r\n\z/, 'whole');
unlink $_->{file} for @arr;

# null sender, refused: kept in dead/ (null_sender_dsn = 0)
$r = send_msg($fs, from => '', to => ['reject5@example.com'],
              data => "Subject: bounce of a bounce\r\n\r\nx\r\n");
is($r && $r->{code}, 250, 'spool: a message from <> accepted');
ok(wait_for(10, sub { dir_files($fs->spooldir . '/dead') >= 1 }),
   'refused downstream: kept in dead/, no DSN');
ok(wait_for(5, sub { !queue_files($fs) }), 'and out of the queue');
is(nspool($down2), 0, 'nothing sent for it');
like(ctl($fs, 'queue'), qr/state=dead/, '`queue` lists dead messages');
$fs->stop_ok('front (spool)');
$down2->stop;

# ==========================================================================
# spool mode: kill -9 of the whole server during background delivery

my $slow = downstream(delay_ms => 4000);
$slow->start;
my $fk = front("downstream = 127.0.0.1:" . $slow->port . "\nmode = spool\n"
               . "retry_min = 1s\nscan_interval = 200ms\n");
$fk->start;
my $n = 5;
my $ok250 = 0;
for my $i (1 .. $n) {
    my $rr = send_msg($fk, from => 'alice@example.org', to => ["k$i\@example.com"],
                      data => "Subject: kill $i\r\n\r\nbody $i\r\n");
    $ok250++ if $rr && $rr->{code} == 250;
}
is($ok250, $n, "spool: $n messages accepted");
ok(wait_for(5, sub { my @a = map { dir_files($_) } glob($fk->spooldir . '/active/*'); @a > 0 }),
   'deliveries under way (messages claimed in active/<pid>/)');
sleep 0.5;
my $sup = $fk->pid;
sub ppid_of {
    open(my $fh, '<', "/proc/$_[0]/stat") or return -1;
    my $st = <$fh> // '';
    return $st =~ /\)\s+\S+\s+(\d+)/ ? $1 : -1;
}
my @kids = grep { ppid_of($_) == $sup }
           map { m{/proc/(\d+)$} ? $1 : () } glob('/proc/[0-9]*');
kill 'KILL', $sup, @kids;
wait_for(5, sub { !$fk->running });
# SIGKILL is not instant: the workers hold the listening sockets until
# they are really gone (a zombie no longer does)
sub gone { my $st = -e "/proc/$_[0]/stat" ? slurp("/proc/$_[0]/stat") : '';
           return $st eq '' || $st =~ /\)\s+[ZX]/ }
wait_for(10, sub { !grep { !gone($_) } @kids });
ok(!$fk->running, "front killed with SIGKILL (supervisor and @{[scalar @kids]} workers)");
my @left = queue_files($fk);
ok(@left > 0, scalar(@left) . ' messages still in queue/ or active/ after the kill');
$fk->start;
# wait for the deliveries themselves: a look at queue/ then active/ can miss
# a file that the restarted runner is moving from one to the other
my %seen;
my $all_seen = sub {
    %seen = ();
    $seen{ ($_->{recipients}[0] // '') }++ for $slow->spool;
    return $n == grep { $seen{"k$_\@example.com"} } 1 .. $n;
};
wait_for(40, $all_seen);
ok(wait_for(10, sub { !queue_files($fk) && !queue_files($fk) }),
   'after the restart the queue drains');
is(scalar(grep { $seen{"k$_\@example.com"} } 1 .. $n), $n,
   "all $n messages delivered at least once")
    or diag(join(', ', map { "$_=$seen{$_}" } sort keys %seen) . "\n"
            . ctl($fk, 'queue') . $fk->log_tail(40));
my $dups = grep { $_ > 1 } values %seen;
note("duplicates after kill -9: $dups");
$fk->stop_ok('front (after kill -9)');
$slow->stop_ok('slow downstream');
$down->stop_ok('downstream');
done_testing();
