#!/usr/bin/perl
# lua_examples.t - the example scripts of lua/examples/ as shipped (only
# their constants shortened for time): greylisting (deferred, too early,
# passed, known; a new triplet starts over), the per-sender-domain rate
# limit (over the limit: 451 4.7.1; other domains, the null sender and
# exempt domains are not limited; the window ends), and the subject rule
# (reject, tag with a forged tag removed, quarantine on a body match).
# The DNSBL scoring example needs DNS: lua_dns.t.
use strict;
use warnings;
use FindBin;
use lib "$FindBin::Bin/../lib";
use Test::More;
use Time::HiRes qw(sleep);
use Upesi::Test;

deadline(120);

sub example {
    my ($name, %subst) = @_;
    my $lua = slurp("$ROOT/lua/examples/$name") // die "no example $name";
    for my $from (keys %subst) {
        $lua =~ s/\Q$from\E/$subst{$from}/ or die "$name: '$from' not found";
    }
    my $srv = Upesi::Test->new(
        smtp    => { local_domains => 'example.com', error_limit => 1000 },
        plugins => [ 'lua', 'queue_spool' ],
        ini     => { 'lua.ini' => "scripts = $name\n", "lua/$name" => $lua },
    );
    $srv->start;
    return $srv;
}

sub rcpt_once {
    my ($srv, $from, $to) = @_;
    my $c = $srv->client;
    $c->cmd('EHLO client.test');
    $c->cmd("MAIL FROM:<$from>");
    my $r = $c->cmd("RCPT TO:<$to>");
    $c->cmd('QUIT');
    $c->close;
    return $r ? "$r->{code} $r->{text}" : 'no reply';
}

# -- greylisting ---------------------------------------------------------------
{
    my $srv = example('greylist.lua', 'local delay = 300 ' => 'local delay = 1 ');
    like rcpt_once($srv, 'a@sender.test', 'bob@example.com'),
        qr/^451 4\.7\.1 Greylisted, please try again later/, 'a new triplet is deferred';
    like rcpt_once($srv, 'a@sender.test', 'bob@example.com'),
        qr/^451 4\.7\.1 Greylisted, please try again in 1 seconds/, 'a retry too early: deferred again';
    like rcpt_once($srv, 'other@sender.test', 'bob@example.com'),
        qr/^451 4\.7\.1 Greylisted, please try again later/, 'another sender is another triplet';
    sleep 1.2;
    like rcpt_once($srv, 'a@sender.test', 'BOB@example.com'),
        qr/^250 /, 'a retry after the delay passes (addresses case-insensitive)';
    like rcpt_once($srv, 'a@sender.test', 'bob@example.com'), qr/^250 /, 'the triplet is known now';
    like rcpt_once($srv, 'a@sender.test', 'carol@example.com'),
        qr/^451 4\.7\.1 Greylisted/, 'a new recipient starts over';
    my $st = $srv->stat('Lua.Greylist');
    is $st->{'Lua.Greylist.Deferred'}, 3, 'Lua.Greylist.Deferred';
    is $st->{'Lua.Greylist.Early'}, 1, 'Lua.Greylist.Early';
    is $st->{'Lua.Greylist.Passed'}, 1, 'Lua.Greylist.Passed';
    ok $srv->wait_log(qr/greylist: grey:127\.0\.0\/a\@sender\.test\/bob\@example\.com passed/, 5),
        'the log shows the triplet that passed (client /24)';
    $srv->stop_ok('greylist');
}

# -- rate limit --------------------------------------------------------------------
{
    my $srv = example('ratelimit.lua', 'local limit = 100 ' => 'local limit = 3 ',
                      'local window = 3600 ' => 'local window = 1 ');
    my $c = $srv->client;
    $c->cmd('EHLO client.test');
    my @codes;
    for (1 .. 4) {
        push @codes, $c->cmd('MAIL FROM:<x@Sender.test>')->{code};
        $c->cmd('RSET');
    }
    is "@codes", '250 250 250 451', 'the fourth transaction from a domain in the window is deferred';
    my $r = $c->cmd('MAIL FROM:<y@sender.test>');
    is "$r->{code} $r->{enhanced}", '451 4.7.1', '... any sender of that domain';
    like $r->{text}, qr/Too many messages from sender\.test/, '... with the domain in the text';
    is $c->cmd('MAIL FROM:<z@other.test>')->{code}, 250, 'another domain is not limited';
    $c->cmd('RSET');
    for (1 .. 5) { $r = $c->cmd('MAIL FROM:<>'); $c->cmd('RSET') }
    is $r->{code}, 250, 'the null sender is not counted';
    for (1 .. 5) { $r = $c->cmd('MAIL FROM:<me@example.com>'); $c->cmd('RSET') }
    is $r->{code}, 250, 'an exempt domain is not limited';
    sleep 1.2;
    is $c->cmd('MAIL FROM:<x@sender.test>')->{code}, 250, 'a new window starts over';
    is scalar($srv->log_lines(qr/rate limit: sender\.test over 3 per 1s/)), 1, 'one log line per window';
    is $srv->stat('Lua.RateLimit')->{'Lua.RateLimit.Deferred'}, 2, 'Lua.RateLimit.Deferred';
    $srv->stop_ok('ratelimit');
}

# -- subject rule ----------------------------------------------------------------------
{
    my $srv = example('subject.lua');
    my $send = sub {
        my ($data) = @_;
        my $c = $srv->client;
        $c->cmd('EHLO client.test');
        $c->cmd('MAIL FROM:<a@sender.test>');
        $c->cmd('RCPT TO:<bob@example.com>');
        $c->cmd('DATA');
        my $r = $c->send_data($data);
        $c->cmd('QUIT');
        return $r;
    };
    my $r = $send->("Subject: Cheap V1AGRA now\r\n\r\nbuy\r\n");
    is "$r->{code} $r->{enhanced}", '550 5.7.1', 'a subject that matches a reject rule: 550 5.7.1';
    like $r->{text}, qr/rejected for policy reasons/, '... the Domino text';
    is scalar(my @none = $srv->spool), 0, '... nothing queued';

    $r = $send->("Subject: You won the Lottery!\r\nX-Subject-Rule: forged\r\n\r\nclaim it\r\n");
    is $r->{code}, 250, 'a tag rule: accepted';
    my @m = $srv->wait_spool(1, 5);
    my $msg = $m[0]{message} // '';
    like $msg, qr/^X-Subject-Rule: lottery\r$/m, '... tagged X-Subject-Rule: lottery';
    unlike $msg, qr/forged/, '... the forged tag removed';

    $r = $send->("Subject: your invoice\r\n\r\nsee the attachment\r\n");
    is $r->{code}, 250, 'subject matches but the body does not: delivered';
    @m = $srv->wait_spool(2, 5);
    unlike $m[1]{message} // '', qr/X-Subject-Rule/, '... untagged';

    $r = $send->("Subject: Your INVOICE 42\r\n\r\nhello\r\nopen invoice.exe please\r\n");
    is $r->{code}, 250, 'subject and body match a quarantine rule: the client gets 250';
    ok $srv->wait_log(qr/subject rule invoice: quarantine/, 5), 'the rule is logged';
    my @q = glob($srv->spooldir . '/quarantine/*');
    is scalar(@q), 1, '... the message is in the quarantine';
    is scalar(my @two = $srv->spool), 2, '... and not queued';
    my $st = $srv->stat('Lua.SubjectRule');
    is $st->{'Lua.SubjectRule.pills'}, 1, 'Lua.SubjectRule.<name> counts';
    $srv->stop_ok('subject');
}

done_testing;
