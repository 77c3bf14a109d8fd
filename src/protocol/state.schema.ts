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
import { PACKED_BITS, checkPackedTaskStatus, type WireTaskPictureFields } from "./picture.js";

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


/** Why the runtime stops a step: a cancel, `--kill-on-bad-exit`, `--wait`, the time limit or a lost node. */
export const KillReasonSchema = z.enum(["cancel", "kill-on-bad-exit", "wait", "time-limit", "node-failure"]);

/** Why and when the runtime began stopping a step, and on which node that is reported. */
export const StepStoppingSchema = z.object({
  reason: KillReasonSchema,
  at: EpochMsSchema,
  node: NodeNameSchema,
});

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
    /**
     * Steps in `COMPLETING` only: why and when the runtime began stopping the step, and the node that
     * reports it (its first task's, the first not lost); `muster run` prints srun's
     * `*** STEP 12.0 ON node-1 CANCELLED AT … ***` line from it.
     */
    stopping: StepStoppingSchema.optional(),
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

/** The packed form of a task picture: each rank's group index and killed bit, deflated (see `src/protocol/picture.ts`). */
export function packedTaskStatusSchema(keyPattern: RegExp) {
  return z.object({
    keys: z.array(z.string().regex(keyPattern)).min(1).meta({ description: "Group keys, each used by at least one rank: index i in data stands for keys[i]." }),
    bits: z.literal(PACKED_BITS).meta({ description: "Bits per rank in data; keys.length <= 2^bits." }),
    data: z.base64().meta({
      description: "base64 of a zlib stream (RFC 1950) of exactly ceil(ntasks*bits/8) bytes: the group index of each rank, rank 0 first, least significant bits first in each byte (16-bit indexes little-endian); unused bits of the last byte are 0.",
    }),
    killed: z.base64().meta({ description: "base64 of a zlib stream of exactly ceil(ntasks/8) bytes: bit r (byte r>>3, bit r&7 from the least significant) is 1 when muster asked rank r to stop." }),
  });
}

/** The counts form of a task picture: tasks per group, without ranks (a step too large for one message). */
export function taskCountsSchema(keyPattern: RegExp) {
  return z.object({
    groups: z.record(z.string().regex(keyPattern), PositiveIntSchema),
    killedByRuntime: z.number().int().min(0),
  });
}

/** The picture fields of a notification, summary or step view: exactly one of the id-set, packed and counts forms. */
export function taskPictureShape(keyPattern: RegExp, idSet: z.ZodString = NonEmptyIdSetSchema) {
  return {
    /** Id-set form: group key → id set. */
    groups: z.record(z.string().regex(keyPattern), idSet).optional(),
    /** Id-set form: the ranks muster asked to stop (with `groups`). */
    killedByRuntime: IdSetSchema.optional(),
    /** Packed form, instead of `groups` and `killedByRuntime` when their id sets would be large. */
    packed: packedTaskStatusSchema(keyPattern).optional(),
    /** Counts form, when not even the packed form fits in one message. */
    counts: taskCountsSchema(keyPattern).optional(),
  };
}

const OTHER_FORMS = { groups: ["packed", "counts"], packed: ["groups", "killedByRuntime", "counts"], counts: ["groups", "killedByRuntime", "packed"] } as const;

/** JSON Schema of the one-form rule (zod checks it in checkTaskPicture; this makes it visible to other languages). */
export const TASK_PICTURE_JSON_SCHEMA = {
  oneOf: [
    { required: ["groups", "killedByRuntime"], not: { anyOf: OTHER_FORMS.groups.map((k) => ({ required: [k] })) } },
    { required: ["packed"], not: { anyOf: OTHER_FORMS.packed.map((k) => ({ required: [k] })) } },
    { required: ["counts"], not: { anyOf: OTHER_FORMS.counts.map((k) => ({ required: [k] })) } },
  ],
};

/** Checks a parsed picture: exactly one form; a packed form that decodes to `ntasks` ranks; counts that add up to `ntasks`. */
export function checkTaskPicture(value: WireTaskPictureFields, ctx: z.RefinementCtx): void {
  const present = (["groups", "packed", "counts"] as const).filter((k) => value[k] !== undefined);
  if (present.length !== 1) {
    ctx.addIssue({ code: "custom", path: present.length ? [present[1]!] : [], message: `exactly one of groups, packed or counts is required, found ${present.length ? present.join(" and ") : "none"}` });
    return;
  }
  if ((value.groups !== undefined) !== (value.killedByRuntime !== undefined)) {
    ctx.addIssue({ code: "custom", path: ["killedByRuntime"], message: value.groups ? "required with groups" : "only with groups (packed and counts carry their own)" });
  }
  if (value.packed) {
    const why = checkPackedTaskStatus(value.packed, value.ntasks);
    if (why) ctx.addIssue({ code: "custom", path: ["packed"], message: why });
  }
  if (value.counts) {
    const total = Object.values(value.counts.groups).reduce((a, n) => a + n, 0);
    if (total !== value.ntasks) ctx.addIssue({ code: "custom", path: ["counts", "groups"], message: `counts add up to ${total}, not ntasks ${value.ntasks}` });
    if (value.counts.killedByRuntime > value.ntasks) ctx.addIssue({ code: "custom", path: ["counts", "killedByRuntime"], message: `more than ntasks ${value.ntasks}` });
  }
}

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
    /** Every task of the step, grouped by outcome or live state, in one of three forms. */
    ...taskPictureShape(GROUP_KEY_PATTERN),
    nodes: NodesSchema,
  })
  .superRefine(checkTaskPicture)
  .meta({ title: "step.first_failure", description: "The status of every task of a step at its first failure.", ...TASK_PICTURE_JSON_SCHEMA });

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
    ...taskPictureShape(FINAL_GROUP_KEY_PATTERN),
    nodes: NodesSchema,
    state: FinalJobStateSchema,
    reason: z.string().min(1).max(256),
    exitCode: ExitCodeStringSchema,
    failedNode: NodeNameSchema.optional(),
  })
  .superRefine(checkTaskPicture)
  .meta({ title: "step.summary", description: "The final status of every task of a step.", ...TASK_PICTURE_JSON_SCHEMA });

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
/** Why the runtime stops a step. */
export type KillReason = z.infer<typeof KillReasonSchema>;
/** Why and when the runtime began stopping a step (`job.state` of a step in `COMPLETING`). */
export type StepStopping = z.infer<typeof StepStoppingSchema>;
