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
  readonly policies: { readonly killOnBadExit: boolean; readonly waitSeconds?: number; readonly timeLimitSeconds?: number };
  /** How each step is started, by step id. */
  readonly steps: Readonly<Record<string, StepSpec>>;
  /** The nodes and ranks the job holds, once it has started. */
  readonly alloc?: readonly Placement[];
}

/** A step's snapshot, in the shape of the step machine's XState snapshot. */
export interface StepSnapshot {
  readonly status: "active" | "done";
  readonly value: StepStateName;
  readonly context: StepContext;
  readonly output: StepEnd | undefined;
}

/**
 * One step of `machines/step.machine.ts`, run without an interpreter: `applyStepEvent` (the
 * machine's one action) then `settleStepState` (its eventless transitions), effects handed to the
 * sink in the order the machine enqueues them; events after a final state are ignored, as by an
 * XState actor that is done. Snapshots persist and restore in XState's format, so either can read
 * the other's. test/unit/step-host.test.ts checks it against the XState actor.
 */
export class HostedStep {
  private snap: StepSnapshot;

  constructor(input: StepInput | undefined, private readonly sink: (e: StepEffect) => void, snapshot?: Record<string, unknown>) {
    if (snapshot) {
      const s = snapshot as unknown as StepSnapshot;
      this.snap = { status: s.status, value: s.value, context: s.context, output: s.output };
    } else {
      const context = initialStepContext(input!);
      this.snap = { status: "active", value: settleStepState("pending", context), context, output: undefined };
    }
  }

  getSnapshot(): StepSnapshot {
    return this.snap;
  }

  send(event: StepEvent): void {
    if (this.snap.status !== "active") return;
    const { context, effects } = applyStepEvent(this.snap.context, event);
    const value = settleStepState(this.snap.value, context);
    const done = isStepFinal(value);
    if (context !== this.snap.context || value !== this.snap.value) this.snap = { status: done ? "done" : "active", value, context, output: done ? context.end : undefined };
    for (const effect of effects) this.sink(effect);
  }

  /** The persisted snapshot, as XState's `getPersistedSnapshot()` of the step machine gives it (the task table shared, not copied). */
  persisted(): Record<string, unknown> {
    const { status, value, context, output } = this.snap;
    return { status, value, historyValue: {}, context, children: {}, output, error: undefined };
  }
}

/** A job's snapshot, in the shape of the job machine's XState snapshot. */
export interface JobSnapshot {
  readonly status: "active" | "done";
  readonly value: JobStateName;
  readonly context: JobContext;
  readonly output: JobEnd | undefined;
}

/**
 * The job of `machines/job.machine.ts`, run without an interpreter like `HostedStep`:
 * `applyJobEvent` then `settleJobState`, effects in the machine's order, events after a final state
 * ignored. test/unit/job-host.test.ts checks it against the XState actor.
 */
export class HostedJob {
  private snap: JobSnapshot;

  constructor(input: JobInput, private readonly sink: (e: JobEffect) => void, snapshot?: Record<string, unknown>) {
    if (snapshot) {
      const s = snapshot as unknown as JobSnapshot;
      this.snap = { status: s.status, value: s.value, context: s.context, output: s.output };
    } else {
      const context = initialJobContext(input);
      this.snap = { status: "active", value: settleJobState("pending", context), context, output: undefined };
    }
  }

  getSnapshot(): JobSnapshot {
    return this.snap;
  }

  send(event: JobEvent): void {
    if (this.snap.status !== "active") return;
    const { context, effects } = applyJobEvent(this.snap.context, event);
    const value = settleJobState(this.snap.value, context);
    const done = isJobFinal(value);
    if (context !== this.snap.context || value !== this.snap.value) this.snap = { status: done ? "done" : "active", value, context, output: done ? context.end : undefined };
    for (const effect of effects) this.sink(effect);
  }

  /** The persisted snapshot, as XState's `getPersistedSnapshot()` of the job machine gives it. */
  persisted(): Record<string, unknown> {
    const { status, value, context, output } = this.snap;
    return { status, value, historyValue: {}, context, children: {}, output, error: undefined };
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
