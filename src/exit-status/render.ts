/**
 * Rendering of outcomes for people and for compact messages: `code:signal`, outcome texts,
 * status group keys, per-task error lines and the Task Exit Code Summary.
 */
import { IdSet, IdSetBuilder } from "../idset/index.js";
import type { ExitCode, TaskOutcome } from "./outcome.js";
import { signalDescription } from "./signals.js";

/** `3:0`, `0:9`, `0:0`. */
export function formatExitCode(exitCode: ExitCode): string {
  return `${exitCode.code}:${exitCode.signal}`;
}

/** Parses `3:0` back; throws a RangeError on anything else. */
export function parseExitCode(text: string): ExitCode {
  const m = /^(0|[1-9]\d{0,2}):(0|[1-9]\d?)$/.exec(text);
  const code = Number(m?.[1]);
  const signal = Number(m?.[2]);
  if (!m || code > 255 || signal > 64 || (code !== 0 && signal !== 0)) {
    throw new RangeError(`bad ExitCode "${text}": expected code:signal with at most one half non-zero`);
  }
  return { code, signal };
}

/** A human-readable line for an outcome, as srun writes it: `Exited with exit code 1`, `Segmentation fault (core dumped)`. */
export function describeOutcome(outcome: TaskOutcome): string {
  switch (outcome.kind) {
    case "exited":
      return `Exited with exit code ${outcome.code}`;
    case "signaled":
      return signalDescription(outcome.signal) + (outcome.coreDumped ? " (core dumped)" : "");
    case "launch_failed":
      return `Launch failed with exit code ${outcome.code}: ${outcome.error}`;
    case "node_lost":
      return "Node lost";
  }
}

/** Task states that are not yet an outcome; they appear as group keys of their own. */
export const LIVE_TASK_KEYS = ["pending", "launching", "running", "stopping"] as const;
/** A live task state key. */
export type LiveTaskKey = (typeof LIVE_TASK_KEYS)[number];

/** The group key of an outcome: `exited:1`, `signaled:11`, `signaled:11:core`, `launch_failed:127`, `node_lost`. */
export function outcomeKey(outcome: TaskOutcome): string {
  switch (outcome.kind) {
    case "exited":
      return `exited:${outcome.code}`;
    case "signaled":
      return `signaled:${outcome.signal}${outcome.coreDumped ? ":core" : ""}`;
    case "launch_failed":
      return `launch_failed:${outcome.code}`;
    case "node_lost":
      return "node_lost";
  }
}

/** What a group key stands for: a live state, or an outcome (a launch failure's OS text is not in the key). */
export type ParsedGroupKey = { readonly live: LiveTaskKey } | { readonly outcome: TaskOutcome };

/** Parses a group key; throws a RangeError for an unknown one. */
export function parseGroupKey(key: string): ParsedGroupKey {
  if ((LIVE_TASK_KEYS as readonly string[]).includes(key)) return { live: key as LiveTaskKey };
  if (key === "node_lost") return { outcome: { kind: "node_lost" } };
  const m = /^(exited|signaled|launch_failed):(0|[1-9]\d*)(:core)?$/.exec(key);
  if (m) {
    const n = Number(m[2]);
    if (m[1] === "exited" && !m[3] && n <= 255) return { outcome: { kind: "exited", code: n } };
    if (m[1] === "signaled" && n >= 1 && n <= 64) return { outcome: { kind: "signaled", signal: n, coreDumped: Boolean(m[3]) } };
    if (m[1] === "launch_failed" && !m[3] && (n === 126 || n === 127)) return { outcome: { kind: "launch_failed", code: n, error: "" } };
  }
  throw new RangeError(`unknown task group key "${key}"`);
}

/** Severity rank of a group key for ordering: live first, then successes, exits, launch failures, signals, node loss. */
function keyOrder(key: string): [number, number] {
  const parsed = parseGroupKey(key);
  if ("live" in parsed) return [0, LIVE_TASK_KEYS.indexOf(parsed.live)];
  const o = parsed.outcome;
  switch (o.kind) {
    case "exited":
      return [1, o.code];
    case "launch_failed":
      return [2, o.code];
    case "signaled":
      return [3, o.signal * 2 + (o.coreDumped ? 1 : 0)];
    case "node_lost":
      return [4, 0];
  }
}

/** Orders group keys the way every surface prints them. */
export function sortGroupKeys(keys: Iterable<string>): string[] {
  return [...keys].sort((a, b) => {
    const [a0, a1] = keyOrder(a);
    const [b0, b1] = keyOrder(b);
    return a0 - b0 || a1 - b1;
  });
}

/** The compact picture of a step's tasks: ranks by status group, by node, and those killed by the runtime. */
export interface TaskGroups {
  /** Group key → id set of ranks, e.g. `{"exited:0":"0-2,4-9","exited:1":"3","running":"10-15"}`. */
  readonly groups: Readonly<Record<string, string>>;
  /** Node → id set of the ranks placed there. */
  readonly nodes: Readonly<Record<string, string>>;
  /** Ranks muster itself asked to stop. */
  readonly killedByRuntime: string;
  /**
   * Groups whose ranks are not known (a step too large for one message): group key → number of
   * tasks, and how many tasks in all muster asked to stop. Their ranks are in no id set above.
   */
  readonly omitted?: { readonly groups: Readonly<Record<string, number>>; readonly killedByRuntime: number };
}

/** One task as the grouping sees it. */
export interface TaskStatusEntry {
  readonly rank: number;
  readonly node: string;
  readonly key: string;
  readonly killedByRuntime: boolean;
}

/** Groups tasks (best given in rank order) into the compact picture; O(n) for ranks in order. */
export function groupTasks(tasks: Iterable<TaskStatusEntry>): TaskGroups {
  const byKey = new Map<string, IdSetBuilder>();
  const byNode = new Map<string, IdSetBuilder>();
  const killed = new IdSetBuilder();
  for (const t of tasks) {
    builderFor(byKey, t.key).add(t.rank);
    builderFor(byNode, t.node).add(t.rank);
    if (t.killedByRuntime) killed.add(t.rank);
  }
  const groups: Record<string, string> = {};
  for (const key of sortGroupKeys(byKey.keys())) groups[key] = byKey.get(key)!.build().toString();
  const nodes: Record<string, string> = {};
  for (const node of [...byNode.keys()].sort(compareNodeNames)) nodes[node] = byNode.get(node)!.build().toString();
  return { groups, nodes, killedByRuntime: killed.build().toString() };
}

function builderFor(map: Map<string, IdSetBuilder>, key: string): IdSetBuilder {
  let b = map.get(key);
  if (!b) map.set(key, (b = new IdSetBuilder()));
  return b;
}

/** Natural order of node names, so node-2 sorts before node-10. */
export function compareNodeNames(a: string, b: string): number {
  return a.localeCompare(b, "en", { numeric: true });
}

function rankWord(set: IdSet): string {
  return `${set.size === 1 ? "task" : "tasks"} ${set.toString()}`;
}

function countWord(n: number): string {
  return `${n} ${n === 1 ? "task" : "tasks"}`;
}

/**
 * The per-task error lines `muster run` prints at the end, one per node and outcome, ordered by lowest rank:
 * `node-2: tasks 4-7: Exited with exit code 1`. Successful tasks get no line; tasks muster stopped itself
 * are marked `(stopped by muster)`. `launchErrors` supplies the OS text of launch failures by rank.
 */
export function taskErrorLines(picture: TaskGroups, launchErrors: ReadonlyMap<number, string> = new Map()): string[] {
  const killed = IdSet.parse(picture.killedByRuntime);
  const lines: { first: number; text: string }[] = [];
  const nodeSets = Object.entries(picture.nodes).map(([node, ids]) => [node, IdSet.parse(ids)] as const);
  for (const [key, ids] of Object.entries(picture.groups)) {
    const parsed = parseGroupKey(key);
    if ("live" in parsed) continue;
    if (parsed.outcome.kind === "exited" && parsed.outcome.code === 0) continue;
    const set = IdSet.parse(ids);
    for (const [node, onNode] of nodeSets) {
      const here = set.intersect(onNode);
      if (here.isEmpty) continue;
      for (const [part, suffix] of [
        [here.difference(killed), ""],
        [here.intersect(killed), " (stopped by muster)"],
      ] as const) {
        if (part.isEmpty) continue;
        let outcome = parsed.outcome;
        if (outcome.kind === "launch_failed") outcome = { ...outcome, error: launchErrors.get(part.min!) ?? "command could not be executed" };
        lines.push({ first: part.min!, text: `${node}: ${rankWord(part)}: ${describeOutcome(outcome)}${suffix}` });
      }
    }
  }
  const sorted = lines.sort((a, b) => a.first - b.first).map((l) => l.text);
  for (const [key, n] of Object.entries(picture.omitted?.groups ?? {})) {
    const parsed = parseGroupKey(key);
    if ("live" in parsed || (parsed.outcome.kind === "exited" && parsed.outcome.code === 0)) continue;
    const outcome = parsed.outcome.kind === "launch_failed" ? { ...parsed.outcome, error: "command could not be executed" } : parsed.outcome;
    sorted.push(`${countWord(n)} (ranks not listed): ${describeOutcome(outcome)}`);
  }
  return sorted;
}

/** Text of a group key for the summary table: `exited 1`, `signaled 11 (Segmentation fault, core dumped)`, `running`. */
export function describeGroupKey(key: string): string {
  const parsed = parseGroupKey(key);
  if ("live" in parsed) return parsed.live;
  const o = parsed.outcome;
  switch (o.kind) {
    case "exited":
      return `exited ${o.code}`;
    case "signaled":
      return `signaled ${o.signal} (${signalDescription(o.signal)}${o.coreDumped ? ", core dumped" : ""})`;
    case "launch_failed":
      return `launch failed ${o.code}`;
    case "node_lost":
      return "node lost";
  }
}

/** What the summary rendering needs to know about the event that triggered it. */
export interface SummaryTrigger {
  readonly rank: number;
  readonly node: string;
  readonly outcome: TaskOutcome;
}

/** The Task Exit Code Summary, one line per group: what every task of a step is or did, at one instant. */
export function renderExitSummary(input: {
  readonly stepId: string;
  readonly picture: TaskGroups;
  readonly trigger?: SummaryTrigger;
  readonly final?: { readonly state: string; readonly reason: string; readonly exitCode: string };
}): string[] {
  const head = input.final
    ? `Task Exit Code Summary for StepId=${input.stepId}: ${input.final.state}, ExitCode=${input.final.exitCode}, Reason=${input.final.reason}`
    : `Task Exit Code Summary for StepId=${input.stepId}` +
      (input.trigger
        ? ` (first failure: task ${input.trigger.rank} on ${input.trigger.node}: ${describeOutcome(input.trigger.outcome)})`
        : "");
  const killed = IdSet.parse(input.picture.killedByRuntime);
  const rows = Object.entries(input.picture.groups).map(([key, ids]) => {
    const set = IdSet.parse(ids);
    const k = set.intersect(killed);
    const note = k.isEmpty ? "" : ` (stopped by muster: ${k.toString()})`;
    return { label: describeGroupKey(key), text: `${rankWord(set)}${note}` };
  });
  const omitted = input.picture.omitted;
  for (const [key, n] of Object.entries(omitted?.groups ?? {})) rows.push({ label: describeGroupKey(key), text: countWord(n) });
  const width = Math.max(0, ...rows.map((r) => r.label.length));
  const lines = [head, ...rows.map((r) => `  ${r.label.padEnd(width)}  ${r.text}`)];
  if (omitted) {
    lines.push(`  (ranks not listed: too many for one message${omitted.killedByRuntime ? `; ${countWord(omitted.killedByRuntime)} stopped by muster` : ""})`);
  }
  return lines;
}
