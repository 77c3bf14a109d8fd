/**
 * The clocks of a process. Liveness and every deadline run on the monotonic clock, so that a step
 * of the wall clock (NTP, a VM resumed, an operator's `date -s`) changes no verdict; wall time is
 * only for what people read.
 */

/** Monotonic milliseconds from an arbitrary origin: for measuring intervals, never shown. */
export function monotonicMs(): number {
  return performance.now();
}

const anchorWall = Date.now();
const anchorMono = performance.now();

/**
 * A wall-clock reading that advances with the monotonic clock: the wall time when the process
 * started plus the monotonic time elapsed since. It looks like `Date.now()` (epoch milliseconds,
 * so deadlines kept in stored records stay meaningful across a restart) but a wall-clock step
 * while the process runs does not move it. Whole milliseconds, as every time on the wire.
 */
export function steadyNow(): number {
  return Math.floor(anchorWall + (performance.now() - anchorMono));
}
