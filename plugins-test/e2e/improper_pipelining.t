#!/usr/bin/perl
# improper_pipelining.t - RFC 2920 3.1: DATA ends a pipelined command
# group; a client must wait for DATA's reply before it says more.
#
# The probe (issue 22 item 1): after a refused DATA (554, no valid
# recipients) the content that followed in the same write was run as
# commands, a RCPT in it joined the still open transaction and the
# embedded message was queued (replies 550, 554, 250, 354, 250).  And
# content sent before the 354 was taken as the message.  Now the client
# is an improper pipeliner (improper_pipelining_action, docs/config.md):
#   drop (default)  554 5.5.0 to that DATA and the connection closed;
#   reject          554 5.5.0, the pipelined content read to its end of
#                   data and thrown away, every later MAIL refused;
#   ignore          counted and logged only; DATA answered as usual, and
#                   after a refused DATA the content is still thrown away.
# Counted in SMTP.Command.Invalid and SMTP.Sessions.ImproperPipelining.
use strict;
use warnings;
use FindBin;
use lib "$FindBin::Bin/../lib";
use Test::More;
use Time::HiRes qw(sleep);
use Upesi::Test;

deadline(120);

my $tester = "[rcpt]\nmatch = nosuchuser\nverdict = DENY\ncode = 550\n"
           . "enhanced = 5.1.1\ntext = no such user\n";

sub server {
    my (%smtp) = @_;
    my $srv = Upesi::Test->new(
        smtp    => { local_domains => 'example.com', pipelining => 1, %smtp },
        plugins => ['tester', 'queue_spool'],
        ini     => { 'tester.ini' => $tester });
    $srv->start;
    return $srv;
}

# the probe of the issue, in one write
my $probe = "EHLO x\r\nMAIL FROM:<a\@example.org>\r\n"
          . "RCPT TO:<nosuchuser\@example.com>\r\nDATA\r\n"
          . "RCPT TO:<bob\@example.com>\r\nDATA\r\n"
          . "Subject: EMBEDDED\r\n\r\nbody\r\n.\r\n";

# content before the 354, for a transaction that would be accepted
my $early = "EHLO x\r\nMAIL FROM:<a\@example.org>\r\nRCPT TO:<bob\@example.com>\r\n"
          . "DATA\r\nSubject: EARLY\r\n\r\nbody\r\n.\r\n";

sub replies {
    my ($c) = @_;
    my @r;
    while (my $r = $c->read_reply(2 * $SLOW)) { push @r, $r }
    return @r;
}

sub codes { join ',', map { $_->{code} } @_ }

sub embedded { grep { ($_->{message} // '') =~ /Subject: (?:EMBEDDED|EARLY)/ } @_ }

# =============================================================================
# default: drop
{
    my $srv = server();
    my $c = $srv->client;
    $c->send_raw($probe . "QUIT\r\n");
    my @r = replies($c);
    is codes(@r), '250,250,550,554', 'drop: the probe: EHLO, MAIL, RCPT 550, DATA 554, nothing after'
        or diag $c->{transcript};
    is $r[-1]{enhanced}, '5.5.0', 'drop: 554 5.5.0';
    like $r[-1]{text}, qr/synchronization/, 'drop: says SMTP protocol synchronization';
    ok $c->closed(5), 'drop: the connection is closed';
    sleep 0.3;
    is scalar(embedded($srv->spool)), 0, 'drop: the embedded message is not queued';

    $c = $srv->client;
    $c->send_raw($early . "QUIT\r\n");
    @r = replies($c);
    is codes(@r), '250,250,250,554', 'drop: content before the 354: DATA 554, no 354'
        or diag $c->{transcript};
    ok $c->closed(5), 'drop: closed';

    my $st = $srv->stat('SMTP.');
    is $st->{'SMTP.Sessions.ImproperPipelining'}, 2, 'SMTP.Sessions.ImproperPipelining = 2';
    is $st->{'SMTP.Command.Invalid'}, 2, 'SMTP.Command.Invalid = 2';
    is scalar($srv->log_lines(qr/improper pipelining: \d+ bytes sent after DATA before its reply/)), 2,
        'one log line each';

    # a client that waits for the 354 (proper pipelining) is not one
    $c = $srv->client;
    $c->cmd('EHLO proper.test');
    $c->send_raw("MAIL FROM:<a\@example.org>\r\nRCPT TO:<bob\@example.com>\r\nDATA\r\n");
    is codes($c->read_replies(3)), '250,250,354', 'proper: MAIL, RCPT, DATA in one write: 354';
    $c->send_raw("Subject: proper\r\n\r\nbody\r\n.\r\nQUIT\r\n");
    is codes($c->read_replies(2)), '250,221', 'proper: the message and QUIT';
    my @m = $srv->wait_spool(1, 5);
    is scalar(@m), 1, 'proper: one message queued';
    is $srv->stat('SMTP.Sessions.ImproperPipelining')->{'SMTP.Sessions.ImproperPipelining'}, 2,
        'proper: not counted';
    $srv->stop_ok('upesi (drop)');
}

# content that arrives while the DATA hook still runs (not in DATA's own
# write) is as early: checked again before the answer
{
    my $srv = Upesi::Test->new(
        smtp    => { local_domains => 'example.com', pipelining => 1 },
        plugins => ['tester', 'queue_spool'],
        ini     => { 'tester.ini' => "[data]\nverdict = CONT\ndelay_ms = 600\n" });
    $srv->start;
    my $c = $srv->client;
    $c->cmd('EHLO slow.test');
    $c->cmd('MAIL FROM:<a@example.org>');
    $c->cmd('RCPT TO:<bob@example.com>');
    $c->send_raw("DATA\r\n");
    sleep 0.2;
    $c->send_raw("Subject: EARLY\r\n\r\nbody\r\n.\r\n");
    my @r = replies($c);
    is codes(@r), '554', 'async: content sent while the DATA hook ran: 554, no 354'
        or diag $c->{transcript};
    ok $c->closed(5), 'async: closed';
    is scalar(embedded($srv->spool)), 0, 'async: nothing queued';
    $srv->stop_ok('upesi (async)');
}

# =============================================================================
# reject
{
    my $srv = server(improper_pipelining_action => 'reject');
    my $c = $srv->client;
    $c->send_raw($probe);
    my @r = replies($c);
    is codes(@r), '250,250,550,554', 'reject: the probe: DATA 554, the content thrown away'
        or diag $c->{transcript};
    is $r[-1]{enhanced}, '5.5.0', 'reject: 554 5.5.0';
    my $m = $c->cmd('MAIL FROM:<a@example.org>');
    is $m->{code}, 554, 'reject: a later MAIL is refused too';
    is $c->cmd('QUIT')->{code}, 221, 'reject: the session goes on to QUIT';
    ok $srv->wait_log(qr/threw away \d+ bytes sent as the content of a refused DATA/, 5),
        'reject: the thrown-away content is logged';
    is scalar(embedded($srv->spool)), 0, 'reject: nothing queued';
    $srv->stop_ok('upesi (reject)');
}

# =============================================================================
# ignore: still, nothing after a refused DATA runs as a command
{
    my $srv = server(improper_pipelining_action => 'ignore');
    my $c = $srv->client;
    $c->send_raw($probe . "QUIT\r\n");
    my @r = replies($c);
    is codes(@r), '250,250,550,554,221',
        'ignore: the probe: DATA 554 (no valid recipients), the content thrown away, QUIT'
        or diag $c->{transcript};
    is $r[3]{enhanced}, '5.5.1', 'ignore: the usual 554 5.5.1';
    sleep 0.3;
    is scalar(embedded($srv->spool)), 0, 'ignore: the embedded message is not queued';
    is $srv->stat('SMTP.Sessions.ImproperPipelining')->{'SMTP.Sessions.ImproperPipelining'}, 1,
        'ignore: counted';
    # as documented: with ignore, content sent with an accepted DATA is
    # the message (what a lenient server has always done)
    $c = $srv->client;
    $c->send_raw($early . "QUIT\r\n");
    @r = replies($c);
    is codes(@r), '250,250,250,354,250,221', 'ignore: content before the 354 is the message';
    my @m = $srv->wait_spool(1, 5);
    is scalar(embedded(@m)), 1, 'ignore: ... and queued';
    is $srv->stat('SMTP.Sessions.ImproperPipelining')->{'SMTP.Sessions.ImproperPipelining'}, 2,
        'ignore: counted all the same';
    $srv->stop_ok('upesi (ignore)');
}

done_testing;
