#!/usr/bin/perl
# helo_syntax.t - the argument of EHLO/HELO (issue 22 item 3).
#
# The probe: ESC, BEL, 8-bit bytes and a 1,100-character name were taken
# and written raw into the Received header ("from evil^[[31m^G.example")
# and the log.  Now: at most 255 octets, never a control byte, DEL or a
# byte over 127 (501 5.5.2), whatever helo_strict says; helo_strict = 1
# (the default) also wants an RFC 5321 Domain or address literal, 0 takes
# any other printable ASCII (Domino's leniency).  A refused name is logged
# with its control bytes as \xNN.
use strict;
use warnings;
use FindBin;
use lib "$FindBin::Bin/../lib";
use Test::More;
use Upesi::Test;

deadline(90);

my @never = (
    ['ESC and BEL',  "evil\e[31m\a.example"],
    ['8-bit bytes',  "b\xfccher.example"],
    ['1,100 octets', ('a' x 50 . '.') x 21 . 'example'],
    ['DEL',          "del\x7f.example"],
);

sub deliver {
    my ($srv, $verb, $name, $subject) = @_;
    my $c = $srv->client;
    my $r = $c->cmd("$verb $name");
    return $r unless $r && $r->{code} == 250;
    $c->cmd('MAIL FROM:<a@example.org>');
    $c->cmd('RCPT TO:<bob@example.com>');
    $c->cmd('DATA');
    $r = $c->send_data("Subject: $subject\r\n\r\nbody\r\n");
    $c->cmd('QUIT');
    return $r;
}

sub stored {
    my ($srv, $subject) = @_;
    my ($m) = grep { ($_->{message} // '') =~ /^Subject: \Q$subject\E\r$/m } $srv->spool;
    return $m ? $m->{message} : "";
}

for my $strict (1, 0) {
    my $mode = $strict ? 'strict' : 'lenient';
    my $srv = Upesi::Test->new(smtp => { local_domains => 'example.com',
                                         helo_strict => $strict });
    $srv->start;
    for my $case (@never) {
        my ($what, $name) = @$case;
        for my $verb ('EHLO', 'HELO') {
            my $c = $srv->client;
            my $r = $c->cmd("$verb $name");
            is $r && "$r->{code} " . ($r->{enhanced} // ''), '501 5.5.2',
                "$mode: $verb with $what: 501 5.5.2" or diag $c->{transcript};
            like $r ? $r->{text} : '', qr/HELO\/EHLO argument/, "$mode: ... with a clear text"
                if $verb eq 'EHLO';
            is $c->cmd('MAIL FROM:<a@example.org>')->{code}, 503,
                "$mode: $verb with $what: no HELO is known afterwards";
            $c->close;
        }
    }
    my $log = $srv->log_text;
    ok $log !~ /[\x00-\x08\x0b-\x1f\x7f]/, "$mode: no control byte in the log";
    like $log, qr/EHLO refused: .*evil\\x1b\[31m\\x07\.example/,
        "$mode: the refused name is logged, control bytes as \\xNN";

    # the good ones, both modes
    for my $name ('mail.example.net', 'under_score.example', '[127.0.0.1]',
                  '[IPv6:::1]', 'localhost', '192.0.2.1') {
        my $r = deliver($srv, 'EHLO', $name, "good $name");
        is $r && $r->{code}, 250, "$mode: EHLO $name: a message is accepted";
        like stored($srv, "good $name"), qr/\AReceived: from \Q$name\E \(/,
            "$mode: ... Received: from $name";
    }

    # names only the lenient mode takes
    for my $name ('bad!name', '-dash.example', 'a..b', 'trailing.dot.', "x_{}.example") {
        my $r = deliver($srv, 'HELO', $name, "odd $name");
        if ($strict) {
            is $r && "$r->{code} " . ($r->{enhanced} // ''), '501 5.5.2',
                "strict: HELO $name: 501 5.5.2";
        } else {
            is $r && $r->{code}, 250, "lenient: HELO $name: accepted";
            like stored($srv, "odd $name"), qr/\AReceived: from \Q$name\E \(/,
                "lenient: ... Received: from $name";
        }
    }
    my @m = $srv->spool;
    ok !grep({ $_->{raw} =~ /[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\xff]/ } @m),
        "$mode: no control or 8-bit byte in any stored message";
    $srv->stop_ok("upesi ($mode)");
}

done_testing;
