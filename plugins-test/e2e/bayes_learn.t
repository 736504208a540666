#!/usr/bin/perl
# bayes_learn.t - what learning counts.  A feature's spam and ham counts
# share one counter
# (spam * 2^32 + ham), so taking one from a class that is at 0 for that
# feature would borrow from the other: a move or an unlearn must take
# nothing below 0.  It happens when the copy of a message learned second
# is not the copy learned first (the same Message-ID, other words: the
# delivered copy of a message voted on at data_post), or when a learn is
# retried after a failure.  Each case: 20 + 20 messages learned, then a
# copy moved or unlearned, then the classes of a spam and a ham.  And the
# command line reads a message as data_post does: its first max_size
# bytes.
use strict;
use warnings;
use FindBin;
use lib "$FindBin::Bin/../lib";
use Test::More;
use Upesi::Test;

deadline(120);

my @spam_words = qw(viagra cheap pills casino winner lottery prize offer
                    discount pharmacy bonus credit);
my @ham_words  = qw(meeting agenda project budget review minutes schedule
                    report quarterly draft colleague notes);

sub message {
    my ($kind, $i, $mid) = @_;
    my @w = $kind eq 'spam' ? @spam_words : @ham_words;
    my @body = map { $w[($i + $_) % @w] } 0 .. 9;
    return "From: $kind$i\@$kind.example\nTo: bob\@example.com\n"
         . "Subject: @w[$i % @w, ($i + 3) % @w]\n"
         . "Message-ID: " . ($mid // "<$kind.$i\@counts.test>") . "\n\n"
         . "@body\n";
}

# a fresh store taught 20 spam and 20 ham; returns a command runner
sub trained {
    my (%o) = @_;
    my $s = Upesi::Test->new(
        smtp    => { local_domains => 'example.com' },
        plugins => $o{plugins} // ['bayes'],
        ini     => { 'bayes.ini' => "min_learns = 20\n" . ($o{bayes} // ''),
                     %{ $o{ini} // {} } });
    my $tmp = $s->tmp;
    mkdir "$tmp/spam";
    mkdir "$tmp/ham";
    for my $i (1 .. 20) {
        spit("$tmp/spam/$i.eml", message('spam', $i));
        spit("$tmp/ham/$i.eml", message('ham', $i));
    }
    my $cmd = sub {
        return Upesi::Test::run_cmd(60, $Upesi::Test::UPESI, '-c', $s->conf,
                                    'bayes', @_);
    };
    my ($rc, $out) = $cmd->('learn', 'spam', "$tmp/spam");
    like $out, qr/learned 20 as spam/, 'learned 20 spam' or diag $out;
    ($rc, $out) = $cmd->('learn', 'ham', "$tmp/ham");
    like $out, qr/learned 20 as ham/, 'learned 20 ham' or diag $out;
    spit("$tmp/t_spam.eml", message('spam', 33));
    spit("$tmp/t_ham.eml", message('ham', 33));
    return ($s, $cmd);
}

# an unseen spam and ham, and the copy learned last, keep their classes
sub classes_hold {
    my ($s, $cmd, $what, $copy, $class) = @_;
    my $tmp = $s->tmp;
    my ($rc, $out) = $cmd->('classify', "$tmp/t_spam.eml", "$tmp/t_ham.eml",
                            "$tmp/$copy");
    my @l = split /\n/, $out;
    like $l[0] // '', qr/^(0\.9\d\d\d|1\.0000) spam /,
        "$what: a spam is still spam" or diag $out;
    like $l[1] // '', qr/^0\.0\d\d\d ham /,
        "$what: a ham is still ham" or diag $out;
    my $p = $class eq 'spam' ? qr/^(0\.9\d\d\d|1\.0000) spam / : qr/^0\.0\d\d\d ham /;
    like $l[2] // '', $p, "$what: $copy is $class" or diag $out;
}

# 1. A ham copy, then a spam copy of the same message made of spam
# words, learned as spam: the move takes one ham from features whose ham
# is 0.  Borrowed, each would read 4,294,967,295 ham.
{
    my ($s, $cmd) = trained();
    my $tmp = $s->tmp;
    spit("$tmp/a.eml", message('ham', 7, '<copy@counts.test>'));
    spit("$tmp/b.eml", message('spam', 7, '<copy@counts.test>'));
    my ($rc, $out) = $cmd->('learn', 'ham', "$tmp/a.eml");
    like $out, qr/learned 1 as ham/, 'copy 1 learned as ham' or diag $out;
    ($rc, $out) = $cmd->('learn', 'spam', "$tmp/b.eml");
    like $out, qr/learned 1 as spam \(1 of them moved from ham\)/,
        'copy 2, other words, moved to spam' or diag $out;
    classes_hold($s, $cmd, 'a move from ham of features with no ham', 'b.eml', 'spam');
}

# 2. The other way: a spam copy, then a ham copy of ham words learned as
# ham.  Below 0, a counter reads as nothing: the ham words' 20 ham lost.
{
    my ($s, $cmd) = trained();
    my $tmp = $s->tmp;
    spit("$tmp/a.eml", message('spam', 7, '<copy@counts.test>'));
    spit("$tmp/b.eml", message('ham', 7, '<copy@counts.test>'));
    $cmd->('learn', 'spam', "$tmp/a.eml");
    my ($rc, $out) = $cmd->('learn', 'ham', "$tmp/b.eml");
    like $out, qr/learned 1 as ham \(1 of them moved from spam\)/,
        'copy 2, other words, moved to ham' or diag $out;
    classes_hold($s, $cmd, 'a move from spam of features with no spam', 'b.eml', 'ham');
}

# 3. Unlearn through a copy with other words, in one call (the batch
# path) and twice over the same features: never below 0.
{
    my ($s, $cmd) = trained();
    my $tmp = $s->tmp;
    spit("$tmp/a.eml", message('spam', 7, '<u1@counts.test>'));
    spit("$tmp/b.eml", message('ham', 7, '<u1@counts.test>'));
    spit("$tmp/c.eml", message('spam', 8, '<u2@counts.test>'));
    spit("$tmp/d.eml", message('ham', 8, '<u2@counts.test>'));
    $cmd->('learn', 'spam', "$tmp/a.eml", "$tmp/c.eml");
    my ($rc, $out) = $cmd->('unlearn', 'spam', "$tmp/b.eml", "$tmp/d.eml");
    like $out, qr/unlearned 2 as spam/, 'two copies of ham words unlearned as spam'
        or diag $out;
    classes_hold($s, $cmd, 'an unlearn of features with no spam', 'b.eml', 'ham');
    ($rc, $out) = $cmd->('stats');
    like $out, qr/spam learned: 20\nham learned: 20\n/, 'the totals are back to 20 and 20'
        or diag $out;
}

# 4. A vote at data_post (one message, not a batch: the server's own
# path): the ham copy learned from the command line, then the spam copy
# sent over SMTP and voted spam by a mail rule.
{
    my ($s, $cmd) = trained(
        plugins => ['bayes', 'mail_rules', 'queue_discard'],
        ini     => { 'mail_rules.ini' => "file = rules.txt\n",
                     'rules.txt' => "rule \"vote\"\n  when subject contains \"rulevote\"\n"
                                  . "  do vote spam\n" });
    my $tmp = $s->tmp;
    my $copy = message('spam', 7, '<vote@counts.test>') =~ s/^Subject: /Subject: rulevote /mr;
    spit("$tmp/a.eml", message('ham', 7, '<vote@counts.test>'));
    spit("$tmp/b.eml", $copy);
    my ($rc, $out) = $cmd->('learn', 'ham', "$tmp/a.eml");
    like $out, qr/learned 1 as ham/, 'copy 1 learned as ham' or diag $out;
    $s->start;
    (my $crlf = $copy) =~ s/\n/\r\n/g;
    my $c = $s->client;
    $c->cmd('EHLO client.test');
    $c->cmd('MAIL FROM:<x@sender.example>');
    $c->cmd('RCPT TO:<bob@example.com>');
    $c->cmd('DATA');
    is $c->send_data($crlf)->{code}, 250, 'copy 2 sent, a rule votes spam';
    $c->cmd('QUIT');
    $c->close;
    ($rc, $out) = $cmd->('stats');
    like $out, qr/spam learned: 21\nham learned: 20\n/, '... and it is moved to spam'
        or diag $out;
    classes_hold($s, $cmd, 'a vote moving from ham features with no ham', 'b.eml', 'spam');
    $s->stop_ok;
}

# 5. max_size on the command line: a message whose spam words come after
# its first 1K is judged, and learned, on the first 1K only.
{
    my ($s, $cmd) = trained(bayes => "max_size = 1K\n");
    my $tmp = $s->tmp;
    my $long = "From: someone\@elsewhere.example\nTo: bob\@example.com\n"
             . "Subject: hello\nMessage-ID: <long\@counts.test>\n\n"
             . ("xyzzy plugh frobnitz\n" x 60)
             . join(' ', (@spam_words) x 3) . "\n";
    spit("$tmp/long.eml", $long);
    my ($rc, $out) = $cmd->('classify', "$tmp/long.eml");
    like $out, qr/^0\.\d{4} unsure /, 'the spam words past max_size are not read' or diag $out;
    ($rc, $out) = $cmd->('learn', 'spam', ("$tmp/long.eml") x 1);
    like $out, qr/learned 1 as spam/, 'learned as spam' or diag $out;
    spit("$tmp/tail.eml", "From: other\@elsewhere.example\nTo: bob\@example.com\n"
         . "Subject: hello\nMessage-ID: <tail\@counts.test>\n\nxyzzy plugh frobnitz\n");
    ($rc, $out) = $cmd->('classify', "$tmp/tail.eml");
    like $out, qr/^(0\.[6-9]\d{3}|1\.0000) spam /,
        '... by the words of its first 1K' or diag $out;
}

done_testing();
