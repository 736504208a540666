#!/usr/bin/perl
# dsn.t - DSN (RFC 3461) end to end:
#  the host: RET, ENVID, NOTIFY, ORCPT checked (501 5.5.4 with the reason),
#    kept in the spool envelope (Upesi-Spool 2, Mail-Params, Rcpt-Params);
#  queue_forward: the parameters passed to a downstream that offers DSN (a
#    second upesi: its spool shows them; Postfix's smtp-sink: its dump);
#    with smtp-sink -N (no DSN) a NOTIFY=SUCCESS gets a "relayed" report
#    from upesi, and an SMTPUTF8 message is refused 550 5.6.7 by a
#    downstream without SMTPUTF8; a recipient refused downstream gets a
#    failure report (RFC 3464 multipart/report: Original-Envelope-Id,
#    Original-Recipient, Action failed, the whole message with RET=FULL),
#    NOTIFY=NEVER gets none; a deferred NOTIFY=DELAY recipient gets one
#    delay report, not one per retry.
use strict;
use warnings;
use FindBin;
use lib "$FindBin::Bin/../lib";
use Test::More;
use Time::HiRes qw(sleep);
use File::Temp ();
use POSIX ();
use Upesi::Test;
use Upesi::Forward qw(send_msg wait_for nspool ctl);

plan skip_all => "$UPESI not built" unless -f $UPESI && -x _;
plan skip_all => 'plugins/queue_forward.so not built'
    unless -f "$ROOT/plugins/queue_forward.so";
deadline(240);

my $SINK = '/usr/sbin/smtp-sink';

sub code_of { my $r = shift; $r ? "$r->{code} " . ($r->{enhanced} // '') : 'none' }

# envelope lines in order: [key, value]
sub env_lines {
    my ($text) = @_;
    return map { /^([A-Za-z-]+): ?(.*)$/ ? [$1, $2] : () } split /\n/, $text;
}

sub dir_files {
    my ($d) = @_;
    opendir my $dh, $d or return ();
    return map { "$d/$_" } grep { !/^\./ && -f "$d/$_" } readdir $dh;
}

# =========================================================================
# the host

my $h = Upesi::Test->new(smtp => { local_domains => 'example.com' });
$h->start;
my $c = $h->client;
$c->cmd('EHLO client.test');
my $long = 'x' x 101;
for my $t (['RET=FOO', 'RET'], ['ENVID=a+2', 'ENVID'],
           ["ENVID=$long", 'ENVID'], ['ENVID=a+0A', 'ENVID']) {
    my $r = $c->cmd("MAIL FROM:<a\@example.org> $t->[0]");
    is(code_of($r), '501 5.5.4', "MAIL $t->[0]: 501 5.5.4");
    like($r->{text}, qr/Bad $t->[1] parameter/, '... naming the parameter');
}
is(code_of($c->cmd('MAIL FROM:<a@example.org> RET=hdrs ENVID=QQ+2B314')),
   '250 2.1.0', 'MAIL RET=hdrs ENVID=QQ+2B314: 250');
for my $t ('NOTIFY=NEVER,SUCCESS', 'NOTIFY=BOGUS', 'NOTIFY=SUCCESS,SUCCESS',
           'NOTIFY=', 'ORCPT=rfc822', 'ORCPT=rfc822;b+ZZ@example.com',
           "ORCPT=utf-8;j\xc3\xb6rg\@example.com",
           'ORCPT=utf-8;j\\x{D800}rg@example.com',
           'ORCPT=rfc822;b+00@example.com') {
    my $r = $c->cmd("RCPT TO:<b\@example.com> $t");
    like(code_of($r), qr/^5(01 5\.5\.4|55 5\.5\.4)$/, "RCPT $t: refused 501/555 5.5.4");
}
is(code_of($c->cmd('RCPT TO:<b@example.com> FOO=1')), '555 5.5.4',
   'an unknown RCPT parameter: 555 5.5.4');
is(code_of($c->cmd('RCPT TO:<b@example.com> NOTIFY=success,FAILURE ORCPT=rfc822;b+2Bx@example.com')),
   '250 2.1.5', 'RCPT NOTIFY=success,FAILURE ORCPT=rfc822;...: 250');
is(code_of($c->cmd('RCPT TO:<c@example.com>')), '250 2.1.5', 'RCPT without parameters');
is(code_of($c->cmd('RCPT TO:<d@example.com> NOTIFY=NEVER ORCPT=utf-8;j\\x{F6}rg@example.com')),
   '250 2.1.5', 'RCPT NOTIFY=NEVER ORCPT=utf-8;j\\x{F6}rg@...: 250');
is($c->cmd('DATA')->{code}, 354, 'DATA');
$c->send_raw("Subject: dsn\r\n\r\nbody\r\n.\r\n");
is($c->read_reply(10)->{code}, 250, 'accepted');
$c->cmd('QUIT');
my ($m) = $h->wait_spool(1, 10);
my @l = grep { $_->[0] =~ /^(Upesi-Spool|Sender|Mail-Params|Recipient|Rcpt-Params)$/ }
        env_lines($m->{envelope});
is_deeply(\@l, [['Upesi-Spool', '2'], ['Sender', 'a@example.org'],
                ['Mail-Params', 'RET=hdrs ENVID=QQ+2B314'],
                ['Recipient', 'b@example.com'],
                ['Rcpt-Params', 'NOTIFY=success,FAILURE ORCPT=rfc822;b+2Bx@example.com'],
                ['Recipient', 'c@example.com'],
                ['Recipient', 'd@example.com'],
                ['Rcpt-Params', 'NOTIFY=NEVER ORCPT=utf-8;j\\x{F6}rg@example.com']],
          'spool envelope: version 2, Mail-Params after Sender, Rcpt-Params after their Recipient')
    or diag $m->{envelope};
$h->stop_ok;

# =========================================================================
# passed to a second upesi (it offers DSN)

my $tester = "[rcpt]\nmatch = reject5\nverdict = DENY\ncode = 550\n"
           . "enhanced = 5.1.1\ntext = no such user here\n";
my $down = Upesi::Test->new(
    smtp    => { local_domains => 'example.com,example.org', workers => 1 },
    plugins => ['tester', 'queue_spool'],
    ini     => { 'tester.ini' => $tester, 'queue_spool.ini' => "fsync = 0\n" });
$down->start;
my $f = Upesi::Forward::front("downstream = 127.0.0.1:" . $down->port
                              . "\nmode = direct\nfsync = 0\n");
$f->start;
my $r = send_msg($f, from => 'alice@example.org', to => ['bob@example.com'],
                 mail_params => 'RET=FULL ENVID=env+2B1',
                 rcpt_params => { 'bob@example.com' => 'NOTIFY=SUCCESS ORCPT=rfc822;bob@example.com' },
                 data => "Subject: passed\r\n\r\nx\r\n");
is(code_of($r), '250 2.0.0', 'direct to a second upesi: 250');
my @dm = $down->wait_spool(1, 10);
@l = grep { $_->[0] =~ /Params$/ } env_lines($dm[0]{envelope} // '');
is_deeply(\@l, [['Mail-Params', 'RET=FULL ENVID=env+2B1'],
                ['Rcpt-Params', 'NOTIFY=SUCCESS ORCPT=rfc822;bob@example.com']],
          'the downstream got RET, ENVID, NOTIFY, ORCPT as sent');
sleep 1;
is(nspool($down), 1, 'no success report from upesi: the downstream offers DSN, the report is its own');
$f->stop_ok('front (direct)');

# =========================================================================
# spool mode: a failure report (RET=FULL), and none for NOTIFY=NEVER

my $fs = Upesi::Forward::front("downstream = 127.0.0.1:" . $down->port
                               . "\nmode = spool\nfsync = 0\nscan_interval = 200ms\n"
                               . "retry_min = 1s\n");
$fs->start;
unlink $_->{file} for $down->spool;
$r = send_msg($fs, from => 'alice@example.org',
              to => ['ok@example.com', 'reject5@example.com', 'never-reject5@example.com'],
              mail_params => 'RET=FULL ENVID=env-1',
              rcpt_params => { 'reject5@example.com' => 'NOTIFY=FAILURE ORCPT=rfc822;orig+2Breject@example.com',
                               'never-reject5@example.com' => 'NOTIFY=NEVER' },
              data => "Subject: partly refused\r\n\r\nthe whole body comes back\r\n");
is(code_of($r), '250 2.0.0', 'spool: 250');
ok(wait_for(15, sub { nspool($down) >= 2 }), 'the message and a report arrived downstream');
sleep 0.5;
my @got = $down->spool;
my ($dsn) = grep { $_->{env}{Sender} eq '<>' } @got;
my ($orig) = grep { $_->{env}{Sender} ne '<>' } @got;
is(scalar @got, 2, 'two messages: the original (for ok@) and one report');
is_deeply($orig ? $orig->{recipients} : [], ['ok@example.com'], 'the original went to the accepted recipient');
my $d = $dsn ? $dsn->{message} : '';
is_deeply($dsn ? $dsn->{recipients} : [], ['alice@example.org'], 'the report goes to the sender, from <>');
like($d, qr{^Content-Type: multipart/report; report-type=delivery-status;}m, 'multipart/report; report-type=delivery-status');
like($d, qr{^Content-Type: message/delivery-status\r$}m, 'a message/delivery-status part');
like($d, qr{^Original-Envelope-Id: env-1\r$}m, 'Original-Envelope-Id from ENVID');
like($d, qr{^Original-Recipient: rfc822;orig\+reject\@example\.com\r\nFinal-Recipient: rfc822; reject5\@example\.com\r\nAction: failed\r\nStatus: 5\.1\.1\r$}m,
     'Original-Recipient (xtext decoded), Final-Recipient, Action: failed, Status: 5.1.1');
like($d, qr{^Diagnostic-Code: smtp; 550 5\.1\.1 no such user here\r$}m, 'Diagnostic-Code: the downstream\'s reply');
my $nfinal = () = $d =~ /^Final-Recipient:/mg;
is($nfinal, 1, 'one recipient block: NOTIFY=NEVER has none');
like($d, qr{^Content-Type: message/rfc822\r\n.*\r\n\r\n(?s:.*)the whole body comes back\r\n}m,
     'RET=FULL: the whole message as message/rfc822');
ok($fs->wait_log(qr/never-reject5\@example\.com> no failure report: the sender asked NOTIFY=NEVER/, 5),
   'NOTIFY=NEVER: logged, no report');
$fs->stop_ok('front (spool)');

# =========================================================================
# a delay report, once

my $gone = Upesi::Test::free_port();
my $fd = Upesi::Forward::front("downstream = 127.0.0.1:$gone\nmode = spool\nfsync = 0\n"
                               . "scan_interval = 200ms\nretry_min = 1s\nretry_max = 1s\n"
                               . "delay_warning = 0\n");
$fd->start;
$r = send_msg($fd, from => 'alice@example.org', to => ['late@example.com', 'quiet@example.com'],
              rcpt_params => { 'late@example.com' => 'NOTIFY=DELAY,FAILURE' },
              data => "Subject: late\r\n\r\nx\r\n");
is(code_of($r), '250 2.0.0', 'spool, downstream down: 250');
my $delays = sub {
    my $s = $fd->spooldir;
    my @texts = map { slurp($_) // '' } dir_files("$s/queue"), map { dir_files($_) } glob("$s/active/*");
    return grep { /^Action: delayed\r$/m } @texts;
};
ok(wait_for(10, sub { $delays->() >= 1 }), 'a delay report is queued (delay_warning = 0)');
ok(wait_for(10, sub { ctl($fd, 'queue') =~ /attempts=[3-9]/ }), 'retried again and again');
my @dl = $delays->();
is(scalar @dl, 1, 'still one delay report, not one per retry');
like($dl[0] // '', qr{^Final-Recipient: rfc822; late\@example\.com\r\nAction: delayed\r\nStatus: 4\.}m,
     'for the recipient that asked NOTIFY=DELAY only, Status 4.x.x');
unlike($dl[0] // '', qr/quiet\@example\.com/, 'not for the one that did not ask');
$fd->stop_ok('front (delay)');

# =========================================================================
# Postfix's smtp-sink: with DSN (parameters passed), and with -N (without
# DSN: upesi reports success itself) where SMTPUTF8 is refused too

SKIP: {
    skip "$SINK not installed", 14 unless -x $SINK;
    my $tmp = File::Temp::tempdir('upesi-dsn-XXXXXX', TMPDIR => 1,
                                  CLEANUP => !$ENV{UPESI_KEEP});
    chmod 0755, $tmp;
    for my $d ('dsn', 'nodsn') { mkdir "$tmp/$d"; chmod 0777, "$tmp/$d" }
    my @user = $> == 0 ? ('-u', 'nobody') : ();
    my ($p1, $p2) = (Upesi::Test::free_port(), Upesi::Test::free_port());
    my @sinks;
    for ([$p1, 'dsn', []], [$p2, 'nodsn', ['-N']]) {
        my ($port, $dir, $opt) = @$_;
        my $pid = fork // die;
        if (!$pid) {
            open STDOUT, '>', '/dev/null'; open STDERR, '>', '/dev/null';
            { exec $SINK, @user, @$opt, '-d', "$tmp/$dir/%M.", "127.0.0.1:$port", 64 }
            POSIX::_exit(127);
        }
        push @sinks, $pid;
    }
    my $lsock = "$tmp/nodsn/lmtp.sock";
    my $lpid = fork // die;
    if (!$lpid) {
        open STDOUT, '>', '/dev/null'; open STDERR, '>', '/dev/null';
        { exec $SINK, @user, '-N', '-L', "unix:$lsock", 64 }
        POSIX::_exit(127);
    }
    push @sinks, $lpid;
    wait_for(5, sub { Upesi::Test::_listening('127.0.0.1', $p1) &&
                      Upesi::Test::_listening('127.0.0.1', $p2) && -S $lsock });
    my $f1 = Upesi::Forward::front("downstream = 127.0.0.1:$p1\nfsync = 0\n");
    $f1->start;
    $r = send_msg($f1, from => 'alice@example.org', to => ['bob@example.com'],
                  mail_params => 'RET=HDRS ENVID=sink-1',
                  rcpt_params => { 'bob@example.com' => 'NOTIFY=SUCCESS,FAILURE ORCPT=rfc822;bob@example.com' },
                  data => "Subject: to the sink\r\n\r\nx\r\n");
    is(code_of($r), '250 2.0.0', 'smtp-sink (offers DSN): 250');
    ok(wait_for(5, sub { dir_files("$tmp/dsn") >= 1 }), 'smtp-sink captured it');
    my ($cap) = map { slurp($_) // '' } dir_files("$tmp/dsn");
    like($cap, qr/^X-Mail-Args: <alice\@example\.org> RET=HDRS ENVID=sink-1$/m, 'smtp-sink saw RET and ENVID');
    like($cap, qr/^X-Rcpt-Args: <bob\@example\.com> NOTIFY=SUCCESS,FAILURE ORCPT=rfc822;bob\@example\.com$/m,
         'smtp-sink saw NOTIFY and ORCPT');
    $f1->stop_ok('front (sink with DSN)');

    my $f2 = Upesi::Forward::front("downstream = 127.0.0.1:$p2\nfsync = 0\nscan_interval = 200ms\n"
                                   . "route = lmtp.example lmtp:$lsock\n",
                                   local_domains => 'example.com,example.org,lmtp.example');
    $f2->start;
    $r = send_msg($f2, from => 'alice@example.org', to => ['bob@example.com', 'carol@example.com'],
                  mail_params => 'ENVID=sink-2',
                  rcpt_params => { 'bob@example.com' => 'NOTIFY=SUCCESS ORCPT=rfc822;bob@example.com' },
                  data => "Subject: no dsn downstream\r\n\r\nx\r\n");
    is(code_of($r), '250 2.0.0', 'smtp-sink -N (no DSN): 250');
    ok(wait_for(10, sub { dir_files("$tmp/nodsn") >= 2 }), 'the message and a report reached smtp-sink -N');
    my @caps = map { slurp($_) // '' } dir_files("$tmp/nodsn");
    my ($orig2) = grep { /Subject: no dsn downstream/ && !/report-type/ } @caps;
    like($orig2 // '', qr/^X-Rcpt-Args: <bob\@example\.com>$/m, 'no NOTIFY/ORCPT to a downstream without DSN');
    my ($rep) = grep { /report-type=delivery-status/ } @caps;
    like($rep // '', qr/^Subject: Successful Mail Delivery Report\r?$/m, 'a success report from upesi');
    like($rep // '', qr{^Original-Envelope-Id: sink-2\r?\n}m, '... with Original-Envelope-Id');
    like($rep // '', qr{^Original-Recipient: rfc822;bob\@example\.com\r?\nFinal-Recipient: rfc822; bob\@example\.com\r?\nAction: relayed\r?\nStatus: 2\.0\.0\r?$}m,
         '... Action: relayed, Status: 2.0.0 for bob only');
    unlike($rep // '', qr/carol/, '... carol did not ask');
    $r = send_msg($f2, from => 'alice@example.org', to => ['dan@lmtp.example'],
                  rcpt_params => { 'dan@lmtp.example' => 'NOTIFY=SUCCESS' },
                  data => "Subject: by lmtp\r\n\r\nx\r\n");
    is(code_of($r), '250 2.0.0', 'LMTP without DSN (smtp-sink -L -N): 250');
    ok(wait_for(10, sub { grep { /Final-Recipient: rfc822; dan\@lmtp\.example\r?\nAction: delivered\r?$/m }
                              map { slurp($_) // '' } dir_files("$tmp/nodsn") }),
       '... the success report says Action: delivered (LMTP is the final hop)');
    $r = send_msg($f2, from => "j\xc3\xb6rg\@example.org", to => ['bob@example.com'],
                  mail_params => 'SMTPUTF8', data => "Subject: utf8\r\n\r\nx\r\n");
    is(code_of($r), '550 5.6.7', 'an SMTPUTF8 message to a downstream without SMTPUTF8: 550 5.6.7, not downgraded');
    $f2->stop;
    kill 'TERM', @sinks;
    waitpid($_, 0) for @sinks;
}
$down->stop_ok('downstream');
done_testing();
