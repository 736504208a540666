#!/usr/bin/perl
# auth.t - SMTP AUTH (RFC 4954) with the auth plugin and the directory's
# password= hashes: swaks --auth PLAIN / LOGIN over STARTTLS, Python's
# smtplib, good and bad passwords, AUTH refused outside TLS, allow_plaintext,
# verify_sender (SMTPVerifyAuthenticatedSender), relay and deny_groups
# mode 1 after AUTH, the submission port, require_auth_hosts, the growing
# failure delay, error_limit, DENYSOFT, the SMTP.Auth.* counters, the
# Received header (ESMTPSA / ESMTPA), the spool's Auth: line, and issue
# 12's bad input (malformed base64, a 100 KB AUTH line, AUTH twice, AUTH in
# a transaction, "*", an unknown mechanism) - with the log checked for
# user names and passwords.
#
# Hashes are made here with perl's crypt() (libcrypt): yescrypt and SHA-512.
use strict;
use warnings;
use FindBin;
use lib "$FindBin::Bin/../lib";
use Test::More;
use Upesi::Test;
use MIME::Base64 qw(encode_base64);
use Time::HiRes qw(time);

deadline(240);

my $have = sub { system("command -v $_[0] >/dev/null 2>&1") == 0 };
plan skip_all => 'openssl is not installed' unless $have->('openssl');
plan skip_all => 'swaks is not installed' unless $have->('swaks');

sub run_cmd { Upesi::Test::run_cmd(@_) }
sub b64 { encode_base64($_[0], '') }

sub salt {
    my @c = ('a' .. 'z', 'A' .. 'Z', '0' .. '9', '.', '/');
    return join '', map { $c[rand @c] } 1 .. $_[0];
}
my $JOHN_PW = 'Tr0ub4dor-x9q';                # yescrypt
my $MARY_PW = 'Corr3ct-h0rse-7';              # SHA-512
my $john_hash = crypt($JOHN_PW, '$y$j9T$' . salt(20) . '$');
my $mary_hash = crypt($MARY_PW, '$6$' . salt(16) . '$');
like $john_hash, qr/^\$y\$/, 'perl made a yescrypt hash';
like $mary_hash, qr/^\$6\$/, 'perl made a SHA-512 hash';

my $directory = <<"EOF";
person "John Doe"   address=john\@example.com short=jdoe7 alias=jd\@example.com password=$john_hash
person "Mary Major" address=mary\@example.com short=mmajor password=$mary_hash
person "Bob Example" address=bob\@example.com short=bob
group staff\@example.com members=jdoe7,bob
EOF

my $tmp = Upesi::Test->new->tmp;
my ($exit, $out) = run_cmd(60, 'openssl', 'req', '-x509', '-newkey',
    'rsa:2048', '-nodes', '-days', '2', '-subj', '/CN=mx.test.example',
    '-keyout', "$tmp/key.pem", '-out', "$tmp/cert.pem");
die "openssl req failed: $out" if $exit;

# -- server 1: TLS, AUTH only inside it -----------------------------------
my $sub_port = free_port();
my $srv = Upesi::Test->new(
    smtp => {
        hostname => 'mx.test.example',
        local_domains => 'example.com',
        tls_cert => 'cert.pem', tls_key => 'key.pem',
        submission_listen => "127.0.0.1:$sub_port",
        auth_failure_delay => 0.05,
    },
    plugins => ['auth', 'directory', 'deny_groups', 'relay', 'queue_spool'],
    ini => {
        'directory' => $directory,
        'auth.ini' => "file = directory\n",
        'deny_groups.ini' => "mode = 1\n",
        'relay.ini' => "",
    },
);
spit($srv->conf . '/cert.pem', slurp("$tmp/cert.pem"));
spit($srv->conf . '/key.pem', slurp("$tmp/key.pem"));
my ($ck, $ckout) = upesi_check($srv->conf);
is $ck, 0, 'upesi -t accepts the auth configuration' or diag $ckout;
like $ckout, qr/auth: .*2 accounts with a password/, '-t counts the accounts';
$srv->start;

# plain text: no AUTH offered, AUTH refused
my $c = $srv->client;
my $r = $c->cmd('EHLO client.test');
ok(!(grep { /^250[- ]AUTH\b/ } @{ $r->{lines} }), 'no AUTH in EHLO outside TLS');
$r = $c->cmd('AUTH PLAIN ' . b64("\0jdoe7\0$JOHN_PW"));
is "$r->{code} $r->{enhanced}", '503 5.5.1', 'AUTH outside TLS: 503 5.5.1';
$c->cmd('QUIT');

# swaks over STARTTLS
my @sw = ('--tls', '--from', 'john@example.com', '--helo', 'swaks.test');
my $sw = $srv->swaks_send(@sw, '--to', 'bob@example.com', '--auth', 'PLAIN',
    '--auth-user', 'jdoe7', '--auth-password', $JOHN_PW,
    '--header', 'Subject: auth plain');
is $sw->{exit}, 0, 'swaks --tls --auth PLAIN delivers' or diag $sw->{out};
like $sw->{out}, qr/250[- ]AUTH PLAIN LOGIN/, 'EHLO inside TLS offers AUTH PLAIN LOGIN';
like $sw->{out}, qr/235 2\.7\.0 Authentication successful/, '235 2.7.0';
my @spool = $srv->wait_spool(1, 5);
my ($m) = grep { ($_->{message} // '') =~ /Subject: auth plain/ } @spool;
$m ||= { env => {}, message => '' };
is $m->{env}{Auth}, 'jdoe7', 'the spool envelope names the user (Auth: jdoe7)';
my ($rcv) = strip_received($m->{message});
like $rcv // '', qr/\bwith ESMTPSA\b/, 'Received: with ESMTPSA (RFC 3848)';

$sw = $srv->swaks_send(@sw, '--to', 'bob@example.com', '--auth', 'LOGIN',
    '--auth-user', 'Mary Major', '--auth-password', $MARY_PW);
is $sw->{exit}, 0, 'swaks --tls --auth LOGIN (full name, SHA-512 hash)'
    or diag $sw->{out};
like $sw->{out}, qr/334 VXNlcm5hbWU6/, 'LOGIN asks Username:';
like $sw->{out}, qr/334 UGFzc3dvcmQ6/, 'LOGIN asks Password:';

$sw = $srv->swaks_send(@sw, '--to', 'bob@example.com', '--auth', 'PLAIN',
    '--auth-user', 'jdoe7', '--auth-password', 'wrong-pw-123');
isnt $sw->{exit}, 0, 'a bad password: swaks fails';
like $sw->{out}, qr/535 5\.7\.8 Authentication credentials invalid/, 'bad password: 535 5.7.8';
$sw = $srv->swaks_send(@sw, '--to', 'bob@example.com', '--auth', 'LOGIN',
    '--auth-user', 'nobody-here', '--auth-password', 'whatever-1');
like $sw->{out}, qr/535 5\.7\.8/, 'an unknown user: 535 5.7.8';
$sw = $srv->swaks_send(@sw, '--to', 'bob@example.com', '--auth', 'PLAIN',
    '--auth-user', 'bob', '--auth-password', 'whatever-1');
like $sw->{out}, qr/535 5\.7\.8/, 'a person without password=: 535 5.7.8';

# relay: only after AUTH
$sw = $srv->swaks_send(@sw, '--to', 'someone@remote.example.org');
like $sw->{out}, qr/550 5\.7\.1 Relaying denied/, 'no AUTH: relaying denied';
$sw = $srv->swaks_send(@sw, '--to', 'someone@remote.example.org',
    '--auth', 'PLAIN', '--auth-user', 'jdoe7', '--auth-password', $JOHN_PW,
    '--header', 'Subject: relayed');
is $sw->{exit}, 0, 'after AUTH a remote recipient is accepted (relay)' or diag $sw->{out};

# deny_groups mode 1: an authenticated sender is internal
$sw = $srv->swaks_send(@sw, '--to', 'staff@example.com');
like $sw->{out}, qr/550 5\.7\.1 <staff\@example\.com>: mail to groups/,
    'deny_groups mode 1: a group refused without AUTH';
$sw = $srv->swaks_send(@sw, '--to', 'staff@example.com', '--auth', 'LOGIN',
    '--auth-user', 'jdoe7', '--auth-password', $JOHN_PW);
is $sw->{exit}, 0, 'deny_groups mode 1: an authenticated sender may mail a group'
    or diag $sw->{out};

# Python's smtplib
SKIP: {
    skip 'python3 is not installed', 4 unless $have->('python3');
    my $py = <<'EOF';
import smtplib, ssl, sys
port, user, pw, mech = int(sys.argv[1]), sys.argv[2], sys.argv[3], sys.argv[4]
ctx = ssl.create_default_context()
ctx.check_hostname = False
ctx.verify_mode = ssl.CERT_NONE
s = smtplib.SMTP('127.0.0.1', port, timeout=20)
s.ehlo('python.test')
s.starttls(context=ctx)
s.ehlo('python.test')
print('AUTH offered:', s.has_extn('auth'), s.esmtp_features.get('auth'))
try:
    if mech == 'LOGIN':
        s.user, s.password = user, pw
        code, resp = s.auth('LOGIN', s.auth_login)
    else:
        code, resp = s.login(user, pw)
    print('AUTH', code, resp.decode())
    s.sendmail('john@example.com', ['bob@example.com'],
               'Subject: from smtplib\r\n\r\nhello\r\n')
    print('SENT')
except smtplib.SMTPAuthenticationError as e:
    print('AUTHFAIL', e.smtp_code, e.smtp_error.decode())
s.quit()
EOF
    spit("$tmp/smtp.py", $py);
    my ($pe, $po) = run_cmd(60, 'python3', "$tmp/smtp.py", $srv->port, 'jdoe7', $JOHN_PW, 'PLAIN');
    like $po, qr/AUTH 235 2\.7\.0/, 'smtplib login (PLAIN): 235' or diag $po;
    like $po, qr/^SENT$/m, 'smtplib sends after AUTH';
    ($pe, $po) = run_cmd(60, 'python3', "$tmp/smtp.py", $srv->port, 'mary@example.com', $MARY_PW, 'LOGIN');
    like $po, qr/AUTH 235/, 'smtplib AUTH LOGIN by address: 235' or diag $po;
    ($pe, $po) = run_cmd(60, 'python3', "$tmp/smtp.py", $srv->port, 'jdoe7', 'nope-nope', 'PLAIN');
    like $po, qr/AUTHFAIL 535 5\.7\.8/, 'smtplib with a bad password: 535 5.7.8' or diag $po;
}

# the submission port: MAIL before AUTH is 530
{
    my $sc = Upesi::Test::Client->new(port => $sub_port);
    is $sc->greeting->{code}, 220, 'the submission port greets';
    $sc->cmd('EHLO sub.test');
    $r = $sc->cmd('MAIL FROM:<john@example.com>');
    is "$r->{code} $r->{enhanced}", '530 5.7.0', 'submission port: MAIL before AUTH: 530 5.7.0';
    like $r->{text}, qr/Authentication required/, '... Authentication required';
    $sc->cmd('QUIT');
    $sc->close;
    $sw = swaks($sub_port, @sw, '--to', 'bob@example.com', '--auth', 'PLAIN',
        '--auth-user', 'jdoe7', '--auth-password', $JOHN_PW);
    is $sw->{exit}, 0, 'submission port: STARTTLS + AUTH, then MAIL is accepted'
        or diag $sw->{out};
}

my $st = $srv->stat('SMTP.Auth');
cmp_ok $st->{'SMTP.Auth.Success'} // 0, '>=', 7, 'SMTP.Auth.Success counts';
cmp_ok $st->{'SMTP.Auth.Failure'} // 0, '>=', 4, 'SMTP.Auth.Failure counts';

my $log = $srv->log_text;
unlike $log, qr/\Q$JOHN_PW\E|\Q$MARY_PW\E|wrong-pw-123|nope-nope/, 'no password in the log';
unlike $log, qr/jdoe7|Mary Major|nobody-here/, 'no user name in the log at info level';
$srv->stop_ok('server 1');

# -- server 2: allow_plaintext, verify_sender, require_auth_hosts; raw
#    clients for the exchange and the bad input ------------------------------
my $srv2 = Upesi::Test->new(
    smtp => {
        hostname => 'mx2.test.example',
        local_domains => 'example.com',
        auth_failure_delay => 0.1,
        error_limit => 8,
    },
    plugins => ['tester', 'auth', 'directory', 'relay', 'queue_spool'],
    ini => {
        'directory' => $directory,
        'auth.ini' => "allow_plaintext = 1\nverify_sender = 1\n"
                    . "require_auth_hosts = 127.0.0.2\n",
        # LOGIN answers DENYSOFT here (a backend that is down)
        'tester.ini' => "[auth]\nmatch = LOGIN\nverdict = DENYSOFT\n",
    },
);
$srv2->start;

sub session {
    my (%o) = @_;
    my $cl = $srv2->client(%o);
    my $e = $cl->cmd('EHLO raw.test');
    return ($cl, $e);
}

($c, $r) = session();
ok((grep { /^250[- ]AUTH PLAIN LOGIN$/ } @{ $r->{lines} }), 'allow_plaintext = 1: AUTH offered without TLS');
$r = $c->cmd('AUTH PLAIN');
is $r->{code}, 334, 'AUTH PLAIN without an initial response: 334';
is $r->{raw}, "334 \r\n", '... with an empty challenge';
$r = $c->cmd(b64("\0jdoe7\0$JOHN_PW"));
is "$r->{code} $r->{enhanced}", '235 2.7.0', 'the response authenticates';
$r = $c->cmd('AUTH PLAIN ' . b64("\0jdoe7\0$JOHN_PW"));
is "$r->{code} $r->{enhanced}", '503 5.5.1', 'AUTH twice: 503 5.5.1';
$r = $c->cmd('MAIL FROM:<mary@example.com>');
is "$r->{code} $r->{enhanced}", '553 5.7.1', 'verify_sender: someone else\'s address: 553 5.7.1';
$r = $c->cmd('MAIL FROM:<>');
is $r->{code}, 553, 'verify_sender: the null sender: 553';
$r = $c->cmd('MAIL FROM:<JD@example.com> AUTH=<>');
is $r->{code}, 250, 'verify_sender: the user\'s alias (any case), with AUTH=<>: 250';
$c->cmd('RCPT TO:<bob@example.com>');
$c->cmd('DATA');
$r = $c->send_data("Subject: plaintext auth\r\n\r\nhi");
is $r->{code}, 250, 'delivered after AUTH in plain text';
my ($pm) = grep { ($_->{message} // '') =~ /plaintext auth/ } $srv2->wait_spool(1, 5);
my ($rcv2) = strip_received($pm ? $pm->{message} : '');
like $rcv2 // '', qr/\bwith ESMTPA\b/, 'Received: with ESMTPA';
$c->cmd('QUIT');

# AUTH in a transaction
($c, $r) = session();
$c->cmd('MAIL FROM:<x@example.org>');
$r = $c->cmd('AUTH PLAIN ' . b64("\0jdoe7\0$JOHN_PW"));
is "$r->{code} $r->{enhanced}", '503 5.5.1', 'AUTH in a transaction: 503 5.5.1';
$c->cmd('QUIT');

# bad input, each in its own session
($c, $r) = session();
$r = $c->cmd('AUTH PLAIN not*base64!');
is "$r->{code} $r->{enhanced}", '501 5.5.2', 'malformed base64: 501 5.5.2';
$r = $c->cmd('AUTH PLAIN AGpkb2U3');            # "\0jdoe7": no password
is $r->{code}, 501, 'PLAIN without a password: 501';
$r = $c->cmd('AUTH PLAIN AGpkb2U');
is $r->{code}, 501, 'base64 without its padding: 501';
$r = $c->cmd('AUTH PLAIN ' . b64("jdoe7 $JOHN_PW"));
is "$r->{code} $r->{enhanced}", '501 5.5.2', 'PLAIN without NULs: 501 5.5.2';
$r = $c->cmd('AUTH CRAM-MD5');
is "$r->{code} $r->{enhanced}", '504 5.5.4', 'unknown mechanism: 504 5.5.4';
$r = $c->cmd('AUTH');
is "$r->{code} $r->{enhanced}", '501 5.5.4', 'AUTH without a mechanism: 501 5.5.4';
$r = $c->cmd('AUTH PLAIN');
is $r->{code}, 334, 'AUTH PLAIN: 334';
$r = $c->cmd('*');
is "$r->{code} $r->{enhanced}", '501 5.0.0', '"*" cancels: 501 5.0.0';
$r = $c->cmd('NOOP');
is $r->{code}, 250, 'the session goes on after the cancel';
$c->cmd('QUIT');

($c, $r) = session();
$r = $c->cmd('AUTH PLAIN ' . ('A' x 102400));
is "$r->{code} $r->{enhanced}", '500 5.5.2', 'an AUTH line of 100 KB: 500 5.5.2 line too long';
$r = $c->cmd('NOOP');
is $r->{code}, 250, 'the session goes on after it';
$r = $c->cmd('AUTH PLAIN');
$r = $c->cmd('B' x 102400);
is "$r->{code} $r->{enhanced}", '501 5.5.2', 'a 100 KB response line: 501 5.5.2';
$r = $c->cmd('NOOP');
is $r->{code}, 250, 'and the session goes on';
$c->cmd('QUIT');

# LOGIN: the exchange, answered DENYSOFT by the tester plugin
($c, $r) = session();
$r = $c->cmd('AUTH LOGIN');
is $r->{raw}, "334 VXNlcm5hbWU6\r\n", 'AUTH LOGIN: 334 Username:';
$r = $c->cmd(b64('jdoe7'));
is $r->{raw}, "334 UGFzc3dvcmQ6\r\n", '334 Password:';
$r = $c->cmd(b64($JOHN_PW));
is "$r->{code} $r->{enhanced}", '454 4.7.0', 'DENYSOFT from a plugin: 454 4.7.0';
$r = $c->cmd('AUTH LOGIN ' . b64('jdoe7'));
is $r->{raw}, "334 UGFzc3dvcmQ6\r\n", 'LOGIN with an initial response: 334 Password:';
$r = $c->cmd('*');
is $r->{code}, 501, '... cancelled';
$c->cmd('QUIT');

# the delay grows; nothing pipelined is answered before the 535; the
# error_limit counts the failures
($c, $r) = session();
my @took;
for my $i (1 .. 3) {
    my $t0 = time;
    $c->send_raw('AUTH PLAIN ' . b64("\0jdoe7\0bad-$i") . "\r\nNOOP\r\n");
    my $a = $c->read_reply(10 * $SLOW);
    push @took, time - $t0;
    my $n = $c->read_reply(10 * $SLOW);
    is "$a->{code} $a->{enhanced}", '535 5.7.8', "failure $i: 535 5.7.8";
    is $n->{code}, 250, "failure $i: the pipelined NOOP answered after it";
}
cmp_ok $took[0], '>=', 0.09, sprintf('first failure delayed (%.2fs >= 0.1s)', $took[0]);
cmp_ok $took[1], '>=', 0.19, sprintf('second delayed twice as long (%.2fs >= 0.2s)', $took[1]);
cmp_ok $took[2], '>=', 0.38, sprintf('third four times (%.2fs >= 0.4s)', $took[2]);
my $fails = 3;
for my $i (4 .. 12) {
    $r = $c->cmd('AUTH PLAIN ' . b64("\0jdoe7\0bad-$i"), 10 * $SLOW);
    last unless $r && $r->{code} == 535;
    $fails++;
}
$r = $c->read_reply(5) if $r && $r->{code} == 535;
is $fails, 9, 'error_limit 8: the ninth error is a 535 ...';
is $r && $r->{code}, 421, 'then failures count towards error_limit: 421';
ok $c->closed(5), 'and the connection is closed';

# require_auth_hosts: 127.0.0.2 must authenticate, 127.0.0.1 need not
($c, $r) = session(local => '127.0.0.2');
$r = $c->cmd('MAIL FROM:<x@example.org>');
is "$r->{code} $r->{enhanced}", '530 5.7.0', 'require_auth_hosts: MAIL before AUTH: 530 5.7.0';
$r = $c->cmd('AUTH PLAIN ' . b64("\0mmajor\0$MARY_PW"));
is $r->{code}, 235, 'AUTH from 127.0.0.2';
$r = $c->cmd('MAIL FROM:<mary@example.com>');
is $r->{code}, 250, 'then MAIL is accepted';
$c->cmd('QUIT');
($c, $r) = session();
$r = $c->cmd('MAIL FROM:<x@example.org>');
is $r->{code}, 250, 'a host outside require_auth_hosts needs no AUTH';
$c->cmd('QUIT');

# clients that leave mid-exchange, during the crypt and during the delay
for my $cut (["AUTH LOGIN\r\n", 'after a 334'],
             ['AUTH PLAIN ' . b64("\0jdoe7\0$JOHN_PW") . "\r\n", 'while the password is checked'],
             ['AUTH PLAIN ' . b64("\0jdoe7\0bad-x") . "\r\n", 'during the failure delay']) {
    ($c, $r) = session();
    $c->send_raw($cut->[0]);
    select(undef, undef, undef, 0.03);
    $c->close;
}
($c, $r) = session();
is $r->{code}, 250, 'clients that left mid-AUTH do not disturb the server';
$c->cmd('QUIT');

$st = $srv2->stat('SMTP.Auth');
cmp_ok $st->{'SMTP.Auth.Success'} // 0, '>=', 2, 'SMTP.Auth.Success';
cmp_ok $st->{'SMTP.Auth.Failure'} // 0, '>=', 6, 'SMTP.Auth.Failure';
is $st->{'SMTP.Auth.Deferred'}, 1, 'SMTP.Auth.Deferred';
is $st->{'SMTP.Auth.Required'}, 1, 'SMTP.Auth.Required';

$log = $srv2->log_text;
unlike $log, qr/\Q$JOHN_PW\E|\Q$MARY_PW\E|bad-\d/, 'server 2: no password in the log';
unlike $log, qr/jdoe7|mmajor/, 'server 2: no user name in the log at info level';
like $log, qr/AUTH PLAIN failed \(.*failure 3 of this session\)/, 'failures are logged (without names)';
$srv2->stop_ok('server 2');

# -- bad hashes are refused by -t ---------------------------------------------
{
    my $bad = Upesi::Test->new(plugins => ['auth', 'queue_spool'],
        ini => { 'directory' => "person \"P\" address=p\@example.com password=plaintext\n" });
    my ($e, $o) = upesi_check($bad->conf);
    isnt $e, 0, '-t refuses a plain password in the directory';
    like $o, qr/directory:1: password: not a crypt\(3\) hash/, '... naming file and line';
    spit($bad->conf . '/directory', "person \"P\" address=p\@example.com password=\$9\$zz\$zz\n");
    ($e, $o) = upesi_check($bad->conf);
    isnt $e, 0, '-t refuses a hash libcrypt cannot check';
    like $o, qr/not a hash this libcrypt can check/, '... and says so';
}

done_testing;
