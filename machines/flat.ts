/**
 * A fast interpreter for flat XState machines (no nesting, no entry/exit actions, no `always`,
 * no delays), compiled from the machine's own definition. It evaluates the same guard and update
 * functions the machine was built with, so the logic lives in one place, at about 1 µs an event
 * instead of XState's 30 µs `transition()`.
 */
import type { AnyStateMachine } from "xstate";

interface Candidate<S, C, E> {
  readonly guard?: (c: C, e: E) => boolean;
  readonly target?: S;
  readonly updates: readonly ((c: C, e: E) => Partial<C>)[];
}

/** A compiled flat machine over records `{ state, context }`. */
export type FlatInterpreter<S extends string, C, E extends { type: string }> = <R extends { readonly state: S; readonly context: C }>(
  record: R,
  event: E,
) => R;

/**
 * Compiles `machine` into a transition function. `guards` and `updates` are the plain functions the
 * machine's guards and assign actions call; a transition naming anything else fails at compile time.
 */
export function compileFlatMachine<S extends string, C, E extends { type: string }>(
  machine: AnyStateMachine,
  guards: Readonly<Record<string, (c: C, e: E, params: any) => boolean>>,
  updates: Readonly<Record<string, (c: C, e: E) => Partial<C>>>,
): FlatInterpreter<S, C, E> {
  const table = new Map<string, Map<string, Candidate<S, C, E>[]>>();
  for (const [name, node] of Object.entries(machine.root.states)) {
    if (Object.keys(node.states).length > 0) throw new Error(`compileFlatMachine: state ${name} is not atomic`);
    if (node.entry.length > 0 || node.exit.length > 0) throw new Error(`compileFlatMachine: state ${name} has entry/exit actions`);
    const byEvent = new Map<string, Candidate<S, C, E>[]>();
    for (const [eventType, defs] of node.transitions) {
      byEvent.set(
        eventType,
        defs.map((def) => {
          if (def.target && def.target.length > 1) throw new Error(`compileFlatMachine: ${name}.${eventType} has several targets`);
          return {
            guard: def.guard ? compileGuard(def.guard, guards, `${name}.${eventType}`) : undefined,
            target: def.target?.[0]?.key as S | undefined,
            updates: def.actions.map((a: unknown) => {
              const key = typeof a === "string" ? a : (a as { type?: string }).type;
              const fn = key ? updates[key] : undefined;
              if (!fn) throw new Error(`compileFlatMachine: ${name}.${eventType} uses an action that is not a known update: ${String(key)}`);
              return fn;
            }),
          };
        }),
      );
    }
    table.set(name, byEvent);
  }
  return (record, event) => {
    const candidates = table.get(record.state)?.get(event.type);
    if (!candidates) return record;
    for (const c of candidates) {
      if (c.guard && !c.guard(record.context, event)) continue;
      let context = record.context;
      for (const u of c.updates) context = { ...context, ...u(context, event) };
      return { ...record, state: c.target ?? record.state, context };
    }
    return record;
  };
}

function compileGuard<C, E>(
  guard: unknown,
  guards: Readonly<Record<string, (c: C, e: E, params: any) => boolean>>,
  where: string,
): (c: C, e: E) => boolean {
  const ref = typeof guard === "string" ? { type: guard, params: undefined } : (guard as { type?: string; params?: unknown });
  const fn = ref.type ? guards[ref.type] : undefined;
  if (!fn || typeof ref.params === "function") throw new Error(`compileFlatMachine: ${where} uses an unknown or dynamic guard ${String(ref.type)}`);
  const params = ref.params;
  return (c, e) => fn(c, e, params);
}
