#!/usr/bin/perl
# queue_tools.t - `upesi queue list|show ID|delete ID|hold ID|release ID|
# flush` on both queue plugins, answered by the running server over the
# control socket from the spool's files:
#   queue_spool:   list (id, age, size, state, recipients, sender), show,
#                  hold (the file moves to hold/), release, delete, flush;
#   queue_forward: with the downstream down, a deferred message is held;
#                  the downstream comes up and a flush delivers the other
#                  one but not the held one, which stays until released,
#                  and then arrives exactly once; delete takes a message
#                  and its retry state.
# Refusals: an unknown subcommand, a bad id, an id not in the queue, a
# release of a message not held: "error: ..." and exit status 1.
use strict;
use warnings;
use FindBin;
use lib "$FindBin::Bin/../lib";
use Test::More;
use Time::HiRes qw(sleep time);
use Upesi::Test;
use Upesi::Forward qw(send_msg wait_for nspool);

deadline(180);

sub q_cmd {
    my ($srv, @args) = @_;
    return Upesi::Test::run_cmd(20, $UPESI, '-c', $srv->conf, 'queue', @args);
}
sub qid_of { my ($r) = @_; ($r && $r->{text} =~ /queued as (\S+)/) ? $1 : 'none' }

# ==========================================================================
# queue_spool
{
    my $s = Upesi::Test->new(smtp => { local_domains => 'example.com', workers => 2 },
                             plugins => ['queue_spool']);
    $s->start;
    my $r1 = send_msg($s, from => 'alice@example.org', to => ['bob@example.com', 'carol@example.com'],
                      data => "Subject: one\r\n\r\nfirst body\r\n");
    my $r2 = send_msg($s, from => '', to => ['dave@example.com'],
                      data => "Subject: two\r\n\r\nsecond\r\n");
    my ($a, $b) = (qid_of($r1), qid_of($r2));
    isnt $a, 'none', 'queue_spool: two messages accepted';

    my ($exit, $out) = q_cmd($s, 'list');
    is $exit, 0, 'queue list exits 0' or diag $out;
    like $out, qr/^\Q$a\E\s+age=\d+s\s+size=(\d+)\s+state=queued\s+rcpts=2\s+from=<alice\@example\.org>$/m,
        'list: id, age, size, state, recipient count, sender' or diag $out;
    my ($size) = $out =~ /^\Q$a\E\s+age=\d+s\s+size=(\d+)/m;
    my ($file) = grep { $_->{file} =~ /\Q$a\E$/ } $s->spool;
    my $msg_len = $file ? length($file->{message}) : -1;
    is $size, $msg_len, '... size is the message\'s bytes (without the envelope)';
    like $out, qr/^\Q$b\E\s.*state=queued\s+rcpts=1\s+from=<>$/m, '... the null sender as <>';
    like $out, qr/^-- 2 messages: 2 queued, 0 active, 0 held, 0 dead$/m, '... and a total';
    ($exit, $out) = q_cmd($s);
    like $out, qr/^\Q$a\E\s/m, '`queue` alone lists';

    # an envelope over 64 KB (1,000 recipients of 60 characters) is listed
    # whole; a file with no envelope is listed too, as such
    my $raw = slurp($s->spooldir . "/queue/$b");
    (my $big = $b) =~ s/.$/$& eq '0' ? '1' : '0'/e;
    my $rcpts = join '', map { sprintf "Recipient: %s\@example.com\n", 'r' x 40 . $_ } 1 .. 1000;
    $raw =~ s/^Queue-Id: \S+$/Queue-Id: $big/m;
    $raw =~ s/^(Recipient: .*\n)/$1$rcpts/m;
    spit($s->spooldir . "/queue/$big", $raw);
    (my $junk = $b) =~ s/..$/ff/;
    spit($s->spooldir . "/queue/$junk", "not a spool file\n");
    ($exit, $out) = q_cmd($s, 'list');
    like $out, qr/^\Q$big\E\s.*state=queued\s+rcpts=1001\s/m,
        'list: an envelope of 1,001 recipients (over 64 KB)' or diag substr($out, 0, 2000);
    like $out, qr/^\Q$junk\E\s+state=queued\s+\(no envelope could be read/m,
        '... a file without one is shown, not hidden';
    unlink $s->spooldir . "/queue/$big", $s->spooldir . "/queue/$junk";

    ($exit, $out) = q_cmd($s, 'show', $a);
    is $exit, 0, 'queue show exits 0';
    like $out, qr/^Queue-Id: \Q$a\E$/m, 'show: the envelope';
    like $out, qr/^Recipient: carol\@example\.com$/m, '... every recipient';
    like $out, qr/^Subject: one\r?$/m, '... and the message';
    like $out, qr/first body/, '... whole';

    ($exit, $out) = q_cmd($s, 'hold', $a);
    is $exit, 0, 'queue hold exits 0' or diag $out;
    ok !-e $s->spooldir . "/queue/$a" && -e $s->spooldir . "/hold/$a", '... the file moved to hold/';
    ($exit, $out) = q_cmd($s, 'list');
    like $out, qr/^\Q$a\E\s.*state=held\s/m, 'list: state=held';
    like $out, qr/1 queued, 0 active, 1 held/, '... counted';
    ($exit, $out) = q_cmd($s, 'hold', $a);
    is $exit, 1, 'hold of a held message: exit 1';
    like $out, qr/^error: .*held already/m, '... saying so';

    ($exit, $out) = q_cmd($s, 'release', $a);
    is $exit, 0, 'queue release exits 0' or diag $out;
    ok -e $s->spooldir . "/queue/$a" && !-e $s->spooldir . "/hold/$a", '... back in queue/';
    ($exit, $out) = q_cmd($s, 'release', $a);
    is $exit, 1, 'release of a message not held: exit 1';
    like $out, qr/^error: no held message \Q$a\E/m, '... saying so';

    ($exit, $out) = q_cmd($s, 'delete', $b);
    is $exit, 0, 'queue delete exits 0' or diag $out;
    ok !-e $s->spooldir . "/queue/$b", '... the file is gone';
    like $s->log_text, qr/queue_spool: \Q$b\E deleted by the administrator from queue\/ \(from=<>, 1 recipient\)/,
        '... and the log says who it was';
    ($exit, $out) = q_cmd($s, 'show', $b);
    is $exit, 1, 'show of a deleted message: exit 1';
    like $out, qr/^error: no message \Q$b\E in the queue/m, '... not in the queue';

    ($exit, $out) = q_cmd($s, 'flush');
    is $exit, 0, 'flush with queue_spool: exit 0';
    like $out, qr/queue_spool delivers nothing itself/, '... says there is nothing to retry';

    ($exit, $out) = q_cmd($s, 'frobnicate');
    is $exit, 1, 'an unknown queue subcommand: exit 1';
    like $out, qr/^error: unknown queue command 'frobnicate'/m, '... named';
    ($exit, $out) = q_cmd($s, 'delete', '../smtp.ini');
    is $exit, 1, 'a path for an id: exit 1';
    like $out, qr/^error: '\.\.\/smtp\.ini' is not a queue id/m, '... refused as no queue id';
    ($exit, $out) = q_cmd($s, 'hold');
    is $exit, 1, 'hold without an id: exit 1';
    like $out, qr/usage: queue hold ID/, '... with the usage';
    $s->stop_ok('queue_spool');
}

# ==========================================================================
# queue_forward, spool mode, the downstream down at first
{
    my $down = Upesi::Test->new(smtp => { local_domains => 'example.com', workers => 1 },
                                plugins => ['queue_spool']);
    my $f = Upesi::Forward::front("downstream = 127.0.0.1:" . $down->port . "\nmode = spool\n"
                                  . "retry_min = 60s\nretry_max = 60s\nscan_interval = 200ms\n"
                                  . "null_sender_dsn = 0\n", workers => 2);
    $f->start;
    my $h = qid_of(send_msg($f, from => 'alice@example.org', to => ['bob@example.com'],
                            data => "Subject: held\r\n\r\nheld body\r\n"));
    my $o = qid_of(send_msg($f, from => 'alice@example.org', to => ['carol@example.com'],
                            data => "Subject: other\r\n\r\nother body\r\n"));
    ok wait_for(10, sub { my (undef, $l) = q_cmd($f, 'list');
                          $l =~ /^\Q$h\E\s.*state=deferred.*attempts=[1-9]/m }),
        'queue_forward: the message was tried and is deferred';
    my ($exit, $out) = q_cmd($f, 'hold', $h);
    if ($exit != 0 && $out =~ /being delivered|left the queue/) {
        sleep 0.3;                           # a scan had it: once more
        ($exit, $out) = q_cmd($f, 'hold', $h);
    }
    is $exit, 0, 'hold a deferred message' or diag $out;
    ($exit, $out) = q_cmd($f, 'list');
    like $out, qr/^\Q$h\E\s.*state=held\s/m, 'list: held';
    like $out, qr/^\Q$o\E\s.*state=deferred\s.*last_error=/m, '... the other deferred, with its last error';

    $down->start;
    ($exit, $out) = q_cmd($f, 'flush');
    is $exit, 0, 'queue flush exits 0';
    like $out, qr/flush: 1 message/, '... one message to retry (the held one is not)';
    ok wait_for(10, sub { nspool($down) >= 1 }), 'the other message is delivered';
    sleep 1.5;                               # several scans
    my @got = $down->spool;
    is scalar(@got), 1, 'the held one is not, after a flush and several scans';
    ok -e $f->spooldir . "/hold/$h", '... it stays in hold/';

    ($exit, $out) = q_cmd($f, 'release', $h);
    is $exit, 0, 'release it' or diag $out;
    ok wait_for(10, sub { nspool($down) >= 2 }), 'released: it is delivered at once (not after its 60 s backoff)';
    sleep 0.5;
    @got = $down->spool;
    is scalar(@got), 2, '... exactly once';
    is scalar(grep { $_->{message} =~ /held body/ } @got), 1, '... the held message';

    # delete: a message and its retry state
    $down->stop;
    my $d = qid_of(send_msg($f, from => 'alice@example.org', to => ['erin@example.com'],
                            data => "Subject: doomed\r\n\r\nx\r\n"));
    ok wait_for(10, sub { -e $f->spooldir . "/deferred/$d" }), 'a third message is deferred';
    ($exit, $out) = q_cmd($f, 'delete', $d);
    if ($exit != 0 && $out =~ /being delivered/) {
        sleep 0.3;
        ($exit, $out) = q_cmd($f, 'delete', $d);
    }
    is $exit, 0, 'delete it' or diag $out;
    ok !-e $f->spooldir . "/queue/$d" && !-e $f->spooldir . "/deferred/$d", '... the message and its retry state are gone';
    ($exit, $out) = q_cmd($f, 'list');
    like $out, qr/^-- 0 messages: 0 queued, 0 active, 0 held, 0 dead$/m, 'the queue is empty' or diag $out;
    $f->stop_ok('queue_forward');
}

done_testing();
