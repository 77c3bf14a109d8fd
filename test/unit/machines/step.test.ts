import v8 from "node:v8";
import vm from "node:vm";
import { describe, expect, it } from "vitest";
import { createActor } from "xstate";
import {
  applyStepEvent,
  initialStepContext,
  settleStepState,
  stepMachine,
  stepNextDeadline,
  stepStopNotice,
  type Placement,
  type RankedTaskEvent,
  type StepContext,
  type StepEffect,
  type StepEvent,
  type StepInput,
  type StepPolicies,
} from "../../../machines/step.machine.js";
import { getTask } from "../../../machines/task-table.js";
import { LIVE_TASK_KEYS, type TaskOutcome } from "../../../src/exit-status/index.js";
import { exit, permutations, prng, recordingActions, sig, type Recorded } from "./helpers.js";

const EFFECTS = ["launchTasks", "signalTasks", "notifyFirstFailure", "reportRejected", "killUnconfirmed", "stepEnded"] as const;

const policies = (p: Partial<StepPolicies> = {}): StepPolicies => ({ killOnBadExit: false, killWaitMs: 10_000, nodeTimeoutMs: 10_000, ...p });
const input = (ntasks: number, p: Partial<StepPolicies> = {}): StepInput => ({ job: "42", step: "0", ntasks, policies: policies(p) });

/** Four tasks: ranks 0-1 on n1 (epoch e1), 2-3 on n2 (epoch e2). */
const PLACEMENT: Placement[] = [
  { node: "n1", epoch: "e1", ranks: "0-1" },
  { node: "n2", epoch: "e2", ranks: "2-3" },
];
const epochOf = (rank: number) => (rank < 2 ? "e1" : "e2");

const started = (rank: number, at: number, epoch = epochOf(rank)): RankedTaskEvent => ({ rank, event: { type: "STARTED", epoch, pid: 1000 + rank, at } });
const ended = (rank: number, outcome: TaskOutcome, at: number, epoch = epochOf(rank)): RankedTaskEvent => ({ rank, event: { type: "ENDED", epoch, outcome, at } });
const tasks = (...events: RankedTaskEvent[]): StepEvent => ({ type: "TASKS", events });
const launch = (at = 1000, placement = PLACEMENT): StepEvent => ({ type: "LAUNCH", placement, at });

type EffectParams = { [E in StepEffect as E["type"]]: E["params"] };

/** Drives `applyStepEvent` with a simulated clock, keeping every effect. */
class StepSim {
  ctx: StepContext;
  readonly effects: StepEffect[] = [];
  constructor(stepInput: StepInput) {
    this.ctx = initialStepContext(stepInput);
  }
  send(event: StepEvent): StepEffect[] {
    const r = applyStepEvent(this.ctx, event);
    this.ctx = r.context;
    this.effects.push(...r.effects);
    return r.effects;
  }
  of<T extends keyof EffectParams>(type: T): EffectParams[T][] {
    return this.effects.filter((e) => e.type === type).map((e) => e.params as unknown as EffectParams[T]);
  }
}

/** A started step of four tasks on two nodes. */
function runningStep(p: Partial<StepPolicies> = {}): StepSim {
  const s = new StepSim(input(4, p));
  s.send(launch(1000));
  s.send(tasks(started(0, 1100), started(1, 1100), started(2, 1100), started(3, 1100)));
  return s;
}

const calls = (recorded: Recorded[], type: string) => recorded.filter((c) => c.type === type).map((c) => c.params);

describe("step machine: the issue's vector", () => {
  it("same exit twice, an exit before its started, an exit from a stale epoch: one notification, right counts, stale reported", () => {
    const fakes = recordingActions(EFFECTS);
    const actor = createActor(stepMachine.provide({ actions: fakes.actions }), { input: input(4) }).start();
    expect(actor.getSnapshot().value).toBe("pending");
    actor.send(launch(1000));
    expect(actor.getSnapshot().value).toBe("running");
    expect(calls(fakes.calls, "launchTasks")).toEqual([{ placement: PLACEMENT }]);

    actor.send(
      tasks(
        started(0, 1100),
        started(1, 1100),
        ended(2, exit(3), 1200), // before its STARTED
        ended(2, exit(3), 1200), // the same exit again
        ended(3, sig(9), 1300, "e-old"), // from a stale epoch of n2
      ),
    );
    const after1 = actor.getSnapshot();
    // One task ended while the others run: still RUNNING, as in Slurm (COMPLETING is a step being stopped).
    expect(after1.value).toBe("running");
    expect(after1.context.counts).toEqual({ pending: 0, launching: 1, running: 2, stopping: 0, exited: 1, signaled: 0, launchFailed: 0, nodeLost: 0 });
    expect(after1.context.staleEvents).toBe(1);
    expect(after1.context.duplicateEvents).toBe(1);
    expect(calls(fakes.calls, "reportRejected")).toEqual([
      { rank: 2, eventType: "ENDED", reason: "duplicate" },
      { rank: 3, eventType: "ENDED", reason: "stale_epoch" },
    ]);
    const notices = calls(fakes.calls, "notifyFirstFailure");
    expect(notices).toHaveLength(1);
    expect(notices[0]).toEqual({
      job: "42",
      step: "0",
      ntasks: 4,
      trigger: { rank: 2, node: "n2", outcome: exit(3), at: 1200 },
      groups: { launching: "3", running: "0-1", "exited:3": "2" },
      nodes: { n1: "0-1", n2: "2-3" },
      killedByRuntime: "",
    });
    expect(Object.keys(notices[0].groups)).toEqual(["launching", "running", "exited:3"]);
    expect(getTask(after1.context.tasks, 3).state).toBe("launching");

    actor.send(tasks(started(2, 1150), ended(2, exit(3), 1200), ended(0, exit(0), 2000), ended(1, exit(0), 2100), ended(3, exit(0), 2200)));
    const done = actor.getSnapshot();
    expect(done.status).toBe("done");
    expect(done.value).toBe("failed");
    expect(calls(fakes.calls, "notifyFirstFailure")).toHaveLength(1);
    // The late STARTED of a task that already exited repeats what the task knows: a duplicate, like the second exit.
    expect(done.context.duplicateEvents).toBe(3);
    expect(done.context.staleEvents).toBe(1);
    expect(done.context.counts).toEqual({ pending: 0, launching: 0, running: 0, stopping: 0, exited: 4, signaled: 0, launchFailed: 0, nodeLost: 0 });
    expect(getTask(done.context.tasks, 2).context).toMatchObject({ endedAt: 1200, outcome: exit(3) });
    expect(getTask(done.context.tasks, 2).context.startedAt).toBeUndefined();
    const end = { state: "FAILED", reason: "NonZeroExitCode", exitCode: "3:0", failedNodes: [], runExitStatus: 3, at: 2200 };
    expect(done.output).toEqual(end);
    expect(calls(fakes.calls, "stepEnded")).toEqual([
      {
        job: "42",
        step: "0",
        ntasks: 4,
        end,
        firstFailure: { rank: 2, node: "n2", outcome: exit(3), at: 1200 },
        groups: { "exited:0": "0-1,3", "exited:3": "2" },
        nodes: { n1: "0-1", n2: "2-3" },
        killedByRuntime: "",
      },
    ]);
    // Events after the end change nothing and run no effect.
    const n = fakes.calls.length;
    actor.send(tasks(ended(0, sig(9), 3000)));
    expect(fakes.calls.length).toBe(n);
    expect(actor.getSnapshot().context).toBe(done.context);
  });

  it("the same events in every order and batching: one notification, the same verdict", () => {
    const E = {
      a: ended(0, exit(0), 2000),
      b: ended(1, exit(3), 2100),
      c: ended(1, exit(3), 2100), // duplicate of b
      d: ended(2, sig(11), 2200),
      e: started(3, 1500),
      f: ended(3, exit(0), 2300),
      g: ended(0, exit(1), 2400, "e-old"), // stale
    };
    type Key = keyof typeof E;
    const rand = prng(7);
    let orders = 0;
    for (const order of permutations(Object.keys(E) as Key[])) {
      // Split the order into random batches.
      const batches: Key[][] = [];
      for (const k of order) {
        if (batches.length === 0 || rand() < 0.5) batches.push([]);
        batches[batches.length - 1]!.push(k);
      }
      const s = new StepSim(input(4));
      s.send(launch(1000));
      const processed: Key[] = [];
      for (const batch of batches) {
        const wasEnded = s.ctx.end !== undefined;
        s.send(tasks(...batch.map((k) => E[k])));
        if (!wasEnded) processed.push(...batch);
      }
      const where = JSON.stringify(batches);
      expect(s.of("notifyFirstFailure"), where).toHaveLength(1);
      const firstBad = order.find((k) => k === "b" || k === "c" || k === "d")!;
      expect(s.of("notifyFirstFailure")[0]!.trigger, where).toEqual(
        firstBad === "d" ? { rank: 2, node: "n2", outcome: sig(11), at: 2200 } : { rank: 1, node: "n1", outcome: exit(3), at: 2100 },
      );
      expect(s.of("stepEnded"), where).toHaveLength(1);
      expect(s.ctx.end, where).toEqual({
        state: "FAILED",
        reason: "RaisedSignal:11(Segmentation_fault)",
        exitCode: "0:11",
        failedNodes: [],
        runExitStatus: 139,
        at: 2300,
      });
      expect(s.of("stepEnded")[0]!.groups, where).toEqual({ "exited:0": "0,3", "exited:3": "1", "signaled:11": "2" });
      // Counters: events after the step ended are dropped unseen; before that, every repeat is counted once.
      const seen = (k: Key) => processed.includes(k);
      const expectedStale = seen("g") ? 1 : 0;
      const expectedDup = (seen("b") && seen("c") ? 1 : 0) + (seen("e") && order.indexOf("e") > order.indexOf("f") ? 1 : 0);
      expect(s.ctx.staleEvents, where).toBe(expectedStale);
      expect(s.ctx.duplicateEvents, where).toBe(expectedDup);
      expect(s.of("reportRejected"), where).toHaveLength(expectedStale + expectedDup);
      orders++;
    }
    expect(orders).toBe(5040);
  });

  it("first-failure groups include tasks still running, pending and launching", () => {
    const s = new StepSim(input(6));
    s.send(launch(1000, [{ node: "n1", epoch: "e1", ranks: "0-4" }]));
    s.send(tasks(started(0, 1100, "e1"), started(1, 1100, "e1"), ended(2, exit(0), 1200, "e1"), ended(3, sig(6, true), 1300, "e1")));
    expect(s.of("notifyFirstFailure")).toEqual([
      {
        job: "42",
        step: "0",
        ntasks: 6,
        trigger: { rank: 3, node: "n1", outcome: sig(6, true), at: 1300 },
        groups: { pending: "5", launching: "4", running: "0-1", "exited:0": "2", "signaled:6:core": "3" },
        nodes: { n1: "0-4", unplaced: "5" },
        killedByRuntime: "",
      },
    ]);
  });

  it("a step whose tasks all exit 0 completes without a notification; its summary has no live groups", () => {
    const s = runningStep();
    s.send(tasks(ended(0, exit(0), 2000), ended(1, exit(0), 2000), ended(2, exit(0), 2000), ended(3, exit(0), 2500)));
    expect(s.of("notifyFirstFailure")).toEqual([]);
    const [summary] = s.of("stepEnded");
    expect(summary!.end).toEqual({ state: "COMPLETED", reason: "None", exitCode: "0:0", failedNodes: [], runExitStatus: 0, at: 2500 });
    expect(summary!.groups).toEqual({ "exited:0": "0-3" });
    expect(summary!.firstFailure).toBeUndefined();
    expect(stepNextDeadline(s.ctx)).toBeUndefined();
  });
});

describe("step machine: policies", () => {
  it("kill-on-bad-exit: rank 1 exits 7, the rest get STOP and SIGTERM with SIGCONT, and end FAILED 7:0", () => {
    const s = runningStep({ killOnBadExit: true });
    const fx = s.send(tasks(ended(1, exit(7), 5000)));
    expect(fx.map((e) => e.type)).toEqual(["notifyFirstFailure", "signalTasks"]);
    expect(s.of("signalTasks")).toEqual([
      {
        signal: 15,
        cont: true,
        targets: [
          { node: "n1", epoch: "e1", ranks: "0" },
          { node: "n2", epoch: "e2", ranks: "2-3" },
        ],
        notice: { reason: "kill-on-bad-exit", at: 5000 },
      },
    ]);
    for (const r of [0, 2, 3]) {
      expect(getTask(s.ctx.tasks, r)).toMatchObject({ state: "stopping", context: { killedByRuntime: true, stopReason: "kill-on-bad-exit" } });
    }
    expect(s.ctx.kill).toEqual({ reason: "kill-on-bad-exit", requestedAt: 5000, escalateAt: 15_000, unconfirmedAt: 25_000 });
    expect(stepNextDeadline(s.ctx)).toBe(15_000);
    // The notification was taken before the kill: its picture shows the others still running.
    expect(s.of("notifyFirstFailure")[0]!.groups).toEqual({ running: "0,2-3", "exited:7": "1" });

    s.send(tasks(ended(0, sig(15), 5100), ended(2, sig(15), 5200), ended(3, sig(15), 5300)));
    const [summary] = s.of("stepEnded");
    expect(summary!.end).toEqual({ state: "FAILED", reason: "NonZeroExitCode", exitCode: "7:0", failedNodes: [], runExitStatus: 7, at: 5300 });
    expect(summary!.groups).toEqual({ "exited:7": "1", "signaled:15": "0,2-3" });
    expect(summary!.killedByRuntime).toBe("0,2-3");
    expect(Object.keys(summary!.groups).filter((k) => (LIVE_TASK_KEYS as readonly string[]).includes(k))).toEqual([]);
    expect(s.of("notifyFirstFailure")).toHaveLength(1);
    expect(s.ctx.kill).toBeUndefined();
    expect(stepNextDeadline(s.ctx)).toBeUndefined();
  });

  it("kill-on-bad-exit escalates to SIGKILL at KillWait for tasks that ignore TERM", () => {
    const s = runningStep({ killOnBadExit: true });
    s.send(tasks(ended(1, exit(7), 5000)));
    expect(s.send({ type: "TICK", now: 14_999 })).toEqual([]);
    expect(s.send({ type: "TICK", now: 15_000 })).toEqual([
      {
        type: "signalTasks",
        params: { signal: 9, cont: false, targets: [{ node: "n1", epoch: "e1", ranks: "0" }, { node: "n2", epoch: "e2", ranks: "2-3" }] },
      },
    ]);
    expect(s.ctx.kill?.escalateAt).toBeUndefined();
    expect(stepNextDeadline(s.ctx)).toBe(25_000);
  });

  it("--wait: the first end sets waitDeadline; at the deadline the rest get SIGKILL and count (srun: FAILED 0:9, exit 137)", () => {
    const s = runningStep({ waitMs: 30_000 });
    expect(s.ctx.waitDeadline).toBeUndefined();
    s.send(tasks(ended(0, exit(0), 2000)));
    expect(s.ctx.waitDeadline).toBe(32_000);
    expect(stepNextDeadline(s.ctx)).toBe(32_000);
    s.send(tasks(ended(1, exit(0), 3000)));
    expect(s.ctx.waitDeadline).toBe(32_000);
    expect(s.send({ type: "TICK", now: 31_999 })).toEqual([]);
    expect(s.send({ type: "TICK", now: 32_000 })).toEqual([
      { type: "signalTasks", params: { signal: 9, cont: false, targets: [{ node: "n2", epoch: "e2", ranks: "2-3" }], notice: { reason: "wait", at: 32_000 } } },
    ]);
    expect(s.ctx.kill).toEqual({ reason: "wait", requestedAt: 32_000, escalateAt: undefined, unconfirmedAt: 42_000 });
    expect(s.ctx.waitDeadline).toBeUndefined();
    // The step is being stopped: COMPLETING from here on.
    for (const r of [2, 3]) expect(getTask(s.ctx.tasks, r)).toMatchObject({ state: "stopping", context: { killedByRuntime: false, stopReason: "wait" } });
    s.send(tasks(ended(2, sig(9), 32_100), ended(3, sig(9), 32_100)));
    expect(s.of("notifyFirstFailure")).toHaveLength(1);
    // The tasks --wait killed are not the runtime's victims left out of the reduction: srun counts them as killed.
    expect(s.ctx.end).toEqual({ state: "FAILED", reason: "RaisedSignal:9(Killed)", exitCode: "0:9", failedNodes: [], runExitStatus: 137, at: 32_100 });
    expect(s.of("stepEnded")[0]!.killedByRuntime).toBe("");
  });

  it("--wait: a task the wait killed whose node never confirms is counted killed too", () => {
    const s = runningStep({ waitMs: 1000 });
    s.send(tasks(ended(0, exit(0), 2000), ended(1, exit(0), 2000), ended(2, exit(0), 2000)));
    s.send({ type: "TICK", now: 3000 });
    s.send({ type: "TICK", now: 13_000 });
    expect(getTask(s.ctx.tasks, 3)).toMatchObject({ state: "signaled", context: { killedByRuntime: false, killUnconfirmed: true } });
    expect(s.ctx.end).toMatchObject({ state: "FAILED", exitCode: "0:9", runExitStatus: 137 });
  });

  it("--wait does nothing when every task ended before the deadline", () => {
    const s = runningStep({ waitMs: 30_000 });
    s.send(tasks(ended(0, exit(0), 2000), ended(1, exit(0), 2000), ended(2, exit(0), 2000), ended(3, exit(0), 2000)));
    expect(s.ctx.end?.state).toBe("COMPLETED");
    expect(stepNextDeadline(s.ctx)).toBeUndefined();
    expect(s.send({ type: "TICK", now: 32_000 })).toEqual([]);
  });

  it("time limit: TERM at launchedAt + limit, KILL at escalateAt, tasks end 15 → TIMEOUT TimeLimit", () => {
    const s = runningStep({ timeLimitMs: 60_000 });
    expect(s.ctx.timeDeadline).toBe(61_000);
    expect(stepNextDeadline(s.ctx)).toBe(61_000);
    expect(s.send({ type: "TICK", now: 60_999 })).toEqual([]);
    const term = s.send({ type: "TICK", now: 61_000 });
    expect(s.ctx.timedOut).toBe(true);
    expect(term).toEqual([
      {
        type: "signalTasks",
        params: { signal: 15, cont: true, targets: [{ node: "n1", epoch: "e1", ranks: "0-1" }, { node: "n2", epoch: "e2", ranks: "2-3" }], notice: { reason: "time-limit", at: 61_000 } },
      },
    ]);
    expect(s.ctx.kill).toMatchObject({ reason: "time-limit", escalateAt: 71_000 });
    expect(stepNextDeadline(s.ctx)).toBe(71_000);
    s.send(tasks(ended(0, sig(15), 61_500), ended(1, sig(15), 61_500)));
    const kill = s.send({ type: "TICK", now: 71_000 });
    expect(kill).toEqual([{ type: "signalTasks", params: { signal: 9, cont: false, targets: [{ node: "n2", epoch: "e2", ranks: "2-3" }] } }]);
    s.send(tasks(ended(2, sig(15), 71_100), ended(3, sig(15), 71_100)));
    expect(s.ctx.end).toEqual({ state: "TIMEOUT", reason: "TimeLimit", exitCode: "0:15", failedNodes: [], runExitStatus: 143, at: 71_100 });
  });

  it("time limit after some tasks exited 0: TIMEOUT 0:0, and muster run exits 1", () => {
    const s = runningStep({ timeLimitMs: 60_000 });
    s.send(tasks(ended(0, exit(0), 2000), ended(1, exit(0), 2000)));
    s.send({ type: "TICK", now: 61_000 });
    s.send(tasks(ended(2, sig(15), 61_100), ended(3, sig(9), 71_100)));
    expect(s.ctx.end).toMatchObject({ state: "TIMEOUT", reason: "TimeLimit", exitCode: "0:0", runExitStatus: 1 });
  });

  it("time limit after a task failed on its own: FAILED with that task's exit code", () => {
    const s = runningStep({ timeLimitMs: 60_000 });
    s.send(tasks(ended(0, exit(2), 2000)));
    s.send({ type: "TICK", now: 61_000 });
    s.send(tasks(ended(1, sig(15), 61_100), ended(2, sig(15), 61_100), ended(3, sig(15), 61_100)));
    expect(s.ctx.end).toMatchObject({ state: "FAILED", reason: "NonZeroExitCode", exitCode: "2:0", runExitStatus: 2 });
  });

  it("cancel sends TERM; a second cancel escalates to SIGKILL at once", () => {
    const s = runningStep();
    expect(s.send({ type: "CANCEL", by: "alice", at: 5000 })).toEqual([
      {
        type: "signalTasks",
        params: { signal: 15, cont: true, targets: [{ node: "n1", epoch: "e1", ranks: "0-1" }, { node: "n2", epoch: "e2", ranks: "2-3" }], notice: { reason: "cancel", at: 5000 } },
      },
    ]);
    expect(s.ctx.kill).toEqual({ reason: "cancel", requestedAt: 5000, escalateAt: 15_000, unconfirmedAt: 25_000 });
    s.send(tasks(ended(0, sig(15), 5500)));
    expect(s.send({ type: "CANCEL", by: "bob", at: 6000 })).toEqual([
      { type: "signalTasks", params: { signal: 9, cont: false, targets: [{ node: "n1", epoch: "e1", ranks: "1" }, { node: "n2", epoch: "e2", ranks: "2-3" }] } },
    ]);
    expect(s.ctx.kill).toEqual({ reason: "cancel", requestedAt: 5000, escalateAt: undefined, unconfirmedAt: 16_000 });
    expect(s.ctx.cancelledBy).toBe("alice");
    // A third cancel has nothing left to escalate.
    expect(s.send({ type: "CANCEL", by: "bob", at: 6500 })).toEqual([]);
    s.send(tasks(ended(1, sig(9), 6100), ended(2, sig(9), 6100), ended(3, sig(9), 6100)));
    expect(s.ctx.end).toEqual({ state: "CANCELLED", reason: "None", exitCode: "0:15", failedNodes: [], runExitStatus: 143, at: 6100 });
  });

  it("cancel before launch ends the step CANCELLED at once, every task stopped", () => {
    const s = new StepSim(input(3));
    const fx = s.send({ type: "CANCEL", by: "alice", at: 500 });
    expect(fx.map((e) => e.type)).toEqual(["stepEnded"]);
    expect(s.ctx.end).toMatchObject({ state: "CANCELLED", exitCode: "0:9", runExitStatus: 137 });
    expect(s.of("stepEnded")[0]!.groups).toEqual({ "signaled:9": "0-2" });
    expect(s.send(launch(600))).toEqual([]);
  });

  it("KillUnconfirmed: after KillWait + nodeTimeout the silent node's tasks are finalised as SIGKILLed, unconfirmed", () => {
    const fakes = recordingActions(EFFECTS);
    const actor = createActor(stepMachine.provide({ actions: fakes.actions }), { input: input(4) }).start();
    actor.send(launch(1000));
    actor.send(tasks(started(0, 1100), started(1, 1100), started(2, 1100), started(3, 1100)));
    actor.send({ type: "CANCEL", by: "alice", at: 5000 });
    actor.send(tasks(ended(0, sig(15), 5100), ended(1, sig(15), 5100))); // n1 confirms, n2 stays silent
    expect(stepNextDeadline(actor.getSnapshot().context)).toBe(15_000);
    actor.send({ type: "TICK", now: 15_000 });
    expect(calls(fakes.calls, "signalTasks").at(-1)).toEqual({ signal: 9, cont: false, targets: [{ node: "n2", epoch: "e2", ranks: "2-3" }] });
    expect(stepNextDeadline(actor.getSnapshot().context)).toBe(25_000);
    actor.send({ type: "TICK", now: 24_999 });
    expect(actor.getSnapshot().value).toBe("completing");
    actor.send({ type: "TICK", now: 25_000 });
    expect(calls(fakes.calls, "killUnconfirmed")).toEqual([{ nodes: ["n2"], ranks: "2-3" }]);
    const snap = actor.getSnapshot();
    for (const r of [2, 3]) {
      expect(getTask(snap.context.tasks, r)).toMatchObject({
        state: "signaled",
        context: { outcome: sig(9), killedByRuntime: true, killUnconfirmed: true, endedAt: 25_000 },
      });
    }
    expect(snap.value).toBe("cancelled");
    expect(calls(fakes.calls, "stepEnded")).toHaveLength(1);
    expect(calls(fakes.calls, "notifyFirstFailure")).toHaveLength(1);
    expect(snap.output).toEqual({ state: "CANCELLED", reason: "None", exitCode: "0:15", failedNodes: [], runExitStatus: 143, at: 25_000 });
  });

  it("NODE_LOST (--no-kill): its live tasks become node_lost, the rest run on → NODE_FAIL with the failed node", () => {
    const s = runningStep({ noKill: true });
    // A stale incarnation of n2 changes nothing.
    expect(s.send({ type: "NODE_LOST", node: "n2", epoch: "e1", at: 7000 })).toEqual([]);
    s.send(tasks(ended(3, exit(0), 7500)));
    const fx = s.send({ type: "NODE_LOST", node: "n2", epoch: "e2", at: 8000 });
    expect(fx.map((e) => e.type)).toEqual(["notifyFirstFailure"]);
    expect(s.ctx.kill).toBeUndefined();
    expect(settleStepState("running", s.ctx)).toBe("running");
    expect(s.of("notifyFirstFailure")[0]).toMatchObject({
      trigger: { rank: 2, node: "n2", outcome: { kind: "node_lost" }, at: 8000 },
      groups: { running: "0-1", "exited:0": "3", node_lost: "2" },
    });
    expect(s.ctx.counts.nodeLost).toBe(1);
    s.send(tasks(ended(0, exit(0), 9000), ended(1, exit(0), 9000)));
    expect(s.ctx.end).toEqual({ state: "NODE_FAIL", reason: "NodeDown", exitCode: "0:0", failedNodes: ["n2"], runExitStatus: 1, at: 9000 });
  });

  it("NODE_LOST (default): the rest of the step is stopped TERM → KillWait → KILL, marked killed by the runtime → NODE_FAIL", () => {
    const s = runningStep();
    s.send(tasks(ended(3, exit(0), 7500)));
    const fx = s.send({ type: "NODE_LOST", node: "n2", epoch: "e2", at: 8000 });
    expect(fx).toEqual([
      expect.objectContaining({ type: "notifyFirstFailure" }),
      { type: "signalTasks", params: { signal: 15, cont: true, targets: [{ node: "n1", epoch: "e1", ranks: "0-1" }], notice: { reason: "node-failure", at: 8000 } } },
    ]);
    expect(s.ctx.kill).toEqual({ reason: "node-failure", requestedAt: 8000, escalateAt: 18_000, unconfirmedAt: 28_000 });
    expect(settleStepState("running", s.ctx)).toBe("completing");
    expect(stepStopNotice(s.ctx)).toEqual({ reason: "node-failure", at: 8000, node: "n1" });
    for (const r of [0, 1]) expect(getTask(s.ctx.tasks, r)).toMatchObject({ state: "stopping", context: { killedByRuntime: true, stopReason: "node-failure" } });
    // Rank 0 ends on TERM; rank 1 ignores it and is SIGKILLed at KillWait.
    s.send(tasks(ended(0, sig(15), 8100)));
    expect(s.send({ type: "TICK", now: 18_000 })).toEqual([{ type: "signalTasks", params: { signal: 9, cont: false, targets: [{ node: "n1", epoch: "e1", ranks: "1" }] } }]);
    s.send(tasks(ended(1, sig(9), 18_100)));
    expect(s.ctx.end).toEqual({ state: "NODE_FAIL", reason: "NodeDown", exitCode: "0:0", failedNodes: ["n2"], runExitStatus: 1, at: 18_100 });
    expect(s.of("stepEnded")[0]!.groups).toEqual({ "signaled:15": "0", "signaled:9": "1", node_lost: "2", "exited:0": "3" });
  });

  it("NODE_LOST of the first task's node: the stop is told from the first node still there", () => {
    const s = runningStep();
    s.send({ type: "NODE_LOST", node: "n1", epoch: "e1", at: 8000 });
    expect(stepStopNotice(s.ctx)).toEqual({ reason: "node-failure", at: 8000, node: "n2" });
  });

  it("NODE_LOST during a cancel: the lost node's tasks end killed unconfirmed, the step stays CANCELLED", () => {
    const s = runningStep();
    s.send({ type: "CANCEL", by: "alice", at: 5000 });
    s.send(tasks(ended(0, sig(15), 5100), ended(1, sig(15), 5100)));
    const fx = s.send({ type: "NODE_LOST", node: "n2", epoch: "e2", at: 6000 });
    expect(fx.map((e) => e.type)).toContain("killUnconfirmed");
    expect(s.ctx.end).toMatchObject({ state: "CANCELLED" });
  });

  it("a second node lost while the first loss stops the step is one more failed node", () => {
    const placement: Placement[] = [
      { node: "n1", epoch: "e1", ranks: "0" },
      { node: "n2", epoch: "e2", ranks: "1" },
      { node: "n3", epoch: "e3", ranks: "2" },
    ];
    const s = new StepSim(input(3));
    s.send(launch(1000, placement));
    s.send({ type: "NODE_LOST", node: "n3", epoch: "e3", at: 2000 });
    s.send({ type: "NODE_LOST", node: "n2", epoch: "e2", at: 2001 });
    expect(s.ctx.kill?.reason).toBe("node-failure");
    s.send(tasks(ended(0, sig(15), 2100, "e1")));
    expect(s.ctx.end).toMatchObject({ state: "NODE_FAIL", failedNodes: ["n2", "n3"], runExitStatus: 1 });
  });

  it("NODE_FAIL lists failed nodes in natural order", () => {
    const placement: Placement[] = [
      { node: "node-10", epoch: "a", ranks: "0" },
      { node: "node-2", epoch: "b", ranks: "1" },
      { node: "node-1", epoch: "c", ranks: "2" },
    ];
    const s = new StepSim(input(3));
    s.send(launch(1000, placement));
    s.send({ type: "NODE_LOST", node: "node-10", epoch: "a", at: 2000 });
    s.send({ type: "NODE_LOST", node: "node-2", epoch: "b", at: 2001 });
    s.send(tasks(ended(2, exit(0), 2002, "c")));
    expect(s.ctx.end?.failedNodes).toEqual(["node-2", "node-10"]);
  });

  it("SIGNAL forwards a signal to live tasks without changing the step", () => {
    const fakes = recordingActions(EFFECTS);
    const actor = createActor(stepMachine.provide({ actions: fakes.actions }), { input: input(4) }).start();
    actor.send(launch(1000));
    actor.send(tasks(ended(0, exit(0), 1500)));
    const before = actor.getSnapshot();
    actor.send({ type: "SIGNAL", signal: 10, at: 2000 });
    expect(calls(fakes.calls, "signalTasks")).toEqual([
      { signal: 10, cont: false, targets: [{ node: "n1", epoch: "e1", ranks: "1" }, { node: "n2", epoch: "e2", ranks: "2-3" }] },
    ]);
    expect(actor.getSnapshot().context).toBe(before.context);
    expect(actor.getSnapshot().value).toBe(before.value);
  });

  it("rejects events for ranks the step does not have", () => {
    const s = runningStep();
    const counts = s.ctx.counts;
    const fx = s.send(tasks(ended(4, exit(1), 2000), ended(-1, exit(1), 2000), { rank: 1.5, event: { type: "STARTED", epoch: "e1", pid: 1, at: 1 } }));
    expect(fx).toEqual([
      { type: "reportRejected", params: { rank: 4, eventType: "ENDED", reason: "unknown_rank" } },
      { type: "reportRejected", params: { rank: -1, eventType: "ENDED", reason: "unknown_rank" } },
      { type: "reportRejected", params: { rank: 1.5, eventType: "STARTED", reason: "unknown_rank" } },
    ]);
    expect(s.ctx.counts).toEqual(counts);
    expect(s.ctx.firstFailure).toBeUndefined();
  });
});

describe("step machine: persistence", () => {
  const prefix: StepEvent[] = [
    launch(1000),
    tasks(started(0, 1100), started(1, 1100), started(2, 1100), started(3, 1100)),
    tasks(ended(1, exit(7), 5000)),
  ];
  const rest: StepEvent[] = [tasks(ended(0, sig(15), 5100)), { type: "TICK", now: 15_000 }, tasks(ended(2, sig(9), 15_100), ended(3, sig(9), 15_100))];

  it("a persisted snapshot round-trips through JSON and the restored actor continues identically, without a second notification", () => {
    const machine = (a: ReturnType<typeof recordingActions>["actions"]) => stepMachine.provide({ actions: a });
    const straight = recordingActions(EFFECTS);
    const ref = createActor(machine(straight.actions), { input: input(4, { killOnBadExit: true }) }).start();
    for (const e of [...prefix, ...rest]) ref.send(e);

    const first = recordingActions(EFFECTS);
    const a1 = createActor(machine(first.actions), { input: input(4, { killOnBadExit: true }) }).start();
    for (const e of prefix) a1.send(e);
    expect(calls(first.calls, "notifyFirstFailure")).toHaveLength(1);
    const stored = JSON.stringify(a1.getPersistedSnapshot());
    a1.stop();

    const second = recordingActions(EFFECTS);
    const a2 = createActor(machine(second.actions), { snapshot: JSON.parse(stored), input: input(4, { killOnBadExit: true }) }).start();
    expect(a2.getSnapshot().value).toBe("completing");
    // The kill's deadlines came back with the context: the next TICK escalates as before.
    expect(stepNextDeadline(a2.getSnapshot().context)).toBe(15_000);
    for (const e of rest) a2.send(e);
    expect(calls(second.calls, "notifyFirstFailure")).toEqual([]);
    expect(calls(second.calls, "signalTasks")).toEqual([{ signal: 9, cont: false, targets: [{ node: "n2", epoch: "e2", ranks: "2-3" }] }]);
    expect(calls(second.calls, "stepEnded")).toEqual(calls(straight.calls, "stepEnded"));
    expect([...first.calls, ...second.calls]).toEqual(straight.calls);
    expect(a2.getSnapshot().value).toBe("failed");
    expect(a2.getSnapshot().output).toEqual(ref.getSnapshot().output);
    expect(JSON.parse(JSON.stringify(a2.getSnapshot().context))).toEqual(JSON.parse(JSON.stringify(ref.getSnapshot().context)));
  });
});

describe("step machine: 100,000 tasks", () => {
  function gcFunction(): (() => void) | undefined {
    const g = (globalThis as { gc?: () => void }).gc;
    if (g) return g;
    try {
      v8.setFlagsFromString("--expose-gc");
      return vm.runInNewContext("gc") as () => void;
    } catch {
      return undefined;
    }
  }

  it("launch, all exit 0 but three ranks, in batches of 1000: one notification under 64 KiB, FAILED", () => {
    const N = 100_000;
    const gc = gcFunction();
    gc?.();
    const heapBefore = process.memoryUsage().heapUsed;
    const t0 = performance.now();
    const fakes = recordingActions(EFFECTS);
    const actor = createActor(stepMachine.provide({ actions: fakes.actions }), { input: input(N) }).start();
    const placement: Placement[] = [];
    for (let n = 0; n < 100; n++) placement.push({ node: `node-${n + 1}`, epoch: `e${n}`, ranks: `${n * 1000}-${n * 1000 + 999}` });
    actor.send({ type: "LAUNCH", placement, at: 1000 });
    const bad = new Map<number, TaskOutcome>([
      [12_345, exit(1)],
      [50_000, sig(11)],
      [99_999, exit(2)],
    ]);
    for (let lo = 0; lo < N; lo += 1000) {
      const events: RankedTaskEvent[] = [];
      for (let r = lo; r < lo + 1000; r++) {
        events.push({ rank: r, event: { type: "ENDED", epoch: `e${Math.floor(r / 1000)}`, outcome: bad.get(r) ?? exit(0), at: 2000 + lo / 1000 } });
      }
      actor.send({ type: "TASKS", events });
    }
    const ms = performance.now() - t0;
    gc?.();
    const heapAfter = process.memoryUsage().heapUsed;
    const snap = actor.getSnapshot();

    const notices = calls(fakes.calls, "notifyFirstFailure");
    expect(notices).toHaveLength(1);
    expect(notices[0].trigger).toEqual({ rank: 12_345, node: "node-13", outcome: exit(1), at: 2012 });
    expect(notices[0].groups).toEqual({ launching: "13000-99999", "exited:0": "0-12344,12346-12999", "exited:1": "12345" });
    const bytes = Buffer.byteLength(JSON.stringify(notices[0]));
    expect(bytes).toBeLessThan(64 * 1024);
    expect(snap.value).toBe("failed");
    expect(snap.output).toEqual({ state: "FAILED", reason: "RaisedSignal:11(Segmentation_fault)", exitCode: "0:11", failedNodes: [], runExitStatus: 139, at: 2099 });
    const [summary] = calls(fakes.calls, "stepEnded");
    expect(summary.groups).toEqual({ "exited:0": "0-12344,12346-49999,50001-99998", "exited:1": "12345", "exited:2": "99999", "signaled:11": "50000" });
    expect(snap.context.counts).toMatchObject({ exited: N - 1, signaled: 1 });

    console.log(
      `100k-task step: ${ms.toFixed(0)} ms for LAUNCH + 100 TASKS batches; heap ${((heapAfter - heapBefore) / N).toFixed(0)} B/task` +
        ` (${gc ? "after gc" : "no gc available"}); notification ${bytes} B`,
    );
  });
});
