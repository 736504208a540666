#!/usr/bin/perl
# reload.t - SIGHUP reloads the configuration without dropping sessions: new
# sessions get the new greeting, hostname, local_domains and size limit; a
# session open across the reload finishes with the configuration it started
# with.  A broken configuration is refused and the running one kept.
use strict;
use warnings;
use FindBin;
use lib "$FindBin::Bin/../lib";
use Test::More;
use Upesi::Test;

deadline(90);

my $srv = Upesi::Test->new(smtp => {
    hostname => 'old.example.com',
    greeting => 'old greeting at %s',
    local_domains => 'example.com',
    max_message_size => 100000,
});
$srv->start;

my $old = $srv->client;
is $old->greeting->{code}, 220, 'session A greeted';
like $old->greeting->{text}, qr/^old greeting at /, 'session A: old greeting';
my $r = $old->cmd('EHLO a.client.test');
like $r->{lines}[0], qr/^250-old\.example\.com\b/, 'session A: EHLO names the old hostname';

# -- reload --------------------------------------------------------------------
$srv->set_smtp(hostname => 'new.example.com', greeting => 'new greeting at %s',
               local_domains => 'example.net', max_message_size => 1000);
is $srv->hup, 'done', 'SIGHUP: the log says the reload is done';
ok $srv->running, 'the server is still running after SIGHUP';

my $new = $srv->client;
is $new->greeting ? $new->greeting->{code} : 'none', 220, 'session B greeted after the reload';
like $new->greeting ? $new->greeting->{text} : '', qr/^new greeting at /, 'session B: new greeting';
$r = $new->cmd('EHLO b.client.test');
like $r->{lines}[0], qr/^250-new\.example\.com\b/, 'session B: EHLO names the new hostname';
like join("\n", @{ $r->{lines} }), qr/^250[- ]SIZE 1000$/m, 'session B: SIZE announces the new limit';

# -- session A goes on with its old configuration ------------------------------
$r = $old->cmd('NOOP');
is $r ? $r->{code} : 'none', 250, 'session A was not dropped by the reload';
$r = $old->cmd('EHLO a.client.test');
like $r->{lines}[0], qr/^250-old\.example\.com\b/, 'session A: EHLO after the reload still names the old hostname';
$old->cmd('MAIL FROM:<alice@example.org>');
$r = $old->cmd('RCPT TO:<bob@example.com>');
is $r->{code}, 250, 'session A: old local_domains still accepts example.com';
$r = $old->cmd('DATA');
is $r->{code}, 354, 'session A: DATA';
my $body = "Subject: across a reload\r\n\r\n" . (("y" x 70 . "\r\n") x 70);   # ~5 KB
$r = $old->send_data($body);
is $r->{code}, 250, 'session A: a 5 KB message passes its old 100000-byte limit';
$old->cmd('QUIT');

# -- session B has the new one -------------------------------------------------
$new->cmd('MAIL FROM:<alice@example.org>');
$r = $new->cmd('RCPT TO:<bob@example.com>');
is $r->{code}, 550, 'session B: example.com is no longer local (550)';
$r = $new->cmd('RCPT TO:<bob@example.net>');
is $r->{code}, 250, 'session B: example.net is local now';
$r = $new->cmd('DATA');
is $r->{code}, 354, 'session B: DATA';
$r = $new->send_data($body);
is $r->{code}, 552, 'session B: the same message is over the new 1000-byte limit (552)';
$new->cmd('QUIT');

my @spool = $srv->wait_spool(1, 5);
is scalar @spool, 1, 'one message queued (session A\'s)';

# -- a broken configuration is refused ----------------------------------------
$srv->set_smtp(greeting => 'broken greeting at %s', max_sessions => 'lots');
is $srv->hup, 'failed', 'SIGHUP with a bad value: the log says the reload failed';
like $srv->log_text, qr/smtp\.ini:\d+: .*lots/, 'the failed reload names file:line';
ok $srv->running, 'the server keeps running after a failed reload';
my $c = $srv->client;
like $c->greeting ? $c->greeting->{text} : '', qr/^new greeting at /,
    'a failed reload keeps the last good configuration';
$c->cmd('QUIT');

# `upesi stat` reads smtp.ini to find the control socket: mend it first
$srv->set_smtp(max_sessions => 100);
my $st = $srv->stat('Upesi.Reload.') // {};
is $st->{'Upesi.Reload.Done'}, 1, 'stat: Upesi.Reload.Done = 1';
is $st->{'Upesi.Reload.Failed'}, 1, 'stat: Upesi.Reload.Failed = 1';

$srv->stop_ok;
done_testing;
