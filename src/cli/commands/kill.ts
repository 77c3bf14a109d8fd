/** `muster kill JOB[.STEP]`: cancel a job or step, or send it a signal (like scancel). */
import type { Config } from "../../config.js";
import { MusterError } from "../../errors.js";
import { parseSignal } from "../../exit-status/index.js";
import type { ParsedArgs } from "../args.js";
import { withClient } from "../client.js";
import type { CommandContext } from "../specs.js";

/** `muster kill` from the command line: checks the id and the signal before connecting. */
export async function killMain(args: ParsedArgs, config: Config, _ctx: CommandContext): Promise<number> {
  const p = args.positionals;
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
