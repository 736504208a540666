#!/usr/bin/perl
# lua_dns.t - DNS from Lua against a real DNS server (dnsmasq on a free
# loopback port; a silent UDP socket for timeouts): upesi.dns.a, aaaa, txt,
# mx, ptr, lookup, batch, ip_name, conn:reverse_name, the statuses nxdomain,
# nodata, timeout, error; other sessions are served while a script waits;
# a call abandoned while it waits for DNS (plugin_timeout, disconnect)
# cancels its query.  Then the DNSBL scoring example
# (lua/examples/dnsbl_score.lua): listed over the threshold (refused at
# MAIL FROM, Domino style), under it, an allow list that subtracts, a
# return code filter, a list that times out (fail open).
use strict;
use warnings;
use FindBin;
use lib "$FindBin::Bin/../lib";
use Test::More;
use Time::HiRes qw(time sleep);
use Upesi::Test;
use Upesi::Test::DNS;

deadline(150);

plan skip_all => 'dnsmasq is not installed' unless Upesi::Test::DNS::available();

# -- dnsmasq ---------------------------------------------------------------------
my $dns = Upesi::Test::DNS->start(
    local => ['test', 'example'],
    silent => ['timeout.test'],
    records => [
        address => '2.0.0.127.zone.test,127.0.0.2',
        txt => '2.0.0.127.zone.test,listed here',
        mx => 'mx.test,mx1.mx.test,20', mx => 'mx.test,mx0.mx.test,10',
        host => 'host.test,192.0.2.7,2001:db8::7',
        host => 'localhost.test,127.0.0.1',
        address => '1.0.0.127.zen.example,127.0.0.4',
        address => '1.0.0.127.bl.example,127.0.0.2',
        address => '1.0.0.127.wl2.example,127.0.0.2',
    ]);

sub lua_server {
    my ($files, %smtp) = @_;
    my @names = sort grep { m{^lua/} } keys %$files;
    my $srv = Upesi::Test->new(
        smtp    => { local_domains => 'example.com',
                     dns_servers => $dns->server, dns_timeout => 1,
                     error_limit => 1000, %smtp },
        plugins => [ 'lua', 'queue_spool' ],
        ini     => { 'lua.ini' => 'scripts = ' . join(', ', map { s{^lua/}{}r } @names) . "\n",
                     %$files },
    );
    $srv->start;
    return $srv;
}

# -- the API -----------------------------------------------------------------------
my $api = <<'LUA';
local function list(t)
  if type(t) ~= "table" then return tostring(t) end
  local o = {}
  for i, v in ipairs(t) do
    o[i] = type(v) == "table" and (v.preference .. ":" .. v.exchange) or v
  end
  return table.concat(o, ",")
end
local checks = {}
function checks.a()
  local r, ttl = upesi.dns.a("2.0.0.127.zone.test")
  return "a=" .. list(r) .. " ttl=" .. math.type(ttl)
end
function checks.aaaa() return "aaaa=" .. list(upesi.dns.aaaa("host.test")) end
function checks.txt() return "txt=" .. list(upesi.dns.txt("2.0.0.127.zone.test")) end
function checks.mx() return "mx=" .. list(upesi.dns.mx("mx.test")) end
function checks.ptr() return "ptr=" .. list(upesi.dns.ptr("127.0.0.1")) end
function checks.lookup() return "lookup=" .. list(upesi.dns.lookup("MX", "mx.test")) end
function checks.nx()
  local r, status = upesi.dns.a("nope.zone.test")
  return "nx=" .. tostring(r) .. "," .. status
end
function checks.nodata()
  local r, status = upesi.dns.txt("host.test")
  return "nodata=" .. tostring(r) .. "," .. status
end
function checks.timeout()
  local t = upesi.monotonic()
  local r, status = upesi.dns.a("x.timeout.test")
  return ("timeout=%s,%s after=%.1f"):format(tostring(r), status, upesi.monotonic() - t)
end
function checks.badname()
  local r, status = upesi.dns.a("bad..name")
  local ok = pcall(upesi.dns.lookup, "SRV", "x.test")
  return "badname=" .. tostring(r) .. "," .. status .. " badtype=" .. tostring(ok)
end
function checks.batch()
  local t = upesi.monotonic()
  local res = upesi.dns.batch{ {"a", "2.0.0.127.zone.test"}, {type = "txt", name = "2.0.0.127.zone.test"},
                               {"a", "nope.zone.test"}, {"a", "y.timeout.test"}, {"mx", "mx.test"} }
  local o = {}
  for i, r in ipairs(res) do o[i] = r.type .. ":" .. r.status .. ":" .. list(r.records) end
  return ("batch=%s after=%.1f"):format(table.concat(o, ";"), upesi.monotonic() - t)
end
function checks.reverse(conn) return "reverse=" .. tostring(conn:reverse_name()) end
function checks.ipname()
  return "ipname=" .. upesi.dns.ip_name("192.0.2.7", "zone.test") .. "," ..
         upesi.dns.ip_name("192.0.2.7") .. "," ..
         upesi.dns.ip_name("2001:db8::1", "zone.test"):sub(1, 8) .. "," ..
         tostring(upesi.dns.ip_name("nonsense", "zone.test"))
end
function checks.hang() upesi.dns.a("z.timeout.test") return "answered" end
-- a batch whose third item fails while the first two are in flight: the
-- error is caught, and the next wait must not leave those two answering
-- into a batch that is gone (ASan saw the write after free)
function checks.badbatch()
  local n = 0
  local item = setmetatable({}, { __index = function(t, k)
    n = n + 1
    if n > 2 then error("boom") end
    return k == "type" and "a" or "w.timeout.test"
  end })
  local ok = pcall(upesi.dns.batch, { {"a", "v.timeout.test"}, item })
  upesi.sleep(1.5)    -- past dns_timeout: the two would have answered
  return "badbatch=" .. tostring(ok)
end
upesi.hook("rcpt", function(conn, txn, rcpt)
  local f = checks[rcpt:match("^([^@]+)")]
  if f then return upesi.DENY, f(conn, txn) end
end)
LUA

sub text {
    my ($c, $who) = @_;
    my $r = $c->cmd("RCPT TO:<$who\@example.com>", 20);
    return $r ? $r->{text} : 'no reply';
}

{
    my $srv = lua_server({ 'lua/dns.lua' => $api });
    my $c = $srv->client;
    $c->cmd('EHLO client.test');
    $c->cmd('MAIL FROM:<a@example.org>');
    like text($c, 'a'), qr/a=127\.0\.0\.2 ttl=integer/, 'upesi.dns.a: records and ttl';
    like text($c, 'aaaa'), qr/aaaa=2001:db8::7/, 'upesi.dns.aaaa';
    like text($c, 'txt'), qr/txt=listed here/, 'upesi.dns.txt';
    like text($c, 'mx'), qr/mx=10:mx0\.mx\.test,20:mx1\.mx\.test/, 'upesi.dns.mx: by preference';
    like text($c, 'ptr'), qr/ptr=localhost\.test/, 'upesi.dns.ptr of an address';
    like text($c, 'lookup'), qr/lookup=10:mx0/, 'upesi.dns.lookup(type, name)';
    like text($c, 'nx'), qr/nx=nil,nxdomain/, 'nil, "nxdomain"';
    like text($c, 'nodata'), qr/nodata=nil,nodata/, 'nil, "nodata"';
    like text($c, 'badname'), qr/badname=nil,error badtype=false/, 'a bad name: "error"; a bad type: a Lua error';
    like text($c, 'reverse'), qr/reverse=localhost\.test/, 'conn:reverse_name: PTR, forward-confirmed';
    like text($c, 'ipname'), qr/ipname=7\.2\.0\.192\.zone\.test,7\.2\.0\.192\.in-addr\.arpa,1\.0\.0\.0\.,nil/,
        'upesi.dns.ip_name';

    # a session waiting for a timeout does not hold up another
    $c->send_line('RCPT TO:<timeout@example.com>');
    my $c2 = $srv->client;
    $c2->cmd('EHLO client.test');
    $c2->cmd('MAIL FROM:<a@example.org>');
    my $t0 = time;
    like text($c2, 'a'), qr/a=127\.0\.0\.2/, 'another session is answered while one waits';
    ok time - $t0 < 0.5, '... at once';
    my $r = $c->read_reply(10);
    like $r && $r->{text}, qr/timeout=nil,timeout after=1\.\d/, 'nil, "timeout" after dns_timeout';
    like text($c, 'batch'), qr/batch=a:ok:127\.0\.0\.2;txt:ok:listed here;a:nxdomain:;a:timeout:;mx:ok:10:mx0\.mx\.test,20:mx1\.mx\.test after=1\.\d/,
        'upesi.dns.batch: all at once (one timeout long), answers in order';
    like text($c, 'badbatch'), qr/badbatch=false/,
        'a batch that fails part way: the error caught, its queries cancelled';
    like text($c, 'a'), qr/a=127\.0\.0\.2/, '... and the session goes on';
    $srv->stop_ok('dns api');
}

# -- abandoned while waiting for DNS ---------------------------------------------------
{
    my $srv = lua_server({ 'lua/dns.lua' => $api }, plugin_timeout => 0.3, dns_timeout => 2);
    my $c = $srv->client;
    $c->cmd('EHLO client.test');
    $c->cmd('MAIL FROM:<a@example.org>');
    my $r = $c->cmd('RCPT TO:<hang@example.com>', 10);
    is $r->{code}, 451, 'plugin_timeout while waiting for DNS: 451';
    ok $srv->wait_log(qr/hook rcpt: call abandoned while waiting/, 5), 'the coroutine is dropped';
    $c->send_line('RCPT TO:<hang@example.com>');
    sleep 0.1;
    $c->close;
    sleep 2.5;     # past dns_timeout: a callback that was not cancelled would run now
    is scalar($srv->log_lines(qr/call abandoned while waiting/)), 2,
        'a disconnect abandons the waiting call too';
    my $c2 = $srv->client;
    $c2->cmd('EHLO client.test');
    $c2->cmd('MAIL FROM:<a@example.org>');
    like text($c2, 'a'), qr/a=127\.0\.0\.2/, 'the server goes on';
    $srv->stop_ok('dns abandon');
}

# -- the DNSBL scoring example --------------------------------------------------------
my $example = slurp("$ROOT/lua/examples/dnsbl_score.lua") // die "no example";

sub dnsbl {
    my ($edit, $what) = @_;
    my $lua = $example;
    $edit->() for $lua;
    my $srv = lua_server({ 'lua/dnsbl_score.lua' => $lua });
    my $c = $srv->client;
    my $g = $c->greeting;
    is $g && $g->{code}, 220, "$what: greeted";
    $c->cmd('EHLO client.test');
    my $r = $c->cmd('MAIL FROM:<a@example.org>');
    return ($srv, $r);
}
{
    my ($srv, $r) = dnsbl(sub { }, 'listed');
    is "$r->{code} $r->{enhanced}", '554 5.7.1', 'score 2+2 >= 3: MAIL FROM refused';
    like $r->{text}, qr/client \[127\.0\.0\.1\] blocked using DNSBL score 4/, '... with the score';
    ok $srv->wait_log(qr/dnsbl score 4 for 127\.0\.0\.1: zen\.example=127\.0\.0\.4\*2 bl\.example=127\.0\.0\.2\*2/, 5),
        'the log names the lists, answers and weights';
    is $srv->stat('Lua.')->{'Lua.DNSBL.Score.Rejected'}, 1, 'counted';
    $srv->stop_ok('dnsbl listed');
}
{
    my ($srv, $r) = dnsbl(sub { s/\^127%\.0%\.0%\.2\$/^127%.0%.0%.3\$/ or die }, 'answer filter');
    is $r->{code}, 250, 'bl.example answers 127.0.0.2, the site wants .3: score 2, accepted';
    $srv->stop_ok('dnsbl filter');
}
{
    my ($srv, $r) = dnsbl(sub { s/"wl\.example"/"wl2.example"/ or die }, 'allow list');
    is $r->{code}, 250, 'an allow list subtracts: 2+2-3 = 1, accepted';
    $srv->stop_ok('dnsbl allow');
}
{
    my ($srv, $r) = dnsbl(sub { s/"bl\.example"/"bl.timeout.test"/ or die }, 'timeout');
    is $r->{code}, 250, 'a list that times out counts as not listed (fail open)';
    $srv->stop_ok('dnsbl timeout');
}

done_testing;
