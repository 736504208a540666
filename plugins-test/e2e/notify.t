#!/usr/bin/perl
# notify.t - systemd Type=notify without systemd: NOTIFY_SOCKET names a
# unix datagram socket this test listens on, as systemd would.  In order:
# READY=1 once every worker listens (the log shows both workers listening
# before it), RELOADING=1 with MONOTONIC_USEC (the time of the request,
# CLOCK_MONOTONIC) and READY=1 around SIGHUP (a refused reload too),
# STOPPING=1 at SIGTERM; WATCHDOG=1 pings with WATCHDOG_USEC set.
use strict;
use warnings;
use FindBin;
use lib "$FindBin::Bin/../lib";
use IO::Select;
use IO::Socket::UNIX;
use Socket qw(SOCK_DGRAM);
use Time::HiRes qw(time clock_gettime CLOCK_MONOTONIC);
use Test::More;
use Upesi::Test;

deadline(90);

my $s = Upesi::Test->new(smtp => { workers => 2 });
my $path = $s->tmp . '/notify.sock';
my $sock = IO::Socket::UNIX->new(Type => SOCK_DGRAM, Local => $path)
    or die "notify socket: $!";
my $sel = IO::Select->new($sock);

# every message until $until returns true or $secs pass
sub messages {
    my ($secs, $until) = @_;
    my @got;
    my $end = time + $secs * $Upesi::Test::SLOW;
    while (time < $end) {
        next unless $sel->can_read(0.05);
        my $buf;
        defined recv($sock, $buf, 4096, 0) or next;
        push @got, $buf;
        last if $until && $until->($buf);
    }
    return @got;
}
sub states { map { my $m = $_; $m =~ s/\n(?:STATUS|MONOTONIC_USEC)=[^\n]*//g; $m } grep { !/^WATCHDOG=1$/ } @_ }

{
    local $ENV{NOTIFY_SOCKET} = $path;
    local $ENV{WATCHDOG_USEC} = 400000;     # a ping every 0.2 s
    $s->start;
}
my @m = messages(10, sub { $_[0] =~ /^READY=1/m });
is_deeply [states(@m)], ['READY=1'], 'start: READY=1' or diag explain \@m;
my $log = $s->log_text;
my $ready_at = index($log, 'telling systemd READY=1');
ok $ready_at > 0, 'the log says when READY=1 went';
my $n = () = substr($log, 0, $ready_at > 0 ? $ready_at : 0) =~ /worker \d started/g;
is $n, 2, '... after both workers listen and serve';

# the watchdog: pings while the workers live
@m = messages(1.2);
my $pings = grep { /^WATCHDOG=1$/ } @m;
cmp_ok $pings, '>=', 2, "WATCHDOG=1 pings at half WATCHDOG_USEC ($pings in 1.2 s)";
is_deeply [states(@m)], [], '... and nothing else meanwhile';

# a reload
my $log_before = length $s->log_text;
my $t0 = int(clock_gettime(CLOCK_MONOTONIC) * 1e6);
kill 'HUP', $s->pid;
@m = messages(15, sub { $_[0] =~ /^READY=1/m });
my $t1 = int(clock_gettime(CLOCK_MONOTONIC) * 1e6);
is_deeply [states(@m)], ['RELOADING=1', 'READY=1'], 'SIGHUP: RELOADING=1 then READY=1' or diag explain \@m;
my ($reloading) = grep { /^RELOADING=1/ } @m;
my ($usec) = ($reloading // '') =~ /^MONOTONIC_USEC=(\d+)$/m;
ok defined $usec, 'RELOADING=1 comes with MONOTONIC_USEC' or diag $reloading;
ok defined $usec && $usec >= $t0 && $usec <= $t1, '... the CLOCK_MONOTONIC time of the request'
    or diag "$t0 <= $usec <= $t1";
{
    my $new = substr($s->log_text, $log_before);
    my @done = ();
    push @done, $-[0] while $new =~ /reload done/g;
    my $ready = index($new, 'telling systemd READY=1');
    is scalar(@done), 2, '... both workers reloaded' or diag $new;
    ok $ready > 0 && @done == 2 && $ready > $done[1], '... and READY=1 came after both' or diag $new;
}

# a reload refused: still RELOADING=1, READY=1 (the old configuration runs)
spit($s->conf . '/smtp.ini', slurp($s->conf . '/smtp.ini') . "frobnicate = 1\n");
kill 'HUP', $s->pid;
@m = messages(15, sub { $_[0] =~ /^READY=1/m });
is_deeply [states(@m)], ['RELOADING=1', 'READY=1'], 'a refused reload: RELOADING=1 then READY=1' or diag explain \@m;

# stop
kill 'TERM', $s->pid;
@m = messages(15, sub { $_[0] =~ /^STOPPING=1/m });
is_deeply [states(@m)], ['STOPPING=1'], 'SIGTERM: STOPPING=1' or diag explain \@m;
$s->stop_ok;

# outside systemd: nothing is tried, nothing is logged
my $t = Upesi::Test->new;
{
    delete local $ENV{NOTIFY_SOCKET};
    $t->start;
}
$t->stop_ok;
unlike $t->log_text, qr/telling systemd|sd_notify/, 'without NOTIFY_SOCKET: no notification';

done_testing();
