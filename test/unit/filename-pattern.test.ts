import { describe, expect, it } from "vitest";
import { expandFilenamePattern, patternNeedsNode, patternScope } from "../../src/filename-pattern/index.js";

const all = { job: "69", step: "0", task: 3, nodeIndex: 1, node: "n2", user: "alice", jobName: "nm" };

describe("filename patterns (srun -o/-e)", () => {
  it("expands every specifier as srun does", () => {
    expect(expandFilenamePattern("out-%j-%s-%t-%n-%N-%u-%x-%J.txt", all)).toBe("out-69-0-3-1-n2-alice-nm-69.0.txt");
    expect(expandFilenamePattern("%%j is %j, 100%%", all)).toBe("%j is 69, 100%");
  });

  it("zero-pads numbers to the given width and ignores the width for names", () => {
    expect(expandFilenamePattern("job%4j.out", all)).toBe("job0069.out");
    expect(expandFilenamePattern("job%j-%2t.out", { ...all, task: 0 })).toBe("job69-00.out");
    expect(expandFilenamePattern("%5N-%3u-%3x", all)).toBe("n2-alice-nm");
    expect(expandFilenamePattern("%4J", all)).toBe("0069.0");
  });

  it("writes a batch step's %s as batch and its %J as the job id, like sbatch", () => {
    expect(expandFilenamePattern("x-%s-%J", { ...all, step: "batch" })).toBe("x-batch-69");
  });

  it("writes %A and %a as Slurm does for a job outside an array", () => {
    expect(expandFilenamePattern("%A_%a", all)).toBe("69_4294967294");
  });

  it("leaves an unknown specifier and a trailing % as written", () => {
    expect(expandFilenamePattern("a-%q-%", all)).toBe("a-%q-%");
  });

  it("does not expand a pattern with a backslash, and removes its backslashes", () => {
    expect(expandFilenamePattern("b\\\\-%j.out", all)).toBe("b-%j.out");
    expect(expandFilenamePattern("c\\%j", all)).toBe("c%j");
  });

  it("expands partially what is known and leaves the rest for a later pass", () => {
    const first = expandFilenamePattern("%x-%j-%N-%%N-%3n.out", { job: "7", jobName: "nm" }, { partial: true });
    expect(first).toBe("nm-7-%N-%%N-%3n.out");
    expect(expandFilenamePattern(first, { node: "n1", nodeIndex: 0 })).toBe("nm-7-n1-%N-000.out");
    expect(expandFilenamePattern("a\\\\%j", { job: "7" }, { partial: true })).toBe("a\\\\%j");
  });

  it("says whether a pattern makes one file per task, per node or per step", () => {
    expect(patternScope("o-%j.out")).toBe("step");
    expect(patternScope("o-%N.out")).toBe("node");
    expect(patternScope("o-%3n-%t.out")).toBe("task");
    expect(patternScope("o-%%t.out")).toBe("step");
    expect(patternScope("o\\\\-%t.out")).toBe("step");
    expect(patternNeedsNode("o-%N-%t")).toBe(true);
    expect(patternNeedsNode("o-%t")).toBe(false);
  });
});
