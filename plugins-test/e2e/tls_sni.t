#!/usr/bin/perl
# tls_sni.t - several server certificates chosen by the client's server
# name (tls_sni, docs/tls.md): exact names case-insensitively, a wildcard
# for one label only, the default tls_cert for no name or an unknown one,
# over STARTTLS and implicit TLS, TLS 1.3 and 1.2, an ECDSA certificate
# beside RSA ones; the log line names the choice; -t refuses bad tls_sni
# lines at their line; a SIGHUP that replaces a tls_sni certificate serves
# it to new sessions, and a broken one keeps the running generation.
#
# Test certificates are made with openssl into the temp directory.
use strict;
use warnings;
use FindBin;
use lib "$FindBin::Bin/../lib";
use Test::More;
use Upesi::Test;

deadline(180);

plan skip_all => 'openssl is not installed'
    unless system('command -v openssl >/dev/null 2>&1') == 0;

sub run_cmd { Upesi::Test::run_cmd(@_) }

# mkcert(DIR, NAME, CN, TYPE): DIR/NAME.pem and DIR/NAME.key, self-signed;
# TYPE 'rsa' (default) or 'ec' (P-256)
sub mkcert {
    my ($dir, $name, $cn, $type) = @_;
    my @key = ($type // 'rsa') eq 'ec'
        ? ('-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256')
        : ('-newkey', 'rsa:2048');
    my ($exit, $out) = run_cmd(60, 'openssl', 'req', '-x509', @key, '-nodes',
        '-days', '2', '-subj', "/CN=$cn", '-keyout', "$dir/$name.key",
        '-out', "$dir/$name.pem");
    die "openssl req failed: $out" if $exit;
}

# served(SRV, PORT, NAME, STARTTLS, EXTRA...): the CN of the certificate
# the server sends to a client asking for NAME (undef: no SNI at all), and
# the protocol; s_client's whole output third.
my $input_n = 0;
sub served {
    my ($srv, $port, $name, $starttls, @extra) = @_;
    my $file = $srv->tmp . '/s_client.' . ++$input_n;
    spit($file, "QUIT\r\n");
    my @args = ('-connect', "127.0.0.1:$port", @extra,
                defined $name ? ('-servername', $name) : ('-noservername'));
    unshift @args, '-starttls', 'smtp' if $starttls;
    my ($exit, $out) = run_cmd(30, 'sh', '-c', 'exec "$@" < "$0"', $file,
                               'openssl', 's_client', @args);
    my ($cn) = $out =~ /^subject=.*?CN\s*=\s*([^,\s]+)/m;
    my ($proto) = $out =~ /^New, (TLSv[\d.]+)/m;
    return ($cn // '', $proto // '', $out);
}

# smtp.ini lines: Upesi::Test's set_smtp keeps one line per key, and
# tls_sni repeats, so they are appended here (and replaced on a rewrite).
sub set_sni {
    my ($srv, @lines) = @_;
    my $file = $srv->conf . '/smtp.ini';
    my $text = join '', grep { !/^tls_sni\s*=/ } split /^/m, slurp($file);
    $text .= "\n" unless $text =~ /\n\z/;
    spit($file, $text . join('', map { "tls_sni = $_\n" } @lines));
}

# the line number of the first line of the file matching RE
sub line_of {
    my ($file, $re) = @_;
    my @lines = split /\n/, slurp($file);
    for my $i (0 .. $#lines) { return $i + 1 if $lines[$i] =~ $re }
    return 0;
}

my $tmp = Upesi::Test->new->tmp;      # scratch for certificates
mkcert($tmp, 'default', 'mail.test');
mkcert($tmp, 'mx', 'mx.example.org');
mkcert($tmp, 'wild', '*.wild.test', 'ec');
mkcert($tmp, 'mx2', 'mx2.example.org');

my $smtps_port = free_port();
my $srv = Upesi::Test->new(
    smtp => {
        hostname => 'mail.test',
        local_domains => 'example.com',
        tls_cert => 'default.pem',        # relative: in the conf dir
        tls_key => 'default.key',
        smtps_listen => "127.0.0.1:$smtps_port",
        # s_client writes its whole input at once, the content with DATA:
        # an improper pipeliner (improper_pipelining.t), let through here
        improper_pipelining_action => 'ignore',
    },
);
for my $f (qw(default mx wild)) {
    spit($srv->conf . "/$f.pem", slurp("$tmp/$f.pem"));
    spit($srv->conf . "/$f.key", slurp("$tmp/$f.key"));
}
set_sni($srv, 'mx.example.org mx.pem mx.key', "*.wild.test wild.pem $tmp/wild.key");
{
    my ($e, $o) = upesi_check($srv->conf);
    is $e, 0, '-t: tls_sni lines are accepted' or diag $o;
}
$srv->start;
my $port = $srv->port;

# -- which certificate for which name -----------------------------------------
my @cases = (
    [ 'mx.example.org',   'mx.example.org', 'an exact name' ],
    [ 'MX.EXAMPLE.ORG',   'mx.example.org', 'an exact name in upper case' ],
    [ 'a.wild.test',      '*.wild.test',    'one label under the wildcard' ],
    [ 'A.Wild.Test',      '*.wild.test',    'the wildcard, mixed case' ],
    [ 'deep.a.wild.test', 'mail.test',      'two labels under the wildcard: no match, the default' ],
    [ 'wild.test',        'mail.test',      'the wildcard\'s own domain: no match, the default' ],
    [ 'unknown.test',     'mail.test',      'an unknown name: the default' ],
    [ undef,              'mail.test',      'no server name: the default' ],
);
for my $case (@cases) {
    my ($name, $want, $what) = @$case;
    my ($cn, $proto, $out) = served($srv, $port, $name, 1);
    is $cn, $want, "STARTTLS, $what (" . ($name // 'no SNI') . ")" or diag $out;
}
for my $case (@cases[0, 2, 4, 7]) {
    my ($name, $want, $what) = @$case;
    my ($cn, $proto, $out) = served($srv, $smtps_port, $name, 0);
    is $cn, $want, "implicit TLS, $what (" . ($name // 'no SNI') . ")" or diag $out;
}
for my $case (@cases[0, 2, 6]) {
    my ($name, $want, $what) = @$case;
    my ($cn, $proto, $out) = served($srv, $port, $name, 1, '-tls1_2');
    is "$cn $proto", "$want TLSv1.2", "TLS 1.2, $what ($name)" or diag $out;
}
{   # mail flows over a session on a tls_sni certificate
    my $file = $srv->tmp . '/s_client.mail';
    spit($file, "EHLO sni.test\r\nMAIL FROM:<a\@example.org>\r\n"
              . "RCPT TO:<b\@example.com>\r\nDATA\r\nSubject: sni\r\n\r\nhi\r\n.\r\nQUIT\r\n");
    my ($e, $o) = run_cmd(30, 'sh', '-c', 'exec "$@" < "$0"', $file, 'openssl',
        's_client', '-starttls', 'smtp', '-servername', 'x.wild.test',
        '-connect', "127.0.0.1:$port", '-quiet');
    like $o, qr/^250 2\.0\.0 Ok: queued/m, 'a message is accepted over a tls_sni certificate' or diag $o;
    my ($m) = $srv->wait_spool(1, 5);
    like(($m ? $m->{message} : ''), qr/\(using TLSv1\.3 with cipher TLS_/,
         'its Received header names TLS as before');
}

# -- the log says which certificate was served ----------------------------------
my $log = $srv->log_text;
like $log, qr/TLS established: TLSv1\.3 with cipher \S+, SNI MX\.EXAMPLE\.ORG: certificate of tls_sni mx\.example\.org$/m,
    'log: the name asked for and the tls_sni entry chosen';
like $log, qr/TLS established: \S+ with cipher \S+, SNI a\.wild\.test: certificate of tls_sni \*\.wild\.test$/m,
    'log: a wildcard match';
like $log, qr/TLS established: \S+ with cipher \S+, SNI unknown\.test: tls_cert$/m,
    'log: an unknown name gets tls_cert';
like $log, qr/TLS established: TLSv1\.3 with cipher [A-Z0-9_]+$/m,
    'log: without SNI the line is as before';

# -- SIGHUP: a new certificate for a tls_sni name ---------------------------------
spit($srv->conf . '/mx.pem', slurp("$tmp/mx2.pem"));
spit($srv->conf . '/mx.key', slurp("$tmp/mx2.key"));
is $srv->hup, 'done', 'SIGHUP after replacing the tls_sni certificate of mx.example.org';
is((served($srv, $port, 'mx.example.org', 1))[0], 'mx2.example.org',
   'after SIGHUP: new sessions get the new certificate');
is((served($srv, $smtps_port, 'a.wild.test', 0))[0], '*.wild.test',
   'after SIGHUP: the other names are unchanged');

# a broken tls_sni line fails the reload; the running generation stays
set_sni($srv, 'mx.example.org mx.pem mx.key', '*.wild.test wild.pem default.key');
is $srv->hup, 'failed', 'SIGHUP with a key that does not match its certificate fails';
my $sni_line = line_of($srv->conf . '/smtp.ini', qr/^tls_sni = \*\.wild/);
like $srv->log_text, qr/smtp\.ini:\Q$sni_line\E: tls_sni \*\.wild\.test: key \S+default\.key does not belong to the certificate \S+wild\.pem/,
    "... logged at smtp.ini:$sni_line";
is((served($srv, $port, 'a.wild.test', 1))[0], '*.wild.test',
   'after the failed reload the running certificates are served');
is((served($srv, $port, 'mx.example.org', 1))[0], 'mx2.example.org',
   '... all of them');

# a reload may drop tls_sni altogether
set_sni($srv);
is $srv->hup, 'done', 'SIGHUP without tls_sni lines';
is((served($srv, $port, 'mx.example.org', 1))[0], 'mail.test',
   'without tls_sni every name gets tls_cert');
$srv->stop_ok;

# -- -t: bad tls_sni lines name file and line ----------------------------------
{
    my $bad = Upesi::Test->new(smtp => { tls_cert => "$tmp/default.pem",
                                         tls_key => "$tmp/default.key" });
    my $ini = $bad->conf . '/smtp.ini';
    my $check = sub {
        my ($what, $re, @lines) = @_;
        set_sni($bad, @lines);
        my ($e, $o) = upesi_check($bad->conf);
        isnt $e, 0, "-t: $what fails";
        my $n = line_of($ini, qr/^tls_sni = \Q$lines[-1]\E$/);
        like $o, qr/smtp\.ini:\Q$n\E: $re/, "-t: $what: named at smtp.ini:$n" or diag $o;
    };
    $check->('a missing key file',
             qr/tls_sni mx\.example\.org key \S+nokey\.pem: cannot open/,
             "mx.example.org $tmp/mx.pem $tmp/nokey.pem");
    $check->('a missing certificate file (relative to the conf dir)',
             qr/tls_sni mx\.example\.org certificate \Q${\ $bad->conf }\E\/nocert\.pem: cannot open/,
             "mx.example.org nocert.pem $tmp/mx.key");
    $check->('a key that does not belong to the certificate',
             qr/tls_sni mx\.example\.org: key \S+default\.key does not belong to the certificate \S+mx\.pem/,
             "mx.example.org $tmp/mx.pem $tmp/default.key");
    $check->('a line with two words',
             qr/tls_sni: expected three words/,
             "mx.example.org $tmp/mx.pem");
    $check->('a line with four words',
             qr/tls_sni: expected three words/,
             "mx.example.org $tmp/mx.pem $tmp/mx.key extra");
    $check->('a wildcard that is not the whole left-most label',
             qr/tls_sni: 'mx\*\.example\.org' is not a host name/,
             "mx*.example.org $tmp/mx.pem $tmp/mx.key");
    $check->('a wildcard over a top-level domain',
             qr/tls_sni: '\*\.org' is not a host name/,
             "*.org $tmp/mx.pem $tmp/mx.key");
    $check->('a name given twice (in another case)',
             qr/tls_sni: 'mx\.example\.org' is named twice/,
             "mx.example.org $tmp/mx.pem $tmp/mx.key",
             "MX.example.org $tmp/mx2.pem $tmp/mx2.key");

    spit("$tmp/junk.pem", "not a certificate\n");
    $check->('a file that is no certificate',
             qr/tls_sni mx\.example\.org certificate \S+junk\.pem: not a PEM certificate/,
             "mx.example.org $tmp/junk.pem $tmp/mx.key");

    set_sni($bad, "mx.example.org $tmp/mx.pem $tmp/mx.key");
    $bad->set_smtp(tls_cert => undef, tls_key => undef);
    my ($e, $o) = upesi_check($bad->conf);
    isnt $e, 0, '-t: tls_sni without tls_cert fails';
    like $o, qr/smtp\.ini: tls_sni needs tls_cert and tls_key/, '-t: ... and says why' or diag $o;

    ($e, $o) = run_cmd(30, $UPESI, '-c', $bad->conf, '-o', "tls_cert=$tmp/default.pem",
                       '-o', "tls_key=$tmp/default.key",
                       '-o', "tls_sni=*.wild.test $tmp/wild.pem $tmp/wild.key", '-t');
    is $e, 0, '-o tls_sni=... is accepted beside a tls_sni line' or diag $o;
}

done_testing;
