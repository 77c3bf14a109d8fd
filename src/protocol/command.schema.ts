/**
 * Supervisor → agent commands, core request/reply on `<p>.node.<node>.cmd`, each answered by
 * `cmd.ack`. A command names the node epoch it targets; an agent of another epoch refuses it
 * with `STALE_EPOCH`, so a command never reaches a later incarnation by accident.
 */
import { z } from "zod";
import { IdSet } from "../idset/index.js";
import {
  EpochMsSchema,
  EpochSchema,
  IdSetSchema,
  JobIdSchema,
  NodeNameSchema,
  NonEmptyIdSetSchema,
  PidSchema,
  PositiveIntSchema,
  SecondsSchema,
  SignalNumberSchema,
  StepIdSchema,
  UserSchema,
  VersionSchema,
  WireErrorSchema,
} from "./common.schema.js";
import { ArgvSchema, BatchSpecSchema, EnvExportSchema, EnvSchema } from "./control.schema.js";
import { KillReasonSchema } from "./state.schema.js";

/** True when `ranks` is an id set of at least one rank, every one below `ntasks`. */
function ranksFit(ranks: string, ntasks: number): boolean {
  try {
    const last = IdSet.parse(ranks).ranges.at(-1);
    return last !== undefined && last[1] < ntasks;
  } catch {
    return false;
  }
}

/** What Slurm's variables of a task are made from (src/task-env.ts): facts about its job and step an agent cannot know alone. */
export const SlurmFactsSchema = z.object({
  jobName: z.string().min(1),
  /** The job's nodes in hostlist form (`node-[1-3]`). */
  jobNodeList: z.string().min(1),
  jobNumNodes: PositiveIntSchema,
  /** The job's tasks per node, Slurm's compressed form (`2(x3),1`). */
  jobTasksPerNode: z.string().min(1),
  stepNodeList: z.string().min(1),
  stepTasksPerNode: z.string().min(1),
  /** Slots of the job's allocation on this node. */
  cpusOnNode: PositiveIntSchema,
  submitDir: z.string().min(1),
  submitHost: z.string().min(1).optional(),
});

/**
 * `cmd.launch`: start the given ranks of a step on this node. Idempotent per (job, step, rank, epoch).
 * The ranks travel as an id set, so the command has the same size for 10 tasks or 100,000.
 */
export const LaunchCommandSchema = z
  .object({
    type: z.literal("cmd.launch"),
    v: VersionSchema,
    job: JobIdSchema,
    step: StepIdSchema,
    node: NodeNameSchema,
    epoch: EpochSchema,
    user: UserSchema,
    argv: ArgvSchema,
    env: EnvSchema,
    cwd: z.string().min(1),
    ntasks: PositiveIntSchema,
    nnodes: PositiveIntSchema,
    /** This node's index among the step's nodes, 0-based. */
    nodeIndex: z.number().int().min(0),
    /** This node's ranks of the step (`0-24999`); a task's local id is its position among them in ascending order. */
    ranks: NonEmptyIdSetSchema,
    label: z.boolean(),
    killWaitSeconds: SecondsSchema,
    /** Present for the `batch` step: script text and output files. */
    batch: BatchSpecSchema.optional(),
    /** NONE: the tasks' environment is `env` alone, not layered over the node's (absent: ALL). */
    envExport: EnvExportSchema.optional(),
    /** What the agent makes Slurm's variables from (absent: it sets none). */
    slurm: SlurmFactsSchema.optional(),
  })
  .refine((m) => ranksFit(m.ranks, m.ntasks), { message: "ranks must be a non-empty id set of ranks below ntasks", path: ["ranks"] })
  .meta({ title: "cmd.launch", description: "Supervisor to agent: start tasks of a step on this node." });

/** `cmd.signal`: deliver a signal to tasks of a step on this node (`ranks` absent: all of them). */
export const SignalCommandSchema = z
  .object({
    type: z.literal("cmd.signal"),
    v: VersionSchema,
    job: JobIdSchema,
    step: StepIdSchema,
    node: NodeNameSchema,
    epoch: EpochSchema,
    ranks: IdSetSchema.optional(),
    signal: SignalNumberSchema,
    /**
     * The first signal of a stop by the runtime: why and when. The agent of a batch step writes
     * `*** JOB 12 ON node-1 CANCELLED AT … [DUE TO TIME LIMIT] ***` into the job's output file, as slurmstepd does.
     */
    notice: z.object({ reason: KillReasonSchema, at: EpochMsSchema }).optional(),
  })
  .meta({ title: "cmd.signal", description: "Supervisor to agent: signal tasks of a step on this node." });

/**
 * `cmd.fence`: the supervisor declared this epoch lost (its tasks are already reported `node_lost`)
 * and has heard from it again, as after a healed partition. The agent of that epoch kills what it
 * still runs of it and says `hello` with a new epoch, which brings the node back into service.
 */
export const FenceCommandSchema = z
  .object({
    type: z.literal("cmd.fence"),
    v: VersionSchema,
    node: NodeNameSchema,
    epoch: EpochSchema,
    /** Why the epoch was declared lost (`NotResponding`, `Disconnected`, …). */
    reason: z.string().min(1).max(64),
  })
  .meta({ title: "cmd.fence", description: "Supervisor to agent: this epoch was declared lost; kill its tasks and come back with a new epoch." });

/**
 * `cmd.ping`: is an agent serving this node? Sent by an agent that is starting, before it takes
 * the node's command subject: an answer means another live agent holds the name. Any epoch.
 */
export const PingCommandSchema = z
  .object({
    type: z.literal("cmd.ping"),
    v: VersionSchema,
    node: NodeNameSchema,
  })
  .meta({ title: "cmd.ping", description: "Agent to agent: does a live agent already serve this node?" });

/** Every node command, discriminated by `type`. */
export const NodeCommandSchema = z.discriminatedUnion("type", [LaunchCommandSchema, SignalCommandSchema, FenceCommandSchema, PingCommandSchema]);

/** A command was accepted (the outcome of each task arrives later as events). */
export const CommandAckOkSchema = z.object({
  type: z.literal("cmd.ack"),
  v: VersionSchema,
  node: NodeNameSchema,
  epoch: EpochSchema,
  ok: z.literal(true),
  /** Set in the answer to `cmd.ping`: the answering agent's process and host. */
  pid: PidSchema.optional(),
  hostname: z.string().min(1).max(255).optional(),
});

/** A command was refused (`STALE_EPOCH`, `DRAINING`, `BAD_SCHEMA`, …). */
export const CommandAckErrSchema = z.object({
  type: z.literal("cmd.ack"),
  v: VersionSchema,
  node: NodeNameSchema,
  epoch: EpochSchema,
  ok: z.literal(false),
  error: WireErrorSchema,
});

/** The agent's reply to a node command. */
export const CommandAckSchema = z
  .discriminatedUnion("ok", [CommandAckOkSchema, CommandAckErrSchema])
  .meta({ title: "cmd.ack", description: "Agent reply to a node command." });

/** A `cmd.launch` command. */
export type LaunchCommand = z.infer<typeof LaunchCommandSchema>;
/** A `cmd.signal` command. */
export type SignalCommand = z.infer<typeof SignalCommandSchema>;
/** A `cmd.fence` command. */
export type FenceCommand = z.infer<typeof FenceCommandSchema>;
/** A `cmd.ping` command. */
export type PingCommand = z.infer<typeof PingCommandSchema>;
/** Any node command. */
export type NodeCommand = z.infer<typeof NodeCommandSchema>;
/** The agent's reply to a node command. */
export type CommandAck = z.infer<typeof CommandAckSchema>;
