/**
 * `muster queue` (like squeue) and `muster history` (like sacct): rows of jobs and steps, with
 * `--format FIELD,...`, `--parsable2` (`|`-separated, no trailing `|`), `--noheader` and `--json`.
 */
import type { Config } from "../../config.js";
import { MusterError } from "../../errors.js";
import { FINAL_STATES, LIVE_STATES } from "../../exit-status/index.js";
import type { JobView, StepView } from "../../protocol/index.js";
import type { ParsedArgs } from "../args.js";
import { withClient } from "../client.js";
import { formatTime } from "../render.js";
import { TABLE_FIELDS, type CommandContext, type TableField } from "../specs.js";

/** One printable row: a job, or one of its steps. */
interface Row {
  readonly job: JobView;
  readonly step?: StepView;
}

type Field = { readonly header: TableField; readonly width: number; readonly get: (r: Row, now: number) => string };

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

// Keyed by the lower-case name of every column in TABLE_FIELDS (the type checks that none is missing).
const FIELDS: Readonly<Record<Lowercase<TableField>, Field>> = {
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

function parseFields(spec: string | undefined, dflt: readonly string[], command: string): Field[] {
  const names = spec === undefined ? dflt : spec.split(",").map((s) => s.trim()).filter(Boolean);
  if (names.length === 0) throw new MusterError("USAGE", `${command}: option --format needs at least one field`);
  return names.map((n) => {
    const key = n.toLowerCase();
    if (!Object.hasOwn(FIELDS, key)) throw new MusterError("USAGE", `${command}: unknown field "${n}" in --format (fields: ${TABLE_FIELDS.join(",")})`);
    return FIELDS[key as Lowercase<TableField>];
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

/** `muster queue` from the command line: checks the arguments before connecting. */
export function queueMain(args: ParsedArgs, config: Config, ctx: CommandContext): Promise<number> {
  return tableMain("queue", queueOutput, args, config, ctx);
}

/** `muster history` from the command line: checks the arguments before connecting. */
export function historyMain(args: ParsedArgs, config: Config, ctx: CommandContext): Promise<number> {
  return tableMain("history", historyOutput, args, config, ctx);
}

async function tableMain(name: "queue" | "history", output: typeof queueOutput, args: ParsedArgs, config: Config, ctx: CommandContext): Promise<number> {
  if (args.positionals.length) throw new MusterError("USAGE", `${name}: takes no positional arguments`);
  // Validate --format, --state and --since before connecting.
  output([], args, Date.now());
  return withClient(config, async (c) => {
    const jobs = (await c.request("query", { type: "query", v: 1, what: name === "queue" ? "jobs" : "history" })) as JobView[];
    ctx.out(output(jobs, args, Date.now()));
    return 0;
  });
}
