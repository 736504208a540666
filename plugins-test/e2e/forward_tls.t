#!/usr/bin/perl
# forward_tls.t - queue_forward's STARTTLS to the downstream
# (downstream_tls), against a second upesi as the downstream: one with
# tls_cert/tls_key (its spool and its Received header show ESMTPS and the
# TLS version and cipher) and one without TLS.
#
#  downstream_tls = 1: TLS when offered (byte-exact, a message of several
#    MB over the non-blocking TLS writes, a pooled TLS connection that
#    sends close_notify when it expires), in clear when not (the same big
#    message);
#  a front that stops (SIGTERM) says QUIT on its pooled connection, in
#    clear and over TLS, and the TLS one closes cleanly (the host's
#    worker_stop; before it the kernel just closed the socket);
#  downstream_tls = required: no STARTTLS offered -> 451 4.4.1, nothing
#    delivered; in spool mode the message stays queued for a retry;
#  downstream_tls_verify: the right CA and name deliver, a wrong CA and a
#    wrong name are 451 4.4.1;
#  -t refuses bad TLS settings.
#
# Certificates are made with openssl into the temp directory: a CA, the
# downstream's certificate signed by it (down.test.example), another CA.
use strict;
use warnings;
use FindBin;
use lib "$FindBin::Bin/../lib";
use Test::More;
use Time::HiRes qw(sleep time);
use Upesi::Test;
use Upesi::Forward;

need_built('plugins/queue_forward.so');
plan skip_all => 'openssl is not installed'
    unless system('command -v openssl >/dev/null 2>&1') == 0;
deadline(240);

sub run_cmd { Upesi::Test::run_cmd(@_) }

sub openssl {
    my ($exit, $out) = run_cmd(60, 'openssl', @_);
    die "openssl @_[0..1] failed: $out" if $exit;
}

my $tmp = Upesi::Test->new->tmp;      # scratch for certificates
for my $ca ('ca', 'other') {
    openssl('req', '-x509', '-newkey', 'rsa:2048', '-nodes', '-days', '2',
            '-subj', "/CN=upesi test $ca CA", '-addext',
            'basicConstraints=critical,CA:TRUE', '-addext',
            'keyUsage=critical,keyCertSign,cRLSign',
            '-keyout', "$tmp/$ca.key", '-out', "$tmp/$ca.pem");
}
openssl('req', '-newkey', 'rsa:2048', '-nodes', '-subj', '/CN=down.test.example',
        '-keyout', "$tmp/down.key", '-out', "$tmp/down.csr");
spit("$tmp/down.ext", "subjectAltName=DNS:down.test.example\n"
     . "basicConstraints=CA:FALSE\nextendedKeyUsage=serverAuth\n");
openssl('x509', '-req', '-in', "$tmp/down.csr", '-CA', "$tmp/ca.pem",
        '-CAkey', "$tmp/ca.key", '-CAcreateserial', '-days', '2',
        '-extfile', "$tmp/down.ext", '-out', "$tmp/down.pem");

sub downstream {
    my (%smtp) = @_;
    return Upesi::Test->new(
        smtp    => { hostname => 'down.test.example',
                     local_domains => 'example.com,example.org',
                     plugin_timeout => 30, workers => 1, %smtp },
        plugins => ['queue_spool'],
        ini     => { 'queue_spool.ini' => "fsync = 1\n" });
}

my $small = "From: alice\@example.org\r\nTo: bob\@example.com\r\n"
          . "Subject: over TLS\r\n\r\nhello\r\n.leading dot\r\n";
my $big = "From: alice\@example.org\r\nTo: bob\@example.com\r\n"
        . "Subject: big over TLS\r\n\r\n"
        . join('', map { sprintf("%06d %s\r\n", $_, 'x' x 70) } 1 .. 40000)
        . ".\r\nlast line\r\n";          # ~3 MB, a lone dot line inside

# The downstream sessions that ended since $mark (a length of $down's
# log) when $front stopped: one, its pooled connection, ended by QUIT, and
# nothing unclean logged (a TLS error, a close without QUIT); the front
# did not need the host's whole second for it.  Four assertions.
sub pool_goodbye_ok {
    my ($front, $down, $mark, $what) = @_;
    my @new;
    wait_for(5, sub {
        @new = split /\n/, substr($down->log_text, $mark);
        grep { /disconnect 127\.0\.0\.1 \(/ } @new });
    my @ends = grep { /disconnect 127\.0\.0\.1 \(/ } @new;
    is(scalar @ends, 1, "$what: the front's stop ended one downstream session")
        or diag(join("\n", @new));
    like($ends[0] // '', qr/disconnect 127\.0\.0\.1 \(QUIT\)/,
         "$what: the pooled connection said QUIT when the front stopped")
        or diag(join("\n", @new));
    my @bad = grep { /TLS error|TLS write failed|\(client closed\)/ } @new;
    is(scalar @bad, 0, "$what: no unclean close logged downstream")
        or diag(join("\n", @bad));
    is(scalar $front->log_lines(qr/plugins still watch/), 0,
       "$what: the front exited once the 221 came, without waiting 1 s")
        or diag($front->log_tail(10));
}

my $down_tls = downstream(tls_cert => "$tmp/down.pem",
                          tls_key => "$tmp/down.key");
$down_tls->start;
my $down_plain = downstream();
$down_plain->start;
my $tport = $down_tls->port;
my $pport = $down_plain->port;

# ==========================================================================
# downstream_tls = 1 (opportunistic)

my $f1 = front("downstream = 127.0.0.1:$tport\ndownstream_tls = 1\n"
               . "pool_idle = " . (2 * $SLOW) . "s\n");
$f1->start;
my $r = send_msg($f1, from => 'alice@example.org', to => ['bob@example.com'],
                 data => $small);
is($r && $r->{code}, 250, 'tls = 1, downstream offers STARTTLS: 250')
    or diag($r ? $r->{raw} : 'no reply', $f1->log_tail(20));
my @got = $down_tls->wait_spool(1, 10);
is(scalar @got, 1, 'one message arrived');
my $m = $got[0] || { env => {}, message => '' };
is($m->{env}{Protocol}, 'ESMTPS', "the downstream's spool: Protocol: ESMTPS");
like($m->{env}{TLS} // '', qr/^TLSv1\.[23] [A-Z0-9_-]+$/,
     "the downstream's spool: TLS: <version> <cipher>");
my ($rcv) = strip_received($m->{message} // '');
like($rcv // '', qr/\bwith ESMTPS\b/, "the downstream's Received: with ESMTPS");
ok(defined $m->{message} && substr($m->{message}, -length $small) eq $small,
   'the message arrived byte-exact');
my ($tlsline) = $f1->log_lines(qr/downstream 127\.0\.0\.1:$tport: TLS /);
like($tlsline // '', qr/: TLS TLSv1\.[23] [A-Z0-9_-]+ \(certificate not verified\)/,
     'the front logs the TLS version and cipher of the connection')
    or diag($f1->log_tail(20));
my ($ver, $ciph) = ($tlsline // '') =~ /: TLS (\S+) (\S+)/;
is("$ver $ciph", $m->{env}{TLS} // '', 'the same version and cipher downstream')
    if defined $ver;
unlink $_->{file} for @got;

# a big message over the same (pooled) TLS connection
$r = send_msg($f1, from => 'alice@example.org', to => ['carol@example.com'],
              data => $big);
is($r && $r->{code}, 250, 'tls = 1: a 3 MB message: 250')
    or diag($r ? $r->{raw} : 'no reply', $f1->log_tail(20));
@got = $down_tls->wait_spool(1, 20);
ok(@got == 1 && defined $got[0]{message}
   && substr($got[0]{message}, -length $big) eq $big,
   'the 3 MB message arrived byte-exact (dot-stuffed inside TLS)');
is($got[0] && $got[0]{env}{Protocol}, 'ESMTPS', '... over TLS');
my $st = $f1->stat('SMTP.Forward') // {};
is($st->{'SMTP.Forward.Connections'}, 1,
   'the pooled connection kept its TLS session (one connection, two messages)');
is($st->{'SMTP.Forward.TLS'}, 1, 'one TLS handshake');
unlink $_->{file} for @got;
# the pooled connection expires (pool_idle): close_notify, which the
# downstream tells from a plain close
ok($down_tls->wait_log(qr/disconnect 127\.0\.0\.1 \(client closed TLS\)/, 10),
   'closing the idle pooled TLS connection sent close_notify');
$f1->stop_ok('front (tls = 1)');

# downstream_tls = 1, a downstream without TLS: in clear
my $f1p = front("downstream = 127.0.0.1:$pport\ndownstream_tls = 1\n");
$f1p->start;
$r = send_msg($f1p, from => 'alice@example.org', to => ['bob@example.com'],
              data => $big);
is($r && $r->{code}, 250, 'tls = 1, no STARTTLS offered: 250 (in clear)')
    or diag($r ? $r->{raw} : 'no reply', $f1p->log_tail(20));
@got = $down_plain->wait_spool(1, 10);
is(scalar @got, 1, 'it arrived');
ok(@got && defined $got[0]{message}
   && substr($got[0]{message}, -length $big) eq $big,
   'the 3 MB message arrived byte-exact in clear too');
ok(!$f1p->log_lines(qr/: TLS TLSv/), 'no TLS logged');
is($got[0] && $got[0]{env}{Protocol}, 'ESMTP', "the downstream's spool: ESMTP");
is($got[0] && $got[0]{env}{TLS}, 'none', "the downstream's spool: TLS: none");
unlink $_->{file} for @got;
# its connection is pooled (pool_idle 30 s): stopping the front says QUIT
my $mark = length $down_plain->log_text;
$f1p->stop_ok('front (tls = 1, in clear)');
pool_goodbye_ok($f1p, $down_plain, $mark, 'stop, in clear');

# ==========================================================================
# downstream_tls = required

my $fr = front("downstream = 127.0.0.1:$pport\ndownstream_tls = required\n");
$fr->start;
$r = send_msg($fr, from => 'alice@example.org', to => ['bob@example.com'],
              data => $small);
is($r && $r->{code}, 451, 'required, no STARTTLS offered: 451');
like($r ? $r->{text} : '',
     qr/^4\.4\.1 downstream 127\.0\.0\.1:$pport: STARTTLS is not offered \(downstream_tls = required\)/,
     '... 4.4.1, saying why');
sleep 0.3;
is(nspool($down_plain), 0, 'nothing was delivered');
$fr->stop_ok('front (required, no TLS downstream)');

my $frt = front("downstream = 127.0.0.1:$tport\ndownstream_tls = required\n");
$frt->start;
$r = send_msg($frt, from => 'alice@example.org', to => ['bob@example.com'],
              data => $small);
is($r && $r->{code}, 250, 'required, STARTTLS offered: 250');
@got = $down_tls->wait_spool(1, 10);
is($got[0] && $got[0]{env}{Protocol}, 'ESMTPS', '... over TLS');
unlink $_->{file} for @got;
# the pooled TLS connection: QUIT inside TLS, then close_notify
$mark = length $down_tls->log_text;
$frt->stop_ok('front (required)');
pool_goodbye_ok($frt, $down_tls, $mark, 'stop, over TLS');

# spool mode: required against a downstream without TLS is a retry
my $fs = front("downstream = 127.0.0.1:$pport\ndownstream_tls = required\n"
               . "mode = spool\nretry_min = 60s\nscan_interval = 200ms\n");
$fs->start;
$r = send_msg($fs, from => 'alice@example.org', to => ['bob@example.com'],
              data => $small);
is($r && $r->{code}, 250, 'spool mode, required: accepted into the spool');
my ($qid) = ($r && $r->{text} =~ /queued as (\S+)/) ? ($1) : ('none');
ok(wait_for(10, sub { ctl($fs, 'queue') =~ /^\Q$qid\E .*state=deferred.*attempts=1.*STARTTLS is not offered/m }),
   'spool mode: deferred for a retry, the error names STARTTLS')
    or diag(ctl($fs, 'queue'));
is(nspool($down_plain), 0, 'nothing was delivered in clear');
$fs->stop_ok('front (spool, required)');

# ==========================================================================
# downstream_tls_verify

sub verify_front {
    my ($ca, $name) = @_;
    return front("downstream = 127.0.0.1:$tport\ndownstream_tls = required\n"
                 . "downstream_tls_verify = 1\ndownstream_tls_ca = $ca\n"
                 . "downstream_tls_name = $name\n");
}

my $fv = verify_front("$tmp/ca.pem", 'down.test.example');
$fv->start;
$r = send_msg($fv, from => 'alice@example.org', to => ['bob@example.com'],
              data => $small);
is($r && $r->{code}, 250, 'verify, the right CA and name: 250')
    or diag($r ? $r->{raw} : 'no reply', $fv->log_tail(20));
@got = $down_tls->wait_spool(1, 10);
is($got[0] && $got[0]{env}{Protocol}, 'ESMTPS', '... over TLS');
ok(scalar $fv->log_lines(qr/: TLS TLSv1\.[23] \S+ \(certificate verified for down\.test\.example\)/),
   'the log says the certificate was verified');
unlink $_->{file} for @got;
$fv->stop_ok('front (verify, right CA)');

my $fw = verify_front("$tmp/other.pem", 'down.test.example');
$fw->start;
$r = send_msg($fw, from => 'alice@example.org', to => ['bob@example.com'],
              data => $small);
is($r && $r->{code}, 451, 'verify, a wrong CA: 451');
like($r ? $r->{text} : '', qr/^4\.4\.1 downstream \S+: TLS handshake: .*not signed by downstream_tls_ca/,
     '... 4.4.1, the handshake failed on the certificate')
    or diag($r ? $r->{raw} : '');
$fw->stop_ok('front (verify, wrong CA)');

my $fn = verify_front("$tmp/ca.pem", 'other.test.example');
$fn->start;
$r = send_msg($fn, from => 'alice@example.org', to => ['bob@example.com'],
              data => $small);
is($r && $r->{code}, 451, 'verify, the right CA but another name: 451');
like($r ? $r->{text} : '', qr/^4\.4\.1 .*TLS handshake: .*does not name downstream_tls_name/,
     '... the certificate does not name it')
    or diag($r ? $r->{raw} : '');
$fn->stop_ok('front (verify, wrong name)');
sleep 0.3;
is(nspool($down_tls), 0, 'nothing was delivered after a failed verification');

# ==========================================================================
# -t on bad settings

my $bad = front("downstream = 127.0.0.1:$tport\ndownstream_tls = maybe\n");
my ($e, $o) = upesi_check($bad->conf);
isnt($e, 0, '-t: downstream_tls = maybe fails');
like($o, qr/queue_forward\.ini:2: downstream_tls: expected a boolean \(0\/1, yes\/no, on\/off, true\/false\) or required, got 'maybe'/,
     '... with file, line and the values allowed');
$bad->write_conf('queue_forward.ini', "downstream = 127.0.0.1:$tport\n"
                 . "downstream_tls = 1\ndownstream_tls_verify = 1\n");
($e, $o) = upesi_check($bad->conf);
isnt($e, 0, '-t: verify without a CA and a name fails');
like($o, qr/downstream_tls_verify = 1 needs downstream_tls_ca/, '... saying what is missing');
$bad->write_conf('queue_forward.ini', "downstream = 127.0.0.1:$tport\n"
                 . "downstream_tls_verify = 1\ndownstream_tls_ca = $tmp/ca.pem\n"
                 . "downstream_tls_name = x.example\n");
($e, $o) = upesi_check($bad->conf);
isnt($e, 0, '-t: verify with downstream_tls = 0 fails');
$bad->write_conf('queue_forward.ini', "downstream = 127.0.0.1:$tport\n"
                 . "downstream_tls = 1\ndownstream_tls_verify = 1\n"
                 . "downstream_tls_ca = missing.pem\ndownstream_tls_name = x.example\n");
($e, $o) = upesi_check($bad->conf);
isnt($e, 0, '-t: a missing CA file fails');
like($o, qr/downstream_tls_ca \S*missing\.pem: cannot open/, '... naming the file');
spit("$tmp/junk.pem", "not a certificate\n");
$bad->write_conf('queue_forward.ini', "downstream = 127.0.0.1:$tport\n"
                 . "downstream_tls = 1\ndownstream_tls_verify = 1\n"
                 . "downstream_tls_ca = $tmp/junk.pem\ndownstream_tls_name = x.example\n");
($e, $o) = upesi_check($bad->conf);
isnt($e, 0, '-t: a CA file without a certificate fails');
like($o, qr/no usable CA certificate/, '... saying so');
$bad->write_conf('queue_forward.ini', "downstream = 127.0.0.1:$tport\n"
                 . "downstream_tls = required\ndownstream_tls_verify = 1\n"
                 . "downstream_tls_ca = $tmp/ca.pem\ndownstream_tls_name = down.test.example\n");
($e, $o) = upesi_check($bad->conf);
is($e, 0, '-t: a complete verify configuration passes') or diag($o);

$down_tls->stop_ok('downstream (TLS)');
$down_plain->stop_ok('downstream (no TLS)');
done_testing();
