#!/usr/bin/perl
# bh.t - `upesi -c DIR -bh IP [HELO]`: a session from stdin as if from IP,
# through the configuration's chain: dnsbl against dnsmasq-backed zones
# (DNS real), a Lua rule, max_rcpt, queue_spool.  Every reply on stdout;
# each plugin's decision per hook on stderr ("rcpt: lua -> DENY 550 ...");
# the queue hook reported, not run (nothing in the spool); the running
# server's statistics unchanged; an edited rule is seen by -bh before
# the running server is reloaded (the way to test rules).
use strict;
use warnings;
use FindBin;
use lib "$FindBin::Bin/../lib";
use IPC::Open3;
use Symbol qw(gensym);
use Test::More;
use Upesi::Test;
use Upesi::Test::DNS;

deadline(120);
ok Upesi::Test::DNS::available(), 'dnsmasq is installed (DEB_TEST)' or BAIL_OUT('no dnsmasq');

my $dns = Upesi::Test::DNS->start(records => [
    address => '66.2.0.192.bl.test,127.0.0.2',
    txt     => '66.2.0.192.bl.test,Listed in bl.test for spam',
]);

my $lua = <<'LUA';
upesi.hook("rcpt", function(conn, txn, rcpt)
  if tostring(rcpt):find("^spam") then return upesi.DENY, "no spam here", 550, "5.7.1" end
  return upesi.CONT
end)
LUA
my $s = Upesi::Test->new(
    smtp    => { local_domains => 'example.com', dns_servers => $dns->server,
                 dns_timeout => 2 },
    plugins => ['dnsbl', 'lua', 'max_rcpt', 'queue_spool'],
    ini     => { 'dnsbl.ini' => "zones = bl.test\naction = reject\n",
                 'lua.ini' => "scripts = rules.lua\n",
                 'lua/rules.lua' => $lua,
                 'max_rcpt.ini' => "max = 2\n" });
$s->start;
my $before = $s->stat;

# bh(IP, HELO, INPUT) -> (exit, stdout, stderr)
sub bh {
    my ($ip, $helo, $input, @more) = @_;
    my $err = gensym;
    # upesi may exit before reading its input (a bad IP): no SIGPIPE here
    local $SIG{PIPE} = 'IGNORE';
    my $pid = open3(my $in, my $out, $err, $UPESI, '-c', $s->conf, '-bh', $ip,
                    defined $helo ? ($helo) : (), @more);
    print $in $input;
    close $in;
    local $/;
    my $o = <$out> // '';
    my $e = <$err> // '';
    waitpid($pid, 0);
    return ($? >> 8, $o, $e);
}

# -- a listed client ------------------------------------------------------
my ($x, $o, $e) = bh('192.0.2.66', 'listed.example.net',
                     "MAIL FROM:<a\@example.org>\nRCPT TO:<bob\@example.com>\nQUIT\n");
is $x, 0, '-bh exits 0';
like $o, qr/^220 /m, 'stdout: the greeting';
like $o, qr/^250-\S+ Hello listed\.example\.net \[192\.0\.2\.66\]$/m, '... EHLO HELO was sent, and the client is IP';
like $o, qr/^554 5\.7\.1 Your host 192\.0\.2\.66 is listed in bl\.test$/m, "... the DNS list's refusal (DNS real, through dnsmasq)";
like $o, qr/^221 /m, '... and QUIT';
like $e, qr/^connect: dnsbl -> DENY 554 5\.7\.1 Your host 192\.0\.2\.66 is listed in bl\.test$/m, "stderr: connect: dnsbl -> DENY with the code and text" or diag $e;
unlike $e, qr/^queue: /m, 'no message: no queue hook';

# -- an unlisted client: the Lua rule, a message ------------------------------
($x, $o, $e) = bh('192.0.2.1', undef,
                  "EHLO client.example.net\nMAIL FROM:<a\@example.org>\n"
                  . "RCPT TO:<spam\@example.com>\nRCPT TO:<bob\@example.com>\nDATA\n"
                  . "Subject: test\n\n.. a dot-stuffed line\nbody\n.\nQUIT\n");
is $x, 0, '-bh exits 0';
like $o, qr/^550 5\.7\.1 no spam here$/m, 'the Lua rule refuses spam@';
like $o, qr/^250 2\.1\.5 .*bob\@example\.com/m, '... and passes bob@';
like $o, qr/^354 /m, 'DATA: 354';
like $o, qr/^250 2\.0\.0 Ok: not queued \(session simulation\)$/m, 'end of data: 250, not queued';
like $e, qr/^connect: dnsbl -> CONT$/m, 'stderr: dnsbl -> CONT for an unlisted client' or diag $e;
like $e, qr/^rcpt: lua -> DENY 550 5\.7\.1 no spam here$/m, 'stderr: rcpt: lua -> DENY 550 5.7.1 no spam here';
like $e, qr/^rcpt: max_rcpt -> CONT$/m, 'stderr: rcpt: max_rcpt -> CONT';
like $e, qr/^queue: queue_spool -> not run \(-bh: nothing is queued\)$/m, 'stderr: the queue hook reported, not run';
is scalar(my @q = $s->spool), 0, 'nothing in the spool';
my $after = $s->stat;
is_deeply $after, $before, "the running server's statistics did not move";

# -- a rule edited, not reloaded -----------------------------------------------
spit($s->conf . '/lua/rules.lua', $lua . <<'LUA');
upesi.hook("mail", function(conn, txn, sender)
  if tostring(sender):find("^eve@") then return upesi.DENY, "not eve", 553, "5.7.1" end
  return upesi.CONT
end)
LUA
($x, $o, $e) = bh('192.0.2.1', 'c.example.net', "MAIL FROM:<eve\@example.org>\nQUIT\n");
like $o, qr/^553 5\.7\.1 not eve$/m, 'the edited rule: -bh sees it before any reload';
like $e, qr/^mail: lua -> DENY 553 5\.7\.1 not eve$/m, '... stderr names it';
my $r = $s->swaks_send('--from', 'eve@example.org', '--to', 'bob@example.com');
like $r->{out}, qr/<-  250 2\.0\.0 Ok: queued/, 'the running server still runs the old rules';

# -- the store: read for real, written only with --write ----------------------
# (the running server holds the same LMDB store; -bh opens it beside it)
spit($s->conf . '/lua/rules.lua', $lua . <<'LUA');
upesi.hook("mail", function(conn, txn, sender)
  local n = upesi.kv.incr("seen:" .. tostring(sender), 1)
  upesi.kv.set("last", tostring(sender))
  if n > 1 then return upesi.DENY, "seen " .. n .. " times", 550, "5.7.1" end
  return upesi.CONT
end)
LUA
my $mail = "MAIL FROM:<kv\@example.org>\nQUIT\n";
for my $i (1, 2) {
    ($x, $o, $e) = bh('192.0.2.1', 'c.example.net', $mail);
    like $o, qr/^250 2\.1\.0 /m, "without --write, run $i: the counter never moves (incr answers 1)" or diag "$o$e";
}
($x, $o, $e) = bh('192.0.2.1', 'c.example.net', $mail, '--write');
like $o, qr/^250 2\.1\.0 /m, 'with --write: the first run counts 1';
($x, $o, $e) = bh('192.0.2.1', 'c.example.net', $mail, '--write');
like $o, qr/^550 5\.7\.1 seen 2 times$/m, '... the second 2: written for real' or diag "$o$e";
($x, $o, $e) = bh('192.0.2.1', 'c.example.net', $mail);
like $o, qr/^550 5\.7\.1 seen 3 times$/m, 'without --write the store is still read (2 + 1 answered, not stored)' or diag "$o$e";
($x, $o, $e) = bh('192.0.2.1', 'c.example.net', $mail);
like $o, qr/^550 5\.7\.1 seen 3 times$/m, '... and again 3: nothing was written' or diag "$o$e";

# -- refusals ---------------------------------------------------------------
($x, $o, $e) = bh('not-an-ip', undef, "QUIT\n");
is $x, 2, '-bh with no IP address: exit 2';
like $e, qr/'not-an-ip' is not an IP address/, '... saying so';
($x, $o, $e) = bh('::1', undef, "EHLO v6.example\nQUIT\n");
like $o, qr/^250-\S+ Hello v6\.example \[(?:IPv6:)?::1\]$/m, 'an IPv6 client address' or diag $o;

$s->stop_ok;
done_testing();
