/**
 * Model-based checks with xstate/graph: every state node of each machine is reachable with a
 * representative event set, and every reachable state can still end (task, step, job) or come
 * back online (node, which has no final state by design).
 */
import { describe, expect, it } from "vitest";
import type { AnyStateMachine, EventObject, Snapshot } from "xstate";
import { createTestModel, getAdjacencyMap, getShortestPaths, type AdjacencyMap } from "xstate/graph";
import { jobMachine, type JobEvent, type JobInput } from "../../../machines/job.machine.js";
import { nodeMachine, nodeNextDeadline, type NodeContext, type NodeEvent, type NodeStateName } from "../../../machines/node.machine.js";
import { stepMachine, stepNextDeadline, type StepContext, type StepEnd, type StepEvent, type StepInput } from "../../../machines/step.machine.js";
import { getTask } from "../../../machines/task-table.js";
import { advanceTask, initialTaskRecord, isTaskFinal, taskMachine, type TaskEvent, type TaskRecord } from "../../../machines/task.machine.js";
import { exit, launchFailed, sig } from "./helpers.js";

type Snap = Snapshot<unknown> & { value: unknown; context: any; output?: any };

/** Only events with a payload: xstate/graph adds a bare `{ type }` for every event type it was not given. */
const withPayload = (_s: unknown, e: EventObject) => Object.keys(e).length > 1;

/** The graph as keys → successor keys, with the snapshot of each key. */
function graphOf(adj: AdjacencyMap<Snap, EventObject>, serialize: (s: Snap) => string) {
  const snapshots = new Map<string, Snap>();
  const next = new Map<string, Set<string>>();
  for (const [key, { state, transitions }] of Object.entries(adj)) {
    snapshots.set(key, state);
    next.set(key, new Set((Object.values(transitions) as { state: Snap }[]).map((t) => serialize(t.state))));
  }
  return { snapshots, next };
}

/** Keys from which some key satisfying `goal` is reachable (reverse breadth-first search). */
function canReach(graph: ReturnType<typeof graphOf>, goal: (s: Snap) => boolean): Set<string> {
  const prev = new Map<string, string[]>();
  for (const [from, tos] of graph.next) for (const to of tos) prev.set(to, [...(prev.get(to) ?? []), from]);
  const seen = new Set([...graph.snapshots].filter(([, s]) => goal(s)).map(([k]) => k));
  const queue = [...seen];
  while (queue.length) {
    for (const p of prev.get(queue.shift()!) ?? []) {
      if (seen.has(p)) continue;
      seen.add(p);
      queue.push(p);
    }
  }
  return seen;
}

const stateNames = (m: AnyStateMachine) => Object.keys(m.root.states).sort();
const reachedValues = (graph: ReturnType<typeof graphOf>) => [...new Set([...graph.snapshots.values()].map((s) => String(s.value)))].sort();

describe("model: task machine", () => {
  const events: TaskEvent[] = [
    { type: "LAUNCH", node: "n1", epoch: "e1", at: 100 },
    { type: "STARTED", epoch: "e1", pid: 7, at: 110 },
    { type: "STARTED", epoch: "e0", pid: 8, at: 110 },
    ...[exit(0), exit(3), sig(9), sig(11, true), launchFailed(127), { kind: "node_lost" } as const].map(
      (outcome): TaskEvent => ({ type: "ENDED", epoch: "e1", outcome, at: 200 }),
    ),
    { type: "ENDED", epoch: "e0", outcome: exit(1), at: 200 },
    { type: "STOP", reason: "cancel", at: 150 },
    { type: "NODE_LOST", epoch: "e1", at: 300 },
    { type: "NODE_LOST", epoch: "e0", at: 300 },
    { type: "KILL_UNCONFIRMED", at: 400 },
  ];
  const options = { input: { rank: 0 }, events };

  it("reaches every state node, and from every reachable snapshot a shortest path ends with an outcome", () => {
    const paths = getShortestPaths(taskMachine, options);
    const reached = [...new Set(paths.map((p) => String(p.state.value)))].sort();
    expect(reached).toEqual(stateNames(taskMachine));
    for (const from of paths) {
      if (from.state.status === "done") {
        expect(from.state.output?.outcome, String(from.state.value)).toBeDefined();
        continue;
      }
      const toEnd = getShortestPaths(taskMachine, { ...options, fromState: from.state, toState: (s) => s.status === "done" });
      expect(toEnd.length, `from ${String(from.state.value)}`).toBeGreaterThan(0);
      for (const p of toEnd) {
        expect(p.state.output?.outcome).toBeDefined();
        expect(p.state.output).toEqual({ outcome: p.state.context.outcome });
      }
    }
  });

  it("every simple path of the model, replayed through advanceTask, visits the same states", async () => {
    const model = createTestModel(taskMachine, options);
    const paths = model.getSimplePaths();
    expect(paths.length).toBeGreaterThan(20);
    for (const path of paths) {
      let record: TaskRecord = initialTaskRecord(0);
      const exec = (step: { event: TaskEvent }) => void (record = advanceTask(record, step.event));
      await path.test({
        events: Object.fromEntries(["LAUNCH", "STARTED", "ENDED", "STOP", "NODE_LOST", "KILL_UNCONFIRMED"].map((t) => [t, exec])),
        states: {
          "*": (state) => {
            expect(record.state).toBe(state.value);
            expect(record.context).toStrictEqual(state.context);
          },
        },
      });
      expect(isTaskFinal(record.state) || path.state.status === "active").toBe(true);
    }
  });
});

describe("model: step machine with two tasks", () => {
  const input: StepInput = {
    job: "1",
    step: "0",
    ntasks: 2,
    policies: { killOnBadExit: true, timeLimitMs: 60_000, killWaitMs: 10_000, nodeTimeoutMs: 10_000 },
  };
  const placement = [
    { node: "n1", epoch: "e1", ranks: "0" },
    { node: "n2", epoch: "e2", ranks: "1" },
  ];
  const events = (s: Snap): StepEvent[] => {
    const c = s.context as StepContext;
    const out: StepEvent[] = [{ type: "LAUNCH", placement, at: 1000 }, { type: "CANCEL", by: "alice", at: 3000 }];
    if (c.launchedAt === undefined) return out;
    for (const rank of [0, 1]) {
      const t = getTask(c.tasks, rank);
      if (isTaskFinal(t.state)) continue;
      const epoch = t.context.epoch!;
      out.push({ type: "TASKS", events: [{ rank, event: { type: "STARTED", epoch, pid: 10 + rank, at: 1100 } }] });
      for (const outcome of [exit(0), exit(7), sig(15)]) out.push({ type: "TASKS", events: [{ rank, event: { type: "ENDED", epoch, outcome, at: 2000 } }] });
    }
    out.push({ type: "TASKS", events: [{ rank: 0, event: { type: "ENDED", epoch: "stale", outcome: exit(1), at: 2000 } }] });
    out.push({ type: "NODE_LOST", node: "n2", epoch: "e2", at: 4000 });
    const deadline = stepNextDeadline(c);
    if (deadline !== undefined) out.push({ type: "TICK", now: deadline });
    return out;
  };
  // The counters of ignored events grow without bound; they are left out of a state's identity.
  const serialize = (s: Snap) => {
    const { staleEvents: _s, duplicateEvents: _d, ...rest } = s.context as StepContext;
    return JSON.stringify({ value: s.value, context: rest });
  };

  it("reaches every state node, and every reachable state can still end with a verdict", () => {
    const adj = getAdjacencyMap(stepMachine, { input, events, filterEvents: withPayload, serializeState: serialize }) as unknown as AdjacencyMap<Snap, EventObject>;
    const graph = graphOf(adj, serialize);
    expect(graph.snapshots.size).toBeGreaterThan(30);
    expect(reachedValues(graph)).toEqual(stateNames(stepMachine));
    const ending = canReach(graph, (s) => s.status === "done");
    const stuck = [...graph.snapshots.keys()].filter((k) => !ending.has(k));
    expect(stuck).toEqual([]);
    for (const s of graph.snapshots.values()) {
      if (s.status !== "done") continue;
      const end = (s.context as StepContext).end as StepEnd;
      expect(end).toBeDefined();
      expect(s.output).toEqual(end);
      expect(STEP_VALUE[end.state]).toBe(s.value);
    }
  });
});

const STEP_VALUE: Record<string, string> = { COMPLETED: "completed", FAILED: "failed", CANCELLED: "cancelled", TIMEOUT: "timeout", NODE_FAIL: "nodeFail" };

describe("model: job machine", () => {
  const ends: StepEnd[] = [
    { state: "COMPLETED", reason: "None", exitCode: "0:0", failedNodes: [], runExitStatus: 0, at: 900 },
    { state: "FAILED", reason: "NonZeroExitCode", exitCode: "7:0", failedNodes: [], runExitStatus: 7, at: 900 },
    { state: "CANCELLED", reason: "None", exitCode: "0:15", failedNodes: [], runExitStatus: 143, at: 900 },
    { state: "TIMEOUT", reason: "TimeLimit", exitCode: "0:15", failedNodes: [], runExitStatus: 143, at: 900 },
    { state: "NODE_FAIL", reason: "NodeDown", exitCode: "0:0", failedNodes: ["n1"], runExitStatus: 1, at: 900 },
  ];
  const cases: [string, JobInput, JobEvent[]][] = [
    ["run", { job: "1", user: "u", kind: "run", submittedAt: 100 }, [
      { type: "STEP_STARTED", step: "0", at: 200 },
      ...ends.map((end): JobEvent => ({ type: "STEP_ENDED", step: "0", end })),
      { type: "CANCEL", by: "alice", at: 300 },
    ]],
    ["batch", { job: "2", user: "u", kind: "batch", submittedAt: 100 }, [
      { type: "STEP_STARTED", step: "batch", at: 200 },
      { type: "STEP_STARTED", step: "0", at: 250 },
      ...ends.map((end): JobEvent => ({ type: "STEP_ENDED", step: "batch", end })),
      { type: "STEP_ENDED", step: "0", end: ends[1]! },
      { type: "CANCEL", by: "alice", at: 300 },
    ]],
  ];

  it("reaches every state node; from every reachable snapshot a shortest path ends with a verdict", () => {
    const reached = new Set<string>();
    for (const [kind, input, events] of cases) {
      const paths = getShortestPaths(jobMachine, { input, events });
      for (const p of paths) reached.add(String(p.state.value));
      for (const from of paths) {
        const toEnd = getShortestPaths(jobMachine, { input, events, fromState: from.state, toState: (s) => s.status === "done" });
        expect(toEnd.length, `${kind} from ${JSON.stringify(from.state.value)}`).toBeGreaterThan(0);
        for (const p of toEnd) {
          expect(p.state.context.end).toBeDefined();
          expect(p.state.output).toEqual(p.state.context.end);
          expect(STEP_VALUE[p.state.context.end!.state]).toBe(p.state.value);
        }
      }
    }
    expect([...reached].sort()).toEqual(stateNames(jobMachine));
  });
});

describe("model: node machine", () => {
  const input = { node: "n1", timings: { heartbeatIntervalMs: 2000, nodeTimeoutMs: 10_000, disconnectGraceMs: 3000 } };
  const events = (s: Snap): NodeEvent[] => {
    const c = s.context as NodeContext;
    const now = Math.max(c.lastSeenAt ?? 0, c.since ?? 0) + 500;
    const epoch = c.epoch ?? "e1";
    const out: NodeEvent[] = [
      { type: "HELLO", epoch: "e1", slots: 4, at: now },
      { type: "HELLO", epoch: "e2", slots: 4, at: now },
      { type: "HEARTBEAT", epoch, at: now },
      { type: "HEARTBEAT", epoch: "e0", at: now },
      { type: "DISCONNECTED", at: now },
      { type: "DRAINING", epoch, at: now },
      { type: "BYE", epoch, at: now },
      { type: "KILL_UNCONFIRMED", at: now },
    ];
    const deadline = nodeNextDeadline(s.value as NodeStateName, c);
    if (deadline !== undefined) out.push({ type: "TICK", now: deadline });
    return out;
  };
  // Times move on with every event; a state is identified by what the rules look at, not by the clock.
  const serialize = (s: Snap) => {
    const c = s.context as NodeContext;
    return JSON.stringify([s.value, c.epoch, c.reason, c.disconnectDeadline !== undefined]);
  };

  it("reaches every state node, and from every reachable state the node can be online again", () => {
    const adj = getAdjacencyMap(nodeMachine, { input, events, filterEvents: withPayload, serializeState: serialize }) as unknown as AdjacencyMap<Snap, EventObject>;
    const graph = graphOf(adj, serialize);
    expect(reachedValues(graph)).toEqual(stateNames(nodeMachine));
    expect([...graph.snapshots.values()].some((s) => s.status === "done")).toBe(false);
    const back = canReach(graph, (s) => s.value === "online");
    expect([...graph.snapshots.keys()].filter((k) => !back.has(k))).toEqual([]);
    // And not only trivially: every state, online included, has a successor path into online.
    for (const [key, successors] of graph.next) expect([...successors].some((k) => back.has(k)), key).toBe(true);
  });
});
