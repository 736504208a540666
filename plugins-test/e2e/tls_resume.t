#!/usr/bin/perl
# tls_resume.t - TLS session resumption with a real client (openssl
# s_client -sess_out / -sess_in), on the STARTTLS port and on smtps_listen:
# TLS 1.2 by session ID (-no_ticket), TLS 1.2 by session ticket, TLS 1.3 by
# ticket (PSK); with workers = 2 a ticket or a session ID issued by one
# worker resumes on the other (the ticket key and the session cache are
# shared); more sessions than wolfSSL's own cache holds (33) stay
# resumable; tls_ticket_key_file carries tickets over a restart;
# tls_session_tickets = no issues none.  And the server
# does not echo max_fragment_length or truncated_hmac (RFC 6066) in its
# ServerHello: s_client -maxfraglen, and a hand-made ClientHello that asks
# for both.
use strict;
use warnings;
use FindBin;
use lib "$FindBin::Bin/../lib";
use Test::More;
use Upesi::Test;
use IO::Socket::INET;
use IO::Select;
use Time::HiRes qw(time sleep);

deadline(300);

plan skip_all => 'openssl is not installed'
    unless system('command -v openssl >/dev/null 2>&1') == 0;

sub run_cmd { Upesi::Test::run_cmd(@_) }

my $tmp = Upesi::Test->new->tmp;
{
    my ($exit, $out) = run_cmd(60, 'openssl', 'req', '-x509', '-newkey',
        'rsa:2048', '-nodes', '-days', '2', '-subj', '/CN=mx.test.example',
        '-keyout', "$tmp/key.pem", '-out', "$tmp/cert.pem");
    die "openssl req failed: $out" if $exit;
}

# s_client(SRV, WHERE, ARGS...): one connection that says QUIT; WHERE is
# 'starttls' or 'smtps'.  -ign_eof: s_client runs until the server closes,
# so that it reads the tickets the server sends after the handshake.
my $n = 0;
sub s_client {
    my ($srv, $where, @args) = @_;
    my $file = "$tmp/in." . ++$n;
    spit($file, "QUIT\r\n");
    my @how = $where eq 'starttls'
        ? ('-starttls', 'smtp', '-connect', '127.0.0.1:' . $srv->port)
        : ('-connect', '127.0.0.1:' . $srv->{smtps_port});
    my ($exit, $out) = run_cmd(30, 'sh', '-c', 'exec "$@" < "$0"', $file,
        'openssl', 's_client', '-ign_eof', @how, @args);
    return $out;
}

# state(OUT): 'New' or 'Reused' (s_client prints "New, TLSv1.2, Cipher is")
sub state { ($_[0] =~ /^(New|Reused), TLSv1\.[23]/m)[0] // 'none' }

# the worker that served the last "TLS established" line since COUNT
sub served_by {
    my ($srv, $count) = @_;
    my @l = $srv->log_lines(qr/TLS established/);
    return undef if @l <= $count;
    return ($l[-1] =~ /upesi\[(\d+)\]/)[0];
}

sub server {
    my (%smtp) = @_;
    my $port = free_port();
    my $srv = Upesi::Test->new(smtp => {
        hostname => 'mx.test.example', local_domains => 'example.com',
        tls_cert => "$tmp/cert.pem", tls_key => "$tmp/key.pem",
        smtps_listen => "127.0.0.1:$port", %smtp });
    $srv->{smtps_port} = $port;
    $srv->start;
    return $srv;
}

# one resumption: a full handshake that saves the session, then one that
# offers it.  Returns (first state, second state, first output, second).
sub resume {
    my ($srv, $where, @args) = @_;
    my $sess = "$tmp/sess." . ++$n;
    my $a = s_client($srv, $where, @args, '-sess_out', $sess);
    my $b = -s $sess ? s_client($srv, $where, @args, '-sess_in', $sess) : '';
    return (state($a), state($b), $a, $b);
}

my @kinds = (
    ['TLS 1.2 session ID', '-tls1_2', '-no_ticket'],
    ['TLS 1.2 ticket',     '-tls1_2'],
    ['TLS 1.3 ticket',     '-tls1_3'],
);

# -- one worker: every kind, on both ports ------------------------------------
my $srv = server(workers => 1);
for my $where ('starttls', 'smtps') {
    for my $k (@kinds) {
        my ($name, @args) = @$k;
        my ($s1, $s2, $o1, $o2) = resume($srv, $where, @args);
        is $s1, 'New', "$where, $name: the first handshake is a full one"
            or diag $o1;
        is $s2, 'Reused', "$where, $name: the second resumes the session"
            or diag $o2;
        like $o2, qr/^221 /m, "$where, $name: SMTP goes on after resuming";
        if ($name =~ /ID/) {
            unlike $o1, qr/TLS session ticket:/,
                "$where, $name: no ticket when the client asks for none";
        } else {
            like $o1, qr/TLS session ticket lifetime hint: \d+/,
                "$where, $name: the server sent a ticket";
        }
    }
}
ok $srv->wait_log(qr/TLS established: TLSv1\.2 .*resumed/, 5),
   'the log says a session was resumed';
my $st = $srv->stat('SMTP.Sessions.TLS') // {};
is $st->{'SMTP.Sessions.TLSResumed'}, 6, 'SMTP.Sessions.TLSResumed counts the 6 resumptions';
{
    # a session ID survives SIGHUP too (the cache is not the context's)
    my $sess = "$tmp/sess.hupid";
    s_client($srv, 'smtps', '-tls1_2', '-no_ticket', '-sess_out', $sess);
    is $srv->hup, 'done', 'SIGHUP';
    is state(s_client($srv, 'smtps', '-tls1_2', '-no_ticket', '-sess_in', $sess)),
       'Reused', 'a session ID made before SIGHUP resumes after it';
}

# more sessions than wolfSSL's own per-process cache holds (33) resume
{
    my @files;
    for my $i (1 .. 50) {
        push @files, "$tmp/sess.many$i";
        s_client($srv, 'smtps', '-tls1_2', '-no_ticket', '-sess_out', $files[-1]);
    }
    my $reused = grep { state(s_client($srv, 'smtps', '-tls1_2', '-no_ticket',
                                       '-sess_in', $_)) eq 'Reused' } @files;
    is $reused, 50, '50 sessions made in a row all resume by session ID';
}

# a session ticket survives SIGHUP (the key is not the context's)
{
    my $sess = "$tmp/sess.hup";
    s_client($srv, 'smtps', '-tls1_3', '-sess_out', $sess);
    is $srv->hup, 'done', 'SIGHUP';
    is state(s_client($srv, 'smtps', '-tls1_3', '-sess_in', $sess)), 'Reused',
       'a TLS 1.3 ticket issued before SIGHUP resumes after it';
}

# -- max_fragment_length and truncated_hmac are not echoed -----------------------
{
    my $o = s_client($srv, 'smtps', '-tls1_2', '-maxfraglen', '512', '-tlsextdebug');
    like $o, qr/^221 /m, 's_client -maxfraglen 512: the session works';
    unlike $o, qr/TLS server extension "max fragment length"/,
        'TLS 1.2: the ServerHello does not echo max_fragment_length';
    # TLS 1.3: wolfSSL answers max_fragment_length in its (encrypted)
    # EncryptedExtensions and keeps to it; it cannot be kept out there
    # without breaking resumption (docs/tls.md), so only check it works
    $o = s_client($srv, 'smtps', '-tls1_3', '-maxfraglen', '512');
    like $o, qr/^221 /m, 's_client -maxfraglen 512, TLS 1.3: the session works';

    my $ext = server_hello_extensions($srv->{smtps_port});
    ok defined $ext, 'a hand-made TLS 1.2 ClientHello gets a ServerHello'
        or diag $@;
    $ext //= {};
    ok !exists $ext->{4}, 'truncated_hmac (4) is not echoed';
    ok !exists $ext->{1}, 'max_fragment_length (1) is not echoed';
    ok exists $ext->{0xff01}, '(the parse is right: renegotiation_info is there)';
}
$srv->stop_ok;

# -- two workers: tickets and session IDs resume on either -----------------------
{
    my $w = server(workers => 2);
    my ($tries, @not) = (0);
    for my $k (@kinds) {
        my ($name, @args) = @$k;
        # the kernel spreads connections over the workers: go on until
        # a resumption landed on the other worker (16 tries: both on
        # the same worker every time has odds of about 1 in 65,000)
        my ($cross, %seen) = (0);
        for my $i (1 .. 16) {
            $tries++;
            my $before = scalar $w->log_lines(qr/TLS established/);
            my $sess = "$tmp/sess.w" . ++$n;
            s_client($w, 'smtps', @args, '-sess_out', $sess);
            my $by1 = served_by($w, $before);
            $before = scalar $w->log_lines(qr/TLS established/);
            my $o = s_client($w, 'smtps', @args, '-sess_in', $sess);
            my $by2 = served_by($w, $before);
            push @not, "$name #$i" if state($o) ne 'Reused';
            $seen{$by1 // 0}++;
            $seen{$by2 // 0}++;
            $cross++ if $by1 && $by2 && $by1 != $by2;
            last if $cross >= 2 && $i >= 4;
        }
        is scalar(keys %seen), 2, "workers = 2, $name: both workers served";
        cmp_ok $cross, '>=', 1, "workers = 2, $name: $cross resumption(s) on the other worker than the one that made the session";
    }
    is "@not", '', "workers = 2: every session resumed ($tries tries)";
    $w->stop_ok('upesi (workers = 2)');
}

# -- tls_ticket_key_file: tickets outlive a restart; and tickets can be off -------
{
    my $keyfile = "$tmp/ticket.key";
    my ($e, $o) = run_cmd(30, 'openssl', 'rand', '-out', $keyfile, '48');
    chmod 0600, $keyfile;
    my $k = server(workers => 1, tls_ticket_key_file => $keyfile);
    my $s12 = "$tmp/sess.k12";
    my $s13 = "$tmp/sess.k13";
    s_client($k, 'smtps', '-tls1_2', '-sess_out', $s12);
    s_client($k, 'smtps', '-tls1_3', '-sess_out', $s13);
    $k->stop_ok('upesi (tls_ticket_key_file)');
    $k->start;
    is state(s_client($k, 'smtps', '-tls1_2', '-sess_in', $s12)), 'Reused',
       'tls_ticket_key_file: a TLS 1.2 ticket resumes after a restart';
    is state(s_client($k, 'smtps', '-tls1_3', '-sess_in', $s13)), 'Reused',
       'tls_ticket_key_file: a TLS 1.3 ticket resumes after a restart';
    $k->stop_ok('upesi (restarted)');

    # without the file, a restart makes a new key: the ticket is refused,
    # and the handshake is a full one (not a failure)
    my $r = server(workers => 1);
    my $s = "$tmp/sess.r";
    s_client($r, 'smtps', '-tls1_3', '-sess_out', $s);
    $r->stop_ok('upesi (random ticket key)');
    $r->start;
    my $out = s_client($r, 'smtps', '-tls1_3', '-sess_in', $s);
    is state($out), 'New', 'without tls_ticket_key_file a restart invalidates tickets';
    like $out, qr/^221 /m, '... and the client gets a full handshake instead';
    $r->stop_ok('upesi (restarted, random key)');

    spit("$tmp/short.key", "too short\n");
    my $bad = Upesi::Test->new(smtp => { tls_cert => "$tmp/cert.pem",
        tls_key => "$tmp/key.pem", tls_ticket_key_file => "$tmp/short.key" });
    ($e, $o) = upesi_check($bad->conf);
    isnt $e, 0, '-t: a ticket key file with too little in it is refused';
    like $o, qr/smtp\.ini:\d+: tls_ticket_key_file \S+short\.key: /,
        '-t: the error names the line and the file' or diag $o;

    # (and without the shared cache: wolfSSL's own one per worker)
    my $off = server(workers => 1, tls_session_tickets => 'no',
                     tls_session_cache_size => 0);
    my ($s1, $s2, $o1) = resume($off, 'smtps', '-tls1_2');
    unlike $o1, qr/TLS session ticket:/, 'tls_session_tickets = no: TLS 1.2 gets no ticket';
    is $s2, 'Reused', '... and resumes by session ID';
    $off->stop_ok('upesi (tls_session_tickets = no)');
}

# -- a CBC suite in tls_ciphers: truncated_hmac stays answered ---------------------
# (it would shorten the MAC of CBC records: without the answer the client
# and the server would disagree on it); max_fragment_length is still kept out
{
    my $cbc = server(workers => 1, tls_ciphers =>
        'ECDHE-RSA-AES128-GCM-SHA256:ECDHE-RSA-AES128-SHA256');
    my $ext = server_hello_extensions($cbc->{smtps_port}, 0xc027);
    ok defined $ext, 'CBC: a ClientHello offering ECDHE-RSA-AES128-SHA256 gets a ServerHello'
        or diag $@;
    $ext //= {};
    ok exists $ext->{4}, 'CBC suites configured: truncated_hmac is answered';
    ok !exists $ext->{1}, '... and max_fragment_length is not';
    my $o = s_client($cbc, 'smtps', '-tls1_2', '-cipher', 'ECDHE-RSA-AES128-SHA256');
    like $o, qr/^221 /m, 'CBC: s_client with ECDHE-RSA-AES128-SHA256 works';
    $cbc->stop_ok('upesi (CBC suite)');
}

done_testing;

# ---------------------------------------------------------------------------
# server_hello_extensions(PORT): send a TLS 1.2 ClientHello that asks for
# max_fragment_length (512) and truncated_hmac, as testssl.sh does, and
# return the ServerHello's extensions as { type => data }; undef and $@ on
# failure.  SUITES: the cipher suites offered (default: three AEAD ones).  OpenSSL cannot send truncated_hmac, so the hello is made here.
sub server_hello_extensions {
    my ($port, @suites) = @_;
    @suites = (0xc02f, 0xc030, 0xcca8) unless @suites;
    my $ext = sub { pack('n n/a*', @_) };
    my $exts = join '',
        $ext->(0x000a, pack('n/a*', pack('n*', 0x001d, 0x0017, 0x0018))), # groups
        $ext->(0x000b, pack('C/a*', "\x00")),                            # point formats
        $ext->(0x000d, pack('n/a*', pack('n*', 0x0804, 0x0401, 0x0403))), # sig algs
        $ext->(0xff01, "\x00"),                                          # renegotiation_info
        $ext->(0x0001, "\x02"),                                          # max_fragment_length 2^9
        $ext->(0x0004, '');                                              # truncated_hmac
    my $body = pack('n', 0x0303) . ("\x42" x 32) . "\x00"
             . pack('n/a*', pack('n*', @suites))
             . "\x01\x00" . pack('n/a*', $exts);
    my $hs = "\x01" . substr(pack('N', length $body), 1) . $body;
    my $rec = "\x16\x03\x01" . pack('n', length $hs) . $hs;
    my $sock = IO::Socket::INET->new(PeerAddr => '127.0.0.1', PeerPort => $port,
                                     Timeout => 5) or do { $@ = "connect: $!"; return undef };
    print $sock $rec;
    my $buf = '';
    my $end = time + 5 * $SLOW;
    while (length($buf) < 9 || length($buf) < 5 + unpack('n', substr($buf, 3, 2))) {
        my $left = $end - time;
        if ($left <= 0 || !IO::Select->new($sock)->can_read($left)) {
            $@ = 'no ServerHello'; return undef;
        }
        my $got = sysread($sock, $buf, 16384, length $buf);
        if (!$got) { $@ = 'closed: ' . unpack('H*', $buf); return undef }
    }
    close $sock;
    my ($type, $len) = unpack('C x2 n', $buf);
    my $msg = substr($buf, 5, $len);
    if ($type != 0x16 || ord($msg) != 2) { $@ = 'not a ServerHello: ' . unpack('H*', $buf); return undef }
    my $p = 4 + 2 + 32;
    my $sid_len = ord(substr($msg, $p, 1));
    $p += 1 + $sid_len + 2 + 1;
    my $total = unpack('n', substr($msg, $p, 2));
    $p += 2;
    my %ext;
    my $stop = $p + $total;
    while ($p + 4 <= $stop) {
        my ($t, $l) = unpack('n n', substr($msg, $p, 4));
        $ext{$t} = substr($msg, $p + 4, $l);
        $p += 4 + $l;
    }
    return \%ext;
}
