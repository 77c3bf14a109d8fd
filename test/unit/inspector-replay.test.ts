/**
 * The inspector's replay: a job's recorded events, replayed through the machines' pure logic, give
 * at every index the state a real XState actor fed the same events is in.
 */
import { describe, expect, it } from "vitest";
import { createActor } from "xstate";
import { stepMachine, type StepEvent } from "../../machines/step.machine.js";
import type { JobView, TaskEvent } from "../../src/protocol/index.js";
import type { RecordedTaskEvent } from "../../services/inspector/history.js";
import { JobReplay, placementOf } from "../../services/inspector/replay.js";

const T0 = 1_000_000;

/** A 4-task job on two nodes, as `query job` shows it once it ended. */
function view(): JobView {
  const step = {
    stepId: "0", state: "FAILED", reason: "NonZeroExitCode", exitCode: "5:0", ntasks: 4, failedNodes: [],
    groups: { "exited:0": "0-2", "exited:5": "3" }, nodes: { "node-1": "0-1", "node-2": "2-3" }, killedByRuntime: "",
    launchedAt: T0 + 1, endedAt: T0 + 3000, tasks: [], tasksOmitted: true,
  } as const;
  return {
    jobId: "12", name: "sh", user: "alice", kind: "run", state: "FAILED", reason: "NonZeroExitCode", exitCode: "5:0",
    derivedExitCode: "0:0", failedNodes: [], ntasks: 4, nodes: ["node-1", "node-2"], submittedAt: T0, startedAt: T0 + 1, endedAt: T0 + 3000,
    steps: [{ ...step, groups: { ...step.groups }, nodes: { ...step.nodes }, failedNodes: [], tasks: [] }],
  };
}

function events(): RecordedTaskEvent[] {
  const base = { v: 1 as const, job: "12", step: 0 };
  const node = (rank: number) => (rank < 2 ? "node-1" : "node-2");
  const epoch = (rank: number) => (rank < 2 ? "e1" : "e2");
  const list: TaskEvent[] = [];
  for (const rank of [0, 1, 2, 3]) list.push({ ...base, type: "task.started", rank, node: node(rank), epoch: epoch(rank), pid: 100 + rank, at: T0 + 10 + rank });
  list.push({ ...base, type: "task.ended", rank: 3, node: "node-2", epoch: "e2", outcome: { kind: "exited", code: 5 }, pid: 103, at: T0 + 50 });
  // An event from an old epoch of node-1: the machine ignores it, and so must the replay.
  list.push({ ...base, type: "task.ended", rank: 1, node: "node-1", epoch: "old", outcome: { kind: "exited", code: 9 }, at: T0 + 60 });
  for (const rank of [0, 1, 2]) list.push({ ...base, type: "task.ended", rank, node: node(rank), epoch: epoch(rank), outcome: { kind: "exited", code: 0 }, pid: 100 + rank, at: T0 + 3000 });
  return list.map((event, i) => ({ seq: 100 + i, event }));
}

describe("inspector replay", () => {
  it("rebuilds the placement from the view's ranks per node and the epochs the events carry", () => {
    expect(placementOf(view().steps[0]!, events(), {})).toEqual([
      { node: "node-1", epoch: "e1", ranks: "0-1" },
      { node: "node-2", epoch: "e2", ranks: "2-3" },
    ]);
    expect(placementOf(view().steps[0]!, [], { "node-1": "n1" })).toEqual([
      { node: "node-1", epoch: "n1", ranks: "0-1" },
      { node: "node-2", epoch: "unknown", ranks: "2-3" },
    ]);
  });

  it("starts from the submission with every task pending and ends at the published verdict", () => {
    const r = new JobReplay(view(), events(), { checkpointEvery: 3 });
    expect(r.total).toBe(1 + 1 + 9);
    expect(r.inputs.map((i) => i.kind)).toEqual(["submit", "launch", ...Array(9).fill("task")]);
    const first = r.stateAt(0);
    expect(first.job.state).toBe("pending");
    expect(first.steps[0]).toMatchObject({ state: "pending", groups: { pending: "0-3" } });
    const failed = r.stateAt(6, { rank: 3 });
    expect(failed.steps[0]).toMatchObject({ state: "running", groups: { running: "0-2", "exited:5": "3" }, firstFailure: { rank: 3, node: "node-2" } });
    expect(failed.task).toMatchObject({ rank: 3, state: "exited", context: { node: "node-2", pid: 103, outcome: { kind: "exited", code: 5 } } });
    const last = r.stateAt(r.total - 1);
    expect(last.job).toMatchObject({ state: "failed", end: { state: "FAILED", reason: "NonZeroExitCode", exitCode: "5:0" } });
    expect(last.steps[0]).toMatchObject({ state: "failed", groups: { "exited:0": "0-2", "exited:5": "3" }, staleEvents: 1 });
    // Out-of-range indexes clamp.
    expect(r.stateAt(999).at).toBe(r.total - 1);
    expect(r.stateAt(-5).at).toBe(0);
  });

  it("agrees with a real step actor fed the same events at every index, in any order of queries", () => {
    const r = new JobReplay(view(), events(), { checkpointEvery: 2 });
    const actor = createActor(stepMachine, { input: { job: "12", step: "0", ntasks: 4, policies: { killOnBadExit: false, killWaitMs: 10_000, nodeTimeoutMs: 10_000 } } }).start();
    const expected: { value: unknown; counts: unknown }[] = [];
    for (const input of r.inputs) {
      let event: StepEvent | undefined;
      if (input.kind === "launch") event = { type: "LAUNCH", placement: input.placement, at: input.at };
      if (input.kind === "task") {
        const te = input.type === "task.started"
          ? { type: "STARTED" as const, epoch: input.epoch, pid: input.pid!, at: input.at }
          : { type: "ENDED" as const, epoch: input.epoch, outcome: input.outcome!, pid: input.pid, at: input.at };
        event = { type: "TASKS", events: [{ rank: input.rank, event: te }] };
      }
      if (event) actor.send(event);
      const snap = actor.getSnapshot();
      expected.push({ value: snap.value, counts: snap.context.counts });
    }
    const order = [10, 0, 5, 3, 9, 1, 7, 2, 8, 4, 6];
    for (const i of order) {
      const s = r.stateAt(i).steps[0]!;
      expect({ value: s.state, counts: s.counts }, `index ${i}`).toEqual(expected[i]);
    }
    actor.stop();
  });
});
