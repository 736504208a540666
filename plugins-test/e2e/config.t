#!/usr/bin/perl
# config.t - `upesi -c DIR -t` and startup checks: the shipped conf/ passes;
# an unknown key, a bad value, a missing file, a missing plugin, a name that
# is no plugin name, an unknown key in a plugin's ini, and plugins built for
# another ABI are refused with file:line and a non-zero exit; the server
# itself refuses to start on the same errors.
use strict;
use warnings;
use FindBin;
use lib "$FindBin::Bin/../lib";
use Test::More;
use Upesi::Test;

need_built('plugins-test/plugins/other_major.so', 'plugins-test/plugins/newer_abi.so',
           'plugins-test/plugins/no_descriptor.so');
deadline(90);

my $plugin_h = slurp("$ROOT/host/upesi/plugin.h") // '';
my ($abi_major) = $plugin_h =~ /#define UPESI_ABI_MAJOR (\d+)/;
my ($abi_minor) = $plugin_h =~ /#define UPESI_ABI_MINOR (\d+)/;
ok defined $abi_major && defined $abi_minor, "plugin.h defines the host ABI ($abi_major.$abi_minor)";

# line number of the first line of FILE matching RE
sub line_of {
    my ($file, $re) = @_;
    my $n = 0;
    for (split /\n/, slurp($file) // '') {
        $n++;
        return $n if $_ =~ $re;
    }
    return 0;
}

# check(SERVER) -> (exit, output)
sub check { upesi_check($_[0]->conf) }

# -- the shipped configuration ----------------------------------------------
my ($exit, $out) = upesi_check("$ROOT/conf");
is $exit, 0, 'upesi -c conf -t accepts the shipped conf/' or diag $out;

my $ok = Upesi::Test->new;
($exit, $out) = check($ok);
is $exit, 0, 'a temp copy of conf/ passes -t' or diag $out;
ok !-e $ok->{sock}, '-t does not start a server (no control socket)';

# -- smtp.ini errors -----------------------------------------------------------
{
    my $s = Upesi::Test->new(smtp => { frobnicate => 'yes' });
    my $ini = $s->conf . '/smtp.ini';
    my $line = line_of($ini, qr/^frobnicate\b/);
    ($exit, $out) = check($s);
    isnt $exit, 0, 'unknown key: -t exits non-zero';
    like $out, qr/smtp\.ini:$line: .*unknown key 'frobnicate'/, "unknown key: reported as smtp.ini:$line" or diag $out;
}
{
    my $s = Upesi::Test->new(smtp => { max_sessions => 'many' });
    my $line = line_of($s->conf . '/smtp.ini', qr/^max_sessions\b/);
    ($exit, $out) = check($s);
    isnt $exit, 0, 'bad number: -t exits non-zero';
    like $out, qr/smtp\.ini:$line: .*many/, "bad number: reported as smtp.ini:$line with the value" or diag $out;
}
{
    my $s = Upesi::Test->new(smtp => { pipelining => 'maybe', listen => 'nowhere' });
    my $ini = $s->conf . '/smtp.ini';
    my $l1 = line_of($ini, qr/^pipelining\b/);
    my $l2 = line_of($ini, qr/^listen\b/);
    ($exit, $out) = check($s);
    isnt $exit, 0, 'two bad values: -t exits non-zero';
    like $out, qr/smtp\.ini:$l1: .*maybe/, "bad boolean reported as smtp.ini:$l1" or diag $out;
    like $out, qr/smtp\.ini:$l2: .*nowhere/, "bad listen address reported as smtp.ini:$l2 in the same run" or diag $out;
}
{
    my $s = Upesi::Test->new;
    unlink $s->conf . '/smtp.ini';
    ($exit, $out) = check($s);
    isnt $exit, 0, 'missing smtp.ini: -t exits non-zero';
    like $out, qr/smtp\.ini/, 'missing smtp.ini: the message names the file' or diag $out;
}

# -- conf/plugins errors -------------------------------------------------------
{
    my $s = Upesi::Test->new(plugins => ['queue_spool', 'no_such_plugin']);
    ($exit, $out) = check($s);
    isnt $exit, 0, 'missing plugin: -t exits non-zero';
    like $out, qr{plugins:3: .*no_such_plugin}, 'missing plugin: reported as plugins:3 with its name' or diag $out;
}
{
    my $s = Upesi::Test->new(plugins => ['../plugins/queue_spool']);
    ($exit, $out) = check($s);
    isnt $exit, 0, 'a name that is no plugin name: -t exits non-zero';
    like $out, qr{plugins:2: .*\.\./plugins/queue_spool}, 'bad plugin name: reported as plugins:2' or diag $out;
}
{
    my $s = Upesi::Test->new(plugins => ['queue_spool'],
                             ini => { 'queue_spool.ini' => "; settings\nno_such_setting = 1\n" });
    ($exit, $out) = check($s);
    isnt $exit, 0, 'unknown key in a plugin ini: -t exits non-zero';
    like $out, qr{queue_spool\.ini:2: .*no_such_setting}, 'unknown plugin key: reported as queue_spool.ini:2' or diag $out;
}

# -- plugins built for another ABI -------------------------------------------
{
    my $wrong = $abi_major + 1;
    my $s = Upesi::Test->new(plugins => ['other_major', 'queue_spool']);
    ($exit, $out) = check($s);
    isnt $exit, 0, 'wrong ABI major: -t exits non-zero';
    like $out, qr{plugins:2: .*other_major\.so}, 'wrong ABI: reported with plugins:2 and the file' or diag $out;
    like $out, qr{\b$wrong\.0\b.*\b$abi_major\.$abi_minor\b}, "wrong ABI: the message names the plugin's ABI $wrong.0 and the host's $abi_major.$abi_minor" or diag $out;

    $s = Upesi::Test->new(plugins => ['newer_abi']);
    ($exit, $out) = check($s);
    my $newer = $abi_minor + 1;
    isnt $exit, 0, 'newer ABI minor: -t exits non-zero';
    like $out, qr{\b$abi_major\.$newer\b.*\b$abi_major\.$abi_minor\b}, "newer minor: the message names $abi_major.$newer and $abi_major.$abi_minor" or diag $out;

    $s = Upesi::Test->new(plugins => ['no_descriptor']);
    ($exit, $out) = check($s);
    isnt $exit, 0, 'no descriptor: -t exits non-zero';
    like $out, qr{plugins:2: .*upesi_plugin}, 'no descriptor: reported as plugins:2, naming the missing symbol' or diag $out;

    # the server, not just -t, refuses to start
    $s = Upesi::Test->new(plugins => ['other_major']);
    my $died = !eval { $s->start; 1 };
    ok $died, 'the server refuses to start with a wrong-ABI plugin';
    $s->stop;
}

# -- the server refuses a broken config at startup ------------------------------
{
    my $s = Upesi::Test->new(smtp => { frobnicate => 1 });
    my $died = !eval { $s->start; 1 };
    ok $died, 'the server refuses to start with an unknown key';
    isnt $s->{exit} // 0, 0, 'and exits non-zero';
    like $s->log_text, qr/smtp\.ini:\d+: .*frobnicate/, 'and says why, with file:line';
    $s->stop;
}

done_testing;
