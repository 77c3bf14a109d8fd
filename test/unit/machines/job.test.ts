import { describe, expect, it } from "vitest";
import { createActor } from "xstate";
import { applyJobEvent, initialJobContext, jobMachine, type JobContext, type JobEffect, type JobEvent, type JobInput } from "../../../machines/job.machine.js";
import type { StepEnd } from "../../../machines/step.machine.js";
import { recordingActions } from "./helpers.js";

const runJob: JobInput = { job: "42", user: "alice", kind: "run", submittedAt: 100 };
const batchJob: JobInput = { ...runJob, kind: "batch" };

const stepEnd = (exitCode: string, at: number, over: Partial<StepEnd> = {}): StepEnd => {
  const failed = exitCode !== "0:0";
  return {
    state: failed ? "FAILED" : "COMPLETED",
    reason: failed ? "NonZeroExitCode" : "None",
    exitCode,
    failedNodes: [],
    runExitStatus: Number(exitCode.split(":")[0]),
    at,
    ...over,
  };
};

class JobSim {
  ctx: JobContext;
  readonly effects: JobEffect[] = [];
  constructor(input: JobInput) {
    this.ctx = initialJobContext(input);
  }
  send(event: JobEvent): JobEffect[] {
    const r = applyJobEvent(this.ctx, event);
    this.ctx = r.context;
    this.effects.push(...r.effects);
    return r.effects;
  }
}

describe("job machine", () => {
  it("a run job ends with its step, taking its state, Reason and ExitCode", () => {
    const fakes = recordingActions(["cancelSteps", "jobEnded"] as const);
    const actor = createActor(jobMachine.provide({ actions: fakes.actions }), { input: runJob }).start();
    expect(actor.getSnapshot().value).toBe("pending");
    actor.send({ type: "STEP_STARTED", step: "0", at: 200 });
    expect(actor.getSnapshot().value).toBe("running");
    expect(actor.getSnapshot().context.startedAt).toBe(200);
    actor.send({ type: "STEP_ENDED", step: "0", end: stepEnd("0:11", 900, { reason: "RaisedSignal:11(Segmentation_fault)", runExitStatus: 139 }) });
    const snap = actor.getSnapshot();
    expect(snap.status).toBe("done");
    expect(snap.value).toBe("failed");
    const end = { state: "FAILED", reason: "RaisedSignal:11(Segmentation_fault)", exitCode: "0:11", derivedExitCode: "0:11", failedNodes: [], at: 900 };
    expect(snap.output).toEqual(end);
    expect(fakes.calls).toEqual([{ type: "jobEnded", params: { job: "42", end } }]);
  });

  it("a run job's NODE_FAIL carries its failed nodes", () => {
    const s = new JobSim(runJob);
    s.send({ type: "STEP_STARTED", step: "0", at: 200 });
    s.send({ type: "STEP_ENDED", step: "0", end: stepEnd("0:0", 900, { state: "NODE_FAIL", reason: "NodeDown", failedNodes: ["n2", "n10"], runExitStatus: 1 }) });
    expect(s.ctx.end).toMatchObject({ state: "NODE_FAIL", reason: "NodeDown", failedNodes: ["n2", "n10"] });
  });

  it("a batch job: batch 0:0 and steps 0:0, 7:0, 3:0 → COMPLETED 0:0, DerivedExitCode 7:0", () => {
    const s = new JobSim(batchJob);
    s.send({ type: "STEP_STARTED", step: "batch", at: 200 });
    for (const [i, code] of ["0:0", "7:0", "3:0"].entries()) {
      s.send({ type: "STEP_STARTED", step: String(i), at: 300 + i });
      expect(s.send({ type: "STEP_ENDED", step: String(i), end: stepEnd(code, 400 + i) })).toEqual([]);
    }
    expect(s.ctx.end).toBeUndefined();
    const fx = s.send({ type: "STEP_ENDED", step: "batch", end: stepEnd("0:0", 500) });
    const end = { state: "COMPLETED", reason: "None", exitCode: "0:0", derivedExitCode: "7:0", failedNodes: [], at: 500 };
    expect(fx).toEqual([{ type: "jobEnded", params: { job: "42", end } }]);
    expect(s.ctx.end).toEqual(end);
  });

  it("a batch job without steps: DerivedExitCode 0:0; the batch's exit 6 fails the job", () => {
    const s = new JobSim(batchJob);
    s.send({ type: "STEP_STARTED", step: "batch", at: 200 });
    s.send({ type: "STEP_ENDED", step: "batch", end: stepEnd("6:0", 500) });
    expect(s.ctx.end).toMatchObject({ state: "FAILED", reason: "NonZeroExitCode", exitCode: "6:0", derivedExitCode: "0:0" });
  });

  it("the batch step ends while steps are live: cancelSteps for them, and the job waits for them", () => {
    const fakes = recordingActions(["cancelSteps", "jobEnded"] as const);
    const actor = createActor(jobMachine.provide({ actions: fakes.actions }), { input: batchJob }).start();
    actor.send({ type: "STEP_STARTED", step: "batch", at: 200 });
    actor.send({ type: "STEP_STARTED", step: "0", at: 300 });
    actor.send({ type: "STEP_STARTED", step: "1", at: 310 });
    actor.send({ type: "STEP_ENDED", step: "1", end: stepEnd("2:0", 350) });
    actor.send({ type: "STEP_ENDED", step: "batch", end: stepEnd("0:0", 400) });
    expect(fakes.calls).toEqual([{ type: "cancelSteps", params: { steps: ["0"], by: "batch-ended", at: 400 } }]);
    expect(actor.getSnapshot().status).toBe("active");
    expect(actor.getSnapshot().context.end).toBeUndefined();
    actor.send({ type: "STEP_ENDED", step: "0", end: stepEnd("0:15", 450, { state: "CANCELLED", reason: "None", runExitStatus: 143 }) });
    const snap = actor.getSnapshot();
    expect(snap.value).toBe("completed");
    // The batch step decides the state; the cancelled step still shows in DerivedExitCode.
    expect(snap.output).toEqual({ state: "COMPLETED", reason: "None", exitCode: "0:0", derivedExitCode: "0:15", failedNodes: [], at: 450 });
    expect(fakes.calls.filter((c) => c.type === "jobEnded")).toHaveLength(1);
  });

  it("cancel forwards to live steps; the job ends CANCELLED once they have ended", () => {
    const fakes = recordingActions(["cancelSteps", "jobEnded"] as const);
    const actor = createActor(jobMachine.provide({ actions: fakes.actions }), { input: batchJob }).start();
    actor.send({ type: "STEP_STARTED", step: "batch", at: 200 });
    actor.send({ type: "STEP_STARTED", step: "0", at: 300 });
    actor.send({ type: "STEP_STARTED", step: "1", at: 300 });
    actor.send({ type: "STEP_ENDED", step: "0", end: stepEnd("0:0", 350) });
    actor.send({ type: "CANCEL", by: "alice", at: 400 });
    expect(actor.getSnapshot().value).toBe("completing");
    expect(fakes.calls).toEqual([{ type: "cancelSteps", params: { steps: ["batch", "1"], by: "alice", at: 400 } }]);
    // A second cancel is forwarded too, so the steps escalate to SIGKILL.
    actor.send({ type: "CANCEL", by: "bob", at: 410 });
    expect(fakes.calls.at(-1)).toEqual({ type: "cancelSteps", params: { steps: ["batch", "1"], by: "bob", at: 410 } });
    expect(actor.getSnapshot().context.cancelledBy).toBe("alice");
    // A step started after the cancel is cancelled at once.
    actor.send({ type: "STEP_STARTED", step: "2", at: 420 });
    expect(fakes.calls.at(-1)).toEqual({ type: "cancelSteps", params: { steps: ["2"], by: "alice", at: 420 } });
    actor.send({ type: "STEP_ENDED", step: "1", end: stepEnd("0:15", 430, { state: "CANCELLED", reason: "None" }) });
    actor.send({ type: "STEP_ENDED", step: "2", end: stepEnd("0:9", 440, { state: "CANCELLED", reason: "None" }) });
    actor.send({ type: "STEP_ENDED", step: "batch", end: stepEnd("0:15", 450, { state: "CANCELLED", reason: "None" }) });
    expect(actor.getSnapshot().value).toBe("cancelled");
    expect(actor.getSnapshot().output).toEqual({ state: "CANCELLED", reason: "None", exitCode: "0:15", derivedExitCode: "0:15", failedNodes: [], at: 450 });
  });

  it("cancel of a job with no steps ends it CANCELLED at once", () => {
    const fakes = recordingActions(["cancelSteps", "jobEnded"] as const);
    const actor = createActor(jobMachine.provide({ actions: fakes.actions }), { input: runJob }).start();
    actor.send({ type: "CANCEL", by: "alice", at: 150 });
    const end = { state: "CANCELLED", reason: "None", exitCode: "0:0", derivedExitCode: "0:0", failedNodes: [], at: 150 };
    expect(actor.getSnapshot().value).toBe("cancelled");
    expect(actor.getSnapshot().output).toEqual(end);
    expect(fakes.calls).toEqual([{ type: "jobEnded", params: { job: "42", end } }]);
  });

  it("a cancelled job whose step ended NODE_FAIL stays NODE_FAIL", () => {
    const s = new JobSim(runJob);
    s.send({ type: "STEP_STARTED", step: "0", at: 200 });
    s.send({ type: "CANCEL", by: "alice", at: 300 });
    s.send({ type: "STEP_ENDED", step: "0", end: stepEnd("0:0", 400, { state: "NODE_FAIL", reason: "NodeDown", failedNodes: ["n1"] }) });
    expect(s.ctx.end?.state).toBe("NODE_FAIL");
  });

  it("duplicates change nothing: a second STEP_STARTED, a second STEP_ENDED, events after the end", () => {
    const s = new JobSim(batchJob);
    s.send({ type: "STEP_STARTED", step: "batch", at: 200 });
    s.send({ type: "STEP_STARTED", step: "0", at: 300 });
    const ctx = s.ctx;
    expect(s.send({ type: "STEP_STARTED", step: "0", at: 301 })).toEqual([]);
    expect(s.ctx).toBe(ctx);
    s.send({ type: "STEP_ENDED", step: "0", end: stepEnd("3:0", 400) });
    s.send({ type: "STEP_ENDED", step: "0", end: stepEnd("0:0", 410) });
    expect(s.ctx.steps.find((x) => x.step === "0")?.end?.exitCode).toBe("3:0");
    s.send({ type: "STEP_ENDED", step: "batch", end: stepEnd("0:0", 500) });
    const done = s.ctx;
    expect(s.send({ type: "CANCEL", by: "alice", at: 600 })).toEqual([]);
    expect(s.ctx).toBe(done);
    expect(done.end?.derivedExitCode).toBe("3:0");
  });
});
