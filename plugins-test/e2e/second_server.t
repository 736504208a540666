#!/usr/bin/perl
# second_server.t - one port, one server (issue 22 item 4).
#
# A second upesi started by mistake on a port the first listens on, with
# its own conf directory, must not join the first's listeners: it exits at
# start, non-zero, with a message naming the address and "address already
# in use", and the first keeps getting every connection.  A stranger's
# socket with SO_REUSEPORT (what let the second server in: the kernel
# admits any process of the same user to a group of SO_REUSEPORT sockets)
# cannot bind the port either.  A second server that names the first's
# control socket is refused too and the first keeps answering on it.
use strict;
use warnings;
use FindBin;
use lib "$FindBin::Bin/../lib";
use Test::More;
use IO::Socket::IP;
use Socket qw(SOL_SOCKET SO_REUSEADDR SOCK_STREAM);
use Time::HiRes qw(time sleep);
use Upesi::Test;

deadline(90);

# SO_REUSEPORT is 15 on Linux (Socket.pm exports it only on newer perls)
my $SO_REUSEPORT = eval { Socket::SO_REUSEPORT() } // 15;

my $first = Upesi::Test->new(smtp => { workers => 2, hostname => 'first.test',
                                       greeting => 'first.test ESMTP',
                                       local_domains => 'example.com' });
$first->start;
my $port = $first->port;

# -- a second upesi on the same port --------------------------------------------
# started in the background as the first was: if it keeps running, the
# connections below show what it takes
my $second = Upesi::Test->new(smtp => { workers => 2, hostname => 'second.test',
                                        greeting => 'second.test ESMTP',
                                        listen => "127.0.0.1:$port" });
$second->{port} = $port;
my $t0 = time;
$second->_start_once;       # returns at once: the port is listening (the first)
sleep 0.05 while $second->running && time < $t0 + 5 * $SLOW;
my $took = time - $t0;
ok !$second->running, 'a second server on the same port exits at start'
    . sprintf(' (after %.1f s)', $took);
ok defined $second->{exit} && $second->{exit} != 0, '... with a non-zero status';
like $second->log_text, qr/127\.0\.0\.1:$port\b.*address already in use/i,
    '... saying which address is already in use';

# the first still gets every connection
my %by;
for (1 .. 12) {
    my $c = $first->client;
    my ($name) = ($c->greeting ? $c->greeting->{text} : '') =~ /^(\S+)/;
    $by{ $name // 'none' }++;
    $c->cmd('QUIT');
    $c->close;
}
is_deeply \%by, { 'first.test' => 12 }, 'all 12 connections reach the first server'
    or diag explain \%by;
$second->stop if $second->running;

# -- a stranger with SO_REUSEPORT -------------------------------------------------
{
    my $s;
    socket($s, Socket::AF_INET, SOCK_STREAM, 0) or die "socket: $!";
    setsockopt($s, SOL_SOCKET, SO_REUSEADDR, 1) or die "SO_REUSEADDR: $!";
    setsockopt($s, SOL_SOCKET, $SO_REUSEPORT, 1) or die "SO_REUSEPORT: $!";
    my $bound = bind($s, Socket::pack_sockaddr_in($port, Socket::inet_aton('127.0.0.1')));
    my $err = $!;
    ok !$bound, 'a stranger socket with SO_REUSEPORT cannot bind the port';
    like "$err", qr/address already in use/i, '... EADDRINUSE' if !$bound;
    close $s;
}

# -- a second server that names the first's control socket ------------------------
{
    my $third = Upesi::Test->new(smtp => { workers => 1,
                                           control_socket => "${\ $first->tmp}/upesi.sock" });
    my ($x, $o) = Upesi::Test::run_cmd(10, $UPESI, '-c', $third->conf);
    isnt $x, 0, 'a server on the first one\'s control socket exits non-zero';
    isnt $x, -1, '... at start';
    like $o, qr/control socket \S+upesi\.sock: another server is listening on it/,
        '... saying why';
    ok !Upesi::Test::_listening('127.0.0.1', $third->port),
        '... and it never listened on its own port';
    my $st = $first->stat('SMTP.Sessions.Accepted');
    is $st && $st->{'SMTP.Sessions.Accepted'}, 12,
        'the first server still answers on its control socket';
}

# the first server is unharmed
my $r = $first->swaks_send('--to', 'bob@example.com');
is $r->{exit}, 0, 'the first server still accepts mail' or diag $r->{out};
$first->stop_ok('the first server');

done_testing;
