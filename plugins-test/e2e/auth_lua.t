#!/usr/bin/perl
# auth_lua.t - a Lua script answers the auth hook (another backend than the
# directory): upesi.hook("auth", function(conn, user, password, mechanism)).
# The auth plugin offers AUTH (allow_plaintext = 1, file = empty: no accounts
# of its own) and the script decides: OK, DENY, DENYSOFT with a text, CONT
# (nobody knew the user: 535), a handler that waits (upesi.sleep) before it
# answers; conn.authenticated and conn.auth_user in a later hook; swaks
# --auth against it; and no password in the log.
use strict;
use warnings;
use FindBin;
use lib "$FindBin::Bin/../lib";
use Test::More;
use Upesi::Test;
use MIME::Base64 qw(encode_base64);

deadline(120);

sub b64 { encode_base64($_[0], '') }

my $script = <<'EOF';
-- an account backend in Lua (docs/lua.md, docs/auth.md)
local accounts = { luauser = "lua-pass-1", slowpoke = "slow-pass-2" }
upesi.hook("auth", function(conn, user, password, mechanism)
  if user == "softuser" then
    return upesi.DENYSOFT, "account backend unavailable (" .. mechanism .. ")"
  end
  local want = accounts[user]
  if want == nil then return upesi.CONT end
  if user == "slowpoke" then upesi.sleep(0.05) end
  if password == want then return upesi.OK end
  return upesi.DENY
end)
upesi.hook("mail", function(conn, txn, sender)
  if conn.authenticated then
    return upesi.OK, "hello " .. conn.auth_user
  end
  return upesi.CONT
end)
EOF

my $srv = Upesi::Test->new(
    smtp => { hostname => 'mx.test.example', local_domains => 'example.com',
              auth_failure_delay => 0.01 },
    plugins => ['auth', 'lua', 'queue_spool'],
    ini => {
        'auth.ini' => "file =\nallow_plaintext = 1\n",
        'lua.ini' => "scripts = auth.lua\n",
        'lua/auth.lua' => $script,
    },
);
$srv->start;

sub session {
    my $c = $srv->client;
    my $r = $c->cmd('EHLO lua.test');
    return ($c, $r);
}

my ($c, $r) = session();
ok((grep { /^250[- ]AUTH PLAIN LOGIN$/ } @{ $r->{lines} }), 'the auth plugin offers AUTH (no accounts of its own)');
$r = $c->cmd('MAIL FROM:<a@example.org>');
is $r->{code}, 250, 'before AUTH the Lua mail hook says CONT';
$c->cmd('RSET');
$r = $c->cmd('AUTH PLAIN ' . b64("\0luauser\0lua-pass-1"));
is "$r->{code} $r->{enhanced}", '235 2.7.0', 'Lua answers OK: 235';
$r = $c->cmd('MAIL FROM:<a@example.org>');
is $r->{code}, 250, 'MAIL after AUTH';
like $r->{text}, qr/hello luauser/, 'conn.authenticated and conn.auth_user in the mail hook';
$c->cmd('QUIT');

($c, $r) = session();
$r = $c->cmd('AUTH PLAIN ' . b64("\0luauser\0wrong-one"));
is "$r->{code} $r->{enhanced}", '535 5.7.8', 'Lua answers DENY: 535 5.7.8';
$r = $c->cmd('AUTH LOGIN');
$r = $c->cmd(b64('nobody'));
$r = $c->cmd(b64('x-pass'));
is "$r->{code} $r->{enhanced}", '535 5.7.8', 'every plugin CONT (unknown user): 535 5.7.8';
$r = $c->cmd('AUTH LOGIN ' . b64('softuser'));
$r = $c->cmd(b64('soft-pass'));
is "$r->{code} $r->{enhanced}", '454 4.7.0', 'Lua answers DENYSOFT: 454 4.7.0';
like $r->{text}, qr/backend unavailable \(LOGIN\)/, '... with its text; the mechanism reached the script';
$r = $c->cmd('AUTH LOGIN ' . b64('slowpoke'));
$r = $c->cmd(b64('slow-pass-2'));
is $r->{code}, 235, 'a handler that waits (upesi.sleep) then answers OK: 235';
$c->cmd('QUIT');

my $sw = $srv->swaks_send('--to', 'bob@example.com', '--from', 'a@example.org',
    '--auth', 'LOGIN', '--auth-user', 'luauser', '--auth-password', 'lua-pass-1');
is $sw->{exit}, 0, 'swaks --auth LOGIN against the Lua backend' or diag $sw->{out};
my ($m) = $srv->wait_spool(1, 5);
is $m && $m->{env}{Auth}, 'luauser', 'the spool envelope: Auth: luauser';

my $st = $srv->stat('SMTP.Auth');
is $st->{'SMTP.Auth.Success'}, 3, 'SMTP.Auth.Success = 3';
is $st->{'SMTP.Auth.Failure'}, 2, 'SMTP.Auth.Failure = 2';

my $log = $srv->log_text;
unlike $log, qr/lua-pass-1|slow-pass-2|wrong-one|x-pass|soft-pass/, 'no password in the log';
$srv->stop_ok;

# upesi.hook knows "auth"; a typo is refused with the list
{
    my $bad = Upesi::Test->new(plugins => ['lua', 'queue_spool'],
        ini => { 'lua.ini' => "scripts = bad.lua\n",
                 'lua/bad.lua' => "upesi.hook('authx', function() end)\n" });
    my ($e, $o) = upesi_check($bad->conf);
    isnt $e, 0, 'an unknown hook name is refused';
    like $o, qr/unknown hook 'authx' \(.*vrfy, auth\)/, '... and the list names auth';
}

done_testing;
