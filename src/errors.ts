// The codes only, not the schemas: the error class loads without zod (CLI help and usage errors).
import { ERROR_CODES as WIRE_ERROR_CODES } from "./protocol/error-codes.js";

/**
 * One error type for muster, with stable codes. What crosses NATS is a plain `Failure`
 * (`code`, `message`, `details`), converted at the edge.
 */

/** Every error code muster uses: the wire codes, plus codes that never leave a process. */
export const ERROR_CODES = [...WIRE_ERROR_CODES, "USAGE", "CONFIG", "NODE_IN_USE"] as const;
/** An error code. */
export type ErrorCode = (typeof ERROR_CODES)[number];

/** The serialisable form of an error, as it travels in replies and dead letters. */
export interface Failure {
  readonly code: ErrorCode;
  readonly message: string;
  readonly details?: Record<string, unknown>;
}

/** muster's one error class. */
export class MusterError extends Error {
  override readonly name = "MusterError";
  constructor(
    readonly code: ErrorCode,
    message: string,
    readonly details?: Record<string, unknown>,
    options?: { cause?: unknown },
  ) {
    super(message, options);
  }

  /** The wire form. */
  toFailure(): Failure {
    return this.details ? { code: this.code, message: this.message, details: this.details } : { code: this.code, message: this.message };
  }

  /** Rebuilds an error from its wire form. */
  static fromFailure(f: Failure): MusterError {
    return new MusterError(f.code, f.message, f.details);
  }
}

/** Turns anything thrown into a Failure; unknown errors become INTERNAL with their message. */
export function toFailure(err: unknown): Failure {
  if (err instanceof MusterError) return err.toFailure();
  return { code: "INTERNAL", message: err instanceof Error ? err.message : String(err) };
}
