#!/usr/bin/perl
# smtputf8.t - SMTPUTF8 (RFC 6531/6532) end to end: EHLO offers it; a UTF-8
# address without the MAIL parameter is 553 5.6.7 (swaks, which cannot
# say SMTPUTF8, gets exactly that); with it, UTF-8 local parts and IDN
# domains are accepted when well formed (UTF-8, IDNA2008) and refused
# otherwise; local_domains matches a U-label by its A-label; the spool
# envelope records it (Upesi-Spool 2, Mail-Params); Python's smtplib
# send_message to a UTF-8 address goes through; the relay plugin compares
# IDN domains by their A-label; smtp.ini smtputf8 = 0 takes it away.
use strict;
use warnings;
use FindBin;
use lib "$FindBin::Bin/../lib";
use Test::More;
use Upesi::Test;

plan skip_all => "$UPESI not built" unless -f $UPESI && -x _;
deadline(120);

my $srv = Upesi::Test->new(
    smtp => { local_domains => 'example.com,xn--bcher-kva.example' },
    plugins => ['relay', 'queue_spool'],
    ini => { 'relay.ini' => "allow_domains = m\xc3\xbcller.example\n" });
$srv->start;

sub code_of { my $r = shift; $r ? "$r->{code} " . ($r->{enhanced} // '') : 'none' }

my $c = $srv->client;
my $r = $c->cmd('EHLO client.test');
like($r->{text}, qr/^SMTPUTF8$/m, 'EHLO offers SMTPUTF8');
like($r->{text}, qr/^DSN$/m, 'EHLO offers DSN');

# -- without the parameter
$r = $c->cmd("MAIL FROM:<j\xc3\xb6rg\@example.org>");
is(code_of($r), '553 5.6.7', 'a UTF-8 sender without SMTPUTF8: 553 5.6.7');
like($r->{text}, qr/requires SMTPUTF8/, '... saying why');
is(code_of($c->cmd('MAIL FROM:<a@example.org>')), '250 2.1.0', 'ASCII sender');
is(code_of($c->cmd("RCPT TO:<\xc3\xbc\@example.com>")), '553 5.6.7',
   'a UTF-8 recipient in a transaction without SMTPUTF8: 553 5.6.7');
$c->cmd('RSET');

# -- with it
is(code_of($c->cmd("MAIL FROM:<j\xc3\xb6rg\@b\xc3\xbccher.example> SMTPUTF8")),
   '250 2.1.0', 'MAIL FROM with a UTF-8 local part and domain, SMTPUTF8: 250');
is(code_of($c->cmd("RCPT TO:<\xc3\xbc\@B\xc3\x9cCHER.example>")), '250 2.1.5',
   'RCPT to a U-label of a local domain given as A-label (any case): 250');
is(code_of($c->cmd("RCPT TO:<bad\xff\@example.com>")), '553 5.6.7',
   'not well-formed UTF-8: 553 5.6.7');
is(code_of($c->cmd("RCPT TO:<x\@\xc0\xaf.example>")), '553 5.6.7',
   'an overlong UTF-8 form: 553 5.6.7');
is(code_of($c->cmd("RCPT TO:<x\@a\xe2\x80\x8db.example>")), '553 5.1.2',
   'a domain that is no valid IDN (a ZERO WIDTH JOINER): 553 5.1.2');
is(code_of($c->cmd("RCPT TO:<x\@m\xc3\xbcller.example>")), '250 2.1.5',
   'relay: allow_domains written as a U-label matches');
is(code_of($c->cmd('RCPT TO:<x@xn--mller-kva.example>')), '250 2.1.5',
   '... and the same domain as an A-label');
is(code_of($c->cmd('RCPT TO:<x@other.example>')), '550 5.7.1',
   '... another domain is still refused');
is($c->cmd('DATA')->{code}, 354, 'DATA');
$c->send_raw("Subject: gr\xc3\xbc\xc3\x9fe\r\nFrom: j\xc3\xb6rg\@b\xc3\xbccher.example\r\n\r\nHallo\r\n.\r\n");
is($c->read_reply(10)->{code}, 250, 'message accepted');
$c->cmd('QUIT');

my @m = $srv->wait_spool(1, 10);
my ($msg) = @m;
is($msg->{env}{'Upesi-Spool'}, '2', 'spool envelope version 2 for an SMTPUTF8 message');
is($msg->{env}{'Mail-Params'}, 'SMTPUTF8', 'Mail-Params: SMTPUTF8');
is($msg->{env}{Sender}, "j\xc3\xb6rg\@b\xc3\xbccher.example", 'the sender as given (UTF-8)');
is_deeply($msg->{recipients}, ["\xc3\xbc\@B\xc3\x9cCHER.example",
                               "x\@m\xc3\xbcller.example",
                               'x@xn--mller-kva.example'],
          'the recipients as given');

# -- an ASCII message keeps version 1
$r = $srv->swaks_send('--to', 'bob@example.com', '--from', 'a@example.org');
is($r->{exit}, 0, 'swaks, ASCII: accepted') or diag $r->{out};
@m = $srv->wait_spool(2, 10);
is($m[-1]{env}{'Upesi-Spool'}, '1', 'a message without SMTPUTF8/DSN parameters: version 1');

# -- swaks cannot say SMTPUTF8: its UTF-8 sender is refused as RFC 6531 asks
$r = $srv->swaks_send('--to', 'bob@example.com', '--from', "j\xc3\xb6rg\@example.org");
like($r->{out}, qr/<\*\*\s+553 5\.6\.7 /, 'swaks with a UTF-8 sender (no SMTPUTF8 parameter): 553 5.6.7');

# -- Python's smtplib: send_message with the SMTPUTF8 policy
SKIP: {
    my ($st, $out) = Upesi::Test::run_cmd(30, 'python3', '-c', <<'PY', $srv->port);
import sys, smtplib
from email.message import EmailMessage
from email import policy
m = EmailMessage(policy=policy.SMTPUTF8)
m['From'] = 'jörg@bücher.example'
m['To'] = 'ü@bücher.example'
m['Subject'] = 'Grüße'
m.set_content('Hallo, wie geht es?\n')
s = smtplib.SMTP('127.0.0.1', int(sys.argv[1]), timeout=20)
s.ehlo('python.test')
print('smtputf8' if s.has_extn('smtputf8') else 'no smtputf8')
refused = s.send_message(m)
print('refused', refused)
s.quit()
PY
    skip 'python3 not available', 3 if $st == -1 || $out =~ /not found/;
    like($out, qr/^smtputf8$/m, 'smtplib sees SMTPUTF8');
    like($out, qr/^refused \{\}$/m, 'smtplib send_message: no recipient refused') or diag $out;
    @m = $srv->wait_spool(3, 10);
    is($m[-1]{recipients}[0], "\xc3\xbc\@b\xc3\xbccher.example", '... the UTF-8 recipient in the spool');
}
$srv->stop_ok;

# -- sender: a deny list naming an IDN domain as U-labels refuses it in
# either form; the local part is compared as given
my $snd = Upesi::Test->new(
    smtp => { local_domains => 'example.com' },
    plugins => ['sender', 'queue_spool'],
    ini => { 'sender.ini' => "deny = *\@b\xc3\xbccher.example, J\xc3\xb6rg\@example.org\n" });
$snd->start;
$c = $snd->client;
$c->cmd('EHLO client.test');
like(code_of($c->cmd('MAIL FROM:<x@xn--bcher-kva.example>')), qr/^5/,
     'sender deny = *@U-label: the A-label sender is refused');
$c->cmd('RSET');
like(code_of($c->cmd("MAIL FROM:<x\@B\xc3\xbcCHER.example> SMTPUTF8")), qr/^5/,
     '... and the U-label one (ASCII letters in any case)');
$c->cmd('RSET');
like(code_of($c->cmd("MAIL FROM:<j\xc3\xb6rg\@example.org> SMTPUTF8")), qr/^5/,
     'a UTF-8 local part in the list matches as given');
$c->cmd('RSET');
is(code_of($c->cmd("MAIL FROM:<j\xc3\x96rg\@example.org> SMTPUTF8")), '250 2.1.0',
   '... and another UTF-8 local part does not (no case folding beyond ASCII)');
$c->cmd('QUIT');
$snd->stop_ok;

# -- strict821 keeps its form rules for UTF-8 addresses, and no more
my $s821 = Upesi::Test->new(
    smtp => { local_domains => 'example.com' },
    plugins => ['strict821', 'queue_spool'],
    ini => { 'strict821.ini' => "address_syntax = 1\n" });
$s821->start;
$c = $s821->client;
$c->cmd('EHLO client.test');
is(code_of($c->cmd("MAIL FROM:<j\xc3\xb6rg\@b\xc3\xbccher.example> SMTPUTF8")), '250 2.1.0',
   'strict821 address_syntax = 1: a UTF-8 path to the letter passes');
$c->cmd('RSET');
is(code_of($c->cmd("MAIL FROM: <j\xc3\xb6rg\@b\xc3\xbccher.example> SMTPUTF8")), '501 5.1.7',
   '... with a space after the colon it is refused, as an ASCII one');
$c->cmd('QUIT');
$s821->stop_ok;

# -- smtputf8 = 0: not offered, and a UTF-8 address is 553 5.6.7 even with it
my $off = Upesi::Test->new(smtp => { local_domains => 'example.com',
                                     smtputf8 => 0, dsn => 0 });
$off->start;
$c = $off->client;
$r = $c->cmd('EHLO client.test');
unlike($r->{text}, qr/SMTPUTF8|^DSN$/m, 'smtputf8 = 0, dsn = 0: neither offered');
is(code_of($c->cmd("MAIL FROM:<jorg\@example.org> SMTPUTF8")), '555 5.5.4',
   'the SMTPUTF8 parameter: 555 5.5.4 unsupported');
is(code_of($c->cmd("MAIL FROM:<j\xc3\xb6rg\@example.org>")), '553 5.6.7',
   'a UTF-8 sender: 553 5.6.7');
$c->cmd('QUIT');
$off->stop_ok;

done_testing();
