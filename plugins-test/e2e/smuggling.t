#!/usr/bin/perl
# smuggling.t - SMTP smuggling (CVE-2023-51764 family): inside DATA only
# CRLF "." CRLF ends the message.  Each attempt hides a second transaction
# behind a fake end of data; a vulnerable server would answer it and queue
# a second message from evil@attacker.test.  We check the replies, what the
# spool holds, and the stored bytes: bare LF and bare CR are stored as CRLF
# (host/data_reader.h), so the fake marker survives as an ordinary line.
use strict;
use warnings;
use FindBin;
use lib "$FindBin::Bin/../lib";
use Test::More;
use Upesi::Test;

deadline(90);

my $srv = Upesi::Test->new(smtp => { pipelining => 1 });
$srv->start;

my $smuggled = "MAIL FROM:<evil\@attacker.test>\r\n"
             . "RCPT TO:<victim\@example.com>\r\n"
             . "DATA\r\n"
             . "Subject: smuggled\r\n\r\nsmuggled body";

# name => [fake end of data, stored forms it may take]
# After a real CRLF a "." line is unstuffed (RFC 5321 4.5.2: a period and
# more characters on the line): ".\n" then reads as "\r\n".
my @attempts = (
    ['LF.LF',    "\n.\n",     ["\r\n.\r\n"]],
    ['CR.CR',    "\r.\r",     ["\r\n.\r\n"]],
    ['LF.CRLF',  "\n.\r\n",   ["\r\n.\r\n"]],
    ['CR.CRLF',  "\r.\r\n",   ["\r\n.\r\n"]],
    ['CR.LF',    "\r.\n",     ["\r\n.\r\n"]],
    ['LF.CR',    "\n.\r",     ["\r\n.\r\n"]],
    ['CRLF.LF',  "\r\n.\n",   ["\r\n\r\n", "\r\n.\r\n"]],
    ['CRLF.CR',  "\r\n.\r",   ["\r\n\r\n", "\r\n.\r\n"]],
);

my $count = 0;
for my $a (@attempts) {
    my ($name, $fake, $forms) = @$a;
    my $c = $srv->client;
    my $r = $c->cmd('EHLO client.test');
    is $r->{code}, 250, "$name: EHLO";
    $c->send_raw("MAIL FROM:<alice\@example.org>\r\nRCPT TO:<bob\@example.com>\r\nDATA\r\n");
    my @r = $c->read_replies(3);
    is_deeply [map { $_->{code} } @r], [250, 250, 354], "$name: MAIL, RCPT, DATA";

    my $head = "Subject: attempt $name\r\n\r\nfirst line";
    $c->send_raw($head . $fake . $smuggled . "\r\n.\r\nQUIT\r\n");
    @r = $c->read_replies(6, 5);
    is_deeply [map { $_->{code} } @r], [250, 221],
        "$name: only the real CRLF.CRLF ends the data (one 250, then QUIT's 221)";
    ok $c->closed(5), "$name: closed after QUIT";
    $count++;

    my @spool = $srv->wait_spool($count, 5);
    is scalar @spool, $count, "$name: exactly one message queued for the session";
    ok !grep({ ($_->{env}{Sender} // '') eq 'evil@attacker.test' } @spool),
        "$name: no message from the smuggled sender";
    my ($m) = grep { ($_->{message} // '') =~ /Subject: attempt \Q$name\E\r\n/ } @spool;
    ok $m, "$name: the message is in the spool";
    $m ||= { recipients => [], message => '' };
    is_deeply $m->{recipients}, ['bob@example.com'], "$name: only the real recipient";
    my (undef, $body) = strip_received($m->{message});
    my @want = map { $head . $_ . $smuggled . "\r\n" } @$forms;
    ok scalar(grep { $body eq $_ } @want),
        "$name: the fake end of data is stored as an ordinary line, CRLF-terminated"
        or diag explain { got => $body, want_one_of => \@want };
}

# The real marker, for contrast: it ends the data, and what follows is read
# as commands.
{
    my $c = $srv->client;
    $c->cmd('EHLO client.test');
    $c->send_raw("MAIL FROM:<alice\@example.org>\r\nRCPT TO:<bob\@example.com>\r\nDATA\r\n");
    my @r = $c->read_replies(3);
    is_deeply [map { $_->{code} } @r], [250, 250, 354], 'CRLF.CRLF: MAIL, RCPT, DATA';
    $c->send_raw("Subject: real end\r\n\r\nbody\r\n.\r\nNOOP\r\nQUIT\r\n");
    @r = $c->read_replies(3, 5);
    is_deeply [map { $_->{code} } @r], [250, 250, 221],
        'CRLF.CRLF: ends the data; the NOOP and QUIT after it are commands';
    my @spool = $srv->wait_spool($count + 1, 5);
    my ($m) = grep { ($_->{message} // '') =~ /Subject: real end/ } @spool;
    my (undef, $body) = strip_received($m ? $m->{message} : '');
    is $body, "Subject: real end\r\n\r\nbody\r\n", 'CRLF.CRLF: stored up to the marker, nothing after it';
}

# A fake marker as the very first line of the data.
{
    my $c = $srv->client;
    $c->cmd('EHLO client.test');
    $c->send_raw("MAIL FROM:<alice\@example.org>\r\nRCPT TO:<bob\@example.com>\r\nDATA\r\n");
    my @r = $c->read_replies(3);
    $c->send_raw(".\n" . $smuggled . "\r\n.\r\nQUIT\r\n");
    @r = $c->read_replies(6, 5);
    is_deeply [map { $_->{code} } @r], [250, 221],
        '.LF as the first line of data does not end it';
    my @spool = $srv->wait_spool($count + 2, 5);
    ok !grep({ ($_->{env}{Sender} // '') eq 'evil@attacker.test' } @spool),
        '.LF first line: no message from the smuggled sender';
}

$srv->stop_ok;
done_testing;
