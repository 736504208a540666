package Upesi::Forward;

# Upesi::Forward - helpers shared by the queue_forward end-to-end tests
# (forward.t, forward_tls.t): a front upesi that forwards, one SMTP
# transaction, waiting, counting a downstream's spool and running a
# control command.
#
#   use Upesi::Test;
#   use Upesi::Forward;
#   my $f = front("downstream = 127.0.0.1:$port\n");   # smtp.ini overrides
#   $f->start;
#   my $r = send_msg($f, from => 'a@example.org', to => ['b@example.com'],
#                    data => $data);
#   ok(wait_for(5, sub { nspool($down) == 1 }), 'delivered');
#   my $out = ctl($f, 'queue');
#
# How it fails: as Upesi::Test (a server that does not start dies); a
# transaction that goes wrong returns the reply that stopped it (or undef).

use strict;
use warnings;

use Exporter qw(import);
use Time::HiRes qw(sleep time);
use Upesi::Test;

our @EXPORT = qw(front send_msg wait_for nspool ctl);

# A front upesi with queue_forward and queue_forward.ini = $ini; %smtp
# adds to or overrides its smtp.ini.
sub front {
    my ($ini, %smtp) = @_;
    return Upesi::Test->new(
        smtp    => { local_domains => 'example.com,example.org',
                     plugin_timeout => 30, workers => 1, %smtp },
        plugins => ['queue_forward'],
        ini     => { 'queue_forward.ini' => $ini });
}

# one transaction; returns the final reply hash (or undef).  mail_params
# => 'RET=HDRS ENVID=x' and rcpt_params => { addr => 'NOTIFY=NEVER' } add
# ESMTP parameters.
sub send_msg {
    my ($srv, %m) = @_;
    my $c = $srv->client;
    my $r = $c->cmd('EHLO client.test.example');
    return $r unless $r && $r->{code} == 250;
    my $mp = defined $m{mail_params} ? " $m{mail_params}" : '';
    $r = $c->cmd("MAIL FROM:<$m{from}>$mp");
    return $r unless $r && $r->{code} == 250;
    for my $to (@{ $m{to} }) {
        my $rp = $m{rcpt_params} && defined $m{rcpt_params}{$to}
               ? " $m{rcpt_params}{$to}" : '';
        $r = $c->cmd("RCPT TO:<$to>$rp");
        return $r unless $r && $r->{code} == 250;
    }
    $r = $c->cmd('DATA');
    return $r unless $r && $r->{code} == 354;
    (my $wire = $m{data}) =~ s/^\./../mg;
    $c->send_raw($wire . ".\r\n");
    $r = $c->read_reply(60 * $SLOW);
    $c->cmd('QUIT');
    $c->close;
    return $r;
}

# Poll $cond every 50 ms for up to $secs (scaled by $SLOW): true once it is.
sub wait_for {
    my ($secs, $cond) = @_;
    my $end = time + $secs * $SLOW;
    while (time < $end) {
        return 1 if $cond->();
        sleep 0.05;
    }
    return $cond->();
}

# messages in a server's spool
sub nspool { my @m = $_[0]->spool; return scalar @m }

# `upesi -c CONF @cmd` against a running server: its output
sub ctl {
    my ($srv, @cmd) = @_;
    my ($exit, $out) = Upesi::Test::run_cmd(20, $UPESI, '-c', $srv->conf,
                                            @cmd);
    return $out;
}

1;
