#!/usr/bin/perl
# dns.t - the connection filters against a real DNS server: dnsmasq on a
# free loopback port serves test zones, a silent UDP socket stands for a
# zone that never answers, and swaks connects from 127.0.0.N (and ::1) to
# walk the Domino order/action matrix of private_lists, dnswl and dnsbl:
# replies, X-DNSBL-Site / X-DNSWL-Site headers in the spool, the log, and
# `upesi stat` counters (docs/plugins/dnsbl.md, dnswl.md, private_lists.md).
use strict;
use warnings;
use FindBin;
use lib "$FindBin::Bin/../lib";
use IO::Socket::IP;
use Test::More;
use Time::HiRes qw(sleep time);
use Upesi::Test;
use Upesi::Test::DNS;

plan skip_all => 'dnsmasq not installed' unless Upesi::Test::DNS::available();
plan skip_all => 'swaks not installed'
    unless grep { -x "$_/swaks" } split /:/, $ENV{PATH};

deadline(240);

# -- the DNS side -------------------------------------------------------------

sub rev4 { join '.', reverse split /\./, $_[0] }

my $v6_nibbles = join '.', ('1', ('0') x 31);     # ::1

my $dns = Upesi::Test::DNS->start(
    silent => ['slow.test'],            # a zone that never answers
    records => [
        # bl1.test lists .3 .4 .7 .8 .9; bl2.test lists .2 .3, and .11 with an
        # answer outside its accepted range; bad.test answers outside 127/8
        (map { (address => rev4("127.0.0.$_") . ".bl1.test,127.0.0.2") } 3, 4, 7, 8, 9),
        address => rev4('127.0.0.2') . ".bl2.test,127.0.0.2",
        address => rev4('127.0.0.3') . ".bl2.test,127.0.0.3",
        address => rev4('127.0.0.11') . ".bl2.test,127.0.0.4",
        address => rev4('127.0.0.6') . ".bad.test,192.0.2.1",
        address => "$v6_nibbles.bl1.test,127.0.0.2",
        txt => rev4('127.0.0.3') . ".bl1.test,Listed in bl1: see http://bl1.test/q?127.0.0.3",
        txt => rev4('127.0.0.2') . ".bl2.test,Listed in bl2",
        # wl.test lists .4
        address => rev4('127.0.0.4') . ".wl.test,127.0.0.2",
        # names: .9 is host9.good.test (confirmed); .10 claims liar.evil.test,
        # whose address is .12 (not confirmed)
        host => 'host9.good.test,127.0.0.9',
        ptr => '10.0.0.127.in-addr.arpa,liar.evil.test',
        host => 'liar.evil.test,127.0.0.12',
    ]);

# -- helpers -------------------------------------------------------------------

sub server {
    my (%ini) = @_;
    my $srv = Upesi::Test->new(
        plugins => ['private_lists', 'dnswl', 'dnsbl', 'queue_spool'],
        smtp => { dns_servers => $dns->server, dns_timeout => 1,
                  plugin_timeout => 10, error_limit => 1000 },
        ini => \%ini);
    $srv->start;
    return $srv;
}

# send(SERVER, FROM_IP) -> swaks result; the message carries a unique subject
my $n = 0;
sub send_from {
    my ($srv, $ip, @more) = @_;
    $n++;
    return $srv->swaks_send('--local-interface', $ip, '--to', 'user@example.com',
                            '--from', 'sender@client.test', '--helo', 'client.test',
                            '--header', "Subject: dns-test-$n", @more);
}

# The stored message whose subject is dns-test-N, or undef.
sub stored {
    my ($srv, $num) = @_;
    for my $m ($srv->spool) {
        return $m->{message} if $m->{message} =~ /^Subject: dns-test-$num\r?$/m;
    }
    return undef;
}

sub header_of {
    my ($msg, $name) = @_;
    return undef unless defined $msg;
    my ($head) = split /\r?\n\r?\n/, $msg, 2;
    my @v = $head =~ /^\Q$name\E:\s*(.*?)\r?$/mg;
    return @v ? join(',', @v) : undef;
}

# -- tag actions: the order matrix ---------------------------------------------
{
    my $srv = server(
        'private_lists.ini' => "[whitelist]\nhosts = 127.0.0.7, *.good.test\naction = tag\n"
                             . "[blacklist]\nhosts = 127.0.0.8/32, *.evil.test\naction = tag\n",
        'dnswl.ini' => "zones = wl.test\naction = tag\nexpand_stats = 1\n",
        'dnsbl.ini' => "zones = bl1.test, bl2.test, bad.test, slow.test\n"
                     . "action = tag\nexpand_stats = 1\n"
                     . "[bl2.test]\nanswers = 127.0.0.2-127.0.0.3\n");

    my %want = (   # client => [X-DNSBL-Site, X-DNSWL-Site, what]
        '127.0.0.2'  => ['bl2.test', undef, 'listed in the second zone only'],
        '127.0.0.3'  => ['bl1.test', undef, 'listed in two zones: the first in config order'],
        '127.0.0.4'  => [undef, 'wl.test', 'DNSWL hit skips the DNSBLs'],
        '127.0.0.5'  => [undef, undef, 'listed nowhere'],
        '127.0.0.6'  => [undef, undef, 'an answer outside 127/8 is ignored'],
        '127.0.0.7'  => [undef, 'PrivateWhitelist', 'private whitelist (address) skips every blacklist'],
        '127.0.0.8'  => ['PrivateBlacklist', undef, 'private blacklist, decided before DNS'],
        '127.0.0.9'  => [undef, 'PrivateWhitelist', 'private whitelist by confirmed PTR name'],
        '127.0.0.10' => [undef, undef, 'an unconfirmed PTR name matches nothing'],
        '127.0.0.11' => [undef, undef, 'an answer outside the zone\'s accepted range'],
    );
    my %num;
    for my $ip (sort keys %want) {
        my $t0 = time;
        my $r = send_from($srv, $ip);
        $num{$ip} = $n;
        is $r->{exit}, 0, "$ip: message accepted ($want{$ip}[2])"
            or diag $r->{out};
        # the slow zone is last: a client no earlier zone lists waits for it
        diag sprintf('%s took %.1f s', $ip, time - $t0) if $ENV{UPESI_DNS_VERBOSE};
    }
    $srv->wait_spool(scalar keys %want, 10);
    for my $ip (sort keys %want) {
        my $msg = stored($srv, $num{$ip});
        ok defined $msg, "$ip: message in the spool" or next;
        is header_of($msg, 'X-DNSBL-Site'), $want{$ip}[0],
            "$ip: X-DNSBL-Site " . ($want{$ip}[0] // 'absent');
        is header_of($msg, 'X-DNSWL-Site'), $want{$ip}[1],
            "$ip: X-DNSWL-Site " . ($want{$ip}[1] // 'absent');
    }

    # a client that leaves while its lookups are pending (the slow zone)
    $srv->client(local => '127.0.0.5', greeting => 0)->close;
    sleep 1.5 * $SLOW;

    my $st = $srv->stat('SMTP.');
    is $st->{'SMTP.DNSBL.TotalHits'}, 2, 'SMTP.DNSBL.TotalHits counts the DNS hits';
    is $st->{'SMTP.DNSBL.bl1.test.TotalHits'}, 1, 'SMTP.DNSBL.bl1.test.TotalHits';
    is $st->{'SMTP.DNSBL.bl2.test.TotalHits'}, 1, 'SMTP.DNSBL.bl2.test.TotalHits';
    is $st->{'SMTP.DNSBL.bl2.test.127.0.0.2.Hits'}, 1, 'expand_stats: per address';
    is $st->{'SMTP.DNSWL.TotalHits'}, 1, 'SMTP.DNSWL.TotalHits';
    is $st->{'SMTP.DNSWL.wl.test.TotalHits'}, 1, 'SMTP.DNSWL.wl.test.TotalHits';
    is $st->{'SMTP.DNSWL.wl.test.127.0.0.4.Hits'}, 1, 'DNSWL expand_stats';
    is $st->{'SMTP.PrivateWL.TotalHits'}, 2, 'SMTP.PrivateWL.TotalHits';
    is $st->{'SMTP.PrivateBL.TotalHits'}, 1, 'SMTP.PrivateBL.TotalHits';
    is $st->{'SMTP.DNSBL.bad.test.Ignored'}, 1, 'the answer outside 127/8 is counted';
    cmp_ok $st->{'SMTP.DNSBL.slow.test.Timeouts'} // 0, '>=', 4,
        'timeouts of the silent zone are counted (fail open)';
    ok $srv->log_lines(qr/bad\.test answered 192\.0\.2\.1, outside 127\.0\.0\.0\/8/),
        'a warning names the answer outside 127/8';
    ok $srv->log_lines(qr/slow\.test did not answer \(timeout\)/),
        'the log says the silent zone timed out';
    ok $srv->log_lines(qr/reason from bl1\.test: Listed in bl1/),
        'the TXT reason goes to the log';
    ok $srv->running, 'the server survived a client leaving mid-lookup';
    $srv->stop_ok('tag server');
}

# -- reject actions: Domino-style, greeting then 554 at every MAIL FROM ------------
{
    my $srv = server(
        'private_lists.ini' => "[blacklist]\nhosts = 127.0.0.8\naction = reject\n"
                             . "message = Host %s is blacklisted here\n",
        'dnswl.ini' => "zones = wl.test\naction = skip\n",
        'dnsbl.ini' => "zones = bl1.test, bl2.test\naction = reject\n"
                     . "message = Rejected: %s is listed at %s\n");

    my $r = send_from($srv, '127.0.0.3');
    isnt $r->{exit}, 0, 'listed client: swaks fails';
    like $r->{out}, qr/<-\s+220 /, 'listed client: greeted first';
    like $r->{out}, qr/<\*\*\s+554 5\.7\.1 Rejected: 127\.0\.0\.3 is listed at bl1\.test/,
        'listed client: MAIL FROM gets 554 5.7.1 with the configured message'
        or diag $r->{out};

    # a second MAIL in the same session is refused too
    my $c = $srv->client(local => '127.0.0.3', greeting => 0);
    like $c->read_reply->{code}, qr/^220$/, 'raw client: 220';
    $c->cmd('EHLO client.test');
    is $c->cmd('MAIL FROM:<a@client.test>')->{code}, 554, 'first MAIL: 554';
    $c->cmd('RSET');
    my $m2 = $c->cmd('MAIL FROM:<b@client.test>');
    is "$m2->{code} $m2->{enhanced}", '554 5.7.1', 'second MAIL: 554 5.7.1 again';
    $c->cmd('QUIT');
    $c->close;

    $r = send_from($srv, '127.0.0.8');
    like $r->{out}, qr/554 5\.7\.1 Host 127\.0\.0\.8 is blacklisted here/,
        'private blacklist reject: the message with the IP';
    $r = send_from($srv, '127.0.0.4');
    is $r->{exit}, 0, 'DNSWL (skip) client listed in bl1 is accepted';
    $r = send_from($srv, '127.0.0.5');
    is $r->{exit}, 0, 'unlisted client is accepted';

    my $st = $srv->stat('SMTP.');
    is $st->{'SMTP.PrivateBL.TotalHits'}, 1, 'private blacklist hit counted';
    is $st->{'SMTP.DNSBL.bl1.test.TotalHits'}, 2, 'bl1 hits: two sessions from .3';
    ok !$srv->log_lines(qr/127\.0\.0\.4 whitelisted/),
        'skip: the DNSWL hit is not logged';
    $srv->stop_ok('reject server');
}

# -- IPv6: nibbles --------------------------------------------------------------
SKIP: {
    my $probe = IO::Socket::IP->new(LocalHost => '::1', LocalPort => 0, Proto => 'tcp',
                                    Listen => 1);
    skip 'no IPv6 loopback', 4 unless $probe;
    my $p6 = $probe->sockport;
    close $probe;
    my $srv = Upesi::Test->new(
        plugins => ['dnsbl', 'queue_spool'],
        smtp => { dns_servers => $dns->server, dns_timeout => 1 },
        ini => { 'dnsbl.ini' => "zones = bl1.test\naction = reject\n" });
    $srv->set_smtp(listen => "127.0.0.1:" . $srv->port . ", [::1]:$p6");
    $srv->start;
    my ($exit, $out) = Upesi::Test::run_cmd(60, 'swaks', '--server', '::1', '--port', $p6,
        '-6', '--to', 'user@example.com', '--from', 'a@client.test');
    like $out, qr/554 5\.7\.1 Your host ::1 is listed in bl1\.test/,
        'an IPv6 client is looked up by nibbles (default message)'
        or diag $out;
    my $st = $srv->stat('SMTP.DNSBL.');
    is $st->{'SMTP.DNSBL.bl1.test.TotalHits'}, 1, 'IPv6 hit counted';
    $srv->stop_ok('ipv6 server');
}

done_testing;
