#!/usr/bin/perl
# bayes_redis.t - a fleet that learns together: two upesi hosts with the
# bayes plugin on one Redis (smtp.ini store = redis://..., a real
# redis-server on a free loopback port).  Host A's command line learns
# 20 spam and 20 ham; host B, which learned nothing itself, judges a spam
# message sent to it over SMTP; a vote cast on host B moves a message,
# and host A's command line sees it.  The keys in Redis carry the
# plugin's prefix.  Then Redis is stopped: with store_failure = accept
# the message goes through without a verdict.
use strict;
use warnings;
use FindBin;
use lib "$FindBin::Bin/../lib";
use Test::More;
use Time::HiRes qw(sleep);
use Upesi::Test;

use Upesi::Test::Redis;
plan skip_all => 'redis-server is not installed' unless Upesi::Test::Redis->available;
deadline(150);

my $redis = Upesi::Test::Redis->start();
my $url = $redis->url;

my @spam_words = qw(viagra cheap pills casino winner lottery prize offer
                    discount pharmacy bonus credit);
my @ham_words  = qw(meeting agenda project budget review minutes schedule
                    report quarterly draft colleague notes);
sub message {
    my ($kind, $i, $subject_extra) = @_;
    my @w = $kind eq 'spam' ? @spam_words : @ham_words;
    my @body = map { $w[($i + $_) % @w] } 0 .. 9;
    return "From: $kind$i\@$kind.example\nTo: bob\@example.com\n"
         . "Subject: " . ($subject_extra // '') . "@w[$i % @w, ($i + 3) % @w]\n"
         . "Message-ID: <$kind.$i\@redis.test>\n\n@body\n";
}

sub host {
    my ($rules) = @_;
    return Upesi::Test->new(
        smtp    => { local_domains => 'example.com', store => $url,
                     store_timeout => 500 },
        plugins => [ 'bayes', 'mail_rules', 'queue_spool' ],
        ini     => { 'bayes.ini' => "min_learns = 20\n",
                     'mail_rules.ini' => "file = rules.txt\n",
                     'rules.txt' => $rules },
    );
}
my $a = host("rule \"none\"\n  when subject contains \"never-matches\"\n  do stop\n");
my $b = host("rule \"vote\"\n  when subject contains \"votespam\"\n  do vote spam\n");

sub bayes_cmd {
    my ($srv, @args) = @_;
    return Upesi::Test::run_cmd(60, $Upesi::Test::UPESI, '-c', $srv->conf,
                                'bayes', @args);
}

my $tmp = $a->tmp;
mkdir "$tmp/spam"; mkdir "$tmp/ham";
for my $i (1 .. 20) {
    spit("$tmp/spam/$i.eml", message('spam', $i));
    spit("$tmp/ham/$i.eml", message('ham', $i));
}

# host A teaches, without its server running
my ($rc, $out) = bayes_cmd($a, 'learn', 'spam', "$tmp/spam");
like $out, qr/learned 20 as spam/, 'host A: learned 20 spam into Redis';
($rc, $out) = bayes_cmd($a, 'learn', 'ham', "$tmp/ham");
like $out, qr/learned 20 as ham/, 'host A: learned 20 ham';
($rc, $out) = bayes_cmd($b, 'stats');
like $out, qr/spam learned: 20\nham learned: 20\nfeatures: unknown/,
    "host B's command line sees the same counts";
my $keys = $redis->cli('--scan', '--pattern', 'bayes:*');
like $keys, qr/^bayes:f:[0-9a-f]{16}$/m, 'features under bayes:f:';
like $keys, qr/^bayes:m:[0-9a-f]{32}$/m, 'learned records under bayes:m:';
like $keys, qr/^bayes:total$/m, 'the totals under bayes:total';
unlike $keys, qr/^bayes:(t:|l:|n$)/m, "nothing under format 1's names";

# the command line learns in batches on Redis too: copies in one call
# count once, a move and an unlearn are exact
my (undef, $p2) = bayes_cmd($a, 'classify', "$tmp/spam/2.eml");
($rc, $out) = bayes_cmd($a, 'learn', 'ham', "$tmp/spam/2.eml", "$tmp/spam/2.eml");
like $out, qr/learned 1 as ham \(1 of them moved from spam\), 1 skipped/,
    'one call: a message twice is moved once';
($rc, $out) = bayes_cmd($a, 'unlearn', 'ham', "$tmp/spam/2.eml", "$tmp/spam/2.eml");
like $out, qr/unlearned 1 as ham, 1 skipped/, '... unlearned once';
($rc, $out) = bayes_cmd($a, 'learn', 'spam', "$tmp/spam/2.eml");
($rc, $out) = bayes_cmd($a, 'stats');
like $out, qr/spam learned: 20\nham learned: 20\n/, '... learned as spam again: 20 and 20';
($rc, $out) = bayes_cmd($a, 'classify', "$tmp/spam/2.eml");
is $out, $p2, '... with the counts it had (same probability)';

sub send_to {
    my ($srv, $data) = @_;
    (my $crlf = $data) =~ s/\r?\n/\r\n/g;
    my $c = $srv->client;
    $c->cmd('EHLO client.test');
    $c->cmd('MAIL FROM:<x@sender.example>');
    $c->cmd('RCPT TO:<bob@example.com>');
    $c->cmd('DATA');
    my $r = $c->send_data($crlf);
    $c->cmd('QUIT');
    $c->close;
    return $r;
}

# host B, which learned nothing itself, judges
$b->start;
my $r = send_to($b, message('spam', 31));
is $r->{code}, 250, 'host B accepts the message';
my @m = $b->wait_spool(1, 10);
like $m[0]{message} // '', qr/^X-Spam-Bayes: (0\.9\d{3}|1\.0000) spam\r$/m,
    "host B's verdict comes from what host A learned";

# a vote on host B: a ham message host A learned, moved to spam, seen
# from host A
$r = send_to($b, message('ham', 5, 'votespam '));
is $r->{code}, 250, 'a message host B votes spam on';
for (1 .. 50) {
    ($rc, $out) = bayes_cmd($a, 'stats');
    last if $out =~ /spam learned: 21/;
    sleep 0.1;
}
like $out, qr/spam learned: 21\nham learned: 19\n/,
    "host B's vote is in host A's counts";

# counts of an earlier format (format 1: bayes:n, bayes:t:..., bayes:l:...)
# are left alone, and said: by stats, and once by a server's first verdict
$redis->cli('SET', 'bayes:n', 7 * 2**32 + 5);
$redis->cli('SET', 'bayes:t:00000000000000aa', 2**32);
($rc, $out) = bayes_cmd($a, 'stats');
like $out, qr/spam learned: 21\nham learned: 19\n.*\nearlier format: 7 spam, 5 ham learned by an older bayes, unused: learn them again/s,
    "stats: an earlier format's totals, apart from this one's";
$b->stop_ok;
$b->start;
$r = send_to($b, message('spam', 33));
like $b->log_text, qr/WARNING.*bayes: the store holds 7 spam and 5 ham learned by an earlier version of bayes \(format 1\)/,
    "a server's first verdict says the store holds an earlier format's counts";
my @w = $b->log_text =~ /(earlier version of bayes)/g;
$r = send_to($b, message('spam', 34));
my @w2 = $b->log_text =~ /(earlier version of bayes)/g;
is scalar(@w2), scalar(@w), '... once a process';
is $redis->cli('GET', 'bayes:t:00000000000000aa'), 2**32, '... and leaves them alone';

# Redis gone: no verdict, the mail flows (store_failure = accept)
$redis->stop;
$r = send_to($b, message('spam', 32));
is $r->{code}, 250, 'Redis down: the message is still accepted';
@m = $b->wait_spool(5, 10);
unlike $m[-1]{message} // '', qr/^X-Spam-Bayes: \d/m, '... without a verdict';
like $b->log_text, qr/bayes: .*store: /, '... and the log says why';
($rc, $out) = bayes_cmd($a, 'classify', "$tmp/spam/1.eml");
isnt $rc, 0, 'the command line: a store error exits non-zero';

$b->stop_ok;
done_testing();
