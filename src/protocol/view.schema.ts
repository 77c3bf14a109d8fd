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
  /** What sacct shows as a step's JobName: `batch` for the batch step, else the executable's name (argv[0] without its directory). */
  name: z.string().optional(),
  /** The command the step's tasks run. */
  argv: z.array(z.string()).optional(),
  /** `argv` joined with spaces, as `show` prints it (Command=). */
  command: z.string().optional(),
  /** The tasks' working directory. */
  workDir: z.string().optional(),
  /** The step's own time limit (`run -t` inside a batch job); absent: none (UNLIMITED). */
  timeLimitSeconds: z.number().positive().optional(),
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
  /** The main step's command (a batch job's: the script and its arguments). */
  argv: z.array(z.string()).optional(),
  /** `argv` joined with spaces (Command=). */
  command: z.string().optional(),
  /** The main step's working directory (WorkDir=). */
  workDir: z.string().optional(),
  /** A batch job's output file (StdOut=); absent for a `run` job, whose output goes to `muster run`. */
  stdOut: z.string().optional(),
  /** A batch job's error file (StdErr=): the output file unless `--error` named another. */
  stdErr: z.string().optional(),
  /** The job's time limit in seconds (TimeLimit=); absent: none (UNLIMITED). */
  timeLimitSeconds: z.number().positive().optional(),
  /** Whole seconds from start to end, or to the reply's time while it runs; 0 while it waits (RunTime=). */
  runTimeSeconds: z.number().int().min(0).optional(),
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
  /** Slots held by started jobs' allocations on this incarnation (sinfo's A of CPUS(A/I/O/T)). */
  allocatedSlots: z.number().int().min(0).optional(),
  /** Slots a job could take now: `slots - allocatedSlots` while online, else 0 (sinfo's I). */
  idleSlots: z.number().int().min(0).optional(),
  /**
   * Present while the supervisor cannot read its events (its NATS connection or JetStream is down,
   * or it is in the grace period after one came back): no node is declared lost for silence and no
   * verdict waits on events meanwhile. Since when, and why.
   */
  livenessPaused: z.object({ since: EpochMsSchema, reason: z.string() }).optional(),
});

/** One task. */
export type TaskView = z.infer<typeof TaskViewSchema>;
/** One step. */
export type StepView = z.infer<typeof StepViewSchema>;
/** One job. */
export type JobView = z.infer<typeof JobViewSchema>;
/** One node. */
export type NodeView = z.infer<typeof NodeViewSchema>;
