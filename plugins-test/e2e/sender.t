#!/usr/bin/perl
# sender.t - the sender plugin against the real host
# (docs/plugins/sender.md): the allow and deny lists (554 5.7.1 at MAIL
# FROM; Allow wins; the null sender always passes; bad items fail -t), and
# verify_domain against a real dnsmasq on a free loopback port, with a
# silent UDP socket for lookups that time out and a responder that answers
# SERVFAIL: MX, the implicit MX (A, then AAAA), NXDOMAIN and names without
# MX/A/AAAA (553 5.1.8), a null MX (550 5.7.27), timeouts and SERVFAIL
# (451 4.4.3), the plugin's own timeout, domain literals, the null sender,
# a client that leaves mid-lookup, the statistics.
use strict;
use warnings;
use FindBin;
use lib "$FindBin::Bin/../lib";
use Test::More;
use Time::HiRes qw(sleep time);
use Upesi::Test;
use Upesi::Test::DNS;

deadline(180);

plan skip_all => 'dnsmasq not installed' unless Upesi::Test::DNS::available();

# -- the DNS side: dnsmasq; slow.test never answers, fail.test answers SERVFAIL
my $dns = Upesi::Test::DNS->start(
    silent => ['slow.test'],
    servfail => ['fail.test'],
    records => [
        mx => 'mx.test,mail.mx.test,10',
        host => 'mail.mx.test,127.0.0.60',
        host => 'aonly.test,127.0.0.61',
        host => 'v6only.test,fd00::61',
        txt => 'txtonly.test,no mail here',
        mx => 'nullmx.test,.,0',
        mx => 'slowmx.test,mx.slow.test,10',
    ]);

sub server {
    my ($ini, %smtp) = @_;
    my $srv = Upesi::Test->new(plugins => ['sender', 'queue_spool'],
                               smtp => { error_limit => 1000,
                                         dns_servers => $dns->server,
                                         dns_timeout => 1, plugin_timeout => 10,
                                         %smtp },
                               ini => { 'sender.ini' => $ini });
    $srv->start;
    return $srv;
}

sub mail {
    my ($c, $from) = @_;
    my $r = $c->cmd("MAIL FROM:<$from>");
    $c->cmd('RSET');
    return $r ? "$r->{code} " . ($r->{enhanced} // '') : 'no reply';
}

# -- allow and deny lists -------------------------------------------------------
{
    my $srv = server("deny = spammer\@example.net, *\@junk.example, *.bulk.example\n" .
                     "deny = \@blocked.example\n");
    my $c = $srv->client;
    $c->cmd('EHLO client.test');
    my $r = $c->cmd('MAIL FROM:<spammer@example.net>');
    is "$r->{code} $r->{enhanced}", '554 5.7.1', 'deny: a listed address: 554 5.7.1';
    like $r->{text}, qr/Mail from <spammer\@example\.net> rejected for policy reasons/, '  the Domino text';
    $c->cmd('RSET');
    is mail($c, 'SPAMMER@Example.NET'), '554 5.7.1', 'deny: case-insensitive';
    is mail($c, 'friend@example.net'), '250 2.1.0', 'deny: another address at the domain is fine';
    is mail($c, 'anyone@junk.example'), '554 5.7.1', 'deny: *@domain';
    is mail($c, 'anyone@blocked.example'), '554 5.7.1', 'deny: @domain';
    is mail($c, 'x@mx.bulk.example'), '554 5.7.1', 'deny: *.domain covers subdomains';
    is mail($c, 'x@bulk.example'), '250 2.1.0', 'deny: *.domain is not the domain itself';
    is mail($c, ''), '250 2.1.0', 'the null sender is always allowed';
    is mail($c, 'nobody@nosuch.test'), '250 2.1.0', 'verify_domain = 0 (default): no DNS check';
    my $st = $srv->stat('SMTP.Sender');
    is $st && $st->{'SMTP.Sender.Denied'}, 5, 'SMTP.Sender.Denied counts refusals' or diag explain $st;
    my $dns = $srv->stat('Upesi.DNS');
    ok !($dns && $dns->{'Upesi.DNS.Lookups'}), 'verify_domain = 0: no DNS lookup at all';
    $srv->stop_ok('deny');
}
{
    my $srv = server("allow = example.org, boss\@partner.example\ndeny = mallory\@example.org\n");
    my $c = $srv->client;
    $c->cmd('EHLO client.test');
    is mail($c, 'alice@example.org'), '250 2.1.0', 'allow: a listed domain';
    is mail($c, 'boss@partner.example'), '250 2.1.0', 'allow: a listed address';
    is mail($c, 'clerk@partner.example'), '554 5.7.1', 'allow: anyone else is refused';
    is mail($c, 'mallory@example.org'), '250 2.1.0', 'allow and deny both: Allow wins';
    is mail($c, ''), '250 2.1.0', 'allow: the null sender still passes';
    $srv->stop_ok('allow');
}

# -- verify_domain ----------------------------------------------------------------
{
    my $srv = server("verify_domain = 1\ntimeout = 30\ndeny = *\@denied.test\n");
    my $c = $srv->client;
    $c->cmd('EHLO client.test');
    is mail($c, 'a@mx.test'), '250 2.1.0', 'an MX record: accepted';
    is mail($c, 'a@MX.Test'), '250 2.1.0', 'any case';
    is mail($c, 'a@aonly.test'), '250 2.1.0', 'no MX but an A record (implicit MX): accepted';
    is mail($c, 'a@v6only.test'), '250 2.1.0', 'no MX, no A, an AAAA record: accepted';
    my $r = $c->cmd('MAIL FROM:<someone@nosuch.test>');
    is "$r->{code} $r->{enhanced}", '553 5.1.8', 'NXDOMAIN: 553 5.1.8';
    is $r->{text}, '5.1.8 Sender address <someone@nosuch.test> rejected: Domain not found',
        '  Sender address <addr> rejected: Domain not found';
    $c->cmd('RSET');
    is mail($c, 'a@txtonly.test'), '553 5.1.8', 'a name without MX, A or AAAA: 553 5.1.8';
    is mail($c, 'a@mail.nosuch.test'), '553 5.1.8', 'a subdomain of nothing: 553 5.1.8';
    $r = $c->cmd('MAIL FROM:<a@nullmx.test>');
    is $r && "$r->{code} $r->{enhanced}", '550 5.7.27', 'a null MX (RFC 7505): 550 5.7.27'
        or diag explain $r;
    like $r && $r->{text}, qr/Domain does not accept mail/, '  says why';
    $c->cmd('RSET');
    is mail($c, 'a@[127.0.0.1]'), '250 2.1.0', 'a domain literal is not looked up';
    is mail($c, ''), '250 2.1.0', 'the null sender is not looked up';
    is mail($c, 'x@denied.test'), '554 5.7.1', 'the deny list comes first: 554, not 553';

    my $t0 = time;
    $r = $c->cmd('MAIL FROM:<a@host.slow.test>');
    my $took = time - $t0;
    is "$r->{code} $r->{enhanced}", '451 4.4.3', 'a lookup that times out: 451 4.4.3';
    is $r->{text}, '4.4.3 Sender domain lookup failed, try again later', '  Sender domain lookup failed, try again later';
    cmp_ok $took, '<', 5 * $SLOW, sprintf('  after dns_timeout (1 s), not timeout (30 s): %.1f s', $took);
    $c->cmd('RSET');
    is mail($c, 'a@slowmx.test'), '250 2.1.0', 'an MX whose host does not resolve still is an MX';
    is mail($c, 'a@x.fail.test'), '451 4.4.3', 'SERVFAIL: 451 4.4.3';
    is mail($c, 'a@mx.test'), '250 2.1.0', 'the session goes on';
    $c->close;

    # pipelined: MAIL and RCPT in one write while the lookup is pending
    $c = $srv->client;
    $c->cmd('EHLO client.test');
    $c->send_raw("MAIL FROM:<p\@aonly.test>\r\nRCPT TO:<bob\@example.com>\r\n");
    my @r = $c->read_replies(2);
    is join(' ', map { $_->{code} } @r), '250 250', 'pipelined MAIL and RCPT wait for the lookup';
    $c->close;

    # a client that leaves while its lookup is pending
    my $gone = $srv->client;
    $gone->cmd('EHLO client.test');
    $gone->send_line('MAIL FROM:<a@other.slow.test>');
    $gone->close;
    sleep 1.5 * $SLOW;

    # a whole message with swaks
    my $sw = $srv->swaks_send('--from', 'sender@aonly.test', '--to', 'bob@example.com');
    is $sw->{exit}, 0, 'swaks: a message from a verified domain is accepted' or diag $sw->{out};
    $sw = $srv->swaks_send('--from', 'sender@nosuch.test', '--to', 'bob@example.com');
    like $sw->{out}, qr/<\*\* +553 5\.1\.8 Sender address <sender\@nosuch\.test> rejected: Domain not found/,
        'swaks: 553 5.1.8 at MAIL FROM';

    my $st = $srv->stat('SMTP.Sender');
    is $st->{'SMTP.Sender.DomainVerified'}, 8, 'SMTP.Sender.DomainVerified' or diag explain $st;
    is $st->{'SMTP.Sender.DomainNotFound'}, 4, 'SMTP.Sender.DomainNotFound';
    is $st->{'SMTP.Sender.DomainNullMX'}, 1, 'SMTP.Sender.DomainNullMX';
    is $st->{'SMTP.Sender.DomainLookupFailed'}, 2, 'SMTP.Sender.DomainLookupFailed';
    is $st->{'SMTP.Sender.Denied'}, 1, 'SMTP.Sender.Denied';
    ok $srv->running, 'the server is still running';
    $srv->stop_ok('verify_domain');
}
{
    # the plugin's own timeout, shorter than dns_timeout
    my $srv = server("verify_domain = 1\ntimeout = 1\n", dns_timeout => 4);
    my $c = $srv->client;
    $c->cmd('EHLO client.test');
    my $t0 = time;
    my $r = $c->cmd('MAIL FROM:<a@late.slow.test>');
    my $took = time - $t0;
    is "$r->{code} $r->{enhanced}", '451 4.4.3', 'timeout = 1: 451 4.4.3';
    cmp_ok $took, '<', 3.5 * $SLOW, sprintf('  after about 1 s (dns_timeout is 4 s): %.1f s', $took);
    cmp_ok $took, '>=', 0.9, '  not before it';
    ok $srv->wait_log(qr/lookup of late\.slow\.test failed \(no answer within timeout = 1 s\)/),
        '  the log names the timeout';
    is mail($c, 'a@mx.test'), '250 2.1.0', 'then a good domain passes';
    $srv->stop_ok('timeout = 1');
}
{
    # the host gives up first (plugin_timeout): the plugin's on_cancel
    # stops its timer and its query, a late answer is harmless
    my $srv = server("verify_domain = 1\ntimeout = 3\n", dns_timeout => 2, plugin_timeout => 1);
    my $c = $srv->client;
    $c->cmd('EHLO client.test');
    my $r = $c->cmd('MAIL FROM:<a@cancel.slow.test>');
    is "$r->{code} $r->{enhanced}", '451 4.3.0', 'plugin_timeout before timeout: the host\'s 451 4.3.0';
    sleep 3 * $SLOW;
    is mail($c, 'a@mx.test'), '250 2.1.0', '  and the session goes on after the cancelled lookup would have ended';
    $srv->stop_ok('plugin_timeout first');
}
{
    # verify_domain = 0 is the default and may be said
    my $srv = server("verify_domain = 0\ntimeout = 0.5\n");
    my $c = $srv->client;
    $c->cmd('EHLO client.test');
    is mail($c, 'a@nosuch.test'), '250 2.1.0', 'verify_domain = 0: an unknown domain passes';
    $srv->stop_ok('verify_domain = 0');
}

# -- bad settings -------------------------------------------------------------------
for my $bad (['deny = a@b@c', qr/deny: 'a\@b\@c' is not an address or domain/],
             ['allow = <x@y>', qr/allow: '<x\@y>'/],
             ['verify_domain = 2', qr/verify_domain: expected a boolean \(0\/1, yes\/no, on\/off, true\/false\), got '2'/],
             ['timeout = 0', qr/timeout: expected a duration from 0\.1 to 3600 seconds.*, got '0'/],
             ['timeout = 5x', qr/timeout: expected a duration from 0\.1 to 3600 seconds.*, got '5x'/],
             ['timeout = 4000', qr/timeout: expected a duration from 0\.1 to 3600 seconds.*, got '4000'/],
             ['block = x', qr/unknown key 'block'/]) {
    my $s = Upesi::Test->new(plugins => ['sender', 'queue_spool'],
                             ini => { 'sender.ini' => "deny = x\@y.example\n$bad->[0]\n" });
    my ($exit, $out) = upesi_check($s->conf);
    isnt $exit, 0, "-t refuses '$bad->[0]'";
    like $out, qr/sender\.ini:2: .*$bad->[1]/, '  with sender.ini:2' or diag $out;
}
{
    my $s = Upesi::Test->new(plugins => ['sender', 'queue_spool'],
                             ini => { 'sender.ini' => "verify_domain = 1\ntimeout = 2.5\n" });
    my ($exit, $out) = upesi_check($s->conf);
    is $exit, 0, 'verify_domain = 1, timeout = 2.5 pass -t' or diag $out;
}
{
    # one vocabulary: the words every other ini takes, and a duration unit
    my $s = Upesi::Test->new(plugins => ['sender', 'queue_spool'],
                             ini => { 'sender.ini' => "verify_domain = yes
timeout = 1500ms
" });
    my ($exit, $out) = upesi_check($s->conf);
    is $exit, 0, 'verify_domain = yes, timeout = 1500ms pass -t' or diag $out;
}

done_testing;
