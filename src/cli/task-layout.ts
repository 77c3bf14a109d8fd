/**
 * How many tasks on how many nodes, from `-n`, `-N` and `--ntasks-per-node` as srun computes it:
 * without `-n`, the count is N×K (N defaults to 1, K to 1); with `-n` and `-N`, fewer tasks than
 * nodes shrinks the node count, and a K that does not match n/N is dropped, each with srun's
 * warning; with `-n` and K alone the tasks go K to a node.
 */
import { MusterError } from "../errors.js";

/** The three counts as the user gave them (undefined when not given). */
export interface TaskLayoutOptions {
  readonly ntasks?: number;
  readonly nodes?: number;
  readonly ntasksPerNode?: number;
}

/** The counts to submit, and srun's warnings for what was adjusted. */
export interface TaskLayout {
  readonly ntasks: number;
  readonly nodes?: number;
  readonly ntasksPerNode?: number;
  readonly warnings: readonly string[];
}

/**
 * Resolves the counts of a `run` (or `batch`) request; `defaultNtasks` is the count when none of the
 * three options is given. Throws a USAGE error for a count below 1, naming the command and option.
 */
export function resolveTaskLayout(command: string, o: TaskLayoutOptions, defaultNtasks = 1): TaskLayout {
  for (const [name, v] of [["ntasks", o.ntasks], ["nodes", o.nodes], ["ntasks-per-node", o.ntasksPerNode]] as const) {
    if (v !== undefined && v < 1) throw new MusterError("USAGE", `${command}: option --${name} must be at least 1`);
  }
  const warnings: string[] = [];
  let { nodes, ntasksPerNode } = o;
  if (o.ntasks === undefined) {
    if (nodes === undefined && ntasksPerNode === undefined) return { ntasks: defaultNtasks, warnings };
    return { ntasks: (nodes ?? 1) * (ntasksPerNode ?? 1), nodes, ntasksPerNode, warnings };
  }
  const ntasks = o.ntasks;
  if (nodes !== undefined) {
    if (ntasks < nodes) {
      warnings.push(`can't run ${ntasks} processes on ${nodes} nodes, setting nnodes to ${ntasks}`);
      nodes = ntasks;
    }
    if (ntasksPerNode !== undefined && ntasksPerNode !== Math.floor(ntasks / nodes)) {
      if (ntasks > ntasksPerNode) {
        warnings.push(
          `can't honor --ntasks-per-node set to ${ntasksPerNode} which doesn't match the requested tasks ${ntasks} with the number of requested nodes ${nodes}. Ignoring --ntasks-per-node.`,
        );
      }
      ntasksPerNode = undefined;
    }
  }
  return { ntasks, nodes, ntasksPerNode, warnings };
}
