#!/usr/bin/perl
# basic.t - the SMTP conversation of RFC 5321 as upesi speaks it: greeting,
# EHLO extensions, a message stored byte-exact (dot-unstuffing, Received
# header with and without version), relaying denied, VRFY off, HELP, NOOP,
# RSET, QUIT; the log lines and counters one session leaves behind.
use strict;
use warnings;
use FindBin;
use lib "$FindBin::Bin/../lib";
use Test::More;
use Upesi::Test;

deadline(120);

# the release, as the host was built with it
my ($version) = (slurp("$ROOT/host/version.h") // '') =~ /UPESI_VERSION\s+"([^"]+)"/;
ok $version, "host/version.h names the release" or $version = 'unknown';

my $srv = Upesi::Test->new(smtp => {
    hostname => 'mx.test.example',
    greeting => 'mx.test.example ESMTP upesi ready at %s',
    local_domains => 'example.com, example.net',
    max_message_size => 10485760,
    vrfy => 0,
    received_version => 1,
});
$srv->start;

# -- greeting and EHLO ------------------------------------------------------
my $c = $srv->client;
my $g = $c->greeting;
ok $g, 'a greeting arrives' or diag $c->error;
is $g->{code}, 220, 'greeting code is 220';
like $g->{text}, qr/^mx\.test\.example ESMTP upesi ready at \S/,
    'greeting text comes from the greeting key';
unlike $g->{text}, qr/%s/, '%s in the greeting is replaced';
like $g->{text}, qr/\b20\d\d\b/, 'greeting carries the year';
like $g->{text}, qr/\b\d\d:\d\d(:\d\d)?\b/, 'greeting carries the time of day';

my $r = $c->cmd('EHLO client.test');
is $r->{code}, 250, 'EHLO answered 250';
like $r->{lines}[0], qr/^250-mx\.test\.example\b/, 'EHLO reply starts with the hostname';
my %ext = map { my ($kw, $arg) = split ' ', $_, 2; (uc $kw => $arg // '') }
          map { substr($_, 4) } @{ $r->{lines} }[1 .. $#{ $r->{lines} }];
ok exists $ext{PIPELINING}, 'EHLO lists PIPELINING';
ok exists $ext{SIZE}, 'EHLO lists SIZE';
is $ext{SIZE}, '10485760', 'SIZE announces max_message_size';
ok exists $ext{'8BITMIME'}, 'EHLO lists 8BITMIME';
ok exists $ext{ENHANCEDSTATUSCODES}, 'EHLO lists ENHANCEDSTATUSCODES';
unlike join("\n", @{ $r->{lines} }), qr/^250-STARTTLS/m,
    'STARTTLS is not offered without tls_cert';

# -- commands outside a transaction ----------------------------------------
$r = $c->cmd('NOOP');
is $r->{code}, 250, 'NOOP answered 250';
$r = $c->cmd('HELP');
like $r->{code}, qr/^21[14]$/, 'HELP answered 214 (or 211)';
$r = $c->cmd('VRFY bob@example.com');
is $r->{code}, 252, 'VRFY with vrfy = 0 answered 252';
$r = $c->cmd('RCPT TO:<bob@example.com>');
is $r->{code}, 503, 'RCPT before MAIL is a bad sequence (503)';
is $r->{enhanced}, '5.5.1', 'bad sequence carries 5.5.1';

# -- relaying denied, RSET --------------------------------------------------
$r = $c->cmd('MAIL FROM:<alice@example.org>');
is $r->{code}, 250, 'MAIL FROM accepted';
like $r->{text}, qr/^2\.1\.0\b/, 'MAIL reply has enhanced code 2.1.0';
$r = $c->cmd('RCPT TO:<someone@elsewhere.test>');
is $r->{code}, 550, 'RCPT to a domain not in local_domains: 550';
is $r->{enhanced}, '5.7.1', 'relaying denied carries 5.7.1';
$r = $c->cmd('RCPT TO:<Bob@EXAMPLE.NET>');
is $r->{code}, 250, 'RCPT to a local domain accepted (case-insensitive)';
like $r->{text}, qr/^2\.1\.5\b/, 'RCPT reply has enhanced code 2.1.5';
$r = $c->cmd('RSET');
is $r->{code}, 250, 'RSET answered 250';
$r = $c->cmd('DATA');
is $r->{code}, 503, 'DATA after RSET: no transaction any more (503)';

# -- a message, byte-exact ---------------------------------------------------
# The data as sent (dot-stuffed) and as it must be stored (unstuffed).
my @sent = (
    "From: Alice <alice\@example.org>",
    "To: Bob <bob\@example.com>",
    "Subject: dots and bytes",
    "Message-ID: <basic-1\@client.test>",
    "",
    "..a line that began with one dot",
    "...two dots",
    "..",
    " .not at the start",
    "8bit: caf\xc3\xa9 \xe2\x82\xac",
    "trailing spaces   ",
    "\ttab",
    "",
    "last line",
);
my $wire = join("\r\n", @sent);
(my $stored = join("\r\n", map { my $l = $_; $l =~ s/^\.//; $l } @sent) . "\r\n");

$r = $c->cmd('MAIL FROM:<alice@example.org> BODY=8BITMIME SIZE=' . length $wire);
is $r->{code}, 250, 'MAIL FROM with BODY=8BITMIME and SIZE= accepted';
$r = $c->cmd('RCPT TO:<bob@example.com>');
is $r->{code}, 250, 'first RCPT accepted';
$r = $c->cmd('RCPT TO:<carol@example.net>');
is $r->{code}, 250, 'second RCPT accepted';
$r = $c->cmd('DATA');
is $r->{code}, 354, 'DATA answered 354';
$r = $c->send_data($wire);
is $r->{code}, 250, 'end of data answered 250 (queued)';
like $r->{text}, qr/^2\.\d\.\d\b/, 'queued reply has an enhanced code';
$r = $c->cmd('QUIT');
is $r->{code}, 221, 'QUIT answered 221';
ok $c->closed(5), 'server closes the connection after QUIT';

my @spool = $srv->wait_spool(1, 5);
is scalar @spool, 1, 'one message in the spool';
my $m = $spool[0] || { env => {}, recipients => [], message => '' };
is $m->{env}{'Upesi-Spool'} // '', '1', 'envelope starts with Upesi-Spool: 1';
is $m->{env}{'Queue-Id'}, $m->{id}, 'Queue-Id equals the file name';
is $m->{env}{Sender}, 'alice@example.org', 'envelope sender stored';
is_deeply $m->{recipients}, ['bob@example.com', 'carol@example.net'],
    'every recipient stored, in order';
is $m->{env}{'Client-IP'}, '127.0.0.1', 'client IP stored';
like $m->{env}{'Client-Port'} // '', qr/^\d+$/, 'client port stored';
is $m->{env}{Helo}, 'client.test', 'HELO name stored';
like $m->{env}{Protocol} // '', qr/^ESMTP/, 'protocol is ESMTP after EHLO';
like $m->{env}{Arrival} // '', qr/\d/, 'arrival time stored';

my ($received, $rest) = strip_received($m->{message} // '');
ok defined $received, 'the stored message starts with a Received header';
is $rest, $stored, 'the message is stored byte-exact, dot-unstuffed, after the Received header';
$received //= '';
like $received, qr/^Received: from client\.test\b/, 'Received: from <helo>';
like $received, qr/\[127\.0\.0\.1\]/, 'Received names the client IP';
like $received, qr/\bby mx\.test\.example\b/, 'Received: by <hostname>';
like $received, qr/\bwith ESMTP/, 'Received: with ESMTP';
like $received, qr/\bid \Q$m->{id}\E\b/, 'Received carries the queue id';
like $received, qr/upesi[ \/]v?\Q$version\E/, "received_version = 1: Received names upesi $version";
like $received, qr/;\s*\S.*\b20\d\d\b/, 'Received ends with a date';

# the log: connect with IP and port, the queue id on accept
my ($sid) = map { /\b(\S+): connect 127\.0\.0\.1(?::| port )\d+/ ? $1 : () } $srv->log_lines(qr/: connect 127\.0\.0\.1(?::| port )\d+/);
ok $sid, 'log: connect line with IP and port and a session id';
ok scalar($srv->log_lines(qr/\Q$m->{id}\E/)), 'log: the queue id appears on accept';
ok defined $srv->wait_log(qr/\Q$sid\E.*disconnect/, 5), 'log: a disconnect line for the session'
    if $sid;

# -- swaks, a real client -----------------------------------------------------
my $sw = $srv->swaks_send('--to', 'dave@example.com', '--from', 'eve@example.org',
                          '--helo', 'swaks.test', '--header', 'Subject: from swaks',
                          '--body', "hello from swaks\n.dotted line\n");
is $sw->{exit}, 0, 'swaks delivers a message' or diag $sw->{out};
@spool = $srv->wait_spool(2, 5);
my ($sm) = grep { grep { $_ eq 'dave@example.com' } @{ $_->{recipients} } } @spool;
ok $sm, 'the swaks message is in the spool';
$sm ||= { env => {}, message => '' };
is $sm->{env}{Helo}, 'swaks.test', 'swaks HELO name stored';
like $sm->{message}, qr/^Subject: from swaks\r$/m, 'swaks header stored';
like $sm->{message}, qr/^hello from swaks\r\n\.dotted line\r\n/m,
    'swaks body stored with its dot line restored';

# -- HELO (not EHLO) --------------------------------------------------------
$c = $srv->client;
$r = $c->cmd('HELO old.client.test');
is $r->{code}, 250, 'HELO answered 250';
is scalar @{ $r->{lines} }, 1, 'HELO reply is one line (no extensions)';
$c->cmd('QUIT');

# -- statistics ---------------------------------------------------------------
# three sessions (raw, swaks, HELO), two messages
my $st = $srv->stat('SMTP.') // {};
is $st->{'SMTP.Messages.Accepted'}, 2, 'stat: SMTP.Messages.Accepted = 2';
is $st->{'SMTP.Sessions.Accepted'}, 3, 'stat: SMTP.Sessions.Accepted = 3';
cmp_ok $st->{'SMTP.Command.EHLO'} // 0, '>=', 2, 'stat: SMTP.Command.EHLO counts EHLO';
is $st->{'SMTP.Command.HELO'}, 1, 'stat: SMTP.Command.HELO = 1';
ok !grep({ !/^SMTP\./ } keys %$st), 'stat PREFIX shows only names under the prefix';

$srv->stop_ok;

# -- received_version = 0 -----------------------------------------------------
my $nov = Upesi::Test->new(smtp => { hostname => 'mx.test.example',
                                     received_version => 0 });
$nov->start;
$sw = $nov->swaks_send('--to', 'bob@example.com', '--from', 'alice@example.org',
                       '--helo', 'client.test');
is $sw->{exit}, 0, 'received_version = 0: swaks delivers' or diag $sw->{out};
my ($nm) = $nov->wait_spool(1, 5);
my ($nrcv) = strip_received($nm ? $nm->{message} : '');
ok defined $nrcv, 'received_version = 0: still a Received header';
$nrcv //= '';
like $nrcv, qr/\bby mx\.test\.example\b/, 'received_version = 0: Received still names the host';
unlike $nrcv, qr/\Q$version\E/, "received_version = 0: no version ($version) in Received";
unlike $nrcv, qr/upesi[ \/]v?\d/, 'received_version = 0: no "upesi <version>"';
$nov->stop_ok('upesi (received_version = 0)');

done_testing;
