#!/usr/bin/perl
# greylist.t - the greylist plugin against the real host, on the lmdb store
# and on a real redis-server (docs/plugins/greylist.md): a new triplet gets
# 451 4.7.1, a retry before `delay` too, a retry after it passes, and so
# does the client's network from then on; each recipient on its own; the
# network is /24 by default; exemptions (private whitelist, sender
# domains); counters; -t names file:line; SIGHUP reloads.  Two hosts
# sharing one Redis: deferred on host A, passes on host B after the delay.
# Redis stopped: store_failure accept lets the recipient through, tempfail
# answers 451 4.3.0.
use strict;
use warnings;
use FindBin;
use lib "$FindBin::Bin/../lib";
use Test::More;
use MIME::Base64 ();
use Time::HiRes qw(sleep time);
use Upesi::Test;
use Upesi::Test::Redis;

deadline(180);

sub server {
    my (%o) = @_;
    my $srv = Upesi::Test->new(
        plugins => [ @{ $o{before} || [] }, 'greylist', 'queue_spool' ],
        smtp    => { local_domains => 'example.com', error_limit => 1000,
                     %{ $o{smtp} || {} } },
        ini     => { 'greylist.ini' => $o{ini} // "delay = 1\n", %{ $o{files} || {} } });
    $srv->start;
    return $srv;
}

sub code_of { my ($r) = @_; $r ? "$r->{code} " . ($r->{enhanced} // '') : 'no reply' }

# rcpt(srv, from-ip, sender, recipients...): the RCPT replies' codes
sub rcpt {
    my ($srv, $ip, $from, @to) = @_;
    my $c = $srv->client(local => $ip);
    $c->cmd('EHLO client.test');
    $c->cmd("MAIL FROM:<$from>");
    my @codes = map { code_of($c->cmd("RCPT TO:<$_>")) } @to;
    $c->cmd('QUIT');
    $c->close;
    return @codes;
}

# -- the rules, on the lmdb store (the default) ------------------------------------
{
    my $srv = server(ini => "delay = 1\nipv4_prefix = 32\nexempt_domains = friend.example\n");
    my @r = rcpt($srv, '127.0.0.2', 'a@sender.example', 'u1@example.com');
    is $r[0], '451 4.7.1', 'a new triplet: 451 4.7.1';
    @r = rcpt($srv, '127.0.0.2', 'a@sender.example', 'u1@example.com', 'u2@example.com');
    is $r[0], '451 4.7.1', 'a retry before the delay: still 451';
    is $r[1], '451 4.7.1', 'a second, new recipient in the same transaction: 451 on its own';
    like join('', $srv->log_lines(qr/greylist: .*u1\@example.com deferred \(retry too early/)), qr/deferred/,
        'the log says the retry came too early';
    sleep 1.3;
    @r = rcpt($srv, '127.0.0.2', 'a@sender.example', 'u1@example.com');
    is $r[0], '250 2.1.5', 'the retry after the delay passes';
    @r = rcpt($srv, '127.0.0.2', 'other@elsewhere.example', 'u9@example.com');
    is $r[0], '250 2.1.5', 'the network passed: a new triplet from it passes at once';
    @r = rcpt($srv, '127.0.0.3', 'a@sender.example', 'u1@example.com');
    is $r[0], '451 4.7.1', 'ipv4_prefix = 32: another address is another network';
    @r = rcpt($srv, '127.0.0.3', 'b@friend.example', 'u1@example.com');
    is $r[0], '250 2.1.5', 'exempt_domains: the sender domain is not greylisted';
    @r = rcpt($srv, '127.0.0.3', 'B@FRIEND.example', 'u1@example.com');
    is $r[0], '250 2.1.5', 'exempt_domains: any case';
    my $st = $srv->stat('SMTP.Greylist');
    is $st->{'SMTP.Greylist.Deferred'}, 4, 'SMTP.Greylist.Deferred' or diag explain $st;
    is $st->{'SMTP.Greylist.Passed'}, 2, 'SMTP.Greylist.Passed';
    is $st->{'SMTP.Greylist.Whitelisted'}, 2, 'SMTP.Greylist.Whitelisted';

    # SIGHUP: a longer delay, a new exempt domain
    $srv->write_conf('greylist.ini', "delay = 1h\nipv4_prefix = 32\nexempt_domains = new.example\n");
    is $srv->hup, 'done', 'SIGHUP reloads greylist.ini';
    @r = rcpt($srv, '127.0.0.4', 'c@new.example', 'u1@example.com');
    is $r[0], '250 2.1.5', 'after the reload the new exempt domain applies';
    @r = rcpt($srv, '127.0.0.4', 'c@sender.example', 'u1@example.com');
    is $r[0], '451 4.7.1', 'a new triplet';
    sleep 1.3;
    @r = rcpt($srv, '127.0.0.4', 'c@sender.example', 'u1@example.com');
    is $r[0], '451 4.7.1', 'delay = 1h after the reload: the retry after 1 s is still deferred';
    $srv->stop_ok('greylist on lmdb');
}

# -- /24 by default, the private whitelist ---------------------------------------
{
    my $srv = server(before => ['private_lists'],
                     files => { 'private_lists.ini' => "[whitelist]\nhosts = 127.0.0.9\naction = skip\n" });
    is((rcpt($srv, '127.0.0.2', 'a@s.example', 'u@example.com'))[0], '451 4.7.1', 'default /24: first seen');
    sleep 1.3;
    is((rcpt($srv, '127.0.0.2', 'a@s.example', 'u@example.com'))[0], '250 2.1.5', 'passes after the delay');
    is((rcpt($srv, '127.0.0.5', 'z@t.example', 'v@example.com'))[0], '250 2.1.5',
       'another address of the same /24 passes at once');
    is((rcpt($srv, '127.0.0.9', 'z@t.example', 'v@example.com'))[0], '250 2.1.5',
       'a privately whitelisted client is not greylisted');
    my $st = $srv->stat('SMTP.Greylist');
    is $st->{'SMTP.Greylist.Whitelisted'}, 1, 'the whitelisted client counted in Whitelisted';
    $srv->stop_ok('greylist /24');
}

# -- an authenticated session is not greylisted -----------------------------------
{
    my $hash = crypt('right-pw-1', '$6$abcdefgh12345678$');
    my $srv = server(before => ['auth', 'directory'],
                     smtp => { error_limit => 1000 },
                     files => { 'auth.ini' => "file = directory\nallow_plaintext = 1\n",
                                'directory' => qq{person "John Doe" address=john\@example.com short=jdoe7 password=$hash\n} });
    my $c = $srv->client(local => '127.0.0.2');
    $c->cmd('EHLO client.test');
    is $c->cmd('AUTH PLAIN ' . MIME::Base64::encode_base64("\0jdoe7\0right-pw-1", ''))->{code}, 235, 'authenticated';
    $c->cmd('MAIL FROM:<john@example.com>');
    is code_of($c->cmd('RCPT TO:<john@example.com>')), '250 2.1.5', 'an authenticated session is not greylisted';
    $c->close;
    is((rcpt($srv, '127.0.0.2', 'john@example.com', 'john@example.com'))[0], '451 4.7.1',
       'the same triplet without AUTH is');
    $srv->stop_ok('greylist and AUTH');
}

# -- -t checks every setting with file:line --------------------------------------
for my $bad (['delay = 0.5', qr/delay: /],
             ['delay = soon', qr/delay: /],
             ['window = 1', qr/window: /],
             ['pass_ttl = 0', qr/pass_ttl: /],
             ['ipv4_prefix = 33', qr/ipv4_prefix: /],
             ['ipv6_prefix = 8', qr/ipv6_prefix: /],
             ['exempt_authenticated = maybe', qr/exempt_authenticated: expected a boolean/],
             ['exempt_whitelisted = 2', qr/exempt_whitelisted: expected a boolean/],
             ['exempt_domains = a@b', qr/exempt_domains: 'a\@b' is not a domain/],
             ['store_failure = ignore', qr/store_failure: /],
             ['colour = red', qr/unknown key 'colour'/]) {
    my $s = Upesi::Test->new(plugins => ['greylist', 'queue_spool'],
                             ini => { 'greylist.ini' => "delay = 2\n$bad->[0]\n" });
    my ($exit, $out) = upesi_check($s->conf);
    isnt $exit, 0, "-t refuses '$bad->[0]'";
    like $out, qr/greylist\.ini:2: .*$bad->[1]/, '  with greylist.ini:2 and the reason' or diag $out;
}
{
    my $s = Upesi::Test->new(plugins => ['greylist', 'queue_spool'],
                             ini => { 'greylist.ini' => "delay = 2h\nwindow = 1h\n" });
    my ($exit, $out) = upesi_check($s->conf);
    like $out, qr/window .* must be longer than delay/, '-t: window shorter than delay' or diag $out;
    $s = Upesi::Test->new(plugins => ['greylist', 'queue_spool']);
    $s->write_conf('greylist.ini', slurp("$ROOT/conf/greylist.ini"));
    ($exit, $out) = upesi_check($s->conf);
    is $exit, 0, 'the shipped conf/greylist.ini passes -t' or diag $out;
}

# -- two hosts, one Redis ---------------------------------------------------------
SKIP: {
    skip 'redis-server is not installed', 12 unless Upesi::Test::Redis->available;
    my $redis = Upesi::Test::Redis->start;
    my @hosts;      # A: accept, B: tempfail; each address its own network
    for my $policy ('accept', 'tempfail') {
        push @hosts, server(smtp => { store => $redis->url, store_timeout => 500 },
                            ini => "delay = 1\nipv4_prefix = 32\nstore_failure = $policy\n");
    }
    my @r = rcpt($hosts[0], '127.0.0.2', 'a@s.example', 'u@example.com');
    is $r[0], '451 4.7.1', 'host A: first seen, deferred';
    @r = rcpt($hosts[1], '127.0.0.2', 'a@s.example', 'u@example.com');
    is $r[0], '451 4.7.1', 'host B, before the delay: deferred too (it knows the triplet)';
    sleep 1.3;
    @r = rcpt($hosts[1], '127.0.0.2', 'a@s.example', 'u@example.com');
    is $r[0], '250 2.1.5', 'host B after the delay: passes';
    @r = rcpt($hosts[0], '127.0.0.2', 'x@y.example', 'w@example.com');
    is $r[0], '250 2.1.5', 'host A: the network passed on B passes here';
    like $redis->cli('KEYS', 'greylist:p:*'), qr{greylist:p:127\.0\.0\.2/32},
        "the passed network is Redis's key greylist:p:127.0.0.2/32";

    # Redis reads but refuses writes (maxmemory): a first sight that is
    # not written is a store failure, not a deferral it would repeat forever
    $redis->cli('CONFIG', 'SET', 'maxmemory-policy', 'noeviction');
    $redis->cli('CONFIG', 'SET', 'maxmemory', '1');
    @r = rcpt($hosts[0], '127.0.0.9', 'f@full.example', 'u@example.com');
    is $r[0], '250 2.1.5', 'Redis refusing writes, store_failure = accept: goes on, not "first seen"';
    @r = rcpt($hosts[1], '127.0.0.9', 'f@full.example', 'u@example.com');
    is $r[0], '451 4.3.0', '... store_failure = tempfail: 451 4.3.0, the store\'s';
    $redis->cli('CONFIG', 'SET', 'maxmemory', '0');

    $redis->stop;
    @r = rcpt($hosts[0], '127.0.0.7', 'n@new.example', 'u@example.com');
    is $r[0], '250 2.1.5', 'Redis stopped, store_failure = accept: the recipient goes on';
    @r = rcpt($hosts[1], '127.0.0.7', 'n@new.example', 'u@example.com');
    is $r[0], '451 4.3.0', 'Redis stopped, store_failure = tempfail: 451 4.3.0';
    @r = rcpt($hosts[1], '127.0.0.2', 'z@new.example', 'v@example.com');
    is $r[0], '250 2.1.5', 'Redis stopped: a network host B saw pass is in its pass_cache (60 s)';
    ok $hosts[0]->wait_log(qr/store: .*failed.*store_failure = accept/, 5), 'the failure is logged';
    my $st = $hosts[1]->stat('Greylist');
    ok $st && $st->{'Greylist.Store.Failures'}, 'Greylist.Store.Failures counts it' or diag explain $st;
    $_->stop_ok('greylist on redis') for @hosts;
}

done_testing;
