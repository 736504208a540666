#!/usr/bin/perl
# settings.t - one settings vocabulary: the same mistake gets the same
# message, with file and line, in smtp.ini and in plugins' inis (a bad
# boolean, a number out of range, an unknown key, all reported in one run
# of -t), at the top of a file or inside a [section] (lua.ini,
# private_lists.ini, dnsbl.ini, queue_forward.ini too); every boolean word is taken everywhere; sizes and durations take
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

# -- lua.ini, private_lists.ini, dnsbl.ini, queue_forward.ini: the same words -------
# A bad boolean, a number out of range, an unknown key, a key in an unknown
# section, a bad choice: at their lines, in the words smtp.ini uses, whether
# the key sits at the top of the file or inside a [section].
my $RANGE = qr/expected a whole number from/;
# (a failing plugin ends -t's run: one plugin per run)
sub check_one {
    my ($plugin, %ini) = @_;
    my $s = Upesi::Test->new(plugins => [$plugin, 'queue_spool'], ini => \%ini);
    my ($exit, $out) = upesi_check($s->conf);
    isnt $exit, 0, "$plugin.ini with mistakes: -t fails";
    return $out;
}
{
    my $out = check_one('lua', 'lua/a.lua' => "-- nothing\n",
        'lua.ini' => "scripts = a.lua\nmax_instructions = 999\nmax_memory = 1x\nfrobnicate = 1\n"
                   . "[extra]\nscripts = a.lua\n");
    like $out, qr/lua\.ini:2: max_instructions: expected a count from 1000 to \d+ \(suffixes k, M, G: thousands, millions, billions\), got '999'$/m,
        'lua.ini: a number out of range, at its line';
    like $out, qr/lua\.ini:3: max_memory: expected a size in bytes from \d+ to \d+ \(suffixes K, M, G\), got '1x'$/m,
        'lua.ini: a bad size, at its line';
    like $out, qr/lua\.ini:4: unknown key 'frobnicate'$/m, 'lua.ini: an unknown key, in the words of smtp.ini';
    like $out, qr/lua\.ini:6: unknown section \[extra\]/m, 'lua.ini: a section where it has none (at its key)';
}
{
    my $out = check_one('private_lists',
        'private_lists.ini' => "[whitelist]\nhosts = 10.0.0.1\naction = maybe\nfrobnicate = 1\n"
                             . "[greylist]\nhosts = 10.0.0.2\n[blacklist]\naction = reject\n"
                             . "message = go\nfrobnicate = 2\nhosts = 10.0.0.3\n");
    like $out, qr/private_lists\.ini:3: \[whitelist\] action: expected one of skip, log, tag, got 'maybe'$/m,
        'private_lists.ini: a bad choice in a section, as a table names it';
    like $out, qr/private_lists\.ini:4: unknown key 'frobnicate' in \[whitelist\]$/m,
        'private_lists.ini: an unknown key in a section';
    like $out, qr/private_lists\.ini:6: unknown section \[greylist\]$/m, 'private_lists.ini: an unknown section';
    like $out, qr/private_lists\.ini:10: unknown key 'frobnicate' in \[blacklist\]$/m,
        'private_lists.ini: the same words in the other section';
    unlike $out, qr/private_lists\.ini:(2|8|9|11):/, 'private_lists.ini: the good keys pass';
}
{
    my $out = check_one('dnsbl',
        'dnsbl.ini' => "zones = bl.example\nexpand_stats = maybe\naction = drop\nfrobnicate = 1\n"
                     . "[bl.example]\nanswers = 127.0.0.2\nfrobnicate = 1\n");
    like $out, qr/dnsbl\.ini:2: expand_stats: $BOOL 'maybe'$/m, 'dnsbl.ini: a bad boolean, at its line';
    like $out, qr/dnsbl\.ini:3: action: expected one of log, tag, reject, got 'drop'$/m, 'dnsbl.ini: a bad choice';
    like $out, qr/dnsbl\.ini:4: unknown key 'frobnicate'$/m, 'dnsbl.ini: an unknown key';
    like $out, qr/dnsbl\.ini:7: unknown key 'frobnicate' in \[bl\.example\]$/m,
        'dnsbl.ini: an unknown key in a [zone] section, in the words of private_lists.ini';
    unlike $out, qr/dnsbl\.ini:6:/, 'dnsbl.ini: [zone] answers passes';
}
{
    my $s = Upesi::Test->new(plugins => ['queue_forward'], ini => {
        'queue_forward.ini' => "downstream = 127.0.0.1:10025\nfsync = maybe\npool_size = 1001\n"
                             . "frobnicate = 1\nconnect_timeout = 0\nmax_queue_time = 2d\n"
                             . "[routes]\nexample.org = 127.0.0.1:10026\n[roots]\nexample.net = 127.0.0.1:10027\n",
    });
    my ($exit, $out) = upesi_check($s->conf);
    isnt $exit, 0, 'queue_forward.ini with mistakes: -t fails';
    like $out, qr/queue_forward\.ini:2: fsync: $BOOL 'maybe'$/m, 'queue_forward.ini: a bad boolean, at its line';
    like $out, qr/queue_forward\.ini:3: pool_size: $RANGE 0 to 1000, got '1001'$/m,
        'queue_forward.ini: a number out of range, at its line';
    like $out, qr/queue_forward\.ini:4: unknown key 'frobnicate'$/m, 'queue_forward.ini: an unknown key';
    like $out, qr/queue_forward\.ini:5: connect_timeout: expected a duration from 0\.001 to 34560000 seconds \(30, 1\.5, 500ms, 2m, 1h, 5d\), got '0'$/m,
        'queue_forward.ini: a duration out of range, in the words of smtp.ini';
    unlike $out, qr/queue_forward\.ini:[68]:/, 'queue_forward.ini: 2d and a [routes] line pass';
    like $out, qr/queue_forward\.ini:10: unknown section \[roots\]$/m, 'queue_forward.ini: an unknown section (at its key)';
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
