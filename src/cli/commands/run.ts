/**
 * `muster run`: submit a step, stream its tasks' output, print the Task Exit Code Summary the moment
 * the first task fails, the per-task lines at the end, and exit with srun's status rule.
 */
import type { Config } from "../../config.js";
import { isFinalState, parseExitCode, runExitStatus, stopLine } from "../../exit-status/index.js";
import { MusterError } from "../../errors.js";
import { IdSet } from "../../idset/index.js";
import {
  IoChunkSchema,
  JobStateMessageSchema,
  StepExitCodesMessageSchema,
  decodeTaskPicture,
  parseMessage,
  type IoChunk,
  type JobView,
  type StepExitCodesMessage,
  type StepStopping,
  type StepSummary,
  type SubmitRequest,
} from "../../protocol/index.js";
import type { PatternFields } from "../../filename-pattern/index.js";
import { parseTimeLimit, type ParsedArgs } from "../args.js";
import { withClient, type Client } from "../client.js";
import { chdirOption, exportedEnv, jobDefaults, nodelistOption, submitOrigin } from "../slurm-options.js";
import { OutputFiles, outputRoutes, routesNeedNode } from "../output-files.js";
import { ProgressLine, type ProgressTerminal } from "../progress.js";
import { errorLines, groupLines, summaryLines } from "../render.js";
import type { CommandContext } from "../specs.js";
import { onBrokenPipe } from "../stdio.js";
import { StepOutput, lossLine } from "../step-output.js";
import { resolveTaskLayout, type TaskLayout } from "../task-layout.js";

/** What `muster run` needs from its surroundings (so tests can drive it). */
export interface RunIo {
  /** Text is written as UTF-8; task output comes as bytes and is written as it is. */
  readonly stdout: (s: string | Uint8Array) => void;
  readonly stderr: (s: string | Uint8Array) => void;
  /** Registers a handler for SIGINT/SIGTERM/SIGHUP; returns an unregister function. */
  readonly onSignal?: (handler: (sig: NodeJS.Signals) => void) => () => void;
  readonly env: Readonly<Record<string, string | undefined>>;
  readonly cwd: string;
  /** Set when stderr is a terminal: a step of several tasks then shows a live status line (src/cli/progress.ts). */
  readonly terminal?: ProgressTerminal;
  /** A promise while too much written output waits to go out (a slow reader): no more is taken until it settles. */
  readonly whenWritable?: () => Promise<void> | undefined;
  /** Registers what to do when stdout's reader goes away (`| head`); returns an unregister function. */
  readonly onBrokenPipe?: (hook: () => Promise<unknown>) => () => void;
}

/** Variables the agent sets for each task; never propagated from the submitting environment. */
export { TASK_VARIABLES } from "../../task-env.js";

/** Builds the submit request from the parsed arguments; inside a job (MUSTER_JOB_ID set) it adds a step to that job. */
export function buildSubmit(args: ParsedArgs, user: string, io: Pick<RunIo, "env" | "cwd">): SubmitRequest {
  // Inside a job, -n defaults to the allocation's task count (srun's SLURM_NTASKS).
  const o = jobDefaults(args.options, io.env);
  if (args.positionals.length === 0) throw new MusterError("USAGE", "run: no command given (muster run [options] -- CMD [ARGS...])");
  const { env, envExport } = exportedEnv("run", o.export as string | undefined, io.env);
  const nodelist = nodelistOption("run", o.nodelist as string | undefined);
  const { ntasks, nodes, ntasksPerNode } = taskLayout(o);
  outputRoutes(o.output as string | undefined, o.error as string | undefined);
  return {
    type: "submit",
    v: 1,
    user,
    name: o["job-name"] as string | undefined,
    argv: [...args.positionals],
    env,
    cwd: chdirOption(io.cwd, o.chdir as string | undefined),
    ntasks,
    nodes,
    ntasksPerNode,
    label: Boolean(o.label),
    killOnBadExit: Boolean(o["kill-on-bad-exit"]),
    ...(o["no-kill"] ? { noKill: true } : {}),
    waitSeconds: o.wait as number | undefined,
    timeLimitSeconds: o.time === undefined ? undefined : timeLimitOption(String(o.time)),
    killWaitSeconds: o["kill-wait"] as number | undefined,
    parentJob: io.env.MUSTER_JOB_ID || undefined,
    ...(envExport === "NONE" ? { envExport } : {}),
    ...(nodelist ? { nodelist } : {}),
    ...submitOrigin(io.cwd),
  };
}

/** `-n`, `-N` and `--ntasks-per-node` resolved as srun does (src/cli/task-layout.ts). */
function taskLayout(o: ParsedArgs["options"]): TaskLayout {
  return resolveTaskLayout("run", { ntasks: o.ntasks as number | undefined, nodes: o.nodes as number | undefined, ntasksPerNode: o["ntasks-per-node"] as number | undefined });
}

/** `--time`: like every other option error, the message names the command and the option. */
function timeLimitOption(text: string): number {
  try {
    return parseTimeLimit(text);
  } catch (err) {
    throw new MusterError("USAGE", `run: option --time: ${(err as Error).message}`);
  }
}

/** `muster run` from the command line: checks the arguments before connecting, then runs the step with the process's signals wired in. */
export async function runMain(args: ParsedArgs, config: Config, ctx: CommandContext): Promise<number> {
  const cwd = process.cwd();
  // Usage errors (no command, bad time limit …) exit 2 before any connection is attempted.
  buildSubmit(args, config.user, { env: ctx.env, cwd });
  return withClient(
    config,
    (client) =>
      runCommand(client, args, {
        stdout: ctx.out,
        stderr: ctx.err,
        env: ctx.env,
        cwd,
        terminal: process.stderr.isTTY ? { stdoutIsTTY: Boolean(process.stdout.isTTY), columns: () => process.stderr.columns } : undefined,
        onBrokenPipe,
        whenWritable: () => whenWritable([process.stdout, process.stderr]),
        onSignal: (h) => {
          const sigs: NodeJS.Signals[] = ["SIGINT", "SIGTERM", "SIGHUP"];
          for (const s of sigs) process.on(s, h);
          return () => {
            for (const s of sigs) process.off(s, h);
          };
        },
      }),
    "muster-run",
  );
}

/** Runs the command; resolves with the exit status. */
export async function runCommand(client: Client, args: ParsedArgs, io: RunIo): Promise<number> {
  const submit = buildSubmit(args, client.cfg.user, io);
  for (const w of taskLayout(jobDefaults(args.options, io.env)).warnings) io.stderr(`muster: warning: ${w}\n`);
  // On a terminal, everything below writes through the status line, which erases itself first.
  const progress = io.terminal && !args.options.quiet && submit.ntasks > 1 ? new ProgressLine({ ntasks: submit.ntasks, terminal: io.terminal, stdout: io.stdout, stderr: io.stderr }) : undefined;
  if (progress) io = { ...io, stdout: progress.stdout, stderr: progress.stderr };
  try {
    return await followStep(client, args, io, submit, progress);
  } finally {
    progress?.stop();
  }
}

async function followStep(client: Client, args: ParsedArgs, io: RunIo, submit: SubmitRequest, progress: ProgressLine | undefined): Promise<number> {
  const reply = (await client.request("submit", submit)) as { job: string; step: number; placement?: { node: string; ranks: string }[]; state?: string };
  const job = reply.job;
  progress?.setJob(job, reply.state === "PENDING");
  if (progress) void progress.followEvents(client, job, reply.step);
  if (args.options.verbose) {
    const where = reply.placement?.length ? `on ${reply.placement.map((p) => `${p.node}[${p.ranks}]`).join(",")}` : "pending";
    io.stderr(`muster: job ${job}: ${submit.ntasks} ${submit.ntasks === 1 ? "task" : "tasks"} ${where}\n`);
  }
  if (reply.state === "PENDING" && !args.options.quiet) io.stderr(`muster: job ${job} queued and waiting for resources\n`);
  // Task output: bytes as the tasks wrote them, to the terminal or the -o/-e files.
  const routes = outputRoutes(args.options.output as string | undefined, args.options.error as string | undefined);
  const fields = await patternFields(client, submit, reply, routes);
  const files = new OutputFiles(routes, {
    fields: (rank) => ({ ...fields.common, task: rank, ...fields.node(rank) }),
    cwd: io.cwd,
    stdout: io.stdout,
    stderr: io.stderr,
    onError: (path, err) => io.stderr(`muster: error: cannot write output file ${path}: ${err.message}\n`),
  });
  const output = new StepOutput({ label: submit.label, labelWidth: String(submit.ntasks - 1).length, target: (rank, stream) => files.target(rank, stream) });
  let lastOutputAt = Date.now();
  // True while output waits for muster run's own reader: that time is not silence from the tasks.
  let blocked = false;
  let pending: Promise<void> = Promise.resolve();
  const writeChunk = (c: IoChunk): Promise<void> | undefined => {
    lastOutputAt = Date.now();
    if (!fields.ready()) {
      // The file names need the tasks' nodes, not known yet (the job was queued): in order, once they are.
      pending = pending.then(() => fields.whenReady()).then(() => output.take(c));
      return undefined;
    }
    output.take(c);
    // Output is taken no faster than muster run's own stdout and stderr are read.
    const writable = io.whenWritable?.();
    if (!writable) return undefined;
    blocked = true;
    return writable.finally(() => {
      blocked = false;
      lastOutputAt = Date.now();
    });
  };
  // Signals are handled from the moment the job exists (following its output and state takes a few
  // round trips; a Ctrl-C in between must not kill muster run and leave the job running).
  let lastInt = 0;
  const unregister = io.onSignal?.((sig) => {
    const now = Date.now();
    if (sig === "SIGINT" && now - lastInt > 1000) {
      lastInt = now;
      void statusLines(client, job).then(
        (lines) => {
          for (const l of lines) io.stderr(`muster: ${l}\n`);
          io.stderr("muster: interrupt (one more within 1 sec to abort)\n");
        },
        (err: Error) => io.stderr(`muster: error: ${err.message}\n`),
      );
      return;
    }
    io.stderr(`muster: ${sig === "SIGINT" ? "aborting" : `${sig} received, cancelling`} job ${job}\n`);
    void client.request("kill", { type: "kill", v: 1, job, step: submit.parentJob ? reply.step : undefined }).catch((err: Error) => io.stderr(`muster: error: ${err.message}\n`));
  });
  // Nobody reads the output any more (`muster run … | head`): the step is cancelled, as srun does, before muster run leaves quietly.
  // That cancel is muster run's own doing, not news for the user: no `*** STEP … CANCELLED ***` line follows it.
  let pipeClosed = false;
  const unregisterPipe = io.onBrokenPipe?.(() => {
    pipeClosed = true;
    return client.request("kill", { type: "kill", v: 1, job, step: submit.parentJob ? reply.step : undefined });
  });

  const ioFollow = await client.follow(client.subjects.streams.io.name, client.subjects.io.ofStep(job, reply.step), (m) => {
    const p = parseMessage(IoChunkSchema, m.data, m.subject);
    return p.ok ? writeChunk(p.value) : undefined;
  });

  let summary: StepSummary | undefined;
  let firstFailureShown = false;
  // srun's `*** STEP 12.0 ON node-1 CANCELLED AT … ***`, printed once, the moment the runtime begins stopping the step.
  let stopShown = false;
  const showStop = (s: StepStopping) => {
    if (stopShown || pipeClosed) return;
    stopShown = true;
    io.stderr(`muster: error: ${stopLine(`STEP ${job}.${reply.step}`, s.node, s.reason, s.at)}\n`);
  };
  let jobEnd: string | undefined;
  let resolveEnd!: () => void;
  const ended = new Promise<void>((r) => (resolveEnd = r));
  const exitCodesSubject = client.subjects.job.exitCodes(job, reply.step);
  const stateFollow = await client.follow(client.subjects.streams.jobs.name, client.subjects.job.ofJob(job), (m) => {
    if (m.subject === exitCodesSubject) {
      const p = parseMessage(StepExitCodesMessageSchema, m.data, m.subject);
      if (!p.ok) return;
      const msg: StepExitCodesMessage = p.value;
      if (msg.type === "step.first_failure" && !firstFailureShown) {
        firstFailureShown = true;
        for (const l of summaryLines(msg)) io.stderr(`muster: ${l}\n`);
      } else if (msg.type === "step.summary") summary = msg;
      return;
    }
    const p = parseMessage(JobStateMessageSchema, m.data, m.subject);
    if (p.ok && p.value.step === reply.step && p.value.stopping) showStop(p.value.stopping);
    if (!p.ok || !isFinalState(p.value.state)) return;
    // The step's end; or the job's, which comes without one when the job was cancelled while PENDING.
    if (p.value.step === reply.step || p.value.step === undefined) {
      if (p.value.step === undefined) jobEnd = p.value.state;
      resolveEnd();
      return false;
    }
  });

  try {
    await ended;
    stateFollow.stop();
    progress?.stop();
    // Output of every task that ran ends with an eof chunk per stream: wait for them as long as output
    // keeps coming (a fast writer's output may still be on its way), and say which never came.
    const s = summary;
    const { ranks: expected, count: ranCount } = s ? outputRanks(s) : { ranks: [], count: 0 };
    const allEnded = () => output.endedStreams() >= 2 * ranCount && expected.every((r) => output.ended(r, "stdout") && output.ended(r, "stderr"));
    const endSeenAt = Date.now();
    while (!allEnded() && (blocked || Date.now() - Math.max(lastOutputAt, endSeenAt) < OUTPUT_QUIET_MS)) {
      await new Promise((r) => setTimeout(r, 20));
    }
    ioFollow.stop();
    await pending;
    output.flush();
    await files.close();
    for (const l of output.losses()) io.stderr(`muster: error: ${lossLine(l)}\n`);
    const unended = expected.filter((r) => !output.ended(r, "stdout") || !output.ended(r, "stderr"));
    if (unended.length > 0) {
      io.stderr(`muster: error: ${unended.length === 1 ? "task" : "tasks"} ${IdSet.of(unended).toString()}: the end of the output did not arrive within ${OUTPUT_QUIET_MS / 1000}s; it may be incomplete\n`);
    }
    if (!s) {
      io.stderr(`muster: error: job ${job} ${jobEnd === "CANCELLED" ? "was cancelled before it started" : "ended without a step summary"}\n`);
      return 1;
    }
    // A stop whose COMPLETING state was never published (the step ended in the same instant) still says so.
    const stopReason = STOP_REASON_OF_STATE[s.state];
    const firstNode = reply.placement?.[0]?.node;
    if (stopReason && firstNode) showStop({ reason: stopReason, at: s.publishedAt, node: firstNode });
    for (const l of errorLines(s, await launchErrors(client, job, reply.step, s))) io.stderr(`muster: error: ${l}\n`);
    return runExitStatus(parseExitCode(s.exitCode), s.state, s.reason);
  } finally {
    unregister?.();
    unregisterPipe?.();
  }
}

/**
 * The stop reason a cancelled or timed-out step's state implies. NODE_FAIL is not here: a step whose
 * nodes failed was stopped (and said so) only when some of its tasks survived, and never under `--no-kill`.
 */
const STOP_REASON_OF_STATE: Partial<Record<string, StepStopping["reason"]>> = { CANCELLED: "cancel", TIMEOUT: "time-limit" };

/** Output written and not yet taken by the reader beyond which muster run takes no more task output, bytes. */
const WRITABLE_LIMIT_BYTES = 4 * 1024 * 1024;

/** A promise until every stream's buffered output is back under the limit; undefined when it is already. */
function whenWritable(streams: readonly NodeJS.WriteStream[]): Promise<void> | undefined {
  const full = streams.find((s) => !s.destroyed && s.writableLength > WRITABLE_LIMIT_BYTES);
  if (!full) return undefined;
  return new Promise<void>((resolve) => {
    const done = (): void => {
      for (const ev of ["drain", "close", "error"] as const) full.off(ev, done);
      resolve();
    };
    for (const ev of ["drain", "close", "error"] as const) full.on(ev, done);
  }).then(() => whenWritable(streams));
}

/** How long `muster run` waits, after the step ended, for more output before it stops waiting for the end of every task's output, ms. */
const OUTPUT_QUIET_MS = 3000;

/** The filename-pattern fields of the step's tasks; a task's node is known once the step is placed. */
async function patternFields(
  client: Client,
  submit: SubmitRequest,
  reply: { job: string; step: number; placement?: { node: string; ranks: string }[] },
  routes: ReturnType<typeof outputRoutes>,
): Promise<{ common: PatternFields; node(rank: number): PatternFields; ready(): boolean; whenReady(): Promise<void> }> {
  const uses = (spec: RegExp) => Object.values(routes).some((r) => r.kind === "file" && spec.test(r.pattern));
  let jobName = submit.name ?? submit.argv[0]!.split("/").pop()!;
  // A step of a batch job has the job's name.
  if (submit.parentJob && uses(/%\d*x/) && !submit.name) jobName = ((await client.request("query", { type: "query", v: 1, what: "job", job: reply.job }).catch(() => undefined)) as JobView | undefined)?.name ?? jobName;
  const common: PatternFields = { job: reply.job, step: String(reply.step), user: submit.user, jobName };
  const nodes = new Map<number, PatternFields>();
  const learn = (placement: readonly { node: string; ranks: string }[]) =>
    placement.forEach((p, nodeIndex) => {
      for (const r of IdSet.parse(p.ranks)) nodes.set(r, { node: p.node, nodeIndex });
    });
  learn(reply.placement ?? []);
  const needed = routesNeedNode(routes) && nodes.size < submit.ntasks;
  let ready = !needed;
  let asked: Promise<void> | undefined;
  return {
    common,
    node: (rank) => nodes.get(rank) ?? {},
    ready: () => ready,
    whenReady: () =>
      (asked ??= (async () => {
        // Output arrives once the tasks run: the job's view then places every rank; nodes in the order of their first rank.
        const view = (await client.request("query", { type: "query", v: 1, what: "job", job: reply.job }).catch(() => undefined)) as JobView | undefined;
        const tasks = view?.steps.find((x) => x.stepId === String(reply.step))?.tasks ?? [];
        const order = [...new Set([...tasks].sort((a, b) => a.rank - b.rank).map((t) => t.node))];
        for (const t of tasks) nodes.set(t.rank, { node: t.node, nodeIndex: order.indexOf(t.node) });
        ready = true;
      })()),
  };
}

/** The OS error text of each task that could not be launched (read from the job's view), by rank. */
async function launchErrors(client: Client, job: string, step: number, s: StepSummary): Promise<Map<number, string>> {
  const out = new Map<number, string>();
  const picture = decodeTaskPicture(s);
  if (![...Object.keys(picture.groups), ...Object.keys(picture.omitted?.groups ?? {})].some((k) => k.startsWith("launch_failed:"))) return out;
  try {
    const view = (await client.request("query", { type: "query", v: 1, what: "job", job })) as JobView;
    for (const t of view.steps.find((x) => x.stepId === String(step))?.tasks ?? []) {
      if (t.outcome?.kind === "launch_failed") out.set(t.rank, t.outcome.error);
    }
  } catch {
    // The lines still print, with a generic text, when the supervisor cannot be asked.
  }
  return out;
}

/** The ranks whose processes ran and so send output (those listed), and how many ran in all (a huge step's summary gives some groups as counts only). */
function outputRanks(s: StepSummary): { ranks: number[]; count: number } {
  const ran = (key: string) => key.startsWith("exited:") || key.startsWith("signaled:");
  const picture = decodeTaskPicture(s);
  let ranks = IdSet.EMPTY;
  for (const [key, ids] of Object.entries(picture.groups)) if (ran(key)) ranks = ranks.union(IdSet.parse(ids));
  // A huge step's summary gives some groups as counts only: their ranks are not known, their number is.
  let count = ranks.size;
  for (const [key, n] of Object.entries(picture.omitted?.groups ?? {})) if (ran(key)) count += n;
  return { ranks: [...ranks], count };
}

/** The current status of each task of the job's steps, for the first Ctrl-C. */
async function statusLines(client: Client, job: string): Promise<string[]> {
  const view = (await client.request("query", { type: "query", v: 1, what: "job", job })) as JobView;
  const lines: string[] = [];
  for (const s of view.steps) {
    lines.push(`StepId=${view.jobId}.${s.stepId} ${s.state}`);
    lines.push(...groupLines(s, "  "));
  }
  return lines;
}
