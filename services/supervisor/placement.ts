/**
 * Where the tasks of a step go: Slurm's default block distribution over online nodes, within
 * each node's free slots. A request that does not fit now but would fit an idle cluster waits
 * (PENDING, Reason Resources); one that could never fit is refused.
 */
import { compareNodeNames } from "../../src/exit-status/index.js";
import { MusterError } from "../../src/errors.js";
import { IdSet } from "../../src/idset/index.js";
import type { Placement } from "../../machines/step.machine.js";

/** What a submission asks for. */
export interface PlacementRequest {
  readonly ntasks: number;
  /** `-N`: exactly this many nodes. */
  readonly nodes?: number;
  /** `--ntasks-per-node`. */
  readonly ntasksPerNode?: number;
  /** `-w/--nodelist`: exactly these nodes, each taking a share of the tasks. */
  readonly nodelist?: readonly string[];
}

/** A node that can take tasks. */
export interface CandidateNode {
  readonly node: string;
  readonly epoch: string;
  /** Slots free now. */
  readonly slots: number;
  /** Slots in all (free when the node is idle); defaults to `slots`. */
  readonly total?: number;
}

/** Checks a request's shape; throws BAD_REQUEST for one that no cluster could satisfy. */
export function checkRequest(req: PlacementRequest): void {
  if (req.nodelist !== undefined) {
    const n = req.nodelist.length;
    if (req.nodes !== undefined && req.nodes !== n) throw new MusterError("BAD_REQUEST", `-N ${req.nodes} differs from the ${n} ${n === 1 ? "node" : "nodes"} named by --nodelist: muster places a step on exactly the named nodes`);
    if (req.ntasks < n) throw new MusterError("BAD_REQUEST", `--nodelist names ${n} nodes, more than the ${req.ntasks} tasks asked for`);
  }
  if (req.nodes !== undefined && req.ntasks < req.nodes) {
    throw new MusterError("BAD_REQUEST", `-N ${req.nodes} is more nodes than the ${req.ntasks} tasks asked for`);
  }
  if (req.ntasksPerNode !== undefined && req.nodes !== undefined && req.nodes * req.ntasksPerNode < req.ntasks) {
    throw new MusterError("BAD_REQUEST", `--ntasks-per-node=${req.ntasksPerNode} on ${req.nodes} nodes holds fewer than ${req.ntasks} tasks`);
  }
}

/**
 * Places ranks in blocks (consecutive ranks on one node, nodes in natural name order) within the
 * candidates' free slots; returns undefined when the request does not fit now.
 * With `-N` the ranks are spread evenly (the first nodes take one more); with `--ntasks-per-node`
 * each node takes that many; otherwise nodes are filled up to their free slots.
 */
export function placeTasks(req: PlacementRequest, candidates: readonly CandidateNode[]): Placement[] | undefined {
  checkRequest(req);
  if (req.nodelist !== undefined) {
    // -w: the named nodes only, every one of them taking tasks (as -N with their count).
    const named = new Set(req.nodelist);
    candidates = candidates.filter((c) => named.has(c.node));
    if (candidates.length < named.size) return undefined;
    req = { ...req, nodes: named.size, nodelist: undefined };
  }
  const nodes = [...candidates].sort((a, b) => compareNodeNames(a.node, b.node));
  const free = (n: CandidateNode) => n.slots;
  let chosen: { node: CandidateNode; count: number }[] | undefined;
  if (req.nodes !== undefined || req.ntasksPerNode !== undefined) {
    const n = req.nodes ?? Math.ceil(req.ntasks / req.ntasksPerNode!);
    const counts = spread(req.ntasks, n, req.ntasksPerNode);
    const fit = nodes.filter((x) => free(x) >= counts[0]!);
    chosen = fit.length >= n ? counts.map((count, i) => ({ node: fit[i]!, count })) : undefined;
  } else {
    chosen = [];
    let left = req.ntasks;
    for (const node of nodes) {
      if (left === 0) break;
      const take = Math.min(free(node), left);
      if (take > 0) chosen.push({ node, count: take });
      left -= take;
    }
    if (left > 0) chosen = undefined;
  }
  if (!chosen) return undefined;
  const out: Placement[] = [];
  let rank = 0;
  for (const { node, count } of chosen) {
    out.push({ node: node.node, epoch: node.epoch, ranks: IdSet.range(rank, rank + count - 1).toString() });
    rank += count;
  }
  return out;
}

/** True when the request would fit the candidates if they were idle. */
export function fitsWhenIdle(req: PlacementRequest, candidates: readonly CandidateNode[]): boolean {
  return placeTasks(req, candidates.map((c) => ({ ...c, slots: c.total ?? c.slots }))) !== undefined;
}

/** The error for a request no online node set can ever hold. */
export function neverFits(req: PlacementRequest, candidates: readonly CandidateNode[]): MusterError {
  if (candidates.length === 0) return new MusterError("NO_NODES", "no node is online: start an agent (muster agent --node NAME) or a local cluster (muster up)");
  const missing = req.nodelist?.filter((n) => !candidates.some((c) => c.node === n)) ?? [];
  if (missing.length) return new MusterError("NO_NODES", `${missing.length === 1 ? "node" : "nodes"} ${missing.join(",")} named by --nodelist ${missing.length === 1 ? "is" : "are"} not online (see muster nodes)`);
  const total = candidates.reduce((a, c) => a + (c.total ?? c.slots), 0);
  return new MusterError(
    "NO_NODES",
    `the request (${req.ntasks} tasks${req.nodelist ? ` on ${req.nodelist.join(",")}` : req.nodes ? ` on ${req.nodes} nodes` : ""}${req.ntasksPerNode ? `, ${req.ntasksPerNode} per node` : ""}) does not fit the ${candidates.length} online ${candidates.length === 1 ? "node" : "nodes"} with ${total} slots in all (see muster nodes)`,
    { ntasks: req.ntasks, online: candidates.length, slots: total },
  );
}

function spread(ntasks: number, nnodes: number, cap = Number.POSITIVE_INFINITY): number[] {
  const base = Math.floor(ntasks / nnodes);
  const extra = ntasks % nnodes;
  return Array.from({ length: nnodes }, (_, i) => Math.min(cap, base + (i < extra ? 1 : 0)));
}
