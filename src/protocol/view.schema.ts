/**
 * What `query` replies carry and what `muster show job --json` prints: the documented, stable view
 * of a job, its steps and its tasks, and of nodes.
 */
import { z } from "zod";
import { EpochMsSchema, ExitCodeStringSchema, IdSetSchema, JobIdSchema, NodeNameSchema, RankSchema, UserSchema } from "./common.schema.js";
import { TaskOutcomeSchema } from "./outcome.schema.js";
import { GROUP_KEY_PATTERN, JobStateSchema, TASK_PICTURE_JSON_SCHEMA, checkTaskPicture, taskPictureShape } from "./state.schema.js";

/** Task states as the task machine names them. */
export const TASK_STATES = ["pending", "launching", "running", "stopping", "exited", "signaled", "launchFailed", "nodeLost"] as const;

/** One task of a step. */
export const TaskViewSchema = z.object({
  rank: RankSchema,
  node: z.string(),
  state: z.enum(TASK_STATES),
  /** `code:signal` once ended; absent while the task lives. */
  exitCode: ExitCodeStringSchema.optional(),
  outcome: TaskOutcomeSchema.optional(),
  pid: z.number().int().optional(),
  /** Bytes of the task's stdout and stderr that were lost on the way (absent when none was). */
  outputLostBytes: z.number().int().min(1).optional(),
  killedByRuntime: z.boolean(),
  startedAt: EpochMsSchema.optional(),
  endedAt: EpochMsSchema.optional(),
});

/** One step of a job. */
export const StepViewSchema = z.object({
  /** `0`, `1`, … or `batch`. */
  stepId: z.string(),
  state: JobStateSchema,
  reason: z.string(),
  exitCode: ExitCodeStringSchema,
  ntasks: z.number().int().min(1),
  failedNodes: z.array(NodeNameSchema),
  /**
   * Ranks by status group (`exited:0`, `running`, …) and those muster stopped: `groups` and
   * `killedByRuntime` as id sets, or for a huge step `packed` or `counts`, as in `step.summary`.
   */
  ...taskPictureShape(GROUP_KEY_PATTERN, IdSetSchema),
  /** Ranks by node. */
  nodes: z.record(z.string(), IdSetSchema),
  firstFailure: z.object({ rank: RankSchema, node: z.string(), outcome: TaskOutcomeSchema, at: EpochMsSchema }).optional(),
  launchedAt: EpochMsSchema.optional(),
  endedAt: EpochMsSchema.optional(),
  /** Every task, unless the step is larger than the reply limit (then `tasksOmitted` is true). */
  tasks: z.array(TaskViewSchema),
  tasksOmitted: z.boolean(),
})
  .superRefine(checkTaskPicture)
  .meta(TASK_PICTURE_JSON_SCHEMA);

/** A job, as `show job --json` prints it. */
export const JobViewSchema = z.object({
  jobId: JobIdSchema,
  name: z.string(),
  user: UserSchema,
  kind: z.enum(["run", "batch"]),
  state: JobStateSchema,
  reason: z.string(),
  exitCode: ExitCodeStringSchema,
  derivedExitCode: ExitCodeStringSchema,
  failedNodes: z.array(NodeNameSchema),
  /** Tasks the job asked for (`-n`). */
  ntasks: z.number().int().min(1),
  /** The nodes of the job's allocation, in order; empty while it waits. */
  nodes: z.array(NodeNameSchema),
  submittedAt: EpochMsSchema,
  startedAt: EpochMsSchema.optional(),
  endedAt: EpochMsSchema.optional(),
  steps: z.array(StepViewSchema),
});

/** A node, as `muster nodes --json` prints it. */
export const NodeViewSchema = z.object({
  node: NodeNameSchema,
  state: z.enum(["unknown", "online", "suspect", "lost", "draining", "offline"]),
  reason: z.string().optional(),
  epoch: z.string().optional(),
  slots: z.number().int().min(0),
  since: EpochMsSchema.optional(),
  lastSeenAt: EpochMsSchema.optional(),
  runningTasks: z.number().int().min(0),
});

/** One task. */
export type TaskView = z.infer<typeof TaskViewSchema>;
/** One step. */
export type StepView = z.infer<typeof StepViewSchema>;
/** One job. */
export type JobView = z.infer<typeof JobViewSchema>;
/** One node. */
export type NodeView = z.infer<typeof NodeViewSchema>;
