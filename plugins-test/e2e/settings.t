#!/usr/bin/perl
# settings.t - one settings vocabulary: the same mistake gets the same
# message, with file and line, in smtp.ini and in plugins' inis (a bad
# boolean, a number out of range, an unknown key, all reported in one run
# of -t); every boolean word is taken everywhere; sizes and durations take
# their units.
use strict;
use warnings;
use FindBin;
use lib "$FindBin::Bin/../lib";
use Test::More;
use Upesi::Test;

deadline(120);

my $BOOL = qr/expected a boolean \(0\/1, yes\/no, on\/off, true\/false\), got/;

# -- smtp.ini: three mistakes, three lines, one run ---------------------------------
{
    my $s = Upesi::Test->new;
    my $ini = $s->conf . '/smtp.ini';
    open my $fh, '>>', $ini or die "$ini: $!";
    print $fh "pipelining = maybe\nmax_sessions = 0\nmax_sesions = 5\n";
    close $fh;
    my @lines = split /\n/, slurp($ini);
    my $n = scalar @lines;
    my ($exit, $out) = upesi_check($s->conf);
    isnt $exit, 0, 'smtp.ini with mistakes: -t fails';
    like $out, qr/\Q$ini\E:@{[$n-2]}: pipelining: $BOOL 'maybe'$/m, 'smtp.ini: a bad boolean, at its line';
    like $out, qr/\Q$ini\E:@{[$n-1]}: max_sessions: expected a whole number from 1 to 1000000, got '0'$/m,
        'smtp.ini: a number out of range, at its line';
    like $out, qr/\Q$ini\E:$n: unknown key 'max_sesions'$/m, 'smtp.ini: an unknown key, at its line';
}

# -- two plugins, the same messages ---------------------------------------------
for my $p (['strict821', "; strict\naddress_syntax = maybe\n", 'address_syntax'],
           ['queue_spool', "; spool\nfsync = maybe\n", 'fsync']) {
    my ($name, $text, $key) = @$p;
    my $s = Upesi::Test->new(plugins => [$name eq 'queue_spool' ? () : $name, 'queue_spool'],
                             ini => { "$name.ini" => $text . "max_batch = 0\nfrobnicate = 1\n" });
    my ($exit, $out) = upesi_check($s->conf);
    isnt $exit, 0, "$name.ini with mistakes: -t fails";
    like $out, qr/\Q$name\E\.ini:2: $key: $BOOL 'maybe'$/m, "$name.ini: a bad boolean, at its line";
    if ($name eq 'queue_spool') {
        like $out, qr/queue_spool\.ini:3: max_batch: expected a whole number from 1 to 65536, got '0'$/m,
            "$name.ini: a number out of range, at its line";
    } else {
        like $out, qr/strict821\.ini:3: unknown key 'max_batch'$/m, "$name.ini: a key of another plugin is unknown here";
    }
    like $out, qr/\Q$name\E\.ini:4: unknown key 'frobnicate'$/m, "$name.ini: an unknown key, at its line";
}
{
    my $s = Upesi::Test->new(plugins => ['max_rcpt', 'queue_spool'],
                             ini => { 'max_rcpt.ini' => "max = 1000001\n" });
    my ($exit, $out) = upesi_check($s->conf);
    like $out, qr/max_rcpt\.ini:1: max: expected a whole number from 1 to 1000000, got '1000001'$/m,
        'max_rcpt.ini: a number out of range, at its line';
}

# -- every boolean word, everywhere -------------------------------------------------
for my $w (qw(0 1 yes no on off true false YES Off True)) {
    my $s = Upesi::Test->new(smtp => { pipelining => $w, vrfy => $w },
                             plugins => ['strict821', 'connection_checks', 'queue_spool'],
                             ini => { 'strict821.ini' => "line_syntax = $w\n",
                                      'connection_checks.ini' => "verify_host_name = $w\n",
                                      'queue_spool.ini' => "fsync = $w\n" });
    my ($exit, $out) = upesi_check($s->conf);
    is $exit, 0, "'$w' is a boolean in smtp.ini, strict821.ini, connection_checks.ini, queue_spool.ini" or diag $out;
}

# -- units ----------------------------------------------------------------------------
{
    my $s = Upesi::Test->new(smtp => { max_message_size => '10M', plugin_timeout => '1m',
                                       dns_timeout => '500ms' });
    my ($exit, $out) = upesi_check($s->conf);
    is $exit, 0, 'max_message_size = 10M, plugin_timeout = 1m, dns_timeout = 500ms' or diag $out;
    $s->start;
    my $c = $s->client;
    my $r = $c->cmd('EHLO units.test');
    like join("\n", @{ $r->{lines} || [] }) . ($r->{text} // ''), qr/SIZE 10485760/, 'EHLO advertises SIZE 10485760 (10M)';
    $c->close;
    $s->stop;
}

done_testing();
