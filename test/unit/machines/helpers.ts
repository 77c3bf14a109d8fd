/** Shared helpers for the machine tests: a seeded PRNG, outcomes, and recording fakes for effects. */
import type { TaskOutcome } from "../../../src/exit-status/index.js";

/** mulberry32: a small seeded PRNG, so random tests are reproducible. */
export function prng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/** A random element of `items`. */
export function pick<T>(rand: () => number, items: readonly T[]): T {
  return items[Math.floor(rand() * items.length)]!;
}

/** Every permutation of `items` (use on small sets only). */
export function permutations<T>(items: readonly T[]): T[][] {
  if (items.length <= 1) return [items.slice()];
  const out: T[][] = [];
  items.forEach((item, i) => {
    for (const rest of permutations([...items.slice(0, i), ...items.slice(i + 1)])) out.push([item, ...rest]);
  });
  return out;
}

export const exit = (code: number): TaskOutcome => ({ kind: "exited", code });
export const sig = (signal: number, coreDumped = false): TaskOutcome => ({ kind: "signaled", signal, coreDumped });
export const launchFailed = (code: 126 | 127 = 127): TaskOutcome => ({ kind: "launch_failed", code, error: "No such file or directory" });

/** An effect as a recording fake saw it. */
export interface Recorded {
  readonly type: string;
  readonly params: any;
}

/**
 * Recording fakes for a machine's named effects, to pass to `machine.provide({ actions })`.
 * Each fake pushes `{ type, params }` onto `calls`.
 */
export function recordingActions<K extends string>(names: readonly K[]): { calls: Recorded[]; actions: Record<K, (args: unknown, params: unknown) => void> } {
  const calls: Recorded[] = [];
  const actions = Object.fromEntries(names.map((type) => [type, (_args: unknown, params: unknown) => void calls.push({ type, params })])) as Record<
    K,
    (args: unknown, params: unknown) => void
  >;
  return { calls, actions };
}
