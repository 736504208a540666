#!/usr/bin/perl
# privileges.t - secure defaults of the process: started as root with
# `user = nobody`, the workers bind and then run as nobody (the spool and
# the 0600 control socket are theirs); an unknown user is a file:line
# error; a world-writable configuration directory, configuration file,
# plugin directory or plugin is refused (Postfix's safe-for-root habit).
use strict;
use warnings;
use FindBin;
use lib "$FindBin::Bin/../lib";
use File::Copy qw(copy);
use Test::More;
use Time::HiRes qw(sleep time);
use Upesi::Test;

deadline(90);

sub children {
    my ($pid) = @_;
    my @kids;
    for my $stat (glob '/proc/[0-9]*/stat') {
        my $line = slurp($stat) // next;
        my ($kid, $ppid) = $line =~ /^(\d+) \(.*\) \S (\d+)/ or next;
        push @kids, $kid if $ppid == $pid;
    }
    return @kids;
}

# -- world-writable things are refused ------------------------------------------
{
    my $s = Upesi::Test->new;
    chmod 0777, $s->conf;
    my ($exit, $out) = upesi_check($s->conf);
    isnt $exit, 0, 'a world-writable configuration directory is refused';
    like $out, qr/configuration directory is world-writable: refused/, '... saying why';
    chmod 0755, $s->conf;
    chmod 0666, $s->conf . '/smtp.ini';
    ($exit, $out) = upesi_check($s->conf);
    isnt $exit, 0, 'a world-writable smtp.ini is refused';
    like $out, qr/smtp\.ini: configuration file is world-writable/, '... saying which';
    chmod 0644, $s->conf . '/smtp.ini';
    ($exit, $out) = upesi_check($s->conf);
    is $exit, 0, 'the same configuration passes once fixed' or diag $out;
}
{
    my $s = Upesi::Test->new(plugins => ['queue_spool']);
    my $dir = $s->tmp . '/ww-plugins';
    mkdir $dir;
    unlink "$dir/queue_spool.so";
    copy("$ROOT/plugins/queue_spool.so", "$dir/queue_spool.so") or die "copy: $!";
    $s->set_smtp(plugin_dir => $dir);
    chmod 0755, "$dir/queue_spool.so";
    my ($exit, $out) = upesi_check($s->conf);
    is $exit, 0, 'a private plugin directory passes' or diag $out;
    chmod 0757, $dir;
    ($exit, $out) = upesi_check($s->conf);
    isnt $exit, 0, 'a world-writable plugin directory is refused';
    like $out, qr/plugin directory is world-writable/, '... saying why';
    chmod 0755, $dir;
    chmod 0757, "$dir/queue_spool.so";
    ($exit, $out) = upesi_check($s->conf);
    isnt $exit, 0, 'a world-writable plugin is refused';
    like $out, qr/queue_spool\.so is world-writable: refused/, '... naming the file';

    # the file checked is the file loaded: a libtool name.la beside name.so
    # (which libltdl would prefer) cannot send the loader to another,
    # unchecked library (world-writable here)
    chmod 0755, "$dir/queue_spool.so";
    copy("$ROOT/plugins/queue_discard.so", "$dir/other.so") or die "copy: $!";
    chmod 0757, "$dir/other.so";
    spit("$dir/queue_spool.la", "# libtool library file\ndlname='other.so'\n"
         . "library_names='other.so'\nold_library=''\ninstalled=yes\n"
         . "libdir='$dir'\n");
    ($exit, $out) = upesi_check($s->conf);
    is $exit, 0, 'a name.la beside name.so is not followed: name.so is loaded'
        or diag $out;
    unlink "$dir/queue_spool.so";
    ($exit, $out) = upesi_check($s->conf);
    isnt $exit, 0, 'a name.la alone is no plugin';
    like $out, qr/unknown plugin 'queue_spool': \S+queue_spool\.so: No such file/,
        '... the error names the .so looked for';
}

# -- users ------------------------------------------------------------------------
{
    my $s = Upesi::Test->new(smtp => { user => 'no-such-user-upesi' });
    my ($exit, $out) = upesi_check($s->conf);
    isnt $exit, 0, 'an unknown user is refused';
    like $out, qr/smtp\.ini:\d+: user: no such user 'no-such-user-upesi'/, '... with file:line';
}

SKIP: {
    skip 'dropping privileges needs root', 11 unless $> == 0;
    my ($nobody_uid) = (getpwnam('nobody'))[2];
    skip 'no user nobody', 11 unless defined $nobody_uid;
    my $group = getgrnam('nogroup') ? 'nogroup' : 'nobody';
    my $s = Upesi::Test->new(smtp => { user => 'nobody', group => $group,
                                       local_domains => 'example.com' },
                             plugins => ['queue_spool']);
    chmod 0755, $s->tmp;     # nobody must reach the spool inside it
    $s->start;
    my @kids;
    my $until = time + 10;
    while (time < $until) { @kids = children($s->pid); last if @kids; sleep 0.1 }
    ok @kids, 'a worker runs';
    my ($uid_line) = grep { /^Uid:/ } split /\n/, (slurp("/proc/$kids[0]/status") // '');
    like $uid_line // '', qr/^Uid:\s+$nobody_uid\s+$nobody_uid\s+$nobody_uid\s+$nobody_uid\b/,
        'the worker runs as nobody (real, effective, saved, fs)';
    my ($sup_uid) = (slurp('/proc/' . $s->pid . '/status') // '') =~ /^Uid:\s+(\d+)/m;
    is $sup_uid, 0, 'the supervisor stays root (it binds for new workers)';
    my $r = $s->swaks_send('--to', 'bob@example.com');
    is $r->{exit}, 0, 'mail is accepted by the unprivileged worker' or diag $r->{out};
    my @m = $s->spool;
    is scalar(@m), 1, 'and spooled';
    is(@m ? (stat $m[0]{file})[4] : undef, $nobody_uid, 'the spool file belongs to nobody');
    my @st = stat $s->{sock};
    is $st[4], $nobody_uid, 'the control socket belongs to nobody';
    is sprintf('%04o', $st[2] & 07777), '0600', '... with mode 0600';
    my $stat = $s->stat('SMTP.Messages');
    is $stat->{'SMTP.Messages.Accepted'}, 1, 'upesi stat answers';
    $s->stop_ok;
}

done_testing;
