#!/usr/bin/perl
# store_lmdb.t - the store's default backend (LMDB under the spool) shared
# by the workers of one host: lua/examples/ratelimit.lua trips at exactly N
# transactions summed over two workers (with one store per worker it would
# let up to 2N through); a worker killed with SIGKILL in the middle of
# writes is restarted, the store opens again and the counter holds every
# acknowledged increment (and at most the few in flight besides); `upesi
# stat` shows SMTP.Store.*; -t refuses a bad store URL with file:line.
use strict;
use warnings;
use FindBin;
use lib "$FindBin::Bin/../lib";
use POSIX qw(WNOHANG);
use Test::More;
use Time::HiRes qw(sleep time);
use Upesi::Test;

deadline(180);

sub example {
    my ($name, %subst) = @_;
    my $lua = slurp("$ROOT/lua/examples/$name") // die "no example $name";
    for my $from (keys %subst) {
        $lua =~ s/\Q$from\E/$subst{$from}/ or die "$name: '$from' not found";
    }
    return $lua;
}

sub workers_of {
    my ($srv) = @_;
    my @pids;
    for my $stat (glob '/proc/[0-9]*/stat') {
        my $s = slurp($stat) // next;
        push @pids, $1 if $s =~ /^(\d+) \(.*?\) \S (\d+)/ && $2 == $srv->pid;
    }
    return sort { $a <=> $b } @pids;
}

# -- a bad store setting -------------------------------------------------------
{
    my $srv = Upesi::Test->new(smtp => { store => 'redis:/nohost' });
    my ($exit, $out) = upesi_check($srv->conf);
    isnt $exit, 0, '-t refuses a store that is no URL';
    like $out, qr/smtp\.ini:\d+: .*not a store \(lmdb:PATH, redis:/, '... naming file:line and the forms';
    $srv->set_smtp(store => 'redis://127.0.0.1:99999/0');
    ($exit, $out) = upesi_check($srv->conf);
    like $out, qr/smtp\.ini:\d+: .*bad Redis port/, 'a bad port';
    $srv->set_smtp(store => 'lmdb:');
    ($exit, $out) = upesi_check($srv->conf);
    like $out, qr/smtp\.ini:\d+: .*lmdb: needs a directory/, 'lmdb: without a path';
    $srv->set_smtp(store => 'lmdb:state', store_timeout => 5);
    ($exit, $out) = upesi_check($srv->conf);
    like $out, qr/smtp\.ini:\d+: store_timeout: expected a whole number from 10 to 60000, got '5'/, 'store_timeout below 10 ms';
    $srv->set_smtp(store_timeout => 500, store_size => '10k');
    ($exit, $out) = upesi_check($srv->conf);
    like $out, qr/smtp\.ini:\d+: store_size: expected a size in bytes from 1048576 .*got '10k'/, 'store_size below 1M';
    $srv->set_smtp(store_size => '64M', store_timeout => 30000, plugin_timeout => 30);
    ($exit, $out) = upesi_check($srv->conf);
    like $out, qr/WARNING .*smtp\.ini: store_timeout \(30000 ms\) is not below plugin_timeout \(30s\)/,
        'a store_timeout not below plugin_timeout is a warning';
    $srv->set_smtp(store_timeout => 1000, store => 'redis://:pw@127.0.0.1:1/3');
    ($exit, $out) = upesi_check($srv->conf);
    is $exit, 0, 'an unreachable Redis is no error for -t' or diag $out;
    like $out, qr/WARNING store: redis:\/\/127\.0\.0\.1:1\/3 is not reachable now .*mail flows/, '... but a warning (without the password)';
    unlike $out, qr/store names the host/, '... an address: no word on names';
    $srv->set_smtp(store => 'redis://localhost:1/3');
    ($exit, $out) = upesi_check($srv->conf);
    like $out, qr/WARNING .*smtp\.ini: store names the host localhost: it is looked up, blocking the worker/,
        'a host name in store: a warning that it is looked up, blocking';
}

# -- two workers, one counter -------------------------------------------------------
my $N = 10;
{
    my $srv = Upesi::Test->new(
        smtp    => { local_domains => 'example.com', workers => 2,
                     error_limit => 1000 },
        plugins => [ 'lua', 'queue_spool' ],
        ini     => { 'lua.ini' => "scripts = ratelimit.lua\n",
                     'lua/ratelimit.lua' => example('ratelimit.lua',
                         'local limit = 100 ' => "local limit = $N ") },
    );
    $srv->start;
    my @codes;
    for my $i (1 .. 3 * $N) {
        my $c = $srv->client;
        $c->cmd('EHLO client.test');
        push @codes, $c->cmd("MAIL FROM:<u$i\@sender.test>")->{code};
        $c->cmd('QUIT');
        $c->close;
    }
    my $passed = grep { $_ == 250 } @codes;
    is $passed, $N, "the rate limit trips at exactly $N over both workers";
    is "@codes[0 .. $N - 1]", join(' ', (250) x $N), '... the first N pass';
    is scalar(grep { $_ == 451 } @codes), 2 * $N, '... every later one is deferred';
    my %pids = map { /upesi\[(\d+)\]/ ? ($1 => 1) : () }
               $srv->log_lines(qr/MAIL|disconnect 127\.0\.0\.1/);
    my @w = workers_of($srv);
    is scalar(@w), 2, 'two workers run';
    ok((grep { $pids{$_} } @w) == 2, 'both workers served sessions')
        or diag "workers @w, logging " . join(' ', sort keys %pids);
    my $st = $srv->stat('SMTP.Store');
    cmp_ok $st->{'SMTP.Store.Calls'}, '>=', 3 * $N, 'SMTP.Store.Calls in upesi stat';
    is $st->{'SMTP.Store.Errors'} // 0, 0, 'SMTP.Store.Errors: none';
    ok -f $srv->spooldir . '/store/data.mdb', 'the store lives in <spool_dir>/store/';
    $srv->stop_ok('two workers');
}

# -- kill -9 in the middle of writes ------------------------------------------------
{
    my $lua = <<'LUA';
upesi.hook("rcpt", function(conn, txn, rcpt)
  if rcpt == "total@example.com" then
    return upesi.DENY, "total=" .. tostring(upesi.kv.get("total"))
  end
  local n, err = upesi.kv.incr("total")
  if not n then return upesi.DENYSOFT, "store: " .. err end
  return upesi.OK
end)
LUA
    my $srv = Upesi::Test->new(
        smtp    => { local_domains => 'example.com', workers => 2,
                     error_limit => 100000 },
        plugins => [ 'lua', 'queue_spool' ],
        ini     => { 'lua.ini' => "scripts = count.lua\n", 'lua/count.lua' => $lua },
    );
    $srv->start;
    my $dir = $srv->tmp;
    my $CLIENTS = 4;
    my $run_for = 3 * $SLOW;
    my @kids;
    for my $k (1 .. $CLIENTS) {
        my $pid = fork // die "fork: $!";
        if ($pid == 0) {
            my ($acked, $end) = (0, time + $run_for);
            while (time < $end) {
                my $c = eval { $srv->client } or next;
                eval {
                    $c->cmd('EHLO client.test');
                    $c->cmd('MAIL FROM:<k@sender.test>');
                    for (1 .. 50) {
                        my $r = $c->cmd("RCPT TO:<r$_\@example.com>") or die;
                        die unless $r->{code};
                        $acked++ if $r->{code} == 250;
                    }
                    $c->cmd('QUIT');
                };
                $c->close;
            }
            spit("$dir/acked.$k", "$acked\n");
            POSIX::_exit(0);
        }
        push @kids, $pid;
    }
    sleep 1 * $SLOW;
    my @w = workers_of($srv);
    ok kill('KILL', $w[0]), "SIGKILL to worker $w[0] in the middle of writes";
    waitpid($_, 0) for @kids;
    my $acked = 0;
    $acked += (slurp("$dir/acked.$_") // 0) for 1 .. $CLIENTS;
    my $c = $srv->client;
    $c->cmd('EHLO client.test');
    $c->cmd('MAIL FROM:<k@sender.test>');
    my $r = $c->cmd('RCPT TO:<total@example.com>');
    my ($total) = ($r->{text} // '') =~ /total=(\d+)/;
    ok defined $total, 'the counter reads after the kill' or diag $r->{text};
    $total //= -1;
    cmp_ok $acked, '>', 100, "clients got $acked increments acknowledged";
    ok $total >= $acked && $total <= $acked + $CLIENTS,
        "the counter ($total) holds every acknowledged increment ($acked), and at most one in flight per client";
    my $started = () = $srv->log_lines(qr/worker \d+ started/);
    is $started, 3, 'the supervisor started a new worker';
    my @after = workers_of($srv);
    is scalar(@after), 2, 'two workers again';
    my $opens = () = $srv->log_lines(qr/store: lmdb:\S+ open/);
    cmp_ok $opens, '>=', 3, 'the new worker opened the store';
    is scalar($srv->log_lines(qr/store: .*(?:MDB_|corrupt|cannot)/)), 0, 'no store error in the log';
    # and it still counts, in both workers
    my $before = $total;
    for (1 .. 10) {
        my $c2 = $srv->client;
        $c2->cmd('EHLO client.test');
        $c2->cmd('MAIL FROM:<k@sender.test>');
        $c2->cmd('RCPT TO:<again@example.com>');
        $c2->cmd('QUIT');
        $c2->close;
    }
    $r = $c->cmd('RCPT TO:<total@example.com>');
    like $r->{text}, qr/total=\Q@{[$before + 10]}\E\b/, 'ten more increments land on the same counter';
    $c->close;
    my $verify = `mdb_stat -e '$srv->{spool}/store' 2>&1`;
    like $verify, qr/Entries: \d+/, 'mdb_stat reads the environment' or diag $verify;
    $srv->stop_ok('after kill -9');
}

done_testing;
