// The long-lived launcher (launcher-server.pl driven by launcher.ts), without NATS: the per-task
// contract through the server (raw wait status with the core flag, 127/126 with the OS text, own
// session and process group, real pipes, exact environment, default dispositions), and what happens
// when it fails: the server or a watcher killed mid-job, requests in flight when it dies, a server
// that accepts and dies, one that cannot start, and /proc refusing the pipes.
import { readFileSync } from "node:fs";
import { chmod, mkdtemp, readdir, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, afterEach, beforeAll, describe, expect, it } from "vitest";
import { createLogger } from "../../src/logger.js";
import type { IoStream } from "../../src/protocol/index.js";
import { LAUNCHER_LOST_TEXT, PERL_PATH, createLauncher, escapeField } from "../../services/agent/index.js";
import type { Launcher, LauncherOptions, TaskExit, TaskProcess } from "../../services/agent/index.js";
import { waitFor } from "../support/wait.js";

const logger = createLogger({ level: process.env.MUSTER_TEST_LOG ?? "silent", pretty: false });
let dir: string;
const launchers: Launcher[] = [];
const leftovers: number[] = [];

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), "muster-launcher-server-test-"));
});

afterEach(async () => {
  for (const l of launchers.splice(0)) await l.close();
  for (const pid of leftovers.splice(0)) signalGroup(pid, "SIGKILL");
});

afterAll(async () => {
  await rm(dir, { recursive: true, force: true });
});

async function launcher(opts: Partial<LauncherOptions> = {}): Promise<Launcher> {
  const l = createLauncher({ logger, outputGraceMs: 500, ...opts });
  launchers.push(l);
  await l.start();
  return l;
}

interface Run {
  readonly proc: TaskProcess;
  readonly out: Record<IoStream, string>;
  readonly started: number[];
  readonly exit: Promise<TaskExit>;
}

function run(l: Launcher, argv: string[], opts: { cwd?: string; env?: Record<string, string>; envExtra?: Record<string, string> } = {}): Run {
  const out: Record<IoStream, string> = { stdout: "", stderr: "" };
  const started: number[] = [];
  const proc = l.spawn({
    argv,
    cwd: opts.cwd ?? dir,
    env: opts.env ?? { PATH: process.env.PATH ?? "/usr/bin:/bin" },
    ...(opts.envExtra ? { envExtra: opts.envExtra } : {}),
    onStarted: (pid) => {
      started.push(pid);
      leftovers.push(pid);
    },
    onOutput: (stream, data) => {
      out[stream] += data.toString("utf8");
    },
  });
  return { proc, out, started, exit: proc.done };
}

/** pid, process group and session of a live process, from /proc. */
function idsOf(pid: number): { ppid: number; pgid: number; sid: number } | undefined {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, "utf8");
    const f = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
    return { ppid: Number(f[1]), pgid: Number(f[2]), sid: Number(f[3]) };
  } catch {
    return undefined;
  }
}

function alive(pid: number): boolean {
  const s = (() => {
    try {
      return readFileSync(`/proc/${pid}/stat`, "utf8");
    } catch {
      return "";
    }
  })();
  return s !== "" && s.slice(s.lastIndexOf(")") + 2, s.lastIndexOf(")") + 3) !== "Z";
}

function signalGroup(pid: number, signal: NodeJS.Signals): void {
  try {
    process.kill(-pid, signal);
  } catch {
    // gone
  }
}

/** A stand-in for perl: the server's first `starts` launches run `fake` (a Perl script), the rest real perl. */
async function fakePerl(name: string, fake: string, starts = 1): Promise<string> {
  const script = join(dir, `${name}.pl`);
  const counter = join(dir, `${name}.count`);
  await writeFile(script, fake);
  await writeFile(counter, "0\n");
  const wrapper = join(dir, name);
  // The server is started as `perl -e SRC` (two arguments); per-task launchers get more.
  await writeFile(
    wrapper,
    `#!/bin/sh\nread n < '${counter}'\nif [ "$#" -eq 2 ] && [ "$n" -lt ${starts} ]; then\n  echo $((n + 1)) > '${counter}'\n  exec ${PERL_PATH} '${script}'\nfi\nexec ${PERL_PATH} "$@"\n`,
  );
  await chmod(wrapper, 0o755);
  return wrapper;
}

describe("launcher server", () => {
  it("escapes request fields", () => {
    expect(escapeField("plain")).toBe("plain");
    expect(escapeField("a b%c\nd\re\0")).toBe("a%20b%25c%0Ad%0De%00");
  });

  it("reports exit codes and signals exactly, with real pipes, its own session and group, and exactly the given environment", async () => {
    const l = await launcher();
    expect(l.mode).toBe("ready");
    const weird = "a b%c\nd é";
    const r = run(l, ["sh", "-c", 'printf "%s|%s|%s\\n" "$1" "$W" "$ONLY"; cut -d" " -f1,5,6 /proc/$$/stat; echo err >/dev/stderr; exit 3', "sh", weird], {
      env: { PATH: "/usr/bin:/bin", W: weird, ONLY: "base", HOME: "/nowhere" },
      envExtra: { ONLY: "extra" },
    });
    const exit = await r.exit;
    expect(exit.outcome).toEqual({ kind: "exited", code: 3 });
    expect(r.started).toEqual([exit.pid]);
    expect(r.out.stdout).toBe(`${weird}|${weird}|extra\n${exit.pid} ${exit.pid} ${exit.pid}\n`);
    expect(r.out.stderr).toBe("err\n");

    const env = run(l, ["/usr/bin/env"], { env: { A: "1" }, envExtra: { B: "2" } });
    expect((await env.exit).outcome).toEqual({ kind: "exited", code: 0 });
    expect(env.out.stdout.split("\n").filter(Boolean).sort()).toEqual(["A=1", "B=2"]);

    expect((await run(l, ["sh", "-c", "kill -USR2 $$"]).exit).outcome).toEqual({ kind: "signaled", signal: 12, coreDumped: false });
    expect((await run(l, ["sh", "-c", "ulimit -c 0; kill -SEGV $$"]).exit).outcome).toEqual({ kind: "signaled", signal: 11, coreDumped: false });
    const pattern = readFileSync("/proc/sys/kernel/core_pattern", "utf8").trim();
    const cwd = await mkdtemp(join(dir, "core-"));
    const core = await run(l, ["sh", "-c", "ulimit -c unlimited 2>/dev/null; kill -SEGV $$"], { cwd }).exit;
    expect(core.outcome).toMatchObject({ kind: "signaled", signal: 11 });
    if (!pattern.startsWith("|") && !pattern.includes("/")) {
      expect(core.outcome).toEqual({ kind: "signaled", signal: 11, coreDumped: true });
      expect((await readdir(cwd)).some((f) => f.startsWith("core"))).toBe(true);
    }
  });

  it("reports launch failures: 127 not found, 126 not executable or no such cwd, with the OS text and no start", async () => {
    const l = await launcher();
    const plain = join(dir, "plain.sh");
    await writeFile(plain, "#!/bin/sh\necho hi\n");
    await chmod(plain, 0o644);
    const nf = run(l, ["muster-no-such-command", "x"]);
    const nx = run(l, [plain]);
    const nd = run(l, ["true"], { cwd: join(dir, "missing-dir") });
    expect(await nf.exit).toEqual({ outcome: { kind: "launch_failed", code: 127, error: "muster-no-such-command: No such file or directory" } });
    expect(await nx.exit).toEqual({ outcome: { kind: "launch_failed", code: 126, error: `${plain}: Permission denied` } });
    expect(await nd.exit).toEqual({ outcome: { kind: "launch_failed", code: 126, error: `cannot change directory to ${join(dir, "missing-dir")}: No such file or directory` } });
    expect([...nf.started, ...nx.started, ...nd.started]).toEqual([]);
  });

  it("gives tasks default dispositions and an empty mask though perl started with SIGINT ignored and INT/TERM blocked", async () => {
    const wrapper = join(dir, "hostile-perl");
    await writeFile(
      wrapper,
      `#!${PERL_PATH}\nuse POSIX ();\n$SIG{INT} = 'IGNORE';\nPOSIX::sigprocmask(POSIX::SIG_BLOCK(), POSIX::SigSet->new(2, 15));\nexec { '${PERL_PATH}' } 'perl', @ARGV;\n`,
    );
    await chmod(wrapper, 0o755);
    const l = await launcher({ perlPath: wrapper });
    expect(l.mode).toBe("ready");
    const int = run(l, ["sh", "-c", "kill -INT $$; echo survived"]);
    expect((await int.exit).outcome).toEqual({ kind: "signaled", signal: 2, coreDumped: false });
    expect(int.out.stdout).toBe("");
    expect((await run(l, ["sh", "-c", "kill -TERM $$; echo survived"]).exit).outcome).toEqual({ kind: "signaled", signal: 15, coreDumped: false });
  });

  it("signals the task's whole process group, and holds a signal sent before the exec", async () => {
    const l = await launcher();
    const r = run(l, ["sh", "-c", "sleep 600 & echo $!; wait"]);
    await waitFor(() => r.out.stdout.includes("\n"), { message: "the background sleep's pid" });
    const sleeper = Number(r.out.stdout.trim());
    expect(idsOf(sleeper)?.pgid).toBe(r.started[0]);
    r.proc.signal(15);
    expect((await r.exit).outcome).toEqual({ kind: "signaled", signal: 15, coreDumped: false });
    await waitFor(() => !alive(sleeper), { message: "the sleep in the task's group got SIGTERM too" });

    // Stopped, the server cannot start anything: the signal waits for the exec.
    const server = l.serverPid!;
    process.kill(server, "SIGSTOP");
    const held = run(l, ["sleep", "600"]);
    held.proc.signal(10);
    expect(held.started).toEqual([]);
    process.kill(server, "SIGCONT");
    const exit = await held.exit;
    expect(exit.outcome).toEqual({ kind: "signaled", signal: 10, coreDumped: false });
    expect(held.started).toEqual([exit.pid]);
  });

  it("survives the server being SIGKILLed mid-job: running tasks are reported exactly, unaccepted requests start on the next server", async () => {
    const l = await launcher({ stableAfterMs: 0 }); // not a crash loop: the next server takes the requests
    const first = l.serverPid!;
    const exit5 = run(l, ["sh", "-c", "sleep 1; echo done; exit 5"]);
    const segv = run(l, ["sh", "-c", "sleep 1; ulimit -c 0; kill -SEGV $$"]);
    await waitFor(() => exit5.started.length === 1 && segv.started.length === 1, { message: "both started" });

    // Requests the stopped server never read: no `A` line, so they were never started.
    process.kill(first, "SIGSTOP");
    // The last one prints the parent of its watcher: the server that started it.
    const queued = [run(l, ["sh", "-c", "exit 7"]), run(l, ["muster-no-such-command"]), run(l, ["sh", "-c", 'echo $$ $(cut -d" " -f4 /proc/$PPID/stat)'])];
    process.kill(first, "SIGKILL");
    const second = await waitFor(() => (l.mode === "ready" && l.serverPid !== first ? l.serverPid : undefined), { message: "a new server" });

    expect(await exit5.exit).toEqual({ outcome: { kind: "exited", code: 5 }, pid: exit5.started[0] });
    expect(exit5.out.stdout).toBe("done\n");
    expect((await segv.exit).outcome).toEqual({ kind: "signaled", signal: 11, coreDumped: false });
    const [q7, qnf, qecho] = await Promise.all(queued.map((q) => q.exit));
    expect(q7!.outcome).toEqual({ kind: "exited", code: 7 });
    expect(qnf).toEqual({ outcome: { kind: "launch_failed", code: 127, error: "muster-no-such-command: No such file or directory" } });
    expect(qecho!.outcome).toEqual({ kind: "exited", code: 0 });
    expect(queued[2]!.out.stdout).toBe(`${qecho!.pid} ${second}\n`);
    expect(queued.map((q) => q.started.length)).toEqual([1, 0, 1]);
    // And the new server works like the first.
    expect((await run(l, ["sh", "-c", "exit 9"]).exit).outcome).toEqual({ kind: "exited", code: 9 });
  });

  it("treats a server that dies soon after it started as a crash loop: tasks meanwhile start with a Perl each", async () => {
    const l = await launcher({ stableAfterMs: 60_000 });
    const first = l.serverPid!;
    process.kill(first, "SIGKILL");
    await waitFor(() => l.mode !== "ready", { message: "the server's death noticed" });
    expect(l.mode).toBe("down");
    const r = run(l, ["sh", "-c", 'echo $(cut -d" " -f4 /proc/$PPID/stat); exit 3']);
    expect((await r.exit).outcome).toEqual({ kind: "exited", code: 3 });
    expect(r.out.stdout).toBe(`${process.pid}\n`); // its launcher is a child of the agent, not of a server
    await waitFor(() => l.mode === "ready" && l.serverPid !== first, { message: "a new server after the delay", timeoutMs: 5_000 });
    expect((await run(l, ["sh", "-c", "exit 5"]).exit).outcome).toEqual({ kind: "exited", code: 5 });
  });

  it("kills a task whose watcher was killed and reports it as SIGKILL", async () => {
    const l = await launcher();
    const r = run(l, ["sleep", "600"]);
    await waitFor(() => r.started.length === 1, { message: "started" });
    const task = r.started[0]!;
    const watcher = idsOf(task)!.ppid;
    expect(readFileSync(`/proc/${watcher}/cmdline`, "utf8")).toContain("muster-launcher-watch");
    process.kill(watcher, "SIGKILL");
    expect(await r.exit).toEqual({ outcome: { kind: "signaled", signal: 9, coreDumped: false }, pid: task });
    await waitFor(() => !alive(task), { message: "the orphaned task was killed" });
  });

  it("fails a task accepted by a server that then died without starting it, and kills it if it starts late", async () => {
    // Accepts the first request, forks a stand-in watcher that keeps the status socket open and
    // reports a start long after the orphan wait (of a process it made), then dies.
    const latePidFile = join(dir, "late.pid");
    const fake = `
use POSIX ();
open(my $st, '>&=', 3) or die;
pipe(my $pr, my $pw) or die;
syswrite($st, "H $$ " . fileno($pr) . "\\n");
my @keep;
while (my $line = <STDIN>) {
  next unless $line =~ /^T (\\S+)/;
  my $id = $1;
  pipe(my $a, my $b); pipe(my $c, my $d); push @keep, $a, $b, $c, $d;
  syswrite($st, "A $id " . fileno($a) . " " . fileno($c) . "\\n");
  if (!fork()) {
    my $late = fork();
    if (!$late) { POSIX::setsid(); exec 'sleep', '600'; }
    open(my $f, '>', '${latePidFile}'); print $f $late; close($f);
    select(undef, undef, undef, 0.8);
    syswrite($st, "P $id $late\\n");
    sleep 2;
    POSIX::_exit(0);
  }
  POSIX::_exit(1);
}
`;
    const l = await launcher({ perlPath: await fakePerl("accept-and-die", fake), orphanWaitMs: 200 });
    expect(l.mode).toBe("ready");
    const r = run(l, ["sh", "-c", "exit 0"]);
    expect(await r.exit).toEqual({ outcome: { kind: "launch_failed", code: 126, error: `sh: ${LAUNCHER_LOST_TEXT}` } });
    expect(r.started).toEqual([]);
    const late = await waitFor(() => Number(safeRead(latePidFile)) || undefined, { message: "the stand-in's process" });
    leftovers.push(late);
    // The restarted (real) server runs the next task.
    await waitFor(() => l.mode === "ready" && l.serverPid !== undefined, { message: "a real server" });
    expect((await run(l, ["sh", "-c", "exit 4"]).exit).outcome).toEqual({ kind: "exited", code: 4 });
    // The late start is not reported, and what it started does not keep running.
    await waitFor(() => !alive(late), { message: "the late start was killed", timeoutMs: 5_000 });
    expect(r.started).toEqual([]);
  });

  it("falls back to one Perl per task while no server can start, and comes back", async () => {
    const l = await launcher({ perlPath: await fakePerl("dies-at-start", "exit 3;\n") });
    expect(l.mode).toBe("down");
    const r = run(l, ["sh", "-c", "echo fallback >/dev/stdout; exit 6"]);
    expect((await r.exit).outcome).toEqual({ kind: "exited", code: 6 });
    expect(r.out.stdout).toBe("fallback\n");
    await waitFor(() => l.mode === "ready", { message: "the server restarted", timeoutMs: 5_000 });
    expect((await run(l, ["sh", "-c", "exit 8"]).exit).outcome).toEqual({ kind: "exited", code: 8 });
  });

  it("runs tasks with one Perl each when /proc refuses the server's pipes", async () => {
    const fake = `open(my $st, '>&=', 3) or die; syswrite($st, "H $$ 999\\n"); 1 while <STDIN>;\n`;
    const l = await launcher({ perlPath: await fakePerl("no-proc", fake) });
    expect(l.mode).toBe("per-task");
    const r = run(l, ["sh", "-c", "echo $$; exit 2"]);
    const exit = await r.exit;
    expect(exit.outcome).toEqual({ kind: "exited", code: 2 });
    expect(r.out.stdout).toBe(`${exit.pid}\n`);
  });
});

function safeRead(path: string): string {
  try {
    return readFileSync(path, "utf8");
  } catch {
    return "";
  }
}
