/**
 * Replay: recorded event logs under test/histories/ run through the machines, wired the way the
 * services wire them (a lost node's epoch goes to every step, a step's end to its job, a job's
 * cancel to its steps); the final states must match what the file records.
 */
import { readdirSync, readFileSync } from "node:fs";
import { fileURLToPath } from "node:url";
import { describe, expect, it } from "vitest";
import { createActor, type Actor } from "xstate";
import { jobMachine, type JobEvent, type JobInput } from "../../../machines/job.machine.js";
import { nodeMachine, type NodeEvent, type NodeTimings } from "../../../machines/node.machine.js";
import { stepMachine, type StepEvent, type StepInput } from "../../../machines/step.machine.js";

interface History {
  readonly description: string;
  readonly job?: JobInput;
  readonly nodes?: Readonly<Record<string, NodeTimings>>;
  readonly steps: Readonly<Record<string, StepInput>>;
  readonly log: readonly { readonly to: string; readonly event: StepEvent | JobEvent | NodeEvent }[];
  readonly expect: Readonly<Record<string, Readonly<Record<string, unknown>>>>;
}

const dir = fileURLToPath(new URL("../../histories/", import.meta.url));
const files = readdirSync(dir).filter((f) => f.endsWith(".json")).sort();

/** Time of an event, for effects that carry none of their own. */
const timeOf = (e: { at?: number; now?: number }) => e.at ?? e.now;

/** Runs a history through the machines; returns what each target ended as, in the file's `expect` vocabulary. */
function replay(h: History): Record<string, Record<string, unknown>> {
  const queue: { to: string; event: any }[] = [];
  const seen: Record<string, { type: string; params: any }[]> = {};
  const record = (target: string, type: string, params: any) => (seen[target] ??= []).push({ type, params });
  let clock = 0;

  const steps = new Map<string, Actor<typeof stepMachine>>();
  for (const [id, input] of Object.entries(h.steps)) {
    const target = `step:${id}`;
    const machine = stepMachine.provide({
      actions: {
        launchTasks: (_, p) => record(target, "launchTasks", p),
        signalTasks: (_, p) => record(target, "signalTasks", p),
        notifyFirstFailure: (_, p) => record(target, "notifyFirstFailure", p),
        reportRejected: (_, p) => record(target, "reportRejected", p),
        killUnconfirmed: (_, p) => {
          record(target, "killUnconfirmed", p);
          for (const node of p.nodes) queue.push({ to: `node:${node}`, event: { type: "KILL_UNCONFIRMED", at: clock } });
        },
        stepEnded: (_, p) => {
          record(target, "stepEnded", p);
          if (h.job) queue.push({ to: "job", event: { type: "STEP_ENDED", step: id, end: p.end } });
        },
      },
    });
    steps.set(target, createActor(machine, { input }).start());
  }
  const job = h.job
    ? createActor(
        jobMachine.provide({
          actions: {
            cancelSteps: (_, p) => {
              record("job", "cancelSteps", p);
              for (const step of p.steps) queue.push({ to: `step:${step}`, event: { type: "CANCEL", by: p.by, at: p.at } });
            },
            jobEnded: (_, p) => record("job", "jobEnded", p),
          },
        }),
        { input: h.job },
      ).start()
    : undefined;
  const nodes = new Map<string, Actor<typeof nodeMachine>>();
  for (const [node, timings] of Object.entries(h.nodes ?? {})) {
    const target = `node:${node}`;
    const machine = nodeMachine.provide({
      actions: {
        nodeLost: (_, p) => {
          record(target, "nodeLost", p);
          for (const step of steps.keys()) queue.push({ to: step, event: { type: "NODE_LOST", node: p.node, epoch: p.epoch, at: p.at } });
        },
        nodeOffline: (_, p) => record(target, "nodeOffline", p),
        reportStale: (_, p) => record(target, "reportStale", p),
      },
    });
    nodes.set(target, createActor(machine, { input: { node, timings } }).start());
  }

  for (const entry of h.log) {
    queue.push(entry);
    while (queue.length) {
      const { to, event } = queue.shift()!;
      clock = Math.max(clock, timeOf(event) ?? clock);
      const actor = to === "job" ? job : (steps.get(to) ?? nodes.get(to));
      if (!actor) throw new Error(`history sends ${event.type} to unknown target ${to}`);
      actor.send(event);
    }
  }

  const of = (target: string, type: string) => (seen[target] ?? []).filter((c) => c.type === type).map((c) => c.params);
  const out: Record<string, Record<string, unknown>> = {};
  for (const [target, actor] of steps) {
    const snap = actor.getSnapshot();
    const [summary] = of(target, "stepEnded");
    out[target] = {
      status: snap.status,
      ...snap.context.end,
      notifications: of(target, "notifyFirstFailure").length,
      trigger: of(target, "notifyFirstFailure")[0]?.trigger,
      signals: of(target, "signalTasks").map((p) => p.signal),
      staleEvents: snap.context.staleEvents,
      duplicateEvents: snap.context.duplicateEvents,
      summaries: of(target, "stepEnded").length,
      groups: summary?.groups,
      killedByRuntime: summary?.killedByRuntime,
    };
  }
  if (job) out.job = { status: job.getSnapshot().status, ...job.getSnapshot().context.end, endings: of("job", "jobEnded").length };
  for (const [target, actor] of nodes) {
    const snap = actor.getSnapshot();
    out[target] = { state: snap.value, epoch: snap.context.epoch, staleEvents: snap.context.staleEvents, lost: of(target, "nodeLost") };
  }
  return out;
}

describe("replay of recorded histories", () => {
  it("finds the recorded histories", () => {
    expect(files).toEqual(["batch-job.json", "kill-on-bad-exit.json", "node-loss.json"]);
  });

  it.each(files)("%s ends as recorded", (file) => {
    const h = JSON.parse(readFileSync(dir + file, "utf8")) as History;
    const result = replay(h);
    expect(Object.keys(h.expect).length).toBeGreaterThan(0);
    for (const [target, fields] of Object.entries(h.expect)) {
      expect(result[target], `${file}: no target ${target}`).toBeDefined();
      for (const [field, value] of Object.entries(fields)) expect(result[target]![field], `${file}: ${target}.${field}`).toEqual(value);
    }
    // Every step and the job ended exactly once.
    for (const [target, r] of Object.entries(result)) {
      if (target.startsWith("step:")) expect([r.status, r.summaries], `${file}: ${target}`).toEqual(["done", 1]);
      if (target === "job") expect([r.status, r.endings], file).toEqual(["done", 1]);
    }
    // Replaying is deterministic.
    expect(replay(h)).toEqual(result);
  });
});
