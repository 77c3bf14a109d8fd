/**
 * The task machine: one process of a step, from placement to its outcome.
 * A step owns its tasks' states and drives them through `advanceTask`, an interpreter compiled
 * from this machine's own definition, never spawned actors, so a step can hold 100,000 tasks
 * (DESIGN.md, "Machines"). Tests check `advanceTask` against XState's `transition()`.
 */
import { assign, setup } from "xstate";
import type { TaskOutcome } from "../src/exit-status/index.js";
import { compileFlatMachine } from "./flat.js";

/** What a task is created with. */
export interface TaskInput {
  readonly rank: number;
}

/** Everything the task knows; times are epoch milliseconds taken from events. */
export interface TaskContext {
  readonly rank: number;
  /** Node the task was placed on (set by LAUNCH). */
  readonly node?: string;
  /** Epoch of the node incarnation the task was launched on; events from any other epoch are stale. */
  readonly epoch?: string;
  readonly pid?: number;
  readonly launchedAt?: number;
  readonly startedAt?: number;
  readonly endedAt?: number;
  readonly outcome?: TaskOutcome;
  /** Bytes of the task's output its agent could not forward (reported with its end). */
  readonly outputLostBytes?: number;
  /**
   * True once muster itself asked the task to stop, except for `--wait`'s SIGKILL: srun counts the
   * tasks its wait killed like any other killed task (FAILED `0:9`, exit 137), and so does muster.
   */
  readonly killedByRuntime: boolean;
  /** Why muster asked it to stop (`cancel`, `kill-on-bad-exit`, `wait`, `time-limit`, `node-failure`, `node-shutdown`). */
  readonly stopReason?: string;
  /** Set when the task was finalised without its agent confirming the kill. */
  readonly killUnconfirmed?: boolean;
}

/** Events a task takes. Every event from an agent carries the node epoch it came from. */
export type TaskEvent =
  | { readonly type: "LAUNCH"; readonly node: string; readonly epoch: string; readonly at: number }
  | { readonly type: "STARTED"; readonly epoch: string; readonly pid: number; readonly at: number }
  | { readonly type: "ENDED"; readonly epoch: string; readonly outcome: TaskOutcome; readonly pid?: number; readonly at: number; readonly outputLostBytes?: number }
  | { readonly type: "STOP"; readonly reason: string; readonly at: number }
  | { readonly type: "NODE_LOST"; readonly epoch: string; readonly at: number }
  | { readonly type: "KILL_UNCONFIRMED"; readonly at: number };

/** Live state names of the task machine. */
export const TASK_LIVE_STATES = ["pending", "launching", "running", "stopping"] as const;
/** Final state names, one per outcome kind. */
export const TASK_FINAL_STATES = ["exited", "signaled", "launchFailed", "nodeLost"] as const;
/** The state names of the task machine. */
export type TaskStateName = (typeof TASK_LIVE_STATES)[number] | (typeof TASK_FINAL_STATES)[number];

const SIGKILL = 9;
/** The stop reason of `--wait`'s kill, the one stop that leaves a task counted in its step's verdict. */
export const WAIT_STOP_REASON = "wait";
const KILLED: TaskOutcome = { kind: "signaled", signal: SIGKILL, coreDumped: false };

/** The task's guards as plain functions, shared by the XState machine and the compiled interpreter. */
export const taskGuards = {
  /** The event comes from the node incarnation the task was launched on. */
  fromCurrentEpoch: (context: TaskContext, event: TaskEvent) => "epoch" in event && event.epoch === context.epoch,
  /** An ENDED event from the current epoch whose outcome is of the given kind. */
  endedWith: (context: TaskContext, event: TaskEvent, params: { kind: TaskOutcome["kind"] }) =>
    event.type === "ENDED" && event.epoch === context.epoch && event.outcome.kind === params.kind,
} as const;

/** The task's context updates as plain functions, shared by the XState machine and the compiled interpreter. */
export const taskUpdates = {
  recordLaunch: (_c: TaskContext, e: TaskEvent): Partial<TaskContext> =>
    e.type === "LAUNCH" ? { node: e.node, epoch: e.epoch, launchedAt: e.at } : {},
  recordStart: (c: TaskContext, e: TaskEvent): Partial<TaskContext> =>
    e.type === "STARTED" ? { pid: e.pid, startedAt: c.startedAt ?? e.at } : {},
  recordEnd: (c: TaskContext, e: TaskEvent): Partial<TaskContext> =>
    e.type === "ENDED" ? { outcome: e.outcome, endedAt: e.at, pid: c.pid ?? e.pid, ...(e.outputLostBytes ? { outputLostBytes: e.outputLostBytes } : {}) } : {},
  recordStop: (c: TaskContext, e: TaskEvent): Partial<TaskContext> =>
    e.type === "STOP" ? { killedByRuntime: e.reason !== WAIT_STOP_REASON, stopReason: c.stopReason ?? e.reason } : {},
  recordNeverStarted: (_c: TaskContext, e: TaskEvent): Partial<TaskContext> => ({
    killedByRuntime: true,
    stopReason: e.type === "STOP" ? e.reason : "stop",
    outcome: KILLED,
    endedAt: "at" in e ? e.at : undefined,
  }),
  recordNodeLost: (_c: TaskContext, e: TaskEvent): Partial<TaskContext> => ({
    outcome: { kind: "node_lost" },
    endedAt: "at" in e ? e.at : undefined,
  }),
  recordKillUnconfirmed: (c: TaskContext, e: TaskEvent): Partial<TaskContext> => ({
    outcome: KILLED,
    killedByRuntime: c.stopReason !== WAIT_STOP_REASON,
    killUnconfirmed: true,
    endedAt: "at" in e ? e.at : undefined,
  }),
} as const;

const endedTransitions = [
  { guard: { type: "endedWith", params: { kind: "exited" } }, target: "exited", actions: "recordEnd" },
  { guard: { type: "endedWith", params: { kind: "signaled" } }, target: "signaled", actions: "recordEnd" },
  { guard: { type: "endedWith", params: { kind: "launch_failed" } }, target: "launchFailed", actions: "recordEnd" },
] as const;

type Update = (c: TaskContext, e: TaskEvent) => Partial<TaskContext>;
const toAssign = (fn: Update) => assign<TaskContext, TaskEvent, undefined, TaskEvent, never>(({ context, event }) => fn(context, event));

/** The task machine. */
export const taskMachine = setup({
  types: {
    context: {} as TaskContext,
    events: {} as TaskEvent,
    input: {} as TaskInput,
    output: {} as { outcome: TaskOutcome | undefined },
  },
  guards: {
    fromCurrentEpoch: ({ context, event }) => taskGuards.fromCurrentEpoch(context, event),
    endedWith: ({ context, event }, params: { kind: TaskOutcome["kind"] }) => taskGuards.endedWith(context, event, params),
  },
  actions: {
    recordLaunch: toAssign(taskUpdates.recordLaunch),
    recordStart: toAssign(taskUpdates.recordStart),
    recordEnd: toAssign(taskUpdates.recordEnd),
    recordStop: toAssign(taskUpdates.recordStop),
    recordNeverStarted: toAssign(taskUpdates.recordNeverStarted),
    recordNodeLost: toAssign(taskUpdates.recordNodeLost),
    recordKillUnconfirmed: toAssign(taskUpdates.recordKillUnconfirmed),
  },
}).createMachine({
  id: "task",
  context: ({ input }) => ({ rank: input.rank, killedByRuntime: false }),
  initial: "pending",
  output: ({ context }) => ({ outcome: context.outcome }),
  states: {
    pending: {
      on: {
        LAUNCH: { target: "launching", actions: "recordLaunch" },
        STOP: { target: "signaled", actions: "recordNeverStarted" },
      },
    },
    launching: {
      on: {
        STARTED: { guard: "fromCurrentEpoch", target: "running", actions: "recordStart" },
        ENDED: endedTransitions,
        STOP: { target: "stopping", actions: "recordStop" },
        NODE_LOST: { guard: "fromCurrentEpoch", target: "nodeLost", actions: "recordNodeLost" },
      },
    },
    running: {
      on: {
        ENDED: endedTransitions,
        STOP: { target: "stopping", actions: "recordStop" },
        NODE_LOST: { guard: "fromCurrentEpoch", target: "nodeLost", actions: "recordNodeLost" },
      },
    },
    stopping: {
      on: {
        STARTED: { guard: "fromCurrentEpoch", actions: "recordStart" },
        ENDED: endedTransitions,
        NODE_LOST: { guard: "fromCurrentEpoch", target: "nodeLost", actions: "recordNodeLost" },
        KILL_UNCONFIRMED: { target: "signaled", actions: "recordKillUnconfirmed" },
      },
    },
    exited: { type: "final" },
    signaled: { type: "final" },
    launchFailed: { type: "final" },
    nodeLost: { type: "final" },
  },
});

/** A task as its step stores it: the machine's state name and context, nothing else. */
export interface TaskRecord {
  readonly state: TaskStateName;
  readonly context: TaskContext;
}

/** The initial record of the task of rank `rank`. */
export function initialTaskRecord(rank: number): TaskRecord {
  return { state: "pending", context: { rank, killedByRuntime: false } };
}

const interpreter = compileFlatMachine<TaskStateName, TaskContext, TaskEvent>(taskMachine, taskGuards, taskUpdates);

/** Advances one task by one event; returns the same record when the event changes nothing (ignored). */
export function advanceTask(record: TaskRecord, event: TaskEvent): TaskRecord {
  return interpreter(record, event);
}

/** True when the task reached a final state. */
export function isTaskFinal(state: TaskStateName): boolean {
  return (TASK_FINAL_STATES as readonly string[]).includes(state);
}
