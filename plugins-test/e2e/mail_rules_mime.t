#!/usr/bin/perl
# mail_rules_mime.t - mail rules on bad and big input through the real
# host: unterminated boundaries, deep nesting, thousands of parts, a
# header section of 400 KB, bad base64, bad encoded words, 8-bit junk
# headers, no headers at all, and a 6 MB message.  Each is accepted
# (250), the rules still run on what can be read, and the server neither
# crashes nor reports a sanitizer error.
use strict;
use warnings;
use FindBin;
use lib "$FindBin::Bin/../lib";
use Test::More;
use Upesi::Test;

deadline(120);

my $rules = <<'EOT';
rule "all"       when all                                do tag "X-R: all"
rule "pharmacy"  when body contains "pharmacy"           do tag "X-R: body"
rule "subject"   when subject contains "hello"           do tag "X-R: subject"
rule "junk"      when header "X-Junk" contains "caf"     do tag "X-R: junk"
rule "att"       when attachment_count > 0               do tag "X-R: att"
rule "big"       when size > 5M                          do tag "X-R: big"
EOT

my $srv = Upesi::Test->new(
    smtp    => { local_domains => 'example.com', max_message_size => 20000000 },
    plugins => [ 'mail_rules', 'queue_spool' ],
    ini     => { 'mail_rules.ini' => "file = rules.txt\n", 'rules.txt' => $rules },
);
$srv->start;

sub send_msg {
    my ($data) = @_;
    my $c = $srv->client;
    $c->cmd('EHLO client.test');
    $c->cmd('MAIL FROM:<a@example.org>');
    $c->cmd('RCPT TO:<bob@example.com>');
    my $r = $c->cmd('DATA');
    return $r unless $r && $r->{code} == 354;
    $r = $c->send_data($data, 60);
    $c->cmd('QUIT');
    $c->close;
    return $r;
}

sub tags_for {
    my ($id) = @_;
    my ($m) = grep { $_->{id} eq $id } $srv->spool;
    return undef unless $m;
    my %t;
    $t{$1} = 1 while $m->{message} =~ /^X-R: (\S+)\r$/mg;
    return \%t;
}

my $mp = "MIME-Version: 1.0\r\n";
my $deep = '';
$deep .= "Content-Type: multipart/mixed; boundary=\"d$_\"\r\n\r\n--d$_\r\n" for 1 .. 300;
my $deeper = '';
$deeper .= "Content-Type: multipart/mixed; boundary=\"d$_\"\r\n\r\n--d$_\r\n" for 1 .. 40_000;
my $big_b64 = join '', map { ('QUFB' x 19) . "\r\n" } 1 .. 80_000;   # ~6.2 MB
# 3,000 small parts, "pharmacy" in part $at: GMime parses up to the
# 1,000th line beginning with "--" (plugins/common/mime_guard.h)
sub many_parts {
    my ($at) = @_;
    return "Subject: hello\r\n${mp}Content-Type: multipart/mixed; boundary=\"p\"\r\n\r\n"
        . join('', map { "--p\r\nContent-Type: text/plain\r\n\r\n"
                         . ($_ == $at ? "pharmacy" : "w$_") . "\r\n" } 1 .. 3000)
        . "--p--\r\n";
}

my @cases = (
    [ 'unterminated boundary',
      "Subject: hello\r\n${mp}Content-Type: multipart/mixed; boundary=\"b\"\r\n\r\n"
      . "--b\r\nContent-Type: text/plain\r\n\r\nbuy at the pharmacy\r\n--b\r\n"
      . "Content-Type: text/plain\r\n\r\nand this part never ends\r\n",
      [qw(all body subject)] ],
    [ 'deep nesting (300 levels)',
      "Subject: hello\r\n$mp$deep" . "Content-Type: text/plain\r\n\r\npharmacy\r\n",
      [qw(all subject)] ],
    [ 'pathological nesting (40,000 levels): headers only',
      "Subject: hello\r\n$mp$deeper" . "Content-Type: text/plain\r\n\r\npharmacy\r\n",
      [qw(all subject)] ],
    [ 'many parts (3,000), the word in part 10: read',
      many_parts(10), [qw(all subject body)] ],
    [ 'many parts (3,000), the word in part 2,500: past the cut, not read',
      many_parts(2500), [qw(all subject)] ],
    [ 'a To field of 400 KB: the header section past 256K is not parsed, nor the body',
      "Subject: hello\r\nTo: " . join(', ', map { "u$_\@example.com" } 1 .. 25_000)
      . "\r\n\r\npharmacy\r\n", [qw(all subject)] ],
    [ 'bad base64',
      "Subject: hello\r\n${mp}Content-Type: text/plain\r\nContent-Transfer-Encoding: base64\r\n\r\n"
      . "cGhhcm1hY3k=\r\n!!!!\$\$\$ ~~~ ====\r\nQUJD=A=\r\n",
      [qw(all subject body)] ],
    [ 'bad encoded words',
      "Subject: =?UTF-8?B?####?= =?bogus-charset?Q?hello?= =?UTF-8?Q?unterminated\r\n\r\npharmacy\r\n",
      [qw(all subject body)] ],
    [ '8-bit junk headers',
      "Subject: hello \xff\xfe\r\nX-Junk: caf\xe9 \x80\x81\xc3\r\nFrom: \xe9\xe9 <\xff\@example.org>\r\n\r\npharmacy \xe9\r\n",
      [qw(all subject junk body)] ],
    [ 'no header at all', "just a body line with pharmacy\r\n", [qw(all)] ],
    [ 'binary NUL bytes in a text part',
      "Subject: hello\r\n${mp}Content-Type: text/plain\r\nContent-Transfer-Encoding: base64\r\n\r\n"
      . "AAAAcGhhcm1hY3kAAAA=\r\n",
      [qw(all subject body)] ],
    [ '6 MB message, text first, big attachment',
      "Subject: hello\r\n${mp}Content-Type: multipart/mixed; boundary=\"z\"\r\n\r\n"
      . "--z\r\nContent-Type: text/plain\r\n\r\nsee the pharmacy list\r\n"
      . "--z\r\nContent-Type: application/octet-stream; name=\"big.bin\"\r\n"
      . "Content-Transfer-Encoding: base64\r\n\r\n$big_b64--z--\r\n",
      [qw(all subject body att big)] ],
);

for my $case (@cases) {
    my ($name, $data, $want) = @$case;
    my $r = send_msg($data);
    is $r->{code}, 250, "$name: accepted" or diag explain $r;
    my ($id) = ($r->{text} // '') =~ /queued as (\w+)/;
    $srv->wait_spool(1, 5);
    is_deeply [ sort keys %{ tags_for($id // '') || {} } ], [ sort @$want ],
        "$name: the rules ran on what could be read";
}

ok $srv->wait_log(qr/has more than 1000 multipart parts: rules see its headers only/, 5),
    'the pathological message is walked as headers only, and logged';
ok $srv->wait_log(qr/has more than 1000 lines beginning with "--": rules see the MIME parts before them/, 5),
    'the message of many parts is cut, and logged';
ok $srv->wait_log(qr/has a header section longer than 256K: rules see the fields before that, not the body/, 5),
    'the message with the long header section is cut, and logged';
ok $srv->running, 'the server is still running';
$srv->stop_ok;
done_testing;
