/**
 * A state chart as plain data, read from an XState machine's own definition (its state nodes and
 * their transition maps), so every rendering of a machine follows the machine as it is built.
 */
import type { AnyStateMachine, StateValue } from "xstate";

/** A guard as the machine names it: its name and its static parameters, if any. */
export interface ChartGuard {
  readonly name: string;
  readonly params?: Readonly<Record<string, unknown>>;
}

/** One state node. `id` is its path from the root joined with dots (the key, for a flat machine). */
export interface ChartState {
  readonly id: string;
  readonly key: string;
  /** The id of the enclosing state, absent for top-level states. */
  readonly parent?: string;
  readonly type: "atomic" | "compound" | "parallel" | "final" | "history";
  /** The initial child of a compound state. */
  readonly initial?: string;
  readonly description?: string;
}

/**
 * One transition as declared: on an event (`kind: "event"`) or eventless (`kind: "always"`).
 * `source` is a state id, or `null` when it is declared on the machine itself and so applies in
 * every state that is not final. A transition without `target` stays in its state.
 */
export interface ChartTransition {
  readonly source: string | null;
  readonly kind: "event" | "always";
  /** The event type; empty for `always`. */
  readonly event: string;
  readonly guard?: ChartGuard;
  readonly target?: string;
  readonly actions: readonly string[];
}

/** A machine's chart: its states in document order and its transitions in declaration order. */
export interface ChartModel {
  readonly id: string;
  readonly initial: string;
  readonly states: readonly ChartState[];
  readonly transitions: readonly ChartTransition[];
}

/** A drawable edge: a transition from one state to another (or to itself). */
export interface ChartEdge {
  readonly source: string;
  readonly target: string;
  /** `EVENT`, `EVENT [guard]` or `[guard]` (an eventless transition). */
  readonly label: string;
  readonly transition: ChartTransition;
}

/** Events the machine takes in every state without leaving it (root-level transitions without a target). */
export interface EverywhereHandler {
  readonly event: string;
  readonly guard?: ChartGuard;
  readonly actions: readonly string[];
}

interface NodeLike {
  readonly key: string;
  readonly path: readonly string[];
  readonly type: ChartState["type"];
  readonly description?: string;
  readonly states: Record<string, NodeLike>;
  readonly transitions: Map<string, readonly TransitionLike[]>;
  readonly always?: readonly TransitionLike[];
  readonly initial?: { readonly target?: readonly NodeLike[] };
}

interface TransitionLike {
  readonly eventType: string;
  readonly guard?: unknown;
  readonly target?: readonly NodeLike[];
  readonly actions: readonly unknown[];
}

const idOf = (node: NodeLike): string => node.path.join(".");

function nameOf(thing: unknown, fallback: string): string {
  if (typeof thing === "string") return thing;
  if (typeof thing === "function") {
    const t = (thing as { type?: unknown }).type;
    if (typeof t === "string") return t;
    return thing.name || fallback;
  }
  if (thing && typeof thing === "object") {
    const t = (thing as { type?: unknown }).type;
    if (typeof t === "string") return t;
  }
  return fallback;
}

function guardOf(guard: unknown): ChartGuard | undefined {
  if (guard === undefined) return undefined;
  const name = nameOf(guard, "inline");
  const params = guard && typeof guard === "object" ? (guard as { params?: unknown }).params : undefined;
  if (params === undefined) return { name };
  if (typeof params === "function") return { name, params: { dynamic: true } };
  if (params && typeof params === "object" && !Array.isArray(params)) return { name, params: JSON.parse(JSON.stringify(params)) as Record<string, unknown> };
  return { name, params: { value: JSON.parse(JSON.stringify(params)) as unknown } };
}

function transitionsOf(node: NodeLike, source: string | null): ChartTransition[] {
  const out: ChartTransition[] = [];
  const add = (def: TransitionLike, kind: ChartTransition["kind"], event: string) => {
    if (def.target && def.target.length > 1) {
      for (const t of def.target) out.push(one(def, kind, event, idOf(t)));
    } else out.push(one(def, kind, event, def.target?.[0] ? idOf(def.target[0]) : undefined));
  };
  const one = (def: TransitionLike, kind: ChartTransition["kind"], event: string, target: string | undefined): ChartTransition => {
    const guard = guardOf(def.guard);
    return {
      source,
      kind,
      event,
      ...(guard ? { guard } : {}),
      ...(target !== undefined ? { target } : {}),
      actions: def.actions.map((a) => nameOf(a, "inline")),
    };
  };
  for (const [event, defs] of node.transitions) for (const def of defs) add(def, "event", event);
  for (const def of node.always ?? []) add(def, "always", "");
  return out;
}

/** Reads the chart of `machine` from its definition: states, initial state, transitions, guards. */
export function chartModel(machine: AnyStateMachine): ChartModel {
  const root = machine.root as unknown as NodeLike;
  const states: ChartState[] = [];
  const transitions: ChartTransition[] = transitionsOf(root, null);
  const visit = (node: NodeLike, parent: string | undefined) => {
    for (const child of Object.values(node.states)) {
      const id = idOf(child);
      const initial = child.type === "compound" ? child.initial?.target?.[0] : undefined;
      states.push({
        id,
        key: child.key,
        ...(parent !== undefined ? { parent } : {}),
        type: child.type,
        ...(initial ? { initial: idOf(initial) } : {}),
        ...(child.description ? { description: child.description } : {}),
      });
      transitions.push(...transitionsOf(child, id));
      visit(child, id);
    }
  };
  visit(root, undefined);
  const initial = root.initial?.target?.[0];
  if (!initial) throw new Error(`chartModel: machine ${machine.id} has no initial state`);
  return { id: machine.id, initial: idOf(initial), states, transitions };
}

/** Formats a guard: `name`, or `name(value)` for one parameter, or `name(k=v, …)`. */
export function guardText(guard: ChartGuard): string {
  const entries = Object.entries(guard.params ?? {});
  if (entries.length === 0) return guard.name;
  const show = (v: unknown) => (typeof v === "string" ? v : JSON.stringify(v));
  if (entries.length === 1) return `${guard.name}(${show(entries[0]![1])})`;
  return `${guard.name}(${entries.map(([k, v]) => `${k}=${show(v)}`).join(", ")})`;
}

/** The label of a transition: `EVENT`, `EVENT [guard]`, `[guard]` (eventless) or `always`. */
export function transitionLabel(t: ChartTransition): string {
  const event = t.kind === "always" ? "" : eventText(t.event);
  const guard = t.guard ? `[${guardText(t.guard)}]` : "";
  return [event, guard].filter(Boolean).join(" ") || "always";
}

function eventText(event: string): string {
  const after = /^xstate\.after\.(.+?)\./.exec(event);
  if (after) return `after ${after[1]}`;
  return event;
}

/** True when the state is final. */
export function isFinal(model: ChartModel, id: string): boolean {
  return model.states.some((s) => s.id === id && s.type === "final");
}

/** States without children: the ones a snapshot of a flat machine can be in. */
export function leafStates(model: ChartModel): ChartState[] {
  return model.states.filter((s) => !model.states.some((c) => c.parent === s.id));
}

/**
 * The edges to draw. A root-level transition with a target becomes one edge from every leaf state
 * that is not final (a machine in a final state has stopped); root-level transitions without a
 * target are left to `everywhereHandlers`.
 */
export function chartEdges(model: ChartModel): ChartEdge[] {
  const live = leafStates(model).filter((s) => s.type !== "final");
  const edges: ChartEdge[] = [];
  for (const t of model.transitions) {
    const label = transitionLabel(t);
    if (t.source === null) {
      if (t.target === undefined) continue;
      for (const s of live) if (s.id !== t.target) edges.push({ source: s.id, target: t.target, label, transition: t });
      continue;
    }
    edges.push({ source: t.source, target: t.target ?? t.source, label, transition: t });
  }
  return edges;
}

/** Root-level transitions without a target: events handled in every state, staying in it. */
export function everywhereHandlers(model: ChartModel): EverywhereHandler[] {
  return model.transitions
    .filter((t) => t.source === null && t.target === undefined)
    .map((t) => ({ event: t.kind === "always" ? "always" : eventText(t.event), ...(t.guard ? { guard: t.guard } : {}), actions: t.actions }));
}

/** One line describing the everywhere handlers, or undefined when there are none. */
export function everywhereNote(model: ChartModel): string | undefined {
  const handlers = everywhereHandlers(model);
  if (handlers.length === 0) return undefined;
  const events = handlers.map((h) => (h.guard ? `${h.event} [${guardText(h.guard)}]` : h.event));
  const actions = [...new Set(handlers.flatMap((h) => h.actions))];
  return `handled in every state: ${events.join(", ")}${actions.length ? ` (${actions.join(", ")})` : ""}`;
}

/** The state ids a snapshot value stands for: each active state and its ancestors. */
export function activeStateIds(value: StateValue): string[] {
  const out: string[] = [];
  const walk = (v: StateValue, prefix: string) => {
    if (typeof v === "string") {
      out.push(prefix + v);
      return;
    }
    for (const [k, child] of Object.entries(v)) {
      out.push(prefix + k);
      if (child !== undefined) walk(child, `${prefix}${k}.`);
    }
  };
  walk(value, "");
  return out;
}

/** Options every renderer takes. */
export interface RenderOptions {
  /** State ids to highlight (a snapshot's states: see `activeStateIds`). */
  readonly active?: readonly string[];
}
