/**
 * The Stately-inspector bridge: turns XState's own inspection events (from actors created with
 * `inspect: bridge.inspect`) into the objects Stately's inspector reads (`@statelyai/inspect`'s
 * `StatelyInspectionEvent`: `@xstate.actor`, `@xstate.event`, `@xstate.snapshot`, each with a
 * `sessionId`, `rootId`, `createdAt`, `id` and `_version`), and hands them to subscribers. The
 * inspector serves them as Server-Sent Events on `/stately`. Snapshots are plain JSON; a step's
 * task table is replaced by its size (its `counts` stay), so 100,000 tasks do not go out per event.
 */
import type { AnyEventObject, InspectionEvent, Observer } from "xstate";

/** The `@statelyai/inspect` protocol version whose shapes this bridge emits. */
export const STATELY_PROTOCOL_VERSION = "0.7.0";

/** Fields every Stately inspection event has. */
export interface StatelyBaseEvent {
  /** The session id of the root actor. */
  readonly rootId: string | undefined;
  /** The session id of the actor this event is about. */
  readonly sessionId: string;
  /** Milliseconds since the epoch, as a string. */
  readonly createdAt: string;
  /** A unique id for this event. */
  readonly id: string;
  readonly _version: string;
}

/** An actor was created: its name, JSON definition, parent and first snapshot. */
export interface StatelyActorEvent extends StatelyBaseEvent {
  readonly type: "@xstate.actor";
  readonly name: string;
  readonly definition: string | undefined;
  readonly parentId: string | undefined;
  readonly snapshot: JsonSnapshot;
}

/** An event was sent to an actor. */
export interface StatelyEventEvent extends StatelyBaseEvent {
  readonly type: "@xstate.event";
  readonly event: AnyEventObject;
  readonly sourceId: string | undefined;
}

/** An actor has a new snapshot, after `event`. */
export interface StatelySnapshotEvent extends StatelyBaseEvent {
  readonly type: "@xstate.snapshot";
  readonly event: AnyEventObject;
  readonly snapshot: JsonSnapshot;
}

/** What Stately's inspector reads. */
export type StatelyInspectionEvent = StatelyActorEvent | StatelyEventEvent | StatelySnapshotEvent;

/** A snapshot as plain JSON (`status`, `value`, `context`, …). */
export type JsonSnapshot = { readonly status: string } & Readonly<Record<string, unknown>>;

/** Options of a bridge. */
export interface StatelyBridgeOptions {
  /** Clock for `createdAt` (tests pass a fixed one). */
  readonly now?: () => number;
  /** Most actors remembered for late subscribers (oldest forgotten first). */
  readonly maxActors?: number;
}

/** A bridge from XState inspection to Stately's event shapes. */
export interface StatelyBridge {
  /** Pass as `createActor(machine, { inspect: bridge.inspect })`. */
  readonly inspect: Observer<InspectionEvent>;
  /** Receives every converted event; a new subscriber first gets each known actor and its latest snapshot. */
  subscribe(listener: (event: StatelyInspectionEvent) => void): () => void;
}

/** A serialisable snapshot: XState's `toJSON` shape, with task tables summarised. */
function jsonSnapshot(snapshot: unknown): JsonSnapshot {
  const text = JSON.stringify(snapshot, (key, value: unknown) => {
    if (typeof value === "function") return { type: value.name };
    if (key === "tasks" && value && typeof value === "object" && "chunks" in value && "size" in value) return { size: (value as { size: number }).size };
    return value;
  });
  const parsed = (text === undefined ? {} : JSON.parse(text)) as Record<string, unknown>;
  return { ...parsed, status: typeof parsed.status === "string" ? parsed.status : "active" };
}

/** A machine's definition as JSON, functions replaced by their names (what Stately draws). */
function definitionOf(actorRef: unknown): { name: string | undefined; definition: string | undefined } {
  const config = (actorRef as { logic?: { config?: { id?: string } } }).logic?.config;
  if (!config || typeof config !== "object") return { name: undefined, definition: undefined };
  return { name: config.id, definition: JSON.stringify(config, (_k, v: unknown) => (typeof v === "function" ? { type: v.name } : v)) };
}

/**
 * The snapshot an actor registers with. XState announces an actor while it is still initialising
 * (its snapshot cannot be read yet); Stately's own `actor()` then sends `{ status: "active" }`, and
 * the `@xstate.snapshot` after `xstate.init` carries the first real one.
 */
function initialSnapshot(ref: { getSnapshot(): unknown }): JsonSnapshot {
  try {
    return jsonSnapshot(ref.getSnapshot());
  } catch {
    return { status: "active" };
  }
}

let counter = 0;
function nextId(): string {
  counter = (counter + 1) % Number.MAX_SAFE_INTEGER;
  return `${Date.now().toString(36)}-${counter.toString(36)}`;
}

/**
 * Converts one XState inspection event to Stately's shape; `@xstate.transition`, `@xstate.microstep`
 * and `@xstate.action` have no Stately counterpart and give undefined.
 */
export function toStatelyEvent(ev: InspectionEvent, now: () => number = Date.now): StatelyInspectionEvent | undefined {
  const base = { rootId: ev.rootId, sessionId: ev.actorRef.sessionId, createdAt: String(now()), id: nextId(), _version: STATELY_PROTOCOL_VERSION };
  switch (ev.type) {
    case "@xstate.actor": {
      const ref = ev.actorRef as { id?: string; sessionId: string; _parent?: { sessionId: string }; getSnapshot(): unknown };
      const { name, definition } = definitionOf(ref);
      // XState names an actor by its session id when it was given no id: Stately shows the machine id instead.
      const actorName = ref.id && ref.id !== ref.sessionId ? ref.id : (name ?? ref.sessionId);
      return { ...base, type: "@xstate.actor", name: actorName, definition, parentId: ref._parent?.sessionId, snapshot: initialSnapshot(ref) };
    }
    case "@xstate.event":
      return { ...base, type: "@xstate.event", event: ev.event, sourceId: ev.sourceRef?.sessionId };
    case "@xstate.snapshot":
      return { ...base, type: "@xstate.snapshot", event: ev.event, snapshot: jsonSnapshot(ev.snapshot) };
    default:
      return undefined;
  }
}

/** Builds a bridge. */
export function createStatelyBridge(opts: StatelyBridgeOptions = {}): StatelyBridge {
  const now = opts.now ?? Date.now;
  const maxActors = opts.maxActors ?? 1000;
  const listeners = new Set<(e: StatelyInspectionEvent) => void>();
  /** Per actor session: its registration and its latest snapshot, for late subscribers. */
  const actors = new Map<string, { actor: StatelyActorEvent; latest?: StatelySnapshotEvent }>();
  const emit = (e: StatelyInspectionEvent) => {
    for (const l of listeners) l(e);
  };
  return {
    inspect: {
      next(ev) {
        const converted = toStatelyEvent(ev, now);
        if (!converted) return;
        if (converted.type === "@xstate.actor") {
          actors.set(converted.sessionId, { actor: converted });
          if (actors.size > maxActors) actors.delete(actors.keys().next().value!);
        } else if (converted.type === "@xstate.snapshot") {
          const known = actors.get(converted.sessionId);
          if (known) known.latest = converted;
        }
        emit(converted);
      },
    },
    subscribe(listener) {
      for (const { actor, latest } of actors.values()) {
        listener(actor);
        if (latest) listener(latest);
      }
      listeners.add(listener);
      return () => void listeners.delete(listener);
    },
  };
}
