/**
 * The `muster` command: parses arguments, runs one command, and turns every error into a one-line
 * message and an exit status (2 for a usage error). The CLI talks to services only over NATS;
 * the service commands (`up`, `supervisor`, `agent`) are dispatched by bin/muster.js.
 */
import { loadConfig, type Config } from "../config.js";
import { MusterError } from "../errors.js";
import { isFinalState, parseSignal } from "../exit-status/index.js";
import { JobStateMessageSchema, StepExitCodesMessageSchema, parseMessage, type JobView, type NodeView } from "../protocol/index.js";
import { CONNECTION_OPTIONS, connectionFlags, parseArgs, renderOptions, type OptionSpec, type ParsedArgs } from "./args.js";
import { Client } from "./client.js";
import { RUN_OPTIONS, buildSubmit, runCommand } from "./commands/run.js";
import { renderJob, summaryLines } from "./render.js";
import { BATCH_OPTIONS, batchCommand, buildBatchSubmit } from "./commands/batch.js";
import { HISTORY_OPTIONS, QUEUE_OPTIONS, historyOutput, queueOutput } from "./commands/tables.js";
import { CHART_OPTIONS, chartCommand, parseChartArgs } from "./commands/chart.js";

/** Version printed by `muster --version`. */
export const VERSION = "0.1.0";

interface CommandDef {
  readonly summary: string;
  readonly usage: string;
  readonly options: readonly OptionSpec[];
  readonly stopAtPositional?: boolean;
}

const JSON_OPT: OptionSpec = { name: "json", type: "boolean", help: "print JSON (a documented, stable schema)" };

/** Every command the `muster` binary knows, for help and dispatch. */
export const COMMANDS: Readonly<Record<string, CommandDef>> = {
  run: { summary: "run a parallel step and wait for it (like srun)", usage: "muster run [options] [--] CMD [ARGS...]", options: RUN_OPTIONS, stopAtPositional: true },
  batch: {
    summary: "submit a script as a batch job; each muster run inside it is a step (like sbatch)",
    usage: "muster batch [options] SCRIPT [ARGS...]",
    options: BATCH_OPTIONS,
    stopAtPositional: true,
  },
  queue: { summary: "list pending and running jobs (like squeue)", usage: "muster queue [--format F,...] [--parsable2] [--noheader] [--json]", options: QUEUE_OPTIONS },
  history: {
    summary: "list finished jobs and their steps (like sacct)",
    usage: "muster history [-j JOB,...] [--state S,...] [--since TIME] [--user U] [--format F,...] [--parsable2] [--noheader] [--json]",
    options: HISTORY_OPTIONS,
  },
  show: { summary: "show a job, its steps and tasks (like scontrol show job)", usage: "muster show job ID [--json]", options: [JSON_OPT] },
  watch: { summary: "print a job's state changes and notifications until it ends", usage: "muster watch JOB [--json]", options: [JSON_OPT] },
  kill: {
    summary: "cancel a job or step, or send it a signal (like scancel)",
    usage: "muster kill JOB[.STEP] [--signal SIG] [--kill-wait SEC]",
    options: [
      { name: "signal", type: "string", arg: "SIG", help: "send SIG (name or number) instead of cancelling" },
      { name: "kill-wait", type: "number", arg: "SEC", help: "seconds between SIGTERM and SIGKILL for this kill" },
    ],
  },
  nodes: { summary: "list nodes and their state (like sinfo)", usage: "muster nodes [--json]", options: [JSON_OPT] },
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
    "Usage: muster COMMAND [options]",
    "",
    "Commands:",
    ...Object.entries(COMMANDS).map(([name, c]) => `  ${name.padEnd(width)}  ${c.summary}`),
    "",
    "Connection options (every command):",
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

/** Parses a command's arguments and its configuration. */
export function prepare(name: string, argv: readonly string[], env: Readonly<Record<string, string | undefined>>): { args: ParsedArgs; config: Config } {
  const def = COMMANDS[name];
  if (!def) throw new MusterError("USAGE", `unknown command "${name}" (see muster --help)`);
  const args = parseArgs(name, argv, def.options, { stopAtPositional: def.stopAtPositional });
  // An option the command defines itself (`history --user`, the job owner) is not a connection flag.
  const own = new Set(def.options.map((o) => o.name));
  const connection = Object.fromEntries(Object.entries(args.options).filter(([k]) => !own.has(k)));
  return { args, config: loadConfig(env, connectionFlags(connection)) };
}

/** Entry point of the client commands; resolves with the exit status. */
export async function main(argv: readonly string[], env: Readonly<Record<string, string | undefined>> = process.env): Promise<number> {
  const out = (s: string) => process.stdout.write(s);
  const err = (s: string) => process.stderr.write(s);
  const [name, ...rest] = argv;
  try {
    if (name === undefined || name === "--help" || name === "-h" || name === "help") {
      out(mainHelp() + "\n");
      return name === undefined ? 2 : 0;
    }
    if (name === "--version" || name === "-V") {
      out(`muster ${VERSION}\n`);
      return 0;
    }
    const { args, config } = prepare(name, rest, env);
    if (args.options.help) {
      out(commandHelp(name) + "\n");
      return 0;
    }
    return await dispatch(name, args, config, env, out, err);
  } catch (e) {
    return reportError(e, err);
  }
}

/** Prints an error as one line and returns its exit status: 2 for usage and configuration, 1 otherwise. */
export function reportError(e: unknown, err: (s: string) => void): number {
  if (e instanceof MusterError) {
    err(`muster: error: ${e.message}\n`);
    return e.code === "USAGE" || e.code === "CONFIG" ? 2 : 1;
  }
  err(`muster: error: ${e instanceof Error ? e.message : String(e)}\n`);
  return 1;
}

async function dispatch(
  name: string,
  args: ParsedArgs,
  config: Config,
  env: Readonly<Record<string, string | undefined>>,
  out: (s: string) => void,
  err: (s: string) => void,
): Promise<number> {
  const p = args.positionals;
  const json = Boolean(args.options.json);
  switch (name) {
    case "run": {
      // Usage errors (no command, bad time limit …) exit 2 before any connection is attempted.
      buildSubmit(args, config.user, { env, cwd: process.cwd() });
      const client = await Client.open(config, "muster-run");
      try {
        return await runCommand(client, args, {
          stdout: out,
          stderr: err,
          env,
          cwd: process.cwd(),
          onSignal: (h) => {
            const sigs: NodeJS.Signals[] = ["SIGINT", "SIGTERM", "SIGHUP"];
            for (const s of sigs) process.on(s, h);
            return () => {
              for (const s of sigs) process.off(s, h);
            };
          },
        });
      } finally {
        await client.close();
      }
    }
    case "batch": {
      const req = buildBatchSubmit(args, config.user, env, process.cwd());
      return withClient(config, (c) => batchCommand(c, args, req, out));
    }
    case "queue":
    case "history": {
      if (p.length) throw new MusterError("USAGE", `${name}: takes no positional arguments`);
      // Validate --format, --state and --since before connecting.
      (name === "queue" ? queueOutput : historyOutput)([], args, Date.now());
      return withClient(config, async (c) => {
        const jobs = (await c.request("query", { type: "query", v: 1, what: name === "queue" ? "jobs" : "history" })) as JobView[];
        out((name === "queue" ? queueOutput : historyOutput)(jobs, args, Date.now()));
        return 0;
      });
    }
    case "show": {
      if (p[0] !== "job" || !p[1] || p.length > 2) throw new MusterError("USAGE", "show: expected 'show job ID'");
      return withClient(config, async (c) => {
        const view = (await c.request("query", { type: "query", v: 1, what: "job", job: p[1]! })) as JobView;
        out((json ? JSON.stringify(view, null, 2) : renderJob(view)) + "\n");
        return 0;
      });
    }
    case "watch": {
      if (p.length !== 1) throw new MusterError("USAGE", "watch: expected one job id");
      return withClient(config, async (c) => {
        await c.request("query", { type: "query", v: 1, what: "job", job: p[0]! });
        const follow = await c.follow(c.subjects.streams.jobs.name, c.subjects.job.ofJob(p[0]!), (m) => {
          if (m.subject.endsWith(".exitcodes")) {
            const e = parseMessage(StepExitCodesMessageSchema, m.data, m.subject);
            if (!e.ok) return;
            if (json) out(JSON.stringify(e.value) + "\n");
            else for (const l of summaryLines(e.value)) out(`${l}\n`);
            return;
          }
          const s = parseMessage(JobStateMessageSchema, m.data, m.subject);
          if (!s.ok) return;
          const v = s.value;
          if (json) out(JSON.stringify(v) + "\n");
          else {
            const id = v.step === undefined ? `JobId=${v.job}` : `StepId=${v.job}.${v.step}`;
            out(`${new Date(v.at).toISOString()} ${id} State=${v.state} Reason=${v.reason} ExitCode=${v.exitCode}${v.derivedExitCode ? ` DerivedExitCode=${v.derivedExitCode}` : ""}${v.failedNode ? ` FailedNode=${v.failedNode}` : ""}\n`);
          }
          if (v.step === undefined && isFinalState(v.state)) return false;
        });
        await follow.done;
        follow.stop();
        return 0;
      });
    }
    case "kill": {
      if (p.length !== 1) throw new MusterError("USAGE", "kill: expected JOB or JOB.STEP");
      const m = /^([A-Za-z0-9_-]+)(?:\.(\d+|batch))?$/.exec(p[0]!);
      if (!m) throw new MusterError("USAGE", `kill: bad job id "${p[0]}": expected JOB or JOB.STEP`);
      let signal: number | undefined;
      if (args.options.signal !== undefined) {
        signal = parseSignal(String(args.options.signal));
        if (signal === undefined) throw new MusterError("USAGE", `kill: unknown signal "${String(args.options.signal)}"`);
      }
      const step = m[2] === undefined ? undefined : m[2] === "batch" ? ("batch" as const) : Number(m[2]);
      return withClient(config, async (c) => {
        await c.request("kill", { type: "kill", v: 1, job: m[1]!, step, signal, killWaitSeconds: args.options["kill-wait"] as number | undefined });
        return 0;
      });
    }
    case "nodes": {
      if (p.length) throw new MusterError("USAGE", "nodes: takes no arguments");
      return withClient(config, async (c) => {
        const nodes = (await c.request("query", { type: "query", v: 1, what: "nodes" })) as NodeView[];
        if (json) out(JSON.stringify(nodes, null, 2) + "\n");
        else {
          out("NODE       STATE     REASON            SLOTS  RUNNING  SINCE\n");
          for (const n of nodes) {
            out(`${n.node.padEnd(10)} ${n.state.padEnd(9)} ${(n.reason ?? "-").padEnd(17)} ${String(n.slots).padEnd(6)} ${String(n.runningTasks).padEnd(8)} ${n.since ? new Date(n.since).toISOString() : "-"}\n`);
          }
        }
        return 0;
      });
    }
    case "chart": {
      const request = parseChartArgs(args);
      if (request.kind === "machine") return chartCommand(request, () => Promise.reject(new Error("no job")), out);
      return withClient(config, (c) => chartCommand(request, async (job) => (await c.request("query", { type: "query", v: 1, what: "job", job })) as JobView, out));
    }
    default:
      throw new MusterError("USAGE", `"${name}" is a service command: run it through the muster binary`);
  }
}

async function withClient(config: Config, fn: (c: Client) => Promise<number>): Promise<number> {
  const c = await Client.open(config);
  try {
    return await fn(c);
  } finally {
    await c.close();
  }
}
