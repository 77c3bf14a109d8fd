/**
 * The job machine: owns its steps' outcomes (the batch step if any, and the numbered steps),
 * cancellation, and the job's verdict with its DerivedExitCode. Steps run as their own machines
 * hosted by the service; the job hears of them through STEP_* events.
 */
import { enqueueActions, setup } from "xstate";
import { decideJob, formatExitCode, parseExitCode, type FinalState, type StepVerdict } from "../src/exit-status/index.js";
import type { StepEnd } from "./step.machine.js";

/** How the job was made: `muster run` (one step) or `muster batch` (a batch step plus steps). */
export type JobKind = "run" | "batch";

/** What a job is created with. */
export interface JobInput {
  readonly job: string;
  readonly user: string;
  readonly kind: JobKind;
  readonly submittedAt: number;
}

/** One step as the job sees it. */
export interface JobStepRecord {
  readonly step: string;
  readonly startedAt?: number;
  readonly end?: StepEnd;
}

/** The job's verdict as stored and published. */
export interface JobEnd {
  readonly state: FinalState;
  readonly reason: string;
  readonly exitCode: string;
  readonly derivedExitCode: string;
  readonly failedNodes: readonly string[];
  readonly at: number;
}

/** Everything the job knows. */
export interface JobContext {
  readonly job: string;
  readonly user: string;
  readonly kind: JobKind;
  readonly submittedAt: number;
  readonly startedAt?: number;
  readonly steps: readonly JobStepRecord[];
  readonly cancelled: boolean;
  readonly cancelledBy?: string;
  readonly end?: JobEnd;
}

/** Events a job takes. */
export type JobEvent =
  | { readonly type: "STEP_STARTED"; readonly step: string; readonly at: number }
  | { readonly type: "STEP_ENDED"; readonly step: string; readonly end: StepEnd }
  | { readonly type: "CANCEL"; readonly by: string; readonly at: number; readonly killWaitMs?: number };

/** Effects the job asks for. */
export type JobEffect =
  | { readonly type: "cancelSteps"; readonly params: { readonly steps: readonly string[]; readonly by: string; readonly at: number; readonly killWaitMs?: number } }
  | { readonly type: "jobEnded"; readonly params: { readonly job: string; readonly end: JobEnd } };

/** The step id of a batch job's script. */
export const BATCH_STEP = "batch";

/** The step whose verdict is the job's. */
function mainStepId(kind: JobKind): string {
  return kind === "batch" ? BATCH_STEP : "0";
}

/** The initial context of a job. */
export function initialJobContext(input: JobInput): JobContext {
  return { job: input.job, user: input.user, kind: input.kind, submittedAt: input.submittedAt, steps: [], cancelled: false };
}

function liveSteps(ctx: JobContext): string[] {
  return ctx.steps.filter((s) => !s.end).map((s) => s.step);
}

function toVerdict(end: StepEnd): StepVerdict {
  return { state: end.state, reason: end.reason, exitCode: parseExitCode(end.exitCode), failedNodes: end.failedNodes, runExitStatus: end.runExitStatus };
}

/** Applies one event to a job; every rule of the job lives here. */
export function applyJobEvent(ctx: JobContext, event: JobEvent): { context: JobContext; effects: JobEffect[] } {
  const effects: JobEffect[] = [];
  if (ctx.end) return { context: ctx, effects };
  switch (event.type) {
    case "STEP_STARTED": {
      if (ctx.steps.some((s) => s.step === event.step)) return { context: ctx, effects };
      ctx = { ...ctx, startedAt: ctx.startedAt ?? event.at, steps: [...ctx.steps, { step: event.step, startedAt: event.at }] };
      if (ctx.cancelled) effects.push({ type: "cancelSteps", params: { steps: [event.step], by: ctx.cancelledBy ?? "unknown", at: event.at } });
      break;
    }
    case "STEP_ENDED": {
      const known = ctx.steps.some((s) => s.step === event.step);
      const steps = known
        ? ctx.steps.map((s) => (s.step === event.step && !s.end ? { ...s, end: event.end } : s))
        : [...ctx.steps, { step: event.step, end: event.end }];
      ctx = { ...ctx, steps };
      const main = steps.find((s) => s.step === mainStepId(ctx.kind));
      if (main?.end) {
        const live = liveSteps(ctx);
        if (live.length) {
          // The batch script ended while steps still run: Slurm ends them with it.
          effects.push({ type: "cancelSteps", params: { steps: live, by: "batch-ended", at: event.end.at } });
        } else {
          const numbered = steps.filter((s) => s.step !== BATCH_STEP && s.end).map((s) => toVerdict(s.end!));
          const v = decideJob(ctx.kind === "batch" ? { batch: toVerdict(main.end), steps: numbered } : { steps: [toVerdict(main.end)] });
          const cancelled = ctx.cancelled && v.state !== "NODE_FAIL";
          const end: JobEnd = {
            state: cancelled ? "CANCELLED" : v.state,
            reason: cancelled ? "None" : v.reason,
            exitCode: formatExitCode(v.exitCode),
            derivedExitCode: formatExitCode(v.derivedExitCode),
            failedNodes: v.failedNodes,
            at: Math.max(event.end.at, ...steps.map((s) => s.end?.at ?? 0)),
          };
          ctx = { ...ctx, end };
          effects.push({ type: "jobEnded", params: { job: ctx.job, end } });
        }
      }
      break;
    }
    case "CANCEL": {
      const first = !ctx.cancelled;
      ctx = { ...ctx, cancelled: true, cancelledBy: ctx.cancelledBy ?? event.by };
      if (ctx.steps.length === 0) {
        // Cancelled before any step started (a pending job): it ends at once.
        const end: JobEnd = { state: "CANCELLED", reason: "None", exitCode: "0:0", derivedExitCode: "0:0", failedNodes: [], at: event.at };
        ctx = { ...ctx, end };
        effects.push({ type: "jobEnded", params: { job: ctx.job, end } });
        break;
      }
      const live = liveSteps(ctx);
      // A second cancel is forwarded too: each step escalates to SIGKILL at once.
      if (live.length || first) effects.push({ type: "cancelSteps", params: { steps: live, by: event.by, at: event.at, killWaitMs: event.killWaitMs } });
      break;
    }
  }
  return { context: ctx, effects };
}

/** The job machine's final state for each verdict. */
export const JOB_FINAL_STATES = { COMPLETED: "completed", FAILED: "failed", CANCELLED: "cancelled", TIMEOUT: "timeout", NODE_FAIL: "nodeFail" } as const;

/** The job machine's states. */
export type JobStateName = "pending" | "running" | "completing" | (typeof JOB_FINAL_STATES)[keyof typeof JOB_FINAL_STATES];

/**
 * Where the machine's eventless (`always`) transitions lead from `value` with context `ctx`: a
 * verdict picks its final state; a cancelled job is completing; a started one is running. The
 * machine below and `settleJobState` must agree (test/unit/job-host.test.ts checks it on random
 * event sequences against an XState actor).
 */
export function settleJobState(value: JobStateName, ctx: JobContext): JobStateName {
  if (ctx.end) return JOB_FINAL_STATES[ctx.end.state];
  if (value === "pending") return ctx.cancelled ? "completing" : ctx.startedAt !== undefined ? "running" : "pending";
  if (value === "running" && ctx.cancelled) return "completing";
  return value;
}

/** True for the job machine's final states. */
export function isJobFinal(value: JobStateName): boolean {
  return (Object.values(JOB_FINAL_STATES) as string[]).includes(value);
}

const noop = () => {};

/** The job machine. */
export const jobMachine = setup({
  types: { context: {} as JobContext, events: {} as JobEvent, input: {} as JobInput, output: {} as JobEnd },
  actions: {
    apply: enqueueActions(({ context, event, enqueue }) => {
      const next = applyJobEvent(context, event);
      if (next.context !== context) enqueue.assign(() => next.context);
      for (const effect of next.effects) enqueue(effect as never);
    }),
    cancelSteps: (_args, _params: { steps: readonly string[]; by: string; at: number; killWaitMs?: number }) => noop(),
    jobEnded: (_args, _params: { job: string; end: JobEnd }) => noop(),
  },
  guards: {
    ended: ({ context }, params: { state: FinalState }) => context.end?.state === params.state,
    started: ({ context }) => context.startedAt !== undefined,
    cancelling: ({ context }) => context.cancelled,
  },
}).createMachine({
  id: "job",
  context: ({ input }) => initialJobContext(input),
  initial: "pending",
  output: ({ context }) => context.end!,
  on: {
    STEP_STARTED: { actions: "apply" },
    STEP_ENDED: { actions: "apply" },
    CANCEL: { actions: "apply" },
  },
  always: [
    { guard: { type: "ended", params: { state: "COMPLETED" } }, target: ".completed" },
    { guard: { type: "ended", params: { state: "FAILED" } }, target: ".failed" },
    { guard: { type: "ended", params: { state: "CANCELLED" } }, target: ".cancelled" },
    { guard: { type: "ended", params: { state: "TIMEOUT" } }, target: ".timeout" },
    { guard: { type: "ended", params: { state: "NODE_FAIL" } }, target: ".nodeFail" },
  ],
  states: {
    pending: { always: [{ guard: "cancelling", target: "completing" }, { guard: "started", target: "running" }] },
    running: { always: { guard: "cancelling", target: "completing" } },
    completing: {},
    completed: { type: "final" },
    failed: { type: "final" },
    cancelled: { type: "final" },
    timeout: { type: "final" },
    nodeFail: { type: "final" },
  },
});
