#!/usr/bin/perl
# nul_data.t - NUL and control bytes in message data (issue 22 item 2).
#
# The probe: a message holding "\r\n\0.\r\n" was queued, and queue_forward
# passed it on verbatim; a downstream that drops NUL bytes reads that line
# as the end of data: smuggling through upesi.  Now:
#   - NUL in message data is refused by default: 554 5.6.0 after the end
#     of data, the whole message, nothing queued (allow_nul = 1 keeps it);
#   - queue_forward never sends a line that would be a lone "." once its
#     control bytes are removed: such a line gets a leading dot, which a
#     downstream removes (RFC 5321 4.5.2), so the message still arrives
#     byte-exact.
# The forwarding test puts a byte recorder between the front and a real
# downstream upesi, to see the bytes on the wire, and reads the
# downstream's spool for what arrived.  The recorder hides the
# downstream's CHUNKING, so that queue_forward sends DATA.
use strict;
use warnings;
use FindBin;
use lib "$FindBin::Bin/../lib";
use Test::More;
use IO::Select;
use IO::Socket::IP;
use POSIX ();
use Time::HiRes qw(sleep time);
use Upesi::Test;
use Upesi::Forward qw(front send_msg wait_for nspool);

deadline(120);

my $nul_msg = "Subject: nul\r\n\r\nfirst line\r\n\0.\r\nafter\r\n";

sub one {
    my ($srv, $data) = @_;
    my $c = $srv->client;
    $c->cmd('EHLO client.test');
    $c->cmd('MAIL FROM:<a@example.org>');
    $c->cmd('RCPT TO:<bob@example.com>');
    my $r = $c->cmd('DATA');
    return ($c, $r) unless $r && $r->{code} == 354;
    $c->send_raw($data . ".\r\n");
    return ($c, $c->read_reply);
}

# =============================================================================
# the default: refused
{
    my $srv = Upesi::Test->new(smtp => { local_domains => 'example.com' });
    $srv->start;
    my ($c, $r) = one($srv, $nul_msg);
    is $r && "$r->{code} " . ($r->{enhanced} // ''), '554 5.6.0',
        'a NUL byte in the data: 554 5.6.0 after the end of data' or diag $c->{transcript};
    my ($c2, $r2) = one($srv, "Subject: fine\r\n\r\nno nul\r\n");
    is $r2 && $r2->{code}, 250, 'a message without NUL, next, is accepted';
    my @m = $srv->wait_spool(1, 5);
    is scalar(@m), 1, 'only that one is queued';
    ok !grep({ ($_->{message} // '') =~ /\0/ } @m), 'no NUL in the spool';
    ok $srv->wait_log(qr/rejected: 1 NUL bytes in the data/, 5), 'the refusal is logged';
    is $srv->stat('SMTP.Messages.NUL')->{'SMTP.Messages.NUL'}, 1, 'SMTP.Messages.NUL = 1';
    $srv->stop_ok('upesi (allow_nul = 0)');
}

# =============================================================================
# allow_nul = 1: kept, byte-exact
{
    my $srv = Upesi::Test->new(smtp => { local_domains => 'example.com', allow_nul => 1 });
    $srv->start;
    my ($c, $r) = one($srv, $nul_msg);
    is $r && $r->{code}, 250, 'allow_nul = 1: accepted';
    my ($m) = $srv->wait_spool(1, 5);
    like $m ? $m->{message} : '', qr/\r\nfirst line\r\n\0\.\r\nafter\r\n\z/,
        'allow_nul = 1: stored byte-exact';
    $srv->stop_ok('upesi (allow_nul = 1)');
}

# =============================================================================
# queue_forward through a byte recorder to a real downstream upesi

# A TCP relay that writes what the client sends to $file.
sub recorder {
    my ($to_port, $file) = @_;
    my $listen = IO::Socket::IP->new(LocalHost => '127.0.0.1', LocalPort => 0,
                                     Listen => 8, ReuseAddr => 1) or die "listen: $@";
    my $port = $listen->sockport;
    my $pid = fork // die;
    if (!$pid) {
        # not the test's handlers: they would stop its servers
        $SIG{$_} = 'DEFAULT' for qw(TERM INT ALRM HUP);
        alarm 0;
        open my $rec, '>', $file or POSIX::_exit(1);
        binmode $rec;
        $rec->autoflush(1);
        my $sel = IO::Select->new($listen);
        my %peer;
        while (1) {
            for my $h ($sel->can_read) {
                if ($h == $listen) {
                    my $in = $listen->accept or next;
                    my $out = IO::Socket::IP->new(PeerHost => '127.0.0.1',
                                                  PeerPort => $to_port) or next;
                    $peer{$in} = [$out, 1];
                    $peer{$out} = [$in, 0];
                    $sel->add($in, $out);
                    next;
                }
                my ($other, $from_client) = @{ $peer{$h} // next };
                my $n = sysread($h, my $buf, 65536);
                if (!$n) {
                    $sel->remove($h, $other);
                    delete @peer{$h, $other};
                    close $h; close $other;
                    next;
                }
                print $rec $buf if $from_client;
                # hide the downstream's CHUNKING: queue_forward would send
                # BDAT (bytes as they are, nothing to stuff); this test is
                # about what it sends in DATA
                $buf =~ s/(250[- ])CHUNKING\r\n/$1X-NO-CHUNKING\r\n/g
                    unless $from_client;
                $n = length $buf;
                my $off = 0;
                while ($off < $n) {
                    my $w = syswrite($other, $buf, $n - $off, $off);
                    last unless defined $w;
                    $off += $w;
                }
            }
        }
    }
    close $listen;
    return ($pid, $port);
}

{
    my $down = Upesi::Test->new(smtp => { local_domains => 'example.com', allow_nul => 1 },
                                plugins => ['queue_spool']);
    $down->start;
    my $file = $down->tmp . '/wire';
    my ($rec, $rport) = recorder($down->port, $file);
    my $front = front("downstream = 127.0.0.1:$rport\nmode = direct\n", allow_nul => 1);
    $front->start;

    my $body = "line one\r\n"
             . "\0.\r\n"                        # NUL, dot
             . ".\0\r\n"                        # dot, NUL
             . "\x01\x02.\x03\r\n"              # control bytes round a dot
             . "\0\r\n"                         # control bytes only: no dot
             . "\t.\r\n"                        # TAB, dot
             . ("\0" x 70000) . ".\r\n"         # a run past a 64 KiB chunk
             . "\0x.\r\n"                       # not a lone dot: as is
             . "last\r\n";
    my $data = "Subject: control bytes\r\n\r\n" . $body;
    my $r = send_msg($front, from => 'a@example.org', to => ['bob@example.com'],
                     data => $data);
    is $r && $r->{code}, 250, 'forward: the front takes it (allow_nul = 1) and delivers';
    ok wait_for(10, sub { nspool($down) == 1 }), 'forward: it arrives downstream';
    my ($m) = $down->spool;
    my $got = $m ? $m->{message} : '';
    $got =~ s/\A.*?\r\n(?=Subject: control bytes)//s;      # the Received fields
    ok $got eq $data, 'forward: downstream stored it byte-exact (the added dots removed)'
        or diag 'length ' . length($got) . ' vs ' . length($data);

    $front->stop_ok('front');
    my $wire = slurp($file) // '';
    my ($content) = $wire =~ /\r\nDATA\r\n(.*)\r\n\.\r\n/s;
    ok defined $content, 'forward: the recorder saw the DATA' or diag length $wire;
    $content //= '';
    my @lone = grep { (my $t = $_) =~ s/[\x00-\x1f\x7f]//g; $t eq '.' }
               split /\r\n/, $content, -1;
    is scalar(@lone), 0, 'forward: no line on the wire is a lone "." once control bytes are removed'
        or diag join ' ', map { sprintf '%vd', substr($_, 0, 8) } @lone;
    like $content, qr/\r\n\.\0\.\r\n/, 'forward: "\0." went out as ".\0."';
    like $content, qr/\r\n\.\x01\x02\.\x03\r\n/, 'forward: "\1\2.\3" got a leading dot';
    ok index($content, "\r\n." . ("\0" x 70000) . ".\r\n") >= 0,
        'forward: so did the long run of NULs (past a 64 KiB chunk)';
    like $content, qr/\r\n\0\r\n/, 'forward: a line of control bytes without a dot goes as is';
    like $content, qr/\r\n\0x\.\r\n/, 'forward: so does one whose first other byte is no dot';
    kill 'TERM', $rec;
    waitpid $rec, 0;
    $down->stop_ok('downstream');
}

done_testing;
