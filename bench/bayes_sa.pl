#!/usr/bin/perl
# bench/bayes_sa.pl - SpamAssassin's Bayes classifier over a list of
# message files, for bench/bayes.sh.
#
#   bayes_sa.pl CONFIGPATH SITECONFIGPATH DBPATH < list > "<prob> <verdict> <file>"
#
# One Mail::SpamAssassin object, configured once, checks every message in
# turn: what a spamd child does for each spamc request, without the
# process start of `spamassassin -t` per message (a second or more, which
# would measure Perl's start-up, not the filter) and without the socket.
# CONFIGPATH holds only the Bayes plugin and its rules (bench/bayes.sh
# writes it), so no other rule runs and nothing touches the network.
# The probability is the one the BAYES_* rules test ($pms->{bayes_score},
# set by Plugin::Bayes check_bayes), printed in full; a message Bayes
# gives no probability (too few learned, too few tokens) scores 0.5.
# Verdict: spam at >= 0.5 (BAYES_50 and up lean spam; Bayes alone never
# reaches SpamAssassin's required_score 5), else ham.
# Fails: an unreadable file dies with its name; a configuration that does
# not parse dies before the first message.
use strict;
use warnings;
use Mail::SpamAssassin;

my ($configpath, $sitepath, $dbpath) = @ARGV;
die "usage: $0 CONFIGPATH SITECONFIGPATH DBPATH < list\n" unless defined $dbpath;

my $sa = Mail::SpamAssassin->new({
    rules_filename      => $configpath,
    site_rules_filename => $sitepath,
    userprefs_filename  => '/dev/null',
    dont_copy_prefs     => 1,
    local_tests_only    => 1,
    post_config_text    => "bayes_path $dbpath\n",
});
$sa->compile_now(0);
$| = 0;
while (my $file = <STDIN>) {
    chomp $file;
    open(my $fh, '<', $file) or die "$file: $!\n";
    my @lines = <$fh>;
    close $fh;
    my $msg = $sa->parse(\@lines);
    my $pms = $sa->check($msg);
    my $p = $pms->{bayes_score};
    $p = 0.5 unless defined $p;
    printf "%.17g %s %s\n", $p, ($p >= 0.5 ? 'spam' : 'ham'), $file;
    $pms->finish;
    $msg->finish;
}
