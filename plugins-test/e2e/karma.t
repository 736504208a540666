#!/usr/bin/perl
# karma.t - the karma plugin against the real host, on the lmdb store and
# on a real redis-server (docs/plugins/karma.md): a session's notes score
# points by the table in karma.ini (rejected recipients, AUTH failures,
# early talking), the score moves at once and decays slot by slot to
# nothing over `decay`; the network's share; karma.score is a conn note
# Lua reads; tempfail_at at connect and reject_at at MAIL; -t names
# file:line; SIGHUP reloads the table; Redis stopped: store_failure.
use strict;
use warnings;
use FindBin;
use lib "$FindBin::Bin/../lib";
use Test::More;
use MIME::Base64 ();
use Time::HiRes qw(sleep time);
use Upesi::Test;
use Upesi::Test::Redis;

deadline(240);

my $SLOT = 2;                  # decay = 6 s in 3 slots of 2 s

sub server {
    my ($ini, %o) = @_;
    my $srv = Upesi::Test->new(
        plugins => [ 'lua', 'karma', 'queue_spool' ],
        smtp    => { local_domains => 'example.com', error_limit => 1000,
                     %{ $o{smtp} || {} } },
        ini     => { 'karma.ini' => $ini, 'lua.ini' => "scripts = show.lua\n",
                     'lua/show.lua' => <<'LUA' });
upesi.hook("mail", function(conn, txn, sender)
  if sender == "score@probe.example" then
    return upesi.DENY, "karma=" .. tostring(conn.notes["karma.score"])
  end
end)
LUA
    $srv->start;
    return $srv;
}

# wait until just after a slot begins, so that a session stays in it
sub slot_start {
    my ($len) = @_;
    $len //= $SLOT;
    my $t = time;
    my $left = $len - ($t - int($t / $len) * $len);
    sleep $left + 0.05;
}

sub code_of { my ($r) = @_; $r ? "$r->{code} " . ($r->{enhanced} // '') : 'no reply' }

# a session from ip with n recipients refused (relaying to other.org)
sub bad_session {
    my ($srv, $ip, $n) = @_;
    my $c = $srv->client(local => $ip);
    $c->cmd('EHLO client.test');
    $c->cmd('MAIL FROM:<a@s.example>');
    $c->cmd("RCPT TO:<x$_\@other.org>") for 1 .. $n;
    $c->cmd('QUIT');
    $c->close;
}

# the score the Lua script sees at MAIL (a refused MAIL scores nothing), or
# the code of a refused greeting
sub score_of {
    my ($srv, $ip) = @_;
    my $c = $srv->client(local => $ip);
    return code_of($c->greeting) if !$c->greeting || $c->greeting->{code} != 220;
    $c->cmd('EHLO client.test');
    my $r = $c->cmd('MAIL FROM:<score@probe.example>');
    $c->cmd('QUIT');
    $c->close;
    return $r && $r->{text} =~ /karma=(-?\d+|nil)/ ? $1 : code_of($r);
}

my $INI = "decay = 6\nbuckets = 3\nnetwork_share = 0\n[score]\nconn.rcpt.rejected = -2\n";

for my $backend ('lmdb', 'redis') {
  SKIP: {
    my $redis;
    if ($backend eq 'redis') {
        skip 'redis-server is not installed', 1 unless Upesi::Test::Redis->available;
        $redis = Upesi::Test::Redis->start;
    }
    my %smtp = $redis ? (store => $redis->url, store_timeout => 500) : ();
    my $srv = server($INI, smtp => \%smtp);
    slot_start();
    is score_of($srv, '127.0.0.2'), 0, "$backend: a new client: karma 0";
    bad_session($srv, '127.0.0.2', 3);        # 3 refused recipients at -2
    is score_of($srv, '127.0.0.2'), -6, "$backend: three refused recipients at -2: -6 at once";
    slot_start();
    is score_of($srv, '127.0.0.2'), -4, "$backend: one slot later: two thirds left";
    slot_start();
    is score_of($srv, '127.0.0.2'), -2, "$backend: two slots later: one third";
    slot_start();
    is score_of($srv, '127.0.0.2'), 0, "$backend: after decay (6 s) nothing is left";
    ok $srv->wait_log(qr/karma: -6 points for this session/), "$backend: the log has the session's points";

    # the network's share, thresholds at connect
    $srv->write_conf('karma.ini', "decay = 30\nbuckets = 3\nnetwork_share = 50\ntempfail_at = -5\n"
                     . "[score]\nconn.rcpt.rejected = -4\n");
    is $srv->hup, 'done', "$backend: SIGHUP reloads karma.ini";
    slot_start(10);
    bad_session($srv, '127.0.0.3', 2);          # -8 for .3 and for 127.0.0.0/24
    my $c = $srv->client(local => '127.0.0.3');
    is code_of($c->greeting), '421 4.7.0', "$backend: -8 - 8/2 = -12 <= tempfail_at -5: 421 4.7.0 at connect";
    $c->close;
    is score_of($srv, '127.0.0.4'), -4, "$backend: another address of the /24: half the network's -8";
    my $st = $srv->stat('SMTP.Karma');
    ok $st->{'SMTP.Karma.Deferred'} >= 1, "$backend: SMTP.Karma.Deferred" or diag explain $st;
    ok $st->{'SMTP.Karma.Scored'} >= 6, "$backend: SMTP.Karma.Scored";

    # reject at MAIL
    $srv->write_conf('karma.ini', "decay = 30\nbuckets = 3\nnetwork_share = 0\nreject_at = -5\nstage = mail\n"
                     . "[score]\nconn.rcpt.rejected = -4\n");
    is $srv->hup, 'done', "$backend: SIGHUP";
    $c = $srv->client(local => '127.0.0.3');
    is $c->greeting->{code}, 220, "$backend: stage = mail: greeted";
    $c->cmd('EHLO client.test');
    my $r = $c->cmd('MAIL FROM:<a@s.example>');
    is code_of($r), '550 5.7.1', "$backend: reject_at at MAIL: 550 5.7.1";
    like $r->{text}, qr/karma -[58]\b/, "$backend: the reply names the score (-8, or -5 a slot later)";
    $c->close;
    $srv->stop_ok("$backend: karma");

    if ($redis) {
        my $acc = server("store_failure = accept\n", smtp => \%smtp);
        my $tmp = server("store_failure = tempfail\n", smtp => \%smtp);
        $redis->stop;
        is score_of($acc, '127.0.0.2'), 0, 'Redis stopped, store_failure = accept: score 0, mail goes on';
        is score_of($tmp, '127.0.0.2'), '451 4.3.0', 'Redis stopped, store_failure = tempfail: 451 4.3.0';
        $_->stop_ok('karma, redis stopped') for $acc, $tmp;
    }
  }
}

# -- mail_rules reads the score (karma_score) ----------------------------------------
{
    my $srv = Upesi::Test->new(
        plugins => [ 'karma', 'mail_rules', 'queue_spool' ],
        smtp    => { local_domains => 'example.com', error_limit => 1000 },
        ini     => { 'karma.ini' => "network_share = 0\n[score]\nconn.rcpt.rejected = -2\n",
                     'mail_rules.ini' => "file = rules\n",
                     'rules' => qq{rule "low karma" when karma_score < -3 do tag "X-Karma: low"\n} });
    $srv->start;
    bad_session($srv, '127.0.0.2', 3);
    for my $ip ('127.0.0.2', '127.0.0.9') {
        my $c = $srv->client(local => $ip);
        $c->cmd('EHLO client.test');
        $c->cmd('MAIL FROM:<a@s.example>');
        $c->cmd('RCPT TO:<u@example.com>');
        $c->cmd('DATA');
        $c->send_data("Subject: from $ip\r\n\r\nhi");
        $c->cmd('QUIT');
        $c->close;
    }
    my @m = $srv->wait_spool(2);
    my ($low) = grep { $_->{message} =~ /Subject: from 127.0.0.2\r?\n/ } @m;
    my ($ok)  = grep { $_->{message} =~ /Subject: from 127.0.0.9\r?\n/ } @m;
    like $low && $low->{message}, qr/^X-Karma: low/m, 'mail_rules: karma_score < -3 tags the client at -6';
    ok $ok && $ok->{message} !~ /X-Karma/, 'mail_rules: not the client at 0';
    $srv->stop_ok('karma and mail_rules');
}

# -- other notes: early talking, AUTH failures (the host's notes) --------------------
{
    my $hash = crypt('right-pw-1', '$6$abcdefgh12345678$');
    my $srv = Upesi::Test->new(
        plugins => [ 'lua', 'karma', 'auth', 'directory', 'queue_spool' ],
        smtp    => { local_domains => 'example.com', error_limit => 1000,
                     greeting_delay => 0.5, early_talker_action => 'ignore',
                     auth_failure_delay => 0.01 },
        ini     => { 'karma.ini' => "network_share = 0\n[score]\nconn.early_talker = -3\n"
                                  . "conn.auth.failures = -2\n",
                     'auth.ini' => "file = directory\nallow_plaintext = 1\n",
                     'directory' => qq{person "John Doe" address=john\@example.com short=jdoe7 password=$hash\n},
                     'lua.ini' => "scripts = show.lua\n",
                     'lua/show.lua' => <<'LUA' });
upesi.hook("mail", function(conn, txn, sender)
  if sender == "score@probe.example" then
    return upesi.DENY, "karma=" .. tostring(conn.notes["karma.score"])
  end
end)
LUA
    $srv->start;
    my $c = $srv->client(local => '127.0.0.5', greeting => 0);
    $c->send_line('EHLO hasty.test');              # before the greeting
    is $c->read_reply(10)->{code}, 220, 'an early talker is greeted (early_talker_action = ignore)';
    $c->read_reply(5);
    $c->cmd('QUIT');
    $c->close;
    is score_of($srv, '127.0.0.5'), -3, 'conn.early_talker = -3: the early talker scores -3';
    $c = $srv->client(local => '127.0.0.6');
    $c->cmd('EHLO client.test');
    is $c->cmd('AUTH PLAIN ' . MIME::Base64::encode_base64("\0jdoe7\0wrong", ''))->{code}, 535, 'a wrong password';
    is $c->cmd('AUTH PLAIN ' . MIME::Base64::encode_base64("\0jdoe7\0wrong2", ''))->{code}, 535, 'and another';
    $c->cmd('QUIT');
    $c->close;
    is score_of($srv, '127.0.0.6'), -4, 'conn.auth.failures = -2: two AUTH failures score -4';
    $srv->stop_ok('karma: early talker, AUTH failures');
}

# -- -t ------------------------------------------------------------------------------
for my $bad (['decay = 1', qr/decay: /],
             ['buckets = 1', qr/buckets: /],
             ['network_share = 101', qr/network_share: /],
             ['reject_at = 5', qr/reject_at: /],
             ['tempfail_at = x', qr/tempfail_at: /],
             ['stage = data', qr/stage: /],
             ['store_failure = no', qr/store_failure: /],
             ['[score]', "conn.x = lots", qr/points are a whole number/],
             ['[score]', "peer.x = 1", qr/a key is conn.NOTE or txn.NOTE/],
             ['[score]', "txn.bayes.class[spam = 1", qr/a key is conn.NOTE/],
             ['[other]', "a = 1", qr/unknown section \[other\]/]) {
    my $line = @$bad == 3 ? 3 : 2;
    my $text = "decay = 1h\n" . join("\n", @{$bad}[0 .. $#$bad - 1]) . "\n";
    my $s = Upesi::Test->new(plugins => ['karma', 'queue_spool'], ini => { 'karma.ini' => $text });
    my ($exit, $out) = upesi_check($s->conf);
    isnt $exit, 0, "-t refuses " . ($text =~ s/\n/; /gr);
    like $out, qr/karma\.ini:$line: .*$bad->[-1]/, "  with karma.ini:$line and the reason" or diag $out;
}
{
    my $s = Upesi::Test->new(plugins => ['karma', 'queue_spool'],
                             ini => { 'karma.ini' => "reject_at = -2\ntempfail_at = -5\n" });
    my ($exit, $out) = upesi_check($s->conf);
    like $out, qr/reject_at \(-2\) must be at or below tempfail_at/, '-t: thresholds in order' or diag $out;
    $s = Upesi::Test->new(plugins => ['karma', 'queue_spool']);
    $s->write_conf('karma.ini', slurp("$ROOT/conf/karma.ini"));
    ($exit, $out) = upesi_check($s->conf);
    is $exit, 0, 'the shipped conf/karma.ini passes -t' or diag $out;
}

done_testing;
