#!/usr/bin/perl
# lua.t - the lua plugin's API from a script, through the real host
# (docs/lua.md): verdicts with text, code and enhanced code; every hook and
# its argument; conn fields and notes; txn sender, recipients, params,
# notes, size, headers (get, list, add, remove: checked in the spool), the
# body line iterator; upesi.log and print; statistics; the key-value store
# with expiry; time; sleep (PENDING + resume), a call abandoned while it
# sleeps (plugin_timeout, disconnect); the sandbox.
use strict;
use warnings;
use FindBin;
use lib "$FindBin::Bin/../lib";
use Test::More;
use Time::HiRes qw(time sleep);
use Upesi::Test;

deadline(120);

my $script = <<'LUA';
local checks = {}

-- verdicts
function checks.deny() return upesi.DENY, "no thanks" end
function checks.denycode() return upesi.DENY, "go away", 553, "5.7.2" end
function checks.denysoft() return upesi.DENYSOFT end
function checks.ok() return upesi.OK, "taken by lua", 250 end
function checks.disc() return upesi.DENYDISCONNECT, "bye now" end
function checks.softdisc() return upesi.DENYSOFTDISCONNECT end
function checks.nilret() return nil end

-- the connection
function checks.conn(conn, txn, rcpt)
  return upesi.DENY, ("ip=%s port=%s local=%s:%s ipv6=%s helo=%s esmtp=%s " ..
    "tls=%s auth=%s early=%s hook=%s idok=%s cmd=%s"):format(conn.ip,
    type(conn.port), conn.local_ip, conn.local_port, tostring(conn.ipv6),
    conn.helo, tostring(conn.esmtp), tostring(conn.tls),
    tostring(conn.authenticated), tostring(conn.early_talker), conn.hook,
    tostring(#conn.id > 0), conn.command)
end
function checks.connro(conn)
  local ok, err = pcall(function() conn.ip = "1.2.3.4" end)
  local ok2, err2 = pcall(function() return conn.nosuchfield end)
  return upesi.DENY, ("set=%s %s get=%s %s"):format(tostring(ok), err,
    tostring(ok2), err2)
end
function checks.notes(conn, txn)
  conn.notes.count = (tonumber(conn.notes.count) or 0) + 1
  return upesi.DENY, ("helo_note=%s mail_note=%s count=%s none=%s"):format(
    tostring(conn.notes.seen_helo), tostring(txn.notes.mail_seen),
    conn.notes.count, tostring(txn.notes.nothing))
end

-- the transaction
function checks.txn(conn, txn, rcpt)
  return upesi.DENY, ("sender=%s rcpts=%s count=%d qid=%s size=%d local=%s,%s"):format(
    txn.sender, table.concat(txn.recipients, ","), txn.rcpt_count,
    tostring(txn.queue_id), txn.size, tostring(txn:is_local("x@EXAMPLE.com")),
    tostring(txn:is_local("x@elsewhere.test")))
end
function checks.param(conn, txn) return upesi.DENY, "size=" .. tostring(txn.notes.size) end

-- logging and statistics
function checks.log()
  upesi.log("hello from lua")
  upesi.log("warning", "a warning from lua")
  print("printed", 42, true)
  upesi.stat.add("Test.Count")
  upesi.stat.add("Lua.Test.Count", 2)
  upesi.stat.set("Test.Gauge", 7)
  local ok, err = pcall(upesi.stat.add, "bad name")
  local ok2 = pcall(upesi.log, "nolevel", "x")
  return upesi.DENY, "logged badname=" .. tostring(ok) .. " badlevel=" .. tostring(ok2)
end

-- the key-value store
function checks.kv()
  local kv = upesi.kv
  kv.set("s", "text"); kv.set("n", 3); kv.set("f", 1.5); kv.set("b", false)
  local r = {}
  r[#r+1] = ("get=%s,%s,%s,%s,%s"):format(kv.get("s"), kv.get("n"), kv.get("f"),
    tostring(kv.get("b")), tostring(kv.get("missing")))
  r[#r+1] = "incr=" .. kv.incr("n") .. "," .. kv.incr("n", 10) .. "," ..
            kv.incr("new", 5, 100) .. "," .. tostring((pcall(kv.incr, "f", 1)))
  r[#r+1] = ("ttl=%s,%s,%s"):format(kv.ttl("s"), kv.ttl("new") > 99 and "ok" or "bad",
    tostring(kv.ttl("missing")))
  r[#r+1] = "expire=" .. tostring(kv.expire("s", 50)) .. "," ..
            tostring(kv.ttl("s") <= 50) .. "," .. tostring(kv.expire("missing", 5))
  r[#r+1] = "del=" .. tostring(kv.del("b")) .. "," .. tostring(kv.del("b"))
  kv.set("n", nil)
  r[#r+1] = "count=" .. kv.count()
  local ok = pcall(kv.set, "t", {})
  local ok2 = pcall(kv.incr, "s")
  r[#r+1] = "bad=" .. tostring(ok) .. "," .. tostring(ok2)
  return upesi.DENY, table.concat(r, " ")
end
function checks.kvcount() return upesi.DENY, "hits=" .. upesi.kv.incr("hits") end
function checks.kvshort() upesi.kv.set("short", "here", 0.3) return upesi.DENY, "set" end
function checks.kvread() return upesi.DENY, "short=" .. tostring(upesi.kv.get("short")) end

-- time
function checks.time()
  local m1 = upesi.monotonic()
  return upesi.DENY, ("time=%.0f mono=%s os=%d,%s,%s host=%s"):format(upesi.time(),
    tostring(upesi.monotonic() >= m1), os.time(), type(os.clock()),
    os.date("!%Y", 0), upesi.hostname())
end

-- waiting
function checks.sleep()
  local t = upesi.monotonic()
  upesi.sleep(0.3)
  return upesi.DENY, ("slept=%.1f"):format(upesi.monotonic() - t)
end
function checks.hang() upesi.sleep(30) return upesi.DENY, "woke" end
function checks.nested()
  local co = coroutine.wrap(function() upesi.sleep(0.1) end)
  local ok, err = pcall(co)
  local ok2, err2 = pcall(table.sort, {3, 2, 1}, function(a, b) upesi.sleep(0) return a < b end)
  local ok3, err3 = pcall(coroutine.resume, coroutine.running())
  local gen = coroutine.wrap(function() for i = 1, 3 do coroutine.yield(i) end end)
  return upesi.DENY, ("nested=%s sort=%s self=%s gen=%d%d%d"):format(tostring(ok),
    tostring(ok2), tostring(ok3), gen(), gen(), gen())
end

-- the sandbox
function checks.sandbox()
  local r = {}
  for _, name in ipairs{"io", "debug", "package", "require", "dofile",
                        "loadfile", "warn"} do
    r[#r+1] = name .. "=" .. type(_G[name])
  end
  r[#r+1] = "os=" .. type(os.execute) .. type(os.getenv) .. type(os.remove) ..
            type(os.time) .. type(os.clock) .. type(os.date)
  r[#r+1] = "dump=" .. type(string.dump) .. type(("x").dump)
  local bc = "\27Lua" .. string.rep("\0", 20)
  local f, err = load(bc)
  r[#r+1] = "bytecode=" .. tostring(f) .. ":" .. (tostring(err):match("attempt to load a binary chunk") and "refused" or tostring(err))
  r[#r+1] = "loadbt=" .. tostring(pcall(load, "return 1", "x", "b"))
  r[#r+1] = "load=" .. load("return 1 + 1")()
  r[#r+1] = "loadenv=" .. tostring(load("return io")())
  r[#r+1] = "gc=" .. tostring(pcall(setmetatable, {}, {__gc = function() end}))
  r[#r+1] = "collect=" .. tostring(pcall(collectgarbage, "collect")) ..
            "," .. type(collectgarbage("count"))
  r[#r+1] = "shared=" .. tostring(pcall(function() string.upper = nil end)) ..
            tostring(pcall(function() upesi.DENY = 0 end)) ..
            tostring(pcall(function() upesi.kv.get = nil end))
  r[#r+1] = "strmeta=" .. tostring(getmetatable(""))
  r[#r+1] = "pairs=" .. (function() local n = 0 for _ in pairs(string) do n = n + 1 end return n > 10 and "ok" or "bad" end)()
  r[#r+1] = "global=" .. tostring(rawget(_G, "mine"))
  mine = 1
  return upesi.DENY, table.concat(r, " ")
end

upesi.hook("connect", function(conn)
  conn.notes.connect_ip = conn.ip
  if conn.ip ~= "127.0.0.1" then return upesi.DENY end
end)
upesi.hook("helo", function(conn, txn, name)
  conn.notes.seen_helo = name
  if name == "bad.helo" then return upesi.DENY, "bad helo " .. name, 550 end
end)
upesi.hook("mail", function(conn, txn, sender)
  txn.notes.mail_seen = sender
  txn.notes.size = txn:param("SIZE")
  if sender == "refused@example.org" then return upesi.DENY, "sender " .. sender end
end)
upesi.hook("rcpt", function(conn, txn, rcpt)
  local f = checks[rcpt:match("^([^@]+)")]
  if f then return f(conn, txn, rcpt) end
  return upesi.CONT
end)
upesi.hook("data", function(conn, txn)
  if txn.sender == "nodata@example.org" then return upesi.DENYSOFT, "no data today" end
  if txn.sender == "dsn@example.org" then
    return upesi.DENYSOFT, "ret=" .. tostring(txn:mail_param("RET")) ..
      " envid=" .. tostring(txn:mail_param("ENVID")) ..
      " size=" .. tostring(txn:mail_param("SIZE")) ..
      " notify1=" .. tostring(txn:rcpt_param(1, "NOTIFY")) ..
      " orcpt1=" .. tostring(txn:rcpt_param(1, "ORCPT")) ..
      " notify2=" .. tostring(txn:rcpt_param(2, "NOTIFY")) ..
      " notify3=" .. tostring(txn:rcpt_param(3, "NOTIFY")) ..
      " notify0=" .. tostring(txn:rcpt_param(0, "NOTIFY"))
  end
end)
upesi.hook("data_post", function(conn, txn)
  local r = {}
  r[#r+1] = "subject=" .. tostring(txn:header("subject"))
  r[#r+1] = "folded=" .. tostring(txn:header("X-Folded"))
  r[#r+1] = "dups=" .. #txn:headers("X-Remove-Me")
  r[#r+1] = "second=" .. tostring(txn:headers("X-Remove-Me")[2])
  r[#r+1] = "all=" .. #txn:headers()
  r[#r+1] = "first=" .. txn:headers()[1]:match("^[^:]+")
  r[#r+1] = "removed=" .. txn:remove_header("x-remove-me") .. "," .. txn:remove_header("X-None")
  r[#r+1] = "after=" .. tostring(txn:header("X-Remove-Me"))
  local n, lines = 0, {}
  for line in txn:body_lines() do n = n + 1; lines[n] = line end
  r[#r+1] = "lines=" .. n
  r[#r+1] = "body1=" .. tostring(lines[1])
  r[#r+1] = "dot=" .. tostring(lines[3])
  r[#r+1] = "size=" .. tostring(txn.size > 0)
  r[#r+1] = "qid=" .. tostring(txn.queue_id ~= nil)
  r[#r+1] = "badhdr=" .. tostring(txn:add_header("Bad Name", "x"))
  r[#r+1] = "nulhdr=" .. tostring(txn:add_header("X-Nul", "before\0after"))
  r[#r+1] = "nulname=" .. tostring(txn:add_header("X-Nul\0Name", "x"))
  txn:add_header("X-Lua", "added")
  txn:add_header("X-Lua-Result", table.concat(r, " "))
  txn:add_header("X-Lua-After-Add", tostring(txn:header("X-Lua")))
  if txn.sender == "tagme@example.org" then
    r[#r+1] = "action=" .. tostring(txn:action("tag", "X-Tagged: by lua"))
    local ok = pcall(txn.action, txn, "nonsense")
    txn:add_header("X-Action", "tag=" .. tostring(r[#r]) .. " bad=" .. tostring(ok))
  end
end)
upesi.hook("queue", function(conn, txn)
  upesi.log("queue hook sees X-Lua=" .. tostring(txn:header("X-Lua")))
end)
upesi.hook("reset", function(conn, txn)
  upesi.log("reset hook ran")
  local ok, err = pcall(upesi.sleep, 1)
  upesi.log("reset sleep: " .. tostring(ok) .. " " .. tostring(err))
end)
upesi.hook("disconnect", function(conn)
  upesi.log("disconnect hook ran for " .. conn.ip)
end)
upesi.hook("unrecognized", function(conn, txn, line)
  if line:match("^XYZZY") then return upesi.OK, "nothing happens: " .. line, 250 end
end)
upesi.hook("vrfy", function(conn, txn, arg)
  return upesi.OK, "vrfy " .. arg, 250
end)
LUA

sub lua_server {
    my ($lua, %opt) = @_;
    my $srv = Upesi::Test->new(
        smtp    => { local_domains => 'example.com', vrfy => 1,
                     %{ $opt{smtp} || {} } },
        plugins => [ 'lua', 'queue_spool' ],
        ini     => { 'lua.ini' => $opt{ini} // "scripts = t.lua\n",
                     'lua/t.lua' => $lua },
    );
    $srv->start;
    return $srv;
}

sub session {
    my ($srv, $helo) = @_;
    my $c = $srv->client;
    my $r = $c->cmd('EHLO ' . ($helo // 'client.test'));
    is $r->{code}, 250, 'EHLO 250' or diag explain $r;
    return $c;
}

sub rcpt {
    my ($c, $who) = @_;
    my $r = $c->cmd("RCPT TO:<$who\@example.com>");
    return $r ? "$r->{code} $r->{text}" : 'no reply';
}

my $srv = lua_server($script);

# -- verdicts ------------------------------------------------------------------
{
    my $c = session($srv);
    is $c->cmd('MAIL FROM:<a@example.org> SIZE=1234')->{code}, 250, 'MAIL 250';
    like rcpt($c, 'deny'), qr/^550 5\.7\.1 no thanks$/, 'DENY with text: the hook default code';
    like rcpt($c, 'denycode'), qr/^553 5\.7\.2 go away$/, 'DENY with text, code and enhanced code';
    like rcpt($c, 'denysoft'), qr/^45\d /, 'DENYSOFT without text: the default 4xx';
    my $r = $c->cmd('RCPT TO:<ok@elsewhere.test>');
    is $r->{code}, 250, 'OK accepts a foreign domain (the rest of the hook skipped)';
    like $r->{text}, qr/taken by lua/, '... with its text';
    like rcpt($c, 'nilret'), qr/^250 /, 'a handler returning nothing is CONT';
    like rcpt($c, 'param'), qr/size=1234/, 'txn:param reads an ESMTP parameter of MAIL';
    like rcpt($c, 'notes'), qr/helo_note=client\.test mail_note=a\@example\.org count=1 none=nil/,
        'conn and txn notes written in earlier hooks are read back';
    like rcpt($c, 'notes'), qr/count=2/, 'a conn note counts across calls';
    $r = rcpt($c, 'conn');
    like $r, qr/ip=127\.0\.0\.1 port=number local=127\.0\.0\.1:\d+ ipv6=false helo=client\.test esmtp=true tls=false auth=false early=false hook=rcpt idok=true cmd=RCPT TO:<conn\@example\.com>/,
        'conn fields' or diag $r;
    like rcpt($c, 'connro'), qr/set=false .*read-only.* get=false .*no field 'nosuchfield'/,
        'conn is read-only, unknown fields are errors';
    is $c->cmd('RSET')->{code}, 250, 'RSET';
    $c->cmd('MAIL FROM:<b@example.org>');
    $c->cmd('RCPT TO:<one@example.com>');
    $c->cmd('RCPT TO:<two@example.com>');
    like rcpt($c, 'txn'), qr/sender=b\@example\.org rcpts=one\@example\.com,two\@example\.com count=2 qid=nil size=0 local=true,false/,
        'txn fields: sender, recipients, count, is_local';
    like rcpt($c, 'notes'), qr/mail_note=b\@example\.org count=3/, 'txn notes are per transaction, conn notes stay';
    $r = $c->cmd('XYZZY plugh');
    is $r->{code}, 250, 'unrecognized: the script answers an unknown command';
    like $r->{text}, qr/nothing happens: XYZZY plugh/, '... and got the command line';
    $r = $c->cmd('VRFY someone');
    like $r->{text}, qr/vrfy someone/, 'vrfy: the argument';
    $c->cmd('RSET');
    $r = $c->cmd('MAIL FROM:<refused@example.org>');
    is "$r->{code} $r->{text}", '550 5.7.1 sender refused@example.org', 'mail: the sender as argument';
    $c->cmd('RSET');
    $c->cmd('MAIL FROM:<nodata@example.org>');
    $c->cmd('RCPT TO:<bob@example.com>');
    $r = $c->cmd('DATA');
    is "$r->{code} $r->{text}", '451 4.7.1 no data today', 'data hook: DENYSOFT before 354';
    $c->cmd('RSET');
    $c->cmd('MAIL FROM:<dsn@example.org> RET=HDRS ENVID=QQ+2B1 SIZE=99');
    $c->cmd('RCPT TO:<bob@example.com> NOTIFY=SUCCESS,DELAY ORCPT=rfc822;b+2Bx@example.com');
    $c->cmd('RCPT TO:<carol@example.com>');
    $r = $c->cmd('DATA');
    is $r->{text}, '4.7.1 ret=HDRS envid=QQ+2B1 size=nil notify1=SUCCESS,DELAY '
        . 'orcpt1=rfc822;b+2Bx@example.com notify2=nil notify3=nil notify0=nil',
        'txn:mail_param and txn:rcpt_param in a later hook: what MAIL and each RCPT said';
    $c->cmd('RSET');
    $c->cmd('MAIL FROM:<a@example.org>');
    $r = $c->cmd('RCPT TO:<disc@example.com>');
    is $r->{code}, 550, 'DENYDISCONNECT: 5xx';
    like $r->{text}, qr/bye now/, '... with text';
    ok $c->closed(5), '... and the connection closes';

    $c = session($srv);
    $c->cmd('MAIL FROM:<a@example.org>');
    $r = $c->cmd('RCPT TO:<softdisc@example.com>');
    is $r->{code}, 421, 'DENYSOFTDISCONNECT: 421';
    ok $c->closed(5), '... and the connection closes';

    $c = $srv->client;
    $r = $c->cmd('EHLO bad.helo');
    is "$r->{code} $r->{text}", '550 5.7.1 bad helo bad.helo', 'helo: the name as argument';
    ok $srv->wait_log(qr/lua: t\.lua: reset hook ran/, 5), 'reset hook ran';
    ok $srv->wait_log(qr/reset sleep: false .*the reset hook cannot wait/, 5),
        'reset cannot wait: upesi.sleep there is an error';
    ok $srv->wait_log(qr/lua: t\.lua: disconnect hook ran for 127\.0\.0\.1/, 5),
        'disconnect hook ran';
}

# -- log, stat, kv, time, sandbox ------------------------------------------------
{
    my $c = session($srv);
    $c->cmd('MAIL FROM:<a@example.org>');
    like rcpt($c, 'log'), qr/logged badname=false badlevel=false/, 'log and stat calls';
    ok $srv->wait_log(qr/INFO \S+: lua: t\.lua: hello from lua$/, 5), 'upesi.log(msg): INFO with session id and script';
    ok $srv->wait_log(qr/WARNING \S+: lua: t\.lua: a warning from lua$/, 5), 'upesi.log(level, msg)';
    ok $srv->wait_log(qr/INFO \S+: lua: t\.lua: printed 42 true$/, 5), 'print goes to the log';
    my $st = $srv->stat('Lua.');
    is $st->{'Lua.Test.Count'}, 3, 'upesi.stat.add: counted, "Lua." prefixed once';
    is $st->{'Lua.Test.Gauge'}, 7, 'upesi.stat.set';

    my $r = rcpt($c, 'kv');
    like $r, qr/get=text,3,1\.5,false,nil/, 'kv get/set of every value type' or diag $r;
    like $r, qr/incr=4,14,5,false/, 'kv incr: default 1, by n, a new key; a float is no counter (an error)';
    like $r, qr/ttl=-1,ok,nil/, 'kv ttl: -1 without expiry, seconds left, nil when absent';
    like $r, qr/expire=true,true,false/, 'kv expire';
    like $r, qr/del=true,false/, 'kv del';
    like $r, qr/count=3/, 'kv count (set to nil deletes)';
    like $r, qr/bad=false,false/, 'kv refuses tables, incr of a string';
    like rcpt($c, 'kvcount'), qr/hits=1/, 'kv across calls: 1';
    my $c2 = session($srv);
    $c2->cmd('MAIL FROM:<a@example.org>');
    like rcpt($c2, 'kvcount'), qr/hits=2/, '... 2 from another session (one store per worker)';
    rcpt($c2, 'kvshort');
    like rcpt($c2, 'kvread'), qr/short=here/, 'a key with a ttl is there';
    sleep 0.5;
    like rcpt($c2, 'kvread'), qr/short=nil/, '... and gone after it';

    $r = rcpt($c, 'time');
    my ($t) = $r =~ /time=(\d+)/;
    ok defined $t && abs($t - time) < 5, 'upesi.time is the wall clock';
    like $r, qr/mono=true os=\d+,number,1970 host=\S+/, 'monotonic, os.time/clock/date, hostname';

    $r = rcpt($c, 'sandbox');
    like $r, qr/io=nil debug=nil package=nil require=nil dofile=nil loadfile=nil warn=nil/,
        'no io, debug, package, require, dofile, loadfile' or diag $r;
    like $r, qr/os=nilnilnilfunctionfunctionfunction/, 'os: only time, clock, date (and difftime)';
    like $r, qr/dump=nilnil/, 'no string.dump, not even as a method';
    like $r, qr/bytecode=nil:refused/, 'load refuses bytecode';
    like $r, qr/loadbt=false/, 'load with mode "b" is an error';
    like $r, qr/load=2 loadenv=nil/, 'load of text works, in a sandboxed environment';
    like $r, qr/gc=false/, 'setmetatable refuses __gc';
    like $r, qr/collect=false,number/, 'collectgarbage only counts';
    like $r, qr/shared=falsefalsefalse/, 'shared tables (string, upesi, upesi.kv) are read-only';
    like $r, qr/strmeta=false/, 'the string metatable is hidden';
    like $r, qr/pairs=ok/, 'pairs over a shared library works';
    like $r, qr/global=nil/, 'a script has its own globals';
    like rcpt($c, 'sandbox'), qr/global=1/, '... which last across calls';
}

# -- waiting: sleep, nested coroutines ---------------------------------------------
{
    my $c = session($srv);
    $c->cmd('MAIL FROM:<a@example.org>');
    my $t0 = time;
    my $r = rcpt($c, 'sleep');
    my $took = time - $t0;
    like $r, qr/slept=0\.[3-9]/, 'upesi.sleep suspends the handler';
    ok $took >= 0.28, sprintf('... and the reply waited (%.2fs)', $took);
    # another session is served while one sleeps
    $c->send_line('RCPT TO:<sleep@example.com>');
    my $c2 = session($srv);
    $c2->cmd('MAIL FROM:<a@example.org>');
    my $t1 = time;
    like rcpt($c2, 'deny'), qr/^550/, 'a second session is answered meanwhile';
    ok time - $t1 < 0.25, '... at once';
    like $c->read_reply->{text}, qr/slept=/, 'the sleeper answers after';
    like rcpt($c, 'nested'), qr/nested=false sort=false self=false gen=123/,
        'no waiting in nested coroutines or C callbacks, no resuming the hook coroutine; own coroutines work';
}

# -- data_post: headers and body --------------------------------------------------------
{
    my $c = session($srv);
    $c->cmd('MAIL FROM:<a@example.org>');
    $c->cmd('RCPT TO:<bob@example.com>');
    is $c->cmd('DATA')->{code}, 354, 'DATA 354';
    my $r = $c->send_data("Subject: Hello there\r\nX-Remove-Me: one\r\n" .
                          "X-Folded: first\r\n  second\r\nX-Remove-Me: two\r\n\r\n" .
                          "body line 1\r\nline 2\r\n..leading dot");
    is $r->{code}, 250, 'message accepted';
    my @m = $srv->wait_spool(1, 5);
    is scalar(@m), 1, 'one message in the spool';
    my $msg = $m[0]{message} // '';
    my ($res) = $msg =~ /^X-Lua-Result: (.*?)\r$/m;
    $res //= '';
    like $res, qr/subject=Hello there/, 'txn:header, case-insensitive' or diag $msg;
    like $res, qr/folded=first  second/, 'a folded header unfolded';
    like $res, qr/dups=2 second=two/, 'txn:headers(name): every value, in order';
    like $res, qr/all=[56] first=Received/, 'txn:headers(): every field, Received first';
    like $res, qr/removed=2,0 after=nil/, 'txn:remove_header removes every copy';
    like $res, qr/lines=3 body1=body line 1 dot=\.leading dot/, 'txn:body_lines: the body, dot-unstuffed, without CRLF';
    like $res, qr/size=true qid=true/, 'txn.size and queue_id at data_post';
    like $res, qr/badhdr=nil/, 'add_header refuses a bad name';
    like $res, qr/nulhdr=nil nulname=nil/, 'add_header refuses a NUL in the value or the name (like CR/LF)';
    unlike $msg, qr/^X-Nul/m, 'nothing of the NUL header reaches the message (not even cut at the NUL)';
    unlike $msg, qr/X-Remove-Me/, 'the removed headers are not in the stored message';
    like $msg, qr/^X-Lua: added\r$/m, 'the added header is';
    like $msg, qr/^X-Lua-After-Add: added\r$/m, 'a header added is seen by header() at once';
    like $msg, qr/\r\n\r\nbody line 1\r\nline 2\r\n\.leading dot\r\n\z/, 'the body is intact';
    like $msg, qr/^Subject: Hello there\r\nX-Folded: first\r\n  second\r\n\r\n/m,
        'the other data headers are intact, in order';
    ok $srv->wait_log(qr/queue hook sees X-Lua=added/, 5), 'queue hook: headers visible';
}

# -- a big message (spilled to a file): a header removed, the body intact ----------------
{
    my $c = session($srv);
    $c->cmd('MAIL FROM:<a@example.org>');
    $c->cmd('RCPT TO:<bob@example.com>');
    is $c->cmd('DATA')->{code}, 354, 'DATA 354 (big message)';
    my $body = join('', map { sprintf("line %06d %s\r\n", $_, 'x' x 60) } 1 .. 5000);
    my $r = $c->send_data("Subject: big\r\nX-Remove-Me: gone\r\n\r\n$body" . 'last');
    is $r->{code}, 250, 'a 350 KB message accepted';
    my @m = $srv->wait_spool(2, 5);
    my ($big) = grep { ($_->{message} // '') =~ /^Subject: big\r$/m } @m;
    my $msg = $big ? $big->{message} : '';
    like $msg, qr/^X-Lua-Result: .*removed=1,0 .*lines=5001 body1=line 000001 /m,
        'headers and body lines read from the spilled file';
    unlike $msg, qr/X-Remove-Me/, 'the removed header is not stored';
    ok index($msg, "Subject: big\r\n\r\n$body" . "last\r\n") > 0, 'the body is intact, byte for byte';
}

# -- a call abandoned while it waits ---------------------------------------------------
{
    my $s2 = lua_server($script, smtp => { plugin_timeout => 0.5 });
    my $c = session($s2);
    $c->cmd('MAIL FROM:<a@example.org>');
    my $r = $c->cmd('RCPT TO:<hang@example.com>');
    is $r->{code}, 451, 'plugin_timeout while a script sleeps: 451';
    ok $s2->wait_log(qr/plugin lua did not answer rcpt/, 5), 'the host logs the timeout';
    ok $s2->wait_log(qr/script t\.lua, hook rcpt: call abandoned while waiting/, 5),
        'the plugin drops the coroutine';
    like rcpt($c, 'deny'), qr/^550 5\.7\.1 no thanks/, 'the session goes on';
    $c->send_line('RCPT TO:<hang@example.com>');
    sleep 0.1;
    $c->close;
    ok $s2->wait_log(qr/call abandoned while waiting.*\n(?:.*\n)*?.*call abandoned while waiting/, 5)
        || 2 == scalar($s2->log_lines(qr/call abandoned while waiting/)),
        'a disconnect abandons a waiting call too';
    my $c2 = session($s2);
    is $c2->cmd('QUIT')->{code}, 221, 'the server still serves';
    $s2->stop_ok('lua abandon');
}

$srv->stop_ok('lua api');
done_testing;
