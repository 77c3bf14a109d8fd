// The supervisor's order within a batch of task events: tasks that ended badly first, each task's
// own events in their order, and nothing moved when no task ended badly.
import { describe, expect, it } from "vitest";
import type { TaskEvent } from "../../machines/task.machine.js";
import { failuresFirst } from "../../services/supervisor/index.js";

const started = (rank: number) => ({ rank, event: { type: "STARTED", epoch: "e", pid: 100 + rank, at: rank } as TaskEvent });
const ended = (rank: number, code: number) => ({ rank, event: { type: "ENDED", epoch: "e", outcome: { kind: "exited", code }, pid: 100 + rank, at: rank } as TaskEvent });
const signaled = (rank: number) => ({ rank, event: { type: "ENDED", epoch: "e", outcome: { kind: "signaled", signal: 9, coreDumped: false }, at: rank } as TaskEvent });

describe("failuresFirst", () => {
  it("leaves a batch without a failure alone", () => {
    expect(failuresFirst([started(0), started(1), ended(0, 0)])).toBeUndefined();
  });

  it("moves every event of each failed task ahead of the others, keeping each task's order", () => {
    const batch = [started(0), started(1), started(2), ended(0, 0), started(3), ended(2, 3), started(4), ended(4, 0), signaled(3)];
    const out = failuresFirst(batch)!;
    expect(out.map((e) => `${e.rank}:${e.event.type}`)).toEqual(["2:STARTED", "3:STARTED", "2:ENDED", "3:ENDED", "0:STARTED", "1:STARTED", "0:ENDED", "4:STARTED", "4:ENDED"]);
    expect(out).toHaveLength(batch.length);
  });
});
