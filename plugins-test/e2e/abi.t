#!/usr/bin/perl
# abi.t - ABI versioning (docs/plugins.md "ABI versions"): a plugin loads
# when its major is the host's and the lowest minor it declares is at most
# the host's; a descriptor of the first minor's size loads (what a later
# minor appended reads as zero); a larger one from a newer header loads and
# the host reads only what it knows; a plugin that needs a newer minor is
# refused with the file, the ABI it needs and the host's; a newer call is
# tested with UPESI_API_SUPPORTED and found missing, an existing one found.
use strict;
use warnings;
use FindBin;
use lib "$FindBin::Bin/../lib";
use Test::More;
use Upesi::Test;

need_built(map { "plugins-test/plugins/$_.so" } qw(older_abi newer_abi api_probe));
deadline(60);

my $h = slurp("$ROOT/host/upesi/plugin.h");
my ($major) = $h =~ /^#define UPESI_ABI_MAJOR (\d+)/m;
my ($minor) = $h =~ /^#define UPESI_ABI_MINOR (\d+)/m;
is $major, 2, 'the header is ABI 2';

sub check {
    my ($s) = @_;
    return Upesi::Test::run_cmd(30, $UPESI, '-c', $s->conf, '-t');
}

# -- an older minor (the first of the major, its descriptor size) loads -------
{
    my $s = Upesi::Test->new(plugins => ['older_abi', 'queue_spool'],
                             smtp => { local_domains => 'example.com' });
    my ($exit, $out) = check($s);
    is $exit, 0, "a plugin that needs $major.0 passes -t on host $major.$minor" or diag $out;
    ($exit, $out) = Upesi::Test::run_cmd(30, $UPESI, '-c', $s->conf, 'plugins');
    like $out, qr/^1\s+older_abi\s+1\.0\s+$major\.0\s+rcpt$/m, 'upesi plugins: it needs 2.0' or diag $out;
    $s->start;
    like $s->log_text, qr/older_abi: loaded: needs ABI 2\.0, host ABI $major\.$minor/,
        'its init ran (and the host wrote the plugin\'s name)';
    my $c = $s->client;
    $c->cmd('EHLO abi.test');
    $c->cmd('MAIL FROM:<a@example.org>');
    my $r = $c->cmd('RCPT TO:<older@example.com>');
    is $r->{code}, 550, 'its handler runs';
    like $r->{text} // '', qr/refused by the 2\.0 plugin/, '... with its reply';
    $r = $c->cmd('RCPT TO:<bob@example.com>');
    is $r->{code}, 250, 'other recipients pass';
    $c->cmd('QUIT');
    $s->stop_ok;
}

# -- a newer minor is refused ----------------------------------------------------
{
    my $s = Upesi::Test->new(plugins => ['newer_abi', 'queue_spool']);
    my ($exit, $out) = check($s);
    my $newer = $minor + 1;
    isnt $exit, 0, 'a plugin that needs a newer minor: -t exits non-zero';
    like $out, qr{plugins:2: \S*newer_abi\.so: plugin needs ABI $major\.$newer, host ABI $major\.$minor: the plugin needs a newer host},
        "the refusal names the file, the ABI it needs ($major.$newer) and the host's" or diag $out;
    my $died = !eval { $s->start; 1 };
    ok $died, 'the server refuses to start with it';
    $s->stop;
}

# -- feature test of a newer call, a larger descriptor -------------------------------
{
    my $s = Upesi::Test->new(plugins => ['api_probe', 'queue_spool']);
    my ($exit, $out) = check($s);
    is $exit, 0, 'a descriptor larger than the host knows loads (it needs 2.0)' or diag $out;
    $s->start;
    like $s->log_text, qr/api_probe: strerror supported \(No such file or directory\), future_call missing/,
        'UPESI_API_SUPPORTED: a call the host has is found, a newer one is not';
    my $c = $s->client;
    is $c->greeting ? $c->greeting->{code} : 'none', 220, 'a session runs its connect hook';
    $c->cmd('QUIT');
    ok $s->wait_log(qr/api_probe: future_call missing: fallback taken/, 5),
        'the hook took the fallback path';
    $s->stop_ok;
}

done_testing;
