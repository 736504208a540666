#!/usr/bin/perl
# front_of_postfix.t - conf/examples/front-of-postfix/ against a real
# Postfix: a private instance started by this test (its own
# config_directory, queue_directory and data_directory under a temp dir,
# loopback only, a free port instead of 25, every service unchrooted,
# virtual delivery into a Maildir the test reads), `postfix -c DIR start`
# and `stop`.  The example, with only its listen address, paths and the
# downstream port changed, passes -t, accepts a message, and queue_forward
# delivers it to Postfix over STARTTLS (Postfix offers it with a
# self-signed certificate); the message is seen in Postfix's Maildir and
# Postfix's log shows the TLS session.  Then Postfix is stopped: a second
# message waits in upesi's queue (`upesi queue list`), and arrives after
# Postfix is started again and `upesi queue flush`.
use strict;
use warnings;
use FindBin;
use lib "$FindBin::Bin/../lib";
use File::Path qw(make_path);
use Test::More;
use Time::HiRes qw(sleep time);
use Upesi::Test;
use Upesi::Forward qw(send_msg wait_for);

deadline(240);

my $postfix = '/usr/sbin/postfix';
ok -x $postfix, 'postfix is installed (DEB_TEST)' or BAIL_OUT('no postfix');
my @pw = getpwnam('postfix') or BAIL_OUT('no postfix account');
my ($pf_uid, $pf_gid) = @pw[2, 3];

my $example = "$ROOT/conf/examples/front-of-postfix";
my $s = Upesi::Test->new(template => $example, plugins => undef,
                         smtp => { metrics_listen => undef, workers => 1 });
my $tmp = $s->tmp;

# -- a private Postfix ----------------------------------------------------
my $pf = "$tmp/postfix";
make_path("$pf/conf", "$pf/queue", "$pf/data", "$pf/mail");
chmod 0755, $tmp, $pf;          # Postfix's own account walks down to data/
chown $pf_uid, $pf_gid, "$pf/data", "$pf/mail";
my $pport = free_port();
my ($e, $o) = Upesi::Test::run_cmd(60, 'openssl', 'req', '-x509', '-newkey', 'rsa:2048', '-nodes',
    '-keyout', "$pf/conf/key.pem", '-out', "$pf/conf/cert.pem", '-days', '2',
    '-subj', '/CN=pf.test.example');
is $e, 0, 'a self-signed certificate for Postfix' or diag $o;
spit("$pf/conf/main.cf", <<"EOF");
compatibility_level = 3.6
queue_directory = $pf/queue
data_directory = $pf/data
command_directory = /usr/sbin
daemon_directory = /usr/lib/postfix/sbin
shlib_directory = /usr/lib/postfix
meta_directory = /etc/postfix
mail_owner = postfix
setgid_group = postdrop
inet_interfaces = 127.0.0.1
inet_protocols = ipv4
myhostname = pf.test.example
mydomain = test.example
mydestination =
mynetworks = 127.0.0.0/8
alias_maps =
alias_database =
local_recipient_maps =
virtual_mailbox_domains = example.com
virtual_mailbox_base = $pf/mail
virtual_mailbox_maps = static:maildir/
virtual_uid_maps = static:$pf_uid
virtual_gid_maps = static:$pf_gid
maillog_file = $pf/maillog
maillog_file_prefixes = $pf
smtpd_tls_security_level = may
smtpd_tls_cert_file = $pf/conf/cert.pem
smtpd_tls_key_file = $pf/conf/key.pem
smtpd_tls_loglevel = 1
smtputf8_enable = no
EOF
# Debian's master.cf with the smtp listener on our port and no chroot
# (the queue directory is a temp dir with no chroot tree in it)
my @master;
for (split /\n/, slurp('/etc/postfix/master.cf') // '') {
    if (/^smtp\s+inet\b/) {
        push @master, "127.0.0.1:$pport inet n - n - - smtpd";
    } elsif (/^[a-z]/ && (my @f = split ' ') >= 8) {
        $f[4] = 'n';
        push @master, join(' ', @f);
    } else {
        push @master, $_;
    }
}
spit("$pf/conf/master.cf", join("\n", @master) . "\n");

sub pfx {
    my (@args) = @_;
    # postfix reports to syslog unless stderr is a terminal: give it one
    return Upesi::Test::run_cmd(60, 'script', '-qec', join(' ', $postfix, '-c', "$pf/conf", @args), '/dev/null');
}
my $pf_running = 0;
END { pfx('stop') if $pf_running }
sub pf_start {
    my ($x, $out) = pfx('start');
    is $x, 0, 'postfix -c DIR start' or diag $out . (slurp("$pf/maillog") // '');
    $pf_running = 1;
    ok wait_for(20, sub { Upesi::Test::_listening('127.0.0.1', $pport) }), "Postfix listens on 127.0.0.1:$pport";
}
sub pf_stop {
    my ($x, $out) = pfx('stop');
    is $x, 0, 'postfix -c DIR stop' or diag $out;
    $pf_running = 0;
    ok wait_for(20, sub { !Upesi::Test::_listening('127.0.0.1', $pport) }), 'Postfix is down';
}
sub delivered {
    my @f = (glob("$pf/mail/maildir/new/*"), glob("$pf/mail/maildir/cur/*"));
    return map { slurp($_) // '' } @f;
}
pf_start();

# -- the example, pointed at it -------------------------------------------
my $fwd = slurp("$example/queue_forward.ini");
like $fwd, qr/^downstream = 127\.0\.0\.1:25$/m, 'the example forwards to 127.0.0.1:25';
like $fwd, qr/^downstream_tls = 1$/m, '... with STARTTLS when offered';
$fwd =~ s/^downstream = 127\.0\.0\.1:25$/downstream = 127.0.0.1:$pport/m;
$fwd .= "retry_min = 60s\nretry_max = 60s\nscan_interval = 200ms\n";
$s->write_conf('queue_forward.ini', $fwd);
($e, $o) = upesi_check($s->conf);
is $e, 0, 'the example passes -t' or diag $o;
unlike $o, qr/WARNING/, '... without a warning' or diag $o;
$s->start;

my $r = send_msg($s, from => 'alice@example.org', to => ['bob@example.com'],
                 data => "From: alice\@example.org\r\nTo: bob\@example.com\r\n"
                       . "Subject: through upesi to postfix\r\n\r\nhello postfix\r\n");
is $r && $r->{code}, 250, 'upesi accepts the message';
ok wait_for(30, sub { grep { /hello postfix/ } delivered() }), 'Postfix delivered it into the Maildir'
    or diag(($s->log_tail(30)) . (slurp("$pf/maillog") // ''));
my ($msg) = grep { /hello postfix/ } delivered();
like $msg // '', qr/^Received: from mx\.example\.com .*\n?.*by pf\.test\.example/m, "... Postfix's Received names upesi's host";
like $msg // '', qr/with ESMTPS/, '... and says ESMTPS (TLS)';
like slurp("$pf/maillog") // '', qr/postfix\/smtpd\[\d+\]: .*TLS connection established from localhost/,
    "Postfix's log shows the STARTTLS session";
like $s->log_text, qr/queue_forward: \S+: to=<bob\@example\.com> relay=127\.0\.0\.1:$pport status=sent/,
    "upesi's log shows the delivery";

# -- Postfix down: the message waits, then arrives --------------------------
pf_stop();
$r = send_msg($s, from => 'alice@example.org', to => ['bob@example.com'],
              data => "Subject: second\r\n\r\nwhile postfix was down\r\n");
is $r && $r->{code}, 250, 'upesi accepts a message while Postfix is down';
ok wait_for(15, sub { my (undef, $l) = Upesi::Test::run_cmd(20, $UPESI, '-c', $s->conf, 'queue', 'list');
                      $l =~ /state=deferred/ }), 'it waits in the queue, deferred';
pf_start();
($e, $o) = Upesi::Test::run_cmd(20, $UPESI, '-c', $s->conf, 'queue', 'flush');
is $e, 0, 'upesi queue flush' or diag $o;
ok wait_for(30, sub { grep { /while postfix was down/ } delivered() }), 'after the flush Postfix has it';
is scalar(grep { /while postfix was down/ } delivered()), 1, '... once';
$s->stop_ok('upesi in front of postfix');
pf_stop();

done_testing();
