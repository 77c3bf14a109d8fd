/**
 * The supervisor's job host persists steps without XState's context walk; what it stores must be
 * exactly what an XState actor's `getPersistedSnapshot()` gives, and restore from it must give the same step.
 */
import { describe, expect, it } from "vitest";
import { createActor } from "xstate";
import { stepMachine, type StepEvent } from "../../machines/step.machine.js";
import { JobHost, type JobMeta } from "../../services/supervisor/job-host.js";

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
    expect(ours!.value).toBe("completing");
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
