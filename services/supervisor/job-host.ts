/**
 * One job hosted by the supervisor: its job actor and one actor per step, with the effects they
 * ask for collected into a queue the supervisor drains (effects are I/O; the machines stay pure).
 */
import { createActor, type Actor } from "xstate";
import { jobMachine, type JobEffect, type JobEvent, type JobInput } from "../../machines/job.machine.js";
import { stepMachine, type StepEffect, type StepEvent, type StepInput } from "../../machines/step.machine.js";
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

const STEP_EFFECTS = ["launchTasks", "signalTasks", "notifyFirstFailure", "reportRejected", "killUnconfirmed", "stepEnded"] as const;
const JOB_EFFECTS = ["cancelSteps", "jobEnded"] as const;

type StepActor = Actor<typeof stepMachine>;
type JobActor = Actor<typeof jobMachine>;

/** Hosts the machines of one job. */
export class JobHost {
  readonly steps = new Map<string, StepActor>();
  readonly job: JobActor;
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
  /** Last state published per step (and `job` for the job), so only changes are published. */
  readonly published = new Map<string, RunState>();

  constructor(
    readonly id: string,
    public meta: JobMeta,
    private readonly sink: (e: HostedEffect) => void,
    restored?: { job: Record<string, unknown>; steps: Map<string, Record<string, unknown>>; seq: number },
  ) {
    const input: JobInput = { job: id, user: meta.user, kind: meta.kind, submittedAt: meta.submittedAt };
    const provided = jobMachine.provide({
      actions: Object.fromEntries(
        JOB_EFFECTS.map((type) => [type, (_: unknown, params: unknown) => this.sink({ source: "job", job: id, effect: { type, params } as JobEffect })]),
      ),
    });
    this.job = createActor(provided, restored ? { input, snapshot: restored.job as never } : { input });
    this.job.start();
    if (restored) {
      this.seq = restored.seq;
      this.savedSeq = restored.seq;
      for (const [stepId, snap] of restored.steps) this.addStep(stepId, undefined, snap);
    }
  }

  /** Creates a step actor (or restores one from its persisted snapshot). */
  addStep(stepId: string, input: StepInput | undefined, snapshot?: Record<string, unknown>): StepActor {
    const provided = stepMachine.provide({
      actions: Object.fromEntries(
        STEP_EFFECTS.map((type) => [
          type,
          (_: unknown, params: unknown) => this.sink({ source: "step", job: this.id, step: stepId, effect: { type, params } as StepEffect }),
        ]),
      ),
    });
    const actor = snapshot
      ? createActor(provided, { snapshot: snapshot as never, input: input as StepInput })
      : createActor(provided, { input: input! });
    actor.start();
    this.steps.set(stepId, actor);
    return actor;
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

  /**
   * Persisted snapshots of the job and of every step. A step's snapshot is built from
   * `getSnapshot()` directly: its context holds no actor references and the machine spawns no
   * children, so XState's `getPersistedSnapshot()`, which walks the whole context (every task record
   * of a 100,000-task step) looking for actor references, would return the same object at a cost that
   * grows with the step. Anything else (children, history) goes through XState.
   */
  persisted(): { job: Record<string, unknown>; steps: Map<string, Record<string, unknown>> } {
    const steps = new Map<string, Record<string, unknown>>();
    for (const [id, a] of this.steps) steps.set(id, persistPlain(a));
    return { job: this.job.getPersistedSnapshot() as Record<string, unknown>, steps };
  }

  /** Stops every actor (the job leaves memory). */
  stop(): void {
    for (const a of this.steps.values()) a.stop();
    this.job.stop();
  }
}

/** The persisted form of a snapshot whose context is plain data, without walking the context. */
function persistPlain(actor: StepActor): Record<string, unknown> {
  const snap = actor.getSnapshot() as unknown as Record<string, unknown> & { children: Record<string, unknown>; historyValue: Record<string, unknown> };
  if (Object.keys(snap.children).length || Object.keys(snap.historyValue).length) return actor.getPersistedSnapshot() as Record<string, unknown>;
  const { _nodes, tags, machine, children, can, hasTag, matches, getMeta, toJSON, ...plain } = snap;
  void [_nodes, tags, machine, children, can, hasTag, matches, getMeta, toJSON];
  return { ...plain, children: {}, historyValue: {} };
}

/** The Slurm state of a machine snapshot: live states by state name, final ones from the verdict. */
export function runStateOf(value: unknown, end: { state: RunState } | undefined): RunState {
  if (end) return end.state;
  if (value === "running") return "RUNNING";
  if (value === "completing") return "COMPLETING";
  return "PENDING";
}
