import { describe, expect, it } from "vitest";
import { assign, initialTransition, setup, transition } from "xstate";
import { compileFlatMachine } from "../../../machines/flat.js";
import {
  advanceTask,
  initialTaskRecord,
  isTaskFinal,
  taskMachine,
  type TaskEvent,
  type TaskRecord,
} from "../../../machines/task.machine.js";
import type { TaskOutcome } from "../../../src/exit-status/index.js";
import { exit, launchFailed, pick, prng, sig } from "./helpers.js";

const launch: TaskEvent = { type: "LAUNCH", node: "node-1", epoch: "e1", at: 100 };
const started = (epoch = "e1", at = 110, pid = 4242): TaskEvent => ({ type: "STARTED", epoch, pid, at });
const ended = (outcome: TaskOutcome, epoch = "e1", at = 200): TaskEvent => ({
  type: "ENDED",
  epoch,
  outcome,
  at,
});
const stop = (reason = "cancel", at = 150): TaskEvent => ({ type: "STOP", reason, at });
const nodeLost = (epoch = "e1", at = 300): TaskEvent => ({ type: "NODE_LOST", epoch, at });
const killUnconfirmed = (at = 400): TaskEvent => ({ type: "KILL_UNCONFIRMED", at });

/** Runs events through advanceTask from a fresh rank-0 task. */
function drive(...events: TaskEvent[]): TaskRecord {
  return events.reduce(advanceTask, initialTaskRecord(0));
}

describe("task machine transitions (advanceTask)", () => {
  it("starts pending with only its rank", () => {
    expect(initialTaskRecord(7)).toEqual({ state: "pending", context: { rank: 7, killedByRuntime: false } });
  });

  it("pending → launching on LAUNCH, recording node, epoch and time", () => {
    const r = drive(launch);
    expect(r.state).toBe("launching");
    expect(r.context).toEqual({ rank: 0, killedByRuntime: false, node: "node-1", epoch: "e1", launchedAt: 100 });
  });

  it("pending → signaled on STOP: never started, killed by the runtime with SIGKILL", () => {
    const r = drive(stop("cancel", 50));
    expect(r.state).toBe("signaled");
    expect(r.context).toMatchObject({ killedByRuntime: true, stopReason: "cancel", outcome: sig(9), endedAt: 50 });
  });

  it.each([
    ["STARTED", started()],
    ["ENDED", ended(exit(0))],
    ["NODE_LOST", nodeLost()],
    ["KILL_UNCONFIRMED", killUnconfirmed()],
  ] as const)("pending ignores %s (returns the same record)", (_name, event) => {
    const r0 = initialTaskRecord(0);
    expect(advanceTask(r0, event)).toBe(r0);
  });

  it("launching → running on STARTED from the current epoch", () => {
    const r = drive(launch, started("e1", 110, 99));
    expect(r.state).toBe("running");
    expect(r.context).toMatchObject({ pid: 99, startedAt: 110 });
  });

  it.each([
    ["exited", exit(3), "exited"],
    ["exited 0", exit(0), "exited"],
    ["signaled", sig(11, true), "signaled"],
    ["launch_failed", launchFailed(127), "launchFailed"],
  ] as const)("running → final on ENDED %s", (_name, outcome, state) => {
    const r = drive(launch, started(), ended(outcome, "e1", 500));
    expect(r.state).toBe(state);
    expect(r.context).toMatchObject({ outcome, endedAt: 500, pid: 4242, killedByRuntime: false });
    expect(isTaskFinal(r.state)).toBe(true);
  });

  it("an ENDED carrying node_lost is not an agent outcome: ignored", () => {
    const before = drive(launch, started());
    expect(advanceTask(before, ended({ kind: "node_lost" }))).toBe(before);
  });

  it("accepts an exit that arrives before its STARTED, and keeps the pid from the exit", () => {
    const e: TaskEvent = { type: "ENDED", epoch: "e1", outcome: exit(1), pid: 77, at: 120 };
    const r = drive(launch, e);
    expect(r.state).toBe("exited");
    expect(r.context).toMatchObject({ outcome: exit(1), pid: 77, endedAt: 120 });
    // The late STARTED changes nothing.
    expect(advanceTask(r, started("e1", 110, 77))).toBe(r);
  });

  it("running → stopping on STOP, which sets killedByRuntime and the first stop reason", () => {
    const r = drive(launch, started(), stop("kill-on-bad-exit", 150));
    expect(r.state).toBe("stopping");
    expect(r.context).toMatchObject({ killedByRuntime: true, stopReason: "kill-on-bad-exit" });
    // A second STOP is ignored: the reason stays the first.
    expect(advanceTask(r, stop("cancel", 160))).toBe(r);
  });

  it("launching → stopping on STOP; a STARTED while stopping still records the pid and stays stopping", () => {
    const r = drive(launch, stop("time-limit"), started("e1", 170, 31));
    expect(r.state).toBe("stopping");
    expect(r.context).toMatchObject({ pid: 31, startedAt: 170, killedByRuntime: true, stopReason: "time-limit" });
  });

  it("stopping → signaled on the TERM the runtime sent, killedByRuntime kept", () => {
    const r = drive(launch, started(), stop(), ended(sig(15)));
    expect(r.state).toBe("signaled");
    expect(r.context).toMatchObject({ outcome: sig(15), killedByRuntime: true, stopReason: "cancel" });
  });

  it("--wait's STOP leaves the task counted (killedByRuntime false): srun reports what its wait killed", () => {
    const r = drive(launch, started(), stop("wait"));
    expect(r.state).toBe("stopping");
    expect(r.context).toMatchObject({ killedByRuntime: false, stopReason: "wait" });
    expect(drive(launch, started(), stop("wait"), ended(sig(9))).context).toMatchObject({ outcome: sig(9), killedByRuntime: false });
    expect(drive(launch, started(), stop("wait"), killUnconfirmed()).context).toMatchObject({ outcome: sig(9), killedByRuntime: false, killUnconfirmed: true });
  });

  it("a node failure's STOP marks the task killed by the runtime", () => {
    expect(drive(launch, started(), stop("node-failure")).context).toMatchObject({ killedByRuntime: true, stopReason: "node-failure" });
  });

  it("stopping → exited when the task traps TERM and exits 0 (still killedByRuntime)", () => {
    const r = drive(launch, started(), stop(), ended(exit(0)));
    expect(r.state).toBe("exited");
    expect(r.context.killedByRuntime).toBe(true);
  });

  it.each(["launching", "running", "stopping"] as const)("%s → nodeLost on NODE_LOST from the current epoch", (from) => {
    const prefix: TaskEvent[] = from === "launching" ? [launch] : from === "running" ? [launch, started()] : [launch, started(), stop()];
    const before = drive(...prefix);
    expect(before.state).toBe(from);
    const r = advanceTask(before, nodeLost("e1", 900));
    expect(r.state).toBe("nodeLost");
    expect(r.context).toMatchObject({ outcome: { kind: "node_lost" }, endedAt: 900 });
  });

  it("stopping → signaled(9) with killUnconfirmed on KILL_UNCONFIRMED", () => {
    const r = drive(launch, started(), stop(), killUnconfirmed(999));
    expect(r.state).toBe("signaled");
    expect(r.context).toMatchObject({ outcome: sig(9), killedByRuntime: true, killUnconfirmed: true, endedAt: 999 });
  });

  it.each(["launching", "running"] as const)("%s ignores KILL_UNCONFIRMED (only a task being stopped can be unconfirmed)", (from) => {
    const before = from === "launching" ? drive(launch) : drive(launch, started());
    expect(advanceTask(before, killUnconfirmed())).toBe(before);
  });

  it.each([
    ["STARTED", started("e0")],
    ["ENDED", ended(sig(9), "e0")],
    ["NODE_LOST", nodeLost("e0")],
  ] as const)("ignores %s from a stale epoch in every live state", (_name, event) => {
    for (const prefix of [[launch], [launch, started()], [launch, started(), stop()]]) {
      const before = drive(...prefix);
      expect(advanceTask(before, event)).toBe(before);
    }
  });

  it("ignores duplicates: a second LAUNCH, a second STARTED, a second ENDED", () => {
    const launching = drive(launch);
    expect(advanceTask(launching, { ...launch, node: "node-9", epoch: "e9" } as TaskEvent)).toBe(launching);
    const running = drive(launch, started());
    expect(advanceTask(running, started("e1", 500, 1))).toBe(running);
    const done = drive(launch, started(), ended(exit(2)));
    expect(advanceTask(done, ended(exit(2)))).toBe(done);
    expect(advanceTask(done, ended(sig(9)))).toBe(done);
  });

  it("final states take nothing at all", () => {
    const finals = [
      drive(launch, ended(exit(0))),
      drive(launch, ended(sig(6))),
      drive(launch, ended(launchFailed(126))),
      drive(launch, nodeLost()),
      drive(stop()),
    ];
    const all: TaskEvent[] = [launch, started(), ended(exit(1)), stop(), nodeLost(), killUnconfirmed()];
    for (const f of finals) for (const e of all) expect(advanceTask(f, e)).toBe(f);
  });
});

describe("advanceTask is equivalent to XState's transition()", () => {
  const outcomes: TaskOutcome[] = [exit(0), exit(1), exit(255), sig(9), sig(11, true), sig(15), launchFailed(127), launchFailed(126), { kind: "node_lost" }];
  const epochs = ["e1", "e1", "e1", "e0", "e2"];
  function randomEvent(rand: () => number): TaskEvent {
    const at = Math.floor(rand() * 1000);
    const epoch = pick(rand, epochs);
    switch (pick(rand, ["LAUNCH", "STARTED", "ENDED", "ENDED", "STOP", "NODE_LOST", "KILL_UNCONFIRMED"] as const)) {
      case "LAUNCH":
        return { type: "LAUNCH", node: pick(rand, ["node-1", "node-2"]), epoch: "e1", at };
      case "STARTED":
        return { type: "STARTED", epoch, pid: 1 + Math.floor(rand() * 100), at };
      case "ENDED":
        return rand() < 0.5
          ? { type: "ENDED", epoch, outcome: pick(rand, outcomes), at }
          : { type: "ENDED", epoch, outcome: pick(rand, outcomes), pid: 7, at };
      case "STOP":
        return { type: "STOP", reason: pick(rand, ["cancel", "wait", "time-limit"]), at };
      case "NODE_LOST":
        return { type: "NODE_LOST", epoch, at };
      case "KILL_UNCONFIRMED":
        return { type: "KILL_UNCONFIRMED", at };
    }
  }

  it("gives the same state and context for 2000 random event sequences", () => {
    const rand = prng(20240611);
    const reached = new Set<string>();
    let changes = 0;
    for (let i = 0; i < 2000; i++) {
      const length = 1 + Math.floor(rand() * 8);
      // Most sequences start with LAUNCH so that the later states are reached often.
      const events: TaskEvent[] = rand() < 0.8 ? [{ type: "LAUNCH", node: "node-1", epoch: "e1", at: 1 }] : [];
      while (events.length < length) events.push(randomEvent(rand));
      const rank = i % 5;
      let record = initialTaskRecord(rank);
      let [snapshot] = initialTransition(taskMachine, { rank });
      expect(snapshot.value).toBe(record.state);
      expect(snapshot.context).toStrictEqual(record.context);
      for (const event of events) {
        const next = advanceTask(record, event);
        if (next !== record) changes++;
        record = next;
        [snapshot] = transition(taskMachine, snapshot, event);
        expect(snapshot.value, JSON.stringify(events)).toBe(record.state);
        expect(snapshot.context, JSON.stringify(events)).toStrictEqual(record.context);
        expect(snapshot.status === "done", JSON.stringify(events)).toBe(isTaskFinal(record.state));
        reached.add(record.state);
      }
      if (snapshot.status === "done") expect(snapshot.output).toEqual({ outcome: record.context.outcome });
    }
    // The random pool really exercised the machine.
    expect([...reached].sort()).toEqual(["exited", "launchFailed", "launching", "nodeLost", "pending", "running", "signaled", "stopping"]);
    expect(changes).toBeGreaterThan(2000);
  });
});

describe("compileFlatMachine", () => {
  type C = { n: number };
  type E = { type: "GO" };
  const inc = (c: C): Partial<C> => ({ n: c.n + 1 });

  it("compiles a flat machine and runs its guards and updates", () => {
    const m = setup({
      types: { context: {} as C, events: {} as E },
      guards: { small: ({ context }) => context.n < 2 },
      actions: { inc: assign(({ context }) => inc(context)) },
    }).createMachine({
      context: { n: 0 },
      initial: "a",
      states: { a: { on: { GO: [{ guard: "small", actions: "inc" }, { target: "b" }] } }, b: { type: "final" } },
    });
    const run = compileFlatMachine<"a" | "b", C, E>(m, { small: (c) => c.n < 2 }, { inc });
    let r = { state: "a" as "a" | "b", context: { n: 0 } };
    const states: string[] = [];
    for (let i = 0; i < 4; i++) {
      r = run(r, { type: "GO" });
      states.push(`${r.state}${r.context.n}`);
    }
    expect(states).toEqual(["a1", "a2", "b2", "b2"]);
  });

  it("throws on a machine with nested states", () => {
    const m = setup({}).createMachine({
      initial: "outer",
      states: { outer: { initial: "inner", states: { inner: {} } } },
    });
    expect(() => compileFlatMachine(m, {}, {})).toThrow("compileFlatMachine: state outer is not atomic");
  });

  it("throws on a machine with entry actions", () => {
    const m = setup({ actions: { hello: () => {} } }).createMachine({
      initial: "a",
      states: { a: { entry: "hello" } },
    });
    expect(() => compileFlatMachine(m, {}, {})).toThrow("compileFlatMachine: state a has entry/exit actions");
  });

  it("throws on a transition whose action is not a known update", () => {
    const m = setup({ actions: { mystery: () => {} } }).createMachine({
      initial: "a",
      states: { a: { on: { GO: { actions: "mystery" } } } },
    });
    expect(() => compileFlatMachine(m, {}, {})).toThrow("compileFlatMachine: a.GO uses an action that is not a known update: mystery");
  });

  it("throws on an unknown guard", () => {
    const m = setup({ guards: { g: () => true } }).createMachine({
      initial: "a",
      states: { a: { on: { GO: { guard: "g", target: "b" } } }, b: {} },
    });
    expect(() => compileFlatMachine(m, {}, {})).toThrow("compileFlatMachine: a.GO uses an unknown or dynamic guard g");
  });
});
