/**
 * The node machine: one worker node as the supervisor sees it, across its incarnations (epochs).
 * `online → suspect → lost` on silence, `online → draining → offline` on a graceful shutdown, and
 * back to `online` when the agent says hello with a new epoch. A lost epoch heard again (a healed
 * partition) is fenced: the service tells its agent, which comes back with a new epoch. Deadlines are absolute times in
 * context; the service sends TICK when the earliest one comes.
 */
import { enqueueActions, setup } from "xstate";

/** Timing of liveness, in milliseconds. */
export interface NodeTimings {
  readonly heartbeatIntervalMs: number;
  /** Silence after which a node is lost. */
  readonly nodeTimeoutMs: number;
  /** After a disconnect advisory, how long a node may take to come back before it is lost. */
  readonly disconnectGraceMs: number;
}

/** What a node is created with. */
export interface NodeInput {
  readonly node: string;
  readonly timings: NodeTimings;
}

/** Node states a user sees. */
export type NodeStateName = "unknown" | "online" | "suspect" | "lost" | "draining" | "offline";

/** Everything the supervisor knows of a node. */
export interface NodeContext {
  readonly node: string;
  readonly timings: NodeTimings;
  readonly epoch?: string;
  readonly slots: number;
  readonly lastSeenAt?: number;
  /** When the node became what it is now. */
  readonly since?: number;
  readonly reason?: string;
  /** When a disconnect advisory makes the node lost unless it is heard from. */
  readonly disconnectDeadline?: number;
  /** Events ignored because they came from an earlier incarnation. */
  readonly staleEvents: number;
}

/** Events a node takes. */
export type NodeEvent =
  | { readonly type: "HELLO"; readonly epoch: string; readonly slots: number; readonly at: number }
  | { readonly type: "HEARTBEAT"; readonly epoch: string; readonly at: number }
  | { readonly type: "DISCONNECTED"; readonly at: number }
  | { readonly type: "DRAINING"; readonly epoch: string; readonly at: number }
  | { readonly type: "BYE"; readonly epoch: string; readonly at: number }
  | { readonly type: "KILL_UNCONFIRMED"; readonly at: number }
  | { readonly type: "TICK"; readonly now: number };

/** Effects the node asks for. */
export type NodeEffect =
  | { readonly type: "nodeLost"; readonly params: { readonly node: string; readonly epoch: string; readonly at: number; readonly reason: string } }
  | { readonly type: "nodeOffline"; readonly params: { readonly node: string; readonly epoch: string; readonly at: number } }
  | { readonly type: "reportStale"; readonly params: { readonly node: string; readonly epoch: string; readonly eventType: string } }
  /** The lost epoch is heard again (a healed partition): tell its agent to kill its tasks and come back with a new epoch. */
  | { readonly type: "fence"; readonly params: { readonly node: string; readonly epoch: string; readonly reason: string } };

/** Everything the node machine decides, as a pure function of context, state and event. */
export function applyNodeEvent(
  state: NodeStateName,
  ctx: NodeContext,
  event: NodeEvent,
): { state: NodeStateName; context: NodeContext; effects: NodeEffect[] } {
  const effects: NodeEffect[] = [];
  const same = { state, context: ctx, effects };
  const isCurrent = (epoch: string) => epoch === ctx.epoch;
  const stale = (epoch: string) => {
    if (state === "lost" && isCurrent(epoch) && (event.type === "HELLO" || event.type === "HEARTBEAT")) {
      effects.push({ type: "fence", params: { node: ctx.node, epoch, reason: ctx.reason ?? "NotResponding" } });
    }
    effects.push({ type: "reportStale", params: { node: ctx.node, epoch, eventType: event.type } });
    return { state, context: { ...ctx, staleEvents: ctx.staleEvents + 1 }, effects };
  };
  switch (event.type) {
    case "HELLO": {
      if (isCurrent(event.epoch)) {
        if (state === "lost" || state === "offline") return stale(event.epoch);
        return { state: "online", context: { ...ctx, lastSeenAt: event.at, slots: event.slots, disconnectDeadline: undefined }, effects };
      }
      if (ctx.epoch && (state === "online" || state === "suspect" || state === "draining")) {
        // A new incarnation while the old one was thought alive: the old one's tasks are gone.
        effects.push({ type: "nodeLost", params: { node: ctx.node, epoch: ctx.epoch, at: event.at, reason: "Restarted" } });
      }
      return {
        state: "online",
        context: { ...ctx, epoch: event.epoch, slots: event.slots, lastSeenAt: event.at, since: event.at, reason: undefined, disconnectDeadline: undefined },
        effects,
      };
    }
    case "HEARTBEAT": {
      if (!isCurrent(event.epoch) || state === "lost" || state === "offline" || state === "unknown") return stale(event.epoch);
      const back = state === "suspect";
      return {
        state: back ? "online" : state,
        context: { ...ctx, lastSeenAt: event.at, disconnectDeadline: undefined, ...(back ? { since: event.at, reason: undefined } : {}) },
        effects,
      };
    }
    case "DISCONNECTED": {
      if (state !== "online" && state !== "suspect" && state !== "draining") return same;
      return {
        state: state === "draining" ? state : "suspect",
        context: { ...ctx, disconnectDeadline: event.at + ctx.timings.disconnectGraceMs, ...(state === "online" ? { since: event.at, reason: "Disconnected" } : {}) },
        effects,
      };
    }
    case "KILL_UNCONFIRMED": {
      if (state !== "online") return same;
      return { state: "suspect", context: { ...ctx, since: event.at, reason: "KillUnconfirmed" }, effects };
    }
    case "DRAINING": {
      if (!isCurrent(event.epoch)) return stale(event.epoch);
      if (state !== "online" && state !== "suspect") return same;
      return { state: "draining", context: { ...ctx, since: event.at, reason: "Shutdown", lastSeenAt: event.at }, effects };
    }
    case "BYE": {
      if (!isCurrent(event.epoch)) return stale(event.epoch);
      if (state === "offline" || state === "lost" || state === "unknown") return same;
      effects.push({ type: "nodeOffline", params: { node: ctx.node, epoch: event.epoch, at: event.at } });
      return { state: "offline", context: { ...ctx, since: event.at, reason: "Shutdown", disconnectDeadline: undefined }, effects };
    }
    case "TICK": {
      if (state !== "online" && state !== "suspect" && state !== "draining") return same;
      const silentFor = event.now - (ctx.lastSeenAt ?? event.now);
      const lostBy = ctx.disconnectDeadline !== undefined && event.now >= ctx.disconnectDeadline ? "Disconnected" : silentFor >= ctx.timings.nodeTimeoutMs ? "NotResponding" : undefined;
      if (lostBy) {
        effects.push({ type: "nodeLost", params: { node: ctx.node, epoch: ctx.epoch!, at: event.now, reason: lostBy } });
        return { state: "lost", context: { ...ctx, since: event.now, reason: lostBy, disconnectDeadline: undefined }, effects };
      }
      if (state === "online" && silentFor >= 2 * ctx.timings.heartbeatIntervalMs) {
        return { state: "suspect", context: { ...ctx, since: event.now, reason: "MissedHeartbeats" }, effects };
      }
      return same;
    }
  }
}

/** The earliest time the service must send TICK, if any. */
export function nodeNextDeadline(state: NodeStateName, ctx: NodeContext): number | undefined {
  if ((state !== "online" && state !== "suspect" && state !== "draining") || ctx.lastSeenAt === undefined) return undefined;
  const lost = ctx.lastSeenAt + ctx.timings.nodeTimeoutMs;
  const suspect = state === "online" ? ctx.lastSeenAt + 2 * ctx.timings.heartbeatIntervalMs : Number.POSITIVE_INFINITY;
  return Math.min(lost, suspect, ctx.disconnectDeadline ?? Number.POSITIVE_INFINITY);
}

const noop = () => {};
const STATES: readonly NodeStateName[] = ["unknown", "online", "suspect", "lost", "draining", "offline"];

/** The node machine; its rules live in `applyNodeEvent`, its states are the node states users see. */
export const nodeMachine = setup({
  types: {
    context: {} as NodeContext & { readonly next?: NodeStateName },
    events: {} as NodeEvent,
    input: {} as NodeInput,
  },
  actions: {
    apply: enqueueActions(({ context, event, enqueue }) => {
      // The state is read from context, not `self.getSnapshot()`: under the pure `transition()` (and
      // xstate/graph) `self` is an inert actor still in its initial state. `next` always equals the
      // state the `always` transitions moved to.
      const current = context.next ?? "unknown";
      const next = applyNodeEvent(current, context, event);
      enqueue.assign(() => ({ ...next.context, next: next.state }));
      for (const effect of next.effects) enqueue(effect as never);
    }),
    nodeLost: (_args, _params: { node: string; epoch: string; at: number; reason: string }) => noop(),
    nodeOffline: (_args, _params: { node: string; epoch: string; at: number }) => noop(),
    reportStale: (_args, _params: { node: string; epoch: string; eventType: string }) => noop(),
    fence: (_args, _params: { node: string; epoch: string; reason: string }) => noop(),
  },
  guards: {
    goesTo: ({ context }, params: { state: NodeStateName }) => context.next === params.state,
  },
}).createMachine({
  id: "node",
  context: ({ input }) => ({ node: input.node, timings: input.timings, slots: 0, staleEvents: 0 }),
  initial: "unknown",
  on: { HELLO: { actions: "apply" }, HEARTBEAT: { actions: "apply" }, DISCONNECTED: { actions: "apply" }, DRAINING: { actions: "apply" }, BYE: { actions: "apply" }, KILL_UNCONFIRMED: { actions: "apply" }, TICK: { actions: "apply" } },
  states: Object.fromEntries(
    STATES.map((s) => [s, { always: STATES.filter((t) => t !== s).map((t) => ({ guard: { type: "goesTo", params: { state: t } }, target: t })) }]),
  ) as Record<NodeStateName, object>,
});
