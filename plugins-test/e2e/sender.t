#!/usr/bin/perl
# sender.t - the sender plugin's allow and deny lists against the real host
# (docs/plugins/sender.md): 554 5.7.1 at MAIL FROM for a denied sender or,
# with an allow list, for anyone not on it; Allow wins; the null sender is
# always allowed; bad items fail -t.  (verify_domain needs DNS in the
# plugin ABI and is not tested here.)
use strict;
use warnings;
use FindBin;
use lib "$FindBin::Bin/../lib";
use Test::More;
use Upesi::Test;

deadline(90);

sub server {
    my ($ini) = @_;
    my $srv = Upesi::Test->new(plugins => ['sender', 'queue_spool'],
                               smtp => { error_limit => 1000 },
                               ini => { 'sender.ini' => $ini });
    $srv->start;
    return $srv;
}

sub mail {
    my ($c, $from) = @_;
    my $r = $c->cmd("MAIL FROM:<$from>");
    $c->cmd('RSET');
    return $r ? "$r->{code} " . ($r->{enhanced} // '') : 'no reply';
}

{
    my $srv = server("deny = spammer\@example.net, *\@junk.example, *.bulk.example\n" .
                     "deny = \@blocked.example\n");
    my $c = $srv->client;
    $c->cmd('EHLO client.test');
    my $r = $c->cmd('MAIL FROM:<spammer@example.net>');
    is "$r->{code} $r->{enhanced}", '554 5.7.1', 'deny: a listed address: 554 5.7.1';
    like $r->{text}, qr/Mail from <spammer\@example\.net> rejected for policy reasons/, '  the Domino text';
    $c->cmd('RSET');
    is mail($c, 'SPAMMER@Example.NET'), '554 5.7.1', 'deny: case-insensitive';
    is mail($c, 'friend@example.net'), '250 2.1.0', 'deny: another address at the domain is fine';
    is mail($c, 'anyone@junk.example'), '554 5.7.1', 'deny: *@domain';
    is mail($c, 'anyone@blocked.example'), '554 5.7.1', 'deny: @domain';
    is mail($c, 'x@mx.bulk.example'), '554 5.7.1', 'deny: *.domain covers subdomains';
    is mail($c, 'x@bulk.example'), '250 2.1.0', 'deny: *.domain is not the domain itself';
    is mail($c, ''), '250 2.1.0', 'the null sender is always allowed';
    my $st = $srv->stat('SMTP.Sender');
    is $st && $st->{'SMTP.Sender.Denied'}, 5, 'SMTP.Sender.Denied counts refusals' or diag explain $st;
    $srv->stop_ok('deny');
}
{
    my $srv = server("allow = example.org, boss\@partner.example\ndeny = mallory\@example.org\n");
    my $c = $srv->client;
    $c->cmd('EHLO client.test');
    is mail($c, 'alice@example.org'), '250 2.1.0', 'allow: a listed domain';
    is mail($c, 'boss@partner.example'), '250 2.1.0', 'allow: a listed address';
    is mail($c, 'clerk@partner.example'), '554 5.7.1', 'allow: anyone else is refused';
    is mail($c, 'mallory@example.org'), '250 2.1.0', 'allow and deny both: Allow wins';
    is mail($c, ''), '250 2.1.0', 'allow: the null sender still passes';
    $srv->stop_ok('allow');
}
for my $bad (['deny = a@b@c', qr/deny: 'a\@b\@c' is not an address or domain/],
             ['allow = <x@y>', qr/allow: '<x\@y>'/],
             ['verify_domain = 1', qr/verify_domain: not available yet/],
             ['block = x', qr/unknown key 'block'/]) {
    my $s = Upesi::Test->new(plugins => ['sender', 'queue_spool'],
                             ini => { 'sender.ini' => "deny = x\@y.example\n$bad->[0]\n" });
    my ($exit, $out) = upesi_check($s->conf);
    isnt $exit, 0, "-t refuses '$bad->[0]'";
    like $out, qr/sender\.ini:2: .*$bad->[1]/, '  with sender.ini:2' or diag $out;
}

done_testing;
