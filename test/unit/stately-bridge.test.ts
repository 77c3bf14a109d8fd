/**
 * The Stately bridge: XState's inspection events from real actors come out in the shape Stately's
 * inspector reads (`@statelyai/inspect`'s StatelyInspectionEvent), as plain JSON.
 */
import { describe, expect, it } from "vitest";
import { createActor, createMachine, type InspectionEvent } from "xstate";
import { jobMachine } from "../../machines/job.machine.js";
import { stepMachine } from "../../machines/step.machine.js";
import {
  STATELY_PROTOCOL_VERSION,
  createStatelyBridge,
  toStatelyEvent,
  type StatelyActorEvent,
  type StatelyEventEvent,
  type StatelyInspectionEvent,
  type StatelySnapshotEvent,
} from "../../services/inspector/stately-bridge.js";

const NOW = 1_700_000_000_000;
const ACTOR_KEYS = ["_version", "createdAt", "definition", "id", "name", "parentId", "rootId", "sessionId", "snapshot", "type"];
const EVENT_KEYS = ["_version", "createdAt", "event", "id", "rootId", "sessionId", "sourceId", "type"];
const SNAPSHOT_KEYS = ["_version", "createdAt", "event", "id", "rootId", "sessionId", "snapshot", "type"];

function record() {
  const bridge = createStatelyBridge({ now: () => NOW });
  const seen: StatelyInspectionEvent[] = [];
  bridge.subscribe((e) => seen.push(e));
  return { bridge, seen };
}

const of = <T extends StatelyInspectionEvent["type"]>(seen: StatelyInspectionEvent[], type: T) =>
  seen.filter((e): e is Extract<StatelyInspectionEvent, { type: T }> => e.type === type);

describe("Stately bridge", () => {
  it("emits @xstate.actor, @xstate.event and @xstate.snapshot with the fields Stately reads", () => {
    const { bridge, seen } = record();
    const job = createActor(jobMachine, { input: { job: "7", user: "alice", kind: "run", submittedAt: 1000 }, id: "job-7", inspect: bridge.inspect }).start();
    job.send({ type: "STEP_STARTED", step: "0", at: 1001 });

    expect(seen[0]!.type).toBe("@xstate.actor");
    const actor = seen[0] as StatelyActorEvent;
    expect(Object.keys(actor).sort()).toEqual(ACTOR_KEYS);
    expect(actor).toMatchObject({
      type: "@xstate.actor",
      name: "job-7",
      sessionId: job.sessionId,
      rootId: job.sessionId,
      parentId: undefined,
      createdAt: String(NOW),
      _version: STATELY_PROTOCOL_VERSION,
    });
    expect(actor.id).toEqual(expect.any(String));
    const definition = JSON.parse(actor.definition!) as { id: string; initial: string; states: Record<string, unknown> };
    expect(definition.id).toBe("job");
    expect(definition.initial).toBe("pending");
    expect(Object.keys(definition.states)).toEqual(["pending", "running", "completing", "completed", "failed", "cancelled", "timeout", "nodeFail"]);
    // XState announces an actor before its first snapshot exists; the snapshot after xstate.init carries it.
    expect(actor.snapshot.status).toBe("active");

    const events = of(seen, "@xstate.event");
    for (const e of events) expect(Object.keys(e).sort()).toEqual(EVENT_KEYS);
    const sent = events.find((e) => e.event.type === "STEP_STARTED") as StatelyEventEvent;
    expect(sent).toMatchObject({ sessionId: job.sessionId, rootId: job.sessionId, sourceId: undefined, event: { type: "STEP_STARTED", step: "0", at: 1001 } });
    expect(events[0]!.event.type).toBe("xstate.init");

    const snapshots = of(seen, "@xstate.snapshot");
    for (const s of snapshots) expect(Object.keys(s).sort()).toEqual(SNAPSHOT_KEYS);
    expect(snapshots[0]).toMatchObject({ event: { type: "xstate.init" }, snapshot: { status: "active", value: "pending" } });
    const last = snapshots.at(-1) as StatelySnapshotEvent;
    expect(last.event.type).toBe("STEP_STARTED");
    expect(last.snapshot).toMatchObject({ status: "active", value: "running", context: { job: "7", startedAt: 1001, steps: [{ step: "0", startedAt: 1001 }] } });
    // Plain JSON all the way: what goes over SSE is what a subscriber got.
    for (const e of seen) expect(JSON.parse(JSON.stringify(e))).toEqual(e);
    job.stop();
  });

  it("names a child actor's parent and root, and falls back to the machine id for an unnamed actor", () => {
    const { bridge, seen } = record();
    const child = createMachine({ id: "child", initial: "idle", states: { idle: {} } });
    const parent = createMachine({ id: "parent", initial: "on", states: { on: { invoke: { id: "kid", src: child } } } });
    const root = createActor(parent, { inspect: bridge.inspect }).start();
    const actors = of(seen, "@xstate.actor");
    expect(actors.map((a) => a.name)).toEqual(["parent", "kid"]);
    expect(actors[1]).toMatchObject({ parentId: root.sessionId, rootId: root.sessionId });
    expect(JSON.parse(actors[1]!.definition!).id).toBe("child");
    root.stop();
  });

  it("summarises a step's task table (its counts stay) so snapshots stay small", () => {
    const { bridge, seen } = record();
    const step = createActor(stepMachine, {
      input: { job: "9", step: "0", ntasks: 5000, policies: { killOnBadExit: false, killWaitMs: 10_000, nodeTimeoutMs: 10_000 } },
      id: "step-9.0",
      inspect: bridge.inspect,
    }).start();
    step.send({ type: "LAUNCH", placement: [{ node: "n1", epoch: "e1", ranks: "0-4999" }], at: 5 });
    step.send({ type: "TASKS", events: [{ rank: 3, event: { type: "ENDED", epoch: "e1", outcome: { kind: "exited", code: 5 }, at: 9 } }] });
    const last = of(seen, "@xstate.snapshot").at(-1)!;
    expect(last.snapshot).toMatchObject({ value: "running", context: { tasks: { size: 5000 }, counts: { launching: 4999, exited: 1 }, firstFailure: { rank: 3 } } });
    expect(JSON.stringify(last).length).toBeLessThan(4000);
    step.stop();
  });

  it("gives a late subscriber every known actor with its latest snapshot first", () => {
    const bridge = createStatelyBridge({ now: () => NOW });
    const job = createActor(jobMachine, { input: { job: "8", user: "bob", kind: "run", submittedAt: 1 }, id: "job-8", inspect: bridge.inspect }).start();
    job.send({ type: "STEP_STARTED", step: "0", at: 2 });
    const late: StatelyInspectionEvent[] = [];
    const unsubscribe = bridge.subscribe((e) => late.push(e));
    expect(late.map((e) => e.type)).toEqual(["@xstate.actor", "@xstate.snapshot"]);
    expect((late[1] as StatelySnapshotEvent).snapshot.value).toBe("running");
    unsubscribe();
    job.send({ type: "CANCEL", by: "bob", at: 3 });
    expect(late).toHaveLength(2);
    job.stop();
  });

  it("has no counterpart for transition, microstep and action events", () => {
    const { bridge, seen } = record();
    const job = createActor(jobMachine, { input: { job: "1", user: "u", kind: "run", submittedAt: 0 }, inspect: bridge.inspect }).start();
    const ref = job as unknown as InspectionEvent["actorRef"];
    for (const type of ["@xstate.transition", "@xstate.microstep", "@xstate.action"] as const) {
      expect(toStatelyEvent({ type, rootId: job.sessionId, actorRef: ref, event: { type: "x" }, snapshot: job.getSnapshot(), action: { type: "a", params: {} }, _transitions: [] } as unknown as InspectionEvent)).toBeUndefined();
    }
    expect(seen.every((e) => ["@xstate.actor", "@xstate.event", "@xstate.snapshot"].includes(e.type))).toBe(true);
    job.stop();
  });
});
