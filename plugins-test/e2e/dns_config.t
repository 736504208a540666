#!/usr/bin/perl
# dns_config.t - bad input in the DNS settings and the connection filters'
# ini files is refused by `upesi -t` with file:line (smtp.ini dns_servers,
# dns_timeout, dns_cache_size; dnsbl.ini, dnswl.ini, private_lists.ini);
# good settings pass.
use strict;
use warnings;
use FindBin;
use lib "$FindBin::Bin/../lib";
use Test::More;
use Upesi::Test;

deadline(120);

sub check {
    my (%opt) = @_;
    my $srv = Upesi::Test->new(
        plugins => ['private_lists', 'dnswl', 'dnsbl', 'queue_spool'],
        smtp => $opt{smtp} || {}, ini => $opt{ini} || {});
    return upesi_check($srv->conf);
}

my ($exit, $out) = check(
    smtp => { dns_servers => '127.0.0.1:5353, [::1]:5353, 192.0.2.53',
              dns_timeout => '2.5', dns_cache_size => 0 },
    ini => {
        'dnsbl.ini' => "zones = zen.example.org, bl.example.net=127.0.0.2-127.0.0.11;127.0.0.20\n"
                     . "action = reject\nexpand_stats = 1\n"
                     . "message = Your host %s is listed in %s (100%% sure)\n"
                     . "[zen.example.org]\nanswers = 127.0.0.2-127.0.0.11, 127.0.1.0/24\n",
        'dnswl.ini' => "zones = list.dnswl.example\naction = skip\n",
        'private_lists.ini' => "[whitelist]\nhosts = 192.168.*.*, 10.0.0.0/8, 2001:db8::/32, "
                             . "*.partner.example, mail.friend.example\naction = log\n"
                             . "[blacklist]\nhosts = 198.51.100.7 [203.0.113.9]\n"
                             . "action = reject\nmessage = Go away, %s\n",
    });
is $exit, 0, 'good settings pass -t' or diag $out;

my @bad = (
    [ { smtp => { dns_servers => 'dns.example.com' } },
      qr/smtp\.ini:\d+: .*dns\.example\.com.*not an IP address/, 'dns_servers: a name' ],
    [ { smtp => { dns_servers => '127.0.0.1:99999' } },
      qr/smtp\.ini:\d+: .*bad port/, 'dns_servers: a bad port' ],
    [ { smtp => { dns_timeout => '0' } },
      qr/smtp\.ini:\d+: dns_timeout: expected a duration from 0\.001 to 300 seconds.*got '0'/, 'dns_timeout 0' ],
    [ { smtp => { dns_cache_size => '-1' } },
      qr/smtp\.ini:\d+: /, 'dns_cache_size negative' ],
    [ { ini => { 'dnsbl.ini' => "action = log\nzones = bl.example, bad..zone\n" } },
      qr/dnsbl\.ini:2: zones: 'bad\.\.zone' is not a zone name/, 'dnsbl: illegal zone name' ],
    [ { ini => { 'dnsbl.ini' => "zones = bl.example, bl_\@x.example\n" } },
      qr/dnsbl\.ini:1: .*not a zone name/, 'dnsbl: illegal character in a zone' ],
    [ { ini => { 'dnsbl.ini' => "zones = bl.example\n[bl.example]\nanswers = 10.0.0.1\n" } },
      qr/dnsbl\.ini:3: .*inside 127\.0\.0\.0\/8/, 'dnsbl: an answer outside 127/8' ],
    [ { ini => { 'dnsbl.ini' => "zones = bl.example\n[other.example]\nanswers = 127.0.0.2\n" } },
      qr/dnsbl\.ini:3: .*not a zone in zones/, 'dnsbl: a section for an unknown zone' ],
    [ { ini => { 'dnsbl.ini' => "zones = bl.example\naction = drop\n" } },
      qr/dnsbl\.ini:2: action: expected one of log, tag, reject, got 'drop'/, 'dnsbl: unknown action' ],
    [ { ini => { 'dnsbl.ini' => "zones = bl.example\nmessage = %s %s %s\n" } },
      qr/dnsbl\.ini:2: message/, 'dnsbl: three %s in message' ],
    [ { ini => { 'dnsbl.ini' => "zones = bl.example, BL.example\n" } },
      qr/dnsbl\.ini:1: .*twice/, 'dnsbl: a zone listed twice' ],
    [ { ini => { 'dnswl.ini' => "zones = wl..example\n" } },
      qr/dnswl\.ini:1: .*not a zone name/, 'dnswl: illegal zone name' ],
    [ { ini => { 'dnswl.ini' => "zones = wl.example\naction = reject\n" } },
      qr/dnswl\.ini:2: action: expected one of skip, log, tag, got 'reject'/, 'dnswl: reject is not an action' ],
    [ { ini => { 'dnswl.ini' => "zones = wl.example\nexpand_stats = yes please\n" } },
      qr/dnswl\.ini:2: expand_stats/, 'dnswl: expand_stats' ],
    [ { ini => { 'private_lists.ini' => "[whitelist]\n\nhosts = 192.168.1.300\n" } },
      qr/private_lists\.ini:3: \[whitelist\] hosts: '192\.168\.1\.300' is not/, 'private_lists: a bad address' ],
    [ { ini => { 'private_lists.ini' => "[blacklist]\nhosts = 10.0.0.0/33\n" } },
      qr/private_lists\.ini:2: \[blacklist\] hosts: '10\.0\.0\.0\/33' is not/, 'private_lists: a bad CIDR' ],
    [ { ini => { 'private_lists.ini' => "[blacklist]\nhosts = bad!name.example\n" } },
      qr/private_lists\.ini:2: \[blacklist\] hosts: 'bad!name\.example' is not/, 'private_lists: a bad host pattern' ],
    [ { ini => { 'private_lists.ini' => "hosts = 10.0.0.1\n" } },
      qr/private_lists\.ini:1: 'hosts' belongs in a section \(\[whitelist\], \[blacklist\]\)/,
      'private_lists: a key outside a section' ],
    [ { ini => { 'private_lists.ini' => "[greylist]\nhosts = 10.0.0.1\n" } },
      qr/private_lists\.ini:2: unknown section \[greylist\]/, 'private_lists: unknown section' ],
    [ { ini => { 'private_lists.ini' => "[whitelist]\naction = reject\n" } },
      qr/private_lists\.ini:2: \[whitelist\] action: expected one of skip, log, tag, got 'reject'/,
      'private_lists: whitelist actions' ],
    [ { ini => { 'private_lists.ini' => "[blacklist]\nmessage = %d\n" } },
      qr/private_lists\.ini:2: \[blacklist\] message: one line/, 'private_lists: a bad message' ],
);
for my $case (@bad) {
    my ($opt, $re, $what) = @$case;
    my ($x, $o) = check(%$opt);
    isnt $x, 0, "$what: -t fails";
    like $o, $re, "$what: file:line and the reason" or diag $o;
}

done_testing;
