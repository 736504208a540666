#!/usr/bin/perl
# relay.t - inbound relay controls against the real host, clients on
# 127.0.0.N: no open relay without the plugin or with empty lists;
# allow_hosts by address, CIDR and wildcard; allow_domains exact and
# *.subdomain; deny_hosts and deny_domains; deny_wins 0 and 1 on conflicts;
# the "relay.allowed" connection note; bad list items fail -t with
# relay.ini:line; host-name items against a real dnsmasq on a free
# loopback port (forward-confirmed names, no PTR, a PTR lookup that times
# out: 451 4.4.3 when the name could change the decision), looked up at
# connect or, when an earlier plugin's OK skipped relay, at RCPT
# (docs/plugins/relay.md).
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

# -- the DNS side: dnsmasq; 127.0.0.23's PTR never answers
my $dns = Upesi::Test::DNS->start(
    silent => ['23.0.0.127.in-addr.arpa'],
    records => [
        host => 'relay20.trusted.test,127.0.0.20',
        host => 'bad26.evil.test,127.0.0.26',
        ptr => '27.0.0.127.in-addr.arpa,fake.trusted.test',
        host => 'fake.trusted.test,127.0.0.99',
    ]);

sub server {
    my ($ini, @extra) = @_;
    my %files;
    $files{'relay.ini'} = $ini if defined $ini;
    my $srv = Upesi::Test->new(plugins => ['relay', @extra, 'queue_spool'],
                               smtp => { error_limit => 1000,
                                         dns_servers => $dns->server,
                                         dns_timeout => 1, plugin_timeout => 10 },
                               ini => \%files);
    $srv->start;
    return $srv;
}

# rcpt(SERVER, FROM_IP, RECIPIENT) -> "code enhanced" of the RCPT reply
sub rcpt {
    my ($srv, $ip, $to) = @_;
    my $c = $srv->client(local => $ip);
    $c->cmd('EHLO client.test');
    $c->cmd('MAIL FROM:<sender@example.org>');
    my $r = $c->cmd("RCPT TO:<$to>");
    $c->cmd('QUIT');
    $c->close;
    return $r ? "$r->{code} " . ($r->{enhanced} // '') : 'no reply';
}

# -- no open relay: without the plugin, and with the shipped (empty) lists ------
{
    my $srv = Upesi::Test->new(plugins => ['queue_spool']);
    $srv->start;
    for my $ip (qw(127.0.0.1 127.0.0.2 127.0.0.77)) {
        is rcpt($srv, $ip, 'someone@other.org'), '550 5.7.1', "no relay plugin: $ip cannot relay";
    }
    is rcpt($srv, '127.0.0.2', 'bob@example.com'), '250 2.1.5', 'no relay plugin: local recipients accepted';
    my $sw = swaks($srv->port, '--local-interface', '127.0.0.3', '--to', 'victim@other.org',
                   '--from', 'spammer@example.net');
    like $sw->{out}, qr/<\*\* +550 5\.7\.1/, 'swaks from 127.0.0.3: 550 5.7.1 at RCPT';
    my @queued = $srv->spool;
    is scalar @queued, 0, 'nothing was queued';
    $srv->stop_ok('no relay plugin');
}
{
    my $srv = server();         # conf/relay.ini as shipped
    for my $ip (qw(127.0.0.1 127.0.0.2 127.0.0.200)) {
        is rcpt($srv, $ip, 'someone@other.org'), '550 5.7.1', "shipped relay.ini: $ip cannot relay";
    }
    is rcpt($srv, '127.0.0.1', 'bob@example.com'), '250 2.1.5', 'shipped relay.ini: local recipients accepted';
    my $st = $srv->stat('SMTP.Relay');
    is $st && $st->{'SMTP.Relay.Denied'}, 3, 'SMTP.Relay.Denied counts refused relay attempts' or diag explain $st;
    $srv->stop_ok('shipped relay.ini');
}

# -- allow_hosts --------------------------------------------------------------------
for my $case (['127.0.0.2', ['127.0.0.2'], ['127.0.0.3', '127.0.0.1']],
              ['127.0.0.0/30', ['127.0.0.1', '127.0.0.3'], ['127.0.0.4', '127.0.0.9']],
              ['127.0.0.*', ['127.0.0.1', '127.0.0.250'], []],
              ['127.*.*.9, 10.*', ['127.0.0.9'], ['127.0.0.8']],
              ['[127.0.0.5] 192.0.2.0/24', ['127.0.0.5'], ['127.0.0.6']],
              ['::ffff:127.0.0.7', ['127.0.0.7'], ['127.0.0.6']],
              ['relay20.trusted.test', ['127.0.0.20'], ['127.0.0.21', '127.0.0.27']],
              ['*.trusted.test, 127.0.0.5', ['127.0.0.20', '127.0.0.5'], ['127.0.0.21', '127.0.0.26', '127.0.0.27']],
              ['localhost, *.example.com', [], ['127.0.0.1']]) {
    my ($list, $yes, $no) = @$case;
    my $srv = server("allow_hosts = $list\n");
    is rcpt($srv, $_, 'x@other.org'), '250 2.1.5', "allow_hosts = $list: $_ may relay" for @$yes;
    is rcpt($srv, $_, 'x@other.org'), '550 5.7.1', "allow_hosts = $list: $_ may not" for @$no;
    $srv->stop;
}
{
    my $srv = server("allow_hosts = 127.0.0.2\n");
    my $sw = swaks($srv->port, '--local-interface', '127.0.0.2', '--to', 'far@other.org',
                   '--from', 'me@example.com');
    is $sw->{exit}, 0, 'allow_hosts: swaks from 127.0.0.2 relays a whole message' or diag $sw->{out};
    my @m = $srv->wait_spool(1);
    is_deeply $m[0]{recipients}, ['far@other.org'], 'the relayed message is in the spool';
    $sw = swaks($srv->port, '--local-interface', '127.0.0.4', '--to', 'far@other.org',
                '--from', 'me@example.com');
    isnt $sw->{exit}, 0, 'allow_hosts: swaks from 127.0.0.4 is refused';
    $srv->stop_ok('allow_hosts with swaks');
}

# -- allow_domains ------------------------------------------------------------------
{
    my $srv = server("allow_domains = partner.org, *.partner.net\n");
    is rcpt($srv, '127.0.0.3', 'a@partner.org'), '250 2.1.5', 'allow_domains: exact domain';
    is rcpt($srv, '127.0.0.3', 'a@PARTNER.ORG'), '250 2.1.5', 'allow_domains: case-insensitive';
    is rcpt($srv, '127.0.0.3', 'a@mx.partner.net'), '250 2.1.5', 'allow_domains: *.partner.net covers a subdomain';
    is rcpt($srv, '127.0.0.3', 'a@a.b.partner.net'), '250 2.1.5', 'allow_domains: and deeper ones';
    is rcpt($srv, '127.0.0.3', 'a@partner.net'), '550 5.7.1', 'allow_domains: *.partner.net is not partner.net itself';
    is rcpt($srv, '127.0.0.3', 'a@sub.partner.org'), '550 5.7.1', 'allow_domains: partner.org is not its subdomains';
    is rcpt($srv, '127.0.0.3', 'a@other.org'), '550 5.7.1', 'allow_domains: other domains refused';
    $srv->stop_ok('allow_domains');
}

# -- deny lists and the conflict rule ---------------------------------------------
{
    my $ini = "allow_hosts = 127.0.0.0/24\ndeny_hosts = 127.0.0.3\n" .
              "deny_domains = evil.org\nallow_domains = partner.org\n";
    my $srv = server($ini . "deny_wins = 0\n");
    is rcpt($srv, '127.0.0.3', 'a@other.org'), '250 2.1.5', 'deny_wins = 0: a host in both lists may relay (Allow wins)';
    is rcpt($srv, '127.0.0.2', 'a@evil.org'), '250 2.1.5', 'deny_wins = 0: an allowed host to a denied domain: Allow wins';
    $srv->stop;

    $srv = server($ini . "deny_wins = 1\n");
    my $c = $srv->client(local => '127.0.0.3');
    $c->cmd('EHLO client.test');
    $c->cmd('MAIL FROM:<s@example.org>');
    my $r = $c->cmd('RCPT TO:<a@other.org>');
    is "$r->{code} $r->{enhanced}", '550 5.7.1', 'deny_wins = 1: a host in both lists is refused';
    like $r->{text}, qr/host 127\.0\.0\.3 may not relay/, '  and the reply names the host';
    $r = $c->cmd('RCPT TO:<bob@example.com>');
    is $r->{code}, 250, 'deny_wins = 1: a denied host still reaches local recipients';
    $c->close;
    is rcpt($srv, '127.0.0.2', 'a@other.org'), '250 2.1.5', 'deny_wins = 1: an allowed host not denied may relay';
    $c = $srv->client(local => '127.0.0.2');
    $c->cmd('EHLO client.test');
    $c->cmd('MAIL FROM:<s@example.org>');
    $r = $c->cmd('RCPT TO:<a@evil.org>');
    is "$r->{code} $r->{enhanced}", '550 5.7.1', 'deny_wins = 1: an allowed host to a denied domain is refused';
    like $r->{text}, qr/relaying to evil\.org is not allowed/, '  and the reply names the domain';
    $c->close;
    is rcpt($srv, '127.0.0.3', 'a@partner.org'), '550 5.7.1', 'deny_wins = 1: a denied host to an allowed domain is refused';
    $srv->stop_ok('deny_wins = 1');
}
{
    my $srv = server("deny_hosts = 127.0.0.4\ndeny_domains = *.evil.org\n");
    is rcpt($srv, '127.0.0.4', 'a@other.org'), '550 5.7.1', 'deny_hosts alone: refused';
    is rcpt($srv, '127.0.0.5', 'a@mx.evil.org'), '550 5.7.1', 'deny_domains alone: refused';
    is rcpt($srv, '127.0.0.5', 'a@other.org'), '550 5.7.1', 'neither listed: the host\'s refusal';
    $srv->stop;
}
{
    my $srv = server("allow_domains = *\n");
    is rcpt($srv, '127.0.0.9', 'a@anywhere.example'), '250 2.1.5', 'allow_domains = *: an open relay, as configured';
    $srv->stop;
}

# -- host names: the confirmed name, and lookups that fail -----------------------
{
    my $srv = server("allow_hosts = *.trusted.test\n");
    my $c = $srv->client(local => '127.0.0.23');
    $c->cmd('EHLO client.test');
    $c->cmd('MAIL FROM:<s@example.org>');
    my $r = $c->cmd('RCPT TO:<a@other.org>');
    is "$r->{code} $r->{enhanced}", '451 4.4.3', 'allow_hosts by name, the PTR lookup times out: 451 4.4.3';
    like $r->{text}, qr/cannot look up the name of host 127\.0\.0\.23/, '  names the host';
    is $c->cmd('RCPT TO:<bob@example.com>')->{code}, 250, '  local recipients are not relay\'s business';
    $c->close;
    my $st = $srv->stat('SMTP.Relay');
    is $st->{'SMTP.Relay.Deferred'}, 1, 'SMTP.Relay.Deferred' or diag explain $st;
    $srv->stop_ok('a name lookup that times out');
}
{
    my $ini = "allow_hosts = 127.0.0.0/24\ndeny_hosts = *.evil.test\n";
    my $srv = server($ini . "deny_wins = 1\n");
    is rcpt($srv, '127.0.0.26', 'a@other.org'), '550 5.7.1', 'deny_wins = 1: deny_hosts by name beats allow_hosts by range';
    is rcpt($srv, '127.0.0.21', 'a@other.org'), '250 2.1.5', 'deny_wins = 1: a host without a name is not denied by name';
    is rcpt($srv, '127.0.0.23', 'a@other.org'), '451 4.4.3', 'deny_wins = 1: the name could deny, its lookup timed out: 451';
    $srv->stop;
    $srv = server($ini . "deny_wins = 0\n");
    is rcpt($srv, '127.0.0.26', 'a@other.org'), '250 2.1.5', 'deny_wins = 0: allowed by range, Allow wins over the name';
    is rcpt($srv, '127.0.0.23', 'a@other.org'), '250 2.1.5', 'deny_wins = 0: the failed lookup cannot matter';
    $srv->stop_ok('deny_hosts by name');
}
{
    # an earlier plugin's OK at connect and MAIL skips relay there: the
    # name is looked up at the first RCPT that needs it
    my $srv = server("allow_hosts = *.trusted.test\n");
    $srv->set_plugins('tester', 'relay', 'queue_spool');
    $srv->write_conf('tester.ini', "[connect]\nverdict = OK\n[mail]\nverdict = OK\n");
    $srv->hup;
    is rcpt($srv, '127.0.0.20', 'a@other.org'), '250 2.1.5', 'name looked up at RCPT: relay20.trusted.test may relay';
    is rcpt($srv, '127.0.0.21', 'a@other.org'), '550 5.7.1', 'name looked up at RCPT: a host without a name may not';
    $srv->stop_ok('lookup at RCPT');
}
{
    my $srv = server("allow_hosts = *.trusted.test\n", 'tester');
    $srv->write_conf('tester.ini', "[mail]\nverdict = DENY\ncode = 550\nshow_note = relay.allowed\n");
    $srv->hup;
    my $c = $srv->client(local => '127.0.0.20');
    $c->cmd('EHLO client.test');
    like $c->cmd('MAIL FROM:<s@example.org>')->{text}, qr/note relay\.allowed=1\b/,
        'relay.allowed = 1 for a host allowed by name';
    $c->close;
    $srv->stop_ok('relay.allowed by name');
}

# -- the relay.allowed connection note --------------------------------------------
{
    my $srv = server("allow_hosts = 127.0.0.2\n", 'tester');
    $srv->write_conf('tester.ini', "[mail]\nverdict = DENY\ncode = 550\nshow_note = relay.allowed\n");
    $srv->hup;
    for my $case (['127.0.0.2', 1], ['127.0.0.3', 0]) {
        my $c = $srv->client(local => $case->[0]);
        $c->cmd('EHLO client.test');
        my $r = $c->cmd('MAIL FROM:<s@example.org>');
        like $r->{text}, qr/note relay\.allowed=$case->[1]\b/, "relay.allowed = $case->[1] for $case->[0]";
        $c->close;
    }
    $srv->stop_ok('relay.allowed note');
}

# -- bad settings ------------------------------------------------------------------
for my $bad (['allow_hosts = 300.1.1.1', qr/allow_hosts: '300\.1\.1\.1' is not an IP address/],
             ['deny_hosts = 10.0.0.0/33', qr/deny_hosts: '10\.0\.0\.0\/33'/],
             ['allow_hosts = 10.*.1', qr/allow_hosts: '10\.\*\.1'/],
             ['allow_hosts = bad_host!', qr/allow_hosts: 'bad_host!'/],
             ['allow_domains = 192.0.2.1', qr/allow_domains: '192\.0\.2\.1' is not a domain name/],
             ['deny_domains = a..b', qr/deny_domains: 'a\.\.b'/],
             ['deny_wins = 2', qr/deny_wins: expected a boolean \(0\/1, yes\/no, on\/off, true\/false\), got '2'/],
             ['relay_all = 1', qr/unknown key 'relay_all'/]) {
    my $s = Upesi::Test->new(plugins => ['relay', 'queue_spool'],
                             ini => { 'relay.ini' => "allow_hosts = 127.0.0.1\n$bad->[0]\n" });
    my ($exit, $out) = upesi_check($s->conf);
    isnt $exit, 0, "-t refuses '$bad->[0]'";
    like $out, qr/relay\.ini:2: .*$bad->[1]/, '  with relay.ini:2 and the reason' or diag $out;
}
{
    my $s = Upesi::Test->new(plugins => ['relay', 'queue_spool'],
                             ini => { 'relay.ini' => "allow_hosts = 2001:db8::/32, mail.example.com\n" .
                                      "allow_hosts = *.example.net 192.168.*.*\ndeny_hosts = ::1\n" });
    my ($exit, $out) = upesi_check($s->conf);
    is $exit, 0, 'IPv6 CIDR, host names, wildcards and repeated keys pass -t' or diag $out;
}

done_testing;
