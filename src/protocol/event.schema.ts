/**
 * Task events, agent → supervisor over JetStream (stream `<P>_EVENTS`) on
 * `<p>.evt.<node>.<job>.<step>.<task>`, published with a message id so retries de-duplicate.
 */
import { z } from "zod";
import {
  EpochMsSchema,
  EpochSchema,
  JobIdSchema,
  NodeNameSchema,
  PidSchema,
  RankSchema,
  StepIdSchema,
  VersionSchema,
} from "./common.schema.js";
import { AgentTaskOutcomeSchema } from "./outcome.schema.js";

/** `task.started`: the process of a task was spawned. */
export const TaskStartedSchema = z
  .object({
    type: z.literal("task.started"),
    v: VersionSchema,
    job: JobIdSchema,
    step: StepIdSchema,
    rank: RankSchema,
    node: NodeNameSchema,
    epoch: EpochSchema,
    pid: PidSchema,
    at: EpochMsSchema,
  })
  .meta({ title: "task.started", description: "Agent event: a task's process started." });

/** `task.ended`: a task's process ended (or could not be launched); the wait status decoded losslessly. */
export const TaskEndedSchema = z
  .object({
    type: z.literal("task.ended"),
    v: VersionSchema,
    job: JobIdSchema,
    step: StepIdSchema,
    rank: RankSchema,
    node: NodeNameSchema,
    epoch: EpochSchema,
    outcome: AgentTaskOutcomeSchema,
    /** Absent when the launch failed before a process existed. */
    pid: PidSchema.optional(),
    /** Bytes of the task's stdout and stderr the agent could not forward (absent when none was lost). */
    outputLostBytes: z.number().int().min(1).optional(),
    at: EpochMsSchema,
  })
  .meta({ title: "task.ended", description: "Agent event: a task ended with an exit code or signal, or failed to launch." });

/** Every task event, discriminated by `type`. */
export const TaskEventSchema = z.discriminatedUnion("type", [TaskStartedSchema, TaskEndedSchema]);

/** A `task.started` event. */
export type TaskStarted = z.infer<typeof TaskStartedSchema>;
/** A `task.ended` event. */
export type TaskEnded = z.infer<typeof TaskEndedSchema>;
/** Any task event. */
export type TaskEvent = z.infer<typeof TaskEventSchema>;
