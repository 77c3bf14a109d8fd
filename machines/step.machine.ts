/**
 * The step machine: a set of tasks launched together. It owns its tasks' records (driven through
 * the task machine's compiled interpreter), counts them, detects the first failure and fires the
 * notification effect exactly once, applies the policies (kill-on-bad-exit, --wait, time limit,
 * KillWait, KillUnconfirmed) and decides the final verdict. Pure: effects are named and provided by
 * the service, time arrives on events, deadlines are absolute times in context.
 */
import { enqueueActions, setup } from "xstate";
import {
  decideStep,
  formatExitCode,
  groupTasks,
  isBadOutcome,
  outcomeKey,
  type StepVerdict,
  type TaskGroups,
  type TaskOutcome,
  type TaskResult,
} from "../src/exit-status/index.js";
import { IdSet } from "../src/idset/index.js";
import { advanceTask, isTaskFinal, TASK_FINAL_STATES, type TaskEvent, type TaskRecord, type TaskStateName } from "./task.machine.js";
import { allTasks, createTaskTable, hasRank, TaskTableWriter, type TaskTable } from "./task-table.js";

const SIGKILL = 9;
const SIGTERM = 15;

/** The policies a step runs under; durations in milliseconds. */
export interface StepPolicies {
  readonly killOnBadExit: boolean;
  /** `--wait`: after the first task ends, the rest get SIGKILL after this long. */
  readonly waitMs?: number;
  /** `--time`: the step's time limit. */
  readonly timeLimitMs?: number;
  /** Time between TERM and KILL. */
  readonly killWaitMs: number;
  /** How long past KillWait an agent may stay silent before its tasks are finalised as `KillUnconfirmed`. */
  readonly nodeTimeoutMs: number;
  /** `--no-kill`: a lost node's tasks end `node_lost` and the rest run on; by default they are stopped (srun's default). */
  readonly noKill?: boolean;
}

/** What a step is created with. */
export interface StepInput {
  readonly job: string;
  readonly step: string;
  readonly ntasks: number;
  readonly policies: StepPolicies;
}

/** The first task outcome that was not `exited(0)`. */
export interface FirstFailure {
  readonly rank: number;
  readonly node: string;
  readonly outcome: TaskOutcome;
  readonly at: number;
}

/** Why the runtime stops a step: the stop reason its tasks get. */
export type KillReason = "cancel" | "kill-on-bad-exit" | "wait" | "time-limit" | "node-failure";

/** A kill of the step in progress. */
export interface KillInProgress {
  readonly reason: KillReason;
  readonly requestedAt: number;
  /** When the TERMed tasks get SIGKILL; undefined once escalated. */
  readonly escalateAt?: number;
  /** When tasks still not confirmed are finalised as `KillUnconfirmed`. */
  readonly unconfirmedAt: number;
}

/** Where ranks run: one entry per node incarnation. */
export interface Placement {
  readonly node: string;
  readonly epoch: string;
  /** Id set of the ranks placed there. */
  readonly ranks: string;
}

/** The verdict as the step stores and publishes it. */
export interface StepEnd {
  readonly state: StepVerdict["state"];
  readonly reason: string;
  readonly exitCode: string;
  readonly failedNodes: readonly string[];
  readonly runExitStatus: number;
  readonly at: number;
}

/** Everything the step knows. */
export interface StepContext {
  readonly job: string;
  readonly step: string;
  readonly ntasks: number;
  readonly policies: StepPolicies;
  readonly tasks: TaskTable;
  readonly counts: Readonly<Record<TaskStateName, number>>;
  readonly placement: readonly Placement[];
  readonly launchedAt?: number;
  readonly firstEndAt?: number;
  readonly firstFailure?: FirstFailure;
  readonly cancelled: boolean;
  readonly cancelledBy?: string;
  readonly timedOut: boolean;
  readonly kill?: KillInProgress;
  readonly waitDeadline?: number;
  readonly timeDeadline?: number;
  /** Events ignored because they came from a stale node epoch. */
  readonly staleEvents: number;
  /** Events ignored because they repeated what the task already knew. */
  readonly duplicateEvents: number;
  readonly end?: StepEnd;
}

/** A task event addressed to one rank of the step. */
export interface RankedTaskEvent {
  readonly rank: number;
  readonly event: TaskEvent;
}

/** Events a step takes. */
export type StepEvent =
  | { readonly type: "LAUNCH"; readonly placement: readonly Placement[]; readonly at: number }
  | { readonly type: "TASKS"; readonly events: readonly RankedTaskEvent[] }
  | { readonly type: "CANCEL"; readonly by: string; readonly at: number; readonly killWaitMs?: number }
  | { readonly type: "SIGNAL"; readonly signal: number; readonly at: number }
  | { readonly type: "NODE_LOST"; readonly node: string; readonly epoch: string; readonly at: number }
  | { readonly type: "TICK"; readonly now: number };

/**
 * What the agent of a batch step writes into the job's output file when the step is stopped, as
 * slurmstepd writes `*** JOB 12 ON n1 CANCELLED AT … ***` there.
 */
export interface KillNotice {
  readonly reason: KillReason;
  readonly at: number;
}

/** Ranks of one node incarnation that an effect addresses. */
export interface SignalTarget {
  readonly node: string;
  readonly epoch: string;
  readonly ranks: string;
}

/** The first-failure notification as the step computes it. */
export interface FirstFailureNotice extends TaskGroups {
  readonly job: string;
  readonly step: string;
  readonly ntasks: number;
  readonly trigger: FirstFailure;
}

/** The final summary as the step computes it. */
export interface StepSummary extends TaskGroups {
  readonly job: string;
  readonly step: string;
  readonly ntasks: number;
  readonly end: StepEnd;
  readonly firstFailure?: FirstFailure;
}

/** Why an event was ignored. */
export interface RejectedTaskEvent {
  readonly rank: number;
  readonly eventType: string;
  readonly reason: "stale_epoch" | "duplicate" | "unknown_rank" | "ignored";
}

/** Effects the step asks for; the service implements them. */
export type StepEffect =
  | { readonly type: "launchTasks"; readonly params: { readonly placement: readonly Placement[] } }
  | { readonly type: "signalTasks"; readonly params: { readonly signal: number; readonly cont: boolean; readonly targets: readonly SignalTarget[]; readonly notice?: KillNotice } }
  | { readonly type: "notifyFirstFailure"; readonly params: FirstFailureNotice }
  | { readonly type: "reportRejected"; readonly params: RejectedTaskEvent }
  | { readonly type: "killUnconfirmed"; readonly params: { readonly nodes: readonly string[]; readonly ranks: string } }
  | { readonly type: "stepEnded"; readonly params: StepSummary };

const ZERO_COUNTS: Record<TaskStateName, number> = {
  pending: 0, launching: 0, running: 0, stopping: 0, exited: 0, signaled: 0, launchFailed: 0, nodeLost: 0,
};

/** The initial context of a step. */
export function initialStepContext(input: StepInput): StepContext {
  return {
    job: input.job,
    step: input.step,
    ntasks: input.ntasks,
    policies: input.policies,
    tasks: createTaskTable(input.ntasks),
    counts: { ...ZERO_COUNTS, pending: input.ntasks },
    placement: [],
    cancelled: false,
    timedOut: false,
    staleEvents: 0,
    duplicateEvents: 0,
  };
}

/** Number of tasks in a final state. */
export function endedCount(context: StepContext): number {
  let n = 0;
  for (const s of TASK_FINAL_STATES) n += context.counts[s];
  return n;
}

/** The earliest deadline the service must wake the step for (a TICK), if any. */
export function stepNextDeadline(context: StepContext): number | undefined {
  if (context.end) return undefined;
  const all = [context.timeDeadline, context.waitDeadline, context.kill?.escalateAt, context.kill?.unconfirmedAt];
  const live = all.filter((d): d is number => d !== undefined);
  return live.length ? Math.min(...live) : undefined;
}

/** The compact picture of every task now, grouped by status. */
export function stepPicture(context: StepContext): TaskGroups {
  const nodeOf = nodeLookup(context.placement);
  return groupTasks(
    (function* () {
      for (const t of allTasks(context.tasks)) {
        yield {
          rank: t.context.rank,
          node: t.context.node ?? nodeOf(t.context.rank) ?? "unplaced",
          key: t.context.outcome && isTaskFinal(t.state) ? outcomeKey(t.context.outcome) : liveKey(t.state),
          killedByRuntime: t.context.killedByRuntime,
        };
      }
    })(),
  );
}

function liveKey(state: TaskStateName): string {
  return state === "pending" || state === "launching" || state === "running" || state === "stopping" ? state : "running";
}

function nodeLookup(placement: readonly Placement[]): (rank: number) => string | undefined {
  const sets = placement.map((p) => [p.node, IdSet.parse(p.ranks)] as const);
  return (rank) => sets.find(([, s]) => s.has(rank))?.[0];
}

/** A step's pure update: the next context and the effects to run. */
export interface StepStep {
  readonly context: StepContext;
  readonly effects: StepEffect[];
}

/** Applies one event to a step's context; every rule of the step lives here. */
export function applyStepEvent(context: StepContext, event: StepEvent): StepStep {
  if (context.end) return { context, effects: [] };
  const effects: StepEffect[] = [];
  let ctx = context;
  switch (event.type) {
    case "LAUNCH": {
      if (ctx.launchedAt !== undefined) return { context, effects };
      const w = new TaskTableWriter(ctx.tasks);
      const counts = { ...ctx.counts };
      for (const p of event.placement) {
        for (const rank of IdSet.parse(p.ranks)) {
          if (!hasRank(ctx.tasks, rank)) continue;
          updateTask(w, counts, rank, { type: "LAUNCH", node: p.node, epoch: p.epoch, at: event.at });
        }
      }
      ctx = {
        ...ctx,
        tasks: w.finish(),
        counts,
        placement: event.placement,
        launchedAt: event.at,
        timeDeadline: ctx.policies.timeLimitMs !== undefined ? event.at + ctx.policies.timeLimitMs : undefined,
      };
      effects.push({ type: "launchTasks", params: { placement: event.placement } });
      break;
    }
    case "TASKS": {
      const w = new TaskTableWriter(ctx.tasks);
      const counts = { ...ctx.counts };
      let stale = ctx.staleEvents;
      let dup = ctx.duplicateEvents;
      let firstFailure = ctx.firstFailure;
      let firstEndAt = ctx.firstEndAt;
      let newFailure: FirstFailure | undefined;
      for (const { rank, event: te } of event.events) {
        if (!hasRank(ctx.tasks, rank)) {
          effects.push({ type: "reportRejected", params: { rank, eventType: te.type, reason: "unknown_rank" } });
          continue;
        }
        const before = w.get(rank);
        const after = updateTask(w, counts, rank, te);
        if (after === before) {
          const reason = classifyIgnored(before, te);
          if (reason === "stale_epoch") stale++;
          else if (reason === "duplicate") dup++;
          effects.push({ type: "reportRejected", params: { rank, eventType: te.type, reason } });
          continue;
        }
        if (isTaskFinal(after.state) && !isTaskFinal(before.state)) {
          const at = after.context.endedAt ?? ("at" in te ? te.at : 0);
          firstEndAt ??= at;
          if (!firstFailure && after.context.outcome && isBadOutcome(after.context.outcome)) {
            firstFailure = newFailure = { rank, node: after.context.node ?? "unplaced", outcome: after.context.outcome, at };
          }
        }
      }
      ctx = { ...ctx, tasks: w.finish(), counts, staleEvents: stale, duplicateEvents: dup, firstFailure, firstEndAt };
      if (ctx.waitDeadline === undefined && firstEndAt !== undefined && ctx.policies.waitMs !== undefined) {
        ctx = { ...ctx, waitDeadline: firstEndAt + ctx.policies.waitMs };
      }
      if (newFailure) {
        effects.push({ type: "notifyFirstFailure", params: { job: ctx.job, step: ctx.step, ntasks: ctx.ntasks, trigger: newFailure, ...stepPicture(ctx) } });
        if (ctx.policies.killOnBadExit && !ctx.kill) ctx = startKill(ctx, effects, "kill-on-bad-exit", newFailure.at, SIGTERM);
      }
      break;
    }
    case "CANCEL": {
      ctx = { ...ctx, cancelled: true, cancelledBy: ctx.cancelledBy ?? event.by };
      if (!ctx.kill || ctx.kill.reason !== "cancel") ctx = startKill(ctx, effects, "cancel", event.at, SIGTERM, event.killWaitMs);
      else ctx = escalate(ctx, effects, event.at);
      break;
    }
    case "SIGNAL": {
      const targets = liveTargets(ctx);
      if (targets.length) effects.push({ type: "signalTasks", params: { signal: event.signal, cont: false, targets } });
      break;
    }
    case "NODE_LOST": {
      // Running tasks of the lost incarnation become node_lost. Tasks the runtime was already stopping
      // (cancel, -K, --wait, time limit) end as killed without confirmation (KillUnconfirmed): the kill
      // decides their verdict, as a cancelled Slurm job stays CANCELLED when its node fails meanwhile.
      // A stop for an earlier node failure decides nothing of its own: a second lost node is one more failed node.
      const events: RankedTaskEvent[] = [];
      const unconfirmed: number[] = [];
      const lostWins = ctx.kill?.reason === "node-failure";
      for (const t of allTasks(ctx.tasks)) {
        if (t.context.node === event.node && t.context.epoch === event.epoch && !isTaskFinal(t.state)) {
          const killed = t.state === "stopping" && !lostWins;
          if (killed) unconfirmed.push(t.context.rank);
          events.push({
            rank: t.context.rank,
            event: killed ? { type: "KILL_UNCONFIRMED", at: event.at } : { type: "NODE_LOST", epoch: event.epoch, at: event.at },
          });
        }
      }
      if (!events.length) return { context, effects };
      const next = applyStepEvent(ctx, { type: "TASKS", events });
      if (unconfirmed.length) next.effects.unshift({ type: "killUnconfirmed", params: { nodes: [event.node], ranks: IdSet.of(unconfirmed).toString() } });
      // srun's default: a node failure ends the step, the rest stopped TERM → KillWait → KILL; `--no-kill` keeps it running.
      if (next.context.end || next.context.kill || ctx.policies.noKill) return next;
      return { context: startKill(next.context, next.effects, "node-failure", event.at, SIGTERM), effects: next.effects };
    }
    case "TICK":
      ctx = applyDeadlines(ctx, effects, event.now);
      break;
  }
  // A nested application (KillUnconfirmed, NODE_LOST) may already have finished the step: finish once.
  if (ctx.end) return { context: ctx, effects };
  if (endedCount(ctx) === ctx.ntasks && ctx.launchedAt !== undefined) ctx = finish(ctx, effects);
  else if (ctx.launchedAt === undefined && ctx.cancelled) ctx = finish(stopPending(ctx, event), effects);
  return { context: ctx, effects };
}

function updateTask(w: TaskTableWriter, counts: Record<TaskStateName, number>, rank: number, event: TaskEvent): TaskRecord {
  const before = w.get(rank);
  const after = advanceTask(before, event);
  if (after !== before) {
    w.set(rank, after);
    counts[before.state]--;
    counts[after.state]++;
  }
  return after;
}

function classifyIgnored(record: TaskRecord, event: TaskEvent): RejectedTaskEvent["reason"] {
  if ("epoch" in event && record.context.epoch !== undefined && event.epoch !== record.context.epoch) return "stale_epoch";
  // A late report from the incarnation that was declared lost is fenced, not a repeat of what the task knows.
  if (record.state === "nodeLost" && (event.type === "STARTED" || event.type === "ENDED")) return "stale_epoch";
  if (isTaskFinal(record.state) || event.type === "STARTED" || event.type === "LAUNCH") return "duplicate";
  return "ignored";
}

function liveTargets(ctx: StepContext): SignalTarget[] {
  const byNode = new Map<string, { node: string; epoch: string; ranks: number[] }>();
  for (const t of allTasks(ctx.tasks)) {
    if (isTaskFinal(t.state) || t.state === "pending" || !t.context.node || !t.context.epoch) continue;
    const key = `${t.context.node}\u0000${t.context.epoch}`;
    let entry = byNode.get(key);
    if (!entry) byNode.set(key, (entry = { node: t.context.node, epoch: t.context.epoch, ranks: [] }));
    entry.ranks.push(t.context.rank);
  }
  return [...byNode.values()].map((e) => ({ node: e.node, epoch: e.epoch, ranks: IdSet.fromSorted(e.ranks).toString() }));
}

function startKill(ctx: StepContext, effects: StepEffect[], reason: KillReason, at: number, signal: number, killWaitMs = ctx.policies.killWaitMs): StepContext {
  const w = new TaskTableWriter(ctx.tasks);
  const counts = { ...ctx.counts };
  const targets = liveTargets(ctx);
  for (const t of allTasks(ctx.tasks)) {
    if (!isTaskFinal(t.state) && t.state !== "pending") updateTask(w, counts, t.context.rank, { type: "STOP", reason, at });
  }
  if (targets.length) effects.push({ type: "signalTasks", params: { signal, cont: signal !== SIGKILL, targets, notice: { reason, at } } });
  const escalated = signal === SIGKILL;
  return {
    ...ctx,
    tasks: w.finish(),
    counts,
    kill: {
      reason,
      requestedAt: at,
      escalateAt: escalated ? undefined : at + killWaitMs,
      unconfirmedAt: at + (escalated ? 0 : killWaitMs) + ctx.policies.nodeTimeoutMs,
    },
  };
}

function escalate(ctx: StepContext, effects: StepEffect[], at: number): StepContext {
  if (!ctx.kill || ctx.kill.escalateAt === undefined) return ctx;
  const targets = liveTargets(ctx);
  if (targets.length) effects.push({ type: "signalTasks", params: { signal: SIGKILL, cont: false, targets } });
  return { ...ctx, kill: { ...ctx.kill, escalateAt: undefined, unconfirmedAt: Math.min(ctx.kill.unconfirmedAt, at + ctx.policies.nodeTimeoutMs) } };
}

function applyDeadlines(ctx: StepContext, effects: StepEffect[], now: number): StepContext {
  if (ctx.timeDeadline !== undefined && now >= ctx.timeDeadline && !ctx.timedOut) {
    ctx = { ...ctx, timedOut: true, timeDeadline: undefined };
    if (!ctx.kill) ctx = startKill(ctx, effects, "time-limit", now, SIGTERM);
  }
  if (ctx.waitDeadline !== undefined && now >= ctx.waitDeadline) {
    ctx = { ...ctx, waitDeadline: undefined };
    if (endedCount(ctx) < ctx.ntasks) ctx = ctx.kill ? escalate(ctx, effects, now) : startKill(ctx, effects, "wait", now, SIGKILL);
  }
  if (ctx.kill?.escalateAt !== undefined && now >= ctx.kill.escalateAt) ctx = escalate(ctx, effects, now);
  if (ctx.kill && now >= ctx.kill.unconfirmedAt) {
    const events: RankedTaskEvent[] = [];
    const nodes = new Set<string>();
    for (const t of allTasks(ctx.tasks)) {
      if (!isTaskFinal(t.state)) {
        events.push({ rank: t.context.rank, event: { type: "KILL_UNCONFIRMED", at: now } });
        if (t.context.node) nodes.add(t.context.node);
      }
    }
    if (events.length) {
      const stopped = applyStepEvent({ ...ctx, kill: { ...ctx.kill, unconfirmedAt: Number.POSITIVE_INFINITY } }, { type: "TASKS", events });
      effects.push({ type: "killUnconfirmed", params: { nodes: [...nodes].sort(), ranks: IdSet.of(events.map((e) => e.rank)).toString() } });
      effects.push(...stopped.effects);
      return stopped.context;
    }
  }
  return ctx;
}

function stopPending(ctx: StepContext, event: StepEvent): StepContext {
  const at = "at" in event ? event.at : "now" in event ? event.now : 0;
  const w = new TaskTableWriter(ctx.tasks);
  const counts = { ...ctx.counts };
  for (const t of allTasks(ctx.tasks)) updateTask(w, counts, t.context.rank, { type: "STOP", reason: "cancel", at });
  return { ...ctx, tasks: w.finish(), counts, launchedAt: at };
}

function finish(ctx: StepContext, effects: StepEffect[]): StepContext {
  const results: TaskResult[] = [];
  let at = ctx.launchedAt ?? 0;
  for (const t of allTasks(ctx.tasks)) {
    results.push({ rank: t.context.rank, node: t.context.node ?? "unplaced", outcome: t.context.outcome!, killedByRuntime: t.context.killedByRuntime });
    if (t.context.endedAt !== undefined && t.context.endedAt > at) at = t.context.endedAt;
  }
  const v = decideStep(results, { cancelled: ctx.cancelled, timedOut: ctx.timedOut });
  const end: StepEnd = { state: v.state, reason: v.reason, exitCode: formatExitCode(v.exitCode), failedNodes: v.failedNodes, runExitStatus: v.runExitStatus, at };
  const done: StepContext = { ...ctx, end, kill: undefined, waitDeadline: undefined, timeDeadline: undefined };
  effects.push({ type: "stepEnded", params: { job: ctx.job, step: ctx.step, ntasks: ctx.ntasks, end, firstFailure: ctx.firstFailure, ...stepPicture(done) } });
  return done;
}

/**
 * True once the step is ending: the runtime is stopping every task still alive (Slurm's COMPLETING,
 * "CG"). A step whose first tasks ended while the others still run is RUNNING, as in Slurm; when
 * every task has ended the step is decided at once, so a kill in progress is the only way to be ending.
 */
export function isEnding(ctx: StepContext): boolean {
  return ctx.kill !== undefined;
}

/** Why and when the runtime began stopping the step, and the node that tells it (the first one not lost, as slurmstepd's line names the node of the step's first task). */
export function stepStopNotice(ctx: StepContext): { readonly reason: KillReason; readonly at: number; readonly node: string } | undefined {
  if (!ctx.kill) return undefined;
  let node: string | undefined;
  for (const t of allTasks(ctx.tasks)) {
    if (t.state === "nodeLost" || !t.context.node) continue;
    node = t.context.node;
    break;
  }
  return { reason: ctx.kill.reason, at: ctx.kill.requestedAt, node: node ?? ctx.placement[0]?.node ?? "unplaced" };
}

/** Step states: Slurm's live states, then one final state per outcome. */
export const STEP_FINAL_STATES = { COMPLETED: "completed", FAILED: "failed", CANCELLED: "cancelled", TIMEOUT: "timeout", NODE_FAIL: "nodeFail" } as const;

/** The step machine's state names. */
export type StepStateName = "pending" | "running" | "completing" | (typeof STEP_FINAL_STATES)[keyof typeof STEP_FINAL_STATES];

/**
 * The state the step machine settles in after an event, from its state before the event and its
 * context after it: the machine's eventless (`always`) transitions as a function. With
 * `applyStepEvent` this is the whole machine without an interpreter; the supervisor hosts steps
 * this way (XState's interpreter costs more than the rules themselves on every batch of events),
 * and a test checks both agree with the XState actor on random event sequences.
 */
export function settleStepState(value: StepStateName, ctx: StepContext): StepStateName {
  const final = ctx.end ? (STEP_FINAL_STATES as Readonly<Record<string, StepStateName>>)[ctx.end.state] : undefined;
  if (final) return final;
  if (value === "pending" && ctx.launchedAt !== undefined) value = "running";
  if (value === "running" && isEnding(ctx)) value = "completing";
  return value;
}

/** True for the step machine's final states. */
export function isStepFinal(value: StepStateName): boolean {
  return (Object.values(STEP_FINAL_STATES) as string[]).includes(value);
}

const noop = () => {};

/** The step machine. Its states mirror Slurm's step states; its rules live in `applyStepEvent`. */
export const stepMachine = setup({
  types: {
    context: {} as StepContext,
    events: {} as StepEvent,
    input: {} as StepInput,
    output: {} as StepEnd,
  },
  actions: {
    apply: enqueueActions(({ context, event, enqueue }) => {
      const next = applyStepEvent(context, event);
      if (next.context !== context) enqueue.assign(() => next.context);
      for (const effect of next.effects) enqueue(effect as never);
    }),
    launchTasks: (_args, _params: { placement: readonly Placement[] }) => noop(),
    signalTasks: (_args, _params: { signal: number; cont: boolean; targets: readonly SignalTarget[] }) => noop(),
    notifyFirstFailure: (_args, _params: FirstFailureNotice) => noop(),
    reportRejected: (_args, _params: RejectedTaskEvent) => noop(),
    killUnconfirmed: (_args, _params: { nodes: readonly string[]; ranks: string }) => noop(),
    stepEnded: (_args, _params: StepSummary) => noop(),
  },
  guards: {
    ended: ({ context }, params: { state: StepEnd["state"] }) => context.end?.state === params.state,
    launched: ({ context }) => context.launchedAt !== undefined,
    completing: ({ context }) => isEnding(context),
  },
}).createMachine({
  id: "step",
  context: ({ input }) => initialStepContext(input),
  initial: "pending",
  output: ({ context }) => context.end!,
  on: {
    LAUNCH: { actions: "apply" },
    TASKS: { actions: "apply" },
    CANCEL: { actions: "apply" },
    SIGNAL: { actions: "apply" },
    NODE_LOST: { actions: "apply" },
    TICK: { actions: "apply" },
  },
  always: [
    { guard: { type: "ended", params: { state: "COMPLETED" } }, target: ".completed" },
    { guard: { type: "ended", params: { state: "FAILED" } }, target: ".failed" },
    { guard: { type: "ended", params: { state: "CANCELLED" } }, target: ".cancelled" },
    { guard: { type: "ended", params: { state: "TIMEOUT" } }, target: ".timeout" },
    { guard: { type: "ended", params: { state: "NODE_FAIL" } }, target: ".nodeFail" },
  ],
  states: {
    pending: { always: { guard: "launched", target: "running" } },
    running: { always: { guard: "completing", target: "completing" } },
    completing: {},
    completed: { type: "final" },
    failed: { type: "final" },
    cancelled: { type: "final" },
    timeout: { type: "final" },
    nodeFail: { type: "final" },
  },
});
