#!/usr/bin/perl
# config_doc.t - docs/config.md against the settings tables: every block
# `upesi --dump-settings plugins` prints (smtp.ini's table, each plugin's)
# is on the page as printed, and the page holds no generated block the code
# no longer has.  `make docs-config` rewrites the page.  Also: every key of
# smtp.ini that a table names is accepted by `upesi -t` with its documented
# default, so the page's defaults are values the parser takes; keys inside
# [sections] (private_lists, dnsbl/dnswl zones, queue_forward routes) are
# on the page as "[section] key".
use strict;
use warnings;
use FindBin;
use lib "$FindBin::Bin/../lib";
use Test::More;
use Upesi::Test;

deadline(60);

my ($exit, $dump) = Upesi::Test::run_cmd(30, $UPESI, '--dump-settings', "$ROOT/plugins");
is $exit, 0, 'upesi --dump-settings runs' or diag $dump;
my %code;
while ($dump =~ /(<!-- begin settings (\S+) .*?<!-- end settings \2 -->\n)/gs) {
    $code{$2} = $1;
}
ok $code{'smtp.ini'}, 'the dump has the smtp.ini table';
ok keys(%code) >= 4, 'the dump has plugin tables too (' . join(', ', sort keys %code) . ')';

my $page = slurp("$ROOT/docs/config.md") // '';
my %doc;
while ($page =~ /(<!-- begin settings (\S+) .*?<!-- end settings \2 -->\n)/gs) {
    $doc{$2} = $1;
}
for my $file (sort keys %code) {
    ok defined $doc{$file}, "docs/config.md documents $file"
        or diag "run make docs-config";
    is $doc{$file}, $code{$file}, "... as the table in the code says" or diag "run make docs-config"
        if defined $doc{$file};
}
my @stale = grep { !$code{$_} } sort keys %doc;
is_deeply \@stale, [], 'no generated block on the page without a table in the code';

# every key of a table is on the page with its default
my @keys = $code{'smtp.ini'} =~ /^\| `([a-z_]+)` \|/mg;
ok @keys >= 30, 'smtp.ini keys found (' . scalar(@keys) . ')';
for my $k (qw(listen hostname greeting local_domains spool_dir control_socket
              max_command_length max_message_size max_sessions error_limit
              timeout_multiplier plugin_timeout pipelining vrfy received_version
              workers plugin_dir dns_servers dns_timeout tls_cert tls_key
              smtps_listen)) {
    ok((grep { $_ eq $k } @keys), "smtp.ini key $k is in the table");
}
my %def = $code{'smtp.ini'} =~ /^\| `([a-z_]+)` \|[^|]*\| `([^`]*)` \|/mg;
is $def{max_command_length}, '1200', 'max_command_length defaults to 1200';
is $def{max_message_size}, '26214400', 'max_message_size defaults to 26214400';

# keys inside sections are on the page too, as "[section] key"
for my $want (['private_lists.ini', '[whitelist] hosts'], ['private_lists.ini', '[whitelist] action'],
              ['private_lists.ini', '[blacklist] hosts'], ['private_lists.ini', '[blacklist] action'],
              ['private_lists.ini', '[blacklist] message'], ['dnsbl.ini', '[ZONE] answers'],
              ['dnswl.ini', '[ZONE] answers'], ['queue_forward.ini', '[routes] DOMAIN']) {
    my ($file, $key) = @$want;
    like $doc{$file} // '', qr/^\| `\Q$key\E` \|/m, "docs/config.md: $file has `$key`";
}
for my $k (qw(scripts max_instructions max_memory store_failure kv_max_keys)) {
    like $doc{'lua.ini'} // '', qr/^\| `$k` \|/m, "docs/config.md: lua.ini has $k";
}

# the documented defaults of private_lists.ini's sections are accepted as written
{
    my %pl;
    while (($code{'private_lists.ini'} // '') =~ /^\| `\[(\w+)\] (\w+)` \|[^|]*\| `([^`]*)` \|/mg) {
        $pl{$1}{$2} = $3;
    }
    ok $pl{whitelist}{action} && $pl{blacklist}{action}, 'private_lists.ini: the actions have defaults';
    my $ini = join '', map { my $sec = $_; "[$sec]\n" . join('', map { "$_ = $pl{$sec}{$_}\n" } sort keys %{ $pl{$sec} }) }
                       sort keys %pl;
    my $s = Upesi::Test->new(plugins => ['private_lists', 'queue_spool'], ini => { 'private_lists.ini' => $ini });
    my ($x, $o) = upesi_check($s->conf);
    is $x, 0, "private_lists.ini: the documented defaults, written out, pass -t" or diag "$ini\n$o";
}

# the documented defaults are values the parser accepts, written out
my $srv = Upesi::Test->new;
my %skip = map { $_ => 1 } qw(listen greeting plugin_dir spool_dir control_socket);
$srv->set_smtp(map { $_ => $def{$_} } grep { !$skip{$_} } sort keys %def);
($exit, my $out) = upesi_check($srv->conf);
is $exit, 0, 'every documented default, written in smtp.ini, is accepted' or diag $out;

done_testing();
