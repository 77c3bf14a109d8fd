import { describe, expect, it } from "vitest";
import { resolveTaskLayout } from "../../src/cli/task-layout.js";
import { formatLocalTime, stopLine } from "../../src/exit-status/index.js";
import { MusterError } from "../../src/errors.js";

// Each vector is what srun 22.05 did with the same options on a 3-node, 4-CPU cluster.
describe("resolveTaskLayout: -n, -N and --ntasks-per-node as srun computes them", () => {
  it.each([
    [{}, { ntasks: 1 }, []],
    [{ nodes: 2 }, { ntasks: 2, nodes: 2 }, []],
    [{ nodes: 2, ntasksPerNode: 2 }, { ntasks: 4, nodes: 2, ntasksPerNode: 2 }, []],
    [{ ntasksPerNode: 2 }, { ntasks: 2, ntasksPerNode: 2 }, []],
    [{ ntasks: 3, ntasksPerNode: 2 }, { ntasks: 3, ntasksPerNode: 2 }, []],
    [{ ntasks: 4, nodes: 2, ntasksPerNode: 2 }, { ntasks: 4, nodes: 2, ntasksPerNode: 2 }, []],
    // K matches n/N rounded down: kept (the placement then refuses 5 tasks on 2 nodes of 2).
    [{ ntasks: 5, nodes: 2, ntasksPerNode: 2 }, { ntasks: 5, nodes: 2, ntasksPerNode: 2 }, []],
    // K does not match but is not below n: dropped without a word.
    [{ ntasks: 2, nodes: 2, ntasksPerNode: 2 }, { ntasks: 2, nodes: 2 }, []],
    [
      { ntasks: 3, nodes: 3, ntasksPerNode: 2 },
      { ntasks: 3, nodes: 3 },
      ["can't honor --ntasks-per-node set to 2 which doesn't match the requested tasks 3 with the number of requested nodes 3. Ignoring --ntasks-per-node."],
    ],
    [{ ntasks: 2, nodes: 3 }, { ntasks: 2, nodes: 2 }, ["can't run 2 processes on 3 nodes, setting nnodes to 2"]],
    [{ ntasks: 1, nodes: 2, ntasksPerNode: 2 }, { ntasks: 1, nodes: 1 }, ["can't run 1 processes on 2 nodes, setting nnodes to 1"]],
  ])("%o → %o", (given, want, warnings) => {
    const got = resolveTaskLayout("run", given);
    expect({ ntasks: got.ntasks, ...(got.nodes ? { nodes: got.nodes } : {}), ...(got.ntasksPerNode ? { ntasksPerNode: got.ntasksPerNode } : {}) }).toEqual(want);
    expect(got.warnings).toEqual(warnings);
  });

  it("the default applies only when none of the three is given", () => {
    expect(resolveTaskLayout("run", {}, 4).ntasks).toBe(4);
    expect(resolveTaskLayout("run", { ntasksPerNode: 3 }, 4).ntasks).toBe(3);
  });

  it("a count below 1 is a usage error naming the command and option", () => {
    const err = (() => {
      try {
        resolveTaskLayout("batch", { nodes: 0 });
      } catch (e) {
        return e as MusterError;
      }
    })();
    expect(err).toBeInstanceOf(MusterError);
    expect(err).toMatchObject({ code: "USAGE", message: "batch: option --nodes must be at least 1" });
  });
});

describe("stopLine: srun's and slurmstepd's *** … CANCELLED AT … *** line", () => {
  const at = new Date(2026, 11, 7, 17, 38, 4, 512).getTime(); // local time

  it("formats local time without a zone or milliseconds", () => {
    expect(formatLocalTime(at)).toBe("2026-12-07T17:38:04");
  });

  it.each([
    ["cancel", "*** STEP 138.0 ON n2 CANCELLED AT 2026-12-07T17:38:04 ***"],
    ["wait", "*** STEP 138.0 ON n2 CANCELLED AT 2026-12-07T17:38:04 ***"],
    ["kill-on-bad-exit", "*** STEP 138.0 ON n2 CANCELLED AT 2026-12-07T17:38:04 ***"],
    ["time-limit", "*** STEP 138.0 ON n2 CANCELLED AT 2026-12-07T17:38:04 DUE TO TIME LIMIT ***"],
    ["node-failure", "*** STEP 138.0 ON n2 CANCELLED AT 2026-12-07T17:38:04 DUE TO NODE FAILURE ***"],
  ])("%s", (reason, line) => {
    expect(stopLine("STEP 138.0", "n2", reason, at)).toBe(line);
  });

  it("names a job the same way", () => {
    expect(stopLine("JOB 50", "n2", "time-limit", at)).toBe("*** JOB 50 ON n2 CANCELLED AT 2026-12-07T17:38:04 DUE TO TIME LIMIT ***");
  });
});
