/**
 * Node lifecycle messages, agent → supervisor on `<p>.node.<node>.{hello,hb,draining,bye}`
 * (captured by stream `<P>_NODES`; the supervisor may also listen with core subscriptions).
 */
import { z } from "zod";
import { EpochMsSchema, EpochSchema, NodeNameSchema, PidSchema, PositiveIntSchema, VersionSchema } from "./common.schema.js";

/** `hello`: an agent incarnation (node + fresh epoch) came up and offers `slots` task slots. */
export const HelloSchema = z
  .object({
    type: z.literal("hello"),
    v: VersionSchema,
    node: NodeNameSchema,
    epoch: EpochSchema,
    slots: PositiveIntSchema,
    pid: PidSchema,
    hostname: z.string().min(1).max(255),
    version: z.string().min(1).max(64),
    at: EpochMsSchema,
  })
  .meta({ title: "hello", description: "Agent announces a new node incarnation." });

/** `heartbeat`: the agent is alive; `seq` counts up from 0 per epoch. */
export const HeartbeatSchema = z
  .object({
    type: z.literal("heartbeat"),
    v: VersionSchema,
    node: NodeNameSchema,
    epoch: EpochSchema,
    seq: z.number().int().min(0),
    at: EpochMsSchema,
    running: z.number().int().min(0),
    /** The node's slots, so a supervisor that missed the hello (restart, lost record) still learns the node. */
    slots: PositiveIntSchema.optional(),
  })
  .meta({ title: "heartbeat", description: "Agent liveness beat with its running-task count." });

/** Why an agent said bye. */
export const BYE_REASONS = ["shutdown", "fatal"] as const;

/** `bye`: the agent is leaving and will not reconnect with this epoch. */
export const ByeSchema = z
  .object({
    type: z.literal("bye"),
    v: VersionSchema,
    node: NodeNameSchema,
    epoch: EpochSchema,
    reason: z.enum(BYE_REASONS),
    /** Free text, e.g. the fatal error's message. */
    detail: z.string().max(1024).optional(),
    at: EpochMsSchema,
  })
  .meta({ title: "bye", description: "Agent leaves: graceful shutdown or fatal error." });

/** `draining`: the agent takes no new tasks and is stopping the ones it runs. */
export const DrainingSchema = z
  .object({
    type: z.literal("draining"),
    v: VersionSchema,
    node: NodeNameSchema,
    epoch: EpochSchema,
    at: EpochMsSchema,
  })
  .meta({ title: "draining", description: "Agent starts a graceful shutdown." });

/** Every node lifecycle message, discriminated by `type`. */
export const NodeMessageSchema = z.discriminatedUnion("type", [HelloSchema, HeartbeatSchema, ByeSchema, DrainingSchema]);

/** A `hello` message. */
export type Hello = z.infer<typeof HelloSchema>;
/** A `heartbeat` message. */
export type Heartbeat = z.infer<typeof HeartbeatSchema>;
/** Why an agent said bye. */
export type ByeReason = (typeof BYE_REASONS)[number];
/** A `bye` message. */
export type Bye = z.infer<typeof ByeSchema>;
/** A `draining` message. */
export type Draining = z.infer<typeof DrainingSchema>;
/** Any node lifecycle message. */
export type NodeMessage = z.infer<typeof NodeMessageSchema>;
