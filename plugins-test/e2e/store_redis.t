#!/usr/bin/perl
# store_redis.t - the store on a real Redis (redis-server started here on a
# free loopback port, persisting nothing) shared by three upesi hosts:
# lua/examples/ratelimit.lua trips at N transactions summed over the three
# hosts, greylist.lua lets a retry pass on another host, AUTH and SELECT
# work, keys carry the plugin's prefix.  Then Redis goes away: a host with
# store_failure = accept goes on taking mail, one with tempfail answers
# 451 4.3.0, a hung Redis (SIGSTOP) costs a call store_timeout and no more
# (the answer is the store's 451, not the plugin timeout's); the failures
# are logged once and counted in SMTP.Store.Errors; once Redis is back
# every host reconnects within what docs/store.md promises (the longest
# wait between retries, 2 s, plus one connect: store_timeout).
use strict;
use warnings;
use FindBin;
use lib "$FindBin::Bin/../lib";
use Test::More;
use Time::HiRes qw(sleep time);
use Upesi::Test;
use Upesi::Test::Redis;

plan skip_all => 'redis-server is not installed' unless Upesi::Test::Redis->available;
deadline(180);

my $N = 9;
my $TIMEOUT_MS = 500;
my $redis = Upesi::Test::Redis->start(password => 's3cr:t', db => 2, unix => 1);
(my $url = $redis->url) =~ s/s3cr:t/s3cr%3At/;     # ':' in a password is %-encoded

sub example {
    my ($name, %subst) = @_;
    my $lua = slurp("$ROOT/lua/examples/$name") // die "no example $name";
    for my $from (keys %subst) {
        $lua =~ s/\Q$from\E/$subst{$from}/ or die "$name: '$from' not found";
    }
    return $lua;
}

my $scripts = {
    'lua/ratelimit.lua' => example('ratelimit.lua', 'local limit = 100 ' => "local limit = $N "),
    'lua/greylist.lua'  => example('greylist.lua', 'local delay = 300 ' => 'local delay = 1 '),
    'lua/probe.lua'     => <<'LUA',
upesi.hook("rcpt", function(conn, txn, rcpt)
  if rcpt == "count@example.com" then
    local n, err = upesi.kv.count()
    return upesi.DENY, "count=" .. tostring(n) .. " err=" .. tostring(err)
  end
  if rcpt == "types@example.com" then
    local kv = upesi.kv
    kv.set("t:s", "text"); kv.set("t:n", 3); kv.set("t:f", 1.5); kv.set("t:b", false)
    local ok = pcall(kv.incr, "t:s")
    local r = ("get=%s,%s,%s,%s"):format(kv.get("t:s"), kv.get("t:n"), kv.get("t:f"),
                                       tostring(kv.get("t:b")))
    r = r .. (" incr=%d,%d textincr=%s"):format(kv.incr("t:n", 2, 10), kv.incr("t:new", 5, 100),
                                                tostring(ok))
    r = r .. (" ttl=%s,%s,%s"):format(kv.ttl("t:s"), tostring(kv.ttl("t:n") <= 10),
                                      tostring(kv.ttl("t:none")))
    r = r .. (" expire=%s,%s del=%s,%s"):format(tostring(kv.expire("t:s", 50)),
      tostring(kv.expire("t:none", 5)), tostring(kv.del("t:b")), tostring(kv.del("t:b")))
    return upesi.DENY, r
  end
end)
LUA
};

my @hosts;
for my $i (0 .. 2) {
    my $policy = $i == 2 ? 'tempfail' : 'accept';
    my $srv = Upesi::Test->new(
        smtp    => { local_domains => 'example.com', error_limit => 1000,
                     store => $i == 1 ? do { (my $u = $redis->unix_url) =~ s/s3cr:t/s3cr%3At/; $u } : $url,
                     store_timeout => $TIMEOUT_MS, plugin_timeout => 10 },
        plugins => [ 'lua', 'queue_spool' ],
        ini     => { 'lua.ini' => "scripts = probe.lua, ratelimit.lua, greylist.lua\n" .
                                  "store_failure = $policy\n", %$scripts },
    );
    $srv->start;
    push @hosts, $srv;
}
ok $hosts[$_]->wait_log(qr/store: connected to redis/, 10), "host $_ connected to Redis"
    for 0 .. 2;
unlike $hosts[0]->log_text, qr/s3cr/, 'the password is never logged';

sub session {
    my ($srv, $from, $to) = @_;
    my $c = $srv->client;
    $c->cmd('EHLO client.test');
    my $m = $c->cmd("MAIL FROM:<$from>");
    my $r = $m && $m->{code} == 250 && defined $to ? $c->cmd("RCPT TO:<$to>") : $m;
    $c->cmd('QUIT');
    $c->close;
    return $r ? $r : { code => 0, text => 'no reply', enhanced => '' };
}

# -- one rate limit over three hosts ----------------------------------------------
my @codes = map { session($hosts[$_ % 3], "u$_\@sender.test")->{code} } 0 .. 3 * $N - 1;
is scalar(grep { $_ == 250 } @codes), $N, "the rate limit trips at exactly $N summed over three hosts";
is "@codes[0 .. $N - 1]", join(' ', (250) x $N), '... the first N pass, whichever host they reach';
is $redis->cli('GET', 'lua:rate:sender.test'), 3 * $N, 'the counter lives in Redis as lua:rate:sender.test, in db 2';
my $ttl = $redis->cli('TTL', 'lua:rate:sender.test');
ok $ttl > 3500 && $ttl <= 3600, "it expires with the script's window ($ttl s)";

# -- greylisting over three hosts ----------------------------------------------------
my $r = session($hosts[0], 'g@grey.test', 'bob@example.com');
like "$r->{code} $r->{text}", qr/^451 4\.7\.1 Greylisted/, 'greylist: a new triplet is deferred on host 0';
sleep 1.2;
$r = session($hosts[1], 'g@grey.test', 'bob@example.com');
is $r->{code}, 250, '... its retry after the delay passes on host 1 (unix socket)';
$r = session($hosts[2], 'g@grey.test', 'bob@example.com');
is $r->{code}, 250, '... and host 2 knows it too';
like $redis->cli('GET', 'lua:grey:127.0.0/g@grey.test/bob@example.com'), qr/^spassed$/,
    'the triplet is a Lua string in Redis ("s" + the text)';

$r = session($hosts[1], 't@types.test', 'types@example.com');
like $r->{text}, qr/get=text,3,1\.5,false incr=5,5 textincr=false ttl=-1,true,nil expire=true,false del=true,false/,
    'upesi.kv on Redis: every value type, incr (of text: an error), ttl, expire, del' or diag $r->{text};
is $redis->cli('GET', 'lua:t:n'), '5', 'a counter is its decimal text in Redis';
$r = session($hosts[0], 'c@count.test', 'count@example.com');
like $r->{text}, qr/count=nil err=store: not supported/, 'kv.count() on Redis: nil and why';

# -- Redis stopped -------------------------------------------------------------------
$redis->stop;
ok $hosts[0]->wait_log(qr/WARNING store: redis:\/\/127\.0\.0\.1:\d+\/2: .*store calls fail/, 10),
    'host 0 logs that Redis went away';
$r = session($hosts[0], 'a@down.test', 'bob@example.com');
is $r->{code}, 250, 'store_failure = accept: the session goes on (rate limit and greylist pass)';
$r = session($hosts[2], 'a@down.test');
is "$r->{code} $r->{enhanced}", '451 4.3.0', 'store_failure = tempfail: 451 4.3.0';
like $r->{text}, qr/state store unavailable/, '... saying why';
for (1 .. 5) { session($hosts[0], "x$_\@down.test", 'bob@example.com') }
my @warn = $hosts[0]->log_lines(qr/lua: store: .* failed/);
is scalar(@warn), 1, 'the failures are logged once a minute, not once each';
my $st = $hosts[0]->stat('SMTP.Store');
cmp_ok $st->{'SMTP.Store.Errors'}, '>=', 6, "SMTP.Store.Errors counts them ($st->{'SMTP.Store.Errors'})";
cmp_ok $hosts[0]->stat('Lua.Store')->{'Lua.Store.Failures'}, '>=', 6, 'Lua.Store.Failures too';
is scalar($hosts[0]->log_lines(qr/WARNING store: redis:/)), 1, 'one line for the lost connection, none per retry';

# -- back ----------------------------------------------------------------------
my $t0 = time;
$redis->start_again;
my $up = time;
my $bound = 2 + $TIMEOUT_MS / 1000;
for my $i (0 .. 2) {
    my $line = $hosts[$i]->wait_log(qr/NOTICE store: reconnected to redis/, 10);
    my $took = time - $up;
    ok $line && $took <= $bound + 0.1 * $SLOW,
        sprintf "host %d reconnects %.2f s after Redis is back (promised: %.1f s)", $i, $took, $bound;
}
$r = session($hosts[2], 'a@back.test');
is $r->{code}, 250, 'the tempfail host takes mail again';
is $redis->cli('GET', 'lua:rate:back.test'), 1, '... and counts in Redis again';

# -- a hung Redis: a call waits store_timeout, no more ---------------------------------
$redis->pause;
my $t = time;
$r = session($hosts[2], 'a@hung.test');
my $took = time - $t;
$redis->resume;
is "$r->{code} $r->{enhanced}", '451 4.3.0', 'a hung Redis: tempfail answers 451 4.3.0';
like $r->{text}, qr/state store unavailable/, '... the store timed out, not the plugin (plugin_timeout 10 s)';
cmp_ok $hosts[2]->stat('SMTP.Store')->{'SMTP.Store.Timeouts'}, '>=', 1, 'SMTP.Store.Timeouts';
diag sprintf 'the MAIL command took %.2f s with store_timeout %.1f s', $took, $TIMEOUT_MS / 1000;

# -- a wrong password: Redis takes the connection, then refuses AUTH ------------
# The backoff (100 ms doubling to 2 s, docs/store.md) holds: a connection
# that is refused after it opens is a failure too, and it is said once.
{
    (my $bad = $url) =~ s/s3cr%3At/wrong/;
    my $srv = Upesi::Test->new(
        smtp    => { local_domains => 'example.com', store => $bad,
                     store_timeout => $TIMEOUT_MS },
        plugins => [ 'lua' ],
        ini     => { 'lua.ini' => "scripts = probe.lua\n", %$scripts },
    );
    my ($c0) = $redis->cli('INFO', 'stats') =~ /total_connections_received:(\d+)/;
    $srv->start;
    sleep 3;
    my ($c1) = $redis->cli('INFO', 'stats') =~ /total_connections_received:(\d+)/;
    # 0, 0.1, 0.3, 0.7, 1.5 s (then 2 s apart) and a redis-cli of our own
    cmp_ok $c1 - $c0, '<=', 8, sprintf('a refused AUTH backs off: %d connections in 3 s', $c1 - $c0);
    is scalar($srv->log_lines(qr/store: .*AUTH refused/)), 1, '... said once';
    is scalar($srv->log_lines(qr/store: (re)?connected to/)), 0, '... never "connected"';
    $srv->stop_ok('the host with a wrong password');
}

$_->stop_ok("host") for @hosts;
$redis->stop;
done_testing;
