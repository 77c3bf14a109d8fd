/** Decoding of what Node's child_process reports about a finished process. */
import { exited, signaled, type TaskOutcome } from "./outcome.js";
import { parseSignal } from "./signals.js";

/**
 * Turns the `(code, signal)` pair of a ChildProcess `exit` event into an outcome. Node reports no
 * core-dump flag, so `coreDumped` is supplied by the caller when it knows it (the agent's launcher does).
 */
export function decodeNodeExit(code: number | null, signal: string | null, coreDumped = false): TaskOutcome {
  if (signal !== null) {
    const n = parseSignal(signal);
    if (n === undefined) throw new RangeError(`unknown signal name from child_process: ${signal}`);
    return signaled(n, coreDumped);
  }
  if (code === null) throw new RangeError("child_process reported neither an exit code nor a signal");
  return exited(code);
}
