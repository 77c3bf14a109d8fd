/**
 * `muster batch`: submit a script as a batch job (like sbatch). The script runs as step `batch` on
 * the first node of the job's allocation; each `muster run` inside it becomes step 0, 1, 2 … of the job.
 */
import { readFileSync } from "node:fs";
import type { Config } from "../../config.js";
import { MusterError } from "../../errors.js";
import { isFinalState, parseExitCode, runExitStatus } from "../../exit-status/index.js";
import { JobStateMessageSchema, parseMessage, type SubmitRequest } from "../../protocol/index.js";
import { parseTimeLimit, type ParsedArgs } from "../args.js";
import { withClient, type Client } from "../client.js";
import type { CommandContext } from "../specs.js";
import { TASK_VARIABLES } from "./run.js";

/** Builds the submit request of a batch job; reads the script now, so later edits do not change the job. */
export function buildBatchSubmit(args: ParsedArgs, user: string, env: Readonly<Record<string, string | undefined>>, cwd: string): SubmitRequest {
  const o = args.options;
  const [script, ...rest] = args.positionals;
  if (!script) throw new MusterError("USAGE", "batch: no script given (muster batch [options] SCRIPT [ARGS...])");
  let content: string;
  try {
    content = readFileSync(script, "utf8");
  } catch (err) {
    throw new MusterError("USAGE", `batch: cannot read script "${script}": ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}`);
  }
  let timeLimitSeconds: number | undefined;
  if (o.time !== undefined) {
    try {
      timeLimitSeconds = parseTimeLimit(String(o.time));
    } catch (err) {
      throw new MusterError("USAGE", `batch: option --time: ${(err as Error).message}`);
    }
  }
  const taskEnv: Record<string, string> = {};
  for (const [k, v] of Object.entries(env)) if (v !== undefined && /^[^=\0]+$/.test(k) && !v.includes("\0") && !TASK_VARIABLES.has(k)) taskEnv[k] = v;
  return {
    type: "submit",
    v: 1,
    user,
    name: (o["job-name"] as string | undefined) ?? script.split("/").pop()!,
    argv: [script, ...rest],
    env: taskEnv,
    cwd,
    ntasks: (o.ntasks as number | undefined) ?? 1,
    nodes: o.nodes as number | undefined,
    ntasksPerNode: o["ntasks-per-node"] as number | undefined,
    label: false,
    killOnBadExit: false,
    timeLimitSeconds,
    killWaitSeconds: o["kill-wait"] as number | undefined,
    batch: { script, content, output: o.output as string | undefined, error: o.error as string | undefined },
  };
}

/** `muster batch` from the command line: reads the script and checks the arguments before connecting. */
export async function batchMain(args: ParsedArgs, config: Config, ctx: CommandContext): Promise<number> {
  const req = buildBatchSubmit(args, config.user, ctx.env, process.cwd());
  return withClient(config, (c) => batchCommand(c, args, req, ctx.out));
}

/** Submits; prints `Submitted batch job N`; with --wait, follows the job and returns its exit status. */
export async function batchCommand(client: Client, args: ParsedArgs, req: SubmitRequest, out: (s: string) => void): Promise<number> {
  const reply = (await client.request("submit", req)) as { job: string };
  out(`Submitted batch job ${reply.job}\n`);
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
