#!/usr/bin/perl
# directory.t - the directory plugin against the real host: recipients at
# local domains looked up by address, alias, short name and full name
# (case-insensitive), 550 5.1.1 for unknown ones, deny_not_unique 0 and 1,
# the rcpt.kind note, VRFY answers, reload on SIGHUP, the shipped
# conf/directory, errors in the file with file:line at -t, and the "bad
# input" of issue 5 (docs/plugins/directory.md, docs/directory.md).
use strict;
use warnings;
use FindBin;
use lib "$FindBin::Bin/../lib";
use Test::More;
use Upesi::Test;

deadline(150);

my $DIRECTORY = <<'EOF';
# test directory
person "Bob Example" address=bob@example.com short=bob alias=robert@example.com
person "Alice Smith" address=alice@example.com short=asmith,alice
person "Andrew Smith" address=andrew@example.com short=asmith

person "John Doe" address=jdoe@example.com
person "John Doe" address=john.doe@example.com
group staff@example.com members=bob,"Alice Smith",andrew@example.com
group "Sales Team" address=sales@example.com alias=sales-team@example.com members="staff@example.com, external@partner.org, Bob Example"
EOF

sub server {
    my (%opt) = @_;
    my $srv = Upesi::Test->new(
        plugins => $opt{plugins} // ['directory', 'queue_spool'],
        smtp => { vrfy => $opt{vrfy} // 1, error_limit => $opt{error_limit} // 1000 },
        ini => { 'directory.ini' => $opt{ini} // "file = directory\n",
                 'directory' => $opt{directory} // $DIRECTORY });
    $srv->start;
    return $srv;
}

sub code_of { my ($r) = @_; $r ? "$r->{code} " . ($r->{enhanced} // '') : 'no reply' }

sub session {
    my ($srv) = @_;
    my $c = $srv->client;
    $c->cmd('EHLO client.test');
    $c->cmd('MAIL FROM:<sender@example.org>');
    return $c;
}

# -- RCPT, deny_not_unique = 0 (the default) -------------------------------------
{
    my $srv = server();
    my $c = session($srv);
    my @cases = (
        ['bob@example.com', '250 2.1.5', 'a person by address'],
        ['BOB@Example.COM', '250 2.1.5', 'case does not matter'],
        ['robert@example.com', '250 2.1.5', 'an alias'],
        ['bob.example@example.com', '250 2.1.5', 'the full name with dots for blanks'],
        ['Bob_Example@example.com', '250 2.1.5', 'the full name with underscores'],
        ['alice@example.com', '250 2.1.5', 'a second person'],
        ['"bob"@example.com', '250 2.1.5', 'a quoted local part is the same address'],
        ['staff@example.com', '250 2.1.5', 'a group by address'],
        ['sales-team@example.com', '250 2.1.5', 'a group by alias'],
        ['asmith@example.com', '250 2.1.5', 'an ambiguous short name, deny_not_unique = 0'],
        ['postmaster@example.com', '250 2.1.5', 'postmaster is always accepted (RFC 5321 4.5.1)'],
        ['nobody@example.com', '550 5.1.1', 'an unknown user: 550 5.1.1'],
        ['"no body"@example.com', '550 5.1.1', 'an unknown quoted local part: 550 5.1.1'],
        ['bob@other.org', '550 5.7.1', 'not a local domain: not the directory\'s business (relaying denied)'],
    );
    for my $t (@cases) {
        is code_of($c->cmd("RCPT TO:<$t->[0]>")), $t->[1], "RCPT <$t->[0]>: $t->[2]";
    }
    my $r = $c->cmd('RCPT TO:<ghost@example.com>');
    like $r->{text}, qr/<ghost\@example\.com>.*no such user/, 'the 550 names the address';
    is $c->cmd('DATA')->{code}, 354, 'DATA';
    is $c->send_data("Subject: hi\r\n\r\nhello")->{code}, 250, 'the message is accepted';
    my @m = $srv->wait_spool(1);
    is scalar @{ $m[0]{recipients} }, 11, 'the spool holds the eleven accepted recipients';
    my $st = $srv->stat('SMTP.Directory');
    is $st && $st->{'SMTP.Directory.Unknown'}, 3, 'SMTP.Directory.Unknown counts unknown users' or diag explain $st;
    like $srv->log_text, qr/directory: \S+: 5 persons, 2 groups, 2 names not unique, loaded in/, 'the load is logged with its counts';
    $srv->stop_ok('deny_not_unique = 0');
}

# -- deny_not_unique = 1 --------------------------------------------------------------
{
    my $srv = server(ini => "file = directory\ndeny_not_unique = 1\n");
    my $c = session($srv);
    my $r = $c->cmd('RCPT TO:<asmith@example.com>');
    is code_of($r), '553 5.1.4', 'deny_not_unique = 1: an ambiguous short name: 553 5.1.4';
    like $r->{text}, qr/ambiguous/, '  and the reply says ambiguous';
    is code_of($c->cmd('RCPT TO:<John_Doe@example.com>')), '553 5.1.4', 'deny_not_unique = 1: an ambiguous full name';
    is code_of($c->cmd('RCPT TO:<john.doe@example.com>')), '250 2.1.5', 'deny_not_unique = 1: an address is unique even when the name is not';
    is code_of($c->cmd('RCPT TO:<jdoe@example.com>')), '250 2.1.5', 'deny_not_unique = 1: the other John Doe by address';
    is code_of($c->cmd('RCPT TO:<alice@example.com>')), '250 2.1.5', 'deny_not_unique = 1: a unique name';
    $srv->stop_ok('deny_not_unique = 1');
}

# -- the rcpt.kind note ---------------------------------------------------------------
{
    my $srv = server(plugins => ['directory', 'tester', 'queue_spool']);
    for my $case (['bob@example.com', 'person'], ['staff@example.com', 'group'],
                  ['sales@example.com', 'group'], ['asmith@example.com', 'person']) {
        my ($addr, $kind) = @$case;
        $srv->write_conf('tester.ini', "[rcpt]\nverdict = OK\ncode = 250\nshow_note = rcpt.kind.$addr\n");
        is $srv->hup, 'done', "reload for $addr";
        my $c = session($srv);
        my $r = $c->cmd("RCPT TO:<$addr>");
        like $r->{text}, qr/note rcpt\.kind\.\Q$addr\E=$kind$/, "rcpt.kind.$addr = $kind";
        $c->close;
    }
    $srv->stop_ok('rcpt.kind');
}

# -- VRFY --------------------------------------------------------------------------------
{
    my $srv = server();
    my $c = $srv->client;
    $c->cmd('EHLO client.test');
    my @cases = (
        ['bob', '250 2.1.5', qr/Bob Example <bob\@example\.com>$/, 'a short name'],
        ['<bob@example.com>', '250 2.1.5', qr/Bob Example <bob\@example\.com>$/, 'an address in <>'],
        ['bob@example.com', '250 2.1.5', qr/Bob Example <bob\@example\.com>$/, 'a bare address'],
        ['Bob Example', '250 2.1.5', qr/Bob Example <bob\@example\.com>$/, 'a full name'],
        ['robert@example.com', '250 2.1.5', qr/Bob Example <bob\@example\.com>$/, 'an alias'],
        ['asmith', '553 5.1.4', qr/not unique/, 'an ambiguous short name'],
        ['John Doe', '553 5.1.4', qr/not unique/, 'an ambiguous full name'],
        ['staff@example.com', '550 5.7.1', qr/<staff\@example\.com> is a group/, 'a group by address'],
        ['Sales Team', '550 5.7.1', qr/<sales\@example\.com> is a group/, 'a group by name'],
        ['nobody', '550 5.1.1', qr/not a valid user/, 'an unknown name'],
        ['nobody@example.com', '550 5.1.1', qr/not a valid user/, 'an unknown local address'],
        ['someone@other.org', '252 2.5.2', qr/Cannot VRFY/, 'an address elsewhere: 252'],
    );
    for my $t (@cases) {
        my $r = $c->cmd("VRFY $t->[0]");
        is code_of($r), $t->[1], "VRFY $t->[0]: $t->[1] ($t->[3])";
        like $r->{text}, $t->[2], "  text: $r->{text}";
    }
    $srv->stop_ok('VRFY');
}
{
    my $srv = server(vrfy => 0);
    my $c = $srv->client;
    $c->cmd('EHLO client.test');
    is code_of($c->cmd('VRFY bob')), '252 2.5.2', 'vrfy = 0: the host answers 252, the directory is not asked';
    $srv->stop;
}

# -- reload on SIGHUP -----------------------------------------------------------------
{
    my $srv = server();
    my $c = session($srv);
    is $c->cmd('RCPT TO:<carol@example.com>')->{code}, 550, 'carol is not there yet';
    $srv->write_conf('directory', $DIRECTORY . "person \"Carol New\" address=carol\@example.com\n");
    is $srv->hup, 'done', 'SIGHUP reloads';
    is $c->cmd('RCPT TO:<carol@example.com>')->{code}, 550, 'a session started before the reload keeps its directory';
    my $c2 = session($srv);
    is $c2->cmd('RCPT TO:<carol@example.com>')->{code}, 250, 'a new session sees carol';
    $srv->write_conf('directory', $DIRECTORY . "person \"Broken\" adress=x\@example.com\n");
    is $srv->hup, 'failed', 'a broken directory fails the reload';
    like $srv->log_text, qr/directory:10: unknown key 'adress'/, '  with directory:10 in the log';
    my $c3 = session($srv);
    is $c3->cmd('RCPT TO:<carol@example.com>')->{code}, 250, 'the previous directory stays in use';
    $srv->stop_ok('reload');
}

# -- the shipped conf/directory ---------------------------------------------------------
{
    my $srv = Upesi::Test->new(plugins => ['directory', 'queue_spool'], smtp => { vrfy => 1 });
    $srv->start;
    my $c = session($srv);
    is $c->cmd('RCPT TO:<bob@example.com>')->{code}, 250, 'conf/directory: bob@example.com';
    is $c->cmd('RCPT TO:<staff@example.com>')->{code}, 250, 'conf/directory: staff@example.com';
    is $c->cmd('RCPT TO:<alice@example.com>')->{code}, 550, 'conf/directory: nobody else';
    like $c->cmd('VRFY bob')->{text}, qr/Bob Example <bob\@example\.com>$/, 'conf/directory: VRFY bob';
    $srv->stop_ok('shipped conf/directory');
}

# -- errors in the file and in directory.ini ----------------------------------------------
sub check_with {
    my ($directory, $ini) = @_;
    my $s = Upesi::Test->new(plugins => ['directory', 'queue_spool'],
                             ini => { 'directory.ini' => $ini // "file = directory\n",
                                      defined $directory ? ('directory' => $directory) : () });
    unlink $s->conf . '/directory' unless defined $directory;
    return ($s, upesi_check($s->conf));
}
my @bad = (
    ["", qr/directory:0: no person or group/, 'an empty file'],
    ["# only\n\n# comments\n", qr/directory:0: no person or group/, 'a file of comments'],
    ["person \"A\" address=a\@example.com\npersn \"B\" address=b\@example.com\n", qr/directory:2: 'persn': a line starts with person or group/, 'an unknown keyword'],
    ["person \"A\"\n", qr/directory:1: person "A" has no address=/, 'a person without address'],
    ["person \"A\" address=a-at-example.com\n", qr/directory:1: address: 'a-at-example\.com' is not an internet address/, 'a bad address'],
    ["person \"A\" address=a\@example.com colour=blue\n", qr/directory:1: unknown key 'colour' for a person/, 'an unknown key'],
    ["person \"A address=a\@example.com\n", qr/directory:1: unterminated quoted string/, 'an unterminated quote'],
    ["person address=a\@example.com\n", qr/directory:1: person needs a name first/, 'a person without a name'],
    ["person \"A\" address=a\@example.com short=\"a b\"\n", qr/directory:1: short: 'a b' is not a short name/, 'a short name with a blank'],
    ["person \"A\" address=a\@example.com\n\ngroup g\@example.com members=a,zed\n", qr/directory:3: group 'g\@example\.com': member 'zed' is not in the directory/, 'a member not in the directory'],
    ["person \"A\" address=a\@example.com address=b\@example.com\n", qr/directory:1: address given twice/, 'two addresses'],
    ["person \"A\" address=a\@example.com\nbogus\nperson \"B\"\n", qr/directory:2: .*\(and 1 more error above\)/, 'several errors: the first, and a count'],
    ["person \"A\" address=a\@example.com\n\0person \"B\" address=b\@example.com\n", qr/directory:2: NUL byte/, 'a NUL byte'],
);
for my $t (@bad) {
    my ($s, $exit, $out) = check_with($t->[0]);
    isnt $exit, 0, "-t refuses $t->[2]";
    like $out, qr/directory\.ini: .*$t->[1]/, "  with file:line: $t->[2]" or diag $out;
}
{
    my ($s, $exit, $out) = check_with("person \"A\" address=a\@example.com\nbogus\nperson \"B\"\n");
    like $out, qr/directory:3: person "B" has no address=/, 'the other errors are logged with their lines' or diag $out;
}
{
    my ($s, $exit, $out) = check_with(undef);
    isnt $exit, 0, '-t refuses a missing directory file';
    like $out, qr/directory:0: cannot open: No such file/, '  cannot open, with the path' or diag $out;
}
{
    my ($s, $exit, $out) = check_with('', "file = subdir\n");
    mkdir $s->conf . '/subdir';
    ($exit, $out) = upesi_check($s->conf);
    isnt $exit, 0, '-t refuses a directory given as the file';
    like $out, qr/subdir:0: not a regular file/, '  not a regular file' or diag $out;
}
SKIP: {
    skip 'root reads a mode 000 file', 2 if $> == 0;
    my ($s) = check_with("person \"A\" address=a\@example.com\n");
    chmod 0, $s->conf . '/directory';
    my ($exit, $out) = upesi_check($s->conf);
    isnt $exit, 0, '-t refuses an unreadable file';
    like $out, qr/directory:0: cannot open: Permission denied/, '  permission denied' or diag $out;
}
for my $bad (['deny_not_unique = 2', qr/deny_not_unique: expected a boolean \(0\/1, yes\/no, on\/off, true\/false\), got '2'/],
             ['file =', qr/file: empty/],
             ['files = x', qr/unknown key 'files'/]) {
    my ($s, $exit, $out) = check_with($DIRECTORY, "; settings\n$bad->[0]\n");
    isnt $exit, 0, "-t refuses '$bad->[0]'";
    like $out, qr/directory\.ini:2: .*$bad->[1]/, '  with directory.ini:2' or diag $out;
}
{
    my ($s, $exit, $out) = check_with($DIRECTORY, '');
    is $exit, 0, 'an empty directory.ini: file defaults to "directory"' or diag $out;
}

# -- bad input at RCPT -------------------------------------------------------------------
{
    my $srv = server();
    my $c = session($srv);
    is code_of($c->cmd('RCPT TO:<@a.example,@b.example:bob@example.com>')), '250 2.1.5', 'a source route: the mailbox is looked up';
    my $r = $c->cmd('RCPT TO:<bob@example.com> (a comment)');
    ok $r && $r->{code} =~ /^(250|5\d\d)$/, "a comment after the path: a clear reply ($r->{code})";
    $r = $c->cmd('RCPT TO:<' . ('a' x 1000) . '@example.com>');
    ok $r && $r->{code} >= 500 && $r->{code} < 600, "a 1000-character local part: $r->{code} " . ($r->{enhanced} // '');
    is code_of($c->cmd("RCPT TO:<j\xc3\xb6rg\@example.com>")), '553 5.6.7', 'a UTF-8 local part without SMTPUTF8: 553 5.6.7';
    is $c->cmd('NOOP')->{code}, 250, 'the session goes on';
    $srv->stop_ok('bad input');
}
{
    my $srv = server(error_limit => 20);
    my $c = session($srv);
    my $batch = join '', map { "RCPT TO:<nobody$_\@example.com>\r\n" } 1 .. 10000;
    $c->send_raw($batch);
    my @r;
    while (my $r = $c->read_reply) { push @r, $r }
    my @refused = grep { $_->{code} == 550 } @r;
    is scalar @refused, 21, '10,000 unknown recipients: 21 refusals (error_limit = 20) ...';
    is code_of($r[-1]), '421 4.7.0', '... then 421 4.7.0';
    ok $c->closed(5), '... and the connection is closed';
    $srv->stop_ok('error_limit');
}

done_testing;
