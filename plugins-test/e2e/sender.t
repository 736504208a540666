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
use IO::Socket::IP;
use POSIX qw(WNOHANG);
use Socket qw(SOCK_DGRAM);
use Test::More;
use Time::HiRes qw(sleep time);
use Upesi::Test;

deadline(180);

# -- the DNS side: dnsmasq on a free loopback port, a silent UDP socket (its
# zones time out) and a responder that answers SERVFAIL to everything ------

my $DNSMASQ = '/usr/sbin/dnsmasq';
plan skip_all => 'dnsmasq not installed' unless -x $DNSMASQ;

my $silent = IO::Socket::IP->new(LocalHost => '127.0.0.1', LocalPort => 0,
                                 Proto => 'udp', Type => SOCK_DGRAM)
    or die "silent socket: $@";
my $silent_port = $silent->sockport;

my $servfail = IO::Socket::IP->new(LocalHost => '127.0.0.1', LocalPort => 0,
                                   Proto => 'udp', Type => SOCK_DGRAM)
    or die "servfail socket: $@";
my $servfail_port = $servfail->sockport;
my $servfail_pid = fork // die "fork: $!";
if ($servfail_pid == 0) {
    $SIG{ALRM} = 'DEFAULT';
    $SIG{TERM} = sub { POSIX::_exit(0) };
    alarm 0;
    while (1) {
        my $peer = $servfail->recv(my $q, 4096) // next;
        next if length $q < 17;
        my $end = 12;
        $end += 1 + ord(substr $q, $end, 1) while $end < length $q && ord(substr $q, $end, 1);
        my $a = substr($q, 0, 2) . "\x81\x82" . substr($q, 4, 2) . "\0" x 6
              . substr($q, 12, $end + 5 - 12);
        $servfail->send($a, 0, $peer);
    }
}
close $servfail;

sub free_udp_port {
    my $s = IO::Socket::IP->new(LocalHost => '127.0.0.1', LocalPort => 0,
                                Proto => 'udp', Type => SOCK_DGRAM)
        or die "udp port: $@";
    my $p = $s->sockport;
    close $s;
    return $p;
}

my ($dns_port, $dns_pid);
my $dns_log = "/tmp/upesi-dns-$$.log";
sub start_dnsmasq {
    my (@records) = @_;
    $dns_port = free_udp_port();
    $dns_pid = fork // die "fork: $!";
    if ($dns_pid == 0) {
        open STDIN, '<', '/dev/null';
        open STDOUT, '>', '/dev/null';
        open STDERR, '>', $dns_log;
        { exec $DNSMASQ, '--keep-in-foreground', '--conf-file=/dev/null',
            '--no-resolv', '--no-hosts', '--pid-file=', '--user=root',
            '--listen-address=127.0.0.1', '--bind-interfaces', "--port=$dns_port",
            '--log-facility=-', '--local=/test/', '--local=/in-addr.arpa/',
            '--local=/ip6.arpa/', "--server=/slow.test/127.0.0.1#$silent_port",
            "--server=/fail.test/127.0.0.1#$servfail_port", @records };
        POSIX::_exit(127);
    }
    my $want = sprintf('0100007F:%04X', $dns_port);
    my $end = time + 10 * $SLOW;
    while (time < $end) {
        if (waitpid($dns_pid, WNOHANG) == $dns_pid) {
            $dns_pid = undef;
            return 0;
        }
        open my $fh, '<', '/proc/net/udp' or return 0;
        return 1 if grep { (split)[1] eq $want } <$fh>;
        sleep 0.05;
    }
    return 0;
}
END {
    my $st = $?;
    if ($dns_pid) { kill 'TERM', $dns_pid; waitpid($dns_pid, 0) }
    if ($servfail_pid) { kill 'TERM', $servfail_pid; waitpid($servfail_pid, 0) }
    unlink $dns_log;
    $? = $st;
}
sub dnsmasq {
    my (@records) = @_;
    for (1 .. 3) {
        return if start_dnsmasq(@records);
        if ($dns_pid) { kill 'TERM', $dns_pid; waitpid($dns_pid, 0); $dns_pid = undef }
    }
    BAIL_OUT("dnsmasq did not start: " . (slurp($dns_log) // ''));
}

# A raw client whose connection comes from a chosen 127.0.0.N address.
sub client_from {
    my ($srv, $ip) = @_;
    my $sock = IO::Socket::IP->new(PeerHost => '127.0.0.1', PeerPort => $srv->port,
                                   LocalHost => $ip, Proto => 'tcp',
                                   Timeout => 10 * $SLOW)
        or die "cannot connect from $ip: $@";
    binmode $sock;
    $sock->autoflush(1);
    my $c = bless { sock => $sock, buf => '', eof => 0, error => undef,
                    timeout => 10 * $SLOW, transcript => '' },
                  'Upesi::Test::Client';
    $c->{greeting} = $c->read_reply;
    push @{ $srv->{clients} }, $c;
    return $c;
}

dnsmasq('--mx-host=mx.test,mail.mx.test,10',
        '--host-record=mail.mx.test,127.0.0.60',
        '--host-record=aonly.test,127.0.0.61',
        '--host-record=v6only.test,fd00::61',
        '--txt-record=txtonly.test,no mail here',
        '--mx-host=nullmx.test,.,0',
        '--mx-host=slowmx.test,mx.slow.test,10');

sub server {
    my ($ini, %smtp) = @_;
    my $srv = Upesi::Test->new(plugins => ['sender', 'queue_spool'],
                               smtp => { error_limit => 1000,
                                         dns_servers => "127.0.0.1:$dns_port",
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
             ['verify_domain = 2', qr/verify_domain: '2' is not 0 or 1/],
             ['verify_domain = yes', qr/verify_domain: 'yes' is not 0 or 1/],
             ['timeout = 0', qr/timeout: '0' is not a number of seconds/],
             ['timeout = 5s', qr/timeout: '5s' is not a number of seconds/],
             ['timeout = 4000', qr/timeout: '4000'/],
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

done_testing;
