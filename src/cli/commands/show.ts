/** `muster show job ID`: a job, its steps and tasks, in scontrol's key=value style or as JSON. */
import type { Config } from "../../config.js";
import { MusterError } from "../../errors.js";
import type { JobView } from "../../protocol/index.js";
import type { ParsedArgs } from "../args.js";
import { withClient } from "../client.js";
import { renderJob } from "../render.js";
import type { CommandContext } from "../specs.js";

/** `muster show` from the command line. */
export async function showMain(args: ParsedArgs, config: Config, ctx: CommandContext): Promise<number> {
  const p = args.positionals;
  if (p[0] !== "job" || !p[1] || p.length > 2) throw new MusterError("USAGE", "show: expected 'show job ID'");
  return withClient(config, async (c) => {
    const view = (await c.request("query", { type: "query", v: 1, what: "job", job: p[1]! })) as JobView;
    ctx.out((args.options.json ? JSON.stringify(view, null, 2) : renderJob(view)) + "\n");
    return 0;
  });
}
