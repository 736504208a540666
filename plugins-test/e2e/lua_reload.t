#!/usr/bin/perl
# lua_reload.t - a reload refused by a later plugin leaves the Lua bridge
# on the old generation, also in a worker started after the refusal; and
# upesi.kv is the host's store now (docs/store.md): lua.ini kv_max_keys is
# accepted but bounds nothing (store_size does), so no committed value of
# it evicts a key.
use strict;
use warnings;
use FindBin;
use lib "$FindBin::Bin/../lib";
use Test::More;
use Upesi::Test;
use Upesi::Forward qw(wait_for);

need_built('plugins/lua.so', 'plugins/queue_spool.so', 'plugins-test/plugins/tester.so');
deadline(60);

# each recipient is a key; a recipient whose predecessor's key was evicted
# (the store holds fewer keys than recipients so far) is refused
my $lua = <<'LUA';
local seen = {}
upesi.hook("rcpt", function(conn, txn, rcpt)
  rcpt = tostring(rcpt)
  for _, k in ipairs(seen) do
    if upesi.kv.get(k) == nil then return upesi.DENY, "evicted " .. k end
  end
  upesi.kv.set(rcpt, true)
  seen[#seen + 1] = rcpt
  return upesi.CONT
end)
LUA

my $s = Upesi::Test->new(
    smtp    => { local_domains => 'example.com', workers => 1 },
    plugins => [ 'lua', 'tester', 'queue_spool' ],
    ini     => { 'lua.ini' => "scripts = t.lua\nkv_max_keys = 100\n",
                 'lua/t.lua' => $lua,
                 'tester.ini' => "[rcpt]\nverdict = CONT\n" });
$s->start;

sub three_rcpts {
    my ($tag) = @_;
    my $c = $s->client;
    $c->cmd('EHLO lua.test');
    $c->cmd('MAIL FROM:<a@example.org>');
    my @codes = map { $c->cmd("RCPT TO:<$tag$_\@example.com>")->{code} } 1 .. 3;
    $c->cmd('QUIT');
    return "@codes";
}

is three_rcpts('a'), '250 250 250', 'kv_max_keys = 100: three keys kept';

$s->write_conf('lua.ini', "scripts = t.lua\nkv_max_keys = 1\n");
$s->write_conf('tester.ini', "no_such_key = 1\n");
is $s->hup, 'failed', 'a reload with kv_max_keys = 1 is refused by a later plugin';

my ($line) = $s->log_lines(qr/worker 0 started \(pid \d+\)/);
my ($wpid) = ($line // '') =~ /pid (\d+)/;
ok $wpid, 'the worker\'s pid is in the log';
kill 'KILL', $wpid if $wpid;
ok wait_for(15, sub { $s->log_lines(qr/worker 0 started/) >= 2 && $s->client->greeting }),
    'a new worker answers';
is three_rcpts('b'), '250 250 250',
    'the new worker keeps kv_max_keys = 100: the refused bound was never adopted';

$s->write_conf('tester.ini', "[rcpt]\nverdict = CONT\n");
is $s->hup, 'done', 'the same kv_max_keys = 1, now accepted';
is three_rcpts('c'), '250 250 250',
    'a committed kv_max_keys = 1 evicts nothing: the store is bounded by store_size';
$s->stop_ok;
done_testing;
