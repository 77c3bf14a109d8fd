/**
 * `muster queue` (like squeue) and `muster history` (like sacct): rows of jobs and steps, with
 * `--format FIELD,...`, `--parsable2` (`|`-separated, no trailing `|`), `--noheader` and `--json`.
 */
import type { Config } from "../../config.js";
import { MusterError } from "../../errors.js";
import { FINAL_STATES, LIVE_STATES, type RunState } from "../../exit-status/index.js";
import type { JobView, StepView } from "../../protocol/index.js";
import type { ParsedArgs } from "../args.js";
import { withClient } from "../client.js";
import { formatElapsed, formatTime, formatTimeLimit } from "../render.js";
import { parseJobStepIds, parseSlurmTime, parseStates } from "../selectors.js";
import { TABLE_FIELDS, type CommandContext, type TableField } from "../specs.js";

/** One printable row: a job, or one of its steps. */
interface Row {
  readonly job: JobView;
  readonly step?: StepView;
}

type Field = { readonly header: TableField; readonly width: number; readonly get: (r: Row, now: number) => string };

/** Slurm's elapsed form (re-exported: it lives with the other time formats in render.ts). */
export { formatElapsed };

const elapsed = (start: number | undefined, end: number | undefined, now: number) => (start === undefined ? "00:00:00" : formatElapsed((end ?? now) - start));

// Keyed by the lower-case name of every column in TABLE_FIELDS (the type checks that none is missing).
const FIELDS: Readonly<Record<Lowercase<TableField>, Field>> = {
  jobid: { header: "JobID", width: 12, get: (r) => (r.step ? `${r.job.jobId}.${r.step.stepId}` : r.job.jobId) },
  // A step row's JobName is what sacct shows: `batch`, or the step's executable (its Command column has the whole argv).
  jobname: { header: "JobName", width: 12, get: (r) => (r.step ? (r.step.stepId === "batch" ? "batch" : (r.step.name ?? r.job.name)) : r.job.name) },
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
  command: { header: "Command", width: 20, get: (r) => (r.step ? r.step.command : r.job.command) ?? "" },
  workdir: { header: "WorkDir", width: 20, get: (r) => (r.step ? r.step.workDir : r.job.workDir) ?? "" },
  timelimit: { header: "TimeLimit", width: 10, get: (r) => formatTimeLimit(r.step ? r.step.timeLimitSeconds : r.job.timeLimitSeconds) },
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

/** Renders rows as an aligned table or `|`-separated lines. */
export function renderTable<R>(rows: readonly R[], fields: readonly { readonly header: string; readonly get: (r: R, now: number) => string }[], opts: { parsable: boolean; header: boolean; now: number }): string {
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

/** Which jobs (and steps) `queue` or `history` prints, from its options; checked before connecting. */
export interface TableSelection {
  readonly user?: string;
  readonly states?: readonly RunState[];
  /** Job ids whose job row and every step row are printed. */
  readonly jobs?: ReadonlySet<string>;
  /** `JOB.STEP` ids: only these step rows of their jobs (history). */
  readonly steps?: ReadonlyMap<string, ReadonlySet<string>>;
  /** Jobs that ended at or after this time (history `-S`). */
  readonly start?: number;
  /** Jobs submitted at or before this time (history `-E`). */
  readonly end?: number;
  /** No step rows (history `-X`). */
  readonly allocations: boolean;
  readonly fields: readonly Field[];
}

/** `queue`'s selection: `-u`/`--me`, `-t` (default the live states), `-j` job ids. */
export function parseQueueSelection(args: ParsedArgs, me: string): TableSelection {
  const o = args.options;
  if (o.me && o.user !== undefined && String(o.user) !== me) throw new MusterError("USAGE", `queue: --me (${me}) and --user ${String(o.user)} contradict each other`);
  const user = o.me ? me : o.user === undefined ? undefined : String(o.user);
  const states = o.states === undefined ? [...LIVE_STATES] : parseStates(String(o.states), "queue", "--states");
  const jobs = o.jobs === undefined ? undefined : new Set(parseJobStepIds(String(o.jobs), "queue", { allowStep: false }).map((i) => i.job));
  return { user, states, jobs, allocations: true, fields: parseFields(o.format as string | undefined, QUEUE_DEFAULT, "queue") };
}

/** `history`'s selection: `-u`, `-s`, `-j JOB[.STEP]`, `-S`/`--since`, `-E`, `-X`. */
export function parseHistorySelection(args: ParsedArgs, now: number): TableSelection {
  const o = args.options;
  const states = o.state === undefined ? undefined : parseStates(String(o.state), "history", "--state");
  const live = states?.filter((st) => (LIVE_STATES as readonly string[]).includes(st)) ?? [];
  // `-s all` means every state history can hold; a live state named on its own is a mistake worth saying.
  if (live.length && live.length < LIVE_STATES.length) throw new MusterError("USAGE", `history: --state ${live.join(",")}: history lists ended jobs; see pending and running ones with muster queue -t ${live.join(",")}`);
  if (o.starttime !== undefined && o.since !== undefined) throw new MusterError("USAGE", "history: give --starttime or --since, not both");
  const startText = o.starttime ?? o.since;
  const start = startText === undefined ? undefined : parseSlurmTime(String(startText), now, "history", o.starttime !== undefined ? "--starttime" : "--since");
  const end = o.endtime === undefined ? undefined : parseSlurmTime(String(o.endtime), now, "history", "--endtime");
  let jobs: Set<string> | undefined;
  let steps: Map<string, Set<string>> | undefined;
  if (o.jobs !== undefined) {
    jobs = new Set();
    steps = new Map();
    for (const id of parseJobStepIds(String(o.jobs), "history")) {
      if (id.step === undefined) jobs.add(id.job);
      else steps.set(id.job, (steps.get(id.job) ?? new Set()).add(String(id.step)));
    }
  }
  return {
    user: o.user === undefined ? undefined : String(o.user),
    states,
    jobs,
    steps,
    start,
    end,
    allocations: Boolean(o.allocations),
    fields: parseFields(o.format as string | undefined, HISTORY_DEFAULT, "history"),
  };
}

/** The rows a selection picks from `jobs`, in job id order, each job's batch step first, then 0, 1, … */
export function selectRows(jobs: readonly JobView[], sel: TableSelection): Row[] {
  const byId = (j: JobView) => !sel.jobs || sel.jobs.has(j.jobId) || Boolean(sel.steps?.has(j.jobId));
  const selected = jobs
    .filter(
      (j) =>
        (sel.user === undefined || j.user === sel.user) &&
        (!sel.states || sel.states.includes(j.state)) &&
        (sel.start === undefined || (j.endedAt ?? Number.POSITIVE_INFINITY) >= sel.start) &&
        (sel.end === undefined || j.submittedAt <= sel.end) &&
        byId(j),
    )
    .sort((a, b) => Number(a.jobId) - Number(b.jobId) || a.jobId.localeCompare(b.jobId));
  const rows: Row[] = [];
  for (const job of selected) {
    // `-j 12.0` alone prints only that step's row (sacct's rule); with `-X` the job's row instead.
    const only = sel.jobs?.has(job.jobId) ? undefined : sel.steps?.get(job.jobId);
    if (!only || sel.allocations) rows.push({ job });
    if (sel.allocations) continue;
    const steps = [...job.steps].sort((a, b) => (a.stepId === "batch" ? -1 : b.stepId === "batch" ? 1 : Number(a.stepId) - Number(b.stepId)));
    for (const step of steps) if (!only || only.has(step.stepId)) rows.push({ job, step });
  }
  return rows;
}

/** The text (or JSON) a selection prints; JSON is the selected jobs, each whole. */
export function tableOutput(jobs: readonly JobView[], sel: TableSelection, args: ParsedArgs, now: number): string {
  const o = args.options;
  const rows = selectRows(jobs, sel);
  if (o.json) return JSON.stringify([...new Set(rows.map((r) => r.job))], null, 2) + "\n";
  return renderTable(rows, sel.fields, { parsable: Boolean(o.parsable2), header: !o.noheader, now });
}

/** `muster queue` from the command line: checks the arguments before connecting. */
export async function queueMain(args: ParsedArgs, config: Config, ctx: CommandContext): Promise<number> {
  if (args.positionals.length) throw new MusterError("USAGE", "queue: takes no positional arguments (jobs: -j JOB,...)");
  const sel = parseQueueSelection(args, config.user);
  // Finished jobs are asked for only when -t names a final state (squeue -t CD shows recent ones).
  const withEnded = sel.states!.some((s) => (FINAL_STATES as readonly string[]).includes(s));
  return withClient(config, async (c) => {
    const filters = sel.user === undefined ? undefined : { user: sel.user };
    const live = (await c.request("query", { type: "query", v: 1, what: "jobs", filters })) as JobView[];
    const ended = withEnded ? ((await c.request("query", { type: "query", v: 1, what: "history", filters })) as JobView[]) : [];
    const seen = new Set(live.map((j) => j.jobId));
    ctx.out(tableOutput([...live, ...ended.filter((j) => !seen.has(j.jobId))], sel, args, Date.now()));
    return 0;
  });
}

/** `muster history` from the command line: checks the arguments before connecting. */
export async function historyMain(args: ParsedArgs, config: Config, ctx: CommandContext): Promise<number> {
  if (args.positionals.length) throw new MusterError("USAGE", "history: takes no positional arguments (jobs: -j JOB[.STEP],...)");
  const sel = parseHistorySelection(args, Date.now());
  return withClient(config, async (c) => {
    const jobs = (await c.request("query", { type: "query", v: 1, what: "history", filters: sel.user === undefined ? undefined : { user: sel.user } })) as JobView[];
    ctx.out(tableOutput(jobs, sel, args, Date.now()));
    return 0;
  });
}
