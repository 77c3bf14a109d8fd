/**
 * Control requests (CLI → supervisor, core request/reply on `<p>.ctl.<user>.<op>`) and the one
 * reply envelope every request gets. The acting user is the subject's user token: NATS
 * permissions decide who may publish there, so the supervisor trusts the subject, not a field.
 */
import { z } from "zod";
import {
  EpochMsSchema,
  JobIdSchema,
  NodeNameSchema,
  PositiveIntSchema,
  SecondsSchema,
  SignalNumberSchema,
  StepIdSchema,
  UserSchema,
  VersionSchema,
  WireErrorSchema,
} from "./common.schema.js";
import { JobStateSchema } from "./state.schema.js";

/** A string that can be handed to exec (no NUL byte). */
const ExecStringSchema = z.string().regex(/^[^\0]*$/, "must not contain a NUL byte");

/** An argv: at least one element, the first non-empty. */
export const ArgvSchema = z
  .array(ExecStringSchema)
  .min(1)
  .refine((argv) => argv[0] !== "", { message: "argv[0] must not be empty" });

/** An environment: names without `=` or NUL, values without NUL. */
export const EnvSchema = z.record(z.string().regex(/^[^=\0]+$/, "invalid environment variable name"), ExecStringSchema);

/** `--export`: ALL layers the submitted `env` over the node's environment; NONE gives a task the submitted `env` alone (plus muster's and Slurm's variables). */
export const EnvExportSchema = z.enum(["ALL", "NONE"]);

/** What makes a submission a batch job: its script runs as step `batch` on the first node; argv[0] is the script path. */
export const BatchSpecSchema = z.object({
  /** The script path as the user named it (also argv[0]). */
  script: ExecStringSchema.min(1),
  /** The script text captured at submit time; when present the agent runs this text, not the file on its disk. */
  content: z.string().optional(),
  /** File that receives the batch step's stdout (and stderr unless `error` is set); default is the CLI's choice. */
  output: ExecStringSchema.min(1).optional(),
  /** File that receives the batch step's stderr. */
  error: ExecStringSchema.min(1).optional(),
});

/** `submit`: create a job (run or batch), or add a step to `parentJob` when a `run` is issued inside a batch job. */
export const SubmitRequestSchema = z
  .object({
    type: z.literal("submit"),
    v: VersionSchema,
    user: UserSchema,
    name: z.string().min(1).max(256).optional(),
    argv: ArgvSchema,
    env: EnvSchema.optional(),
    cwd: ExecStringSchema.min(1).optional(),
    ntasks: PositiveIntSchema,
    nodes: PositiveIntSchema.optional(),
    ntasksPerNode: PositiveIntSchema.optional(),
    label: z.boolean(),
    killOnBadExit: z.boolean(),
    /** `-k/--no-kill`: when a node fails, only its tasks end (`node_lost`) and the rest run on; by default the step is stopped. */
    noKill: z.boolean().optional(),
    waitSeconds: SecondsSchema.optional(),
    timeLimitSeconds: z.number().positive().optional(),
    killWaitSeconds: SecondsSchema.optional(),
    batch: BatchSpecSchema.optional(),
    parentJob: JobIdSchema.optional(),
    /** How `env` meets the node's environment (`--export`); absent: ALL. */
    envExport: EnvExportSchema.optional(),
    /** `-w/--nodelist`: place the tasks on exactly these nodes. */
    nodelist: z.array(NodeNameSchema).min(1).optional(),
    /** The directory `muster` was run in (SLURM_SUBMIT_DIR; `cwd` differs with `-D`). */
    submitDir: ExecStringSchema.min(1).optional(),
    /** The host `muster` was run on (SLURM_SUBMIT_HOST). */
    submitHost: z.string().min(1).max(255).optional(),
  })
  .refine((m) => !(m.batch !== undefined && m.parentJob !== undefined), {
    message: "a batch job cannot have a parentJob",
    path: ["parentJob"],
  })
  .meta({ title: "submit", description: "Control request: submit a job or add a step to a batch job." });

/** `kill`: stop a job or one step (SIGCONT+SIGTERM, SIGKILL after KillWait), or send `signal` instead of TERM. */
export const KillRequestSchema = z
  .object({
    type: z.literal("kill"),
    v: VersionSchema,
    job: JobIdSchema,
    step: StepIdSchema.optional(),
    signal: SignalNumberSchema.optional(),
    killWaitSeconds: SecondsSchema.optional(),
  })
  .meta({ title: "kill", description: "Control request: cancel a job or one of its steps." });

/** `signal`: deliver a signal to every task of a job or step without ending it. */
export const SignalRequestSchema = z
  .object({
    type: z.literal("signal"),
    v: VersionSchema,
    job: JobIdSchema,
    step: StepIdSchema.optional(),
    signal: SignalNumberSchema,
  })
  .meta({ title: "signal", description: "Control request: deliver a signal to the tasks of a job or step." });

/** What a `query` asks for. */
export const QUERY_KINDS = ["job", "jobs", "nodes", "history"] as const;

/** Filters for `jobs` and `history` queries. */
export const QueryFiltersSchema = z.object({
  user: UserSchema.optional(),
  states: z.array(JobStateSchema).optional(),
  node: NodeNameSchema.optional(),
  since: EpochMsSchema.optional(),
  until: EpochMsSchema.optional(),
  limit: PositiveIntSchema.optional(),
});

/** `query`: read state back (`job` needs `job`). */
export const QueryRequestSchema = z
  .object({
    type: z.literal("query"),
    v: VersionSchema,
    what: z.enum(QUERY_KINDS),
    job: JobIdSchema.optional(),
    filters: QueryFiltersSchema.optional(),
  })
  .refine((m) => m.what !== "job" || m.job !== undefined, { message: "what=job needs a job id", path: ["job"] })
  .meta({ title: "query", description: "Control request: read jobs, one job, nodes or history." });

/** Every control request, discriminated by `type`. */
export const ControlRequestSchema = z.discriminatedUnion("type", [
  SubmitRequestSchema,
  KillRequestSchema,
  SignalRequestSchema,
  QueryRequestSchema,
]);

/** A successful reply; `data` depends on the request. */
export const ReplyOkSchema = z.object({
  type: z.literal("reply"),
  v: VersionSchema,
  ok: z.literal(true),
  data: z.unknown(),
});

/** A failed reply carrying a stable error code. */
export const ReplyErrSchema = z.object({
  type: z.literal("reply"),
  v: VersionSchema,
  ok: z.literal(false),
  error: WireErrorSchema,
});

/** The reply envelope for every control request. */
export const ReplySchema = z
  .discriminatedUnion("ok", [ReplyOkSchema, ReplyErrSchema])
  .meta({ title: "reply", description: "Reply envelope to every control request: ok with data, or a stable error." });

/** Builds a reply schema whose `data` is checked by the given schema. */
export function replySchemaOf<T extends z.ZodType>(data: T) {
  return z.discriminatedUnion("ok", [ReplyOkSchema.extend({ data }), ReplyErrSchema]);
}

/** `data` of a successful `submit` reply. */
export const SubmitReplyDataSchema = z.object({
  job: JobIdSchema,
  step: StepIdSchema,
});

/** A `submit` request. */
export type SubmitRequest = z.infer<typeof SubmitRequestSchema>;
/** A `kill` request. */
export type KillRequest = z.infer<typeof KillRequestSchema>;
/** A `signal` request. */
export type SignalRequest = z.infer<typeof SignalRequestSchema>;
/** A `query` request. */
export type QueryRequest = z.infer<typeof QueryRequestSchema>;
/** What a query asks for. */
export type QueryKind = (typeof QUERY_KINDS)[number];
/** Filters of a query. */
export type QueryFilters = z.infer<typeof QueryFiltersSchema>;
/** The batch part of a submission. */
export type BatchSpec = z.infer<typeof BatchSpecSchema>;
/** Any control request. */
export type ControlRequest = z.infer<typeof ControlRequestSchema>;
/** The reply envelope. */
export type Reply = z.infer<typeof ReplySchema>;
/** A successful reply. */
export type ReplyOk = z.infer<typeof ReplyOkSchema>;
/** A failed reply. */
export type ReplyErr = z.infer<typeof ReplyErrSchema>;
/** Data of a successful submit reply. */
export type SubmitReplyData = z.infer<typeof SubmitReplyDataSchema>;
