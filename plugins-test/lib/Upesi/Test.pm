package Upesi::Test;

# Upesi::Test - run the real upesi in end-to-end tests.
#
# A test makes a server (a temp directory holding a conf dir, a spool, a
# plugin dir and the log), starts host/upesi on a free 127.0.0.1 port, talks
# to it with the raw client below or with swaks, and reads back the spool,
# the log and `upesi stat`.  Core Perl and Test::More only.
#
#   use FindBin; use lib "$FindBin::Bin/../lib";
#   use Upesi::Test;
#   deadline(60);
#   my $srv = Upesi::Test->new(smtp => { max_sessions => 3 });
#   $srv->start;
#   my $c = $srv->client;            # Upesi::Test::Client, greeting read
#   my $r = $c->cmd('EHLO client.test');
#   is $r->{code}, 250, 'EHLO accepted';
#   $srv->stop_ok;                   # SIGTERM; exit 0, no sanitizer report
#
# How it fails: a helper that cannot do its job (upesi does not start, the
# spool is unreadable) dies with the reason and the tail of the server's log;
# the deadline set by deadline() ends a hung test with a diagnostic, and an
# END block stops every server this process started (TERM, then KILL).
# Set UPESI_KEEP=1 to keep the temp directories for a look afterwards.
# A test that needs a DNS server uses Upesi::Test::DNS (Upesi/Test/DNS.pm).

use strict;
use warnings;

use Cwd qw(abs_path);
use Errno qw(EINTR);
use Exporter qw(import);
use File::Basename qw(dirname basename);
use File::Path qw(make_path);
use File::Temp qw(tempdir);
use IO::Select;
use IO::Socket::IP;
use POSIX qw(WNOHANG);
use Socket qw(SOCK_STREAM);
use Test::More ();
use Time::HiRes qw(time sleep);

our @EXPORT = qw(deadline need_built free_port upesi_check swaks slurp spit
                 strip_received $ROOT $UPESI $SLOW);

our $ROOT  = abs_path(dirname(__FILE__) . '/../../..');
our $UPESI = $ENV{UPESI} // "$ROOT/upesi";   # the binary (host/upesi/ holds the header)
# Sanitizer builds run several times slower: every wait scales by this.
our $SLOW  = ($ENV{ASAN_OPTIONS} || $ENV{UBSAN_OPTIONS}) ? 4 : 1;

my %servers;                    # pid => server, for cleanup
my $deadline_secs;

# ---------------------------------------------------------------------------
# process-wide guards

# need_built(FILE, ...): the binary and every named file (relative to the
# repository) must exist, else the test file fails at once.  `make test`
# builds them all, so a missing one is a broken build, never a reason to
# skip: a test that skips there passes without testing.
sub need_built {
    my @missing = grep { !-e $_ } ($UPESI, map { "$ROOT/$_" } @_);
    return unless @missing;
    Test::More::plan(tests => 1);
    Test::More::fail("not built: @missing (make test-build builds it)");
    exit 1;
}

# deadline(SECONDS): the whole test file must finish by then (scaled by
# $SLOW); past it, every server is killed and the test exits non-zero.
sub deadline {
    my ($secs) = @_;
    $deadline_secs = $secs * $SLOW;
    $SIG{ALRM} = sub {
        Test::More::diag("DEADLINE: test still running after ${deadline_secs}s");
        for my $srv (values %servers) {
            Test::More::diag("log of upesi pid $srv->{pid}:\n" . $srv->log_tail(40));
        }
        _kill_all();
        Test::More::ok(0, "test finished within its deadline of ${deadline_secs}s");
        exit 255;
    };
    alarm($deadline_secs);
}

# A default, in case a test forgets.
deadline(180);

sub _kill_all {
    for my $pid (keys %servers) {
        kill 'KILL', $pid;
        waitpid($pid, 0);
        delete $servers{$pid};
    }
}

$SIG{INT} = $SIG{TERM} = sub { _kill_all(); exit 130 };

END {
    my $status = $?;
    for my $srv (values %servers) {
        next unless $srv->{owner} == $$;
        $srv->_halt;
    }
    $? = $status;
}

# ---------------------------------------------------------------------------
# small utilities

# A port nobody listens on: bind port 0 on 127.0.0.1 and read it back.
sub free_port {
    my $s = IO::Socket::IP->new(LocalHost => '127.0.0.1', LocalPort => 0,
                                Proto => 'tcp', Type => SOCK_STREAM,
                                ReuseAddr => 0, Listen => 1)
        or die "cannot bind a free port: $@";
    my $port = $s->sockport;
    close $s;
    return $port;
}

sub slurp {
    my ($path) = @_;
    open my $fh, '<:raw', $path or return undef;
    local $/;
    my $data = <$fh>;
    close $fh;
    return $data // '';
}

sub spit {
    my ($path, $data) = @_;
    make_path(dirname($path));
    open my $fh, '>:raw', $path or die "cannot write $path: $!";
    print {$fh} $data;
    close $fh or die "cannot write $path: $!";
}

# Run a command with a time limit; returns (exit status, output), output
# being stdout and stderr together.  Exit status is -1 on a timeout.
sub run_cmd {
    my ($timeout, @cmd) = @_;
    pipe(my $r, my $w) or die "pipe: $!";
    my $pid = fork // die "fork: $!";
    if ($pid == 0) {
        close $r;
        open STDIN, '<', '/dev/null';
        open STDOUT, '>&', $w;
        open STDERR, '>&', $w;
        exec @cmd or do { print STDERR "exec $cmd[0]: $!\n"; POSIX::_exit(127) };
    }
    close $w;
    my $out = '';
    my $sel = IO::Select->new($r);
    my $end = time + $timeout * $SLOW;
    my $timed_out = 0;
    while (1) {
        my $left = $end - time;
        if ($left <= 0) { $timed_out = 1; last }
        my @ready = $sel->can_read($left);
        next unless @ready;
        my $n = sysread($r, my $buf, 65536);
        last if !defined $n && $! != EINTR;
        next unless defined $n;
        last if $n == 0;
        $out .= $buf;
    }
    close $r;
    if ($timed_out) {
        kill 'KILL', $pid;
        waitpid($pid, 0);
        return (-1, $out . "\n[timed out after ${timeout}s]\n");
    }
    waitpid($pid, 0);
    return ($? >> 8, $out) if ($? & 127) == 0;
    return (128 + ($? & 127), $out);
}

# `upesi -c DIR -t`: (exit status, output)
sub upesi_check {
    my ($dir) = @_;
    return run_cmd(30, $UPESI, '-c', $dir, '-t');
}

# swaks(port, args...): run swaks against 127.0.0.1:port.  Returns a hash
# ref { exit => N, out => transcript }.
sub swaks {
    my ($port, @args) = @_;
    my ($exit, $out) = run_cmd(60, 'swaks', '--server', "127.0.0.1:$port",
                               '--timeout', 20 * $SLOW, @args);
    return { exit => $exit, out => $out };
}

# The stored message without the host's Received header (the first header,
# with its continuation lines).  Returns (received, rest).
sub strip_received {
    my ($msg) = @_;
    return (undef, $msg)
        unless $msg =~ s/\A(Received:[^\r\n]*\r?\n(?:[ \t][^\r\n]*\r?\n)*)//;
    return ($1, $msg);
}

# ---------------------------------------------------------------------------
# the server

# new(%opt):
#   template => DIR     conf dir to copy (default: the repo's conf/)
#   smtp     => {k=>v}  smtp.ini keys to set (listen, spool_dir,
#                       control_socket, plugin_dir are always set here)
#   plugins  => [names] conf/plugins (default: queue_spool alone, so that a
#                       test of the host does not depend on the shipped
#                       chain; plugins => undef keeps the template's)
#   ini      => {name => text}   extra files in the conf dir
sub new {
    my ($class, %opt) = @_;
    my $tmp = tempdir('upesi-e2e-XXXXXX', TMPDIR => 1,
                      CLEANUP => !$ENV{UPESI_KEEP});
    my $self = bless {
        tmp      => $tmp,
        conf     => "$tmp/conf",
        spool    => "$tmp/spool",
        plugdir  => "$tmp/plugins",
        sock     => "$tmp/upesi.sock",
        log      => "$tmp/upesi.log",
        port     => undef,
        pid      => undef,
        owner    => $$,
        clients  => [],
        starts   => 0,
    }, $class;
    make_path($self->{conf}, $self->{spool}, $self->{plugdir});
    $self->_link_plugins;

    my $template = $opt{template} // "$ROOT/conf";
    opendir(my $dh, $template) or die "cannot read $template: $!";
    for my $f (sort readdir $dh) {
        next if $f =~ /^\./ || -d "$template/$f";
        spit("$self->{conf}/$f", slurp("$template/$f"));
    }
    closedir $dh;

    $self->{port} = free_port();
    $self->set_smtp(listen => "127.0.0.1:$self->{port}",
                    spool_dir => $self->{spool},
                    control_socket => $self->{sock},
                    plugin_dir => $self->{plugdir},
                    %{ $opt{smtp} || {} });
    my $plugins = exists $opt{plugins} ? $opt{plugins} : ['queue_spool'];
    $self->set_plugins(@$plugins) if $plugins;
    for my $name (sort keys %{ $opt{ini} || {} }) {
        $self->write_conf($name, $opt{ini}{$name});
    }
    return $self;
}

# Every plugin of the repo and every test plugin, as symlinks in one dir:
# upesi has one plugin_dir, tests want both.
sub _link_plugins {
    my ($self) = @_;
    for my $so (glob("$ROOT/plugins-test/plugins/*.so"), glob("$ROOT/plugins/*.so")) {
        my $link = "$self->{plugdir}/" . basename($so);
        unlink $link;
        symlink($so, $link) or die "symlink $link: $!";
    }
}

sub port    { $_[0]{port} }
sub conf    { $_[0]{conf} }
sub spooldir { $_[0]{spool} }
sub plugdir { $_[0]{plugdir} }
sub pid     { $_[0]{pid} }
sub tmp     { $_[0]{tmp} }

# set_smtp(key => value, ...): rewrite those keys in smtp.ini in place
# (undef deletes the key); keys not present are appended.
sub set_smtp {
    my ($self, %kv) = @_;
    my $file = "$self->{conf}/smtp.ini";
    my $text = slurp($file) // '';
    my @out;
    my %done;
    for my $line (split /\n/, $text, -1) {
        if ($line =~ /^\s*([A-Za-z0-9_.]+)\s*=/ && exists $kv{$1}) {
            my $k = $1;
            next if $done{$k}++ || !defined $kv{$k};
            push @out, "$k = $kv{$k}";
            next;
        }
        push @out, $line;
    }
    pop @out while @out && $out[-1] eq '';
    for my $k (sort keys %kv) {
        next if $done{$k} || !defined $kv{$k};
        push @out, "$k = $kv{$k}";
    }
    spit($file, join("\n", @out) . "\n");
}

sub set_plugins {
    my ($self, @names) = @_;
    spit("$self->{conf}/plugins",
         "# written by Upesi::Test\n" . join('', map { "$_\n" } @names));
}

# write_conf(NAME, TEXT): a file in the conf dir ("queue_spool.ini", ...)
sub write_conf {
    my ($self, $name, $text) = @_;
    spit("$self->{conf}/$name", $text);
}

# ---------------------------------------------------------------------------
# starting and stopping

# start(): run upesi in the background, logging to the temp dir, and wait
# until it listens (deadline 15 s, scaled).  Dies with the log on failure.
# Another process may take the port between free_port and the bind: then
# a new port is tried, up to three times.
sub start {
    my ($self, %opt) = @_;
    die "already running" if $self->{pid};
    for my $try (1 .. 3) {
        my $ok = $self->_start_once;
        return $self if $ok;
        last unless $self->log_text =~ /address already in use/i;
        $self->{port} = free_port();
        $self->set_smtp(listen => "127.0.0.1:$self->{port}");
    }
    die "upesi did not start (port $self->{port}):\n" . $self->log_tail(30);
}

sub _start_once {
    my ($self) = @_;
    $self->{starts}++;
    my $pid = fork // die "fork: $!";
    if ($pid == 0) {
        open STDIN, '<', '/dev/null';
        open STDOUT, '>>', $self->{log} or POSIX::_exit(126);
        open STDERR, '>&', \*STDOUT;
        exec($UPESI, '-c', $self->{conf}) or POSIX::_exit(127);
    }
    $self->{pid} = $pid;
    $servers{$pid} = $self;
    my $end = time + 15 * $SLOW;
    while (time < $end) {
        if (waitpid($pid, WNOHANG) == $pid) {
            $self->{exit} = $?;
            delete $servers{$pid};
            $self->{pid} = undef;
            return 0;
        }
        return 1 if _listening('127.0.0.1', $self->{port});
        sleep 0.02;
    }
    $self->_halt;
    return 0;
}

# Is something listening on 127.0.0.1:port?  Read from /proc so that the
# check itself does not open a session (and change the counters).
sub _listening {
    my ($ip, $port) = @_;
    if (open my $fh, '<', '/proc/net/tcp') {
        my $want = sprintf('0100007F:%04X', $port);
        while (<$fh>) {
            my @f = split;
            return 1 if @f > 3 && $f[1] eq $want && $f[3] eq '0A';
        }
        return 0;
    }
    my $s = IO::Socket::IP->new(PeerHost => $ip, PeerPort => $port,
                                Proto => 'tcp', Timeout => 1);
    return $s ? 1 : 0;
}

sub running {
    my ($self) = @_;
    return 0 unless $self->{pid};
    if (waitpid($self->{pid}, WNOHANG) == $self->{pid}) {
        $self->{exit} = $?;
        delete $servers{ $self->{pid} };
        $self->{pid} = undef;
        return 0;
    }
    return 1;
}

# stop(): close our clients, SIGTERM (the host lets open sessions finish),
# a second SIGTERM after 5 s (stops at once), KILL after 10 s.  Returns the
# wait status (undef if it was not running).
sub stop {
    my ($self) = @_;
    $_->close for @{ $self->{clients} };
    $self->{clients} = [];
    return $self->{exit} unless $self->{pid};
    return $self->_halt;
}

sub _halt {
    my ($self) = @_;
    my $pid = $self->{pid} or return $self->{exit};
    my @plan = ([TERM => 5], [TERM => 5], [KILL => 5]);
    for my $step (@plan) {
        kill $step->[0], $pid;
        my $end = time + $step->[1] * ($step->[0] eq 'KILL' ? 1 : $SLOW);
        while (time < $end) {
            if (waitpid($pid, WNOHANG) == $pid) {
                $self->{exit} = $?;
                $self->{killed} = $step->[0] eq 'KILL';
                delete $servers{$pid};
                $self->{pid} = undef;
                return $self->{exit};
            }
            sleep 0.02;
        }
    }
    waitpid($pid, 0);
    $self->{exit} = $?;
    delete $servers{$pid};
    $self->{pid} = undef;
    return $self->{exit};
}

# Sanitizer and crash reports in the log.
sub sanitizer_report {
    my ($self) = @_;
    my $log = $self->log_text;
    return $1 if $log =~ /^(.*(?:ERROR: AddressSanitizer|ERROR: LeakSanitizer|runtime error:|SUMMARY: \w+Sanitizer).*)$/m;
    return undef;
}

# stop_ok(): stop, and assert a clean exit: status 0 after SIGTERM and no
# sanitizer report in the log.  Two assertions.
sub stop_ok {
    my ($self, $what) = @_;
    $what //= 'upesi';
    my $st = $self->stop;
    my $tb = Test::More->builder;
    my $ok = $tb->ok(defined $st && $st == 0,
                     "$what exits with status 0 on SIGTERM");
    $tb->diag(sprintf("wait status %s%s", $st // 'undef',
                      $self->{killed} ? ' (needed SIGKILL)' : ''))
        unless $ok;
    my $rep = $self->sanitizer_report;
    $tb->ok(!defined $rep, "$what: no sanitizer report in the log")
        or $tb->diag($rep . "\n" . $self->log_tail(60));
    $tb->diag("log of $what:\n" . $self->log_tail(40))
        if !$tb->is_passing && !$self->{log_shown}++;
    return $ok;
}

# hup(): SIGHUP, then wait for "reload done" / "reload failed" in the log.
# Returns 'done', 'failed', or undef on no answer within 10 s.
sub hup {
    my ($self) = @_;
    my $before = length($self->log_text);
    kill 'HUP', $self->{pid} or die "cannot signal upesi: $!";
    my $end = time + 10 * $SLOW;
    while (time < $end) {
        my $new = substr($self->log_text, $before);
        return 'done' if $new =~ /reload done/;
        return 'failed' if $new =~ /reload failed/;
        sleep 0.02;
    }
    return undef;
}

# ---------------------------------------------------------------------------
# the log

sub log_text { slurp($_[0]{log}) // '' }

sub log_tail {
    my ($self, $n) = @_;
    my @l = split /\n/, $self->log_text;
    splice(@l, 0, @l - $n) if @l > $n;
    return join("\n", @l) . "\n";
}

# log_lines(qr//): the lines of the log that match
sub log_lines {
    my ($self, $re) = @_;
    return grep { $_ =~ $re } split /\n/, $self->log_text;
}

# wait_log(qr//, SECONDS): wait until a log line matches; returns it or undef
sub wait_log {
    my ($self, $re, $secs) = @_;
    my $end = time + ($secs // 5) * $SLOW;
    while (1) {
        my ($line) = $self->log_lines($re);
        return $line if defined $line;
        return undef if time >= $end;
        sleep 0.02;
    }
}

# ---------------------------------------------------------------------------
# the spool

# spool(): every message in <spool_dir>/queue/, oldest first, as hash refs
#   { file, id, env => { Key => value, ... }, recipients => [...],
#     envelope => text, message => bytes }
# A key that appears more than once (Recipient) keeps its last value in env;
# recipients lists every Recipient.
sub spool {
    my ($self) = @_;
    my $dir = "$self->{spool}/queue";
    opendir(my $dh, $dir) or return ();
    my @files = grep { !/^\./ && -f "$dir/$_" } readdir $dh;
    closedir $dh;
    my @msgs;
    for my $f (@files) {
        my $raw = slurp("$dir/$f");
        next unless defined $raw;
        my $m = parse_spool_file($raw);
        $m->{file} = "$dir/$f";
        $m->{id} = $f;
        $m->{mtime} = (CORE::stat("$dir/$f"))[9];
        push @msgs, $m;
    }
    return sort { $a->{mtime} <=> $b->{mtime} || $a->{id} cmp $b->{id} } @msgs;
}

sub parse_spool_file {
    my ($raw) = @_;
    my %m = (env => {}, recipients => [], raw => $raw);
    if ($raw =~ /\A(.*?)\r?\n\r?\n/s) {
        $m{envelope} = $1;
        $m{message} = substr($raw, $+[0]);
    } else {
        $m{envelope} = $raw;
        $m{message} = undef;
        $m{error} = 'no empty line after the envelope';
    }
    for my $line (split /\r?\n/, $m{envelope}) {
        next unless $line =~ /^([A-Za-z0-9-]+):\s?(.*)$/;
        $m{env}{$1} = $2;
        push @{ $m{recipients} }, $2 if $1 eq 'Recipient';
    }
    return \%m;
}

# wait_spool(N, SECONDS): wait until the spool holds at least N messages
sub wait_spool {
    my ($self, $n, $secs) = @_;
    my $end = time + ($secs // 5) * $SLOW;
    while (1) {
        my @m = $self->spool;
        return @m if @m >= $n || time >= $end;
        sleep 0.02;
    }
}

# ---------------------------------------------------------------------------
# statistics

# stat(PREFIX): `upesi -c CONF stat [PREFIX]` parsed into a hash ref of
# name => value; undef (with a diagnostic) if the command failed.
sub stat {
    my ($self, $prefix) = @_;
    my ($exit, $out) = run_cmd(20, $UPESI, '-c', $self->{conf}, 'stat',
                               defined $prefix ? ($prefix) : ());
    if ($exit != 0) {
        Test::More::diag("upesi stat exited $exit: $out");
        return undef;
    }
    my %h;
    for (split /\n/, $out) {
        $h{$1} = $2 if /^(\S+)\s+=\s+(.*?)\s*$/;
    }
    $self->{last_stat_out} = $out;
    return \%h;
}

# ---------------------------------------------------------------------------
# clients

# client(%opt): a raw SMTP client connected to this server; unless
# greeting => 0, the greeting is read into $c->{greeting}.  local =>
# '127.0.0.2' connects from that address (a client "from 127.0.0.N").
sub client {
    my ($self, %opt) = @_;
    my $c = Upesi::Test::Client->new(port => $self->{port}, %opt);
    push @{ $self->{clients} }, $c;
    return $c;
}

sub swaks_send {
    my ($self, @args) = @_;
    return swaks($self->{port}, @args);
}

# ===========================================================================
package Upesi::Test::Client;

# A raw SMTP client: write exactly the bytes a test wants, read replies.
# A reply is a hash ref:
#   { code => 250, lines => ['250-a', '250 b'], text => "a\nb",
#     enhanced => '2.0.0' or undef, raw => "250-a\r\n250 b\r\n" }
# or undef on timeout or when the server closed the connection
# ($c->{error} says which: 'timeout', 'eof', or a message).

use strict;
use warnings;
use Errno qw(EINTR EAGAIN);
use IO::Select;
use IO::Socket::IP;
use Time::HiRes qw(time);

sub new {
    my ($class, %opt) = @_;
    my $sock = IO::Socket::IP->new(PeerHost => '127.0.0.1',
                                   PeerPort => $opt{port},
                                   (defined $opt{local} ? (LocalHost => $opt{local}) : ()),
                                   Proto => 'tcp',
                                   Timeout => 10 * $Upesi::Test::SLOW)
        or die "cannot connect to 127.0.0.1:$opt{port}"
             . (defined $opt{local} ? " from $opt{local}" : '') . ": $@";
    binmode $sock;
    $sock->autoflush(1);
    my $self = bless {
        sock => $sock, buf => '', eof => 0, error => undef,
        timeout => ($opt{timeout} // 10) * $Upesi::Test::SLOW,
        transcript => '',
    }, $class;
    $self->{greeting} = $self->read_reply unless defined $opt{greeting} && !$opt{greeting};
    return $self;
}

sub greeting { $_[0]{greeting} }
sub error    { $_[0]{error} }

# send_raw(BYTES): write all of them (dies on a write error unless the
# peer closed: then returns 0)
sub send_raw {
    my ($self, $data) = @_;
    $self->{transcript} .= "C: $data";
    my $off = 0;
    local $SIG{PIPE} = 'IGNORE';
    while ($off < length $data) {
        my $n = syswrite($self->{sock}, $data, length($data) - $off, $off);
        if (!defined $n) {
            next if $! == EINTR || $! == EAGAIN;
            $self->{error} = "write: $!";
            return 0;
        }
        $off += $n;
    }
    return 1;
}

sub send_line { my ($self, $l) = @_; $self->send_raw("$l\r\n") }

# cmd(LINE): send LINE + CRLF and read one reply
sub cmd {
    my ($self, $line, $timeout) = @_;
    $self->send_line($line);
    return $self->read_reply($timeout);
}

# Fill the buffer: 1 if bytes came, 0 on EOF, undef on timeout/error.
sub _fill {
    my ($self, $end) = @_;
    return 0 if $self->{eof};
    my $sel = IO::Select->new($self->{sock});
    while (1) {
        my $left = $end - time;
        if ($left <= 0) { $self->{error} = 'timeout'; return undef }
        next unless $sel->can_read($left);
        my $n = sysread($self->{sock}, my $chunk, 65536);
        if (!defined $n) {
            next if $! == EINTR || $! == EAGAIN;
            # a reset after the server closed counts as the end
            $self->{eof} = 1;
            $self->{error} = "read: $!";
            return 0;
        }
        if ($n == 0) { $self->{eof} = 1; $self->{error} = 'eof'; return 0 }
        $self->{buf} .= $chunk;
        $self->{transcript} .= "S: $chunk";
        return 1;
    }
}

# read_line(TIMEOUT): one line without its CRLF, or undef
sub read_line {
    my ($self, $timeout) = @_;
    my $end = time + ($timeout // $self->{timeout});
    while (1) {
        if ($self->{buf} =~ s/\A([^\n]*)\n//) {
            (my $l = $1) =~ s/\r\z//;
            return $l;
        }
        my $r = $self->_fill($end);
        return undef unless $r;
    }
}

# read_reply(TIMEOUT): one complete (possibly multi-line) reply, or undef
sub read_reply {
    my ($self, $timeout) = @_;
    my $end = time + ($timeout // $self->{timeout});
    my @lines;
    while (1) {
        my $l = $self->read_line($end - time);
        if (!defined $l) {
            $self->{partial} = \@lines if @lines;
            return undef;
        }
        push @lines, $l;
        if ($l !~ /^\d{3}-/) {
            my ($code) = $l =~ /^(\d{3})/;
            my @text = map { length($_) > 4 ? substr($_, 4) : '' } @lines;
            my ($enh) = ($text[0] // '') =~ /^([245]\.\d{1,3}\.\d{1,3})\b/;
            return {
                code => $code // 0, lines => \@lines,
                text => join("\n", @text), enhanced => $enh,
                raw => join('', map { "$_\r\n" } @lines),
            };
        }
    }
}

# read_replies(N, TIMEOUT): N replies (stops at the first missing one)
sub read_replies {
    my ($self, $n, $timeout) = @_;
    my @r;
    for (1 .. $n) {
        my $r = $self->read_reply($timeout);
        last unless $r;
        push @r, $r;
    }
    return @r;
}

# closed(TIMEOUT): 1 if the server closes the connection within TIMEOUT
# seconds (anything it still sends is kept in $c->{buf}).
sub closed {
    my ($self, $timeout) = @_;
    my $end = time + ($timeout // 5) * $Upesi::Test::SLOW;
    while (1) {
        return 1 if $self->{eof};
        my $r = $self->_fill($end);
        return 1 if defined $r && $r == 0;
        return 0 unless defined $r;
    }
}

# send_message(DATA): after a 354, send DATA (already dot-stuffed, CRLF)
# and the end marker, read the reply.
sub send_data {
    my ($self, $data, $timeout) = @_;
    $self->send_raw($data . "\r\n.\r\n");
    return $self->read_reply($timeout);
}

sub transcript { $_[0]{transcript} }

sub close {
    my ($self) = @_;
    close $self->{sock} if $self->{sock};
    $self->{sock} = undef;
    $self->{eof} = 1;
}

1;
