/**
 * The wire form of a task outcome, checked against the exit-status module's `TaskOutcome`
 * so that the schema and the type can never drift.
 */
import { z } from "zod";
import type { TaskOutcome } from "../exit-status/outcome.js";
import { SignalNumberSchema } from "./common.schema.js";

/** `exited(code)`: the process exited by itself with a code 0..255. */
export const ExitedOutcomeSchema = z.object({
  kind: z.literal("exited"),
  code: z.number().int().min(0).max(255),
});

/** `signaled(signal, coreDumped)`: the process was terminated by a signal; never folded into 128+n. */
export const SignaledOutcomeSchema = z.object({
  kind: z.literal("signaled"),
  signal: SignalNumberSchema,
  coreDumped: z.boolean(),
});

/** `launch_failed`: the command could not be executed (127 not found, 126 not executable) with the OS error text. */
export const LaunchFailedOutcomeSchema = z.object({
  kind: z.literal("launch_failed"),
  code: z.union([z.literal(126), z.literal(127)]),
  error: z.string(),
});

/** `node_lost`: decided by the supervisor when a node died while the task ran; carries no status. */
export const NodeLostOutcomeSchema = z.object({
  kind: z.literal("node_lost"),
});

/** Every task outcome (what the supervisor records and notifies). */
export const TaskOutcomeSchema = z.discriminatedUnion("kind", [
  ExitedOutcomeSchema,
  SignaledOutcomeSchema,
  LaunchFailedOutcomeSchema,
  NodeLostOutcomeSchema,
]) satisfies z.ZodType<TaskOutcome>;

/** The outcomes an agent may report in `task.ended` (never `node_lost`). */
export const AgentTaskOutcomeSchema = z.discriminatedUnion("kind", [
  ExitedOutcomeSchema,
  SignaledOutcomeSchema,
  LaunchFailedOutcomeSchema,
]) satisfies z.ZodType<TaskOutcome>;

/** An outcome an agent may report. */
export type AgentTaskOutcome = z.infer<typeof AgentTaskOutcomeSchema>;
