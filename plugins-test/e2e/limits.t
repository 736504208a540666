#!/usr/bin/perl
# limits.t - limits and abuse: SIZE at MAIL and during DATA, max_sessions,
# error_limit, max_command_length, NUL bytes, pipelined commands answered in
# order, pipelining = 0 and early talkers, the idle timeout.
use strict;
use warnings;
use FindBin;
use lib "$FindBin::Bin/../lib";
use Test::More;
use Upesi::Test;
use Time::HiRes qw(time);

deadline(150);

my $srv = Upesi::Test->new(smtp => {
    max_message_size => 10000,
    max_sessions => 3,
    error_limit => 3,
    max_command_length => 1200,
    pipelining => 1,
});
$srv->start;

sub ehlo {
    my ($c) = @_;
    my $r = $c->cmd('EHLO client.test');
    return $r && $r->{code} == 250;
}

# A body of about N bytes in 78-character lines.
sub body_of {
    my ($n) = @_;
    my $line = ('x' x 76) . "\r\n";
    return "Subject: size test\r\n\r\n" . ($line x int($n / 78 + 1));
}

# -- SIZE --------------------------------------------------------------------
{
    my $c = $srv->client;
    ok ehlo($c), 'EHLO';
    my $r = $c->cmd('MAIL FROM:<a@example.org> SIZE=10001');
    is $r->{code}, 552, 'MAIL SIZE= above max_message_size: 552';
    is $r->{enhanced}, '5.3.4', 'MAIL SIZE= refusal carries 5.3.4';
    $r = $c->cmd('MAIL FROM:<a@example.org> SIZE=9000');
    is $r->{code}, 250, 'MAIL SIZE= below the limit: 250';
    $r = $c->cmd('RCPT TO:<bob@example.com>');
    is $r->{code}, 250, 'RCPT accepted';
    $r = $c->cmd('DATA');
    is $r->{code}, 354, 'DATA 354';
    $r = $c->send_data(body_of(20000));
    is $r->{code}, 552, 'a message over max_message_size: 552 after the data';
    is $r->{enhanced}, '5.3.4', 'oversize data refusal carries 5.3.4';
    # if the host had stopped reading data at the limit, the rest of the
    # body would now be read as commands and answered before this NOOP
    $r = $c->cmd('NOOP');
    is $r->{code}, 250, 'the next reply is the NOOP\'s: the oversize body was not read as commands';
    $r = $c->cmd('MAIL FROM:<a@example.org>');
    is $r->{code}, 250, 'a new transaction after the refused message';
    $c->cmd('RCPT TO:<bob@example.com>');
    $r = $c->cmd('DATA');
    is $r->{code}, 354, 'DATA again';
    $r = $c->send_data(body_of(5000));
    is $r->{code}, 250, 'a message under the limit is accepted';
    $c->cmd('QUIT');
    $c->close;
    my @spool = $srv->wait_spool(1, 5);
    is scalar @spool, 1, 'only the message under the limit is in the spool';
}

# -- max_sessions ----------------------------------------------------------
{
    # the host notices closed sessions asynchronously: wait until it sees none
    my $end = time + 5;
    while (time < $end) {
        my $st = $srv->stat('SMTP.Sessions.Current') // {};
        last if ($st->{'SMTP.Sessions.Current'} // 1) == 0;
        select undef, undef, undef, 0.05;
    }
    my @open = map { $srv->client } 1 .. 3;
    is_deeply [map { $_->greeting ? $_->greeting->{code} : 'none' } @open],
        [220, 220, 220], 'max_sessions = 3: three sessions greeted';
    my $c4 = $srv->client;
    my $g = $c4->greeting;
    is $g ? $g->{code} : 'none', 421, 'the fourth concurrent session gets 421';
    is $g ? $g->{enhanced} : undef, '4.7.0', 'too many sessions carries 4.7.0';
    ok $c4->closed(5), 'and is closed';
    my $r = $open[0]->cmd('NOOP');
    is $r->{code}, 250, 'the sessions already open are not disturbed';
    $open[0]->cmd('QUIT');
    $open[0]->close;
    my $ok = 0;
    for (1 .. 50) {
        my $c5 = $srv->client;
        my $code = $c5->greeting ? $c5->greeting->{code} : 0;
        $c5->close;
        if ($code == 220) { $ok = 1; last }
        select undef, undef, undef, 0.1;
    }
    ok $ok, 'after one session closes, a new one is greeted again';
    $_->close for @open;
    my $st = $srv->stat('SMTP.Sessions.') // {};
    cmp_ok $st->{'SMTP.Sessions.Refused'} // 0, '>=', 1, 'stat: SMTP.Sessions.Refused counts the refusal';
    cmp_ok $st->{'SMTP.Sessions.Peak'} // 0, '==', 3, 'stat: SMTP.Sessions.Peak = 3';
}

# the sessions above may take a moment to be reaped by the host
sub fresh_client {
    for (1 .. 50) {
        my $c = $srv->client;
        return $c if $c->greeting && $c->greeting->{code} == 220;
        $c->close;
        select undef, undef, undef, 0.1;
    }
    die "no session slot became free";
}

# -- error_limit -------------------------------------------------------------
{
    my $c = fresh_client();
    ok ehlo($c), 'EHLO (error_limit = 3)';
    my @codes = map { my $r = $c->cmd("XYZZY $_"); $r ? $r->{code} : 'none' } 1 .. 3;
    is_deeply \@codes, [500, 500, 500], 'three unknown commands: 500 each (within the limit)';
    my $r = $c->cmd('BOGUS 4');
    # the fourth error may get its own 500 first, then 421
    $r = $c->read_reply(5) if $r && $r->{code} =~ /^5/;
    is $r ? $r->{code} : 'none', 421, 'the error past error_limit gets 421';
    is $r ? $r->{enhanced} : undef, '4.7.0', 'error limit 421 carries 4.7.0';
    ok $c->closed(5), 'and the connection is closed';
}
{
    # rejected commands count too, not only unknown ones
    my $c = fresh_client();
    ok ehlo($c), 'EHLO (rejected commands count)';
    $c->cmd('MAIL FROM:<a@example.org>');
    my @codes = map { my $r = $c->cmd("RCPT TO:<x$_\@elsewhere.test>"); $r ? $r->{code} : 'none' } 1 .. 3;
    is_deeply \@codes, [550, 550, 550], 'three relay attempts: 550 each';
    my $r = $c->cmd('RCPT TO:<x4@elsewhere.test>');
    $r = $c->read_reply(5) if $r && $r->{code} =~ /^5/;
    is $r ? $r->{code} : 'none', 421, 'a fourth rejected RCPT passes error_limit: 421';
    ok $c->closed(5), 'and the connection is closed';
}
{
    # a good command does not reset the count, but the count is per session
    my $c = fresh_client();
    ok ehlo($c), 'a new session starts with no errors';
    my $r = $c->cmd('XYZZY');
    is $r->{code}, 500, 'one error in a new session: 500, no 421';
    $c->cmd('QUIT');
    $c->close;
}

# -- max_command_length -----------------------------------------------------
{
    my $c = fresh_client();
    ok ehlo($c), 'EHLO (line length)';
    my $r = $c->cmd('NOOP ' . ('a' x 1195));
    is $r->{code}, 250, 'a 1200-character command is accepted';
    $r = $c->cmd('NOOP ' . ('b' x 1196));
    is $r->{code}, 500, 'a 1201-character command: 500';
    is $r->{enhanced}, '5.5.2', 'line too long carries 5.5.2';
    $r = $c->cmd('NOOP');
    is $r->{code}, 250, 'the session still works after the long line (its tail was not read as a command)';
    # a huge line: 200 KB before its CRLF
    $c->send_raw('MAIL FROM:<' . ('c' x 200_000) . "\@example.org>\r\n");
    $r = $c->read_reply;
    is $r ? $r->{code} : 'none', 500, 'a 200 KB line: one 500';
    $r = $c->cmd('NOOP');
    is $r ? $r->{code} : 'none', 250, 'then the session goes on';
    $c->cmd('QUIT');
    $c->close;
}

# -- NUL bytes ---------------------------------------------------------------
{
    my $c = fresh_client();
    ok ehlo($c), 'EHLO (NUL bytes)';
    $c->send_raw("NOOP\0\r\n");
    my $r = $c->read_reply;
    like $r ? $r->{code} : 'none', qr/^5\d\d$/, 'a NUL byte in a command is answered 5xx';
    $c->send_raw("MAIL FROM:<a\0b\@example.org>\r\n");
    $r = $c->read_reply;
    like $r ? $r->{code} : 'none', qr/^5\d\d$/, 'a NUL byte in an address is answered 5xx';
    $r = $c->cmd('MAIL FROM:<a@example.org>');
    is $r->{code}, 250, 'the session goes on after NUL bytes';
    $c->cmd('RCPT TO:<bob@example.com>');
    $r = $c->cmd('DATA');
    is $r->{code}, 354, 'DATA 354';
    $r = $c->send_data("Subject: nul\r\n\r\nbefore\0after");
    like $r ? $r->{code} : 'none', qr/^[25]\d\d$/, 'a NUL byte in the data is answered (accepted or refused)';
    $r = $c->cmd('NOOP');
    is $r ? $r->{code} : 'none', 250, 'the server is still there';
    $c->cmd('QUIT');
    $c->close;
}

# -- pipelining ----------------------------------------------------------------
{
    my $c = fresh_client();
    ok ehlo($c), 'EHLO (pipelining)';
    my $n_before = () = $srv->spool;
    $c->send_raw(join('', map { "$_\r\n" }
        'MAIL FROM:<alice@example.org>',
        'RCPT TO:<bob@example.com>',
        'RCPT TO:<mallory@elsewhere.test>',
        'RCPT TO:<carol@example.com>',
        'DATA'));
    my @r = $c->read_replies(5);
    is_deeply [map { $_->{code} } @r], [250, 250, 550, 250, 354],
        'five pipelined commands answered in order';
    $c->send_raw("Subject: pipelined\r\n\r\nbody\r\n.\r\nNOOP\r\nRSET\r\nMAIL FROM:<x\@example.org>\r\nQUIT\r\n");
    @r = $c->read_replies(5);
    is_deeply [map { $_->{code} } @r], [250, 250, 250, 250, 221],
        'end of data, NOOP, RSET, MAIL, QUIT pipelined: answered in order';
    ok $c->closed(5), 'closed after the pipelined QUIT';
    my @spool = $srv->wait_spool($n_before + 1, 5);
    my ($m) = grep { ($_->{message} // '') =~ /Subject: pipelined/ } @spool;
    ok $m, 'the pipelined message is in the spool';
    is_deeply $m ? $m->{recipients} : [], ['bob@example.com', 'carol@example.com'],
        'with the two accepted recipients';
}
$srv->stop_ok;

# -- pipelining = 0 and early talkers --------------------------------------
my $np = Upesi::Test->new(smtp => { pipelining => 0 });
$np->start;
{
    my $c = $np->client;
    my $r = $c->cmd('EHLO client.test');
    is $r->{code}, 250, 'pipelining = 0: EHLO 250';
    unlike join("\n", @{ $r->{lines} }), qr/PIPELINING/, 'pipelining = 0: PIPELINING not advertised';
    ok !$np->log_lines(qr/early talker/i), 'no early talker noted before anyone talked early';
    $c->send_raw("MAIL FROM:<a\@example.org>\r\nRCPT TO:<bob\@example.com>\r\n");
    my @r = $c->read_replies(2);
    is_deeply [map { $_->{code} } @r], [250, 250], 'commands sent without waiting are still answered, in order';
    ok defined $np->wait_log(qr/early talker/i, 5), 'the early talker is noted in the log';
    my $st = $np->stat('SMTP.Sessions.EarlyTalker') // {};
    is $st->{'SMTP.Sessions.EarlyTalker'}, 1, 'stat: SMTP.Sessions.EarlyTalker = 1';
    $c->cmd('QUIT');
}
$np->stop_ok('upesi (pipelining = 0)');

# -- greeting_delay: bytes before the greeting -----------------------------
my $gd = Upesi::Test->new(smtp => { greeting_delay => 1 });
$gd->start;
{
    my $c = $gd->client(greeting => 0);
    $c->send_line('EHLO hasty.test');
    my $g = $c->read_reply(10);
    ok $g, 'greeting_delay: a greeting still comes';
    ok defined $gd->wait_log(qr/early talker/i, 5), 'greeting_delay: talking before the greeting is noted';
    $c->close;
}
$gd->stop_ok('upesi (greeting_delay = 1)');

# -- the idle timeout (RFC 5321 4.5.3.2 times timeout_multiplier) ---------
# 5 minutes x 0.01 = 3 s
my $to = Upesi::Test->new(smtp => { timeout_multiplier => 0.01 });
$to->start;
{
    my $c = $to->client(timeout => 20);
    ok ehlo($c), 'EHLO (timeouts)';
    my $t0 = time;
    my $r = $c->read_reply(20);
    my $took = time - $t0;
    is $r ? $r->{code} : 'none', 421, 'an idle session gets 421';
    is $r ? $r->{enhanced} : undef, '4.4.2', 'idle timeout carries 4.4.2';
    cmp_ok $took, '>=', 2, 'not before the scaled timeout (about 3 s)';
    cmp_ok $took, '<', 15, 'and not much after it';
    ok $c->closed(5), 'the idle session is closed';
}
$to->stop_ok('upesi (timeout_multiplier = 0.01)');

done_testing;
