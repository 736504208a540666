#!/usr/bin/perl
# config_show.t - `upesi -c DIR config [KEY]` (postconf's view): every key
# of smtp.ini and of each listed plugin's ini, with its value and where it
# comes from: "# default", "# FILE:LINE", or "# -o"; a list key's lines add
# up; one KEY alone; a KEY nobody has is an error.
use strict;
use warnings;
use FindBin;
use lib "$FindBin::Bin/../lib";
use Test::More;
use Upesi::Test;

deadline(60);

sub line_of {
    my ($file, $re) = @_;
    my $n = 0;
    for (split /\n/, slurp($file) // '') {
        $n++;
        return $n if $_ =~ $re;
    }
    return undef;
}

my $s = Upesi::Test->new(smtp => { hostname => 'mx.config.test' },
                         plugins => ['max_rcpt', 'private_lists', 'queue_spool'],
                         ini => { 'queue_spool.ini' => "; spool\nfsync = off\n",
                                  'max_rcpt.ini' => "max = 7\n",
                                  'private_lists.ini' => "[whitelist]\nhosts = 10.0.0.1\n" });
my $ini = $s->conf . '/smtp.ini';
open my $fh, '>>', $ini or die "$ini: $!";
print $fh "local_domains = a.test\nlocal_domains = b.test\n";
close $fh;
my $host_line = line_of($ini, qr/^hostname = /);
my $ld_line = line_of($ini, qr/^local_domains = b\.test/);

my ($exit, $out) = Upesi::Test::run_cmd(30, $UPESI, '-c', $s->conf, '-o', 'error_limit=5', 'config');
is $exit, 0, 'upesi config exits 0' or diag $out;
like $out, qr/^hostname = mx\.config\.test\s+# \Q$ini\E:$host_line$/m, 'a key set in smtp.ini: its value and file:line';
like $out, qr/^dns_timeout = 5\s+# default$/m, 'a key left alone: its default';
like $out, qr/^log_syslog = 0\s+# default$/m, '... log_syslog 0';
like $out, qr/^max_command_length = 1200\s+# \Q$ini\E:\d+$/m, 'a key the file sets to its default value: the file';
like $out, qr/^error_limit = 5\s+# -o$/m, 'a key set by -o says so';
like $out, qr/^local_domains = (?:\S+, )*a\.test, b\.test\s+# \Q$ini\E:$ld_line$/m, 'a list key: its lines add up, the last line named';
like $out, qr/^queue_spool\.fsync = off\s+# \S+queue_spool\.ini:2$/m, "a plugin's key: PLUGIN.KEY, its file and line";
like $out, qr/^queue_spool\.max_batch = 256\s+# default$/m, "a plugin's default";
like $out, qr/^max_rcpt\.max = 7\s+# \S+max_rcpt\.ini:1$/m, 'max_rcpt.max';
like $out, qr/^max_rcpt\.code = 552\s+# default$/m, 'max_rcpt.code defaults to 552';
like $out, qr/^private_lists\.whitelist\.hosts = 10\.0\.0\.1\s+# \S+private_lists\.ini:2$/m,
    'a key in a section: PLUGIN.SECTION.KEY';
my @smtp = grep { /^[a-z_]+ = / } split /\n/, $out;
ok @smtp >= 30, 'every smtp.ini key is listed (' . scalar(@smtp) . ')';

($exit, $out) = Upesi::Test::run_cmd(30, $UPESI, '-c', $s->conf, 'config', 'max_rcpt.max');
is $exit, 0, 'config KEY exits 0';
my @lines = grep { /^[a-z_.]+ = / } split /\n/, $out;
is scalar(@lines), 1, '... and prints one line';
like $lines[0] // '', qr/^max_rcpt\.max = 7 /, '... the key asked for';

($exit, $out) = Upesi::Test::run_cmd(30, $UPESI, '-c', $s->conf, 'config', 'max_sesions');
isnt $exit, 0, 'config with a key nobody has fails';
like $out, qr/no key 'max_sesions'/, '... saying so';

# a broken configuration is reported as -t would, not shown
spit($s->conf . '/max_rcpt.ini', "max = 0\n");
($exit, $out) = Upesi::Test::run_cmd(30, $UPESI, '-c', $s->conf, 'config');
isnt $exit, 0, 'config of a broken configuration fails';
like $out, qr/max_rcpt\.ini:1: max: expected a whole number/, '... with the error at file:line';

done_testing();
