#!/usr/bin/perl
# bdat.t - CHUNKING (RFC 3030): BDAT from a Python client on a raw socket
# (smtplib has no BDAT), and BINARYMIME.
#
# Each scenario is one Python run: it sends the bytes it is given (several
# BDAT chunks in one write where the scenario says so) and prints every
# reply it reads, one per line, as "CODE ENHANCED TEXT".  The chunk bytes
# hold things DATA would read as commands or as the end of data (a bare
# LF dot line, "QUIT", "RCPT TO"): in BDAT they are content, counted and
# never scanned, and a refused chunk is read to its end and thrown away.
use strict;
use warnings;
use FindBin;
use lib "$FindBin::Bin/../lib";
use Test::More;
use Upesi::Test;

deadline(120);

plan skip_all => 'python3 is not installed'
    unless system('sh', '-c', 'command -v python3 >/dev/null') == 0;

my $srv = Upesi::Test->new(
    smtp    => { local_domains => 'example.com', pipelining => 1,
                 max_message_size => 1000 });
$srv->start;
my $tmp = $srv->tmp;

# argv: port, then the exchange as a Python literal: a list of
# [bytes to send, replies to read] steps
spit("$tmp/bdat.py", <<'EOF');
import socket, sys
port, steps = int(sys.argv[1]), eval(open(sys.argv[2]).read())  # the test wrote it
s = socket.create_connection(('127.0.0.1', port), timeout=10)
f = s.makefile('rb')
def reply():
    lines = []
    while True:
        l = f.readline()
        if not l:
            return 'EOF'
        lines.append(l.decode('latin-1').rstrip('\r\n'))
        if len(l) < 4 or l[3:4] != b'-':
            return lines[-1] if len(lines) == 1 else \
                lines[-1][:4] + '|'.join(x[4:] for x in lines)
print('GREETING', reply())
for data, n in steps:
    if data:
        s.sendall(data)
    for _ in range(n):
        print(reply(), flush=True)
s.close()
EOF

my $n = 0;
sub exchange {
    my ($steps, $port) = @_;
    my $file = "$tmp/steps" . $n++;
    spit($file, $steps);
    my ($exit, $out) = Upesi::Test::run_cmd(30, 'python3', "$tmp/bdat.py", $port // $srv->port, $file);
    my @r = grep { !/^GREETING/ } split /\n/, $out;
    return @r;
}
sub nspool { my @s = $srv->spool; return scalar @s }
sub codes { join ',', map { /^(\d{3}|EOF)/ ? $1 : '?' } @_ }

my $env = q{b'EHLO py.test\r\nMAIL FROM:<a@example.org>\r\nRCPT TO:<bob@example.com>\r\n'};

# EHLO advertises CHUNKING and BINARYMIME
my @r = exchange(q{[(b'EHLO py.test\r\n', 1), (b'QUIT\r\n', 1)]});
like $r[0], qr/CHUNKING/, 'EHLO offers CHUNKING' or diag "@r";
like $r[0], qr/BINARYMIME/, 'EHLO offers BINARYMIME';

# chunks pipelined in one write, the last one of 0 bytes; the content holds
# a bare LF dot line and command-like lines: it is content
my $before = $srv->stat('SMTP.Command.BDAT')->{'SMTP.Command.BDAT'} // 0;
my $c1 = "Subject: chunked\r\n\r\nline one\n.\nQUIT\r\n";
my $c2 = "RCPT TO:<evil\@example.com>\r\n.\r\nlast\r\n";
@r = exchange("[($env + b'BDAT " . length($c1) . "\\r\\n' + " . pyb($c1)
            . " + b'BDAT " . length($c2) . "\\r\\n' + " . pyb($c2)
            . " + b'BDAT 0 LAST\\r\\n', 6), (b'QUIT\\r\\n', 1)]");
is codes(@r), '250,250,250,250,250,250,221', 'pipelined chunks and a 0-byte LAST: every reply in order'
    or diag join "\n", @r;
like $r[3], qr/^250 2\.0\.0 Ok: ${\ length $c1} octets/, 'a chunk is answered with its size';
like $r[5], qr/queued as/, 'BDAT 0 LAST queues the message';
my @m = $srv->wait_spool(1);
is scalar(@m), 1, 'one message in the spool';
my (undef, $body) = strip_received($m[0]{message});
is $body, $c1 . $c2, 'the content is stored byte for byte (bare LF kept, no dot unstuffing)';
is_deeply $m[0]{recipients}, ['bob@example.com'], 'no recipient came from the content';
my $after = $srv->stat('SMTP.Command.BDAT')->{'SMTP.Command.BDAT'};
is $after - $before, 3, 'SMTP.Command.BDAT counts each chunk';

# one chunk with LAST, one reply at a time
@r = exchange("[($env, 3), (b'BDAT 16 LAST\\r\\nSubject: one\\r\\n\\r\\n', 1), (b'QUIT\\r\\n', 1)]");
is codes(@r), '250,250,250,250,221', 'BDAT n LAST alone' or diag join "\n", @r;
@m = $srv->wait_spool(2);
is scalar(@m), 2, 'queued';

# over max_message_size (1000): the bytes are read and thrown away, 552
my $big = 'x' x 700;
@r = exchange("[($env + b'BDAT 700\\r\\n" . $big . "' + b'BDAT 700 LAST\\r\\n" . $big
            . "' + b'NOOP\\r\\n', 6), (b'QUIT\\r\\n', 1)]");
is codes(@r), '250,250,250,250,552,250,221', 'over the size limit: 552 for the chunk that crossed it; its bytes were no commands'
    or diag join "\n", @r;
like $r[4], qr/^552 5\.3\.4/, '552 5.3.4';
is nspool(), 2, 'nothing queued';

# RSET after a partial BDAT discards it; the next transaction is clean
@r = exchange("[($env + b'BDAT 11\\r\\nPARTIAL..\\r\\n' + b'RSET\\r\\n', 5),"
            . " ($env + b'BDAT 14 LAST\\r\\nSubject: two\\r\\n', 4), (b'QUIT\\r\\n', 1)]");
is codes(@r), '250,250,250,250,250,250,250,250,250,221', 'BDAT, RSET, a new transaction'
    or diag join "\n", @r;
@m = $srv->wait_spool(3);
(undef, $body) = strip_received($m[-1]{message});
is $body, "Subject: two\r\n", 'the partial chunk before RSET is gone';

# BDAT then DATA in one transaction: 503
@r = exchange("[($env + b'BDAT 5\\r\\nhello', 4), (b'DATA\\r\\n', 1), (b'QUIT\\r\\n', 1)]");
is codes(@r), '250,250,250,250,503,221', 'DATA after BDAT: 503' or diag join "\n", @r;

# BDAT without RCPT, and without MAIL: 503, and the chunk's bytes (which
# look like commands) are read and thrown away
@r = exchange(q{[(b'EHLO py.test\r\nMAIL FROM:<a@example.org>\r\nBDAT 33 LAST\r\nRCPT TO:<bob@example.com>\r\nRSET\r\nBDAT 6\r\nQUIT\r\n', 4), (b'NOOP\r\n', 1), (b'QUIT\r\n', 1)]});
is codes(@r), '250,250,503,503,250,221', 'BDAT without RCPT: 503, the bytes (RCPT, RSET, QUIT) are no commands'
    or diag join "\n", @r;
like $r[2], qr/need RCPT/, 'says RCPT is missing';
@r = exchange(q{[(b'EHLO py.test\r\nBDAT 6 LAST\r\nQUIT\r\nNOOP\r\n', 3), (b'QUIT\r\n', 1)]});
is codes(@r), '250,503,250,221', 'BDAT without MAIL: 503, its QUIT is content' or diag join "\n", @r;
like $r[1], qr/need MAIL/, 'says MAIL is missing';
is nspool(), 3, 'nothing queued';

# BINARYMIME: BDAT only; NUL and bare CR kept as they are
@r = exchange(q{[(b'EHLO py.test\r\nMAIL FROM:<a@example.org> BODY=BINARYMIME\r\nRCPT TO:<bob@example.com>\r\nDATA\r\n', 4), (b'RSET\r\nMAIL FROM:<a@example.org> BODY=BINARYMIME\r\nRCPT TO:<bob@example.com>\r\nBDAT 12 LAST\r\nS: b\r\n\r\n\x00\r\xff\n', 4), (b'QUIT\r\n', 1)]});
is codes(@r), '250,250,250,503,250,250,250,250,221', 'BODY=BINARYMIME: DATA 503, BDAT accepted'
    or diag join "\n", @r;
like $r[3], qr/BINARYMIME requires BDAT/, 'says why';
@m = $srv->wait_spool(4);
(undef, $body) = strip_received($m[-1]{message});
is $body, "S: b\r\n\r\n\0\r\xff\n", 'binary content stored as sent';

# a BDAT line without a size: 501 and the connection is closed
@r = exchange(q{[(b'EHLO py.test\r\nMAIL FROM:<a@example.org>\r\nRCPT TO:<bob@example.com>\r\nBDAT x\r\nQUIT\r\n', 5)]});
is codes(@r), '250,250,250,501,EOF', 'BDAT with no usable size: 501, closed' or diag join "\n", @r;

# without PIPELINING offered, the chunk's bytes right after its BDAT line
# are not "sending ahead" (early_talker_action = drop would close)
my $np = Upesi::Test->new(
    smtp => { local_domains => 'example.com', pipelining => 0,
              early_talker_action => 'drop' });
$np->start;
@r = exchange(q{[(b'EHLO py.test\r\n', 1), (b'MAIL FROM:<a@example.org>\r\n', 1),
                (b'RCPT TO:<bob@example.com>\r\n', 1), (b'BDAT 13 LAST\r\nSubject: np\r\n', 1),
                (b'QUIT\r\n', 1)]}, $np->port);
is codes(@r), '250,250,250,250,221', 'PIPELINING off: BDAT and its bytes in one write are no early talking'
    or diag join "\n", @r;
$np->stop_ok('the server without PIPELINING');

$srv->stop_ok;
done_testing;

# a Perl string as a Python bytes literal
sub pyb {
    my ($s) = @_;
    my $o = join '', map {
        my $c = ord $_;
        $_ eq "'" || $_ eq "\\" ? "\\$_" : ($c >= 32 && $c < 127) ? $_ : sprintf('\\x%02x', $c)
    } split //, $s;
    return "b'$o'";
}
