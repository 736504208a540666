#!/usr/bin/perl
# lua_limits.t - what the lua plugin does with scripts that misbehave
# (docs/lua.md, "Limits"): an infinite loop (also one that catches its own
# errors), a memory bomb (also a single huge string, also inside pcall): each
# gets 451 4.3.0 and a CRIT line naming script and hook, and the server goes
# on serving; a runtime error gives 451 and a log line with script:line; a
# handler that returns no verdict; lua.ini errors and script syntax errors
# at -t (file:line); a script that loops at load; SIGHUP with a broken
# script keeps the running scripts, with a good one switches (and the
# key-value store survives).
use strict;
use warnings;
use FindBin;
use lib "$FindBin::Bin/../lib";
use Test::More;
use Upesi::Test;

deadline(120);

my $bad = <<'LUA';
upesi.hook("rcpt", function(conn, txn, rcpt)
  local what = rcpt:match("^([^@]+)")
  if what == "loop" then
    while true do end
  elseif what == "pcallloop" then
    while true do pcall(function() while true do end end) end
  elseif what == "sortloop" then
    table.sort({3, 2, 1, 4, 5}, function(a, b) while true do end end)
  elseif what == "bomb" then
    local t = {}
    for i = 1, 1e9 do t[i] = ("x"):rep(1000) .. i end
  elseif what == "bigstring" then
    local s = ("x"):rep(1024 * 1024 * 1024)
  elseif what == "pcallbomb" then
    local keep = {}
    while true do
      pcall(function() for i = 1, 1e9 do keep[#keep + 1] = {} end end)
    end
  elseif what == "error" then
    local t = nil
    return t.field
  elseif what == "throw" then
    error({ code = 1 })
  elseif what == "verdict" then
    return "yes"
  elseif what == "tostr" then
    -- its __tostring must not run: outside the budget, outside any pcall
    return setmetatable({}, { __tostring = function() error("x") end })
  elseif what == "yield" then
    coroutine.yield()
  end
  return upesi.CONT
end)
LUA

sub server {
    my ($lua, %ini) = @_;
    my $ini = "scripts = bad.lua\n" . join('', map { "$_ = $ini{$_}\n" } sort keys %ini);
    my $srv = Upesi::Test->new(
        smtp    => { local_domains => 'example.com', error_limit => 1000 },
        plugins => [ 'lua', 'queue_spool' ],
        ini     => { 'lua.ini' => $ini, 'lua/bad.lua' => $lua },
    );
    $srv->start;
    return $srv;
}

# -- budgets ---------------------------------------------------------------------
{
    my $srv = server($bad, max_instructions => '2M', max_memory => '16M');
    my $c = $srv->client;
    $c->cmd('EHLO client.test');
    $c->cmd('MAIL FROM:<a@example.org>');
    for my $case (['loop', 'instructions', '\d+'], ['pcallloop', 'instructions', 6],
                  ['sortloop', 'instructions', 8], ['bomb', 'memory', 11],
                  ['bigstring', 'memory', 13], ['pcallbomb', 'memory', '1[5-8]']) {
        my ($who, $limit, $line) = @$case;
        my $r = $c->cmd("RCPT TO:<$who\@example.com>", 30);
        is $r && "$r->{code} $r->{enhanced}", '451 4.3.0', "$who: 451 4.3.0";
        ok $srv->wait_log(qr/CRIT \S+: lua: script bad\.lua, hook rcpt: over max_$limit .*at bad\.lua:$line/, 5),
            "$who: CRIT naming script, hook, limit and line";
        is $c->cmd('RCPT TO:<bob@example.com>')->{code}, 250, "$who: the server goes on";
    }
    my $st = $srv->stat('Lua.');
    is $st->{'Lua.Stopped.Instructions'}, 3, 'Lua.Stopped.Instructions counts';
    is $st->{'Lua.Stopped.Memory'}, 3, 'Lua.Stopped.Memory counts';

    for my $case (['error', qr/ERR \S+: lua: bad\.lua:21: attempt to index a nil value \(local 't'\) \(hook rcpt\)/],
                  ['throw', qr/ERR \S+: lua: bad\.lua:23: \(error object is a table value\) \(hook rcpt\)/],
                  ['verdict', qr/ERR \S+: lua: bad\.lua: the handler returned "yes", not a verdict/],
                  ['tostr', qr/ERR \S+: lua: bad\.lua: the handler returned a table, not a verdict/],
                  ['yield', qr/ERR \S+: lua: bad\.lua:30: coroutine\.yield\(\) from a handler/]) {
        my ($who, $re) = @$case;
        my $r = $c->cmd("RCPT TO:<$who\@example.com>");
        is "$r->{code} $r->{enhanced}", '451 4.3.0', "$who: 451 4.3.0";
        ok $srv->wait_log($re, 5), "$who: logged with script:line" or diag $srv->log_tail(5);
    }
    is $srv->stat('Lua.')->{'Lua.Errors'}, 5, 'Lua.Errors counts';
    is $c->cmd('RCPT TO:<bob@example.com>')->{code}, 250, 'still serving';
    $srv->stop_ok('budgets');
}

# -- the shared tables stay shared: no script changes them for another ---------------
{
    my $poke = <<'LUA';
upesi.hook("rcpt", function(conn, txn, rcpt)
  local r = {}
  local f, s = pairs(string)
  r[#r + 1] = tostring(pcall(f, 0x41414141))          -- no crash: true
  r[#r + 1] = tostring(pcall(function() s.upper = nil end))   -- false
  r[#r + 1] = tostring(pcall(rawset, upesi, "DENY", 0))        -- false
  r[#r + 1] = tostring(pcall(rawset, string, "upper", print))  -- false
  r[#r + 1] = tostring(load("return getmetatable(_ENV)")())    -- false
  r[#r + 1] = tostring(rawset({}, "x", 1).x)                   -- 1
  r[#r + 1] = string.upper("ok") .. "/" .. tostring(upesi.DENY ~= 0)  -- OK/true
  return upesi.DENY, table.concat(r, " ")
end)
LUA
    my $srv = Upesi::Test->new(
        smtp    => { local_domains => 'example.com', error_limit => 1000 },
        plugins => [ 'lua', 'queue_spool' ],
        ini     => { 'lua.ini' => "scripts = poke.lua\n", 'lua/poke.lua' => $poke },
    );
    $srv->start;
    my $c = $srv->client;
    $c->cmd('EHLO client.test');
    $c->cmd('MAIL FROM:<a@example.org>');
    my $r = $c->cmd('RCPT TO:<x@example.com>');
    like $r && $r->{text}, qr/ true false false false false 1 OK\/true$/,
        'pairs\'s iterator takes any argument without a crash; no view, rawset or load environment changes a shared table'
        or diag $srv->log_tail(10);
    $srv->stop_ok('shared tables');
}

# -- -t: lua.ini and script errors ----------------------------------------------------
sub check {
    my ($ini, %files) = @_;
    my $s = Upesi::Test->new(plugins => ['lua', 'queue_spool'],
                             ini => { 'lua.ini' => $ini, %files });
    my ($exit, $out) = upesi_check($s->conf);
    return ($exit, $out, $s->conf);
}
{
    my ($exit, $out, $conf) = check("scripts = a.lua, b.lua\n",
        'lua/a.lua' => "upesi.hook('rcpt', function() end)\n",
        'lua/b.lua' => "local x = 1\nif x then\n  x = = 2\nend\n");
    isnt $exit, 0, '-t: a syntax error fails the check';
    like $out, qr/\Q$conf\E\/lua\/b\.lua:3: unexpected symbol near '='/, '... naming file:line' or diag $out;

    ($exit, $out) = check("scripts = a.lua\n", 'lua/a.lua' => "upesi.hook('rcpt', function() end)\n");
    is $exit, 0, '-t: good scripts pass' or diag $out;

    ($exit, $out) = check("scripts = missing.lua\n");
    isnt $exit, 0, '-t: a missing script fails';
    like $out, qr/lua\.ini: scripts: .*missing\.lua: No such file/, '... naming it';

    ($exit, $out) = check("scripts = a.lua\n", 'lua/a.lua' => "\n\nupesi.hook('rcpt_to', function() end)\n");
    like $out, qr/a\.lua:3: upesi\.hook: unknown hook 'rcpt_to'/, '-t: an unknown hook name, with file:line';

    ($exit, $out) = check("scripts = a.lua\n", 'lua/a.lua' => "local n = 0\nwhile true do n = n + 1 end\n");
    isnt $exit, 0, '-t: a script that loops at load fails';
    like $out, qr/a\.lua: over max_instructions \(at a\.lua:\d+\)/, '... and says so';

    ($exit, $out) = check("scripts = a.lua\n", 'lua/a.lua' => "error('boom')\n");
    like $out, qr/a\.lua:1: boom/, '-t: an error at load';

    ($exit, $out) = check("scripts = a.lua\n", 'lua/a.lua' => "\x1bLua\x54\0\x19\x93\r\n\x1a\n");
    like $out, qr/attempt to load a binary chunk/, '-t: bytecode is refused';

    for my $case (["max_instructions = 10\n",
                   qr/lua\.ini:1: max_instructions: expected a count from 1000 to \d+ .*got '10'/],
                  ["max_memory = lots\n", qr/lua\.ini:1: max_memory: expected a size in bytes .*got 'lots'/],
                  ["script = a.lua\n", qr/lua\.ini:1: .*unknown key 'script'/],
                  ["[x]\nscripts = a.lua\n", qr/lua\.ini:2: .*unknown section \[x\]/]) {
        ($exit, $out) = check($case->[0]);
        isnt $exit, 0, "-t refuses: $case->[0]" =~ s/\n//r;
        like $out, $case->[1], '... with file and line' or diag $out;
    }
    # kv_max_keys is deprecated: an old lua.ini still loads, with a warning
    ($exit, $out) = check("scripts = a.lua\nkv_max_keys = 0\nmax_instructions = 2M\n",
                          'lua/a.lua' => "-- nothing\n");
    is $exit, 0, '-t accepts a deprecated kv_max_keys (and 2M instructions)' or diag $out;
    like $out, qr/kv_max_keys is deprecated and ignored/, '... and warns that it does nothing';
}

# -- SIGHUP: a broken script keeps the running generation ------------------------------
{
    my $v1 = <<'LUA';
upesi.hook("rcpt", function(conn, txn, rcpt)
  upesi.kv.incr("calls")
  return upesi.DENY, "version one, calls " .. upesi.kv.get("calls")
end)
LUA
    my $srv = server($v1);
    my $c = $srv->client;
    $c->cmd('EHLO client.test');
    $c->cmd('MAIL FROM:<a@example.org>');
    like $c->cmd('RCPT TO:<x@example.com>')->{text}, qr/version one, calls 1/, 'version one runs';

    $srv->write_conf('lua/bad.lua', "upesi.hook('rcpt', function()\n  return upesi.DENY, 'two'\nedn)\n");
    is $srv->hup, 'failed', 'SIGHUP with a syntax error: reload failed';
    ok $srv->wait_log(qr/lua\/bad\.lua:3: 'end' expected/, 5), 'the error is logged with file:line';
    like $c->cmd('RCPT TO:<x@example.com>')->{text}, qr/version one, calls 2/,
        'the old scripts still run in the open session';
    my $c2 = $srv->client;
    $c2->cmd('EHLO client.test');
    $c2->cmd('MAIL FROM:<a@example.org>');
    like $c2->cmd('RCPT TO:<x@example.com>')->{text}, qr/version one, calls 3/,
        '... and for new sessions';

    $srv->write_conf('lua/bad.lua', <<'LUA');
upesi.hook("rcpt", function(conn, txn, rcpt)
  return upesi.DENY, "version two, calls still " .. upesi.kv.get("calls")
end)
LUA
    is $srv->hup, 'done', 'SIGHUP with a good script: reload done';
    my $c3 = $srv->client;
    $c3->cmd('EHLO client.test');
    $c3->cmd('MAIL FROM:<a@example.org>');
    like $c3->cmd('RCPT TO:<x@example.com>')->{text}, qr/version two, calls still 3/,
        'a new session runs the new script; the key-value store survived';
    like $c->cmd('RCPT TO:<x@example.com>')->{text}, qr/version one, calls 4/,
        'a session opened before keeps its generation';
    $srv->stop_ok('reload');
}

done_testing;
