/**
 * Task outcomes, kept lossless: an exit code and a signal are never folded into one number.
 * This file holds the types and the decoders from what the OS and Node report.
 */

/** How one task ended. `exited` and `signaled` come from the wait status; the rest are decided by the supervisor. */
export type TaskOutcome =
  | { readonly kind: "exited"; readonly code: number }
  | { readonly kind: "signaled"; readonly signal: number; readonly coreDumped: boolean }
  | { readonly kind: "launch_failed"; readonly code: 126 | 127; readonly error: string }
  | { readonly kind: "node_lost" };

/** The facts about one finished task that every reduction and rendering needs. */
export interface TaskResult {
  readonly rank: number;
  readonly node: string;
  readonly outcome: TaskOutcome;
  /** True when muster itself asked the task to stop (cancel, kill-on-bad-exit, --wait, time limit). */
  readonly killedByRuntime: boolean;
}

/** Slurm's `code:signal` pair; at most one half is non-zero. */
export interface ExitCode {
  readonly code: number;
  readonly signal: number;
}

/** The success outcome. */
export const EXITED_0: TaskOutcome = Object.freeze({ kind: "exited", code: 0 });

/** Builds an `exited` outcome, checking the code is a byte. */
export function exited(code: number): TaskOutcome {
  if (!Number.isInteger(code) || code < 0 || code > 255) throw new RangeError(`exit code out of range 0..255: ${code}`);
  return { kind: "exited", code };
}

/** Builds a `signaled` outcome, checking the signal number. */
export function signaled(signal: number, coreDumped = false): TaskOutcome {
  if (!Number.isInteger(signal) || signal < 1 || signal > 64) throw new RangeError(`signal out of range 1..64: ${signal}`);
  return { kind: "signaled", signal, coreDumped };
}

/** True when the outcome is anything but `exited(0)`: the condition that triggers the first-failure notification. */
export function isBadOutcome(outcome: TaskOutcome): boolean {
  return !(outcome.kind === "exited" && outcome.code === 0);
}

/** Decodes a raw POSIX wait status (as `waitpid` fills it) losslessly, core-dump flag included. */
export function decodeWaitStatus(status: number): TaskOutcome {
  const termsig = status & 0x7f;
  if (termsig === 0) return exited((status >> 8) & 0xff);
  if (termsig === 0x7f) throw new RangeError(`wait status ${status} is a stopped process, not a termination`);
  return signaled(termsig, (status & 0x80) !== 0);
}

/** Encodes an outcome back to a raw wait status (the inverse of decodeWaitStatus for exited/signaled). */
export function encodeWaitStatus(outcome: TaskOutcome): number {
  if (outcome.kind === "exited") return (outcome.code & 0xff) << 8;
  if (outcome.kind === "signaled") return (outcome.signal & 0x7f) | (outcome.coreDumped ? 0x80 : 0);
  throw new RangeError(`${outcome.kind} has no wait status`);
}
