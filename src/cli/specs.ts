/**
 * What help and argument parsing need of every command: its name, summary, usage line and
 * options. This module imports no zod, NATS, pino or xstate, so `muster --help`, `--version` and
 * usage errors are answered from it alone; a command's own module is imported only when it runs.
 */
import type { Config } from "../config.js";
import { CONNECTION_OPTIONS, renderOptions, type OptionSpec, type ParsedArgs } from "./args.js";

/** Version printed by `muster --version`. */
export const VERSION = "0.1.0";

/** One command of the `muster` binary, for help and argument parsing. */
export interface CommandDef {
  readonly summary: string;
  readonly usage: string;
  readonly options: readonly OptionSpec[];
  readonly stopAtPositional?: boolean;
}

/** What a running command writes to and reads from. */
export interface CommandContext {
  readonly env: Readonly<Record<string, string | undefined>>;
  /** Writes to stdout: text as UTF-8, bytes as they are. */
  readonly out: (s: string | Uint8Array) => void;
  readonly err: (s: string | Uint8Array) => void;
}

/** The entry of a command's module: runs the command with its parsed arguments; resolves with the exit status. */
export type CommandMain = (args: ParsedArgs, config: Config, ctx: CommandContext) => Promise<number>;

/** Where and with which environment tasks run, and on which nodes (srun's and sbatch's names). */
const SLURM_ENV_OPTIONS: readonly OptionSpec[] = [
  { name: "chdir", short: "D", type: "string", arg: "DIR", help: "working directory of the tasks (relative to this one; default: this one)" },
  { name: "export", type: "string", arg: "ALL|NONE|VARS", help: "variables of this environment the tasks get: ALL (default), NONE, or VAR[=VALUE],... (NATS secrets never)" },
  { name: "nodelist", short: "w", type: "string", arg: "NODES", help: "run on exactly these nodes (node-[1-3],node-7)" },
];

/** Options of `muster run`. */
export const RUN_OPTIONS: readonly OptionSpec[] = [
  { name: "ntasks", short: "n", type: "int", arg: "N", help: "number of tasks (default NODES x K, else 1)" },
  { name: "nodes", short: "N", type: "int", arg: "NODES", help: "number of nodes to spread the tasks over" },
  { name: "ntasks-per-node", type: "int", arg: "K", help: "tasks on each node (without -n: NODES x K tasks)" },
  { name: "label", short: "l", type: "boolean", help: "prefix each output line with its task rank (RANK: )" },
  { name: "output", short: "o", type: "string", arg: "PATTERN", help: "tasks' stdout (and stderr without -e) to files named by PATTERN (%j %s %t %n %N %u %x %%), none, or only task N's" },
  { name: "error", short: "e", type: "string", arg: "PATTERN", help: "tasks' stderr to files named by PATTERN, none, or only task N's" },
  { name: "kill-on-bad-exit", short: "K", type: "boolean", help: "kill the other tasks when one ends badly" },
  { name: "no-kill", short: "k", type: "boolean", help: "when a node fails, keep the step's other tasks running (default: stop them)" },
  { name: "wait", short: "W", type: "number", arg: "SEC", help: "after the first task ends, SIGKILL the rest after SEC seconds" },
  { name: "time", short: "t", type: "string", arg: "LIMIT", help: "time limit (MM, MM:SS, HH:MM:SS, D-HH, D-HH:MM, D-HH:MM:SS)" },
  { name: "kill-wait", type: "number", arg: "SEC", help: "seconds between SIGTERM and SIGKILL (default: the supervisor's MUSTER_KILL_WAIT, 10)" },
  { name: "job-name", short: "J", type: "string", arg: "NAME", help: "job name" },
  { name: "verbose", short: "v", type: "boolean", help: "print the job id and placement on stderr" },
  ...SLURM_ENV_OPTIONS,
  { name: "unbuffered", short: "u", type: "boolean", help: "accepted for srun's sake: output is always forwarded as the tasks write it" },
  { name: "quiet", short: "Q", type: "boolean", help: "no status line on a terminal, no 'queued' notice (errors still print)" },
];

/** Options of `muster batch`. */
export const BATCH_OPTIONS: readonly OptionSpec[] = [
  { name: "ntasks", short: "n", type: "int", arg: "N", help: "tasks the job's allocation holds (default 1)" },
  { name: "nodes", short: "N", type: "int", arg: "NODES", help: "nodes of the allocation" },
  { name: "ntasks-per-node", type: "int", arg: "K", help: "tasks on each node" },
  { name: "output", short: "o", type: "string", arg: "PATTERN", help: "the script's stdout, and stderr without -e (default muster-%j.out; %j %s %t %n %N %u %x %% as srun)" },
  { name: "error", short: "e", type: "string", arg: "PATTERN", help: "the script's stderr (default: with its stdout)" },
  { name: "job-name", short: "J", type: "string", arg: "NAME", help: "job name (default: the script's name)" },
  { name: "time", short: "t", type: "string", arg: "LIMIT", help: "time limit of the script (MM, MM:SS, HH:MM:SS, D-HH, D-HH:MM, D-HH:MM:SS)" },
  { name: "kill-wait", type: "number", arg: "SEC", help: "seconds between SIGTERM and SIGKILL (default: the supervisor's MUSTER_KILL_WAIT, 10)" },
  { name: "wait", short: "W", type: "boolean", help: "wait for the job to end and exit with its status" },
  ...SLURM_ENV_OPTIONS,
  { name: "wrap", type: "string", arg: "CMD", help: "run CMD as the script (#!/bin/sh), instead of a script file" },
  { name: "parsable", type: "boolean", help: "print only the job id" },
];

/** The columns of `muster queue` and `muster history` (`--format`, matched without regard to case), in help order. */
export const TABLE_FIELDS = [
  "JobID",
  "JobName",
  "Name",
  "User",
  "State",
  "Reason",
  "ExitCode",
  "DerivedExitCode",
  "Submit",
  "Start",
  "End",
  "Elapsed",
  "Time",
  "Nodes",
  "NodeList",
  "NTasks",
  "FailedNode",
  "Command",
  "WorkDir",
  "TimeLimit",
] as const;
/** A column of `muster queue` and `muster history`. */
export type TableField = (typeof TABLE_FIELDS)[number];

/** Options shared by `queue` and `history`. */
const TABLE_OPTIONS: readonly OptionSpec[] = [
  { name: "format", short: "o", type: "string", arg: "FIELD,...", help: `columns: ${TABLE_FIELDS.join(",")}` },
  { name: "parsable2", short: "P", type: "boolean", help: "'|'-separated output, no trailing '|'" },
  { name: "json", type: "boolean", help: "print JSON: an array of job objects (docs/cli.md)" },
  { name: "user", short: "u", type: "string", arg: "USER", help: "only this user's jobs" },
];

/** States as Slurm abbreviates them, for help. */
const STATE_HELP = "full names or PD,R,CG,CD,F,CA,TO,NF, any case; all";

/** Options of `muster queue`. */
export const QUEUE_OPTIONS: readonly OptionSpec[] = [
  ...TABLE_OPTIONS,
  { name: "noheader", type: "boolean", help: "no header line" },
  { name: "jobs", short: "j", type: "string", arg: "JOB,...", help: "only these jobs" },
  { name: "states", short: "t", type: "string", arg: "STATE,...", help: `only jobs in these states (default PENDING,RUNNING,COMPLETING; ${STATE_HELP})` },
  { name: "me", type: "boolean", help: "only your own jobs (MUSTER_USER)" },
];

/** Options of `muster history`. */
export const HISTORY_OPTIONS: readonly OptionSpec[] = [
  ...TABLE_OPTIONS,
  { name: "noheader", short: "n", type: "boolean", help: "no header line" },
  { name: "jobs", short: "j", type: "string", arg: "JOB[.STEP],...", help: "only these jobs; JOB.STEP: only that step's row" },
  { name: "state", short: "s", type: "string", arg: "STATE,...", help: "only jobs in these states (COMPLETED,FAILED,CANCELLED,TIMEOUT,NODE_FAIL or CD,F,CA,TO,NF, any case)" },
  { name: "starttime", short: "S", type: "string", arg: "TIME", help: "only jobs that ended at or after TIME (YYYY-MM-DD[THH:MM[:SS]] UTC, HH:MM[:SS], now-2hours, -30m, -2h, -1d)" },
  { name: "since", type: "string", arg: "TIME", help: "the same as --starttime" },
  { name: "endtime", short: "E", type: "string", arg: "TIME", help: "only jobs submitted at or before TIME (formats as --starttime)" },
  { name: "allocations", short: "X", type: "boolean", help: "job rows only, no step rows" },
];

/** The columns of `muster nodes` (`--format`, matched without regard to case), in help order. */
export const NODE_FIELDS = ["Node", "State", "Reason", "Alloc", "Idle", "Total", "Running", "Since", "LastSeen", "Epoch"] as const;
/** A column of `muster nodes`. */
export type NodeField = (typeof NODE_FIELDS)[number];

/** Options of `muster nodes`. */
export const NODES_OPTIONS: readonly OptionSpec[] = [
  { name: "format", short: "o", type: "string", arg: "FIELD,...", help: `columns: ${NODE_FIELDS.join(",")}` },
  { name: "parsable2", short: "P", type: "boolean", help: "'|'-separated output, no trailing '|'" },
  { name: "noheader", type: "boolean", help: "no header line" },
  { name: "json", type: "boolean", help: "print JSON: an array of node objects (docs/cli.md)" },
];

/** Options of `muster kill`. */
export const KILL_OPTIONS: readonly OptionSpec[] = [
  { name: "signal", short: "s", type: "string", arg: "SIG", help: "send SIG (name or number: USR1, SIGUSR1, 10) instead of cancelling" },
  { name: "user", short: "u", type: "string", arg: "USER", help: "act on this user's jobs" },
  { name: "name", short: "n", type: "string", arg: "NAME", help: "act on jobs with this name" },
  { name: "state", short: "t", type: "string", arg: "STATE,...", help: "act on jobs in these states only (PENDING, RUNNING, COMPLETING; PD, R, CG)" },
  { name: "kill-wait", type: "number", arg: "SEC", help: "seconds between SIGTERM and SIGKILL for this kill" },
];

/** Options of `muster chart`. */
export const CHART_OPTIONS: readonly OptionSpec[] = [
  { name: "format", type: "string", arg: "FMT", help: "mermaid (default for a machine), svg, dot, json or text (default with --job)" },
  { name: "job", type: "string", arg: "ID", help: "chart this job with its current state lit" },
  { name: "step", type: "string", arg: "STEP", help: "with --job: chart this step (0, 1, … or batch)" },
  { name: "rank", type: "int", arg: "R", help: "with --job and --step: chart the task of this rank" },
];

const JSON_OPT: OptionSpec = { name: "json", type: "boolean", help: "print JSON (a documented, stable schema)" };

/** Every command the `muster` binary knows, for help and dispatch. */
export const COMMANDS: Readonly<Record<string, CommandDef>> = {
  run: { summary: "run a parallel step and wait for it (like srun)", usage: "muster run [options] [--] CMD [ARGS...]", options: RUN_OPTIONS, stopAtPositional: true },
  batch: {
    summary: "submit a script as a batch job; each muster run inside it is a step (like sbatch)",
    usage: "muster batch [options] SCRIPT [ARGS...] | muster batch [options] --wrap CMD",
    options: BATCH_OPTIONS,
    stopAtPositional: true,
  },
  queue: {
    summary: "list pending and running jobs (like squeue)",
    usage: "muster queue [-j JOB,...] [-t STATE,...] [-u USER | --me] [--format F,...] [--parsable2] [--noheader] [--json]",
    options: QUEUE_OPTIONS,
  },
  history: {
    summary: "list finished jobs and their steps (like sacct)",
    usage: "muster history [-j JOB[.STEP],...] [-s STATE,...] [-S TIME] [-E TIME] [-u USER] [-X] [--format F,...] [--parsable2] [-n] [--json]",
    options: HISTORY_OPTIONS,
  },
  show: { summary: "show a job, its steps and tasks, or one step (like scontrol show job|step)", usage: "muster show job|step JOB[.STEP] [--json]", options: [JSON_OPT] },
  watch: { summary: "print a job's (or one step's) state changes and notifications until it ends", usage: "muster watch JOB[.STEP] [--json]", options: [JSON_OPT] },
  kill: {
    summary: "cancel jobs or steps, or send them a signal (like scancel)",
    usage: "muster kill [JOB[.STEP] ...] [-s SIG] [-u USER] [-n NAME] [-t STATE,...] [--kill-wait SEC]",
    options: KILL_OPTIONS,
  },
  nodes: { summary: "list nodes, their state and slots (like sinfo)", usage: "muster nodes [--format F,...] [--parsable2] [--noheader] [--json]", options: NODES_OPTIONS },
  chart: {
    summary: "print a machine's state chart, or a job's, step's or task's with its current state lit",
    usage: "muster chart job|step|task|node [--format mermaid|svg|dot|json|text] | muster chart --job ID [--step S [--rank R]] [--format text|svg|...]",
    options: CHART_OPTIONS,
  },
  inspect: {
    summary: "serve a local web page showing jobs, their state charts, events and a replay scrubber",
    usage: "muster inspect [--port P] [--host ADDR] [--stately]",
    options: [
      { name: "port", type: "int", arg: "P", help: "TCP port (default 8422; 0 picks a free one); the URL is printed on stdout" },
      { name: "host", type: "string", arg: "ADDR", help: "address to listen on (default 127.0.0.1)" },
      { name: "stately", type: "boolean", help: "also serve XState inspection events for Stately's inspector on /stately (SSE)" },
    ],
  },
  up: {
    summary: "start a local cluster: NATS (if none answers), a supervisor and agents",
    usage: "muster up [--agents N] [--slots N] [--demo]",
    options: [
      { name: "agents", type: "int", arg: "N", help: "number of agents node-1..node-N (default 2)" },
      { name: "slots", type: "int", arg: "N", help: "slots per agent (default: CPU count)" },
      { name: "demo", type: "boolean", help: "run a demo job that shows a first-failure notification, then stop" },
    ],
  },
  supervisor: { summary: "run the supervisor service", usage: "muster supervisor [--operator USER]", options: [{ name: "operator", type: "string", arg: "USERS", help: "comma-separated users allowed to act on every job" }] },
  agent: {
    summary: "run the agent of one node",
    usage: "muster agent --node NAME [--slots N]",
    options: [
      { name: "node", type: "string", arg: "NAME", help: "this node's name" },
      { name: "slots", type: "int", arg: "N", help: "tasks this node takes at once (default: CPU count)" },
    ],
  },
};

/** Top-level help. */
export function mainHelp(): string {
  const width = Math.max(...Object.keys(COMMANDS).map((c) => c.length));
  return [
    "muster: job, step and task lifecycle runtime on NATS",
    "",
    "Usage: muster [connection options] COMMAND [options]",
    "",
    "Commands:",
    ...Object.entries(COMMANDS).map(([name, c]) => `  ${name.padEnd(width)}  ${c.summary}`),
    "",
    "Connection options (every command; before or after its name):",
    renderOptions(CONNECTION_OPTIONS),
    "",
    "Run 'muster COMMAND --help' for a command's options. Docs: docs/cli.md",
  ].join("\n");
}

/** Help of one command. */
export function commandHelp(name: string): string {
  const c = COMMANDS[name]!;
  return [`Usage: ${c.usage}`, "", c.summary, "", "Options:", renderOptions(c.options), "", "Connection options: see 'muster --help'"].join("\n");
}
