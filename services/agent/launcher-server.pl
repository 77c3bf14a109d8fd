# muster launcher server: one long-lived process per agent that starts tasks by forking, so that
# Perl and POSIX load once instead of once per task. For each task it forks a watcher; the watcher
# forks the task and reports its raw wait status (core-dump flag included), which Node's
# child_process cannot. The agent runs this text with `perl -e` (launcher-source.ts embeds it; a
# test keeps the two identical).
# fd 0: requests from the agent, one a line, fields separated by one space; in every field `%`,
#       space, CR, LF and NUL are written as %XX:
#   T <id> <cwd> <argc> <argv>... <name=value>...  start a task with exactly this environment
#   R <id>                                          the agent reopened the task's pipes: close ours
# fd 3: status lines to the agent. Each line is one write, so lines of several processes never mix:
#   H <pid> <fd>          ready; <fd> is a probe pipe the agent reopens through /proc (then `R 0`)
#   A <id> <fd> <fd>      accepted: the read ends of the task's stdout/stderr pipes, held until
#                         `R <id>`; written before the watcher is forked, so a request with no A
#                         line was never started
#   P <id> <pid>          the task was exec'd; <pid> is its pid, process group and session
#   E <id> <errno> <text> exec failed (or pipe/fork);  C <id> <errno> <text>  chdir failed
#   W <id> <status>       the task's raw wait status from waitpid
#   X <id> <status>       a watcher ended abnormally (its own raw status) before reporting W/E/C
# End of file on fd 0 ends the server. Watchers do not need it: they write to fd 3 themselves, so
# the tasks that are running when the server dies are still reported.
use strict;
use warnings;
no warnings 'exec';
use POSIX ();

$0 = 'muster-launcher';
open(my $st, '>&=', 3) or POSIX::_exit(125);

# The server, and the watchers it forks, ignore every signal they can; tasks get the defaults back.
for my $n (1 .. 64) {
  next if $n == 9 || $n == 17 || $n == 19;
  POSIX::sigaction($n, POSIX::SigAction->new('IGNORE'));
}

my %held;    # id => [read end of stdout, read end of stderr]
my %watcher; # pid => id

sub report {
  my $line = $_[0] . "\n";
  while (length $line) {
    my $n = syswrite($st, $line);
    if (!defined $n) { next if $!{EINTR}; return; }
    substr($line, 0, $n, '');
  }
}

sub reap {
  while ((my $pid = waitpid(-1, POSIX::WNOHANG())) > 0) {
    my $id = delete $watcher{$pid};
    report("X $id ${^CHILD_ERROR_NATIVE}") if defined $id && ${^CHILD_ERROR_NATIVE} != 0;
  }
}
$SIG{CHLD} = \&reap;
POSIX::sigprocmask(POSIX::SIG_SETMASK(), POSIX::SigSet->new);

sub watch {
  my ($id, $cwd, $argv, $env, $ow, $ew) = @_;
  $0 = 'muster-launcher-watch';
  $SIG{CHLD} = 'DEFAULT';
  close(STDIN);
  for my $h (values %held) { close($_) for @$h; }
  my ($xr, $xw);
  if (!pipe($xr, $xw)) {
    report("E $id " . ($! + 0) . " pipe: $!");
    POSIX::_exit(0);
  }
  my $pid = fork();
  if (!defined $pid) {
    report("E $id " . ($! + 0) . " fork: $!");
    POSIX::_exit(0);
  }
  if ($pid == 0) {
    close($xr);
    POSIX::setsid();
    open(STDIN, '<', '/dev/null');
    POSIX::dup2(fileno($ow), 1);
    POSIX::dup2(fileno($ew), 2);
    POSIX::close(3);
    # No signal may arrive between the reset of the dispositions and the exec.
    my $all = POSIX::SigSet->new;
    $all->fillset;
    POSIX::sigprocmask(POSIX::SIG_BLOCK(), $all);
    POSIX::sigaction($_, POSIX::SigAction->new('DEFAULT')) for 1 .. 64;
    %ENV = ();
    for (@$env) {
      my $i = index($_, '=');
      $ENV{substr($_, 0, $i)} = substr($_, $i + 1) if $i > 0;
    }
    if (!chdir($cwd)) {
      syswrite($xw, 'C ' . ($! + 0) . " $!");
      POSIX::_exit(126);
    }
    POSIX::sigprocmask(POSIX::SIG_SETMASK(), POSIX::SigSet->new);
    exec { $argv->[0] } @$argv;
    my $n = $! + 0;
    my $text = "$!";
    POSIX::sigprocmask(POSIX::SIG_BLOCK(), $all);
    syswrite($xw, "E $n $text");
    POSIX::_exit($n == POSIX::ENOENT() ? 127 : 126);
  }
  close($xw);
  close($ow);
  close($ew);
  my $err = '';
  while (1) {
    my $got = sysread($xr, my $buf, 4096);
    last if defined $got && $got == 0;
    if (!defined $got) { next if $!{EINTR}; last; }
    $err .= $buf;
  }
  close($xr);
  if ($err ne '') {
    $err =~ s/^([EC]) /$1 $id /;
    report($err);
    waitpid($pid, 0);
    POSIX::_exit(0);
  }
  report("P $id $pid");
  # While the task runs, the watcher also waits for the agent's end of fd 3 to close: an agent that
  # died (SIGKILL, crash) can neither report nor stop the task, so its process group is killed then.
  # A self-pipe written by the SIGCHLD handler wakes the select. Perl runs that handler only between
  # its own ops, so a SIGCHLD that lands after the last check and before the select blocks would wait
  # for the next wake: the select also times out each second, and waitpid then reaps the task.
  my ($wake, $woke);
  pipe($wake, $woke) or POSIX::_exit(0);
  $SIG{CHLD} = sub { syswrite($woke, 'c') };
  open(my $agent, '<&=', 3) or POSIX::_exit(0);
  while (1) {
    my $r = waitpid($pid, POSIX::WNOHANG());
    if ($r == $pid) {
      report("W $id ${^CHILD_ERROR_NATIVE}");
      last;
    }
    last if $r == -1 && !$!{EINTR};
    my $rin = '';
    vec($rin, 3, 1) = 1;
    vec($rin, fileno($wake), 1) = 1;
    next if select(my $rout = $rin, undef, undef, 1) <= 0;
    sysread($wake, my $drained, 64) if vec($rout, fileno($wake), 1);
    if (vec($rout, 3, 1)) {
      my $got = sysread($agent, my $ignored, 64);
      if (defined $got && $got == 0) {
        kill('KILL', -$pid);
        waitpid($pid, 0);
        last;
      }
    }
  }
  POSIX::_exit(0);
}

sub start {
  my ($id, $cwd, $argc, @env) = @_;
  my @argv = splice(@env, 0, $argc);
  my ($or, $ow, $er, $ew);
  if (!(pipe($or, $ow) && pipe($er, $ew))) {
    report("E $id " . ($! + 0) . " pipe: $!");
    close($_) for grep { defined } ($or, $ow, $er, $ew);
    return;
  }
  $held{$id} = [$or, $er];
  report("A $id " . fileno($or) . ' ' . fileno($er));
  my $pid = fork();
  if (!defined $pid) {
    report("E $id " . ($! + 0) . " fork: $!");
    # Nothing writes to these pipes: close every end, so the agent's readers see end of file.
    close($ow);
    close($ew);
    delete $held{$id};
    return;
  }
  watch($id, $cwd, \@argv, \@env, $ow, $ew) if $pid == 0;
  $watcher{$pid} = $id;
  close($ow);
  close($ew);
}

sub request {
  my ($op, @f) = split / /, $_[0], -1;
  s/%([0-9A-Fa-f]{2})/chr(hex($1))/ge for @f;
  if ($op eq 'T' && @f >= 4 && $f[2] =~ /^[1-9][0-9]*$/ && @f >= 3 + $f[2]) {
    start(@f);
  } elsif ($op eq 'R' && @f == 1) {
    my $h = delete $held{$f[0]};
    if ($h) { close($_) for @$h; }
  } else {
    print STDERR "muster-launcher: bad request: $_[0]\n";
  }
}

pipe(my $pr, my $pw) or POSIX::_exit(125);
$held{0} = [$pr, $pw];
report("H $$ " . fileno($pr));
my $in = '';
while (1) {
  my $got = sysread(STDIN, $in, 65536, length $in);
  if (!defined $got) { next if $!{EINTR}; last; }
  last if $got == 0;
  while ((my $i = index($in, "\n")) >= 0) {
    my $line = substr($in, 0, $i + 1, '');
    chop $line;
    request($line);
  }
}
POSIX::_exit(0);
