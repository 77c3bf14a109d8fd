# muster task launcher: runs one task and reports its raw wait status (core-dump flag included),
# which Node's child_process cannot. The agent runs this text with `perl -e` (launcher-source.ts embeds
# it; a test keeps the two identical). Usage: perl -e SRC -- CWD ARGV0 [ARG...]
# fd 0: control from the agent ("go" or "sock"); fd 2: the launcher's own diagnostics;
# fd 3: status lines to the agent, in this order:
#   O <pid> <fd> <fd>     real pipes for the task's stdout/stderr (the agent reopens them via /proc)
#   P <pid>               the task was exec'd (pid of the task process)
#   E <errno> <text>      exec failed;  C <errno> <text>  chdir failed
#   W <status>            the task's raw wait status from waitpid
use strict;
use warnings;
no warnings 'exec';
use POSIX ();

$0 = 'muster-launcher';
open(my $st, '>&=', 3) or POSIX::_exit(125);
{ my $old = select($st); $| = 1; select($old); }
my ($cwd, @argv) = @ARGV;
POSIX::_exit(125) unless defined $cwd && @argv;

# The agent moved PERL* variables aside so they cannot change this script; give them back.
delete $ENV{PERL_BADLANG};
for my $k (keys %ENV) {
  $ENV{$1} = delete $ENV{$k} if $k =~ /^MUSTER_LAUNCHER_KEEP_(.+)$/;
}

# No signal may slip in between the fork and the parent's ignoring of signals.
my $all = POSIX::SigSet->new;
$all->fillset;
POSIX::sigprocmask(POSIX::SIG_BLOCK(), $all);
# Tasks start with default dispositions, whatever the agent inherited.
POSIX::sigaction($_, POSIX::SigAction->new('DEFAULT')) for 1 .. 64;

# Real pipes for stdout/stderr: a socket (what Node gives) cannot be reopened as /dev/stdout.
my ($or, $ow, $er, $ew);
my $pipes = pipe($or, $ow) && pipe($er, $ew);
print $st ($pipes ? 'O ' . $$ . ' ' . fileno($or) . ' ' . fileno($er) : 'O - - -'), "\n";
my $mode = <STDIN>;
$mode = '' unless defined $mode;
my $real = $pipes && $mode =~ /^go/;
if ($pipes) { close($or); close($er); }

pipe(my $xr, my $xw) or POSIX::_exit(125);
my $pid = fork();
if (!defined $pid) {
  my $n = $! + 0;
  print $st "E $n fork: $!\n";
  POSIX::_exit(0);
}
if ($pid == 0) {
  close($xr);
  open(STDIN, '<', '/dev/null');
  if ($real) {
    POSIX::dup2(fileno($ow), 1);
    POSIX::dup2(fileno($ew), 2);
  }
  POSIX::close(3);
  my $empty = POSIX::SigSet->new;
  if (!chdir($cwd)) {
    syswrite($xw, 'C ' . ($! + 0) . " $!");
    POSIX::_exit(126);
  }
  POSIX::sigprocmask(POSIX::SIG_SETMASK(), $empty);
  exec { $argv[0] } @argv;
  my $n = $! + 0;
  my $text = "$!";
  POSIX::sigprocmask(POSIX::SIG_BLOCK(), $all);
  syswrite($xw, "E $n $text");
  POSIX::_exit($n == POSIX::ENOENT() ? 127 : 126);
}

# The parent must outlive any signal sent to the process group, except SIGKILL.
for my $n (1 .. 64) {
  next if $n == 9 || $n == 17 || $n == 19;
  POSIX::sigaction($n, POSIX::SigAction->new('IGNORE'));
}
POSIX::sigprocmask(POSIX::SIG_SETMASK(), POSIX::SigSet->new);
close($xw);
if ($pipes) { close($ow); close($ew); }
close(STDIN);

my $err = '';
while (1) {
  my $got = sysread($xr, my $buf, 4096);
  last if defined $got && $got == 0;
  if (!defined $got) { next if $!{EINTR}; last; }
  $err .= $buf;
}
close($xr);
print $st ($err eq '' ? "P $pid" : $err), "\n";

while (1) {
  my $r = waitpid($pid, 0);
  if ($r == $pid) {
    print $st 'W ' . ${^CHILD_ERROR_NATIVE} . "\n";
    last;
  }
  last if $r == -1 && !$!{EINTR};
}
POSIX::_exit(0);
