#!/usr/bin/perl
# early_talker.t - early_talker_action: a client that talks before the
# greeting (greeting_delay, postscreen's pregreet test) or pipelines without
# PIPELINING is noted and counted always; "reject" refuses every MAIL of the
# session with 554 5.5.1 (Domino-style, like a connect DENY); "drop" answers
# 554 5.5.1 and closes at once; "ignore" lets it go on.
use strict;
use warnings;
use FindBin;
use lib "$FindBin::Bin/../lib";
use Test::More;
use Upesi::Test;

deadline(90);

for my $action (qw(ignore reject drop)) {
    my $srv = Upesi::Test->new(smtp => { greeting_delay => 1,
                                         early_talker_action => $action,
                                         local_domains => 'example.com' });
    $srv->start;
    my $c = $srv->client(greeting => 0);
    $c->send_line('EHLO hasty.test');
    my $g = $c->read_reply(10);
    if ($action eq 'drop') {
        is $g && $g->{code}, 554, 'drop: the early talker gets 554';
        is $g && $g->{enhanced}, '5.5.1', '... 5.5.1';
        ok $c->closed(5), '... and is disconnected';
    } else {
        is $g && $g->{code}, 220, "$action: the greeting still comes";
        is $c->read_reply(5)->{code}, 250, "$action: EHLO answered";
        my $r = $c->cmd('MAIL FROM:<a@example.org>');
        if ($action eq 'reject') {
            is $r->{code}, 554, 'reject: MAIL refused with 554';
            like $r->{raw}, qr/^554 5\.5\.1 Protocol error: talked out of turn/m,
                '... saying why';
            is $c->cmd('MAIL FROM:<b@example.org>')->{code}, 554,
                '... and every later MAIL too';
        } else {
            is $r->{code}, 250, 'ignore: MAIL accepted';
        }
    }
    my $st = $srv->stat('SMTP.Sessions.EarlyTalker');
    is $st->{'SMTP.Sessions.EarlyTalker'}, 1, "$action: counted";
    $srv->stop_ok;
}

# pipelining = 0 and the client sends ahead: reject
{
    my $srv = Upesi::Test->new(smtp => { pipelining => 0,
                                         early_talker_action => 'reject' });
    $srv->start;
    my $c = $srv->client;
    $c->send_raw("EHLO a.test\r\nNOOP\r\n");
    is $c->read_reply(5)->{code}, 250, 'pipelined EHLO answered';
    is $c->read_reply(5)->{code}, 250, 'pipelined NOOP answered';
    is $c->cmd('MAIL FROM:<a@example.org>')->{code}, 554,
        'pipelining without PIPELINING: MAIL refused';
    $srv->stop_ok;
}

{
    my $srv = Upesi::Test->new(smtp => { early_talker_action => 'sometimes' });
    my ($exit, $out) = upesi_check($srv->conf);
    isnt $exit, 0, 'a bad early_talker_action is refused';
    like $out, qr/smtp\.ini:\d+: early_talker_action: expected one of ignore, reject, drop, got 'sometimes'/, '... with file:line';
}

done_testing;
