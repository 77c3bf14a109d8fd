/**
 * The machines muster charts, by name, and how a job's view (`query` → JobView) names their
 * states: Slurm's job and step states map to the job and step machines' state names.
 */
import type { AnyStateMachine } from "xstate";
import { jobMachine } from "../../machines/job.machine.js";
import { nodeMachine } from "../../machines/node.machine.js";
import { stepMachine } from "../../machines/step.machine.js";
import { taskMachine } from "../../machines/task.machine.js";
import type { JobView } from "../protocol/index.js";

/** Names of the machines that can be charted. */
export const CHART_MACHINE_NAMES = ["job", "step", "task", "node"] as const;
/** A machine name. */
export type ChartMachineName = (typeof CHART_MACHINE_NAMES)[number];

/** The machines, by name. */
export const CHART_MACHINES: Readonly<Record<ChartMachineName, AnyStateMachine>> = {
  job: jobMachine,
  step: stepMachine,
  task: taskMachine,
  node: nodeMachine,
};

/** True when `name` names a chartable machine. */
export function isChartMachineName(name: string): name is ChartMachineName {
  return (CHART_MACHINE_NAMES as readonly string[]).includes(name);
}

/** Slurm's job/step states and the job/step machines' state names. */
export const SLURM_TO_MACHINE_STATE = {
  PENDING: "pending",
  RUNNING: "running",
  COMPLETING: "completing",
  COMPLETED: "completed",
  FAILED: "failed",
  CANCELLED: "cancelled",
  TIMEOUT: "timeout",
  NODE_FAIL: "nodeFail",
} as const;

/** The job/step machine state of a Slurm job or step state; undefined for a name it does not know. */
export function machineStateOfSlurm(state: string): string | undefined {
  return (SLURM_TO_MACHINE_STATE as Record<string, string>)[state];
}

/** What to chart for a job: a machine and the state ids to light. */
export interface ChartTarget {
  readonly machine: ChartMachineName;
  readonly active: readonly string[];
  /** What the chart shows, for a caption: `job 12`, `step 12.0`, `task 12.0 rank 3`. */
  readonly caption: string;
}

/**
 * Picks the machine and current state from a job's view: the job, one of its steps, or one task
 * of a step. Throws an Error naming the missing step or rank.
 */
export function chartTargetOfJob(view: JobView, select: { readonly step?: string; readonly rank?: number } = {}): ChartTarget {
  if (select.step === undefined) {
    if (select.rank !== undefined) throw new Error("a rank needs a step (--step)");
    return { machine: "job", active: activeOf(view.state), caption: `job ${view.jobId}` };
  }
  const step = view.steps.find((s) => s.stepId === select.step);
  if (!step) throw new Error(`job ${view.jobId} has no step ${select.step} (steps: ${view.steps.map((s) => s.stepId).join(", ") || "none"})`);
  if (select.rank === undefined) return { machine: "step", active: activeOf(step.state), caption: `step ${view.jobId}.${step.stepId}` };
  const task = step.tasks.find((t) => t.rank === select.rank);
  if (!task) {
    const why = step.tasksOmitted ? "the reply omits this step's tasks (too many)" : `ranks 0-${step.ntasks - 1}`;
    throw new Error(`step ${view.jobId}.${step.stepId} has no task of rank ${select.rank} (${why})`);
  }
  return { machine: "task", active: [task.state], caption: `task ${view.jobId}.${step.stepId} rank ${task.rank}` };
}

function activeOf(slurm: string): string[] {
  const s = machineStateOfSlurm(slurm);
  return s ? [s] : [];
}
