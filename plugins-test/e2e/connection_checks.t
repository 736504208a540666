#!/usr/bin/perl
# connection_checks.t - Domino's inbound connection controls against the
# real host and a real dnsmasq on a free loopback port (a silent UDP socket
# for lookups that time out, a responder that answers SERVFAIL), clients
# on 127.0.0.N (docs/plugins/connection_checks.md): verify_host_name (550
# 5.7.25 at MAIL for no PTR or an unconfirmed PTR), temp_fail_action defer
# (450 4.7.25) and accept, allow_hosts and deny_hosts by address, range,
# wildcard and name (554 5.7.1 at MAIL), Allow wins, the remote.name note
# as queue_spool's Client-Name, the statistics, a client that leaves
# mid-lookup, bad settings at -t.
use strict;
use warnings;
use FindBin;
use lib "$FindBin::Bin/../lib";
use Test::More;
use Time::HiRes qw(sleep time);
use Upesi::Test;
use Upesi::Test::DNS;

plan skip_all => 'swaks not installed'
    unless grep { -x "$_/swaks" } split /:/, $ENV{PATH};
deadline(180);

plan skip_all => 'dnsmasq not installed' unless Upesi::Test::DNS::available();

# -- the DNS side: dnsmasq; slow.test and 127.0.0.23's PTR never answer,
# fail.test answers SERVFAIL
my $dns = Upesi::Test::DNS->start(
    silent => ['slow.test', '23.0.0.127.in-addr.arpa'],
    servfail => ['fail.test'],
    records => [
        host => 'good20.test,127.0.0.20',                  # PTR and A
        ptr => '22.0.0.127.in-addr.arpa,liar.test',        # PTR, A elsewhere
        host => 'liar.test,127.0.0.99',
        ptr => '24.0.0.127.in-addr.arpa,name.fail.test',
        host => 'partner25.partner.test,127.0.0.25',
        host => 'bad26.evil.test,127.0.0.26',
    ]);

sub server {
    my ($ini) = @_;
    my $srv = Upesi::Test->new(plugins => ['connection_checks', 'queue_spool'],
                               smtp => { error_limit => 1000,
                                         dns_servers => $dns->server,
                                         dns_timeout => 1, plugin_timeout => 10 },
                               ini => { 'connection_checks.ini' => $ini });
    $srv->start;
    return $srv;
}

# session(SERVER, FROM_IP) -> [greeting, EHLO, MAIL, second MAIL] replies
# as "code enhanced", and the first MAIL reply's text
sub session {
    my ($srv, $ip) = @_;
    my $c = $srv->client(local => $ip);
    my @r = ($c->{greeting}, $c->cmd('EHLO client.test'));
    my $mail = $c->cmd('MAIL FROM:<a@example.org>');
    push @r, $mail;
    $c->cmd('RSET');
    push @r, $c->cmd('MAIL FROM:<b@example.org>');
    $c->cmd('QUIT');
    $c->close;
    my @s = map { $_ ? $_->{code} . ($_->{enhanced} ? " $_->{enhanced}" : '') : 'none' } @r;
    return (\@s, $mail ? $mail->{text} : '');
}

sub mail_code {
    my ($srv, $ip) = @_;
    my ($s) = session($srv, $ip);
    return $s->[2];
}

# -- verify_host_name = 1, temp_fail_action as shipped (defer) ---------------------
{
    my $srv = server("verify_host_name = 1\n");
    my ($s, $text) = session($srv, '127.0.0.21');
    is $s->[0], '220', 'no PTR: the session is greeted';
    is $s->[1], '250', '  EHLO accepted';
    is $s->[2], '550 5.7.25', '  MAIL FROM: 550 5.7.25';
    is $text, '5.7.25 Client host rejected: cannot find your hostname, [127.0.0.21]',
        '  Client host rejected: cannot find your hostname, [IP]';
    is $s->[3], '550 5.7.25', '  and every MAIL after it';
    is mail_code($srv, '127.0.0.20'), '250 2.1.0', 'a confirmed PTR name: accepted';
    is mail_code($srv, '127.0.0.22'), '550 5.7.25', 'a PTR name whose A is another address: 550 5.7.25';
    ($s, $text) = session($srv, '127.0.0.23');
    is $s->[2], '450 4.7.25', 'a PTR lookup that times out: 450 4.7.25 (defer)';
    like $text, qr/cannot find your hostname, \[127\.0\.0\.23\]/, '  with the same text';
    is mail_code($srv, '127.0.0.24'), '450 4.7.25', 'a forward lookup that gets SERVFAIL: 450 4.7.25';

    my $sw = swaks($srv->port, '--local-interface', '127.0.0.20', '--to', 'bob@example.com',
                   '--from', 'a@example.org');
    is $sw->{exit}, 0, 'swaks from a confirmed host: message accepted' or diag $sw->{out};
    my @m = $srv->wait_spool(1);
    is $m[0] && $m[0]{env}{'Client-Name'}, 'good20.test', 'remote.name is the spool\'s Client-Name';
    $sw = swaks($srv->port, '--local-interface', '127.0.0.21', '--to', 'bob@example.com',
                '--from', 'a@example.org');
    like $sw->{out}, qr/<\*\* +550 5\.7\.25 Client host rejected: cannot find your hostname, \[127\.0\.0\.21\]/,
        'swaks from a host without a name: 550 5.7.25 at MAIL FROM';

    # a client that leaves while its lookup is pending
    $srv->client(local => '127.0.0.23', greeting => 0)->close;
    sleep 1.5 * $SLOW;
    ok $srv->running, 'a client that leaves mid-lookup: the server goes on';

    my $st = $srv->stat('SMTP.ConnectionChecks');
    is $st->{'SMTP.ConnectionChecks.Verified'}, 2, 'SMTP.ConnectionChecks.Verified' or diag explain $st;
    is $st->{'SMTP.ConnectionChecks.Rejected'}, 3, 'SMTP.ConnectionChecks.Rejected';
    is $st->{'SMTP.ConnectionChecks.Deferred'}, 2, 'SMTP.ConnectionChecks.Deferred';
    $srv->stop_ok('verify_host_name = 1');
}

{
    # the host gives up first (plugin_timeout): the plugin's on_cancel
    # drops its lookup
    my $srv = Upesi::Test->new(plugins => ['connection_checks', 'queue_spool'],
                               smtp => { dns_servers => $dns->server,
                                         dns_timeout => 2, plugin_timeout => 0.5 },
                               ini => { 'connection_checks.ini' => "verify_host_name = 1\n" });
    $srv->start;
    is mail_code($srv, '127.0.0.23'), '451 4.3.0', 'plugin_timeout before the lookup ends: the host\'s 451 4.3.0 at MAIL';
    sleep 2.5 * $SLOW;
    is mail_code($srv, '127.0.0.20'), '250 2.1.0', '  later sessions are fine';
    $srv->stop_ok('plugin_timeout first');
}

# -- temp_fail_action ----------------------------------------------------------------
{
    my $srv = server("verify_host_name = 1\ntemp_fail_action = accept\n");
    is mail_code($srv, '127.0.0.23'), '250 2.1.0', 'temp_fail_action = accept: a PTR timeout is accepted';
    is mail_code($srv, '127.0.0.24'), '250 2.1.0', 'temp_fail_action = accept: SERVFAIL is accepted';
    is mail_code($srv, '127.0.0.21'), '550 5.7.25', 'temp_fail_action = accept: no PTR is still refused';
    my $st = $srv->stat('SMTP.ConnectionChecks');
    is $st->{'SMTP.ConnectionChecks.TempFailAccepted'}, 2, 'SMTP.ConnectionChecks.TempFailAccepted' or diag explain $st;
    $srv->stop_ok('temp_fail_action = accept');
}
{
    my $srv = server("verify_host_name = 1\ntemp_fail_action = defer\n");
    is mail_code($srv, '127.0.0.23'), '450 4.7.25', 'temp_fail_action = defer: 450 4.7.25';
    $srv->stop_ok('temp_fail_action = defer');
}

# -- allow_hosts and deny_hosts ---------------------------------------------------------
{
    my $srv = server("verify_host_name = 1\nallow_hosts = 127.0.0.21, 127.0.0.23\n" .
                     "deny_hosts = 127.0.0.40, *.evil.test\n");
    is mail_code($srv, '127.0.0.21'), '250 2.1.0', 'allow_hosts: a host without a name skips verify_host_name';
    is mail_code($srv, '127.0.0.23'), '250 2.1.0', 'allow_hosts: no lookup, so no timeout either';
    my ($s, $text) = session($srv, '127.0.0.40');
    is $s->[0], '220', 'deny_hosts: the session is greeted';
    is $s->[2], '554 5.7.1', 'deny_hosts by address: 554 5.7.1 at MAIL';
    is $text, '5.7.1 Client host [127.0.0.40] rejected: Access denied', '  Client host [IP] rejected: Access denied';
    is $s->[3], '554 5.7.1', '  and every MAIL after it';
    is mail_code($srv, '127.0.0.26'), '554 5.7.1', 'deny_hosts by confirmed name (*.evil.test): 554 5.7.1';
    is mail_code($srv, '127.0.0.22'), '550 5.7.25', 'neither list: verify_host_name decides';
    my $st = $srv->stat('SMTP.ConnectionChecks');
    is $st->{'SMTP.ConnectionChecks.Allowed'}, 2, 'SMTP.ConnectionChecks.Allowed' or diag explain $st;
    is $st->{'SMTP.ConnectionChecks.Denied'}, 2, 'SMTP.ConnectionChecks.Denied';
    my $dns = $srv->stat('Upesi.DNS');
    $srv->stop_ok('allow_hosts and deny_hosts');
}
{
    my $srv = server("deny_hosts = 127.0.0.*\nallow_hosts = 127.0.0.20 *.partner.test\n");
    is mail_code($srv, '127.0.0.20'), '250 2.1.0', 'Allow wins: a denied range, an allowed address';
    is mail_code($srv, '127.0.0.25'), '250 2.1.0', 'Allow wins: a denied range, an allowed name';
    is mail_code($srv, '127.0.0.21'), '554 5.7.1', 'verify_host_name = 0: the rest of the range is denied, not 5.7.25';
    is mail_code($srv, '127.0.0.23'), '554 5.7.1', 'a name that cannot be looked up matches no name item';
    $srv->stop_ok('Allow wins');
}
{
    my $srv = server("deny_hosts = 127.0.0.0/30 [127.0.0.9]\n");
    is mail_code($srv, '127.0.0.2'), '554 5.7.1', 'deny_hosts: CIDR';
    is mail_code($srv, '127.0.0.9'), '554 5.7.1', 'deny_hosts: [address]';
    is mail_code($srv, '127.0.0.5'), '250 2.1.0', 'deny_hosts: others pass';
    my $dns = $srv->stat('Upesi.DNS');
    ok !($dns && $dns->{'Upesi.DNS.Lookups'}), 'address items only, no verify: no DNS lookup'
        or diag explain $dns;
    $srv->stop_ok('deny_hosts by address');
}
{
    my $srv = server("verify_host_name = 0\n");
    is mail_code($srv, '127.0.0.21'), '250 2.1.0', 'verify_host_name = 0: a host without a name passes';
    my $sw = swaks($srv->port, '--local-interface', '127.0.0.21', '--to', 'bob@example.com',
                   '--from', 'a@example.org');
    my @m = $srv->wait_spool(1);
    is $m[0] && $m[0]{env}{'Client-Name'}, 'unknown', '  Client-Name unknown';
    $srv->stop_ok('verify_host_name = 0');
}

# -- bad settings -------------------------------------------------------------------
for my $bad (['verify_host_name = 2', qr/verify_host_name: expected a boolean \(0\/1, yes\/no, on\/off, true\/false\), got '2'/],
             ['temp_fail_action = reject', qr/temp_fail_action: expected one of defer, accept, got 'reject'/],
             ['allow_hosts = 300.1.1.1', qr/allow_hosts: '300\.1\.1\.1'/],
             ['deny_hosts = 10.0.0.0/33', qr/deny_hosts: '10\.0\.0\.0\/33'/],
             ['deny_hosts = bad_host!', qr/deny_hosts: 'bad_host!'/],
             ["[section]\nallow_hosts = 127.0.0.1", qr/unknown section \[section\]/],
             ['verify = 1', qr/unknown key 'verify'/]) {
    my $s = Upesi::Test->new(plugins => ['connection_checks', 'queue_spool'],
                             ini => { 'connection_checks.ini' => "allow_hosts = 127.0.0.1\n$bad->[0]\n" });
    my ($exit, $out) = upesi_check($s->conf);
    isnt $exit, 0, "-t refuses '$bad->[0]'";
    like $out, qr/connection_checks\.ini:[23]: .*$bad->[1]/, '  with connection_checks.ini:line' or diag $out;
}
{
    my $s = Upesi::Test->new(plugins => ['connection_checks', 'queue_spool']);
    my ($exit, $out) = upesi_check($s->conf);
    is $exit, 0, 'the shipped connection_checks.ini passes -t' or diag $out;
}

done_testing;
