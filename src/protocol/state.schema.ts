/**
 * What the supervisor publishes for watchers (JetStream, stream `<P>_JOBS`): job/step state
 * changes on `<p>.job.<job>.state`, and on `<p>.job.<job>.step.<step>.exitcodes` the step's
 * first-failure notification followed by its final summary.
 */
import { z } from "zod";
import { FINAL_STATES, LIVE_STATES } from "../exit-status/reduce.js";
import {
  EpochMsSchema,
  ExitCodeStringSchema,
  IdSetSchema,
  JobIdSchema,
  NodeNameSchema,
  NonEmptyIdSetSchema,
  PositiveIntSchema,
  RankSchema,
  StepIdSchema,
  VersionSchema,
} from "./common.schema.js";
import { TaskOutcomeSchema } from "./outcome.schema.js";

/** States a job or step is in while it lives (defined once, in the exit-status module). */
export const LIVE_JOB_STATES = LIVE_STATES;

/** States a job or step ends in (Slurm's names; defined once, in the exit-status module). */
export const FINAL_JOB_STATES = FINAL_STATES;

/** Every job/step state. */
export const JOB_STATES = [...LIVE_JOB_STATES, ...FINAL_JOB_STATES] as const;

/** A job or step state on the wire. */
export const JobStateSchema = z.enum(JOB_STATES);

/** A final job or step state on the wire. */
export const FinalJobStateSchema = z.enum(FINAL_JOB_STATES);

/** Group keys for tasks still in flight: only in a first-failure notification. */
export const LIVE_GROUP_KEYS = ["pending", "launching", "running", "stopping"] as const;

const EXIT = "(?:25[0-5]|2[0-4]\\d|1\\d\\d|[1-9]?\\d)";
const SIG = "(?:6[0-4]|[1-5]\\d|[1-9])";
const FINAL_KEYS = `exited:${EXIT}|signaled:${SIG}(?::core)?|launch_failed:12[67]|node_lost`;

/** Group keys of finished tasks: `exited:<code>`, `signaled:<n>[:core]`, `launch_failed:<126|127>`, `node_lost`. */
export const FINAL_GROUP_KEY_PATTERN = new RegExp(`^(?:${FINAL_KEYS})$`);

/** Any group key, finished or live. */
export const GROUP_KEY_PATTERN = new RegExp(`^(?:${FINAL_KEYS}|${LIVE_GROUP_KEYS.join("|")})$`);


/** `job.state`: a job (no `step`) or one of its steps changed state. */
export const JobStateMessageSchema = z
  .object({
    type: z.literal("job.state"),
    v: VersionSchema,
    job: JobIdSchema,
    step: StepIdSchema.optional(),
    state: JobStateSchema,
    /** Slurm-style reason: `None`, `NonZeroExitCode`, `RaisedSignal:11(Segmentation_fault)`, `NodeDown`, … */
    reason: z.string().min(1).max(256),
    exitCode: ExitCodeStringSchema,
    /** Jobs only: the reduction over non-batch steps. */
    derivedExitCode: ExitCodeStringSchema.optional(),
    failedNode: NodeNameSchema.optional(),
    at: EpochMsSchema,
  })
  .meta({ title: "job.state", description: "A job or step changed state." });

/** The task whose outcome triggered the first-failure notification. */
export const FailureTriggerSchema = z.object({
  rank: RankSchema,
  node: NodeNameSchema,
  outcome: TaskOutcomeSchema,
  at: EpochMsSchema,
});

/** Ranks per node: where each task of the step ran (or was placed). */
const NodesSchema = z.record(NodeNameSchema, NonEmptyIdSetSchema);

/** `step.first_failure`: sent exactly once per step, at the first outcome that is not `exited(0)`. */
export const StepFirstFailureSchema = z
  .object({
    type: z.literal("step.first_failure"),
    v: VersionSchema,
    job: JobIdSchema,
    step: StepIdSchema,
    trigger: FailureTriggerSchema,
    publishedAt: EpochMsSchema,
    ntasks: PositiveIntSchema,
    /** Every task of the step, grouped by outcome or live state: group key → id set. */
    groups: z.record(z.string().regex(GROUP_KEY_PATTERN), NonEmptyIdSetSchema),
    killedByRuntime: IdSetSchema,
    nodes: NodesSchema,
  })
  .meta({ title: "step.first_failure", description: "The status of every task of a step at its first failure." });

/** `step.summary`: the final status of every task of a step, same shape as the notification, nothing live. */
export const StepSummarySchema = z
  .object({
    type: z.literal("step.summary"),
    v: VersionSchema,
    job: JobIdSchema,
    step: StepIdSchema,
    /** Absent when every task exited 0. */
    trigger: FailureTriggerSchema.optional(),
    publishedAt: EpochMsSchema,
    ntasks: PositiveIntSchema,
    groups: z.record(z.string().regex(FINAL_GROUP_KEY_PATTERN), NonEmptyIdSetSchema),
    killedByRuntime: IdSetSchema,
    nodes: NodesSchema,
    state: FinalJobStateSchema,
    reason: z.string().min(1).max(256),
    exitCode: ExitCodeStringSchema,
    failedNode: NodeNameSchema.optional(),
  })
  .meta({ title: "step.summary", description: "The final status of every task of a step." });

/** What is published on a step's exitcodes subject. */
export const StepExitCodesMessageSchema = z.discriminatedUnion("type", [StepFirstFailureSchema, StepSummarySchema]);

/** A job or step state. */
export type JobState = z.infer<typeof JobStateSchema>;
/** A final job or step state. */
export type FinalJobState = z.infer<typeof FinalJobStateSchema>;
/** A live group key. */
export type LiveGroupKey = (typeof LIVE_GROUP_KEYS)[number];
/** A `job.state` message. */
export type JobStateMessage = z.infer<typeof JobStateMessageSchema>;
/** The trigger of a first-failure notification. */
export type FailureTrigger = z.infer<typeof FailureTriggerSchema>;
/** A `step.first_failure` message. */
export type StepFirstFailure = z.infer<typeof StepFirstFailureSchema>;
/** A `step.summary` message. */
export type StepSummary = z.infer<typeof StepSummarySchema>;
/** Anything on a step's exitcodes subject. */
export type StepExitCodesMessage = z.infer<typeof StepExitCodesMessageSchema>;
