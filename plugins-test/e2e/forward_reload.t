#!/usr/bin/perl
# forward_reload.t - queue_forward adopts a configuration generation only
# when the host commits it, and one a reload adds starts its queue runner
# (DESIGN.md 3, docs/plugins.md "generations").
#
#  refused reload: queue_forward.ini names a new downstream, a later
#    plugin's ini is broken, the reload is refused.  A worker started after
#    that (the old one killed) must still deliver to the old downstream:
#    the refused settings never reached the runner.
#  added by reload: conf/plugins switches from queue_spool to
#    `queue_forward` (mode = spool) by SIGHUP; a message accepted after it
#    is delivered downstream by the runner the reload started.
use strict;
use warnings;
use FindBin;
use lib "$FindBin::Bin/../lib";
use Test::More;
use Upesi::Test;
use Upesi::Forward qw(send_msg wait_for nspool);

need_built('plugins/queue_forward.so', 'plugins/queue_spool.so',
           'plugins-test/plugins/tester.so');
deadline(180);

my $data = "From: alice\@example.org\r\nSubject: generations\r\n\r\nhello\r\n";

sub downstream {
    my $d = Upesi::Test->new(
        smtp    => { local_domains => 'example.com,example.org', workers => 1 },
        plugins => ['queue_spool']);
    $d->start;
    return $d;
}

sub fwd_ini {
    my ($port) = @_;
    return "mode = spool\ndownstream = 127.0.0.1:$port\nscan_interval = 1s\n"
         . "retry_min = 1s\nretry_max = 2s\n";
}

# -- a reload refused by a later plugin ---------------------------------------
{
    my $old = downstream();
    my $new = downstream();
    my $f = Upesi::Test->new(
        smtp    => { local_domains => 'example.com,example.org', workers => 1,
                     plugin_timeout => 30 },
        plugins => ['queue_forward', 'tester'],
        ini     => { 'queue_forward.ini' => fwd_ini($old->port),
                     'tester.ini' => "[rcpt]\nverdict = CONT\n" });
    $f->start;
    my $r = send_msg($f, from => 'alice@example.org', to => ['bob@example.com'],
                     data => $data);
    is $r ? $r->{code} : 'none', 250, 'refused reload: first message accepted';
    ok wait_for(15, sub { nspool($old) == 1 }), 'it reaches the old downstream';

    $f->write_conf('queue_forward.ini', fwd_ini($new->port));
    $f->write_conf('tester.ini', "no_such_key = 1\n");
    is $f->hup, 'failed', 'a later plugin refuses the new generation';

    # a worker started now inherits what the supervisor adopted
    my ($line) = $f->log_lines(qr/worker 0 started \(pid \d+\)/);
    my ($wpid) = ($line // '') =~ /pid (\d+)/;
    ok $wpid, 'the worker\'s pid is in the log';
    kill 'KILL', $wpid if $wpid;
    ok wait_for(15, sub { $f->log_lines(qr/worker 0 started/) >= 2 }),
        'the supervisor starts a new worker';
    ok wait_for(10, sub { $f->client->greeting }), 'and it answers';

    $r = send_msg($f, from => 'alice@example.org', to => ['carol@example.com'],
                  data => $data);
    is $r ? $r->{code} : 'none', 250, 'second message accepted';
    ok wait_for(15, sub { nspool($old) == 2 }),
        'it goes to the old downstream: the refused settings were not adopted';
    is nspool($new), 0, 'nothing reached the downstream of the refused reload';
    $f->stop_ok;
    $old->stop_ok;
    $new->stop_ok;
}

# -- queue_forward added by a reload -------------------------------------------
{
    my $down = downstream();
    my $f = Upesi::Test->new(
        smtp    => { local_domains => 'example.com,example.org', workers => 1,
                     plugin_timeout => 30 },
        plugins => ['queue_spool']);
    $f->start;
    $f->write_conf('queue_forward.ini', fwd_ini($down->port));
    $f->set_plugins('queue_forward');
    is $f->hup, 'done', 'reload: queue_spool replaced by queue_forward (spool)';
    my $r = send_msg($f, from => 'alice@example.org', to => ['bob@example.com'],
                     data => $data);
    is $r ? $r->{code} : 'none', 250, 'a message accepted after the reload';
    ok wait_for(15, sub { nspool($down) == 1 }),
        'the runner the reload started delivers it downstream'
        or diag $f->log_tail(20);
    $f->stop_ok;
    $down->stop_ok;
}

done_testing;
