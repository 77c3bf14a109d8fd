/**
 * Building blocks shared by every message schema: tokens, ids, times, signals, id sets.
 * Times on the wire are always integer milliseconds since the Unix epoch (UTC).
 */
import { z } from "zod";
import { ERROR_CODES } from "./error-codes.js";
import { BATCH_STEP, MAX_TOKEN_LENGTH, TOKEN_PATTERN } from "./subjects.js";

/** The protocol version every message carries as `v`; it increments on a breaking change. */
export const PROTOCOL_VERSION = 1;

/** The `v` field: readers reject any version they do not know. */
export const VersionSchema = z.literal(PROTOCOL_VERSION);

/** A value that is also a subject token (user, node, job id): `[A-Za-z0-9_-]{1,128}`. */
export const TokenSchema = z.string().min(1).max(MAX_TOKEN_LENGTH).regex(TOKEN_PATTERN);

/** A user name, as in `<p>.ctl.<user>.*`. */
export const UserSchema = TokenSchema;

/** A node name, as in `<p>.node.<node>.*`. */
export const NodeNameSchema = TokenSchema;

/** A job id. */
export const JobIdSchema = TokenSchema;

/** A node incarnation id, fresh each time an agent starts. */
export const EpochSchema = TokenSchema;

/** A step id: `0, 1, 2 …` for `run` steps or the literal `batch` for a batch job's script. */
export const StepIdSchema = z.union([z.number().int().min(0), z.literal(BATCH_STEP)]);

/** A task's global rank, `0..ntasks-1`. */
export const RankSchema = z.number().int().min(0);

/** A count that is at least one (tasks, nodes, slots). */
export const PositiveIntSchema = z.number().int().min(1);

/** A point in time: integer milliseconds since the Unix epoch. */
export const EpochMsSchema = z.number().int().min(0);

/** A duration in seconds (fractions allowed). */
export const SecondsSchema = z.number().min(0);

/** A signal number, 1..64 (real-time signals included). */
export const SignalNumberSchema = z.number().int().min(1).max(64);

/** An operating-system process id. */
export const PidSchema = z.number().int().min(1);

/** The id-set syntax: comma-separated ranks and ranges, `0-3,7`; empty means no rank. */
export const IDSET_PATTERN = /^(\d+(-\d+)?(,\d+(-\d+)?)*)?$/;

/** An id set of ranks, possibly empty. */
export const IdSetSchema = z.string().regex(IDSET_PATTERN);

/** An id set with at least one rank. */
export const NonEmptyIdSetSchema = z.string().min(1).regex(IDSET_PATTERN);

/** Slurm's ExitCode display `code:signal`, e.g. `0:0`, `3:0`, `0:9`. */
export const EXIT_CODE_PATTERN = /^(25[0-5]|2[0-4]\d|1\d\d|[1-9]?\d):(6[0-4]|[1-5]\d|\d)$/;

/** An ExitCode string `code:signal`. */
export const ExitCodeStringSchema = z.string().regex(EXIT_CODE_PATTERN);

export { ERROR_CODES } from "./error-codes.js";
export type { ErrorCode } from "./error-codes.js";

/** An error code on the wire. */
export const ErrorCodeSchema = z.enum(ERROR_CODES);

/** A serialisable failure that crosses NATS: stable code, one-line message, optional details. */
export const WireErrorSchema = z.object({
  code: ErrorCodeSchema,
  message: z.string(),
  details: z.record(z.string(), z.unknown()).optional(),
});

/** A serialisable failure that crosses NATS. */
export type WireError = z.infer<typeof WireErrorSchema>;
