/**
 * The stable error codes of the wire protocol, kept apart from the schemas (no zod) so that the
 * error class, and with it the CLI's help and usage errors, load without the schema library.
 */

/** Stable error codes carried in replies, acks and dead-letter records. */
export const ERROR_CODES = [
  "BAD_REQUEST",
  "BAD_JSON",
  "BAD_SCHEMA",
  "PAYLOAD_TOO_LARGE",
  "UNKNOWN_JOB",
  "UNKNOWN_STEP",
  "FORBIDDEN",
  "NO_NODES",
  "NOT_RUNNING",
  "STALE_EPOCH",
  "DRAINING",
  "TIMEOUT",
  "UNAVAILABLE",
  "INTERNAL",
] as const;

/** One of the stable error codes. */
export type ErrorCode = (typeof ERROR_CODES)[number];
