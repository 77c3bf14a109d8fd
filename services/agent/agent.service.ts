/**
 * The agent: the service on each node that runs tasks as real processes. It announces itself
 * (`hello`, heartbeats), takes `cmd.launch` / `cmd.signal` on its node's command subject,
 * reports `task.started` / `task.ended` through an outbox that never loses an event (ordered per
 * task, failures ahead of ordinary traffic),
 * forwards the tasks' output, and shuts down gracefully (`draining` … `bye`).
 */
import { expandFilenamePattern } from "../../src/filename-pattern/index.js";
import { randomUUID } from "node:crypto";
import { createWriteStream, existsSync, readFileSync, writeFileSync, type WriteStream } from "node:fs";
import { mkdir, mkdtemp, rm, symlink } from "node:fs/promises";
import { availableParallelism, hostname, tmpdir } from "node:os";
import { delimiter, dirname, isAbsolute, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { jetstream, type JetStreamClient } from "@nats-io/jetstream";
import type { Msg, NatsConnection, Subscription } from "@nats-io/transport-node";
import type { Config } from "../../src/config.js";
import { monotonicMs } from "../../src/clock.js";
import { MusterError } from "../../src/errors.js";
import { isBadOutcome, stopLine } from "../../src/exit-status/index.js";
import { IdSet, parseIdSet } from "../../src/idset/index.js";
import type { Logger } from "../../src/logger.js";
import { connectNats, jetStreamMissing, noJetStreamError } from "../../src/nats/connect.js";
import type {
  Bye,
  ByeReason,
  CommandAck,
  Draining,
  ErrorCode,
  Heartbeat,
  Hello,
  FenceCommand,
  LaunchCommand,
  PingCommand,
  SignalCommand,
  StepId,
  Subjects,
  TaskEnded,
  TaskStarted,
} from "../../src/protocol/index.js";
import { CommandAckSchema, NodeCommandSchema, PROTOCOL_VERSION, createDlqRecord, createSubjects, encodeMessage, parseMessage } from "../../src/protocol/index.js";
import { createLauncher, type Launcher } from "./launcher.js";
import { Outbox } from "./outbox.js";
import { TaskOutput } from "./task-output.js";
import { isSecretVariable, isSlurmVariable, slurmLaunchVariables, slurmTaskVariables, urlWithoutSecrets } from "../../src/task-env.js";
import { PERL_PATH, checkPerl, type TaskExit, type TaskProcess } from "./task-process.js";

/** What createAgent needs. */
export interface AgentOptions {
  readonly config: Config;
  /** This node's name, a subject token. */
  readonly node: string;
  /** Task slots offered in `hello` (default: os.availableParallelism()). */
  readonly slots?: number;
  readonly logger: Logger;
  /** Directory prepended to every task's PATH so `muster` is found (default: the package's `bin/`). */
  readonly musterBinDir?: string;
  /** The environment tasks inherit under the command's `env` (default: process.env). */
  readonly env?: Readonly<Record<string, string | undefined>>;
  /** The launcher's interpreter (default /usr/bin/perl). */
  readonly perlPath?: string;
}

/** A running agent. */
export interface Agent {
  readonly node: string;
  /** This incarnation's id, fresh for every agent. */
  readonly epoch: string;
  /** Connects, subscribes to commands, says hello and starts heartbeats. */
  start(): Promise<void>;
  /**
   * `shutdown`: says draining, stops every task (SIGCONT+SIGTERM, SIGKILL after KillWait), waits for
   * their `task.ended` to be acknowledged, says bye and closes. `fatal`: kills the tasks and says bye
   * at once, bounded by 5 s. Idempotent; a fatal call during a graceful shutdown escalates it.
   */
  shutdown(reason?: ByeReason, detail?: string): Promise<void>;
  /** Tasks whose process has not ended yet. */
  running(): number;
}

/** The message id of a task event: JetStream stores a retried publish once. */
/** The NATS connection name of an agent: the supervisor recognises its node in disconnect advisories by it. */
export function agentConnectionName(prefix: string, node: string): string {
  return `muster-agent:${prefix}:${node}`;
}

/** The message id of a task event: JetStream de-duplicates re-published events by it. */
export function taskEventMsgId(job: string, step: StepId, rank: number, epoch: string, kind: "started" | "ended"): string {
  return `${job}.${step}.${rank}.${epoch}.${kind}`;
}

/** The DLQ source the agent files rejected commands under. */
export const AGENT_DLQ_SOURCE = "agent";

/** How long the fatal path and the final `bye` may take, ms. */
const BYE_TIMEOUT_MS = 5_000;
/** Ended tasks remembered so that a repeated launch is not started twice. */
const MAX_REMEMBERED_TASKS = 100_000;
/** The most tasks one `cmd.launch` may put on this node (a rank range costs nothing on the wire, a task record does here). */
export const MAX_LAUNCH_TASKS = MAX_REMEMBERED_TASKS;
/** How long a starting agent waits for another agent of its node to answer `cmd.ping`, ms. */
const PING_TIMEOUT_MS = 2_000;

/** How long one turn of the event loop may spend starting tasks, ms: heartbeats and commands go in between. */
const START_SLICE_MS = 4;
/** Node messages (hello, draining, bye) are stored after every event queued before them, and before every one queued after. */
const FENCE = { fence: true } as const;
const SIGKILL = 9;
const SIGTERM = 15;
const SIGCONT = 18;

/** What the tasks of one `cmd.launch` share. */
interface LaunchBatch {
  readonly cmd: LaunchCommand;
  /** The environment of every task of the launch but the per-task variables, built when the first task starts. */
  env?: Readonly<Record<string, string>>;
}

interface TaskRecord {
  readonly key: string;
  readonly job: string;
  readonly step: StepId;
  readonly rank: number;
  readonly localId: number;
  readonly launch: LaunchBatch;
  /** Undefined until the task was handed to the launcher. */
  proc: TaskProcess | undefined;
  live: boolean;
  /** Signals sent before the task was handed to the launcher, delivered when it is. */
  held: number[] | undefined;
  /** A SIGKILL came before the task was started: it ends without being started. */
  killedUnstarted: boolean;
  /** A batch step's stderr file, where a stop by the runtime is written as slurmstepd does; set once it started. */
  noticeFile?: WriteStream;
  /** True once that stop was written (the first stop only). */
  noticed?: boolean;
  /** Resolves once the task's `task.ended` and its output's eof chunks were acknowledged (or the agent closed). */
  readonly finished: Promise<void>;
  settle: () => void;
}

/** A task's argv and output files, ready to start; `error` when its batch script could not be written. */
interface PreparedTask {
  argv: string[];
  files?: Partial<Record<"stdout" | "stderr", WriteStream>>;
  error?: string;
  cleanup: () => Promise<void>;
}

/** Builds an agent for one node; nothing happens until `start()`. */
export function createAgent(opts: AgentOptions): Agent {
  return new AgentService(opts);
}

class AgentService implements Agent {
  readonly node: string;
  epoch: string;
  private readonly config: Config;
  private readonly subjects: Subjects;
  private readonly log: Logger;
  private readonly slots: number;
  private readonly baseEnv: Readonly<Record<string, string | undefined>>;
  private readonly perlPath: string;
  private readonly launcher: Launcher;
  private readonly tasks = new Map<string, TaskRecord>();
  /** Accepted tasks not yet started, in launch order; `startHead` is the next one. */
  private startQueue: TaskRecord[] = [];
  private startHead = 0;
  private startScheduled = false;
  private readonly ioAbort = new AbortController();
  private readonly events: Outbox;
  private readonly dlq: Outbox;
  private readonly packageRoot: string | undefined;
  private binDirs: string[] = [];
  private scratchDir: string | undefined;
  private nc: NatsConnection | undefined;
  private js: JetStreamClient | undefined;
  private sub: Subscription | undefined;
  private heartbeat: NodeJS.Timeout | undefined;
  private hbSeq = 0;
  private lastBeatAt: number | undefined;
  private connected = false;
  private helloCount = 0;
  private draining = false;
  private closed = false;
  private started = false;
  private shuttingDown: Promise<void> | undefined;
  private killTimer: NodeJS.Timeout | undefined;

  constructor(opts: AgentOptions) {
    this.config = opts.config;
    this.subjects = createSubjects(opts.config.prefix);
    this.node = opts.node;
    this.subjects.node.cmd(opts.node); // validates the node name as a subject token
    this.epoch = randomUUID().replaceAll("-", "");
    this.log = opts.logger.child({ component: "agent", node: opts.node });
    this.slots = opts.slots ?? availableParallelism();
    if (!Number.isInteger(this.slots) || this.slots < 1) throw new MusterError("USAGE", `slots must be a positive integer, got ${String(opts.slots)}`);
    this.baseEnv = opts.env ?? process.env;
    this.perlPath = opts.perlPath ?? PERL_PATH;
    this.launcher = createLauncher({ logger: this.log.child({ component: "launcher" }), perlPath: this.perlPath });
    this.launcher.onCapacity(() => this.scheduleStarts());
    this.packageRoot = findPackageRoot(dirname(fileURLToPath(import.meta.url)));
    const musterBin = opts.musterBinDir ?? (this.packageRoot ? join(this.packageRoot, "bin") : undefined);
    if (musterBin) this.binDirs = [resolve(musterBin)];
    const retry = { logger: this.log, ackTimeoutMs: this.config.timeoutSeconds * 1000, isConnected: () => this.isConnected() };
    this.events = new Outbox(retry);
    this.dlq = new Outbox({ ...retry, maxItems: 1000 });
  }

  running(): number {
    let n = 0;
    for (const t of this.tasks.values()) if (t.live) n++;
    return n;
  }

  async start(): Promise<void> {
    if (this.started) throw new MusterError("INTERNAL", "agent already started");
    this.started = true;
    checkPerl(this.perlPath);
    await this.launcher.start();
    this.scratchDir = await mkdtemp(join(tmpdir(), `muster-agent-${this.node}-`));
    await this.prepareMusterShim();
    this.nc = await this.connect();
    // Without JetStream the agent's events could never be stored: say so instead of retrying forever.
    const noJetStream = await jetStreamMissing(this.nc);
    if (noJetStream) {
      await this.nc.close();
      await this.launcher.close();
      throw noJetStreamError(this.config, noJetStream);
    }
    // A second agent under the name of a live one would steal its commands and its node: refuse.
    const holder = await this.nodeHolder(this.nc);
    if (holder) {
      await this.nc.close();
      await this.launcher.close();
      throw new MusterError("NODE_IN_USE", holder);
    }
    this.connected = true;
    if (this.closed) {
      await this.nc.close();
      await this.launcher.close();
      return;
    }
    const js = jetstream(this.nc, { timeout: this.config.timeoutSeconds * 1000 });
    this.js = js;
    this.events.attach(js);
    this.dlq.attach(js);
    void this.watchStatus(this.nc);
    this.sub = this.nc.subscribe(this.subjects.node.cmd(this.node), {
      callback: (err, msg) => {
        if (err) this.log.error({ err }, "cmd.subscription_error");
        else this.onCommand(msg);
      },
    });
    await this.nc.flush();
    this.sayHello();
    // The supervisor's silence clock starts at the hello: an agent frozen before its first heartbeat
    // must still notice, when it thaws, that it has been declared lost.
    this.lastBeatAt = monotonicMs();
    this.heartbeat = setInterval(() => this.beat(), this.config.heartbeatIntervalSeconds * 1000);
    this.log.info({ epoch: this.epoch, slots: this.slots, prefix: this.subjects.prefix }, "agent.started");
  }

  shutdown(reason: ByeReason = "shutdown", detail?: string): Promise<void> {
    if (reason === "fatal" && this.shuttingDown) this.killAll(SIGKILL);
    this.shuttingDown ??= reason === "fatal" ? this.fatalShutdown(detail) : this.gracefulShutdown(detail);
    return this.shuttingDown;
  }

  // ---------------------------------------------------------------------------------------------
  // Connection and node messages

  private async connect(): Promise<NatsConnection> {
    let wait = 250;
    for (;;) {
      try {
        return await connectNats(this.config, { name: agentConnectionName(this.subjects.prefix, this.node) });
      } catch (err) {
        if (!(err instanceof MusterError) || err.code !== "UNAVAILABLE" || this.closed) throw err;
        this.log.warn({ err: err.message }, "nats.unavailable");
        await new Promise((r) => setTimeout(r, wait));
        wait = Math.min(wait * 2, 5_000);
      }
    }
  }

  /**
   * Who already serves this node, in one line, when a live agent answers `cmd.ping` on the node's
   * command subject (asked before this agent takes the subject). No responder, or none within the
   * timeout: nobody does — a predecessor that died (SIGKILL, crash) no longer holds the subject, so
   * an agent restarted under the same name is never refused because of it.
   */
  private async nodeHolder(nc: NatsConnection): Promise<string | undefined> {
    const subject = this.subjects.node.cmd(this.node);
    const ping: PingCommand = { type: "cmd.ping", v: PROTOCOL_VERSION, node: this.node };
    let data: Uint8Array;
    try {
      data = (await nc.request(subject, encodeMessage(ping), { timeout: PING_TIMEOUT_MS })).data;
    } catch (err) {
      this.log.debug({ err: (err as Error).message }, "agent.ping_unanswered");
      return undefined;
    }
    const ack = parseMessage(CommandAckSchema, data, subject);
    const who = ack.ok ? `epoch ${ack.value.epoch}${ack.value.ok && ack.value.pid ? `, pid ${ack.value.pid}${ack.value.hostname ? ` on ${ack.value.hostname}` : ""}` : ""}` : "an agent of another version";
    return `node ${this.node} is already served by a live agent (${who}); stop it first or choose another --node`;
  }

  private isConnected(): boolean {
    return this.connected && !!this.nc && !this.nc.isClosed();
  }

  private async watchStatus(nc: NatsConnection): Promise<void> {
    for await (const s of nc.status()) {
      if (s.type === "disconnect") {
        this.connected = false;
        this.log.warn({ server: s.server }, "nats.disconnected");
      } else if (s.type === "reconnect") {
        this.connected = true;
        this.log.info({ server: s.server }, "nats.reconnected");
        if (!this.closed && !this.shuttingDown) this.sayHello();
      }
    }
  }

  private sayHello(): void {
    const hello: Hello = {
      type: "hello",
      v: PROTOCOL_VERSION,
      node: this.node,
      epoch: this.epoch,
      slots: this.slots,
      pid: process.pid,
      hostname: hostname().slice(0, 255) || "unknown",
      version: packageVersion(this.packageRoot),
      at: Date.now(),
    };
    void this.events.enqueue(this.subjects.node.hello(this.node), encodeMessage(hello), `${this.node}.${this.epoch}.hello.${this.helloCount++}`, FENCE);
  }

  private beat(): void {
    const nc = this.nc;
    if (!nc || nc.isClosed()) return;
    // Measured on the monotonic clock: a step of the wall clock is not a silence.
    const now = monotonicMs();
    const gap = this.lastBeatAt === undefined ? 0 : now - this.lastBeatAt;
    this.lastBeatAt = now;
    if (gap > this.config.nodeTimeoutSeconds * 1000 && !this.draining) {
      this.reincarnate(gap);
      return;
    }
    const hb: Heartbeat = { type: "heartbeat", v: PROTOCOL_VERSION, node: this.node, epoch: this.epoch, seq: this.hbSeq++, at: Date.now(), running: this.running(), slots: this.slots };
    try {
      nc.publish(this.subjects.node.hb(this.node), encodeMessage(hb));
    } catch (err) {
      this.log.warn({ err: (err as Error).message }, "heartbeat.failed");
    }
  }

  // ---------------------------------------------------------------------------------------------
  // Commands

  private onCommand(msg: Msg): void {
    try {
      const parsed = parseMessage(NodeCommandSchema, msg.data, msg.subject);
      if (!parsed.ok) {
        this.reject(msg, parsed.code, parsed.message, true);
        return;
      }
      const cmd = parsed.value;
      if (cmd.node !== this.node) {
        this.reject(msg, "FORBIDDEN", `${msg.subject}: node ${JSON.stringify(cmd.node)} is not this node (${this.node})`, true);
        return;
      }
      if (cmd.type === "cmd.ping") {
        this.ack(msg, undefined, { pid: process.pid, hostname: hostname().slice(0, 255) || "unknown" });
        return;
      }
      if (cmd.epoch !== this.epoch) {
        this.reject(msg, "STALE_EPOCH", `${msg.subject}: epoch ${cmd.epoch} is not the current epoch of ${this.node}`, false);
        return;
      }
      if (cmd.type === "cmd.launch") this.onLaunch(msg, cmd);
      else if (cmd.type === "cmd.fence") this.onFence(msg, cmd);
      else this.onSignal(msg, cmd);
    } catch (err) {
      this.log.error({ err, subject: msg.subject }, "cmd.failed");
      this.ack(msg, { code: "INTERNAL", message: (err as Error).message ?? String(err) });
    }
  }

  private ack(msg: Msg, error?: { code: ErrorCode; message: string }, who?: { pid: number; hostname: string }): void {
    if (!msg.reply) return;
    const ack: CommandAck = error
      ? { type: "cmd.ack", v: PROTOCOL_VERSION, node: this.node, epoch: this.epoch, ok: false, error }
      : { type: "cmd.ack", v: PROTOCOL_VERSION, node: this.node, epoch: this.epoch, ok: true, ...who };
    try {
      msg.respond(encodeMessage(ack));
    } catch (err) {
      this.log.warn({ err: (err as Error).message, subject: msg.subject }, "cmd.ack_failed");
    }
  }

  private reject(msg: Msg, code: ErrorCode, message: string, deadLetter: boolean): void {
    this.log.warn({ subject: msg.subject, code, reason: message }, "cmd.rejected");
    this.ack(msg, { code, message });
    if (!deadLetter) return;
    const record = createDlqRecord({ subject: msg.subject, reason: code, message, bytes: msg.data, receivedAt: Date.now() });
    void this.dlq.enqueue(this.subjects.dlq.of(AGENT_DLQ_SOURCE), encodeMessage(record));
  }

  // Acknowledged once the tasks are recorded (so a repeated launch starts nothing twice); they start afterwards, a slice per turn.
  private onLaunch(msg: Msg, cmd: LaunchCommand): void {
    if (this.draining || this.closed) {
      this.reject(msg, "DRAINING", `${msg.subject}: node ${this.node} is shutting down and takes no new tasks`, false);
      return;
    }
    const ranks = IdSet.parse(cmd.ranks);
    if (ranks.size > MAX_LAUNCH_TASKS) {
      this.reject(msg, "BAD_REQUEST", `${msg.subject}: ${ranks.size} tasks in one launch; at most ${MAX_LAUNCH_TASKS} per node`, true);
      return;
    }
    const launch: LaunchBatch = { cmd };
    let localId = 0;
    for (const [lo, hi] of ranks.ranges) {
      for (let rank = lo; rank <= hi; rank++, localId++) {
        const key = `${cmd.job}.${cmd.step}.${rank}`;
        if (this.tasks.has(key)) continue; // a repeated launch: already accepted in this epoch
        let settle!: () => void;
        const finished = new Promise<void>((r) => (settle = r));
        const rec: TaskRecord = { key, job: cmd.job, step: cmd.step, rank, localId, launch, proc: undefined, live: true, held: undefined, killedUnstarted: false, finished, settle };
        this.tasks.set(key, rec);
        this.startQueue.push(rec);
      }
    }
    this.forgetOldTasks();
    this.ack(msg);
    this.scheduleStarts();
  }

  /** The supervisor declared this epoch lost and heard from it again: fence it and come back as a new incarnation. */
  private onFence(msg: Msg, cmd: FenceCommand): void {
    this.ack(msg);
    if (this.draining || this.closed) return;
    this.log.warn({ epoch: cmd.epoch, reason: cmd.reason }, "agent.fenced");
    this.reincarnate(undefined, "fenced");
  }

  private onSignal(msg: Msg, cmd: SignalCommand): void {
    let ranks: ((rank: number) => boolean) | undefined;
    if (cmd.ranks !== undefined) {
      try {
        const set = parseIdSet(cmd.ranks);
        ranks = (r) => set.has(r);
      } catch (err) {
        this.reject(msg, "BAD_SCHEMA", `${msg.subject}: ranks: ${(err as Error).message}`, true);
        return;
      }
    }
    let hit = 0;
    for (const t of this.tasks.values()) {
      if (t.job !== cmd.job || t.step !== cmd.step || !t.live || (ranks && !ranks(t.rank))) continue;
      if (cmd.notice && t.noticeFile && !t.noticed) {
        // Written before the signal, so it precedes whatever the script prints as it ends.
        t.noticed = true;
        t.noticeFile.write(`muster: error: ${stopLine(`JOB ${cmd.job}`, this.node, cmd.notice.reason, cmd.notice.at)}\n`);
      }
      this.signalTask(t, cmd.signal);
      hit++;
    }
    this.log.info({ job: cmd.job, step: cmd.step, ranks: cmd.ranks, signal: cmd.signal, tasks: hit }, "cmd.signal");
    this.ack(msg);
  }

  // ---------------------------------------------------------------------------------------------
  // Tasks

  private signalTask(t: TaskRecord, signal: number): void {
    if (t.proc) {
      t.proc.signal(signal);
    } else if (signal === SIGKILL) {
      t.killedUnstarted = true;
      this.scheduleStarts();
    } else {
      (t.held ??= []).push(signal);
    }
  }

  private scheduleStarts(): void {
    if (this.startScheduled || this.startHead >= this.startQueue.length) return;
    this.startScheduled = true;
    setImmediate(() => {
      this.startScheduled = false;
      this.startSome();
    });
  }

  // Starts queued tasks for at most START_SLICE_MS, while the launcher has room; the rest on later turns.
  private startSome(): void {
    if (this.closed) return;
    const until = performance.now() + START_SLICE_MS;
    while (this.startHead < this.startQueue.length) {
      const rec = this.startQueue[this.startHead]!;
      if (!rec.live || rec.proc) {
        this.startHead++;
        continue;
      }
      if (!rec.killedUnstarted && this.launcher.busy) break; // onCapacity resumes
      this.startHead++;
      this.startTask(rec);
      if (performance.now() >= until) {
        this.scheduleStarts();
        break;
      }
    }
    if (this.startHead >= this.startQueue.length) {
      this.startQueue = [];
      this.startHead = 0;
    } else if (this.startHead > 4096 && this.startHead * 2 > this.startQueue.length) {
      this.startQueue = this.startQueue.slice(this.startHead);
      this.startHead = 0;
    }
  }

  /**
   * The environment every task of a launch shares: the node's environment (none with
   * `--export=NONE`), the submitted one over it, then muster's variables and Slurm's (unless
   * MUSTER_SLURM_ENV=0). A submitted secret or Slurm variable is never taken. MUSTER_TASK_ID,
   * MUSTER_LOCALID, SLURM_PROCID and SLURM_LOCALID are added per task (taskEnv).
   */
  private launchEnv(launch: LaunchBatch): Readonly<Record<string, string>> {
    if (launch.env) return launch.env;
    const cmd = launch.cmd;
    const slurm = this.config.slurmEnv && cmd.slurm !== undefined;
    const env: Record<string, string> = {};
    if (cmd.envExport === "NONE") {
      // Only what a `muster run` inside the task needs to reach this cluster, never a credential.
      Object.assign(env, { NATS_URL: urlWithoutSecrets(this.config.natsUrl), MUSTER_PREFIX: this.config.prefix, MUSTER_USER: cmd.user });
    } else {
      // Slurm's variables of the node's own environment would mix with this task's.
      for (const [k, v] of Object.entries(this.baseEnv)) if (v !== undefined && !(slurm && isSlurmVariable(k))) env[k] = v;
    }
    for (const [k, v] of Object.entries(cmd.env)) if (!isSecretVariable(k) && !isSlurmVariable(k)) env[k] = v;
    Object.assign(env, {
      MUSTER_JOB_ID: cmd.job,
      MUSTER_STEP_ID: String(cmd.step),
      MUSTER_NTASKS: String(cmd.ntasks),
      MUSTER_NNODES: String(cmd.nnodes),
      MUSTER_NODEID: String(cmd.nodeIndex),
      MUSTER_NODE: this.node,
    });
    delete env.MUSTER_TASK_ID;
    delete env.MUSTER_LOCALID;
    if (slurm) {
      Object.assign(env, slurmLaunchVariables({ job: cmd.job, step: cmd.step, user: cmd.user, node: this.node, ntasks: cmd.ntasks, nnodes: cmd.nnodes, nodeIndex: cmd.nodeIndex, facts: cmd.slurm! }));
    }
    const path = env.PATH || "/usr/local/bin:/usr/bin:/bin";
    env.PATH = [...this.binDirs, path].join(delimiter);
    launch.env = env;
    return env;
  }

  // The variables of one task: its rank and its index on this node.
  private taskEnv(cmd: LaunchCommand, rank: number, localId: number): Record<string, string> {
    const own = { MUSTER_TASK_ID: String(rank), MUSTER_LOCALID: String(localId) };
    return this.config.slurmEnv && cmd.slurm !== undefined ? { ...own, ...slurmTaskVariables(rank, localId) } : own;
  }

  private startTask(rec: TaskRecord): void {
    const cmd = rec.launch.cmd;
    const rank = rec.rank;
    const log = this.log.child({ job: cmd.job, step: cmd.step, task: rank });
    const evtSubject = this.subjects.evt.task(this.node, cmd.job, cmd.step, rank);
    // The epoch the task was launched in, even if the agent took a new one while the task waited.
    const epoch = cmd.epoch;
    const base = { v: PROTOCOL_VERSION, job: cmd.job, step: cmd.step, rank, node: this.node, epoch } as const;

    const prepared: PreparedTask = rec.killedUnstarted ? { argv: [], cleanup: async () => {} } : this.prepareBatch(cmd, log);
    const output = new TaskOutput({
      js: this.js!,
      subjects: this.subjects,
      job: cmd.job,
      step: cmd.step,
      rank,
      epoch,
      logger: log,
      signal: this.ioAbort.signal,
      ackTimeoutMs: this.config.timeoutSeconds * 1000,
      isConnected: () => this.isConnected(),
      ...(prepared.files ? { files: prepared.files } : {}),
    });

    // Events of one task are ordered by its key; a failure jumps ordinary traffic (outbox.ts).
    const order = { key: rec.key };
    let started: Promise<boolean> = Promise.resolve(true);
    let exit: Promise<TaskExit>;
    /** Resolves once the task's output pipes are closed (after `exit`). */
    let outputClosed: Promise<unknown> = Promise.resolve();
    if (rec.killedUnstarted) {
      // SIGKILL before the task was started: it never runs, as if it had been killed before its exec.
      exit = Promise.resolve({ outcome: { kind: "signaled", signal: SIGKILL, coreDumped: false } });
    } else if (prepared.error !== undefined) {
      exit = Promise.resolve({ outcome: { kind: "launch_failed", code: 126, error: prepared.error } });
    } else {
      const proc = this.launcher.spawn({
        argv: prepared.argv,
        cwd: cmd.cwd,
        env: this.launchEnv(rec.launch),
        envExtra: this.taskEnv(cmd, rank, rec.localId),
        perlPath: this.perlPath,
        onStarted: (pid) => {
          const evt: TaskStarted = { type: "task.started", ...base, pid, at: Date.now() };
          log.info({ pid }, "task.started");
          started = this.events.enqueue(evtSubject, encodeMessage(evt), taskEventMsgId(cmd.job, cmd.step, rank, epoch, "started"), order);
        },
        onOutput: (stream, data) => output.write(stream, data),
        onDiagnostic: (text) => log.warn({ text }, "launcher.diagnostic"),
      });
      rec.proc = proc;
      rec.noticeFile = prepared.files?.stderr;
      for (const s of rec.held?.splice(0) ?? []) proc.signal(s);
      exit = proc.exited;
      outputClosed = proc.done;
    }
    rec.held = undefined;

    void (async () => {
      const { outcome, pid } = await exit;
      rec.live = false;
      const failed = isBadOutcome(outcome);
      const flushed = (async () => {
        await outputClosed;
        rec.proc = undefined;
        await prepared.cleanup();
        await output.end();
      })();
      // A task that ended badly is reported at once, ahead of ordinary traffic, without waiting for its
      // output (muster run waits for each stream's eof chunk itself, and counts lost bytes by offset).
      // A task that exited 0 is reported once its output is stored, so its end carries the bytes lost;
      // so is one whose output goes to files (a batch script's -o/-e): nothing else waits for those to be written.
      if (!failed || prepared.files) await flushed;
      const lost = output.lostBytes;
      const evt: TaskEnded = { type: "task.ended", ...base, outcome, ...(pid === undefined ? {} : { pid }), ...(lost > 0 ? { outputLostBytes: lost } : {}), at: Date.now() };
      log.info({ pid, outcome }, "task.ended");
      const acked = this.events.enqueue(evtSubject, encodeMessage(evt), taskEventMsgId(cmd.job, cmd.step, rank, epoch, "ended"), { ...order, urgent: failed });
      await Promise.all([started, acked, flushed]);
    })()
      .catch((err: unknown) => {
        rec.live = false;
        log.error({ err }, "task.failed");
      })
      .finally(rec.settle);
  }

  // A batch step runs the script text captured at submit time, and may write its output to files.
  private prepareBatch(cmd: LaunchCommand, log: Logger): PreparedTask {
    const argv = [...cmd.argv];
    const batch = cmd.batch;
    let cleanup = async (): Promise<void> => {};
    if (!batch) return { argv, cleanup };
    let files: Partial<Record<"stdout" | "stderr", WriteStream>> | undefined;
    try {
      if (batch.content !== undefined) {
        const path = join(this.scratchDir!, `batch-${cmd.job}-${randomUUID().slice(0, 8)}`);
        // Written synchronously so that the launch (and its ack) follows in order; 0700: the task executes it.
        writeFileSync(path, batch.content, { mode: 0o700 });
        argv[0] = path;
        cleanup = async () => {
          await rm(path, { force: true });
        };
      }
      // The supervisor expanded the filename pattern but for what only this node knows (%N, and %% left as %%).
      const at = (pattern: string): string => {
        const p = expandFilenamePattern(pattern, { node: this.node, nodeIndex: cmd.nodeIndex });
        return isAbsolute(p) ? p : join(cmd.cwd, p);
      };
      if (batch.output !== undefined) {
        const out = createWriteStream(at(batch.output), { flags: "a" });
        files = { stdout: out, stderr: out };
        out.on("error", (err) => log.warn({ err: err.message, file: batch.output }, "io.file_failed"));
      }
      if (batch.error !== undefined) {
        const errFile = createWriteStream(at(batch.error), { flags: "a" });
        errFile.on("error", (err) => log.warn({ err: err.message, file: batch.error }, "io.file_failed"));
        files = { ...files, stderr: errFile };
      }
      return files ? { argv, files, cleanup } : { argv, cleanup };
    } catch (err) {
      return { argv, error: `${batch.script}: ${(err as Error).message}`, cleanup };
    }
  }

  private forgetOldTasks(): void {
    if (this.tasks.size <= MAX_REMEMBERED_TASKS) return;
    for (const [key, t] of this.tasks) {
      if (this.tasks.size <= MAX_REMEMBERED_TASKS) break;
      if (!t.live) this.tasks.delete(key);
    }
  }

  /**
   * Fencing from this side: silent for longer than nodeTimeout (frozen, suspended, starved), this
   * incarnation has been declared lost and its tasks finalised as node_lost; or the supervisor says
   * so with `cmd.fence` (its heartbeats did not reach it, as in a partition). It kills those tasks
   * (their late events carry the old epoch and are dropped by the supervisor) and says hello as a
   * new incarnation.
   */
  private reincarnate(silentMs: number | undefined, why: "silent" | "fenced" = "silent"): void {
    const old = this.epoch;
    this.epoch = randomUUID().replaceAll("-", "");
    this.hbSeq = 0;
    this.log.warn({ oldEpoch: old, epoch: this.epoch, why, ...(silentMs === undefined ? {} : { silentMs }), killed: this.running() }, "agent.reincarnated");
    this.killAll(9);
    this.sayHello();
  }

  private killAll(signal: number): void {
    for (const t of this.tasks.values()) if (t.live) this.signalTask(t, signal);
  }

  // ---------------------------------------------------------------------------------------------
  // Shutdown

  private async gracefulShutdown(detail: string | undefined): Promise<void> {
    this.draining = true;
    this.log.info({ running: this.running() }, "agent.draining");
    if (this.nc) {
      const draining: Draining = { type: "draining", v: PROTOCOL_VERSION, node: this.node, epoch: this.epoch, at: Date.now() };
      void this.events.enqueue(this.subjects.node.draining(this.node), encodeMessage(draining), `${this.node}.${this.epoch}.draining`, FENCE);
    }
    this.killAll(SIGCONT);
    this.killAll(SIGTERM);
    const killWaitMs = this.config.killWaitSeconds * 1000;
    this.killTimer = setTimeout(() => {
      if (this.running() > 0) this.log.warn({ running: this.running() }, "agent.kill_wait_expired");
      this.killAll(SIGKILL);
    }, killWaitMs);
    const settled = Promise.all([...this.tasks.values()].map((t) => t.finished)).then(() => this.events.idle());
    const inTime = await within(settled, killWaitMs + 5_000);
    clearTimeout(this.killTimer);
    if (!inTime) {
      this.killAll(SIGKILL);
      this.log.warn({ pending: this.events.size, running: this.running() }, "agent.drain_incomplete");
    }
    await this.sayBye("shutdown", detail);
  }

  private async fatalShutdown(detail: string | undefined): Promise<void> {
    this.draining = true;
    // Nobody will report on the tasks any more: do not leave them running unobserved.
    this.killAll(SIGKILL);
    await this.sayBye("fatal", detail);
  }

  private async sayBye(reason: ByeReason, detail: string | undefined): Promise<void> {
    clearInterval(this.heartbeat);
    if (this.nc && !this.nc.isClosed()) {
      const bye: Bye = {
        type: "bye",
        v: PROTOCOL_VERSION,
        node: this.node,
        epoch: this.epoch,
        reason,
        ...(detail === undefined ? {} : { detail: detail.slice(0, 1024) }),
        at: Date.now(),
      };
      const acked = await within(this.events.enqueue(this.subjects.node.bye(this.node), encodeMessage(bye), `${this.node}.${this.epoch}.bye`, FENCE), BYE_TIMEOUT_MS);
      if (!acked) this.log.warn({ pending: this.events.size }, "agent.bye_unconfirmed");
    }
    this.closed = true;
    this.events.close();
    this.dlq.close();
    this.ioAbort.abort();
    this.sub?.unsubscribe();
    try {
      await this.nc?.close();
    } catch {
      // already closed
    }
    await this.launcher.close();
    if (this.scratchDir) await rm(this.scratchDir, { recursive: true, force: true });
    this.log.info({ reason }, "agent.bye");
  }

  // `muster` must resolve on the tasks' PATH; a source checkout ships only bin/muster.js, so link it.
  private async prepareMusterShim(): Promise<void> {
    const dir = this.binDirs[0];
    if (!dir || existsSync(join(dir, "muster")) || !existsSync(join(dir, "muster.js")) || !this.scratchDir) return;
    const shim = join(this.scratchDir, "bin");
    try {
      await mkdir(shim);
      await symlink(join(dir, "muster.js"), join(shim, "muster"));
      this.binDirs = [shim, dir];
    } catch (err) {
      this.log.warn({ err: (err as Error).message }, "agent.muster_shim_failed");
    }
  }
}

/** Resolves true when `p` settles within `ms`, false otherwise. */
async function within(p: Promise<unknown>, ms: number): Promise<boolean> {
  let timer: NodeJS.Timeout | undefined;
  const result = await Promise.race([p.then(() => true), new Promise<boolean>((r) => (timer = setTimeout(() => r(false), ms)))]);
  clearTimeout(timer);
  return result;
}

/** The muster package root (has package.json and bin/), found upwards from this file in src or dist. */
export function findPackageRoot(from: string): string | undefined {
  for (let dir = from; ; dir = dirname(dir)) {
    if (existsSync(join(dir, "package.json")) && existsSync(join(dir, "bin"))) return dir;
    if (dirname(dir) === dir) return undefined;
  }
}

let cachedVersion: string | undefined;

function packageVersion(root: string | undefined): string {
  if (cachedVersion) return cachedVersion;
  try {
    const pkg = JSON.parse(readFileSync(join(root ?? ".", "package.json"), "utf8")) as { version?: unknown };
    cachedVersion = typeof pkg.version === "string" && pkg.version.length > 0 ? pkg.version.slice(0, 64) : "0.0.0";
  } catch {
    cachedVersion = "0.0.0";
  }
  return cachedVersion;
}
