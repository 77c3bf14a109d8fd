/**
 * Replays a job's recorded events through the machines' own logic to show its state at any event
 * index: contexts come from `applyJobEvent` / `applyStepEvent` (which drive every task through
 * `advanceTask`), and state names from the machines' own eventless transitions, evaluated by
 * XState on the replayed context. Nothing here re-implements a rule of a machine.
 *
 * The inputs are what the streams recorded: the job's submission, one LAUNCH per step (its
 * placement rebuilt from the job view's ranks per node and the epochs the events carry), then the
 * task events in stream order. Deadline ticks, cancellations and node losses are not recorded as
 * events, so a replay shows them only through the task events they caused.
 */
import { transition, type AnyStateMachine } from "xstate";
import { applyJobEvent, initialJobContext, jobMachine, type JobContext } from "../../machines/job.machine.js";
import {
  applyStepEvent,
  initialStepContext,
  stepMachine,
  stepPicture,
  type Placement,
  type StepContext,
  type StepPolicies,
} from "../../machines/step.machine.js";
import type { TaskEvent as MachineTaskEvent, TaskRecord } from "../../machines/task.machine.js";
import { getTask, hasRank } from "../../machines/task-table.js";
import type { JobView, TaskEvent as WireTaskEvent } from "../../src/protocol/index.js";
import type { RecordedTaskEvent } from "./history.js";

/** One input of a replay, in the order it is applied. */
export type ReplayInput =
  | { readonly index: number; readonly kind: "submit"; readonly at: number }
  | { readonly index: number; readonly kind: "launch"; readonly at: number; readonly step: string; readonly placement: readonly Placement[] }
  | {
      readonly index: number;
      readonly kind: "task";
      readonly at: number;
      readonly seq: number;
      readonly step: string;
      readonly rank: number;
      readonly node: string;
      readonly epoch: string;
      readonly type: WireTaskEvent["type"];
      readonly pid?: number;
      readonly outcome?: Extract<WireTaskEvent, { type: "task.ended" }>["outcome"];
    };

/** A step at one point of the replay. */
export interface StepReplayState {
  readonly stepId: string;
  /** The step machine's state name (`pending`, `running`, `completing`, `failed` …). */
  readonly state: string;
  readonly ntasks: number;
  readonly counts: StepContext["counts"];
  /** Ranks by group key, as in notifications (`exited:0`, `running` …). */
  readonly groups: Readonly<Record<string, string>>;
  readonly nodes: Readonly<Record<string, string>>;
  readonly killedByRuntime: string;
  readonly firstFailure?: StepContext["firstFailure"];
  readonly end?: StepContext["end"];
  readonly launchedAt?: number;
  readonly staleEvents: number;
  readonly duplicateEvents: number;
}

/** The job, its steps and optionally one task at one event index. */
export interface ReplayState {
  readonly at: number;
  readonly total: number;
  readonly input: ReplayInput;
  readonly job: {
    /** The job machine's state name. */
    readonly state: string;
    readonly startedAt?: number;
    readonly end?: JobContext["end"];
    readonly steps: readonly { readonly step: string; readonly ended: boolean }[];
  };
  readonly steps: readonly StepReplayState[];
  readonly task?: { readonly stepId: string; readonly rank: number; readonly state: TaskRecord["state"]; readonly context: TaskRecord["context"] };
}

/** Options of a replay. */
export interface ReplayOptions {
  /** Current epoch of each node, for ranks placed on a node that sent no event for the job. */
  readonly nodeEpochs?: Readonly<Record<string, string>>;
  /** The steps' policies; the streams do not record them, so the defaults are used. */
  readonly policies?: StepPolicies;
  /** Inputs between two stored checkpoints. */
  readonly checkpointEvery?: number;
}

interface Checkpoint {
  readonly job: JobContext;
  readonly steps: ReadonlyMap<string, StepContext>;
}

const DEFAULT_POLICIES: StepPolicies = { killOnBadExit: false, killWaitMs: 10_000, nodeTimeoutMs: 10_000 };
const INSPECT_EVENT = { type: "@muster.inspect" };

/**
 * The state name a machine is in for a context: the machine's own eventless transitions, evaluated
 * by XState from its initial state. The job and step machines derive their state from context only.
 */
export function machineStateOf(machine: AnyStateMachine, context: unknown): string {
  const start = machine.resolveState({ value: "pending", context });
  const [next] = transition(machine, start, INSPECT_EVENT as never);
  return String(next.value);
}

/** A job's replay over its recorded events, with checkpoints so any index is cheap to reach. */
export class JobReplay {
  readonly inputs: readonly ReplayInput[];
  private readonly checkpoints: Checkpoint[] = [];
  private readonly every: number;
  private readonly initial: Checkpoint;

  constructor(
    readonly view: JobView,
    events: readonly RecordedTaskEvent[],
    opts: ReplayOptions = {},
  ) {
    this.every = Math.max(1, opts.checkpointEvery ?? 256);
    this.inputs = buildInputs(view, events, opts.nodeEpochs ?? {});
    const policies = opts.policies ?? DEFAULT_POLICIES;
    const steps = new Map<string, StepContext>();
    for (const s of view.steps) steps.set(s.stepId, initialStepContext({ job: view.jobId, step: s.stepId, ntasks: s.ntasks, policies }));
    this.initial = { job: initialJobContext({ job: view.jobId, user: view.user, kind: view.kind, submittedAt: view.submittedAt }), steps };
    this.checkpoints.push(this.initial);
  }

  /** Number of inputs (the last index is `total - 1`). */
  get total(): number {
    return this.inputs.length;
  }

  /** The state after applying inputs 0..`index` (clamped); with `rank`, that task of `stepId` (default the first step). */
  stateAt(index: number, select: { rank?: number; stepId?: string } = {}): ReplayState {
    const at = Math.max(0, Math.min(this.total - 1, Math.trunc(Number.isFinite(index) ? index : this.total - 1)));
    const cp = this.contextsAt(at);
    const steps = [...cp.steps.entries()].map(([stepId, ctx]) => stepState(stepId, ctx));
    let task: ReplayState["task"];
    if (select.rank !== undefined) {
      const stepId = select.stepId ?? [...cp.steps.keys()][0];
      const ctx = stepId === undefined ? undefined : cp.steps.get(stepId);
      if (ctx && stepId !== undefined && hasRank(ctx.tasks, select.rank)) {
        const rec = getTask(ctx.tasks, select.rank);
        task = { stepId, rank: select.rank, state: rec.state, context: rec.context };
      }
    }
    return {
      at,
      total: this.total,
      input: this.inputs[at]!,
      job: {
        state: machineStateOf(jobMachine, cp.job),
        startedAt: cp.job.startedAt,
        end: cp.job.end,
        steps: cp.job.steps.map((s) => ({ step: s.step, ended: s.end !== undefined })),
      },
      steps,
      task,
    };
  }

  private contextsAt(index: number): Checkpoint {
    const k = Math.floor(index / this.every);
    while (this.checkpoints.length <= k) {
      const n = this.checkpoints.length;
      this.checkpoints.push(this.apply(this.checkpoints[n - 1]!, (n - 1) * this.every + 1, n * this.every));
    }
    return this.apply(this.checkpoints[k]!, k * this.every + 1, index);
  }

  /** Applies inputs `from..to` (inclusive) to a checkpoint; input 0 (the submission) changes nothing. */
  private apply(start: Checkpoint, from: number, to: number): Checkpoint {
    let job = start.job;
    let steps: Map<string, StepContext> | undefined;
    const get = (id: string) => (steps ?? start.steps).get(id);
    const set = (id: string, ctx: StepContext) => (steps ??= new Map(start.steps)).set(id, ctx);
    for (let i = Math.max(1, from); i <= Math.min(to, this.total - 1); i++) {
      const input = this.inputs[i]!;
      if (input.kind === "submit") continue;
      const before = get(input.step);
      if (!before) continue;
      let after: StepContext;
      if (input.kind === "launch") {
        job = applyJobEvent(job, { type: "STEP_STARTED", step: input.step, at: input.at }).context;
        after = applyStepEvent(before, { type: "LAUNCH", placement: input.placement, at: input.at }).context;
      } else {
        after = applyStepEvent(before, { type: "TASKS", events: [{ rank: input.rank, event: machineEvent(input) }] }).context;
      }
      set(input.step, after);
      if (after.end && !before.end) job = applyJobEvent(job, { type: "STEP_ENDED", step: input.step, end: after.end }).context;
    }
    return { job, steps: steps ?? start.steps };
  }
}

function machineEvent(input: Extract<ReplayInput, { kind: "task" }>): MachineTaskEvent {
  return input.type === "task.started"
    ? { type: "STARTED", epoch: input.epoch, pid: input.pid ?? 0, at: input.at }
    : { type: "ENDED", epoch: input.epoch, outcome: input.outcome!, pid: input.pid, at: input.at };
}

function stepState(stepId: string, ctx: StepContext): StepReplayState {
  const picture = stepPicture(ctx);
  return {
    stepId,
    state: machineStateOf(stepMachine, ctx),
    ntasks: ctx.ntasks,
    counts: ctx.counts,
    groups: picture.groups,
    nodes: picture.nodes,
    killedByRuntime: picture.killedByRuntime,
    firstFailure: ctx.firstFailure,
    end: ctx.end,
    launchedAt: ctx.launchedAt,
    staleEvents: ctx.staleEvents,
    duplicateEvents: ctx.duplicateEvents,
  };
}

/** The placement of a step: its ranks per node (from the view) with the epoch its events came from. */
export function placementOf(
  step: JobView["steps"][number],
  events: readonly RecordedTaskEvent[],
  nodeEpochs: Readonly<Record<string, string>>,
): Placement[] {
  const epochs = new Map<string, string>();
  for (const { event } of events) {
    if (String(event.step) === step.stepId && !epochs.has(event.node)) epochs.set(event.node, event.epoch);
  }
  return Object.entries(step.nodes)
    .filter(([node]) => node !== "unplaced")
    .map(([node, ranks]) => ({ node, epoch: epochs.get(node) ?? nodeEpochs[node] ?? "unknown", ranks }));
}

function buildInputs(view: JobView, events: readonly RecordedTaskEvent[], nodeEpochs: Readonly<Record<string, string>>): ReplayInput[] {
  const inputs: ReplayInput[] = [{ index: 0, kind: "submit", at: view.submittedAt }];
  const launches = view.steps
    .filter((s) => s.launchedAt !== undefined)
    .sort((a, b) => a.launchedAt! - b.launchedAt!)
    .map((s) => ({ step: s.stepId, at: s.launchedAt!, placement: placementOf(s, events, nodeEpochs) }));
  const flush = (until: (l: (typeof launches)[number]) => boolean) => {
    while (launches.length && until(launches[0]!)) {
      const l = launches.shift()!;
      inputs.push({ index: inputs.length, kind: "launch", ...l });
    }
  };
  const sorted = [...events].sort((a, b) => a.seq - b.seq);
  for (const { seq, event } of sorted) {
    const step = String(event.step);
    // A step is launched before its first event, and before any event recorded after its launch time.
    const own = launches.findIndex((l) => l.step === step);
    let left = own + 1;
    flush((l) => left-- > 0 || l.at <= event.at);
    inputs.push({
      index: inputs.length,
      kind: "task",
      at: event.at,
      seq,
      step,
      rank: event.rank,
      node: event.node,
      epoch: event.epoch,
      type: event.type,
      pid: event.pid,
      outcome: event.type === "task.ended" ? event.outcome : undefined,
    });
  }
  flush(() => true);
  return inputs;
}
