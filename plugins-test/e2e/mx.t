#!/usr/bin/perl
# mx.t - queue_forward's route = mx against a real DNS server (dnsmasq on
# loopback): two MX hosts, the preferred one down (127.0.0.2, where
# nothing listens), the other a real downstream upesi; a domain without MX
# (its A record is the host); a null MX (RFC 7505: 556 5.1.10 at once, in
# direct mode to the client, in spool mode as a bounce without retries); a
# domain that does not exist (550 5.1.2).  mx_port points the hosts at the
# downstream's port: tests cannot bind port 25.
use strict;
use warnings;
use FindBin;
use lib "$FindBin::Bin/../lib";
use Test::More;
use Time::HiRes qw(sleep);
use Upesi::Test;
use Upesi::Test::DNS;
use Upesi::Forward qw(send_msg wait_for nspool ctl);

plan skip_all => "$UPESI not built" unless -f $UPESI && -x _;
plan skip_all => 'plugins/queue_forward.so not built'
    unless -f "$ROOT/plugins/queue_forward.so";
plan skip_all => 'dnsmasq not installed' unless Upesi::Test::DNS::available();
deadline(180);

sub code_of { my $r = shift; $r ? "$r->{code} " . ($r->{enhanced} // '') : 'none' }

my $dns = Upesi::Test::DNS->start(records => [
    mx   => 'two.test,mx1.two.test,10',
    mx   => 'two.test,mx2.two.test,20',
    host => 'mx1.two.test,127.0.0.2',
    host => 'mx2.two.test,127.0.0.1',
    host => 'nomx.test,127.0.0.1',
    mx   => 'nullmx.test,.,0',
]);

my $down = Upesi::Test->new(
    smtp => { local_domains => 'two.test,nomx.test', workers => 1 });
$down->start;
my $port = $down->port;
my $domains = 'two.test,nomx.test,nullmx.test,gone.test';

# -- direct mode
my $f = Upesi::Forward::front("route = mx\nmx_port = $port\nfsync = 0\n",
                              local_domains => $domains,
                              dns_servers => $dns->server);
$f->start;
my $r = send_msg($f, from => 'alice@two.test', to => ['bob@two.test'],
                 data => "Subject: by mx\r\n\r\nx\r\n");
is(code_of($r), '250 2.0.0', 'two MX hosts, the preferred one down: 250');
like($r ? $r->{text} : '', qr/mx2\.two\.test\[127\.0\.0\.1\]:$port said: 250/,
     '... from the second MX host');
ok($f->wait_log(qr/MX mx1\.two\.test\[127\.0\.0\.2\]:$port: .*trying the next/, 5),
   'the first (preference 10) was tried first and failed');
my @m = $down->wait_spool(1, 10);
is_deeply($m[0] ? $m[0]{recipients} : [], ['bob@two.test'], 'the downstream has it');

$r = send_msg($f, from => 'alice@two.test', to => ['carol@nomx.test'],
              data => "Subject: no mx\r\n\r\nx\r\n");
is(code_of($r), '250 2.0.0', 'a domain without MX: its address (implicit MX): 250');

$r = send_msg($f, from => 'alice@two.test', to => ['dave@nullmx.test'],
              data => "Subject: null mx\r\n\r\nx\r\n");
is(code_of($r), '556 5.1.10', 'a null MX: 556 5.1.10 (RFC 7505)');

$r = send_msg($f, from => 'alice@two.test', to => ['erin@gone.test'],
              data => "Subject: gone\r\n\r\nx\r\n");
is(code_of($r), '550 5.1.2', 'a domain that does not exist: 550 5.1.2');

$r = send_msg($f, from => 'alice@two.test', to => ['bob@two.test', 'carol@nomx.test'],
              data => "Subject: two domains\r\n\r\nx\r\n");
is(code_of($r), '250 2.0.0', 'two domains in one message (a job per domain): 250');
ok(wait_for(5, sub { nspool($down) >= 4 }), 'both delivered');
$f->stop_ok('front (direct)');

# -- spool mode: a null MX bounces at once, the bounce goes by MX too
unlink $_->{file} for $down->spool;
my $fs = Upesi::Forward::front("route = mx\nmx_port = $port\nmode = spool\nfsync = 0\n"
                               . "scan_interval = 200ms\nretry_min = 60s\n",
                               local_domains => $domains,
                               dns_servers => $dns->server);
$fs->start;
$r = send_msg($fs, from => 'alice@two.test', to => ['dave@nullmx.test'],
              data => "Subject: null mx, spooled\r\n\r\nx\r\n");
is(code_of($r), '250 2.0.0', 'spool: accepted');
ok(wait_for(10, sub { nspool($down) >= 1 }), 'a bounce reached the sender by MX');
my ($b) = $down->spool;
like($b ? $b->{message} : '', qr{^Final-Recipient: rfc822; dave\@nullmx\.test\r\nAction: failed\r\nStatus: 5\.1\.10\r$}m,
     'the bounce: Status 5.1.10 for the null MX domain');
ok(wait_for(5, sub { ctl($fs, 'queue') =~ /^-- 0 messages\b/m }),
   'nothing left to retry') or diag ctl($fs, 'queue');
$fs->stop_ok('front (spool)');
$down->stop_ok('downstream');
done_testing();
