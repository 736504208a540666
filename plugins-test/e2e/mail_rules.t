#!/usr/bin/perl
# mail_rules.t - server mail rules through the real host: every condition
# and operator (each rule tags the message, the spool shows which fired),
# and/or/not/parentheses, unless, order and stop, every action through the
# host's message-action service (quarantine, journal and hold files on
# disk in the spool format, release into queue/, drop, reject with default
# and custom text, copy_to, tag), statistics, the DNSBL tag interplay
# (simulated with the tester plugin's note), and broken rules files at
# startup, at -t and on SIGHUP.
use strict;
use warnings;
use FindBin;
use lib "$FindBin::Bin/../lib";
use Test::More;
use Upesi::Test;

deadline(150);

# A server with tester (notes), mail_rules and queue_spool.
sub server {
    my ($rules, %opt) = @_;
    my $srv = Upesi::Test->new(
        smtp    => { local_domains => 'example.com' },
        plugins => [ 'tester', 'mail_rules', 'queue_spool' ],
        ini     => {
            'tester.ini' => $opt{tester} // "[helo]\nverdict = CONT\n",
            'mail_rules.ini' => "file = rules.txt\n",
            'rules.txt' => $rules,
        },
    );
    $srv->start;
    return $srv;
}

# send(srv, from, [rcpts], data) -> the reply to the end of data
sub send_msg {
    my ($srv, $from, $rcpts, $data) = @_;
    my $c = $srv->client;
    $c->cmd('EHLO client.test');
    $c->cmd("MAIL FROM:<$from>")->{code} == 250 or return { code => 0 };
    $c->cmd("RCPT TO:<$_>") for @$rcpts;
    my $r = $c->cmd('DATA');
    return $r unless $r && $r->{code} == 354;
    $r = $c->send_data($data);
    $c->cmd('QUIT');
    $c->close;
    return $r;
}

sub msg {
    my (%h) = @_;
    my $body = delete $h{body} // "hello\r\n";
    my $head = join '', map { "$_->[0]: $_->[1]\r\n" } @{ $h{headers} || [] };
    return $head . "\r\n" . $body;
}

sub files_in {
    my ($srv, $kind) = @_;
    my $dir = $srv->spooldir . "/$kind";
    opendir(my $dh, $dir) or return ();
    my @f = sort grep { !/^\./ && -f "$dir/$_" } readdir $dh;
    closedir $dh;
    return map { my $m = Upesi::Test::parse_spool_file(slurp("$dir/$_"));
                 $m->{id} = $_; $m } @f;
}

sub tags_of {
    my ($m) = @_;
    my %t;
    $t{$1} = 1 while $m->{message} =~ /^X-R: (\S+)\r$/mg;
    return \%t;
}

# -- every condition and operator ---------------------------------------------
{
    my $rules = <<'EOT';
# one rule per condition / operator; each tags what it saw
rule "sender is"        when sender is "alice@example.org"        do tag "X-R: sender-is"
rule "sender from"      when sender contains "From-Header"        do tag "X-R: sender-from"
rule "subject"          when subject contains "CAFÉ au lait"      do tag "X-R: subject"
rule "subject not"      when subject not contains "café"          do tag "X-R: subject-not"
rule "body"             when body contains "PHARMACY"             do tag "X-R: body"
rule "body does not"    when body does not contain "pharmacy"     do tag "X-R: body-not"
rule "importance"       when importance is "high"                 do tag "X-R: importance"
rule "importance not"   when importance is not "high"             do tag "X-R: importance-not"
rule "priority"         when delivery_priority is "low"           do tag "X-R: priority"
rule "to"               when to contains "bob@example.com"        do tag "X-R: to"
rule "to name"          when to contains "Bobby"                  do tag "X-R: to-name"
rule "cc"               when cc is "carol@example.com"            do tag "X-R: cc"
rule "bcc"              when bcc is "dave@example.com"            do tag "X-R: bcc"
rule "to_or_cc"         when to_or_cc is "carol@example.com"      do tag "X-R: to-or-cc"
rule "body_or_subject"  when body_or_subject contains "zebra"     do tag "X-R: body-or-subject"
rule "domain"           when internet_domain is "EXAMPLE.ORG"     do tag "X-R: domain"
rule "size gt"          when size > 4K                            do tag "X-R: size-gt"
rule "size lt"          when size < 4096                          do tag "X-R: size-lt"
rule "all"              when all                                  do tag "X-R: all"
rule "att name"         when attachment_name contains ".exe"      do tag "X-R: att-name"
rule "att name is"      when attachment_name is "Report 2024.PDF" do tag "X-R: att-name-is"
rule "att count"        when attachment_count is 2                do tag "X-R: att-count"
rule "att count gt"     when attachment_count is greater than 1   do tag "X-R: att-count-gt"
rule "rcpt count"       when recipient_count is 3                 do tag "X-R: rcpt-count"
rule "rcpt count lt"    when recipient_count is less than 2       do tag "X-R: rcpt-count-lt"
rule "any rcpt"         when any_recipient is "dave@example.com"  do tag "X-R: any-rcpt"
rule "blacklist"        when blacklist_tag is "zen.example"       do tag "X-R: blacklist"
rule "whitelist"        when whitelist_tag contains "dnswl"       do tag "X-R: whitelist"
rule "header"           when header "X-Mailer" contains "bulk"    do tag "X-R: header"
rule "header is not"    when header "X-Mailer" is not "bulkmail 1.0" do tag "X-R: header-not"
rule "logic"            when (subject contains "nothing" or body contains "zebra")
                          and not size > 1M                       do tag "X-R: logic"
rule "unless"           when all unless sender contains "alice"   do tag "X-R: unless"
EOT
    my $srv = server($rules, tester => <<'EOT');
[mail]
match = alice
note = dnsbl.site=zen.example
[rcpt]
match = dave
note = dnswl.site=list.dnswl.example
EOT
    my $b64 = "UGxlYXNlIHZpc2l0IG91ciBQSEFSTUFDWSB0b2RheSwgemVicmEh\r\n"; # "Please visit our PHARMACY today, zebra!"
    my $rich = msg(headers => [
        [ 'From', '"Boss" <from-header@example.org>' ],
        [ 'To', '"Bobby Tables" <bob@example.com>' ],
        [ 'Cc', 'carol@example.com' ],
        [ 'Subject', '=?UTF-8?Q?Caf=C3=A9_au_lait?=' ],
        [ 'Importance', 'High' ],
        [ 'Priority', 'non-urgent' ],
        [ 'X-Mailer', 'BulkMail 1.0' ],
        [ 'MIME-Version', '1.0' ],
        [ 'Content-Type', 'multipart/mixed; boundary="b1"' ] ],
        body => "--b1\r\nContent-Type: text/plain; charset=utf-8\r\n"
              . "Content-Transfer-Encoding: base64\r\n\r\n$b64"
              . "--b1\r\nContent-Type: application/octet-stream; name=\"setup.EXE\"\r\n"
              . "Content-Transfer-Encoding: base64\r\n\r\nAAAA\r\n"
              . "--b1\r\nContent-Type: application/pdf\r\n"
              . "Content-Disposition: attachment; filename=\"Report 2024.pdf\"\r\n\r\n"
              . ("x" x 5000) . "\r\n--b1--\r\n");
    my $r = send_msg($srv, 'alice@example.org',
                     [ 'bob@example.com', 'carol@example.com', 'dave@example.com' ], $rich);
    is $r->{code}, 250, 'rich message accepted';
    my $plain = msg(headers => [ [ 'From', 'x@other.test' ], [ 'To', 'eve@example.com' ],
                                 [ 'Subject', 'hello' ] ], body => "nothing here\r\n");
    $r = send_msg($srv, 'zed@other.test', [ 'eve@example.com' ], $plain);
    is $r->{code}, 250, 'plain message accepted';
    my @m = $srv->wait_spool(2, 10);
    is scalar(@m), 2, 'both in the queue';
    my ($mr) = grep { $_->{env}{Sender} eq 'alice@example.org' } @m;
    my ($mp) = grep { $_->{env}{Sender} eq 'zed@other.test' } @m;
    my @rich_hits = qw(sender-is sender-from subject body importance priority to
                       to-name cc bcc to-or-cc body-or-subject domain size-gt all
                       att-name att-name-is att-count att-count-gt rcpt-count any-rcpt
                       blacklist whitelist header logic);
    my @plain_hits = qw(subject-not body-not importance-not size-lt all
                        rcpt-count-lt header-not unless);
    is_deeply [ sort keys %{ tags_of($mr) } ], [ sort @rich_hits ],
        'rich message: exactly the expected rules fired'
        or diag explain tags_of($mr);
    is_deeply [ sort keys %{ tags_of($mp) } ], [ sort @plain_hits ],
        'plain message: exactly the expected rules fired'
        or diag explain tags_of($mp);
    my $st = $srv->stat('SMTP.Rules');
    is $st->{'SMTP.Rules.all.Hits'}, 2, 'SMTP.Rules.all.Hits counts both';
    is $st->{'SMTP.Rules.sender_is.Hits'}, 1, 'a name with a space: SMTP.Rules.sender_is.Hits';
    is $st->{'SMTP.Rules.Action.Tag'}, scalar(@rich_hits) + scalar(@plain_hits),
        'SMTP.Rules.Action.Tag counts every tag';
    ok $srv->wait_log(qr/mail_rules: rule "all" matched message \w+: tag/, 5),
        'a matching rule is logged';
    $srv->stop_ok;
}

# -- order, stop, and every action ---------------------------------------------
{
    my $rules = <<'EOT';
rule "first"    when subject contains "stopme"  do tag "X-R: first"; stop
rule "second"   when subject contains "stop"    do tag "X-R: second"
rule "q"        when subject is "quarantine me" do quarantine
rule "j"        when subject is "journal me"    do journal; tag "X-R: journaled"
rule "h"        when subject is "hold me"       do hold
rule "d"        when subject is "drop me"       do drop
rule "r"        when subject is "reject me"     do reject
rule "r2"       when subject is "reject custom" do reject "No pills here"
rule "c"        when subject is "copy me"       do copy_to "archive@example.com"
rule "bl"       when blacklist_tag is "zen.example" do quarantine; stop
rule "never"    when blacklist_tag is "zen.example" do tag "X-R: after-stop"
EOT
    my $srv = server($rules, tester => <<'EOT');
[mail]
match = listed
note = dnsbl.site=zen.example
EOT
    my $send = sub {
        my ($subject, $from) = @_;
        return send_msg($srv, $from // 'a@example.org', [ 'bob@example.com' ],
                        msg(headers => [ [ 'Subject', $subject ] ]));
    };
    is $send->('please stopme')->{code}, 250, 'stop: accepted';
    is $send->('please stop')->{code}, 250, 'no stop: accepted';
    my @q = $srv->wait_spool(2, 10);
    my ($s1) = grep { $_->{message} =~ /stopme/ } @q;
    my ($s2) = grep { $_->{message} !~ /stopme/ } @q;
    is_deeply tags_of($s1), { first => 1 }, 'rule 1 matched and stopped: rule 2 did not run';
    is_deeply tags_of($s2), { second => 1 }, 'without rule 1, rule 2 runs';

    my $r = $send->('quarantine me');
    is $r->{code}, 250, 'quarantine: the client gets 250';
    like $r->{text}, qr/queued as (\w+)/, '... with a queue id';
    my ($qid) = $r->{text} =~ /queued as (\w+)/;
    my @qf = files_in($srv, 'quarantine');
    is scalar(@qf), 1, 'one file in quarantine/';
    is $qf[0]{id}, $qid, '... named by the queue id';
    is $qf[0]{env}{'Upesi-Spool'}, '1', '... in the spool format';
    is_deeply $qf[0]{recipients}, [ 'bob@example.com' ], '... with the envelope';
    like $qf[0]{message}, qr/^Subject: quarantine me\r$/m, '... and the message';
    ok !(grep { $_->{id} eq $qid } $srv->spool), 'not delivered: not in queue/';
    ok $srv->wait_log(qr/message $qid quarantined by mail_rules: rule "q"/, 5),
        'the quarantine is logged with the rule';

    $r = $send->('journal me');
    is $r->{code}, 250, 'journal: 250';
    my ($jid) = $r->{text} =~ /queued as (\w+)/;
    my @jf = files_in($srv, 'journal');
    is scalar(@jf), 1, 'one file in journal/';
    is $jf[0]{id}, $jid, '... named by the queue id';
    like $jf[0]{message}, qr/^X-R: journaled\r$/m, '... with the tag of its own rule';
    ok((grep { $_->{id} eq $jid } $srv->wait_spool(3, 5)), 'journal: delivery goes on (in queue/)');

    $r = $send->('hold me');
    is $r->{code}, 250, 'hold: 250';
    my ($hid) = $r->{text} =~ /queued as (\w+)/;
    my @hf = files_in($srv, 'hold');
    is scalar(@hf), 1, 'one file in hold/';
    is $hf[0]{id}, $hid, '... named by the queue id';
    ok !(grep { $_->{id} eq $hid } $srv->spool), 'held: not in queue/';
    my ($ex, $out) = Upesi::Test::run_cmd(20, $UPESI, '-c', $srv->conf, 'release', $hid);
    is $ex, 0, 'upesi release exits 0' or diag $out;
    like $out, qr/released $hid/, '... and says so';
    ok((grep { $_->{id} eq $hid } $srv->spool), 'released: now in queue/');
    is scalar(files_in($srv, 'hold')), 0, '... and gone from hold/';
    ($ex, $out) = Upesi::Test::run_cmd(20, $UPESI, '-c', $srv->conf, 'release', $hid);
    isnt $ex, 0, 'a second release fails';
    like $out, qr/cannot open/, '... saying why';
    ($ex, $out) = Upesi::Test::run_cmd(20, $UPESI, '-c', $srv->conf, 'release', '../x');
    isnt $ex, 0, 'release refuses a path';
    # a held message of version 2 (SMTPUTF8, DSN, BINARYMIME parameters)
    (my $v2 = $hid) =~ s/.$/$& eq '0' ? '1' : '0'/e;
    my $held2 = slurp($srv->spooldir . "/queue/$hid");
    $held2 =~ s/^Upesi-Spool: 1$/Upesi-Spool: 2/m;
    $held2 =~ s/^Queue-Id: \S+$/Queue-Id: $v2/m;
    spit($srv->spooldir . "/hold/$v2", $held2);
    ($ex, $out) = Upesi::Test::run_cmd(20, $UPESI, '-c', $srv->conf, 'release', $v2);
    is $ex, 0, 'upesi release of a version 2 file' or diag $out;
    ok -e $srv->spooldir . "/queue/$v2", '... now in queue/';

    my $before = () = $srv->spool;
    $r = $send->('drop me');
    is $r->{code}, 250, 'drop: 250';
    my ($did) = $r->{text} =~ /queued as (\w+)/;
    ok $srv->wait_log(qr/message $did dropped \(not delivered\) by mail_rules/, 5),
        'drop is logged';
    is scalar(() = $srv->spool), $before, 'dropped: nothing in queue/';

    $r = $send->('reject me');
    is $r->{code}, 550, 'reject: 550';
    is $r->{enhanced}, '5.7.1', '... 5.7.1';
    like $r->{text}, qr/Message rejected for policy reasons/, '... default text';
    $r = $send->('reject custom');
    is $r->{code}, 550, 'reject "text": 550';
    like $r->{text}, qr/^5\.7\.1 No pills here$/, '... with the rule text';

    $r = $send->('copy me');
    is $r->{code}, 250, 'copy_to: 250';
    my ($cid) = $r->{text} =~ /queued as (\w+)/;
    my ($cm) = grep { $_->{id} eq $cid } $srv->spool;
    is_deeply $cm->{recipients}, [ 'bob@example.com', 'archive@example.com' ],
        'copy_to adds a recipient to the envelope';

    # DNSBL tag mode: a listed host (simulated note) is quarantined by a rule
    $r = $send->('hi there', 'listed@spam.example');
    is $r->{code}, 250, 'tagged by the DNSBL: 250';
    my ($bid) = $r->{text} =~ /queued as (\w+)/;
    ok((grep { $_->{id} eq $bid } files_in($srv, 'quarantine')),
       'a blacklist-tagged message is quarantined');
    my $st = $srv->stat('SMTP.Rules');
    is $st->{'SMTP.Rules.Action.Quarantine'}, 2, 'SMTP.Rules.Action.Quarantine';
    is $st->{'SMTP.Rules.Action.Stop'}, 2, 'SMTP.Rules.Action.Stop';
    is $st->{'SMTP.Rules.Action.Journal'}, 1, 'SMTP.Rules.Action.Journal';
    is $st->{'SMTP.Rules.Action.Hold'}, 1, 'SMTP.Rules.Action.Hold';
    is $st->{'SMTP.Rules.Action.Drop'}, 1, 'SMTP.Rules.Action.Drop';
    is $st->{'SMTP.Rules.Action.Reject'}, 2, 'SMTP.Rules.Action.Reject';
    is $st->{'SMTP.Rules.Action.CopyTo'}, 1, 'SMTP.Rules.Action.CopyTo';
    ok !defined $st->{'SMTP.Rules.never.Hits'}, 'nothing after stop ran';
    $st = $srv->stat('SMTP.Messages');
    is $st->{'SMTP.Messages.Quarantined'}, 2, 'the host counts quarantined messages';
    is $st->{'SMTP.Messages.Held'}, 1, '... held';
    is $st->{'SMTP.Messages.Dropped'}, 1, '... dropped';
    is $st->{'SMTP.Messages.Journaled'}, 1, '... journaled';
    $srv->stop_ok;
}

# -- broken rules files: startup, -t, SIGHUP -----------------------------------
{
    my $bad = "rule \"ok\" when all do tag \"X-R: one\"\n\n"
            . "rule \"broken\"\n  when subject frobs \"x\"\n  do drop\n";
    my $srv = Upesi::Test->new(
        smtp    => { local_domains => 'example.com' },
        plugins => [ 'mail_rules', 'queue_spool' ],
        ini     => { 'mail_rules.ini' => "file = rules.txt\n", 'rules.txt' => $bad });
    my ($ex, $out) = upesi_check($srv->conf);
    isnt $ex, 0, '-t: a broken rules file fails';
    like $out, qr{mail_rules\.ini: rules\.txt:4: expected an operator}, '... with file and line' or diag $out;
    eval { $srv->start };
    ok $@, 'startup fails too';

    for my $case ([ "rule \"a\" do drop\n", qr/rules\.txt:1: rule "a" \(line 1\) has no 'when'/ ],
                  [ "rule \"a\" when size contains \"x\" do drop\n", qr/rules\.txt:1: size is a number/ ],
                  [ "rule \"a\" when subject > 3 do drop\n", qr/rules\.txt:1: subject is text/ ],
                  [ "rule \"a\" when all do explode\n", qr/rules\.txt:1: unknown action 'explode'/ ],
                  [ "rule \"a\" when all do drop\nrule \"a\" when all do drop\n", qr/rules\.txt:2: .*same name/ ],
                  [ "rule \"a\" when (all do drop\n", qr/rules\.txt:1: expected '\)'/ ],
                  [ "rule \"a\" when subject is \"x do drop\n", qr/rules\.txt:1: unterminated string/ ]) {
        $srv->write_conf('rules.txt', $case->[0]);
        ($ex, $out) = upesi_check($srv->conf);
        isnt $ex, 0, "-t fails for: $case->[0]";
        like $out, $case->[1], '... with the reason' or diag $out;
    }

    $srv->write_conf('rules.txt', "rule \"ok\" when all do tag \"X-R: one\"\n");
    $srv->start;
    $srv->write_conf('rules.txt', $bad);
    is $srv->hup, 'failed', 'SIGHUP with a broken rules file: reload refused';
    ok $srv->wait_log(qr/rules\.txt:4: expected an operator/, 5), '... the error is logged with file and line';
    my $r = send_msg($srv, 'a@example.org', [ 'bob@example.com' ], msg(headers => [ [ 'Subject', 'x' ] ]));
    is $r->{code}, 250, 'the server still accepts mail';
    my @m = $srv->wait_spool(1, 5);
    is_deeply tags_of($m[0]), { one => 1 }, '... under the old rules';
    $srv->write_conf('rules.txt', "rule \"two\" when all do tag \"X-R: two\"\n");
    is $srv->hup, 'done', 'a fixed file reloads';
    send_msg($srv, 'b@example.org', [ 'bob@example.com' ], msg(headers => [ [ 'Subject', 'y' ] ]));
    @m = $srv->wait_spool(2, 5);
    my ($m2) = grep { $_->{env}{Sender} eq 'b@example.org' } @m;
    is_deeply tags_of($m2), { two => 1 }, '... and the new rules apply';
    $srv->stop_ok;
}

done_testing;
