#!/usr/bin/perl
# xclient.t - Postfix's XCLIENT from hosts in xclient_hosts only.
#
# 127.0.0.1 is in xclient_hosts, 127.0.0.2 is not (the client binds its
# source address; both are loopback).  The allowed host sees XCLIENT in
# EHLO, and after XCLIENT the session starts again with a new 220: the
# plugins (private_lists blacklists 192.0.2.66), the spool envelope and
# the Received field see the new client; LOGIN makes it authenticated.
# The other host does not see it offered and gets 550 5.7.0, counted as
# an invalid command.
use strict;
use warnings;
use FindBin;
use lib "$FindBin::Bin/../lib";
use Test::More;
use Upesi::Test;

deadline(60);

my $srv = Upesi::Test->new(
    smtp    => { local_domains => 'example.com', xclient_hosts => '127.0.0.1' },
    plugins => ['private_lists', 'queue_spool'],
    ini     => { 'private_lists.ini' => "[blacklist]\nhosts = 192.0.2.66\n"
                                      . "action = reject\nmessage = Host %s is blacklisted here\n" });
$srv->start;

# allowed
my $c = $srv->client;
my $r = $c->cmd('EHLO front.test');
like $r->{text}, qr/^XCLIENT NAME ADDR PORT PROTO HELO LOGIN$/m, 'allowed host: XCLIENT offered in EHLO';
$r = $c->cmd('XCLIENT ADDR=192.0.2.7 PORT=4242 NAME=mx.client.test HELO=mx.client.test PROTO=ESMTP');
is "$r->{code}", '220', 'XCLIENT: a new greeting' or diag $c->{transcript};
like $c->cmd('EHLO mx.client.test')->{text}, qr/Hello mx\.client\.test \[192\.0\.2\.7\]/,
    'after XCLIENT the session is the new client\'s';
is $c->cmd('MAIL FROM:<a@client.test>')->{code}, 250, 'MAIL';
is $c->cmd('RCPT TO:<bob@example.com>')->{code}, 250, 'RCPT';
is $c->cmd('DATA')->{code}, 354, 'DATA';
$c->send_raw("Subject: xclient\r\n\r\nhi\r\n.\r\n");
is $c->read_reply->{code}, 250, 'queued';
my @m = $srv->wait_spool(1);
my ($rcv) = strip_received($m[0]{message} // '');
like $rcv, qr/from mx\.client\.test \(unknown \[192\.0\.2\.7\]\)/, 'Received names the XCLIENT client';
is $m[0]{env}{'Client-IP'}, '192.0.2.7', 'the spool envelope too';
is $m[0]{env}{'Client-Port'}, '4242', 'and its port';
is $m[0]{env}{'Client-Name'}, 'mx.client.test', 'and its NAME';

# the plugins decide on the new address
$r = $c->cmd('XCLIENT ADDR=192.0.2.66');
is $r->{code}, 220, 'a second XCLIENT from the same (real) peer: 220';
$c->cmd('EHLO x.test');
$r = $c->cmd('MAIL FROM:<a@client.test>');
is "$r->{code} $r->{enhanced}", '554 5.7.1', 'private_lists refuses the XCLIENT address';
like $r->{text}, qr/Host 192\.0\.2\.66 is blacklisted/, 'named in the text';
$c->cmd('RSET');

# LOGIN, IPv6 with the IPV6: prefix, xtext
$r = $c->cmd('XCLIENT ADDR=IPV6:2001:db8::7 LOGIN=jo+2Bhn HELO=[UNAVAILABLE]');
is $r->{code}, 220, 'XCLIENT with LOGIN and an IPv6 address';
$r = $c->cmd('EHLO six.test');
like $r->{text}, qr/\[2001:db8::7\]/, 'IPv6 client';
is $c->cmd('MAIL FROM:<a@client.test>')->{code}, 250, 'MAIL';
is $c->cmd('RCPT TO:<bob@example.com>')->{code}, 250, 'RCPT';
is $c->cmd('DATA')->{code}, 354, 'DATA';
$c->send_raw("Subject: login\r\n\r\nhi\r\n.\r\n");
is $c->read_reply->{code}, 250, 'queued';
@m = $srv->wait_spool(2);
($rcv) = strip_received($m[-1]{message} // '');
like $rcv, qr/with ESMTPA /, 'LOGIN: the session is authenticated (ESMTPA)';
is $m[-1]{env}{Auth}, 'jo+hn', 'as the LOGIN user, xtext decoded';
ok $srv->wait_log(qr/XCLIENT from 127\.0\.0\.1: client 2001:db8::7 .*login jo\+hn/), 'xtext decoded (jo+hn), logged';

# bad input changes nothing
$r = $c->cmd('XCLIENT ADDR=999.1.1.1');
is "$r->{code} $r->{enhanced}", '501 5.5.4', 'bad ADDR: 501 5.5.4';
$r = $c->cmd('XCLIENT FOO=bar');
is $r->{code}, 501, 'unknown attribute: 501';
$c->cmd('MAIL FROM:<a@client.test>');
$r = $c->cmd('XCLIENT ADDR=192.0.2.8');
is $r->{code}, 503, 'inside a transaction: 503';
$c->cmd('QUIT');

# not allowed
my $before = $srv->stat('SMTP.Command.Invalid')->{'SMTP.Command.Invalid'} // 0;
$c = $srv->client(local => '127.0.0.2');
$r = $c->cmd('EHLO other.test');
unlike $r->{text}, qr/XCLIENT/, 'other host: XCLIENT not offered';
$r = $c->cmd('XCLIENT ADDR=192.0.2.7');
is "$r->{code} $r->{enhanced}", '550 5.7.0', 'other host: 550 5.7.0';
like $c->cmd('EHLO other.test')->{text}, qr/\[127\.0\.0\.2\]/, 'other host: still itself';
$c->cmd('QUIT');
my $after = $srv->stat('SMTP.Command.Invalid')->{'SMTP.Command.Invalid'};
is $after - $before, 1, 'counted in SMTP.Command.Invalid';

$srv->stop_ok;
done_testing;
