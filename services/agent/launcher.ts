/**
 * The long-lived task launcher: one Perl process per agent (launcher-server.pl) that forks a
 * watcher per task, which forks and execs the task. Starting a task then costs two forks of a
 * small, warm process instead of a Node spawn of a fresh Perl that loads POSIX. The contract is
 * the one of the per-task launcher (task-process.ts): the raw wait status with the core flag,
 * 127/126 launch errors with the OS text, default signal dispositions and an empty mask, real
 * stdout/stderr pipes (reopened here through /proc), and a process group (and session) per task.
 *
 * Robustness: watchers write their reports straight to the status socket, so when the server dies
 * the tasks it started are still reported exactly; the server is restarted, and requests it never
 * accepted are sent again. While no server can run, tasks start through one Perl each.
 */
import { spawn, type ChildProcess } from "node:child_process";
import { closeSync, constants as fsConstants, openSync } from "node:fs";
import { Socket } from "node:net";
import type { Readable } from "node:stream";
import { decodeWaitStatus } from "../../src/exit-status/index.js";
import type { Logger } from "../../src/logger.js";
import type { AgentTaskOutcome, IoStream } from "../../src/protocol/index.js";
import { LAUNCHER_SERVER_SOURCE } from "./launcher-source.js";
import { OUTPUT_GRACE_MS, PERL_PATH, closed, readOutput, startTaskProcess, withTimeout, type TaskExit, type TaskProcess, type TaskProcessOptions } from "./task-process.js";

/** What createLauncher needs. */
export interface LauncherOptions {
  readonly logger: Logger;
  /** The server's interpreter (default /usr/bin/perl). */
  readonly perlPath?: string;
  /** Requests sent and not yet accepted by the server at which `busy` turns true (default LAUNCHER_MAX_IN_FLIGHT). */
  readonly maxInFlight?: number;
  /** How long output pipes may stay open after a task ended (default OUTPUT_GRACE_MS). */
  readonly outputGraceMs?: number;
  /** How long a task accepted by a server that then died may take to report before it is declared failed, ms (default 5000). */
  readonly orphanWaitMs?: number;
  /** How long a starting server may take to say it is ready, ms (default 10000). */
  readonly helloTimeoutMs?: number;
  /** A server that dies sooner after it was ready counts as a crash loop: restart with a growing delay, meanwhile one Perl per task, ms (default 5000). */
  readonly stableAfterMs?: number;
}

/** Where tasks go: `ready` (the server), `starting` (queued until a server is ready), `down`/`per-task` (one Perl per task), `closed`. */
export type LauncherMode = "starting" | "ready" | "down" | "per-task" | "closed";

/** What a task needs to start through the launcher. */
export interface LaunchOptions extends TaskProcessOptions {
  /** Variables layered over `env`; `env` is shared by the tasks of a launch and encoded once. */
  readonly envExtra?: Readonly<Record<string, string>>;
}

/** Requests the agent keeps at the server before it waits for acceptances. */
export const LAUNCHER_MAX_IN_FLIGHT = 32;

/** The reason a task is declared ended when its launcher went away before it started. */
export const LAUNCHER_LOST_TEXT = "the launcher ended before the task started";

const SIGKILL = 9;
const ENOENT = 2;
const PROBE_ID = "0";

type TaskState = "waiting" | "sent" | "accepted" | "running" | "ended";

/** One generation of the server process. */
class Server {
  readonly tasks = new Set<ServedTask>();
  /** Tasks declared ended while their watcher might still report (a late start is killed). */
  readonly abandoned = new Set<ServedTask>();
  ready = false;
  readyAt = 0;
  exited = false;
  streamClosed = false;
  partial = "";
  out = "";
  flushing = false;
  constructor(
    readonly gen: number,
    readonly child: ChildProcess,
    readonly pid: number,
  ) {}
}

/** A task started (or to be started) through the launcher server. */
class ServedTask implements TaskProcess {
  state: TaskState = "waiting";
  server: Server | undefined;
  taskPid: number | undefined;
  readonly held: number[] = [];
  readonly sockets: Socket[] = [];
  orphanTimer: NodeJS.Timeout | undefined;
  /** Set when the server was unavailable and the task went to a per-task launcher instead. */
  delegate: TaskProcess | undefined;
  readonly done: Promise<TaskExit>;
  readonly exited: Promise<TaskExit>;
  resolve!: (exit: TaskExit) => void;
  resolveExited!: (exit: TaskExit) => void;

  constructor(
    readonly id: string,
    readonly opts: LaunchOptions,
    private readonly onSignal: (task: ServedTask, signal: number) => void,
  ) {
    this.done = new Promise((r) => (this.resolve = r));
    this.exited = new Promise((r) => (this.resolveExited = r));
  }

  get pgid(): number | undefined {
    return this.delegate ? this.delegate.pgid : this.taskPid;
  }

  get pid(): number | undefined {
    return this.delegate ? this.delegate.pid : this.taskPid;
  }

  get alive(): boolean {
    return this.delegate ? this.delegate.alive : this.state !== "ended";
  }

  signal(signal: number): void {
    if (this.delegate) this.delegate.signal(signal);
    else this.onSignal(this, signal);
  }
}

/** Starts tasks through one long-lived launcher process; see the module comment. */
export class Launcher {
  private readonly log: Logger;
  private readonly perl: string;
  private readonly maxInFlight: number;
  private readonly graceMs: number;
  private readonly orphanWaitMs: number;
  private readonly helloTimeoutMs: number;
  private readonly stableAfterMs: number;
  private modeValue: LauncherMode = "starting";
  private server: Server | undefined;
  private generation = 0;
  private nextId = 1;
  private inFlight = 0;
  private failures = 0;
  private restartTimer: NodeJS.Timeout | undefined;
  private readonly waiting: ServedTask[] = [];
  private readonly byId = new Map<string, ServedTask>();
  private readonly servers = new Set<Server>();
  private readonly envCache = new WeakMap<object, string>();
  private capacityListener: (() => void) | undefined;

  constructor(opts: LauncherOptions) {
    this.log = opts.logger;
    this.perl = opts.perlPath ?? PERL_PATH;
    this.maxInFlight = opts.maxInFlight ?? LAUNCHER_MAX_IN_FLIGHT;
    this.graceMs = opts.outputGraceMs ?? OUTPUT_GRACE_MS;
    this.orphanWaitMs = opts.orphanWaitMs ?? 5_000;
    this.helloTimeoutMs = opts.helloTimeoutMs ?? 10_000;
    this.stableAfterMs = opts.stableAfterMs ?? 5_000;
  }

  /** Where new tasks go now. */
  get mode(): LauncherMode {
    return this.modeValue;
  }

  /** The current server's pid, when one is ready. */
  get serverPid(): number | undefined {
    return this.server?.ready ? this.server.pid : undefined;
  }

  /** True while new tasks would only queue up: the server is starting or has enough requests in hand. */
  get busy(): boolean {
    return this.modeValue === "starting" || (this.modeValue === "ready" && this.inFlight >= this.maxInFlight);
  }

  /** Called whenever `busy` may have turned false. */
  onCapacity(listener: () => void): void {
    this.capacityListener = listener;
  }

  /** Starts the first server; resolves once it is ready or tasks fall back to one Perl each. Never rejects. */
  async start(): Promise<void> {
    await this.attemptStart();
  }

  /** Starts a task: through the server when it is up (or coming up), else through a Perl of its own. Never throws. */
  spawn(opts: LaunchOptions): TaskProcess {
    if (this.modeValue !== "ready" && this.modeValue !== "starting") return startTaskProcess(mergedOptions(opts));
    const task = new ServedTask(String(this.nextId++), opts, (t, s) => this.signalTask(t, s));
    this.byId.set(task.id, task);
    if (this.modeValue === "ready" && this.server) this.send(task, this.server);
    else this.waiting.push(task);
    return task;
  }

  /**
   * Stops the server. Tasks still waiting for one end as SIGKILLed, unstarted. Requests the server
   * already has are still started and report their exec (for up to 2 s), so that a signal held for
   * them (the agent's SIGKILL on a fatal error) reaches them; running tasks keep their watchers.
   */
  async close(): Promise<void> {
    if (this.modeValue === "closed") return;
    this.modeValue = "closed";
    clearTimeout(this.restartTimer);
    this.flushWaiting();
    for (const s of this.servers) if (!s.exited) s.child.stdin?.end();
    const deadline = Date.now() + 2_000;
    const settled = (): boolean =>
      [...this.servers].every((s) => s.exited) && [...this.byId.values()].every((t) => t.state !== "sent" && t.state !== "accepted");
    while (!settled() && Date.now() < deadline) await new Promise((r) => setTimeout(r, 20));
    // Reports that could still arrive have nobody to go to now.
    for (const s of this.servers) {
      if (!s.exited) s.child.kill("SIGKILL");
      for (const stream of s.child.stdio) stream?.destroy();
      s.child.unref();
    }
  }

  // ---------------------------------------------------------------------------------------------
  // Server lifecycle

  private async attemptStart(): Promise<void> {
    if (this.modeValue === "closed") return;
    const ok = await this.startServer();
    const mode = this.mode; // may have changed while starting
    if (mode === "closed" || mode === "per-task") {
      this.flushWaiting();
      return;
    }
    if (ok && this.server) {
      this.modeValue = "ready";
    } else if (!ok) {
      this.failures++;
      this.modeValue = "down";
      this.scheduleRestart();
    } // else it died right after its hello: onExit has set the mode and scheduled the next attempt
    this.flushWaiting();
    this.capacityListener?.();
  }

  private scheduleRestart(): void {
    if (this.modeValue === "closed" || this.modeValue === "per-task" || this.restartTimer) return;
    const delay = this.failures === 0 ? 0 : Math.min(30_000, 250 * 2 ** (this.failures - 1));
    this.restartTimer = setTimeout(() => {
      this.restartTimer = undefined;
      void this.attemptStart();
    }, delay);
  }

  private startServer(): Promise<boolean> {
    let child: ChildProcess;
    try {
      child = spawn(this.perl, ["-e", LAUNCHER_SERVER_SOURCE], {
        env: { PERL_BADLANG: "0" },
        stdio: ["pipe", "ignore", "pipe", "pipe"],
        detached: true,
      });
    } catch (err) {
      this.log.error({ err: (err as Error).message }, "launcher.start_failed");
      return Promise.resolve(false);
    }
    return new Promise<boolean>((resolve) => {
      let settled = false;
      const settle = (ok: boolean, why?: string): void => {
        if (settled) return;
        settled = true;
        clearTimeout(timer);
        if (!ok) {
          this.log.error({ why }, "launcher.start_failed");
          if (child.exitCode === null && child.signalCode === null) child.kill("SIGKILL");
        }
        resolve(ok);
      };
      const timer = setTimeout(() => settle(false, `no hello within ${this.helloTimeoutMs} ms`), this.helloTimeoutMs);
      child.once("error", (err) => settle(false, err.message));
      if (child.pid === undefined) return; // the error event follows
      const current = new Server(++this.generation, child, child.pid);
      this.servers.add(current);
      child.stdin!.on("error", () => {});
      child.stderr!.on("data", (d: Buffer) => this.log.warn({ gen: current.gen, text: d.toString("utf8").trimEnd() }, "launcher.diagnostic"));
      const status = child.stdio[3] as Readable;
      status.on("error", () => {});
      status.on("data", (chunk: Buffer) => {
        const lines = (current.partial + chunk.toString("utf8")).split("\n");
        current.partial = lines.pop() ?? "";
        for (const line of lines) {
          if (line.startsWith("H ")) settle(this.onHello(current, line), "the agent cannot reopen the launcher's pipes through /proc");
          else this.onLine(current, line);
        }
      });
      status.once("close", () => {
        current.streamClosed = true;
        if (current.partial) this.onLine(current, current.partial);
        current.partial = "";
        this.resolveLost(current);
      });
      child.once("exit", (code, signal) => {
        current.exited = true;
        settle(false, `exited before it was ready (code ${code}, signal ${signal})`);
        this.onExit(current, code, signal);
      });
    });
  }

  // The server holds a probe pipe; reopening it proves that /proc lets the agent take over task pipes.
  private onHello(server: Server, line: string): boolean {
    const [, pidText, fdText] = line.split(" ");
    try {
      if (Number(pidText) !== server.pid) throw new Error(`hello from pid ${pidText}, expected ${server.pid}`);
      closeSync(openSync(`/proc/${server.pid}/fd/${fdText}`, fsConstants.O_RDONLY | fsConstants.O_NONBLOCK));
    } catch (err) {
      this.log.warn({ err: (err as Error).message }, "launcher.proc_refused");
      this.modeValue = "per-task";
      server.child.stdin?.end();
      return false;
    }
    this.write(server, `R ${PROBE_ID}`);
    server.ready = true;
    server.readyAt = Date.now();
    this.server = server;
    this.log.info({ gen: server.gen, serverPid: server.pid }, "launcher.ready");
    return true;
  }

  private onExit(server: Server, code: number | null, signal: NodeJS.Signals | null): void {
    if (this.server === server) this.server = undefined;
    if (this.modeValue === "closed") return;
    if (server.ready) {
      this.log.warn({ gen: server.gen, serverPid: server.pid, code, signal, tasks: server.tasks.size }, "launcher.exited");
      // A server that keeps dying right after it started is restarted with a growing delay, and
      // tasks meanwhile start with a Perl each; otherwise they wait for the new server.
      this.failures = Date.now() - server.readyAt < this.stableAfterMs ? this.failures + 1 : 0;
      this.modeValue = this.failures === 0 ? "starting" : "down";
      this.scheduleRestart();
    }
    // Status lines written before the exit may still be unread: look once they are in.
    setImmediate(() => setTimeout(() => this.resolveLost(server), 50));
  }

  /**
   * Settles what a dead server leaves behind. Requests it never accepted go to the next server (an
   * `A` line precedes every fork). Accepted tasks that did not report their start wait for their
   * watcher for orphanWaitMs, then fail. Once no process holds the status socket any more, every task
   * still open is settled: started ones lost their watcher (killed, reported as SIGKILL).
   */
  private resolveLost(server: Server): void {
    if (!server.exited && !server.streamClosed) return;
    const requeue: ServedTask[] = [];
    for (const t of [...server.tasks]) {
      if (t.state === "sent") {
        this.inFlight--;
        server.tasks.delete(t);
        t.server = undefined;
        t.state = "waiting";
        requeue.push(t);
      } else if (t.state === "accepted") {
        if (server.streamClosed) this.finish(t, launchLost(t.opts));
        else
          t.orphanTimer ??= setTimeout(() => {
            if (t.state !== "accepted") return;
            server.abandoned.add(t);
            this.log.warn({ id: t.id, argv0: t.opts.argv[0] }, "launcher.start_unconfirmed");
            this.finish(t, launchLost(t.opts));
          }, this.orphanWaitMs);
      } else if (t.state === "running" && server.streamClosed) {
        this.watcherLost(t, "its watcher ended without reporting");
      }
    }
    if (server.streamClosed) {
      for (const t of server.abandoned) this.byId.delete(t.id);
      server.abandoned.clear();
      this.servers.delete(server);
    }
    if (requeue.length) {
      this.waiting.unshift(...requeue);
      this.flushWaiting();
    }
    this.capacityListener?.();
  }

  private flushWaiting(): void {
    if (this.modeValue === "starting") return;
    const server = this.modeValue === "ready" ? this.server : undefined;
    for (const t of this.waiting.splice(0)) {
      if (t.state !== "waiting") continue;
      if (this.modeValue === "closed") {
        this.finish(t, { kind: "signaled", signal: SIGKILL, coreDumped: false });
        continue;
      }
      if (server) {
        this.send(t, server);
        continue;
      }
      // No server: this task gets a Perl of its own, with the signals it was sent meanwhile.
      this.byId.delete(t.id);
      t.delegate = startTaskProcess(mergedOptions(t.opts));
      for (const s of t.held.splice(0)) t.delegate.signal(s);
      void t.delegate.exited.then(t.resolveExited);
      void t.delegate.done.then((exit) => {
        t.state = "ended";
        t.resolve(exit);
      });
    }
  }

  // ---------------------------------------------------------------------------------------------
  // Requests and status lines

  private send(task: ServedTask, server: Server): void {
    task.state = "sent";
    task.server = server;
    server.tasks.add(task);
    this.inFlight++;
    this.write(server, this.encodeRequest(task));
  }

  private encodeRequest(task: ServedTask): string {
    const { argv, cwd, env, envExtra } = task.opts;
    let line = `T ${task.id} ${escapeField(cwd)} ${argv.length}`;
    for (const a of argv) line += ` ${escapeField(a)}`;
    let shared = this.envCache.get(env);
    if (shared === undefined) {
      shared = "";
      for (const [k, v] of Object.entries(env)) shared += ` ${escapeField(`${k}=${v}`)}`;
      this.envCache.set(env, shared);
    }
    line += shared;
    if (envExtra) for (const [k, v] of Object.entries(envExtra)) line += ` ${escapeField(`${k}=${v}`)}`;
    return line;
  }

  // Requests of one turn of the event loop go out in one write.
  private write(server: Server, line: string): void {
    server.out += `${line}\n`;
    if (server.flushing) return;
    server.flushing = true;
    queueMicrotask(() => {
      server.flushing = false;
      const data = server.out;
      server.out = "";
      if (!server.exited && data) server.child.stdin?.write(data);
    });
  }

  private onLine(server: Server, line: string): void {
    const parts = line.split(" ");
    const [tag, id] = parts;
    const task = id === undefined ? undefined : this.byId.get(id);
    if (!task || task.delegate || task.server !== server) {
      // A start reported by a server the task is no longer with must not run unobserved.
      if (tag === "P" && task) kill(Number(parts[2]), SIGKILL);
      if (tag !== "X") this.log.warn({ gen: server.gen, line: line.slice(0, 200) }, "launcher.unexpected_line");
      return;
    }
    switch (tag) {
      case "A":
        this.onAccepted(task, server, parts[2], parts[3]);
        break;
      case "P":
        this.onStarted(task, Number(parts[2]));
        break;
      case "E":
      case "C": {
        if (server.abandoned.has(task)) break;
        const errno = Number(parts[2]);
        const text = parts.slice(3).join(" ");
        const { argv, cwd } = task.opts;
        if (tag === "C") this.finish(task, { kind: "launch_failed", code: 126, error: `cannot change directory to ${cwd}: ${text}` });
        else this.finish(task, { kind: "launch_failed", code: errno === ENOENT ? 127 : 126, error: `${argv[0]}: ${text}` });
        break;
      }
      case "W":
        if (server.abandoned.delete(task)) this.byId.delete(task.id);
        else this.finish(task, decodeStatus(Number(parts[2])));
        break;
      case "X":
        if (task.state !== "ended") this.watcherLost(task, `its watcher ended with status ${parts[2]}`);
        break;
      default:
        this.log.warn({ gen: server.gen, line: line.slice(0, 200) }, "launcher.unexpected_line");
    }
  }

  private onAccepted(task: ServedTask, server: Server, outFd: string | undefined, errFd: string | undefined): void {
    if (task.state !== "sent") return;
    this.inFlight--;
    task.state = "accepted";
    (["stdout", "stderr"] as const).forEach((stream: IoStream, i) => {
      const fd = i === 0 ? outFd : errFd;
      let handle: number;
      try {
        handle = openSync(`/proc/${server.pid}/fd/${fd}`, fsConstants.O_RDONLY | fsConstants.O_NONBLOCK);
      } catch (err) {
        this.log.warn({ id: task.id, stream, err: (err as Error).message }, "launcher.output_lost");
        return;
      }
      const socket = new Socket({ fd: handle, readable: true, writable: false });
      readOutput(socket, (d) => task.opts.onOutput(stream, d), () => task.state === "ended");
      socket.on("error", () => {});
      task.sockets.push(socket);
    });
    this.write(server, `R ${task.id}`);
    if (this.inFlight < this.maxInFlight) this.capacityListener?.();
  }

  private onStarted(task: ServedTask, pid: number): void {
    const server = task.server;
    if (server?.abandoned.has(task)) {
      // Declared failed after its server died; it must not run unobserved.
      this.log.warn({ id: task.id, pid }, "launcher.late_task_killed");
      kill(pid, SIGKILL);
      return;
    }
    if (task.state === "sent") this.inFlight--;
    if (task.state === "ended" || !Number.isInteger(pid) || pid < 1) return;
    clearTimeout(task.orphanTimer);
    task.taskPid = pid;
    task.state = "running";
    task.opts.onStarted(pid);
    for (const s of task.held.splice(0)) kill(pid, s);
  }

  private signalTask(task: ServedTask, signal: number): void {
    if (task.state === "ended") return;
    if (task.taskPid !== undefined) {
      kill(task.taskPid, signal);
    } else if (task.state === "waiting" && signal === SIGKILL) {
      this.waiting.splice(this.waiting.indexOf(task), 1);
      this.finish(task, { kind: "signaled", signal: SIGKILL, coreDumped: false });
    } else {
      task.held.push(signal);
    }
  }

  // The task's watcher died without reporting: its status is unknowable, so the task is killed and reported as such.
  private watcherLost(task: ServedTask, why: string): void {
    if (task.taskPid !== undefined) {
      this.log.warn({ id: task.id, pid: task.taskPid, why }, "launcher.watcher_lost");
      kill(task.taskPid, SIGKILL);
      this.finish(task, { kind: "signaled", signal: SIGKILL, coreDumped: false });
    } else {
      this.log.warn({ id: task.id, why }, "launcher.watcher_lost");
      this.finish(task, launchLost(task.opts));
    }
  }

  private finish(task: ServedTask, outcome: AgentTaskOutcome): void {
    if (task.state === "ended") return;
    if (task.state === "sent") this.inFlight--;
    task.state = "ended";
    clearTimeout(task.orphanTimer);
    task.server?.tasks.delete(task);
    if (!task.server?.abandoned.has(task)) this.byId.delete(task.id);
    const pid = task.taskPid;
    const exit = pid === undefined ? { outcome } : { outcome, pid };
    // The outcome is known now; the output may still be in the pipes (or held open by a background child).
    task.resolveExited(exit);
    // The task ended: what is left in its pipes is read now, whatever the backpressure said.
    for (const s of task.sockets) s.resume();
    void (async () => {
      await withTimeout(Promise.all(task.sockets.map(closed)), this.graceMs);
      for (const s of task.sockets) s.destroy();
      task.resolve(exit);
    })();
    this.capacityListener?.();
  }
}

/** Builds a launcher; nothing runs until `start()`. */
export function createLauncher(opts: LauncherOptions): Launcher {
  return new Launcher(opts);
}

/** `%`, space, CR, LF and NUL as `%XX`: the server's request fields are separated by spaces, requests by newlines. */
export function escapeField(text: string): string {
  return /[% \r\n\0]/.test(text) ? text.replace(/[% \r\n\0]/g, (c) => `%${c.charCodeAt(0).toString(16).padStart(2, "0").toUpperCase()}`) : text;
}

function mergedOptions(opts: LaunchOptions): TaskProcessOptions {
  return opts.envExtra ? { ...opts, env: { ...opts.env, ...opts.envExtra } } : opts;
}

function launchLost(opts: LaunchOptions): AgentTaskOutcome {
  return { kind: "launch_failed", code: 126, error: `${opts.argv[0]}: ${LAUNCHER_LOST_TEXT}` };
}

function decodeStatus(status: number): AgentTaskOutcome {
  try {
    return decodeWaitStatus(status) as AgentTaskOutcome;
  } catch {
    return { kind: "signaled", signal: SIGKILL, coreDumped: false };
  }
}

// A task leads its own process group: signal the group, so that its children get it too. Never
// group 0 or 1 (this process's own group, every process): only a real task pid is signalled.
function kill(pid: number, signal: number): void {
  if (!Number.isSafeInteger(pid) || pid <= 1) return;
  try {
    process.kill(-pid, signal);
  } catch {
    // the group is already gone
  }
}
