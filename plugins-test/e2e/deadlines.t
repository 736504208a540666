#!/usr/bin/perl
# deadlines.t - trickling clients (issue 22 item 6, docs/config.md
# command_deadline and data_deadline).
#
# The idle timeout is per read: a client that sends one byte more often
# than it kept its session for ever.  A command line must now be complete
# within command_deadline (300 s) from its first byte, and the message
# content within data_deadline (600 s) from the 354, both times
# timeout_multiplier; past a deadline the client gets 421 4.4.2 and the
# session is closed within a second, counted in SMTP.Sessions.Deadline.
# With timeout_multiplier = 0.01: idle timeout 3 s, command deadline 3 s,
# data deadline 6 s (a BDAT chunk has it too); the clients here send a
# byte every second.
use strict;
use warnings;
use FindBin;
use lib "$FindBin::Bin/../lib";
use IO::Socket::IP;
use Socket qw(SOL_SOCKET SO_RCVBUF);
use Test::More;
use Time::HiRes qw(time sleep);
use Upesi::Test;

deadline(120);

my $srv = Upesi::Test->new(smtp => { timeout_multiplier => 0.01,
                                     local_domains => 'example.com' });
$srv->start;

# trickle($c, $bytes, $every, $max): one byte every $every seconds until the
# server answers or $max seconds passed; returns (reply, seconds from the
# first byte to the reply)
sub trickle {
    my ($c, $bytes, $every, $max) = @_;
    my $t0 = time;
    my $i = 0;
    while (time - $t0 < $max) {
        $c->send_raw(substr($bytes, $i++ % length($bytes), 1)) or last;
        my $r = $c->read_reply($every);
        return ($r, time - $t0) if $r;
        last if $c->{eof};
    }
    return (undef, time - $t0);
}

# -- a command line trickled a byte a second ------------------------------------
{
    my $c = $srv->client(timeout => 20);
    is $c->cmd('EHLO trickle.test')->{code}, 250, 'EHLO';
    my ($r, $took) = trickle($c, 'NOOP and more and more ', 1, 12);
    is $r && "$r->{code} $r->{enhanced}", '421 4.4.2',
        'a command line trickled a byte a second gets 421 4.4.2';
    like $r ? $r->{text} : '', qr/deadline/i, '... saying the deadline passed';
    cmp_ok $took, '>=', 3 - 0.05, sprintf('... not before the 3 s deadline (%.2f s)', $took);
    cmp_ok $took, '<', 3 + 1 * $SLOW, '... within a second of it';
    ok $c->closed(2), '... and the session is closed';
}

# -- message content trickled a byte a second -----------------------------------
{
    my $c = $srv->client(timeout => 20);
    $c->cmd('EHLO trickle.test');
    $c->cmd('MAIL FROM:<a@example.org>');
    $c->cmd('RCPT TO:<bob@example.com>');
    is $c->cmd('DATA')->{code}, 354, 'DATA';
    my ($r, $took) = trickle($c, "Subject: slow\r\n\r\nline\r\n", 1, 15);
    is $r && "$r->{code} $r->{enhanced}", '421 4.4.2',
        'message content trickled a byte a second gets 421 4.4.2';
    cmp_ok $took, '>=', 6 - 0.05, sprintf('... not before the 6 s deadline (%.2f s)', $took);
    cmp_ok $took, '<', 6 + 1 * $SLOW, '... within a second of it';
    ok $c->closed(2), '... and the session is closed';
}

# -- a BDAT chunk trickled a byte a second: the same data deadline ----------------
{
    my $c = $srv->client(timeout => 20);
    $c->cmd('EHLO trickle.test');
    $c->cmd('MAIL FROM:<a@example.org>');
    $c->cmd('RCPT TO:<bob@example.com>');
    $c->send_raw("BDAT 100 LAST\r\n");
    my ($r, $took) = trickle($c, "Subject: slow chunk\r\n", 1, 15);
    is $r && "$r->{code} $r->{enhanced}", '421 4.4.2',
        'a BDAT chunk trickled a byte a second gets 421 4.4.2';
    cmp_ok $took, '>=', 6 - 0.05, sprintf('... not before the 6 s deadline (%.2f s)', $took);
    cmp_ok $took, '<', 6 + 1 * $SLOW, '... within a second of it';
    ok $c->closed(2), '... and the session is closed';
}

# -- slow but within the deadlines: each command and message on its own clock ----
{
    my $c = $srv->client(timeout => 20);
    my $t0 = time;
    my $ok = 1;
    for my $cmd ('EHLO patient.test', 'MAIL FROM:<a@example.org>',
                 'RCPT TO:<bob@example.com>', 'DATA') {
        # each line in two halves, 2 s apart: under the 3 s deadline each,
        # 8 s in all
        my $half = int(length($cmd) / 2);
        $c->send_raw(substr($cmd, 0, $half));
        sleep 2;
        my $r = $c->cmd(substr($cmd, $half));
        $ok &&= $r && $r->{code} =~ /^[23]/;
        diag "$cmd: " . ($r ? $r->{raw} : 'no reply') unless $r && $r->{code} =~ /^[23]/;
    }
    ok $ok, sprintf('four commands sent slowly (%.1f s in all) are each answered', time - $t0);
    # the message in three pieces, 2 s apart: 4 s, under the 6 s deadline
    $c->send_raw("Subject: patient\r\n");
    sleep 2;
    $c->send_raw("\r\nbody\r\n");
    sleep 2;
    my $r = $c->send_data('');
    is $r && $r->{code}, 250, 'a message sent in pieces within the data deadline is accepted';
    is $c->cmd('QUIT')->{code}, 221, 'QUIT';
}

my $st = $srv->stat('SMTP.Sessions.');
is $st && $st->{'SMTP.Sessions.Deadline'}, 3, 'SMTP.Sessions.Deadline counts the three';
is $st && ($st->{'SMTP.Sessions.Timeout'} // 0), 0, '... and they are not idle timeouts';

# A client that sends and never reads: the server stops reading once its
# replies back up, the idle timeout (3 s) closes the session, and the
# replies it cannot deliver keep it no longer than the close linger
# (10 s times timeout_multiplier: 0.1 s).  Its slot is free again.
{
    my $sock = IO::Socket::IP->new(PeerHost => '127.0.0.1', PeerPort => $srv->port)
        or die "connect: $@";
    setsockopt($sock, SOL_SOCKET, SO_RCVBUF, 4096);
    $sock->blocking(0);
    my $lines = "EHLO a\r\n" x 9000;
    my $until = time + 1.5;
    while (time < $until) {         # until both ends' buffers are full
        my $n = syswrite($sock, $lines);
        sleep 0.05 unless defined $n && $n > 0;
    }
    my $t0 = time;
    my $cur;
    while (time - $t0 < 3 + 1.5) {  # the idle timeout, then the linger
        $cur = $srv->stat('SMTP.Sessions.Current')->{'SMTP.Sessions.Current'} // 0;
        last if $cur == 0;
        sleep 0.1;
    }
    is $cur, 0, sprintf('a client that never reads: its session is gone %.1f s after it '
                        . 'stopped being read (idle timeout 3 s, linger 0.1 s)', time - $t0);
    close $sock;
}
$srv->stop_ok;

# Lines pipelined behind a command whose hook takes a while are whole:
# they are not a slow client, and command_deadline (here 1 s) does not run
# on them while the hook (2 s) does.
{
    my $slow = Upesi::Test->new(
        smtp    => { timeout_multiplier => 0.01, command_deadline => 100,
                     local_domains => 'example.com' },
        plugins => [ 'lua', 'queue_spool' ],
        ini     => { 'lua.ini' => "scripts = slow.lua\n",
                     'lua/slow.lua' => "upesi.hook('mail', function() upesi.sleep(2) end)\n" });
    $slow->start;
    my $c = $slow->client;
    $c->cmd('EHLO client.test');
    $c->send_line("MAIL FROM:<a\@example.org>\r\nRCPT TO:<b\@example.com>");
    my ($m, $r) = ($c->read_reply(10), $c->read_reply(10));
    is join(' ', map { $_ ? $_->{code} : 'none' } $m, $r), '250 250',
        'a line pipelined behind a 2 s hook is answered, not cut by the 1 s deadline';
    $slow->stop_ok('pipelined behind a slow hook');
}

done_testing;
