/**
 * `muster nodes`: nodes, their state and their slots, allocated, idle and total (like sinfo's
 * CPUS(A/I/O/T)), with `--format FIELD,...`, `--parsable2`, `--noheader` and `--json`.
 */
import type { Config } from "../../config.js";
import { MusterError } from "../../errors.js";
import type { NodeView } from "../../protocol/index.js";
import type { ParsedArgs } from "../args.js";
import { withClient } from "../client.js";
import { formatTime } from "../render.js";
import { NODE_FIELDS, type CommandContext, type NodeField } from "../specs.js";
import { renderTable } from "./tables.js";

type NodeColumn = { readonly header: NodeField; readonly get: (n: NodeView) => string };

// Keyed by the lower-case name of every column in NODE_FIELDS (the type checks that none is missing).
const COLUMNS: Readonly<Record<Lowercase<NodeField>, NodeColumn>> = {
  node: { header: "Node", get: (n) => n.node },
  state: { header: "State", get: (n) => n.state },
  reason: { header: "Reason", get: (n) => n.reason ?? "None" },
  alloc: { header: "Alloc", get: (n) => String(n.allocatedSlots ?? 0) },
  idle: { header: "Idle", get: (n) => String(n.idleSlots ?? 0) },
  total: { header: "Total", get: (n) => String(n.slots) },
  running: { header: "Running", get: (n) => String(n.runningTasks) },
  since: { header: "Since", get: (n) => formatTime(n.since) },
  lastseen: { header: "LastSeen", get: (n) => formatTime(n.lastSeenAt) },
  epoch: { header: "Epoch", get: (n) => n.epoch ?? "" },
};

const DEFAULT: readonly NodeField[] = ["Node", "State", "Reason", "Alloc", "Idle", "Total", "Running", "Since"];

/** The columns `--format` names (any case), or the default ones; throws a USAGE error naming an unknown one. */
export function parseNodeFields(spec: string | undefined): NodeColumn[] {
  const names = spec === undefined ? DEFAULT : spec.split(",").map((s) => s.trim()).filter(Boolean);
  if (names.length === 0) throw new MusterError("USAGE", "nodes: option --format needs at least one field");
  return names.map((n) => {
    const key = n.toLowerCase();
    if (!Object.hasOwn(COLUMNS, key)) throw new MusterError("USAGE", `nodes: unknown field "${n}" in --format (fields: ${NODE_FIELDS.join(",")})`);
    return COLUMNS[key as Lowercase<NodeField>];
  });
}

/** The text (or JSON) `muster nodes` prints for `nodes`. */
export function nodesOutput(nodes: readonly NodeView[], args: ParsedArgs): string {
  const o = args.options;
  if (o.json) return JSON.stringify(nodes, null, 2) + "\n";
  return renderTable(nodes, parseNodeFields(o.format as string | undefined), { parsable: Boolean(o.parsable2), header: !o.noheader, now: 0 });
}

/** `muster nodes` from the command line: checks --format before connecting. */
export async function nodesMain(args: ParsedArgs, config: Config, ctx: CommandContext): Promise<number> {
  if (args.positionals.length) throw new MusterError("USAGE", "nodes: takes no arguments");
  parseNodeFields(args.options.format as string | undefined);
  return withClient(config, async (c) => {
    const nodes = (await c.request("query", { type: "query", v: 1, what: "nodes" })) as NodeView[];
    const paused = nodes.find((n) => n.livenessPaused)?.livenessPaused;
    if (paused) ctx.err(`muster: warning: node liveness paused since ${formatTime(paused.since)}: ${paused.reason}; no node is declared lost meanwhile\n`);
    ctx.out(nodesOutput(nodes, args));
    return 0;
  });
}
