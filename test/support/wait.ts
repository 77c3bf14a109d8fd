// Polling helpers for tests: wait for a condition with a deadline instead of sleeping a fixed time.
import { setTimeout as delay } from "node:timers/promises";

/** Options for `waitFor`: overall deadline, poll interval and the text of the timeout error. */
export interface WaitForOptions {
  timeoutMs?: number;
  intervalMs?: number;
  message?: string;
}

/** Polls `fn` until it returns a truthy value and resolves with it; a throw counts as "not yet" and the last one becomes the timeout error's cause. */
export async function waitFor<T>(fn: () => T | Promise<T>, opts: WaitForOptions = {}): Promise<NonNullable<T>> {
  const timeoutMs = opts.timeoutMs ?? 5_000;
  const intervalMs = opts.intervalMs ?? 20;
  const deadline = Date.now() + timeoutMs;
  let lastError: unknown;
  for (;;) {
    try {
      const value = await fn();
      if (value) return value as NonNullable<T>;
    } catch (err) {
      lastError = err;
    }
    if (Date.now() >= deadline) break;
    await delay(Math.min(intervalMs, Math.max(0, deadline - Date.now())));
  }
  const what = opts.message ?? "condition not met";
  const detail = lastError === undefined ? "" : `; last error: ${errorText(lastError)}`;
  throw new Error(`waitFor timed out after ${timeoutMs} ms: ${what}${detail}`, { cause: lastError });
}

function errorText(err: unknown): string {
  return err instanceof Error ? err.message : String(err);
}
