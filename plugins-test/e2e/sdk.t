#!/usr/bin/perl
# sdk.t - third-party plugins: `make install-files PREFIX=tmp` lays out the
# server, plugins, header, upesi.pc, configuration (never overwritten), man
# page, docs and systemd unit; examples/hello-plugin, copied out of the
# tree, builds with nothing but `pkg-config upesi`; the installed server
# loads it and it decides a session; `upesi plugins` lists the chain.
use strict;
use warnings;
use FindBin;
use lib "$FindBin::Bin/../lib";
use File::Temp qw(tempdir);
use Test::More;
use Upesi::Test;

deadline(120);

my $tmp = tempdir('upesi-sdk-XXXXXX', TMPDIR => 1, CLEANUP => !$ENV{UPESI_KEEP});
my $prefix = "$tmp/prefix";

# MAKEFLAGS from a surrounding `make test` would leak into this make
local $ENV{MAKEFLAGS} = '';
local $ENV{MFLAGS} = '';
my ($exit, $out) = Upesi::Test::run_cmd(120, 'make', '-s', '-C', $ROOT, 'install-files',
                           "PREFIX=$prefix");
is $exit, 0, 'make install-files PREFIX=tmp succeeds' or diag $out;

for my $f ('sbin/upesi', 'include/upesi/plugin.h', 'lib/pkgconfig/upesi.pc',
           'lib/upesi/plugins/queue_spool.so', 'etc/upesi/smtp.ini',
           'etc/upesi/plugins', 'share/man/man8/upesi.8',
           'share/doc/upesi/plugins.md', 'lib/systemd/system/upesi.service') {
    ok -e "$prefix/$f", "installed: $f";
}
like slurp("$prefix/include/upesi/plugin.h") // '', qr/^#define UPESI_ABI_MAJOR 2$/m,
    'the installed header is of ABI 2';
my $ini = slurp("$prefix/etc/upesi/smtp.ini") // '';
like $ini, qr{^plugin_dir = \Q$prefix\E/lib/upesi/plugins$}m,
    'the installed smtp.ini points at the installed plugins';
my $unit = slurp("$prefix/lib/systemd/system/upesi.service") // '';
like $unit, qr{^ExecReload=/bin/kill -HUP \$MAINPID$}m, 'systemd: reload is SIGHUP';
like $unit, qr{^ProtectSystem=strict$}m, 'systemd: sandboxed';
like $unit, qr{^Type=notify$}m, 'systemd: Type=notify (sd_notify READY=1)';
like $unit, qr{^WatchdogSec=\d+$}m, 'systemd: a watchdog';
like $unit, qr{^RuntimeDirectory=upesi$}m, 'systemd: /run/upesi for the control socket';
like $unit, qr{^ExecStart=\S+/sbin/upesi -c \S+ -o user=upesi$}m, 'systemd: workers run as upesi';
my $sysusers = slurp("$prefix/lib/sysusers.d/upesi.conf") // '';
like $sysusers, qr{^u upesi - "[^"]+" \Q$prefix\E/var/spool/upesi /usr/sbin/nologin$}m,
    'the sysusers file creates the upesi account';
ok -e "$prefix/share/upesi/grafana-upesi.json", 'installed: the Grafana dashboard';
like slurp("$prefix/etc/upesi/smtp.ini") // '', qr{^control_socket = /run/upesi/upesi\.sock$}m,
    'the installed control socket is under /run/upesi';

# an admin's edit survives a second install
spit("$prefix/etc/upesi/smtp.ini", "$ini; edited by the admin\n");
($exit, $out) = Upesi::Test::run_cmd(120, 'make', '-s', '-C', $ROOT, 'install-files',
                        "PREFIX=$prefix");
is $exit, 0, 'a second install succeeds';
like slurp("$prefix/etc/upesi/smtp.ini") // '', qr/edited by the admin/,
    'the existing configuration is not overwritten';

# -- the example, out of tree, against the SDK only --------------------------------
my $ex = "$tmp/hello-plugin";
mkdir $ex;
for my $f (qw(Makefile hello.c)) {
    spit("$ex/$f", slurp("$ROOT/examples/hello-plugin/$f"));
}
local $ENV{PKG_CONFIG_PATH} = "$prefix/lib/pkgconfig";
($exit, $out) = Upesi::Test::run_cmd(60, 'pkg-config', '--cflags', 'upesi');
like $out, qr{-I\Q$prefix\E/include}, 'pkg-config --cflags upesi names the installed include dir';
($exit, $out) = Upesi::Test::run_cmd(60, 'pkg-config', '--variable=plugindir', 'upesi');
like $out, qr{^\Q$prefix\E/lib/upesi/plugins$}m, 'pkg-config names the plugin dir';
($exit, $out) = Upesi::Test::run_cmd(60, 'make', '-C', $ex, 'install');
is $exit, 0, 'the example builds and installs with its own Makefile' or diag $out;
unlike $out, qr{\Q$ROOT\E/host}, '... without the source tree';
ok -e "$prefix/lib/upesi/plugins/hello.so", 'hello.so is in the plugin dir';

# -- the installed server runs it ---------------------------------------------------
my $srv = Upesi::Test->new(
    template => "$prefix/etc/upesi",
    smtp     => { local_domains => 'example.com' },
    plugins  => [ 'hello', 'queue_spool' ],
);
$srv->set_smtp(plugin_dir => "$prefix/lib/upesi/plugins");
{
    local $Upesi::Test::UPESI = "$prefix/sbin/upesi";
    ($exit, $out) = Upesi::Test::run_cmd(30, $Upesi::Test::UPESI, '-c', $srv->conf, 'plugins');
    is $exit, 0, 'upesi plugins runs';
    like $out, qr/^#\s+plugin\s+version\s+needs\s+hooks$/m, 'the columns: plugin, version, ABI needed, hooks';
    like $out, qr/^1\s+hello\s+1\.0\s+2\.0\s+rcpt$/m, 'it lists hello with version, ABI 2.0 and hooks';
    like $out, qr/^2\s+queue_spool\s+\S+\s+2\.0\s+queue$/m, '... then queue_spool';
    $srv->start;
    my $c = $srv->client;
    $c->cmd('EHLO sdk.test');
    $c->cmd('MAIL FROM:<a@example.org>');
    my $r = $c->cmd('RCPT TO:<spammer@example.com>');
    is $r->{code}, 550, 'the third-party plugin refuses spammer@';
    like $r->{text}, qr/No thanks/, '... with its own reply';
    is $c->cmd('RCPT TO:<bob@example.com>')->{code}, 250, 'and lets bob@ through';
    $c->cmd('QUIT');
    $srv->stop_ok;
}

done_testing;
