/**
 * Live mirrors of jobs for the Stately bridge: for every job the inspector sees, a job actor and one
 * actor per step, built from the real machines with `inspect` attached, fed the job's recorded
 * inputs (the same ones a replay applies) and then its new task events as they are recorded. The
 * mirrors' effects are the machines' no-op defaults: they observe, they never act.
 */
import { createActor, type Actor, type InspectionEvent, type Observer } from "xstate";
import { jobMachine } from "../../machines/job.machine.js";
import { stepMachine, type StepPolicies } from "../../machines/step.machine.js";
import type { JobView } from "../../src/protocol/index.js";
import type { RecordedTaskEvent } from "./history.js";
import { JobReplay, type ReplayInput } from "./replay.js";

interface Mirror {
  readonly job: Actor<typeof jobMachine>;
  readonly steps: Map<string, Actor<typeof stepMachine>>;
  lastSeq: number;
}

/** Options of the mirrors. */
export interface JobMirrorsOptions {
  readonly inspect: Observer<InspectionEvent>;
  /** Jobs mirrored at most; the oldest are stopped first. */
  readonly maxJobs?: number;
  readonly policies?: StepPolicies;
}

/** The set of mirrored jobs. */
export class JobMirrors {
  private readonly mirrors = new Map<string, Mirror>();
  private readonly maxJobs: number;

  constructor(private readonly opts: JobMirrorsOptions) {
    this.maxJobs = opts.maxJobs ?? 100;
  }

  /** True when the job is mirrored. */
  has(job: string): boolean {
    return this.mirrors.has(job);
  }

  /** Starts mirroring a job from its view and recorded events. */
  add(view: JobView, events: readonly RecordedTaskEvent[], nodeEpochs: Readonly<Record<string, string>> = {}): void {
    if (this.mirrors.has(view.jobId)) return;
    const replay = new JobReplay(view, events, { nodeEpochs, policies: this.opts.policies });
    const input = { job: view.jobId, user: view.user, kind: view.kind, submittedAt: view.submittedAt };
    const job = createActor(jobMachine, { input, id: `job-${view.jobId}`, inspect: this.opts.inspect }).start();
    const mirror: Mirror = { job, steps: new Map(), lastSeq: 0 };
    for (const s of view.steps) {
      const stepInput = { job: view.jobId, step: s.stepId, ntasks: s.ntasks, policies: this.opts.policies ?? { killOnBadExit: false, killWaitMs: 10_000, nodeTimeoutMs: 10_000 } };
      mirror.steps.set(s.stepId, createActor(stepMachine, { input: stepInput, id: `step-${view.jobId}.${s.stepId}`, inspect: this.opts.inspect }).start());
    }
    this.mirrors.set(view.jobId, mirror);
    for (const i of replay.inputs) this.apply(mirror, i);
    while (this.mirrors.size > this.maxJobs) this.drop(this.mirrors.keys().next().value!);
  }

  /** Applies a newly recorded task event to its job's mirror (ignored when not mirrored or already applied). */
  event(recorded: RecordedTaskEvent): void {
    const mirror = this.mirrors.get(recorded.event.job);
    if (!mirror || recorded.seq <= mirror.lastSeq) return;
    const e = recorded.event;
    this.apply(mirror, {
      index: -1,
      kind: "task",
      at: e.at,
      seq: recorded.seq,
      step: String(e.step),
      rank: e.rank,
      node: e.node,
      epoch: e.epoch,
      type: e.type,
      pid: e.pid,
      outcome: e.type === "task.ended" ? e.outcome : undefined,
    });
  }

  /** Stops every mirror. */
  stop(): void {
    for (const id of [...this.mirrors.keys()]) this.drop(id);
  }

  private drop(id: string): void {
    const m = this.mirrors.get(id);
    if (!m) return;
    for (const s of m.steps.values()) s.stop();
    m.job.stop();
    this.mirrors.delete(id);
  }

  private apply(m: Mirror, input: ReplayInput): void {
    if (input.kind === "submit") return;
    const step = m.steps.get(input.step);
    if (!step) return;
    const ended = step.getSnapshot().context.end !== undefined;
    if (input.kind === "launch") {
      m.job.send({ type: "STEP_STARTED", step: input.step, at: input.at });
      step.send({ type: "LAUNCH", placement: input.placement, at: input.at });
    } else {
      m.lastSeq = Math.max(m.lastSeq, input.seq);
      const event =
        input.type === "task.started"
          ? { type: "STARTED" as const, epoch: input.epoch, pid: input.pid ?? 0, at: input.at }
          : { type: "ENDED" as const, epoch: input.epoch, outcome: input.outcome!, pid: input.pid, at: input.at };
      step.send({ type: "TASKS", events: [{ rank: input.rank, event }] });
    }
    const end = step.getSnapshot().context.end;
    if (end && !ended) m.job.send({ type: "STEP_ENDED", step: input.step, end });
  }
}
