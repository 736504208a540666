#!/usr/bin/perl
# strict821.t - the strict821 plugin against the real host: address_syntax,
# line_syntax and nonstandard_line_termination, each value, for commands
# ended by CRLF, bare LF and bare CR, and for message data with bare line
# ends (docs/plugins/strict821.md).
use strict;
use warnings;
use FindBin;
use lib "$FindBin::Bin/../lib";
use Test::More;
use Upesi::Test;

deadline(120);

sub server {
    my (%ini) = @_;
    my $text = join '', map { "$_ = $ini{$_}\n" } sort keys %ini;
    my $srv = Upesi::Test->new(plugins => ['strict821', 'queue_spool'],
                               smtp => { vrfy => 1, error_limit => 100 },
                               ini => { 'strict821.ini' => $text });
    $srv->start;
    return $srv;
}

# send BYTES as they are, read one reply
sub raw {
    my ($c, $bytes) = @_;
    $c->send_raw($bytes);
    return $c->read_reply;
}

sub code_of { my ($r) = @_; $r ? "$r->{code} " . ($r->{enhanced} // '') : 'no reply' }

# -- defaults: lenient ---------------------------------------------------------
{
    my $srv = server();
    my $c = $srv->client;
    is raw($c, "EHLO lf.test\n")->{code}, 250, 'default: EHLO ended by LF accepted';
    is $c->cmd('MAIL FROM: <a@example.org>')->{code}, 250, 'default: space after FROM: accepted';
    is $c->cmd('RCPT TO:bob@example.com')->{code}, 250, 'default: RCPT without <> accepted';
    is raw($c, "DATA\n")->{code}, 354, 'default: DATA ended by LF accepted';
    my $r = raw($c, "Subject: bare\nline one\nline two\r\n.\r\n");
    is $r->{code}, 250, 'default: data with bare LF accepted' or diag code_of($r);
    my @m = $srv->wait_spool(1);
    is scalar @m, 1, 'the message is in the spool';
    my (undef, $body) = strip_received($m[0]{message} // '');
    is $body, "Subject: bare\r\nline one\r\nline two\r\n", 'bare LF stored as CRLF';
    $r = raw($c, "MAIL FROM:<a\@example.org>\rNOOP\r\n");
    is $r->{code}, 250, 'default: MAIL ended by bare CR accepted';
    $srv->stop_ok('default strict821');
}

# -- address_syntax = 1 ----------------------------------------------------------
{
    my $srv = server(address_syntax => 1);
    my $c = $srv->client;
    $c->cmd('EHLO strict.test');
    my @mail = (
        ['MAIL FROM: <a@example.org>', 501, '5.1.7', 'a space after FROM:'],
        ['MAIL FROM:a@example.org', 501, '5.1.7', 'no <>'],
        ['MAIL FROM:<a@example.org>  SIZE=100', 501, '5.1.7', 'two spaces before a parameter'],
        ['MAIL FROM:<a@example.org> ', 501, '5.1.7', 'a trailing space'],
        ['MAIL FROM:< a@example.org>', 501, '5.1.7', 'a space inside <>'],
    );
    for my $t (@mail) {
        my $r = $c->cmd($t->[0]);
        is code_of($r), "$t->[1] $t->[2]", "address_syntax = 1: $t->[3]: $t->[1] $t->[2]";
    }
    # the host itself refuses these; strict821 never sees them
    is $c->cmd('MAIL  FROM:<a@example.org>')->{code}, 501, 'two spaces after MAIL: 501';
    my $r = $c->cmd('MAIL FROM:<>');
    is $r->{code}, 250, 'address_syntax = 1: the null sender <> accepted';
    $c->cmd('RSET');
    $r = $c->cmd('mail from:<a@example.org> SIZE=100');
    is $r->{code}, 250, 'address_syntax = 1: lower-case verb, <path> and a parameter accepted';
    my @rcpt = (
        ['RCPT TO: <bob@example.com>', 501, '5.1.3', 'a space after TO:'],
        ['RCPT TO:<bob@example.com', 501, '5.1.3', 'an unclosed <'],
        ['RCPT TO:bob@example.com', 501, '5.1.3', 'no <>'],
    );
    for my $t (@rcpt) {
        $r = $c->cmd($t->[0]);
        is code_of($r), "$t->[1] $t->[2]", "address_syntax = 1: $t->[3]: $t->[1] $t->[2]";
    }
    like $r->{text}, qr/enclosed in <>.*RCPT TO:<address>/, 'the reply says what is wrong and what is expected';
    $r = $c->cmd('RCPT TO:<bob@example.com>');
    is $r->{code}, 250, 'address_syntax = 1: RCPT TO:<address> accepted';
    $r = $c->cmd('RCPT TO:<"bob smith"@example.com>');
    is $r->{code}, 250, 'address_syntax = 1: a blank inside a quoted local part is no syntax error';
    $r = $c->cmd('RCPT TO:<@a.example,@b.example:bob@example.com>');
    is $r->{code}, 250, 'address_syntax = 1: a source route is RFC 821 syntax';
    is raw($c, "RCPT TO:bob\@example.com\n")->{code}, 501,
        'address_syntax = 1 alone: an LF-ended command is judged on its syntax only';
    $srv->stop_ok('address_syntax = 1');
}

# -- line_syntax = 1 and nonstandard_line_termination = 0 ---------------------------
for my $setting (['line_syntax', 1], ['nonstandard_line_termination', 0]) {
    my ($key, $value) = @$setting;
    my $srv = server($key => $value);
    my $what = "$key = $value";
    my $c = $srv->client;
    my $r = raw($c, "EHLO lf.test\n");
    is code_of($r), '500 5.5.2', "$what: EHLO ended by bare LF: 500 5.5.2";
    like $r->{text}, qr/CRLF/, "$what: the reply names CRLF";
    is $c->cmd('EHLO crlf.test')->{code}, 250, "$what: EHLO ended by CRLF accepted";
    is code_of(raw($c, "MAIL FROM:<a\@example.org>\n")), '500 5.5.2', "$what: MAIL ended by LF refused";
    is code_of(raw($c, "MAIL FROM:<a\@example.org>\rNOOP\r\n")), '500 5.5.2', "$what: MAIL ended by bare CR refused";
    is $c->read_reply->{code}, 250, "$what: the NOOP after the bare CR is a command of its own";
    is $c->cmd('MAIL FROM: <a@example.org>')->{code}, 250, "$what: address syntax is not checked (address_syntax = 0)";
    is code_of(raw($c, "RCPT TO:<bob\@example.com>\n")), '500 5.5.2', "$what: RCPT ended by LF refused";
    is $c->cmd('RCPT TO:<bob@example.com>')->{code}, 250, "$what: RCPT ended by CRLF accepted";
    is code_of(raw($c, "DATA\n")), '500 5.5.2', "$what: DATA ended by LF refused";
    is code_of(raw($c, "VRFY bob\n")), '500 5.5.2', "$what: VRFY ended by LF refused";
    is code_of(raw($c, "XFOO\n")), '500 5.5.2', "$what: an unknown command ended by LF: 500 5.5.2";
    is code_of($c->cmd('XFOO')), '500 5.5.1', "$what: an unknown command ended by CRLF: the host's 500 5.5.1";
    is $c->cmd('DATA')->{code}, 354, "$what: DATA ended by CRLF: 354";
    $r = raw($c, "Subject: bare\nbody\r\n.\r\n");
    is code_of($r), '550 5.6.0', "$what: data with a bare LF refused at the end: 550 5.6.0";
    is $c->cmd('MAIL FROM:<a@example.org>')->{code}, 250, "$what: a new transaction after the refusal";
    $c->cmd('RCPT TO:<bob@example.com>');
    $c->cmd('DATA');
    $r = raw($c, "Subject: bare cr\rbody\r\n.\r\n");
    is code_of($r), '550 5.6.0', "$what: data with a bare CR refused";
    $c->cmd('MAIL FROM:<a@example.org>');
    $c->cmd('RCPT TO:<bob@example.com>');
    $c->cmd('DATA');
    $r = $c->send_data("Subject: clean\r\n\r\nonly CRLF here");
    is $r->{code}, 250, "$what: data with CRLF only accepted";
    my @m = $srv->wait_spool(1);
    is scalar @m, 1, "$what: exactly the clean message was stored";
    # a bare LF before the dot never ends the data (smuggling)
    $c->cmd('MAIL FROM:<a@example.org>');
    $c->cmd('RCPT TO:<bob@example.com>');
    $c->cmd('DATA');
    $c->send_raw("Subject: smuggle\r\n\r\nx\n.\nMAIL FROM:<evil\@example.org>\r\n");
    $r = $c->send_data('');
    is code_of($r), '550 5.6.0', "$what: LF.LF did not end the data; the whole message was refused";
    my $stat = $srv->stat('SMTP.Strict821');
    ok $stat && ($stat->{'SMTP.Strict821.LineSyntax'} // 0) >= 6, "$what: SMTP.Strict821.LineSyntax counts the refusals"
        or diag explain $stat;
    $srv->stop_ok($what);
}

# -- both strict at once: CRLF and syntax ------------------------------------------
{
    my $srv = server(address_syntax => 1, line_syntax => 1, nonstandard_line_termination => 0);
    my $c = $srv->client;
    $c->cmd('EHLO all.test');
    is code_of(raw($c, "MAIL FROM: <a\@example.org>\n")), '500 5.5.2', 'all strict: the line end is judged first';
    is code_of($c->cmd('MAIL FROM: <a@example.org>')), '501 5.1.7', 'all strict: then the syntax';
    $srv->stop_ok('all strict');
}

# -- bad settings ----------------------------------------------------------------
for my $bad (['address_syntax = 2', qr/address_syntax: expected a boolean \(0\/1, yes\/no, on\/off, true\/false\), got '2'/],
             ['line_syntax = maybe', qr/line_syntax: expected a boolean \(0\/1, yes\/no, on\/off, true\/false\), got 'maybe'/],
             ['nonstandard_line_termination = -1', qr/nonstandard_line_termination: expected a boolean \(0\/1, yes\/no, on\/off, true\/false\), got '-1'/],
             ['strict = 1', qr/unknown key 'strict'$/m]) {
    my $s = Upesi::Test->new(plugins => ['strict821', 'queue_spool'],
                             ini => { 'strict821.ini' => "; comment\n$bad->[0]\n" });
    my ($exit, $out) = upesi_check($s->conf);
    isnt $exit, 0, "-t refuses '$bad->[0]'";
    like $out, qr/strict821\.ini:2: .*$bad->[1]/, "  with strict821.ini:2 and the reason" or diag $out;
}
{
    my $s = Upesi::Test->new(plugins => ['strict821', 'queue_spool']);
    my ($exit, $out) = upesi_check($s->conf);
    is $exit, 0, 'the shipped conf/strict821.ini passes -t' or diag $out;
}

done_testing;
