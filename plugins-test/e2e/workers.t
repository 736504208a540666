#!/usr/bin/perl
# workers.t - the supervisor and its workers: `workers = 2` starts two
# processes that share the listeners; statistics are summed; a worker killed
# with SIGKILL is logged and restarted while the other serves, and its
# sessions leave SMTP.Sessions.Current; SIGTERM stops accepting but lets an
# open session finish its message (then 421 4.3.2 and closed); the
# supervisor then exits 0 (stop.t has the rest of a stop).  The start
# line names the supervisor's pid as the one to signal, and a SIGHUP sent
# to a worker by mistake is passed to the supervisor, which reloads all.
use strict;
use warnings;
use FindBin;
use lib "$FindBin::Bin/../lib";
use Test::More;
use Time::HiRes qw(time sleep);
use Upesi::Test;

deadline(120);

sub children {
    my ($pid) = @_;
    my @kids;
    for my $stat (glob '/proc/[0-9]*/stat') {
        my $line = slurp($stat) // next;
        my ($kid, $ppid) = $line =~ /^(\d+) \(.*\) \S (\d+)/ or next;
        push @kids, $kid if $ppid == $pid;
    }
    return sort { $a <=> $b } @kids;
}

sub wait_children {
    my ($pid, $n, $secs) = @_;
    my $until = time + $secs;
    my @k;
    while (time < $until) {
        @k = children($pid);
        return @k if @k == $n;
        sleep 0.1;
    }
    return @k;
}

my $srv = Upesi::Test->new(smtp => { workers => 2, local_domains => 'example.com' },
                           plugins => ['queue_spool']);
$srv->start;
my @workers = wait_children($srv->pid, 2, 10);
is scalar(@workers), 2, 'workers = 2: the supervisor has two worker processes';

# -- messages over both workers, statistics summed ---------------------------------
for my $n (1 .. 20) {
    my $r = $srv->swaks_send('--to', 'bob@example.com', '--from', "s$n\@example.org");
    is $r->{exit}, 0, "message $n accepted" or diag $r->{out};
}
my $st = $srv->stat('SMTP.');
is $st->{'SMTP.Messages.Accepted'}, 20, 'SMTP.Messages.Accepted sums both workers';
is $st->{'SMTP.Sessions.Accepted'}, 20, 'SMTP.Sessions.Accepted = 20';
my @connects = $srv->log_lines(qr/ connect 127\.0\.0\.1/);
my %pids = map { /upesi\[(\d+)\]/ ? ($1 => 1) : () } @connects;
ok keys(%pids) >= 1, 'sessions were served (by ' . scalar(keys %pids) . ' worker(s))';

# -- the pid to signal is the supervisor's; a HUP sent to a worker reaches it -------
my $sup = $srv->pid;
my ($started) = $srv->log_lines(qr/upesi started/);
like $started // '', qr/upesi started: supervisor pid $sup \(send it HUP to reload, TERM to stop\)/,
    'the start line names the supervisor as the pid to signal';
my $reloads = () = $srv->log_lines(qr/NOTICE reload done/);
kill 'HUP', $workers[1] or die "kill: $!";
ok $srv->wait_log(qr/SIGHUP to worker \d \(pid $workers[1]\): passed to the supervisor \(pid $sup\)/, 5),
    'a HUP sent to a worker is logged as passed to the supervisor';
ok $srv->wait_log(qr/upesi\[$sup\] NOTICE SIGHUP: reloading/, 5),
    '... which reloads';
my $hup_until = time + 10;
my $now;
while (time < $hup_until) {
    $now = () = $srv->log_lines(qr/NOTICE reload done/);
    last if $now >= $reloads + 2;
    sleep 0.05;
}
is $now, $reloads + 2, '... every worker, not only the one signalled';
is_deeply [children($sup)], \@workers, 'no worker was restarted by the HUP';

# -- a worker dies: restarted, the other serves, its sessions are taken out --------
my $c = $srv->client;
is $c->cmd('EHLO hold.test')->{code}, 250, 'a session held open';
my $st1 = $srv->stat('SMTP.Sessions.Current');
is $st1->{'SMTP.Sessions.Current'}, 1, 'one session open';
kill 'KILL', $workers[0], $workers[1];
ok $srv->wait_log(qr/CRIT worker \d \(pid \d+\) killed by signal 9/, 5),
    'the supervisor logs the killed worker';
my @again = wait_children($srv->pid, 2, 10);
is scalar(@again), 2, 'both workers are running again';
isnt join(',', @again), join(',', @workers), '... as new processes';
my $r = $srv->swaks_send('--to', 'bob@example.com');
is $r->{exit}, 0, 'mail is accepted after the restart' or diag $r->{out};
$st = $srv->stat('SMTP.Sessions.Current');
is $st->{'SMTP.Sessions.Current'}, 0,
    'the dead workers\' open session left SMTP.Sessions.Current';
$st = $srv->stat('Upesi.Workers');
is $st->{'Upesi.Workers.Restarts'}, 2, 'Upesi.Workers.Restarts = 2';

# -- graceful shutdown --------------------------------------------------------------
my $open = $srv->client;
is $open->cmd('EHLO late.test')->{code}, 250, 'a session open before SIGTERM';
is $open->cmd('MAIL FROM:<a@example.org>')->{code}, 250, 'MAIL';
kill 'TERM', $srv->pid;
ok $srv->wait_log(qr/SIGTERM: stopping/, 5), 'SIGTERM logged';
sleep 0.5;
my $refused = !IO::Socket::INET->new(PeerAddr => '127.0.0.1', PeerPort => $srv->port,
                                     Timeout => 2);
ok $refused, 'no new connections after SIGTERM';
is $open->cmd('RCPT TO:<bob@example.com>')->{code}, 250, 'the open session goes on';
is $open->cmd('DATA')->{code}, 354, 'DATA';
is $open->send_data("Subject: last\r\n\r\nlast one")->{code}, 250,
    'its message is accepted';
my $bye = $open->read_reply(5);
is $bye && "$bye->{code} $bye->{enhanced}", '421 4.3.2',
    'then 421 4.3.2: no new transaction while stopping (docs/admin.md)';
ok $open->closed(2), '... and the session is closed';
my $until = time + 10;
sleep 0.1 while $srv->running && time < $until;
ok !$srv->running, 'the supervisor exits once the session ended';
is $srv->{exit}, 0, '... with status 0';
my @m = grep { ($_->{message} // '') =~ /last one/ } $srv->spool;
is scalar(@m), 1, 'the last message is in the spool';

# -- the supervisor dies: its workers go too (no orphans on the port) ----------
{
    my $s2 = Upesi::Test->new(smtp => { workers => 2 });
    $s2->start;
    my @w = wait_children($s2->pid, 2, 10);
    is scalar(@w), 2, 'two workers';
    kill 'KILL', $s2->pid;
    my $until = time + 10;
    sleep 0.1 while (grep { kill 0, $_ } @w) && time < $until;
    is scalar(grep { kill 0, $_ } @w), 0,
        'SIGKILL of the supervisor ends its workers';
    $s2->running;    # reap
}

done_testing;
