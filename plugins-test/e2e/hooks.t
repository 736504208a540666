#!/usr/bin/perl
# hooks.t - hook dispatch through the real host, driven by the tester
# plugin (plugins-test/plugins/tester.c): custom replies, OK skipping later
# plugins, PENDING + resume with pipelined commands answered in order,
# plugin_timeout (451 4.3.0 + CRIT naming plugin and hook; a late resume is
# harmless), cancellation when the client goes away, Domino-style connect
# DENY (greet, refuse every MAIL), DENYDISCONNECT, connection and
# transaction notes, headers added at data_post, unrecognized commands, and
# the per-plugin decision counters.
use strict;
use warnings;
use FindBin;
use lib "$FindBin::Bin/../lib";
use Test::More;
use Time::HiRes qw(time sleep);
use Upesi::Test;

deadline(120);

sub server {
    my ($tester_ini, %smtp) = @_;
    my $srv = Upesi::Test->new(
        smtp    => { local_domains => 'example.com', %smtp },
        plugins => [ 'tester', 'queue_spool' ],
        ini     => { 'tester.ini' => $tester_ini },
    );
    $srv->start;
    return $srv;
}

sub session {
    my ($srv) = @_;
    my $c = $srv->client;
    my $r = $c->cmd('EHLO client.test');
    is $r->{code}, 250, 'EHLO 250' or diag explain $r;
    return $c;
}

# -- custom reply, DENY on one recipient, others go on -------------------------
{
    my $srv = server(<<'EOT');
[rcpt]
match = spam
verdict = DENY
code = 550
enhanced = 5.7.1
text = no thanks
EOT
    my $c = session($srv);
    is $c->cmd('MAIL FROM:<a@example.org>')->{code}, 250, 'MAIL 250';
    my $r = $c->cmd('RCPT TO:<spam@example.com>');
    is $r->{code}, 550, 'denied recipient gets the plugin code';
    is $r->{enhanced}, '5.7.1', '... and its enhanced code';
    like $r->{text}, qr/no thanks/, '... and its text';
    is $c->cmd('RCPT TO:<bob@example.com>')->{code}, 250,
        'another recipient is accepted (all CONT, local domain)';
    $r = $c->cmd('RCPT TO:<bob@elsewhere.example>');
    is $r->{code}, 550, 'all CONT for a foreign domain: 550';
    like $r->{raw}, qr/^550 5\.7\.1 .*[Rr]elay/m, '... relaying denied';
    my $st = $srv->stat('SMTP.Plugin.tester');
    is $st->{'SMTP.Plugin.tester.rcpt.DENY'}, 1, 'the decision is counted';
    ok $srv->wait_log(qr/recipient rejected by tester: 550/, 5),
        'the log names the plugin that denied';
    $srv->stop_ok;
}

# -- PENDING: resume later, pipelined replies stay in order --------------------
{
    my $srv = server(<<'EOT');
[mail]
delay_ms = 300
verdict = CONT
[rcpt]
match = slowok
delay_ms = 200
verdict = OK
text = accepted late
code = 250
EOT
    my $c = session($srv);
    my $t0 = time;
    $c->send_raw("MAIL FROM:<a\@example.org>\r\nRCPT TO:<slowok\@else.example>\r\n"
                 . "RCPT TO:<bob\@example.com>\r\nNOOP\r\n");
    my @r = $c->read_replies(4, 10);
    my $took = time - $t0;
    is scalar(@r), 4, 'four pipelined commands, four replies';
    is_deeply [ map { $_->{code} } @r ], [ 250, 250, 250, 250 ],
        'all accepted, in order';
    like $r[1]{text}, qr/accepted late/, 'the delayed OK carries its reply';
    ok $took >= 0.45, sprintf('the replies waited for both delays (%.2fs)', $took);
    $srv->stop_ok;
}

# -- plugin_timeout: 451 4.3.0, CRIT, late resume harmless ---------------------
for my $cancel (0, 1) {
    my $srv = server(<<"EOT", plugin_timeout => 0.5);
[rcpt]
match = hang
delay_ms = 1500
cancel = $cancel
verdict = OK
EOT
    my $c = session($srv);
    is $c->cmd('MAIL FROM:<a@example.org>')->{code}, 250, 'MAIL 250';
    my $r = $c->cmd('RCPT TO:<hang@example.com>');
    is $r->{code}, 451, "timeout (cancel=$cancel): 451";
    is $r->{enhanced}, '4.3.0', '... 4.3.0';
    ok $srv->wait_log(qr/CRIT .*plugin tester did not answer rcpt/, 5),
        'CRIT log line names plugin and hook';
    is $c->cmd('RCPT TO:<bob@example.com>')->{code}, 250,
        'the session goes on after the timeout';
    sleep 1.5;    # the late resume (cancel=0) or nothing (cancel=1) happens now
    is $c->cmd('NOOP')->{code}, 250, 'the server is fine after the late answer';
    if ($cancel) {
        ok $srv->wait_log(qr/tester: call cancelled/, 5),
            'the plugin was told about the cancellation';
    }
    my $st = $srv->stat('SMTP.Plugin');
    is $st->{'SMTP.Plugin.Timeouts'}, 1, 'the timeout is counted';
    $srv->stop_ok;
}

# -- the client goes away while a plugin works ---------------------------------
{
    my $srv = server(<<'EOT');
[rcpt]
match = hang
delay_ms = 800
cancel = 1
verdict = OK
EOT
    my $c = session($srv);
    $c->cmd('MAIL FROM:<a@example.org>');
    $c->send_line('RCPT TO:<hang@example.com>');
    $c->close;
    ok $srv->wait_log(qr/tester: call cancelled/, 5),
        'a disconnect cancels the pending call';
    ok $srv->wait_log(qr/disconnect 127\.0\.0\.1/, 5), 'the session is logged closed';
    sleep 1;
    my $c2 = session($srv);
    is $c2->cmd('QUIT')->{code}, 221, 'the server still serves';
    $srv->stop_ok;
}

# -- connect DENY: greeted, every MAIL refused (Domino) -------------------------
{
    my $srv = server(<<'EOT');
[connect]
verdict = DENY
code = 554
enhanced = 5.7.1
text = Your host is listed
EOT
    my $c = $srv->client;
    is $c->greeting->{code}, 220, 'connect DENY: still greeted with 220';
    is $c->cmd('EHLO client.test')->{code}, 250, 'EHLO accepted';
    for my $n (1, 2) {
        my $r = $c->cmd('MAIL FROM:<a@example.org>');
        is $r->{code}, 554, "MAIL #$n refused with 554";
        like $r->{raw}, qr/^554 5\.7\.1 Your host is listed/m,
            '... with the verdict text';
    }
    is $c->cmd('QUIT')->{code}, 221, 'QUIT still works';
    $srv->stop_ok;
}

# -- connect DENYDISCONNECT: refused and closed --------------------------------
{
    my $srv = server(<<'EOT');
[connect]
verdict = DENYDISCONNECT
text = go away
EOT
    my $c = $srv->client;
    my $g = $c->greeting;
    is $g->{code}, 554, 'DENYDISCONNECT at connect: 554 instead of 220';
    like $g->{text}, qr/go away/, '... with the text';
    ok $c->closed(5), '... and the connection closes';
    $srv->stop_ok;
}

# -- notes and headers ------------------------------------------------------------
{
    my $srv = server(<<'EOT');
[mail]
match = setnote
note = color=blue
[rcpt]
match = shownote
show_note = color
verdict = DENY
code = 550
[data_post]
header = X-Tester: yes
EOT
    my $c = session($srv);
    $c->cmd('MAIL FROM:<setnote@example.org>');
    my $r = $c->cmd('RCPT TO:<shownote@example.com>');
    like $r->{text}, qr/note color=blue/, 'a txn note set at MAIL is seen at RCPT';
    is $c->cmd('RSET')->{code}, 250, 'RSET';
    $c->cmd('MAIL FROM:<other@example.org>');
    $r = $c->cmd('RCPT TO:<shownote@example.com>');
    like $r->{text}, qr/note color=\(none\)/, 'RSET ended the transaction and its notes';
    is $c->cmd('RCPT TO:<bob@example.com>')->{code}, 250, 'RCPT bob';
    is $c->cmd('DATA')->{code}, 354, 'DATA 354';
    $r = $c->send_data("Subject: hi\r\n\r\nbody");
    is $r->{code}, 250, 'message accepted';
    my @m = $srv->spool;
    is scalar(@m), 1, 'one message in the spool';
    my ($received, $rest) = strip_received($m[0]{message} // '');
    like $rest, qr/\AX-Tester: yes\r\nSubject: hi\r\n\r\nbody\r\n\z/,
        'the added header follows Received and precedes the data';
    $srv->stop_ok;
}

# -- DENYSOFT at data_post: 451 and nothing stored -------------------------------
{
    my $srv = server(<<'EOT');
[data_post]
verdict = DENYSOFT
text = try later
EOT
    my $c = session($srv);
    $c->cmd('MAIL FROM:<a@example.org>');
    $c->cmd('RCPT TO:<bob@example.com>');
    is $c->cmd('DATA')->{code}, 354, 'DATA 354';
    my $r = $c->send_data("Subject: x\r\n\r\nx\r\n");
    is $r->{code}, 451, 'data_post DENYSOFT: 451';
    like $r->{text}, qr/try later/, '... with the text';
    my @m = $srv->spool;
    is scalar(@m), 0, 'nothing was queued';
    my $st = $srv->stat('SMTP.Messages');
    is $st->{'SMTP.Messages.Rejected'}, 1, 'counted as rejected';
    $srv->stop_ok;
}

# -- unrecognized: a plugin may take a command --------------------------------------
{
    my $srv = server(<<'EOT');
[unrecognized]
match = XYZZY
verdict = OK
code = 250
text = nothing happens
EOT
    my $c = session($srv);
    my $r = $c->cmd('XYZZY');
    is $r->{code}, 250, 'a plugin answers an unknown command';
    like $r->{text}, qr/nothing happens/, '... with its text';
    $r = $c->cmd('PLUGH');
    is $r->{code}, 500, 'other unknown commands: 500';
    is $r->{enhanced}, '5.5.1', '... 5.5.1';
    my $st = $srv->stat('SMTP.Command');
    is $st->{'SMTP.Command.Invalid'}, 1, 'only the unanswered one counts as invalid';
    $srv->stop_ok;
}

done_testing;
