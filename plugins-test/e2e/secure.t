#!/usr/bin/perl
# secure.t - the secure defaults that hold today (issue 11):
#
#  - the default configuration (conf/) listens on loopback only: every
#    listen and smtps_listen address in conf/smtp.ini, every socket the
#    running server actually listens on, and the compiled-in default used
#    when smtp.ini has no listen key at all;
#  - no open relay: with the default conf/plugins and their default
#    settings, clients from 127.0.0.1 .. 127.0.0.5 cannot relay to another
#    domain, however the address is spelled; a local address is accepted;
#  - the control socket is mode 0600, owned by the account the server runs
#    as, and another account cannot connect to it even where it can reach
#    the directory.
# Privilege dropping (user/group) and the world-writable checks belong to
# their own tests.
use strict;
use warnings;
use FindBin;
use lib "$FindBin::Bin/../lib";
use Fcntl qw(S_ISSOCK);
use IO::Socket::IP;
use IO::Socket::UNIX;
use POSIX ();
use Socket qw(SOCK_STREAM);
use Test::More;
use Time::HiRes qw(time sleep);
use Upesi::Test;

need_built();
deadline(90);

# -- helpers --------------------------------------------------------------------

sub is_loopback_text {
    my ($addr) = @_;
    return $addr =~ /^127\.\d+\.\d+\.\d+$/ || $addr eq '::1' || $addr eq 'localhost';
}

# The listen items of an smtp.ini text: (key, address, port) each
sub listen_items {
    my ($text) = @_;
    my @out;
    my $key;
    for my $line (split /\n/, $text) {
        next if $line =~ /^\s*[;#]/;
        if ($line =~ /^(listen|smtps_listen)\s*=\s*(.*)$/) {
            $key = $1;
            push @out, map { [$key, $_] } grep { length } map { s/^\s+|\s+$//gr } split /,/, $2;
        } elsif (defined $key && $line =~ /^\s+(\S.*)$/) {   # continuation
            push @out, map { [$key, $_] } grep { length } map { s/^\s+|\s+$//gr } split /,/, $1;
        } else {
            undef $key;
        }
    }
    for (@out) {
        my ($host, $port) = $_->[1] =~ /^\[(.*)\]:(\d+)$/ ? ($1, $2)
                          : $_->[1] =~ /^(.*):(\d+)$/     ? ($1, $2) : ($_->[1], undef);
        push @$_, $host, $port;
    }
    return @out;
}

sub descendants {
    my ($pid) = @_;
    my %kids;
    for my $stat (glob '/proc/[0-9]*/stat') {
        my $line = slurp($stat) // next;
        my ($kid, $ppid) = $line =~ /^(\d+) \(.*\) \S (\d+)/ or next;
        push @{ $kids{$ppid} }, $kid;
    }
    my @all = ($pid);
    for (my $i = 0; $i < @all; $i++) { push @all, @{ $kids{ $all[$i] } || [] } }
    return @all;
}

# Every TCP socket in LISTEN state held by the process tree of pid, as
# "address:port" (addresses decoded from /proc/net/tcp and tcp6).
sub listening_sockets {
    my ($pid) = @_;
    my %inodes;
    for my $p (descendants($pid)) {
        for my $fd (glob "/proc/$p/fd/*") {
            my $l = readlink($fd) // next;
            $inodes{$1} = 1 if $l =~ /^socket:\[(\d+)\]$/;
        }
    }
    my @out;
    for my $file ('/proc/net/tcp', '/proc/net/tcp6') {
        open my $fh, '<', $file or next;
        <$fh>;
        while (<$fh>) {
            my @f = split;
            next unless @f > 9 && $f[3] eq '0A' && $inodes{ $f[9] };
            my ($hex, $port) = split /:/, $f[1];
            my $addr;
            if (length $hex == 8) {
                $addr = join '.', reverse map { hex } unpack('(A2)4', $hex);
            } else {
                # four little-endian 32-bit words
                my $bytes = join '', map { pack('V', hex $_) } unpack('(A8)4', $hex);
                $addr = join ':', map { sprintf '%x', $_ } unpack('n8', $bytes);
                $addr = '::1' if $addr eq '0:0:0:0:0:0:0:1';
                $addr = '::' if $addr eq '0:0:0:0:0:0:0:0';
            }
            push @out, [$addr, hex $port];
        }
    }
    return @out;
}

sub port_busy {
    my ($port) = @_;
    for my $file ('/proc/net/tcp', '/proc/net/tcp6') {
        open my $fh, '<', $file or next;
        while (<$fh>) {
            my @f = split;
            return 1 if @f > 3 && $f[3] eq '0A' && $f[1] =~ /:(\w+)$/ && hex($1) == $port;
        }
    }
    return 0;
}

# =============================================================================
# the default conf listens on loopback only
# =============================================================================
my $default_ini = slurp("$ROOT/conf/smtp.ini") // die "no conf/smtp.ini";
my @items = listen_items($default_ini);
ok scalar(grep { $_->[0] eq 'listen' } @items), 'conf/smtp.ini has a listen key';
for my $it (@items) {
    ok is_loopback_text($it->[2]), "conf/smtp.ini: $it->[0] $it->[1] is a loopback address";
}

{
    # the default conf as it is, on a free port instead of its own
    # (Upesi::Test's default plugin list is queue_spool alone: ask for
    # conf/plugins as it stands)
    my @default_plugins = grep { length } map { s/#.*//r =~ s/^\s+|\s+$//gr }
        split /\n/, slurp("$ROOT/conf/plugins") // '';
    my $srv = Upesi::Test->new(template => "$ROOT/conf", plugins => \@default_plugins);
    my $port = $srv->port;
    my @mine = map { $_->[0] eq 'listen' ? ($_->[2] =~ /:/ ? "[$_->[2]]:$port" : "$_->[2]:$port") : () } @items;
    $srv->set_smtp(listen => join(', ', @mine));
    $srv->start;
    my @socks = listening_sockets($srv->pid);
    ok scalar(grep { $_ eq 'relay' } @default_plugins), 'conf/plugins lists relay';
    ok scalar(@socks), 'default conf: the server listens (' . join(', ', map { "$_->[0]:$_->[1]" } @socks) . ')';
    is scalar(grep { !is_loopback_text($_->[0]) } @socks), 0,
        'default conf: every listening socket is on a loopback address';

    # no open relay, from several loopback addresses
    for my $n (1 .. 5) {
        my $ip = "127.0.0.$n";
        my $sock = IO::Socket::IP->new(PeerHost => '127.0.0.1', PeerPort => $srv->port,
                                       LocalHost => $ip, Proto => 'tcp', Timeout => 10);
        ok $sock, "relay: connected from $ip" or next;
        my $c = bless { sock => $sock, buf => '', eof => 0, timeout => 10 * $SLOW,
                        transcript => '' }, 'Upesi::Test::Client';
        $sock->autoflush(1);
        my $g = $c->read_reply;
        is $g ? $g->{code} : 'none', 220, "relay: greeted ($ip)";
        $c->cmd('EHLO client.test');
        is $c->cmd('MAIL FROM:<someone@example.org>')->{code}, 250, "relay: MAIL ($ip)";
        my @tries = ('<victim@elsewhere.test>', '<VICTIM@ELSEWHERE.TEST>', '<victim@elsewhere.test.>',
                     '<@example.com:victim@elsewhere.test>', '<victim@[192.0.2.1]>',
                     '<victim@example.com.elsewhere.test>', '<"victim@elsewhere.test">');
        my @got;
        for my $to (@tries) {
            my $r = $c->cmd("RCPT TO:$to");
            push @got, "$to=" . ($r ? $r->{code} : 'none');
        }
        is scalar(grep { !/=5\d\d$/ } @got), 0,
            "relay from $ip: every spelling of a foreign recipient is refused (5xx)"
            or diag join(' ', @got);
        my $r = $c->cmd('RCPT TO:<postmaster@example.com>');
        is $r ? $r->{code} : 'none', 250, "relay from $ip: a local recipient is accepted";
        $c->cmd('QUIT');
        $c->close;
    }

    # -- the control socket ------------------------------------------------------
    my $sock = "$srv->{sock}";
    my @st = stat $sock;
    ok @st && S_ISSOCK($st[2]), 'control socket exists and is a socket';
    is sprintf('%04o', $st[2] & 07777), '0600', 'control socket mode is 0600';
    my ($uid) = (slurp('/proc/' . $srv->pid . '/status') // '') =~ /^Uid:\s+\d+\s+(\d+)/m;
    is $st[4], $uid, "control socket is owned by the server's account (uid $uid)";
    my $stat = $srv->stat('SMTP.');
    ok defined $stat, 'upesi stat works for that account';

    SKIP: {
        skip 'connecting as another account needs root', 1 unless $> == 0;
        # let another account reach the socket's directory: only the
        # socket's own mode stands in its way then
        my $dir = $srv->tmp;
        my $mode = (stat $dir)[2] & 07777;
        chmod 0711, $dir;
        my $other = $uid == 4242 ? 4243 : 4242;
        my $pid = fork // die "fork: $!";
        if ($pid == 0) {
            POSIX::setgid($other);
            POSIX::setuid($other);
            POSIX::_exit(3) if $> != $other;
            my $s = IO::Socket::UNIX->new(Type => SOCK_STREAM, Peer => $sock);
            POSIX::_exit($s ? 1 : $!{EACCES} ? 0 : 2);
        }
        waitpid($pid, 0);
        chmod $mode, $dir;
        is $? >> 8, 0, "another account (uid $other) is refused by the control socket (EACCES)";
    }
    $srv->stop_ok('upesi (default conf)');
}

# =============================================================================
# no listen key at all: the compiled-in default is loopback too
# =============================================================================
SKIP: {
    my $default_port = 2525;
    skip "port $default_port is in use: cannot start with the compiled-in listen", 2
        if port_busy($default_port);
    my $srv = Upesi::Test->new(plugins => ['queue_spool']);
    $srv->set_smtp(listen => undef);
    $srv->{port} = $default_port;       # what start() waits for
    my $ok = eval { $srv->start; 1 };
    skip "could not start on the default port: $@", 2 unless $ok;
    my @socks = listening_sockets($srv->pid);
    is_deeply [map { "$_->[0]:$_->[1]" } @socks], ["127.0.0.1:$default_port"],
        "no listen key: the server listens on 127.0.0.1:$default_port only";
    $srv->stop;
    ok !$srv->sanitizer_report, 'no listen key: no sanitizer report';
}

done_testing;
