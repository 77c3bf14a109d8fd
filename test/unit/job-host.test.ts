/**
 * The supervisor's job host persists steps without XState's context walk; what it stores must be
 * exactly what an XState actor's `getPersistedSnapshot()` gives, and restore from it must give the same step.
 * It runs the job machine without XState's interpreter (`HostedJob`): on random event sequences that
 * must agree with an XState actor of the job machine at every event.
 */
import { describe, expect, it } from "vitest";
import { createActor } from "xstate";
import { jobMachine, type JobEffect, type JobEvent, type JobInput } from "../../machines/job.machine.js";
import { stepMachine, type StepEnd, type StepEvent } from "../../machines/step.machine.js";
import { HostedJob, JobHost, type JobMeta } from "../../services/supervisor/job-host.js";
import { sendToBoth } from "./hosted-compare.js";
import { pick, prng } from "./machines/helpers.js";

const META: JobMeta = {
  name: "t",
  user: "u",
  kind: "run",
  request: { ntasks: 3000 },
  killWaitSeconds: 10,
  submittedAt: 1000,
  policies: { killOnBadExit: false },
  steps: { "0": { argv: ["true"], env: {}, cwd: "/", label: false } },
};

const EVENTS: StepEvent[] = (() => {
  const events: Extract<StepEvent, { type: "TASKS" }>["events"][number][] = [];
  for (let r = 0; r < 3000; r++) events.push({ rank: r, event: { type: "STARTED", epoch: "e1", pid: 100 + r, at: 1001 } });
  for (let r = 0; r < 3000; r += 7) events.push({ rank: r, event: { type: "ENDED", epoch: "e1", pid: 100 + r, outcome: { kind: "exited", code: r % 3 }, at: 1002 } });
  return [
    { type: "LAUNCH", at: 1000, placement: [{ node: "n1", epoch: "e1", ranks: "0-2999" }] },
    { type: "TASKS", events },
  ];
})();

function hostWithEvents(): JobHost {
  const host = new JobHost("7", META, () => undefined);
  host.addStep("0", { job: "7", step: "0", ntasks: 3000, policies: { killOnBadExit: false, killWaitMs: 10_000, nodeTimeoutMs: 10_000 } });
  host.sendJob({ type: "STEP_STARTED", step: "0", at: 1000 });
  for (const e of EVENTS) host.sendStep("0", e);
  return host;
}

describe("JobHost.persisted", () => {
  it("gives exactly XState's persisted snapshot of each step, without walking the task table", () => {
    const host = hostWithEvents();
    const ours = host.persisted().steps.get("0");
    const actor = createActor(stepMachine, { input: { job: "7", step: "0", ntasks: 3000, policies: { killOnBadExit: false, killWaitMs: 10_000, nodeTimeoutMs: 10_000 } } });
    actor.start();
    for (const e of EVENTS) actor.send(e);
    const xstates = actor.getPersistedSnapshot();
    expect(JSON.parse(JSON.stringify(ours))).toEqual(JSON.parse(JSON.stringify(xstates)));
    // The task table is shared, not copied (what makes it cheap).
    expect((ours!.context as { tasks: unknown }).tasks).toBe(host.steps.get("0")!.getSnapshot().context.tasks);
    // One task ended, the others run: RUNNING (COMPLETING is a step being stopped).
    expect(ours!.value).toBe("running");
  });

  it("restores a host that continues exactly like the original", () => {
    const host = hostWithEvents();
    const { job, steps } = host.persisted();
    const copy = new JobHost("7", META, () => undefined, { job: JSON.parse(JSON.stringify(job)), steps: new Map([["0", JSON.parse(JSON.stringify(steps.get("0")))]]), seq: 5 });
    expect(copy.savedSeq).toBe(5);
    const rest: Extract<StepEvent, { type: "TASKS" }>["events"][number][] = [];
    for (let r = 0; r < 3000; r++) if (r % 7) rest.push({ rank: r, event: { type: "ENDED", epoch: "e1", pid: 100 + r, outcome: { kind: "exited", code: 0 }, at: 1003 } });
    host.sendStep("0", { type: "TASKS", events: rest });
    copy.sendStep("0", { type: "TASKS", events: rest });
    const a = host.steps.get("0")!.getSnapshot();
    const b = copy.steps.get("0")!.getSnapshot();
    expect(b.context.end).toEqual(a.context.end);
    expect(b.context.end?.state).toBe("FAILED");
    expect(b.value).toBe(a.value);
  });
});

const STEP_ENDS: Omit<StepEnd, "at">[] = [
  { state: "COMPLETED", reason: "None", exitCode: "0:0", failedNodes: [], runExitStatus: 0 },
  { state: "FAILED", reason: "NonZeroExitCode", exitCode: "3:0", failedNodes: [], runExitStatus: 3 },
  { state: "FAILED", reason: "NonZeroExitCode", exitCode: "0:9", failedNodes: [], runExitStatus: 137 },
  { state: "CANCELLED", reason: "None", exitCode: "0:15", failedNodes: [], runExitStatus: 143 },
  { state: "TIMEOUT", reason: "TimeLimit", exitCode: "0:15", failedNodes: [], runExitStatus: 143 },
  { state: "NODE_FAIL", reason: "NodeDown", exitCode: "0:9", failedNodes: ["n2"], runExitStatus: 137 },
];

/** A random stream of job events: steps starting and ending (some twice, some unknown), cancels. */
function randomJobEvents(rand: () => number, kind: "run" | "batch"): JobEvent[] {
  const ids = kind === "batch" ? ["batch", "0", "1", "2"] : ["0", "1"];
  let now = 2000;
  const events: JobEvent[] = [];
  for (let i = 0; i < 2 + Math.floor(rand() * 9); i++) {
    now += Math.floor(rand() * 1000);
    const r = rand();
    const step = pick(rand, ids);
    if (r < 0.4) events.push({ type: "STEP_STARTED", step, at: now });
    else if (r < 0.85) events.push({ type: "STEP_ENDED", step, end: { ...pick(rand, STEP_ENDS), at: now } });
    else events.push({ type: "CANCEL", by: pick(rand, ["u", "root"]), at: now, ...(rand() < 0.5 ? { killWaitMs: 500 } : {}) });
  }
  return events;
}

describe("JobHost.runState", () => {
  it("is RUNNING while tasks end on their own, COMPLETING once the main step is being stopped", () => {
    const host = hostWithEvents();
    expect(host.runState()).toBe("RUNNING");
    host.sendStep("0", { type: "NODE_LOST", node: "n1", epoch: "old", at: 1003 }); // a stale incarnation: nothing happens
    expect(host.runState()).toBe("RUNNING");
    host.sendStep("0", { type: "TICK", now: 1004 });
    expect(host.runState()).toBe("RUNNING");
    // A cancel of the step alone (the job machine is not told) makes the job COMPLETING.
    host.sendStep("0", { type: "CANCEL", by: "u", at: 1005 });
    expect(host.steps.get("0")!.getSnapshot().value).toBe("completing");
    expect(host.runState()).toBe("COMPLETING");
  });
});

describe("HostedJob", () => {
  it("agrees with the XState job actor on 3,000 random event sequences", () => {
    const rand = prng(20261124);
    const finals = new Set<string>();
    for (let run = 0; run < 3000; run++) {
      const kind = rand() < 0.5 ? "run" : "batch";
      const input: JobInput = { job: String(run), user: "u", kind, submittedAt: 1000 };
      const theirs: JobEffect[] = [];
      const ours: JobEffect[] = [];
      const actor = createActor(
        jobMachine.provide({
          actions: Object.fromEntries((["cancelSteps", "jobEnded"] as const).map((type) => [type, (_: unknown, params: unknown) => theirs.push({ type, params } as JobEffect)])),
        }),
        { input },
      );
      actor.start();
      const hosted = new HostedJob(input, (e) => ours.push(e));
      expect(hosted.getSnapshot().value).toBe(actor.getSnapshot().value);
      for (const event of randomJobEvents(rand, kind)) {
        sendToBoth(actor, hosted, event, ours, theirs);
      }
      finals.add(String(actor.getSnapshot().value));
      // Restored from the XState actor's persisted snapshot, the hosted job has the same state.
      const restored = new HostedJob(input, () => undefined, JSON.parse(JSON.stringify(actor.getPersistedSnapshot())));
      expect(restored.getSnapshot().value).toBe(actor.getSnapshot().value);
      expect(restored.getSnapshot().status).toBe(actor.getSnapshot().status);
    }
    // Every state of the machine is reached by some sequence, so the comparison covers them all.
    expect([...finals].sort()).toEqual(["cancelled", "completed", "completing", "failed", "nodeFail", "pending", "running", "timeout"]);
  });
});
