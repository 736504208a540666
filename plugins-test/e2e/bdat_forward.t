#!/usr/bin/perl
# bdat_forward.t - a message received in BDAT chunks, forwarded by
# queue_forward (which speaks DATA downstream) to a second upesi.
#
# BDAT content is stored as sent, bare LFs and CRs included.  Sent as is
# in DATA, "\n.\n" would be an end of data to a downstream that takes a
# bare LF for a line end, and what follows it commands (a RCPT to another
# recipient here).  queue_forward turns every bare LF and CR into CRLF
# and dot-stuffs the line after it: the downstream stores one message,
# with CRLF line ends and the dot lines as content.  BODY=BINARYMIME
# cannot travel in DATA: refused at the end of the last chunk (554
# 5.6.3) instead of being mangled.
use strict;
use warnings;
use FindBin;
use lib "$FindBin::Bin/../lib";
use Test::More;
use Upesi::Test;
use Upesi::Forward qw(front wait_for nspool);

plan skip_all => 'python3 is not installed'
    unless system('sh', '-c', 'command -v python3 >/dev/null') == 0;
deadline(90);

my $down = Upesi::Test->new(smtp => { local_domains => 'example.com,example.org' });
$down->start;
my $f = front("downstream = 127.0.0.1:" . $down->port . "\n");
$f->start;
my $tmp = $f->tmp;

spit("$tmp/send.py", <<'EOF');
import socket, sys
port, body, extra = int(sys.argv[1]), open(sys.argv[2], 'rb').read(), sys.argv[3]
s = socket.create_connection(('127.0.0.1', port), timeout=20)
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
EOF

my $body = "Subject: bare\n\nline one\n.\nRCPT TO:<evil\@example.com>\r\nCR line\r.\rend\n";
spit("$tmp/body", $body);
my ($exit, $out) = Upesi::Test::run_cmd(40, 'python3', "$tmp/send.py", $f->port, "$tmp/body", '');
like $out, qr/\A250 .*\n250 2\.0\.0 Ok: queued/, 'the front takes the chunks' or diag $out;
ok wait_for(15, sub { nspool($down) >= 1 }), 'delivered downstream';
sleep 1;
my @m = $down->spool;
is scalar(@m), 1, 'one message downstream, not split';
is_deeply $m[0]{recipients}, ['bob@example.com'], 'no recipient from the content';
my $msg = $m[0]{message} // '';
unlike $msg, qr/(?<!\r)\n|\r(?!\n)/, 'every line end is CRLF downstream';
like $msg, qr/\r\n\r\nline one\r\n\.\r\nRCPT TO:<evil\@example\.com>\r\nCR line\r\n\.\r\nend\r\n\z/,
    'the content with its line ends made CRLF, dot lines kept as content'
    or diag $msg;

# BINARYMIME: refused, not mangled
spit("$tmp/bin", "Subject: b\r\n\r\n\0\xff\n");
($exit, $out) = Upesi::Test::run_cmd(40, 'python3', "$tmp/send.py", $f->port, "$tmp/bin", ' BODY=BINARYMIME');
like $out, qr/\n554 5\.6\.3 /, 'BINARYMIME through queue_forward: 554 5.6.3' or diag $out;
sleep 0.5;
is nspool($down), 1, 'nothing more downstream';

$f->stop_ok('front');
$down->stop_ok('downstream');
done_testing;
