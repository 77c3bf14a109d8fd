/** `muster nodes`: list nodes and their state (like sinfo). */
import type { Config } from "../../config.js";
import { MusterError } from "../../errors.js";
import type { NodeView } from "../../protocol/index.js";
import type { ParsedArgs } from "../args.js";
import { withClient } from "../client.js";
import type { CommandContext } from "../specs.js";

/** `muster nodes` from the command line. */
export async function nodesMain(args: ParsedArgs, config: Config, ctx: CommandContext): Promise<number> {
  if (args.positionals.length) throw new MusterError("USAGE", "nodes: takes no arguments");
  const out = ctx.out;
  return withClient(config, async (c) => {
    const nodes = (await c.request("query", { type: "query", v: 1, what: "nodes" })) as NodeView[];
    if (args.options.json) out(JSON.stringify(nodes, null, 2) + "\n");
    else {
      out("NODE       STATE     REASON            SLOTS  RUNNING  SINCE\n");
      for (const n of nodes) {
        out(`${n.node.padEnd(10)} ${n.state.padEnd(9)} ${(n.reason ?? "-").padEnd(17)} ${String(n.slots).padEnd(6)} ${String(n.runningTasks).padEnd(8)} ${n.since ? new Date(n.since).toISOString() : "-"}\n`);
      }
    }
    return 0;
  });
}
