#!/usr/bin/perl
# proxy.t - the PROXY protocol (v1 and v2) with HAProxy itself in front.
#
# upesi listens on two addresses: one plain, one marked "proxy".  A
# test-owned haproxy (Debian's) runs three TCP frontends on free loopback
# ports, each forwarding to the marked address: send-proxy (v1) with the
# source set to 192.0.2.1, send-proxy-v2 with 198.51.100.7, and
# send-proxy-v2 with 2001:db8::25.  The client really connects from
# 127.0.0.1; only the header carries the other addresses (no traffic goes
# to them).  private_lists blacklists 198.51.100.7: the decision must be
# taken on the proxied address.  The Received field and the log name the
# proxied client.  A connection to the marked address without a header
# is refused (421) when proxy_timeout has passed; a header on the plain
# address is an unknown command.
use strict;
use warnings;
use FindBin;
use lib "$FindBin::Bin/../lib";
use Test::More;
use Time::HiRes qw(time sleep);
use Upesi::Test;

deadline(120);

my $haproxy = `sh -c 'command -v haproxy'`;
chomp $haproxy;
plan skip_all => 'haproxy is not installed (make deps-test)' unless $haproxy;

my ($plain, $marked, $smtps) = (free_port(), free_port(), free_port());
my $certdir = Upesi::Test->new->tmp;
my ($ce, $co) = Upesi::Test::run_cmd(60, 'openssl', 'req', '-x509', '-newkey',
    'rsa:2048', '-nodes', '-days', '2', '-subj', '/CN=mx.test.example',
    '-keyout', "$certdir/key.pem", '-out', "$certdir/cert.pem");
die "openssl req failed: $co" if $ce;
my $srv = Upesi::Test->new(
    smtp    => { local_domains => 'example.com',
                 listen => "127.0.0.1:$plain, 127.0.0.1:$marked proxy",
                 smtps_listen => "127.0.0.1:$smtps proxy",
                 proxy_timeout => 1.5,
                 tls_cert => "$certdir/cert.pem", tls_key => "$certdir/key.pem" },
    plugins => ['private_lists', 'queue_spool'],
    ini     => { 'private_lists.ini' => "[blacklist]\nhosts = 198.51.100.7\n"
                                      . "action = reject\nmessage = Host %s is blacklisted here\n" });
$srv->{port} = $plain;          # the address start() waits for
$srv->start;
my $tmp = $srv->tmp;

my ($p1, $p2, $p3, $p4) = (free_port(), free_port(), free_port(), free_port());
spit("$tmp/haproxy.cfg", <<"EOF");
global
    maxconn 100
defaults
    mode tcp
    timeout connect 5s
    timeout client 30s
    timeout server 30s
frontend v1
    bind 127.0.0.1:$p1
    tcp-request connection set-src ipv4(192.0.2.1)
    default_backend to_v1
backend to_v1
    server upesi 127.0.0.1:$marked send-proxy
frontend v2
    bind 127.0.0.1:$p2
    tcp-request connection set-src ipv4(198.51.100.7)
    default_backend to_v2
backend to_v2
    server upesi 127.0.0.1:$marked send-proxy-v2
frontend v2six
    bind 127.0.0.1:$p3
    tcp-request connection set-src ipv6(2001:db8::25)
    default_backend to_v2six
backend to_v2six
    server upesi 127.0.0.1:$marked send-proxy-v2
frontend tls
    bind 127.0.0.1:$p4
    tcp-request connection set-src ipv4(203.0.113.5)
    default_backend to_smtps
backend to_smtps
    server upesi 127.0.0.1:$smtps send-proxy-v2
EOF
my ($cexit, $cout) = Upesi::Test::run_cmd(20, $haproxy, '-c', '-f', "$tmp/haproxy.cfg");
is $cexit, 0, 'haproxy accepts the test configuration' or diag $cout;

my $hp = fork // die "fork: $!";
if ($hp == 0) {
    open STDIN, '<', '/dev/null';
    open STDOUT, '>>', "$tmp/haproxy.log";
    open STDERR, '>&', \*STDOUT;
    exec($haproxy, '-db', '-f', "$tmp/haproxy.cfg") or POSIX::_exit(127);
}
END { local $?; if ($hp) { kill 'TERM', $hp; waitpid($hp, 0) } }
# wait until haproxy listens on its three ports
my $until = time + 10 * $SLOW;
for my $p ($p1, $p2, $p3, $p4) {
    sleep 0.05 until IO::Socket::IP->new(PeerHost => '127.0.0.1', PeerPort => $p)
                     || time > $until;
}

# v1: 192.0.2.1 is the client
my $c = Upesi::Test::Client->new(port => $p1);
is $c->greeting->{code}, 220, 'v1 through haproxy: greeted';
my $r = $c->cmd('EHLO proxied.test');
like $r->{text}, qr/Hello proxied\.test \[192\.0\.2\.1\]/, 'v1: EHLO names the proxied client';
is $c->cmd('MAIL FROM:<a@client.test>')->{code}, 250, 'v1: 192.0.2.1 is not blacklisted';
is $c->cmd('RCPT TO:<bob@example.com>')->{code}, 250, 'v1: RCPT';
is $c->cmd('DATA')->{code}, 354, 'v1: DATA';
$c->send_raw("Subject: via haproxy\r\n\r\nhi\r\n.\r\n");
is $c->read_reply->{code}, 250, 'v1: queued';
$c->cmd('QUIT');
my @m = $srv->wait_spool(1);
my ($received) = strip_received($m[0]{message} // '');
like $received, qr/\(unknown \[192\.0\.2\.1\]\)/, 'v1: the Received field names 192.0.2.1';
is $m[0]{env}{'Client-IP'}, '192.0.2.1', 'v1: the spool envelope (a plugin) sees 192.0.2.1'
    or diag $m[0]{envelope};
ok $srv->wait_log(qr/PROXY v1: client 192\.0\.2\.1 port \d+ .*via 127\.0\.0\.1/),
    'v1: logged with the balancer\'s address';

# v2: 198.51.100.7 is blacklisted by private_lists
$c = Upesi::Test::Client->new(port => $p2);
is $c->greeting->{code}, 220, 'v2 through haproxy: greeted';
like $c->cmd('EHLO proxied.test')->{text}, qr/\[198\.51\.100\.7\]/, 'v2: EHLO names the proxied client';
$r = $c->cmd('MAIL FROM:<a@client.test>');
is "$r->{code} $r->{enhanced}", '554 5.7.1', 'v2: private_lists refuses the proxied address';
like $r->{text}, qr/Host 198\.51\.100\.7 is blacklisted here/, 'v2: with the proxied address in the text';
$c->cmd('QUIT');

# v2 with an IPv6 client
$c = Upesi::Test::Client->new(port => $p3);
like $c->cmd('EHLO six.test')->{text}, qr/\[2001:db8::25\]/, 'v2 IPv6: EHLO names the proxied client';
is $c->cmd('MAIL FROM:<a@client.test>')->{code}, 250, 'v2 IPv6: not blacklisted';
$c->cmd('QUIT');

# implicit TLS behind the header: haproxy passes the TLS bytes through
SKIP: {
    skip 'python3 is not installed', 2
        unless system('sh', '-c', 'command -v python3 >/dev/null') == 0;
    spit("$tmp/tls.py", <<'PY');
import socket, ssl, sys
ctx = ssl.create_default_context()
ctx.check_hostname = False
ctx.verify_mode = ssl.CERT_NONE
s = ctx.wrap_socket(socket.create_connection(('127.0.0.1', int(sys.argv[1])), timeout=10))
f = s.makefile('rb')
print(f.readline().decode().rstrip())
s.sendall(b'EHLO tls.test\r\n')
while True:
    l = f.readline().decode().rstrip()
    print(l)
    if l[3:4] != '-':
        break
s.sendall(b'QUIT\r\n')
PY
    my ($te, $to) = Upesi::Test::run_cmd(30, 'python3', "$tmp/tls.py", $p4);
    like $to, qr/^220 /m, 'smtps marked proxy, through haproxy: the TLS greeting' or diag $to;
    like $to, qr/Hello tls\.test \[203\.0\.113\.5\]/, 'smtps: the proxied client inside TLS';
}

# no header on the marked address: refused when proxy_timeout (1.5 s here)
# has passed
my $t0 = time;
$c = Upesi::Test::Client->new(port => $marked, greeting => 0, timeout => 8);
$r = $c->read_reply;
my $took = time - $t0;
is "$r->{code} $r->{enhanced}", '421 4.7.0', 'no header: 421 4.7.0' or diag $c->{transcript};
ok $took >= 1.4 && $took < 1.5 + 0.5 * $SLOW, "no header: refused when proxy_timeout has passed (took ${\ sprintf '%.2f', $took} s)";
ok $c->closed(2), 'no header: closed';

# a bad header: refused at once
$c = Upesi::Test::Client->new(port => $marked, greeting => 0);
$c->send_raw("EHLO me\r\n");
$r = $c->read_reply;
is $r->{code}, 421, 'a command instead of a header: 421';
like $r->{text}, qr/invalid PROXY protocol header/, 'says why';

# a header on the plain address is an unknown command; the peer stays
$c = Upesi::Test::Client->new(port => $plain);
$r = $c->cmd('PROXY TCP4 198.51.100.9 127.0.0.1 5555 25');
is $r->{code}, 500, 'PROXY on an unmarked address: 500 unknown command';
like $c->cmd('EHLO plain.test')->{text}, qr/\[127\.0\.0\.1\]/, 'the client stays 127.0.0.1';
$c->cmd('QUIT');

my $st = $srv->stat('SMTP.Sessions.ProxyRefused');
is $st->{'SMTP.Sessions.ProxyRefused'}, 2, 'SMTP.Sessions.ProxyRefused counts the two refusals';

$srv->stop_ok;
done_testing;
