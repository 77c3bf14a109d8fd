/**
 * The reductions and the state precedence of the exit-status contract (DESIGN.md, "Exit-status semantics").
 * Every surface gets its ExitCode, state, Reason and exit status from here.
 */
import type { ExitCode, TaskOutcome, TaskResult } from "./outcome.js";
import { compareNodeNames } from "./render.js";
import { signalReason } from "./signals.js";

/** Final states of a step or job, as Slurm names them. */
export const FINAL_STATES = ["COMPLETED", "FAILED", "CANCELLED", "TIMEOUT", "NODE_FAIL"] as const;
/** Live states of a step or job. */
export const LIVE_STATES = ["PENDING", "RUNNING", "COMPLETING"] as const;
/** Every state a step or a job can be in. */
export type RunState = (typeof FINAL_STATES)[number] | (typeof LIVE_STATES)[number];
/** A state a step or job ends in. */
export type FinalState = (typeof FINAL_STATES)[number];

/** True for a state a step or job ends in. */
export function isFinalState(state: string): state is FinalState {
  return (FINAL_STATES as readonly string[]).includes(state);
}

/** The success ExitCode `0:0`. */
export const EXIT_OK: ExitCode = Object.freeze({ code: 0, signal: 0 });

/** The ExitCode pair of one outcome: exited n → n:0, signaled s → 0:s, launch failure → 127:0 or 126:0, node lost → 0:0. */
export function outcomeExitCode(outcome: TaskOutcome): ExitCode {
  switch (outcome.kind) {
    case "exited":
    case "launch_failed":
      return { code: outcome.code, signal: 0 };
    case "signaled":
      return { code: 0, signal: outcome.signal };
    case "node_lost":
      return EXIT_OK;
  }
}

/** Compares two ExitCodes by severity: any signal (higher wins) > non-zero code (higher wins) > 0. */
export function compareSeverity(a: ExitCode, b: ExitCode): number {
  if (a.signal !== b.signal) return a.signal - b.signal;
  return a.code - b.code;
}

/** The most severe of several ExitCodes; `0:0` when there are none. */
export function worstExitCode(codes: Iterable<ExitCode>): ExitCode {
  let worst = EXIT_OK;
  for (const c of codes) if (compareSeverity(c, worst) > 0) worst = c;
  return worst;
}

/**
 * The tasks a reduction looks at: those not killed by the runtime, unless every task was,
 * so that the victims of a kill-on-bad-exit never mask the task that caused it.
 */
export function countedTasks<T extends Pick<TaskResult, "killedByRuntime">>(tasks: readonly T[]): readonly T[] {
  const own = tasks.filter((t) => !t.killedByRuntime);
  return own.length > 0 ? own : tasks;
}

/** A step's ExitCode: the reduction over its tasks with the killedByRuntime rule. */
export function reduceTaskExitCode(tasks: readonly Pick<TaskResult, "outcome" | "killedByRuntime">[]): ExitCode {
  return worstExitCode(countedTasks(tasks).map((t) => outcomeExitCode(t.outcome)));
}

/** What the runtime itself did to a step, beside its tasks' outcomes. */
export interface StepPolicyFacts {
  /** A user cancelled the step or its job. */
  readonly cancelled: boolean;
  /** The step's time limit fired. */
  readonly timedOut: boolean;
}

/** The decided end of a step. */
export interface StepVerdict {
  readonly state: FinalState;
  readonly reason: string;
  readonly exitCode: ExitCode;
  /** Nodes whose loss failed the step (NODE_FAIL only), sorted. */
  readonly failedNodes: readonly string[];
  /** What `muster run` exits with for this step (srun's rule). */
  readonly runExitStatus: number;
}

/**
 * Decides a finished step's state, Reason and ExitCode; first rule that applies wins (Slurm's order):
 * node lost, cancelled, launch failure, signal, non-zero exit, time limit, completed.
 * Rules 4 and 5 look at the same tasks as the ExitCode (killed-by-runtime tasks left out unless all
 * were), except that a timed-out step whose every task muster stopped is TIMEOUT, not FAILED by the
 * signal muster sent. `muster run` exits at least 1 for NODE_FAIL, CANCELLED, JobLaunchFailure and TIMEOUT.
 */
export function decideStep(tasks: readonly TaskResult[], facts: StepPolicyFacts): StepVerdict {
  const exitCode = reduceTaskExitCode(tasks);
  const lostNodes = [...new Set(tasks.filter((t) => t.outcome.kind === "node_lost").map((t) => t.node))].sort(compareNodeNames);
  const allStopped = tasks.length > 0 && tasks.every((t) => t.killedByRuntime);
  const launchFailed = tasks.some((t) => t.outcome.kind === "launch_failed");
  const verdict = (state: FinalState, reason: string, failedNodes: readonly string[] = []): StepVerdict => ({
    state,
    reason,
    exitCode,
    failedNodes,
    runExitStatus: runExitStatus(exitCode, state, reason),
  });

  if (lostNodes.length > 0) return verdict("NODE_FAIL", "NodeDown", lostNodes);
  if (facts.cancelled) return verdict("CANCELLED", "None");
  if (launchFailed) return verdict("FAILED", "JobLaunchFailure");
  if (!(facts.timedOut && allStopped)) {
    if (exitCode.signal !== 0) return verdict("FAILED", signalReason(exitCode.signal));
    if (exitCode.code !== 0) return verdict("FAILED", "NonZeroExitCode");
  }
  if (facts.timedOut) return verdict("TIMEOUT", "TimeLimit");
  return verdict("COMPLETED", "None");
}

/**
 * `muster run`'s own exit status (srun's rule): 128 + the signal of the reduced ExitCode if it is one,
 * else its exit code; at least 1 when the step ended NODE_FAIL, CANCELLED, TIMEOUT or JobLaunchFailure.
 */
export function runExitStatus(exitCode: ExitCode, state: RunState, reason: string): number {
  const status = exitCode.signal !== 0 ? 128 + exitCode.signal : exitCode.code;
  const floor = state === "NODE_FAIL" || state === "CANCELLED" || state === "TIMEOUT" || reason === "JobLaunchFailure" ? 1 : 0;
  return Math.max(status, floor);
}


/** A job's DerivedExitCode: the most severe ExitCode of its non-batch steps; `0:0` when there are none. */
export function derivedExitCode(stepExitCodes: Iterable<ExitCode>): ExitCode {
  return worstExitCode(stepExitCodes);
}

/** The decided end of a job. */
export interface JobVerdict {
  readonly state: FinalState;
  readonly reason: string;
  readonly exitCode: ExitCode;
  readonly derivedExitCode: ExitCode;
  readonly failedNodes: readonly string[];
}

/** What a job's verdict is decided from: its batch step (batch jobs) and its other steps. */
export interface JobParts {
  /** The batch step's verdict; absent for a job made by `muster run`. */
  readonly batch?: StepVerdict;
  /** The verdicts of the numbered steps, in order. */
  readonly steps: readonly StepVerdict[];
}

/**
 * A job's end: a `batch` job takes its batch step's state and ExitCode; a `run` job its only step's.
 * DerivedExitCode is the reduction over the non-batch steps, `0:0` when there are none.
 */
export function decideJob(parts: JobParts): JobVerdict {
  const main = parts.batch ?? parts.steps[0];
  if (!main) throw new RangeError("a job without a batch step needs one step to decide its end");
  return {
    state: main.state,
    reason: main.reason,
    exitCode: main.exitCode,
    derivedExitCode: derivedExitCode(parts.steps.map((s) => s.exitCode)),
    failedNodes: main.failedNodes,
  };
}
