#!/usr/bin/perl
# source.t - rules of the source tree that a reader relies on: no .c file
# includes another .c (shared code is linked: plugins/common/ is a static
# library, fuzz targets and unit tests link the objects they test), and the
# user's docs never send the reader to a file outside the clone.
use strict;
use warnings;
use FindBin;
use lib "$FindBin::Bin/../lib";
use File::Find;
use Test::More;
use Upesi::Test;

my @c;
find(sub { push @c, $File::Find::name if /\.[ch]$/ },
     map { "$ROOT/$_" } qw(host plugins lua fuzz plugins-test examples));
ok @c > 50, 'the source tree is found (' . scalar(@c) . ' files)';
my @bad;
for my $f (@c) {
    open my $fh, '<', $f or die "$f: $!";
    while (<$fh>) {
        push @bad, "$f:$.: $_" if /^\s*#\s*include\s+"[^"]+\.c"/;
    }
}
is_deeply \@bad, [], 'no source file includes a .c file' or diag @bad;

my @docs = ("$ROOT/README.md", glob("$ROOT/docs/*.md"), glob("$ROOT/docs/*/*.md"),
            "$ROOT/docs/upesi.8");
my @out;
for my $f (@docs) {
    open my $fh, '<', $f or die "$f: $!";
    while (<$fh>) {
        push @out, "$f:$.: $_" if m{DESIGN\.md|\.\./shared/};
    }
}
is_deeply \@out, [], 'README and docs/ point at nothing outside the clone' or diag @out;

done_testing();
