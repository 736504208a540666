package Upesi::Test::DNS;

# Upesi::Test::DNS - a real DNS server for end-to-end tests: dnsmasq on a
# free 127.0.0.1 UDP port, answering test zones from the records it is
# given, with zones that never answer (a silent UDP socket: lookups time
# out) and zones that answer SERVFAIL.
#
#   use Upesi::Test::DNS;
#   my $dns = Upesi::Test::DNS->start(
#       records => [ host    => 'mail.example.test,127.0.0.60',
#                    ptr     => '22.0.0.127.in-addr.arpa,liar.test',
#                    address => 'x.bl.test,127.0.0.2',   # and its subnames
#                    txt     => 'x.bl.test,Listed here',
#                    mx      => 'mx.test,mail.mx.test,10' ],
#       silent   => ['slow.test'],        # lookups below it time out
#       servfail => ['fail.test']);       # answered SERVFAIL
#   my $srv = Upesi::Test->new(smtp => { dns_servers => $dns->server });
#
# log_queries => 1 has dnsmasq log every query it gets; queries(qr//)
# counts the logged queries whose name matches.
#
# Records are dnsmasq's own (--host-record, --ptr-record, --address with
# "name,ip" for "/name/ip", --txt-record, --mx-host), in order; local =>
# [zones] says which zones dnsmasq answers alone (default test,
# in-addr.arpa, ip6.arpa: no upstream is ever asked).
#
# How it fails: when dnsmasq does not come up (the port was taken between
# choosing and binding it) it is tried again on a fresh port, three times
# in all, then the test bails out with dnsmasq's own words.  dnsmasq and
# the SERVFAIL responder are stopped when the test ends.

use strict;
use warnings;

use File::Temp qw(tempdir);
use IO::Socket::IP;
use POSIX qw(WNOHANG);
use Socket qw(SOCK_DGRAM);
use Test::More ();
use Time::HiRes qw(sleep time);

use Upesi::Test qw(slurp);

our $DNSMASQ = '/usr/sbin/dnsmasq';

my %OPTION = (host => 'host-record', ptr => 'ptr-record', txt => 'txt-record',
              mx => 'mx-host', address => 'address', server => 'server');

my %running;                    # child pid => the pid that started it, for END

sub available { -x $DNSMASQ }

# A UDP port on 127.0.0.1 that was free a moment ago.
sub free_udp_port {
    my $s = udp_socket();
    my $p = $s->sockport;
    close $s;
    return $p;
}

sub udp_socket {
    my $s = IO::Socket::IP->new(LocalHost => '127.0.0.1', LocalPort => 0,
                                Proto => 'udp', Type => SOCK_DGRAM)
        or die "udp socket: $@";
    return $s;
}

sub start {
    my ($class, %opt) = @_;
    my $self = bless { tmp => tempdir('upesi-dns-XXXXXX', TMPDIR => 1,
                                      CLEANUP => 1) }, $class;
    my @args;
    push @args, "--local=/$_/" for @{ $opt{local} || [qw(test in-addr.arpa ip6.arpa)] };
    if (@{ $opt{silent} || [] }) {
        # a UDP socket that reads nothing: queries forwarded to it time out
        $self->{silent} = udp_socket();
        push @args, map { "--server=/$_/127.0.0.1#" . $self->{silent}->sockport }
                        @{ $opt{silent} };
    }
    if (@{ $opt{servfail} || [] }) {
        my $port = $self->_servfail;
        push @args, map { "--server=/$_/127.0.0.1#$port" } @{ $opt{servfail} };
    }
    push @args, '--log-queries' if $opt{log_queries};
    my @records = @{ $opt{records} || [] };
    while (my ($type, $spec) = splice @records, 0, 2) {
        my $name = $OPTION{$type} or die "Upesi::Test::DNS: unknown record type $type";
        $spec = '/' . join('/', split /,/, $spec, 2) if $type eq 'address';
        push @args, "--$name=$spec";
    }
    for (1 .. 3) {
        return $self if $self->_start_once(@args);
        $self->_kill('dnsmasq_pid');
    }
    Test::More::BAIL_OUT("dnsmasq did not start: " . (slurp("$self->{tmp}/dnsmasq.log") // ''));
}

sub port   { $_[0]{port} }

# queries(qr//): how many queries dnsmasq logged for names matching
sub queries {
    my ($self, $re) = @_;
    my $log = slurp("$self->{tmp}/dnsmasq.log") // '';
    return scalar grep { /query\[\w+\] (\S+) from/ && $1 =~ $re } split /\n/, $log;
}
# "127.0.0.1:PORT", for smtp.ini dns_servers
sub server { "127.0.0.1:$_[0]{port}" }

sub _start_once {
    my ($self, @args) = @_;
    my $port = $self->{port} = free_udp_port();
    my $pid = fork // die "fork: $!";
    if ($pid == 0) {
        open STDIN, '<', '/dev/null';
        open STDOUT, '>', '/dev/null';
        open STDERR, '>', "$self->{tmp}/dnsmasq.log";
        exec $DNSMASQ, '--keep-in-foreground', '--conf-file=/dev/null',
            '--no-resolv', '--no-hosts', '--pid-file=',
            ($> == 0 ? ('--user=root') : ()),
            '--listen-address=127.0.0.1', '--bind-interfaces', "--port=$port",
            '--log-facility=-', @args
            or POSIX::_exit(127);
    }
    $self->{dnsmasq_pid} = $pid;
    $running{$pid} = $$;
    my $want = sprintf('0100007F:%04X', $port);
    my $end = time + 10 * $Upesi::Test::SLOW;
    while (time < $end) {
        if (waitpid($pid, WNOHANG) == $pid) {
            delete $running{$pid};
            $self->{dnsmasq_pid} = undef;
            return 0;
        }
        open my $fh, '<', '/proc/net/udp' or return 0;
        return 1 if grep { (split)[1] eq $want } <$fh>;
        sleep 0.05;
    }
    return 0;
}

# A child that answers SERVFAIL to every query; returns its port.
sub _servfail {
    my ($self) = @_;
    my $sock = udp_socket();
    my $pid = fork // die "fork: $!";
    if ($pid == 0) {
        $SIG{ALRM} = 'DEFAULT';
        $SIG{TERM} = sub { POSIX::_exit(0) };
        alarm 0;
        while (1) {
            my $peer = $sock->recv(my $q, 4096) // next;
            next if length $q < 17;
            my $end = 12;
            $end += 1 + ord(substr $q, $end, 1) while $end < length $q && ord(substr $q, $end, 1);
            my $a = substr($q, 0, 2) . "\x81\x82" . substr($q, 4, 2) . "\0" x 6
                  . substr($q, 12, $end + 5 - 12);
            $sock->send($a, 0, $peer);
        }
    }
    $self->{servfail_pid} = $pid;
    $running{$pid} = $$;
    my $port = $sock->sockport;
    close $sock;
    return $port;
}

sub _kill {
    my ($self, $which) = @_;
    my $pid = delete $self->{$which} or return;
    delete $running{$pid};
    kill 'TERM', $pid;
    waitpid($pid, 0);
}

# stop(): dnsmasq and the SERVFAIL responder (also done at END)
sub stop {
    my ($self) = @_;
    $self->_kill($_) for qw(dnsmasq_pid servfail_pid);
}

END {
    my $status = $?;
    for my $pid (grep { $running{$_} == $$ } keys %running) {
        kill 'TERM', $pid;
        waitpid($pid, 0);
    }
    $? = $status;
}

1;
