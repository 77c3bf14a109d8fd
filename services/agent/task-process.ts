/**
 * One task as a real process, run through the Perl launcher (launcher.pl) so that its exit is
 * reported as the raw wait status (core-dump flag included), its signal dispositions and mask are
 * reset, its stdout/stderr are real pipes, and it leads its own process group.
 */
import { spawn, spawnSync, type ChildProcess } from "node:child_process";
import { constants as fsConstants, accessSync, close, open } from "node:fs";
import { Socket } from "node:net";
import type { Readable } from "node:stream";
import { decodeNodeExit, decodeWaitStatus } from "../../src/exit-status/index.js";
import type { AgentTaskOutcome, IoStream } from "../../src/protocol/index.js";
import { MusterError } from "../../src/errors.js";
import { LAUNCHER_SOURCE } from "./launcher-source.js";

/** Where the launcher's interpreter lives (perl-base is Essential on Debian and Ubuntu). */
export const PERL_PATH = "/usr/bin/perl";

/** How long output pipes may stay open after the task exited (background children holding them) before they are cut. */
export const OUTPUT_GRACE_MS = 2_000;

/** Environment variables that change how perl itself starts are moved aside under this prefix and restored by the launcher. */
export const LAUNCHER_KEEP_PREFIX = "MUSTER_LAUNCHER_KEEP_";

/** Throws MusterError UNAVAILABLE unless perl (with POSIX) can run the launcher. */
export function checkPerl(perlPath: string = PERL_PATH): void {
  try {
    accessSync(perlPath, fsConstants.X_OK);
  } catch {
    throw new MusterError(
      "UNAVAILABLE",
      `${perlPath} not found or not executable: the agent runs every task through a small Perl launcher (install perl-base)`,
    );
  }
  const probe = spawnSync(perlPath, ["-MPOSIX", "-e", "exit 0"], { stdio: ["ignore", "ignore", "pipe"], timeout: 10_000 });
  if (probe.status !== 0) {
    const why = probe.error?.message ?? probe.stderr?.toString().trim() ?? `exit status ${probe.status}`;
    throw new MusterError("UNAVAILABLE", `${perlPath} cannot run the task launcher (perl with the POSIX module is needed): ${why}`);
  }
}

/** What a task process needs to start. */
export interface TaskProcessOptions {
  readonly argv: readonly string[];
  readonly cwd: string;
  /** The task's complete environment. */
  readonly env: Readonly<Record<string, string>>;
  readonly perlPath?: string;
  /** Called once the command was exec'd, with the task's own pid. */
  readonly onStarted: (pid: number) => void;
  /**
   * Called with each piece of output, in order per stream. A returned promise stops the reading of
   * that stream until it settles (backpressure: the task blocks in write(2)); once the task has
   * ended, its pipes are read on regardless, so that nothing is left behind in them.
   */
  readonly onOutput: (stream: IoStream, data: Buffer) => Promise<void> | undefined | void;
  /** Called with text the launcher itself wrote to its stderr (never expected). */
  readonly onDiagnostic?: (text: string) => void;
  readonly outputGraceMs?: number;
}

/** How a task process ended: its outcome and, when the command ran, its pid. */
export interface TaskExit {
  readonly outcome: AgentTaskOutcome;
  readonly pid?: number;
}

/** A running task process. */
export interface TaskProcess {
  /** The process group of the task tree (the launcher's pid); undefined when the spawn failed. */
  readonly pgid: number | undefined;
  /** The task's own pid once it was exec'd. */
  readonly pid: number | undefined;
  /** True until the launcher was reaped. */
  readonly alive: boolean;
  /** Delivers a signal to the whole process group; queued until the command was exec'd (SIGKILL goes at once). */
  signal(signal: number): void;
  /** Resolves when the task ended and both output streams are closed; never rejects. */
  readonly done: Promise<TaskExit>;
  /** Resolves with the same exit as soon as it is known, possibly before the output streams closed; never rejects. */
  readonly exited: Promise<TaskExit>;
}

const SIGKILL = 9;

/** Moves PERL* variables aside (the launcher restores them) and silences perl's locale warnings. */
export function launcherEnv(env: Readonly<Record<string, string>>): Record<string, string> {
  const out: Record<string, string> = {};
  for (const [k, v] of Object.entries(env)) {
    if (k.startsWith("PERL")) out[LAUNCHER_KEEP_PREFIX + k] = v;
    else out[k] = v;
  }
  out.PERL_BADLANG = "0";
  return out;
}

/** Starts one task through the launcher; spawn failures become a `launch_failed` outcome, never a throw. */
export function startTaskProcess(opts: TaskProcessOptions): TaskProcess {
  const perl = opts.perlPath ?? PERL_PATH;
  const graceMs = opts.outputGraceMs ?? OUTPUT_GRACE_MS;
  let child: ChildProcess;
  try {
    child = spawn(perl, ["-e", LAUNCHER_SOURCE, "--", opts.cwd, ...opts.argv], {
      env: launcherEnv(opts.env),
      stdio: ["pipe", "pipe", "pipe", "pipe"],
      detached: true,
    });
  } catch (err) {
    return failed(`${opts.argv[0]}: ${(err as Error).message}`);
  }

  let pid: number | undefined;
  let launchError: { errno: number; text: string; chdir: boolean } | undefined;
  let waitStatus: number | undefined;
  let reaped = false;
  const queued: number[] = [];
  const sockets: Socket[] = [];

  const deliver = (signal: number): void => {
    if (reaped || child.pid === undefined) return;
    try {
      process.kill(-child.pid, signal);
    } catch {
      // the group is already gone
    }
  };

  const status = child.stdio[3] as Readable;
  const control = child.stdin!;
  control.on("error", () => {});
  let partial = "";
  const onLine = (line: string): void => {
    const [tag, a, ...rest] = line.split(" ");
    switch (tag) {
      case "O":
        void attachPipes(a, rest[0], rest[1]);
        break;
      case "P":
        pid = Number(a);
        opts.onStarted(pid);
        for (const s of queued.splice(0)) deliver(s);
        break;
      case "E":
      case "C":
        launchError = { errno: Number(a), text: rest.join(" "), chdir: tag === "C" };
        break;
      case "W":
        waitStatus = Number(a);
        break;
      default:
        opts.onDiagnostic?.(`unexpected launcher line: ${line}`);
    }
  };
  status.on("data", (chunk: Buffer) => {
    const lines = (partial + chunk.toString("utf8")).split("\n");
    partial = lines.pop() ?? "";
    for (const l of lines) onLine(l);
  });
  const statusClosed = new Promise<void>((resolve) => {
    status.once("close", resolve);
    status.once("error", () => resolve());
  });

  // Real pipes (not Node's sockets) so that `echo x > /dev/stderr` works in the task; the
  // launcher's own stdout/stderr are the fallback when /proc cannot reopen them.
  let useOwnStdio = false;
  const attachPipes = async (launcherPid?: string, outFd?: string, errFd?: string): Promise<void> => {
    const fds: number[] = [];
    if (launcherPid && launcherPid !== "-") {
      try {
        for (const fd of [outFd, errFd]) {
          fds.push(await openFd(`/proc/${launcherPid}/fd/${fd}`, fsConstants.O_RDONLY | fsConstants.O_NONBLOCK));
        }
      } catch {
        // hardened /proc: fall back to the launcher's own stdio
      }
    }
    if (fds.length === 2) {
      (["stdout", "stderr"] as const).forEach((stream, i) => {
        const socket = new Socket({ fd: fds[i]!, readable: true, writable: false });
        readOutput(socket, (d) => opts.onOutput(stream, d), () => reaped);
        sockets.push(socket);
      });
      control.end("go\n");
    } else {
      for (const fd of fds) await closeFd(fd);
      useOwnStdio = true;
      control.end("sock\n");
    }
  };

  const own = [child.stdout!, child.stderr!] as const;
  readOutput(own[0], (d) => (useOwnStdio ? opts.onOutput("stdout", d) : undefined), () => reaped);
  readOutput(
    own[1],
    (d) => {
      if (useOwnStdio) return opts.onOutput("stderr", d);
      opts.onDiagnostic?.(d.toString("utf8"));
      return undefined;
    },
    () => reaped,
  );

  const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null; error?: Error }>((resolve) => {
    child.once("exit", (code, signal) => {
      reaped = true;
      resolve({ code, signal });
    });
    child.once("error", (error) => {
      if (child.pid === undefined) {
        reaped = true;
        resolve({ code: null, signal: null, error });
      }
    });
  });

  const done = (async (): Promise<TaskExit> => {
    const exit = await exited;
    for (const s of [...sockets, ...own]) s.resume();
    if (exit.error) {
      for (const s of own) s.destroy();
      return { outcome: { kind: "launch_failed", code: 126, error: `${opts.argv[0]}: ${exit.error.message}` } };
    }
    await withTimeout(statusClosed, graceMs);
    const streams: (Readable | Socket)[] = useOwnStdio ? [...own] : [...sockets, ...own];
    await withTimeout(Promise.all(streams.map(closed)), graceMs);
    for (const s of [...sockets, ...own]) s.destroy();
    if (partial) onLine(partial);
    if (launchError) {
      const code = !launchError.chdir && launchError.errno === ENOENT ? 127 : 126;
      const error = launchError.chdir ? `cannot change directory to ${opts.cwd}: ${launchError.text}` : `${opts.argv[0]}: ${launchError.text}`;
      return { outcome: { kind: "launch_failed", code, error } };
    }
    const outcome = decodeExit(waitStatus, exit.code, exit.signal);
    return pid === undefined ? { outcome } : { outcome, pid };
  })();

  return {
    get pgid() {
      return child.pid;
    },
    get pid() {
      return pid;
    },
    get alive() {
      return !reaped;
    },
    signal(signal: number) {
      if (pid === undefined && signal !== SIGKILL && !reaped) queued.push(signal);
      else deliver(signal);
    },
    done,
    // The per-task launcher (a fallback) learns the status and the end of the output together.
    exited: done,
  };
}

const ENOENT = 2;

// The launcher's W line is the truth; without it (the launcher was SIGKILLed with the group) Node's view is.
function decodeExit(waitStatus: number | undefined, code: number | null, signal: NodeJS.Signals | null): AgentTaskOutcome {
  try {
    if (waitStatus !== undefined && Number.isInteger(waitStatus)) return decodeWaitStatus(waitStatus) as AgentTaskOutcome;
  } catch {
    // a status that is no termination: use Node's view
  }
  try {
    return decodeNodeExit(code, signal) as AgentTaskOutcome;
  } catch {
    return { kind: "signaled", signal: SIGKILL, coreDumped: false };
  }
}

function failed(error: string): TaskProcess {
  return {
    pgid: undefined,
    pid: undefined,
    alive: false,
    signal() {},
    done: Promise.resolve({ outcome: { kind: "launch_failed", code: 126, error } }),
    get exited() {
      return this.done;
    },
  };
}

/**
 * Reads a task's output pipe into `onData`, pausing the pipe while the promise `onData` returns is
 * pending (the task then blocks in write(2)), unless the task has `ended`: then everything left is read.
 */
export function readOutput(socket: Readable, onData: (d: Buffer) => Promise<void> | undefined | void, ended: () => boolean): void {
  socket.on("data", (d: Buffer) => {
    const wait = onData(d);
    if (!wait || ended()) return;
    socket.pause();
    void wait.then(() => socket.resume());
  });
}

/** Resolves when a stream has closed, ended or failed. */
export function closed(stream: Readable | Socket): Promise<void> {
  if (stream.destroyed || stream.readableEnded) return Promise.resolve();
  return new Promise((resolve) => {
    stream.once("close", () => resolve());
    stream.once("end", () => resolve());
    stream.once("error", () => resolve());
  });
}

/** Waits for `p`, at most `ms`. */
export async function withTimeout(p: Promise<unknown>, ms: number): Promise<void> {
  let timer: NodeJS.Timeout | undefined;
  await Promise.race([p, new Promise<void>((resolve) => (timer = setTimeout(resolve, ms)))]);
  clearTimeout(timer);
}

// Raw descriptors (not FileHandles, which close themselves on garbage collection) for net.Socket.
function openFd(path: string, flags: number): Promise<number> {
  return new Promise((resolve, reject) => open(path, flags, (err, fd) => (err ? reject(err) : resolve(fd))));
}

function closeFd(fd: number): Promise<void> {
  return new Promise((resolve) => close(fd, () => resolve()));
}
