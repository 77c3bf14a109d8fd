import { describe, expect, it } from "vitest";
import { createActor, initialTransition, transition } from "xstate";
import { applyNodeEvent, nodeMachine, nodeNextDeadline, type NodeContext, type NodeEvent, type NodeInput, type NodeStateName } from "../../../machines/node.machine.js";
import { recordingActions } from "./helpers.js";

const timings = { heartbeatIntervalMs: 2000, nodeTimeoutMs: 10_000, disconnectGraceMs: 3000 };
const nodeInput: NodeInput = { node: "n1", timings };
const EFFECTS = ["nodeLost", "nodeOffline", "reportStale", "fence"] as const;

const hello = (epoch: string, at: number, slots = 8): NodeEvent => ({ type: "HELLO", epoch, slots, at });
const hb = (epoch: string, at: number): NodeEvent => ({ type: "HEARTBEAT", epoch, at });
const tick = (now: number): NodeEvent => ({ type: "TICK", now });

function node() {
  const fakes = recordingActions(EFFECTS);
  const actor = createActor(nodeMachine.provide({ actions: fakes.actions }), { input: nodeInput }).start();
  const state = () => actor.getSnapshot().value as NodeStateName;
  const ctx = () => actor.getSnapshot().context as NodeContext;
  const deadline = () => nodeNextDeadline(state(), ctx());
  return { actor, calls: fakes.calls, state, ctx, deadline, send: (e: NodeEvent) => actor.send(e) };
}

describe("node machine", () => {
  it("unknown → online on HELLO; no deadline before that", () => {
    const n = node();
    expect(n.state()).toBe("unknown");
    expect(n.deadline()).toBeUndefined();
    n.send(hello("e1", 0, 16));
    expect(n.state()).toBe("online");
    expect(n.ctx()).toMatchObject({ epoch: "e1", slots: 16, lastSeenAt: 0, since: 0 });
  });

  it("online → suspect after two missed heartbeats, → lost after nodeTimeout with nodeLost", () => {
    const n = node();
    n.send(hello("e1", 0));
    expect(n.deadline()).toBe(4000);
    n.send(tick(3999));
    expect(n.state()).toBe("online");
    n.send(tick(4000));
    expect(n.state()).toBe("suspect");
    expect(n.ctx()).toMatchObject({ since: 4000, reason: "MissedHeartbeats" });
    expect(n.deadline()).toBe(10_000);
    n.send(tick(9999));
    expect(n.state()).toBe("suspect");
    expect(n.calls).toEqual([]);
    n.send(tick(10_000));
    expect(n.state()).toBe("lost");
    expect(n.calls).toEqual([{ type: "nodeLost", params: { node: "n1", epoch: "e1", at: 10_000, reason: "NotResponding" } }]);
    expect(n.deadline()).toBeUndefined();
    // A lost node stays lost on further ticks and sends no second nodeLost.
    n.send(tick(20_000));
    expect(n.calls).toHaveLength(1);
  });

  it("a heartbeat brings a suspect node back online and moves the deadlines", () => {
    const n = node();
    n.send(hello("e1", 0));
    n.send(tick(4500));
    expect(n.state()).toBe("suspect");
    n.send(hb("e1", 5000));
    expect(n.state()).toBe("online");
    expect(n.ctx()).toMatchObject({ lastSeenAt: 5000, since: 5000, reason: undefined });
    expect(n.deadline()).toBe(9000);
    n.send(tick(10_000));
    expect(n.state()).toBe("suspect");
    expect(n.calls).toEqual([]);
  });

  it("DISCONNECTED → suspect at once, lost after the grace unless heard from", () => {
    const n = node();
    n.send(hello("e1", 0));
    n.send({ type: "DISCONNECTED", at: 1000 });
    expect(n.state()).toBe("suspect");
    expect(n.ctx()).toMatchObject({ reason: "Disconnected", disconnectDeadline: 4000 });
    expect(n.deadline()).toBe(4000);
    n.send(tick(4000));
    expect(n.state()).toBe("lost");
    expect(n.calls).toEqual([{ type: "nodeLost", params: { node: "n1", epoch: "e1", at: 4000, reason: "Disconnected" } }]);
  });

  it("a heartbeat within the disconnect grace clears it", () => {
    const n = node();
    n.send(hello("e1", 0));
    n.send({ type: "DISCONNECTED", at: 1000 });
    n.send(hb("e1", 1500));
    expect(n.state()).toBe("online");
    expect(n.ctx().disconnectDeadline).toBeUndefined();
    expect(n.deadline()).toBe(5500);
    n.send(tick(4000));
    expect(n.state()).toBe("online");
  });

  it("online → draining → offline on BYE, with nodeOffline", () => {
    const n = node();
    n.send(hello("e1", 0));
    n.send({ type: "DRAINING", epoch: "e1", at: 1000 });
    expect(n.state()).toBe("draining");
    expect(n.ctx()).toMatchObject({ reason: "Shutdown", since: 1000 });
    // A draining node is not made suspect by missed heartbeats, only lost by silence.
    expect(n.deadline()).toBe(11_000);
    n.send(tick(6000));
    expect(n.state()).toBe("draining");
    n.send({ type: "BYE", epoch: "e1", at: 7000 });
    expect(n.state()).toBe("offline");
    expect(n.calls).toEqual([{ type: "nodeOffline", params: { node: "n1", epoch: "e1", at: 7000 } }]);
    expect(n.deadline()).toBeUndefined();
    n.send({ type: "BYE", epoch: "e1", at: 7100 });
    expect(n.calls).toHaveLength(1);
  });

  it("HELLO with a new epoch while online: nodeLost for the old epoch; its heartbeats are then stale and reported", () => {
    const n = node();
    n.send(hello("e1", 0));
    n.send(hello("e2", 1000));
    expect(n.state()).toBe("online");
    expect(n.ctx()).toMatchObject({ epoch: "e2", since: 1000, lastSeenAt: 1000 });
    expect(n.calls).toEqual([{ type: "nodeLost", params: { node: "n1", epoch: "e1", at: 1000, reason: "Restarted" } }]);
    n.send(hb("e1", 1500));
    expect(n.state()).toBe("online");
    expect(n.ctx().lastSeenAt).toBe(1000);
    expect(n.ctx().staleEvents).toBe(1);
    expect(n.calls.at(-1)).toEqual({ type: "reportStale", params: { node: "n1", epoch: "e1", eventType: "HEARTBEAT" } });
    n.send({ type: "BYE", epoch: "e1", at: 1600 });
    expect(n.state()).toBe("online");
    expect(n.ctx().staleEvents).toBe(2);
  });

  it("a lost node ignores its old incarnation and comes back online with a new epoch", () => {
    const n = node();
    n.send(hello("e1", 0));
    n.send(tick(10_000));
    expect(n.state()).toBe("lost");
    n.send(hello("e1", 11_000));
    n.send(hb("e1", 11_000));
    expect(n.state()).toBe("lost");
    expect(n.ctx().staleEvents).toBe(2);
    n.send(hello("e2", 12_000));
    expect(n.state()).toBe("online");
    // No nodeLost for the incarnation already declared lost.
    expect(n.calls.filter((c) => c.type === "nodeLost")).toHaveLength(1);
  });

  it("the lost epoch heard again (a healed partition) is fenced; another epoch's messages are not", () => {
    const n = node();
    n.send(hello("e1", 0));
    n.send(tick(10_000));
    expect(n.state()).toBe("lost");
    n.send(hb("e0", 10_500));
    expect(n.calls.filter((c) => c.type === "fence")).toEqual([]);
    n.send(hb("e1", 11_000));
    n.send(hello("e1", 11_100));
    expect(n.state()).toBe("lost");
    expect(n.calls.filter((c) => c.type === "fence")).toEqual([
      { type: "fence", params: { node: "n1", epoch: "e1", reason: "NotResponding" } },
      { type: "fence", params: { node: "n1", epoch: "e1", reason: "NotResponding" } },
    ]);
    // The fenced agent comes back with a new epoch: online, no second nodeLost.
    n.send(hello("e2", 11_200));
    expect(n.state()).toBe("online");
    n.send(hb("e1", 11_300));
    expect(n.calls.filter((c) => c.type === "fence")).toHaveLength(2);
    expect(n.calls.filter((c) => c.type === "nodeLost")).toHaveLength(1);
  });

  it("KILL_UNCONFIRMED makes an online node suspect", () => {
    const n = node();
    n.send(hello("e1", 0));
    n.send({ type: "KILL_UNCONFIRMED", at: 500 });
    expect(n.state()).toBe("suspect");
    expect(n.ctx().reason).toBe("KillUnconfirmed");
    n.send(hb("e1", 600));
    expect(n.state()).toBe("online");
  });

  it("nodeNextDeadline: min of suspect, lost and disconnect deadlines by state", () => {
    const ctx: NodeContext = { node: "n", timings, epoch: "e", slots: 1, lastSeenAt: 1000, staleEvents: 0 };
    expect(nodeNextDeadline("online", ctx)).toBe(5000);
    expect(nodeNextDeadline("suspect", ctx)).toBe(11_000);
    expect(nodeNextDeadline("draining", ctx)).toBe(11_000);
    expect(nodeNextDeadline("suspect", { ...ctx, disconnectDeadline: 3000 })).toBe(3000);
    expect(nodeNextDeadline("online", { ...ctx, disconnectDeadline: 3000 })).toBe(3000);
    expect(nodeNextDeadline("online", { ...ctx, disconnectDeadline: 20_000 })).toBe(5000);
    for (const s of ["unknown", "lost", "offline"] as const) expect(nodeNextDeadline(s, ctx)).toBeUndefined();
    expect(nodeNextDeadline("online", { ...ctx, lastSeenAt: undefined })).toBeUndefined();
  });

  it("the pure transition() agrees with applyNodeEvent and with a running actor", () => {
    const events: NodeEvent[] = [
      hello("e1", 0),
      hb("e1", 1000),
      tick(5000),
      hb("e1", 5500),
      { type: "DISCONNECTED", at: 6000 },
      hb("e0", 6100),
      hello("e2", 7000),
      { type: "DRAINING", epoch: "e2", at: 8000 },
      { type: "BYE", epoch: "e2", at: 9000 },
      hello("e3", 10_000),
      tick(30_000),
    ];
    const n = node();
    let [snap] = initialTransition(nodeMachine, nodeInput);
    let state: NodeStateName = "unknown";
    let ctx: NodeContext = snap.context;
    for (const e of events) {
      [snap] = transition(nodeMachine, snap, e);
      n.send(e);
      const r = applyNodeEvent(state, ctx, e);
      state = r.state;
      ctx = r.context;
      expect(snap.value, e.type).toBe(state);
      expect(n.state(), e.type).toBe(state);
      expect(snap.context, e.type).toMatchObject(ctx);
    }
    expect(state).toBe("lost");
  });
});
