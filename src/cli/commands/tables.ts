/**
 * `muster queue` (like squeue) and `muster history` (like sacct): rows of jobs and steps, with
 * `--format FIELD,...`, `--parsable2` (`|`-separated, no trailing `|`), `--noheader` and `--json`.
 */
import { MusterError } from "../../errors.js";
import { FINAL_STATES, LIVE_STATES } from "../../exit-status/index.js";
import type { JobView, StepView } from "../../protocol/index.js";
import type { OptionSpec, ParsedArgs } from "../args.js";
import { formatTime } from "../render.js";

/** One printable row: a job, or one of its steps. */
interface Row {
  readonly job: JobView;
  readonly step?: StepView;
}

type Field = { readonly header: string; readonly width: number; readonly get: (r: Row, now: number) => string };

/** Slurm's elapsed form: `MM:SS`, `HH:MM:SS`, `D-HH:MM:SS`. */
export function formatElapsed(ms: number): string {
  const total = Math.max(0, Math.floor(ms / 1000));
  const d = Math.floor(total / 86400);
  const h = Math.floor((total % 86400) / 3600);
  const m = Math.floor((total % 3600) / 60);
  const s = total % 60;
  const p = (n: number) => String(n).padStart(2, "0");
  if (d > 0) return `${d}-${p(h)}:${p(m)}:${p(s)}`;
  return `${p(h)}:${p(m)}:${p(s)}`;
}

const elapsed = (start: number | undefined, end: number | undefined, now: number) => (start === undefined ? "00:00:00" : formatElapsed((end ?? now) - start));

const FIELDS: Readonly<Record<string, Field>> = {
  jobid: { header: "JobID", width: 12, get: (r) => (r.step ? `${r.job.jobId}.${r.step.stepId}` : r.job.jobId) },
  jobname: { header: "JobName", width: 12, get: (r) => (r.step ? (r.step.stepId === "batch" ? "batch" : r.job.name) : r.job.name) },
  name: { header: "Name", width: 12, get: (r) => r.job.name },
  user: { header: "User", width: 10, get: (r) => r.job.user },
  state: { header: "State", width: 11, get: (r) => (r.step ?? r.job).state },
  reason: { header: "Reason", width: 20, get: (r) => (r.step ?? r.job).reason },
  exitcode: { header: "ExitCode", width: 8, get: (r) => (r.step ?? r.job).exitCode },
  derivedexitcode: { header: "DerivedExitCode", width: 15, get: (r) => (r.step ? "" : r.job.derivedExitCode) },
  submit: { header: "Submit", width: 19, get: (r) => formatTime(r.job.submittedAt) },
  start: { header: "Start", width: 19, get: (r) => formatTime(r.step ? r.step.launchedAt : r.job.startedAt) },
  end: { header: "End", width: 19, get: (r) => formatTime(r.step ? r.step.endedAt : r.job.endedAt) },
  elapsed: { header: "Elapsed", width: 10, get: (r, now) => (r.step ? elapsed(r.step.launchedAt, r.step.endedAt, now) : elapsed(r.job.startedAt, r.job.endedAt, now)) },
  time: { header: "Time", width: 10, get: (r, now) => elapsed(r.job.startedAt, r.job.endedAt, now) },
  nodes: { header: "Nodes", width: 5, get: (r) => String(r.step ? Object.keys(r.step.nodes).length : r.job.nodes.length) },
  nodelist: { header: "NodeList", width: 20, get: (r) => (r.step ? Object.keys(r.step.nodes) : r.job.nodes).join(",") || (r.job.state === "PENDING" ? `(${r.job.reason})` : "") },
  ntasks: { header: "NTasks", width: 6, get: (r) => String(r.step ? r.step.ntasks : r.job.ntasks) },
  failednode: { header: "FailedNode", width: 12, get: (r) => (r.step ?? r.job).failedNodes.join(",") },
};

const QUEUE_DEFAULT = ["JobID", "Name", "User", "State", "Time", "NTasks", "Nodes", "NodeList", "Reason"];
const HISTORY_DEFAULT = ["JobID", "JobName", "State", "ExitCode", "DerivedExitCode", "Start", "End", "Elapsed", "NodeList"];

/** Options shared by `queue` and `history`. */
const TABLE_OPTIONS: readonly OptionSpec[] = [
  { name: "format", short: "o", type: "string", arg: "FIELD,...", help: `columns: ${Object.values(FIELDS).map((f) => f.header).join(",")}` },
  { name: "parsable2", short: "P", type: "boolean", help: "'|'-separated output, no trailing '|'" },
  { name: "noheader", type: "boolean", help: "no header line" },
  { name: "json", type: "boolean", help: "print JSON: an array of job objects (docs/cli.md)" },
  { name: "user", short: "u", type: "string", arg: "USER", help: "only this user's jobs" },
];

/** Options of `muster queue`. */
export const QUEUE_OPTIONS: readonly OptionSpec[] = TABLE_OPTIONS;

/** Options of `muster history`. */
export const HISTORY_OPTIONS: readonly OptionSpec[] = [
  ...TABLE_OPTIONS,
  { name: "state", short: "s", type: "string", arg: "STATE,...", help: `only jobs in these states (${FINAL_STATES.join(",")})` },
  { name: "since", short: "S", type: "string", arg: "TIME", help: "only jobs that ended at or after TIME (ISO date/time, or -30m, -2h, -1d)" },
  { name: "jobs", short: "j", type: "string", arg: "JOB,...", help: "only these jobs" },
];

function parseFields(spec: string | undefined, dflt: readonly string[], command: string): Field[] {
  const names = spec === undefined ? dflt : spec.split(",").map((s) => s.trim()).filter(Boolean);
  if (names.length === 0) throw new MusterError("USAGE", `${command}: option --format needs at least one field`);
  return names.map((n) => {
    const f = FIELDS[n.toLowerCase()];
    if (!f) throw new MusterError("USAGE", `${command}: unknown field "${n}" in --format (fields: ${Object.values(FIELDS).map((x) => x.header).join(",")})`);
    return f;
  });
}

/** Parses `--since`: an ISO date/time or a relative `-30m`, `-2h`, `-1d`. */
export function parseSince(text: string, now: number): number {
  const rel = /^-(\d+)([smhd])$/.exec(text.trim());
  if (rel) return now - Number(rel[1]) * { s: 1e3, m: 6e4, h: 36e5, d: 864e5 }[rel[2] as "s" | "m" | "h" | "d"];
  // A date/time without a zone is UTC, like the times history prints (Date.parse would take it as local time).
  const t = Date.parse(/T\d\d:\d\d(:\d\d(\.\d+)?)?$/.test(text.trim()) ? `${text.trim()}Z` : text);
  if (Number.isNaN(t)) throw new MusterError("USAGE", `history: option --since: bad time "${text}" (ISO date/time, or -30m, -2h, -1d)`);
  return t;
}

/** Renders rows as an aligned table or `|`-separated lines. */
export function renderTable(rows: readonly Row[], fields: readonly Field[], opts: { parsable: boolean; header: boolean; now: number }): string {
  const lines: string[] = [];
  const cells = rows.map((r) => fields.map((f) => f.get(r, opts.now)));
  if (opts.parsable) {
    if (opts.header) lines.push(fields.map((f) => f.header).join("|"));
    for (const c of cells) lines.push(c.join("|"));
  } else {
    const widths = fields.map((f, i) => Math.max(f.header.length, ...cells.map((c) => c[i]!.length)));
    const fmt = (c: readonly string[]) => c.map((x, i) => x.padEnd(widths[i]!)).join(" ").trimEnd();
    if (opts.header) lines.push(fmt(fields.map((f) => f.header)));
    for (const c of cells) lines.push(fmt(c));
  }
  return lines.length ? lines.join("\n") + "\n" : "";
}

/** `muster queue`: pending and running jobs. */
export function queueOutput(jobs: readonly JobView[], args: ParsedArgs, now: number): string {
  const o = args.options;
  const live = jobs.filter((j) => (LIVE_STATES as readonly string[]).includes(j.state) && (o.user === undefined || j.user === o.user));
  if (o.json) return JSON.stringify(live, null, 2) + "\n";
  const fields = parseFields(o.format as string | undefined, QUEUE_DEFAULT, "queue");
  return renderTable(live.map((job) => ({ job })), fields, { parsable: Boolean(o.parsable2), header: !o.noheader, now });
}

/** `muster history`: finished jobs and their steps as `JOB`, `JOB.batch`, `JOB.0` rows. */
export function historyOutput(jobs: readonly JobView[], args: ParsedArgs, now: number): string {
  const o = args.options;
  const states = o.state === undefined ? undefined : String(o.state).split(",").map((s) => s.trim().toUpperCase());
  for (const s of states ?? []) {
    if (!(FINAL_STATES as readonly string[]).includes(s)) throw new MusterError("USAGE", `history: unknown state "${s}" in --state (states: ${FINAL_STATES.join(",")})`);
  }
  const since = o.since === undefined ? undefined : parseSince(String(o.since), now);
  const ids = o.jobs === undefined ? undefined : new Set(String(o.jobs).split(",").map((s) => s.trim()));
  const selected = jobs
    .filter((j) => (o.user === undefined || j.user === o.user) && (!states || states.includes(j.state)) && (since === undefined || (j.endedAt ?? 0) >= since) && (!ids || ids.has(j.jobId)))
    .sort((a, b) => Number(a.jobId) - Number(b.jobId) || a.jobId.localeCompare(b.jobId));
  if (o.json) return JSON.stringify(selected, null, 2) + "\n";
  const fields = parseFields(o.format as string | undefined, HISTORY_DEFAULT, "history");
  const rows: Row[] = [];
  for (const job of selected) {
    rows.push({ job });
    const steps = [...job.steps].sort((a, b) => (a.stepId === "batch" ? -1 : b.stepId === "batch" ? 1 : Number(a.stepId) - Number(b.stepId)));
    for (const step of steps) rows.push({ job, step });
  }
  return renderTable(rows, fields, { parsable: Boolean(o.parsable2), header: !o.noheader, now });
}
