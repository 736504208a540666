#!/usr/bin/perl
# spool.t - queue_spool end to end: the real host, real SMTP sessions, and
# the files it leaves in the spool (docs/spool-format.md, DESIGN.md 7).
#
#  - one message lands in queue/ with its envelope, the data byte-exact;
#  - 50 concurrent senders all get 250 and every message is there, whole;
#  - SMTP.Spool.Commits < SMTP.Spool.Messages: the fsyncs were shared;
#  - nothing is left in tmp/.
use strict;
use warnings;
use FindBin;
use lib "$FindBin::Bin/../lib";
use Test::More;
use Upesi::Test;

need_built('plugins/queue_spool.so');
deadline(120);

my $srv = Upesi::Test->new(
    smtp    => { local_domains => 'example.com', max_sessions => 200,
                 plugin_timeout => 30 },
    plugins => ['queue_spool'],
    ini     => { 'queue_spool.ini' => "fsync = 1\nmax_batch = 256\n" },
);
$srv->start;
my $spool = $srv->spooldir;

ok(-d "$spool/tmp" && -d "$spool/queue", 'tmp/ and queue/ created');
is((stat "$spool/queue")[2] & 07777, 0700, 'queue/ is mode 0700');

sub dir_entries {
    my ($d) = @_;
    opendir my $dh, $d or return ();
    return grep { !/^\./ } readdir $dh;
}

# A session brought up to the point where only the end of data is missing.
# $data is the message as it should be stored (CRLF lines); it is sent
# dot-stuffed.
sub open_message {
    my (%m) = @_;
    my $c = $srv->client;
    my $r = $c->cmd("EHLO $m{helo}");
    die 'EHLO: ' . ($r ? $r->{raw} : $c->error) unless $r && $r->{code} == 250;
    $r = $c->cmd("MAIL FROM:<$m{from}>");
    die 'MAIL: ' . ($r ? $r->{raw} : $c->error) unless $r && $r->{code} == 250;
    for my $to (@{ $m{to} }) {
        $r = $c->cmd("RCPT TO:<$to>");
        die "RCPT $to: " . ($r ? $r->{raw} : $c->error)
            unless $r && $r->{code} == 250;
    }
    $r = $c->cmd('DATA');
    die 'DATA: ' . ($r ? $r->{raw} : $c->error) unless $r && $r->{code} == 354;
    (my $wire = $m{data}) =~ s/^\./../mg;
    $c->send_raw($wire);
    return $c;
}

sub queued_id {
    my ($r) = @_;
    return $r && $r->{code} == 250
        && $r->{text} =~ /^2\.0\.0 Ok: queued as (\S+)$/ ? $1 : undef;
}

# -- one message, byte-exact ------------------------------------------

my $data = "From: Alice <alice\@example.org>\r\n"
         . "To: bob\@example.com\r\n"
         . "Subject: spool test\r\n"
         . "\r\n"
         . "line one\r\n"
         . ".a line that starts with a dot\r\n"
         . "..two dots\r\n"
         . "8bit: \xc3\xa9\xe2\x82\xac \x01\x7f\r\n"
         . ('x' x 998) . "\r\n"
         . ('0123456789abcdef' x 4096) . "\r\n"      # past one 64 KiB chunk
         . "last line\r\n";
my $c = open_message(helo => 'client.test.example', from => 'alice@example.org',
                     to => ['bob@example.com', 'carol@example.com'],
                     data => $data);
$c->send_raw(".\r\n");
my $r = $c->read_reply;
my $qid = queued_id($r);
ok(defined $qid, 'end of data answered 250 2.0.0 Ok: queued as <id>')
    or diag($r ? $r->{raw} : $c->error);
$c->cmd('QUIT');
$qid //= 'none';

my $file = "$spool/queue/$qid";
ok(-f $file, "queue/$qid exists");
is((stat $file)[2] & 07777, 0600, 'queue file is mode 0600');

my $m = Upesi::Test::parse_spool_file(slurp($file) // '');
my @keys = map { /^([A-Za-z-]+):/ ? $1 : '?' } split /\n/, $m->{envelope};
is_deeply(\@keys,
          [qw(Upesi-Spool Queue-Id Arrival Client-IP Client-Port Client-Name
              Helo Protocol TLS Auth Sender Recipient Recipient)],
          'envelope keys, in order');
my $env = $m->{env};
is($env->{'Upesi-Spool'}, '1', 'format version 1');
is($env->{'Queue-Id'}, $qid, 'Queue-Id is the one in the reply');
like($env->{Arrival} // '', qr/^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ$/,
     'Arrival is RFC 3339 UTC');
is($env->{'Client-IP'}, '127.0.0.1', 'Client-IP');
like($env->{'Client-Port'} // '', qr/^\d+$/, 'Client-Port');
ok(length($env->{'Client-Name'} // ''), 'Client-Name present');
is($env->{Helo}, 'client.test.example', 'Helo');
is($env->{Protocol}, 'ESMTP', 'Protocol');
is($env->{TLS}, 'none', 'TLS');
is($env->{Auth}, 'none', 'Auth');
is($env->{Sender}, 'alice@example.org', 'Sender');
is_deeply($m->{recipients}, ['bob@example.com', 'carol@example.com'],
          'one Recipient line per recipient, in order');
my ($received, $rest) = strip_received($m->{message} // '');
ok(defined $received, 'the message starts with the Received header');
ok(length($m->{message} // '') >= length($data)
   && substr($m->{message}, -length $data) eq $data,
   'the data is stored byte-exact (dot-unstuffed, CRLF)');

# the null sender
$c = open_message(helo => 'client.test.example', from => '',
                  to => ['bob@example.com'],
                  data => "Subject: bounce\r\n\r\nx\r\n");
$c->send_raw(".\r\n");
my $qid2 = queued_id($c->read_reply) // 'none';
$c->close;
$m = Upesi::Test::parse_spool_file(slurp("$spool/queue/$qid2") // '');
is($m->{env}{Sender}, '<>', 'the null sender is written <>');

# -- 50 concurrent senders ----------------------------------------------
# All 50 sessions are brought up to the end of data, then the 50 ends of
# data go out back to back: the group commit must share fsyncs among them.

my $before = $srv->stat('SMTP.Spool') // {};
my $n = 50;
my @sess;
for my $i (1 .. $n) {
    my $body = "Subject: concurrent $i\r\n\r\n"
             . join('', map { "message $i line $_ " . ('y' x ($i * 3)) . "\r\n" }
                        1 .. $i * 20);
    push @sess, { i => $i, body => $body,
                  c => open_message(helo => "sender$i.test.example",
                                    from => "s$i\@example.org",
                                    to => ["r$i\@example.com"],
                                    data => $body) };
}
$_->{c}->send_raw(".\r\n") for @sess;

my ($ok250, $whole) = (0, 0);
for my $s (@sess) {
    my $id = queued_id($s->{c}->read_reply(30));
    $s->{c}->close;
    next unless defined $id;
    $ok250++;
    my $q = Upesi::Test::parse_spool_file(slurp("$spool/queue/$id") // '');
    $whole++ if ($q->{env}{Sender} // '') eq "s$s->{i}\@example.org"
             && ($q->{recipients}[0] // '') eq "r$s->{i}\@example.com"
             && defined $q->{message}
             && length $q->{message} >= length $s->{body}
             && substr($q->{message}, -length $s->{body}) eq $s->{body};
}
is($ok250, $n, "all $n concurrent senders got 250");
is($whole, $n, "all $n messages are in queue/, whole");

my $after = $srv->stat('SMTP.Spool') // {};
my $msgs = ($after->{'SMTP.Spool.Messages'} // 0)
         - ($before->{'SMTP.Spool.Messages'} // 0);
my $commits = ($after->{'SMTP.Spool.Commits'} // 0)
            - ($before->{'SMTP.Spool.Commits'} // 0);
is($msgs, $n, "SMTP.Spool.Messages counted $n");
ok($commits > 0 && $commits < $msgs,
   "group commit: $commits commits for $msgs messages");
is($after->{'SMTP.Spool.Errors'} // 0, 0, 'no SMTP.Spool.Errors');

is(scalar(dir_entries("$spool/queue")), $n + 2,
   'queue/ holds exactly the messages sent');
is_deeply([dir_entries("$spool/tmp")], [], 'nothing left in tmp/');

# -- small and large messages take different paths ---------------------
# Up to 64 KiB the commit thread creates and writes the file; a larger one
# is written by the hook, 64 KiB at a time.  Both must come out whole,
# mode 0600, and both must recreate tmp/ if it was removed under them.

sub send_one {
    my ($data) = @_;
    my $c = open_message(helo => 'paths.test.example',
                         from => 'paths@example.org',
                         to => ['bob@example.com'], data => $data);
    $c->send_raw(".\r\n");
    my $r = $c->read_reply(30);
    $c->close;
    my $id = queued_id($r);
    diag($r ? $r->{raw} : 'no reply') unless defined $id;
    return $id;
}

for my $case (['small', 60 * 1024], ['large', 300 * 1024]) {
    my ($what, $size) = @$case;
    rmdir "$spool/tmp" or diag("rmdir $spool/tmp: $!");
    ok(!-d "$spool/tmp", "$what: tmp/ removed under the running server");
    my $body = "Subject: $what\r\n\r\n";
    my $i = 0;
    $body .= sprintf("%06d %s\r\n", $i++, 'z' x 70) while length $body < $size;
    my $id = send_one($body);
    ok(defined $id, "$what message (" . length($body) . " bytes): 250");
    my $path = "$spool/queue/" . ($id // 'none');
    is(((stat $path)[2] // 0) & 07777, 0600, "$what: queue file mode 0600");
    my $q = Upesi::Test::parse_spool_file(slurp($path) // '');
    ok(defined $q->{message} && length $q->{message} >= length $body
       && substr($q->{message}, -length $body) eq $body,
       "$what: stored byte-exact");
    ok(-d "$spool/tmp", "$what: tmp/ recreated");
    is_deeply([dir_entries("$spool/tmp")], [], "$what: nothing left in tmp/");
}

# The client sends the end of its message and QUIT, then half-closes
# (shutdown SHUT_WR) while the message is being made durable: it still
# gets its 250 and its 221, or it would send the message again.
{
    my $c = $srv->client;
    $c->cmd('EHLO client.test');
    $c->cmd('MAIL FROM:<half@example.org>');
    $c->cmd('RCPT TO:<bob@example.com>');
    my $r = $c->cmd('DATA');
    my $body = "Subject: half-close\r\n\r\n" . (("y" x 70) . "\r\n") x 700;
    $c->send_raw($body . ".\r\nQUIT\r\n");
    shutdown($c->{sock}, 1);
    my ($end, $quit) = ($c->read_reply(10), $c->read_reply(10));
    is join(' ', map { $_ ? $_->{code} : 'none' } $end, $quit), '250 221',
        'a client that half-closes after its last commands gets their replies';
    ok $srv->wait_log(qr/disconnect 127\.0\.0\.1 \(QUIT\)/, 5), '... and the session ends by its QUIT';
}

$srv->stop_ok;
done_testing();
