#!/usr/bin/perl
# limit.t - the limit plugin against the real host with workers = 2, on the
# lmdb store and on a real redis-server (docs/plugins/limit.md): windows are
# exact across the two workers (N accepted, the (N+1)th refused, whichever
# worker took the connection); concurrent connections per IP come back at
# disconnect; connection rate per IP; messages and recipients per IP, per
# user, per sender domain; the tarpit holds the reply; AUTH failures per IP
# and per account across sessions (454 4.7.0, then 421); counters per rule;
# -t names file:line; SIGHUP reloads; Redis stopped: store_failure.
use strict;
use warnings;
use FindBin;
use lib "$FindBin::Bin/../lib";
use IO::Socket::IP;
use MIME::Base64 qw(encode_base64);
use Test::More;
use Time::HiRes qw(sleep time);
use Upesi::Test;
use Upesi::Test::Redis;

deadline(240);

my $PW = 'Tr0ub4dor-x9q';
my $hash = crypt($PW, '$6$abcdefgh12345678$');
my $directory = <<"EOF";
person "John Doe" address=john\@example.com short=jdoe7 password=$hash
person "Mary Major" address=mary\@example.com short=mmajor password=$hash
person "Bob Example" address=bob\@example.com short=bob password=$hash
EOF

sub server {
    my ($ini, %o) = @_;
    my $srv = Upesi::Test->new(
        plugins => [ 'limit', 'auth', 'directory', 'queue_spool' ],
        smtp    => { local_domains => 'example.com', error_limit => 1000,
                     workers => 2, auth_failure_delay => 0.01,
                     %{ $o{smtp} || {} } },
        ini     => { 'limit.ini' => $ini, 'directory' => $directory,
                     'auth.ini' => "file = directory\nallow_plaintext = 1\n" });
    $srv->start;
    return $srv;
}

sub code_of { my ($r) = @_; $r ? "$r->{code} " . ($r->{enhanced} // '') : 'no reply' }

# one transaction on a new connection: the MAIL reply's code
sub mail_once {
    my ($srv, $from, %o) = @_;
    my $c = $srv->client(local => $o{ip} // '127.0.0.2');
    return 'no greeting' unless $c->greeting && $c->greeting->{code} == 220;
    $c->cmd('EHLO client.test');
    if ($o{user}) {
        my $r = $c->cmd('AUTH PLAIN ' . encode_base64("\0$o{user}\0$PW", ''));
        return 'auth ' . code_of($r) unless $r && $r->{code} == 235;
    }
    my $r = code_of($c->cmd("MAIL FROM:<$from>"));
    $c->cmd('QUIT');
    $c->close;
    return $r;
}

for my $backend ('lmdb', 'redis') {
  SKIP: {
    my $redis;
    if ($backend eq 'redis') {
        skip 'redis-server is not installed', 1 unless Upesi::Test::Redis->available;
        $redis = Upesi::Test::Redis->start;
    }
    my %smtp = $redis ? (store => $redis->url, store_timeout => 500) : ();

    # -- messages, exact across two workers --------------------------------------
    my $srv = server("messages_per_ip = 5/1h\nmessages_per_user = 3/1h\n" .
                     "messages_per_domain = 4/1h\nrecipients_per_ip = 6/1h\n" .
                     "store_failure = tempfail\n", smtp => \%smtp);
    my @codes = map { mail_once($srv, "a$_\@d$_.example") } 1 .. 8;
    is scalar(grep { $_ eq '250 2.1.0' } @codes), 5, "$backend: messages_per_ip = 5: exactly 5 of 8 accepted over two workers"
        or diag "@codes";
    is_deeply [ @codes[5 .. 7] ], [ ('451 4.7.0') x 3 ], "$backend: then 451 4.7.0";
    # per sender domain (from another IP: its own count)
    @codes = map { mail_once($srv, "x$_\@same.example", ip => '127.0.0.3') } 1 .. 5;
    is scalar(grep { $_ eq '250 2.1.0' } @codes), 4, "$backend: messages_per_domain = 4: 4 of 5" or diag "@codes";
    # per user
    @codes = map { mail_once($srv, "john$_\@u$_.example", ip => '127.0.0.4', user => 'jdoe7') } 1 .. 4;
    is_deeply \@codes, [ ('250 2.1.0') x 3, '451 4.7.0' ], "$backend: messages_per_user = 3" or diag "@codes";
    is mail_once($srv, 'm@m.example', ip => '127.0.0.4', user => 'mmajor'), '250 2.1.0',
        "$backend: another user of the same IP has a count of its own";
    # recipients per IP, across connections
    my @r;
    for my $n (1 .. 2) {
        my $c = $srv->client(local => '127.0.0.5');
        $c->cmd('EHLO client.test');
        $c->cmd("MAIL FROM:<r$n\@r$n.example>");
        push @r, map { code_of($c->cmd("RCPT TO:<$_\@example.com>")) } qw(john mary bob john);
        $c->close;
    }
    is scalar(grep { $_ eq '250 2.1.5' } @r), 6, "$backend: recipients_per_ip = 6: 6 of 8" or diag "@r";
    is $r[-1], '451 4.7.0', "$backend: the 7th recipient: 451 4.7.0";
    my $st = $srv->stat('SMTP.Limit');
    is $st->{'SMTP.Limit.MessagesPerIP.Exceeded'}, 3, "$backend: SMTP.Limit.MessagesPerIP.Exceeded" or diag explain $st;
    is $st->{'SMTP.Limit.MessagesPerUser.Exceeded'}, 1, "$backend: SMTP.Limit.MessagesPerUser.Exceeded";
    is $st->{'SMTP.Limit.MessagesPerDomain.Exceeded'}, 1, "$backend: SMTP.Limit.MessagesPerDomain.Exceeded";
    is $st->{'SMTP.Limit.RecipientsPerIP.Exceeded'}, 2, "$backend: SMTP.Limit.RecipientsPerIP.Exceeded";

    # -- SIGHUP: a tarpit instead of the refusal ---------------------------------
    $srv->write_conf('limit.ini', "messages_per_ip = 1/1h tarpit 1s\n");
    is $srv->hup, 'done', "$backend: SIGHUP reloads limit.ini";
    is mail_once($srv, 't@t.example', ip => '127.0.0.6'), '250 2.1.0', "$backend: the first message";
    my $t0 = time;
    is mail_once($srv, 't@t.example', ip => '127.0.0.6'), '250 2.1.0', "$backend: past the limit with tarpit: still 250";
    cmp_ok time - $t0, '>=', 1, "$backend: ... after the tarpit's 1 s";
    $srv->stop_ok("$backend: messages");

    # -- concurrency and rate ----------------------------------------------------
    $srv = server("concurrency = 2\nconcurrency_ttl = 60\nrate_per_ip = 6/3s\n", smtp => \%smtp);
    my @held = map { $srv->client(local => '127.0.0.2') } 1 .. 2;
    is $_->greeting && $_->greeting->{code}, 220, "$backend: concurrency = 2: connection held" for @held;
    my $third = $srv->client(local => '127.0.0.2');
    is code_of($third->greeting), '421 4.7.0', "$backend: a third at once: 421 4.7.0";
    my $other = $srv->client(local => '127.0.0.3');
    is $other->greeting && $other->greeting->{code}, 220, "$backend: another IP is not held back";
    $other->close;
    $held[0]->cmd('QUIT');
    $held[0]->close;
    sleep 0.3;
    my $again = $srv->client(local => '127.0.0.2');
    is $again->greeting && $again->greeting->{code}, 220, "$backend: after one disconnects, a new one is let in";
    # rate: 6 connects of 127.0.0.2 so far within 3 s (held 2, third, again: 4)
    my $c5 = $srv->client(local => '127.0.0.2');       # 5th, but concurrency: 421
    $again->close; $held[1]->close; $c5->close;
    sleep 0.3;
    my $c6 = $srv->client(local => '127.0.0.2');
    is $c6->greeting && $c6->greeting->{code}, 220, "$backend: the 6th connection in the window";
    $c6->close;
    sleep 0.3;
    my $c7 = $srv->client(local => '127.0.0.2');
    is code_of($c7->greeting), '421 4.7.0', "$backend: rate_per_ip = 6/3s: the 7th: 421 4.7.0";
    $c7->close;
    sleep 3.2;
    my $c8 = $srv->client(local => '127.0.0.2');
    is $c8->greeting && $c8->greeting->{code}, 220, "$backend: after the window, let in again";
    $c8->close;
    $st = $srv->stat('SMTP.Limit');
    is $st->{'SMTP.Limit.Concurrency.Exceeded'}, 2, "$backend: SMTP.Limit.Concurrency.Exceeded" or diag explain $st;
    is $st->{'SMTP.Limit.RatePerIP.Exceeded'}, 1, "$backend: SMTP.Limit.RatePerIP.Exceeded";
    $srv->stop_ok("$backend: concurrency");

    # -- clients that leave before their count is answered (a load
    # balancer's health check, a scanner), and counts answered too late:
    # each connection's count is given back at its disconnect
    $srv = server("concurrency = 2\nconcurrency_ttl = 60\n", smtp => \%smtp);
    for (1 .. 20) {
        my $s = IO::Socket::IP->new(PeerHost => '127.0.0.1', PeerPort => $srv->port,
                                    LocalHost => '127.0.0.11') or die "connect: $@";
        close $s;
    }
    sleep 0.5;
    my @two = map { $srv->client(local => '127.0.0.11') } 1 .. 2;
    is join(' ', map { $_->greeting ? $_->greeting->{code} : 'none' } @two), '220 220',
        "$backend: 20 clients that left at once gave their counts back: two more let in";
    $_->close for @two;
    if ($redis) {
        for (1 .. 4) {          # Redis stalls: each count times out (accept)
            $redis->pause;
            my $s = $srv->client(local => '127.0.0.12');
            $s->cmd('QUIT');
            $s->close;
            $redis->resume;
        }
        sleep 0.5;
        @two = map { $srv->client(local => '127.0.0.12') } 1 .. 2;
        is join(' ', map { $_->greeting ? $_->greeting->{code} : 'none' } @two), '220 220',
            "$backend: counts that timed out, made late, given back: two more let in";
        $_->close for @two;
    }
    $srv->stop_ok("$backend: counts given back");

    # -- AUTH failures across sessions -------------------------------------------
    $srv = server("auth_failures_per_ip = 3/1h\nauth_failures_per_account = 100/1h\n", smtp => \%smtp);
    my @a;
    for my $n (1 .. 7) {        # one wrong password per session
        my $c = $srv->client(local => '127.0.0.7');
        $c->cmd('EHLO client.test');
        push @a, code_of($c->cmd('AUTH PLAIN ' . encode_base64("\0jdoe7\0wrong$n", '')));
        $c->cmd('QUIT');
        $c->close;
        sleep 0.1;
    }
    is_deeply \@a, [ ('535 5.7.8') x 3, ('454 4.7.0') x 3, '421 4.7.0' ],
        "$backend: per IP across sessions: 3 failures, then 454 4.7.0, at twice the limit 421" or diag "@a";
    my $c = $srv->client(local => '127.0.0.7');
    $c->cmd('EHLO client.test');
    is code_of($c->cmd('AUTH PLAIN ' . encode_base64("\0jdoe7\0$PW", ''))), '421 4.7.0',
        "$backend: even the right password is not checked from that IP now";
    $c->close;
    $srv->write_conf('limit.ini', "auth_failures_per_account = 2/1h\n");
    is $srv->hup, 'done', "$backend: SIGHUP";
    for my $ip ('127.0.0.8', '127.0.0.9') {   # one account, two addresses
        my $c2 = $srv->client(local => $ip);
        $c2->cmd('EHLO client.test');
        $c2->cmd('AUTH PLAIN ' . encode_base64("\0mmajor\0bad", ''));
        $c2->cmd('QUIT');
        $c2->close;
    }
    sleep 0.2;
    $c = $srv->client(local => '127.0.0.10');
    $c->cmd('EHLO client.test');
    is code_of($c->cmd('AUTH PLAIN ' . encode_base64("\0mmajor\0$PW", ''))), '454 4.7.0',
        "$backend: per account: two failures from two IPs, a third IP gets 454 4.7.0";
    is code_of($c->cmd('AUTH PLAIN ' . encode_base64("\0bob\0$PW", ''))), '235 2.7.0',
        "$backend: another account from that IP authenticates";
    $c->close;
    $st = $srv->stat('SMTP.Limit');
    is $st->{'SMTP.Limit.AuthFailuresPerIP.Exceeded'}, 5, "$backend: SMTP.Limit.AuthFailuresPerIP.Exceeded" or diag explain $st;
    is $st->{'SMTP.Limit.AuthFailuresPerAccount.Exceeded'}, 1, "$backend: SMTP.Limit.AuthFailuresPerAccount.Exceeded";
    $srv->stop_ok("$backend: auth");

    # -- Redis stopped ----------------------------------------------------------
    if ($redis) {
        my $acc = server("messages_per_ip = 5/1h\nstore_failure = accept\n", smtp => \%smtp);
        my $tmp = server("messages_per_ip = 5/1h\nstore_failure = tempfail\n", smtp => \%smtp);
        $redis->stop;
        is mail_once($acc, 'a@a.example'), '250 2.1.0', 'Redis stopped, store_failure = accept: MAIL goes on';
        is mail_once($tmp, 'a@a.example'), '451 4.3.0', 'Redis stopped, store_failure = tempfail: 451 4.3.0';
        $_->stop_ok('limit, redis stopped') for $acc, $tmp;
    }
  }
}

# -- -t ------------------------------------------------------------------------------
for my $bad (['concurrency = -1', qr/concurrency: /],
             ['concurrency_ttl = 5', qr/concurrency_ttl: /],
             ['rate_per_ip = 10', qr/rate_per_ip: expected N\/WINDOW/],
             ['messages_per_ip = 0/1h', qr/messages_per_ip: expected N\/WINDOW/],
             ['messages_per_ip = 10/0.5ms', qr/messages_per_ip: .*WINDOW >= 1ms/],
             ['messages_per_user = 5/1x', qr/messages_per_user: expected/],
             ['messages_per_domain = 5/1h tarpit', qr/messages_per_domain: expected/],
             ['recipients_per_ip = 5/1h tarpit 400s', qr/recipients_per_ip: expected/],
             ['recipients_per_user = 5/1h 450', qr/recipients_per_user: expected/],
             ['recipients_per_domain = x', qr/recipients_per_domain: expected/],
             ['auth_failures_per_ip = 5', qr/auth_failures_per_ip: expected/],
             ['auth_failures_per_account = -1/1h', qr/auth_failures_per_account: expected/],
             ['store_failure = maybe', qr/store_failure: /],
             ['speed = 5', qr/unknown key 'speed'/]) {
    my $s = Upesi::Test->new(plugins => ['limit', 'queue_spool'],
                             ini => { 'limit.ini' => "concurrency = 5\n$bad->[0]\n" });
    my ($exit, $out) = upesi_check($s->conf);
    isnt $exit, 0, "-t refuses '$bad->[0]'";
    like $out, qr/limit\.ini:2: .*$bad->[1]/, '  with limit.ini:2 and the reason' or diag $out;
}
{
    my $s = Upesi::Test->new(plugins => ['auth', 'limit', 'queue_spool'],
                             ini => { 'limit.ini' => "auth_failures_per_ip = 5/1h\n" });
    my ($exit, $out) = upesi_check($s->conf);
    like $out, qr/limit must come before auth/, '-t: limit after auth with AUTH rules' or diag $out;
    $s = Upesi::Test->new(plugins => ['limit', 'auth', 'queue_spool']);
    $s->write_conf('limit.ini', slurp("$ROOT/conf/limit.ini"));
    ($exit, $out) = upesi_check($s->conf);
    is $exit, 0, 'the shipped conf/limit.ini passes -t' or diag $out;
}

done_testing;
