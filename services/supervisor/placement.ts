/** Where the tasks of a step go: Slurm's default block distribution over online nodes. */
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
}

/** A node that can take tasks. */
export interface CandidateNode {
  readonly node: string;
  readonly epoch: string;
  readonly slots: number;
}

/**
 * Places ranks in blocks: consecutive ranks on the same node, nodes in natural name order.
 * With `-N` the ranks are spread evenly (the first nodes take one more); with `--ntasks-per-node`
 * each node takes that many; otherwise nodes are filled up to their slots, and past the total
 * slots the tasks are spread evenly over every node.
 */
export function placeTasks(req: PlacementRequest, candidates: readonly CandidateNode[]): Placement[] {
  const nodes = [...candidates].sort((a, b) => compareNodeNames(a.node, b.node));
  if (nodes.length === 0) throw new MusterError("NO_NODES", "no node is online: start an agent (muster agent --node NAME) or a local cluster (muster up)");
  let counts: number[];
  if (req.ntasksPerNode !== undefined) {
    const n = req.nodes ?? Math.ceil(req.ntasks / req.ntasksPerNode);
    if (n * req.ntasksPerNode < req.ntasks) {
      throw new MusterError("BAD_REQUEST", `--ntasks-per-node=${req.ntasksPerNode} on ${n} nodes holds fewer than ${req.ntasks} tasks`);
    }
    counts = spread(req.ntasks, n, req.ntasksPerNode);
  } else if (req.nodes !== undefined) {
    counts = spread(req.ntasks, req.nodes);
  } else {
    counts = fill(req.ntasks, nodes.map((n) => n.slots));
  }
  if (counts.length > nodes.length) {
    throw new MusterError("NO_NODES", `the step needs ${counts.length} nodes and ${nodes.length} ${nodes.length === 1 ? "is" : "are"} online`, {
      needed: counts.length,
      online: nodes.length,
    });
  }
  const out: Placement[] = [];
  let rank = 0;
  counts.forEach((count, i) => {
    if (count === 0) return;
    const node = nodes[i]!;
    out.push({ node: node.node, epoch: node.epoch, ranks: IdSet.range(rank, rank + count - 1).toString() });
    rank += count;
  });
  return out;
}

function spread(ntasks: number, nnodes: number, cap = Number.POSITIVE_INFINITY): number[] {
  if (ntasks < nnodes) throw new MusterError("BAD_REQUEST", `-N ${nnodes} is more nodes than the ${ntasks} tasks asked for`);
  const base = Math.floor(ntasks / nnodes);
  const extra = ntasks % nnodes;
  return Array.from({ length: nnodes }, (_, i) => Math.min(cap, base + (i < extra ? 1 : 0)));
}

function fill(ntasks: number, slots: readonly number[]): number[] {
  const total = slots.reduce((a, b) => a + b, 0);
  if (ntasks > total) return spread(ntasks, Math.min(slots.length, ntasks));
  const counts: number[] = [];
  let left = ntasks;
  for (const s of slots) {
    if (left === 0) break;
    const take = Math.min(s, left);
    counts.push(take);
    left -= take;
  }
  return counts;
}
