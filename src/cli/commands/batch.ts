/**
 * `muster batch`: submit a script as a batch job (like sbatch). The script runs as step `batch` on
 * the first node of the job's allocation; each `muster run` inside it becomes step 0, 1, 2 … of the job.
 * Options come from the command line over the script's `#MUSTER` directives over its `#SBATCH` ones.
 */
import { readFileSync } from "node:fs";
import type { Config } from "../../config.js";
import { MusterError } from "../../errors.js";
import { isFinalState, parseExitCode, runExitStatus } from "../../exit-status/index.js";
import { JobStateMessageSchema, parseMessage, type SubmitRequest } from "../../protocol/index.js";
import { CONNECTION_OPTIONS, parseArgs, parseTimeLimit, type ParsedArgs } from "../args.js";
import { withClient, type Client } from "../client.js";
import { readDirectives } from "../directives.js";
import { chdirOption, exportedEnv, nodelistOption, submitOrigin } from "../slurm-options.js";
import { BATCH_OPTIONS, type CommandContext } from "../specs.js";
import { resolveTaskLayout } from "../task-layout.js";

/** The script sbatch's `--wrap` builds around a command. */
export function wrapScript(command: string): string {
  return `#!/bin/sh\n# This script was created by muster batch --wrap.\n\n${command}\n`;
}

/** A batch job's script: its name as given, its text, its arguments. */
interface BatchScript {
  readonly script: string;
  readonly content: string;
  readonly rest: readonly string[];
}

/** Reads the script now (or builds it from --wrap), so later edits do not change the job. */
function readScript(args: ParsedArgs): BatchScript {
  const wrap = args.options.wrap as string | undefined;
  if (wrap !== undefined) {
    if (args.positionals.length) throw new MusterError("USAGE", `batch: --wrap takes no script or arguments (got "${args.positionals[0]}")`);
    return { script: "wrap", content: wrapScript(wrap), rest: [] };
  }
  const [script, ...rest] = args.positionals;
  if (!script) throw new MusterError("USAGE", "batch: no script given (muster batch [options] SCRIPT [ARGS...], or --wrap CMD)");
  try {
    return { script, content: readFileSync(script, "utf8"), rest };
  } catch (err) {
    throw new MusterError("USAGE", `batch: cannot read script "${script}": ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}`);
  }
}

/**
 * The options of the script's directives, `#MUSTER` over `#SBATCH` (a later line over an earlier
 * one); an unknown or unsupported option fails as on the command line, naming the line.
 */
export function directiveOptions(script: string, content: string): ParsedArgs["options"] {
  const own = new Set(BATCH_OPTIONS.map((o) => o.name));
  const byTag: Record<string, Record<string, string | number | boolean>> = { SBATCH: {}, MUSTER: {} };
  for (const d of readDirectives(content, script)) {
    const where = `${script} line ${d.line}: #${d.tag}`;
    let parsed: ParsedArgs;
    try {
      parsed = parseArgs("batch", d.args, BATCH_OPTIONS);
    } catch (err) {
      throw new MusterError("USAGE", `${(err as Error).message} (${where})`);
    }
    if (parsed.positionals.length) throw new MusterError("USAGE", `batch: unexpected argument "${parsed.positionals[0]}" (${where})`);
    for (const [k, v] of Object.entries(parsed.options)) {
      const notADirective = CONNECTION_OPTIONS.some((c) => c.name === k) || !own.has(k) || k === "wrap";
      if (notADirective) throw new MusterError("USAGE", `batch: option --${k} cannot be a directive (${where})`);
      byTag[d.tag]![k] = v;
    }
  }
  return { ...byTag.SBATCH, ...byTag.MUSTER };
}

/** The batch command's arguments with the script's directives under the command line's options. */
export function withDirectives(args: ParsedArgs): { args: ParsedArgs; script: BatchScript } {
  const script = readScript(args);
  const options = args.options.wrap !== undefined ? args.options : { ...directiveOptions(script.script, script.content), ...args.options };
  return { args: { options, positionals: args.positionals }, script };
}

/** Builds the submit request of a batch job from the command line and the script's directives. */
export function buildBatchSubmit(cli: ParsedArgs, user: string, env: Readonly<Record<string, string | undefined>>, cwd: string): SubmitRequest {
  const { args, script } = withDirectives(cli);
  return batchRequest(args, script, user, env, cwd);
}

function batchRequest(args: ParsedArgs, s: BatchScript, user: string, env: Readonly<Record<string, string | undefined>>, cwd: string): SubmitRequest {
  const o = args.options;
  const { script, content, rest } = s;
  let timeLimitSeconds: number | undefined;
  if (o.time !== undefined) {
    try {
      timeLimitSeconds = parseTimeLimit(String(o.time));
    } catch (err) {
      throw new MusterError("USAGE", `batch: option --time: ${(err as Error).message}`);
    }
  }
  const { env: taskEnv, envExport } = exportedEnv("batch", o.export as string | undefined, env);
  const nodelist = nodelistOption("batch", o.nodelist as string | undefined);
  // The allocation's counts as sbatch computes them (-N 2 --ntasks-per-node 2: 4 tasks).
  const layout = resolveTaskLayout("batch", { ntasks: o.ntasks as number | undefined, nodes: o.nodes as number | undefined, ntasksPerNode: o["ntasks-per-node"] as number | undefined });
  return {
    type: "submit",
    v: 1,
    user,
    name: (o["job-name"] as string | undefined) ?? script.split("/").pop()!,
    argv: [script, ...rest],
    env: taskEnv,
    cwd: chdirOption(cwd, o.chdir as string | undefined),
    ntasks: layout.ntasks,
    nodes: layout.nodes,
    ntasksPerNode: layout.ntasksPerNode,
    label: false,
    killOnBadExit: false,
    timeLimitSeconds,
    killWaitSeconds: o["kill-wait"] as number | undefined,
    batch: { script, content, output: o.output as string | undefined, error: o.error as string | undefined },
    ...(envExport === "NONE" ? { envExport } : {}),
    ...(nodelist ? { nodelist } : {}),
    ...submitOrigin(cwd),
  };
}

/** `muster batch` from the command line: reads the script and checks the arguments before connecting. */
export async function batchMain(args: ParsedArgs, config: Config, ctx: CommandContext): Promise<number> {
  const { args: merged, script } = withDirectives(args);
  const req = batchRequest(merged, script, config.user, ctx.env, process.cwd());
  return withClient(config, (c) => batchCommand(c, merged, req, ctx.out));
}

/** Submits; prints `Submitted batch job N`; with --wait, follows the job and returns its exit status. */
export async function batchCommand(client: Client, args: ParsedArgs, req: SubmitRequest, out: (s: string) => void): Promise<number> {
  const reply = (await client.request("submit", req)) as { job: string };
  out(args.options.parsable ? `${reply.job}\n` : `Submitted batch job ${reply.job}\n`);
  if (!args.options.wait) return 0;
  let status = 1;
  const follow = await client.follow(client.subjects.streams.jobs.name, client.subjects.job.state(reply.job), (m) => {
    const p = parseMessage(JobStateMessageSchema, m.data, m.subject);
    if (!p.ok || p.value.step !== undefined) return;
    if (isFinalState(p.value.state)) {
      status = runExitStatus(parseExitCode(p.value.exitCode), p.value.state, p.value.reason);
      return false;
    }
  });
  await follow.done;
  follow.stop();
  return status;
}
