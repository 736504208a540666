#!/usr/bin/perl
# deny_groups.t - mail to staff@example.com (a group in the shipped
# conf/directory) under each deny_groups mode, from an external host
# (127.0.0.3, not allowed to relay) and an internal one (127.0.0.2, in the
# relay plugin's allow_hosts); persons are never refused; a configuration
# with directory missing or after deny_groups is caught (docs/plugins/
# deny_groups.md).
use strict;
use warnings;
use FindBin;
use lib "$FindBin::Bin/../lib";
use Test::More;
use Upesi::Test;

deadline(120);

sub server {
    my ($mode, @plugins) = @_;
    @plugins = ('directory', 'deny_groups', 'relay', 'queue_spool') unless @plugins;
    my $srv = Upesi::Test->new(plugins => \@plugins,
                               ini => { 'deny_groups.ini' => defined $mode ? "mode = $mode\n" : '',
                                        'relay.ini' => "allow_hosts = 127.0.0.2\n" });
    $srv->start;
    return $srv;
}

sub rcpt {
    my ($srv, $ip, $to) = @_;
    my $c = $srv->client(local => $ip);
    $c->cmd('EHLO client.test');
    $c->cmd('MAIL FROM:<sender@example.org>');
    my $r = $c->cmd("RCPT TO:<$to>");
    $c->close;
    return $r;
}

sub code_of { my ($r) = @_; $r ? "$r->{code} " . ($r->{enhanced} // '') : 'no reply' }

my %expect = (          # mode => [external, internal] for staff@example.com
    0 => ['250 2.1.5', '250 2.1.5'],
    1 => ['550 5.7.1', '250 2.1.5'],
    2 => ['550 5.7.1', '550 5.7.1'],
);
for my $mode (undef, 0, 1, 2) {
    my $m = $mode // 0;
    my $what = defined $mode ? "mode = $mode" : 'no mode (default 0)';
    my $srv = server($mode);
    my $r = rcpt($srv, '127.0.0.3', 'staff@example.com');
    is code_of($r), $expect{$m}[0], "$what: staff\@example.com from an external host: $expect{$m}[0]";
    like $r->{text}, qr/<staff\@example\.com>: mail to groups is rejected for policy reasons/,
        '  "rejected for policy reasons"' if $expect{$m}[0] =~ /^550/;
    is code_of(rcpt($srv, '127.0.0.2', 'staff@example.com')), $expect{$m}[1],
        "$what: staff\@example.com from an internal host (allow_hosts): $expect{$m}[1]";
    is code_of(rcpt($srv, '127.0.0.3', 'bob@example.com')), '250 2.1.5', "$what: a person from an external host: 250";
    is code_of(rcpt($srv, '127.0.0.2', 'bob@example.com')), '250 2.1.5', "$what: a person from an internal host: 250";
    my $sw = swaks($srv->port, '--local-interface', '127.0.0.3', '--to', 'staff@example.com',
                   '--from', 'someone@example.org');
    if ($m == 0) {
        is $sw->{exit}, 0, "$what: swaks to staff\@example.com delivers" or diag $sw->{out};
    } else {
        like $sw->{out}, qr/<\*\* +550 5\.7\.1 <staff\@example\.com>: mail to groups/, "$what: swaks to staff\@example.com refused at RCPT";
    }
    $srv->stop_ok($what);
}

# -- without the relay plugin every host is external -----------------------------
{
    my $srv = server(1, 'directory', 'deny_groups', 'queue_spool');
    is code_of(rcpt($srv, '127.0.0.2', 'staff@example.com')), '550 5.7.1', 'mode = 1 without relay: 127.0.0.2 is external';
    $srv->stop;
}

# -- bad settings --------------------------------------------------------------------
for my $bad (['mode = 3', qr/mode: expected a whole number from 0 to 2, got '3'/], ['mode = on', qr/mode: expected a whole number from 0 to 2, got 'on'/],
             ['groups = 1', qr/unknown key 'groups'/]) {
    my $s = Upesi::Test->new(plugins => ['directory', 'deny_groups', 'queue_spool'],
                             ini => { 'deny_groups.ini' => "mode = 1\n$bad->[0]\n" });
    my ($exit, $out) = upesi_check($s->conf);
    isnt $exit, 0, "-t refuses '$bad->[0]'";
    like $out, qr/deny_groups\.ini:2: .*$bad->[1]/, '  with deny_groups.ini:2' or diag $out;
}

# -- directory must come first (api->plugin_position) ------------------------------
for my $order (['deny_groups', 'directory', 'queue_spool'], ['deny_groups', 'queue_spool']) {
    my $s = Upesi::Test->new(plugins => $order, ini => { 'deny_groups.ini' => "mode = 2\n" });
    my ($exit, $out) = upesi_check($s->conf);
    isnt $exit, 0, "-t refuses deny_groups before directory (@$order)";
    like $out, qr/deny_groups.*needs the directory plugin before deny_groups/, '  with a clear message';
}
{
    my $s = Upesi::Test->new(plugins => ['deny_groups', 'queue_spool'], ini => { 'deny_groups.ini' => "mode = 0\n" });
    my ($exit, $out) = upesi_check($s->conf);
    is $exit, 0, 'mode = 0 does not need the directory' or diag $out;
}
{
    my $s = Upesi::Test->new(plugins => ['directory', 'deny_groups', 'queue_spool']);
    my ($exit, $out) = upesi_check($s->conf);
    is $exit, 0, 'the shipped conf/deny_groups.ini passes -t' or diag $out;
}

done_testing;
