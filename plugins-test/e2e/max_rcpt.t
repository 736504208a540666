#!/usr/bin/perl
# max_rcpt.t - the max_rcpt plugin against the real host: the first N
# recipients go on, the (N+1)th and later get 552 5.5.3 (or 452 4.5.3 with
# code = 452); the count is per transaction and counts accepted recipients
# only; the default is 100; bad values fail -t (docs/plugins/max_rcpt.md).
use strict;
use warnings;
use FindBin;
use lib "$FindBin::Bin/../lib";
use Test::More;
use Upesi::Test;

deadline(120);

sub server {
    my ($ini) = @_;
    my $srv = Upesi::Test->new(plugins => ['max_rcpt', 'queue_spool'],
                               smtp => { error_limit => 1000 },
                               defined $ini ? (ini => { 'max_rcpt.ini' => $ini }) : ());
    $srv->start;
    return $srv;
}

sub code_of { my ($r) = @_; $r ? "$r->{code} " . ($r->{enhanced} // '') : 'no reply' }

# -- max = 3, code = 552 (the default code) --------------------------------------
{
    my $srv = server("max = 3\n");
    my $c = $srv->client;
    $c->cmd('EHLO client.test');
    $c->cmd('MAIL FROM:<a@example.org>');
    is $c->cmd("RCPT TO:<u$_\@example.com>")->{code}, 250, "max = 3: recipient $_ accepted" for 1 .. 3;
    my $r = $c->cmd('RCPT TO:<u4@example.com>');
    is code_of($r), '552 5.5.3', 'max = 3: the 4th recipient: 552 5.5.3';
    like $r->{text}, qr/Too many recipients/, 'the reply says "Too many recipients"';
    is code_of($c->cmd('RCPT TO:<u5@example.com>')), '552 5.5.3', 'max = 3: the 5th too';
    is $c->cmd('DATA')->{code}, 354, 'DATA with the first three';
    is $c->send_data("Subject: three\r\n\r\nhi")->{code}, 250, 'the message is accepted';
    my @m = $srv->wait_spool(1);
    is_deeply $m[0]{recipients}, ['u1@example.com', 'u2@example.com', 'u3@example.com'],
        'the spool holds exactly the first three recipients';

    # a new transaction counts from zero
    $c->cmd('MAIL FROM:<a@example.org>');
    is $c->cmd("RCPT TO:<v$_\@example.com>")->{code}, 250, "next transaction: recipient $_ accepted" for 1 .. 3;
    is $c->cmd('RCPT TO:<v4@example.com>')->{code}, 552, 'next transaction: the 4th refused';
    $c->cmd('RSET');
    $c->cmd('MAIL FROM:<a@example.org>');
    # refused recipients do not count: the host refuses relaying to other.org
    is $c->cmd("RCPT TO:<x$_\@other.org>")->{code}, 550, "a refused recipient ($_)" for 1 .. 4;
    is $c->cmd("RCPT TO:<w$_\@example.com>")->{code}, 250, "after refusals: recipient $_ accepted" for 1 .. 3;
    is $c->cmd('RCPT TO:<w4@example.com>')->{code}, 552, 'only accepted recipients count';
    my $st = $srv->stat('SMTP.MaxRcpt');
    is $st && $st->{'SMTP.MaxRcpt.Refused'}, 4, 'SMTP.MaxRcpt.Refused counts the refusals' or diag explain $st;
    $srv->stop_ok('max = 3');
}

# -- code = 452 ------------------------------------------------------------------
{
    my $srv = server("max = 1\ncode = 452\n");
    my $c = $srv->client;
    $c->cmd('EHLO client.test');
    $c->cmd('MAIL FROM:<a@example.org>');
    is $c->cmd('RCPT TO:<u1@example.com>')->{code}, 250, 'max = 1: the first recipient accepted';
    my $r = $c->cmd('RCPT TO:<u2@example.com>');
    is code_of($r), '452 4.5.3', 'code = 452: 452 4.5.3';
    like $r->{text}, qr/Too many recipients/, 'code = 452: "Too many recipients"';
    $srv->stop_ok('code = 452');
}

# -- explicit code = 552 and the shipped default (max = 100) -----------------------
{
    my $srv = server("code = 552\n");
    my $c = $srv->client;
    $c->cmd('EHLO client.test');
    $c->cmd('MAIL FROM:<a@example.org>');
    my $sent = join '', map { "RCPT TO:<u$_\@example.com>\r\n" } 1 .. 101;
    $c->send_raw($sent);
    my @r = $c->read_replies(101);
    is scalar(grep { $_->{code} == 250 } @r[0 .. 99]), 100, 'default max: 100 recipients accepted (pipelined)';
    is code_of($r[100]), '552 5.5.3', 'default max: the 101st refused with 552 5.5.3';
    $srv->stop_ok('default max');
}
{
    my $s = Upesi::Test->new(plugins => ['max_rcpt', 'queue_spool']);
    my ($exit, $out) = upesi_check($s->conf);
    is $exit, 0, 'the shipped conf/max_rcpt.ini passes -t' or diag $out;
}

# -- bad settings ----------------------------------------------------------------
for my $bad (['max = 0', qr/max: expected a whole number from 1 to 1000000, got '0'/],
             ['max = lots', qr/max: expected a whole number from 1 to 1000000, got 'lots'/],
             ['max = 10x', qr/max: expected a whole number from 1 to 1000000, got '10x'/],
             ['code = 550', qr/code: expected 552 or 452, got '550'/],
             ['limit = 5', qr/unknown key 'limit'$/m]) {
    my $s = Upesi::Test->new(plugins => ['max_rcpt', 'queue_spool'],
                             ini => { 'max_rcpt.ini' => "max = 5\n$bad->[0]\n" });
    my ($exit, $out) = upesi_check($s->conf);
    isnt $exit, 0, "-t refuses '$bad->[0]'";
    like $out, qr/max_rcpt\.ini:2: .*$bad->[1]/, '  with max_rcpt.ini:2 and the reason' or diag $out;
}

done_testing;
