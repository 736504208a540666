#!/usr/bin/perl
# statistics.t - docs/statistics.md lists every counter the code creates,
# and names none the code does not.  The code's names are its string
# literals "SMTP.x", "Upesi.x", "Lua.x" in host/, plugins/ and lua/; a
# literal with %s or %d is a family, which the page writes with <...> in
# place of each conversion (SMTP.Command.%s: `SMTP.Command.<VERB>`).  The
# DNS list counters are built from parts (plugins/common/dnslist.c): each
# last part dnslist_stat is called with must be on the page as
# `SMTP.<NAME>...<part>`.  Reads the source; starts nothing.
use strict;
use warnings;
use FindBin;
use lib "$FindBin::Bin/../lib";
use File::Find;
use Test::More;
use Upesi::Test;

my $page = slurp("$ROOT/docs/statistics.md") // '';
ok length $page, 'docs/statistics.md exists';
my %doc = map { $_ => 1 } $page =~ /`((?:SMTP|Upesi|Lua)\.[^`\s]+)`/g;
ok keys(%doc) > 50, 'the page names counters (' . scalar(keys %doc) . ')';

my (@files, %code, %family, @parts);
find(sub { push @files, $File::Find::name if /\.c$/ },
     map { "$ROOT/$_" } qw(host plugins lua));
for my $f (@files) {
    my $text = slurp($f);
    $text =~ s{/\*.*?\*/}{}gs;            # names in comments are no counters
    while ($text =~ /"((?:SMTP|Upesi|Lua)\.[A-Za-z0-9_.%]*)"/g) {
        my $name = $1;
        next if $name =~ /\.$/;           # a prefix the code completes
        if ($name =~ /%/) { $family{$name} = $f } else { $code{$name} = $f }
    }
    if ($f =~ m{common/dnslist\.c$}) {
        while ($text =~ /dnslist_stat\(([^;]*)\);/g) {
            my $args = $1;
            push @parts, $args =~ /"(\w+)"/g;
        }
    }
}
ok keys(%code) > 50, 'the code names counters (' . scalar(keys %code) . ')';

my @missing = sort grep { !$doc{$_} } keys %code;
is_deeply \@missing, [], 'every counter the code creates is on the page'
    or diag map { "missing: $_ ($code{$_})\n" } @missing;

for my $fam (sort keys %family) {
    (my $re = quotemeta $fam) =~ s/(?:\\%[sd])+/<[^>]+>(?:\\.<[^>]+>)*/g;
    next if $fam =~ /^SMTP\.%s%s/;        # dnslist: checked by parts below
    ok scalar(grep { /^$re$/ } keys %doc), "the family $fam is on the page"
        or diag "no name like /^$re\$/ in docs/statistics.md ($family{$fam})";
}

ok @parts >= 4, 'the DNS list counters are found (' . join(', ', @parts) . ')';
for my $p (@parts) {
    ok scalar(grep { /^SMTP\.<NAME>\..*\Q$p\E$/ } keys %doc),
        "the DNS list counter ...$p is on the page";
}

# the other way: a name on the page that no code creates is stale
my @stale = sort grep { !/</ && !$code{$_} } keys %doc;
is_deeply \@stale, [], 'the page names no counter the code does not create'
    or diag map { "stale: $_\n" } @stale;

done_testing();
