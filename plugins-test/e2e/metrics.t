#!/usr/bin/perl
# metrics.t - metrics_listen: the supervisor serves every statistic at
# /metrics in the Prometheus text format, summed over workers.  Scraped
# with curl, checked with promtool, compared with `upesi stat`; counters
# and gauges typed as docs/statistics.md says; other paths and methods
# refused; a silent client does not hold the scrape up.  Also: the
# Grafana dashboard in dist/ is valid JSON and every expression in it
# names a metric upesi serves (or a family docs/admin.md maps).
use strict;
use warnings;
use FindBin;
use lib "$FindBin::Bin/../lib";
use IO::Socket::IP;
use JSON::PP;
use Test::More;
use Upesi::Test;

deadline(120);

my $mport = free_port();
my $s = Upesi::Test->new(smtp => { workers => 2, metrics_listen => "127.0.0.1:$mport" },
                         plugins => ['max_rcpt', 'queue_spool'],
                         ini => { 'max_rcpt.ini' => "max = 1\n" });
$s->start;
for my $i (1 .. 4) {
    my $r = $s->swaks_send('--from', "a$i\@example.org", '--to', 'x@example.com,y@example.com');
    # max = 1: the second recipient is refused, the message goes to the first
    like $r->{out}, qr/<-  250 2\.0\.0 Ok: queued/, "session $i delivered";
}

sub scrape {
    my ($path) = @_;
    my ($exit, $out) = Upesi::Test::run_cmd(20, 'curl', '-sS', '-i', "http://127.0.0.1:$mport$path");
    return ($exit, $out);
}

# a silent client that holds a connection open must not stop the scrape
my $idle = IO::Socket::IP->new(PeerHost => '127.0.0.1', PeerPort => $mport)
    or die "connect: $!";

my ($exit, $out) = scrape('/metrics');
is $exit, 0, 'curl /metrics succeeds while another client is silent';
my ($head, $body) = split /\r\n\r\n/, $out, 2;
like $head, qr{^HTTP/1\.1 200 OK}, '200 OK';
like $head, qr{^Content-Type: text/plain; version=0\.0\.4}mi, 'the text exposition content type';
$body //= '';

my $stat = $s->stat;
my $n_stat = scalar keys %$stat;
my @samples = grep { /^[a-z]/ } split /\n/, $body;
is scalar(@samples), $n_stat, "every statistic is served ($n_stat)";

my %sample = map { /^(\S+) (-?\d+)$/ ? ($1 => $2) : () } @samples;
is $sample{upesi_smtp_sessions_accepted_total}, $stat->{'SMTP.Sessions.Accepted'},
    'upesi_smtp_sessions_accepted_total is SMTP.Sessions.Accepted';
is $stat->{'SMTP.Sessions.Accepted'}, 4, '... 4 sessions (two workers, one table)';
is $sample{'upesi_smtp_command_total{verb="EHLO"}'}, 4, 'upesi_smtp_command_total{verb="EHLO"} 4';
is $sample{'upesi_smtp_command_total{verb="RCPT"}'}, 8, '... RCPT 8';
is $sample{'upesi_smtp_plugin_verdicts_total{plugin="max_rcpt",hook="rcpt",verdict="DENY"}'}, 4,
    'a plugin verdict with plugin, hook and verdict labels';
# (a worker's gauge exists once it had a session; the kernel may have
# given all four to one worker)
my @per_worker = grep { /^upesi_worker_sessions\{worker="[01]"\}$/ } keys %sample;
ok @per_worker >= 1, 'per worker sessions with a worker label (' . scalar(@per_worker) . ')';
is $sample{upesi_workers}, 2, 'upesi_workers 2';

like $body, qr/^# HELP upesi_smtp_command_total SMTP\.Command\.<VERB>/m, 'HELP lines name the statistic';
like $body, qr/^# TYPE upesi_smtp_command_total counter$/m, 'commands are a counter';
for my $g (qw(upesi_smtp_sessions_current upesi_smtp_sessions_peak upesi_workers upesi_worker_sessions)) {
    like $body, qr/^# TYPE \Q$g\E gauge$/m, "$g is a gauge";
}
# every gauge docs/statistics.md names is a gauge here
my $page = slurp("$ROOT/docs/statistics.md") // '';
my @gauges = $page =~ /^\| `([^`]+)` \| \*gauge\*/mg;
ok @gauges >= 4, 'the page marks gauges (' . scalar(@gauges) . ')';
my %type = $body =~ /^# TYPE (\S+) (\S+)$/mg;
for my $t (sort keys %type) {
    like $t, qr/_total$/, "counter $t ends in _total" if $type{$t} eq 'counter';
}

# promtool, the reference linter (prometheus is in DEB_TEST)
{
    my $f = $s->tmp . '/metrics.txt';
    spit($f, $body);
    my ($pe, $po) = Upesi::Test::run_cmd(30, 'sh', '-c', "promtool check metrics < $f");
    is $pe, 0, 'promtool check metrics accepts the exposition' or diag $po;
    unlike $po, qr/\S/, '... with nothing to say' or diag $po;
    unlike $po, qr/not found/, '... (promtool ran)';
}

($exit, $out) = scrape('/other');
like $out, qr{^HTTP/1\.1 404 }, 'another path: 404';
($exit, $out) = Upesi::Test::run_cmd(20, 'curl', '-sS', '-i', '-X', 'POST', "http://127.0.0.1:$mport/metrics");
like $out, qr{^HTTP/1\.1 405 }, 'POST: 405';
close $idle;

# the numbers move: one more session shows in the next scrape
$s->swaks_send('--from', 'b@example.org', '--to', 'x@example.com');
($exit, $out) = scrape('/metrics');
like $out, qr/^upesi_smtp_sessions_accepted_total 5$/m, 'a later scrape shows the new session';
$s->stop_ok;

# a port in use: upesi does not start, and says which address
{
    my $hold = IO::Socket::IP->new(LocalHost => '127.0.0.1', LocalPort => 0, Listen => 1) or die $!;
    my $busy = $hold->sockport;
    my $t = Upesi::Test->new(smtp => { metrics_listen => "127.0.0.1:$busy" });
    my ($e, $o) = Upesi::Test::run_cmd(20, $UPESI, '-c', $t->conf);
    isnt $e, 0, 'metrics_listen on a port in use: upesi does not start';
    like $o, qr/metrics_listen 127\.0\.0\.1:$busy: Address already in use/, '... and says why' or diag $o;
}
{
    my $t = Upesi::Test->new(smtp => { metrics_listen => 'localhost:9325' });
    my ($e, $o) = upesi_check($t->conf);
    isnt $e, 0, 'metrics_listen with a name: -t fails';
    like $o, qr/smtp\.ini:\d+: .*localhost/, '... at its line' or diag $o;
}

# -- the Grafana dashboard ------------------------------------------------
{
    my $json = slurp("$ROOT/dist/grafana-upesi.json");
    ok defined $json, 'dist/grafana-upesi.json exists';
    my $d = eval { decode_json($json) };
    ok $d, 'it is valid JSON' or diag $@;
    my @exprs;
    my $walk;
    $walk = sub {
        my ($x) = @_;
        if (ref $x eq 'HASH') {
            push @exprs, $x->{expr} if defined $x->{expr} && !ref $x->{expr};
            $walk->($_) for values %$x;
        } elsif (ref $x eq 'ARRAY') {
            $walk->($_) for @$x;
        }
    };
    $walk->($d);
    ok @exprs >= 6, 'it has panels with expressions (' . scalar(@exprs) . ')';
    # every metric an expression names is one the scrape above served
    my $n = 0;
    for my $e (@exprs) {
        for my $m ($e =~ /\b(upesi_[a-z0-9_]+)/g) {
            $n++;
            ok $type{$m}, "dashboard metric $m is served" or diag "in: $e";
        }
    }
    ok $n >= 6, "the expressions name metrics ($n)";
}

done_testing();
