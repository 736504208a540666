#!/usr/bin/perl
# cli.t - the command line an administrator reaches for: --help,
# --version and `help` exit 0; `upesi plugins` shows the running server's
# live chain (else the configuration's), `plugins --available` what
# plugin_dir holds with version and ABI; -t's checks of mistakes that load
# fine (no queue plugin: error; queue plugin not last, an ini file for a
# plugin not in the chain: warnings); clear refusals (a text file named
# x.so, a missing -c directory).
use strict;
use warnings;
use FindBin;
use lib "$FindBin::Bin/../lib";
use Test::More;
use Upesi::Test;

deadline(90);

for my $args (['--help'], ['-h'], ['help']) {
    my ($exit, $out) = Upesi::Test::run_cmd(10, $UPESI, @$args);
    is $exit, 0, "upesi @$args exits 0";
    like $out, qr/^usage: upesi/m, '... and prints the usage';
    like $out, qr/-o KEY=VALUE/, '... which names -o';
}
for my $args (['--version'], ['-V'], ['version']) {
    my ($exit, $out) = Upesi::Test::run_cmd(10, $UPESI, @$args);
    is $exit, 0, "upesi @$args exits 0";
    like $out, qr/^upesi \d+\.\d+\.\d+ \(plugin ABI \d+\.\d+\)$/m, '... the version and ABI';
}
{
    my ($exit, $out) = Upesi::Test::run_cmd(10, $UPESI, '--frobnicate');
    is $exit, 2, 'an unknown long option exits 2';
    like $out, qr/unrecognized option/, '... naming it';
}

# -- the man page lists every option and subcommand -----------------------
# each as a .TP item of its own: ".B \-t", ".BI \-c " dir"", ".B plugins"
{
    my $man = slurp("$ROOT/docs/upesi.8") // '';
    $man =~ s/\\-/-/g;
    $man =~ s/\\f[BIRP]//g;
    my %item;
    for my $tag ($man =~ /^\.TP\n\.(?:B|BI|BR)\s+([^\n]+)/mg) {
        $item{$_} = 1 for grep { length } split /[\s",|\[\]]+/, $tag;
    }
    for my $o (qw(-c -o -t -h -V --help --version --dump-settings -bh)) {
        ok $item{$o}, "upesi.8 has an item for the option $o";
    }
    for my $c (qw(stat plugins config queue release help version)) {
        ok $item{$c}, "upesi.8 has an item for the subcommand $c";
    }
}

# -- clear refusals -------------------------------------------------------
{
    my ($exit, $out) = Upesi::Test::run_cmd(10, $UPESI, '-c', '/nonexistent-upesi-conf', '-t');
    isnt $exit, 0, '-c of a missing directory fails';
    like $out, qr{configuration directory /nonexistent-upesi-conf: No such file or directory},
        '... saying the directory is missing' or diag $out;
    unlike $out, qr/smtp\.ini:0/, '... not as smtp.ini:0';
}
{
    my $s = Upesi::Test->new(plugins => ['textfile', 'queue_spool']);
    unlink $s->plugdir . '/textfile.so';
    spit($s->plugdir . '/textfile.so', "this is not a plugin\n");
    my ($exit, $out) = upesi_check($s->conf);
    isnt $exit, 0, 'a text file named textfile.so in the chain fails -t';
    like $out, qr/textfile\.so: not a shared object/, '... as "not a shared object"' or diag $out;
    unlike $out, qr/file not found/i, '... not "file not found"';
}

# -- -t: mistakes that load fine --------------------------------------------
{
    my $s = Upesi::Test->new(plugins => ['max_rcpt']);
    my ($exit, $out) = upesi_check($s->conf);
    is $exit, 1, 'a chain without a queue plugin: -t exits 1';
    like $out, qr/ERR .*plugins: no queue plugin in the chain/, '... an error naming the plugins file' or diag $out;
}
{
    my $s = Upesi::Test->new(plugins => ['queue_spool', 'max_rcpt']);
    my ($exit, $out) = upesi_check($s->conf);
    is $exit, 0, 'a queue plugin not last: -t still passes';
    like $out, qr/WARNING .*queue plugin 'queue_spool' is not last.*'max_rcpt'/, '... with a warning' or diag $out;
}
{
    my $s = Upesi::Test->new(plugins => ['queue_spool'],
                             ini => { 'max_rpct.ini' => "max = 5\n" });
    my ($exit, $out) = upesi_check($s->conf);
    is $exit, 0, 'an ini file for a plugin not in the chain: -t passes';
    like $out, qr/WARNING .*max_rpct\.ini: plugin 'max_rpct' is not in/, '... with a warning naming it' or diag $out;
    unlike $out, qr/WARNING .*queue_spool\.ini/, '... none for a listed plugin';
    spit($s->conf . '/plugins', "#   max_rpct\nqueue_spool\n");
    ($exit, $out) = upesi_check($s->conf);
    unlike $out, qr/max_rpct/, 'a plugin commented out in plugins is not reported' or diag $out;
}
{
    my ($exit, $out) = upesi_check("$ROOT/conf");
    is $exit, 0, 'the shipped conf passes -t';
    unlike $out, qr/WARNING/, '... without a warning' or diag $out;
}

# -- plugins: live chain, configuration, --available ---------------------
{
    my $s = Upesi::Test->new(plugins => ['max_rcpt', 'queue_spool']);
    my ($exit, $out) = Upesi::Test::run_cmd(10, $UPESI, '-c', $s->conf, 'plugins');
    is $exit, 0, 'plugins without a server exits 0';
    like $out, qr/no server answers.*\n.*\n1\s+max_rcpt\s.*\n2\s+queue_spool\s+\S+\s+\d+\.\d+\s+.*queue/,
        '... and lists the configuration chain' or diag $out;
    $s->start;
    $s->set_plugins('relay', 'max_rcpt', 'queue_spool');   # not reloaded
    ($exit, $out) = Upesi::Test::run_cmd(10, $UPESI, '-c', $s->conf, 'plugins');
    is $exit, 0, 'plugins with a server running exits 0';
    unlike $out, qr/no server answers/, '... answered by the server';
    like $out, qr/^1\s+max_rcpt\s.*\n2\s+queue_spool\s/m, '... its live chain, not the edited file' or diag $out;
    unlike $out, qr/relay/, '... (relay is in the file only)';
    $s->hup;
    ($exit, $out) = Upesi::Test::run_cmd(10, $UPESI, '-c', $s->conf, 'plugins');
    like $out, qr/^1\s+relay\s.*\n2\s+max_rcpt\s.*\n3\s+queue_spool\s/m, '... and the new one after a reload' or diag $out;
    $s->stop_ok;

    # a plugin_dir with the shipped plugins only (the test plugins include
    # some that are broken on purpose)
    my $avail = $s->tmp . '/avail';
    mkdir $avail;
    symlink($_, "$avail/" . (split m{/}, $_)[-1]) for glob("$ROOT/plugins/*.so");
    $s->set_smtp(plugin_dir => $avail);
    ($exit, $out) = Upesi::Test::run_cmd(10, $UPESI, '-c', $s->conf, 'plugins', '--available');
    is $exit, 0, 'plugins --available exits 0' or diag $out;
    for my $p (qw(queue_spool queue_forward relay max_rcpt lua)) {
        like $out, qr/^\Q$p\E\s+\S+\s+\d+\.\d+\s+\S/m, "... lists $p with version and ABI";
    }
    spit("$avail/broken.so", "text\n");
    ($exit, $out) = Upesi::Test::run_cmd(10, $UPESI, '-c', $s->conf, 'plugins', '--available');
    is $exit, 1, 'a file that does not load makes --available exit 1';
    like $out, qr/^broken\s.*not a shared object/m, '... and is listed with the reason' or diag $out;
}

done_testing();
