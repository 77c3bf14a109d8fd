/**
 * The line srun and slurmstepd print when the runtime stops a step or a job:
 * `*** STEP 12.0 ON node-1 CANCELLED AT 2026-12-07T17:38:04 DUE TO TIME LIMIT ***`.
 * `muster run` prints it for its step; a batch step's agent writes the `*** JOB … ***` form into the
 * job's output file. Times are local, without a zone, as Slurm writes them.
 */

/** What Slurm appends for each reason the runtime stops a step (nothing for a cancel, `-K` or `-W`). */
const DUE_TO: Readonly<Record<string, string>> = {
  "time-limit": " DUE TO TIME LIMIT",
  "node-failure": " DUE TO NODE FAILURE",
};

/** `YYYY-MM-DDTHH:MM:SS` in the local time zone, without the zone (Slurm's timestamps). */
export function formatLocalTime(ms: number): string {
  const d = new Date(ms);
  const p = (n: number) => String(n).padStart(2, "0");
  return `${d.getFullYear()}-${p(d.getMonth() + 1)}-${p(d.getDate())}T${p(d.getHours())}:${p(d.getMinutes())}:${p(d.getSeconds())}`;
}

/**
 * The stop line of a step (`STEP 12.0`) or a job (`JOB 12`), without a prefix. `reason` is the
 * runtime's stop reason (`cancel`, `kill-on-bad-exit`, `wait`, `time-limit`, `node-failure`).
 */
export function stopLine(entity: string, node: string, reason: string, at: number): string {
  return `*** ${entity} ON ${node} CANCELLED AT ${formatLocalTime(at)}${DUE_TO[reason] ?? ""} ***`;
}
