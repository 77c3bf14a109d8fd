/**
 * The supervisor runs steps without XState's interpreter (`HostedStep`: `applyStepEvent` then
 * `settleStepState`). On random event sequences it must agree with an XState actor of the step
 * machine at every event: state, status, context, output, the effects in order, and the persisted
 * snapshot (so records written by either restore in the other).
 */
import { describe, expect, it } from "vitest";
import { createActor } from "xstate";
import { stepMachine, type StepEffect, type StepEvent, type StepInput } from "../../machines/step.machine.js";
import type { TaskOutcome } from "../../src/exit-status/index.js";
import { HostedStep } from "../../services/supervisor/job-host.js";
import { sendToBoth } from "./hosted-compare.js";
import { pick, prng } from "./machines/helpers.js";

const EFFECTS = ["launchTasks", "signalTasks", "notifyFirstFailure", "reportRejected", "killUnconfirmed", "stepEnded"] as const;

function xstateStep(input: StepInput, out: StepEffect[]) {
  const provided = stepMachine.provide({
    actions: Object.fromEntries(EFFECTS.map((type) => [type, (_: unknown, params: unknown) => out.push({ type, params } as StepEffect)])),
  });
  const actor = createActor(provided, { input });
  actor.start();
  return actor;
}

const OUTCOMES: TaskOutcome[] = [
  { kind: "exited", code: 0 },
  { kind: "exited", code: 0 },
  { kind: "exited", code: 1 },
  { kind: "exited", code: 3 },
  { kind: "signaled", signal: 9, coreDumped: false },
  { kind: "signaled", signal: 11, coreDumped: true },
  { kind: "launch_failed", code: 127, error: "No such file or directory" },
];

/** A random but plausible stream of step events, with some stale, repeated and out-of-order ones. */
function randomEvents(rand: () => number, ntasks: number): StepEvent[] {
  const nodes = [
    { node: "n1", epoch: "e1" },
    { node: "n2", epoch: "e2" },
  ];
  const split = Math.max(1, Math.floor(ntasks / 2));
  const placement = [
    { ...nodes[0]!, ranks: split === 1 ? "0" : `0-${split - 1}` },
    ...(ntasks > split ? [{ ...nodes[1]!, ranks: ntasks - split === 1 ? String(split) : `${split}-${ntasks - 1}` }] : []),
  ];
  const epochOf = (rank: number) => (rank < split ? "e1" : "e2");
  let now = 1000;
  const events: StepEvent[] = [];
  if (rand() < 0.9) events.push({ type: "LAUNCH", placement, at: now });
  for (let i = 0; i < 4 + Math.floor(rand() * 12); i++) {
    now += Math.floor(rand() * 4000);
    const r = rand();
    if (r < 0.55) {
      const batch = [];
      for (let k = 0; k < 1 + Math.floor(rand() * 4); k++) {
        const rank = rand() < 0.05 ? ntasks + 3 : Math.floor(rand() * ntasks);
        const epoch = rand() < 0.07 ? "stale" : epochOf(rank);
        batch.push(
          rand() < 0.45
            ? { rank, event: { type: "STARTED" as const, epoch, pid: 100 + rank, at: now } }
            : { rank, event: { type: "ENDED" as const, epoch, pid: 100 + rank, outcome: pick(rand, OUTCOMES), at: now } },
        );
      }
      events.push({ type: "TASKS", events: batch });
    } else if (r < 0.63) events.push({ type: "CANCEL", by: "u", at: now, ...(rand() < 0.5 ? { killWaitMs: Math.floor(rand() * 3000) } : {}) });
    else if (r < 0.7) events.push({ type: "SIGNAL", signal: pick(rand, [2, 10, 15]), at: now });
    else if (r < 0.78) events.push({ type: "NODE_LOST", node: pick(rand, ["n1", "n2"]), epoch: pick(rand, ["e1", "e2", "old"]), at: now });
    else events.push({ type: "TICK", now: now + (rand() < 0.3 ? 60_000 : 0) });
  }
  return events;
}

describe("HostedStep", () => {
  it("agrees with the XState step actor on 3,000 random event sequences", () => {
    const rand = prng(20261123);
    let finals = 0;
    for (let run = 0; run < 3000; run++) {
      const ntasks = 1 + Math.floor(rand() * 6);
      const input: StepInput = {
        job: "1",
        step: "0",
        ntasks,
        policies: {
          killOnBadExit: rand() < 0.4,
          killWaitMs: pick(rand, [0, 1000, 10_000]),
          nodeTimeoutMs: pick(rand, [3000, 10_000]),
          ...(rand() < 0.3 ? { waitMs: 2000 } : {}),
          ...(rand() < 0.3 ? { timeLimitMs: 5000 } : {}),
        },
      };
      const theirs: StepEffect[] = [];
      const ours: StepEffect[] = [];
      const actor = xstateStep(input, theirs);
      const hosted = new HostedStep(input, (e) => ours.push(e));
      for (const event of randomEvents(rand, ntasks)) {
        sendToBoth(actor, hosted, event, ours, theirs);
      }
      if (actor.getSnapshot().status === "done") finals++;
      // Restored from the XState actor's persisted snapshot, the hosted step goes on identically.
      const restored = new HostedStep(undefined, () => undefined, JSON.parse(JSON.stringify(actor.getPersistedSnapshot())));
      expect(restored.getSnapshot().value).toBe(actor.getSnapshot().value);
    }
    // The sequences reach final states often enough for the comparison to mean something.
    expect(finals).toBeGreaterThan(300);
  });
});
