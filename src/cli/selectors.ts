/**
 * How the CLI reads what a user selects jobs by: job and step ids (`12`, `12.0`, `12.batch`), job
 * states with Slurm's abbreviations (`CD,F,CA,TO,NF,R,PD,CG`, any case) and Slurm's times
 * (`-S/--starttime`, `-E/--endtime`). Every command checks its ids and states here, so a bad one is
 * the same one-line usage error (exit status 2) everywhere, before anything is sent.
 */
import { MusterError } from "../errors.js";
import { FINAL_STATES, LIVE_STATES, type RunState } from "../exit-status/index.js";

/** A job id, or a job and one of its steps. */
export interface JobStepId {
  readonly job: string;
  /** `0`, `1`, … or `batch`; absent for the whole job. */
  readonly step?: number | "batch";
}

const JOB_STEP = /^([A-Za-z0-9_-]{1,128}?)(?:\.(\d+|batch))?$/;

/** Renders an id as users type it (`12`, `12.0`, `12.batch`). */
export function formatJobStepId(id: JobStepId): string {
  return id.step === undefined ? id.job : `${id.job}.${id.step}`;
}

/**
 * Parses `JOB` or `JOB.STEP` (`12`, `12.0`, `12.batch`); throws a USAGE error naming `command`.
 * With `allowStep: false` a step id is refused with a message saying what the command takes.
 */
export function parseJobStepId(text: string, command: string, opts: { allowStep?: boolean } = {}): JobStepId {
  const m = JOB_STEP.exec(text.trim());
  if (!m || m[1] === "") throw new MusterError("USAGE", `${command}: bad job id "${text}": expected JOB or JOB.STEP (12, 12.0, 12.batch)`);
  const step = m[2] === undefined ? undefined : m[2] === "batch" ? ("batch" as const) : Number(m[2]);
  if (step !== undefined && opts.allowStep === false) throw new MusterError("USAGE", `${command}: "${text}" is a step id; ${command} takes job ids (12)`);
  return step === undefined ? { job: m[1]! } : { job: m[1]!, step };
}

/** Parses a comma-separated list of ids (`-j 3,4,5.0`); an empty list is a usage error. */
export function parseJobStepIds(text: string, command: string, opts: { allowStep?: boolean } = {}): JobStepId[] {
  const parts = text.split(",").map((s) => s.trim()).filter(Boolean);
  if (parts.length === 0) throw new MusterError("USAGE", `${command}: expected job ids (12,13 or 12.0)`);
  return parts.map((p) => parseJobStepId(p, command, opts));
}

/** Slurm's compact state codes (squeue's `%t`), for states muster has. */
export const STATE_ABBREVIATIONS: Readonly<Record<string, RunState>> = {
  PD: "PENDING",
  R: "RUNNING",
  CG: "COMPLETING",
  CD: "COMPLETED",
  F: "FAILED",
  CA: "CANCELLED",
  TO: "TIMEOUT",
  NF: "NODE_FAIL",
};

const ALL_STATES: readonly RunState[] = [...LIVE_STATES, ...FINAL_STATES];

/**
 * Parses a comma-separated state list as Slurm does: full names or abbreviations, any case, and
 * `all` for every state. Throws a USAGE error naming the option and the states it takes.
 */
export function parseStates(text: string, command: string, option: string): RunState[] {
  const out = new Set<RunState>();
  const parts = text.split(",").map((s) => s.trim()).filter(Boolean);
  if (parts.length === 0) throw new MusterError("USAGE", `${command}: option ${option} needs at least one state`);
  for (const p of parts) {
    const up = p.toUpperCase();
    if (up === "ALL") {
      for (const s of ALL_STATES) out.add(s);
      continue;
    }
    const state = (ALL_STATES as readonly string[]).includes(up) ? (up as RunState) : Object.hasOwn(STATE_ABBREVIATIONS, up) ? STATE_ABBREVIATIONS[up]! : undefined;
    if (!state) {
      const known = ALL_STATES.map((s) => `${s}(${Object.keys(STATE_ABBREVIATIONS).find((k) => STATE_ABBREVIATIONS[k] === s)})`).join(",");
      throw new MusterError("USAGE", `${command}: unknown state "${p}" in ${option} (states: ${known}, or all)`);
    }
    out.add(state);
  }
  return [...out];
}

const UNIT_MS: Readonly<Record<string, number>> = { s: 1e3, m: 6e4, h: 36e5, d: 864e5, w: 6048e5 };
const UNIT_NAMES: Readonly<Record<string, string>> = { seconds: "s", minutes: "m", hours: "h", days: "d", weeks: "w" };

/**
 * Parses a time as `history -S/-E` take it, in UTC like every time muster prints: an ISO date or
 * date/time (`2026-12-07`, `2026-12-07T10:00[:00]`), `HH:MM[:SS]` today, `now`, Slurm's
 * `now[+-]N[seconds|minutes|hours|days|weeks]` (seconds by default), or a relative `-30m`, `-2h`, `-1d`.
 */
export function parseSlurmTime(text: string, now: number, command: string, option: string): number {
  const t = text.trim();
  const bad = () => new MusterError("USAGE", `${command}: option ${option}: bad time "${text}" (YYYY-MM-DD[THH:MM[:SS]], HH:MM[:SS], now-2hours, -30m, -2h, -1d)`);
  const rel = /^-(\d+)([smhdw])$/.exec(t);
  if (rel) return now - Number(rel[1]) * UNIT_MS[rel[2]!]!;
  const nowRel = /^now(?:([+-])(\d+)([a-z]*))?$/i.exec(t);
  if (nowRel) {
    if (nowRel[1] === undefined) return now;
    const word = nowRel[3]!.toLowerCase();
    const unit = word === "" ? "s" : Object.entries(UNIT_NAMES).find(([name, u]) => name.startsWith(word) || u === word)?.[1];
    if (!unit) throw bad();
    return now + (nowRel[1] === "-" ? -1 : 1) * Number(nowRel[2]) * UNIT_MS[unit]!;
  }
  const clock = /^(\d\d?):(\d\d)(?::(\d\d))?$/.exec(t);
  if (clock) {
    const d = new Date(now);
    const v = Date.UTC(d.getUTCFullYear(), d.getUTCMonth(), d.getUTCDate(), Number(clock[1]), Number(clock[2]), Number(clock[3] ?? 0));
    if (Number(clock[1]) > 23 || Number(clock[2]) > 59 || Number(clock[3] ?? 0) > 59) throw bad();
    return v;
  }
  if (!/^\d{4}-\d\d-\d\d([T ]\d\d:\d\d(:\d\d(\.\d+)?)?)?(Z|[+-]\d\d:?\d\d)?$/.test(t)) throw bad();
  // Without a zone the time is UTC, like the times muster prints (Date.parse would take a date/time as local).
  const iso = t.replace(" ", "T");
  const v = Date.parse(/(Z|[+-]\d\d:?\d\d)$/.test(iso) || !iso.includes("T") ? iso : `${iso}Z`);
  if (Number.isNaN(v)) throw bad();
  return v;
}
