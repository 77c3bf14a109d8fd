/**
 * The supervisor: owns jobs. It answers control requests, places tasks on online nodes, sends
 * launch and signal commands to agents, consumes task events from JetStream with a durable
 * consumer, hosts the job/step/node machines, publishes state changes, the first-failure
 * notification and the final summary, and saves every job before acknowledging its events.
 * Every mutation runs through one serial queue, so the machines see one event at a time; each job's
 * I/O (publishes, saves, acks, commands) runs in order on that job's own chain, off the queue.
 */
import { expandFilenamePattern, type PatternFields } from "../../src/filename-pattern/index.js";
import { AckPolicy, DeliverPolicy, jetstream, jetstreamManager, type JetStreamClient, type JetStreamManager, type JsMsg } from "@nats-io/jetstream";
import type { Msg, NatsConnection, Subscription } from "@nats-io/transport-node";
import { createActor, type Actor } from "xstate";
import { nodeMachine, nodeNextDeadline, type NodeEffect, type NodeEvent, type NodeStateName } from "../../machines/node.machine.js";
import { stepNextDeadline, stepPicture, stepStopNotice, type KillNotice, type Placement, type SignalTarget, type StepContext, type StepEvent, type StepPolicies } from "../../machines/step.machine.js";
import { BATCH_STEP } from "../../machines/job.machine.js";
import type { TaskEvent } from "../../machines/task.machine.js";
import { allTasks, getTask, hasRank } from "../../machines/task-table.js";
import type { Config } from "../../src/config.js";
import { MusterError, toFailure } from "../../src/errors.js";
import { compareNodeNames, formatExitCode, isBadOutcome, outcomeExitCode, type RunState } from "../../src/exit-status/index.js";
import { compressCounts, compressHostlist } from "../../src/hostlist.js";
import { IdSet } from "../../src/idset/index.js";
import type { Logger } from "../../src/logger.js";
import { withoutSecrets } from "../../src/task-env.js";
import { connectNats, jetStreamMissing, noJetStreamError, systemAccountConfig } from "../../src/nats/connect.js";
import { supervisorAnswers, supervisorRunningError } from "../../src/nats/supervisor-presence.js";
import { ensureStreams, openSnapshotBucket } from "../../src/nats/streams.js";
import {
  ByeSchema,
  CommandAckSchema,
  ControlRequestSchema,
  DrainingSchema,
  HeartbeatSchema,
  HelloSchema,
  TaskEventSchema,
  createDlqRecord,
  createSubjects,
  encodeMessage,
  encodeTaskPicture,
  errReply,
  okReply,
  parseMessage,
  type ControlRequest,
  type ErrorCode,
  type JobView,
  type KillRequest,
  type Message,
  type NodeView,
  type QueryRequest,
  type SignalRequest,
  type StepView,
  type SubmitRequest,
  type Subjects,
} from "../../src/protocol/index.js";
import { JobHost, runStateOf, type HostedEffect, type JobMeta, type StepSpec } from "./job-host.js";
import { checkRequest, fitsWhenIdle, neverFits, placeTasks, type CandidateNode } from "./placement.js";
import { JobStore } from "./store.js";
import { steadyNow } from "../../src/clock.js";

/** Options of a supervisor. */
export interface SupervisorOptions {
  readonly config: Config;
  readonly logger: Logger;
  /** Users allowed to act on every job (operators). */
  readonly operators?: readonly string[];
  /** How often deadlines are checked, ms. */
  readonly tickMs?: number;
}

/** A running supervisor. */
export interface Supervisor {
  start(): Promise<void>;
  stop(): Promise<void>;
}

/** Tasks listed in a job view at most (about 110 bytes each, well under the 1 MiB reply limit); larger steps give groups only. */
const VIEW_TASK_LIMIT = 4096;
/** Timeouts of the once-a-second JetStream probe in a row that count as JetStream being unavailable. */
const PROBE_TIMEOUTS_BLIND = 3;
const CONSUMER = "supervisor";
/** How long a node's `bye` waits for the task events stored before it, at most, ms. */
const BYE_EVENTS_WAIT_MS = 5_000;

type NodeActor = Actor<typeof nodeMachine>;

/** Builds a supervisor. */
export function createSupervisor(opts: SupervisorOptions): Supervisor {
  return new SupervisorService(opts);
}

class SupervisorService implements Supervisor {
  private readonly cfg: Config;
  private readonly log: Logger;
  private readonly subjects: Subjects;
  private nc!: NatsConnection;
  private sys: NatsConnection | undefined;
  private js!: JetStreamClient;
  private store!: JobStore;
  private readonly jobs = new Map<string, JobHost>();
  private readonly nodes = new Map<string, NodeActor>();
  private readonly effects: HostedEffect[] = [];
  private readonly nodeEffects: NodeEffect[] = [];
  private readonly touched = new Set<string>();
  /** Jobs changed since their last save. */
  private readonly dirty = new Set<JobHost>();
  /** Jobs that asked for an effect in the current settle: saved before the effect's commands go out. */
  private readonly urgent = new Set<string>();
  /** When each node was last heard from (hello, heartbeat), stamped on arrival, before the serial queue. */
  private readonly heard = new Map<string, { epoch: string; at: number }>();
  private readonly subs: Subscription[] = [];
  private queue: Promise<unknown> = Promise.resolve();
  private ticker: NodeJS.Timeout | undefined;
  private stopping = false;
  private consumerLoop: Promise<void> | undefined;
  private stopConsumer: (() => void) | undefined;
  private jsm!: JetStreamManager;
  /** The highest EVENTS stream sequence processed. */
  private eventsSeq = 0;
  /** Nodes that said `bye`: their remaining tasks are lost once the events stored before the bye were processed. */
  private readonly byes: { node: string; epoch: string; at: number; untilSeq: number; deadline: number }[] = [];

  constructor(private readonly opts: SupervisorOptions) {
    this.cfg = opts.config;
    this.log = opts.logger.child({ component: "supervisor" });
    this.subjects = createSubjects(this.cfg.prefix);
  }

  async start(): Promise<void> {
    this.nc = await connectNats(this.cfg, { name: "muster-supervisor" });
    // Nothing is created or subscribed before these checks: a refused start changes nothing.
    const refusal = await this.startRefusal();
    if (refusal) {
      await this.nc.close().catch(() => undefined);
      throw refusal;
    }
    void this.watchConnection(this.nc);
    const jsm = await jetstreamManager(this.nc);
    this.jsm = jsm;
    const streamOpts = { replicas: this.cfg.replicas, retentionSeconds: this.cfg.historyRetentionSeconds };
    await ensureStreams(jsm, this.subjects, streamOpts);
    this.js = jetstream(this.nc);
    this.store = new JobStore(await openSnapshotBucket(this.nc, this.subjects, streamOpts));
    // Subscribe to node messages before reading the NODES stream: a hello published in between
    // is queued in the subscription and handled after the restore, instead of being missed.
    const consumeNodeMessages = this.subscribeNodes();
    await this.restore();
    this.pending.sort((a, b) => Number(a) - Number(b) || a.localeCompare(b));
    await this.restoreNodes();
    this.subscribeControl();
    consumeNodeMessages();
    await this.subscribeAdvisories();
    this.consumerLoop = this.consumeEvents(jsm);
    this.ticker = setInterval(() => void this.serial(() => this.tick()), this.opts.tickMs ?? 100);
    this.log.info({ prefix: this.cfg.prefix, nats: this.cfg.natsUrl, jobs: this.jobs.size }, "supervisor.started");
  }

  /** Why this supervisor must not start: no JetStream, or another supervisor already serves the prefix. */
  private async startRefusal(): Promise<MusterError | undefined> {
    const missing = await jetStreamMissing(this.nc);
    if (missing) return noJetStreamError(this.cfg, missing);
    if (await supervisorAnswers(this.nc, this.cfg)) return supervisorRunningError(this.cfg, "a second one");
    return undefined;
  }

  async stop(): Promise<void> {
    if (this.stopping) return;
    this.stopping = true;
    if (this.ticker) clearInterval(this.ticker);
    this.stopConsumer?.();
    for (const s of this.subs) s.unsubscribe();
    await this.queue.catch(() => undefined);
    await this.consumerLoop?.catch(() => undefined);
    // Save what is still waiting (and acknowledge its events), so a restart replays nothing needlessly.
    this.flush(steadyNow(), true);
    await Promise.all([...this.jobs.values(), ...this.finished.values()].map((h) => h.io));
    await this.nc.drain().catch(() => undefined);
    await this.sys?.close().catch(() => undefined);
    for (const n of this.nodes.values()) n.stop();
    this.log.info("supervisor.stopped");
  }

  /** Runs `fn` after everything queued before it; errors are logged, never thrown at the caller's loop. */
  private serial<T>(fn: () => Promise<T> | T): Promise<T> {
    const run = this.queue.then(fn, fn);
    this.queue = run.catch((err) => this.log.error({ err }, "supervisor.serial_failed"));
    return run;
  }

  // ---- restore ----------------------------------------------------------------------------

  private async restore(): Promise<void> {
    const damaged = (jobId: string, reason: string, record: unknown) => {
      const placements = heldSlotsOf(record);
      const held = new Map<string, number>();
      for (const p of placements) held.set(`${p.node}/${p.epoch}`, (held.get(`${p.node}/${p.epoch}`) ?? 0) + IdSet.parse(p.ranks).size);
      this.damaged.set(jobId, { reason, held });
      this.log.error({ job: jobId, reason, heldSlots: placements.map((p) => `${p.node}:${p.ranks}`) }, "job.restore_failed");
    };
    for (const { record, steps } of await this.store.loadAll<JobMeta>(damaged)) {
      const host = new JobHost(record.jobId, record.meta, (e) => this.effects.push(e), { job: record.job, steps, seq: record.seq });
      if (host.ended) {
        this.finished.set(record.jobId, host);
        continue;
      }
      this.jobs.set(record.jobId, host);
      if (!host.meta.alloc) this.pending.push(record.jobId);
      for (const [stepId, actor] of host.steps) {
        host.published.set(stepId, runStateOf(actor.getSnapshot().value, actor.getSnapshot().context.end));
      }
      host.published.set("job", host.runState());
      this.log.info({ job: record.jobId, seq: record.seq }, "job.restored");
    }
  }

  /**
   * Jobs whose stored record could not be read back at startup, with the reason. They are left as
   * stored for an operator; asking for one says why it cannot be shown, and its events are
   * dead-lettered (kept, not applied).
   */
  private readonly damaged = new Map<string, { readonly reason: string; readonly held: ReadonlyMap<string, number> }>();

  /** Adds the slots held by jobs that could not be restored to `counts` (by `node/epoch`): nobody knows better. */
  private addDamagedSlots(counts: Map<string, number>): void {
    for (const d of this.damaged.values()) for (const [key, n] of d.held) counts.set(key, (counts.get(key) ?? 0) + n);
  }
  /** Finished jobs kept for queries (history is issue #5's; this keeps `show` working). */
  private readonly finished = new Map<string, JobHost>();
  /** Jobs waiting for slots, oldest first. */
  private readonly pending: string[] = [];

  private async restoreNodes(): Promise<void> {
    const jsm = await jetstreamManager(this.nc);
    const stream = this.subjects.streams.nodes.name;
    const latest = new Map<string, Message>();
    for (const subject of [this.subjects.node.helloAll, this.subjects.node.drainingAll, this.subjects.node.byeAll]) {
      const info = await jsm.streams.info(stream, { subjects_filter: subject }).catch(() => undefined);
      for (const subj of Object.keys(info?.state.subjects ?? {})) {
        const m = await jsm.streams.getMessage(stream, { last_by_subj: subj }).catch(() => undefined);
        if (!m) continue;
        const parsed = parseMessage(HelloSchema.or(DrainingSchema).or(ByeSchema), m.data, subj);
        if (!parsed.ok) continue;
        const key = `${parsed.value.node}/${parsed.value.type}`;
        latest.set(key, parsed.value);
      }
    }
    const now = steadyNow();
    for (const msg of latest.values()) {
      if (msg.type !== "hello") continue;
      const bye = latest.get(`${msg.node}/bye`);
      if (bye && bye.type === "bye" && bye.epoch === msg.epoch) {
        // It said bye before the restart: it stays in the node table as offline since then, as sinfo keeps a down node.
        this.nodeEvent(msg.node, { type: "HELLO", epoch: msg.epoch, slots: msg.slots, at: msg.at });
        this.nodeEvent(msg.node, { type: "BYE", epoch: msg.epoch, at: bye.at });
        continue;
      }
      // Heard of before the restart: assume alive as of now; heartbeats or their absence decide.
      this.nodeEvent(msg.node, { type: "HELLO", epoch: msg.epoch, slots: msg.slots, at: now });
      const draining = latest.get(`${msg.node}/draining`);
      if (draining && draining.type === "draining" && draining.epoch === msg.epoch) this.nodeEvent(msg.node, { type: "DRAINING", epoch: msg.epoch, at: now });
    }
    this.nodeEffects.length = 0;
    // Tasks still launching when the supervisor stopped get their launch command again (agents de-duplicate).
    for (const host of this.jobs.values()) {
      for (const [stepId, actor] of host.steps) {
        const ctx = actor.getSnapshot().context;
        if (ctx.end || ctx.launchedAt === undefined) continue;
        const stillLaunching = ctx.placement.filter((p) => {
          for (const r of IdSet.parse(p.ranks)) if (hasRank(ctx.tasks, r) && getTask(ctx.tasks, r).state === "launching") return true;
          return false;
        });
        if (stillLaunching.length) void this.launch(host, stepId, stillLaunching);
      }
    }
  }

  // ---- control requests --------------------------------------------------------------------

  private subscribeControl(): void {
    const sub = this.nc.subscribe(this.subjects.ctl.all, { queue: "muster-supervisor" });
    this.subs.push(sub);
    void (async () => {
      // The request is handled in the queue; the reply waits, outside it, until the job's save is stored.
      for await (const msg of sub) void this.serial(() => this.handleControl(msg)).then((reply) => reply?.());
    })();
  }

  /** The job a control request changed: its reply waits until the job's I/O so far is done and stored. */
  private changed: JobHost | undefined;

  private async handleControl(msg: Msg): Promise<(() => Promise<void>) | void> {
    const parsedSubject = this.subjects.parse(msg.subject);
    const respond = (reply: Message) => {
      if (!msg.reply) return;
      try {
        msg.respond(encodeMessage(reply));
      } catch (err) {
        this.log.error({ err, subject: msg.subject }, "ctl.reply_too_large");
        msg.respond(encodeMessage(errReply("PAYLOAD_TOO_LARGE", `the reply to ${msg.subject} is larger than the payload limit`)));
      }
    };
    if (!parsedSubject || parsedSubject.kind !== "ctl") {
      respond(errReply("BAD_REQUEST", `not a control subject: ${msg.subject}`));
      return;
    }
    const parsed = parseMessage(ControlRequestSchema, msg.data, msg.subject);
    if (!parsed.ok) {
      this.log.warn({ subject: msg.subject, code: parsed.code, reason: parsed.message }, "ctl.rejected");
      respond(errReply(parsed.code, parsed.message));
      this.deadLetter(msg.subject, parsed.code, parsed.message, msg.data);
      return;
    }
    if (parsed.value.type !== parsedSubject.op) {
      respond(errReply("BAD_REQUEST", `a ${parsed.value.type} request was sent to the ${parsedSubject.op} subject`));
      return;
    }
    try {
      this.changed = undefined;
      const data = await this.control(parsedSubject.user, parsed.value);
      const host = this.changed as JobHost | undefined;
      this.changed = undefined;
      if (!host) {
        respond(okReply(data));
        return;
      }
      return async () => {
        await host.io;
        if (host.saveFailed || host.broken) {
          respond(errReply("UNAVAILABLE", `job ${host.id}: its new state could not be stored yet (${host.broken ?? "save failed, retrying"})`));
        } else respond(okReply(data));
      };
    } catch (err) {
      const failure = toFailure(err);
      const code: ErrorCode = failure.code === "USAGE" || failure.code === "CONFIG" || failure.code === "NODE_IN_USE" ? "BAD_REQUEST" : failure.code;
      if (code === "INTERNAL") this.log.error({ err, subject: msg.subject }, "ctl.failed");
      else this.log.info({ subject: msg.subject, code, reason: failure.message }, "ctl.refused");
      respond(errReply(code, failure.message, failure.details));
    }
  }

  private async control(user: string, req: ControlRequest): Promise<unknown> {
    switch (req.type) {
      case "submit":
        return this.submit(user, req);
      case "kill":
        return this.kill(user, req);
      case "signal":
        return this.signal(user, req);
      case "query":
        return this.query(user, req);
    }
  }

  private isOperator(user: string): boolean {
    return (this.opts.operators ?? []).includes(user);
  }

  private async submit(user: string, req: SubmitRequest): Promise<unknown> {
    if (req.user !== user) throw new MusterError("FORBIDDEN", `user ${user} cannot submit as ${req.user}`);
    if (req.parentJob !== undefined) return this.submitStep(user, req);
    const request = { ntasks: req.ntasks, nodes: req.nodes, ntasksPerNode: req.ntasksPerNode, ...(req.nodelist ? { nodelist: req.nodelist } : {}) };
    checkRequest(request);
    const candidates = this.candidates();
    if (!fitsWhenIdle(request, candidates)) throw neverFits(request, candidates);
    const jobId = await this.store.nextJobId();
    const now = steadyNow();
    const cwd = req.cwd ?? process.cwd();
    const name = req.name ?? req.argv[0]!.split("/").pop()!;
    const fields: PatternFields = { job: jobId, step: BATCH_STEP, task: 0, nodeIndex: 0, user, jobName: name };
    const batch = req.batch && { ...req.batch, output: outputPath(req.batch.output ?? "muster-%j.out", fields, cwd), error: req.batch.error && outputPath(req.batch.error, fields, cwd) };
    const meta: JobMeta = {
      name,
      user,
      kind: batch ? "batch" : "run",
      request,
      killWaitSeconds: req.killWaitSeconds ?? this.cfg.killWaitSeconds,
      submittedAt: now,
      policies: { killOnBadExit: req.killOnBadExit, noKill: req.noKill, waitSeconds: req.waitSeconds, timeLimitSeconds: req.timeLimitSeconds },
      steps: { [batch ? BATCH_STEP : "0"]: stepSpec(req, cwd, batch) },
      origin: { dir: req.submitDir ?? cwd, ...(req.submitHost ? { host: req.submitHost } : {}) },
    };
    const host = new JobHost(jobId, meta, (e) => this.effects.push(e));
    this.jobs.set(jobId, host);
    this.pending.push(jobId);
    this.touched.add(jobId);
    this.schedule();
    await this.settle();
    this.changed = host;
    const started = host.meta.alloc !== undefined;
    this.log.info({ job: jobId, user, ntasks: req.ntasks, kind: meta.kind, nodes: host.meta.alloc?.map((p) => p.node), pending: !started }, "job.submitted");
    return { job: jobId, step: batch ? BATCH_STEP : 0, placement: host.meta.alloc ?? [], state: started ? "RUNNING" : "PENDING" };
  }

  /** A `muster run` inside a batch job: a new numbered step within the job's allocation. */
  private async submitStep(user: string, req: SubmitRequest): Promise<unknown> {
    const host = this.jobFor(user, req.parentJob!);
    if (host.meta.kind !== "batch") throw new MusterError("BAD_REQUEST", `job ${host.id} is not a batch job: steps can be added only to batch jobs`);
    if (host.ended || !host.meta.alloc) throw new MusterError("NOT_RUNNING", `job ${host.id} is not running`);
    const request = { ntasks: req.ntasks, nodes: req.nodes, ntasksPerNode: req.ntasksPerNode, ...(req.nodelist ? { nodelist: req.nodelist } : {}) };
    const alloc = host.meta.alloc.map((p) => ({ node: p.node, epoch: p.epoch, slots: IdSet.parse(p.ranks).size }));
    const outside = req.nodelist?.filter((n) => !alloc.some((a) => a.node === n)) ?? [];
    if (outside.length) throw new MusterError("BAD_REQUEST", `--nodelist: ${outside.join(",")} ${outside.length === 1 ? "is" : "are"} not in job ${host.id}'s allocation (${alloc.map((n) => n.node).join(",")})`);
    const placement = placeTasks(request, alloc);
    if (!placement) {
      throw new MusterError("BAD_REQUEST", `the step (${req.ntasks} tasks) does not fit job ${host.id}'s allocation of ${alloc.reduce((a, n) => a + n.slots, 0)} slots on ${alloc.map((n) => n.node).join(",")}`);
    }
    const stepId = String([...host.steps.keys()].filter((k) => k !== BATCH_STEP).length);
    host.meta = { ...host.meta, steps: { ...host.meta.steps, [stepId]: stepSpec(req, req.cwd ?? process.cwd()) } };
    const killWaitSeconds = req.killWaitSeconds ?? host.meta.killWaitSeconds;
    this.startStep(host, stepId, req.ntasks, placement, {
      killOnBadExit: req.killOnBadExit,
      noKill: req.noKill,
      waitMs: req.waitSeconds !== undefined ? req.waitSeconds * 1000 : undefined,
      timeLimitMs: req.timeLimitSeconds !== undefined ? req.timeLimitSeconds * 1000 : undefined,
      killWaitMs: killWaitSeconds * 1000,
      nodeTimeoutMs: this.cfg.nodeTimeoutSeconds * 1000,
    });
    await this.settle();
    this.changed = host;
    this.log.info({ job: host.id, step: stepId, ntasks: req.ntasks }, "step.submitted");
    return { job: host.id, step: Number(stepId), placement, state: "RUNNING" };
  }

  /** Slots that started jobs hold, by node incarnation (`node/epoch`). */
  private allocatedSlots(): Map<string, number> {
    const used = new Map<string, number>();
    for (const host of this.jobs.values()) {
      for (const p of host.meta.alloc ?? []) {
        const key = `${p.node}/${p.epoch}`;
        used.set(key, (used.get(key) ?? 0) + IdSet.parse(p.ranks).size);
      }
    }
    // A job that could not be restored may still have tasks running: its slots stay taken.
    this.addDamagedSlots(used);
    return used;
  }

  /** Online nodes with their free slots (total slots minus what started jobs hold). */
  private candidates(): CandidateNode[] {
    const used = this.allocatedSlots();
    return [...this.nodes.entries()]
      .filter(([, a]) => a.getSnapshot().value === "online")
      .map(([node, a]) => {
        const c = a.getSnapshot().context;
        return { node, epoch: c.epoch!, total: c.slots, slots: Math.max(0, c.slots - (used.get(`${node}/${c.epoch}`) ?? 0)) };
      });
  }

  /** Starts waiting jobs first come, first served: the oldest waiting job blocks the ones behind it. */
  private schedule(): void {
    while (this.pending.length) {
      const host = this.jobs.get(this.pending[0]!);
      if (!host || host.ended || host.meta.alloc) {
        this.pending.shift();
        continue;
      }
      const alloc = placeTasks(host.meta.request, this.candidates());
      if (!alloc) return;
      this.pending.shift();
      this.startJob(host, alloc);
    }
  }

  private startJob(host: JobHost, alloc: Placement[]): void {
    host.meta = { ...host.meta, alloc };
    const p = host.meta.policies;
    const policies = {
      killOnBadExit: p.killOnBadExit,
      noKill: p.noKill,
      waitMs: p.waitSeconds !== undefined ? p.waitSeconds * 1000 : undefined,
      timeLimitMs: p.timeLimitSeconds !== undefined ? p.timeLimitSeconds * 1000 : undefined,
      killWaitMs: host.meta.killWaitSeconds * 1000,
      nodeTimeoutMs: this.cfg.nodeTimeoutSeconds * 1000,
    };
    if (host.meta.kind === "batch") {
      const first = alloc[0]!;
      this.startStep(host, BATCH_STEP, 1, [{ node: first.node, epoch: first.epoch, ranks: "0" }], policies);
    } else {
      this.startStep(host, "0", host.meta.request.ntasks, alloc, policies);
    }
  }

  private startStep(host: JobHost, stepId: string, ntasks: number, placement: readonly Placement[], policies: StepPolicies): void {
    const now = steadyNow();
    host.addStep(stepId, { job: host.id, step: stepId, ntasks, policies });
    host.sendJob({ type: "STEP_STARTED", step: stepId, at: now });
    host.sendStep(stepId, { type: "LAUNCH", placement, at: now });
    this.touched.add(host.id);
  }

  private jobFor(user: string, jobId: string): JobHost {
    const host = this.jobs.get(jobId) ?? this.finished.get(jobId);
    if (!host) {
      const damaged = this.damaged.get(jobId);
      if (damaged !== undefined) throw new MusterError("UNAVAILABLE", damagedMessage(this.subjects.buckets.snapshots, jobId, damaged.reason));
      throw new MusterError("UNKNOWN_JOB", `no job ${jobId}`);
    }
    if (host.meta.user !== user && !this.isOperator(user)) throw new MusterError("FORBIDDEN", `job ${jobId} belongs to ${host.meta.user}, not ${user}`);
    return host;
  }

  private stepsOf(host: JobHost, step: number | string | undefined): string[] {
    if (step === undefined) return [...host.steps.keys()];
    const id = String(step);
    if (!host.steps.has(id)) throw new MusterError("UNKNOWN_STEP", `job ${host.id} has no step ${id}`);
    return [id];
  }

  private async kill(user: string, req: KillRequest): Promise<unknown> {
    const host = this.jobFor(user, req.job);
    const steps = this.stepsOf(host, req.step);
    if (host.ended) return { job: host.id, state: this.jobView(host).state, alreadyEnded: true };
    const now = steadyNow();
    if (req.signal !== undefined) {
      for (const s of steps) host.sendStep(s, { type: "SIGNAL", signal: req.signal, at: now });
    } else {
      const killWaitMs = req.killWaitSeconds === undefined ? undefined : req.killWaitSeconds * 1000;
      if (req.step === undefined) host.sendJob({ type: "CANCEL", by: user, at: now, killWaitMs });
      else for (const s of steps) host.sendStep(s, { type: "CANCEL", by: user, at: now, killWaitMs });
    }
    this.touched.add(host.id);
    await this.settle();
    this.changed = host;
    return { job: host.id, steps };
  }

  private async signal(user: string, req: SignalRequest): Promise<unknown> {
    const host = this.jobFor(user, req.job);
    const steps = this.stepsOf(host, req.step);
    if (host.ended) throw new MusterError("NOT_RUNNING", `job ${host.id} has ended`);
    for (const s of steps) host.sendStep(s, { type: "SIGNAL", signal: req.signal, at: steadyNow() });
    this.touched.add(host.id);
    await this.settle();
    this.changed = host;
    return { job: host.id, steps };
  }

  private async query(user: string, req: QueryRequest): Promise<unknown> {
    switch (req.what) {
      case "job":
        return this.jobView(this.jobFor(user, req.job!));
      case "jobs":
        return [...this.jobs.values()].filter((h) => req.filters?.user === undefined || h.meta.user === req.filters.user).map((h) => this.jobView(h, false));
      case "history":
        return [...this.finished.values()].filter((h) => req.filters?.user === undefined || h.meta.user === req.filters.user).map((h) => this.jobView(h, false));
      case "nodes": {
        const running = this.liveTasksByNode();
        const allocated = this.allocatedSlots();
        return [...this.nodes.values()].map((a) => this.nodeView(a, running, allocated)).sort((a, b) => compareNodeNames(a.node, b.node));
      }
    }
  }

  // ---- views -------------------------------------------------------------------------------

  private jobView(host: JobHost, withTasks = true): JobView {
    const snap = host.job.getSnapshot();
    const ctx = snap.context;
    const end = ctx.end;
    const steps: StepView[] = [...host.steps.entries()].map(([id, a]) => this.stepView(id, a.getSnapshot(), withTasks, host.meta.steps[id]));
    const mainId = host.meta.kind === "batch" ? BATCH_STEP : "0";
    const main = steps.find((s) => s.stepId === mainId);
    const spec = host.meta.steps[mainId];
    const state = host.runState();
    const started = ctx.startedAt;
    return {
      jobId: host.id,
      name: host.meta.name,
      user: host.meta.user,
      kind: host.meta.kind,
      state,
      reason: end?.reason ?? (state === "PENDING" && !host.meta.alloc ? "Resources" : "None"),
      exitCode: end?.exitCode ?? main?.exitCode ?? "0:0",
      derivedExitCode: end?.derivedExitCode ?? "0:0",
      failedNodes: [...(end?.failedNodes ?? [])],
      ntasks: host.meta.request.ntasks,
      nodes: (host.meta.alloc ?? []).map((p) => p.node),
      submittedAt: ctx.submittedAt,
      startedAt: ctx.startedAt,
      endedAt: end?.at,
      ...(spec ? { argv: [...spec.argv], command: spec.argv.join(" "), workDir: spec.cwd } : {}),
      ...(spec?.batch ? { stdOut: spec.batch.output, stdErr: spec.batch.error ?? spec.batch.output } : {}),
      timeLimitSeconds: host.meta.policies.timeLimitSeconds,
      runTimeSeconds: started === undefined ? 0 : Math.max(0, Math.floor(((end?.at ?? steadyNow()) - started) / 1000)),
      steps,
    };
  }

  private stepView(stepId: string, snap: { value: unknown; context: StepContext }, withTasks: boolean, spec: StepSpec | undefined): StepView {
    const ctx = snap.context;
    const picture = stepPicture(ctx);
    const includeTasks = withTasks && ctx.ntasks <= VIEW_TASK_LIMIT;
    return {
      stepId,
      state: runStateOf(snap.value, ctx.end),
      reason: ctx.end?.reason ?? "None",
      exitCode: ctx.end?.exitCode ?? "0:0",
      ntasks: ctx.ntasks,
      failedNodes: [...(ctx.end?.failedNodes ?? [])],
      ...encodeTaskPicture(picture, ctx.ntasks),
      firstFailure: ctx.firstFailure,
      launchedAt: ctx.launchedAt,
      endedAt: ctx.end?.at,
      ...(spec
        ? { name: stepId === BATCH_STEP ? BATCH_STEP : spec.argv[0]!.split("/").pop() || spec.argv[0]!, argv: [...spec.argv], command: spec.argv.join(" "), workDir: spec.cwd }
        : {}),
      timeLimitSeconds: ctx.policies.timeLimitMs === undefined ? undefined : ctx.policies.timeLimitMs / 1000,
      tasks: includeTasks
        ? [...allTasks(ctx.tasks)].map((t) => ({
            rank: t.context.rank,
            node: t.context.node ?? "unplaced",
            state: t.state,
            exitCode: t.context.outcome ? formatExitCode(outcomeExitCode(t.context.outcome)) : undefined,
            outcome: t.context.outcome,
            pid: t.context.pid,
            ...(t.context.outputLostBytes ? { outputLostBytes: t.context.outputLostBytes } : {}),
            killedByRuntime: t.context.killedByRuntime,
            startedAt: t.context.startedAt,
            endedAt: t.context.endedAt,
          }))
        : [],
      tasksOmitted: !includeTasks,
    };
  }

  /** Live tasks (launching, running, stopping) per node incarnation (`node/epoch`), in one pass over every live step. */
  private liveTasksByNode(): Map<string, number> {
    const counts = new Map<string, number>();
    // What a job that could not be restored held counts as running.
    this.addDamagedSlots(counts);
    for (const host of this.jobs.values()) {
      for (const step of host.steps.values()) {
        for (const t of allTasks(step.getSnapshot().context.tasks)) {
          if (t.state !== "running" && t.state !== "launching" && t.state !== "stopping") continue;
          const key = `${t.context.node}/${t.context.epoch}`;
          counts.set(key, (counts.get(key) ?? 0) + 1);
        }
      }
    }
    return counts;
  }

  private nodeView(a: NodeActor, live: ReadonlyMap<string, number>, allocated: ReadonlyMap<string, number>, paused = this.livenessPaused()): NodeView {
    const snap = a.getSnapshot();
    const c = snap.context;
    const running = live.get(`${c.node}/${c.epoch}`) ?? 0;
    const held = allocated.get(`${c.node}/${c.epoch}`) ?? 0;
    return {
      node: c.node,
      state: snap.value as NodeStateName,
      reason: c.reason,
      epoch: c.epoch,
      slots: c.slots,
      since: c.since,
      lastSeenAt: c.lastSeenAt,
      runningTasks: running,
      allocatedSlots: held,
      idleSlots: snap.value === "online" ? Math.max(0, c.slots - held) : 0,
      ...(paused ? { livenessPaused: paused } : {}),
    };
  }

  // ---- nodes -------------------------------------------------------------------------------

  private subscribeNodes(): () => void {
    const n = this.subjects.node;
    const handlers: [string, (m: Msg) => void][] = [
      [n.helloAll, (m) => this.onNodeMessage(m, HelloSchema)],
      [n.hbAll, (m) => this.onNodeMessage(m, HeartbeatSchema)],
      [n.drainingAll, (m) => this.onNodeMessage(m, DrainingSchema)],
      [n.byeAll, (m) => this.onNodeMessage(m, ByeSchema)],
    ];
    const subs = handlers.map(([subject, handle]) => {
      const sub = this.nc.subscribe(subject);
      this.subs.push(sub);
      return { sub, handle };
    });
    // Messages wait in the subscriptions until this is called.
    return () => {
      for (const { sub, handle } of subs) {
        void (async () => {
          for await (const m of sub) handle(m);
        })();
      }
    };
  }

  /**
   * The fast path of node-loss detection: with system-account credentials, NATS's DISCONNECT
   * advisory for an agent's connection makes its node suspect at once, and lost unless it says
   * hello again within the disconnect grace. Heartbeats stay the truth without it.
   */
  private async subscribeAdvisories(): Promise<void> {
    const sysCfg = systemAccountConfig(this.cfg);
    if (!sysCfg) return;
    this.sys = await connectNats(sysCfg, { name: "muster-supervisor-sys" });
    const sub = this.sys.subscribe("$SYS.ACCOUNT.*.DISCONNECT");
    this.subs.push(sub);
    this.log.info("supervisor.advisories");
    void (async () => {
      for await (const m of sub) {
        let name: unknown;
        try {
          name = (JSON.parse(new TextDecoder().decode(m.data)) as { client?: { name?: unknown } }).client?.name;
        } catch {
          continue;
        }
        const prefix = `muster-agent:${this.subjects.prefix}:`;
        const node = typeof name === "string" && name.startsWith(prefix) ? name.slice(prefix.length) : undefined;
        if (!node || !this.nodes.has(node)) continue;
        const at = steadyNow();
        void this.serial(async () => {
          this.nodeEvent(node, { type: "DISCONNECTED", at });
          await this.settle();
        });
      }
    })();
  }

  private onNodeMessage(m: Msg, schema: typeof HelloSchema | typeof HeartbeatSchema | typeof DrainingSchema | typeof ByeSchema): void {
    const parsed = parseMessage(schema, m.data, m.subject);
    const subj = this.subjects.parse(m.subject);
    if (!parsed.ok || !subj || subj.kind !== "node" || subj.node !== parsed.value.node) {
      // A field that contradicts the subject is FORBIDDEN (docs/protocol.md, error codes).
      const code: ErrorCode = parsed.ok ? (subj?.kind === "node" ? "FORBIDDEN" : "BAD_REQUEST") : parsed.code;
      const message = parsed.ok ? `${m.subject}: ${parsed.value.type} for node ${parsed.value.node} on another node's subject` : parsed.message;
      this.log.warn({ subject: m.subject, code, reason: message }, "node.message_rejected");
      this.deadLetter(m.subject, code, message, m.data);
      return;
    }
    const msg = parsed.value;
    const at = steadyNow();
    if (msg.type === "hello" || msg.type === "heartbeat") this.heard.set(msg.node, { epoch: msg.epoch, at });
    const event: NodeEvent =
      msg.type === "hello"
        ? { type: "HELLO", epoch: msg.epoch, slots: msg.slots, at }
        : msg.type === "heartbeat"
          ? // A heartbeat from a node never heard of (its hello lost or replaced) introduces it.
            !this.nodes.has(msg.node) && msg.slots !== undefined
            ? { type: "HELLO", epoch: msg.epoch, slots: msg.slots, at }
            : { type: "HEARTBEAT", epoch: msg.epoch, at }
          : msg.type === "draining"
            ? { type: "DRAINING", epoch: msg.epoch, at }
            : { type: "BYE", epoch: msg.epoch, at };
    void this.serial(async () => {
      this.nodeEvent(msg.node, event);
      await this.settle();
    });
  }

  private nodeEvent(node: string, event: NodeEvent): void {
    let actor = this.nodes.get(node);
    if (!actor) {
      if (event.type !== "HELLO") return;
      const provided = nodeMachine.provide({
        actions: {
          nodeLost: (_: unknown, params: Extract<NodeEffect, { type: "nodeLost" }>["params"]) => this.nodeEffects.push({ type: "nodeLost", params }),
          nodeOffline: (_: unknown, params: Extract<NodeEffect, { type: "nodeOffline" }>["params"]) => this.nodeEffects.push({ type: "nodeOffline", params }),
          reportStale: (_: unknown, params: Extract<NodeEffect, { type: "reportStale" }>["params"]) => this.nodeEffects.push({ type: "reportStale", params }),
          fence: (_: unknown, params: Extract<NodeEffect, { type: "fence" }>["params"]) => this.nodeEffects.push({ type: "fence", params }),
        },
      });
      actor = createActor(provided, {
        input: {
          node,
          timings: {
            heartbeatIntervalMs: this.cfg.heartbeatIntervalSeconds * 1000,
            nodeTimeoutMs: this.cfg.nodeTimeoutSeconds * 1000,
            disconnectGraceMs: this.cfg.disconnectGraceSeconds * 1000,
          },
        },
      });
      actor.start();
      this.nodes.set(node, actor);
    }
    const before = actor.getSnapshot().value;
    actor.send(event);
    const after = actor.getSnapshot().value;
    if (before !== after) this.log.info({ node, from: before, to: after, reason: actor.getSnapshot().context.reason }, "node.state");
  }

  // ---- task events ---------------------------------------------------------------------------

  private async consumeEvents(jsm: Awaited<ReturnType<typeof jetstreamManager>>): Promise<void> {
    const stream = this.subjects.streams.events.name;
    const durable = { durable_name: CONSUMER, ack_policy: AckPolicy.Explicit, max_ack_pending: 20_000, ack_wait: 30_000_000_000 };
    const info = await jsm.consumers.info(stream, CONSUMER).catch((err: Error) => {
      if (!/not found/i.test(err.message)) throw err;
      return undefined;
    });
    // (Adding an existing durable again fails when its deliver policy differs, as after a restart below.)
    if (!info) {
      await jsm.consumers.add(stream, { ...durable, deliver_policy: DeliverPolicy.All }).catch(async (err: Error) => {
        if (!/already in use|exists/i.test(err.message)) throw err;
      });
    } else if (info.num_ack_pending > 0) {
      // Events a previous incarnation took but never acknowledged (it died before persisting them) would
      // come back only after ack_wait, behind newer events, and be skipped as at or below their job's
      // sequence: lost. Restart the durable right after its ack floor so they come back now, in order.
      this.log.info({ ackFloor: info.ack_floor.stream_seq, unacked: info.num_ack_pending }, "events.redeliver_unacked");
      await jsm.consumers.delete(stream, CONSUMER);
      await jsm.consumers.add(stream, { ...durable, deliver_policy: DeliverPolicy.StartSequence, opt_start_seq: info.ack_floor.stream_seq + 1 });
    }
    const consumer = await this.js.consumers.get(stream, CONSUMER);
    const messages = await consumer.consume({ max_messages: 2000 });
    this.stopConsumer = () => void messages.close();
    let batch: JsMsg[] = [];
    let scheduled = false;
    for await (const m of messages) {
      batch.push(m);
      if (!scheduled) {
        scheduled = true;
        setImmediate(() => {
          const taken = batch;
          batch = [];
          scheduled = false;
          void this.serial(() => this.processEvents(taken));
        });
      }
    }
  }

  private async processEvents(batch: JsMsg[]): Promise<void> {
    const byStep = new Map<JobHost, Map<string, { rank: number; event: TaskEvent }[]>>();
    const now = steadyNow();
    for (const m of batch) {
      const parsed = parseMessage(TaskEventSchema, m.data, m.subject);
      const subj = this.subjects.parse(m.subject);
      if (!parsed.ok) {
        this.rejectEvent(m, parsed.code, parsed.message);
        continue;
      }
      const ev = parsed.value;
      if (!subj || subj.kind !== "evt") {
        this.rejectEvent(m, "BAD_REQUEST", `${m.subject}: not a task event subject (<p>.evt.<node>.<job>.<step>.<task>)`);
        continue;
      }
      if (subj.node !== ev.node || subj.job !== ev.job || String(subj.step) !== String(ev.step) || subj.task !== ev.rank) {
        // A field that contradicts the subject is FORBIDDEN (docs/protocol.md, error codes).
        this.rejectEvent(m, "FORBIDDEN", `${m.subject}: the event's node ${ev.node}, job ${ev.job}, step ${ev.step}, rank ${ev.rank} do not match its subject`);
        continue;
      }
      const host = this.jobs.get(ev.job);
      if (!host) {
        if (this.finished.has(ev.job)) {
          this.log.debug({ job: ev.job, rank: ev.rank }, "event.after_job_end");
          m.ack();
        } else if (this.damaged.has(ev.job)) {
          this.rejectEvent(m, "UNAVAILABLE", `${damagedMessage(this.subjects.buckets.snapshots, ev.job, this.damaged.get(ev.job)!.reason)}; this event is not applied`);
        } else this.rejectEvent(m, "UNKNOWN_JOB", `no job ${ev.job}`);
        continue;
      }
      if (m.seq <= host.seq) {
        // Delivered again (after a reconnect or a redelivery): applied already; acknowledged once saved.
        if (m.seq <= host.savedSeq) m.ack();
        else host.unacked.push(m);
        continue;
      }
      host.seq = m.seq;
      const stepId = String(ev.step);
      if (!host.steps.has(stepId)) {
        this.rejectEvent(m, "UNKNOWN_STEP", `job ${ev.job} has no step ${stepId}`);
        continue;
      }
      // The agent's clock says when; an agent clock ahead of ours (stepped, skewed) cannot date an
      // event after it arrived, nor push the --wait deadline that runs from a task's end.
      const at = Math.min(ev.at, now);
      const event: TaskEvent =
        ev.type === "task.started"
          ? { type: "STARTED", epoch: ev.epoch, pid: ev.pid, at }
          : { type: "ENDED", epoch: ev.epoch, outcome: ev.outcome, pid: ev.pid, at, ...(ev.outputLostBytes ? { outputLostBytes: ev.outputLostBytes } : {}) };
      let steps = byStep.get(host);
      if (!steps) byStep.set(host, (steps = new Map()));
      let list = steps.get(stepId);
      if (!list) steps.set(stepId, (list = []));
      list.push({ rank: ev.rank, event });
      host.unacked.push(m);
      this.touched.add(host.id);
    }
    // Failures first: a step whose batch holds a task that ended badly takes it (with the events of
    // that task before it) ahead of the batch's ordinary events and ahead of other steps' batches.
    const work: { host: JobHost; stepId: string; events: { rank: number; event: TaskEvent }[]; urgent: boolean }[] = [];
    for (const [host, steps] of byStep) {
      for (const [stepId, events] of steps) {
        const ordered = failuresFirst(events);
        work.push({ host, stepId, events: ordered ?? events, urgent: ordered !== undefined });
      }
    }
    for (const urgent of [true, false]) {
      for (const w of work) {
        if (w.urgent !== urgent) continue;
        try {
          w.host.sendStep(w.stepId, { type: "TASKS", events: w.events });
        } catch (err) {
          this.breakJob(w.host, `step ${w.stepId} failed on a batch of events: ${(err as Error).message}`);
        }
      }
    }
    for (const m of batch) if (m.seq > this.eventsSeq) this.eventsSeq = m.seq;
    if (this.byes.length) this.releaseByes(now);
    await this.settle({ coalesce: true });
    this.log.debug({ events: batch.length, ms: steadyNow() - now }, "events.batch");
  }

  private rejectEvent(m: JsMsg, code: ErrorCode, message: string): void {
    this.log.warn({ subject: m.subject, seq: m.seq, code, reason: message }, "event.rejected");
    this.deadLetter(m.subject, code, message, m.data);
    m.term();
  }

  private deadLetter(subject: string, code: ErrorCode, message: string, bytes: Uint8Array): void {
    const record = createDlqRecord({ subject, reason: code, message, bytes, receivedAt: steadyNow() });
    void this.js.publish(this.subjects.dlq.of("supervisor"), encodeMessage(record)).catch((err: Error) => this.log.error({ err }, "dlq.publish_failed"));
  }

  // ---- effects, state publication, persistence ----------------------------------------------

  /**
   * Runs the effects the machines asked for until none are left, then queues, on each touched job's
   * own I/O chain (`JobHost.io`), its state messages, notifications and summaries, its save and then
   * its commands to agents, in that order. Notifications and summaries are stored before the save, so
   * a crash can repeat them (de-duplicated by message id) but never lose them; commands go out only
   * once the job that asked for them is saved. With `coalesce` (task events), a touched job is saved
   * only when it ended, asked for an effect, or waited `saveIntervalSeconds` (MUSTER_SAVE_INTERVAL,
   * 0.2 s) since its first unsaved change; its events are acknowledged once a save covers them.
   * Everything else (control requests, node events, deadlines) saves at once.
   */
  private async settle(opts: { coalesce?: boolean } = {}): Promise<void> {
    const commands: { host: JobHost; send: () => Promise<void> }[] = [];
    if (this.pending.length) this.schedule();
    for (let guard = 0; guard < 10_000 && (this.effects.length || this.nodeEffects.length); guard++) {
      const ne = this.nodeEffects.shift();
      if (ne) {
        await this.applyNodeEffect(ne);
        continue;
      }
      const e = this.effects.shift()!;
      this.touched.add(e.job);
      if (e.source === "job" || e.effect.type !== "reportRejected") this.urgent.add(e.job);
      this.applyEffect(e, commands);
      // A first failure is the one thing every watcher waits for: let its publish reach the socket
      // (nats.js writes at the next microtask checkpoint) before the rest of the batch is settled.
      if (e.source === "step" && e.effect.type === "notifyFirstFailure") await new Promise((r) => setImmediate(r));
    }
    const now = steadyNow();
    for (const jobId of this.touched) {
      const host = this.jobs.get(jobId);
      if (!host) continue;
      this.publishStates(host);
      host.dirtySince ??= now;
      if (!opts.coalesce || this.urgent.has(jobId) || host.ended) host.saveNow = true;
      this.dirty.add(host);
    }
    this.touched.clear();
    this.urgent.clear();
    this.flush(now, false);
    for (const c of commands) {
      const send = () => void c.send().catch((err: Error) => this.log.error({ err }, "command.failed"));
      // Commands go out only once the job that asked for them is stored.
      this.io(c.host, "command", () => (c.host.saveFailed || c.host.broken ? void c.host.deferred.push(send) : send()));
    }
  }

  /** Stops a job's saves and acknowledgements (its events stay in the stream for a restarted supervisor). */
  private breakJob(host: JobHost, why: string): void {
    if (host.broken) return;
    host.broken = why;
    this.log.error({ job: host.id, reason: why }, "job.broken: nothing more is saved or acknowledged for it; restart the supervisor to replay its events");
  }

  /** Appends a step to a job's I/O chain; a failing step is logged and the chain goes on. */
  private io(host: JobHost, what: string, fn: () => Promise<void> | void): void {
    host.io = host.io.then(fn).catch((err: unknown) => this.log.error({ err, job: host.id, what }, "job.io_failed"));
  }

  /**
   * Queues a save of every changed job that is due (all of them with `all`). When a save is stored,
   * the task events it covers are acknowledged, held-back commands go out, and a job that ended
   * leaves the live set. A failed save keeps the job dirty (retried at the next tick) and its events
   * unacknowledged; a broken job is not saved at all.
   */
  private flush(now: number, all: boolean): void {
    for (const host of this.dirty) {
      if (!all && !host.saveNow && now - (host.dirtySince ?? now) < this.cfg.saveIntervalSeconds * 1000) continue;
      host.dirtySince = undefined;
      host.saveNow = false;
      this.dirty.delete(host);
      if (host.broken) continue;
      // Snapshots are immutable (copy-on-write task tables), so what is taken now is what is written.
      const { job, steps } = host.persisted();
      const seq = host.seq;
      const meta = host.meta;
      this.io(host, "save", async () => {
        if (host.broken) return;
        const t0 = steadyNow();
        try {
          await this.store.save(host.id, meta, seq, job, steps);
        } catch (err) {
          host.saveFailed = true;
          host.dirtySince ??= steadyNow();
          host.saveNow = true;
          this.dirty.add(host);
          throw err;
        }
        host.saveFailed = false;
        if (seq > host.savedSeq) host.savedSeq = seq;
        const covered = host.unacked.filter((m) => m.seq <= seq);
        if (covered.length) {
          host.unacked = host.unacked.filter((m) => m.seq > seq);
          for (const m of covered) m.ack();
        }
        for (const send of host.deferred.splice(0)) send();
        this.log.debug({ job: host.id, seq, ms: steadyNow() - t0, events: covered.length }, "job.saved");
        if (host.ended) void this.serial(() => this.retire(host));
      });
    }
  }

  /** A job that ended and whose last change is stored leaves the live set; its slots may start waiting jobs. */
  private async retire(host: JobHost): Promise<void> {
    if (this.jobs.get(host.id) !== host || this.dirty.has(host) || host.unacked.length) return;
    this.jobs.delete(host.id);
    this.finished.set(host.id, host);
    if (this.pending.length) {
      this.schedule();
      if (this.touched.size) await this.settle();
    }
  }

  private applyEffect(e: HostedEffect, commands: { host: JobHost; send: () => Promise<void> }[]): void {
    const host = this.jobs.get(e.job);
    if (!host) return;
    if (e.source === "job") {
      const eff = e.effect;
      if (eff.type === "cancelSteps") {
        const steps = eff.params.steps.length ? eff.params.steps : [...host.steps.keys()];
        for (const s of steps) host.sendStep(s, { type: "CANCEL", by: eff.params.by, at: eff.params.at, killWaitMs: eff.params.killWaitMs });
      } else {
        this.log.info({ job: e.job, ...eff.params.end }, "job.ended");
      }
      return;
    }
    const eff = e.effect;
    const log = this.log.child({ job: e.job, step: e.step });
    switch (eff.type) {
      case "launchTasks":
        commands.push({ host, send: () => this.launch(host, e.step, eff.params.placement) });
        break;
      case "signalTasks":
        // Only a batch step's agent writes the stop into a file (the job's output); `muster run` prints it from the step's state.
        commands.push({ host, send: () => this.signalTargets(host, e.step, eff.params.signal, eff.params.cont, eff.params.targets, e.step === BATCH_STEP ? eff.params.notice : undefined) });
        break;
      case "notifyFirstFailure": {
        const p = eff.params;
        this.publishFirst(host, this.subjects.job.exitCodes(e.job, wireStep(e.step)), `${e.job}.${e.step}.first_failure`, {
          type: "step.first_failure",
          v: 1,
          job: e.job,
          step: wireStep(e.step),
          trigger: p.trigger,
          publishedAt: steadyNow(),
          ntasks: p.ntasks,
          ...encodeTaskPicture(p, p.ntasks),
        });
        log.info({ rank: p.trigger.rank, node: p.trigger.node, outcome: p.trigger.outcome }, "step.first_failure");
        break;
      }
      case "reportRejected":
        log.warn({ ...eff.params }, "event.ignored");
        if (eff.params.reason === "stale_epoch" || eff.params.reason === "unknown_rank") {
          this.deadLetter(this.subjects.evt.ofJob(e.job), eff.params.reason === "unknown_rank" ? "BAD_REQUEST" : "STALE_EPOCH", `${eff.params.eventType} for rank ${eff.params.rank}: ${eff.params.reason}`, new Uint8Array());
        }
        break;
      case "killUnconfirmed":
        log.warn({ ...eff.params }, "kill.unconfirmed");
        for (const node of eff.params.nodes) this.nodeEvent(node, { type: "KILL_UNCONFIRMED", at: steadyNow() });
        break;
      case "stepEnded": {
        const p = eff.params;
        this.publish(host, this.subjects.job.exitCodes(e.job, wireStep(e.step)), `${e.job}.${e.step}.summary`, {
          type: "step.summary",
          v: 1,
          job: e.job,
          step: wireStep(e.step),
          trigger: p.firstFailure,
          publishedAt: steadyNow(),
          ntasks: p.ntasks,
          ...encodeTaskPicture(p, p.ntasks),
          state: p.end.state,
          reason: p.end.reason,
          exitCode: p.end.exitCode,
          failedNode: p.end.failedNodes[0],
        });
        log.info({ state: p.end.state, reason: p.end.reason, exitCode: p.end.exitCode }, "step.ended");
        try {
          host.sendJob({ type: "STEP_ENDED", step: e.step, end: p.end });
        } catch (err) {
          // As for a step machine that throws: the job stops being saved, so a restart replays it.
          this.breakJob(host, `the job machine failed on step ${e.step}'s end: ${(err as Error).message}`);
        }
        break;
      }
    }
  }

  private async applyNodeEffect(e: NodeEffect): Promise<void> {
    switch (e.type) {
      case "fence":
        this.fence(e.params.node, e.params.epoch, e.params.reason);
        break;
      case "reportStale":
        this.log.warn({ ...e.params }, "node.stale_event");
        return;
      case "nodeLost":
        this.log.warn({ ...e.params }, "node.lost");
        this.loseTasks(e.params.node, e.params.epoch, e.params.at);
        return;
      case "nodeOffline": {
        this.log.warn({ ...e.params }, "node.offline");
        // The agent stored its tasks' task.ended before its bye (one ordered outbox), but the bye comes
        // on a core subscription and can overtake them on the durable consumer: the node's remaining
        // tasks are lost only once the events stored before the bye were processed (or after 5 s).
        const untilSeq = await this.jsm.streams
          .info(this.subjects.streams.events.name)
          .then((i) => i.state.last_seq)
          .catch(() => 0);
        if (untilSeq > this.eventsSeq) this.byes.push({ ...e.params, untilSeq, deadline: steadyNow() + BYE_EVENTS_WAIT_MS });
        else this.loseTasks(e.params.node, e.params.epoch, e.params.at);
      }
    }
  }

  /** Applies the byes whose preceding task events were processed, or that waited long enough. */
  private releaseByes(now: number): void {
    for (let i = this.byes.length - 1; i >= 0; i--) {
      const b = this.byes[i]!;
      if (this.eventsSeq < b.untilSeq && now < b.deadline) continue;
      this.byes.splice(i, 1);
      this.loseTasks(b.node, b.epoch, b.at);
    }
  }

  /** When each lost epoch was last told it is fenced (`node/epoch` → steady ms). */
  private readonly fenced = new Map<string, number>();

  /**
   * A lost epoch is heard again (its heartbeats crossed a healed partition): its tasks were already
   * reported node_lost, so tell its agent to kill them and come back with a new epoch (`cmd.fence`),
   * at most once per heartbeat interval, outside the serial queue (the agent's ack is not awaited).
   */
  private fence(node: string, epoch: string, reason: string): void {
    const key = `${node}/${epoch}`;
    const now = steadyNow();
    const last = this.fenced.get(key);
    if (last !== undefined && now - last < Math.max(500, this.cfg.heartbeatIntervalSeconds * 1000)) return;
    if (this.fenced.size > 1000) this.fenced.clear();
    this.fenced.set(key, now);
    this.log.warn({ node, epoch, reason }, "node.fence");
    const cmd: Message = { type: "cmd.fence", v: 1, node, epoch, reason };
    void this.nc
      .request(this.subjects.node.cmd(node), encodeMessage(cmd), { timeout: 3000 })
      .catch((err: Error) => this.log.warn({ node, epoch, err: err.message }, "node.fence_unanswered"));
  }

  /** The live tasks of a node incarnation that is gone become node_lost (or killed, unconfirmed, when being stopped). */
  private loseTasks(node: string, epoch: string, at: number): void {
    for (const host of this.jobs.values()) {
      for (const [stepId, actor] of host.steps) {
        if (actor.getSnapshot().context.placement.some((p) => p.node === node && p.epoch === epoch)) {
          host.sendStep(stepId, { type: "NODE_LOST", node, epoch, at });
          this.touched.add(host.id);
        }
      }
    }
  }

  /** Publishes a state message for every job and step whose Slurm state changed. */
  private publishStates(host: JobHost): void {
    for (const [stepId, actor] of host.steps) {
      const snap = actor.getSnapshot();
      const state = runStateOf(snap.value, snap.context.end);
      if (host.published.get(stepId) === state) continue;
      host.published.set(stepId, state);
      this.publish(host, this.subjects.job.state(host.id), `${host.id}.${stepId}.${state}`, {
        type: "job.state",
        v: 1,
        job: host.id,
        step: wireStep(stepId),
        state,
        reason: snap.context.end?.reason ?? "None",
        exitCode: snap.context.end?.exitCode ?? "0:0",
        failedNode: snap.context.end?.failedNodes[0],
        stopping: state === "COMPLETING" ? stepStopNotice(snap.context) : undefined,
        at: snap.context.end?.at ?? steadyNow(),
      });
    }
    const jsnap = host.job.getSnapshot();
    const state: RunState = host.runState();
    if (host.published.get("job") !== state) {
      host.published.set("job", state);
      const end = jsnap.context.end;
      this.publish(host, this.subjects.job.state(host.id), `${host.id}.job.${state}`, {
        type: "job.state",
        v: 1,
        job: host.id,
        state,
        reason: end?.reason ?? (state === "PENDING" && !host.meta.alloc ? "Resources" : "None"),
        exitCode: end?.exitCode ?? "0:0",
        derivedExitCode: end?.derivedExitCode ?? "0:0",
        failedNode: end?.failedNodes[0],
        at: end?.at ?? steadyNow(),
      });
    }
  }

  /**
   * Publishes a first-failure notification at once, ahead of the job's I/O already queued (a save in
   * flight was taken before the failure, so it may land after the notification); everything queued
   * later on the job's chain, its summary and the save covering the failure, waits for it.
   */
  private publishFirst(host: JobHost, subject: string, msgID: string, message: Message): void {
    const sent = this.publishOnce(subject, msgID, message).catch((err: unknown) => this.breakJob(host, `${msgID} could not be published: ${(err as Error).message}`));
    host.io = Promise.all([host.io, sent]).then(() => undefined);
  }

  /** Queues a message on the job's I/O chain (built now, published in order with the job's other I/O). */
  private publish(host: JobHost, subject: string, msgID: string, message: Message): void {
    this.io(host, "publish", () => this.publishOnce(subject, msgID, message).catch((err: unknown) => this.breakJob(host, `${msgID} could not be published: ${(err as Error).message}`)));
  }

  /**
   * Publishes to JetStream with a message id; retries until acknowledged (the stream de-duplicates).
   * A message over the payload limit can never be sent: it is logged and dead-lettered (its head),
   * and the caller goes on, so one oversized message never stalls the events behind it.
   */
  private async publishOnce(subject: string, msgID: string, message: Message): Promise<void> {
    let data: Uint8Array;
    try {
      data = encodeMessage(message);
    } catch (err) {
      const text = (err as Error).message;
      this.log.error({ subject, msgID, err: text }, "publish.too_large");
      this.deadLetter(subject, "PAYLOAD_TOO_LARGE", text, new TextEncoder().encode(JSON.stringify(message).slice(0, 4096)));
      return;
    }
    for (let attempt = 0; ; attempt++) {
      try {
        await this.js.publish(subject, data, { msgID, timeout: 5000 });
        return;
      } catch (err) {
        if (this.stopping || attempt > 100) throw err;
        this.log.warn({ err, subject, attempt }, "publish.retry");
        await new Promise((r) => setTimeout(r, Math.min(2000, 100 * 2 ** attempt)));
      }
    }
  }

  // ---- commands to agents -------------------------------------------------------------------

  private async launch(host: JobHost, stepId: string, placement: readonly Placement[]): Promise<void> {
    const step = host.steps.get(stepId)!.getSnapshot().context;
    const spec = host.meta.steps[stepId];
    if (!spec) throw new Error(`job ${host.id} has no launch spec for step ${stepId}`);
    // What the agents make Slurm's variables from (SLURM_JOB_NODELIST, SLURM_TASKS_PER_NODE …).
    const alloc = host.meta.alloc ?? placement;
    const size = (p: Placement) => IdSet.parse(p.ranks).size;
    const slots = new Map<string, number>();
    for (const a of alloc) slots.set(a.node, (slots.get(a.node) ?? 0) + size(a));
    const cpusOn = (node: string) => slots.get(node) || 1;
    const firstSpec = host.meta.steps[host.meta.kind === "batch" ? BATCH_STEP : "0"] ?? spec;
    const slurm = {
      jobName: host.meta.name,
      jobNodeList: compressHostlist(alloc.map((a) => a.node)),
      jobNumNodes: alloc.length,
      jobTasksPerNode: compressCounts(alloc.map(size)),
      stepNodeList: compressHostlist(placement.map((p) => p.node)),
      stepTasksPerNode: compressCounts(placement.map(size)),
      submitDir: host.meta.origin?.dir ?? firstSpec.cwd,
      ...(host.meta.origin?.host ? { submitHost: host.meta.origin.host } : {}),
    };
    await Promise.all(
      placement.map(async (p, nodeIndex) => {
        const cmd: Message = {
          type: "cmd.launch",
          v: 1,
          job: host.id,
          step: wireStep(stepId),
          node: p.node,
          epoch: p.epoch,
          user: host.meta.user,
          argv: [...spec.argv],
          env: { ...spec.env },
          cwd: spec.cwd,
          // A batch script sees its whole allocation, as SLURM_NTASKS and SLURM_NNODES do.
          ntasks: stepId === BATCH_STEP ? host.meta.request.ntasks : step.ntasks,
          nnodes: stepId === BATCH_STEP ? (host.meta.alloc?.length ?? 1) : placement.length,
          nodeIndex,
          ranks: IdSet.parse(p.ranks).toString(),
          label: spec.label,
          killWaitSeconds: host.meta.killWaitSeconds,
          ...(spec.batch ? { batch: spec.batch } : {}),
          ...(spec.envExport === "NONE" ? { envExport: "NONE" as const } : {}),
          slurm: { ...slurm, cpusOnNode: cpusOn(p.node) },
        };
        const ok = await this.command(p.node, cmd);
        if (!ok) {
          // The node did not take the launch: its tasks are lost with it.
          void this.serial(async () => {
            host.sendStep(stepId, { type: "NODE_LOST", node: p.node, epoch: p.epoch, at: steadyNow() });
            this.touched.add(host.id);
            await this.settle();
          });
        }
      }),
    );
  }

  private async signalTargets(host: JobHost, stepId: string, signal: number, cont: boolean, targets: readonly SignalTarget[], notice?: KillNotice): Promise<void> {
    await Promise.all(
      targets.map(async (t) => {
        const base = { type: "cmd.signal" as const, v: 1 as const, job: host.id, step: wireStep(stepId), node: t.node, epoch: t.epoch, ranks: t.ranks };
        if (cont) await this.command(t.node, { ...base, signal: 18 });
        await this.command(t.node, { ...base, signal, ...(notice ? { notice } : {}) });
      }),
    );
  }

  /** Sends a command to a node and waits for its ack; retries a few times; false when it never succeeded. */
  private async command(node: string, cmd: Message): Promise<boolean> {
    const subject = this.subjects.node.cmd(node);
    // Attempts made while the supervisor's own connection is down do not count: the node is not to blame.
    for (let attempt = 0; attempt < 5 && !this.stopping; attempt += this.blind.has("nats") ? 0 : 1) {
      try {
        const reply = await this.nc.request(subject, encodeMessage(cmd), { timeout: 3000 });
        const ack = parseMessage(CommandAckSchema, reply.data, subject);
        if (ack.ok && ack.value.ok) return true;
        const reason = ack.ok ? (ack.value.ok ? "" : ack.value.error.message) : ack.message;
        this.log.warn({ node, type: cmd.type, reason }, "command.refused");
        if (ack.ok && !ack.value.ok && ack.value.error.code === "STALE_EPOCH") return false;
      } catch (err) {
        this.log.warn({ node, type: cmd.type, attempt, err: (err as Error).message }, "command.retry");
      }
      await new Promise((r) => setTimeout(r, 200 * (attempt + 1)));
    }
    return false;
  }

  // ---- deadlines --------------------------------------------------------------------------------

  private lastPurge = 0;

  /** Forgets finished jobs older than the history retention (memory and KV). */
  private async purgeHistory(now: number): Promise<void> {
    if (now - this.lastPurge < 60_000) return;
    this.lastPurge = now;
    const horizon = now - this.cfg.historyRetentionSeconds * 1000;
    for (const [id, host] of this.finished) {
      const end = host.job.getSnapshot().context.end;
      if (end && end.at < horizon) {
        this.finished.delete(id);
        // After the job's own I/O, outside the queue.
        const steps = [...host.steps.keys()];
        void host.io.then(() => this.store.remove(id, steps)).catch((err: Error) => this.log.error({ err, job: id }, "job.expire_failed"));
        this.log.info({ job: id }, "job.expired");
      }
    }
  }

  /**
   * Why the supervisor cannot read its events now (its NATS connection down, JetStream unavailable
   * or full), by cause. Silence is evidence only when it can hear: meanwhile no node is declared lost
   * and no step deadline that judges by missing events (KillUnconfirmed) fires.
   */
  private readonly blind = new Map<"nats" | "jetstream", string>();
  /** When the current (or last) blind spell began, and why, for the log and `muster nodes`. */
  private blindSince = 0;
  private blindReason = "";
  /** After a blind spell, nodes get a full nodeTimeout to be heard again before missed heartbeats count. */
  private nodeGraceUntil = 0;
  private probing = false;

  private setBlind(cause: "nats" | "jetstream", reason: string | undefined): void {
    const was = this.blind.size > 0;
    if (reason === undefined) {
      if (!this.blind.delete(cause) || this.blind.size > 0) return;
      this.nodeGraceUntil = steadyNow() + this.cfg.nodeTimeoutSeconds * 1000;
      this.log.warn({ cause, pausedMs: Math.round(steadyNow() - this.blindSince), graceMs: this.cfg.nodeTimeoutSeconds * 1000 }, "liveness.resumed");
      return;
    }
    if (this.blind.get(cause) === reason) return;
    this.blind.set(cause, reason);
    if (!was) this.blindSince = steadyNow();
    this.blindReason = [...this.blind.values()].join("; ");
    this.log.warn({ cause, reason }, "liveness.paused");
  }

  /** Why node liveness is paused now, if it is (shown by `muster nodes`). */
  private livenessPaused(): NodeView["livenessPaused"] {
    if (this.blind.size > 0) return { since: Math.round(this.blindSince), reason: this.blindReason };
    if (steadyNow() < this.nodeGraceUntil) return { since: Math.round(this.blindSince), reason: `grace period after: ${this.blindReason}` };
    return undefined;
  }

  /** Asks JetStream whether it can serve (once a second, outside the serial queue). */
  private probeJetStream(): void {
    if (this.probing || this.stopping) return;
    this.probing = true;
    void this.nc
      .request("$JS.API.INFO", "", { timeout: 2_000 })
      .then((reply) => {
        const info = JSON.parse(new TextDecoder().decode(reply.data)) as { error?: { description?: string }; storage?: number; limits?: { max_storage?: number } };
        if (info.error) return `JetStream unavailable (${info.error.description ?? "error"})`;
        const max = info.limits?.max_storage;
        if (max !== undefined && max > 0 && (info.storage ?? 0) >= max) return `JetStream store full (${info.storage} of ${max} bytes)`;
        return undefined;
      })
      .then(
        (reason) => {
          this.probeTimeouts = 0;
          return reason;
        },
        (err: Error) => {
          // One slow answer on a loaded host is not an outage: only the third timeout in a row counts.
          const slow = err instanceof Error && /timeout/i.test(err.name + " " + err.message);
          this.probeTimeouts = slow ? this.probeTimeouts + 1 : PROBE_TIMEOUTS_BLIND;
          return this.probeTimeouts >= PROBE_TIMEOUTS_BLIND ? `JetStream unavailable (${err.message})` : this.blind.get("jetstream");
        },
      )
      .then((reason) => this.setBlind("jetstream", reason))
      .finally(() => (this.probing = false));
  }

  private async watchConnection(nc: NatsConnection): Promise<void> {
    for await (const s of nc.status()) {
      if (s.type === "disconnect") {
        this.setBlind("nats", "the supervisor's NATS connection is down");
        this.log.warn({ server: s.server }, "nats.disconnected");
      } else if (s.type === "reconnect") {
        this.setBlind("nats", undefined);
        this.log.info({ server: s.server }, "nats.reconnected");
      }
    }
  }

  private lastProbe = 0;
  /** Timeouts of the JetStream probe in a row. */
  private probeTimeouts = 0;

  private async tick(): Promise<void> {
    const now = steadyNow();
    if (now - this.lastProbe >= 1_000) {
      this.lastProbe = now;
      this.probeJetStream();
    }
    const paused = this.blind.size > 0 || now < this.nodeGraceUntil;
    if (this.byes.length && !paused) this.releaseByes(now);
    await this.purgeHistory(now);
    for (const [node, actor] of paused ? [] : this.nodes) {
      const snap = actor.getSnapshot();
      const due = nodeNextDeadline(snap.value as NodeStateName, snap.context);
      // A heartbeat that arrived but still waits in the queue behind other work is not a silence.
      const heard = this.heard.get(node);
      const waiting = heard !== undefined && heard.epoch === snap.context.epoch && heard.at > (snap.context.lastSeenAt ?? 0);
      if (due !== undefined && due <= now && !waiting) this.nodeEvent(node, { type: "TICK", now });
    }
    for (const host of paused ? [] : this.jobs.values()) {
      for (const [stepId, actor] of host.steps) {
        const due = stepNextDeadline(actor.getSnapshot().context);
        if (due !== undefined && due <= now) {
          host.sendStep(stepId, { type: "TICK", now } satisfies StepEvent);
          this.touched.add(host.id);
        }
      }
    }
    if (this.touched.size || this.effects.length || this.nodeEffects.length) await this.settle();
    if (this.dirty.size) this.flush(now, false);
  }
}

/**
 * The slots a job that could not be restored may still hold: its allocation as far as its record
 * can be read, unless the record says the job ended. (Nothing readable: nothing held.)
 */
function heldSlotsOf(record: unknown): Placement[] {
  const r = record as { meta?: { alloc?: unknown }; job?: { context?: { end?: unknown } } } | undefined;
  if (r?.job?.context?.end !== undefined || !Array.isArray(r?.meta?.alloc)) return [];
  return (r.meta.alloc as unknown[]).filter((p): p is Placement => {
    const q = p as Partial<Placement> | null;
    if (typeof q?.node !== "string" || typeof q.epoch !== "string" || typeof q.ranks !== "string") return false;
    try {
      IdSet.parse(q.ranks);
      return true;
    } catch {
      return false;
    }
  });
}

/** What requests about a job that could not be restored are told. */
function damagedMessage(bucket: string, job: string, reason: string): string {
  return (
    `job ${job} could not be restored from its stored record (${reason}); its keys in KV bucket ${bucket} ` +
    `(job.${job}, chunk.${job}.*, delta.${job}.*) are left as stored, and its slots stay taken until it is repaired or removed and the supervisor restarts`
  );
}

/**
 * A step's events of one batch with the events of every task that ended badly moved to the front,
 * each task's own events still in their order; undefined when no task of the batch ended badly.
 */
export function failuresFirst<E extends { rank: number; event: TaskEvent }>(events: readonly E[]): E[] | undefined {
  let failed: Set<number> | undefined;
  for (const e of events) {
    if (e.event.type === "ENDED" && isBadOutcome(e.event.outcome)) (failed ??= new Set()).add(e.rank);
  }
  if (!failed) return undefined;
  const first: E[] = [];
  const rest: E[] = [];
  for (const e of events) (failed.has(e.rank) ? first : rest).push(e);
  return first.concat(rest);
}

/** A step id as it travels on the wire (`0` as a number, `batch` as the literal). */
function wireStep(step: string): number | "batch" {
  return step === "batch" ? "batch" : Number(step);
}

/**
 * A batch output file path: the filename pattern expanded with what is known at submit (the node,
 * `%N`, is left to the agent); relative paths are relative to the submit directory.
 */
function outputPath(pattern: string, fields: PatternFields, cwd: string): string {
  const path = expandFilenamePattern(pattern, fields, { partial: true });
  return path.startsWith("/") ? path : `${cwd.replace(/\/$/, "")}/${path}`;
}

/** How a submission's tasks are started; a secret in its environment is never stored. */
function stepSpec(req: SubmitRequest, cwd: string, batch?: SubmitRequest["batch"]): JobMeta["steps"][string] {
  return {
    argv: req.argv,
    env: withoutSecrets(req.env ?? {}),
    cwd,
    label: req.label,
    ...(batch ? { batch } : {}),
    ...(req.envExport === "NONE" ? { envExport: "NONE" as const } : {}),
  };
}
