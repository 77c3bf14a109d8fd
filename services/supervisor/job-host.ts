/**
 * One job hosted by the supervisor: its job and its steps, run as pure transitions (`HostedJob`,
 * `HostedStep`), with the effects they ask for collected into a queue the supervisor drains
 * (effects are I/O; the machines stay pure).
 */
import {
  applyJobEvent,
  initialJobContext,
  isJobFinal,
  settleJobState,
  type JobContext,
  type JobEffect,
  type JobEnd,
  type JobEvent,
  type JobInput,
  type JobStateName,
} from "../../machines/job.machine.js";
import {
  applyStepEvent,
  initialStepContext,
  isStepFinal,
  settleStepState,
  type StepContext,
  type StepEffect,
  type StepEnd,
  type StepEvent,
  type StepInput,
  type StepStateName,
} from "../../machines/step.machine.js";
import type { RunState } from "../../src/exit-status/index.js";
import type { BatchSpec } from "../../src/protocol/index.js";
import type { Placement } from "../../machines/step.machine.js";
import type { PlacementRequest } from "./placement.js";

/** An effect with the job and step that asked for it. */
export type HostedEffect =
  | { readonly source: "step"; readonly job: string; readonly step: string; readonly effect: StepEffect }
  | { readonly source: "job"; readonly job: string; readonly effect: JobEffect };

/** How one step's tasks are started. */
export interface StepSpec {
  readonly argv: readonly string[];
  readonly env: Readonly<Record<string, string>>;
  readonly cwd: string;
  readonly label: boolean;
  readonly batch?: BatchSpec;
  /** `--export=NONE`: the tasks get `env` alone, not over their node's environment. */
  readonly envExport?: "ALL" | "NONE";
}

/** What the supervisor remembers about a job beside its machines. */
export interface JobMeta {
  readonly name: string;
  readonly user: string;
  readonly kind: "run" | "batch";
  readonly request: PlacementRequest;
  readonly killWaitSeconds: number;
  readonly submittedAt: number;
  /** Policies of the job's main step (step 0 of a run job, the batch step of a batch job). */
  readonly policies: { readonly killOnBadExit: boolean; readonly noKill?: boolean; readonly waitSeconds?: number; readonly timeLimitSeconds?: number };
  /** How each step is started, by step id. */
  readonly steps: Readonly<Record<string, StepSpec>>;
  /** The nodes and ranks the job holds, once it has started. */
  readonly alloc?: readonly Placement[];
  /** Where the job was submitted from (SLURM_SUBMIT_DIR, SLURM_SUBMIT_HOST); absent in records older than it. */
  readonly origin?: { readonly dir: string; readonly host?: string };
}

/** A machine's snapshot, in the shape of an XState snapshot of it. */
export interface HostedSnapshot<V extends string, C, O> {
  readonly status: "active" | "done";
  readonly value: V;
  readonly context: C;
  readonly output: O | undefined;
}

/** A machine stated as pure functions: its one action's rules and its eventless transitions. */
interface PureMachine<C extends { readonly end?: O }, E, F, V extends string, O> {
  /** The machine's one action: the next context and the effects it enqueues, in order. */
  apply(context: C, event: E): { context: C; effects: F[] };
  /** Where its `always` transitions lead from `value` with `context`. */
  settle(value: V, context: C): V;
  isFinal(value: V): boolean;
}

/**
 * A machine of `machines/` run without an interpreter: its rules (`apply*Event`, the machine's one
 * action) then its eventless transitions (`settle*State`), effects handed to the sink in the order
 * the machine enqueues them; events after a final state are ignored, as by an XState actor that is
 * done. Snapshots persist and restore in XState's format, so either can read the other's.
 * test/unit/step-host.test.ts and job-host.test.ts check each against its XState actor.
 */
class HostedMachine<C extends { readonly end?: O }, E, F, V extends string, O> {
  private snap: HostedSnapshot<V, C, O>;

  constructor(
    private readonly machine: PureMachine<C, E, F, V, O>,
    initial: () => C,
    private readonly sink: (e: F) => void,
    snapshot?: Record<string, unknown>,
  ) {
    if (snapshot) {
      const s = snapshot as unknown as HostedSnapshot<V, C, O>;
      this.snap = { status: s.status, value: s.value, context: s.context, output: s.output };
    } else {
      const context = initial();
      this.snap = { status: "active", value: machine.settle("pending" as V, context), context, output: undefined };
    }
  }

  getSnapshot(): HostedSnapshot<V, C, O> {
    return this.snap;
  }

  send(event: E): void {
    if (this.snap.status !== "active") return;
    const { context, effects } = this.machine.apply(this.snap.context, event);
    const value = this.machine.settle(this.snap.value, context);
    const done = this.machine.isFinal(value);
    if (context !== this.snap.context || value !== this.snap.value) this.snap = { status: done ? "done" : "active", value, context, output: done ? context.end : undefined };
    for (const effect of effects) this.sink(effect);
  }

  /** The persisted snapshot, as XState's `getPersistedSnapshot()` gives it (the context shared, not copied). */
  persisted(): Record<string, unknown> {
    const { status, value, context, output } = this.snap;
    return { status, value, historyValue: {}, context, children: {}, output, error: undefined };
  }
}

/** A step's snapshot, in the shape of the step machine's XState snapshot. */
export type StepSnapshot = HostedSnapshot<StepStateName, StepContext, StepEnd>;

const STEP: PureMachine<StepContext, StepEvent, StepEffect, StepStateName, StepEnd> = { apply: applyStepEvent, settle: settleStepState, isFinal: isStepFinal };

/** One step of `machines/step.machine.ts` (`input` is unused when restoring from `snapshot`). */
export class HostedStep extends HostedMachine<StepContext, StepEvent, StepEffect, StepStateName, StepEnd> {
  constructor(input: StepInput | undefined, sink: (e: StepEffect) => void, snapshot?: Record<string, unknown>) {
    super(STEP, () => initialStepContext(input!), sink, snapshot);
  }
}

/** A job's snapshot, in the shape of the job machine's XState snapshot. */
export type JobSnapshot = HostedSnapshot<JobStateName, JobContext, JobEnd>;

const JOB: PureMachine<JobContext, JobEvent, JobEffect, JobStateName, JobEnd> = { apply: applyJobEvent, settle: settleJobState, isFinal: isJobFinal };

/** The job of `machines/job.machine.ts`. */
export class HostedJob extends HostedMachine<JobContext, JobEvent, JobEffect, JobStateName, JobEnd> {
  constructor(input: JobInput, sink: (e: JobEffect) => void, snapshot?: Record<string, unknown>) {
    super(JOB, () => initialJobContext(input), sink, snapshot);
  }
}

/** Hosts the machines of one job. */
export class JobHost {
  readonly steps = new Map<string, HostedStep>();
  readonly job: HostedJob;
  /** Last event-stream sequence applied to this job. */
  seq = 0;
  /** Last event-stream sequence the stored record covers. */
  savedSeq = 0;
  /** When the job first changed after its last save (ms), undefined while the stored record is current. */
  dirtySince: number | undefined;
  /** True when the job must be saved before anything else happens (an effect was published or sent). */
  saveNow = false;
  /** Task events applied to the job but not acknowledged yet: they are once a save covers them. */
  unacked: { readonly seq: number; ack(): void }[] = [];
  /**
   * The job's I/O, in order: state messages, notifications and summaries, saves, then commands.
   * The supervisor's serial queue only appends to it, so one job's round trips to JetStream never
   * hold up another job's events. Each step logs its own failure; the chain never rejects.
   */
  io: Promise<void> = Promise.resolve();
  /** True while the last save failed: commands wait (in `deferred`) for the next save that is stored. */
  saveFailed = false;
  /** Commands held back until a save is stored. */
  readonly deferred: (() => void)[] = [];
  /**
   * Why the job's I/O cannot go on (a notification that could not be published, a machine that
   * threw): nothing more is saved or acknowledged for it, so a restarted supervisor replays its
   * events from the last save and loses none.
   */
  broken: string | undefined;
  /** Last state published per step (and `job` for the job), so only changes are published. */
  readonly published = new Map<string, RunState>();

  constructor(
    readonly id: string,
    public meta: JobMeta,
    private readonly sink: (e: HostedEffect) => void,
    restored?: { job: Record<string, unknown>; steps: Map<string, Record<string, unknown>>; seq: number },
  ) {
    const input: JobInput = { job: id, user: meta.user, kind: meta.kind, submittedAt: meta.submittedAt };
    this.job = new HostedJob(input, (effect) => this.sink({ source: "job", job: id, effect }), restored?.job);
    if (restored) {
      this.seq = restored.seq;
      this.savedSeq = restored.seq;
      for (const [stepId, snap] of restored.steps) this.addStep(stepId, undefined, snap);
    }
  }

  /** Creates a step (or restores one from its persisted snapshot). */
  addStep(stepId: string, input: StepInput | undefined, snapshot?: Record<string, unknown>): HostedStep {
    const step = new HostedStep(input, (effect) => this.sink({ source: "step", job: this.id, step: stepId, effect }), snapshot);
    this.steps.set(stepId, step);
    return step;
  }

  /** Sends an event to one step; unknown steps are ignored (returns false). */
  sendStep(stepId: string, event: StepEvent): boolean {
    const actor = this.steps.get(stepId);
    if (!actor) return false;
    actor.send(event);
    return true;
  }

  /** Sends an event to the job. */
  sendJob(event: JobEvent): void {
    this.job.send(event);
  }

  /**
   * The job's Slurm state: its machine's, except that a job whose main step (step 0 of a run job, the
   * batch step) is being stopped is COMPLETING too, as Slurm shows a job whose step is ending (CG).
   */
  runState(): RunState {
    const snap = this.job.getSnapshot();
    const state = runStateOf(snap.value, snap.context.end);
    if (state !== "RUNNING") return state;
    const main = this.steps.get(this.meta.kind === "batch" ? "batch" : "0")?.getSnapshot();
    return main?.value === "completing" ? "COMPLETING" : state;
  }

  /** True once the job has its verdict. */
  get ended(): boolean {
    return this.job.getSnapshot().context.end !== undefined;
  }

  /** Persisted snapshots of the job and of every step (steps: without copying or walking their task tables). */
  persisted(): { job: Record<string, unknown>; steps: Map<string, Record<string, unknown>> } {
    const steps = new Map<string, Record<string, unknown>>();
    for (const [id, step] of this.steps) steps.set(id, step.persisted());
    return { job: this.job.persisted(), steps };
  }
}

/** The Slurm state of a machine snapshot: live states by state name, final ones from the verdict. */
export function runStateOf(value: unknown, end: { state: RunState } | undefined): RunState {
  if (end) return end.state;
  if (value === "running") return "RUNNING";
  if (value === "completing") return "COMPLETING";
  return "PENDING";
}
