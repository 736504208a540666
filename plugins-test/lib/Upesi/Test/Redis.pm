package Upesi::Test::Redis;

# Upesi::Test::Redis - a real Redis for end-to-end tests: Debian's
# redis-server on a free 127.0.0.1 port, in a temp directory of its own,
# persisting nothing (--save '', no AOF), stopped when the test ends.
# Shared by the tests of everything that uses the store (store, greylist,
# bayes, ...).
#
#   use Upesi::Test::Redis;
#   plan skip_all => 'no redis-server' unless Upesi::Test::Redis->available;
#   my $redis = Upesi::Test::Redis->start(password => 'secret');  # optional
#   my $srv = Upesi::Test->new(smtp => { store => $redis->url });
#   $redis->cli('GET', 'lua:rate:x')    # redis-cli's answer, chomped
#   $redis->stop;  $redis->start_again; # same port, same directory
#   $redis->pause; $redis->resume;      # SIGSTOP / SIGCONT: a hung server
#
# url() is redis://[:PASSWORD@]127.0.0.1:PORT/DB (db => N, default 0);
# unix => 1 also opens a socket in the directory, unix_url() names it.
#
# How it fails: when redis-server does not answer PING within 10 s (the
# port was taken between choosing and binding it) it is tried on a fresh
# port, three times in all, then the test bails out with Redis's log.

use strict;
use warnings;

use File::Temp qw(tempdir);
use IO::Socket::IP;
use POSIX qw(WNOHANG);
use Test::More ();
use Time::HiRes qw(sleep time);

use Upesi::Test qw(free_port slurp $SLOW);

our $SERVER = '/usr/bin/redis-server';
our $CLI    = '/usr/bin/redis-cli';

my %running;                    # pid => the pid that started it, for END

sub available { -x $SERVER && -x $CLI }

sub start {
    my ($class, %opt) = @_;
    my $self = bless { %opt, db => $opt{db} // 0,
                       dir => tempdir('upesi-redis-XXXXXX', TMPDIR => 1,
                                      CLEANUP => !$ENV{UPESI_KEEP}) }, $class;
    for my $try (1 .. 3) {
        $self->{port} = free_port();
        return $self if $self->_start_once;
    }
    Test::More::BAIL_OUT("redis-server did not start:\n" .
                         (slurp("$self->{dir}/redis.log") // ''));
}

sub port     { $_[0]{port} }
sub dir      { $_[0]{dir} }
sub pid      { $_[0]{pid} }
sub unix_path { "$_[0]{dir}/redis.sock" }

sub url {
    my ($self) = @_;
    my $auth = defined $self->{password} ? ":$self->{password}\@" : '';
    return "redis://${auth}127.0.0.1:$self->{port}/$self->{db}";
}

sub unix_url {
    my ($self) = @_;
    my $auth = defined $self->{password} ? ":$self->{password}\@" : '';
    return "redis+unix://${auth}" . $self->unix_path . "?db=$self->{db}";
}

sub _start_once {
    my ($self) = @_;
    my @args = ('--port', $self->{port}, '--bind', '127.0.0.1',
                '--save', '', '--appendonly', 'no', '--dir', $self->{dir},
                '--logfile', "$self->{dir}/redis.log", '--daemonize', 'no');
    push @args, '--requirepass', $self->{password} if defined $self->{password};
    push @args, '--unixsocket', $self->unix_path, '--unixsocketperm', '700'
        if $self->{unix};
    my $pid = fork // die "fork: $!";
    if ($pid == 0) {
        open STDIN, '<', '/dev/null';
        open STDOUT, '>>', "$self->{dir}/redis.out";
        open STDERR, '>&', \*STDOUT;
        exec $SERVER, @args or POSIX::_exit(127);
    }
    $self->{pid} = $pid;
    $running{$pid} = $$;
    my $until = time + 10 * $SLOW;
    while (time < $until) {
        if (waitpid($pid, WNOHANG) == $pid) {
            delete $running{$pid};
            delete $self->{pid};
            return 0;
        }
        return 1 if $self->ping;
        sleep 0.05;
    }
    $self->stop;
    return 0;
}

# Does the server answer PING (with AUTH first when it has a password)?
sub ping {
    my ($self) = @_;
    my $s = IO::Socket::IP->new(PeerHost => '127.0.0.1',
                                PeerPort => $self->{port}, Timeout => 1)
        or return 0;
    my $cmd = defined $self->{password}
        ? "AUTH $self->{password}\r\nPING\r\n" : "PING\r\n";
    print $s $cmd;
    my $got = '';
    my $until = time + 1;
    while (time < $until && $got !~ /PONG|-ERR|-NOAUTH/) {
        my $n = sysread($s, my $buf, 512);
        last unless $n;
        $got .= $buf;
    }
    close $s;
    return $got =~ /\+PONG/ ? 1 : 0;
}

# redis-cli ARGS...: its output, chomped ('' for nil)
sub cli {
    my ($self, @args) = @_;
    my @auth = defined $self->{password} ? ('--no-auth-warning', '-a',
                                            $self->{password}) : ();
    open(my $fh, '-|', $CLI, '-h', '127.0.0.1', '-p', $self->{port},
         '-n', $self->{db}, @auth, @args) or die "redis-cli: $!";
    local $/;
    my $out = <$fh> // '';
    close $fh;
    $out =~ s/\s+\z//;
    return $out;
}

sub stop {
    my ($self) = @_;
    my $pid = delete $self->{pid} or return;
    kill 'CONT', $pid;
    kill 'TERM', $pid;
    my $until = time + 10;
    while (time < $until) {
        last if waitpid($pid, WNOHANG) == $pid;
        sleep 0.02;
    }
    if (kill 0, $pid) {
        kill 'KILL', $pid;
        waitpid($pid, 0);
    }
    delete $running{$pid};
}

# The same server again: same port, same directory (nothing was saved).
sub start_again {
    my ($self) = @_;
    $self->stop;
    $self->_start_once or Test::More::BAIL_OUT(
        "redis-server did not start again on port $self->{port}");
    return $self;
}

sub pause  { kill 'STOP', $_[0]{pid} if $_[0]{pid} }
sub resume { kill 'CONT', $_[0]{pid} if $_[0]{pid} }

END {
    local $?;                   # waitpid must not become the test's status
    for my $pid (keys %running) {
        next unless $running{$pid} == $$;
        kill 'CONT', $pid;
        kill 'KILL', $pid;
        waitpid($pid, 0);
    }
}

1;
