#!/usr/bin/perl
# dns_weighted.t - weighted DNS lists, postscreen style, in dnsbl and dnswl
# against the real host and dnsmasq (docs/plugins/dnsbl.md "Weighted
# lists"): `zone*weight` and `zone=127.0.0.[a..b]*weight` reply filters,
# the same zone twice with other filters, negative weights, `threshold`,
# `allow_threshold`, the sum in conn note dns.score (dnswl's and dnsbl's
# add up); the pass cache in the store: a client not listed makes no DNS
# query on its next connection for cache_ttl (dnsmasq logs every query),
# while a listed one is asked again; on lmdb and on Redis.  -t for the new
# keys.
use strict;
use warnings;
use FindBin;
use lib "$FindBin::Bin/../lib";
use Test::More;
use Time::HiRes qw(sleep);
use Upesi::Test;
use Upesi::Test::DNS;
use Upesi::Test::Redis;

plan skip_all => 'dnsmasq not installed' unless Upesi::Test::DNS::available();
deadline(180);

sub rev4 { join '.', reverse split /\./, $_[0] }

my $dns = Upesi::Test::DNS->start(
    log_queries => 1,
    servfail    => ['sf.example'],          # a zone that fails: SERVFAIL
    records => [
        # .2: bl1 and bl2 (127.0.0.10)      -> 2 + 3 = 5: listed
        # .3: bl1 only                      -> 2: passes, cached
        # .4: bl1 and wl                    -> 2 - 5 = -3: whitelisted
        # .5: bl2 with 127.0.0.3            -> the [2..9] filter: 1
        # .6: bl2 with 127.0.0.20           -> no filter matches: 0
        # .7: bl1, bl2 (127.0.0.10), wl2    -> dnswl -1, dnsbl 5: dns.score 4
        (map { (address => rev4("127.0.0.$_") . ".bl1.test,127.0.0.2") } 2, 3, 4, 7),
        address => rev4('127.0.0.2') . ".bl2.test,127.0.0.10",
        address => rev4('127.0.0.7') . ".bl2.test,127.0.0.10",
        address => rev4('127.0.0.5') . ".bl2.test,127.0.0.3",
        address => rev4('127.0.0.6') . ".bl2.test,127.0.0.20",
        address => rev4('127.0.0.4') . ".wl.test,127.0.0.5",
        address => rev4('127.0.0.7') . ".wl2.test,127.0.0.2",
    ]);

my $DNSBL = "zones = bl1.test*2, bl2.test=127.0.0.[10;11]*3, bl2.test=127.0.0.[2..9]*1\n"
          . "zones = wl.test=127.0.0.[2..9]*-5\n"
          . "threshold = 4\nallow_threshold = -2\naction = reject\ncache_ttl = 1h\n";

sub session {
    my ($srv, $ip) = @_;
    my $c = $srv->client(local => $ip);
    $c->cmd('EHLO client.test');
    my $r = $c->cmd('MAIL FROM:<a@sender.example>');
    $c->cmd('QUIT');
    $c->close;
    return $r ? "$r->{code} " . ($r->{enhanced} // '') : 'no reply';
}

for my $backend ('lmdb', 'redis') {
  SKIP: {
    my $redis;
    if ($backend eq 'redis') {
        skip 'redis-server is not installed', 1 unless Upesi::Test::Redis->available;
        $redis = Upesi::Test::Redis->start;
    }
    my $srv = Upesi::Test->new(
        plugins => ['dnswl', 'dnsbl', 'queue_spool'],
        smtp => { dns_servers => $dns->server, local_domains => 'example.com',
                  workers => 1, $redis ? (store => $redis->url) : () },
        ini => { 'dnsbl.ini' => $DNSBL, 'dnswl.ini' => "zones = wl2.test*-1\naction = log\n" });
    $srv->start;
    my $n3 = $dns->queries(qr/^3\.0\.0\.127\.bl1\.test$/);
    my $n2 = $dns->queries(qr/^2\.0\.0\.127\.bl1\.test$/);

    is session($srv, '127.0.0.2'), '554 5.7.1', "$backend: 2 + 3 >= threshold 4: rejected";
    ok $srv->wait_log(qr/127\.0\.0\.2: DNSBL score \+5, dns.score 5/), "$backend: the log has the sum";
    is session($srv, '127.0.0.3'), '250 2.1.0', "$backend: 2 < 4: passes";
    is session($srv, '127.0.0.4'), '250 2.1.0', "$backend: 2 - 5 = -3: passes";
    ok $srv->wait_log(qr/127\.0\.0\.4 whitelisted: dns.score -3 <= allow_threshold -2/),
        "$backend: allow_threshold: whitelisted";
    is session($srv, '127.0.0.5'), '250 2.1.0', "$backend: the second bl2 filter";
    ok $srv->wait_log(qr/127\.0\.0\.5: DNSBL score \+1, dns.score 1/), "$backend: 127.0.0.[2..9]*1 matched 127.0.0.3";
    is session($srv, '127.0.0.6'), '250 2.1.0', "$backend: an answer no filter takes";
    ok $srv->wait_log(qr/127\.0\.0\.6: DNSBL score \+0, dns.score 0/), "$backend: scores 0";
    is session($srv, '127.0.0.7'), '554 5.7.1', "$backend: dnswl's -1 and dnsbl's 5: 4, still at the threshold";
    ok $srv->wait_log(qr/127\.0\.0\.7: DNSBL score \+5, dns.score 4/), "$backend: dns.score sums dnswl and dnsbl";

    # the cache
    is session($srv, '127.0.0.3'), '250 2.1.0', "$backend: 127.0.0.3 again";
    ok $srv->wait_log(qr/127\.0\.0\.3: DNSBL score \+2 \(cached\), dns.score 2/), "$backend: decided from the cache, same sum";
    is $dns->queries(qr/^3\.0\.0\.127\.bl1\.test$/) - $n3, 1, "$backend: dnsmasq saw one query for 127.0.0.3, not two";
    is session($srv, '127.0.0.2'), '554 5.7.1', "$backend: the listed client again";
    is $dns->queries(qr/^2\.0\.0\.127\.bl1\.test$/) - $n2, 2, "$backend: a listed client is not cached: asked again";
    my $st = $srv->stat('SMTP.DNSBL');
    is $st->{'SMTP.DNSBL.CacheHits'}, 1, "$backend: SMTP.DNSBL.CacheHits" or diag explain $st;
    is $st->{'SMTP.DNSBL.TotalHits'}, 3, "$backend: SMTP.DNSBL.TotalHits counts the listed clients";
    is $st->{'SMTP.DNSBL.Allowed'}, 1, "$backend: SMTP.DNSBL.Allowed";
    if ($redis) {
        like $redis->cli('GET', 'dnsbl:pass:127.0.0.3'), qr/^2$/, 'the pass cache is dnsbl:pass:<ip> in Redis';
    }
    $srv->stop_ok("$backend: weighted");
    $redis->stop if $redis;
  }
}

# -- a zone that does not answer counts 0, and the sum is not cached -----------------
# (sf.example answers SERVFAIL: a DNS error)
{
    my $srv = Upesi::Test->new(
        plugins => ['dnsbl', 'queue_spool'],
        smtp => { dns_servers => $dns->server, local_domains => 'example.com',
                  workers => 1 },
        ini => { 'dnsbl.ini' => "zones = bl1.test*2, sf.example*3\nthreshold = 4\n"
                                . "action = reject\ncache_ttl = 1h\n" });
    $srv->start;
    my $n3 = $dns->queries(qr/^3\.0\.0\.127\.bl1\.test$/);
    is session($srv, '127.0.0.3'), '250 2.1.0', 'a zone that did not answer counts 0: passes';
    ok $srv->wait_log(qr/127\.0\.0\.3: sf\.example did not answer/), '... and says so';
    is session($srv, '127.0.0.3'), '250 2.1.0', 'the same client again';
    is $dns->queries(qr/^3\.0\.0\.127\.bl1\.test$/) - $n3, 2,
        'a sum with an unanswered zone is not cached: asked again';
    $srv->stop_ok('an unanswered zone');
}

# -- without weights, Domino's actions as before; -t -------------------------------
for my $bad (['zones = bl.test*0', qr/zones: '\*0': a weight is a whole number/],
             ['zones = bl.test*x', qr/zones: '\*x': a weight/],
             ['zones = bl.test=127.0.0.[2..]*2', qr/zones: '127.0.0.\[2..\]' is not a reply filter/],
             ['zones = bl.test=10.0.0.[2;3]*2', qr/is not a reply filter inside 127\/8/],
             ['threshold = lots', qr/threshold: expected a whole number/],
             ['allow_threshold = 3', qr/allow_threshold: /],
             ['cache_ttl = forever', qr/cache_ttl: /]) {
    my $s = Upesi::Test->new(plugins => ['dnsbl', 'queue_spool'],
                             ini => { 'dnsbl.ini' => "zones = ok.test*1\n$bad->[0]\n" });
    my ($exit, $out) = upesi_check($s->conf);
    isnt $exit, 0, "-t refuses '$bad->[0]'";
    like $out, qr/dnsbl\.ini:2: .*$bad->[1]/, '  with dnsbl.ini:2 and the reason' or diag $out;
}
for my $bad (["zones = a.test\ncache_ttl = 1h\n", qr/cache_ttl: only with weighted zones/],
             ["zones = a.test*2, a.test*3\n", qr/zone a.test is listed twice and one of them accepts every answer/]) {
    my $s = Upesi::Test->new(plugins => ['dnsbl', 'queue_spool'], ini => { 'dnsbl.ini' => $bad->[0] });
    my ($exit, $out) = upesi_check($s->conf);
    isnt $exit, 0, "-t refuses " . ($bad->[0] =~ s/\n/; /gr);
    like $out, $bad->[1], '  with the reason' or diag $out;
}

done_testing;
