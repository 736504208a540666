#!/usr/bin/perl
# bdat_forward.t - a message received in BDAT chunks, forwarded by
# queue_forward to a second upesi (which offers CHUNKING and BINARYMIME)
# and to Postfix's smtp-sink (which offers neither).
#
# BDAT content is stored as sent, bare LFs and CRs included.  To a
# downstream that offers CHUNKING queue_forward sends BDAT too: the
# downstream stores exactly the bytes the client sent, and counts the BDAT
# (SMTP.Command.BDAT).  To one without, it sends DATA: sent as is, "\n.\n"
# would be an end of data to a downstream that takes a bare LF for a line
# end, and what follows it commands (a RCPT to another recipient here), so
# every bare LF and CR becomes CRLF and the line after it is dot-stuffed.
# BODY=BINARYMIME goes through to a downstream that offers BINARYMIME
# (byte exact, NUL and all); to one that does not it is refused: 554 5.6.3
# at the client's end of data in direct mode.
use strict;
use warnings;
use FindBin;
use lib "$FindBin::Bin/../lib";
use Test::More;
use File::Temp ();
use POSIX ();
use Upesi::Test;
use Upesi::Forward qw(front wait_for nspool);

plan skip_all => 'python3 is not installed'
    unless system('sh', '-c', 'command -v python3 >/dev/null') == 0;
deadline(150);

my $SINK = '/usr/sbin/smtp-sink';

sub dir_files {
    my ($d) = @_;
    opendir(my $dh, $d) or return ();
    my @f = sort grep { !/^\./ && -f "$d/$_" } readdir $dh;
    return @f;
}

my $down = Upesi::Test->new(smtp => { local_domains => 'example.com,example.org' });
$down->start;
my $f = front("downstream = 127.0.0.1:" . $down->port . "\n");
$f->start;
my $fs = front("downstream = 127.0.0.1:" . $down->port . "\nmode = spool\n"
               . "scan_interval = 200ms\n");
$fs->start;
my $tmp = $f->tmp;

spit("$tmp/send.py", <<'EOF2');
import socket, sys
port, body, extra = int(sys.argv[1]), open(sys.argv[2], 'rb').read(), sys.argv[3]
s = socket.create_connection(('127.0.0.1', port), timeout=30)
f = s.makefile('rb')
def reply():
    while True:
        l = f.readline()
        if len(l) < 4 or l[3:4] != b'-':
            return l.decode('latin-1').rstrip('\r\n')
reply()
s.sendall(b'EHLO py.test\r\nMAIL FROM:<a@example.org>' + extra.encode()
          + b'\r\nRCPT TO:<bob@example.com>\r\n')
for _ in range(3):
    reply()
half = len(body) // 2
s.sendall(b'BDAT %d\r\n' % half + body[:half] +
          b'BDAT %d LAST\r\n' % (len(body) - half) + body[half:])
print(reply())
print(reply(), flush=True)
s.sendall(b'QUIT\r\n')
reply()
EOF2

sub bdat_send {
    my ($srv, $file, $extra) = @_;
    my ($exit, $out) = Upesi::Test::run_cmd(60, 'python3', "$tmp/send.py",
                                            $srv->port, $file, $extra // '');
    return $out;
}

sub bdat_count {
    my $s = $down->stat('SMTP.Command') // {};
    return $s->{'SMTP.Command.BDAT'} // 0;
}

# bare LFs and CRs, a "\n.\n", and more than one 64 KiB chunk
my $body = "Subject: bare\n\nline one\n.\nRCPT TO:<evil\@example.com>\r\nCR line\r.\rend\n"
         . ("0123456789abcdef\n" x 5000) . "last\n";
spit("$tmp/body", $body);

# ==========================================================================
# a downstream with CHUNKING: BDAT, byte exact

my $bdat0 = bdat_count();
my $out = bdat_send($f, "$tmp/body");
like $out, qr/\A250 .*\n250 2\.0\.0 /, 'direct: the front takes the chunks' or diag $out;
ok wait_for(15, sub { nspool($down) >= 1 }), 'delivered downstream';
my @m = $down->spool;
is scalar(@m), 1, 'one message downstream, not split';
is_deeply $m[0]{recipients}, ['bob@example.com'], 'no recipient from the content';
my $msg = $m[0]{message} // '';
ok index($msg, $body) >= 0 && substr($msg, -length $body) eq $body,
   'direct: the content arrives byte for byte, bare LFs and CRs kept'
    or diag substr($msg, 0, 300);
my $bdat1 = bdat_count();
ok $bdat1 - $bdat0 >= 2, "the downstream counted the BDAT chunks ($bdat0 -> $bdat1)";

$out = bdat_send($fs, "$tmp/body");
like $out, qr/\A250 .*\n250 2\.0\.0 /, 'spool: the front takes the chunks' or diag $out;
ok wait_for(20, sub { nspool($down) >= 2 }), 'spool: delivered downstream';
@m = $down->spool;
my ($sp) = grep { $_->{message} ne $msg } @m;
$sp //= $m[-1];
ok substr($sp->{message} // '', -length $body) eq $body,
   'spool: the content arrives byte for byte';
ok bdat_count() - $bdat1 >= 2, 'spool: the downstream got BDAT';

# BINARYMIME: through, byte exact (spool mode: the envelope keeps
# Mail-Params: BODY=BINARYMIME)
my $bin = "Subject: b\r\n\r\n\0\xff\n\r.\r\n" . join('', map { chr } 0 .. 255) . "\n";
spit("$tmp/bin", $bin);
my $n = nspool($down);
$out = bdat_send($f, "$tmp/bin", ' BODY=BINARYMIME');
like $out, qr/\n250 2\.0\.0 /, 'direct: BINARYMIME goes through to a BINARYMIME downstream' or diag $out;
ok wait_for(15, sub { nspool($down) > $n }), '... delivered';
@m = $down->spool;
ok scalar(grep { substr($_->{message} // '', -length $bin) eq $bin } @m),
   '... byte for byte, NUL included';
$out = bdat_send($fs, "$tmp/bin", ' BODY=BINARYMIME');
like $out, qr/\n250 2\.0\.0 /, 'spool: BINARYMIME taken' or diag $out;
ok wait_for(20, sub { nspool($down) > $n + 1 }), 'spool: BINARYMIME delivered';
@m = $down->spool;
is scalar(grep { substr($_->{message} // '', -length $bin) eq $bin } @m), 2,
   'spool: byte for byte';
# the front said BODY=BINARYMIME both times (direct: from the session;
# spool: from its own envelope); the downstream's envelope keeps it
my @bm = grep { substr($_->{message} // '', -length $bin) eq $bin } @m;
is scalar(grep { $_->{envelope} =~ /^Upesi-Spool: 2\n(?:.*\n)*Mail-Params: BODY=BINARYMIME$/m } @bm), 2,
   'both came with BODY=BINARYMIME: the envelope says Mail-Params: BODY=BINARYMIME (version 2)';
ok !grep({ $_->{envelope} =~ /Mail-Params/ } grep { $_->{message} =~ /Subject: bare/ } @m),
   'a 7bit BDAT message keeps a version 1 envelope';

$f->stop_ok('front');
$fs->stop_ok('front (spool)');

# a downstream with CHUNKING but without PIPELINING: one chunk, its 250,
# the next chunk
my $np = Upesi::Test->new(smtp => { local_domains => 'example.com,example.org',
                                    pipelining => 0 });
$np->start;
my $fn = front("downstream = 127.0.0.1:" . $np->port . "
");
$fn->start;
$out = bdat_send($fn, "$tmp/body");
like $out, qr/\A250 .*\n250 2\.0\.0 /, 'no PIPELINING downstream: taken' or diag $out;
ok wait_for(15, sub { nspool($np) >= 1 }), '... delivered';
@m = $np->spool;
ok substr($m[0]{message} // '', -length $body) eq $body, '... byte for byte';
is +($np->stat('SMTP.Command') // {})->{'SMTP.Command.BDAT'}, 2,
   '... in two BDAT chunks';
$fn->stop_ok('front (no pipelining)');
$np->stop_ok('downstream (no pipelining)');

# ==========================================================================
# a downstream without CHUNKING (smtp-sink): DATA, line ends made CRLF

SKIP: {
    skip "$SINK not installed", 6 unless -x $SINK;
    my $st = File::Temp::tempdir('upesi-sink-XXXXXX', TMPDIR => 1,
                                 CLEANUP => !$ENV{UPESI_KEEP});
    chmod 0755, $st;
    mkdir "$st/sink"; chmod 0777, "$st/sink";
    my $port = free_port();
    my @user = $> == 0 ? ('-u', 'nobody') : ();
    my $sink = fork // die;
    if (!$sink) {
        open STDOUT, '>', '/dev/null'; open STDERR, '>', '/dev/null';
        { exec $SINK, @user, '-d', "$st/sink/%M.", "127.0.0.1:$port", 64 }
        POSIX::_exit(127);
    }
    wait_for(5, sub { Upesi::Test::_listening('127.0.0.1', $port) });
    my $g = front("downstream = 127.0.0.1:$port\n");
    $g->start;
    $out = bdat_send($g, "$tmp/body");
    like $out, qr/\A250 .*\n250 2\.0\.0 /, 'smtp-sink: the front takes the chunks' or diag $out;
    ok wait_for(5, sub { scalar(dir_files("$st/sink")) >= 1 }), 'smtp-sink captured it';
    my ($one) = dir_files("$st/sink");
    my $cap = slurp("$st/sink/$one") // '';
    my ($content) = $cap =~ /(Subject: bare.*)\z/s;
    $content //= '';
    my $want = $body;
    $want =~ s/\r\n|\r|\n/\n/g;   # the dump writes each line with LF
    $content =~ s/\n\z//;             # the dump ends the record with one more
    is $content, $want, 'smtp-sink got one message by DATA: each bare LF or CR a line end, dot lines content'
        or diag substr($cap, 0, 400);
    is scalar(() = $cap =~ /X-Rcpt-Args:/g), 1, 'one recipient, none from the content';

    $out = bdat_send($g, "$tmp/bin", ' BODY=BINARYMIME');
    like $out, qr/\n554 5\.6\.3 /, 'BINARYMIME to a downstream without it: 554 5.6.3' or diag $out;
    sleep 0.5;
    is scalar(dir_files("$st/sink")), 1, 'nothing more reached smtp-sink';
    $g->stop_ok('front (smtp-sink)');

    # spool mode: the message is taken, then a failure DSN (5.6.3) to the
    # sender, which goes to smtp-sink too (the only downstream)
    my $gs = front("downstream = 127.0.0.1:$port\nmode = spool\nscan_interval = 200ms\n");
    $gs->start;
    $out = bdat_send($gs, "$tmp/bin", ' BODY=BINARYMIME');
    like $out, qr/\n250 2\.0\.0 /, 'spool: BINARYMIME taken for a downstream without it' or diag $out;
    # smtp-sink writes its dump as the data comes: wait for the whole DSN
    my @caps;
    ok wait_for(30, sub {
           @caps = map { slurp("$st/sink/$_") // '' } dir_files("$st/sink");
           grep { /multipart\/report/ && /Status: 5\.6\.3/ && /X-Rcpt-Args/ } @caps }),
       'spool: the DSN reached smtp-sink';
    my ($dsn) = grep { /multipart\/report/ } @caps;
    like $dsn // '', qr/Status: 5\.6\.3/, '... the failure DSN, 5.6.3';
    like $dsn // '', qr/X-Rcpt-Args: <a\@example\.org>/, '... to the sender';
    ok !grep({ /\xff/ } @caps), '... and never the binary message';
    $gs->stop_ok('front (smtp-sink, spool)');
    kill 'TERM', $sink;
    waitpid $sink, 0;
}

$down->stop_ok('downstream');
done_testing;
